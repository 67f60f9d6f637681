//! A seminar drive's service notices: the confirmation of a seat, the
//! place on the wait list, and the promotion into the room. Each notice
//! kind is one run of the invitation campaign (`notice:confirmed`, …) whose
//! deliveries are added as answers come in; a run holds one delivery per
//! client, so each client is told each thing once. Notices go out through
//! the dispatcher as service messages, by the channel the client answered
//! on, rendered from `templates/seminar_notice/`.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::campaign::file::OncePer;
use crate::campaign::{Audience, Campaign, Kind, Purpose};
use crate::channel::Channel;
use crate::client::types::ClientId;
use crate::message::data::keys;
use crate::schedule::Trigger;
use crate::seminar::Seminar;
use crate::store::runs::{DeliveryState, NewDelivery, NewRun, RunState};
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
    /// The seminar's time or venue changed.
    Changed,
    /// The seminar is called off.
    Cancelled,
    /// A reminder before the seminar, with the check-in code.
    Reminder,
}

impl Notice {
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::Confirmed => "confirmed",
            Notice::Waitlisted => "waitlisted",
            Notice::Promoted => "promoted",
            Notice::Changed => "changed",
            Notice::Cancelled => "cancelled",
            Notice::Reminder => "reminder",
        }
    }

    /// The notice run's key: one run per kind, per version for a change
    /// and per reminder, so that each client is told each thing once.
    fn run_key(self, seminar: &Value) -> String {
        match self {
            Notice::Changed => format!(
                "notice:changed:{}",
                seminar["sequence"].as_i64().unwrap_or(0)
            ),
            Notice::Reminder => format!(
                "notice:reminder:{}",
                seminar["reminder"].as_str().unwrap_or("")
            ),
            n => format!("notice:{}", n.as_str()),
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

/// The seminar's particulars as messages show them now: as last recorded,
/// with their sequence and the seats left.
pub async fn current(store: &dyn Store, name: &str) -> Result<Option<Value>> {
    let Some((content, sequence)) = store.seminar_content(name).await? else {
        return Ok(None);
    };
    let mut v: Value = serde_json::from_str(&content).context("the seminar's recorded content")?;
    v["sequence"] = json!(sequence);
    if let Ok(a) = store.attendance(name).await {
        v["seats_left"] = json!((a.capacity - a.seated).max(0));
    }
    Ok(Some(v))
}

/// What recording a seminar did.
#[derive(Debug, Clone, Serialize)]
pub struct Synced {
    pub sequence: i64,
    /// Its time, venue or cancellation changed since last recorded.
    pub changed: bool,
    pub cancelled: bool,
    /// Notices queued, by the key of the run that sends them.
    pub queued: BTreeMap<String, usize>,
}

/// Records the seminar as its file says now. When its time, venue or
/// cancellation changed, everyone who holds its calendar entry (each
/// invited client who has not declined) is told, with the entry's new
/// version. A bigger room seats the first waiting at once and tells them;
/// a room smaller than the seats already confirmed is refused.
pub async fn sync(
    store: &dyn Store,
    campaign: &str,
    seminar: &Seminar,
    now: DateTime<Utc>,
) -> Result<Synced> {
    let answers = store.answers(&seminar.name).await?;
    let before = store
        .attendance(&seminar.name)
        .await
        .ok()
        .map(|a| (a.capacity, a.seated));
    if let Some((_, seated)) = before.filter(|(_, seated)| *seated > seminar.capacity) {
        bail!(
            "seminar {}: capacity {} is fewer than the {seated} seats already confirmed; \
             keep it at {seated} or more, and ask clients to decline to free seats",
            seminar.name,
            seminar.capacity
        );
    }
    let content = seminar.content(seminar.capacity);
    let version = store
        .sync_seminar(
            &seminar.name,
            seminar.capacity,
            &content.to_string(),
            &seminar.fingerprint(),
        )
        .await?;
    let mut synced = Synced {
        sequence: version.sequence,
        changed: version.changed,
        cancelled: seminar.cancelled,
        queued: BTreeMap::new(),
    };
    let current = current(store, &seminar.name).await?.unwrap_or(content);
    let mut tell = |key: String, queued: bool| {
        *synced.queued.entry(key).or_default() += usize::from(queued);
    };
    // A bigger room: the waiting whose places are now seats move in.
    if let Some((old, _)) = before.filter(|(old, _)| *old < seminar.capacity) {
        for a in answers
            .iter()
            .filter(|a| a.position.is_some_and(|p| p > old && p <= seminar.capacity))
        {
            let standing = Standing::of(a.position, seminar.capacity);
            let via = a.via.as_deref().and_then(|c| Channel::parse(c).ok());
            let rsvp = told(standing, Some(Notice::Promoted));
            let q = queue(
                store,
                campaign,
                &current,
                &a.client_id,
                Notice::Promoted,
                rsvp,
                via,
                now,
            )
            .await?;
            tell(Notice::Promoted.run_key(&current), q);
        }
    }
    if !version.changed {
        return Ok(synced);
    }
    let notice = if seminar.cancelled {
        Notice::Cancelled
    } else {
        Notice::Changed
    };
    let key = notice.run_key(&current);
    let mut answered = std::collections::HashSet::new();
    for a in &answers {
        answered.insert(a.client_id.as_str());
        if a.position.is_none() {
            continue;
        }
        let standing = Standing::of(a.position, seminar.capacity);
        let via = a.via.as_deref().and_then(|c| Channel::parse(c).ok());
        let rsvp = told(standing, Some(notice));
        let q = queue(
            store,
            campaign,
            &current,
            &a.client_id,
            notice,
            rsvp,
            via,
            now,
        )
        .await?;
        tell(key.clone(), q);
    }
    // Invited and not yet answered: their invitation carried the entry too.
    for w in &seminar.waves {
        let Some(run) = store.run_by_key(campaign, &w.name).await? else {
            continue;
        };
        for d in store
            .deliveries_in(run.id, DeliveryState::Sent, u32::MAX)
            .await?
        {
            if answered.contains(d.client_id.as_str()) {
                continue;
            }
            let via = Channel::parse(&d.channel).ok();
            let rsvp = json!({ "status": "invited", "notice": notice.as_str() });
            let q = queue(
                store,
                campaign,
                &current,
                &d.client_id,
                notice,
                rsvp,
                via,
                now,
            )
            .await?;
            tell(key.clone(), q);
        }
    }
    tracing::info!(seminar = %seminar.name, sequence = version.sequence, notice = notice.as_str(), queued = ?synced.queued, "seminar changed: notices queued");
    Ok(synced)
}

/// Sends `reminder` to everyone holding a seat, by the reminder's first
/// channel the client can be reached on, with their check-in code; the
/// number queued.
pub async fn remind(
    store: &dyn Store,
    campaign: &str,
    seminar: &Seminar,
    reminder: &super::Reminder,
    secret: Option<&crate::tracking::token::Secret>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut content = current(store, &seminar.name)
        .await?
        .unwrap_or_else(|| seminar.content(seminar.capacity));
    content["reminder"] = json!(reminder.name);
    let mut queued = 0;
    for a in store.answers(&seminar.name).await? {
        let standing = Standing::of(a.position, seminar.capacity);
        if !matches!(standing, Standing::Seated { .. }) {
            continue;
        }
        let mut rsvp = told(standing, Some(Notice::Reminder));
        if let Some(secret) = secret {
            rsvp["code"] = json!(super::checkin::code(secret, &seminar.name, &a.client_id));
        }
        let via = reminder.channels.first().copied();
        if queue(
            store,
            campaign,
            &content,
            &a.client_id,
            Notice::Reminder,
            rsvp,
            via,
            now,
        )
        .await?
        {
            queued += 1;
        }
    }
    tracing::info!(seminar = %seminar.name, reminder = %reminder.name, queued, "seminar reminders queued");
    Ok(queued)
}

/// Queues `notice` for `client` about `seminar` (its particulars as
/// [`current`] gives them), sent as a run of the invitation `campaign`,
/// by `via` when the client has an address there, else the other channel.
/// False when the client was told this already, or has no address at all.
#[allow(clippy::too_many_arguments)]
pub async fn queue(
    store: &dyn Store,
    campaign: &str,
    seminar: &Value,
    client: &str,
    notice: Notice,
    rsvp: Value,
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
    let mut content = seminar.clone();
    content["notice"] = json!(notice.as_str());
    let run_key = notice.run_key(&content);
    let content = content.to_string();
    let hash = crate::run::files::content_hash(&content);
    let run = NewRun {
        campaign: campaign.to_owned(),
        run_key,
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
            keys::RSVP: rsvp,
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
