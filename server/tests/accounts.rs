//! Accounts talking through exports and imports, and subject mappings — over raw
//! sockets, against canopy-server and (when installed) nats-server.

mod support;
use support::{Impl, Server};

const ACCOUNTS: &str = r#"
accounts {
  APP: {
    users: [ {user: app, password: app} ]
    exports: [ {stream: "events.>"}, {service: "api.echo"}, {stream: "private.>", accounts: [OTHER]} ]
  }
  OTHER: {
    users: [ {user: other, password: other} ]
    imports: [
      {stream: {account: APP, subject: "events.>"}, prefix: "app"}
      {service: {account: APP, subject: "api.echo"}, to: "echo"}
    ]
  }
  THIRD: { users: [ {user: third, password: third} ] }
}
"#;

fn login(s: &Server, user: &str) -> support::Raw {
    let mut c = s.raw();
    c.send(format!("CONNECT {{\"verbose\":false,\"user\":\"{user}\",\"pass\":\"{user}\",\"headers\":true}}\r\n").as_bytes());
    assert_eq!(c.sync(), "", "{user} logs in");
    c
}

#[test]
fn an_imported_stream_arrives_under_its_prefix_and_nowhere_else() {
    for kind in Impl::all() {
        let s = Server::start(kind, ACCOUNTS);
        let mut app = login(&s, "app");
        let mut other = login(&s, "other");
        let mut third = login(&s, "third");
        other.send(b"SUB app.events.> 1\r\nSUB events.> 2\r\n");
        other.sync();
        third.send(b"SUB > 1\r\n");
        third.sync();
        app.send(b"PUB events.created 2\r\nhi\r\n");
        app.sync();
        assert_eq!(
            other.sync(),
            "MSG app.events.created 1 2\r\nhi\r\n",
            "{kind:?}"
        );
        assert_eq!(third.sync(), "", "{kind:?}: THIRD imports nothing");
    }
}

#[test]
fn an_imported_service_answers_the_requester_in_its_own_account() {
    for kind in Impl::all() {
        let s = Server::start(kind, ACCOUNTS);
        let mut svc = login(&s, "app");
        svc.send(b"SUB api.echo 1\r\n");
        svc.sync();
        let mut client = login(&s, "other");
        client.send(b"SUB my.inbox 9\r\nPUB echo my.inbox 4\r\nping\r\n");
        client.sync();
        // The service sees the request on its own subject, with a reply it can use.
        let line = svc
            .read_line(std::time::Duration::from_secs(5))
            .expect("request reaches the service");
        let parts: Vec<&str> = line.split_whitespace().collect();
        // nats-server adds a `Nats-Request-Info` header to imported requests (HMSG);
        // Canopy forwards the message as sent (MSG). Both carry the payload and a reply.
        assert!(parts[0] == "MSG" || parts[0] == "HMSG", "{kind:?}: {line}");
        assert_eq!(&parts[1..3], &["api.echo", "1"], "{kind:?}: {line}");
        assert_ne!(
            parts[3], "my.inbox",
            "{kind:?}: the requester's inbox is not exposed to the exporter"
        );
        let total: usize = parts.last().unwrap().parse().unwrap();
        let mut body = Vec::new();
        while body.len() < total + 2 {
            let l = svc
                .read_line(std::time::Duration::from_secs(5))
                .expect("request body");
            body.extend_from_slice(l.as_bytes());
        }
        assert!(
            body.ends_with(b"ping\r\n"),
            "{kind:?}: {:?}",
            String::from_utf8_lossy(&body)
        );
        svc.send(format!("PUB {} 4\r\npong\r\n", parts[3]).as_bytes());
        svc.sync();
        client.expect(b"MSG my.inbox 9 4\r\npong\r\n");
    }
}

