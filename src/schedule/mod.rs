//! Time-driven runs: the exchange calendar, campaign triggers and the
//! scheduler that plans a run when its trigger fires.

pub mod calendar;
pub mod trigger;

pub use calendar::Calendar;
pub use trigger::Trigger;
