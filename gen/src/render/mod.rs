//! One renderer a target, each a pure function of the [`Model`](crate::model::Model)
//! (and of the secrets and PKI already decided), each adding files to the bundle.
//!
//! Renderers do not call one another: what more than one of them needs is in the
//! model (the address plan, [`crate::model::netplan`]), in [`layout`] (where files
//! live in the bundle) or in [`template`] (the tera templates). What one renderer
//! makes for another (the passwords, the hosts' configs) is handed over by the
//! caller, [`crate::build_bundle`].

pub mod compose;
pub mod conf;
pub mod diagram;
pub mod layout;
pub mod payload;
pub mod pki;
pub mod secrets;
pub mod template;
pub mod terraform;
