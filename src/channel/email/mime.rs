//! One client's email as a MIME message: `multipart/alternative` text and
//! HTML inside `multipart/mixed` when there are attachments, Chinese
//! subjects and names encoded per RFC 2047 (lettre does this), a unique
//! `Message-ID`, herald's delivery id in `X-Herald-Delivery`, and for
//! marketing `List-Unsubscribe` with, when DKIM signs it,
//! `List-Unsubscribe-Post` (RFC 8058).

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{
    ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue,
};
use lettre::message::{Attachment as MimeAttachment, Body, Mailbox, MultiPart, SinglePart};
use lettre::Message;

use super::super::{Attachment, EmailMessage, Outgoing, SendError};

/// Who sends, and how messages are signed.
#[derive(Debug)]
pub struct Sender {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    /// The domain of `Message-ID`s.
    pub domain: String,
    pub dkim: Option<DkimConfig>,
}

/// The header that carries herald's delivery id.
pub const DELIVERY_HEADER: &str = "X-Herald-Delivery";

macro_rules! text_header {
    ($ty:ident, $name:literal) => {
        #[derive(Debug, Clone)]
        struct $ty(String);

        impl Header for $ty {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }

            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok(Self(s.to_owned()))
            }

            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}

text_header!(XHeraldDelivery, "X-Herald-Delivery");
text_header!(ListUnsubscribe, "List-Unsubscribe");
text_header!(ListUnsubscribePost, "List-Unsubscribe-Post");

/// The headers a DKIM signature covers; RFC 8058 requires both
/// List-Unsubscribe headers among them.
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// Builds the DKIM configuration from a PEM (RSA) key.
pub fn dkim_config(selector: &str, domain: &str, pem: &str) -> Result<DkimConfig, String> {
    let key = DkimSigningKey::new(pem, DkimSigningAlgorithm::Rsa)
        .map_err(|e| format!("the DKIM key is not an RSA private key in PKCS#1 PEM: {e}"))?;
    Ok(DkimConfig::new(
        selector.to_owned(),
        domain.to_owned(),
        key,
        SIGNED_HEADERS
            .iter()
            .map(|h| HeaderName::new_from_ascii_str(h))
            .collect(),
        DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        },
    ))
}

/// The message for one outgoing email.
pub fn build(sender: &Sender, out: &Outgoing, email: &EmailMessage) -> Result<Message, SendError> {
    let to = Mailbox::new(
        Some(email.to_name.clone()).filter(|n| !n.is_empty()),
        email
            .to
            .as_str()
            .parse()
            .map_err(|e| bad_address(format!("{}: {e}", email.to.masked())))?,
    );
    let mut builder = Message::builder()
        .from(sender.from.clone())
        .to(to)
        .subject(email.subject.clone())
        .date_now()
        .message_id(Some(message_id(out.delivery, &sender.domain)))
        .header(XHeraldDelivery(out.delivery.to_string()));
    if let Some(r) = &sender.reply_to {
        builder = builder.reply_to(r.clone());
    }
    if let Some(u) = &email.unsubscribe {
        builder = builder.header(ListUnsubscribe(list_unsubscribe(u)));
        // One-click is only trustworthy when the signature covers it.
        if sender.dkim.is_some() {
            builder = builder.header(ListUnsubscribePost("List-Unsubscribe=One-Click".into()));
        }
    }
    let body = MultiPart::alternative()
        .singlepart(text_part(ContentType::TEXT_PLAIN, &email.text))
        .singlepart(text_part(ContentType::TEXT_HTML, &email.html));
    let body = if email.attachments.is_empty() {
        body
    } else {
        email
            .attachments
            .iter()
            .try_fold(MultiPart::mixed().multipart(body), |m, a| {
                Ok(m.singlepart(attachment(a)?))
            })?
    };
    let mut message = builder
        .multipart(body)
        .map_err(|e| SendError::permanent(format!("cannot build the message: {e}")))?;
    if let Some(dkim) = &sender.dkim {
        message.sign(dkim);
    }
    Ok(message)
}

/// Text with any Chinese in it goes as base64: a third larger than the
/// bytes and cheap to encode, where quoted-printable triples every Chinese
/// byte and costs far more to produce. Plain ASCII is left to lettre.
fn text_part(content_type: ContentType, text: &str) -> SinglePart {
    let text = crlf(text);
    let body = if text.is_ascii() {
        Body::new(text)
    } else {
        // Encoded here: lettre would first scan the text to choose an
        // encoding it is told, and again for line ends already CRLF.
        let mut encoded =
            String::with_capacity(email_encoding::body::base64::encoded_len(text.len()));
        email_encoding::body::base64::encode(text.as_bytes(), &mut encoded)
            .expect("writing to a String cannot fail");
        Body::dangerous_pre_encoded(encoded.into_bytes(), ContentTransferEncoding::Base64)
    };
    SinglePart::builder().header(content_type).body(body)
}

