//! The public tracking server: the open pixel, click redirects, the
//! unsubscribe page and RFC 8058 one-click unsubscribe, and view online.
//! Every request carries a signed token; one that does not verify gets an
//! error page and changes nothing. Each response becomes an event on the
//! client's record, where rules and reports read it.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::links::TARGET_PARAM;
use super::token::{self, Action, Secret};
use super::writer::EventWriter;
use crate::channel::Channel;
use crate::client::consent::{ConsentChange, ConsentScope, ConsentSource};
use crate::client::types::ClientId;
use crate::config::Config;
use crate::event::{EventKind, NewEvent};
use crate::store::runs::DeliveryContext;
use crate::store::Store;

/// Forms and callbacks are small; anything larger is refused unread.
const BODY_LIMIT: usize = 16 * 1024;

/// A transparent 1×1 GIF.
pub const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// Fragments of the user agents of mail scanners and link checkers, which
/// fetch links before (or instead of) a person.
const SCANNER_AGENTS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "scanner",
    "preview",
    "barracuda",
    "mimecast",
    "proofpoint",
    "safelinks",
    "urldefense",
    "python-requests",
    "curl/",
    "wget",
    "go-http-client",
    "java/",
    "libwww",
    "headless",
];

/// How soon after delivery a click on an unopened message is a link checker's.
const UNOPENED_CLICK_SECS: i64 = 120;

/// Sent deliveries remembered, so that a hit needs no read: what a
/// response needs of a sent delivery never changes.
const CACHED_DELIVERIES: usize = 200_000;

pub struct TrackingState {
    pub store: Arc<dyn Store>,
    events: EventWriter,
    sent: quick_cache::sync::Cache<i64, Arc<DeliveryContext>>,
    /// Opens known to be stored (delivery, flagged): a repeat needs no write.
    opened: quick_cache::sync::Cache<(i64, bool), ()>,
    secret: Secret,
    previous: Option<(Secret, DateTime<Utc>)>,
    /// Hits this soon after the message was sent are a scanner's.
    scanner_window: chrono::Duration,
    firm: String,
    pub(super) opt_out_words: Vec<String>,
    pub(super) twilio_auth_token: Option<String>,
    /// The public base URL, as providers sign their callbacks to it.
    pub(super) base_url: String,
    /// `[email] unsubscribe_mailto`: mail to its `+TOKEN` form unsubscribes.
    pub(super) unsubscribe_mailbox: Option<String>,
    pub(super) soft_bounce_limit: usize,
    /// The bearer token `POST /inbound/mail` needs; the endpoint is off without it.
    inbound_token: Option<String>,
    pub(super) generic_sms: Option<crate::config::GenericSmsCallbacks>,
    /// Seminar invitation runs answered lately, by run id.
    pub(super) invitations: quick_cache::sync::Cache<i64, Arc<super::rsvp::Invitation>>,
    pub(super) rsvp_yes_words: Vec<String>,
    pub(super) rsvp_no_words: Vec<String>,
}

impl TrackingState {
    /// Call within the Tokio runtime: the event writer starts here.
    pub fn new(store: Arc<dyn Store>, config: &Config) -> anyhow::Result<Self> {
        let tracking = config.tracking.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "[tracking] base_url and secret are not set in {}",
                config.source
            )
        })?;
        let (events, _) = EventWriter::start(store.clone());
        Ok(Self {
            store,
            events,
            sent: quick_cache::sync::Cache::new(CACHED_DELIVERIES),
            opened: quick_cache::sync::Cache::new(CACHED_DELIVERIES),
            secret: tracking.secret.clone(),
            previous: tracking.previous.clone(),
            scanner_window: chrono::Duration::seconds(tracking.scanner_window_secs as i64),
            firm: config.firm.name.clone(),
            opt_out_words: tracking.opt_out_words.clone(),
            twilio_auth_token: tracking.twilio_auth_token.clone(),
            base_url: tracking.base_url.as_str().trim_end_matches('/').to_owned(),
            unsubscribe_mailbox: config.email_sender.unsubscribe_mailto.clone(),
            soft_bounce_limit: tracking.soft_bounce_limit,
            inbound_token: tracking.inbound_token.clone(),
            generic_sms: tracking.generic_sms.clone(),
            invitations: quick_cache::sync::Cache::new(1024),
            rsvp_yes_words: tracking.rsvp_yes_words.clone(),
            rsvp_no_words: tracking.rsvp_no_words.clone(),
        })
    }
}

