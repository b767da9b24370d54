//! The node's own trust-domain CA, kept in sled (tree `svid`): generated on
//! first start, the same on every start after. It is the SVID source when no
//! SPIFFE Workload API is configured.

use std::time::Duration;

use thiserror::Error;

use super::ca::{CaError, IssuedSvid, TrustDomainCa};
use super::spiffe_id::SpiffeId;
use crate::store::{Store, StoreError};

const TREE: &str = "svid";
const KEY: &[u8] = b"ca-key";
const CERT: &[u8] = b"ca-cert";
const DOMAIN: &[u8] = b"ca-trust-domain";

/// Errors opening the stored CA.
#[derive(Debug, Error)]
pub enum LocalCaError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database failed.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// The stored CA could not be used or made.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The stored CA is another trust domain's.
    #[error("the data dir holds the CA of {stored}, not of {configured}; set svid.trust_domain to {stored} or move the data dir aside")]
    OtherDomain {
        /// The stored CA's trust domain.
        stored: String,
        /// The configured one.
        configured: String,
    },
    /// A stored value is not UTF-8.
    #[error("the stored CA is unreadable")]
    Unreadable,
}

/// Loads the CA of `trust_domain` from `store`, making one valid for
/// `lifetime` on first start.
pub fn load_or_create(store: &Store, trust_domain: &str, lifetime: Duration) -> Result<TrustDomainCa, LocalCaError> {
    let tree = store.tree(TREE)?;
    let text = |key: &[u8]| -> Result<Option<String>, LocalCaError> {
        tree.get(key)?
            .map(|v| String::from_utf8(v.to_vec()).map_err(|_| LocalCaError::Unreadable))
            .transpose()
    };
    if let (Some(domain), Some(key), Some(cert)) = (text(DOMAIN)?, text(KEY)?, text(CERT)?) {
        if domain != trust_domain {
            return Err(LocalCaError::OtherDomain {
                stored: domain,
                configured: trust_domain.to_string(),
            });
        }
        return Ok(TrustDomainCa::from_pem(trust_domain, &key, &cert)?);
    }
    let ca = TrustDomainCa::generate(trust_domain, lifetime)?;
    let mut batch = sled::Batch::default();
    batch.insert(DOMAIN, trust_domain.as_bytes());
    batch.insert(KEY, ca.key_pem().as_bytes());
    batch.insert(CERT, ca.bundle_pem().as_bytes());
    tree.apply_batch(batch)?;
    tree.flush()?;
    Ok(ca)
}

/// Where the SVID renewer gets SVIDs from.
pub trait SvidSource: Send {
    /// A new SVID for `id`.
    fn fetch(&mut self, id: &SpiffeId) -> Result<IssuedSvid, String>;
}

/// The built-in CA as an SVID source, issuing SVIDs of one lifetime.
pub struct LocalCa {
    /// The CA.
    pub ca: TrustDomainCa,
    /// Lifetime of each SVID.
    pub ttl: Duration,
}

impl SvidSource for LocalCa {
    fn fetch(&mut self, id: &SpiffeId) -> Result<IssuedSvid, String> {
        self.ca.issue(id, self.ttl).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_and_kept_for_its_trust_domain_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let first = load_or_create(&store, "mesh.test", Duration::from_secs(3600)).expect("made");
        let again = load_or_create(&store, "mesh.test", Duration::from_secs(3600)).expect("loaded");
        assert_eq!(first.bundle_pem(), again.bundle_pem());
        assert!(matches!(
            load_or_create(&store, "other.test", Duration::from_secs(3600)),
            Err(LocalCaError::OtherDomain { .. })
        ));
    }
}
