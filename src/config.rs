//! `herald.toml`: one typed struct, loaded once and validated at start with
//! messages that name the file and key.

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Deserialize;

use crate::store::DatabaseUrl;
use crate::time::{parse_tz, FirmTime};

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "herald.toml";

/// herald's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: DatabaseUrl,
    /// The firm's time zone: what "today" means.
    pub timezone: Tz,
    /// How long a risk assessment stays valid.
    pub risk_assessment_valid_days: u32,
    /// The folder the config file is in; relative paths are read from here.
    pub base_dir: PathBuf,
}

/// The file as written; every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    database_url: Option<String>,
    timezone: Option<String>,
    #[serde(default)]
    compliance: ComplianceFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComplianceFile {
    risk_assessment_valid_days: Option<u32>,
}

/// A configuration problem, naming the file and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Config {
    /// Loads `path` (or `herald.toml` in the working folder when it exists),
    /// then applies `database_url` from the command line or environment.
    pub fn load(path: Option<&Path>, database_url: Option<String>) -> Result<Self, ConfigError> {
        let (file, source_name, base_dir) = match path {
            Some(p) => (Some(read(p)?), p.display().to_string(), parent_dir(p)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => (
                Some(read(Path::new(DEFAULT_CONFIG_FILE))?),
                DEFAULT_CONFIG_FILE.to_owned(),
                PathBuf::from("."),
            ),
            None => (None, "(defaults)".to_owned(), PathBuf::from(".")),
        };
        let parsed: ConfigFile = match &file {
            Some(text) => toml::from_str(text).map_err(|e| ConfigError::Invalid {
                path: source_name.clone(),
                message: one_line(&e.to_string()),
            })?,
            None => ConfigFile::default(),
        };
        Self::from_file(parsed, database_url, base_dir, &source_name)
    }

    fn from_file(
        file: ConfigFile,
        database_url: Option<String>,
        base_dir: PathBuf,
        source_name: &str,
    ) -> Result<Self, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: source_name.to_owned(),
            message: format!("key '{key}': {message}"),
        };
        let timezone = parse_tz(file.timezone.as_deref().unwrap_or("Asia/Shanghai"))
            .map_err(|e| invalid("timezone", e.0))?;
        let url = database_url
            .or(file.database_url)
            .map(DatabaseUrl::new)
            .unwrap_or_else(DatabaseUrl::default_sqlite);
        if url.backend().is_none() {
            return Err(invalid(
                "database_url",
                format!("{url} is not a sqlite:// or postgres:// URL"),
            ));
        }
        let valid_days = file.compliance.risk_assessment_valid_days.unwrap_or(730);
        if valid_days == 0 {
            return Err(invalid(
                "compliance.risk_assessment_valid_days",
                "must be at least 1".into(),
            ));
        }
        Ok(Self {
            database_url: url,
            timezone,
            risk_assessment_valid_days: valid_days,
            base_dir,
        })
    }

    /// Where herald keeps files it can rebuild (the segment snapshot).
    pub fn cache_dir(&self) -> PathBuf {
        self.base_dir.join(".herald-cache")
    }

    /// The firm's clock.
    pub fn firm_time(&self) -> FirmTime {
        FirmTime::new(self.timezone)
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// toml's errors span several lines with a snippet; keep the message on one
/// line so the CLI's "one-line reason" holds.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && *l != "^")
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path), None)
    }

    #[test]
    fn defaults_need_no_file() {
        let c = load_text("").unwrap();
        assert_eq!(c.database_url.expose(), "sqlite://herald.db");
        assert_eq!(c.timezone, chrono_tz::Asia::Shanghai);
        assert_eq!(c.risk_assessment_valid_days, 730);
    }

    #[test]
    fn a_misspelt_key_is_named() {
        let err = load_text("databse_url = \"sqlite://x.db\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("databse_url"), "{err}");
        assert!(err.contains("herald.toml"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = load_text("timezone = \"Mars/Olympus\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key 'timezone'"), "{err}");
        let err = load_text("database_url = \"mysql://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key 'database_url'"), "{err}");
    }

    #[test]
    fn the_command_line_url_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.toml");
        std::fs::write(&path, "database_url = \"sqlite://a.db\"\n").unwrap();
        let c = Config::load(Some(&path), Some("postgres://u:p@h/db".into())).unwrap();
        assert_eq!(c.database_url.expose(), "postgres://u:p@h/db");
    }
}
