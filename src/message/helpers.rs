//! The template helpers a Chinese securities firm's messages need: amounts,
//! changes, dates in the firm's zone, masking, holdings joined to quotes,
//! and signed links. A missing value (`null`) renders as nothing rather
//! than failing, so that a client without an optional field still gets a
//! whole message.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson,
};
use serde_json::{json, Value};

use super::data::keys;
use super::format;
use crate::tracking::links::Links;
use crate::tracking::token::Action;

/// What a helper returns, for the template checker: the shape of its
/// result where a template can look inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    Text,
    /// An array of `{code, name, price, change_pct}`.
    HoldingQuotes,
}

/// One helper's name, arity range and result.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    pub name: &'static str,
    pub min_args: usize,
    pub max_args: usize,
    pub returns: Returns,
}

const fn sig(name: &'static str, min_args: usize, max_args: usize) -> Signature {
    Signature {
        name,
        min_args,
        max_args,
        returns: Returns::Text,
    }
}

/// Every helper herald adds, with how many arguments it takes.
pub const HERALD_HELPERS: &[Signature] = &[
    sig("cny", 1, 1),
    sig("cny_short", 1, 1),
    sig("price", 1, 1),
    sig("percent", 1, 2),
    sig("trend", 1, 1),
    sig("trend_color", 1, 1),
    sig("date", 1, 1),
    sig("datetime", 1, 1),
    sig("time", 1, 1),
    sig("mask_phone", 1, 1),
    sig("mask_email", 1, 1),
    Signature {
        name: "holding_quotes",
        min_args: 2,
        max_args: 2,
        returns: Returns::HoldingQuotes,
    },
    sig("track_link", 1, 1),
    sig("unsubscribe_url", 0, 0),
    sig("rsvp_url", 1, 1),
    sig("view_online_url", 0, 0),
    sig("open_pixel_url", 0, 0),
];

/// Handlebars' own helpers, which templates may use as well.
pub const BUILTIN_HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "log", "eq", "ne", "gt", "gte", "lt", "lte", "and",
    "or", "not", "len",
];

/// The helpers that open a block whose body sees a new context.
pub fn is_context_block(name: &str) -> bool {
    matches!(name, "each" | "with")
}

/// Whether `name` calls a helper (Handlebars' own or herald's) rather than
/// naming data.
pub fn is_helper(name: &str) -> bool {
    BUILTIN_HELPERS.contains(&name) || signature(name).is_some()
}

pub fn signature(name: &str) -> Option<&'static Signature> {
    HERALD_HELPERS.iter().find(|s| s.name == name)
}

type ValueFn = dyn Fn(&[&Value]) -> Result<Value, String> + Send + Sync;

/// A helper computed from its arguments alone.
struct ValueHelper {
    name: &'static str,
    f: Arc<ValueFn>,
}

impl HelperDef for ValueHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let args: Vec<&Value> = h.params().iter().map(|p| p.value()).collect();
        (self.f)(&args)
            .map(ScopedJson::Derived)
            .map_err(|m| RenderErrorReason::Other(format!("{}: {m}", self.name)).into())
    }
}

/// A helper that signs a link for the message's delivery.
struct LinkHelper {
    name: &'static str,
    links: Option<Links>,
    kind: LinkKind,
}

#[derive(Clone, Copy)]
enum LinkKind {
    Click,
    Rsvp,
    Fixed(Action),
}

impl HelperDef for LinkHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let fail =
            |m: String| RenderError::from(RenderErrorReason::Other(format!("{}: {m}", self.name)));
        let links = self.links.as_ref().ok_or_else(|| {
            fail("tracking links need [tracking] base_url and secret in herald.toml".into())
        })?;
        let delivery = ctx.data()[keys::DELIVERY]["id"].as_i64().unwrap_or(0);
        let arg = h.param(0).map(|p| p.value());
        let url = match self.kind {
            LinkKind::Click => {
                let target = arg.and_then(Value::as_str).unwrap_or("");
                if !(target.starts_with("https://") || target.starts_with("http://")) {
                    return Err(fail(format!("'{target}' is not an http(s) URL")));
                }
                links.click(delivery, target)
            }
            LinkKind::Rsvp => match arg.and_then(Value::as_str) {
                Some("yes") => links.action(delivery, Action::RsvpYes),
                Some("no") => links.action(delivery, Action::RsvpNo),
                _ => return Err(fail("takes \"yes\" or \"no\"".into())),
            },
            LinkKind::Fixed(action) => links.action(delivery, action),
        };
        Ok(ScopedJson::Derived(Value::String(url)))
    }
}

