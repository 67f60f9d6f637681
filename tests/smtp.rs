//! The SMTP adapter holding a real SMTP conversation over TCP with a small
//! server started by each test, which records what it received and answers
//! as scripted (421, 451, 550 5.1.1) so that retries and classes show.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::channel::email::mime::{Sender, DELIVERY_HEADER};
use herald::channel::email::smtp::{SmtpAdapter, SmtpSettings, TlsMode};
use herald::channel::limits::{Governed, Limits};
use herald::channel::{Attachment, EmailMessage, Failure, Message, Outgoing, Unsubscribe};
use herald::client::types::Email;
use mail_parser::MimeHeaders;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the server answers, per transaction, and what it received.
#[derive(Default)]
struct Script {
    rcpt: VecDeque<&'static str>,
    data: VecDeque<&'static str>,
    received: Vec<Vec<u8>>,
    transactions: usize,
    /// Lines that arrived dot-stuffed.
    stuffed: usize,
    /// Whether EHLO offers PIPELINING (RFC 2920).
    pipelining: bool,
    /// Transactions whose RCPT arrived together with their MAIL.
    pipelined: usize,
    /// Answer a second EHLO with 503, as Python's `smtpd` does.
    one_ehlo_only: bool,
}

fn script(pipelining: bool) -> Arc<Mutex<Script>> {
    Arc::new(Mutex::new(Script {
        pipelining,
        ..Script::default()
    }))
}

async fn smtp_server(script: Arc<Mutex<Script>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::spawn(session(socket, script.clone()));
        }
    });
    port
}

/// One connection, as RFC 5321 has it (enough of it for a client).
async fn session(socket: tokio::net::TcpStream, script: Arc<Mutex<Script>>) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 test.local ESMTP\r\n").await.unwrap();
    let mut line = String::new();
    let mut recipients = 0;
    let mut greeted = false;
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" if greeted && script.lock().unwrap().one_ehlo_only => {
                "503 Duplicate HELO/EHLO\r\n".into()
            }
            "EHLO" => {
                greeted = true;
                let pipelining = script.lock().unwrap().pipelining;
                let offer = if pipelining { "250-PIPELINING\r\n" } else { "" };
                format!("250-test.local\r\n{offer}250-8BITMIME\r\n250 SIZE 10000000\r\n")
            }
            "MAIL" => {
                recipients = 0;
                if lines.buffer().starts_with(b"RCPT") {
                    script.lock().unwrap().pipelined += 1;
                }
                "250 2.1.0 OK\r\n".into()
            }
            "HELO" | "RSET" | "NOOP" => "250 2.0.0 OK\r\n".into(),
            "RCPT" => {
                let mut s = script.lock().unwrap();
                s.transactions += 1;
                let answer = s.rcpt.pop_front().unwrap_or("250 2.1.5 OK");
                recipients += usize::from(answer.starts_with('2'));
                format!("{answer}\r\n")
            }
            // As servers answer a pipelined DATA after every RCPT failed.
            "DATA" if recipients == 0 => "554 5.5.1 no valid recipients\r\n".into(),
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await.unwrap();
                let mut body = Vec::new();
                let mut stuffed = 0;
                loop {
                    let mut l = String::new();
                    if lines.read_line(&mut l).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    // Undo dot-stuffing (RFC 5321 4.5.2).
                    stuffed += usize::from(l.starts_with(".."));
                    let l = l.strip_prefix('.').unwrap_or(&l);
                    body.extend_from_slice(l.as_bytes());
                }
                let answer = {
                    let mut s = script.lock().unwrap();
                    s.stuffed += stuffed;
                    let answer = s.data.pop_front().unwrap_or("250 2.0.0 Ok: queued as Q1");
                    if answer.starts_with('2') {
                        s.received.push(body);
                    }
                    answer
                };
                let close = answer.starts_with("421");
                write
                    .write_all(format!("{answer}\r\n").as_bytes())
                    .await
                    .unwrap();
                if close {
                    return;
                }
                continue;
            }
            "QUIT" => {
                let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
                return;
            }
            _ => "502 5.5.2 not implemented\r\n".into(),
        };
        write.write_all(reply.as_bytes()).await.unwrap();
    }
}

fn adapter(port: u16) -> SmtpAdapter {
    let settings = SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::None,
        credentials: None,
        pool_size: 2,
        timeout: Duration::from_secs(5),
    };
    let sender = Sender {
        from: "某某证券研究所 <research@example.com>".parse().unwrap(),
        reply_to: Some("客户服务 <service@example.com>".parse().unwrap()),
        domain: "example.com".into(),
        dkim: None,
    };
    SmtpAdapter::new("smtp", &settings, sender).unwrap()
}

fn message(delivery: i64) -> Outgoing {
    Outgoing {
        delivery,
        campaign: "research_600519".into(),
        message: Message::Email(EmailMessage {
            to: Email::parse("zhang.wei@example.com").unwrap(),
            to_name: "张伟".into(),
            subject: "【广告】贵州茅台（600519）研究报告：买入".into(),
            // Mostly ASCII, so that it travels as text and the dot lines
            // exercise dot-stuffing on the wire.
            text: "Dear Zhang Wei,\n.this line starts with a dot\n..and this with two\n".into(),
            html: "<p>尊敬的张伟：</p>".into(),
            attachments: vec![Attachment {
                filename: "贵州茅台-20261125.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: b"%PDF-1.4\n%test report\n".to_vec(),
            }],
            unsubscribe: Some(Unsubscribe {
                url: "https://t.example.com/u/TOKEN".into(),
                mailto: Some("unsubscribe+TOKEN@example.com".into()),
            }),
        }),
    }
}

