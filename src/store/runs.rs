//! Runs, deliveries, suppressions, the do-not-contact list, bad addresses,
//! the audit log and the archive: the records the planner writes and the
//! dispatcher works through. The types are shared; the SQL is written once
//! in `run_queries!` and expanded in each backend's module, which supplies
//! the few statements that differ.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::campaign::Purpose;
use crate::channel::Channel;
use crate::client::types::Invalid;
use crate::event::NewEvent;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Planned; waits for `herald run approve`.
    AwaitingApproval,
    /// Dispatchers send its queued deliveries.
    Sending,
    /// Stopped by an operator; `herald run resume` goes on.
    Paused,
    /// Nothing left to send (uncertain deliveries may remain).
    Done,
    /// Refused as a whole (a restricted stock); nothing was planned.
    Stopped,
}

impl RunState {
    pub const ALL: [RunState; 5] = [
        Self::AwaitingApproval,
        Self::Sending,
        Self::Paused,
        Self::Done,
        Self::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingApproval => "awaiting_approval",
            Self::Sending => "sending",
            Self::Paused => "paused",
            Self::Done => "done",
            Self::Stopped => "stopped",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| Invalid(format!("'{raw}' is not a run state")))
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a delivery is. `Sending` is written before the message leaves; a
/// `Sending` delivery whose claim lapsed is `Uncertain`: it may have gone,
/// so it is never sent again without an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Queued,
    Claimed,
    Sending,
    Sent,
    Failed,
    Expired,
    Uncertain,
    /// Refused right before sending: an opt-out, a do-not-contact entry or
    /// a bad address recorded since planning.
    Cancelled,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 8] = [
        Self::Queued,
        Self::Claimed,
        Self::Sending,
        Self::Sent,
        Self::Failed,
        Self::Expired,
        Self::Uncertain,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Claimed => "claimed",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Uncertain => "uncertain",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| Invalid(format!("'{raw}' is not a delivery state")))
    }
}

/// A run to plan.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub campaign: String,
    pub run_key: String,
    pub kind: String,
    pub purpose: Purpose,
    pub state: RunState,
    pub launched_by: Option<String>,
    pub launched_at: DateTime<Utc>,
    /// The content snapshot (JSON) and its hash.
    pub content: String,
    pub content_hash: String,
    /// The files planned from (JSON: path → hash).
    pub files: String,
    pub fingerprint: String,
    pub not_before: Option<DateTime<Utc>>,
    pub send_by: Option<DateTime<Utc>>,
    pub audience: i64,
    /// Set when the run is planned stopped (a seminar wave for a full room).
    pub stop_reason: Option<String>,
}

/// A stored run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: i64,
    pub campaign: String,
    pub run_key: String,
    pub kind: String,
    pub purpose: Purpose,
    pub state: RunState,
    pub launched_by: Option<String>,
    pub launched_at: DateTime<Utc>,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub content: String,
    pub content_hash: String,
    #[serde(skip)]
    pub files: String,
    pub fingerprint: String,
    pub not_before: Option<DateTime<Utc>>,
    pub send_by: Option<DateTime<Utc>>,
    pub audience: i64,
    pub stop_reason: Option<String>,
}

/// `runs` as read.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RunColumns {
    id: i64,
    campaign: String,
    run_key: String,
    kind: String,
    purpose: String,
    state: String,
    launched_by: Option<String>,
    launched_at: DateTime<Utc>,
    approved_by: Option<String>,
    approved_at: Option<DateTime<Utc>>,
    content: String,
    content_hash: String,
    files: String,
    fingerprint: String,
    not_before: Option<DateTime<Utc>>,
    send_by: Option<DateTime<Utc>>,
    audience: i64,
    stop_reason: Option<String>,
}

pub(crate) const RUN_COLUMNS: &str = "id, campaign, run_key, kind, purpose, state, launched_by, \
     launched_at, approved_by, approved_at, content, content_hash, files, fingerprint, \
     not_before, send_by, audience, stop_reason";

