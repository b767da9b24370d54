//! Fake chain APIs for the payment tests: TronGrid's TRC-20 transfer list
//! and TON's toncenter v3 and tonapi v2 transaction lists, over the scripted
//! [`Fixture`] server, answering in the documented shapes
//! (`shared/reference/external-apis.md`) from a history the test writes:
//! filters, sort order, page size and cursors as the real APIs apply them.
//! Scripted replies (429, 403, 5xx, delays, junk) go first, as in every
//! fixture.
//!
//! TronGrid filters by `contract_address` and `only_to`; this fake applies
//! neither (tests check that the node asks for them), so a fake token or a
//! transfer to another wallet reaches the node and its own checks are what
//! stop them.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::fixture::{Fixture, Received, Reply};

/// The real USDT TRC-20 contract.
pub const USDT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";

/// One TRC-20 transfer in the fake history.
#[derive(Debug, Clone)]
pub struct Trc20Transfer {
    /// 64 hex.
    pub tx: String,
    /// Token contract.
    pub contract: String,
    /// Token symbol (a fake one says "USDT" too).
    pub symbol: String,
    /// Sender.
    pub from: String,
    /// Recipient.
    pub to: String,
    /// Base units.
    pub value: u64,
    /// Block time, ms.
    pub at_ms: u64,
    /// `Transfer` or `Approval`.
    pub kind: String,
    /// Solidified.
    pub confirmed: bool,
}

impl Trc20Transfer {
    /// A confirmed USDT transfer of `value` to `to` at `at_ms`.
    pub fn usdt(tx: &str, to: &str, value: u64, at_ms: u64) -> Self {
        Self {
            tx: format!("{tx:0>64}"),
            contract: USDT.into(),
            symbol: "USDT".into(),
            from: "TXf1oKG6JUUf5XhP6tnYBvdoyDbcH9tYgH".into(),
            to: to.into(),
            value,
            at_ms,
            kind: "Transfer".into(),
            confirmed: true,
        }
    }

    fn json(&self) -> Value {
        json!({
            "transaction_id": self.tx,
            "token_info": {"symbol": self.symbol, "address": self.contract, "decimals": 6, "name": "Tether USD"},
            "block_timestamp": self.at_ms,
            "from": self.from,
            "to": self.to,
            "type": self.kind,
            "value": self.value.to_string(),
        })
    }
}

/// A fake TronGrid.
pub struct FakeTronGrid {
    /// The server.
    pub fixture: Fixture,
    history: Arc<Mutex<Vec<Trc20Transfer>>>,
}

impl FakeTronGrid {
    /// Serves `account`'s history, at most `page_size` per page (below
    /// the client's `limit` to make several pages).
    pub fn start(page_size: usize) -> Self {
        let history: Arc<Mutex<Vec<Trc20Transfer>>> = Arc::default();
        let served = history.clone();
        let fixture = Fixture::serve(Arc::new(move |request| {
            trongrid_page(request, &served.lock().expect("history"), page_size)
        }));
        Self { fixture, history }
    }

    /// Adds a transfer to the history.
    pub fn add(&self, transfer: Trc20Transfer) {
        self.history.lock().expect("history").push(transfer);
    }

    /// Marks transfer `tx` confirmed.
    pub fn confirm(&self, tx: &str) {
        for t in self.history.lock().expect("history").iter_mut() {
            if t.tx.ends_with(tx) {
                t.confirmed = true;
            }
        }
    }

    /// Requests that listed transfers.
    pub fn polls(&self) -> Vec<Received> {
        let route = |r: &Received| r.route().ends_with("/transactions/trc20");
        self.fixture.received().into_iter().filter(route).collect()
    }
}

