//! Segment rules against generated clients: counts compared with an
//! independent computation from the same files, on SQLite and PostgreSQL;
//! and the sandbox.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::NaiveDate;
use herald::client::synthetic::{write_clients_csv, write_history_jsonl, SyntheticOptions};
use herald::import::clients::{import_clients, ClientImportOptions};
use herald::import::events::import_events;
use herald::segment::fields::Fields;
use herald::segment::{engine::engine, evaluate, Population, Rule, Today};
use herald::store::Store;
use herald::time::FirmTime;
use rhai::Map;

const TODAY: &str = "2026-11-25";

fn today() -> Today {
    Today {
        date: NaiveDate::parse_from_str(TODAY, "%Y-%m-%d").unwrap(),
        assessment_valid_days: 730,
    }
}

/// Generates clients and history into `dir` and imports both.
async fn load(store: &dyn Store, dir: &Path) -> Population {
    let opts = SyntheticOptions {
        clients: 3000,
        seed: 11,
        history_days: 30,
        today: today().date,
    };
    write_clients_csv(&opts, std::fs::File::create(dir.join("c.csv")).unwrap()).unwrap();
    write_history_jsonl(&opts, std::fs::File::create(dir.join("e.jsonl")).unwrap()).unwrap();
    let time = FirmTime::new(chrono_tz::Asia::Shanghai);
    let quiet = ClientImportOptions {
        strict: true,
        quiet: true,
    };
    assert_eq!(
        import_clients(store, &dir.join("c.csv"), quiet, &time)
            .await
            .unwrap()
            .rejected,
        0
    );
    assert_eq!(
        import_events(store, &dir.join("e.jsonl"), true, &time)
            .await
            .unwrap()
            .rejected,
        0
    );
    Population::load(store, chrono_tz::Asia::Shanghai)
        .await
        .unwrap()
}

