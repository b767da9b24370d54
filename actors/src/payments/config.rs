//! Configuration of the payment checker (`[payments]`): what is sold, the
//! wallets paid to, the chain APIs asked and how hard, and the sales bot.
//! Off until `payments.enabled` is set with at least one product and one
//! wallet.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::money::{parse_amount, Currency};
use crate::breaker::circuit::CircuitConfig;

/// The USDT TRC-20 contract on TRON mainnet.
pub const USDT_CONTRACT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";

/// Payment checker settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentsConfig {
    /// Runs the payment checker (and the sales bot when `bot` is set).
    pub enabled: bool,
    /// Seconds between polls of a chain API while orders are pending.
    pub poll_secs: u64,
    /// Seconds an order may be paid in.
    pub order_ttl_secs: u64,
    /// Seconds after its expiry an order is still matched, for transfers
    /// made in time that the API shows only once confirmed (TRON confirms in
    /// about a minute).
    pub confirm_grace_secs: u64,
    /// Seconds a download link stays valid.
    pub link_ttl_secs: u64,
    /// Base URL of download links (`https://shop.example.org`); the node's
    /// own HTTP address when unset.
    pub public_url: Option<String>,
    /// Overpayment kept without a refund, in basis points of the price
    /// (TON only: a TRC-20 order is matched by its exact amount).
    pub overpay_tolerance_bps: u32,
    /// Timeout of one API request (ms).
    pub timeout_ms: u64,
    /// Largest API answer read, in bytes; a larger one is refused.
    pub max_body_bytes: usize,
    /// Consecutive failed polls of a chain API that open its breaker (and
    /// raise an alert).
    pub failures_to_open: u32,
    /// Seconds an open chain API breaker waits before a trial poll.
    pub open_secs: u64,
    /// Products on sale.
    pub products: Vec<Product>,
    /// The TRON wallet and TronGrid.
    pub trc20: Option<Trc20Config>,
    /// The TON wallet and toncenter or tonapi.
    pub ton: Option<TonConfig>,
    /// The Telegram sales bot.
    pub bot: Option<BotConfig>,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            poll_secs: 30,
            order_ttl_secs: 30 * 60,
            confirm_grace_secs: 120,
            link_ttl_secs: 24 * 3600,
            public_url: None,
            overpay_tolerance_bps: 50,
            timeout_ms: 10_000,
            max_body_bytes: 4 << 20,
            failures_to_open: 5,
            open_secs: 60,
            products: Vec::new(),
            trc20: None,
            ton: None,
            bot: None,
        }
    }
}

/// One product.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// What buyers type after `/buy`.
    pub id: String,
    /// What they are told they buy.
    pub name: String,
    /// The file a paid order downloads.
    pub file: PathBuf,
    /// Price in USDT (`"10"`, `"9.99"`); not sold for USDT when unset.
    pub price_usdt: Option<String>,
    /// Price in TON; not sold for TON when unset.
    pub price_ton: Option<String>,
}

impl Product {
    /// The price in base units of `currency`, if sold for it.
    pub fn price(&self, currency: Currency) -> Option<u64> {
        let text = match currency {
            Currency::UsdtTrc20 => self.price_usdt.as_deref()?,
            Currency::Ton => self.price_ton.as_deref()?,
        };
        parse_amount(text, currency.decimals()).ok()
    }
}

/// The TRON wallet and the TronGrid API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Trc20Config {
    /// The wallet (base58, `T…`) orders are paid to.
    pub address: String,
    /// TronGrid base URL.
    pub api_url: String,
    /// `TRON-PRO-API-KEY`; without one TronGrid allows far fewer requests.
    pub api_key: Option<String>,
    /// The token contract that pays: USDT's unless changed (test nets).
    pub contract: String,
    /// Requests per second; 0 picks 10 with a key and 1 without.
    pub requests_per_sec: u32,
    /// Step between the unique amounts of open orders, in base units
    /// (100 = 0.0001 USDT).
    pub amount_step: u64,
    /// Most open orders per price (each needs its own amount).
    pub max_open_per_price: u32,
    /// Transfers per page (TronGrid allows up to 200).
    pub page_limit: u32,
}

impl Default for Trc20Config {
    fn default() -> Self {
        Self {
            address: String::new(),
            api_url: "https://api.trongrid.io".into(),
            api_key: None,
            contract: USDT_CONTRACT.into(),
            requests_per_sec: 0,
            amount_step: 100,
            max_open_per_price: 10_000,
            page_limit: 200,
        }
    }
}

impl Trc20Config {
    /// Requests per second actually used.
    pub fn rate(&self) -> u32 {
        match (self.requests_per_sec, self.api_key.is_some()) {
            (0, true) => 10,
            (0, false) => 1,
            (n, _) => n,
        }
    }
}

/// Which TON indexer is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TonIndexer {
    /// toncenter API v3 (`X-API-Key`).
    Toncenter,
    /// tonapi v2 (`Authorization: Bearer`).
    Tonapi,
}

/// The TON wallet and the indexer API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TonConfig {
    /// The wallet orders are paid to: raw (`0:<64 hex>`) or user-friendly
    /// (`EQ…`/`UQ…`).
    pub address: String,
    /// Which indexer.
    pub indexer: TonIndexer,
    /// Its base URL; the public one of the indexer when unset.
    pub api_url: Option<String>,
    /// API key; toncenter allows 1 request/s without one, 10 with a free one.
    pub api_key: Option<String>,
    /// Requests per second; 0 picks 10 with a key and 1 without.
    pub requests_per_sec: u32,
    /// Transactions per page.
    pub page_limit: u32,
}

