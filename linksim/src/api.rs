//! The HTTP API that changes a link live:
//!
//! | request | effect |
//! |---|---|
//! | `GET /` | the link: name, shape, forwards, counters |
//! | `POST /partition` | bytes stop both ways; new connections hang |
//! | `POST /heal` | traffic resumes (held bytes are delivered) |
//! | `POST /reset` | every open connection is cut with a TCP reset |
//! | `POST /shape` with JSON `{"latency":ms,"jitter":ms,"bandwidth_bps":n}` | new shape (fields given replace) |
//! | `GET /healthz` | `ok` |

use crate::Link;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
struct ShapeChange {
    latency: Option<f64>,
    jitter: Option<f64>,
    bandwidth_bps: Option<Option<u64>>,
}

fn ms(v: f64) -> Result<std::time::Duration, (StatusCode, String)> {
    if (0.0..=3_600_000.0).contains(&v) {
        Ok(std::time::Duration::from_secs_f64(v / 1000.0))
    } else {
        Err((StatusCode::BAD_REQUEST, format!("{v} ms is out of range")))
    }
}

pub fn router(link: Arc<Link>) -> Router {
    Router::new()
        .route("/", get(state))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/partition",
            post(|State(l): State<Arc<Link>>| async move {
                tracing::info!(link = %l.name, "partition");
                l.partition();
                Json(describe(&l))
            }),
        )
        .route(
            "/heal",
            post(|State(l): State<Arc<Link>>| async move {
                tracing::info!(link = %l.name, "heal");
                l.heal();
                Json(describe(&l))
            }),
        )
        .route(
            "/reset",
            post(|State(l): State<Arc<Link>>| async move {
                tracing::info!(link = %l.name, "reset");
                l.reset();
                Json(describe(&l))
            }),
        )
        .route("/shape", post(shape))
        .with_state(link)
}

fn describe(l: &Link) -> serde_json::Value {
    let forwards: Vec<serde_json::Value> = l
        .bound
        .read()
        .iter()
        .map(|(a, t)| serde_json::json!({"listen": a.to_string(), "target": t}))
        .collect();
    serde_json::json!({
        "name": l.name,
        "shape": l.shape(),
        "forwards": forwards,
        "stats": l.stats(),
    })
}

async fn state(State(l): State<Arc<Link>>) -> Json<serde_json::Value> {
    Json(describe(&l))
}

async fn shape(
    State(l): State<Arc<Link>>,
    Json(c): Json<ShapeChange>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let mut s = l.shape();
    if let Some(v) = c.latency {
        s.latency = ms(v)?;
    }
    if let Some(v) = c.jitter {
        s.jitter = ms(v)?;
    }
    if let Some(b) = c.bandwidth_bps {
        s.bandwidth_bps = b.filter(|b| *b > 0);
    }
    tracing::info!(link = %l.name, ?s, "shape");
    l.set_shape(s);
    Ok(Json(describe(&l)))
}

/// Serve the API on `addr` until the process ends.
pub async fn serve(
    link: Arc<Link>,
    addr: std::net::SocketAddr,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("API on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router(link)).await;
    });
    Ok(bound)
}
