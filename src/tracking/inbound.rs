//! Mail that comes back: delivery status notifications (RFC 3464) and mail
//! to the tokened unsubscribe address (`unsubscribe+TOKEN@…`). A hard
//! bounce marks the address bad; soft bounces are counted and mark it bad
//! after `[tracking] soft_bounce_limit`. Anything else is reported and left
//! alone. Read from files by `herald inbound ingest`, or posted to the
//! tracking server.

use std::path::{Path, PathBuf};

use chrono::Utc;
use mail_parser::{HeaderValue, MessageParser, MimeHeaders};
use serde::Serialize;
use serde_json::json;

use super::server::{event, opt_out, Refusal, TrackingState};
use super::token::Action;
use crate::channel::Channel;
use crate::client::consent::ConsentScope;
use crate::event::EventKind;

/// What one message was, and what herald did with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    HardBounce {
        delivery: Option<i64>,
        address: String,
        status: String,
    },
    SoftBounce {
        delivery: i64,
        status: String,
        marked_bad: bool,
    },
    Unsubscribed {
        delivery: i64,
    },
    /// Not a bounce or an unsubscribe, or one herald cannot match: left alone.
    Ignored {
        reason: String,
    },
}

/// What a message says, before anything is done.
#[derive(Debug, PartialEq, Eq)]
enum Mail {
    Bounce {
        delivery: Option<i64>,
        recipient: Option<String>,
        status: String,
        diagnostic: String,
    },
    Unsubscribe {
        token: String,
    },
    Other(String),
}

fn classify(raw: &[u8], mailbox: Option<&str>) -> Mail {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Mail::Other("not a mail message".into());
    };
    if let Some(token) = mailbox.and_then(|mb| unsubscribe_token(&message, mb)) {
        return Mail::Unsubscribe { token };
    }
    let is_dsn = message.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct
                .attribute("report-type")
                .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    });
    if !is_dsn {
        return Mail::Other(format!(
            "neither a delivery status notification nor unsubscribe mail (subject {:?})",
            message.subject().unwrap_or("")
        ));
    }
    // The status fields and the returned headers are plain text parts.
    let text = String::from_utf8_lossy(raw);
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let Some(status) = field("Status").filter(|s| s.starts_with(['4', '5'])) else {
        return Mail::Other("a delivery status notification without a failure status".into());
    };
    Mail::Bounce {
        delivery: field(crate::channel::email::mime::DELIVERY_HEADER).and_then(|d| d.parse().ok()),
        recipient: field("Final-Recipient")
            .or_else(|| field("Original-Recipient"))
            .map(|r| {
                r.rsplit(';')
                    .next()
                    .unwrap_or(&r)
                    .trim()
                    .to_ascii_lowercase()
            }),
        status,
        diagnostic: field("Diagnostic-Code").unwrap_or_default(),
    }
}

/// `TOKEN` when the message went to `local+TOKEN@domain` of `mailbox`.
fn unsubscribe_token(message: &mail_parser::Message<'_>, mailbox: &str) -> Option<String> {
    let (local, domain) = mailbox.trim().split_once('@')?;
    let prefix = format!("{local}+");
    let mut addresses: Vec<String> = Vec::new();
    for header in ["To", "Cc", "Delivered-To", "X-Original-To"] {
        match message.header(header) {
            Some(HeaderValue::Address(a)) => {
                addresses.extend(a.iter().filter_map(|x| x.address().map(str::to_owned)))
            }
            Some(HeaderValue::Text(t)) => {
                addresses.push(t.trim().trim_matches(['<', '>']).to_owned())
            }
            _ => {}
        }
    }
    addresses.into_iter().find_map(|a| {
        let (l, d) = a.rsplit_once('@')?;
        (d.eq_ignore_ascii_case(domain)).then_some(())?;
        l.strip_prefix(&prefix).map(str::to_owned)
    })
}

/// Acts on one message.
pub async fn ingest(s: &TrackingState, raw: &[u8]) -> Result<Outcome, Refusal> {
    match classify(raw, s.unsubscribe_mailbox.as_deref()) {
        Mail::Other(reason) => Ok(Outcome::Ignored { reason }),
        Mail::Unsubscribe { token } => match s.delivery(&token, "", Action::Unsubscribe).await {
            Ok(d) => {
                opt_out(s, &d, &[ConsentScope::Email], "mail").await?;
                Ok(Outcome::Unsubscribed { delivery: d.id })
            }
            Err(Refusal::BadLink) => Ok(Outcome::Ignored {
                reason: "unsubscribe mail with a token that does not verify".into(),
            }),
            Err(r) => Err(r),
        },
        Mail::Bounce {
            delivery,
            recipient,
            status,
            diagnostic,
        } => bounce(s, delivery, recipient, status, diagnostic).await,
    }
}

