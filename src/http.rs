//! What every HTTP caller shares (SMS gateways, fetched content): a pooled
//! client with herald's user agent and a timeout, and errors described with
//! their causes.

use std::time::Duration;

/// A client that reuses connections and gives up after `timeout`.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with a timeout and a user agent always builds")
}

/// An error with the chain of its causes, `timed out` for a timeout.
pub fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s = format!("{s}: {inner}");
        source = inner.source();
    }
    s
}
