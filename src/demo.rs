//! `herald demo` and `herald demo-data`: a complete example in a folder of
//! its own, built from the setup under `examples/` that ships in the binary.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::Args;
use include_dir::{include_dir, Dir};

use crate::cli::campaigns::{ChannelArg, PreviewArgs};
use crate::cli::{print_json, thousands};
use crate::client::consent::{ConsentChange, ConsentScope, ConsentSource};
use crate::client::synthetic::{write_clients_csv, write_history_jsonl, SyntheticOptions};
use crate::client::types::ClientId;
use crate::config::Config;
use crate::import::clients::{import_clients, ClientImportOptions};
use crate::import::events::import_events;
use crate::time::FirmTime;

mod drive;
mod responses;

/// The example setup, built into the binary.
static EXAMPLES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/examples");

/// The shipped segment rules and their guide.
static RULES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/rules");

/// The shipped campaigns with their example content, and template sets.
static CAMPAIGNS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/campaigns");
static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");
static SEMINARS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/seminars");

/// The demo always generates the same clients.
const DEMO_SEED: u64 = 20_261_125;

#[derive(Debug, Args)]
pub struct DemoDataArgs {
    /// How many clients
    #[arg(long, default_value_t = 10_000)]
    pub clients: u64,
    /// The CSV file to write
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Random seed: the same seed gives the same data
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write this many days of event history to FILE's name with
    /// `.events.jsonl`, for `herald import events`
    #[arg(long, value_name = "DAYS")]
    pub history: Option<u32>,
    /// Generate as if today were this date (YYYY-MM-DD) [default: today in Asia/Shanghai]
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub as_of: Option<NaiveDate>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The folder to work in; created if need be
    #[arg(long, default_value = "herald-demo")]
    pub dir: PathBuf,
    /// How many clients to generate (at least 100)
    #[arg(long, default_value_t = 10_000, value_parser = parse_demo_clients)]
    pub clients: u64,
    /// Print the final summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// Fewer clients than this leave the demo's steps without the clients they
/// show (one with both addresses, holdings and consents; a seminar's
/// audience).
const DEMO_MIN_CLIENTS: u64 = 100;

fn parse_demo_clients(s: &str) -> Result<u64, String> {
    let n: u64 = s.parse().map_err(|e| format!("{e}"))?;
    if n < DEMO_MIN_CLIENTS {
        return Err(format!(
            "at least {DEMO_MIN_CLIENTS}: the demo's steps need clients to show \
             (one with both addresses and holdings, a seminar's audience)"
        ));
    }
    Ok(n)
}

fn parse_date_arg(s: &str) -> Result<NaiveDate, String> {
    crate::time::parse_date(s).map_err(|e| e.0)
}

/// Where the event history of a client file goes: `clients.csv` →
/// `clients.events.jsonl`.
pub fn history_path(clients_csv: &Path) -> PathBuf {
    let stem = clients_csv
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("clients");
    clients_csv.with_file_name(format!("{stem}.events.jsonl"))
}

/// `herald demo-data`.
pub fn write_demo_data(args: &DemoDataArgs) -> Result<()> {
    let today = args
        .as_of
        .unwrap_or_else(|| FirmTime::new(chrono_tz::Asia::Shanghai).today());
    let opts = SyntheticOptions {
        clients: args.clients,
        seed: args.seed,
        history_days: args.history.unwrap_or(0),
        today,
    };
    let events = generate(&opts, &args.out, args.history.is_some())?;
    println!(
        "wrote {} clients to {}",
        thousands(opts.clients),
        args.out.display()
    );
    if let Some((path, n)) = events {
        println!("wrote {} events to {}", thousands(n), path.display());
    }
    Ok(())
}

/// Writes the client CSV and, if asked, the history beside it; returns the
/// history's path and event count.
fn generate(opts: &SyntheticOptions, out: &Path, history: bool) -> Result<Option<(PathBuf, u64)>> {
    let create = |p: &Path| {
        File::create(p)
            .map(BufWriter::new)
            .with_context(|| format!("cannot write {}", p.display()))
    };
    write_clients_csv(opts, create(out)?)
        .with_context(|| format!("cannot write {}", out.display()))?;
    if !history {
        return Ok(None);
    }
    let path = history_path(out);
    let n = write_history_jsonl(opts, create(&path)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Some((path, n)))
}

/// `herald demo`: writes the example setup into its folder, generates
/// clients and history, imports them, and shows what herald keeps.
pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let dir = &args.dir;
    claim_folder(dir)?;
    write_examples(dir)?;
    let config = Config::load(
        Some(&dir.join("herald.toml")),
        Some(sqlite_url(&dir.join("herald.db"))),
    )?;
    remove_database(&dir.join("herald.db"))?;
    let time = config.firm_time();
    let data = dir.join("data");
    fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let opts = SyntheticOptions {
        clients: args.clients,
        seed: DEMO_SEED,
        history_days: 30,
        today: time.today(),
    };
    let clients_csv = data.join("clients.csv");
    step(&format!(
        "1. 生成 {} 位模拟客户和 30 天的互动记录 / generating clients and 30 days of history",
        thousands(args.clients)
    ));
    let (history_file, _) =
        generate(&opts, &clients_csv, true)?.context("no history was written")?;

