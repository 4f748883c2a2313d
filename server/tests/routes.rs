//! Routes: clusters of Canopy servers, and mixed clusters with the official
//! nats-server, with exact counts (N published ⇒ N received per subscriber).

mod support;
use std::time::{Duration, Instant};
use support::{Impl, Server};

fn node(kind: Impl, cluster_port: u16, routes: &[u16], extra: &str) -> Server {
    let list: Vec<String> = routes
        .iter()
        .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
        .collect();
    Server::start(
        kind,
        &format!(
            "server_name: n{cluster_port}\naccounts {{ APP: {{ users: [ {{user: app, password: app}} ] }} }}\ncluster {{ name: canopy, listen: \"127.0.0.1:{cluster_port}\", routes: [{}]\n{extra} }}",
            list.join(", ")
        ),
    )
}

fn login(s: &Server) -> support::Raw {
    let mut c = s.raw();
    c.send(b"CONNECT {\"verbose\":false,\"headers\":true,\"user\":\"app\",\"pass\":\"app\"}\r\n");
    assert_eq!(c.sync(), "");
    c
}

fn kinds() -> Vec<(Impl, Impl)> {
    if support::official_available() {
        vec![
            (Impl::Canopy, Impl::Canopy),
            (Impl::Canopy, Impl::Official),
            (Impl::Official, Impl::Canopy),
        ]
    } else {
        eprintln!("!!! nats-server (the oracle) is NOT installed: mixed Canopy/official clusters are not tested; Canopy ↔ Canopy only. !!!");
        vec![(Impl::Canopy, Impl::Canopy)]
    }
}

#[test]
fn two_servers_exchange_every_message_exactly_once_over_a_route() {
    for (ka, kb) in kinds() {
        let (pa, pb) = (support::free_port(), support::free_port());
        let a = node(ka, pa, &[], "");
        let b = node(kb, pb, &[pa], "");
        let mut sub_a = login(&a);
        sub_a.send(b"SUB orders.> 1\r\nSUB orders.* 2\r\n");
        sub_a.sync();
        let mut pub_b = login(&b);
        support::wait_for_flow(&mut pub_b, &mut sub_a, "orders.probe", support::FLOW);
        for i in 0..100 {
            pub_b.send(format!("PUB orders.{i} reply.{i} 2\r\nhi\r\n").as_bytes());
        }
        pub_b.send(b"HPUB orders.h 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
        pub_b.sync();
        std::thread::sleep(Duration::from_millis(400));
        let got = sub_a.sync();
        assert_eq!(
            got.matches("MSG orders.").count(),
            202,
            "{ka:?} ← {kb:?}: 101 messages × 2 subscriptions\n{got}"
        );
        assert!(got.contains("MSG orders.7 1 reply.7 2\r\nhi"), "{got}");
        assert!(
            got.contains("HMSG orders.h 1 12 14\r\nNATS/1.0\r\n\r\nhi"),
            "{got}"
        );

        // And the other way.
        let mut sub_b = login(&b);
        sub_b.send(b"SUB back.> 1\r\n");
        sub_b.sync();
        let mut pub_a = login(&a);
        support::wait_for_flow(&mut pub_a, &mut sub_b, "back.probe", support::FLOW);
        for i in 0..100 {
            pub_a.send(format!("PUB back.{i} 1\r\nx\r\n").as_bytes());
        }
        pub_a.sync();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            sub_b.sync().matches("MSG back.").count(),
            100,
            "{ka:?} → {kb:?}"
        );
    }
}

#[test]
fn request_reply_crosses_a_route_both_ways() {
    for (ka, kb) in kinds() {
        let (pa, pb) = (support::free_port(), support::free_port());
        let a = node(ka, pa, &[], "");
        let b = node(kb, pb, &[pa], "");
        let mut svc = login(&a);
        svc.send(b"SUB svc.time 1\r\n");
        svc.sync();
        let mut requester = login(&b);
        requester.send(b"SUB _INBOX.r1 9\r\n");
        requester.sync();
        let mut probe = login(&b);
        support::wait_for_flow(&mut probe, &mut svc, "svc.time", support::FLOW);
        requester.send(b"PUB svc.time _INBOX.r1 3\r\nnow\r\n");
        requester.sync();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = String::new();
        while !seen.contains("MSG svc.time 1 _INBOX.r1 3") {
            seen.push_str(&svc.sync());
            assert!(
                Instant::now() < deadline,
                "{ka:?}/{kb:?}: request not seen: {seen}"
            );
        }
        // The reply goes back over the route once the requester's interest is there.
        svc.send(b"PUB _INBOX.r1 5\r\nnoon!\r\n");
        svc.sync();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = String::new();
        while !got.contains("MSG _INBOX.r1 9 5\r\nnoon!") {
            got.push_str(&requester.sync());
            assert!(Instant::now() < deadline, "{ka:?}/{kb:?}: no reply: {got}");
        }
    }
}

