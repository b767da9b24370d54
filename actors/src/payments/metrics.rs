//! Metric names of the payment checker.

use std::collections::BTreeMap;

use super::order::Status;

/// Orders per status (gauge).
pub const ORDERS: &str = "x0tta_payments_orders";
/// Transfers judged, by chain and result.
pub const CHECKS: &str = "x0tta_payments_checks_total";
/// Chain API calls, by chain.
pub const API_CALLS: &str = "x0tta_payments_api_calls_total";
/// Failed chain API calls, by chain and kind.
pub const API_ERRORS: &str = "x0tta_payments_api_errors_total";
/// Downloads by result (`ok`, `forged`, `expired`, `unpaid`, `missing`).
pub const DOWNLOADS: &str = "x0tta_payments_downloads_total";
/// Messages to buyers by result (`sent`, `retry`, `throttled`, `dropped`).
pub const MESSAGES: &str = "x0tta_payments_messages_total";
/// Messages waiting in the outbox (gauge).
pub const OUTBOX: &str = "x0tta_payments_outbox";
/// Bot updates by result (`handled`, `skipped`, `unreadable`).
pub const BOT_UPDATES: &str = "x0tta_payments_bot_updates_total";

/// Describes every payment metric once.
pub fn describe() {
    metrics::describe_gauge!(ORDERS, "Orders by status");
    metrics::describe_counter!(CHECKS, "Transfers to the shop's wallets judged, by chain and result");
    metrics::describe_counter!(API_CALLS, "Chain API calls, by chain");
    metrics::describe_counter!(API_ERRORS, "Failed chain API calls, by chain and kind");
    metrics::describe_counter!(DOWNLOADS, "Download link requests, by result");
    metrics::describe_counter!(MESSAGES, "Messages to buyers, by result");
    metrics::describe_gauge!(OUTBOX, "Messages to buyers waiting in the outbox");
    metrics::describe_counter!(BOT_UPDATES, "Telegram updates taken by the sales bot, by result");
}

/// Sets the order gauges.
pub fn orders(counts: &BTreeMap<Status, usize>) {
    for (status, count) in counts {
        metrics::gauge!(ORDERS, "status" => status.label()).set(*count as f64);
    }
}

/// Counts a download.
pub fn download(result: &'static str) {
    metrics::counter!(DOWNLOADS, "result" => result).increment(1);
}
