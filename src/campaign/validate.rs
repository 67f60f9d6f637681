//! `herald campaigns validate`: everything that can be known wrong before a
//! send. The campaign file, its rule, its content, its templates' names
//! (also inside `{{#if}}`), and a render of every part for generated
//! clients, including one that lacks every optional field.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;

use super::file::{self, Audience, Campaign, ContentSource, Kind, Purpose};
use super::{content, parts_for, Prepared};
use crate::channel::providers::Providers;
use crate::channel::Channel;
use crate::client::synthetic::{self, SyntheticOptions};
use crate::client::Client;
use crate::config::Config;
use crate::diagnostic::Problem;
use crate::message::check::{self, Findings};
use crate::message::data::{self, bare_client};
use crate::message::render::RenderFailure;
use crate::message::shape::Shape;
use crate::message::template::Part;
use crate::segment::{engine, rule, vocabulary::Today};

/// How many generated clients each template is rendered for.
const SAMPLE_CLIENTS: u64 = 200;

/// The result for one campaign file.
#[derive(Debug, Serialize)]
pub struct Report {
    pub campaign: String,
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|p| p.is_error()).count()
    }
}

/// Checks one campaign file. `providers` is built once for all campaigns
/// checked (`Providers::from_config`); its error is reported against
/// `herald.toml`.
pub async fn validate(
    path: &Path,
    config: &Config,
    providers: &Result<Providers, String>,
    today: NaiveDate,
) -> Report {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("?")
        .to_owned();
    let problems = match Campaign::load(path) {
        Err(problems) => problems,
        Ok(campaign) => check_campaign(campaign, config, providers, today).await,
    };
    Report {
        campaign: name,
        path: path.to_path_buf(),
        problems,
    }
}

async fn check_campaign(
    campaign: Campaign,
    config: &Config,
    providers: &Result<Providers, String>,
    today: NaiveDate,
) -> Vec<Problem> {
    let mut problems = check_rule(&campaign, config, today);
    problems.extend(check_sending(&campaign, config, today));
    let prepared = match Prepared::new(campaign, config, today).await {
        Ok(p) => p,
        Err(mut more) => {
            problems.append(&mut more);
            return problems;
        }
    };
    problems.extend(content::check(
        &prepared.campaign.kind,
        &prepared.content,
        &content_origin(&prepared.campaign),
    ));
    problems.extend(check_firm(&prepared.campaign, config));
    problems.extend(check_providers(&prepared.campaign, config, providers));
    let clients = sample_clients(today);
    problems.extend(check_templates(&prepared, &clients));
    if problems.iter().any(Problem::is_error) {
        // Rendering broken templates would only repeat what was found.
        return problems;
    }
    problems.extend(check_renders(&prepared, &clients));
    if prepared.campaign.seminar_path().is_some() {
        problems.extend(check_notices(&prepared, config, today, &clients));
    }
    problems
}

/// A seminar's notices render from their own templates when answers come
/// in: each kind is rendered for every sample client on both channels now,
/// so that a broken notice template is found before anyone answers.
fn check_notices(
    invitation: &Prepared,
    config: &Config,
    today: NaiveDate,
    clients: &[Client],
) -> Vec<Problem> {
    use crate::seminar::notice::{self, Notice};
    use crate::store::seminars::Standing;
    let seated = Standing::Seated { position: 1 };
    let kinds = [
        (Notice::Confirmed, seated),
        (Notice::Waitlisted, Standing::Waitlisted { place: 3 }),
        (Notice::Promoted, seated),
        (Notice::Changed, seated),
        (Notice::Cancelled, seated),
        (Notice::Reminder, seated),
    ];
    let mut problems = Vec::new();
    for (kind, standing) in kinds {
        let mut content = invitation.content.clone();
        content["notice"] = serde_json::json!(kind.as_str());
        let campaign = notice::campaign(invitation.campaign.clone());
        let prepared = match Prepared::with_content(campaign, config, today, content) {
            Ok(p) => p,
            Err(more) => return more,
        };
        let mut rsvp = notice::told(standing, Some(kind));
        rsvp["code"] = serde_json::json!("K7QX2M");
        for client in clients {
            for channel in [Channel::Email, Channel::Sms] {
                let has_address = match channel {
                    Channel::Email => client.email.is_some(),
                    Channel::Sms => client.phone.is_some(),
                };
                if !has_address {
                    continue;
                }
                if let Err(e) = prepared.outgoing(client, 0, channel, Some(&rsvp)) {
                    let mut p = e.to_problem();
                    p.message = format!("{} notice: {}", kind.as_str(), p.message);
                    problems.push(p);
                }
            }
        }
    }
    dedupe(problems)
}