#[test]
fn a_seed_route_discovers_the_whole_mesh_and_messages_take_one_hop() {
    let (pa, pb, pc) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let a = node(Impl::Canopy, pa, &[], "");
    let b = node(Impl::Canopy, pb, &[pa], "");
    let c = node(Impl::Canopy, pc, &[pa], "");
    // B and C know only A; a message from C reaches B only over a C–B route,
    // because A never forwards what came over a route to another route.
    let mut sub_b = login(&b);
    sub_b.send(b"SUB mesh.> 1\r\n");
    sub_b.sync();
    let mut pub_c = login(&c);
    let took = support::wait_for_flow(&mut pub_c, &mut sub_b, "mesh.probe", support::FLOW);
    for i in 0..50 {
        pub_c.send(format!("PUB mesh.{i} 1\r\nx\r\n").as_bytes());
    }
    pub_c.sync();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        sub_b.sync().matches("MSG mesh.").count(),
        50,
        "exactly once (found the mesh in {took:?})"
    );
    drop(a);
}

#[test]
fn a_queue_group_gets_one_delivery_cluster_wide() {
    let ports = [
        support::free_port(),
        support::free_port(),
        support::free_port(),
    ];
    let servers: Vec<Server> = (0..3)
        .map(|i| {
            let others: Vec<u16> = ports.iter().copied().filter(|p| *p != ports[i]).collect();
            node(Impl::Canopy, ports[i], &others, "")
        })
        .collect();
    let mut members: Vec<support::Raw> = servers
        .iter()
        .map(|s| {
            let mut c = login(s);
            c.send(b"SUB work.* workers 1\r\nSUB work.* workers 2\r\n");
            c.sync();
            c
        })
        .collect();
    // A plain subscriber on the last server tells when interest has spread.
    let mut watcher = login(&servers[2]);
    watcher.send(b"SUB work.* 1\r\n");
    watcher.sync();
    let mut publisher = login(&servers[0]);
    support::wait_for_flow(&mut publisher, &mut watcher, "work.probe", support::FLOW);
    std::thread::sleep(Duration::from_millis(300));
    for m in members.iter_mut() {
        m.sync();
    }
    const N: usize = 300;
    for i in 0..N {
        publisher.send(format!("PUB work.{i} 1\r\nx\r\n").as_bytes());
    }
    publisher.sync();
    std::thread::sleep(Duration::from_millis(600));
    let counts: Vec<usize> = members
        .iter_mut()
        .map(|m| m.sync().matches("MSG work.").count())
        .collect();
    assert_eq!(
        counts.iter().sum::<usize>(),
        N,
        "one delivery per message: {counts:?}"
    );
    assert_eq!(watcher.sync().matches("MSG work.").count(), N);
}

#[test]
fn interest_is_restored_after_a_peer_restarts() {
    let (pa, pb) = (support::free_port(), support::free_port());
    let a = node(Impl::Canopy, pa, &[pb], "");
    let mut b = node(Impl::Canopy, pb, &[pa], "");
    let mut sub_a = login(&a);
    sub_a.send(b"SUB again.> 1\r\n");
    sub_a.sync();
    let mut pub_b = login(&b);
    support::wait_for_flow(&mut pub_b, &mut sub_a, "again.first", support::FLOW);
    b.kill();
    drop(pub_b);
    let b2 = node(Impl::Canopy, pb, &[pa], "");
    let mut pub_b2 = login(&b2);
    let took = support::wait_for_flow(&mut pub_b2, &mut sub_a, "again.second", support::FLOW);
    for i in 0..100 {
        pub_b2.send(format!("PUB again.{i} 1\r\nx\r\n").as_bytes());
    }
    pub_b2.sync();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        sub_a.sync().matches("MSG again.").count(),
        100,
        "after restart (flow back in {took:?})"
    );
}

