//! `herald bench`: measurements of herald's own hot paths, run from the
//! project folder against its shipped files.

use std::io::Write as _;
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
use crate::client::Client;
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
    /// Evaluate a segment rule over every client several times, from the
    /// population in memory, and report the pure evaluation rate
    Eval {
        /// The rule: a name under rules/ (e.g. bulletin_audience) or a path
        rule: String,
        /// A context value the rule reads as ctx.KEY (repeatable), e.g. --context stock=600519
        #[arg(long = "context", value_name = "KEY=VALUE", value_parser = super::segment::parse_context)]
        context: Vec<(String, String)>,
        /// Evaluate as if today were this date (YYYY-MM-DD)
        #[arg(long, value_name = "DATE", value_parser = super::segment::parse_date)]
        as_of: Option<chrono::NaiveDate>,
        /// How many times to evaluate
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Print the figures as JSON
        #[arg(long)]
        json: bool,
    },
    /// Plan a run of a campaign against the database (segment, every gate,
    /// deliveries and suppressions written), and, as the reference, insert
    /// the same number of delivery rows with one prepared statement in one
    /// transaction
    Plan {
        /// The campaign to plan (a new run key each time)
        #[arg(long, default_value = "daily_bulletin")]
        campaign: String,
        #[arg(long)]
        json: bool,
    },
    /// Render and send messages through a channel adapter to a local server
    Send {
        /// email: through the SMTP adapter to --smtp; sms: through the HTTP
        /// gateway adapter to a gateway herald starts on loopback
        #[arg(long, value_enum)]
        channel: super::campaigns::ChannelArg,
        /// The SMTP server (e.g. smtp-sink) as HOST:PORT
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:2525")]
        smtp: String,
        /// How many messages
        #[arg(long, default_value_t = 50_000)]
        messages: u64,
        /// Messages in flight at once (and SMTP connections kept open)
        #[arg(long, default_value_t = 8)]
        concurrency: u32,
        /// The campaign whose messages to send
        #[arg(long, default_value = "daily_bulletin")]
        campaign: String,
        /// Print the figures as JSON
        #[arg(long)]
        json: bool,
    },
    /// Print a signed link path (the open pixel unless --action says
    /// otherwise) for every sent delivery of a run, one per line, for an
    /// HTTP load generator
    Links {
        /// The run
        #[arg(long)]
        run: i64,
        /// Which link: open, rsvp_yes, rsvp_no, unsubscribe or view
        #[arg(long, default_value = "open")]
        action: String,
        /// Put the delivery's client id and a tab before each path
        #[arg(long)]
        clients: bool,
    },
    /// The reference for the tracking benchmark: a bare HTTP server that
    /// answers every request with the pixel, verifying and storing nothing
    PixelReference {
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Debug, Serialize)]
struct PlanFigures {
    campaign: String,
    backend: String,
    clients: u64,
    selected: usize,
    planned: usize,
    suppressed: usize,
    plan_seconds: f64,
    reference_seconds: f64,
    ratio: f64,
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
        BenchCommand::Plan { campaign, json } => {
            let store = super::open_store(config).await?;
            let result = plan(&campaign, json, &*store, config).await;
            store.close().await;
            result
        }
        BenchCommand::Eval {
            rule,
            context,
            as_of,
            rounds,
            json,
        } => {
            let args = super::segment::SegmentArgs {
                rule,
                context,
                as_of,
                sample: 0,
                json,
            };
            super::segment::eval_bench(args, rounds, config).await
        }
        BenchCommand::Render {
            campaign,
            clients,
            json,
        } => render(&campaign, clients, json, config).await,
        BenchCommand::Send {
            channel,
            smtp,
            messages,
            concurrency,
            campaign,
            json,
        } => {
            let target = Target {
                channel: channel.into(),
                smtp,
                concurrency,
            };
            send(&campaign, messages, &target, json, config).await
        }
        BenchCommand::Links {
            run,
            action,
            clients,
        } => {
            let action = link_action(&action)?;
            let store = super::open_store(config).await?;
            let result = links(run, action, clients, &*store, config).await;
            store.close().await;
            result
        }
        BenchCommand::PixelReference { listen } => pixel_reference(listen).await,
    }
}

