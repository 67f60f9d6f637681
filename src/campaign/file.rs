//! `campaigns/NAME.toml`: what to send, to whom and through which channels.
//! Parsing refuses unknown keys and names the file, line and key of every
//! problem it finds.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use chrono::NaiveDateTime;

use super::timing::{QuietHours, SendBy};
use crate::channel::Channel;
use crate::client::types::{Cny, ProductRisk, StockCode};
use crate::diagnostic::{line_col, Problem};
pub use crate::schedule::Trigger;

/// What a campaign sends. The three herald ships templates for, or a kind
/// of the firm's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    ResearchReport,
    MarketBulletin,
    SeminarInvitation,
    Custom(String),
}

impl Kind {
    pub fn parse(raw: &str) -> Result<Kind, String> {
        Ok(match raw {
            "research_report" => Kind::ResearchReport,
            "market_bulletin" => Kind::MarketBulletin,
            "seminar_invitation" => Kind::SeminarInvitation,
            other if close_to_shipped(other).is_some() => {
                return Err(format!(
                    "'{other}' is not a kind: did you mean '{}'? (a kind of your own must not \
                     look like a shipped one, whose checks it would skip)",
                    close_to_shipped(other).unwrap_or_default()
                ))
            }
            other if is_identifier(other) => Kind::Custom(other.to_owned()),
            other => {
                return Err(format!(
                    "'{other}' is not a kind (research_report, market_bulletin, \
                     seminar_invitation, or your own in lower_snake_case)"
                ))
            }
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Kind::ResearchReport => "research_report",
            Kind::MarketBulletin => "market_bulletin",
            Kind::SeminarInvitation => "seminar_invitation",
            Kind::Custom(s) => s,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const SHIPPED_KINDS: [&str; 3] = ["research_report", "market_bulletin", "seminar_invitation"];

/// A shipped kind `raw` is probably a misspelling of.
fn close_to_shipped(raw: &str) -> Option<&'static str> {
    SHIPPED_KINDS
        .into_iter()
        .find(|k| strsim::damerau_levenshtein(raw, k) <= 3)
}

pub fn is_identifier(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Marketing needs consent and carries the markers; service messages
/// (statements, notices a client must get) do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Marketing,
    Service,
}

impl Purpose {
    pub fn parse(raw: &str) -> Result<Purpose, crate::client::types::Invalid> {
        match raw {
            "marketing" => Ok(Purpose::Marketing),
            "service" => Ok(Purpose::Service),
            other => Err(crate::client::types::Invalid(format!(
                "'{other}' is not a purpose (marketing, service)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Marketing => "marketing",
            Purpose::Service => "service",
        }
    }
}

/// Who receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every client with consent for the channel, selected by nothing
    /// personal (what a client who refused personalised marketing may get).
    Broadcast,
    /// A segment rule: a name under `rules/` or a path.
    Rule(String),
}

/// The context key that ties a campaign to a seminar file.
pub const SEMINAR_CONTEXT: &str = "seminar";

/// The reserved audience word.
pub const BROADCAST: &str = "broadcast";

/// Where a campaign's content comes from; loaded once per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentSource {
    /// A JSON file, relative to the campaign file's folder.
    File(PathBuf),
    /// A JSON document fetched over HTTP(S).
    Url { url: url::Url, timeout_secs: u64 },
    /// The seminar file named by the campaign's `ctx.seminar`, beside the
    /// campaigns folder (`seminars/NAME.toml`).
    Seminar(String),
}

/// The default wait for fetched content.
pub const DEFAULT_FETCH_TIMEOUT_SECS: u64 = 10;

/// A campaign file, parsed and checked key by key.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub name: String,
    pub path: PathBuf,
    pub kind: Kind,
    pub purpose: Purpose,
    pub title: String,
    pub audience: Audience,
    /// A set under `templates/`.
    pub templates: String,
    /// In order of preference: the first the client can be reached on.
    pub channels: Vec<Channel>,
    pub sms_max_segments: usize,
    pub content: Option<ContentSource>,
    /// Values for the rule (`ctx.stock`) and the templates.
    pub context: BTreeMap<String, String>,
    /// Providers this campaign uses instead of `[channels]`' routes.
    pub providers: BTreeMap<Channel, String>,
    /// For SMS providers that send approved templates only: the template
    /// code, and its parameters (each a template over the client's data).
    pub sms_template: Option<SmsTemplate>,
    pub rules: SendingRules,
}

/// The constraints on who may get the campaign and when; the planner's
/// gates and the dispatcher enforce them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendingRules {
    /// The product's risk; `None` for a message that promotes nothing.
    pub product_risk: Option<ProductRisk>,
    /// The product's entry thresholds; professional investors must meet
    /// them too.
    pub min_assets: Option<Cny>,
    pub professional_only: bool,
    /// At most this many marketing messages per client in 7 days; `None`
    /// takes `[sending] frequency_cap`.
    pub frequency_cap: Option<u32>,
    /// Quiet hours for SMS in addition to `[sending] quiet_hours`.
    pub quiet_hours: Option<QuietHours>,
    pub requires_approval: bool,
    pub send_by: Option<SendBy>,
    pub once_per: OncePer,
    /// Research reports: the stocks covered, checked against the
    /// restricted list.
    pub stocks: Vec<StockCode>,
    /// Research reports: nothing goes out before this local time.
    pub release_at: Option<NaiveDateTime>,
    pub trigger: Trigger,
}

/// Whether a client may get the campaign once per run, or once ever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OncePer {
    #[default]
    Run,
    Campaign,
}

/// A provider's pre-approved SMS template.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsTemplate {
    pub code: String,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignToml {
    kind: String,
    purpose: Purpose,
    #[serde(default)]
    title: String,
    audience: String,
    templates: String,
    channels: Vec<Channel>,
    #[serde(default = "default_sms_segments")]
    sms_max_segments: usize,
    content: Option<ContentToml>,
    #[serde(default)]
    context: BTreeMap<String, String>,
    #[serde(default)]
    providers: BTreeMap<Channel, String>,
    sms_template: Option<SmsTemplate>,
    product_risk: Option<String>,
    min_assets: Option<toml::Value>,
    #[serde(default)]
    professional_only: bool,
    frequency_cap: Option<u32>,
    quiet_hours: Option<String>,
    #[serde(default)]
    requires_approval: bool,
    send_by: Option<String>,
    once_per: Option<OncePer>,
    #[serde(default)]
    stocks: Vec<String>,
    release_at: Option<toml::Value>,
    trigger: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContentToml {
    file: Option<String>,
    url: Option<String>,
    timeout_secs: Option<u64>,
}

fn default_sms_segments() -> usize {
    2
}

/// The longest SMS a campaign may allow, in billed segments.
pub const MAX_SMS_SEGMENTS: usize = 10;

/// Finds a campaign by name in `campaigns_dir` or takes a path.
pub fn resolve(campaign: &str, campaigns_dir: &Path) -> PathBuf {
    crate::config::resolve_named(campaign, campaigns_dir, "toml")
}

/// The campaign files in `dir`, sorted by name.
pub fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

impl Campaign {
    pub fn load(path: &Path) -> Result<Campaign, Vec<Problem>> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| vec![Problem::error(path, format!("cannot read: {e}"))])?;
        Self::parse(path, &source)
    }

