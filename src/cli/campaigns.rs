//! `herald campaigns validate` and `herald preview`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use chrono::NaiveDate;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::{print_json, problems_error};
use crate::campaign::file::{self as campaign_file, Campaign};
use crate::campaign::validate::{self, Report};
use crate::campaign::{Prepared, Purpose};
use crate::channel::Channel;
use crate::client::consent::ConsentScope;
use crate::client::types::ClientId;
use crate::client::Client;
use crate::config::Config;
use crate::message::render::{Email, Sms};
use crate::message::sms::SmsMeasure;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// Check campaign files, their rules, content and templates before anything is sent
    Validate {
        /// One campaign: a name under campaigns/ or a path [default: every campaign]
        campaign: Option<String>,
        /// Check as if today were this date (YYYY-MM-DD)
        #[arg(long, value_name = "DATE", value_parser = super::segment::parse_date)]
        as_of: Option<NaiveDate>,
        /// Print the findings as JSON
        #[arg(long)]
        json: bool,
    },
}

/// The channel to preview.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ChannelArg {
    Email,
    Sms,
}

impl From<ChannelArg> for Channel {
    fn from(c: ChannelArg) -> Channel {
        match c {
            ChannelArg::Email => Channel::Email,
            ChannelArg::Sms => Channel::Sms,
        }
    }
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The campaign: a name under campaigns/ or a path
    pub campaign: String,
    /// The client to render for
    #[arg(long, value_name = "ID")]
    pub client: String,
    /// The channel [default: the campaign's first channel the client can be reached on]
    #[arg(long, value_enum)]
    pub channel: Option<ChannelArg>,
    /// Where to write the HTML [default: .herald-cache/preview/CAMPAIGN-CLIENT.html]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Open the HTML in a browser
    #[arg(long)]
    pub open: bool,
    /// Render as if today were this date (YYYY-MM-DD)
    #[arg(long, value_name = "DATE", value_parser = super::segment::parse_date)]
    pub as_of: Option<NaiveDate>,
    /// Print the message as JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: CampaignsCommand, config: &Config) -> Result<ExitCode> {
    match cmd {
        CampaignsCommand::Validate {
            campaign,
            as_of,
            json,
        } => validate_all(campaign.as_deref(), as_of, json, config).await,
    }
}

