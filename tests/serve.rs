//! `herald serve` as operators run it: the real binary, a real SMTP server
//! run by the test, and a campaign whose one-off trigger fires a few
//! seconds after start. On SQLite one instance plans and sends it and its
//! `/metrics` agree with what the SMTP server received; on PostgreSQL three
//! instances share the sending, one is killed with `kill -9` midway, and
//! still every client gets exactly one message apart from the uncertain.

mod common;

use std::collections::HashMap;
use std::path::Path;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::cli::{
    exits_cleanly, free_ports, herald, http_get, run_json, signal, spawn_serve, wait_for, Reaped,
};
use common::smtp::{start_smtp_server, Inbox};

/// The SMTP provider's concurrency: a killed instance leaves at most this
/// many deliveries uncertain.
const CONCURRENCY: usize = 4;

/// Configuration, shipped templates and rules, `clients` clients who all
/// take marketing email, and a campaign to all of them that fires once,
/// `lead` from now.
fn working_folder(
    dir: &Path,
    smtp_port: u16,
    clients: usize,
    lead: Duration,
) -> chrono::DateTime<Utc> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = format!(
        r#"[firm]
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
rate_per_second = 100000

[providers.outbox]
kind = "outbox"
dir = "outbox"

[channels]
email = "smtp"
sms = "outbox"

[sending]
lease_secs = 5
"#
    );
    std::fs::write(dir.join("herald.toml"), config).unwrap();
    common::copy_dir(&repo.join("templates"), &dir.join("templates"));
    common::copy_dir(&repo.join("rules"), &dir.join("rules"));
    common::copy_dir(
        &repo.join("campaigns/content"),
        &dir.join("campaigns/content"),
    );
    // Whole seconds: the trigger is written to the second.
    let at = Utc::now() + chrono::Duration::from_std(lead).unwrap();
    let at = chrono::DateTime::from_timestamp(at.timestamp(), 0).unwrap();
    let local = at.with_timezone(&chrono_tz::Asia::Shanghai);
    std::fs::write(
        dir.join("campaigns/fleet.toml"),
        format!(
            r#"kind = "market_bulletin"
purpose = "marketing"
title = "服务测试快报"
audience = "broadcast"
templates = "market_bulletin"
channels = ["email"]

[content]
file = "content/market_bulletin.json"

[trigger]
at = "{}"
"#,
            local.format("%Y-%m-%d %H:%M:%S")
        ),
    )
    .unwrap();
    let mut csv = String::from(
        "id,name,email,branch,risk_level,assets,birthday,opened_on,last_trade_on,consent_email,consent_sms\n",
    );
    for i in 1..=clients {
        csv.push_str(&format!(
            "S{i:06},客户{i},client{i}@example.com,上海浦东新区营业部,C3,100000.00,1980-01-01,2020-01-01,2026-01-01,true,false\n"
        ));
    }
    std::fs::write(dir.join("clients.csv"), csv).unwrap();
    at
}

fn spawn_instance(
    dir: &Path,
    url: &str,
    [admin_port, tracking_port]: [u16; 2],
    n: usize,
) -> Reaped {
    let admin = format!("127.0.0.1:{admin_port}");
    let tracking = format!("127.0.0.1:{tracking_port}");
    spawn_serve(
        dir,
        url,
        n,
        &["--admin-listen", &admin, "--tracking-listen", &tracking],
    )
}

