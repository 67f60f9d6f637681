//! The planner's compliance gates against a real store, on SQLite and
//! PostgreSQL: who is planned for a product campaign, who is suppressed
//! and why, and a restricted stock stopping a research report.

mod common;

use std::path::Path;

use chrono::{TimeZone, Utc};
use herald::config::Config;
use herald::import::clients::{import_clients, ClientImportOptions};
use herald::run::plan::{plan, PlanOptions, PlanReport};
use herald::store::runs::DeliveryState;
use herald::store::Store;
use herald::time::FirmTime;

/// id, level, assessed on, lowest category, investor type, assets.
const CLIENTS: &str = "\
id,name,email,phone,risk_level,risk_assessed_on,lowest_risk_category,investor_type,assets,consent_email,consent_sms
c3,稳健甲,c3@example.com,13800000001,C3,2026-06-01,false,ordinary,200000,true,true
c4,积极乙,c4@example.com,13800000002,C4,2026-06-01,false,ordinary,200000,true,true
c5,激进丙,c5@example.com,13800000003,C5,2026-06-01,false,ordinary,2000000,true,true
low,保守丁,low@example.com,13800000004,C3,2026-06-01,true,ordinary,200000,true,true
expired,过期戊,expired@example.com,13800000005,C5,2023-06-01,false,ordinary,2000000,true,true
unassessed,未测己,unassessed@example.com,13800000006,,,false,ordinary,2000000,true,true
pro,专业庚,pro@example.com,13800000007,C1,2026-06-01,false,professional_a,300000,true,true
";

