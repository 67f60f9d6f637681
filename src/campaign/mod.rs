//! Campaigns: the files staff write, their content, and a campaign made
//! ready to render (templates compiled, content loaded once).

pub mod content;
pub mod file;
pub mod gates;
pub mod restricted;
pub mod timing;
pub mod validate;

use chrono::NaiveDate;
use handlebars::Context;
use serde_json::{Map, Value};

use std::collections::BTreeMap;

use crate::channel::{Channel, EmailMessage, Message, Outgoing, SmsMessage, Unsubscribe};
use crate::client::Client;
use crate::config::Config;
use crate::diagnostic::Problem;
use crate::message::data::{self, keys, CampaignData};
use crate::message::render::{Dressing, Email, RenderFailure, Renderer, Sms};
use crate::message::template::{Part, TemplateSet};
use crate::tracking::links::Links;
pub use file::{Audience, Campaign, ContentSource, Kind, Purpose};

/// The template parts a channel needs.
pub fn parts_for(channel: Channel) -> &'static [Part] {
    match channel {
        Channel::Email => &Part::EMAIL,
        Channel::Sms => &[Part::Sms],
    }
}

/// A campaign with its templates compiled and its content loaded: what a
/// run renders every message from.
pub struct Prepared {
    pub campaign: Campaign,
    pub set: TemplateSet,
    pub content: Value,
    pub renderer: Renderer,
    /// The data every message shares; each message swaps its client in.
    run_data: Value,
    /// The SMS template parameters, compiled, when the campaign sends a
    /// provider's approved template.
    sms_params: Option<handlebars::Handlebars<'static>>,
    /// Data documents free for reuse: building one copies the run's content.
    contexts: std::sync::Mutex<Vec<Context>>,
    /// For the `List-Unsubscribe` targets of marketing email.
    links: Option<Links>,
    unsubscribe_mailto: Option<String>,
}

impl Prepared {
    /// Loads the templates and content of a parsed campaign.
    pub async fn new(
        campaign: Campaign,
        config: &Config,
        today: NaiveDate,
    ) -> Result<Prepared, Vec<Problem>> {
        let content = content::load(&campaign)
            .await
            .map_err(|e| vec![e.to_problem(&campaign.path)])?;
        Self::with_content(campaign, config, today, content)
    }

    /// Loads the templates of a campaign whose content is already known:
    /// a run renders every message from the snapshot taken when it was
    /// planned.
    pub fn with_content(
        campaign: Campaign,
        config: &Config,
        today: NaiveDate,
        content: Value,
    ) -> Result<Prepared, Vec<Problem>> {
        let set = TemplateSet::load(&config.base_dir.join("templates"), &campaign.templates)?;
        let needed: Vec<Part> = campaign
            .channels
            .iter()
            .flat_map(|c| parts_for(*c))
            .copied()
            .collect();
        let missing = set.missing(
            &needed,
            &format!(
                "campaign {} sends by {}",
                campaign.name,
                channel_list(&campaign.channels)
            ),
        );
        if !missing.is_empty() {
            return Err(missing);
        }
        let links = config
            .tracking
            .as_ref()
            .map(|t| Links::new(&t.base_url, t.secret.clone()));
        let dressing = Dressing {
            marketing: campaign.purpose == Purpose::Marketing,
            ad_marker: config.email_ad_marker.clone(),
            sms: config.sms.clone(),
        };
        let ctx: Map<String, Value> = campaign
            .context
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let run_data = data::run_data(
            &CampaignData {
                name: campaign.name.clone(),
                title: campaign.title.clone(),
                kind: campaign.kind.to_string(),
                purpose: campaign.purpose.as_str().to_owned(),
            },
            content_key(&campaign.kind),
            &content,
            &ctx,
            &config.firm,
            today,
        );
        let renderer = Renderer::new(&set, config.timezone, links.clone(), dressing, &run_data);
        let sms_params = campaign
            .sms_template
            .as_ref()
            .map(|t| compile_params(&campaign, t, config))
            .transpose()?;
        Ok(Prepared {
            campaign,
            set,
            content,
            renderer,
            run_data,
            sms_params,
            contexts: std::sync::Mutex::new(Vec::new()),
            links,
            unsubscribe_mailto: config.email_sender.unsubscribe_mailto.clone(),
        })
    }

    /// The SMS as the provider takes it: rendered text, or the campaign's
    /// approved template with its parameters rendered for this client.
    pub fn sms_message(
        &self,
        ctx: &mut Context,
        client: &Client,
        delivery: i64,
    ) -> Result<SmsMessage, RenderFailure> {
        let to = client.phone.clone().ok_or_else(|| RenderFailure {
            file: self.campaign.path.clone(),
            line: None,
            message: format!("client {} has no mobile number", client.id),
        })?;
        match (&self.campaign.sms_template, &self.sms_params) {
            (Some(t), Some(hb)) => {
                data::set_recipient(ctx.data_mut(), client, delivery);
                let mut params = BTreeMap::new();
                for name in t.params.keys() {
                    let value = hb
                        .render_with_context(name, ctx)
                        .map_err(|e| RenderFailure {
                            file: self.campaign.path.clone(),
                            line: None,
                            message: format!("sms_template.params.{name}: {}", e.reason()),
                        })?;
                    params.insert(name.clone(), value);
                }
                Ok(SmsMessage::Template {
                    to,
                    code: t.code.clone(),
                    params,
                })
            }
            _ => Ok(SmsMessage::Text {
                to,
                text: self.sms(ctx, client, delivery)?.text,
            }),
        }
    }

