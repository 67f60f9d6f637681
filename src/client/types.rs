//! Domain values that can only hold valid data. Parse at the edge (import,
//! webhook, CLI), trust inside.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a value was refused; the caller adds the file, line and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// A client's account id. Text, because account numbers keep leading zeros.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let id = raw.trim();
        if id.is_empty() {
            return Err(invalid("is empty"));
        }
        if id.len() > Self::MAX_LEN {
            return Err(invalid(format!("is longer than {} bytes", Self::MAX_LEN)));
        }
        if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid("contains whitespace or control characters"));
        }
        Ok(Self(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> String {
        id.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, syntax-checked and with its domain lower-cased.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        // email_address accepts RFC 5322 forms (quoted locals, IP literals) that
        // no client record should carry; require the plain everyday shape too.
        let (local, domain) = s
            .rsplit_once('@')
            .ok_or_else(|| invalid(format!("'{s}' has no @")))?;
        let plain = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !s.contains(char::is_whitespace);
        if !plain || !email_address::EmailAddress::is_valid(s) {
            return Err(invalid(format!("'{s}' is not a valid email address")));
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `z***@example.com`: for logs and anything a non-operator sees.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.rsplit_once('@').unwrap_or(("", &self.0));
        let first: String = local.chars().take(1).collect();
        format!("{first}***@{domain}")
    }
}

impl TryFrom<String> for Email {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

/// Debug masks the address so that a stray `{:?}` never logs it.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.masked())
    }
}

/// A mobile number in E.164 form (`+8613812345678`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mobile(String);

impl Mobile {
    /// Accepts mainland numbers with or without `+86`/`0086`/`86`, and
    /// international numbers written with `+` or `00`. Spaces, dashes, dots
    /// and brackets are ignored.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let trimmed = raw.trim();
        let mut digits = String::with_capacity(16);
        for (i, c) in trimmed.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => {}
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(invalid(format!("'{trimmed}' contains '{c}'"))),
            }
        }
        let international = trimmed.starts_with('+') || digits.starts_with("00");
        let digits = digits.strip_prefix("00").unwrap_or(&digits).to_owned();
        let national = if international {
            match digits.strip_prefix("86") {
                Some(rest) => rest.to_owned(),
                None => return Self::international(&digits, trimmed),
            }
        } else if digits.len() == 13 && digits.starts_with("86") {
            digits[2..].to_owned()
        } else {
            digits
        };
        if national.len() != 11 {
            return Err(invalid(format!(
                "'{trimmed}' is not a mainland mobile number (11 digits starting with 1)"
            )));
        }
        let b = national.as_bytes();
        if b[0] != b'1' || !(b'3'..=b'9').contains(&b[1]) {
            return Err(invalid(format!(
                "'{trimmed}' is not a mainland mobile number (must start 13-19)"
            )));
        }
        Ok(Self(format!("+86{national}")))
    }

    /// E.164 allows at most 15 digits including the country code; country
    /// codes never start with 0.
    fn international(digits: &str, raw: &str) -> Result<Self, Invalid> {
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(invalid(format!("'{raw}' is not a valid E.164 number")));
        }
        Ok(Self(format!("+{digits}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `+86138****5678`: for logs and anything a non-operator sees.
    pub fn masked(&self) -> String {
        let n = self.0.len();
        if n < 8 {
            return "****".into();
        }
        format!("{}****{}", &self.0[..n - 8], &self.0[n - 4..])
    }
}

impl TryFrom<String> for Mobile {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}

impl From<Mobile> for String {
    fn from(m: Mobile) -> String {
        m.0
    }
}

impl fmt::Debug for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mobile({})", self.masked())
    }
}

/// A client's risk tolerance, C1 (most conservative) to C5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RiskLevel(u8);

/// A product's or service's risk rating, R1 (lowest) to R5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProductRisk(u8);

