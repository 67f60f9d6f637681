//! `herald inbound ingest`: returned mail and unsubscribe mail, read from a
//! file, a maildir or an mbox.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;

use super::print_json;
use crate::config::Config;
use crate::store::Store;
use crate::tracking::inbound::{ingest, read_messages, Outcome};
use crate::tracking::server::{Refusal, TrackingState};

#[derive(Debug, Subcommand)]
pub enum InboundCommand {
    /// Read bounces (RFC 3464) and mail to the unsubscribe address, and record them
    Ingest {
        /// A message file, a maildir, or an mbox
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: InboundCommand, store: Arc<dyn Store>, config: &Config) -> Result<ExitCode> {
    let InboundCommand::Ingest { path, json } = cmd;
    let messages =
        read_messages(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let state = TrackingState::new(store, config)?;
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut left_alone = Vec::new();
    for (name, raw) in &messages {
        let outcome = match ingest(&state, raw).await {
            Ok(o) => o,
            Err(Refusal::Unavailable) => {
                anyhow::bail!("the database failed while reading {name}; nothing after it was read")
            }
            Err(Refusal::BadLink) => Outcome::Ignored {
                reason: "names a delivery herald did not send".into(),
            },
        };
        let key = match &outcome {
            Outcome::HardBounce { .. } => "hard_bounce",
            Outcome::SoftBounce { .. } => "soft_bounce",
            Outcome::Unsubscribed { .. } => "unsubscribed",
            Outcome::Ignored { reason } => {
                left_alone.push(json!({ "message": name, "reason": reason }));
                "left_alone"
            }
        };
        *counts.entry(key).or_default() += 1;
    }
    if json {
        print_json(
            &json!({ "messages": messages.len(), "counts": counts, "left_alone": left_alone }),
        )?;
    } else {
        say!("{} message(s) read from {}", messages.len(), path.display());
        for (k, n) in &counts {
            say!("  {k:<14} {n}");
        }
        for l in &left_alone {
            say!(
                "  left alone: {} ({})",
                l["message"].as_str().unwrap_or(""),
                l["reason"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
