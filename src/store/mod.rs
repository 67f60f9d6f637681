//! The client database. One [`Store`] trait, one implementation per backend
//! (SQLite by default, PostgreSQL for several instances), picked by the
//! database URL's scheme. All SQL lives under this module.

mod columns;
mod postgres;
mod queries;
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

/// The database behind herald.
#[async_trait]
pub trait Store: Send + Sync {
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

    /// Closes the connections, flushing what the backend buffers.
    async fn close(&self);
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
