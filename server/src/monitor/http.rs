//! The HTTP monitoring listener (`http_port` / `http`): the endpoints operators
//! `curl | jq` on nats-server, with its paths, query options, status codes and JSON.

use super::{accountz, accstatz, connz_query, rfc3339, subsz, varz, ConnzQuery};
use crate::world::World;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

type Params = Query<HashMap<String, String>>;

/// Pretty JSON (two-space indent, as nats-server writes it). No JSONP: nats-server
/// 2.15 ignores `callback`, and wrapping the document in a script would let any web
/// page read it cross-origin.
fn json_response(v: &Value) -> Response {
    let body = serde_json::to_string_pretty(v).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn bad_request(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

fn count(world: &World, path: &str) {
    *world
        .http_req_stats
        .lock()
        .entry(path.to_string())
        .or_insert(0) += 1;
}

async fn varz_h(State(s): State<Arc<World>>) -> Response {
    count(&s, "/varz");
    json_response(&varz(&s))
}

async fn connz_h(State(s): State<Arc<World>>, Query(p): Params) -> Response {
    count(&s, "/connz");
    match ConnzQuery::from_params(&p) {
        Ok(q) => json_response(&connz_query(&s, &q)),
        Err(msg) => bad_request(msg),
    }
}

async fn healthz_h(State(s): State<Arc<World>>, Query(p): Params) -> Response {
    count(&s, "/healthz");
    // nats-server writes this one compact.
    let _ = p;
    (
        [(header::CONTENT_TYPE, "application/json")],
        json!({"status": "ok"}).to_string(),
    )
        .into_response()
}

async fn subsz_h(State(s): State<Arc<World>>, Query(p): Params) -> Response {
    count(&s, "/subsz");
    match subsz(&s, &p) {
        Ok(v) => json_response(&v),
        Err(msg) => bad_request(msg),
    }
}

async fn accountz_h(State(s): State<Arc<World>>, Query(p): Params) -> Response {
    count(&s, "/accountz");
    match accountz(&s, p.get("acc").map(String::as_str)) {
        Ok(v) => json_response(&v),
        Err(msg) => bad_request(msg),
    }
}

async fn accstatz_h(State(s): State<Arc<World>>, Query(p): Params) -> Response {
    count(&s, "/accstatz");
    let unused = p.get("unused").is_some_and(|v| v == "1" || v == "true");
    json_response(&accstatz(&s, unused))
}

async fn routez_h(State(s): State<Arc<World>>, Query(p): Params) -> Response {
    count(&s, "/routez");
    let subs = p
        .get("subs")
        .is_some_and(|v| v == "1" || v == "true" || v == "detail");
    json_response(&crate::monitor::routez(&s, subs))
}

async fn leafz_h(State(s): State<Arc<World>>, Query(p): Params) -> Response {
    count(&s, "/leafz");
    let subs = p.get("subs").is_some_and(|v| v == "1" || v == "true");
    json_response(&super::leafz(&s, subs, p.get("acc").map(String::as_str)))
}

async fn gatewayz_h(State(s): State<Arc<World>>) -> Response {
    count(&s, "/gatewayz");
    let v = json!({"server_id": s.server_id, "now": rfc3339(SystemTime::now()), "outbound_gateways": {}, "inbound_gateways": {}});
    json_response(&v)
}

async fn jsz_h(State(s): State<Arc<World>>) -> Response {
    count(&s, "/jsz");
    let v = json!({
        "memory": 0, "storage": 0, "reserved_memory": 0, "reserved_storage": 0, "accounts": 0, "ha_assets": 0,
        "api": {"level": 0, "total": 0, "errors": 0},
        "server_id": s.server_id, "now": rfc3339(SystemTime::now()), "disabled": true,
        "config": {"max_memory": 0, "max_storage": 0},
        "streams": 0, "consumers": 0, "messages": 0, "bytes": 0, "total": 0,
    });
    json_response(&v)
}

async fn metrics_h(State(s): State<Arc<World>>) -> Response {
    count(&s, "/metrics");
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        super::metrics::render(&s),
    )
        .into_response()
}

async fn index_h(State(s): State<Arc<World>>) -> Response {
    count(&s, "/");
    let links: String = [
        "varz", "connz", "routez", "gatewayz", "leafz", "subsz", "accountz", "accstatz", "jsz",
        "healthz",
    ]
    .iter()
    .map(|e| format!("<a href=\"./{e}\">{e}</a><br/>\n"))
    .collect();
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!(
            "<html><body><h1>canopy-server {}</h1>\n{links}</body></html>\n",
            env!("CARGO_PKG_VERSION")
        ),
    )
        .into_response()
}

