//! The admin API over mTLS, called by real TLS clients: changes need a client
//! SVID the policy's `admin` rule admits (and a pinned ID its pinned key);
//! the server's SVID rotates under a
//! client calling all along without one failed request; a CRL made by
//! `openssl ca -gencrl` shuts a revoked client out while others carry on; a
//! real `openssl ocsp` responder answering "revoked" is honoured, and when it
//! is gone an unasked certificate follows `svid.ocsp_unreachable`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use x0tta6bl4_actors::svid::tls::client_config;
use x0tta6bl4_actors::svid::validate::pin_of;
use x0tta6bl4_actors::svid::{IssuedSvid, SpiffeId, Trust, TrustDomainCa};
use x0tta6bl4_integration::operator_ca::{OperatorCa, TRUST_DOMAIN as TD};
use x0tta6bl4_integration::{metric, metrics_text, test_spec, tool_available, wait_for, NodeProcess};

const TTL_SECS: u64 = 6;

/// What these tests do with the operator's CA: nodes serving mTLS, clients.
trait MtlsCa {
    /// A node issuing its own SVIDs with this CA, serving mTLS, with `extra` settings.
    fn node(&self, dir: &Path, extra: &[(&str, String)]) -> (NodeProcess, String);
    /// The trust of this CA's bundle.
    fn trust(&self) -> Arc<Trust>;
    fn client(&self, svid: &IssuedSvid, node: &NodeProcess) -> reqwest::blocking::Client;
}

impl MtlsCa for OperatorCa {
    fn node(&self, dir: &Path, extra: &[(&str, String)]) -> (NodeProcess, String) {
        let mut spec = test_spec(dir, "mtls")
            .with("X0TTA6BL4_SVID__TTL_SECS", TTL_SECS.to_string())
            .with("X0TTA6BL4_HTTP__TLS__LISTEN", "127.0.0.1:0");
        for (key, value) in self.node_env().iter().chain(extra) {
            spec = spec.with(key, value.clone());
        }
        let node = NodeProcess::spawn(spec).expect("node starts");
        let https = wait_for(Duration::from_secs(10), "the mTLS address", || {
            std::fs::read_to_string(node.spec().data_dir.join("https.addr")).ok()
        });
        (node, format!("https://{https}"))
    }

    fn trust(&self) -> Arc<Trust> {
        Arc::new(Trust::new(TD, self.ca.bundle_pem(), Duration::ZERO, Default::default()).expect("trust"))
    }

    fn client(&self, svid: &IssuedSvid, node: &NodeProcess) -> reqwest::blocking::Client {
        let expect = SpiffeId::for_node(TD, &node.peer_id).expect("node id");
        let tls = client_config(svid, self.trust(), Some(expect)).expect("client TLS");
        reqwest::blocking::Client::builder()
            .use_preconfigured_tls(tls)
            .tls_info(true)
            // A new connection, so a new handshake, for every request.
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client")
    }
}

/// A harmless change: an alert with no sink to go to.
fn change(client: &reqwest::blocking::Client, api: &str) -> reqwest::Result<reqwest::blocking::Response> {
    client
        .post(format!("{api}/api/v1/alerts"))
        .json(&json!({ "name": "MtlsProbe", "summary": "a change over mTLS" }))
        .send()
}

#[test]
fn the_server_svid_rotates_three_times_under_a_calling_client_without_a_failed_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = OperatorCa::new(dir.path());
    let (node, api) = ca.node(dir.path(), &[]);
    let client = ca.client(&ca.issue("spiffe://mesh.test/admin/alice"), &node);

    let mut presented: Vec<Vec<u8>> = Vec::new();
    let (mut requests, started) = (0u32, Instant::now());
    let deadline = started + Duration::from_secs(TTL_SECS * 10);
    while presented.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "{} server SVIDs in {:?}",
            presented.len(),
            started.elapsed()
        );
        let response = change(&client, &api).unwrap_or_else(|e| panic!("request {requests} failed: {e:?}"));
        assert_eq!(response.status(), 202, "request {requests}");
        let leaf = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate().map(<[u8]>::to_vec))
            .expect("the server's certificate");
        if presented.last() != Some(&leaf) {
            assert!(!presented.contains(&leaf), "an old SVID presented again");
            presented.push(leaf);
        }
        requests += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "{requests} changes over mTLS, each on a new connection, across {} server SVIDs in {:.1} s: none failed",
        presented.len(),
        started.elapsed().as_secs_f64()
    );
    let identity = node.get("/api/v1/identity").expect("identity");
    assert!(identity["renewals"].as_u64().is_some_and(|r| r >= 4), "{identity}");
}

