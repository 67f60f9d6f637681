//! The providers configured in `herald.toml` (`[providers.NAME]`, each with
//! a `kind`), built into adapters behind their limits, and the routing that
//! says which provider carries each channel for marketing and for service
//! messages (`[channels]`). Without any provider configured, both channels
//! go to the file outbox, so a fresh setup sends nothing by accident.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::email::mime::{self, Sender};
use super::email::smtp::{SmtpAdapter, SmtpSettings, TlsMode};
use super::limits::{Governed, Limits};
use super::outbox::Outbox;
use super::sms::aliyun::{AliyunAdapter, AliyunSettings};
use super::sms::generic::{GenericAdapter, GenericSettings};
use super::sms::twilio::{TwilioAdapter, TwilioSettings};
use super::{Adapter, Channel};
use crate::campaign::Purpose;
use crate::config::Config;

/// The provider every channel uses when none is configured.
pub const DEFAULT_OUTBOX: &str = "outbox";

/// The kinds of provider, each with its settings (the table without its
/// `kind` and `limits`).
enum ProviderToml {
    Smtp(SmtpToml),
    Outbox(OutboxToml),
    Twilio(TwilioSettings),
    Aliyun(AliyunToml),
    HttpGateway(GenericSettings),
}

const KINDS: &str = "smtp, outbox, twilio, aliyun, http_gateway";

