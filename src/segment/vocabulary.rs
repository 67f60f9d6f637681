//! What a rule can say: `client` with its fields and helpers, dates, risk
//! levels, and the rule that a missing value compares false. Documented for
//! staff in `rules/README.md`; keep the two in step.

use chrono::{Datelike, NaiveDate};
use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map, INT};

use super::profile::ClientView;
use crate::channel::Channel;
use crate::client::consent::ConsentScope;
use crate::client::types::{RiskLevel, StockCode};
use crate::event::EventKind;

/// A plain date in a rule (`today`, `client.birthday`, `date("2026-01-01")`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(pub NaiveDate);

/// A client's risk level in a rule: compares with `"C3"` or another level.
/// 0 means never assessed, which is below C1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Level(pub u8);

/// The properties of `client` a rule may read.
pub const CLIENT_PROPERTIES: &[&str] = &[
    "id",
    "name",
    "email",
    "phone",
    "branch",
    "advisor",
    "investor_type",
    "risk_level",
    "risk_assessed_on",
    "lowest_risk_category",
    "assets",
    "tags",
    "holdings",
    "watchlist",
    "birthday",
    "opened_on",
    "last_trade_on",
    "consent_email",
    "consent_sms",
    "personalised_marketing",
    "attrs",
];

/// The methods of `client` a rule may call.
pub const CLIENT_METHODS: &[&str] = &[
    "holds",
    "watches",
    "has_tag",
    "is_professional",
    "is_assessed",
    "assessment_valid",
    "has_email",
    "has_phone",
    "age",
    "birthday_within",
    "unsubscribed",
    "did",
    "opened_within",
    "clicked_within",
    "replied_within",
    "bounced_within",
    "attended_within",
    "rsvp",
];

/// Seminar answers as rules read them: seminar → client → `"yes"` (a
/// seat), `"waitlisted"` or `"no"`.
pub type Rsvps = std::collections::HashMap<String, std::collections::HashMap<String, &'static str>>;

/// Registers `client.rsvp(seminar)` over `answers`; a client who has not
/// answered gets `()`, which compares false.
pub fn register_rsvps(engine: &mut Engine, answers: std::sync::Arc<Rsvps>) {
    engine.register_fn("rsvp", move |c: &mut ClientView, seminar: &str| {
        answers
            .get(seminar)
            .and_then(|m| m.get(c.id()))
            .map_or(Dynamic::UNIT, |a| Dynamic::from(ImmutableString::from(*a)))
    });
}

/// What a run fixes for every client: the date and the assessment validity.
#[derive(Debug, Clone, Copy)]
pub struct Today {
    pub date: NaiveDate,
    pub assessment_valid_days: u32,
}

type Fallible<T> = Result<T, Box<EvalAltResult>>;

fn fail<T>(msg: String) -> Fallible<T> {
    Err(msg.into())
}

/// Registers the whole vocabulary on `engine`.
pub fn register(engine: &mut Engine, today: Today) {
    register_dates(engine, today);
    register_levels(engine);
    register_missing(engine);
    register_client_fields(engine);
    register_client_helpers(engine, today);
}

fn opt_date(d: Option<NaiveDate>) -> Dynamic {
    d.map_or(Dynamic::UNIT, |d| Dynamic::from(Date(d)))
}

fn opt_text(s: &Option<String>) -> Dynamic {
    s.as_deref()
        .map_or(Dynamic::UNIT, |s| Dynamic::from(ImmutableString::from(s)))
}

fn register_dates(engine: &mut Engine, today: Today) {
    engine
        .register_type_with_name::<Date>("Date")
        .register_fn("date", |s: &str| -> Fallible<Date> {
            crate::time::parse_date(s).map(Date).or_else(|e| fail(e.0))
        })
        .register_fn("to_string", |d: &mut Date| d.0.to_string())
        .register_fn("to_debug", |d: &mut Date| d.0.to_string())
        .register_get("year", |d: &mut Date| INT::from(d.0.year()))
        .register_get("month", |d: &mut Date| INT::from(d.0.month()))
        .register_get("day", |d: &mut Date| INT::from(d.0.day()))
        .register_fn("days_since", move |d: Date| (today.date - d.0).num_days())
        .register_fn("days_since", |_: ()| ())
        .register_fn("days_until", move |d: Date| (d.0 - today.date).num_days())
        .register_fn("days_until", |_: ()| ())
        .register_fn("==", |a: Date, b: Date| a == b)
        .register_fn("!=", |a: Date, b: Date| a != b)
        .register_fn("<", |a: Date, b: Date| a < b)
        .register_fn("<=", |a: Date, b: Date| a <= b)
        .register_fn(">", |a: Date, b: Date| a > b)
        .register_fn(">=", |a: Date, b: Date| a >= b);
}

