//! docs/PROTOCOL.md stays true to the code: its example beacon and example
//! frame decode with the node's own decoders, and encode back to the bytes the
//! document shows.

use bytes::Bytes;
use x0tta6bl4_actors::mesh::beacon::Beacon;
use x0tta6bl4_actors::router::frame::{Frame, FrameKind};

fn document() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    std::fs::read_to_string(path).expect("docs/PROTOCOL.md")
}

/// The body of the fenced block whose info string is `info`, and the body of
/// the next fenced block after it.
fn blocks<'a>(doc: &'a str, info: &str) -> (&'a str, Option<&'a str>) {
    let fence = format!("```{info}\n");
    let start = doc.find(&fence).unwrap_or_else(|| panic!("no ```{info} block")) + fence.len();
    let end = start + doc[start..].find("\n```").expect("block closed");
    let after = &doc[end + 4..];
    let next = after.find("```").and_then(|open| {
        let body = open + after[open..].find('\n')? + 1;
        Some(&after[body..body + after[body..].find("\n```")?])
    });
    (&doc[start..end], next)
}

#[test]
fn the_example_beacon_validates_and_its_compact_form_is_what_the_node_sends() {
    let doc = document();
    let (pretty, compact) = blocks(&doc, "json beacon-example");
    let compact = compact.expect("the compact form follows the example");
    let beacon: Beacon = serde_json::from_str(pretty).expect("the example parses as a beacon");
    assert_eq!(String::from_utf8(beacon.encode()).expect("utf-8"), compact);
    let author = beacon.peer_id.parse().expect("peer id");
    let valid = Beacon::validate(compact.as_bytes(), Some(author)).expect("the example validates");
    assert_eq!(valid.name, "edge-01");
    assert_eq!((valid.addrs.len(), valid.links.len()), (3, 2));
    assert!(valid.links[1].avoided && !valid.links[0].avoided);
    let other: libp2p::PeerId = valid.links[0].peer;
    assert!(
        Beacon::validate(compact.as_bytes(), Some(other)).is_err(),
        "signed by another peer: refused"
    );
}

#[test]
fn the_example_frame_decodes_to_the_documented_fields_and_encodes_back() {
    let doc = document();
    let (hex, _) = blocks(&doc, "hex frame-example");
    let bytes: Vec<u8> = hex
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect();
    assert_eq!(bytes.len(), 106);
    let frame = Frame::decode(Bytes::from(bytes.clone())).expect("the example decodes");
    assert_eq!(frame.kind, FrameKind::Probe);
    assert_eq!((frame.ttl, frame.hops, frame.id), (16, 1, 0x2c5e_8a1f_03b9_4d67));
    assert_eq!(
        frame.src.to_string(),
        "12D3KooWQ4NF6WXmKngAjDVKqBVQ36Y66x2PyZt9UMy3Shrzf1re"
    );
    assert_eq!(
        frame.dst.to_string(),
        "12D3KooWCnkHLEAs2iy1THTrjhgoSrkTjaxjYH3hUXcJULcaXsFu"
    );
    assert_eq!(frame.payload.len(), 16);
    assert_eq!(frame.encode().to_vec(), bytes);
}