fn limits() -> Limits {
    Limits {
        backoff_ms: 10,
        max_backoff_secs: 1,
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_message_arrives_whole_over_a_real_smtp_conversation() {
    let script = script(true);
    let port = smtp_server(script.clone()).await;
    let governed = Governed::new(Arc::new(adapter(port)), limits());
    let out = governed.send(&message(42)).await;
    assert_eq!(
        out.result.unwrap().provider_id,
        "Q1",
        "the queue id from the reply"
    );
    assert!(
        script.lock().unwrap().stuffed >= 2,
        "dot lines travel stuffed"
    );
    assert_eq!(
        script.lock().unwrap().pipelined,
        1,
        "MAIL and RCPT in one go"
    );
    let raw = script.lock().unwrap().received.pop().unwrap();
    let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(
        m.subject(),
        Some("【广告】贵州茅台（600519）研究报告：买入")
    );
    assert_eq!(
        m.from().unwrap().first().unwrap().name(),
        Some("某某证券研究所")
    );
    assert_eq!(
        m.to().unwrap().first().unwrap().address(),
        Some("zhang.wei@example.com")
    );
    assert_eq!(
        m.reply_to().unwrap().first().unwrap().address(),
        Some("service@example.com")
    );
    let text = m.body_text(0).unwrap().replace("\r\n", "\n");
    assert!(
        text.contains("\n.this line starts with a dot\n..and this with two\n"),
        "{text:?}"
    );
    assert_eq!(m.body_html(0).unwrap(), "<p>尊敬的张伟：</p>");
    let attachment = m.attachment(0).unwrap();
    assert_eq!(attachment.attachment_name(), Some("贵州茅台-20261125.pdf"));
    assert_eq!(attachment.contents(), b"%PDF-1.4\n%test report\n");
    assert!(m.date().is_some());
    assert!(m.message_id().unwrap().ends_with("@example.com"));
    assert_eq!(m.header_raw(DELIVERY_HEADER).map(str::trim), Some("42"));
    assert!(m
        .header_raw("List-Unsubscribe")
        .unwrap()
        .contains("mailto:unsubscribe+TOKEN@example.com"));
    // Subjects and names travel encoded: the raw header is ASCII.
    let raw_subject = String::from_utf8_lossy(&raw);
    let subject_line = raw_subject
        .lines()
        .find(|l| l.starts_with("Subject:"))
        .unwrap();
    assert!(
        subject_line.is_ascii() && subject_line.contains("=?utf-8?"),
        "{subject_line}"
    );
}

#[tokio::test]
async fn busy_replies_are_retried_and_the_message_is_sent_once() {
    let script = script(true);
    script.lock().unwrap().data =
        VecDeque::from(["451 4.3.0 try again later", "421 4.7.0 too busy, closing"]);
    let port = smtp_server(script.clone()).await;
    let governed = Governed::new(Arc::new(adapter(port)), limits());
    let out = governed.send(&message(7)).await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.attempts, 3);
    let s = script.lock().unwrap();
    assert_eq!(s.received.len(), 1, "accepted once");
    assert_eq!(s.transactions, 3);
}

#[tokio::test]
async fn an_unknown_mailbox_is_not_retried_and_marks_the_address() {
    for pipelining in [true, false] {
        let script = script(pipelining);
        script.lock().unwrap().rcpt =
            VecDeque::from(["550 5.1.1 <zhang.wei@example.com>: user unknown"]);
        let port = smtp_server(script.clone()).await;
        let governed = Governed::new(Arc::new(adapter(port)), limits());
        let out = governed.send(&message(9)).await;
        let e = out.result.unwrap_err();
        assert_eq!(e.failure, Failure::Permanent { bad_address: true }, "{e}");
        assert_eq!(out.attempts, 1);
        assert!(script.lock().unwrap().received.is_empty());
    }
}

#[tokio::test]
async fn a_server_that_refuses_a_second_ehlo_gets_one_command_at_a_time() {
    let script = script(true);
    script.lock().unwrap().one_ehlo_only = true;
    let port = smtp_server(script.clone()).await;
    let governed = Governed::new(Arc::new(adapter(port)), limits());
    governed.send(&message(3)).await.result.unwrap();
    let s = script.lock().unwrap();
    assert_eq!((s.received.len(), s.pipelined), (1, 0));
}

#[tokio::test]
async fn a_server_without_pipelining_gets_one_command_at_a_time() {
    let script = script(false);
    let port = smtp_server(script.clone()).await;
    let governed = Governed::new(Arc::new(adapter(port)), limits());
    for delivery in [1, 2] {
        governed.send(&message(delivery)).await.result.unwrap();
    }
    let s = script.lock().unwrap();
    assert_eq!((s.received.len(), s.pipelined), (2, 0));
}

#[tokio::test]
async fn a_full_mailbox_is_permanent_but_the_address_stays_good() {
    let script = script(true);
    script.lock().unwrap().rcpt = VecDeque::from(["552 5.2.2 mailbox full"]);
    let port = smtp_server(script.clone()).await;
    let out = Governed::new(Arc::new(adapter(port)), limits())
        .send(&message(10))
        .await;
    assert_eq!(
        out.result.unwrap_err().failure,
        Failure::Permanent { bad_address: false }
    );
}

#[tokio::test]
async fn a_server_that_is_not_there_is_a_transient_failure() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let l = Limits {
        max_attempts: 2,
        ..limits()
    };
    let out = Governed::new(Arc::new(adapter(port)), l)
        .send(&message(11))
        .await;
    assert!(out.result.unwrap_err().is_transient());
    assert_eq!(out.attempts, 2);
}
