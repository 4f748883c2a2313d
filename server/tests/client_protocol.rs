//! The client protocol over raw sockets, byte for byte. Every test runs against
//! canopy-server and, when installed, the official nats-server: every expectation
//! must hold for both.

mod support;
use std::time::Duration;
use support::{Impl, Server};

const CONNECT: &[u8] =
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"protocol\":0}\r\n";

fn each(config: &str, test: impl Fn(&Server)) {
    for kind in Impl::all() {
        let s = Server::start(kind, config);
        eprintln!("-- against {kind:?}");
        test(&s);
    }
}

fn client(s: &Server) -> support::Raw {
    let mut c = s.raw();
    c.send(CONNECT);
    c.sync();
    c
}

#[test]
fn pub_reaches_sub_as_msg_with_exact_bytes() {
    each("", |s| {
        let mut c = client(s);
        c.send(b"SUB foo 1\r\nSUB foo.* 2\r\nPUB foo 5\r\nhello\r\nPUB foo.bar rep 2\r\nhi\r\n");
        c.expect(b"MSG foo 1 5\r\nhello\r\nMSG foo.bar 2 rep 2\r\nhi\r\n");
        assert_eq!(c.sync(), "");
    });
}

#[test]
fn hpub_reaches_header_subscriber_as_hmsg_and_others_as_msg() {
    each("", |s| {
        let mut with = client(s);
        let mut without = s.raw();
        without.send(b"CONNECT {\"verbose\":false,\"headers\":false}\r\nSUB foo 7\r\n");
        without.sync();
        with.send(b"SUB foo 1\r\nHPUB foo 18 23\r\nNATS/1.0\r\nA: b\r\n\r\nhello\r\n");
        with.expect(b"HMSG foo 1 18 23\r\nNATS/1.0\r\nA: b\r\n\r\nhello\r\n");
        without.expect(b"MSG foo 7 5\r\nhello\r\n");
    });
}

#[test]
fn queue_group_delivers_each_message_to_exactly_one_member() {
    each("", |s| {
        let mut a = client(s);
        let mut b = client(s);
        a.send(b"SUB work q 1\r\n");
        b.send(b"SUB work q 1\r\n");
        a.sync();
        b.sync();
        let mut p = client(s);
        for _ in 0..200 {
            p.send(b"PUB work 1\r\nx\r\n");
        }
        p.sync();
        std::thread::sleep(Duration::from_millis(200));
        let total = a.sync().matches("MSG work").count() + b.sync().matches("MSG work").count();
        assert_eq!(total, 200, "{:?}", s.kind);
    });
}

#[test]
fn unsub_with_max_stops_after_that_many() {
    each("", |s| {
        let mut c = client(s);
        c.send(b"SUB foo 1\r\nUNSUB 1 2\r\nPUB foo 1\r\na\r\nPUB foo 1\r\nb\r\nPUB foo 1\r\nc\r\n");
        assert_eq!(c.sync(), "MSG foo 1 1\r\na\r\nMSG foo 1 1\r\nb\r\n");
    });
}

#[test]
fn duplicate_sid_is_ignored_and_first_subscription_stands() {
    each("", |s| {
        let mut c = client(s);
        c.send(b"SUB foo 1\r\nSUB bar 1\r\nPUB bar 1\r\nx\r\nPUB foo 1\r\ny\r\n");
        assert_eq!(c.sync(), "MSG foo 1 1\r\ny\r\n");
    });
}

#[test]
fn ops_are_case_insensitive_and_accept_bare_lf_and_extra_spaces() {
    each("", |s| {
        let mut c = client(s);
        c.send(b"sub   foo\t 1 \nPuB foo 2\r\nok\r\npInG\n");
        c.expect(b"MSG foo 1 2\r\nok\r\nPONG\r\n");
    });
}

#[test]
fn unknown_op_gets_err_and_close() {
    each("", |s| {
        let mut c = client(s);
        c.send(b"FOO bar\r\n");
        assert_eq!(c.expect_closed(), "-ERR 'Unknown Protocol Operation'\r\n");
    });
}

