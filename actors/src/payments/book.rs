//! The order book in sled: orders, the TRC-20 amounts open orders hold,
//! every transaction id ever judged, the outbox of messages to buyers, the
//! chain cursors and the bot's update offset — one tree, so that each step
//! (an order and its reply; a payment, its transaction id and the buyer's
//! link) commits in one transaction and a crash leaves all of it or none.

use std::collections::BTreeMap;

use rand::Rng as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::matching::{judge, Rules, Transfer, Verdict};
use super::money::Currency;
use super::order::{Order, Status};
use crate::store::{Store, StoreError};

const TREE: &str = "payments";
const ORDER: &str = "o/";
const LOCK: &str = "a/";
const SEEN: &str = "t/";
const OUTBOX: &str = "q/";
const CURSOR: &str = "m/cursor/";
const BOT_OFFSET: &str = "m/bot-offset";
const LINK_KEY: &str = "m/link-key";

/// Characters of order ids: no 0/O or 1/I to misread.
const ID_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const ID_LEN: usize = 8;

/// Errors of the order book.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    /// sled failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// sled failed.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record does not decode.
    #[error("unreadable order book record: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// Every unique amount of this price is held by an open order.
    #[error("all {0} unique amounts of this price are held by open orders; try again later")]
    NoFreeAmount(u32),
}

impl From<TransactionError<BookError>> for BookError {
    fn from(error: TransactionError<BookError>) -> Self {
        match error {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => BookError::Sled(e),
        }
    }
}

/// What a new order needs.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Product id.
    pub product: String,
    /// Currency.
    pub currency: Currency,
    /// Price in base units.
    pub price: u64,
    /// The wallet.
    pub pay_to: String,
    /// Buyer's chat.
    pub chat_id: Option<i64>,
    /// How long it may be paid in (ms).
    pub ttl_ms: u64,
    /// How long after expiry its amount stays held (ms): a transfer made in
    /// time may show up late.
    pub grace_ms: u64,
    /// TRC-20: step between unique amounts and how many there are.
    pub amount_step: u64,
    /// TRC-20: most open orders per price.
    pub max_open: u32,
}

/// A TRC-20 amount held by an order.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lock {
    order: String,
    until_ms: u64,
}

/// A judged transaction id, kept forever: a transaction pays once.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seen {
    order: Option<String>,
    verdict: String,
    at_ms: u64,
}

/// A message to a buyer, waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    /// Outbox id (increasing).
    #[serde(default)]
    pub seq: u64,
    /// Telegram chat.
    pub chat_id: i64,
    /// Plain text.
    pub text: String,
    /// The order it is about.
    pub order: Option<String>,
    /// Attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not before this Unix ms.
    #[serde(default)]
    pub next_ms: u64,
}

impl Outgoing {
    /// A message to `chat_id` about `order`.
    pub fn new(chat_id: i64, text: impl Into<String>, order: Option<&str>) -> Self {
        Self {
            seq: 0,
            chat_id,
            text: text.into(),
            order: order.map(str::to_string),
            attempts: 0,
            next_ms: 0,
        }
    }
}

/// How far a chain has been read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// TRC-20: block time (ms) of the newest transfer read; TON: its logical time.
    pub position: u64,
    /// Start (Unix ms) of the last poll that read to the end: every transfer
    /// confirmed before it has been judged.
    pub polled_ms: u64,
}

/// What a transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Its transaction id was judged before: nothing happens again.
    Seen,
    /// Judged now; the order it named, as it stands after.
    Judged(Verdict, Option<Order>),
}

/// A transaction over the book, for steps that do several things at once.
pub struct Tx<'a> {
    tree: &'a TransactionalTree,
}

/// What a step inside a book transaction returns.
pub type TxResult<T> = Result<T, ConflictableTransactionError<BookError>>;

fn abort(error: impl Into<BookError>) -> ConflictableTransactionError<BookError> {
    ConflictableTransactionError::Abort(error.into())
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> TxResult<T> {
    serde_json::from_slice(bytes).map_err(abort)
}

fn encode(value: &impl Serialize) -> TxResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(abort)
}

fn lock_key(currency: Currency, amount: u64) -> Vec<u8> {
    let mut key = format!("{LOCK}{}/", currency.label()).into_bytes();
    key.extend_from_slice(&amount.to_be_bytes());
    key
}

fn seen_key(currency: Currency, tx_id: &str) -> String {
    format!("{SEEN}{}/{tx_id}", currency.chain())
}