impl RunColumns {
    pub(crate) fn into_run(self) -> Result<Run, super::StoreError> {
        let bad = |e: Invalid| super::StoreError::Corrupt(format!("run {}: {e}", self.id));
        Ok(Run {
            id: self.id,
            purpose: Purpose::parse(&self.purpose).map_err(bad)?,
            state: RunState::parse(&self.state).map_err(bad)?,
            campaign: self.campaign,
            run_key: self.run_key,
            kind: self.kind,
            launched_by: self.launched_by,
            launched_at: self.launched_at,
            approved_by: self.approved_by,
            approved_at: self.approved_at,
            content: self.content,
            content_hash: self.content_hash,
            files: self.files,
            fingerprint: self.fingerprint,
            not_before: self.not_before,
            send_by: self.send_by,
            audience: self.audience,
            stop_reason: self.stop_reason,
        })
    }
}

/// One planned message.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub client_id: String,
    pub channel: Channel,
    pub address: String,
    pub fallback: Vec<Channel>,
    pub not_before: DateTime<Utc>,
    /// JSON: the gates' verdict, suitability and consent state at planning.
    pub decision: String,
}

/// One selected client who gets nothing, and why.
#[derive(Debug, Clone)]
pub struct NewSuppression {
    pub client_id: String,
    pub reason: &'static str,
    pub channel: Option<Channel>,
}

/// What planning did.
#[derive(Debug)]
pub enum Planned {
    /// The run was planned now.
    New(Run),
    /// A run with this key already existed: nothing was written.
    Existing(Run),
}

/// A delivery a dispatcher claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub run_id: i64,
    pub client_id: String,
    pub channel: Channel,
    pub address: String,
    pub fallback: Vec<Channel>,
    pub attempts: i32,
    pub decision: String,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ClaimedColumns {
    id: i64,
    run_id: i64,
    client_id: String,
    channel: String,
    address: String,
    fallback: String,
    attempts: i32,
    decision: String,
}

pub(crate) const CLAIMED_COLUMNS: &str =
    "id, run_id, client_id, channel, address, fallback, attempts, decision";

impl ClaimedColumns {
    pub(crate) fn into_claimed(self) -> Result<Claimed, super::StoreError> {
        let bad = |e: Invalid| super::StoreError::Corrupt(format!("delivery {}: {e}", self.id));
        Ok(Claimed {
            id: self.id,
            run_id: self.run_id,
            channel: Channel::parse(&self.channel).map_err(bad)?,
            fallback: parse_channels(&self.fallback).map_err(bad)?,
            client_id: self.client_id,
            address: self.address,
            attempts: self.attempts,
            decision: self.decision,
        })
    }
}

pub(crate) fn channel_list(channels: &[Channel]) -> String {
    channels
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(";")
}

fn parse_channels(raw: &str) -> Result<Vec<Channel>, Invalid> {
    raw.split(';')
        .filter(|s| !s.is_empty())
        .map(Channel::parse)
        .collect()
}

/// What became of a claimed delivery, to record (and to journal, until
/// it is recorded).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryUpdate {
    pub id: i64,
    pub state: DeliveryState,
    pub provider_id: Option<String>,
    pub error: Option<String>,
    /// For `Queued`: when to try again.
    pub not_before: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    /// Falling through to the next channel: (channel, address, channels left).
    pub switch_to: Option<(Channel, String, Vec<Channel>)>,
    /// An address to mark bad: (channel, address, reason).
    pub bad_address: Option<(Channel, String, String)>,
    pub event: Option<NewEvent>,
    pub archive: Option<ArchiveEntry>,
}

impl DeliveryUpdate {
    pub fn new(id: i64, state: DeliveryState) -> Self {
        Self {
            id,
            state,
            provider_id: None,
            error: None,
            not_before: None,
            sent_at: None,
            switch_to: None,
            bad_address: None,
            event: None,
            archive: None,
        }
    }
}

/// A sent message to archive, compressed: what is stored, what the chain's
/// hash covers and what a journal keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveEntry {
    pub delivery_id: i64,
    pub run_id: i64,
    pub client_id: String,
    pub at: DateTime<Utc>,
    /// The record (JSON), compressed.
    #[serde(with = "base64_bytes")]
    pub body: Vec<u8>,
    /// The hash of the dictionary `body` is compressed against (zstd);
    /// none: deflated alone.
    #[serde(default)]
    pub dictionary: Option<String>,
}

