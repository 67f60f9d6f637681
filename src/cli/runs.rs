//! `herald send`, `herald runs` and `herald run …`: launching runs and
//! working with them.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{bail, Context, Result};
use chrono::{NaiveDate, Utc};
use clap::{Args, Subcommand};
use serde_json::json;

use super::{print_json, thousands};
use crate::channel::providers::Providers;
use crate::config::Config;
use crate::run::dispatch::{Dispatcher, Progress};
use crate::run::files;
use crate::run::plan::{plan, PlanOptions, PlanReport};
use crate::run::process::{stopping, SendLock};
use crate::store::runs::{AuditEntry, DeliveryState, Run, RunState};
use crate::store::{Backend, Store};

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The campaign: a name under campaigns/ or a path
    pub campaign: String,
    /// Plan in a transaction that is rolled back, print the counts, send nothing
    #[arg(long)]
    pub dry_run: bool,
    /// The run's key [default: today's date]; the same key resumes the same run
    #[arg(long, value_name = "K", value_parser = super::non_blank)]
    pub key: Option<String>,
    /// Who launches the run (recorded in the audit log; may not approve it)
    #[arg(long, value_name = "NAME", value_parser = super::non_blank)]
    pub by: Option<String>,
    /// Select as if today were this date (YYYY-MM-DD)
    #[arg(long, value_name = "DATE", value_parser = super::segment::parse_date)]
    pub as_of: Option<NaiveDate>,
    /// Plan only; do not send now (`herald send` again, or `herald serve`, sends)
    #[arg(long)]
    pub plan_only: bool,
    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// How many of the latest runs
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// The runs and their counts as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// A run's state, counts per delivery state, channel and gate, and its uncertain deliveries
    Show {
        /// The run: its number, or CAMPAIGN/KEY
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop claiming the run's deliveries (what is in flight finishes)
    Pause {
        run: String,
        #[arg(long, value_name = "NAME", value_parser = super::non_blank)]
        by: String,
    },
    /// Let a paused run send again
    Resume {
        run: String,
        #[arg(long, value_name = "NAME", value_parser = super::non_blank)]
        by: String,
    },
    /// Approve a run that requires approval (an approver other than who launched it)
    Approve {
        run: String,
        #[arg(long, value_name = "NAME", value_parser = super::non_blank)]
        by: String,
    },
    /// Queue the run's uncertain deliveries again: they may already have been received
    RetryUncertain {
        run: String,
        #[arg(long, value_name = "NAME", value_parser = super::non_blank)]
        by: String,
    },
}

