//! The `herald` binary as a user and their scripts meet it: exit status,
//! one-line errors, and what it prints.

use std::path::Path;
use std::process::{Command, Output};

fn herald(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .current_dir(dir)
        .env_remove("HERALD_DATABASE_URL")
        .output()
        .expect("run herald")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const MIXED: &str = "id,name,email,phone\n\
                     000001,\"张三, 先生\",zhang@example.com,13812345678\n\
                     000002,李四,li@@example,13812345679\n\
                     000003,王五,wang@example.com,1381234\n";

#[test]
fn help_lists_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let o = herald(dir.path(), &["--help"]);
    assert!(o.status.success());
    for cmd in ["init", "import", "clients", "demo-data", "demo"] {
        assert!(stdout(&o).contains(cmd), "--help mentions {cmd}");
    }
}

#[test]
fn an_import_with_bad_rows_exits_2_and_names_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.csv"), MIXED).unwrap();
    let o = herald(dir.path(), &["import", "clients", "c.csv"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("1 imported"), "{out}");
    assert!(out.contains("line 3: email"), "{out}");
    assert!(out.contains("line 4: phone"), "{out}");
    assert!(
        dir.path().join("herald.db").exists(),
        "the default database is herald.db here"
    );

    let shown = herald(dir.path(), &["clients", "show", "000001", "--json"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let v: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(v["name"], "张三, 先生");
    assert_eq!(
        v["phone"], "+8613812345678",
        "an operator's view is unmasked"
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.csv"), MIXED).unwrap();
    herald(dir.path(), &["import", "clients", "c.csv"]);
    // `herald clients show 000001 | head -0`: the reader is gone before
    // herald writes.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["clients", "show", "000001"])
        .current_dir(dir.path())
        .env_remove("HERALD_DATABASE_URL")
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn strict_writes_nothing_and_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.csv"), MIXED).unwrap();
    let o = herald(dir.path(), &["import", "clients", "c.csv", "--strict"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    let shown = herald(dir.path(), &["clients", "show", "000001"]);
    assert_eq!(shown.status.code(), Some(1));
    assert!(stderr(&shown).contains("no client with id '000001'"));
}

#[test]
fn a_missing_file_or_bad_config_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = herald(dir.path(), &["import", "clients", "nope.csv"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("herald: error: nope.csv:"),
        "{}",
        stderr(&o)
    );

    std::fs::write(
        dir.path().join("herald.toml"),
        "timezone = \"Asia/Shanghai\"\ndatabse_url = \"x\"\n",
    )
    .unwrap();
    let o = herald(dir.path(), &["init"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("herald.toml") && err.contains("databse_url"),
        "{err}"
    );
}

#[test]
fn a_file_without_an_id_column_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.csv"), "name,email\n张三,z@example.com\n").unwrap();
    let o = herald(dir.path(), &["import", "clients", "c.csv"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("line 1: there is no 'id' column"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn demo_data_is_reproducible_from_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let gen = |out: &str, seed: &str| {
        let o = herald(
            dir.path(),
            &[
                "demo-data",
                "--clients",
                "200",
                "--out",
                out,
                "--seed",
                seed,
                "--history",
                "7",
                "--as-of",
                "2026-11-25",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read(dir.path().join(out)).unwrap()
    };
    assert_eq!(gen("a.csv", "7"), gen("b.csv", "7"));
    assert_ne!(gen("a.csv", "7"), gen("c.csv", "8"));
    assert!(dir.path().join("a.events.jsonl").exists());
    let o = herald(dir.path(), &["import", "clients", "a.csv"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "generated data imports cleanly: {}",
        stdout(&o)
    );
    let o = herald(dir.path(), &["import", "events", "a.events.jsonl"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "generated history imports cleanly: {}",
        stdout(&o)
    );
}

#[test]
fn the_demo_runs_anywhere_and_ends_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let o = herald(
            dir.path(),
            &["demo", "--clients", "300", "--dir", "d", "--json"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        let json_start = out.rfind("\n{").expect("a JSON summary at the end");
        let v: serde_json::Value = serde_json::from_str(&out[json_start..]).unwrap();
        assert_eq!(v["clients"], 300);
        assert_eq!(v["reimport_unchanged"], 300);
        assert_eq!(v["reimport_conflicts"], 1);
    }
    assert!(dir.path().join("d/herald.toml").exists());
}

#[test]
fn the_shipped_rules_pass_their_own_tests() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for rule in ["research_followers", "bulletin_audience", "seminar_drive"] {
        let o = herald(repo, &["rule", "test", rule]);
        assert!(o.status.success(), "{rule}: {}{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).contains(" passed, 0 failed"), "{}", stdout(&o));
    }
}

#[test]
fn a_rule_with_a_typo_is_refused_with_file_line_and_caret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/vip.rhai"),
        "client.has_tag(\"vip\") &&\n  client.risk_levle >= \"C3\"\n",
    )
    .unwrap();
    let o = herald(dir.path(), &["segment", "vip"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("rules/vip.rhai:2:10: client has no field 'risk_levle'"),
        "{err}"
    );
    assert!(err.contains("did you mean 'risk_level'"), "{err}");
    assert!(err.contains('^'), "{err}");
}

#[test]
fn testing_a_rule_that_does_not_exist_names_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let o = herald(dir.path(), &["rule", "test", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("rules/nope.rhai: no such rule"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_demo_never_replaces_a_database_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("herald.db"), b"the firm's data").unwrap();
    let o = herald(dir.path(), &["demo", "--dir", ".", "--clients", "100"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("did not make"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(dir.path().join("herald.db")).unwrap(),
        b"the firm's data"
    );
}

#[test]
fn the_demo_refuses_a_database_or_configuration_it_would_ignore() {
    let dir = tempfile::tempdir().unwrap();
    for flag in [
        [
            "--database-url",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ],
        ["--config", "herald.toml"],
    ] {
        let mut args = vec!["demo", "--dir", "d", "--clients", "100"];
        args.extend(flag);
        let o = herald(dir.path(), &args);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("--config and --database-url do not apply"),
            "{}",
            stderr(&o)
        );
        assert!(!dir.path().join("d").exists(), "nothing was written");
    }
}

#[test]
fn the_demos_next_steps_reach_its_database_past_one_named_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["demo", "--clients", "100", "--dir", "d"])
        .current_dir(dir.path())
        .env("HERALD_DATABASE_URL", "sqlite://elsewhere.db")
        .output()
        .expect("run herald");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("&& env -u HERALD_DATABASE_URL herald clients show"),
        "{}",
        stdout(&o)
    );
    assert!(!dir.path().join("elsewhere.db").exists());
    assert!(dir.path().join("d/herald.db").exists());
}

#[test]
fn the_demo_refuses_too_few_clients_before_it_writes_anything() {
    let dir = tempfile::tempdir().unwrap();
    for few in ["0", "99"] {
        let o = herald(dir.path(), &["demo", "--dir", "d", "--clients", few]);
        assert_eq!(o.status.code(), Some(2), "a usage error");
        assert!(stderr(&o).contains("at least 100"), "{}", stderr(&o));
        assert!(!dir.path().join("d").exists(), "nothing was written");
    }
}

#[test]
fn bench_eval_selects_what_segment_selects() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::copy(
        repo.join("rules/bulletin_audience.rhai"),
        dir.path().join("rules/bulletin_audience.rhai"),
    )
    .unwrap();
    let data = herald(
        dir.path(),
        &[
            "demo-data",
            "--clients",
            "500",
            "--out",
            "c.csv",
            "--seed",
            "3",
        ],
    );
    assert!(data.status.success(), "{}", stderr(&data));
    let imported = herald(dir.path(), &["import", "clients", "c.csv", "--json"]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    let json = |args: &[&str]| -> serde_json::Value {
        let o = herald(dir.path(), args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let segment = json(&[
        "segment",
        "bulletin_audience",
        "--as-of",
        "2026-11-25",
        "--json",
    ]);
    let bench = json(&[
        "bench",
        "eval",
        "bulletin_audience",
        "--as-of",
        "2026-11-25",
        "--rounds",
        "2",
        "--json",
    ]);
    assert_eq!(bench["matched"], segment["matched"]);
    assert_eq!(bench["clients"], 500);
    assert_eq!(bench["round_ms"].as_array().unwrap().len(), 2);
    assert!(bench["median_clients_per_second"].as_f64().unwrap() > 0.0);
}