/// Bytes as base64 text in JSON.
mod base64_bytes {
    use base64::{engine::general_purpose::STANDARD, Engine};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <&str>::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// What a run's archive records are compressed against: a sample of its
/// messages. A record is then stored as little more than what differs
/// from the sample (a tenth of its size deflated alone), which is most of
/// what a send writes to the database.
pub struct ArchiveDictionary {
    /// SHA-256 of `bytes`: the dictionary's name in the store.
    pub hash: String,
    pub bytes: Vec<u8>,
    encoder: zstd::dict::EncoderDictionary<'static>,
}

/// zstd's first fast level: a record is compressed by the slot that sent
/// it, and the dictionary, not the level, makes it small. Against level 1,
/// a 20 KB bulletin's record takes 971 bytes instead of 858 and a send
/// 8 % less of herald's CPU (literals are stored, not Huffman-coded).
const ZSTD_LEVEL: i32 = -1;

impl ArchiveDictionary {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            hash: dictionary_name(&bytes),
            encoder: zstd::dict::EncoderDictionary::copy(&bytes, ZSTD_LEVEL),
            bytes,
        }
    }
}

impl fmt::Debug for ArchiveDictionary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ArchiveDictionary({}, {} bytes)",
            self.hash,
            self.bytes.len()
        )
    }
}

/// An archive body back to its record: zstd against `dictionary` if it
/// has one, else deflate.
fn restore(body: &[u8], dictionary: Option<&[u8]>) -> std::io::Result<String> {
    use std::io::Read;
    let mut out = String::new();
    match dictionary {
        Some(dictionary) => {
            zstd::stream::read::Decoder::with_dictionary(body, dictionary)?
                .read_to_string(&mut out)?;
        }
        None => {
            flate2::read::DeflateDecoder::new(body).read_to_string(&mut out)?;
        }
    }
    Ok(out)
}

thread_local! {
    /// Each thread's zstd context, kept: making one per record cost as
    /// much as compressing it.
    static ZSTD: std::cell::RefCell<zstd::zstd_safe::CCtx<'static>> =
        std::cell::RefCell::new(zstd::zstd_safe::CCtx::create());
}

fn compress_against(record: &[u8], dictionary: &ArchiveDictionary) -> Vec<u8> {
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(record.len()));
    ZSTD.with_borrow_mut(|z| {
        z.compress_using_cdict(&mut out, record, dictionary.encoder.as_cdict())
    })
    .expect("the output holds the bound of what zstd writes");
    out
}

impl ArchiveEntry {
    /// Compresses the record (against `dictionary`, if given): call it
    /// where the work can run in parallel, not in the one writer.
    pub fn new(
        delivery_id: i64,
        run_id: i64,
        client_id: String,
        at: DateTime<Utc>,
        record: impl Into<Vec<u8>>,
        dictionary: Option<&ArchiveDictionary>,
    ) -> Self {
        let record = record.into();
        const IN_MEMORY: &str = "compressing in memory cannot fail";
        let body = match dictionary {
            Some(d) => compress_against(&record, d),
            None => {
                use std::io::Write;
                let mut z =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
                z.write_all(&record).expect(IN_MEMORY);
                z.finish().expect(IN_MEMORY)
            }
        };
        Self {
            delivery_id,
            run_id,
            client_id,
            at,
            body,
            dictionary: dictionary.map(|d| d.hash.clone()),
        }
    }
}

/// What a dead dispatcher's send journal says of the deliveries it held
/// `sending`: the outcomes it had not recorded, and the sends it started.
#[derive(Debug, Default)]
pub struct JournalReplay {
    pub done: Vec<DeliveryUpdate>,
    pub started: std::collections::HashSet<i64>,
}

/// What settling a journal did to the deliveries it held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Outcomes recorded from the journal.
    pub recorded: u64,
    /// Started with no outcome: uncertain.
    pub uncertain: u64,
    /// Never started: back to the queue.
    pub requeued: u64,
}

