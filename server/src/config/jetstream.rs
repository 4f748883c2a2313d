//! `jetstream { }` at the top level and per account. Canopy does not serve JetStream
//! yet; the block is read and checked so that configs carrying it keep working.

use super::decode::Fields;
use super::error::{Diagnostic, Diagnostics};
use super::value::{Node, Pos, Value};
use std::time::Duration;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct JetStream {
    pub pos: Option<Pos>,
    pub enabled: bool,
    pub store_dir: Option<String>,
    pub max_memory_store: Option<i64>,
    pub max_file_store: Option<i64>,
    pub domain: Option<String>,
    /// `None` = default (2 min); `Some(ZERO)` = `always`.
    pub sync_interval: Option<Duration>,
    pub unique_tag: Option<String>,
    pub extension_hint: Option<String>,
    pub max_buffered_msgs: Option<i64>,
    pub max_buffered_size: Option<i64>,
    pub request_queue_limit: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountJetStream {
    pub enabled: bool,
    pub max_memory: Option<i64>,
    pub max_file: Option<i64>,
    pub max_streams: Option<i64>,
    pub max_consumers: Option<i64>,
}

fn enabled_word(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "enabled" | "enable" | "true" | "yes" | "on" => Some(true),
        "disabled" | "disable" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub fn parse_jetstream(node: &Node, d: &mut Diagnostics) -> Option<JetStream> {
    let mut js = JetStream {
        pos: Some(node.pos.clone()),
        enabled: true,
        ..Default::default()
    };
    match &node.value {
        Value::Bool(b) => {
            js.enabled = *b;
            return Some(js);
        }
        Value::Str(s) => match enabled_word(s) {
            Some(b) => {
                js.enabled = b;
                return Some(js);
            }
            None => {
                d.push(Diagnostic::error(
                    &node.pos,
                    format!("expected enabled, disabled or a block for jetstream, found \"{s}\""),
                ));
                return None;
            }
        },
        _ => {}
    }
    let mut f = Fields::of("jetstream", node, d)?;
    if let Some(e) = f.take(&["enabled", "enable"]) {
        js.enabled = super::decode::boolean(e, d).unwrap_or(true);
    }
    js.store_dir = f.string(&["store_dir", "storedir", "store"], d);
    js.max_memory_store = f.size(&["max_memory_store", "max_mem_store", "max_mem"], d);
    js.max_file_store = f.size(&["max_file_store", "max_file"], d);
    js.domain = f.string(&["domain"], d);
    if let Some(e) = f.take(&["sync_interval", "sync"]) {
        js.sync_interval = match &e.value.value {
            Value::Str(s) if s.eq_ignore_ascii_case("always") => Some(Duration::ZERO),
            _ => super::decode::duration(e, d),
        };
    }
    js.unique_tag = f.string(&["unique_tag"], d);
    js.extension_hint = f.string(&["extension_hint"], d);
    js.max_buffered_msgs = f.int(&["max_buffered_msgs"], d);
    js.max_buffered_size = f.size(&["max_buffered_size"], d);
    js.request_queue_limit = f.int(&["request_queue_limit"], d);
    for accepted in [
        &["key", "ek", "encryption_key"][..],
        &["prev_key", "prev_ek", "prev_encryption_key"],
        &["cipher"],
        &["max_outstanding_catchup"],
        &["strict"],
        &["info_queue_limit"],
        &["max_concurrent_io"],
        &["meta_compact"],
        &["meta_compact_size"],
        &["meta_compact_sync"],
    ] {
        f.take(accepted);
    }
    if let Some(e) = f.take(&["limits"]) {
        if let Some(mut l) = Fields::of("jetstream limits", &e.value, d) {
            for keys in [
                &["max_ack_pending"][..],
                &["max_ha_assets"],
                &["max_request_batch"],
                &["default_max_consumers"],
                &["duplicate_window"],
            ] {
                l.take(keys);
            }
            if let Some(b) = l.take(&["batch"]) {
                super::decode::known_keys(
                    "jetstream limits batch",
                    &b.value,
                    &[
                        &["max_inflight_per_stream"],
                        &["max_inflight_total"],
                        &["max_msgs"],
                        &["timeout"],
                    ],
                    d,
                );
            }
            l.finish(d, |_| None);
        }
    }
    if let Some(e) = f.take(&["tpm"]) {
        super::decode::known_keys(
            "jetstream tpm",
            &e.value,
            &[
                &["keys_file"],
                &["encryption_password"],
                &["srk_password"],
                &["pcr"],
                &["cipher"],
            ],
            d,
        );
    }
    f.finish(d, |k| match k {
        "max_memory" => Some(
            "the top-level key is max_memory_store (max_mem); max_memory is the per-account limit"
                .into(),
        ),
        _ => None,
    });
    Some(js)
}

pub fn parse_account_jetstream(node: &Node, d: &mut Diagnostics) -> Option<AccountJetStream> {
    let mut js = AccountJetStream {
        enabled: true,
        ..Default::default()
    };
    match &node.value {
        Value::Bool(b) => {
            js.enabled = *b;
            return Some(js);
        }
        Value::Str(s) => {
            return match enabled_word(s) {
                Some(b) => {
                    js.enabled = b;
                    Some(js)
                }
                None => {
                    d.push(Diagnostic::error(
                        &node.pos,
                        format!(
                            "expected enabled, disabled or a block for jetstream, found \"{s}\""
                        ),
                    ));
                    None
                }
            }
        }
        _ => {}
    }
    let mut f = Fields::of("account jetstream", node, d)?;
    js.max_memory = f.int(&["max_memory", "max_mem", "mem", "memory"], d);
    js.max_file = f.int(&["max_file", "max_store", "max_disk", "store", "disk"], d);
    js.max_streams = f.int(&["max_streams", "streams"], d);
    js.max_consumers = f.int(&["max_consumers", "consumers"], d);
    for accepted in [
        &["max_bytes_required", "max_bytes", "max_stream_bytes"][..],
        &["mem_max_stream_bytes", "memory_max_stream_bytes"],
        &["disk_max_stream_bytes", "store_max_stream_bytes"],
        &["max_ack_pending"],
        &["cluster_traffic"],
    ] {
        f.take(accepted);
    }
    f.finish(d, |_| None);
    Some(js)
}