#[test]
fn payload_longer_than_declared_gets_err_and_close() {
    each("", |s| {
        let mut c = client(s);
        c.send(b"PUB foo 2\r\nabc\r\n");
        assert_eq!(c.expect_closed(), "-ERR 'Unknown Protocol Operation'\r\n");
    });
}

#[test]
fn oversized_publish_is_refused_before_the_payload() {
    each("max_payload: 1024", |s| {
        let mut c = client(s);
        c.send(b"PUB foo 2000\r\n");
        assert_eq!(c.expect_closed(), "-ERR 'Maximum Payload Violation'\r\n");
    });
}

#[test]
fn overlong_control_line_is_refused_even_without_crlf() {
    each("", |s| {
        let mut c = client(s);
        let mut line = b"PUB ".to_vec();
        line.extend(std::iter::repeat_n(b'a', 5000));
        c.send(&line);
        assert_eq!(
            c.expect_closed(),
            "-ERR 'maximum control line exceeded'\r\n"
        );
    });
}

#[test]
fn bad_publish_size_closes_without_err() {
    each("", |s| {
        let mut c = client(s);
        c.send(b"PUB foo abc\r\n");
        assert_eq!(c.expect_closed(), "");
        let mut c = client(s);
        c.send(b"PUB a b c 1\r\n");
        assert_eq!(c.expect_closed(), "");
    });
}

#[test]
fn bad_connect_json_closes_without_err() {
    each("", |s| {
        let mut c = s.raw();
        c.send(b"CONNECT {bad}\r\n");
        assert_eq!(c.expect_closed(), "");
    });
}

#[test]
fn invalid_subscription_subject_errs_and_stays_open() {
    each("", |s| {
        let mut c = client(s);
        c.send(b"SUB foo..bar 1\r\n");
        assert_eq!(c.sync(), "-ERR 'Invalid Subject'\r\n");
        c.send(b"SUB foo.>.bar 2\r\n");
        assert_eq!(c.sync(), "-ERR 'Invalid Subject'\r\n");
        c.send(b"SUB foo.b*r 3\r\nPUB foo.b*r 1\r\nx\r\n");
        assert_eq!(c.sync(), "MSG foo.b*r 3 1\r\nx\r\n");
    });
}

#[test]
fn pedantic_refuses_wildcard_publish_and_stays_open() {
    each("", |s| {
        let mut c = s.raw();
        c.send(b"CONNECT {\"verbose\":false,\"pedantic\":true}\r\nPUB foo.* 1\r\nx\r\n");
        assert_eq!(c.sync(), "-ERR 'Invalid Publish Subject'\r\n");
        let mut lax = client(s);
        lax.send(b"PUB foo.* 1\r\nx\r\n");
        assert_eq!(lax.sync(), "");
    });
}

#[test]
fn verbose_acknowledges_each_op() {
    each("", |s| {
        let mut c = s.raw();
        c.send(b"CONNECT {\"verbose\":true}\r\nSUB foo 1\r\nPUB foo 1\r\nx\r\nUNSUB 1\r\n");
        assert_eq!(c.sync(), "+OK\r\n+OK\r\n+OK\r\nMSG foo 1 1\r\nx\r\n+OK\r\n");
    });
}

#[test]
fn echo_false_keeps_own_messages_away() {
    each("", |s| {
        let mut c = s.raw();
        c.send(b"CONNECT {\"verbose\":false,\"echo\":false}\r\nSUB foo 1\r\nPUB foo 1\r\nx\r\n");
        assert_eq!(c.sync(), "");
        let mut other = client(s);
        other.send(b"PUB foo 1\r\ny\r\n");
        other.sync();
        c.expect(b"MSG foo 1 1\r\ny\r\n");
    });
}

#[test]
fn request_without_responders_gets_a_503_status() {
    each("", |s| {
        let mut c = s.raw();
        c.send(b"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\nSUB r.1 2\r\nPUB nothere r.1 0\r\n\r\n");
        assert_eq!(
            c.sync(),
            "HMSG r.1 2 39 39\r\nNATS/1.0 503\r\nNats-Subject: nothere\r\n\r\n\r\n"
        );
    });
}

