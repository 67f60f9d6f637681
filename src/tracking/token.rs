//! The signed token every tracking link carries. This module is the one
//! place its format lives; the tracking server only calls [`verify`].
//!
//! A token is URL-safe base64 (no padding) of 26 bytes:
//!
//! ```text
//! version (1) | delivery id, i64 big-endian (8) | action (1) | tag (16)
//! ```
//!
//! where the tag is the first 16 bytes of
//! HMAC-SHA256(secret, version | delivery | action | target). The target (the
//! click URL, empty for other actions) is authenticated but not carried, so a
//! click token cannot be replayed to redirect somewhere else. The token holds
//! only the delivery id, never a client id, so a forwarded link reveals
//! nothing about the client.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
/// 16 bytes (128 bits) of tag: forging stays out of reach while links stay short.
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 8 + 1;
const TOKEN_LEN: usize = HEADER_LEN + TAG_LEN;
/// Base64 length of [`TOKEN_LEN`] bytes without padding: ceil(26 * 4 / 3).
const ENCODED_LEN: usize = (TOKEN_LEN * 4).div_ceil(3);
/// A shorter key would make the HMAC guessable; 16 bytes is the floor.
const MIN_SECRET_LEN: usize = 16;

/// What following the link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Open,
    Click,
    Unsubscribe,
    RsvpYes,
    RsvpNo,
    ViewOnline,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Open => "open",
            Action::Click => "click",
            Action::Unsubscribe => "unsubscribe",
            Action::RsvpYes => "rsvp_yes",
            Action::RsvpNo => "rsvp_no",
            Action::ViewOnline => "view_online",
        }
    }

    /// The byte on the wire. Fixed per action: changing one would invalidate
    /// every link already sent.
    fn code(self) -> u8 {
        match self {
            Action::Open => 1,
            Action::Click => 2,
            Action::Unsubscribe => 3,
            Action::RsvpYes => 4,
            Action::RsvpNo => 5,
            Action::ViewOnline => 6,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Action::Open),
            2 => Some(Action::Click),
            3 => Some(Action::Unsubscribe),
            4 => Some(Action::RsvpYes),
            5 => Some(Action::RsvpNo),
            6 => Some(Action::ViewOnline),
            _ => None,
        }
    }
}

/// The key tokens are signed with. Holds the keyed HMAC state rather than the
/// raw key, and never prints it.
#[derive(Clone)]
pub struct Secret(HmacSha256);

impl Secret {
    /// Refuses keys shorter than 16 bytes.
    pub fn new(key: &[u8]) -> Result<Self, TokenError> {
        if key.len() < MIN_SECRET_LEN {
            return Err(TokenError::WeakSecret {
                min: MIN_SECRET_LEN,
            });
        }
        // HMAC accepts keys of any length, so this cannot fail; map it anyway
        // rather than unwrap.
        HmacSha256::new_from_slice(key)
            .map(Secret)
            .map_err(|_| TokenError::WeakSecret {
                min: MIN_SECRET_LEN,
            })
    }

    /// A MAC keyed with the secret over `parts`, for other derived values
    /// (check-in codes); the domain tag keeps them apart from tokens.
    pub fn derive(&self, domain: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(domain);
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// A fresh MAC over the signed fields of a token.
    fn mac(&self, header: &[u8; HEADER_LEN], target: &str) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(header);
        mac.update(target.as_bytes());
        mac
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    pub delivery: i64,
    pub action: Action,
}

/// Why a token or a secret was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is not a well-formed tracking token")]
    Malformed,
    #[error("the token has unknown version {0}")]
    UnknownVersion(u8),
    #[error("the token's signature does not match")]
    BadSignature,
    #[error("the token has unknown action code {0}")]
    UnknownAction(u8),
    #[error("the tracking secret is shorter than {min} bytes")]
    WeakSecret { min: usize },
}

