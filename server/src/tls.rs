//! rustls (ring) configurations from `tls {}` options, and the checks rustls does not
//! do for us: certificate pinning by SPKI fingerprint.

use crate::config::tls::{HandshakeFirst, TlsOptions};
use anyhow::{anyhow, Context};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// Everything the client listener needs to speak TLS.
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub verify: bool,
    pub handshake_first: HandshakeFirst,
    pub timeout: Duration,
    pinned: Vec<String>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `min_version: "1.3"` allows TLS 1.3 alone; rustls never speaks below 1.2, so every
/// other minimum is met by 1.2 and 1.3.
fn versions(t: Option<&TlsOptions>) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    static TLS12_UP: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS12, &rustls::version::TLS13];
    match t.and_then(|t| t.min_version.as_deref()) {
        Some("1.3") => &TLS13_ONLY,
        _ => &TLS12_UP,
    }
}

/// ring's provider cut to a block's `cipher_suites` (TLS 1.2 suites; TLS 1.3 suites
/// stay, as in nats-server) and `curve_preferences` (in that order). The names were
/// checked when the config was read.
fn provider_for(t: Option<&TlsOptions>) -> Arc<rustls::crypto::CryptoProvider> {
    use crate::config::tls::{CURVES, TLS12_SUITES};
    let Some(t) = t else { return provider() };
    let mut p = rustls::crypto::ring::default_provider();
    if !t.cipher_suites.is_empty() {
        p.cipher_suites
            .retain(|s| s.version() == &rustls::version::TLS13);
        p.cipher_suites
            .extend(t.cipher_suites.iter().filter_map(|name| {
                TLS12_SUITES
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, suite)| *suite)
            }));
    }
    if !t.curve_preferences.is_empty() {
        p.kx_groups = t
            .curve_preferences
            .iter()
            .filter_map(|name| CURVES.iter().find(|(n, _)| n == name).map(|(_, g)| *g))
            .collect();
    }
    Arc::new(p)
}

impl ServerTls {
    pub fn from_options(t: &TlsOptions) -> anyhow::Result<ServerTls> {
        let from_flags;
        let loaded = match &t.loaded {
            Some(l) => l,
            None => {
                from_flags = crate::config::tls::load_files(t).map_err(|e| anyhow!(e))?;
                &from_flags
            }
        };
        let key = loaded
            .key
            .as_ref()
            .ok_or_else(|| anyhow!("TLS needs cert_file and key_file"))?
            .clone_key();
        let builder = ServerConfig::builder_with_provider(provider_for(Some(t)))
            .with_protocol_versions(versions(Some(t)))?;
        let builder = if t.verify || t.verify_and_map {
            let mut roots = RootCertStore::empty();
            for ca in &loaded.roots {
                roots
                    .add(ca.clone())
                    .context("adding ca_file certificate")?;
            }
            if roots.is_empty() {
                return Err(anyhow!(
                    "tls verify needs ca_file: the CA that signs client certificates"
                ));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .context("building the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = builder
            .with_single_cert(loaded.chain.clone(), key)
            .context("the certificate and key do not form a usable pair")?;
        Ok(ServerTls {
            config: Arc::new(config),
            verify: t.verify || t.verify_and_map,
            handshake_first: t.handshake_first.clone(),
            timeout: t.timeout.unwrap_or(Duration::from_secs(2)),
            pinned: t.pinned_certs.clone(),
        })
    }

    /// With `pinned_certs`, the peer's certificate must be one of them.
    pub fn check_pins(&self, peer: Option<&[CertificateDer<'static>]>) -> Result<(), String> {
        check_pins(&self.pinned, peer)
    }
}

/// With `pinned` fingerprints, the peer's certificate must be one of them: the SHA-256
/// of its SubjectPublicKeyInfo, hex, as nats-server compares it. Accepted links and
/// the links this server dials (leaf remotes, routes) are checked alike.
pub fn check_pins(
    pinned: &[String],
    peer: Option<&[CertificateDer<'static>]>,
) -> Result<(), String> {
    if pinned.is_empty() {
        return Ok(());
    }
    let leaf = peer
        .and_then(|c| c.first())
        .ok_or("no peer certificate to check against pinned_certs")?;
    let cert = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("unreadable peer certificate: {e}"))?;
    let fp = format!(
        "{:x}",
        Sha256::digest(cert.subject_public_key_info().as_ref())
    );
    if pinned.contains(&fp) {
        Ok(())
    } else {
        Err(format!("peer certificate {fp} is not in pinned_certs"))
    }
}

/// Names a client certificate can be mapped to a user by (`verify_and_map`), in the
/// order nats-server tries them: e-mail SANs, DNS SANs, then the subject DN written
/// as Go writes it (RFC 2253 order, most specific first: `CN=app,O=Acme`).
pub fn cert_identities(peer: Option<&[CertificateDer<'static>]>) -> Vec<String> {
    use x509_parser::prelude::*;
    let Some(leaf) = peer.and_then(|c| c.first()) else {
        return Vec::new();
    };
    let Ok((_, cert)) = X509Certificate::from_der(leaf.as_ref()) else {
        return Vec::new();
    };
    let mut emails = Vec::new();
    let mut dns = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::RFC822Name(e) => emails.push(e.to_string()),
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                _ => {}
            }
        }
    }
    let mut rdns: Vec<String> = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let key = match oid.as_str() {
                "2.5.4.3" => "CN".to_string(),
                "2.5.4.10" => "O".to_string(),
                "2.5.4.11" => "OU".to_string(),
                "2.5.4.6" => "C".to_string(),
                "2.5.4.7" => "L".to_string(),
                "2.5.4.8" => "ST".to_string(),
                "2.5.4.9" => "STREET".to_string(),
                "2.5.4.17" => "POSTALCODE".to_string(),
                "2.5.4.5" => "SERIALNUMBER".to_string(),
                other => other.to_string(),
            };
            let value = attr.as_str().unwrap_or_default().replace(',', "\\,");
            rdns.push(format!("{key}={value}"));
        }
    }
    rdns.reverse();
    let mut out = emails;
    out.extend(dns);
    if !rdns.is_empty() {
        out.push(rdns.join(","));
    }
    out
}

