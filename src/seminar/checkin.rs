//! Check-in codes: a short code per seminar and client, derived from the
//! tracking secret, so that reminders can carry it and the door can type it
//! without herald storing a table of codes. Six characters from an
//! alphabet without look-alikes (no 0/O, 1/I) give 2^30 codes: a room's
//! codes do not collide in practice, and a collision is refused, not
//! guessed.

use crate::tracking::token::Secret;

const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
pub const CODE_LEN: usize = 6;

/// The check-in code of `client` for `seminar`.
pub fn code(secret: &Secret, seminar: &str, client: &str) -> String {
    let digest = secret.derive(b"herald-checkin", &[seminar.as_bytes(), client.as_bytes()]);
    digest[..CODE_LEN]
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

/// A code as typed at the door: without spaces or dashes, upper case.
pub fn normalise(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Pixels per QR module, and the quiet zone around the code in modules.
const SCALE: usize = 8;
const QUIET: usize = 4;

/// The check-in code as a QR image (PNG) the door can scan.
pub fn qr_png(code: &str) -> Option<Vec<u8>> {
    let qr = qrcode::QrCode::new(code.as_bytes()).ok()?;
    let width = qr.width();
    let dark = qr.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in dark.iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let (x, y) = ((i % width + QUIET) * SCALE, (i / width + QUIET) * SCALE);
        for row in y..y + SCALE {
            pixels[row * side + x..row * side + x + SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().ok()?;
    writer.write_image_data(&pixels).ok()?;
    writer.finish().ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn codes_are_stable_short_and_differ_by_client_and_seminar() {
        let a = code(&secret(), "talk", "c1");
        assert_eq!(a, code(&secret(), "talk", "c1"));
        assert_eq!(a.len(), CODE_LEN);
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(a, code(&secret(), "talk", "c2"));
        assert_ne!(a, code(&secret(), "other", "c1"));
        let codes: std::collections::HashSet<String> = (0..2000)
            .map(|i| code(&secret(), "talk", &format!("c{i}")))
            .collect();
        assert_eq!(codes.len(), 2000, "no collisions in a large room");
    }

    #[test]
    fn the_qr_image_is_a_png_of_whole_modules() {
        let png = qr_png("K7QX2M").unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, info.height);
        assert_eq!(info.width as usize % SCALE, 0);
        assert!(
            info.width as usize >= (21 + 2 * QUIET) * SCALE,
            "version 1 at least"
        );
    }

    #[test]
    fn typed_codes_are_read_kindly() {
        let a = code(&secret(), "talk", "c1");
        assert_eq!(normalise(&format!("  {} ", a.to_lowercase())), a);
    }
}
