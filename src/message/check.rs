//! Finds every name a template references and checks it against the shape
//! of the data it will be rendered with. Handlebars' strict mode fails only
//! while rendering, and never inside `{{#if}}`, so a misspelt name in a
//! branch most clients skip would go out unnoticed; this walk finds it
//! before anything is sent, with its file and line.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use handlebars::template::{
    BlockParam, DecoratorTemplate, HelperTemplate, Parameter, Template, TemplateElement,
};

use super::helpers::{self, is_helper, Returns, BUILTIN_HELPERS, HOLDING_QUOTE_FIELDS};
use super::shape::Shape;
use super::template::plain_name;
use crate::diagnostic::Problem;

/// A compiled template and the file it came from.
#[derive(Debug, Clone)]
pub struct SourceTemplate {
    pub file: PathBuf,
    pub template: Template,
}

/// What a check found: problems, and the partials the template pulls in
/// (a research report must include the risk disclaimer).
#[derive(Debug, Default)]
pub struct Findings {
    pub problems: Vec<Problem>,
    pub partials_used: BTreeSet<String>,
    pub helpers_used: BTreeSet<String>,
}

/// Checks `template` against `root`, following partials.
pub fn check(
    template: &SourceTemplate,
    root: &Shape,
    partials: &BTreeMap<String, SourceTemplate>,
) -> Findings {
    let mut checker = Checker {
        root,
        partials,
        findings: Findings::default(),
        partial_stack: Vec::new(),
    };
    let frames = vec![Frame::new(root.clone())];
    checker.walk(&template.template, &template.file, &frames);
    checker.findings
}

/// One level of context: what `this` is, and the block parameters bound
/// at this level.
#[derive(Debug, Clone)]
struct Frame {
    this: Shape,
    locals: HashMap<String, Shape>,
}

impl Frame {
    fn new(this: Shape) -> Self {
        Self {
            this,
            locals: HashMap::new(),
        }
    }
}

struct Checker<'a> {
    root: &'a Shape,
    partials: &'a BTreeMap<String, SourceTemplate>,
    findings: Findings,
    /// Partials being walked, so that a partial including itself stops.
    partial_stack: Vec<String>,
}

/// Where an element is: its file, line and column.
#[derive(Clone, Copy)]
struct At<'p> {
    file: &'p Path,
    line: usize,
    column: usize,
}