impl Default for TonConfig {
    fn default() -> Self {
        Self {
            address: String::new(),
            indexer: TonIndexer::Toncenter,
            api_url: None,
            api_key: None,
            requests_per_sec: 0,
            page_limit: 100,
        }
    }
}

impl TonConfig {
    /// The indexer's base URL.
    pub fn base_url(&self) -> &str {
        match (&self.api_url, self.indexer) {
            (Some(url), _) => url,
            (None, TonIndexer::Toncenter) => "https://toncenter.com",
            (None, TonIndexer::Tonapi) => "https://tonapi.io",
        }
    }

    /// Requests per second actually used.
    pub fn rate(&self) -> u32 {
        match (self.requests_per_sec, self.api_key.is_some()) {
            (0, true) => 10,
            (0, false) => 1,
            (n, _) => n,
        }
    }
}

/// The Telegram sales bot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotConfig {
    /// Bot token from @BotFather.
    pub token: String,
    /// Bot API base URL.
    pub api_url: String,
    /// Seconds one `getUpdates` long poll waits for news.
    pub long_poll_secs: u32,
    /// Messages per second to buyers (Telegram allows about 30).
    pub messages_per_sec: u32,
}

impl Default for BotConfig {
    fn default() -> Self {
        Self {
            token: String::new(),
            api_url: "https://api.telegram.org".into(),
            long_poll_secs: 25,
            messages_per_sec: 20,
        }
    }
}

impl PaymentsConfig {
    /// Timeout of one API request.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    /// Thresholds of each chain API's breaker.
    pub fn circuit(&self) -> CircuitConfig {
        CircuitConfig::consecutive(self.failures_to_open, self.open_secs)
    }

    /// The product called `id`.
    pub fn product(&self, id: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.id.eq_ignore_ascii_case(id.trim()))
    }

    /// Whether a wallet for `currency` is configured.
    pub fn accepts(&self, currency: Currency) -> bool {
        match currency {
            Currency::UsdtTrc20 => self.trc20.is_some(),
            Currency::Ton => self.ton.is_some(),
        }
    }

    /// Checks what serde cannot: names the first bad key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let bad = |key: &'static str, why: String| Err((key, why));
        if !self.enabled {
            return Ok(());
        }
        if self.poll_secs == 0 || self.order_ttl_secs == 0 || self.link_ttl_secs == 0 {
            return bad(
                "payments.poll_secs",
                "poll_secs, order_ttl_secs and link_ttl_secs must be at least 1".into(),
            );
        }
        if self.trc20.is_none() && self.ton.is_none() {
            return bad(
                "payments.trc20",
                "set a wallet: [payments.trc20] or [payments.ton]".into(),
            );
        }
        if self.products.is_empty() {
            return bad(
                "payments.products",
                "nothing is on sale: add a [[payments.products]]".into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for product in &self.products {
            let id = product.id.to_ascii_lowercase();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return bad(
                    "payments.products.id",
                    format!("{:?} must be letters, digits, - or _", product.id),
                );
            }
            if !seen.insert(id) {
                return bad("payments.products.id", format!("{:?} is listed twice", product.id));
            }
            for (currency, text) in [
                (Currency::UsdtTrc20, &product.price_usdt),
                (Currency::Ton, &product.price_ton),
            ] {
                let Some(text) = text else { continue };
                match parse_amount(text, currency.decimals()) {
                    Ok(0) => {
                        return bad(
                            "payments.products.price",
                            format!("{} is free in {}", product.id, currency.symbol()),
                        )
                    }
                    Ok(_) => {}
                    Err(e) => return bad("payments.products.price", format!("{}: {e}", product.id)),
                }
                if !self.accepts(currency) {
                    return bad(
                        "payments.products.price",
                        format!(
                            "{} has a {} price but no such wallet is set",
                            product.id,
                            currency.symbol()
                        ),
                    );
                }
            }
            if product.price_usdt.is_none() && product.price_ton.is_none() {
                return bad("payments.products.price_usdt", format!("{} has no price", product.id));
            }
        }
        if let Some(trc20) = &self.trc20 {
            if !trc20.address.starts_with('T') || trc20.address.len() != 34 {
                return bad(
                    "payments.trc20.address",
                    format!("{:?} is not a TRON address (T…, 34 chars)", trc20.address),
                );
            }
            if trc20.amount_step == 0 || trc20.max_open_per_price == 0 || !(1..=200).contains(&trc20.page_limit) {
                return bad(
                    "payments.trc20.amount_step",
                    "amount_step and max_open_per_price must be at least 1, page_limit 1 to 200".into(),
                );
            }
        }
        if let Some(ton) = &self.ton {
            if let Err(e) = super::matching::ton_raw_address(&ton.address) {
                return bad("payments.ton.address", e);
            }
            if !(1..=1000).contains(&ton.page_limit) {
                return bad("payments.ton.page_limit", "must be 1 to 1000".into());
            }
        }
        if let Some(bot) = &self.bot {
            if !bot.token.contains(':') {
                return bad("payments.bot.token", "is not a bot token (<id>:<secret>)".into());
            }
            if bot.messages_per_sec == 0 {
                return bad("payments.bot.messages_per_sec", "must be at least 1".into());
            }
        }
        Ok(())
    }
}
