//! canopy-server: a NATS-compatible server for leaf-node topologies.
//!
//! This crate is the server library (config, protocol, connections) behind the
//! `canopy-server` binary; `canopy-gen` uses [`config`] to check every file it writes.
//! It is not a NATS client library.

#![forbid(unsafe_code)]
#![recursion_limit = "256"]

pub mod cli;
pub mod config;
pub mod log;

pub mod account;
pub mod auth;
pub mod conn;
pub mod leafnode;
pub mod listen;
pub mod mapping;
pub mod monitor;
pub mod nkey;
pub mod protocol;
pub mod reload;
pub mod route;
pub mod server;
pub mod signal;
pub mod subject;
pub mod sublist;
pub mod sys;
pub mod tls;
