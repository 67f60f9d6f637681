//! The exchange calendar: which local dates the Shanghai and Shenzhen
//! exchanges trade. Weekends are always closed; holidays come from a data
//! file (`calendars/cn-exchange.toml` ships with herald) that the user can
//! replace when the exchanges announce the next year.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

use crate::diagnostic::{line_col, Problem};

/// The calendar herald ships, used when no file is configured or found.
const BUILTIN: &str = include_str!("../../calendars/cn-exchange.toml");
pub const BUILTIN_NAME: &str = "calendars/cn-exchange.toml (built in)";

#[derive(Debug, Clone)]
pub struct Calendar {
    pub name: String,
    /// Where it was read from, for messages.
    pub source: PathBuf,
    pub first: NaiveDate,
    pub last: NaiveDate,
    /// Closed weekdays and weekends inside holiday ranges, with the
    /// holiday's name.
    closed: BTreeMap<NaiveDate, String>,
}

/// What the calendar says about one date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    pub trading: bool,
    /// Why the exchanges are closed: a holiday's name, or 周末.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_for: Option<String>,
}

/// A date the calendar does not cover: herald cannot tell whether it is a
/// trading day and refuses to guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{date} is outside the exchange calendar {file} ({first} to {last}); add the exchanges' holiday announcement for that year to the file")]
pub struct Uncovered {
    pub date: NaiveDate,
    pub file: String,
    pub first: NaiveDate,
    pub last: NaiveDate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarToml {
    name: String,
    first: toml::Spanned<toml::value::Datetime>,
    last: toml::Spanned<toml::value::Datetime>,
    #[serde(default)]
    closed: Vec<ClosedToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClosedToml {
    name: String,
    from: toml::Spanned<toml::value::Datetime>,
    to: toml::Spanned<toml::value::Datetime>,
}

impl Calendar {
    pub fn builtin() -> Self {
        Self::parse(Path::new(BUILTIN_NAME), BUILTIN).expect("the shipped calendar parses")
    }

    pub fn load(path: &Path) -> Result<Self, Problem> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problem::error(path, format!("cannot read the exchange calendar: {e}")))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, Problem> {
        let raw: CalendarToml = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map_or((0, 0), |s| line_col(text, s.start));
            Problem::error(path, e.message().to_owned()).at(line, col)
        })?;
        let date = |d: &toml::Spanned<toml::value::Datetime>, key: &str| {
            plain_date(d.get_ref()).ok_or_else(|| {
                let (line, col) = line_col(text, d.span().start);
                Problem::error(
                    path,
                    format!("'{}' is not a plain date (YYYY-MM-DD)", d.get_ref()),
                )
                .at(line, col)
                .about(key)
            })
        };
        let first = date(&raw.first, "first")?;
        let last = date(&raw.last, "last")?;
        if last < first {
            let (line, col) = line_col(text, raw.last.span().start);
            return Err(Problem::error(
                path,
                format!("'last' ({last}) is before 'first' ({first})"),
            )
            .at(line, col)
            .about("last"));
        }
        let mut closed = BTreeMap::new();
        for c in &raw.closed {
            let (from, to) = (date(&c.from, "from")?, date(&c.to, "to")?);
            let (line, col) = line_col(text, c.to.span().start);
            let at = |msg: String| Problem::error(path, msg).at(line, col).about("to");
            if to < from {
                return Err(at(format!(
                    "{} ends ({to}) before it starts ({from})",
                    c.name
                )));
            }
            if from < first || to > last {
                return Err(at(format!(
                    "{} ({from} to {to}) is outside the calendar's own range ({first} to {last})",
                    c.name
                )));
            }
            if (to - from).num_days() > 31 {
                return Err(at(format!("{} closes the exchanges for more than a month ({from} to {to}); is a date mistyped?", c.name)));
            }
            for d in from.iter_days().take_while(|d| *d <= to) {
                closed.insert(d, c.name.clone());
            }
        }
        Ok(Self {
            name: raw.name,
            source: path.to_path_buf(),
            first,
            last,
            closed,
        })
    }

    /// Whether the exchanges trade on `date` (a local date).
    pub fn day(&self, date: NaiveDate) -> Result<Day, Uncovered> {
        if date < self.first || date > self.last {
            return Err(Uncovered {
                date,
                file: self.source.display().to_string(),
                first: self.first,
                last: self.last,
            });
        }
        let closed_for = match self.closed.get(&date) {
            Some(name) => Some(name.clone()),
            None if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) => {
                Some("周末".to_owned())
            }
            None => None,
        };
        Ok(Day {
            date,
            trading: closed_for.is_none(),
            closed_for,
        })
    }

    pub fn is_trading_day(&self, date: NaiveDate) -> Result<bool, Uncovered> {
        Ok(self.day(date)?.trading)
    }

    /// The next `n` trading days on or after `from`.
    pub fn next_trading_days(
        &self,
        from: NaiveDate,
        n: usize,
    ) -> Result<Vec<NaiveDate>, Uncovered> {
        let mut days = Vec::with_capacity(n);
        let mut d = from;
        while days.len() < n {
            if self.is_trading_day(d)? {
                days.push(d);
            }
            d = d.succ_opt().expect("dates before the end of time");
        }
        Ok(days)
    }
}

