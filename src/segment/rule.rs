//! A rule file: compiled once, checked for names Rhai would only find
//! missing at run time, and its errors shown as `file:line:col` with a caret.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rhai::{ASTNode, Engine, Expr, FnCallExpr, Position, Stmt, AST};

use super::vocabulary::{CLIENT_METHODS, CLIENT_PROPERTIES};
use crate::channel::Channel;
use crate::client::types::RiskLevel;
use crate::event::EventKind;

/// A problem with a rule, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The offending source line, for the caret display.
    pub source_line: String,
}

impl RuleError {
    fn at(file: &str, source: &str, pos: Position, message: String) -> Self {
        let line = pos.line().unwrap_or(0);
        let column = pos.position().unwrap_or(0);
        let source_line = source
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or("")
            .to_owned();
        Self {
            file: file.to_owned(),
            line,
            column,
            message,
            source_line,
        }
    }

    /// `rules/x.rhai:3:12: message`, then the line and a caret under the column.
    pub fn render(&self) -> String {
        if self.line == 0 {
            return format!("{}: {}", self.file, self.message);
        }
        let caret = " ".repeat(self.column.saturating_sub(1));
        format!(
            "{}:{}:{}: {}\n    {}\n    {caret}^",
            self.file, self.line, self.column, self.message, self.source_line
        )
    }

    /// The first line alone, for one-line error reports.
    pub fn headline(&self) -> String {
        format!(
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// A compiled, checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub path: PathBuf,
    pub source: String,
    pub ast: AST,
}

/// Finds a rule by name in `rules_dir` (`rules/NAME.rhai`) or takes a path.
pub fn resolve(rule: &str, rules_dir: &Path) -> PathBuf {
    crate::config::resolve_named(rule, rules_dir, "rhai")
}

impl Rule {
    /// Reads and compiles a rule, checking every name it uses against the
    /// vocabulary and the context it will be given.
    pub fn load(
        path: &Path,
        engine: &Engine,
        context_keys: &HashSet<String>,
    ) -> Result<Rule, RuleError> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| RuleError {
            file: file.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
            source_line: String::new(),
        })?;
        Self::compile(&file, source, engine, context_keys)
    }

    /// Compiles rule text that came from `file`.
    pub fn compile(
        file: &str,
        source: String,
        engine: &Engine,
        context_keys: &HashSet<String>,
    ) -> Result<Rule, RuleError> {
        let ast = engine
            .compile_with_scope(&super::engine::compile_scope(context_keys), &source)
            .map_err(|e| syntax_error(file, &source, &e))?;
        // Rhai takes a comment left open as running to the end of the
        // file: the rule would quietly lose what follows it.
        if let Some(error) = unclosed(&source)
            .filter(|(_, _, open)| *open == "/*")
            .and_then(|(line, column, open)| never_closed(file, &source, line, column, open))
        {
            return Err(error);
        }
        if ast.statements().is_empty() {
            return Err(empty_rule(file));
        }
        check_names(&ast, engine, context_keys)
            .map_err(|(pos, msg)| RuleError::at(file, &source, pos, msg))?;
        let name = Path::new(file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(file)
            .to_owned();
        Ok(Rule {
            name,
            path: PathBuf::from(file),
            source,
            ast,
        })
    }

    /// Where a run-time error happened, as `file:line:col`.
    pub fn locate(&self, pos: Position) -> String {
        match (pos.line(), pos.position()) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.path.display()),
            _ => self.path.display().to_string(),
        }
    }
}

/// A rule with nothing to evaluate: empty, or all comment.
fn empty_rule(file: &str) -> RuleError {
    RuleError {
        file: file.to_owned(),
        line: 0,
        column: 0,
        message: "the rule is empty: its last line must give true or false".into(),
        source_line: String::new(),
    }
}

