//! Rows for PostgreSQL's `COPY … FROM STDIN WITH (FORMAT binary)`.
//!
//! The binary form spares the server from parsing text: in a bulk import
//! its input functions (timestamps above all) cost as much as the index
//! inserts. Each value is written in the type's send format; the caller
//! writes the columns in the table's order and types.

use chrono::{DateTime, NaiveDate, Utc};

/// PostgreSQL's epoch for dates and timestamps.
fn pg_epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date")
}

pub(crate) struct CopyBinary {
    buf: Vec<u8>,
}

/// What ends the rows of one COPY.
pub(crate) const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// What starts one COPY: its signature, then flags and header-extension
/// length (both zero).
pub(crate) const HEADER: [u8; 19] = *b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

impl CopyBinary {
    /// Rows, to be sent after the [`HEADER`] and before the [`TRAILER`]:
    /// one COPY may take the rows of many batches.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    pub(crate) fn row(&mut self, fields: i16) -> &mut Self {
        self.buf.extend_from_slice(&fields.to_be_bytes());
        self
    }

    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        let len = i32::try_from(bytes.len()).expect("a value under 2 GB");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
        self
    }

    fn null(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    fn opt<T>(&mut self, v: Option<T>, put: impl FnOnce(&mut Self, T) -> &mut Self) -> &mut Self {
        match v {
            Some(v) => put(self, v),
            None => self.null(),
        }
    }

    /// `text`: its UTF-8 bytes.
    pub(crate) fn text(&mut self, s: &str) -> &mut Self {
        self.field(s.as_bytes())
    }

    /// `text`: a `;`-separated list, written in place.
    pub(crate) fn joined<'s>(&mut self, parts: impl Iterator<Item = &'s str>) -> &mut Self {
        let at = self.open_field();
        crate::client::push_joined(&mut self.buf, parts);
        self.close_field(at)
    }

    /// Reserves a field's length, to be set by [`Self::close_field`] once
    /// its bytes are written.
    fn open_field(&mut self) -> usize {
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.len()
    }

    fn close_field(&mut self, at: usize) -> &mut Self {
        let len = i32::try_from(self.buf.len() - at).expect("a value under 2 GB");
        self.buf[at - 4..at].copy_from_slice(&len.to_be_bytes());
        self
    }

    pub(crate) fn opt_text(&mut self, s: Option<&str>) -> &mut Self {
        self.opt(s, Self::text)
    }

    pub(crate) fn bytea(&mut self, b: &[u8]) -> &mut Self {
        self.field(b)
    }

    pub(crate) fn bool(&mut self, b: bool) -> &mut Self {
        self.field(&[u8::from(b)])
    }

    pub(crate) fn opt_i16(&mut self, v: Option<i16>) -> &mut Self {
        self.opt(v, |s, v| s.field(&v.to_be_bytes()))
    }

    pub(crate) fn opt_i64(&mut self, v: Option<i64>) -> &mut Self {
        self.opt(v, |s, v| s.field(&v.to_be_bytes()))
    }

    /// `date`: days since 2000-01-01.
    pub(crate) fn opt_date(&mut self, d: Option<NaiveDate>) -> &mut Self {
        self.opt(d, |s, d| {
            let days = i32::try_from((d - pg_epoch()).num_days()).expect("a date PostgreSQL holds");
            s.field(&days.to_be_bytes())
        })
    }

    /// `timestamptz`: microseconds since 2000-01-01 00:00 UTC.
    pub(crate) fn timestamp(&mut self, t: DateTime<Utc>) -> &mut Self {
        let epoch = pg_epoch().and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let micros = (t - epoch)
            .num_microseconds()
            .expect("an instant PostgreSQL holds");
        self.field(&micros.to_be_bytes())
    }

    /// `jsonb`: its format version, then the JSON text.
    pub(crate) fn jsonb(&mut self, value: &impl serde::Serialize) -> &mut Self {
        let at = self.open_field();
        self.buf.push(1);
        if serde_json::to_writer(&mut self.buf, value).is_err() {
            // A map of JSON values always serializes; never send half of one.
            self.buf.truncate(at + 1);
            self.buf.extend_from_slice(b"{}");
        }
        self.close_field(at)
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_instants_count_from_2000() {
        let mut c = CopyBinary::with_capacity(0);
        c.opt_date(NaiveDate::from_ymd_opt(2000, 1, 2));
        assert_eq!(c.buf, [0, 0, 0, 4, 0, 0, 0, 1]);
        let mut c = CopyBinary::with_capacity(0);
        c.timestamp("1999-12-31T23:59:59Z".parse().unwrap());
        assert_eq!(
            &c.buf[4..],
            &(-1_000_000i64).to_be_bytes(),
            "one second before the epoch"
        );
    }

    #[test]
    fn nulls_have_length_minus_one() {
        let mut c = CopyBinary::with_capacity(0);
        c.row(3)
            .opt_text(None)
            .jsonb(&serde_json::json!({}))
            .joined(["a", "b"].into_iter());
        assert_eq!(
            c.into_bytes(),
            [0, 3, 255, 255, 255, 255, 0, 0, 0, 3, 1, b'{', b'}', 0, 0, 0, 3, b'a', b';', b'b']
        );
        assert_eq!(&HEADER[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(TRAILER, [255, 255]);
    }
}
