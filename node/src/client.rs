//! The CLI over a node's HTTP API: `status`, `peers`, `routes`, `send`, `ping`, `orders`.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

/// Which node to talk to.
#[derive(clap::Args)]
pub struct Target {
    /// Base URL of the node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// The node's API token (its `http.token_file`), for a node that is not
    /// on loopback.
    #[arg(long, env = "X0TTA6BL4_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Target {
    /// A request to `path` of the node, with the token if one is given.
    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let client = crate::launcher::ApiClient {
            api: self.api.trim_end_matches('/').to_string(),
            token: self.token.clone(),
        };
        client.request(method, path)
    }
}

fn call(request: ureq::Request, body: Option<Value>) -> anyhow::Result<Value> {
    let url = request.url().to_string();
    let response = match body {
        Some(body) => request.timeout(Duration::from_secs(10)).send_json(body),
        None => request.timeout(Duration::from_secs(10)).call(),
    };
    match response {
        Ok(response) => response.into_json().with_context(|| format!("{url}: not JSON")),
        Err(ureq::Error::Status(code, response)) => {
            let body: Value = response.into_json().unwrap_or_default();
            let message = body["error"].as_str().unwrap_or("no details");
            anyhow::bail!("{url}: HTTP {code}: {message}")
        }
        Err(error) => Err(error).with_context(|| format!("cannot reach the node at {url} (is it running? see --api)")),
    }
}

/// `GET path` on the node, as JSON.
pub fn get(target: &Target, path: &str) -> anyhow::Result<Value> {
    call(target.request("GET", path), None)
}

fn post(target: &Target, path: &str, body: Value) -> anyhow::Result<Value> {
    call(target.request("POST", path), Some(body))
}

/// Prints the node's status.
pub fn status(target: &Target) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&get(target, "/api/v1/status")?)?);
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints known peers as a table.
pub fn peers(target: &Target) -> anyhow::Result<()> {
    let peers = get(target, "/api/v1/peers")?;
    println!(
        "{:<12} {:<54} {:<9} {:>8} {:>6} {:>4}",
        "NAME", "PEER ID", "LINK", "RTT ms", "LOSS", "HOPS"
    );
    for p in peers["peers"].as_array().into_iter().flatten() {
        let link = if p["connected"].as_bool() == Some(true) {
            "up"
        } else {
            "routed"
        };
        let rtt = p["rtt_ms"].as_f64().map_or("-".into(), |r| format!("{r:.2}"));
        let loss = p["loss"].as_f64().map_or("-".into(), |l| format!("{:.0}%", l * 100.0));
        println!(
            "{:<12} {:<54} {:<9} {:>8} {:>6} {:>4}",
            text(&p["name"]),
            text(&p["peer_id"]),
            link,
            rtt,
            loss,
            text(&p["hops"])
        );
    }
    Ok(())
}

/// Prints the routing table.
pub fn routes(target: &Target) -> anyhow::Result<()> {
    let routes = get(target, "/api/v1/routes")?;
    println!(
        "{:<54} {:<54} {:>4} {:>8}  BACKUP",
        "DESTINATION", "NEXT HOP", "HOPS", "COST"
    );
    for r in routes["routes"].as_array().into_iter().flatten() {
        println!(
            "{:<54} {:<54} {:>4} {:>8}  {}",
            text(&r["destination"]),
            text(&r["next_hop"]),
            text(&r["hops"]),
            text(&r["cost"]),
            text(&r["backup"])
        );
    }
    Ok(())
}

/// Sends a routed message and prints its id.
pub fn send(target: &Target, to: &str, message: &str) -> anyhow::Result<()> {
    let reply = post(
        target,
        "/api/v1/messages",
        serde_json::json!({ "to": to, "text": message }),
    )?;
    println!("sent message {}", text(&reply["id"]));
    Ok(())
}

/// Pings a peer through the mesh.
pub fn ping(target: &Target, peer: &str) -> anyhow::Result<()> {
    let reply = post(target, "/api/v1/ping", serde_json::json!({ "to": peer }))?;
    let rtt = reply["rtt_ms"].as_f64().unwrap_or_default();
    println!("reply from {peer}: time={rtt:.3} ms hops={}", text(&reply["hops"]));
    Ok(())
}

/// Rotates a running node's post-quantum keys.
pub fn rotate_keys(target: &Target) -> anyhow::Result<()> {
    let reply = post(target, "/api/v1/keys/rotate", serde_json::json!({}))?;
    println!(
        "post-quantum keys rotated: epoch {} -> {}; announced from the next beacon",
        text(&reply["from"]),
        text(&reply["to"])
    );
    Ok(())
}

/// Prints the shop's orders as a table, with counts per status.
pub fn orders(target: &Target) -> anyhow::Result<()> {
    let view = get(target, "/api/v1/orders")?;
    println!(
        "{:<9} {:<10} {:<10} {:>16} {:<13} {:<25} TX",
        "ORDER", "PRODUCT", "CURRENCY", "AMOUNT", "STATUS", "EXPIRES"
    );
    for order in view["orders"].as_array().into_iter().flatten() {
        let decimals = if order["currency"] == "ton" { 9 } else { 6 };
        let amount = order["amount"].as_u64().map_or("-".into(), |a| {
            x0tta6bl4_actors::payments::money::format_amount(a, decimals)
        });
        let expires = order["expires_ms"]
            .as_u64()
            .map_or("-".into(), x0tta6bl4_actors::alerter::sinks::rfc3339);
        println!(
            "{:<9} {:<10} {:<10} {:>16} {:<13} {:<25} {}",
            text(&order["id"]),
            text(&order["product"]),
            text(&order["currency"]),
            amount,
            text(&order["status"]),
            expires,
            text(&order["tx_id"])
        );
    }
    let counts = view["counts"].as_object().into_iter().flatten();
    let counts: Vec<String> = counts.map(|(status, n)| format!("{status} {n}")).collect();
    println!(
        "{}; messages waiting for Telegram: {}",
        counts.join(", "),
        text(&view["outbox"])
    );
    Ok(())
}

/// Prints one order.
pub fn order(target: &Target, id: &str) -> anyhow::Result<()> {
    let order = get(target, &format!("/api/v1/orders/{id}"))?;
    println!("{}", serde_json::to_string_pretty(&order)?);
    Ok(())
}

/// Makes an order and prints how to pay it.
pub fn create_order(
    target: &Target,
    product: &str,
    currency: Option<&str>,
    chat_id: Option<i64>,
) -> anyhow::Result<()> {
    let body = serde_json::json!({ "product": product, "currency": currency, "chat_id": chat_id });
    let reply = post(target, "/api/v1/orders", body)?;
    println!("{}", text(&reply["instructions"]));
    Ok(())
}
