//! `bench payments`: the cost of checking payments. 1,000 pending orders per
//! chain (200 with `--quick`) against fake TronGrid and toncenter servers on
//! loopback: one poll with nothing paid (what an idle shop costs every
//! `poll_secs`), then one poll after a matching transfer for every order.
//! Prints API calls per poll, orders covered per call and transfers judged
//! per second (each settled one flushed to disk), then a JSON line.

use std::time::Instant;

use serde_json::json;
use x0tta6bl4_actors::mesh::unix_ms;
use x0tta6bl4_actors::payments::config::{Product, TonConfig, Trc20Config};
use x0tta6bl4_actors::payments::money::Currency;
use x0tta6bl4_actors::payments::order::Status;
use x0tta6bl4_actors::payments::poll::{limiter, ChainApi};
use x0tta6bl4_actors::payments::ton::Ton;
use x0tta6bl4_actors::payments::trongrid::TronGrid;
use x0tta6bl4_actors::payments::{Payments, PaymentsConfig};
use x0tta6bl4_actors::store::Store;
use x0tta6bl4_integration::fake_chain::{FakeTon, FakeTronGrid, TonTransaction, Trc20Transfer};

const WALLET: &str = "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE";

/// Runs the benchmark.
pub fn run(quick: bool) {
    let orders = if quick { 200 } else { 1_000 };
    let (tron, ton) = (FakeTronGrid::start(200), FakeTon::start(1_000));
    let ton_wallet = format!("0:{}", "a1".repeat(32));
    let config = PaymentsConfig {
        enabled: true,
        products: vec![Product {
            id: "node".into(),
            name: "node".into(),
            file: "/dev/null".into(),
            price_usdt: Some("10".into()),
            price_ton: Some("2".into()),
        }],
        trc20: Some(Trc20Config {
            address: WALLET.into(),
            api_url: tron.fixture.url(),
            ..Trc20Config::default()
        }),
        ton: Some(TonConfig {
            address: ton_wallet.clone(),
            api_url: Some(ton.fixture.url()),
            ..TonConfig::default()
        }),
        ..PaymentsConfig::default()
    };
    let payments =
        Payments::open(&Store::temporary().expect("store"), config.clone(), "http://127.0.0.1").expect("order book");
    let started = Instant::now();
    let mut made = Vec::new();
    for currency in Currency::ALL {
        for _ in 0..orders {
            made.push(payments.create("node", Some(currency), Some(1)).expect("order"));
        }
    }
    let create_per_sec = made.len() as f64 / started.elapsed().as_secs_f64();
    let client = x0tta6bl4_actors::alerter::sinks::client(config.timeout()).expect("client");
    let trc20 = config.trc20.clone().expect("trc20");
    let apis = [
        ChainApi::Trc20(
            TronGrid::new(client.clone(), trc20, config.max_body_bytes),
            WALLET.into(),
        ),
        ChainApi::Ton(Ton::new(client, config.ton.clone().expect("ton"), config.max_body_bytes).expect("ton")),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let since = made.iter().map(|o| o.created_ms).min().unwrap_or(0);
    let poll = |api: &ChainApi| {
        let limiter = limiter(1_000);
        let started = Instant::now();
        let report = runtime.block_on(api.poll(payments.book(), payments.shop(), &limiter, since));
        assert!(report.error.is_none(), "{:?}", report.error);
        (report, started.elapsed())
    };
    println!("payments: {orders} pending orders per chain ({create_per_sec:.0} orders made per second)");
    println!("| chain | transfers | API calls | orders per call | poll ms | judged per s |");
    println!("|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for (phase, api) in ["idle", "paid"].iter().flat_map(|p| apis.iter().map(move |a| (*p, a))) {
        if phase == "paid" {
            add_transfers(api.currency(), &made, &tron, &ton, &ton_wallet);
        }
        let (report, took) = poll(api);
        let judged = report.judged.len();
        let per_call = orders as f64 / f64::from(report.calls.max(1));
        let judged_per_sec = judged as f64 / took.as_secs_f64();
        let chain = api.currency().chain();
        println!(
            "| {chain} {phase} | {judged} | {} | {per_call:.0} | {:.1} | {judged_per_sec:.0} |",
            report.calls,
            took.as_secs_f64() * 1e3
        );
        rows.push(json!({
            "poll": format!("{chain} {phase}"),
            "transfers": judged,
            "api_calls": report.calls,
            "orders_per_call": per_call,
            "poll_ms": took.as_secs_f64() * 1e3,
            "judged_per_sec": judged_per_sec,
        }));
    }
    let counts = payments.view().expect("view").counts;
    assert_eq!(counts[&Status::Paid], 2 * orders, "every order paid: {counts:?}");
    let line = json!({
        "bench": "payments",
        "pending_orders_per_chain": orders,
        "orders_made_per_sec": create_per_sec,
        "polls": rows,
    });
    println!("{line}");
}

/// One matching transfer for every order of `currency`.
fn add_transfers(
    currency: Currency,
    orders: &[x0tta6bl4_actors::payments::order::Order],
    tron: &FakeTronGrid,
    ton: &FakeTon,
    wallet: &str,
) {
    let now = unix_ms();
    for (i, order) in orders.iter().filter(|o| o.currency == currency).enumerate() {
        match currency {
            Currency::UsdtTrc20 => tron.add(Trc20Transfer::usdt(&format!("{i:x}"), WALLET, order.amount, now)),
            Currency::Ton => {
                let mut tx =
                    TonTransaction::transfer(0, wallet, order.amount, &order.id, 1_000 + i as u64, now / 1000 + 1);
                tx.hash[..8].copy_from_slice(&(i as u64).to_be_bytes());
                ton.add(tx);
            }
        }
    }
}