/// Rhai's syntax error, placed where it can be mended: at the end of the
/// file, or missing a closing bracket, it would point past the unclosed
/// bracket, so it points at the bracket instead; a missing `;` is found at
/// the next statement, so the line it belongs to is named.
fn syntax_error(file: &str, source: &str, e: &rhai::ParseError) -> RuleError {
    let message = e.0.to_string();
    let is_code = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with("//");
    let lines: Vec<&str> = source.lines().collect();
    let last_code_line = lines.iter().rposition(|l| is_code(l)).map_or(0, |i| i + 1);
    let at_end = e.1.line().is_none_or(|l| l > last_code_line);
    let missing = match &*e.0 {
        rhai::ParseErrorType::MissingToken(t, _) => t.as_str(),
        _ => "",
    };
    let closes = |open: &str| matches!((open, missing), ("(", ")") | ("[", "]") | ("{", "}"));
    if let Some(error) = unclosed(source)
        .filter(|(_, _, open)| at_end || closes(open))
        .and_then(|(line, column, open)| never_closed(file, source, line, column, open))
    {
        return error;
    }
    let mut error = RuleError::at(file, source, e.1, message);
    if missing == ";" {
        let before = lines.get(..error.line.saturating_sub(1)).unwrap_or(&[]);
        // A line that already ends a statement is not the one.
        if let Some(i) = before
            .iter()
            .rposition(|l| is_code(l))
            .filter(|&i| !before[i].trim_end().ends_with([';', '{', '}']))
        {
            error.message += &format!(" (is one missing at the end of line {}?)", i + 1);
        }
    }
    error
}

/// "'(' is never closed", at the bracket. None past rhai's 16-bit
/// positions, where rhai's own error will do.
fn never_closed(
    file: &str,
    source: &str,
    line: usize,
    column: usize,
    open: &str,
) -> Option<RuleError> {
    let pos = Position::new(u16::try_from(line).ok()?, u16::try_from(column).ok()?);
    let mut message = format!("'{open}' is never closed");
    if open == "/*" {
        message += ": the rest of the file is a comment";
    }
    Some(RuleError::at(file, source, pos, message))
}

/// What is left open at the end of `source`, as (line, column, opener): a
/// block comment, or else the innermost bracket, skipping strings and
/// comments. None if the brackets do not nest (a stray closer is rhai's to
/// report).
fn unclosed(source: &str) -> Option<(usize, usize, &'static str)> {
    let mut open: Vec<(usize, usize, &'static str)> = Vec::new();
    let mut chars = source.chars().peekable();
    let (mut line, mut column) = (1, 0);
    let mut quote: Option<char> = None;
    let mut line_comment = false;
    let mut block_comment: Option<(usize, usize)> = None;
    while let Some(c) = chars.next() {
        column += 1;
        if c == '\n' {
            (line, column, line_comment) = (line + 1, 0, false);
            continue;
        }
        if line_comment {
            continue;
        }
        if block_comment.is_some() {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                column += 1;
                block_comment = None;
            }
            continue;
        }
        if let Some(q) = quote {
            if c == '\\' {
                chars.next();
                column += 1;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '/' if chars.peek() == Some(&'/') => line_comment = true,
            '/' if chars.peek() == Some(&'*') => block_comment = Some((line, column)),
            '(' => open.push((line, column, "(")),
            '[' => open.push((line, column, "[")),
            '{' => open.push((line, column, "{")),
            ')' | ']' | '}' => {
                let (_, _, o) = open.pop()?;
                if !matches!((o, c), ("(", ')') | ("[", ']') | ("{", '}')) {
                    return None;
                }
            }
            _ => {}
        }
    }
    match block_comment {
        Some((line, column)) => Some((line, column, "/*")),
        None => open.pop(),
    }
}

/// Rhai resolves properties, methods and functions only when it runs, so a
/// typo would surface once per client. Walk the rule instead.
fn check_names(
    ast: &AST,
    engine: &Engine,
    context_keys: &HashSet<String>,
) -> Result<(), (Position, String)> {
    let functions = known_functions(engine, ast);
    let mut problem = None;
    ast.walk(&mut |path: &[ASTNode]| {
        problem = match path.last() {
            Some(ASTNode::Expr(expr)) => check_expr(expr, &functions, context_keys),
            // A call standing alone as a statement is a statement, not an expression.
            Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) if call.op_token.is_some() => {
                check_level_literal(call, *pos)
            }
            Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => check_call(call, *pos, &functions),
            _ => None,
        };
        problem.is_none()
    });
    problem.map_or(Ok(()), Err)
}