async fn validate_all(
    campaign: Option<&str>,
    as_of: Option<NaiveDate>,
    json: bool,
    config: &Config,
) -> Result<ExitCode> {
    let dir = config.base_dir.join("campaigns");
    let files = match campaign {
        Some(c) => vec![campaign_file::resolve(c, &dir)],
        None => campaign_file::list(&dir)
            .with_context(|| format!("cannot list campaigns in {}", dir.display()))?,
    };
    if files.is_empty() {
        bail!("{} holds no campaign files (*.toml)", dir.display());
    }
    let today = as_of.unwrap_or_else(|| config.firm_time().today());
    let providers = crate::channel::providers::Providers::from_config(config);
    let mut reports = Vec::new();
    for file in &files {
        reports.push(validate::validate(file, config, &providers, today).await);
    }
    let errors: usize = reports.iter().map(Report::errors).sum();
    if json {
        print_json(&reports)?;
    } else {
        print_reports(&reports);
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_reports(reports: &[Report]) {
    for r in reports {
        let warnings = r.problems.len() - r.errors();
        let verdict = match (r.errors(), warnings) {
            (0, 0) => "ok".to_owned(),
            (0, w) => format!("ok, {w} warning(s)"),
            (e, _) => format!("{e} error(s)"),
        };
        say!("{}: {verdict}", r.campaign);
        for p in &r.problems {
            say!("  {p}");
        }
    }
    let errors: usize = reports.iter().map(Report::errors).sum();
    say!("{} campaign(s) checked, {errors} error(s)", reports.len());
}

/// What a preview shows, for people and for `--json`.
#[derive(Debug, Serialize)]
struct Preview {
    campaign: String,
    client: String,
    channel: Channel,
    to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<Email>,
    #[serde(skip_serializing_if = "Option::is_none")]
    html_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sms: Option<Sms>,
    /// Why this client would not receive it on this channel, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_sent: Option<String>,
}

/// Renders one client's message exactly as it would be sent; sends nothing.
/// The audience rule is not evaluated here (`herald segment` shows who it
/// selects); consent is, and a message the client would not get says so.
pub async fn preview(args: PreviewArgs, store: &dyn Store, config: &Config) -> Result<ExitCode> {
    let today = args.as_of.unwrap_or_else(|| config.firm_time().today());
    let path = campaign_file::resolve(&args.campaign, &config.base_dir.join("campaigns"));
    let campaign = Campaign::load(&path).map_err(problems_error)?;
    let prepared = Prepared::new(campaign, config, today)
        .await
        .map_err(problems_error)?;
    let id = ClientId::parse(&args.client).map_err(|e| anyhow::anyhow!("--client: {}", e.0))?;
    let stored = store
        .client(&id)
        .await?
        .with_context(|| format!("there is no client {id}"))?;
    let client = &stored.client;
    let consented = |c: Channel| {
        prepared.campaign.purpose == Purpose::Service
            || stored.consent(ConsentScope::from(c)).granted
    };
    let channel = pick_channel(
        &prepared.campaign,
        client,
        args.channel.map(Channel::from),
        &consented,
    )?;
    let not_sent = (!consented(channel)).then(|| {
        let state = stored.consent(ConsentScope::from(channel));
        format!(
            "would not be sent: no consent for {channel} marketing ({} {})",
            state.source,
            state.at.format("%Y-%m-%d")
        )
    });
    let mut ctx = prepared.context();
    // Delivery 0: links are signed like real ones but lead to no delivery.
    let preview = match channel {
        Channel::Email => {
            let email = prepared.email(&mut ctx, client, 0)?;
            let file = args.out.clone().unwrap_or_else(|| {
                config
                    .cache_dir()
                    .join("preview")
                    .join(format!("{}-{}.html", prepared.campaign.name, id))
            });
            write_html(&file, &email.html)?;
            Preview {
                campaign: prepared.campaign.name.clone(),
                client: id.to_string(),
                channel,
                to: address(client, channel),
                email: Some(email),
                html_file: Some(file),
                sms: None,
                not_sent,
            }
        }
        Channel::Sms => Preview {
            campaign: prepared.campaign.name.clone(),
            client: id.to_string(),
            channel,
            to: address(client, channel),
            email: None,
            html_file: None,
            sms: Some(prepared.sms(&mut ctx, client, 0)?),
            not_sent,
        },
    };
    if args.json {
        print_json(&preview)?;
    } else {
        print_preview(&preview, &prepared);
    }
    if let (true, Some(file)) = (args.open, &preview.html_file) {
        opener::open(file)
            .with_context(|| format!("cannot open {} in a browser", file.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The campaign's first channel the client can be reached on and, for
/// marketing, has consented to; failing consent, the first reachable one
/// (shown with why it would not be sent).
fn pick_channel(
    campaign: &Campaign,
    client: &Client,
    wanted: Option<Channel>,
    consented: &dyn Fn(Channel) -> bool,
) -> Result<Channel> {
    let reachable = |c: Channel| match c {
        Channel::Email => client.email.is_some(),
        Channel::Sms => client.phone.is_some(),
    };
    match wanted {
        Some(c) if !campaign.channels.contains(&c) => {
            bail!("campaign {} does not send by {c}", campaign.name)
        }
        Some(c) if !reachable(c) => bail!("client {} has no {} address", client.id, c),
        Some(c) => Ok(c),
        None => {
            let mut usable = campaign.channels.iter().copied().filter(|c| reachable(*c));
            let first = usable.clone().next();
            usable.find(|c| consented(*c)).or(first).with_context(|| {
                format!(
                    "client {} has no address for any of the campaign's channels",
                    client.id
                )
            })
        }
    }
}

fn address(client: &Client, channel: Channel) -> String {
    match channel {
        Channel::Email => client.email.as_ref().map_or(String::new(), |e| {
            format!("{} <{}>", client.name, e.as_str())
        }),
        Channel::Sms => client
            .phone
            .as_ref()
            .map_or(String::new(), |m| m.as_str().to_owned()),
    }
}

fn write_html(file: &Path, html: &str) -> Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(file, html).with_context(|| format!("cannot write {}", file.display()))
}

fn print_preview(p: &Preview, prepared: &Prepared) {
    let c = &prepared.campaign;
    say!(
        "campaign {} ({}, {}) · client {} · {}",
        c.name,
        c.kind,
        c.purpose.as_str(),
        p.client,
        p.channel
    );
    if let Some(note) = &p.not_sent {
        say!("NOTE: {note}");
    }
    say!("To: {}", p.to);
    if let Some(email) = &p.email {
        say!("Subject: {}", email.subject);
        say!();
        say!("{}", email.text.trim_end_matches('\n'));
        if let Some(file) = &p.html_file {
            say!();
            say!("HTML ({} bytes): {}", email.html.len(), file.display());
        }
    }
    if let Some(sms) = &p.sms {
        say!("{}", describe_sms(&sms.measure));
        if sms.measure.segments > c.sms_max_segments {
            say!(
                "NOTE: over the campaign's cap of {} segment(s): `herald campaigns validate` refuses it; shorten sms.hbs or raise sms_max_segments",
                c.sms_max_segments
            );
        }
        say!();
        say!("{}", sms.text);
    }
}

fn describe_sms(m: &SmsMeasure) -> String {
    let encoding = match m.encoding {
        crate::message::sms::SmsEncoding::Domestic => "domestic gateway, every character counts 1",
        crate::message::sms::SmsEncoding::Gsm7 => "GSM-7",
        crate::message::sms::SmsEncoding::Ucs2 => "UCS-2",
    };
    format!(
        "SMS: {} characters, {} billed units, {} segment(s) ({encoding})",
        m.chars, m.units, m.segments
    )
}
