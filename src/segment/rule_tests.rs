//! Rule tests for staff: example clients written beside a rule
//! (`rules/NAME.test.toml`), each with the verdict the rule should give.
//!
//! ```toml
//! today = "2026-11-25"            # optional: the date the cases assume
//! [context]
//! stock = "600519"
//!
//! [[case]]
//! name = "持有茅台的 C3 客户"
//! expect = true
//! client = { id = "T1", name = "张三", risk_level = "C3", holdings = "600519" }
//! events = [{ type = "clicked", days_ago = 3, channel = "email" }]
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Duration, NaiveDate, TimeZone};
use chrono_tz::Tz;
use rhai::Map;
use serde::{Deserialize, Serialize};

use super::engine::engine;
use super::eval::Evaluator;
use super::native::Native;
use super::profile::{ClientView, Columns};
use super::rule::{Rule, RuleError};
use super::vocabulary::Today;
use crate::channel::Channel;
use crate::client::consent::{ConsentScope, ConsentSource, ConsentState};
use crate::client::row::{Column, RowBuilder};
use crate::client::StoredClient;
use crate::event::{Engagement, EventKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    today: Option<String>,
    #[serde(default)]
    context: toml::Table,
    #[serde(default, rename = "case")]
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    expect: bool,
    client: toml::Table,
    #[serde(default)]
    events: Vec<CaseEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseEvent {
    #[serde(rename = "type")]
    kind: String,
    days_ago: i64,
    channel: Option<String>,
    campaign_kind: Option<String>,
}

/// How one case went.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub expected: bool,
    /// The rule's verdict, or why it gave none.
    pub got: Result<bool, String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.got.as_ref().is_ok_and(|g| *g == self.expected)
    }
}

/// The tests file beside a rule: `x.rhai` → `x.test.toml`.
pub fn tests_path(rule: &Path) -> PathBuf {
    rule.with_extension("test.toml")
}

/// A problem with the tests file itself.
#[derive(Debug, thiserror::Error)]
pub enum RuleTestError {
    #[error("{0}: {1}")]
    File(String, String),
    #[error("{0}")]
    Rule(#[from] RuleError),
}

/// Runs every case of the rule's tests file.
pub fn run(
    rule_path: &Path,
    tz: Tz,
    default_today: NaiveDate,
    valid_days: u32,
) -> Result<Vec<CaseResult>, RuleTestError> {
    if !rule_path.is_file() {
        return Err(RuleTestError::File(
            rule_path.display().to_string(),
            "no such rule".into(),
        ));
    }
    let path = tests_path(rule_path);
    let name = path.display().to_string();
    let bad = |m: String| RuleTestError::File(name.clone(), m);
    let text = std::fs::read_to_string(&path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let file: TestFile = toml::from_str(&text)
        .map_err(|e| bad(e.to_string().lines().next().unwrap_or("").to_owned()))?;
    let date = match &file.today {
        Some(t) => crate::time::parse_date(t).map_err(|e| bad(format!("today: {}", e.0)))?,
        None => default_today,
    };
    let today = Today {
        date,
        assessment_valid_days: valid_days,
    };
    let ctx: Map = file
        .context
        .iter()
        .map(|(k, v)| (k.as_str().into(), toml_text(v).into()))
        .collect();
    let keys = file.context.keys().cloned().collect();
    let engine = engine(today);
    let rule = Rule::load(rule_path, &engine, &keys)?;
    let native = Native::compile(&rule, &ctx, today);
    let mut evaluator = Evaluator::new(&engine, &rule, native.as_ref(), &ctx, today);
    file.cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let client = case_client(case, today.date, tz)
                .map_err(|m| bad(format!("case {} ({}): {m}", i + 1, case.name)))?;
            Ok(CaseResult {
                name: case.name.clone(),
                expected: case.expect,
                got: evaluator.verdict(&client),
            })
        })
        .collect()
}

fn toml_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items.iter().map(toml_text).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

/// Builds the case's client through the same validation as an import.
fn case_client(case: &Case, today: NaiveDate, tz: Tz) -> Result<ClientView, String> {
    let mut row = RowBuilder::new();
    if !case.client.contains_key("name") {
        row.set(crate::client::row::Field::Name, &case.name);
    }
    for (k, v) in &case.client {
        match Column::from_header(k) {
            Column::Known(f) => row.set(f, &toml_text(v)),
            Column::Attribute(a) => row.set_attribute(&a, serde_json::Value::String(toml_text(v))),
        }
    }
    let record = row.finish().map_err(|(_, errs)| {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.reason))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let at = tz
        .from_local_datetime(&today.and_hms_opt(12, 0, 0).expect("noon exists"))
        .earliest()
        .expect("noon is unambiguous")
        .to_utc();
    let consents = ConsentScope::ALL.map(|s| ConsentState {
        granted: record.claim(s).unwrap_or(s.default_granted()),
        source: ConsentSource::Import,
        at,
    });
    let engagement = case
        .events
        .iter()
        .map(|e| {
            Ok(Engagement {
                client_id: record.client.id.clone(),
                kind: EventKind::parse(&e.kind).map_err(|x| x.0)?,
                channel: e
                    .channel
                    .as_deref()
                    .map(Channel::parse)
                    .transpose()
                    .map_err(|x| x.0)?,
                campaign_kind: e.campaign_kind.clone(),
                last_at: at - Duration::days(e.days_ago),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let stored = StoredClient {
        client: record.client,
        consents,
        created_at: at,
        updated_at: at,
    };
    let mut columns = Columns::default();
    columns.push(&stored, &engagement, tz);
    Ok(ClientView::new(Arc::new(columns), 0))
}