/// The TLS client side of a leaf remote: trust `ca_file`, present `cert_file`/`key_file`
/// when the hub verifies clients, and check the hub's name against the URL host —
/// unless `insecure`, which skips verification (and says so in the log).
pub fn client_config(t: Option<&TlsOptions>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let from_files;
    let loaded = match t.and_then(|t| t.loaded.as_ref()) {
        Some(l) => Some(l),
        None => match t {
            Some(t) => {
                from_files = crate::config::tls::load_files(t).map_err(|e| anyhow!(e))?;
                Some(&from_files)
            }
            None => None,
        },
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider_for(t))
        .with_protocol_versions(versions(t))?;
    let builder = if t.is_some_and(|t| t.insecure) {
        tracing::warn!("TLS verification of the leafnode hub is disabled (insecure: true)");
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        for ca in loaded.map(|l| l.roots.as_slice()).unwrap_or_default() {
            roots
                .add(ca.clone())
                .context("adding ca_file certificate")?;
        }
        if roots.is_empty() {
            return Err(anyhow!(
                "a TLS leafnode remote needs ca_file (the CA that signed the hub's certificate)"
            ));
        }
        builder.with_root_certificates(roots)
    };
    let config = match loaded.and_then(|l| l.key.as_ref().map(|k| (l.chain.clone(), k.clone_key())))
    {
        Some((chain, key)) if !chain.is_empty() => builder.with_client_auth_cert(chain, key)?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `insecure: true`: accept any server certificate (signatures are still checked).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tls::LoadedTls;

    /// A CA-signed certificate for 127.0.0.1, in memory: the hub's side of a handshake.
    fn hub_identity() -> (LoadedTls, Vec<CertificateDer<'static>>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let loaded = LoadedTls {
            chain: vec![cert.der().clone()],
            key: Some(Arc::new(
                rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )),
            roots: Vec::new(),
        };
        (loaded, vec![ca.der().clone()])
    }

    /// A server that speaks only `versions`, `suites` and `groups` (all of ring's when
    /// empty), and whether the dialling side's `client_config(t)` completes a handshake.
    fn dial(
        t: &TlsOptions,
        versions: &[&'static rustls::SupportedProtocolVersion],
        suites: &[rustls::SupportedCipherSuite],
        groups: &[&'static dyn rustls::crypto::SupportedKxGroup],
    ) -> bool {
        let (hub, roots) = hub_identity();
        let mut p = rustls::crypto::ring::default_provider();
        if !suites.is_empty() {
            p.cipher_suites = suites.to_vec();
        }
        if !groups.is_empty() {
            p.kx_groups = groups.to_vec();
        }
        let server = ServerConfig::builder_with_provider(Arc::new(p))
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(hub.chain.clone(), hub.key.as_ref().unwrap().clone_key())
            .unwrap();
        let mut t = t.clone();
        t.loaded = Some(LoadedTls {
            chain: Vec::new(),
            key: None,
            roots,
        });
        let client = client_config(Some(&t)).unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut c = rustls::ClientConnection::new(client, name).unwrap();
        let mut s = rustls::ServerConnection::new(Arc::new(server)).unwrap();
        // Pump the handshake through memory until both are done or one fails.
        for _ in 0..20 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                s.read_tls(&mut buf.as_slice()).unwrap();
                if s.process_new_packets().is_err() {
                    return false;
                }
            }
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                c.read_tls(&mut buf.as_slice()).unwrap();
                if c.process_new_packets().is_err() {
                    return false;
                }
            }
            if !c.is_handshaking() && !s.is_handshaking() {
                return true;
            }
        }
        false
    }

    /// `cipher_suites`, `curve_preferences` and `min_version` in a leaf remote's or the
    /// cluster's tls block hold on the links this server dials: a hub that offers only
    /// something else cannot be joined, and one that offers a listed one can.
    #[test]
    fn dialled_links_offer_only_the_listed_suites_curves_and_versions() {
        use rustls::crypto::ring::{cipher_suite as cs, kx_group};
        use rustls::version::{TLS12, TLS13};
        let listed = TlsOptions {
            cipher_suites: vec!["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".into()],
            ..Default::default()
        };
        let aes256 = [cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384];
        let aes128 = [cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256];
        assert!(dial(&listed, &[&TLS12], &aes256, &[]));
        assert!(!dial(&listed, &[&TLS12], &aes128, &[]));
        let curve = TlsOptions {
            curve_preferences: vec!["CurveP384".into()],
            ..Default::default()
        };
        assert!(dial(&curve, &[&TLS13], &[], &[kx_group::SECP384R1]));
        assert!(!dial(&curve, &[&TLS13], &[], &[kx_group::X25519]));
        let tls13 = TlsOptions {
            min_version: Some("1.3".into()),
            ..Default::default()
        };
        assert!(dial(&tls13, &[&TLS13], &[], &[]));
        assert!(!dial(&tls13, &[&TLS12], &[], &[]));
        assert!(dial(&TlsOptions::default(), &[&TLS12], &[], &[]));
    }
}