#[test]
fn mappings_rewrite_published_subjects_before_matching() {
    let config = r#"mappings { "orders.*.new": "orders.new.{{wildcard(1)}}", "legacy": "modern", "split.*": "parts.{{split(1,-)}}" }"#;
    for kind in Impl::all() {
        let s = Server::start(kind, config);
        let mut c = s.raw();
        c.send(b"CONNECT {\"verbose\":false}\r\nSUB orders.new.* 1\r\nSUB modern 2\r\nSUB legacy 3\r\nSUB parts.> 4\r\n");
        c.sync();
        c.send(b"PUB orders.eu.new 1\r\na\r\nPUB legacy 1\r\nb\r\nPUB split.x-y 1\r\nc\r\n");
        assert_eq!(
            c.sync(),
            "MSG orders.new.eu 1 1\r\na\r\nMSG modern 2 1\r\nb\r\nMSG parts.x.y 4 1\r\nc\r\n",
            "{kind:?}"
        );
    }
}

#[test]
fn account_mappings_apply_only_inside_their_account() {
    let config = r#"accounts {
      A: { users: [ {user: a, password: a} ], mappings: { "in": "out" } }
      B: { users: [ {user: b, password: b} ] }
    }"#;
    for kind in Impl::all() {
        let s = Server::start(kind, config);
        let mut a = login_pw(&s, "a");
        let mut b = login_pw(&s, "b");
        a.send(b"SUB out 1\r\nPUB in 1\r\nx\r\n");
        assert_eq!(a.sync(), "MSG out 1 1\r\nx\r\n", "{kind:?}");
        b.send(b"SUB in 1\r\nSUB out 2\r\nPUB in 1\r\ny\r\n");
        assert_eq!(b.sync(), "MSG in 1 1\r\ny\r\n", "{kind:?}");
    }
}

fn login_pw(s: &Server, user: &str) -> support::Raw {
    let mut c = s.raw();
    c.send(
        format!("CONNECT {{\"verbose\":false,\"user\":\"{user}\",\"pass\":\"{user}\"}}\r\n")
            .as_bytes(),
    );
    assert_eq!(c.sync(), "");
    c
}

/// A user without permissions gets the default of the block it is defined in: an
/// account's own `default_permissions` for that account's users, the top-level
/// authorization's for its users, and no restriction for users of an account with
/// no default (the top-level default does not reach them), as in nats-server.
#[test]
fn an_accounts_default_permissions_hold_for_its_users_and_only_them() {
    let config = "authorization { default_permissions: { publish: \"top.>\" }, users: [ {user: t, password: t} ] }\n\
                  accounts {\n\
                    A: { default_permissions: { publish: \"acc.>\" }, users: [ {user: a, password: a} ] }\n\
                    B: { users: [ {user: b, password: b} ] }\n\
                  }";
    for kind in Impl::all() {
        let s = Server::start(kind, config);
        for (user, allowed) in [("t", "top.x"), ("a", "acc.x"), ("b", "any.x")] {
            let mut c = login_pw(&s, user);
            for subject in ["top.x", "acc.x", "any.x"] {
                c.send(format!("PUB {subject} 1\r\nx\r\n").as_bytes());
                let got = c.sync();
                let refused = got.contains("Permissions Violation for Publish");
                let may = user == "b" || subject == allowed;
                assert_eq!(
                    refused, !may,
                    "{kind:?}: {user} publishing {subject}: {got:?}"
                );
            }
        }
    }
}

/// The weighted form of a mapping: `{ destination, weight }` entries; at 100% every
/// message goes to the destination, on both servers.
#[test]
fn a_weighted_mapping_sends_its_share_to_the_destination() {
    let config =
        "mappings { \"orders.new\": [ { destination: \"orders.routed\", weight: 100% } ] }";
    for kind in Impl::all() {
        let s = Server::start(kind, config);
        let mut c = s.raw();
        c.send(b"CONNECT {\"verbose\":false}\r\nSUB orders.> 1\r\nPUB orders.new 1\r\nx\r\n");
        assert_eq!(c.sync(), "MSG orders.routed 1 1\r\nx\r\n", "{kind:?}");
    }
}
