//! Renders once per run what is the same for every client. A bulletin's
//! indices and movers, a report's analysts and summary read only the run's
//! content, the campaign and the firm; rendering them again for each of a
//! hundred thousand clients is most of the work. Before a run, every part of
//! a template that reads nothing of the client or the delivery is rendered
//! against the run's data and kept as text.

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::{Context, Handlebars, RenderContext, Renderable, StringOutput};

use super::data::keys;
use super::helpers::is_helper;
use super::template::plain_name;

/// The top-level data every message of a run shares.
const RUN_WIDE: &[&str] = &[
    keys::CONTENT,
    keys::SEMINAR,
    keys::CAMPAIGN,
    keys::CTX,
    keys::FIRM,
    keys::TODAY,
];

/// Helpers whose output depends on the message (its delivery).
const PER_MESSAGE_HELPERS: &[&str] = &[
    "track_link",
    "unsubscribe_url",
    "rsvp_url",
    "view_online_url",
    "open_pixel_url",
];

/// `t` with every client-independent element rendered to text. An element
/// that fails to render is left as it is, to fail (and be reported) when a
/// message is rendered.
pub fn specialise(t: &Template, hb: &Handlebars<'_>, run_data: &Context) -> Template {
    if t.mapping.len() != t.elements.len() {
        return t.clone();
    }
    let mut out = t.clone();
    out.elements.clear();
    out.mapping.clear();
    for (element, at) in t.elements.iter().zip(t.mapping.iter().cloned()) {
        let replaced = match element {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => element.clone(),
            e if independent(e, 0) => match render_alone(e, hb, run_data) {
                Some(text) => TemplateElement::RawString(text),
                None => e.clone(),
            },
            // `{{#if client.x}}` keeps the context: its branches may hold
            // run-wide parts of their own.
            TemplateElement::HelperBlock(h) if keeps_context(h) => {
                let mut h = h.clone();
                h.template = h.template.map(|b| specialise(&b, hb, run_data));
                h.inverse = h.inverse.map(|b| specialise(&b, hb, run_data));
                TemplateElement::HelperBlock(h)
            }
            other => other.clone(),
        };
        out.elements.push(replaced);
        out.mapping.push(at);
    }
    out
}

fn keeps_context(h: &HelperTemplate) -> bool {
    matches!(helper_name(&h.name).as_deref(), Some("if" | "unless")) && h.block_param.is_none()
}

fn render_alone(e: &TemplateElement, hb: &Handlebars<'_>, run_data: &Context) -> Option<String> {
    let mut t = Template::new();
    t.elements.push(e.clone());
    let mut rc = RenderContext::new(None);
    let mut out = StringOutput::new();
    t.render(hb, run_data, &mut rc, &mut out).ok()?;
    out.into_string().ok()
}

/// Whether an element reads only run-wide data, `depth` blocks below the
/// root (inside `each`/`with` over run-wide data, relative names are
/// run-wide too).
fn independent(e: &TemplateElement, depth: usize) -> bool {
    match e {
        TemplateElement::RawString(_) | TemplateElement::Comment(_) => true,
        TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
            call_independent(h, depth)
        }
        TemplateElement::HelperBlock(h) => {
            let inner = match helper_name(&h.name).as_deref() {
                Some("each" | "with") => depth + 1,
                _ => depth,
            };
            call_independent(h, depth)
                && h.template
                    .as_ref()
                    .is_none_or(|b| b.elements.iter().all(|e| independent(e, inner)))
                && h.inverse
                    .as_ref()
                    .is_none_or(|b| b.elements.iter().all(|e| independent(e, depth)))
        }
        _ => false,
    }
}

fn call_independent(h: &HelperTemplate, depth: usize) -> bool {
    let name_ok = match helper_name(&h.name) {
        Some(n) if PER_MESSAGE_HELPERS.contains(&n.as_str()) => false,
        Some(n) if is_helper(&n) => true,
        // Not a helper: the name is a path.
        _ => param_independent(&h.name, depth),
    };
    name_ok
        && h.params.iter().all(|p| param_independent(p, depth))
        && h.hash.values().all(|p| param_independent(p, depth))
}

