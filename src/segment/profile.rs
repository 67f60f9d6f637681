//! The compact view of clients that rules read, stored by column: one
//! vector per part of a client, so that a population loads only the parts a
//! rule reads and a client in a rule is an index, not an allocation.

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

/// name, email, phone, branch, advisor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub branch: Option<String>,
    pub advisor: Option<String>,
}

/// What suitability reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Suitability {
    pub investor_type: InvestorType,
    /// 1..=5, or 0 when never assessed.
    pub risk_level: u8,
    #[serde(with = "opt_day")]
    pub risk_assessed_on: Option<NaiveDate>,
    pub lowest_risk_category: bool,
    /// CNY, 0 when unknown.
    pub assets: f64,
}

/// Tags and stock codes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lists {
    pub tags: Vec<String>,
    pub holdings: Vec<String>,
    pub watchlist: Vec<String>,
}

/// The client's own dates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dates {
    #[serde(with = "opt_day")]
    pub birthday: Option<NaiveDate>,
    #[serde(with = "opt_day")]
    pub opened_on: Option<NaiveDate>,
    #[serde(with = "opt_day")]
    pub last_trade_on: Option<NaiveDate>,
}

/// Consent per [`ConsentScope`], and the refusals herald recorded
/// (unsubscribe, SMS reply, operator).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Consents {
    pub granted: [bool; 3],
    pub opted_out: [bool; 3],
}

/// Every client of a population, one vector per part. A part the rule does
/// not read is left empty.
#[derive(Debug, Default)]
pub struct Columns {
    pub ids: Vec<String>,
    pub contact: Vec<Contact>,
    pub suitability: Vec<Suitability>,
    pub lists: Vec<Lists>,
    pub dates: Vec<Dates>,
    pub consents: Vec<Consents>,
    /// Free-form attributes as JSON objects; parsed only when a rule reads
    /// `client.attrs`.
    pub attrs: Vec<String>,
    pub touches: Vec<Vec<Touch>>,
}

impl Columns {
    /// Appends a client read from the store, with its engagement; `tz`
    /// turns event times into the firm's local dates.
    pub fn push(&mut self, stored: &StoredClient, engagement: &[Engagement], tz: Tz) {
        let c = &stored.client;
        let codes = |v: &[crate::client::types::StockCode]| {
            v.iter().map(|s| s.as_str().to_owned()).collect()
        };
        self.ids.push(c.id.to_string());
        self.contact.push(Contact {
            name: c.name.clone(),
            email: c.email.as_ref().map(|e| e.as_str().to_owned()),
            phone: c.phone.as_ref().map(|p| p.as_str().to_owned()),
            branch: c.branch.clone(),
            advisor: c.advisor.clone(),
        });
        self.suitability.push(Suitability {
            investor_type: c.investor_type,
            risk_level: c.risk_level.map_or(0, |l| l.number()),
            risk_assessed_on: c.risk_assessed_on,
            lowest_risk_category: c.lowest_risk_category,
            assets: c.assets.map_or(0.0, |a| a.yuan()),
        });
        self.lists.push(Lists {
            tags: c.tags.clone(),
            holdings: codes(&c.holdings),
            watchlist: codes(&c.watchlist),
        });
        self.dates.push(Dates {
            birthday: c.birthday,
            opened_on: c.opened_on,
            last_trade_on: c.last_trade_on,
        });
        self.consents.push(Consents {
            granted: ConsentScope::ALL.map(|s| stored.consent(s).granted),
            opted_out: ConsentScope::ALL.map(|s| stored.consent(s).is_protected_opt_out()),
        });
        self.attrs
            .push(serde_json::to_string(&c.attributes).unwrap_or_else(|_| "{}".into()));
        self.touches.push(
            engagement
                .iter()
                .map(|e| Touch {
                    kind: e.kind,
                    channel: e.channel,
                    campaign_kind: e.campaign_kind.clone(),
                    last_on: e.last_at.with_timezone(&tz).date_naive(),
                })
                .collect(),
        );
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

static NO_CONTACT: Contact = Contact {
    name: String::new(),
    email: None,
    phone: None,
    branch: None,
    advisor: None,
};
static NO_SUITABILITY: Suitability = Suitability {
    investor_type: InvestorType::Ordinary,
    risk_level: 0,
    risk_assessed_on: None,
    lowest_risk_category: false,
    assets: 0.0,
};
static NO_LISTS: Lists = Lists {
    tags: Vec::new(),
    holdings: Vec::new(),
    watchlist: Vec::new(),
};
static NO_DATES: Dates = Dates {
    birthday: None,
    opened_on: None,
    last_trade_on: None,
};
static NO_CONSENTS: Consents = Consents {
    granted: [false; 3],
    opted_out: [false; 3],
};
static NO_TOUCHES: Vec<Touch> = Vec::new();

/// A client in a rule's scope: its population and its place in it. Cheap
/// to clone, as Rhai requires. A part that was not loaded reads as empty;
/// [`super::fields::Fields`] makes sure a rule's parts are loaded.
#[derive(Debug, Clone)]
pub struct ClientView {
    columns: Arc<Columns>,
    index: usize,
}

impl ClientView {
    pub fn new(columns: Arc<Columns>, index: usize) -> Self {
        Self { columns, index }
    }

    /// Becomes `other`: in the same population only the place changes, which
    /// spares the shared count of the population's owners.
    pub fn point_at(&mut self, other: &ClientView) {
        if Arc::ptr_eq(&self.columns, &other.columns) {
            self.index = other.index;
        } else {
            *self = other.clone();
        }
    }

    pub fn id(&self) -> &str {
        self.columns.ids.get(self.index).map_or("", String::as_str)
    }

    pub fn contact(&self) -> &Contact {
        self.columns.contact.get(self.index).unwrap_or(&NO_CONTACT)
    }

    pub fn suitability(&self) -> &Suitability {
        self.columns
            .suitability
            .get(self.index)
            .unwrap_or(&NO_SUITABILITY)
    }

    pub fn lists(&self) -> &Lists {
        self.columns.lists.get(self.index).unwrap_or(&NO_LISTS)
    }

    pub fn dates(&self) -> &Dates {
        self.columns.dates.get(self.index).unwrap_or(&NO_DATES)
    }

    pub fn consents(&self) -> &Consents {
        self.columns
            .consents
            .get(self.index)
            .unwrap_or(&NO_CONSENTS)
    }

    pub fn attrs_json(&self) -> &str {
        self.columns
            .attrs
            .get(self.index)
            .map_or("{}", String::as_str)
    }

    pub fn touches(&self) -> &[Touch] {
        self.columns.touches.get(self.index).unwrap_or(&NO_TOUCHES)
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