/// A folder with the shipped templates and content, a configuration
/// pointing at the test's database, and the clients imported.
async fn setup(store: &dyn Store, url: &str, dir: &Path) -> Config {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["templates", "rules", "campaigns", "seminars"] {
        common::copy_dir(&repo.join(sub), &dir.join(sub));
    }
    std::fs::write(
        dir.join("herald.toml"),
        "[firm]\nname = \"某某证券股份有限公司\"\nshort_name = \"某某证券\"\n\
         licence = \"某某证券股份有限公司具备证券投资咨询业务资格。\"\n\
         [tracking]\nbase_url = \"https://t.example.com\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("c.csv"), CLIENTS).unwrap();
    let time = FirmTime::new(chrono_tz::Asia::Shanghai);
    let opts = ClientImportOptions {
        strict: true,
        quiet: true,
    };
    let report = import_clients(store, &dir.join("c.csv"), opts, &time)
        .await
        .unwrap();
    assert_eq!(report.rejected, 0);
    Config::load(Some(&dir.join("herald.toml")), Some(url.to_owned())).unwrap()
}

/// A product offer to every client with email consent (broadcast, so only
/// the gates choose), with `extra` sending rules.
fn offer(dir: &Path, name: &str, extra: &str) {
    std::fs::write(
        dir.join("campaigns").join(format!("{name}.toml")),
        format!(
            "kind = \"product_offer\"\npurpose = \"marketing\"\ntitle = \"产品推介\"\n\
             audience = \"broadcast\"\ntemplates = \"market_bulletin\"\nchannels = [\"email\"]\n\
             {extra}\n[content]\nfile = \"content/market_bulletin.json\"\n"
        ),
    )
    .unwrap();
}

async fn planned(store: &dyn Store, config: &Config, campaign: &str) -> (Vec<String>, PlanReport) {
    let opts = PlanOptions {
        scheduled_at: None,
        key: None,
        by: Some("测试".into()),
        dry_run: false,
        now: Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap(),
        today: None,
    };
    let report = plan(store, config, campaign, &opts).await.unwrap();
    let mut ids: Vec<String> = store
        .deliveries_in(report.run.id, DeliveryState::Queued, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.client_id)
        .collect();
    ids.sort();
    (ids, report)
}

async fn suitability_matches_levels(store: &dyn Store, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(store, url, dir.path()).await;
    offer(dir.path(), "r4", "product_risk = \"R4\"");
    let (ids, report) = planned(store, &config, "r4").await;
    // A C3 client is never planned for an R4 campaign; the lowest category
    // (recorded C3) neither; expired and missing assessments get nothing;
    // the professional passes the level match.
    assert_eq!(ids, ["c4", "c5", "pro"]);
    assert_eq!(report.suppressed["risk_level"], 1);
    assert_eq!(report.suppressed["lowest_category"], 1);
    assert_eq!(report.suppressed["assessment_expired"], 1);
    assert_eq!(report.suppressed["assessment_missing"], 1);
}

async fn the_lowest_category_gets_r1_only(store: &dyn Store, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(store, url, dir.path()).await;
    offer(dir.path(), "r2", "product_risk = \"R2\"");
    offer(dir.path(), "r1", "product_risk = \"R1\"");
    let (ids, _) = planned(store, &config, "r2").await;
    assert!(!ids.contains(&"low".to_owned()), "{ids:?}");
    assert!(ids.contains(&"c3".to_owned()));
    let (ids, _) = planned(store, &config, "r1").await;
    assert!(ids.contains(&"low".to_owned()), "{ids:?}");
}

async fn an_expired_assessment_never_gets_r3(store: &dyn Store, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(store, url, dir.path()).await;
    offer(dir.path(), "r3", "product_risk = \"R3\"");
    let (ids, _) = planned(store, &config, "r3").await;
    assert!(!ids.contains(&"expired".to_owned()), "{ids:?}");
    assert!(ids.contains(&"c5".to_owned()));
    // Without a product, the assessment does not matter.
    offer(dir.path(), "news", "");
    let (ids, _) = planned(store, &config, "news").await;
    assert_eq!(ids.len(), 7, "{ids:?}");
}

async fn professionals_still_meet_entry_thresholds(store: &dyn Store, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(store, url, dir.path()).await;
    offer(
        dir.path(),
        "fund",
        "product_risk = \"R5\"\nmin_assets = 1000000",
    );
    let (ids, report) = planned(store, &config, "fund").await;
    // c5 qualifies; the professional passes the level match (C1 against R5)
    // but not the minimum assets.
    assert_eq!(ids, ["c5"]);
    assert_eq!(report.suppressed["below_min_assets"], 1);
}

async fn a_restricted_stock_stops_a_research_report(store: &dyn Store, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(store, url, dir.path()).await;
    std::fs::write(
        dir.path().join("restricted.csv"),
        "code,from,to,reason\n600519,2026-11-01,2026-11-30,定期报告静默期\n",
    )
    .unwrap();
    let opts = PlanOptions {
        scheduled_at: None,
        key: None,
        by: None,
        dry_run: false,
        now: Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap(),
        today: None,
    };
    let err = plan(store, &config, "research_600519", &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("600519 is on the restricted list"), "{err}");
    assert!(err.contains("restricted.csv:2"), "{err}");
    assert!(
        store.runs(10).await.unwrap().is_empty(),
        "nothing was planned"
    );
}

async fn a_second_launch_resumes_the_same_run(store: &dyn Store, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(store, url, dir.path()).await;
    offer(dir.path(), "news", "");
    let (first, a) = planned(store, &config, "news").await;
    let (_, b) = planned(store, &config, "news").await;
    assert!(a.new && !b.new);
    assert_eq!(a.run.id, b.run.id);
    assert_eq!(first.len(), 7);
    let counts = store.run_counts(a.run.id).await.unwrap();
    assert_eq!(counts.state(DeliveryState::Queued), 7, "planned once");
}

/// Runs planned one after another, none sent yet, share the 7-day cap:
/// what the others have queued counts as sent.
async fn runs_planned_together_share_the_frequency_cap(store: &dyn Store, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(store, url, dir.path()).await;
    offer(dir.path(), "news", "frequency_cap = 2");
    let mut planned = Vec::new();
    for key in ["a", "b", "c"] {
        let opts = PlanOptions {
            scheduled_at: None,
            key: Some(key.into()),
            by: Some("测试".into()),
            dry_run: false,
            now: Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap(),
            today: None,
        };
        let report = plan(store, &config, "news", &opts).await.unwrap();
        let queued = store.run_counts(report.run.id).await.unwrap();
        planned.push((
            queued.state(DeliveryState::Queued),
            report.suppressed.get("frequency_cap").copied().unwrap_or(0),
        ));
    }
    assert_eq!(planned, [(7, 0), (7, 0), (0, 7)]);
}

/// Two dispatchers (two instances) work through one run together: each
/// delivery is sent once, and the archive's chain holds.
async fn two_dispatchers_send_each_delivery_once(store: &dyn Store, url: &str) {
    use herald::channel::providers::Providers;
    use herald::run::dispatch::Dispatcher;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let config = setup(store, url, dir.path()).await;
    // Email only: the default quiet hours would defer SMS at night.
    std::fs::write(
        dir.path().join("campaigns/news.toml"),
        "kind = \"product_offer\"\npurpose = \"marketing\"\ntitle = \"产品推介\"\n\
         audience = \"broadcast\"\ntemplates = \"market_bulletin\"\nchannels = [\"email\"]\n\
         [content]\nfile = \"content/market_bulletin.json\"\n",
    )
    .unwrap();
    let (planned, report) = planned(store, &config, "news").await;
    assert_eq!(planned.len(), 7);
    let stop = Arc::new(AtomicBool::new(false));
    let mut a = Dispatcher::new(store, &config, Providers::from_config(&config).unwrap());
    let mut b = Dispatcher::new(store, &config, Providers::from_config(&config).unwrap());
    let (mut quiet_a, mut quiet_b) = (|_: &_| {}, |_: &_| {});
    let (ra, rb) = tokio::join!(
        a.drain(Some(report.run.id), &stop, &mut quiet_a),
        b.drain(Some(report.run.id), &stop, &mut quiet_b)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.sent + rb.sent, 7, "{ra:?} {rb:?}");
    let counts = store.run_counts(report.run.id).await.unwrap();
    assert_eq!(counts.state(DeliveryState::Sent), 7);
    let emails = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "eml")
        })
        .count();
    assert_eq!(emails, 7, "one file per delivery");
    let chain = store.archive_page(0, 100).await.unwrap();
    assert_eq!(chain.len(), 7);
    let mut prev = herald::store::runs::ARCHIVE_GENESIS.to_owned();
    for (i, r) in chain.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1);
        assert_eq!(r.prev_hash, prev);
        assert!(r.follows(&prev), "record {} follows the one before", r.seq);
        prev = r.hash.clone();
    }
    let run = store.run(report.run.id).await.unwrap().unwrap();
    assert_eq!(run.state, herald::store::runs::RunState::Done);
}

with_url!(
    suitability_matches_levels,
    the_lowest_category_gets_r1_only,
    an_expired_assessment_never_gets_r3,
    professionals_still_meet_entry_thresholds,
    a_restricted_stock_stops_a_research_report,
    a_second_launch_resumes_the_same_run,
    runs_planned_together_share_the_frequency_cap,
    two_dispatchers_send_each_delivery_once,
);
