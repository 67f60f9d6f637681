//! SMS through Twilio's Messages API, or any gateway that speaks it (set
//! `base_url`). Text only: Twilio has no pre-approved templates.
//!
//! One form POST to `{base}/2010-04-01/Accounts/{sid}/Messages.json` with
//! basic auth (account sid, auth token). herald's delivery id travels in the
//! status callback (`?delivery=ID`) so that receipts can be matched.
//! HTTP 429 and 5xx are retried (after `Retry-After`), other 4xx are not;
//! Twilio's error codes refine that: 21211 and 21614 mark the number bad,
//! 20429 is retried.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use super::super::{Accepted, Adapter, Channel, Failure, Message, Outgoing, SendError, SmsMessage};
use super::generic::redact;
use super::{classify_status, classify_transport, retry_after, DEFAULT_TIMEOUT};

/// Twilio's own API.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// `[providers.NAME]` with `kind = "twilio"`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    /// [`DEFAULT_BASE_URL`] unless a compatible gateway is used; a path
    /// prefix is kept (`https://gw.example.com/twilio`).
    #[serde(default = "default_base_url")]
    pub base_url: Url,
    pub account_sid: String,
    pub auth_token: String,
    /// The sending number or alphanumeric sender id; or else:
    pub from: Option<String>,
    /// A Messaging Service that picks the sender. Exactly one of `from` and
    /// `messaging_service_sid`.
    pub messaging_service_sid: Option<String>,
    /// Where Twilio posts delivery receipts; herald adds `delivery=ID`.
    pub status_callback: Option<Url>,
    /// `timeout_secs` in the file; 10 s unless set.
    #[serde(
        rename = "timeout_secs",
        default = "default_timeout",
        deserialize_with = "seconds"
    )]
    pub timeout: Duration,
}

fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base URL parses")
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

