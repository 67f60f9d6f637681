//! The compact view of a client that rules read: every field a rule can
//! name, with text shared rather than copied, built once per evaluation.

use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use rhai::{Dynamic, ImmutableString, Map};

use crate::channel::Channel;
use crate::client::consent::ConsentScope;
use crate::client::types::InvestorType;
use crate::client::StoredClient;
use crate::event::{Engagement, EventKind};

/// The latest event of one kind, per channel and campaign kind.
#[derive(Debug, Clone)]
pub struct Touch {
    pub kind: EventKind,
    pub channel: Option<Channel>,
    pub campaign_kind: Option<ImmutableString>,
    /// The firm's local date of the latest such event.
    pub last_on: NaiveDate,
}

/// One client as a rule sees it.
#[derive(Debug, Clone)]
pub struct Profile {
    pub id: ImmutableString,
    pub name: ImmutableString,
    pub email: Option<ImmutableString>,
    pub phone: Option<ImmutableString>,
    pub branch: Option<ImmutableString>,
    pub advisor: Option<ImmutableString>,
    pub investor_type: InvestorType,
    /// 1..=5, or 0 when never assessed.
    pub risk_level: u8,
    pub risk_assessed_on: Option<NaiveDate>,
    pub lowest_risk_category: bool,
    /// CNY, 0 when unknown.
    pub assets: f64,
    pub tags: Vec<ImmutableString>,
    pub holdings: Vec<ImmutableString>,
    pub watchlist: Vec<ImmutableString>,
    pub birthday: Option<NaiveDate>,
    pub opened_on: Option<NaiveDate>,
    pub last_trade_on: Option<NaiveDate>,
    /// Consent per [`ConsentScope`].
    pub consents: [bool; 3],
    /// Refusals herald recorded (unsubscribe, SMS reply, operator).
    pub opted_out: [bool; 3],
    pub attrs: Map,
    pub touches: Vec<Touch>,
}

/// A client in a rule's scope: cheap to clone, as Rhai requires.
#[derive(Debug, Clone)]
pub struct ClientView(pub Arc<Profile>);

impl Profile {
    /// Builds the view of a stored client and its engagement; `tz` turns
    /// event times into the firm's local dates.
    pub fn new(stored: &StoredClient, engagement: &[Engagement], tz: Tz) -> Self {
        let c = &stored.client;
        let text = |s: &str| ImmutableString::from(s);
        let codes =
            |v: &[crate::client::types::StockCode]| v.iter().map(|s| text(s.as_str())).collect();
        let consents = ConsentScope::ALL.map(|s| stored.consent(s).granted);
        let opted_out = ConsentScope::ALL.map(|s| stored.consent(s).is_protected_opt_out());
        Self {
            id: text(c.id.as_str()),
            name: text(&c.name),
            email: c.email.as_ref().map(|e| text(e.as_str())),
            phone: c.phone.as_ref().map(|p| text(p.as_str())),
            branch: c.branch.as_deref().map(text),
            advisor: c.advisor.as_deref().map(text),
            investor_type: c.investor_type,
            risk_level: c.risk_level.map_or(0, |l| l.number()),
            risk_assessed_on: c.risk_assessed_on,
            lowest_risk_category: c.lowest_risk_category,
            assets: c.assets.map_or(0.0, |a| a.yuan()),
            tags: c.tags.iter().map(|t| text(t)).collect(),
            holdings: codes(&c.holdings),
            watchlist: codes(&c.watchlist),
            birthday: c.birthday,
            opened_on: c.opened_on,
            last_trade_on: c.last_trade_on,
            consents,
            opted_out,
            attrs: c
                .attributes
                .iter()
                .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
                .collect(),
            touches: engagement
                .iter()
                .map(|e| Touch {
                    kind: e.kind,
                    channel: e.channel,
                    campaign_kind: e.campaign_kind.as_deref().map(text),
                    last_on: e.last_at.with_timezone(&tz).date_naive(),
                })
                .collect(),
        }
    }
}

/// Attributes come from client files: text, numbers, booleans, lists.
fn json_to_dynamic(v: &serde_json::Value) -> Dynamic {
    use serde_json::Value;
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => n
            .as_i64()
            .map(Dynamic::from)
            .unwrap_or_else(|| n.as_f64().unwrap_or(0.0).into()),
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => items.iter().map(json_to_dynamic).collect::<Vec<_>>().into(),
        Value::Object(m) => {
            let map: Map = m
                .iter()
                .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
                .collect();
            map.into()
        }
    }
}