    /// Parses campaign text from `path`, reporting every bad key at once.
    pub fn parse(path: &Path, source: &str) -> Result<Campaign, Vec<Problem>> {
        let (raw, mut problems, named) = read_toml(path, source)?;
        let problem = |key: &str, message: String| {
            let (line, column) = key_position(source, key);
            Problem::error(path, message).at(line, column).about(key)
        };
        let kind = Kind::parse(&raw.kind)
            .map_err(|m| problems.push(problem("kind", m)))
            .ok();
        let audience = parse_audience(&raw.audience)
            .map_err(|m| problems.push(problem("audience", m)))
            .ok();
        if !is_identifier(&raw.templates) {
            problems.push(problem(
                "templates",
                format!("'{}' is not a template set name", raw.templates),
            ));
        }
        if let Err(m) = check_channels(&raw.channels) {
            problems.push(problem("channels", m));
        }
        if !(1..=MAX_SMS_SEGMENTS).contains(&raw.sms_max_segments) {
            problems.push(problem(
                "sms_max_segments",
                format!("must be 1 to {MAX_SMS_SEGMENTS}"),
            ));
        }
        for key in raw.context.keys().filter(|k| !is_identifier(k)) {
            problems.push(problem(
                "context",
                format!("'{key}' is not a name (lower_snake_case)"),
            ));
        }
        let rules = kind
            .as_ref()
            .map(|kind| sending_rules(&raw, kind, &mut |key, m| problems.push(problem(key, m))));
        // Neither file nor url, after one was reported misspelt: said.
        let misspelt = |c: &ContentToml| {
            c.file.is_none() && c.url.is_none() && named.iter().any(|k| k == "file" || k == "url")
        };
        let content = match raw.content {
            Some(c) if misspelt(&c) => None,
            c => match c.map(parse_content).transpose() {
                Ok(c) => c,
                Err((key, m)) => {
                    problems.push(problem(key, m));
                    None
                }
            },
        };
        let content = match (raw.context.get(SEMINAR_CONTEXT), content) {
            (None, content) => content,
            (Some(name), None) if is_identifier(name) => Some(ContentSource::Seminar(name.clone())),
            (Some(name), None) => {
                problems.push(problem(
                    SEMINAR_CONTEXT,
                    format!("'{name}' is not a seminar name (the stem of seminars/NAME.toml)"),
                ));
                None
            }
            (Some(_), Some(_)) => {
                problems.push(problem(
                    "content",
                    "a seminar's campaign takes its content from its seminar file: remove [content]"
                        .into(),
                ));
                None
            }
        };
        if raw.context.contains_key(SEMINAR_CONTEXT)
            && rules
                .as_ref()
                .is_some_and(|r| r.once_per != OncePer::Campaign)
        {
            problems.push(problem(
                "once_per",
                "a seminar's waves invite each client once: once_per must be \"campaign\"".into(),
            ));
        }
        if raw
            .sms_template
            .as_ref()
            .is_some_and(|t| t.code.trim().is_empty())
        {
            problems.push(problem("sms_template", "code is empty".into()));
        }
        if raw.purpose == Purpose::Service && SHIPPED_KINDS[..2].contains(&raw.kind.as_str()) {
            problems.push(problem(
                "purpose",
                format!(
                    "a {} is marketing: it needs consent, the 【广告】 marker and an opt-out",
                    raw.kind
                ),
            ));
        }
        if raw.title.trim().is_empty() {
            problems.push(problem(
                "title",
                "is missing: staff and reports show it".into(),
            ));
        }
        match (kind, audience, rules) {
            (Some(kind), Some(audience), Some(rules)) if problems.is_empty() => Ok(Campaign {
                name: stem(path),
                path: path.to_path_buf(),
                kind,
                purpose: raw.purpose,
                title: raw.title,
                audience,
                templates: raw.templates,
                channels: raw.channels,
                sms_max_segments: raw.sms_max_segments,
                content,
                context: raw.context,
                providers: raw.providers,
                sms_template: raw.sms_template,
                rules,
            }),
            _ => Err(problems),
        }
    }

