//! One row of a client file, field by field: the column names of DESIGN.md,
//! each value validated into a domain type. Unknown columns become attributes.

use std::collections::HashSet;

use serde_json::Value;

use super::consent::ConsentScope;
use super::types::{ClientId, Cny, Email, Invalid, InvestorType, Mobile, RiskLevel, StockCode};
use super::{Client, ClientRecord};
use crate::time::parse_date;

/// A column herald knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Id,
    Name,
    Email,
    Phone,
    Branch,
    Advisor,
    RiskLevel,
    Assets,
    Tags,
    Holdings,
    Watchlist,
    Birthday,
    OpenedOn,
    LastTradeOn,
    ConsentEmail,
    ConsentSms,
    InvestorType,
    LowestRiskCategory,
    RiskAssessedOn,
    PersonalisedMarketing,
}

impl Field {
    const ALL: [(Field, &'static str); 20] = [
        (Field::Id, "id"),
        (Field::Name, "name"),
        (Field::Email, "email"),
        (Field::Phone, "phone"),
        (Field::Branch, "branch"),
        (Field::Advisor, "advisor"),
        (Field::RiskLevel, "risk_level"),
        (Field::Assets, "assets"),
        (Field::Tags, "tags"),
        (Field::Holdings, "holdings"),
        (Field::Watchlist, "watchlist"),
        (Field::Birthday, "birthday"),
        (Field::OpenedOn, "opened_on"),
        (Field::LastTradeOn, "last_trade_on"),
        (Field::ConsentEmail, "consent_email"),
        (Field::ConsentSms, "consent_sms"),
        (Field::InvestorType, "investor_type"),
        (Field::LowestRiskCategory, "lowest_risk_category"),
        (Field::RiskAssessedOn, "risk_assessed_on"),
        (Field::PersonalisedMarketing, "personalised_marketing"),
    ];

    pub fn lookup(name: &str) -> Option<Field> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    }
}

/// What a column of the file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Known(Field),
    Attribute(String),
}

impl Column {
    /// Column names are matched without regard to case or surrounding spaces.
    pub fn from_header(raw: &str) -> Column {
        let name = raw.trim().to_ascii_lowercase();
        Field::lookup(&name).map_or(Column::Attribute(raw.trim().to_owned()), Column::Known)
    }

    pub fn name(&self) -> &str {
        match self {
            Column::Known(f) => f.name(),
            Column::Attribute(a) => a,
        }
    }
}

/// Checks a header: an id and a name column, no column twice.
pub fn check_header(columns: &[Column]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for c in columns {
        if c.name().is_empty() {
            return Err("a column has no name".into());
        }
        if !seen.insert(c.name().to_ascii_lowercase()) {
            return Err(format!("column '{}' appears twice", c.name()));
        }
    }
    for required in [Field::Id, Field::Name] {
        if !columns.contains(&Column::Known(required)) {
            return Err(format!("there is no '{}' column", required.name()));
        }
    }
    Ok(())
}

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

/// Builds one [`ClientRecord`] from a row's values, collecting every bad
/// field rather than stopping at the first.
pub struct RowBuilder {
    client: Client,
    consents: [Option<bool>; 3],
    errors: Vec<FieldError>,
    has_id: bool,
}

impl Default for RowBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RowBuilder {
    pub fn new() -> Self {
        Self {
            client: Client::bare(
                ClientId::parse("-").expect("placeholder id is valid"),
                String::new(),
            ),
            consents: [None; 3],
            errors: Vec::new(),
            has_id: false,
        }
    }

    /// Sets one known field from its text. An empty value means "not given".
    pub fn set(&mut self, field: Field, raw: &str) {
        if let Err(e) = self.apply(field, raw.trim()) {
            self.errors.push(FieldError {
                field: field.name().into(),
                reason: e.0,
            });
        }
    }

