//! canopy-server through the official Rust client (async-nats): what an application
//! does, with counts checked exactly.

mod support;
use futures::StreamExt;
use std::time::Duration;
use support::{Impl, Server};

async fn connect(s: &Server) -> async_nats::Client {
    async_nats::connect(s.url()).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_publishes_and_subscribers_receive_every_message_once() {
    let s = Server::start(Impl::Canopy, "");
    let nc = connect(&s).await;
    let mut a = nc.subscribe("orders.*").await.unwrap();
    let mut b = nc.subscribe("orders.>").await.unwrap();
    nc.flush().await.unwrap();
    for i in 0..1000 {
        nc.publish(format!("orders.{}", i % 10), format!("{i}").into())
            .await
            .unwrap();
    }
    nc.flush().await.unwrap();
    for sub in [&mut a, &mut b] {
        for i in 0..1000 {
            let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(m.payload, format!("{i}").as_bytes());
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(200), sub.next())
                .await
                .is_err(),
            "no extra message"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_round_trips_and_missing_responder_is_reported() {
    let s = Server::start(Impl::Canopy, "");
    let nc = connect(&s).await;
    let mut svc = nc.subscribe("svc.echo").await.unwrap();
    let responder = nc.clone();
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(reply) = m.reply {
                responder.publish(reply, m.payload).await.unwrap();
            }
        }
    });
    nc.flush().await.unwrap();
    for i in 0..100 {
        let r = nc
            .request("svc.echo", format!("ping {i}").into())
            .await
            .unwrap();
        assert_eq!(r.payload, format!("ping {i}").as_bytes());
    }
    let err = nc.request("svc.nobody", "x".into()).await.unwrap_err();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_subscribers_share_the_work_exactly() {
    let s = Server::start(Impl::Canopy, "");
    let nc = connect(&s).await;
    let mut subs = Vec::new();
    for _ in 0..4 {
        subs.push(nc.queue_subscribe("jobs", "workers".into()).await.unwrap());
    }
    nc.flush().await.unwrap();
    for i in 0..400 {
        nc.publish("jobs", format!("{i}").into()).await.unwrap();
    }
    nc.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut total = 0;
    for sub in &mut subs {
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), sub.next()).await {
            total += 1;
        }
    }
    assert_eq!(total, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_arrive_as_sent() {
    let s = Server::start(Impl::Canopy, "");
    let nc = connect(&s).await;
    let mut sub = nc.subscribe("h").await.unwrap();
    nc.flush().await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Trace-Id", "abc-123");
    nc.publish_with_headers("h", headers, "body".into())
        .await
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.payload, "body".as_bytes());
    assert_eq!(
        m.headers.unwrap().get("Trace-Id").unwrap().as_str(),
        "abc-123"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_isolate_their_users() {
    let s = Server::start(
        Impl::Canopy,
        "accounts { A: { users: [ {user: a, password: a} ] }, B: { users: [ {user: b, password: b} ] } }",
    );
    let a = async_nats::ConnectOptions::with_user_and_password("a".into(), "a".into())
        .connect(s.url())
        .await
        .unwrap();
    let b = async_nats::ConnectOptions::with_user_and_password("b".into(), "b".into())
        .connect(s.url())
        .await
        .unwrap();
    let mut sub_b = b.subscribe("shared").await.unwrap();
    let mut sub_a = a.subscribe("shared").await.unwrap();
    b.flush().await.unwrap();
    a.flush().await.unwrap();
    a.publish("shared", "from a".into()).await.unwrap();
    a.flush().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), sub_a.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.payload, "from a".as_bytes());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub_b.next())
            .await
            .is_err(),
        "account B must not see A's message"
    );
    let bad = async_nats::ConnectOptions::with_user_and_password("a".into(), "wrong".into())
        .connect(s.url())
        .await;
    assert!(bad.is_err(), "a wrong password must not connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(s.log().contains("authentication error"), "{}", s.log());
    assert!(!s.log().contains("wrong"), "the secret must not be logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_users_connect_with_their_seed() {
    let user = nkeys::KeyPair::new_user();
    let s = Server::start(
        Impl::Canopy,
        &format!(
            "authorization {{ users: [ {{ nkey: {} }} ] }}",
            user.public_key()
        ),
    );
    let nc = async_nats::ConnectOptions::with_nkey(user.seed().unwrap())
        .connect(s.url())
        .await
        .expect("nkey connect");
    let mut sub = nc.subscribe("n").await.unwrap();
    nc.flush().await.unwrap();
    nc.publish("n", "signed".into()).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.payload, "signed".as_bytes());
    let stranger = nkeys::KeyPair::new_user();
    assert!(
        async_nats::ConnectOptions::with_nkey(stranger.seed().unwrap())
            .connect(s.url())
            .await
            .is_err()
    );
}
