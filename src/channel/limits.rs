//! Rate limits, retries and the circuit, in one place for every adapter: a
//! channel sends at most so many messages per second, so many at once;
//! transient failures are retried with exponential back-off and jitter up
//! to a number of attempts; after many consecutive failures the channel
//! pauses instead of burning through the audience.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::{Accepted, Adapter, Failure, Outgoing, SendError};

/// A provider's limits, from `herald.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Messages per second, at most.
    pub rate_per_second: u32,
    /// Messages in flight at once, at most.
    pub concurrency: u32,
    /// Attempts per message, the first included.
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles, up to `max_backoff_secs`.
    pub backoff_ms: u64,
    pub max_backoff_secs: u64,
    /// Consecutive failures that pause the channel…
    pub circuit_failures: u32,
    /// …for this long.
    pub circuit_pause_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rate_per_second: 100,
            concurrency: 8,
            max_attempts: 5,
            backoff_ms: 500,
            max_backoff_secs: 300,
            circuit_failures: 50,
            circuit_pause_secs: 60,
        }
    }
}

impl Limits {
    /// For a channel that only writes local files.
    pub fn local() -> Self {
        Self {
            rate_per_second: 100_000,
            concurrency: 32,
            ..Self::default()
        }
    }

    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("rate_per_second", u64::from(self.rate_per_second)),
            ("concurrency", u64::from(self.concurrency)),
            ("max_attempts", u64::from(self.max_attempts)),
            ("circuit_failures", u64::from(self.circuit_failures)),
        ];
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((key, _)) => Err(format!("{key} must be at least 1")),
            None => Ok(()),
        }
    }

    /// The wait before attempt `attempt + 1` after a transient failure:
    /// exponential, capped, with "full jitter" so that many senders
    /// retrying at once spread out; a provider's `Retry-After` wins.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(Duration::from_secs(self.max_backoff_secs));
        }
        let exp = self
            .backoff_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_backoff_secs.saturating_mul(1000)).max(1);
        Duration::from_millis(rand::thread_rng().gen_range(cap / 2..=cap))
    }
}

/// What became of one message after every attempt.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<Accepted, SendError>,
    pub attempts: u32,
}

/// An adapter behind its limits.
/// A rate shared with other processes: `herald serve` instances on one
/// database, which the relay and the gateway see as one sender.
#[async_trait::async_trait]
pub trait SharedRate: Send + Sync {
    /// Waits until one more send of `provider` fits `per_second` across
    /// the fleet.
    async fn acquire(&self, provider: &str, per_second: u32);
}

pub struct Governed {
    adapter: Arc<dyn Adapter>,
    /// Set when other processes send through the same provider.
    shared: std::sync::OnceLock<Arc<dyn SharedRate>>,
    limits: Limits,
    rate: DefaultDirectRateLimiter,
    in_flight: Semaphore,
    circuit: Circuit,
}

impl Governed {
    pub fn new(adapter: Arc<dyn Adapter>, limits: Limits) -> Self {
        let per_second = NonZeroU32::new(limits.rate_per_second).unwrap_or(NonZeroU32::MIN);
        Self {
            adapter,
            shared: std::sync::OnceLock::new(),
            rate: RateLimiter::direct(Quota::per_second(per_second)),
            in_flight: Semaphore::new(limits.concurrency.max(1) as usize),
            circuit: Circuit::new(
                limits.circuit_failures,
                Duration::from_secs(limits.circuit_pause_secs),
            ),
            limits,
        }
    }

    pub fn adapter(&self) -> &dyn Adapter {
        &*self.adapter
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Makes this provider's rate one the fleet shares.
    pub fn share_rate(&self, shared: Arc<dyn SharedRate>) {
        let _ = self.shared.set(shared);
    }

    /// One attempt under the limits; a paused channel refuses at once
    /// (transient: the caller tries again later).
    pub async fn attempt(&self, message: &Outgoing) -> Result<Accepted, SendError> {
        if let Some(until) = self.circuit.paused_until() {
            let wait = until.saturating_duration_since(Instant::now());
            return Err(SendError {
                failure: Failure::Transient {
                    retry_after: Some(wait),
                },
                message: format!(
                    "channel {} paused for {}s after {} failures in a row",
                    self.adapter.name(),
                    wait.as_secs(),
                    self.limits.circuit_failures
                ),
            });
        }
        let _slot = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.rate.until_ready().await;
        if let Some(shared) = self.shared.get() {
            let key = format!("{}:{}", self.adapter.name(), self.adapter.channel());
            shared.acquire(&key, self.limits.rate_per_second).await;
        }
        let result = self.adapter.send(message).await;
        match &result {
            Ok(_) => self.circuit.success(),
            // A bad address says nothing about the channel's health.
            Err(SendError {
                failure: Failure::Permanent { bad_address: true },
                ..
            }) => {}
            Err(_) => self.circuit.failure(),
        }
        result
    }

    /// Attempts until the message is accepted, fails permanently, or runs
    /// out of attempts, waiting between transient failures.
    pub async fn send(&self, message: &Outgoing) -> Outcome {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = self.attempt(message).await;
            match &result {
                Err(SendError {
                    failure: Failure::Transient { retry_after },
                    ..
                }) if attempts < self.limits.max_attempts => {
                    tokio::time::sleep(self.limits.backoff(attempts, *retry_after)).await;
                }
                _ => return Outcome { result, attempts },
            }
        }
    }
}

