//! Blocks Canopy reads and checks but does not serve: `websocket`, `mqtt`, `gateway`,
//! operator/JWT mode, OCSP, proxies. Their keys are checked as nats-server checks
//! them (a typo is still a typo), then each block is refused by name: a server that
//! started without what its config asks for would fail its operator silently.

use super::auth::{self, AuthBlock};
use super::decode::{self, Fields};
use super::error::{Diagnostic, Diagnostics};
use super::net;
use super::tls;
use super::value::{Node, Value};
use std::path::Path;

/// Keys of a listener-like block: what it accepts beyond host/port/tls/authorization.
struct BlockSpec {
    keys: &'static [&'static [&'static str]],
    auth: AuthBlock,
}

const WEBSOCKET: BlockSpec = BlockSpec {
    keys: &[
        &["advertise"],
        &["no_auth_user"],
        &["compression", "compress"],
        &["same_origin"],
        &[
            "allowed_origins",
            "allowed_origin",
            "allow_origins",
            "allow_origin",
            "origins",
            "origin",
        ],
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
        &["advertise"],
        &["connect_retries"],
        &["connect_backoff"],
        &["reject_unknown", "reject_unknown_cluster"],
        &["write_deadline"],
        &["write_timeout"],
    ],
    auth: AuthBlock::Gateway,
};

fn listener_block(
    name: &'static str,
    spec: &BlockSpec,
    node: &Node,
    base: &Path,
    d: &mut Diagnostics,
) {
    let Some(mut f) = Fields::of(name, node, d) else {
        return;
    };
    if let Some(e) = f.take(&["listen"]) {
        net::parse_listen(e, d);
    }
    f.int(&["port"], d);
    f.string(&["host", "net"], d);
    if let Some(e) = f.take(&["tls"]) {
        let ctx = if spec.auth == AuthBlock::Gateway {
            tls::TlsContext::Link
        } else {
            tls::TlsContext::Endpoint
        };
        tls::parse_tls(&e.value, base, ctx, d);
    }
    let auth_keys: &[&str] = if spec.auth == AuthBlock::Gateway {
        &["authorization"]
    } else {
        &["authorization", "authentication"]
    };
    if let Some(e) = f.take(auth_keys) {
        auth::parse_authorization(&e.value, spec.auth, d);
    }
    if spec.auth == AuthBlock::Mqtt {
        if let Some(e) = f.take(&["consumer_replicas"]) {
            d.push(Diagnostic::warning(&e.key_pos, "invalid use of field \"consumer_replicas\": consumer replicas setting ignored in this server version")
                .with_help("remove consumer_replicas"));
        }
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
                tls::parse_tls(&t.value, base, tls::TlsContext::Link, d);
            }
            g.finish(d, |_| None);
        }
    }
}

const JWT: &str = "JWT/operator mode is not served: define accounts {} with users or nkeys";

/// Take every unserved key from the top level, check the blocks that have a known
/// shape, and refuse each by name.
pub fn parse_unserved(f: &mut Fields, base: &Path, d: &mut Diagnostics) {
    if let Some(e) = f.take(&["websocket", "ws"]) {
        listener_block("websocket", &WEBSOCKET, &e.value, base, d);
        d.push(decode::unsupported(e, "clients connect over TCP (the client port); remove the block, or run nats-server for websocket clients"));
    }
    if let Some(e) = f.take(&["mqtt"]) {
        listener_block("mqtt", &MQTT, &e.value, base, d);
        d.push(decode::unsupported(
            e,
            "MQTT clients are not served; remove the block, or run nats-server for them",
        ));
    }
    if let Some(e) = f.take(&["gateway"]) {
        listener_block("gateway", &GATEWAY, &e.value, base, d);
        d.push(decode::unsupported(
            e,
            "super-clusters over gateways are not served: join clusters with leafnodes {} remotes",
        ));
    }
    for (keys, why) in [
        (
            &[
                "operator",
                "operators",
                "root",
                "roots",
                "root_operators",
                "root_operator",
            ][..],
            JWT,
        ),
        (&["resolver", "account_resolver", "accounts_resolver"], JWT),
        (&["resolver_tls"], JWT),
        (&["resolver_preload"], JWT),
        (&["resolver_pinned_accounts"], JWT),
        (&["trusted", "trusted_keys"], JWT),
        (&["default_sentinel"], JWT),
        (
            &["proxy_protocol"],
            "PROXY protocol headers are not read; clients must reach the server directly",
        ),
        (
            &["feature_flags"],
            "nats-server's feature flags switch behaviour Canopy does not have",
        ),
        (
            &["default_js_domain"],
            "JetStream domains for accounts without JetStream are not served",
        ),
    ] {
        if let Some(e) = f.take(keys) {
            if keys[0] == "resolver_tls" {
                tls::parse_tls(&e.value, base, tls::TlsContext::Endpoint, d);
            }
            d.push(decode::unsupported(e, why));
        }
    }
    if let Some(e) = f.take(&["ocsp"]) {
        if matches!(e.value.value, Value::Map(_)) {
            decode::known_keys("ocsp", &e.value, &[&["mode"], &["url"], &["urls"]], d);
        }
        d.push(decode::unsupported(
            e,
            "OCSP stapling and checks are not served; remove the block",
        ));
    }
    if let Some(e) = f.take(&["ocsp_cache"]) {
        if matches!(e.value.value, Value::Map(_)) {
            decode::known_keys(
                "ocsp_cache",
                &e.value,
                &[
                    &["type"],
                    &["local_store"],
                    &["preserve_revoked"],
                    &["save_interval"],
                ],
                d,
            );
        }
        d.push(decode::unsupported(
            e,
            "OCSP is not served; remove the block",
        ));
    }
    if let Some(e) = f.take(&["proxies"]) {
        if let Some(mut p) = Fields::of("proxies", &e.value, d) {
            if let Some(t) = p.take(&["trusted"]) {
                for mut entry in decode::maps(t, "proxies trusted entry", d) {
                    entry.string(&["key", "public_key"], d);
                    entry.finish(d, |_| None);
                }
            }
            p.finish(d, |_| None);
        }
        d.push(decode::unsupported(
            e,
            "trusted proxies are not served; clients must reach the server directly",
        ));
    }
}
