//! Where files live in the bundle, and which of them a server needs: the paths that
//! the renderer writing a file and the renderers pointing at it agree on.

use crate::model::{LeafAuth, Model, Server};

pub const CA_CERT: &str = "pki/ca.pem";

/// The path of a server's config in the bundle.
pub fn conf_path(server: &str) -> String {
    format!("conf/{server}.conf")
}

pub fn cert_path(name: &str) -> String {
    format!("pki/{name}.pem")
}

pub fn key_path(name: &str) -> String {
    format!("pki/{name}-key.pem")
}

/// A VPN link's pre-shared key.
pub fn psk_path(link: &str) -> String {
    format!("secrets/vpn-{link}.psk")
}

/// The files a server's container needs, and nothing else (no CA key, no other
/// server's key, no secrets).
pub fn server_files(m: &Model, s: &Server) -> Vec<String> {
    let mut v = vec![conf_path(&s.name)];
    if m.tls {
        v.push(CA_CERT.to_string());
        v.push(cert_path(&s.name));
        v.push(key_path(&s.name));
        if m.leaf_auth == LeafAuth::Mtls {
            for r in &s.remotes {
                v.push(cert_path(&r.identity));
                v.push(key_path(&r.identity));
            }
        }
    }
    v
}