fn check_expr(
    expr: &Expr,
    functions: &HashSet<String>,
    context_keys: &HashSet<String>,
) -> Option<(Position, String)> {
    match expr {
        Expr::Dot(bin, _, _) => {
            let Expr::Variable(var, _, _) = &bin.lhs else {
                return None;
            };
            let first = match &bin.rhs {
                Expr::Dot(inner, _, _) => &inner.lhs,
                other => other,
            };
            match (var.1.as_str(), first) {
                ("client", Expr::Property(p, pos)) if !CLIENT_PROPERTIES.contains(&p.2.as_str()) => {
                    Some((*pos, format!("client has no field '{}'{}", p.2, suggest(&p.2, CLIENT_PROPERTIES))))
                }
                ("client", Expr::MethodCall(call, pos)) if !CLIENT_METHODS.contains(&call.name.as_str()) => Some((
                    *pos,
                    format!("client has no method '{}'{}", call.name, suggest(&call.name, CLIENT_METHODS)),
                )),
                ("client", Expr::MethodCall(call, pos)) => check_method_literals(call, *pos),
                ("ctx", Expr::Property(p, pos)) if !context_keys.contains(p.2.as_str()) => Some((
                    *pos,
                    format!(
                        "ctx.{} is not given (give it with --context {}=VALUE or in the campaign's context)",
                        p.2, p.2
                    ),
                )),
                _ => None,
            }
        }
        Expr::FnCall(call, pos) if call.op_token.is_some() => check_level_literal(call, *pos),
        Expr::FnCall(call, pos) => check_call(call, *pos, functions),
        _ => None,
    }
}

/// `client.did("opend", 7)` or `client.unsubscribed("wechat")` would fail for
/// every client; say so before running.
fn check_method_literals(call: &FnCallExpr, pos: Position) -> Option<(Position, String)> {
    let Some(Expr::StringConstant(text, _)) = call.args.first() else {
        return None;
    };
    let checked = match call.name.as_str() {
        "did" => EventKind::parse(text).err(),
        "unsubscribed" => Channel::parse(text).err(),
        _ => None,
    };
    checked.map(|e| (pos, format!("client.{}: {}", call.name, e.0)))
}

/// `client.risk_level >= "C9"` would fail for every client.
fn check_level_literal(call: &FnCallExpr, pos: Position) -> Option<(Position, String)> {
    let is_level = |e: &Expr| match e {
        Expr::Dot(bin, _, _) => {
            matches!(&bin.lhs, Expr::Variable(v, _, _) if v.1 == "client")
                && matches!(&bin.rhs, Expr::Property(p, _) if p.2 == "risk_level")
        }
        _ => false,
    };
    match call.args.as_slice() {
        [a, Expr::StringConstant(text, _)] | [Expr::StringConstant(text, _), a] if is_level(a) => {
            RiskLevel::parse(text).err().map(|e| (pos, e.0))
        }
        _ => None,
    }
}

fn check_call(
    call: &FnCallExpr,
    pos: Position,
    functions: &HashSet<String>,
) -> Option<(Position, String)> {
    (call.op_token.is_none() && !functions.contains(call.name.as_str()))
        .then(|| (pos, format!("unknown function '{}'", call.name)))
}

/// Every function the engine has, and those the rule defines itself.
fn known_functions(engine: &Engine, ast: &AST) -> HashSet<String> {
    let mut names: HashSet<String> = engine
        .gen_fn_signatures(true)
        .into_iter()
        .filter_map(|sig| sig.split('(').next().map(|n| n.trim().to_owned()))
        .map(|n| n.rsplit(' ').next().unwrap_or(&n).to_owned())
        .collect();
    names.extend(ast.iter_functions().map(|f| f.name.to_owned()));
    // Language keywords that parse as calls.
    names.extend(["type_of", "is_def_var", "is_def_fn", "print", "debug"].map(String::from));
    names
}

/// ", did you mean 'x'?" for a near miss.
fn suggest(name: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map_or(String::new(), |(_, k)| format!("; did you mean '{k}'?"))
}