impl std::ops::AddAssign for Settled {
    fn add_assign(&mut self, other: Settled) {
        self.recorded += other.recorded;
        self.uncertain += other.uncertain;
        self.requeued += other.requeued;
    }
}

/// `archive` as read: the record in `record`, or compressed in `body`
/// (against `dictionary`, if it names one).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ArchiveColumns {
    seq: i64,
    delivery_id: i64,
    run_id: i64,
    client_id: String,
    archived_at: DateTime<Utc>,
    record: String,
    body: Option<Vec<u8>>,
    pub(crate) dictionary: Option<String>,
    prev_hash: String,
    hash: String,
}

pub(crate) const ARCHIVE_COLUMNS: &str =
    "seq, delivery_id, run_id, client_id, archived_at, record, body, dictionary, prev_hash, hash";

impl ArchiveColumns {
    /// The record, restored with the dictionary its row names. A record
    /// that cannot be restored (its dictionary missing or changed, its
    /// body damaged) comes back with why, for `archive verify` to report.
    pub(crate) fn into_record(self, dictionaries: &Dictionaries) -> ArchiveRecord {
        let restored = match (&self.body, &self.dictionary) {
            (None, _) => Ok(self.record),
            (Some(body), None) => restore(body, None).map_err(|e| e.to_string()),
            (Some(body), Some(name)) => match dictionaries.get(name) {
                None => Err(format!("its dictionary {name} is missing")),
                Some(Err(why)) => Err(format!("its dictionary {name} {why}")),
                Some(Ok(dictionary)) => restore(body, Some(dictionary)).map_err(|e| e.to_string()),
            },
        };
        let (record, unreadable) = match restored {
            Ok(record) => (record, None),
            Err(why) => (String::new(), Some(format!("it cannot be read: {why}"))),
        };
        ArchiveRecord {
            seq: self.seq,
            delivery_id: self.delivery_id,
            run_id: self.run_id,
            client_id: self.client_id,
            archived_at: self.archived_at,
            record,
            unreadable,
            body: self.body,
            dictionary: self.dictionary,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// Archive dictionaries by name: each body, or why it cannot be used.
pub(crate) type Dictionaries = HashMap<String, Result<Vec<u8>, String>>;

/// The stored dictionaries, each checked against its name: the chain
/// covers a body and its dictionary's name, so a dictionary changed since
/// would restore its records into something else.
pub(crate) fn checked_dictionaries(stored: HashMap<String, Vec<u8>>) -> Dictionaries {
    stored
        .into_iter()
        .map(|(name, body)| {
            let checked = if dictionary_name(&body) == name {
                Ok(body)
            } else {
                Err("was changed: its content does not match its name".to_owned())
            };
            (name, checked)
        })
        .collect()
}

/// An archived message with its place in the chain.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveRecord {
    pub seq: i64,
    pub delivery_id: i64,
    pub run_id: i64,
    pub client_id: String,
    pub archived_at: DateTime<Utc>,
    pub record: String,
    /// Why `record` is empty: what is stored cannot be restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// What is stored of the record: compressed, against `dictionary` if
    /// it names one; none for a record stored whole.
    #[serde(skip)]
    pub body: Option<Vec<u8>>,
    #[serde(skip)]
    pub dictionary: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl ArchiveRecord {
    /// Whether its hash chains it to `prev_hash`, over what is stored.
    /// Records compressed before the chain covered their bodies (and those
    /// stored whole) were chained over the record itself.
    pub fn follows(&self, prev_hash: &str) -> bool {
        let (seq, delivery) = (self.seq, self.delivery_id);
        let stored = self.body.as_deref().map(|body| Chaining::Body {
            dictionary: self.dictionary.as_deref(),
            body,
        });
        stored.is_some_and(|s| archive_hash(prev_hash, seq, delivery, s) == self.hash)
            || archive_hash(
                prev_hash,
                seq,
                delivery,
                Chaining::Record(self.record.as_bytes()),
            ) == self.hash
    }
}

/// What the chain's hash covers of a record.
#[derive(Debug, Clone, Copy)]
pub enum Chaining<'a> {
    /// The stored body and the name of its dictionary. A dictionary is
    /// named by its SHA-256, checked when it is read, and decompressing is
    /// exact: the body fixes the record. It is a twentieth of the record's
    /// size, and hashing the record took 4 % of a send's CPU.
    Body {
        dictionary: Option<&'a str>,
        body: &'a [u8],
    },
    /// The record itself (JSON): the chain of earlier versions.
    Record(&'a [u8]),
}

/// The hash that chains archive record `seq` to the one before.
pub fn archive_hash(prev_hash: &str, seq: i64, delivery_id: i64, what: Chaining<'_>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(seq.to_be_bytes());
    h.update(delivery_id.to_be_bytes());
    match what {
        // A record is JSON: it never starts with a NUL byte.
        Chaining::Body { dictionary, body } => {
            h.update(b"\0body\0");
            h.update(dictionary.unwrap_or("").as_bytes());
            h.update(b"\0");
            h.update(body);
        }
        Chaining::Record(record) => h.update(record),
    }
    hex(&h.finalize())
}

/// A dictionary's name: its SHA-256, in hex.
pub fn dictionary_name(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

/// The chain's first `prev_hash`.
pub const ARCHIVE_GENESIS: &str = "herald-archive-v1";

/// What an outcome sets on its delivery, from a row `v` of outcomes (each
/// backend builds `v` its own way); `updated_at` is bound after it.
pub const OUTCOME_ASSIGNMENTS: &str = "UPDATE deliveries SET state = v.state, \
     provider_id = COALESCE(v.provider_id, deliveries.provider_id), error = v.error, \
     not_before = COALESCE(v.not_before, deliveries.not_before), sent_at = COALESCE(v.sent_at, deliveries.sent_at), \
     channel = COALESCE(v.channel, deliveries.channel), address = COALESCE(v.address, deliveries.address), \
     fallback = COALESCE(v.fallback, deliveries.fallback), lease_owner = NULL, lease_until = NULL, updated_at = ";

/// The columns of a run's planned deliveries.
pub const DELIVERY_INSERT: &str = "INSERT INTO deliveries (run_id, client_id, channel, address, \
     fallback, state, not_before, decision, updated_at) ";

/// The columns of a run's suppressions.
pub const SUPPRESSION_INSERT: &str =
    "INSERT INTO suppressions (run_id, client_id, reason, channel) ";

/// The archive's columns as an outcome's group writes them.
pub const ARCHIVE_INSERT: &str =
    "INSERT INTO archive (seq, delivery_id, run_id, client_id, archived_at, record, \
     body, dictionary, prev_hash, hash) ";

/// An archive record with its place in the chain.
pub struct Chained<'a> {
    pub seq: i64,
    pub entry: &'a ArchiveEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// The archive records of `updates`, chained on from `tail` (the last
/// record's seq and hash); and the new tail.
pub struct ChainedArchive<'a> {
    pub rows: Vec<Chained<'a>>,
    pub tail: (i64, String),
}

/// How a group commit tried in one call to the database ended.
pub enum OneCall {
    Written,
    /// Another writer moved the archive's tail: try again on the new one.
    TailMoved,
    /// Refused for another reason: write the group the ordinary way, which
    /// reports it.
    Refused,
}

impl OneCall {
    /// What a refused call's error means.
    pub fn refused(e: &sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::UniqueViolation => {
                Self::TailMoved
            }
            _ => Self::Refused,
        }
    }
}

/// The archive's last seq and hash as a store last wrote them: a guess
/// that saves reading them under a lock for every group. The archive's key
/// checks it: a write chained on a stale tail is refused.
#[derive(Default)]
pub struct ArchiveTail(std::sync::Mutex<Option<(i64, String)>>);

impl ArchiveTail {
    pub fn known(&self) -> Option<(i64, String)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// After a write: remember where it left the chain, or forget a tail
    /// that may have been stale.
    pub fn settle(&self, written: bool, chained: Option<ChainedArchive<'_>>) {
        let mut tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match (written, chained) {
            (true, Some(c)) => *tail = Some(c.tail),
            (true, None) => {}
            (false, _) => *tail = None,
        }
    }
}

pub fn chain_archive(tail: (i64, String), updates: &[DeliveryUpdate]) -> ChainedArchive<'_> {
    let (mut seq, mut prev) = tail;
    let mut rows = Vec::new();
    for entry in updates.iter().filter_map(|u| u.archive.as_ref()) {
        seq += 1;
        let stored = Chaining::Body {
            dictionary: entry.dictionary.as_deref(),
            body: &entry.body,
        };
        let hash = archive_hash(&prev, seq, entry.delivery_id, stored);
        rows.push(Chained {
            seq,
            entry,
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
        });
    }
    ChainedArchive {
        rows,
        tail: (seq, prev),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: serde_json::Value,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AuditColumns {
    at: DateTime<Utc>,
    actor: String,
    action: String,
    subject: String,
    details: String,
}

impl AuditColumns {
    pub(crate) fn into_entry(self) -> AuditEntry {
        AuditEntry {
            at: self.at,
            actor: self.actor,
            action: self.action,
            subject: self.subject,
            details: serde_json::from_str(&self.details).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// What a do-not-contact entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DncKind {
    Client,
    Email,
    Phone,
}

impl DncKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DncKind::Client => "client",
            DncKind::Email => "email",
            DncKind::Phone => "phone",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "client" => Ok(DncKind::Client),
            "email" => Ok(DncKind::Email),
            "phone" => Ok(DncKind::Phone),
            other => Err(Invalid(format!(
                "'{other}' is not a do-not-contact kind (client, email, phone)"
            ))),
        }
    }

    /// What names an address on `channel`.
    pub fn of_channel(channel: crate::channel::Channel) -> Self {
        match channel {
            crate::channel::Channel::Email => DncKind::Email,
            crate::channel::Channel::Sms => DncKind::Phone,
        }
    }

    /// A value as the list keeps and matches it: an email address without
    /// regard to case (people type them either way), the rest as given.
    pub fn listed_form(self, value: &str) -> std::borrow::Cow<'_, str> {
        match self {
            DncKind::Email => std::borrow::Cow::Owned(value.to_ascii_lowercase()),
            DncKind::Client | DncKind::Phone => std::borrow::Cow::Borrowed(value),
        }
    }
}

/// One do-not-contact entry.
#[derive(Debug, Clone, Serialize)]
pub struct DncEntry {
    pub kind: DncKind,
    pub value: String,
    pub reason: String,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DncColumns {
    kind: String,
    value: String,
    reason: String,
    added_by: String,
    added_at: DateTime<Utc>,
}

impl DncColumns {
    pub(crate) fn into_entry(self) -> Result<DncEntry, super::StoreError> {
        Ok(DncEntry {
            kind: DncKind::parse(&self.kind).map_err(|e| super::StoreError::Corrupt(e.0))?,
            value: self.value,
            reason: self.reason,
            added_by: self.added_by,
            added_at: self.added_at,
        })
    }
}

/// A run's deliveries by state and channel, and its suppressions by reason.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunCounts {
    pub deliveries: BTreeMap<String, i64>,
    pub by_channel: BTreeMap<String, i64>,
    pub suppressions: BTreeMap<String, i64>,
}

impl RunCounts {
    pub fn state(&self, s: DeliveryState) -> i64 {
        self.deliveries.get(s.as_str()).copied().unwrap_or(0)
    }

