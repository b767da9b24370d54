//! SVIDs from a SPIFFE Workload API: a gRPC server speaking
//! `SpiffeWorkloadAPI.FetchX509SVID` over a Unix socket pushes a first SVID
//! and then a rotated one; the node takes the rotated one — on its identity
//! view and as the mTLS API's server certificate — without a restart, and a
//! bundle rotated to a new CA with it. An SVID left to expire makes the node
//! unready, and the dashboard, rendered in headless Chromium, says so.

use std::time::Duration;

use x0tta6bl4_actors::svid::{SpiffeId, TrustDomainCa};
use x0tta6bl4_integration::operator_ca::OperatorCa;
use x0tta6bl4_integration::workload_api::{WorkloadApiServer, X509SvidResponse};
use x0tta6bl4_integration::{test_spec, wait_for, NodeProcess, NodeSpec};

/// The serial of the certificate the node's mTLS listener presents now.
fn served_serial(node: &NodeProcess) -> Option<String> {
    let addr = std::fs::read_to_string(node.spec().data_dir.join("https.addr")).ok()?;
    let output = std::process::Command::new("openssl")
        .args(["s_client", "-connect", addr.trim(), "-tls1_3"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let pem = String::from_utf8_lossy(&output.stdout).to_string();
    let der = x0tta6bl4_actors::svid::ca::pem_der(&pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(x0tta6bl4_actors::svid::ca::hex(cert.raw_serial()))
}

/// A node's spec in `dir` and its peer id, learnt from a first run without
/// an identity (the key stays in sled).
fn spec_and_peer_id(dir: &std::path::Path, name: &str) -> (NodeSpec, String) {
    let spec = test_spec(dir, name);
    let mut first_run = NodeProcess::spawn(spec.clone()).expect("node starts");
    let peer_id = first_run.peer_id.clone();
    first_run.stop();
    (spec, peer_id)
}

/// `spec` with its SVIDs taken from `server`, named by the variable `via`
/// (`SPIFFE_ENDPOINT_SOCKET` or the node's own setting).
fn on_workload_api(spec: NodeSpec, server: &WorkloadApiServer, via: &str) -> NodeProcess {
    let spec = spec
        .with("X0TTA6BL4_SVID__ENABLED", "true")
        .with("X0TTA6BL4_SVID__TRUST_DOMAIN", "mesh.test")
        .with(via, server.endpoint());
    NodeProcess::spawn(spec).expect("node starts with the Workload API")
}

#[test]
fn a_rotated_svid_pushed_by_the_workload_api_is_used_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = OperatorCa::new(dir.path());
    let server = WorkloadApiServer::start(dir.path());
    let (spec, peer_id) = spec_and_peer_id(dir.path(), "workload");
    let id = format!("spiffe://mesh.test/node/{peer_id}");
    let first = ca.issue(&id);
    server.push(X509SvidResponse::of(&first, ca.ca.bundle_pem()));
    let spec = spec.with("X0TTA6BL4_HTTP__TLS__LISTEN", "127.0.0.1:0");
    let node = on_workload_api(spec, &server, "SPIFFE_ENDPOINT_SOCKET");
    let pid = node.pid();
    let identity = node.get("/api/v1/identity").expect("identity");
    assert_eq!(identity["serial"], first.serial.as_str(), "{identity}");
    assert_eq!(identity["spiffe_id"], id.as_str());
    let openssl = x0tta6bl4_integration::tool_available("openssl", "openssl");
    if openssl {
        assert_eq!(served_serial(&node).as_deref(), Some(first.serial.as_str()));
    }

    let rotated = ca.issue(&id);
    server.push(X509SvidResponse::of(&rotated, ca.ca.bundle_pem()));
    wait_for(Duration::from_secs(15), "the rotated SVID", || {
        let identity = node.get("/api/v1/identity").ok()?;
        (identity["serial"] == rotated.serial.as_str()).then_some(identity)
    });
    assert_eq!(node.pid(), pid, "no restart");
    if openssl {
        assert_eq!(
            served_serial(&node).as_deref(),
            Some(rotated.serial.as_str()),
            "new connections get it"
        );
    }
    let identity = node.get("/api/v1/identity").expect("identity");
    assert_eq!(
        identity["renewals"], 2,
        "two SVIDs received, none fetched by the node: {identity}"
    );

    // A CA rotation: the bundle now holds a second CA, which issued the next SVID.
    let next_ca = TrustDomainCa::generate("mesh.test", Duration::from_secs(86_400)).expect("CA");
    let from_next = next_ca
        .issue(&SpiffeId::parse(&id).expect("id"), Duration::from_secs(3600))
        .expect("SVID");
    let both = format!("{}{}", ca.ca.bundle_pem(), next_ca.bundle_pem());
    server.push(X509SvidResponse::of(&from_next, &both));
    wait_for(Duration::from_secs(15), "the SVID of the new CA", || {
        let identity = node.get("/api/v1/identity").ok()?;
        (identity["serial"] == from_next.serial.as_str()).then_some(())
    });
    assert!(
        node.log()
            .contains("a new trust bundle from the Workload API is in force"),
        "the rotated bundle is taken"
    );
    println!(
        "Workload API: {} then {} pushed; the node serves the second without a restart",
        first.serial, rotated.serial
    );
}

/// The dashboard at `url` as a headless Chromium renders it (scripts run,
/// the API fetched), or `None` without a Chromium.
fn rendered(url: &str) -> Option<String> {
    let output = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=3000",
            "--dump-dom",
            url,
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn an_svid_left_to_expire_makes_the_node_unready_and_the_dashboard_says_so() {
    if !x0tta6bl4_integration::tool_available("chromium", "chromium") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = OperatorCa::new(dir.path());
    let server = WorkloadApiServer::start(dir.path());
    let (spec, peer_id) = spec_and_peer_id(dir.path(), "expiring");
    // One short-lived SVID and no renewal: the Workload API goes quiet.
    let id = SpiffeId::for_node("mesh.test", &peer_id).expect("id");
    let short = ca.ca.issue(&id, Duration::from_secs(5)).expect("SVID");
    server.push(X509SvidResponse::of(&short, ca.ca.bundle_pem()));
    let node = on_workload_api(spec, &server, "X0TTA6BL4_SVID__WORKLOAD_API");
    let page = format!("{}/", node.api.trim_end_matches('/'));
    let valid = rendered(&page).expect("chromium runs");
    assert!(
        valid.contains(&id.to_string()) && valid.contains(&short.serial),
        "{valid}"
    );
    // The script holds the words too: look for the rendered cell.
    const EXPIRED_CELL: &str = "<td class=\"bad\">EXPIRED: the node is not ready</td>";
    assert!(!valid.contains(EXPIRED_CELL), "{valid}");
    wait_for(Duration::from_secs(20), "the node to go unready", || {
        let ready = node.get("/ready").err()?;
        ready.to_string().contains("503").then_some(())
    });
    let expired = rendered(&page).expect("chromium runs");
    assert!(expired.contains(EXPIRED_CELL), "{expired}");
    println!("the SVID expired: /ready answers 503 and the dashboard shows EXPIRED");
}