impl Checker<'_> {
    fn walk(&mut self, t: &Template, file: &Path, frames: &[Frame]) {
        for (i, element) in t.elements.iter().enumerate() {
            let (line, column) = t.mapping.get(i).map_or((0, 0), |m| (m.0, m.1));
            let at = At { file, line, column };
            match element {
                TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                    self.expression(h, frames, at);
                }
                TemplateElement::HelperBlock(h) => self.block(h, frames, at),
                TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                    self.partial(d, frames, at);
                }
                TemplateElement::DecoratorExpression(d) | TemplateElement::DecoratorBlock(d) => {
                    self.report(
                        at,
                        &name_of(&d.name),
                        "decorators are not supported in herald templates",
                    );
                }
                TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
                _ => {}
            }
        }
    }

    fn report(&mut self, at: At<'_>, subject: &str, message: impl Into<String>) {
        self.findings.problems.push(
            Problem::error(at.file, message)
                .at(at.line, at.column)
                .about(subject),
        );
    }

    /// `{{name}}`, `{{client.name}}` or `{{helper args}}`; returns the shape
    /// of what it yields.
    fn expression(&mut self, h: &HelperTemplate, frames: &[Frame], at: At<'_>) -> Shape {
        self.call(&h.name, &h.params, h.hash.values(), frames, at)
    }

    fn call<'p>(
        &mut self,
        name: &Parameter,
        params: &[Parameter],
        hash: impl Iterator<Item = &'p Parameter>,
        frames: &[Frame],
        at: At<'_>,
    ) -> Shape {
        // `{{unsubscribe_url}}` parses as a path, yet calls the helper.
        let called = name_of(name);
        let helper_name = is_helper(&called).then_some(called.as_str());
        let args: Vec<Shape> = params.iter().map(|p| self.param(p, frames, at)).collect();
        for p in hash {
            self.param(p, frames, at);
        }
        match helper_name {
            Some(h) => {
                self.findings.helpers_used.insert(h.to_owned());
                self.helper_result(h, &args, at)
            }
            None if params.is_empty() => self.param(name, frames, at),
            None => {
                let n = name_of(name);
                let hint = suggest(&n, all_helpers());
                self.report(at, &n, format!("unknown helper{hint}"));
                Shape::Any
            }
        }
    }

    fn helper_result(&mut self, name: &str, args: &[Shape], at: At<'_>) -> Shape {
        let Some(sig) = helpers::signature(name) else {
            return if name == "lookup" {
                Shape::Any
            } else {
                Shape::Scalar
            };
        };
        if args.len() < sig.min_args || args.len() > sig.max_args {
            let wanted = if sig.min_args == sig.max_args {
                sig.min_args.to_string()
            } else {
                format!("{} to {}", sig.min_args, sig.max_args)
            };
            self.report(
                at,
                name,
                format!("takes {wanted} argument(s), given {}", args.len()),
            );
        }
        match sig.returns {
            Returns::Text => Shape::Scalar,
            Returns::HoldingQuotes => Shape::Array(Box::new(Shape::Object(
                HOLDING_QUOTE_FIELDS
                    .iter()
                    .map(|f| ((*f).to_owned(), Shape::Scalar))
                    .collect(),
            ))),
        }
    }

    /// A helper's argument: a path, a literal or a sub-expression.
    fn param(&mut self, p: &Parameter, frames: &[Frame], at: At<'_>) -> Shape {
        match p {
            Parameter::Literal(_) => Shape::Scalar,
            Parameter::Name(n) => self.path(n, frames, at),
            Parameter::Path(path) => match path {
                handlebars::Path::Relative((_, raw)) => self.path(raw, frames, at),
                handlebars::Path::Local(_) => Shape::Scalar,
            },
            Parameter::Subexpression(sub) => {
                let params = sub.params().cloned().unwrap_or_default();
                let hash: Vec<Parameter> = sub
                    .hash()
                    .map(|h| h.values().cloned().collect())
                    .unwrap_or_default();
                let name = Parameter::Name(sub.name().to_owned());
                self.call(&name, &params, hash.iter(), frames, at)
            }
            _ => Shape::Any,
        }
    }

    /// Resolves a path such as `client.name`, `this`, `../content.date`,
    /// `@root.firm.name` or a block parameter.
    fn path(&mut self, raw: &str, frames: &[Frame], at: At<'_>) -> Shape {
        if raw.starts_with('@') && !raw.starts_with("@root") {
            return Shape::Scalar; // @index, @key, @first, @last
        }
        let mut rest = raw;
        let mut up = 0;
        while let Some(r) = rest.strip_prefix("../") {
            up += 1;
            rest = r;
        }
        let frames = &frames[..frames.len().saturating_sub(up).max(1)];
        let segments: Vec<&str> = rest
            .split(['.', '/'])
            .map(|s| s.trim_start_matches('[').trim_end_matches(']'))
            .filter(|s| !s.is_empty())
            .collect();
        let (mut shape, mut walked, start) = match segments.first().copied() {
            None | Some("this") => (current(frames), "this".to_owned(), 1),
            Some("@root") => (self.root.clone(), "@root".to_owned(), 1),
            Some(first) => match frames.iter().rev().find_map(|f| f.locals.get(first)) {
                Some(local) => (local.clone(), first.to_owned(), 1),
                None => (current(frames), String::new(), 0),
            },
        };
        for seg in &segments[start..] {
            match shape.child(seg) {
                Ok(next) => shape = next,
                Err(known) => {
                    let full = if walked.is_empty() {
                        (*seg).to_owned()
                    } else {
                        format!("{walked}.{seg}")
                    };
                    let message = if known.is_empty() {
                        format!("'{walked}' has no field '{seg}'")
                    } else {
                        let names: Vec<&str> = known.iter().map(String::as_str).collect();
                        format!("unknown name{}", suggest(seg, &names))
                    };
                    self.report(at, &full, message);
                    return Shape::Any;
                }
            }
            walked = if walked.is_empty() {
                (*seg).to_owned()
            } else {
                format!("{walked}.{seg}")
            };
        }
        shape
    }

    /// `{{#each}}`, `{{#with}}`, `{{#if}}` and friends: the body sees a new
    /// context for `each`/`with`, the same one otherwise.
    fn block(&mut self, h: &HelperTemplate, frames: &[Frame], at: At<'_>) {
        let name = name_of(&h.name);
        let args: Vec<Shape> = h.params.iter().map(|p| self.param(p, frames, at)).collect();
        for p in h.hash.values() {
            self.param(p, frames, at);
        }
        if !is_helper(&name) {
            let hint = suggest(&name, all_helpers());
            self.report(at, &name, format!("unknown block helper{hint}"));
        } else if helpers::signature(&name).is_some() {
            self.helper_result(&name, &args, at);
        }
        let subject = args.into_iter().next();
        let mut inner = frames.to_vec();
        if helpers::is_context_block(&name) {
            let subject = subject.unwrap_or(Shape::Any);
            let this = if name == "each" {
                subject.element()
            } else {
                subject
            };
            let mut frame = Frame::new(this.clone());
            match &h.block_param {
                Some(BlockParam::Single(p)) => {
                    frame.locals.insert(name_of(p), this);
                }
                Some(BlockParam::Pair((item, index))) => {
                    frame.locals.insert(name_of(item), this);
                    frame.locals.insert(name_of(index), Shape::Scalar);
                }
                _ => {}
            }
            inner.push(frame);
        }
        if let Some(body) = &h.template {
            self.walk(body, at.file, &inner);
        }
        if let Some(inverse) = &h.inverse {
            self.walk(inverse, at.file, frames);
        }
    }

    fn partial(&mut self, d: &DecoratorTemplate, frames: &[Frame], at: At<'_>) {
        let name = name_of(&d.name);
        let Some(partial) = self.partials.get(&name) else {
            let known: Vec<&str> = self.partials.keys().map(String::as_str).collect();
            self.report(
                at,
                &name,
                format!("unknown partial{}", suggest(&name, &known)),
            );
            return;
        };
        self.findings.partials_used.insert(name.clone());
        if self.partial_stack.contains(&name) || self.partial_stack.len() > 8 {
            return;
        }
        let mut inner = frames.to_vec();
        if let Some(p) = d.params.first() {
            let this = self.param(p, frames, at);
            inner.push(Frame::new(this));
        }
        for p in d.hash.values() {
            self.param(p, frames, at);
        }
        self.partial_stack.push(name);
        self.walk(&partial.template, &partial.file, &inner);
        self.partial_stack.pop();
    }
}