#[test]
fn a_route_with_the_wrong_password_is_refused() {
    let kinds = if support::official_available() {
        vec![Impl::Canopy, Impl::Official]
    } else {
        vec![Impl::Canopy]
    };
    for kind in kinds {
        let pa = support::free_port();
        let a = node(
            kind,
            pa,
            &[],
            "authorization { user: ruser, password: rpass }",
        );
        let mut raw = support::Raw::connect(pa);
        raw.send(b"CONNECT {\"verbose\":false,\"user\":\"ruser\",\"pass\":\"wrong\",\"name\":\"NX\"}\r\n");
        let closed = raw.expect_closed();
        assert!(
            closed.contains("-ERR 'Authorization Violation'"),
            "{kind:?}: {closed}"
        );
        drop(a);
    }
}

#[test]
fn leaf_interest_and_messages_cross_the_cluster() {
    // A leaf attached to server A of a two-server cluster hears a client on B.
    let (pa, pb, lp) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let a = node(
        Impl::Canopy,
        pa,
        &[],
        &format!("}}\nleafnodes {{ listen: \"127.0.0.1:{lp}\", authorization {{ users: [ {{user: leaf, password: s, account: APP}} ] }}"),
    );
    let b = node(Impl::Canopy, pb, &[pa], "");
    let leaf = Server::start(
        Impl::Canopy,
        &format!("leafnodes {{ reconnect: \"250ms\", remotes: [ {{ url: \"nats-leaf://leaf:s@127.0.0.1:{lp}\" }} ] }}"),
    );
    let mut on_leaf = leaf.raw();
    on_leaf.send(b"CONNECT {\"verbose\":false}\r\nSUB edge.> 1\r\n");
    on_leaf.sync();
    let mut on_b = login(&b);
    support::wait_for_flow(&mut on_b, &mut on_leaf, "edge.probe", support::FLOW);
    for i in 0..100 {
        on_b.send(format!("PUB edge.{i} 1\r\nx\r\n").as_bytes());
    }
    on_b.sync();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(on_leaf.sync().matches("MSG edge.").count(), 100);
    // And up: a client on B hears the leaf.
    let mut sub_b = login(&b);
    sub_b.send(b"SUB up.> 1\r\n");
    sub_b.sync();
    let mut pub_leaf = leaf.raw();
    pub_leaf.send(b"CONNECT {\"verbose\":false}\r\n");
    pub_leaf.sync();
    support::wait_for_flow(&mut pub_leaf, &mut sub_b, "up.probe", support::FLOW);
    for i in 0..100 {
        pub_leaf.send(format!("PUB up.{i} 1\r\nx\r\n").as_bytes());
    }
    pub_leaf.sync();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(sub_b.sync().matches("MSG up.").count(), 100);
    drop(a);
}

#[test]
fn routes_speak_tls_with_verified_certificates_both_ways() {
    let pki = support::pki::Pki::new();
    let tls = pki.tls_block("verify: true");
    for (ka, kb) in kinds() {
        let (pa, pb) = (support::free_port(), support::free_port());
        let a = node(ka, pa, &[], &tls);
        let b = Server::start(
            kb,
            &format!(
                "server_name: n{pb}\naccounts {{ APP: {{ users: [ {{user: app, password: app}} ] }} }}\ncluster {{ name: canopy, listen: \"127.0.0.1:{pb}\", routes: [\"nats-route://localhost:{pa}\"]\n{tls} }}"
            ),
        );
        let mut sub_a = login(&a);
        sub_a.send(b"SUB secure.> 1\r\n");
        sub_a.sync();
        let mut pub_b = login(&b);
        support::wait_for_flow(&mut pub_b, &mut sub_a, "secure.probe", support::FLOW);
        for i in 0..100 {
            pub_b.send(format!("PUB secure.{i} 1\r\nx\r\n").as_bytes());
        }
        pub_b.sync();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            sub_a.sync().matches("MSG secure.").count(),
            100,
            "{ka:?} ← {kb:?} over TLS"
        );
    }
}

