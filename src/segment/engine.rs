//! The Rhai engine rules run in: the vocabulary, and a sandbox. A rule can
//! read only what it is given: no files, no network, no modules, no `eval`,
//! and limits on operations, depth and sizes so it cannot loop forever or
//! exhaust memory.

use std::collections::HashSet;

use rhai::{Dynamic, Engine, Map, Scope};

use super::vocabulary::{self, Date, Today};

/// Operations one evaluation may take. A plain rule needs a few dozen; a loop
/// that never ends hits this in milliseconds.
pub const MAX_OPERATIONS: u64 = 200_000;

/// Builds the engine for one run.
pub fn engine(today: Today) -> Engine {
    engine_with(today, Default::default())
}

/// The engine with the seminar answers `client.rsvp(…)` reads.
pub fn engine_with(today: Today, rsvps: std::sync::Arc<vocabulary::Rsvps>) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(32)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(10_000)
        .set_max_array_size(10_000)
        .set_max_map_size(1_000)
        .set_strict_variables(true)
        .disable_symbol("eval");
    // Rules run once per client: printing would flood the log with client data.
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    vocabulary::register(&mut engine, today);
    vocabulary::register_rsvps(&mut engine, rsvps);
    engine
}

/// The answers to every seminar, for rules that call `client.rsvp`.
pub async fn rsvps(
    store: &dyn crate::store::Store,
) -> Result<vocabulary::Rsvps, crate::store::StoreError> {
    use crate::store::seminars::Standing;
    let mut out = vocabulary::Rsvps::new();
    for (seminar, capacity, a) in store.all_answers().await? {
        let word = match Standing::of(a.position, capacity) {
            Standing::Seated { .. } => "yes",
            Standing::Waitlisted { .. } => "waitlisted",
            Standing::Declined => "no",
        };
        out.entry(seminar).or_default().insert(a.client_id, word);
    }
    Ok(out)
}

/// The variables every rule sees, in the order evaluation pushes them.
pub fn run_scope(ctx: &Map, today: Today) -> Scope<'static> {
    let mut scope = Scope::new();
    scope.push_constant("ctx", ctx.clone());
    scope.push_constant("today", Date(today.date));
    scope
}

/// The same names, for compiling with strict variables. Pushed as plain
/// variables: as constants, the optimiser would fold these placeholder
/// values into the compiled rule.
pub fn compile_scope(context_keys: &HashSet<String>) -> Scope<'static> {
    let ctx: Map = context_keys
        .iter()
        .map(|k| (k.as_str().into(), Dynamic::UNIT))
        .collect();
    let mut scope = Scope::new();
    scope.push("ctx", ctx);
    scope.push("today", Dynamic::UNIT);
    scope.push("client", Dynamic::UNIT);
    scope
}