/// The three instances' logs, for a failure's message.
fn fleet_logs(dir: &Path) -> String {
    (0..3)
        .map(|n| std::fs::read_to_string(dir.join(format!("serve-{n}.log"))).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

/// The run the scheduler planned for the fleet campaign.
fn fleet_run(dir: &Path, url: &str) -> Option<serde_json::Value> {
    let runs = run_json(dir, url, &["runs", "--json"]);
    runs.as_array()?
        .iter()
        .map(|r| &r["run"])
        .find(|r| r["campaign"] == "fleet")
        .cloned()
}

fn sum_sent(metrics: &str) -> f64 {
    let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned())))
        .expect("/metrics parses as Prometheus text");
    scrape
        .samples
        .iter()
        // OpenMetrics names the family `herald_messages`, its samples `_total`.
        .filter(|s| {
            s.metric.starts_with("herald_messages") && s.labels.get("outcome") == Some("sent")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("herald_messages_total is a counter"),
        })
        .sum()
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn one_instance_plans_on_time_sends_and_counts_what_it_sent() {
    const CLIENTS: usize = 300;
    let rt = tokio_rt();
    let inbox: Inbox = Arc::new(Mutex::new(Vec::new()));
    let port = start_smtp_server(&rt, inbox.clone());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = format!("sqlite://{}", dir.join("herald.db").display());
    let at = working_folder(dir, port, CLIENTS, Duration::from_secs(6));
    run_json(dir, &url, &["import", "clients", "clients.csv", "--json"]);
    let [admin, tracking] = free_ports();
    let mut serve = spawn_instance(dir, &url, [admin, tracking], 0);
    wait_for("/healthz", Duration::from_secs(30), || {
        http_get(admin, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    assert!(
        fleet_run(dir, &url).is_none(),
        "nothing is planned before its time"
    );
    wait_for("every message", Duration::from_secs(60), || {
        inbox.lock().unwrap().len() >= CLIENTS
    });

    let run = fleet_run(dir, &url).expect("the scheduler planned the run");
    assert_eq!(run["launched_by"], "scheduler");
    let launched: chrono::DateTime<Utc> = run["launched_at"].as_str().unwrap().parse().unwrap();
    let late = (launched - at).num_milliseconds();
    assert!(
        (0..5000).contains(&late),
        "planned {late} ms after its fire time"
    );
    assert_eq!(
        run["run_key"],
        at.with_timezone(&chrono_tz::Asia::Shanghai)
            .format("%Y-%m-%dT%H:%M+08:00")
            .to_string()
    );

    // The counter is updated as each message is recorded: wait for the last.
    let received = inbox.lock().unwrap().len();
    assert_eq!(received, CLIENTS, "one message per client");
    wait_for(
        "/metrics to count every message",
        Duration::from_secs(10),
        || {
            http_get(admin, "/metrics")
                .is_some_and(|(_, body)| sum_sent(&body) as usize == received)
        },
    );

    // A broken file is refused; the old set stays and the process stays healthy.
    std::fs::write(dir.join("campaigns/broken.toml"), "kind = \n").unwrap();
    wait_for("the refused reload", Duration::from_secs(15), || {
        http_get(admin, "/metrics")
            .is_some_and(|(_, body)| body.contains("herald_reloads_failed_total 1"))
    });
    assert_eq!(http_get(admin, "/healthz").unwrap().0, 200);

    signal(&serve, "-TERM");
    exits_cleanly(&mut serve, dir, 0);
}

#[test]
fn three_instances_share_a_run_and_one_killed_loses_nothing() {
    let Some(admin_url) = common::postgres_url() else {
        return;
    };
    // 20,000 in CI (2 cores, debug build); HERALD_FLEET_CLIENTS=100000 for
    // the full-size check.
    let clients: usize = std::env::var("HERALD_FLEET_CLIENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio_rt();
    let Some(db) = rt.block_on(common::postgres()) else {
        return;
    };
    let url = db.url.expose().to_owned();
    drop(admin_url);
    let inbox: Inbox = Arc::new(Mutex::new(Vec::new()));
    let port = start_smtp_server(&rt, inbox.clone());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    working_folder(dir, port, clients, Duration::from_secs(8));
    run_json(dir, &url, &["import", "clients", "clients.csv", "--json"]);
    let ports: [u16; 6] = free_ports();
    let mut serves: Vec<Reaped> = ports
        .chunks(2)
        .enumerate()
        .map(|(n, p)| spawn_instance(dir, &url, [p[0], p[1]], n))
        .collect();

    // All three send before one of them is killed.
    let store = db.store.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    loop {
        let instances = rt.block_on(store.instances()).unwrap();
        if instances.len() == 3 && instances.iter().all(|i| i.sent > 0) {
            break;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "not all three instances sent: {instances:#?}\nreceived {}\n{}",
                inbox.lock().unwrap().len(),
                fleet_logs(dir)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        inbox.lock().unwrap().len() < clients,
        "the run is still going when the kill lands"
    );
    serves[1].kill().expect("kill -9");
    serves[1].wait().unwrap();

    let run_id = fleet_run(dir, &url).expect("planned")["id"]
        .as_i64()
        .unwrap();
    // At least 50 messages a second, however slow the build and the machine.
    let finish = Duration::from_secs(300.max(clients as u64 / 50));
    wait_for("the run to finish", finish, || {
        let counts = rt.block_on(store.run_counts(run_id)).unwrap();
        counts.pending() == 0
    });
    for n in [0, 2] {
        signal(&serves[n], "-TERM");
        exits_cleanly(&mut serves[n], dir, n);
    }
    let runs: Vec<_> = run_json(dir, &url, &["runs", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["run"]["campaign"] == "fleet")
        .cloned()
        .collect();
    assert_eq!(runs.len(), 1, "three schedulers planned the run once");

    let shown = run_json(dir, &url, &["run", "show", &run_id.to_string(), "--json"]);
    let deliveries = &shown["counts"]["deliveries"];
    let sent = deliveries["sent"].as_u64().unwrap_or(0) as usize;
    let uncertain = deliveries["uncertain"].as_u64().unwrap_or(0) as usize;
    assert_eq!(
        sent + uncertain,
        clients,
        "every delivery sent or uncertain: {deliveries}"
    );
    assert!(
        uncertain <= CONCURRENCY,
        "{uncertain} uncertain, more than one window\n{}",
        fleet_logs(dir)
    );

    let inbox = inbox.lock().unwrap();
    let mut per_recipient: HashMap<&str, usize> = HashMap::new();
    let mut per_delivery: HashMap<&str, usize> = HashMap::new();
    for m in inbox.iter() {
        for r in &m.recipients {
            *per_recipient.entry(r).or_default() += 1;
        }
        *per_delivery
            .entry(m.delivery.as_deref().unwrap_or("?"))
            .or_default() += 1;
    }
    let twice: Vec<_> = per_recipient.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "clients who got two messages: {twice:?}");
    assert!(
        per_delivery.values().all(|n| *n == 1),
        "a delivery went out twice"
    );
    assert!(
        (sent..=sent + uncertain).contains(&inbox.len()),
        "received {} for {sent} sent and {uncertain} uncertain",
        inbox.len()
    );
    // Three writers extended one hash chain: it holds, one record per send.
    let verified = herald(dir, &url)
        .args(["archive", "verify"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{text}");
    assert!(text.contains(&format!("{sent} records")), "{text}");
}