/// The rule must compile with the campaign's context keys.
fn check_rule(campaign: &Campaign, config: &Config, today: NaiveDate) -> Vec<Problem> {
    let Audience::Rule(name) = &campaign.audience else {
        return Vec::new();
    };
    let path = rule::resolve(name, &config.base_dir.join("rules"));
    let engine = engine::engine(Today {
        date: today,
        assessment_valid_days: config.risk_assessment_valid_days,
    });
    let keys: HashSet<String> = campaign.context.keys().cloned().collect();
    match rule::Rule::load(&path, &engine, &keys) {
        Ok(_) => Vec::new(),
        Err(e) if e.line == 0 => vec![Problem::error(&campaign.path, e.message).about("audience")],
        Err(e) => vec![Problem::error(Path::new(&e.file), e.message).at(e.line, e.column)],
    }
}

/// What would stop a run of this campaign today: a covered stock on the
/// restricted list, an approval nobody may give.
fn check_sending(campaign: &Campaign, config: &Config, today: NaiveDate) -> Vec<Problem> {
    let mut problems = Vec::new();
    let at = |key: &str, message: String| {
        let (line, column) = key_line(&campaign.path, key);
        Problem::error(&campaign.path, message)
            .at(line, column)
            .about(key)
    };
    if !campaign.rules.stocks.is_empty() {
        match super::restricted::RestrictedList::load(&config.sending.restricted_file) {
            Err(e) => problems.push(Problem::error(&config.sending.restricted_file, e)),
            Ok(list) => {
                if let Some(r) = list.blocking(&campaign.rules.stocks, today) {
                    problems.push(at(
                        "stocks",
                        format!(
                            "{} is on the restricted list on {today} ({}): a run would be stopped",
                            r.code,
                            r.describe(&list)
                        ),
                    ));
                }
            }
        }
    }
    if campaign.rules.requires_approval && config.sending.approvers.is_empty() {
        problems.push(at(
            "requires_approval",
            format!(
                "nobody can approve it: [sending] approvers in {} is empty",
                config.source
            ),
        ));
    }
    let firm_cap = config.sending.frequency_cap;
    if let Some(cap) = campaign.rules.frequency_cap.filter(|&c| c > firm_cap) {
        let (line, column) = key_line(&campaign.path, "frequency_cap");
        problems.push(
            Problem::warning(
                &campaign.path,
                format!(
                    "{cap} is more than the firm's {firm_cap} ([sending] frequency_cap in {}): the firm's applies",
                    config.source
                ),
            )
            .at(line, column)
            .about("frequency_cap"),
        );
    }
    problems.extend(check_trigger(campaign, config, &at));
    problems
}

/// How many days ahead a trading-day schedule needs the calendar to know.
const CALENDAR_NOTICE_DAYS: i64 = 45;

/// A trading-day schedule needs an exchange calendar that covers its next
/// fire time, and warns well before the calendar runs out.
fn check_trigger(
    campaign: &Campaign,
    config: &Config,
    at: &dyn Fn(&str, String) -> Problem,
) -> Vec<Problem> {
    let crate::schedule::Trigger::Schedule(schedule) = &campaign.rules.trigger else {
        return Vec::new();
    };
    if !schedule.trading_days_only {
        return Vec::new();
    }
    let calendar = match config.calendar() {
        Ok(c) => c,
        Err(p) => return vec![p],
    };
    let now = config.firm_time().now();
    if let Err(e) = campaign.rules.trigger.next(now, &calendar) {
        return vec![at(
            "trigger",
            format!("cannot tell when it fires next: {e}"),
        )];
    }
    let horizon = now.with_timezone(&schedule.timezone).date_naive()
        + chrono::Duration::days(CALENDAR_NOTICE_DAYS);
    if calendar.last < horizon {
        let mut p = at(
            "trigger",
            format!(
                "the exchange calendar {} ends on {}: add the next year's holidays before then, or trading-day runs stop",
                calendar.source.display(),
                calendar.last
            ),
        );
        p.severity = crate::diagnostic::Severity::Warning;
        return vec![p];
    }
    Vec::new()
}

fn content_origin(campaign: &Campaign) -> PathBuf {
    match &campaign.content {
        Some(ContentSource::File(f)) => campaign.content_path(f),
        Some(ContentSource::Url { url, .. }) => PathBuf::from(url.as_str()),
        Some(ContentSource::Seminar(_)) => campaign.seminar_path().unwrap_or_default(),
        None => campaign.path.clone(),
    }
}

