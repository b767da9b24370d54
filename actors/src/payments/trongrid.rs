//! TronGrid: TRC-20 transfers to our wallet, confirmed only, of the USDT
//! contract, oldest first from a block time, page by page with the
//! `fingerprint` cursor.

use std::time::Duration;

use serde::Deserialize;

use super::config::Trc20Config;
use super::http::{get_json, units, url, ApiError, Next, Page};
use super::matching::{Flaw, Transfer};
use super::money::Currency;

/// How long TronGrid suspends a client over its frequency limit when the
/// answer does not say.
const DEFAULT_BLOCK: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    data: Vec<Item>,
    success: Option<bool>,
    error: Option<String>,
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct Meta {
    fingerprint: Option<String>,
}

#[derive(Deserialize)]
struct Item {
    transaction_id: String,
    token_info: TokenInfo,
    block_timestamp: u64,
    to: String,
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Deserialize)]
struct TokenInfo {
    address: String,
}

/// The TronGrid client of one wallet.
#[derive(Clone)]
pub struct TronGrid {
    client: reqwest::Client,
    config: Trc20Config,
    max_bytes: usize,
}

impl TronGrid {
    /// A client for the wallet in `config`.
    pub fn new(client: reqwest::Client, config: Trc20Config, max_bytes: usize) -> Self {
        Self {
            client,
            config,
            max_bytes,
        }
    }

    /// The transfers from block time `from_ms` on (or the page after
    /// `fingerprint`).
    pub async fn page(&self, from_ms: u64, fingerprint: Option<&str>) -> Result<Page, ApiError> {
        let base = format!(
            "{}/v1/accounts/{}/transactions/trc20",
            self.config.api_url.trim_end_matches('/'),
            self.config.address
        );
        let limit = self.config.page_limit.to_string();
        let from = from_ms.to_string();
        let mut query = vec![
            ("only_confirmed", "true"),
            ("only_to", "true"),
            ("contract_address", self.config.contract.as_str()),
            ("order_by", "block_timestamp,asc"),
            ("min_timestamp", from.as_str()),
            ("limit", limit.as_str()),
        ];
        if let Some(fingerprint) = fingerprint {
            query.push(("fingerprint", fingerprint));
        }
        let mut request = self.client.get(url(&base, &query)?);
        if let Some(key) = &self.config.api_key {
            request = request.header("TRON-PRO-API-KEY", key);
        }
        let answer: Answer = get_json(request, self.max_bytes).await.map_err(blocked)?;
        if answer.success == Some(false) {
            return Err(ApiError::Malformed(format!(
                "success: false: {}",
                answer.error.unwrap_or_default()
            )));
        }
        let transfers = answer
            .data
            .into_iter()
            .map(|item| Ok((item.block_timestamp, transfer(item)?)))
            .collect::<Result<_, ApiError>>()?;
        Ok(Page {
            transfers,
            next: answer
                .meta
                .and_then(|m| m.fingerprint)
                .filter(|f| !f.is_empty())
                .map(Next::Fingerprint),
        })
    }
}

fn transfer(item: Item) -> Result<Transfer, ApiError> {
    Ok(Transfer {
        currency: Currency::UsdtTrc20,
        value: units(&item.value)?,
        tx_id: item.transaction_id,
        to: item.to,
        at_ms: item.block_timestamp,
        token: Some(item.token_info.address),
        comment: None,
        flaw: (item.kind != "Transfer").then_some(Flaw::NotTransfer),
    })
}

/// TronGrid's 403 is its frequency limit: "… the query server is suspended
/// for 30s". Read it as a pause of that long.
fn blocked(error: ApiError) -> ApiError {
    match error {
        ApiError::Forbidden(detail) => {
            let wait = detail
                .split("suspended for ")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
                .map_or(DEFAULT_BLOCK, Duration::from_secs);
            ApiError::Blocked { wait, detail }
        }
        other => other,
    }
}
