//! `herald segment RULE` and `herald rule test RULE`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use rhai::{Engine, Map};
use serde::Serialize;

use super::{print_json, thousands};
use crate::config::Config;
use crate::segment::eval::ClientError;
use crate::segment::fields::Fields;
use crate::segment::rule::resolve;
use crate::segment::{engine::engine, evaluate, rule_tests, snapshot, Rule, Today};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct SegmentArgs {
    /// The rule: a name under rules/ (e.g. bulletin_audience) or a path
    pub rule: String,
    /// A context value the rule reads as ctx.KEY (repeatable), e.g. --context stock=600519
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_context)]
    pub context: Vec<(String, String)>,
    /// Evaluate as if today were this date (YYYY-MM-DD), to reproduce a selection
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub as_of: Option<NaiveDate>,
    /// How many matching clients to list
    #[arg(long, default_value_t = 10)]
    pub sample: usize,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Run the example clients in RULE.test.toml beside the rule and show which pass
    Test {
        /// The rule: a name under rules/ or a path
        rule: String,
        /// Print the results as JSON
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn parse_context(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))?;
    if k.trim().is_empty() {
        return Err(format!("'{s}' has no key"));
    }
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

pub(crate) fn parse_date(s: &str) -> Result<NaiveDate, String> {
    crate::time::parse_date(s).map_err(|e| e.0)
}

#[derive(Serialize)]
struct SampleClient {
    id: String,
    name: String,
    branch: Option<String>,
    risk_level: String,
}

#[derive(Serialize)]
struct SegmentReport {
    rule: String,
    matched: usize,
    total: usize,
    errors: usize,
    sample: Vec<SampleClient>,
    error_details: Vec<ClientError>,
    elapsed_ms: u64,
    /// Whether the clients came from the snapshot or the store.
    source: snapshot::Source,
    load_ms: u64,
    eval_ms: u64,
}

/// A compiled rule and what it runs with.
struct Prepared {
    engine: Engine,
    rule: Rule,
    today: Today,
    ctx: Map,
}

fn prepare(args: &SegmentArgs, config: &Config) -> Result<Prepared> {
    let today = Today {
        date: args.as_of.unwrap_or_else(|| config.firm_time().today()),
        assessment_valid_days: config.risk_assessment_valid_days,
    };
    let ctx: Map = args
        .context
        .iter()
        .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
        .collect();
    let keys: HashSet<String> = args.context.iter().map(|(k, _)| k.clone()).collect();
    let engine = engine(today);
    let path = resolve(&args.rule, &config.base_dir.join("rules"));
    let rule = Rule::load(&path, &engine, &keys).map_err(|e| anyhow::anyhow!(e.render()))?;
    Ok(Prepared {
        engine,
        rule,
        today,
        ctx,
    })
}

/// Compiles the rule first, so that a wrong rule touches no database.
pub async fn segment(args: SegmentArgs, config: &Config) -> Result<ExitCode> {
    let started = Instant::now();
    let mut prepared = prepare(&args, config)?;
    let store = super::open_store(config).await?;
    if crate::segment::fields::calls(&prepared.rule.ast, "rsvp") {
        let answers = crate::segment::engine::rsvps(&*store).await?;
        prepared.engine = crate::segment::engine::engine_with(prepared.today, answers.into());
    }
    let result = select(&args, &prepared, &*store, config, started).await;
    store.close().await;
    result
}

/// The clients with the parts `rule` reads, from the snapshot when it is
/// current.
async fn population(
    store: &dyn Store,
    config: &Config,
    rule: &Rule,
) -> Result<(crate::segment::Population, snapshot::Source)> {
    let file = snapshot::path(&config.cache_dir(), &config.database_url);
    snapshot::population(store, config.timezone, &file, Fields::read_by(&rule.ast))
        .await
        .context("cannot read the clients")
}

/// Pure evaluation, timed: what `herald bench eval` reports.
#[derive(Serialize)]
struct EvalFigures {
    rule: String,
    clients: usize,
    matched: usize,
    threads: usize,
    /// Whether the rule ran as native code rather than in Rhai.
    native: bool,
    round_ms: Vec<f64>,
    best_clients_per_second: f64,
    median_clients_per_second: f64,
}

