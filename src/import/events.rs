//! `herald import events FILE`: a JSON-lines history from a previous system,
//! one event per line:
//! `{"client": "000123", "time": "2026-11-03T08:31:12+08:00", "type": "opened",
//!   "channel": "email", "campaign_kind": "market_bulletin", "campaign": "daily-bulletin",
//!   "details": {}}`

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::{
    open, parse_jsonl, progress, refresh, BatchSender, ImportError, Rejection, Rejections,
};
use crate::channel::Channel;
use crate::client::types::ClientId;
use crate::event::{EventKind, NewEvent};
use crate::store::{EventOutcome, Imported, Store};
use crate::time::FirmTime;

const KEYS: &str = "client, time, type, channel, campaign, campaign_kind, details";

/// What an event import did.
#[derive(Debug, Default, Serialize)]
pub struct EventImportSummary {
    pub file: String,
    pub rows: u64,
    pub imported: u64,
    /// Already stored, e.g. by an earlier import of the same file.
    pub duplicates: u64,
    pub rejected: u64,
    pub elapsed_ms: u64,
    pub rejections: Rejections,
}

/// Imports an event history, streaming it. Events for unknown clients are
/// rejected; events already stored are counted as duplicates.
pub async fn import_events(
    store: &dyn Store,
    path: &Path,
    quiet: bool,
    time: &FirmTime,
) -> Result<EventImportSummary, ImportError> {
    let started = Instant::now();
    let (reader, size) = open(path)?;
    let name = path.display().to_string();
    let bar = progress(size, quiet);
    let (tx, mut rx) = mpsc::channel(4);
    let time = *time;
    let parser = tokio::task::spawn_blocking(move || {
        parse_jsonl(reader, BatchSender::new(tx), |map, line| {
            event(map, line, &time)
        })
    });

    let mut summary = EventImportSummary {
        file: name.clone(),
        ..Default::default()
    };
    while let Some(batch) = rx.recv().await {
        let batch = batch.map_err(|message| ImportError::Format {
            path: name.clone(),
            message,
        })?;
        for fields in batch.rejected {
            summary.rows += 1;
            summary.rejections.add_row(fields);
        }
        let (lines, events): (Vec<u64>, Vec<NewEvent>) = batch.items.into_iter().unzip();
        let outcomes = store.insert_events(&events).await?;
        for ((line, event), outcome) in lines.into_iter().zip(&events).zip(outcomes) {
            summary.rows += 1;
            match outcome {
                EventOutcome::Stored => summary.imported += 1,
                EventOutcome::Duplicate => summary.duplicates += 1,
                EventOutcome::UnknownClient => summary.rejections.add_row([Rejection {
                    line,
                    id: Some(event.client_id.to_string()),
                    field: "client".into(),
                    reason: format!("no client with id '{}'", event.client_id),
                }]),
            }
        }
        bar.set_position(batch.bytes_read);
    }
    parser.await.map_err(|e| ImportError::Format {
        path: name,
        message: e.to_string(),
    })?;
    bar.finish_and_clear();
    if summary.imported > 0 {
        refresh(store, Imported::Events).await;
    }
    summary.rejected = summary.rejections.rows;
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

/// Validates one line into an event, reporting every bad field.
fn event(
    mut map: Map<String, Value>,
    line: u64,
    time: &FirmTime,
) -> Result<NewEvent, Vec<Rejection>> {
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut take = |key: &str, required: bool| -> Option<String> {
        match map.remove(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
            None | Some(Value::Null) if !required => None,
            Some(Value::String(_)) | None | Some(Value::Null) => {
                errors.push((key.into(), "is missing".into()));
                None
            }
            Some(other) => {
                errors.push((key.into(), format!("must be a string, not {other}")));
                None
            }
        }
    };
    let client = take("client", true);
    let at = take("time", true);
    let kind = take("type", true);
    let channel = take("channel", false);
    let campaign = take("campaign", false);
    let campaign_kind = take("campaign_kind", false);
    let details = match map.remove("details") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(d @ Value::Object(_)) => d,
        Some(_) => {
            errors.push(("details".into(), "must be a JSON object".into()));
            Value::Null
        }
    };
    for unknown in map.keys() {
        errors.push((unknown.clone(), format!("is not a known key ({KEYS})")));
    }
    let client_id = client.and_then(|c| check(&mut errors, "client", ClientId::parse(&c)));
    let at = at.and_then(|t| check(&mut errors, "time", time.parse_instant(&t)));
    let kind = kind.and_then(|k| check(&mut errors, "type", EventKind::parse(&k)));
    let channel = channel.map(|c| check(&mut errors, "channel", Channel::parse(&c)));
    match (client_id, at, kind, channel) {
        (Some(client_id), Some(at), Some(kind), channel) if errors.is_empty() => Ok(NewEvent {
            client_id,
            at,
            kind,
            channel: channel.flatten(),
            campaign,
            campaign_kind,
            purpose: None,
            run_id: None,
            delivery_id: None,
            source: "import".into(),
            details,
            dedupe_on: None,
        }),
        (client_id, ..) => {
            let id = client_id.map(|c| c.to_string());
            Err(errors
                .into_iter()
                .map(|(field, reason)| Rejection {
                    line,
                    id: id.clone(),
                    field,
                    reason,
                })
                .collect())
        }
    }
}

/// Keeps a parsed value, or records why it failed.
fn check<T>(
    errors: &mut Vec<(String, String)>,
    field: &str,
    r: Result<T, crate::client::types::Invalid>,
) -> Option<T> {
    r.map_err(|e| errors.push((field.into(), e.0))).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn parse_line(text: &str) -> Result<NewEvent, Vec<Rejection>> {
        let time = FirmTime::new(chrono_tz::Asia::Shanghai);
        let Value::Object(map) = serde_json::from_str(text).unwrap() else {
            panic!()
        };
        event(map, 7, &time)
    }

    #[test]
    fn a_history_line_becomes_an_event() {
        let e = parse_line(
            r#"{"client":"000123","time":"2026-11-03 08:31:12","type":"opened","channel":"email",
                "campaign_kind":"market_bulletin","campaign":"daily-bulletin","details":{"ua":"x"}}"#,
        )
        .unwrap();
        assert_eq!(e.client_id.as_str(), "000123");
        assert_eq!(
            e.at.with_timezone(&Utc).to_rfc3339(),
            "2026-11-03T00:31:12+00:00"
        );
        assert_eq!(e.kind, EventKind::Opened);
        assert_eq!(e.channel, Some(Channel::Email));
        assert_eq!(e.details["ua"], "x");
    }

    #[test]
    fn every_bad_key_is_reported_with_its_line() {
        let errs = parse_line(
            r#"{"client":"1","time":"soon","type":"liked","channel":"fax","colour":"red"}"#,
        )
        .unwrap_err();
        let mut fields: Vec<&str> = errs.iter().map(|r| r.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, vec!["channel", "colour", "time", "type"]);
        assert!(errs
            .iter()
            .all(|r| r.line == 7 && r.id.as_deref() == Some("1")));
    }
}
