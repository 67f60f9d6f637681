//! Importing client files end to end, on SQLite and PostgreSQL.

mod common;

use std::path::{Path, PathBuf};

use herald::client::consent::{ConsentChange, ConsentScope, ConsentSource};
use herald::client::types::ClientId;
use herald::import::clients::{import_clients, ClientImportOptions};
use herald::import::events::import_events;
use herald::store::Store;
use herald::time::FirmTime;

/// Good rows 2, 6 and 9; every other data row has one kind of fault.
const MIXED: &str = "\u{feff}id,name,email,phone,risk_level,assets,birthday,consent_sms,city\r\n\
000001,\"张三, 先生\",zhang@example.com,13812345678,C3,\"1,000,000.00\",1980-01-02,true,上海\r\n\
000002,李四,li@@example,13812345679,C2,100,1981-01-01,true,北京\r\n\
000003,王五,wang@example.com,13812345670,C9,100,1982-01-01,true,北京\r\n\
000004,赵六,zhao@example.com,13812345671,C2,\"12,3x\",1983-01-01,true,北京\r\n\
000005,钱七,qian@example.com,13812345672,C2,100,1990-13-45,true,北京\r\n\
,孙八,sun@example.com,13812345673,C2,100,1984-01-01,true,北京\r\n\
000007,周九,zhou@example.com,1381234,C2,100,1985-01-01,true,北京\r\n\
000008,吴十,wu@example.com,+86 139 0000 0000,C5,5000000,1970-05-05,yes,深圳\r\n";

fn time() -> FirmTime {
    FirmTime::new(chrono_tz::Asia::Shanghai)
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Each reported bad field as (line, field).
fn lines_and_fields(r: &herald::import::Rejections) -> Vec<(u64, &str)> {
    r.details
        .iter()
        .map(|r| (r.line, r.field.as_str()))
        .collect()
}

const LENIENT: ClientImportOptions = ClientImportOptions {
    strict: false,
    quiet: true,
};
const STRICT: ClientImportOptions = ClientImportOptions {
    strict: true,
    quiet: true,
};

async fn a_mixed_file_imports_exactly_the_good_rows(store: &dyn Store) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "clients.csv", MIXED);
    let s = import_clients(store, &file, LENIENT, &time())
        .await
        .unwrap();
    assert_eq!((s.rows, s.imported, s.rejected), (8, 2, 6));
    assert!(s.committed);
    let bad = lines_and_fields(&s.rejections);
    assert_eq!(
        bad,
        vec![
            (3, "email"),
            (4, "risk_level"),
            (5, "assets"),
            (6, "birthday"),
            (7, "id"),
            (8, "phone")
        ]
    );
    assert_eq!(store.count_clients().await.unwrap(), 2);
    let first = store
        .client(&ClientId::parse("000001").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.client.name, "张三, 先生");
    assert_eq!(first.client.attributes["city"], "上海");
}

async fn strict_mode_writes_nothing_when_a_row_is_bad(store: &dyn Store) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "clients.csv", MIXED);
    let s = import_clients(store, &file, STRICT, &time()).await.unwrap();
    assert!(!s.committed);
    assert_eq!(s.rejected, 6);
    assert_eq!(store.count_clients().await.unwrap(), 0);

    let good: String = MIXED
        .lines()
        .enumerate()
        .filter(|(i, _)| [0, 1, 8].contains(i))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let file = write_file(dir.path(), "good.csv", &good);
    let s = import_clients(store, &file, STRICT, &time()).await.unwrap();
    assert!(s.committed);
    assert_eq!(store.count_clients().await.unwrap(), 2);
}

async fn a_rejected_row_changes_nothing_already_stored(store: &dyn Store) {
    let dir = tempfile::tempdir().unwrap();
    let v1 = write_file(
        dir.path(),
        "v1.csv",
        "id,name,email\n42,原名,old@example.com\n",
    );
    import_clients(store, &v1, LENIENT, &time()).await.unwrap();
    let v2 = write_file(
        dir.path(),
        "v2.csv",
        "id,name,email\n42,新名,not-an-email\n",
    );
    let s = import_clients(store, &v2, LENIENT, &time()).await.unwrap();
    assert_eq!(s.rejected, 1);
    let c = store
        .client(&ClientId::parse("42").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.client.name, "原名");
    assert_eq!(c.client.email.unwrap().as_str(), "old@example.com");
}