/// Signs `claims` for a link to `target` (the click URL; "" for other actions).
pub fn sign(secret: &Secret, claims: Claims, target: &str) -> String {
    let header = header(claims);
    let tag = secret.mac(&header, target).finalize().into_bytes();
    let mut token = [0u8; TOKEN_LEN];
    token[..HEADER_LEN].copy_from_slice(&header);
    token[HEADER_LEN..].copy_from_slice(&tag[..TAG_LEN]);
    URL_SAFE_NO_PAD.encode(token)
}

/// Checks `token` was signed with `secret` for `target`, and returns what it
/// claims. Any change to the token, or another target, is refused.
pub fn verify(secret: &Secret, token: &str, target: &str) -> Result<Claims, TokenError> {
    let bytes = decode(token)?;
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&bytes[..HEADER_LEN]);
    let tag = &bytes[HEADER_LEN..];
    if header[0] != VERSION {
        return Err(TokenError::UnknownVersion(header[0]));
    }
    // Constant time, so response timing does not reveal how much of a forged
    // tag was right.
    secret
        .mac(&header, target)
        .verify_truncated_left(tag)
        .map_err(|_| TokenError::BadSignature)?;
    // Only read the fields once they are known to be ours.
    let mut delivery = [0u8; 8];
    delivery.copy_from_slice(&header[1..9]);
    let action = Action::from_code(header[9]).ok_or(TokenError::UnknownAction(header[9]))?;
    Ok(Claims {
        delivery: i64::from_be_bytes(delivery),
        action,
    })
}

fn header(claims: Claims) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0] = VERSION;
    header[1..9].copy_from_slice(&claims.delivery.to_be_bytes());
    header[9] = claims.action.code();
    header
}

