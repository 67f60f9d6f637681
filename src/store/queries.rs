//! The reads whose SQL is the same on both backends, written once. The
//! macro gives each backend module its own copy of these functions over its
//! concrete pool type, so each is type-checked against its driver; the
//! backends' `Store` methods delegate to them.

macro_rules! shared_queries {
    ($db:ty) => {
        /// A client with its consents.
        async fn fetch_client(
            pool: &sqlx::Pool<$db>,
            id: &crate::client::types::ClientId,
        ) -> Result<Option<crate::client::StoredClient>, super::StoreError> {
            use super::columns::{ClientColumns, CLIENT_COLUMNS};
            let sql = format!("SELECT {} FROM clients WHERE id = $1", CLIENT_COLUMNS.join(", "));
            let row: Option<ClientColumns> = sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(pool).await?;
            row.map(ClientColumns::into_client).transpose()
        }

        async fn fetch_count_clients(pool: &sqlx::Pool<$db>) -> Result<u64, super::StoreError> {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM clients").fetch_one(pool).await?;
            Ok(n as u64)
        }

        /// A client's consent history, oldest first; empty for an unknown id.
        async fn fetch_consent_history(
            pool: &sqlx::Pool<$db>,
            id: &crate::client::types::ClientId,
        ) -> Result<Vec<crate::client::consent::ConsentChange>, super::StoreError> {
            use super::columns::{
                consent_history, ConsentLogColumns, ExistingColumns, CONSENT_LOG_SELECT, CONSENT_STATE_SELECT,
            };
            let row: Option<ExistingColumns> =
                sqlx::query_as(CONSENT_STATE_SELECT).bind(id.as_str()).fetch_optional(pool).await?;
            let Some(row) = row else {
                return Ok(Vec::new());
            };
            let (_, current) = row.into_existing()?;
            let log: Vec<ConsentLogColumns> =
                sqlx::query_as(CONSENT_LOG_SELECT).bind(id.as_str()).fetch_all(pool).await?;
            consent_history(id, &current.consents, log)
        }

        /// A client's most recent events, newest first.
        async fn fetch_client_events(
            pool: &sqlx::Pool<$db>,
            id: &crate::client::types::ClientId,
            limit: u32,
        ) -> Result<Vec<crate::event::StoredEvent>, super::StoreError> {
            use super::columns::{EventColumns, EVENT_SELECT};
            let sql = format!(
                "SELECT {EVENT_SELECT} FROM events WHERE client_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2"
            );
            let rows: Vec<EventColumns> =
                sqlx::query_as(&sql).bind(id.as_str()).bind(i64::from(limit)).fetch_all(pool).await?;
            rows.into_iter().map(EventColumns::into_event).collect()
        }

        /// Clients in id order after `after`, at most `limit`.
        async fn fetch_clients_page(
            pool: &sqlx::Pool<$db>,
            after: Option<&crate::client::types::ClientId>,
            limit: u32,
        ) -> Result<Vec<crate::client::StoredClient>, super::StoreError> {
            use super::columns::{clients_page_select, ClientColumns};
            let rows: Vec<ClientColumns> = sqlx::query_as(&clients_page_select())
                .bind(after.map(crate::client::types::ClientId::as_str))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(ClientColumns::into_client).collect()
        }

        /// The latest event per kind, channel and campaign kind, for the ids
        /// from `first` to `last`, in id order.
        async fn fetch_engagement(
            pool: &sqlx::Pool<$db>,
            first: &crate::client::types::ClientId,
            last: &crate::client::types::ClientId,
        ) -> Result<Vec<crate::event::Engagement>, super::StoreError> {
            use super::columns::{EngagementColumns, ENGAGEMENT_SELECT};
            let rows: Vec<EngagementColumns> =
                sqlx::query_as(ENGAGEMENT_SELECT).bind(first.as_str()).bind(last.as_str()).fetch_all(pool).await?;
            rows.into_iter().map(EngagementColumns::into_engagement).collect()
        }

        async fn fetch_data_version(pool: &sqlx::Pool<$db>) -> Result<i64, super::StoreError> {
            let (v,): (i64,) = sqlx::query_as(super::columns::DATA_VERSION_SELECT).fetch_one(pool).await?;
            Ok(v)
        }
    };
}

pub(super) use shared_queries;
