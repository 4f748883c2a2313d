//! One CA per topology (rcgen, ECDSA P-256); a certificate per server whose SANs
//! cover every name a peer dials (its own name, the link services that forward to
//! it, localhost and 127.0.0.1); and, with `leaf_auth = "mtls"`, a client
//! certificate per leaf remote whose CN is the user the hub maps it to.
//!
//! An existing CA is kept. A certificate is kept while the names it was issued for
//! (recorded in `pki/manifest.json`) are still the names it needs; `--rotate-certs`
//! re-issues every certificate under the same CA.

use super::layout::{cert_path, key_path, CA_CERT};
use crate::bundle::{Bundle, Existing, PRIVATE, PUBLIC};
use crate::model::{LeafAuth, Model};
use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::collections::BTreeMap;

pub const CA_KEY: &str = "pki/ca-key.pem";
const MANIFEST: &str = "pki/manifest.json";

/// What one certificate was issued for: its CN, SANs and usage.
fn describe(cn: &str, sans: &[String], client_only: bool) -> String {
    format!(
        "cn={cn} sans=[{}] usage={}",
        sans.join(","),
        if client_only {
            "client"
        } else {
            "server+client"
        }
    )
}

pub struct Options {
    pub rotate: bool,
    /// Validity of server and client certificates.
    pub days: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rotate: false,
            days: 825,
        }
    }
}

pub fn render(m: &Model, existing: &Existing, opts: &Options, bundle: &mut Bundle) -> Result<()> {
    if !m.tls {
        return Ok(());
    }
    let now = time::OffsetDateTime::now_utc();
    let (ca_pem, ca_key) = match (existing.text(CA_CERT), existing.text(CA_KEY)) {
        (Some(c), Some(k)) => (c, KeyPair::from_pem(&k).context("reading pki/ca-key.pem")?),
        _ => {
            let key = KeyPair::generate()?;
            let mut p = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, format!("{} Canopy CA", m.name));
            dn.push(DnType::OrganizationName, "Canopy");
            p.distinguished_name = dn;
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            p.not_before = now - time::Duration::hours(1);
            p.not_after = now + time::Duration::days(3650);
            let cert = p.self_signed(&key)?;
            (cert.pem(), key)
        }
    };
    bundle.add(CA_CERT, ca_pem.clone(), PUBLIC);
    bundle.add(CA_KEY, ca_key.serialize_pem(), PRIVATE);
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).context("reading pki/ca.pem as a CA")?;
    let old: BTreeMap<String, String> = existing
        .get(MANIFEST)
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default();
    let mut manifest = BTreeMap::new();

    // (file name, CN, DNS SANs, client only)
    let mut wanted: Vec<(String, String, Vec<String>, bool)> = Vec::new();
    for s in &m.servers {
        wanted.push((
            s.name.clone(),
            s.name.clone(),
            s.dns_names.iter().cloned().collect(),
            false,
        ));
    }
    if m.leaf_auth == LeafAuth::Mtls {
        for s in &m.servers {
            for r in &s.remotes {
                wanted.push((r.identity.clone(), r.identity.clone(), Vec::new(), true));
            }
        }
    }
    for (file, cn, sans, client_only) in wanted {
        let what = describe(&cn, &sans, client_only);
        let (cp, kp) = (cert_path(&file), key_path(&file));
        let keep = !opts.rotate
            && old.get(&file) == Some(&what)
            && existing.get(&cp).is_some()
            && existing.get(&kp).is_some();
        if keep {
            bundle.add(
                cp.clone(),
                existing.get(&cp).unwrap_or_default().to_vec(),
                PUBLIC,
            );
            bundle.add(
                kp.clone(),
                existing.get(&kp).unwrap_or_default().to_vec(),
                PRIVATE,
            );
        } else {
            let key = KeyPair::generate()?;
            let mut p = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, cn.clone());
            p.distinguished_name = dn;
            if !client_only {
                let mut names: Vec<SanType> = Vec::new();
                for n in &sans {
                    names.push(SanType::DnsName(n.clone().try_into()?));
                }
                names.push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
                p.subject_alt_names = names;
            }
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = if client_only {
                vec![ExtendedKeyUsagePurpose::ClientAuth]
            } else {
                // Servers dial each other (routes, regional hubs' remotes) with this
                // certificate too.
                vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ]
            };
            p.not_before = now - time::Duration::hours(1);
            p.not_after = now + time::Duration::days(opts.days);
            let cert = p.signed_by(&key, &issuer)?;
            bundle.add(cp, cert.pem(), PUBLIC);
            bundle.add(kp, key.serialize_pem(), PRIVATE);
        }
        manifest.insert(file, what);
    }
    let json = serde_json::to_string_pretty(&manifest)? + "\n";
    bundle.add(MANIFEST, json, PUBLIC);
    Ok(())
}
