//! `herald seminars`: checking seminar files before a drive starts.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::config::Config;
use crate::seminar::{self, Seminar};

#[derive(Debug, Subcommand)]
pub enum SeminarsCommand {
    /// Check seminar files (seminars/*.toml): times, venue, capacity, waves and their rules
    Validate {
        /// One seminar (a name under seminars/, or a path) [default: all]
        seminar: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: SeminarsCommand, config: &Config) -> Result<ExitCode> {
    let SeminarsCommand::Validate { seminar, json } = cmd;
    let dir = config.base_dir.join("seminars");
    let paths = match seminar {
        Some(name) => vec![crate::config::resolve_named(&name, &dir, "toml")],
        None => seminar::list(&dir).unwrap_or_default(),
    };
    let rules = config.base_dir.join("rules");
    let mut errors = 0;
    let mut out = Vec::new();
    for path in &paths {
        match Seminar::load(path, &rules) {
            Ok(s) => {
                if !json {
                    println!(
                        "{}: ok — {} seats, {} wave(s), RSVP by {}",
                        s.name,
                        s.capacity,
                        s.waves.len(),
                        s.rsvp_deadline
                            .with_timezone(&s.timezone)
                            .format("%Y-%m-%d %H:%M")
                    );
                }
                out.push(serde_json::json!({ "seminar": s.name, "ok": true }));
            }
            Err(problems) => {
                errors += problems.len();
                for p in &problems {
                    if !json {
                        println!("  {p}");
                    }
                }
                out.push(serde_json::json!({ "file": path, "ok": false, "problems": problems }));
            }
        }
    }
    if json {
        super::print_json(&out)?;
    } else {
        println!("{} seminar file(s) checked, {errors} error(s)", paths.len());
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
