//! Planning a run: the segment, then the gates, then the run's deliveries
//! and suppressions written in one transaction under the run's unique key.

use std::collections::{BTreeMap, HashSet};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;

use super::files;
use crate::campaign::file::OncePer;
use crate::campaign::gates::{self, Policy, Verdict};
use crate::campaign::restricted::RestrictedList;
use crate::campaign::timing::local_instant;
use crate::campaign::{Audience, Campaign, Kind, Prepared, Purpose};
use crate::channel::Channel;
use crate::client::consent::ConsentScope;
use crate::config::Config;
use crate::segment::fields::Fields;
use crate::segment::profile::ClientView;
use crate::segment::rule::Rule;
use crate::segment::vocabulary::Today;
use crate::segment::{engine, eval, snapshot};
use crate::seminar::Seminar;
use crate::store::runs::{AuditEntry, NewDelivery, NewRun, NewSuppression, Planned, Run, RunState};
use crate::store::Store;

/// How to plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The run key; the local date when `None`.
    pub key: Option<String>,
    /// Who launched it.
    pub by: Option<String>,
    /// Plan, count, and roll back.
    pub dry_run: bool,
    pub now: DateTime<Utc>,
    /// Select as if today were this date (`--as-of`); the local date of
    /// `now` when `None`.
    pub today: Option<chrono::NaiveDate>,
    /// A scheduled run's fire time: its `send_by` counts from here, so a
    /// run planned late (after downtime) is not given longer to go stale.
    pub scheduled_at: Option<DateTime<Utc>>,
}

/// What planning found.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub run: Run,
    /// False when a run with this key already existed and was resumed.
    pub new: bool,
    pub dry_run: bool,
    /// Clients the segment selected.
    pub audience: usize,
    pub planned: usize,
    pub by_channel: BTreeMap<String, usize>,
    pub suppressed: BTreeMap<String, usize>,
    /// Planned to wait (quiet hours, release time).
    pub deferred: usize,
    pub rule_errors: usize,
}

