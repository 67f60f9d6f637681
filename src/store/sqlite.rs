//! The SQLite store: one file, WAL mode, no server.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Arguments, ConnectOptions, Connection as _};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool, Transaction};

use super::columns::{
    consent_column, prefixed_existing_columns, upsert_assignments, ConsentLogEntry,
    ExistingColumns, BUMP_DATA_VERSION, CLIENT_COLUMNS, CONSENT_LOG_INSERT, CONSENT_STATE_SELECT,
    DIFFERS,
};
use super::runs::{
    chain_archive, channel_list, ArchiveTail, Chained, DeliveryUpdate, NewDelivery, NewSuppression,
    OneCall, ARCHIVE_GENESIS, ARCHIVE_INSERT, OUTCOME_ASSIGNMENTS,
};
use super::upsert::{plan, plan_new, Existing, RowWrite};
use super::writer::{BatchWriter, LoadTask, PooledWriter, ANY_CLIENT};
use super::{
    event_outcomes, Backend, ClientWriter, DatabaseUrl, EventOutcome, RowOutcome, Store, StoreError,
};
use crate::client::consent::ConsentChange;
use crate::client::types::ClientId;
use crate::client::{join_codes, ClientRecord, StoredClient};
use crate::event::{Engagement, NewEvent, StoredEvent};

super::queries::shared_queries!(Sqlite);
super::run_queries::run_queries!(Sqlite, SqliteStore);
super::fleet::fleet_queries!(Sqlite, SqliteStore);
super::seminars::seminar_queries!(Sqlite, SqliteStore);

/// SQLite has one writer: take the lock when the transaction starts, not
/// when it first writes, so two writers never deadlock upgrading.
async fn begin_write(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

/// Claims and marks take the write lock like any other write.
async fn begin_queue(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
    begin_write(pool).await
}

/// The benchmark's scratch table: `deliveries`' columns and indexes. It is
/// a regular table (temporary ones live per connection) dropped after use.
const CREATE_REFERENCE_TABLE: &str = "CREATE TABLE bench_deliveries (\
    id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, client_id TEXT NOT NULL, channel TEXT NOT NULL, \
    address TEXT NOT NULL, fallback TEXT NOT NULL, state TEXT NOT NULL, not_before TEXT NOT NULL, \
    decision TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE (run_id, client_id)); \
    CREATE INDEX bench_deliveries_queued ON bench_deliveries (id) WHERE state = 'queued'";

/// Claiming needs no row locks: the transaction holds the database's.
const CLAIM_LOCK: &str = "";

/// The frequency cap's count reads only the covering partial index of sent
/// events. Given statistics (after `ANALYZE`), SQLite's planner prefers the
/// (kind, time) index and visits every row: 10 s instead of 1.4 s for a
/// week of 1.4 million sends.
const SENT_EVENTS: &str = "events INDEXED BY events_sent";

/// The write lock already keeps the archive's chain in one line.
async fn lock_archive(_tx: &mut sqlx::Transaction<'_, Sqlite>) -> Result<(), StoreError> {
    Ok(())
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A bulk load into an empty table drops the phone index and builds it at
/// the end: a million random keys inserted one by one cost 6.7 s, the
/// sorted build 1.6 s.
const DROP_PHONE_INDEX: &str = "DROP INDEX IF EXISTS clients_phone";
const CREATE_PHONE_INDEX: &str = "CREATE INDEX IF NOT EXISTS clients_phone ON clients (phone)";

/// Client rows per INSERT: 30 values each, under the 32,766 allowed.
const CLIENT_ROWS_PER_INSERT: usize = 1000;

/// SQLite allows 32,766 bound values per statement; stay well below.
const ROWS_PER_INSERT: usize = 500;

pub struct SqliteStore {
    /// For reads.
    pool: SqlitePool,
    /// Every write goes through this one connection. SQLite lets one
    /// connection write at a time: writers queue here, in order, rather
    /// than in SQLite's busy handler, which sleeps. And a connection's
    /// page cache is emptied whenever another connection has written, so
    /// the only writer keeps its cache (in a send, page reads fell from
    /// 12 % to 8 % of SQLite's time, most of the rest the checkpoint's).
    writer: SqlitePool,
    archive_tail: ArchiveTail,
    checkpointer: Checkpointer,
}

/// How often the checkpointer copies the WAL into the database. A passive
/// checkpoint with nothing to copy costs next to nothing.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The WAL's length, in pages, past which the checkpointer has it start
/// over: 256 MB of 4 KB pages.
const WAL_RESTART_PAGES: i64 = 65_536;

/// Checkpoints the WAL on a connection of its own, in the background, while
/// the store lives. Checkpointed by whichever connection committed (SQLite's
/// way, every 40 MB of WAL here), a checkpoint and its sync held up that
/// connection's writer for 60-190 ms; the dispatcher's next group of
/// outcomes was then big and held the write lock as long, and the sending
/// slots, whose next messages wait on that lock to be marked, stood idle.
/// In a 74,600-message send their waits of over 30 ms fell from 2.3-6.6 s
/// to 0.6-0.7 s.
struct Checkpointer {
    stop: Arc<tokio::sync::Notify>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Checkpointer {
    async fn start(options: &SqliteConnectOptions, writer: SqlitePool) -> Result<Self, StoreError> {
        let mut conn = options.connect().await?;
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(CHECKPOINT_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stopped.notified() => break,
                }
                if let Err(e) = checkpoint(&mut conn, &writer).await {
                    tracing::warn!("checkpoint failed: {e}");
                }
            }
            // The last connection: what the process wrote goes into the
            // database now, and the WAL is emptied, rather than left to
            // the next process (whose send it would slow).
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut conn)
                .await
            {
                tracing::warn!("checkpoint on close failed: {e}");
            }
            conn.close().await.ok();
        });
        Ok(Self {
            stop,
            task: std::sync::Mutex::new(Some(task)),
        })
    }

    /// Stops it once the pools are closed: its last checkpoint empties
    /// the WAL.
    async fn stop(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            self.stop.notify_one();
            task.await.ok();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().unwrap_or_else(|e| e.into_inner()) {
            task.abort();
        }
    }
}