async fn bounce(
    s: &TrackingState,
    delivery: Option<i64>,
    recipient: Option<String>,
    status: String,
    diagnostic: String,
) -> Result<Outcome, Refusal> {
    let d = match delivery {
        Some(id) => s
            .store
            .delivery_context(id)
            .await
            .map_err(|e| super::server::unavailable(&e))?,
        None => None,
    }
    .filter(|d| d.channel == "email");
    let hard = status.starts_with('5');
    let at = Utc::now();
    let Some(d) = d else {
        // No delivery of ours: a hard bounce still tells us the address is bad.
        return match (hard, recipient) {
            (true, Some(address)) => {
                mark_bad(s, &address, &status).await?;
                Ok(Outcome::HardBounce {
                    delivery: None,
                    address,
                    status,
                })
            }
            _ => Ok(Outcome::Ignored {
                reason: format!("a bounce ({status}) that names no delivery of herald's"),
            }),
        };
    };
    let details = json!({ "status": status, "diagnostic": diagnostic, "hard": hard });
    if let Some(mut e) = event(&d, EventKind::Bounced, at, details) {
        e.source = if hard { "dsn" } else { "dsn-soft" }.into();
        // A hard bounce once per delivery; each soft one counts.
        e.dedupe_on = hard.then(|| format!("dsn:{}:hard", d.id));
        s.record(e).await?;
    }
    if hard {
        mark_bad(s, &d.address, &status).await?;
        return Ok(Outcome::HardBounce {
            delivery: Some(d.id),
            address: d.address.clone(),
            status,
        });
    }
    let client =
        crate::client::types::ClientId::parse(&d.client_id).map_err(|_| Refusal::BadLink)?;
    let soft = s
        .store
        .client_events(&client, 500)
        .await
        .map_err(|e| super::server::unavailable(&e))?
        .iter()
        .filter(|e| e.event.kind == EventKind::Bounced && e.event.source == "dsn-soft")
        .count();
    let marked_bad = soft >= s.soft_bounce_limit;
    if marked_bad {
        mark_bad(s, &d.address, &format!("{soft} soft bounces")).await?;
    }
    Ok(Outcome::SoftBounce {
        delivery: d.id,
        status,
        marked_bad,
    })
}

async fn mark_bad(s: &TrackingState, address: &str, why: &str) -> Result<(), Refusal> {
    s.store
        .mark_bad_address(
            Channel::Email,
            address,
            &format!("bounce {why}"),
            Utc::now(),
        )
        .await
        .map_err(|e| super::server::unavailable(&e))
}

/// The messages at `path`: a maildir (its `new` and `cur`), an mbox, or one
/// message per file.
pub fn read_messages(path: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = Vec::new();
        for sub in ["new", "cur"] {
            let dir = path.join(sub);
            if dir.is_dir() {
                files.extend(std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())));
            }
        }
        if files.is_empty() {
            files.extend(
                std::fs::read_dir(path)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file()),
            );
        }
        files.sort();
        return files
            .into_iter()
            .map(|f| Ok((f.display().to_string(), std::fs::read(&f)?)))
            .collect();
    }
    let bytes = std::fs::read(path)?;
    let name = path.display().to_string();
    if !bytes.starts_with(b"From ") {
        return Ok(vec![(name, bytes)]);
    }
    // mbox: each message starts with a "From " line after a blank line.
    let text = String::from_utf8_lossy(&bytes);
    Ok(text
        .split("\nFrom ")
        .enumerate()
        .map(|(i, part)| {
            let body = part.split_once('\n').map_or("", |(_, rest)| rest);
            let body = body.replace("\n>From ", "\nFrom ");
            (format!("{name}#{}", i + 1), body.into_bytes())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSN: &str = "From: MAILER-DAEMON@mx.example.com\r\nTo: research@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nX-Herald-Delivery: 42\r\nSubject: x\r\n--b1--\r\n";

    #[test]
    fn a_dsn_names_its_delivery_status_and_recipient() {
        assert_eq!(
            classify(DSN.as_bytes(), None),
            Mail::Bounce {
                delivery: Some(42),
                recipient: Some("gone@example.com".into()),
                status: "5.1.1".into(),
                diagnostic: "smtp; 550 5.1.1 user unknown".into(),
            }
        );
    }

    #[test]
    fn unsubscribe_mail_carries_its_token_and_other_mail_is_left_alone() {
        let mail = "From: a@b.com\r\nTo: <unsubscribe+AQAB-xyz@example.com>\r\nSubject: unsubscribe\r\n\r\n.\r\n";
        assert_eq!(
            classify(mail.as_bytes(), Some("unsubscribe@example.com")),
            Mail::Unsubscribe {
                token: "AQAB-xyz".into()
            }
        );
        assert!(matches!(classify(mail.as_bytes(), None), Mail::Other(_)));
        let chat = "From: a@b.com\r\nTo: research@example.com\r\nSubject: 请问\r\n\r\n你好\r\n";
        assert!(matches!(
            classify(chat.as_bytes(), Some("unsubscribe@example.com")),
            Mail::Other(_)
        ));
    }

    #[test]
    fn an_mbox_splits_into_its_messages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box");
        std::fs::write(&path, "From a@b Mon Jan 1 00:00:00 2026\nSubject: one\n\n>From here\n\nFrom c@d Mon Jan 1 00:00:01 2026\nSubject: two\n\nx\n").unwrap();
        let messages = read_messages(&path).unwrap();
        assert_eq!(messages.len(), 2);
        assert!(String::from_utf8_lossy(&messages[0].1).contains("From here"));
    }
}
