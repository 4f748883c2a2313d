//! Passwords: random on the first run, kept on the next. Configs carry only their
//! bcrypt hashes, and the hash of one password is the same on every run (its salt is
//! derived from the name and the password), so a re-run leaves every file identical.

use super::layout::psk_path;
use crate::bundle::{Bundle, Existing, Secret, Secrets, PRIVATE};
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// bcrypt cost, as `nats server passwd` uses.
pub const BCRYPT_COST: u32 = 11;

pub fn password_path(name: &str) -> String {
    format!("secrets/{name}.password")
}

const HASHES: &str = "secrets/bcrypt-hashes.json";

/// A secret an earlier run wrote, if it is there and not blank.
fn kept(existing: &Existing, path: &str) -> Option<String> {
    existing
        .text(path)
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
}

/// A 32-character alphanumeric password (190 bits), safe in URLs and configs.
fn random_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

fn salt(name: &str, password: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"canopy bcrypt salt\0");
    h.update(name.as_bytes());
    h.update(b"\0");
    h.update(password.as_bytes());
    let d = h.finalize();
    let mut s = [0u8; 16];
    s.copy_from_slice(&d[..16]);
    s
}

fn hash(name: &str, password: &str) -> String {
    bcrypt::hash_with_salt(password, BCRYPT_COST, salt(name, password))
        .map(|h| h.format_for_version(bcrypt::Version::TwoA))
        .unwrap_or_default()
}

/// Passwords for `names`, reusing what `existing` holds; hashes are computed once
/// and cached beside the passwords (they are slow by design).
pub fn render(names: &[String], existing: &Existing, bundle: &mut Bundle) -> Secrets {
    let cached: BTreeMap<String, String> = existing
        .get(HASHES)
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default();
    let mut out = Secrets::default();
    let mut todo: Vec<(String, String)> = Vec::new();
    for name in names {
        let password = kept(existing, &password_path(name)).unwrap_or_else(random_password);
        match cached.get(name) {
            Some(h) if cached_hash_fits(name, &password, h) => {
                out.by_name.insert(
                    name.clone(),
                    Secret {
                        password,
                        bcrypt: h.clone(),
                    },
                );
            }
            _ => todo.push((name.clone(), password)),
        }
    }
    // bcrypt at cost 11 is ~0.1 s a hash: spread fresh ones over the cores.
    let hashed: Vec<(String, String, String)> = std::thread::scope(|s| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = todo.len().div_ceil(threads).max(1);
        let handles: Vec<_> = todo
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(n, p)| (n.clone(), p.clone(), hash(n, p)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    for (name, password, bcrypt) in hashed {
        out.by_name.insert(name, Secret { password, bcrypt });
    }
    let mut hashes = BTreeMap::new();
    for (name, s) in &out.by_name {
        bundle.add(password_path(name), format!("{}\n", s.password), PRIVATE);
        hashes.insert(name.clone(), s.bcrypt.clone());
    }
    let json = serde_json::to_string_pretty(&hashes).unwrap_or_default() + "\n";
    bundle.add(HASHES, json, PRIVATE);
    out
}

/// A cached hash counts only if it was made from this name and password: its salt
/// is the one they derive. The salt's encoding does not depend on the cost, so a
/// cost-4 hash (about a millisecond) gives it.
fn cached_hash_fits(name: &str, password: &str, cached: &str) -> bool {
    let Ok(parts) = bcrypt::hash_with_salt("", 4, salt(name, password)) else {
        return false;
    };
    cached
        .strip_prefix(&format!("$2a${BCRYPT_COST:02}$"))
        .is_some_and(|rest| rest.starts_with(&parts.get_salt()))
}

/// A pre-shared key for each VPN link: random on the first run, kept on the next.
/// 32 characters, a letter first (AWS refuses a key that starts with 0).
pub fn vpn_keys(links: &[String], existing: &Existing, bundle: &mut Bundle) {
    for link in links {
        let path = psk_path(link);
        let key = kept(existing, &path)
            .filter(|k| k.len() >= 8)
            .unwrap_or_else(|| {
                let mut rng = rand::rng();
                let first = rand::Rng::random_range(&mut rng, b'a'..=b'z') as char;
                format!("{first}{}", Alphanumeric.sample_string(&mut rng, 31))
            });
        bundle.add(path, format!("{key}\n"), PRIVATE);
    }
}
