//! The config language on arbitrary input: lexing, parsing and typed options must
//! never panic, overflow the stack or hang, whatever the bytes.
#![no_main]

use canopy_server::config::{load_str, Env};
use libfuzzer_sys::fuzz_target;

struct FuzzEnv;
impl Env for FuzzEnv {
    fn var(&self, name: &str) -> Option<String> {
        // A few variables so `$X` paths into the environment are exercised too.
        match name {
            "PORT" => Some("4222".into()),
            "MAP" => Some("{a: 1, b: [x, y]}".into()),
            "BAD" => Some("{unclosed".into()),
            _ => None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = load_str(text, "fuzz.conf", &FuzzEnv);
    }
});