pub fn router(state: Arc<TrackingState>) -> Router {
    Router::new()
        .route("/o/{token}", get(open))
        .route("/c/{token}", get(click))
        .route("/u/{token}", get(unsubscribe_page).post(unsubscribe))
        .route("/v/{token}", get(view_online))
        .route(
            "/r/{token}",
            get(super::rsvp::rsvp_page).post(super::rsvp::rsvp),
        )
        .route("/sms/twilio/inbound", post(super::sms::twilio_inbound))
        .route("/sms/twilio/status", post(super::sms::twilio_status))
        .route("/sms/aliyun/up", post(super::sms::aliyun_up))
        .route("/sms/aliyun/report", post(super::sms::aliyun_report))
        .route("/sms/generic/reply", post(super::sms::generic_reply))
        .route("/sms/generic/receipt", post(super::sms::generic_receipt))
        .route("/inbound/mail", post(inbound_mail))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Why a request changes nothing.
#[derive(Debug)]
pub enum Refusal {
    /// Forged, altered, for another action, or for no delivery we sent.
    BadLink,
    /// The database failed; the client may try again.
    Unavailable,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::BadLink => (
                StatusCode::NOT_FOUND,
                page("链接无效", "<p>这个链接无效或已失效，未做任何更改。</p><p>This link is not valid; nothing was changed.</p>"),
            )
                .into_response(),
            Refusal::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                page("暂时无法处理", "<p>服务暂时不可用，请稍后再试。</p><p>Please try again later.</p>"),
            )
                .into_response(),
        }
    }
}

impl TrackingState {
    /// The sent delivery a token stands for, if it verifies for `action`
    /// and `target` under the current secret or, until it lapses, the
    /// previous one.
    pub(super) async fn delivery(
        &self,
        token: &str,
        target: &str,
        action: Action,
    ) -> Result<Arc<DeliveryContext>, Refusal> {
        let claims = token::verify(&self.secret, token, target)
            .or_else(|e| match &self.previous {
                Some((old, until)) if Utc::now() < *until => token::verify(old, token, target),
                _ => Err(e),
            })
            .map_err(|_| Refusal::BadLink)?;
        if claims.action != action {
            return Err(Refusal::BadLink);
        }
        if let Some(d) = self.sent.get(&claims.delivery) {
            return Ok(d);
        }
        let delivery = self
            .store
            .delivery_context(claims.delivery)
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or(Refusal::BadLink)?;
        if delivery.state != "sent" {
            return Err(Refusal::BadLink);
        }
        let delivery = Arc::new(delivery);
        self.sent.insert(claims.delivery, delivery.clone());
        Ok(delivery)
    }

    pub(super) async fn record(&self, event: NewEvent) -> Result<(), Refusal> {
        if self.events.record(event).await {
            Ok(())
        } else {
            Err(Refusal::Unavailable)
        }
    }

    /// A click soon after delivery on a message never opened is a link
    /// checker's; later, it is a person reading with images off.
    async fn unopened_click(
        &self,
        d: &DeliveryContext,
        at: DateTime<Utc>,
    ) -> Result<Option<&'static str>, Refusal> {
        let soon = d
            .sent_at
            .is_some_and(|sent| at - sent < chrono::Duration::seconds(UNOPENED_CLICK_SECS));
        if !soon || self.opened.get(&(d.id, false)).is_some() {
            return Ok(None);
        }
        let client = ClientId::parse(&d.client_id).map_err(|_| Refusal::BadLink)?;
        let opened = self
            .store
            .client_events(&client, 200)
            .await
            .map_err(|e| unavailable(&e))?
            .iter()
            .any(|e| {
                e.event.delivery_id == Some(d.id)
                    && e.event.kind == EventKind::Opened
                    && e.event.details["flagged"].is_null()
            });
        Ok((!opened).then_some("a click within minutes of delivery on a message never opened"))
    }

    /// Why a hit looks like a machine's, if it does.
    fn scanner(
        &self,
        headers: &HeaderMap,
        d: &DeliveryContext,
        at: DateTime<Utc>,
    ) -> Option<&'static str> {
        let agent = user_agent(headers).to_ascii_lowercase();
        if agent.is_empty() {
            return Some("no user agent");
        }
        if SCANNER_AGENTS.iter().any(|s| agent.contains(s)) {
            return Some("a scanner's user agent");
        }
        if d.sent_at
            .is_some_and(|sent| at - sent < self.scanner_window)
        {
            return Some("within seconds of delivery");
        }
        None
    }
}

