//! Typed node configuration: one TOML file, every key overridable from the
//! environment as `X0TTA6BL4_<SECTION>__<KEY>` (e.g. `X0TTA6BL4_HTTP__LISTEN`).
//! The alert sinks also take the usual `ALERTMANAGER_URL`,
//! `TELEGRAM_BOT_TOKEN`, `TELEGRAM_CHAT_ID` and `PAGERDUTY_ROUTING_KEY`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use x0tta6bl4_actors::alerter::AlerterConfig;
use x0tta6bl4_actors::breaker::BreakerConfig;
use x0tta6bl4_actors::healer::HealerConfig;
use x0tta6bl4_actors::mesh::MeshConfig;
use x0tta6bl4_actors::policy::PolicyConfig;
use x0tta6bl4_actors::router::RouterConfig;
use x0tta6bl4_actors::secure::PqcConfig;
use x0tta6bl4_actors::supervision::SupervisionConfig;
use x0tta6bl4_actors::telemetry::TelemetryConfig;

mod limits;

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "X0TTA6BL4_";

/// Plain environment variables of the alert sinks, read into `alerter.*`.
const ALERT_ENV: [&str; 4] = [
    "ALERTMANAGER_URL",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CHAT_ID",
    "PAGERDUTY_ROUTING_KEY",
];

/// Errors found while loading the configuration.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file, an environment variable or a value could not be read.
    #[error("invalid configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// The named config file does not exist.
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    /// A value is out of its allowed range.
    #[error("invalid configuration: {key} {problem}")]
    Invalid {
        /// Dotted key of the value.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// The HTTP server (dashboard, API, health, metrics).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to bind. Loopback by default: the API has admin actions.
    pub listen: SocketAddr,
    /// Worker threads serving HTTP. One is plenty for a node's API.
    pub workers: usize,
    /// File holding the API's bearer token (first line). With a token, every
    /// POST and DELETE needs `Authorization: Bearer <token>`; without one, they
    /// are refused unless `listen` is a loopback address.
    pub token_file: Option<PathBuf>,
    /// The token itself, for `X0TTA6BL4_HTTP__TOKEN` (a file is better: it
    /// stays out of the process environment and the config).
    pub token: Option<String>,
    /// Require the token for reads too (GET views, `/metrics`, the dashboard);
    /// `/health` and `/ready` stay open for probes.
    pub protect_reads: bool,
    /// The admin API over mTLS.
    pub tls: HttpTlsConfig,
}

/// `[http.tls]`: the API over mTLS, with the node's SVID as its certificate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpTlsConfig {
    /// Address of the mTLS listener (needs `svid.enabled`). When set,
    /// changes (POST, DELETE) are taken there only, from clients with an
    /// SVID of the trust domain that the policy's `admin` rule admits.
    pub listen: Option<SocketAddr>,
    /// Turn the plain-HTTP listener (`http.listen`, reads only while
    /// `tls.listen` is set) off.
    pub no_plain_http: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 1,
            token_file: None,
            token: None,
            protect_reads: false,
            tls: HttpTlsConfig::default(),
        }
    }
}

impl HttpConfig {
    /// The API token: from `token_file` (first line, trimmed) or `token`.
    pub fn api_token(&self) -> Result<Option<String>, ConfigError> {
        let Some(file) = &self.token_file else {
            return Ok(self.token.clone().filter(|t| !t.trim().is_empty()));
        };
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError::Invalid {
            key: "http.token_file",
            problem: format!("cannot read {}: {e}", file.display()),
        })?;
        match text.lines().next().map(str::trim).filter(|t| !t.is_empty()) {
            Some(token) => Ok(Some(token.to_string())),
            None => Err(ConfigError::Invalid {
                key: "http.token_file",
                problem: format!("{} is empty", file.display()),
            }),
        }
    }
}