async fn a_reimport_keeps_the_opt_out_and_reports_the_conflict(store: &dyn Store) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "clients.csv", MIXED);
    import_clients(store, &file, LENIENT, &time())
        .await
        .unwrap();
    let id = ClientId::parse("000008").unwrap();
    store
        .record_consent(&ConsentChange {
            client_id: id.clone(),
            scope: ConsentScope::Sms,
            granted: false,
            source: ConsentSource::SmsReply,
            at: time().now(),
            actor: None,
            note: Some("TD".into()),
        })
        .await
        .unwrap();
    let s = import_clients(store, &file, LENIENT, &time())
        .await
        .unwrap();
    assert_eq!(
        (s.imported, s.updated, s.unchanged, s.conflicts),
        (0, 0, 2, 1)
    );
    assert_eq!(s.conflict_details[0].id, "000008");
    assert_eq!(s.conflict_details[0].line, 9);
    let c = store.client(&id).await.unwrap().unwrap();
    assert!(!c.consent(ConsentScope::Sms).granted);
}

async fn jsonl_clients_and_event_history_import(store: &dyn Store) {
    let dir = tempfile::tempdir().unwrap();
    let clients = write_file(
        dir.path(),
        "clients.jsonl",
        "{\"id\":\"1\",\"name\":\"甲\",\"holdings\":[\"600519\"],\"consent_email\":true}\n{\"id\":\"2\",\"name\":\"乙\"}\n",
    );
    let s = import_clients(store, &clients, LENIENT, &time())
        .await
        .unwrap();
    assert_eq!(s.imported, 2);
    let events = write_file(
        dir.path(),
        "events.jsonl",
        "{\"client\":\"1\",\"time\":\"2026-11-03T08:31:12+08:00\",\"type\":\"opened\",\"channel\":\"email\"}\n\
         {\"client\":\"3\",\"time\":\"2026-11-03T08:31:12+08:00\",\"type\":\"opened\"}\n\
         {\"client\":\"2\",\"time\":\"2026-11-03\",\"type\":\"opened\"}\n",
    );
    let s = import_events(store, &events, true, &time()).await.unwrap();
    assert_eq!((s.imported, s.rejected), (1, 2));
    let bad = lines_and_fields(&s.rejections);
    assert!(
        bad.contains(&(2, "client")) && bad.contains(&(3, "time")),
        "{bad:?}"
    );
    let s = import_events(store, &events, true, &time()).await.unwrap();
    assert_eq!(
        (s.imported, s.duplicates),
        (0, 1),
        "a second import stores nothing twice"
    );
}

/// A first import into an empty store is a bulk load (SQLite builds the
/// phone index afterwards; PostgreSQL takes binary COPY): every field must
/// come back as written, a repeated id must update rather than fail, and
/// the phone must still find its client.
async fn a_bulk_load_keeps_every_field_and_the_phone_lookup(store: &dyn Store) {
    let dir = tempfile::tempdir().unwrap();
    let header = "id,name,email,phone,branch,advisor,risk_level,assets,tags,holdings,watchlist,\
                  birthday,opened_on,last_trade_on,consent_email,consent_sms,investor_type,\
                  lowest_risk_category,risk_assessed_on,personalised_marketing,city\n";
    let full = "0000000001,叶娟华,ye@example.com,15769003791,南京中山路证券营业部,彭龙睿,C4,\
                19331580.39,vip;margin,000333;600519,688111,1988-04-17,2008-11-03,2026-11-05,\
                false,true,professional_b,true,2025-11-29,false,南京\n";
    let other = "0000000002,李四,,,,,,,,,,,,,,,,,,,\n";
    let repeat = "0000000002,李四二,,,,,,,,,,,,,,,,,,,\n";
    let file = write_file(
        dir.path(),
        "clients.csv",
        &format!("{header}{full}{other}{repeat}"),
    );
    let s = import_clients(store, &file, LENIENT, &time())
        .await
        .unwrap();
    assert_eq!((s.rows, s.rejected), (3, 0), "{:?}", s.rejections);
    assert_eq!((s.imported, s.updated), (2, 1), "{s:?}");
    let id = |i: &str| ClientId::parse(i).unwrap();
    let c = store.client(&id("0000000001")).await.unwrap().unwrap();
    let row = c.client;
    assert_eq!(row.name, "叶娟华");
    assert_eq!(row.email.unwrap().as_str(), "ye@example.com");
    assert_eq!(row.phone.as_ref().unwrap().as_str(), "+8615769003791");
    assert_eq!(row.branch.as_deref(), Some("南京中山路证券营业部"));
    assert_eq!(row.investor_type.as_str(), "professional_b");
    assert_eq!(row.risk_level.unwrap().number(), 4);
    assert_eq!(row.assets.unwrap().fen(), 1_933_158_039);
    assert_eq!(row.tags, ["vip", "margin"]);
    assert_eq!(row.holdings.len(), 2);
    assert_eq!(row.watchlist.len(), 1);
    assert_eq!(row.birthday.unwrap().to_string(), "1988-04-17");
    assert_eq!(row.last_trade_on.unwrap().to_string(), "2026-11-05");
    assert_eq!(row.risk_assessed_on.unwrap().to_string(), "2025-11-29");
    assert!(row.lowest_risk_category);
    assert_eq!(row.attributes["city"], "南京");
    assert!(c.consents[ConsentScope::Sms.index()].granted);
    assert!(!c.consents[ConsentScope::Email.index()].granted);
    assert_eq!(c.consents[ConsentScope::Sms.index()].at, c.created_at);
    let two = store.client(&id("0000000002")).await.unwrap().unwrap();
    assert_eq!(two.client.name, "李四二", "the later row wins");
    assert_eq!(
        store.clients_with_phone("+8615769003791").await.unwrap(),
        ["0000000001"]
    );

    let again = write_file(dir.path(), "again.csv", &format!("{header}{full}{other}"));
    let s = import_clients(store, &again, LENIENT, &time())
        .await
        .unwrap();
    assert_eq!((s.imported, s.updated, s.unchanged), (0, 1, 1), "{s:?}");
}

