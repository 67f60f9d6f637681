//! Evaluating a rule over every client, in parallel on all cores, with
//! per-client errors counted and a limit past which the whole run fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rayon::prelude::*;
use rhai::{Engine, Map};
use serde::Serialize;

use super::native::Native;
use super::profile::{ClientView, Columns};
use super::rule::Rule;
use super::vocabulary::Today;
use crate::store::{Store, StoreError};

/// Clients read from the store per page.
const PAGE: u32 = 10_000;

/// Every client, as rules see them.
pub struct Population {
    pub columns: Arc<Columns>,
    /// One view per client, in id order.
    pub clients: Vec<ClientView>,
}

impl Population {
    pub fn new(columns: Columns) -> Self {
        let columns = Arc::new(columns);
        let clients = (0..columns.len())
            .map(|i| ClientView::new(columns.clone(), i))
            .collect();
        Population { columns, clients }
    }

    /// Reads every client and their engagement from the store.
    pub async fn load(store: &dyn Store, tz: chrono_tz::Tz) -> Result<Population, StoreError> {
        let mut columns = Columns::default();
        let mut after = None;
        loop {
            let page = store.clients_page(after.as_ref(), PAGE).await?;
            let (Some(first), Some(last)) = (page.first(), page.last()) else {
                break;
            };
            // Both come in id order: walk them together.
            let engagement = store.engagement(&first.client.id, &last.client.id).await?;
            let mut rest = engagement.as_slice();
            for c in &page {
                let n = rest
                    .iter()
                    .take_while(|e| e.client_id == c.client.id)
                    .count();
                let (touches, tail) = rest.split_at(n);
                columns.push(c, touches, tz);
                rest = tail;
            }
            after = Some(last.client.id.clone());
            if page.len() < PAGE as usize {
                break;
            }
        }
        Ok(Population::new(columns))
    }
}

/// A client the rule could not be evaluated for; it is excluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientError {
    pub client: String,
    pub message: String,
}

/// What a rule selected.
#[derive(Debug, Default)]
pub struct Outcome {
    pub total: usize,
    /// Indexes into the population, in id order.
    pub matched: Vec<usize>,
    pub error_count: usize,
    /// The first errors, for the report.
    pub errors: Vec<ClientError>,
}

/// Errors kept for the report.
const ERRORS_KEPT: usize = 20;

/// The run fails once this many clients have errors: 1 % of them, at least
/// 10 and at most 1,000.
pub fn error_limit(total: usize) -> usize {
    (total / 100).clamp(10, 1_000)
}

/// The whole evaluation failed.
#[derive(Debug, thiserror::Error)]
#[error("{rule}: the rule failed for {count} clients, past the limit of {limit}; first: client {first_client}: {first_message}")]
pub struct TooManyErrors {
    pub rule: String,
    pub count: usize,
    pub limit: usize,
    pub first_client: String,
    pub first_message: String,
}

/// Evaluates one rule for client after client: as native code when the
/// rule is of a shape [`Native`] knows, otherwise in Rhai, keeping Rhai's
/// runtime state and function-resolution caches between clients (a fresh
/// evaluation per client would resolve every function call again, which
/// costs more than the rule itself).
pub struct Evaluator<'a> {
    engine: &'a Engine,
    rule: &'a Rule,
    native: Option<&'a Native>,
    scope: rhai::Scope<'static>,
    global: rhai::GlobalRuntimeState,
    caches: rhai::Caches,
}

impl<'a> Evaluator<'a> {
    /// `native` is the rule compiled by [`Native::compile`] for the same
    /// `ctx` and `today`, when it could be: compiled once per run, not per
    /// evaluator.
    pub fn new(
        engine: &'a Engine,
        rule: &'a Rule,
        native: Option<&'a Native>,
        ctx: &Map,
        today: Today,
    ) -> Self {
        Evaluator {
            engine,
            rule,
            native,
            scope: super::engine::run_scope(ctx, today),
            global: fresh_state(engine, rule),
            caches: rhai::Caches::new(),
        }
    }

    /// The verdict for one client.
    pub fn verdict(&mut self, client: &ClientView) -> Result<bool, String> {
        if let Some(native) = self.native {
            return Ok(native.verdict(client));
        }
        // The operation limit is per client.
        self.global.num_operations = Default::default();
        // `client` stays in the scope from one client to the next; only
        // its place in the population moves.
        match self.scope.get_value_mut::<ClientView>("client") {
            Some(view) => view.point_at(client),
            None => {
                self.scope.push_constant("client", client.clone());
            }
        }
        let base = self.scope.len();
        // The raw entry point is the one that takes the caches; it is what
        // `eval_ast_with_scope` runs, minus the per-call set-up.
        #[allow(deprecated)]
        let result = self.engine.eval_statements_raw(
            &mut self.global,
            &mut self.caches,
            &mut self.scope,
            self.rule.ast.statements(),
        );
        self.scope.rewind(base);
        if result.is_err() {
            // An error may leave call levels or caches mid-way: start the
            // next client from a clean state (errors are rare).
            self.global = fresh_state(self.engine, self.rule);
            self.caches = rhai::Caches::new();
        }
        let path = self.rule.path.display();
        match result {
            Ok(v) => v
                .as_bool()
                .map_err(|t| format!("{path}: the rule gave {t} ({v}), not true or false")),
            Err(e) => Err(format!("{path}: {e}")),
        }
    }
}

/// Rhai's runtime state for a rule, with the functions the rule defines.
fn fresh_state(engine: &Engine, rule: &Rule) -> rhai::GlobalRuntimeState {
    let mut global = engine.new_global_runtime_state();
    global.lib.push(rule.ast.shared_lib().clone());
    global
}

/// Evaluates `rule` for every client of `population`.
pub fn evaluate(
    engine: &Engine,
    rule: &Rule,
    ctx: &Map,
    today: Today,
    population: &[ClientView],
) -> Result<Outcome, TooManyErrors> {
    let limit = error_limit(population.len());
    let failures = AtomicUsize::new(0);
    let native = Native::compile(rule, ctx, today);
    let chunks: Vec<(Vec<usize>, Vec<ClientError>)> = population
        .par_chunks(2048)
        .enumerate()
        .map_init(
            || Evaluator::new(engine, rule, native.as_ref(), ctx, today),
            |evaluator, (chunk_no, chunk)| {
                let mut matched = Vec::new();
                let mut errors = Vec::new();
                for (i, client) in chunk.iter().enumerate() {
                    if failures.load(Ordering::Relaxed) > limit {
                        break;
                    }
                    match evaluator.verdict(client) {
                        Ok(true) => matched.push(chunk_no * 2048 + i),
                        Ok(false) => {}
                        Err(message) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            errors.push(ClientError {
                                client: client.id().to_owned(),
                                message,
                            });
                        }
                    }
                }
                (matched, errors)
            },
        )
        .collect();
    let mut outcome = Outcome {
        total: population.len(),
        ..Default::default()
    };
    for (matched, errors) in chunks {
        outcome.matched.extend(matched);
        outcome.error_count += errors.len();
        outcome.errors.extend(
            errors
                .into_iter()
                .take(ERRORS_KEPT.saturating_sub(outcome.errors.len())),
        );
    }
    if outcome.error_count > limit {
        let first = outcome.errors.first().cloned().unwrap_or(ClientError {
            client: "?".into(),
            message: "?".into(),
        });
        return Err(TooManyErrors {
            rule: rule.path.display().to_string(),
            count: outcome.error_count,
            limit,
            first_client: first.client,
            first_message: first.message,
        });
    }
    Ok(outcome)
}
