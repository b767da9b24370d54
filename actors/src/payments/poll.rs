//! One poll of one chain: read every transfer to our wallet since the
//! cursor, page by page within the API's rate, judge each against the
//! orders, and move the cursor after each page — so a poll cut short by an
//! error goes on from the last page read, never from the start.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::book::{BookError, Cursor, OrderBook, Settlement};
use super::http::{ApiError, Next, Page};
use super::matching::{Rules, Verdict};
use super::money::Currency;
use super::order::Order;
use super::shop::Shop;
use super::ton::Ton;
use super::trongrid::TronGrid;
use crate::mesh::unix_ms;

/// Most pages one poll reads; the rest waits for the next poll.
pub const MAX_PAGES: u32 = 50;

/// A limiter of `per_sec` requests per second (at least 1).
pub fn limiter(per_sec: u32) -> DefaultDirectRateLimiter {
    RateLimiter::direct(Quota::per_second(NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN)))
}

/// A chain API.
#[derive(Clone)]
pub enum ChainApi {
    /// TronGrid, USDT TRC-20.
    Trc20(TronGrid, String),
    /// toncenter or tonapi.
    Ton(Ton),
}

/// What one poll did.
#[derive(Debug, Default)]
pub struct PollReport {
    /// API calls made.
    pub calls: u32,
    /// Transfers judged (a transaction id seen before is not listed).
    pub judged: Vec<(Verdict, String, Option<Order>)>,
    /// Transfers read again (at a page boundary) and skipped.
    pub seen: usize,
    /// Why it stopped early, if it did.
    pub error: Option<PollError>,
    /// Read to the end of the history.
    pub complete: bool,
}

/// Why a poll stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The API failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The order book failed.
    #[error(transparent)]
    Book(#[from] BookError),
}

impl ChainApi {
    /// The currency it checks.
    pub fn currency(&self) -> Currency {
        match self {
            ChainApi::Trc20(..) => Currency::UsdtTrc20,
            ChainApi::Ton(_) => Currency::Ton,
        }
    }

    /// The wallet, as transfers name it.
    pub fn wallet(&self) -> &str {
        match self {
            ChainApi::Trc20(_, wallet) => wallet,
            ChainApi::Ton(ton) => ton.wallet(),
        }
    }

    async fn page(&self, cursor: Option<Cursor>, since_ms: u64, next: Option<&Next>) -> Result<Page, ApiError> {
        match (self, next) {
            (ChainApi::Trc20(api, _), next) => {
                let from = cursor.map_or(since_ms, |c| c.position.max(since_ms));
                let fingerprint = match next {
                    Some(Next::Fingerprint(f)) => Some(f.as_str()),
                    _ => None,
                };
                api.page(from, fingerprint).await
            }
            (ChainApi::Ton(api), Some(Next::After(lt))) => api.page(Some(*lt), since_ms).await,
            (ChainApi::Ton(api), _) => api.page(cursor.map(|c| c.position), since_ms).await,
        }
    }

    /// Reads the chain from the cursor (or from `since_ms`, the oldest
    /// pending order, when there is none yet) and settles what it finds.
    pub async fn poll(
        &self,
        book: &OrderBook,
        shop: &Shop,
        limiter: &DefaultDirectRateLimiter,
        since_ms: u64,
    ) -> PollReport {
        let mut report = PollReport::default();
        if let Err(error) = self.read(book, shop, limiter, since_ms, &mut report).await {
            report.error = Some(error);
        }
        report
    }

    async fn read(
        &self,
        book: &OrderBook,
        shop: &Shop,
        limiter: &DefaultDirectRateLimiter,
        since_ms: u64,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        let currency = self.currency();
        let started_ms = unix_ms();
        let config = shop.config();
        let contract = config.trc20.as_ref().map_or("", |t| t.contract.as_str());
        let rules = Rules {
            wallet: self.wallet(),
            contract,
            tolerance_bps: config.overpay_tolerance_bps,
        };
        let notice = |order: &Order| shop.notice(order);
        // Pages after the first follow `next`, from where the poll began.
        let start = book.cursor(currency)?;
        let mut cursor = start;
        let mut next = None;
        while report.calls < MAX_PAGES {
            limiter.until_ready().await;
            report.calls += 1;
            let page = self.page(start, since_ms, next.as_ref()).await?;
            let mut position = cursor.map_or(0, |c| c.position);
            for (at, transfer) in &page.transfers {
                position = position.max(*at);
                match book.settle(transfer, &rules, unix_ms(), &notice)? {
                    Settlement::Seen => report.seen += 1,
                    Settlement::Judged(verdict, order) => report.judged.push((verdict, transfer.tx_id.clone(), order)),
                }
            }
            let moved = Cursor {
                position,
                polled_ms: cursor.map_or(0, |c| c.polled_ms),
            };
            book.set_cursor(currency, moved)?;
            cursor = Some(moved);
            match page.next {
                Some(more) => next = Some(more),
                None => {
                    book.set_cursor(
                        currency,
                        Cursor {
                            polled_ms: started_ms,
                            ..moved
                        },
                    )?;
                    report.complete = true;
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
