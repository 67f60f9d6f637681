//! An archive record as compressed: plain JSON, or a JSON head whose long
//! texts (an email's HTML and plain text) follow it as they are.
//!
//! Escaping a bulletin's 16 KB of HTML into JSON (every quote and line
//! break) cost a sixth of what archiving a sent message costs, and the
//! record is stored compressed anyway: the texts go after the head raw,
//! and reading a record puts them back into its JSON.
//!
//! A framed record is `0x01`, the head (JSON, each text's place in it an
//! empty string), `0x00`, the index (a JSON array of `[pointer, bytes]`),
//! `0x00`, then the texts one after another. JSON text never holds a raw
//! control character, so neither byte can occur inside the head or the
//! index, and a plain JSON record never starts with `0x01`.

use std::io;

const FRAMED: u8 = 0x01;
const END: u8 = 0x00;

/// The record framed: `head` (JSON) with `texts` after it, each to go at
/// its JSON pointer in the head.
pub fn frame(head: &[u8], texts: &[(&str, &str)]) -> Vec<u8> {
    let index: Vec<(&str, usize)> = texts.iter().map(|(at, t)| (*at, t.len())).collect();
    let index = serde_json::to_vec(&index).expect("an index of texts serializes to memory");
    let size = texts.iter().map(|(_, t)| t.len()).sum::<usize>();
    let mut out = Vec::with_capacity(3 + head.len() + index.len() + size);
    out.push(FRAMED);
    out.extend_from_slice(head);
    out.push(END);
    out.extend_from_slice(&index);
    out.push(END);
    for (_, text) in texts {
        out.extend_from_slice(text.as_bytes());
    }
    out
}

/// A record as stored (framed or plain) back to its JSON.
pub fn to_json(stored: Vec<u8>) -> io::Result<String> {
    if stored.first() != Some(&FRAMED) {
        return String::from_utf8(stored).map_err(|e| invalid(e.to_string()));
    }
    let mut parts = stored[1..].splitn(3, |&b| b == END);
    let (Some(head), Some(index), Some(mut texts)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("a framed record lacks its index".into()));
    };
    let mut record: serde_json::Value =
        serde_json::from_slice(head).map_err(|e| invalid(format!("its head: {e}")))?;
    let index: Vec<(String, usize)> =
        serde_json::from_slice(index).map_err(|e| invalid(format!("its index: {e}")))?;
    for (at, len) in index {
        if len > texts.len() {
            return Err(invalid(format!("its text at {at} is cut short")));
        }
        let (text, rest) = texts.split_at(len);
        let text = std::str::from_utf8(text).map_err(|e| invalid(format!("{at}: {e}")))?;
        let slot = record
            .pointer_mut(&at)
            .ok_or_else(|| invalid(format!("its head has no place {at}")))?;
        *slot = serde_json::Value::String(text.to_owned());
        texts = rest;
    }
    if !texts.is_empty() {
        return Err(invalid("a framed record has bytes past its texts".into()));
    }
    Ok(record.to_string())
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_framed_after_the_head_come_back_in_its_json() {
        let html = "<p class=\"x\">尊敬的张三：\n\0</p>";
        let head = r#"{"client":{"name":"张三"},"message":{"html":"","text":"","to":"a@b.cn"}}"#;
        let framed = frame(head.as_bytes(), &[("/message/html", html), ("/message/text", "正文")]);
        let record: serde_json::Value =
            serde_json::from_str(&to_json(framed).unwrap()).unwrap();
        assert_eq!(record["message"]["html"], html);
        assert_eq!(record["message"]["text"], "正文");
        assert_eq!(record["message"]["to"], "a@b.cn");
        assert_eq!(record["client"]["name"], "张三");
    }

    #[test]
    fn a_plain_record_reads_as_it_is() {
        let plain = r#"{"message":{"html":"<p>旧</p>"}}"#;
        assert_eq!(to_json(plain.as_bytes().to_vec()).unwrap(), plain);
    }

    #[test]
    fn a_damaged_frame_is_an_error_not_a_panic() {
        let head = br#"{"message":{"html":""}}"#;
        let framed = frame(head, &[("/message/html", "<p>正文</p>")]);
        for cut in 0..framed.len() {
            let _ = to_json(framed[..cut].to_vec());
        }
        assert!(to_json(framed[..framed.len() - 1].to_vec()).is_err());
        let elsewhere = frame(head, &[("/message/nowhere", "x")]);
        assert!(to_json(elsewhere).is_err());
        let mut longer = framed.clone();
        longer.push(b'x');
        assert!(to_json(longer).is_err());
    }
}
