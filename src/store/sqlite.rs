//! The SQLite store: one file, WAL mode, no server.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool, Transaction};

use super::columns::{
    consent_column, upsert_assignments, ClientColumns, ConsentLogColumns, EventColumns,
    ExistingColumns, CLIENT_COLUMNS, EVENT_SELECT, EXISTING_COLUMNS,
};
use super::upsert::{plan, RowWrite};
use super::{
    event_outcomes, Backend, ClientWriter, DatabaseUrl, EventOutcome, RowOutcome, Store, StoreError,
};
use crate::client::consent::ConsentChange;
use crate::client::types::ClientId;
use crate::client::{ClientRecord, StoredClient};
use crate::event::{NewEvent, StoredEvent};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite allows 32,766 bound values per statement; stay well below.
const ROWS_PER_INSERT: usize = 500;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn open(url: &DatabaseUrl) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url.expose())?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL loses no committed transaction on a process
            // crash, only on power loss; FULL would halve import speed.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn client_writer(&self, atomic: bool) -> Result<Box<dyn ClientWriter>, StoreError> {
        let tx = if atomic {
            Some(self.pool.begin().await?)
        } else {
            None
        };
        Ok(Box::new(SqliteClientWriter {
            pool: self.pool.clone(),
            tx,
        }))
    }

    async fn client(&self, id: &ClientId) -> Result<Option<StoredClient>, StoreError> {
        let sql = format!(
            "SELECT {} FROM clients WHERE id = $1",
            CLIENT_COLUMNS.join(", ")
        );
        let row: Option<ClientColumns> = sqlx::query_as(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(ClientColumns::into_client).transpose()
    }

    async fn count_clients(&self) -> Result<u64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM clients")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn record_consent(&self, change: &ConsentChange) -> Result<bool, StoreError> {
        let col = consent_column(change.scope);
        let sql = format!(
            "UPDATE clients SET {col} = $1, {col}_source = $2, {col}_at = $3, updated_at = $3 WHERE id = $4"
        );
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(&sql)
            .bind(change.granted)
            .bind(change.source.as_str())
            .bind(change.at)
            .bind(change.client_id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        insert_consent_log(&mut tx, std::slice::from_ref(change)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn consent_history(&self, id: &ClientId) -> Result<Vec<ConsentChange>, StoreError> {
        let rows: Vec<ConsentLogColumns> = sqlx::query_as(
            "SELECT client_id, scope, granted, source, at, actor, note FROM consent_log \
             WHERE client_id = $1 ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(ConsentLogColumns::into_change)
            .collect()
    }

    async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<EventOutcome>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids: HashSet<&str> = events.iter().map(|e| e.client_id.as_str()).collect();
        let known = existing_ids(&mut tx, &ids).await?;
        let keys: Vec<Vec<u8>> = events.iter().map(NewEvent::dedupe_key).collect();
        let mut stored = HashSet::new();
        let now = Utc::now();
        let insertable: Vec<(&NewEvent, &Vec<u8>)> = events
            .iter()
            .zip(&keys)
            .filter(|(e, _)| known.contains(e.client_id.as_str()))
            .collect();
        for chunk in insertable.chunks(ROWS_PER_INSERT / 2) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO events (client_id, occurred_at, kind, channel, campaign, campaign_kind, \
                 run_id, delivery_id, source, details, dedupe_key, recorded_at) ",
            );
            qb.push_values(chunk, |mut b, (e, key)| {
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
                    .push_bind(now);
            });
            qb.push(" ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key");
            let rows: Vec<(Vec<u8>,)> = qb.build_query_as().fetch_all(&mut *tx).await?;
            stored.extend(rows.into_iter().map(|(k,)| k));
        }
        tx.commit().await?;
        Ok(event_outcomes(events, &keys, &known, stored))
    }

    async fn client_events(
        &self,
        id: &ClientId,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_SELECT} FROM events WHERE client_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2"
        );
        let rows: Vec<EventColumns> = sqlx::query_as(&sql)
            .bind(id.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(EventColumns::into_event).collect()
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

struct SqliteClientWriter {
    pool: SqlitePool,
    /// Held for an atomic import; `None` commits batch by batch.
    tx: Option<Transaction<'static, Sqlite>>,
}

#[async_trait]
impl ClientWriter for SqliteClientWriter {
    async fn write(
        &mut self,
        batch: &[ClientRecord],
        at: DateTime<Utc>,
    ) -> Result<Vec<RowOutcome>, StoreError> {
        match &mut self.tx {
            Some(tx) => write_batch(tx, batch, at).await,
            None => {
                let mut tx = self.pool.begin().await?;
                let outcomes = write_batch(&mut tx, batch, at).await?;
                tx.commit().await?;
                Ok(outcomes)
            }
        }
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        if let Some(tx) = self.tx {
            tx.commit().await?;
        }
        Ok(())
    }
}

async fn write_batch(
    conn: &mut SqliteConnection,
    batch: &[ClientRecord],
    at: DateTime<Utc>,
) -> Result<Vec<RowOutcome>, StoreError> {
    let ids: HashSet<&str> = batch.iter().map(|r| r.client.id.as_str()).collect();
    let existing = fetch_existing(conn, &ids).await?;
    let plan = plan(batch, existing, at);
    upsert_clients(conn, &plan.writes, at).await?;
    insert_consent_log(conn, &plan.log).await?;
    Ok(plan.outcomes)
}

async fn fetch_existing(
    conn: &mut SqliteConnection,
    ids: &HashSet<&str>,
) -> Result<HashMap<String, super::upsert::Existing>, StoreError> {
    let ids: Vec<&str> = ids.iter().copied().collect();
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS_PER_INSERT) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {EXISTING_COLUMNS} FROM clients WHERE id IN ("
        ));
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind(*id);
        }
        qb.push(")");
        let rows: Vec<ExistingColumns> = qb.build_query_as().fetch_all(&mut *conn).await?;
        for row in rows {
            let (id, existing) = row.into_existing()?;
            found.insert(id, existing);
        }
    }
    Ok(found)
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

