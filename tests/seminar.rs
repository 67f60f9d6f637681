//! A seminar drive end to end against `herald serve`: two waves of
//! invitations (nobody invited twice), then 200 acceptances for 50 seats
//! arriving at once over HTTP (the signed RSVP links) and by SMS reply,
//! then 10 declines. The room is never overfilled, the wait list is
//! gapless and matches what each client was told, each decline promotes
//! exactly the next client, and every notice goes out once.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use chrono::{Duration as Days, Utc};
use common::cli::{herald, http, run_json, spawn_serve, wait_for};
use herald::store::seminars::Standing;
use herald::store::DatabaseUrl;
use mail_parser::MimeHeaders;

const CLIENTS: usize = 500;
const FIRST_WAVE: usize = 100;
const CAPACITY: i64 = 50;

fn working_folder(dir: &Path, port: u16) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["templates", "rules"] {
        common::copy_dir(&repo.join(sub), &dir.join(sub));
    }
    for sub in ["campaigns", "seminars"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    // Quiet hours far from now, so that the SMS go at once.
    let later = (Utc::now() + Days::hours(6)).with_timezone(&chrono_tz::Asia::Shanghai);
    let quiet = format!(
        "{}-{}",
        later.format("%H:00"),
        (later + Days::hours(1)).format("%H:00")
    );
    std::fs::write(
        dir.join("herald.toml"),
        format!(
            r#"[firm]
name = "某某证券股份有限公司"
short_name = "某某证券"

[email]
from = "某某证券 <events@example.com>"

[tracking]
base_url = "http://127.0.0.1:{port}"
secret = "0123456789abcdef0123456789abcdef"
listen = "127.0.0.1:{port}"

[sending]
quiet_hours = "{quiet}"

[providers.outbox]
kind = "outbox"
dir = "outbox"

[channels]
email = "outbox"
sms = "outbox"
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("rules/first_branch.rhai"),
        "client.branch == \"甲营业部\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("rules/everyone.rhai"), "true\n").unwrap();
    let local = |d: Days| {
        (Utc::now() + d)
            .with_timezone(&chrono_tz::Asia::Shanghai)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    // The waves' times are long past (beyond the scheduler's grace): the
    // test launches them itself.
    std::fs::write(
        dir.join("seminars/talk.toml"),
        format!(
            r#"title = "投资者教育讲座"
speaker = "李明"
starts_at = "{}"
ends_at = "{}"
capacity = {CAPACITY}
rsvp_deadline = "{}"

[venue]
name = "营业部三楼报告厅"
address = "上海市浦东新区世纪大道1号"

[[reminders]]
days_before = 1
at = "10:00"
channels = ["email", "sms"]

[[waves]]
name = "one"
audience = "first_branch"
channels = ["email"]
send_at = "{}"

[[waves]]
name = "two"
audience = "everyone"
channels = ["sms", "email"]
send_at = "{}"
"#,
            local(Days::days(10)),
            local(Days::days(10) + Days::hours(2)),
            local(Days::days(9)),
            local(Days::days(-3)),
            local(Days::days(-2)),
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("campaigns/talk.toml"),
        "kind = \"seminar_invitation\"\npurpose = \"marketing\"\ntitle = \"讲座邀请\"\n\
         audience = \"everyone\"\ntemplates = \"seminar_invitation\"\nchannels = [\"email\", \"sms\"]\n\
         [context]\nseminar = \"talk\"\n",
    )
    .unwrap();
    let mut csv = String::from(
        "id,name,email,phone,branch,risk_level,risk_assessed_on,consent_email,consent_sms\n",
    );
    for i in 0..CLIENTS {
        let branch = if i < FIRST_WAVE {
            "甲营业部"
        } else {
            "乙营业部"
        };
        csv.push_str(&format!(
            "s{i:04},客户{i},s{i}@example.com,1380000{i:04},{branch},C3,2026-06-01,true,true\n"
        ));
    }
    std::fs::write(dir.join("c.csv"), csv).unwrap();
}

/// `client id → path` of a link of every sent delivery of `run`.
fn links(dir: &Path, url: &str, run: i64, action: &str) -> BTreeMap<String, String> {
    let out = herald(dir, url)
        .args(["bench", "links", "--run", &run.to_string()])
        .args(["--action", action, "--clients"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (c, p) = l.split_once('\t').unwrap();
            (c.to_owned(), p.to_owned())
        })
        .collect()
}

/// What an RSVP page told: `seated` or `waitlisted` with the place.
fn told(body: &str) -> (String, Option<i64>) {
    let attr = |name: &str| {
        let start = body.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        body[start..start + body[start..].find('"').unwrap()].to_owned()
    };
    (attr("data-status"), attr("data-place").parse().ok())
}

fn run_id(report: &serde_json::Value) -> i64 {
    report["run"]["id"].as_i64().expect("a run id")
}

#[test]
fn a_full_room_fills_once_and_the_wait_list_moves_up_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = format!("sqlite://{}", dir.join("herald.db").display());
    let port = common::cli::free_port();
    working_folder(dir, port);
    run_json(dir, &url, &["import", "clients", "c.csv", "--json"]);

    // The waves' times have passed; the reminder is still to come.
    let status = run_json(dir, &url, &["status", "--json"]);
    let scheduled: Vec<&str> = status["scheduled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(scheduled, ["reminder 1d_1000 of seminar talk"], "{status}");

    // Wave one invites the first branch; wave two everyone else, never
    // those wave one invited.
    let one = run_json(dir, &url, &["send", "talk", "--key", "one", "--json"]);
    assert_eq!(one["counts"]["deliveries"]["sent"], FIRST_WAVE, "{one:#}");
    let two = run_json(dir, &url, &["send", "talk", "--key", "two", "--json"]);
    assert_eq!(
        two["counts"]["deliveries"]["sent"],
        CLIENTS - FIRST_WAVE,
        "{two:#}"
    );
    assert_eq!(
        two["counts"]["suppressions"]["already_sent"], FIRST_WAVE,
        "{two:#}"
    );
    let (one, two) = (run_id(&one), run_id(&two));
    let yes_one = links(dir, &url, one, "rsvp_yes");
    let yes_two = links(dir, &url, two, "rsvp_yes");
    assert!(yes_one.keys().all(|c| !yes_two.contains_key(c)));
    assert!(!herald(dir, &url)
        .args(["send", "talk", "--key", "three"])
        .output()
        .unwrap()
        .status
        .success());

    let _serve = spawn_serve(dir, &url, 0, &["--admin-listen", "127.0.0.1:0"]);
    wait_for("the tracking server", Duration::from_secs(30), || {
        http(port, "GET", "/r/x", &[], "").is_some()
    });

    // 200 acceptances at once: 150 by link (every wave-one client and 50
    // of wave two), 50 by SMS reply from wave two's numbers.
    let by_link: Vec<(String, String)> = yes_one
        .iter()
        .chain(yes_two.iter().take(50))
        .map(|(c, p)| (c.clone(), p.clone()))
        .collect();
    let by_sms: Vec<String> = yes_two.keys().skip(50).take(50).cloned().collect();
    let mut jobs: Vec<(String, Option<String>)> = by_link
        .into_iter()
        .map(|(c, p)| (c, Some(p)))
        .chain(by_sms.iter().map(|c| (c.clone(), None)))
        .collect();
    jobs.sort_by_key(|(c, _)| c.chars().rev().collect::<String>());
    let page_told: HashMap<String, (String, Option<i64>)> = std::thread::scope(|s| {
        let workers: Vec<_> = jobs
            .chunks(jobs.len() / 16)
            .map(|chunk| {
                s.spawn(move || {
                    let mut told_here = Vec::new();
                    for (client, link) in chunk {
                        match link {
                            Some(path) => {
                                let page = http(port, "GET", path, &[], "").unwrap();
                                assert_eq!(page.status, 200, "{}", page.body);
                                assert!(page.body.contains("确认报名"), "{}", page.body);
                                let a = http(port, "POST", path, &[], "").unwrap();
                                assert_eq!(a.status, 200, "{}", a.body);
                                told_here.push((client.clone(), told(&a.body)));
                            }
                            None => {
                                let n: usize = client[1..].parse().unwrap();
                                let form = format!(
                                    "From=%2B861380000{n:04}&To=%2B15005550006&Body=1&MessageSid=SM{n}"
                                );
                                let a = http(
                                    port,
                                    "POST",
                                    "/sms/twilio/inbound",
                                    &[("Content-Type", "application/x-www-form-urlencoded")],
                                    &form,
                                )
                                .unwrap();
                                assert_eq!(a.status, 200, "{}", a.body);
                            }
                        }
                    }
                    told_here
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(page_told.len(), 150);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt
        .block_on(herald::store::open(&DatabaseUrl::new(url.clone())))
        .unwrap();
    let standings = |clients: &[String]| -> BTreeMap<String, Standing> {
        rt.block_on(async {
            let mut out = BTreeMap::new();
            for c in clients {
                if let Some(s) = store.standing("talk", c).await.unwrap() {
                    out.insert(c.clone(), s);
                }
            }
            out
        })
    };
    let everyone: Vec<String> = jobs.iter().map(|(c, _)| c.clone()).collect();
    let before = standings(&everyone);
    let a = rt.block_on(store.attendance("talk")).unwrap();
    assert_eq!((a.seated, a.waitlisted), (50, 150));
    let mut places: Vec<i64> = before
        .values()
        .filter_map(|s| match s {
            Standing::Waitlisted { place } => Some(*place),
            _ => None,
        })
        .collect();
    places.sort();
    assert_eq!(places, (1..=150).collect::<Vec<_>>(), "a gapless wait list");
    for (client, (status, place)) in &page_told {
        let expected = match before[client] {
            Standing::Seated { .. } => ("seated".to_owned(), None),
            Standing::Waitlisted { place } => ("waitlisted".to_owned(), Some(place)),
            Standing::Declined => panic!("{client} declined"),
        };
        assert_eq!(&(status.clone(), *place), &expected, "{client} was told");
    }

    // Ten seated clients decline at once: the first ten waiting move in.
    let no_one = links(dir, &url, one, "rsvp_no");
    let no_two = links(dir, &url, two, "rsvp_no");
    let decliners: Vec<String> = before
        .iter()
        .filter(|(_, s)| matches!(s, Standing::Seated { .. }))
        .map(|(c, _)| c.clone())
        .filter(|c| no_one.contains_key(c) || no_two.contains_key(c))
        .take(10)
        .collect();
    assert_eq!(decliners.len(), 10);
    std::thread::scope(|s| {
        for c in &decliners {
            let path = no_one.get(c).or(no_two.get(c)).unwrap().clone();
            s.spawn(move || {
                let a = http(port, "POST", &path, &[], "").unwrap();
                assert_eq!(told(&a.body).0, "declined", "{}", a.body);
            });
        }
    });
    let next_ten: Vec<&String> = before
        .iter()
        .filter(|(_, s)| matches!(s, Standing::Waitlisted { place } if *place <= 10))
        .map(|(c, _)| c)
        .collect();
    let after = standings(&everyone);
    for c in &next_ten {
        assert!(matches!(after[*c], Standing::Seated { .. }), "{c} moved in");
    }
    let a = rt.block_on(store.attendance("talk")).unwrap();
    assert_eq!((a.seated, a.waitlisted), (50, 140));

    // Rules read the answers: who holds a seat, who waits.
    std::fs::write(
        dir.join("rules/accepted.rhai"),
        "client.rsvp(ctx.seminar) == \"yes\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("rules/waiting.rhai"),
        "client.rsvp(ctx.seminar) == \"waitlisted\"\n",
    )
    .unwrap();
    for (rule, n) in [("accepted", 50), ("waiting", 140)] {
        let seg = run_json(
            dir,
            &url,
            &["segment", rule, "--context", "seminar=talk", "--json"],
        );
        assert_eq!(seg["matched"], n, "{rule}: {seg}");
    }

    // Each is told once: 50 seats confirmed, 150 places, 10 promotions.
    let notices = |key: &str| -> serde_json::Value {
        let run = rt
            .block_on(store.run_by_key("talk", key))
            .unwrap()
            .unwrap_or_else(|| panic!("no run {key}"));
        rt.block_on(store.run_counts(run.id))
            .map(|c| serde_json::to_value(c).unwrap())
            .unwrap()
    };
    wait_for("the notices to go out", Duration::from_secs(60), || {
        ["notice:confirmed", "notice:waitlisted", "notice:promoted"]
            .iter()
            .zip([50, 150, 10])
            .all(|(k, n)| notices(k)["deliveries"]["sent"] == n)
    });
    // Those who answered by SMS were told by SMS, with their place.
    let sms: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("outbox/sms.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for c in &by_sms {
        let n: usize = c[1..].parse().unwrap();
        let to = format!("+861380000{n:04}");
        let expected = match before[c] {
            Standing::Seated { .. } => "席位已为您保留".to_owned(),
            Standing::Waitlisted { place } => format!("候补名单第{place}位"),
            Standing::Declined => unreachable!(),
        };
        assert!(
            sms.iter()
                .any(|m| m["to"] == to.as_str() && m["text"].as_str().unwrap().contains(&expected)),
            "{c} was told by SMS: {expected}"
        );
    }
    let promoted = rt
        .block_on(store.run_by_key("talk", "notice:promoted"))
        .unwrap()
        .unwrap();
    let sent = rt
        .block_on(store.deliveries_in(promoted.id, herald::store::runs::DeliveryState::Sent, 100))
        .unwrap();
    let mut told_promoted: Vec<&String> = sent.iter().map(|d| &d.client_id).collect();
    told_promoted.sort();
    assert_eq!(told_promoted, next_ten, "the promoted, each told once");

    // A full room stops a later wave, and says why.
    let mut seminar = std::fs::read_to_string(dir.join("seminars/talk.toml")).unwrap();
    seminar.push_str(
        "\n[[waves]]\nname = \"late\"\naudience = \"everyone\"\nchannels = [\"email\"]\nsend_at = \"2020-01-01 10:00\"\n",
    );
    std::fs::write(dir.join("seminars/talk.toml"), seminar).unwrap();
    let late = run_json(dir, &url, &["send", "talk", "--key", "late", "--json"]);
    assert_eq!(late["run"]["state"], "stopped", "{late:#}");
    assert!(
        late["run"]["stop_reason"]
            .as_str()
            .is_some_and(|r| r.contains("full")),
        "{late:#}"
    );

    // Check-in at the door: by id, by code, and from a door list with a
    // row that names nobody.
    let seated: Vec<String> = standings(&everyone)
        .into_iter()
        .filter(|(_, s)| matches!(s, Standing::Seated { .. }))
        .map(|(c, _)| c)
        .collect();
    let secret = herald::tracking::token::Secret::new(b"0123456789abcdef0123456789abcdef").unwrap();
    let code = herald::seminar::checkin::code(&secret, "talk", &seated[1]);
    let by_id = run_json(
        dir,
        &url,
        &[
            "seminar", "checkin", "talk", "--client", &seated[0], "--json",
        ],
    );
    assert_eq!(by_id["checked_in"], serde_json::json!([seated[0]]));
    let by_code = run_json(
        dir,
        &url,
        &[
            "seminar",
            "checkin",
            "talk",
            "--code",
            &code.to_lowercase(),
            "--json",
        ],
    );
    assert_eq!(by_code["checked_in"], serde_json::json!([seated[1]]));
    let wrong = herald(dir, &url)
        .args(["seminar", "checkin", "talk", "--code", "ZZZZZZ"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("ZZZZZZ"));
    std::fs::write(
        dir.join("door.csv"),
        format!("id,name\n{},甲\n{},乙\nnobody,丙\n", seated[0], seated[2]),
    )
    .unwrap();
    let door = herald(dir, &url)
        .args(["seminar", "checkin", "talk", "--csv", "door.csv", "--json"])
        .output()
        .unwrap();
    assert!(!door.status.success(), "a row named nobody");
    let door: serde_json::Value = serde_json::from_slice(&door.stdout).unwrap();
    assert_eq!(door["checked_in"], serde_json::json!([seated[2]]));
    assert_eq!(door["already_checked_in"], serde_json::json!([seated[0]]));
    assert!(door["problems"][0]
        .as_str()
        .is_some_and(|p| p.contains("door.csv:4") && p.contains("nobody")));

    let report = run_json(
        dir,
        &url,
        &["seminar", "report", "talk", "--json", "--html", "talk.html"],
    );
    let t = &report["totals"];
    assert_eq!(
        (
            &t["invited"],
            &t["accepted"],
            &t["waitlisted"],
            &t["declined"]
        ),
        (
            &serde_json::json!(CLIENTS),
            &serde_json::json!(50),
            &serde_json::json!(140),
            &serde_json::json!(10)
        ),
        "{report:#}"
    );
    assert_eq!(
        (&t["promoted"], &t["attended"]),
        (&serde_json::json!(10), &serde_json::json!(3))
    );
    assert_eq!(report["by_wave"]["one"]["funnel"]["invited"], FIRST_WAVE);
    assert_eq!(
        report["by_wave"]["two"]["funnel"]["invited"],
        CLIENTS - FIRST_WAVE
    );
    assert_eq!(report["by_wave"]["late"]["state"], "stopped");
    assert_eq!(t["no_shows"], serde_json::Value::Null, "not yet held");
    // By branch: wave one's branch was invited whole, and the branches add up.
    let branches = report["by_branch"].as_object().unwrap();
    assert_eq!(branches["甲营业部"]["invited"], FIRST_WAVE);
    let sum = |k: &str| {
        branches
            .values()
            .map(|b| b[k].as_u64().unwrap())
            .sum::<u64>()
    };
    for k in [
        "invited",
        "accepted",
        "waitlisted",
        "declined",
        "promoted",
        "attended",
    ] {
        assert_eq!(serde_json::json!(sum(k)), t[k], "{k} by branch");
    }
    let page = std::fs::read_to_string(dir.join("talk.html")).unwrap();
    assert!(page.contains("按营业部") && page.contains("甲营业部"));

    // A bigger room seats the first two waiting and tells them; a room
    // smaller than the seats confirmed is refused.
    let grow = |from: &str, to: &str| {
        let file = std::fs::read_to_string(dir.join("seminars/talk.toml")).unwrap();
        std::fs::write(dir.join("seminars/talk.toml"), file.replace(from, to)).unwrap();
    };
    grow("capacity = 50", "capacity = 52");
    let synced = run_json(dir, &url, &["seminar", "sync", "talk", "--json"]);
    assert_eq!(synced[0]["queued"]["notice:promoted"], 2, "{synced}");
    let a = rt.block_on(store.attendance("talk")).unwrap();
    assert_eq!((a.seated, a.waitlisted), (52, 138));
    grow("capacity = 52", "capacity = 40");
    let refused = herald(dir, &url)
        .args(["seminar", "sync", "talk"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("fewer than the 52 seats"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    grow("capacity = 40", "capacity = 52");

    // The calendar entry: a seat's confirmation carries it; a change of
    // time sends the same UID with a higher SEQUENCE, a cancellation the
    // same UID marked cancelled.
    let answers = rt.block_on(store.answers("talk")).unwrap();
    let by_email = answers
        .iter()
        .find(|a| a.position.is_some_and(|p| p <= CAPACITY) && a.via.as_deref() == Some("email"))
        .expect("a seat taken by an email answer")
        .client_id
        .clone();
    // The email of the notice run `key` to that client, as the outbox kept it.
    let email_of = |key: &str| -> Vec<u8> {
        let run = rt.block_on(store.run_by_key("talk", key)).unwrap().unwrap();
        let sent = rt
            .block_on(store.deliveries_in(run.id, herald::store::runs::DeliveryState::Sent, 1000))
            .unwrap();
        let d = sent.iter().find(|d| d.client_id == by_email).expect("told");
        let file = std::fs::read_dir(dir.join("outbox"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{}-", d.id))
            })
            .expect("the message file");
        std::fs::read(file).unwrap()
    };
    let entry = |key: &str| calendar_in(&email_of(key));
    let confirmed = entry("notice:confirmed");

    // The reminder goes to the 50 seats, with the code the door reads and
    // its QR image.
    let reminded = run_json(dir, &url, &["seminar", "remind", "talk", "--json"]);
    assert_eq!(reminded[0]["queued"], 52, "{reminded}");
    wait_for("the reminders", Duration::from_secs(60), || {
        notices("notice:reminder:1d_1000")["deliveries"]["sent"] == 52
    });
    let raw = email_of("notice:reminder:1d_1000");
    let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let code = herald::seminar::checkin::code(&secret, "talk", &by_email);
    assert!(message.body_text(0).unwrap().contains(&code));
    assert!(
        message
            .attachments()
            .any(|a| a.attachment_name() == Some("checkin.png")
                && a.contents().starts_with(b"\x89PNG")),
        "the QR image"
    );
    assert_eq!(confirmed["SEQUENCE"].1, "0");
    assert_eq!(confirmed["STATUS"].1, "CONFIRMED");
    assert!(
        confirmed["DTSTART"].0.contains("TZID=Asia/Shanghai"),
        "{confirmed:?}"
    );

    let file = std::fs::read_to_string(dir.join("seminars/talk.toml")).unwrap();
    let starts = (Utc::now() + Days::days(11)).with_timezone(&chrono_tz::Asia::Shanghai);
    let moved = file
        .lines()
        .map(|l| {
            if l.starts_with("starts_at") {
                format!("starts_at = \"{}\"", starts.format("%Y-%m-%d %H:%M"))
            } else if l.starts_with("ends_at") {
                format!(
                    "ends_at = \"{}\"",
                    (starts + Days::hours(2)).format("%Y-%m-%d %H:%M")
                )
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("seminars/talk.toml"), &moved).unwrap();
    let synced = run_json(dir, &url, &["seminar", "sync", "talk", "--json"]);
    assert_eq!(synced[0]["changed"], true, "{synced}");
    assert_eq!(synced[0]["sequence"], 1);
    // Everyone holding the entry is told: 190 seats and places, and the
    // 300 invited who never answered.
    assert_eq!(synced[0]["queued"]["notice:changed:1"], 490, "{synced}");
    wait_for("the change notices", Duration::from_secs(60), || {
        notices("notice:changed:1")["deliveries"]["sent"] == 490
    });
    let changed = entry("notice:changed:1");
    assert_eq!(changed["UID"].1, confirmed["UID"].1);
    assert_eq!(changed["SEQUENCE"].1, "1");
    assert_eq!(
        changed["DTSTART"].1,
        starts.format("%Y%m%dT%H%M00").to_string(),
        "the new time, in the seminar's zone"
    );
    let again = run_json(dir, &url, &["seminar", "sync", "talk", "--json"]);
    assert_eq!(
        again[0]["changed"], false,
        "an unchanged file changes nothing"
    );

    std::fs::write(
        dir.join("seminars/talk.toml"),
        format!("cancelled = true\n{moved}"),
    )
    .unwrap();
    run_json(dir, &url, &["seminar", "sync", "talk", "--json"]);
    wait_for("the cancellations", Duration::from_secs(60), || {
        notices("notice:cancelled")["deliveries"]["sent"] == 490
    });
    let cancelled = entry("notice:cancelled");
    assert_eq!(cancelled["UID"].1, confirmed["UID"].1);
    assert_eq!(cancelled["STATUS"].1, "CANCELLED");
    assert_eq!(cancelled["SEQUENCE"].1, "2");
}

/// The calendar attachment of a message, read with an independent iCalendar
/// parser: each VEVENT property as (parameters, value).
fn calendar_in(raw: &[u8]) -> BTreeMap<String, (String, String)> {
    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("MIME");
    let ics = message
        .attachments()
        .find(|a| a.is_content_type("text", "calendar"))
        .expect("a text/calendar attachment");
    let mut parser = ical::IcalParser::new(std::io::BufReader::new(ics.contents()));
    let calendar = parser.next().expect("a VCALENDAR").expect("it parses");
    assert!(calendar
        .properties
        .iter()
        .any(|p| p.name == "METHOD" && p.value.as_deref() == Some("PUBLISH")));
    let event = calendar.events.first().expect("a VEVENT");
    event
        .properties
        .iter()
        .map(|p| {
            let params = p
                .params
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.join(",")))
                .collect::<Vec<_>>()
                .join(";");
            (
                p.name.clone(),
                (params, p.value.clone().unwrap_or_default()),
            )
        })
        .collect()
}
