//! `herald clients show ID`: an operator's view of one client, unmasked.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde::Serialize;

use super::print_json;
use crate::client::consent::{ConsentChange, ConsentScope};
use crate::client::types::ClientId;
use crate::client::StoredClient;
use crate::config::Config;
use crate::event::StoredEvent;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Show a client's record, consents with their history, and recent events
    Show {
        /// The client's id (account number)
        id: String,
        /// How many recent events to list
        #[arg(long, default_value_t = 20)]
        events: u32,
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct ClientView {
    #[serde(flatten)]
    client: StoredClient,
    risk_assessment_valid: bool,
    consent_history: Vec<ConsentChange>,
    events: Vec<StoredEvent>,
}

pub async fn run(cmd: ClientsCommand, store: &dyn Store, config: &Config) -> Result<ExitCode> {
    let ClientsCommand::Show { id, events, json } = cmd;
    let id = ClientId::parse(&id).with_context(|| format!("client id '{id}'"))?;
    let client = store
        .client(&id)
        .await?
        .with_context(|| format!("no client with id '{id}'"))?;
    let today = config.firm_time().today();
    let view = ClientView {
        risk_assessment_valid: client
            .client
            .assessment_valid(today, config.risk_assessment_valid_days),
        consent_history: store.consent_history(&id).await?,
        events: store.client_events(&id, events).await?,
        client,
    };
    if json {
        print_json(&view)?;
    } else {
        print_view(&view, config);
    }
    Ok(ExitCode::SUCCESS)
}

fn or_dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

fn print_view(v: &ClientView, config: &Config) {
    let c = &v.client.client;
    let tz = config.timezone;
    say!("{} {}", c.id, c.name);
    say!(
        "  email          {}",
        or_dash(&c.email.as_ref().map(|e| e.as_str()))
    );
    say!(
        "  phone          {}",
        or_dash(&c.phone.as_ref().map(|p| p.as_str()))
    );
    say!("  branch         {}", or_dash(&c.branch));
    say!("  advisor        {}", or_dash(&c.advisor));
    say!("  investor type  {}", c.investor_type);
    let validity = match (c.risk_assessed_on, v.risk_assessment_valid) {
        (None, _) => "never assessed".to_owned(),
        (Some(on), true) => format!("assessed {on}, valid"),
        (Some(on), false) => format!("assessed {on}, EXPIRED"),
    };
    say!("  risk level     {} ({validity})", or_dash(&c.risk_level));
    if c.lowest_risk_category {
        say!("                 lowest risk category (R1 products only)");
    }
    say!(
        "  assets         {}",
        c.assets.map_or("-".to_owned(), |a| format!("¥{a}"))
    );
    say!(
        "  holdings       {}",
        crate::client::join_codes(&c.holdings)
    );
    say!(
        "  watchlist      {}",
        crate::client::join_codes(&c.watchlist)
    );
    say!("  tags           {}", c.tags.join(";"));
    say!("  birthday       {}", or_dash(&c.birthday));
    say!("  opened on      {}", or_dash(&c.opened_on));
    say!("  last trade on  {}", or_dash(&c.last_trade_on));
    for (k, val) in &c.attributes {
        say!(
            "  {k:<14} {}",
            val.as_str().map_or_else(|| val.to_string(), str::to_owned)
        );
    }
    say!("consents");
    for scope in ConsentScope::ALL {
        let s = v.client.consent(scope);
        say!(
            "  {:<23}{:<9} {} at {}",
            scope.as_str(),
            if s.granted { "granted" } else { "refused" },
            s.source,
            s.at.with_timezone(&tz).format("%Y-%m-%d %H:%M")
        );
    }
    say!("consent history");
    for h in &v.consent_history {
        say!(
            "  {}  {:<23}{:<9} {}{}",
            h.at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            h.scope.as_str(),
            if h.granted { "granted" } else { "refused" },
            h.source,
            h.actor
                .as_ref()
                .map_or(String::new(), |a| format!(" by {a}"))
        );
    }
    say!("recent events (newest first)");
    for e in &v.events {
        let ev = &e.event;
        say!(
            "  {}  {:<12} {:<6} {}",
            ev.at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            ev.kind,
            ev.channel.map_or("", |c| c.as_str()),
            ev.campaign.as_deref().unwrap_or("")
        );
    }
}
