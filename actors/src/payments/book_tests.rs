use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::payments::matching::{Flaw, Rejection};

const WALLET: &str = "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE";
const USDT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
const TON_WALLET: &str = "0:a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";

fn book() -> OrderBook {
    OrderBook::open(&Store::temporary().expect("store")).expect("book")
}

fn new_order(currency: Currency, price: u64) -> NewOrder {
    NewOrder {
        product: "node".into(),
        currency,
        price,
        pay_to: match currency {
            Currency::UsdtTrc20 => WALLET.into(),
            Currency::Ton => TON_WALLET.into(),
        },
        chat_id: Some(42),
        ttl_ms: 1_000,
        grace_ms: 100,
        amount_step: 100,
        max_open: 5,
    }
}

fn rules(currency: Currency) -> Rules<'static> {
    Rules {
        wallet: match currency {
            Currency::UsdtTrc20 => WALLET,
            Currency::Ton => TON_WALLET,
        },
        contract: USDT,
        tolerance_bps: 0,
    }
}

fn usdt(tx: &str, value: u64, at_ms: u64) -> Transfer {
    Transfer {
        currency: Currency::UsdtTrc20,
        tx_id: tx.into(),
        to: WALLET.into(),
        value,
        at_ms,
        token: Some(USDT.into()),
        comment: None,
        flaw: None,
    }
}

fn told(order: &Order) -> Option<Outgoing> {
    order.chat_id.map(|chat| {
        Outgoing::new(
            chat,
            format!("{} is {}", order.id, order.status.label()),
            Some(&order.id),
        )
    })
}

#[test]
fn open_trc20_orders_of_one_price_get_distinct_amounts_until_full() {
    let book = book();
    let amounts: Vec<u64> = (0..5)
        .map(|_| {
            book.create(&new_order(Currency::UsdtTrc20, 10_000_000), 0)
                .expect("order")
                .amount
        })
        .collect();
    assert_eq!(amounts, [10_000_000, 10_000_100, 10_000_200, 10_000_300, 10_000_400]);
    assert!(matches!(
        book.create(&new_order(Currency::UsdtTrc20, 10_000_000), 0),
        Err(BookError::NoFreeAmount(5))
    ));
    // Held through expiry (1,000 ms) and grace (100 ms), free after.
    assert!(book.create(&new_order(Currency::UsdtTrc20, 10_000_000), 1_100).is_err());
    let reused = book
        .create(&new_order(Currency::UsdtTrc20, 10_000_000), 1_101)
        .expect("order");
    assert_eq!(reused.amount, 10_000_000);
    // TON orders are matched by comment: the price as it is.
    assert_eq!(book.create(&new_order(Currency::Ton, 7), 0).expect("ton").amount, 7);
}

#[test]
fn a_payment_marks_the_order_queues_the_link_and_pays_once() {
    let book = book();
    let order = book
        .create(&new_order(Currency::UsdtTrc20, 10_000_000), 0)
        .expect("order");
    let paid = book
        .settle(&usdt("t1", order.amount, 500), &rules(Currency::UsdtTrc20), 600, &told)
        .expect("settle");
    let Settlement::Judged(Verdict::Paid, Some(settled)) = paid else {
        panic!("{paid:?}")
    };
    assert_eq!(settled.status, Status::Paid);
    assert_eq!(settled.tx_id.as_deref(), Some("t1"));
    assert_eq!(book.get(&order.id.to_lowercase()).expect("get"), Some(settled));
    let (due, _) = book.due(600, 10).expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].text, format!("{} is paid", order.id));
    // The same transaction again, even for another order of that amount: nothing.
    let again = book.settle(&usdt("t1", order.amount, 500), &rules(Currency::UsdtTrc20), 700, &told);
    assert_eq!(again.expect("settle"), Settlement::Seen);
    book.sent(due[0].seq).expect("sent");
    assert_eq!(book.backlog(), 0);
}

#[test]
fn ton_settles_by_comment_and_records_under_and_overpayment() {
    let book = book();
    let ton = |tx: &str, comment: &str, value: u64| Transfer {
        currency: Currency::Ton,
        tx_id: tx.into(),
        to: TON_WALLET.into(),
        value,
        at_ms: 10,
        token: None,
        comment: Some(comment.into()),
        flaw: None,
    };
    let a = book.create(&new_order(Currency::Ton, 1_000), 0).expect("a");
    let b = book.create(&new_order(Currency::Ton, 1_000), 0).expect("b");
    let c = book.create(&new_order(Currency::Ton, 1_000), 0).expect("c");
    let judged = |t: Transfer| match book.settle(&t, &rules(Currency::Ton), 20, &told).expect("settle") {
        Settlement::Judged(verdict, order) => (verdict, order.map(|o| o.status)),
        Settlement::Seen => panic!("seen"),
    };
    assert_eq!(
        judged(ton("h0", "nonsense", 1_000)),
        (Verdict::Rejected(Rejection::NoOrder), None)
    );
    assert_eq!(
        judged(ton("h1", &a.id.to_lowercase(), 999)),
        (Verdict::Underpaid, Some(Status::Underpaid))
    );
    assert_eq!(
        judged(ton("h2", &b.id, 1_001)),
        (Verdict::Overpaid, Some(Status::RefundNeeded))
    );
    let bounced = Transfer {
        flaw: Some(Flaw::Bounced),
        ..ton("h3", &c.id, 1_000)
    };
    assert_eq!(
        judged(bounced),
        (Verdict::Rejected(Rejection::Bounced), Some(Status::Pending))
    );
    assert_eq!(judged(ton("h4", &c.id, 1_000)), (Verdict::Paid, Some(Status::Paid)));
    assert_eq!(
        judged(ton("h5", &c.id, 1_000)),
        (Verdict::Rejected(Rejection::NotPending), Some(Status::Paid))
    );
}