/// Everything one node needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node name, shown in beacons and on the dashboard.
    pub name: String,
    /// Where the sled database lives; `./data/<name>` when empty.
    pub data_dir: Option<PathBuf>,
    /// HTTP server.
    pub http: HttpConfig,
    /// Mesh (libp2p) settings.
    pub mesh: MeshConfig,
    /// Routing settings.
    pub router: RouterConfig,
    /// XDP counters, interface statistics, quarantine.
    pub telemetry: TelemetryConfig,
    /// Circuit breakers, action rate limit, retries.
    pub breaker: BreakerConfig,
    /// The self-healing loop.
    pub healer: HealerConfig,
    /// End-to-end post-quantum sessions.
    pub pqc: PqcConfig,
    /// Rego policies.
    pub policy: PolicyConfig,
    /// Alert sinks and delivery.
    pub alerter: AlerterConfig,
    /// Restart limits and stuck detection of the supervised actors.
    pub supervision: SupervisionConfig,
    /// The node's SPIFFE identity (X.509-SVID) and its renewal.
    pub svid: x0tta6bl4_actors::svid::SvidConfig,
    /// Replicated state (CRDTs over gossipsub): quarantine list, revocations,
    /// denied peers, live flags.
    pub sync: x0tta6bl4_actors::sync::SyncConfig,
    /// The payment checker and the Telegram sales bot (off by default).
    pub payments: x0tta6bl4_actors::payments::PaymentsConfig,
    /// Byzantine checks on beacons (`X0TTA6BL4_BYZANTINE=true`): clock and
    /// sequence sanity, links their other end denies; liars go to the healer.
    pub byzantine: bool,
    /// Post-quantum beacons (`X0TTA6BL4_PQC_BEACONS=true`): sign beacons with
    /// ML-DSA-65 and drop unsigned or badly signed ones.
    pub pqc_beacons: bool,
    /// Fast-failover profile (`X0TTA6BL4_FAILOVER=true`): the timers of
    /// [`NodeConfig::failover_defaults`] become the defaults; values set in the
    /// file or the environment still win.
    pub failover: bool,
    /// Minimal profile for small devices (`X0TTA6BL4_MINIMAL=true`): the
    /// settings of [`NodeConfig::with_minimal`] become the defaults; values set
    /// in the file or the environment still win.
    pub minimal: bool,
    /// Worker threads of the network runtime (libp2p, frame streams, sealing).
    pub network_threads: usize,
    /// MiB of sled's page cache (`X0TTA6BL4_STORE_CACHE_MIB`): it bounds
    /// the memory the database takes as the node runs.
    pub store_cache_mib: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: "node".into(),
            data_dir: None,
            http: HttpConfig::default(),
            mesh: MeshConfig::default(),
            router: RouterConfig::default(),
            telemetry: TelemetryConfig::default(),
            breaker: BreakerConfig::default(),
            healer: HealerConfig::default(),
            pqc: PqcConfig::default(),
            policy: PolicyConfig::default(),
            alerter: AlerterConfig::default(),
            supervision: SupervisionConfig::default(),
            svid: x0tta6bl4_actors::svid::SvidConfig::default(),
            sync: x0tta6bl4_actors::sync::SyncConfig::default(),
            payments: x0tta6bl4_actors::payments::PaymentsConfig::default(),
            byzantine: false,
            pqc_beacons: false,
            failover: false,
            minimal: false,
            network_threads: 2,
            store_cache_mib: 8,
        }
    }
}

