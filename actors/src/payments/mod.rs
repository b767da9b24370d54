//! The payment checker: sells downloads for USDT (TRC-20) or Toncoin and
//! delivers them through a Telegram sales bot.
//!
//! - [`book`]: orders, held TRC-20 amounts, judged transaction ids, the
//!   outbox to buyers, cursors and the bot offset, in sled, each step one
//!   transaction.
//! - [`matching`]: whether a transfer pays an order (the real token, our
//!   wallet, the window, the exact amount), as one pure function.
//! - [`trongrid`], [`ton`]: the chain APIs, read oldest first from a cursor.
//! - [`poll`]: one poll of one chain, through the rate limiter.
//! - [`shop`]: what buyers are told; [`link`]: signed download links.
//! - [`actor`]: [`PaymentActor`], which polls while orders are pending,
//!   delivers the outbox and runs the bot.
//!
//! A transfer pays one order at most, forever (its id is kept); an order is
//! paid once; a paid buyer is told through the durable outbox, so a crash
//! between payment and message loses nothing.

pub mod actor;
pub mod book;
pub mod config;
pub mod http;
pub mod link;
pub mod matching;
pub mod metrics;
pub mod money;
pub mod order;
pub mod poll;
pub mod shop;
pub mod ton;
pub mod trongrid;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use actor::PaymentActor;
use book::{BookError, OrderBook};
pub use config::PaymentsConfig;
use link::{LinkError, Links};
use money::Currency;
use order::{Order, Status};
use serde::Serialize;
use shop::{Shop, ShopError};

use crate::mesh::unix_ms;
use crate::store::Store;

/// Errors of the payment checker's API.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The order book failed.
    #[error(transparent)]
    Book(#[from] BookError),
    /// The order cannot be made as asked.
    #[error(transparent)]
    Shop(#[from] ShopError),
}

/// Why a download is refused.
#[derive(Debug, thiserror::Error)]
pub enum DownloadRefusal {
    /// A forged or expired link.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The order is not (or no longer) paid.
    #[error("order {0} is not paid")]
    Unpaid(String),
    /// The product or its file is gone.
    #[error("the file of {0} is not available")]
    Missing(String),
    /// The order book failed.
    #[error(transparent)]
    Book(#[from] BookError),
}

impl DownloadRefusal {
    /// The `result` label of `x0tta_payments_downloads_total`.
    pub fn label(&self) -> &'static str {
        match self {
            DownloadRefusal::Link(e) => e.label(),
            DownloadRefusal::Unpaid(_) => "unpaid",
            DownloadRefusal::Missing(_) => "missing",
            DownloadRefusal::Book(_) => "error",
        }
    }
}

/// The orders as `GET /api/v1/orders` shows them.
#[derive(Debug, Serialize)]
pub struct OrdersView {
    /// Orders per status.
    pub counts: BTreeMap<Status, usize>,
    /// Messages to buyers not yet accepted by Telegram.
    pub outbox: usize,
    /// Every order, newest first.
    pub orders: Vec<Order>,
}

/// The payment checker's state, shared by its actor and the HTTP API.
#[derive(Clone)]
pub struct Payments {
    book: OrderBook,
    shop: Shop,
}

impl Payments {
    /// Opens the order book in `store`; links point at `public_url`
    /// (`payments.public_url` when set).
    pub fn open(store: &Store, config: PaymentsConfig, public_url: &str) -> Result<Self, BookError> {
        metrics::describe();
        for product in config.products.iter().filter(|p| !p.file.is_file()) {
            tracing::warn!(product = %product.id, file = %product.file.display(), "a product's file is missing: paid buyers of it get 404 until it is there");
        }
        let book = OrderBook::open(store)?;
        let links = Links::new(book.link_key()?);
        let base = config.public_url.clone().unwrap_or_else(|| public_url.to_string());
        let shop = Shop::new(Arc::new(config), links, &base);
        Ok(Self { book, shop })
    }

    /// The order book.
    pub fn book(&self) -> &OrderBook {
        &self.book
    }

    /// The shop.
    pub fn shop(&self) -> &Shop {
        &self.shop
    }

    /// Makes an order for `product` in `currency` (the first it is sold
    /// for when `None`), for `chat` if given.
    pub fn create(&self, product: &str, currency: Option<Currency>, chat: Option<i64>) -> Result<Order, PaymentError> {
        let new = self.shop.new_order(product, currency, chat)?;
        Ok(self.book.create(&new, unix_ms())?)
    }

    /// Every order with counts and the outbox.
    pub fn view(&self) -> Result<OrdersView, BookError> {
        let orders = self.book.orders()?;
        Ok(OrdersView {
            counts: order::tally(&orders),
            outbox: self.book.backlog(),
            orders,
        })
    }

    /// The file `token` downloads at `now_ms`, checked: a valid link of a
    /// paid order of that product. Counted either way.
    pub fn download(&self, token: &str, now_ms: u64) -> Result<(Order, PathBuf), DownloadRefusal> {
        let result = self.check_download(token, now_ms);
        metrics::download(match &result {
            Ok(_) => "ok",
            Err(refusal) => refusal.label(),
        });
        result
    }

    fn check_download(&self, token: &str, now_ms: u64) -> Result<(Order, PathBuf), DownloadRefusal> {
        let grant = self.shop.links().verify(token, now_ms)?;
        let order = self
            .book
            .get(&grant.order)?
            .filter(|o| o.status.grants_download() && o.product == grant.product)
            .ok_or_else(|| DownloadRefusal::Unpaid(grant.order.clone()))?;
        let product = self
            .shop
            .product(&grant.product)
            .ok_or_else(|| DownloadRefusal::Missing(grant.product.clone()))?;
        Ok((order, product.file.clone()))
    }
}
