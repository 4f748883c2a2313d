//! Who may connect and what they may do: users with plain or bcrypt passwords,
//! tokens, `no_auth_user`, each bound to an account, with publish/subscribe permissions.

pub mod permissions;

use crate::account::{Account, GLOBAL};
use crate::config::Options;
use crate::protocol::info::Connect;
pub use permissions::Permissions;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

struct User {
    password: Option<String>,
    account: Arc<Account>,
    permissions: Option<Arc<Permissions>>,
    /// `allowed_connection_types`, upper case; empty allows every type.
    allowed_types: Vec<String>,
}

/// What a successful CONNECT binds the connection to.
#[derive(Clone)]
pub struct Binding {
    pub account: Arc<Account>,
    pub permissions: Option<Arc<Permissions>>,
    pub user: Option<String>,
}

pub struct Auth {
    users: HashMap<String, User>,
    /// Users that prove themselves by signing the INFO nonce, by public key.
    nkeys: HashMap<String, User>,
    token: Option<String>,
    no_auth_user: Option<String>,
    pub required: bool,
    pub timeout: Duration,
    /// `tls { verify_and_map: true }`: users are named by client certificates.
    map_certs: bool,
    global: Arc<Account>,
}

/// Compare secrets without leaking where they differ through timing.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `given` is the password `want`: plain text compared in constant time, or a
/// bcrypt hash. bcrypt is slow on purpose: call this off the async threads, under
/// `auth_permits`, with no lock held.
pub fn password_matches(want: Option<&str>, given: Option<&str>) -> bool {
    match (want, given) {
        (None, _) => true,
        (Some(want), Some(given)) if is_bcrypt(want) => {
            bcrypt::verify(given, want).unwrap_or(false)
        }
        (Some(want), Some(given)) => same_secret(want.as_bytes(), given.as_bytes()),
        (Some(_), None) => false,
    }
}

/// Whether `sig` (base64, URL-safe or standard, padded or not) is the ed25519
/// signature of `nonce` by the user nkey `nkey`.
pub fn nkey_signed(nkey: &str, sig: Option<&str>, nonce: &str) -> bool {
    use base64::Engine;
    let Some(public) = crate::nkey::decode_public(crate::nkey::PREFIX_USER, nkey) else {
        return false;
    };
    let Some(sig_text) = sig.map(|s| s.trim_end_matches('=')) else {
        return false;
    };
    let Ok(sig) = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig_text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(sig_text))
    else {
        return false;
    };
    // An empty nonce is never signed for: a signature over it could be replayed.
    !nonce.is_empty()
        && ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public)
            .verify(nonce.as_bytes(), &sig)
            .is_ok()
}

pub fn is_bcrypt(p: &str) -> bool {
    p.starts_with("$2a$") || p.starts_with("$2b$") || p.starts_with("$2y$")
}

impl Auth {
    pub fn new(o: &Options, accounts: &HashMap<String, Arc<Account>>) -> Auth {
        let global = accounts
            .get(GLOBAL)
            .cloned()
            .unwrap_or_else(|| Arc::new(Account::new(GLOBAL)));
        let mut users = HashMap::new();
        let default_perms = o
            .authorization
            .as_ref()
            .and_then(|a| a.default_permissions.as_ref());
        let mut nkeys = HashMap::new();
        // A user without permissions gets the default of the block it is defined in:
        // `authorization { default_permissions }` for its users, an account's own
        // `default_permissions` for that account's users (none otherwise), as in
        // nats-server.
        let mut add = |u: &crate::config::auth::User,
                       acc: Arc<Account>,
                       default: Option<&crate::config::auth::Permissions>| {
            let perms = u
                .permissions
                .as_ref()
                .or(default)
                .map(|p| Arc::new(Permissions::compile(p)));
            let entry = User {
                password: u.password.clone(),
                account: acc,
                permissions: perms,
                allowed_types: u.allowed_connection_types.clone(),
            };
            if let Some(key) = u.nkey.clone() {
                nkeys.insert(key, entry);
            } else if let Some(name) = u.user.clone() {
                users.insert(name, entry);
            }
        };
        if let Some(a) = &o.authorization {
            for u in &a.users {
                add(u, global.clone(), default_perms);
            }
        }
        for acc in &o.accounts {
            let Some(account) = accounts.get(&acc.name) else {
                continue;
            };
            for u in &acc.users {
                add(u, account.clone(), acc.default_permissions.as_ref());
            }
        }
        let single = o
            .authorization
            .as_ref()
            .and_then(|a| a.user.clone().map(|u| (u, a.password.clone())));
        if let Some((name, password)) = single {
            users.insert(
                name,
                User {
                    password,
                    account: global.clone(),
                    permissions: None,
                    allowed_types: Vec::new(),
                },
            );
        }
        let token = o.authorization.as_ref().and_then(|a| a.token.clone());
        let required = !users.is_empty() || !nkeys.is_empty() || token.is_some();
        let tls_timeout = o
            .tls
            .as_ref()
            .map(|t| t.timeout.unwrap_or(Duration::from_secs(2)) + Duration::from_secs(1));
        let timeout = o
            .authorization
            .as_ref()
            .and_then(|a| a.timeout)
            .or(tls_timeout)
            .unwrap_or(crate::config::options::DEFAULT_AUTH_TIMEOUT);
        Auth {
            users,
            nkeys,
            token,
            no_auth_user: o.no_auth_user.clone(),
            required,
            timeout,
            global,
            map_certs: o.tls.as_ref().is_some_and(|t| t.verify_and_map),
        }
    }