on_both_backends!(
    a_bulk_load_keeps_every_field_and_the_phone_lookup,
    a_mixed_file_imports_exactly_the_good_rows,
    strict_mode_writes_nothing_when_a_row_is_bad,
    a_rejected_row_changes_nothing_already_stored,
    a_reimport_keeps_the_opt_out_and_reports_the_conflict,
    jsonl_clients_and_event_history_import,
);

/// A bulk load's rows go to the database while the file is still read; a
/// row the database refuses must still fail the import, loudly, with
/// nothing of its transaction kept.
async fn a_bulk_load_the_database_refuses_fails_and_keeps_nothing(store: &dyn Store, url: &str) {
    let refuse = if url.starts_with("sqlite") {
        "CREATE TRIGGER refuse BEFORE INSERT ON clients WHEN NEW.name = 'refused' \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    } else {
        "ALTER TABLE clients ADD CONSTRAINT refused_by_the_test CHECK (name <> 'refused')"
    };
    common::execute(url, refuse).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Three batches, the refused row in the second.
    let mut text = String::from("id,name\n");
    for i in 0..9000 {
        let name = if i == 5000 { "refused" } else { "客户" };
        text.push_str(&format!("{i:06},{name}\n"));
    }
    let file = write_file(dir.path(), "clients.csv", &text);
    let err = import_clients(store, &file, LENIENT, &time())
        .await
        .expect_err("the database refused a row");
    assert!(err.to_string().contains("refused"), "{err}");
    assert_eq!(store.count_clients().await.unwrap(), 0);
}

mod refused {
    use super::*;
    with_url!(a_bulk_load_the_database_refuses_fails_and_keeps_nothing);
}

/// PostgreSQL: an import leaves the planner knowing how many rows it
/// wrote (`reltuples` is -1 until a table is first vacuumed or analyzed)
/// and the events' pages marked all-visible, so that the next plan counts
/// recent sends from an index alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_import_leaves_statistics_of_what_it_wrote() {
    use sqlx::Connection;
    let Some(t) = common::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let clients = write_file(dir.path(), "clients.csv", "id,name\n1,甲\n2,乙\n3,丙\n");
    import_clients(&*t.store, &clients, LENIENT, &time())
        .await
        .unwrap();
    let events = write_file(
        dir.path(),
        "events.jsonl",
        "{\"client\":\"1\",\"time\":\"2026-11-03T08:31:12+08:00\",\"type\":\"opened\",\"channel\":\"email\"}\n\
         {\"client\":\"2\",\"time\":\"2026-11-03T08:31:12+08:00\",\"type\":\"opened\",\"channel\":\"email\"}\n",
    );
    import_events(&*t.store, &events, true, &time())
        .await
        .unwrap();
    let mut c = sqlx::PgConnection::connect(t.url.expose()).await.unwrap();
    // `relallvisible`: pages VACUUM found all visible, which an index-only
    // scan then need not read (events only: clients are never read so).
    let rows: Vec<(String, f32, bool)> = sqlx::query_as(
        "SELECT relname::text, reltuples, relallvisible > 0 FROM pg_class \
         WHERE relname IN ('clients', 'events') ORDER BY relname",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [("clients".into(), 3.0, false), ("events".into(), 2.0, true)]
    );
}