/// Registers every herald helper on `hb`.
pub fn register(hb: &mut Handlebars<'_>, tz: Tz, links: Option<Links>) {
    let value = |hb: &mut Handlebars<'_>, name: &'static str, f: Arc<ValueFn>| {
        hb.register_helper(name, Box::new(ValueHelper { name, f }));
    };
    value(hb, "cny", number_fn(format::cny));
    value(hb, "cny_short", number_fn(format::cny_short));
    value(hb, "price", number_fn(format::price));
    value(hb, "trend", number_fn(|x| format::trend(x).to_owned()));
    value(
        hb,
        "trend_color",
        number_fn(|x| format::trend_color(x).to_owned()),
    );
    value(hb, "percent", Arc::new(percent));
    value(hb, "date", Arc::new(move |a: &[&Value]| date(a, tz)));
    value(
        hb,
        "datetime",
        Arc::new(move |a: &[&Value]| datetime(a, tz)),
    );
    value(hb, "time", Arc::new(move |a: &[&Value]| time(a, tz)));
    value(hb, "mask_phone", text_fn(format::mask_phone));
    value(hb, "mask_email", text_fn(format::mask_email));
    value(hb, "holding_quotes", Arc::new(holding_quotes));
    let link = |hb: &mut Handlebars<'_>, name: &'static str, kind: LinkKind| {
        let links = links.clone();
        hb.register_helper(name, Box::new(LinkHelper { name, links, kind }));
    };
    link(hb, "track_link", LinkKind::Click);
    link(hb, "rsvp_url", LinkKind::Rsvp);
    link(hb, "unsubscribe_url", LinkKind::Fixed(Action::Unsubscribe));
    link(hb, "view_online_url", LinkKind::Fixed(Action::ViewOnline));
    link(hb, "open_pixel_url", LinkKind::Fixed(Action::Open));
}

fn first<'a>(args: &[&'a Value]) -> &'a Value {
    args.first().copied().unwrap_or(&Value::Null)
}

/// A number (or a numeric string) in, text out; null stays empty.
fn number_fn(f: fn(f64) -> String) -> Arc<ValueFn> {
    Arc::new(move |args: &[&Value]| match first(args) {
        Value::Null => Ok(json!("")),
        v => as_number(v).map(|x| json!(f(x))),
    })
}

fn text_fn(f: fn(&str) -> String) -> Arc<ValueFn> {
    Arc::new(move |args: &[&Value]| match first(args) {
        Value::Null => Ok(json!("")),
        Value::String(s) => Ok(json!(f(s))),
        other => Err(format!("expects text, got {other}")),
    })
}

fn as_number(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("{n} is not a number")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a number")),
        other => Err(format!("expects a number, got {other}")),
    }
}

fn percent(args: &[&Value]) -> Result<Value, String> {
    let decimals = match args.get(1) {
        Some(v) => as_number(v)?.clamp(0.0, 6.0) as usize,
        None => 2,
    };
    match first(args) {
        Value::Null => Ok(json!("")),
        v => as_number(v).map(|x| json!(format::percent(x, decimals))),
    }
}

/// A plain date, or an instant shown as its date in the firm's zone.
fn date(args: &[&Value], tz: Tz) -> Result<Value, String> {
    match first(args) {
        Value::Null => Ok(json!("")),
        Value::String(s) => {
            if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                return Ok(json!(format::date_zh(d)));
            }
            let t = instant(s)?;
            Ok(json!(format::date_zh(t.with_timezone(&tz).date_naive())))
        }
        other => Err(format!("expects a date, got {other}")),
    }
}

fn datetime(args: &[&Value], tz: Tz) -> Result<Value, String> {
    match first(args) {
        Value::Null => Ok(json!("")),
        Value::String(s) => Ok(json!(format::datetime_zh(instant(s)?, tz))),
        other => Err(format!("expects a time, got {other}")),
    }
}

