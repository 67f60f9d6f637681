//! The seminar as a calendar entry (RFC 5545), attached to invitations and
//! seat notices. `METHOD:PUBLISH`, since answers come through herald's own
//! links and replies, not calendar REPLY mail. The UID is stable per
//! seminar and client, so that a change of time (a higher SEQUENCE) or a
//! cancellation (`STATUS:CANCELLED`) replaces the entry the client saved.
//! Times carry the seminar's zone with its VTIMEZONE; a zone with daylight
//! saving is given in UTC instead, which every program reads right.

use chrono::{DateTime, FixedOffset, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use ics::parameters::TzIDParam;
use ics::properties::{
    Description, DtEnd, DtStart, Location, Method, Sequence, Status, Summary, TzName, URL,
};
use ics::{Event, ICalendar, Standard, TimeZone as VTimeZone};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::channel::Attachment;

const PRODID: &str = "-//herald//seminar//ZH";
const STAMP: &str = "%Y%m%dT%H%M%SZ";
const LOCAL: &str = "%Y%m%dT%H%M%S";

/// The calendar entry of the seminar in `content` (a run's snapshot, as
/// `Seminar::content` writes it) for one client; `None` when the snapshot
/// lacks its times.
pub fn calendar(content: &Value, client: &str, now: DateTime<Utc>) -> Option<String> {
    let name = content["name"].as_str()?;
    let starts = instant(&content["starts_at"])?;
    let ends = instant(&content["ends_at"])?;
    let tz: Tz = content["timezone"].as_str()?.parse().ok()?;
    let mut event = Event::new(uid(name, client), now.format(STAMP).to_string());
    let zone = fixed_offset(tz, starts.with_timezone(&Utc));
    match zone {
        Some(_) => {
            let local = |t: DateTime<FixedOffset>| t.with_timezone(&tz).format(LOCAL).to_string();
            let mut start = DtStart::new(local(starts));
            start.add(TzIDParam::new(tz.name()));
            let mut end = DtEnd::new(local(ends));
            end.add(TzIDParam::new(tz.name()));
            event.push(start);
            event.push(end);
        }
        None => {
            let utc = |t: DateTime<FixedOffset>| t.with_timezone(&Utc).format(STAMP).to_string();
            event.push(DtStart::new(utc(starts)));
            event.push(DtEnd::new(utc(ends)));
        }
    }
    event.push(Sequence::new(
        content["sequence"].as_u64().unwrap_or(0).to_string(),
    ));
    let cancelled = content["cancelled"].as_bool() == Some(true);
    event.push(if cancelled {
        Status::cancelled()
    } else {
        Status::confirmed()
    });
    event.push(Summary::new(ics::escape_text(
        content["title"].as_str().unwrap_or(name),
    )));
    let venue: Vec<&str> = ["name", "address"]
        .iter()
        .filter_map(|k| content["venue"][k].as_str())
        .collect();
    if !venue.is_empty() {
        event.push(Location::new(ics::escape_text(venue.join("，"))));
    }
    if let Some(url) = content["venue"]["online_url"].as_str() {
        event.push(URL::new(url.to_owned()));
    }
    if let Some(speaker) = content["speaker"]["name"].as_str() {
        let title = content["speaker"]["title"].as_str().unwrap_or("");
        event.push(Description::new(ics::escape_text(format!(
            "主讲：{title}{speaker}"
        ))));
    }
    let mut cal = ICalendar::new("2.0", PRODID);
    cal.push(Method::new("PUBLISH"));
    if let Some(offset) = zone {
        let hhmm = offset_text(offset);
        let mut standard = Standard::new("19700101T000000", hhmm.clone(), hhmm);
        if let Some(abbr) = abbreviation(tz, starts.with_timezone(&Utc)) {
            standard.push(TzName::new(abbr));
        }
        cal.add_timezone(VTimeZone::standard(tz.name(), standard));
    }
    cal.add_event(event);
    Some(cal.to_string())
}

/// The entry as an email attachment.
pub fn attachment(content: &Value, client: &str, now: DateTime<Utc>) -> Option<Attachment> {
    let text = calendar(content, client, now)?;
    Some(Attachment {
        filename: "seminar.ics".into(),
        content_type: "text/calendar; charset=utf-8; method=PUBLISH".into(),
        bytes: text.into_bytes(),
    })
}

/// Stable per seminar and client, and naming neither the client nor the
/// account number.
pub fn uid(seminar: &str, client: &str) -> String {
    let digest = Sha256::digest(format!("{seminar}\0{client}").as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{seminar}-{hex}@herald")
}

fn instant(v: &Value) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(v.as_str()?).ok()
}

/// The zone's offset when it has no daylight saving around `at` (the same
/// offset half a year either side); `None` when it does.
fn fixed_offset(tz: Tz, at: DateTime<Utc>) -> Option<FixedOffset> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let now = offset(at);
    let half_year = chrono::Duration::days(182);
    (offset(at - half_year) == now && offset(at + half_year) == now).then_some(now)
}

fn abbreviation(tz: Tz, at: DateTime<Utc>) -> Option<String> {
    let abbr = at.with_timezone(&tz).format("%Z").to_string();
    // chrono-tz gives a number where the zone has no abbreviation.
    (!abbr.starts_with(['+', '-'])).then_some(abbr)
}

fn offset_text(offset: FixedOffset) -> String {
    let secs = offset.local_minus_utc();
    let sign = if secs < 0 { '-' } else { '+' };
    let m = secs.abs() / 60;
    format!("{sign}{:02}{:02}", m / 60, m % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn content() -> Value {
        json!({
            "name": "talk",
            "title": "投资策略会, 2027",
            "starts_at": "2026-12-12T14:00:00+08:00",
            "ends_at": "2026-12-12T16:30:00+08:00",
            "timezone": "Asia/Shanghai",
            "venue": { "name": "报告厅", "address": "世纪大道1号" },
            "speaker": { "name": "陈立新", "title": "首席策略分析师" },
        })
    }

    #[test]
    fn a_zone_without_daylight_saving_gets_its_tzid_and_vtimezone() {
        let text = calendar(&content(), "c1", Utc::now()).unwrap();
        assert!(text.contains("METHOD:PUBLISH"), "{text}");
        assert!(
            text.contains("DTSTART;TZID=Asia/Shanghai:20261212T140000"),
            "{text}"
        );
        assert!(text.contains("TZOFFSETTO:+0800"), "{text}");
        assert!(text.contains("SUMMARY:投资策略会\\, 2027"), "{text}");
        assert!(text.contains("STATUS:CONFIRMED") && text.contains("SEQUENCE:0"));
    }

    #[test]
    fn a_zone_with_daylight_saving_is_given_in_utc() {
        let mut c = content();
        c["timezone"] = json!("Europe/Berlin");
        let text = calendar(&c, "c1", Utc::now()).unwrap();
        assert!(text.contains("DTSTART:20261212T060000Z"), "{text}");
        assert!(!text.contains("VTIMEZONE"), "{text}");
    }

    #[test]
    fn the_uid_is_stable_and_names_no_client() {
        assert_eq!(uid("talk", "0000000042"), uid("talk", "0000000042"));
        assert_ne!(uid("talk", "0000000042"), uid("talk", "0000000043"));
        assert!(!uid("talk", "0000000042").contains("0000000042"));
    }
}
