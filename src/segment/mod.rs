//! Segment rules: Rhai scripts marketing staff write to choose who receives
//! a campaign. A rule is compiled once, checked for unknown names before it
//! runs, and evaluated per client in parallel inside a sandbox (or, for the
//! common shapes, as native code with the same results).

pub mod engine;
pub mod eval;
pub mod fields;
pub mod native;
pub mod profile;
pub mod rule;
pub mod rule_tests;
pub mod snapshot;
pub mod vocabulary;

pub use eval::{evaluate, Outcome, Population};
pub use rule::{Rule, RuleError};
pub use vocabulary::Today;
