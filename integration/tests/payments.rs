//! The payment checker against fake TronGrid, toncenter/tonapi and Telegram
//! servers answering in the documented shapes: every scenario ends in the
//! right order state, and each shows that the check ran (the fake served the
//! transfer) rather than that nothing happened.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Actor;
use x0tta6bl4_actors::alert::{Alert, AlertSink};
use x0tta6bl4_actors::mesh::unix_ms;
use x0tta6bl4_actors::payments::config::{BotConfig, Product, TonConfig, TonIndexer, Trc20Config};
use x0tta6bl4_actors::payments::money::Currency;
use x0tta6bl4_actors::payments::order::{Order, Status};
use x0tta6bl4_actors::payments::{PaymentActor, Payments, PaymentsConfig};
use x0tta6bl4_actors::store::Store;
use x0tta6bl4_integration::fake_chain::{FakeTon, FakeTronGrid, TonTransaction, Trc20Transfer, USDT};
use x0tta6bl4_integration::fake_telegram::FakeTelegram;
use x0tta6bl4_integration::fixture::Reply;

const WALLET: &str = "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE";
const OTHER_WALLET: &str = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7";
const FAKE_USDT: &str = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf";
const WAIT: Duration = Duration::from_secs(20);

fn ton_wallet() -> String {
    format!("0:{}", "a1".repeat(32))
}

/// Alerts raised, for assertions.
#[derive(Default)]
struct Alerts(Mutex<Vec<Alert>>);

impl AlertSink for Alerts {
    fn emit(&self, alert: Alert) {
        self.0.lock().expect("alerts").push(alert);
    }
}

impl Alerts {
    fn named(&self, name: &str) -> Vec<Alert> {
        self.0
            .lock()
            .expect("alerts")
            .iter()
            .filter(|a| a.name == name)
            .cloned()
            .collect()
    }
}

/// A shop over the fakes, its actor running.
struct Shop {
    payments: Payments,
    alerts: Arc<Alerts>,
    _dir: tempfile::TempDir,
}

fn config(tron: &FakeTronGrid, ton: &FakeTon, indexer: TonIndexer) -> PaymentsConfig {
    PaymentsConfig {
        enabled: true,
        poll_secs: 1,
        order_ttl_secs: 600,
        confirm_grace_secs: 0,
        timeout_ms: 700,
        max_body_bytes: 64 << 10,
        failures_to_open: 3,
        open_secs: 1,
        products: vec![Product {
            id: "node".into(),
            name: "x0tta6bl4 node".into(),
            file: "/nonexistent".into(),
            price_usdt: Some("10".into()),
            price_ton: Some("2".into()),
        }],
        trc20: Some(Trc20Config {
            address: WALLET.into(),
            api_url: tron.fixture.url(),
            requests_per_sec: 50,
            ..Trc20Config::default()
        }),
        ton: Some(TonConfig {
            address: ton_wallet(),
            indexer,
            api_url: Some(ton.fixture.url()),
            requests_per_sec: 50,
            ..TonConfig::default()
        }),
        ..PaymentsConfig::default()
    }
}

fn open_shop(config: PaymentsConfig) -> Shop {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let payments = Payments::open(&store, config, "http://127.0.0.1:1").expect("payments");
    let alerts = Arc::new(Alerts::default());
    let actor = PaymentActor::new(payments.clone(), alerts.clone()).expect("actor");
    actor.start();
    Shop {
        payments,
        alerts,
        _dir: dir,
    }
}

impl Shop {
    fn order(&self, currency: Currency) -> Order {
        self.payments.create("node", Some(currency), Some(7)).expect("order")
    }

    fn status(&self, order: &Order) -> Order {
        self.payments.book().get(&order.id).expect("read").expect("order")
    }
}

/// Waits until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for `polls` more requests to the fake than `before`: the node has
/// read the history since then.
async fn polled(count: impl Fn() -> usize, before: usize, polls: usize) {
    until("the node to poll", || count() >= before + polls).await;
}

