//! Campaign files, templates and previews as staff meet them: the shipped
//! setup in a folder of its own, `herald campaigns validate` and
//! `herald preview`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use herald::tracking::token::{self, Secret};
use serde_json::Value;

const SECRET: &str = "test-secret-0123456789";

fn herald(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .current_dir(dir)
        .env_remove("HERALD_DATABASE_URL")
        .env_remove("HERALD_TRACKING_SECRET")
        .output()
        .expect("run herald")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The shipped campaigns, rules and templates with a configuration, and
/// three clients: one with everything, one with nothing optional, one
/// reachable by SMS only.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["campaigns", "rules", "templates", "seminars"] {
        common::copy_dir(&repo.join(sub), &dir.path().join(sub));
    }
    let config = std::fs::read_to_string(repo.join("examples/herald.toml"))
        .unwrap()
        .replace("change-me-this-is-only-the-demo-key", SECRET);
    std::fs::write(dir.path().join("herald.toml"), config).unwrap();
    std::fs::write(
        dir.path().join("clients.csv"),
        "id,name,email,phone,branch,risk_level,assets,holdings,watchlist,birthday\n\
         0000000001,张伟,zhang.wei@example.com,13812345678,上海浦东新区世纪大道证券营业部,C4,1234567.89,600519;300750;000001,601318,1980-05-17\n\
         0000000002,李娜,,,,,,,,\n\
         0000000003,王芳,,13900001111,,C3,50000,600036,,\n",
    )
    .unwrap();
    let o = herald(dir.path(), &["import", "clients", "clients.csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

fn preview_json(dir: &Path, campaign: &str, client: &str, channel: &str) -> Value {
    let o = herald(
        dir,
        &[
            "preview",
            campaign,
            "--client",
            client,
            "--channel",
            channel,
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn the_shipped_campaigns_are_valid() {
    let dir = project();
    let o = herald(dir.path(), &["campaigns", "validate"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    for name in ["daily_bulletin", "research_600519", "strategy_seminar"] {
        assert!(out.contains(&format!("{name}: ok")), "{out}");
    }
}

#[test]
fn a_misspelt_name_inside_if_fails_validation_with_file_line_and_name() {
    let dir = project();
    let file = dir.path().join("templates/market_bulletin/body.txt.hbs");
    let mut text = std::fs::read_to_string(&file).unwrap();
    let line = text.lines().count() + 1;
    text.push_str("{{#if client.email}}{{client.emial}}{{/if}}\n");
    std::fs::write(&file, text).unwrap();
    let o = herald(dir.path(), &["campaigns", "validate", "daily_bulletin"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let expected = format!("templates/market_bulletin/body.txt.hbs:{line}:");
    assert!(out.contains(&expected), "{out}");
    assert!(out.contains("'client.emial'"), "{out}");
    assert!(out.contains("did you mean 'email'"), "{out}");
}

#[test]
fn a_misspelt_campaign_key_is_named_with_file_and_line() {
    let dir = project();
    let file = dir.path().join("campaigns/daily_bulletin.toml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("channels =", "chanels =");
    std::fs::write(&file, text).unwrap();
    let o = herald(dir.path(), &["campaigns", "validate", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let reports: Value = serde_json::from_slice(&o.stdout).unwrap();
    let bulletin = reports
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["campaign"] == "daily_bulletin")
        .unwrap();
    let problem = &bulletin["problems"][0];
    assert_eq!(problem["subject"], "chanels");
    assert!(problem["line"].as_u64().unwrap() > 0);
    let others_ok = reports
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["campaign"] != "daily_bulletin")
        .all(|r| {
            r["problems"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["severity"] == "warning")
        });
    assert!(others_ok, "{reports}");
}

#[test]
fn a_research_report_without_a_certificate_number_is_refused() {
    let dir = project();
    let file = dir.path().join("campaigns/content/research_report.json");
    let mut content: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    content["analysts"][0]["certificate"] = Value::String("S123".into());
    std::fs::write(&file, content.to_string()).unwrap();
    let o = herald(dir.path(), &["campaigns", "validate", "research_600519"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("analysts[0].certificate"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_broken_seminar_notice_template_is_found_before_anyone_answers() {
    let dir = project();
    let file = dir.path().join("templates/seminar_notice/sms.hbs");
    let sms = std::fs::read_to_string(&file)
        .unwrap()
        .replace("第{{rsvp.place}}位", "第{{rsvp.plaec}}位");
    std::fs::write(&file, sms).unwrap();
    let o = herald(dir.path(), &["campaigns", "validate", "strategy_seminar"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("seminar_notice/sms.hbs") && stdout(&o).contains("waitlisted notice"),
        "{}",
        stdout(&o)
    );
}

/// The token in a link's path, and the secret it verifies with.
fn token_of(url: &str) -> String {
    let path = url::Url::parse(url).unwrap();
    let last = path
        .path_segments()
        .unwrap()
        .next_back()
        .unwrap()
        .to_owned();
    last.trim_end_matches(".gif").to_owned()
}

#[test]
fn preview_links_are_signed_and_a_changed_character_breaks_them() {
    let dir = project();
    let v = preview_json(dir.path(), "daily_bulletin", "0000000001", "email");
    let html = v["email"]["html"].as_str().unwrap();
    let unsubscribe = html
        .split('"')
        .find(|s| s.starts_with("https://t.example.com/u/"))
        .expect("an unsubscribe link");
    let secret = Secret::new(SECRET.as_bytes()).unwrap();
    let tok = token_of(unsubscribe);
    let claims = token::verify(&secret, &tok, "").unwrap();
    assert_eq!(claims.action, token::Action::Unsubscribe);
    let mut altered: Vec<char> = tok.chars().collect();
    altered[10] = if altered[10] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();
    assert!(token::verify(&secret, &altered, "").is_err());
    assert!(!unsubscribe.contains("0000000001"), "no client id in links");
}

#[test]
fn sms_preview_counts_segments_at_the_boundaries() {
    let dir = project();
    // A service message: the signature only, no opt-out suffix.
    let campaign = std::fs::read_to_string(dir.path().join("campaigns/daily_bulletin.toml"))
        .unwrap()
        .replace("purpose = \"marketing\"", "purpose = \"service\"")
        .replace("kind = \"market_bulletin\"", "kind = \"daily_notice\"")
        .replace("templates = \"market_bulletin\"", "templates = \"fixed\"")
        .replace("channels = [\"email\", \"sms\"]", "channels = [\"sms\"]")
        .replace("sms_max_segments = 2", "sms_max_segments = 3");
    std::fs::write(dir.path().join("campaigns/fixed.toml"), campaign).unwrap();
    std::fs::create_dir_all(dir.path().join("templates/fixed")).unwrap();
    let cases = [
        // 【某某证券】 is 6 characters.
        ("domestic", "测".repeat(64), 70, 1),
        ("domestic", "测".repeat(65), 71, 2),
        ("gsm7", "a".repeat(154), 160, 1),
        ("gsm7", "a".repeat(155), 161, 2),
    ];
    for (billing, text, chars, segments) in cases {
        let config = std::fs::read_to_string(dir.path().join("herald.toml"))
            .unwrap()
            .replace(
                "billing = \"domestic\"",
                &format!("billing = \"{billing}\""),
            )
            .replace(
                "signature = \"【某某证券】\"",
                if billing == "gsm7" {
                    "signature = \"(ABCD)\""
                } else {
                    "signature = \"【某某证券】\""
                },
            );
        std::fs::write(dir.path().join("fixed.toml"), config).unwrap();
        std::fs::write(dir.path().join("templates/fixed/sms.hbs"), &text).unwrap();
        let o = herald(
            dir.path(),
            &[
                "--config",
                "fixed.toml",
                "preview",
                "fixed",
                "--client",
                "0000000003",
                "--json",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let m = &v["sms"]["measure"];
        assert_eq!(m["chars"], chars, "{billing} {v}");
        assert_eq!(m["segments"], segments, "{billing} {chars}: {v}");
    }
}

#[test]
fn preview_names_what_is_wrong() {
    let dir = project();
    let o = herald(
        dir.path(),
        &["preview", "daily_bulletin", "--client", "404"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("there is no client 404"),
        "{}",
        stderr(&o)
    );
    let o = herald(
        dir.path(),
        &["preview", "no_such", "--client", "0000000001"],
    );
    assert!(
        stderr(&o).contains("campaigns/no_such.toml"),
        "{}",
        stderr(&o)
    );
    let o = herald(
        dir.path(),
        &["preview", "daily_bulletin", "--client", "0000000002"],
    );
    assert!(stderr(&o).contains("has no address"), "{}", stderr(&o));
}

/// A real HTTP server on a local port, serving content or failing.
fn content_server() -> (String, std::thread::JoinHandle<()>) {
    use axum::{http::StatusCode, routing::get, Router};
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bulletin =
        std::fs::read_to_string(repo.join("campaigns/content/market_bulletin.json")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = Router::new()
                .route("/bulletin.json", get(move || async move { bulletin }))
                .route(
                    "/down",
                    get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "maintenance") }),
                )
                .route("/html", get(|| async { "<html>not json</html>" }));
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (base, handle)
}

#[test]
fn content_fetched_over_http_renders_and_a_failed_fetch_stops_with_a_clear_error() {
    let dir = project();
    let (base, _server) = content_server();
    let file = dir.path().join("campaigns/daily_bulletin.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    let with_url = |path: &str| {
        original.replace(
            "file = \"content/market_bulletin.json\"",
            &format!("url = \"{base}{path}\""),
        )
    };
    std::fs::write(&file, with_url("/bulletin.json")).unwrap();
    let o = herald(dir.path(), &["campaigns", "validate", "daily_bulletin"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let v = preview_json(dir.path(), "daily_bulletin", "0000000001", "email");
    assert!(v["email"]["html"].as_str().unwrap().contains("上证指数"));

    std::fs::write(&file, with_url("/down")).unwrap();
    let o = herald(
        dir.path(),
        &["preview", "daily_bulletin", "--client", "0000000001"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("HTTP 503"), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "nothing rendered: {}", stdout(&o));

    std::fs::write(&file, with_url("/html")).unwrap();
    let o = herald(dir.path(), &["campaigns", "validate", "daily_bulletin"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("not JSON"), "{}", stdout(&o));
}

#[tokio::test]
async fn rendering_ahead_changes_no_byte_of_any_shipped_message() {
    use herald::campaign::{file::Campaign, validate::sample_clients, Prepared};
    use herald::message::data::set_recipient;
    use herald::message::template::Part;
    let dir = project();
    let config = herald::config::Config::load(Some(&dir.path().join("herald.toml")), None).unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    for name in ["daily_bulletin", "research_600519", "strategy_seminar"] {
        let campaign = Campaign::load(&dir.path().join(format!("campaigns/{name}.toml"))).unwrap();
        let prepared = Prepared::new(campaign, &config, today).await.unwrap();
        let mut ctx = prepared.context();
        for (i, client) in sample_clients(today).iter().enumerate() {
            set_recipient(ctx.data_mut(), client, i as i64);
            for part in Part::ALL {
                let fast = prepared.renderer.part(part, &ctx).unwrap();
                let written = prepared.renderer.part_as_written(part, &ctx).unwrap();
                assert_eq!(fast, written, "{name} {part:?} for client {}", client.id);
            }
        }
    }
}

fn content(name: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("campaigns/content/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

/// Every link of `action`'s path in `text`, verified against the secret.
fn links_in(text: &str, segment: &str) -> Vec<(String, token::Claims)> {
    let secret = Secret::new(SECRET.as_bytes()).unwrap();
    let prefix = format!("https://t.example.com/{segment}/");
    text.split(['"', '\n', ' ', '<', '>', '：'])
        .filter(|s| s.starts_with(&prefix))
        .map(|raw| {
            let url = url::Url::parse(&raw.replace("&amp;", "&")).unwrap();
            let target = url
                .query_pairs()
                .find(|(k, _)| k == "u")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let claims = token::verify(&secret, &token_of(raw), &target).unwrap();
            (target, claims)
        })
        .collect()
}

#[test]
fn a_bulletin_preview_is_complete_in_text_and_html() {
    let dir = project();
    let v = preview_json(dir.path(), "daily_bulletin", "0000000001", "email");
    let email = &v["email"];
    let (subject, text, html) = (
        email["subject"].as_str().unwrap(),
        email["text"].as_str().unwrap(),
        email["html"].as_str().unwrap(),
    );
    assert!(subject.starts_with("【广告】2026年11月25日"), "{subject}");
    assert!(text.contains("张伟"), "{text}");
    // Every holding the day's quotes cover, with its price and change.
    let quotes = &content("market_bulletin")["quotes"];
    for code in ["600519", "300750", "000001"] {
        let q = &quotes[code];
        let price = herald::message::format::price(q["price"].as_f64().unwrap());
        let change = herald::message::format::percent(q["change_pct"].as_f64().unwrap(), 2);
        let line = text
            .lines()
            .find(|l| l.contains(&format!("（{code}）")) && l.contains(q["name"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("no line for {code} in {text}"));
        assert!(line.contains(&price) && line.contains(&change), "{line}");
        assert!(
            html.contains(&price) && html.contains(&change),
            "{code} in the HTML"
        );
    }
    assert!(
        !text.contains("（601318）"),
        "a watched stock is not a holding"
    );
    assert!(text.contains("上证指数") && html.contains("上证指数"));
    assert!(
        html.contains("class=\"down\"") && html.contains("color:#2e7d32"),
        "falls are green"
    );
    assert_eq!(
        links_in(html, "u").len(),
        1,
        "one unsubscribe link in the HTML"
    );
    assert_eq!(links_in(text, "u")[0].1.action, token::Action::Unsubscribe);
    let (_, pixel) = html
        .split('"')
        .find(|s| s.starts_with("https://t.example.com/o/"))
        .map(|s| {
            (
                (),
                token::verify(&Secret::new(SECRET.as_bytes()).unwrap(), &token_of(s), "").unwrap(),
            )
        })
        .expect("an open pixel");
    assert_eq!(pixel.action, token::Action::Open);
    let file = PathBuf::from(v["html_file"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(dir.path().join(file)).unwrap(),
        html
    );
}

#[test]
fn a_research_report_preview_carries_every_compliance_item() {
    let dir = project();
    let v = preview_json(dir.path(), "research_600519", "0000000001", "email");
    let report = content("research_report");
    for part in ["text", "html"] {
        let body = v["email"][part].as_str().unwrap();
        for analyst in report["analysts"].as_array().unwrap() {
            assert!(
                body.contains(analyst["certificate"].as_str().unwrap()),
                "{part}"
            );
            assert!(body.contains(analyst["name"].as_str().unwrap()), "{part}");
        }
        assert!(
            body.contains("某某证券股份有限公司具备中国证监会核准的证券投资咨询业务资格"),
            "{part}"
        );
        assert!(
            body.contains("2026年11月25日 07:30"),
            "release time in {part}"
        );
        assert!(body.contains("1,980.00"), "target price in {part}");
        assert!(body.contains(report["rating"].as_str().unwrap()), "{part}");
        assert!(body.contains("投资需谨慎"), "risk disclaimer in {part}");
        let clicks = links_in(body, "c");
        let pdf = report["pdf_url"].as_str().unwrap();
        assert!(
            clicks
                .iter()
                .any(|(target, c)| target == pdf && c.action == token::Action::Click),
            "{part}: {clicks:?}"
        );
    }
}

#[test]
fn a_seminar_preview_offers_both_answers_and_the_sms_fits_its_cap() {
    let dir = project();
    let v = preview_json(dir.path(), "strategy_seminar", "0000000001", "email");
    let html = v["email"]["html"].as_str().unwrap();
    let answers: Vec<token::Action> = links_in(html, "r")
        .into_iter()
        .map(|(_, c)| c.action)
        .collect();
    assert!(
        answers.contains(&token::Action::RsvpYes) && answers.contains(&token::Action::RsvpNo),
        "{answers:?}"
    );
    let text = v["email"]["text"].as_str().unwrap();
    assert!(text.contains("2026年12月12日 14:00–16:30"), "{text}");
    // Nobody has answered yet: every seat of seminars/strategy_2027.toml is left.
    assert!(
        text.contains("剩余席位：120席（共120席）"),
        "seats left in {text}"
    );

    let sms = preview_json(dir.path(), "strategy_seminar", "0000000003", "sms");
    let body = sms["sms"]["text"].as_str().unwrap();
    assert!(
        body.starts_with("【某某证券】") && body.ends_with("拒收请回复R"),
        "{body}"
    );
    assert!(body.contains("王芳"));
    assert!(sms["sms"]["measure"]["segments"].as_u64().unwrap() <= 2);
}

#[test]
fn a_render_failure_inside_a_partial_names_the_partial() {
    let dir = project();
    let footer = dir.path().join("templates/partials/footer_text.hbs");
    let mut text = std::fs::read_to_string(&footer).unwrap();
    // Every name exists, so the checker passes; cny of a name fails only when rendered.
    text.push_str("{{cny client.name}}\n");
    std::fs::write(&footer, text).unwrap();
    let o = herald(dir.path(), &["campaigns", "validate", "daily_bulletin"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("templates/partials/footer_text.hbs"), "{out}");
    assert!(
        out.contains("cny: '") && out.contains("is not a number"),
        "{out}"
    );
}

#[test]
fn service_messages_carry_no_advertising_marker_and_no_opt_out() {
    let dir = project();
    let file = dir.path().join("campaigns/daily_bulletin.toml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("purpose = \"marketing\"", "purpose = \"service\"")
        .replace("kind = \"market_bulletin\"", "kind = \"daily_notice\"");
    std::fs::write(&file, text).unwrap();
    let email = preview_json(dir.path(), "daily_bulletin", "0000000001", "email");
    let subject = email["email"]["subject"].as_str().unwrap();
    assert!(subject.starts_with("2026年11月25日"), "{subject}");
    let sms = preview_json(dir.path(), "daily_bulletin", "0000000003", "sms");
    let body = sms["sms"]["text"].as_str().unwrap();
    assert!(
        body.starts_with("【某某证券】") && !body.contains("拒收请回复R"),
        "{body}"
    );
}

#[test]
fn a_template_only_sms_provider_needs_the_campaigns_template_code() {
    let dir = project();
    let config = dir.path().join("herald.toml");
    let mut text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[channels]\nemail = \"outbox\"\nsms = \"outbox\"\n", "");
    text.push_str(
        "\n[providers.files]\nkind = \"outbox\"\ndir = \"outbox\"\n\
         [providers.aliyun]\nkind = \"aliyun\"\naccess_key_id = \"LTAI5tTEST\"\n\
         access_key_secret = \"testsecret0123456789\"\nsign_name = \"某某证券\"\n\
         [channels]\nemail = \"files\"\nsms = { marketing = \"files\", service = \"aliyun\" }\n",
    );
    std::fs::write(&config, text).unwrap();
    let file = dir.path().join("campaigns/daily_bulletin.toml");
    let service = std::fs::read_to_string(&file)
        .unwrap()
        .replace("purpose = \"marketing\"", "purpose = \"service\"")
        .replace("kind = \"market_bulletin\"", "kind = \"daily_notice\"");
    std::fs::write(&file, &service).unwrap();
    let o = herald(dir.path(), &["campaigns", "validate", "daily_bulletin"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("provider 'aliyun' sends approved templates only"),
        "{}",
        stdout(&o)
    );

    let with_template = service.replace(
        "[content]",
        "sms_template = { code = \"SMS_154950909\", params = { name = \"{{client.name}}\" } }\n\n[content]",
    );
    std::fs::write(&file, with_template).unwrap();
    let o = herald(dir.path(), &["campaigns", "validate", "daily_bulletin"]);
    assert!(o.status.success(), "{}", stdout(&o));
}
