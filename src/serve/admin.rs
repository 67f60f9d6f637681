//! The operators' listener, apart from the public tracking server and on
//! loopback by default: `/healthz` for the service manager and load
//! balancer, `/metrics` for Prometheus.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::metrics::Metrics;
use crate::store::Store;

/// A scheduler loop silent longer than this is reported stalled.
const SCHEDULER_STALL_SECS: i64 = 10;

pub struct AdminState {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    /// Unix time of the scheduler loop's last pass; 0 when this instance
    /// has no scheduler.
    pub scheduler_seen: AtomicI64,
    pub runs_scheduler: bool,
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    let now = chrono::Utc::now();
    let database = match s.store.lease_holder(super::SCHEDULER_LEASE, now).await {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("unreachable: {e}"),
    };
    let scheduler = if !s.runs_scheduler {
        "off"
    } else if now.timestamp() - s.scheduler_seen.load(Ordering::Relaxed) > SCHEDULER_STALL_SECS {
        "stalled"
    } else {
        "alive"
    };
    let healthy = database == "ok" && scheduler != "stalled";
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if healthy { "ok" } else { "unhealthy" },
            "database": database,
            "scheduler": scheduler,
        })),
    )
}

async fn metrics(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    match s.store.queue_depth().await {
        Ok(queue) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            s.metrics.encode(&queue),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("the database is unreachable: {e}\n"),
        ),
    }
}
