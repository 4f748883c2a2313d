//! `canopy gen` of a 500-leaf topology with a fresh PKI (1,003 keys and
//! certificates): parse and check, render the whole bundle, write it.
//! Run: cargo bench -p canopy-gen --bench gen_topology

use criterion::{criterion_group, criterion_main, Criterion};
use std::fmt::Write;

/// A hub cluster of 3 and 500 leaves on 20 edge sites, each site behind its own link.
pub fn topology(leaves: usize) -> String {
    let mut t = String::from(
        "name = \"bench\"\nsite \"central\" {\n  provider = \"onprem\"\n  cidr = \"10.0.0.0/16\"\n}\n\
         account \"APP\" {\n  user \"app\" {}\n}\nhub \"central\" {\n  site = \"central\"\n  size = 3\n}\n",
    );
    let sites = 20;
    for s in 0..sites {
        let _ = write!(
            t,
            "site \"edge-{s}\" {{\n  provider = \"edge\"\n  cidr = \"10.{}.0.0/16\"\n}}\n\
             link \"edge-{s}\" {{\n  sites = [\"edge-{s}\", \"central\"]\n  latency = \"30ms\"\n}}\n",
            s + 1
        );
    }
    for i in 0..leaves {
        let _ = write!(
            t,
            "leaf \"leaf-{i}\" {{\n  site = \"edge-{}\"\n  upstream \"central\" {{\n    account = \"APP\"\n    deny_exports = [\"local.>\"]\n  }}\n}}\n",
            i % sites
        );
    }
    t
}

fn bench(c: &mut Criterion) {
    let text = topology(500);
    let mut g = c.benchmark_group("gen");
    g.sample_size(10);
    g.bench_function("validate_500_leaves", |b| {
        b.iter(|| canopy_gen::load_str("bench.hcl", &text).map(|l| l.model.servers.len()))
    });
    let loaded = canopy_gen::load_str("bench.hcl", &text).unwrap_or_else(|r| panic!("{r}"));
    let tmp = std::env::temp_dir().join(format!("canopy-gen-bench-{}", std::process::id()));
    g.bench_function("gen_500_leaves_fresh_pki_written", |b| {
        b.iter(|| {
            let _ = std::fs::remove_dir_all(&tmp);
            canopy_gen::generate(&loaded.model, &tmp, &Default::default()).map(|b| b.files.len())
        })
    });
    g.bench_function("regen_500_leaves_existing_pki_written", |b| {
        b.iter(|| {
            canopy_gen::generate(&loaded.model, &tmp, &Default::default()).map(|b| b.files.len())
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&tmp);
}

criterion_group!(benches, bench);
criterion_main!(benches);
