//! `herald archive show|verify`: what was sent, kept for compliance, and a
//! check that nothing in the archive was changed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde::Serialize;

use super::print_json;
use crate::store::runs::{ArchiveRecord, ARCHIVE_GENESIS};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// How many of the latest entries
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

/// `herald audit`: the latest entries of the audit log, newest first.
pub async fn audit(args: AuditArgs, store: &dyn Store) -> Result<ExitCode> {
    let entries = store.audit_log(args.limit).await?;
    if args.json {
        print_json(&entries)?;
    } else if entries.is_empty() {
        say!("the audit log is empty");
    } else {
        for e in entries {
            say!(
                "{}  {:<16} {:<18} {}  {}",
                e.at.format("%Y-%m-%d %H:%M:%S UTC"),
                e.actor,
                e.action,
                e.subject,
                e.details
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Show the archived message of a delivery: content, recipient, decision, consent, approver
    Show {
        /// The delivery's number (in herald run show, and in the X-Herald-Delivery header)
        delivery: i64,
        /// Write the email's HTML to this file
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Check the whole archive's hash chain
    Verify {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: ArchiveCommand, store: &dyn Store) -> Result<ExitCode> {
    match cmd {
        ArchiveCommand::Show {
            delivery,
            html,
            json,
        } => show(store, delivery, html, json).await,
        ArchiveCommand::Verify { json } => {
            let report = verify(store).await?;
            if json {
                print_json(&report)?;
            } else if let Some(b) = &report.broken {
                say!(
                    "archive BROKEN at record {} (delivery {}): {}; {} records before it are intact",
                    b.seq, b.delivery_id, b.problem, report.intact
                );
            } else if report.unarchived > 0 {
                say!(
                    "archive INCOMPLETE: the chain of {} records is whole, but {} sent messages have no record (deliveries {}{})",
                    report.intact,
                    report.unarchived,
                    report
                        .unarchived_deliveries
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    if report.unarchived > report.unarchived_deliveries.len() as u64 {
                        ", …"
                    } else {
                        ""
                    }
                );
            } else {
                say!("archive intact: {} records, chain verified", report.intact);
            }
            Ok(if report.broken.is_none() && report.unarchived == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

async fn show(
    store: &dyn Store,
    delivery: i64,
    html: Option<PathBuf>,
    json: bool,
) -> Result<ExitCode> {
    let record = store.archive_get(delivery).await?.with_context(|| {
        format!("delivery {delivery} is not in the archive (only sent messages are)")
    })?;
    // A changed record is not shown as what was sent.
    if let Some(problem) = links_problem(store, &record).await? {
        anyhow::bail!(
            "archive record {} (delivery {delivery}) is not shown: {problem}; herald archive verify checks the whole archive",
            record.seq
        );
    }
    let body: serde_json::Value =
        serde_json::from_str(&record.record).context("the archived record")?;
    if let Some(path) = &html {
        let text = body["message"]["html"].as_str().with_context(|| {
            format!(
                "delivery {delivery} went by {}: it has no HTML to write",
                body["channel"].as_str().unwrap_or("a channel without HTML")
            )
        })?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if json {
        print_json(&serde_json::json!({ "archive": record, "record": body }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let m = &body["message"];
    say!(
        "delivery {} · run {} ({}/{})",
        record.delivery_id,
        record.run_id,
        body["run"]["campaign"].as_str().unwrap_or(""),
        body["run"]["key"].as_str().unwrap_or("")
    );
    say!(
        "sent      {}",
        record.archived_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    say!(
        "client    {} · {} {}",
        record.client_id,
        body["channel"].as_str().unwrap_or(""),
        body["address"].as_str().unwrap_or("")
    );
    say!("provider  {}", body["provider_id"].as_str().unwrap_or(""));
    say!(
        "approved  {}",
        body["approved_by"]
            .as_str()
            .unwrap_or("(no approval required)")
    );
    say!("decision  {}", body["decision"]);
    say!("consent   {}", body["consent_at_send"]);
    if let Some(subject) = m["subject"].as_str() {
        say!("subject   {subject}");
        say!("\n{}", m["text"].as_str().unwrap_or(""));
    } else if let Some(text) = m["text"].as_str() {
        say!("\n{text}");
    } else {
        say!("template  {} {}", m["code"], m["params"]);
    }
    say!("\nrecord {} · hash {}", record.seq, record.hash);
    Ok(ExitCode::SUCCESS)
}

/// What is wrong with one record and its place in the chain: its hash
/// over what is stored, and the hashes its neighbours name.
async fn links_problem(store: &dyn Store, r: &ArchiveRecord) -> Result<Option<String>> {
    if let Some(why) = &r.unreadable {
        return Ok(Some(why.clone()));
    }
    if !r.follows(&r.prev_hash) {
        return Ok(Some(
            "its content does not match its hash: it was changed".into(),
        ));
    }
    let before = match r.seq {
        1 => Some(ARCHIVE_GENESIS.to_owned()),
        seq => store
            .archive_page(seq - 2, 1)
            .await?
            .pop()
            .filter(|p| p.seq == seq - 1)
            .map(|p| p.hash),
    };
    if before.as_deref() != Some(r.prev_hash.as_str()) {
        return Ok(Some("it does not follow the record before it".into()));
    }
    let after = store.archive_page(r.seq, 1).await?.pop();
    if after.is_some_and(|next| next.prev_hash != r.hash) {
        return Ok(Some("the record after it does not follow it".into()));
    }
    Ok(None)
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub intact: u64,
    pub broken: Option<Broken>,
    /// Deliveries recorded sent with no archive record: records taken
    /// from the archive's end leave the chain itself whole.
    pub unarchived: u64,
    /// The first of them.
    pub unarchived_deliveries: Vec<i64>,
}

#[derive(Debug, Serialize)]
pub struct Broken {
    pub seq: i64,
    pub delivery_id: i64,
    pub problem: String,
}

/// Walks the chain from the start: each record must follow the one before
/// (no gap), name its hash, and hash to what it says.
pub async fn verify(store: &dyn Store) -> Result<VerifyReport> {
    let mut prev_hash = ARCHIVE_GENESIS.to_owned();
    let mut prev_seq = 0;
    let mut intact = 0;
    loop {
        let page = store.archive_page(prev_seq, 5000).await?;
        if page.is_empty() {
            let (unarchived, unarchived_deliveries) = store.sent_unarchived(10).await?;
            return Ok(VerifyReport {
                intact,
                broken: None,
                unarchived,
                unarchived_deliveries,
            });
        }
        for r in page {
            if let Some(problem) = check(&r, prev_seq, &prev_hash) {
                let broken = Broken {
                    seq: r.seq,
                    delivery_id: r.delivery_id,
                    problem,
                };
                return Ok(VerifyReport {
                    intact,
                    broken: Some(broken),
                    unarchived: 0,
                    unarchived_deliveries: Vec::new(),
                });
            }
            prev_seq = r.seq;
            prev_hash = r.hash;
            intact += 1;
        }
    }
}

fn check(r: &ArchiveRecord, prev_seq: i64, prev_hash: &str) -> Option<String> {
    if r.seq != prev_seq + 1 {
        return Some(format!(
            "records {} to {} are missing",
            prev_seq + 1,
            r.seq - 1
        ));
    }
    if r.prev_hash != prev_hash {
        return Some("it does not follow the record before it".into());
    }
    if !r.follows(prev_hash) {
        return Some("its content does not match its hash: it was changed".into());
    }
    r.unreadable.clone()
}
