//! Rules of the common shapes, run as native code: a field compared with a
//! literal, the vocabulary's yes/no fields and methods with literal (or
//! `ctx`) arguments, joined by `&&`, `||` and `!`. Such a rule can neither
//! fail nor loop, so its verdict is Rhai's without the interpreter's cost
//! for every client. Anything else (a `let`, a function of the rule's own,
//! a field or argument this module does not know) runs in Rhai;
//! `tests/segment.rs` holds both ways to the same results.

use rhai::{Expr, FnCallExpr, Map, Stmt};

use super::profile::ClientView;
use super::rule::Rule;
use super::vocabulary::{self, Engagement, Today, CHECKS, FLAGS, LOOKUPS, WITHIN};
use crate::channel::Channel;
use crate::client::types::RiskLevel;

/// A rule compiled to native code.
pub struct Native(Pred);

type Leaf = Box<dyn Fn(&ClientView) -> bool + Send + Sync>;

enum Pred {
    All(Vec<Pred>),
    Any(Vec<Pred>),
    Not(Box<Pred>),
    Leaf(Leaf),
}

impl Pred {
    fn test(&self, c: &ClientView) -> bool {
        match self {
            Pred::All(ps) => ps.iter().all(|p| p.test(c)),
            Pred::Any(ps) => ps.iter().any(|p| p.test(c)),
            Pred::Not(p) => !p.test(c),
            Pred::Leaf(f) => f(c),
        }
    }
}

impl Native {
    /// The rule as native code, when all of it is of the shapes above.
    pub fn compile(rule: &Rule, ctx: &Map, today: Today) -> Option<Native> {
        if rule.ast.iter_functions().next().is_some() {
            return None;
        }
        let compiler = Compiler { ctx, today };
        match rule.ast.statements() {
            [Stmt::Expr(e)] => compiler.pred(e),
            // A call standing alone is a statement, not an expression.
            [Stmt::FnCall(call, _)] => compiler.operator(call),
            _ => None,
        }
        .map(Native)
    }

    pub fn verdict(&self, client: &ClientView) -> bool {
        self.0.test(client)
    }
}

struct Compiler<'a> {
    ctx: &'a Map,
    today: Today,
}

impl Compiler<'_> {
    fn pred(&self, e: &Expr) -> Option<Pred> {
        match e {
            Expr::And(es, _) => self.all(es).map(Pred::All),
            Expr::Or(es, _) => self.all(es).map(Pred::Any),
            Expr::FnCall(call, _) => self.operator(call),
            Expr::Dot(bin, _, _) if is_variable(&bin.lhs, "client") => match &bin.rhs {
                Expr::Property(p, _) => flag(p.2.as_str()),
                Expr::MethodCall(call, _) => self.method(call),
                _ => None,
            },
            _ => None,
        }
    }

    fn all(&self, es: &[Expr]) -> Option<Vec<Pred>> {
        es.iter().map(|e| self.pred(e)).collect()
    }

    /// `!x` and comparisons; a function called by name runs in Rhai.
    fn operator(&self, call: &FnCallExpr) -> Option<Pred> {
        call.op_token.as_ref()?;
        match (call.name.as_str(), call.args.as_slice()) {
            ("!", [e]) => Some(Pred::Not(Box::new(self.pred(e)?))),
            (op, [a, b]) => {
                let op = Op::parse(op)?;
                compare(op, a, b).or_else(|| compare(op.flipped(), b, a))
            }
            _ => None,
        }
    }

    /// `client.NAME(...)` with arguments known before the run.
    fn method(&self, call: &FnCallExpr) -> Option<Pred> {
        let name = call.name.as_str();
        let today = self.today;
        let leaf = |f: Leaf| Some(Pred::Leaf(f));
        let lookup = named(LOOKUPS, name);
        match call.args.as_slice() {
            [] => {
                let check = named(CHECKS, name)?;
                leaf(Box::new(move |c| check(c, today)))
            }
            [word] if name == "unsubscribed" => {
                let channel = Channel::parse(&self.text(word)?).ok()?;
                leaf(Box::new(move |c| vocabulary::unsubscribed_from(c, channel)))
            }
            [kind, days, filter @ ..] if name == "did" => {
                self.engagement(&self.text(kind)?, days, filter)
            }
            [word] if lookup.is_some() => {
                let (lookup, word) = (lookup?, self.text(word)?);
                leaf(Box::new(move |c| lookup(c, &word)))
            }
            [days, filter @ ..] => self.engagement(named(WITHIN, name)?, days, filter),
        }
    }

    fn engagement(&self, kind: &str, days: &Expr, filter: &[Expr]) -> Option<Pred> {
        let Expr::IntegerConstant(days, _) = days else {
            return None;
        };
        let filter = match filter {
            [] => None,
            [f] => Some(self.text(f)?),
            _ => return None,
        };
        let question = Engagement::new(kind, *days, filter.as_deref(), self.today).ok()?;
        Some(Pred::Leaf(Box::new(move |c| question.asked_of(c))))
    }

    /// A text literal, or a `ctx` value that is text.
    fn text(&self, e: &Expr) -> Option<String> {
        match e {
            Expr::StringConstant(s, _) => Some(s.to_string()),
            Expr::Dot(bin, _, _) if is_variable(&bin.lhs, "ctx") => match &bin.rhs {
                Expr::Property(p, _) => self
                    .ctx
                    .get(p.2.as_str())?
                    .clone()
                    .into_immutable_string()
                    .ok()
                    .map(|s| s.to_string()),
                _ => None,
            },
            _ => None,
        }
    }
}

