//! Renders one client's message from a compiled template set: the email's
//! subject, HTML and text, or the SMS with its signature, opt-out suffix and
//! billed length. A renderer is built once per run and shared by threads;
//! each thread keeps its own data document and swaps the client in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono_tz::Tz;
use handlebars::template::{Template, TemplateElement};
use handlebars::{Context, Handlebars, RenderError};
use serde::Serialize;
use serde_json::Value;

use super::check::SourceTemplate;
use super::helpers;
use super::sms::{self, SmsMeasure};
use super::specialise::specialise;
use super::template::{plain_name, Part, TemplateSet};
use crate::config::SmsStyle;
use crate::diagnostic::Problem;
use crate::tracking::links::Links;

/// What a message carries besides its template: the markers the email and
/// SMS rules ask of marketing.
#[derive(Debug, Clone)]
pub struct Dressing {
    pub marketing: bool,
    /// Put before a marketing email's subject (`【广告】`).
    pub ad_marker: String,
    pub sms: SmsStyle,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Email {
    pub subject: String,
    pub html: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sms {
    /// The text as the handset shows it: signature, text, opt-out.
    pub text: String,
    pub measure: SmsMeasure,
}

/// A template that failed for one client's data.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}{}: {message}", line.map_or(String::new(), |l| format!(":{l}")))]
pub struct RenderFailure {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl RenderFailure {
    pub fn to_problem(&self) -> Problem {
        let p = Problem::error(&self.file, self.message.clone());
        match self.line {
            Some(l) => p.at(l, 0),
            None => p,
        }
    }
}

/// A compiled set, ready to render for any client.
pub struct Renderer {
    /// Partials inlined: Handlebars copies the whole current context at
    /// every partial call, which dominated rendering time.
    fast: Registries,
    /// As written, for locating an error in the partial's own file.
    exact: Registries,
    files: Vec<(Part, PathBuf)>,
    dressing: Dressing,
}

struct Registries {
    html: Handlebars<'static>,
    plain: Handlebars<'static>,
}

impl Registries {
    /// With `run_data`, the fast form: partials inlined and the run-wide
    /// parts rendered once.
    fn new(set: &TemplateSet, tz: Tz, links: &Option<Links>, run_data: Option<&Context>) -> Self {
        let inline = run_data.is_some();
        let registry = |html: bool| {
            let mut hb = Handlebars::new();
            hb.set_strict_mode(true);
            if !html {
                hb.register_escape_fn(handlebars::no_escape);
            }
            helpers::register(&mut hb, tz, links.clone());
            for (name, partial) in &set.partials {
                hb.register_template(name, partial.template.clone());
            }
            for (part, t) in &set.parts {
                if part.is_html() == html {
                    let template = if inline {
                        inline_partials(&t.template, &set.partials, 0)
                    } else {
                        t.template.clone()
                    };
                    hb.register_template(part.file_name(), template);
                }
            }
            if let Some(data) = run_data {
                for part in set.parts.keys().filter(|p| p.is_html() == html) {
                    if let Some(t) = hb.get_template(part.file_name()) {
                        let fast = specialise(t, &hb, data);
                        hb.register_template(part.file_name(), fast);
                    }
                }
            }
            hb
        };
        Self {
            html: registry(true),
            plain: registry(false),
        }
    }

    fn render(&self, part: Part, data: &Context) -> Result<String, RenderError> {
        let hb = if part.is_html() {
            &self.html
        } else {
            &self.plain
        };
        hb.render_with_context(part.file_name(), data)
    }
}

/// How deep partials may include partials when inlined.
const MAX_INLINE_DEPTH: usize = 8;

/// `t` with every plain `{{> name}}` (no arguments) replaced by the
/// partial's own elements, so that rendering it copies nothing.
fn inline_partials(
    t: &Template,
    partials: &BTreeMap<String, SourceTemplate>,
    depth: usize,
) -> Template {
    if t.mapping.len() != t.elements.len() {
        return t.clone();
    }
    let mut out = t.clone();
    out.elements.clear();
    out.mapping.clear();
    for (element, at) in t.elements.iter().zip(t.mapping.iter().cloned()) {
        match element {
            TemplateElement::PartialExpression(d)
                if d.params.is_empty() && d.hash.is_empty() && depth < MAX_INLINE_DEPTH =>
            {
                match plain_name(&d.name).and_then(|n| partials.get(n)) {
                    Some(p) => {
                        let inner = inline_partials(&p.template, partials, depth + 1);
                        out.elements.extend(inner.elements);
                        out.mapping.extend(inner.mapping);
                    }
                    None => {
                        out.elements.push(element.clone());
                        out.mapping.push(at);
                    }
                }
            }
            TemplateElement::HelperBlock(h) => {
                let mut h = h.clone();
                h.template = h.template.map(|b| inline_partials(&b, partials, depth));
                h.inverse = h.inverse.map(|b| inline_partials(&b, partials, depth));
                out.elements.push(TemplateElement::HelperBlock(h));
                out.mapping.push(at);
            }
            other => {
                out.elements.push(other.clone());
                out.mapping.push(at);
            }
        }
    }
    out
}

impl Renderer {
    /// Compiles `set` for a run whose shared data is `run_data`.
    pub fn new(
        set: &TemplateSet,
        tz: Tz,
        links: Option<Links>,
        dressing: Dressing,
        run_data: &Value,
    ) -> Self {
        let run = Context::wraps(run_data).expect("a JSON value always wraps");
        Self {
            fast: Registries::new(set, tz, &links, Some(&run)),
            exact: Registries::new(set, tz, &links, None),
            files: set
                .parts
                .iter()
                .map(|(p, t)| (*p, t.file.clone()))
                .collect(),
            dressing,
        }
    }

    /// The marker put before marketing subjects (empty for service).
    pub fn ad_marker(&self) -> &str {
        if self.dressing.marketing {
            &self.dressing.ad_marker
        } else {
            ""
        }
    }

    /// One part as the template writes it, without markers.
    pub fn part(&self, part: Part, data: &Context) -> Result<String, RenderFailure> {
        self.fast.render(part, data).map_err(|_| {
            // Render again as written: the error then names its own file.
            let e = self
                .exact
                .render(part, data)
                .expect_err("both registries fail alike");
            self.failure(part, &e)
        })
    }

    /// One part rendered from the templates exactly as written (no partial
    /// inlining, nothing rendered ahead): slower; what the fast path must
    /// always equal.
    pub fn part_as_written(&self, part: Part, data: &Context) -> Result<String, RenderFailure> {
        self.exact
            .render(part, data)
            .map_err(|e| self.failure(part, &e))
    }

    pub fn email(&self, data: &Context) -> Result<Email, RenderFailure> {
        let subject = one_line(&self.part(Part::Subject, data)?);
        let subject = if self.dressing.marketing && !subject.starts_with(&self.dressing.ad_marker) {
            format!("{}{subject}", self.dressing.ad_marker)
        } else {
            subject
        };
        Ok(Email {
            subject,
            html: self.part(Part::Html, data)?,
            text: tidy_text(&self.part(Part::Text, data)?),
        })
    }

    pub fn sms(&self, data: &Context) -> Result<Sms, RenderFailure> {
        let body = tidy_text(&self.part(Part::Sms, data)?);
        let style = &self.dressing.sms;
        let suffix = if self.dressing.marketing {
            style.opt_out.as_str()
        } else {
            ""
        };
        let text = format!("{}{}{suffix}", style.signature, body.trim());
        let measure = sms::measure(&text, style.billing);
        Ok(Sms { text, measure })
    }

    fn failure(&self, part: Part, e: &RenderError) -> RenderFailure {
        // Errors inside a partial name the partial's file; otherwise the part's.
        let file = e
            .template_name
            .as_ref()
            .filter(|n| n.ends_with(".hbs") && n.contains('/'))
            .map(PathBuf::from)
            .or_else(|| {
                self.files
                    .iter()
                    .find(|(p, _)| *p == part)
                    .map(|(_, f)| f.clone())
            })
            .unwrap_or_else(|| PathBuf::from(part.file_name()));
        RenderFailure {
            file,
            line: e.line_no,
            message: e.reason().to_string(),
        }
    }
}

/// A subject is one line, whatever the template's line breaks.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Trailing spaces go, and runs of blank lines (left by `{{#if}}` blocks)
/// become one.
fn tidy_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.trim().lines().map(str::trim_end) {
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_keeps_one_blank_line_at_most() {
        assert_eq!(tidy_text("\n a  \n\n\n\n  b\n\n"), "a\n\n  b\n");
        assert_eq!(one_line(" 今日\n 快报 "), "今日 快报");
    }
}
