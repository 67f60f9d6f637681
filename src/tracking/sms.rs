//! SMS gateways calling back: replies (an opt-out word opts the number out
//! of SMS at once; anything else is stored as a reply on the client) and
//! delivery receipts (matched to the delivery by herald's own id, stored
//! once however often the gateway repeats them). Twilio posts forms and
//! signs them when its auth token is configured; Alibaba Cloud pushes JSON
//! arrays (`SmsUp`, `SmsReport`) and expects `{"code":0}` back.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Form, OriginalUri, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;

use super::server::{event, unavailable, Refusal, TrackingState};
use crate::channel::Channel;
use crate::client::consent::{ConsentChange, ConsentScope, ConsentSource};
use crate::client::types::{ClientId, Mobile};
use crate::event::{EventKind, NewEvent};

/// Twilio error codes that mean the number cannot receive SMS.
const TWILIO_BAD_NUMBER: [&str; 4] = ["21211", "30003", "30005", "30006"];
/// Alibaba Cloud receipt codes that mean the same.
const ALIYUN_BAD_NUMBER: [&str; 4] = [
    "MOBILE_NOT_ON_SERVICE",
    "MOBILE_NUMBER_ILLEGAL",
    "MOBILE_ACCOUNT_ABNORMAL",
    "USER_NOT_EXIST",
];

/// What became of a reply.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    OptedOut,
    Stored,
    /// An answer to a seminar invitation.
    Answered,
    /// An answer after the seminar's RSVP deadline: nothing changed.
    Closed,
    /// No client has this number, or it is not a mobile number.
    Unknown,
}

/// One reply from `phone`: an opt-out word opts every client with that
/// number out of SMS; anything else is a `replied` event on each.
async fn reply(
    s: &TrackingState,
    phone: &str,
    text: &str,
    provider: &str,
    id: &str,
    at: DateTime<Utc>,
) -> Result<Reply, Refusal> {
    let Ok(mobile) = Mobile::parse(phone) else {
        return Ok(Reply::Unknown);
    };
    let ids = s
        .store
        .clients_with_phone(mobile.as_str())
        .await
        .map_err(|e| unavailable(&e))?;
    if ids.is_empty() {
        return Ok(Reply::Unknown);
    }
    let word = text.trim();
    if let Some(answered) = rsvp_reply(s, &ids, word, at).await? {
        return Ok(answered);
    }
    let opt_out = s.opt_out_words.iter().any(|w| w.eq_ignore_ascii_case(word));
    for id_text in ids {
        let Ok(client_id) = ClientId::parse(&id_text) else {
            continue;
        };
        if opt_out {
            let client = s
                .store
                .client(&client_id)
                .await
                .map_err(|e| unavailable(&e))?;
            if client.is_some_and(|c| c.consents[ConsentScope::Sms.index()].granted) {
                let change = ConsentChange {
                    client_id: client_id.clone(),
                    scope: ConsentScope::Sms,
                    granted: false,
                    source: ConsentSource::SmsReply,
                    at,
                    actor: None,
                    note: Some(format!("replied {word:?} ({provider})")),
                };
                s.store
                    .record_consent(&change)
                    .await
                    .map_err(|e| unavailable(&e))?;
            }
        }
        let kind = if opt_out {
            EventKind::Unsubscribed
        } else {
            EventKind::Replied
        };
        let e = NewEvent {
            client_id,
            at,
            kind,
            channel: Some(Channel::Sms),
            campaign: None,
            campaign_kind: None,
            purpose: None,
            run_id: None,
            delivery_id: None,
            source: provider.to_owned(),
            details: json!({ "text": text, "scope": opt_out.then_some("sms") }),
            // The gateway's message id: a repeated push is one reply.
            dedupe_on: Some(format!("reply:{provider}:{id}:{id_text}")),
        };
        s.record(e).await?;
    }
    Ok(if opt_out {
        Reply::OptedOut
    } else {
        Reply::Stored
    })
}

/// An RSVP word answers the last seminar invitation sent by SMS to any
/// client with this number; `None` when the word is no RSVP word or no
/// invitation went to the number (the reply is then stored as any other).
async fn rsvp_reply(
    s: &TrackingState,
    ids: &[String],
    word: &str,
    at: DateTime<Utc>,
) -> Result<Option<Reply>, Refusal> {
    let is = |words: &[String]| words.iter().any(|w| w.eq_ignore_ascii_case(word));
    let yes = match (is(&s.rsvp_yes_words), is(&s.rsvp_no_words)) {
        (true, _) => true,
        (_, true) => false,
        _ => return Ok(None),
    };
    let mut latest = None;
    for id in ids {
        let found = s
            .store
            .latest_sms_invitation(id)
            .await
            .map_err(|e| unavailable(&e))?;
        latest = latest.max(found.map(|(d, sent)| (sent, d)));
    }
    let Some((_, delivery)) = latest else {
        return Ok(None);
    };
    let Some(d) = s
        .store
        .delivery_context(delivery)
        .await
        .map_err(|e| unavailable(&e))?
    else {
        return Ok(None);
    };
    Ok(Some(
        match super::rsvp::answer(s, &d, yes, Channel::Sms, at).await? {
            super::rsvp::Answered::Recorded(_) => Reply::Answered,
            super::rsvp::Answered::Closed => Reply::Closed,
        },
    ))
}

