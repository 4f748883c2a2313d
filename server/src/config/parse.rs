//! The structure of the config language: maps, arrays, keys and separators,
//! `$VAR` references and `include`, producing a [`Map`] with positions.

use super::error::Diagnostic;
use super::lex::{self, Cursor};
use super::value::{Entry, Map, Node, Pos, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How deep maps and arrays may nest. Real configs stay under ten; the bound keeps a
/// hostile file from exhausting the stack.
pub const MAX_DEPTH: usize = 128;
/// How deep `include` may chain, beyond which a cycle is assumed even without a repeat.
pub const MAX_INCLUDE_DEPTH: usize = 32;

/// Where `$VAR` falls back to after the file's own scopes.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Parse the file at `path` (following its includes) into its top-level map.
pub fn parse_file(path: &Path, env: &dyn Env) -> Result<Map, Diagnostic> {
    let text = read(path, None)?;
    let mut p = Parser {
        env,
        scopes: Vec::new(),
        includes: vec![canonical(path)],
        depth: 0,
    };
    let name: Arc<str> = path.display().to_string().into();
    let mut cur = Cursor::new(&text, name.clone());
    let map = p
        .document(&mut cur, path)
        .map_err(Diagnostic::into_syntax)?;
    if map.is_empty() {
        return Err(Diagnostic::file(format!(
            "{name}: config has no values or is empty"
        )));
    }
    Ok(map)
}

/// Parse text that did not come from a file (tests, fuzzing). Includes resolve
/// against the current directory.
pub fn parse_str(text: &str, name: &str, env: &dyn Env) -> Result<Map, Diagnostic> {
    let mut p = Parser {
        env,
        scopes: Vec::new(),
        includes: Vec::new(),
        depth: 0,
    };
    let mut cur = Cursor::new(text, name.into());
    p.document(&mut cur, Path::new(name))
        .map_err(Diagnostic::into_syntax)
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

fn read(path: &Path, at: Option<&Pos>) -> Result<String, Diagnostic> {
    let fail = |why: String| match at {
        Some(pos) => Diagnostic::error(pos, why),
        None => Diagnostic::file(why),
    };
    // Worded as nats-server words it (`open <path>: no such file or directory`).
    let bytes = std::fs::read(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            std::io::ErrorKind::IsADirectory => "is a directory".to_string(),
            _ => e.to_string(),
        };
        fail(format!("open {}: {why}", path.display()))
    })?;
    String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "{} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

struct Parser<'e> {
    env: &'e dyn Env,
    /// The maps being built, outermost first: `$VAR` looks through them innermost first.
    scopes: Vec<Vec<Entry>>,
    /// Canonical paths of the files being parsed, for include cycles.
    includes: Vec<PathBuf>,
    depth: usize,
}

