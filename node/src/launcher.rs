//! Starts node processes and talks to them over HTTP.
//!
//! A child is started with `PR_SET_PDEATHSIG`, so it receives SIGTERM when its
//! parent dies for any reason (panic, SIGKILL); [`NodeProcess`]'s `Drop` stops it
//! too. The node writes its bound HTTP address to `<data_dir>/http.addr`, so
//! nodes can use port 0 and nobody races for ports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use thiserror::Error;

use crate::node::HTTP_ADDR_FILE;

/// How long a node may take to bind its HTTP server.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the launcher.
#[derive(Debug, Error)]
pub enum LaunchError {
    /// The process could not be started or its files written.
    #[error("cannot start node {name}: {source}")]
    Spawn {
        /// Node name.
        name: String,
        /// OS error.
        source: std::io::Error,
    },
    /// The node exited or did not answer in time.
    #[error("node {name} did not come up: {reason} (log: {log})")]
    NotUp {
        /// Node name.
        name: String,
        /// What went wrong.
        reason: String,
        /// Its log file.
        log: PathBuf,
    },
    /// An HTTP call failed.
    #[error("{method} {url}: {reason}")]
    Http {
        /// HTTP method.
        method: &'static str,
        /// URL called.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// What to start.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The `x0tta6bl4` binary.
    pub exe: PathBuf,
    /// Node name.
    pub name: String,
    /// Data directory (created; its `node.log` receives the node's stderr).
    pub data_dir: PathBuf,
    /// HTTP listen address (port 0 for any).
    pub http: SocketAddr,
    /// Extra `X0TTA6BL4_*` settings.
    pub env: Vec<(String, String)>,
    /// Command prefix, e.g. `ip netns exec <ns>` (empty to run directly).
    pub prefix: Vec<String>,
}

impl NodeSpec {
    /// A loopback node with libp2p on free ports. XDP is off: nodes sharing a
    /// host share its interfaces, and only one program may own an interface
    /// (see [`NodeSpec::with_xdp_on`]).
    pub fn loopback(exe: &Path, name: &str, data_dir: &Path) -> Self {
        Self {
            exe: exe.to_path_buf(),
            name: name.to_string(),
            data_dir: data_dir.to_path_buf(),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            env: vec![
                (
                    "X0TTA6BL4_MESH__LISTEN".into(),
                    r#"["/ip4/127.0.0.1/tcp/0","/ip4/127.0.0.1/udp/0/quic-v1"]"#.into(),
                ),
                ("X0TTA6BL4_TELEMETRY__XDP".into(), "false".into()),
            ],
            prefix: Vec::new(),
        }
    }

    /// Turns XDP on and watches `interfaces`.
    pub fn with_xdp_on(self, interfaces: &[&str]) -> Self {
        let list: Vec<String> = interfaces.iter().map(|i| format!("\"{i}\"")).collect();
        self.with("X0TTA6BL4_TELEMETRY__XDP", "true")
            .with("X0TTA6BL4_TELEMETRY__INTERFACES", format!("[{}]", list.join(",")))
    }

    /// Adds one `X0TTA6BL4_*` setting.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }
}

/// The setting that gives a node its API token.
pub const TOKEN_ENV: &str = "X0TTA6BL4_HTTP__TOKEN";

/// Where a node's API is and how to be let in; cheap to clone onto threads.
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// Base URL.
    pub api: String,
    /// Bearer token, when the node has one.
    pub token: Option<String>,
}

impl ApiClient {
    /// A request to `path`, with the token.
    pub fn request(&self, method: &str, path: &str) -> ureq::Request {
        let request = ureq::request(method, &format!("{}{path}", self.api));
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }
}

/// A running node process. Stopped on drop.
pub struct NodeProcess {
    spec: NodeSpec,
    child: Option<Child>,
    /// Base URL of its HTTP API.
    pub api: String,
    /// Its peer id.
    pub peer_id: String,
    /// Its loopback TCP address with `/p2p/<peer id>`, for bootstrap.
    pub bootstrap_addr: String,
}

