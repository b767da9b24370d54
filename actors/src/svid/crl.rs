//! The trust domain's CRL, re-read from a file or a URL (`svid.crl`) every
//! `svid.crl_refresh_secs` and put in force in the [`Trust`]. A CRL that
//! cannot be read or parsed leaves the previous one in force, is logged and
//! counted in `x0tta_svid_crl_refreshes_total{result}`; one past its
//! nextUpdate makes every check fail closed (`crl_expired`) until a fresh
//! one arrives.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::trust::Trust;

const REFRESHES_TOTAL: &str = "x0tta_svid_crl_refreshes_total";
/// Largest CRL accepted, in bytes.
pub const MAX_CRL_BYTES: usize = 8 << 20;
/// How long a CRL download may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the CRL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlSource {
    /// A file (PEM or DER).
    File(PathBuf),
    /// An `http://` or `https://` URL (PEM or DER).
    Url(String),
}

impl CrlSource {
    /// `svid.crl` read as a URL when it has an HTTP scheme, else as a path.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("http://") || text.starts_with("https://") {
            Self::Url(text.to_string())
        } else {
            Self::File(PathBuf::from(text))
        }
    }

    /// The CRL's bytes now.
    pub async fn read(&self, client: &reqwest::Client) -> Result<Vec<u8>, String> {
        let bytes = match self {
            Self::File(path) => std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            Self::Url(url) => fetch(client, url).await?,
        };
        if bytes.len() > MAX_CRL_BYTES {
            return Err(format!("the CRL has {} bytes, over {MAX_CRL_BYTES}", bytes.len()));
        }
        Ok(bytes)
    }
}

impl std::fmt::Display for CrlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Url(url) => f.write_str(url),
        }
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = client
        .get(url)
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("cannot fetch {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    if response.content_length().is_some_and(|n| n > MAX_CRL_BYTES as u64) {
        return Err(format!("{url} offers a CRL over {MAX_CRL_BYTES} bytes"));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("cannot read the CRL from {url}: {e}"))?;
    Ok(bytes.to_vec())
}

/// Reads the CRL from `source` and puts it in force in `trust`.
pub async fn refresh(source: &CrlSource, trust: &Trust, client: &reqwest::Client) -> Result<(), String> {
    let result = match source.read(client).await {
        Ok(bytes) => trust.set_crls(&bytes).map_err(|e| e.to_string()),
        Err(error) => Err(error),
    };
    let label = if result.is_ok() { "ok" } else { "failed" };
    metrics::counter!(REFRESHES_TOTAL, "result" => label).increment(1);
    result
}

/// Refreshes the CRL now and every `every`, for as long as the node runs.
pub async fn keep_fresh(source: CrlSource, trust: Arc<Trust>, every: Duration) {
    metrics::describe_counter!(REFRESHES_TOTAL, "CRL refreshes by result (ok, failed)");
    let client = reqwest::Client::new();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        match refresh(&source, &trust, &client).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(%source, "CRL readable again");
            }
            Ok(()) => tracing::debug!(%source, "CRL refreshed"),
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%source, %error, "cannot refresh the CRL; the previous one stays in force");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svid::ca::TrustDomainCa;
    use crate::svid::{Revoked, SpiffeId, Usage};

    #[tokio::test]
    async fn a_crl_file_is_put_in_force_and_a_bad_one_keeps_the_previous() {
        let hour = Duration::from_secs(3600);
        let ca = TrustDomainCa::generate("mesh.test", hour).expect("CA");
        let trust = Trust::new("mesh.test", ca.bundle_pem(), Duration::ZERO, Default::default()).expect("trust");
        let svid = ca
            .issue(&SpiffeId::for_node("mesh.test", "p").expect("id"), hour)
            .expect("SVID");
        let chain = [svid.cert_der.clone()];
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("crl.pem");
        let source = CrlSource::parse(file.to_str().expect("utf-8"));
        let client = reqwest::Client::new();

        assert!(refresh(&source, &trust, &client).await.is_err(), "no file yet");
        assert!(trust.validate(&chain, Usage::Client).is_ok());
        let revoked = Revoked {
            serial: svid.serial.clone(),
            at_unix: crate::svid::unix_secs(std::time::SystemTime::now()),
        };
        std::fs::write(&file, ca.crl_pem(&[revoked], 1, hour).expect("CRL")).expect("write");
        refresh(&source, &trust, &client).await.expect("in force");
        assert_eq!(
            trust.validate(&chain, Usage::Client).map_err(|r| r.reason()),
            Err("revoked")
        );
        let generation = trust.generation();
        refresh(&source, &trust, &client).await.expect("read again");
        assert_eq!(trust.generation(), generation, "an unchanged CRL moves nothing");
        std::fs::write(&file, "garbage").expect("write");
        assert!(refresh(&source, &trust, &client).await.is_err());
        assert_eq!(
            trust.validate(&chain, Usage::Client).map_err(|r| r.reason()),
            Err("revoked"),
            "the previous CRL stays in force"
        );
    }

    #[test]
    fn urls_and_paths_are_told_apart() {
        assert_eq!(
            CrlSource::parse("https://ca.example/crl"),
            CrlSource::Url("https://ca.example/crl".into())
        );
        assert_eq!(
            CrlSource::parse("/etc/x0tta6bl4/crl.pem"),
            CrlSource::File("/etc/x0tta6bl4/crl.pem".into())
        );
    }
}
