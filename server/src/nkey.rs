//! NKey public-key encoding: a type prefix byte, the 32-byte ed25519 key and a CRC16,
//! in RFC 4648 base32 without padding (56 characters). Servers are `N...`, users `U...`.

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

pub const PREFIX_SERVER: u8 = 13 << 3;
pub const PREFIX_USER: u8 = 20 << 3;

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn base32(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn unbase32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Encode a 32-byte public key with its type prefix.
pub fn encode_public(prefix: u8, key: &[u8; 32]) -> String {
    let mut raw = Vec::with_capacity(35);
    raw.push(prefix);
    raw.extend_from_slice(key);
    let crc = crc16(&raw);
    raw.extend_from_slice(&crc.to_le_bytes());
    base32(&raw)
}

/// Decode a public nkey of the given type, checking its CRC.
pub fn decode_public(prefix: u8, s: &str) -> Option<[u8; 32]> {
    let raw = unbase32(s)?;
    if raw.len() != 35 || raw[0] != prefix {
        return None;
    }
    let crc = u16::from_le_bytes([raw[33], raw[34]]);
    if crc16(&raw[..33]) != crc {
        return None;
    }
    raw[1..33].try_into().ok()
}

/// A fresh random server id (`N...`).
pub fn random_server_id() -> String {
    let key: [u8; 32] = rand::random();
    encode_public(PREFIX_SERVER, &key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_look_like_official_ones_and_round_trip() {
        let id = random_server_id();
        assert_eq!(id.len(), 56);
        assert!(id.starts_with('N'));
        assert!(decode_public(PREFIX_SERVER, &id).is_some());
        assert!(decode_public(PREFIX_USER, &id).is_none());
    }

    #[test]
    fn a_known_user_nkey_decodes() {
        // From the official documentation's examples of user public keys.
        let k = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4";
        assert!(decode_public(PREFIX_USER, k).is_some());
        let mut bad = k.to_string();
        bad.replace_range(10..11, "A");
        assert!(decode_public(PREFIX_USER, &bad).is_none());
    }
}
