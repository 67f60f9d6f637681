//! `herald bench`: measurements of herald's own hot paths, run from the
//! project folder against its shipped files.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use rayon::prelude::*;
use serde::Serialize;

use super::{print_json, problems_error};
use crate::campaign::file::{self as campaign_file, Campaign};
use crate::campaign::Prepared;
use crate::client::synthetic::{self, SyntheticOptions};
use crate::config::{Config, Tracking};
use crate::tracking::token::Secret;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Render complete emails (subject, HTML, text) for generated clients, in parallel
    Render {
        /// The campaign whose templates and content to render
        #[arg(long, default_value = "daily_bulletin")]
        campaign: String,
        /// How many clients
        #[arg(long, default_value_t = 100_000)]
        clients: u64,
        /// Print the figures as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Serialize)]
struct RenderFigures {
    campaign: String,
    clients: u64,
    threads: usize,
    seconds: f64,
    emails_per_second: f64,
    average_bytes: u64,
    average_html_bytes: u64,
}

pub async fn run(cmd: BenchCommand, config: &Config) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Render {
            campaign,
            clients,
            json,
        } => render(&campaign, clients, json, config).await,
    }
}

async fn render(name: &str, count: u64, json: bool, config: &Config) -> Result<ExitCode> {
    let mut config = config.clone();
    if config.tracking.is_none() {
        // Links must be signed to render; a throwaway key costs the same.
        config.tracking = Some(Tracking {
            base_url: url::Url::parse("https://t.example.com")?,
            secret: Secret::new(b"herald-bench-key-not-for-sending")?,
        });
    }
    let today = config.firm_time().today();
    let path = campaign_file::resolve(name, &config.base_dir.join("campaigns"));
    let campaign = Campaign::load(&path).map_err(problems_error)?;
    let prepared = Prepared::new(campaign, &config, today)
        .await
        .map_err(problems_error)?;
    eprintln!("generating {count} clients…");
    let clients = synthetic::clients(&SyntheticOptions {
        clients: count,
        seed: 20261125,
        history_days: 0,
        today,
    });
    let bytes = AtomicU64::new(0);
    let html_bytes = AtomicU64::new(0);
    let started = Instant::now();
    clients
        .par_iter()
        .enumerate()
        .try_for_each_init(
            || prepared.context(),
            |ctx, (i, client)| {
                let email = prepared.email(ctx, client, i as i64 + 1)?;
                let size = email.subject.len() + email.html.len() + email.text.len();
                bytes.fetch_add(size as u64, Ordering::Relaxed);
                html_bytes.fetch_add(email.html.len() as u64, Ordering::Relaxed);
                anyhow::Ok(())
            },
        )
        .context("rendering failed")?;
    let seconds = started.elapsed().as_secs_f64();
    let n = clients.len().max(1) as u64;
    let figures = RenderFigures {
        campaign: prepared.campaign.name.clone(),
        clients: clients.len() as u64,
        threads: rayon::current_num_threads(),
        seconds,
        emails_per_second: clients.len() as f64 / seconds,
        average_bytes: bytes.load(Ordering::Relaxed) / n,
        average_html_bytes: html_bytes.load(Ordering::Relaxed) / n,
    };
    if json {
        print_json(&figures)?;
    } else {
        println!(
            "rendered {} complete emails ({}) in {:.2} s on {} threads: {:.0} emails/s, {} bytes on average ({} of it HTML)",
            figures.clients,
            figures.campaign,
            figures.seconds,
            figures.threads,
            figures.emails_per_second,
            figures.average_bytes,
            figures.average_html_bytes
        );
    }
    Ok(ExitCode::SUCCESS)
}