/// `herald bench eval`: the rule evaluated over every client `rounds`
/// times, from the population already in memory (loading is not timed).
pub async fn eval_bench(args: SegmentArgs, rounds: usize, config: &Config) -> Result<ExitCode> {
    let p = prepare(&args, config)?;
    let store = super::open_store(config).await?;
    let loaded = population(&*store, config, &p.rule).await;
    store.close().await;
    let (population, _) = loaded?;
    let mut round_ms = Vec::new();
    let mut matched = 0;
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        let outcome = evaluate(&p.engine, &p.rule, &p.ctx, p.today, &population.clients)?;
        round_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        matched = outcome.matched.len();
    }
    let rate = |ms: f64| population.clients.len() as f64 / (ms / 1000.0);
    let mut sorted = round_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let figures = EvalFigures {
        rule: p.rule.path.display().to_string(),
        clients: population.clients.len(),
        matched,
        threads: rayon::current_num_threads(),
        native: crate::segment::native::Native::compile(&p.rule, &p.ctx, p.today).is_some(),
        best_clients_per_second: rate(sorted[0]),
        median_clients_per_second: rate(sorted[sorted.len() / 2]),
        round_ms,
    };
    if args.json {
        print_json(&figures)?;
    } else {
        say!(
            "{} ({}): {} of {} clients, {} rounds on {} threads: best {:.0} clients/s, median {:.0}",
            figures.rule,
            if figures.native { "native" } else { "Rhai" },
            thousands(figures.matched as u64),
            thousands(figures.clients as u64),
            figures.round_ms.len(),
            figures.threads,
            figures.best_clients_per_second,
            figures.median_clients_per_second
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn select(
    args: &SegmentArgs,
    p: &Prepared,
    store: &dyn Store,
    config: &Config,
    started: Instant,
) -> Result<ExitCode> {
    let (population, source) = population(store, config, &p.rule).await?;
    let loaded = Instant::now();
    let outcome = evaluate(&p.engine, &p.rule, &p.ctx, p.today, &population.clients)?;
    let report = SegmentReport {
        rule: p.rule.path.display().to_string(),
        matched: outcome.matched.len(),
        total: outcome.total,
        errors: outcome.error_count,
        sample: sample(store, &population, &outcome.matched, args.sample).await?,
        error_details: outcome.errors,
        elapsed_ms: started.elapsed().as_millis() as u64,
        source,
        load_ms: (loaded - started).as_millis() as u64,
        eval_ms: loaded.elapsed().as_millis() as u64,
    };
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The first `n` matches, with the details people recognise them by, read
/// from the store (the population holds only what the rule needed).
async fn sample(
    store: &dyn Store,
    population: &crate::segment::Population,
    matched: &[usize],
    n: usize,
) -> Result<Vec<SampleClient>> {
    let mut out = Vec::new();
    for &i in matched.iter().take(n) {
        let id = crate::client::types::ClientId::parse(population.clients[i].id())?;
        if let Some(c) = store.client(&id).await? {
            out.push(SampleClient {
                id: id.to_string(),
                name: c.client.name,
                branch: c.client.branch,
                risk_level: c.client.risk_level.map_or(String::new(), |l| l.to_string()),
            });
        }
    }
    Ok(out)
}

fn print_report(r: &SegmentReport) {
    say!(
        "{}: {} of {} clients match ({:.1} %), {} errors, {:.2} s (reading clients from the {} {:.2} s, evaluating {:.2} s)",
        r.rule,
        thousands(r.matched as u64),
        thousands(r.total as u64),
        if r.total == 0 { 0.0 } else { r.matched as f64 * 100.0 / r.total as f64 },
        r.errors,
        r.elapsed_ms as f64 / 1000.0,
        match r.source {
            snapshot::Source::Snapshot => "snapshot",
            snapshot::Source::Store => "database",
        },
        r.load_ms as f64 / 1000.0,
        r.eval_ms as f64 / 1000.0,
    );
    for s in &r.sample {
        say!(
            "  {}  {}  {}  {}",
            s.id,
            s.name,
            s.branch.as_deref().unwrap_or("-"),
            s.risk_level
        );
    }
    for e in &r.error_details {
        say!("  error: client {}: {}", e.client, e.message);
    }
}

pub async fn rule(cmd: RuleCommand, config: &Config) -> Result<ExitCode> {
    let RuleCommand::Test { rule, json } = cmd;
    let path: PathBuf = resolve(&rule, &config.base_dir.join("rules"));
    let results = rule_tests::run(
        &path,
        config.timezone,
        config.firm_time().today(),
        config.risk_assessment_valid_days,
    )
    .map_err(|e| anyhow::anyhow!(e.to_string()))?;
    let failed = results.iter().filter(|r| !r.passed()).count();
    if json {
        print_json(&results)?;
    } else {
        for r in &results {
            let status = if r.passed() { "ok  " } else { "FAIL" };
            let detail = match &r.got {
                Ok(g) if *g != r.expected => format!(" (expected {}, got {g})", r.expected),
                Ok(_) => String::new(),
                Err(e) => format!(" (error: {e})"),
            };
            say!("{status} {}{detail}", r.name);
        }
        say!("{} passed, {} failed", results.len() - failed, failed);
    }
    if failed > 0 {
        anyhow::bail!(
            "{}: {failed} of {} cases failed",
            rule_tests::tests_path(&path).display(),
            results.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
