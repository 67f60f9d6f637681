//! The demo's seminar drive: the fund salon's one wave goes out by email;
//! eleven of the invited accept through their RSVP links for eight seats,
//! so three wait; a seated guest declines and the first waiting moves in;
//! the notices go out; three guests check in at the door with their codes;
//! and the seminar's report is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use super::responses::Server;
use crate::cli::runs::{send, SendArgs};
use crate::cli::seminars::{run_with_store, SeminarsCommand};
use crate::config::Config;
use crate::store::runs::DeliveryState;
use crate::store::Store;
use crate::tracking::token::Action;

const CAMPAIGN: &str = "fund_salon";
const SEMINAR: &str = "fund_salon";
/// Acceptances: more than the salon's eight seats.
const ACCEPTING: usize = 11;

/// What the drive did, for the demo's summary.
pub struct Drive {
    pub report: PathBuf,
    pub seated: usize,
    pub waitlisted: usize,
}

pub async fn drive(store: Arc<dyn Store>, config: &Config, dir: &Path) -> Result<Drive> {
    launch(&*store, config, "all").await?;
    let run = store
        .run_by_key(CAMPAIGN, "all")
        .await?
        .context("the salon's wave was planned")?;
    let sent = store
        .deliveries_in(run.id, DeliveryState::Sent, ACCEPTING as u32)
        .await?;
    if sent.len() < ACCEPTING {
        // A small demo database: fewer answers than seats, so no wait list.
        println!(
            "  only {} invited: too few to fill the room (try herald demo with more --clients)",
            sent.len()
        );
    }

    let server = Server::start(store.clone(), config).await?;
    let mut seated = Vec::new();
    for d in &sent {
        let told = answer(&server, d.id, Action::RsvpYes).await?;
        println!(
            "  POST /r/…  报名 / accept, client {} → {}",
            d.client_id, told.0
        );
        if told.1 == "seated" {
            seated.push(d.client_id.clone());
        }
    }
    if let Some(first) = sent.iter().find(|d| seated.contains(&d.client_id)) {
        let told = answer(&server, first.id, Action::RsvpNo).await?;
        println!(
            "  POST /r/…  不参加 / decline, client {} → {}（候补第 1 位转为正式 / the first waiting moves in）",
            first.client_id, told.0
        );
    }
    server.stop();

    for key in ["notice:confirmed", "notice:waitlisted", "notice:promoted"] {
        if store.run_by_key(CAMPAIGN, key).await?.is_some() {
            launch(&*store, config, key).await?;
        }
    }

    let secret = &config
        .tracking
        .as_ref()
        .context("the demo configuration has [tracking]")?
        .secret;
    let answers = store.answers(SEMINAR).await?;
    let holding: Vec<&str> = answers
        .iter()
        .filter(|a| a.position.is_some_and(|p| p <= 8))
        .map(|a| a.client_id.as_str())
        .collect();
    for client in holding.iter().take(3) {
        let code = crate::seminar::checkin::code(secret, SEMINAR, client);
        println!("\n$ herald seminar checkin {SEMINAR} --code {code}");
        run_with_store(
            SeminarsCommand::Checkin {
                seminar: SEMINAR.into(),
                client: None,
                code: Some(code),
                csv: None,
                json: false,
            },
            &*store,
            config,
        )
        .await?;
    }

    let report = dir.join("fund_salon-report.html");
    println!(
        "\n$ herald seminar report {SEMINAR} --html {}",
        report.display()
    );
    run_with_store(
        SeminarsCommand::Report {
            seminar: SEMINAR.into(),
            json: false,
            html: Some(report.clone()),
        },
        &*store,
        config,
    )
    .await?;
    Ok(Drive {
        report,
        seated: holding.len(),
        waitlisted: answers
            .iter()
            .filter(|a| a.position.is_some_and(|p| p > 8))
            .count(),
    })
}

/// `herald send fund_salon --key KEY`: a wave, or a notice run resumed to
/// send what is queued.
async fn launch(store: &dyn Store, config: &Config, key: &str) -> Result<()> {
    println!("\n$ herald send {CAMPAIGN} --key {key}");
    send(
        SendArgs {
            campaign: CAMPAIGN.into(),
            dry_run: false,
            key: Some(key.into()),
            by: Some("市场部张伟".into()),
            as_of: None,
            plan_only: false,
            json: false,
        },
        store,
        config,
    )
    .await?;
    Ok(())
}

/// Confirms an RSVP link's answer as the page's button does; what the page
/// said (in Chinese) and the status it marked.
async fn answer(server: &Server, delivery: i64, action: Action) -> Result<(String, String)> {
    let body = server
        .http
        .post(server.url(&server.links.action(delivery, action)))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let attr = |name: &str| -> Option<String> {
        let start = body.find(&format!("{name}=\""))? + name.len() + 2;
        Some(body[start..start + body[start..].find('"')?].to_owned())
    };
    let said = body
        .split_once(r#"id="answer""#)
        .and_then(|(_, rest)| rest.split_once('>'))
        .and_then(|(_, rest)| rest.split_once("</p>"))
        .map_or(String::new(), |(text, _)| text.to_owned());
    Ok((said, attr("data-status").unwrap_or_default()))
}
