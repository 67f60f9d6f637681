//! The compliance gates: for one client the segment selected, whether the
//! campaign may reach them, on which channel, or why not. Pure: the facts
//! from the store (do-not-contact list, bad addresses, recent sends) come in
//! as [`Known`], so every gate is tested without a database.
//!
//! Which gates apply to marketing and which to service messages is
//! [`GATE_TABLE`], the same table as in `rules/README.md`.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use serde::Serialize;

use super::file::{Purpose, SendingRules};
use crate::channel::Channel;
use crate::client::consent::ConsentScope;
use crate::client::types::{Cny, ProductRisk};
use crate::segment::profile::ClientView;
use crate::store::runs::DncKind;

/// Why a selected client gets nothing from a run. The names are stable:
/// reports, `--json` and scripts count by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// `once_per = "campaign"` and an earlier run reached them.
    AlreadySent,
    /// PIPL art. 24: they refused personalised marketing, and a rule chose them.
    RefusedPersonalisation,
    DoNotContact,
    AssessmentMissing,
    AssessmentExpired,
    /// 最低风险承受能力类别: nothing above R1.
    LowestCategory,
    /// An ordinary investor below the product's risk.
    RiskLevel,
    BelowMinAssets,
    NotProfessional,
    /// Another account sharing this contact point is not suitable.
    SharedContactUnsuitable,
    FrequencyCap,
    NoConsent,
    /// herald recorded an opt-out (link, SMS reply, operator).
    Unsubscribed,
    NoAddress,
    BadAddress,
    /// Another account in the run has the same address and gets the message.
    DuplicateContact,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::AlreadySent => "already_sent",
            Reason::RefusedPersonalisation => "refused_personalisation",
            Reason::DoNotContact => "do_not_contact",
            Reason::AssessmentMissing => "assessment_missing",
            Reason::AssessmentExpired => "assessment_expired",
            Reason::LowestCategory => "lowest_category",
            Reason::RiskLevel => "risk_level",
            Reason::BelowMinAssets => "below_min_assets",
            Reason::NotProfessional => "not_professional",
            Reason::SharedContactUnsuitable => "shared_contact_unsuitable",
            Reason::FrequencyCap => "frequency_cap",
            Reason::NoConsent => "no_consent",
            Reason::Unsubscribed => "unsubscribed",
            Reason::NoAddress => "no_address",
            Reason::BadAddress => "bad_address",
            Reason::DuplicateContact => "duplicate_contact",
        }
    }

    /// Whether this reason is about suitability (no override of any kind).
    pub fn is_suitability(self) -> bool {
        matches!(
            self,
            Reason::AssessmentMissing
                | Reason::AssessmentExpired
                | Reason::LowestCategory
                | Reason::RiskLevel
                | Reason::BelowMinAssets
                | Reason::NotProfessional
                | Reason::SharedContactUnsuitable
        )
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the gate table: a gate, and whether it applies to marketing
/// and to service messages.
pub struct GateRow {
    pub gate: &'static str,
    pub marketing: &'static str,
    pub service: &'static str,
}

/// Which gates apply to what: [`decide`] follows this table, and a test
/// holds it equal to the one in `rules/README.md`.
pub const GATE_TABLE: &[GateRow] = &[
    GateRow {
        gate: "no consent for the channel",
        marketing: "yes",
        service: "no",
    },
    GateRow {
        gate: "unsubscribed (an opt-out herald recorded)",
        marketing: "yes",
        service: "no",
    },
    GateRow {
        gate: "the do-not-contact list (`herald suppress`)",
        marketing: "yes",
        service: "yes",
    },
    GateRow {
        gate: "refused personalised marketing (PIPL art. 24)",
        marketing: "rule-selected campaigns",
        service: "no",
    },
    GateRow {
        gate: "no usable or a bounced address (the next channel is tried)",
        marketing: "yes",
        service: "yes",
    },
    GateRow {
        gate: "suitability and entry thresholds (no override of any kind)",
        marketing: "campaigns with a product risk",
        service: "if it promotes a product",
    },
    GateRow {
        gate: "missing or expired risk assessment",
        marketing: "campaigns with a product risk",
        service: "if it promotes a product",
    },
    GateRow {
        gate: "restricted list, release time",
        marketing: "research reports",
        service: "research reports",
    },
    GateRow {
        gate: "frequency cap (rolling 7 days; what other runs have still to send counts too)",
        marketing: "yes",
        service: "no",
    },
    GateRow {
        gate: "once per campaign (`once_per = \"campaign\"`)",
        marketing: "yes",
        service: "yes",
    },
    GateRow {
        gate: "one message per contact point (the most conservative account decides)",
        marketing: "yes",
        service: "yes",
    },
    GateRow {
        gate: "quiet hours for SMS (deferred, not dropped)",
        marketing: "yes",
        service: "configurable",
    },
    GateRow {
        gate: "`send_by` passed (expired, not sent late)",
        marketing: "yes",
        service: "yes",
    },
];

/// What the gates need to know about a campaign.
#[derive(Debug, Clone)]
pub struct Policy {
    pub purpose: Purpose,
    /// Selected by nothing personal (`audience = "broadcast"`).
    pub broadcast: bool,
    pub product_risk: Option<ProductRisk>,
    pub min_assets: Option<Cny>,
    pub professional_only: bool,
    /// Marketing only.
    pub frequency_cap: Option<u32>,
    pub once_per_campaign: bool,
    pub channels: Vec<Channel>,
    pub today: NaiveDate,
    pub assessment_valid_days: u32,
}

impl Policy {
    pub fn new(
        purpose: Purpose,
        broadcast: bool,
        rules: &SendingRules,
        channels: &[Channel],
        default_cap: u32,
        today: NaiveDate,
        assessment_valid_days: u32,
    ) -> Policy {
        Policy {
            purpose,
            broadcast,
            product_risk: rules.product_risk,
            min_assets: rules.min_assets,
            professional_only: rules.professional_only,
            frequency_cap: (purpose == Purpose::Marketing)
                .then(|| rules.frequency_cap.unwrap_or(default_cap).min(default_cap)),
            once_per_campaign: rules.once_per == super::file::OncePer::Campaign,
            channels: channels.to_vec(),
            today,
            assessment_valid_days,
        }
    }

    fn marketing(&self) -> bool {
        self.purpose == Purpose::Marketing
    }
}

/// Facts from the store the gates read.
#[derive(Debug, Default)]
pub struct Known {
    pub do_not_contact: DoNotContact,
    /// Addresses marked bad, per channel.
    pub bad_emails: HashSet<String>,
    pub bad_phones: HashSet<String>,
    /// Marketing messages each client was sent in the last 7 days, and
    /// those other runs have still to send (queued, in flight, uncertain).
    pub recent_marketing: HashMap<String, u32>,
    /// Clients an earlier run of this campaign reached.
    pub already_sent: HashSet<String>,
}

/// The do-not-contact list, by what it names.
#[derive(Debug, Default, Clone)]
pub struct DoNotContact {
    pub clients: HashSet<String>,
    pub emails: HashSet<String>,
    pub phones: HashSet<String>,
}

/// The gates' answer for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Send {
        channel: Channel,
        address: String,
        /// Channels to fall through to if this one fails for a bad address.
        fallback: Vec<Channel>,
    },
    Suppress {
        reason: Reason,
        /// The channel the reason is about, where it is about one.
        channel: Option<Channel>,
    },
}

