//! The seminar report: from invitation to the door. Invited, accepted
//! (holding a seat), wait-listed, declined, promoted, attended and
//! no-shows, in all and by wave, branch and advisor; as JSON or one
//! self-contained HTML page in Chinese.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Seminar;
use crate::store::runs::DeliveryState;
use crate::store::seminars::Standing;
use crate::store::Store;

/// Counts of clients at each step.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Funnel {
    pub invited: u64,
    pub accepted: u64,
    pub waitlisted: u64,
    pub declined: u64,
    pub promoted: u64,
    pub attended: u64,
    /// Held a seat and did not come; counted once the seminar has ended.
    pub no_shows: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WaveLine {
    pub run: i64,
    pub state: String,
    pub stop_reason: Option<String>,
    pub funnel: Funnel,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeminarReport {
    pub seminar: String,
    pub title: String,
    pub capacity: i64,
    pub starts_at: String,
    pub totals: Funnel,
    pub by_wave: BTreeMap<String, WaveLine>,
    pub by_branch: BTreeMap<String, Funnel>,
    pub by_advisor: BTreeMap<String, Funnel>,
}

/// What one client did.
#[derive(Default)]
struct Path {
    wave: Option<String>,
    standing: Option<Standing>,
    promoted: bool,
    attended: bool,
}

/// The report of `seminar`, whose invitations `campaign` sends.
pub async fn build(
    store: &dyn Store,
    seminar: &Seminar,
    campaign: Option<&str>,
    now: DateTime<Utc>,
) -> Result<SeminarReport> {
    let mut people: HashMap<String, Path> = HashMap::new();
    let mut runs = BTreeMap::new();
    if let Some(campaign) = campaign {
        for w in &seminar.waves {
            let Some(run) = store.run_by_key(campaign, &w.name).await? else {
                continue;
            };
            for d in store
                .deliveries_in(run.id, DeliveryState::Sent, u32::MAX)
                .await?
            {
                people.entry(d.client_id).or_default().wave = Some(w.name.clone());
            }
            runs.insert(w.name.clone(), run);
        }
        if let Some(run) = store.run_by_key(campaign, "notice:promoted").await? {
            for d in store
                .deliveries_in(run.id, DeliveryState::Sent, u32::MAX)
                .await?
            {
                people.entry(d.client_id).or_default().promoted = true;
            }
        }
    }
    for a in store.answers(&seminar.name).await? {
        people.entry(a.client_id).or_default().standing =
            Some(Standing::of(a.position, seminar.capacity));
    }
    for c in store.attended(&seminar.name).await? {
        people.entry(c).or_default().attended = true;
    }
    let ids: Vec<String> = people.keys().cloned().collect();
    let mut whose = HashMap::new();
    for chunk in ids.chunks(1000) {
        for c in store.clients_by_ids(chunk).await? {
            let c = c.client;
            whose.insert(c.id.to_string(), (c.branch.clone(), c.advisor.clone()));
        }
    }
    let over = now > seminar.ends_at;
    let mut report = SeminarReport {
        seminar: seminar.name.clone(),
        title: seminar.title.clone(),
        capacity: seminar.capacity,
        starts_at: seminar
            .starts_at
            .with_timezone(&seminar.timezone)
            .to_rfc3339(),
        totals: Funnel::started(over),
        by_wave: runs
            .into_iter()
            .map(|(name, run)| {
                let line = WaveLine {
                    run: run.id,
                    state: run.state.as_str().to_owned(),
                    stop_reason: run.stop_reason.clone(),
                    funnel: Funnel::started(over),
                };
                (name, line)
            })
            .collect(),
        by_branch: BTreeMap::new(),
        by_advisor: BTreeMap::new(),
    };
    let unknown = "（未登记）".to_owned();
    for (id, p) in &people {
        report.totals.count(p);
        if let Some(line) = p.wave.as_ref().and_then(|w| report.by_wave.get_mut(w)) {
            line.funnel.count(p);
        }
        let (branch, advisor) = whose.get(id).cloned().unwrap_or_default();
        for (map, key) in [
            (&mut report.by_branch, branch),
            (&mut report.by_advisor, advisor),
        ] {
            map.entry(key.unwrap_or_else(|| unknown.clone()))
                .or_insert_with(|| Funnel::started(over))
                .count(p);
        }
    }
    Ok(report)
}

impl Funnel {
    fn started(over: bool) -> Funnel {
        Funnel {
            no_shows: over.then_some(0),
            ..Funnel::default()
        }
    }

    fn count(&mut self, p: &Path) {
        let seated = matches!(p.standing, Some(Standing::Seated { .. }));
        self.invited += u64::from(p.wave.is_some());
        self.accepted += u64::from(seated);
        self.waitlisted += u64::from(matches!(p.standing, Some(Standing::Waitlisted { .. })));
        self.declined += u64::from(matches!(p.standing, Some(Standing::Declined)));
        self.promoted += u64::from(p.promoted);
        self.attended += u64::from(p.attended);
        if let Some(n) = &mut self.no_shows {
            *n += u64::from(seated && !p.attended);
        }
    }

    fn cells(&self) -> [(&'static str, Option<u64>); 7] {
        [
            ("邀请", Some(self.invited)),
            ("确认席位", Some(self.accepted)),
            ("候补", Some(self.waitlisted)),
            ("不参加", Some(self.declined)),
            ("候补转正", Some(self.promoted)),
            ("出席", Some(self.attended)),
            ("未到场", self.no_shows),
        ]
    }
}

/// One self-contained page: the funnel, then each breakdown as a table.
pub fn html(r: &SeminarReport) -> String {
    let esc = handlebars::html_escape;
    let mut out = crate::report::html::head(&format!("{} 讲座报告", esc(&r.title)));
    let _ = write!(
        out,
        r#"<p>{starts}　席位 {cap}</p><div class="cards">"#,
        starts = esc(&r.starts_at),
        cap = r.capacity
    );
    for (label, n) in r.totals.cells() {
        let n = n.map_or("—".to_owned(), |n| n.to_string());
        let _ = write!(out, r#"<div class="card">{label}<b>{n}</b></div>"#);
    }
    out.push_str("</div>");
    let waves: BTreeMap<String, Funnel> = r
        .by_wave
        .iter()
        .map(|(k, w)| (format!("{k}（{}）", w.state), w.funnel.clone()))
        .collect();
    for (title, rows) in [
        ("按批次", &waves),
        ("按营业部", &r.by_branch),
        ("按客户经理", &r.by_advisor),
    ] {
        table(&mut out, title, rows);
    }
    out.push_str("</body></html>\n");
    out
}

fn table(out: &mut String, title: &str, rows: &BTreeMap<String, Funnel>) {
    let _ = write!(out, "<h2>{title}</h2><table><tr><th></th>");
    for (label, _) in Funnel::default().cells() {
        let _ = write!(out, "<th>{label}</th>");
    }
    out.push_str("</tr>");
    for (name, f) in rows {
        let _ = write!(out, "<tr><td>{}</td>", handlebars::html_escape(name));
        for (_, n) in f.cells() {
            let _ = write!(
                out,
                "<td>{}</td>",
                n.map_or("—".to_owned(), |n| n.to_string())
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_counts_once_at_each_step_they_reached() {
        let mut f = Funnel::started(true);
        let seated = Path {
            wave: Some("vip".into()),
            standing: Some(Standing::Seated { position: 1 }),
            promoted: true,
            attended: false,
        };
        let came = Path {
            wave: Some("vip".into()),
            standing: Some(Standing::Seated { position: 2 }),
            attended: true,
            ..Path::default()
        };
        let waiting = Path {
            wave: Some("wide".into()),
            standing: Some(Standing::Waitlisted { place: 1 }),
            ..Path::default()
        };
        for p in [&seated, &came, &waiting] {
            f.count(p);
        }
        assert_eq!(
            f,
            Funnel {
                invited: 3,
                accepted: 2,
                waitlisted: 1,
                declined: 0,
                promoted: 1,
                attended: 1,
                no_shows: Some(1),
            }
        );
        let mut before = Funnel::started(false);
        before.count(&seated);
        assert_eq!(before.no_shows, None, "no-shows only once it has ended");
    }
}