/// The client file as plain maps of column to text.
fn csv_rows(path: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            headers
                .iter()
                .zip(rec.unwrap().iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

/// Local dates of each (client, event type), from the history file.
fn event_dates(path: &Path) -> HashMap<(String, String), Vec<NaiveDate>> {
    let mut out: HashMap<(String, String), Vec<NaiveDate>> = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let time = v["time"].as_str().unwrap();
        assert!(
            time.ends_with("+08:00"),
            "the generator writes Shanghai times"
        );
        let date = NaiveDate::parse_from_str(&time[..10], "%Y-%m-%d").unwrap();
        let key = (
            v["client"].as_str().unwrap().to_owned(),
            v["type"].as_str().unwrap().to_owned(),
        );
        out.entry(key).or_default().push(date);
    }
    out
}

fn count(store_pop: &Population, source: &str, ctx: &Map) -> usize {
    let t = today();
    let engine = engine(t);
    let keys: HashSet<String> = ctx.keys().map(|k| k.to_string()).collect();
    let rule = Rule::compile("test.rhai", source.into(), &engine, &keys).unwrap();
    let outcome = evaluate(&engine, &rule, ctx, t, &store_pop.clients).unwrap();
    assert_eq!(outcome.error_count, 0, "{:?}", outcome.errors);
    outcome.matched.len()
}

async fn rule_counts_match_an_independent_computation(store: &dyn Store) {
    let dir = tempfile::tempdir().unwrap();
    let pop = load(store, dir.path()).await;
    let rows = csv_rows(&dir.path().join("c.csv"));
    let events = event_dates(&dir.path().join("e.jsonl"));
    assert_eq!(pop.clients.len(), rows.len());
    let none = Map::new();
    let t = today().date;

    let expected = rows
        .iter()
        .filter(|r| {
            ["C3", "C4", "C5"].contains(&r["risk_level"].as_str())
                && r["assets"].parse::<f64>().unwrap_or(0.0) >= 1_000_000.0
                && r["consent_sms"] == "true"
        })
        .count();
    let got = count(
        &pop,
        r#"client.risk_level >= "C3" && client.assets >= 1_000_000 && client.consent_sms"#,
        &none,
    );
    assert_eq!(got, expected, "three-clause rule");
    assert!(expected > 0);

    let listed =
        |r: &HashMap<String, String>, col: &str, code: &str| r[col].split(';').any(|c| c == code);
    let expected = rows
        .iter()
        .filter(|r| listed(r, "holdings", "600519") || listed(r, "watchlist", "600519"))
        .count();
    let mut ctx = Map::new();
    ctx.insert("stock".into(), "600519".into());
    assert_eq!(
        count(
            &pop,
            "client.holds(ctx.stock) || client.watches(ctx.stock)",
            &ctx
        ),
        expected,
        "list rule"
    );

    let within = |id: &str, kind: &str, days: i64| {
        events
            .get(&(id.to_owned(), kind.to_owned()))
            .is_some_and(|ds| ds.iter().any(|d| (t - *d).num_days() < days))
    };
    let expected = rows
        .iter()
        .filter(|r| within(&r["id"], "clicked", 30) && !within(&r["id"], "unsubscribed", 365))
        .count();
    let got = count(
        &pop,
        r#"client.clicked_within(30) && !client.did("unsubscribed", 365)"#,
        &none,
    );
    assert_eq!(got, expected, "engagement rule");
    assert!(expected > 0);

    let expected = rows
        .iter()
        .filter(|r| {
            NaiveDate::parse_from_str(&r["last_trade_on"], "%Y-%m-%d")
                .is_ok_and(|d| (t - d).num_days() > 30)
        })
        .count();
    assert_eq!(
        count(&pop, "days_since(client.last_trade_on) > 30", &none),
        expected,
        "a missing date compares false"
    );
    let never_traded = rows
        .iter()
        .filter(|r| r["last_trade_on"].is_empty())
        .count();
    assert!(never_traded > 0);
    assert_eq!(
        count(&pop, "client.last_trade_on == ()", &none),
        never_traded
    );
}

async fn a_runaway_rule_is_stopped_and_changes_nothing(store: &dyn Store) {
    let dir = tempfile::tempdir().unwrap();
    let pop = load(store, dir.path()).await;
    let before = store.count_clients().await.unwrap();
    let t = today();
    let engine = engine(t);
    let rule = Rule::compile("forever.rhai", "loop { }".into(), &engine, &HashSet::new()).unwrap();
    let err = evaluate(&engine, &rule, &Map::new(), t, &pop.clients).unwrap_err();
    assert!(err.to_string().contains("Too many operations"), "{err}");
    assert_eq!(store.count_clients().await.unwrap(), before);
}

on_both_backends!(
    rule_counts_match_an_independent_computation,
    a_runaway_rule_is_stopped_and_changes_nothing,
    the_snapshot_gives_the_same_results_as_the_store,
);

#[test]
fn a_syntax_error_names_line_and_column() {
    let engine = engine(today());
    let err = Rule::compile(
        "rules/x.rhai",
        "client.assets > 1 &&\n  client.holds(\"600519\" ||\n".into(),
        &engine,
        &HashSet::new(),
    )
    .unwrap_err();
    assert_eq!(err.file, "rules/x.rhai");
    assert!(err.line >= 2, "{err}");
    assert!(err.render().contains('^'));
}

#[test]
fn a_syntax_error_points_where_it_can_be_mended() {
    let engine = engine(today());
    let compile = |src: &str| {
        Rule::compile("rules/x.rhai", src.into(), &engine, &HashSet::new()).unwrap_err()
    };
    let never_closed_at = |src: &str| {
        let e = compile(src);
        assert_eq!(e.message, "'(' is never closed", "{e}");
        (e.line, e.column)
    };
    // Unclosed: the opening bracket, not the end of the file.
    assert_eq!(
        never_closed_at("client.assets > 1 &&\n  client.holds(\"6005)19\"\n\n// 注释 (\n"),
        (2, 15)
    );
    let e = compile("if client.assets > 1 {\n  /* } */ true\n\n");
    assert_eq!((e.line, e.column), (1, 22), "{e}");
    // A missing `;` is found at the next statement: its line is named.
    let e = compile("let x = 5\n\n// x\nclient.assets > x\n");
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("missing at the end of line 1"), "{e}");
    // A stray closer after a line that ends its statement: no such hint.
    let e = compile("let a = 1;\nlet b = (a + 1));\nb > 1\n");
    assert!(!e.message.contains("missing at the end"), "{e}");
    // A bracket left open with more code after it.
    assert_eq!(never_closed_at("let a = (client.assets > 1;\na\n"), (1, 9));
    // A comment left open, or nothing at all, is said before any client.
    let e = compile("client.assets > 1\n/* 旧的条件\nclient.age > 30\n");
    assert_eq!((e.line, e.column), (2, 1), "{e}");
    assert!(e.message.contains("'/*' is never closed"), "{e}");
    let e = compile("/* 旧的条件 */\n// 无\n");
    assert!(e.message.contains("the rule is empty"), "{e}");
    // Past rhai's 16-bit positions (here the bracket's line would wrap to 0)
    // the error still comes, and nothing panics.
    let long = format!("{}client.holds(\"600519\"\n", "\n".repeat(65_535));
    assert!(!compile(&long).message.is_empty());
}

