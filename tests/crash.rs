//! Exactly once across `kill -9`: `herald send` is killed twenty times in
//! the middle of sending 10,000 emails to a real SMTP server run by this
//! test, then run to completion. No delivery may arrive twice, none may be
//! lost: every planned delivery ends `sent` or `uncertain`, every `sent`
//! one arrived exactly once, and each kill leaves at most one window
//! (`concurrency`) of deliveries uncertain.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::smtp::{start_smtp_server, Inbox};

/// Clients, all of them planned: one email each.
const CLIENTS: usize = 10_000;
/// How many times `herald send` is killed.
const KILLS: usize = 20;
/// The SMTP provider's concurrency, and so herald's sending window.
const CONCURRENCY: usize = 4;
/// Messages per second: modest, so that a full run takes several seconds
/// and the kills land while sending.
const RATE: u32 = 500;

/// The claims' lease: on PostgreSQL, where other senders may be alive, a
/// dead sender's claims are recovered only once it has lapsed.
const LEASE_SECS: u64 = 5;

/// A small deterministic RNG (xorshift64*), to need no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn herald(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.current_dir(dir).env_remove("HERALD_DATABASE_URL");
    cmd
}

fn run_ok(dir: &Path, args: &[&str]) -> Output {
    let o = herald(dir).args(args).output().expect("run herald");
    assert!(
        o.status.success(),
        "herald {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The working folder: configuration, the shipped templates and rules, the
/// campaign, and 10,000 clients who all consent to marketing email.
/// `database_url`: PostgreSQL's, or `None` for SQLite's file in `dir`.
fn working_folder(dir: &Path, smtp_port: u16, database_url: Option<&str>) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The outbox carries SMS only (routing needs some SMS provider). Its
    // own concurrency is larger than SMTP's: herald's sending window must
    // still be the narrowest channel's, so a kill leaves at most
    // CONCURRENCY uncertain.
    let database = database_url
        .map(|url| format!("database_url = \"{url}\"\n"))
        .unwrap_or_default();
    let config = format!(
        r#"{database}[firm]
name = "某某证券股份有限公司"
short_name = "某某证券"

[email]
from = "某某证券 <research@example.com>"

[tracking]
base_url = "https://t.example.com"
secret = "0123456789abcdef0123456789abcdef"

[providers.smtp]
kind = "smtp"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
pool_size = {CONCURRENCY}
timeout_secs = 10

[providers.smtp.limits]
concurrency = {CONCURRENCY}
rate_per_second = {RATE}

[providers.outbox]
kind = "outbox"
dir = "outbox"

[channels]
email = "smtp"
sms = "outbox"

[sending]
lease_secs = {LEASE_SECS}
"#
    );
    std::fs::write(dir.join("herald.toml"), config).unwrap();
    common::copy_dir(&repo.join("templates"), &dir.join("templates"));
    common::copy_dir(&repo.join("rules"), &dir.join("rules"));
    common::copy_dir(
        &repo.join("campaigns/content"),
        &dir.join("campaigns/content"),
    );
    std::fs::write(
        dir.join("campaigns/crash.toml"),
        r#"kind = "market_bulletin"
purpose = "marketing"
title = "崩溃测试快报"
audience = "broadcast"
templates = "market_bulletin"
channels = ["email"]

[content]
file = "content/market_bulletin.json"
"#,
    )
    .unwrap();
    let mut csv = String::from(
        "id,name,email,phone,branch,advisor,risk_level,assets,tags,holdings,watchlist,\
         birthday,opened_on,last_trade_on,consent_email,consent_sms\n",
    );
    for i in 1..=CLIENTS {
        csv.push_str(&format!(
            "C{i:06},客户{i},client{i}@example.com,,上海浦东新区营业部,李宁,C3,100000.00,,,,\
             1980-01-01,2020-01-01,2026-01-01,true,false\n"
        ));
    }
    std::fs::write(dir.join("clients.csv"), csv).unwrap();
}

/// Spawns `herald send crash --key crash --by tester`, its output to files.
fn spawn_send(dir: &Path, n: usize) -> Child {
    herald(dir)
        .args(["send", "crash", "--key", "crash", "--by", "tester"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join(format!("send-{n}.out"))).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("send-{n}.err"))).unwrap())
        .spawn()
        .expect("spawn herald send")
}

#[test]
fn each_message_is_sent_exactly_once_across_kill_9() {
    let rt = runtime();
    kill_9_twenty_times(rt, None);
}

