//! When a campaign's messages may go out: quiet hours for marketing SMS, the
//! `send_by` deadline after which unsent messages expire, and the release
//! time of a research report.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A daily window in local time during which marketing SMS wait
/// (21:00–08:00 by default). It may wrap past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Default for QuietHours {
    fn default() -> Self {
        Self {
            start: NaiveTime::from_hms_opt(21, 0, 0).expect("a valid time"),
            end: NaiveTime::from_hms_opt(8, 0, 0).expect("a valid time"),
        }
    }
}

impl QuietHours {
    /// `"21:00-08:00"`.
    pub fn parse(raw: &str) -> Result<QuietHours, String> {
        let (a, b) = raw
            .split_once('-')
            .ok_or_else(|| format!("'{raw}' is not a window (write \"21:00-08:00\")"))?;
        let time = |s: &str| {
            NaiveTime::parse_from_str(s.trim(), "%H:%M")
                .map_err(|_| format!("'{}' is not a time of day (HH:MM)", s.trim()))
        };
        let (start, end) = (time(a)?, time(b)?);
        if start == end {
            return Err(format!("'{raw}' is an empty window"));
        }
        Ok(QuietHours { start, end })
    }

    fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// `at` itself if it is outside the window, otherwise the window's end
    /// (the next allowed time) in `tz`.
    pub fn next_allowed(&self, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let local = at.with_timezone(&tz);
        if !self.contains(local.time()) {
            return at;
        }
        let mut day = local.date_naive();
        if self.start >= self.end && local.time() >= self.start {
            day = day + Days::new(1);
        }
        local_instant(tz, day.and_time(self.end)).max(at)
    }

    /// The first time from `at` that none of `windows` holds, in `tz`. If
    /// they cover the whole day there is none: the latest end found is
    /// returned, and the next check there defers again.
    pub fn next_allowed_by_all(windows: &[QuietHours], at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let mut t = at;
        // Each pass moves past at least one window's end; a few passes
        // settle any two windows that leave a gap.
        for _ in 0..2 * windows.len() + 2 {
            let next = windows.iter().fold(t, |t, w| w.next_allowed(t, tz));
            if next == t {
                break;
            }
            t = next;
        }
        t
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

/// When unsent messages of a run expire: a local time of day on the run's
/// date (`"10:30"`: a bulletin is stale after the market opens), or a time
/// after planning (`"6h"`, `"90m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendBy {
    TimeOfDay(NaiveTime),
    After(Duration),
}

impl SendBy {
    pub fn parse(raw: &str) -> Result<SendBy, String> {
        let s = raw.trim();
        if let Ok(t) = NaiveTime::parse_from_str(s, "%H:%M") {
            return Ok(SendBy::TimeOfDay(t));
        }
        let after = |digits: &str, unit: u64| {
            digits
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(|n| SendBy::After(Duration::from_secs(n * unit)))
        };
        let parsed = if let Some(d) = s.strip_suffix('h') {
            after(d, 3600)
        } else if let Some(d) = s.strip_suffix('m') {
            after(d, 60)
        } else {
            None
        };
        parsed.ok_or_else(|| {
            format!("'{s}' is not a deadline (a local time \"10:30\", or \"6h\" / \"90m\" after launch)")
        })
    }

    /// The instant a run planned at `planned` on local date `day` expires.
    pub fn deadline(&self, planned: DateTime<Utc>, day: NaiveDate, tz: Tz) -> DateTime<Utc> {
        match self {
            SendBy::After(d) => planned + chrono::Duration::from_std(*d).unwrap_or_default(),
            SendBy::TimeOfDay(t) => local_instant(tz, day.and_time(*t)),
        }
    }
}

impl fmt::Display for SendBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendBy::TimeOfDay(t) => write!(f, "{}", t.format("%H:%M")),
            SendBy::After(d) if d.as_secs() % 3600 == 0 => write!(f, "{}h", d.as_secs() / 3600),
            SendBy::After(d) => write!(f, "{}m", d.as_secs() / 60),
        }
    }
}

