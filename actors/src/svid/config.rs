//! `[svid]`: the node's SPIFFE identity.

use std::collections::BTreeMap;
use std::path::PathBuf;

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
    /// The operator's CA key (PKCS#8 PEM), with `ca_cert_file`: the node
    /// issues its SVIDs with this CA instead of one of its own in sled.
    pub ca_key_file: Option<PathBuf>,
    /// The operator's CA certificate (PEM): the trust bundle.
    pub ca_cert_file: Option<PathBuf>,
    /// Where the trust domain's CRL is read from: a file path or an
    /// `http(s)://` URL; re-read every `crl_refresh_secs`.
    pub crl: Option<String>,
    /// How often the CRL is re-read, seconds.
    pub crl_refresh_secs: u64,
    /// How far a peer's clock may be off at an SVID's validity edges, seconds.
    pub clock_skew_secs: u64,
    /// SPKI pins: a SPIFFE ID and the only public key it may present, as
    /// `sha256//<base64>` (curl's `--pinnedpubkey` form).
    pub pins: BTreeMap<String, String>,
    /// What a certificate whose OCSP responder has not answered gets:
    /// `open` (accepted, with an alert) or `closed` (refused).
    pub ocsp_unreachable: super::ocsp::UnreachablePolicy,
    /// A SPIFFE Workload API to take SVIDs from (`unix:///path` or
    /// `tcp://host:port`) instead of a CA; `SPIFFE_ENDPOINT_SOCKET` is used
    /// when this is unset.
    pub workload_api: Option<String>,
}

impl Default for SvidConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            trust_domain: "x0tta6bl4.mesh".into(),
            ttl_secs: 3600,
            renew_at: 0.5,
            ca_days: 365,
            ca_key_file: None,
            ca_cert_file: None,
            crl: None,
            crl_refresh_secs: 60,
            clock_skew_secs: 30,
            pins: BTreeMap::new(),
            ocsp_unreachable: super::ocsp::UnreachablePolicy::Open,
            workload_api: None,
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
        if self.ca_key_file.is_some() != self.ca_cert_file.is_some() {
            return Some((
                "svid.ca_key_file",
                "give both svid.ca_key_file and svid.ca_cert_file, or neither".into(),
            ));
        }
        if self.crl_refresh_secs == 0 {
            return Some(("svid.crl_refresh_secs", "must be at least 1".into()));
        }
        self.parsed_pins().err().map(|problem| ("svid.pins", problem))
    }

    /// The pins, checked.
    pub fn parsed_pins(&self) -> Result<super::validate::Pins, String> {
        self.pins
            .iter()
            .map(|(id, pin)| {
                let id = super::SpiffeId::parse(id).map_err(|e| format!("{id:?}: {e}"))?;
                Ok((id.to_string(), super::validate::parse_pin(pin)?))
            })
            .collect()
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
            SvidConfig {
                ca_key_file: Some("ca.key.pem".into()),
                ..SvidConfig::default()
            },
            SvidConfig {
                crl_refresh_secs: 0,
                ..SvidConfig::default()
            },
            SvidConfig {
                pins: BTreeMap::from([("spiffe://mesh.test/node/a".into(), "md5//x".into())]),
                ..SvidConfig::default()
            },
        ];
        let keys: Vec<&str> = bad.iter().filter_map(|c| c.problem()).map(|(key, _)| key).collect();
        assert_eq!(
            keys,
            [
                "svid.trust_domain",
                "svid.ttl_secs",
                "svid.renew_at",
                "svid.ca_days",
                "svid.ca_key_file",
                "svid.crl_refresh_secs",
                "svid.pins"
            ]
        );
    }
}
