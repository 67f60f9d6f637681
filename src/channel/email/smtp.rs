//! Email over SMTP with lettre's async transport and its connection pool.
//! SMTP replies become herald's classes: 4xx transient, 5xx permanent
//! (5.1.x: the address is bad), connection failures transient.

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

use super::super::{Accepted, Adapter, Channel, Failure, Message, Outgoing, SendError};
use super::mime::{self, Sender};

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text: a relay on the same host or a private network only.
    None,
    /// Upgrade with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub credentials: Option<(String, String)>,
    /// Connections kept open and reused.
    pub pool_size: u32,
    pub timeout: Duration,
}

pub struct SmtpAdapter {
    name: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    sender: Sender,
}

impl SmtpAdapter {
    pub fn new(name: &str, settings: &SmtpSettings, sender: Sender) -> Result<Self, String> {
        let tls = match settings.tls {
            TlsMode::None => Tls::None,
            TlsMode::Starttls => Tls::Required(tls_parameters(&settings.host)?),
            TlsMode::Implicit => Tls::Wrapper(tls_parameters(&settings.host)?),
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
                .port(settings.port)
                .tls(tls)
                .timeout(Some(settings.timeout))
                .pool_config(PoolConfig::new().max_size(settings.pool_size.max(1)));
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            name: name.to_owned(),
            transport: builder.build(),
            sender,
        })
    }
}

fn tls_parameters(host: &str) -> Result<TlsParameters, String> {
    TlsParameters::new(host.to_owned()).map_err(|e| format!("TLS for {host}: {e}"))
}

#[async_trait::async_trait]
impl Adapter for SmtpAdapter {
    fn name(&self) -> &str {
        &self.name
    }

    fn channel(&self) -> Channel {
        Channel::Email
    }

    async fn send(&self, out: &Outgoing) -> Result<Accepted, SendError> {
        let Message::Email(email) = &out.message else {
            return Err(SendError::permanent("an SMS cannot go by email"));
        };
        let message = mime::build(&self.sender, out, email)?;
        let message_id = message
            .headers()
            .get_raw("Message-ID")
            .unwrap_or_default()
            .trim()
            .to_owned();
        match self.transport.send(message).await {
            Ok(response) => {
                let reply: Vec<&str> = response.message().collect();
                Ok(Accepted {
                    provider_id: queue_id(&reply.join(" ")).unwrap_or(message_id),
                })
            }
            Err(e) => Err(classify(&e)),
        }
    }
}

/// The server's queue id from `250 2.0.0 Ok: queued as 4Xyz`, if it says.
fn queue_id(reply: &str) -> Option<String> {
    let (_, rest) = reply.split_once("queued as ")?;
    rest.split_whitespace().next().map(str::to_owned)
}

fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let message = e.to_string();
    let failure = if e.is_permanent() {
        Failure::Permanent {
            bad_address: is_bad_address(&message),
        }
    } else if e.is_client() {
        // herald could not even form the request: retrying changes nothing.
        Failure::Permanent { bad_address: false }
    } else {
        // 4xx replies, refused or dropped connections, timeouts, TLS trouble.
        Failure::Transient { retry_after: None }
    };
    SendError { failure, message }
}

/// An enhanced status code 5.1.x (RFC 3463: addressing) means the
/// mailbox itself is bad.
fn is_bad_address(reply: &str) -> bool {
    reply
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|token| {
            let mut parts = token.split('.');
            matches!(
                (parts.next(), parts.next(), parts.next(), parts.next()),
                (Some("5"), Some("1"), Some(d), None) if !d.is_empty() && d.len() <= 3
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addressing_codes_mark_the_address_bad() {
        assert!(is_bad_address(
            "permanent error (550): 5.1.1 <x@y>: user unknown"
        ));
        assert!(is_bad_address("550 5.1.10 recipient not found"));
        assert!(!is_bad_address("permanent error (552): 5.2.2 mailbox full"));
        assert!(!is_bad_address(
            "permanent error (554): 5.7.1 rejected as spam"
        ));
        assert!(!is_bad_address("1.5.1.1"));
    }

    #[test]
    fn queue_ids_are_read_from_the_reply() {
        assert_eq!(
            queue_id("2.0.0 Ok: queued as 4XyZ1 extra").as_deref(),
            Some("4XyZ1")
        );
        assert_eq!(queue_id("2.0.0 Ok"), None);
    }
}