    /// The seminar file this campaign invites to, if any.
    pub fn seminar_path(&self) -> Option<PathBuf> {
        match &self.content {
            Some(ContentSource::Seminar(name)) => {
                Some(self.beside("seminars").join(format!("{name}.toml")))
            }
            _ => None,
        }
    }

    /// The rules folder beside the campaigns folder.
    pub fn rules_dir(&self) -> PathBuf {
        self.beside("rules")
    }

    /// A folder beside the one the campaign file is in.
    fn beside(&self, folder: &str) -> PathBuf {
        match self.path.parent().and_then(Path::parent) {
            Some(base) => base.join(folder),
            None => Path::new("..").join(folder),
        }
    }

    /// Where a content file named in the campaign is.
    pub fn content_path(&self, file: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.to_path_buf(),
        }
    }
}

/// The sending rules, each key checked; problems go to `report`.
fn sending_rules(
    raw: &CampaignToml,
    kind: &Kind,
    report: &mut dyn FnMut(&str, String),
) -> SendingRules {
    let mut check = |key: &'static str, r: Result<(), String>| {
        if let Err(m) = r {
            report(key, m)
        }
    };
    let product_risk = raw.product_risk.as_deref().and_then(|r| {
        ProductRisk::parse(r)
            .map_err(|e| check("product_risk", Err(e.to_string())))
            .ok()
    });
    let min_assets = raw.min_assets.as_ref().and_then(|v| {
        let parsed = match v {
            toml::Value::Integer(n) => Cny::parse(&n.to_string()),
            toml::Value::Float(f) => Cny::parse(&f.to_string()),
            toml::Value::String(s) => Cny::parse(s),
            other => Err(crate::client::types::Invalid(format!(
                "{other} is not an amount in CNY"
            ))),
        };
        parsed.map_err(|e| check("min_assets", Err(e.0))).ok()
    });
    if (min_assets.is_some() || raw.professional_only) && product_risk.is_none() {
        check(
            "product_risk",
            Err("entry thresholds belong to a product: give its risk (R1 to R5)".into()),
        );
    }
    if raw.frequency_cap == Some(0) {
        check("frequency_cap", Err("must be at least 1".into()));
    }
    let quiet_hours = raw.quiet_hours.as_deref().and_then(|q| {
        QuietHours::parse(q)
            .map_err(|m| check("quiet_hours", Err(m)))
            .ok()
    });
    let send_by = raw
        .send_by
        .as_deref()
        .and_then(|s| SendBy::parse(s).map_err(|m| check("send_by", Err(m))).ok());
    let stocks: Vec<StockCode> = raw
        .stocks
        .iter()
        .filter_map(|s| {
            StockCode::parse(s)
                .map_err(|e| check("stocks", Err(e.0)))
                .ok()
        })
        .collect();
    let release_at = raw.release_at.as_ref().and_then(|v| {
        release_time(v)
            .map_err(|m| check("release_at", Err(m)))
            .ok()
    });
    let research = *kind == Kind::ResearchReport;
    if research && raw.stocks.is_empty() {
        check(
            "stocks",
            Err("a research report names the stocks it covers (checked against the restricted list)".into()),
        );
    }
    if !research && (!raw.stocks.is_empty() || raw.release_at.is_some()) {
        let key = if raw.stocks.is_empty() {
            "release_at"
        } else {
            "stocks"
        };
        check(key, Err("applies to research reports only".into()));
    }
    SendingRules {
        product_risk,
        min_assets,
        professional_only: raw.professional_only,
        frequency_cap: raw.frequency_cap,
        quiet_hours,
        requires_approval: raw.requires_approval,
        send_by,
        // A research report reaches a client once however many runs it has.
        once_per: raw
            .once_per
            .unwrap_or(if research || *kind == Kind::SeminarInvitation {
                OncePer::Campaign
            } else {
                OncePer::Run
            }),
        stocks,
        release_at,
        trigger: Trigger::parse(raw.trigger.as_ref())
            .map_err(|errors| {
                for e in errors {
                    let key = e.key.map_or("trigger".into(), |k| format!("trigger.{k}"));
                    report(&key, e.message);
                }
            })
            .unwrap_or_default(),
    }
}

