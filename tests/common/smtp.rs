//! A minimal SMTP server for the tests that send for real: it speaks
//! enough of RFC 5321 for lettre and records what it accepted.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message the server accepted.
pub struct Received {
    /// The value of herald's `X-Herald-Delivery` header.
    pub delivery: Option<String>,
    /// The envelope recipients (`RCPT TO`).
    pub recipients: Vec<String>,
    /// The message as sent, when the server keeps bodies.
    pub data: Option<String>,
}

/// Everything the server accepted, in order.
pub type Inbox = Arc<Mutex<Vec<Received>>>;

/// Starts a minimal SMTP server on 127.0.0.1 on `rt`; returns its port.
pub fn start_smtp_server(rt: &tokio::runtime::Runtime, inbox: Inbox) -> u16 {
    start(rt, inbox, false)
}

/// Like [`start_smtp_server`], keeping each message's text.
pub fn start_smtp_server_keeping_bodies(rt: &tokio::runtime::Runtime, inbox: Inbox) -> u16 {
    start(rt, inbox, true)
}

fn start(rt: &tokio::runtime::Runtime, inbox: Inbox, keep: bool) -> u16 {
    let listener = rt.block_on(async { TcpListener::bind("127.0.0.1:0").await.unwrap() });
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        let mut queue_id = 0u64;
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            queue_id += 1_000_000;
            tokio::spawn(session(socket, inbox.clone(), queue_id, keep));
        }
    });
    port
}

/// One SMTP connection (enough of RFC 5321 for lettre's client). A client
/// that disappears, in the middle of DATA included, ends the session and
/// what it was sending is not recorded.
async fn session(socket: tokio::net::TcpStream, inbox: Inbox, mut queue_id: u64, keep: bool) {
    let _ = socket.set_nodelay(true);
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    if write.write_all(b"220 herald.test ESMTP\r\n").await.is_err() {
        return;
    }
    let mut recipients: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let verb = text.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => "250-herald.test\r\n250 8BITMIME\r\n".into(),
            "HELO" | "NOOP" => "250 2.0.0 OK\r\n".into(),
            "MAIL" | "RSET" => {
                recipients.clear();
                "250 2.0.0 OK\r\n".into()
            }
            "RCPT" => {
                let address = text
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(a, _)| a.to_ascii_lowercase())
                    .unwrap_or_default();
                recipients.push(address);
                "250 2.1.5 OK\r\n".into()
            }
            "DATA" => {
                if write.write_all(b"354 go ahead\r\n").await.is_err() {
                    return;
                }
                let mut delivery = None;
                let mut in_headers = true;
                let mut data = String::new();
                loop {
                    let mut l = Vec::new();
                    match lines.read_until(b'\n', &mut l).await {
                        // The client died mid-message: nothing arrived.
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if l == b".\r\n" || l == b".\n" {
                        break;
                    }
                    if keep {
                        // Undo dot-stuffing (RFC 5321 4.5.2).
                        let text = String::from_utf8_lossy(&l);
                        data.push_str(text.strip_prefix('.').unwrap_or(&text));
                    }
                    if in_headers {
                        let h = String::from_utf8_lossy(&l);
                        let h = h.trim_end();
                        if h.is_empty() {
                            in_headers = false;
                        } else if let Some((name, value)) = h.split_once(':') {
                            if name.eq_ignore_ascii_case("X-Herald-Delivery") {
                                delivery = Some(value.trim().to_owned());
                            }
                        }
                    }
                }
                queue_id += 1;
                inbox.lock().unwrap().push(Received {
                    delivery,
                    recipients: std::mem::take(&mut recipients),
                    data: keep.then_some(data),
                });
                format!("250 2.0.0 Ok: queued as Q{queue_id}\r\n")
            }
            "QUIT" => {
                let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
                return;
            }
            _ => "502 5.5.2 not implemented\r\n".into(),
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}
