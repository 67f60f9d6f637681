//! SMS through an HTTP gateway described entirely by configuration: the
//! carrier-direct and finance-approved platforms that marketing SMS goes
//! through in mainland China. Each speaks its own small dialect of the same
//! thing (a JSON or form request with the number, the text, an account and
//! a signature; a JSON answer with a code), so herald lets `herald.toml`
//! spell the dialect out:
//!
//! * `fields`: the request fields, each a Handlebars template over
//!   [`VARIABLES`];
//! * `auth`: none, HTTP basic, or a signature (MD5, SHA-256 or HMAC-SHA256
//!   over chosen fields, with the secret) carried in a field of its own;
//! * `response`: where the success code, the message id and the error text
//!   are in the JSON answer, and `error_codes`: which gateway codes are worth
//!   retrying and which mean the number is bad.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::{Handlebars, PathSeg, RenderErrorReason};
use hmac::{Hmac, Mac};
use md5::Md5;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::super::{Accepted, Adapter, Channel, Failure, Message, Outgoing, SendError, SmsMessage};
use super::{classify_status, classify_transport, retry_after, DEFAULT_TIMEOUT};
use crate::client::types::Mobile;

/// What field templates may use.
///
/// * `to`: E.164, `+8613812345678`; `to_digits`: `8613812345678`;
///   `to_national`: `13812345678` for mainland numbers, otherwise as
///   `to_digits`;
/// * `text`: the SMS text (empty for template SMS), already carrying
///   herald's `【signature】` and opt-out;
/// * `template_code`, `params_json` (`{"name":"张三"}`), `params` (so
///   `{{params.name}}`): for template SMS (empty for text SMS);
/// * `delivery`: herald's delivery id, for the gateway's reference field;
///   `campaign`;
/// * `timestamp`: now, `%Y%m%d%H%M%S` in Asia/Shanghai; `timestamp_ms`:
///   Unix milliseconds (the same instant);
/// * `account`, `sign`: the settings of those names.
pub const VARIABLES: [&str; 13] = [
    "to",
    "to_digits",
    "to_national",
    "text",
    "template_code",
    "params_json",
    "params",
    "delivery",
    "campaign",
    "timestamp",
    "timestamp_ms",
    "account",
    "sign",
];

/// `[providers.NAME]` with `kind = "http_gateway"`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericSettings {
    pub url: Url,
    /// `POST` (the default) or `GET`.
    #[serde(default)]
    pub method: HttpMethod,
    /// Sent as they are (an API key header, say).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How POST carries the fields: `form` (the default) or `json`. GET
    /// puts them in the query string, form-encoded.
    #[serde(default)]
    pub body: BodyFormat,
    /// Field name → Handlebars template over [`VARIABLES`].
    pub fields: BTreeMap<String, String>,
    /// JSON bodies: fields whose rendered text is itself JSON (a number, an
    /// object such as `{{params_json}}`), embedded as such, not as a string.
    #[serde(default)]
    pub raw_json_fields: BTreeSet<String>,
    /// The gateway account, as `{{account}}`.
    #[serde(default)]
    pub account: String,
    /// The SMS signature for gateways that take it apart from the text
    /// (`某某证券`), as `{{sign}}`.
    #[serde(default)]
    pub sign: String,
    #[serde(default)]
    pub auth: GenericAuth,
    pub response: ResponseSpec,
    /// Gateway code → what it means; codes not listed are permanent.
    #[serde(default)]
    pub error_codes: BTreeMap<String, ErrorClass>,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT.as_secs()
}

/// Header values and secrets never appear.
impl fmt::Debug for GenericSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenericSettings")
            .field("url", &self.url.as_str())
            .field("method", &self.method)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body", &self.body)
            .field("fields", &self.fields)
            .field("raw_json_fields", &self.raw_json_fields)
            .field("account", &self.account)
            .field("sign", &self.sign)
            .field("auth", &self.auth)
            .field("response", &self.response)
            .field("error_codes", &self.error_codes)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum HttpMethod {
    #[default]
    #[serde(rename = "POST", alias = "post")]
    Post,
    #[serde(rename = "GET", alias = "get")]
    Get,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    #[default]
    Form,
    Json,
}

/// `auth = { kind = "none" | "basic" | "signature", … }`.
#[derive(Clone, Default, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GenericAuth {
    #[default]
    None,
    Basic {
        username: String,
        password: String,
    },
    Signature(SignatureSpec),
}

impl fmt::Debug for GenericAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"***")
                .finish(),
            Self::Signature(spec) => f.debug_tuple("Signature").field(spec).finish(),
        }
    }
}

/// A hex digest over rendered fields and the secret, sent as a field.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureSpec {
    pub algorithm: SignAlgorithm,
    pub secret: String,
    /// Rendered fields, in this order, joined by `separator` (empty unless
    /// set). With `include_secret` `append` or `prepend`, the secret is one
    /// more piece at that end, joined the same way.
    pub fields: Vec<String>,
    #[serde(default)]
    pub separator: String,
    /// `append` (the default for md5 and sha256) or `prepend`; `key` (the
    /// only choice, and the default, for hmac_sha256).
    #[serde(default)]
    pub include_secret: Option<SecretPlacement>,
    /// The field that carries the signature; `sign` unless set.
    #[serde(default = "default_into")]
    pub into: String,
    /// Upper-case hex (lower-case unless set).
    #[serde(default)]
    pub uppercase: bool,
}

fn default_into() -> String {
    "sign".into()
}