/// A local release time: a TOML datetime without offset, or text
/// `YYYY-MM-DD HH:MM`.
fn release_time(v: &toml::Value) -> Result<NaiveDateTime, String> {
    let text = match v {
        toml::Value::Datetime(d) if d.offset.is_none() => d.to_string(),
        toml::Value::String(s) => s.clone(),
        other => {
            return Err(format!(
                "{other} is not a local time (write \"2026-11-25 09:30\", in the firm's time zone)"
            ))
        }
    };
    [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(text.trim(), f).ok())
    .ok_or_else(|| format!("'{text}' is not a local time (YYYY-MM-DD HH:MM)"))
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("campaign")
        .to_owned()
}

fn parse_audience(raw: &str) -> Result<Audience, String> {
    match raw.trim() {
        "" => Err("is empty: name a rule under rules/, or write \"broadcast\"".into()),
        BROADCAST => Ok(Audience::Broadcast),
        rule => Ok(Audience::Rule(rule.to_owned())),
    }
}

fn check_channels(channels: &[Channel]) -> Result<(), String> {
    if channels.is_empty() {
        return Err("names no channel (email, sms)".into());
    }
    for (i, c) in channels.iter().enumerate() {
        if channels[..i].contains(c) {
            return Err(format!("'{c}' is listed twice"));
        }
    }
    Ok(())
}

fn parse_content(c: ContentToml) -> Result<ContentSource, (&'static str, String)> {
    match (c.file, c.url) {
        (Some(file), None) => {
            if c.timeout_secs.is_some() {
                return Err(("timeout_secs", "applies to url only".into()));
            }
            Ok(ContentSource::File(PathBuf::from(file)))
        }
        (None, Some(raw)) => {
            let url = url::Url::parse(&raw)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or(("url", format!("'{raw}' is not an http(s) URL")))?;
            let timeout_secs = c.timeout_secs.unwrap_or(DEFAULT_FETCH_TIMEOUT_SECS);
            if timeout_secs == 0 {
                return Err(("timeout_secs", "must be at least 1".into()));
            }
            Ok(ContentSource::Url { url, timeout_secs })
        }
        (Some(_), Some(_)) => Err(("content", "give file or url, not both".into())),
        (None, None) => Err((
            "content",
            "give file = \"….json\" or url = \"https://…\"".into(),
        )),
    }
}

