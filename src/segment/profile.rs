//! The compact view of a client that rules read: every field a rule can
//! name, in plain types so that a whole population can be cached on disk
//! and read back quickly (see `snapshot`).

use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::client::consent::ConsentScope;
use crate::client::types::InvestorType;
use crate::client::StoredClient;
use crate::event::{Engagement, EventKind};

/// The latest event of one kind, per channel and campaign kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Touch {
    pub kind: EventKind,
    pub channel: Option<Channel>,
    pub campaign_kind: Option<String>,
    /// The firm's local date of the latest such event.
    #[serde(with = "day")]
    pub last_on: NaiveDate,
}

/// One client as a rule sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub branch: Option<String>,
    pub advisor: Option<String>,
    pub investor_type: InvestorType,
    /// 1..=5, or 0 when never assessed.
    pub risk_level: u8,
    #[serde(with = "opt_day")]
    pub risk_assessed_on: Option<NaiveDate>,
    pub lowest_risk_category: bool,
    /// CNY, 0 when unknown.
    pub assets: f64,
    pub tags: Vec<String>,
    pub holdings: Vec<String>,
    pub watchlist: Vec<String>,
    #[serde(with = "opt_day")]
    pub birthday: Option<NaiveDate>,
    #[serde(with = "opt_day")]
    pub opened_on: Option<NaiveDate>,
    #[serde(with = "opt_day")]
    pub last_trade_on: Option<NaiveDate>,
    /// Consent per [`ConsentScope`].
    pub consents: [bool; 3],
    /// Refusals herald recorded (unsubscribe, SMS reply, operator).
    pub opted_out: [bool; 3],
    /// Free-form attributes as a JSON object; parsed only when a rule reads
    /// `client.attrs`.
    pub attrs_json: String,
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
        let codes = |v: &[crate::client::types::StockCode]| {
            v.iter().map(|s| s.as_str().to_owned()).collect()
        };
        Self {
            id: c.id.to_string(),
            name: c.name.clone(),
            email: c.email.as_ref().map(|e| e.as_str().to_owned()),
            phone: c.phone.as_ref().map(|p| p.as_str().to_owned()),
            branch: c.branch.clone(),
            advisor: c.advisor.clone(),
            investor_type: c.investor_type,
            risk_level: c.risk_level.map_or(0, |l| l.number()),
            risk_assessed_on: c.risk_assessed_on,
            lowest_risk_category: c.lowest_risk_category,
            assets: c.assets.map_or(0.0, |a| a.yuan()),
            tags: c.tags.clone(),
            holdings: codes(&c.holdings),
            watchlist: codes(&c.watchlist),
            birthday: c.birthday,
            opened_on: c.opened_on,
            last_trade_on: c.last_trade_on,
            consents: ConsentScope::ALL.map(|s| stored.consent(s).granted),
            opted_out: ConsentScope::ALL.map(|s| stored.consent(s).is_protected_opt_out()),
            attrs_json: serde_json::to_string(&c.attributes).unwrap_or_else(|_| "{}".into()),
            touches: engagement
                .iter()
                .map(|e| Touch {
                    kind: e.kind,
                    channel: e.channel,
                    campaign_kind: e.campaign_kind.clone(),
                    last_on: e.last_at.with_timezone(&tz).date_naive(),
                })
                .collect(),
        }
    }
}

/// Dates as day numbers: compact, and quick to read back.
pub(crate) mod day {
    use chrono::{Datelike, NaiveDate};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(d.num_days_from_ce())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        let n = i32::deserialize(d)?;
        NaiveDate::from_num_days_from_ce_opt(n)
            .ok_or_else(|| serde::de::Error::custom("day out of range"))
    }
}

pub(crate) mod opt_day {
    use chrono::{Datelike, NaiveDate};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(d.map_or(i32::MIN, |d| d.num_days_from_ce()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        let n = i32::deserialize(d)?;
        Ok(if n == i32::MIN {
            None
        } else {
            NaiveDate::from_num_days_from_ce_opt(n)
        })
    }
}