#[test]
fn no_responders_without_headers_is_refused() {
    each("", |s| {
        let mut c = s.raw();
        c.send(b"CONNECT {\"headers\":false,\"no_responders\":true}\r\n");
        assert_eq!(
            c.expect_closed(),
            "-ERR 'no responders requires headers support'\r\n"
        );
    });
}

#[test]
fn protocol_one_clients_get_a_second_info_after_the_first_pong() {
    each("", |s| {
        let mut c = s.raw();
        c.send(b"CONNECT {\"verbose\":false,\"protocol\":1}\r\nPING\r\n");
        assert_eq!(c.read_line(Duration::from_secs(5)).unwrap(), "PONG\r\n");
        let info = c.read_line(Duration::from_secs(5)).unwrap();
        assert!(info.starts_with("INFO {"), "{info}");
        assert!(info.contains("\"connect_info\":true"), "{info}");
        assert!(info.contains("\"remote_account\":\"$G\""), "{info}");
        c.send(b"PING\r\n");
        assert_eq!(c.read_line(Duration::from_secs(5)).unwrap(), "PONG\r\n");
    });
}

#[test]
fn info_carries_what_clients_rely_on() {
    each("max_payload: 2048", |s| {
        let c = s.raw();
        let json: serde_json::Value =
            serde_json::from_str(c.info.trim_start_matches("INFO ").trim()).unwrap();
        assert!(json["server_id"].as_str().unwrap().starts_with('N'));
        assert_eq!(json["server_id"].as_str().unwrap().len(), 56);
        assert_eq!(json["max_payload"], 2048);
        assert_eq!(json["headers"], true);
        assert_eq!(json["proto"], 1);
        assert!(json["client_id"].as_u64().unwrap() > 0);
        assert_eq!(json["port"], s.port);
    });
}

// bob's password is the bcrypt hash of "s3cret" at cost 4 (cheap on purpose), made with
// PyPI's bcrypt (each run picks another salt; any such hash does):
//   python3 -c 'import bcrypt; print(bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4, b"2a")))'
const AUTH: &str = "authorization { timeout: 1\n users: [ {user: alice, password: pw, permissions: {publish: {allow: [\"ok.>\", \"_INBOX.>\"], deny: [\"ok.no\"]}, subscribe: {allow: [\"ok.>\"]}}}\n {user: bob, password: \"$2a$04$oj8mGImPu..08Sief7Sjv.ljTDS.AFH65vEgM9PdJbrsFtTLpAZn.\"} ] }";

#[test]
fn wrong_password_is_an_authorization_violation() {
    each(AUTH, |s| {
        let mut c = s.raw();
        assert!(c.info.contains("\"auth_required\":true"));
        c.send(b"CONNECT {\"verbose\":false,\"user\":\"alice\",\"pass\":\"nope\"}\r\n");
        assert_eq!(c.expect_closed(), "-ERR 'Authorization Violation'\r\n");
        assert!(
            !s.log().contains("nope"),
            "the log must never hold the secret"
        );
    });
}

#[test]
fn bcrypt_password_authenticates() {
    each(AUTH, |s| {
        let mut c = s.raw();
        c.send(b"CONNECT {\"verbose\":false,\"user\":\"bob\",\"pass\":\"s3cret\"}\r\nSUB x 1\r\nPUB x 1\r\nz\r\n");
        assert_eq!(c.sync(), "MSG x 1 1\r\nz\r\n");
    });
}

#[test]
fn publishing_before_connect_when_auth_is_required_is_refused() {
    each(AUTH, |s| {
        let mut c = s.raw();
        c.send(b"PUB foo 1\r\nx\r\n");
        assert_eq!(c.expect_closed(), "-ERR 'Authorization Violation'\r\n");
    });
}

#[test]
fn silence_past_the_auth_timeout_is_refused() {
    each(AUTH, |s| {
        let mut c = s.raw();
        assert_eq!(c.expect_closed(), "-ERR 'Authentication Timeout'\r\n");
    });
}

