//! What the world says about leaf links: the URLs and INFO they are given, and which
//! account a leaf's credentials log it in to.

use super::World;
use crate::account::Account;
use crate::protocol::info::Info;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl World {
    /// `leafnode_urls` for the INFO on leaf links: the advertised address, or ours.
    pub fn leaf_urls(&self) -> Vec<String> {
        let Some(l) = &self.options.leafnodes else {
            return Vec::new();
        };
        if l.no_advertise {
            return Vec::new();
        }
        let port = self.leaf_port.load(std::sync::atomic::Ordering::Relaxed);
        match &l.advertise {
            Some(a) => vec![a.clone()],
            None => {
                let host = l.host.clone().unwrap_or_else(|| self.options.host.clone());
                crate::listen::advertised_hosts(&host)
                    .into_iter()
                    .map(|h| format!("{h}:{port}"))
                    .collect()
            }
        }
    }

    pub fn leaf_auth_required(&self) -> bool {
        let l = self
            .options
            .leafnodes
            .as_ref()
            .and_then(|l| l.authorization.as_ref());
        l.is_some() || self.auth().required
    }

    /// The account a leaf's CONNECT binds to, and the permissions of the user it
    /// logged in as when that user comes from `authorization {}` or `accounts {}`
    /// (leafnode users carry none). With a leafnodes authorization: its nkey (a
    /// signature of this connection's `nonce`), users with accounts, or a single
    /// user/account; with `leafnodes { tls { verify_and_map: true } }` the leaf's
    /// verified certificate names the user (`cert_names`) and no password is asked.
    /// Without one, the main users, else `$G`. Blocking (bcrypt): run it off the async
    /// threads; no lock is held while a password is checked.
    pub fn authenticate_leaf(
        &self,
        c: &crate::protocol::info::Connect,
        nonce: &str,
        cert_names: &[String],
    ) -> Option<(Arc<Account>, Option<Arc<crate::auth::Permissions>>)> {
        let leafnodes = self.options.leafnodes.as_ref();
        if let Some(a) = leafnodes.and_then(|l| l.authorization.as_ref()) {
            let map_certs = leafnodes
                .and_then(|l| l.tls.as_ref())
                .is_some_and(|t| t.verify_and_map);
            let account = leaf_account(a, c, nonce, cert_names, map_certs)?;
            let found = self
                .accounts
                .read()
                .get(account.map(String::as_str).unwrap_or("$G"))
                .cloned();
            return found.map(|a| (a, None));
        }
        let auth = self.auth();
        auth.authenticate(c, nonce, cert_names)
            .filter(|b| auth.allows_connection_type(b.user.as_deref(), "LEAFNODE"))
            .map(|b| (b.account, b.permissions))
    }

    /// The INFO an accepted leaf link gets: the leafnode listener's address, and a
    /// fresh nonce for this connection.
    pub fn leaf_info(&self, cid: u64, addr: SocketAddr) -> Info {
        let mut info = self.info();
        info.proto = 1;
        info.client_id = cid;
        info.client_ip = addr.ip().to_string();
        let port = self.leaf_port.load(Ordering::Relaxed) as u16;
        let l = self.options.leafnodes.as_ref();
        let advertise = l.and_then(|l| l.advertise.as_deref());
        // The leafnode listener's own host (client_advertise is for clients only).
        let host = l
            .and_then(|l| l.host.clone())
            .unwrap_or_else(|| self.options.host.clone());
        (info.host, info.port) = super::advertised_host_port(advertise, &host, port);
        info.auth_required = self.leaf_auth_required();
        info.tls_required = false;
        info.tls_available = false;
        info.tls_verify = false;
        // Every leaf connection gets its own nonce, as clients do: a signature of it
        // proves the leaf's nkey now, and cannot be replayed on another connection.
        info.nonce = crate::auth::Auth::new_nonce();
        info
    }

    /// An INFO line for a leaf link, with the `leafnode_urls` an official leaf
    /// requires (it treats an INFO without them as the wrong port).
    pub fn leaf_info_line(&self, info: &Info) -> Vec<u8> {
        let mut v = serde_json::to_value(info).unwrap_or_default();
        v["leafnode_urls"] = serde_json::json!(self.leaf_urls());
        let mut line = b"INFO ".to_vec();
        line.extend_from_slice(v.to_string().as_bytes());
        line.extend_from_slice(b" \r\n");
        line
    }

    /// The subject this server subscribes to on every leaf link: seeing it come back
    /// as interest from a leaf means the links form a loop.
    pub fn loop_subject(&self) -> String {
        // 22 characters, stable for this server's life, like nats-server's.
        format!("$LDS.{}", &self.server_id[self.server_id.len() - 22..])
    }
}

/// Which account a leafnodes `authorization {}` binds these credentials to (`Some(None)`
/// is `$G`), or `None` when they do not log in.
fn leaf_account<'a>(
    a: &'a crate::config::auth::Authorization,
    c: &crate::protocol::info::Connect,
    nonce: &str,
    cert_names: &[String],
    map_certs: bool,
) -> Option<Option<&'a String>> {
    use crate::auth::password_matches;
    if map_certs {
        let entry = a.users.iter().find(|x| {
            x.user.as_ref().is_some_and(|u| {
                cert_names
                    .iter()
                    .any(|n| crate::auth::cert_name_matches(n, u))
            })
        })?;
        return Some(entry.account.as_ref());
    }
    if let Some(key) = &a.nkey {
        let signed =
            c.nkey.as_ref() == Some(key) && crate::auth::nkey_signed(key, c.sig.as_deref(), nonce);
        return signed.then_some(a.account.as_ref());
    }
    if let Some(u) = c.user.as_ref() {
        if let Some(entry) = a.users.iter().find(|x| x.user.as_ref() == Some(u)) {
            return password_matches(entry.password.as_deref(), c.pass.as_deref())
                .then_some(entry.account.as_ref());
        }
    }
    if a.user.is_some() {
        let ok = a.user == c.user && password_matches(a.password.as_deref(), c.pass.as_deref());
        return ok.then_some(a.account.as_ref());
    }
    a.users.is_empty().then_some(a.account.as_ref())
}