impl ProviderToml {
    fn parse(value: &toml::Value) -> Result<(ProviderToml, Limits), String> {
        let mut table = value.as_table().cloned().ok_or("is not a table")?;
        let kind = match table.remove("kind") {
            Some(toml::Value::String(k)) => k,
            _ => return Err(format!("needs kind = one of {KINDS}")),
        };
        let limits: Limits = match table.remove("limits") {
            Some(v) => v
                .try_into()
                .map_err(|e: toml::de::Error| format!("limits: {}", e.message()))?,
            // Files on local disk need no protecting from a burst.
            None if kind == "outbox" => Limits::local(),
            None => Limits::default(),
        };
        let rest = toml::Value::Table(table);
        let settings = |e: toml::de::Error| e.message().to_owned();
        let parsed = match kind.as_str() {
            "smtp" => ProviderToml::Smtp(rest.try_into().map_err(settings)?),
            "outbox" => ProviderToml::Outbox(rest.try_into().map_err(settings)?),
            "twilio" => ProviderToml::Twilio(rest.try_into().map_err(settings)?),
            "aliyun" => ProviderToml::Aliyun(rest.try_into().map_err(settings)?),
            "http_gateway" => ProviderToml::HttpGateway(rest.try_into().map_err(settings)?),
            other => return Err(format!("kind '{other}' is not one of {KINDS}")),
        };
        Ok((parsed, limits))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AliyunToml {
    access_key_id: String,
    access_key_secret: Option<String>,
    /// The environment variable holding the secret.
    access_key_secret_env: Option<String>,
    /// The approved 签名, e.g. 某某证券.
    sign_name: String,
    endpoint: Option<url::Url>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpToml {
    host: String,
    port: Option<u16>,
    tls: TlsMode,
    username: Option<String>,
    password: Option<String>,
    /// The environment variable holding the password, to keep it out of the file.
    password_env: Option<String>,
    #[serde(default = "default_pool")]
    pool_size: u32,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboxToml {
    dir: PathBuf,
}

fn default_pool() -> u32 {
    8
}

fn default_timeout() -> u64 {
    30
}

/// Which provider carries a channel, per purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub marketing: String,
    pub service: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RouteToml {
    Both(String),
    Split { marketing: String, service: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelsToml {
    email: Option<RouteToml>,
    sms: Option<RouteToml>,
}

/// Every configured provider, built, and the routes between them.
pub struct Providers {
    providers: BTreeMap<String, Arc<Governed>>,
    routes: BTreeMap<Channel, Route>,
    /// Whether outgoing email is DKIM-signed (RFC 8058 one-click needs it).
    pub dkim: bool,
}

impl Providers {
    /// Builds the providers of `config`; every problem names its key. Call
    /// it within the Tokio runtime: the SMTP pool starts its tasks there.
    pub fn from_config(config: &Config) -> Result<Providers, String> {
        let sender = email_sender(config)?;
        let dkim = sender.dkim.is_some();
        let mut sender = Some(sender);
        let mut providers = BTreeMap::new();
        let mut tables = config.providers.clone();
        if tables.is_empty() {
            let mut outbox = toml::Table::new();
            outbox.insert("kind".into(), "outbox".into());
            outbox.insert("dir".into(), "outbox".into());
            tables.insert(DEFAULT_OUTBOX.into(), toml::Value::Table(outbox));
        }
        for (name, table) in &tables {
            let key = format!("providers.{name}");
            let (parsed, limits) = ProviderToml::parse(table).map_err(|m| format!("{key}: {m}"))?;
            for (channel, adapter) in
                build(name, parsed, config, &mut sender).map_err(|m| format!("{key}: {m}"))?
            {
                limits.check().map_err(|m| format!("{key}.limits: {m}"))?;
                providers.insert(
                    provider_key(name, channel),
                    Arc::new(Governed::new(adapter, limits)),
                );
            }
        }
        let routes = routes(config, &providers)?;
        Ok(Providers {
            providers,
            routes,
            dkim,
        })
    }

    /// The provider a message of `channel` and `purpose` goes through;
    /// `preferred` is a campaign's own choice.
    pub fn route(
        &self,
        channel: Channel,
        purpose: Purpose,
        preferred: Option<&str>,
    ) -> Result<&Arc<Governed>, String> {
        let name = match preferred {
            Some(p) => p,
            None => {
                let route = self.routes.get(&channel).ok_or_else(|| {
                    format!(
                        "no provider carries {channel}: add one under [providers] in herald.toml"
                    )
                })?;
                match purpose {
                    Purpose::Marketing => &route.marketing,
                    Purpose::Service => &route.service,
                }
            }
        };
        self.providers
            .get(&provider_key(name, channel))
            .ok_or_else(|| format!("provider '{name}' does not carry {channel}"))
    }

    /// Every built provider with its channel, for `herald channels test`.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Governed>> {
        self.providers.values()
    }

    pub fn routes(&self) -> &BTreeMap<Channel, Route> {
        &self.routes
    }
}

/// An outbox serves both channels: one adapter each, under one name.
fn provider_key(name: &str, channel: Channel) -> String {
    format!("{name}/{channel}")
}

type Built = Vec<(Channel, Arc<dyn Adapter>)>;

fn build(
    name: &str,
    parsed: ProviderToml,
    config: &Config,
    sender: &mut Option<Sender>,
) -> Result<Built, String> {
    Ok(match parsed {
        ProviderToml::Smtp(s) => {
            let credentials = match (&s.username, password(&s)?) {
                (Some(u), Some(p)) => Some((u.clone(), p)),
                (None, None) => None,
                _ => return Err("username and password go together".into()),
            };
            let settings = SmtpSettings {
                port: s.port.unwrap_or(match s.tls {
                    TlsMode::None => 25,
                    TlsMode::Starttls => 587,
                    TlsMode::Implicit => 465,
                }),
                host: s.host,
                tls: s.tls,
                credentials,
                pool_size: s.pool_size,
                timeout: Duration::from_secs(s.timeout_secs.max(1)),
            };
            let sender = take_sender(sender, config)?;
            let adapter = SmtpAdapter::new(name, &settings, sender)?;
            vec![(Channel::Email, Arc::new(adapter) as Arc<dyn Adapter>)]
        }
        ProviderToml::Outbox(o) => {
            let dir = resolve(&config.base_dir, &o.dir);
            vec![
                (
                    Channel::Email,
                    Arc::new(Outbox::email(name, &dir, take_sender(sender, config)?))
                        as Arc<dyn Adapter>,
                ),
                (
                    Channel::Sms,
                    Arc::new(Outbox::sms(name, &dir)) as Arc<dyn Adapter>,
                ),
            ]
        }
        ProviderToml::Twilio(t) => vec![(
            Channel::Sms,
            Arc::new(TwilioAdapter::new(name, &t)?) as Arc<dyn Adapter>,
        )],
        ProviderToml::HttpGateway(g) => vec![(
            Channel::Sms,
            Arc::new(GenericAdapter::new(name, &g)?) as Arc<dyn Adapter>,
        )],
        ProviderToml::Aliyun(a) => {
            let secret = secret_value(
                a.access_key_secret,
                a.access_key_secret_env,
                "access_key_secret",
            )?
            .ok_or("access_key_secret (or access_key_secret_env) is missing")?;
            let mut settings = AliyunSettings::new(&a.access_key_id, &secret, &a.sign_name);
            if let Some(endpoint) = a.endpoint {
                settings.endpoint = endpoint;
            }
            if let Some(t) = a.timeout_secs {
                settings.timeout = Duration::from_secs(t.max(1));
            }
            vec![(
                Channel::Sms,
                Arc::new(AliyunAdapter::new(name, settings)) as Arc<dyn Adapter>,
            )]
        }
    })
}

fn password(s: &SmtpToml) -> Result<Option<String>, String> {
    secret_value(s.password.clone(), s.password_env.clone(), "password")
}

/// A secret written in the file, or named by `KEY_env` and read from the
/// environment (to keep it out of the file).
fn secret_value(
    value: Option<String>,
    env: Option<String>,
    key: &str,
) -> Result<Option<String>, String> {
    match (value, env) {
        (Some(v), None) => Ok(Some(v)),
        (None, Some(var)) => std::env::var(&var)
            .map(Some)
            .map_err(|_| format!("{key}_env: {var} is not set")),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(format!("give {key} or {key}_env, not both")),
    }
}

/// Each email provider needs its own sender (the DKIM key is not `Clone`):
/// the first takes the one already built, later ones build another.
fn take_sender(sender: &mut Option<Sender>, config: &Config) -> Result<Sender, String> {
    match sender.take() {
        Some(s) => Ok(s),
        None => email_sender(config),
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_relative() {
        base.join(p)
    } else {
        p.to_path_buf()
    }
}

/// `[email]`: From, Reply-To, and the DKIM key.
pub fn email_sender(config: &Config) -> Result<Sender, String> {
    let e = &config.email_sender;
    let default_from = format!(
        "{} <noreply@example.com>",
        if config.firm.short_name.is_empty() {
            "herald"
        } else {
            &config.firm.short_name
        }
    );
    let from: lettre::message::Mailbox = e
        .from
        .clone()
        .unwrap_or(default_from)
        .parse()
        .map_err(|err| format!("email.from: {err}"))?;
    let reply_to = e
        .reply_to
        .as_deref()
        .map(|r| r.parse().map_err(|err| format!("email.reply_to: {err}")))
        .transpose()?;
    let dkim = e
        .dkim
        .as_ref()
        .map(|d| {
            let path = resolve(&config.base_dir, &d.private_key_file);
            let pem = std::fs::read_to_string(&path)
                .map_err(|err| format!("email.dkim.private_key_file: {}: {err}", path.display()))?;
            mime::dkim_config(&d.selector, &d.domain, &pem).map_err(|m| format!("email.dkim: {m}"))
        })
        .transpose()?;
    Ok(Sender {
        domain: from.email.domain().to_owned(),
        from,
        reply_to,
        dkim,
    })
}

fn routes(
    config: &Config,
    providers: &BTreeMap<String, Arc<Governed>>,
) -> Result<BTreeMap<Channel, Route>, String> {
    let parsed: ChannelsToml = match &config.channels {
        Some(v) => v
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| format!("channels: {}", e.message()))?,
        None => ChannelsToml::default(),
    };
    let mut routes = BTreeMap::new();
    for (channel, route) in [(Channel::Email, parsed.email), (Channel::Sms, parsed.sms)] {
        let route = match route {
            Some(RouteToml::Both(name)) => Route {
                marketing: name.clone(),
                service: name,
            },
            Some(RouteToml::Split { marketing, service }) => Route { marketing, service },
            None => match carriers(providers, channel)[..] {
                // No provider carries the channel: it has no route, and a
                // message on it is refused when it is sent or validated.
                [] => continue,
                [only] => Route {
                    marketing: only.to_owned(),
                    service: only.to_owned(),
                },
                ref several => {
                    return Err(format!(
                        "channels.{channel}: several providers carry {channel} ({}): name one in [channels]",
                        several.join(", ")
                    ))
                }
            },
        };
        for (purpose, name) in [("marketing", &route.marketing), ("service", &route.service)] {
            if !providers.contains_key(&provider_key(name, channel)) {
                return Err(format!(
                    "channels.{channel}: {purpose} goes through '{name}', which is not a provider of {channel}"
                ));
            }
        }
        routes.insert(channel, route);
    }
    Ok(routes)
}

/// The providers that carry `channel`; with only one, `[channels]` may
/// leave the channel out.
fn carriers(providers: &BTreeMap<String, Arc<Governed>>, channel: Channel) -> Vec<&str> {
    let suffix = format!("/{channel}");
    providers
        .keys()
        .filter_map(|k| k.strip_suffix(&suffix))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        std::fs::write(&path, text).unwrap();
        let c = Config::load(Some(&path), None).unwrap();
        std::mem::forget(dir);
        c
    }

    #[test]
    fn without_providers_everything_goes_to_the_outbox() {
        let p = Providers::from_config(&config("")).unwrap();
        for channel in Channel::ALL {
            let g = p.route(channel, Purpose::Marketing, None).unwrap();
            assert_eq!(g.adapter().name(), DEFAULT_OUTBOX);
            assert_eq!(g.adapter().channel(), channel);
        }
    }

    #[tokio::test]
    async fn marketing_and_service_may_take_different_providers() {
        let c = config(
            "[providers.relay]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\ntls = \"none\"\n\
             [providers.files]\nkind = \"outbox\"\ndir = \"out\"\n\
             [channels]\nemail = { marketing = \"relay\", service = \"files\" }\nsms = \"files\"\n",
        );
        let p = Providers::from_config(&c).unwrap();
        assert_eq!(
            p.route(Channel::Email, Purpose::Marketing, None)
                .unwrap()
                .adapter()
                .name(),
            "relay"
        );
        assert_eq!(
            p.route(Channel::Email, Purpose::Service, None)
                .unwrap()
                .adapter()
                .name(),
            "files"
        );
        assert_eq!(
            p.route(Channel::Email, Purpose::Service, Some("relay"))
                .unwrap()
                .adapter()
                .name(),
            "relay"
        );
        assert!(
            p.route(Channel::Sms, Purpose::Marketing, Some("relay"))
                .is_err(),
            "SMTP carries no SMS"
        );
    }

    #[tokio::test]
    async fn an_email_only_setup_starts_and_refuses_sms_plainly() {
        let c =
            config("[providers.relay]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\ntls = \"none\"\n");
        let p = Providers::from_config(&c).unwrap();
        assert_eq!(
            p.route(Channel::Email, Purpose::Marketing, None)
                .unwrap()
                .adapter()
                .name(),
            "relay"
        );
        let e = p.route(Channel::Sms, Purpose::Service, None).err().unwrap();
        assert!(e.contains("no provider carries sms"), "{e}");
    }

    #[tokio::test]
    async fn two_providers_of_a_channel_need_channels_to_choose() {
        let e = Providers::from_config(&config(
            "[providers.a]\nkind = \"outbox\"\ndir = \"a\"\n[providers.b]\nkind = \"outbox\"\ndir = \"b\"\n",
        ))
        .err()
        .unwrap();
        assert!(e.contains("channels.email") && e.contains("a, b"), "{e}");
    }

    #[test]
    fn mistakes_name_their_key() {
        let err = |text: &str| Providers::from_config(&config(text)).err().unwrap();
        let e = err("[providers.relay]\nkind = \"smtp\"\nhots = \"x\"\ntls = \"none\"\n");
        assert!(
            e.starts_with("providers.relay:") && e.contains("hots"),
            "{e}"
        );
        let e = err("[providers.relay]\nkind = \"carrier_pigeon\"\n");
        assert!(
            e.contains("providers.relay") && e.contains("carrier_pigeon"),
            "{e}"
        );
        let e =
            err("[providers.files]\nkind = \"outbox\"\ndir = \"o\"\n[channels]\nsms = \"nope\"\n");
        assert!(e.contains("channels.sms") && e.contains("'nope'"), "{e}");
        let e = err("[providers.files]\nkind = \"outbox\"\ndir = \"o\"\n[providers.files.limits]\nconcurrency = 0\n");
        assert!(e.contains("providers.files.limits: concurrency"), "{e}");
        let e = err("[email]\nfrom = \"not an address\"\n");
        assert!(e.starts_with("email.from"), "{e}");
    }
}