async fn checkpoint(conn: &mut SqliteConnection, writer: &SqlitePool) -> Result<(), sqlx::Error> {
    // Passive: copies what no reader still needs, and waits for nobody.
    // What it leaves, the next pass takes.
    let (_, pages, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut *conn)
        .await?;
    // SQLite starts the WAL over only when a write begins with all of it
    // copied, which under writes that never pause (an import) is never:
    // it grew to 22 GB importing 150,000 clients' history. Past the bound
    // the checkpoint runs on the writers' connection, taken in turn with
    // them (SQLite's busy handler, polling, lost that race to the next
    // write), and its next write starts the WAL over.
    if pages > WAL_RESTART_PAGES {
        let mut writing = match writer.acquire().await {
            Ok(conn) => conn,
            Err(sqlx::Error::PoolClosed) => return Ok(()),
            Err(e) => return Err(e),
        };
        sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .execute(&mut *writing)
            .await?;
    }
    Ok(())
}

impl SqliteStore {
    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    pub async fn open(url: &DatabaseUrl) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url.expose())?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL loses no committed transaction on a process
            // crash, only on power loss; FULL would halve import speed.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // 64 MB of page cache: an import touches the whole id index.
            .pragma("cache_size", "-65536")
            // A multi-row statement inside a transaction keeps a statement
            // journal; in a temporary file that cost an import a third of
            // its time in write calls.
            .pragma("temp_store", "memory")
            // No connection checkpoints after its own commits: the
            // store's checkpointer does, on a connection of its own.
            .pragma("wal_autocheckpoint", "0")
            // Started over, the WAL file is cut back to its bound.
            .pragma("journal_size_limit", (WAL_RESTART_PAGES * 4096).to_string())
            .foreign_keys(true);
        let pool = |connections| {
            SqlitePoolOptions::new()
                .max_connections(connections)
                // A connection to a local file cannot go stale, and the
                // check would cost a round trip to the driver's thread.
                .test_before_acquire(false)
                .connect_with(options.clone())
        };
        let writer = pool(1).await?;
        MIGRATOR.run(&writer).await?;
        Ok(Self {
            pool: pool(3).await?,
            checkpointer: Checkpointer::start(&options, writer.clone()).await?,
            writer,
            archive_tail: ArchiveTail::default(),
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn client_writer(&self, atomic: bool) -> Result<Box<dyn ClientWriter>, StoreError> {
        Ok(Box::new(PooledWriter::new(self.writer.clone(), atomic)))
    }

    async fn client(&self, id: &ClientId) -> Result<Option<StoredClient>, StoreError> {
        fetch_client(&self.pool, id).await
    }

    async fn count_clients(&self) -> Result<u64, StoreError> {
        fetch_count_clients(&self.pool).await
    }

    async fn record_consent(&self, change: &ConsentChange) -> Result<bool, StoreError> {
        // IMMEDIATE: take the write lock before reading the state we replace.
        let mut tx = begin_write(self.writer()).await?;
        let select = CONSENT_STATE_SELECT.to_owned();
        let row: Option<ExistingColumns> = sqlx::query_as(&select)
            .bind(change.client_id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let (_, existing) = row.into_existing()?;
        let previous = existing.consents[change.scope.index()];
        let col = consent_column(change.scope);
        let sql = format!(
            "UPDATE clients SET {col} = $1, {col}_source = $2, {col}_at = $3, updated_at = $3 WHERE id = $4"
        );
        sqlx::query(&sql)
            .bind(change.granted)
            .bind(change.source.as_str())
            .bind(change.at)
            .bind(change.client_id.as_str())
            .execute(&mut *tx)
            .await?;
        insert_consent_log(&mut tx, &[ConsentLogEntry::new(change, previous)]).await?;
        sqlx::query(BUMP_DATA_VERSION).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn consent_history(&self, id: &ClientId) -> Result<Vec<ConsentChange>, StoreError> {
        fetch_consent_history(&self.pool, id).await
    }

    async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<EventOutcome>, StoreError> {
        // Reads then writes: the write lock first, or a concurrent writer
        // makes the upgrade fail at once instead of waiting.
        let mut tx = begin_write(self.writer()).await?;
        let outcomes = insert_events_in(&mut tx, events, false).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn client_events(
        &self,
        id: &ClientId,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        fetch_client_events(&self.pool, id, limit).await
    }

    async fn clients_page(
        &self,
        after: Option<&ClientId>,
        limit: u32,
    ) -> Result<Vec<StoredClient>, StoreError> {
        fetch_clients_page(&self.pool, after, limit).await
    }

    async fn engagement(
        &self,
        first: &ClientId,
        last: &ClientId,
    ) -> Result<Vec<Engagement>, StoreError> {
        fetch_engagement(&self.pool, first, last).await
    }

    async fn data_version(&self) -> Result<i64, StoreError> {
        fetch_data_version(&self.pool).await
    }

    /// Nothing: herald never runs `ANALYZE` on SQLite, whose planner then
    /// estimates from the schema alone, the same before and after an
    /// import. (`SENT_EVENTS` pins the one plan statistics made worse.)
    async fn after_import(&self, _imported: super::Imported) -> Result<(), StoreError> {
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
        self.checkpointer.stop().await;
    }
}

#[async_trait]
impl BatchWriter for Sqlite {
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    /// A larger transaction holds more of SQLite's page cache and WAL: a
    /// fifth of the commits took an import's peak memory near 300 MB.
    const ROWS_PER_COMMIT: usize = 20_000;

    async fn write_batch(
        conn: &mut SqliteConnection,
        batch: &[ClientRecord],
        at: DateTime<Utc>,
    ) -> Result<Vec<RowOutcome>, StoreError> {
        write_batch(conn, batch, at).await
    }

    type Stream = LoadStream;

    fn open_stream(tx: Transaction<'static, Sqlite>) -> LoadStream {
        LoadTask::spawn(|queued| run_loads(tx, queued))
    }

    /// New rows are plain inserts. OR FAIL: a failed statement fails the
    /// whole import's transaction anyway, so SQLite need not journal each
    /// statement to undo it alone.
    async fn send_new(
        stream: &mut LoadStream,
        batch: &[ClientRecord],
        at: DateTime<Utc>,
    ) -> Result<Vec<RowOutcome>, StoreError> {
        let plan = plan_new(batch, at);
        for chunk in plan.writes.chunks(CLIENT_ROWS_PER_INSERT) {
            let sql = if chunk.len() == CLIENT_ROWS_PER_INSERT {
                Cow::Borrowed(FULL_BULK_INSERT.as_str())
            } else {
                Cow::Owned(client_insert("INSERT OR FAIL", chunk.len(), ""))
            };
            stream
                .send(Load::Rows(sql, client_args(chunk, at)?))
                .await?;
        }
        if !plan.log.is_empty() {
            stream.send(Load::Log(plan.log)).await?;
        }
        Ok(plan.outcomes)
    }

    async fn close_stream(stream: LoadStream) -> Result<Transaction<'static, Sqlite>, StoreError> {
        stream.close().await
    }

    async fn begin_bulk(conn: &mut SqliteConnection) -> Result<bool, StoreError> {
        let (any,): (bool,) = sqlx::query_as(ANY_CLIENT).fetch_one(&mut *conn).await?;
        // A bulk load that stopped early left the phone index out: the next
        // import, which the operator runs to finish the job, builds it.
        // (Opening the store does not: it would wait on a running import.)
        let index = if any {
            CREATE_PHONE_INDEX
        } else {
            DROP_PHONE_INDEX
        };
        sqlx::query(index).execute(&mut *conn).await?;
        Ok(!any)
    }

    async fn end_bulk(conn: &mut SqliteConnection) -> Result<(), StoreError> {
        sqlx::query(CREATE_PHONE_INDEX).execute(&mut *conn).await?;
        Ok(())
    }
}

async fn write_batch(
    conn: &mut SqliteConnection,
    batch: &[ClientRecord],
    at: DateTime<Utc>,
) -> Result<Vec<RowOutcome>, StoreError> {
    let (existing, new_ids) = stored_state(conn, batch).await?;
    let plan = plan(batch, existing, &new_ids, at);
    upsert_clients(conn, &plan.writes, at).await?;
    insert_consent_log(conn, &plan.log).await?;
    if !plan.writes.is_empty() {
        sqlx::query(BUMP_DATA_VERSION).execute(&mut *conn).await?;
    }
    Ok(plan.outcomes)
}

/// The stored state of the batch's rows that differ from the store, and the
/// ids it does not have.
async fn stored_state(
    conn: &mut SqliteConnection,
    batch: &[ClientRecord],
) -> Result<(HashMap<String, Existing>, HashSet<String>), StoreError> {
    let mut existing = HashMap::new();
    let mut new_ids = HashSet::new();
    for chunk in batch.chunks(ROWS_PER_INSERT) {
        let missing = missing_ids(conn, chunk).await?;
        // Only the rows the store has can differ from it.
        let stored: Vec<&ClientRecord> = chunk
            .iter()
            .filter(|r| !missing.contains(r.client.id.as_str()))
            .collect();
        if !stored.is_empty() {
            existing.extend(differing_rows(conn, &stored).await?);
        }
        new_ids.extend(missing);
    }
    Ok((existing, new_ids))
}

/// The ids of a chunk the store does not have, as one aggregated row so that
/// a fresh import does not pull a row per client back from the database.
async fn missing_ids(
    conn: &mut SqliteConnection,
    chunk: &[ClientRecord],
) -> Result<HashSet<String>, StoreError> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("WITH v(i, id) AS (");
    qb.push_values(chunk.iter().enumerate(), |mut b, (i, r)| {
        b.push_bind(i as i64).push_bind(r.client.id.as_str());
    });
    qb.push(") SELECT group_concat(v.i) FROM v WHERE NOT EXISTS (SELECT 1 FROM clients c WHERE c.id = v.id)");
    let (positions,): (Option<String>,) = qb.build_query_as().fetch_one(&mut *conn).await?;
    positions
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<usize>()
                .ok()
                .and_then(|i| chunk.get(i))
                .map(|r| r.client.id.to_string())
                .ok_or_else(|| StoreError::Corrupt(format!("unexpected position {p}")))
        })
        .collect()
}