/// Plans `campaign` (a name or path). A run that exists under the same key
/// is returned as it is: a second launch resumes it.
pub async fn plan(
    store: &dyn Store,
    config: &Config,
    campaign: &str,
    opts: &PlanOptions,
) -> Result<PlanReport> {
    let started = std::time::Instant::now();
    let campaign = Campaign::load(&campaign_path(config, campaign)).map_err(problems)?;
    let tz = config.timezone;
    let today = opts
        .today
        .unwrap_or_else(|| opts.now.with_timezone(&tz).date_naive());
    let key = opts.key.clone().unwrap_or_else(|| today.to_string());
    if !opts.dry_run {
        if let Some(run) = store.run_by_key(&campaign.name, &key).await? {
            return Ok(existing(run));
        }
    }
    if campaign.kind == Kind::ResearchReport {
        let list =
            RestrictedList::load(&config.sending.restricted_file).map_err(anyhow::Error::msg)?;
        if let Some(r) = list.blocking(&campaign.rules.stocks, today) {
            bail!(
                "{}: stock {} is on the restricted list ({}): the whole run is stopped",
                campaign.path.display(),
                r.code,
                r.describe(&list)
            );
        }
    }
    // The approver must be someone other than who launched the run: a run
    // launched by hand must say by whom.
    let by_hand = opts.scheduled_at.is_none() && !opts.dry_run;
    if campaign.rules.requires_approval && by_hand && opts.by.is_none() {
        bail!(
            "{}: requires_approval = true: say who launches the run with --by NAME (someone else approves it)",
            campaign.path.display()
        );
    }
    let mut campaign = campaign;
    let seminar = match campaign.seminar_path() {
        Some(path) => Some(fit_to_wave(store, &mut campaign, &path, &key, opts.dry_run).await?),
        None => None,
    };
    let prepared = match &seminar {
        Some(wave) => Prepared::with_content(campaign, config, today, wave.content.clone()),
        None => Prepared::new(campaign, config, today).await,
    }
    .map_err(problems)?;
    let campaign = &prepared.campaign;
    let content = serde_json::to_string(&prepared.content)?;
    let content_hash = files::content_hash(&content);
    let file_hashes = files::hash_files(&files::campaign_files(campaign, config), &config.base_dir);
    let fingerprint = files::fingerprint(&content_hash, &file_hashes);

    let today_ctx = Today {
        date: today,
        assessment_valid_days: config.risk_assessment_valid_days,
    };
    let full = seminar.and_then(|s| s.full);
    let selection = match full {
        // A full room: the wave is recorded as stopped, inviting nobody.
        Some(_) => Selection::none(),
        None => select(store, config, campaign, today_ctx).await?,
    };
    let selected_at = started.elapsed();
    let once_per_campaign =
        (campaign.rules.once_per == OncePer::Campaign).then_some(&*campaign.name);
    let known = store
        .gate_facts(once_per_campaign, opts.now - Duration::days(7))
        .await?;
    let facts_at = started.elapsed();
    let policy = Policy::new(
        campaign.purpose,
        campaign.audience == Audience::Broadcast,
        &campaign.rules,
        &campaign.channels,
        config.sending.frequency_cap,
        today,
        config.risk_assessment_valid_days,
    );
    let clients = &selection.population.clients;
    let mut verdicts: Vec<Verdict> = selection
        .matched
        .iter()
        .map(|&i| gates::decide(&policy, &known, &clients[i]))
        .collect();
    let unsuitable: HashSet<String> = selection
        .matched
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| matches!(v, Verdict::Suppress { reason, .. } if reason.is_suitability()))
        .flat_map(|(&i, _)| {
            let c = clients[i].contact();
            c.email
                .iter()
                .chain(c.phone.iter())
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    gates::dedupe_contacts(&mut verdicts, &unsuitable);

    let release = campaign.rules.release_at.map(|t| local_instant(tz, t));
    let start = release.map_or(opts.now, |r| r.max(opts.now));
    let quiet = campaign
        .rules
        .quiet_hours
        .unwrap_or(config.sending.quiet_hours);
    let quiet_applies =
        campaign.purpose == Purpose::Marketing || config.sending.quiet_hours_for_service;
    let mut report = PlanReport {
        run: placeholder_run(),
        new: true,
        dry_run: opts.dry_run,
        audience: selection.matched.len(),
        planned: 0,
        by_channel: BTreeMap::new(),
        suppressed: BTreeMap::new(),
        deferred: 0,
        rule_errors: selection.rule_errors,
    };
    let mut deliveries = Vec::new();
    let mut suppressions = Vec::new();
    for (&i, verdict) in selection.matched.iter().zip(verdicts) {
        let client = &clients[i];
        match verdict {
            Verdict::Send {
                channel,
                address,
                fallback,
            } => {
                let not_before = if channel == Channel::Sms && quiet_applies {
                    quiet.next_allowed(start, tz)
                } else {
                    start
                };
                if not_before > opts.now {
                    report.deferred += 1;
                }
                *report.by_channel.entry(channel.to_string()).or_default() += 1;
                deliveries.push(NewDelivery {
                    client_id: client.id().to_owned(),
                    decision: decision(&policy, client, channel),
                    channel,
                    address,
                    fallback,
                    not_before,
                });
            }
            Verdict::Suppress { reason, channel } => {
                *report.suppressed.entry(reason.to_string()).or_default() += 1;
                suppressions.push(NewSuppression {
                    client_id: client.id().to_owned(),
                    reason: reason.as_str(),
                    channel,
                });
            }
        }
    }
    report.planned = deliveries.len();
    let gated_at = started.elapsed();
    if let Some(first) = deliveries.first() {
        render_check(store, &prepared, first).await?;
    }
    let send_by = campaign
        .rules
        .send_by
        .map(|s| s.deadline(opts.scheduled_at.unwrap_or(opts.now), today, tz));
    let new_run = NewRun {
        campaign: campaign.name.clone(),
        run_key: key,
        kind: campaign.kind.to_string(),
        purpose: campaign.purpose,
        state: if full.is_some() {
            RunState::Stopped
        } else if campaign.rules.requires_approval {
            RunState::AwaitingApproval
        } else {
            RunState::Sending
        },
        launched_by: opts.by.clone(),
        launched_at: opts.now,
        content,
        content_hash,
        files: serde_json::to_string(&file_hashes)?,
        fingerprint,
        not_before: release,
        send_by,
        audience: selection.matched.len() as i64,
        stop_reason: full,
    };
    let audit = AuditEntry {
        at: opts.now,
        actor: opts.by.clone().unwrap_or_else(|| "(unnamed)".into()),
        action: "launch".into(),
        subject: format!("{}/{}", new_run.campaign, new_run.run_key),
        details: json!({
            "audience": report.audience,
            "planned": report.planned,
            "suppressed": report.suppressed,
            "fingerprint": new_run.fingerprint,
        }),
    };
    let planned = store
        .plan_run(&new_run, &deliveries, &suppressions, &audit, !opts.dry_run)
        .await?;
    tracing::debug!(
        ?selected_at,
        ?facts_at,
        ?gated_at,
        written_at = ?started.elapsed(),
        "planned (times since the plan started)"
    );
    match planned {
        Planned::New(run) => {
            report.run = run;
            Ok(report)
        }
        // Another launch won the race for this key: resume that run.
        Planned::Existing(run) => Ok(existing(run)),
    }
}

/// Renders the first planned message: a run whose messages cannot render
/// (a template error, no tracking secret for its links) is refused before
/// it is stored, rather than failing every delivery.
async fn render_check(store: &dyn Store, prepared: &Prepared, first: &NewDelivery) -> Result<()> {
    let id = crate::client::types::ClientId::parse(&first.client_id)
        .map_err(|e| anyhow::anyhow!(e.0))?;
    let client = store
        .client(&id)
        .await?
        .with_context(|| format!("client {id} vanished while planning"))?;
    prepared
        .outgoing(&client.client, 0, first.channel, None)
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: the campaign's messages cannot be rendered",
                e.to_problem()
            )
        })?;
    Ok(())
}

