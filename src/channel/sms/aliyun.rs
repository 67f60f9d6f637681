//! Alibaba Cloud SMS (阿里云短信服务): `SendSms` of the dysmsapi product,
//! API version 2017-05-25, signed with ACS3-HMAC-SHA256 (Alibaba's V3
//! signature). Alibaba sends only pre-approved templates under an approved
//! sign name (签名), so this adapter takes [`SmsMessage::Template`] only.
//!
//! The request is RPC style: a POST to `/` with the parameters in the query
//! string and an empty body. [`authorization`] is the signature as a pure
//! function; `tests/fixtures/aliyun/send_sms_signature.json`, produced with
//! Alibaba's own Python SDK, pins it.
//!
//! Answers: `{"Code":"OK","BizId":…}` is accepted; throttling codes are
//! transient, an illegal number is permanent and marks the address, other
//! codes are permanent; HTTP 429 and 5xx are transient like every gateway's.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use super::super::{Accepted, Adapter, Channel, Failure, Message, Outgoing, SendError, SmsMessage};
use super::{classify_status, classify_transport, retry_after, DEFAULT_TIMEOUT};
use crate::client::types::Mobile;

/// Alibaba's public endpoint for the SMS product.
pub const DEFAULT_ENDPOINT: &str = "https://dysmsapi.aliyuncs.com";

const ACTION: &str = "SendSms";
const API_VERSION: &str = "2017-05-25";
const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// An account, its sign name, and where to reach Alibaba.
#[derive(Clone)]
pub struct AliyunSettings {
    /// Default [`DEFAULT_ENDPOINT`].
    pub endpoint: Url,
    pub access_key_id: String,
    pub access_key_secret: String,
    /// The approved 签名 shown in 【】 before every message, e.g. 某某证券.
    pub sign_name: String,
    pub timeout: Duration,
}

impl AliyunSettings {
    /// The public endpoint and the shared gateway timeout.
    pub fn new(access_key_id: &str, access_key_secret: &str, sign_name: &str) -> Self {
        Self {
            endpoint: Self::default_endpoint(),
            access_key_id: access_key_id.to_owned(),
            access_key_secret: access_key_secret.to_owned(),
            sign_name: sign_name.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn default_endpoint() -> Url {
        Url::parse(DEFAULT_ENDPOINT).expect("the default endpoint is a URL")
    }
}

/// Never prints the secret.
impl fmt::Debug for AliyunSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AliyunSettings")
            .field("endpoint", &self.endpoint.as_str())
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .field("sign_name", &self.sign_name)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct AliyunAdapter {
    name: String,
    settings: AliyunSettings,
    client: reqwest::Client,
}

impl AliyunAdapter {
    pub fn new(name: &str, settings: AliyunSettings) -> Self {
        Self {
            name: name.to_owned(),
            client: crate::http::client(settings.timeout),
            settings,
        }
    }
}

impl fmt::Debug for AliyunAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AliyunAdapter")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish()
    }
}

#[async_trait::async_trait]
impl Adapter for AliyunAdapter {
    fn name(&self) -> &str {
        &self.name
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    fn sends_text(&self) -> bool {
        false
    }

    fn sends_templates(&self) -> bool {
        true
    }

    async fn send(&self, message: &Outgoing) -> Result<Accepted, SendError> {
        let (params, to) = send_sms_params(&self.settings.sign_name, message)?;
        let redact = Redact::new(to);
        let request = signed_request(
            &self.settings,
            &params,
            &utc_timestamp(chrono::Utc::now()),
            &new_nonce(),
        );
        let mut builder = self.client.post(request.url).body(Vec::new());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = builder
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| redact.error(classify_transport(&e.without_url())))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = response
            .text()
            .await
            .map_err(|e| redact.error(classify_transport(&e.without_url())))?;
        classify_answer(status, wait, &body).map_err(|e| redact.error(e))
    }
}

