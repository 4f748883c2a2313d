//! The character level of the config language: a cursor with line and column, and
//! the scanners for comments, quoted, unquoted and block strings, and scalars.
//!
//! The grammar is context-sensitive (an unquoted `10s` is a string, `10k` an integer,
//! `nats://h:4222` a string whose `//` is not a comment), so the parser asks the
//! cursor for the token it expects rather than reading a token stream.

use super::error::Diagnostic;
use super::value::{Pos, Value};
use std::sync::Arc;

pub struct Cursor<'a> {
    src: &'a [u8],
    text: &'a str,
    i: usize,
    line: u32,
    col: u32,
    pub file: Arc<str>,
}

/// Characters that end an unquoted string, a number, a variable name or a bare key's value.
pub fn ends_unquoted(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b',' | b';' | b']' | b'}')
}

impl<'a> Cursor<'a> {
    pub fn new(text: &'a str, file: Arc<str>) -> Self {
        Cursor {
            src: text.as_bytes(),
            text,
            i: 0,
            line: 1,
            col: 1,
            file,
        }
    }

    pub fn pos(&self) -> Pos {
        Pos {
            file: self.file.clone(),
            line: self.line,
            col: self.col,
        }
    }

    pub fn peek(&self) -> Option<u8> {
        self.src.get(self.i).copied()
    }

    pub fn peek_at(&self, n: usize) -> Option<u8> {
        self.src.get(self.i + n).copied()
    }

    pub fn at_eof(&self) -> bool {
        self.i >= self.src.len()
    }

    pub fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        if b == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if b & 0xC0 != 0x80 {
            // Count columns in characters, not in UTF-8 continuation bytes.
            self.col += 1;
        }
        Some(b)
    }

    /// Spaces and tabs (and a CR, so CRLF files read like LF files).
    pub fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.bump();
        }
    }

    /// `#...` or `//...` up to (not including) the newline.
    pub fn at_comment(&self) -> bool {
        self.peek() == Some(b'#') || (self.peek() == Some(b'/') && self.peek_at(1) == Some(b'/'))
    }

    pub fn skip_comment(&mut self) {
        while let Some(b) = self.peek() {
            if b == b'\n' {
                break;
            }
            self.bump();
        }
    }

    /// Blanks, newlines and comments.
    pub fn skip_space(&mut self) {
        loop {
            self.skip_blanks();
            if self.at_comment() {
                self.skip_comment();
            } else if self.peek() == Some(b'\n') {
                self.bump();
            } else {
                break;
            }
        }
    }

    fn take_while(&mut self, mut keep: impl FnMut(u8) -> bool) -> &'a str {
        let start = self.i;
        while let Some(b) = self.peek() {
            if !keep(b) {
                break;
            }
            self.bump();
        }
        // Stops only on ASCII bytes, so the slice is on char boundaries.
        &self.text[start..self.i]
    }

    /// A bare key: up to whitespace, `:` or `=`.
    pub fn bare_key(&mut self) -> &'a str {
        self.take_while(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b':' | b'=' | b'{' | b'['))
    }

    /// The run of an unquoted value.
    pub fn unquoted(&mut self) -> &'a str {
        self.take_while(|b| !ends_unquoted(b))
    }

    /// A double-quoted string; the cursor is on the opening quote.
    /// Escapes are those of the official server: `\t \n \r \" \\ \xXX`.
    pub fn double_quoted(&mut self) -> Result<String, Diagnostic> {
        let start = self.pos();
        self.bump();
        let mut out = Vec::new();
        loop {
            let esc_pos = self.pos();
            match self.bump() {
                None => {
                    return Err(Diagnostic::error(&start, "unterminated string")
                        .with_help("close the string with a matching `\"`"))
                }
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    Some(b't') => out.push(b'\t'),
                    Some(b'n') => out.push(b'\n'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b'"') => out.push(b'"'),
                    Some(b'\\') => out.push(b'\\'),
                    Some(b'x') => {
                        let hex = [self.bump(), self.bump()];
                        let byte = match hex {
                            [Some(h), Some(l)] => std::str::from_utf8(&[h, l])
                                .ok()
                                .and_then(|s| u8::from_str_radix(s, 16).ok()),
                            _ => None,
                        };
                        match byte {
                            Some(v) => out.push(v),
                            None => {
                                return Err(Diagnostic::error(
                                    &esc_pos,
                                    "invalid \\x escape: expected two hex digits",
                                ))
                            }
                        }
                    }
                    other => {
                        let shown = other.map(|b| (b as char).to_string()).unwrap_or_default();
                        return Err(Diagnostic::error(
                            &esc_pos,
                            format!("invalid escape character '{shown}'"),
                        )
                        .with_help(
                            "only \\xXX, \\t, \\n, \\r, \\\" and \\\\ are allowed; use single quotes for raw text",
                        ));
                    }
                },
                Some(b) => out.push(b),
            }
        }
        String::from_utf8(out)
            .map_err(|_| Diagnostic::error(&start, "string is not valid UTF-8 after escapes"))
    }

    /// A single-quoted raw string; the cursor is on the opening quote.
    pub fn single_quoted(&mut self) -> Result<String, Diagnostic> {
        let start = self.pos();
        self.bump();
        let body = self.take_while(|b| b != b'\'');
        if self.bump() != Some(b'\'') {
            return Err(Diagnostic::error(&start, "unterminated string")
                .with_help("close the string with a matching `'`"));
        }
        Ok(body.to_string())
    }

    /// A block string: `(` then raw lines up to a line holding only `)`.
    pub fn block(&mut self) -> Result<String, Diagnostic> {
        let start = self.pos();
        self.bump();
        let body_start = self.i;
        loop {
            let line_start = self.i;
            self.take_while(|b| b != b'\n');
            let line = self.text[line_start..self.i].trim();
            if line == ")" {
                let body = &self.text[body_start..line_start];
                return Ok(body.trim_matches('\n').to_string());
            }
            if self.bump().is_none() {
                return Err(Diagnostic::error(&start, "unterminated block string")
                    .with_help("end the block with a line holding only `)`"));
            }
        }
    }
}