fn trongrid_page(request: &Received, history: &[Trc20Transfer], page_size: usize) -> Reply {
    let listing = request.route().starts_with("/v1/accounts/") && request.route().ends_with("/transactions/trc20");
    if !listing {
        return Reply::json(404, json!({"success": false, "error": "not found", "statusCode": 404}));
    }
    let flag = |name: &str| request.query(name).as_deref() == Some("true");
    let number = |name: &str| request.query(name).and_then(|v| v.parse::<u64>().ok());
    let limit = number("limit").unwrap_or(20).min(200) as usize;
    let mut rows: Vec<&Trc20Transfer> = history
        .iter()
        .filter(|t| !flag("only_confirmed") || t.confirmed)
        .filter(|t| number("min_timestamp").is_none_or(|min| t.at_ms >= min))
        .collect();
    let ascending = request.query("order_by").as_deref() == Some("block_timestamp,asc");
    rows.sort_by_key(|t| t.at_ms);
    if !ascending {
        rows.reverse();
    }
    let start = request
        .query("fingerprint")
        .and_then(|f| base64::engine::general_purpose::STANDARD.decode(f).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let size = limit.min(page_size);
    let page: Vec<Value> = rows.iter().skip(start).take(size).map(|t| t.json()).collect();
    let mut meta = json!({"at": 1_764_000_000_000u64, "page_size": page.len()});
    if start + size < rows.len() {
        let fingerprint = base64::engine::general_purpose::STANDARD.encode((start + size).to_string());
        meta["fingerprint"] = json!(fingerprint);
        meta["links"] = json!({"next": format!("https://api.trongrid.io{}&fingerprint={fingerprint}", request.path)});
    }
    Reply::json(200, json!({"data": page, "success": true, "meta": meta}))
}

/// One TON transaction in the fake history.
#[derive(Debug, Clone)]
pub struct TonTransaction {
    /// 32-byte hash.
    pub hash: [u8; 32],
    /// Logical time.
    pub lt: u64,
    /// Unix seconds.
    pub utime: u64,
    /// Sender (raw); `None` for an external message.
    pub source: Option<String>,
    /// Our wallet (raw).
    pub destination: String,
    /// Nanotons.
    pub value: u64,
    /// Text comment.
    pub comment: Option<String>,
    /// Bounced.
    pub bounced: bool,
    /// Failed (aborted).
    pub aborted: bool,
}

impl TonTransaction {
    /// A successful transfer of `value` nanotons to `to` with `comment`.
    pub fn transfer(seed: u8, to: &str, value: u64, comment: &str, lt: u64, utime: u64) -> Self {
        Self {
            hash: [seed; 32],
            lt,
            utime,
            source: Some(format!("0:{}", "b2".repeat(32))),
            destination: to.into(),
            value,
            comment: Some(comment.into()),
            bounced: false,
            aborted: false,
        }
    }

    /// The hash as the node names it (hex).
    pub fn id(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn toncenter(&self) -> Value {
        let content = self
            .comment
            .as_ref()
            .map(|c| json!({"hash": "x", "body": "te6", "decoded": {"type": "text_comment", "comment": c}}));
        json!({
            "account": self.destination.to_ascii_uppercase(),
            "hash": base64::engine::general_purpose::STANDARD.encode(self.hash),
            "lt": self.lt.to_string(),
            "now": self.utime,
            "orig_status": "active",
            "end_status": "active",
            "total_fees": "1000",
            "description": {"type": "ord", "aborted": self.aborted, "destroyed": false,
                "compute_ph": {"skipped": false, "success": !self.aborted}},
            "in_msg": {
                "hash": "m",
                "source": self.source.as_ref().map(|s| s.to_ascii_uppercase()),
                "destination": self.destination.to_ascii_uppercase(),
                "value": self.value.to_string(),
                "fwd_fee": "0",
                "bounce": true,
                "bounced": self.bounced,
                "created_lt": self.lt.to_string(),
                "message_content": content,
            },
            "out_msgs": [],
        })
    }

    fn tonapi(&self) -> Value {
        let mut in_msg = json!({
            "msg_type": if self.source.is_some() { "int_msg" } else { "ext_in_msg" },
            "created_lt": self.lt,
            "ihr_disabled": true,
            "bounce": true,
            "bounced": self.bounced,
            "value": self.value,
            "fwd_fee": 0,
            "ihr_fee": 0,
            "destination": {"address": self.destination, "is_scam": false, "is_wallet": true},
            "import_fee": 0,
            "created_at": self.utime,
        });
        if let Some(source) = &self.source {
            in_msg["source"] = json!({"address": source, "is_scam": false, "is_wallet": true});
        }
        if let Some(comment) = &self.comment {
            in_msg["decoded_op_name"] = json!("text_comment");
            in_msg["decoded_body"] = json!({"text": comment});
        }
        json!({
            "hash": self.id(),
            "lt": self.lt,
            "account": {"address": self.destination, "is_scam": false, "is_wallet": true},
            "success": !self.aborted,
            "utime": self.utime,
            "orig_status": "active",
            "end_status": "active",
            "total_fees": 1000,
            "end_balance": 1,
            "transaction_type": "TransOrd",
            "state_update_old": "",
            "state_update_new": "",
            "in_msg": in_msg,
            "out_msgs": [],
            "block": "(0,8000000000000000,1)",
            "aborted": self.aborted,
            "destroyed": false,
            "raw": "",
        })
    }
}

/// A fake TON indexer answering both toncenter v3 and tonapi v2.
pub struct FakeTon {
    /// The server.
    pub fixture: Fixture,
    history: Arc<Mutex<Vec<TonTransaction>>>,
}

impl FakeTon {
    /// Serves the history, at most `page_size` per page.
    pub fn start(page_size: usize) -> Self {
        let history: Arc<Mutex<Vec<TonTransaction>>> = Arc::default();
        let served = history.clone();
        let fixture = Fixture::serve(Arc::new(move |request| {
            ton_page(request, &served.lock().expect("history"), page_size)
        }));
        Self { fixture, history }
    }

    /// Adds a transaction.
    pub fn add(&self, transaction: TonTransaction) {
        self.history.lock().expect("history").push(transaction);
    }

    /// Requests that listed transactions.
    pub fn polls(&self) -> Vec<Received> {
        self.fixture
            .received()
            .into_iter()
            .filter(|r| r.route().ends_with("/transactions"))
            .collect()
    }
}

fn ton_page(request: &Received, history: &[TonTransaction], page_size: usize) -> Reply {
    let number = |name: &str| request.query(name).and_then(|v| v.parse::<u64>().ok());
    let limit = (number("limit").unwrap_or(10) as usize).min(page_size);
    let mut rows: Vec<&TonTransaction> = history.iter().collect();
    rows.sort_by_key(|t| t.lt);
    if request.route() == "/api/v3/transactions" {
        let rows: Vec<Value> = rows
            .into_iter()
            .filter(|t| number("start_lt").is_none_or(|lt| t.lt >= lt))
            .filter(|t| number("start_utime").is_none_or(|u| t.utime >= u))
            .skip(number("offset").unwrap_or(0) as usize)
            .take(limit)
            .map(TonTransaction::toncenter)
            .collect();
        return Reply::json(200, json!({"transactions": rows, "address_book": {}}));
    }
    if request.route().starts_with("/v2/blockchain/accounts/") {
        let descending = request.query("sort_order").as_deref() != Some("asc");
        if descending {
            rows.reverse();
        }
        let rows: Vec<Value> = rows
            .into_iter()
            .filter(|t| number("after_lt").is_none_or(|lt| t.lt > lt))
            .filter(|t| number("before_lt").is_none_or(|lt| t.lt < lt))
            .take(limit)
            .map(TonTransaction::tonapi)
            .collect();
        return Reply::json(200, json!({"transactions": rows}));
    }
    Reply::json(404, json!({"error": "not found"}))
}
