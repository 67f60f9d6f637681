//! The dispatcher: claims queued deliveries under a lease, re-checks each
//! client right before sending, renders from the run's snapshot, sends
//! through the channel under its limits, and records the outcome.
//!
//! Exactly once: a chunk of deliveries is marked `sending` (committed)
//! before any of its messages leaves, and each send is journaled before
//! and after (`run::journal`), so that the outcomes can be recorded in
//! the background without the channel ever waiting for the database. A
//! crash leaves at most one send per slot started without an outcome:
//! those become `uncertain` and are never sent again without an operator;
//! the rest of what was marked goes back to the queue. No database
//! transaction is open while a message is on the network.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;

use super::files;
use super::journal::{self, Journal, Segment};
use crate::campaign::timing::QuietHours;
use crate::campaign::{Campaign, Prepared, Purpose};
use crate::channel::limits::Limits;
use crate::channel::providers::Providers;
use crate::channel::{Channel, Failure, Message, Outgoing};
use crate::client::consent::ConsentScope;
use crate::client::StoredClient;
use crate::config::Config;
use crate::event::{EventKind, NewEvent};
use crate::metrics::Metrics;
use crate::store::runs::{
    ArchiveDictionary, ArchiveEntry, AuditEntry, Claimed, DeliveryState, DeliveryUpdate, DncKind,
    Run, RunState, Settled,
};
use crate::store::Store;

/// How many times a delivery may come back to the queue after its channel
/// kept failing transiently, before it is failed.
const MAX_ROUNDS: i32 = 3;

/// How long a transiently failed delivery waits before its next round.
const ROUND_PAUSE_SECS: i64 = 300;

/// How often a draining dispatcher expires stale deliveries and closes
/// finished runs.
const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Dispatchers made by this process so far.
static DISPATCHERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What one pass of the dispatcher did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Progress {
    pub sent: u64,
    pub failed: u64,
    pub retrying: u64,
    pub cancelled: u64,
    pub expired: u64,
    pub deferred: u64,
    pub fell_through: u64,
}

impl Progress {
    fn add(&mut self, o: &Progress) {
        self.sent += o.sent;
        self.failed += o.failed;
        self.retrying += o.retrying;
        self.cancelled += o.cancelled;
        self.expired += o.expired;
        self.deferred += o.deferred;
        self.fell_through += o.fell_through;
    }
}

/// One dispatcher: its identity (the claims' owner), its channels, and
/// the runs it has prepared.
pub struct Dispatcher<'a> {
    store: &'a dyn Store,
    config: &'a Config,
    providers: Arc<Providers>,
    owner: String,
    /// Sends in flight at once (the slots): the most a crash can leave
    /// uncertain.
    window: usize,
    batch: u32,
    /// Deliveries marked `sending` at once.
    chunk: usize,
    runs: HashMap<i64, Arc<PreparedRun>>,
    metrics: Option<Arc<Metrics>>,
}

/// A run ready to render: its campaign with the content snapshot.
struct PreparedRun {
    run: Run,
    prepared: Prepared,
    /// Why the run may not send now (files changed after approval).
    blocked: Option<String>,
    /// What its archive records are compressed against (stored).
    dictionary: ArchiveDictionary,
}

impl<'a> Dispatcher<'a> {
    pub fn new(store: &'a dyn Store, config: &'a Config, providers: Providers) -> Self {
        let narrowest = |limit: fn(&Limits) -> u32| {
            providers
                .all()
                .map(|g| limit(g.limits()) as usize)
                .min()
                .unwrap_or(1)
        };
        // The narrowest channel's concurrency: a window may be all of one
        // channel, and no more of it may be in flight than it allows.
        let window = narrowest(|l| l.concurrency).max(1);
        let rate = narrowest(|l| l.rate_per_second);
        Self {
            store,
            config,
            providers: Arc::new(providers),
            // Unique per dispatcher, even for two made in one millisecond
            // by one process: another's `release_claims` must never free
            // this one's claims.
            owner: format!(
                "{}:{}:{}:{}",
                hostname(),
                std::process::id(),
                Utc::now().timestamp_millis(),
                DISPATCHERS.fetch_add(1, Ordering::Relaxed)
            ),
            window,
            batch: (window * 32).clamp(64, 1000) as u32,
            chunk: mark_chunk(window, rate, config.sending.lease_secs),
            runs: HashMap::new(),
            metrics: None,
        }
    }

