//! `herald.toml`: one typed struct, loaded once and validated at start with
//! messages that name the file and key.

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Deserialize;

use crate::campaign::timing::QuietHours;
use crate::message::sms::SmsBilling;
use crate::store::DatabaseUrl;
use crate::time::{parse_tz, FirmTime};
use crate::tracking::token::Secret;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "herald.toml";

/// herald's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: DatabaseUrl,
    /// The firm's time zone: what "today" means.
    pub timezone: Tz,
    /// How long a risk assessment stays valid.
    pub risk_assessment_valid_days: u32,
    /// The folder the config file is in; relative paths are read from here.
    pub base_dir: PathBuf,
    /// The file the settings came from, for messages: `(defaults)` if none.
    pub source: String,
    /// Who sends: what every message says about the firm.
    pub firm: Firm,
    /// The subject marker of marketing email (互联网电子邮件服务管理办法).
    pub email_ad_marker: String,
    pub email_sender: EmailSender,
    /// `[providers.NAME]` as written; `channel::providers` builds them.
    pub providers: std::collections::BTreeMap<String, toml::Value>,
    /// `[channels]`: which provider carries each channel, per purpose.
    pub channels: Option<toml::Value>,
    pub sms: SmsStyle,
    /// Where tracking links point and the key that signs them; `None` until
    /// configured, and nothing with links can be rendered without it.
    pub tracking: Option<Tracking>,
    pub sending: Sending,
    pub schedule: ScheduleSettings,
    pub serve: ServeSettings,
    /// `[[webhooks]]`: where each event is posted (the firm's CRM).
    pub webhooks: Vec<Webhook>,
}

/// One `[[webhooks]]` receiver.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub name: String,
    pub url: url::Url,
    /// Signs each body (HMAC-SHA256, `X-Herald-Signature`).
    pub secret: String,
    /// The event kinds it receives; every kind but `planned` when empty.
    pub events: Vec<crate::event::EventKind>,
}

/// `[schedule]`: when scheduled runs fire.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// The exchange calendar file; `None`: the one herald ships.
    pub calendar: Option<PathBuf>,
    /// How late a missed fire time may still be planned (after downtime).
    pub grace: std::time::Duration,
}

/// `[serve]`: the long-running process.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// The operators' listener (`/healthz`, `/metrics`): loopback by default.
    pub admin_listen: std::net::SocketAddr,
    /// Log lines as JSON objects instead of text.
    pub log_json: bool,
}

/// The calendar file looked for when `[schedule] calendar` is not set.
pub const DEFAULT_CALENDAR_FILE: &str = "calendars/cn-exchange.toml";

/// `[sending]`: the rules every campaign is planned and sent under.
#[derive(Debug, Clone)]
pub struct Sending {
    /// At most this many marketing messages per client in 7 days.
    pub frequency_cap: u32,
    /// When marketing SMS wait (21:00–08:00 by default).
    pub quiet_hours: QuietHours,
    /// Whether service SMS wait for quiet hours too.
    pub quiet_hours_for_service: bool,
    /// Who may approve a run that needs approval.
    pub approvers: Vec<String>,
    /// Stock codes and date ranges research may not cover.
    pub restricted_file: PathBuf,
    /// How long a dispatcher's claim on a delivery lasts.
    pub lease_secs: u64,
}

impl Default for Sending {
    fn default() -> Self {
        Self {
            frequency_cap: 5,
            quiet_hours: QuietHours::default(),
            quiet_hours_for_service: false,
            approvers: Vec::new(),
            restricted_file: PathBuf::from("restricted.csv"),
            lease_secs: 120,
        }
    }
}

/// The firm's particulars, shown in messages (research reports must carry
/// the firm's name and its advisory-licence statement).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Firm {
    #[serde(default)]
    pub name: String,
    /// The short name used in SMS signatures and greetings.
    #[serde(default)]
    pub short_name: String,
    /// 证券投资咨询业务资格 statement.
    #[serde(default)]
    pub licence: String,
    #[serde(default)]
    pub hotline: String,
    #[serde(default)]
    pub website: String,
}

