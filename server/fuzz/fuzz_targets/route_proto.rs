//! The route parser (RS+/RS-/RMSG/HMSG with an account) on arbitrary bytes: no panic,
//! no reading past the buffer, and every op consumes what it was given.
#![no_main]

use canopy_server::protocol::client::Limits;
use canopy_server::protocol::leaf::parse_route;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_control_line: 256, max_payload: 1024 };
    let mut rest = data;
    while let Ok(Some((_, _, used))) = parse_route(rest, &limits) {
        assert!(used > 0 && used <= rest.len(), "an op must consume bytes it was given");
        rest = &rest[used..];
    }
});
