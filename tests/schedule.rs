//! The scheduler against a real store, on SQLite and PostgreSQL, with time
//! controlled by the test: a trading-day bulletin at 08:30 fires on
//! 2026-09-30 and not on National Day, a fire time is planned once however
//! many schedulers tick, and after a stop across two scheduled times only
//! the latest fires.

mod common;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use herald::config::Config;
use herald::import::clients::{import_clients, ClientImportOptions};
use herald::metrics::Metrics;
use herald::serve::files::FileSet;
use herald::serve::scheduler::{Fired, Scheduler};
use herald::store::{DatabaseUrl, Store};
use herald::time::FirmTime;

fn shanghai(s: &str) -> DateTime<Utc> {
    let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
    chrono_tz::Asia::Shanghai
        .from_local_datetime(&local)
        .unwrap()
        .with_timezone(&Utc)
}

const CLIENTS: &str = "\
id,name,email,risk_level,risk_assessed_on,consent_email,consent_sms
a1,甲,a1@example.com,C3,2026-06-01,true,false
a2,乙,a2@example.com,C4,2026-06-01,true,false
";

async fn setup(store: &dyn Store, url: &str, dir: &Path) -> Config {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["templates", "rules"] {
        common::copy_dir(&repo.join(sub), &dir.join(sub));
    }
    common::copy_dir(
        &repo.join("campaigns/content"),
        &dir.join("campaigns/content"),
    );
    std::fs::write(
        dir.join("herald.toml"),
        "[firm]\nname = \"某某证券股份有限公司\"\nshort_name = \"某某证券\"\n\
         [tracking]\nbase_url = \"https://t.example.com\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("campaigns/morning.toml"),
        "kind = \"market_bulletin\"\npurpose = \"marketing\"\ntitle = \"早间快报\"\n\
         audience = \"broadcast\"\ntemplates = \"market_bulletin\"\nchannels = [\"email\"]\n\
         send_by = \"4h\"\n[content]\nfile = \"content/market_bulletin.json\"\n\
         [trigger]\nschedule = \"0 30 8 * * *\"\ntrading_days_only = true\n",
    )
    .unwrap();
    std::fs::write(dir.join("c.csv"), CLIENTS).unwrap();
    let time = FirmTime::new(chrono_tz::Asia::Shanghai);
    let opts = ClientImportOptions {
        strict: true,
        quiet: true,
    };
    import_clients(store, &dir.join("c.csv"), opts, &time)
        .await
        .unwrap();
    Config::load(Some(&dir.join("herald.toml")), Some(url.to_owned())).unwrap()
}

fn keys(fired: &[Fired]) -> Vec<String> {
    fired
        .iter()
        .map(|f| match f {
            Fired::Planned { key, .. } => format!("planned {key}"),
            Fired::Existing { key, .. } => format!("existing {key}"),
            Fired::Failed { key, error, .. } => format!("failed {key}: {error}"),
        })
        .collect()
}

async fn a_trading_day_schedule_fires_once_per_trading_day(store: &dyn Store, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(store, url, dir.path()).await;
    let shared: Arc<dyn Store> = herald::store::open(&DatabaseUrl::new(url.to_owned()))
        .await
        .unwrap();
    let files = FileSet::load(&config, shanghai("2026-09-30 08:00:00").date_naive())
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let metrics = Arc::new(Metrics::new());
    let mut scheduler = Scheduler::new(shared.clone(), config.clone(), metrics.clone());

    assert!(scheduler
        .tick(&files, shanghai("2026-09-30 08:29:59"))
        .await
        .is_empty());
    let fired = scheduler
        .tick(&files, shanghai("2026-09-30 08:30:01"))
        .await;
    assert_eq!(keys(&fired), ["planned 2026-09-30T08:30+08:00"]);
    assert!(
        matches!(fired[0], Fired::Planned { planned: 2, .. }),
        "{fired:?}"
    );
    assert!(scheduler
        .tick(&files, shanghai("2026-09-30 08:30:02"))
        .await
        .is_empty());
    // Another instance (or this one restarted) finds the run planned.
    let mut other = Scheduler::new(shared.clone(), config.clone(), metrics);
    assert_eq!(
        keys(&other.tick(&files, shanghai("2026-09-30 08:30:03")).await),
        ["existing 2026-09-30T08:30+08:00"]
    );

    // National Day: the exchanges are closed.
    assert!(scheduler
        .tick(&files, shanghai("2026-10-01 08:30:01"))
        .await
        .is_empty());

    // Stopped from 30 September to 9 October 08:40: 8 and 9 October were
    // missed; only the latest fires, and its send_by counts from 08:30.
    let fired = scheduler
        .tick(&files, shanghai("2026-10-09 08:40:00"))
        .await;
    assert_eq!(keys(&fired), ["planned 2026-10-09T08:30+08:00"]);
    let run = store
        .run_by_key("morning", "2026-10-09T08:30+08:00")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.send_by, Some(shanghai("2026-10-09 12:30:00")));
    assert_eq!(run.launched_by.as_deref(), Some("scheduler"));
    let runs = store.runs(100).await.unwrap();
    assert_eq!(
        runs.len(),
        2,
        "{:?}",
        runs.iter().map(|r| &r.run_key).collect::<Vec<_>>()
    );

    // Back at noon on 12 October: that morning is past the hour of grace.
    assert!(scheduler
        .tick(&files, shanghai("2026-10-12 12:00:00"))
        .await
        .is_empty());
}

with_url!(a_trading_day_schedule_fires_once_per_trading_day);