fn run(test: impl std::future::Future<Output = ()>) {
    actix_rt::System::new().block_on(test);
}

#[test]
fn an_exact_trc20_payment_pays_with_the_right_query() {
    run(async {
        let (tron, ton) = (FakeTronGrid::start(50), FakeTon::start(50));
        let mut config = config(&tron, &ton, TonIndexer::Toncenter);
        if let Some(trc20) = &mut config.trc20 {
            trc20.api_key = Some("k-123".into());
        }
        let shop = open_shop(config);
        let order = shop.order(Currency::UsdtTrc20);
        assert_eq!(order.amount, 10_000_000);
        tron.add(Trc20Transfer::usdt("a1", WALLET, order.amount, unix_ms()));
        until("the order to be paid", || shop.status(&order).status == Status::Paid).await;
        let paid = shop.status(&order);
        assert_eq!(paid.tx_id.as_deref(), Some(format!("{:0>64}", "a1").as_str()));
        let poll = &tron.polls()[0];
        assert_eq!(poll.route(), format!("/v1/accounts/{WALLET}/transactions/trc20"));
        for (key, value) in [
            ("only_confirmed", "true"),
            ("only_to", "true"),
            ("contract_address", USDT),
            ("order_by", "block_timestamp,asc"),
            ("limit", "200"),
        ] {
            assert_eq!(poll.query(key).as_deref(), Some(value), "{key} in {}", poll.path);
        }
        assert_eq!(poll.query("min_timestamp"), Some(order.created_ms.to_string()));
        assert_eq!(poll.header("TRON-PRO-API-KEY"), Some("k-123"));
        // Nothing pending: no more polls.
        let before = tron.polls().len();
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert!(tron.polls().len() <= before + 1, "polled with nothing pending");
    });
}

#[test]
fn fake_tokens_other_recipients_approvals_and_unconfirmed_transfers_pay_nothing() {
    run(async {
        let (tron, ton) = (FakeTronGrid::start(50), FakeTon::start(50));
        let shop = open_shop(config(&tron, &ton, TonIndexer::Toncenter));
        let order = shop.order(Currency::UsdtTrc20);
        let now = unix_ms();
        let mut fake = Trc20Transfer::usdt("f1", WALLET, order.amount, now);
        fake.contract = FAKE_USDT.into();
        let elsewhere = Trc20Transfer::usdt("f2", OTHER_WALLET, order.amount, now);
        let mut approval = Trc20Transfer::usdt("f3", WALLET, order.amount, now);
        approval.kind = "Approval".into();
        let mut unconfirmed = Trc20Transfer::usdt("f4", WALLET, order.amount, now);
        unconfirmed.confirmed = false;
        for t in [fake, elsewhere, approval, unconfirmed] {
            tron.add(t);
        }
        let before = tron.polls().len();
        polled(|| tron.polls().len(), before, 2).await;
        assert_eq!(shop.status(&order).status, Status::Pending);
        assert!(
            shop.alerts.named("PAYMENT_UNMATCHED").is_empty(),
            "{:?}",
            shop.alerts.named("PAYMENT_UNMATCHED")
        );
        // Confirmed now: the same transfer pays.
        tron.confirm("f4");
        until("the confirmed transfer to pay", || {
            shop.status(&order).status == Status::Paid
        })
        .await;
        assert_eq!(shop.status(&order).tx_id, Some(format!("{:0>64}", "f4")));
    });
}

