//! A client of a cluster started from the command line only (no config file) rides
//! out its servers being stopped one after another with SIGTERM: it reconnects to a
//! survivor it learned from INFO `connect_urls`, and keeps its subscriptions. Run
//! through async-nats against canopy-server and nats-server alike, as client
//! libraries' own cluster tests run it.

mod support;
use futures::StreamExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{free_port, Impl, TempDir};

/// One server of the cluster, started as `-p -1` (a random client port) and found
/// by the port it logs.
struct Node {
    child: Child,
    name: String,
    port: u16,
    _dir: TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start(kind: Impl, name: &str, cluster_port: u16, routes: &[u16]) -> Node {
        let dir = TempDir::new("failover");
        let log = dir.0.join("server.log");
        let program = match kind {
            Impl::Canopy => env!("CARGO_BIN_EXE_canopy-server"),
            Impl::Official => "nats-server",
        };
        let routes: Vec<String> = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect();
        let child = Command::new(program)
            .args(["-a", "127.0.0.1", "-p", "-1", "-n", name])
            .args(["--cluster", &format!("nats://127.0.0.1:{cluster_port}")])
            .args(["--routes", &routes.join(",")])
            .args(["--cluster_name", "failover"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start server");
        let until = Instant::now() + Duration::from_secs(10);
        let port = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(port) = text
                .lines()
                .find(|l| l.contains("Listening for client connections on"))
                .and_then(|l| l.rsplit(':').next())
                .and_then(|p| p.trim().parse().ok())
            {
                break port;
            }
            assert!(Instant::now() < until, "{name} did not start: {text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        Node {
            child,
            name: name.to_string(),
            port,
            _dir: dir,
        }
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Publish on `via` until `sub` sees it, or `within` passes.
async fn delivered(
    via: &async_nats::Client,
    sub: &mut async_nats::Subscriber,
    within: Duration,
) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        let _ = via.publish("failover.check", "hi".into()).await;
        let _ = via.flush().await;
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
            return true;
        }
    }
    false
}

fn cluster(kind: Impl, size: usize) -> Vec<Node> {
    let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
    let nodes: Vec<Node> = (0..size)
        .map(|i| {
            let others: Vec<u16> = cluster_ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| *p)
                .collect();
            Node::start(kind, &format!("node{}", i + 1), cluster_ports[i], &others)
        })
        .collect();
    // No waiting for the mesh: the client connects at once, as launch helpers do,
    // and learns the other servers from the INFO updates that follow.
    nodes
}

async fn client_survives_servers_stopped_in_turn(kind: Impl, size: usize) {
    let mut nodes = cluster(kind, size);
    let nc = async_nats::ConnectOptions::new()
        .retain_servers_order()
        .reconnect_delay_callback(|_| Duration::ZERO)
        .connect(format!("nats://127.0.0.1:{}", nodes[0].port))
        .await
        .expect("connect");
    let mut sub = nc.subscribe("failover.>").await.unwrap();
    nc.flush().await.unwrap();
    // Every server but one is stopped in turn: always the one the client is on.
    for round in 0..size - 1 {
        let on = nc.server_info().server_name;
        let i = nodes
            .iter()
            .position(|n| n.name == on)
            .unwrap_or_else(|| panic!("{kind:?}: connected to unknown server {on}"));
        let mut gone = nodes.remove(i);
        gone.terminate();
        let start = Instant::now();
        let until = start + Duration::from_secs(10);
        loop {
            let now_on = nc.server_info().server_name;
            if nc.connection_state() == async_nats::connection::State::Connected
                && now_on != gone.name
            {
                break;
            }
            assert!(
                Instant::now() < until,
                "{kind:?} round {round}: no reconnect within 10 s after {} stopped (state {:?}, connect_urls {:?})",
                gone.name,
                nc.connection_state(),
                nc.server_info().connect_urls
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The subscription came along: a message published on another survivor
        // (or the only one) reaches it.
        let other = nodes
            .iter()
            .find(|n| n.name != nc.server_info().server_name)
            .unwrap_or(&nodes[0]);
        let via = async_nats::connect(format!("nats://127.0.0.1:{}", other.port))
            .await
            .expect("connect to a survivor");
        assert!(
            delivered(&via, &mut sub, Duration::from_secs(10)).await,
            "{kind:?} round {round}: the subscription was not restored on {}",
            nc.server_info().server_name
        );
        eprintln!(
            "{kind:?}: {} stopped, client on {} after {:?}",
            gone.name,
            nc.server_info().server_name,
            start.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reconnects_through_a_three_server_cluster_stopped_in_turn() {
    for kind in Impl::all() {
        client_survives_servers_stopped_in_turn(kind, 3).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reconnects_through_a_five_server_cluster_stopped_in_turn() {
    for kind in Impl::all() {
        client_survives_servers_stopped_in_turn(kind, 5).await;
    }
}
