//! `herald channels test`: one message through each configured provider,
//! and what the provider said.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;
use serde::Serialize;

use super::print_json;
use crate::channel::limits::Governed;
use crate::channel::providers::Providers;
use crate::channel::{Channel, EmailMessage, Failure, Message, Outgoing, SmsMessage};
use crate::client::types::{Email, Mobile};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Send one test message through each configured provider and show what it answered
    Test {
        /// Where to send: an email address and/or a mobile number (repeatable)
        #[arg(long, value_name = "ADDRESS")]
        to: Vec<String>,
        /// For providers that send approved templates only: the template code to use
        #[arg(long, value_name = "CODE")]
        sms_template: Option<String>,
        /// Print the results as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Serialize)]
struct TestResult {
    provider: String,
    channel: Channel,
    to: String,
    outcome: String,
    ok: bool,
    attempts: u32,
}

pub async fn run(cmd: ChannelsCommand, config: &Config) -> Result<ExitCode> {
    let ChannelsCommand::Test {
        to,
        sms_template,
        json,
    } = cmd;
    let (email, phone) = addresses(&to)?;
    let providers =
        Providers::from_config(config).map_err(|m| anyhow::anyhow!("{}: {m}", config.source))?;
    let mut results = Vec::new();
    for governed in providers.all() {
        let channel = governed.adapter().channel();
        let message = match channel {
            Channel::Email => email.as_ref().map(|to| test_email(to, config)),
            Channel::Sms => phone
                .as_ref()
                .map(|to| test_sms(to, config, sms_template.as_deref())),
        };
        let Some(message) = message else {
            results.push(skipped(governed, channel));
            continue;
        };
        results.push(send(governed, channel, message).await);
    }
    let failed = results.iter().any(|r| !r.ok && r.attempts > 0);
    if json {
        print_json(&results)?;
    } else {
        for r in &results {
            say!(
                "{:<12} {:<5} {:<28} {}",
                r.provider,
                r.channel.as_str(),
                r.to,
                r.outcome
            );
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn addresses(to: &[String]) -> Result<(Option<Email>, Option<Mobile>)> {
    let (mut email, mut phone) = (None, None);
    for t in to {
        if t.contains('@') {
            email = Some(Email::parse(t).map_err(|e| anyhow::anyhow!("--to {t}: {}", e.0))?);
        } else {
            phone = Some(Mobile::parse(t).map_err(|e| {
                anyhow::anyhow!(
                    "--to {t}: neither an email address (no @) nor a mobile number: {}",
                    e.0
                )
            })?);
        }
    }
    if email.is_none() && phone.is_none() {
        bail!("give --to ADDRESS: an email address, a mobile number, or both");
    }
    Ok((email, phone))
}

fn test_email(to: &Email, config: &Config) -> Message {
    Message::Email(EmailMessage {
        to: to.clone(),
        to_name: String::new(),
        subject: format!("herald 测试邮件 / test message ({})", config.firm.short_name),
        text: "这是 herald 发送的测试邮件，无需回复。\nThis is a test message from herald.\n".into(),
        html: "<p>这是 herald 发送的测试邮件，无需回复。</p><p>This is a test message from herald.</p>".into(),
        attachments: Vec::new(),
        unsubscribe: None,
    })
}

fn test_sms(to: &Mobile, config: &Config, template: Option<&str>) -> Message {
    Message::Sms(match template {
        Some(code) => SmsMessage::Template {
            to: to.clone(),
            code: code.to_owned(),
            params: BTreeMap::new(),
        },
        None => SmsMessage::Text {
            to: to.clone(),
            text: format!("{}herald 测试短信，无需回复。", config.sms.signature),
        },
    })
}

async fn send(governed: &Governed, channel: Channel, message: Message) -> TestResult {
    let to = match &message {
        Message::Email(e) => e.to.masked(),
        Message::Sms(s) => s.to().masked(),
    };
    let outgoing = Outgoing {
        delivery: 0,
        campaign: "channels-test".into(),
        message,
    };
    let out = governed.send(&outgoing).await;
    let (ok, outcome) = match &out.result {
        Ok(a) => (true, format!("accepted, id {}", a.provider_id)),
        Err(e) => (
            false,
            match e.failure {
                Failure::Transient { .. } => format!("failed (transient): {}", e.message),
                Failure::Permanent { bad_address: true } => {
                    format!("refused, bad address: {}", e.message)
                }
                Failure::Permanent { .. } => format!("refused: {}", e.message),
            },
        ),
    };
    TestResult {
        provider: governed.adapter().name().to_owned(),
        channel,
        to,
        outcome,
        ok,
        attempts: out.attempts,
    }
}

fn skipped(governed: &Governed, channel: Channel) -> TestResult {
    TestResult {
        provider: governed.adapter().name().to_owned(),
        channel,
        to: String::new(),
        outcome: format!("skipped: no --to for {channel}"),
        ok: false,
        attempts: 0,
    }
}