#[test]
fn orders_expire_only_after_a_poll_past_their_grace() {
    let book = book();
    let order = book.create(&new_order(Currency::UsdtTrc20, 5), 0).expect("order");
    assert!(book
        .expire(Currency::UsdtTrc20, 1_100, 100, &told)
        .expect("expire")
        .is_empty());
    let expired = book.expire(Currency::UsdtTrc20, 1_101, 100, &told).expect("expire");
    assert_eq!(expired.len(), 1);
    assert_eq!(
        book.get(&order.id).expect("get").map(|o| o.status),
        Some(Status::Expired)
    );
    assert_eq!(
        book.due(2_000, 10).expect("due").0[0].text,
        format!("{} is expired", order.id)
    );
    // Its amount is free again.
    assert_eq!(
        book.create(&new_order(Currency::UsdtTrc20, 5), 1_200)
            .expect("next")
            .amount,
        5
    );
}

#[test]
fn an_update_is_handled_once_with_what_it_did() {
    let book = book();
    let handle = |id: i64| {
        book.on_update(id, |tx| {
            let order = tx.create(&new_order(Currency::Ton, 9), 0)?;
            tx.queue(Outgoing::new(1, format!("pay {}", order.id), Some(&order.id)))
        })
        .expect("update")
    };
    assert!(handle(7).is_some());
    assert_eq!(book.bot_offset().expect("offset"), 8);
    assert!(handle(7).is_none(), "an update below the offset is skipped");
    assert_eq!(book.orders().expect("orders").len(), 1);
    assert_eq!(book.backlog(), 1);
}

#[test]
fn the_link_key_is_made_once() {
    let book = book();
    let key = book.link_key().expect("key");
    assert_eq!(book.link_key().expect("key"), key);
}

/// One transfer of the random history: which order it copies (if any) and
/// what it gets wrong.
#[derive(Debug, Clone)]
struct Offer {
    order: usize,
    tx: u8,
    amount_delta: i64,
    fake_token: bool,
    elsewhere: bool,
    late: bool,
}

fn offers() -> impl Strategy<Value = Vec<Offer>> {
    let offer = (
        0usize..12,
        0u8..16,
        prop_oneof![Just(0i64), -150i64..150],
        any::<[bool; 3]>(),
    )
        .prop_map(|(order, tx, amount_delta, [fake_token, elsewhere, late])| Offer {
            order,
            tx,
            amount_delta,
            fake_token: fake_token && tx % 3 == 0,
            elsewhere: elsewhere && tx % 5 == 0,
            late: late && tx % 4 == 0,
        });
    proptest::collection::vec(offer, 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For random concurrent orders and transfers (exact copies, near
    /// misses, reused transaction ids, fake tokens, wrong recipients, late
    /// ones): an order is paid only by a transfer that matches it exactly,
    /// no transfer pays two orders, and a first exact transfer always pays.
    #[test]
    fn no_order_is_paid_by_a_transfer_that_does_not_match_it_and_none_pays_twice(
        prices in proptest::collection::vec(prop_oneof![Just(1_000_000u64), Just(2_000_000u64)], 1..12),
        offers in offers(),
    ) {
        let book = book();
        let mut new = new_order(Currency::UsdtTrc20, 0);
        new.max_open = 20;
        let orders: Vec<Order> = prices
            .iter()
            .map(|price| book.create(&NewOrder { price: *price, ..new.clone() }, 0).expect("order"))
            .collect();
        let mut offered: HashMap<String, Transfer> = HashMap::new();
        let rules = rules(Currency::UsdtTrc20);
        for offer in &offers {
            let target = &orders[offer.order % orders.len()];
            let mut transfer = usdt(
                &format!("tx{}", offer.tx),
                target.amount.saturating_add_signed(offer.amount_delta),
                if offer.late { 5_000 } else { 500 },
            );
            if offer.fake_token {
                transfer.token = Some("TFakeUsdtFakeUsdtFakeUsdtFakeUs".into());
            }
            if offer.elsewhere {
                transfer.to = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7".into();
            }
            let before = book.get(&target.id).expect("get").expect("order");
            let first_time = !offered.contains_key(&transfer.tx_id);
            let outcome = book.settle(&transfer, &rules, 600, &told).expect("settle");
            let exact = transfer.value == target.amount
                && !offer.fake_token
                && !offer.elsewhere
                && !offer.late;
            if first_time && exact && before.status == Status::Pending {
                prop_assert!(matches!(outcome, Settlement::Judged(Verdict::Paid, _)), "{transfer:?}: {outcome:?}");
            }
            if !first_time {
                prop_assert_eq!(outcome, Settlement::Seen);
            }
            offered.entry(transfer.tx_id.clone()).or_insert(transfer);
        }
        let mut paying = HashSet::new();
        for order in book.orders().expect("orders") {
            if order.status != Status::Paid {
                prop_assert!(order.tx_id.is_none());
                continue;
            }
            let tx = order.tx_id.clone().expect("paid orders name their transaction");
            prop_assert!(paying.insert(tx.clone()), "{tx} paid two orders");
            let transfer = &offered[&tx];
            prop_assert_eq!(transfer.value, order.amount);
            prop_assert_eq!(transfer.token.as_deref(), Some(USDT));
            prop_assert_eq!(transfer.to.as_str(), WALLET);
            prop_assert!(transfer.at_ms >= order.created_ms && transfer.at_ms <= order.expires_ms);
        }
    }
}
