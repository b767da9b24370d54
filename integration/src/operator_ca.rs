//! An operator's trust-domain CA in a directory, as tests give it to nodes
//! (`svid.ca_key_file`, `svid.ca_cert_file`) and revoke with the real
//! `openssl ca` (its index, `-revoke`, `-gencrl`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use x0tta6bl4_actors::svid::{IssuedSvid, SpiffeId, TrustDomainCa};

/// The trust domain of test CAs.
pub const TRUST_DOMAIN: &str = "mesh.test";

/// The CA, with its key (`ca.key.pem`) and bundle (`bundle.pem`) in `dir`.
pub struct OperatorCa {
    /// The CA itself.
    pub ca: TrustDomainCa,
    /// Where its files are.
    pub dir: PathBuf,
}

impl OperatorCa {
    /// A new CA of [`TRUST_DOMAIN`] with its files in `dir`.
    pub fn new(dir: &Path) -> Self {
        let ca = TrustDomainCa::generate(TRUST_DOMAIN, Duration::from_secs(86_400)).expect("CA");
        std::fs::write(dir.join("ca.key.pem"), ca.key_pem()).expect("key");
        std::fs::write(dir.join("bundle.pem"), ca.bundle_pem()).expect("bundle");
        Self {
            ca,
            dir: dir.to_path_buf(),
        }
    }

    /// An SVID for `id`, valid for an hour.
    pub fn issue(&self, id: &str) -> IssuedSvid {
        let id = SpiffeId::parse(id).expect("SPIFFE ID");
        self.ca.issue(&id, Duration::from_secs(3600)).expect("SVID")
    }

    /// The path of `file` in the CA's directory.
    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// Settings that make a node issue its SVIDs with this CA.
    pub fn node_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("X0TTA6BL4_SVID__ENABLED", "true".into()),
            ("X0TTA6BL4_SVID__TRUST_DOMAIN", TRUST_DOMAIN.into()),
            ("X0TTA6BL4_SVID__CA_KEY_FILE", self.path("ca.key.pem")),
            ("X0TTA6BL4_SVID__CA_CERT_FILE", self.path("bundle.pem")),
        ]
    }

    /// Runs `openssl ca` with its index over this CA's files.
    pub fn openssl_ca(&self, args: &[&str]) {
        let config = self.dir.join("openssl-ca.cnf");
        if !config.exists() {
            std::fs::write(self.dir.join("index.txt"), "").expect("index");
            std::fs::write(self.dir.join("crlnumber"), "1000\n").expect("crlnumber");
            let cnf = format!(
                "[ca]\ndefault_ca = td\n[td]\ndatabase = {0}/index.txt\ncrlnumber = {0}/crlnumber\n\
                 certificate = {0}/bundle.pem\nprivate_key = {0}/ca.key.pem\ndefault_md = sha256\n\
                 default_crl_days = 1\nunique_subject = no\n",
                self.dir.display()
            );
            std::fs::write(&config, cnf).expect("openssl config");
        }
        let config = config.display().to_string();
        openssl(&[&["ca", "-config", &config], args].concat());
    }

    /// Writes `crl.pem` with the revocations in openssl's index, atomically.
    pub fn gencrl(&self) {
        let tmp = self.path("crl.pem.tmp");
        self.openssl_ca(&["-gencrl", "-out", &tmp]);
        std::fs::rename(&tmp, self.dir.join("crl.pem")).expect("CRL in place");
    }

    /// An SVID for `id` made by `openssl x509 -req` with this CA, naming the
    /// OCSP responder at `ocsp_url`, and entered as valid in openssl's index
    /// (which `openssl ocsp -index` answers from); kept as `<name>.pem`.
    pub fn openssl_issue(&self, name: &str, id: &str, ocsp_url: &str) -> IssuedSvid {
        let file = |suffix: &str| self.path(&format!("{name}{suffix}"));
        let (key, csr, ext, pem) = (file(".key.pem"), file(".csr"), file(".ext"), file(".pem"));
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ]);
        openssl(&[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/CN={name}"),
            "-out",
            &csr,
        ]);
        std::fs::write(
            &ext,
            format!(
                "subjectAltName=URI:{id}
basicConstraints=critical,CA:false
                 keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
                 authorityInfoAccess=OCSP;URI:{ocsp_url}
"
            ),
        )
        .expect("extensions");
        let (ca_cert, ca_key) = (self.path("bundle.pem"), self.path("ca.key.pem"));
        openssl(&[
            "x509", "-req", "-in", &csr, "-CA", &ca_cert, "-CAkey", &ca_key, "-days", "1", "-extfile", &ext, "-out",
            &pem,
        ]);
        self.openssl_ca(&["-valid", &pem]);
        let cert_pem = std::fs::read_to_string(&pem).expect("certificate");
        let cert_der = x0tta6bl4_actors::svid::ca::pem_der(&cert_pem).expect("PEM");
        IssuedSvid {
            id: SpiffeId::parse(id).expect("SPIFFE ID"),
            serial: x0tta6bl4::ca::serial_of(Path::new(&pem)).expect("serial"),
            cert_pem,
            cert_der,
            key_pem: std::fs::read_to_string(&key).expect("key"),
            not_after: std::time::SystemTime::now() + Duration::from_secs(86_400),
        }
    }

    /// Revokes the certificate `cert_pem` with `openssl ca -revoke` (kept as
    /// `<name>.pem`) and writes a new CRL.
    pub fn revoke(&self, name: &str, cert_pem: &str) {
        let file = self.path(&format!("{name}.pem"));
        std::fs::write(&file, cert_pem).expect("certificate file");
        self.openssl_ca(&["-revoke", &file]);
        self.gencrl();
    }
}

/// Runs `openssl` with `args`; panics with its error output when it fails.
fn openssl(args: &[&str]) {
    let output = Command::new("openssl").args(args).output().expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
