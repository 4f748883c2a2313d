//! Generated bundles in containers: sites on their own networks, joined only by
//! linksim links; clients on the host through the ports compose publishes. One test
//! runs the scenarios in order, so the images are built once and removed at the end.

use canopy_e2e::{docker_available, http, json, Images, Running};
use futures::StreamExt;
use std::time::{Duration, Instant};

async fn client(r: &Running, server: &str, user: &str) -> async_nats::Client {
    let (port, _) = r.ports(server);
    let mut opts = async_nats::ConnectOptions::new()
        .user_and_password(user.into(), r.password(user))
        .connection_timeout(Duration::from_secs(5));
    if r.model.tls {
        opts = opts
            .add_root_certificates(r.bundle().join("pki/ca.pem"))
            .require_tls(true);
    }
    let scheme = if r.model.tls { "tls" } else { "nats" };
    opts.connect(format!("{scheme}://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("{server} as {user}: {e}"))
}

async fn drain(sub: &mut async_nats::Subscriber, quiet: Duration) -> usize {
    let mut n = 0;
    while let Ok(Some(_)) = tokio::time::timeout(quiet, sub.next()).await {
        n += 1;
    }
    n
}

/// Publish probes until one arrives; returns how long that took.
async fn until_flow(
    from: &async_nats::Client,
    sub: &mut async_nats::Subscriber,
    subject: &str,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let _ = from.publish(subject.to_string(), "probe".into()).await;
        let _ = from.flush().await;
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(250), sub.next()).await {
            drain(sub, Duration::from_millis(400)).await;
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "no flow on {subject} within {within:?}"
        );
    }
}

async fn exactly(
    from: &async_nats::Client,
    sub: &mut async_nats::Subscriber,
    prefix: &str,
    n: usize,
) -> usize {
    for i in 0..n {
        from.publish(format!("{prefix}.{i}"), "m".into())
            .await
            .unwrap();
    }
    from.flush().await.unwrap();
    drain(sub, Duration::from_millis(1500)).await
}

/// Answer every request on `subject` with its own payload.
async fn echo_service(c: &async_nats::Client, subject: &str) {
    let mut svc = c.subscribe(subject.to_string()).await.unwrap();
    c.flush().await.unwrap();
    let responder = c.clone();
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(reply) = m.reply {
                let _ = responder.publish(reply, m.payload).await;
            }
        }
    });
}