/// The stored state of the rows of a chunk that differ from the store, in
/// profile or in a consent the file states. Rows that match are not read.
async fn differing_rows(
    conn: &mut SqliteConnection,
    chunk: &[&ClientRecord],
) -> Result<HashMap<String, super::upsert::Existing>, StoreError> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("WITH v(id, h, ce, cs, cp) AS (");
    qb.push_values(chunk, |mut b, r| {
        b.push_bind(r.client.id.as_str())
            .push_bind(r.hash.as_slice())
            .push_bind(r.consents[0])
            .push_bind(r.consents[1])
            .push_bind(r.consents[2]);
    });
    qb.push(format!(
        ") SELECT DISTINCT {} FROM v JOIN clients c ON c.id = v.id WHERE {DIFFERS}",
        prefixed_existing_columns()
    ));
    let rows: Vec<ExistingColumns> = qb.build_query_as().fetch_all(&mut *conn).await?;
    rows.into_iter()
        .map(ExistingColumns::into_existing)
        .collect()
}

async fn existing_ids(
    conn: &mut SqliteConnection,
    ids: &HashSet<&str>,
) -> Result<HashSet<String>, StoreError> {
    let ids: Vec<&str> = ids.iter().copied().collect();
    let mut found = HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS_PER_INSERT) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT id FROM clients WHERE id IN (");
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind(*id);
        }
        qb.push(")");
        let rows: Vec<(String,)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        found.extend(rows.into_iter().map(|(id,)| id));
    }
    Ok(found)
}

