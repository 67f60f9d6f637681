//! herald: campaign and marketing automation for securities firms.
//!
//! See `ARCHITECTURE.md` for the map of the modules and the data flow.

pub mod campaign;
pub mod channel;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod diagnostic;
pub mod event;
pub mod http;
pub mod import;
pub mod message;
pub mod metrics;
pub mod report;
pub mod run;
pub mod schedule;
pub mod segment;
pub mod seminar;
pub mod serve;
pub mod store;
pub mod time;
pub mod tracking;
