//! The one time rule: instants are UTC, plain dates are dates, and "today"
//! is the firm's local date in its time zone (Asia/Shanghai by default).

use chrono::format::{Item, Numeric, Pad, Parsed};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::client::types::Invalid;

/// The firm's time zone and, for reproducible runs, a fixed "now".
#[derive(Debug, Clone, Copy)]
pub struct FirmTime {
    pub tz: Tz,
    fixed_now: Option<DateTime<Utc>>,
}

impl FirmTime {
    pub fn new(tz: Tz) -> Self {
        Self {
            tz,
            fixed_now: None,
        }
    }

    /// A clock that always reads `now`: for tests and `--as-of`.
    pub fn fixed(tz: Tz, now: DateTime<Utc>) -> Self {
        Self {
            tz,
            fixed_now: Some(now),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.fixed_now.unwrap_or_else(Utc::now)
    }

    /// Today's date in the firm's time zone.
    pub fn today(&self) -> NaiveDate {
        self.now().with_timezone(&self.tz).date_naive()
    }

    /// An instant written as RFC 3339 (with its offset), or as a local
    /// `YYYY-MM-DD HH:MM[:SS]` / `YYYY-MM-DDTHH:MM[:SS]` in the firm's zone.
    pub fn parse_instant(&self, raw: &str) -> Result<DateTime<Utc>, Invalid> {
        instant_in(self.tz, raw)
    }
}

/// An instant written as RFC 3339 (with its offset), or as a local
/// `YYYY-MM-DD HH:MM[:SS]` / `YYYY-MM-DDTHH:MM[:SS]` in `tz`.
pub fn instant_in(tz: Tz, raw: &str) -> Result<DateTime<Utc>, Invalid> {
    let s = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .ok_or_else(|| {
        Invalid(format!(
            "'{s}' is not a time (RFC 3339, or YYYY-MM-DD HH:MM:SS)"
        ))
    })?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| Invalid(format!("'{s}' does not exist in {tz}")))
}

/// A time a TOML file gives as a datetime or as text, read by [`instant_in`].
pub fn toml_instant(v: &toml::Value, tz: Tz) -> Result<DateTime<Utc>, String> {
    match v {
        toml::Value::Datetime(d) => instant_in(tz, &d.to_string()).map_err(|e| e.0),
        toml::Value::String(s) => instant_in(tz, s).map_err(|e| e.0),
        other => Err(format!("{other} is not a time (YYYY-MM-DD HH:MM)")),
    }
}

/// `%Y-%m-%d` as parsed items: `parse_from_str` would read the format
/// string again for every date of an import.
const ISO_DATE: [Item<'static>; 5] = [
    Item::Numeric(Numeric::Year, Pad::Zero),
    Item::Literal("-"),
    Item::Numeric(Numeric::Month, Pad::Zero),
    Item::Literal("-"),
    Item::Numeric(Numeric::Day, Pad::Zero),
];

/// A plain ISO date (`1990-05-17`).
pub fn parse_date(raw: &str) -> Result<NaiveDate, Invalid> {
    let s = raw.trim();
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, s, ISO_DATE.iter())
        .and_then(|()| parsed.to_naive_date())
        .map_err(|_| Invalid(format!("'{s}' is not a date (YYYY-MM-DD)")))
}

/// Parses an IANA time zone name, e.g. `Asia/Shanghai`.
pub fn parse_tz(raw: &str) -> Result<Tz, Invalid> {
    raw.trim()
        .parse::<Tz>()
        .map_err(|_| Invalid(format!("'{raw}' is not a time zone (e.g. Asia/Shanghai)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai_at(utc: &str) -> FirmTime {
        let now = DateTime::parse_from_rfc3339(utc)
            .unwrap()
            .with_timezone(&Utc);
        FirmTime::fixed(chrono_tz::Asia::Shanghai, now)
    }

    #[test]
    fn today_is_the_firms_local_date() {
        // 17:00 UTC is already 01:00 the next day in Shanghai.
        let t = shanghai_at("2026-09-30T17:00:00Z");
        assert_eq!(t.today(), NaiveDate::from_ymd_opt(2026, 10, 1).unwrap());
    }

    #[test]
    fn local_times_are_read_in_the_firms_zone() {
        let t = shanghai_at("2026-01-01T00:00:00Z");
        let at = t.parse_instant("2026-11-03 08:30").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-11-03T00:30:00+00:00");
        let at = t.parse_instant("2026-11-03T08:30:00+08:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-11-03T00:30:00+00:00");
        assert!(t.parse_instant("yesterday").is_err());
    }

    #[test]
    fn dates_must_exist() {
        assert!(parse_date("1990-13-45").is_err());
        assert!(parse_date("2023-02-29").is_err());
        assert!(parse_date("2024-02-29x").is_err());
        assert!(parse_date("2024-2-9").is_ok_and(|d| d.to_string() == "2024-02-09"));
        assert_eq!(
            parse_date(" 2024-02-29 ").unwrap().to_string(),
            "2024-02-29"
        );
    }
}
