//! `herald serve` and `herald status`: the long-running process, and what
//! it (and the rest of the fleet) is doing, for the people who run it.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;

use super::print_json;
use crate::campaign::{file, Campaign};
use crate::config::Config;
use crate::serve::{Roles, SCHEDULER_LEASE};
use crate::store::fleet::{Instance, QueueDepth};
use crate::store::runs::{Run, RunState};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// What this instance does, comma-separated: scheduler, dispatcher, tracking [default: all; tracking once [tracking] is configured]
    #[arg(long, value_name = "ROLES")]
    pub role: Option<Roles>,
    /// Log lines as JSON objects (or [serve] log_format = "json")
    #[arg(long)]
    pub log_json: bool,
    /// The admin listener for /healthz and /metrics [default: [serve] admin_listen, 127.0.0.1:9464]
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Where the tracking server listens [default: [tracking] listen, 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub tracking_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long)]
    json: bool,
}

pub async fn serve(args: ServeArgs, store: Arc<dyn Store>, mut config: Config) -> Result<ExitCode> {
    if let Some(addr) = args.admin_listen {
        config.serve.admin_listen = addr;
    }
    if let (Some(addr), Some(t)) = (args.tracking_listen, config.tracking.as_mut()) {
        t.listen = addr;
    }
    let roles = args.role.unwrap_or_else(|| Roles::all(&config));
    crate::serve::serve(config, store, roles).await?;
    Ok(ExitCode::SUCCESS)
}

/// An instance is alive if it reported within this many seconds.
const ALIVE_SECS: i64 = 20;
/// Runs shown: the latest this many, of which those still open.
const RECENT_RUNS: u32 = 200;

#[derive(Debug, Serialize)]
struct Status {
    now: DateTime<Utc>,
    scheduled: Vec<Next>,
    running: Vec<RunStatus>,
    queue: Vec<QueueDepth>,
    instances: Vec<InstanceStatus>,
    scheduler_leader: Option<String>,
}

#[derive(Debug, Serialize)]
struct Next {
    campaign: String,
    trigger: String,
    next: Option<DateTime<Utc>>,
    /// Why the next time is unknown (an uncovered calendar date).
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

#[derive(Debug, Serialize)]
struct RunStatus {
    #[serde(flatten)]
    run: Run,
    deliveries: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize)]
struct InstanceStatus {
    #[serde(flatten)]
    instance: Instance,
    alive: bool,
}

pub async fn status(args: StatusArgs, store: &dyn Store, config: &Config) -> Result<ExitCode> {
    let now = Utc::now();
    let status = Status {
        now,
        scheduled: scheduled(store, config, now).await?,
        running: running(store).await?,
        queue: store.queue_depth().await?,
        instances: store
            .instances()
            .await?
            .into_iter()
            .map(|i| InstanceStatus {
                alive: (now - i.seen_at).num_seconds() <= ALIVE_SECS,
                instance: i,
            })
            .collect(),
        scheduler_leader: store.lease_holder(SCHEDULER_LEASE, now).await?,
    };
    if args.json {
        print_json(&status)?;
    } else {
        print_status(&status, config);
    }
    Ok(ExitCode::SUCCESS)
}

async fn scheduled(store: &dyn Store, config: &Config, now: DateTime<Utc>) -> Result<Vec<Next>> {
    let calendar = config.calendar()?;
    let mut out = Vec::new();
    for path in file::list(&config.base_dir.join("campaigns")).unwrap_or_default() {
        // An invalid file is `herald campaigns validate`'s to report.
        let Ok(c) = Campaign::load(&path) else {
            continue;
        };
        if let Some(seminar) = c.seminar_path() {
            for n in seminar_times(&c.name, &seminar, &c.rules_dir(), now) {
                // A wave launched by hand already will not fire again.
                if store.run_by_key(&c.name, &n.key).await?.is_none() {
                    out.push(n.next);
                }
            }
            continue;
        }
        let trigger = &c.rules.trigger;
        if *trigger == crate::schedule::Trigger::Manual {
            continue;
        }
        let (next, problem) = match trigger.next(now, &calendar) {
            Ok(n) => (n, None),
            Err(e) => (None, Some(e.to_string())),
        };
        out.push(Next {
            campaign: c.name,
            trigger: trigger.describe(),
            next,
            problem,
        });
    }
    out.sort_by_key(|n| (n.next.is_none(), n.next));
    Ok(out)
}

