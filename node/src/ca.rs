//! `x0tta6bl4 ca init|issue|revoke|crl`: the operator's trust-domain CA in a
//! directory. `ca.key.pem` (mode 0600) is its key, `bundle.pem` the trust
//! bundle nodes are given, `ca.json` the trust domain, the revoked serials
//! and the number of the last CRL.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use x0tta6bl4_actors::svid::ca::{pem_der, unhex};
use x0tta6bl4_actors::svid::{Revoked, SpiffeId, TrustDomainCa};

const KEY_FILE: &str = "ca.key.pem";
const BUNDLE_FILE: &str = "bundle.pem";
const STATE_FILE: &str = "ca.json";

/// What `ca.json` keeps beside the key and the bundle.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CaState {
    trust_domain: String,
    crl_number: u64,
    revoked: Vec<Revoked>,
}

/// The CA kept in `dir`.
pub struct CaDir {
    dir: PathBuf,
    ca: TrustDomainCa,
    state: CaState,
}

impl CaDir {
    /// Makes a new CA for `trust_domain` in `dir`, valid for `lifetime`;
    /// refuses to replace an existing one.
    pub fn init(dir: &Path, trust_domain: &str, lifetime: Duration) -> anyhow::Result<Self> {
        if dir.join(KEY_FILE).exists() {
            bail!(
                "{} already holds a CA; remove it first to make a new one",
                dir.display()
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let ca = TrustDomainCa::generate(trust_domain, lifetime)?;
        write_private(&dir.join(KEY_FILE), &ca.key_pem())?;
        std::fs::write(dir.join(BUNDLE_FILE), ca.bundle_pem())?;
        let this = Self {
            dir: dir.to_path_buf(),
            ca,
            state: CaState {
                trust_domain: trust_domain.to_string(),
                ..CaState::default()
            },
        };
        this.save()?;
        Ok(this)
    }

    /// Opens the CA in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).with_context(|| {
                format!(
                    "cannot read {} (run `x0tta6bl4 ca init` first)",
                    dir.join(name).display()
                )
            })
        };
        let state: CaState = serde_json::from_str(&read(STATE_FILE)?).context("ca.json is not valid")?;
        let ca = TrustDomainCa::from_pem(&state.trust_domain, &read(KEY_FILE)?, &read(BUNDLE_FILE)?)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            ca,
            state,
        })
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.state.trust_domain
    }

    /// The trust bundle's path.
    pub fn bundle_path(&self) -> PathBuf {
        self.dir.join(BUNDLE_FILE)
    }

    /// Issues an SVID for `id` valid for `ttl`; writes `<out>.pem` and
    /// `<out>.key.pem` (0600) and returns its serial.
    pub fn issue(&self, id: &SpiffeId, ttl: Duration, out: &Path) -> anyhow::Result<String> {
        let svid = self.ca.issue(id, ttl)?;
        std::fs::write(with_suffix(out, ".pem"), &svid.cert_pem)?;
        write_private(&with_suffix(out, ".key.pem"), &svid.key_pem)?;
        Ok(svid.serial)
    }

    /// Adds `serial` (hex) to the revoked serials; false if it was already there.
    pub fn revoke(&mut self, serial: &str) -> anyhow::Result<bool> {
        let bytes = unhex(serial).with_context(|| format!("{serial} is not a hex serial"))?;
        let serial = x0tta6bl4_actors::svid::ca::hex(&bytes);
        if self.state.revoked.iter().any(|r| r.serial == serial) {
            return Ok(false);
        }
        let at_unix = x0tta6bl4_actors::svid::unix_secs(SystemTime::now());
        self.state.revoked.push(Revoked { serial, at_unix });
        self.save()?;
        Ok(true)
    }

    /// A new CRL of every revoked serial, valid for `next_update`; PEM.
    pub fn crl(&mut self, next_update: Duration) -> anyhow::Result<String> {
        self.state.crl_number += 1;
        let pem = self
            .ca
            .crl_pem(&self.state.revoked, self.state.crl_number, next_update)?;
        self.save()?;
        Ok(pem)
    }

    fn save(&self) -> anyhow::Result<()> {
        let path = self.dir.join(STATE_FILE);
        let temporary = self.dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&temporary, serde_json::to_vec_pretty(&self.state)?)?;
        std::fs::rename(&temporary, &path).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The serial of the certificate in the PEM file `path`, hex.
pub fn serial_of(path: &Path) -> anyhow::Result<String> {
    let pem = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let der = pem_der(&pem).with_context(|| format!("{} holds no PEM certificate", path.display()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| anyhow::anyhow!("{} is not a certificate: {e}", path.display()))?;
    Ok(x0tta6bl4_actors::svid::ca::hex(cert.raw_serial()))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes `text` to `path` readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_dir_issues_revokes_and_numbers_its_crls_across_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca");
        CaDir::init(&path, "mesh.test", Duration::from_secs(3600)).expect("init");
        assert!(
            CaDir::init(&path, "mesh.test", Duration::from_secs(3600)).is_err(),
            "no overwrite"
        );
        let mut ca = CaDir::open(&path).expect("opens");
        let id = SpiffeId::for_node("mesh.test", "p").expect("id");
        let out = dir.path().join("p");
        let serial = ca.issue(&id, Duration::from_secs(60), &out).expect("issued");
        assert_eq!(serial_of(&with_suffix(&out, ".pem")).expect("serial"), serial);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(with_suffix(&out, ".key.pem"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is private");
        assert!(ca.revoke(&serial.to_uppercase()).expect("revoked"));
        assert!(!ca.revoke(&serial).expect("again"), "revoked once");
        assert!(ca.revoke("xyz").is_err());
        ca.crl(Duration::from_secs(60)).expect("crl 1");
        let mut reopened = CaDir::open(&path).expect("opens");
        assert_eq!(reopened.state.crl_number, 1);
        assert_eq!(reopened.state.revoked.len(), 1);
        reopened.crl(Duration::from_secs(60)).expect("crl 2");
        assert_eq!(reopened.state.crl_number, 2);
        assert!(CaDir::open(dir.path()).is_err(), "no CA there");
    }
}