macro_rules! level_type {
    ($ty:ident, $prefix:literal, $what:literal) => {
        impl $ty {
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                let s = raw.trim();
                let n = s
                    .strip_prefix($prefix)
                    .or_else(|| s.strip_prefix($prefix.to_ascii_lowercase().as_str()))
                    .and_then(|d| d.parse::<u8>().ok())
                    .filter(|n| (1..=5).contains(n))
                    .ok_or_else(|| {
                        invalid(format!(
                            "'{s}' is not a {} ({}1 to {}5)",
                            $what, $prefix, $prefix
                        ))
                    })?;
                Ok(Self(n))
            }

            pub fn from_number(n: u8) -> Option<Self> {
                (1..=5).contains(&n).then_some(Self(n))
            }

            pub fn number(self) -> u8 {
                self.0
            }
        }

        impl FromStr for $ty {
            type Err = Invalid;
            fn from_str(s: &str) -> Result<Self, Invalid> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = Invalid;
            fn try_from(s: String) -> Result<Self, Invalid> {
                Self::parse(&s)
            }
        }

        impl From<$ty> for String {
            fn from(l: $ty) -> String {
                l.to_string()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }
    };
}

level_type!(RiskLevel, "C", "risk level");
level_type!(ProductRisk, "R", "product risk");

/// Ordinary, or one of the three professional classes of the suitability rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvestorType {
    #[default]
    Ordinary,
    ProfessionalA,
    ProfessionalB,
    ProfessionalC,
}

impl InvestorType {
    pub const ALL: [InvestorType; 4] = [
        Self::Ordinary,
        Self::ProfessionalA,
        Self::ProfessionalB,
        Self::ProfessionalC,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ordinary => "ordinary",
            Self::ProfessionalA => "professional_a",
            Self::ProfessionalB => "professional_b",
            Self::ProfessionalC => "professional_c",
        }
    }

    pub fn is_professional(self) -> bool {
        self != Self::Ordinary
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                invalid(format!(
                    "'{s}' is not an investor type (ordinary, professional_a, professional_b, professional_c)"
                ))
            })
    }
}

impl fmt::Display for InvestorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A listed security's exchange code: six digits for Shanghai/Shenzhen/Beijing
/// A-shares (`600519`), five for Hong Kong (`00700`). Exchange prefixes and
/// suffixes (`SH600519`, `600519.SH`) are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StockCode(String);

impl StockCode {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        let core = s.split_once('.').map_or(s, |(code, _exchange)| code);
        let core = ["SH", "SZ", "BJ", "HK"]
            .iter()
            .find(|p| core.get(..2).is_some_and(|h| h.eq_ignore_ascii_case(p)))
            .map_or(core, |_| &core[2..]);
        let ok = (core.len() == 6 || core.len() == 5) && core.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return Err(invalid(format!("'{}' is not a stock code", raw.trim())));
        }
        Ok(Self(core.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StockCode {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}

impl From<StockCode> for String {
    fn from(c: StockCode) -> String {
        c.0
    }
}

impl fmt::Display for StockCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An amount of Chinese yuan, held exactly in fen (0.01 CNY).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cny(i64);

impl Cny {
    pub fn from_fen(fen: i64) -> Self {
        Self(fen)
    }

    pub fn fen(self) -> i64 {
        self.0
    }

    pub fn yuan(self) -> f64 {
        self.0 as f64 / 100.0
    }

    /// `1234567.89`, `1,234,567.89`, `¥1,234,567.89`, `-12.5`. Thousands
    /// separators must group by three; at most two decimals.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        let bad = || invalid(format!("'{s}' is not an amount in CNY"));
        let body = s.trim_start_matches(['¥', '￥']);
        let (negative, body) = match body.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, body),
        };
        let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
        if int_part.is_empty()
            || frac_part.len() > 2
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let groups: Vec<&str> = int_part.split(',').collect();
        let grouped_ok = groups.len() == 1
            || (!groups[0].is_empty()
                && groups[0].len() <= 3
                && groups[1..].iter().all(|g| g.len() == 3));
        if !grouped_ok || !groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit())) {
            return Err(bad());
        }
        let yuan: i64 = groups.concat().parse().map_err(|_| bad())?;
        let fen: i64 = format!("{frac_part:0<2}").parse().map_err(|_| bad())?;
        let total = yuan
            .checked_mul(100)
            .and_then(|y| y.checked_add(fen))
            .ok_or_else(bad)?;
        Ok(Self(if negative { -total } else { total }))
    }
}