/// What every SMS carries besides its text (通信短信息服务管理规定).
#[derive(Debug, Clone)]
pub struct SmsStyle {
    /// `【某某证券】`, put before the text.
    pub signature: String,
    /// `拒收请回复R`, put after the text of marketing messages.
    pub opt_out: String,
    /// How the gateway counts characters into billed segments.
    pub billing: SmsBilling,
}

/// The tracking server's public address and signing key.
#[derive(Debug, Clone)]
pub struct Tracking {
    pub base_url: url::Url,
    pub secret: Secret,
    /// Where the tracking server listens (behind the firm's TLS proxy).
    pub listen: std::net::SocketAddr,
    /// The secret before the last rotation, and until when its links work.
    pub previous: Option<(Secret, chrono::DateTime<chrono::Utc>)>,
    /// Opens and clicks this soon after sending are flagged as a mail
    /// scanner's, not counted as a person's.
    pub scanner_window_secs: u64,
    /// SMS replies that opt the number out of SMS (compared whole, without
    /// case): `T`, `TD`, `R`, `退订`, `STOP` by default.
    pub opt_out_words: Vec<String>,
    /// SMS replies that accept the last seminar invitation sent to the
    /// number (`1`, `Y`, `是` by default), and that decline it (`2`, `否`).
    pub rsvp_yes_words: Vec<String>,
    pub rsvp_no_words: Vec<String>,
    /// Twilio's auth token: when set, its callbacks must carry a valid
    /// `X-Twilio-Signature`.
    pub twilio_auth_token: Option<String>,
    /// Soft bounces (4.x.x) after which an address is marked bad.
    pub soft_bounce_limit: usize,
    /// `[tracking.generic_sms]`: where a configured gateway's replies and
    /// receipts carry their fields.
    pub generic_sms: Option<GenericSmsCallbacks>,
    /// The bearer token `POST /inbound/mail` needs; without one it is off.
    pub inbound_token: Option<String>,
}

/// How a generic gateway's callbacks are read: JSON pointers (RFC 6901)
/// into each posted object (or each element of a posted array).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericSmsCallbacks {
    /// The gateway passes it as `?token=…`: callbacks without it change nothing.
    pub token: String,
    pub reply_phone: String,
    pub reply_text: String,
    #[serde(default)]
    pub reply_id: Option<String>,
    pub receipt_delivery: String,
    pub receipt_status: String,
    /// Status values that mean delivered; any other is a failure.
    pub delivered: Vec<String>,
    /// Status values that mean the number cannot receive SMS.
    #[serde(default)]
    pub bad_number: Vec<String>,
}

/// The replies that opt out of SMS unless `[tracking] opt_out_words` says otherwise.
pub const DEFAULT_OPT_OUT_WORDS: [&str; 5] = ["T", "TD", "R", "退订", "STOP"];
pub const DEFAULT_RSVP_YES_WORDS: [&str; 3] = ["1", "Y", "是"];
pub const DEFAULT_RSVP_NO_WORDS: [&str; 2] = ["2", "否"];

/// The environment variable that may carry the tracking secret, so that it
/// need not be written in `herald.toml`.
pub const TRACKING_SECRET_ENV: &str = "HERALD_TRACKING_SECRET";

