//! Deciding what an imported batch changes, shared by both backends: the
//! backends fetch what they hold for the batch's ids, this module decides,
//! and the backends write the result.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::columns::ConsentLogEntry;
use super::RowOutcome;
use crate::client::consent::{
    import_decision, ConsentScope, ConsentSource, ConsentState, ConsentStates, ImportConsent,
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
    pub log: Vec<ConsentLogEntry>,
}

/// Plans a batch against what is stored. The backend has already compared
/// the batch with the store: `existing` holds the stored state of the rows
/// that differ from it, `new_ids` the ids it does not have; every other row
/// matches the store and is unchanged. Rows are taken in order, so a later
/// row for the same id sees the earlier one's result.
pub fn plan<'a>(
    batch: &'a [ClientRecord],
    existing: HashMap<String, Existing>,
    new_ids: &HashSet<String>,
    at: DateTime<Utc>,
) -> BatchPlan<'a> {
    plan_with(batch, existing, |id| new_ids.contains(id), at)
}

/// Plans a batch none of whose ids is stored (a bulk load's), without
/// collecting its ids first.
pub fn plan_new(batch: &[ClientRecord], at: DateTime<Utc>) -> BatchPlan<'_> {
    plan_with(batch, HashMap::new(), |_| true, at)
}

fn plan_with<'a>(
    batch: &'a [ClientRecord],
    mut existing: HashMap<String, Existing>,
    is_new: impl Fn(&str) -> bool,
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
        let hash = record.hash;
        let current = existing.get(id);
        if current.is_none() && !is_new(id) {
            plan.outcomes.push(RowOutcome {
                change: RowChange::Unchanged,
                conflicts: Vec::new(),
            });
            continue;
        }
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

/// Applies the consent rule to each scope, logging each change to a stored
/// client with the state it replaces (a new client's first states are on
/// its row). Returns the resulting states, the scopes in conflict, and
/// whether anything changed.
fn decide_consents(
    record: &ClientRecord,
    current: Option<&Existing>,
    at: DateTime<Utc>,
    log: &mut Vec<ConsentLogEntry>,
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
                let new = import_state(granted);
                if let Some(previous) = cur {
                    log.push(ConsentLogEntry {
                        client_id: record.client.id.to_string(),
                        scope,
                        state: new,
                        previous: *previous,
                        actor: None,
                        note: None,
                    });
                }
                states[scope.index()] = new;
                changed = true;
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

    fn new(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_row_the_store_reported_as_matching_is_unchanged() {
        let r = record("3", "丙", Some(true));
        let p = plan(
            std::slice::from_ref(&r),
            HashMap::new(),
            &new(&[]),
            Utc::now(),
        );
        assert_eq!(p.outcomes[0].change, RowChange::Unchanged);
        assert!(p.writes.is_empty() && p.log.is_empty());
    }

    #[test]
    fn a_repeated_id_in_one_batch_is_written_once_with_the_last_state() {
        let batch = vec![
            record("1", "甲", Some(true)),
            record("1", "乙", Some(false)),
        ];
        let p = plan(&batch, HashMap::new(), &new(&["1"]), Utc::now());
        let changes: Vec<RowChange> = p.outcomes.iter().map(|o| o.change).collect();
        assert_eq!(changes, vec![RowChange::Inserted, RowChange::Updated]);
        assert_eq!(p.writes.len(), 1);
        assert_eq!(p.writes[0].client.name, "乙");
        assert!(!p.writes[0].consents[ConsentScope::Sms.index()].granted);
    }

    #[test]
    fn an_identical_row_is_unchanged_and_not_written() {
        let r = record("7", "丙", Some(true));
        let first = plan(
            std::slice::from_ref(&r),
            HashMap::new(),
            &new(&[r.client.id.as_str()]),
            Utc::now(),
        );
        let stored = Existing {
            hash: first.writes[0].hash.to_vec(),
            consents: first.writes[0].consents,
        };
        let again = plan(
            std::slice::from_ref(&r),
            HashMap::from([("7".to_owned(), stored)]),
            &new(&[]),
            Utc::now(),
        );
        assert_eq!(again.outcomes[0].change, RowChange::Unchanged);
        assert!(again.writes.is_empty() && again.log.is_empty());
    }

    #[test]
    fn a_protected_opt_out_survives_and_is_reported() {
        let r = record("9", "丁", Some(true));
        let first = plan(
            std::slice::from_ref(&r),
            HashMap::new(),
            &new(&[r.client.id.as_str()]),
            Utc::now(),
        );
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
            &new(&[]),
            Utc::now(),
        );
        assert_eq!(again.outcomes[0].conflicts, vec![ConsentScope::Sms]);
        assert_eq!(again.outcomes[0].change, RowChange::Unchanged);
    }
}
