//! Wire formats: op parsers and writers, and the INFO / CONNECT JSON.

pub mod client;
pub mod info;
pub mod leaf;