impl fmt::Debug for SignatureSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureSpec")
            .field("algorithm", &self.algorithm)
            .field("secret", &"***")
            .field("fields", &self.fields)
            .field("separator", &self.separator)
            .field("include_secret", &self.include_secret)
            .field("into", &self.into)
            .field("uppercase", &self.uppercase)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignAlgorithm {
    Md5,
    Sha256,
    HmacSha256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretPlacement {
    Append,
    Prepend,
    Key,
}

/// Where things are in the gateway's JSON answer. Paths are dotted
/// (`data.msgid`); a number indexes an array (`result.0.msgid`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// The value that says whether the gateway took the message…
    pub success_path: String,
    /// …and what it is when it did, compared as text (`0`, `true`).
    pub success_value: String,
    /// The gateway's error code, when not at `success_path`.
    #[serde(default)]
    pub code_path: Option<String>,
    /// The gateway's message id; herald's delivery id when absent.
    #[serde(default)]
    pub id_path: Option<String>,
    /// The gateway's explanation, for the error message.
    #[serde(default)]
    pub message_path: Option<String>,
}

/// What a gateway error code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Transient,
    Permanent,
    /// Permanent, and the number itself is bad (empty, not a mobile).
    BadAddress,
}

impl ErrorClass {
    fn failure(self, retry_after: Option<Duration>) -> Failure {
        match self {
            Self::Transient => Failure::Transient { retry_after },
            Self::Permanent => Failure::Permanent { bad_address: false },
            Self::BadAddress => Failure::Permanent { bad_address: true },
        }
    }
}

/// The checked settings, templates compiled.
enum Auth {
    None,
    Basic(String, String),
    Signature(SignatureSpec, SecretPlacement),
}

pub struct GenericAdapter {
    name: String,
    client: reqwest::Client,
    url: Url,
    method: HttpMethod,
    body: BodyFormat,
    headers: HeaderMap,
    templates: Handlebars<'static>,
    fields: Vec<String>,
    raw_json_fields: BTreeSet<String>,
    account: String,
    sign: String,
    auth: Auth,
    response: ResponseSpec,
    error_codes: BTreeMap<String, ErrorClass>,
    /// Whether some field uses the text / the template code or parameters:
    /// a gateway set up for one kind of SMS must not be sent the other
    /// (it would send an empty message).
    takes_text: bool,
    takes_templates: bool,
    /// Removed from anything the gateway says back.
    secrets: Vec<String>,
}

/// Secrets and header values never appear.
impl fmt::Debug for GenericAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenericAdapter")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .field("method", &self.method)
            .field("body", &self.body)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

impl GenericAdapter {
    /// Checks the settings and compiles the field templates; the message
    /// names the setting or field that is wrong.
    pub fn new(name: &str, settings: &GenericSettings) -> Result<Self, String> {
        if !matches!(settings.url.scheme(), "http" | "https") {
            return Err(format!("url {} is not an http(s) URL", settings.url));
        }
        if settings.method == HttpMethod::Get && settings.body == BodyFormat::Json {
            return Err(
                "GET sends the fields in the query string: leave body out or set it to \"form\""
                    .into(),
            );
        }
        if settings.timeout_secs == 0 {
            return Err("timeout_secs must be at least 1".into());
        }
        let headers = headers(&settings.headers)?;

        if settings.fields.is_empty() {
            return Err("fields is empty".into());
        }
        let mut templates = Handlebars::new();
        templates.register_escape_fn(handlebars::no_escape);
        templates.set_strict_mode(true);
        let mut used = BTreeSet::new();
        for (field, source) in &settings.fields {
            if field.trim().is_empty() {
                return Err("fields has an empty field name".into());
            }
            let template = Template::compile_with_name(source, field.clone())
                .map_err(|e| format!("fields.{field}: {e}"))?;
            roots(&template.elements, &mut used);
            templates.register_template(field, template);
        }
        let sample = sample_vars();
        for field in settings.fields.keys() {
            check_render(&templates, field, &sample)?;
        }
        for field in &settings.raw_json_fields {
            if !settings.fields.contains_key(field) {
                return Err(format!("raw_json_fields: '{field}' is not in fields"));
            }
            if settings.body != BodyFormat::Json || settings.method != HttpMethod::Post {
                return Err(format!(
                    "raw_json_fields: '{field}' needs a JSON body (body = \"json\")"
                ));
            }
        }

        let mut secrets: Vec<String> = settings.headers.values().cloned().collect();
        let auth = match &settings.auth {
            GenericAuth::None => Auth::None,
            GenericAuth::Basic { username, password } => {
                if username.is_empty() {
                    return Err("auth.username is empty".into());
                }
                secrets.push(password.clone());
                Auth::Basic(username.clone(), password.clone())
            }
            GenericAuth::Signature(spec) => {
                let placement = check_signature(spec, &settings.fields)?;
                secrets.push(spec.secret.clone());
                Auth::Signature(spec.clone(), placement)
            }
        };
        secrets.retain(|s| !s.is_empty());

        let response = &settings.response;
        check_path("response.success_path", Some(&response.success_path))?;
        check_path("response.code_path", response.code_path.as_ref())?;
        check_path("response.id_path", response.id_path.as_ref())?;
        check_path("response.message_path", response.message_path.as_ref())?;

        Ok(Self {
            name: name.to_owned(),
            client: crate::http::client(Duration::from_secs(settings.timeout_secs)),
            url: settings.url.clone(),
            method: settings.method,
            body: settings.body,
            headers,
            templates,
            fields: settings.fields.keys().cloned().collect(),
            raw_json_fields: settings.raw_json_fields.clone(),
            account: settings.account.clone(),
            sign: settings.sign.clone(),
            auth,
            response: settings.response.clone(),
            error_codes: settings.error_codes.clone(),
            takes_text: used.contains("text"),
            takes_templates: ["template_code", "params_json", "params"]
                .iter()
                .any(|v| used.contains(*v)),
            secrets,
        })
    }

