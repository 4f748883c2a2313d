//! A Canopy leaf dialling a hub — the official nats-server, or Canopy itself —
//! with exact counts, deny rules, failover across hub URLs and loop detection.

mod support;
use std::time::{Duration, Instant};
use support::{Impl, Server};

fn hub(kind: Impl, leaf_port: u16) -> Server {
    Server::start(
        kind,
        &format!(
            "accounts {{ APP: {{ users: [ {{user: app, password: app}} ] }} }}\nleafnodes {{ listen: \"127.0.0.1:{leaf_port}\", authorization {{ users: [ {{user: leaf, password: s3cret, account: APP}} ] }} }}"
        ),
    )
}

fn canopy_leaf(urls: &[String], extra: &str) -> Server {
    let list: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    Server::start(
        Impl::Canopy,
        &format!(
            "server_name: canopy-edge\nleafnodes {{ reconnect: \"250ms\", remotes: [ {{ urls: [{}], no_randomize: true, deny_exports: [\"secret.>\"], deny_imports: [\"local.>\"] {extra} }} ] }}",
            list.join(", ")
        ),
    )
}

fn url(port: u16) -> String {
    format!("nats-leaf://leaf:s3cret@127.0.0.1:{port}")
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

fn hubs() -> Vec<Impl> {
    if support::official_available() {
        vec![Impl::Official, Impl::Canopy]
    } else {
        eprintln!("!!! nats-server (the oracle) is NOT installed: Canopy leaf → official hub is not tested; Canopy → Canopy only. !!!");
        vec![Impl::Canopy]
    }
}

#[test]
fn canopy_leaf_exchanges_every_message_exactly_once_with_the_hub() {
    for kind in hubs() {
        let lp = support::free_port();
        let h = hub(kind, lp);
        let l = canopy_leaf(&[url(lp)], "");
        let mut hub_sub = login(&h, Some("app"));
        hub_sub.send(b"SUB up.> 1\r\n");
        hub_sub.sync();
        let mut leaf_pub = login(&l, None);
        support::wait_for_flow(
            &mut leaf_pub,
            &mut hub_sub,
            "up.probe",
            Duration::from_secs(15),
        );
        for i in 0..100 {
            leaf_pub.send(format!("PUB up.{i} 1\r\nx\r\n").as_bytes());
        }
        leaf_pub.sync();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            hub_sub.sync().matches("MSG up.").count(),
            100,
            "{kind:?} hub: leaf → hub"
        );

        let mut leaf_sub = login(&l, None);
        leaf_sub.send(b"SUB down.* 3\r\nSUB down.> 4\r\n");
        leaf_sub.sync();
        let mut hub_pub = login(&h, Some("app"));
        support::wait_for_flow(
            &mut hub_pub,
            &mut leaf_sub,
            "down.probe",
            Duration::from_secs(15),
        );
        for i in 0..100 {
            hub_pub.send(format!("PUB down.{i} 1\r\ny\r\n").as_bytes());
        }
        hub_pub.sync();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            leaf_sub.sync().matches("MSG down.").count(),
            200,
            "{kind:?} hub: hub → leaf, once per subscription"
        );
    }
}

#[test]
fn deny_rules_on_the_remote_hold_in_both_directions() {
    for kind in hubs() {
        let lp = support::free_port();
        let h = hub(kind, lp);
        let l = canopy_leaf(&[url(lp)], "");
        let mut hub_sub = login(&h, Some("app"));
        hub_sub.send(b"SUB > 1\r\n");
        hub_sub.sync();
        let mut leaf_pub = login(&l, None);
        support::wait_for_flow(
            &mut leaf_pub,
            &mut hub_sub,
            "probe.up",
            Duration::from_secs(15),
        );
        leaf_pub.send(b"PUB secret.plans 1\r\nx\r\nPUB open.news 1\r\ny\r\n");
        leaf_pub.sync();
        std::thread::sleep(Duration::from_millis(300));
        let got = hub_sub.sync();
        assert!(got.contains("MSG open.news"), "{kind:?}: {got}");
        assert!(
            !got.contains("secret"),
            "{kind:?}: deny_exports leaked: {got}"
        );

        let mut leaf_sub = login(&l, None);
        leaf_sub.send(b"SUB > 1\r\n");
        leaf_sub.sync();
        let mut hub_pub = login(&h, Some("app"));
        support::wait_for_flow(
            &mut hub_pub,
            &mut leaf_sub,
            "probe.down",
            Duration::from_secs(15),
        );
        hub_pub.send(b"PUB local.only 1\r\nx\r\nPUB shared.x 1\r\ny\r\n");
        hub_pub.sync();
        std::thread::sleep(Duration::from_millis(300));
        let got = leaf_sub.sync();
        assert!(got.contains("MSG shared.x"), "{kind:?}: {got}");
        assert!(
            !got.contains("local.only"),
            "{kind:?}: deny_imports leaked: {got}"
        );
    }
}