fn suppress(reason: Reason) -> Verdict {
    Verdict::Suppress {
        reason,
        channel: None,
    }
}

/// Runs every per-client gate, in order. The run-wide ones (restricted
/// stocks, release time) are checked before, the contact-point ones after
/// ([`dedupe_contacts`]).
pub fn decide(policy: &Policy, known: &Known, client: &ClientView) -> Verdict {
    let id = client.id();
    if policy.once_per_campaign && known.already_sent.contains(id) {
        return suppress(Reason::AlreadySent);
    }
    let consents = client.consents();
    if policy.marketing()
        && !policy.broadcast
        && !consents.granted[ConsentScope::PersonalisedMarketing.index()]
    {
        return suppress(Reason::RefusedPersonalisation);
    }
    if known.do_not_contact.clients.contains(id) {
        return suppress(Reason::DoNotContact);
    }
    if let Some(reason) = unsuitable(policy, client) {
        return suppress(reason);
    }
    if let Some(cap) = policy.frequency_cap {
        if known.recent_marketing.get(id).copied().unwrap_or(0) >= cap {
            return suppress(Reason::FrequencyCap);
        }
    }
    reachable(policy, known, client)
}

/// The suitability verdict (证券期货投资者适当性管理办法): `None` when the
/// client may be offered the campaign's product, or there is no product.
pub fn unsuitable(policy: &Policy, client: &ClientView) -> Option<Reason> {
    let product = policy.product_risk?;
    let s = client.suitability();
    let Some(assessed_on) = s.risk_assessed_on.filter(|_| s.risk_level > 0) else {
        return Some(Reason::AssessmentMissing);
    };
    if (policy.today - assessed_on).num_days() >= i64::from(policy.assessment_valid_days) {
        return Some(Reason::AssessmentExpired);
    }
    if s.lowest_risk_category && product.number() > 1 {
        return Some(Reason::LowestCategory);
    }
    if !s.investor_type.is_professional() && s.risk_level < product.number() {
        return Some(Reason::RiskLevel);
    }
    if policy.professional_only && !s.investor_type.is_professional() {
        return Some(Reason::NotProfessional);
    }
    if let Some(min) = policy.min_assets {
        if s.assets < min.yuan() {
            return Some(Reason::BelowMinAssets);
        }
    }
    None
}

