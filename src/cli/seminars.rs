//! `herald seminar`: checking seminar files before a drive starts, the
//! seminars and their answers, check-in at the door, and the report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::json;

use crate::client::types::ClientId;
use crate::config::Config;
use crate::event::{EventKind, NewEvent};
use crate::seminar::{self, checkin, Seminar};
use crate::store::seminars::checkin_source;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum SeminarsCommand {
    /// Check seminar files (seminars/*.toml): times, venue, capacity, waves and their rules
    Validate {
        /// One seminar (a name under seminars/, or a path) [default: all]
        seminar: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// The seminars, with seats taken and the wait list
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Record who came: by client id, by the check-in code from the reminder,
    /// or from a CSV door list (a column `id` or `code`)
    #[command(group(clap::ArgGroup::new("who").required(true).args(["client", "code", "csv"])))]
    Checkin {
        /// The seminar (a name under seminars/)
        seminar: String,
        /// A client's id
        #[arg(long)]
        client: Option<String>,
        /// The check-in code from the client's reminder
        #[arg(long)]
        code: Option<String>,
        /// A door list: a CSV with a column id (or client_id) or code
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Record changed seminar files: a new time or venue, or a cancellation,
    /// is sent to everyone holding a seat or a place (herald serve does this
    /// when the files change)
    Sync {
        /// One seminar [default: all]
        seminar: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Queue a seminar's reminders now for everyone holding a seat, with
    /// their check-in codes (herald serve queues them at their time)
    Remind {
        /// The seminar (a name under seminars/)
        seminar: String,
        /// One reminder by name (e.g. 1d_1000) [default: all]
        #[arg(long)]
        reminder: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Invited, accepted, declined, wait-listed, promoted, attended and
    /// no-shows, in all and by wave, branch and advisor
    Report {
        /// The seminar (a name under seminars/)
        seminar: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// Also write the report as one HTML page here
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
}

/// Whether the command needs the database.
pub fn needs_store(cmd: &SeminarsCommand) -> bool {
    !matches!(cmd, SeminarsCommand::Validate { .. })
}

pub async fn run_with_store(
    cmd: SeminarsCommand,
    store: &dyn Store,
    config: &Config,
) -> Result<ExitCode> {
    match cmd {
        SeminarsCommand::Validate { .. } => run(cmd, config),
        SeminarsCommand::List { json } => list(store, config, json).await,
        SeminarsCommand::Checkin {
            seminar,
            client,
            code,
            csv,
            json,
        } => {
            let seminar = load(config, &seminar)?;
            let who = match (client, code, csv) {
                (Some(c), _, _) => vec![by_client(store, &c).await.map(|id| (id, "client".into()))],
                (_, Some(code), _) => {
                    let codes = Codes::load(store, config, &seminar).await?;
                    vec![codes.find(&code).map(|id| (id, "code".into()))]
                }
                (_, _, Some(file)) => door_list(store, config, &seminar, &file).await?,
                _ => bail!("say who came: --client ID, --code CODE or --csv FILE"),
            };
            check_in(store, config, &seminar, who, json).await
        }
        SeminarsCommand::Sync { seminar, json } => sync(store, config, seminar, json).await,
        SeminarsCommand::Remind {
            seminar,
            reminder,
            json,
        } => remind(store, config, &seminar, reminder.as_deref(), json).await,
        SeminarsCommand::Report {
            seminar,
            json,
            html,
        } => {
            let seminar = load(config, &seminar)?;
            report(store, config, &seminar, json, html.as_deref()).await
        }
    }
}

fn load(config: &Config, name: &str) -> Result<Seminar> {
    let path = Seminar::path(&config.base_dir, name);
    Seminar::load(&path, &config.base_dir.join("rules")).map_err(|ps| {
        anyhow::anyhow!(ps
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"))
    })
}

async fn list(store: &dyn Store, config: &Config, json: bool) -> Result<ExitCode> {
    let dir = config.base_dir.join("seminars");
    let mut out = Vec::new();
    for path in seminar::list(&dir).unwrap_or_default() {
        let Ok(s) = Seminar::load(&path, &config.base_dir.join("rules")) else {
            say!("{}: not valid (herald seminar validate)", path.display());
            continue;
        };
        let answers = store.answers(&s.name).await?;
        let accepted = answers.iter().filter(|a| a.position.is_some()).count() as i64;
        out.push(json!({
            "seminar": s.name,
            "title": s.title,
            "starts_at": s.starts_at.with_timezone(&s.timezone).to_rfc3339(),
            "capacity": s.capacity,
            "seated": accepted.min(s.capacity),
            "waitlisted": (accepted - s.capacity).max(0),
            "declined": answers.iter().filter(|a| a.answer == "declined").count(),
            "cancelled": s.cancelled,
        }));
    }
    if json {
        super::print_json(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    for s in &out {
        say!(
            "{:<20} {}  seats {}/{}  waiting {}  declined {}  {}{}",
            s["seminar"].as_str().unwrap_or(""),
            s["starts_at"].as_str().unwrap_or("").replace('T', " "),
            s["seated"],
            s["capacity"],
            s["waitlisted"],
            s["declined"],
            s["title"].as_str().unwrap_or(""),
            if s["cancelled"] == true {
                "  (cancelled)"
            } else {
                ""
            }
        );
    }
    if out.is_empty() {
        say!("no seminars in {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn by_client(store: &dyn Store, raw: &str) -> Result<ClientId, String> {
    let id = ClientId::parse(raw.trim()).map_err(|e| format!("'{raw}': {}", e.0))?;
    match store.client(&id).await {
        Ok(Some(_)) => Ok(id),
        Ok(None) => Err(format!("there is no client {id}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The check-in codes of everyone who answered a seminar, computed once
/// per command (a door list looks up many).
struct Codes {
    seminar: String,
    clients: std::collections::HashMap<String, Vec<String>>,
}

impl Codes {
    async fn load(store: &dyn Store, config: &Config, seminar: &Seminar) -> Result<Codes> {
        let secret = &config
            .tracking
            .as_ref()
            .context("check-in codes need [tracking] secret in herald.toml")?
            .secret;
        let mut clients: std::collections::HashMap<String, Vec<String>> = Default::default();
        for a in store.answers(&seminar.name).await? {
            let code = checkin::code(secret, &seminar.name, &a.client_id);
            clients.entry(code).or_default().push(a.client_id);
        }
        Ok(Codes {
            seminar: seminar.name.clone(),
            clients,
        })
    }

    /// The client whose code is `code`, as typed at the door.
    fn find(&self, code: &str) -> Result<ClientId, String> {
        match self
            .clients
            .get(&checkin::normalise(code))
            .map(Vec::as_slice)
        {
            Some([one]) => ClientId::parse(one).map_err(|e| e.0),
            None | Some([]) => Err(format!(
                "no client who answered {} has the code {code}",
                self.seminar
            )),
            Some(_) => Err(format!(
                "the code {code} fits more than one client: check in by --client"
            )),
        }
    }
}

/// A door list: a CSV with a column `id` (or `client_id`) or `code`; every
/// row that names nobody is reported with its line.
async fn door_list(
    store: &dyn Store,
    config: &Config,
    seminar: &Seminar,
    file: &Path,
) -> Result<Vec<Result<(ClientId, String), String>>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let headers = reader.headers()?.clone();
    let column = |names: &[&str]| headers.iter().position(|h| names.contains(&h));
    let (index, is_code) = match (
        column(&["id", "client_id", "客户号", "客户编号"]),
        column(&["code", "签到码"]),
    ) {
        (Some(i), _) => (i, false),
        (None, Some(i)) => (i, true),
        (None, None) => bail!(
            "{}:1: no column id (or client_id, 客户号) or code (签到码) in the header",
            file.display()
        ),
    };
    let codes = match is_code {
        true => Some(Codes::load(store, config, seminar).await?),
        false => None,
    };
    let mut out = Vec::new();
    for row in reader.records() {
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                out.push(Err(format!("{}:{line}: not a CSV row", file.display())));
                continue;
            }
        };
        let line = row.position().map_or(0, |p| p.line());
        let at = |m: String| format!("{}:{line}: {m}", file.display());
        let value = row.get(index).unwrap_or("");
        let found = match &codes {
            Some(codes) => codes.find(value),
            None => by_client(store, value).await,
        };
        out.push(found.map(|id| (id, format!("csv:{line}"))).map_err(at));
    }
    Ok(out)
}

/// Records each attendance once; reports what could not be.
async fn check_in(
    store: &dyn Store,
    config: &Config,
    seminar: &Seminar,
    who: Vec<Result<(ClientId, String), String>>,
    json: bool,
) -> Result<ExitCode> {
    let now = chrono::Utc::now();
    let campaign = invitation_campaign(config, &seminar.name);
    let mut problems = Vec::new();
    let mut events = Vec::new();
    for w in who {
        match w {
            Ok((client, how)) => events.push(NewEvent {
                dedupe_on: Some(format!("attended:{}:{client}", seminar.name)),
                client_id: client,
                at: now,
                kind: EventKind::Attended,
                channel: None,
                campaign: campaign.clone(),
                campaign_kind: Some("seminar_invitation".into()),
                purpose: None,
                run_id: None,
                delivery_id: None,
                source: checkin_source(&seminar.name),
                details: json!({ "seminar": seminar.name, "by": how }),
            }),
            Err(p) => problems.push(p),
        }
    }
    let answers = store.answers(&seminar.name).await?;
    let holding: std::collections::HashSet<&str> = answers
        .iter()
        .filter(|a| a.position.is_some_and(|p| p <= seminar.capacity))
        .map(|a| a.client_id.as_str())
        .collect();
    let warnings: Vec<String> = events
        .iter()
        .map(|e| e.client_id.to_string())
        .filter(|id| !holding.contains(id.as_str()))
        .map(|id| {
            format!(
                "{id} holds no seat at {} (recorded anyway: check the id)",
                seminar.name
            )
        })
        .collect();
    let outcomes = store.insert_events(&events).await?;
    let mut checked = Vec::new();
    let mut again = Vec::new();
    for (e, o) in events.iter().zip(&outcomes) {
        let id = e.client_id.to_string();
        if matches!(o, crate::store::EventOutcome::Stored) {
            checked.push(id);
        } else {
            again.push(id);
        }
    }
    if json {
        super::print_json(&json!({
            "seminar": seminar.name,
            "checked_in": checked,
            "already_checked_in": again,
            "warnings": warnings,
            "problems": problems,
        }))?;
    } else {
        for id in &checked {
            say!("{id}: checked in at {}", seminar.name);
        }
        for id in &again {
            say!("{id}: already checked in");
        }
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        for p in &problems {
            eprintln!("{p}");
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn remind(
    store: &dyn Store,
    config: &Config,
    name: &str,
    only: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let s = load(config, name)?;
    let campaign = invitation_campaign(config, &s.name)
        .with_context(|| format!("no campaign names seminar {} in its [context]", s.name))?;
    if s.cancelled {
        bail!("seminar {} is cancelled: no reminders", s.name);
    }
    let chosen: Vec<&seminar::Reminder> = s
        .reminders
        .iter()
        .filter(|r| only.is_none_or(|o| o == r.name))
        .collect();
    if chosen.is_empty() {
        let known: Vec<&str> = s.reminders.iter().map(|r| r.name.as_str()).collect();
        bail!(
            "seminar {} has no reminder {} (its reminders: {})",
            s.name,
            only.unwrap_or("at all"),
            if known.is_empty() {
                "none; add [[reminders]] days_before and at".to_owned()
            } else {
                known.join(", ")
            }
        );
    }
    let secret = config.tracking.as_ref().map(|t| &t.secret);
    let mut out = Vec::new();
    for r in chosen {
        let queued =
            seminar::notice::remind(store, &campaign, &s, r, secret, chrono::Utc::now()).await?;
        let key = format!("notice:reminder:{}", r.name);
        if !json {
            say!(
                "{} {}: {queued} reminder(s) queued: herald serve sends them, or herald send {campaign} --key {key}",
                s.name, r.name
            );
        }
        out.push(json!({ "reminder": r.name, "queued": queued, "key": key }));
    }
    if json {
        super::print_json(&out)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn sync(
    store: &dyn Store,
    config: &Config,
    only: Option<String>,
    json: bool,
) -> Result<ExitCode> {
    let names: Vec<String> = match only {
        Some(name) => vec![name],
        None => seminar::list(&config.base_dir.join("seminars"))
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
            .collect(),
    };
    let mut out = Vec::new();
    for name in names {
        let s = load(config, &name)?;
        let campaign = invitation_campaign(config, &s.name).with_context(|| {
            format!(
                "no campaign names seminar {} in its [context]: its notices need one",
                s.name
            )
        })?;
        let v = seminar::notice::sync(store, &campaign, &s, chrono::Utc::now()).await?;
        if !json {
            let what = match (v.changed, v.cancelled) {
                (true, true) => "cancelled",
                (true, false) => "changed",
                (false, _) => "unchanged",
            };
            say!("{}: version {}, {what}", s.name, v.sequence);
            for (key, n) in &v.queued {
                say!("  {n} notice(s) queued: herald serve sends them, or herald send {campaign} --key {key}");
            }
        }
        out.push(
            json!({ "seminar": s.name, "sequence": v.sequence, "changed": v.changed,
                         "cancelled": v.cancelled, "queued": v.queued }),
        );
    }
    if json {
        super::print_json(&out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The campaign whose invitations go to `seminar`.
fn invitation_campaign(config: &Config, seminar: &str) -> Option<String> {
    let dir = config.base_dir.join("campaigns");
    crate::campaign::file::list(&dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| crate::campaign::Campaign::load(p).ok())
        .find(|c| {
            c.context
                .get(crate::campaign::file::SEMINAR_CONTEXT)
                .map(String::as_str)
                == Some(seminar)
        })
        .map(|c| c.name)
}

async fn report(
    store: &dyn Store,
    config: &Config,
    seminar: &Seminar,
    json: bool,
    html: Option<&Path>,
) -> Result<ExitCode> {
    let campaign = invitation_campaign(config, &seminar.name);
    let r = seminar::report::build(store, seminar, campaign.as_deref(), chrono::Utc::now()).await?;
    if let Some(file) = html {
        std::fs::write(file, seminar::report::html(&r))
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    if json {
        super::print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    say!("{} ({}), {} seats", r.title, r.seminar, r.capacity);
    let line = |name: &str, f: &seminar::report::Funnel| {
        say!(
            "  {name:<20} invited {:>6}  seated {:>5}  waiting {:>5}  declined {:>5}  promoted {:>4}  came {:>5}  no-shows {}",
            f.invited,
            f.accepted,
            f.waitlisted,
            f.declined,
            f.promoted,
            f.attended,
            f.no_shows.map_or("(after it ends)".to_owned(), |n| n.to_string())
        )
    };
    line("all", &r.totals);
    for (name, w) in &r.by_wave {
        line(&format!("wave {name} ({})", w.state), &w.funnel);
    }
    for (title, rows) in [("by branch", &r.by_branch), ("by advisor", &r.by_advisor)] {
        say!("  {title}:");
        for (name, f) in rows {
            line(name, f);
        }
    }
    if let Some(file) = html {
        say!("  written to {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(cmd: SeminarsCommand, config: &Config) -> Result<ExitCode> {
    let SeminarsCommand::Validate { seminar, json } = cmd else {
        unreachable!("the others need the database")
    };
    let dir = config.base_dir.join("seminars");
    let paths = match seminar {
        Some(name) => vec![crate::config::resolve_named(&name, &dir, "toml")],
        None => seminar::list(&dir).unwrap_or_default(),
    };
    let rules = config.base_dir.join("rules");
    let mut errors = 0;
    let mut out = Vec::new();
    for path in &paths {
        match Seminar::load(path, &rules) {
            Ok(s) => {
                if !json {
                    say!(
                        "{}: ok — {} seats, {} wave(s), {} reminder(s), RSVP by {}{}",
                        s.name,
                        s.capacity,
                        s.waves.len(),
                        s.reminders.len(),
                        s.rsvp_deadline
                            .with_timezone(&s.timezone)
                            .format("%Y-%m-%d %H:%M"),
                        if s.cancelled { " (cancelled)" } else { "" }
                    );
                }
                out.push(serde_json::json!({ "seminar": s.name, "ok": true }));
            }
            Err(problems) => {
                errors += problems.len();
                for p in &problems {
                    if !json {
                        say!("  {p}");
                    }
                }
                out.push(serde_json::json!({ "file": path, "ok": false, "problems": problems }));
            }
        }
    }
    if json {
        super::print_json(&out)?;
    } else {
        say!("{} seminar file(s) checked, {errors} error(s)", paths.len());
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