    /// Every field rendered, and the signature added.
    fn render(&self, vars: &Vars<'_>) -> Result<BTreeMap<String, String>, SendError> {
        let mut rendered = BTreeMap::new();
        for field in &self.fields {
            let value = self
                .templates
                .render(field, vars)
                .map_err(|e| SendError::permanent(format!("fields.{field}: {}", e.reason())))?;
            rendered.insert(field.clone(), value);
        }
        if let Auth::Signature(spec, placement) = &self.auth {
            let signature = signature(spec, *placement, &rendered);
            rendered.insert(spec.into.clone(), signature);
        }
        Ok(rendered)
    }

    fn request(
        &self,
        rendered: &BTreeMap<String, String>,
    ) -> Result<reqwest::RequestBuilder, SendError> {
        let request = match (self.method, self.body) {
            (HttpMethod::Get, _) => self.client.get(self.url.clone()).query(rendered),
            (HttpMethod::Post, BodyFormat::Form) => {
                self.client.post(self.url.clone()).form(rendered)
            }
            (HttpMethod::Post, BodyFormat::Json) => {
                let mut body = serde_json::Map::new();
                for (field, value) in rendered {
                    let value = if self.raw_json_fields.contains(field) {
                        serde_json::from_str(value).map_err(|e| {
                            SendError::permanent(format!("fields.{field} is not JSON: {e}"))
                        })?
                    } else {
                        Value::String(value.clone())
                    };
                    body.insert(field.clone(), value);
                }
                self.client.post(self.url.clone()).json(&body)
            }
        };
        let request = request.headers(self.headers.clone());
        Ok(match &self.auth {
            Auth::Basic(username, password) => request.basic_auth(username, Some(password)),
            Auth::None | Auth::Signature(..) => request,
        })
    }

    /// The gateway's answer, `body` already redacted.
    fn classify(
        &self,
        status: StatusCode,
        wait: Option<Duration>,
        body: &str,
        delivery: i64,
    ) -> Result<Accepted, SendError> {
        let json = serde_json::from_str::<Value>(body).ok();
        let spec = &self.response;
        let code_path = spec.code_path.as_deref().unwrap_or(&spec.success_path);
        if !status.is_success() {
            let mut error = classify_status(status, wait, body);
            // A 4xx with a code the operator classified: trust the code.
            if !error.is_transient() {
                let class = json
                    .as_ref()
                    .and_then(|j| lookup(j, code_path))
                    .and_then(|code| self.error_codes.get(&code));
                if let Some(class) = class {
                    error.failure = class.failure(wait);
                }
            }
            return Err(error);
        }
        let Some(json) = json else {
            return Err(SendError::permanent(format!(
                "HTTP {status} but the answer is not JSON: {}",
                snippet(body)
            )));
        };
        if lookup(&json, &spec.success_path).as_deref() == Some(spec.success_value.as_str()) {
            let provider_id = spec
                .id_path
                .as_deref()
                .and_then(|path| lookup(&json, path))
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| delivery.to_string());
            return Ok(Accepted { provider_id });
        }
        let Some(code) = lookup(&json, code_path) else {
            return Err(SendError::permanent(format!(
                "HTTP {status} but no code at '{code_path}': {}",
                snippet(body)
            )));
        };
        let detail = spec
            .message_path
            .as_deref()
            .and_then(|path| lookup(&json, path))
            .map(|m| format!(": {}", snippet(&m)))
            .unwrap_or_default();
        Err(match self.error_codes.get(&code) {
            Some(class) => SendError {
                failure: class.failure(wait),
                message: format!("gateway code {code}{detail}"),
            },
            None => {
                SendError::permanent(format!("gateway code {code} (not in error_codes){detail}"))
            }
        })
    }
}

#[async_trait::async_trait]
impl Adapter for GenericAdapter {
    fn name(&self) -> &str {
        &self.name
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    fn sends_text(&self) -> bool {
        self.takes_text
    }

    fn sends_templates(&self) -> bool {
        self.takes_templates
    }

    async fn send(&self, out: &Outgoing) -> Result<Accepted, SendError> {
        let Message::Sms(sms) = &out.message else {
            return Err(SendError::permanent("an email cannot go by SMS"));
        };
        let to = sms.to();
        let empty = BTreeMap::new();
        let (text, template_code, params) = match sms {
            SmsMessage::Text { text, .. } => {
                if !self.takes_text {
                    return Err(SendError::permanent(format!(
                        "provider {} sends template SMS only (no field uses {{{{text}}}})",
                        self.name
                    )));
                }
                if text.trim().is_empty() {
                    return Err(SendError::permanent(format!(
                        "SMS to {} has no text",
                        to.masked()
                    )));
                }
                (text.as_str(), "", &empty)
            }
            SmsMessage::Template { code, params, .. } => {
                if !self.takes_templates {
                    return Err(SendError::permanent(format!(
                        "provider {} sends text SMS only (no field uses {{{{template_code}}}})",
                        self.name
                    )));
                }
                ("", code.as_str(), params)
            }
        };
        let now = chrono::Utc::now();
        let vars = Vars {
            to: to.as_str(),
            to_digits: digits(to),
            to_national: national(to),
            text,
            template_code,
            params_json: serde_json::to_string(params).unwrap_or_else(|_| "{}".into()),
            params,
            delivery: out.delivery,
            campaign: &out.campaign,
            timestamp: now
                .with_timezone(&chrono_tz::Asia::Shanghai)
                .format("%Y%m%d%H%M%S")
                .to_string(),
            timestamp_ms: now.timestamp_millis(),
            account: &self.account,
            sign: &self.sign,
        };
        let rendered = self.render(&vars)?;
        let response = self
            .request(&rendered)?
            .send()
            .await
            // The URL of a GET carries every field: keep it out of the message.
            .map_err(|e| classify_transport(&e.without_url()))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = response
            .text()
            .await
            .map_err(|e| classify_transport(&e.without_url()))?;
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let body = redact(&body, to, &secrets);
        self.classify(status, wait, &body, out.delivery)
            .map_err(|mut e| {
                e.message = redact(&e.message, to, &secrets);
                e
            })
    }
}

#[derive(Serialize)]
struct Vars<'a> {
    to: &'a str,
    to_digits: &'a str,
    to_national: &'a str,
    text: &'a str,
    template_code: &'a str,
    params_json: String,
    params: &'a BTreeMap<String, String>,
    delivery: i64,
    campaign: &'a str,
    timestamp: String,
    timestamp_ms: i64,
    account: &'a str,
    sign: &'a str,
}

