//! SMS over HTTP gateways: Twilio-compatible, Alibaba Cloud (service
//! messages), and a generic gateway for carrier-direct and finance-approved
//! platforms (marketing). What every gateway shares lives here: how an HTTP
//! answer becomes herald's failure classes.

pub mod aliyun;
pub mod generic;
pub mod twilio;

use std::time::Duration;

use reqwest::StatusCode;

use super::{Failure, SendError};

/// The longest a gateway may take to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// 429 and 5xx are worth retrying (after `Retry-After` when given); other
/// 4xx are not.
pub fn classify_status(status: StatusCode, retry_after: Option<Duration>, body: &str) -> SendError {
    let snippet: String = body.chars().take(300).collect();
    let message = format!("HTTP {status}: {snippet}");
    let failure = if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Failure::Transient { retry_after }
    } else {
        Failure::Permanent { bad_address: false }
    };
    SendError { failure, message }
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and is
/// treated as absent).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A request that got no answer: timeouts and refused connections are
/// transient; a request herald could not build is not.
pub fn classify_transport(e: &reqwest::Error) -> SendError {
    if e.is_builder() {
        SendError::permanent(e.to_string())
    } else {
        SendError::transient(crate::http::describe(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let t = classify_status(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(3)),
            "slow down",
        );
        assert_eq!(
            t.failure,
            Failure::Transient {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(classify_status(StatusCode::BAD_GATEWAY, None, "").is_transient());
        assert!(!classify_status(StatusCode::BAD_REQUEST, None, "").is_transient());
        assert!(!classify_status(StatusCode::UNAUTHORIZED, None, "").is_transient());
    }
}
