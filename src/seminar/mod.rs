//! Seminar drives: `seminars/NAME.toml` says what the seminar is (title,
//! speaker, time, venue, capacity, RSVP deadline, branch, product risk) and
//! how it is announced (waves: each a segment rule, a channel order and a
//! send time). Every problem is reported with its file, line and key.

pub mod checkin;
pub mod ics;
pub mod notice;
pub mod report;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::campaign::file::key_position;
use crate::channel::Channel;
use crate::client::types::ProductRisk;
use crate::diagnostic::{line_col, Problem};

#[derive(Debug, Clone, Serialize)]
pub struct Seminar {
    pub name: String,
    pub title: String,
    pub speaker: String,
    pub speaker_title: Option<String>,
    /// The programme, one line per item, as invitations show it.
    pub agenda: Vec<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[serde(serialize_with = "tz_name")]
    pub timezone: Tz,
    pub venue: Venue,
    pub capacity: i64,
    pub rsvp_deadline: DateTime<Utc>,
    pub branch: Option<String>,
    pub product_risk: Option<ProductRisk>,
    pub waves: Vec<Wave>,
    /// Called off: those who accepted are told, and no wave goes out.
    pub cancelled: bool,
    pub reminders: Vec<Reminder>,
}

/// A reminder to those holding a seat, some days before the start at a
/// local time, carrying their check-in code.
#[derive(Debug, Clone, Serialize)]
pub struct Reminder {
    /// `1d_1000`: one day before, at 10:00.
    pub name: String,
    pub send_at: DateTime<Utc>,
    pub channels: Vec<Channel>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Venue {
    pub name: Option<String>,
    pub address: Option<String>,
    pub online_url: Option<String>,
}

/// One round of invitations: a run of the seminar's invitation campaign
/// whose key is the wave's name.
#[derive(Debug, Clone, Serialize)]
pub struct Wave {
    pub name: String,
    /// A rule under `rules/`.
    pub audience: String,
    pub channels: Vec<Channel>,
    pub send_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeminarToml {
    title: String,
    speaker: String,
    speaker_title: Option<String>,
    #[serde(default)]
    agenda: Vec<String>,
    starts_at: toml::Value,
    ends_at: toml::Value,
    timezone: Option<String>,
    venue: Venue,
    capacity: i64,
    rsvp_deadline: toml::Value,
    branch: Option<String>,
    product_risk: Option<String>,
    #[serde(default)]
    waves: Vec<WaveToml>,
    #[serde(default)]
    cancelled: bool,
    #[serde(default)]
    reminders: Vec<ReminderToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReminderToml {
    days_before: u32,
    at: String,
    #[serde(default = "reminder_channels")]
    channels: Vec<Channel>,
}

fn reminder_channels() -> Vec<Channel> {
    vec![Channel::Sms, Channel::Email]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaveToml {
    name: String,
    audience: String,
    channels: Vec<Channel>,
    send_at: toml::Value,
}

/// The seminar files in `dir`, sorted.
pub fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    crate::campaign::file::list(dir)
}

impl Seminar {
    pub fn load(path: &Path, rules_dir: &Path) -> Result<Seminar, Vec<Problem>> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| vec![Problem::error(path, format!("cannot read: {e}"))])?;
        Self::parse(path, &source, rules_dir)
    }

