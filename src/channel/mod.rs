//! The ways herald reaches a client. The adapters that deliver through each
//! channel will live beside this file.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::client::types::Invalid;

/// A channel a message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
