//! The addresses of tracking links: one path per action under the
//! configured base URL, each carrying a signed token. The tracking server
//! routes the same paths.

use url::Url;

use super::token::{self, Action, Claims, Secret};

/// Signs links for deliveries.
#[derive(Debug, Clone)]
pub struct Links {
    base: String,
    secret: Secret,
}

/// The query parameter that carries a click's destination.
pub const TARGET_PARAM: &str = "u";

impl Links {
    pub fn new(base_url: &Url, secret: Secret) -> Self {
        Self {
            base: base_url.as_str().trim_end_matches('/').to_owned(),
            secret,
        }
    }

    /// The path segment each action is served under.
    pub fn segment(action: Action) -> &'static str {
        match action {
            Action::Open => "o",
            Action::Click => "c",
            Action::Unsubscribe => "u",
            Action::RsvpYes | Action::RsvpNo => "r",
            Action::ViewOnline => "v",
        }
    }

    /// A link that redirects to `target` and records the click.
    pub fn click(&self, delivery: i64, target: &str) -> String {
        let token = self.token(delivery, Action::Click, target);
        let mut url = format!("{}/c/{token}", self.base);
        url.push('?');
        url.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .append_pair(TARGET_PARAM, target)
                .finish(),
        );
        url
    }

    /// The link for an action that has no destination of its own.
    pub fn action(&self, delivery: i64, action: Action) -> String {
        let token = self.token(delivery, action, "");
        let suffix = if action == Action::Open { ".gif" } else { "" };
        format!("{}/{}/{token}{suffix}", self.base, Self::segment(action))
    }

    /// `unsubscribe+TOKEN@example.com` for the mailbox
    /// `unsubscribe@example.com`: mail to it unsubscribes this delivery's
    /// client (`herald inbound ingest`).
    pub fn unsubscribe_mailto(&self, delivery: i64, mailbox: &str) -> Option<String> {
        let (local, domain) = mailbox.trim().split_once('@')?;
        let token = self.token(delivery, Action::Unsubscribe, "");
        Some(format!("{local}+{token}@{domain}"))
    }

    fn token(&self, delivery: i64, action: Action, target: &str) -> String {
        token::sign(&self.secret, Claims { delivery, action }, target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links {
        let base = Url::parse("https://t.example.com/").unwrap();
        Links::new(&base, Secret::new(b"0123456789abcdef0123").unwrap())
    }

    #[test]
    fn a_click_link_carries_its_destination_and_verifies() {
        let l = links();
        let target = "https://research.example.com/r?id=1&lang=zh";
        let url = Url::parse(&l.click(42, target)).unwrap();
        assert_eq!(url.host_str(), Some("t.example.com"));
        let (_, tok) = url.path().rsplit_once('/').unwrap();
        let (_, dest) = url.query_pairs().find(|(k, _)| k == TARGET_PARAM).unwrap();
        assert_eq!(dest, target);
        let claims = token::verify(&l.secret, tok, &dest).unwrap();
        assert_eq!(claims.delivery, 42);
        assert_eq!(claims.action, Action::Click);
        assert!(token::verify(&l.secret, tok, "https://evil.example.com").is_err());
    }

    #[test]
    fn each_action_has_its_own_path() {
        let l = links();
        assert!(l.action(7, Action::Open).ends_with(".gif"));
        assert!(l
            .action(7, Action::Unsubscribe)
            .starts_with("https://t.example.com/u/"));
        assert!(l
            .action(7, Action::RsvpNo)
            .starts_with("https://t.example.com/r/"));
        assert_ne!(l.action(7, Action::RsvpYes), l.action(7, Action::RsvpNo));
        assert!(!l.action(12345, Action::ViewOnline).contains("12345"));
    }
}
