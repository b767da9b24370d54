//! `[svid]`: the node's SPIFFE identity.

use serde::{Deserialize, Serialize};

/// Settings of the SVID renewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SvidConfig {
    /// Whether the node holds an X.509-SVID at all.
    pub enabled: bool,
    /// The trust domain (`spiffe://<trust domain>/node/<peer id>`).
    pub trust_domain: String,
    /// Lifetime of the SVIDs the built-in CA issues, seconds.
    pub ttl_secs: u64,
    /// Share of the lifetime left when the SVID is renewed (SPIRE's 0.5), with
    /// ±10 % jitter so a fleet does not renew in step.
    pub renew_at: f64,
    /// Lifetime of a CA the node generates for itself, days.
    pub ca_days: u64,
}

impl Default for SvidConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            trust_domain: "x0tta6bl4.mesh".into(),
            ttl_secs: 3600,
            renew_at: 0.5,
            ca_days: 365,
        }
    }
}

impl SvidConfig {
    /// The first thing wrong with it, named by its key.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if let Err(e) = super::spiffe_id::check_trust_domain(&self.trust_domain) {
            return Some(("svid.trust_domain", e.to_string()));
        }
        if self.ttl_secs < 2 {
            return Some(("svid.ttl_secs", "must be at least 2".into()));
        }
        if !(0.1..=0.9).contains(&self.renew_at) {
            return Some(("svid.renew_at", "must be between 0.1 and 0.9".into()));
        }
        if self.ca_days == 0 {
            return Some(("svid.ca_days", "must be at least 1".into()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_value_is_named_by_its_key() {
        assert_eq!(SvidConfig::default().problem(), None);
        let bad = [
            SvidConfig {
                trust_domain: "Mesh".into(),
                ..SvidConfig::default()
            },
            SvidConfig {
                ttl_secs: 1,
                ..SvidConfig::default()
            },
            SvidConfig {
                renew_at: 0.95,
                ..SvidConfig::default()
            },
            SvidConfig {
                ca_days: 0,
                ..SvidConfig::default()
            },
        ];
        let keys: Vec<&str> = bad.iter().filter_map(|c| c.problem()).map(|(key, _)| key).collect();
        assert_eq!(
            keys,
            ["svid.trust_domain", "svid.ttl_secs", "svid.renew_at", "svid.ca_days"]
        );
    }
}
