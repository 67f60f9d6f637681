//! `herald serve`: the long-running process. It plans scheduled runs (the
//! scheduler role, led by one instance at a time), sends what is due,
//! deferred messages included (the dispatcher role), reloads the campaign
//! files when they change or on SIGHUP, and answers operators on the admin
//! listener. Several instances may share one PostgreSQL database.

pub mod admin;
pub mod files;
pub mod quota;
pub mod scheduler;
pub mod webhooks;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use tokio::sync::RwLock;

use self::admin::AdminState;
use self::files::FileSet;
use self::scheduler::Scheduler;
use crate::channel::providers::Providers;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::run::dispatch::Dispatcher;
use crate::run::process::{stopping, SendLock};
use crate::store::fleet::Instance;
use crate::store::{Backend, Store};

/// The lease the leading scheduler holds.
pub const SCHEDULER_LEASE: &str = "scheduler";
/// How long a scheduler's lease lasts without renewal: how soon another
/// instance takes over from one that died.
const LEASE_SECS: i64 = 15;
/// How often each loop looks again.
const TICK: Duration = Duration::from_secs(1);
const FILE_CHECK: Duration = Duration::from_secs(2);
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How often a dispatcher on PostgreSQL recovers dead instances' claims.
const RECOVER_EVERY: Duration = Duration::from_secs(15);

/// What an instance does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub scheduler: bool,
    pub dispatcher: bool,
    pub tracking: bool,
}

impl Roles {
    /// Everything this configuration can run: the tracking server only
    /// once `[tracking]` is configured.
    pub fn all(config: &Config) -> Self {
        Self {
            scheduler: true,
            dispatcher: true,
            tracking: config.tracking.is_some(),
        }
    }
}

impl FromStr for Roles {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut roles = Roles {
            scheduler: false,
            dispatcher: false,
            tracking: false,
        };
        for r in s.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            match r {
                "scheduler" => roles.scheduler = true,
                "dispatcher" => roles.dispatcher = true,
                "tracking" => roles.tracking = true,
                other => {
                    return Err(format!(
                        "'{other}' is not a role (scheduler, dispatcher, tracking)"
                    ))
                }
            }
        }
        if !roles.scheduler && !roles.dispatcher && !roles.tracking {
            return Err("name at least one role: scheduler, dispatcher, tracking".into());
        }
        Ok(roles)
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (self.scheduler, "scheduler"),
            (self.dispatcher, "dispatcher"),
            (self.tracking, "tracking"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        f.write_str(&names.join(","))
    }
}

/// Everything the loops share.
struct Shared {
    store: Arc<dyn Store>,
    config: Config,
    metrics: Arc<Metrics>,
    files: RwLock<Arc<FileSet>>,
    admin: Arc<AdminState>,
    stop: Arc<AtomicBool>,
    id: String,
}

