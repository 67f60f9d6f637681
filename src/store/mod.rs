//! The client database. One [`Store`] trait, one implementation per backend
//! (SQLite by default, PostgreSQL for several instances), picked by the
//! database URL's scheme. All SQL lives under this module.

mod columns;
pub mod fleet;
mod pg_copy;
mod postgres;
mod queries;
mod run_queries;
pub mod runs;
pub mod seminars;
mod sqlite;
mod upsert;
mod writer;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::client::consent::{ConsentChange, ConsentScope};
use crate::client::types::ClientId;
use crate::client::{ClientRecord, StoredClient};
use crate::event::{Engagement, NewEvent, StoredEvent};

pub use upsert::RowChange;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Database(#[from] sqlx::Error),
    #[error("could not update the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0} (use sqlite://FILE or postgres://...)")]
    UnsupportedUrl(DatabaseUrl),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("a database task stopped: {0}")]
    Stopped(String),
}

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database URL whose `Debug` and `Display` hide the password, so that it
/// can be logged and shown in errors.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The SQLite file herald uses when nothing else is configured.
    pub fn default_sqlite() -> Self {
        Self("sqlite://herald.db".into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn backend(&self) -> Option<Backend> {
        if self.0.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if self.0.starts_with("postgres://") || self.0.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("****"));
                u.to_string()
            }
            _ => self.0.clone(),
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// Opens the database at `url`, creating it if need be, and brings its
/// schema up to date.
pub async fn open(url: &DatabaseUrl) -> Result<Arc<dyn Store>, StoreError> {
    match url.backend() {
        Some(Backend::Sqlite) => Ok(Arc::new(sqlite::SqliteStore::open(url).await?)),
        Some(Backend::Postgres) => Ok(Arc::new(postgres::PgStore::open(url).await?)),
        None => Err(StoreError::UnsupportedUrl(url.clone())),
    }
}

/// What a batch of imported rows did, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowOutcome {
    pub change: RowChange,
    /// Consents the file grants but herald recorded as refused: kept refused.
    pub conflicts: Vec<ConsentScope>,
}

/// What happened to one event handed to [`Store::insert_events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    Stored,
    /// Already stored (same client, time, type and details).
    Duplicate,
    /// No client with that id.
    UnknownClient,
}

/// Writes client rows. Dropping a writer without [`ClientWriter::commit`]
/// discards what an atomic writer wrote.
#[async_trait]
pub trait ClientWriter: Send {
    /// Upserts a batch by id, applying the consent rule of
    /// [`crate::client::consent::import_decision`]. Rows may repeat an id; the
    /// last one wins.
    async fn write(
        &mut self,
        batch: &[ClientRecord],
        at: DateTime<Utc>,
    ) -> Result<Vec<RowOutcome>, StoreError>;

    /// Makes everything written final.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Runs and what hangs off them: what the planner writes and the
/// dispatcher works through (see [`runs`]).
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Writes a run with its deliveries, suppressions and launch audit in
    /// one transaction, unless a run with the same (campaign, key) exists.
    /// `commit = false` rolls it all back (a dry run).
    async fn plan_run(
        &self,
        run: &runs::NewRun,
        deliveries: &[runs::NewDelivery],
        suppressions: &[runs::NewSuppression],
        audit: &runs::AuditEntry,
        commit: bool,
    ) -> Result<runs::Planned, StoreError>;

    async fn run(&self, id: i64) -> Result<Option<runs::Run>, StoreError>;
    async fn run_by_key(&self, campaign: &str, key: &str) -> Result<Option<runs::Run>, StoreError>;
    /// The latest runs, newest first.
    async fn runs(&self, limit: u32) -> Result<Vec<runs::Run>, StoreError>;

    /// Moves a run from one of `from` to `to`; false if it was in none.
    async fn set_run_state(
        &self,
        id: i64,
        from: &[runs::RunState],
        to: runs::RunState,
        audit: Option<&runs::AuditEntry>,
    ) -> Result<bool, StoreError>;

    /// Records the approval (the audit entry's actor and time) of the run
    /// as `fingerprint` describes it, and lets it send.
    async fn approve_run(
        &self,
        id: i64,
        fingerprint: &str,
        audit: &runs::AuditEntry,
    ) -> Result<bool, StoreError>;

    async fn run_counts(&self, id: i64) -> Result<runs::RunCounts, StoreError>;