#[test]
fn changes_need_a_client_svid_the_admin_rule_admits_and_plain_http_serves_reads_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = OperatorCa::new(dir.path());
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).expect("policy dir");
    std::fs::write(
        policies.join("admin.rego"),
        "package x0tta6bl4.admin\ndeny if not startswith(input.spiffe_id, \"spiffe://mesh.test/admin/\")\n",
    )
    .expect("policy");
    let carol = ca.issue("spiffe://mesh.test/admin/carol");
    let carol_rekeyed = ca.issue("spiffe://mesh.test/admin/carol");
    let pin = pin_of(&carol.cert_der).expect("pin");
    let (node, api) = ca.node(
        dir.path(),
        &[
            ("X0TTA6BL4_POLICY__DIR", policies.display().to_string()),
            (
                "X0TTA6BL4_SVID__PINS",
                format!("{{\"spiffe://mesh.test/admin/carol\"=\"{pin}\"}}"),
            ),
        ],
    );

    let admin = ca.client(&ca.issue("spiffe://mesh.test/admin/alice"), &node);
    assert_eq!(change(&admin, &api).expect("admin").status(), 202);
    let reads = admin.get(format!("{api}/api/v1/status")).send().expect("read");
    assert_eq!(reads.status(), 200);

    let a_node = ca.client(&ca.issue("spiffe://mesh.test/node/someone"), &node);
    let denied = change(&a_node, &api).expect("answered");
    assert_eq!(denied.status(), 403);
    assert_eq!(
        denied.json::<serde_json::Value>().expect("JSON")["reason"],
        "policy_denied"
    );

    // No client certificate: the handshake is fine, the change is not.
    let anonymous = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let refused = change(&anonymous, &api).expect("answered");
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.json::<serde_json::Value>().expect("JSON")["reason"],
        "no_client_svid"
    );

    // Another trust domain's SVID does not get through the handshake.
    let foreign = TrustDomainCa::generate("other.test", Duration::from_secs(3600)).expect("CA");
    let stranger = foreign
        .issue(
            &SpiffeId::parse("spiffe://other.test/admin/eve").expect("id"),
            Duration::from_secs(3600),
        )
        .expect("SVID");
    assert!(change(&ca.client(&stranger, &node), &api).is_err(), "handshake refused");

    // A pinned SPIFFE ID gets in with its pinned key only.
    assert_eq!(
        change(&ca.client(&carol, &node), &api).expect("pinned key").status(),
        202
    );
    assert!(change(&ca.client(&carol_rekeyed, &node), &api).is_err(), "another key");

    let plain = node
        .post("/api/v1/alerts", &json!({ "name": "Plain" }))
        .expect_err("plain HTTP takes no changes");
    assert!(plain.to_string().contains("changes_need_mtls"), "{plain}");
    assert_eq!(node.get("/api/v1/status").expect("plain reads")["name"], "mtls");

    for reason in ["valid", "wrong_trust_domain", "pin_mismatch"] {
        assert!(validations(&node, reason) >= 1.0, "{reason}");
    }
}

#[test]
fn a_crl_from_openssl_ca_shuts_a_revoked_client_out_and_others_carry_on() {
    if !tool_available("openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = OperatorCa::new(dir.path());
    ca.gencrl();
    let (node, api) = ca.node(
        dir.path(),
        &[
            ("X0TTA6BL4_SVID__CRL", ca.path("crl.pem")),
            ("X0TTA6BL4_SVID__CRL_REFRESH_SECS", "1".into()),
        ],
    );
    let alice_svid = ca.issue("spiffe://mesh.test/admin/alice");
    let bob_svid = ca.issue("spiffe://mesh.test/admin/bob");
    let (alice, bob) = (ca.client(&alice_svid, &node), ca.client(&bob_svid, &node));
    assert_eq!(change(&bob, &api).expect("bob before").status(), 202);

    let bob_file = ca.path("bob.pem");
    std::fs::write(&bob_file, &bob_svid.cert_pem).expect("bob.pem");
    ca.openssl_ca(&["-revoke", &bob_file]);
    ca.gencrl();
    let verify = Command::new("openssl")
        .args(["verify", "-crl_check", "-CAfile", &ca.path("bundle.pem"), "-CRLfile"])
        .args([ca.path("crl.pem"), bob_file])
        .output()
        .expect("openssl verify");
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("revoked")
            || String::from_utf8_lossy(&verify.stderr).contains("revoked"),
        "openssl itself sees bob revoked"
    );

    let revoked_at = Instant::now();
    wait_for(Duration::from_secs(20), "bob shut out", || {
        assert_eq!(change(&alice, &api).expect("alice carries on").status(), 202);
        // Refused at the handshake, or (on a connection made before) at the change.
        let bob_out = refused(&bob, &api);
        std::thread::sleep(Duration::from_millis(100));
        bob_out.then_some(())
    });
    println!(
        "bob refused {:.2} s after the CRL was written (refresh every 1 s)",
        revoked_at.elapsed().as_secs_f64()
    );
    assert!(change(&bob, &api).is_err(), "and stays refused");
    assert!(validations(&node, "revoked") >= 1.0);
    assert!(
        metric(
            &metrics_text(&node),
            "x0tta_svid_crl_refreshes_total",
            &["result=\"ok\""]
        ) >= 2.0
    );
}