    /// Whether the user a binding names may connect as `kind` (`STANDARD` for
    /// clients, `LEAFNODE` for leaf links): its `allowed_connection_types`, if any.
    pub fn allows_connection_type(&self, user: Option<&str>, kind: &str) -> bool {
        let Some(name) = user else {
            return true;
        };
        self.users
            .get(name)
            .or_else(|| self.nkeys.get(name))
            .is_none_or(|u| u.allowed_types.is_empty() || u.allowed_types.iter().any(|t| t == kind))
    }

    /// Whether clients get a nonce to sign (nkey users are configured).
    pub fn uses_nonce(&self) -> bool {
        !self.nkeys.is_empty()
    }

    /// A fresh nonce for one connection's INFO.
    pub fn new_nonce() -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 11]>())
    }

    /// An nkey user signs the nonce with its ed25519 key; the signature comes base64
    /// (URL-safe or standard, padded or not) in CONNECT's `sig`.
    fn nkey_user(&self, c: &Connect, nonce: &str) -> Option<Binding> {
        let key = c.nkey.as_deref()?;
        let u = self.nkeys.get(key)?;
        if !nkey_signed(key, c.sig.as_deref(), nonce) {
            return None;
        }
        Some(Binding {
            account: u.account.clone(),
            permissions: u.permissions.clone(),
            user: Some(key.to_string()),
        })
    }

    /// The binding for a client that sent no credentials at all, where that is allowed.
    pub fn anonymous(&self) -> Option<Binding> {
        if !self.required {
            return Some(Binding {
                account: self.global.clone(),
                permissions: None,
                user: None,
            });
        }
        let name = self.no_auth_user.as_ref()?;
        let u = self.users.get(name)?;
        Some(Binding {
            account: u.account.clone(),
            permissions: u.permissions.clone(),
            user: Some(name.clone()),
        })
    }

    /// Check a CONNECT's credentials. bcrypt comparisons are slow by design, so the
    /// caller runs this off the async threads.
    pub fn authenticate(&self, c: &Connect, nonce: &str, cert_names: &[String]) -> Option<Binding> {
        if self.map_certs {
            // The verified client certificate names the user; no password is asked.
            let found = cert_names.iter().find_map(|name| {
                if let Some(u) = self.users.get(name) {
                    return Some((name.clone(), u));
                }
                self.users
                    .iter()
                    .find(|(user, _)| cert_name_matches(name, user))
                    .map(|(user, u)| (user.clone(), u))
            });
            return found.map(|(name, u)| Binding {
                account: u.account.clone(),
                permissions: u.permissions.clone(),
                user: Some(name),
            });
        }
        if !self.required {
            return self.anonymous();
        }
        if c.nkey.is_some() {
            return self.nkey_user(c, nonce);
        }
        if let Some(token) = &self.token {
            let given = c.auth_token.as_deref()?;
            return same_secret(given.as_bytes(), token.as_bytes()).then(|| Binding {
                account: self.global.clone(),
                permissions: None,
                user: None,
            });
        }
        let Some(name) = c.user.as_deref() else {
            if c.pass.is_none() && c.auth_token.is_none() && c.nkey.is_none() {
                return self.anonymous();
            }
            return None;
        };
        let u = self.users.get(name)?;
        password_matches(u.password.as_deref(), c.pass.as_deref()).then(|| Binding {
            account: u.account.clone(),
            permissions: u.permissions.clone(),
            user: Some(name.to_string()),
        })
    }
}

/// Whether a name a client certificate maps to (an email or DNS SAN, or its subject
/// DN) is the configured user `user`. A DN matches whatever the order of its RDNs.
pub fn cert_name_matches(name: &str, user: &str) -> bool {
    if name == user {
        return true;
    }
    if !user.contains('=') {
        return false;
    }
    let canon = |dn: &str| {
        let mut rdns: Vec<&str> = dn.split(',').map(str::trim).collect();
        rdns.sort_unstable();
        rdns.join(",")
    };
    canon(name) == canon(user)
}
