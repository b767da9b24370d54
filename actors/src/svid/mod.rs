//! SPIFFE identity: SPIFFE IDs, the built-in trust-domain CA that issues
//! X.509-SVIDs, the validator that checks them (chain, SPIFFE rules,
//! validity with clock skew, revocation by CRL and OCSP), and the renewer actor.

pub mod actor;
pub mod ca;
pub mod config;
pub mod crl;
pub mod local_ca;
pub mod ocsp;
pub mod ocsp_wire;
pub mod renewal;
pub mod spiffe_id;
pub mod tls;
pub mod trust;
pub mod validate;
pub mod workload_api;

#[cfg(test)]
mod tests;

pub use actor::{HeldSvid, SvidActor, SvidHandle};
pub use ca::{IssuedSvid, Revoked, TrustDomainCa};
pub use config::SvidConfig;
pub use spiffe_id::{SpiffeId, SpiffeIdError};
pub use trust::Trust;
pub use validate::{Refusal, Usage, Validator, VerifiedSvid};

/// Whole seconds since the Unix epoch (0 before it).
pub fn unix_secs(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
