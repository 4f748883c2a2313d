//! INFO (server → client) and CONNECT (client → server) JSON, with the official
//! server's field names; empty optional fields are left out as it leaves them out.

use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct Info {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub proto: i32,
    pub git_commit: String,
    pub go: String,
    pub host: String,
    pub port: u16,
    pub headers: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub auth_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_verify: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_available: bool,
    pub max_payload: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub client_id: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_ip: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub ldm: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub connect_info: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_account: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub acc_is_sys: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Info {
    /// `INFO {...} \r\n` — with the space before CRLF the official server writes.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = b"INFO ".to_vec();
        // Serializing a struct of strings, numbers and bools cannot fail.
        line.extend_from_slice(&serde_json::to_vec(self).unwrap_or_default());
        line.extend_from_slice(b" \r\n");
        line
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Debug, Clone)]
pub struct Connect {
    #[serde(default = "yes")]
    pub verbose: bool,
    #[serde(default)]
    pub pedantic: bool,
    #[serde(default)]
    pub tls_required: bool,
    #[serde(default)]
    pub auth_token: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub pass: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub protocol: i64,
    #[serde(default = "yes")]
    pub echo: bool,
    #[serde(default)]
    pub sig: Option<String>,
    #[serde(default)]
    pub jwt: Option<String>,
    #[serde(default)]
    pub nkey: Option<String>,
    #[serde(default)]
    pub no_responders: bool,
    #[serde(default)]
    pub headers: bool,
}

impl Default for Connect {
    /// A client that never sent CONNECT: verbose, echo on, no headers.
    fn default() -> Self {
        serde_json::from_slice(b"{}").expect("empty CONNECT parses")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_line_ends_with_space_crlf_and_omits_empty_fields() {
        let info = Info {
            server_id: "N1".into(),
            port: 4222,
            max_payload: 1024,
            ..Default::default()
        };
        let line = String::from_utf8(info.to_line()).unwrap();
        assert!(line.starts_with("INFO {\"server_id\":\"N1\""));
        assert!(line.ends_with("} \r\n"));
        assert!(!line.contains("auth_required"));
        assert!(!line.contains("client_id"));
    }

    #[test]
    fn connect_defaults_match_the_official_server() {
        let c: Connect = serde_json::from_slice(br#"{"foo":1}"#).unwrap();
        assert!(c.verbose && c.echo && !c.headers && !c.pedantic);
    }
}
