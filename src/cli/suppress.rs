//! `herald suppress …` (the do-not-contact list) and `herald consent
//! restore` (the only way to lift an opt-out herald recorded). Every change
//! is audited with who made it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::{Args, Subcommand};
use serde_json::json;

use super::print_json;
use crate::client::consent::{ConsentChange, ConsentScope, ConsentSource};
use crate::client::types::{ClientId, Email, Mobile};
use crate::store::runs::{AuditEntry, DncEntry, DncKind};
use crate::store::Store;

/// What an entry names: exactly one of the three.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// A client id
    #[arg(long, value_name = "ID")]
    pub client: Option<String>,
    /// An email address
    #[arg(long, value_name = "ADDRESS")]
    pub email: Option<String>,
    /// A mobile number
    #[arg(long, value_name = "NUMBER")]
    pub phone: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SuppressCommand {
    /// Put a client, address or number on the do-not-contact list
    Add {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_parser = super::non_blank)]
        reason: String,
        #[arg(long, value_name = "NAME", value_parser = super::non_blank)]
        by: String,
    },
    /// Take an entry off the list
    Remove {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_name = "NAME", value_parser = super::non_blank)]
        by: String,
        #[arg(long, value_parser = super::non_blank)]
        reason: String,
    },
    /// Show the list
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add the entries of a CSV file with the columns kind,value and an optional reason (kind: client, email or phone); if any row is bad, each is named and none is added
    Import {
        file: PathBuf,
        #[arg(long, value_name = "NAME", value_parser = super::non_blank)]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Lift an opt-out herald recorded (unsubscribe link, SMS reply, mail, operator); audited
    Restore {
        /// The client's id
        client: String,
        /// email, sms or personalised_marketing
        #[arg(long, value_name = "C")]
        channel: String,
        #[arg(long, value_name = "NAME", value_parser = super::non_blank)]
        by: String,
        /// Why (the client's written request, its reference)
        #[arg(long, value_parser = super::non_blank)]
        reason: String,
    },
}

