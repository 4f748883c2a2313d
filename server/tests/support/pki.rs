//! A throwaway PKI for TLS tests: a CA, a server certificate for 127.0.0.1/localhost
//! and a client certificate, written as PEM files.
#![allow(dead_code)]

use super::TempDir;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    PublicKeyData,
};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// A CA, a server certificate for 127.0.0.1/localhost, and a client certificate,
/// written as PEM files.
pub struct Pki {
    pub dir: TempDir,
    pub client_spki_sha256: String,
    /// The SHA-256 of the server certificate's public key: what `pinned_certs` lists.
    pub server_spki_sha256: String,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = TempDir::new("pki");
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Canopy Test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut sp = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        sp.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let server = sp.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut cp = CertificateParams::new(vec!["app.client".into()]).unwrap();
        cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        cp.distinguished_name.push(DnType::CommonName, "app");
        cp.distinguished_name.push(DnType::OrganizationName, "Acme");
        cp.subject_alt_names.push(rcgen::SanType::Rfc822Name(
            "app@example.com".try_into().unwrap(),
        ));
        let client = cp.signed_by(&client_key, &issuer).unwrap();

        let w = |name: &str, pem: String| std::fs::write(dir.0.join(name), pem).unwrap();
        w("ca.pem", ca.pem());
        w("server.pem", server.pem());
        w("server-key.pem", server_key.serialize_pem());
        w("client.pem", client.pem());
        w("client-key.pem", client_key.serialize_pem());
        let client_spki_sha256 =
            format!("{:x}", Sha256::digest(client_key.subject_public_key_info()));
        let server_spki_sha256 =
            format!("{:x}", Sha256::digest(server_key.subject_public_key_info()));
        Pki {
            dir,
            client_spki_sha256,
            server_spki_sha256,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    pub fn tls_block(&self, extra: &str) -> String {
        format!(
            "tls {{\n cert_file: \"{}\"\n key_file: \"{}\"\n ca_file: \"{}\"\n {extra}\n}}",
            self.path("server.pem").display(),
            self.path("server-key.pem").display(),
            self.path("ca.pem").display()
        )
    }
}

/// Which port a raw TLS handshake is made with: the client and leaf ports send INFO
/// in clear first; the cluster port speaks TLS from the first byte and wants a
/// client certificate.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Port {
    Client,
    Leaf,
    Cluster,
}

/// What a raw TLS handshake agreed on.
pub struct Agreed {
    pub suite: String,
    pub version: String,
}

impl Pki {
    /// A TLS handshake with `port` by a client that trusts this CA and offers only
    /// `versions`, `suites` and `groups` (all of ring's when empty); with the
    /// cluster port it presents the server certificate. What was agreed, or the error.
    pub fn handshake(
        &self,
        kind: Port,
        port: u16,
        versions: &[&'static rustls::SupportedProtocolVersion],
        suites: &[rustls::SupportedCipherSuite],
        groups: &[&'static dyn rustls::crypto::SupportedKxGroup],
    ) -> Result<Agreed, String> {
        handshake(self, kind, port, versions, suites, groups)
    }
}

fn handshake(
    pki: &Pki,
    kind: Port,
    port: u16,
    versions: &[&'static rustls::SupportedProtocolVersion],
    suites: &[rustls::SupportedCipherSuite],
    groups: &[&'static dyn rustls::crypto::SupportedKxGroup],
) -> Result<Agreed, String> {
    use rustls_pki_types::pem::PemObject;
    use std::io::{BufRead, Write};
    use std::time::Duration;
    let mut provider = rustls::crypto::ring::default_provider();
    if !suites.is_empty() {
        provider.cipher_suites = suites.to_vec();
    }
    if !groups.is_empty() {
        provider.kx_groups = groups.to_vec();
    }
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(pki.path("ca.pem")).unwrap();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = if kind == Port::Cluster {
        let chain = rustls_pki_types::CertificateDer::pem_file_iter(pki.path("server.pem"))
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key =
            rustls_pki_types::PrivateKeyDer::from_pem_file(pki.path("server-key.pem")).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if kind != Port::Cluster {
        // The INFO in clear, read byte by byte so nothing of the handshake is eaten.
        let mut b = [0u8; 1];
        while std::io::Read::read(&mut tcp, &mut b).map_err(|e| e.to_string())? == 1
            && b[0] != b'\n'
        {}
    }
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut line = String::new();
    if kind == Port::Leaf {
        // Before CONNECT a leaf port says nothing more: the handshake is the answer.
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| e.to_string())?;
        // A refused handshake can end in an alert right after the client's Finished.
        tls.sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 64];
        match std::io::Read::read(&mut tls, &mut b) {
            Ok(0) => return Err("the server closed the connection".into()),
            Err(e)
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut =>
            {
                return Err(e.to_string())
            }
            _ => {}
        }
    } else if kind == Port::Cluster {
        std::io::BufReader::new(&mut tls)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if !line.starts_with("INFO ") {
            return Err(format!("no INFO: {line:?}"));
        }
    } else {
        tls.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
            .map_err(|e| e.to_string())?;
        std::io::BufReader::new(&mut tls)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if line != "PONG\r\n" {
            return Err(format!("no PONG: {line:?}"));
        }
    }
    Ok(Agreed {
        suite: format!("{:?}", tls.conn.negotiated_cipher_suite().unwrap().suite()),
        version: format!("{:?}", tls.conn.protocol_version().unwrap()),
    })
}
