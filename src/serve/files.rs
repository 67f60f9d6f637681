//! The campaign files `herald serve` schedules from: loaded and validated
//! as a whole, and swapped in only when the whole set is valid, so that a
//! half-edited file never changes what runs.

use std::hash::{Hash, Hasher};
use std::path::Path;

use chrono::NaiveDate;

use crate::campaign::file;
use crate::campaign::validate::validate;
use crate::campaign::Campaign;
use crate::channel::providers::Providers;
use crate::config::Config;
use crate::schedule::Calendar;
use crate::seminar::Seminar;

/// The folders whose files make up what herald sends.
const WATCHED: [&str; 5] = ["campaigns", "rules", "templates", "calendars", "seminars"];

pub struct FileSet {
    pub campaigns: Vec<Campaign>,
    /// The seminar each seminar invitation campaign invites to, by campaign.
    pub seminars: std::collections::HashMap<String, Seminar>,
    pub calendar: Calendar,
    /// The files' stamp when they were read: a change means a reload.
    pub stamp: u64,
}

impl FileSet {
    /// Reads and checks every campaign (with its rule, templates and
    /// content); every problem of every campaign when any is invalid.
    pub async fn load(config: &Config, today: NaiveDate) -> Result<FileSet, Vec<String>> {
        let stamp = stamp(&config.base_dir);
        let calendar = config.calendar().map_err(|p| vec![p.to_string()])?;
        let dir = config.base_dir.join("campaigns");
        let paths = file::list(&dir).map_err(|e| vec![format!("{}: {e}", dir.display())])?;
        let providers = Providers::from_config(config);
        let mut campaigns = Vec::new();
        let mut seminars = std::collections::HashMap::new();
        let mut errors = Vec::new();
        for path in &paths {
            let report = validate(path, config, &providers, today).await;
            if report.errors() > 0 {
                errors.extend(
                    report
                        .problems
                        .iter()
                        .filter(|p| p.is_error())
                        .map(ToString::to_string),
                );
                continue;
            }
            let campaign = Campaign::load(path).and_then(|c| match c.seminar_path() {
                Some(s) => {
                    seminars.insert(c.name.clone(), Seminar::load(&s, &c.rules_dir())?);
                    Ok(c)
                }
                None => Ok(c),
            });
            match campaign {
                Ok(c) => campaigns.push(c),
                Err(ps) => errors.extend(ps.iter().map(ToString::to_string)),
            }
        }
        if errors.is_empty() {
            Ok(FileSet {
                campaigns,
                seminars,
                calendar,
                stamp,
            })
        } else {
            Err(errors)
        }
    }
}

/// A cheap fingerprint of the watched folders: every file's path, size and
/// modification time. Reading it every few seconds costs a directory walk.
pub fn stamp(base: &Path) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for dir in WATCHED {
        walk(&base.join(dir), &mut h);
    }
    h.finish()
}

fn walk(dir: &Path, h: &mut impl Hasher) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            walk(&path, h);
            continue;
        }
        path.hash(h);
        meta.len().hash(h);
        meta.modified().ok().hash(h);
    }
}
