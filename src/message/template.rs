//! Template sets: `templates/NAME/{subject.hbs, body.html.hbs, body.txt.hbs,
//! sms.hbs}` plus the shared partials in `templates/partials/`. Each file is
//! compiled once; a syntax error is reported with its file, line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handlebars::template::Template;

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