    /// Keeps a value of an unknown column. Empty values are not stored.
    pub fn set_attribute(&mut self, name: &str, value: Value) {
        let empty =
            matches!(&value, Value::Null) || value.as_str().is_some_and(|s| s.trim().is_empty());
        if !empty {
            self.client.attributes.insert(name.to_owned(), value);
        }
    }

    /// The id as given, for error reports, even when the row is bad.
    pub fn id_for_report(&self) -> Option<String> {
        self.has_id.then(|| self.client.id.to_string())
    }

    pub fn finish(mut self) -> Result<ClientRecord, (Option<String>, Vec<FieldError>)> {
        if !self.has_id && !self.errors.iter().any(|e| e.field == "id") {
            self.errors.push(FieldError {
                field: "id".into(),
                reason: "is missing".into(),
            });
        }
        if self.client.name.is_empty() && !self.errors.iter().any(|e| e.field == "name") {
            self.errors.push(FieldError {
                field: "name".into(),
                reason: "is missing".into(),
            });
        }
        if !self.errors.is_empty() {
            let id = self.id_for_report();
            return Err((id, self.errors));
        }
        let hash = self.client.content_hash();
        Ok(ClientRecord {
            client: self.client,
            consents: self.consents,
            hash,
        })
    }

    fn apply(&mut self, field: Field, v: &str) -> Result<(), Invalid> {
        let c = &mut self.client;
        match field {
            Field::Id => {
                c.id = ClientId::parse(v)?;
                self.has_id = true;
            }
            Field::Name => c.name = parse_name(v)?,
            Field::Email => c.email = optional(v, Email::parse)?,
            Field::Phone => c.phone = optional(v, Mobile::parse)?,
            Field::Branch => c.branch = optional(v, |s| Ok(s.to_owned()))?,
            Field::Advisor => c.advisor = optional(v, |s| Ok(s.to_owned()))?,
            Field::RiskLevel => c.risk_level = optional(v, RiskLevel::parse)?,
            Field::Assets => c.assets = optional(v, parse_assets)?,
            Field::Tags => c.tags = parse_tags(v),
            Field::Holdings => c.holdings = parse_codes(v)?,
            Field::Watchlist => c.watchlist = parse_codes(v)?,
            Field::Birthday => c.birthday = optional(v, parse_date)?,
            Field::OpenedOn => c.opened_on = optional(v, parse_date)?,
            Field::LastTradeOn => c.last_trade_on = optional(v, parse_date)?,
            Field::RiskAssessedOn => c.risk_assessed_on = optional(v, parse_date)?,
            Field::InvestorType => {
                c.investor_type = optional(v, InvestorType::parse)?.unwrap_or_default()
            }
            Field::LowestRiskCategory => {
                c.lowest_risk_category = optional(v, parse_bool)?.unwrap_or(false)
            }
            Field::ConsentEmail => {
                self.consents[ConsentScope::Email.index()] = optional(v, parse_bool)?
            }
            Field::ConsentSms => {
                self.consents[ConsentScope::Sms.index()] = optional(v, parse_bool)?
            }
            Field::PersonalisedMarketing => {
                self.consents[ConsentScope::PersonalisedMarketing.index()] =
                    optional(v, parse_bool)?
            }
        }
        Ok(())
    }
}

fn optional<T>(
    v: &str,
    parse: impl FnOnce(&str) -> Result<T, Invalid>,
) -> Result<Option<T>, Invalid> {
    if v.is_empty() {
        Ok(None)
    } else {
        parse(v).map(Some)
    }
}

fn parse_name(v: &str) -> Result<String, Invalid> {
    if v.chars().any(char::is_control) {
        return Err(Invalid("contains control characters".into()));
    }
    if v.chars().count() > 100 {
        return Err(Invalid("is longer than 100 characters".into()));
    }
    Ok(v.to_owned())
}

fn parse_assets(v: &str) -> Result<Cny, Invalid> {
    let amount = Cny::parse(v)?;
    if amount.fen() < 0 {
        return Err(Invalid(format!("'{v}' is negative")));
    }
    Ok(amount)
}