    async fn deliveries_in(
        &self,
        run: i64,
        state: runs::DeliveryState,
        limit: u32,
    ) -> Result<Vec<runs::DeliveryBrief>, StoreError>;

    /// A delivery with its run's campaign, for responses to it.
    async fn delivery_context(&self, id: i64) -> Result<Option<runs::DeliveryContext>, StoreError>;

    /// What the gates read: the do-not-contact list, bad addresses,
    /// marketing sends per client since `since` with those other runs have
    /// still to send, and, for a campaign that
    /// reaches each client once (`once_per = "campaign"`), the clients its
    /// earlier runs reached. Other campaigns skip that read: it grows with
    /// every run the campaign ever had.
    async fn gate_facts(
        &self,
        once_per_campaign: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<crate::campaign::gates::Known, StoreError>;

    /// Claims up to `limit` queued deliveries due at `now` of sending runs
    /// (of `run` only, if given) for `owner` until `lease_until`.
    async fn claim(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        run: Option<i64>,
    ) -> Result<Vec<runs::Claimed>, StoreError>;

    /// Marks deliveries `owner` claimed as about to leave (`sending`) and
    /// renews their lease to `lease_until`; returns those still ours.
    async fn mark_sending(
        &self,
        owner: &str,
        ids: &[i64],
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError>;

    /// Records outcomes, their events, bad addresses and archive records in
    /// one transaction. The events' clients are taken to exist (they are
    /// the deliveries' own, and clients are never deleted).
    async fn record_deliveries(&self, updates: &[runs::DeliveryUpdate]) -> Result<(), StoreError>;

    /// Gives back what `owner` claimed or marked and has not started: its
    /// journal says every send it started has its outcome recorded.
    async fn release_claims(&self, owner: &str) -> Result<u64, StoreError>;

    /// Settles what a dead dispatcher (`owner`) held `sending`, from its
    /// journal, in one transaction: outcomes it had not recorded are
    /// recorded, sends it started without an outcome become uncertain, and
    /// the rest goes back to the queue.
    async fn settle_journal(
        &self,
        owner: &str,
        replay: &runs::JournalReplay,
    ) -> Result<runs::Settled, StoreError>;

    /// Lapsed claims go back to the queue; lapsed sends become uncertain.
    /// `all`: no other dispatcher lives, so every claim is lapsed.
    /// Returns (requeued, uncertain).
    async fn reclaim_lapsed(&self, now: DateTime<Utc>, all: bool)
        -> Result<(u64, u64), StoreError>;

    /// Expires queued deliveries of runs past `send_by` and marks runs with
    /// nothing pending done. Returns how many expired.
    async fn finish_runs(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Queues a run's uncertain deliveries again (an operator's decision).
    async fn retry_uncertain(&self, run: i64, audit: &runs::AuditEntry) -> Result<u64, StoreError>;

    async fn clients_by_ids(&self, ids: &[String]) -> Result<Vec<StoredClient>, StoreError>;

    async fn do_not_contact(&self) -> Result<Vec<runs::DncEntry>, StoreError>;
    /// The entries listing any of `values` (client ids, emails or mobiles),
    /// as (kind, value): what a batch about to be sent is checked against,
    /// read from the list's index rather than the whole list.
    async fn do_not_contact_among(
        &self,
        values: &[String],
    ) -> Result<HashSet<(runs::DncKind, String)>, StoreError>;
    /// Adds an entry (audited); false if it was already listed.
    async fn dnc_add(&self, entry: &runs::DncEntry) -> Result<bool, StoreError>;
    async fn dnc_remove(
        &self,
        kind: runs::DncKind,
        value: &str,
        audit: &runs::AuditEntry,
    ) -> Result<bool, StoreError>;

    /// What a report of `run` counts: its deliveries with each client's
    /// branch and advisor, and the responses to them.
    async fn report_rows(
        &self,
        run: &runs::Run,
    ) -> Result<(Vec<runs::ReportDelivery>, Vec<runs::ReportResponse>), StoreError>;
    /// The clients whose mobile is `phone` (E.164).
    async fn clients_with_phone(&self, phone: &str) -> Result<Vec<String>, StoreError>;
    /// Marks an address bad (a hard bounce, an unreachable number).
    async fn mark_bad_address(
        &self,
        channel: crate::channel::Channel,
        address: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Which of `addresses` are marked bad.
    async fn bad_addresses_among(
        &self,
        addresses: &[String],
    ) -> Result<HashSet<String>, StoreError>;

    async fn audit(&self, entry: &runs::AuditEntry) -> Result<(), StoreError>;
    /// The latest audit entries, newest first.
    async fn audit_log(&self, limit: u32) -> Result<Vec<runs::AuditEntry>, StoreError>;

    /// The benchmark's reference: inserts `rows` into a scratch copy of
    /// `deliveries` with one prepared statement, row by row, in one
    /// transaction, and drops it.
    async fn insert_reference_rows(&self, rows: &[runs::NewDelivery]) -> Result<(), StoreError>;

    /// Stores a dictionary archive records are compressed against, unless
    /// it is there already (it is named by its hash). Before any record
    /// that names it is journaled or recorded.
    async fn save_archive_dictionary(
        &self,
        dictionary: &runs::ArchiveDictionary,
    ) -> Result<(), StoreError>;

    /// The dictionaries of these names that are stored, as stored (a name
    /// given more than once is read once).
    async fn archive_dictionaries(
        &self,
        names: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<u8>>, StoreError>;

    async fn archive_get(&self, delivery: i64) -> Result<Option<runs::ArchiveRecord>, StoreError>;
    /// How many deliveries are recorded sent with no archive record, and
    /// the first `sample` of them: a sent message and its record are
    /// written in one transaction, so any is a record taken away.
    async fn sent_unarchived(&self, sample: u32) -> Result<(u64, Vec<i64>), StoreError>;
    async fn archive_page(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<runs::ArchiveRecord>, StoreError>;
}

/// What `herald serve` instances share (see [`fleet`]).
#[async_trait]
pub trait FleetStore: Send + Sync {
    /// Takes or renews the lease `name` for `owner` until `until`; false
    /// while another owner holds it unlapsed.
    async fn take_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError>;
    /// Who holds the lease now, if anyone.
    async fn lease_holder(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;
    /// Says `me` is alive (and forgets instances silent for a day).
    async fn heartbeat(&self, me: &fleet::Instance) -> Result<(), StoreError>;
    async fn instances(&self) -> Result<Vec<fleet::Instance>, StoreError>;
    /// Takes up to `want` sends of `provider`'s quota for the Unix `second`,
    /// which allows `limit` across the fleet; returns how many were granted.
    async fn take_quota(
        &self,
        provider: &str,
        second: i64,
        want: u32,
        limit: u32,
    ) -> Result<u32, StoreError>;
    /// Webhook `name`'s cursor: the last event id it delivered (for a new
    /// webhook, the newest event now).
    async fn webhook_cursor(&self, name: &str) -> Result<i64, StoreError>;
    async fn set_webhook_cursor(&self, name: &str, id: i64) -> Result<(), StoreError>;
    /// Events after id `after` recorded by `recorded_before`, in id order.
    async fn events_after(
        &self,
        after: i64,
        recorded_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<crate::event::StoredEvent>, StoreError>;
    /// Unfinished deliveries by channel, campaign kind and state.
    async fn queue_depth(&self) -> Result<Vec<fleet::QueueDepth>, StoreError>;
}

/// Seminar answers (see [`seminars`]).
#[async_trait]
pub trait SeminarStore: Send + Sync {
    /// Creates the seminar or changes its capacity.
    async fn set_capacity(&self, seminar: &str, capacity: i64) -> Result<(), StoreError>;
    /// Records the seminar as its file says now (capacity, particulars as
    /// JSON, and the fingerprint of what a calendar entry shows); a new
    /// fingerprint raises the sequence.
    async fn sync_seminar(
        &self,
        seminar: &str,
        capacity: i64,
        content: &str,
        fingerprint: &str,
    ) -> Result<seminars::Version, StoreError>;
    /// The particulars last recorded, with their sequence.
    async fn seminar_content(&self, seminar: &str) -> Result<Option<(String, i64)>, StoreError>;
    /// Records an acceptance (made by `via`): a seat while there is one,
    /// else the wait list.
    async fn accept(
        &self,
        seminar: &str,
        client: &str,
        at: DateTime<Utc>,
        via: Option<crate::channel::Channel>,
    ) -> Result<seminars::Standing, StoreError>;
    /// Records a decline (or a cancellation), promoting the first waiting
    /// client when a seat frees.
    async fn decline(
        &self,
        seminar: &str,
        client: &str,
        at: DateTime<Utc>,
    ) -> Result<seminars::Declined, StoreError>;
    /// Every answer to the seminar, seats and wait list in position order.
    async fn answers(&self, seminar: &str) -> Result<Vec<seminars::Answer>, StoreError>;
    /// Every answer to every seminar, with the seminar and its capacity.
    async fn all_answers(&self) -> Result<Vec<(String, i64, seminars::Answer)>, StoreError>;
    /// The clients checked in at the seminar.
    async fn attended(&self, seminar: &str) -> Result<Vec<String>, StoreError>;
    /// The last seminar invitation sent to the client by SMS: its delivery
    /// and when it went.
    async fn latest_sms_invitation(
        &self,
        client: &str,
    ) -> Result<Option<(i64, DateTime<Utc>)>, StoreError>;
    /// Queues one service notice: the delivery joins the notice run (made
    /// if new, reopened if done). False, and nothing written, when the
    /// client already has this notice.
    async fn queue_notice(
        &self,
        run: &runs::NewRun,
        delivery: &runs::NewDelivery,
    ) -> Result<bool, StoreError>;
    async fn standing(
        &self,
        seminar: &str,
        client: &str,
    ) -> Result<Option<seminars::Standing>, StoreError>;
    async fn attendance(&self, seminar: &str) -> Result<seminars::Attendance, StoreError>;
}

/// The database behind herald.
#[async_trait]
pub trait Store: RunStore + FleetStore + SeminarStore + Send + Sync {
    fn backend(&self) -> Backend;

    /// A writer for client rows. An `atomic` writer writes all batches in one
    /// transaction; otherwise rows are committed every few thousand.
    async fn client_writer(&self, atomic: bool) -> Result<Box<dyn ClientWriter>, StoreError>;

    async fn client(&self, id: &ClientId) -> Result<Option<StoredClient>, StoreError>;

    async fn count_clients(&self) -> Result<u64, StoreError>;

    /// Records a consent change (an opt-out from a link or an SMS reply, an
    /// operator's restore) and its history entry. Returns false if there is
    /// no such client.
    async fn record_consent(&self, change: &ConsentChange) -> Result<bool, StoreError>;

    /// A client's consent history, oldest first.
    async fn consent_history(&self, id: &ClientId) -> Result<Vec<ConsentChange>, StoreError>;

    /// Stores events; each is reported as stored, duplicate or refused.
    async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<EventOutcome>, StoreError>;

    /// A client's most recent events, newest first.
    async fn client_events(
        &self,
        id: &ClientId,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Clients in id order, after `after` (from the start if `None`), at most
    /// `limit`: for reading every client without holding them all.
    async fn clients_page(
        &self,
        after: Option<&ClientId>,
        limit: u32,
    ) -> Result<Vec<StoredClient>, StoreError>;

    /// For the clients with ids from `first` to `last` (inclusive), the latest
    /// event of each kind per channel and campaign kind, in client id order.
    async fn engagement(
        &self,
        first: &ClientId,
        last: &ClientId,
    ) -> Result<Vec<Engagement>, StoreError>;

    /// A number that changes whenever clients, consents or events change:
    /// what a cache of them is checked against.
    async fn data_version(&self) -> Result<i64, StoreError>;

    /// Brings the query planner's view of `imported` up to date after a
    /// bulk import, so that the next plan reads the new rows as it would
    /// read old ones.
    async fn after_import(&self, imported: Imported) -> Result<(), StoreError>;

    /// Closes the connections, flushing what the backend buffers.
    async fn close(&self);
}

/// What a bulk import wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    Clients,
    Events,
}

/// Turns what the database said about a batch of events into one outcome
/// per event. Within a batch the first of two identical events is stored.
fn event_outcomes(
    events: &[NewEvent],
    keys: &[Vec<u8>],
    known_clients: &HashSet<String>,
    mut stored_keys: HashSet<Vec<u8>>,
) -> Vec<EventOutcome> {
    events
        .iter()
        .zip(keys)
        .map(|(e, key)| {
            if !known_clients.contains(e.client_id.as_str()) {
                EventOutcome::UnknownClient
            } else if stored_keys.remove(key) {
                EventOutcome::Stored
            } else {
                EventOutcome::Duplicate
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_hide_their_password() {
        let url = DatabaseUrl::new("postgres://herald:s3cret@db.internal:5432/herald");
        assert!(!format!("{url}").contains("s3cret"));
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(url.backend(), Some(Backend::Postgres));
        assert_eq!(
            DatabaseUrl::new("sqlite://x.db").backend(),
            Some(Backend::Sqlite)
        );
        assert_eq!(DatabaseUrl::new("mysql://x").backend(), None);
    }
}