/// The first channel, in the campaign's order, the client can be reached
/// on. When none can, the weightiest reason: a recorded refusal says more
/// than a missing address.
fn reachable(policy: &Policy, known: &Known, client: &ClientView) -> Verdict {
    let weight = |r: Reason| match r {
        Reason::DoNotContact => 0,
        Reason::Unsubscribed => 1,
        Reason::BadAddress => 2,
        Reason::NoConsent => 3,
        _ => 4,
    };
    let mut refusal: Option<(Reason, Channel)> = None;
    let mut chosen: Option<(Channel, String)> = None;
    let mut fallback = Vec::new();
    for &channel in &policy.channels {
        match channel_check(policy, known, client, channel) {
            Ok(address) if chosen.is_none() => chosen = Some((channel, address)),
            Ok(_) => fallback.push(channel),
            Err(reason) => {
                if refusal.is_none_or(|(r, _)| weight(reason) < weight(r)) {
                    refusal = Some((reason, channel));
                }
            }
        }
    }
    match (chosen, refusal) {
        (Some((channel, address)), _) => Verdict::Send {
            channel,
            address,
            fallback,
        },
        (None, Some((reason, channel))) => Verdict::Suppress {
            reason,
            channel: Some(channel),
        },
        (None, None) => suppress(Reason::NoAddress),
    }
}

/// The address to use on `channel`, or why it cannot be used.
pub fn channel_check(
    policy: &Policy,
    known: &Known,
    client: &ClientView,
    channel: Channel,
) -> Result<String, Reason> {
    let contact = client.contact();
    let (address, bad, listed) = match channel {
        Channel::Email => (
            &contact.email,
            &known.bad_emails,
            &known.do_not_contact.emails,
        ),
        Channel::Sms => (
            &contact.phone,
            &known.bad_phones,
            &known.do_not_contact.phones,
        ),
    };
    let address = address.as_ref().ok_or(Reason::NoAddress)?;
    if bad.contains(address) {
        return Err(Reason::BadAddress);
    }
    let listed_form = DncKind::of_channel(channel).listed_form(address);
    if !listed.is_empty() && listed.contains(listed_form.as_ref()) {
        return Err(Reason::DoNotContact);
    }
    if policy.marketing() {
        let scope = ConsentScope::from(channel).index();
        let consents = client.consents();
        if consents.opted_out[scope] {
            return Err(Reason::Unsubscribed);
        }
        if !consents.granted[scope] {
            return Err(Reason::NoConsent);
        }
    }
    Ok(address.clone())
}