    /// The message for one client on `channel`, ready for an adapter:
    /// marketing email carries its `List-Unsubscribe` targets.
    /// `rsvp`: where a seminar notice's client stands, as they are told.
    pub fn outgoing(
        &self,
        client: &Client,
        delivery: i64,
        channel: Channel,
        rsvp: Option<&Value>,
    ) -> Result<Outgoing, RenderFailure> {
        let no_address = |what: &str| RenderFailure {
            file: self.campaign.path.clone(),
            line: None,
            message: format!("client {} has no {what}", client.id),
        };
        let message = self.with_context(|ctx| -> Result<Message, RenderFailure> {
            data::set_rsvp(ctx.data_mut(), rsvp);
            Ok(match channel {
                Channel::Email => {
                    let email = self.email(ctx, client, delivery)?;
                    let to = client.email.clone().ok_or_else(|| no_address("email"))?;
                    Message::Email(EmailMessage {
                        to,
                        to_name: client.name.clone(),
                        subject: email.subject,
                        text: email.text,
                        html: email.html,
                        attachments: self.calendar(client, rsvp),
                        unsubscribe: self.unsubscribe(delivery),
                    })
                }
                Channel::Sms => Message::Sms(self.sms_message(ctx, client, delivery)?),
            })
        })?;
        Ok(Outgoing {
            delivery,
            campaign: self.campaign.name.clone(),
            message,
        })
    }

    /// Every message of a seminar carries its calendar entry, so that the
    /// client's calendar holds the latest version (or the cancellation).
    fn calendar(&self, client: &Client, rsvp: Option<&Value>) -> Vec<crate::channel::Attachment> {
        if content_key(&self.campaign.kind) != keys::SEMINAR {
            return Vec::new();
        }
        let mut attached: Vec<crate::channel::Attachment> =
            crate::seminar::ics::attachment(&self.content, client.id.as_str(), chrono::Utc::now())
                .into_iter()
                .collect();
        // A reminder's check-in code, as an image the door can scan.
        if let Some(png) = rsvp
            .and_then(|r| r["code"].as_str())
            .and_then(crate::seminar::checkin::qr_png)
        {
            attached.push(crate::channel::Attachment {
                filename: "checkin.png".into(),
                content_type: "image/png".into(),
                bytes: png,
            });
        }
        attached
    }

    fn unsubscribe(&self, delivery: i64) -> Option<Unsubscribe> {
        if self.campaign.purpose != Purpose::Marketing {
            return None;
        }
        let links = self.links.as_ref()?;
        Some(Unsubscribe {
            url: links.action(delivery, crate::tracking::token::Action::Unsubscribe),
            mailto: self
                .unsubscribe_mailto
                .as_deref()
                .and_then(|m| links.unsubscribe_mailto(delivery, m)),
        })
    }

    /// A data document for one thread to render with.
    pub fn context(&self) -> Context {
        Context::wraps(&self.run_data).expect("a JSON value always wraps")
    }

    /// Runs `f` with a data document from the pool, for callers (async
    /// tasks) that cannot keep one per thread.
    pub fn with_context<T>(&self, f: impl FnOnce(&mut Context) -> T) -> T {
        let pooled = self
            .contexts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let mut ctx = pooled.unwrap_or_else(|| self.context());
        let result = f(&mut ctx);
        self.contexts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ctx);
        result
    }

    /// The run's data without a client, for checks.
    pub fn run_data(&self) -> &Value {
        &self.run_data
    }

    pub fn email(
        &self,
        ctx: &mut Context,
        client: &Client,
        delivery: i64,
    ) -> Result<Email, RenderFailure> {
        data::set_recipient(ctx.data_mut(), client, delivery);
        self.renderer.email(ctx)
    }

    pub fn sms(
        &self,
        ctx: &mut Context,
        client: &Client,
        delivery: i64,
    ) -> Result<Sms, RenderFailure> {
        data::set_recipient(ctx.data_mut(), client, delivery);
        self.renderer.sms(ctx)
    }
}

/// Each parameter of an approved SMS template is itself a small template
/// (`name = "{{client.name}}"`), rendered without escaping.
fn compile_params(
    campaign: &Campaign,
    t: &file::SmsTemplate,
    config: &Config,
) -> Result<handlebars::Handlebars<'static>, Vec<Problem>> {
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    crate::message::helpers::register(&mut hb, config.timezone, None);
    let mut problems = Vec::new();
    for (name, source) in &t.params {
        if let Err(e) = hb.register_template_string(name, source) {
            problems.push(
                Problem::error(&campaign.path, format!("not a template: {}", e.reason()))
                    .about(format!("sms_template.params.{name}")),
            );
        }
    }
    if problems.is_empty() {
        Ok(hb)
    } else {
        Err(problems)
    }
}

/// Where a kind's content appears in templates.
pub fn content_key(kind: &Kind) -> &'static str {
    match kind {
        Kind::SeminarInvitation => keys::SEMINAR,
        Kind::Custom(k) if k == crate::seminar::notice::KIND => keys::SEMINAR,
        _ => keys::CONTENT,
    }
}

fn channel_list(channels: &[Channel]) -> String {
    channels
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(" and ")
}