/// A receipt for delivery `id`: delivered, or failed (a bad number is
/// marked so the next run tries another channel).
async fn receipt(
    s: &TrackingState,
    id: i64,
    delivered: bool,
    code: &str,
    bad_number: bool,
    provider: &str,
) -> Result<(), Refusal> {
    let Some(d) = s
        .store
        .delivery_context(id)
        .await
        .map_err(|e| unavailable(&e))?
    else {
        return Err(Refusal::BadLink);
    };
    if d.channel != "sms" {
        return Err(Refusal::BadLink);
    }
    let at = Utc::now();
    let kind = if delivered {
        EventKind::Delivered
    } else {
        EventKind::Bounced
    };
    if let Some(mut e) = event(
        &d,
        kind,
        at,
        json!({ "provider": provider, "code": code, "bad_number": bad_number }),
    ) {
        e.dedupe_on = Some(format!("receipt:{id}:{}", kind.as_str()));
        e.source = provider.to_owned();
        s.record(e).await?;
    }
    if !delivered && bad_number {
        let reason = format!("{provider} receipt {code}");
        s.store
            .mark_bad_address(Channel::Sms, &d.address, &reason, at)
            .await
            .map_err(|e| unavailable(&e))?;
    }
    Ok(())
}

/// Twilio's signature: base64 HMAC-SHA1 over the URL it called and the
/// form's fields sorted by name, each name followed by its value.
fn twilio_signed(token: &str, url: &str, form: &BTreeMap<String, String>, signature: &str) -> bool {
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()) else {
        return false;
    };
    mac.update(url.as_bytes());
    for (k, v) in form {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    mac.verify_slice(&given).is_ok()
}

/// Refuses a Twilio callback whose signature does not match, when a token
/// is configured.
fn twilio_check(
    s: &TrackingState,
    uri: &OriginalUri,
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> Result<(), Refusal> {
    let Some(token) = &s.twilio_auth_token else {
        return Ok(());
    };
    let url = format!("{}{}", s.base_url, uri.0);
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if twilio_signed(token, &url, form, signature) {
        Ok(())
    } else {
        tracing::warn!("tracking: a Twilio callback with a bad signature was refused");
        Err(Refusal::BadLink)
    }
}

/// Twilio answers replies with TwiML; an empty response sends nothing back.
fn twiml() -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml")],
        "<Response></Response>",
    )
        .into_response()
}

pub async fn twilio_inbound(
    State(s): State<Arc<TrackingState>>,
    uri: OriginalUri,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = twilio_check(&s, &uri, &headers, &form) {
        return r.into_response();
    }
    let (Some(from), Some(body)) = (form.get("From"), form.get("Body")) else {
        return (StatusCode::BAD_REQUEST, "From and Body are required\n").into_response();
    };
    let id = form.get("MessageSid").map_or("", String::as_str);
    match reply(&s, from, body, "twilio", id, Utc::now()).await {
        Ok(_) => twiml(),
        Err(r) => r.into_response(),
    }
}

#[derive(Deserialize)]
pub struct DeliveryParam {
    delivery: Option<i64>,
}

pub async fn twilio_status(
    State(s): State<Arc<TrackingState>>,
    uri: OriginalUri,
    Query(q): Query<DeliveryParam>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = twilio_check(&s, &uri, &headers, &form) {
        return r.into_response();
    }
    let (Some(id), Some(status)) = (q.delivery, form.get("MessageStatus")) else {
        return (
            StatusCode::BAD_REQUEST,
            "delivery and MessageStatus are required\n",
        )
            .into_response();
    };
    let code = form.get("ErrorCode").map_or("", String::as_str);
    let result = match status.as_str() {
        "delivered" => receipt(&s, id, true, code, false, "twilio").await,
        "undelivered" | "failed" => {
            receipt(
                &s,
                id,
                false,
                code,
                TWILIO_BAD_NUMBER.contains(&code),
                "twilio",
            )
            .await
        }
        // queued, sending, sent: on the way; nothing to record yet.
        _ => Ok(()),
    };
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r.into_response(),
    }
}

#[derive(Deserialize)]
pub struct AliyunUp {
    phone_number: String,
    content: String,
    #[serde(default)]
    sequence_id: serde_json::Value,
    #[serde(default)]
    send_time: String,
}

