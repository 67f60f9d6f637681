//! Channel rates for the whole fleet: each instance draws its sends from a
//! per-second quota in the database, a few at a time, so that the relay and
//! the gateway see at most the configured rate however many instances run.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::channel::limits::SharedRate;
use crate::store::Store;

/// What one instance holds of the current second's quota.
#[derive(Default)]
struct Held {
    second: i64,
    tokens: u32,
}

pub struct DatabaseQuota {
    store: Arc<dyn Store>,
    held: tokio::sync::Mutex<HashMap<String, Held>>,
}

impl DatabaseQuota {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            held: tokio::sync::Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl SharedRate for DatabaseQuota {
    async fn acquire(&self, provider: &str, per_second: u32) {
        // A twentieth of a second's quota at a time: few database round
        // trips, and little left unused when a second ends.
        let chunk = (per_second / 20).max(1);
        loop {
            let now = chrono::Utc::now();
            let second = now.timestamp();
            {
                let mut held = self.held.lock().await;
                let h = held.entry(provider.to_owned()).or_default();
                if h.second == second && h.tokens > 0 {
                    h.tokens -= 1;
                    return;
                }
                match self
                    .store
                    .take_quota(provider, second, chunk, per_second)
                    .await
                {
                    Ok(granted) if granted > 0 => {
                        *h = Held {
                            second,
                            tokens: granted - 1,
                        };
                        return;
                    }
                    Ok(_) => {}
                    // The database is down: sending waits with it.
                    Err(e) => tracing::warn!(provider, error = %e, "cannot take the send quota"),
                }
            }
            let into_second = now.timestamp_subsec_millis();
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(
                1000 - into_second.min(999),
            )))
            .await;
        }
    }
}
