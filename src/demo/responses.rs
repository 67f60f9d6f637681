//! The demo's last step: clients respond. The tracking server runs in the
//! demo's process on a loopback port; a few of the bulletin's links are
//! followed over HTTP (two opens, a click, a one-click unsubscribe), an SMS
//! reply `TD` is pushed as the Alibaba Cloud gateway would, and the
//! campaign's report is written as HTML.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;

use crate::config::Config;
use crate::store::runs::DeliveryState;
use crate::store::Store;
use crate::tracking::links::Links;
use crate::tracking::server::{router, TrackingState};
use crate::tracking::token::Action;

/// What the demo's responses produced, for its summary.
pub struct Responses {
    pub report: std::path::PathBuf,
    pub opened: u64,
    pub clicked: u64,
    pub unsubscribed: u64,
}

/// The tracking server on a loopback port, in the demo's process.
pub(super) struct Server {
    pub links: Links,
    pub http: reqwest::Client,
    base: String,
    local: String,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub(super) async fn start(store: Arc<dyn Store>, config: &Config) -> Result<Server> {
        let mut config = config.clone();
        let tracking = config
            .tracking
            .as_mut()
            .context("the demo configuration has [tracking]")?;
        // The demo follows links seconds after sending; a real scanner
        // window would flag them all.
        tracking.scanner_window_secs = 0;
        let links = Links::new(&tracking.base_url, tracking.secret.clone());
        let base = tracking.base_url.as_str().trim_end_matches('/').to_owned();
        let state = Arc::new(TrackingState::new(store, &config)?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let local = format!("http://{}", listener.local_addr()?);
        let handle = tokio::spawn(std::future::IntoFuture::into_future(axum::serve(
            listener,
            router(state),
        )));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Mozilla/5.0 (iPhone; herald demo)")
            .build()?;
        Ok(Server {
            links,
            http,
            base,
            local,
            handle,
        })
    }

    /// The local server's URL for a public link, or for a path.
    pub(super) fn url(&self, public: &str) -> String {
        format!(
            "{}{}",
            self.local,
            public.strip_prefix(&self.base).unwrap_or(public)
        )
    }

    pub(super) fn stop(self) {
        self.handle.abort();
    }
}

pub async fn respond(store: Arc<dyn Store>, config: &Config, dir: &Path) -> Result<Responses> {
    let server = Server::start(store.clone(), config).await?;
    let (links, http) = (&server.links, &server.http);
    let local_url = |public: &str| server.url(public);
    let today = config.firm_time().today().to_string();
    let run = store
        .run_by_key("daily_bulletin", &today)
        .await?
        .context("the bulletin's run")?;
    let sent = store.deliveries_in(run.id, DeliveryState::Sent, 3).await?;
    anyhow::ensure!(
        sent.len() == 3,
        "the bulletin sent fewer than three messages"
    );
    for d in &sent[..2] {
        let status = http
            .get(local_url(&links.action(d.id, Action::Open)))
            .send()
            .await?
            .status();
        println!(
            "  GET  /o/…  打开 / open pixel, delivery {} → {status}",
            d.id
        );
    }
    let website = if config.firm.website.is_empty() {
        "https://www.example.com".to_owned()
    } else {
        config.firm.website.clone()
    };
    let answer = http
        .get(local_url(&links.click(sent[0].id, &website)))
        .send()
        .await?;
    println!(
        "  GET  /c/…  点击 / click, delivery {} → {} {}",
        sent[0].id,
        answer.status(),
        answer
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("")
    );
    let status = http
        .post(local_url(&links.action(sent[2].id, Action::Unsubscribe)))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await?
        .status();
    println!(
        "  POST /u/…  一键退订 / RFC 8058 one-click unsubscribe, delivery {} → {status}",
        sent[2].id
    );

    if let Some(phone) = sms_client_phone(&*store, run.id).await? {
        let push = json!([{ "phone_number": phone, "content": "TD", "sequence_id": 1, "send_time": today }]);
        let answer: serde_json::Value = http
            .post(server.url("/sms/aliyun/up"))
            .json(&push)
            .send()
            .await?
            .json()
            .await?;
        println!("  POST /sms/aliyun/up  短信回复“TD” / an SMS reply TD → {answer}");
    }
    server.stop();

    let report = crate::report::report(&*store, "daily_bulletin").await?;
    let path = dir.join("daily_bulletin-report.html");
    std::fs::write(&path, crate::report::html::render(&report))
        .with_context(|| format!("cannot write {}", path.display()))?;
    let f = &report.funnel;
    println!(
        "  $ herald report daily_bulletin --html {}\n  sent {} · opened {} · clicked {} · unsubscribed {}",
        path.display(),
        f.sent,
        f.response("opened"),
        f.response("clicked"),
        f.response("unsubscribed")
    );
    Ok(Responses {
        report: path,
        opened: f.response("opened"),
        clicked: f.response("clicked"),
        unsubscribed: f.response("unsubscribed"),
    })
}

/// A mobile number of a client planned for SMS in the run.
async fn sms_client_phone(store: &dyn Store, run: i64) -> Result<Option<String>> {
    for state in [DeliveryState::Sent, DeliveryState::Queued] {
        for d in store.deliveries_in(run, state, 500).await? {
            if d.channel != "sms" {
                continue;
            }
            let id = crate::client::types::ClientId::parse(&d.client_id).ok();
            if let Some(c) = match id {
                Some(id) => store.client(&id).await?,
                None => None,
            } {
                if let Some(phone) = &c.client.phone {
                    return Ok(Some(phone.as_str().to_owned()));
                }
            }
        }
    }
    Ok(None)
}
