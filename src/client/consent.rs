//! Consents and the choice about personalised marketing, with where each
//! came from. The import rule lives here: a CRM file may grant or withdraw
//! consent, but it never lifts an opt-out that herald itself recorded.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::types::{ClientId, Invalid};
use crate::channel::Channel;

/// What a consent is about: one channel, or personalised marketing (PIPL
/// art. 24), which a client may refuse while still accepting broadcasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentScope {
    Email,
    Sms,
    PersonalisedMarketing,
}

impl ConsentScope {
    pub const ALL: [ConsentScope; 3] = [Self::Email, Self::Sms, Self::PersonalisedMarketing];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::PersonalisedMarketing => "personalised_marketing",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw.trim())
            .ok_or_else(|| {
                Invalid(format!(
                    "'{raw}' is not a consent scope (email, sms, personalised_marketing)"
                ))
            })
    }

    /// Index into per-scope arrays such as [`ConsentStates`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// What a new client gets when the file says nothing: no consent to be
    /// contacted, but personalised marketing not refused (DESIGN.md defaults).
    pub fn default_granted(self) -> bool {
        matches!(self, Self::PersonalisedMarketing)
    }
}

impl From<Channel> for ConsentScope {
    fn from(c: Channel) -> Self {
        match c {
            Channel::Email => Self::Email,
            Channel::Sms => Self::Sms,
        }
    }
}

impl fmt::Display for ConsentScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a consent state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    /// A client file from the firm's CRM.
    Import,
    /// The client used an unsubscribe link.
    UnsubscribeLink,
    /// The client replied to an SMS (`TD`, `退订`, ...).
    SmsReply,
    /// Mail to the unsubscribe address.
    InboundMail,
    /// A member of staff, by an audited command.
    Operator,
}

impl ConsentSource {
    pub const ALL: [ConsentSource; 5] = [
        Self::Import,
        Self::UnsubscribeLink,
        Self::SmsReply,
        Self::InboundMail,
        Self::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Import => "import",
            Self::UnsubscribeLink => "unsubscribe_link",
            Self::SmsReply => "sms_reply",
            Self::InboundMail => "inbound_mail",
            Self::Operator => "operator",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| Invalid(format!("'{raw}' is not a consent source")))
    }

    /// Opt-outs from these sources were recorded by herald and only an
    /// audited command may lift them.
    pub fn is_recorded_by_herald(self) -> bool {
        self != Self::Import
    }
}

impl fmt::Display for ConsentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The current state of one consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConsentState {
    pub granted: bool,
    pub source: ConsentSource,
    pub at: DateTime<Utc>,
}

impl ConsentState {
    /// An opt-out that an import must not lift.
    pub fn is_protected_opt_out(&self) -> bool {
        !self.granted && self.source.is_recorded_by_herald()
    }
}

/// The three consent states of a client, indexed by [`ConsentScope::index`].
pub type ConsentStates = [ConsentState; 3];

/// One entry of a client's consent history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentChange {
    pub client_id: ClientId,
    pub scope: ConsentScope,
    pub granted: bool,
    pub source: ConsentSource,
    pub at: DateTime<Utc>,
    /// Who made the change, where a person did.
    pub actor: Option<String>,
    pub note: Option<String>,
}

/// What an imported row does to one consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportConsent {
    /// Nothing to write.
    Keep,
    /// Record this state, sourced from the import.
    Set(bool),
    /// The file grants what herald recorded as refused; the refusal stays.
    Conflict,
}

/// Decides what a row's claim (`None`: the file says nothing) does to the
/// current state (`None`: a new client).
pub fn import_decision(
    scope: ConsentScope,
    current: Option<&ConsentState>,
    claimed: Option<bool>,
) -> ImportConsent {
    match (current, claimed) {
        (None, claim) => ImportConsent::Set(claim.unwrap_or(scope.default_granted())),
        (Some(_), None) => ImportConsent::Keep,
        (Some(cur), Some(claim)) if cur.granted == claim => ImportConsent::Keep,
        (Some(cur), Some(true)) if cur.is_protected_opt_out() => ImportConsent::Conflict,
        (Some(_), Some(claim)) => ImportConsent::Set(claim),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(granted: bool, source: ConsentSource) -> ConsentState {
        ConsentState {
            granted,
            source,
            at: Utc::now(),
        }
    }

    #[test]
    fn import_never_lifts_an_opt_out_herald_recorded() {
        for source in [
            ConsentSource::UnsubscribeLink,
            ConsentSource::SmsReply,
            ConsentSource::InboundMail,
            ConsentSource::Operator,
        ] {
            let cur = state(false, source);
            assert_eq!(
                import_decision(ConsentScope::Sms, Some(&cur), Some(true)),
                ImportConsent::Conflict,
                "{source}"
            );
        }
    }

    #[test]
    fn import_may_lift_an_opt_out_the_crm_itself_sent() {
        let cur = state(false, ConsentSource::Import);
        assert_eq!(
            import_decision(ConsentScope::Email, Some(&cur), Some(true)),
            ImportConsent::Set(true)
        );
    }

    #[test]
    fn import_may_always_withdraw_consent() {
        let cur = state(true, ConsentSource::Operator);
        assert_eq!(
            import_decision(ConsentScope::Email, Some(&cur), Some(false)),
            ImportConsent::Set(false)
        );
    }

    #[test]
    fn silence_keeps_existing_and_defaults_new_clients() {
        let cur = state(true, ConsentSource::Import);
        assert_eq!(
            import_decision(ConsentScope::Sms, Some(&cur), None),
            ImportConsent::Keep
        );
        assert_eq!(
            import_decision(ConsentScope::Sms, None, None),
            ImportConsent::Set(false)
        );
        assert_eq!(
            import_decision(ConsentScope::PersonalisedMarketing, None, None),
            ImportConsent::Set(true)
        );
    }
}