/// A seminar time still to come, with the key of the run it makes.
struct SeminarTime {
    key: String,
    next: Next,
}

/// A seminar campaign's waves and reminders still to come.
fn seminar_times(
    campaign: &str,
    path: &std::path::Path,
    rules: &std::path::Path,
    now: DateTime<Utc>,
) -> Vec<SeminarTime> {
    let Ok(s) = crate::seminar::Seminar::load(path, rules) else {
        return Vec::new();
    };
    if s.cancelled {
        return Vec::new();
    }
    let waves = s.waves.iter().map(|w| {
        let what = format!("wave {} of seminar {}", w.name, s.name);
        (w.send_at, w.name.clone(), what)
    });
    let reminders = s.reminders.iter().map(|r| {
        let what = format!("reminder {} of seminar {}", r.name, s.name);
        (r.send_at, format!("notice:reminder:{}", r.name), what)
    });
    waves
        .chain(reminders)
        .filter(|(at, _, _)| *at > now)
        .map(|(at, key, trigger)| SeminarTime {
            key,
            next: Next {
                campaign: campaign.to_owned(),
                trigger,
                next: Some(at),
                problem: None,
            },
        })
        .collect()
}

async fn running(store: &dyn Store) -> Result<Vec<RunStatus>> {
    let open = [
        RunState::Sending,
        RunState::AwaitingApproval,
        RunState::Paused,
    ];
    let mut out = Vec::new();
    for run in store.runs(RECENT_RUNS).await? {
        if open.contains(&run.state) {
            let counts = store.run_counts(run.id).await?;
            out.push(RunStatus {
                run,
                deliveries: counts.deliveries,
            });
        }
    }
    Ok(out)
}

fn print_status(s: &Status, config: &Config) {
    let local = |t: DateTime<Utc>| {
        t.with_timezone(&config.timezone)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    say!("scheduled:");
    if s.scheduled.is_empty() {
        say!("  (no campaign has a schedule)");
    }
    for n in &s.scheduled {
        match (&n.next, &n.problem) {
            (Some(t), _) => say!("  {:<24} next {}  ({})", n.campaign, local(*t), n.trigger),
            (None, Some(p)) => say!("  {:<24} ⚠ {p}", n.campaign),
            (None, None) => say!("  {:<24} does not fire again ({})", n.campaign, n.trigger),
        }
    }
    say!("running:");
    if s.running.is_empty() {
        say!("  (nothing)");
    }
    for r in &s.running {
        let counts: Vec<String> = r
            .deliveries
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        say!(
            "  run {} {} {} [{}]: {}",
            r.run.id,
            r.run.campaign,
            r.run.run_key,
            r.run.state.as_str(),
            counts.join(", ")
        );
    }
    say!("queue:");
    if s.queue.is_empty() {
        say!("  (empty)");
    }
    for q in &s.queue {
        say!(
            "  {:<6} {:<20} {:<10} {}",
            q.channel,
            q.kind,
            q.state,
            q.count
        );
    }
    say!("instances:");
    if s.instances.is_empty() {
        say!("  (no herald serve has run against this database)");
    }
    for i in &s.instances {
        let leader = if s.scheduler_leader.as_deref() == Some(i.instance.id.as_str()) {
            ", leads scheduling"
        } else {
            ""
        };
        say!(
            "  {} [{}{}] {}; last seen {}, sent {}",
            i.instance.id,
            i.instance.roles,
            leader,
            if i.alive { "alive" } else { "silent" },
            local(i.instance.seen_at),
            i.instance.sent
        );
    }
}
