//! The scheduler: on each tick, plans the run of every campaign whose
//! trigger is due. The run's key is its fire time, so a time already
//! planned (by this instance before a restart, or by another instance) is
//! never planned again: the planner's unique key decides. A seminar's
//! invitation campaign fires at its waves' send times instead, each wave a
//! run keyed by its name.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::files::FileSet;
use crate::campaign::Campaign;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::run::plan::{plan, PlanOptions};
use crate::schedule::Trigger;
use crate::seminar::Seminar;
use crate::store::Store;

/// Who the audit log says launched a scheduled run.
pub const SCHEDULER: &str = "scheduler";

/// What a tick did for one campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// A new run, with its id and planned deliveries.
    Planned {
        campaign: String,
        key: String,
        run: i64,
        planned: usize,
    },
    /// The run for this fire time existed already.
    Existing { campaign: String, key: String },
    /// Planning failed; the next tick tries again while within grace.
    Failed {
        campaign: String,
        key: String,
        error: String,
    },
}

pub struct Scheduler {
    store: Arc<dyn Store>,
    config: Config,
    metrics: Arc<Metrics>,
    /// Fire times known to be planned: saves a query per tick.
    done: HashSet<(String, String)>,
    /// Calendar problems already logged, once per campaign and day.
    warned: HashMap<String, chrono::NaiveDate>,
    /// The stamp of the files whose seminars were last recorded.
    synced: Option<u64>,
}