    let store = crate::cli::open_store(&config).await?;
    step("2. 导入客户 / importing clients");
    let quiet = ClientImportOptions {
        strict: false,
        quiet: true,
    };
    let first = import_clients(&*store, &clients_csv, quiet, &time).await?;
    crate::cli::import::print_client_summary(&first);

    step("3. 导入历史事件 / importing event history");
    let events = import_events(&*store, &history_file, true, &time).await?;
    println!(
        "{}: {} events imported",
        events.file,
        thousands(events.imported)
    );

    step("4. 客户短信回复“TD”退订，随后 CRM 夜间同步再次导入同一文件 / a client replies TD, then the nightly CRM sync re-imports the file");
    let opted_out = first_client(&*store, args.clients, |c| {
        c.consent(ConsentScope::Sms).granted
    })
    .await?;
    let change = ConsentChange {
        client_id: opted_out.clone(),
        scope: ConsentScope::Sms,
        granted: false,
        source: ConsentSource::SmsReply,
        at: time.now(),
        actor: None,
        note: Some("TD".into()),
    };
    store.record_consent(&change).await?;
    let again = import_clients(&*store, &clients_csv, quiet, &time).await?;
    crate::cli::import::print_client_summary(&again);
    let sms = store
        .client(&opted_out)
        .await?
        .map(|c| *c.consent(ConsentScope::Sms));

    step(&format!(
        "5. 客户记录 / the record: herald clients show {opted_out}"
    ));
    println!(
        "  sms consent: {} ({})",
        if sms.is_some_and(|s| s.granted) {
            "granted"
        } else {
            "refused"
        },
        sms.map_or("-".into(), |s| s.source.to_string())
    );
    step("6. 客群规则 / segment rules (rules/*.rhai)");
    let segments = run_segments(&*store, &config, dir).await?;
    step("7. 活动检查 / herald campaigns validate");
    let campaigns = validate_campaigns(&config).await?;
    let reader = first_client(&*store, args.clients, |c| {
        c.client.email.is_some()
            && c.client.phone.is_some()
            && c.client.holdings.len() >= 2
            && c.consent(ConsentScope::Email).granted
            && c.consent(ConsentScope::Sms).granted
    })
    .await?;
    step(&format!(
        "8. 预览 / herald preview daily_bulletin --client {reader}"
    ));
    for channel in [ChannelArg::Email, ChannelArg::Sms] {
        let args = PreviewArgs {
            campaign: "daily_bulletin".into(),
            client: reader.to_string(),
            channel: Some(channel),
            out: None,
            open: false,
            as_of: None,
            json: false,
        };
        crate::cli::campaigns::preview(args, &*store, &config).await?;
        println!();
    }
    step("9. 发送到 outbox/ 文件夹 / herald send: the three campaigns, to the file outbox");
    send_campaigns(&*store, &config).await?;
    step("10. 客户响应 / responses: opens, a click, one-click unsubscribe and an SMS reply through the tracking server; the report");
    let responses = responses::respond(store.clone(), &config, dir).await?;
    step("11. 讲座报名 / a seminar drive: 11 acceptances for 8 seats, a decline that promotes the first waiting, notices, check-in at the door, the report");
    let drive = drive::drive(store.clone(), &config, dir).await?;
    let total = store.count_clients().await?;
    store.close().await;