impl NodeConfig {
    /// Loads defaults, then the file (if any), then `X0TTA6BL4_*` variables, and
    /// validates. When they turn a profile on (`failover`, `minimal`), loads
    /// again on top of that profile's defaults.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = Self::layered(NodeConfig::default(), file)?;
        if config.failover || config.minimal {
            let mut base = if config.failover {
                NodeConfig::failover_defaults()
            } else {
                NodeConfig::default()
            };
            if config.minimal {
                base = base.with_minimal();
            }
            config = Self::layered(base, file)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// This configuration turned into a minimal node for small devices: no
    /// XDP program (interface counters instead), TCP only (no QUIC endpoint
    /// and its buffers), one network thread, a healing history of 16 records,
    /// and smaller caches of seen message ids (4,096), known peers (256) and
    /// database pages (2 MiB).
    /// Routing, healing, sealed sessions and the API work as in a full node.
    pub fn with_minimal(self) -> Self {
        let tcp_only = self
            .mesh
            .listen
            .iter()
            .filter(|addr| !x0tta6bl4_actors::mesh::is_quic(addr))
            .cloned()
            .collect();
        Self {
            minimal: true,
            network_threads: 1,
            store_cache_mib: 2,
            mesh: MeshConfig {
                quic: false,
                listen: tcp_only,
                peer_book_limit: 256,
                ..self.mesh
            },
            router: RouterConfig {
                seen_capacity: 4_096,
                ..self.router
            },
            telemetry: TelemetryConfig {
                xdp: false,
                ..self.telemetry
            },
            healer: HealerConfig {
                history_limit: 16,
                ..self.healer
            },
            ..self
        }
    }

    /// The defaults of the fast-failover profile: the timers the namespace
    /// tests run with. A link silent for 300 ms is closed (1,500 ms by
    /// default) and beacons expire after 1.5 s (5 s). The cost: per link 20
    /// keepalives and 3.3 pings a second each way instead of 4 and 1, every
    /// node's beacon gossiped 3.3 times a second instead of once, and a
    /// process that stalls for 300 ms (a busy or overcommitted host) loses
    /// its links for a moment.
    pub fn failover_defaults() -> Self {
        let defaults = NodeConfig::default();
        Self {
            failover: true,
            mesh: MeshConfig {
                keepalive_interval_ms: 50,
                link_timeout_ms: 300,
                beacon_interval_ms: 300,
                ping_interval_ms: 300,
                ..defaults.mesh
            },
            router: RouterConfig {
                beacon_expiry_ms: 1_500,
                ..defaults.router
            },
            ..defaults
        }
    }

    /// `base`, then the file (if any), then `X0TTA6BL4_*` variables.
    fn layered(base: NodeConfig, file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(base));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::MissingFile(file.to_path_buf()));
            }
            figment = figment.merge(Toml::file(file));
        }
        let alert_env = Env::raw()
            .only(&ALERT_ENV)
            .map(|key| format!("alerter.{}", key.as_str().to_ascii_lowercase()).into());
        Ok(figment
            .merge(alert_env)
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .extract()
            .map_err(Box::new)?)
    }

    /// The data directory in force.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("data").join(&self.name))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.to_string(),
            })
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= x0tta6bl4_actors::mesh::beacon::MAX_NAME
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !name_ok {
            return invalid("name", "must be 1-64 characters of A-Z, a-z, 0-9, '-', '_' or '.'");
        }
        if self.http.workers == 0 {
            return invalid("http.workers", "must be at least 1");
        }
        if !(1..=64).contains(&self.network_threads) {
            return invalid("network_threads", "must be 1 to 64");
        }
        if !(1..=4096).contains(&self.store_cache_mib) {
            return invalid("store_cache_mib", "must be 1 to 4096");
        }
        if self.mesh.listen.is_empty() {
            return invalid("mesh.listen", "needs at least one address");
        }
        if !self.mesh.quic && self.mesh.listen.iter().any(x0tta6bl4_actors::mesh::is_quic) {
            return invalid(
                "mesh.listen",
                "has a QUIC address but mesh.quic is false (the minimal profile turns QUIC off)",
            );
        }
        if self.mesh.require_svid && !self.svid.enabled {
            return invalid(
                "mesh.require_svid",
                "needs svid.enabled (a node without an SVID cannot check others')",
            );
        }
        if self.mesh.max_peers == 0 {
            return invalid("mesh.max_peers", "must be at least 1");
        }
        if self.mesh.beacon_interval_ms < 50 {
            return invalid("mesh.beacon_interval_ms", "must be at least 50");
        }
        if self.mesh.ping_interval_ms < 50 || self.mesh.ping_timeout_ms < 50 {
            return invalid("mesh.ping_interval_ms", "and mesh.ping_timeout_ms must be at least 50");
        }
        if self.router.default_ttl < 2 {
            return invalid("router.default_ttl", "must be at least 2");
        }
        if self.router.max_payload_bytes.saturating_add(256) > self.mesh.max_frame_bytes {
            return invalid(
                "router.max_payload_bytes",
                "must be at least 256 bytes below mesh.max_frame_bytes",
            );
        }
        if self.router.hysteresis_percent > 100 || self.router.hysteresis_floor_us > 100_000 {
            // Wider, and a link the healer asked to avoid could keep its traffic.
            return invalid(
                "router.hysteresis_percent",
                "must be at most 100 and router.hysteresis_floor_us at most 100000 (100 ms)",
            );
        }
        if self.router.beacon_expiry_ms <= self.mesh.beacon_interval_ms {
            return invalid("router.beacon_expiry_ms", "must exceed mesh.beacon_interval_ms");
        }
        if let Err(problem) = self.telemetry.mode_request() {
            return invalid("telemetry.xdp_mode", &problem);
        }
        if self.telemetry.interval_ms < 10 {
            return invalid("telemetry.interval_ms", "must be at least 10");
        }
        if self.breaker.rate_limit == 0 || self.breaker.rate_window_secs == 0 {
            return invalid("breaker.rate_limit", "and breaker.rate_window_secs must be at least 1");
        }
        if self.breaker.max_breakers == 0 {
            return invalid("breaker.max_breakers", "must be at least 1");
        }
        if self.supervision.max_restarts == 0 {
            return invalid("supervision.max_restarts", "must be at least 1");
        }
        if self.supervision.within_secs == 0 {
            return invalid("supervision.within_secs", "must be at least 1");
        }
        if self.supervision.stuck_after_ms < 100 {
            return invalid("supervision.stuck_after_ms", "must be at least 100");
        }
        if self.healer.cycle_ms < 10 {
            return invalid("healer.cycle_ms", "must be at least 10");
        }
        if !(0.0..=1.0).contains(&self.healer.loss_threshold) {
            return invalid("healer.loss_threshold", "must be between 0 and 1");
        }
        if !(0.0..=1.0).contains(&self.healer.verified_delivery) {
            return invalid("healer.verified_delivery", "must be between 0 and 1");
        }
        if self.healer.quarantine_secs == 0 {
            return invalid("healer.quarantine_secs", "must be at least 1");
        }
        if self.telemetry.quarantine_ttl_secs == 0 {
            return invalid("telemetry.quarantine_ttl_secs", "must be at least 1");
        }
        match self.pqc.mode() {
            Err(problem) => return invalid("pqc.mode", &problem),
            Ok(x0tta6bl4_pqc::PqcMode::Off) if self.pqc_beacons => {
                return invalid("pqc_beacons", "needs post-quantum keys: pqc.mode must not be off");
            }
            Ok(_) => {}
        }
        self.validate_alerter()?;
        if let Some((key, problem)) = self.svid.problem() {
            return invalid(key, &problem);
        }
        if self.http.tls.listen.is_some() && !self.svid.enabled {
            return invalid(
                "http.tls.listen",
                "needs svid.enabled: the mTLS listener presents the node's SVID",
            );
        }
        if self.http.tls.no_plain_http && self.http.tls.listen.is_none() {
            return invalid(
                "http.tls.no_plain_http",
                "needs http.tls.listen: without either listener the node has no API",
            );
        }
        self.validate_limits()?;
        if let Err(problem) = self.sync.validate() {
            return invalid("sync", &problem);
        }
        if let Err((key, problem)) = self.payments.validate() {
            return invalid(key, &problem);
        }
        if self.pqc.queue_per_peer == 0 || self.pqc.max_sessions == 0 || self.pqc.max_pending == 0 {
            return invalid(
                "pqc.queue_per_peer",
                "pqc.max_sessions and pqc.max_pending must be at least 1",
            );
        }
        Ok(())
    }
}