#[test]
fn leaf_failover_reaches_second_hub_url() {
    for kind in hubs() {
        let (p1, p2) = (support::free_port(), support::free_port());
        let mut first = hub(kind, p1);
        let second = hub(kind, p2);
        let l = canopy_leaf(&[url(p1), url(p2)], "");
        let mut sub1 = login(&first, Some("app"));
        sub1.send(b"SUB up 1\r\n");
        sub1.sync();
        let mut sub2 = login(&second, Some("app"));
        sub2.send(b"SUB up 1\r\n");
        sub2.sync();
        let mut leaf_pub = login(&l, None);
        support::wait_for_flow(&mut leaf_pub, &mut sub1, "up", Duration::from_secs(15));
        drop(sub1);
        first.kill();
        let took = support::wait_for_flow(&mut leaf_pub, &mut sub2, "up", Duration::from_secs(15));
        eprintln!("{kind:?} hub: flow resumed through the second URL after {took:?}");
        assert!(
            took < Duration::from_secs(5),
            "{kind:?}: failover took {took:?}"
        );
    }
}

#[test]
fn a_loop_of_leaf_links_is_detected_and_reported() {
    // Two Canopy servers, each a leaf of the other, in one account: a loop.
    let (a_leaf, b_leaf) = (support::free_port(), support::free_port());
    let a = Server::start(
        Impl::Canopy,
        &format!("server_name: a\nleafnodes {{ listen: \"127.0.0.1:{a_leaf}\", reconnect: \"250ms\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{b_leaf}\" }} ] }}"),
    );
    let b = Server::start(
        Impl::Canopy,
        &format!("server_name: b\nleafnodes {{ listen: \"127.0.0.1:{b_leaf}\", reconnect: \"250ms\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{a_leaf}\" }} ] }}"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.log().contains("Loop detected") || b.log().contains("Loop detected")) {
        assert!(
            Instant::now() < deadline,
            "no loop reported:\n{}\n{}",
            a.log(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_regional_hub_relays_between_its_leafs_and_its_parent_exactly_once() {
    // parent hub ← Canopy regional hub (hub and leaf at once) ← edge leaf
    for kind in hubs() {
        let (parent_leaf_port, region_leaf_port) = (support::free_port(), support::free_port());
        let parent = hub(kind, parent_leaf_port);
        let region = Server::start(
            Impl::Canopy,
            &format!(
                "server_name: region\nleafnodes {{ listen: \"127.0.0.1:{region_leaf_port}\", reconnect: \"250ms\", remotes: [ {{ url: \"{}\" }} ] }}",
                url(parent_leaf_port)
            ),
        );
        let edge = Server::start(
            kind,
            &format!("server_name: edge\nleafnodes {{ reconnect: \"250ms\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{region_leaf_port}\" }} ] }}"),
        );
        let mut parent_sub = login(&parent, Some("app"));
        parent_sub.send(b"SUB up.> 1\r\n");
        parent_sub.sync();
        let mut region_sub = login(&region, None);
        region_sub.send(b"SUB up.> 1\r\n");
        region_sub.sync();
        let mut edge_pub = login(&edge, None);
        support::wait_for_flow(
            &mut edge_pub,
            &mut parent_sub,
            "up.probe",
            Duration::from_secs(20),
        );
        region_sub.sync();
        for i in 0..50 {
            edge_pub.send(format!("PUB up.{i} 1\r\nx\r\n").as_bytes());
        }
        edge_pub.sync();
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(
            parent_sub.sync().matches("MSG up.").count(),
            50,
            "{kind:?} parent: edge → region → parent, once"
        );
        assert_eq!(
            region_sub.sync().matches("MSG up.").count(),
            50,
            "{kind:?} region: once"
        );

        let mut edge_sub = login(&edge, None);
        edge_sub.send(b"SUB down.> 1\r\n");
        edge_sub.sync();
        let mut parent_pub = login(&parent, Some("app"));
        support::wait_for_flow(
            &mut parent_pub,
            &mut edge_sub,
            "down.probe",
            Duration::from_secs(20),
        );
        for i in 0..50 {
            parent_pub.send(format!("PUB down.{i} 1\r\ny\r\n").as_bytes());
        }
        parent_pub.sync();
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(
            edge_sub.sync().matches("MSG down.").count(),
            50,
            "{kind:?} edge: parent → region → edge, once"
        );
    }
}

#[test]
fn a_blackholed_leaf_link_is_declared_stale_within_ping_interval_times_ping_max_while_messages_flow(
) {
    for kind in hubs() {
        let lp = support::free_port();
        let h = hub(kind, lp);
        // The leaf reaches the hub through a simulated VPN link that can be cut.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let link = rt
            .block_on(linksim::start(linksim::Config {
                name: "vpn".into(),
                shape: Default::default(),
                forwards: vec![linksim::Forward {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    target: format!("127.0.0.1:{lp}"),
                }],
            }))
            .unwrap();
        let via = link.bound.read()[0].0.port();
        let l = Server::start(
            Impl::Canopy,
            &format!(
                "ping_interval: \"1s\"\nping_max: 2\nleafnodes {{ reconnect: \"250ms\", remotes: [ {{ url: \"{}\" }} ] }}",
                url(via)
            ),
        );
        let mut hub_sub = login(&h, Some("app"));
        hub_sub.send(b"SUB flow.> 1\r\n");
        hub_sub.sync();
        let mut leaf_pub = login(&l, None);
        support::wait_for_flow(
            &mut leaf_pub,
            &mut hub_sub,
            "flow.probe",
            Duration::from_secs(15),
        );
        // Keep messages flowing into the link the whole time: data must not
        // postpone the PINGs that find the link dead.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pumping = {
            let stop = stop.clone();
            let mut p = login(&l, None);
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    p.send(b"PUB flow.data 4\r\ndata\r\n");
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        let cut = Instant::now();
        link.partition();
        while !l
            .log()
            .contains("Leafnode connection closed: Stale Connection")
        {
            assert!(
                cut.elapsed() < Duration::from_secs(8),
                "{kind:?} hub: not declared stale:\n{}",
                l.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = cut.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        pumping.join().unwrap();
        // ping_interval 1s × ping_max 2: the third tick finds two PINGs unanswered.
        assert!(
            took <= Duration::from_millis(3500),
            "{kind:?} hub: stale after {took:?}"
        );
        eprintln!("{kind:?} hub: blackholed link declared stale after {took:?}");
        // During the partition, traffic local to the leaf's site keeps flowing.
        // (Fresh connections: with ping_interval 1s the leaf also drops clients that
        // did not answer its PINGs while this test waited.)
        let mut leaf_pub = login(&l, None);
        let mut local_sub = login(&l, None);
        local_sub.send(b"SUB site.x 1\r\n");
        local_sub.sync();
        leaf_pub.send(b"PUB site.x 2\r\nok\r\n");
        leaf_pub.sync();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            local_sub.sync().matches("MSG site.x").count(),
            1,
            "{kind:?}: local flow during the partition"
        );
        // Heal: the leaf comes back and flow resumes.
        link.heal();
        let mut hub_sub = login(&h, Some("app"));
        hub_sub.send(b"SUB flow.> 1\r\n");
        hub_sub.sync();
        support::wait_for_flow(
            &mut leaf_pub,
            &mut hub_sub,
            "flow.healed",
            Duration::from_secs(15),
        );
    }
}

#[test]
fn the_seed_three_hub_mesh_is_detected_as_a_loop_by_both_servers() {
    // The seed article's US → EU → APAC → US triangle of leaf links in one account.
    for kind in Impl::all() {
        let ports = [
            support::free_port(),
            support::free_port(),
            support::free_port(),
        ];
        let servers: Vec<Server> = (0..3)
            .map(|i| {
                Server::start(
                    kind,
                    &format!(
                        "server_name: t{i}\nleafnodes {{ listen: \"127.0.0.1:{}\", reconnect: \"250ms\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{}\" }} ] }}",
                        ports[i],
                        ports[(i + 1) % 3]
                    ),
                )
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(15);
        while !servers.iter().any(|s| {
            s.log()
                .contains("Loop detected for leafnode account=\"$G\"")
        }) {
            assert!(
                Instant::now() < deadline,
                "{kind:?}: the triangle was not reported as a loop:\n{}",
                servers
                    .iter()
                    .map(|s| s.log())
                    .collect::<Vec<_>>()
                    .join("\n---\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A listener whose accept queue is full: the kernel drops new SYNs, so a dial to it
/// hangs until the dialler gives up.
fn black_hole() -> (std::net::TcpListener, Vec<std::net::TcpStream>, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    nix::sys::socket::listen(&l, nix::sys::socket::Backlog::new(0).unwrap()).unwrap();
    let port = l.local_addr().unwrap().port();
    let addr = l.local_addr().unwrap();
    let mut queued = Vec::new();
    while let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
        queued.push(s);
        assert!(queued.len() < 16, "the accept queue never filled");
    }
    (l, queued, port)
}

/// `dial_timeout` (in the remote, or for every remote in the leafnodes block) bounds
/// how long a dial to an unanswering hub may hang: with 300 ms a leaf gives up and
/// retries several times in the time two default (1 s) dials take. Both servers.
#[test]
fn dial_timeout_bounds_a_dial_to_a_hub_that_never_answers() {
    let (_hole, _queued, port) = black_hole();
    let dial_errors = |log: &str| {
        log.lines()
            .filter(|l| l.contains("[ERR]") && l.contains("Error trying to connect as leafnode"))
            .count()
    };
    for kind in Impl::all() {
        let remote = format!("url: \"nats-leaf://127.0.0.1:{port}\"");
        let configs = [
            ("in the remote", format!("leafnodes {{ reconnect: \"100ms\", remotes: [ {{ {remote}, dial_timeout: \"300ms\" }} ] }}"), true),
            ("in leafnodes", format!("leafnodes {{ reconnect: \"100ms\", dial_timeout: \"300ms\", remotes: [ {{ {remote} }} ] }}"), true),
            ("default", format!("leafnodes {{ reconnect: \"100ms\", remotes: [ {{ {remote} }} ] }}"), false),
        ];
        let servers: Vec<_> = configs
            .iter()
            .map(|(_, c, _)| {
                Server::start(
                    kind,
                    &format!("reconnect_error_reports: 1\nconnect_error_reports: 1\n{c}"),
                )
            })
            .collect();
        std::thread::sleep(Duration::from_millis(2600));
        for ((what, _, short), s) in configs.iter().zip(&servers) {
            let n = dial_errors(&s.log());
            if *short {
                assert!(
                    n >= 4,
                    "{kind:?}, dial_timeout {what}: {n} dial errors:\n{}",
                    s.log()
                );
            } else {
                assert!(
                    n <= 2,
                    "{kind:?}, default dial timeout: {n} dial errors:\n{}",
                    s.log()
                );
            }
        }
    }
}

/// A hub that asks for TLS and then never answers the handshake: the remote's tls
/// `timeout` (here 4 s, twice the default) bounds the wait, on both servers.
#[test]
fn a_remote_gives_up_on_a_hub_that_never_finishes_the_tls_handshake() {
    use std::io::{Read, Write};
    let pki = support::pki::Pki::new();
    for kind in Impl::all() {
        let hub = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = hub.local_addr().unwrap().port();
        let _leaf = Server::start(
            kind,
            &format!(
                "leafnodes {{ reconnect: \"30s\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{port}\", tls {{ ca_file: \"{}\", timeout: 4 }} }} ] }}",
                pki.path("ca.pem").display()
            ),
        );
        let (mut s, _) = hub.accept().unwrap();
        s.write_all(format!("INFO {{\"server_id\":\"NFAKEHUB\",\"version\":\"2.15.1\",\"proto\":1,\"headers\":true,\"max_payload\":1048576,\"client_id\":1,\"tls_required\":true,\"leafnode_urls\":[\"127.0.0.1:{port}\"]}} \r\n").as_bytes()).unwrap();
        let started = Instant::now();
        s.set_read_timeout(Some(Duration::from_secs(12))).unwrap();
        let mut b = [0u8; 4096];
        // The ClientHello arrives and is never answered.
        loop {
            match s.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let open = started.elapsed();
        assert!(
            open >= Duration::from_secs(3) && open < Duration::from_secs(8),
            "{kind:?}: the remote gave up after {open:?}"
        );
    }
}
