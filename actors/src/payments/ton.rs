//! TON: incoming transactions of our wallet from toncenter v3 or tonapi v2,
//! oldest first from a logical time, in one shape ([`Transfer`]).

use base64::Engine as _;
use serde::Deserialize;

use super::config::{TonConfig, TonIndexer};
use super::http::{get_json, units, url, ApiError, Next, Page};
use super::matching::{ton_raw_address, Flaw, Transfer};
use super::money::Currency;

/// Most pages of the newest-first scan tonapi needs before the first cursor.
const MAX_SCAN_PAGES: usize = 20;

#[derive(Deserialize)]
struct CenterAnswer {
    transactions: Vec<CenterTx>,
}

#[derive(Deserialize)]
struct CenterTx {
    hash: String,
    lt: String,
    now: u64,
    in_msg: Option<CenterMsg>,
    description: Option<CenterDescription>,
}

#[derive(Deserialize)]
struct CenterMsg {
    source: Option<String>,
    destination: Option<String>,
    value: Option<String>,
    #[serde(default)]
    bounced: bool,
    message_content: Option<CenterContent>,
}

#[derive(Deserialize)]
struct CenterContent {
    decoded: Option<CenterDecoded>,
}

#[derive(Deserialize)]
struct CenterDecoded {
    #[serde(rename = "type")]
    kind: String,
    comment: Option<String>,
}

#[derive(Deserialize)]
struct CenterDescription {
    #[serde(default)]
    aborted: bool,
    compute_ph: Option<CenterCompute>,
}

#[derive(Deserialize)]
struct CenterCompute {
    success: Option<bool>,
}

#[derive(Deserialize)]
struct ApiAnswer {
    transactions: Vec<ApiTx>,
}

#[derive(Deserialize)]
struct ApiTx {
    hash: String,
    lt: u64,
    utime: u64,
    success: bool,
    #[serde(default)]
    aborted: bool,
    in_msg: Option<ApiMsg>,
}

#[derive(Deserialize)]
struct ApiMsg {
    msg_type: String,
    value: u64,
    source: Option<ApiAccount>,
    destination: Option<ApiAccount>,
    #[serde(default)]
    bounced: bool,
    decoded_op_name: Option<String>,
    decoded_body: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ApiAccount {
    address: String,
}

/// The TON indexer client of one wallet.
#[derive(Clone)]
pub struct Ton {
    client: reqwest::Client,
    config: TonConfig,
    wallet: String,
    max_bytes: usize,
}

impl Ton {
    /// A client for the wallet in `config`.
    pub fn new(client: reqwest::Client, config: TonConfig, max_bytes: usize) -> Result<Self, String> {
        let wallet = ton_raw_address(&config.address)?;
        Ok(Self {
            client,
            config,
            wallet,
            max_bytes,
        })
    }

    /// Our wallet, raw form.
    pub fn wallet(&self) -> &str {
        &self.wallet
    }

    /// Transactions after logical time `after_lt` (from time `since_ms`
    /// when there is no cursor yet), oldest first.
    pub async fn page(&self, after_lt: Option<u64>, since_ms: u64) -> Result<Page, ApiError> {
        match self.config.indexer {
            TonIndexer::Toncenter => self.toncenter(after_lt, since_ms).await,
            TonIndexer::Tonapi => match after_lt {
                Some(lt) => self.tonapi_after(lt).await,
                None => self.tonapi_scan(since_ms).await,
            },
        }
    }

    fn limit(&self) -> usize {
        self.config.page_limit as usize
    }

    fn base(&self) -> &str {
        self.config.base_url().trim_end_matches('/')
    }

    async fn toncenter(&self, after_lt: Option<u64>, since_ms: u64) -> Result<Page, ApiError> {
        let mut query = vec![
            ("account", self.config.address.clone()),
            ("sort", "asc".into()),
            ("limit", self.limit().to_string()),
            ("offset", "0".into()),
            ("start_utime", (since_ms / 1000).to_string()),
        ];
        if let Some(lt) = after_lt {
            query.push(("start_lt", lt.saturating_add(1).to_string()));
        }
        let base = format!("{}/api/v3/transactions", self.base());
        let mut request = self.client.get(url(&base, &query)?);
        if let Some(key) = &self.config.api_key {
            request = request.header("X-API-Key", key);
        }
        let answer: CenterAnswer = get_json(request, self.max_bytes).await?;
        let full = answer.transactions.len() >= self.limit();
        let transfers = answer
            .transactions
            .into_iter()
            .map(center_transfer)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            next: full.then(|| transfers.last().map(|t| Next::After(t.0))).flatten(),
            transfers,
        })
    }

    fn tonapi_request(&self, query: &[(&str, String)]) -> Result<reqwest::RequestBuilder, ApiError> {
        let base = format!(
            "{}/v2/blockchain/accounts/{}/transactions",
            self.base(),
            self.config.address
        );
        let request = self.client.get(url(&base, query)?);
        Ok(match &self.config.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        })
    }

    async fn tonapi_after(&self, lt: u64) -> Result<Page, ApiError> {
        let query = [
            ("after_lt", lt.to_string()),
            ("sort_order", "asc".into()),
            ("limit", self.limit().to_string()),
        ];
        let answer: ApiAnswer = get_json(self.tonapi_request(&query)?, self.max_bytes).await?;
        let full = answer.transactions.len() >= self.limit();
        let transfers = answer
            .transactions
            .into_iter()
            .map(tonapi_transfer)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            next: full.then(|| transfers.last().map(|t| Next::After(t.0))).flatten(),
            transfers,
        })
    }

    /// No cursor yet and tonapi filters by logical time only: read newest
    /// first back to `since_ms`, once.
    async fn tonapi_scan(&self, since_ms: u64) -> Result<Page, ApiError> {
        let mut transfers = Vec::new();
        let mut before: Option<u64> = None;
        for _ in 0..MAX_SCAN_PAGES {
            let mut query = vec![("sort_order", "desc".to_string()), ("limit", self.limit().to_string())];
            if let Some(lt) = before {
                query.push(("before_lt", lt.to_string()));
            }
            let answer: ApiAnswer = get_json(self.tonapi_request(&query)?, self.max_bytes).await?;
            let count = answer.transactions.len();
            let mut older = false;
            for tx in answer.transactions {
                let (lt, transfer) = tonapi_transfer(tx)?;
                before = Some(before.map_or(lt, |b| b.min(lt)));
                if transfer.at_ms < since_ms {
                    older = true;
                    continue;
                }
                transfers.push((lt, transfer));
            }
            if older || count < self.limit() {
                break;
            }
        }
        transfers.sort_by_key(|t| t.0);
        Ok(Page { transfers, next: None })
    }
}