pub(super) fn unavailable(e: &crate::store::StoreError) -> Refusal {
    tracing::error!(error = %e, "tracking: the database failed");
    Refusal::Unavailable
}

fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// An event for a response to `d`.
pub(super) fn event(
    d: &DeliveryContext,
    kind: EventKind,
    at: DateTime<Utc>,
    details: serde_json::Value,
) -> Option<NewEvent> {
    Some(NewEvent {
        client_id: ClientId::parse(&d.client_id).ok()?,
        at,
        kind,
        channel: Channel::parse(&d.channel).ok(),
        campaign: Some(d.campaign.clone()),
        campaign_kind: Some(d.kind.clone()),
        purpose: crate::campaign::Purpose::parse(&d.purpose).ok(),
        run_id: Some(d.run_id),
        delivery_id: Some(d.id),
        source: "tracking".into(),
        details,
        dedupe_on: None,
    })
}

async fn open(
    State(s): State<Arc<TrackingState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let token = token.strip_suffix(".gif").unwrap_or(&token);
    let d = match s.delivery(token, "", Action::Open).await {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let at = Utc::now();
    let flagged = s.scanner(&headers, &d, at);
    let seen = (d.id, flagged.is_some());
    let details = json!({ "user_agent": user_agent(&headers), "flagged": flagged });
    let first = s.opened.get(&seen).is_none();
    if let Some(mut e) = event(&d, EventKind::Opened, at, details).filter(|_| first) {
        // Counted once per delivery; a scanner's fetch apart, so that it
        // does not hide the person's open that follows.
        let which = if flagged.is_some() { "flagged" } else { "open" };
        e.dedupe_on = Some(format!("{which}:{}", d.id));
        if let Err(r) = s.record(e).await {
            return r.into_response();
        }
        s.opened.insert(seen, ());
    }
    (
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store, max-age=0"),
        ],
        PIXEL,
    )
        .into_response()
}