/// A running `openssl ocsp` responder over the CA's index, stopped on drop.
struct OcspResponder(std::process::Child);

impl OcspResponder {
    /// Answers on `port`, signed by the CA itself, each answer good for a minute.
    fn start(ca: &OperatorCa, port: u16) -> Self {
        let log = ca.dir.join("ocsp.log");
        let child = Command::new("openssl")
            .args(["ocsp", "-index", &ca.path("index.txt"), "-port", &port.to_string()])
            .args(["-rsigner", &ca.path("bundle.pem"), "-rkey", &ca.path("ca.key.pem")])
            .args(["-CA", &ca.path("bundle.pem"), "-nmin", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("openssl ocsp starts");
        // Not probed with a connection: one that closes without a request
        // wedges `openssl ocsp` (OpenSSL 3), which serves one at a time.
        wait_for(Duration::from_secs(10), "the OCSP responder to listen", || {
            let text = std::fs::read_to_string(&log).ok()?;
            text.contains("waiting for OCSP client connections").then_some(())
        });
        Self(child)
    }
}

impl Drop for OcspResponder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A change refused: at the handshake, or with 401 on a connection made before.
fn refused(client: &reqwest::blocking::Client, api: &str) -> bool {
    change(client, api).map_or(true, |r| r.status() == 401)
}

fn validations(node: &NodeProcess, reason: &str) -> f64 {
    metric(
        &metrics_text(node),
        "x0tta_svid_validations_total",
        &[&format!("reason=\"{reason}\"")],
    )
}

#[test]
fn an_openssl_ocsp_responder_is_honoured_and_an_unreachable_one_follows_the_policy() {
    if !tool_available("openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = OperatorCa::new(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let responder_url = format!("http://127.0.0.1:{port}");
    let dave = ca.openssl_issue("dave", "spiffe://mesh.test/admin/dave", &responder_url);
    let erin = ca.openssl_issue("erin", "spiffe://mesh.test/admin/erin", &responder_url);
    let frank = ca.openssl_issue("frank", "spiffe://mesh.test/admin/frank", &responder_url);
    ca.openssl_ca(&["-revoke", &ca.path("erin.pem")]);
    let responder = OcspResponder::start(&ca, port);

    let (open_dir, closed_dir) = (dir.path().join("open"), dir.path().join("closed"));
    std::fs::create_dir_all(&open_dir).expect("dir");
    std::fs::create_dir_all(&closed_dir).expect("dir");
    let (open, open_api) = ca.node(&open_dir, &[]);
    let (closed, closed_api) = ca.node(&closed_dir, &[("X0TTA6BL4_SVID__OCSP_UNREACHABLE", "closed".into())]);
    let nodes = [(&open, &open_api), (&closed, &closed_api)];

    // Good: accepted by both (the closed node once the responder answered).
    for (node, api) in nodes {
        let client = ca.client(&dave, node);
        wait_for(Duration::from_secs(15), "dave accepted", || {
            change(&client, api).ok().filter(|r| r.status() == 202)
        });
    }
    assert!(
        validations(&closed, "ocsp_pending") >= 1.0,
        "closed refused until answered"
    );
    // Revoked in openssl's index: refused by both once the responder said so.
    for (node, api) in nodes {
        let client = ca.client(&erin, node);
        wait_for(Duration::from_secs(15), "erin refused as revoked", || {
            std::thread::sleep(Duration::from_millis(100));
            (refused(&client, api) && validations(node, "ocsp_revoked") >= 1.0).then_some(())
        });
        assert!(refused(&client, api), "and stays refused");
    }
    println!("openssl ocsp: dave (good) accepted, erin (revoked) refused by both nodes");

    // The responder goes away: a certificate never asked about follows the policy.
    drop(responder);
    let frank_open = ca.client(&frank, &open);
    for _ in 0..5 {
        assert_eq!(change(&frank_open, &open_api).expect("open").status(), 202);
        std::thread::sleep(Duration::from_millis(200));
    }
    let frank_closed = ca.client(&frank, &closed);
    wait_for(
        Duration::from_secs(15),
        "the closed node to find the responder unreachable",
        || {
            let closed_out = refused(&frank_closed, &closed_api);
            (closed_out && validations(&closed, "ocsp_unreachable") >= 1.0).then_some(())
        },
    );
    // No sink is configured: the alert is counted and logged.
    for node in [&open, &closed] {
        wait_for(Duration::from_secs(10), "OCSP_RESPONDER_UNREACHABLE to fire", || {
            let text = metrics_text(node);
            let fired = metric(&text, "x0tta_alerts_total", &["name=\"OCSP_RESPONDER_UNREACHABLE\""]);
            (fired >= 1.0).then_some(())
        });
    }
    // A cached good answer carries through the outage.
    assert_eq!(
        change(&ca.client(&dave, &closed), &closed_api).expect("dave").status(),
        202
    );
    println!("responder down: frank accepted by the open node, refused by the closed one; dave still accepted");
}
