//! What starts a campaign's run: a person (`herald send`), a cron schedule
//! in a time zone (optionally on trading days only), or one fixed time.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::calendar::{Calendar, Uncovered};

/// How far back `next_back` looks for a trading day before giving up: a
/// schedule that fires only on, say, 29 February needs years.
const SEARCH_LIMIT: usize = 2_000;

/// A trigger's time zone when it names none (and for `at` times written
/// without an offset).
pub const DEFAULT_TZ: Tz = chrono_tz::Asia::Shanghai;

#[derive(Debug, Clone, Default, PartialEq)]
pub enum Trigger {
    /// `herald send` only.
    #[default]
    Manual,
    Schedule(Box<Schedule>),
    /// Once, at this instant.
    At(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// As written, for messages and status.
    pub expr: String,
    cron: cron::Schedule,
    pub timezone: Tz,
    pub trading_days_only: bool,
}

/// What is wrong with a trigger, and which key of its table it is about
/// (none: the trigger as a whole).
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerError {
    pub key: Option<String>,
    pub message: String,
}

impl std::fmt::Display for TriggerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl TriggerError {
    fn about(key: &'static str, message: String) -> Self {
        TriggerError {
            key: Some(key.to_owned()),
            message,
        }
    }

    fn whole(message: impl Into<String>) -> Self {
        TriggerError {
            key: None,
            message: message.into(),
        }
    }
}

/// The keys a `[trigger]` table may hold.
const KEYS: [&str; 4] = ["schedule", "timezone", "trading_days_only", "at"];

impl Trigger {
    /// Parses the campaign file's `trigger`: `"manual"`, or a table with
    /// `schedule` (and `timezone`, `trading_days_only`) or `at`. Every
    /// unknown key is reported; otherwise the first problem.
    pub fn parse(raw: Option<&toml::Value>) -> Result<Trigger, Vec<TriggerError>> {
        let table = match raw {
            None => return Ok(Trigger::Manual),
            Some(toml::Value::String(s)) if s == "manual" => return Ok(Trigger::Manual),
            Some(toml::Value::Table(t)) => t,
            Some(other) => {
                return Err(vec![TriggerError::whole(format!(
                    "{other} is not a trigger: write \"manual\", or a [trigger] table with schedule or at"
                ))])
            }
        };
        let unknown: Vec<TriggerError> = table
            .keys()
            .filter(|k| !KEYS.contains(&k.as_str()))
            .map(|k| TriggerError {
                key: Some(k.clone()),
                message: match crate::diagnostic::closest(k, &KEYS) {
                    Some(known) => format!("unknown key: did you mean `{known}`?"),
                    None => format!("unknown key (expected one of {})", KEYS.join(", ")),
                },
            })
            .collect();
        if !unknown.is_empty() {
            // A misspelt key is why the rest seems missing: it alone is said.
            return Err(unknown);
        }
        Self::parse_table(table).map_err(|e| vec![e])
    }

    fn parse_table(table: &toml::Table) -> Result<Trigger, TriggerError> {
        let timezone = match table.get("timezone") {
            None => DEFAULT_TZ,
            Some(toml::Value::String(s)) => {
                crate::time::parse_tz(s).map_err(|e| TriggerError::about("timezone", e.0))?
            }
            Some(other) => {
                return Err(TriggerError::about(
                    "timezone",
                    format!("{other} is not a time zone name"),
                ))
            }
        };
        let trading_days_only = match table.get("trading_days_only") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => {
                return Err(TriggerError::about(
                    "trading_days_only",
                    format!("{other} is not true or false"),
                ))
            }
        };
        match (table.get("schedule"), table.get("at")) {
            (Some(toml::Value::String(expr)), None) => Ok(Trigger::Schedule(Box::new(
                Schedule::parse(expr, timezone, trading_days_only)
                    .map_err(|m| TriggerError::about("schedule", m))?,
            ))),
            (None, Some(at)) => {
                if trading_days_only {
                    return Err(TriggerError::about(
                        "trading_days_only",
                        "applies to a schedule, not a one-off 'at'".into(),
                    ));
                }
                Ok(Trigger::At(
                    crate::time::toml_instant(at, timezone)
                        .map_err(|m| TriggerError::about("at", m))?,
                ))
            }
            (Some(_), Some(_)) => Err(TriggerError::whole("give either schedule or at, not both")),
            (Some(other), None) => Err(TriggerError::about(
                "schedule",
                format!("{other} is not a cron expression in quotes"),
            )),
            (None, None) => Err(TriggerError::whole(
                "a [trigger] table needs schedule (cron) or at (a time)",
            )),
        }
    }