/// The file's keys and values, with a problem for each key at fault: each
/// such key (its lines made comments, so that every line keeps its number)
/// is set aside and the rest read again, so that one mistake does not hide
/// the file's others. Fails with what stops the file being read.
/// Returns, with the keys and values, the problems and the keys they named.
fn read_toml(
    path: &Path,
    source: &str,
) -> Result<(CampaignToml, Vec<Problem>, Vec<String>), Vec<Problem>> {
    /// Problems reported at most: past this the file is something else.
    const MOST_PROBLEMS: usize = 20;
    let mut working = source.to_owned();
    let mut problems = Vec::new();
    // Keys already reported (or suggested for a misspelt one): that they
    // are then missing says nothing new.
    let mut named: Vec<String> = Vec::new();
    loop {
        let e = match toml::from_str::<CampaignToml>(&working) {
            Ok(raw) => return Ok((raw, problems, named)),
            Err(e) => e,
        };
        if let Some(missing) = missing_field(e.message()) {
            if !named.iter().any(|k| k == missing) {
                problems.push(toml_problem(path, &working, &e));
            }
            return Err(problems);
        }
        let problem = toml_problem(path, &working, &e);
        named.extend(problem.subject.iter().map(|k| last_segment(k).to_owned()));
        if let Some((key, known)) = unknown_field(e.message()) {
            named.extend(crate::diagnostic::closest(&key, &known).map(str::to_owned));
        }
        problems.push(problem);
        let Some(line) = e
            .span()
            .map(|s| working[..s.start.min(working.len())].matches('\n').count())
        else {
            return Err(problems);
        };
        let rest = e
            .span()
            .and_then(|s| blank_inline_pair(&working, s.start))
            .or_else(|| set_aside(&working, line));
        match rest {
            Some(rest) if problems.len() < MOST_PROBLEMS => working = rest,
            _ => return Err(problems),
        }
    }
}

/// serde's "missing field `x`" as x.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

