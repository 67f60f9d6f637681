//! The PostgreSQL store, for several herald instances sharing one database.
//! Batches are written with one `UNNEST` statement per table.

use std::collections::HashMap;
use std::collections::HashSet;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Transaction};

use super::columns::{
    consent_column, prefixed_existing_columns, upsert_assignments, ClientColumns, ConsentLogEntry,
    ExistingColumns, BUMP_DATA_VERSION, CLIENT_COLUMNS, CONSENT_LOG_INSERT, CONSENT_STATE_SELECT,
    DIFFERS,
};
use super::pg_copy::{self, CopyBinary};
use super::runs::{
    channel_list, Chained, DeliveryUpdate, NewDelivery, NewSuppression, OneCall, ARCHIVE_INSERT,
    OUTCOME_ASSIGNMENTS,
};
use super::upsert::{plan, plan_new, Existing, RowWrite};
use super::writer::{BatchWriter, LoadTask, PooledWriter, ANY_CLIENT};
use super::{
    event_outcomes, Backend, ClientWriter, DatabaseUrl, EventOutcome, RowOutcome, Store, StoreError,
};
use crate::client::consent::ConsentChange;
use crate::client::types::{ClientId, StockCode};
use crate::client::{ClientRecord, StoredClient};
use crate::event::{Engagement, NewEvent, StoredEvent};

super::queries::shared_queries!(Postgres);
super::run_queries::run_queries!(Postgres, PgStore);
super::fleet::fleet_queries!(Postgres, PgStore);
super::seminars::seminar_queries!(Postgres, PgStore);

async fn begin_write(pool: &PgPool) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
    Ok(pool.begin().await?)
}

/// A transaction for claiming and marking the queue. PostgreSQL must walk
/// the queue's indexes in order: a bitmap scan cannot skip the entries of
/// deliveries that left the queue (a vacuum removes them later), so each
/// claim read the run's whole queue and sorted it (27 ms against 0.4 ms,
/// 40,000 of 74,600 deliveries sent), and each mark all that were leased.
async fn begin_queue(pool: &PgPool) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL enable_bitmapscan = off")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The benchmark's scratch table: `deliveries`' columns and indexes.
const CREATE_REFERENCE_TABLE: &str =
    "CREATE TABLE bench_deliveries (LIKE deliveries INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING INDEXES)";

/// Dispatchers on several instances claim disjoint rows without waiting.
const CLAIM_LOCK: &str = " FOR UPDATE OF d SKIP LOCKED";

/// Where the frequency cap counts sends: PostgreSQL's planner picks the
/// partial index itself.
const SENT_EVENTS: &str = "events";

