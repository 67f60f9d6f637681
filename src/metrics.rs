//! What `herald serve` counts for its operators, exposed in Prometheus
//! text format on the admin listener. Counters are this process's since it
//! started; the queue gauges are read from the database at each scrape and
//! so are the whole fleet's.

use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::channel::Channel;
use crate::store::fleet::QueueDepth;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    pub outcome: String,
    pub channel: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CampaignLabel {
    campaign: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    channel: String,
    kind: String,
    state: String,
}

pub struct Metrics {
    registry: Registry,
    messages: Family<MessageLabels, Counter>,
    planned: Family<MessageLabels, Counter>,
    runs_planned: Family<CampaignLabel, Counter>,
    rule_errors: Family<CampaignLabel, Counter>,
    send_seconds: Family<ChannelLabel, Histogram>,
    queue: Family<QueueLabels, Gauge>,
    next_fire: Family<CampaignLabel, Gauge>,
    leader: Gauge,
    reloads_failed: Counter,
    /// Sent by this process: what its heartbeat reports.
    sent: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("herald");
        let messages = Family::<MessageLabels, Counter>::default();
        registry.register(
            "messages",
            "Messages handled by this process's dispatcher, by outcome (sent, failed, retrying, fell_through, deferred, expired, cancelled)",
            messages.clone(),
        );
        let planned = Family::<MessageLabels, Counter>::default();
        registry.register(
            "messages_planned",
            "Deliveries planned by this process's scheduler",
            planned.clone(),
        );
        let runs_planned = Family::<CampaignLabel, Counter>::default();
        registry.register(
            "runs_planned",
            "Runs planned by the scheduler",
            runs_planned.clone(),
        );
        let rule_errors = Family::<CampaignLabel, Counter>::default();
        registry.register(
            "rule_errors",
            "Clients a segment rule failed on while planning",
            rule_errors.clone(),
        );
        let send_seconds = Family::<ChannelLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "send_seconds",
            "Time a channel took to accept one message",
            send_seconds.clone(),
        );
        let queue = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "queue_depth",
            "Unfinished deliveries in the database (all instances), by state: queued, claimed, sending, uncertain",
            queue.clone(),
        );
        let next_fire = Family::<CampaignLabel, Gauge>::default();
        registry.register(
            "next_fire_timestamp_seconds",
            "When each scheduled campaign fires next (Unix time)",
            next_fire.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "scheduler_leader",
            "1 while this process leads the scheduling",
            leader.clone(),
        );
        let reloads_failed = Counter::default();
        registry.register(
            "reloads_failed",
            "File reloads refused because the new files were invalid",
            reloads_failed.clone(),
        );
        Self {
            registry,
            messages,
            planned,
            runs_planned,
            rule_errors,
            send_seconds,
            queue,
            next_fire,
            leader,
            reloads_failed,
            sent: AtomicI64::new(0),
        }
    }

    pub fn message(&self, outcome: &str, channel: Channel, kind: &str) {
        self.messages
            .get_or_create(&labels(outcome, channel, kind))
            .inc();
        if outcome == "sent" {
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn send_latency(&self, channel: Channel, seconds: f64) {
        self.send_seconds
            .get_or_create(&ChannelLabel {
                channel: channel.to_string(),
            })
            .observe(seconds);
    }

    pub fn run_planned(
        &self,
        campaign: &str,
        kind: &str,
        by_channel: &[(String, usize)],
        rule_errors: usize,
    ) {
        let c = CampaignLabel {
            campaign: campaign.to_owned(),
        };
        self.runs_planned.get_or_create(&c).inc();
        self.rule_errors
            .get_or_create(&c)
            .inc_by(rule_errors as u64);
        for (channel, n) in by_channel {
            self.planned
                .get_or_create(&MessageLabels {
                    outcome: "planned".into(),
                    channel: channel.clone(),
                    kind: kind.to_owned(),
                })
                .inc_by(*n as u64);
        }
    }

    pub fn next_fire(&self, campaign: &str, at: Option<chrono::DateTime<chrono::Utc>>) {
        let c = CampaignLabel {
            campaign: campaign.to_owned(),
        };
        match at {
            Some(t) => {
                self.next_fire.get_or_create(&c).set(t.timestamp());
            }
            None => {
                self.next_fire.remove(&c);
            }
        }
    }

    pub fn leading(&self, yes: bool) {
        self.leader.set(i64::from(yes));
    }

    pub fn reload_failed(&self) {
        self.reloads_failed.inc();
    }

    pub fn sent(&self) -> i64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The Prometheus text for a scrape, with the queue as read just now.
    pub fn encode(&self, queue: &[QueueDepth]) -> String {
        self.queue.clear();
        for q in queue {
            self.queue
                .get_or_create(&QueueLabels {
                    channel: q.channel.clone(),
                    kind: q.kind.clone(),
                    state: q.state.clone(),
                })
                .set(q.count);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

fn labels(outcome: &str, channel: Channel, kind: &str) -> MessageLabels {
    MessageLabels {
        outcome: outcome.to_owned(),
        channel: channel.to_string(),
        kind: kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_the_queue_appear_in_the_text() {
        let m = Metrics::new();
        m.message("sent", Channel::Email, "market_bulletin");
        m.message("sent", Channel::Email, "market_bulletin");
        m.send_latency(Channel::Email, 0.004);
        let text = m.encode(&[QueueDepth {
            channel: "sms".into(),
            kind: "market_bulletin".into(),
            state: "queued".into(),
            count: 7,
        }]);
        assert!(
            text.contains("herald_messages_total{outcome=\"sent\",channel=\"email\",kind=\"market_bulletin\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "herald_queue_depth{channel=\"sms\",kind=\"market_bulletin\",state=\"queued\"} 7"
        ));
        assert!(text.contains("herald_send_seconds_count{channel=\"email\"} 1"));
        assert_eq!(m.sent(), 2);
        // A drained queue leaves no stale gauge behind.
        assert!(!m.encode(&[]).contains("herald_queue_depth{"));
    }
}
