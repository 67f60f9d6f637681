//! `herald import clients|events FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::{print_json, thousands};
use crate::config::Config;
use crate::import::clients::{import_clients, ClientImportOptions, ClientImportSummary};
use crate::import::events::import_events;
use crate::import::Rejections;
use crate::store::Store;

/// Exit status when the import ran but some rows were rejected.
const SOME_ROWS_REJECTED: u8 = 2;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import clients from CSV or JSONL (.jsonl), upserting by id.
    ///
    /// Every field is validated; a bad row is reported with its line and field
    /// and the good rows are still imported. An import never lifts an opt-out
    /// that herald recorded (unsubscribe, SMS reply, operator): such rows are
    /// reported as conflicts. Exit status: 0 all rows imported, 2 some rows
    /// rejected (the rest imported), 1 failure.
    Clients {
        /// The file: CSV with a header row, or JSON lines (.jsonl)
        file: PathBuf,
        /// Abort on any bad row, writing nothing
        #[arg(long)]
        strict: bool,
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
    },
    /// Import event history (JSON lines) from a previous system.
    ///
    /// One object per line with client, time, type and optionally channel,
    /// campaign, campaign_kind and details. Events already stored are skipped,
    /// so the same file can be imported twice. Exit status as for clients.
    Events {
        /// The JSON-lines file
        file: PathBuf,
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: ImportCommand, store: &dyn Store, config: &Config) -> Result<ExitCode> {
    let time = config.firm_time();
    match cmd {
        ImportCommand::Clients { file, strict, json } => {
            let opts = ClientImportOptions {
                strict,
                quiet: json,
            };
            let summary = import_clients(store, &file, opts, &time).await?;
            if json {
                print_json(&summary)?;
            } else {
                print_client_summary(&summary);
            }
            if !summary.committed {
                anyhow::bail!(
                    "{}: {} bad row(s) with --strict; nothing was written",
                    summary.file,
                    summary.rejected
                );
            }
            Ok(exit_for(summary.rejected))
        }
        ImportCommand::Events { file, json } => {
            let summary = import_events(store, &file, json, &time).await?;
            if json {
                print_json(&summary)?;
            } else {
                say!(
                    "{}: {} events imported, {} already stored, {} rejected ({:.1} s)",
                    summary.file,
                    thousands(summary.imported),
                    thousands(summary.duplicates),
                    thousands(summary.rejected),
                    summary.elapsed_ms as f64 / 1000.0
                );
                print_rejections(&summary.rejections);
            }
            Ok(exit_for(summary.rejected))
        }
    }
}

fn exit_for(rejected: u64) -> ExitCode {
    if rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(SOME_ROWS_REJECTED)
    }
}

pub fn print_client_summary(s: &ClientImportSummary) {
    say!(
        "{}: {} imported, {} updated, {} unchanged, {} rejected, {} conflicts ({:.1} s)",
        s.file,
        thousands(s.imported),
        thousands(s.updated),
        thousands(s.unchanged),
        thousands(s.rejected),
        thousands(s.conflicts),
        s.elapsed_ms as f64 / 1000.0
    );
    print_rejections(&s.rejections);
    for c in &s.conflict_details {
        say!(
            "  line {}: client {}: {} was refused through herald; the file's consent was not applied",
            c.line, c.id, c.consent
        );
    }
    if s.conflicts > s.conflict_details.len() as u64 {
        say!(
            "  ... and {} more conflicts",
            s.conflicts - s.conflict_details.len() as u64
        );
    }
}

fn print_rejections(r: &Rejections) {
    for detail in &r.details {
        say!("  {detail}");
    }
    if r.details_omitted > 0 {
        say!("  ... and {} more bad fields", r.details_omitted);
    }
}