impl Parser<'_> {
    fn document(&mut self, cur: &mut Cursor, path: &Path) -> Result<Map, Diagnostic> {
        self.scopes.push(Vec::new());
        let body = self.body(cur, path, false);
        let entries = self.scopes.pop().unwrap_or_default();
        body?;
        Ok(Map { entries })
    }

    fn descend(&mut self, pos: &Pos) -> Result<(), Diagnostic> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Diagnostic::error(
                pos,
                format!("blocks nest deeper than {MAX_DEPTH} levels"),
            )
            .with_help("flatten the configuration; no server option nests this deep"));
        }
        Ok(())
    }

    /// Entries of a map body into the innermost scope, until `}` (nested) or EOF (top).
    fn body(&mut self, cur: &mut Cursor, path: &Path, nested: bool) -> Result<(), Diagnostic> {
        loop {
            cur.skip_space();
            match cur.peek() {
                None if nested => {
                    return Err(Diagnostic::error(&cur.pos(), "unexpected end of file")
                        .with_help("a `{` block is missing its closing `}`"))
                }
                None => return Ok(()),
                Some(b'}') if nested => {
                    cur.bump();
                    return Ok(());
                }
                Some(b'{') if !nested => {
                    // A document in braces (a JSON file, or NATS syntax inside `{ }`):
                    // as in nats-server, its entries are the top-level map's.
                    let pos = cur.pos();
                    self.descend(&pos)?;
                    cur.bump();
                    self.body(cur, path, true)?;
                    self.depth -= 1;
                    continue;
                }
                Some(b'}') => {
                    return Err(Diagnostic::error(&cur.pos(), "unexpected `}` at top level")
                        .with_help("remove it, or add the `{` it was meant to close"))
                }
                Some(b';' | b',') => {
                    let what = cur.peek().map(char::from).unwrap_or(' ');
                    return Err(Diagnostic::error(
                        &cur.pos(),
                        format!("unexpected `{what}` where a key was expected"),
                    ));
                }
                Some(_) => self.entry(cur, path)?,
            }
            // After a value: blanks, then a terminator.
            cur.skip_blanks();
            match cur.peek() {
                Some(b',' | b';' | b'\n') => {
                    cur.bump();
                }
                Some(b'}') if nested => {}
                None => {}
                _ if cur.at_comment() => {}
                Some(b) => {
                    return Err(Diagnostic::error(
                        &cur.pos(),
                        format!(
                        "expected a new line, `,`, `;` or a comment after the value, found '{}'",
                        char::from(b)
                    ),
                    )
                    .with_help("put each key on its own line, or quote a value that holds spaces"))
                }
            }
        }
    }

    fn entry(&mut self, cur: &mut Cursor, path: &Path) -> Result<(), Diagnostic> {
        let key_pos = cur.pos();
        let key = match cur.peek() {
            Some(b'"') => cur.double_quoted()?,
            Some(b'\'') => cur.single_quoted()?,
            _ => cur.bare_key().to_string(),
        };
        if key.is_empty() {
            let found = cur.peek().map(char::from).unwrap_or(' ');
            return Err(Diagnostic::error(
                &key_pos,
                format!("expected a key, found '{found}'"),
            ));
        }
        if matches!(cur.peek(), Some(b'{' | b'[')) {
            return Err(Diagnostic::error(
                &cur.pos(),
                format!("missing separator between key \"{key}\" and its value"),
            )
            .with_help(format!("write `{key} {{ ... }}` or `{key}: ...`")));
        }
        let sep_blank = matches!(cur.peek(), Some(b' ' | b'\t'));
        cur.skip_blanks();
        if key == "include" && sep_blank && !matches!(cur.peek(), Some(b':' | b'=')) {
            return self.include(cur, path, &key_pos);
        }
        if matches!(cur.peek(), Some(b':' | b'=')) {
            cur.bump();
            cur.skip_blanks();
        }
        if cur.at_eof() || cur.peek() == Some(b'\n') || cur.at_comment() {
            return Err(
                Diagnostic::error(&cur.pos(), format!("key \"{key}\" has no value"))
                    .with_help(format!("write `{key}: <value>`")),
            );
        }
        let value = self.value(cur, path)?;
        if let Some(scope) = self.scopes.last_mut() {
            scope.push(Entry {
                key,
                key_pos,
                value,
                used_as_variable: false,
            });
        }
        Ok(())
    }

    fn value(&mut self, cur: &mut Cursor, path: &Path) -> Result<Node, Diagnostic> {
        let pos = cur.pos();
        let value = match cur.peek() {
            Some(b'{') => {
                self.descend(&pos)?;
                cur.bump();
                self.scopes.push(Vec::new());
                let body = self.body(cur, path, true);
                let entries = self.scopes.pop().unwrap_or_default();
                body?;
                self.depth -= 1;
                Value::Map(Map { entries })
            }
            Some(b'[') => {
                self.descend(&pos)?;
                let items = self.array(cur, path)?;
                self.depth -= 1;
                Value::Array(items)
            }
            Some(b'"') => Value::Str(cur.double_quoted()?),
            Some(b'\'') => Value::Str(cur.single_quoted()?),
            Some(b'(') => Value::Str(cur.block()?),
            Some(b'$') => return self.variable(cur, &pos),
            Some(b'-' | b'0'..=b'9') => lex::number_or_string(cur.unquoted(), &pos)?,
            Some(_) => {
                let text = cur.unquoted();
                if text.is_empty() {
                    let found = cur.peek().map(char::from).unwrap_or(' ');
                    return Err(Diagnostic::error(
                        &pos,
                        format!("expected a value, found '{found}'"),
                    ));
                }
                match lex::boolean(text) {
                    Some(b) => Value::Bool(b),
                    None => Value::Str(text.to_string()),
                }
            }
            None => {
                return Err(Diagnostic::error(
                    &pos,
                    "expected a value, found end of file",
                ))
            }
        };
        Ok(Node { value, pos })
    }

    fn array(&mut self, cur: &mut Cursor, path: &Path) -> Result<Vec<Node>, Diagnostic> {
        let open = cur.pos();
        cur.bump();
        let mut items = Vec::new();
        loop {
            cur.skip_space();
            match cur.peek() {
                None => {
                    return Err(Diagnostic::error(&open, "unterminated array")
                        .with_help("close the array with `]`"))
                }
                Some(b']') => {
                    cur.bump();
                    return Ok(items);
                }
                Some(b',') => {
                    return Err(Diagnostic::error(&cur.pos(), "unexpected `,` in array")
                        .with_help("remove the extra comma"))
                }
                Some(_) => items.push(self.value(cur, path)?),
            }
            cur.skip_blanks();
            if cur.at_comment() {
                cur.skip_comment();
            }
            match cur.peek() {
                Some(b',' | b'\n') => {
                    cur.bump();
                }
                Some(b']') => {}
                None => {}
                Some(b) => {
                    return Err(Diagnostic::error(
                        &cur.pos(),
                        format!(
                            "expected `,`, a new line or `]` after an array element, found '{}'",
                            char::from(b)
                        ),
                    )
                    .with_help("separate elements on one line with commas"))
                }
            }
        }
    }

    /// `$NAME`: the nearest enclosing definition, then the environment.
    /// `$2a$...` is a bcrypt hash, not a reference.
    fn variable(&mut self, cur: &mut Cursor, pos: &Pos) -> Result<Node, Diagnostic> {
        cur.bump();
        let name = cur.unquoted().to_string();
        if name.starts_with("2a$") {
            return Ok(Node {
                value: Value::Str(format!("${name}")),
                pos: pos.clone(),
            });
        }
        if name.is_empty() {
            return Err(Diagnostic::error(
                pos,
                "`$` must be followed by a variable name",
            ));
        }
        for scope in self.scopes.iter_mut().rev() {
            let mut found = None;
            // A redefined variable is one variable: every definition counts as used.
            for entry in scope.iter_mut().filter(|e| e.key == name) {
                entry.used_as_variable = true;
                found = Some(entry.value.value.clone());
            }
            if let Some(value) = found {
                return Ok(Node {
                    value,
                    pos: pos.clone(),
                });
            }
        }
        if let Some(raw) = self.env.var(&name) {
            return Ok(Node {
                value: env_value(&raw, &name),
                pos: pos.clone(),
            });
        }
        Err(Diagnostic::error(
            pos,
            format!("variable reference for '{name}' can not be found"),
        )
        .with_help(format!(
            "define `{name} = <value>` earlier in this or an enclosing block, or export {name} in the environment"
        )))
    }

    fn include(&mut self, cur: &mut Cursor, path: &Path, at: &Pos) -> Result<(), Diagnostic> {
        let target = match cur.peek() {
            Some(b'"') => cur.double_quoted()?,
            Some(b'\'') => cur.single_quoted()?,
            _ => cur.unquoted().to_string(),
        };
        if target.is_empty() {
            return Err(Diagnostic::error(at, "include needs a file name"));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let full = dir.join(&target);
        let canon = canonical(&full);
        if self.includes.contains(&canon) || self.includes.len() >= MAX_INCLUDE_DEPTH {
            let chain: Vec<String> = self
                .includes
                .iter()
                .chain(std::iter::once(&canon))
                .map(|p| p.display().to_string())
                .collect();
            return Err(
                Diagnostic::error(at, format!("include cycle: {}", chain.join(" -> ")))
                    .with_help("remove one of the includes in the cycle"),
            );
        }
        let text = read(&full, Some(at))?;
        let name: Arc<str> = full.display().to_string().into();
        let mut inner = Cursor::new(&text, name);
        self.includes.push(canon);
        let result = self.body(&mut inner, &full, false);
        self.includes.pop();
        result
    }
}

/// An environment variable's text is read as a config value (`4222` is an integer,
/// `{a: 1}` a map); text that is not a single value is taken as a string.
fn env_value(raw: &str, name: &str) -> Value {
    struct NoEnv;
    impl Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }
    let wrapped = format!("v: {raw}");
    match parse_str(&wrapped, &format!("${name}"), &NoEnv) {
        Ok(mut map) if map.entries.len() == 1 => map.entries.remove(0).value.value,
        _ => Value::Str(raw.to_string()),
    }
}
