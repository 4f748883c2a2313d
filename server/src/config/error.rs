//! Diagnostics: an error or warning at a place in a file, with a one-line fix where one is known.

use super::value::Pos;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    /// The official server starts with these but `-t` fails on them; so do we.
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Absent only for errors about the file as a whole (it cannot be read).
    pub pos: Option<Pos>,
    pub message: String,
    pub help: Option<String>,
    /// The file does not parse (as opposed to a value that does not fit its key):
    /// shown as nats-server shows it, `Parse error on line N`, which launch helpers
    /// and scripts look for.
    pub syntax: bool,
}

impl Diagnostic {
    pub fn error(pos: &Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            pos: Some(pos.clone()),
            message: message.into(),
            help: None,
            syntax: false,
        }
    }

    pub fn warning(pos: &Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(pos, message)
        }
    }

    pub fn file(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            pos: None,
            message: message.into(),
            help: None,
            syntax: false,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Mark a diagnostic about a place in the file as a syntax error.
    pub fn into_syntax(mut self) -> Self {
        self.syntax = self.pos.is_some();
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: error: message` (a syntax error: `Parse error on line N
    /// (file:line:col): message`) and, on the next line, `  = help: ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &self.pos {
            Some(pos) if self.syntax => write!(
                f,
                "Parse error on line {} ({pos}): {}",
                pos.line, self.message
            )?,
            Some(pos) => write!(f, "{pos}: {level}: {}", self.message)?,
            None => write!(f, "{level}: {}", self.message)?,
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

/// Every diagnostic a load produced. A config is usable when it holds no error;
/// `-t` (check mode) also refuses warnings, as the official server does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
