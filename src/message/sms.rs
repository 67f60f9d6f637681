//! The size of an SMS as its provider bills it: how many characters, how
//! many billed units, and how many segments (each segment is charged).
//!
//! Providers disagree on what a "character" is, so the count depends on how
//! the gateway bills ([`SmsBilling`]), not only on the text.

use serde::{Deserialize, Serialize};

/// How a gateway bills a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsBilling {
    /// Chinese domestic providers (Alibaba Cloud, carrier-direct): every
    /// character counts one, whatever the script.
    Domestic,
    /// Twilio-like gateways: GSM-7 when the text allows it, UCS-2 otherwise.
    Gsm7,
}

/// The encoding the text is billed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsEncoding {
    Domestic,
    Gsm7,
    Ucs2,
}

/// What one text costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SmsMeasure {
    pub encoding: SmsEncoding,
    /// User-visible characters (Unicode scalar values).
    pub chars: usize,
    /// What is billed: characters (domestic), septets (GSM-7, an extension
    /// character counts 2) or UTF-16 code units (UCS-2).
    pub units: usize,
    pub segments: usize,
}

/// The limits of one encoding: a text that fits `single` units goes as one
/// segment; a longer one is split into parts of `part` units, because each
/// part loses room to the concatenation header.
struct Limits {
    single: usize,
    part: usize,
}

const DOMESTIC: Limits = Limits {
    single: 70,
    part: 67,
};
const GSM7: Limits = Limits {
    single: 160,
    part: 153,
};
const UCS2: Limits = Limits {
    single: 70,
    part: 67,
};

/// Measures `text` the way a gateway with `billing` charges for it. `text`
/// must be the whole text as sent, including any signature the caller adds.
pub fn measure(text: &str, billing: SmsBilling) -> SmsMeasure {
    match billing {
        SmsBilling::Domestic => measure_with(text, SmsEncoding::Domestic, &DOMESTIC, |_| 1),
        SmsBilling::Gsm7 if text.chars().all(is_gsm7) => {
            measure_with(text, SmsEncoding::Gsm7, &GSM7, gsm7_septets)
        }
        SmsBilling::Gsm7 => measure_with(text, SmsEncoding::Ucs2, &UCS2, char::len_utf16),
    }
}

/// Measures `text` where each character costs `units_of` units.
fn measure_with(
    text: &str,
    encoding: SmsEncoding,
    limits: &Limits,
    units_of: impl Fn(char) -> usize,
) -> SmsMeasure {
    let units: usize = text.chars().map(&units_of).sum();
    SmsMeasure {
        encoding,
        chars: text.chars().count(),
        units,
        segments: segments(text.chars().map(units_of), units, limits),
    }
}

/// Counts segments, packing characters greedily into parts. A character is
/// never split across parts (a GSM-7 escape pair, a UTF-16 surrogate pair),
/// because handsets cannot reassemble half a character; so a part may end one
/// unit short and the count can exceed `ceil(units / part)`.
fn segments(sizes: impl Iterator<Item = usize>, units: usize, limits: &Limits) -> usize {
    if units == 0 {
        return 0;
    }
    if units <= limits.single {
        return 1;
    }
    let mut parts = 1;
    let mut used = 0;
    for size in sizes {
        if used + size > limits.part {
            parts += 1;
            used = 0;
        }
        used += size;
    }
    parts
}

/// Whether GSM-7 can carry `c` at all.
fn is_gsm7(c: char) -> bool {
    is_gsm7_basic(c) || is_gsm7_extension(c)
}

/// Septets a GSM-7 character takes: 2 for the extension table (escape +
/// code), 1 for the default alphabet.
fn gsm7_septets(c: char) -> usize {
    if is_gsm7_extension(c) {
        2
    } else {
        1
    }
}

/// The GSM 03.38 default alphabet (without the escape code itself).
fn is_gsm7_basic(c: char) -> bool {
    matches!(c,
        'A'..='Z' | 'a'..='z' | '0'..='9'
        // 0x00-0x0F
        | '@' | '£' | '$' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | '\n' | 'Ø' | 'ø' | '\r' | 'Å' | 'å'
        // 0x10-0x1F (0x1B is the escape)
        | 'Δ' | '_' | 'Φ' | 'Γ' | 'Λ' | 'Ω' | 'Π' | 'Ψ' | 'Σ' | 'Θ' | 'Ξ' | 'Æ' | 'æ' | 'ß' | 'É'
        // 0x20-0x3F: 0x24 is '¤', not '$'
        | ' ' | '!' | '"' | '#' | '¤' | '%' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | '-' | '.' | '/'
        | ':' | ';' | '<' | '=' | '>' | '?'
        // 0x40, 0x5B-0x5F, 0x60, 0x7B-0x7F
        | '¡' | 'Ä' | 'Ö' | 'Ñ' | 'Ü' | '§' | '¿' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à'
    )
}

