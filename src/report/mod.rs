//! The campaign report: the funnel from audience to response, by channel,
//! branch and advisor, with rates. Counted per delivery, so a client who
//! opened five times counts once; fetches flagged as mail scanners' are
//! counted apart and never as opens or clicks.

pub mod html;

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::runs::{ReportDelivery, ReportResponse, Run};
use crate::store::Store;

/// The responses a funnel counts, in funnel order.
const RESPONSES: [&str; 6] = [
    "delivered",
    "bounced",
    "opened",
    "clicked",
    "replied",
    "unsubscribed",
];

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Funnel {
    pub planned: u64,
    pub sent: u64,
    pub failed: u64,
    /// Per response kind: deliveries with at least one.
    pub responses: BTreeMap<String, u64>,
    /// Per response kind: the share of sent deliveries, 0 to 1.
    pub rates: BTreeMap<String, f64>,
}

impl Funnel {
    fn count(&mut self, d: &ReportDelivery, kinds: Option<&HashSet<&str>>) {
        self.planned += 1;
        match d.state.as_str() {
            "sent" => self.sent += 1,
            "failed" | "expired" | "cancelled" | "uncertain" => self.failed += 1,
            _ => {}
        }
        for kind in RESPONSES {
            if kinds.is_some_and(|k| k.contains(kind)) {
                *self.responses.entry(kind.to_owned()).or_default() += 1;
            }
        }
    }

    fn add(&mut self, o: &Funnel) {
        self.planned += o.planned;
        self.sent += o.sent;
        self.failed += o.failed;
        for (k, v) in &o.responses {
            *self.responses.entry(k.clone()).or_default() += v;
        }
    }

    fn finish(&mut self) {
        self.rates = RESPONSES
            .iter()
            .map(|k| {
                let n = self.responses.get(*k).copied().unwrap_or(0);
                let rate = if self.sent == 0 {
                    0.0
                } else {
                    n as f64 / self.sent as f64
                };
                ((*k).to_owned(), (rate * 10_000.0).round() / 10_000.0)
            })
            .collect();
    }