    /// The fire time to act on at `now`: the latest one within `grace`
    /// before it (a missed schedule fires once, not once per miss).
    pub fn due(
        &self,
        now: DateTime<Utc>,
        grace: Duration,
        calendar: &Calendar,
    ) -> Result<Option<DateTime<Utc>>, Uncovered> {
        match self {
            Trigger::Manual => Ok(None),
            Trigger::At(at) => Ok((*at <= now && now - *at <= grace).then_some(*at)),
            Trigger::Schedule(s) => s.latest(now, now - grace, calendar),
        }
    }

    /// The next fire time after `now`, if any.
    pub fn next(
        &self,
        now: DateTime<Utc>,
        calendar: &Calendar,
    ) -> Result<Option<DateTime<Utc>>, Uncovered> {
        match self {
            Trigger::Manual => Ok(None),
            Trigger::At(at) => Ok((*at > now).then_some(*at)),
            Trigger::Schedule(s) => s.next(now, calendar),
        }
    }

    /// The run key of a scheduled run: its fire time, in the trigger's zone.
    pub fn run_key(&self, fire: DateTime<Utc>) -> String {
        let tz = match self {
            Trigger::Schedule(s) => s.timezone,
            _ => DEFAULT_TZ,
        };
        fire.with_timezone(&tz)
            .format("%Y-%m-%dT%H:%M%:z")
            .to_string()
    }

    pub fn describe(&self) -> String {
        match self {
            Trigger::Manual => "manual".into(),
            Trigger::At(at) => format!("once at {}", at.to_rfc3339()),
            Trigger::Schedule(s) => format!(
                "\"{}\" {}{}",
                s.expr,
                s.timezone,
                if s.trading_days_only {
                    ", trading days only"
                } else {
                    ""
                }
            ),
        }
    }
}

impl Schedule {
    pub fn parse(expr: &str, timezone: Tz, trading_days_only: bool) -> Result<Schedule, String> {
        let fields = expr.split_whitespace().count();
        if !(6..=7).contains(&fields) {
            return Err(format!(
                "'{expr}' has {fields} fields; a schedule has 6 or 7: seconds minutes hours day-of-month month day-of-week [year], e.g. \"0 30 8 * * *\""
            ));
        }
        let cron = cron::Schedule::from_str(expr)
            .map_err(|e| format!("'{expr}' is not a cron schedule: {e}"))?;
        if cron.upcoming(timezone).next().is_none() {
            return Err(format!("'{expr}' never fires again"));
        }
        Ok(Schedule {
            expr: expr.to_owned(),
            cron,
            timezone,
            trading_days_only,
        })
    }

    fn fires_on(&self, t: DateTime<Tz>, calendar: &Calendar) -> Result<bool, Uncovered> {
        if !self.trading_days_only {
            return Ok(true);
        }
        calendar.is_trading_day(t.date_naive())
    }

    /// The latest fire time in `(after, now]`.
    fn latest(
        &self,
        now: DateTime<Utc>,
        after: DateTime<Utc>,
        calendar: &Calendar,
    ) -> Result<Option<DateTime<Utc>>, Uncovered> {
        // `after(x).rev()` walks back from x, exclusive: start a second on.
        let from = (now + Duration::seconds(1)).with_timezone(&self.timezone);
        for t in self.cron.after(&from).rev().take(SEARCH_LIMIT) {
            let utc = t.with_timezone(&Utc);
            if utc <= after {
                break;
            }
            if self.fires_on(t, calendar)? {
                return Ok(Some(utc));
            }
        }
        Ok(None)
    }

