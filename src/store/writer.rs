//! The client writer both backends share: batches go into one transaction
//! that is committed every [`COMMIT_EVERY`] rows (or only at the end, for an
//! atomic import). Committing per batch would spend more time in commits and
//! WAL checkpoints than in writing rows.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Database, Pool, Transaction};

use super::{ClientWriter, RowOutcome, StoreError};
use crate::client::ClientRecord;

/// Rows per transaction for a non-atomic import. A crash loses at most this
/// much progress, which re-running the import repeats harmlessly.
pub const COMMIT_EVERY: usize = 20_000;

/// How a backend writes one batch inside a transaction.
#[async_trait]
pub trait BatchWriter: Database {
    /// How a write transaction starts: SQLite takes its write lock at once
    /// (`BEGIN IMMEDIATE`), or a concurrent writer makes the batch fail
    /// instead of wait.
    const BEGIN: &'static str;

    async fn write_batch(
        conn: &mut <Self as Database>::Connection,
        batch: &[ClientRecord],
        at: DateTime<Utc>,
    ) -> Result<Vec<RowOutcome>, StoreError>;
}

pub struct PooledWriter<DB: Database> {
    pool: Pool<DB>,
    tx: Option<Transaction<'static, DB>>,
    atomic: bool,
    rows_in_tx: usize,
}

impl<DB: Database> PooledWriter<DB> {
    pub fn new(pool: Pool<DB>, atomic: bool) -> Self {
        Self {
            pool,
            tx: None,
            atomic,
            rows_in_tx: 0,
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
        let outcomes = DB::write_batch(tx, batch, at).await?;
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
        if let Some(tx) = self.tx {
            tx.commit().await?;
        }
        Ok(())
    }
}