fn parse_level(s: &str) -> Fallible<Level> {
    RiskLevel::parse(s)
        .map(|l| Level(l.number()))
        .or_else(|e| fail(e.0))
}

fn register_levels(engine: &mut Engine) {
    engine
        .register_type_with_name::<Level>("RiskLevel")
        .register_fn("to_string", |l: &mut Level| level_text(*l))
        .register_fn("to_debug", |l: &mut Level| level_text(*l));
    macro_rules! compare {
        ($($op:tt),*) => {$(
            engine.register_fn(stringify!($op), |a: Level, b: Level| a $op b);
            engine.register_fn(stringify!($op), |a: Level, b: &str| -> Fallible<bool> { Ok(a $op parse_level(b)?) });
            engine.register_fn(stringify!($op), |a: &str, b: Level| -> Fallible<bool> { Ok(parse_level(a)? $op b) });
        )*};
    }
    compare!(==, !=, <, <=, >, >=);
}

fn level_text(l: Level) -> String {
    if l.0 == 0 {
        String::new()
    } else {
        format!("C{}", l.0)
    }
}

/// A missing value (`()`) compared by order with a number or date is false,
/// as in SQL: `days_since(client.last_trade_on) > 30` is false for a client
/// who never traded.
fn register_missing(engine: &mut Engine) {
    macro_rules! never {
        ($t:ty, $($op:tt),*) => {$(
            engine.register_fn(stringify!($op), |_: (), _: $t| false);
            engine.register_fn(stringify!($op), |_: $t, _: ()| false);
        )*};
    }
    never!(INT, <, <=, >, >=);
    never!(f64, <, <=, >, >=);
    never!(Date, <, <=, >, >=);
}

fn register_client_fields(engine: &mut Engine) {
    engine
        .register_type_with_name::<ClientView>("Client")
        .register_get("id", |c: &mut ClientView| ImmutableString::from(c.id()))
        .register_get("name", |c: &mut ClientView| {
            ImmutableString::from(c.contact().name.as_str())
        })
        .register_get("email", |c: &mut ClientView| opt_text(&c.contact().email))
        .register_get("phone", |c: &mut ClientView| opt_text(&c.contact().phone))
        .register_get("branch", |c: &mut ClientView| opt_text(&c.contact().branch))
        .register_get("advisor", |c: &mut ClientView| {
            opt_text(&c.contact().advisor)
        })
        .register_get("investor_type", |c: &mut ClientView| {
            c.suitability().investor_type.as_str()
        })
        .register_get("risk_level", |c: &mut ClientView| {
            Level(c.suitability().risk_level)
        })
        .register_get("risk_assessed_on", |c: &mut ClientView| {
            opt_date(c.suitability().risk_assessed_on)
        })
        .register_get("assets", |c: &mut ClientView| c.suitability().assets)
        .register_get("tags", |c: &mut ClientView| to_array(&c.lists().tags))
        .register_get("holdings", |c: &mut ClientView| {
            to_array(&c.lists().holdings)
        })
        .register_get("watchlist", |c: &mut ClientView| {
            to_array(&c.lists().watchlist)
        })
        .register_get("birthday", |c: &mut ClientView| {
            opt_date(c.dates().birthday)
        })
        .register_get("opened_on", |c: &mut ClientView| {
            opt_date(c.dates().opened_on)
        })
        .register_get("last_trade_on", |c: &mut ClientView| {
            opt_date(c.dates().last_trade_on)
        })
        .register_get("attrs", |c: &mut ClientView| -> Fallible<Map> {
            let value: serde_json::Value =
                serde_json::from_str(c.attrs_json()).or_else(|e| fail(e.to_string()))?;
            Ok(json_to_dynamic(&value)
                .try_cast::<Map>()
                .unwrap_or_default())
        })
        .register_fn("to_string", |c: &mut ClientView| c.id().to_string())
        .register_fn("to_debug", |c: &mut ClientView| {
            format!("client {}", c.id())
        });
    for &(name, flag) in FLAGS {
        engine.register_get(name, move |c: &mut ClientView| flag(c));
    }
}