/// A research report must carry the firm's name and licence statement;
/// every SMS the sender's signature (通信短信息服务管理规定).
fn check_firm(campaign: &Campaign, config: &Config) -> Vec<Problem> {
    let report = "a research report must show it";
    let mut needed = Vec::new();
    if campaign.kind == Kind::ResearchReport {
        needed.push(("firm.name", &config.firm.name, report));
        needed.push(("firm.licence", &config.firm.licence, report));
    }
    if campaign.channels.contains(&Channel::Sms) {
        let why =
            "every SMS must carry the sender's signature (set firm.short_name or sms.signature)";
        needed.push(("sms.signature", &config.sms.signature, why));
    }
    let file = Path::new(&config.source);
    needed
        .into_iter()
        .filter(|(_, v, _)| v.trim().is_empty())
        .map(|(key, _, why)| {
            Problem::error(
                file,
                format!("is not set: {why} (campaign {})", campaign.name),
            )
            .about(key)
        })
        .collect()
}

/// Each channel must have a provider that takes what the campaign sends:
/// rendered text, or an approved template. Marketing email without DKIM
/// cannot offer one-click unsubscribe.
fn check_providers(
    campaign: &Campaign,
    config: &Config,
    providers: &Result<Providers, String>,
) -> Vec<Problem> {
    let providers = match providers {
        Ok(p) => p,
        Err(m) => return vec![Problem::error(Path::new(&config.source), m.clone())],
    };
    let mut problems = Vec::new();
    let at = |key: &str, message: String, warning: bool| {
        let p = if warning {
            Problem::warning(&campaign.path, message)
        } else {
            Problem::error(&campaign.path, message)
        };
        let (line, col) = key_line(&campaign.path, key);
        p.at(line, col).about(key)
    };
    for channel in campaign
        .providers
        .keys()
        .filter(|c| !campaign.channels.contains(c))
    {
        problems.push(at(
            "providers",
            format!("names a provider for {channel}, which the campaign does not send by"),
            false,
        ));
    }
    for &channel in &campaign.channels {
        let preferred = campaign.providers.get(&channel).map(String::as_str);
        let key = if preferred.is_some() {
            "providers"
        } else {
            "channels"
        };
        let adapter = match providers.route(channel, campaign.purpose, preferred) {
            Ok(g) => g.adapter(),
            Err(m) => {
                problems.push(at(key, m, false));
                continue;
            }
        };
        let name = adapter.name();
        match (channel, &campaign.sms_template) {
            (Channel::Sms, None) if !adapter.sends_text() => problems.push(at(
                key,
                format!("provider '{name}' sends approved templates only: give sms_template = {{ code = \"…\", params = {{ … }} }}"),
                false,
            )),
            (Channel::Sms, Some(_)) if !adapter.sends_templates() => problems.push(at(
                "sms_template",
                format!("provider '{name}' sends text only: remove sms_template or choose another provider"),
                false,
            )),
            (Channel::Email, _) if campaign.purpose == Purpose::Marketing && !providers.dkim => problems.push(at(
                "channels",
                "marketing email without a DKIM key leaves out List-Unsubscribe-Post (one-click unsubscribe, RFC 8058): set [email.dkim] in herald.toml".into(),
                true,
            )),
            _ => {}
        }
    }
    problems
}

/// Generated clients plus one with nothing but an id and a name.
pub fn sample_clients(today: NaiveDate) -> Vec<Client> {
    let mut clients = synthetic::clients(&SyntheticOptions {
        clients: SAMPLE_CLIENTS,
        seed: 1,
        history_days: 0,
        today,
    });
    // Names run long (阿依古丽·买买提·艾尔肯): SMS length must hold for them too.
    if let Some(first) = clients.first() {
        let mut long = first.clone();
        long.name = "阿依古丽·买买提·艾尔肯".to_owned();
        clients.push(long);
    }
    clients.push(bare_client("0000000000"));
    clients
}

/// The parts the campaign's channels use.
fn used_parts(campaign: &Campaign) -> BTreeSet<Part> {
    campaign
        .channels
        .iter()
        .flat_map(|c| parts_for(*c))
        .copied()
        .collect()
}

