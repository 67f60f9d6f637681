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
        h.finalize().as_bytes()[..16].to_vec()
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
