//! What several `herald serve` instances share through the database: the
//! scheduler's leadership (a lease one instance renews), who is alive, and
//! the channels' per-second sending quotas. [`super::FleetStore`] is written
//! once for both backends by the `fleet_queries!` macro.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One `herald serve` process, as it reports itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Instance {
    pub id: String,
    pub host: String,
    pub pid: i64,
    /// Comma-separated roles, e.g. `scheduler,dispatcher`.
    pub roles: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    /// Messages it has sent since it started.
    pub sent: i64,
}

/// Deliveries not yet finished, by channel, campaign kind and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct QueueDepth {
    pub channel: String,
    pub kind: String,
    pub state: String,
    pub count: i64,
}

macro_rules! fleet_queries {
    ($db:ty, $store:ty) => {
        #[async_trait::async_trait]
        impl super::FleetStore for $store {
            async fn take_lease(
                &self,
                name: &str,
                owner: &str,
                now: chrono::DateTime<chrono::Utc>,
                until: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, super::StoreError> {
                // Taken when free, lapsed, or already ours (a renewal): one
                // statement, so two instances cannot both win.
                let mut tx = begin_write(self.writer()).await?;
                let row: Option<(String,)> = sqlx::query_as(
                    "INSERT INTO leases (name, owner, until) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until \
                     WHERE leases.owner = excluded.owner OR leases.until < $4 \
                     RETURNING owner",
                )
                .bind(name)
                .bind(owner)
                .bind(until)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(row.is_some())
            }

            async fn release_lease(&self, name: &str, owner: &str) -> Result<(), super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                sqlx::query("DELETE FROM leases WHERE name = $1 AND owner = $2")
                    .bind(name)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn lease_holder(
                &self,
                name: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<String>, super::StoreError> {
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT owner FROM leases WHERE name = $1 AND until >= $2")
                        .bind(name)
                        .bind(now)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(o,)| o))
            }

            async fn heartbeat(&self, me: &super::fleet::Instance) -> Result<(), super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                sqlx::query(
                    "INSERT INTO instances (id, host, pid, roles, started_at, seen_at, sent) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, sent = excluded.sent, roles = excluded.roles",
                )
                .bind(&me.id)
                .bind(&me.host)
                .bind(me.pid)
                .bind(&me.roles)
                .bind(me.started_at)
                .bind(me.seen_at)
                .bind(me.sent)
                .execute(&mut *tx)
                .await?;
                // Instances gone a day are history, not fleet.
                sqlx::query("DELETE FROM instances WHERE seen_at < $1")
                    .bind(me.seen_at - chrono::Duration::days(1))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn instances(&self) -> Result<Vec<super::fleet::Instance>, super::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT id, host, pid, roles, started_at, seen_at, sent FROM instances ORDER BY started_at",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn take_quota(
                &self,
                provider: &str,
                second: i64,
                want: u32,
                limit: u32,
            ) -> Result<u32, super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                // Touching the row first locks it (PostgreSQL) until the
                // grant is written, so two instances never share a token.
                let (used,): (i64,) = sqlx::query_as(
                    "INSERT INTO send_quota (provider, second, used) VALUES ($1, $2, 0) \
                     ON CONFLICT (provider, second) DO UPDATE SET used = send_quota.used RETURNING used",
                )
                .bind(provider)
                .bind(second)
                .fetch_one(&mut *tx)
                .await?;
                let granted = (i64::from(limit) - used).clamp(0, i64::from(want)) as u32;
                if granted > 0 {
                    sqlx::query("UPDATE send_quota SET used = used + $3 WHERE provider = $1 AND second = $2")
                        .bind(provider)
                        .bind(second)
                        .bind(i64::from(granted))
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("DELETE FROM send_quota WHERE provider = $1 AND second < $2")
                    .bind(provider)
                    .bind(second - 60)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(granted)
            }

            async fn webhook_cursor(&self, name: &str) -> Result<i64, super::StoreError> {
                // A new webhook starts from now, not from all of history.
                // (`WHERE true`: SQLite's upsert after a SELECT needs one.)
                let mut tx = begin_write(self.writer()).await?;
                sqlx::query(
                    "INSERT INTO webhook_cursors (name, last_event_id) \
                     SELECT $1, COALESCE(MAX(id), 0) FROM events WHERE true ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .execute(&mut *tx)
                .await?;
                let (id,): (i64,) = sqlx::query_as("SELECT last_event_id FROM webhook_cursors WHERE name = $1")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(id)
            }

            async fn set_webhook_cursor(&self, name: &str, id: i64) -> Result<(), super::StoreError> {
                let mut tx = begin_write(self.writer()).await?;
                sqlx::query("UPDATE webhook_cursors SET last_event_id = $2 WHERE name = $1 AND last_event_id < $2")
                    .bind(name)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn events_after(
                &self,
                after: i64,
                recorded_before: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<crate::event::StoredEvent>, super::StoreError> {
                use super::columns::{EventColumns, EVENT_SELECT};
                let rows: Vec<EventColumns> = sqlx::query_as(&format!(
                    "SELECT {EVENT_SELECT} FROM events WHERE id > $1 AND recorded_at <= $2 ORDER BY id LIMIT $3"
                ))
                .bind(after)
                .bind(recorded_before)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(EventColumns::into_event).collect()
            }

            async fn queue_depth(&self) -> Result<Vec<super::fleet::QueueDepth>, super::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT d.channel AS channel, r.kind AS kind, d.state AS state, COUNT(*) AS count \
                     FROM deliveries d JOIN runs r ON r.id = d.run_id \
                     WHERE d.state IN ('queued', 'claimed', 'sending', 'uncertain') \
                     GROUP BY d.channel, r.kind, d.state ORDER BY d.channel, r.kind, d.state",
                )
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

pub(crate) use fleet_queries;