    fn next(
        &self,
        now: DateTime<Utc>,
        calendar: &Calendar,
    ) -> Result<Option<DateTime<Utc>>, Uncovered> {
        for t in self
            .cron
            .after(&now.with_timezone(&self.timezone))
            .take(SEARCH_LIMIT)
        {
            if self.fires_on(t, calendar)? {
                return Ok(Some(t.with_timezone(&Utc)));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDateTime, TimeZone};

    fn shanghai(s: &str) -> DateTime<Utc> {
        let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        chrono_tz::Asia::Shanghai
            .from_local_datetime(&local)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn bulletin() -> Trigger {
        let raw: toml::Value = toml::from_str::<toml::Table>(
            "[trigger]\nschedule = \"0 30 8 * * *\"\ntrading_days_only = true\n",
        )
        .unwrap()["trigger"]
            .clone();
        Trigger::parse(Some(&raw)).unwrap()
    }

    #[test]
    fn a_trading_day_bulletin_fires_on_30_september_and_not_on_national_day() {
        let (t, cal, grace) = (bulletin(), Calendar::builtin(), Duration::minutes(30));
        let fire = shanghai("2026-09-30 08:30:00");
        assert_eq!(t.due(fire, grace, &cal).unwrap(), Some(fire));
        assert_eq!(
            t.due(fire + Duration::seconds(4), grace, &cal).unwrap(),
            Some(fire)
        );
        assert_eq!(
            t.due(fire - Duration::seconds(1), grace, &cal).unwrap(),
            None
        );
        assert_eq!(
            t.due(shanghai("2026-10-01 08:30:00"), grace, &cal).unwrap(),
            None
        );
        assert_eq!(
            t.next(fire, &cal).unwrap(),
            Some(shanghai("2026-10-08 08:30:00")),
            "the next after 30 September is the first day after the holiday"
        );
        assert_eq!(t.run_key(fire), "2026-09-30T08:30+08:00");
    }

    #[test]
    fn after_downtime_only_the_latest_missed_time_fires_and_only_within_grace() {
        let (t, cal) = (bulletin(), Calendar::builtin());
        // Down from Monday 07:00 to Wednesday 08:40: two scheduled times missed.
        let back = shanghai("2026-11-25 08:40:00");
        let grace = Duration::hours(1);
        assert_eq!(
            t.due(back, grace, &cal).unwrap(),
            Some(shanghai("2026-11-25 08:30:00"))
        );
        // Back at noon: the morning's time is past the grace period.
        assert_eq!(
            t.due(shanghai("2026-11-25 12:00:00"), grace, &cal).unwrap(),
            None
        );
    }

    #[test]
    fn a_one_off_time_fires_once_within_grace() {
        let raw: toml::Value =
            toml::from_str::<toml::Table>("t = { at = 2026-12-01T09:00:00 }").unwrap()["t"].clone();
        let t = Trigger::parse(Some(&raw)).unwrap();
        let at = shanghai("2026-12-01 09:00:00");
        let cal = Calendar::builtin();
        assert_eq!(t.next(at - Duration::hours(1), &cal).unwrap(), Some(at));
        assert_eq!(
            t.due(at + Duration::minutes(5), Duration::minutes(10), &cal)
                .unwrap(),
            Some(at)
        );
        assert_eq!(
            t.due(at + Duration::minutes(15), Duration::minutes(10), &cal)
                .unwrap(),
            None
        );
    }

    #[test]
    fn bad_triggers_say_what_is_wrong() {
        let parse = |s: &str| {
            let v = toml::from_str::<toml::Table>(s).unwrap()["trigger"].clone();
            let errors = Trigger::parse(Some(&v)).unwrap_err();
            assert_eq!(errors.len(), 1, "{errors:?}");
            errors[0].to_string()
        };
        assert!(parse("trigger = { schedule = \"30 8 * * *\" }").contains("6 or 7"));
        assert!(parse("trigger = { schedule = \"0 30 25 * * *\" }").contains("not a cron"));
        assert!(
            parse("trigger = { schedule = \"0 30 8 * * *\", timezone = \"Mars/Base\" }")
                .contains("time zone")
        );
        assert!(parse("trigger = { at = \"tomorrow\" }").contains("not a time"));
        assert!(
            parse("trigger = { shedule = \"0 30 8 * * *\" }").contains("did you mean `schedule`")
        );
        assert!(parse("trigger = \"hourly\"").contains("not a trigger"));
        assert_eq!(Trigger::parse(None).unwrap(), Trigger::Manual);
    }
}
