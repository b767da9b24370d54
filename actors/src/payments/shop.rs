//! The shop: what the sales bot answers, what buyers are told when their
//! order is settled or expires, and the orders and download links it makes.
//! Messages are plain text (no parse mode), so nothing a buyer or a product
//! name contains can break them.

use std::sync::Arc;

use super::book::{NewOrder, Outgoing, Tx, TxResult};
use super::config::{PaymentsConfig, Product};
use super::link::{Grant, Links};
use super::money::{format_amount, Currency};
use super::order::{Order, Status};
use crate::alerter::sinks::rfc3339;

/// Why an order cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShopError {
    /// No such product.
    #[error("no product {0:?}; on sale: {1}")]
    NoProduct(String, String),
    /// Not sold for that currency (or no wallet for it).
    #[error("{0} is not sold for {1}")]
    NotSoldFor(String, &'static str),
}

/// Products, prices, wallets and links.
#[derive(Clone)]
pub struct Shop {
    config: Arc<PaymentsConfig>,
    links: Links,
    public_url: String,
}

impl Shop {
    /// The shop of `config`, signing links with `links`, under `public_url`.
    pub fn new(config: Arc<PaymentsConfig>, links: Links, public_url: &str) -> Self {
        Self {
            config,
            links,
            public_url: public_url.trim_end_matches('/').to_string(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PaymentsConfig {
        &self.config
    }

    /// The link signer.
    pub fn links(&self) -> &Links {
        &self.links
    }

    fn catalogue(&self) -> String {
        let names: Vec<&str> = self.config.products.iter().map(|p| p.id.as_str()).collect();
        names.join(", ")
    }

    /// The order `/buy <product> [currency]` asks for: `currency` or the
    /// first one the product is sold for.
    pub fn new_order(
        &self,
        product: &str,
        currency: Option<Currency>,
        chat_id: Option<i64>,
    ) -> Result<NewOrder, ShopError> {
        let found = self
            .config
            .product(product)
            .ok_or_else(|| ShopError::NoProduct(product.to_string(), self.catalogue()))?;
        let sold_for = |c: Currency| self.config.accepts(c) && found.price(c).is_some();
        let currency = match currency {
            Some(c) if sold_for(c) => c,
            Some(c) => return Err(ShopError::NotSoldFor(found.id.clone(), c.symbol())),
            None => Currency::ALL
                .into_iter()
                .find(|c| sold_for(*c))
                .ok_or_else(|| ShopError::NotSoldFor(found.id.clone(), "any currency"))?,
        };
        let (pay_to, amount_step, max_open) = match currency {
            Currency::UsdtTrc20 => {
                let trc20 = self
                    .config
                    .trc20
                    .as_ref()
                    .map(|t| (t.address.clone(), t.amount_step, t.max_open_per_price));
                trc20.unwrap_or_default()
            }
            Currency::Ton => (
                self.config.ton.as_ref().map(|t| t.address.clone()).unwrap_or_default(),
                1,
                1,
            ),
        };
        Ok(NewOrder {
            product: found.id.clone(),
            currency,
            price: found.price(currency).unwrap_or_default(),
            pay_to,
            chat_id,
            ttl_ms: self.config.order_ttl_secs.saturating_mul(1000),
            grace_ms: self.config.confirm_grace_secs.saturating_mul(1000),
            amount_step,
            max_open,
        })
    }

    /// The download link of a paid order, valid `link_ttl_secs` from payment.
    pub fn link(&self, order: &Order) -> String {
        let grant = Grant {
            order: order.id.clone(),
            product: order.product.clone(),
            expires_ms: order
                .settled_ms
                .unwrap_or(order.created_ms)
                .saturating_add(self.config.link_ttl_secs.saturating_mul(1000)),
        };
        format!("{}/download/{}", self.public_url, self.links.sign(&grant))
    }

    /// The product of a download grant.
    pub fn product(&self, id: &str) -> Option<&Product> {
        self.config.product(id)
    }

    /// How to pay `order`.
    pub fn instructions(&self, order: &Order) -> String {
        let name = self
            .config
            .product(&order.product)
            .map_or(order.product.as_str(), |p| &p.name);
        let amount = format!("{} {}", order.amount_text(), order.currency.symbol());
        let how = match order.currency {
            Currency::UsdtTrc20 => format!(
                "Send exactly {amount} (TRC-20, the USDT contract {}) to\n{}\nThe amount is unique to this order: send it to the last digit.",
                self.config.trc20.as_ref().map_or("", |t| t.contract.as_str()),
                order.pay_to
            ),
            Currency::Ton => format!(
                "Send exactly {amount} to\n{}\nwith the comment (memo)\n{}\nA transfer without this comment cannot be matched.",
                order.pay_to, order.id
            ),
        };
        format!(
            "Order {}: {name}.\n{how}\nPay before {} (UTC). You get the download link here as soon as the payment is confirmed. /status {} shows where it stands.",
            order.id,
            rfc3339(order.expires_ms),
            order.id
        )
    }

    /// What the buyer is told when `order` is settled or expires (nothing
    /// without a bot to tell them, or a chat to tell).
    pub fn notice(&self, order: &Order) -> Option<Outgoing> {
        self.config.bot.as_ref()?;
        let chat = order.chat_id?;
        let received = order
            .received
            .map(|r| {
                format!(
                    "{} {}",
                    format_amount(r, order.currency.decimals()),
                    order.currency.symbol()
                )
            })
            .unwrap_or_default();
        let text = match order.status {
            Status::Paid => format!(
                "Payment for order {} received. Your download link (valid for {} h):\n{}",
                order.id,
                self.config.link_ttl_secs / 3600,
                self.link(order)
            ),
            Status::RefundNeeded => format!(
                "Payment for order {} received: {received}, more than the {} {} due. Your download link:\n{}\nThe difference will be refunded; reply with /status {} to see the order.",
                order.id,
                order.amount_text(),
                order.currency.symbol(),
                self.link(order),
                order.id
            ),
            Status::Underpaid => format!(
                "Order {} received {received}, less than the {} {} due, so it is not paid. Contact the seller with the order id for a refund.",
                order.id,
                order.amount_text(),
                order.currency.symbol()
            ),
            Status::Expired => format!("Order {} expired unpaid. /buy again to get a new one.", order.id),
            Status::Pending => return None,
        };
        Some(Outgoing::new(chat, text, Some(&order.id)))
    }

    /// The bot's answer to `text` from `chat` (orders made through `tx`).
    pub fn answer(&self, tx: &Tx<'_>, chat: i64, text: &str, now_ms: u64) -> TxResult<Outgoing> {
        let mut words = text.split_whitespace();
        let command = words.next().unwrap_or("");
        // In groups commands come as /buy@ShopBot.
        let command = command.split('@').next().unwrap_or(command).to_ascii_lowercase();
        let reply = |text: String, order: Option<&str>| Ok(Outgoing::new(chat, text, order));
        match command.as_str() {
            "/start" | "/help" => reply(self.help(), None),
            "/buy" => {
                let Some(product) = words.next() else {
                    return reply(
                        format!(
                            "Which product? /buy <product> [usdt|ton]. On sale: {}",
                            self.catalogue()
                        ),
                        None,
                    );
                };
                let currency = match words.next() {
                    None => None,
                    Some(word) => match Currency::parse(word) {
                        Some(c) => Some(c),
                        None => return reply(format!("{word:?} is not a currency: usdt or ton."), None),
                    },
                };
                match self.new_order(product, currency, Some(chat)) {
                    Ok(new) => match tx.create(&new, now_ms) {
                        Ok(order) => reply(self.instructions(&order), Some(&order.id)),
                        Err(sled::transaction::ConflictableTransactionError::Abort(e)) => {
                            reply(format!("Cannot make the order now: {e}"), None)
                        }
                        Err(other) => Err(other),
                    },
                    Err(e) => reply(format!("{e}."), None),
                }
            }
            "/status" => {
                let Some(id) = words.next() else {
                    return reply("Which order? /status <order id>".into(), None);
                };
                match tx.order(&super::book::order_id_of(id))? {
                    Some(order) if order.chat_id == Some(chat) => reply(self.status(&order), Some(&order.id)),
                    _ => reply(format!("No order {id} of yours."), None),
                }
            }
            _ => reply(
                format!("I do not know {:?}.\n{}", shorten_word(text), self.help()),
                None,
            ),
        }
    }

    fn status(&self, order: &Order) -> String {
        match order.status {
            Status::Pending => format!(
                "Order {} waits for {} {} until {} (UTC).",
                order.id,
                order.amount_text(),
                order.currency.symbol(),
                rfc3339(order.expires_ms)
            ),
            Status::Paid | Status::RefundNeeded => {
                format!("Order {} is paid. Download: {}", order.id, self.link(order))
            }
            Status::Underpaid => format!("Order {} was underpaid; contact the seller.", order.id),
            Status::Expired => format!("Order {} expired unpaid.", order.id),
        }
    }

    fn help(&self) -> String {
        let mut text =
            String::from("Buy with USDT (TRC-20) or TON:\n/buy <product> [usdt|ton]\n/status <order>\n/help\nOn sale:");
        for product in &self.config.products {
            let prices: Vec<String> = Currency::ALL
                .into_iter()
                .filter(|c| self.config.accepts(*c))
                .filter_map(|c| {
                    product
                        .price(c)
                        .map(|p| format!("{} {}", format_amount(p, c.decimals()), c.symbol()))
                })
                .collect();
            text.push_str(&format!(
                "\n{} — {} ({})",
                product.id,
                product.name,
                prices.join(" or ")
            ));
        }
        text
    }
}

/// The first 40 characters of what a buyer typed.
fn shorten_word(text: &str) -> String {
    crate::alerter::sinks::shorten(text.trim(), 40)
}
