//! An HCL writer that lays out as `terraform fmt` does, and the `variable` and
//! `output` blocks every root module writes.

use std::fmt::Write;

/// A value: a one-line expression, or a nested object/map written over lines.
#[derive(Clone)]
pub(super) enum V {
    Expr(String),
    Obj(Vec<(String, V)>),
}

pub(super) fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub(super) fn e(s: impl Into<String>) -> V {
    V::Expr(s.into())
}

pub(super) fn qs(s: &str) -> V {
    V::Expr(q(s))
}

/// `[a, b]` from already-written items.
pub(super) fn hcl_list<I: IntoIterator<Item = String>>(items: I) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(", "))
}

pub(super) fn list<I: IntoIterator<Item = String>>(items: I) -> V {
    V::Expr(hcl_list(items))
}

#[derive(Default)]
pub(super) struct Hcl {
    pub(super) out: String,
    indent: usize,
}

impl Hcl {
    pub(super) fn line(&mut self, s: &str) {
        if s.is_empty() {
            self.out.push('\n');
        } else {
            let _ = writeln!(self.out, "{:width$}{s}", "", width = self.indent);
        }
    }

    pub(super) fn open(&mut self, header: &str) {
        self.line(&format!("{header} {{"));
        self.indent += 2;
    }

    pub(super) fn close(&mut self) {
        self.indent -= 2;
        self.line("}");
    }

    /// Attributes: runs of one-line values align their `=`; a multi-line value stands
    /// alone (`key = {`) and ends the run, as `terraform fmt` does.
    pub(super) fn attrs(&mut self, attrs: Vec<(String, V)>) {
        let one_line = |v: &V| matches!(v, V::Expr(x) if !x.contains('\n'));
        let mut i = 0;
        while i < attrs.len() {
            let mut j = i;
            while j < attrs.len() && one_line(&attrs[j].1) {
                j += 1;
            }
            // A run of one-line values, or a single multi-line one.
            let (end, width) = if j == i {
                (i + 1, 0)
            } else {
                (
                    j,
                    attrs[i..j].iter().map(|(k, _)| k.len()).max().unwrap_or(0),
                )
            };
            for (k, v) in &attrs[i..end] {
                match v {
                    V::Expr(x) => self.line(&format!("{k:<width$} = {x}")),
                    V::Obj(fields) => {
                        self.line(&format!("{k:<width$} = {{"));
                        self.indent += 2;
                        self.attrs(fields.clone());
                        self.indent -= 2;
                        self.line("}");
                    }
                }
            }
            i = end;
        }
    }

    pub(super) fn finish(self) -> String {
        let mut s = self.out;
        while s.ends_with("\n\n") {
            s.pop();
        }
        s
    }
}

pub(super) fn a(k: &str, v: V) -> (String, V) {
    (k.to_string(), v)
}

/// Append a `variable` block to `vars`, a blank line between blocks.
pub(super) fn variable(
    vars: &mut String,
    name: &str,
    desc: &str,
    ty: &str,
    default: Option<&str>,
    validation: Option<(String, String)>,
) {
    let mut h = Hcl::default();
    h.open(&format!("variable {}", q(name)));
    let mut at = vec![a("description", qs(desc)), a("type", e(ty))];
    if let Some(d) = default {
        at.push(a("default", e(d)));
    }
    h.attrs(at);
    if let Some((cond, msg)) = validation {
        h.line("");
        h.open("validation");
        h.attrs(vec![a("condition", e(cond)), a("error_message", qs(&msg))]);
        h.close();
    }
    h.close();
    if !vars.is_empty() {
        vars.push('\n');
    }
    vars.push_str(&h.finish());
}

/// Append an `output` block to `outs`, a blank line between blocks.
pub(super) fn output(outs: &mut String, name: &str, desc: &str, value: V) {
    let mut h = Hcl::default();
    h.open(&format!("output {}", q(name)));
    h.attrs(vec![a("description", qs(desc)), a("value", value)]);
    h.close();
    if !outs.is_empty() {
        outs.push('\n');
    }
    outs.push_str(&h.finish());
}