    pub fn response(&self, kind: &str) -> u64 {
        self.responses.get(kind).copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The campaign, and the runs counted (one, or all of the campaign's).
    pub campaign: String,
    pub runs: Vec<RunLine>,
    /// Clients the segment selected.
    pub audience: i64,
    /// Clients left out, per gate.
    pub suppressed: BTreeMap<String, i64>,
    pub funnel: Funnel,
    pub by_channel: BTreeMap<String, Funnel>,
    pub by_branch: BTreeMap<String, Funnel>,
    pub by_advisor: BTreeMap<String, Funnel>,
    /// Opens and clicks flagged as a scanner's, not counted above.
    pub flagged: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunLine {
    pub id: i64,
    pub key: String,
    pub launched_at: DateTime<Utc>,
    pub state: String,
}

/// The report of a run (`what` is its id) or of every run of a campaign.
pub async fn report(store: &dyn Store, what: &str) -> Result<Report> {
    let runs: Vec<Run> = match what.parse::<i64>() {
        Ok(id) => vec![store
            .run(id)
            .await?
            .with_context(|| format!("there is no run {id}"))?],
        Err(_) => {
            let mut runs: Vec<Run> = store
                .runs(10_000)
                .await?
                .into_iter()
                .filter(|r| r.campaign == what)
                .collect();
            anyhow::ensure!(
                !runs.is_empty(),
                "campaign '{what}' has no runs (herald runs lists them)"
            );
            runs.sort_by_key(|r| r.id);
            runs
        }
    };
    let mut report = Report {
        campaign: runs[0].campaign.clone(),
        ..Report::default()
    };
    for run in &runs {
        let counts = store.run_counts(run.id).await?;
        report.audience += run.audience;
        for (gate, n) in counts.suppressions {
            *report.suppressed.entry(gate).or_default() += n;
        }
        let (deliveries, responses) = store.report_rows(run).await?;
        tally(&mut report, &deliveries, &responses);
        report.runs.push(RunLine {
            id: run.id,
            key: run.run_key.clone(),
            launched_at: run.launched_at,
            state: run.state.as_str().to_owned(),
        });
    }
    for f in std::iter::once(&mut report.funnel)
        .chain(report.by_channel.values_mut())
        .chain(report.by_branch.values_mut())
        .chain(report.by_advisor.values_mut())
    {
        f.finish();
    }
    Ok(report)
}

/// Adds one run's deliveries and responses to the report.
fn tally(report: &mut Report, deliveries: &[ReportDelivery], responses: &[ReportResponse]) {
    // A reply or SMS opt-out carries no delivery: it counts for the
    // client's sent delivery in the run.
    let sent_to: HashMap<&str, i64> = deliveries
        .iter()
        .filter(|d| d.state == "sent")
        .map(|d| (d.client_id.as_str(), d.id))
        .collect();
    let mut kinds: HashMap<i64, HashSet<&str>> = HashMap::new();
    for r in responses {
        let Some(id) = r
            .delivery_id
            .or_else(|| sent_to.get(r.client_id.as_str()).copied())
        else {
            continue;
        };
        if !r.details.0["flagged"].is_null() {
            *report.flagged.entry(r.kind.clone()).or_default() += 1;
            continue;
        }
        kinds.entry(id).or_default().insert(r.kind.as_str());
    }
    let unknown = "(未填写)".to_owned();
    let mut run_funnel = Funnel::default();
    for d in deliveries {
        let k = kinds.get(&d.id);
        run_funnel.count(d, k);
        report
            .by_channel
            .entry(d.channel.clone())
            .or_default()
            .count(d, k);
        report
            .by_branch
            .entry(d.branch.clone().unwrap_or_else(|| unknown.clone()))
            .or_default()
            .count(d, k);
        report
            .by_advisor
            .entry(d.advisor.clone().unwrap_or_else(|| unknown.clone()))
            .or_default()
            .count(d, k);
    }
    report.funnel.add(&run_funnel);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delivery(id: i64, client: &str, state: &str, branch: &str) -> ReportDelivery {
        ReportDelivery {
            id,
            client_id: client.into(),
            channel: "email".into(),
            state: state.into(),
            branch: Some(branch.into()),
            advisor: None,
        }
    }

    fn response(delivery: Option<i64>, client: &str, kind: &str, flagged: bool) -> ReportResponse {
        ReportResponse {
            delivery_id: delivery,
            client_id: client.into(),
            kind: kind.into(),
            details: sqlx::types::Json(
                json!({ "flagged": flagged.then_some("a scanner's user agent") }),
            ),
        }
    }

    #[test]
    fn each_delivery_counts_once_and_scanners_apart() {
        let mut report = report_shell();
        let deliveries = [
            delivery(1, "a", "sent", "浦东"),
            delivery(2, "b", "sent", "浦东"),
            delivery(3, "c", "failed", "徐汇"),
        ];
        let responses = [
            response(Some(1), "a", "opened", false),
            response(Some(1), "a", "opened", false),
            response(Some(1), "a", "clicked", false),
            response(Some(2), "b", "opened", true),
            response(None, "b", "replied", false),
            response(None, "c", "replied", false),
        ];
        tally(&mut report, &deliveries, &responses);
        report.funnel.finish();
        let f = &report.funnel;
        assert_eq!((f.planned, f.sent, f.failed), (3, 2, 1));
        assert_eq!(
            (
                f.response("opened"),
                f.response("clicked"),
                f.response("replied")
            ),
            (1, 1, 1)
        );
        assert_eq!(f.rates["opened"], 0.5);
        assert_eq!(report.flagged["opened"], 1);
        assert_eq!(report.by_branch["浦东"].sent, 2);
        assert_eq!(report.by_branch["徐汇"].failed, 1);
        assert_eq!(report.by_advisor["(未填写)"].planned, 3);
    }

    fn report_shell() -> Report {
        Report {
            campaign: "x".into(),
            ..Report::default()
        }
    }
}
