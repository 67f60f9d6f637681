//! Clients: who herald markets to, their suitability profile and consents.

pub mod consent;
pub mod row;
pub mod synthetic;
pub mod types;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use consent::{ConsentScope, ConsentStates};
use types::{ClientId, Cny, Email, InvestorType, Mobile, RiskLevel, StockCode};

/// A client's profile: everything an import sets apart from consents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    pub email: Option<Email>,
    pub phone: Option<Mobile>,
    /// 营业部.
    pub branch: Option<String>,
    /// 客户经理.
    pub advisor: Option<String>,
    pub investor_type: InvestorType,
    pub risk_level: Option<RiskLevel>,
    /// Missing means no valid assessment: no product marketing.
    pub risk_assessed_on: Option<NaiveDate>,
    /// 最低风险承受能力类别: only R1 products, whatever the recorded level.
    pub lowest_risk_category: bool,
    pub assets: Option<Cny>,
    pub tags: Vec<String>,
    pub holdings: Vec<StockCode>,
    pub watchlist: Vec<StockCode>,
    pub birthday: Option<NaiveDate>,
    pub opened_on: Option<NaiveDate>,
    pub last_trade_on: Option<NaiveDate>,
    /// Columns herald has no field for, kept by name.
    pub attributes: Map<String, Value>,
}

impl Client {
    /// A client with an id and a name and nothing else.
    pub fn bare(id: ClientId, name: String) -> Self {
        Self {
            id,
            name,
            email: None,
            phone: None,
            branch: None,
            advisor: None,
            investor_type: InvestorType::Ordinary,
            risk_level: None,
            risk_assessed_on: None,
            lowest_risk_category: false,
            assets: None,
            tags: Vec::new(),
            holdings: Vec::new(),
            watchlist: Vec::new(),
            birthday: None,
            opened_on: None,
            last_trade_on: None,
            attributes: Map::new(),
        }
    }

    /// A digest of the profile, so that a re-import can tell an unchanged
    /// row without comparing every column.
    pub fn content_hash(&self) -> [u8; 16] {
        let mut h = blake3::Hasher::new();
        let mut put = |s: &str| {
            h.update(s.as_bytes());
            h.update(&[0x1f]);
        };
        put(self.id.as_str());
        put(&self.name);
        put(self.email.as_ref().map_or("", |e| e.as_str()));
        put(self.phone.as_ref().map_or("", |m| m.as_str()));
        put(self.branch.as_deref().unwrap_or(""));
        put(self.advisor.as_deref().unwrap_or(""));
        put(self.investor_type.as_str());
        put(&self.risk_level.map_or(String::new(), |l| l.to_string()));
        put(&opt_date(self.risk_assessed_on));
        put(if self.lowest_risk_category { "1" } else { "0" });
        put(&self.assets.map_or(String::new(), |a| a.fen().to_string()));
        put(&self.tags.join(";"));
        put(&join_codes(&self.holdings));
        put(&join_codes(&self.watchlist));
        put(&opt_date(self.birthday));
        put(&opt_date(self.opened_on));
        put(&opt_date(self.last_trade_on));
        put(&serde_json::to_string(&self.attributes).unwrap_or_default());
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        out
    }

    /// Whether the risk assessment is still valid on `today`.
    pub fn assessment_valid(&self, today: NaiveDate, validity_days: u32) -> bool {
        self.risk_assessed_on
            .is_some_and(|on| on <= today && (today - on).num_days() < i64::from(validity_days))
    }
}

fn opt_date(d: Option<NaiveDate>) -> String {
    d.map_or(String::new(), |d| d.to_string())
}

/// Stock codes as stored: `;`-separated.
pub fn join_codes(codes: &[StockCode]) -> String {
    let parts: Vec<&str> = codes.iter().map(StockCode::as_str).collect();
    parts.join(";")
}

/// One validated row of a client file: the profile and what the file says
/// about each consent (`None`: the file says nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRecord {
    pub client: Client,
    pub consents: [Option<bool>; 3],
    /// [`Client::content_hash`], computed once where the row is parsed.
    pub hash: [u8; 16],
}

impl ClientRecord {
    pub fn claim(&self, scope: ConsentScope) -> Option<bool> {
        self.consents[scope.index()]
    }
}

/// A client as stored, with its consents.
#[derive(Debug, Clone, Serialize)]
pub struct StoredClient {
    #[serde(flatten)]
    pub client: Client,
    #[serde(serialize_with = "serialize_consents")]
    pub consents: ConsentStates,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl StoredClient {
    pub fn consent(&self, scope: ConsentScope) -> &consent::ConsentState {
        &self.consents[scope.index()]
    }
}

fn serialize_consents<S: serde::Serializer>(c: &ConsentStates, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(3))?;
    for scope in ConsentScope::ALL {
        m.serialize_entry(scope.as_str(), &c[scope.index()])?;
    }
    m.end()
}