    /// Parses and checks a seminar file, reporting every problem at once.
    pub fn parse(path: &Path, source: &str, rules_dir: &Path) -> Result<Seminar, Vec<Problem>> {
        let raw: SeminarToml = toml::from_str(source).map_err(|e| {
            let (line, col) = e.span().map_or((0, 0), |s| line_col(source, s.start));
            vec![Problem::error(path, e.message().to_owned()).at(line, col)]
        })?;
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            let (line, column) = key_position(source, key);
            problems.push(Problem::error(path, message).at(line, column).about(key));
        };
        let timezone = match raw.timezone.as_deref().map(crate::time::parse_tz) {
            None => crate::schedule::trigger::DEFAULT_TZ,
            Some(Ok(tz)) => tz,
            Some(Err(e)) => {
                problem("timezone", e.0);
                crate::schedule::trigger::DEFAULT_TZ
            }
        };
        let mut time = |key: &str, v: &toml::Value| {
            crate::time::toml_instant(v, timezone)
                .map_err(|m| problem(key, m))
                .ok()
        };
        let starts_at = time("starts_at", &raw.starts_at);
        let ends_at = time("ends_at", &raw.ends_at);
        let deadline = time("rsvp_deadline", &raw.rsvp_deadline);
        let waves: Vec<Option<DateTime<Utc>>> = raw
            .waves
            .iter()
            .enumerate()
            .map(|(i, w)| time(&format!("waves[{i}].send_at"), &w.send_at))
            .collect();
        if let (Some(s), Some(e)) = (starts_at, ends_at) {
            if e <= s {
                problem("ends_at", "is not after starts_at".into());
            }
        }
        if let (Some(s), Some(d)) = (starts_at, deadline) {
            if d > s {
                problem("rsvp_deadline", "is after the seminar starts".into());
            }
        }
        if raw.capacity < 1 {
            problem("capacity", "must be at least 1 seat".into());
        }
        if raw.title.trim().is_empty() {
            problem("title", "is empty".into());
        }
        if raw
            .venue
            .name
            .as_deref()
            .is_none_or(|n| n.trim().is_empty())
        {
            problem(
                "venue",
                "needs a name: the hall, or the online room, invitations show".into(),
            );
        }
        match (&raw.venue.address, &raw.venue.online_url) {
            (None, None) => problem("venue", "needs an address, an online_url, or both".into()),
            (_, Some(url)) if !url.starts_with("https://") => {
                problem("online_url", format!("'{url}' is not an https URL"))
            }
            _ => {}
        }
        let product_risk = raw.product_risk.as_deref().and_then(|r| {
            ProductRisk::parse(r)
                .map_err(|e| problem("product_risk", e.to_string()))
                .ok()
        });
        if raw.waves.is_empty() {
            problem(
                "waves",
                "no [[waves]]: say who is invited, by which channels, when".into(),
            );
        }
        let mut names = BTreeSet::new();
        for (i, (w, at)) in raw.waves.iter().zip(&waves).enumerate() {
            let key = |k: &str| format!("waves[{i}].{k}");
            if !names.insert(w.name.as_str()) {
                problem(&key("name"), format!("wave '{}' is named twice", w.name));
            }
            if !crate::campaign::file::is_identifier(&w.name) {
                problem(
                    &key("name"),
                    format!("wave '{}' is not a name (lower_snake_case)", w.name),
                );
            }
            if w.channels.is_empty() {
                problem(
                    &key("channels"),
                    format!("wave '{}' names no channel", w.name),
                );
            }
            let rule = crate::config::resolve_named(&w.audience, rules_dir, "rhai");
            if !rule.is_file() {
                problem(
                    &key("audience"),
                    format!("wave '{}': no rule {}", w.name, rule.display()),
                );
            }
            if let (Some(at), Some(d)) = (at, deadline) {
                if *at >= d {
                    problem(
                        &key("send_at"),
                        format!("wave '{}' goes out after the RSVP deadline", w.name),
                    );
                }
            }
        }
        let first_wave = waves.iter().flatten().min().copied();
        let reminders: Vec<Reminder> = raw
            .reminders
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let key = |k: &str| format!("reminders[{i}].{k}");
                let starts = starts_at?;
                let at = chrono::NaiveTime::parse_from_str(r.at.trim(), "%H:%M")
                    .map_err(|_| {
                        problem(
                            &key("at"),
                            format!("reminder at '{}' is not a time (HH:MM)", r.at),
                        )
                    })
                    .ok()?;
                let day = starts.with_timezone(&timezone).date_naive()
                    - chrono::Duration::days(i64::from(r.days_before));
                let send_at = crate::campaign::timing::local_instant(timezone, day.and_time(at));
                if send_at >= starts {
                    problem(
                        &key("days_before"),
                        format!(
                            "a reminder {} day(s) before at {} is not before the start",
                            r.days_before, r.at
                        ),
                    );
                    return None;
                }
                if r.channels.is_empty() {
                    problem(&key("channels"), "a reminder names no channel".into());
                }
                if first_wave.is_some_and(|w| send_at <= w) {
                    problem(
                        &key("days_before"),
                        format!(
                            "a reminder {} day(s) before at {} goes out before the first wave: nobody holds a seat yet",
                            r.days_before, r.at
                        ),
                    );
                }
                Some(Reminder {
                    name: format!("{}d_{}", r.days_before, at.format("%H%M")),
                    send_at,
                    channels: r.channels.clone(),
                })
            })
            .collect();
        match (starts_at, ends_at, deadline) {
            (Some(starts_at), Some(ends_at), Some(rsvp_deadline)) if problems.is_empty() => {
                Ok(Seminar {
                    name: path
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or("seminar")
                        .to_owned(),
                    title: raw.title,
                    speaker: raw.speaker,
                    speaker_title: raw.speaker_title,
                    agenda: raw.agenda,
                    starts_at,
                    ends_at,
                    timezone,
                    venue: raw.venue,
                    capacity: raw.capacity,
                    rsvp_deadline,
                    branch: raw.branch,
                    product_risk,
                    cancelled: raw.cancelled,
                    reminders,
                    waves: raw
                        .waves
                        .into_iter()
                        .zip(waves)
                        .filter_map(|(w, at)| {
                            Some(Wave {
                                name: w.name,
                                audience: w.audience,
                                channels: w.channels,
                                send_at: at?,
                            })
                        })
                        .collect(),
                })
            }
            _ => Err(problems),
        }
    }
}