impl TwilioSettings {
    /// Twilio itself, sending from `from`, with no status callback.
    pub fn new(account_sid: &str, auth_token: &str, from: &str) -> Self {
        Self {
            base_url: default_base_url(),
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            from: Some(from.to_owned()),
            messaging_service_sid: None,
            status_callback: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The auth token never appears.
impl fmt::Debug for TwilioSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioSettings")
            .field("base_url", &self.base_url.as_str())
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"***")
            .field("from", &self.from)
            .field("messaging_service_sid", &self.messaging_service_sid)
            .field(
                "status_callback",
                &self.status_callback.as_ref().map(Url::as_str),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Who the message is from, as Twilio's form field and its value.
#[derive(Debug, Clone)]
enum Sender {
    From(String),
    Service(String),
}

impl Sender {
    fn field(&self) -> (&'static str, &str) {
        match self {
            Sender::From(from) => ("From", from),
            Sender::Service(sid) => ("MessagingServiceSid", sid),
        }
    }
}

pub struct TwilioAdapter {
    name: String,
    client: reqwest::Client,
    /// `…/2010-04-01/Accounts/{sid}/Messages.json`.
    endpoint: Url,
    account_sid: String,
    auth_token: String,
    sender: Sender,
    status_callback: Option<Url>,
}

/// The auth token never appears.
impl fmt::Debug for TwilioAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioAdapter")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint.as_str())
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

impl TwilioAdapter {
    /// Checks the settings; the message says which one is wrong.
    pub fn new(name: &str, settings: &TwilioSettings) -> Result<Self, String> {
        let sid = settings.account_sid.trim();
        if sid.is_empty() {
            return Err("account_sid is empty".into());
        }
        if sid.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("account_sid contains whitespace".into());
        }
        if settings.auth_token.trim().is_empty() {
            return Err("auth_token is empty".into());
        }
        let set = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let sender = match (set(&settings.from), set(&settings.messaging_service_sid)) {
            (Some(from), None) => Sender::From(from),
            (None, Some(service)) => Sender::Service(service),
            (None, None) => return Err("set from or messaging_service_sid".into()),
            (Some(_), Some(_)) => {
                return Err("set from or messaging_service_sid, not both".into());
            }
        };
        if !matches!(settings.base_url.scheme(), "http" | "https") {
            return Err(format!(
                "base_url {} is not an http(s) URL",
                settings.base_url
            ));
        }
        let mut endpoint = settings.base_url.clone();
        endpoint.set_query(None);
        endpoint.set_fragment(None);
        endpoint
            .path_segments_mut()
            .map_err(|()| format!("base_url {} cannot take a path", settings.base_url))?
            .pop_if_empty()
            .extend(["2010-04-01", "Accounts", sid, "Messages.json"]);
        if let Some(callback) = &settings.status_callback {
            if !matches!(callback.scheme(), "http" | "https") {
                return Err(format!("status_callback {callback} is not an http(s) URL"));
            }
        }
        if settings.timeout.is_zero() {
            return Err("timeout_secs must be at least 1".into());
        }
        Ok(Self {
            name: name.to_owned(),
            client: crate::http::client(settings.timeout),
            endpoint,
            account_sid: sid.to_owned(),
            auth_token: settings.auth_token.clone(),
            sender,
            status_callback: settings.status_callback.clone(),
        })
    }

    /// The configured callback with `delivery=ID` added to its query.
    fn status_callback(&self, delivery: i64) -> Option<String> {
        let mut url = self.status_callback.clone()?;
        url.query_pairs_mut()
            .append_pair("delivery", &delivery.to_string());
        Some(url.into())
    }
}

#[async_trait::async_trait]
impl Adapter for TwilioAdapter {
    fn name(&self) -> &str {
        &self.name
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    async fn send(&self, out: &Outgoing) -> Result<Accepted, SendError> {
        let Message::Sms(sms) = &out.message else {
            return Err(SendError::permanent("an email cannot go by SMS"));
        };
        let (to, text) = match sms {
            SmsMessage::Text { to, text } => (to, text),
            SmsMessage::Template { code, .. } => {
                return Err(SendError::permanent(format!(
                    "provider {} (Twilio) sends text only, not provider template {code}",
                    self.name
                )));
            }
        };
        if text.trim().is_empty() {
            return Err(SendError::permanent(format!(
                "SMS to {} has no text",
                to.masked()
            )));
        }
        let mut form = vec![
            ("To", to.as_str()),
            self.sender.field(),
            ("Body", text.as_str()),
        ];
        let callback = self.status_callback(out.delivery);
        if let Some(callback) = &callback {
            form.push(("StatusCallback", callback.as_str()));
        }
        let response = self
            .client
            .post(self.endpoint.clone())
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|e| classify_transport(&e))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = response.text().await.map_err(|e| classify_transport(&e))?;
        let body = redact(&body, to, &[&self.auth_token]);
        if status.is_success() {
            accepted(status, &body)
        } else {
            Err(classify(status, wait, &body))
        }
    }
}

/// `{"sid": "SM…", "status": "queued", …}`.
fn accepted(status: StatusCode, body: &str) -> Result<Accepted, SendError> {
    let sid = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("sid")?.as_str().map(str::to_owned))
        .filter(|sid| !sid.is_empty());
    match sid {
        Some(provider_id) => Ok(Accepted { provider_id }),
        // Not retried: Twilio may have queued it, and a retry could send twice.
        None => Err(SendError::permanent(format!(
            "HTTP {status} but no message sid in the answer: {}",
            snippet(body)
        ))),
    }
}

/// The HTTP status decides; Twilio's `code` refines it. `body` is redacted.
fn classify(status: StatusCode, wait: Option<Duration>, body: &str) -> SendError {
    let mut error = classify_status(status, wait, body);
    let Ok(answer) = serde_json::from_str::<serde_json::Value>(body) else {
        return error;
    };
    let code = match answer.get("code") {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let Some(code) = code else {
        return error;
    };
    let detail = answer
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or_default();
    error.message = format!("HTTP {status}, Twilio error {code}: {}", snippet(detail));
    if status.is_server_error() {
        return error;
    }
    match code {
        // 21211: invalid 'To' number; 21614: 'To' is not a mobile number.
        21211 | 21614 => error.failure = Failure::Permanent { bad_address: true },
        // 21610: the recipient replied STOP. The number is fine; they
        // opted out, which herald's own unsubscribes should have caught.
        21610 => error.failure = Failure::Permanent { bad_address: false },
        // 20429: too many requests.
        20429 => error.failure = Failure::Transient { retry_after: wait },
        // 20003 (authentication) and the rest: as the status says.
        _ => {}
    }
    error
}

fn snippet(s: &str) -> String {
    s.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::{Form, Json, Router};
    use base64::Engine;

    use super::*;
    use crate::client::types::Mobile;

    const SID: &str = "AC0123456789abcdef";
    const TOKEN: &str = "secret-token-42";
    const NUMBER: &str = "+8613812345678";

    type Seen = Arc<Mutex<Vec<BTreeMap<String, String>>>>;

    /// A Twilio lookalike: checks basic auth, records the form, and answers
    /// by the message text.
    async fn twilio(
        State(seen): State<Seen>,
        headers: HeaderMap,
        Form(form): Form<BTreeMap<String, String>>,
    ) -> Response {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"))
        );
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&expected) {
            let body = serde_json::json!({"code": 20003, "message": "Authenticate", "status": 401});
            return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
        }
        let text = form.get("Body").cloned().unwrap_or_default();
        seen.lock().unwrap().push(form);
        match text.as_str() {
            "rate" => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "7")],
                Json(serde_json::json!({"code": 20429, "message": "Too Many Requests"})),
            )
                .into_response(),
            "boom" => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
            "bad number" => (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({
                    "code": 21211,
                    "message": format!("The 'To' number {NUMBER} is not a valid phone number."),
                    "more_info": "https://www.twilio.com/docs/errors/21211",
                    "status": 400
                })),
            )
                .into_response(),
            "stopped" => (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({
                    "code": 21610,
                    "message": "Attempt to send to unsubscribed recipient",
                    "status": 400
                })),
            )
                .into_response(),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                (
                    StatusCode::CREATED,
                    Json(serde_json::json!({"sid": "SMlate"})),
                )
                    .into_response()
            }
            "no sid" => (StatusCode::CREATED, "<html>queued</html>").into_response(),
            _ => (
                StatusCode::CREATED,
                Json(serde_json::json!({"sid": "SM0001", "status": "queued"})),
            )
                .into_response(),
        }
    }

    async fn serve() -> (Url, Seen) {
        let seen = Seen::default();
        let app = Router::new()
            .route(
                &format!("/2010-04-01/Accounts/{SID}/Messages.json"),
                post(twilio),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (Url::parse(&format!("http://{addr}")).unwrap(), seen)
    }

    fn settings(base: &Url) -> TwilioSettings {
        TwilioSettings {
            base_url: base.clone(),
            status_callback: Some(
                Url::parse("https://herald.example.com/receipts/twilio?src=tw").unwrap(),
            ),
            timeout: Duration::from_secs(2),
            ..TwilioSettings::new(SID, TOKEN, "+15005550006")
        }
    }

    fn text(body: &str) -> Outgoing {
        Outgoing {
            delivery: 4711,
            campaign: "daily_bulletin".into(),
            message: Message::Sms(SmsMessage::Text {
                to: Mobile::parse(NUMBER).unwrap(),
                text: body.into(),
            }),
        }
    }

    async fn send(settings: &TwilioSettings, body: &str) -> Result<Accepted, SendError> {
        let adapter = TwilioAdapter::new("tw", settings).unwrap();
        adapter.send(&text(body)).await
    }

    #[tokio::test]
    async fn a_text_is_posted_with_basic_auth_and_the_delivery_in_the_callback() {
        let (base, seen) = serve().await;
        let accepted = send(&settings(&base), "【某某证券】您好").await.unwrap();
        assert_eq!(accepted.provider_id, "SM0001");
        let form = seen.lock().unwrap().pop().unwrap();
        assert_eq!(form["To"], NUMBER);
        assert_eq!(form["From"], "+15005550006");
        assert_eq!(form["Body"], "【某某证券】您好");
        assert_eq!(
            form["StatusCallback"],
            "https://herald.example.com/receipts/twilio?src=tw&delivery=4711"
        );
        assert!(!form.contains_key("MessagingServiceSid"));
    }

    #[tokio::test]
    async fn a_messaging_service_replaces_from() {
        let (base, seen) = serve().await;
        let s = TwilioSettings {
            from: None,
            messaging_service_sid: Some("MG0001".into()),
            status_callback: None,
            ..settings(&base)
        };
        assert_eq!(send(&s, "hi").await.unwrap().provider_id, "SM0001");
        let form = seen.lock().unwrap().pop().unwrap();
        assert_eq!(form["MessagingServiceSid"], "MG0001");
        assert!(!form.contains_key("From"));
        assert!(!form.contains_key("StatusCallback"));
    }

    #[tokio::test]
    async fn too_many_requests_is_retried_after_the_given_wait() {
        let (base, _) = serve().await;
        let e = send(&settings(&base), "rate").await.unwrap_err();
        assert_eq!(
            e.failure,
            Failure::Transient {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(e.message.contains("20429"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_server_error_is_transient() {
        let (base, _) = serve().await;
        let e = send(&settings(&base), "boom").await.unwrap_err();
        assert_eq!(e.failure, Failure::Transient { retry_after: None });
    }

    #[tokio::test]
    async fn an_invalid_number_is_permanent_and_marks_the_address_without_logging_it() {
        let (base, _) = serve().await;
        let e = send(&settings(&base), "bad number").await.unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: true });
        assert!(e.message.contains("21211"), "{}", e.message);
        assert!(!e.message.contains("13812345678"), "{}", e.message);
        assert!(e.message.contains("+86138****5678"), "{}", e.message);
    }

    #[tokio::test]
    async fn an_unsubscribed_recipient_is_permanent_but_the_number_is_fine() {
        let (base, _) = serve().await;
        let e = send(&settings(&base), "stopped").await.unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: false });
        assert!(e.message.contains("21610"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_wrong_token_is_permanent() {
        let (base, _) = serve().await;
        let s = TwilioSettings {
            auth_token: "wrong-token".into(),
            ..settings(&base)
        };
        let e = send(&s, "hi").await.unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: false });
        assert!(e.message.starts_with("HTTP 401"), "{}", e.message);
        assert!(!e.message.contains("wrong-token"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_timeout_is_transient() {
        let (base, _) = serve().await;
        let s = TwilioSettings {
            timeout: Duration::from_millis(300),
            ..settings(&base)
        };
        let e = send(&s, "slow").await.unwrap_err();
        assert!(e.is_transient(), "{e:?}");
        assert!(e.message.contains("timed out"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_success_without_a_sid_is_not_retried() {
        let (base, _) = serve().await;
        let e = send(&settings(&base), "no sid").await.unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: false });
    }

    #[tokio::test]
    async fn templates_are_refused_without_a_request() {
        let (base, seen) = serve().await;
        let adapter = TwilioAdapter::new("tw", &settings(&base)).unwrap();
        let out = Outgoing {
            message: Message::Sms(SmsMessage::Template {
                to: Mobile::parse(NUMBER).unwrap(),
                code: "SMS_1".into(),
                params: BTreeMap::new(),
            }),
            ..text("")
        };
        let e = adapter.send(&out).await.unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: false });
        assert!(seen.lock().unwrap().is_empty());
    }

    #[test]
    fn settings_are_checked() {
        let base = Url::parse("https://api.twilio.com").unwrap();
        let ok = settings(&base);
        let neither = TwilioSettings {
            from: None,
            ..ok.clone()
        };
        assert!(TwilioAdapter::new("tw", &neither).is_err());
        let both = TwilioSettings {
            messaging_service_sid: Some("MG1".into()),
            ..ok.clone()
        };
        assert!(TwilioAdapter::new("tw", &both).is_err());
        let no_token = TwilioSettings {
            auth_token: " ".into(),
            ..ok.clone()
        };
        assert!(TwilioAdapter::new("tw", &no_token).is_err());
        let adapter = TwilioAdapter::new("tw", &ok).unwrap();
        assert_eq!(
            adapter.endpoint.as_str(),
            format!("https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json")
        );
        let prefixed = TwilioSettings {
            base_url: Url::parse("https://gw.example.com/twilio/").unwrap(),
            ..ok
        };
        let adapter = TwilioAdapter::new("tw", &prefixed).unwrap();
        assert_eq!(
            adapter.endpoint.as_str(),
            format!("https://gw.example.com/twilio/2010-04-01/Accounts/{SID}/Messages.json")
        );
        assert!(!format!(
            "{adapter:?}{prefixed_dbg:?}",
            prefixed_dbg = settings(&base)
        )
        .contains(TOKEN));
    }

    #[test]
    fn settings_read_from_toml() {
        let s: TwilioSettings = toml::from_str(
            r#"
            account_sid = "AC0123"
            auth_token = "tok"
            messaging_service_sid = "MG0001"
            status_callback = "https://herald.example.com/receipts/twilio"
            timeout_secs = 5
            "#,
        )
        .unwrap();
        assert_eq!(s.base_url.as_str(), "https://api.twilio.com/");
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert!(s.from.is_none());
        assert!(TwilioAdapter::new("tw", &s).is_ok());
        assert!(toml::from_str::<TwilioSettings>(
            "account_sid = \"a\"\nauth_token = \"b\"\nfrom_ = \"x\""
        )
        .is_err());
    }
}
