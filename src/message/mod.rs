//! Messages: what one client receives from one campaign, rendered from the
//! campaign's template set and content.

pub mod check;
pub mod data;
pub mod format;
pub mod helpers;
pub mod render;
pub mod shape;
pub mod sms;
pub mod specialise;
pub mod template;
