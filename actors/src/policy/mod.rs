//! The zero-trust policy engine: Rego policies evaluated by `regorus`.
//!
//! Every `*.rego` file in `policy.dir` is loaded into one engine. A decision
//! asks for `data.x0tta6bl4.<kind>.deny`: true denies, false or undefined
//! allows, so a policy that says nothing about a kind leaves it open. The files
//! are re-read every `policy.reload_ms`; when their content changed the engine
//! is rebuilt, and a policy that does not compile leaves the previous one in
//! force (the error is shown at `GET /api/v1/policy`). The version is a hash of
//! the files' names and contents. Identities reach the engine in one canonical
//! form only ([`canonical_name`], peer ids as base58), so a case or Unicode
//! variant of a name cannot match a rule differently.

pub mod config;

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::json;
use unicode_normalization::UnicodeNormalization;

pub use config::PolicyConfig;

const DECISIONS_METRIC: &str = "x0tta_policy_decisions_total";
const RELOADS_METRIC: &str = "x0tta_policy_reloads_total";

/// What a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// May traffic from this node route through a node.
    Transit,
    /// May a node take part in this node's view of the mesh at all.
    Admission,
    /// May an administrative API request be carried out.
    Admin,
}

impl Decision {
    fn rule(self) -> &'static str {
        match self {
            Decision::Transit => "data.x0tta6bl4.transit.deny",
            Decision::Admission => "data.x0tta6bl4.admission.deny",
            Decision::Admin => "data.x0tta6bl4.admin.deny",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Decision::Transit => "transit",
            Decision::Admission => "admission",
            Decision::Admin => "admin",
        }
    }
}

/// Why policies could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The directory or a file could not be read.
    #[error("cannot read policies in {dir}: {reason}")]
    Read {
        /// The policy directory.
        dir: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A policy does not compile.
    #[error("policy {file} does not compile: {reason}")]
    Compile {
        /// The file.
        file: String,
        /// The engine's message.
        reason: String,
    },
}

/// The policies in force, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyView {
    /// Hash of the files' names and contents (`builtin` with no policy dir).
    pub version: String,
    /// The files loaded.
    pub files: Vec<String>,
    /// Why the latest change was not taken, if it was not.
    pub last_error: Option<String>,
}

struct Loaded {
    engine: Option<regorus::Engine>,
    view: PolicyView,
}

/// The policy engine of a node.
pub struct Policy {
    dir: Option<PathBuf>,
    loaded: Mutex<Loaded>,
}

/// One canonical form of a name: Unicode NFKC, then lower case.
pub fn canonical_name(name: &str) -> String {
    name.nfkc().collect::<String>().to_lowercase()
}

impl Policy {
    /// Loads the policies of `config` (none: everything allowed).
    pub fn load(config: &PolicyConfig) -> Result<Self, PolicyError> {
        metrics::describe_counter!(DECISIONS_METRIC, "Policy decisions by kind and result");
        metrics::describe_counter!(RELOADS_METRIC, "Policy reloads by result");
        let (engine, view) = match &config.dir {
            Some(dir) => {
                let files = read_dir(dir)?;
                let engine = compile(&files)?;
                (Some(engine), view_of(&files, None))
            }
            None => (
                None,
                PolicyView {
                    version: "builtin".into(),
                    files: Vec::new(),
                    last_error: None,
                },
            ),
        };
        Ok(Self {
            dir: config.dir.clone(),
            loaded: Mutex::new(Loaded { engine, view }),
        })
    }

    /// Re-reads the policy files; rebuilds the engine when they changed.
    /// Returns whether a new version is in force.
    pub fn reload_if_changed(&self) -> bool {
        let Some(dir) = &self.dir else { return false };
        let files = match read_dir(dir) {
            Ok(files) => files,
            Err(error) => return self.keep(error.to_string()),
        };
        let version = version_of(&files);
        if version == self.loaded.lock().view.version {
            return false;
        }
        match compile(&files) {
            Ok(engine) => {
                let view = view_of(&files, None);
                tracing::info!(version = %view.version, files = ?view.files, "policy reloaded");
                metrics::counter!(RELOADS_METRIC, "result" => "loaded").increment(1);
                *self.loaded.lock() = Loaded {
                    engine: Some(engine),
                    view,
                };
                true
            }
            Err(error) => self.keep(error.to_string()),
        }
    }

