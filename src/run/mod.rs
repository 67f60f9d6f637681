//! Runs: planning a campaign's run (segment, gates, deliveries) and
//! dispatching it (claim, re-check, render, send, record, archive).

pub mod dispatch;
pub mod files;
pub mod journal;
pub mod plan;
pub mod process;
