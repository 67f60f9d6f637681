//! `herald calendar`: what the exchange calendar says about a date, and the
//! next trading days, so that a schedule's days can be checked by eye.

use std::process::ExitCode;

use anyhow::Result;
use chrono::NaiveDate;
use clap::Subcommand;
use serde_json::json;

use crate::config::Config;
use crate::schedule::calendar::Day;

#[derive(Debug, Subcommand)]
pub enum CalendarCommand {
    /// Whether the exchanges trade on DATE (exit status 0 when they do, 1 when closed)
    Check {
        /// A local date, YYYY-MM-DD
        #[arg(value_parser = parse_date)]
        date: NaiveDate,
        #[arg(long)]
        json: bool,
    },
    /// The next N trading days
    Next {
        /// How many
        #[arg(value_parser = clap::value_parser!(u16).range(1..=1000))]
        n: u16,
        /// Start here (inclusive) [default: today in the firm's time zone]
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        from: Option<NaiveDate>,
        #[arg(long)]
        json: bool,
    },
}

fn parse_date(raw: &str) -> Result<NaiveDate, String> {
    crate::time::parse_date(raw).map_err(|e| e.0)
}

pub fn run(cmd: CalendarCommand, config: &Config) -> Result<ExitCode> {
    let calendar = config.calendar()?;
    match cmd {
        CalendarCommand::Check { date, json } => {
            let day = calendar.day(date)?;
            if json {
                say!("{}", serde_json::to_string_pretty(&day)?);
            } else {
                say!("{}", describe(&day));
            }
            Ok(if day.trading {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        CalendarCommand::Next { n, from, json } => {
            let from = from.unwrap_or_else(|| config.firm_time().today());
            let days = calendar.next_trading_days(from, n.into())?;
            if json {
                let out = json!({
                    "calendar": calendar.name,
                    "file": calendar.source,
                    "from": from,
                    "trading_days": days,
                });
                say!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                for d in days {
                    say!("{} {}", d, d.format("%a"));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn describe(day: &Day) -> String {
    let weekday = day.date.format("%a");
    match &day.closed_for {
        None => format!("{} {weekday}: trading day", day.date),
        Some(why) => format!("{} {weekday}: closed ({why})", day.date),
    }
}
