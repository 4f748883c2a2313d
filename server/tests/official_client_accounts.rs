//! Accounts, imports, mappings, permissions, `$SYS` and lame duck through the
//! official Rust client, as an application sees them.

mod support;
use futures::StreamExt;
use std::time::Duration;
use support::{Impl, Server};

const CONFIG: &str = r#"
accounts {
  APP: {
    users: [ {user: app, password: app} ]
    exports: [ {stream: "events.>"}, {service: "api.>", response_type: stream} ]
  }
  OTHER: {
    users: [ {user: other, password: other, permissions: {publish: {deny: ["forbidden.>"]}}} ]
    imports: [
      {stream: {account: APP, subject: "events.>"}, to: "app.events.>"}
      {service: {account: APP, subject: "api.list"}, to: "list"}
    ]
    mappings: { "old.*": "new.{{wildcard(1)}}" }
  }
  SYS: { users: [ {user: admin, password: admin} ] }
}
system_account: SYS
lame_duck_duration: "30s"
lame_duck_grace_period: "1s"
"#;

async fn login(s: &Server, user: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), user.into())
        .connect(s.url())
        .await
        .unwrap_or_else(|e| panic!("{user}: {e}"))
}

/// async-nats's `flush` can return before a SUB it queued has reached the server
/// (seen under load: the SUB arrived after 50 PUBs from another connection). So a
/// test that subscribes on one connection and publishes on another first proves the
/// interest is in place: publish a probe until it arrives, then drain the probes.
async fn until_subscribed(
    publisher: &async_nats::Client,
    subject: &str,
    sub: &mut async_nats::Subscriber,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        publisher
            .publish(subject.to_string(), "probe".into())
            .await
            .unwrap();
        publisher.flush().await.unwrap();
        if tokio::time::timeout(Duration::from_millis(100), sub.next())
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription never became active"
        );
    }
    while tokio::time::timeout(Duration::from_millis(200), sub.next())
        .await
        .is_ok()
    {}
}

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a message in time")
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_stream_is_renamed_into_the_importer() {
    let s = Server::start(Impl::Canopy, CONFIG);
    let app = login(&s, "app").await;
    let other = login(&s, "other").await;
    let mut sub = other.subscribe("app.events.>").await.unwrap();
    other.flush().await.unwrap();
    until_subscribed(&app, "events.ready", &mut sub).await;
    for i in 0..50 {
        app.publish(format!("events.{i}"), "e".into())
            .await
            .unwrap();
    }
    app.flush().await.unwrap();
    for i in 0..50 {
        assert_eq!(
            next(&mut sub).await.subject.as_str(),
            format!("app.events.{i}")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_response_service_can_answer_many_times() {
    let s = Server::start(Impl::Canopy, CONFIG);
    let app = login(&s, "app").await;
    let mut svc = app.subscribe("api.list").await.unwrap();
    app.flush().await.unwrap();
    let responder = app.clone();
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            let reply = m.reply.unwrap();
            for i in 0..3 {
                responder
                    .publish(reply.clone(), format!("item {i}").into())
                    .await
                    .unwrap();
            }
            responder.flush().await.unwrap();
        }
    });
    let other = login(&s, "other").await;
    // The service's SUB is on another connection: wait until a request reaches it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while other.request("list", "".into()).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the service never became reachable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let inbox = other.new_inbox();
    let mut replies = other.subscribe(inbox.clone()).await.unwrap();
    other
        .publish_with_reply("list", inbox, "".into())
        .await
        .unwrap();
    other.flush().await.unwrap();
    for i in 0..3 {
        assert_eq!(
            next(&mut replies).await.payload,
            format!("item {i}").as_bytes()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappings_and_permissions_apply_to_the_official_client() {
    let s = Server::start(Impl::Canopy, CONFIG);
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let other = async_nats::ConnectOptions::with_user_and_password("other".into(), "other".into())
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e.to_string());
            }
        })
        .connect(s.url())
        .await
        .unwrap();
    let mut sub = other.subscribe("new.*").await.unwrap();
    other.flush().await.unwrap();
    other.publish("old.thing", "m".into()).await.unwrap();
    assert_eq!(next(&mut sub).await.subject.as_str(), "new.thing");
    other.publish("forbidden.x", "no".into()).await.unwrap();
    other.flush().await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if e.to_lowercase().contains("permissions violation") {
            return;
        }
        seen.push(e);
    }
    panic!("no permissions violation event: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_account_requests_answer_the_official_client() {
    let s = Server::start(Impl::Canopy, CONFIG);
    let admin = login(&s, "admin").await;
    let r = admin
        .request("$SYS.REQ.SERVER.PING", "".into())
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    assert!(json["statsz"]["connections"].as_u64().unwrap() >= 1);
    let r = admin
        .request("$SYS.REQ.SERVER.PING.CONNZ", "".into())
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    assert!(json["data"]["num_connections"].as_u64().unwrap() >= 1);
    let app = login(&s, "app").await;
    let err = app
        .request("$SYS.REQ.SERVER.PING", "".into())
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        async_nats::RequestErrorKind::NoResponders,
        "other accounts get no answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lame_duck_mode_reaches_the_official_client_as_an_event() {
    let s = Server::start(Impl::Canopy, CONFIG);
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let _app = async_nats::ConnectOptions::with_user_and_password("app".into(), "app".into())
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e.to_string());
            }
        })
        .connect(s.url())
        .await
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_canopy-server"))
        .args(["--signal", &format!("ldm={}", s.pid())])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.recv()).await {
        let lame = e.contains("lame duck");
        seen.push(e);
        if lame {
            return;
        }
    }
    panic!("no lame duck event: {seen:?}");
}
