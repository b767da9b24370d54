//! The shop in a real node process: the whole sale through the fake
//! Telegram and chain APIs down to the downloaded bytes, and SIGKILLs at
//! the two moments that could lose or double a message to a buyer.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use x0tta6bl4_actors::payments::money::parse_amount;
use x0tta6bl4_integration::fake_chain::{FakeTon, FakeTronGrid, TonTransaction, Trc20Transfer};
use x0tta6bl4_integration::fake_telegram::FakeTelegram;
use x0tta6bl4_integration::{test_spec, unix_ms, wait_for, NodeProcess, NodeSpec};

const WALLET: &str = "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE";
const WAIT: Duration = Duration::from_secs(30);
const LINK_TTL_SECS: u64 = 3;

fn ton_wallet() -> String {
    format!("0:{}", "a1".repeat(32))
}

struct Fakes {
    tron: FakeTronGrid,
    ton: FakeTon,
    telegram: FakeTelegram,
}

impl Fakes {
    fn start() -> Self {
        Self {
            tron: FakeTronGrid::start(200),
            ton: FakeTon::start(200),
            telegram: FakeTelegram::start(),
        }
    }

    fn spec(&self, dir: &Path, file: &Path) -> NodeSpec {
        let products = format!(
            r#"[{{id="node",name="x0tta6bl4 node",file="{}",price_usdt="10",price_ton="2"}}]"#,
            file.display()
        );
        test_spec(dir, "shop")
            .with("X0TTA6BL4_PAYMENTS__ENABLED", "true")
            .with("X0TTA6BL4_PAYMENTS__POLL_SECS", "1")
            .with("X0TTA6BL4_PAYMENTS__CONFIRM_GRACE_SECS", "0")
            .with("X0TTA6BL4_PAYMENTS__LINK_TTL_SECS", LINK_TTL_SECS.to_string())
            .with("X0TTA6BL4_PAYMENTS__PRODUCTS", products)
            .with("X0TTA6BL4_PAYMENTS__TRC20__ADDRESS", WALLET)
            .with("X0TTA6BL4_PAYMENTS__TRC20__API_URL", self.tron.fixture.url())
            .with("X0TTA6BL4_PAYMENTS__TRC20__REQUESTS_PER_SEC", "20")
            .with("X0TTA6BL4_PAYMENTS__TON__ADDRESS", ton_wallet())
            .with("X0TTA6BL4_PAYMENTS__TON__API_URL", self.ton.fixture.url())
            .with("X0TTA6BL4_PAYMENTS__TON__REQUESTS_PER_SEC", "20")
            .with("X0TTA6BL4_PAYMENTS__BOT__TOKEN", "123:abc")
            .with("X0TTA6BL4_PAYMENTS__BOT__API_URL", self.telegram.fixture.url())
            .with("X0TTA6BL4_PAYMENTS__BOT__LONG_POLL_SECS", "1")
    }

    /// The `n`-th message to `chat` (waits for it).
    fn message(&self, chat: i64, n: usize) -> String {
        wait_for(WAIT, &format!("message {n} to chat {chat}"), || {
            self.telegram.sent_to(chat).get(n).cloned()
        })
    }
}

/// A file of `len` pseudo-random bytes.
fn product_file(dir: &Path, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let path = dir.join("x0tta6bl4-node.tar.gz");
    std::fs::write(&path, &bytes).expect("product file");
    (path, bytes)
}

fn link_in(message: &str) -> String {
    message
        .lines()
        .find(|l| l.contains("/download/"))
        .unwrap_or_else(|| panic!("no link in {message:?}"))
        .trim()
        .to_string()
}

/// Status and body of a GET.
fn fetch(url: &str) -> (u16, Vec<u8>) {
    match ureq::get(url).timeout(Duration::from_secs(10)).call() {
        Ok(response) => {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut response.into_reader(), &mut body).expect("body");
            (200, body)
        }
        Err(ureq::Error::Status(code, _)) => (code, Vec::new()),
        Err(error) => panic!("GET {url}: {error}"),
    }
}