fn param_independent(p: &Parameter, depth: usize) -> bool {
    match p {
        Parameter::Literal(_) => true,
        Parameter::Name(n) => path_independent(n, depth),
        Parameter::Path(handlebars::Path::Relative((_, raw))) => path_independent(raw, depth),
        Parameter::Path(handlebars::Path::Local(_)) => true,
        Parameter::Subexpression(sub) => {
            let name = sub.name();
            !PER_MESSAGE_HELPERS.contains(&name)
                && is_helper(name)
                && sub
                    .params()
                    .is_none_or(|ps| ps.iter().all(|p| param_independent(p, depth)))
                && sub
                    .hash()
                    .is_none_or(|h| h.values().all(|p| param_independent(p, depth)))
        }
        _ => false,
    }
}

fn path_independent(raw: &str, depth: usize) -> bool {
    if let Some(rest) = raw.strip_prefix("@root") {
        return root_key_independent(rest.trim_start_matches(['.', '/']));
    }
    if raw.starts_with('@') {
        return true; // @index, @key, @first, @last
    }
    let mut rest = raw;
    let mut up = 0;
    while let Some(r) = rest.strip_prefix("../") {
        up += 1;
        rest = r;
    }
    if up < depth {
        // Relative to a run-wide subject.
        return true;
    }
    root_key_independent(rest.trim_start_matches("this.").trim_start_matches("./"))
}

fn root_key_independent(path: &str) -> bool {
    let first = path.split(['.', '/']).next().unwrap_or("");
    RUN_WIDE.contains(&first)
}

/// A name that may call a helper: one word, not a path.
fn helper_name(p: &Parameter) -> Option<String> {
    plain_name(p)
        .filter(|n| !n.contains(['.', '/']))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::helpers;
    use serde_json::json;

    fn elements(source: &str) -> Vec<bool> {
        Template::compile(source)
            .unwrap()
            .elements
            .iter()
            .map(|e| independent(e, 0))
            .collect()
    }

    #[test]
    fn run_wide_parts_are_told_from_personal_ones() {
        assert_eq!(elements("{{content.date}}"), [true]);
        assert_eq!(elements("{{client.name}}"), [false]);
        assert_eq!(elements("{{price content.close}}"), [true]);
        assert_eq!(elements("{{cny client.assets}}"), [false]);
        assert_eq!(elements("{{unsubscribe_url}}"), [false]);
        assert_eq!(
            elements("{{#each content.indices}}{{name}}{{@index}}{{/each}}"),
            [true]
        );
        assert_eq!(
            elements("{{#each content.indices}}{{../client.name}}{{/each}}"),
            [false]
        );
        assert_eq!(
            elements("{{#each content.indices}}{{track_link url}}{{/each}}"),
            [false]
        );
        assert_eq!(elements("{{#if client.email}}x{{/if}}"), [false]);
        assert_eq!(
            elements("{{#each (holding_quotes client.holdings content.quotes)}}{{name}}{{/each}}"),
            [false]
        );
        assert_eq!(
            elements("{{@root.firm.name}} {{@root.client.id}}"),
            [true, true, false]
        );
        assert_eq!(
            elements("{{#with content.stock}}{{name}}{{else}}{{client.name}}{{/with}}"),
            [false]
        );
    }

    #[test]
    fn specialised_templates_render_the_same() {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        helpers::register(&mut hb, chrono_tz::Asia::Shanghai, None);
        let source =
            "{{content.title}}|{{#if client.vip}}VIP {{firm.name}}{{else}}{{client.name}}{{/if}}|\
                      {{#each content.rows}}{{@index}}:{{price this}};{{/each}}";
        let data = json!({"content": {"title": "快报", "rows": [1.5, 2]}, "firm": {"name": "某某证券"},
                          "client": {"vip": true, "name": "张三"}});
        let ctx = Context::wraps(&data).unwrap();
        let original = Template::compile(source).unwrap();
        let fast = specialise(&original, &hb, &ctx);
        let raw = fast
            .elements
            .iter()
            .filter(|e| matches!(e, TemplateElement::RawString(_)))
            .count();
        assert!(raw >= 3, "{fast:?}");
        let render = |t: &Template| {
            let mut rc = RenderContext::new(None);
            let mut out = StringOutput::new();
            t.render(&hb, &ctx, &mut rc, &mut out).unwrap();
            out.into_string().unwrap()
        };
        assert_eq!(render(&fast), render(&original));
        assert_eq!(render(&fast), "快报|VIP 某某证券|0:1.50;1:2.00;");
    }
}
