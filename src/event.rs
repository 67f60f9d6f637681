//! Events: anything that happened to a client (sent, opened, replied, ...),
//! the record that engagement rules and reports read.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::campaign::Purpose;
use crate::channel::Channel;
use crate::client::types::{ClientId, Invalid};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Planned,
    Sent,
    Delivered,
    Bounced,
    Failed,
    Opened,
    Clicked,
    Unsubscribed,
    Complained,
    Replied,
    RsvpYes,
    RsvpNo,
    Attended,
}

impl EventKind {
    pub const ALL: [EventKind; 13] = [
        Self::Planned,
        Self::Sent,
        Self::Delivered,
        Self::Bounced,
        Self::Failed,
        Self::Opened,
        Self::Clicked,
        Self::Unsubscribed,
        Self::Complained,
        Self::Replied,
        Self::RsvpYes,
        Self::RsvpNo,
        Self::Attended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Bounced => "bounced",
            Self::Failed => "failed",
            Self::Opened => "opened",
            Self::Clicked => "clicked",
            Self::Unsubscribed => "unsubscribed",
            Self::Complained => "complained",
            Self::Replied => "replied",
            Self::RsvpYes => "rsvp_yes",
            Self::RsvpNo => "rsvp_no",
            Self::Attended => "attended",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                Invalid(format!("'{s}' is not an event type ({})", known.join(", ")))
            })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event to be stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub client_id: ClientId,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub channel: Option<Channel>,
    pub campaign: Option<String>,
    pub campaign_kind: Option<String>,
    /// Whether a send was marketing; `None` (imported history) counts as
    /// marketing for the frequency cap.
    pub purpose: Option<Purpose>,
    pub run_id: Option<i64>,
    pub delivery_id: Option<i64>,
    /// Where the event came from: `import`, `tracking`, `dispatcher`, ...
    pub source: String,
    pub details: Value,
    /// What makes the event unique when that is not all of the above: an
    /// open is stored once per delivery however often the pixel loads.
    #[serde(skip)]
    pub dedupe_on: Option<String>,
}

impl NewEvent {
    /// Identifies the event, so that importing the same history twice, or a
    /// provider repeating a callback, stores it once.
    ///
    /// An event identified by its content leads with its instant (in
    /// milliseconds, big-endian) and then 8 bytes of its hash: events
    /// recorded together, such as a send's, sit side by side in the key's
    /// unique index. A key of hash alone put each of them on a page of its
    /// own, a third of what a send wrote to SQLite's WAL.
    pub fn dedupe_key(&self) -> Vec<u8> {
        let mut h = blake3::Hasher::new();
        if let Some(on) = &self.dedupe_on {
            h.update(b"on\x1f");
            h.update(on.as_bytes());
            return h.finalize().as_bytes()[..16].to_vec();
        }
        for part in [
            self.client_id.as_str(),
            &self.at.to_rfc3339(),
            self.kind.as_str(),
            self.channel.map_or("", Channel::as_str),
            self.campaign.as_deref().unwrap_or(""),
            self.campaign_kind.as_deref().unwrap_or(""),
            &self.run_id.map_or(String::new(), |v| v.to_string()),
            &self.delivery_id.map_or(String::new(), |v| v.to_string()),
            &self.details.to_string(),
        ] {
            h.update(part.as_bytes());
            h.update(&[0x1f]);
        }
        let millis = u64::try_from(self.at.timestamp_millis()).unwrap_or(0);
        let mut key = millis.to_be_bytes().to_vec();
        key.extend_from_slice(&h.finalize().as_bytes()[..8]);
        key
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub id: i64,
    #[serde(flatten)]
    pub event: NewEvent,
    pub recorded_at: DateTime<Utc>,
}

/// The latest event of one kind for one client, per channel and campaign
/// kind: what "did X within N days" reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Engagement {
    pub client_id: ClientId,
    pub kind: EventKind,
    pub channel: Option<Channel>,
    pub campaign_kind: Option<String>,
    pub last_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sent(client: &str, at: DateTime<Utc>, delivery: i64) -> NewEvent {
        NewEvent {
            client_id: ClientId::parse(client).unwrap(),
            at,
            kind: EventKind::Sent,
            channel: Some(Channel::Email),
            campaign: Some("daily_bulletin".into()),
            campaign_kind: Some("market_bulletin".into()),
            purpose: Some(Purpose::Marketing),
            run_id: Some(1),
            delivery_id: Some(delivery),
            source: "dispatcher".into(),
            details: serde_json::json!({}),
            dedupe_on: None,
        }
    }

    #[test]
    fn events_recorded_later_have_keys_that_sort_after() {
        let t = Utc.with_ymd_and_hms(2026, 11, 27, 8, 30, 0).unwrap();
        let keys: Vec<Vec<u8>> = (0..50)
            .map(|i| sent("0000000042", t + chrono::Duration::milliseconds(i * 7), i).dedupe_key())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert!(keys.iter().all(|k| k.len() == 16));
    }

    #[test]
    fn the_same_event_has_the_same_key_and_another_does_not() {
        let t = Utc.with_ymd_and_hms(2026, 11, 27, 8, 30, 0).unwrap();
        let a = sent("0000000042", t, 1);
        assert_eq!(a.dedupe_key(), a.clone().dedupe_key());
        assert_ne!(a.dedupe_key(), sent("0000000043", t, 1).dedupe_key());
        assert_ne!(a.dedupe_key(), sent("0000000042", t, 2).dedupe_key());
        let mut once = a.clone();
        once.dedupe_on = Some("open:1".into());
        let mut later = sent("0000000042", t + chrono::Duration::hours(1), 1);
        later.dedupe_on = Some("open:1".into());
        assert_eq!(once.dedupe_key(), later.dedupe_key());
    }
}
