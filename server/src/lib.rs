//! canopy-server: a NATS-compatible server for leaf-node topologies.
//!
//! This crate is the server library behind the `canopy-server` binary. Public are only
//! what others use: [`config`] (canopy-gen checks every file it writes with it), the
//! wire parsers in [`protocol`] (the fuzz targets), [`subject`], and what the binary
//! runs ([`cli`], [`log`], [`server`], [`signal`], [`probe`]). It is not a NATS client
//! library. docs/ARCHITECTURE.md shows the floors the modules sit on.

#![forbid(unsafe_code)]
#![recursion_limit = "256"]

pub mod cli;
pub mod config;
pub mod log;
pub mod protocol;
pub mod server;
pub mod signal;
pub mod subject;

/// `--healthz URL`: the probe for containers without a shell.
pub use monitor::probe;

mod account;
mod auth;
mod conn;
mod dial;
mod leafnode;
mod listen;
mod mapping;
mod monitor;
mod nkey;
mod reload;
mod route;
mod session;
mod sublist;
mod sys;
mod tls;
mod world;
