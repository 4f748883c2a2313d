//! Blocks Canopy reads and checks but does not serve yet: `websocket`, `mqtt`,
//! `gateway`, operator/JWT mode, OCSP, proxies. Each is listed by name at startup
//! so an operator knows what is not running.

use super::auth::{self, AuthBlock};
use super::decode::{self, Fields};
use super::error::Diagnostics;
use super::tls;
use super::value::{Node, Pos};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unserved {
    /// The key as written (`websocket`, `gateway`, `operator`...).
    pub name: String,
    pub pos: Pos,
}

/// Keys of a listener-like block: what it accepts beyond host/port/tls/authorization.
struct BlockSpec {
    keys: &'static [&'static [&'static str]],
    auth: AuthBlock,
}

const WEBSOCKET: BlockSpec = BlockSpec {
    keys: &[
        &["advertise"],
        &["no_auth_user"],
        &["compression"],
        &["same_origin"],
        &["allowed_origins", "allowed_origin", "allowed_origins"],
        &["handshake_timeout"],
        &["no_tls"],
        &["jwt_cookie"],
        &["user_cookie"],
        &["pass_cookie"],
        &["token_cookie"],
        &["headers"],
        &["ping_interval"],
    ],
    auth: AuthBlock::Websocket,
};

const MQTT: BlockSpec = BlockSpec {
    keys: &[
        &["no_auth_user"],
        &["ack_wait", "ackwait"],
        &["max_ack_pending", "max_pending", "max_inflight"],
        &["js_domain"],
        &["stream_replicas"],
        &["consumer_replicas"],
        &["consumer_memory_storage"],
        &["consumer_inactive_threshold", "consumer_auto_cleanup"],
        &["reject_qos2_publish"],
        &["downgrade_qos2_subscribe"],
        &["js_api_timeout", "api_timeout"],
    ],
    auth: AuthBlock::Mqtt,
};

const GATEWAY: BlockSpec = BlockSpec {
    keys: &[
        &["name"],
        &["gateways"],
        &["advertise", "gateway_advertise"],
        &["connect_retries"],
        &["connect_backoff"],
        &["reject_unknown", "reject_unknown_cluster"],
        &["write_deadline"],
        &["write_timeout"],
    ],
    auth: AuthBlock::Gateway,
};

fn listener_block(name: &'static str, spec: &BlockSpec, node: &Node, base: &Path, d: &mut Diagnostics) {
    let Some(mut f) = Fields::of(name, node, d) else {
        return;
    };
    if let Some(e) = f.take(&["listen"]) {
        super::options::parse_listen(e, d);
    }
    f.int(&["port"], d);
    f.string(&["host", "net"], d);
    if let Some(e) = f.take(&["tls"]) {
        tls::parse_tls(&e.value, base, d);
    }
    if let Some(e) = f.take(&["authorization", "authentication"]) {
        auth::parse_authorization(&e.value, spec.auth, d);
    }
    let gateways = if spec.auth == AuthBlock::Gateway {
        f.take(&["gateways"])
    } else {
        None
    };
    for keys in spec.keys {
        f.take(keys);
    }
    f.finish(d, |_| None);
    if let Some(e) = gateways {
        for mut g in decode::maps(e, "gateway entry", d) {
            g.string(&["name"], d);
            if let Some(u) = g.take(&["url", "urls"]) {
                decode::strings(u, d);
            }
            if let Some(t) = g.take(&["tls"]) {
                tls::parse_tls(&t.value, base, d);
            }
            g.finish(d, |_| None);
        }
    }
}

/// Take every not-yet-served key from the top level, checking the blocks that have
/// a known shape, and return their names and places.
pub fn parse_unserved(f: &mut Fields, base: &Path, d: &mut Diagnostics) -> Vec<Unserved> {
    let mut out = Vec::new();
    let mut note = |e: &super::value::Entry| {
        out.push(Unserved {
            name: e.key.clone(),
            pos: e.key_pos.clone(),
        })
    };
    if let Some(e) = f.take(&["websocket", "ws"]) {
        listener_block("websocket", &WEBSOCKET, &e.value, base, d);
        note(e);
    }
    if let Some(e) = f.take(&["mqtt"]) {
        listener_block("mqtt", &MQTT, &e.value, base, d);
        note(e);
    }
    if let Some(e) = f.take(&["gateway"]) {
        listener_block("gateway", &GATEWAY, &e.value, base, d);
        note(e);
    }
    for keys in [
        &["operator", "operators", "root", "roots", "root_operators", "root_operator"][..],
        &["resolver", "account_resolver", "accounts_resolver"],
        &["resolver_tls"],
        &["resolver_preload"],
        &["resolver_pinned_accounts"],
        &["trusted", "trusted_keys"],
        &["ocsp"],
        &["ocsp_cache"],
        &["proxies"],
        &["proxy_protocol"],
        &["default_sentinel"],
        &["feature_flags"],
        &["default_js_domain"],
    ] {
        if let Some(e) = f.take(keys) {
            if keys[0] == "resolver_tls" {
                tls::parse_tls(&e.value, base, d);
            }
            note(e);
        }
    }
    out
}