#[test]
fn permissions_violations_get_the_exact_errors_and_keep_the_connection() {
    each(AUTH, |s| {
        let mut c = s.raw();
        c.send(b"CONNECT {\"verbose\":false,\"user\":\"alice\",\"pass\":\"pw\"}\r\n");
        c.sync();
        c.send(b"PUB no.x 1\r\nx\r\n");
        assert_eq!(
            c.sync(),
            "-ERR 'Permissions Violation for Publish to \"no.x\"'\r\n"
        );
        c.send(b"PUB ok.no 1\r\nx\r\n");
        assert_eq!(
            c.sync(),
            "-ERR 'Permissions Violation for Publish to \"ok.no\"'\r\n"
        );
        c.send(b"SUB nope 1\r\n");
        assert_eq!(
            c.sync(),
            "-ERR 'Permissions Violation for Subscription to \"nope\"'\r\n"
        );
        c.send(b"SUB ok.yes 2\r\nPUB ok.yes 1\r\ny\r\n");
        assert_eq!(c.sync(), "MSG ok.yes 2 1\r\ny\r\n");
    });
}

#[test]
fn a_client_that_stops_answering_pings_is_closed_as_stale() {
    each("ping_interval: \"300ms\"\nping_max: 1", |s| {
        let mut c = s.raw();
        c.send(CONNECT);
        // Never answer PING: read raw bytes without the helper's auto-PONG.
        let mut got = String::new();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !c.closed && std::time::Instant::now() < until {
            if let Some(l) = c.read_line(Duration::from_millis(200)) {
                got.push_str(&l);
            }
        }
        assert!(c.closed, "not closed; got {got:?}");
        assert!(got.contains("PING\r\n"), "{got:?}");
        assert!(got.ends_with("-ERR 'Stale Connection'\r\n"), "{got:?}");
    });
}

#[test]
fn subscriptions_past_the_limit_are_refused_and_the_connection_stays() {
    each("max_subscriptions: 2", |s| {
        let mut c = client(s);
        c.send(b"SUB a 1\r\nSUB b 2\r\nSUB c 3\r\n");
        assert_eq!(c.sync(), "-ERR 'maximum subscriptions exceeded'\r\n");
        c.send(b"PUB a 1\r\nx\r\n");
        assert_eq!(c.sync(), "MSG a 1 1\r\nx\r\n");
    });
}

#[test]
fn a_consumer_past_max_pending_is_closed_without_err_and_others_keep_flowing() {
    each("max_pending: 65536\nmax_payload: 16384", |s| {
        let mut slow = client(s);
        slow.send(b"SUB big 1\r\n");
        slow.sync();
        let mut fast = client(s);
        fast.send(b"SUB big 1\r\n");
        fast.sync();
        // Fill the slow reader's socket and then its pending buffer: it never reads.
        let mut p = client(s);
        let payload = vec![b'x'; 16000];
        let mut frame = b"PUB big 16000\r\n".to_vec();
        frame.extend_from_slice(&payload);
        frame.extend_from_slice(b"\r\n");
        for _ in 0..400 {
            p.send(&frame);
            // Keep the fast consumer drained so only the slow one backs up.
            fast.drain(Duration::from_millis(1));
        }
        p.sync();
        let got = slow.expect_closed();
        assert!(!got.contains("-ERR"), "a slow consumer gets no -ERR");
        p.send(b"SUB after 9\r\nPUB after 1\r\nk\r\n");
        assert_eq!(p.sync(), "MSG after 9 1\r\nk\r\n");
    });
}