async fn click(
    State(s): State<Arc<TrackingState>>,
    Path(token): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(target) = query.get(TARGET_PARAM) else {
        return Refusal::BadLink.into_response();
    };
    // The token covers the target: only the URL it was made for redirects.
    let d = match s.delivery(&token, target, Action::Click).await {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    if !(target.starts_with("https://") || target.starts_with("http://")) {
        return Refusal::BadLink.into_response();
    }
    let at = Utc::now();
    let flagged = match s.scanner(&headers, &d, at) {
        Some(why) => Some(why),
        None => match s.unopened_click(&d, at).await {
            Ok(why) => why,
            Err(r) => return r.into_response(),
        },
    };
    let details = json!({ "url": target, "user_agent": user_agent(&headers), "flagged": flagged });
    if let Some(e) = event(&d, EventKind::Clicked, at, details) {
        if let Err(r) = s.record(e).await {
            return r.into_response();
        }
    }
    Redirect::to(target).into_response()
}

async fn unsubscribe_page(
    State(s): State<Arc<TrackingState>>,
    Path(token): Path<String>,
) -> Response {
    let d = match s.delivery(&token, "", Action::Unsubscribe).await {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let this = match d.channel.as_str() {
        "sms" => "短信",
        _ => "邮件",
    };
    let body = format!(
        r#"<p>{firm}将不再向您发送您选择的营销信息。</p>
<form method="post">
<button name="scope" value="{channel}">退订{this}营销信息</button>
<button name="scope" value="all">退订全部营销信息（邮件和短信）</button>
</form>
<p class="note">退订后仍会收到与您账户相关的服务通知。You will still receive service notices about your account.</p>"#,
        firm = handlebars::html_escape(&s.firm),
        channel = handlebars::html_escape(&d.channel),
    );
    page("退订确认", &body).into_response()
}

#[derive(Debug, Deserialize)]
struct UnsubscribeForm {
    /// RFC 8058: `List-Unsubscribe=One-Click`.
    #[serde(rename = "List-Unsubscribe")]
    list_unsubscribe: Option<String>,
    /// From our page: `email`, `sms` or `all`.
    scope: Option<String>,
}

async fn unsubscribe(
    State(s): State<Arc<TrackingState>>,
    Path(token): Path<String>,
    Form(form): Form<UnsubscribeForm>,
) -> Response {
    let d = match s.delivery(&token, "", Action::Unsubscribe).await {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let one_click = form.list_unsubscribe.as_deref() == Some("One-Click");
    let scopes: Vec<ConsentScope> = match (one_click, form.scope.as_deref()) {
        (true, _) => channel_scope(&d.channel).into_iter().collect(),
        (false, Some("all")) => vec![ConsentScope::Email, ConsentScope::Sms],
        (false, Some(c)) if c == d.channel => channel_scope(c).into_iter().collect(),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                page("无法处理", "<p>请求不完整，未做任何更改。</p>"),
            )
                .into_response()
        }
    };
    if let Err(r) = opt_out(
        &s,
        &d,
        &scopes,
        if one_click { "one-click" } else { "page" },
    )
    .await
    {
        return r.into_response();
    }
    if one_click {
        // A mail client's background POST: a short answer is enough.
        return (StatusCode::OK, "unsubscribed\n").into_response();
    }
    page(
        "已退订",
        "<p>您已成功退订，我们不会再向您发送所选的营销信息。</p><p>You have been unsubscribed.</p>",
    )
    .into_response()
}

fn channel_scope(channel: &str) -> Option<ConsentScope> {
    match channel {
        "email" => Some(ConsentScope::Email),
        "sms" => Some(ConsentScope::Sms),
        _ => None,
    }
}

/// Records the opt-outs and one event per scope. An opt-out already
/// recorded is not recorded again, so a second click changes nothing.
pub(super) async fn opt_out(
    s: &TrackingState,
    d: &DeliveryContext,
    scopes: &[ConsentScope],
    how: &str,
) -> Result<(), Refusal> {
    let Ok(client_id) = ClientId::parse(&d.client_id) else {
        return Err(Refusal::BadLink);
    };
    let client = s
        .store
        .client(&client_id)
        .await
        .map_err(|e| unavailable(&e))?
        .ok_or(Refusal::BadLink)?;
    let at = Utc::now();
    for &scope in scopes {
        if !client.consents[scope.index()].granted {
            continue;
        }
        let change = ConsentChange {
            client_id: client_id.clone(),
            scope,
            granted: false,
            source: ConsentSource::UnsubscribeLink,
            at,
            actor: None,
            note: Some(format!("delivery {} ({how})", d.id)),
        };
        s.store
            .record_consent(&change)
            .await
            .map_err(|e| unavailable(&e))?;
        if let Some(mut e) = event(
            d,
            EventKind::Unsubscribed,
            at,
            json!({ "scope": scope.as_str(), "how": how }),
        ) {
            e.dedupe_on = Some(format!("unsubscribe:{}:{}", d.id, scope.as_str()));
            s.record(e).await?;
        }
    }
    Ok(())
}

async fn view_online(State(s): State<Arc<TrackingState>>, Path(token): Path<String>) -> Response {
    let d = match s.delivery(&token, "", Action::ViewOnline).await {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let record = match s.store.archive_get(d.id).await {
        Ok(Some(r)) if r.unreadable.is_none() => r,
        // Never archived, or its record cannot be restored: nothing to show.
        Ok(_) => return Refusal::BadLink.into_response(),
        Err(e) => return unavailable(&e).into_response(),
    };
    let html = serde_json::from_str::<serde_json::Value>(&record.record)
        .ok()
        .and_then(|r| r["message"]["html"].as_str().map(str::to_owned));
    match html {
        Some(html) => Html(html).into_response(),
        None => Refusal::BadLink.into_response(),
    }
}

/// A returned or unsubscribe mail, posted by the firm's mail system with
/// `Authorization: Bearer [tracking] inbound_token`.
async fn inbound_mail(
    State(s): State<Arc<TrackingState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let authorised = match (&s.inbound_token, given) {
        (Some(want), Some(given)) => {
            use subtle::ConstantTimeEq as _;
            bool::from(want.as_bytes().ct_eq(given.trim().as_bytes()))
        }
        _ => false,
    };
    if !authorised {
        return Refusal::BadLink.into_response();
    }
    match super::inbound::ingest(&s, &body).await {
        Ok(outcome) => axum::Json(outcome).into_response(),
        Err(r) => r.into_response(),
    }
}

/// A page in the firm's voice: Chinese first, readable on a phone.
pub(super) fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif; max-width: 32em; margin: 2em auto; padding: 0 1em; line-height: 1.6; color: #222; }}
button {{ display: block; width: 100%; margin: .6em 0; padding: .8em; font-size: 1em; border: 1px solid #c33; background: #fff; color: #c33; border-radius: 6px; }}
.note {{ color: #666; font-size: .9em; }}
</style></head>
<body><h1>{title}</h1>
{body}
</body></html>"#
    ))
}
