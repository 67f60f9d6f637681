//! Webhooks out: `herald serve` posts every new event to a receiver run by
//! the test, signed; the receiver refuses the first attempts (a CRM that is
//! down) and still gets every event, in order, once it answers.

mod common;

use std::path::Path;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use common::cli::{exits_cleanly, free_port, http_get, run_json, signal, spawn_serve, wait_for};
use hmac::Mac as _;

const SECRET: &str = "crm-shared-secret-0123456789";
/// Requests the receiver refuses before it starts accepting.
const DOWN_FOR: usize = 3;

#[derive(Default)]
struct Receiver {
    attempts: usize,
    /// Event ids of accepted requests, in arrival order.
    ids: Vec<i64>,
    bad_signatures: usize,
}

fn start_receiver(rt: &tokio::runtime::Runtime, state: Arc<Mutex<Receiver>>) -> u16 {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let mut r = state.lock().unwrap();
                r.attempts += 1;
                let mut mac =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                mac.update(&body);
                let want: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let given = headers
                    .get("x-herald-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if given != format!("sha256={want}") {
                    r.bad_signatures += 1;
                    return StatusCode::UNAUTHORIZED;
                }
                if r.attempts <= DOWN_FOR {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                for e in v["events"].as_array().unwrap() {
                    r.ids.push(e["id"].as_i64().unwrap());
                }
                StatusCode::OK
            }
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn working_folder(dir: &Path, hook_port: u16) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    common::copy_dir(&repo.join("templates"), &dir.join("templates"));
    common::copy_dir(&repo.join("rules"), &dir.join("rules"));
    std::fs::create_dir_all(dir.join("campaigns")).unwrap();
    std::fs::write(
        dir.join("herald.toml"),
        format!(
            "[[webhooks]]\nname = \"crm\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\nsecret = \"{SECRET}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("c.csv"),
        "id,name,email,consent_email\nw1,甲,w1@example.com,true\nw2,乙,w2@example.com,true\n",
    )
    .unwrap();
}

#[test]
fn a_receiver_that_was_down_gets_every_event_in_order() {
    const EVENTS: usize = 40;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let receiver = Arc::new(Mutex::new(Receiver::default()));
    let hook_port = start_receiver(&rt, receiver.clone());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = format!("sqlite://{}", dir.join("herald.db").display());
    working_folder(dir, hook_port);
    run_json(dir, &url, &["import", "clients", "c.csv", "--json"]);
    // History from before the webhook existed is not replayed.
    std::fs::write(
        dir.join("old.jsonl"),
        "{\"client\":\"w1\",\"time\":\"2026-10-01T09:00:00+08:00\",\"type\":\"opened\",\"channel\":\"email\"}\n",
    )
    .unwrap();
    run_json(dir, &url, &["import", "events", "old.jsonl", "--json"]);

    let admin = free_port();
    let admin_addr = format!("127.0.0.1:{admin}");
    let mut serve = spawn_serve(
        dir,
        &url,
        0,
        &["--role", "dispatcher", "--admin-listen", &admin_addr],
    );
    wait_for("/healthz", Duration::from_secs(30), || {
        http_get(admin, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    // Let the webhook take its starting point before the new events.
    std::thread::sleep(Duration::from_secs(2));
    let mut jsonl = String::new();
    for i in 0..EVENTS {
        let client = if i % 2 == 0 { "w1" } else { "w2" };
        jsonl.push_str(&format!(
            "{{\"client\":\"{client}\",\"time\":\"2026-11-25T10:{:02}:{:02}+08:00\",\"type\":\"clicked\",\"channel\":\"email\",\"details\":{{\"n\":{i}}}}}\n",
            i / 60,
            i % 60
        ));
    }
    std::fs::write(dir.join("new.jsonl"), jsonl).unwrap();
    run_json(dir, &url, &["import", "events", "new.jsonl", "--json"]);

    wait_for(
        "every event at the receiver",
        Duration::from_secs(60),
        || {
            let mut ids = receiver.lock().unwrap().ids.clone();
            ids.sort();
            ids.dedup();
            ids.len() >= EVENTS
        },
    );
    signal(&serve, "-TERM");
    exits_cleanly(&mut serve, dir, 0);

    let r = receiver.lock().unwrap();
    assert_eq!(r.bad_signatures, 0, "every request is signed");
    assert!(r.attempts > DOWN_FOR, "the refused attempts were retried");
    let mut sorted = r.ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        EVENTS,
        "exactly the new events, none of the old: {:?}",
        r.ids
    );
    assert!(
        r.ids.windows(2).all(|w| w[0] < w[1]),
        "in order, each once after the receiver came back: {:?}",
        r.ids
    );
}
