//! How amounts, changes, dates and contact points read in a Chinese
//! securities firm's messages. Pure functions; the template helpers wrap them.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// `1234567.891` as `¥1,234,567.89` (negative: `-¥1,234.00`).
pub fn cny(yuan: f64) -> String {
    let sign = if yuan < 0.0 { "-" } else { "" };
    format!("{sign}¥{}", grouped(yuan.abs(), 2))
}

/// Large amounts the way Chinese readers say them: `¥123.46万`,
/// `¥1.23亿`; below ten thousand the full amount.
pub fn cny_short(yuan: f64) -> String {
    let sign = if yuan < 0.0 { "-" } else { "" };
    let a = yuan.abs();
    let body = if a >= 1e8 {
        format!("{}亿", trimmed(a / 1e8))
    } else if a >= 1e4 {
        format!("{}万", trimmed(a / 1e4))
    } else {
        grouped(a, 2)
    };
    format!("{sign}¥{body}")
}

/// Two decimals without trailing zeros: `123.4`, `5`.
fn trimmed(x: f64) -> String {
    let s = format!("{:.2}", round_half_up(x, 2));
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `x` with `decimals` places and thousands separators.
fn grouped(x: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, round_half_up(x, decimals));
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let mut out = String::with_capacity(s.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Rounds half away from zero, as people expect of money (Rust's
/// formatting rounds the binary value, so 2.675 would print 2.67).
fn round_half_up(x: f64, decimals: usize) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    let scaled = x * scale;
    // A nudge below one part in 10^9 makes 2.675 (stored as 2.67499…) round up.
    (scaled + scaled.signum() * 1e-9 * scaled.abs().max(1.0)).round() / scale
}

/// A change in percent points with its sign: `+1.23%`, `-0.50%`, `0.00%`.
pub fn percent(points: f64, decimals: usize) -> String {
    let r = round_half_up(points, decimals);
    let sign = if r > 0.0 { "+" } else { "" };
    // -0.00 prints as 0.00.
    let r = if r == 0.0 { 0.0 } else { r };
    format!("{sign}{r:.decimals$}%")
}

/// The class a rise or fall is styled with (red for up in China).
pub fn trend(points: f64) -> &'static str {
    if points > 0.0 {
        "up"
    } else if points < 0.0 {
        "down"
    } else {
        "flat"
    }
}

/// The inline colour of a rise or fall: red up, green down, as Chinese
/// markets show them (email clients drop stylesheets, so it goes inline).
pub fn trend_color(points: f64) -> &'static str {
    match trend(points) {
        "up" => "color:#d32f2f;",
        "down" => "color:#2e7d32;",
        _ => "color:#666666;",
    }
}

/// A price with two decimals and separators: `1,680.50`.
pub fn price(x: f64) -> String {
    let sign = if x < 0.0 { "-" } else { "" };
    format!("{sign}{}", grouped(x.abs(), 2))
}

/// `2026-11-25` as `2026年11月25日`.
pub fn date_zh(d: NaiveDate) -> String {
    d.format("%Y年%-m月%-d日").to_string()
}

/// An instant in the firm's time zone: `2026年11月25日 08:30`.
pub fn datetime_zh(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y年%-m月%-d日 %H:%M")
        .to_string()
}

/// The time of day of an instant in the firm's time zone: `14:00`.
pub fn time_of_day(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%H:%M").to_string()
}

/// A mobile number with its middle hidden: `+8613812345678` →
/// `138****5678`. Numbers outside China keep their country code.
pub fn mask_phone(phone: &str) -> String {
    let national = phone.strip_prefix("+86").unwrap_or(phone);
    let chars: Vec<char> = national.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// An email address with most of its local part hidden: `z***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_yuan() {
        assert_eq!(cny(1234567.891), "¥1,234,567.89");
        assert_eq!(cny(0.0), "¥0.00");
        assert_eq!(cny(999.995), "¥1,000.00");
        assert_eq!(cny(2.675), "¥2.68");
        assert_eq!(cny(-1234.0), "-¥1,234.00");
    }

    #[test]
    fn amounts_in_wan_and_yi() {
        assert_eq!(cny_short(1234567.0), "¥123.46万");
        assert_eq!(cny_short(50000.0), "¥5万");
        assert_eq!(cny_short(123456789.0), "¥1.23亿");
        assert_eq!(cny_short(9999.5), "¥9,999.50");
        assert_eq!(cny_short(-2e8), "-¥2亿");
    }

    #[test]
    fn changes_carry_their_sign_and_trend() {
        assert_eq!(percent(1.234, 2), "+1.23%");
        assert_eq!(percent(-0.5, 2), "-0.50%");
        assert_eq!(percent(-0.001, 2), "0.00%");
        assert_eq!(percent(10.0, 1), "+10.0%");
        assert_eq!(trend(0.3), "up");
        assert_eq!(trend(-0.3), "down");
        assert_eq!(trend(0.0), "flat");
        assert_eq!(trend_color(1.0), "color:#d32f2f;");
        assert_eq!(trend_color(-1.0), "color:#2e7d32;");
    }

    #[test]
    fn dates_read_in_chinese_in_the_firm_zone() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        assert_eq!(date_zh(d), "2026年1月5日");
        let t = DateTime::parse_from_rfc3339("2026-11-25T00:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            datetime_zh(t, chrono_tz::Asia::Shanghai),
            "2026年11月25日 08:30"
        );
        assert_eq!(time_of_day(t, chrono_tz::Asia::Shanghai), "08:30");
    }

    #[test]
    fn contact_points_are_masked() {
        assert_eq!(mask_phone("+8613812345678"), "138****5678");
        assert_eq!(mask_phone("+447700900123"), "+44******0123");
        assert_eq!(mask_phone("123"), "***");
        assert_eq!(mask_email("zhang.san@example.com"), "z***@example.com");
    }
}