#[test]
fn under_and_overpayments_and_late_transfers_on_trc20_match_no_order_and_raise_alerts() {
    run(async {
        let (tron, ton) = (FakeTronGrid::start(50), FakeTon::start(50));
        let mut config = config(&tron, &ton, TonIndexer::Toncenter);
        config.order_ttl_secs = 2;
        let shop = open_shop(config);
        let order = shop.order(Currency::UsdtTrc20);
        let now = unix_ms();
        tron.add(Trc20Transfer::usdt("u1", WALLET, order.amount - 1, now));
        tron.add(Trc20Transfer::usdt("o1", WALLET, order.amount + 1, now));
        // Inside the amount's hold but after the order expired.
        tron.add(Trc20Transfer::usdt("l1", WALLET, order.amount, order.expires_ms + 1));
        until("three unmatched alerts", || {
            shop.alerts.named("PAYMENT_UNMATCHED").len() == 3
        })
        .await;
        until("the order to expire", || shop.status(&order).status == Status::Expired).await;
        let verdicts: Vec<String> = shop
            .alerts
            .named("PAYMENT_UNMATCHED")
            .iter()
            .map(|a| a.labels["verdict"].clone())
            .collect();
        assert!(
            verdicts.iter().filter(|v| *v == "no_order").count() == 2,
            "{verdicts:?}"
        );
        assert!(verdicts.contains(&"outside_window".to_string()), "{verdicts:?}");
    });
}

#[test]
fn a_transaction_pays_one_order_only_even_when_offered_again() {
    run(async {
        let (tron, ton) = (FakeTronGrid::start(50), FakeTon::start(50));
        let shop = open_shop(config(&tron, &ton, TonIndexer::Toncenter));
        let first = shop.order(Currency::UsdtTrc20);
        tron.add(Trc20Transfer::usdt("d1", WALLET, first.amount, unix_ms()));
        until("the first order to be paid", || {
            shop.status(&first).status == Status::Paid
        })
        .await;
        // The same transaction id comes back with the next order's amount.
        let second = shop.order(Currency::UsdtTrc20);
        tron.add(Trc20Transfer::usdt("d1", WALLET, second.amount, unix_ms()));
        let before = tron.polls().len();
        polled(|| tron.polls().len(), before, 2).await;
        assert_eq!(shop.status(&second).status, Status::Pending);
        // TON: one hash, two comments.
        let a = shop.order(Currency::Ton);
        let b = shop.order(Currency::Ton);
        let now = unix_ms() / 1000 + 1;
        ton.add(TonTransaction::transfer(9, &ton_wallet(), a.amount, &a.id, 10, now));
        until("the TON order to be paid", || shop.status(&a).status == Status::Paid).await;
        ton.add(TonTransaction::transfer(9, &ton_wallet(), b.amount, &b.id, 11, now));
        let before = ton.polls().len();
        polled(|| ton.polls().len(), before, 2).await;
        assert_eq!(shop.status(&b).status, Status::Pending);
    });
}

