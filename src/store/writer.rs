//! The client writer both backends share: batches go into one transaction
//! that is committed every [`COMMIT_EVERY`] rows (or only at the end, for an
//! atomic import). Committing per batch would spend more time in commits and
//! WAL checkpoints than in writing rows.
//!
//! An import into an empty table (the first load of a firm's clients) is a
//! bulk load and is written as one: rows whose ids this import has not
//! written yet are not looked up, since they cannot be stored, and SQLite
//! builds its phone index once at the end from sorted data instead of
//! inserting a million random keys into it.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Database, Pool, Transaction};

use super::{ClientWriter, RowOutcome, StoreError};
use crate::client::ClientRecord;

/// Rows per transaction for a non-atomic import. A crash loses at most this
/// much progress, which re-running the import repeats harmlessly.
pub const COMMIT_EVERY: usize = 20_000;

/// Whether a batch's ids are known to be absent from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    /// Look each one up.
    Unknown,
    /// None is stored: every row is new.
    AllNew,
}

/// How a backend writes one batch inside a transaction.
#[async_trait]
pub trait BatchWriter: Database {
    /// How a write transaction starts: SQLite takes its write lock at once
    /// (`BEGIN IMMEDIATE`), or a concurrent writer makes the batch fail
    /// instead of wait.
    const BEGIN: &'static str;

    /// Whether the clients table is empty; if it is, the backend may drop
    /// indexes it builds faster afterwards than row by row.
    async fn begin_bulk(conn: &mut <Self as Database>::Connection) -> Result<bool, StoreError>;

    /// Rebuilds what `begin_bulk` dropped.
    async fn end_bulk(conn: &mut <Self as Database>::Connection) -> Result<(), StoreError>;

    async fn write_batch(
        conn: &mut <Self as Database>::Connection,
        batch: &[ClientRecord],
        at: DateTime<Utc>,
        ids: Ids,
    ) -> Result<Vec<RowOutcome>, StoreError>;
}

pub const ANY_CLIENT: &str = "SELECT EXISTS (SELECT 1 FROM clients)";

pub struct PooledWriter<DB: Database> {
    pool: Pool<DB>,
    tx: Option<Transaction<'static, DB>>,
    atomic: bool,
    rows_in_tx: usize,
    /// Decided by the first batch: `Some` when the table was empty, with
    /// the hashes of the ids written since.
    bulk: Option<Option<BulkLoad>>,
}

/// An import into an empty table.
struct BulkLoad {
    /// Hashes of the ids written so far: a collision only sends a batch
    /// the slow way, through the lookups.
    written: HashSet<u64>,
    hasher: RandomState,
}

impl BulkLoad {
    /// Whether none of the batch's ids was written before (nor repeats
    /// within it); remembers them all either way.
    fn all_new(&mut self, batch: &[ClientRecord]) -> bool {
        let mut new = true;
        for r in batch {
            let h = self.hasher.hash_one(r.client.id.as_str());
            new &= self.written.insert(h);
        }
        new
    }
}

impl<DB: Database> PooledWriter<DB> {
    pub fn new(pool: Pool<DB>, atomic: bool) -> Self {
        Self {
            pool,
            tx: None,
            atomic,
            rows_in_tx: 0,
            bulk: None,
        }
    }
}

#[async_trait]
impl<DB: BatchWriter> ClientWriter for PooledWriter<DB> {
    async fn write(
        &mut self,
        batch: &[ClientRecord],
        at: DateTime<Utc>,
    ) -> Result<Vec<RowOutcome>, StoreError> {
        let tx = match &mut self.tx {
            Some(tx) => tx,
            None => self.tx.insert(self.pool.begin_with(DB::BEGIN).await?),
        };
        let bulk = match &mut self.bulk {
            Some(bulk) => bulk,
            None => {
                let empty = DB::begin_bulk(tx).await?;
                self.bulk.insert(empty.then(|| BulkLoad {
                    written: HashSet::new(),
                    hasher: RandomState::new(),
                }))
            }
        };
        let ids = match bulk.as_mut().map(|b| b.all_new(batch)) {
            Some(true) => Ids::AllNew,
            _ => Ids::Unknown,
        };
        let outcomes = DB::write_batch(tx, batch, at, ids).await?;
        self.rows_in_tx += batch.len();
        if !self.atomic && self.rows_in_tx >= COMMIT_EVERY {
            if let Some(tx) = self.tx.take() {
                tx.commit().await?;
            }
            self.rows_in_tx = 0;
        }
        Ok(outcomes)
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let bulk = matches!(self.bulk, Some(Some(_)));
        let tx = match self.tx {
            Some(tx) => Some(tx),
            None if bulk => Some(self.pool.begin_with(DB::BEGIN).await?),
            None => None,
        };
        if let Some(mut tx) = tx {
            if bulk {
                DB::end_bulk(&mut tx).await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }
}