impl Seminar {
    /// Where the seminar called `name` is kept.
    pub fn path(base_dir: &Path, name: &str) -> PathBuf {
        crate::config::resolve_named(name, &base_dir.join("seminars"), "toml")
    }

    /// What templates see as `seminar`, and what a run keeps as its
    /// content snapshot: the particulars, times in RFC 3339 with the
    /// seminar's own offset, and the seats left when it was taken.
    pub fn content(&self, seats_left: i64) -> serde_json::Value {
        let local = |t: &DateTime<Utc>| t.with_timezone(&self.timezone).to_rfc3339();
        serde_json::json!({
            "name": self.name,
            "title": self.title,
            "speaker": { "name": self.speaker, "title": self.speaker_title },
            "agenda": self.agenda,
            "starts_at": local(&self.starts_at),
            "ends_at": local(&self.ends_at),
            "timezone": self.timezone.name(),
            "rsvp_deadline": local(&self.rsvp_deadline),
            "venue": self.venue,
            "capacity": self.capacity,
            "seats_left": seats_left.max(0),
            "branch": self.branch,
            "product_risk": self.product_risk.map(|r| r.to_string()),
            "cancelled": self.cancelled,
        })
    }

    /// What a calendar entry shows: a change raises its SEQUENCE.
    pub fn fingerprint(&self) -> String {
        let shown = serde_json::json!([
            self.title,
            self.starts_at,
            self.ends_at,
            self.timezone.name(),
            self.venue,
            self.cancelled
        ]);
        crate::run::files::content_hash(&shown.to_string())
    }

    pub fn wave(&self, name: &str) -> Option<&Wave> {
        self.waves.iter().find(|w| w.name == name)
    }

    pub fn wave_names(&self) -> String {
        self.waves
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn tz_name<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
    }

    #[test]
    fn the_shipped_seminar_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("seminars/strategy_2027.toml");
        let s = Seminar::load(&path, &rules()).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(s.capacity, 120);
        assert_eq!(s.waves.len(), 2);
        assert!(s.waves[0].send_at < s.waves[1].send_at);
        assert!(s.rsvp_deadline < s.starts_at);
    }

    #[test]
    fn a_reminder_before_the_invitations_is_refused() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("seminars/strategy_2027.toml");
        let text = std::fs::read_to_string(path)
            .unwrap()
            .replace("days_before = 1", "days_before = 30");
        let problems = Seminar::parse(Path::new("s.toml"), &text, &rules()).unwrap_err();
        assert_eq!(
            problems[0].subject.as_deref(),
            Some("reminders[0].days_before"),
            "{problems:?}"
        );
        assert!(problems[0].message.contains("before the first wave"));
    }

    #[test]
    fn a_later_wave_s_problem_points_at_that_wave() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("seminars/strategy_2027.toml");
        let text = std::fs::read_to_string(path).unwrap().replace(
            "audience = \"bulletin_audience\"",
            "audience = \"no_such_rule\"",
        );
        let problems = Seminar::parse(Path::new("s.toml"), &text, &rules()).unwrap_err();
        let line = text
            .lines()
            .position(|l| l.contains("no_such_rule"))
            .unwrap()
            + 1;
        assert_eq!(
            (problems[0].subject.as_deref(), problems[0].line),
            (Some("waves[1].audience"), line)
        );
    }

    #[test]
    fn every_problem_names_its_line_and_key() {
        let text = "title = \"讲座\"\nspeaker = \"李明\"\nstarts_at = \"2026-12-10 14:00\"\nends_at = \"2026-12-10 13:00\"\n\
                    capacity = 0\nrsvp_deadline = \"2026-12-11 18:00\"\n[venue]\nonline_url = \"http://x\"\n\
                    [[waves]]\nname = \"vip\"\naudience = \"no_such_rule\"\nchannels = [\"sms\"]\nsend_at = \"2026-12-12 10:00\"\n";
        let problems = Seminar::parse(Path::new("s.toml"), text, &rules()).unwrap_err();
        let keys: Vec<(&str, usize)> = problems
            .iter()
            .map(|p| (p.subject.as_deref().unwrap_or(""), p.line))
            .collect();
        for (key, line) in [
            ("ends_at", 4),
            ("capacity", 5),
            ("rsvp_deadline", 6),
            ("online_url", 8),
            ("waves[0].audience", 11),
            ("waves[0].send_at", 13),
        ] {
            assert!(
                keys.contains(&(key, line)),
                "{key} at line {line}: {keys:?}"
            );
        }
    }
}