pub type Flag = fn(&ClientView) -> bool;
pub type Check = fn(&ClientView, Today) -> bool;
pub type Lookup = fn(&ClientView, &str) -> bool;

/// The client's yes/no fields, `client.NAME`.
pub const FLAGS: &[(&str, Flag)] = &[
    ("lowest_risk_category", |c| {
        c.suitability().lowest_risk_category
    }),
    ("consent_email", |c| {
        c.consents().granted[ConsentScope::Email.index()]
    }),
    ("consent_sms", |c| {
        c.consents().granted[ConsentScope::Sms.index()]
    }),
    ("personalised_marketing", |c| {
        c.consents().granted[ConsentScope::PersonalisedMarketing.index()]
    }),
];

/// The client's yes/no methods without arguments, `client.NAME()`.
pub const CHECKS: &[(&str, Check)] = &[
    ("is_professional", |c, _| {
        c.suitability().investor_type.is_professional()
    }),
    ("is_assessed", |c, _| c.suitability().risk_level > 0),
    ("assessment_valid", |c, today| {
        c.suitability().risk_level > 0
            && c.suitability().risk_assessed_on.is_some_and(|on| {
                on <= today.date
                    && (today.date - on).num_days() < i64::from(today.assessment_valid_days)
            })
    }),
    ("has_email", |c, _| c.contact().email.is_some()),
    ("has_phone", |c, _| c.contact().phone.is_some()),
    ("unsubscribed", |c, _| {
        c.consents().opted_out.iter().any(|o| *o)
    }),
];

/// The methods that look a word up in one of the client's lists,
/// `client.NAME("...")`.
pub const LOOKUPS: &[(&str, Lookup)] = &[
    ("holds", |c, code| listed(&c.lists().holdings, code)),
    ("watches", |c, code| listed(&c.lists().watchlist, code)),
    ("has_tag", |c, tag| c.lists().tags.iter().any(|t| t == tag)),
];

/// The engagement methods, `client.NAME(days[, channel or campaign kind])`,
/// and the event kind each asks about; `did` names the kind itself.
pub const WITHIN: &[(&str, &str)] = &[
    ("opened_within", "opened"),
    ("clicked_within", "clicked"),
    ("replied_within", "replied"),
    ("bounced_within", "bounced"),
    ("attended_within", "attended"),
];

fn to_array(items: &[String]) -> Array {
    items
        .iter()
        .map(|s| Dynamic::from(ImmutableString::from(s.as_str())))
        .collect()
}

/// Attributes come from client files: text, numbers, booleans, lists.
fn json_to_dynamic(v: &serde_json::Value) -> Dynamic {
    use serde_json::Value;
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => n
            .as_i64()
            .map(Dynamic::from)
            .unwrap_or_else(|| n.as_f64().unwrap_or(0.0).into()),
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => items.iter().map(json_to_dynamic).collect::<Vec<_>>().into(),
        Value::Object(m) => {
            let map: Map = m
                .iter()
                .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
                .collect();
            map.into()
        }
    }
}

fn register_client_helpers(engine: &mut Engine, today: Today) {
    for &(name, check) in CHECKS {
        engine.register_fn(name, move |c: &mut ClientView| check(c, today));
    }
    for &(name, lookup) in LOOKUPS {
        engine.register_fn(name, move |c: &mut ClientView, word: &str| lookup(c, word));
    }
    engine
        .register_fn("age", move |c: &mut ClientView| {
            c.dates().birthday.map_or(Dynamic::UNIT, |b| {
                Dynamic::from(INT::from(age_on(b, today.date)))
            })
        })
        .register_fn("birthday_within", move |c: &mut ClientView, days: INT| {
            c.dates()
                .birthday
                .is_some_and(|b| days_to_birthday(b, today.date) < days)
        })
        .register_fn(
            "unsubscribed",
            |c: &mut ClientView, channel: &str| -> Fallible<bool> {
                let ch = Channel::parse(channel).or_else(|e| fail(e.0))?;
                Ok(unsubscribed_from(c, ch))
            },
        );
    engine
        .register_fn("did", move |c: &mut ClientView, kind: &str, days: INT| {
            did(c, kind, days, None, today)
        })
        .register_fn(
            "did",
            move |c: &mut ClientView, kind: &str, days: INT, filter: &str| {
                did(c, kind, days, Some(filter), today)
            },
        );
    for &(name, kind) in WITHIN {
        engine.register_fn(name, move |c: &mut ClientView, days: INT| {
            did(c, kind, days, None, today)
        });
        engine.register_fn(name, move |c: &mut ClientView, days: INT, filter: &str| {
            did(c, kind, days, Some(filter), today)
        });
    }
}

