//! Problems found while checking the files users write (campaigns,
//! templates, content), each located by file, line and the key or name at
//! fault, so that a check can report all of them at once.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One finding: `file:line:col: key 'x': message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the file as a whole.
    pub line: usize,
    pub column: usize,
    /// The key (campaign files) or name (templates) at fault, if any.
    pub subject: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn error(file: &Path, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            subject: None,
            message: message.into(),
        }
    }

    pub fn warning(file: &Path, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, message)
        }
    }

    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = line;
        self.column = column;
        self
    }

    pub fn about(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        if self.severity == Severity::Warning {
            write!(f, ": warning")?;
        }
        if let Some(s) = &self.subject {
            write!(f, ": '{s}'")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for Problem {}

/// The 1-based line and column of byte `offset` in `source`.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The known name `name` is probably a misspelling of, if one is close.
/// One slip of the keyboard (a letter added, dropped, changed, or two
/// swapped) counts even in a short name, where jaro-winkler scores low
/// (`ulr` against `url`: 0.56); it is preferred to a merely similar name.
pub fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let long_enough = name.chars().count() >= 3;
    known
        .iter()
        .map(|k| {
            let slip = long_enough && strsim::osa_distance(name, k) == 1;
            (slip, strsim::jaro_winkler(name, k), *k)
        })
        .filter(|&(slip, score, _)| slip || score > 0.8)
        .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map(|(_, _, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_names_file_line_and_subject() {
        let p = Problem::error(Path::new("campaigns/x.toml"), "unknown key")
            .at(3, 1)
            .about("chanels");
        assert_eq!(
            p.to_string(),
            "campaigns/x.toml:3:1: 'chanels': unknown key"
        );
        let w = Problem::warning(Path::new("a.toml"), "no DKIM key");
        assert_eq!(w.to_string(), "a.toml: warning: no DKIM key");
    }

    #[test]
    fn a_misspelt_name_finds_the_known_one() {
        let known = ["url", "file", "timeout_secs", "requires_approval"];
        assert_eq!(closest("ulr", &known), Some("url"), "two letters swapped");
        assert_eq!(closest("fiel", &known), Some("file"));
        assert_eq!(
            closest("requires_aproval", &known),
            Some("requires_approval")
        );
        assert_eq!(closest("timeout", &known), Some("timeout_secs"));
        assert_eq!(closest("ui", &known), None, "two letters off");
        assert_eq!(closest("colour", &known), None);
    }

    #[test]
    fn offsets_become_lines_and_columns() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, src.find('=').unwrap()), (1, 3));
        assert_eq!(line_col(src, src.rfind('=').unwrap()), (2, 4));
    }
}