/// The text with CRLF line ends, as MIME wants them. lettre converts bare
/// LFs itself, but one insertion at a time: quadratic in a long body.
fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        if lines.peek().is_some() {
            out.push_str(if line.ends_with('\r') { "\n" } else { "\r\n" });
        }
    }
    out
}

fn bad_address(message: String) -> SendError {
    SendError {
        failure: super::super::Failure::Permanent { bad_address: true },
        message,
    }
}

fn attachment(a: &Attachment) -> Result<SinglePart, SendError> {
    let content_type = ContentType::parse(&a.content_type)
        .map_err(|_| SendError::permanent(format!("'{}' is not a content type", a.content_type)))?;
    Ok(MimeAttachment::new(a.filename.clone()).body(a.bytes.clone(), content_type))
}

/// `<https://…>, <mailto:…>`: the URL first, as RFC 8058 clients use it.
fn list_unsubscribe(u: &super::super::Unsubscribe) -> String {
    match &u.mailto {
        Some(m) => format!("<{}>, <mailto:{m}>", u.url),
        None => format!("<{}>", u.url),
    }
}

/// Unique per delivery and per attempt: the delivery id and a random part.
fn message_id(delivery: i64, domain: &str) -> String {
    let nonce: u64 = rand::random();
    format!("<{delivery}.{nonce:016x}@{domain}>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::types::Email;
    use mail_parser::MimeHeaders;

    fn outgoing(unsubscribe: bool) -> (Outgoing, EmailMessage) {
        let email = EmailMessage {
            to: Email::parse("zhang.wei@example.com").unwrap(),
            to_name: "张伟".into(),
            subject: "【广告】每日市场快报".into(),
            text: "您好\n.以点开头的一行\n".into(),
            html: "<p>您好</p>".into(),
            attachments: vec![Attachment {
                filename: "报告.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: b"%PDF-1.4 test".to_vec(),
            }],
            unsubscribe: unsubscribe.then(|| super::super::super::Unsubscribe {
                url: "https://t.example.com/u/TOKEN".into(),
                mailto: Some("unsubscribe+TOKEN@example.com".into()),
            }),
        };
        let out = Outgoing {
            delivery: 42,
            campaign: "daily".into(),
            message: super::super::super::Message::Email(email.clone()),
        };
        (out, email)
    }

    fn sender() -> Sender {
        Sender {
            from: "某某证券 <research@example.com>".parse().unwrap(),
            reply_to: None,
            domain: "example.com".into(),
            dkim: None,
        }
    }

    #[test]
    fn a_message_parses_back_with_its_parts_and_headers() {
        let (out, email) = outgoing(true);
        let raw = build(&sender(), &out, &email).unwrap().formatted();
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(parsed.subject(), Some("【广告】每日市场快报"));
        assert_eq!(
            parsed.from().unwrap().first().unwrap().name(),
            Some("某某证券")
        );
        assert_eq!(parsed.to().unwrap().first().unwrap().name(), Some("张伟"));
        assert_eq!(
            parsed.body_text(0).unwrap().replace("\r\n", "\n"),
            "您好\n.以点开头的一行\n"
        );
        assert_eq!(parsed.body_html(0).unwrap(), "<p>您好</p>");
        assert_eq!(parsed.attachment_count(), 1);
        assert_eq!(
            parsed.attachment(0).unwrap().attachment_name(),
            Some("报告.pdf")
        );
        assert_eq!(
            parsed.header_raw(DELIVERY_HEADER).map(str::trim),
            Some("42")
        );
        let lu = parsed.header_raw("List-Unsubscribe").unwrap();
        assert!(
            lu.contains("<https://t.example.com/u/TOKEN>") && lu.contains("mailto:"),
            "{lu}"
        );
        assert!(
            parsed.header_raw("List-Unsubscribe-Post").is_none(),
            "not without DKIM"
        );
        assert!(parsed.message_id().unwrap().starts_with("42."));
    }

    #[test]
    fn message_ids_differ_per_attempt() {
        let (out, email) = outgoing(false);
        let a = build(&sender(), &out, &email).unwrap();
        let b = build(&sender(), &out, &email).unwrap();
        let id = |m: &Message| {
            let raw = m.formatted();
            mail_parser::MessageParser::default()
                .parse(&raw)
                .unwrap()
                .message_id()
                .unwrap()
                .to_owned()
        };
        assert_ne!(id(&a), id(&b));
        let raw = String::from_utf8(a.formatted()).unwrap();
        assert!(!raw.contains("List-Unsubscribe"), "service mail has none");
    }

    #[test]
    fn bare_line_feeds_become_crlf_and_crlf_stays() {
        assert_eq!(crlf("a\nb\r\nc\n"), "a\r\nb\r\nc\r\n");
        assert_eq!(crlf("\n\n"), "\r\n\r\n");
        assert_eq!(crlf("一行"), "一行");
    }
}
