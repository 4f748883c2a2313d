//! Client TLS: required, mutual (verify), TLS-first, pinned certificates — with the
//! official client on Canopy, and the plain-text refusal checked against both servers.

mod support;
use futures::StreamExt;
use std::time::Duration;
use support::pki::{Pki, Port};
use support::{Impl, Server};

#[test]
fn a_plain_client_is_refused_when_tls_is_required() {
    let pki = Pki::new();
    for kind in Impl::all() {
        let s = Server::start(kind, &pki.tls_block(""));
        let mut c = s.raw();
        assert!(
            c.info.contains("\"tls_required\":true"),
            "{kind:?}: {}",
            c.info
        );
        c.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n");
        // Both close. The official server closes silently (its log says "TLS handshake
        // error: first record does not look like a TLS handshake"); Canopy first sends
        // the -ERR text clients already recognise, so the user sees why. On purpose.
        let want = match kind {
            Impl::Official => "",
            Impl::Canopy => "-ERR 'Secure Connection - TLS Required'\r\n",
        };
        assert_eq!(c.expect_closed(), want, "{kind:?}");
    }
}

#[test]
fn info_announces_client_verification() {
    let pki = Pki::new();
    for kind in Impl::all() {
        let s = Server::start(kind, &pki.tls_block("verify: true"));
        let c = s.raw();
        assert!(
            c.info.contains("\"tls_verify\":true"),
            "{kind:?}: {}",
            c.info
        );
        assert!(
            c.info.contains("\"tls_required\":true"),
            "{kind:?}: {}",
            c.info
        );
    }
}

