//! Diagnostics in rustc's style: a message, the file:line:col it points at, the
//! source line with a caret under the offending text, and a help line that says what
//! to do. Rendering is annotate-snippets' (the crate rustc itself uses).

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use std::fmt;
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about a topology file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// Byte range in the source; `None` for findings about the file as a whole.
    pub span: Option<Range<usize>>,
    /// Text under the caret.
    pub label: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, span: Range<usize>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span: Some(span),
            label: String::new(),
            help: None,
        }
    }

    pub fn warning(message: impl Into<String>, span: Range<usize>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message, span)
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// 1-based line and column (in characters) of the start of the span.
    pub fn location(&self, text: &str) -> (usize, usize) {
        let at = self.span.as_ref().map_or(0, |s| s.start.min(text.len()));
        line_col(text, at)
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before, |nl| &before[nl + 1..])
        .chars()
        .count()
        + 1;
    (line, col)
}

/// A topology file's text and the name it is reported under.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: String,
    pub text: String,
}

/// Diagnostics for one file, rendered together.
#[derive(Debug, Clone)]
pub struct Report {
    pub source: Source,
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let renderer = Renderer::plain();
        let text = self.source.text.as_str();
        for d in &self.diagnostics {
            let level = match d.severity {
                Severity::Error => Level::ERROR,
                Severity::Warning => Level::WARNING,
            };
            let mut group: Group<'_> = level.primary_title(d.message.as_str()).element(
                Snippet::source(text)
                    .path(self.source.path.as_str())
                    .annotation(
                        AnnotationKind::Primary
                            .span(clamp(d.span.clone(), text))
                            .label(d.label.as_str()),
                    ),
            );
            if let Some(h) = &d.help {
                group = group.element(Level::HELP.message(h.as_str()));
            }
            writeln!(f, "{}", renderer.render(&[group]))?;
        }
        Ok(())
    }
}

/// A span inside the text, on character boundaries (the renderer slices by bytes).
fn clamp(span: Option<Range<usize>>, text: &str) -> Range<usize> {
    let span = span.unwrap_or(0..0);
    let mut end = span.end.min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    let mut start = span.start.min(end);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let t = "a\nbc = 1\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 2), (2, 1));
        assert_eq!(line_col(t, 5), (2, 4));
    }

    #[test]
    fn a_report_reads_like_rustc() {
        let text = "hub \"c\" {\n  site = \"nowhere\"\n}\n".to_string();
        let r = Report {
            source: Source {
                path: "t.hcl".into(),
                text: text.clone(),
            },
            diagnostics: vec![Diagnostic::error("unknown site \"nowhere\"", 19..28)
                .label("no site block has this name")
                .help("define `site \"nowhere\" { ... }` or use one of: (none)")],
        };
        let out = r.to_string();
        assert!(out.contains("error: unknown site \"nowhere\""), "{out}");
        assert!(out.contains("--> t.hcl:2:10"), "{out}");
        assert!(out.contains("^^^^^^^^^"), "{out}");
        assert!(out.contains("help: define"), "{out}");
    }
}
