//! The file outbox: each email as an `.eml` file, each SMS as a JSON line,
//! in a folder. What the demo sends through, so that it needs no server,
//! and what staff can open to see exactly what would have gone out.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::email::mime::{self, Sender};
use super::{Accepted, Adapter, Channel, Message, Outgoing, SendError, SmsMessage};

/// The file SMS are appended to.
pub const SMS_FILE: &str = "sms.jsonl";

pub struct Outbox {
    name: String,
    channel: Channel,
    dir: PathBuf,
    /// For emails: who they are from.
    sender: Option<Sender>,
    /// One writer at a time, so JSON lines never interleave.
    sms_lock: Mutex<()>,
}

impl Outbox {
    pub fn email(name: &str, dir: &Path, sender: Sender) -> Self {
        Self::new(name, Channel::Email, dir, Some(sender))
    }

    pub fn sms(name: &str, dir: &Path) -> Self {
        Self::new(name, Channel::Sms, dir, None)
    }

    fn new(name: &str, channel: Channel, dir: &Path, sender: Option<Sender>) -> Self {
        Self {
            name: name.to_owned(),
            channel,
            dir: dir.to_path_buf(),
            sender,
            sms_lock: Mutex::new(()),
        }
    }

    async fn write_email(
        &self,
        out: &Outgoing,
        sender: &Sender,
        email: &super::EmailMessage,
    ) -> Result<Accepted, SendError> {
        let message = mime::build(sender, out, email)?;
        let file = format!("{}-{:08x}.eml", out.delivery, rand::random::<u32>());
        let path = self.dir.join(&file);
        self.ensure_dir().await?;
        tokio::fs::write(&path, message.formatted())
            .await
            .map_err(|e| SendError::transient(format!("{}: {e}", path.display())))?;
        Ok(Accepted { provider_id: file })
    }

    async fn write_sms(&self, out: &Outgoing, sms: &SmsMessage) -> Result<Accepted, SendError> {
        #[derive(Serialize)]
        struct Line<'a> {
            delivery: i64,
            campaign: &'a str,
            at: chrono::DateTime<chrono::Utc>,
            #[serde(flatten)]
            sms: &'a SmsMessage,
        }
        let mut line = serde_json::to_string(&Line {
            delivery: out.delivery,
            campaign: &out.campaign,
            at: chrono::Utc::now(),
            sms,
        })
        .map_err(|e| SendError::permanent(e.to_string()))?;
        line.push('\n');
        self.ensure_dir().await?;
        let path = self.dir.join(SMS_FILE);
        let _one_writer = self.sms_lock.lock().await;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|e| SendError::transient(format!("{}: {e}", path.display())))?;
        // tokio's File finishes a write in the background: flush, or the
        // line may not be there when the next writer (or reader) looks.
        let written = async {
            file.write_all(line.as_bytes()).await?;
            file.flush().await
        };
        written
            .await
            .map_err(|e| SendError::transient(format!("{}: {e}", path.display())))?;
        Ok(Accepted {
            provider_id: format!("outbox-{}", out.delivery),
        })
    }

    async fn ensure_dir(&self) -> Result<(), SendError> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| SendError::transient(format!("{}: {e}", self.dir.display())))
    }
}

#[async_trait::async_trait]
impl Adapter for Outbox {
    fn name(&self) -> &str {
        &self.name
    }

    fn channel(&self) -> Channel {
        self.channel
    }

    fn sends_templates(&self) -> bool {
        self.channel == Channel::Sms
    }

    async fn send(&self, out: &Outgoing) -> Result<Accepted, SendError> {
        match (&out.message, &self.sender) {
            (Message::Email(email), Some(sender)) => self.write_email(out, sender, email).await,
            (Message::Sms(sms), None) => self.write_sms(out, sms).await,
            _ => Err(SendError::permanent(format!(
                "outbox {} takes {} only",
                self.name, self.channel
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::types::Mobile;

    #[tokio::test]
    async fn sms_become_json_lines_and_emails_eml_files() {
        let dir = tempfile::tempdir().unwrap();
        let sms = Outbox::sms("outbox", dir.path());
        for delivery in [1, 2] {
            let out = Outgoing {
                delivery,
                campaign: "daily".into(),
                message: Message::Sms(SmsMessage::Text {
                    to: Mobile::parse("13812345678").unwrap(),
                    text: "【某某证券】您好".into(),
                }),
            };
            sms.send(&out).await.unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join(SMS_FILE)).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["delivery"], 2);
        assert_eq!(lines[0]["text"], "【某某证券】您好");
        assert_eq!(lines[0]["to"], "+8613812345678");

        let email = Outbox::email(
            "outbox",
            dir.path(),
            Sender {
                from: "某某证券 <research@example.com>".parse().unwrap(),
                reply_to: None,
                domain: "example.com".into(),
                dkim: None,
            },
        );
        let wrong = email
            .send(&Outgoing {
                delivery: 3,
                campaign: "daily".into(),
                message: lines_message(),
            })
            .await;
        assert!(wrong.is_err(), "an email outbox refuses SMS");
    }

    fn lines_message() -> Message {
        Message::Sms(SmsMessage::Text {
            to: Mobile::parse("13812345678").unwrap(),
            text: "x".into(),
        })
    }
}