/// Binary multipliers (`kb`, `ki`, `kib`) and decimal ones (`k`), as the official server
/// measured: `1k` = 1000, `1kb` = `1ki` = `1kib` = 1024, `MB` = 2^20.
fn size_multiplier(suffix: &str) -> Option<i64> {
    let s = suffix.to_ascii_lowercase();
    let (unit, binary) = match s.len() {
        1 => (s.as_bytes()[0], false),
        2 if s.ends_with('b') || s.ends_with('i') => (s.as_bytes()[0], true),
        3 if s.ends_with("ib") => (s.as_bytes()[0], true),
        _ => return None,
    };
    let exp = match unit {
        b'k' => 1,
        b'm' => 2,
        b'g' => 3,
        b't' => 4,
        b'p' => 5,
        b'e' => 6,
        _ => return None,
    };
    let base: i64 = if binary { 1024 } else { 1000 };
    base.checked_pow(exp)
}

fn is_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:ddZ";
    b.len() == shape.len()
        && b.iter().zip(shape).all(|(c, want)| match want {
            b'd' => c.is_ascii_digit(),
            _ => c == want,
        })
}

/// Classify an unquoted run that started with a digit or `-`: an integer (with an
/// optional size suffix), a float, a datetime, or else a string (`10s`, `1.2.3.4:80`).
pub fn number_or_string(text: &str, pos: &Pos) -> Result<Value, Diagnostic> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.starts_with(|c: char| c.is_ascii_digit()) {
        let got = digits.chars().next().map(String::from).unwrap_or_default();
        return Err(Diagnostic::error(
            pos,
            format!("expected a digit after '-', found '{got}'"),
        ));
    }
    let n_digits = digits.bytes().take_while(u8::is_ascii_digit).count();
    let (num, rest) = text.split_at(text.len() - digits.len() + n_digits);
    let out_of_range = || {
        Diagnostic::error(pos, format!("integer '{text}' is out of range"))
            .with_help("integers must fit in 64 bits")
    };
    if rest.is_empty() {
        return num
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| out_of_range());
    }
    if let Some(mult) = size_multiplier(rest) {
        let n: i64 = num.parse().map_err(|_| out_of_range())?;
        return n.checked_mul(mult).map(Value::Int).ok_or_else(out_of_range);
    }
    if let Some(frac) = rest.strip_prefix('.') {
        if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(f) = text.parse::<f64>() {
                return Ok(Value::Float(f));
            }
        }
    }
    if is_datetime(text) {
        return Ok(Value::DateTime(text.to_string()));
    }
    Ok(Value::Str(text.to_string()))
}

/// `true/false/yes/no/on/off` in any case.
pub fn boolean(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Value {
        let pos = Pos {
            file: "t".into(),
            line: 1,
            col: 1,
        };
        number_or_string(s, &pos).unwrap()
    }

    #[test]
    fn size_suffixes_are_decimal_alone_and_binary_with_b_or_i() {
        assert_eq!(num("1k"), Value::Int(1000));
        assert_eq!(num("1K"), Value::Int(1000));
        assert_eq!(num("1kb"), Value::Int(1024));
        assert_eq!(num("1ki"), Value::Int(1024));
        assert_eq!(num("1KiB"), Value::Int(1024));
        assert_eq!(num("256MB"), Value::Int(268_435_456));
        assert_eq!(num("1m"), Value::Int(1_000_000));
        assert_eq!(num("1GB"), Value::Int(1_073_741_824));
        assert_eq!(num("2g"), Value::Int(2_000_000_000));
        assert_eq!(num("-5"), Value::Int(-5));
    }

    #[test]
    fn durations_addresses_and_bad_suffixes_stay_strings() {
        assert_eq!(num("10s"), Value::Str("10s".into()));
        assert_eq!(num("1XB"), Value::Str("1XB".into()));
        assert_eq!(num("127.0.0.1:4222"), Value::Str("127.0.0.1:4222".into()));
        assert_eq!(num("1.2.3"), Value::Str("1.2.3".into()));
        assert_eq!(num("0.5"), Value::Float(0.5));
        assert_eq!(
            num("2020-01-01T00:00:00Z"),
            Value::DateTime("2020-01-01T00:00:00Z".into())
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let pos = Pos {
            file: "t".into(),
            line: 1,
            col: 1,
        };
        assert!(number_or_string("99999999999999999999", &pos).is_err());
        assert!(number_or_string("9999999999999eb", &pos).is_err());
    }
}
