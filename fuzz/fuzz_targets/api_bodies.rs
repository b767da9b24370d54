//! Every JSON body of the HTTP API: the first byte picks the endpoint, the
//! rest is the body; parsing and checking never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x0tta6bl4::api::bodies::Body;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let endpoint = Body::ALL[usize::from(pick) % Body::ALL.len()];
    let _ = endpoint.check(body);
});
