//! The client writer both backends share: batches go into one transaction
//! that is committed every [`BatchWriter::ROWS_PER_COMMIT`] rows (or only
//! at the end, for an atomic import). Committing per batch would spend more time in commits and
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

/// How a backend writes one batch inside a transaction.
#[async_trait]
pub trait BatchWriter: Database {
    /// How a write transaction starts: SQLite takes its write lock at once
    /// (`BEGIN IMMEDIATE`), or a concurrent writer makes the batch fail
    /// instead of wait.
    const BEGIN: &'static str;

    /// Rows per transaction for a non-atomic import. A crash loses at most
    /// this much progress, which re-running the import repeats harmlessly.
    const ROWS_PER_COMMIT: usize;

    /// Whether the clients table is empty; if it is, the backend may drop
    /// indexes it builds faster afterwards than row by row.
    async fn begin_bulk(conn: &mut <Self as Database>::Connection) -> Result<bool, StoreError>;

    /// Rebuilds what `begin_bulk` dropped.
    async fn end_bulk(conn: &mut <Self as Database>::Connection) -> Result<(), StoreError>;

    /// Writes rows, looking up which are stored and how they differ.
    async fn write_batch(
        conn: &mut <Self as Database>::Connection,
        batch: &[ClientRecord],
        at: DateTime<Utc>,
    ) -> Result<Vec<RowOutcome>, StoreError>;

    /// A transaction taking rows known to be new by the backend's bulk
    /// path, which may still be storing one batch when the next arrives.
    type Stream: Send;

    fn open_stream(tx: Transaction<'static, Self>) -> Self::Stream;

    /// Writes rows none of which is stored (and no id twice).
    async fn send_new(
        stream: &mut Self::Stream,
        batch: &[ClientRecord],
        at: DateTime<Utc>,
    ) -> Result<Vec<RowOutcome>, StoreError>;

    /// Waits for everything sent and hands the transaction back.
    async fn close_stream(stream: Self::Stream) -> Result<Transaction<'static, Self>, StoreError>;
}

pub const ANY_CLIENT: &str = "SELECT EXISTS (SELECT 1 FROM clients)";

pub struct PooledWriter<DB: BatchWriter> {
    pool: Pool<DB>,
    open: Open<DB>,
    atomic: bool,
    rows_in_tx: usize,
    load: Load,
}

/// What kind of import this is, decided by its first batch.
enum Load {
    Undecided,
    /// Into a table that had clients already.
    Ordinary,
    /// Into an empty table.
    Bulk(BulkLoad),
}

/// What a bulk load remembers.
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

/// The writer's transaction, if one is open, and how.
enum Open<DB: BatchWriter> {
    Nothing,
    Tx(Transaction<'static, DB>),
    Stream(DB::Stream),
}

impl<DB: BatchWriter> PooledWriter<DB> {
    pub fn new(pool: Pool<DB>, atomic: bool) -> Self {
        Self {
            pool,
            open: Open::Nothing,
            atomic,
            rows_in_tx: 0,
            load: Load::Undecided,
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
        if let Load::Undecided = self.load {
            self.load = if DB::begin_bulk(self.tx().await?).await? {
                Load::Bulk(BulkLoad {
                    written: HashSet::new(),
                    hasher: RandomState::new(),
                })
            } else {
                Load::Ordinary
            };
        }
        let all_new = match &mut self.load {
            Load::Bulk(b) => b.all_new(batch),
            _ => false,
        };
        let outcomes = if all_new {
            DB::send_new(self.stream().await?, batch, at).await?
        } else {
            DB::write_batch(self.tx().await?, batch, at).await?
        };
        self.rows_in_tx += batch.len();
        if !self.atomic && self.rows_in_tx >= DB::ROWS_PER_COMMIT {
            if let Some(tx) = self.take_tx().await? {
                tx.commit().await?;
            }
            self.rows_in_tx = 0;
        }
        Ok(outcomes)
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        // A bulk load's end may need a transaction of its own.
        let bulk = matches!(self.load, Load::Bulk(_));
        let tx = if bulk {
            Some(self.take_or_begin().await?)
        } else {
            self.take_tx().await?
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

impl<DB: BatchWriter> PooledWriter<DB> {
    /// The open transaction, begun or taken back from a stream.
    async fn tx(&mut self) -> Result<&mut Transaction<'static, DB>, StoreError> {
        if !matches!(self.open, Open::Tx(_)) {
            self.open = Open::Tx(self.take_or_begin().await?);
        }
        match &mut self.open {
            Open::Tx(tx) => Ok(tx),
            _ => unreachable!("opened above"),
        }
    }

    async fn stream(&mut self) -> Result<&mut DB::Stream, StoreError> {
        if !matches!(self.open, Open::Stream(_)) {
            self.open = Open::Stream(DB::open_stream(self.take_or_begin().await?));
        }
        match &mut self.open {
            Open::Stream(s) => Ok(s),
            _ => unreachable!("opened above"),
        }
    }

    async fn take_or_begin(&mut self) -> Result<Transaction<'static, DB>, StoreError> {
        match self.take_tx().await? {
            Some(tx) => Ok(tx),
            None => Ok(self.pool.begin_with(DB::BEGIN).await?),
        }
    }

    /// The open transaction, out of the writer, once all sent is stored.
    async fn take_tx(&mut self) -> Result<Option<Transaction<'static, DB>>, StoreError> {
        match std::mem::replace(&mut self.open, Open::Nothing) {
            Open::Nothing => Ok(None),
            Open::Tx(tx) => Ok(Some(tx)),
            Open::Stream(s) => Ok(Some(DB::close_stream(s).await?)),
        }
    }
}

/// A task that owns a bulk load's transaction and takes the load's work
/// through a channel of two, so that the database stores one piece while
/// herald prepares the next; it hands the transaction back at the end.
pub struct LoadTask<Item, Tx> {
    items: tokio::sync::mpsc::Sender<Item>,
    task: tokio::task::JoinHandle<Result<Tx, StoreError>>,
}

impl<Item: Send + 'static, Tx: Send + 'static> LoadTask<Item, Tx> {
    /// `run` takes the queued items until the channel closes.
    pub fn spawn<F>(run: impl FnOnce(tokio::sync::mpsc::Receiver<Item>) -> F) -> Self
    where
        F: std::future::Future<Output = Result<Tx, StoreError>> + Send + 'static,
    {
        let (items, queued) = tokio::sync::mpsc::channel(2);
        Self {
            items,
            task: tokio::spawn(run(queued)),
        }
    }

    pub async fn send(&mut self, item: Item) -> Result<(), StoreError> {
        if self.items.send(item).await.is_ok() {
            return Ok(());
        }
        // The task stopped at what the database refused: its error says
        // why. The load is spent.
        (&mut self.task).await.map_err(stopped)?.map(|_| ())
    }

    pub async fn close(self) -> Result<Tx, StoreError> {
        drop(self.items);
        self.task.await.map_err(stopped)?
    }
}

fn stopped(e: tokio::task::JoinError) -> StoreError {
    StoreError::Stopped(e.to_string())
}