fn last_segment(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// `source` with the `key = value` pair of an inline table whose key
/// starts at `at` blanked out, with a comma beside it, so that the table's
/// other keys are read and every position stays where it was. None if no
/// such pair starts there.
fn blank_inline_pair(source: &str, at: usize) -> Option<String> {
    let bytes = source.as_bytes();
    let before = source.get(..at)?.trim_end_matches([' ', '\t']);
    if !before.ends_with(['{', ',']) {
        return None;
    }
    let mut i = at;
    while i < bytes.len() && !matches!(bytes[i], b'=' | b'\n' | b',' | b'}') {
        i += 1;
    }
    if bytes.get(i) != Some(&b'=') {
        return None;
    }
    let end = inline_value_end(bytes, i + 1)?;
    let (from, to) = match bytes.get(end) {
        Some(b',') => (at, end + 1),
        // The last pair: the comma before it goes.
        _ if before.ends_with(',') => (before.len() - 1, end),
        _ => (at, end),
    };
    let mut blanked = source.to_owned();
    blanked.replace_range(from..to, &" ".repeat(to - from));
    toml::from_str::<toml::Table>(&blanked)
        .is_ok()
        .then_some(blanked)
}

/// Where an inline table's value that starts at `from` ends: at the comma
/// or brace after it, outside strings and brackets. None past the line.
fn inline_value_end(bytes: &[u8], from: usize) -> Option<usize> {
    let (mut depth, mut quote, mut i) = (0usize, None, from);
    while let Some(&b) = bytes.get(i) {
        match (quote, b) {
            (_, b'\n') => return None,
            (Some(b'"'), b'\\') => i += 1,
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'[' | b'{') => depth += 1,
            (None, b',' | b']' | b'}') if depth == 0 => return Some(i),
            (None, b']' | b'}') => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// `source` with line `line` (from 0) made a comment, and with it a table's
/// keys (if it is a table's header) or the rest of a value that spans
/// lines; None if no such cut leaves TOML that reads.
fn set_aside(source: &str, line: usize) -> Option<String> {
    /// The most lines one value may span and still be set aside.
    const MOST_LINES: usize = 200;
    let lines: Vec<&str> = source.split_inclusive('\n').collect();
    let is_header = |l: &str| l.trim_start().starts_with('[');
    let mut end = line + 1;
    if lines.get(line).is_some_and(|l| is_header(l)) {
        while end < lines.len() && !is_header(lines[end]) {
            end += 1;
        }
    }
    while end <= lines.len().min(line + MOST_LINES) {
        let cut: String = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if (line..end).contains(&i) {
                    format!("#{l}")
                } else {
                    (*l).to_owned()
                }
            })
            .collect();
        if toml::from_str::<toml::Table>(&cut).is_ok() {
            return Some(cut);
        }
        end += 1;
    }
    None
}

/// toml's error, located: its span points at the offending key or value.
/// An unknown key is named with the known one it is closest to, if any.
fn toml_problem(path: &Path, source: &str, e: &toml::de::Error) -> Problem {
    let message = e.message();
    let Some(span) = e.span() else {
        return Problem::error(path, message.to_owned());
    };
    let (line, column) = line_col(source, span.start);
    if let Some((key, known)) = unknown_field(message) {
        let hint = match crate::diagnostic::closest(&key, &known) {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!("the keys here are {}", known.join(", ")),
        };
        return Problem::error(path, format!("unknown key: {hint}"))
            .at(line, column)
            .about(key);
    }
    let p = Problem::error(path, message.to_owned()).at(line, column);
    // A value's span is on its key's line; a missing key's is the table.
    let one_line = !source.get(span.clone()).unwrap_or("").contains('\n');
    match key_on_line(source, span.start).filter(|_| one_line) {
        Some(key) => p.about(key),
        None => p,
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`" as (x, [a, b]).
fn unknown_field(message: &str) -> Option<(String, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let known = rest.split('`').skip(1).step_by(2).collect::<Vec<_>>();
    Some((key.to_owned(), known))
}

/// The key set on the line at `offset` (`key = value`), with its table's
/// name before it if it is in one (`content.file`).
fn key_on_line(source: &str, offset: usize) -> Option<String> {
    let before = &source[..offset.min(source.len())];
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = source[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.contains(['[', '#', ' ']) {
        return None;
    }
    let table = before[..start]
        .lines()
        .rev()
        .find_map(|l| Some(table_header(l)?.trim_matches(['[', ']']).trim().to_owned()));
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_owned(),
    })
}

/// Where `key` is set (`key = …` at the start of a line), so that a value
/// problem found after parsing can still name its line.
///
/// `TABLE[i].KEY` names a key of the i-th (from 0) `[[TABLE]]`.
pub fn key_position(source: &str, key: &str) -> (usize, usize) {
    if let Some((table, index, inner)) = array_key(key) {
        return array_key_position(source, table, index, inner);
    }
    if let Some((table, inner)) = key.split_once('.') {
        return table_key_position(source, table, inner);
    }
    for (i, line) in source.lines().enumerate() {
        if let Some(column) = sets_key(line, key) {
            return (i + 1, column);
        }
        if table_header(line) == Some(key) {
            return (i + 1, 1);
        }
    }
    (0, 0)
}

/// The name in a `[table]` header line (`[name]` of a `[[name]]`).
fn table_header(line: &str) -> Option<&str> {
    Some(line.trim().strip_prefix('[')?.strip_suffix(']')?.trim())
}

/// The column `key` starts at if `line` is `key = …`.
fn sets_key(line: &str, key: &str) -> Option<usize> {
    let t = line.trim_start();
    let rest = t.strip_prefix(key)?;
    rest.trim_start()
        .starts_with('=')
        .then(|| line.len() - t.len() + 1)
}

/// The `inner` key of `[table]`; the table's own line when the key is not
/// written on a line of its own (an inline table).
fn table_key_position(source: &str, table: &str, inner: &str) -> (usize, usize) {
    let mut lines = source.lines().enumerate();
    if lines.by_ref().any(|(_, l)| table_header(l) == Some(table)) {
        for (i, line) in lines.take_while(|(_, l)| table_header(l).is_none()) {
            if let Some(column) = sets_key(line, inner) {
                return (i + 1, column);
            }
        }
    }
    key_position(source, table)
}

/// `waves[1].send_at` as ("waves", 1, "send_at").
fn array_key(key: &str) -> Option<(&str, usize, &str)> {
    let (head, inner) = key.split_once("].")?;
    let (table, index) = head.split_once('[')?;
    Some((table, index.parse().ok()?, inner))
}

/// The `inner` key of the `index`-th `[[table]]`, or its header when the
/// key is not written there.
fn array_key_position(source: &str, table: &str, index: usize, inner: &str) -> (usize, usize) {
    let header = format!("[[{table}]]");
    let mut seen = 0;
    let mut start = None;
    for (i, line) in source.lines().enumerate() {
        let t = line.trim();
        if let Some(at) = start {
            if t.starts_with('[') {
                return (at, 1);
            }
            if let Some(column) = sets_key(line, inner) {
                return (i + 1, column);
            }
        } else if t == header {
            if seen == index {
                start = Some(i + 1);
            }
            seen += 1;
        }
    }
    start.map_or((0, 0), |at| (at, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_of_the_second_array_table_is_found_there() {
        let src =
            "name = \"top\"\n[[waves]]\nname = \"a\"\n[[waves]]\nchannels = []\nname = \"b\"\n";
        assert_eq!(key_position(src, "name"), (1, 1));
        assert_eq!(key_position(src, "waves[1].name"), (6, 1));
        assert_eq!(
            key_position(src, "waves[0].channels"),
            (2, 1),
            "not written: its header"
        );
    }

    const GOOD: &str = r#"
kind = "market_bulletin"
purpose = "marketing"
title = "每日市场快报"
audience = "bulletin_audience"
templates = "market_bulletin"
channels = ["email", "sms"]
sms_max_segments = 2

[content]
file = "content/market_bulletin.json"

[context]
stock = "600519"
"#;

    fn parse(src: &str) -> Result<Campaign, Vec<String>> {
        Campaign::parse(Path::new("campaigns/daily.toml"), src)
            .map_err(|ps| ps.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_good_file_parses() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.name, "daily");
        assert_eq!(c.kind, Kind::MarketBulletin);
        assert_eq!(c.audience, Audience::Rule("bulletin_audience".into()));
        assert_eq!(c.channels, vec![Channel::Email, Channel::Sms]);
        assert_eq!(c.context["stock"], "600519");
        assert_eq!(
            c.content,
            Some(ContentSource::File("content/market_bulletin.json".into()))
        );
        assert_eq!(
            c.content_path(Path::new("content/x.json")),
            PathBuf::from("campaigns/content/x.json")
        );
    }

    #[test]
    fn a_misspelt_key_is_named_with_its_line() {
        let err = parse(&GOOD.replace("channels =", "chanels =")).unwrap_err();
        assert!(err[0].starts_with("campaigns/daily.toml:7:"), "{err:?}");
        assert!(err[0].contains("'chanels'"), "{err:?}");
        assert!(err[0].contains("did you mean `channels`?"), "{err:?}");
        // That `channels` is then missing says nothing new.
        assert_eq!(err.len(), 1, "{err:?}");
    }

    #[test]
    fn a_mistake_over_several_lines_or_a_whole_table_is_set_aside() {
        let src = GOOD
            .replace(
                "sms_max_segments = 2",
                "sms_max_segments = 2\nchanels_extra = [\n  \"email\",\n]\nsend_bye = \"4h\"",
            )
            .replace("[context]", "[sending]\nfrequency_cap = 5\n\n[context]");
        let err = parse(&src).unwrap_err();
        let has = |key: &str, text: &str| err.iter().any(|e| e.contains(key) && e.contains(text));
        assert!(has("9:1: 'chanels_extra'", "unknown key"), "{err:?}");
        assert!(
            has("12:1: 'send_bye'", "did you mean `send_by`?"),
            "{err:?}"
        );
        assert!(has("'sending'", "unknown key"), "{err:?}");
        assert!(!err.iter().any(|e| e.contains("frequency_cap")), "{err:?}");
        assert_eq!(err.len(), 3, "{err:?}");
    }

    #[test]
    fn misspelt_keys_do_not_hide_the_files_other_problems() {
        let body = GOOD
            .replace("sms_max_segments", "sms_max_segmnts")
            .replace(
                "\"market_bulletin\"\npurpose",
                "\"Market Bulletin\"\npurpose",
            )
            .replace("[content]\n", "[content]\nfiel = \"x.json\"\n");
        let src = format!("zzz = 1\n{body}");
        let err = parse(&src).unwrap_err();
        let has = |key: &str, text: &str| err.iter().any(|e| e.contains(key) && e.contains(text));
        assert!(
            has("'sms_max_segmnts'", "did you mean `sms_max_segments`?"),
            "{err:?}"
        );
        assert!(has("'fiel'", "did you mean `file`?"), "{err:?}");
        assert!(has("'zzz'", "the keys here are kind, purpose"), "{err:?}");
        assert!(has("'kind'", "Market Bulletin"), "{err:?}");
    }

    #[test]
    fn every_misspelt_key_of_an_inline_table_is_reported() {
        let inline = "content = { fiel = \"x.json\", ulr = \"https://x/{a,b}\", timeout_sec = 5 }";
        let src = GOOD
            .replace("[content]\nfile = \"content/market_bulletin.json\"\n", "")
            .replace("sms_max_segments = 2", inline);
        let err = parse(&src).unwrap_err();
        assert_eq!(
            err,
            [
                "campaigns/daily.toml:8:13: 'fiel': unknown key: did you mean `file`?",
                "campaigns/daily.toml:8:30: 'ulr': unknown key: did you mean `url`?",
                "campaigns/daily.toml:8:55: 'timeout_sec': unknown key: did you mean `timeout_secs`?",
            ]
        );
    }

    #[test]
    fn a_triggers_problems_are_shown_at_their_keys() {
        // GOOD's lines 1-14, then the trigger's header (15) and keys.
        let trigger = "[trigger]\nshedule = \"0 30 8 * * *\"\ntime_zone = \"Asia/Shanghai\"\n";
        let err = parse(&format!("{GOOD}{trigger}")).unwrap_err();
        assert_eq!(
            err,
            [
                "campaigns/daily.toml:16:1: 'trigger.shedule': unknown key: did you mean `schedule`?",
                "campaigns/daily.toml:17:1: 'trigger.time_zone': unknown key: did you mean `timezone`?",
            ]
        );
        let err = parse(&format!("{GOOD}[trigger]\nschedule = \"0 30 25 * * *\"\n")).unwrap_err();
        assert!(
            err[0].starts_with("campaigns/daily.toml:16:1: 'trigger.schedule': "),
            "{err:?}"
        );
        // Inline, the trigger's own line.
        let err = parse(&GOOD.replace("sms_max_segments = 2", "trigger = { at = \"soon\" }"))
            .unwrap_err();
        assert!(
            err[0].starts_with("campaigns/daily.toml:8:1: 'trigger.at': "),
            "{err:?}"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_its_key() {
        let err = parse(&GOOD.replace("title =", "product_risk = 3\ntitle =")).unwrap_err();
        assert_eq!(err.len(), 1, "{err:?}");
        assert!(err[0].contains("'product_risk'"), "{err:?}");
        assert!(err[0].contains("expected a string"), "{err:?}");
        // Nor does the first hide the others.
        let src = GOOD.replace("[\"email\", \"sms\"]", "\"email\"").replace(
            "sms_max_segments = 2",
            "sms_max_segments = \"2\"\nrequires_approval = \"yes\"",
        );
        let err = parse(&src).unwrap_err();
        assert_eq!(err.len(), 3, "{err:?}");
        for key in ["'channels'", "'sms_max_segments'", "'requires_approval'"] {
            assert!(err.iter().any(|e| e.contains(key)), "{key}: {err:?}");
        }
        let err =
            parse(&GOOD.replace("[content]\n", "[content]\ntimeout_secs = \"ten\"\n")).unwrap_err();
        assert!(err[0].contains("'content.timeout_secs'"), "{err:?}");
    }

    #[test]
    fn bad_values_are_all_reported_with_their_keys() {
        let src = GOOD
            .replace(
                "\"market_bulletin\"\npurpose",
                "\"Market Bulletin\"\npurpose",
            )
            .replace("[\"email\", \"sms\"]", "[\"email\", \"email\"]")
            .replace("sms_max_segments = 2", "sms_max_segments = 0");
        let err = parse(&src).unwrap_err();
        assert_eq!(err.len(), 3, "{err:?}");
        assert!(err[0].contains(":2:1: 'kind'"), "{err:?}");
        assert!(
            err[1].contains("'channels': 'email' is listed twice"),
            "{err:?}"
        );
        assert!(err[2].contains(":8:1: 'sms_max_segments'"), "{err:?}");
    }

    #[test]
    fn a_product_risk_out_of_range_is_named_once() {
        let src = GOOD.replace("purpose =", "product_risk = \"R6\"\npurpose =");
        let err = parse(&src).unwrap_err();
        assert!(
            err[0].ends_with("'product_risk': 'R6' is not a product risk (R1 to R5)"),
            "{err:?}"
        );
    }

    #[test]
    fn a_wrong_channel_and_a_wrong_purpose_are_refused() {
        let err = parse(&GOOD.replace("\"sms\"]", "\"wechat\"]")).unwrap_err();
        assert!(err[0].contains("wechat"), "{err:?}");
        let err = parse(&GOOD.replace("\"marketing\"", "\"promo\"")).unwrap_err();
        assert!(err[0].contains(":3:"), "{err:?}");
    }

    #[test]
    fn content_is_a_file_or_a_url() {
        let both = GOOD.replace("file = ", "url = \"https://x.example.com/a.json\"\nfile = ");
        assert!(parse(&both).unwrap_err()[0].contains("not both"));
        let url = GOOD.replace(
            "file = \"content/market_bulletin.json\"",
            "url = \"ftp://x\"",
        );
        assert!(parse(&url).unwrap_err()[0].contains("'url'"));
        let ok = GOOD.replace(
            "file = \"content/market_bulletin.json\"",
            "url = \"https://data.example.com/bulletin.json\"",
        );
        assert!(matches!(
            parse(&ok).unwrap().content,
            Some(ContentSource::Url {
                timeout_secs: DEFAULT_FETCH_TIMEOUT_SECS,
                ..
            })
        ));
    }

    #[test]
    fn a_misspelt_shipped_kind_is_not_taken_for_a_custom_one() {
        let err = parse(&GOOD.replace(
            "\"market_bulletin\"\npurpose",
            "\"market_buletin\"\npurpose",
        ))
        .unwrap_err();
        assert!(err[0].contains("did you mean 'market_bulletin'"), "{err:?}");
        let c = parse(&GOOD.replace(
            "\"market_bulletin\"\npurpose",
            "\"account_notice\"\npurpose",
        ))
        .unwrap();
        assert_eq!(c.kind, Kind::Custom("account_notice".into()));
    }

    #[test]
    fn research_and_bulletins_are_marketing() {
        let err = parse(&GOOD.replace("\"marketing\"", "\"service\"")).unwrap_err();
        assert!(err[0].contains("'purpose'"), "{err:?}");
    }

    #[test]
    fn broadcast_is_an_audience() {
        let c = parse(&GOOD.replace("\"bulletin_audience\"", "\"broadcast\"")).unwrap();
        assert_eq!(c.audience, Audience::Broadcast);
    }
}
