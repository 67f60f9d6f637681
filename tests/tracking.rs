//! The tracking server end to end: a campaign is sent through a real SMTP
//! server, the links in the received message are followed over HTTP
//! against `herald serve --role tracking`, and the client's record shows
//! each response once; forged and altered links change nothing; a client
//! who unsubscribed with one click is suppressed from the next run.

mod common;

use std::path::Path;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cli::{
    exits_cleanly, free_ports, http, run_json, signal, spawn_serve, wait_for, Reaped,
};
use common::smtp::{start_smtp_server_keeping_bodies, Inbox};

const CLIENTS: &str = "\
id,name,email,risk_level,risk_assessed_on,consent_email,consent_sms
t1,甲,t1@example.com,C3,2026-06-01,true,false
t2,乙,t2@example.com,C3,2026-06-01,true,false
";

fn working_folder(dir: &Path, smtp_port: u16, tracking_port: u16) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(
        dir.join("herald.toml"),
        format!(
            r#"[firm]
name = "某某证券股份有限公司"
short_name = "某某证券"
website = "https://www.example.com/"

[email]
from = "某某证券 <research@example.com>"
unsubscribe_mailto = "unsubscribe@example.com"

[tracking]
base_url = "http://127.0.0.1:{tracking_port}"
secret = "0123456789abcdef0123456789abcdef"
listen = "127.0.0.1:{tracking_port}"
scanner_window_secs = 0

[providers.smtp]
kind = "smtp"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"

[providers.outbox]
kind = "outbox"
dir = "outbox"

[channels]
email = "smtp"
sms = "outbox"
"#
        ),
    )
    .unwrap();
    common::copy_dir(&repo.join("templates"), &dir.join("templates"));
    common::copy_dir(&repo.join("rules"), &dir.join("rules"));
    common::copy_dir(
        &repo.join("campaigns/content"),
        &dir.join("campaigns/content"),
    );
    std::fs::write(
        dir.join("campaigns/news.toml"),
        "kind = \"market_bulletin\"\npurpose = \"marketing\"\ntitle = \"快报\"\n\
         audience = \"broadcast\"\ntemplates = \"market_bulletin\"\nchannels = [\"email\"]\n\
         [content]\nfile = \"content/market_bulletin.json\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("c.csv"), CLIENTS).unwrap();
}

/// The tracking links in a received message: (open, a click, unsubscribe).
fn links(raw: &str, port: u16) -> (String, String, String) {
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .expect("MIME");
    let html = message.body_html(0).expect("an HTML part").into_owned();
    let base = format!("http://127.0.0.1:{port}");
    let find = |prefix: &str| -> String {
        let start = html
            .find(&format!("{base}{prefix}"))
            .unwrap_or_else(|| panic!("no {prefix} link"));
        let end = html[start..].find('"').unwrap() + start;
        html[start..end]
            .replace("&amp;", "&")
            .replace("&#x3D;", "=")
    };
    let unsubscribe = message
        .header_raw("List-Unsubscribe")
        .and_then(|h| {
            h.split(['<', '>'])
                .find(|p| p.starts_with(&base))
                .map(str::to_owned)
        })
        .expect("List-Unsubscribe carries the https link");
    (find("/o/"), find("/c/"), unsubscribe)
}

fn path(url: &str) -> &str {
    &url[url
        .find("/o/")
        .or(url.find("/c/"))
        .or(url.find("/u/"))
        .unwrap()..]
}

fn events(dir: &Path, url: &str, client: &str) -> Vec<serde_json::Value> {
    let shown = run_json(dir, url, &["clients", "show", client, "--json"]);
    shown["events"].as_array().cloned().unwrap_or_default()
}

fn count(events: &[serde_json::Value], kind: &str) -> usize {
    events.iter().filter(|e| e["kind"] == kind).count()
}

fn spawn_tracking(dir: &Path, url: &str, admin: u16) -> Reaped {
    let admin = format!("127.0.0.1:{admin}");
    spawn_serve(
        dir,
        url,
        0,
        &["--role", "tracking", "--admin-listen", &admin],
    )
}

