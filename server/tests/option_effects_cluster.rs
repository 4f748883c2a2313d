//! Options nats-server users write have their effect, on canopy-server and nats-server
//! alike (see option_effects.rs): `cluster { }` and the client URL a member gossips.

#[path = "support/effects.rs"]
mod effects;
mod support;
use effects::{
    client_info, closes_after_its_own_timeout, info_at, login, urls, wait_until, watch_close,
};
use serde_json::Value;
use std::time::Duration;
use support::{free_port, Impl, Server};

// ---------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------

/// A cluster member `name` on `cluster_port`, routing to the member on `seed` when
/// given; `top` and `cluster` add options at the top level and inside cluster {}.
fn member(
    kind: Impl,
    name: &str,
    cluster_port: u16,
    seed: Option<u16>,
    top: &str,
    cluster: &str,
) -> Server {
    let routes = seed
        .map(|p| format!("routes: [\"nats-route://127.0.0.1:{p}\"]"))
        .unwrap_or_default();
    Server::start(
        kind,
        &format!(
            "server_name: {name}\n{top}\ncluster {{\n name: c\n listen: \"127.0.0.1:{cluster_port}\"\n {routes}\n {cluster}\n}}"
        ),
    )
}

/// Wait until a message published on `b` reaches a subscriber on `a`: the route is up.
fn route_up(a: &Server, b: &Server) {
    let mut sub = login(a, None);
    sub.send(b"SUB route.probe 1\r\n");
    sub.sync();
    let mut publ = login(b, None);
    support::wait_for_flow(&mut publ, &mut sub, "route.probe", support::FLOW);
}

/// `client_advertise` is the client URL a server gossips to its cluster: clients of
/// the other member are given it in `connect_urls`, never the real listen address.
#[test]
fn client_advertise_is_the_url_other_members_give_their_clients() {
    for kind in Impl::all() {
        let (ca, cb) = (free_port(), free_port());
        let a = member(
            kind,
            "a",
            ca,
            None,
            "client_advertise: \"advertised.example:4999\"",
            "",
        );
        let b = member(kind, "b", cb, Some(ca), "", "");
        let mut last = Value::Null;
        let seen = wait_until("the advertised URL", support::FLOW, || {
            last = client_info(&b);
            urls(&last, "connect_urls").contains(&"advertised.example:4999".to_string())
        });
        assert!(
            seen,
            "{kind:?}: B's clients are not told A's advertised URL: {last}"
        );
        assert!(
            !urls(&last, "connect_urls").contains(&format!("127.0.0.1:{}", a.port)),
            "{kind:?}: B's clients are told A's real address: {last}"
        );
    }
}

/// nats-server also names the advertised host and port in the INFO its own clients
/// get (`"host":"advertised.example","port":4999`).
#[test]
fn client_advertise_is_the_host_and_port_in_the_servers_own_info() {
    // The oracle first: what is asserted is what nats-server does.
    for kind in Impl::all().into_iter().rev() {
        let s = Server::start(kind, "client_advertise: \"advertised.example:4999\"");
        let info = client_info(&s);
        assert_eq!(
            (info["host"].as_str(), info["port"].as_u64()),
            (Some("advertised.example"), Some(4999)),
            "{kind:?}: {info}"
        );
    }
}

/// cluster `no_advertise: true` on A: once the route is up, B's clients are not given
/// A's client URL (without it they are — the control).
#[test]
fn cluster_no_advertise_keeps_a_members_url_from_the_other_members_clients() {
    for kind in Impl::all() {
        // Control: without no_advertise, B's clients learn A's URL.
        let (ca, cb) = (free_port(), free_port());
        let a = member(kind, "a", ca, None, "", "");
        let b = member(kind, "b", cb, Some(ca), "", "");
        let a_url = format!("127.0.0.1:{}", a.port);
        let mut last = Value::Null;
        assert!(
            wait_until("A's URL at B", support::FLOW, || {
                last = client_info(&b);
                urls(&last, "connect_urls").contains(&a_url)
            }),
            "{kind:?} control: {last}"
        );
        drop((a, b));

        let (ca, cb) = (free_port(), free_port());
        let a = member(kind, "a", ca, None, "", "no_advertise: true");
        let b = member(kind, "b", cb, Some(ca), "", "");
        route_up(&a, &b);
        std::thread::sleep(Duration::from_millis(300));
        let info = client_info(&b);
        assert!(
            !urls(&info, "connect_urls").contains(&format!("127.0.0.1:{}", a.port)),
            "{kind:?}: B's clients are told A's URL: {info}"
        );
    }
}

/// nats-server gives the clients of a `no_advertise` member no `connect_urls` at all.
#[test]
fn cluster_no_advertise_gives_the_members_own_clients_no_connect_urls() {
    // The oracle first: what is asserted is what nats-server does.
    for kind in Impl::all().into_iter().rev() {
        let (ca, cb) = (free_port(), free_port());
        let a = member(kind, "a", ca, None, "", "no_advertise: true");
        let b = member(kind, "b", cb, Some(ca), "", "");
        route_up(&a, &b);
        std::thread::sleep(Duration::from_millis(300));
        let info = client_info(&a);
        assert!(
            urls(&info, "connect_urls").is_empty(),
            "{kind:?}: A's clients get connect_urls: {info}"
        );
    }
}

/// cluster `authorization { user, password, timeout }`: a route connection that never
/// sends CONNECT gets `-ERR 'Authentication Timeout'` and is closed after the timeout
/// (1 s: within 4 s; 4 s: still open at 3.5 s, closed by 8 s); a route with the wrong
/// password is an Authorization Violation.
#[test]
fn cluster_authorization_timeout_closes_a_route_that_never_sends_connect() {
    for kind in Impl::all() {
        for timeout in [1u64, 4] {
            let cp = free_port();
            let s = Server::start(
                kind,
                &format!(
                    "cluster {{ name: opt, listen: \"127.0.0.1:{cp}\"\n authorization {{ user: ru, password: rp, timeout: {timeout} }} }}"
                ),
            );
            let (mut r, info) = info_at("127.0.0.1", cp);
            assert_eq!(info["auth_required"], true, "{kind:?}: {info}");
            let got = if timeout == 1 {
                let (got, closed) = watch_close(&mut r, Duration::from_secs(4));
                assert!(closed.is_some(), "{kind:?}: route open after 4 s: {got:?}");
                got
            } else {
                closes_after_its_own_timeout(kind, &mut r, timeout, "a silent route")
            };
            assert!(
                got.ends_with("-ERR 'Authentication Timeout'\r\n"),
                "{kind:?} timeout {timeout}: {got:?}"
            );
            // nats-server logs `Router connection closed: Authentication Timeout`,
            // Canopy `Route connection closed: Authentication Timeout`.
            assert!(
                wait_until("the close in the log", Duration::from_secs(2), || s
                    .log()
                    .contains("connection closed: Authentication Timeout")),
                "{kind:?}: {}",
                s.log()
            );
            let (mut r, _) = info_at("127.0.0.1", cp);
            use std::io::Write;
            r.write_all(
                b"CONNECT {\"verbose\":false,\"user\":\"ru\",\"pass\":\"wrong\"}\r\nPING\r\n",
            )
            .unwrap();
            let (got, closed) = watch_close(&mut r, Duration::from_secs(3));
            assert!(closed.is_some(), "{kind:?}: {got:?}");
            assert!(
                got.ends_with("-ERR 'Authorization Violation'\r\n"),
                "{kind:?}: wrong route password: {got:?}"
            );
        }
    }
}
