//! A campaign's content: the JSON a bulletin's market data, a report's
//! metadata or a seminar's particulars come in. Loaded once per run from a
//! file or over HTTP; a failure stops the run rather than sending empty
//! messages. The shipped kinds' required fields are checked here.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::file::{Campaign, ContentSource, Kind};
use crate::diagnostic::Problem;

/// Why content could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: not JSON: {message}")]
    Json {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{url}: {message}")]
    Fetch { url: String, message: String },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Seminar(Vec<Problem>),
}

impl ContentError {
    pub fn to_problem(&self, campaign: &Path) -> Problem {
        match self {
            ContentError::Json {
                origin,
                line,
                column,
                message,
            } if !origin.starts_with("http") => {
                Problem::error(Path::new(origin), format!("not JSON: {message}")).at(*line, *column)
            }
            ContentError::Seminar(ps) if ps.len() == 1 => ps[0].clone(),
            other => Problem::error(campaign, other.to_string()).about("content"),
        }
    }
}

/// Loads the campaign's content; a campaign without a source has `{}`.
pub async fn load(campaign: &Campaign) -> Result<Value, ContentError> {
    match &campaign.content {
        None => Ok(Value::Object(Default::default())),
        Some(ContentSource::File(file)) => {
            let path = campaign.content_path(file);
            let text =
                tokio::fs::read_to_string(&path)
                    .await
                    .map_err(|source| ContentError::Read {
                        path: path.clone(),
                        source,
                    })?;
            parse(&path.display().to_string(), &text)
        }
        Some(ContentSource::Url { url, timeout_secs }) => fetch(url, *timeout_secs).await,
        Some(ContentSource::Seminar(_)) => {
            let path = campaign.seminar_path().unwrap_or_default();
            let seminar = crate::seminar::Seminar::load(&path, &campaign.rules_dir())
                .map_err(ContentError::Seminar)?;
            Ok(seminar.content(seminar.capacity))
        }
    }
}

fn parse(origin: &str, text: &str) -> Result<Value, ContentError> {
    serde_json::from_str(text).map_err(|e| ContentError::Json {
        origin: origin.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// The most content herald accepts: a bulletin is kilobytes, not megabytes.
const MAX_FETCH_BYTES: usize = 8 << 20;

async fn fetch(url: &url::Url, timeout_secs: u64) -> Result<Value, ContentError> {
    let fail = |message: String| ContentError::Fetch {
        url: url.to_string(),
        message,
    };
    let client = crate::http::client(std::time::Duration::from_secs(timeout_secs));
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| fail(describe(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("the server answered HTTP {status}")));
    }
    let body = response.bytes().await.map_err(|e| fail(describe(&e)))?;
    if body.len() > MAX_FETCH_BYTES {
        return Err(fail(format!(
            "{} bytes is more than content may be",
            body.len()
        )));
    }
    let text =
        String::from_utf8(body.to_vec()).map_err(|_| fail("the body is not UTF-8".into()))?;
    parse(url.as_str(), &text)
}

/// A timeout or a refused connection said plainly; other failures with
/// their causes.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        crate::http::describe(e)
    }
}

/// What a shipped kind's content must carry. A research report lacking a
/// compliance item (analyst certificate, release time, …) must not go out.
pub fn check(kind: &Kind, content: &Value, origin: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut need = |field: &str, ok: bool, what: &str| {
        if !ok {
            problems.push(Problem::error(origin, format!("content: {what}")).about(field));
        }
    };
    let text = |v: &Value| v.as_str().is_some_and(|s| !s.trim().is_empty());
    let instant = |v: &Value| {
        v.as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
    };
    let url = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.starts_with("https://") || s.starts_with("http://"))
    };
    match kind {
        Kind::ResearchReport => {
            need("title", text(&content["title"]), "a report needs its title");
            need(
                "stock.code",
                text(&content["stock"]["code"]),
                "the covered stock's code is missing",
            );
            need(
                "stock.name",
                text(&content["stock"]["name"]),
                "the covered stock's name is missing",
            );
            need(
                "rating",
                text(&content["rating"]),
                "a report needs its rating",
            );
            need(
                "target_price",
                content["target_price"].is_number(),
                "a report needs its target price (a number)",
            );
            need(
                "release_at",
                instant(&content["release_at"]),
                "a report needs its release time (RFC 3339, with offset)",
            );
            need(
                "summary",
                text(&content["summary"]),
                "a report needs its summary",
            );
            need(
                "pdf_url",
                url(&content["pdf_url"]),
                "a report needs the link to its PDF",
            );
            check_analysts(&content["analysts"], &mut need);
        }
        Kind::MarketBulletin => {
            need(
                "date",
                content["date"]
                    .as_str()
                    .is_some_and(|d| crate::time::parse_date(d).is_ok()),
                "a bulletin needs its date (YYYY-MM-DD)",
            );
            let indices = content["indices"].as_array();
            need(
                "indices",
                indices.is_some_and(|a| !a.is_empty()),
                "a bulletin needs the day's indices",
            );
            for (i, index) in indices.into_iter().flatten().enumerate() {
                let ok = text(&index["name"])
                    && index["close"].is_number()
                    && index["change_pct"].is_number();
                need(
                    &format!("indices[{i}]"),
                    ok,
                    "an index needs name, close and change_pct",
                );
            }
        }
        Kind::SeminarInvitation => {
            need(
                "title",
                text(&content["title"]),
                "a seminar needs its title",
            );
            need(
                "starts_at",
                instant(&content["starts_at"]),
                "a seminar needs its start time (RFC 3339)",
            );
            need(
                "ends_at",
                instant(&content["ends_at"]),
                "a seminar needs its end time (RFC 3339)",
            );
            need(
                "venue.name",
                text(&content["venue"]["name"]),
                "a seminar needs its venue",
            );
            need(
                "capacity",
                content["capacity"].is_u64(),
                "a seminar needs its capacity",
            );
        }
        Kind::Custom(_) => {}
    }
    problems
}

