//! The restricted list: stock codes research may not cover over a range of
//! dates (quiet periods, deals the firm advises on). A file of
//! `code,from,to,reason` rows; a research report on a listed stock stops
//! the whole run.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::client::types::StockCode;

/// One restricted stock and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    pub code: StockCode,
    pub from: NaiveDate,
    /// Inclusive; `None` until lifted.
    pub to: Option<NaiveDate>,
    pub reason: String,
    /// Where it is written, for the error.
    pub line: usize,
}

/// The restricted list as loaded.
#[derive(Debug, Clone, Default)]
pub struct RestrictedList {
    pub path: PathBuf,
    pub entries: Vec<Restriction>,
}

impl Restriction {
    /// `restricted.csv:2, 静默期, from 2026-11-01 to 2026-11-30`: where and why.
    pub fn describe(&self, list: &RestrictedList) -> String {
        let reason = if self.reason.is_empty() {
            String::new()
        } else {
            format!(", {}", self.reason)
        };
        let to = self.to.map_or(String::new(), |t| format!(" to {t}"));
        format!(
            "{}:{}{reason}, from {}{to}",
            list.path.display(),
            self.line,
            self.from
        )
    }
}

impl RestrictedList {
    /// Reads `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<RestrictedList, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RestrictedList {
                    path: path.to_path_buf(),
                    entries: Vec::new(),
                })
            }
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
        };
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<RestrictedList, String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut entries = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| format!("{}: {e}", path.display()))?;
            if record.get(0).is_some_and(|f| f.starts_with('#')) {
                continue;
            }
            let line = record.position().map_or(0, |p| p.line() as usize);
            let at = |field: &str, m: String| format!("{}:{line}: '{field}': {m}", path.display());
            let get = |i: usize| record.get(i).unwrap_or("").to_owned();
            let code = StockCode::parse(&get(0)).map_err(|e| at("code", e.0))?;
            let date = |i: usize, field: &str| -> Result<Option<NaiveDate>, String> {
                match get(i).as_str() {
                    "" => Ok(None),
                    s => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .map(Some)
                        .map_err(|_| at(field, format!("'{s}' is not a date (YYYY-MM-DD)"))),
                }
            };
            let from = date(1, "from")?.ok_or_else(|| at("from", "is missing".into()))?;
            let to = date(2, "to")?;
            if to.is_some_and(|to| to < from) {
                return Err(at("to", "is before 'from'".into()));
            }
            entries.push(Restriction {
                code,
                from,
                to,
                reason: get(3),
                line,
            });
        }
        Ok(RestrictedList {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The first restriction on any of `stocks` in force on `day`.
    pub fn blocking(&self, stocks: &[StockCode], day: NaiveDate) -> Option<&Restriction> {
        self.entries
            .iter()
            .find(|r| stocks.contains(&r.code) && r.from <= day && r.to.is_none_or(|to| day <= to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_stock_is_blocked_within_its_dates_only() {
        let list = RestrictedList::parse(
            Path::new("restricted.csv"),
            "code,from,to,reason\n# quiet period\n600519,2026-11-20,2026-11-30,定期报告静默期\n000001,2026-01-01,,投行项目\n",
        )
        .unwrap();
        let moutai = [StockCode::parse("600519").unwrap()];
        let hit = list.blocking(&moutai, day("2026-11-25")).unwrap();
        assert_eq!(hit.reason, "定期报告静默期");
        assert_eq!(hit.line, 3);
        assert!(list.blocking(&moutai, day("2026-12-01")).is_none());
        let pingan = [StockCode::parse("000001").unwrap()];
        assert!(list.blocking(&pingan, day("2030-01-01")).is_some());
    }

    #[test]
    fn a_bad_row_is_named_with_its_line_and_field() {
        let err = RestrictedList::parse(
            Path::new("restricted.csv"),
            "code,from,to,reason\n600519,2026-11-31,,x\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "restricted.csv:2: 'from': '2026-11-31' is not a date (YYYY-MM-DD)"
        );
        assert!(
            RestrictedList::load(Path::new("/nonexistent/restricted.csv"))
                .unwrap()
                .entries
                .is_empty()
        );
    }
}
