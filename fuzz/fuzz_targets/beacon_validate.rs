//! Beacons as gossipsub delivers them: parsing and every check never panic,
//! whoever signed them.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use x0tta6bl4_actors::libp2p::identity::Keypair;
use x0tta6bl4_actors::libp2p::PeerId;
use x0tta6bl4_actors::mesh::beacon::Beacon;

fn signer() -> PeerId {
    static SIGNER: OnceLock<PeerId> = OnceLock::new();
    *SIGNER.get_or_init(|| Keypair::ed25519_from_bytes([7; 32]).expect("key").public().to_peer_id())
}

fuzz_target!(|data: &[u8]| {
    let _ = Beacon::validate(data, Some(signer()));
    let _ = Beacon::validate(data, None);
});
