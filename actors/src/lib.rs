//! Supervised actix actors of an x0tta6bl4 mesh node, plus the domain types they share.
//!
//! - [`mesh`] owns the libp2p swarm: discovery through signed gossipsub beacons, dialing,
//!   link quality from ping, and the long-lived frame streams between neighbours.
//! - [`router`] turns beacons into a link-state graph, computes shortest paths with a
//!   loss-aware metric and a loop-free backup next hop, and forwards routed messages.
//! - [`breaker`] holds circuit breakers per (action, target), the action rate limit
//!   and the retry policy; [`alert`] is the one interface alerts go through.
//! - [`healer`] runs the MAPE-K self-healing loop over all of the above.
//! - [`store`] keeps what must survive a restart (identity key, peer book) in sled.
//! - [`supervision`] counts restarts of supervised actors.
//! - [`payments`] sells downloads for USDT (TRC-20) or TON through a Telegram bot.
//! - [`sync`] replicates shared state (quarantine list, revocations, flags) as
//!   CRDTs over gossipsub with anti-entropy.
//! - [`telemetry`] reads the XDP program's counters (or interface statistics),
//!   streams snapshots, and keeps the quarantine list in the XDP blocklist.
//!
//! The node binary (`x0tta6bl4`) wires these together and serves the HTTP API.

pub use libp2p;

pub mod alert;
pub mod alerter;
pub mod breaker;
pub mod buckets;
pub mod errors;
pub mod healer;
pub mod mesh;
pub mod payments;
pub mod policy;
pub mod router;
pub mod secure;
pub mod store;
pub mod supervision;
pub mod svid;
pub mod sync;
pub mod telemetry;
