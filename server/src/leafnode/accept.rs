//! Accepted leafnode links (the hub side): the INFO an official leaf requires, then
//! TLS when the leafnodes block has it (INFO first, or TLS first with
//! `handshake_first`), then the session.

use crate::conn::{Conn, Kind};
use crate::session::Start;
use crate::world::World;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

pub async fn serve(world: Arc<World>, mut stream: TcpStream, addr: SocketAddr) {
    use tokio::io::AsyncWriteExt;
    let _ = stream.set_nodelay(true);
    let conn = world.new_conn(addr, Kind::accepted_leaf());
    let cid = conn.cid;
    let tls = world.leaf_tls.clone();
    let mut info = world.leaf_info(cid, addr);
    if let Some(t) = &tls {
        info.tls_required = true;
        info.tls_verify = t.verify;
        info.auth_required |= t.verify;
    }
    let bytes = world.leaf_info_line(&info);
    tracing::info!("{addr} - lid:{cid} - Leafnode connection created");
    let Some(t) = tls else {
        conn.send(&bytes);
        let (rd, wr) = stream.into_split();
        run(world, conn, rd, wr, info.nonce, Vec::new()).await;
        return;
    };
    // INFO in plain text, then the leaf starts TLS — or, with handshake_first on both
    // ends, TLS straight away and INFO inside it.
    let tls_first = t.handshake_first == crate::config::tls::HandshakeFirst::On;
    if tls_first {
        conn.send(&bytes);
    } else if stream.write_all(&bytes).await.is_err() {
        return;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(t.config.clone());
    match tokio::time::timeout(t.timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => {
            if let Err(why) = t.check_pins(s.get_ref().1.peer_certificates()) {
                tracing::error!("{addr} - lid:{cid} - TLS leafnode handshake error: {why}");
                return;
            }
            let identities = crate::tls::cert_identities(s.get_ref().1.peer_certificates());
            let (rd, wr) = tokio::io::split(s);
            run(world, conn, rd, wr, info.nonce, identities).await;
        }
        Ok(Err(e)) => tracing::error!("{addr} - lid:{cid} - TLS leafnode handshake error: {e}"),
        Err(_) => tracing::error!("{addr} - lid:{cid} - TLS leafnode handshake timeout"),
    }
}

async fn run<R, W>(
    world: Arc<World>,
    conn: Arc<Conn>,
    rd: R,
    wr: W,
    nonce: String,
    identities: Vec<String>,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (addr, cid) = (conn.addr, conn.cid);
    world.admit(&conn);
    let start = Box::new(Start {
        nonce,
        identities,
        ..Start::default()
    });
    crate::session::run::<crate::session::LeafOps, _, _>(world, conn.clone(), rd, wr, start).await;
    tracing::info!(
        "{addr} - lid:{cid} - Leafnode connection closed: {}",
        conn.close_reason().unwrap_or("Client Closed")
    );
}
