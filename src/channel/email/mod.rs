//! Email: the MIME message and the SMTP adapter.

pub mod mime;
pub mod smtp;