/// The `SendSms` query parameters for one message, and its recipient.
fn send_sms_params<'a>(
    sign_name: &str,
    message: &'a Outgoing,
) -> Result<(BTreeMap<String, String>, &'a Mobile), SendError> {
    let (to, code, params) = match &message.message {
        Message::Sms(SmsMessage::Template { to, code, params }) => (to, code, params),
        Message::Sms(SmsMessage::Text { to, .. }) => {
            return Err(SendError::permanent(format!(
                "Alibaba Cloud sends approved templates only, not free text (to {}): \
                 configure an Alibaba template code (TemplateCode) for this campaign's SMS",
                to.masked()
            )))
        }
        Message::Email(_) => {
            return Err(SendError::permanent(
                "Alibaba Cloud SMS cannot send an email message",
            ))
        }
    };
    if code.trim().is_empty() {
        return Err(SendError::permanent(format!(
            "Alibaba Cloud SMS to {}: the template code is empty",
            to.masked()
        )));
    }
    if sign_name.trim().is_empty() {
        return Err(SendError::permanent(
            "Alibaba Cloud SMS: no sign name (签名) is configured",
        ));
    }
    let template_param =
        serde_json::to_string(params).expect("a map of strings always serializes to JSON");
    let query = BTreeMap::from([
        ("PhoneNumbers".to_owned(), phone_numbers(to)),
        ("SignName".to_owned(), sign_name.to_owned()),
        ("TemplateCode".to_owned(), code.trim().to_owned()),
        ("TemplateParam".to_owned(), template_param),
        ("OutId".to_owned(), message.delivery.to_string()),
    ]);
    Ok((query, to))
}

/// `PhoneNumbers` as Alibaba wants it: the 11-digit national number for the
/// mainland; otherwise the country code and number, without `+` or `00`.
fn phone_numbers(to: &Mobile) -> String {
    let e164 = to.as_str();
    match e164.strip_prefix("+86") {
        Some(national) => national.to_owned(),
        None => e164.trim_start_matches('+').to_owned(),
    }
}

/// A request ready to send: the URL with its query, and the headers the
/// signature covers plus `Authorization`.
#[derive(Debug)]
struct SignedRequest {
    url: Url,
    headers: Vec<(String, String)>,
}

/// Deterministic given the date and nonce, so tests can pin it.
fn signed_request(
    settings: &AliyunSettings,
    params: &BTreeMap<String, String>,
    date: &str,
    nonce: &str,
) -> SignedRequest {
    let mut url = settings.endpoint.clone();
    url.set_path("/");
    url.set_fragment(None);
    url.set_query(Some(&canonical_query(params)));
    let mut headers = vec![
        ("host".to_owned(), host_header(&url)),
        ("x-acs-action".to_owned(), ACTION.to_owned()),
        ("x-acs-content-sha256".to_owned(), sha256_hex(b"")),
        ("x-acs-date".to_owned(), date.to_owned()),
        ("x-acs-signature-nonce".to_owned(), nonce.to_owned()),
        ("x-acs-version".to_owned(), API_VERSION.to_owned()),
    ];
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let auth = authorization(
        "POST",
        "/",
        params,
        &pairs,
        b"",
        &settings.access_key_id,
        &settings.access_key_secret,
    );
    headers.push(("authorization".to_owned(), auth));
    SignedRequest { url, headers }
}

