//! Email over SMTP with lettre's async SMTP client and a pool of open
//! connections. SMTP replies become herald's classes: 4xx transient, 5xx
//! permanent (5.1.x: the address is bad), connection failures transient.
//!
//! The pool is herald's own rather than lettre's transport pool for one
//! reason: lettre writes a message and its final `.` in two writes, and on
//! a socket without `TCP_NODELAY` Nagle's algorithm holds the second until
//! the server's delayed ACK, 40 ms per message per connection. herald opens
//! the sockets itself, with `TCP_NODELAY`, and hands them to lettre.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use serde::Deserialize;
use tokio::net::TcpStream;

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
    settings: SmtpSettings,
    sender: Sender,
    hello: ClientId,
    tls: Option<TlsParameters>,
    implicit: Option<tokio_rustls::TlsConnector>,
    /// Open connections and when each was last used.
    idle: Mutex<Vec<(Open, Instant)>>,
}

/// An open connection, and whether its server takes pipelined commands
/// (RFC 2920), which lettre does not record.
struct Open {
    connection: AsyncSmtpConnection,
    pipelining: bool,
}

/// A connection idle longer than this is checked with NOOP before reuse:
/// servers close idle connections, and a send on a closed one would fail.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(20);

impl SmtpAdapter {
    pub fn new(name: &str, settings: &SmtpSettings, sender: Sender) -> Result<Self, String> {
        let tls = match settings.tls {
            TlsMode::None => None,
            TlsMode::Starttls | TlsMode::Implicit => Some(
                TlsParameters::new(settings.host.clone())
                    .map_err(|e| format!("TLS for {}: {e}", settings.host))?,
            ),
        };
        let implicit = (settings.tls == TlsMode::Implicit).then(tls_connector);
        Ok(Self {
            name: name.to_owned(),
            settings: settings.clone(),
            sender,
            hello: ClientId::default(),
            tls,
            implicit,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// An idle connection, or a new one.
    async fn checkout(&self) -> Result<Open, SendError> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match idle {
                Some((open, _)) if open.connection.has_broken() => continue,
                Some((mut open, since)) if since.elapsed() > CHECK_IDLE_AFTER => {
                    if open.connection.test_connected().await {
                        return Ok(open);
                    }
                }
                Some((open, _)) => return Ok(open),
                None => return self.connect().await,
            }
        }
    }

    fn checkin(&self, open: Open) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if !open.connection.has_broken() && idle.len() < self.settings.pool_size.max(1) as usize {
            idle.push((open, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<Open, SendError> {
        let unreachable = |e: String| {
            SendError::transient(format!(
                "cannot connect to {}:{}: {e}",
                self.settings.host, self.settings.port
            ))
        };
        let tcp = tokio::time::timeout(
            self.settings.timeout,
            TcpStream::connect((self.settings.host.as_str(), self.settings.port)),
        )
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
        tcp.set_nodelay(true)
            .map_err(|e| unreachable(e.to_string()))?;
        let stream: Box<dyn AsyncTokioStream> = match &self.implicit {
            Some(connector) => {
                let server = tokio_rustls::rustls::pki_types::ServerName::try_from(
                    self.settings.host.clone(),
                )
                .map_err(|e| SendError::permanent(format!("{}: {e}", self.settings.host)))?;
                let tls = connector
                    .connect(server, tcp)
                    .await
                    .map_err(|e| unreachable(format!("TLS: {e}")))?;
                Box::new(TlsTcp(tls))
            }
            None => Box::new(tcp),
        };
        let mut connection = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(|e| classify(&e))?;
        if let (TlsMode::Starttls, Some(params)) = (self.settings.tls, &self.tls) {
            if !connection.can_starttls() {
                return Err(SendError::transient(format!(
                    "{} does not offer STARTTLS",
                    self.settings.host
                )));
            }
            connection
                .starttls(params.clone(), &self.hello)
                .await
                .map_err(|e| classify(&e))?;
        }
        // Asked before AUTH, which some servers want to be the last word.
        let pipelining = offers_pipelining(&mut connection, &self.hello).await?;
        if let Some((user, password)) = &self.settings.credentials {
            let credentials = Credentials::new(user.clone(), password.clone());
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await
                .map_err(|e| classify(&e))?;
        }
        Ok(Open {
            connection,
            pipelining,
        })
    }
}

/// Whether the server offers PIPELINING: lettre reads the EHLO reply but
/// keeps only what it uses, so herald asks again (RFC 5321 allows a
/// second EHLO at any time). A server that refuses a second EHLO (Python's
/// `smtpd` answers 503) gets one command at a time.
async fn offers_pipelining(
    connection: &mut AsyncSmtpConnection,
    hello: &ClientId,
) -> Result<bool, SendError> {
    let reply = match connection.command(Ehlo::new(hello.clone())).await {
        Ok(reply) => reply,
        // A reply, just not a yes: the session goes on as it was.
        Err(e) if e.is_permanent() || e.is_transient() => return Ok(false),
        Err(e) => return Err(classify(&e)),
    };
    let pipelining = reply.message().any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|keyword| keyword.eq_ignore_ascii_case("PIPELINING"))
    });
    Ok(pipelining)
}

/// The web's root certificates, for implicit TLS.
fn tls_connector() -> tokio_rustls::TlsConnector {
    let roots = tokio_rustls::rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A TLS stream lettre can drive (its trait wants the peer address).
#[derive(Debug)]
struct TlsTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl tokio::io::AsyncRead for TlsTcp {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsTcp {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
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
        let raw = message.formatted();
        let mut open = self.checkout().await?;
        match transmit(&mut open, message.envelope(), &raw).await {
            Ok(response) => {
                self.checkin(open);
                let reply: Vec<&str> = response.message().collect();
                Ok(Accepted {
                    provider_id: queue_id(&reply.join(" ")).unwrap_or(message_id),
                })
            }
            Err(e) => {
                // The conversation is in an unknown state: end it.
                open.connection.abort().await;
                Err(e)
            }
        }
    }
}

/// One message over an open connection: what lettre's `send` does, except
/// that MAIL, RCPT and DATA go in one write where the server takes
/// pipelining, and the content is dot-stuffed here in one pass and written
/// together with its final dot. lettre's own writer stuffs byte by byte,
/// which cost an eighth of the CPU of a bulk send; each round trip saved is
/// a wake-up on both sides.
async fn transmit(open: &mut Open, envelope: &Envelope, raw: &[u8]) -> Result<Response, SendError> {
    let connection = &mut open.connection;
    let Ok(text) = std::str::from_utf8(raw) else {
        return connection
            .send(envelope, raw)
            .await
            .map_err(|e| classify(&e));
    };
    let mut options = Vec::new();
    let mut addresses = envelope.from().into_iter().chain(envelope.to());
    if addresses.any(|a| !AsRef::<str>::as_ref(a).is_ascii()) {
        require(connection, Extension::SmtpUtfEight, "SMTPUTF8")?;
        options.push(MailParameter::SmtpUtfEight);
    }
    if !text.is_ascii() {
        require(connection, Extension::EightBitMime, "8BITMIME")?;
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let step = |e: lettre::transport::smtp::Error| classify(&e);
    let commands: Vec<String> =
        std::iter::once(Mail::new(envelope.from().cloned(), options).to_string())
            .chain(
                envelope
                    .to()
                    .iter()
                    .map(|to| Rcpt::new(to.clone(), Vec::new()).to_string()),
            )
            .chain(std::iter::once(Data.to_string()))
            .collect();
    if open.pipelining {
        // Replies come in order; the first failure ends the conversation.
        connection.command(commands.concat()).await.map_err(step)?;
        for _ in 1..commands.len() {
            connection.read_response().await.map_err(step)?;
        }
    } else {
        for command in commands {
            connection.command(command).await.map_err(step)?;
        }
    }
    connection.command(Content(text)).await.map_err(step)
}

fn require(
    connection: &AsyncSmtpConnection,
    extension: Extension,
    name: &str,
) -> Result<(), SendError> {
    if connection.server_info().supports_feature(extension) {
        Ok(())
    } else {
        Err(SendError::permanent(format!(
            "the message needs {name}, which the server does not offer"
        )))
    }
}

/// A message's content as SMTP's DATA phase sends it (RFC 5321 4.5.2): a
/// line that starts with a dot gets a second one, and `CRLF . CRLF` ends it.
struct Content<'a>(&'a str);

impl std::fmt::Display for Content<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut rest = self.0;
        if rest.starts_with('.') {
            f.write_str(".")?;
        }
        let line_dot = memchr::memmem::Finder::new(b"\r\n.");
        while let Some(at) = line_dot.find(rest.as_bytes()) {
            // Up to and including the dot, then the dot again.
            f.write_str(&rest[..at + 3])?;
            f.write_str(".")?;
            rest = &rest[at + 3..];
        }
        f.write_str(rest)?;
        f.write_str("\r\n.\r\n")
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
    fn content_is_dot_stuffed_once_and_ended_with_a_dot() {
        let stuffed = |s: &str| Content(s).to_string();
        assert_eq!(stuffed("a\r\nb"), "a\r\nb\r\n.\r\n");
        assert_eq!(stuffed(".a\r\n.b\r\n..c"), "..a\r\n..b\r\n...c\r\n.\r\n");
        // Only a dot at the start of a line is doubled.
        assert_eq!(stuffed("a.b\r\nc."), "a.b\r\nc.\r\n.\r\n");
        assert_eq!(stuffed("x\r\n.\r\n.\r\n"), "x\r\n..\r\n..\r\n\r\n.\r\n");
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
