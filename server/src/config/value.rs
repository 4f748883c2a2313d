//! The value tree the parser produces: every node and every key carries the place it came from.

use std::fmt;
use std::sync::Arc;

/// A place in a config file: `file:line:col`, 1-based like rustc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A parsed value with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// ISO-8601 Zulu datetime, kept as written (`2020-01-01T00:00:00Z`).
    DateTime(String),
    Array(Vec<Node>),
    Map(Map),
}

impl Value {
    /// The type name used in diagnostics ("expected a duration, found an integer").
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::DateTime(_) => "a datetime",
            Value::Array(_) => "an array",
            Value::Map(_) => "a map",
        }
    }
}

/// One `key: value` of a map. `used_as_variable` is set when some `$key`
/// reference resolved to it: such entries are variables, not options.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
    pub used_as_variable: bool,
}

/// A map keeps its entries in file order; a repeated key overrides the earlier one
/// (the official server behaves the same way).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Map {
    pub entries: Vec<Entry>,
}

impl Map {
    /// The last entry with this key, if any.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