fn link_action(name: &str) -> Result<crate::tracking::token::Action> {
    use crate::tracking::token::Action;
    Ok(match name {
        "open" => Action::Open,
        "rsvp_yes" => Action::RsvpYes,
        "rsvp_no" => Action::RsvpNo,
        "unsubscribe" => Action::Unsubscribe,
        "view" => Action::ViewOnline,
        other => anyhow::bail!(
            "--action {other}: not a link (open, rsvp_yes, rsvp_no, unsubscribe, view)"
        ),
    })
}

async fn links(
    run: i64,
    action: crate::tracking::token::Action,
    clients: bool,
    store: &dyn crate::store::Store,
    config: &Config,
) -> Result<ExitCode> {
    use crate::tracking::links::Links;
    let tracking = config
        .tracking
        .as_ref()
        .context("[tracking] base_url and secret are needed to sign links")?;
    let links = Links::new(&tracking.base_url, tracking.secret.clone());
    let base = tracking.base_url.as_str().trim_end_matches('/');
    let sent = store
        .deliveries_in(run, crate::store::runs::DeliveryState::Sent, u32::MAX)
        .await?;
    anyhow::ensure!(!sent.is_empty(), "run {run} has no sent deliveries");
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for d in sent {
        let url = links.action(d.id, action);
        if clients {
            write!(out, "{}\t", d.client_id)?;
        }
        writeln!(out, "{}", url.strip_prefix(base).unwrap_or(&url))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn pixel_reference(listen: std::net::SocketAddr) -> Result<ExitCode> {
    use axum::http::header;
    let app = axum::Router::new().fallback(|| async {
        (
            [(header::CONTENT_TYPE, "image/gif")],
            crate::tracking::server::PIXEL,
        )
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::run::process::stopping())
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// The campaign ready to render, and generated clients.
async fn prepare(name: &str, count: u64, config: &Config) -> Result<(Prepared, Vec<Client>)> {
    let mut config = config.clone();
    if config.tracking.is_none() {
        // Links must be signed to render; a throwaway key costs the same.
        config.tracking = Some(Tracking {
            base_url: url::Url::parse("https://t.example.com")?,
            secret: Secret::new(b"herald-bench-key-not-for-sending")?,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            previous: None,
            scanner_window_secs: 5,
            opt_out_words: Vec::new(),
            rsvp_yes_words: Vec::new(),
            rsvp_no_words: Vec::new(),
            twilio_auth_token: None,
            soft_bounce_limit: 3,
            generic_sms: None,
            inbound_token: None,
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
    Ok((prepared, clients))
}

async fn render(name: &str, count: u64, json: bool, config: &Config) -> Result<ExitCode> {
    let (prepared, clients) = prepare(name, count, config).await?;
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
        say!(
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

async fn plan(
    campaign: &str,
    json: bool,
    store: &dyn crate::store::Store,
    config: &Config,
) -> Result<ExitCode> {
    use crate::run::plan::{plan, PlanOptions};
    use crate::store::runs::NewDelivery;
    let now = chrono::Utc::now();
    let opts = PlanOptions {
        scheduled_at: None,
        key: Some(format!("bench-{}", now.timestamp_millis())),
        by: Some("bench".into()),
        dry_run: false,
        now,
        today: None,
    };
    let clients = store.count_clients().await?;
    let started = Instant::now();
    let report = plan(store, config, campaign, &opts).await?;
    let plan_seconds = started.elapsed().as_secs_f64();
    let rows: Vec<NewDelivery> = (0..report.planned)
        .map(|i| NewDelivery {
            client_id: format!("{:010}", i + 1),
            channel: crate::channel::Channel::Email,
            address: format!("client{i}@example.com"),
            fallback: vec![crate::channel::Channel::Sms],
            not_before: now,
            decision: r#"{"channel":"email","consent":{"email":true,"personalised_marketing":true,"sms":true},"investor_type":"ordinary","lowest_risk_category":false,"product_risk":null,"risk_assessed_on":"2025-01-20","risk_level":"C3"}"#.into(),
        })
        .collect();
    let started = Instant::now();
    store.insert_reference_rows(&rows).await?;
    let reference_seconds = started.elapsed().as_secs_f64();
    let figures = PlanFigures {
        campaign: report.run.campaign.clone(),
        backend: format!("{:?}", store.backend()).to_lowercase(),
        clients,
        selected: report.audience,
        planned: report.planned,
        suppressed: report.suppressed.values().sum(),
        plan_seconds,
        reference_seconds,
        ratio: plan_seconds / reference_seconds.max(1e-9),
    };
    if json {
        print_json(&figures)?;
    } else {
        say!(
            "planned {} on {} ({} clients): {} selected, {} deliveries, {} suppressed in {:.2} s; \
             reference insert of {} rows {:.2} s; ratio {:.2}",
            figures.campaign,
            figures.backend,
            figures.clients,
            figures.selected,
            figures.planned,
            figures.suppressed,
            figures.plan_seconds,
            figures.planned,
            figures.reference_seconds,
            figures.ratio
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `herald bench send` sends.
struct Target {
    channel: crate::channel::Channel,
    smtp: String,
    concurrency: u32,
}

#[derive(Debug, Serialize)]
struct SendFigures {
    channel: crate::channel::Channel,
    messages: u64,
    failed: u64,
    concurrency: u32,
    seconds: f64,
    messages_per_second: f64,
    average_bytes: u64,
}

/// Renders and sends `count` messages through one adapter, as many at once
/// as `concurrency` allows, with no limit on the rate.
async fn send(
    name: &str,
    count: u64,
    target: &Target,
    json: bool,
    config: &Config,
) -> Result<ExitCode> {
    use crate::channel::limits::{Governed, Limits};
    use crate::channel::Channel;
    use futures::StreamExt;
    use std::sync::Arc;
    // A few more clients than messages: some have no address for the channel.
    let (prepared, clients) = prepare(name, count + count / 2 + 10, config).await?;
    let reachable: Vec<&Client> = clients
        .iter()
        .filter(|c| match target.channel {
            Channel::Email => c.email.is_some(),
            Channel::Sms => c.phone.is_some(),
        })
        .take(count as usize)
        .collect();
    let (adapter, _gateway) = bench_adapter(target, config).await?;
    let limits = Limits {
        rate_per_second: u32::MAX,
        concurrency: target.concurrency,
        max_attempts: 1,
        ..Limits::default()
    };
    let governed = Arc::new(Governed::new(adapter, limits));
    let prepared = Arc::new(prepared);
    let bytes = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // Each message is its own task, so rendering and encoding spread over
    // every core while others wait on the server.
    let mut tasks = futures::stream::iter(reachable.iter().enumerate())
        .map(|(i, client)| {
            let (governed, prepared) = (governed.clone(), prepared.clone());
            let (bytes, failed) = (bytes.clone(), failed.clone());
            let client = (*client).clone();
            let channel = target.channel;
            tokio::spawn(async move {
                let Ok(outgoing) = bench_message(&prepared, &client, i as i64 + 1, channel) else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                bytes.fetch_add(message_bytes(&outgoing), Ordering::Relaxed);
                if let Err(e) = governed.attempt(&outgoing).await {
                    if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("first failure: {e}");
                    }
                }
            })
        })
        .buffer_unordered(target.concurrency as usize);
    while let Some(done) = tasks.next().await {
        done?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let sent = reachable.len() as u64;
    let figures = SendFigures {
        channel: target.channel,
        messages: sent,
        failed: failed.load(Ordering::Relaxed),
        concurrency: target.concurrency,
        seconds,
        messages_per_second: sent as f64 / seconds,
        average_bytes: bytes.load(Ordering::Relaxed) / sent.max(1),
    };
    if json {
        print_json(&figures)?;
    } else {
        say!(
            "sent {} {} messages ({} failed) in {:.2} s with {} in flight: {:.0} messages/s, {} bytes on average",
            figures.messages,
            figures.channel,
            figures.failed,
            figures.seconds,
            figures.concurrency,
            figures.messages_per_second,
            figures.average_bytes
        );
    }
    Ok(if figures.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn bench_message(
    prepared: &Prepared,
    client: &Client,
    delivery: i64,
    channel: crate::channel::Channel,
) -> Result<crate::channel::Outgoing> {
    use crate::channel::{EmailMessage, Message, Outgoing, Unsubscribe};
    let message = prepared.with_context(|ctx| -> Result<Message> {
        Ok(match channel {
            crate::channel::Channel::Email => {
                let email = prepared.email(ctx, client, delivery)?;
                Message::Email(EmailMessage {
                    to: client.email.clone().context("no email")?,
                    to_name: client.name.clone(),
                    subject: email.subject,
                    text: email.text,
                    html: email.html,
                    attachments: Vec::new(),
                    unsubscribe: Some(Unsubscribe {
                        url: format!("https://t.example.com/u/{delivery}"),
                        mailto: None,
                    }),
                })
            }
            crate::channel::Channel::Sms => {
                Message::Sms(prepared.sms_message(ctx, client, delivery)?)
            }
        })
    })?;
    Ok(Outgoing {
        delivery,
        campaign: prepared.campaign.name.clone(),
        message,
    })
}

fn message_bytes(out: &crate::channel::Outgoing) -> u64 {
    match &out.message {
        crate::channel::Message::Email(e) => (e.subject.len() + e.text.len() + e.html.len()) as u64,
        crate::channel::Message::Sms(crate::channel::SmsMessage::Text { text, .. }) => {
            text.len() as u64
        }
        crate::channel::Message::Sms(_) => 0,
    }
}

/// The adapter under test, and for SMS the local gateway it sends to.
async fn bench_adapter(
    target: &Target,
    config: &Config,
) -> Result<(
    std::sync::Arc<dyn crate::channel::Adapter>,
    Option<tokio::task::JoinHandle<()>>,
)> {
    use crate::channel::email::smtp::{SmtpAdapter, SmtpSettings, TlsMode};
    use crate::channel::sms::generic::{GenericAdapter, GenericSettings};
    match target.channel {
        crate::channel::Channel::Email => {
            let (host, port) = target
                .smtp
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .with_context(|| format!("--smtp {}: not HOST:PORT", target.smtp))?;
            let settings = SmtpSettings {
                host,
                port,
                tls: TlsMode::None,
                credentials: None,
                pool_size: target.concurrency,
                timeout: std::time::Duration::from_secs(30),
            };
            let sender =
                crate::channel::providers::email_sender(config).map_err(|m| anyhow::anyhow!(m))?;
            let adapter =
                SmtpAdapter::new("bench", &settings, sender).map_err(|m| anyhow::anyhow!(m))?;
            Ok((std::sync::Arc::new(adapter), None))
        }
        crate::channel::Channel::Sms => {
            let (url, server) = local_gateway().await?;
            let settings: GenericSettings = toml::from_str(&format!(
                "url = \"{url}\"\nbody = \"json\"\n\
                 [fields]\nmobile = \"{{{{to_national}}}}\"\ncontent = \"{{{{text}}}}\"\nmsgid = \"{{{{delivery}}}}\"\n\
                 [response]\nsuccess_path = \"code\"\nsuccess_value = \"0\"\nid_path = \"msgid\"\n"
            ))?;
            let adapter =
                GenericAdapter::new("bench", &settings).map_err(|m| anyhow::anyhow!(m))?;
            Ok((std::sync::Arc::new(adapter), Some(server)))
        }
    }
}

/// A gateway on loopback that accepts every SMS, as a real HTTP server.
async fn local_gateway() -> Result<(String, tokio::task::JoinHandle<()>)> {
    use axum::{routing::post, Json, Router};
    let app = Router::new().route(
        "/sms",
        post(|Json(body): Json<serde_json::Value>| async move {
            Json(serde_json::json!({"code": "0", "msgid": body["msgid"]}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/sms", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, server))
}