impl fmt::Display for Cny {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Cny {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_numbers_normalise_to_e164() {
        for raw in [
            "13812345678",
            "+86 138 1234 5678",
            "0086-138-1234-5678",
            "8613812345678",
        ] {
            assert_eq!(
                Mobile::parse(raw).unwrap().as_str(),
                "+8613812345678",
                "{raw}"
            );
        }
        assert_eq!(
            Mobile::parse("+1 415 555 2671").unwrap().as_str(),
            "+14155552671"
        );
    }

    #[test]
    fn bad_mobile_numbers_are_refused() {
        for raw in [
            "1381234567",
            "12812345678",
            "138123456789",
            "phone",
            "",
            "+0123456789",
            "138-1234-567x",
        ] {
            assert!(Mobile::parse(raw).is_err(), "{raw} should be refused");
        }
    }

    #[test]
    fn mobile_and_email_mask_for_logs() {
        let m = Mobile::parse("13812345678").unwrap();
        assert_eq!(m.masked(), "+86138****5678");
        assert!(!format!("{m:?}").contains("1234"));
        let e = Email::parse("zhang.san@Example.COM").unwrap();
        assert_eq!(e.as_str(), "zhang.san@example.com");
        assert_eq!(e.masked(), "z***@example.com");
        assert!(!format!("{e:?}").contains("zhang"));
    }

    #[test]
    fn emails_need_the_everyday_shape() {
        for bad in [
            "zhang",
            "zhang@",
            "@x.cn",
            "zhang@localhost",
            "zh ang@x.cn",
            "a@b@c.cn",
            "zhang@.cn",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(Email::parse("li+news@mail.example.cn").is_ok());
    }

    #[test]
    fn risk_levels_compare_as_levels() {
        let c3 = RiskLevel::parse("C3").unwrap();
        assert!(c3 > RiskLevel::parse("c2").unwrap());
        assert!(c3 < RiskLevel::parse("C4").unwrap());
        for bad in ["C0", "C6", "C9", "R3", "3", "C", ""] {
            assert!(RiskLevel::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ProductRisk::parse("R5").unwrap().to_string(), "R5");
        assert!(ProductRisk::parse("C5").is_err());
    }

    #[test]
    fn amounts_parse_exactly_in_fen() {
        assert_eq!(Cny::parse("1234567.89").unwrap().fen(), 123_456_789);
        assert_eq!(Cny::parse("1,234,567.89").unwrap().fen(), 123_456_789);
        assert_eq!(Cny::parse("¥500000").unwrap().fen(), 50_000_000);
        assert_eq!(Cny::parse("0.5").unwrap().fen(), 50);
        assert_eq!(Cny::parse("-12.05").unwrap().to_string(), "-12.05");
        for bad in [
            "12,3x",
            "12,3",
            "1,2345",
            "1.234",
            "",
            "abc",
            ".5",
            "1e6",
            "99999999999999999999",
        ] {
            assert!(Cny::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stock_codes_drop_exchange_marks() {
        for raw in ["600519", "600519.SH", "sh600519", "SH600519"] {
            assert_eq!(StockCode::parse(raw).unwrap().as_str(), "600519");
        }
        assert_eq!(StockCode::parse("00700.HK").unwrap().as_str(), "00700");
        for bad in ["6005", "6005190", "ABCDEF", "", "SH", "贵州茅台", "s中"] {
            assert!(StockCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_ids_keep_leading_zeros() {
        assert_eq!(ClientId::parse(" 000123 ").unwrap().as_str(), "000123");
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("a b").is_err());
    }
}