async fn upsert_clients(
    conn: &mut SqliteConnection,
    writes: &[RowWrite<'_>],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let rows_per_statement = ROWS_PER_INSERT / 4;
    let head = format!("INSERT INTO clients ({}) ", CLIENT_COLUMNS.join(", "));
    let tail = format!(" ON CONFLICT (id) DO UPDATE SET {}", upsert_assignments());
    for chunk in writes.chunks(rows_per_statement) {
        let rows: Vec<ClientColumns> = chunk
            .iter()
            .map(|w| ClientColumns::from_write(w, at))
            .collect();
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(&head);
        qb.push_values(rows, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.name)
                .push_bind(r.email)
                .push_bind(r.phone)
                .push_bind(r.branch)
                .push_bind(r.advisor)
                .push_bind(r.investor_type)
                .push_bind(r.risk_level)
                .push_bind(r.risk_assessed_on)
                .push_bind(r.lowest_risk_category)
                .push_bind(r.assets_fen)
                .push_bind(r.tags)
                .push_bind(r.holdings)
                .push_bind(r.watchlist)
                .push_bind(r.birthday)
                .push_bind(r.opened_on)
                .push_bind(r.last_trade_on)
                .push_bind(r.attributes)
                .push_bind(r.consent_email)
                .push_bind(r.consent_email_source)
                .push_bind(r.consent_email_at)
                .push_bind(r.consent_sms)
                .push_bind(r.consent_sms_source)
                .push_bind(r.consent_sms_at)
                .push_bind(r.personalised_marketing)
                .push_bind(r.personalised_marketing_source)
                .push_bind(r.personalised_marketing_at)
                .push_bind(r.row_hash)
                .push_bind(r.created_at)
                .push_bind(r.updated_at);
        });
        qb.push(&tail);
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

async fn insert_consent_log(
    conn: &mut SqliteConnection,
    log: &[ConsentChange],
) -> Result<(), StoreError> {
    for chunk in log.chunks(ROWS_PER_INSERT) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO consent_log (client_id, scope, granted, source, at, actor, note) ",
        );
        qb.push_values(chunk, |mut b, c| {
            b.push_bind(c.client_id.as_str())
                .push_bind(c.scope.as_str())
                .push_bind(c.granted)
                .push_bind(c.source.as_str())
                .push_bind(c.at)
                .push_bind(c.actor.as_deref())
                .push_bind(c.note.as_deref());
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}