#[test]
fn links_in_a_sent_message_land_once_in_the_record_and_forgeries_change_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let inbox: Inbox = Arc::new(Mutex::new(Vec::new()));
    let smtp = start_smtp_server_keeping_bodies(&rt, inbox.clone());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = format!("sqlite://{}", dir.join("herald.db").display());
    let [port, admin] = free_ports();
    working_folder(dir, smtp, port);
    run_json(dir, &url, &["import", "clients", "c.csv", "--json"]);
    run_json(dir, &url, &["send", "news", "--key", "first", "--json"]);
    let raw = {
        let inbox = inbox.lock().unwrap();
        assert_eq!(inbox.len(), 2);
        let m = inbox
            .iter()
            .find(|m| m.recipients == ["t1@example.com"])
            .expect("t1's message");
        m.data.clone().unwrap()
    };
    let (open, click, unsubscribe) = links(&raw, port);
    let raw_t2 = {
        let inbox = inbox.lock().unwrap();
        let m = inbox
            .iter()
            .find(|m| m.recipients == ["t2@example.com"])
            .expect("t2's message");
        m.data.clone().unwrap()
    };
    let (_, click_t2, _) = links(&raw_t2, port);

    let mut serve = spawn_tracking(dir, &url, admin);
    let browser = [(
        "User-Agent",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148",
    )];
    wait_for("the tracking server", Duration::from_secs(30), || {
        if let Some(status) = serve.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.join("serve-0.log")).unwrap_or_default();
            panic!("herald serve exited with {status}:\n{log}");
        }
        http(port, "GET", path(&open), &browser, "").is_some()
    });

    // The pixel loads again and again: one open.
    for _ in 0..3 {
        let a = http(port, "GET", path(&open), &browser, "").unwrap();
        assert_eq!(
            (a.status, a.header("content-type")),
            (200, Some("image/gif"))
        );
    }
    // The click goes where the message said, and nowhere else.
    let a = http(port, "GET", path(&click), &browser, "").unwrap();
    assert_eq!(a.status, 303, "{}", a.body);
    let target = a.header("location").unwrap().to_owned();
    assert!(
        click.contains(&form_encoded(&target)),
        "{target} is the link's own target"
    );
    let (token_part, _) = path(&click).split_once('?').unwrap();
    let elsewhere = format!("{token_part}?u=https%3A%2F%2Fevil.example%2F");
    let a = http(port, "GET", &elsewhere, &browser, "").unwrap();
    assert_eq!(a.status, 404, "an altered target is refused");
    assert!(a.header("location").is_none());

    // Forged tokens: one character changed, an open token used to click,
    // garbage.
    let open_path = path(&open).to_owned();
    let mut forged = open_path.clone().into_bytes();
    let i = "/o/".len() + 5;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let token = open_path.trim_start_matches("/o/").trim_end_matches(".gif");
    for bad in [
        forged.as_str(),
        &format!("/c/{token}?u=https%3A%2F%2Fevil.example%2F"),
        &format!("/u/{token}"),
        "/o/not-a-token.gif",
        "/u/%00%FF",
    ] {
        let a = http(port, "GET", bad, &browser, "").unwrap();
        assert!((400..500).contains(&a.status), "{bad}: {}", a.status);
    }
    let a = http(
        port,
        "POST",
        &format!("/u/{token}"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "List-Unsubscribe=One-Click",
    )
    .unwrap();
    assert_eq!(a.status, 404, "an open token cannot unsubscribe");

    // The unsubscribe page, then RFC 8058 one-click, twice.
    let a = http(port, "GET", path(&unsubscribe), &browser, "").unwrap();
    assert_eq!(a.status, 200);
    assert!(a.body.contains("退订"), "{}", a.body);
    for _ in 0..2 {
        let a = http(
            port,
            "POST",
            path(&unsubscribe),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "List-Unsubscribe=One-Click",
        )
        .unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
    }
    // t2's link checked by a gateway the moment it arrived, the message never
    // opened: redirected, but flagged, not counted as a click.
    let a = http(port, "GET", path(&click_t2), &browser, "").unwrap();
    assert_eq!(a.status, 303);
    signal(&serve, "-TERM");
    exits_cleanly(&mut serve, dir, 0);

    let t1 = events(dir, &url, "t1");
    assert_eq!(count(&t1, "opened"), 1, "{t1:#?}");
    assert_eq!(count(&t1, "clicked"), 1);
    assert_eq!(count(&t1, "unsubscribed"), 1);
    let t2 = events(dir, &url, "t2");
    assert_eq!(
        count(&t2, "opened") + count(&t2, "unsubscribed"),
        0,
        "t1's links reached nobody else"
    );
    assert_eq!(
        count(&t2, "clicked"),
        1,
        "the gateway's click, stored flagged"
    );

    // t2's address bounces; the DSN is read twice, with a chat mail beside it.
    let d2 = sent_delivery(dir, &url, "t2");
    let dsn = format!(
        "From MAILER-DAEMON Wed Nov 25 10:00:00 2026\nFrom: MAILER-DAEMON@mx.example.com\nTo: research@example.com\n\
         Subject: Undelivered Mail\nMIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n--b\n\
         Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; t2@example.com\nAction: failed\n\
         Status: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 no such user\n--b\n\
         Content-Type: text/rfc822-headers\n\nX-Herald-Delivery: {d2}\n--b--\n\n\
         From someone Wed Nov 25 10:01:00 2026\nFrom: client@example.com\nTo: research@example.com\n\
         Subject: 请问\n\n明天开市吗？\n"
    );
    std::fs::write(dir.join("returned.mbox"), dsn).unwrap();
    for _ in 0..2 {
        let read = run_json(dir, &url, &["inbound", "ingest", "returned.mbox", "--json"]);
        assert_eq!(read["counts"]["hard_bounce"], 1, "{read:#}");
        assert_eq!(read["counts"]["left_alone"], 1, "{read:#}");
    }
    assert_eq!(
        count(&events(dir, &url, "t2"), "bounced"),
        1,
        "a DSN read twice is one bounce"
    );

    // The report counts each response once, for its delivery.
    let html = dir.join("report.html");
    let report = run_json(
        dir,
        &url,
        &["report", "news", "--json", "--html", html.to_str().unwrap()],
    );
    let funnel = &report["funnel"];
    assert_eq!(funnel["sent"], 2, "{report:#}");
    for kind in ["opened", "clicked", "unsubscribed", "bounced"] {
        assert_eq!(funnel["responses"][kind], 1, "{kind}: {report:#}");
    }
    assert_eq!(funnel["rates"]["opened"], 0.5);
    assert_eq!(
        report["flagged"]["clicked"], 1,
        "t2's unopened click: {report:#}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("活动效果报告") && page.contains("<svg"),
        "a self-contained report with charts"
    );
    assert!(
        !page.contains("<script") && !page.contains("src=\"http"),
        "nothing fetched to view it"
    );

    // The next run leaves both out, and says why.
    let next = run_json(dir, &url, &["send", "news", "--key", "second", "--json"]);
    let suppressed = &next["counts"]["suppressions"];
    assert_eq!(
        (&suppressed["unsubscribed"], &suppressed["bad_address"]),
        (&serde_json::json!(1), &serde_json::json!(1)),
        "{next:#}"
    );
    assert!(next["counts"]["deliveries"]["sent"].is_null(), "{next:#}");
}