/// `/buy` → transfer → link within one poll → the exact bytes → 403 after expiry.
fn sale(fakes: &Fakes, chat: i64, currency: &str, file: &[u8], pay: impl Fn(&str, &str)) {
    fakes.telegram.say(chat, &format!("/buy node {currency}"));
    let offer = fakes.message(chat, 0);
    let order = offer
        .strip_prefix("Order ")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("no order id in {offer:?}"))
        .to_string();
    let amount = offer
        .split("Send exactly ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no amount in {offer:?}"))
        .to_string();
    let polls_before = fakes.tron.polls().len() + fakes.ton.polls().len();
    pay(&order, &amount);
    let link = link_in(&fakes.message(chat, 1));
    let polls = fakes.tron.polls().len() + fakes.ton.polls().len() - polls_before;
    assert!(
        polls <= 2,
        "the link came within one poll of the transfer ({polls} polls)"
    );
    println!("{currency}: order {order} paid {amount}, link after {polls} poll(s)");
    let settled = Instant::now();
    let (status, body) = fetch(&link);
    assert_eq!(status, 200, "{link}");
    assert!(
        body == file,
        "downloaded {} bytes, not the file's exact {}",
        body.len(),
        file.len()
    );
    let forged = format!("{}x", link.trim_end_matches(|c: char| c != '.'));
    assert_eq!(fetch(&forged).0, 403, "a forged link");
    std::thread::sleep(Duration::from_secs(LINK_TTL_SECS + 1).saturating_sub(settled.elapsed()));
    assert_eq!(fetch(&link).0, 403, "the link after its expiry");
}

#[test]
fn a_buyer_buys_pays_and_downloads_the_exact_file_with_usdt_and_with_ton() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, bytes) = product_file(dir.path(), 300_000);
    let fakes = Fakes::start();
    let node = NodeProcess::spawn(fakes.spec(dir.path(), &file)).expect("node");
    sale(&fakes, 11, "usdt", &bytes, |_, amount| {
        let units = parse_amount(amount, 6).expect("amount");
        fakes.tron.add(Trc20Transfer::usdt("aa11", WALLET, units, unix_ms()));
    });
    // A panic in the payment actor between the two sales: it is restarted
    // and the second sale goes through it.
    node.post("/api/v1/debug/fault", &json!({"actor": "payments", "kind": "panic"}))
        .expect("fault injected");
    sale(&fakes, 12, "ton", &bytes, |order, amount| {
        let units = parse_amount(amount, 9).expect("amount");
        let now = unix_ms() / 1000 + 1;
        fakes
            .ton
            .add(TonTransaction::transfer(3, &ton_wallet(), units, order, 1_000, now));
    });
    let link = link_in(&fakes.telegram.sent_to(11)[1]);
    assert_eq!(fetch(&link).0, 403);
    let orders = node.get("/api/v1/orders").expect("orders");
    assert_eq!(orders["counts"]["paid"], 2, "{orders}");
    let lines = [
        "x0tta_payments_orders{status=\"paid\"} 2",
        "x0tta_payments_orders{status=\"pending\"} 1",
        "x0tta_payments_checks_total{chain=\"trc20\",result=\"paid\"} 1",
        "x0tta_payments_checks_total{chain=\"ton\",result=\"paid\"} 1",
        "x0tta_payments_downloads_total{result=\"ok\"} 2",
        "x0tta_payments_downloads_total{result=\"expired\"} 3",
        "x0tta_payments_downloads_total{result=\"forged\"} 2",
        "x0tta_actor_restarts_total{actor=\"payments\",reason=\"panic\"} 1",
    ];
    // The operator's view from the command line.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(x0tta6bl4_integration::node_binary())
            .args(args)
            .args(["--api", &node.client().api])
            .output()
            .expect("x0tta6bl4 orders");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = cli(&["orders", "list"]);
    let paid_rows = listed
        .lines()
        .filter(|l| l.split_whitespace().nth(4) == Some("paid"))
        .count();
    assert!(listed.contains("paid 2") && paid_rows == 2, "{listed}");
    let made = cli(&["orders", "create", "--product", "node", "--currency", "ton"]);
    assert!(
        made.starts_with("Order ") && made.contains("Send exactly 2 TON"),
        "{made}"
    );
    let id = made
        .trim_start_matches("Order ")
        .split(':')
        .next()
        .expect("id")
        .to_string();
    assert!(cli(&["orders", "show", &id]).contains("\"status\": \"pending\""));
    // The order gauges are refreshed every few seconds.
    wait_for(WAIT, "the payment metrics", || {
        let metrics = String::from_utf8_lossy(&fetch(&format!("{}/metrics", node.client().api)).1).into_owned();
        lines.iter().all(|line| metrics.contains(line)).then_some(())
    });
}