/// Each analyst needs a name and a certificate number: `S` and 13 digits
/// (执业证书编号).
fn check_analysts(analysts: &Value, need: &mut impl FnMut(&str, bool, &str)) {
    let list = analysts.as_array();
    need(
        "analysts",
        list.is_some_and(|a| !a.is_empty()),
        "a report names its analysts",
    );
    for (i, a) in list.into_iter().flatten().enumerate() {
        let named = a["name"].as_str().is_some_and(|s| !s.trim().is_empty());
        need(
            &format!("analysts[{i}].name"),
            named,
            "an analyst needs a name",
        );
        let cert = a["certificate"].as_str().unwrap_or("");
        need(
            &format!("analysts[{i}].certificate"),
            is_certificate(cert),
            "an analyst's certificate number is S followed by 13 digits",
        );
    }
}

pub fn is_certificate(s: &str) -> bool {
    s.len() == 14 && s.starts_with('S') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> Value {
        json!({
            "title": "贵州茅台：业绩稳健", "stock": {"code": "600519", "name": "贵州茅台"},
            "rating": "买入", "target_price": 1980.0, "release_at": "2026-11-25T07:30:00+08:00",
            "summary": "…", "pdf_url": "https://research.example.com/a.pdf",
            "analysts": [{"name": "王磊", "certificate": "S0570519080001"}]
        })
    }

    fn fields(problems: &[Problem]) -> Vec<String> {
        problems.iter().filter_map(|p| p.subject.clone()).collect()
    }

    #[test]
    fn a_complete_report_passes() {
        assert!(check(&Kind::ResearchReport, &report(), Path::new("r.json")).is_empty());
    }

    #[test]
    fn a_report_lacking_any_compliance_item_is_refused() {
        for (field, value) in [
            ("title", json!("")),
            ("rating", Value::Null),
            ("target_price", json!("高")),
            ("release_at", json!("明天")),
            ("pdf_url", json!("report.pdf")),
            ("summary", Value::Null),
        ] {
            let mut r = report();
            r[field] = value;
            assert_eq!(
                fields(&check(&Kind::ResearchReport, &r, Path::new("r.json"))),
                vec![field]
            );
        }
        let mut r = report();
        r["analysts"][0]["certificate"] = json!("S05705190800");
        assert_eq!(
            fields(&check(&Kind::ResearchReport, &r, Path::new("r.json"))),
            vec!["analysts[0].certificate"]
        );
        r["analysts"] = json!([]);
        assert_eq!(
            fields(&check(&Kind::ResearchReport, &r, Path::new("r.json"))),
            vec!["analysts"]
        );
    }

    #[test]
    fn certificates_are_s_and_thirteen_digits() {
        assert!(is_certificate("S0570519080001"));
        assert!(!is_certificate("s0570519080001"));
        assert!(!is_certificate("S057051908000"));
        assert!(!is_certificate("S05705190800012"));
        assert!(!is_certificate("S05705190800０1"));
    }

    #[test]
    fn a_bulletin_needs_its_indices() {
        let c = json!({"date": "2026-11-25", "indices": [{"name": "上证指数", "close": 3400.1}]});
        assert_eq!(
            fields(&check(&Kind::MarketBulletin, &c, Path::new("b.json"))),
            vec!["indices[0]"]
        );
    }
}