    /// Deliveries not yet finished one way or the other.
    pub fn pending(&self) -> i64 {
        [
            DeliveryState::Queued,
            DeliveryState::Claimed,
            DeliveryState::Sending,
        ]
        .iter()
        .map(|s| self.state(*s))
        .sum()
    }
}

/// A delivery in a listing (uncertain ones, a run's failures).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeliveryBrief {
    pub id: i64,
    pub client_id: String,
    pub channel: String,
    pub state: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub provider_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A delivery with what a response to it needs: its client, channel,
/// address and run, for the tracking server.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeliveryContext {
    pub id: i64,
    pub run_id: i64,
    pub client_id: String,
    pub channel: String,
    pub address: String,
    pub state: String,
    pub sent_at: Option<DateTime<Utc>>,
    pub campaign: String,
    pub kind: String,
    pub purpose: String,
}

/// One delivery of a run as a report counts it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReportDelivery {
    pub id: i64,
    pub client_id: String,
    pub channel: String,
    pub state: String,
    pub branch: Option<String>,
    pub advisor: Option<String>,
}

/// A response to a run (or a reply from one of its clients).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReportResponse {
    pub delivery_id: Option<i64>,
    pub client_id: String,
    pub kind: String,
    pub details: sqlx::types::Json<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record much like a bulletin's: long shared text, a few personal
    /// fields.
    fn record(name: &str) -> String {
        let items: String = (0..200)
            .map(|i| format!("<li class=\"item\">第{i}条 沪深两市成交额突破万亿元</li>"))
            .collect();
        format!(
            "{{\"client\":{{\"name\":\"{name}\"}},\"message\":{{\"html\":\"<ul>{items}</ul>\"}}}}"
        )
    }

    #[test]
    fn a_record_compressed_against_its_runs_sample_is_small_and_comes_back_whole() {
        let dictionary = ArchiveDictionary::new(record("样例").into_bytes());
        let at = Utc::now();
        let with = ArchiveEntry::new(1, 1, "1".into(), at, record("张三"), Some(&dictionary));
        let alone = ArchiveEntry::new(1, 1, "1".into(), at, record("张三"), None);
        assert!(
            with.body.len() * 5 < alone.body.len(),
            "{} bytes against the sample, {} deflated alone",
            with.body.len(),
            alone.body.len()
        );
        assert_eq!(
            restore(&with.body, Some(&dictionary.bytes)).unwrap(),
            record("张三")
        );
        assert_eq!(restore(&alone.body, None).unwrap(), record("张三"));
        // Another dictionary does not give the record back (its name, the
        // hash of its content, tells which it must be).
        let other = ArchiveDictionary::new(record("李四").replace("沪深", "港股").into_bytes());
        assert_ne!(
            restore(&with.body, Some(&other.bytes)).ok(),
            Some(record("张三"))
        );
    }

    fn stored(entry: &ArchiveEntry, hash: String) -> ArchiveRecord {
        ArchiveRecord {
            seq: 1,
            delivery_id: entry.delivery_id,
            run_id: entry.run_id,
            client_id: entry.client_id.clone(),
            archived_at: entry.at,
            record: record("张三"),
            unreadable: None,
            body: Some(entry.body.clone()),
            dictionary: entry.dictionary.clone(),
            prev_hash: ARCHIVE_GENESIS.into(),
            hash,
        }
    }

    #[test]
    fn the_chain_covers_the_stored_body_and_still_reads_the_earlier_chain() {
        let dictionary = ArchiveDictionary::new(record("样例").into_bytes());
        let entry = ArchiveEntry::new(
            7,
            1,
            "1".into(),
            Utc::now(),
            record("张三"),
            Some(&dictionary),
        );
        let update = DeliveryUpdate {
            archive: Some(entry.clone()),
            ..DeliveryUpdate::new(7, DeliveryState::Sent)
        };
        let chained = chain_archive((0, ARCHIVE_GENESIS.into()), std::slice::from_ref(&update));
        let r = stored(&entry, chained.rows[0].hash.clone());
        assert!(r.follows(ARCHIVE_GENESIS));
        assert!(!r.follows("another record's hash"));
        let mut changed = r.clone();
        changed.body.as_mut().unwrap()[3] ^= 1;
        assert!(!changed.follows(ARCHIVE_GENESIS));
        let mut renamed = r.clone();
        renamed.dictionary = Some(dictionary_name(b"another sample"));
        assert!(!renamed.follows(ARCHIVE_GENESIS));
        // Chained over the record, as earlier versions did.
        let earlier = archive_hash(
            ARCHIVE_GENESIS,
            1,
            7,
            Chaining::Record(record("张三").as_bytes()),
        );
        let old = stored(&entry, earlier);
        assert!(old.follows(ARCHIVE_GENESIS));
        let mut edited = old.clone();
        edited.record = record("李四");
        edited.body = None;
        assert!(!edited.follows(ARCHIVE_GENESIS));
    }
}