/// The file as written; every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    database_url: Option<String>,
    timezone: Option<String>,
    #[serde(default)]
    compliance: ComplianceFile,
    #[serde(default)]
    firm: Firm,
    #[serde(default)]
    email: EmailFile,
    #[serde(default)]
    sms: SmsFile,
    #[serde(default)]
    tracking: TrackingFile,
    #[serde(default)]
    providers: std::collections::BTreeMap<String, toml::Value>,
    channels: Option<toml::Value>,
    #[serde(default)]
    sending: SendingFile,
    #[serde(default)]
    schedule: ScheduleFile,
    #[serde(default)]
    serve: ServeFile,
    #[serde(default)]
    webhooks: Vec<WebhookFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookFile {
    name: String,
    url: String,
    secret: String,
    #[serde(default)]
    events: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFile {
    calendar: Option<PathBuf>,
    grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeFile {
    admin_listen: Option<String>,
    log_format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendingFile {
    frequency_cap: Option<u32>,
    quiet_hours: Option<String>,
    quiet_hours_for_service: Option<bool>,
    #[serde(default)]
    approvers: Vec<String>,
    restricted_file: Option<PathBuf>,
    lease_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailFile {
    ad_marker: Option<String>,
    from: Option<String>,
    reply_to: Option<String>,
    unsubscribe_mailto: Option<String>,
    dkim: Option<DkimFile>,
}

/// Who email comes from, as written; checked when the channels are built.
#[derive(Debug, Clone, Default)]
pub struct EmailSender {
    /// `某某证券 <research@example.com>`.
    pub from: Option<String>,
    pub reply_to: Option<String>,
    /// `unsubscribe@example.com`: marketing mail offers
    /// `unsubscribe+TOKEN@example.com` besides the https link.
    pub unsubscribe_mailto: Option<String>,
    pub dkim: Option<DkimFile>,
}

/// `[email.dkim]`: the key that signs outgoing mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimFile {
    pub selector: String,
    pub domain: String,
    /// An RSA private key, PKCS#1 PEM; relative to the config file.
    pub private_key_file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmsFile {
    signature: Option<String>,
    opt_out: Option<String>,
    billing: Option<SmsBilling>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackingFile {
    base_url: Option<String>,
    secret: Option<String>,
    listen: Option<String>,
    previous_secret: Option<String>,
    previous_secret_until: Option<String>,
    scanner_window_secs: Option<u64>,
    opt_out_words: Option<Vec<String>>,
    rsvp_yes_words: Option<Vec<String>>,
    rsvp_no_words: Option<Vec<String>>,
    twilio_auth_token: Option<String>,
    soft_bounce_limit: Option<usize>,
    inbound_token: Option<String>,
    generic_sms: Option<GenericSmsCallbacks>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComplianceFile {
    risk_assessment_valid_days: Option<u32>,
}

/// A configuration problem, naming the file and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Config {
    /// Where dispatchers keep their send journals (`run::journal`): local
    /// to the machine, beside the configuration. Instances that share a
    /// PostgreSQL database from one folder settle each other's.
    pub fn journal_dir(&self) -> PathBuf {
        self.base_dir.join(".herald-journal")
    }

    /// Loads `path` (or `herald.toml` in the working folder when it exists),
    /// then applies `database_url` from the command line or environment.
    pub fn load(path: Option<&Path>, database_url: Option<String>) -> Result<Self, ConfigError> {
        let (file, source_name, base_dir) = match path {
            Some(p) => (Some(read(p)?), p.display().to_string(), parent_dir(p)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => (
                Some(read(Path::new(DEFAULT_CONFIG_FILE))?),
                DEFAULT_CONFIG_FILE.to_owned(),
                PathBuf::from("."),
            ),
            None => (None, "(defaults)".to_owned(), PathBuf::from(".")),
        };
        let parsed: ConfigFile = match &file {
            Some(text) => toml::from_str(text).map_err(|e: toml::de::Error| {
                // `herald.toml:9:1: unknown field …`, like every other file.
                let at = e.span().map_or(String::new(), |span| {
                    let (line, col) = crate::diagnostic::line_col(text, span.start);
                    format!(":{line}:{col}")
                });
                ConfigError::Invalid {
                    path: format!("{source_name}{at}"),
                    message: one_line(e.message()),
                }
            })?,
            None => ConfigFile::default(),
        };
        Self::from_file(parsed, database_url, base_dir, &source_name)
    }

    fn from_file(
        file: ConfigFile,
        database_url: Option<String>,
        base_dir: PathBuf,
        source_name: &str,
    ) -> Result<Self, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: source_name.to_owned(),
            message: format!("key '{key}': {message}"),
        };
        let timezone = parse_tz(file.timezone.as_deref().unwrap_or("Asia/Shanghai"))
            .map_err(|e| invalid("timezone", e.0))?;
        let url = database_url
            .or(file.database_url)
            .map(DatabaseUrl::new)
            .unwrap_or_else(DatabaseUrl::default_sqlite);
        if url.backend().is_none() {
            return Err(invalid(
                "database_url",
                format!("{url} is not a sqlite:// or postgres:// URL"),
            ));
        }
        let valid_days = file.compliance.risk_assessment_valid_days.unwrap_or(730);
        if valid_days == 0 {
            return Err(invalid(
                "compliance.risk_assessment_valid_days",
                "must be at least 1".into(),
            ));
        }
        let tracking = tracking(file.tracking).map_err(|(key, m)| invalid(key, m))?;
        let short_name = if file.firm.short_name.is_empty() {
            file.firm.name.clone()
        } else {
            file.firm.short_name.clone()
        };
        let sms = SmsStyle {
            signature: file
                .sms
                .signature
                .unwrap_or_else(|| match short_name.as_str() {
                    "" => String::new(),
                    name => format!("【{name}】"),
                }),
            opt_out: file.sms.opt_out.unwrap_or_else(|| "拒收请回复R".to_owned()),
            billing: file.sms.billing.unwrap_or(SmsBilling::Domestic),
        };
        let sending = sending(file.sending, &base_dir).map_err(|(key, m)| invalid(key, m))?;
        let schedule = schedule(file.schedule, &base_dir).map_err(|(key, m)| invalid(key, m))?;
        let serve = serve(file.serve).map_err(|(key, m)| invalid(key, m))?;
        let webhooks = file
            .webhooks
            .into_iter()
            .map(webhook)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|(key, m)| invalid(key, m))?;
        Ok(Self {
            sending,
            schedule,
            serve,
            webhooks,
            database_url: url,
            timezone,
            risk_assessment_valid_days: valid_days,
            base_dir,
            source: source_name.to_owned(),
            firm: Firm {
                short_name,
                ..file.firm
            },
            email_sender: EmailSender {
                from: file.email.from,
                reply_to: file.email.reply_to,
                unsubscribe_mailto: file.email.unsubscribe_mailto,
                dkim: file.email.dkim,
            },
            providers: file.providers,
            channels: file.channels,
            email_ad_marker: file
                .email
                .ad_marker
                .unwrap_or_else(|| "【广告】".to_owned()),
            sms,
            tracking,
        })
    }

    /// Where herald keeps files it can rebuild (the segment snapshot).
    pub fn cache_dir(&self) -> PathBuf {
        self.base_dir.join(".herald-cache")
    }

    /// The exchange calendar: the configured file, or the one herald ships.
    pub fn calendar(&self) -> Result<crate::schedule::Calendar, crate::diagnostic::Problem> {
        match &self.schedule.calendar {
            Some(path) => crate::schedule::Calendar::load(path),
            None => Ok(crate::schedule::Calendar::builtin()),
        }
    }

    /// The firm's clock.
    pub fn firm_time(&self) -> FirmTime {
        FirmTime::new(self.timezone)
    }
}

fn sending(file: SendingFile, base_dir: &Path) -> Result<Sending, (&'static str, String)> {
    let defaults = Sending::default();
    let frequency_cap = file.frequency_cap.unwrap_or(defaults.frequency_cap);
    if frequency_cap == 0 {
        return Err(("sending.frequency_cap", "must be at least 1".into()));
    }
    let quiet_hours = file
        .quiet_hours
        .map(|q| QuietHours::parse(&q))
        .transpose()
        .map_err(|m| ("sending.quiet_hours", m))?
        .unwrap_or(defaults.quiet_hours);
    let lease_secs = file.lease_secs.unwrap_or(defaults.lease_secs);
    if lease_secs < 5 {
        return Err(("sending.lease_secs", "must be at least 5".into()));
    }
    if let Some(a) = file.approvers.iter().find(|a| a.trim().is_empty()) {
        return Err(("sending.approvers", format!("'{a}' is not a name")));
    }
    Ok(Sending {
        frequency_cap,
        quiet_hours,
        quiet_hours_for_service: file.quiet_hours_for_service.unwrap_or(false),
        approvers: file.approvers,
        restricted_file: base_dir.join(file.restricted_file.unwrap_or(defaults.restricted_file)),
        lease_secs,
    })
}

fn schedule(
    file: ScheduleFile,
    base_dir: &Path,
) -> Result<ScheduleSettings, (&'static str, String)> {
    let calendar = match file.calendar {
        Some(path) => {
            let path = base_dir.join(path);
            if !path.is_file() {
                return Err((
                    "schedule.calendar",
                    format!("{} does not exist", path.display()),
                ));
            }
            Some(path)
        }
        None => Some(base_dir.join(DEFAULT_CALENDAR_FILE)).filter(|p| p.is_file()),
    };
    let grace = match file.grace {
        None => std::time::Duration::from_secs(3600),
        Some(g) => humantime::parse_duration(g.trim()).map_err(|e| {
            (
                "schedule.grace",
                format!("'{g}' is not a duration (e.g. \"30m\", \"2h\"): {e}"),
            )
        })?,
    };
    Ok(ScheduleSettings { calendar, grace })
}

fn webhook(file: WebhookFile) -> Result<Webhook, (&'static str, String)> {
    let at = |m: String| ("webhooks", format!("'{}': {m}", file.name));
    if file.name.trim().is_empty() || file.name.contains(char::is_whitespace) {
        return Err(("webhooks.name", format!("'{}' is not a name", file.name)));
    }
    let url = url::Url::parse(&file.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| at(format!("url '{}' is not an http(s) URL", file.url)))?;
    if file.secret.len() < 16 {
        return Err(at("secret must be at least 16 bytes".into()));
    }
    let events = file
        .events
        .iter()
        .map(|e| crate::event::EventKind::parse(e).map_err(|e| at(e.0)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Webhook {
        name: file.name,
        url,
        secret: file.secret,
        events,
    })
}

fn serve(file: ServeFile) -> Result<ServeSettings, (&'static str, String)> {
    let admin_listen = match file.admin_listen {
        None => std::net::SocketAddr::from(([127, 0, 0, 1], 9464)),
        Some(a) => a.parse().map_err(|_| {
            (
                "serve.admin_listen",
                format!("'{a}' is not an address and port (e.g. \"127.0.0.1:9464\")"),
            )
        })?,
    };
    let log_json = match file.log_format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => return Err(("serve.log_format", format!("'{other}' is not text or json"))),
    };
    Ok(ServeSettings {
        admin_listen,
        log_json,
    })
}

/// The tracking section: both keys or neither; the secret may come from
/// the environment instead.
fn tracking(file: TrackingFile) -> Result<Option<Tracking>, (&'static str, String)> {
    let secret = std::env::var(TRACKING_SECRET_ENV).ok().or(file.secret);
    let Some(raw_url) = file.base_url else {
        return Ok(None);
    };
    let base_url = url::Url::parse(&raw_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or((
            "tracking.base_url",
            format!("'{raw_url}' is not an http(s) URL"),
        ))?;
    let secret = secret.ok_or((
        "tracking.secret",
        format!("not set (write it here or set {TRACKING_SECRET_ENV})"),
    ))?;
    let secret = Secret::new(secret.as_bytes()).map_err(|e| ("tracking.secret", e.to_string()))?;
    let listen = match file.listen {
        None => std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
        Some(l) => l.parse().map_err(|_| {
            (
                "tracking.listen",
                format!("'{l}' is not an address and port (e.g. \"127.0.0.1:8080\")"),
            )
        })?,
    };
    let previous = match (file.previous_secret, file.previous_secret_until) {
        (None, None) => None,
        (Some(old), Some(until)) => {
            let old = Secret::new(old.as_bytes())
                .map_err(|e| ("tracking.previous_secret", e.to_string()))?;
            let until = chrono::DateTime::parse_from_rfc3339(until.trim())
                .map(|t| t.with_timezone(&chrono::Utc))
                .or_else(|_| {
                    crate::time::parse_date(&until)
                        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
                })
                .map_err(|_| {
                    (
                        "tracking.previous_secret_until",
                        format!("'{until}' is not a date or RFC 3339 time"),
                    )
                })?;
            Some((old, until))
        }
        (Some(_), None) => {
            return Err((
                "tracking.previous_secret_until",
                "not set: say until when links signed with the previous secret keep working".into(),
            ))
        }
        (None, Some(_)) => {
            return Err((
                "tracking.previous_secret",
                "not set, but previous_secret_until is".into(),
            ))
        }
    };
    Ok(Some(Tracking {
        base_url,
        secret,
        listen,
        previous,
        scanner_window_secs: file.scanner_window_secs.unwrap_or(5),
        opt_out_words: file
            .opt_out_words
            .unwrap_or_else(|| DEFAULT_OPT_OUT_WORDS.map(str::to_owned).to_vec()),
        rsvp_yes_words: file
            .rsvp_yes_words
            .unwrap_or_else(|| DEFAULT_RSVP_YES_WORDS.map(str::to_owned).to_vec()),
        rsvp_no_words: file
            .rsvp_no_words
            .unwrap_or_else(|| DEFAULT_RSVP_NO_WORDS.map(str::to_owned).to_vec()),
        twilio_auth_token: file.twilio_auth_token.filter(|t| !t.trim().is_empty()),
        soft_bounce_limit: file.soft_bounce_limit.unwrap_or(3).max(1),
        generic_sms: match file.generic_sms {
            Some(g) if g.token.len() < 16 => {
                return Err((
                    "tracking.generic_sms.token",
                    "must be at least 16 characters".into(),
                ))
            }
            other => other,
        },
        inbound_token: file.inbound_token.filter(|t| !t.trim().is_empty()),
    }))
}

/// A file named by the user: a bare name is looked up in `dir` with
/// `extension` (`seminar_drive` → `rules/seminar_drive.rhai`); anything
/// with an extension or a folder is a path.
pub fn resolve_named(name: &str, dir: &Path, extension: &str) -> PathBuf {
    let as_path = Path::new(name);
    if as_path.extension().is_some() || as_path.components().count() > 1 {
        as_path.to_path_buf()
    } else {
        dir.join(format!("{name}.{extension}"))
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// toml's errors span several lines with a snippet; keep the message on one
/// line so the CLI's "one-line reason" holds.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && *l != "^")
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path), None)
    }

    #[test]
    fn defaults_need_no_file() {
        let c = load_text("").unwrap();
        assert_eq!(c.database_url.expose(), "sqlite://herald.db");
        assert_eq!(c.timezone, chrono_tz::Asia::Shanghai);
        assert_eq!(c.risk_assessment_valid_days, 730);
    }

    #[test]
    fn a_misspelt_key_is_named() {
        let err = load_text("databse_url = \"sqlite://x.db\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("databse_url"), "{err}");
        assert!(err.contains("herald.toml"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = load_text("timezone = \"Mars/Olympus\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key 'timezone'"), "{err}");
        let err = load_text("database_url = \"mysql://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key 'database_url'"), "{err}");
    }

    #[test]
    fn the_command_line_url_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.toml");
        std::fs::write(&path, "database_url = \"sqlite://a.db\"\n").unwrap();
        let c = Config::load(Some(&path), Some("postgres://u:p@h/db".into())).unwrap();
        assert_eq!(c.database_url.expose(), "postgres://u:p@h/db");
    }
}