/// `https://x/y` as it appears in a click link's `u=` parameter.
fn form_encoded(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

const SMS_CLIENTS: &str = "\
id,name,phone,risk_level,risk_assessed_on,consent_email,consent_sms
s1,甲,13800000001,C3,2026-06-01,false,true
s2,乙,13800000002,C3,2026-06-01,false,true
s3,丙,13800000003,C3,2026-06-01,false,true
s4,丁,13800000004,C3,2026-06-01,false,true
";

const TWILIO_TOKEN: &str = "twilio-test-token";

/// Twilio's signature over `url` and the form fields (sorted by name).
fn twilio_signature(url: &str, form: &[(&str, &str)]) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut fields = form.to_vec();
    fields.sort();
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(TWILIO_TOKEN.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for (k, v) in fields {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

fn sent_delivery(dir: &Path, url: &str, client: &str) -> i64 {
    events(dir, url, client)
        .iter()
        .find(|e| e["kind"] == "sent")
        .and_then(|e| e["delivery_id"].as_i64())
        .expect("a sent event with its delivery")
}

#[test]
fn sms_replies_and_receipts_reach_the_record_once_and_unsigned_ones_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = format!("sqlite://{}", dir.join("herald.db").display());
    let [smtp, port, admin] = free_ports();
    working_folder(dir, smtp, port);
    // Quiet hours far from now, so that the SMS go at once.
    let later =
        (chrono::Utc::now() + chrono::Duration::hours(6)).with_timezone(&chrono_tz::Asia::Shanghai);
    let quiet = format!(
        "{}-{}",
        later.format("%H:00"),
        (later + chrono::Duration::hours(1)).format("%H:00")
    );
    let config = std::fs::read_to_string(dir.join("herald.toml")).unwrap();
    let config = config
        .replace(
            "scanner_window_secs = 0\n",
            &format!("scanner_window_secs = 0\ntwilio_auth_token = \"{TWILIO_TOKEN}\"\n"),
        )
        .replace(
            "sms = \"outbox\"\n",
            "sms = \"outbox\"\n\n[sms]\nsignature = \"【某某证券】\"\n",
        )
        + "\n[tracking.generic_sms]\ntoken = \"generic-gateway-token-0123\"\nreply_phone = \"/mobile\"\n\
           reply_text = \"/msg\"\nreply_id = \"/id\"\nreceipt_delivery = \"/ref\"\nreceipt_status = \"/stat\"\n\
           delivered = [\"DELIVRD\"]\nbad_number = [\"UNDELIV\"]\n"
        + format!("\n[sending]\nquiet_hours = \"{quiet}\"\n").as_str();
    std::fs::write(dir.join("herald.toml"), config).unwrap();
    std::fs::write(dir.join("c.csv"), SMS_CLIENTS).unwrap();
    std::fs::write(
        dir.join("campaigns/alert.toml"),
        format!(
            "kind = \"market_bulletin\"\npurpose = \"marketing\"\ntitle = \"快讯\"\n\
             audience = \"broadcast\"\ntemplates = \"market_bulletin\"\nchannels = [\"sms\"]\n\
             quiet_hours = \"{quiet}\"\n[content]\nfile = \"content/market_bulletin.json\"\n"
        ),
    )
    .unwrap();
    std::fs::remove_file(dir.join("campaigns/news.toml")).unwrap();
    run_json(dir, &url, &["import", "clients", "c.csv", "--json"]);
    let first = run_json(dir, &url, &["send", "alert", "--key", "first", "--json"]);
    assert_eq!(first["counts"]["deliveries"]["sent"], 4, "{first:#}");
    let d2 = sent_delivery(dir, &url, "s2");

    let mut serve = spawn_tracking(dir, &url, admin);
    wait_for("the tracking server", Duration::from_secs(30), || {
        http(port, "GET", "/o/x.gif", &[], "").is_some()
    });
    let form_type = ("Content-Type", "application/x-www-form-urlencoded");
    let json_type = ("Content-Type", "application/json");

    // s1 replies TD by Twilio, and Twilio repeats the webhook.
    let inbound = [
        ("From", "+8613800000001"),
        ("Body", "TD"),
        ("MessageSid", "SM001"),
    ];
    let signature = twilio_signature(
        &format!("http://127.0.0.1:{port}/sms/twilio/inbound"),
        &inbound,
    );
    for _ in 0..2 {
        let a = http(
            port,
            "POST",
            "/sms/twilio/inbound",
            &[form_type, ("X-Twilio-Signature", &signature)],
            &form(&inbound),
        )
        .unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
    }
    // The same reply from s4, unsigned: refused.
    let forged = [
        ("From", "+8613800000004"),
        ("Body", "TD"),
        ("MessageSid", "SM002"),
    ];
    let a = http(
        port,
        "POST",
        "/sms/twilio/inbound",
        &[form_type, ("X-Twilio-Signature", "AAAA")],
        &form(&forged),
    )
    .unwrap();
    assert_eq!(a.status, 404);

    // s2's number is dead: Alibaba Cloud reports it, twice.
    let report = format!(
        r#"[{{"phone_number":"13800000002","success":false,"err_code":"MOBILE_NOT_ON_SERVICE","out_id":"{d2}"}}]"#
    );
    for _ in 0..2 {
        let a = http(port, "POST", "/sms/aliyun/report", &[json_type], &report).unwrap();
        assert_eq!(
            (a.status, a.body.contains("\"code\":0")),
            (200, true),
            "{}",
            a.body
        );
    }
    // s3 replies 退订 through Alibaba Cloud, and asks a question too.
    let up = r#"[{"phone_number":"13800000003","content":"退订","sequence_id":1,"send_time":"2026-11-25 10:00:00"},
                 {"phone_number":"13800000003","content":"几点开会？","sequence_id":2,"send_time":"2026-11-25 10:01:00"}]"#;
    let a = http(port, "POST", "/sms/aliyun/up", &[json_type], up).unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    // A configured gateway: s4 asks a question, and its receipt arrives;
    // the same push without the gateway's token changes nothing.
    let d4 = sent_delivery(dir, &url, "s4");
    let reply4 = r#"{"mobile":"13800000004","msg":"你好，请联系我","id":"G1"}"#;
    let a = http(
        port,
        "POST",
        "/sms/generic/reply?token=wrong",
        &[json_type],
        reply4,
    )
    .unwrap();
    assert_eq!(a.status, 404);
    let a = http(
        port,
        "POST",
        "/sms/generic/reply?token=generic-gateway-token-0123",
        &[json_type],
        reply4,
    )
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    let receipt4 = format!(r#"[{{"ref":"{d4}","stat":"DELIVRD"}}]"#);
    let a = http(
        port,
        "POST",
        "/sms/generic/receipt?token=generic-gateway-token-0123",
        &[json_type],
        &receipt4,
    )
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    // Malformed bodies change nothing.
    for bad in ["[{", "{\"phone_number\": 1}", "null"] {
        let a = http(port, "POST", "/sms/aliyun/up", &[json_type], bad).unwrap();
        assert!((400..500).contains(&a.status), "{bad}: {}", a.status);
    }
    signal(&serve, "-TERM");
    exits_cleanly(&mut serve, dir, 0);

    assert_eq!(count(&events(dir, &url, "s1"), "unsubscribed"), 1);
    assert_eq!(count(&events(dir, &url, "s2"), "bounced"), 1);
    let s3 = events(dir, &url, "s3");
    assert_eq!(
        (count(&s3, "unsubscribed"), count(&s3, "replied")),
        (1, 1),
        "{s3:#?}"
    );
    let s4 = events(dir, &url, "s4");
    assert_eq!(
        count(&s4, "unsubscribed"),
        0,
        "the forged reply changed nothing"
    );
    assert_eq!(
        (count(&s4, "replied"), count(&s4, "delivered")),
        (1, 1),
        "{s4:#?}"
    );

    let report = run_json(dir, &url, &["report", "alert", "--json"]);
    let responses = &report["funnel"]["responses"];
    assert_eq!(
        (
            &responses["bounced"],
            &responses["replied"],
            &responses["unsubscribed"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(2),
            &serde_json::json!(2)
        ),
        "{report:#}"
    );

    let next = run_json(dir, &url, &["send", "alert", "--key", "second", "--json"]);
    let suppressed = &next["counts"]["suppressions"];
    assert_eq!(next["counts"]["deliveries"]["sent"], 1, "{next:#}");
    assert_eq!(suppressed["unsubscribed"], 2, "{next:#}");
    assert_eq!(suppressed["bad_address"], 1, "{next:#}");
}

/// A thousand forged or altered links are refused and change nothing; and
/// every pixel hit the server answered before it stopped is stored: hits
/// arrive from several connections at once, SIGTERM comes mid-load, and the
/// opens in the database are exactly the hits that got their image.
#[test]
fn hits_answered_before_sigterm_are_all_stored() {
    // Enough hits that the stop lands while they are still coming.
    const CLIENTS: usize = 2400;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = format!("sqlite://{}", dir.join("herald.db").display());
    let [smtp, port, admin] = free_ports();
    working_folder(dir, smtp, port);
    let toml = std::fs::read_to_string(dir.join("herald.toml")).unwrap();
    std::fs::write(
        dir.join("herald.toml"),
        toml.replace("email = \"smtp\"", "email = \"outbox\""),
    )
    .unwrap();
    let mut csv = String::from("id,name,email,consent_email\n");
    for i in 0..CLIENTS {
        csv.push_str(&format!("L{i:04},客户{i},l{i}@example.com,true\n"));
    }
    std::fs::write(dir.join("c.csv"), csv).unwrap();
    run_json(dir, &url, &["import", "clients", "c.csv", "--json"]);
    let sent = run_json(dir, &url, &["send", "news", "--key", "load", "--json"]);
    let run = sent["run"]["id"].as_i64().expect("run id").to_string();
    let out = common::cli::herald(dir, &url)
        .args(["bench", "links", "--run", &run])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let paths: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(paths.len(), CLIENTS);

    let mut serve = spawn_tracking(dir, &url, admin);
    wait_for("the tracking server", Duration::from_secs(30), || {
        http(port, "GET", "/healthz", &[], "").is_some()
    });
    // A thousand forged and altered tokens first: every one refused, and
    // (checked at the end) none of them stored.
    let browser = [("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")];
    for (i, p) in paths.iter().cycle().take(1000).enumerate() {
        let mut bytes = p.clone().into_bytes();
        let at = 3 + i % (bytes.len() - 3);
        bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
        let mut forged = String::from_utf8(bytes).unwrap();
        if i % 4 == 1 {
            forged = forged.replacen("/o/", ["/c/", "/u/", "/v/", "/r/"][i / 4 % 4], 1);
        }
        let a = http(port, "GET", &forged, &browser, "").expect("an answer");
        assert!(
            (400..500).contains(&a.status),
            "{forged} answered {}",
            a.status
        );
    }
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = paths
        .chunks(CLIENTS / 8)
        .map(|chunk| {
            let (chunk, answered) = (chunk.to_vec(), answered.clone());
            std::thread::spawn(move || {
                let browser = [("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")];
                let mut ok = 0;
                for p in &chunk {
                    match http(port, "GET", p, &browser, "") {
                        Some(a) if a.status == 200 => {
                            ok += 1;
                            answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        // Refused once the server has stopped listening.
                        _ => {}
                    }
                }
                ok
            })
        })
        .collect();
    wait_for("the first hits", Duration::from_secs(30), || {
        answered.load(std::sync::atomic::Ordering::SeqCst) >= CLIENTS / 4
    });
    signal(&serve, "-TERM");
    let answered: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    exits_cleanly(&mut serve, dir, 0);
    assert!(
        (CLIENTS / 4..CLIENTS).contains(&answered),
        "the stop came mid-load: {answered} of {CLIENTS} hits answered"
    );

    let report = run_json(dir, &url, &["report", &run, "--json"]);
    let opened = report["funnel"]["responses"]["opened"]
        .as_u64()
        .unwrap_or_else(|| panic!("no opened total in {report}"));
    assert_eq!(
        opened as usize, answered,
        "every answered hit is stored, and nothing else"
    );
}
