//! Routed frames as they arrive from a neighbour: decoding never panics, and
//! what decodes encodes back to the same bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use x0tta6bl4_actors::router::frame::Frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(Bytes::copy_from_slice(data)) {
        let again = Frame::decode(frame.encode()).expect("an encoded frame decodes");
        assert_eq!(again.encode(), frame.encode());
    }
});