/// Counts consecutive failures; opens (pauses the channel) at a threshold.
struct Circuit {
    threshold: u32,
    pause: Duration,
    consecutive: AtomicU32,
    open_until: Mutex<Option<Instant>>,
}

impl Circuit {
    fn new(threshold: u32, pause: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            pause,
            consecutive: AtomicU32::new(0),
            open_until: Mutex::new(None),
        }
    }

    fn paused_until(&self) -> Option<Instant> {
        let mut open = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
        match *open {
            Some(until) if until > Instant::now() => Some(until),
            Some(_) => {
                // The pause is over: let traffic probe the channel again.
                *open = None;
                None
            }
            None => None,
        }
    }

    fn success(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
    }

    fn failure(&self) {
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.threshold {
            self.consecutive.store(0, Ordering::Relaxed);
            *self.open_until.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Instant::now() + self.pause);
            tracing::warn!(
                failures = n,
                pause_secs = self.pause.as_secs(),
                "channel paused"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{Channel, Message, SmsMessage};
    use crate::client::types::Mobile;

    /// An adapter that fails as scripted, then succeeds.
    struct Flaky {
        failures: Mutex<Vec<SendError>>,
        calls: AtomicU32,
    }

    #[async_trait::async_trait]
    impl Adapter for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        fn channel(&self) -> Channel {
            Channel::Sms
        }
        async fn send(&self, _: &Outgoing) -> Result<Accepted, SendError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            match self.failures.lock().unwrap().pop() {
                Some(e) => Err(e),
                None => Ok(Accepted {
                    provider_id: "ok".into(),
                }),
            }
        }
    }

    fn message() -> Outgoing {
        Outgoing {
            delivery: 1,
            campaign: "c".into(),
            message: Message::Sms(SmsMessage::Text {
                to: Mobile::parse("13812345678").unwrap(),
                text: "x".into(),
            }),
        }
    }

    fn fast() -> Limits {
        Limits {
            backoff_ms: 1,
            max_backoff_secs: 1,
            ..Limits::default()
        }
    }

    fn flaky(failures: Vec<SendError>) -> Arc<Flaky> {
        Arc::new(Flaky {
            failures: Mutex::new(failures),
            calls: AtomicU32::new(0),
        })
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_permanent_ones_are_not() {
        let a = flaky(vec![
            SendError::transient("421"),
            SendError::transient("451"),
        ]);
        let out = Governed::new(a.clone(), fast()).send(&message()).await;
        assert!(out.result.is_ok());
        assert_eq!(out.attempts, 3);

        let a = flaky(vec![SendError::permanent("550")]);
        let out = Governed::new(a.clone(), fast()).send(&message()).await;
        assert!(out.result.is_err());
        assert_eq!(a.calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn attempts_stop_at_the_maximum() {
        let a = flaky((0..10).map(|_| SendError::transient("busy")).collect());
        let limits = Limits {
            max_attempts: 3,
            ..fast()
        };
        let out = Governed::new(a.clone(), limits).send(&message()).await;
        assert!(out.result.unwrap_err().is_transient());
        assert_eq!(out.attempts, 3);
        assert_eq!(a.calls.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn many_failures_in_a_row_pause_the_channel() {
        let a = flaky((0..10).map(|_| SendError::transient("down")).collect());
        let limits = Limits {
            circuit_failures: 3,
            max_attempts: 1,
            ..fast()
        };
        let g = Governed::new(a.clone(), limits);
        for _ in 0..3 {
            g.attempt(&message()).await.unwrap_err();
        }
        let paused = g.attempt(&message()).await.unwrap_err();
        assert!(paused.message.contains("paused"), "{}", paused.message);
        assert_eq!(
            a.calls.load(Ordering::Relaxed),
            3,
            "a paused channel calls nobody"
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let l = Limits {
            backoff_ms: 100,
            max_backoff_secs: 1,
            ..Limits::default()
        };
        assert!(l.backoff(1, None) <= Duration::from_millis(100));
        assert!(l.backoff(3, None) >= Duration::from_millis(200));
        assert!(l.backoff(30, None) <= Duration::from_secs(1));
        assert_eq!(
            l.backoff(1, Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
    }
}
