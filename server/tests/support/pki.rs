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
