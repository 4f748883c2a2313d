//! The NATS configuration language, as the official nats-server reads it.
//!
//! `lex` scans characters, `parse` builds a [`Map`] of [`Node`]s that remember their
//! `file:line:col`, and [`Options`] is read from that map key by key, refusing every
//! key it does not know — with the real option's name where the mistake is a known one.

pub mod accounts;
pub mod auth;
pub mod cluster;
pub mod decode;
pub mod error;
pub mod jetstream;
pub mod leafnode;
pub mod lex;
pub mod net;
pub mod options;
pub mod parse;
pub mod tls;
pub mod unserved;
pub mod value;

pub use error::{Diagnostic, Diagnostics, Severity};
pub use options::Options;
pub use parse::{Env, ProcessEnv};
pub use value::{Entry, Map, Node, Pos, Value};

use std::path::Path;

/// A loaded configuration: the options, and the warnings met on the way.
#[derive(Debug)]
pub struct Loaded {
    pub options: Options,
    pub warnings: Diagnostics,
}

/// Load and check a config file. Errors (and warnings) come back together, each with
/// its place; the caller decides whether warnings are fatal (`-t` says they are).
pub fn load(path: &Path) -> Result<Loaded, Diagnostics> {
    load_with_env(path, &ProcessEnv)
}

pub fn load_with_env(path: &Path, env: &dyn Env) -> Result<Loaded, Diagnostics> {
    let map = parse::parse_file(path, env).map_err(|e| Diagnostics(vec![e]))?;
    let pos = Pos {
        file: path.display().to_string().into(),
        line: 1,
        col: 1,
    };
    let mut diags = Diagnostics::default();
    let mut options = Options::from_map(&map, &pos, Path::new(""), &mut diags);
    options.config_file = Some(path.to_path_buf());
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Loaded {
        options,
        warnings: diags,
    })
}

/// Parse text into options (tests, fuzzing, benchmarks). Certificate paths resolve
/// against the working directory.
pub fn load_str(text: &str, name: &str, env: &dyn Env) -> Result<Loaded, Diagnostics> {
    let map = parse::parse_str(text, name, env).map_err(|e| Diagnostics(vec![e]))?;
    let pos = Pos {
        file: name.into(),
        line: 1,
        col: 1,
    };
    let mut diags = Diagnostics::default();
    let options = Options::from_map(&map, &pos, Path::new(""), &mut diags);
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Loaded {
        options,
        warnings: diags,
    })
}
