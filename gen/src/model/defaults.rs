//! The topology's name and its `defaults` block.

use super::check::{check_dns_name, duration_ok, Ctx};
use super::types::{LeafAuth, DEFAULT_IMAGE};
use crate::diag::Diagnostic;
use crate::topology::Topology;

pub(super) struct Defaults {
    pub(super) name: String,
    pub(super) image: String,
    pub(super) tls: bool,
    pub(super) ping_interval: Option<String>,
    pub(super) leaf_auth: LeafAuth,
}

pub(super) fn build(c: &mut Ctx, t: &Topology) -> Defaults {
    let name = t.name.as_ref().map_or("canopy".to_string(), |n| {
        check_dns_name(c, "topology", n);
        n.value.clone()
    });
    let image = t
        .defaults
        .image
        .as_ref()
        .map_or(DEFAULT_IMAGE.to_string(), |i| i.value.clone());
    let tls = t.defaults.tls.as_ref().is_none_or(|b| b.value);
    let ping_interval = t.defaults.ping_interval.as_ref().and_then(|p| {
        if duration_ok(&p.value) && p.value != "0s" {
            Some(p.value.clone())
        } else {
            c.err(
                Diagnostic::error(format!("invalid ping_interval \"{}\"", p.value), p.span.clone())
                    .label("not a duration")
                    .help("write a number and a unit, e.g. \"20s\": a leaf link is declared stale after 3 unanswered PINGs"),
            );
            None
        }
    });
    let leaf_auth = match &t.defaults.leaf_auth {
        None if tls => LeafAuth::Mtls,
        None => LeafAuth::Password,
        Some(a) => match a.value.as_str() {
            "mtls" if !tls => {
                c.err(
                    Diagnostic::error("leaf_auth = \"mtls\" needs TLS", a.span.clone())
                        .label("client certificates need TLS")
                        .help("set `tls = true` in `defaults`, or use leaf_auth = \"password\""),
                );
                LeafAuth::Password
            }
            "mtls" => LeafAuth::Mtls,
            "password" => LeafAuth::Password,
            other => {
                c.err(
                    Diagnostic::error(format!("unknown leaf_auth \"{other}\""), a.span.clone())
                        .label("expected \"mtls\" or \"password\"")
                        .help("mtls: leaf links present client certificates; password: a generated user and password"),
                );
                LeafAuth::Mtls
            }
        },
    };
    Defaults {
        name,
        image,
        tls,
        ping_interval,
        leaf_auth,
    }
}
