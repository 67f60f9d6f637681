//! Opens and clicks arrive by the thousand per second: one writer stores
//! them in groups, one transaction for whatever is waiting, and answers
//! each request only once its event is committed, so that nothing is lost
//! when the server stops.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::event::NewEvent;
use crate::store::Store;

/// Requests waiting beyond this make new ones wait (back-pressure).
const QUEUE: usize = 8192;
/// Events per transaction at most.
const GROUP: usize = 2000;

type Pending = (NewEvent, oneshot::Sender<bool>);

#[derive(Clone)]
pub struct EventWriter {
    tx: mpsc::Sender<Pending>,
}

impl EventWriter {
    /// Starts the writer; it ends when every `EventWriter` is dropped and
    /// what was queued is stored.
    pub fn start(store: Arc<dyn Store>) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { tx }, tokio::spawn(run(store, rx)))
    }

    /// Stores `event`; true once it is committed (or was a duplicate).
    pub async fn record(&self, event: NewEvent) -> bool {
        let (done, answer) = oneshot::channel();
        if self.tx.send((event, done)).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(GROUP);
    while rx.recv_many(&mut batch, GROUP).await > 0 {
        let (events, answers): (Vec<NewEvent>, Vec<_>) =
            std::mem::take(&mut batch).into_iter().unzip();
        let ok = match store.insert_events(&events).await {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, events = events.len(), "tracking: events could not be stored");
                false
            }
        };
        for answer in answers {
            let _ = answer.send(ok);
        }
    }
}