/// Runs until SIGTERM or Ctrl-C, then stops claiming, lets what is in
/// flight finish, gives back unstarted claims and the scheduler lease.
pub async fn serve(config: Config, store: Arc<dyn Store>, roles: Roles) -> Result<()> {
    let tracking = match (&config.tracking, roles.tracking) {
        (Some(t), true) => {
            let listener = tokio::net::TcpListener::bind(t.listen)
                .await
                .with_context(|| format!("cannot listen on {} ([tracking] listen)", t.listen))?;
            let state = crate::tracking::server::TrackingState::new(store.clone(), &config)?;
            Some((listener, Arc::new(state)))
        }
        (None, true) => anyhow::bail!(
            "the tracking role needs [tracking] base_url and secret in {}",
            config.source
        ),
        (_, false) => None,
    };
    let today = config.firm_time().today();
    let files = FileSet::load(&config, today).await.map_err(|errors| {
        anyhow::anyhow!(
            "the campaign files are invalid; nothing was started:\n  {}",
            errors.join("\n  ")
        )
    })?;
    // One sender per SQLite database, for the life of the process.
    let _lock = match (store.backend(), roles.dispatcher) {
        (Backend::Sqlite, true) => Some(SendLock::take(&config)?),
        _ => None,
    };
    let metrics = Arc::new(Metrics::new());
    let admin = Arc::new(AdminState {
        store: store.clone(),
        metrics: metrics.clone(),
        scheduler_seen: Default::default(),
        runs_scheduler: roles.scheduler,
    });
    let listener = tokio::net::TcpListener::bind(config.serve.admin_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} ([serve] admin_listen)",
                config.serve.admin_listen
            )
        })?;
    let started_at = Utc::now();
    let id = format!(
        "{}:{}:{}",
        crate::run::dispatch::hostname(),
        std::process::id(),
        started_at.timestamp_millis()
    );
    let shared = Arc::new(Shared {
        store,
        config,
        metrics,
        files: RwLock::new(Arc::new(files)),
        admin: admin.clone(),
        stop: Arc::new(AtomicBool::new(false)),
        id,
    });
    tracing::info!(
        instance = %shared.id,
        roles = %roles,
        admin = %shared.config.serve.admin_listen,
        campaigns = shared.files.read().await.campaigns.len(),
        "herald serve started"
    );
    let server = tokio::spawn({
        let stop = shared.stop.clone();
        async move {
            axum::serve(listener, admin::router(admin))
                .with_graceful_shutdown(async move {
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(TICK).await;
                    }
                })
                .await
        }
    });
    let tracking_server = tracking.map(|(listener, state)| {
        tracing::info!(listen = %shared.config.tracking.as_ref().map(|t| t.listen.to_string()).unwrap_or_default(), "tracking server started");
        let stop = shared.stop.clone();
        tokio::spawn(async move {
            // Requests in flight when SIGTERM comes are answered (and their
            // events stored) before it closes.
            axum::serve(listener, crate::tracking::server::router(state))
                .with_graceful_shutdown(async move {
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
                .await
        })
    });
    let watcher = tokio::spawn(watch_files(shared.clone()));
    let beat = tokio::spawn(heartbeat(shared.clone(), roles, started_at));
    let scheduling = roles
        .scheduler
        .then(|| tokio::spawn(schedule(shared.clone())));
    let sending = roles
        .dispatcher
        .then(|| tokio::spawn(dispatch(shared.clone())));
    // Webhooks go out from dispatching instances, one instance per webhook.
    let hooks: Vec<_> = if roles.dispatcher {
        shared
            .config
            .webhooks
            .iter()
            .map(|h| tokio::spawn(webhooks::run(shared.clone(), h.clone())))
            .collect()
    } else {
        Vec::new()
    };

    stopping().await;
    tracing::info!("stopping: no new claims; finishing what is in flight");
    shared.stop.store(true, Ordering::Relaxed);
    let mut result = Ok(());
    for task in [scheduling, sending].into_iter().flatten() {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(e) => result = Err(anyhow::anyhow!("a task of herald serve failed: {e}")),
        }
    }
    for hook in hooks {
        let _ = hook.await;
    }
    watcher.abort();
    beat.abort();
    let _ = server.await;
    if let Some(t) = tracking_server {
        let _ = t.await;
    }
    tracing::info!("herald serve stopped");
    result
}

/// The scheduler role: each second, lead if no one else does, and plan
/// what is due.
async fn schedule(shared: Arc<Shared>) -> Result<()> {
    let mut scheduler = Scheduler::new(
        shared.store.clone(),
        shared.config.clone(),
        shared.metrics.clone(),
    );
    let mut leading = false;
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Utc::now();
        let lease_until = now + chrono::Duration::seconds(LEASE_SECS);
        match shared
            .store
            .take_lease(SCHEDULER_LEASE, &shared.id, now, lease_until)
            .await
        {
            Ok(lead) => {
                if lead != leading {
                    tracing::info!(instance = %shared.id, leading = lead, "scheduler leadership changed");
                }
                leading = lead;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the scheduler lease");
                leading = false;
            }
        }
        shared.metrics.leading(leading);
        shared
            .admin
            .scheduler_seen
            .store(now.timestamp(), Ordering::Relaxed);
        if leading {
            let files = shared.files.read().await.clone();
            scheduler.tick(&files, now).await;
        }
        sleep_to_next_second().await;
    }
    if leading {
        shared
            .store
            .release_lease(SCHEDULER_LEASE, &shared.id)
            .await?;
    }
    Ok(())
}

