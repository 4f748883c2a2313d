//! Dialling another server: where a `nats-route://` or `nats-leaf://` URL points and
//! which credentials it carries, the TLS client handshake with its server name, and
//! the peer's first line read without consuming anything after it.

pub struct Target {
    pub host_port: String,
    pub user: Option<String>,
    pub pass: Option<String>,
}

/// `nats-leaf://user:pass@host:port` → where to dial and which credentials to send.
pub fn target(url: &str) -> Option<Target> {
    target_with_port(url, 7422)
}

/// `scheme://user:pass@host[:port]`, with `default_port` where none is given.
pub fn target_with_port(url: &str, default_port: u16) -> Option<Target> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, pass) = match userinfo.map(|u| {
        u.split_once(':')
            .map(|(a, b)| (a, Some(b)))
            .unwrap_or((u, None))
    }) {
        Some((u, p)) => (Some(u.to_string()), p.map(str::to_string)),
        None => (None, None),
    };
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:{default_port}")
    };
    Some(Target {
        host_port,
        user,
        pass,
    })
}

pub async fn read_line<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut line = Vec::with_capacity(1024);
    let mut byte = [0u8; 1];
    while line.len() < 64 * 1024 {
        if stream.read(&mut byte).await? == 0 {
            return Err(anyhow::anyhow!("the hub closed the connection"));
        }
        line.push(byte[0]);
        if byte[0] == b'\n' {
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
    }
    Err(anyhow::anyhow!("the hub's INFO line is too long"))
}

/// The TLS server name for a `host:port` (brackets of an IPv6 literal dropped).
pub fn server_name(host_port: &str) -> anyhow::Result<rustls_pki_types::ServerName<'static>> {
    let host = host_port
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(host_port)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    rustls_pki_types::ServerName::try_from(host)
        .map_err(|e| anyhow::anyhow!("bad TLS server name: {e}"))
}