    fn keep(&self, error: String) -> bool {
        let mut loaded = self.loaded.lock();
        if loaded.view.last_error.as_deref() != Some(error.as_str()) {
            tracing::warn!(%error, version = %loaded.view.version, "policy change not taken; the previous one stays");
            metrics::counter!(RELOADS_METRIC, "result" => "failed").increment(1);
        }
        loaded.view.last_error = Some(error);
        false
    }

    /// The version and files in force.
    pub fn view(&self) -> PolicyView {
        self.loaded.lock().view.clone()
    }

    /// Whether the policy denies routing traffic of `source` through `via`
    /// (named `via_name` in its beacons).
    pub fn transit_denied(&self, source: &libp2p::PeerId, via: &libp2p::PeerId, via_name: &str) -> bool {
        let input = json!({
            "source": source.to_string(),
            "via": via.to_string(),
            "via_name": canonical_name(via_name),
        });
        self.denies(Decision::Transit, input)
    }

    /// Whether the policy denies `peer` (named `name`) a place in this node's
    /// mesh: its beacons are ignored, so nothing routes to or through it.
    pub fn admission_denied(&self, peer: &libp2p::PeerId, name: &str) -> bool {
        let input = json!({ "peer": peer.to_string(), "name": canonical_name(name) });
        self.denies(Decision::Admission, input)
    }

    /// Whether the policy denies an administrative request (`method`, `path`)
    /// from `client` (its IP address), made with the client SVID `spiffe_id`
    /// when it came over mTLS (`null` in the input otherwise).
    pub fn admin_denied(&self, method: &str, path: &str, client: &str, spiffe_id: Option<&str>) -> bool {
        let input = json!({
            "method": method.to_ascii_uppercase(),
            "path": path,
            "client": client,
            "spiffe_id": spiffe_id,
        });
        self.denies(Decision::Admin, input)
    }

    fn denies(&self, decision: Decision, input: serde_json::Value) -> bool {
        let mut loaded = self.loaded.lock();
        let Some(engine) = loaded.engine.as_mut() else {
            return false;
        };
        let denied = match regorus::Value::from_json_str(&input.to_string()) {
            Ok(input) => {
                engine.set_input(input);
                match engine.eval_query(decision.rule().to_string(), false) {
                    // Undefined (no rule, or no rule body true) gives no result: allowed.
                    Ok(results) => results
                        .result
                        .iter()
                        .flat_map(|r| r.expressions.iter())
                        .any(|e| e.value == regorus::Value::from(true)),
                    // Fail closed: a policy that errors denies.
                    Err(error) => {
                        tracing::warn!(%error, rule = decision.rule(), "policy evaluation failed; denying");
                        true
                    }
                }
            }
            Err(_) => true,
        };
        let result = if denied { "deny" } else { "allow" };
        metrics::counter!(DECISIONS_METRIC, "kind" => decision.label(), "result" => result).increment(1);
        denied
    }
}

/// `(file name, content)` of every `*.rego` file in `dir`, sorted by name.
fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, PolicyError> {
    let read = |reason: String| PolicyError::Read {
        dir: dir.to_path_buf(),
        reason,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read(e.to_string()))? {
        let path = entry.map_err(|e| read(e.to_string()))?.path();
        if path.extension().is_some_and(|e| e == "rego") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let content = std::fs::read_to_string(&path).map_err(|e| read(format!("{name}: {e}")))?;
            files.push((name, content));
        }
    }
    files.sort();
    Ok(files)
}