fn is_variable(e: &Expr, name: &str) -> bool {
    matches!(e, Expr::Variable(v, _, _) if v.1 == name)
}

/// What `name` stands for in one of the vocabulary's tables.
fn named<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|&(_, t)| t)
}

/// `client.NAME` for a yes/no field.
fn flag(name: &str) -> Option<Pred> {
    Some(Pred::Leaf(Box::new(named(FLAGS, name)?)))
}

/// `client.FIELD OP literal` for the fields rules compare most.
fn compare(op: Op, field: &Expr, literal: &Expr) -> Option<Pred> {
    let Expr::Dot(bin, _, _) = field else {
        return None;
    };
    let Expr::Property(p, _) = &bin.rhs else {
        return None;
    };
    if !is_variable(&bin.lhs, "client") {
        return None;
    }
    let leaf: Leaf = match (p.2.as_str(), literal) {
        ("risk_level", Expr::StringConstant(s, _)) => {
            let level = RiskLevel::parse(s).ok()?.number();
            Box::new(move |c| op.holds(c.suitability().risk_level, level))
        }
        ("assets", Expr::IntegerConstant(n, _)) => {
            // Rhai compares a float with an integer as floats.
            let n = *n as f64;
            Box::new(move |c| op.holds(c.suitability().assets, n))
        }
        ("assets", Expr::FloatConstant(f, _)) => {
            let f = **f;
            Box::new(move |c| op.holds(c.suitability().assets, f))
        }
        _ => return None,
    };
    Some(Pred::Leaf(leaf))
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            _ => return None,
        })
    }

    /// The same comparison with its sides swapped: `a < b` is `b > a`.
    fn flipped(self) -> Op {
        match self {
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
            same => same,
        }
    }

    fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn native(source: &str, ctx: &Map) -> Option<Native> {
        let today = Today {
            date: chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            assessment_valid_days: 730,
        };
        let engine = super::super::engine::engine(today);
        let keys: HashSet<String> = ctx.keys().map(|k| k.to_string()).collect();
        let rule = Rule::compile("r.rhai", source.into(), &engine, &keys).unwrap();
        Native::compile(&rule, ctx, today)
    }

    #[test]
    fn the_common_shapes_compile_and_the_rest_runs_in_rhai() {
        let mut ctx = Map::new();
        ctx.insert("stock".into(), "600519".into());
        ctx.insert("count".into(), rhai::Dynamic::from(3 as rhai::INT));
        for rule in [
            r#"client.risk_level >= "C3" && client.assets >= 1_000_000 && client.consent_sms"#,
            r#"client.holds("600519") || client.watches(ctx.stock)"#,
            r#"client.clicked_within(30) && !client.did("unsubscribed", 365)"#,
            r#""C2" < client.risk_level || !(client.is_professional() || client.has_tag("vip"))"#,
            r#"client.opened_within(7, "email") && !client.unsubscribed("sms")"#,
        ] {
            assert!(native(rule, &ctx).is_some(), "{rule}");
        }
        for rule in [
            // A name the module does not know, a `let`, the rule's own
            // function, a context value that is not text, a computed argument.
            "days_since(client.last_trade_on) > 90",
            "let a = client.assets; a > 5",
            "fn rich(c) { c.assets > 5 } rich(client)",
            "client.holds(ctx.count)",
            "client.holds(client.id)",
            r#"client.unsubscribed("sms") == false"#,
        ] {
            assert!(native(rule, &ctx).is_none(), "{rule}");
        }
    }
}