#[test]
fn each_message_is_sent_exactly_once_across_kill_9_on_postgres() {
    let rt = runtime();
    let Some(db) = rt.block_on(common::postgres()) else {
        return;
    };
    kill_9_twenty_times(rt, Some(db.url.expose()));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn kill_9_twenty_times(rt: tokio::runtime::Runtime, database_url: Option<&str>) {
    let started = Instant::now();
    let inbox: Inbox = Arc::new(Mutex::new(Vec::new()));
    let port = start_smtp_server(&rt, inbox.clone());
    let received = || inbox.lock().unwrap().len();

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    working_folder(dir, port, database_url);
    run_ok(dir, &["import", "clients", "clients.csv"]);
    eprintln!("crash: set up in {:.1} s", started.elapsed().as_secs_f64());
    let dry = run_ok(
        dir,
        &["send", "crash", "--key", "crash", "--dry-run", "--json"],
    );
    let plan: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(
        plan["planned"], CLIENTS,
        "every client is planned: {plan:#}"
    );
    assert_eq!(received(), 0, "a dry run sends nothing");

    let mut rng = Rng(0x5eed_c0ff_ee15_2026);
    let mut landed = 0;
    let mut completed = 0;
    let mut previous_kill = 0;
    for n in 0..KILLS {
        let before = received();
        let mut child = spawn_send(dir, n);
        // Wait for this sender's first message, or for it to end.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut exited = None;
        while received() <= before {
            if let Some(status) = child.try_wait().unwrap() {
                exited = Some(status);
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("send {n}: no message within 60 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if exited.is_none() {
            std::thread::sleep(Duration::from_millis(rng.below(301)));
            exited = child.try_wait().unwrap();
        }
        if let Some(status) = exited {
            // The run finished before the kill: nothing to kill.
            assert!(
                status.success(),
                "send {n} failed: {}",
                std::fs::read_to_string(dir.join(format!("send-{n}.err"))).unwrap_or_default()
            );
            completed += 1;
            continue;
        }
        let at_kill = received();
        child.kill().expect("kill -9");
        child.wait().unwrap();
        if at_kill < CLIENTS && at_kill > previous_kill {
            landed += 1;
        }
        previous_kill = at_kill;
    }
    let at_last_kill = received();
    let kills_took = started.elapsed();

    // The last sender runs to the end; it recovers the dead ones' claims,
    // on PostgreSQL once their leases have lapsed.
    if database_url.is_some() {
        std::thread::sleep(Duration::from_secs(LEASE_SECS + 1));
    }
    let last = run_ok(dir, &["send", "crash", "--key", "crash"]);
    let after_kills = received();
    let final_took = started.elapsed() - kills_took;

    let show = run_ok(dir, &["run", "show", "crash/crash", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let counts = shown["counts"]["deliveries"].as_object().unwrap();
    let state = |s: &str| counts.get(s).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
    let sent = state("sent");
    let uncertain = state("uncertain");
    let uncertain_ids: HashSet<String> = shown["uncertain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].to_string())
        .collect();

    let inbox = inbox.lock().unwrap();
    let total = inbox.len();
    eprintln!(
        "crash: {landed} of {KILLS} kills landed mid-send ({completed} runs completed unkilled), \
         {uncertain} uncertain, {sent} sent, {total} received ({at_last_kill} by the last kill), \
         {:.1} s (kills done at {:.1} s, final run {:.1} s)",
        started.elapsed().as_secs_f64(),
        kills_took.as_secs_f64(),
        final_took.as_secs_f64()
    );

    // The kills landed while sending, and sending went on after them.
    assert!(
        landed >= 15,
        "only {landed} of {KILLS} kills landed mid-send"
    );
    assert!(after_kills > at_last_kill, "the final run sent the rest");

    // No delivery arrived twice; every message carried its delivery id.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for m in inbox.iter() {
        let id = m
            .delivery
            .as_deref()
            .expect("every message carries X-Herald-Delivery");
        *seen.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        twice.is_empty(),
        "deliveries received more than once: {twice:?}"
    );

    // No client received two messages.
    let mut per_address: HashMap<&str, usize> = HashMap::new();
    for m in inbox.iter() {
        assert_eq!(m.recipients.len(), 1, "one recipient per message");
        *per_address.entry(m.recipients[0].as_str()).or_default() += 1;
    }
    let doubled: Vec<_> = per_address.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        doubled.is_empty(),
        "clients who got two messages: {doubled:?}"
    );

    // Every planned delivery ended sent or uncertain: none was lost.
    assert_eq!(
        sent + uncertain,
        CLIENTS,
        "planned deliveries that are neither sent nor uncertain: {counts:?}"
    );
    assert_eq!(
        uncertain_ids.len(),
        uncertain,
        "run show lists every uncertain delivery"
    );
    // Each kill leaves at most one window of deliveries uncertain.
    assert!(
        uncertain <= KILLS * CONCURRENCY,
        "{uncertain} uncertain after {KILLS} kills with concurrency {CONCURRENCY}"
    );
    // Received: every sent delivery, and some of the uncertain ones.
    assert!(
        total >= sent && total <= sent + uncertain,
        "received {total}, sent {sent}, uncertain {uncertain}"
    );
    let received_sent = seen
        .keys()
        .filter(|id| !uncertain_ids.contains(**id))
        .count();
    assert_eq!(
        received_sent, sent,
        "the deliveries recorded sent are exactly those received, less the uncertain ones"
    );

    // The final send resumed the same run rather than planning another.
    let out = String::from_utf8_lossy(&last.stdout);
    assert!(out.contains("crash/crash"), "{out}");
    drop(inbox);
    rt.shutdown_background();
}