#[test]
fn a_buyer_paid_before_a_crash_is_told_exactly_once_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, _) = product_file(dir.path(), 1_000);
    let fakes = Fakes::start();
    let spec = fakes.spec(dir.path(), &file);
    let mut node = NodeProcess::spawn(spec.clone()).expect("node");
    let made = node
        .post(
            "/api/v1/orders",
            &json!({"product": "node", "currency": "usdt-trc20", "chat_id": 21}),
        )
        .expect("order");
    let (id, amount) = (
        made["order"]["id"].as_str().expect("id").to_string(),
        made["order"]["amount"].as_u64().expect("amount"),
    );
    fakes.telegram.hold_sends(true);
    fakes.tron.add(Trc20Transfer::usdt("cc21", WALLET, amount, unix_ms()));
    wait_for(WAIT, "the order to be paid", || {
        let order = node.get(&format!("/api/v1/orders/{id}")).ok()?;
        (order["status"] == "paid").then_some(())
    });
    wait_for(WAIT, "the node to try to tell the buyer", || {
        (fakes.telegram.send_attempts() >= 1).then_some(())
    });
    node.kill();
    fakes.telegram.hold_sends(false);
    assert!(
        fakes.telegram.sent_to(21).is_empty(),
        "nothing reached the buyer before the crash"
    );
    let node = NodeProcess::spawn(spec).expect("node after the crash");
    let told = fakes.message(21, 0);
    assert!(told.contains(&id) && told.contains("/download/"), "{told}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(fakes.telegram.sent_to(21).len(), 1, "told exactly once");
    drop(node);
}

/// A `/buy` handed to the node, then a SIGKILL: with `in_flight` while the
/// answer is still on its way (fetched, never handled), else as soon as it
/// was handed out (usually just handled). Either way, after a restart:
/// one order and one answer. Returns how often the update was handed out.
fn buy_across_a_crash(in_flight: bool) -> usize {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, _) = product_file(dir.path(), 1_000);
    let fakes = Fakes::start();
    let spec = fakes.spec(dir.path(), &file);
    let mut node = NodeProcess::spawn(spec.clone()).expect("node");
    fakes.telegram.hold_sends(true);
    if in_flight {
        fakes.telegram.delay_updates(Duration::from_secs(5));
    }
    let update = fakes.telegram.say(22, "/buy node ton");
    wait_for(WAIT, "getUpdates to hand the /buy out", || {
        fakes.telegram.served(update).then_some(())
    });
    node.kill();
    fakes.telegram.delay_updates(Duration::ZERO);
    fakes.telegram.hold_sends(false);
    let node = NodeProcess::spawn(spec).expect("node after the crash");
    let answer = fakes.message(22, 0);
    assert!(
        answer.starts_with("Order ") && answer.contains("with the comment"),
        "{answer}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(fakes.telegram.sent_to(22).len(), 1, "answered exactly once");
    let orders = node.get("/api/v1/orders").expect("orders");
    let mine: Vec<_> = orders["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter(|o| o["chat_id"] == 22)
        .collect();
    assert_eq!(mine.len(), 1, "one order: {orders}");
    fakes.telegram.served_times(update)
}

#[test]
fn a_buy_fetched_but_not_handled_before_a_crash_is_handled_once_after_it() {
    let handed_out = buy_across_a_crash(true);
    assert_eq!(handed_out, 2, "Telegram handed the update out again after the restart");
}

#[test]
fn a_buy_handled_just_before_a_crash_is_not_handled_again() {
    let handed_out = buy_across_a_crash(false);
    println!("the update was handed out {handed_out} time(s)");
}
