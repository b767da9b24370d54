//! SPIFFE identity: SPIFFE IDs, the built-in trust-domain CA that issues
//! X.509-SVIDs, and the validator that checks them (chain, SPIFFE rules,
//! validity with clock skew, revocation by CRL).

pub mod ca;
pub mod spiffe_id;
pub mod validate;

#[cfg(test)]
mod tests;

pub use ca::{IssuedSvid, Revoked, TrustDomainCa};
pub use spiffe_id::{SpiffeId, SpiffeIdError};
pub use validate::{Refusal, Usage, Validator, VerifiedSvid};