fn plain_date(d: &toml::value::Datetime) -> Option<NaiveDate> {
    match (d.date, d.time, d.offset) {
        (Some(date), None, None) => {
            NaiveDate::from_ymd_opt(date.year.into(), date.month.into(), date.day.into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn national_day_is_closed_and_the_day_before_trades() {
        let cal = Calendar::builtin();
        assert!(cal.is_trading_day(d("2026-09-30")).unwrap());
        let day = cal.day(d("2026-10-01")).unwrap();
        assert!(!day.trading);
        assert_eq!(day.closed_for.as_deref(), Some("国庆节"));
        assert!(cal.is_trading_day(d("2026-10-08")).unwrap());
    }

    #[test]
    fn make_up_working_weekends_stay_closed() {
        let cal = Calendar::builtin();
        // 2026-09-20 (Sunday) and 2026-10-10 (Saturday) are official working
        // days; the exchanges do not open on them.
        for s in ["2026-09-20", "2026-10-10", "2025-01-26", "2024-02-18"] {
            let day = cal.day(d(s)).unwrap();
            assert!(!day.trading, "{s}");
        }
    }

    #[test]
    fn the_shipped_calendar_has_the_known_number_of_trading_days() {
        // The exchanges' published totals: 242 trading days in 2024, 243 in 2025.
        let cal = Calendar::builtin();
        let count = |y: i32| {
            d(&format!("{y}-01-01"))
                .iter_days()
                .take_while(|x| x.year() == y)
                .filter(|x| cal.is_trading_day(*x).unwrap())
                .count()
        };
        assert_eq!(count(2024), 242);
        assert_eq!(count(2025), 243);
    }

    #[test]
    fn next_trading_days_skip_the_holiday() {
        let cal = Calendar::builtin();
        let days = cal.next_trading_days(d("2026-09-29"), 3).unwrap();
        assert_eq!(
            days,
            vec![d("2026-09-29"), d("2026-09-30"), d("2026-10-08")]
        );
    }

    #[test]
    fn a_date_outside_the_calendar_is_refused_not_guessed() {
        let cal = Calendar::builtin();
        let err = cal.day(d("2027-01-04")).unwrap_err();
        assert!(err.to_string().contains("2026-12-31"), "{err}");
        assert!(cal.next_trading_days(d("2026-12-30"), 5).is_err());
    }

    #[test]
    fn bad_files_name_the_line_and_key() {
        let text = "name = \"x\"\nfirst = 2024-01-01\nlast = 2024-12-31\n\n[[closed]]\nname = \"春节\"\nfrom = 2024-02-17\nto = 2024-02-09\n";
        let p = Calendar::parse(Path::new("cal.toml"), text).unwrap_err();
        assert_eq!((p.line, p.subject.as_deref()), (8, Some("to")));
        let text = "name = \"x\"\nfirst = 2024-01-01\nlast = \"soon\"\n";
        let p = Calendar::parse(Path::new("cal.toml"), text).unwrap_err();
        assert_eq!(p.line, 3, "{p}");
        let text = "name = \"x\"\nfirst = 2024-01-01T08:00:00\nlast = 2024-12-31\n";
        let p = Calendar::parse(Path::new("cal.toml"), text).unwrap_err();
        assert_eq!((p.line, p.subject.as_deref()), (2, Some("first")));
    }
}