pub async fn send(args: SendArgs, store: &dyn Store, config: &Config) -> Result<ExitCode> {
    // A channel that cannot be built fails the launch before anything is
    // planned.
    let providers = Providers::from_config(config).map_err(anyhow::Error::msg)?;
    let now = Utc::now();
    let opts = PlanOptions {
        scheduled_at: None,
        key: args.key.clone(),
        by: args.by.clone(),
        dry_run: args.dry_run,
        now,
        today: args.as_of,
    };
    let report = plan(store, config, &args.campaign, &opts).await?;
    if args.dry_run {
        if args.json {
            print_json(&report)?;
        } else {
            print_plan(&report);
            say!("dry run: nothing was stored or sent");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        print_plan(&report);
    }
    let run = report.run.clone();
    if run.state == RunState::AwaitingApproval {
        let msg = format!(
            "run {} awaits approval: herald run approve {} --by NAME (one of [sending] approvers, not {})",
            run.id,
            run.id,
            run.launched_by.as_deref().unwrap_or("the launcher")
        );
        return finish(store, &run, args.json, Some(msg), None).await;
    }
    if args.plan_only || run.state != RunState::Sending {
        return finish(store, &run, args.json, None, None).await;
    }
    // On SQLite one process sends; if another holds the lock (herald serve,
    // or a second herald send) the run is left to it.
    let lock = match store.backend() {
        Backend::Sqlite => match SendLock::try_take(config)? {
            Some(lock) => Some(lock),
            None => {
                let msg = format!(
                    "run {} is planned; another herald is sending from this database (herald serve, or another herald send) and will send it",
                    run.id
                );
                return finish(store, &run, args.json, Some(msg), None).await;
            }
        },
        Backend::Postgres => None,
    };
    let (progress, stopped, seconds) =
        dispatch(store, config, providers, &run, lock, args.json).await?;
    // Stopped by hand, what is left is not waiting for its time: say nothing of it.
    let sent = (!stopped).then_some((progress, seconds));
    finish(store, &run, args.json, None, sent).await
}

/// Sends the run in the foreground until nothing is due or Ctrl-C: what
/// was done, whether it was stopped, and how long the sending took.
async fn dispatch(
    store: &dyn Store,
    config: &Config,
    providers: Providers,
    run: &Run,
    lock: Option<SendLock>,
    quiet: bool,
) -> Result<(Progress, bool, f64)> {
    let mut dispatcher = Dispatcher::new(store, config, providers);
    let (requeued, uncertain) = dispatcher.recover(lock.is_some()).await?;
    if uncertain > 0 && !quiet {
        eprintln!(
            "{uncertain} deliveries were in flight when a sender stopped: they are uncertain and will not be resent (herald run retry-uncertain RUN)"
        );
    }
    if requeued > 0 && !quiet {
        eprintln!("{requeued} claimed deliveries went back to the queue");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            stopping().await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let counts = store.run_counts(run.id).await?;
    let bar = progress_bar(counts.state(DeliveryState::Queued) as u64, quiet);
    let started = std::time::Instant::now();
    let send_by = run.send_by;
    let mut report = |p: &Progress| {
        let done = p.sent + p.failed + p.cancelled + p.expired;
        bar.set_position(done);
        let mut msg = format!(
            "sent {} · failed {} · deferred {}",
            thousands(p.sent),
            thousands(p.failed),
            thousands(p.deferred)
        );
        let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
        let left = bar.length().unwrap_or(0).saturating_sub(done);
        if let (Some(by), true) = (send_by, rate > 0.0) {
            let finish = Utc::now() + chrono::Duration::seconds((left as f64 / rate) as i64);
            if finish > by {
                msg.push_str(" · ⚠ projected finish passes send_by");
            }
        }
        bar.set_message(msg);
    };
    let result = dispatcher.drain(Some(run.id), &stop, &mut report).await;
    watcher.abort();
    bar.finish_and_clear();
    let stopped = stop.load(Ordering::Relaxed);
    if stopped && !quiet {
        eprintln!(
            "stopped: the run is resumable with herald send {} --key {}",
            run.campaign, run.run_key
        );
    }
    result.map(|p| (p, stopped, started.elapsed().as_secs_f64()))
}

fn progress_bar(len: u64, hidden: bool) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(StdDuration::from_millis(250));
    bar
}

async fn finish(
    store: &dyn Store,
    run: &Run,
    json: bool,
    note: Option<String>,
    sent: Option<(Progress, f64)>,
) -> Result<ExitCode> {
    let progress = sent.map(|(p, _)| p);
    let run = store.run(run.id).await?.unwrap_or_else(|| run.clone());
    let counts = store.run_counts(run.id).await?;
    if json {
        print_json(&json!({
            "run": run,
            "counts": counts,
            "progress": progress,
            "sending_seconds": sent.map(|(_, s)| s),
            "note": note
        }))?;
    } else {
        print_counts(&run, &counts);
        if let Some((p, seconds)) = sent.filter(|(p, _)| p.sent > 0) {
            say!(
                "sent {} in {seconds:.1} s: {} a second",
                thousands(p.sent),
                thousands((p.sent as f64 / seconds.max(0.001)) as u64)
            );
        }
        let waiting = counts.state(DeliveryState::Queued);
        let lapsed = run.state == RunState::AwaitingApproval && run.approved_by.is_some();
        if progress.is_some() && lapsed {
            say!(
                "run {} stopped sending: its files changed after it was approved, and it awaits approval again (herald run approve {} --by NAME names the files)",
                run.id,
                run.id
            );
        } else if progress.is_some() && waiting > 0 {
            say!(
                "{} wait for their time (quiet hours, release, retry): herald send {} --key {} sends them when due",
                thousands(waiting as u64),
                run.campaign,
                run.run_key
            );
        }
        if let Some(n) = note {
            say!("{n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_plan(r: &PlanReport) {
    if !r.new {
        say!(
            "run {} ({}/{}) exists: resuming it, not planning again",
            r.run.id,
            r.run.campaign,
            r.run.run_key
        );
        return;
    }
    say!(
        "planned {}/{}: {} selected, {} to send, {} suppressed{}",
        r.run.campaign,
        r.run.run_key,
        thousands(r.audience as u64),
        thousands(r.planned as u64),
        thousands(r.suppressed.values().sum::<usize>() as u64),
        if r.rule_errors > 0 {
            format!(", {} rule errors (excluded)", r.rule_errors)
        } else {
            String::new()
        }
    );
    for (channel, n) in &r.by_channel {
        row(&format!("by {channel}"), *n as i64);
    }
    if r.deferred > 0 {
        row("deferred (quiet hours, release)", r.deferred as i64);
    }
    for (reason, n) in &r.suppressed {
        row(&format!("suppressed: {reason}"), *n as i64);
    }
}

/// One count, aligned under the others.
fn row(label: &str, n: i64) {
    say!("  {label:<36} {:>10}", thousands(n.max(0) as u64));
}

fn print_counts(run: &Run, counts: &crate::store::runs::RunCounts) {
    say!(
        "run {} {}/{}: {} (launched by {}{})",
        run.id,
        run.campaign,
        run.run_key,
        run.state,
        run.launched_by.as_deref().unwrap_or("-"),
        run.approved_by
            .as_deref()
            .map_or(String::new(), |a| format!(", approved by {a}"))
    );
    for (state, n) in &counts.deliveries {
        row(state, *n);
    }
    if counts.state(DeliveryState::Uncertain) > 0 {
        say!(
            "  {} uncertain: they may have been received; herald run retry-uncertain {} --by NAME resends them",
            counts.state(DeliveryState::Uncertain),
            run.id
        );
    }
}

pub async fn runs(args: RunsArgs, store: &dyn Store) -> Result<ExitCode> {
    let runs = store.runs(args.limit).await?;
    let mut rows = Vec::new();
    for r in &runs {
        rows.push((r, store.run_counts(r.id).await?));
    }
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(r, c)| json!({ "run": r, "counts": c }))
            .collect();
        return print_json(&list).map(|()| ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        say!("no runs yet: herald send CAMPAIGN");
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "{:>5}  {:<20} {:<12} {:<18} {:>8} {:>8} {:>8} {:>8}",
        "run",
        "campaign",
        "key",
        "state",
        "sent",
        "queued",
        "failed",
        "uncert."
    );
    for (r, c) in rows {
        say!(
            "{:>5}  {:<20} {:<12} {:<18} {:>8} {:>8} {:>8} {:>8}",
            r.id,
            r.campaign,
            r.run_key,
            r.state.as_str(),
            c.state(DeliveryState::Sent),
            c.state(DeliveryState::Queued),
            c.state(DeliveryState::Failed),
            c.state(DeliveryState::Uncertain)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_command(cmd: RunCommand, store: &dyn Store, config: &Config) -> Result<ExitCode> {
    let audit = |by: &str, action: &str, run: &Run, details: serde_json::Value| AuditEntry {
        at: Utc::now(),
        actor: by.to_owned(),
        action: action.to_owned(),
        subject: format!("run {} ({}/{})", run.id, run.campaign, run.run_key),
        details,
    };
    match cmd {
        RunCommand::Show { run, json } => {
            let run = find(store, &run).await?;
            let counts = store.run_counts(run.id).await?;
            let uncertain = store
                .deliveries_in(run.id, DeliveryState::Uncertain, 1000)
                .await?;
            let failed = store
                .deliveries_in(run.id, DeliveryState::Failed, 20)
                .await?;
            if json {
                print_json(
                    &json!({ "run": run, "counts": counts, "uncertain": uncertain, "failed": failed }),
                )?;
            } else {
                print_counts(&run, &counts);
                for (reason, n) in &counts.suppressions {
                    row(&format!("suppressed: {reason}"), *n);
                }
                for (channel, n) in &counts.by_channel {
                    row(&format!("by {channel}"), *n);
                }
                for d in &uncertain {
                    say!(
                        "  uncertain: delivery {} client {} {}",
                        d.id,
                        d.client_id,
                        d.channel
                    );
                }
                for d in &failed {
                    say!(
                        "  failed: delivery {} client {} {}: {}",
                        d.id,
                        d.client_id,
                        d.channel,
                        d.error.as_deref().unwrap_or("")
                    );
                }
            }
        }
        RunCommand::Pause { run, by } => {
            let run = find(store, &run).await?;
            if !store
                .set_run_state(
                    run.id,
                    &[RunState::Sending],
                    RunState::Paused,
                    Some(&audit(&by, "pause", &run, json!({}))),
                )
                .await?
            {
                bail!("run {} is {}, not sending", run.id, run.state);
            }
            say!("run {} paused", run.id);
        }
        RunCommand::Resume { run, by } => {
            let run = find(store, &run).await?;
            if !store
                .set_run_state(
                    run.id,
                    &[RunState::Paused],
                    RunState::Sending,
                    Some(&audit(&by, "resume", &run, json!({}))),
                )
                .await?
            {
                bail!("run {} is {}, not paused", run.id, run.state);
            }
            say!(
                "run {} resumed: herald send {} --key {} sends it",
                run.id,
                run.campaign,
                run.run_key
            );
        }
        RunCommand::Approve { run, by } => {
            let run = find(store, &run).await?;
            approve(
                store,
                config,
                &run,
                &by,
                audit(
                    &by,
                    "approve",
                    &run,
                    json!({ "fingerprint": run.fingerprint }),
                ),
            )
            .await?;
            say!(
                "run {} approved by {by}: herald send {} --key {} sends it",
                run.id,
                run.campaign,
                run.run_key
            );
        }
        RunCommand::RetryUncertain { run, by } => {
            let run = find(store, &run).await?;
            let n = store
                .retry_uncertain(run.id, &audit(&by, "retry_uncertain", &run, json!({})))
                .await?;
            say!(
                "{n} uncertain deliveries queued again: herald send {} --key {} sends them",
                run.campaign,
                run.run_key
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An approval: by a listed approver who did not launch the run, of the
/// files the run was planned from, unchanged.
async fn approve(
    store: &dyn Store,
    config: &Config,
    run: &Run,
    by: &str,
    audit: AuditEntry,
) -> Result<()> {
    if !config.sending.approvers.iter().any(|a| a == by) {
        bail!(
            "{by} is not an approver ([sending] approvers in {}: {})",
            config.source,
            if config.sending.approvers.is_empty() {
                "none configured".to_owned()
            } else {
                config.sending.approvers.join(", ")
            }
        );
    }
    if run.launched_by.as_deref() == Some(by) {
        bail!(
            "{by} launched run {}: another approver must approve it",
            run.id
        );
    }
    let path = crate::run::plan::campaign_path(config, &run.campaign);
    let campaign = crate::campaign::Campaign::load(&path).map_err(super::problems_error)?;
    let planned: files::FileHashes =
        serde_json::from_str(&run.files).context("the run's file list")?;
    let now = files::hash_files(&files::campaign_files(&campaign, config), &config.base_dir);
    let changed = files::changed(&planned, &now);
    if !changed.is_empty() {
        bail!(
            "files changed since run {} was planned: {}; plan a new run (herald send {} --key NEW-KEY)",
            run.id,
            changed.join(", "),
            run.campaign
        );
    }
    if !store.approve_run(run.id, &run.fingerprint, &audit).await? {
        bail!("run {} is {}: nothing to approve", run.id, run.state);
    }
    Ok(())
}

/// A run by number or CAMPAIGN/KEY.
async fn find(store: &dyn Store, raw: &str) -> Result<Run> {
    let found = match raw.parse::<i64>() {
        Ok(id) => store.run(id).await?,
        Err(_) => match raw.split_once('/') {
            Some((campaign, key)) => store.run_by_key(campaign, key).await?,
            None => {
                bail!("'{raw}' is not a run (its number, or CAMPAIGN/KEY; herald runs lists them)")
            }
        },
    };
    found.with_context(|| format!("no run {raw} (herald runs lists them)"))
}