    /// Counts every outcome (and the channels' latency) into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// This dispatcher's identity, the owner of its claims.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn count(&self, outcome: &str, c: &Claimed, run: &PreparedRun) {
        if let Some(m) = &self.metrics {
            m.message(outcome, c.channel, &run.run.kind);
        }
    }

    pub fn window(&self) -> usize {
        self.window
    }

    /// Sends what is due (of `run` only, if given) until nothing is, or
    /// `stop` is set; `report` sees the progress as it goes.
    ///
    /// A pipeline: one side claims, checks and renders the next batch
    /// while `window` slots send the one before, so that the channel never
    /// waits for the database or the templates.
    pub async fn drain(
        &mut self,
        run: Option<i64>,
        stop: &Arc<AtomicBool>,
        report: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<Progress> {
        // Runs are prepared afresh each pass: their files may have changed.
        self.runs.clear();
        // What an earlier pass that failed, or a dead dispatcher, left in
        // flight is settled before anything new is marked.
        self.settle_journals().await?;
        let (store, owner, window, chunk) =
            (self.store, self.owner.clone(), self.window, self.chunk);
        let lease = Duration::seconds(self.config.sending.lease_secs as i64);
        let journal_dir = self.config.journal_dir();
        let (ready_tx, ready_rx) = tokio::sync::mpsc::channel(self.batch as usize);
        let (marked_tx, marked_rx) = tokio::sync::mpsc::channel(chunk);
        let (outcomes_tx, outcomes_rx) = tokio::sync::mpsc::channel(OUTCOMES_QUEUED);
        let progress = Arc::new(Tallies::default());
        let queue = Arc::new(tokio::sync::Mutex::new(marked_rx));
        // Each slot is a task of its own, so that slots send (and the
        // adapters encode) on every core.
        let slots: Vec<_> = (0..window)
            .map(|_| {
                tokio::spawn(slot(
                    self.providers.clone(),
                    queue.clone(),
                    outcomes_tx.clone(),
                    (progress.clone(), self.metrics.clone()),
                    stop.clone(),
                ))
            })
            .collect();
        // The slots hold the only other senders and the queue: the writer
        // ends when the last slot does, and the marker and the feed stop
        // when no slot is left to take what they pass on.
        drop((outcomes_tx, queue));
        let feed = self.feed(run, stop, ready_tx, &progress);
        let marker = mark_chunks(
            store,
            (&owner, &journal_dir),
            (lease, chunk),
            ready_rx,
            marked_tx,
            stop,
        );
        let writer = group_writer(store, outcomes_rx);
        let slots = futures::future::join_all(slots);
        let work = async { tokio::join!(feed, marker, writer, slots) };
        // The progress is reported a few times a second, not per message:
        // a report (a progress bar's redraw) costs more than a count.
        let (fed, marked, written, slots) = tokio::select! {
            done = work => done,
            never = report_every(&progress, report) => match never {},
        };
        report(&progress.now());
        written?;
        for slot in slots {
            slot.context("a sending slot stopped")??;
        }
        fed?;
        let journal = marked?;
        // Every send started has its outcome recorded: what is still
        // marked was never started, and the journal has nothing to say.
        self.store.release_claims(&self.owner).await?;
        if let Some(journal) = journal {
            journal.close().context("cannot remove the send journal")?;
        }
        self.store.finish_runs(Utc::now()).await?;
        Ok(progress.now())
    }

    /// The pipeline's first half: claims, checks and renders batch after
    /// batch into `ready` until nothing is due, `stop` is set or the slots
    /// are gone. What it refuses or defers is recorded here and counted.
    async fn feed(
        &mut self,
        run: Option<i64>,
        stop: &Arc<AtomicBool>,
        ready: tokio::sync::mpsc::Sender<Rendered>,
        progress: &Tallies,
    ) -> Result<()> {
        // Expiring and closing runs scan their deliveries: now and then,
        // not per batch. A claimed delivery past `send_by` expires anyway.
        let mut housekeeping = std::time::Instant::now() - HOUSEKEEPING_EVERY;
        while !stop.load(Ordering::Relaxed) {
            let now = Utc::now();
            if housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
                let expired = self.store.finish_runs(now).await?;
                progress.add(&Progress {
                    expired,
                    ..Progress::default()
                });
                housekeeping = std::time::Instant::now();
            }
            let lease = Duration::seconds(self.config.sending.lease_secs as i64);
            let claimed = self
                .store
                .claim(&self.owner, now, now + lease, self.batch, run)
                .await?;
            if claimed.is_empty() {
                break;
            }
            let (checked_progress, checked, ready_now) = self.check_batch(&claimed).await?;
            self.store.record_deliveries(&checked).await?;
            progress.add(&checked_progress);
            // Rendering is CPU work: off the runtime's threads, which run
            // the slots and the group writer. One thread, not rayon's pool:
            // it keeps up (a sixth of a core at 2,600 msg/s), and a pool's
            // workers spin for work between batches on the cores the slots
            // and the SMTP server need (a send was 8 % faster without).
            let rendered = tokio::task::spawn_blocking(move || {
                ready_now.into_iter().map(render).collect::<Vec<_>>()
            })
            .await
            .context("rendering stopped")?;
            for r in rendered {
                if ready.send(r).await.is_err() {
                    // The slots stopped; what they did not take is still
                    // claimed and goes back to the queue at the end.
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Housekeeping before sending: dead dispatchers' journals settled,
    /// then lapsed claims back to the queue and lapsed sends uncertain.
    /// `alone`: no other dispatcher can be running (SQLite, under the send
    /// lock), so every claim is a dead one's. Returns (requeued, uncertain).
    pub async fn recover(&self, alone: bool) -> Result<(u64, u64)> {
        let settled = self.settle_journals().await?;
        let (requeued, uncertain) = self.store.reclaim_lapsed(Utc::now(), alone).await?;
        Ok((requeued + settled.requeued, uncertain + settled.uncertain))
    }

    async fn settle_journals(&self) -> Result<Settled> {
        let settled = journal::settle_left_behind(self.store, &self.config.journal_dir())
            .await
            .context("cannot settle a stopped sender's journal")?;
        if settled != Settled::default() {
            tracing::warn!(
                recorded = settled.recorded,
                uncertain = settled.uncertain,
                requeued = settled.requeued,
                "settled the journal of a sender that stopped"
            );
        }
        Ok(settled)
    }

    /// What must not be sent now (expired, deferred, refused since
    /// planning, its run blocked), as updates; and what may, with its run
    /// and client.
    async fn check_batch(
        &mut self,
        batch: &[Claimed],
    ) -> Result<(Progress, Vec<DeliveryUpdate>, Vec<Ready>)> {
        let now = Utc::now();
        let mut progress = Progress::default();
        let mut updates = Vec::new();
        let ids: Vec<String> = batch.iter().map(|c| c.client_id.clone()).collect();
        let mut clients: HashMap<String, StoredClient> = self
            .store
            .clients_by_ids(&ids)
            .await?
            .into_iter()
            .map(|c| (c.client.id.to_string(), c))
            .collect();
        let checks = SendChecks::load(self.store, batch).await?;
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for c in batch {
            *uses.entry(c.client_id.as_str()).or_default() += 1;
        }
        let mut ready = Vec::new();
        for c in batch {
            let run = self.prepared_run(c.run_id).await?;
            if let Some(why) = &run.blocked {
                // The whole run waits for approval again; give it back.
                updates.push(requeue(c.id, now, why));
                continue;
            }
            if run.run.send_by.is_some_and(|by| by < now) {
                progress.expired += 1;
                self.count("expired", c, &run);
                let mut u = DeliveryUpdate::new(c.id, DeliveryState::Expired);
                u.error = Some("send_by passed".into());
                updates.push(u);
                continue;
            }
            // A batch may hold one client's messages of several runs (a
            // notice and a reminder): the last takes the record, the
            // others a copy.
            let left = uses.entry(c.client_id.as_str()).or_default();
            *left -= 1;
            let client = if *left == 0 {
                clients.remove(&c.client_id)
            } else {
                clients.get(&c.client_id).cloned()
            };
            let Some(client) = client else {
                progress.cancelled += 1;
                self.count("cancelled", c, &run);
                updates.push(cancel(c.id, "the client is no longer in the database"));
                continue;
            };
            if let Some(at) = self.quiet_until(&run, c.channel, now) {
                progress.deferred += 1;
                self.count("deferred", c, &run);
                let mut u = requeue(c.id, at, "quiet hours");
                u.error = None;
                updates.push(u);
                continue;
            }
            match checks.refusal(&run.run, c, &client) {
                Some(reason) => {
                    progress.cancelled += 1;
                    self.count("cancelled", c, &run);
                    updates.push(cancel(c.id, reason));
                }
                None => ready.push((c.clone(), run, client)),
            }
        }
        Ok((progress, updates, ready))
    }

    /// When an SMS of this run must wait for quiet hours to end.
    fn quiet_until(
        &self,
        run: &PreparedRun,
        channel: Channel,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let applies =
            run.run.purpose == Purpose::Marketing || self.config.sending.quiet_hours_for_service;
        if channel != Channel::Sms || !applies {
            return None;
        }
        // A campaign's quiet hours add to the firm's, never shorten them.
        let windows: Vec<QuietHours> = std::iter::once(self.config.sending.quiet_hours)
            .chain(run.prepared.campaign.rules.quiet_hours)
            .collect();
        let at = QuietHours::next_allowed_by_all(&windows, now, self.config.timezone);
        (at > now).then_some(at)
    }

    /// The run with its campaign prepared from the content snapshot, once
    /// per dispatcher.
    async fn prepared_run(&mut self, id: i64) -> Result<Arc<PreparedRun>> {
        if let Some(r) = self.runs.get(&id) {
            return Ok(r.clone());
        }
        let run = self
            .store
            .run(id)
            .await?
            .with_context(|| format!("run {id} is not in the database"))?;
        let path = super::plan::campaign_path(self.config, &run.campaign);
        let mut campaign = Campaign::load(&path).map_err(|ps| {
            anyhow::anyhow!(ps
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"))
        })?;
        if run.kind == crate::seminar::notice::KIND {
            campaign = crate::seminar::notice::campaign(campaign);
        }
        let mut content: serde_json::Value =
            serde_json::from_str(&run.content).context("the run's content snapshot")?;
        if campaign.seminar_path().is_some() {
            self.seminar_now(&mut content).await;
        }
        let today = run
            .launched_at
            .with_timezone(&self.config.timezone)
            .date_naive();
        let blocked = self.approval_lapsed(&run, &campaign).await?;
        let prepared =
            Prepared::with_content(campaign, self.config, today, content).map_err(|ps| {
                anyhow::anyhow!(ps
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"))
            })?;
        let dictionary = ArchiveDictionary::new(dictionary_sample(&run, &prepared, today));
        self.store.save_archive_dictionary(&dictionary).await?;
        let prepared = Arc::new(PreparedRun {
            run,
            prepared,
            blocked,
            dictionary,
        });
        self.runs.insert(id, prepared.clone());
        Ok(prepared)
    }

    /// A seminar's invitations and notices show the seminar as it is when
    /// they are sent (its time, venue and seats left), not as it was when
    /// the run was planned.
    async fn seminar_now(&self, content: &mut serde_json::Value) {
        let Some(name) = content["name"].as_str() else {
            return;
        };
        if let Ok(Some(mut now)) = crate::seminar::notice::current(self.store, name).await {
            if let Some(notice) = content.get("notice") {
                now["notice"] = notice.clone();
            }
            *content = now;
        }
    }

    /// A run that was approved must send what was approved: if any file
    /// changed since, it goes back to awaiting approval.
    async fn approval_lapsed(&self, run: &Run, campaign: &Campaign) -> Result<Option<String>> {
        if run.approved_by.is_none() {
            return Ok(None);
        }
        let approved: files::FileHashes = serde_json::from_str(&run.files).unwrap_or_default();
        let now = files::hash_files(
            &files::campaign_files(campaign, self.config),
            &self.config.base_dir,
        );
        let changed = files::changed(&approved, &now);
        if changed.is_empty() {
            return Ok(None);
        }
        let why = format!(
            "changed after approval: {}; run `herald run approve {}` again",
            changed.join(", "),
            run.id
        );
        self.store
            .set_run_state(
                run.id,
                &[RunState::Sending],
                RunState::AwaitingApproval,
                Some(&AuditEntry {
                    at: Utc::now(),
                    actor: "herald".into(),
                    action: "approval_lapsed".into(),
                    subject: format!("run {}", run.id),
                    details: json!({ "changed": changed }),
                }),
            )
            .await?;
        Ok(Some(why))
    }
}

/// What a run's archive records are compressed against: its content, and
/// its message on each of its channels rendered for a sample client (the
/// message last, where zstd finds matches cheapest).
fn dictionary_sample(run: &Run, prepared: &Prepared, today: chrono::NaiveDate) -> Vec<u8> {
    use crate::client::synthetic::{self, SyntheticOptions};
    let mut sample = run.content.clone().into_bytes();
    // A few generated clients hold one with both addresses.
    let clients = synthetic::clients(&SyntheticOptions {
        clients: 20,
        seed: 1,
        history_days: 0,
        today,
    });
    let Some(client) = clients
        .iter()
        .find(|c| c.email.is_some() && c.phone.is_some())
    else {
        return sample;
    };
    sample.extend(serde_json::to_vec(client).unwrap_or_default());
    for &channel in &prepared.campaign.channels {
        if let Ok(o) = prepared.outgoing(client, 0, channel, None) {
            sample.extend(serde_json::to_vec(&o.message).unwrap_or_default());
        }
    }
    sample
}

/// A delivery that passed its checks, with its run and client.
type Ready = (Claimed, Arc<PreparedRun>, StoredClient);

/// A delivery with its message rendered, or why it could not be.
struct Rendered {
    claimed: Claimed,
    run: Arc<PreparedRun>,
    client: StoredClient,
    message: Result<Outgoing, String>,
}

fn render((claimed, run, client): Ready) -> Rendered {
    // A seminar notice tells where the client stood when they answered;
    // other messages' decisions are not read here.
    let rsvp = (run.run.kind == crate::seminar::notice::KIND)
        .then(|| serde_json::from_str::<serde_json::Value>(&claimed.decision).ok())
        .flatten()
        .and_then(|d| d.get(crate::message::data::keys::RSVP).cloned());
    let message = run
        .prepared
        .outgoing(&client.client, claimed.id, claimed.channel, rsvp.as_ref())
        .map_err(|e| format!("cannot render: {}", e.to_problem()));
    Rendered {
        claimed,
        run,
        client,
        message,
    }
}

/// How many deliveries to mark `sending` at once. Each mark is a commit,
/// which on PostgreSQL waits for the WAL's flush: marking up to 256 rather
/// than 64 made a PostgreSQL send 8 % faster. But the mark is what renews
/// a `sending` delivery's lease, and a dispatcher holds up to two chunks
/// unstarted: at the narrowest channel's `rate` both must leave well
/// within the lease, or another dispatcher takes the last ones for a dead
/// one's. (The journal, not the chunk, bounds what a crash leaves
/// uncertain.)
fn mark_chunk(window: usize, rate: usize, lease_secs: u64) -> usize {
    let within_lease = rate.saturating_mul(lease_secs as usize) / 4;
    (window * 32).clamp(16, 256).min(within_lease).max(1)
}

/// Outcomes waiting for the group writer, at most: slots wait beyond it.
const OUTCOMES_QUEUED: usize = 4096;

/// Outcomes recorded in one transaction, at most.
const OUTCOMES_PER_COMMIT: usize = 1024;

/// How often the group writer commits, at most. A commit has a cost of its
/// own (the pages every group touches, the WAL's frames, SQLite's page
/// cache swept at its end) that a group of one message pays in full.
const GROUP_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// Marked messages passed to the slots at once, at most: the marker
/// waits for room for this many, so the slots' queue never runs dry for
/// long.
const HANDOVER: usize = 32;

/// A rendered message, marked `sending`, with its chunk's journal.
type Marked = (Rendered, Arc<Segment>);

/// An outcome for the group writer, with the segment that journaled it.
type Outcome = (DeliveryUpdate, Arc<Segment>);

const JOURNAL_WRITE: &str = "cannot write the send journal";

/// Marks what the feed rendered `sending`, a chunk at a time, each with a
/// journal segment, and passes it to the slots. `(lease, chunk)`: the lease
/// the mark renews, and the most marked at once; the slots' queue holds one
/// more chunk, so a dispatcher never holds more than two chunks unstarted.
/// Returns the journal, opened (in `dir`, for `owner`) with the first chunk:
/// a pass with nothing to send writes no file.
async fn mark_chunks(
    store: &dyn Store,
    (owner, dir): (&str, &std::path::Path),
    (lease, chunk): (Duration, usize),
    mut ready: tokio::sync::mpsc::Receiver<Rendered>,
    marked: tokio::sync::mpsc::Sender<Marked>,
    stop: &AtomicBool,
) -> Result<Option<Journal>> {
    let mut journal = None;
    let mut rendered = Vec::with_capacity(chunk);
    while !stop.load(Ordering::Relaxed) && ready.recv_many(&mut rendered, chunk).await > 0 {
        let open = match journal.take() {
            Some(open) => open,
            None => Journal::open(dir, owner).context("cannot open the send journal")?,
        };
        let segment = Arc::new(
            journal
                .insert(open)
                .segment(rendered.len())
                .context(JOURNAL_WRITE)?,
        );
        let ids: Vec<i64> = rendered.iter().map(|r| r.claimed.id).collect();
        let ours: HashSet<i64> = store
            .mark_sending(owner, &ids, Utc::now() + lease)
            .await?
            .into_iter()
            .collect();
        // A claim that lapsed and went to another dispatcher is not ours
        // to send.
        segment
            .settled(ids.len() - ours.len())
            .context(JOURNAL_WRITE)?;
        rendered.retain(|r| ours.contains(&r.claimed.id));
        // Handed over a few at a time: room made one message at a time
        // woke this thread for every message a slot took.
        while !rendered.is_empty() {
            let n = rendered.len().min(HANDOVER);
            let Ok(room) = marked.reserve_many(n).await else {
                // The slots stopped: what is marked and unstarted is given
                // back at the end.
                return Ok(journal);
            };
            for (permit, r) in room.zip(rendered.drain(..n)) {
                permit.send((r, segment.clone()));
            }
        }
    }
    Ok(journal)
}

/// Records the slots' outcomes in groups: whatever is waiting goes into
/// one transaction, at most one every [`GROUP_EVERY`]. The slots do not
/// wait for it: the journal holds each outcome meanwhile.
async fn group_writer(
    store: &dyn Store,
    mut rx: tokio::sync::mpsc::Receiver<Outcome>,
) -> Result<()> {
    let mut group = Vec::new();
    let mut every = tokio::time::interval(GROUP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if rx.recv_many(&mut group, OUTCOMES_PER_COMMIT).await == 0 {
            return Ok(());
        }
        let (updates, segments): (Vec<_>, Vec<_>) = group.drain(..).unzip();
        store.record_deliveries(&updates).await?;
        for segment in segments {
            segment.settled(1).context(JOURNAL_WRITE)?;
        }
    }
}

/// What a pass has done so far: the feed adds each batch's checks, the
/// slots each message's outcome.
#[derive(Default)]
struct Tallies(std::sync::Mutex<Progress>);

impl Tallies {
    fn add(&self, p: &Progress) {
        self.lock().add(p);
    }

    fn count(&self, tally: &Tally) {
        let mut p = self.lock();
        match tally {
            Tally::Sent => p.sent += 1,
            Tally::Failed => p.failed += 1,
            Tally::Retrying => p.retrying += 1,
            Tally::FellThrough => p.fell_through += 1,
        }
    }

    fn now(&self) -> Progress {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        // A count is plain data: a panic elsewhere leaves it usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How often a pass reports its progress while it sends.
const REPORT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Reports the progress every [`REPORT_EVERY`]; runs until dropped.
async fn report_every(
    progress: &Tallies,
    report: &mut (dyn FnMut(&Progress) + Send),
) -> std::convert::Infallible {
    let mut every = tokio::time::interval(REPORT_EVERY);
    loop {
        every.tick().await;
        report(&progress.now());
    }
}

/// One of `window` slots: takes marked messages from the queue one at a
/// time, journals the start, sends, journals the outcome and hands it to
/// the group writer. A slot has at most one send started without its
/// outcome journaled: all a crash can leave uncertain.
async fn slot(
    providers: Arc<Providers>,
    queue: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Marked>>>,
    outcomes: tokio::sync::mpsc::Sender<Outcome>,
    (progress, metrics): (Arc<Tallies>, Option<Arc<Metrics>>),
    stop: Arc<AtomicBool>,
) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let next = queue.lock().await.recv().await;
        let Some((r, segment)) = next else { break };
        if stop.load(Ordering::Relaxed) {
            // Marked and not started: given back at the end.
            break;
        }
        segment.started(r.claimed.id).context(JOURNAL_WRITE)?;
        let (channel, run) = (r.claimed.channel, r.run.clone());
        let started = std::time::Instant::now();
        let (update, tally) = send_one(&providers, r).await;
        progress.count(&tally);
        if let Some(m) = &metrics {
            m.message(tally.outcome(), channel, &run.run.kind);
            m.send_latency(channel, started.elapsed().as_secs_f64());
        }
        let journaled = segment.done(&update);
        if outcomes.send((update, segment)).await.is_err() {
            // The writer stopped; it reports why.
            break;
        }
        journaled.context(JOURNAL_WRITE)?;
    }
    Ok(())
}

async fn send_one(providers: &Providers, r: Rendered) -> (DeliveryUpdate, Tally) {
    let (c, run, client) = (&r.claimed, &r.run, &r.client);
    let now = Utc::now();
    let prepared = &run.prepared;
    let outgoing = match r.message {
        Ok(m) => m,
        Err(e) => {
            let mut u = DeliveryUpdate::new(c.id, DeliveryState::Failed);
            u.error = Some(e);
            return (u, Tally::Failed);
        }
    };
    let preferred = prepared
        .campaign
        .providers
        .get(&c.channel)
        .map(String::as_str);
    let governed = match providers.route(c.channel, run.run.purpose, preferred) {
        Ok(g) => g.clone(),
        Err(e) => {
            let mut u = DeliveryUpdate::new(c.id, DeliveryState::Failed);
            u.error = Some(e);
            return (u, Tally::Failed);
        }
    };
    let outcome = governed.send(&outgoing).await;
    let event = |kind: EventKind, details: serde_json::Value| NewEvent {
        client_id: client.client.id.clone(),
        at: Utc::now(),
        kind,
        channel: Some(c.channel),
        campaign: Some(run.run.campaign.clone()),
        campaign_kind: Some(run.run.kind.clone()),
        purpose: Some(run.run.purpose),
        run_id: Some(run.run.id),
        delivery_id: Some(c.id),
        source: "dispatcher".into(),
        details,
        dedupe_on: None,
    };
    match outcome.result {
        Ok(accepted) => {
            let mut u = DeliveryUpdate::new(c.id, DeliveryState::Sent);
            u.sent_at = Some(now);
            u.event = Some(event(
                EventKind::Sent,
                json!({ "provider": governed.adapter().name() }),
            ));
            u.archive = Some(archive_entry(
                run,
                c,
                client,
                &outgoing,
                &accepted.provider_id,
                now,
            ));
            u.provider_id = Some(accepted.provider_id);
            (u, Tally::Sent)
        }
        Err(e) => match e.failure {
            Failure::Transient { .. } if c.attempts < MAX_ROUNDS => {
                let at = Utc::now() + Duration::seconds(ROUND_PAUSE_SECS);
                (requeue(c.id, at, &e.message), Tally::Retrying)
            }
            Failure::Permanent { bad_address: true } => {
                let bad = (c.channel, c.address.clone(), e.message.clone());
                match next_channel(c, client) {
                    Some((channel, address, fallback)) => {
                        let mut u = requeue(c.id, Utc::now(), &e.message);
                        u.switch_to = Some((channel, address, fallback));
                        u.bad_address = Some(bad);
                        u.event = Some(event(EventKind::Bounced, json!({ "error": e.message })));
                        (u, Tally::FellThrough)
                    }
                    None => {
                        let mut u = DeliveryUpdate::new(c.id, DeliveryState::Failed);
                        u.error = Some(e.message.clone());
                        u.bad_address = Some(bad);
                        u.event = Some(event(EventKind::Bounced, json!({ "error": e.message })));
                        (u, Tally::Failed)
                    }
                }
            }
            _ => {
                let mut u = DeliveryUpdate::new(c.id, DeliveryState::Failed);
                u.error = Some(e.message.clone());
                u.event = Some(event(EventKind::Failed, json!({ "error": e.message })));
                (u, Tally::Failed)
            }
        },
    }
}

enum Tally {
    Sent,
    Failed,
    Retrying,
    FellThrough,
}

impl Tally {
    fn outcome(&self) -> &'static str {
        match self {
            Tally::Sent => "sent",
            Tally::Failed => "failed",
            Tally::Retrying => "retrying",
            Tally::FellThrough => "fell_through",
        }
    }
}

fn requeue(id: i64, at: DateTime<Utc>, why: &str) -> DeliveryUpdate {
    let mut u = DeliveryUpdate::new(id, DeliveryState::Queued);
    u.not_before = Some(at);
    u.error = Some(why.to_owned());
    u
}

fn cancel(id: i64, why: &str) -> DeliveryUpdate {
    let mut u = DeliveryUpdate::new(id, DeliveryState::Cancelled);
    u.error = Some(why.to_owned());
    u
}

/// The next channel in the delivery's fallback the client has an address
/// for.
fn next_channel(c: &Claimed, client: &StoredClient) -> Option<(Channel, String, Vec<Channel>)> {
    let mut rest = c.fallback.iter();
    for &channel in rest.by_ref() {
        if let Some(address) = address_on(client, channel) {
            return Some((channel, address.to_owned(), rest.copied().collect()));
        }
    }
    None
}

/// The client's current address on `channel`.
fn address_on(client: &StoredClient, channel: Channel) -> Option<&str> {
    match channel {
        Channel::Email => client.client.email.as_ref().map(|e| e.as_str()),
        Channel::Sms => client.client.phone.as_ref().map(|m| m.as_str()),
    }
}

/// What is re-checked right before a send: opt-outs, consents, the
/// do-not-contact list and bad addresses recorded since planning.
struct SendChecks {
    dnc: HashSet<(DncKind, String)>,
    bad: HashSet<String>,
}

impl SendChecks {
    async fn load(store: &dyn Store, window: &[Claimed]) -> Result<SendChecks> {
        let addresses: Vec<String> = window.iter().map(|c| c.address.clone()).collect();
        let listed: Vec<String> = window
            .iter()
            .map(|c| c.client_id.clone())
            .chain(window.iter().map(|c| {
                DncKind::of_channel(c.channel)
                    .listed_form(&c.address)
                    .into_owned()
            }))
            .collect();
        // The batch's own entries: reading the whole list for every batch
        // cost a send with 20,000 listed addresses 48 % more CPU.
        let dnc = store.do_not_contact_among(&listed).await?;
        let bad = store.bad_addresses_among(&addresses).await?;
        Ok(SendChecks { dnc, bad })
    }

    fn refusal(&self, run: &Run, c: &Claimed, client: &StoredClient) -> Option<&'static str> {
        if self.dnc.contains(&(DncKind::Client, c.client_id.clone())) {
            return Some("do_not_contact");
        }
        let kind = DncKind::of_channel(c.channel);
        if self
            .dnc
            .contains(&(kind, kind.listed_form(&c.address).into_owned()))
        {
            return Some("do_not_contact");
        }
        if self.bad.contains(&c.address) {
            return Some("bad_address");
        }
        if address_on(client, c.channel) != Some(c.address.as_str()) {
            return Some("address_changed");
        }
        if run.purpose == Purpose::Marketing {
            let state = client.consents[ConsentScope::from(c.channel).index()];
            if !state.granted {
                return Some(if state.is_protected_opt_out() {
                    "unsubscribed"
                } else {
                    "no_consent"
                });
            }
        }
        None
    }
}

/// What the archive keeps of a sent message: the message itself as
/// rendered, with what produced it (the run's snapshot and files' hashes,
/// the client's data) and the decision, approval and consent at send time.
/// The chain's hash covers all of it.
#[derive(Serialize)]
struct ArchivedRecord<'a> {
    address: &'a str,
    approved_by: Option<&'a str>,
    channel: Channel,
    client: &'a crate::client::Client,
    consent_at_send: ConsentAtSend<'a>,
    /// The planner's decision as recorded (JSON), or null if unreadable.
    decision: Option<sonic_rs::LazyValue<'a>>,
    provider_id: &'a str,
    run: ArchivedRun<'a>,
    message: &'a Message,
}

#[derive(Serialize)]
struct ArchivedRun<'a> {
    id: i64,
    campaign: &'a str,
    key: &'a str,
    content_hash: &'a str,
    fingerprint: &'a str,
}

/// Each consent scope's state, by the scope's name.
struct ConsentAtSend<'a>(&'a crate::client::consent::ConsentStates);