#[test]
fn nkey_user_signs_the_nonce_and_a_bad_signature_is_refused() {
    let user = nkeys::KeyPair::new_user();
    let stranger = nkeys::KeyPair::new_user();
    let config = format!(
        "authorization {{ users: [ {{ nkey: {} }} ] }}",
        user.public_key()
    );
    each(&config, |s| {
        use base64::Engine;
        let sign = |kp: &nkeys::KeyPair, nonce: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(kp.sign(nonce.as_bytes()).unwrap())
        };
        let mut good = s.raw();
        let nonce = good.nonce();
        good.send(
            format!("CONNECT {{\"verbose\":false,\"nkey\":\"{}\",\"sig\":\"{}\"}}\r\nSUB k 1\r\nPUB k 1\r\nx\r\n", user.public_key(), sign(&user, &nonce))
                .as_bytes(),
        );
        assert_eq!(good.sync(), "MSG k 1 1\r\nx\r\n");

        let mut forged = s.raw();
        let nonce = forged.nonce();
        forged.send(
            format!(
                "CONNECT {{\"verbose\":false,\"nkey\":\"{}\",\"sig\":\"{}\"}}\r\n",
                user.public_key(),
                sign(&stranger, &nonce)
            )
            .as_bytes(),
        );
        assert_eq!(forged.expect_closed(), "-ERR 'Authorization Violation'\r\n");
    });
}

#[test]
fn allow_responses_lets_a_service_answer_once_and_nothing_else() {
    let config = "authorization { users: [ {user: svc, password: s, permissions: {subscribe: \"req\", allow_responses: true}}, {user: cl, password: c} ] }";
    each(config, |s| {
        let mut svc = s.raw();
        svc.send(b"CONNECT {\"verbose\":false,\"user\":\"svc\",\"pass\":\"s\"}\r\nSUB req 1\r\n");
        assert_eq!(svc.sync(), "");
        let mut cl = s.raw();
        cl.send(b"CONNECT {\"verbose\":false,\"user\":\"cl\",\"pass\":\"c\"}\r\nSUB inbox.1 5\r\nPUB req inbox.1 1\r\nq\r\n");
        cl.sync();
        svc.expect(b"MSG req 1 inbox.1 1\r\nq\r\n");
        svc.send(b"PUB inbox.1 1\r\na\r\n");
        assert_eq!(svc.sync(), "");
        cl.expect(b"MSG inbox.1 5 1\r\na\r\n");
        svc.send(b"PUB inbox.1 1\r\nb\r\n");
        assert_eq!(
            svc.sync(),
            "-ERR 'Permissions Violation for Publish to \"inbox.1\"'\r\n",
            "one response only"
        );
        svc.send(b"PUB other 1\r\nc\r\n");
        assert_eq!(
            svc.sync(),
            "-ERR 'Permissions Violation for Publish to \"other\"'\r\n"
        );
    });
}

#[test]
fn connections_past_max_connections_are_refused() {
    each("max_connections: 2", |s| {
        let _a = client(s);
        let _b = client(s);
        let mut c = s.raw();
        assert_eq!(c.expect_closed(), "-ERR 'maximum connections exceeded'\r\n");
    });
}

#[test]
fn token_auth_admits_the_right_token_only() {
    each("authorization { token: \"s3cr3t\" }", |s| {
        let mut good = s.raw();
        good.send(
            b"CONNECT {\"verbose\":false,\"auth_token\":\"s3cr3t\"}\r\nSUB t 1\r\nPUB t 1\r\nx\r\n",
        );
        assert_eq!(good.sync(), "MSG t 1 1\r\nx\r\n");
        let mut bad = s.raw();
        bad.send(b"CONNECT {\"verbose\":false,\"auth_token\":\"guess\"}\r\n");
        assert_eq!(bad.expect_closed(), "-ERR 'Authorization Violation'\r\n");
    });
}

#[test]
fn no_auth_user_binds_clients_without_credentials() {
    let config = "accounts { A: { users: [ {user: anon, password: x}, {user: named, password: n} ] }, B: { users: [ {user: b, password: b} ] } }\nno_auth_user: anon";
    each(config, |s| {
        let mut anon = s.raw();
        anon.send(b"CONNECT {\"verbose\":false}\r\nSUB shared 1\r\n");
        assert_eq!(anon.sync(), "");
        let mut named = s.raw();
        named.send(b"CONNECT {\"verbose\":false,\"user\":\"named\",\"pass\":\"n\"}\r\nPUB shared 2\r\nhi\r\n");
        named.sync();
        anon.expect(b"MSG shared 1 2\r\nhi\r\n");
        let mut other = s.raw();
        other.send(
            b"CONNECT {\"verbose\":false,\"user\":\"b\",\"pass\":\"b\"}\r\nPUB shared 2\r\nno\r\n",
        );
        other.sync();
        assert_eq!(anon.sync(), "", "account B's message stays in B");
    });
}

