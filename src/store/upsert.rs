//! Deciding what an imported batch changes, shared by both backends: the
//! backends fetch what they hold for the batch's ids, this module decides,
//! and the backends write the result.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::RowOutcome;
use crate::client::consent::{
    import_decision, ConsentChange, ConsentScope, ConsentSource, ConsentState, ConsentStates,
    ImportConsent,
};
use crate::client::{Client, ClientRecord};

/// What an imported row did to the stored client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowChange {
    Inserted,
    Updated,
    Unchanged,
}

/// What the store holds for a client, as far as an import needs to know.
#[derive(Debug, Clone)]
pub struct Existing {
    pub hash: Vec<u8>,
    pub consents: ConsentStates,
}

/// The final state of one client after the batch.
pub struct RowWrite<'a> {
    pub client: &'a Client,
    pub hash: [u8; 16],
    pub consents: ConsentStates,
}

/// Everything a batch changes.
pub struct BatchPlan<'a> {
    pub outcomes: Vec<RowOutcome>,
    /// One per changed client, in first-seen order.
    pub writes: Vec<RowWrite<'a>>,
    /// Consent history entries, in the order they happened.
    pub log: Vec<ConsentChange>,
}

/// Plans a batch against what is stored. Rows are taken in order, so a
/// later row for the same id sees the earlier one's result.
pub fn plan<'a>(
    batch: &'a [ClientRecord],
    mut existing: HashMap<String, Existing>,
    at: DateTime<Utc>,
) -> BatchPlan<'a> {
    let mut plan = BatchPlan {
        outcomes: Vec::with_capacity(batch.len()),
        writes: Vec::new(),
        log: Vec::new(),
    };
    let mut write_index: HashMap<&str, usize> = HashMap::new();
    for record in batch {
        let id = record.client.id.as_str();
        let hash = record.client.content_hash();
        let current = existing.get(id);
        let (consents, conflicts, consent_changed) =
            decide_consents(record, current, at, &mut plan.log);
        let change = match current {
            None => RowChange::Inserted,
            Some(cur) if consent_changed || cur.hash != hash => RowChange::Updated,
            Some(_) => RowChange::Unchanged,
        };
        plan.outcomes.push(RowOutcome { change, conflicts });
        if change == RowChange::Unchanged {
            continue;
        }
        let write = RowWrite {
            client: &record.client,
            hash,
            consents,
        };
        match write_index.get(id) {
            Some(&i) => plan.writes[i] = write,
            None => {
                write_index.insert(id, plan.writes.len());
                plan.writes.push(write);
            }
        }
        existing.insert(
            id.to_owned(),
            Existing {
                hash: hash.to_vec(),
                consents,
            },
        );
    }
    plan
}

/// Applies the consent rule to each scope. Returns the resulting states, the
/// scopes in conflict, and whether anything changed.
fn decide_consents(
    record: &ClientRecord,
    current: Option<&Existing>,
    at: DateTime<Utc>,
    log: &mut Vec<ConsentChange>,
) -> (ConsentStates, Vec<ConsentScope>, bool) {
    let import_state = |granted| ConsentState {
        granted,
        source: ConsentSource::Import,
        at,
    };
    let mut states = current.map_or([import_state(false); 3], |c| c.consents);
    let mut conflicts = Vec::new();
    let mut changed = false;
    for scope in ConsentScope::ALL {
        let cur = current.map(|c| &c.consents[scope.index()]);
        match import_decision(scope, cur, record.claim(scope)) {
            ImportConsent::Keep => {}
            ImportConsent::Conflict => conflicts.push(scope),
            ImportConsent::Set(granted) => {
                states[scope.index()] = import_state(granted);
                changed = true;
                log.push(ConsentChange {
                    client_id: record.client.id.clone(),
                    scope,
                    granted,
                    source: ConsentSource::Import,
                    at,
                    actor: None,
                    note: None,
                });
            }
        }
    }
    (states, conflicts, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::row::{Column, RowBuilder};

    fn record(id: &str, name: &str, sms: Option<bool>) -> ClientRecord {
        let mut b = RowBuilder::new();
        for (k, v) in [("id", id), ("name", name)] {
            if let Column::Known(f) = Column::from_header(k) {
                b.set(f, v);
            }
        }
        let mut r = b.finish().unwrap();
        r.consents[ConsentScope::Sms.index()] = sms;
        r
    }

    #[test]
    fn a_repeated_id_in_one_batch_is_written_once_with_the_last_state() {
        let batch = vec![
            record("1", "甲", Some(true)),
            record("1", "乙", Some(false)),
        ];
        let p = plan(&batch, HashMap::new(), Utc::now());
        let changes: Vec<RowChange> = p.outcomes.iter().map(|o| o.change).collect();
        assert_eq!(changes, vec![RowChange::Inserted, RowChange::Updated]);
        assert_eq!(p.writes.len(), 1);
        assert_eq!(p.writes[0].client.name, "乙");
        assert!(!p.writes[0].consents[ConsentScope::Sms.index()].granted);
    }

    #[test]
    fn an_identical_row_is_unchanged_and_not_written() {
        let r = record("7", "丙", Some(true));
        let first = plan(std::slice::from_ref(&r), HashMap::new(), Utc::now());
        let stored = Existing {
            hash: first.writes[0].hash.to_vec(),
            consents: first.writes[0].consents,
        };
        let again = plan(
            std::slice::from_ref(&r),
            HashMap::from([("7".to_owned(), stored)]),
            Utc::now(),
        );
        assert_eq!(again.outcomes[0].change, RowChange::Unchanged);
        assert!(again.writes.is_empty() && again.log.is_empty());
    }

    #[test]
    fn a_protected_opt_out_survives_and_is_reported() {
        let r = record("9", "丁", Some(true));
        let first = plan(std::slice::from_ref(&r), HashMap::new(), Utc::now());
        let mut consents = first.writes[0].consents;
        consents[ConsentScope::Sms.index()] = ConsentState {
            granted: false,
            source: ConsentSource::SmsReply,
            at: Utc::now(),
        };
        let stored = Existing {
            hash: first.writes[0].hash.to_vec(),
            consents,
        };
        let again = plan(
            std::slice::from_ref(&r),
            HashMap::from([("9".to_owned(), stored)]),
            Utc::now(),
        );
        assert_eq!(again.outcomes[0].conflicts, vec![ConsentScope::Sms]);
        assert_eq!(again.outcomes[0].change, RowChange::Unchanged);
    }
}