fn center_transfer(tx: CenterTx) -> Result<(u64, Transfer), ApiError> {
    let lt = units(&tx.lt)?;
    let failed = tx
        .description
        .as_ref()
        .is_some_and(|d| d.aborted || d.compute_ph.as_ref().and_then(|c| c.success) == Some(false));
    let msg = tx.in_msg;
    let value = match msg.as_ref().and_then(|m| m.value.as_deref()) {
        Some(value) => units(value)?,
        None => 0,
    };
    let flaw = match &msg {
        None => Some(Flaw::NotIncoming),
        Some(m) if m.source.is_none() => Some(Flaw::NotIncoming),
        Some(m) if m.bounced => Some(Flaw::Bounced),
        _ if failed => Some(Flaw::Failed),
        _ => None,
    };
    let comment = msg
        .as_ref()
        .and_then(|m| m.message_content.as_ref())
        .and_then(|c| c.decoded.as_ref())
        .filter(|d| d.kind == "text_comment")
        .and_then(|d| d.comment.clone());
    let to = msg.and_then(|m| m.destination).unwrap_or_default();
    Ok((
        lt,
        Transfer {
            currency: Currency::Ton,
            tx_id: hash_hex(&tx.hash),
            to: ton_raw_address(&to).unwrap_or(to),
            value,
            at_ms: tx.now.saturating_mul(1000),
            token: None,
            comment,
            flaw,
        },
    ))
}

fn tonapi_transfer(tx: ApiTx) -> Result<(u64, Transfer), ApiError> {
    let msg = tx.in_msg;
    let flaw = match &msg {
        _ if !tx.success || tx.aborted => Some(Flaw::Failed),
        None => Some(Flaw::NotIncoming),
        Some(m) if m.msg_type != "int_msg" || m.source.is_none() => Some(Flaw::NotIncoming),
        Some(m) if m.bounced => Some(Flaw::Bounced),
        _ => None,
    };
    let comment = msg
        .as_ref()
        .filter(|m| m.decoded_op_name.as_deref() == Some("text_comment"))
        .and_then(|m| m.decoded_body.as_ref())
        .and_then(|body| body.get("text"))
        .and_then(|text| text.as_str())
        .map(str::to_string);
    let value = msg.as_ref().map_or(0, |m| m.value);
    let to = msg.and_then(|m| m.destination).map(|d| d.address).unwrap_or_default();
    Ok((
        tx.lt,
        Transfer {
            currency: Currency::Ton,
            tx_id: hash_hex(&tx.hash),
            to: ton_raw_address(&to).unwrap_or(to),
            value,
            at_ms: tx.utime.saturating_mul(1000),
            token: None,
            comment,
            flaw,
        },
    ))
}

/// A transaction hash as lowercase hex: tonapi gives hex, toncenter base64;
/// one form, so a transaction is the same id whichever indexer reported it.
fn hash_hex(hash: &str) -> String {
    let is_hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex {
        return hash.to_ascii_lowercase();
    }
    let standard = hash.replace('-', "+").replace('_', "/");
    match base64::engine::general_purpose::STANDARD.decode(standard) {
        Ok(bytes) if bytes.len() == 32 => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        _ => hash.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_one_form_whichever_indexer_gave_them() {
        let hex = "5f".repeat(32);
        let b64 = base64::engine::general_purpose::STANDARD.encode([0x5f; 32]);
        assert_eq!(hash_hex(&hex), hex);
        assert_eq!(hash_hex(&b64), hex);
        assert_eq!(hash_hex(&hex.to_ascii_uppercase()), hex);
        assert_eq!(hash_hex("not-a-hash"), "not-a-hash");
    }
}
