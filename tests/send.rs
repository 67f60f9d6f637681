//! `herald send` and the commands around a run, as an operator uses them:
//! a dry run, approval, an opt-out recorded after planning, consent repair
//! and the archive. Messages go to the file outbox.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn herald(dir: &Path, args: &[&str]) -> Output {
    herald_with(dir, args, &[])
}

/// `herald` with these environment variables set.
fn herald_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .current_dir(dir)
        .env_remove("HERALD_DATABASE_URL")
        .envs(env.iter().copied())
        .output()
        .expect("run herald")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = herald(dir, args);
    assert!(
        o.status.success(),
        "herald {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let o = herald(dir, args);
    assert!(!o.status.success(), "herald {args:?} should fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(dir, args)).expect("JSON")
}

const CLIENTS: &str = "\
id,name,email,phone,risk_level,risk_assessed_on,consent_email,consent_sms
a1,甲,a1@example.com,13800000001,C4,2026-06-01,true,true
a2,乙,a2@example.com,13800000002,C4,2026-06-01,true,true
a3,丙,a3@example.com,13800000003,C4,2026-06-01,true,true
a4,丁,,13800000004,C4,2026-06-01,true,true
a5,戊,a5@example.com,13800000005,C2,2026-06-01,true,true
";

/// A folder with the shipped templates, an offer campaign and five clients.
fn folder(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["templates", "rules", "campaigns", "seminars"] {
        common::copy_dir(&repo.join(sub), &dir.path().join(sub));
    }
    std::fs::write(
        dir.path().join("herald.toml"),
        format!("[firm]\nname = \"某某证券股份有限公司\"\nshort_name = \"某某证券\"\n\
         [email]\nfrom = \"某某证券 <research@example.com>\"\nunsubscribe_mailto = \"unsubscribe@example.com\"\n\
         [tracking]\nbase_url = \"https://t.example.com\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n\
         [sending]\napprovers = [\"王敏\", \"李强\"]\nquiet_hours = \"{}\"\n",
            far_quiet_hours()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("campaigns/offer.toml"),
        format!(
            "kind = \"product_offer\"\npurpose = \"marketing\"\ntitle = \"产品推介\"\n\
             audience = \"broadcast\"\ntemplates = \"market_bulletin\"\nchannels = [\"email\", \"sms\"]\n\
             product_risk = \"R3\"\n{extra}\n[content]\nfile = \"content/market_bulletin.json\"\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("c.csv"), CLIENTS).unwrap();
    ok(dir.path(), &["import", "clients", "c.csv"]);
    dir
}

/// A one-minute quiet window twelve hours from now, so that SMS in these
/// tests are never deferred.
fn far_quiet_hours() -> String {
    let t =
        chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai) + chrono::Duration::hours(12);
    let end = t + chrono::Duration::minutes(1);
    format!("{}-{}", t.format("%H:%M"), end.format("%H:%M"))
}

fn outbox_emails(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("outbox"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_dry_run_counts_per_gate_and_stores_nothing() {
    let dir = folder("");
    let v = json(dir.path(), &["send", "offer", "--dry-run", "--json"]);
    assert_eq!(v["planned"], 4);
    assert_eq!(v["by_channel"]["email"], 3);
    assert_eq!(v["by_channel"]["sms"], 1);
    assert_eq!(v["suppressed"]["risk_level"], 1);
    let runs = json(dir.path(), &["runs", "--json"]);
    assert_eq!(
        runs.as_array().unwrap().len(),
        0,
        "a dry run stores nothing"
    );
    assert_eq!(outbox_emails(dir.path()), 0);
}

#[test]
fn a_run_sends_once_and_a_second_send_resumes_it() {
    let dir = folder("");
    let v = json(dir.path(), &["send", "offer", "--by", "张伟", "--json"]);
    assert_eq!(v["counts"]["deliveries"]["sent"], 4, "{v}");
    assert_eq!(v["progress"]["sent"], 4, "{v}");
    assert!(v["sending_seconds"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(outbox_emails(dir.path()), 3);
    let again = ok(dir.path(), &["send", "offer"]);
    assert!(again.contains("resuming it, not planning again"), "{again}");
    assert!(!again.contains(" a second"), "nothing was sent: {again}");
    assert_eq!(outbox_emails(dir.path()), 3, "nobody gets it twice");
    // Another key is another run.
    let v = json(dir.path(), &["send", "offer", "--key", "second", "--json"]);
    assert_eq!(v["counts"]["deliveries"]["sent"], 4, "{v}");
    assert_eq!(outbox_emails(dir.path()), 6);
}

#[test]
fn approval_needs_another_listed_person_and_unchanged_files() {
    let dir = folder("requires_approval = true");
    // Who launched it must be known, or anyone could approve their own.
    let err = fails(dir.path(), &["send", "offer"]);
    assert!(err.contains("--by NAME"), "{err}");
    let err = fails(dir.path(), &["send", "offer", "--by", " "]);
    assert!(err.contains("must not be blank"), "{err}");
    let err = fails(dir.path(), &["send", "offer", "--key", "", "--by", "王敏"]);
    assert!(err.contains("must not be blank"), "{err}");
    let v = json(dir.path(), &["send", "offer", "--by", "王敏", "--json"]);
    assert_eq!(v["run"]["state"], "awaiting_approval");
    assert_eq!(outbox_emails(dir.path()), 0, "nothing before approval");
    let run = v["run"]["id"].to_string();
    let err = fails(dir.path(), &["run", "approve", &run, "--by", "王敏"]);
    assert!(err.contains("another approver"), "{err}");
    let err = fails(dir.path(), &["run", "approve", &run, "--by", "张伟"]);
    assert!(err.contains("not an approver"), "{err}");
    // A template edited after planning: the approval would not cover it.
    let subject = dir.path().join("templates/market_bulletin/subject.hbs");
    let original = std::fs::read_to_string(&subject).unwrap();
    std::fs::write(&subject, format!("{original} ")).unwrap();
    let err = fails(dir.path(), &["run", "approve", &run, "--by", "李强"]);
    assert!(err.contains("files changed since run"), "{err}");
    assert!(err.contains("subject.hbs"), "{err}");
    std::fs::write(&subject, &original).unwrap();
    ok(dir.path(), &["run", "approve", &run, "--by", "李强"]);
    // Edited after approval: the run stops and says why.
    std::fs::write(&subject, format!("{original} ")).unwrap();
    let out = ok(dir.path(), &["send", "offer"]);
    assert!(out.contains("awaits approval again"), "{out}");
    assert!(!out.contains("wait for their time"), "{out}");
    assert_eq!(outbox_emails(dir.path()), 0);
    std::fs::write(&subject, &original).unwrap();
    ok(dir.path(), &["run", "approve", &run, "--by", "李强"]);
    let v = json(dir.path(), &["send", "offer", "--json"]);
    assert_eq!(v["run"]["approved_by"], "李强");
    assert_eq!(v["counts"]["deliveries"]["sent"], 4, "{v}");
    let shown = json(dir.path(), &["archive", "verify", "--json"]);
    assert_eq!(shown["intact"], 4);
}

#[test]
fn an_opt_out_recorded_after_planning_is_honoured() {
    let dir = folder("");
    ok(dir.path(), &["send", "offer", "--plan-only"]);
    ok(
        dir.path(),
        &[
            "suppress", "add", "--client", "a1", "--reason", "投诉", "--by", "客服",
        ],
    );
    ok(
        dir.path(),
        &[
            "suppress",
            "add",
            "--phone",
            "13800000004",
            "--reason",
            "本人要求",
            "--by",
            "客服",
        ],
    );
    // An address is listed however it is typed (a2@example.com).
    let by = ["--reason", "本人要求", "--by", "客服"];
    ok(
        dir.path(),
        &[&["suppress", "add", "--email", "A2@Example.COM"][..], &by].concat(),
    );
    let again = ok(
        dir.path(),
        &[&["suppress", "add", "--email", "a2@example.com"][..], &by].concat(),
    );
    assert!(again.contains("already"), "{again}");
    let v = json(dir.path(), &["send", "offer", "--json"]);
    assert_eq!(v["counts"]["deliveries"]["sent"], 1, "{v}");
    assert_eq!(v["counts"]["deliveries"]["cancelled"], 3, "{v}");
    assert_eq!(outbox_emails(dir.path()), 1);
    // The next run plans around the list.
    let v = json(
        dir.path(),
        &["send", "offer", "--key", "next", "--dry-run", "--json"],
    );
    assert_eq!(v["suppressed"]["do_not_contact"], 2, "{v}");
    // a2's listed address is passed over for the next channel.
    assert_eq!(v["by_channel"]["email"], 1, "{v}");
    assert_eq!(v["by_channel"]["sms"], 1, "{v}");
}

#[test]
fn the_archive_shows_what_was_sent_and_detects_a_change() {
    let dir = folder("");
    ok(dir.path(), &["send", "offer", "--by", "张伟"]);
    let shown = json(dir.path(), &["archive", "show", "1", "--json"]);
    let record = &shown["record"];
    assert_eq!(record["channel"], "email");
    assert_eq!(record["decision"]["product_risk"], "R3");
    assert_eq!(record["decision"]["risk_level"], "C4");
    assert!(record["message"]["subject"]
        .as_str()
        .unwrap()
        .starts_with("【广告】"));
    assert!(record["message"]["unsubscribe"]["url"]
        .as_str()
        .unwrap()
        .starts_with("https://t.example.com/u/"));
    let v = json(dir.path(), &["archive", "verify", "--json"]);
    assert_eq!(v["intact"], 4);
    // Change one archived record behind herald's back.
    let db = dir.path().join("herald.db");
    let conn = tamper_with_record_2(&db);
    assert!(conn, "the record was changed");
    let o = herald(dir.path(), &["archive", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("BROKEN at record 2"));
    // Nor is the changed record shown as what was sent.
    let delivery = sql_i64(&db, "SELECT delivery_id FROM archive WHERE seq = 2").to_string();
    let refused = fails(dir.path(), &["archive", "show", &delivery]);
    assert!(
        refused.contains("archive record 2") && refused.contains("is not shown"),
        "{refused}"
    );
    let first = sql_i64(&db, "SELECT delivery_id FROM archive WHERE seq = 1").to_string();
    ok(dir.path(), &["archive", "show", &first]);
}

#[test]
fn a_changed_dictionary_breaks_the_archive_where_it_is_first_used() {
    let dir = folder("");
    ok(dir.path(), &["send", "offer", "--by", "张伟"]);
    let db = dir.path().join("herald.db");
    let first = sql_i64(&db, "SELECT delivery_id FROM archive WHERE seq = 1").to_string();
    // One byte added to the dictionary every record is compressed against.
    sql_i64(
        &db,
        "UPDATE archive_dictionaries SET body = body || x'00' RETURNING 1",
    );
    let o = herald(dir.path(), &["archive", "verify"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("BROKEN at record 1") && out.contains("was changed"),
        "{out}"
    );
    let refused = fails(dir.path(), &["archive", "show", &first]);
    assert!(
        refused.contains("is not shown") && refused.contains("cannot be read"),
        "{refused}"
    );
}

#[test]
fn records_taken_from_the_archives_end_are_missed() {
    let dir = folder("");
    ok(dir.path(), &["send", "offer", "--by", "张伟"]);
    let db = dir.path().join("herald.db");
    let last = sql_i64(
        &db,
        "SELECT delivery_id FROM archive ORDER BY seq DESC LIMIT 1",
    );
    sql_i64(
        &db,
        "DELETE FROM archive WHERE seq = (SELECT MAX(seq) FROM archive) RETURNING seq",
    );
    let o = herald(dir.path(), &["archive", "verify"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("archive INCOMPLETE") && out.contains(&format!("deliveries {last})")),
        "{out}"
    );
    let v: Value =
        serde_json::from_slice(&herald(dir.path(), &["archive", "verify", "--json"]).stdout)
            .expect("JSON");
    assert_eq!(v["intact"], 3);
    assert_eq!(v["unarchived"], 1);
}

#[test]
fn no_client_address_is_logged_at_any_level() {
    let dir = folder("");
    let o = herald_with(
        dir.path(),
        &["send", "offer", "--by", "张伟"],
        &[("HERALD_LOG", "trace,handlebars=trace")],
    );
    assert!(o.status.success());
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("DEBUG") && log.lines().count() > 20, "{log}");
    for personal in ["a1@example.com", "a3@example.com", "13800000004"] {
        assert!(!log.contains(personal), "{personal} is in the log");
    }
}

#[test]
fn validate_warns_of_a_cap_above_the_firms() {
    let dir = folder("frequency_cap = 50");
    // A warning, not an error: the check succeeds.
    let out = ok(dir.path(), &["campaigns", "validate", "offer"]);
    assert!(
        out.contains("'frequency_cap': 50 is more than the firm's 5"),
        "{out}"
    );
}

#[test]
fn a_list_import_names_every_bad_row_and_adds_nothing() {
    let dir = folder("");
    let import = |csv: &str| {
        std::fs::write(dir.path().join("dnc.csv"), csv).unwrap();
        herald(
            dir.path(),
            &["suppress", "import", "dnc.csv", "--by", "客服"],
        )
    };
    let o = import(
        "kind,value,reason\nemail,a1@example.com,投诉\nemail,bad-email,投诉\nphone\nfax,123,x\nclient,a2,本人要求\n",
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("3 rows refused, nothing was added"), "{err}");
    assert!(
        err.contains("dnc.csv:3: 'value': email: 'bad-email' has no @"),
        "{err}"
    );
    assert!(err.contains("dnc.csv:4: 'value': missing"), "{err}");
    assert!(err.contains("dnc.csv:5: 'kind':"), "{err}");
    let list = ok(dir.path(), &["suppress", "list"]);
    assert!(list.contains("empty"), "{list}");
    let o = import("kind,value\nemail,A1@example.com\nclient,a2\n");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("2 added"), "{out}");
}

#[test]
fn small_mistakes_get_a_word() {
    let dir = folder("");
    let by = ["--reason", "本人要求", "--by", "客服"];
    let out = ok(
        dir.path(),
        &[&["suppress", "add", "--client", "zz9"][..], &by].concat(),
    );
    assert!(out.contains("no client zz9 is in the database"), "{out}");
    let out = ok(
        dir.path(),
        &[&["suppress", "add", "--client", "a1"][..], &by].concat(),
    );
    assert!(!out.contains("no client"), "{out}");
    ok(dir.path(), &["send", "offer", "--by", "张伟"]);
    // a4 has a mobile number only: its message went by SMS.
    let db = dir.path().join("herald.db");
    let sms = sql_i64(
        &db,
        "SELECT delivery_id FROM archive WHERE client_id = 'a4'",
    )
    .to_string();
    let err = fails(dir.path(), &["archive", "show", &sms, "--html", "a4.html"]);
    assert!(err.contains("went by sms: it has no HTML"), "{err}");
    assert!(!dir.path().join("a4.html").exists());
    let err = fails(dir.path(), &["runs", "--limit", "0"]);
    assert!(err.contains("--limit"), "{err}");
}

/// A connection to the database behind herald's back, with a runtime to
/// drive it.
fn behind_the_back(db: &Path) -> (tokio::runtime::Runtime, sqlx::SqliteConnection) {
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite://{}", db.display());
    let conn = rt.block_on(sqlx::SqliteConnection::connect(&url)).unwrap();
    (rt, conn)
}

/// One number from the database behind herald's back.
fn sql_i64(db: &Path, sql: &str) -> i64 {
    let (rt, mut conn) = behind_the_back(db);
    rt.block_on(async {
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut conn).await.unwrap();
        n
    })
}

/// Rewrites archive record 2 through sqlx, as a tamperer with database
/// access would.
fn tamper_with_record_2(db: &Path) -> bool {
    let (rt, mut conn) = behind_the_back(db);
    rt.block_on(async {
        // The record is stored compressed against its run's dictionary:
        // restore, edit, compress again.
        let (body, dictionary): (Vec<u8>, Vec<u8>) = sqlx::query_as(
            "SELECT a.body, d.body FROM archive a \
             JOIN archive_dictionaries d ON d.hash = a.dictionary WHERE a.seq = 2",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let record = zstd::bulk::Decompressor::with_dictionary(&dictionary)
            .unwrap()
            .decompress(&body, 1 << 20)
            .unwrap();
        let record = String::from_utf8(record).unwrap();
        let changed = record.replace("\"provider_id\":\"", "\"provider_id\":\"x");
        assert_ne!(changed, record);
        let changed = zstd::bulk::Compressor::with_dictionary(3, &dictionary)
            .unwrap()
            .compress(changed.as_bytes())
            .unwrap();
        sqlx::query("UPDATE archive SET body = $1 WHERE seq = 2")
            .bind(changed)
            .execute(&mut conn)
            .await
            .unwrap()
            .rows_affected()
            == 1
    })
}

#[test]
fn consent_restore_lifts_only_an_opt_out_herald_recorded() {
    let dir = folder("");
    let err = fails(
        dir.path(),
        &[
            "consent",
            "restore",
            "a1",
            "--channel",
            "sms",
            "--by",
            "客服",
            "--reason",
            "x",
        ],
    );
    assert!(err.contains("has not opted out"), "{err}");
    // An opt-out by SMS reply, as the tracking server records it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = herald::store::DatabaseUrl::new(format!(
            "sqlite://{}",
            dir.path().join("herald.db").display()
        ));
        let store = herald::store::open(&url).await.unwrap();
        let change = herald::client::consent::ConsentChange {
            client_id: herald::client::types::ClientId::parse("a1").unwrap(),
            scope: herald::client::consent::ConsentScope::Sms,
            granted: false,
            source: herald::client::consent::ConsentSource::SmsReply,
            at: chrono::Utc::now(),
            actor: None,
            note: Some("TD".into()),
        };
        assert!(store.record_consent(&change).await.unwrap());
        store.close().await;
    });
    let out = ok(
        dir.path(),
        &[
            "consent",
            "restore",
            "a1",
            "--channel",
            "sms",
            "--by",
            "客服",
            "--reason",
            "书面申请 #7",
        ],
    );
    assert!(out.contains("sms consent restored"), "{out}");
    assert!(out.contains("sms_reply"), "{out}");
    let shown = json(dir.path(), &["clients", "show", "a1", "--json"]);
    assert_eq!(shown["consents"]["sms"]["granted"], true, "{shown}");
    let err = fails(
        dir.path(),
        &[
            "consent",
            "restore",
            "zz",
            "--channel",
            "sms",
            "--by",
            "x",
            "--reason",
            "y",
        ],
    );
    assert!(err.contains("no client"), "{err}");
}

#[test]
fn validate_names_a_restricted_stock_and_an_approval_nobody_can_give() {
    let dir = folder("requires_approval = true");
    std::fs::write(
        dir.path().join("restricted.csv"),
        "code,from,to,reason\n600519,2020-01-01,,投行项目\n",
    )
    .unwrap();
    let o = herald(dir.path(), &["campaigns", "validate", "research_600519"]);
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("'stocks': 600519 is on the restricted list"),
        "{out}"
    );
    assert!(out.contains("restricted.csv:2, 投行项目"), "{out}");
    // Without approvers, a campaign that needs approval cannot go out.
    let toml = dir.path().join("herald.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("approvers = [\"王敏\", \"李强\"]", "")).unwrap();
    let o = herald(dir.path(), &["campaigns", "validate", "offer"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("'requires_approval': nobody can approve it"),
        "{out}"
    );
}

#[test]
fn a_campaign_that_cannot_render_is_refused_before_it_is_planned() {
    let dir = folder("");
    let toml = dir.path().join("herald.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let start = text.find("[tracking]").unwrap();
    let end = text.find("[sending]").unwrap();
    std::fs::write(&toml, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let err = fails(dir.path(), &["send", "offer"]);
    assert!(err.contains("cannot be rendered"), "{err}");
    assert!(err.contains("tracking"), "{err}");
    let runs = json(dir.path(), &["runs", "--json"]);
    assert_eq!(runs.as_array().unwrap().len(), 0, "nothing was planned");
}

#[test]
fn a_paused_run_sends_nothing_until_resumed_and_then_each_once() {
    let dir = folder("");
    let v = json(dir.path(), &["send", "offer", "--plan-only", "--json"]);
    let run = v["run"]["id"].to_string();
    ok(dir.path(), &["run", "pause", &run, "--by", "值班员"]);
    let err = fails(dir.path(), &["run", "pause", &run, "--by", "值班员"]);
    assert!(err.contains("not sending"), "{err}");
    let v = json(dir.path(), &["send", "offer", "--json"]);
    assert_eq!(v["run"]["state"], "paused");
    assert_eq!(outbox_emails(dir.path()), 0, "a paused run sends nothing");
    ok(dir.path(), &["run", "resume", &run, "--by", "值班员"]);
    let v = json(dir.path(), &["send", "offer", "--json"]);
    assert_eq!(v["counts"]["deliveries"]["sent"], 4, "{v}");
    ok(dir.path(), &["send", "offer"]);
    assert_eq!(outbox_emails(dir.path()), 3, "each email once");
    let audit = json(dir.path(), &["audit", "--json"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["resume", "pause", "launch"]);
}

#[test]
fn a_run_that_needs_no_approval_cannot_be_approved() {
    let dir = folder("");
    let v = json(dir.path(), &["send", "offer", "--plan-only", "--json"]);
    let run = v["run"]["id"].to_string();
    let err = fails(dir.path(), &["run", "approve", &run, "--by", "李强"]);
    assert!(err.contains("nothing to approve"), "{err}");
}