/// Every name in every used part, against the shape of the data.
fn check_templates(prepared: &Prepared, clients: &[Client]) -> Vec<Problem> {
    let shape = data_shape(prepared.run_data(), clients);
    let mut problems = Vec::new();
    let mut found: BTreeMap<Part, Findings> = BTreeMap::new();
    for part in used_parts(&prepared.campaign) {
        let Some(t) = prepared.set.parts.get(&part) else {
            continue;
        };
        let mut f = check::check(t, &shape, &prepared.set.partials);
        problems.append(&mut f.problems);
        found.insert(part, f);
    }
    problems.extend(compliance(prepared, &found));
    dedupe(problems)
}

fn data_shape(run_data: &Value, clients: &[Client]) -> Shape {
    let mut data = run_data.clone();
    clients
        .iter()
        .map(|c| {
            data::set_recipient(&mut data, c, 0);
            Shape::of(&data, &["client.attrs"])
        })
        .reduce(Shape::merge)
        .unwrap_or(Shape::Any)
}

/// What the rules ask of the shipped kinds' templates: a research report
/// shows the risk disclaimer; marketing email offers a way to unsubscribe.
fn compliance(prepared: &Prepared, found: &BTreeMap<Part, Findings>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let campaign = &prepared.campaign;
    for part in [Part::Html, Part::Text] {
        let Some(f) = found.get(&part) else { continue };
        let file = prepared.set.dir.join(part.file_name());
        if campaign.kind == Kind::ResearchReport
            && !f
                .partials_used
                .iter()
                .any(|p| p.starts_with("risk_disclaimer"))
        {
            problems.push(Problem::error(
                &file,
                "a research report must include the risk disclaimer ({{> risk_disclaimer_html}} or {{> risk_disclaimer_text}})",
            ));
        }
        if campaign.purpose == Purpose::Marketing && !f.helpers_used.contains("unsubscribe_url") {
            problems.push(Problem::error(
                &file,
                "marketing email must offer a way to unsubscribe ({{unsubscribe_url}})",
            ));
        }
    }
    problems
}

/// Renders every used part for every sample client; reports each distinct
/// failure once, and SMS over the campaign's cap.
fn check_renders(prepared: &Prepared, clients: &[Client]) -> Vec<Problem> {
    let campaign = &prepared.campaign;
    let mut problems = Vec::new();
    let mut ctx = prepared.context();
    let mut longest: Option<(usize, usize, String)> = None;
    for client in clients {
        for channel in &campaign.channels {
            let failure = match channel {
                Channel::Email => match prepared.email(&mut ctx, client, 0) {
                    Ok(email)
                        if email
                            .subject
                            .trim_start_matches(config_marker(prepared))
                            .trim()
                            .is_empty() =>
                    {
                        Some(RenderFailure {
                            file: prepared.set.dir.join(Part::Subject.file_name()),
                            line: None,
                            message: "the subject is empty".into(),
                        })
                    }
                    Ok(_) => None,
                    Err(e) => Some(e),
                },
                Channel::Sms => match prepared.sms(&mut ctx, client, 0) {
                    Ok(sms) => {
                        if longest.as_ref().is_none_or(|l| sms.measure.segments > l.0) {
                            longest = Some((
                                sms.measure.segments,
                                sms.measure.units,
                                client.id.to_string(),
                            ));
                        }
                        None
                    }
                    Err(e) => Some(e),
                },
            };
            if let Some(f) = failure {
                problems.push(f.to_problem());
            }
        }
    }
    if let Some((segments, units, id)) = longest.filter(|l| l.0 > campaign.sms_max_segments) {
        let (line, col) = key_line(&campaign.path, "sms_max_segments");
        problems.push(
            Problem::error(
                &campaign.path,
                format!(
                    "an SMS is {segments} segments ({units} billed characters, client {id}), \
                     over the cap of {}: shorten {} or raise the cap",
                    campaign.sms_max_segments,
                    prepared.set.dir.join(Part::Sms.file_name()).display()
                ),
            )
            .at(line, col)
            .about("sms_max_segments"),
        );
    }
    dedupe(problems)
}

/// The marker herald puts before a marketing subject.
fn config_marker(prepared: &Prepared) -> &str {
    prepared.renderer.ad_marker()
}

/// Where `key` is set in the campaign file, re-read for a problem found
/// after parsing.
fn key_line(path: &Path, key: &str) -> (usize, usize) {
    std::fs::read_to_string(path).map_or((0, 0), |source| file::key_position(&source, key))
}

fn dedupe(problems: Vec<Problem>) -> Vec<Problem> {
    let mut seen = HashSet::new();
    problems
        .into_iter()
        .filter(|p| seen.insert(p.to_string()))
        .collect()
}
