//! The clients table's columns, shared by both backends: one list of names,
//! one row type that both drivers decode, and the conversions to and from
//! the domain types.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use sqlx::types::Json;

use super::upsert::RowWrite;
use super::StoreError;
use crate::channel::Channel;
use crate::client::consent::{
    ConsentChange, ConsentScope, ConsentSource, ConsentState, ConsentStates,
};
use crate::client::types::{ClientId, Cny, Email, InvestorType, Mobile, RiskLevel, StockCode};
use crate::client::{join_codes, Client, StoredClient};
use crate::event::{Engagement, EventKind, NewEvent, StoredEvent};

/// Every column of `clients`, in the order [`ClientColumns`] binds them.
pub const CLIENT_COLUMNS: [&str; 30] = [
    "id",
    "name",
    "email",
    "phone",
    "branch",
    "advisor",
    "investor_type",
    "risk_level",
    "risk_assessed_on",
    "lowest_risk_category",
    "assets_fen",
    "tags",
    "holdings",
    "watchlist",
    "birthday",
    "opened_on",
    "last_trade_on",
    "attributes",
    "consent_email",
    "consent_email_source",
    "consent_email_at",
    "consent_sms",
    "consent_sms_source",
    "consent_sms_at",
    "personalised_marketing",
    "personalised_marketing_source",
    "personalised_marketing_at",
    "row_hash",
    "created_at",
    "updated_at",
];

/// The columns an import compares against.
pub const EXISTING_COLUMNS: &str =
    "id, row_hash, consent_email, consent_email_source, consent_email_at, \
     consent_sms, consent_sms_source, consent_sms_at, personalised_marketing, \
     personalised_marketing_source, personalised_marketing_at";