/// `true/false`, `1/0`, `yes/no`, `y/n`, `是/否`.
pub fn parse_bool(v: &str) -> Result<bool, Invalid> {
    let is = |words: [&str; 6]| words.iter().any(|w| v.eq_ignore_ascii_case(w));
    if is(["true", "t", "1", "yes", "y", "是"]) {
        Ok(true)
    } else if is(["false", "f", "0", "no", "n", "否"]) {
        Ok(false)
    } else {
        Err(Invalid(format!("'{v}' is not a boolean (true or false)")))
    }
}

fn parse_tags(v: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for t in v.split(';').map(str::trim).filter(|t| !t.is_empty()) {
        if !tags.iter().any(|x| x == t) {
            tags.push(t.to_owned());
        }
    }
    tags
}

fn parse_codes(v: &str) -> Result<Vec<StockCode>, Invalid> {
    let mut codes: Vec<StockCode> = Vec::new();
    for raw in v.split(';').map(str::trim).filter(|t| !t.is_empty()) {
        let code = StockCode::parse(raw)?;
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(pairs: &[(&str, &str)]) -> Result<ClientRecord, (Option<String>, Vec<FieldError>)> {
        let mut b = RowBuilder::new();
        for (k, v) in pairs {
            match Column::from_header(k) {
                Column::Known(f) => b.set(f, v),
                Column::Attribute(a) => b.set_attribute(&a, Value::String((*v).into())),
            }
        }
        b.finish()
    }

    #[test]
    fn a_full_row_becomes_a_record() {
        let r = build(&[
            ("id", "000123"),
            ("name", "张三"),
            ("email", "zhang@example.com"),
            ("phone", "138 1234 5678"),
            ("risk_level", "C3"),
            ("assets", "1,500,000.00"),
            ("holdings", "600519; 000001;600519"),
            ("tags", "vip;;margin"),
            ("consent_sms", "是"),
            ("City", "上海"),
        ])
        .unwrap();
        assert_eq!(r.client.id.as_str(), "000123");
        assert_eq!(r.client.phone.unwrap().as_str(), "+8613812345678");
        assert_eq!(r.client.assets.unwrap().fen(), 150_000_000);
        assert_eq!(r.client.holdings.len(), 2, "duplicates dropped");
        assert_eq!(r.client.tags, vec!["vip", "margin"]);
        assert_eq!(r.consents, [None, Some(true), None]);
        assert_eq!(r.client.attributes["City"], "上海");
    }

    #[test]
    fn booleans_take_any_case_and_chinese() {
        for yes in ["true", "TRUE", "T", "1", "Yes", "y", "是"] {
            assert_eq!(parse_bool(yes).ok(), Some(true), "{yes}");
        }
        for no in ["false", "False", "f", "0", "NO", "n", "否"] {
            assert_eq!(parse_bool(no).ok(), Some(false), "{no}");
        }
        for bad in ["", "ja", "truee", "是的"] {
            assert!(parse_bool(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_bad_field_is_reported() {
        let (id, errors) = build(&[
            ("id", "42"),
            ("name", "李四"),
            ("email", "not-an-email"),
            ("risk_level", "C9"),
            ("assets", "12,3x"),
            ("birthday", "1990-13-45"),
        ])
        .unwrap_err();
        assert_eq!(id.as_deref(), Some("42"));
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["email", "risk_level", "assets", "birthday"]);
    }

    #[test]
    fn a_row_without_id_or_name_is_refused() {
        let (_, errors) = build(&[("email", "a@b.cn")]).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["id", "name"]);
    }

    #[test]
    fn headers_need_id_and_name_once() {
        let cols = |h: &[&str]| h.iter().map(|s| Column::from_header(s)).collect::<Vec<_>>();
        assert!(check_header(&cols(&["id", "name", "email"])).is_ok());
        assert!(check_header(&cols(&["name", "email"]))
            .unwrap_err()
            .contains("'id'"));
        assert!(check_header(&cols(&["id", "name", "ID"]))
            .unwrap_err()
            .contains("twice"));
    }
}