pub async fn suppress(cmd: SuppressCommand, store: &dyn Store) -> Result<ExitCode> {
    match cmd {
        SuppressCommand::Add { target, reason, by } => {
            let (kind, value) = normalise_target(&target)?;
            let entry = DncEntry {
                kind,
                value: value.clone(),
                reason,
                added_by: by,
                added_at: Utc::now(),
            };
            if store.dnc_add(&entry).await? {
                say!(
                    "{} {} added to the do-not-contact list",
                    kind.as_str(),
                    shown(kind, &value)
                );
                if kind == DncKind::Client {
                    warn_if_unknown(store, &value).await?;
                }
            } else {
                say!(
                    "{} {} was already on the list",
                    kind.as_str(),
                    shown(kind, &value)
                );
            }
        }
        SuppressCommand::Remove { target, by, reason } => {
            let (kind, value) = normalise_target(&target)?;
            let audit = AuditEntry {
                at: Utc::now(),
                actor: by,
                action: "suppress_remove".into(),
                subject: format!("{}:{value}", kind.as_str()),
                details: json!({ "reason": reason }),
            };
            if !store.dnc_remove(kind, &value, &audit).await? {
                bail!(
                    "{} {} is not on the do-not-contact list",
                    kind.as_str(),
                    shown(kind, &value)
                );
            }
            say!(
                "{} {} removed from the do-not-contact list",
                kind.as_str(),
                shown(kind, &value)
            );
        }
        SuppressCommand::List { json } => {
            let list = store.do_not_contact().await?;
            if json {
                print_json(&list)?;
            } else if list.is_empty() {
                say!("the do-not-contact list is empty");
            } else {
                for e in list {
                    say!(
                        "{:<7} {:<28} {}  {} ({})",
                        e.kind.as_str(),
                        e.value,
                        e.added_at.format("%Y-%m-%d"),
                        e.reason,
                        e.added_by
                    );
                }
            }
        }
        SuppressCommand::Import { file, by } => {
            let entries = read_list(&file, &by)?;
            let mut added = 0;
            for e in &entries {
                if store.dnc_add(e).await? {
                    added += 1;
                }
            }
            say!(
                "{}: {added} added, {} already listed",
                file.display(),
                entries.len() - added
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn consent(cmd: ConsentCommand, store: &dyn Store) -> Result<ExitCode> {
    let ConsentCommand::Restore {
        client,
        channel,
        by,
        reason,
    } = cmd;
    let id = ClientId::parse(&client).with_context(|| format!("client id '{client}'"))?;
    let scope = ConsentScope::parse(&channel).map_err(|e| anyhow::anyhow!("--channel: {}", e.0))?;
    let stored = store
        .client(&id)
        .await?
        .with_context(|| format!("no client with id '{id}'"))?;
    let current = stored.consents[scope.index()];
    if current.granted {
        bail!(
            "client {id} has not opted out of {}: nothing to restore",
            scope.as_str()
        );
    }
    if !current.is_protected_opt_out() {
        bail!(
            "client {id}'s {} consent was refused by the client file, not recorded by herald: the next import sets it",
            scope.as_str()
        );
    }
    let at = Utc::now();
    let change = ConsentChange {
        client_id: id.clone(),
        scope,
        granted: true,
        source: ConsentSource::Operator,
        at,
        actor: Some(by.clone()),
        note: Some(reason.clone()),
    };
    store.record_consent(&change).await?;
    store
        .audit(&AuditEntry {
            at,
            actor: by,
            action: "consent_restore".into(),
            subject: format!("client {id}"),
            details: json!({
                "scope": scope.as_str(),
                "reason": reason,
                "opted_out_by": current.source.as_str(),
                "opted_out_at": current.at,
            }),
        })
        .await?;
    say!(
        "client {id}: {} consent restored (it was refused by {} on {})",
        scope.as_str(),
        current.source,
        current.at.format("%Y-%m-%d %H:%M UTC")
    );
    Ok(ExitCode::SUCCESS)
}

fn normalise_target(t: &Target) -> Result<(DncKind, String)> {
    match (&t.client, &t.email, &t.phone) {
        (Some(c), _, _) => normalise(DncKind::Client, c),
        (_, Some(e), _) => normalise(DncKind::Email, e),
        (_, _, Some(p)) => normalise(DncKind::Phone, p),
        _ => bail!("give --client, --email or --phone"),
    }
}

/// The value as herald stores it, so that the gates match it: a parsed
/// client id, a normalised email, an E.164 number.
fn normalise(kind: DncKind, raw: &str) -> Result<(DncKind, String)> {
    let value = match kind {
        DncKind::Client => ClientId::parse(raw).map(|c| c.to_string()),
        DncKind::Email => Email::parse(raw).map(|e| e.as_str().to_owned()),
        DncKind::Phone => Mobile::parse(raw).map(|m| m.as_str().to_owned()),
    }
    .map_err(|e| anyhow::anyhow!("{}: {}", kind.as_str(), e.0))?;
    Ok((kind, kind.listed_form(&value).into_owned()))
}

/// Listed all the same: the client may be imported later. But a typo
/// protects nobody, so say so.
async fn warn_if_unknown(store: &dyn Store, id: &str) -> Result<()> {
    let id = ClientId::parse(id).map_err(|e| anyhow::anyhow!(e.0))?;
    if store.client(&id).await?.is_none() {
        say!("note: no client {id} is in the database (yet)");
    }
    Ok(())
}

/// Addresses and numbers are personal data: shown masked.
fn shown(kind: DncKind, value: &str) -> String {
    match kind {
        DncKind::Client => value.to_owned(),
        DncKind::Email => Email::parse(value).map_or_else(|_| value.to_owned(), |e| e.masked()),
        DncKind::Phone => Mobile::parse(value).map_or_else(|_| value.to_owned(), |m| m.masked()),
    }
}

/// Reads `kind,value[,reason]` rows. Every bad row is named (its line and
/// field), and any stops the import before anything is added.
fn read_list(file: &std::path::Path, by: &str) -> Result<Vec<DncEntry>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        // A row with a field too few or too many is reported as a row.
        .flexible(true)
        .from_path(file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let headers = reader.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(k), Some(v)) = (col("kind"), col("value")) else {
        bail!(
            "{}:1: the header must name the columns kind,value and, if given, reason",
            file.display()
        );
    };
    let r = col("reason");
    let now = Utc::now();
    let mut entries = Vec::new();
    let mut refused = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                refused.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize, name: &str| {
            record
                .get(i)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("'{name}': missing"))
        };
        let row = field(k, "kind")
            .and_then(|kind| DncKind::parse(kind).map_err(|e| format!("'kind': {}", e.0)))
            .and_then(|kind| {
                let raw = field(v, "value")?;
                normalise(kind, raw).map_err(|e| format!("'value': {e}"))
            });
        match row {
            Ok((kind, value)) => entries.push(DncEntry {
                kind,
                value,
                reason: r.and_then(|r| record.get(r)).unwrap_or("").to_owned(),
                added_by: by.to_owned(),
                added_at: now,
            }),
            Err(m) => refused.push(format!("{}:{line}: {m}", file.display())),
        }
    }
    if !refused.is_empty() {
        bail!(
            "{} rows refused, nothing was added:\n{}",
            refused.len(),
            refused.join("\n")
        );
    }
    Ok(entries)
}