#[test]
fn a_wildcard_subscription_does_not_receive_denied_subjects() {
    let config = "authorization { users: [ {user: u, password: p, permissions: {subscribe: {deny: [\"foo.secret\"]}}}, {user: w, password: w} ] }";
    each(config, |s| {
        let mut u = s.raw();
        u.send(b"CONNECT {\"verbose\":false,\"user\":\"u\",\"pass\":\"p\"}\r\nSUB foo.> 1\r\n");
        assert_eq!(u.sync(), "");
        let mut w = s.raw();
        w.send(b"CONNECT {\"verbose\":false,\"user\":\"w\",\"pass\":\"w\"}\r\nPUB foo.secret 1\r\nx\r\nPUB foo.public 1\r\ny\r\n");
        w.sync();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(u.sync(), "MSG foo.public 1 1\r\ny\r\n");
    });
}

#[test]
fn unsub_max_counts_messages_already_delivered() {
    each("", |s| {
        let mut c = client(s);
        c.send(b"SUB foo 1\r\nPUB foo 1\r\na\r\nPUB foo 1\r\nb\r\n");
        assert_eq!(c.sync(), "MSG foo 1 1\r\na\r\nMSG foo 1 1\r\nb\r\n");
        c.send(b"UNSUB 1 3\r\nPUB foo 1\r\nc\r\nPUB foo 1\r\nd\r\n");
        assert_eq!(c.sync(), "MSG foo 1 1\r\nc\r\n");
    });
}

#[test]
fn two_queue_groups_each_spread_over_all_their_members() {
    each("", |s| {
        let mut members: Vec<support::Raw> = (0..4).map(|_| client(s)).collect();
        for (i, m) in members.iter_mut().enumerate() {
            let group = if i < 2 { "g1" } else { "g2" };
            m.send(format!("SUB work {group} 1\r\n").as_bytes());
            m.sync();
        }
        let mut p = client(s);
        for _ in 0..400 {
            p.send(b"PUB work 1\r\nx\r\n");
        }
        p.sync();
        std::thread::sleep(Duration::from_millis(200));
        let counts: Vec<usize> = members
            .iter_mut()
            .map(|m| m.sync().matches("MSG work").count())
            .collect();
        assert_eq!(counts[0] + counts[1], 400, "{counts:?}");
        assert_eq!(counts[2] + counts[3], 400, "{counts:?}");
        assert!(
            counts.iter().all(|c| *c > 100),
            "every member gets a share: {counts:?}"
        );
    });
}

#[test]
fn permissions_apply_to_the_mapped_subject() {
    let config = "mappings { \"in.*\": \"orders.{{wildcard(1)}}\" }\nauthorization { users: [ {user: u, password: p, permissions: {publish: {allow: [\"in.>\"], deny: [\"orders.>\"]}}} ] }";
    each(config, |s| {
        let mut c = s.raw();
        c.send(b"CONNECT {\"verbose\":false,\"user\":\"u\",\"pass\":\"p\"}\r\nPUB in.x 1\r\nx\r\n");
        assert_eq!(
            c.sync(),
            "-ERR 'Permissions Violation for Publish to \"orders.x\"'\r\n"
        );
    });
}

#[test]
fn max_sub_tokens_refuses_a_subscription_with_more_tokens_and_keeps_the_connection() {
    each("max_sub_tokens: 3", |s| {
        let mut c = client(s);
        c.send(b"SUB a.b.c.d 1\r\nSUB a.b.c 2\r\nPUB a.b.c 1\r\nx\r\nPUB a.b.c.d 1\r\ny\r\n");
        assert_eq!(
            c.sync(),
            "-ERR 'Permissions Violation for Subscription to \"a.b.c.d\", too many tokens'\r\nMSG a.b.c 2 1\r\nx\r\n"
        );
    });
}
