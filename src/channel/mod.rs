//! The ways herald reaches a client, and the adapters that deliver through
//! them: one small trait, [`Adapter`], that sends one message and says
//! whether a failure is worth retrying.

pub mod email;
pub mod limits;
pub mod outbox;
pub mod providers;
pub mod sms;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::types::Invalid;

/// A channel a message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }

    /// Case-insensitive; allocates nothing, as rules call it per client.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Invalid(format!(
                    "'{}' is not a channel (email, sms)",
                    s.to_ascii_lowercase()
                ))
            })
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message ready to go: everything an adapter needs, nothing it must look up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outgoing {
    /// herald's own id for this delivery; travels with the message (a
    /// header, the provider's reference field) so receipts can be matched.
    pub delivery: i64,
    pub campaign: String,
    pub message: Message,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "channel", rename_all = "lowercase")]
pub enum Message {
    Email(EmailMessage),
    Sms(SmsMessage),
}

impl Message {
    pub fn channel(&self) -> Channel {
        match self {
            Message::Email(_) => Channel::Email,
            Message::Sms(_) => Channel::Sms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmailMessage {
    pub to: crate::client::types::Email,
    pub to_name: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachments: Vec<Attachment>,
    /// For marketing: where one click unsubscribes (RFC 8058).
    pub unsubscribe: Option<Unsubscribe>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// The `List-Unsubscribe` targets of a marketing email.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unsubscribe {
    pub url: String,
    /// `unsubscribe+TOKEN@…`, honoured when `herald inbound ingest` reads it.
    pub mailto: Option<String>,
}

/// An SMS: text herald rendered, or a provider's pre-approved template and
/// its parameters (for providers that accept nothing else).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SmsMessage {
    Text {
        to: crate::client::types::Mobile,
        text: String,
    },
    Template {
        to: crate::client::types::Mobile,
        code: String,
        params: BTreeMap<String, String>,
    },
}

impl SmsMessage {
    pub fn to(&self) -> &crate::client::types::Mobile {
        match self {
            SmsMessage::Text { to, .. } | SmsMessage::Template { to, .. } => to,
        }
    }
}

/// The provider took the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// The provider's id for it (an SMTP queue id, an SMS sid).
    pub provider_id: String,
}

/// Whether to try a failed send again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// Try again later (a busy server, a timeout, a 4xx SMTP reply);
    /// `retry_after` when the provider said when.
    Transient { retry_after: Option<Duration> },
    /// Do not try again. `bad_address`: the address itself is bad (SMTP
    /// 5.1.x, a provider's "invalid number"), so mark it.
    Permanent { bad_address: bool },
}

/// A send that did not succeed, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub failure: Failure,
    pub message: String,
}

impl SendError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            failure: Failure::Transient { retry_after: None },
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            failure: Failure::Permanent { bad_address: false },
            message: message.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self.failure, Failure::Transient { .. })
    }
}

/// Something that delivers messages of one channel.
#[async_trait::async_trait]
pub trait Adapter: Send + Sync {
    /// The provider's name in `herald.toml`.
    fn name(&self) -> &str;
    fn channel(&self) -> Channel;
    /// Whether it sends SMS text herald rendered…
    fn sends_text(&self) -> bool {
        true
    }
    /// …and whether it sends a provider's approved templates.
    fn sends_templates(&self) -> bool {
        false
    }
    async fn send(&self, message: &Outgoing) -> Result<Accepted, SendError>;
}
