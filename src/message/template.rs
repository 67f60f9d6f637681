//! Template sets: `templates/NAME/{subject.hbs, body.html.hbs, body.txt.hbs,
//! sms.hbs}` plus the shared partials in `templates/partials/`. Each file is
//! compiled once; a syntax error is reported with its file, line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handlebars::template::{Parameter, Template, TemplateElement};

use super::check::SourceTemplate;
use crate::diagnostic::Problem;

/// One template of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Subject,
    Html,
    Text,
    Sms,
}

impl Part {
    pub const ALL: [Part; 4] = [Part::Subject, Part::Html, Part::Text, Part::Sms];
    /// What an email needs.
    pub const EMAIL: [Part; 3] = [Part::Subject, Part::Html, Part::Text];

    pub fn file_name(self) -> &'static str {
        match self {
            Part::Subject => "subject.hbs",
            Part::Html => "body.html.hbs",
            Part::Text => "body.txt.hbs",
            Part::Sms => "sms.hbs",
        }
    }

    /// Only HTML is escaped; subjects, text and SMS are sent as written.
    pub fn is_html(self) -> bool {
        self == Part::Html
    }
}

/// The folder shared partials live in, beside the sets.
pub const PARTIALS_DIR: &str = "partials";

/// A compiled template set.
#[derive(Debug, Clone)]
pub struct TemplateSet {
    pub name: String,
    pub dir: PathBuf,
    pub parts: BTreeMap<Part, SourceTemplate>,
    pub partials: BTreeMap<String, SourceTemplate>,
}

impl TemplateSet {
    /// Loads set `name` from `templates_dir`. Every file that exists is
    /// compiled; which parts a campaign needs is the caller's question.
    pub fn load(templates_dir: &Path, name: &str) -> Result<TemplateSet, Vec<Problem>> {
        let dir = templates_dir.join(name);
        if !dir.is_dir() {
            return Err(vec![Problem::error(
                &dir,
                format!("template set '{name}' does not exist"),
            )]);
        }
        let mut problems = Vec::new();
        let mut parts = BTreeMap::new();
        for part in Part::ALL {
            let file = dir.join(part.file_name());
            if file.exists() {
                match compile_file(&file) {
                    Ok(t) => {
                        parts.insert(part, t);
                    }
                    Err(p) => problems.push(p),
                }
            }
        }
        let partials = load_partials(&templates_dir.join(PARTIALS_DIR), &mut problems);
        problems.extend(partial_cycles(&partials));
        if problems.is_empty() {
            Ok(TemplateSet {
                name: name.to_owned(),
                dir,
                parts,
                partials,
            })
        } else {
            Err(problems)
        }
    }

    /// The parts of `needed` the set lacks, as problems.
    pub fn missing(&self, needed: &[Part], why: &str) -> Vec<Problem> {
        needed
            .iter()
            .filter(|p| !self.parts.contains_key(p))
            .map(|p| Problem::error(&self.dir.join(p.file_name()), format!("missing: {why}")))
            .collect()
    }
}

/// Every `*.hbs` in the partials folder, named by its file stem.
fn load_partials(dir: &Path, problems: &mut Vec<Problem>) -> BTreeMap<String, SourceTemplate> {
    let mut partials = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return partials;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "hbs"))
        .collect();
    files.sort();
    for file in files {
        let Some(name) = file.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            problems.push(Problem::error(
                &file,
                "a partial's name must be letters, digits and '_' (it is used as {{> name}})",
            ));
            continue;
        }
        match compile_file(&file) {
            Ok(t) => {
                partials.insert(name, t);
            }
            Err(p) => problems.push(p),
        }
    }
    partials
}

/// The name in `{{name}}`, `{{> name}}` or `{{#name}}`, as written.
pub fn plain_name(p: &Parameter) -> Option<&str> {
    match p {
        Parameter::Name(n) => Some(n),
        Parameter::Path(handlebars::Path::Relative((_, raw))) => Some(raw),
        _ => None,
    }
}

/// A partial that includes itself, directly or through others, would
/// render forever: refuse it when the set is loaded.
fn partial_cycles(partials: &BTreeMap<String, SourceTemplate>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, partial) in partials {
        let mut path = vec![name.clone()];
        if let Some((line, col)) = reaches(name, &partial.template, partials, &mut path) {
            problems.push(
                Problem::error(
                    &partial.file,
                    format!("includes itself ({})", path.join(" → ")),
                )
                .at(line, col)
                .about(name.clone()),
            );
        }
    }
    problems
}

/// Whether `t` includes `target`, following partials; the position of the
/// first step, and the chain in `path`.
fn reaches(
    target: &str,
    t: &Template,
    partials: &BTreeMap<String, SourceTemplate>,
    path: &mut Vec<String>,
) -> Option<(usize, usize)> {
    for (i, element) in t.elements.iter().enumerate() {
        let at = t.mapping.get(i).map_or((0, 0), |m| (m.0, m.1));
        match element {
            TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                let Some(name) = plain_name(&d.name).map(str::to_owned) else {
                    continue;
                };
                if name == target {
                    path.push(name);
                    return Some(at);
                }
                if path.contains(&name) || path.len() > 16 {
                    continue;
                }
                if let Some(p) = partials.get(&name) {
                    path.push(name);
                    if reaches(target, &p.template, partials, path).is_some() {
                        return Some(at);
                    }
                    path.pop();
                }
            }
            TemplateElement::HelperBlock(h) => {
                for block in [&h.template, &h.inverse].into_iter().flatten() {
                    if let Some(found) = reaches(target, block, partials, path) {
                        return Some(found);
                    }
                }
            }
            _ => {}
        }
    }
    None
}

fn compile_file(file: &Path) -> Result<SourceTemplate, Problem> {
    let source = std::fs::read_to_string(file)
        .map_err(|e| Problem::error(file, format!("cannot read: {e}")))?;
    compile(file, &source)
}

/// Compiles template text from `file`.
pub fn compile(file: &Path, source: &str) -> Result<SourceTemplate, Problem> {
    Template::compile_with_name(source, file.display().to_string())
        .map(|template| SourceTemplate {
            file: file.to_path_buf(),
            template,
        })
        .map_err(|e| {
            let (line, column) = e.pos().unwrap_or((0, 0));
            Problem::error(file, format!("syntax: {}", e.reason())).at(line, column)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_that_includes_itself_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let partials = dir.path().join(PARTIALS_DIR);
        std::fs::create_dir_all(&partials).unwrap();
        std::fs::create_dir_all(dir.path().join("set")).unwrap();
        std::fs::write(partials.join("a.hbs"), "x\n{{#if y}}{{> b}}{{/if}}").unwrap();
        std::fs::write(partials.join("b.hbs"), "{{> a}}").unwrap();
        std::fs::write(partials.join("c.hbs"), "{{> b}}").unwrap();
        let problems = TemplateSet::load(dir.path(), "set").unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 2, "{text:?}");
        assert!(
            text[0].contains("a.hbs:2:") && text[0].contains("a → b → a"),
            "{text:?}"
        );
    }
}