/// `8613812345678`.
fn digits(to: &Mobile) -> &str {
    to.as_str().trim_start_matches('+')
}

/// `13812345678` for mainland numbers; other numbers keep their country code.
fn national(to: &Mobile) -> &str {
    let digits = digits(to);
    match digits.strip_prefix("86") {
        Some(national) if national.len() == 11 => national,
        _ => digits,
    }
}

/// `text` with the recipient's number (in any of its written forms) masked
/// and the secrets (6 characters or more) removed: for what a gateway says back, which often
/// echoes the number and sometimes the request.
pub(super) fn redact(text: &str, to: &Mobile, secrets: &[&str]) -> String {
    let masked = to.masked();
    let mut out = text.replace(to.as_str(), &masked);
    out = out.replace(digits(to), &masked);
    out = out.replace(national(to), &masked);
    // Shorter values (a header `X-Version: 2`) would mangle codes, and are
    // no secrets worth the name.
    for secret in secrets.iter().filter(|s| s.chars().count() >= 6) {
        out = out.replace(secret, "***");
    }
    out
}

fn snippet(s: &str) -> String {
    s.chars().take(300).collect()
}

fn headers(configured: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in configured {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("headers: '{name}' is not a header name"))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| format!("headers.{name}: the value is not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(header, value);
    }
    Ok(headers)
}

/// Renders a field with sample values so that a misspelt variable fails at
/// start-up, not at the first send. Template parameters are only known per
/// message, so a missing `params.x` is fine here.
fn check_render(
    templates: &Handlebars<'static>,
    field: &str,
    sample: &Vars<'_>,
) -> Result<(), String> {
    match templates.render(field, sample) {
        Ok(_) => Ok(()),
        Err(e) => match e.reason() {
            RenderErrorReason::MissingVariable(Some(path))
                if path == "params"
                    || path.starts_with("params.")
                    || path.starts_with("params/") =>
            {
                Ok(())
            }
            RenderErrorReason::MissingVariable(path) => Err(format!(
                "fields.{field}: '{}' is not a variable ({})",
                path.as_deref().unwrap_or("?"),
                VARIABLES.join(", ")
            )),
            reason => Err(format!("fields.{field}: {reason}")),
        },
    }
}

fn sample_vars() -> Vars<'static> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    Vars {
        to: "+8613800000000",
        to_digits: "8613800000000",
        to_national: "13800000000",
        text: "text",
        template_code: "SMS_0",
        params_json: "{}".into(),
        params: &EMPTY,
        delivery: 1,
        campaign: "campaign",
        timestamp: "20240101000000".into(),
        timestamp_ms: 1_704_038_400_000,
        account: "account",
        sign: "sign",
    }
}

/// The first name of every path a template uses (`params` for
/// `{{params.x}}`), helpers' arguments and block bodies included.
fn roots(elements: &[TemplateElement], out: &mut BTreeSet<String>) {
    fn parameter(p: &Parameter, out: &mut BTreeSet<String>) {
        match p {
            Parameter::Name(name) => {
                out.insert(name.clone());
            }
            Parameter::Path(handlebars::Path::Relative((segments, _))) => {
                if let Some(PathSeg::Named(name)) = segments.first() {
                    out.insert(name.clone());
                }
            }
            Parameter::Subexpression(sub) => roots(std::slice::from_ref(&sub.element), out),
            _ => {}
        }
    }
    for element in elements {
        match element {
            TemplateElement::Expression(h)
            | TemplateElement::HtmlExpression(h)
            | TemplateElement::HelperBlock(h) => {
                parameter(&h.name, out);
                h.params.iter().for_each(|p| parameter(p, out));
                h.hash.values().for_each(|p| parameter(p, out));
                for t in h.template.iter().chain(h.inverse.iter()) {
                    roots(&t.elements, out);
                }
            }
            TemplateElement::DecoratorExpression(d)
            | TemplateElement::DecoratorBlock(d)
            | TemplateElement::PartialExpression(d)
            | TemplateElement::PartialBlock(d) => {
                d.params.iter().for_each(|p| parameter(p, out));
                d.hash.values().for_each(|p| parameter(p, out));
                if let Some(t) = &d.template {
                    roots(&t.elements, out);
                }
            }
            _ => {}
        }
    }
}

fn check_signature(
    spec: &SignatureSpec,
    fields: &BTreeMap<String, String>,
) -> Result<SecretPlacement, String> {
    if spec.secret.is_empty() {
        return Err("auth.secret is empty".into());
    }
    if spec.fields.is_empty() {
        return Err("auth.fields is empty: say which fields are signed".into());
    }
    for field in &spec.fields {
        if !fields.contains_key(field) {
            return Err(format!("auth.fields: '{field}' is not in fields"));
        }
    }
    if spec.into.trim().is_empty() {
        return Err("auth.into is empty".into());
    }
    if fields.contains_key(&spec.into) {
        return Err(format!(
            "auth.into: '{}' is also in fields; the signature fills it, so remove it there",
            spec.into
        ));
    }
    let placement =
        match (spec.algorithm, spec.include_secret) {
            (SignAlgorithm::HmacSha256, None | Some(SecretPlacement::Key)) => SecretPlacement::Key,
            (SignAlgorithm::HmacSha256, Some(_)) => {
                return Err(
                    "auth.include_secret: hmac_sha256 uses the secret as its key (\"key\")".into(),
                )
            }
            (_, Some(SecretPlacement::Key)) => return Err(
                "auth.include_secret: md5 and sha256 have no key; use \"append\" or \"prepend\""
                    .into(),
            ),
            (_, None) => SecretPlacement::Append,
            (_, Some(placement)) => placement,
        };
    Ok(placement)
}

