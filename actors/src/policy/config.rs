//! Configuration of the policy engine (`[policy]`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where policies live and how often they are re-read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Directory of `*.rego` files; none: every decision allows.
    pub dir: Option<PathBuf>,
    /// Milliseconds between two checks of the files for changes.
    pub reload_ms: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            dir: None,
            reload_ms: 1_000,
        }
    }
}