fn existing(run: Run) -> PlanReport {
    PlanReport {
        audience: run.audience as usize,
        run,
        new: false,
        dry_run: false,
        planned: 0,
        by_channel: BTreeMap::new(),
        suppressed: BTreeMap::new(),
        deferred: 0,
        rule_errors: 0,
    }
}

fn placeholder_run() -> Run {
    Run {
        id: 0,
        campaign: String::new(),
        run_key: String::new(),
        kind: String::new(),
        purpose: Purpose::Marketing,
        state: RunState::Sending,
        launched_by: None,
        launched_at: Utc::now(),
        approved_by: None,
        approved_at: None,
        content: String::new(),
        content_hash: String::new(),
        files: String::new(),
        fingerprint: String::new(),
        not_before: None,
        send_by: None,
        audience: 0,
        stop_reason: None,
    }
}

/// The clients the audience selects, as indexes into the population.
struct Selection {
    population: eval::Population,
    matched: Vec<usize>,
    rule_errors: usize,
}

impl Selection {
    fn none() -> Self {
        Selection {
            population: eval::Population::new(Default::default()),
            matched: Vec::new(),
            rule_errors: 0,
        }
    }
}

/// A seminar invitation's run, fitted to its wave.
struct SeminarWave {
    /// The seminar's particulars with the seats left now.
    content: serde_json::Value,
    /// Why the wave invites nobody: the room is full.
    full: Option<String>,
}

