//! `herald report`: what a campaign or run achieved, for marketing staff.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::print_json;
use crate::report::{self, Funnel, Report};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A campaign (all its runs) or a run id
    #[arg(value_name = "CAMPAIGN|RUN")]
    what: String,
    #[arg(long)]
    json: bool,
    /// Also write the report as one self-contained HTML file
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

pub async fn report(args: ReportArgs, store: &dyn Store) -> Result<ExitCode> {
    let r = report::report(store, &args.what).await?;
    if let Some(path) = &args.html {
        std::fs::write(path, report::html::render(&r))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        print_json(&r)?;
    } else {
        print_report(&r);
        if let Some(path) = &args.html {
            say!("HTML report: {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Rows shown per breakdown, the largest first.
const TOP: usize = 15;

const COLUMNS: [&str; 6] = [
    "delivered",
    "bounced",
    "opened",
    "clicked",
    "replied",
    "unsubscribed",
];

fn print_report(r: &Report) {
    say!("{} — {} run(s)", r.campaign, r.runs.len());
    say!("audience {}", r.audience);
    for (gate, n) in &r.suppressed {
        say!("  suppressed: {gate:<28} {n}");
    }
    say!();
    say!("{:<24} {:>8} {:>8}{}", "", "planned", "sent", header());
    line("total", &r.funnel);
    for (title, rows) in [
        ("channel", &r.by_channel),
        ("branch", &r.by_branch),
        ("advisor", &r.by_advisor),
    ] {
        say!("by {title}:");
        let mut rows: Vec<_> = rows.iter().collect();
        rows.sort_by(|a, b| b.1.sent.cmp(&a.1.sent).then(a.0.cmp(b.0)));
        for (name, f) in rows.iter().take(TOP) {
            line(&format!("  {name}"), f);
        }
        if rows.len() > TOP {
            say!(
                "  … {} more (--json or --html has them all)",
                rows.len() - TOP
            );
        }
    }
    let flagged: u64 = r.flagged.values().sum();
    if flagged > 0 {
        say!("{flagged} opens/clicks flagged as mail scanners' are not counted");
    }
}

fn header() -> String {
    COLUMNS.iter().map(|c| format!(" {c:>14}")).collect()
}

fn line(name: &str, f: &Funnel) {
    let cells: String = COLUMNS
        .iter()
        .map(|c| {
            let rate = f.rates.get(*c).copied().unwrap_or(0.0) * 100.0;
            format!(" {:>6} {rate:>5.1}%", f.response(c))
        })
        .collect();
    say!("{name:<24} {:>8} {:>8}{cells}", f.planned, f.sent);
}
