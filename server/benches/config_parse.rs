//! How fast a large config loads: a 1 MiB file of accounts, users, permissions,
//! exports, imports and mappings, parsed and read into typed options.

use canopy_server::config::{load_str, Env};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

struct NoEnv;
impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

/// A realistic multi-tenant hub config, grown to at least `bytes`.
pub fn big_config(bytes: usize) -> String {
    let mut s = String::from(
        "# generated for the parse benchmark\nport: 4222\nserver_name: bench-hub\nmax_payload: 8MB\nping_interval: \"2m\"\n\
         cluster { name: hubs, port: 6222, routes: [ nats-route://a:6222, nats-route://b:6222 ] }\n\
         leafnodes { port: 7422, reconnect: \"2s\" }\naccounts {\n",
    );
    let mut i = 0;
    while s.len() < bytes {
        s.push_str(&format!(
            "  TENANT_{i} {{\n    users: [\n      {{ user: user_{i}_a, password: \"$2a$11$abcdefghijklmnopqrstuOabcdefghijklmnopqrstuvwxyz012\", permissions: {{ publish: {{ allow: [\"t{i}.>\", \"_INBOX.>\"], deny: [\"t{i}.admin.>\"] }}, subscribe: [\"t{i}.>\", \"_INBOX.>\"] }} }}\n      {{ user: user_{i}_b, password: 's3cr3t-{i}', permissions: {{ subscribe: \"t{i}.read.*\", allow_responses: {{ max: 1, expires: \"1m\" }} }} }}\n    ]\n    exports: [ {{ stream: \"t{i}.events.>\" }}, {{ service: \"t{i}.api.*\", response_type: singleton }} ]\n    mappings: {{ \"t{i}.orders.*\": \"t{i}.orders.{{{{wildcard(1)}}}}.v2\", \"t{i}.w\": [ {{ destination: \"t{i}.w.a\", weight: 50% }}, {{ destination: \"t{i}.w.b\", weight: 50% }} ] }}\n    jetstream: {{ max_mem: 64MB, max_file: 1GB, max_streams: 10, max_consumers: 100 }}\n  }}\n"
        ));
        i += 1;
    }
    s.push_str("}\n");
    s
}

fn parse_1mib(c: &mut Criterion) {
    let text = big_config(1 << 20);
    load_str(&text, "bench.conf", &NoEnv).expect("the benchmark config is valid");
    let mut g = c.benchmark_group("config");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.sample_size(20);
    g.bench_function("load_1mib", |b| {
        b.iter(|| load_str(black_box(&text), "bench.conf", &NoEnv).unwrap())
    });
    g.finish();
}

criterion_group!(benches, parse_1mib);
criterion_main!(benches);
