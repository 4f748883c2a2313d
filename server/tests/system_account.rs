//! `$SYS` requests that official tooling sends over NATS, answered for system-account
//! users — against canopy-server and (when installed) nats-server.

mod support;
use serde_json::Value;
use std::time::Duration;
use support::{Impl, Server};

const CONFIG: &str = r#"
accounts {
  SYS: { users: [ {user: admin, password: admin} ] }
  APP: { users: [ {user: app, password: app} ] }
}
system_account: SYS
"#;

fn login(s: &Server, user: &str) -> support::Raw {
    let mut c = s.raw();
    c.send(
        format!("CONNECT {{\"verbose\":false,\"user\":\"{user}\",\"pass\":\"{user}\"}}\r\n")
            .as_bytes(),
    );
    assert_eq!(c.sync(), "");
    c
}

/// Send a request and return the JSON of the first reply.
fn request(c: &mut support::Raw, subject: &str) -> Value {
    c.send(format!("SUB _INBOX.mon 77\r\nPUB {subject} _INBOX.mon 0\r\n\r\n").as_bytes());
    let head = loop {
        let line = c.read_line(Duration::from_secs(5)).expect("a reply");
        if line.starts_with("MSG ") || line.starts_with("HMSG ") {
            break line;
        }
    };
    let parts: Vec<&str> = head.split_whitespace().collect();
    assert_eq!(parts[1], "_INBOX.mon", "{head}");
    let size: usize = parts.last().unwrap().parse().unwrap();
    let mut body = String::new();
    while body.len() < size + 2 {
        body.push_str(&c.read_line(Duration::from_secs(5)).unwrap());
    }
    let json = body.rsplit("\r\n\r\n").next().unwrap_or(&body).trim();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn server_id(c: &support::Raw) -> String {
    let info: Value = serde_json::from_str(c.info.trim_start_matches("INFO ").trim()).unwrap();
    info["server_id"].as_str().unwrap().to_string()
}

#[test]
fn server_ping_answers_with_statsz() {
    for kind in Impl::all() {
        let s = Server::start(kind, CONFIG);
        let mut admin = login(&s, "admin");
        let id = server_id(&admin);
        let r = request(&mut admin, "$SYS.REQ.SERVER.PING");
        assert_eq!(r["server"]["id"], id, "{kind:?}: {r}");
        assert!(
            r["statsz"]["connections"].as_u64().unwrap() >= 1,
            "{kind:?}: {r}"
        );
        assert!(r["statsz"]["mem"].as_u64().unwrap() > 0, "{kind:?}: {r}");
    }
}

#[test]
fn varz_and_connz_requests_carry_the_same_facts_as_the_official_server() {
    for kind in Impl::all() {
        let s = Server::start(kind, CONFIG);
        let mut admin = login(&s, "admin");
        let mut app = login(&s, "app");
        app.send(b"SUB a 1\r\nSUB b 2\r\nPUB a 3\r\nabc\r\n");
        app.sync();
        let id = server_id(&admin);
        let varz = request(&mut admin, &format!("$SYS.REQ.SERVER.{id}.VARZ"));
        let data = &varz["data"];
        assert_eq!(data["server_id"], id, "{kind:?}");
        assert_eq!(data["system_account"], "SYS", "{kind:?}");
        assert_eq!(data["max_payload"], 1048576, "{kind:?}");
        assert!(
            data["connections"].as_u64().unwrap() >= 2,
            "{kind:?}: {data}"
        );
        for field in [
            "start",
            "now",
            "uptime",
            "mem",
            "in_msgs",
            "out_msgs",
            "subscriptions",
            "ping_interval",
            "write_deadline",
        ] {
            assert!(!data[field].is_null(), "{kind:?}: varz lacks {field}");
        }
        let connz = request(&mut admin, "$SYS.REQ.SERVER.PING.CONNZ");
        let conns = connz["data"]["connections"].as_array().unwrap();
        let app_conn = conns
            .iter()
            .find(|c| c["subscriptions"] == 2)
            .unwrap_or_else(|| panic!("{kind:?}: {connz}"));
        assert_eq!(app_conn["in_msgs"], 1, "{kind:?}");
        assert_eq!(app_conn["out_msgs"], 1, "{kind:?}");
        assert_eq!(app_conn["kind"], "Client", "{kind:?}");
    }
}

#[test]
fn other_accounts_cannot_reach_system_requests() {
    for kind in Impl::all() {
        let s = Server::start(kind, CONFIG);
        let mut app = login(&s, "app");
        let id = server_id(&app);
        app.send(format!("SUB in 1\r\nPUB $SYS.REQ.SERVER.{id}.VARZ in 0\r\n\r\n").as_bytes());
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            app.sync(),
            "",
            "{kind:?}: a non-system account got a VARZ answer"
        );
    }
}

#[test]
fn every_ping_endpoint_answers_with_server_and_data() {
    for kind in Impl::all() {
        let s = Server::start(kind, CONFIG);
        let mut admin = login(&s, "admin");
        let id = server_id(&admin);
        let idz = request(&mut admin, "$SYS.REQ.SERVER.PING.IDZ");
        assert_eq!(idz["id"], id, "{kind:?}: {idz}");
        assert!(
            idz["name"].is_string() && idz["host"].is_string(),
            "{kind:?}: {idz}"
        );
        for ep in [
            "VARZ", "CONNZ", "SUBSZ", "ACCOUNTZ", "ROUTEZ", "LEAFZ", "GATEWAYZ", "HEALTHZ",
        ] {
            let r = request(&mut admin, &format!("$SYS.REQ.SERVER.PING.{ep}"));
            assert_eq!(r["server"]["id"], id, "{kind:?} {ep}: {r}");
            assert!(r["data"].is_object(), "{kind:?} {ep}: {r}");
        }
    }
}