fn ton_scenarios(indexer: TonIndexer) {
    run(async move {
        let (tron, ton) = (FakeTronGrid::start(50), FakeTon::start(50));
        let mut config = config(&tron, &ton, indexer);
        if let Some(ton) = &mut config.ton {
            ton.page_limit = 2;
        }
        let shop = open_shop(config);
        let wallet = ton_wallet();
        let orders: Vec<Order> = (0..6).map(|_| shop.order(Currency::Ton)).collect();
        let now = unix_ms() / 1000 + 1;
        let [exact, under, over, bounced, commented, elsewhere] = &orders[..] else {
            unreachable!()
        };
        let mut bounce = TonTransaction::transfer(4, &wallet, bounced.amount, &bounced.id, 104, now);
        bounce.bounced = true;
        let mut other = TonTransaction::transfer(
            6,
            &format!("0:{}", "c3".repeat(32)),
            elsewhere.amount,
            &elsewhere.id,
            106,
            now,
        );
        other.source = Some(format!("0:{}", "b2".repeat(32)));
        for tx in [
            TonTransaction::transfer(1, &wallet, exact.amount, &exact.id.to_lowercase(), 101, now),
            TonTransaction::transfer(2, &wallet, under.amount - 1, &under.id, 102, now),
            TonTransaction::transfer(3, &wallet, over.amount * 2, &over.id, 103, now),
            bounce,
            TonTransaction::transfer(5, &wallet, commented.amount, "for my order", 105, now),
            other,
        ] {
            ton.add(tx);
        }
        until("the exact, under and overpaid orders to settle", || {
            shop.status(exact).status == Status::Paid
                && shop.status(under).status == Status::Underpaid
                && shop.status(over).status == Status::RefundNeeded
        })
        .await;
        until("the wrong comment to be reported", || {
            !shop.alerts.named("PAYMENT_UNMATCHED").is_empty()
        })
        .await;
        for pending in [bounced, commented, elsewhere] {
            assert_eq!(shop.status(pending).status, Status::Pending, "{}", pending.id);
        }
        assert_eq!(shop.alerts.named("PAYMENT_UNDERPAID").len(), 1);
        assert_eq!(shop.alerts.named("PAYMENT_OVERPAID").len(), 1);
        // Pages of two: later polls go on from the last logical time read.
        let (key, after_last) = match indexer {
            TonIndexer::Toncenter => ("start_lt", "107"),
            TonIndexer::Tonapi => ("after_lt", "106"),
        };
        until("a poll after the last transaction read", || {
            ton.polls().iter().any(|p| p.query(key).as_deref() == Some(after_last))
        })
        .await;
        assert!(
            ton.polls().len() >= 4,
            "six transactions in pages of two and one more look"
        );
        // A transfer made now pays on the next poll without re-reading.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        ton.add(TonTransaction::transfer(
            7,
            &wallet,
            bounced.amount,
            &bounced.id,
            107,
            now,
        ));
        until("the bounced order to be paid properly", || {
            shop.status(bounced).status == Status::Paid
        })
        .await;
    });
}

#[test]
fn ton_on_toncenter_settles_by_comment_value_and_flags() {
    ton_scenarios(TonIndexer::Toncenter);
}

#[test]
fn ton_on_tonapi_settles_by_comment_value_and_flags() {
    ton_scenarios(TonIndexer::Tonapi);
}

#[test]
fn two_pages_of_history_are_read_once_each() {
    run(async {
        let (tron, ton) = (FakeTronGrid::start(2), FakeTon::start(50));
        let mut config = config(&tron, &ton, TonIndexer::Toncenter);
        if let Some(trc20) = &mut config.trc20 {
            trc20.requests_per_sec = 2;
        }
        let shop = open_shop(config);
        let orders: Vec<Order> = (0..4).map(|_| shop.order(Currency::UsdtTrc20)).collect();
        let now = unix_ms();
        for (i, order) in orders.iter().enumerate() {
            tron.add(Trc20Transfer::usdt(
                &format!("p{i}"),
                WALLET,
                order.amount,
                now + i as u64,
            ));
        }
        until("all four to be paid", || {
            orders.iter().all(|o| shop.status(o).status == Status::Paid)
        })
        .await;
        let polls = tron.polls();
        assert!(
            polls.iter().any(|p| p.query("fingerprint").is_some()),
            "the second page follows the fingerprint"
        );
        let last = now + 3;
        let fifth = shop.order(Currency::UsdtTrc20);
        tron.add(Trc20Transfer::usdt("p4", WALLET, fifth.amount, unix_ms()));
        until("the fifth to be paid", || shop.status(&fifth).status == Status::Paid).await;
        let later = &tron.polls()[polls.len()..];
        let start = |p: &x0tta6bl4_integration::fixture::Received| {
            p.query("min_timestamp")
                .and_then(|m| m.parse::<u64>().ok())
                .unwrap_or(0)
        };
        assert!(
            later.iter().all(|p| start(p) >= last),
            "later polls never go back before the newest transfer read: {:?}",
            later.iter().map(|p| p.path.clone()).collect::<Vec<_>>()
        );
    });
}

