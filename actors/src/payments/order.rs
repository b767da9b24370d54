//! An order and where it stands.

use serde::{Deserialize, Serialize};

use super::money::{format_amount, Currency};

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its transfer.
    Pending,
    /// Paid by a matching transfer; the buyer gets the download link.
    Paid,
    /// A transfer named it but carried less than the price (TON).
    Underpaid,
    /// Not paid in time.
    Expired,
    /// Paid more than the price plus the tolerance: delivered, and the
    /// difference is owed back (TON).
    RefundNeeded,
}

impl Status {
    /// Every status, for gauges.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Paid,
        Status::Underpaid,
        Status::Expired,
        Status::RefundNeeded,
    ];

    /// The label metrics and the API use.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Paid => "paid",
            Status::Underpaid => "underpaid",
            Status::Expired => "expired",
            Status::RefundNeeded => "refund_needed",
        }
    }

    /// Whether the buyer has paid for the download.
    pub fn grants_download(self) -> bool {
        matches!(self, Status::Paid | Status::RefundNeeded)
    }
}

/// Orders per status, every status present (zeros included).
pub fn tally(orders: &[Order]) -> std::collections::BTreeMap<Status, usize> {
    let mut counts: std::collections::BTreeMap<Status, usize> = Status::ALL.iter().map(|s| (*s, 0)).collect();
    for order in orders {
        *counts.entry(order.status).or_default() += 1;
    }
    counts
}

/// One order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Short id the buyer quotes (and puts in the TON comment).
    pub id: String,
    /// Product id.
    pub product: String,
    /// What it is paid in.
    pub currency: Currency,
    /// The exact amount due, in base units (for TRC-20 unique on the wallet
    /// while the order is open).
    pub amount: u64,
    /// The wallet to pay to.
    pub pay_to: String,
    /// Created, Unix ms.
    pub created_ms: u64,
    /// Payable until, Unix ms.
    pub expires_ms: u64,
    /// Where it stands.
    pub status: Status,
    /// The transaction that settled it.
    pub tx_id: Option<String>,
    /// What that transaction carried, in base units.
    pub received: Option<u64>,
    /// When it was settled, Unix ms.
    pub settled_ms: Option<u64>,
    /// The buyer's Telegram chat, when bought through the bot.
    pub chat_id: Option<i64>,
}

impl Order {
    /// The amount due as a decimal string.
    pub fn amount_text(&self) -> String {
        format_amount(self.amount, self.currency.decimals())
    }
}