/// [`EXISTING_COLUMNS`] qualified with the table alias `c`.
pub fn prefixed_existing_columns() -> String {
    EXISTING_COLUMNS
        .split(", ")
        .map(|c| format!("c.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// When an incoming row `v` (hash `h`, stated consents `ce`, `cs`, `cp`,
/// NULL where the file says nothing) differs from the stored row `c`.
pub const DIFFERS: &str = "c.row_hash <> v.h \
     OR (v.ce IS NOT NULL AND v.ce <> c.consent_email) \
     OR (v.cs IS NOT NULL AND v.cs <> c.consent_sms) \
     OR (v.cp IS NOT NULL AND v.cp <> c.personalised_marketing)";

/// `SET col = excluded.col, ...` for an upsert: every column but the id and
/// the creation time.
pub fn upsert_assignments() -> String {
    CLIENT_COLUMNS
        .iter()
        .filter(|c| !matches!(**c, "id" | "created_at"))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name of a consent's state column; its source and time columns add
/// `_source` and `_at`.
pub fn consent_column(scope: ConsentScope) -> &'static str {
    match scope {
        ConsentScope::Email => "consent_email",
        ConsentScope::Sms => "consent_sms",
        ConsentScope::PersonalisedMarketing => "personalised_marketing",
    }
}

/// One row of `clients` as both drivers read and write it.
#[derive(Debug, sqlx::FromRow)]
pub struct ClientColumns {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub branch: Option<String>,
    pub advisor: Option<String>,
    pub investor_type: String,
    pub risk_level: Option<i16>,
    pub risk_assessed_on: Option<NaiveDate>,
    pub lowest_risk_category: bool,
    pub assets_fen: Option<i64>,
    pub tags: String,
    pub holdings: String,
    pub watchlist: String,
    pub birthday: Option<NaiveDate>,
    pub opened_on: Option<NaiveDate>,
    pub last_trade_on: Option<NaiveDate>,
    pub attributes: Json<Map<String, Value>>,
    pub consent_email: bool,
    pub consent_email_source: String,
    pub consent_email_at: DateTime<Utc>,
    pub consent_sms: bool,
    pub consent_sms_source: String,
    pub consent_sms_at: DateTime<Utc>,
    pub personalised_marketing: bool,
    pub personalised_marketing_source: String,
    pub personalised_marketing_at: DateTime<Utc>,
    pub row_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The consent columns of an existing row, as an import reads them.
#[derive(Debug, sqlx::FromRow)]
pub struct ExistingColumns {
    pub id: String,
    pub row_hash: Vec<u8>,
    pub consent_email: bool,
    pub consent_email_source: String,
    pub consent_email_at: DateTime<Utc>,
    pub consent_sms: bool,
    pub consent_sms_source: String,
    pub consent_sms_at: DateTime<Utc>,
    pub personalised_marketing: bool,
    pub personalised_marketing_source: String,
    pub personalised_marketing_at: DateTime<Utc>,
}

impl ExistingColumns {
    pub fn into_existing(self) -> Result<(String, super::upsert::Existing), StoreError> {
        let consents = [
            state(
                self.consent_email,
                &self.consent_email_source,
                self.consent_email_at,
            )?,
            state(
                self.consent_sms,
                &self.consent_sms_source,
                self.consent_sms_at,
            )?,
            state(
                self.personalised_marketing,
                &self.personalised_marketing_source,
                self.personalised_marketing_at,
            )?,
        ];
        Ok((
            self.id,
            super::upsert::Existing {
                hash: self.row_hash,
                consents,
            },
        ))
    }
}

fn state(granted: bool, source: &str, at: DateTime<Utc>) -> Result<ConsentState, StoreError> {
    let source = ConsentSource::parse(source).map_err(|e| StoreError::Corrupt(e.0))?;
    Ok(ConsentState {
        granted,
        source,
        at,
    })
}

fn corrupt(id: &str, field: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("client {id}, {field}: {e}"))
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(';').filter(|p| !p.is_empty())
}

impl ClientColumns {
    /// The row for a planned write, stamped `at`.
    pub fn from_write(w: &RowWrite<'_>, at: DateTime<Utc>) -> Self {
        let c = w.client;
        let [email, sms, pm] = w.consents;
        Self {
            id: c.id.to_string(),
            name: c.name.clone(),
            email: c.email.as_ref().map(|e| e.as_str().to_owned()),
            phone: c.phone.as_ref().map(|p| p.as_str().to_owned()),
            branch: c.branch.clone(),
            advisor: c.advisor.clone(),
            investor_type: c.investor_type.as_str().to_owned(),
            risk_level: c.risk_level.map(|l| i16::from(l.number())),
            risk_assessed_on: c.risk_assessed_on,
            lowest_risk_category: c.lowest_risk_category,
            assets_fen: c.assets.map(Cny::fen),
            tags: c.tags.join(";"),
            holdings: join_codes(&c.holdings),
            watchlist: join_codes(&c.watchlist),
            birthday: c.birthday,
            opened_on: c.opened_on,
            last_trade_on: c.last_trade_on,
            attributes: Json(c.attributes.clone()),
            consent_email: email.granted,
            consent_email_source: email.source.as_str().to_owned(),
            consent_email_at: email.at,
            consent_sms: sms.granted,
            consent_sms_source: sms.source.as_str().to_owned(),
            consent_sms_at: sms.at,
            personalised_marketing: pm.granted,
            personalised_marketing_source: pm.source.as_str().to_owned(),
            personalised_marketing_at: pm.at,
            row_hash: w.hash.to_vec(),
            created_at: at,
            updated_at: at,
        }
    }

    /// Back to the domain; a value that no longer parses is reported as
    /// corrupt data rather than silently dropped.
    pub fn into_client(self) -> Result<StoredClient, StoreError> {
        let id = self.id.clone();
        let codes = |field: &str, s: &str| -> Result<Vec<StockCode>, StoreError> {
            split_list(s)
                .map(|c| StockCode::parse(c).map_err(|e| corrupt(&id, field, e)))
                .collect()
        };
        let client = Client {
            id: ClientId::parse(&self.id).map_err(|e| corrupt(&id, "id", e))?,
            name: self.name,
            email: self
                .email
                .as_deref()
                .map(Email::parse)
                .transpose()
                .map_err(|e| corrupt(&id, "email", e))?,
            phone: self
                .phone
                .as_deref()
                .map(Mobile::parse)
                .transpose()
                .map_err(|e| corrupt(&id, "phone", e))?,
            branch: self.branch,
            advisor: self.advisor,
            investor_type: InvestorType::parse(&self.investor_type)
                .map_err(|e| corrupt(&id, "investor_type", e))?,
            risk_level: self
                .risk_level
                .map(|n| {
                    u8::try_from(n)
                        .ok()
                        .and_then(RiskLevel::from_number)
                        .ok_or_else(|| corrupt(&id, "risk_level", n))
                })
                .transpose()?,
            risk_assessed_on: self.risk_assessed_on,
            lowest_risk_category: self.lowest_risk_category,
            assets: self.assets_fen.map(Cny::from_fen),
            tags: split_list(&self.tags).map(str::to_owned).collect(),
            holdings: codes("holdings", &self.holdings)?,
            watchlist: codes("watchlist", &self.watchlist)?,
            birthday: self.birthday,
            opened_on: self.opened_on,
            last_trade_on: self.last_trade_on,
            attributes: self.attributes.0,
        };
        let consents = [
            state(
                self.consent_email,
                &self.consent_email_source,
                self.consent_email_at,
            )?,
            state(
                self.consent_sms,
                &self.consent_sms_source,
                self.consent_sms_at,
            )?,
            state(
                self.personalised_marketing,
                &self.personalised_marketing_source,
                self.personalised_marketing_at,
            )?,
        ];
        Ok(StoredClient {
            client,
            consents,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// One row of `consent_log`: a consent changed from `previous` to `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentLogEntry {
    pub client_id: String,
    pub scope: ConsentScope,
    pub state: ConsentState,
    pub previous: ConsentState,
    pub actor: Option<String>,
    pub note: Option<String>,
}

impl ConsentLogEntry {
    pub fn new(change: &ConsentChange, previous: ConsentState) -> Self {
        Self {
            client_id: change.client_id.to_string(),
            scope: change.scope,
            state: ConsentState {
                granted: change.granted,
                source: change.source,
                at: change.at,
            },
            previous,
            actor: change.actor.clone(),
            note: change.note.clone(),
        }
    }
}

/// Inserts one [`ConsentLogEntry`]; binds in field order, previous last.
pub const CONSENT_LOG_INSERT: &str = "INSERT INTO consent_log \
     (client_id, scope, granted, source, at, actor, note, prev_granted, prev_source, prev_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// A client's consent changes, oldest first.
pub const CONSENT_LOG_SELECT: &str = "SELECT scope, granted, source, at, actor, note, \
     prev_granted, prev_source, prev_at FROM consent_log WHERE client_id = $1 ORDER BY id";

/// A client's current consent columns (with id and hash, as an import reads them).
pub const CONSENT_STATE_SELECT: &str = "SELECT id, row_hash, consent_email, consent_email_source, \
     consent_email_at, consent_sms, consent_sms_source, consent_sms_at, personalised_marketing, \
     personalised_marketing_source, personalised_marketing_at FROM clients WHERE id = $1";

/// One row of `consent_log` as both drivers read it.
#[derive(Debug, sqlx::FromRow)]
pub struct ConsentLogColumns {
    pub scope: String,
    pub granted: bool,
    pub source: String,
    pub at: DateTime<Utc>,
    pub actor: Option<String>,
    pub note: Option<String>,
    pub prev_granted: bool,
    pub prev_source: String,
    pub prev_at: DateTime<Utc>,
}

/// A client's consent history, oldest first: for each scope its first
/// state (the first change's previous state, or the current state when it
/// never changed), then every change.
pub fn consent_history(
    id: &ClientId,
    current: &ConsentStates,
    log: Vec<ConsentLogColumns>,
) -> Result<Vec<ConsentChange>, StoreError> {
    let entry = |scope, s: ConsentState, actor, note| ConsentChange {
        client_id: id.clone(),
        scope,
        granted: s.granted,
        source: s.source,
        at: s.at,
        actor,
        note,
    };
    let mut history = Vec::new();
    let mut seen = [false; 3];
    for row in log {
        let scope = ConsentScope::parse(&row.scope).map_err(|e| StoreError::Corrupt(e.0))?;
        if !seen[scope.index()] {
            seen[scope.index()] = true;
            history.push(entry(
                scope,
                state(row.prev_granted, &row.prev_source, row.prev_at)?,
                None,
                None,
            ));
        }
        history.push(entry(
            scope,
            state(row.granted, &row.source, row.at)?,
            row.actor,
            row.note,
        ));
    }
    for scope in ConsentScope::ALL.into_iter().filter(|s| !seen[s.index()]) {
        history.push(entry(scope, current[scope.index()], None, None));
    }
    history.sort_by_key(|c| c.at);
    Ok(history)
}

/// One row of `events`.
#[derive(Debug, sqlx::FromRow)]
pub struct EventColumns {
    pub id: i64,
    pub client_id: String,
    pub occurred_at: DateTime<Utc>,
    pub kind: String,
    pub channel: Option<String>,
    pub campaign: Option<String>,
    pub campaign_kind: Option<String>,
    pub purpose: Option<String>,
    pub run_id: Option<i64>,
    pub delivery_id: Option<i64>,
    pub source: String,
    pub details: Json<Value>,
    pub recorded_at: DateTime<Utc>,
}

/// The columns [`EventColumns`] reads.
pub const EVENT_SELECT: &str =
    "id, client_id, occurred_at, kind, channel, campaign, campaign_kind, purpose, \
     run_id, delivery_id, source, details, recorded_at";

impl EventColumns {
    pub fn into_event(self) -> Result<StoredEvent, StoreError> {
        let bad = |e: crate::client::types::Invalid| {
            StoreError::Corrupt(format!("event {}: {e}", self.id))
        };
        Ok(StoredEvent {
            id: self.id,
            event: NewEvent {
                client_id: ClientId::parse(&self.client_id).map_err(bad)?,
                at: self.occurred_at,
                kind: EventKind::parse(&self.kind).map_err(bad)?,
                channel: self
                    .channel
                    .as_deref()
                    .map(Channel::parse)
                    .transpose()
                    .map_err(bad)?,
                campaign: self.campaign,
                campaign_kind: self.campaign_kind,
                purpose: self
                    .purpose
                    .as_deref()
                    .map(crate::campaign::Purpose::parse)
                    .transpose()
                    .map_err(bad)?,
                run_id: self.run_id,
                delivery_id: self.delivery_id,
                source: self.source,
                details: self.details.0,
                dedupe_on: None,
            },
            recorded_at: self.recorded_at,
        })
    }
}

/// A page of clients in id order; `$1` is the id to start after (NULL from
/// the start), `$2` the page size.
pub fn clients_page_select() -> String {
    format!(
        "SELECT {} FROM clients WHERE (CAST($1 AS TEXT) IS NULL OR id > $1) ORDER BY id LIMIT $2",
        CLIENT_COLUMNS.join(", ")
    )
}

/// The latest event per client, kind, channel and campaign kind, for ids
/// from `$1` to `$2`.
pub const ENGAGEMENT_SELECT: &str = "SELECT client_id, kind, channel, campaign_kind, \
     MAX(occurred_at) AS last_at FROM events \
     WHERE client_id >= $1 AND client_id <= $2 \
     GROUP BY client_id, kind, channel, campaign_kind \
     ORDER BY client_id";

/// One row of [`ENGAGEMENT_SELECT`].
#[derive(Debug, sqlx::FromRow)]
pub struct EngagementColumns {
    pub client_id: String,
    pub kind: String,
    pub channel: Option<String>,
    pub campaign_kind: Option<String>,
    pub last_at: DateTime<Utc>,
}

impl EngagementColumns {
    pub fn into_engagement(self) -> Result<Engagement, StoreError> {
        let bad = |e: crate::client::types::Invalid| {
            StoreError::Corrupt(format!("events of {}: {e}", self.client_id))
        };
        Ok(Engagement {
            client_id: ClientId::parse(&self.client_id).map_err(bad)?,
            kind: EventKind::parse(&self.kind).map_err(bad)?,
            channel: self
                .channel
                .as_deref()
                .map(Channel::parse)
                .transpose()
                .map_err(bad)?,
            campaign_kind: self.campaign_kind,
            last_at: self.last_at,
        })
    }
}

/// Marks the data changed, inside the changing transaction.
pub const BUMP_DATA_VERSION: &str = "UPDATE meta SET value = value + 1 WHERE key = 'data_version'";

/// The current data version.
pub const DATA_VERSION_SELECT: &str = "SELECT value FROM meta WHERE key = 'data_version'";
