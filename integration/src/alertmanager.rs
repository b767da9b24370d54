//! A real Prometheus Alertmanager (Debian package `prometheus-alertmanager`)
//! on a loopback port, clustering off, sending every notification to a
//! webhook, killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::wait_for;

/// The program the Debian package installs.
pub const PROGRAM: &str = "prometheus-alertmanager";

/// A running Alertmanager.
pub struct Alertmanager {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Alertmanager {
    /// Starts on `port` with its files under `dir`; notifications (firing and
    /// resolved) go to `webhook`, grouped per alert, right away.
    pub fn start(dir: &Path, port: u16, webhook: &str) -> Self {
        std::fs::create_dir_all(dir).expect("alertmanager dir");
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: hook\n  group_by: ['...']\n  group_wait: 100ms\n  group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n  - name: hook\n    webhook_configs:\n      - url: {webhook}\n        send_resolved: true\n"
            ),
        )
        .expect("write alertmanager config");
        let child = Command::new(PROGRAM)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("alertmanager.log")).expect("log file"))
            .spawn()
            .expect("start alertmanager");
        let alertmanager = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_for(Duration::from_secs(20), "alertmanager ready", || {
            ureq::get(&format!("{}/-/ready", alertmanager.url))
                .timeout(Duration::from_secs(1))
                .call()
                .ok()
                .map(|_| ())
        });
        alertmanager
    }

    /// Active alerts named `alertname` (`GET /api/v2/alerts`; resolved ones
    /// are not listed).
    pub fn alerts(&self, alertname: &str) -> Vec<Value> {
        ureq::get(&format!("{}/api/v2/alerts", self.url))
            .query("filter", &format!("alertname=\"{alertname}\""))
            .timeout(Duration::from_secs(5))
            .call()
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