/// A local wall-clock time as an instant; in a gap (no such local time),
/// the first instant after it; when ambiguous, the earlier.
pub fn local_instant(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.with_timezone(&Utc)
        }
        chrono::LocalResult::None => {
            local_instant(tz, local + chrono::Duration::hours(1)) - chrono::Duration::hours(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TZ: Tz = chrono_tz::Asia::Shanghai;

    fn local(s: &str) -> DateTime<Utc> {
        local_instant(
            TZ,
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap(),
        )
    }

    #[test]
    fn quiet_hours_wrap_past_midnight() {
        let q = QuietHours::default();
        assert_eq!(q.to_string(), "21:00-08:00");
        // Inside, before midnight: the next morning at 08:00.
        assert_eq!(
            q.next_allowed(local("2026-11-25 22:15"), TZ),
            local("2026-11-26 08:00")
        );
        // Inside, after midnight: the same morning.
        assert_eq!(
            q.next_allowed(local("2026-11-26 06:59"), TZ),
            local("2026-11-26 08:00")
        );
        // Outside: now.
        assert_eq!(
            q.next_allowed(local("2026-11-26 08:00"), TZ),
            local("2026-11-26 08:00")
        );
        assert_eq!(
            q.next_allowed(local("2026-11-26 20:59"), TZ),
            local("2026-11-26 20:59")
        );
    }

    #[test]
    fn a_campaigns_window_adds_to_the_firms() {
        let firm = QuietHours::default();
        let early = QuietHours::parse("03:00-04:00").unwrap();
        let both = [firm, early];
        // The campaign's own window does not open the firm's night.
        assert_eq!(
            QuietHours::next_allowed_by_all(&both, local("2026-11-26 01:51"), TZ),
            local("2026-11-26 08:00")
        );
        // A window that runs on past the firm's: its end.
        let morning = QuietHours::parse("07:00-09:00").unwrap();
        assert_eq!(
            QuietHours::next_allowed_by_all(&[firm, morning], local("2026-11-25 22:00"), TZ),
            local("2026-11-26 09:00")
        );
        // Outside both: now.
        assert_eq!(
            QuietHours::next_allowed_by_all(&both, local("2026-11-26 12:00"), TZ),
            local("2026-11-26 12:00")
        );
        // Windows that cover the day never allow: the time found is still
        // inside one, so the next check defers again.
        let day = QuietHours::parse("08:00-21:00").unwrap();
        let at = QuietHours::next_allowed_by_all(&[firm, day], local("2026-11-26 12:00"), TZ);
        assert!(
            firm.contains(at.with_timezone(&TZ).time())
                || day.contains(at.with_timezone(&TZ).time())
        );
    }

    #[test]
    fn a_daytime_window_and_bad_windows() {
        let q = QuietHours::parse("12:00-13:30").unwrap();
        assert_eq!(
            q.next_allowed(local("2026-11-26 12:10"), TZ),
            local("2026-11-26 13:30")
        );
        assert!(QuietHours::parse("21:00")
            .unwrap_err()
            .contains("21:00-08:00"));
        assert!(QuietHours::parse("25:00-08:00").is_err());
        assert!(QuietHours::parse("08:00-08:00").is_err());
    }

    #[test]
    fn send_by_is_a_time_of_day_or_a_duration() {
        let planned = local("2026-11-25 08:30");
        let day = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let by = SendBy::parse("10:30").unwrap();
        assert_eq!(by.deadline(planned, day, TZ), local("2026-11-25 10:30"));
        let by = SendBy::parse("6h").unwrap();
        assert_eq!(by.to_string(), "6h");
        assert_eq!(by.deadline(planned, day, TZ), local("2026-11-25 14:30"));
        assert_eq!(SendBy::parse("90m").unwrap().to_string(), "90m");
        assert!(SendBy::parse("soon").is_err());
        assert!(SendBy::parse("0h").is_err());
    }
}