fn current(frames: &[Frame]) -> Shape {
    frames.last().map_or(Shape::Any, |f| f.this.clone())
}

fn all_helpers() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        BUILTIN_HELPERS
            .iter()
            .copied()
            .chain(helpers::HERALD_HELPERS.iter().map(|s| s.name))
            .collect()
    })
}

fn name_of(p: &Parameter) -> String {
    if let Some(name) = plain_name(p) {
        return name.to_owned();
    }
    match p {
        Parameter::Path(handlebars::Path::Local((_, _, raw))) => raw.clone(),
        Parameter::Literal(v) => v.to_string(),
        Parameter::Subexpression(s) => s.name().to_owned(),
        _ => String::new(),
    }
}

/// ` (did you mean 'x'?)` when a known name is close.
fn suggest(name: &str, known: &[&str]) -> String {
    crate::diagnostic::closest(name, known)
        .map_or(String::new(), |k| format!(" (did you mean '{k}'?)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape() -> Shape {
        Shape::of(
            &json!({
                "client": {"name": "张三", "email": null, "holdings": ["600519"], "attrs": {}},
                "content": {"indices": [{"name": "上证指数", "close": 3000.0}], "quotes": {}},
            }),
            &["client.attrs"],
        )
    }

    fn problems(source: &str) -> Vec<String> {
        problems_with(source, &BTreeMap::new())
    }

    fn problems_with(source: &str, partials: &BTreeMap<String, SourceTemplate>) -> Vec<String> {
        let t = SourceTemplate {
            file: PathBuf::from("templates/x/body.txt.hbs"),
            template: Template::compile(source).unwrap(),
        };
        check(&t, &shape(), partials)
            .problems
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn known_names_pass() {
        let src = "{{client.name}} {{#if client.email}}{{client.email}}{{/if}}\n\
                   {{#each content.indices}}{{name}} {{price close}} {{@index}} {{../client.name}}{{/each}}\n\
                   {{#each (holding_quotes client.holdings content.quotes) as |q|}}{{q.code}}{{percent q.change_pct}}{{/each}}\n\
                   {{client.attrs.city}} {{#with client}}{{name}}{{/with}}";
        assert_eq!(problems(src), Vec::<String>::new());
    }

    #[test]
    fn a_misspelt_name_inside_if_is_found_with_its_line() {
        let p = problems("你好\n{{#if client.email}}\n  {{client.emial}}\n{{/if}}");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("templates/x/body.txt.hbs:3:"), "{p:?}");
        assert!(p[0].contains("'client.emial'"), "{p:?}");
        assert!(p[0].contains("did you mean 'email'"), "{p:?}");
    }

    #[test]
    fn misspelt_names_in_loops_helpers_and_conditions_are_found() {
        assert_eq!(
            problems("{{#each content.indices}}{{nmae}}{{/each}}").len(),
            1
        );
        assert_eq!(problems("{{cny client.asets}}").len(), 1);
        assert_eq!(problems("{{#unless cliant.email}}x{{/unless}}").len(), 1);
        assert_eq!(
            problems("{{#if client.email}}{{else}}{{contnet.x}}{{/if}}").len(),
            1
        );
        let p = problems("{{cnyy client.name}}");
        assert!(
            p[0].contains("unknown helper (did you mean 'cny'?)"),
            "{p:?}"
        );
        let p = problems("{{client.name.first}}");
        assert!(p[0].contains("has no field 'first'"), "{p:?}");
    }

    #[test]
    fn helper_arity_is_checked() {
        let p = problems("{{cny}}");
        assert!(p[0].contains("takes 1 argument(s), given 0"), "{p:?}");
    }

    #[test]
    fn partials_are_followed_and_reported_in_their_own_file() {
        let mut partials = BTreeMap::new();
        partials.insert(
            "footer".to_owned(),
            SourceTemplate {
                file: PathBuf::from("templates/partials/footer.hbs"),
                template: Template::compile("\n{{firm.nmae}}").unwrap(),
            },
        );
        let p = problems_with("{{> footer}}{{> heder}}", &partials);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p.iter()
                .any(|l| l.starts_with("templates/partials/footer.hbs:2:")),
            "{p:?}"
        );
        assert!(p.iter().any(|l| l.contains("unknown partial")), "{p:?}");
    }
}