impl NodeProcess {
    /// Starts the node and waits until its API answers.
    pub fn spawn(spec: NodeSpec) -> Result<Self, LaunchError> {
        let spawn_err = |source| LaunchError::Spawn {
            name: spec.name.clone(),
            source,
        };
        std::fs::create_dir_all(&spec.data_dir).map_err(spawn_err)?;
        let addr_file = spec.data_dir.join(HTTP_ADDR_FILE);
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(spec.data_dir.join("node.log"))
            .map_err(spawn_err)?;
        let mut command = match spec.prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&spec.exe);
                c
            }
            None => Command::new(&spec.exe),
        };
        command
            .arg("run")
            // The test harness's own variable is not a node setting; the node's
            // config would refuse it as an unknown key.
            .env_remove("X0TTA6BL4_BIN")
            .env("X0TTA6BL4_NAME", &spec.name)
            .env("X0TTA6BL4_DATA_DIR", &spec.data_dir)
            .env("X0TTA6BL4_HTTP__LISTEN", spec.http.to_string())
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        die_with_parent(&mut command);
        let child = command.spawn().map_err(spawn_err)?;
        let mut node = Self {
            spec,
            child: Some(child),
            api: String::new(),
            peer_id: String::new(),
            bootstrap_addr: String::new(),
        };
        node.wait_up(&addr_file)?;
        Ok(node)
    }

    fn not_up(&self, reason: impl Into<String>) -> LaunchError {
        LaunchError::NotUp {
            name: self.spec.name.clone(),
            reason: reason.into(),
            log: self.spec.data_dir.join("node.log"),
        }
    }

    fn wait_up(&mut self, addr_file: &Path) -> Result<(), LaunchError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(self.not_up(format!("exited with {status}")));
            }
            if let Ok(addr) = std::fs::read_to_string(addr_file) {
                self.api = format!("http://{}", addr.trim());
                if let Ok(status) = self.get("/api/v1/status") {
                    if self.learn_identity(&status) {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(self.not_up(format!("no answer within {START_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Reads peer id and a TCP listen address from a status answer; false until
    /// the swarm listens.
    fn learn_identity(&mut self, status: &Value) -> bool {
        let peer_id = status["peer_id"].as_str().unwrap_or_default().to_string();
        let tcp = status["listen_addrs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|a| a.contains("/tcp/"));
        match tcp {
            Some(addr) if !peer_id.is_empty() => {
                self.bootstrap_addr = format!("{addr}/p2p/{peer_id}");
                self.peer_id = peer_id;
                true
            }
            _ => false,
        }
    }

    /// Node name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The spec it was started from (to restart it).
    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// OS process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `sig` to the node process (tests stall it with SIGSTOP/SIGCONT).
    pub fn signal(&self, sig: libc::c_int) -> std::io::Result<()> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| std::io::Error::other("the node is not running"))?;
        signal(child, sig)
    }

    /// What the node has logged so far (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.spec.data_dir.join("node.log")).unwrap_or_default()
    }

    /// A client of its API (with the bearer token the node was given, if any).
    pub fn client(&self) -> ApiClient {
        ApiClient {
            api: self.api.clone(),
            token: self
                .spec
                .env
                .iter()
                .find(|(k, _)| k == TOKEN_ENV)
                .map(|(_, v)| v.clone()),
        }
    }

    /// `GET` a JSON path of the API.
    pub fn get(&self, path: &str) -> Result<Value, LaunchError> {
        let url = format!("{}{path}", self.api);
        let http = |reason: String| LaunchError::Http {
            method: "GET",
            url: url.clone(),
            reason,
        };
        self.client()
            .request("GET", path)
            .timeout(Duration::from_secs(10))
            .call()
            .map_err(|e| http(e.to_string()))?
            .into_json()
            .map_err(|e| http(e.to_string()))
    }

    /// `POST` JSON to a path of the API; HTTP error statuses come back as errors
    /// carrying the body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, LaunchError> {
        self.send_json("POST", path, body)
    }

    /// `PUT` JSON to a path of the API, like [`NodeProcess::post`].
    pub fn put(&self, path: &str, body: &Value) -> Result<Value, LaunchError> {
        self.send_json("PUT", path, body)
    }

    /// `DELETE` with a JSON body, like [`NodeProcess::post`].
    pub fn delete(&self, path: &str, body: &Value) -> Result<Value, LaunchError> {
        self.send_json("DELETE", path, body)
    }

    fn send_json(&self, method: &'static str, path: &str, body: &Value) -> Result<Value, LaunchError> {
        let url = format!("{}{path}", self.api);
        let http = |reason: String| LaunchError::Http {
            method,
            url: url.clone(),
            reason,
        };
        match self
            .client()
            .request(method, path)
            .timeout(Duration::from_secs(120))
            .send_json(body)
        {
            Ok(response) => response.into_json().map_err(|e| http(e.to_string())),
            Err(ureq::Error::Status(code, response)) => {
                Err(http(format!("{code}: {}", response.into_string().unwrap_or_default())))
            }
            Err(e) => Err(http(e.to_string())),
        }
    }

    /// Kills the process with SIGKILL (no clean shutdown) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process with SIGTERM, then SIGKILL if it lingers.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = signal(&child, libc::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The exit code once the process has ended by itself (`None` while it
    /// runs, or when a signal ended it).
    pub fn exit_code(&mut self) -> Option<i32> {
        self.child.as_mut()?.try_wait().ok()??.code()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `signal` to `child` (a process this one started).
pub fn signal(child: &Child, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).map_err(std::io::Error::other)?;
    // SAFETY: kill(2) with a pid we own; no memory is touched.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(pid, signal) };
    if sent == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Makes the child receive SIGTERM when this process dies, even by SIGKILL.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls prctl(2),
    // which is async-signal-safe and touches no memory of the parent.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