fn compile(files: &[(String, String)]) -> Result<regorus::Engine, PolicyError> {
    let mut engine = regorus::Engine::new();
    for (name, content) in files {
        engine
            .add_policy(name.clone(), content.clone())
            .map_err(|e| PolicyError::Compile {
                file: name.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(engine)
}

fn version_of(files: &[(String, String)]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hash = Sha256::new();
    for (name, content) in files {
        hash.update((name.len() as u64).to_be_bytes());
        hash.update(name.as_bytes());
        hash.update((content.len() as u64).to_be_bytes());
        hash.update(content.as_bytes());
    }
    hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn view_of(files: &[(String, String)], last_error: Option<String>) -> PolicyView {
    PolicyView {
        version: version_of(files),
        files: files.iter().map(|(name, _)| name.clone()).collect(),
        last_error,
    }
}

#[cfg(test)]
mod tests {
    use libp2p::PeerId;

    use super::*;

    const DENY_X: &str = r#"package x0tta6bl4.transit
deny if input.via_name == "node-x"
"#;

    fn policy_in(dir: &Path) -> Policy {
        Policy::load(&PolicyConfig {
            dir: Some(dir.to_path_buf()),
            reload_ms: 1_000,
        })
        .expect("loads")
    }

    #[test]
    fn case_and_unicode_variants_of_a_name_meet_the_same_rule() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("transit.rego"), DENY_X).expect("write");
        let policy = policy_in(dir.path());
        let (me, x) = (PeerId::random(), PeerId::random());
        for variant in ["node-x", "NODE-X", "Node-X", "ｎｏｄｅ-ｘ", "ＮＯＤＥ－Ｘ"] {
            assert!(policy.transit_denied(&me, &x, variant), "{variant} is node-x");
        }
        assert!(!policy.transit_denied(&me, &x, "node-y"));
        assert_eq!(canonical_name("ＮＯＤＥ－Ｘ"), "node-x");
    }

    #[test]
    fn edits_are_taken_without_restart_and_a_broken_one_keeps_the_previous_policy() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("transit.rego");
        std::fs::write(&file, DENY_X).expect("write");
        let policy = policy_in(dir.path());
        let (me, x) = (PeerId::random(), PeerId::random());
        let first = policy.view().version;
        assert!(policy.transit_denied(&me, &x, "node-x"));
        assert!(!policy.reload_if_changed(), "nothing changed");

        std::fs::write(&file, DENY_X.replace("node-x", "node-z")).expect("edit");
        assert!(policy.reload_if_changed());
        let second = policy.view().version;
        assert_ne!(first, second);
        assert!(!policy.transit_denied(&me, &x, "node-x"));
        assert!(policy.transit_denied(&me, &x, "node-z"));

        std::fs::write(&file, "package x0tta6bl4.transit\ndeny if {{{").expect("break");
        assert!(!policy.reload_if_changed());
        let view = policy.view();
        assert_eq!(view.version, second, "the previous policy stays");
        assert!(view.last_error.is_some_and(|e| e.contains("transit.rego")));
        assert!(policy.transit_denied(&me, &x, "node-z"));
    }

    #[test]
    fn admission_and_admin_decisions_follow_their_own_rules() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("all.rego"),
            "package x0tta6bl4.admission\ndeny if input.name == \"mallory\"\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("admin.rego"),
            "package x0tta6bl4.admin\ndeny if {\n  input.method == \"DELETE\"\n  startswith(input.path, \"/api/v1/quarantine\")\n}\n",
        )
        .expect("write");
        let policy = policy_in(dir.path());
        let peer = PeerId::random();
        assert!(policy.admission_denied(&peer, "Mallory"));
        assert!(!policy.admission_denied(&peer, "alice"));
        assert!(policy.admin_denied("delete", "/api/v1/quarantine", "127.0.0.1", None));
        assert!(!policy.admin_denied("POST", "/api/v1/quarantine", "127.0.0.1", None));
        assert!(
            !policy.transit_denied(&peer, &peer, "mallory"),
            "transit has no rule here"
        );
        assert_eq!(
            policy.view().files,
            vec!["admin.rego".to_string(), "all.rego".to_string()]
        );
    }

    #[test]
    fn the_admin_rule_sees_the_client_svid() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("admin.rego"),
            "package x0tta6bl4.admin\ndeny if not startswith(input.spiffe_id, \"spiffe://mesh.test/admin/\")\n",
        )
        .expect("write");
        let policy = policy_in(dir.path());
        let (path, client) = ("/api/v1/quarantine", "127.0.0.1");
        assert!(!policy.admin_denied("POST", path, client, Some("spiffe://mesh.test/admin/alice")));
        assert!(policy.admin_denied("POST", path, client, Some("spiffe://mesh.test/node/x")));
        assert!(policy.admin_denied("POST", path, client, None), "no SVID, no admin");
    }

    #[test]
    fn without_policies_or_without_a_rule_everything_is_allowed() {
        let open = Policy::load(&PolicyConfig::default()).expect("builtin");
        let (me, x) = (PeerId::random(), PeerId::random());
        assert!(!open.transit_denied(&me, &x, "node-x"));
        assert_eq!(open.view().version, "builtin");
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("other.rego"),
            "package x0tta6bl4.admission\ndeny if false\n",
        )
        .expect("write");
        assert!(!policy_in(dir.path()).transit_denied(&me, &x, "node-x"));
        std::fs::write(dir.path().join("bad.rego"), "not rego at all").expect("write");
        let refused = Policy::load(&PolicyConfig {
            dir: Some(dir.path().to_path_buf()),
            reload_ms: 1_000,
        });
        assert!(matches!(refused, Err(PolicyError::Compile { .. })));
    }
}
