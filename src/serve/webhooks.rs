//! Webhooks out: every event, as JSON, to each `[[webhooks]]` receiver (the
//! firm's CRM), signed with HMAC-SHA256. The events table is the durable
//! queue: each webhook keeps a cursor (the last event id it delivered) in
//! the database, so a receiver that is down for an hour gets the hour's
//! events, in order, when it is back. Delivery is at least once; receivers
//! deduplicate by event id. One instance at a time posts each webhook.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::json;

use super::Shared;
use crate::config::Webhook;
use crate::event::{EventKind, StoredEvent};
use crate::store::Backend;

/// Events per request at most.
const BATCH: u32 = 200;
/// The longest wait between attempts while a receiver keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// On PostgreSQL an event id can commit after a higher one: read only
/// events recorded this long ago, so that none is passed over.
const SETTLE_SECS: i64 = 5;
const LEASE_SECS: i64 = 30;

/// Posts `hook`'s events until the process stops.
pub(super) async fn run(shared: Arc<Shared>, hook: Webhook) {
    let http = crate::http::client(Duration::from_secs(10));
    let lease = format!("webhook:{}", hook.name);
    let settle = match shared.store.backend() {
        Backend::Postgres => chrono::Duration::seconds(SETTLE_SECS),
        Backend::Sqlite => chrono::Duration::zero(),
    };
    let mut backoff = Duration::from_secs(1);
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Utc::now();
        let ours = shared
            .store
            .take_lease(
                &lease,
                &shared.id,
                now,
                now + chrono::Duration::seconds(LEASE_SECS),
            )
            .await
            .unwrap_or(false);
        let wait = if !ours {
            Duration::from_secs(5)
        } else {
            match deliver_some(&shared, &hook, &http, now - settle).await {
                Ok(true) => {
                    backoff = Duration::from_secs(1);
                    continue;
                }
                Ok(false) => Duration::from_secs(1),
                Err(e) => {
                    tracing::warn!(webhook = %hook.name, error = %e, retry_in_secs = backoff.as_secs(), "webhook delivery failed; retrying");
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            }
        };
        sleep_unless_stopped(&shared, wait).await;
    }
    let _ = shared.store.release_lease(&lease, &shared.id).await;
}

async fn sleep_unless_stopped(shared: &Shared, wait: Duration) {
    let until = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < until && !shared.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(200).min(wait)).await;
    }
}

/// Posts the next batch; true when there may be more.
async fn deliver_some(
    shared: &Shared,
    hook: &Webhook,
    http: &reqwest::Client,
    recorded_before: chrono::DateTime<Utc>,
) -> anyhow::Result<bool> {
    let cursor = shared.store.webhook_cursor(&hook.name).await?;
    let events = shared
        .store
        .events_after(cursor, recorded_before, BATCH)
        .await?;
    let Some(last) = events.last().map(|e| e.id) else {
        return Ok(false);
    };
    let wanted: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| wants(hook, e.event.kind))
        .collect();
    if !wanted.is_empty() {
        let body = serde_json::to_vec(&json!({ "webhook": hook.name, "events": wanted }))?;
        let answer = http
            .post(hook.url.clone())
            .header("Content-Type", "application/json")
            .header("X-Herald-Signature", signature(&hook.secret, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(crate::http::describe(&e)))?;
        anyhow::ensure!(
            answer.status().is_success(),
            "{} answered {}",
            hook.url,
            answer.status()
        );
    }
    shared.store.set_webhook_cursor(&hook.name, last).await?;
    Ok(events.len() as u32 == BATCH)
}

fn wants(hook: &Webhook, kind: EventKind) -> bool {
    if hook.events.is_empty() {
        kind != EventKind::Planned
    } else {
        hook.events.contains(&kind)
    }
}

/// `sha256=HEX` of HMAC-SHA256(secret, body): what receivers check.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!(
        "sha256={}",
        crate::store::runs::hex(&mac.finalize().into_bytes())
    )
}