fn outbox_key(seq: u64) -> Vec<u8> {
    let mut key = OUTBOX.as_bytes().to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The order id a TON comment names (ids are typed back in any case).
pub fn order_id_of(comment: &str) -> String {
    comment.trim().to_ascii_uppercase()
}

impl Tx<'_> {
    /// The order `id`.
    pub fn order(&self, id: &str) -> TxResult<Option<Order>> {
        self.tree
            .get(format!("{ORDER}{id}"))?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    fn put_order(&self, order: &Order) -> TxResult<()> {
        self.tree
            .insert(format!("{ORDER}{}", order.id).as_bytes(), encode(order)?)?;
        Ok(())
    }

    /// Creates an order: a fresh id and, for TRC-20, the smallest amount of
    /// `price + k·step` no open order holds.
    pub fn create(&self, new: &NewOrder, now_ms: u64) -> TxResult<Order> {
        let id = loop {
            let mut rng = rand::thread_rng();
            let id: String = (0..ID_LEN)
                .map(|_| char::from(ID_ALPHABET[rng.gen_range(0..ID_ALPHABET.len())]))
                .collect();
            if self.order(&id)?.is_none() {
                break id;
            }
        };
        let expires_ms = now_ms.saturating_add(new.ttl_ms);
        let amount = match new.currency {
            Currency::Ton => new.price,
            Currency::UsdtTrc20 => {
                let amount = self.free_amount(new, now_ms)?;
                let lock = Lock {
                    order: id.clone(),
                    until_ms: expires_ms.saturating_add(new.grace_ms),
                };
                self.tree.insert(lock_key(new.currency, amount), encode(&lock)?)?;
                amount
            }
        };
        let order = Order {
            id,
            product: new.product.clone(),
            currency: new.currency,
            amount,
            pay_to: new.pay_to.clone(),
            created_ms: now_ms,
            expires_ms,
            status: Status::Pending,
            tx_id: None,
            received: None,
            settled_ms: None,
            chat_id: new.chat_id,
        };
        self.put_order(&order)?;
        Ok(order)
    }

    fn free_amount(&self, new: &NewOrder, now_ms: u64) -> TxResult<u64> {
        for k in 0..u64::from(new.max_open) {
            let Some(amount) = k.checked_mul(new.amount_step).and_then(|d| d.checked_add(new.price)) else {
                break;
            };
            match self.tree.get(lock_key(new.currency, amount))? {
                None => return Ok(amount),
                Some(bytes) if decode::<Lock>(&bytes)?.until_ms < now_ms => return Ok(amount),
                Some(_) => {}
            }
        }
        Err(abort(BookError::NoFreeAmount(new.max_open)))
    }

    /// Queues `message` for delivery.
    pub fn queue(&self, mut message: Outgoing) -> TxResult<u64> {
        let seq = self.tree.generate_id()?;
        message.seq = seq;
        self.tree.insert(outbox_key(seq), encode(&message)?)?;
        Ok(seq)
    }
}

/// The order book. Cheap to clone.
#[derive(Clone)]
pub struct OrderBook {
    store: Store,
    tree: sled::Tree,
}

impl OrderBook {
    /// Opens the book in `store`.
    pub fn open(store: &Store) -> Result<Self, BookError> {
        Ok(Self {
            store: store.clone(),
            tree: store.tree(TREE)?,
        })
    }

    /// Runs `step` in one transaction (retried whole on a conflict, so it
    /// must do nothing outside the book).
    pub fn transact<T>(&self, step: impl Fn(&Tx<'_>) -> TxResult<T>) -> Result<T, BookError> {
        Ok(self.tree.transaction(|tree| step(&Tx { tree }))?)
    }

    /// Creates an order, durably.
    pub fn create(&self, new: &NewOrder, now_ms: u64) -> Result<Order, BookError> {
        let order = self.transact(|tx| tx.create(new, now_ms))?;
        self.flush()?;
        Ok(order)
    }

    /// The order `id`.
    pub fn get(&self, id: &str) -> Result<Option<Order>, BookError> {
        self.tree
            .get(format!("{ORDER}{}", order_id_of(id)))?
            .map(|bytes| Ok(serde_json::from_slice(&bytes)?))
            .transpose()
    }

    /// Every order, newest first.
    pub fn orders(&self) -> Result<Vec<Order>, BookError> {
        let mut orders = Vec::new();
        for item in self.tree.scan_prefix(ORDER) {
            let (_, bytes) = item?;
            orders.push(serde_json::from_slice::<Order>(&bytes)?);
        }
        orders.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then_with(|| a.id.cmp(&b.id)));
        Ok(orders)
    }

    /// Pending orders in `currency`.
    pub fn pending(&self, currency: Currency) -> Result<Vec<Order>, BookError> {
        Ok(self
            .orders()?
            .into_iter()
            .filter(|o| o.status == Status::Pending && o.currency == currency)
            .collect())
    }

    /// Orders per status (every status present, zeros included).
    pub fn counts(&self) -> Result<BTreeMap<Status, usize>, BookError> {
        Ok(super::order::tally(&self.orders()?))
    }

    /// Judges `transfer` and applies the verdict: a transfer that settles
    /// its order marks it, remembers its transaction id and queues what
    /// `notice` says to the buyer, all in one transaction, flushed before
    /// this returns (the outbox may send the message at once, so it must
    /// not be undone by a crash). A transaction id judged before does
    /// nothing, whatever order it names now.
    pub fn settle(
        &self,
        transfer: &Transfer,
        rules: &Rules<'_>,
        now_ms: u64,
        notice: &dyn Fn(&Order) -> Option<Outgoing>,
    ) -> Result<Settlement, BookError> {
        let seen = seen_key(transfer.currency, &transfer.tx_id);
        let settlement = self.transact(|tx| {
            if tx.tree.get(&seen)?.is_some() {
                return Ok(Settlement::Seen);
            }
            let named = match transfer.currency {
                Currency::UsdtTrc20 => match tx.tree.get(lock_key(transfer.currency, transfer.value))? {
                    Some(bytes) => tx.order(&decode::<Lock>(&bytes)?.order)?,
                    None => None,
                },
                Currency::Ton => match &transfer.comment {
                    Some(comment) => tx.order(&order_id_of(comment))?,
                    None => None,
                },
            };
            let verdict = judge(named.as_ref(), transfer, rules);
            let record = Seen {
                order: named.as_ref().map(|o| o.id.clone()),
                verdict: verdict.label().into(),
                at_ms: now_ms,
            };
            tx.tree.insert(seen.as_bytes(), encode(&record)?)?;
            let order = match (verdict.settles(), named) {
                (Some(status), Some(order)) => {
                    let settled = Order {
                        status,
                        tx_id: Some(transfer.tx_id.clone()),
                        received: Some(transfer.value),
                        settled_ms: Some(now_ms),
                        ..order
                    };
                    tx.put_order(&settled)?;
                    if let Some(message) = notice(&settled) {
                        tx.queue(message)?;
                    }
                    Some(settled)
                }
                (_, named) => named,
            };
            Ok(Settlement::Judged(verdict, order))
        })?;
        if matches!(settlement, Settlement::Judged(verdict, _) if verdict.settles().is_some()) {
            self.flush()?;
        }
        Ok(settlement)
    }

    /// Marks expired the pending orders of `currency` whose time and grace
    /// ran out before `polled_ms` (the start of a poll that read their
    /// chain to the end, so no transfer made in time can still show up),
    /// queueing what `notice` says; frees TRC-20 amounts whose hold ended.
    /// Returns the orders that expired.
    pub fn expire(
        &self,
        currency: Currency,
        polled_ms: u64,
        grace_ms: u64,
        notice: &dyn Fn(&Order) -> Option<Outgoing>,
    ) -> Result<Vec<Order>, BookError> {
        let mut expired = Vec::new();
        for order in self.pending(currency)? {
            if order.expires_ms.saturating_add(grace_ms) >= polled_ms {
                continue;
            }
            let done = self.transact(|tx| {
                let Some(current) = tx.order(&order.id)?.filter(|o| o.status == Status::Pending) else {
                    return Ok(None);
                };
                let order = Order {
                    status: Status::Expired,
                    ..current
                };
                tx.put_order(&order)?;
                if let Some(message) = notice(&order) {
                    tx.queue(message)?;
                }
                Ok(Some(order))
            })?;
            expired.extend(done);
        }
        let prefix = format!("{LOCK}{}/", currency.label());
        for item in self.tree.scan_prefix(prefix) {
            let (key, bytes) = item?;
            if serde_json::from_slice::<Lock>(&bytes)?.until_ms < polled_ms {
                self.tree.remove(key)?;
            }
        }
        if !expired.is_empty() {
            self.flush()?;
        }
        Ok(expired)
    }

    /// Where reading `currency`'s chain goes on from.
    pub fn cursor(&self, currency: Currency) -> Result<Option<Cursor>, BookError> {
        self.tree
            .get(format!("{CURSOR}{}", currency.chain()))?
            .map(|bytes| Ok(serde_json::from_slice(&bytes)?))
            .transpose()
    }

    /// Stores `currency`'s cursor (flushed with what was settled before it).
    pub fn set_cursor(&self, currency: Currency, cursor: Cursor) -> Result<(), BookError> {
        self.tree
            .insert(format!("{CURSOR}{}", currency.chain()), serde_json::to_vec(&cursor)?)?;
        self.flush()
    }

    /// Messages due at `now_ms`, oldest first, at most `limit`; when none
    /// is, the earliest time one will be.
    pub fn due(&self, now_ms: u64, limit: usize) -> Result<(Vec<Outgoing>, Option<u64>), BookError> {
        let (mut due, mut next) = (Vec::new(), None::<u64>);
        for item in self.tree.scan_prefix(OUTBOX) {
            let (_, bytes) = item?;
            let message: Outgoing = serde_json::from_slice(&bytes)?;
            if message.next_ms > now_ms {
                next = Some(next.map_or(message.next_ms, |n| n.min(message.next_ms)));
                continue;
            }
            due.push(message);
            if due.len() >= limit {
                break;
            }
        }
        Ok((due, next))
    }

    /// Messages waiting in the outbox.
    pub fn backlog(&self) -> usize {
        self.tree.scan_prefix(OUTBOX).count()
    }

    /// Telegram accepted message `seq`: it leaves the outbox, durably.
    pub fn sent(&self, seq: u64) -> Result<(), BookError> {
        self.tree.remove(outbox_key(seq))?;
        self.flush()
    }

    /// Message `seq` is dropped for good (Telegram refused it: the chat
    /// blocked the bot, say).
    pub fn drop_message(&self, seq: u64) -> Result<(), BookError> {
        self.sent(seq)
    }

    /// Message `seq` failed; try again at `retry_ms`.
    pub fn retry(&self, seq: u64, retry_ms: u64) -> Result<(), BookError> {
        let key = outbox_key(seq);
        if let Some(bytes) = self.tree.get(&key)? {
            let mut message: Outgoing = serde_json::from_slice(&bytes)?;
            message.attempts = message.attempts.saturating_add(1);
            message.next_ms = retry_ms;
            self.tree.insert(key, serde_json::to_vec(&message)?)?;
        }
        Ok(())
    }

    /// The next bot update to ask for (`getUpdates` `offset`).
    pub fn bot_offset(&self) -> Result<i64, BookError> {
        Ok(self
            .tree
            .get(BOT_OFFSET)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(0, i64::from_be_bytes))
    }

    /// Handles bot update `update_id` once: `step` runs (creating orders,
    /// queueing replies) in the same transaction that moves the offset past
    /// it, so after a crash the update is either wholly handled or fetched
    /// again. An update below the offset is skipped (`None`).
    pub fn on_update<T>(&self, update_id: i64, step: impl Fn(&Tx<'_>) -> TxResult<T>) -> Result<Option<T>, BookError> {
        let handled = self.transact(|tx| {
            let offset = tx
                .tree
                .get(BOT_OFFSET)?
                .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
                .map_or(0, i64::from_be_bytes);
            if update_id < offset {
                return Ok(None);
            }
            let out = step(tx)?;
            tx.tree.insert(BOT_OFFSET, &update_id.saturating_add(1).to_be_bytes())?;
            Ok(Some(out))
        })?;
        self.flush()?;
        Ok(handled)
    }

    /// The key download links are signed with, made on first use.
    pub fn link_key(&self) -> Result<[u8; 32], BookError> {
        if let Some(key) = self
            .tree
            .get(LINK_KEY)?
            .and_then(|b| <[u8; 32]>::try_from(b.as_ref()).ok())
        {
            return Ok(key);
        }
        let fresh: [u8; 32] = rand::random();
        // Two first callers race: the one that lands wins, both use it.
        let _ = self.tree.compare_and_swap(LINK_KEY, None::<&[u8]>, Some(&fresh[..]))?;
        self.flush()?;
        let stored = self
            .tree
            .get(LINK_KEY)?
            .and_then(|b| <[u8; 32]>::try_from(b.as_ref()).ok());
        Ok(stored.unwrap_or(fresh))
    }

    /// Writes the book to disk.
    pub fn flush(&self) -> Result<(), BookError> {
        Ok(self.store.flush()?)
    }
}

#[cfg(test)]
#[path = "book_tests.rs"]
mod tests;
