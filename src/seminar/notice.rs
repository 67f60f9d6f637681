//! A seminar drive's service notices: the confirmation of a seat, the
//! place on the wait list, and the promotion into the room. Each notice
//! kind is one run of the invitation campaign (`notice:confirmed`, …) whose
//! deliveries are added as answers come in; a run holds one delivery per
//! client, so each client is told each thing once. Notices go out through
//! the dispatcher as service messages, by the channel the client answered
//! on, rendered from `templates/seminar_notice/`.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::campaign::file::OncePer;
use crate::campaign::{Audience, Campaign, Kind, Purpose};
use crate::channel::Channel;
use crate::client::types::ClientId;
use crate::message::data::keys;
use crate::schedule::Trigger;
use crate::store::runs::{NewDelivery, NewRun, Run, RunState};
use crate::store::seminars::Standing;
use crate::store::Store;

/// The run kind of notices, and their template set.
pub const KIND: &str = "seminar_notice";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A seat is the client's.
    Confirmed,
    /// The room is full: the client waits at a place.
    Waitlisted,
    /// A seat came free and is now the client's.
    Promoted,
}

impl Notice {
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::Confirmed => "confirmed",
            Notice::Waitlisted => "waitlisted",
            Notice::Promoted => "promoted",
        }
    }

    /// What an acceptance is told.
    pub fn of(standing: Standing) -> Option<Notice> {
        match standing {
            Standing::Seated { .. } => Some(Notice::Confirmed),
            Standing::Waitlisted { .. } => Some(Notice::Waitlisted),
            Standing::Declined => None,
        }
    }
}

/// The invitation campaign as its notices are sent: service messages,
/// none of the marketing gates, from the notice templates.
pub fn campaign(mut c: Campaign) -> Campaign {
    c.kind = Kind::Custom(KIND.into());
    c.purpose = Purpose::Service;
    c.templates = KIND.into();
    c.audience = Audience::Broadcast;
    c.channels = vec![Channel::Sms, Channel::Email];
    c.sms_template = None;
    let r = &mut c.rules;
    r.product_risk = None;
    r.min_assets = None;
    r.professional_only = false;
    r.frequency_cap = None;
    r.requires_approval = false;
    r.send_by = None;
    r.once_per = OncePer::Run;
    r.trigger = Trigger::Manual;
    c
}

/// Where a client stands, as a notice and the RSVP page tell it.
pub fn told(standing: Standing, notice: Option<Notice>) -> Value {
    let (status, position, place) = match standing {
        Standing::Seated { position } => ("seated", Some(position), None),
        Standing::Waitlisted { place } => ("waitlisted", None, Some(place)),
        Standing::Declined => ("declined", None, None),
    };
    json!({
        "status": status,
        "position": position,
        "place": place,
        "notice": notice.map(Notice::as_str),
    })
}

/// Queues `notice` for `client` after an answer to the invitation `run`,
/// by `via` when the client has an address there, else the other channel.
/// False when the client was told this already, or has no address at all.
pub async fn queue(
    store: &dyn Store,
    invitation: &Run,
    client: &str,
    notice: Notice,
    standing: Standing,
    via: Option<Channel>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let id = ClientId::parse(client).map_err(|e| anyhow::anyhow!(e.0))?;
    let Some(stored) = store.client(&id).await? else {
        return Ok(false);
    };
    let c = &stored.client;
    let address_on = |ch: Channel| match ch {
        Channel::Email => c.email.as_ref().map(|e| e.as_str().to_owned()),
        Channel::Sms => c.phone.as_ref().map(|p| p.as_str().to_owned()),
    };
    let first = via.unwrap_or(Channel::Sms);
    let order = [first, other(first)];
    let Some((channel, address)) = order.iter().find_map(|&ch| address_on(ch).map(|a| (ch, a)))
    else {
        return Ok(false);
    };
    let fallback: Vec<Channel> = order
        .into_iter()
        .filter(|&ch| ch != channel && address_on(ch).is_some())
        .collect();
    let mut content: Value =
        serde_json::from_str(&invitation.content).context("the invitation's content snapshot")?;
    content["notice"] = json!(notice.as_str());
    let content = content.to_string();
    let hash = crate::run::files::content_hash(&content);
    let run = NewRun {
        campaign: invitation.campaign.clone(),
        run_key: format!("notice:{}", notice.as_str()),
        kind: KIND.into(),
        purpose: Purpose::Service,
        state: RunState::Sending,
        launched_by: Some("herald".into()),
        launched_at: now,
        content,
        content_hash: hash.clone(),
        files: "{}".into(),
        fingerprint: hash,
        not_before: None,
        send_by: None,
        audience: 0,
        stop_reason: None,
    };
    let delivery = NewDelivery {
        client_id: client.to_owned(),
        channel,
        address,
        fallback,
        not_before: now,
        decision: json!({
            "channel": channel,
            "purpose": "service",
            keys::RSVP: told(standing, Some(notice)),
        })
        .to_string(),
    };
    Ok(store.queue_notice(&run, &delivery).await?)
}

fn other(c: Channel) -> Channel {
    match c {
        Channel::Email => Channel::Sms,
        Channel::Sms => Channel::Email,
    }
}