fn time(args: &[&Value], tz: Tz) -> Result<Value, String> {
    match first(args) {
        Value::Null => Ok(json!("")),
        Value::String(s) => Ok(json!(format::time_of_day(instant(s)?, tz))),
        other => Err(format!("expects a time, got {other}")),
    }
}

fn instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("'{s}' is not an RFC 3339 time"))
}

/// The client's holdings that the day's quotes cover, in holding order:
/// `[{code, name, price, change_pct}]`.
fn holding_quotes(args: &[&Value]) -> Result<Value, String> {
    let holdings = match first(args) {
        Value::Array(a) => a,
        Value::Null => return Ok(json!([])),
        other => return Err(format!("expects the client's holdings, got {other}")),
    };
    let quotes = match args.get(1) {
        Some(Value::Object(q)) => q,
        Some(Value::Null) | None => return Ok(json!([])),
        Some(other) => return Err(format!("expects quotes keyed by code, got {other}")),
    };
    let rows = holdings
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|code| {
            let q = quotes.get(code)?;
            Some(json!({
                "code": code,
                "name": q.get("name").cloned().unwrap_or(Value::Null),
                "price": q.get("price").cloned().unwrap_or(Value::Null),
                "change_pct": q.get("change_pct").cloned().unwrap_or(Value::Null),
            }))
        })
        .collect();
    Ok(Value::Array(rows))
}

/// The fields of one [`Returns::HoldingQuotes`] row.
pub const HOLDING_QUOTE_FIELDS: &[&str] = &["code", "name", "price", "change_pct"];

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, data: Value) -> Result<String, String> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        register(&mut hb, chrono_tz::Asia::Shanghai, None);
        hb.render_template(template, &data)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn amounts_and_changes_render() {
        let data = json!({"a": 1234567.891, "p": -1.5, "s": "12.5"});
        assert_eq!(
            render(
                "{{cny a}} {{cny_short a}} {{percent p}} {{trend p}} {{price s}}",
                data
            )
            .unwrap(),
            "¥1,234,567.89 ¥123.46万 -1.50% down 12.50"
        );
    }

    #[test]
    fn missing_values_render_as_nothing() {
        let data = json!({"a": null});
        assert_eq!(
            render("[{{cny a}}][{{date a}}][{{mask_phone a}}]", data).unwrap(),
            "[][][]"
        );
    }

    #[test]
    fn wrong_types_fail_with_the_helper_name() {
        let err = render("{{cny a}}", json!({"a": [1]})).unwrap_err();
        assert!(err.contains("cny"), "{err}");
    }

    #[test]
    fn dates_and_times_show_in_the_firm_zone() {
        let data = json!({"d": "2026-11-25", "t": "2026-11-24T16:30:00Z"});
        assert_eq!(
            render("{{date d}} {{date t}} {{datetime t}} {{time t}}", data).unwrap(),
            "2026年11月25日 2026年11月25日 2026年11月25日 00:30 00:30"
        );
    }

    #[test]
    fn holdings_join_the_days_quotes() {
        let data = json!({
            "h": ["600519", "000001", "300750"],
            "q": {"300750": {"name": "宁德时代", "price": 250.1, "change_pct": 2.0},
                  "600519": {"name": "贵州茅台", "price": 1680.5, "change_pct": -1.2}}
        });
        let out = render(
            "{{#each (holding_quotes h q)}}{{code}} {{name}} {{price price}} {{percent change_pct}};{{/each}}",
            data,
        )
        .unwrap();
        assert_eq!(
            out,
            "600519 贵州茅台 1,680.50 -1.20%;300750 宁德时代 250.10 +2.00%;"
        );
    }

    #[test]
    fn every_helper_the_checker_knows_is_registered() {
        // Unregistered, `{{name}}` would be a missing variable in strict mode.
        for sig in HERALD_HELPERS {
            match render(&format!("{{{{{}}}}}", sig.name), json!({})) {
                Ok(_) => {}
                Err(e) => assert!(e.contains(&format!("{}:", sig.name)), "{}: {e}", sig.name),
            }
        }
    }

    #[test]
    fn links_need_tracking_configured() {
        let err = render("{{unsubscribe_url}}", json!({})).unwrap_err();
        assert!(err.contains("[tracking]"), "{err}");
    }
}