/// Sleeps until just after the next whole second, so that a fire time on
/// the second is acted on within about a second of it.
async fn sleep_to_next_second() {
    let ms = Utc::now().timestamp_subsec_millis().min(999);
    tokio::time::sleep(Duration::from_millis(u64::from(1000 - ms) + 5).min(TICK)).await;
}

/// The dispatcher role: sends whatever is due, of every run, until told to
/// stop; deferred deliveries are claimed when their time comes.
async fn dispatch(shared: Arc<Shared>) -> Result<()> {
    let providers = Providers::from_config(&shared.config).map_err(anyhow::Error::msg)?;
    let postgres = shared.store.backend() == Backend::Postgres;
    if postgres {
        // The relay and the gateway see the whole fleet as one sender.
        let quota: Arc<dyn crate::channel::limits::SharedRate> =
            Arc::new(quota::DatabaseQuota::new(shared.store.clone()));
        for g in providers.all() {
            g.share_rate(quota.clone());
        }
    }
    let mut dispatcher = Dispatcher::new(&*shared.store, &shared.config, providers)
        .with_metrics(shared.metrics.clone());
    // On SQLite this process holds the send lock: every claim is a dead one's.
    let (requeued, uncertain) = dispatcher.recover(!postgres).await?;
    if requeued + uncertain > 0 {
        tracing::warn!(
            requeued,
            uncertain,
            "recovered the deliveries of a sender that stopped"
        );
    }
    let mut recovered = std::time::Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        if postgres && recovered.elapsed() >= RECOVER_EVERY {
            match dispatcher.recover(false).await {
                Ok((0, 0)) => {}
                Ok((requeued, uncertain)) => {
                    tracing::warn!(
                        requeued,
                        uncertain,
                        "recovered the deliveries of an instance that stopped"
                    )
                }
                Err(e) => tracing::warn!(error = %e, "cannot recover lapsed claims"),
            }
            recovered = std::time::Instant::now();
        }
        match dispatcher.drain(None, &shared.stop, &mut |_| {}).await {
            Ok(p) if p.sent + p.failed + p.retrying + p.fell_through > 0 => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "dispatching failed; trying again shortly");
                tokio::time::sleep(TICK * 5).await;
            }
        }
        tokio::time::sleep(TICK).await;
    }
    Ok(())
}

/// Reloads the campaign files when they change or on SIGHUP: the new set
/// replaces the old only when every file in it is valid.
async fn watch_files(shared: Arc<Shared>) {
    let mut hup = hangup();
    // The stamp last looked at, valid or not: broken files are reported
    // once, not every few seconds.
    let mut seen = shared.files.read().await.stamp;
    loop {
        let forced = tokio::select! {
            _ = tokio::time::sleep(FILE_CHECK) => false,
            _ = hup.recv() => true,
        };
        let stamp = files::stamp(&shared.config.base_dir);
        if !forced && stamp == seen {
            continue;
        }
        seen = stamp;
        let today = shared.config.firm_time().today();
        match FileSet::load(&shared.config, today).await {
            Ok(set) => {
                tracing::info!(
                    campaigns = set.campaigns.len(),
                    forced,
                    "campaign files reloaded"
                );
                *shared.files.write().await = Arc::new(set);
            }
            Err(errors) => {
                shared.metrics.reload_failed();
                tracing::error!(
                    problems = %errors.join("; "),
                    "the changed files are invalid: keeping the previous set"
                );
            }
        }
    }
}

/// SIGHUP as a stream; never fires where there is no such signal.
fn hangup() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            while hup.recv().await.is_some() {
                if tx.send(()).await.is_err() {
                    break;
                }
            }
        }
    });
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// Tells the fleet this instance is alive, and how much it has sent.
async fn heartbeat(shared: Arc<Shared>, roles: Roles, started_at: chrono::DateTime<Utc>) {
    let (host, pid) = (
        crate::run::dispatch::hostname(),
        i64::from(std::process::id()),
    );
    loop {
        let me = Instance {
            id: shared.id.clone(),
            host: host.clone(),
            pid,
            roles: roles.to_string(),
            started_at,
            seen_at: Utc::now(),
            sent: shared.metrics.sent(),
        };
        if let Err(e) = shared.store.heartbeat(&me).await {
            tracing::warn!(error = %e, "cannot record the heartbeat");
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}