impl Serialize for ConsentAtSend<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(
            ConsentScope::ALL
                .iter()
                .map(|scope| (scope.as_str(), &self.0[scope.index()])),
        )
    }
}

/// The archive's record of a sent message, serialized once into a buffer
/// sized for it (the message is most of it) and compressed against the
/// run's dictionary, by the slot that sent it.
fn archive_entry(
    prepared: &PreparedRun,
    c: &Claimed,
    client: &StoredClient,
    outgoing: &Outgoing,
    provider_id: &str,
    at: DateTime<Utc>,
) -> ArchiveEntry {
    let run = &prepared.run;
    let (address, size) = match &outgoing.message {
        Message::Email(e) => (e.to.as_str(), e.html.len() + e.text.len()),
        Message::Sms(s) => (s.to().as_str(), 0),
    };
    let record = ArchivedRecord {
        address,
        approved_by: run.approved_by.as_deref(),
        channel: c.channel,
        client: &client.client,
        consent_at_send: ConsentAtSend(&client.consents),
        decision: sonic_rs::from_str(&c.decision).ok(),
        provider_id,
        run: ArchivedRun {
            id: run.id,
            campaign: &run.campaign,
            key: &run.run_key,
            content_hash: &run.content_hash,
            fingerprint: &run.fingerprint,
        },
        message: &outgoing.message,
    };
    // Escaping grows the message a little; the rest is a few kilobytes.
    let mut json = Vec::with_capacity(size + size / 8 + 4096);
    // sonic-rs escapes strings with SIMD: with serde_json, escaping the
    // 16 KB of a bulletin's HTML byte by byte was 6 % of a send's CPU.
    sonic_rs::to_writer(&mut json, &record).expect("an archive record serializes to memory");
    ArchiveEntry::new(
        c.id,
        run.id,
        c.client_id.clone(),
        at,
        json,
        Some(&prepared.dictionary),
    )
}

pub fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "herald".into())
}

#[cfg(test)]
mod tests {
    use super::mark_chunk;

    #[test]
    fn a_mark_chunk_leaves_within_the_lease_at_the_channels_rate() {
        assert_eq!(mark_chunk(8, 100_000, 120), 256, "a fast channel");
        assert_eq!(mark_chunk(1, 100_000, 120), 32, "one slot");
        // Two chunks of 60 at 2 a second take 60 s of a 120 s lease.
        assert_eq!(mark_chunk(8, 2, 120), 60);
        assert_eq!(mark_chunk(8, 1, 2), 1, "never none");
    }
}
