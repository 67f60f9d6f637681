//! Clients: who herald markets to, their suitability profile and consents.

pub mod consent;
pub mod row;
pub mod synthetic;
pub mod types;

use std::io::Write;

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
        // Every field into one buffer and one hash call: an import hashes
        // each of its rows, and small updates cost more than the hashing.
        let mut b = HashInput(Vec::with_capacity(512));
        b.put(self.id.as_str());
        b.put(&self.name);
        b.put(self.email.as_ref().map_or("", |e| e.as_str()));
        b.put(self.phone.as_ref().map_or("", |m| m.as_str()));
        b.put(self.branch.as_deref().unwrap_or(""));
        b.put(self.advisor.as_deref().unwrap_or(""));
        b.put(self.investor_type.as_str());
        b.put_display(self.risk_level);
        b.put_display(self.risk_assessed_on);
        b.put(if self.lowest_risk_category { "1" } else { "0" });
        b.put_display(self.assets.map(|a| a.fen()));
        b.put_joined(self.tags.iter().map(String::as_str));
        b.put_joined(self.holdings.iter().map(StockCode::as_str));
        b.put_joined(self.watchlist.iter().map(StockCode::as_str));
        b.put_display(self.birthday);
        b.put_display(self.opened_on);
        b.put_display(self.last_trade_on);
        let _ = serde_json::to_writer(&mut b.0, &self.attributes);
        b.0.push(0x1f);
        let mut out = [0u8; 16];
        out.copy_from_slice(&blake3::hash(&b.0).as_bytes()[..16]);
        out
    }

    /// Whether the risk assessment is still valid on `today`.
    pub fn assessment_valid(&self, today: NaiveDate, validity_days: u32) -> bool {
        self.risk_assessed_on
            .is_some_and(|on| on <= today && (today - on).num_days() < i64::from(validity_days))
    }
}

/// What [`Client::content_hash`] hashes: each field's text, then 0x1f.
struct HashInput(Vec<u8>);

impl HashInput {
    fn put(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0x1f);
    }

    fn put_display(&mut self, v: Option<impl std::fmt::Display>) {
        if let Some(v) = v {
            let _ = write!(self.0, "{v}");
        }
        self.0.push(0x1f);
    }

    fn put_joined<'s>(&mut self, parts: impl Iterator<Item = &'s str>) {
        push_joined(&mut self.0, parts);
        self.0.push(0x1f);
    }
}

/// A list as stored (`;`-separated), appended to `buf` without a copy.
pub fn push_joined<'s>(buf: &mut Vec<u8>, parts: impl Iterator<Item = &'s str>) {
    for (i, p) in parts.enumerate() {
        if i > 0 {
            buf.push(b';');
        }
        buf.extend_from_slice(p.as_bytes());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash as first defined, field by field: stored rows carry it,
    /// so a faster way to compute it must give the same bytes.
    fn hash_as_defined(c: &Client) -> [u8; 16] {
        let date = |d: Option<NaiveDate>| d.map_or(String::new(), |d| d.to_string());
        let codes = |v: &[StockCode]| {
            v.iter()
                .map(StockCode::as_str)
                .collect::<Vec<_>>()
                .join(";")
        };
        let fields = [
            c.id.to_string(),
            c.name.clone(),
            c.email.as_ref().map_or("", |e| e.as_str()).to_owned(),
            c.phone.as_ref().map_or("", |m| m.as_str()).to_owned(),
            c.branch.clone().unwrap_or_default(),
            c.advisor.clone().unwrap_or_default(),
            c.investor_type.as_str().to_owned(),
            c.risk_level.map_or(String::new(), |l| l.to_string()),
            date(c.risk_assessed_on),
            if c.lowest_risk_category { "1" } else { "0" }.to_owned(),
            c.assets.map_or(String::new(), |a| a.fen().to_string()),
            c.tags.join(";"),
            codes(&c.holdings),
            codes(&c.watchlist),
            date(c.birthday),
            date(c.opened_on),
            date(c.last_trade_on),
            serde_json::to_string(&c.attributes).unwrap(),
        ];
        let mut h = blake3::Hasher::new();
        for f in fields {
            h.update(f.as_bytes());
            h.update(&[0x1f]);
        }
        h.finalize().as_bytes()[..16].try_into().unwrap()
    }

    #[test]
    fn the_content_hash_is_the_one_stored_rows_carry() {
        let bare = Client::bare(ClientId::parse("00012").unwrap(), "王芳".into());
        let mut full = bare.clone();
        full.email = Some(Email::parse("wang@example.com").unwrap());
        full.phone = Some(Mobile::parse("13812345678").unwrap());
        full.branch = Some("上海分公司".into());
        full.risk_level = Some(RiskLevel::parse("C4").unwrap());
        full.risk_assessed_on = NaiveDate::from_ymd_opt(2025, 3, 9);
        full.lowest_risk_category = true;
        full.assets = Some(Cny::parse("1234567.89").unwrap());
        full.tags = vec!["vip".into(), "科技".into()];
        full.holdings = vec![
            StockCode::parse("600519").unwrap(),
            StockCode::parse("000001").unwrap(),
        ];
        full.birthday = NaiveDate::from_ymd_opt(987, 1, 2);
        full.opened_on = NaiveDate::from_ymd_opt(12345, 6, 7);
        full.attributes
            .insert("segment".into(), Value::from("高净值"));
        for c in [&bare, &full] {
            assert_eq!(c.content_hash(), hash_as_defined(c));
        }
        assert_ne!(bare.content_hash(), full.content_hash());
    }
}
