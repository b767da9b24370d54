//! Post-quantum protection for x0tta6bl4 traffic.
//!
//! - [`identity`]: a node's ML-DSA-65 and X-Wing keys and their epoch, bound
//!   to its peer id by its libp2p key.
//! - [`handshake`]: the three-message handshake, version 2 (PQ-Noise KK with
//!   X-Wing, authenticated by decapsulation and key-confirmation MACs; X25519
//!   with libp2p signatures only for peers that prove they are classical-only).
//! - [`session`]: ChaCha20-Poly1305 frames with a replay window, rekeying and
//!   a hard lifetime.
//! - [`cookie`]: stateless cookies for handshakes under load.
//! - [`mode`]: the `pqc.mode` policy (required, preferred, off).
//! - [`xwing`]: the KEM.
//!
//! Primitives come from libcrux (`libcrux-kem`'s X-Wing, `libcrux-ml-dsa`)
//! and RustCrypto (`x25519-dalek`, `chacha20poly1305`, `hkdf`, `hmac`, `sha2`,
//! `subtle`); nothing here implements a primitive.

pub mod cookie;
pub mod handshake;
pub mod identity;
pub mod mode;
pub mod reject;
pub mod replay;
pub mod session;
mod wiped;
mod wire;
pub mod xwing;

pub use handshake::{Initiator, MessageKind, Responder, Response};
pub use identity::{KeyBinding, PeerKeys, PqIdentity, PqSeeds};
pub use mode::{Offer, PqcMode, Suite};
pub use reject::Reject;
pub use session::{RekeyPolicy, Session};
