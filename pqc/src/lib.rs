//! Post-quantum protection for x0tta6bl4 traffic.
//!
//! - [`identity`]: a node's ML-DSA-65 and ML-KEM-768 keys, bound to its peer id
//!   by its libp2p key.
//! - [`handshake`]: the three-message hybrid handshake (X25519 + ML-KEM-768,
//!   transcripts signed with ML-DSA-65) between the ends of routed traffic.
//! - [`session`]: ChaCha20-Poly1305 frames with a replay window and rekeying.
//! - [`cookie`]: stateless cookies for handshakes under load.
//! - [`mode`]: the `pqc.mode` policy (required, preferred, off).
//!
//! Primitives are RustCrypto's (`ml-kem`, `ml-dsa`, `x25519-dalek`,
//! `chacha20poly1305`, `hkdf`, `sha2`, `hmac`, `subtle`); nothing here
//! implements a primitive.

pub mod cookie;
pub mod handshake;
pub mod identity;
pub mod mode;
pub mod reject;
pub mod replay;
pub mod session;
mod wiped;
mod wire;

pub use handshake::{Initiator, MessageKind, Responder, Response};
pub use identity::{KeyBinding, PeerKeys, PqIdentity, PqSeeds};
pub use mode::{Offer, PqcMode, Suite};
pub use reject::Reject;
pub use session::{RekeyPolicy, Session};
