//! The networkx oracle: the same what-if questions answered by networkx
//! (`oracle/networkx_oracle.py`, run with `python3`), for the oracle test and
//! the benchmark. The one part of the crate that does I/O.

use std::io::Write;
use std::process::{Command, Stdio};

use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use serde::Serialize;

use crate::net::Net;
use crate::whatif::{Failure, Flow};

/// The script, next to this crate's sources.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/oracle/networkx_oracle.py");

/// One question for networkx.
#[derive(Debug, Serialize)]
pub struct Case {
    nodes: Vec<String>,
    edges: Vec<(String, String, u64)>,
    failure: Failure,
    flows: Option<Vec<(String, String)>>,
}

impl Case {
    /// `failure` on `net` (with the traffic matrix `flows`, if any), as networkx will see it.
    pub fn new(net: &Net, failure: &Failure, flows: Option<&[Flow]>) -> Self {
        let graph = net.graph();
        Self {
            nodes: graph.node_indices().map(|n| net.id(n).to_owned()).collect(),
            edges: graph
                .edge_references()
                .map(|e| {
                    (
                        net.id(e.source()).to_owned(),
                        net.id(e.target()).to_owned(),
                        *e.weight(),
                    )
                })
                .collect(),
            failure: failure.clone(),
            flows: flows.map(|f| f.iter().map(|f| (f.src.clone(), f.dst.clone())).collect()),
        }
    }
}

/// Why networkx gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    /// python3 could not be started or fed.
    #[error("cannot run python3 {SCRIPT}: {0} (install python3 and python3-networkx)")]
    Spawn(#[from] std::io::Error),
    /// The script failed (networkx missing, most likely).
    #[error("the networkx oracle failed: {0}")]
    Failed(String),
    /// Its answer was not the expected JSON.
    #[error("the networkx oracle answered nonsense: {0}")]
    Json(#[from] serde_json::Error),
}

/// networkx's answers to `cases`, in order, and its version.
pub fn ask(cases: &[Case]) -> Result<(String, Vec<serde_json::Value>), OracleError> {
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let input = serde_json::to_vec(&serde_json::json!({ "cases": cases }))?;
    child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(&input))
        .transpose()?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        return Err(OracleError::Failed(
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    let mut answer: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let version = answer["networkx"].as_str().unwrap_or("?").to_owned();
    let results = answer["results"].as_array_mut().map(std::mem::take).unwrap_or_default();
    Ok((version, results))
}

/// Whether `python3` can import networkx here.
pub fn available() -> bool {
    Command::new("python3")
        .args(["-c", "import networkx"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