/// The GSM 03.38 extension table, reached through the escape code.
fn is_gsm7_extension(c: char) -> bool {
    matches!(
        c,
        '\u{0C}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character of the GSM 03.38 default alphabet, escape excluded.
    const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                              ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

    #[test]
    fn gsm7_basic_table_is_complete_and_counts_one() {
        assert_eq!(GSM7_BASIC.chars().count(), 127);
        let m = measure(GSM7_BASIC, SmsBilling::Gsm7);
        assert_eq!(m.encoding, SmsEncoding::Gsm7);
        assert_eq!(m.units, 127);
        assert!(GSM7_BASIC.chars().all(is_gsm7_basic));
    }

    #[test]
    fn gsm7_extension_chars_count_two() {
        for c in "\u{0C}^{}\\[~]|€".chars() {
            let m = measure(&c.to_string(), SmsBilling::Gsm7);
            assert_eq!(
                (m.encoding, m.chars, m.units),
                (SmsEncoding::Gsm7, 1, 2),
                "{c:?}"
            );
        }
    }

    #[test]
    fn backtick_is_not_gsm7_but_yen_is() {
        assert_eq!(measure("a`b", SmsBilling::Gsm7).encoding, SmsEncoding::Ucs2);
        assert_eq!(
            measure("¥100", SmsBilling::Gsm7).encoding,
            SmsEncoding::Gsm7
        );
    }

    #[test]
    fn empty_text_has_no_segment() {
        for billing in [SmsBilling::Domestic, SmsBilling::Gsm7] {
            let m = measure("", billing);
            assert_eq!((m.chars, m.units, m.segments), (0, 0, 0));
        }
    }

    #[test]
    fn domestic_single_segment_boundary() {
        let m = measure(&"中".repeat(70), SmsBilling::Domestic);
        assert_eq!(
            (m.encoding, m.chars, m.units, m.segments),
            (SmsEncoding::Domestic, 70, 70, 1)
        );
        assert_eq!(measure(&"中".repeat(71), SmsBilling::Domestic).segments, 2);
    }

    #[test]
    fn domestic_long_text_boundary() {
        assert_eq!(measure(&"中".repeat(134), SmsBilling::Domestic).segments, 2);
        assert_eq!(measure(&"中".repeat(135), SmsBilling::Domestic).segments, 3);
    }

    #[test]
    fn domestic_counts_ascii_and_emoji_as_one() {
        let m = measure("a中😀", SmsBilling::Domestic);
        assert_eq!((m.chars, m.units, m.segments), (3, 3, 1));
    }

    #[test]
    fn gsm7_single_segment_boundary() {
        let m = measure(&"a".repeat(160), SmsBilling::Gsm7);
        assert_eq!(
            (m.encoding, m.units, m.segments),
            (SmsEncoding::Gsm7, 160, 1)
        );
        assert_eq!(measure(&"a".repeat(161), SmsBilling::Gsm7).segments, 2);
    }

    #[test]
    fn gsm7_long_text_boundary() {
        assert_eq!(measure(&"a".repeat(306), SmsBilling::Gsm7).segments, 2);
        assert_eq!(measure(&"a".repeat(307), SmsBilling::Gsm7).segments, 3);
    }

    #[test]
    fn gsm7_extension_char_counts_double_at_boundary() {
        let fits = measure(&format!("{}€", "a".repeat(158)), SmsBilling::Gsm7);
        assert_eq!((fits.chars, fits.units, fits.segments), (159, 160, 1));
        let over = measure(&format!("{}€", "a".repeat(159)), SmsBilling::Gsm7);
        assert_eq!((over.chars, over.units, over.segments), (160, 161, 2));
    }

    #[test]
    fn gsm7_escape_pair_is_not_split_across_parts() {
        // 306 septets would fill two parts exactly, but the euro sign cannot
        // take the last septet of the first part, so a third part is needed.
        let text = format!("{0}€{0}", "a".repeat(152));
        let m = measure(&text, SmsBilling::Gsm7);
        assert_eq!((m.units, m.segments), (306, 3));
    }

    #[test]
    fn emoji_falls_back_to_ucs2_as_surrogate_pair() {
        let m = measure("Hi 😀", SmsBilling::Gsm7);
        assert_eq!(
            (m.encoding, m.chars, m.units, m.segments),
            (SmsEncoding::Ucs2, 4, 5, 1)
        );
    }

    #[test]
    fn ucs2_surrogate_pair_is_not_split_across_parts() {
        let text = format!("{0}😀{0}", "中".repeat(66));
        let m = measure(&text, SmsBilling::Gsm7);
        assert_eq!((m.units, m.segments), (134, 3));
    }

    #[test]
    fn chinese_on_gsm7_gateway_is_ucs2_with_its_boundaries() {
        let m = measure(&"中".repeat(70), SmsBilling::Gsm7);
        assert_eq!(
            (m.encoding, m.units, m.segments),
            (SmsEncoding::Ucs2, 70, 1)
        );
        assert_eq!(measure(&"中".repeat(71), SmsBilling::Gsm7).segments, 2);
        assert_eq!(measure(&"中".repeat(134), SmsBilling::Gsm7).segments, 2);
        assert_eq!(measure(&"中".repeat(135), SmsBilling::Gsm7).segments, 3);
    }

    #[test]
    fn billing_deserializes_from_snake_case() {
        let billing: SmsBilling = serde_json::from_str("\"gsm7\"").unwrap();
        assert_eq!(billing, SmsBilling::Gsm7);
        let billing: SmsBilling = serde_json::from_str("\"domestic\"").unwrap();
        assert_eq!(billing, SmsBilling::Domestic);
    }
}