/// Binds straight from the planned writes, formatting each date and time
/// the way sqlx would, but once: this runs on the path every imported row
/// takes.
async fn upsert_clients(
    conn: &mut SqliteConnection,
    writes: &[RowWrite<'_>],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let tail = format!(" ON CONFLICT (id) DO UPDATE SET {}", upsert_assignments());
    for chunk in writes.chunks(CLIENT_ROWS_PER_INSERT) {
        let sql = client_insert("INSERT", chunk.len(), &tail);
        sqlx::query_with(&sql, client_args(chunk, at)?)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// `verb INTO clients (…) VALUES (?, …), …` for `rows` rows, then `tail`.
fn client_insert(verb: &str, rows: usize, tail: &str) -> String {
    let row = format!("({})", vec!["?"; CLIENT_COLUMNS.len()].join(", "));
    format!(
        "{verb} INTO clients ({}) VALUES {}{tail}",
        CLIENT_COLUMNS.join(", "),
        vec![row; rows].join(", ")
    )
}

/// A bulk load's INSERT for a full chunk: a thousand rows of thirty
/// placeholders, built once rather than per chunk.
static FULL_BULK_INSERT: LazyLock<String> =
    LazyLock::new(|| client_insert("INSERT OR FAIL", CLIENT_ROWS_PER_INSERT, ""));

/// The values of [`client_insert`]'s rows, owned: a bulk load's statements
/// are run by a task of their own.
fn client_args(
    chunk: &[RowWrite<'_>],
    at: DateTime<Utc>,
) -> Result<SqliteArguments<'static>, StoreError> {
    let now = sqlite_time(at);
    let time = |t: DateTime<Utc>| if t == at { now.clone() } else { sqlite_time(t) };
    let mut args = SqliteArguments::default();
    for w in chunk {
        let c = w.client;
        let owned = |s: Option<&str>| s.map(str::to_owned);
        put(&mut args, c.id.as_str().to_owned())?;
        put(&mut args, c.name.clone())?;
        put(&mut args, owned(c.email.as_ref().map(|e| e.as_str())))?;
        put(&mut args, owned(c.phone.as_ref().map(|p| p.as_str())))?;
        put(&mut args, c.branch.clone())?;
        put(&mut args, c.advisor.clone())?;
        put(&mut args, c.investor_type.as_str())?;
        put(&mut args, c.risk_level.map(|l| i16::from(l.number())))?;
        put(&mut args, c.risk_assessed_on.map(sqlite_date))?;
        put(&mut args, c.lowest_risk_category)?;
        put(&mut args, c.assets.map(|a| a.fen()))?;
        put(&mut args, c.tags.join(";"))?;
        put(&mut args, join_codes(&c.holdings))?;
        put(&mut args, join_codes(&c.watchlist))?;
        put(&mut args, c.birthday.map(sqlite_date))?;
        put(&mut args, c.opened_on.map(sqlite_date))?;
        put(&mut args, c.last_trade_on.map(sqlite_date))?;
        let attributes = serde_json::to_string(&c.attributes).unwrap_or_else(|_| "{}".into());
        put(&mut args, attributes)?;
        for state in &w.consents {
            put(&mut args, state.granted)?;
            put(&mut args, state.source.as_str())?;
            put(&mut args, time(state.at))?;
        }
        put(&mut args, w.hash.to_vec())?;
        put(&mut args, now.clone())?;
        put(&mut args, now.clone())?;
    }
    Ok(args)
}

fn put<T>(args: &mut SqliteArguments<'static>, value: T) -> Result<(), StoreError>
where
    T: sqlx::Encode<'static, Sqlite> + sqlx::Type<Sqlite> + 'static,
{
    args.add(value)
        .map_err(|e| StoreError::Database(sqlx::Error::Encode(e)))
}

/// What a bulk load's task runs: client rows, or consent history.
pub enum Load {
    Rows(Cow<'static, str>, SqliteArguments<'static>),
    Log(Vec<ConsentLogEntry>),
}

/// A bulk load's statements, run by a task of their own: SQLite stores one
/// statement's rows while herald plans and binds the next.
pub type LoadStream = LoadTask<Load, Transaction<'static, Sqlite>>;

async fn run_loads(
    mut tx: Transaction<'static, Sqlite>,
    mut queued: tokio::sync::mpsc::Receiver<Load>,
) -> Result<Transaction<'static, Sqlite>, StoreError> {
    let mut any = false;
    while let Some(load) = queued.recv().await {
        match load {
            Load::Rows(sql, args) => {
                sqlx::query_with(&sql, args).execute(&mut *tx).await?;
                any = true;
            }
            Load::Log(log) => insert_consent_log(&mut tx, &log).await?,
        }
    }
    if any {
        sqlx::query(BUMP_DATA_VERSION).execute(&mut *tx).await?;
    }
    Ok(tx)
}

/// Stores events within `tx`: each reported as stored, duplicate or refused
/// (its client unknown). `clients_known`: the caller read every client from
/// the store already (clients are never deleted), so none is looked up.
async fn insert_events_in(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    events: &[NewEvent],
    clients_known: bool,
) -> Result<Vec<EventOutcome>, StoreError> {
    let ids: HashSet<&str> = events.iter().map(|e| e.client_id.as_str()).collect();
    let known = if clients_known {
        ids.iter().map(|id| id.to_string()).collect()
    } else {
        existing_ids(tx, &ids).await?
    };
    let keys: Vec<Vec<u8>> = events.iter().map(NewEvent::dedupe_key).collect();
    let mut stored = HashSet::new();
    let now = Utc::now();
    let insertable: Vec<(&NewEvent, &Vec<u8>)> = events
        .iter()
        .zip(&keys)
        .filter(|(e, _)| known.contains(e.client_id.as_str()))
        .collect();
    for chunk in insertable.chunks(ROWS_PER_INSERT / 2) {
        let mut qb = QueryBuilder::new("");
        push_events(&mut qb, chunk, now);
        qb.push(" RETURNING dedupe_key");
        let rows: Vec<(Vec<u8>,)> = qb.build_query_as().fetch_all(&mut **tx).await?;
        stored.extend(rows.into_iter().map(|(k,)| k));
    }
    if !stored.is_empty() {
        sqlx::query(BUMP_DATA_VERSION).execute(&mut **tx).await?;
    }
    Ok(event_outcomes(events, &keys, &known, stored))
}

/// The dispatcher's group commit (outcomes, their events and archive
/// records) as one script, run in one call to the driver's
/// thread: as separate statements, the eight calls cost more than the
/// writing. The archive's tail is remembered between groups; if another
/// writer moved it, the archive's key refuses the script, which is rolled
/// back.
async fn record_in_one_call(
    store: &SqliteStore,
    updates: &[DeliveryUpdate],
    now: DateTime<Utc>,
) -> Result<OneCall, StoreError> {
    let chained = if updates.iter().any(|u| u.archive.is_some()) {
        Some(chain_archive(
            guess_archive_tail(&store.archive_tail, &store.writer).await?,
            updates,
        ))
    } else {
        None
    };
    let events: Vec<&NewEvent> = updates.iter().filter_map(|u| u.event.as_ref()).collect();
    let keys: Vec<Vec<u8>> = events.iter().map(|e| e.dedupe_key()).collect();
    let events: Vec<(&NewEvent, &Vec<u8>)> = events.into_iter().zip(&keys).collect();

    let mut qb = QueryBuilder::new("BEGIN IMMEDIATE");
    for chunk in updates.chunks(OUTCOMES_PER_UPDATE) {
        qb.push("; ");
        push_outcomes(&mut qb, chunk, now);
    }
    for bad in updates.iter().filter_map(|u| u.bad_address.as_ref()) {
        qb.push("; ");
        push_bad_address(&mut qb, bad, now);
    }
    for chunk in events.chunks(ROWS_PER_INSERT / 2) {
        qb.push("; ");
        push_events(&mut qb, chunk, now);
    }
    if !events.is_empty() {
        qb.push("; ").push(BUMP_DATA_VERSION);
    }
    for chunk in chained
        .iter()
        .flat_map(|c| c.rows.chunks(ARCHIVE_ROWS_PER_INSERT))
    {
        qb.push("; ");
        push_archive(&mut qb, chunk);
    }
    qb.push("; COMMIT");

    let mut conn = store.writer.acquire().await?;
    let written = qb.build().execute(&mut *conn).await;
    store.archive_tail.settle(written.is_ok(), chained);
    match written {
        Ok(_) => Ok(OneCall::Written),
        Err(e) => {
            tracing::debug!("group commit as one script refused: {e}");
            // The script stops at the failing statement, its transaction open.
            if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                conn.close_on_drop();
            }
            Ok(OneCall::refused(&e))
        }
    }
}

/// The archive's tail as remembered, or as stored (read outside the write
/// lock: a guess either way).
async fn guess_archive_tail(
    tail: &ArchiveTail,
    pool: &SqlitePool,
) -> Result<(i64, String), StoreError> {
    if let Some(tail) = tail.known() {
        return Ok(tail);
    }
    let stored: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM archive ORDER BY seq DESC LIMIT 1")
            .fetch_optional(pool)
            .await?;
    Ok(stored.unwrap_or((0, ARCHIVE_GENESIS.to_owned())))
}

/// One UPDATE setting each outcome's delivery from a derived table. Its
/// instants are bound as they are: SQLite keeps them as text (a cast to an
/// unknown type would make them numbers).
fn push_outcomes(qb: &mut QueryBuilder<'_, Sqlite>, chunk: &[DeliveryUpdate], now: DateTime<Utc>) {
    qb.push(OUTCOME_ASSIGNMENTS).push_bind(now).push(" FROM (");
    for (i, u) in chunk.iter().enumerate() {
        let (channel, address, fallback) = match &u.switch_to {
            Some((c, a, f)) => (Some(c.as_str()), Some(a.clone()), Some(channel_list(f))),
            None => (None, None, None),
        };
        qb.push(if i == 0 {
            "SELECT "
        } else {
            " UNION ALL SELECT "
        });
        qb.push("CAST(")
            .push_bind(u.id)
            .push(" AS BIGINT) AS id, CAST(")
            .push_bind(u.state.as_str())
            .push(" AS TEXT) AS state, CAST(")
            .push_bind(u.provider_id.clone())
            .push(" AS TEXT) AS provider_id, CAST(")
            .push_bind(u.error.clone())
            .push(" AS TEXT) AS error, ")
            .push_bind(u.not_before)
            .push(" AS not_before, ")
            .push_bind(u.sent_at)
            .push(" AS sent_at, CAST(")
            .push_bind(channel)
            .push(" AS TEXT) AS channel, CAST(")
            .push_bind(address)
            .push(" AS TEXT) AS address, CAST(")
            .push_bind(fallback)
            .push(" AS TEXT) AS fallback");
    }
    qb.push(") AS v WHERE deliveries.id = v.id");
}

/// Deliveries per INSERT: 9 bound values each, under the 32,766 allowed.
const DELIVERIES_PER_INSERT: usize = 1000;

/// Suppressions per INSERT: 4 bound values each.
const SUPPRESSIONS_PER_INSERT: usize = 2000;

/// The VALUES of a run's planned deliveries, all queued.
fn push_deliveries<'a>(
    qb: &mut QueryBuilder<'a, Sqlite>,
    run_id: i64,
    chunk: &'a [NewDelivery],
    now: DateTime<Utc>,
) {
    qb.push_values(chunk, |mut b, d| {
        b.push_bind(run_id)
            .push_bind(d.client_id.as_str())
            .push_bind(d.channel.as_str())
            .push_bind(d.address.as_str())
            .push_bind(channel_list(&d.fallback))
            .push_bind("queued")
            .push_bind(d.not_before)
            .push_bind(d.decision.as_str())
            .push_bind(now);
    });
}

/// The VALUES of a run's suppressions.
fn push_suppressions<'a>(
    qb: &mut QueryBuilder<'a, Sqlite>,
    run_id: i64,
    chunk: &'a [NewSuppression],
) {
    qb.push_values(chunk, |mut b, s| {
        b.push_bind(run_id)
            .push_bind(s.client_id.as_str())
            .push_bind(s.reason)
            .push_bind(s.channel.map(|c| c.as_str()));
    });
}