#[test]
fn api_failures_pause_retry_and_alert_without_losing_the_payment() {
    run(async {
        let (tron, ton) = (FakeTronGrid::start(50), FakeTon::start(50));
        let shop = open_shop(config(&tron, &ton, TonIndexer::Toncenter));
        let order = shop.order(Currency::UsdtTrc20);
        let blocked = Reply::json(
            403,
            serde_json::json!({"success": false, "statusCode": 403,
                "error": "The key exceeds the frequency limit(15), and the query server is suspended for 3s"}),
        );
        let huge = Reply::json(
            200,
            serde_json::json!({"data": [], "success": true, "pad": "x".repeat(100_000)}),
        );
        tron.fixture.script([
            blocked,
            Reply::json(429, serde_json::json!({})).header("Retry-After", "2"),
            Reply::text(502, "<html>bad gateway</html>"),
            Reply::json(200, serde_json::json!({})).after(Duration::from_millis(1_500)),
            Reply::text(200, "{\"data\": [ {\"transaction_id\": "),
            huge,
        ]);
        tron.add(Trc20Transfer::usdt("e1", WALLET, order.amount, unix_ms()));
        until("the order to be paid after six failures", || {
            shop.status(&order).status == Status::Paid
        })
        .await;
        let at: Vec<Instant> = tron.polls().iter().map(|p| p.at).collect();
        assert!(at.len() >= 7, "{} polls", at.len());
        assert!(
            at[1].duration_since(at[0]) >= Duration::from_millis(2_900),
            "403 suspension honoured"
        );
        assert!(
            at[2].duration_since(at[1]) >= Duration::from_millis(1_900),
            "Retry-After honoured"
        );
        let failing = shop.alerts.named("PAYMENT_API_FAILING");
        assert!(failing.iter().any(|a| !a.is_resolved()), "{failing:?}");
        until("the failure alert to be resolved", || {
            shop.alerts.named("PAYMENT_API_FAILING").iter().any(Alert::is_resolved)
        })
        .await;
    });
}

#[test]
fn the_sales_bot_answers_buyers_and_tells_them_once_when_paid() {
    run(async {
        let (tron, ton, telegram) = (FakeTronGrid::start(50), FakeTon::start(50), FakeTelegram::start());
        let mut config = config(&tron, &ton, TonIndexer::Toncenter);
        config.bot = Some(BotConfig {
            token: "123:abc".into(),
            api_url: telegram.fixture.url(),
            long_poll_secs: 1,
            messages_per_sec: 20,
        });
        let shop = open_shop(config);
        telegram.say(5, "/start");
        telegram.say(5, "/buy nothing");
        telegram.say(5, "/fly");
        telegram.say(5, "/buy node usdt");
        until("four answers", || telegram.sent_to(5).len() == 4).await;
        let answers = telegram.sent_to(5);
        assert!(
            answers[0].contains("/buy <product>") && answers[0].contains("node"),
            "{}",
            answers[0]
        );
        assert!(answers[1].contains("no product \"nothing\""), "{}", answers[1]);
        assert!(answers[2].contains("I do not know"), "{}", answers[2]);
        let orders = shop.payments.book().orders().expect("orders");
        let [order] = &orders[..] else {
            panic!("one order: {orders:?}")
        };
        assert!(
            answers[3].contains("Send exactly 10 USDT") && answers[3].contains(WALLET),
            "{}",
            answers[3]
        );
        telegram.say(6, &format!("/status {}", order.id));
        until("a stranger's answer", || telegram.sent_to(6).len() == 1).await;
        assert!(
            telegram.sent_to(6)[0].starts_with("No order"),
            "another chat's order is not shown"
        );
        telegram.fixture.script([Reply::json(
            429,
            serde_json::json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 2",
                "parameters": {"retry_after": 2}}),
        )]);
        tron.add(Trc20Transfer::usdt("b1", WALLET, order.amount, unix_ms()));
        until("the link", || telegram.sent_to(5).len() == 5).await;
        let link = &telegram.sent_to(5)[4];
        assert!(link.contains("/download/") && link.contains(&order.id), "{link}");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(telegram.sent_to(5).len(), 5, "told exactly once");
    });
}