    let summary = DemoSummary {
        folder: dir.display().to_string(),
        database: config.database_url.to_string(),
        clients: total,
        events: events.imported,
        reimport_unchanged: again.unchanged,
        reimport_conflicts: again.conflicts,
        segments,
        campaigns,
        report: responses.report.display().to_string(),
        opened: responses.opened,
        clicked: responses.clicked,
        unsubscribed: responses.unsubscribed,
        seminar_report: drive.report.display().to_string(),
        seminar_seated: drive.seated,
        seminar_waitlisted: drive.waitlisted,
    };
    step("完成 / done");
    if args.json {
        print_json(&summary)?;
    } else {
        println!("  folder     {}", summary.folder);
        println!("  clients    {}", thousands(summary.clients));
        println!("  events     {}", thousands(summary.events));
        println!(
            "  re-import  {} unchanged, {} opt-out kept",
            thousands(summary.reimport_unchanged),
            summary.reimport_conflicts
        );
        println!("  report     {}", summary.report);
        println!(
            "  seminar    {} seated, {} waiting: {}",
            summary.seminar_seated, summary.seminar_waitlisted, summary.seminar_report
        );
        // A database named in the environment wins over the folder's
        // herald.toml: the next steps would read that one, not the demo's.
        let herald = if std::env::var_os("HERALD_DATABASE_URL").is_some() {
            "env -u HERALD_DATABASE_URL herald"
        } else {
            "herald"
        };
        println!(
            "  next: cd {} && {herald} clients show {opted_out}",
            summary.folder
        );
        println!(
            "        cd {} && {herald} segment seminar_drive --context branch=上海浦东新区世纪大道证券营业部",
            summary.folder
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The three shipped rules, with the context each needs.
const DEMO_RULES: [(&str, &str, &str); 3] = [
    ("research_followers", "stock", "600519"),
    ("bulletin_audience", "", ""),
    ("seminar_drive", "branch", "上海浦东新区世纪大道证券营业部"),
];

/// Evaluates the shipped rules, as `herald segment` would.
async fn run_segments(
    store: &dyn crate::store::Store,
    config: &Config,
    dir: &Path,
) -> Result<Vec<(String, usize)>> {
    use crate::segment::{engine::engine, evaluate, snapshot, Rule, Today};
    let today = Today {
        date: config.firm_time().today(),
        assessment_valid_days: config.risk_assessment_valid_days,
    };
    let file = snapshot::path(&dir.join(".herald-cache"), &config.database_url);
    let (population, _) = snapshot::population(
        store,
        config.timezone,
        &file,
        crate::segment::fields::Fields::ALL,
    )
    .await?;
    let engine = engine(today);
    let mut counts = Vec::new();
    for (name, key, value) in DEMO_RULES {
        let mut ctx = rhai::Map::new();
        if !key.is_empty() {
            ctx.insert(key.into(), value.into());
        }
        let keys = ctx.keys().map(|k| k.to_string()).collect();
        let path = dir.join("rules").join(format!("{name}.rhai"));
        let rule = Rule::load(&path, &engine, &keys).map_err(|e| anyhow::anyhow!(e.render()))?;
        let outcome = evaluate(&engine, &rule, &ctx, today, &population.clients)?;
        let context = if key.is_empty() {
            String::new()
        } else {
            format!(" --context {key}={value}")
        };
        println!(
            "  herald segment {name}{context}: {} of {}",
            thousands(outcome.matched.len() as u64),
            thousands(outcome.total as u64)
        );
        counts.push((name.to_owned(), outcome.matched.len()));
    }
    Ok(counts)
}

/// The demo's ids are sequential from 1; find the first who fits.
async fn first_client(
    store: &dyn crate::store::Store,
    clients: u64,
    fits: impl Fn(&crate::client::StoredClient) -> bool,
) -> Result<ClientId> {
    for n in 1..=clients {
        let id = ClientId::parse(&format!("{n:010}")).expect("demo ids are valid");
        if let Some(c) = store.client(&id).await? {
            if fits(&c) {
                return Ok(id);
            }
        }
    }
    anyhow::bail!("no generated client fits")
}

/// Launches the shipped campaigns as staff would: marketing launches, and
/// the research report waits for compliance to approve it.
async fn send_campaigns(store: &dyn crate::store::Store, config: &Config) -> Result<()> {
    use crate::cli::runs::{run_command, send, RunCommand, SendArgs};
    let launch = |campaign: &str, key: Option<&str>| SendArgs {
        campaign: campaign.into(),
        dry_run: false,
        key: key.map(str::to_owned),
        by: Some("市场部张伟".into()),
        as_of: None,
        plan_only: false,
        json: false,
    };
    // The seminar's first wave; its key names the wave.
    for (campaign, key) in [
        ("daily_bulletin", None),
        ("research_600519", None),
        ("strategy_seminar", Some("vip")),
    ] {
        let flag = key.map_or(String::new(), |k| format!(" --key {k}"));
        println!("\n$ herald send {campaign}{flag} --by 市场部张伟");
        send(launch(campaign, key), store, config).await?;
    }
    let research = store
        .run_by_key("research_600519", &config.firm_time().today().to_string())
        .await?
        .context("the research run was planned")?;
    println!("\n$ herald run approve {} --by 合规部王敏", research.id);
    run_command(
        RunCommand::Approve {
            run: research.id.to_string(),
            by: "合规部王敏".into(),
        },
        store,
        config,
    )
    .await?;
    println!("\n$ herald send research_600519");
    send(launch("research_600519", None), store, config).await?;
    Ok(())
}

/// Checks the shipped campaigns, as `herald campaigns validate` would.
async fn validate_campaigns(config: &Config) -> Result<usize> {
    use crate::campaign::{file, validate};
    let today = config.firm_time().today();
    let files = file::list(&config.base_dir.join("campaigns"))?;
    let providers = crate::channel::providers::Providers::from_config(config);
    for f in &files {
        let report = validate::validate(f, config, &providers, today).await;
        for p in &report.problems {
            println!("    {p}");
        }
        anyhow::ensure!(
            report.errors() == 0,
            "campaign {} is not valid",
            report.campaign
        );
        println!("  {}: ok", report.campaign);
    }
    Ok(files.len())
}

#[derive(serde::Serialize)]
struct DemoSummary {
    folder: String,
    database: String,
    clients: u64,
    events: u64,
    reimport_unchanged: u64,
    reimport_conflicts: u64,
    /// Rule name and how many clients it selects.
    segments: Vec<(String, usize)>,
    /// Campaign files checked, all valid.
    campaigns: usize,
    /// The bulletin's HTML report, and what it counted.
    report: String,
    opened: u64,
    clicked: u64,
    unsubscribed: u64,
    /// The seminar drive's report, and where the room stands.
    seminar_report: String,
    seminar_seated: usize,
    seminar_waitlisted: usize,
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Writes the built-in example files and rules, leaving files the user
/// changed alone.
fn write_examples(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    extract(&EXAMPLES, dir)?;
    extract(&RULES, &dir.join("rules"))?;
    extract(&CAMPAIGNS, &dir.join("campaigns"))?;
    extract(&TEMPLATES, &dir.join("templates"))?;
    extract(&SEMINARS, &dir.join("seminars"))
}

fn extract(from: &Dir<'_>, to: &Path) -> Result<()> {
    for file in from.files() {
        let path = to.join(file.path());
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        if !path.exists() {
            fs::write(&path, file.contents())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    for sub in from.dirs() {
        extract(sub, to)?;
    }
    Ok(())
}

/// Marks a folder as the demo's own: only such a folder's database is
/// replaced on the next run.
const DEMO_MARKER: &str = ".herald-demo";

/// The demo replaces its database each run; it must never replace one it
/// did not make (`herald demo --dir .` in a working folder).
fn claim_folder(dir: &Path) -> Result<()> {
    let marker = dir.join(DEMO_MARKER);
    if dir.join("herald.db").exists() && !marker.exists() {
        anyhow::bail!(
            "{} already holds a herald.db that the demo did not make; choose another --dir",
            dir.display()
        );
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::write(
        &marker,
        "written by herald demo; its herald.db is rebuilt on each run\n",
    )
    .with_context(|| format!("cannot write {}", marker.display()))
}

/// The demo starts from an empty database each time.
fn remove_database(db: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    Ok(())
}