/// One writer at a time extends the archive's hash chain.
async fn lock_archive(tx: &mut sqlx::Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(7243177001)")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// PostgreSQL writes the dispatcher's group commit statement by statement,
/// under the archive's lock. Written as one statement chained on a
/// remembered tail (as SQLite does), the groups of several instances kept
/// taking each other's next seq and fell through to the locked path, which
/// they then starved.
async fn record_in_one_call(
    _store: &PgStore,
    _updates: &[DeliveryUpdate],
    _now: DateTime<Utc>,
) -> Result<OneCall, StoreError> {
    Ok(OneCall::Refused)
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// PostgreSQL's writers run side by side: one pool serves all.
    fn writer(&self) -> &PgPool {
        &self.pool
    }

    pub async fn open(url: &DatabaseUrl) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url.expose())?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn client_writer(&self, atomic: bool) -> Result<Box<dyn ClientWriter>, StoreError> {
        Ok(Box::new(PooledWriter::new(self.pool.clone(), atomic)))
    }

    async fn client(&self, id: &ClientId) -> Result<Option<StoredClient>, StoreError> {
        fetch_client(&self.pool, id).await
    }

    async fn count_clients(&self) -> Result<u64, StoreError> {
        fetch_count_clients(&self.pool).await
    }

    async fn record_consent(&self, change: &ConsentChange) -> Result<bool, StoreError> {
        // FOR UPDATE: nobody changes the state we replace until we commit.
        let mut tx = self.pool.begin().await?;
        let select = CONSENT_STATE_SELECT.replace("WHERE id = $1", "WHERE id = $1 FOR UPDATE");
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
        let mut tx = self.pool.begin().await?;
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

    /// Events: `VACUUM (ANALYZE)`, statistics so that the planner knows the
    /// new rows' numbers and the visibility map so that the frequency
    /// cap's count reads its index alone: without them a plan's count of
    /// recent sends took 0.41 s instead of 0.11 s. Clients are read whole
    /// or by key, never from an index alone: `ANALYZE` is enough (a VACUUM
    /// added half a second to a 6 s import of a million). Autovacuum would
    /// get there in time, if it is on, but the next plan may come first.
    async fn after_import(&self, imported: super::Imported) -> Result<(), StoreError> {
        let sql = match imported {
            super::Imported::Clients => "ANALYZE clients, consent_log",
            super::Imported::Events => "VACUUM (ANALYZE) events",
        };
        // Not prepared: a maintenance statement, run once.
        sqlx::raw_sql(sql).execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl BatchWriter for Postgres {
    const BEGIN: &'static str = "BEGIN";
    /// Each commit drains the COPY and waits for the WAL flush: at 20,000
    /// rows a million-row load spent a tenth of its time there.
    const ROWS_PER_COMMIT: usize = 100_000;

    async fn write_batch(
        conn: &mut PgConnection,
        batch: &[ClientRecord],
        at: DateTime<Utc>,
    ) -> Result<Vec<RowOutcome>, StoreError> {
        write_batch(conn, batch, at).await
    }

    type Stream = CopyStream;

    fn open_stream(tx: Transaction<'static, Postgres>) -> CopyStream {
        LoadTask::spawn(|queued| stream_copy(tx, queued))
    }

    async fn send_new(
        stream: &mut CopyStream,
        batch: &[ClientRecord],
        at: DateTime<Utc>,
    ) -> Result<Vec<RowOutcome>, StoreError> {
        let plan = plan_new(batch, at);
        stream.send(copy_rows(plan.writes.iter(), at)).await?;
        Ok(plan.outcomes)
    }

    async fn close_stream(
        stream: CopyStream,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        stream.close().await
    }

    /// The hash index stays: building it afterwards took longer (1.9 s for
    /// 1M clients) than its inserts during the load (1.4 s).
    async fn begin_bulk(conn: &mut PgConnection) -> Result<bool, StoreError> {
        let (any,): (bool,) = sqlx::query_as(ANY_CLIENT).fetch_one(&mut *conn).await?;
        Ok(!any)
    }

    async fn end_bulk(_conn: &mut PgConnection) -> Result<(), StoreError> {
        Ok(())
    }
}

async fn write_batch(
    conn: &mut PgConnection,
    batch: &[ClientRecord],
    at: DateTime<Utc>,
) -> Result<Vec<RowOutcome>, StoreError> {
    let (new_ids, existing) = stored_state(conn, batch).await?;
    write_planned(conn, batch, existing, &new_ids, at).await
}

/// Which of the batch's ids the store lacks, and the stored state of the
/// rows that differ from it.
async fn stored_state(
    conn: &mut PgConnection,
    batch: &[ClientRecord],
) -> Result<(HashSet<String>, HashMap<String, Existing>), StoreError> {
    let ids: Vec<&str> = batch.iter().map(|r| r.client.id.as_str()).collect();
    // One aggregated row, so that a fresh import pulls no row per client.
    let (missing,): (Option<Vec<String>>,) = sqlx::query_as(
        "SELECT array_agg(DISTINCT v.id) FROM UNNEST($1::text[]) AS v(id) \
         WHERE NOT EXISTS (SELECT 1 FROM clients c WHERE c.id = v.id)",
    )
    .bind(&ids)
    .fetch_one(&mut *conn)
    .await?;
    let new_ids: HashSet<String> = missing.unwrap_or_default().into_iter().collect();
    // Only the rows the store has can differ from it.
    let stored: Vec<&ClientRecord> = batch
        .iter()
        .filter(|r| !new_ids.contains(r.client.id.as_str()))
        .collect();
    let rows: Vec<ExistingColumns> = if stored.is_empty() {
        Vec::new()
    } else {
        let consent = |i: usize| stored.iter().map(|r| r.consents[i]).collect::<Vec<_>>();
        sqlx::query_as(&format!(
            "SELECT DISTINCT {} FROM UNNEST($1::text[], $2::bytea[], $3::bool[], $4::bool[], $5::bool[]) \
               AS v(id, h, ce, cs, cp) JOIN clients c ON c.id = v.id WHERE {DIFFERS}",
            prefixed_existing_columns()
        ))
        .bind(stored.iter().map(|r| r.client.id.as_str()).collect::<Vec<_>>())
        .bind(stored.iter().map(|r| r.hash.to_vec()).collect::<Vec<_>>())
        .bind(consent(0))
        .bind(consent(1))
        .bind(consent(2))
        .fetch_all(&mut *conn)
        .await?
    };
    let existing = rows
        .into_iter()
        .map(ExistingColumns::into_existing)
        .collect::<Result<_, _>>()?;
    Ok((new_ids, existing))
}

async fn write_planned(
    conn: &mut PgConnection,
    batch: &[ClientRecord],
    existing: HashMap<String, Existing>,
    new_ids: &HashSet<String>,
    at: DateTime<Utc>,
) -> Result<Vec<RowOutcome>, StoreError> {
    let plan = plan(batch, existing, new_ids, at);
    let (new, updated): (Vec<&RowWrite>, Vec<&RowWrite>) = plan
        .writes
        .iter()
        .partition(|w| new_ids.contains(w.client.id.as_str()));
    copy_new_clients(conn, &new, at).await?;
    upsert_clients(conn, &updated, at).await?;
    insert_consent_log(conn, &plan.log).await?;
    if !plan.writes.is_empty() {
        sqlx::query(BUMP_DATA_VERSION).execute(&mut *conn).await?;
    }
    Ok(plan.outcomes)
}

/// New clients go in with COPY, PostgreSQL's bulk path. They were checked
/// missing in this transaction; a concurrent import of the same ids fails
/// this batch on the primary key rather than writing anything twice.
async fn copy_new_clients(
    conn: &mut PgConnection,
    writes: &[&RowWrite<'_>],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    let mut copy = conn.copy_in_raw(&copy_statement()).await?;
    copy.send(&pg_copy::HEADER[..]).await?;
    copy.send(copy_rows(writes.iter().copied(), at)).await?;
    copy.send(&pg_copy::TRAILER[..]).await?;
    copy.finish().await?;
    Ok(())
}

fn copy_statement() -> String {
    format!(
        "COPY clients ({}) FROM STDIN WITH (FORMAT binary)",
        CLIENT_COLUMNS.join(", ")
    )
}

/// New clients' rows in COPY's binary form, columns in table order.
fn copy_rows<'w>(
    writes: impl ExactSizeIterator<Item = &'w RowWrite<'w>>,
    at: DateTime<Utc>,
) -> Vec<u8> {
    let fields = i16::try_from(CLIENT_COLUMNS.len()).expect("a few columns");
    let mut data = CopyBinary::with_capacity(writes.len() * 400);
    for w in writes {
        let c = w.client;
        data.row(fields)
            .text(c.id.as_str())
            .text(&c.name)
            .opt_text(c.email.as_ref().map(|e| e.as_str()))
            .opt_text(c.phone.as_ref().map(|p| p.as_str()))
            .opt_text(c.branch.as_deref())
            .opt_text(c.advisor.as_deref())
            .text(c.investor_type.as_str())
            .opt_i16(c.risk_level.map(|l| i16::from(l.number())))
            .opt_date(c.risk_assessed_on)
            .bool(c.lowest_risk_category)
            .opt_i64(c.assets.map(|a| a.fen()))
            .joined(c.tags.iter().map(String::as_str))
            .joined(c.holdings.iter().map(StockCode::as_str))
            .joined(c.watchlist.iter().map(StockCode::as_str))
            .opt_date(c.birthday)
            .opt_date(c.opened_on)
            .opt_date(c.last_trade_on)
            .jsonb(&c.attributes);
        for state in &w.consents {
            data.bool(state.granted)
                .text(state.source.as_str())
                .timestamp(state.at);
        }
        data.bytea(&w.hash).timestamp(at).timestamp(at);
    }
    data.into_bytes()
}

/// One COPY that takes the rows of many batches while the import reads
/// on: the server stores one batch while the next is parsed and encoded.
pub type CopyStream = LoadTask<Vec<u8>, Transaction<'static, Postgres>>;

async fn stream_copy(
    mut tx: Transaction<'static, Postgres>,
    mut queued: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> Result<Transaction<'static, Postgres>, StoreError> {
    let mut copy = tx.copy_in_raw(&copy_statement()).await?;
    copy.send(&pg_copy::HEADER[..]).await?;
    while let Some(rows) = queued.recv().await {
        copy.send(rows).await?;
    }
    copy.send(&pg_copy::TRAILER[..]).await?;
    copy.finish().await?;
    sqlx::query(BUMP_DATA_VERSION).execute(&mut *tx).await?;
    Ok(tx)
}

/// One array per column, for UNNEST.
#[derive(Default)]
struct ClientArrays {
    id: Vec<String>,
    name: Vec<String>,
    email: Vec<Option<String>>,
    phone: Vec<Option<String>>,
    branch: Vec<Option<String>>,
    advisor: Vec<Option<String>>,
    investor_type: Vec<String>,
    risk_level: Vec<Option<i16>>,
    risk_assessed_on: Vec<Option<NaiveDate>>,
    lowest_risk_category: Vec<bool>,
    assets_fen: Vec<Option<i64>>,
    tags: Vec<String>,
    holdings: Vec<String>,
    watchlist: Vec<String>,
    birthday: Vec<Option<NaiveDate>>,
    opened_on: Vec<Option<NaiveDate>>,
    last_trade_on: Vec<Option<NaiveDate>>,
    attributes: Vec<String>,
    consent: [Vec<bool>; 3],
    consent_source: [Vec<String>; 3],
    consent_at: [Vec<DateTime<Utc>>; 3],
    row_hash: Vec<Vec<u8>>,
}

impl ClientArrays {
    fn push(&mut self, r: ClientColumns) {
        self.id.push(r.id);
        self.name.push(r.name);
        self.email.push(r.email);
        self.phone.push(r.phone);
        self.branch.push(r.branch);
        self.advisor.push(r.advisor);
        self.investor_type.push(r.investor_type);
        self.risk_level.push(r.risk_level);
        self.risk_assessed_on.push(r.risk_assessed_on);
        self.lowest_risk_category.push(r.lowest_risk_category);
        self.assets_fen.push(r.assets_fen);
        self.tags.push(r.tags);
        self.holdings.push(r.holdings);
        self.watchlist.push(r.watchlist);
        self.birthday.push(r.birthday);
        self.opened_on.push(r.opened_on);
        self.last_trade_on.push(r.last_trade_on);
        self.attributes
            .push(serde_json::Value::Object(r.attributes.0).to_string());
        let consents = [
            (r.consent_email, r.consent_email_source, r.consent_email_at),
            (r.consent_sms, r.consent_sms_source, r.consent_sms_at),
            (
                r.personalised_marketing,
                r.personalised_marketing_source,
                r.personalised_marketing_at,
            ),
        ];
        for (i, (granted, source, at)) in consents.into_iter().enumerate() {
            self.consent[i].push(granted);
            self.consent_source[i].push(source);
            self.consent_at[i].push(at);
        }
        self.row_hash.push(r.row_hash);
    }
}

async fn upsert_clients(
    conn: &mut PgConnection,
    writes: &[&RowWrite<'_>],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    let mut a = ClientArrays::default();
    for w in writes {
        a.push(ClientColumns::from_write(w, at));
    }
    let columns = CLIENT_COLUMNS.join(", ");
    let sql = format!(
        "INSERT INTO clients ({columns}) \
         SELECT id, name, email, phone, branch, advisor, investor_type, risk_level, risk_assessed_on, \
                lowest_risk_category, assets_fen, tags, holdings, watchlist, birthday, opened_on, \
                last_trade_on, attributes::jsonb, consent_email, consent_email_source, consent_email_at, \
                consent_sms, consent_sms_source, consent_sms_at, personalised_marketing, \
                personalised_marketing_source, personalised_marketing_at, row_hash, $29, $29 \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                     $8::smallint[], $9::date[], $10::bool[], $11::bigint[], $12::text[], $13::text[], \
                     $14::text[], $15::date[], $16::date[], $17::date[], $18::text[], $19::bool[], \
                     $20::text[], $21::bool[], $22::text[], $23::bool[], $24::text[], $25::bytea[], \
                     $26::timestamptz[], $27::timestamptz[], $28::timestamptz[]) \
           AS u(id, name, email, phone, branch, advisor, investor_type, risk_level, risk_assessed_on, \
                lowest_risk_category, assets_fen, tags, holdings, watchlist, birthday, opened_on, \
                last_trade_on, attributes, consent_email, consent_email_source, consent_sms, \
                consent_sms_source, personalised_marketing, personalised_marketing_source, row_hash, \
                consent_email_at, consent_sms_at, personalised_marketing_at) \
         ON CONFLICT (id) DO UPDATE SET {}",
        upsert_assignments()
    );
    let [c_email, c_sms, c_pm] = a.consent;
    let [s_email, s_sms, s_pm] = a.consent_source;
    let [at_email, at_sms, at_pm] = a.consent_at;
    sqlx::query(&sql)
        .bind(a.id)
        .bind(a.name)
        .bind(a.email)
        .bind(a.phone)
        .bind(a.branch)
        .bind(a.advisor)
        .bind(a.investor_type)
        .bind(a.risk_level)
        .bind(a.risk_assessed_on)
        .bind(a.lowest_risk_category)
        .bind(a.assets_fen)
        .bind(a.tags)
        .bind(a.holdings)
        .bind(a.watchlist)
        .bind(a.birthday)
        .bind(a.opened_on)
        .bind(a.last_trade_on)
        .bind(a.attributes)
        .bind(c_email)
        .bind(s_email)
        .bind(c_sms)
        .bind(s_sms)
        .bind(c_pm)
        .bind(s_pm)
        .bind(a.row_hash)
        .bind(at_email)
        .bind(at_sms)
        .bind(at_pm)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Appends consent changes. They are rare (opt-outs, restores, the CRM
/// changing its mind), so one statement each.
async fn insert_consent_log(
    conn: &mut PgConnection,
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

/// Stores events within `tx`: each reported as stored, duplicate or refused
/// (its client unknown). `clients_known`: the caller read every client from
/// the store already (clients are never deleted), so none is looked up.
async fn insert_events_in(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    events: &[NewEvent],
    clients_known: bool,
) -> Result<Vec<EventOutcome>, StoreError> {
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e.client_id.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let known: HashSet<String> = if clients_known {
        ids.iter().map(|id| id.to_string()).collect()
    } else {
        sqlx::query_as::<_, (String,)>("SELECT id FROM clients WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .map(|(id,)| id)
            .collect()
    };
    let keys: Vec<Vec<u8>> = events.iter().map(NewEvent::dedupe_key).collect();
    let rows: Vec<(&NewEvent, &Vec<u8>)> = events
        .iter()
        .zip(&keys)
        .filter(|(e, _)| known.contains(e.client_id.as_str()))
        .collect();
    let mut qb = QueryBuilder::new("");
    push_events(&mut qb, &rows, Utc::now());
    qb.push(" RETURNING dedupe_key");
    let stored: Vec<(Vec<u8>,)> = qb.build_query_as().fetch_all(&mut **tx).await?;
    if !stored.is_empty() {
        sqlx::query(BUMP_DATA_VERSION).execute(&mut **tx).await?;
    }
    Ok(event_outcomes(
        events,
        &keys,
        &known,
        stored.into_iter().map(|(k,)| k).collect(),
    ))
}

/// One UPDATE setting each outcome's delivery from one array per column:
/// the same text for any number of outcomes, so it is parsed and planned
/// once per connection rather than per group.
fn push_outcomes(
    qb: &mut QueryBuilder<'_, Postgres>,
    chunk: &[DeliveryUpdate],
    now: DateTime<Utc>,
) {
    qb.push(OUTCOME_ASSIGNMENTS)
        .push_bind(now)
        .push(" FROM UNNEST(");
    qb.push_bind(column(chunk, |u| u.id))
        .push("::bigint[], ")
        .push_bind(column(chunk, |u| u.state.as_str().to_owned()))
        .push("::text[], ")
        .push_bind(column(chunk, |u| u.provider_id.clone()))
        .push("::text[], ")
        .push_bind(column(chunk, |u| u.error.clone()))
        .push("::text[], ")
        .push_bind(column(chunk, |u| u.not_before))
        .push("::timestamptz[], ")
        .push_bind(column(chunk, |u| u.sent_at))
        .push("::timestamptz[], ")
        .push_bind(column(chunk, |u| u.switch_to.as_ref().map(|s| s.0.as_str().to_owned())))
        .push("::text[], ")
        .push_bind(column(chunk, |u| u.switch_to.as_ref().map(|s| s.1.clone())))
        .push("::text[], ")
        .push_bind(column(chunk, |u| u.switch_to.as_ref().map(|s| channel_list(&s.2))))
        .push(
            "::text[]) AS v(id, state, provider_id, error, not_before, sent_at, channel, address, fallback) \
             WHERE deliveries.id = v.id",
        );
}

/// Deliveries per INSERT: one array per column, so any number would do;
/// this bounds the message sent to the server.
const DELIVERIES_PER_INSERT: usize = 10_000;

/// Suppressions per INSERT, likewise.
const SUPPRESSIONS_PER_INSERT: usize = 10_000;

/// A run's planned deliveries, all queued, as one array per column: the
/// statement's text is the same for every chunk, and PostgreSQL parses 4
/// arrays rather than 9,000 parameters.
fn push_deliveries<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    run_id: i64,
    chunk: &'a [NewDelivery],
    now: DateTime<Utc>,
) {
    qb.push("SELECT ")
        .push_bind(run_id)
        .push(", client_id, channel, address, fallback, 'queued', not_before, decision, ")
        .push_bind(now)
        .push(" FROM UNNEST(")
        .push_bind(column(chunk, |d| d.client_id.as_str()))
        .push("::text[], ")
        .push_bind(column(chunk, |d| d.channel.as_str()))
        .push("::text[], ")
        .push_bind(column(chunk, |d| d.address.as_str()))
        .push("::text[], ")
        .push_bind(column(chunk, |d| channel_list(&d.fallback)))
        .push("::text[], ")
        .push_bind(column(chunk, |d| d.not_before))
        .push("::timestamptz[], ")
        .push_bind(column(chunk, |d| d.decision.as_str()))
        .push("::text[]) AS d(client_id, channel, address, fallback, not_before, decision)");
}

/// A run's suppressions as one array per column.
fn push_suppressions<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    run_id: i64,
    chunk: &'a [NewSuppression],
) {
    qb.push("SELECT ")
        .push_bind(run_id)
        .push(", client_id, reason, channel FROM UNNEST(")
        .push_bind(column(chunk, |s| s.client_id.as_str()))
        .push("::text[], ")
        .push_bind(column(chunk, |s| s.reason))
        .push("::text[], ")
        .push_bind(column(chunk, |s| s.channel.map(|c| c.as_str())))
        .push("::text[]) AS s(client_id, reason, channel)");
}

/// An INSERT of chained archive records, one array per column.
fn push_archive(qb: &mut QueryBuilder<'_, Postgres>, chunk: &[Chained<'_>]) {
    qb.push(ARCHIVE_INSERT).push(
        "SELECT seq, delivery_id, run_id, client_id, archived_at, '', body, dictionary, prev_hash, hash \
         FROM UNNEST(",
    );
    qb.push_bind(column(chunk, |c| c.seq))
        .push("::bigint[], ")
        .push_bind(column(chunk, |c| c.entry.delivery_id))
        .push("::bigint[], ")
        .push_bind(column(chunk, |c| c.entry.run_id))
        .push("::bigint[], ")
        .push_bind(column(chunk, |c| c.entry.client_id.clone()))
        .push("::text[], ")
        .push_bind(column(chunk, |c| c.entry.at))
        .push("::timestamptz[], ")
        .push_bind(column(chunk, |c| c.entry.body.clone()))
        .push("::bytea[], ")
        .push_bind(column(chunk, |c| c.entry.dictionary.clone()))
        .push("::text[], ")
        .push_bind(column(chunk, |c| c.prev_hash.clone()))
        .push("::text[], ")
        .push_bind(column(chunk, |c| c.hash.clone()))
        .push(
            "::text[]) AS a(seq, delivery_id, run_id, client_id, archived_at, body, dictionary, prev_hash, hash)",
        );
}

/// One column of `rows`, to bind as an array.
fn column<'a, R, T>(rows: &'a [R], f: impl Fn(&'a R) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

/// ` = ANY(ids)`: one array, so the statement's text is the same for any
/// number of ids.
fn push_id_in(qb: &mut QueryBuilder<'_, Postgres>, ids: &[i64]) {
    qb.push(" = ANY(").push_bind(ids.to_vec()).push(")");
}

/// An INSERT of events, each with its dedupe key, as one array per column;
/// a duplicate is skipped.
fn push_events(
    qb: &mut QueryBuilder<'_, Postgres>,
    rows: &[(&NewEvent, &Vec<u8>)],
    now: DateTime<Utc>,
) {
    qb.push(
        "INSERT INTO events (client_id, occurred_at, kind, channel, campaign, campaign_kind, \
         run_id, delivery_id, source, details, dedupe_key, recorded_at, purpose) \
         SELECT client_id, occurred_at, kind, channel, campaign, campaign_kind, run_id, delivery_id, \
                source, details::jsonb, dedupe_key, ",
    );
    qb.push_bind(now).push(", purpose FROM UNNEST(");
    qb.push_bind(column(rows, |(e, _)| e.client_id.to_string()))
        .push("::text[], ")
        .push_bind(column(rows, |(e, _)| e.at))
        .push("::timestamptz[], ")
        .push_bind(column(rows, |(e, _)| e.kind.as_str().to_owned()))
        .push("::text[], ")
        .push_bind(column(rows, |(e, _)| e.channel.map(|c| c.as_str().to_owned())))
        .push("::text[], ")
        .push_bind(column(rows, |(e, _)| e.campaign.clone()))
        .push("::text[], ")
        .push_bind(column(rows, |(e, _)| e.campaign_kind.clone()))
        .push("::text[], ")
        .push_bind(column(rows, |(e, _)| e.run_id))
        .push("::bigint[], ")
        .push_bind(column(rows, |(e, _)| e.delivery_id))
        .push("::bigint[], ")
        .push_bind(column(rows, |(e, _)| e.source.clone()))
        .push("::text[], ")
        .push_bind(column(rows, |(e, _)| e.details.to_string()))
        .push("::text[], ")
        .push_bind(column(rows, |(_, k)| k.to_vec()))
        .push("::bytea[], ")
        .push_bind(column(rows, |(e, _)| e.purpose.map(|p| p.as_str().to_owned())))
        .push(
            "::text[]) AS u(client_id, occurred_at, kind, channel, campaign, campaign_kind, run_id, \
             delivery_id, source, details, dedupe_key, purpose) ON CONFLICT (dedupe_key) DO NOTHING",
        );
}