/// Whether a request on `subject` comes back with its payload within about 20 s
/// (until the service's interest has crossed, it gets no responders: try again).
async fn answered(c: &async_nats::Client, subject: &str, payload: &'static str) -> bool {
    for _ in 0..40 {
        let asked = c.request(subject.to_string(), payload.into());
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), asked).await {
            assert_eq!(&m.payload[..], payload.as_bytes());
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// The hub server a leaf is attached to, from the leaf's /leafz.
fn attached_hub(r: &Running, leaf: &str) -> Option<String> {
    let (_, http_port) = r.ports(leaf);
    let v = json(http_port, "/leafz").ok()?;
    v["leafs"][0]["name"].as_str().map(str::to_string)
}

async fn secure_hub(images: &Images) {
    // secure-hub: a 3-server hub cluster, two leaves behind 25 ms and 40 ms links,
    // TLS everywhere, leaves known by client certificates; PINGs every 2s here so a
    // cut link is noticed in seconds.
    let r = Running::start("secure-hub.hcl", images, |m| {
        m.ping_interval = Some("2s".into());
    })
    .expect("secure-hub up");
    let t0 = Instant::now();

    let (hub1, leaf, mut up) = cross_site_flow(&r).await;
    isolation_and_deny(&r, &hub1, &leaf, &mut up).await;
    let mut seen = hub_failover(&r, &leaf).await;
    partition_and_heal(&r, &leaf, &mut seen).await;
    foreign_certificate_refused(&r).await;
    eprintln!("secure-hub scenario took {:?}", t0.elapsed());
}

/// Pub/sub and request/reply both ways across the leaf link, exact counts.
async fn cross_site_flow(
    r: &Running,
) -> (
    async_nats::Client,
    async_nats::Client,
    async_nats::Subscriber,
) {
    // Cross-site pub/sub both ways, exact counts.
    let hub1 = client(r, "hub-1", "us_west_app").await;
    let leaf = client(r, "leaf-us-west", "us_west_app").await;
    let mut up = hub1.subscribe("up.>").await.unwrap();
    hub1.flush().await.unwrap();
    let took = until_flow(&leaf, &mut up, "up.probe", Duration::from_secs(20)).await;
    assert_eq!(exactly(&leaf, &mut up, "up", 200).await, 200, "leaf → hub");
    let mut down = leaf.subscribe("down.>").await.unwrap();
    leaf.flush().await.unwrap();
    until_flow(&hub1, &mut down, "down.probe", Duration::from_secs(20)).await;
    assert_eq!(
        exactly(&hub1, &mut down, "down", 200).await,
        200,
        "hub → leaf"
    );
    eprintln!("secure-hub: cross-site flow {took:?} after healthy");

    // Request/reply both ways across the link.
    echo_service(&leaf, "svc.leaf").await;
    assert!(
        answered(&hub1, "svc.leaf", "hi").await,
        "hub → leaf request answered"
    );
    let hub2 = client(r, "hub-2", "us_west_app").await;
    echo_service(&hub2, "svc.hub").await;
    assert!(
        answered(&leaf, "svc.hub", "yo").await,
        "leaf → hub request answered"
    );

    (hub1, leaf, up)
}

/// EU_WEST sees nothing of US_WEST, and local.> never leaves the leaf's site.
async fn isolation_and_deny(
    r: &Running,
    hub1: &async_nats::Client,
    leaf: &async_nats::Client,
    up: &mut async_nats::Subscriber,
) {
    // Account isolation and deny rules across sites: EU_WEST sees nothing of US_WEST,
    // and local.> never leaves the leaf's site.
    let eu = client(r, "hub-1", "eu_west_app").await;
    let mut spy = eu.subscribe(">").await.unwrap();
    let mut local_up = hub1.subscribe("local.>").await.unwrap();
    eu.flush().await.unwrap();
    hub1.flush().await.unwrap();
    for i in 0..50 {
        leaf.publish(format!("up.iso.{i}"), "x".into())
            .await
            .unwrap();
        leaf.publish(format!("local.diag.{i}"), "x".into())
            .await
            .unwrap();
    }
    leaf.flush().await.unwrap();
    assert_eq!(drain(up, Duration::from_millis(1500)).await, 50);
    assert_eq!(
        drain(&mut spy, Duration::from_millis(300)).await,
        0,
        "account isolation"
    );
    assert_eq!(
        drain(&mut local_up, Duration::from_millis(300)).await,
        0,
        "deny_exports local.>"
    );
}

/// Stop the hub the leaf is attached to: it fails over to another, and traffic flows.
async fn hub_failover(r: &Running, leaf: &async_nats::Client) -> async_nats::Subscriber {
    // Hub failover: stop the hub the leaf is attached to.
    let attached = attached_hub(r, "leaf-us-west").expect("leaf attached");
    let survivor = ["hub-1", "hub-2", "hub-3"]
        .into_iter()
        .find(|h| *h != attached)
        .unwrap();
    let watcher = client(r, survivor, "us_west_app").await;
    let mut seen = watcher.subscribe("fail.>").await.unwrap();
    watcher.flush().await.unwrap();
    until_flow(leaf, &mut seen, "fail.before", Duration::from_secs(20)).await;
    let stopped = Instant::now();
    r.compose(&["stop", "-t", "0", &attached]).unwrap();
    let failover = until_flow(leaf, &mut seen, "fail.after", Duration::from_secs(30)).await;
    let now_on = attached_hub(r, "leaf-us-west");
    eprintln!(
        "secure-hub: leaf failed over from {attached} to {now_on:?}; flow back {:?} after the stop",
        stopped.elapsed()
    );
    assert_ne!(now_on.as_deref(), Some(attached.as_str()));
    assert_eq!(
        exactly(leaf, &mut seen, "fail.n", 100).await,
        100,
        "after failover"
    );
    let _ = failover;
    r.compose(&["start", &attached]).unwrap();

    seen
}

/// Partition the us-west link: local traffic flows, the hubs see the leaf go stale;
/// heal it: cross-site traffic flows again, each message once.
async fn partition_and_heal(
    r: &Running,
    leaf: &async_nats::Client,
    seen: &mut async_nats::Subscriber,
) {
    // Partition and heal of the us-west link.
    let api = r.link_api("us-west");
    let local_sub = client(r, "leaf-us-west", "us_west_app").await;
    let mut site = local_sub.subscribe("site.>").await.unwrap();
    local_sub.flush().await.unwrap();
    http("POST", api, "/partition").unwrap();
    let cut = Instant::now();
    // Local traffic on the leaf's site keeps flowing.
    assert_eq!(
        exactly(leaf, &mut site, "site", 100).await,
        100,
        "local flow during the partition"
    );
    // The hubs report the leaf gone (stale after 3 PINGs at 2s).
    let gone = loop {
        let mut attached_anywhere = false;
        for h in ["hub-1", "hub-2", "hub-3"] {
            let (_, hp) = r.ports(h);
            if let Ok(v) = json(hp, "/leafz?acc=US_WEST") {
                attached_anywhere |= v["leafnodes"].as_u64().unwrap_or(0) > 0;
            }
        }
        if !attached_anywhere {
            break cut.elapsed();
        }
        assert!(
            cut.elapsed() < Duration::from_secs(30),
            "hubs still list the leaf"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!("secure-hub: hubs report the leaf gone {gone:?} after the partition");
    http("POST", api, "/heal").unwrap();
    let healed = Instant::now();
    let flow_back = until_flow(leaf, seen, "fail.heal.probe", Duration::from_secs(60)).await;
    eprintln!(
        "secure-hub: cross-site flow back {:?} after the heal",
        healed.elapsed()
    );
    let _ = flow_back;
    assert_eq!(
        exactly(leaf, seen, "fail.healed", 100).await,
        100,
        "after heal, once each"
    );
}

/// The eu-west leaf presents a certificate from another CA: refused, and the hubs say why.
async fn foreign_certificate_refused(r: &Running) {
    // Security: the eu-west leaf presents a certificate from another CA: refused,
    // nothing crosses.
    let other = tempfile::tempdir().unwrap();
    canopy_gen::generate(&r.model, &other.path().join("b"), &Default::default()).unwrap();
    let identity = r.model.server("leaf-eu-west").unwrap().remotes[0]
        .identity
        .clone();
    for f in [
        format!("pki/{identity}.pem"),
        format!("pki/{identity}-key.pem"),
    ] {
        // Overwrite in place: the container bind-mounts this very file.
        let bytes = std::fs::read(other.path().join("b").join(&f)).unwrap();
        std::fs::write(r.bundle().join(&f), bytes).unwrap();
    }
    r.compose(&["restart", "-t", "0", "leaf-eu-west"]).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut eu_leafs = 0;
    for h in ["hub-1", "hub-2", "hub-3"] {
        let (_, hp) = r.ports(h);
        eu_leafs += json(hp, "/leafz?acc=EU_WEST")
            .map(|v| v["leafnodes"].as_u64().unwrap_or(0))
            .unwrap_or(0);
    }
    assert_eq!(
        eu_leafs, 0,
        "a leaf with a foreign certificate is not attached"
    );
    let logs = r
        .compose(&["logs", "--tail=200", "hub-1", "hub-2", "hub-3"])
        .unwrap();
    assert!(
        logs.contains("TLS leafnode handshake error"),
        "the hubs say why: {logs}"
    );
}

async fn multi_region(images: &Images) {
    // A tree of regional hubs (US root, EU and APAC leaves of it): each message once.
    let r = Running::start("multi-region.hcl", images, |_| {}).expect("multi-region up");
    let apac = client(&r, "apac-leaf-1", "app").await;
    let eu = client(&r, "eu-leaf-1", "app").await;
    let mut sub = apac.subscribe("orders.>").await.unwrap();
    apac.flush().await.unwrap();
    let took = until_flow(&eu, &mut sub, "orders.probe", Duration::from_secs(30)).await;
    assert_eq!(
        exactly(&eu, &mut sub, "orders", 300).await,
        300,
        "EU leaf → US → APAC leaf, once each"
    );
    let mut local = apac.subscribe("local.>").await.unwrap();
    apac.flush().await.unwrap();
    for i in 0..20 {
        eu.publish(format!("local.x{i}"), "x".into()).await.unwrap();
    }
    eu.flush().await.unwrap();
    assert_eq!(
        drain(&mut local, Duration::from_millis(800)).await,
        0,
        "local.> stays in its region"
    );
    eprintln!("multi-region: EU → APAC flow {took:?} after healthy; 300/300 delivered once");
}

async fn mixed_official_leaf(images: &Images) {
    // The official server, in its own scratch image, as the leaf of a Canopy hub cluster.
    let r = Running::start("basic-hub-leaf.hcl", images, |m| {
        for s in m.servers.iter_mut().filter(|s| s.name == "leaf-us-west") {
            s.image = images.official();
        }
    })
    .expect("mixed up");
    let hub = client(&r, "hub-1", "app").await;
    let leaf = client(&r, "leaf-us-west", "app").await;
    let mut up = hub.subscribe("mixed.>").await.unwrap();
    hub.flush().await.unwrap();
    until_flow(&leaf, &mut up, "mixed.probe", Duration::from_secs(30)).await;
    assert_eq!(
        exactly(&leaf, &mut up, "mixed", 200).await,
        200,
        "official leaf → Canopy hub"
    );
    let mut down = leaf.subscribe("back.>").await.unwrap();
    leaf.flush().await.unwrap();
    until_flow(&hub, &mut down, "back.probe", Duration::from_secs(30)).await;
    assert_eq!(
        exactly(&hub, &mut down, "back", 200).await,
        200,
        "Canopy hub → official leaf"
    );
    let (_, hp) = r.ports("leaf-us-west");
    let varz = json(hp, "/varz").unwrap();
    assert_eq!(varz["version"], "2.15.1", "the leaf really is nats-server");
}

#[test]
#[cfg_attr(
    not(all(have_docker, have_compose)),
    ignore = "no Docker daemon answers here, or neither `docker compose` nor docker-compose is installed"
)]
fn generated_bundles_behave_in_containers_across_simulated_links() {
    assert!(
        docker_available(),
        "Docker and a compose CLI answered at build time but not now"
    );
    let start = Instant::now();
    let images = Images::build().expect("building images");
    eprintln!("images built in {:?}", start.elapsed());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        secure_hub(&images).await;
        multi_region(&images).await;
        mixed_official_leaf(&images).await;
    });
    drop(images);
    // Nothing left behind: no container, network or image of this run.
    let tag = format!("e2e{}", std::process::id());
    let leftovers = std::process::Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&leftovers.stdout);
    assert!(!names.contains(&tag), "containers left: {names}");
    let nets = std::process::Command::new("docker")
        .args(["network", "ls", "--format", "{{.Name}}"])
        .output()
        .unwrap();
    let nets = String::from_utf8_lossy(&nets.stdout);
    assert!(!nets.contains(&tag), "networks left: {nets}");
    eprintln!("container suite took {:?}", start.elapsed());
}