#[test]
fn a_plain_route_dial_to_a_tls_cluster_port_is_refused() {
    let pki = support::pki::Pki::new();
    let tls = pki.tls_block("verify: true");
    let (pa, pb) = (support::free_port(), support::free_port());
    let a = node(Impl::Canopy, pa, &[], &tls);
    let b = node(Impl::Canopy, pb, &[pa], "");
    let mut sub_a = login(&a);
    sub_a.send(b"SUB x 1\r\n");
    sub_a.sync();
    let mut pub_b = login(&b);
    for _ in 0..10 {
        pub_b.send(b"PUB x 1\r\nx\r\n");
        pub_b.sync();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sub_a.sync().matches("MSG x").count(), 0, "nothing crosses");
    // The plain dialler waits for an INFO that never comes in clear; the TLS side
    // gives up on its handshake.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.log().contains("TLS route handshake") {
        assert!(Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn leaf_of(urls: &[u16]) -> Server {
    let list: Vec<String> = urls
        .iter()
        .map(|p| format!("\"nats-leaf://leaf:s@127.0.0.1:{p}\""))
        .collect();
    Server::start(
        Impl::Canopy,
        &format!(
            "leafnodes {{ reconnect: \"250ms\", remotes: [ {{ urls: [{}], no_randomize: true }} ] }}",
            list.join(", ")
        ),
    )
}

fn anon(s: &Server) -> support::Raw {
    let mut c = s.raw();
    c.send(b"CONNECT {\"verbose\":false}\r\n");
    c.sync();
    c
}

#[test]
fn a_three_hub_cluster_with_two_leaves_delivers_once_fails_over_and_back() {
    let cp = [
        support::free_port(),
        support::free_port(),
        support::free_port(),
    ];
    let lp = [
        support::free_port(),
        support::free_port(),
        support::free_port(),
    ];
    let hub_conf = |i: usize| {
        let others: Vec<String> = cp
            .iter()
            .filter(|p| **p != cp[i])
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect();
        format!(
            "server_name: hub{i}\naccounts {{ APP: {{ users: [ {{user: app, password: app}} ] }} }}\ncluster {{ name: hubs, listen: \"127.0.0.1:{}\", routes: [{}] }}\nleafnodes {{ listen: \"127.0.0.1:{}\", authorization {{ users: [ {{user: leaf, password: s, account: APP}} ] }} }}",
            cp[i],
            others.join(", "),
            lp[i]
        )
    };
    let mut hubs: Vec<Option<Server>> = (0..3)
        .map(|i| Some(Server::start(Impl::Canopy, &hub_conf(i))))
        .collect();
    // Leaf 1 prefers hub 0 then hub 1; leaf 2 is on hub 2.
    let l1 = leaf_of(&[lp[0], lp[1]]);
    let l2 = leaf_of(&[lp[2]]);

    // No duplicates: leaf 1 → (hub 0 → hub 2) → leaf 2, each message once per sub.
    let mut sub2 = anon(&l2);
    sub2.send(b"SUB tele.> 1\r\n");
    sub2.sync();
    let mut pub1 = anon(&l1);
    support::wait_for_flow(&mut pub1, &mut sub2, "tele.probe", support::FLOW);
    for i in 0..200 {
        pub1.send(format!("PUB tele.{i} 1\r\nx\r\n").as_bytes());
    }
    pub1.sync();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sub2.sync().matches("MSG tele.").count(),
        200,
        "leaf → cluster → leaf, no duplicates"
    );

    // A queue group with members on hub 1, on leaf 2 and on leaf 1 itself: one delivery.
    let mut q_hub = login(hubs[1].as_ref().unwrap());
    q_hub.send(b"SUB jobs.* pool 1\r\n");
    q_hub.sync();
    let mut q_leaf2 = anon(&l2);
    q_leaf2.send(b"SUB jobs.* pool 1\r\n");
    q_leaf2.sync();
    let mut watch = anon(&l2);
    watch.send(b"SUB jobs.* 1\r\n");
    watch.sync();
    support::wait_for_flow(&mut pub1, &mut watch, "jobs.probe", support::FLOW);
    std::thread::sleep(Duration::from_millis(300));
    q_hub.sync();
    q_leaf2.sync();
    for i in 0..300 {
        pub1.send(format!("PUB jobs.{i} 1\r\nx\r\n").as_bytes());
    }
    pub1.sync();
    std::thread::sleep(Duration::from_millis(600));
    let (a, b) = (
        q_hub.sync().matches("MSG jobs.").count(),
        q_leaf2.sync().matches("MSG jobs.").count(),
    );
    assert_eq!(
        a + b,
        300,
        "one delivery per message across the cluster: hub {a}, leaf {b}"
    );

    // Hub 0 dies: leaf 1 fails over to hub 1 and flow resumes.
    let killed = Instant::now();
    hubs[0].take().unwrap().kill();
    let took = support::wait_for_flow(&mut pub1, &mut sub2, "tele.after-failover", support::FLOW);
    eprintln!(
        "leaf failed over to the second hub URL; flow back {:?} after the kill",
        killed.elapsed()
    );
    assert!(took < Duration::from_secs(10));
    // Hub 0 returns, hub 1 dies: leaf 1 goes back to the first URL.
    hubs[0] = Some(Server::start(Impl::Canopy, &hub_conf(0)));
    std::thread::sleep(Duration::from_millis(500));
    hubs[1].take().unwrap().kill();
    support::wait_for_flow(&mut pub1, &mut sub2, "tele.back", support::FLOW);
    for i in 0..100 {
        pub1.send(format!("PUB tele.b{i} 1\r\nx\r\n").as_bytes());
    }
    pub1.sync();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sub2.sync().matches("MSG tele.b").count(),
        100,
        "after failing back: once each"
    );
}