pub fn router(world: Arc<World>) -> Router {
    let pages = pages();
    // `http_base_path: /nats` serves /nats/varz and friends, and nothing at /varz.
    let base = world
        .options
        .http_base_path
        .as_deref()
        .map(|b| format!("/{}", b.trim_matches('/')))
        .filter(|b| b != "/");
    let router = match base {
        Some(base) => Router::new().nest(&base, pages),
        None => pages,
    };
    router
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "404 page not found\n",
            )
        })
        .with_state(world)
}

fn pages() -> Router<Arc<World>> {
    Router::new()
        .route("/", get(index_h))
        .route("/varz", get(varz_h).post(varz_h))
        .route("/connz", get(connz_h))
        .route("/healthz", get(healthz_h))
        .route("/subsz", get(subsz_h))
        .route("/subscriptionsz", get(subsz_h))
        .route("/accountz", get(accountz_h))
        .route("/accstatz", get(accstatz_h))
        .route("/routez", get(routez_h))
        .route("/leafz", get(leafz_h))
        .route("/gatewayz", get(gatewayz_h))
        .route("/jsz", get(jsz_h))
        .route("/metrics", get(metrics_h))
}

/// Bind the monitoring listener; it serves until the server shuts down.
pub async fn start(
    world: Arc<World>,
    host: &str,
    port: i64,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = bind(host, port).await?;
    let addr = listener.local_addr()?;
    spawn_accept_loop(listener, world, None);
    tracing::info!("Starting http monitor on {addr}");
    Ok(addr)
}

/// `https_port` / `https`: the same endpoints over TLS, with the server's `tls {}` block.
pub async fn start_https(
    world: Arc<World>,
    host: &str,
    port: i64,
    tls: Arc<crate::tls::ServerTls>,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = bind(host, port).await?;
    let local = listener.local_addr()?;
    spawn_accept_loop(listener, world, Some(tls));
    tracing::info!("Starting https monitor on {local}");
    Ok(local)
}

async fn bind(host: &str, port: i64) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context;
    let port = if port == -1 { 0 } else { port };
    let port = u16::try_from(port).with_context(|| format!("invalid monitoring port {port}"))?;
    crate::listen::bind(host, port).await.map_err(|e| {
        anyhow::anyhow!("Can't start monitoring: can't listen to the monitor port: {e}")
    })
}

/// At most this many monitoring connections are served at once, so a crowd of idle
/// sockets on the monitoring port can never take the descriptors the client, leaf
/// and route ports need.
const MAX_MONITOR_CONNS: usize = 128;
/// A request's headers must arrive within this; an idle keep-alive waits no longer.
const MONITOR_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// No monitoring connection lives longer than this (a scraper just reconnects).
const MONITOR_CONN_LIFETIME: Duration = Duration::from_secs(60);

/// Accept monitoring connections until shutdown, each served in its own task (TLS
/// handshakes too, within the TLS timeout, so a slow client holds up no other).
fn spawn_accept_loop(
    listener: tokio::net::TcpListener,
    world: Arc<World>,
    tls: Option<Arc<crate::tls::ServerTls>>,
) {
    let shutdown = world.shutdown.clone();
    let app = router(world);
    let tls = tls.map(|t| (tokio_rustls::TlsAcceptor::from(t.config.clone()), t.timeout));
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_MONITOR_CONNS));
    tokio::spawn(async move {
        loop {
            // A permit before accepting: past the cap, connections wait in the
            // kernel's backlog and hold none of this process's descriptors.
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = shutdown.cancelled() => return,
            };
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
                },
                _ = shutdown.cancelled() => return,
            };
            let (app, tls) = (app.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    None => serve_connection(stream, app, permit).await,
                    Some((acceptor, timeout)) => {
                        if let Ok(Ok(s)) =
                            tokio::time::timeout(timeout, acceptor.accept(stream)).await
                        {
                            serve_connection(s, app, permit).await;
                        }
                    }
                }
            });
        }
    });
}

/// Serve one monitoring connection (HTTP/1.1), bounded in time, holding `permit`.
async fn serve_connection<I>(io: I, app: Router, permit: tokio::sync::OwnedSemaphorePermit)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(MONITOR_HEADER_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let _ = tokio::time::timeout(MONITOR_CONN_LIFETIME, conn).await;
    drop(permit);
}
