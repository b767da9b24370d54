//! The HTTP API beyond loopback: changes need the bearer token, reads stay
//! open, and a node exposed without a token refuses every change and says how
//! to fix it.

use x0tta6bl4::launcher::TOKEN_ENV;
use x0tta6bl4_integration::netns::{test_net_or_skip, TEST_TOKEN};

/// The status code and body of `method` on `path` of the node at `api`, with
/// `token` if given.
fn call(api: &str, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let request = ureq::request(method, &format!("{api}{path}"));
    let request = match token {
        Some(token) => request.set("Authorization", &format!("Bearer {token}")),
        None => request,
    };
    match request.call() {
        Ok(response) => (response.status(), response.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, response)) => (code, response.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

#[test]
fn beyond_loopback_changes_need_the_token_and_without_one_they_are_refused_with_the_fix() {
    let Some(mut net) = test_net_or_skip() else { return };
    let hosts = net.add_hosts(2).expect("hosts");
    net.link(hosts[0], hosts[1]).expect("link");
    let with_token = net.node_spec(hosts[0]);
    net.start_node(hosts[0], with_token).expect("node starts");
    let mut without = net.node_spec(hosts[1]);
    without.env.retain(|(key, _)| key != TOKEN_ENV);
    net.start_node(hosts[1], without).expect("node starts");
    let (guarded, exposed) = (net.node(hosts[0]).api.clone(), net.node(hosts[1]).api.clone());
    assert!(
        !guarded.contains("127.0.0.1"),
        "the API listens beyond loopback: {guarded}"
    );

    let reset = "/api/v1/bench/probes";
    let (code, body) = call(&guarded, "DELETE", reset, None);
    assert_eq!(code, 401, "no token: {body}");
    assert!(body.contains("bad_token"), "{body}");
    assert_eq!(call(&guarded, "DELETE", reset, Some("wrong")).0, 401);
    let (code, body) = call(&guarded, "DELETE", reset, Some(TEST_TOKEN));
    assert!((200..300).contains(&code), "with the token: {code} {body}");
    for open in ["/api/v1/status", "/metrics", "/health", "/ready"] {
        assert_eq!(call(&guarded, "GET", open, None).0, 200, "{open} stays open");
    }

    let (code, body) = call(&exposed, "DELETE", reset, Some(TEST_TOKEN));
    assert_eq!(code, 401, "a node without a token refuses every change: {body}");
    assert!(
        body.contains("no_credentials") && body.contains("http.token_file"),
        "{body}"
    );
    assert_eq!(call(&exposed, "GET", "/api/v1/status", None).0, 200);
    let log = net.node(hosts[1]).log();
    assert!(
        log.contains("every change is refused"),
        "the start-up log says so: {log}"
    );
}
