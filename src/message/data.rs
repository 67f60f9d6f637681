//! What a template sees: one JSON document per message, built from the
//! client, the campaign, its content and the firm. The parts shared by a
//! whole run are built once; each message only swaps in its client and
//! delivery.

use serde_json::{json, Map, Value};

use crate::client::types::StockCode;
use crate::client::Client;
use crate::config::Firm;

/// The campaign as templates see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CampaignData {
    pub name: String,
    pub title: String,
    pub kind: String,
    pub purpose: String,
}

/// The names at the top of every template's data.
pub mod keys {
    pub const CLIENT: &str = "client";
    pub const CAMPAIGN: &str = "campaign";
    pub const CONTENT: &str = "content";
    /// A seminar invitation's content is its seminar.
    pub const SEMINAR: &str = "seminar";
    pub const CTX: &str = "ctx";
    pub const FIRM: &str = "firm";
    pub const TODAY: &str = "today";
    /// Read by the link helpers only.
    pub const DELIVERY: &str = "delivery";
    /// A seminar notice's answer: status, position, place on the wait list.
    pub const RSVP: &str = "rsvp";
}

/// The run-wide part of the data: everything but the client and delivery.
pub fn run_data(
    campaign: &CampaignData,
    content_key: &str,
    content: &Value,
    ctx: &Map<String, Value>,
    firm: &Firm,
    today: chrono::NaiveDate,
) -> Value {
    let mut root = Map::new();
    root.insert(keys::CAMPAIGN.into(), json!(campaign));
    root.insert(content_key.into(), content.clone());
    root.insert(keys::CTX.into(), Value::Object(ctx.clone()));
    root.insert(keys::FIRM.into(), json!(firm));
    root.insert(keys::TODAY.into(), json!(today.to_string()));
    root.insert(keys::CLIENT.into(), Value::Null);
    root.insert(keys::DELIVERY.into(), json!({ "id": 0 }));
    root.insert(keys::RSVP.into(), Value::Null);
    Value::Object(root)
}

/// Puts one message's client and delivery into run data.
pub fn set_recipient(root: &mut Value, client: &Client, delivery: i64) {
    if let Value::Object(m) = root {
        m.insert(keys::CLIENT.into(), client_json(client));
        m.insert(keys::DELIVERY.into(), json!({ "id": delivery }));
    }
}

/// Puts a seminar notice's answer in (or takes the last one out).
pub fn set_rsvp(root: &mut Value, rsvp: Option<&Value>) {
    if let Value::Object(m) = root {
        m.insert(keys::RSVP.into(), rsvp.cloned().unwrap_or(Value::Null));
    }
}

/// A client's fields; every optional field is present, as `null` when
/// missing, so that a template's `{{#if client.email}}` and strict
/// rendering both work.
pub fn client_json(c: &Client) -> Value {
    let date = |d: Option<chrono::NaiveDate>| d.map_or(Value::Null, |d| json!(d.to_string()));
    let codes = |v: &[StockCode]| Value::Array(v.iter().map(|s| json!(s.as_str())).collect());
    json!({
        "id": c.id.as_str(),
        "name": c.name,
        "email": c.email.as_ref().map(|e| e.as_str()),
        "phone": c.phone.as_ref().map(|m| m.as_str()),
        "branch": c.branch,
        "advisor": c.advisor,
        "investor_type": c.investor_type.as_str(),
        "risk_level": c.risk_level.map(|l| l.to_string()),
        "risk_assessed_on": date(c.risk_assessed_on),
        "lowest_risk_category": c.lowest_risk_category,
        "assets": c.assets.map(|a| a.yuan()),
        "tags": c.tags,
        "holdings": codes(&c.holdings),
        "watchlist": codes(&c.watchlist),
        "birthday": date(c.birthday),
        "opened_on": date(c.opened_on),
        "last_trade_on": date(c.last_trade_on),
        "attrs": Value::Object(c.attributes.clone()),
    })
}

/// A client with nothing but an id and a name: validation renders every
/// template for one, so that a missing optional field never breaks a send.
pub fn bare_client(id: &str) -> Client {
    let id = crate::client::types::ClientId::parse(id).expect("a valid id");
    Client::bare(id, "客户".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_client_has_every_field_as_null_or_empty() {
        let v = client_json(&bare_client("000123"));
        assert_eq!(v["id"], "000123");
        assert!(v["email"].is_null());
        assert!(v["assets"].is_null());
        assert_eq!(v["holdings"], json!([]));
        assert!(v["attrs"].is_object());
    }

    #[test]
    fn a_recipient_replaces_the_previous_one() {
        let campaign = CampaignData {
            name: "b".into(),
            title: "t".into(),
            kind: "market_bulletin".into(),
            purpose: "marketing".into(),
        };
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let mut root = run_data(
            &campaign,
            keys::CONTENT,
            &json!({"a": 1}),
            &Map::new(),
            &Firm::default(),
            today,
        );
        set_recipient(&mut root, &bare_client("1"), 5);
        set_recipient(&mut root, &bare_client("2"), 6);
        assert_eq!(root["client"]["id"], "2");
        assert_eq!(root["delivery"]["id"], 6);
        assert_eq!(root["content"]["a"], 1);
        assert_eq!(root["today"], "2026-11-25");
    }
}