/// `client.unsubscribed(channel)`.
pub fn unsubscribed_from(c: &ClientView, channel: Channel) -> bool {
    c.consents().opted_out[ConsentScope::from(channel).index()]
}

/// Whether `code` is in a list of stock codes; `600519.SH` and `SH600519`
/// are read as `600519`, as an import reads them.
fn listed(codes: &[String], code: &str) -> bool {
    if code.bytes().all(|b| b.is_ascii_digit()) {
        return codes.iter().any(|c| c == code);
    }
    StockCode::parse(code).is_ok_and(|code| codes.iter().any(|c| c == code.as_str()))
}

/// Whether the client had an event of `kind` on one of the last `days` days
/// (today included), optionally only on a channel (`email`, `sms`) or for a
/// campaign kind (`market_bulletin`, ...).
fn did(
    c: &ClientView,
    kind: &str,
    days: INT,
    filter: Option<&str>,
    today: Today,
) -> Fallible<bool> {
    let question = Engagement::new(kind, days, filter, today).or_else(fail)?;
    Ok(question.asked_of(c))
}

/// An engagement question with its words read once: an event of `kind`
/// since a day, optionally on a channel or for a campaign kind.
#[derive(Debug, Clone)]
pub struct Engagement {
    kind: EventKind,
    since: NaiveDate,
    filter: Option<(String, Option<Channel>)>,
}

impl Engagement {
    pub fn new(kind: &str, days: INT, filter: Option<&str>, today: Today) -> Result<Self, String> {
        Ok(Engagement {
            kind: EventKind::parse(kind).map_err(|e| e.0)?,
            since: today.date - chrono::Duration::days(days.max(0) - 1),
            filter: filter.map(|f| (f.to_owned(), Channel::parse(f).ok())),
        })
    }

    pub fn asked_of(&self, c: &ClientView) -> bool {
        c.touches().iter().any(|t| {
            t.kind == self.kind
                && t.last_on >= self.since
                && match &self.filter {
                    None => true,
                    Some((_, Some(ch))) => t.channel == Some(*ch),
                    Some((f, None)) => t.campaign_kind.as_deref() == Some(f.as_str()),
                }
        })
    }
}

fn age_on(birthday: NaiveDate, today: NaiveDate) -> i32 {
    let mut age = today.year() - birthday.year();
    if (today.month(), today.day()) < (birthday.month(), birthday.day()) {
        age -= 1;
    }
    age
}

/// Days from today to the next birthday (0 on the day), so that
/// `birthday_within(7)` means today and the six days after, like the other
/// `within` helpers. 29 February counts as 1 March in other years.
fn days_to_birthday(birthday: NaiveDate, today: NaiveDate) -> INT {
    let in_year = |y: i32| {
        NaiveDate::from_ymd_opt(y, birthday.month(), birthday.day())
            .or_else(|| NaiveDate::from_ymd_opt(y, 3, 1))
            .expect("1 March exists")
    };
    let this_year = in_year(today.year());
    let next = if this_year >= today {
        this_year
    } else {
        in_year(today.year() + 1)
    };
    (next - today).num_days()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn ages_turn_on_the_birthday() {
        assert_eq!(age_on(d("1980-11-25"), d("2026-11-24")), 45);
        assert_eq!(age_on(d("1980-11-25"), d("2026-11-25")), 46);
    }

    #[test]
    fn birthdays_wrap_into_next_year() {
        assert_eq!(days_to_birthday(d("1990-11-25"), d("2026-11-25")), 0);
        assert_eq!(days_to_birthday(d("1990-01-02"), d("2026-12-30")), 3);
        assert_eq!(days_to_birthday(d("1992-02-29"), d("2026-02-27")), 2);
    }
}