impl NodeConfig {
    fn validate_alerter(&self) -> Result<(), ConfigError> {
        let alerter = &self.alerter;
        let invalid = |key, problem: &str| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.to_string(),
            })
        };
        let is_http = |url: &str| url.starts_with("http://") || url.starts_with("https://");
        if alerter.alertmanager_url.as_deref().is_some_and(|u| !is_http(u)) {
            return invalid(
                "alerter.alertmanager_url",
                "(ALERTMANAGER_URL) must be an http:// or https:// URL",
            );
        }
        if !is_http(&alerter.telegram_api_url) || !is_http(&alerter.pagerduty_url) {
            return invalid(
                "alerter.telegram_api_url",
                "and alerter.pagerduty_url must be http:// or https:// URLs",
            );
        }
        if alerter.telegram_bot_token.is_some() != alerter.telegram_chat_id.is_some() {
            return invalid(
                "alerter.telegram_bot_token",
                "(TELEGRAM_BOT_TOKEN) and alerter.telegram_chat_id (TELEGRAM_CHAT_ID) go together",
            );
        }
        if alerter.pagerduty_routing_key.as_deref().is_some_and(str::is_empty) {
            return invalid("alerter.pagerduty_routing_key", "(PAGERDUTY_ROUTING_KEY) is empty");
        }
        if alerter.timeout_ms == 0 || alerter.tick_ms == 0 || alerter.per_minute == 0 {
            return invalid(
                "alerter.timeout_ms",
                "alerter.tick_ms and alerter.per_minute must be at least 1",
            );
        }
        if alerter.max_outbox == 0 || alerter.max_firing == 0 {
            return invalid("alerter.max_outbox", "and alerter.max_firing must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
// figment's Jail API returns its large error type; that is its design, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_override() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("node.toml", "name = \"alpha\"\n[mesh]\nmax_peers = 3\n")?;
            jail.set_env("X0TTA6BL4_MESH__MAX_PEERS", "7");
            jail.set_env("X0TTA6BL4_HTTP__LISTEN", "127.0.0.1:0");
            let config = NodeConfig::load(Some(Path::new("node.toml"))).expect("loads");
            assert_eq!(config.name, "alpha");
            assert_eq!(config.mesh.max_peers, 7);
            assert_eq!(config.http.listen.port(), 0);
            assert_eq!(config.data_dir(), PathBuf::from("data/alpha"));
            Ok(())
        });
    }

    #[test]
    fn failover_profile_sets_fast_timers_that_explicit_values_override() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("X0TTA6BL4_FAILOVER", "true");
            let config = NodeConfig::load(None).expect("loads");
            assert!(config.failover);
            let (mesh, router) = (&config.mesh, &config.router);
            assert_eq!(
                (
                    mesh.keepalive_interval_ms,
                    mesh.link_timeout_ms,
                    mesh.beacon_interval_ms
                ),
                (50, 300, 300)
            );
            assert_eq!((mesh.ping_interval_ms, router.beacon_expiry_ms), (300, 1_500));
            assert_eq!(mesh.max_peers, MeshConfig::default().max_peers, "the rest stays");

            jail.create_file("node.toml", "[mesh]\nlink_timeout_ms = 900\n")?;
            jail.set_env("X0TTA6BL4_MESH__KEEPALIVE_INTERVAL_MS", "100");
            let config = NodeConfig::load(Some(Path::new("node.toml"))).expect("loads");
            assert_eq!(config.mesh.link_timeout_ms, 900, "the file wins");
            assert_eq!(config.mesh.keepalive_interval_ms, 100, "the environment wins");
            assert_eq!(config.mesh.beacon_interval_ms, 300);

            jail.set_env("X0TTA6BL4_FAILOVER", "false");
            let config = NodeConfig::load(None).expect("loads");
            assert_eq!(config.mesh.link_timeout_ms, MeshConfig::default().link_timeout_ms);
            Ok(())
        });
    }

    #[test]
    fn minimal_profile_turns_off_quic_xdp_and_big_caches_and_keeps_explicit_values() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("X0TTA6BL4_MINIMAL", "true");
            let config = NodeConfig::load(None).expect("loads");
            assert!(config.minimal && !config.mesh.quic && !config.telemetry.xdp);
            assert_eq!(config.network_threads, 1);
            assert_eq!(config.mesh.listen.len(), 1, "the QUIC address is gone");
            assert!(!x0tta6bl4_actors::mesh::is_quic(&config.mesh.listen[0]));
            assert_eq!((config.router.seen_capacity, config.healer.history_limit), (4_096, 16));
            assert_eq!(config.store_cache_mib, 2);
            assert_eq!(config.mesh.link_timeout_ms, MeshConfig::default().link_timeout_ms);

            jail.set_env("X0TTA6BL4_FAILOVER", "true");
            jail.set_env("X0TTA6BL4_NETWORK_THREADS", "2");
            let config = NodeConfig::load(None).expect("loads");
            assert_eq!(config.mesh.link_timeout_ms, 300, "both profiles at once");
            assert!(!config.mesh.quic);
            assert_eq!(config.network_threads, 2, "the environment wins");

            jail.set_env("X0TTA6BL4_MESH__LISTEN", r#"["/ip4/0.0.0.0/udp/4001/quic-v1"]"#);
            let err = NodeConfig::load(None).expect_err("QUIC address without QUIC");
            assert!(err.to_string().contains("mesh.quic"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_get_clear_errors() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("X0TTA6BL4_MESH__MAX_PEERS", "0");
            let err = NodeConfig::load(None).expect_err("max_peers 0");
            assert!(err.to_string().contains("mesh.max_peers"), "{err}");
            jail.set_env("X0TTA6BL4_MESH__MAX_PEERS", "lots");
            assert!(NodeConfig::load(None).is_err());
            jail.set_env("X0TTA6BL4_MESH__MAX_PEERS", "4");
            jail.set_env("X0TTA6BL4_ROUTER__HYSTERESIS_PERCENT", "1000");
            let err = NodeConfig::load(None).expect_err("hysteresis too wide");
            assert!(err.to_string().contains("router.hysteresis_percent"), "{err}");
            jail.set_env("X0TTA6BL4_ROUTER__HYSTERESIS_PERCENT", "10");
            for (key, bad, good, named) in [
                (
                    "TELEMETRY__QUARANTINE_TTL_SECS",
                    "18446744073709551615",
                    "600",
                    "telemetry.quarantine_ttl_secs",
                ),
                ("BREAKER__RATE_WINDOW_SECS", "604801", "1", "breaker.rate_window_secs"),
                ("PQC__MAX_SESSIONS", "100000000", "64", "pqc.max_sessions"),
                (
                    "ROUTER__MAX_PAYLOAD_BYTES",
                    "18446744073709551615",
                    "1024",
                    "router.max_payload_bytes",
                ),
                ("MESH__LINK_TIMEOUT_MS", "100", "1500", "mesh.link_timeout_ms"),
                ("PQC__HANDSHAKE_TIMEOUT_MS", "0", "5000", "pqc.handshake_timeout_ms"),
            ] {
                let var = format!("{ENV_PREFIX}{key}");
                jail.set_env(&var, bad);
                let err = NodeConfig::load(None).expect_err(key);
                assert!(err.to_string().contains(named), "{key}={bad}: {err}");
                jail.set_env(&var, good);
            }
            assert!(NodeConfig::load(None).is_ok(), "every bad value was taken back");
            jail.set_env("X0TTA6BL4_MESH__TYPO", "1");
            let err = NodeConfig::load(None).expect_err("unknown key");
            assert!(err.to_string().contains("typo"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_usual_alert_variables_configure_the_sinks() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ALERTMANAGER_URL", "http://127.0.0.1:9093");
            jail.set_env("TELEGRAM_BOT_TOKEN", "123:abc");
            jail.set_env("TELEGRAM_CHAT_ID", "-100200300");
            jail.set_env("PAGERDUTY_ROUTING_KEY", "R0UT1NGKEY");
            let config = NodeConfig::load(None).expect("loads");
            assert_eq!(
                config.alerter.alertmanager_url.as_deref(),
                Some("http://127.0.0.1:9093")
            );
            assert_eq!(config.alerter.telegram_bot_token.as_deref(), Some("123:abc"));
            assert_eq!(
                config.alerter.telegram_chat_id,
                Some(x0tta6bl4_actors::alerter::config::TelegramChat::Id(-100_200_300))
            );
            assert_eq!(config.alerter.pagerduty_routing_key.as_deref(), Some("R0UT1NGKEY"));
            jail.set_env("TELEGRAM_CHAT_ID", "@alerts");
            let config = NodeConfig::load(None).expect("loads");
            assert_eq!(
                config.alerter.telegram_chat_id,
                Some(x0tta6bl4_actors::alerter::config::TelegramChat::Name("@alerts".into()))
            );
            jail.set_env("ALERTMANAGER_URL", "ftp://x");
            let err = NodeConfig::load(None).expect_err("not http");
            assert!(err.to_string().contains("ALERTMANAGER_URL"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_telegram_token_without_a_chat_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TELEGRAM_BOT_TOKEN", "123:abc");
            let err = NodeConfig::load(None).expect_err("no chat");
            assert!(err.to_string().contains("TELEGRAM_CHAT_ID"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn alerter_pauses_longer_than_a_day_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("X0TTA6BL4_ALERTER__OPEN_SECS", "18446744073709551615");
            let err = NodeConfig::load(None).expect_err("open_secs too long");
            assert!(err.to_string().contains("alerter.open_secs"), "{err}");
            jail.set_env("X0TTA6BL4_ALERTER__OPEN_SECS", "30");
            jail.set_env("X0TTA6BL4_ALERTER__ALERTMANAGER_REFRESH_SECS", "100000");
            assert!(NodeConfig::load(None).is_err());
            Ok(())
        });
    }

    #[test]
    fn the_mtls_listener_needs_an_svid_and_some_listener_must_stay() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("X0TTA6BL4_HTTP__TLS__LISTEN", "127.0.0.1:8443");
            let err = NodeConfig::load(None).expect_err("no SVID");
            assert!(err.to_string().contains("svid.enabled"), "{err}");
            jail.set_env("X0TTA6BL4_SVID__ENABLED", "true");
            let config = NodeConfig::load(None).expect("loads");
            assert_eq!(config.http.tls.listen, Some("127.0.0.1:8443".parse().expect("addr")));
            jail.clear_env();
            jail.set_env("X0TTA6BL4_HTTP__TLS__NO_PLAIN_HTTP", "true");
            let err = NodeConfig::load(None).expect_err("no listener at all");
            assert!(err.to_string().contains("http.tls.no_plain_http"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn mesh_admission_by_svid_needs_an_svid() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("X0TTA6BL4_MESH__REQUIRE_SVID", "true");
            let err = NodeConfig::load(None).expect_err("no SVID");
            assert!(err.to_string().contains("mesh.require_svid"), "{err}");
            jail.set_env("X0TTA6BL4_SVID__ENABLED", "true");
            assert!(NodeConfig::load(None).expect("loads").mesh.require_svid);
            Ok(())
        });
    }

    #[test]
    fn missing_file_is_named() {
        let err = NodeConfig::load(Some(Path::new("/nonexistent/node.toml"))).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/node.toml"));
    }
}
