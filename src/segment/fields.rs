//! Which parts of a client a rule reads, found by walking the compiled
//! rule, so that the snapshot loads only those. A rule that uses `client`
//! in any other way (passes it on, copies it) gets every part.

use rhai::{ASTNode, Expr, AST};

/// The parts of a client ([`super::profile::Columns`]) that load together. The id is
/// always loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fields(u8);

impl Fields {
    /// name, email, phone, branch, advisor.
    pub const CONTACT: Fields = Fields(1);
    /// investor type, risk level and assessment, lowest category, assets.
    pub const SUITABILITY: Fields = Fields(1 << 1);
    /// tags, holdings, watch list.
    pub const LISTS: Fields = Fields(1 << 2);
    /// birthday, opened on, last trade on.
    pub const DATES: Fields = Fields(1 << 3);
    /// consents and recorded opt-outs.
    pub const CONSENTS: Fields = Fields(1 << 4);
    /// free-form attributes.
    pub const ATTRS: Fields = Fields(1 << 5);
    /// engagement.
    pub const TOUCHES: Fields = Fields(1 << 6);
    pub const ALL: Fields = Fields(0x7f);
    pub const NONE: Fields = Fields(0);

    pub fn contains(self, other: Fields) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn with(self, other: Fields) -> Fields {
        Fields(self.0 | other.0)
    }

    /// What a property or method of `client` reads; `None` for a name the
    /// vocabulary does not have (the name check reports those).
    pub fn of(name: &str) -> Option<Fields> {
        Some(match name {
            // `rsvp` reads the seminar answers, loaded apart (see `calls`).
            "id" | "to_string" | "to_debug" | "rsvp" => Fields::NONE,
            "name" | "email" | "phone" | "branch" | "advisor" | "has_email" | "has_phone" => {
                Fields::CONTACT
            }
            "investor_type"
            | "risk_level"
            | "risk_assessed_on"
            | "lowest_risk_category"
            | "assets"
            | "is_professional"
            | "is_assessed"
            | "assessment_valid" => Fields::SUITABILITY,
            "tags" | "holdings" | "watchlist" | "holds" | "watches" | "has_tag" => Fields::LISTS,
            "birthday" | "opened_on" | "last_trade_on" | "age" | "birthday_within" => Fields::DATES,
            "consent_email" | "consent_sms" | "personalised_marketing" | "unsubscribed" => {
                Fields::CONSENTS
            }
            "attrs" => Fields::ATTRS,
            "did" | "opened_within" | "clicked_within" | "replied_within" | "bounced_within"
            | "attended_within" => Fields::TOUCHES,
            _ => return None,
        })
    }

    /// Everything `ast` reads of `client`.
    pub fn read_by(ast: &AST) -> Fields {
        let mut fields = Fields::NONE;
        ast.walk(&mut |path: &[ASTNode]| {
            let Some(ASTNode::Expr(Expr::Variable(var, _, _))) = path.last() else {
                return true;
            };
            if var.1 != "client" {
                return true;
            }
            let parent = path.len().checked_sub(2).and_then(|i| path.get(i));
            fields = fields.with(match parent {
                Some(ASTNode::Expr(Expr::Dot(bin, _, _))) => member_fields(&bin.rhs),
                _ => Fields::ALL,
            });
            true
        });
        fields
    }
}

/// Whether `ast` calls the method `name` anywhere.
pub fn calls(ast: &AST, name: &str) -> bool {
    let mut found = false;
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::MethodCall(call, _))) = path.last() {
            found |= call.name.as_str() == name;
        }
        !found
    });
    found
}

/// The fields read by the member access on the right of `client.`.
fn member_fields(rhs: &Expr) -> Fields {
    let first = match rhs {
        Expr::Dot(inner, _, _) => &inner.lhs,
        other => other,
    };
    let name = match first {
        Expr::Property(p, _) => p.2.as_str(),
        Expr::MethodCall(call, _) => call.name.as_str(),
        _ => return Fields::ALL,
    };
    Fields::of(name).unwrap_or(Fields::ALL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(src: &str) -> Fields {
        let engine = rhai::Engine::new();
        let mut scope = rhai::Scope::new();
        scope.push("client", ());
        scope.push("ctx", rhai::Map::new());
        Fields::read_by(&engine.compile_with_scope(&scope, src).unwrap())
    }

    #[test]
    fn a_rule_loads_only_what_it_reads() {
        let f = fields(r#"client.risk_level >= "C3" && client.assets > 1 && client.consent_sms"#);
        assert_eq!(f, Fields::SUITABILITY.with(Fields::CONSENTS));
        assert_eq!(
            fields(r#"client.holds("600519") || client.attrs.city == "上海""#),
            Fields::LISTS.with(Fields::ATTRS)
        );
        assert_eq!(fields("client.clicked_within(30)"), Fields::TOUCHES);
        assert_eq!(fields("client.id == \"1\""), Fields::NONE);
    }

    #[test]
    fn a_rule_that_passes_the_client_on_loads_everything() {
        assert_eq!(fields("let c = client; c.assets > 1"), Fields::ALL);
        assert_eq!(
            fields("fn rich(c) { c.assets > 1 } rich(client)"),
            Fields::ALL
        );
    }
}