#[derive(Deserialize)]
pub struct AliyunReport {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    err_code: String,
    out_id: Option<String>,
}

/// Alibaba Cloud's answer: `code` 0 accepts; anything else makes it retry.
fn aliyun(ok: bool) -> Response {
    let body = if ok {
        json!({ "code": 0, "msg": "成功" })
    } else {
        json!({ "code": 1, "msg": "稍后重试" })
    };
    Json(body).into_response()
}

pub async fn aliyun_up(
    State(s): State<Arc<TrackingState>>,
    Json(items): Json<Vec<AliyunUp>>,
) -> Response {
    for m in &items {
        let id = format!("{}:{}", m.sequence_id, m.send_time);
        if let Err(Refusal::Unavailable) =
            reply(&s, &m.phone_number, &m.content, "aliyun", &id, Utc::now()).await
        {
            return aliyun(false);
        }
    }
    aliyun(true)
}

pub async fn aliyun_report(
    State(s): State<Arc<TrackingState>>,
    Json(items): Json<Vec<AliyunReport>>,
) -> Response {
    for r in &items {
        // A receipt for a message herald did not send is acknowledged and
        // dropped: refusing it would only make the gateway retry it.
        let Some(id) = r.out_id.as_deref().and_then(|o| o.parse::<i64>().ok()) else {
            continue;
        };
        let bad = ALIYUN_BAD_NUMBER.contains(&r.err_code.as_str());
        if let Err(Refusal::Unavailable) =
            receipt(&s, id, r.success, &r.err_code, bad, "aliyun").await
        {
            return aliyun(false);
        }
    }
    aliyun(true)
}

#[derive(Deserialize)]
pub struct TokenParam {
    token: Option<String>,
}

/// A generic gateway's posted objects, if its token is right: one object,
/// or an array of them.
fn generic_items(
    s: &TrackingState,
    q: &TokenParam,
    body: serde_json::Value,
) -> Result<Vec<serde_json::Value>, Refusal> {
    use subtle::ConstantTimeEq as _;
    let g = s.generic_sms.as_ref().ok_or(Refusal::BadLink)?;
    let given = q.token.as_deref().unwrap_or("");
    if !bool::from(g.token.as_bytes().ct_eq(given.as_bytes())) {
        return Err(Refusal::BadLink);
    }
    Ok(match body {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    })
}

/// The text at `pointer` in `item`: strings as they are, numbers written out.
fn at(item: &serde_json::Value, pointer: &str) -> Option<String> {
    match item.pointer(pointer)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub async fn generic_reply(
    State(s): State<Arc<TrackingState>>,
    Query(q): Query<TokenParam>,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let items = match generic_items(&s, &q, body) {
        Ok(items) => items,
        Err(r) => return r.into_response(),
    };
    let g = s.generic_sms.as_ref().expect("checked by generic_items");
    for item in &items {
        let (Some(phone), Some(text)) = (at(item, &g.reply_phone), at(item, &g.reply_text)) else {
            return (
                StatusCode::BAD_REQUEST,
                "a reply without its phone or text\n",
            )
                .into_response();
        };
        let id = g
            .reply_id
            .as_deref()
            .and_then(|p| at(item, p))
            .unwrap_or_else(|| format!("{phone}:{text}"));
        if let Err(r) = reply(&s, &phone, &text, "generic", &id, Utc::now()).await {
            return r.into_response();
        }
    }
    Json(json!({ "accepted": items.len() })).into_response()
}

pub async fn generic_receipt(
    State(s): State<Arc<TrackingState>>,
    Query(q): Query<TokenParam>,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let items = match generic_items(&s, &q, body) {
        Ok(items) => items,
        Err(r) => return r.into_response(),
    };
    let g = s.generic_sms.as_ref().expect("checked by generic_items");
    for item in &items {
        let (Some(id), Some(status)) = (
            at(item, &g.receipt_delivery).and_then(|d| d.parse::<i64>().ok()),
            at(item, &g.receipt_status),
        ) else {
            return (
                StatusCode::BAD_REQUEST,
                "a receipt without its delivery or status\n",
            )
                .into_response();
        };
        let delivered = g.delivered.contains(&status);
        let bad = g.bad_number.contains(&status);
        match receipt(&s, id, delivered, &status, bad, "generic").await {
            Ok(()) | Err(Refusal::BadLink) => {}
            Err(r) => return r.into_response(),
        }
    }
    Json(json!({ "accepted": items.len() })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_signatures_match_twilio_s_documented_example() {
        // From Twilio's "Webhooks security" documentation.
        let token = "12345";
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let form: BTreeMap<String, String> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert!(twilio_signed(
            token,
            url,
            &form,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!twilio_signed(
            token,
            url,
            &form,
            "1/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!twilio_signed(
            "54321",
            url,
            &form,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }
}