/// Fits a seminar's invitation campaign to the wave `key` names: the
/// wave's rule and channel order, the seminar's product risk, and the
/// seats left. A full room stops the wave.
async fn fit_to_wave(
    store: &dyn Store,
    campaign: &mut Campaign,
    path: &std::path::Path,
    key: &str,
    dry_run: bool,
) -> Result<SeminarWave> {
    let seminar = Seminar::load(path, &campaign.rules_dir()).map_err(problems)?;
    if !seminar.waves.is_empty() {
        let wave = seminar.wave(key).with_context(|| {
            let notices = if key.starts_with("notice:") {
                " (notice runs are made by herald as answers, changes and reminders come in; `herald runs` lists those that exist)"
            } else {
                ""
            };
            format!(
                "{}: a run of a seminar's invitation is one of its waves ({}): herald send {} --key WAVE{notices}",
                path.display(),
                seminar.wave_names(),
                campaign.name
            )
        })?;
        campaign.audience = Audience::Rule(wave.audience.clone());
        campaign.channels = wave.channels.clone();
    }
    if let Some(risk) = seminar.product_risk {
        match campaign.rules.product_risk {
            Some(own) if own != risk => bail!(
                "{}: product_risk {own} differs from its seminar's {risk} ({})",
                campaign.path.display(),
                path.display()
            ),
            _ => campaign.rules.product_risk = Some(risk),
        }
    }
    if !dry_run {
        crate::seminar::notice::sync(store, &campaign.name, &seminar, chrono::Utc::now()).await?;
    }
    let seated = match store.attendance(&seminar.name).await {
        Ok(a) => a.seated,
        // Not yet known to the store (a dry run before any answer).
        Err(crate::store::StoreError::Corrupt(_)) => 0,
        Err(e) => return Err(e.into()),
    };
    let full = if seminar.cancelled {
        Some(format!(
            "seminar {} is cancelled, so wave {key} invites nobody",
            seminar.name
        ))
    } else {
        (seated >= seminar.capacity).then(|| {
            format!(
                "seminar {} is full: {seated} of {} seats accepted, so wave {key} invites nobody",
                seminar.name, seminar.capacity
            )
        })
    };
    let content = match crate::seminar::notice::current(store, &seminar.name).await? {
        Some(now) => now,
        None => seminar.content(seminar.capacity - seated),
    };
    Ok(SeminarWave { content, full })
}

async fn select(
    store: &dyn Store,
    config: &Config,
    campaign: &Campaign,
    today: Today,
) -> Result<Selection> {
    let gates_read = Fields::CONTACT
        .with(Fields::SUITABILITY)
        .with(Fields::CONSENTS);
    let rule = match &campaign.audience {
        Audience::Broadcast => None,
        Audience::Rule(name) => {
            let engine = engine::engine(today);
            let keys: HashSet<String> = campaign.context.keys().cloned().collect();
            let path = crate::segment::rule::resolve(name, &config.base_dir.join("rules"));
            let rule =
                Rule::load(&path, &engine, &keys).map_err(|e| anyhow::anyhow!(e.render()))?;
            let engine = if crate::segment::fields::calls(&rule.ast, "rsvp") {
                engine::engine_with(today, std::sync::Arc::new(engine::rsvps(store).await?))
            } else {
                engine
            };
            Some((engine, rule))
        }
    };
    let fields = rule.as_ref().map_or(gates_read, |(_, r)| {
        Fields::read_by(&r.ast).with(gates_read)
    });
    let file = snapshot::path(&config.cache_dir(), &config.database_url);
    let (population, _) = snapshot::population(store, config.timezone, &file, fields)
        .await
        .context("cannot read the clients")?;
    let Some((engine, rule)) = rule else {
        let matched = (0..population.clients.len()).collect();
        return Ok(Selection {
            population,
            matched,
            rule_errors: 0,
        });
    };
    let ctx: rhai::Map = campaign
        .context
        .iter()
        .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
        .collect();
    let outcome = eval::evaluate(&engine, &rule, &ctx, today, &population.clients)?;
    Ok(Selection {
        population,
        matched: outcome.matched,
        rule_errors: outcome.error_count,
    })
}

/// What the archive keeps of why this client was sent to: the suitability
/// inputs and consent states the gates saw.
fn decision(policy: &Policy, client: &ClientView, channel: Channel) -> String {
    let s = client.suitability();
    let c = client.consents();
    json!({
        "channel": channel,
        "product_risk": policy.product_risk.map(|r| r.to_string()),
        "risk_level": (s.risk_level > 0).then(|| format!("C{}", s.risk_level)),
        "investor_type": s.investor_type.as_str(),
        "lowest_risk_category": s.lowest_risk_category,
        "risk_assessed_on": s.risk_assessed_on,
        "consent": {
            "email": c.granted[ConsentScope::Email.index()],
            "sms": c.granted[ConsentScope::Sms.index()],
            "personalised_marketing": c.granted[ConsentScope::PersonalisedMarketing.index()],
        },
    })
    .to_string()
}

fn problems(ps: Vec<crate::diagnostic::Problem>) -> anyhow::Error {
    anyhow::anyhow!(ps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The campaign file a run was planned from, for the dispatcher.
pub fn campaign_path(config: &Config, campaign: &str) -> std::path::PathBuf {
    crate::campaign::file::resolve(campaign, &config.base_dir.join("campaigns"))
}