#[test]
fn unknown_names_are_found_before_running() {
    let engine = engine(today());
    let check =
        |src: &str| Rule::compile("r.rhai", src.into(), &engine, &HashSet::new()).unwrap_err();
    let e = check("client.asets > 1");
    assert_eq!((e.line, e.column), (1, 8));
    assert!(e.message.contains("did you mean 'assets'"), "{}", e.message);
    assert!(check("client.hold(\"600519\")")
        .message
        .contains("no method 'hold'"));
    assert!(check("frobnicate(1)")
        .message
        .contains("unknown function 'frobnicate'"));
    assert!(check("client.holds(ctx.stock)")
        .message
        .contains("ctx.stock is not given"));
    assert!(
        check("import \"x\" as y; true").line >= 1,
        "modules are not available"
    );
    assert!(check("let x = undefined_var; x")
        .message
        .contains("undefined_var"));
    assert!(check(r#"client.risk_level >= "C9""#)
        .message
        .contains("'C9' is not a risk level"));
    assert!(check(r#""C0" < client.risk_level"#)
        .message
        .contains("'C0' is not a risk level"));
    assert!(check(r#"client.did("opend", 7)"#)
        .message
        .contains("'opend' is not an event type"));
    assert!(check(r#"client.unsubscribed("wechat")"#)
        .message
        .contains("'wechat' is not a channel"));
    let fine = r#"client.risk_level >= "C3" && client.did("opened", 7)"#;
    assert!(Rule::compile("r.rhai", fine.into(), &engine, &HashSet::new()).is_ok());
}

/// What a rule gives over a population: matches and errors, by client id.
fn results(pop: &Population, source: &str) -> (Vec<String>, Vec<(String, String)>, Option<String>) {
    let t = today();
    let engine = engine(t);
    let rule = Rule::compile("r.rhai", source.into(), &engine, &HashSet::new()).unwrap();
    match evaluate(&engine, &rule, &Map::new(), t, &pop.clients) {
        Ok(o) => (
            o.matched
                .iter()
                .map(|&i| pop.clients[i].id().to_owned())
                .collect(),
            o.errors
                .into_iter()
                .map(|e| (e.client, e.message))
                .collect(),
            None,
        ),
        // Which client's error stops a parallel run first varies from run
        // to run; that the run fails, and why, does not.
        Err(e) => (
            Vec::new(),
            Vec::new(),
            Some(e.first_message.rsplit(": ").next().unwrap_or("").to_owned()),
        ),
    }
}

/// A few thousand operations for every client: together they pass the
/// operation limit many times over, which is per client, not per run.
const BUSY_RULE: &str = "let n = 0; for i in 0..1000 { n += 1; } n > 0 && client.age() > 40";

/// The same, evaluated the plain way: a fresh Rhai evaluation per client,
/// one after another, with nothing kept between clients.
fn plain_results(pop: &Population, source: &str) -> (Vec<String>, Vec<(String, String)>) {
    let t = today();
    let engine = engine(t);
    let rule = Rule::compile("r.rhai", source.into(), &engine, &HashSet::new()).unwrap();
    let (mut matched, mut errors) = (Vec::new(), Vec::new());
    for client in &pop.clients {
        let mut scope = herald::segment::engine::run_scope(&Map::new(), t);
        scope.push_constant("client", client.clone());
        match engine.eval_ast_with_scope::<rhai::Dynamic>(&mut scope, &rule.ast) {
            Ok(v) if v.as_bool() == Ok(true) => matched.push(client.id().to_owned()),
            Ok(v) if v.is_bool() => {}
            Ok(v) => errors.push((
                client.id().to_owned(),
                format!(
                    "r.rhai: the rule gave {} ({v}), not true or false",
                    v.type_name()
                ),
            )),
            Err(e) => errors.push((client.id().to_owned(), format!("r.rhai: {e}"))),
        }
    }
    errors.truncate(20);
    (matched, errors)
}

async fn the_snapshot_gives_the_same_results_as_the_store(store: &dyn Store) {
    use herald::segment::snapshot::{self, Source};
    let dir = tempfile::tempdir().unwrap();
    let plain = load(store, dir.path()).await;
    let file = dir.path().join("cache/segment.bin");
    let tz = chrono_tz::Asia::Shanghai;
    let (built, source) = snapshot::population(store, tz, &file, Fields::ALL)
        .await
        .unwrap();
    assert_eq!(source, Source::Store);
    let (cached, source) = snapshot::population(store, tz, &file, Fields::ALL)
        .await
        .unwrap();
    assert_eq!(
        source,
        Source::Snapshot,
        "an unchanged store reuses the snapshot"
    );
    for rule in [
        r#"client.risk_level >= "C3" && client.assets >= 1_000_000 && client.consent_sms"#,
        r#"client.holds("600519") || client.watches("600519.SH")"#,
        r#"client.clicked_within(30, "email") && !client.unsubscribed()"#,
        // Shapes that run as native code: reversed and mixed comparisons,
        // negated groups, engagement with a filter, every yes/no field.
        r#""C2" < client.risk_level || !(client.is_professional() || client.has_tag("vip"))"#,
        "client.assets == 0 || client.assets < 250_000.5 && client.lowest_risk_category",
        r#"client.risk_level < "C3" && client.assets <= 500_000 || client.risk_level == "C4""#,
        r#"client.did("unsubscribed", 365) || client.bounced_within(30, "email") || client.assessment_valid() && !client.has_phone()"#,
        r#"client.unsubscribed("sms") || client.risk_level != "C5" && client.personalised_marketing && client.consent_email"#,
        r#"client.opened_within(7, "market_bulletin") || client.replied_within(30)"#,
        "days_since(client.last_trade_on) > 90 || client.age() >= 60 || client.email == ()",
        r#"client.attrs.city == "上海" && client.birthday_within(30)"#,
        // Errors for every client without an email: the run fails, the same way.
        "client.email.len() > 20",
        // Errors for a few clients only: they are excluded and reported.
        r#"if client.id.ends_with("77") { throw "no"; } client.assets > 100_000"#,
        // A function of the rule's own, and its calls.
        "fn rich(c) { c.assets >= 500_000 } rich(client) && !client.has_tag(\"vip\")",
        BUSY_RULE,
        // Not a boolean for some clients.
        r#"if client.assets > 2_000_000 { 1 } else { false }"#,
    ] {
        let expected = results(&plain, rule);
        if expected.2.is_none() {
            assert_eq!(
                (expected.0.clone(), expected.1.clone()),
                plain_results(&plain, rule),
                "the fast evaluation against the plain one: {rule}"
            );
        }
        assert_eq!(results(&built, rule), expected, "{rule}");
        assert_eq!(results(&cached, rule), expected, "{rule}");
        // Only the parts the rule reads, as herald segment loads them.
        let engine = engine(today());
        let fields = Fields::read_by(
            &Rule::compile("r.rhai", rule.into(), &engine, &HashSet::new())
                .unwrap()
                .ast,
        );
        // A rule that passes `client` on to its own function reads it all.
        assert_eq!(fields == Fields::ALL, rule.starts_with("fn "), "{rule}");
        let (partial, source) = snapshot::population(store, tz, &file, fields)
            .await
            .unwrap();
        assert_eq!(source, Source::Snapshot);
        assert_eq!(results(&partial, rule), expected, "{rule} with {fields:?}");
    }

    let (busy, errors, failed) = results(&plain, BUSY_RULE);
    assert!(failed.is_none() && errors.is_empty() && !busy.is_empty());

    // A change in the store makes the snapshot stale.
    let first = herald::client::types::ClientId::parse(plain.clients[0].id()).unwrap();
    store
        .record_consent(&herald::client::consent::ConsentChange {
            client_id: first.clone(),
            scope: herald::client::consent::ConsentScope::Email,
            granted: false,
            source: herald::client::consent::ConsentSource::UnsubscribeLink,
            at: chrono::Utc::now(),
            actor: None,
            note: None,
        })
        .await
        .unwrap();
    let (fresh, source) = snapshot::population(store, tz, &file, Fields::ALL)
        .await
        .unwrap();
    assert_eq!(
        source,
        Source::Store,
        "a changed store rebuilds the snapshot"
    );
    let (ids, _, _) = results(&fresh, r#"client.unsubscribed("email")"#);
    assert_eq!(ids, vec![first.to_string()]);
}