impl Scheduler {
    pub fn new(store: Arc<dyn Store>, config: Config, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            config,
            metrics,
            done: HashSet::new(),
            warned: HashMap::new(),
            synced: None,
        }
    }

    /// Plans what is due at `now` among the campaigns of `files`.
    pub async fn tick(&mut self, files: &FileSet, now: DateTime<Utc>) -> Vec<Fired> {
        let calendar = &files.calendar;
        let grace = chrono::Duration::from_std(self.config.schedule.grace).unwrap_or_default();
        let mut fired = Vec::new();
        self.sync_seminars(files, now).await;
        self.remind(files, now, grace).await;
        for c in &files.campaigns {
            let due = match files.seminars.get(&c.name) {
                Some(seminar) => due_waves(seminar, now, grace),
                None => self
                    .due_trigger(c, calendar, now, grace)
                    .into_iter()
                    .collect(),
            };
            for (key, fire) in due {
                if !self.done.insert((c.name.clone(), key.clone())) {
                    continue;
                }
                let outcome = self.plan(c, &key, fire, now).await;
                if matches!(outcome, Fired::Failed { .. }) {
                    self.done.remove(&(c.name.clone(), key));
                }
                fired.push(outcome);
            }
        }
        fired
    }

    /// Records the seminars once per version of the files: a change of
    /// time, venue or a cancellation tells those who accepted.
    async fn sync_seminars(&mut self, files: &FileSet, now: DateTime<Utc>) {
        if self.synced == Some(files.stamp) {
            return;
        }
        // The files changed on disk since this set was read: the newer set
        // is on its way, and recording this one now could undo a `herald
        // seminar sync` of the newer file, raising the version twice.
        if super::files::stamp(&self.config.base_dir) != files.stamp {
            return;
        }
        let mut ok = true;
        for (campaign, seminar) in &files.seminars {
            if let Err(e) = crate::seminar::notice::sync(&*self.store, campaign, seminar, now).await
            {
                ok = false;
                tracing::error!(seminar = %seminar.name, error = %format!("{e:#}"), "the seminar could not be recorded");
            }
        }
        if ok {
            self.synced = Some(files.stamp);
        }
    }

    /// Queues each seminar reminder whose time has come, within grace;
    /// a reminder run holds one delivery per client, so a repeat is a no-op.
    async fn remind(&mut self, files: &FileSet, now: DateTime<Utc>, grace: chrono::Duration) {
        let secret = self.config.tracking.as_ref().map(|t| &t.secret);
        for (campaign, seminar) in &files.seminars {
            if seminar.cancelled {
                continue;
            }
            for r in seminar
                .reminders
                .iter()
                .filter(|r| r.send_at <= now && now < r.send_at + grace)
            {
                let key = (campaign.clone(), format!("notice:reminder:{}", r.name));
                if self.done.contains(&key) {
                    continue;
                }
                match crate::seminar::notice::remind(
                    &*self.store,
                    campaign,
                    seminar,
                    r,
                    secret,
                    now,
                )
                .await
                {
                    Ok(_) => {
                        self.done.insert(key);
                    }
                    Err(e) => {
                        tracing::error!(seminar = %seminar.name, reminder = %r.name, error = %format!("{e:#}"), "reminders could not be queued")
                    }
                }
            }
        }
    }

    /// The campaign trigger's fire time due now, with its run key.
    fn due_trigger(
        &mut self,
        c: &Campaign,
        calendar: &crate::schedule::Calendar,
        now: DateTime<Utc>,
        grace: chrono::Duration,
    ) -> Option<(String, DateTime<Utc>)> {
        let trigger = &c.rules.trigger;
        if *trigger == Trigger::Manual {
            return None;
        }
        match trigger.next(now, calendar) {
            Ok(next) => self.metrics.next_fire(&c.name, next),
            Err(e) => self.warn_once(&c.name, now, &e.to_string()),
        }
        match trigger.due(now, grace, calendar) {
            Ok(Some(fire)) => Some((trigger.run_key(fire), fire)),
            Ok(None) => None,
            Err(e) => {
                self.warn_once(&c.name, now, &e.to_string());
                None
            }
        }
    }

    async fn plan(
        &self,
        c: &Campaign,
        key: &str,
        fire: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Fired {
        let opts = PlanOptions {
            key: Some(key.to_owned()),
            by: Some(SCHEDULER.to_owned()),
            dry_run: false,
            now,
            today: Some(fire.with_timezone(&self.config.timezone).date_naive()),
            scheduled_at: Some(fire),
        };
        let (campaign, key) = (c.name.clone(), key.to_owned());
        match plan(&*self.store, &self.config, &c.name, &opts).await {
            Ok(report) if report.new => {
                let by_channel: Vec<(String, usize)> =
                    report.by_channel.clone().into_iter().collect();
                self.metrics.run_planned(
                    &c.name,
                    &report.run.kind,
                    &by_channel,
                    report.rule_errors,
                );
                if let Some(reason) = &report.run.stop_reason {
                    tracing::warn!(campaign = %c.name, run = report.run.id, key = %key, reason = %reason, "scheduled run stopped");
                }
                tracing::info!(
                    campaign = %c.name,
                    run = report.run.id,
                    key = %key,
                    planned = report.planned,
                    audience = report.audience,
                    state = %report.run.state.as_str(),
                    "scheduled run planned"
                );
                Fired::Planned {
                    campaign,
                    key,
                    run: report.run.id,
                    planned: report.planned,
                }
            }
            Ok(_) => Fired::Existing { campaign, key },
            Err(e) => {
                let error = format!("{e:#}");
                tracing::error!(campaign = %c.name, key = %key, error = %error, "scheduled run could not be planned");
                Fired::Failed {
                    campaign,
                    key,
                    error,
                }
            }
        }
    }

    fn warn_once(&mut self, campaign: &str, now: DateTime<Utc>, message: &str) {
        let today = now.with_timezone(&self.config.timezone).date_naive();
        if self.warned.insert(campaign.to_owned(), today) != Some(today) {
            tracing::error!(
                campaign,
                error = message,
                "cannot tell whether the schedule fires"
            );
        }
    }
}

/// A seminar's waves whose send time has come, within grace: each is a run
/// keyed by the wave's name.
fn due_waves(
    seminar: &Seminar,
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> Vec<(String, DateTime<Utc>)> {
    seminar
        .waves
        .iter()
        .filter(|w| w.send_at <= now && now < w.send_at + grace)
        .map(|w| (w.name.clone(), w.send_at))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_wave_is_due_from_its_send_time_until_grace_runs_out() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let seminar = Seminar::load(
            &root.join("seminars/strategy_2027.toml"),
            &root.join("rules"),
        )
        .unwrap();
        let vip = seminar.wave("vip").unwrap().send_at;
        let grace = chrono::Duration::hours(1);
        let keys = |now| -> Vec<String> {
            due_waves(&seminar, now, grace)
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert!(keys(vip - chrono::Duration::seconds(1)).is_empty());
        assert_eq!(keys(vip), ["vip"]);
        assert_eq!(keys(vip + chrono::Duration::minutes(59)), ["vip"]);
        assert!(keys(vip + grace).is_empty(), "missed beyond grace");
        let wide = seminar.wave("wide").unwrap().send_at;
        assert_eq!(keys(wide), ["wide"]);
    }
}
