//! The client-protocol parser on arbitrary bytes: it must never panic, never read past
//! the buffer, and always either wait, consume at least one byte, or refuse.
#![no_main]

use canopy_server::protocol::client::{parse, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_control_line: 256, max_payload: 1024 };
    let mut rest = data;
    while let Ok(Some((_, used))) = parse(rest, &limits) {
        assert!(used > 0 && used <= rest.len(), "an op must consume bytes it was given");
        rest = &rest[used..];
    }
});