#[test]
fn clients_hear_connect_urls_as_peers_come_and_go() {
    for (ka, kb) in kinds() {
        let (pa, pb) = (support::free_port(), support::free_port());
        let a = node(ka, pa, &[], "");
        let mut c = a.raw();
        c.send(b"CONNECT {\"verbose\":false,\"protocol\":1,\"user\":\"app\",\"pass\":\"app\"}\r\n");
        c.sync();
        let mut b = node(kb, pb, &[pa], "");
        let b_url = format!("127.0.0.1:{}", b.port);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = String::new();
        while !seen.contains(&b_url) {
            seen.push_str(&c.drain(Duration::from_millis(200)));
            assert!(
                Instant::now() < deadline,
                "{ka:?}+{kb:?}: no INFO naming {b_url}: {seen}"
            );
        }
        assert!(
            seen.contains("INFO {") && seen.contains("\"connect_urls\""),
            "{seen}"
        );
        // B leaves: a new INFO no longer names it.
        b.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut after = String::new();
        loop {
            after.push_str(&c.drain(Duration::from_millis(200)));
            if let Some(last) = after.rfind("INFO {") {
                if !after[last..].contains(&b_url) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{ka:?}+{kb:?}: no INFO without {b_url}: {after}"
            );
        }
    }
}

/// `pinned_certs` in the cluster's tls block hold on the routes a server dials, not
/// only on those it accepts: a Canopy server dials a peer (of either kind) and
/// routes to it only when the peer's certificate is pinned. (nats-server checks
/// pins only on the connections it accepts.)
#[test]
fn a_dialled_route_comes_up_only_to_a_peer_whose_certificate_is_pinned() {
    let pki = support::pki::Pki::new();
    for kind in Impl::all() {
        for (pin, routes) in [
            (pki.server_spki_sha256.clone(), true),
            (pki.client_spki_sha256.clone(), false),
        ] {
            let (pa, pb) = (support::free_port(), support::free_port());
            let a = node(kind, pa, &[], &pki.tls_block("verify: true"));
            let b = Server::start(
                Impl::Canopy,
                &format!(
                    "server_name: n{pb}\naccounts {{ APP: {{ users: [ {{user: app, password: app}} ] }} }}\ncluster {{ name: canopy, listen: \"127.0.0.1:{pb}\", routes: [\"nats-route://localhost:{pa}\"]\n{} }}",
                    pki.tls_block(&format!("verify: true\n pinned_certs: [\"{pin}\"]"))
                ),
            );
            let mut sub_a = login(&a);
            sub_a.send(b"SUB pinned.> 1\r\n");
            sub_a.sync();
            let mut pub_b = login(&b);
            let wait = if routes {
                support::FLOW
            } else {
                Duration::from_secs(2)
            };
            let flowed = support::flows(&mut pub_b, &mut sub_a, "pinned.x", wait).is_some();
            assert_eq!(flowed, routes, "{kind:?} peer, pin {pin}:\n{}", b.log());
            if !routes {
                assert!(b.log().contains("not in pinned_certs"), "{}", b.log());
            }
        }
    }
}