async fn roundtrip(nc: &async_nats::Client) {
    let mut sub = nc.subscribe("secure").await.unwrap();
    nc.flush().await.unwrap();
    nc.publish("secure", "sealed".into()).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.payload, "sealed".as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_client_talks_over_tls() {
    let pki = Pki::new();
    let s = Server::start(Impl::Canopy, &pki.tls_block(""));
    let nc = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(pki.path("ca.pem"))
        .connect(format!("tls://127.0.0.1:{}", s.port))
        .await
        .expect("TLS connect");
    roundtrip(&nc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::new();
    let s = Server::start(Impl::Canopy, &pki.tls_block("verify: true"));
    let without = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(pki.path("ca.pem"))
        .connect(format!("tls://127.0.0.1:{}", s.port))
        .await;
    assert!(
        without.is_err(),
        "a client without a certificate must be refused"
    );
    let with = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(pki.path("ca.pem"))
        .add_client_certificate(pki.path("client.pem"), pki.path("client-key.pem"))
        .connect(format!("tls://127.0.0.1:{}", s.port))
        .await
        .expect("a client with a certificate from the CA connects");
    roundtrip(&with).await;
    assert!(s.log().contains("TLS handshake error"), "{}", s.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_first_serves_tls_first_clients() {
    let pki = Pki::new();
    let s = Server::start(Impl::Canopy, &pki.tls_block("handshake_first: true"));
    let nc = async_nats::ConnectOptions::new()
        .tls_first()
        .add_root_certificates(pki.path("ca.pem"))
        .connect(format!("tls://127.0.0.1:{}", s.port))
        .await
        .expect("TLS-first connect");
    roundtrip(&nc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_certs_admit_only_the_pinned_client() {
    let pki = Pki::new();
    let client = || {
        async_nats::ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(pki.path("ca.pem"))
            .add_client_certificate(pki.path("client.pem"), pki.path("client-key.pem"))
    };
    let pinned = Server::start(
        Impl::Canopy,
        &pki.tls_block(&format!(
            "verify: true\n pinned_certs: [\"{}\"]",
            pki.client_spki_sha256
        )),
    );
    let nc = client()
        .connect(format!("tls://127.0.0.1:{}", pinned.port))
        .await
        .expect("pinned client connects");
    roundtrip(&nc).await;
    let other = Server::start(
        Impl::Canopy,
        &pki.tls_block(&format!(
            "verify: true\n pinned_certs: [\"{}\"]",
            "ab".repeat(32)
        )),
    );
    assert!(
        client()
            .connect(format!("tls://127.0.0.1:{}", other.port))
            .await
            .is_err(),
        "an unpinned certificate is refused"
    );
    assert!(
        other.log().contains("not in pinned_certs"),
        "{}",
        other.log()
    );
}

async fn connect_with_cert(
    pki: &Pki,
    port: u16,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(pki.path("ca.pem"))
        .add_client_certificate(pki.path("client.pem"), pki.path("client-key.pem"))
        .connect(format!("tls://127.0.0.1:{port}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_map_names_the_user_by_certificate_email_or_subject() {
    let pki = Pki::new();
    for kind in Impl::all() {
        // E-mail SAN, or the subject DN with its RDNs in either order.
        for user in ["app@example.com", "CN=app,O=Acme", "O=Acme,CN=app"] {
            let config = format!(
                "{}\nauthorization {{ users: [ {{user: \"{user}\"}} ] }}",
                pki.tls_block("verify_and_map: true")
            );
            let s = Server::start(kind, &config);
            let nc = connect_with_cert(&pki, s.port)
                .await
                .unwrap_or_else(|e| panic!("{kind:?} {user}: {e}"));
            roundtrip(&nc).await;
        }
        let s = Server::start(
            kind,
            &format!(
                "{}\nauthorization {{ users: [ {{user: \"someone-else\"}} ] }}",
                pki.tls_block("verify_and_map: true")
            ),
        );
        assert!(
            connect_with_cert(&pki, s.port).await.is_err(),
            "{kind:?}: an unmapped certificate is refused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_flags_on_the_command_line_serve_tls_without_a_config_file() {
    let pki = Pki::new();
    let port = support::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_canopy-server"))
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "--tls"])
        .arg("--tlscert")
        .arg(pki.path("server.pem"))
        .arg("--tlskey")
        .arg(pki.path("server-key.pem"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut nc = None;
    for _ in 0..100 {
        if let Ok(c) = async_nats::ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(pki.path("ca.pem"))
            .connect(format!("tls://127.0.0.1:{port}"))
            .await
        {
            nc = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let nc = nc.expect("TLS connect to a server configured by flags");
    roundtrip(&nc).await;
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_the_server_certificate() {
    let first = Pki::new();
    let second = Pki::new();
    let s = Server::start(Impl::Canopy, &first.tls_block(""));
    let connect = |pki: &Pki| {
        async_nats::ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(pki.path("ca.pem"))
            .connect(format!("tls://127.0.0.1:{}", s.port))
    };
    roundtrip(&connect(&first).await.expect("first CA")).await;
    s.rewrite_config(&second.tls_block(""));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_canopy-server"))
        .args(["--signal", &format!("reload={}", s.pid())])
        .output()
        .unwrap();
    assert!(out.status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        connect(&first).await.is_err(),
        "the old certificate is no longer served"
    );
    roundtrip(
        &connect(&second)
            .await
            .expect("the new certificate is served"),
    )
    .await;
}

const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
const ANY: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A client-port handshake offering only `versions`, `suites` and `groups`: the suite.
fn handshake(
    port: u16,
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
    suites: &[rustls::SupportedCipherSuite],
    groups: &[&'static dyn rustls::crypto::SupportedKxGroup],
) -> Result<String, String> {
    pki.handshake(Port::Client, port, versions, suites, groups)
        .map(|a| a.suite)
}

/// `cipher_suites` picks the TLS 1.2 suites a server offers (TLS 1.3 suites stay on)
/// and `curve_preferences` its key-exchange groups: a client that offers only others
/// cannot connect; one that offers a listed one can. Same on both servers.
#[test]
fn cipher_suites_and_curve_preferences_limit_what_a_handshake_may_use() {
    use rustls::crypto::ring::{cipher_suite as cs, kx_group};
    let pki = Pki::new();
    for kind in Impl::all() {
        let s = Server::start(
            kind,
            &pki.tls_block(
                "cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n curve_preferences: [CurveP384]",
            ),
        );
        let listed = [cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384];
        let other = [cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256];
        let p384 = [kx_group::SECP384R1];
        let x25519 = [kx_group::X25519];
        let got = handshake(s.port, &pki, TLS12, &listed, &p384);
        assert_eq!(
            got.as_deref(),
            Ok("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
            "{kind:?}: the listed suite over P-384"
        );
        assert!(
            handshake(s.port, &pki, TLS12, &other, &p384).is_err(),
            "{kind:?}: a TLS 1.2 suite that is not listed was accepted"
        );
        assert!(
            handshake(s.port, &pki, ANY, &[], &x25519).is_err(),
            "{kind:?}: a curve that is not listed was accepted"
        );
        // TLS 1.3 suites are not restricted (the servers pick different ones).
        let tls13 = handshake(s.port, &pki, ANY, &[], &p384);
        assert!(
            tls13.as_deref().is_ok_and(|s| s.starts_with("TLS13_")),
            "{kind:?}: TLS 1.3 over the listed curve: {tls13:?}"
        );
    }
}

/// A suite or curve nats-server knows but rustls does not implement is refused by
/// name; an unknown one gets nats-server's own words.
#[test]
fn cipher_suites_canopy_cannot_serve_are_refused_by_name() {
    let pki = Pki::new();
    let dir = support::TempDir::new("ciphers");
    let check = |extra: &str| {
        let conf = dir.0.join("c.conf");
        std::fs::write(&conf, pki.tls_block(extra)).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_canopy-server"))
            .args(["-t", "-c"])
            .arg(&conf)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{extra} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = check("cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA]");
    assert!(
        e.contains("c.conf:")
            && e.contains(
                "cipher \"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA\" is not supported by canopy-server"
            ),
        "{e}"
    );
    let e = check("curve_preferences: [CurveP521]");
    assert!(
        e.contains("curve preference \"CurveP521\" is not supported by canopy-server"),
        "{e}"
    );
    let e = check("cipher_suites: [bogus]");
    assert!(e.contains("unrecognized cipher bogus"), "{e}");
}

/// The same three options on the leafnode and cluster listeners: a TLS 1.2 suite,
/// a curve or a version that is not listed is refused, a listed one is served. Both
/// servers.
#[test]
fn cipher_suites_curves_and_min_version_hold_on_the_leaf_and_cluster_ports() {
    use rustls::crypto::ring::{cipher_suite as cs, kx_group};
    let pki = Pki::new();
    let listed = [cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384];
    let other = [cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256];
    let p384 = [kx_group::SECP384R1];
    let x25519 = [kx_group::X25519];
    for kind in Impl::all() {
        for port_kind in [Port::Leaf, Port::Cluster] {
            for options in [
                "cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n curve_preferences: [CurveP384]",
                "min_version: \"1.3\"",
            ] {
                let port = support::free_port();
                let block = pki.tls_block(&format!("verify: true\n {options}"));
                let config = match port_kind {
                    Port::Leaf => format!("leafnodes {{ listen: \"127.0.0.1:{port}\"\n{} }}", pki.tls_block(options)),
                    _ => format!("cluster {{ name: c, listen: \"127.0.0.1:{port}\"\n{block} }}"),
                };
                let s = Server::start(kind, &config);
                let what = format!("{kind:?} {} port, {options}", if port_kind == Port::Leaf { "leaf" } else { "cluster" });
                if options.starts_with("min_version") {
                    assert!(pki.handshake(port_kind, port, TLS12, &[], &[]).is_err(), "{what}: TLS 1.2 served");
                    assert!(pki.handshake(port_kind, port, ANY, &[], &[]).is_ok(), "{what}: TLS 1.3 refused");
                } else {
                    assert!(pki.handshake(port_kind, port, TLS12, &listed, &p384).is_ok(), "{what}: the listed suite refused");
                    assert!(pki.handshake(port_kind, port, TLS12, &other, &p384).is_err(), "{what}: an unlisted TLS 1.2 suite served");
                    assert!(pki.handshake(port_kind, port, ANY, &[], &x25519).is_err(), "{what}: an unlisted curve served");
                }
                drop(s);
            }
        }
    }
}