/// An INSERT of chained archive records.
fn push_archive(qb: &mut QueryBuilder<'_, Sqlite>, chunk: &[Chained<'_>]) {
    qb.push(ARCHIVE_INSERT);
    qb.push_values(chunk, |mut b, c| {
        b.push_bind(c.seq)
            .push_bind(c.entry.delivery_id)
            .push_bind(c.entry.run_id)
            .push_bind(c.entry.client_id.clone())
            .push_bind(c.entry.at)
            .push_bind("")
            .push_bind(c.entry.body.clone())
            .push_bind(c.entry.dictionary.clone())
            .push_bind(c.prev_hash.clone())
            .push_bind(c.hash.clone());
    });
}

/// ` IN (id, id, …)`, each bound.
fn push_id_in(qb: &mut QueryBuilder<'_, Sqlite>, ids: &[i64]) {
    qb.push(" IN (");
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    qb.push(")");
}

/// An INSERT of events, each with its dedupe key; a duplicate is skipped.
fn push_events<'a>(
    qb: &mut QueryBuilder<'a, Sqlite>,
    rows: &[(&'a NewEvent, &'a Vec<u8>)],
    now: DateTime<Utc>,
) {
    qb.push(
        "INSERT INTO events (client_id, occurred_at, kind, channel, campaign, campaign_kind, \
         run_id, delivery_id, source, details, dedupe_key, recorded_at, purpose) ",
    );
    qb.push_values(rows, |mut b, (e, key)| {
        b.push_bind(e.client_id.as_str())
            .push_bind(e.at)
            .push_bind(e.kind.as_str())
            .push_bind(e.channel.map(|c| c.as_str()))
            .push_bind(e.campaign.as_deref())
            .push_bind(e.campaign_kind.as_deref())
            .push_bind(e.run_id)
            .push_bind(e.delivery_id)
            .push_bind(e.source.as_str())
            .push_bind(sqlx::types::Json(&e.details))
            .push_bind(key.as_slice())
            .push_bind(now)
            .push_bind(e.purpose.map(|p| p.as_str()));
    });
    qb.push(" ON CONFLICT (dedupe_key) DO NOTHING");
}

/// A date as sqlx stores it in SQLite (`%F`).
fn sqlite_date(d: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

/// An instant as sqlx stores it in SQLite.
fn sqlite_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// Appends consent changes. They are rare (opt-outs, restores, the CRM
/// changing its mind), so one statement each.
async fn insert_consent_log(
    conn: &mut SqliteConnection,
    log: &[ConsentLogEntry],
) -> Result<(), StoreError> {
    for e in log {
        sqlx::query(CONSENT_LOG_INSERT)
            .bind(e.client_id.as_str())
            .bind(e.scope.as_str())
            .bind(e.state.granted)
            .bind(e.state.source.as_str())
            .bind(e.state.at)
            .bind(e.actor.as_deref())
            .bind(e.note.as_deref())
            .bind(e.previous.granted)
            .bind(e.previous.source.as_str())
            .bind(e.previous.at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