/// `insecure: true` in the cluster's tls block: a server dials a peer whose
/// certificate it cannot verify (its ca_file is another CA's) and routes to it; without
/// it, no route. The peer still verifies the dialler's certificate. Both servers dial.
#[test]
fn a_route_with_tls_insecure_joins_a_peer_it_cannot_verify() {
    let pki = support::pki::Pki::new();
    let stranger = support::pki::Pki::new();
    for kind in Impl::all() {
        for insecure in [true, false] {
            let (pa, pb) = (support::free_port(), support::free_port());
            let a = node(Impl::Canopy, pa, &[], &pki.tls_block("verify: true"));
            let b = Server::start(
                kind,
                &format!(
                    "server_name: n{pb}\naccounts {{ APP: {{ users: [ {{user: app, password: app}} ] }} }}\ncluster {{ name: canopy, listen: \"127.0.0.1:{pb}\", routes: [\"nats-route://localhost:{pa}\"]\n tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", insecure: {insecure} }} }}",
                    pki.path("server.pem").display(),
                    pki.path("server-key.pem").display(),
                    stranger.path("ca.pem").display()
                ),
            );
            let mut sub_a = login(&a);
            sub_a.send(b"SUB tls.> 1\r\n");
            sub_a.sync();
            let mut pub_b = login(&b);
            let wait = if insecure {
                support::FLOW
            } else {
                Duration::from_secs(2)
            };
            let flowed = support::flows(&mut pub_b, &mut sub_a, "tls.x", wait).is_some();
            assert_eq!(
                flowed,
                insecure,
                "{kind:?} dialling with insecure: {insecure}:\n{}",
                b.log()
            );
        }
    }
}

/// A peer that opens the cluster port and never starts TLS is closed after the
/// cluster tls `timeout` (here 4 s, twice the default): still open at 3 s, gone by 8.
#[test]
fn a_route_peer_that_never_handshakes_is_closed_after_the_cluster_tls_timeout() {
    let pki = support::pki::Pki::new();
    for kind in Impl::all() {
        let pa = support::free_port();
        let _a = node(kind, pa, &[], &pki.tls_block("verify: true\n timeout: 4"));
        let mut silent = std::net::TcpStream::connect(("127.0.0.1", pa)).unwrap();
        let started = Instant::now();
        silent
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut b = [0u8; 256];
        loop {
            match std::io::Read::read(&mut silent, &mut b) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let open = started.elapsed();
        assert!(
            open >= Duration::from_secs(3) && open < Duration::from_secs(8),
            "{kind:?}: closed after {open:?}"
        );
    }
}

/// `connect_retries` bounds the dials to a route learnt by gossip: with 2, a server
/// dials a gossiped peer that never answers 3 times, then gives up.
#[test]
fn connect_retries_bounds_the_dials_to_a_gossiped_route() {
    use std::io::{Read, Write};
    // The gossiped peer: accepts and closes at once, counting the dials.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    dead.set_nonblocking(true).unwrap();
    let pa = support::free_port();
    let a = node(Impl::Canopy, pa, &[], "connect_retries: 2");
    // A fake peer joins A as a route and gossips the dead one.
    let mut fake = std::net::TcpStream::connect(("127.0.0.1", pa)).unwrap();
    fake.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let info = |id: &str, port: u16| {
        format!("INFO {{\"server_id\":\"{id}\",\"server_name\":\"{id}\",\"version\":\"2.15.1\",\"proto\":1,\"host\":\"127.0.0.1\",\"port\":{port},\"headers\":true,\"max_payload\":1048576,\"cluster\":\"canopy\",\"ip\":\"nats-route://127.0.0.1:{port}/\"}}\r\n")
    };
    fake.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"NFAKE\",\"cluster\":\"canopy\",\"headers\":true,\"protocol\":1}\r\n").unwrap();
    fake.write_all(info("NFAKE", 1).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    fake.write_all(info("NDEAD", dead_port).as_bytes()).unwrap();
    let mut dials = 0;
    let until = Instant::now() + Duration::from_secs(8);
    let mut sink = [0u8; 4096];
    while Instant::now() < until {
        let _ = fake.read(&mut sink);
        let _ = fake.write_all(b"PONG\r\n");
        while let Ok((s, _)) = dead.accept() {
            dials += 1;
            drop(s);
        }
    }
    assert_eq!(dials, 3, "dials to the gossiped route:\n{}", a.log());
}