/// Decodes exactly one token's bytes. The length is checked before decoding
/// so an oversized input costs nothing. The engine's default configuration
/// rejects non-zero trailing bits, so each token has exactly one spelling:
/// changing the last character always fails instead of decoding to the same
/// bytes.
fn decode(token: &str) -> Result<[u8; TOKEN_LEN], TokenError> {
    if token.len() != ENCODED_LEN {
        return Err(TokenError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| TokenError::Malformed)?;
    bytes.try_into().map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    const ALL: [Action; 6] = [
        Action::Open,
        Action::Click,
        Action::Unsubscribe,
        Action::RsvpYes,
        Action::RsvpNo,
        Action::ViewOnline,
    ];
    const URL: &str = "https://example.com/fund/launch?utm=herald";
    const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    fn secret() -> Secret {
        Secret::new(b"0123456789abcdef-test-secret").expect("test key is long enough")
    }

    fn click(delivery: i64) -> String {
        sign(
            &secret(),
            Claims {
                delivery,
                action: Action::Click,
            },
            URL,
        )
    }

    #[test]
    fn round_trips_every_action() {
        for action in ALL {
            for delivery in [0, 1, 42, i64::MAX, -1, i64::MIN] {
                let claims = Claims { delivery, action };
                let target = if action == Action::Click { URL } else { "" };
                let token = sign(&secret(), claims, target);
                assert_eq!(token.len(), 35);
                assert_eq!(verify(&secret(), &token, target), Ok(claims), "{action:?}");
            }
        }
    }

    #[test]
    fn action_codes_round_trip_and_names_are_stable() {
        for action in ALL {
            assert_eq!(Action::from_code(action.code()), Some(action));
        }
        let names: Vec<_> = ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            names,
            [
                "open",
                "click",
                "unsubscribe",
                "rsvp_yes",
                "rsvp_no",
                "view_online"
            ]
        );
    }

    #[test]
    fn any_changed_character_fails() {
        let token = click(123_456);
        for (i, original) in token.char_indices() {
            for replacement in BASE64URL.chars().filter(|&c| c != original) {
                let mut altered = token.clone();
                altered.replace_range(i..=i, &replacement.to_string());
                assert!(
                    verify(&secret(), &altered, URL).is_err(),
                    "{altered} verified (position {i})"
                );
            }
        }
    }

    #[test]
    fn unused_trailing_bits_are_not_ignored() {
        // The last character carries 2 bits that are not part of the 26
        // bytes; flipping only those must still fail.
        let token = click(7);
        let last = token.as_bytes()[token.len() - 1];
        let index = BASE64URL
            .bytes()
            .position(|c| c == last)
            .expect("base64url char");
        for low_bits in 1..4 {
            let sibling = BASE64URL.as_bytes()[index ^ low_bits] as char;
            let altered = format!("{}{sibling}", &token[..token.len() - 1]);
            assert_eq!(verify(&secret(), &altered, URL), Err(TokenError::Malformed));
        }
    }

    #[test]
    fn click_token_does_not_verify_with_another_target() {
        let token = click(9);
        for other in [
            "https://evil.example/",
            "",
            "https://example.com/fund/launch",
        ] {
            assert_eq!(
                verify(&secret(), &token, other),
                Err(TokenError::BadSignature)
            );
        }
    }

    #[test]
    fn token_from_another_secret_fails() {
        let other = Secret::new(b"another-secret-of-enough-length").expect("long enough");
        let token = sign(
            &other,
            Claims {
                delivery: 9,
                action: Action::Open,
            },
            "",
        );
        assert_eq!(verify(&secret(), &token, ""), Err(TokenError::BadSignature));
    }

    #[test]
    fn unknown_version_is_refused() {
        let mut bytes = decode(&click(5)).expect("own token decodes");
        bytes[0] = 2;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            verify(&secret(), &token, URL),
            Err(TokenError::UnknownVersion(2))
        );
    }

    #[test]
    fn unknown_action_is_refused_even_when_signed() {
        let mut header = header(Claims {
            delivery: 5,
            action: Action::Open,
        });
        header[9] = 200;
        let tag = secret().mac(&header, "").finalize().into_bytes();
        let token = URL_SAFE_NO_PAD.encode([&header[..], &tag[..TAG_LEN]].concat());
        assert_eq!(
            verify(&secret(), &token, ""),
            Err(TokenError::UnknownAction(200))
        );
    }

    #[test]
    fn token_does_not_show_the_delivery_id() {
        let delivery = 987_654_321;
        let token = click(delivery);
        assert!(!token.contains(&delivery.to_string()));
    }

    #[test]
    fn short_secret_is_refused() {
        assert_eq!(
            Secret::new(b"fifteen bytes!!").err(),
            Some(TokenError::WeakSecret { min: 16 })
        );
        assert!(Secret::new(b"sixteen bytes!!!").is_ok());
    }

    #[test]
    fn secret_debug_hides_the_key() {
        let key = "super-secret-key-material";
        let shown = format!("{:?}", Secret::new(key.as_bytes()).expect("long enough"));
        assert!(!shown.contains(key));
        assert!(!shown.contains("super"));
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let long = "A".repeat(1 << 20);
        let cases = [
            "",
            "not a token",
            "====",
            "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",
            "中中中中中中中中中中中AA",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            long.as_str(),
        ];
        for case in cases {
            assert!(verify(&secret(), case, URL).is_err(), "{case:?}");
        }
    }

    #[test]
    fn random_strings_are_refused_without_panicking() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
        let alphabet: Vec<char> = format!("{BASE64URL}+/=. 中\u{0}é").chars().collect();
        for _ in 0..20_000 {
            let len = if rng.gen_bool(0.5) {
                ENCODED_LEN
            } else {
                rng.gen_range(0..80)
            };
            let text: String = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            assert!(verify(&secret(), &text, URL).is_err(), "{text:?}");
        }
    }

    #[test]
    fn random_well_formed_tokens_are_refused() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..2_000 {
            let mut bytes: [u8; TOKEN_LEN] = rng.gen();
            bytes[0] = VERSION;
            let token = URL_SAFE_NO_PAD.encode(bytes);
            assert_eq!(
                verify(&secret(), &token, URL),
                Err(TokenError::BadSignature)
            );
        }
    }
}
