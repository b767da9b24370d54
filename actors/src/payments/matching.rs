//! Whether a transfer pays an order: one pure function over what the chain
//! API said, so every rule (the real token, our wallet, the window, the
//! exact amount) is checked in one place and tested without a network.

use base64::Engine as _;
use serde::Serialize;

use super::money::Currency;
use super::order::{Order, Status};

/// A transfer to our wallet as a chain API reported it, in one shape for
/// both chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Which chain (and token).
    pub currency: Currency,
    /// Transaction id (TRON: 64 hex; TON: the transaction hash).
    pub tx_id: String,
    /// Recipient (TRON base58; TON raw `0:<hex>`, lowercase).
    pub to: String,
    /// Amount in base units.
    pub value: u64,
    /// Block time, Unix ms.
    pub at_ms: u64,
    /// TRC-20: the token contract it moved.
    pub token: Option<String>,
    /// TON: the text comment.
    pub comment: Option<String>,
    /// What the API itself says makes it no payment.
    pub flaw: Option<Flaw>,
}

/// Why the API's own record rules a transfer out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// TRC-20 `type` other than `Transfer` (an `Approval`).
    NotTransfer,
    /// TON: the message bounced.
    Bounced,
    /// TON: the transaction failed or was aborted.
    Failed,
    /// TON: not an internal message with a value from another account.
    NotIncoming,
}

/// What a transfer does to the order it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Pays it.
    Paid,
    /// Names it but carries less (TON).
    Underpaid,
    /// Pays it with more than the tolerance over (TON): a refund is owed.
    Overpaid,
    /// Pays nothing.
    Rejected(Rejection),
}

/// Why a transfer pays nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// Another token than the real USDT contract (whatever its symbol).
    FakeToken,
    /// Not to our wallet.
    WrongRecipient,
    /// An approval, not a transfer.
    NotTransfer,
    /// Bounced back to the sender.
    Bounced,
    /// Failed or aborted on chain.
    Failed,
    /// Not an incoming value transfer.
    NotIncoming,
    /// Names no open order (TRC-20: no order has this exact amount; TON: the
    /// comment is no order id).
    NoOrder,
    /// Made before the order existed or after it expired.
    OutsideWindow,
    /// The order is already settled or expired.
    NotPending,
    /// Another currency than the order's.
    WrongCurrency,
}

impl Verdict {
    /// The `result` label of `x0tta_payments_checks_total`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Paid => "paid",
            Verdict::Underpaid => "underpaid",
            Verdict::Overpaid => "overpaid",
            Verdict::Rejected(why) => why.label(),
        }
    }

    /// The status the order takes, if the transfer settles it.
    pub fn settles(self) -> Option<Status> {
        match self {
            Verdict::Paid => Some(Status::Paid),
            Verdict::Underpaid => Some(Status::Underpaid),
            Verdict::Overpaid => Some(Status::RefundNeeded),
            Verdict::Rejected(_) => None,
        }
    }
}

impl Rejection {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::FakeToken => "fake_token",
            Rejection::WrongRecipient => "wrong_recipient",
            Rejection::NotTransfer => "not_transfer",
            Rejection::Bounced => "bounced",
            Rejection::Failed => "failed",
            Rejection::NotIncoming => "not_incoming",
            Rejection::NoOrder => "no_order",
            Rejection::OutsideWindow => "outside_window",
            Rejection::NotPending => "not_pending",
            Rejection::WrongCurrency => "wrong_currency",
        }
    }
}

/// What a transfer is checked against besides its order.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Our wallet on the transfer's chain (TON in raw form).
    pub wallet: &'a str,
    /// The token contract that pays (TRC-20).
    pub contract: &'a str,
    /// Overpayment kept without a refund, basis points of the price.
    pub tolerance_bps: u32,
}

/// What `transfer` does to `order` (the order it names, if any).
pub fn judge(order: Option<&Order>, transfer: &Transfer, rules: &Rules<'_>) -> Verdict {
    use Rejection::*;
    let reject = Verdict::Rejected;
    match transfer.flaw {
        Some(Flaw::NotTransfer) => return reject(NotTransfer),
        Some(Flaw::Bounced) => return reject(Bounced),
        Some(Flaw::Failed) => return reject(Failed),
        Some(Flaw::NotIncoming) => return reject(NotIncoming),
        None => {}
    }
    if transfer.currency == Currency::UsdtTrc20 && transfer.token.as_deref() != Some(rules.contract) {
        return reject(FakeToken);
    }
    if transfer.to != rules.wallet {
        return reject(WrongRecipient);
    }
    let Some(order) = order else { return reject(NoOrder) };
    if order.currency != transfer.currency {
        return reject(WrongCurrency);
    }
    if order.status != Status::Pending {
        return reject(NotPending);
    }
    if transfer.at_ms < order.created_ms || transfer.at_ms > order.expires_ms {
        return reject(OutsideWindow);
    }
    match order.currency {
        // Matched by its amount: anything else named another order or none.
        Currency::UsdtTrc20 if transfer.value != order.amount => reject(NoOrder),
        Currency::UsdtTrc20 => Verdict::Paid,
        Currency::Ton => {
            let tolerance = u128::from(order.amount) * u128::from(rules.tolerance_bps) / 10_000;
            match u128::from(transfer.value) {
                v if v < u128::from(order.amount) => Verdict::Underpaid,
                v if v > u128::from(order.amount) + tolerance => Verdict::Overpaid,
                _ => Verdict::Paid,
            }
        }
    }
}

/// A TON address in raw form (`<workchain>:<64 hex>`, lowercase), from raw
/// or user-friendly (base64 or base64url, checksum verified) form.
pub fn ton_raw_address(address: &str) -> Result<String, String> {
    let address = address.trim();
    if let Some((workchain, hash)) = address.split_once(':') {
        let workchain: i32 = workchain
            .parse()
            .map_err(|_| format!("{address:?}: bad workchain {workchain:?}"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{address:?}: the account part is not 64 hex digits"));
        }
        return Ok(format!("{workchain}:{}", hash.to_ascii_lowercase()));
    }
    let normalized: String = address
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(normalized)
        .map_err(|_| format!("{address:?} is neither a raw (0:<hex>) nor a user-friendly TON address"))?;
    let [head @ .., crc_hi, crc_lo] = bytes.as_slice() else {
        return Err(format!("{address:?} is too short"));
    };
    if head.len() != 34 {
        return Err(format!("{address:?} has {} bytes, not 36", bytes.len()));
    }
    if crc16_xmodem(head) != u16::from_be_bytes([*crc_hi, *crc_lo]) {
        return Err(format!("{address:?}: checksum mismatch (mistyped?)"));
    }
    let workchain = i8::from_be_bytes([head[1]]);
    let hash: String = head[2..].iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{workchain}:{hash}"))
}

/// CRC-16/XMODEM, the checksum of user-friendly TON addresses.
fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