/// The hex digest `spec` describes over the rendered fields.
fn signature(
    spec: &SignatureSpec,
    placement: SecretPlacement,
    rendered: &BTreeMap<String, String>,
) -> String {
    let mut pieces: Vec<&str> = spec
        .fields
        .iter()
        .map(|f| rendered.get(f).map_or("", String::as_str))
        .collect();
    match placement {
        SecretPlacement::Append => pieces.push(&spec.secret),
        SecretPlacement::Prepend => pieces.insert(0, &spec.secret),
        SecretPlacement::Key => {}
    }
    let message = pieces.join(&spec.separator);
    let digest: Vec<u8> = match spec.algorithm {
        SignAlgorithm::Md5 => Md5::digest(message.as_bytes()).to_vec(),
        SignAlgorithm::Sha256 => Sha256::digest(message.as_bytes()).to_vec(),
        SignAlgorithm::HmacSha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(spec.secret.as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(message.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    if spec.uppercase {
        hex.to_ascii_uppercase()
    } else {
        hex
    }
}

fn check_path(setting: &str, path: Option<&String>) -> Result<(), String> {
    match path {
        Some(p) if p.split('.').any(|segment| segment.trim().is_empty()) => Err(format!(
            "{setting}: '{p}' is not a dotted path (data.msgid)"
        )),
        _ => Ok(()),
    }
}

/// The value at a dotted path, as text: strings as they are, numbers and
/// booleans written out; null, objects and arrays are not codes.
fn lookup(json: &Value, path: &str) -> Option<String> {
    let mut value = json;
    for segment in path.split('.') {
        value = match value {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Object(_) | Value::Array(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::{Query, State};
    use axum::http::{HeaderMap as Headers, StatusCode as Status};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use axum::{Form, Json, Router};
    use base64::Engine;
    use serde_json::json;

    use super::*;

    const NUMBER: &str = "+8613812345678";
    const API_KEY: &str = "key-abc-123";
    const MD5_SECRET: &str = "md5-secret-xyz";
    const HMAC_SECRET: &str = "hmac-secret-xyz";

    type Seen = Arc<Mutex<Vec<(&'static str, Value)>>>;

    /// How the test gateway answers, chosen by the message text.
    async fn answer(text: &str) -> Response {
        match text {
            "bad number" => {
                Json(json!({"code": "1001", "msg": "invalid mobile 13812345678"})).into_response()
            }
            "busy" => Json(json!({"code": 1002, "msg": "flow control"})).into_response(),
            "unknown" => Json(json!({"code": "9999", "msg": "something else"})).into_response(),
            "refused" => (Status::BAD_REQUEST, Json(json!({"code": "1001"}))).into_response(),
            "down" => (Status::SERVICE_UNAVAILABLE, "maintenance").into_response(),
            "html" => "<html>ok</html>".into_response(),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(4)).await;
                Json(json!({"code": "0", "data": {"msgid": "late"}})).into_response()
            }
            _ => Json(json!({"code": "0", "data": {"msgid": "m-1"}})).into_response(),
        }
    }

    /// JSON body, an API key header, and an MD5 signature checked here
    /// independently: upper-case hex of md5(account + timestamp + mobile +
    /// secret).
    async fn json_md5(
        State(seen): State<Seen>,
        headers: Headers,
        Json(body): Json<Value>,
    ) -> Response {
        if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
            return (Status::UNAUTHORIZED, "no key").into_response();
        }
        let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
        let expected = format!(
            "{:X}",
            md5::Md5::digest(
                format!(
                    "{}{}{}{MD5_SECRET}",
                    field("account"),
                    field("timestamp"),
                    field("mobile")
                )
                .as_bytes()
            )
        );
        if field("sign") != expected {
            return Json(json!({"code": "2001", "msg": "signature mismatch"})).into_response();
        }
        seen.lock().unwrap().push(("json", body.clone()));
        answer(&field("content")).await
    }

    /// Form body and an HMAC-SHA256 signature checked here independently:
    /// hex of hmac(secret, userid & mobile & ts).
    async fn form_hmac(
        State(seen): State<Seen>,
        Form(form): Form<BTreeMap<String, String>>,
    ) -> Response {
        let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).unwrap();
        mac.update(format!("{}&{}&{}", form["userid"], form["mobile"], form["ts"]).as_bytes());
        let expected = format!("{:x}", mac.finalize().into_bytes());
        if form.get("signature") != Some(&expected) {
            return Json(json!({"status": 41, "error": "bad signature"})).into_response();
        }
        let text = form["content"].clone();
        seen.lock().unwrap().push(("form", json!(form)));
        match text.as_str() {
            "down" => (Status::BAD_GATEWAY, "").into_response(),
            _ => Json(json!({"status": 0, "result": [{"id": "f-9"}]})).into_response(),
        }
    }

    /// GET with the fields in the query string, basic auth.
    async fn get_basic(
        State(seen): State<Seen>,
        headers: Headers,
        Query(query): Query<BTreeMap<String, String>>,
    ) -> Response {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("herald:pa55word")
        );
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&expected) {
            return (Status::UNAUTHORIZED, "who are you").into_response();
        }
        seen.lock().unwrap().push(("get", json!(query)));
        Json(json!({"ok": true})).into_response()
    }

    async fn echo(State(seen): State<Seen>, Json(body): Json<Value>) -> Response {
        seen.lock().unwrap().push(("echo", body));
        Json(json!({"code": "0"})).into_response()
    }

    async fn serve() -> (Url, Seen) {
        let seen = Seen::default();
        let app = Router::new()
            .route("/v1/sms/send", post(json_md5))
            .route("/form/send", post(form_hmac))
            .route("/get/send", get(get_basic))
            .route("/echo", post(echo))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (Url::parse(&format!("http://{addr}/")).unwrap(), seen)
    }

    fn settings(toml_text: &str, base: &Url) -> GenericSettings {
        toml::from_str(&toml_text.replace("BASE/", base.as_str())).unwrap()
    }

    const JSON_MD5: &str = r#"
        url = "BASE/v1/sms/send"
        body = "json"
        account = "zq001"
        sign = "某某证券"
        timeout_secs = 1
        [headers]
        X-Api-Key = "key-abc-123"
        [fields]
        account = "{{account}}"
        mobile = "{{to_national}}"
        content = "{{text}}"
        msgid = "{{delivery}}"
        timestamp = "{{timestamp}}"
        signname = "{{sign}}"
        [auth]
        kind = "signature"
        algorithm = "md5"
        secret = "md5-secret-xyz"
        fields = ["account", "timestamp", "mobile"]
        include_secret = "append"
        into = "sign"
        uppercase = true
        [response]
        success_path = "code"
        success_value = "0"
        id_path = "data.msgid"
        message_path = "msg"
        [error_codes]
        1001 = "bad_address"
        1002 = "transient"
        2001 = "permanent"
    "#;

    const FORM_HMAC: &str = r#"
        url = "BASE/form/send"
        account = "u-7"
        [fields]
        userid = "{{account}}"
        mobile = "{{to_digits}}"
        content = "{{text}}"
        ts = "{{timestamp_ms}}"
        ref = "{{delivery}}"
        [auth]
        kind = "signature"
        algorithm = "hmac_sha256"
        secret = "hmac-secret-xyz"
        fields = ["userid", "mobile", "ts"]
        separator = "&"
        into = "signature"
        [response]
        success_path = "status"
        success_value = "0"
        id_path = "result.0.id"
        message_path = "error"
    "#;

    const GET_TEMPLATE: &str = r#"
        url = "BASE/get/send"
        method = "GET"
        account = "herald"
        [fields]
        user = "{{account}}"
        phone = "{{to_national}}"
        tpl = "{{template_code}}"
        args = "{{params_json}}"
        name = "{{params.name}}"
        [auth]
        kind = "basic"
        username = "herald"
        password = "pa55word"
        [response]
        success_path = "ok"
        success_value = "true"
    "#;

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

    fn template(code: &str, params: &[(&str, &str)]) -> Outgoing {
        Outgoing {
            message: Message::Sms(SmsMessage::Template {
                to: Mobile::parse(NUMBER).unwrap(),
                code: code.into(),
                params: params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
            ..text("")
        }
    }

    async fn send(config: &str, base: &Url, out: &Outgoing) -> Result<Accepted, SendError> {
        GenericAdapter::new("gw", &settings(config, base))
            .unwrap()
            .send(out)
            .await
    }

    #[tokio::test]
    async fn a_json_request_signed_with_md5_is_accepted_with_the_gateway_id() {
        let (base, seen) = serve().await;
        let accepted = send(JSON_MD5, &base, &text("【某某证券】早盘提示"))
            .await
            .unwrap();
        assert_eq!(accepted.provider_id, "m-1");
        let (_, body) = seen.lock().unwrap().pop().unwrap();
        assert_eq!(body["mobile"], "13812345678");
        assert_eq!(body["content"], "【某某证券】早盘提示");
        assert_eq!(body["msgid"], "4711");
        assert_eq!(body["account"], "zq001");
        assert_eq!(body["signname"], "某某证券");
        // Shanghai wall-clock time, UTC+8 all year.
        let sent = chrono::NaiveDateTime::parse_from_str(
            body["timestamp"].as_str().unwrap(),
            "%Y%m%d%H%M%S",
        )
        .unwrap();
        let shanghai = chrono::Utc::now().naive_utc() + chrono::Duration::hours(8);
        assert!(
            (shanghai - sent).num_seconds().abs() < 60,
            "{sent} vs {shanghai}"
        );
    }

    #[tokio::test]
    async fn a_form_request_signed_with_hmac_sha256_is_accepted() {
        let (base, seen) = serve().await;
        let accepted = send(FORM_HMAC, &base, &text("您好 & 再见")).await.unwrap();
        assert_eq!(accepted.provider_id, "f-9");
        let (_, form) = seen.lock().unwrap().pop().unwrap();
        assert_eq!(form["mobile"], "8613812345678");
        assert_eq!(form["content"], "您好 & 再见");
        assert_eq!(form["ref"], "4711");
        let ms: i64 = form["ts"].as_str().unwrap().parse().unwrap();
        assert!((chrono::Utc::now().timestamp_millis() - ms).abs() < 60_000);
    }

    #[tokio::test]
    async fn a_get_request_carries_a_template_in_the_query_with_basic_auth() {
        let (base, seen) = serve().await;
        let out = template("SMS_100", &[("name", "张三"), ("code", "600000")]);
        let accepted = send(GET_TEMPLATE, &base, &out).await.unwrap();
        // No id_path: herald's delivery id stands for the message.
        assert_eq!(accepted.provider_id, "4711");
        let (_, query) = seen.lock().unwrap().pop().unwrap();
        assert_eq!(query["phone"], "13812345678");
        assert_eq!(query["tpl"], "SMS_100");
        assert_eq!(query["args"], r#"{"code":"600000","name":"张三"}"#);
        assert_eq!(query["name"], "张三");
    }

    #[tokio::test]
    async fn raw_json_fields_are_embedded_as_json() {
        let (base, seen) = serve().await;
        let config = r#"
            url = "BASE/echo"
            body = "json"
            raw_json_fields = ["params", "ref"]
            [fields]
            to = "{{to}}"
            template = "{{template_code}}"
            params = "{{params_json}}"
            ref = "{{delivery}}"
            [response]
            success_path = "code"
            success_value = "0"
        "#;
        let out = template("T1", &[("name", "李四\"引号\"")]);
        send(config, &base, &out).await.unwrap();
        let (_, body) = seen.lock().unwrap().pop().unwrap();
        assert_eq!(
            body,
            json!({"to": NUMBER, "template": "T1", "params": {"name": "李四\"引号\""}, "ref": 4711})
        );
    }

    #[tokio::test]
    async fn a_mapped_code_marks_the_number_bad_without_logging_it() {
        let (base, _) = serve().await;
        let e = send(JSON_MD5, &base, &text("bad number"))
            .await
            .unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: true });
        assert!(e.message.contains("1001"), "{}", e.message);
        assert!(e.message.contains("+86138****5678"), "{}", e.message);
        assert!(!e.message.contains("13812345678"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_numeric_code_mapped_transient_is_retried() {
        let (base, _) = serve().await;
        let e = send(JSON_MD5, &base, &text("busy")).await.unwrap_err();
        assert_eq!(e.failure, Failure::Transient { retry_after: None });
        assert!(e.message.contains("flow control"), "{}", e.message);
    }

    #[tokio::test]
    async fn an_unmapped_code_is_permanent() {
        let (base, _) = serve().await;
        let e = send(JSON_MD5, &base, &text("unknown")).await.unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: false });
        assert!(e.message.contains("9999"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_client_error_with_a_mapped_code_follows_the_mapping() {
        let (base, _) = serve().await;
        let e = send(JSON_MD5, &base, &text("refused")).await.unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: true });
        assert!(e.message.starts_with("HTTP 400"), "{}", e.message);
    }

    #[tokio::test]
    async fn an_unavailable_gateway_is_transient() {
        let (base, _) = serve().await;
        let e = send(JSON_MD5, &base, &text("down")).await.unwrap_err();
        assert_eq!(e.failure, Failure::Transient { retry_after: None });
        let e = send(FORM_HMAC, &base, &text("down")).await.unwrap_err();
        assert!(e.is_transient(), "{e:?}");
    }

    #[tokio::test]
    async fn a_gateway_slower_than_the_timeout_is_transient() {
        let (base, _) = serve().await;
        let e = send(JSON_MD5, &base, &text("slow")).await.unwrap_err();
        assert!(e.is_transient(), "{e:?}");
        assert!(e.message.contains("timed out"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_success_status_without_json_is_permanent() {
        let (base, _) = serve().await;
        let e = send(JSON_MD5, &base, &text("html")).await.unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: false });
        assert!(e.message.contains("not JSON"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_wrong_secret_fails_the_gateway_check_and_stays_secret() {
        let (base, seen) = serve().await;
        let config = JSON_MD5.replace("md5-secret-xyz", "not-the-secret");
        let e = send(&config, &base, &text("hello")).await.unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: false });
        assert!(e.message.contains("signature mismatch"), "{}", e.message);
        assert!(seen.lock().unwrap().is_empty());
        let config = FORM_HMAC.replace("hmac-secret-xyz", "not-the-secret");
        let e = send(&config, &base, &text("hello")).await.unwrap_err();
        assert!(
            e.message.contains("41") && e.message.contains("bad signature"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn kinds_of_sms_the_fields_do_not_carry_are_refused_without_a_request() {
        let (base, seen) = serve().await;
        let e = send(JSON_MD5, &base, &template("T1", &[]))
            .await
            .unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: false });
        let e = send(GET_TEMPLATE, &base, &text("hello")).await.unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: false });
        // A template parameter the message lacks.
        let e = send(GET_TEMPLATE, &base, &template("T1", &[]))
            .await
            .unwrap_err();
        assert!(e.message.contains("fields.name"), "{}", e.message);
        assert!(seen.lock().unwrap().is_empty());
    }

    fn refused(config: &str) -> String {
        let base = Url::parse("http://127.0.0.1:1/").unwrap();
        GenericAdapter::new("gw", &settings(config, &base)).unwrap_err()
    }

    #[test]
    fn settings_are_checked_and_errors_name_the_setting() {
        let e = refused(&JSON_MD5.replace("{{to_national}}", "{{mobil}}"));
        assert!(e.contains("fields.mobile") && e.contains("mobil"), "{e}");
        let e = refused(&JSON_MD5.replace("{{text}}", "{{#if text}}{{text}}"));
        assert!(e.contains("fields.content"), "{e}");
        let e = refused(&JSON_MD5.replace(
            r#"["account", "timestamp", "mobile"]"#,
            r#"["account", "phone"]"#,
        ));
        assert!(e.contains("auth.fields") && e.contains("phone"), "{e}");
        let e = refused(&JSON_MD5.replace(r#"into = "sign""#, r#"into = "account""#));
        assert!(e.contains("auth.into"), "{e}");
        let e =
            refused(&JSON_MD5.replace(r#"include_secret = "append""#, r#"include_secret = "key""#));
        assert!(e.contains("auth.include_secret"), "{e}");
        let e = refused(&FORM_HMAC.replace("separator", "include_secret = \"append\"\nseparator"));
        assert!(e.contains("auth.include_secret"), "{e}");
        let e =
            refused(&GET_TEMPLATE.replace("method = \"GET\"", "method = \"GET\"\nbody = \"json\""));
        assert!(e.contains("GET"), "{e}");
        let e = refused(&FORM_HMAC.replace("[fields]", "raw_json_fields = [\"ref\"]\n[fields]"));
        assert!(e.contains("raw_json_fields"), "{e}");
        let e = refused(&JSON_MD5.replace("X-Api-Key", "\"X Api Key\""));
        assert!(e.contains("headers"), "{e}");
        let e =
            refused(&JSON_MD5.replace(r#"id_path = "data.msgid""#, r#"id_path = "data..msgid""#));
        assert!(e.contains("response.id_path"), "{e}");
        assert!(!e.contains(API_KEY) && !e.contains(MD5_SECRET));
    }

    #[test]
    fn settings_parse_strictly_and_debug_hides_secrets() {
        let base = Url::parse("http://127.0.0.1:1/").unwrap();
        let s = settings(JSON_MD5, &base);
        assert_eq!(s.method, HttpMethod::Post);
        assert_eq!(s.error_codes["1001"], ErrorClass::BadAddress);
        let shown = format!("{s:?}{:?}", GenericAdapter::new("gw", &s).unwrap());
        assert!(
            !shown.contains(MD5_SECRET) && !shown.contains(API_KEY),
            "{shown}"
        );
        let shown = format!("{:?}", settings(GET_TEMPLATE, &base));
        assert!(!shown.contains("pa55word"), "{shown}");
        let parse = |config: String| {
            toml::from_str::<GenericSettings>(&config.replace("BASE/", base.as_str()))
                .map_err(|e| e.to_string())
        };
        let e = parse(JSON_MD5.replace("uppercase", "upper_case")).unwrap_err();
        assert!(e.contains("upper_case"), "{e}");
        let e = parse(GET_TEMPLATE.replace("username", "user")).unwrap_err();
        assert!(e.contains("user"), "{e}");
        let e = parse(JSON_MD5.replace("1002 = \"transient\"", "1002 = \"later\"")).unwrap_err();
        assert!(e.contains("later"), "{e}");
        let get = parse(GET_TEMPLATE.replace("\"GET\"", "\"get\"")).unwrap();
        assert_eq!(get.method, HttpMethod::Get);
        assert!(parse(GET_TEMPLATE.replace("\"GET\"", "\"PUT\"")).is_err());
        assert!(parse(GET_TEMPLATE.to_owned()).is_ok());
    }

    /// As the provider table would read it: `kind` chooses the adapter.
    #[test]
    fn a_provider_table_with_a_kind_reads_into_the_settings() {
        #[allow(dead_code)]
        #[derive(Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        enum Provider {
            HttpGateway(GenericSettings),
            Twilio(super::super::twilio::TwilioSettings),
        }
        let base = Url::parse("http://127.0.0.1:1/").unwrap();
        let table = format!("kind = \"http_gateway\"\n{JSON_MD5}").replace("BASE/", base.as_str());
        assert!(matches!(
            toml::from_str::<Provider>(&table).unwrap(),
            Provider::HttpGateway(_)
        ));
        let table =
            "kind = \"twilio\"\naccount_sid = \"AC1\"\nauth_token = \"t\"\nfrom = \"+15005550006\"";
        assert!(matches!(
            toml::from_str::<Provider>(table).unwrap(),
            Provider::Twilio(_)
        ));
    }

    #[test]
    fn signatures_follow_the_spec() {
        let spec = |algorithm, include_secret, uppercase| SignatureSpec {
            algorithm,
            secret: "key".into(),
            fields: vec!["a".into(), "b".into()],
            separator: String::new(),
            include_secret,
            into: "sign".into(),
            uppercase,
        };
        let rendered: BTreeMap<String, String> =
            [("a".into(), "a".into()), ("b".into(), "bc".into())].into();
        // md5("abc"), md5("keyabc"), sha256("abckey"), HMAC-SHA256("key", "abc").
        let s = spec(SignAlgorithm::Md5, None, false);
        let mut no_secret = s.clone();
        no_secret.secret = String::new();
        assert_eq!(
            signature(&no_secret, SecretPlacement::Append, &rendered),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            signature(
                &spec(SignAlgorithm::Md5, None, true),
                SecretPlacement::Prepend,
                &rendered
            ),
            format!("{:X}", Md5::digest(b"keyabc"))
        );
        assert_eq!(
            signature(
                &spec(SignAlgorithm::Sha256, None, false),
                SecretPlacement::Append,
                &rendered
            ),
            format!("{:x}", Sha256::digest(b"abckey"))
        );
        assert_eq!(
            signature(
                &spec(SignAlgorithm::HmacSha256, None, false),
                SecretPlacement::Key,
                &rendered
            ),
            "9c196e32dc0175f86f4b1cb89289d6619de6bee699e4c378e68309ed97a1a6ab"
        );
    }

    #[test]
    fn paths_numbers_and_redaction() {
        let j = json!({"code": 0, "ok": false, "data": {"list": [{"id": "x"}]}, "n": null});
        assert_eq!(lookup(&j, "code").as_deref(), Some("0"));
        assert_eq!(lookup(&j, "ok").as_deref(), Some("false"));
        assert_eq!(lookup(&j, "data.list.0.id").as_deref(), Some("x"));
        assert_eq!(lookup(&j, "data.list.1.id"), None);
        assert_eq!(lookup(&j, "n"), None);
        assert_eq!(lookup(&j, "data"), None);
        let to = Mobile::parse(NUMBER).unwrap();
        assert_eq!(national(&to), "13812345678");
        assert_eq!(digits(&to), "8613812345678");
        let abroad = Mobile::parse("+14155550100").unwrap();
        assert_eq!(national(&abroad), "14155550100");
        assert_eq!(
            redact(
                "to +8613812345678 / 8613812345678 / 13812345678 key s3cr3t code 2001",
                &to,
                &["s3cr3t", "2"]
            ),
            "to +86138****5678 / +86138****5678 / +86138****5678 key *** code 2001"
        );
    }
}