/// One planned message per address: of clients sharing a contact point,
/// the first (in id order) keeps it and the others are suppressed as
/// duplicates. For a product campaign the most conservative account
/// decides: if any selected client with that address is unsuitable,
/// nobody at that address gets the product. `verdicts` is in id order;
/// `unsuitable_addresses` holds the emails and numbers of selected clients
/// the suitability gate refused.
pub fn dedupe_contacts(verdicts: &mut [Verdict], unsuitable_addresses: &HashSet<String>) {
    let mut seen: HashSet<(Channel, String)> = HashSet::new();
    for v in verdicts.iter_mut() {
        let Verdict::Send {
            channel, address, ..
        } = v
        else {
            continue;
        };
        let (channel, address) = (*channel, address.clone());
        if unsuitable_addresses.contains(&address) {
            *v = Verdict::Suppress {
                reason: Reason::SharedContactUnsuitable,
                channel: Some(channel),
            };
        } else if !seen.insert((channel, address)) {
            *v = Verdict::Suppress {
                reason: Reason::DuplicateContact,
                channel: Some(channel),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::types::InvestorType;
    use crate::segment::profile::{Columns, Consents, Contact, Suitability};
    use std::sync::Arc;

    const TODAY: (i32, u32, u32) = (2026, 11, 25);

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(TODAY.0, TODAY.1, TODAY.2).unwrap()
    }

    struct C {
        id: &'static str,
        level: u8,
        assessed_days_ago: Option<i64>,
        lowest: bool,
        investor: InvestorType,
        assets: f64,
        email: Option<&'static str>,
        phone: Option<&'static str>,
        consents: Consents,
    }

    fn c(id: &'static str, level: u8) -> C {
        C {
            id,
            level,
            assessed_days_ago: Some(30),
            lowest: false,
            investor: InvestorType::Ordinary,
            assets: 100_000.0,
            email: Some("a@example.com"),
            phone: Some("+8613800000000"),
            consents: Consents {
                granted: [true; 3],
                opted_out: [false; 3],
            },
        }
    }

    fn views(clients: &[C]) -> Vec<ClientView> {
        let mut cols = Columns::default();
        for x in clients {
            cols.ids.push(x.id.into());
            cols.contact.push(Contact {
                name: x.id.into(),
                email: x.email.map(Into::into),
                phone: x.phone.map(Into::into),
                ..Contact::default()
            });
            cols.suitability.push(Suitability {
                investor_type: x.investor,
                risk_level: x.level,
                risk_assessed_on: x
                    .assessed_days_ago
                    .map(|d| today() - chrono::Duration::days(d)),
                lowest_risk_category: x.lowest,
                assets: x.assets,
            });
            cols.consents.push(x.consents);
        }
        let cols = Arc::new(cols);
        (0..clients.len())
            .map(|i| ClientView::new(cols.clone(), i))
            .collect()
    }

    fn policy(risk: Option<u8>) -> Policy {
        Policy {
            purpose: Purpose::Marketing,
            broadcast: false,
            product_risk: risk.and_then(ProductRisk::from_number),
            min_assets: None,
            professional_only: false,
            frequency_cap: Some(3),
            once_per_campaign: false,
            channels: vec![Channel::Email, Channel::Sms],
            today: today(),
            assessment_valid_days: 730,
        }
    }

    fn verdict(p: &Policy, k: &Known, x: C) -> Verdict {
        decide(p, k, &views(&[x])[0])
    }

    fn reason(v: Verdict) -> Option<Reason> {
        match v {
            Verdict::Suppress { reason, .. } => Some(reason),
            Verdict::Send { .. } => None,
        }
    }

    #[test]
    fn the_gate_table_is_the_one_in_the_staff_guide() {
        let guide = include_str!("../../rules/README.md");
        let table = &guide[guide.find("| gate | marketing | service |").unwrap()..];
        let rows: Vec<Vec<&str>> = table
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
            .collect();
        assert_eq!(rows.len(), GATE_TABLE.len());
        for (row, gate) in rows.iter().zip(GATE_TABLE) {
            assert_eq!(
                &row[..3],
                &[gate.gate, gate.marketing, gate.service],
                "rules/README.md differs from GATE_TABLE"
            );
        }
    }

    #[test]
    fn an_ordinary_investor_gets_a_product_only_at_its_level_or_above() {
        let k = Known::default();
        assert_eq!(
            reason(verdict(&policy(Some(4)), &k, c("1", 3))),
            Some(Reason::RiskLevel)
        );
        assert_eq!(reason(verdict(&policy(Some(4)), &k, c("1", 4))), None);
        assert_eq!(reason(verdict(&policy(Some(3)), &k, c("1", 5))), None);
        // No product: no suitability gate.
        assert_eq!(reason(verdict(&policy(None), &k, c("1", 1))), None);
    }

    #[test]
    fn the_lowest_category_gets_r1_only_whatever_its_recorded_level() {
        let k = Known::default();
        let lowest = || C {
            lowest: true,
            ..c("1", 3)
        };
        assert_eq!(
            reason(verdict(&policy(Some(2)), &k, lowest())),
            Some(Reason::LowestCategory)
        );
        assert_eq!(reason(verdict(&policy(Some(1)), &k, lowest())), None);
    }

    #[test]
    fn a_missing_or_expired_assessment_gets_no_product_marketing() {
        let k = Known::default();
        let expired = C {
            assessed_days_ago: Some(730),
            ..c("1", 5)
        };
        assert_eq!(
            reason(verdict(&policy(Some(3)), &k, expired)),
            Some(Reason::AssessmentExpired)
        );
        let missing = C {
            assessed_days_ago: None,
            ..c("1", 5)
        };
        assert_eq!(
            reason(verdict(&policy(Some(1)), &k, missing)),
            Some(Reason::AssessmentMissing)
        );
        let unassessed = c("1", 0);
        assert_eq!(
            reason(verdict(&policy(Some(1)), &k, unassessed)),
            Some(Reason::AssessmentMissing)
        );
        // Without a product the assessment does not matter.
        let expired = C {
            assessed_days_ago: Some(9999),
            ..c("1", 5)
        };
        assert_eq!(reason(verdict(&policy(None), &k, expired)), None);
    }

    #[test]
    fn professionals_pass_the_level_match_but_not_the_entry_thresholds() {
        let k = Known::default();
        let pro = || C {
            investor: InvestorType::ProfessionalA,
            assets: 100_000.0,
            ..c("1", 1)
        };
        assert_eq!(reason(verdict(&policy(Some(5)), &k, pro())), None);
        let mut p = policy(Some(5));
        p.min_assets = Some(Cny::parse("1000000").unwrap());
        assert_eq!(reason(verdict(&p, &k, pro())), Some(Reason::BelowMinAssets));
        let mut p = policy(Some(3));
        p.professional_only = true;
        assert_eq!(
            reason(verdict(&p, &k, c("1", 5))),
            Some(Reason::NotProfessional)
        );
        assert_eq!(reason(verdict(&p, &k, pro())), None);
    }

    #[test]
    fn consent_and_opt_outs_decide_the_channel_for_marketing_only() {
        let k = Known::default();
        let no_email = C {
            consents: Consents {
                granted: [false, true, true],
                opted_out: [false; 3],
            },
            ..c("1", 3)
        };
        match verdict(&policy(None), &k, no_email) {
            Verdict::Send {
                channel,
                address,
                fallback,
            } => {
                assert_eq!(channel, Channel::Sms);
                assert_eq!(address, "+8613800000000");
                assert!(fallback.is_empty());
            }
            v => panic!("{v:?}"),
        }
        let opted_out = C {
            consents: Consents {
                granted: [true, false, true],
                opted_out: [true, false, false],
            },
            ..c("1", 3)
        };
        assert_eq!(
            verdict(&policy(None), &k, opted_out),
            Verdict::Suppress {
                reason: Reason::Unsubscribed,
                channel: Some(Channel::Email)
            }
        );
        let none = C {
            consents: Consents {
                granted: [false, false, true],
                opted_out: [false; 3],
            },
            ..c("1", 3)
        };
        let mut service = policy(None);
        service.purpose = Purpose::Service;
        service.frequency_cap = None;
        assert!(matches!(
            verdict(&service, &k, none),
            Verdict::Send {
                channel: Channel::Email,
                ..
            }
        ));
    }

    #[test]
    fn pipl_refusal_allows_broadcasts_only() {
        let k = Known::default();
        let refused = || C {
            consents: Consents {
                granted: [true, true, false],
                opted_out: [false; 3],
            },
            ..c("1", 3)
        };
        assert_eq!(
            reason(verdict(&policy(None), &k, refused())),
            Some(Reason::RefusedPersonalisation)
        );
        let mut broadcast = policy(None);
        broadcast.broadcast = true;
        assert_eq!(reason(verdict(&broadcast, &k, refused())), None);
    }

    #[test]
    fn lists_caps_and_bad_addresses() {
        let mut k = Known::default();
        k.do_not_contact.clients.insert("1".into());
        assert_eq!(
            reason(verdict(&policy(None), &k, c("1", 3))),
            Some(Reason::DoNotContact)
        );
        let mut k = Known::default();
        k.recent_marketing.insert("1".into(), 3);
        assert_eq!(
            reason(verdict(&policy(None), &k, c("1", 3))),
            Some(Reason::FrequencyCap)
        );
        let mut service = policy(None);
        service.purpose = Purpose::Service;
        service.frequency_cap = None;
        assert_eq!(reason(verdict(&service, &k, c("1", 3))), None);
        let mut k = Known::default();
        k.bad_emails.insert("a@example.com".into());
        assert!(matches!(
            verdict(&policy(None), &k, c("1", 3)),
            Verdict::Send {
                channel: Channel::Sms,
                ..
            }
        ));
        k.do_not_contact.phones.insert("+8613800000000".into());
        // A recorded refusal outweighs a bad address.
        assert_eq!(
            verdict(&policy(None), &k, c("1", 3)),
            Verdict::Suppress {
                reason: Reason::DoNotContact,
                channel: Some(Channel::Sms)
            }
        );
        k.do_not_contact.phones.clear();
        k.bad_phones.insert("+8613800000000".into());
        assert_eq!(
            verdict(&policy(None), &k, c("1", 3)),
            Verdict::Suppress {
                reason: Reason::BadAddress,
                channel: Some(Channel::Email)
            }
        );
        let mut k = Known::default();
        k.already_sent.insert("1".into());
        let mut once = policy(None);
        once.once_per_campaign = true;
        assert_eq!(
            reason(verdict(&once, &k, c("1", 3))),
            Some(Reason::AlreadySent)
        );
    }

    #[test]
    fn one_message_per_contact_point_and_the_most_conservative_account_decides() {
        let p = policy(Some(3));
        let k = Known::default();
        let clients = [
            c("1", 4),
            c("2", 5),
            C {
                email: Some("b@example.com"),
                ..c("3", 2)
            },
        ];
        let views = views(&clients);
        let mut verdicts: Vec<Verdict> = views.iter().map(|v| decide(&p, &k, v)).collect();
        assert_eq!(reason(verdicts[2].clone()), Some(Reason::RiskLevel));
        dedupe_contacts(&mut verdicts, &HashSet::new());
        assert_eq!(reason(verdicts[0].clone()), None);
        assert_eq!(reason(verdicts[1].clone()), Some(Reason::DuplicateContact));
        // Client 3 (C2) shares client 1's mobile: nobody on it gets an R3 product.
        let mut verdicts: Vec<Verdict> = views.iter().map(|v| decide(&p, &k, v)).collect();
        let unsuitable: HashSet<String> = ["b@example.com".into(), "+8613800000000".into()].into();
        dedupe_contacts(&mut verdicts, &unsuitable);
        assert_eq!(
            reason(verdicts[0].clone()),
            None,
            "a@example.com is not shared with 3"
        );
        let mut sms_first = p.clone();
        sms_first.channels = vec![Channel::Sms];
        let mut verdicts: Vec<Verdict> = views.iter().map(|v| decide(&sms_first, &k, v)).collect();
        dedupe_contacts(&mut verdicts, &unsuitable);
        assert_eq!(
            reason(verdicts[0].clone()),
            Some(Reason::SharedContactUnsuitable)
        );
        assert_eq!(
            reason(verdicts[1].clone()),
            Some(Reason::SharedContactUnsuitable)
        );
    }
}