/// What the HTTP client puts in `Host`: the port only when not the
/// scheme's default.
fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// `x-acs-date`: ISO 8601 in UTC, to the second.
fn utc_timestamp(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `x-acs-signature-nonce`: 128 random bits, so no two requests share one.
fn new_nonce() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The ACS3-HMAC-SHA256 `Authorization` header for a request: a pure
/// function of what is sent. Every header given is signed (names are
/// lowercased, values trimmed); pass `host`, the `x-acs-*` headers and
/// `content-type` if one is sent.
pub fn authorization(
    method: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    headers: &[(&str, &str)],
    body: &[u8],
    access_key_id: &str,
    access_key_secret: &str,
) -> String {
    let (canonical, signed_headers) = canonical_request(method, path, query, headers, body);
    let signature = hmac_sha256_hex(access_key_secret, &string_to_sign(&canonical));
    format!("{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}")
}

/// The canonical request and the `;`-joined signed header names.
fn canonical_request(
    method: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (String, String) {
    let mut by_name: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, value) in headers {
        by_name
            .entry(name.trim().to_ascii_lowercase())
            .or_default()
            .push(value.trim());
    }
    let mut canonical_headers = String::new();
    for (name, values) in &mut by_name {
        values.sort_unstable();
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    let signed_headers = by_name
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(";");
    let path = if path.is_empty() { "/" } else { path };
    let canonical = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        percent_encode(path, true),
        canonical_query(query),
        sha256_hex(body)
    );
    (canonical, signed_headers)
}

fn string_to_sign(canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// Keys and values percent-encoded (RFC 3986, `~` kept), sorted by key.
fn canonical_query(query: &BTreeMap<String, String>) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (percent_encode(k, false), percent_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Everything but `A-Z a-z 0-9 - _ . ~` (and `/` in a path) as `%XX`, over
/// UTF-8.
fn percent_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hmac_sha256_hex(key: &str, message: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(message.as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Alibaba's answer, success or error alike.
#[derive(Debug, Default, Deserialize)]
struct Answer {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
    #[serde(rename = "BizId")]
    biz_id: Option<String>,
    #[serde(rename = "RequestId")]
    request_id: Option<String>,
}

/// An HTTP answer becomes `Accepted` or a classified error.
fn classify_answer(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &str,
) -> Result<Accepted, SendError> {
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Err(classify_status(status, retry_after, body));
    }
    let answer: Answer = match serde_json::from_str(body) {
        Ok(a) => a,
        Err(_) if !status.is_success() => return Err(classify_status(status, retry_after, body)),
        Err(_) => {
            let snippet: String = body.chars().take(200).collect();
            return Err(SendError::permanent(format!(
                "HTTP {status} but not Alibaba's JSON answer: {snippet}"
            )));
        }
    };
    let Some(code) = answer.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(classify_status(status, retry_after, body));
    };
    if code == "OK" && status.is_success() {
        // BizId is what delivery receipts (SmsReport) carry; it is always
        // there on success, RequestId is only a fallback.
        let provider_id = answer
            .biz_id
            .filter(|id| !id.is_empty())
            .or(answer.request_id)
            .unwrap_or_default();
        return Ok(Accepted { provider_id });
    }
    let failure = match code_class(code) {
        CodeClass::Transient => Failure::Transient { retry_after },
        CodeClass::BadAddress => Failure::Permanent { bad_address: true },
        CodeClass::Permanent => Failure::Permanent { bad_address: false },
    };
    let text: String = answer
        .message
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    let request_id = answer
        .request_id
        .map(|id| format!(" (RequestId {id})"))
        .unwrap_or_default();
    Err(SendError {
        failure,
        message: format!("HTTP {}: {code}: {text}{request_id}", status.as_u16()),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeClass {
    Transient,
    BadAddress,
    Permanent,
}

/// Alibaba's error codes by what to do about them.
fn code_class(code: &str) -> CodeClass {
    match code {
        // Flow control: per number and template (BUSINESS_LIMIT_CONTROL),
        // per day or month for the account, API throttling.
        c if c.starts_with("Throttling")
            || c.ends_with("LIMIT_CONTROL")
            || c.starts_with("isv.BUSINESS_LIMIT")
            || c.starts_with("BUSINESS_LIMIT") =>
        {
            CodeClass::Transient
        }
        // Alibaba's own trouble; a fresh nonce fixes a reused one.
        "isp.SYSTEM_ERROR" | "isp.GATEWAY_ERROR" | "isp.UNKNOWN" | "ServiceUnavailable"
        | "InternalError" | "SignatureNonceUsed" => CodeClass::Transient,
        "isv.MOBILE_NUMBER_ILLEGAL" => CodeClass::BadAddress,
        // Template, sign name, parameters, account, credentials
        // (InvalidAccessKeyId.*, SignatureDoesNotMatch) and anything unknown:
        // retrying sends the same thing and fails the same way.
        _ => CodeClass::Permanent,
    }
}

/// Keeps the full number out of error messages: whatever the HTTP client or
/// Alibaba echoes, only the masked form remains.
struct Redact {
    full: String,
    sent: String,
    masked: String,
}

impl Redact {
    fn new(to: &Mobile) -> Self {
        Self {
            full: to.as_str().to_owned(),
            sent: phone_numbers(to),
            masked: to.masked(),
        }
    }

    fn error(&self, mut e: SendError) -> SendError {
        let text = e.message.replace(&self.full, &self.masked);
        let text = text.replace(&self.sent, &self.masked);
        e.message = format!("Alibaba Cloud SendSms to {}: {text}", self.masked);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::SocketAddr;

    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, Uri};
    use axum::response::{IntoResponse, Response};
    use serde_json::Value;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/aliyun/send_sms_signature.json");

    const KEY_ID: &str = "LTAI5tTESTKEYID";
    const SECRET: &str = "testsecret0123456789";

    fn string_map(v: &Value) -> BTreeMap<String, String> {
        v.as_object()
            .expect("an object")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("a string").to_owned()))
            .collect()
    }

    fn as_pairs(map: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
        map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    fn template(to: &str, code: &str, params: &[(&str, &str)]) -> Outgoing {
        Outgoing {
            delivery: 42,
            campaign: "weekly_service".into(),
            message: Message::Sms(SmsMessage::Template {
                to: Mobile::parse(to).unwrap(),
                code: code.into(),
                params: params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
        }
    }

    #[test]
    fn signature_matches_the_official_sdk() {
        let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
        let inputs = &fixture["inputs"];
        let key_id = inputs["access_key_id"].as_str().unwrap();
        let secret = inputs["access_key_secret"].as_str().unwrap();

        // The request as herald signs it: host and the x-acs-* headers.
        let herald = &fixture["herald"];
        let query = string_map(&herald["query"]);
        let headers = string_map(&herald["headers"]);
        let method = herald["method"].as_str().unwrap();
        let path = herald["pathname"].as_str().unwrap();
        let (canonical, _) = canonical_request(method, path, &query, &as_pairs(&headers), b"");
        assert_eq!(canonical, herald["canonical_request"].as_str().unwrap());
        assert_eq!(
            string_to_sign(&canonical),
            herald["string_to_sign"].as_str().unwrap()
        );
        assert_eq!(
            authorization(
                method,
                path,
                &query,
                &as_pairs(&headers),
                b"",
                key_id,
                secret
            ),
            herald["authorization"].as_str().unwrap()
        );

        // The request exactly as the SDK sent it (it signs user-agent and
        // accept too): the same function gives the SDK's answer.
        let sdk = &fixture["sdk"];
        let sdk_headers = string_map(&sdk["headers"]);
        assert_eq!(
            authorization(
                sdk["method"].as_str().unwrap(),
                sdk["pathname"].as_str().unwrap(),
                &string_map(&sdk["query"]),
                &as_pairs(&sdk_headers),
                b"",
                key_id,
                secret,
            ),
            sdk["authorization"].as_str().unwrap()
        );

        // And the adapter builds that very request from herald's message.
        let mut settings =
            AliyunSettings::new(key_id, secret, inputs["sign_name"].as_str().unwrap());
        settings.endpoint =
            Url::parse(&format!("https://{}", inputs["host"].as_str().unwrap())).unwrap();
        let message = Outgoing {
            delivery: inputs["out_id"].as_str().unwrap().parse().unwrap(),
            campaign: "fixture".into(),
            message: Message::Sms(SmsMessage::Template {
                to: Mobile::parse(inputs["mobile"].as_str().unwrap()).unwrap(),
                code: inputs["template_code"].as_str().unwrap().into(),
                params: string_map(&inputs["template_params"]),
            }),
        };
        let (params, _) = send_sms_params(&settings.sign_name, &message).unwrap();
        assert_eq!(params, query);
        let built = signed_request(
            &settings,
            &params,
            inputs["date"].as_str().unwrap(),
            inputs["nonce"].as_str().unwrap(),
        );
        let mut expected: Vec<(String, String)> = headers.into_iter().collect();
        expected.push((
            "authorization".into(),
            herald["authorization"].as_str().unwrap().into(),
        ));
        assert_eq!(built.headers, expected);
        assert_eq!(built.url.path(), "/");
        assert_eq!(
            built.url.query().unwrap(),
            canonical.lines().nth(2).unwrap(),
            "the query sent is the canonical one"
        );
    }

    #[test]
    fn phone_numbers_are_national_for_the_mainland_and_prefixed_elsewhere() {
        assert_eq!(
            phone_numbers(&Mobile::parse("+8613812345678").unwrap()),
            "13812345678"
        );
        assert_eq!(
            phone_numbers(&Mobile::parse("13812345678").unwrap()),
            "13812345678"
        );
        assert_eq!(
            phone_numbers(&Mobile::parse("+852 6123 4567").unwrap()),
            "85261234567"
        );
        assert_eq!(
            phone_numbers(&Mobile::parse("+1 415 555 2671").unwrap()),
            "14155552671"
        );
    }

    #[test]
    fn percent_encoding_is_rfc_3986() {
        assert_eq!(percent_encode("a-b_c.d~e", false), "a-b_c.d~e");
        assert_eq!(percent_encode("a b+c*d/e", false), "a%20b%2Bc%2Ad%2Fe");
        assert_eq!(percent_encode("/a b", true), "/a%20b");
        assert_eq!(percent_encode("证", false), "%E8%AF%81");
    }

    #[test]
    fn codes_are_classified() {
        for c in [
            "isv.BUSINESS_LIMIT_CONTROL",
            "isv.DAY_LIMIT_CONTROL",
            "isv.MONTH_LIMIT_CONTROL",
            "Throttling.User",
            "Throttling.Api",
            "isp.SYSTEM_ERROR",
        ] {
            assert_eq!(code_class(c), CodeClass::Transient, "{c}");
        }
        assert_eq!(
            code_class("isv.MOBILE_NUMBER_ILLEGAL"),
            CodeClass::BadAddress
        );
        for c in [
            "isv.SMS_TEMPLATE_ILLEGAL",
            "isv.SMS_SIGNATURE_ILLEGAL",
            "isv.TEMPLATE_MISSING_PARAMETERS",
            "isv.BLACK_KEY_CONTROL_LIMIT",
            "isv.MOBILE_COUNT_OVER_LIMIT",
            "InvalidAccessKeyId.NotFound",
            "SignatureDoesNotMatch",
            "Something.New",
        ] {
            assert_eq!(code_class(c), CodeClass::Permanent, "{c}");
        }
    }

    #[test]
    fn settings_never_print_the_secret() {
        let s = AliyunSettings::new(KEY_ID, SECRET, "某某证券");
        assert!(!format!("{s:?}").contains(SECRET));
        assert_eq!(s.endpoint.as_str(), "https://dysmsapi.aliyuncs.com/");
    }

    // A stand-in for dysmsapi.aliyuncs.com that checks what it gets the way
    // Alibaba does, and fails on request by TemplateCode.

    fn json(status: StatusCode, body: Value) -> Response {
        (status, axum::Json(body)).into_response()
    }

    fn error(status: StatusCode, code: &str, message: &str) -> Response {
        json(
            status,
            serde_json::json!({"Code": code, "Message": message, "RequestId": "REQ-1"}),
        )
    }

    async fn endpoint(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        if method != Method::POST {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UnsupportedHTTPMethod",
                "POST only",
            );
        }
        if uri.path() != "/" {
            return error(
                StatusCode::NOT_FOUND,
                "InvalidAction.NotFound",
                "no such path",
            );
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        if header("x-acs-action") != "SendSms" || header("x-acs-version") != "2017-05-25" {
            return error(StatusCode::BAD_REQUEST, "InvalidAction.NotFound", "action");
        }
        if header("x-acs-content-sha256") != sha256_hex(&body) {
            return error(
                StatusCode::BAD_REQUEST,
                "ContentSHA256NotMatched",
                "body hash",
            );
        }

        // Recompute the signature from what arrived.
        let auth = header("authorization");
        let Some(fields) = auth.strip_prefix("ACS3-HMAC-SHA256 ") else {
            return error(StatusCode::BAD_REQUEST, "IncompleteSignature", "algorithm");
        };
        let field = |prefix: &str| {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix(prefix))
                .unwrap_or("")
                .to_owned()
        };
        if field("Credential=") != KEY_ID {
            return error(StatusCode::NOT_FOUND, "InvalidAccessKeyId.NotFound", "key");
        }
        let signed: Vec<String> = field("SignedHeaders=")
            .split(';')
            .map(str::to_owned)
            .collect();
        let unsigned = headers
            .keys()
            .map(|k| k.as_str())
            .find(|k| (*k == "host" || k.starts_with("x-acs-")) && !signed.iter().any(|s| s == k));
        if let Some(k) = unsigned {
            return error(StatusCode::BAD_REQUEST, "IncompleteSignature", k);
        }
        let signed_values: Vec<(&str, &str)> =
            signed.iter().map(|k| (k.as_str(), header(k))).collect();
        let query: BTreeMap<String, String> =
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let expected = authorization(
            "POST",
            uri.path(),
            &query,
            &signed_values,
            &body,
            KEY_ID,
            SECRET,
        );
        if expected != auth {
            return error(
                StatusCode::BAD_REQUEST,
                "SignatureDoesNotMatch",
                "Specified signature does not match our calculation.",
            );
        }

        let param = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
        let template_param: Option<BTreeMap<String, String>> =
            serde_json::from_str(param("TemplateParam")).ok();
        let wanted = BTreeMap::from([
            ("name".to_owned(), "张三".to_owned()),
            ("code".to_owned(), "6 7+8&9".to_owned()),
        ]);
        if param("SignName") != "某某证券"
            || param("OutId") != "42"
            || template_param.as_ref() != Some(&wanted)
        {
            return error(
                StatusCode::OK,
                "isv.INVALID_PARAMETERS",
                "unexpected parameters",
            );
        }
        match param("PhoneNumbers") {
            "13812345678" | "14155552671" => {}
            "13900000000" => {
                return error(
                    StatusCode::OK,
                    "isv.MOBILE_NUMBER_ILLEGAL",
                    "非法手机号 13900000000",
                )
            }
            _ => return error(StatusCode::OK, "isv.INVALID_PARAMETERS", "PhoneNumbers"),
        }
        match param("TemplateCode") {
            "SMS_100" => json(
                StatusCode::OK,
                serde_json::json!({
                    "Code": "OK",
                    "Message": "OK",
                    "BizId": format!("900619746936498440^{}", param("PhoneNumbers")),
                    "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990",
                }),
            ),
            "SMS_429" => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "7")],
                r#"{"Code":"Throttling.User","Message":"Request was denied due to user flow control."}"#,
            )
                .into_response(),
            "SMS_500" => error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "try later"),
            "SMS_LIMIT" => error(StatusCode::OK, "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控"),
            "SMS_BAD_TEMPLATE" => error(StatusCode::OK, "isv.SMS_TEMPLATE_ILLEGAL", "模板不合法"),
            "SMS_SLOW" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                error(StatusCode::OK, "OK", "too late")
            }
            _ => error(StatusCode::OK, "isv.SMS_TEMPLATE_ILLEGAL", "unknown template"),
        }
    }

    async fn start_server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(endpoint);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    fn adapter(addr: SocketAddr, secret: &str, timeout: Duration) -> AliyunAdapter {
        let mut settings = AliyunSettings::new(KEY_ID, secret, "某某证券");
        settings.endpoint = Url::parse(&format!("http://{addr}")).unwrap();
        settings.timeout = timeout;
        AliyunAdapter::new("aliyun", settings)
    }

    const PARAMS: &[(&str, &str)] = &[("name", "张三"), ("code", "6 7+8&9")];

    #[tokio::test]
    async fn sends_a_signed_template_and_reads_the_biz_id() {
        let addr = start_server().await;
        let a = adapter(addr, SECRET, Duration::from_secs(5));
        assert_eq!(a.name(), "aliyun");
        assert_eq!(a.channel(), Channel::Sms);
        let ok = a
            .send(&template("+8613812345678", "SMS_100", PARAMS))
            .await
            .unwrap();
        assert_eq!(ok.provider_id, "900619746936498440^13812345678");
        let abroad = a
            .send(&template("+1 415 555 2671", "SMS_100", PARAMS))
            .await
            .unwrap();
        assert_eq!(abroad.provider_id, "900619746936498440^14155552671");
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_by_the_signature_check() {
        let addr = start_server().await;
        let a = adapter(addr, "not-the-secret", Duration::from_secs(5));
        let e = a
            .send(&template("+8613812345678", "SMS_100", PARAMS))
            .await
            .unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: false });
        assert!(e.message.contains("SignatureDoesNotMatch"), "{}", e.message);
        assert!(!e.message.contains("not-the-secret"), "{}", e.message);
    }

    #[tokio::test]
    async fn failures_are_classified() {
        let addr = start_server().await;
        let a = adapter(addr, SECRET, Duration::from_secs(5));
        let send = |to: &'static str, code: &'static str| {
            let a = &a;
            async move { a.send(&template(to, code, PARAMS)).await.unwrap_err() }
        };

        let e = send("+8613812345678", "SMS_429").await;
        assert_eq!(
            e.failure,
            Failure::Transient {
                retry_after: Some(Duration::from_secs(7))
            },
            "{}",
            e.message
        );
        let e = send("+8613812345678", "SMS_500").await;
        assert_eq!(
            e.failure,
            Failure::Transient { retry_after: None },
            "{}",
            e.message
        );
        let e = send("+8613812345678", "SMS_LIMIT").await;
        assert!(e.is_transient(), "{}", e.message);
        assert!(
            e.message.contains("isv.BUSINESS_LIMIT_CONTROL"),
            "{}",
            e.message
        );

        let e = send("+8613900000000", "SMS_100").await;
        assert_eq!(
            e.failure,
            Failure::Permanent { bad_address: true },
            "{}",
            e.message
        );
        assert!(
            e.message.contains("isv.MOBILE_NUMBER_ILLEGAL"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("13900000000"), "{}", e.message);
        assert!(e.message.contains("+86139****0000"), "{}", e.message);

        let e = send("+8613812345678", "SMS_BAD_TEMPLATE").await;
        assert_eq!(
            e.failure,
            Failure::Permanent { bad_address: false },
            "{}",
            e.message
        );
        assert!(
            e.message.contains("isv.SMS_TEMPLATE_ILLEGAL"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn text_messages_are_refused() {
        let addr = start_server().await;
        let a = adapter(addr, SECRET, Duration::from_secs(5));
        let text = Outgoing {
            delivery: 42,
            campaign: "weekly_service".into(),
            message: Message::Sms(SmsMessage::Text {
                to: Mobile::parse("+8613812345678").unwrap(),
                text: "【某某证券】您好".into(),
            }),
        };
        let e = a.send(&text).await.unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: false });
        assert!(
            e.message.contains("approved templates only"),
            "{}",
            e.message
        );
        assert!(e.message.contains("template code"), "{}", e.message);
        assert!(!e.message.contains("13812345678"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_slow_answer_times_out_as_transient() {
        let addr = start_server().await;
        let a = adapter(addr, SECRET, Duration::from_millis(300));
        let started = std::time::Instant::now();
        let e = a
            .send(&template("+8613812345678", "SMS_SLOW", PARAMS))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(4));
        assert_eq!(
            e.failure,
            Failure::Transient { retry_after: None },
            "{}",
            e.message
        );
        assert!(e.message.contains("timed out"), "{}", e.message);
        assert!(!e.message.contains("13812345678"), "{}", e.message);
    }

    #[test]
    fn answers_without_alibaba_json_are_classified_by_status() {
        let e = classify_answer(StatusCode::BAD_GATEWAY, None, "<html>").unwrap_err();
        assert!(e.is_transient());
        let e = classify_answer(StatusCode::FORBIDDEN, None, "<html>").unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: false });
        let e = classify_answer(StatusCode::OK, None, "<html>").unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: false });
        let e = classify_answer(
            StatusCode::BAD_REQUEST,
            Some(Duration::from_secs(2)),
            r#"{"Code":"Throttling.User","Message":"flow control"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.failure,
            Failure::Transient {
                retry_after: Some(Duration::from_secs(2))
            }
        );
    }
}
