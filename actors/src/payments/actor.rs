//! [`PaymentActor`]: polls each chain API while its orders are pending
//! (every `payments.poll_secs`, through a circuit breaker and the API's rate
//! limit, pausing as long as a 429 or a TronGrid suspension asks), expires
//! what was not paid in time, delivers the outbox to buyers, and long-polls
//! Telegram for the sales bot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use frankenstein::client_reqwest::Bot;
use frankenstein::methods::{GetUpdatesParams, SendMessageParams};
use frankenstein::types::{AllowedUpdate, ChatId};
use frankenstein::updates::{Update, UpdateContent};
use frankenstein::AsyncTelegramApi;
use governor::DefaultDirectRateLimiter;

use super::book::Outgoing;
use super::config::{BotConfig, PaymentsConfig};
use super::matching::{Rejection, Verdict};
use super::metrics;
use super::poll::{limiter, ChainApi, PollError, PollReport};
use super::ton::Ton;
use super::trongrid::TronGrid;
use super::Payments;
use crate::alert::{Alert, Severity, SharedAlertSink};
use crate::alerter::sinks::telegram::{accepted_anyway, sort};
use crate::alerter::sinks::DeliveryError;
use crate::breaker::backoff::full_jitter;
use crate::breaker::circuit::BreakerState;
use crate::breaker::{self, CircuitBreaker};
use crate::errors::{report, Reported};
use crate::mesh::unix_ms;

const TICK: Duration = Duration::from_millis(200);
const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// Breaker kind of chain APIs in `x0tta_breaker_state`.
const BREAKER_KIND: &str = "payment_api";
/// Wait after a 429 that named no time.
const THROTTLE_WAIT: Duration = Duration::from_secs(5);
/// Retry delays of messages to buyers.
const RETRY_BASE: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(300);
/// Wait after a failed `getUpdates`.
const BOT_ERROR_WAIT: Duration = Duration::from_secs(5);
/// Longest pause any API may impose on us.
const MAX_PAUSE: Duration = Duration::from_secs(3_600);

/// One chain API and how it may be asked.
struct ChainLane {
    api: ChainApi,
    breaker: CircuitBreaker,
    limiter: Arc<DefaultDirectRateLimiter>,
    busy: bool,
    next_poll: Instant,
    paused_until: Option<Instant>,
    alerted: bool,
}

/// The sales bot's connection to Telegram.
struct BotLane {
    bot: Bot,
    limiter: DefaultDirectRateLimiter,
    long_poll_secs: u32,
    sending: bool,
    polling: bool,
    paused_until: Option<Instant>,
}

/// An update as the bot needs it: a chat and its text, if it is a message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Incoming {
    update_id: i64,
    message: Option<(i64, String)>,
}

/// The payment checker's actor.
pub struct PaymentActor {
    payments: Payments,
    alerts: SharedAlertSink,
    chains: Vec<ChainLane>,
    bot: Option<BotLane>,
    poll_every: Duration,
    last_gauges: Option<Instant>,
}

impl PaymentActor {
    /// The actor over `payments`, raising alerts through `alerts`.
    pub fn new(payments: Payments, alerts: SharedAlertSink) -> Result<Self, String> {
        let config: &PaymentsConfig = payments.shop().config();
        let client = crate::alerter::sinks::client(config.timeout()).map_err(|e| format!("HTTP client: {e}"))?;
        let max = config.max_body_bytes;
        let mut apis = Vec::new();
        if let Some(trc20) = &config.trc20 {
            let api = TronGrid::new(client.clone(), trc20.clone(), max);
            apis.push((ChainApi::Trc20(api, trc20.address.clone()), trc20.rate()));
        }
        if let Some(ton) = &config.ton {
            apis.push((ChainApi::Ton(Ton::new(client, ton.clone(), max)?), ton.rate()));
        }
        let chains = apis
            .into_iter()
            .map(|(api, rate)| ChainLane {
                api,
                breaker: CircuitBreaker::new(config.circuit()),
                limiter: Arc::new(limiter(rate)),
                busy: false,
                next_poll: Instant::now(),
                paused_until: None,
                alerted: false,
            })
            .collect();
        let bot = config.bot.as_ref().map(|bot| bot_lane(bot, config)).transpose()?;
        Ok(Self {
            poll_every: Duration::from_secs(config.poll_secs.max(1)),
            payments,
            alerts,
            chains,
            bot,
            last_gauges: None,
        })
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        for index in 0..self.chains.len() {
            self.poll_chain(index, now, ctx);
        }
        self.send_next(now, ctx);
        self.poll_bot(now, ctx);
        if self.last_gauges.is_none_or(|t| now.duration_since(t) >= GAUGES_EVERY) {
            self.last_gauges = Some(now);
            if let Some(counts) = self
                .payments
                .book()
                .counts()
                .or_report("payments", "book_read", Severity::Warning)
            {
                metrics::orders(&counts);
            }
            ::metrics::gauge!(metrics::OUTBOX).set(self.payments.book().backlog() as f64);
        }
    }

    /// Starts a poll of chain `index` if it is due, has pending orders and
    /// may be asked.
    fn poll_chain(&mut self, index: usize, now: Instant, ctx: &mut Context<Self>) {
        let lane = &mut self.chains[index];
        if lane.busy || now < lane.next_poll || lane.paused_until.is_some_and(|t| now < t) {
            return;
        }
        let currency = lane.api.currency();
        let Some(pending) =
            self.payments
                .book()
                .pending(currency)
                .or_report("payments", "book_read", Severity::Warning)
        else {
            return;
        };
        let Some(since_ms) = pending.iter().map(|o| o.created_ms).min() else {
            return;
        };
        if lane.breaker.allow(now).is_err() {
            return;
        }
        lane.busy = true;
        let (api, limiter, payments) = (lane.api.clone(), lane.limiter.clone(), self.payments.clone());
        let poll = async move { api.poll(payments.book(), payments.shop(), &limiter, since_ms).await };
        ctx.spawn(poll.into_actor(self).map(move |report, actor, ctx| {
            actor.finish_poll(index, report);
            actor.pump(ctx);
        }));
    }

    fn finish_poll(&mut self, index: usize, report: PollReport) {
        let now = Instant::now();
        let Some(lane) = self.chains.get_mut(index) else { return };
        lane.busy = false;
        lane.next_poll = now + self.poll_every;
        let currency = lane.api.currency();
        let chain = currency.chain();
        ::metrics::counter!(metrics::API_CALLS, "chain" => chain).increment(u64::from(report.calls));
        ::metrics::counter!(metrics::CHECKS, "chain" => chain, "result" => "seen").increment(report.seen as u64);
        for (verdict, tx, order) in &report.judged {
            ::metrics::counter!(metrics::CHECKS, "chain" => chain, "result" => verdict.label()).increment(1);
            if let Some(alert) = verdict_alert(*verdict, tx, order.as_ref().map(|o| o.id.as_str()), chain) {
                self.alerts.emit(alert);
            }
        }
        match &report.error {
            Some(PollError::Api(error)) => {
                ::metrics::counter!(metrics::API_ERRORS, "chain" => chain, "kind" => error.kind()).increment(1);
                lane.breaker.on_failure(now);
                if let Some(wait) = error.pause(THROTTLE_WAIT) {
                    lane.paused_until = now.checked_add(wait.min(MAX_PAUSE));
                }
                tracing::warn!(chain, %error, "payment API call failed");
                if lane.breaker.state(now) == BreakerState::Open && !lane.alerted {
                    lane.alerted = true;
                    self.alerts.emit(api_alert(chain, &error.to_string()));
                }
            }
            Some(PollError::Book(error)) => crate::errors::report("payments", "book_write", Severity::Critical, error),
            None => {
                lane.breaker.on_success(now);
                if std::mem::take(&mut lane.alerted) {
                    self.alerts.emit(api_alert(chain, "").resolved());
                }
            }
        }
        breaker::export(BREAKER_KIND, chain, lane.breaker.state(now));
        self.expire(currency);
    }

    /// Expires the orders of `currency` that a completed poll shows unpaid
    /// past their time and grace.
    fn expire(&mut self, currency: super::money::Currency) {
        let book = self.payments.book();
        let Some(Some(cursor)) = book
            .cursor(currency)
            .or_report("payments", "book_read", Severity::Warning)
        else {
            return;
        };
        let grace_ms = self.payments.shop().config().confirm_grace_secs.saturating_mul(1000);
        let shop = self.payments.shop().clone();
        let notice = move |order: &super::order::Order| shop.notice(order);
        let expired = book.expire(currency, cursor.polled_ms, grace_ms, &notice).or_report(
            "payments",
            "book_write",
            Severity::Critical,
        );
        for order in expired.into_iter().flatten() {
            tracing::info!(order = %order.id, currency = currency.label(), "order expired unpaid");
        }
    }

    /// Sends the oldest due message to its buyer.
    fn send_next(&mut self, now: Instant, ctx: &mut Context<Self>) {
        let Some(bot) = &mut self.bot else { return };
        if bot.sending || bot.paused_until.is_some_and(|t| now < t) {
            return;
        }
        let Some((due, _)) =
            self.payments
                .book()
                .due(unix_ms(), 1)
                .or_report("payments", "book_read", Severity::Warning)
        else {
            return;
        };
        let Some(message) = due.into_iter().next() else { return };
        if bot.limiter.check().is_err() {
            return;
        }
        bot.sending = true;
        let params = SendMessageParams::builder()
            .chat_id(ChatId::Integer(message.chat_id))
            .text(message.text.clone())
            .build();
        let telegram = bot.bot.clone();
        let send = async move {
            match telegram.send_message(&params).await {
                Ok(_) => Ok(()),
                Err(error) if accepted_anyway(&error) => Ok(()),
                Err(error) => Err(sort(error)),
            }
        };
        ctx.spawn(send.into_actor(self).map(move |result, actor, ctx| {
            actor.finish_send(&message, result);
            actor.pump(ctx);
        }));
    }

    fn finish_send(&mut self, message: &Outgoing, result: Result<(), DeliveryError>) {
        let Some(bot) = &mut self.bot else { return };
        bot.sending = false;
        let book = self.payments.book();
        let retry_at =
            |wait: Duration| unix_ms().saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX / 2));
        let (label, written) = match &result {
            Ok(()) => ("sent", book.sent(message.seq)),
            Err(DeliveryError::Throttled { retry_after, .. }) => {
                let wait = retry_after.unwrap_or(THROTTLE_WAIT).min(MAX_PAUSE);
                bot.paused_until = Instant::now().checked_add(wait);
                ("throttled", book.retry(message.seq, retry_at(wait)))
            }
            Err(DeliveryError::Transient(_)) => {
                let wait = full_jitter(message.attempts, RETRY_BASE, RETRY_CAP, &mut rand::thread_rng());
                ("retry", book.retry(message.seq, retry_at(wait)))
            }
            Err(DeliveryError::Permanent(why)) => {
                self.alerts.emit(
                    Alert::new(
                        "PAYMENT_BUYER_UNREACHABLE",
                        Severity::Warning,
                        format!(
                            "Telegram refused a message to chat {} about order {}: {why}; tell the buyer another way",
                            message.chat_id,
                            message.order.as_deref().unwrap_or("-")
                        ),
                    )
                    .label("order", message.order.clone().unwrap_or_default()),
                );
                ("dropped", book.drop_message(message.seq))
            }
        };
        written.or_report("payments", "outbox_write", Severity::Critical);
        ::metrics::counter!(metrics::MESSAGES, "result" => label).increment(1);
        if let Err(error) = result {
            tracing::warn!(chat = message.chat_id, %error, "message to a buyer not delivered");
        }
    }

    /// Long-polls Telegram for the bot's updates.
    fn poll_bot(&mut self, now: Instant, ctx: &mut Context<Self>) {
        let Some(bot) = &mut self.bot else { return };
        if bot.polling || bot.paused_until.is_some_and(|t| now < t) {
            return;
        }
        let Some(offset) = self
            .payments
            .book()
            .bot_offset()
            .or_report("payments", "book_read", Severity::Warning)
        else {
            return;
        };
        bot.polling = true;
        let params = GetUpdatesParams::builder()
            .offset(offset)
            .limit(100)
            .timeout(bot.long_poll_secs)
            .allowed_updates(vec![AllowedUpdate::Message])
            .build();
        let telegram = bot.bot.clone();
        let fetch = async move {
            match telegram.get_updates(&params).await {
                Ok(answer) => Ok(answer.result.into_iter().map(incoming).collect()),
                Err(frankenstein::Error::JsonDecode { input, .. }) => {
                    raw_updates(&input).ok_or_else(|| DeliveryError::Transient("unreadable getUpdates answer".into()))
                }
                Err(error) => Err(sort(error)),
            }
        };
        ctx.spawn(fetch.into_actor(self).map(|result, actor, ctx| {
            actor.finish_updates(result);
            actor.pump(ctx);
        }));
    }

    fn finish_updates(&mut self, result: Result<Vec<Incoming>, DeliveryError>) {
        let Some(bot) = &mut self.bot else { return };
        bot.polling = false;
        let updates = match result {
            Ok(updates) => updates,
            Err(error) => {
                let wait = match &error {
                    DeliveryError::Throttled { retry_after, .. } => retry_after.unwrap_or(THROTTLE_WAIT),
                    _ => BOT_ERROR_WAIT,
                };
                bot.paused_until = Instant::now().checked_add(wait.min(MAX_PAUSE));
                tracing::warn!(%error, "getUpdates failed");
                return;
            }
        };
        let (book, shop) = (self.payments.book(), self.payments.shop());
        for update in updates {
            let handled = book.on_update(update.update_id, |tx| match &update.message {
                Some((chat, text)) => {
                    let reply = shop.answer(tx, *chat, text, unix_ms())?;
                    tx.queue(reply).map(|_| "handled")
                }
                None => Ok("skipped"),
            });
            let label = match handled {
                Ok(Some(label)) => label,
                Ok(None) => "repeated",
                Err(error) => {
                    report("payments", "book_write", Severity::Critical, &error);
                    // Fetched again next time; do not hammer a failing store.
                    bot.paused_until = Instant::now().checked_add(BOT_ERROR_WAIT);
                    break;
                }
            };
            ::metrics::counter!(metrics::BOT_UPDATES, "result" => label).increment(1);
        }
    }
}

fn bot_lane(bot: &BotConfig, config: &PaymentsConfig) -> Result<BotLane, String> {
    // The client waits out the long poll, then the usual timeout.
    let timeout = Duration::from_secs(u64::from(bot.long_poll_secs)) + config.timeout();
    let client = crate::alerter::sinks::client(timeout).map_err(|e| format!("HTTP client: {e}"))?;
    let telegram = Bot::builder()
        .api_url(format!("{}/bot{}", bot.api_url.trim_end_matches('/'), bot.token))
        .client(client)
        .build();
    Ok(BotLane {
        bot: telegram,
        limiter: limiter(bot.messages_per_sec),
        long_poll_secs: bot.long_poll_secs,
        sending: false,
        polling: false,
        paused_until: None,
    })
}

fn incoming(update: Update) -> Incoming {
    let message = match update.content {
        UpdateContent::Message(message) => message.text.clone().map(|text| (message.chat.id, text)),
        _ => None,
    };
    Incoming {
        update_id: i64::from(update.update_id),
        message,
    }
}

/// The updates of a `getUpdates` answer frankenstein could not decode
/// whole (one odd update must not stop the bot): each update's id, and its
/// chat and text when it has them.
fn raw_updates(input: &str) -> Option<Vec<Incoming>> {
    let answer: serde_json::Value = serde_json::from_str(input).ok()?;
    if answer.get("ok")? != &serde_json::Value::Bool(true) {
        return None;
    }
    let updates = answer.get("result")?.as_array()?;
    let mut out = Vec::new();
    for update in updates {
        let update_id = update.get("update_id")?.as_i64()?;
        let message = update.get("message");
        let chat = message
            .and_then(|m| m.pointer("/chat/id"))
            .and_then(serde_json::Value::as_i64);
        let text = message.and_then(|m| m.get("text")).and_then(serde_json::Value::as_str);
        out.push(Incoming {
            update_id,
            message: chat.zip(text.map(str::to_string)),
        });
    }
    Some(out)
}

/// The alert a judged transfer raises: money that arrived and paid nothing
/// (or paid wrongly) needs a person.
fn verdict_alert(verdict: Verdict, tx: &str, order: Option<&str>, chain: &str) -> Option<Alert> {
    let (name, summary) = match verdict {
        Verdict::Underpaid => ("PAYMENT_UNDERPAID", "order underpaid: refund or complete by hand"),
        Verdict::Overpaid => (
            "PAYMENT_OVERPAID",
            "order overpaid beyond the tolerance: a refund is owed",
        ),
        Verdict::Rejected(Rejection::NoOrder | Rejection::OutsideWindow | Rejection::NotPending) => (
            "PAYMENT_UNMATCHED",
            "a transfer to the shop's wallet matched no open order: look for its buyer",
        ),
        _ => return None,
    };
    Some(
        Alert::new(name, Severity::Warning, format!("{summary} (tx {tx})"))
            .label("chain", chain)
            .label("tx", tx)
            .label("order", order.unwrap_or("-"))
            .label("verdict", verdict.label()),
    )
}

fn api_alert(chain: &str, error: &str) -> Alert {
    Alert::new(
        "PAYMENT_API_FAILING",
        Severity::Warning,
        format!("the {chain} API keeps failing ({error}); payments are not being checked"),
    )
    .label("chain", chain)
}

impl Actor for PaymentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TICK, Self::pump);
        for lane in &self.chains {
            tracing::info!(
                chain = lane.api.currency().chain(),
                wallet = lane.api.wallet(),
                "payment checker on"
            );
        }
        if self.bot.is_some() {
            tracing::info!("Telegram sales bot on");
        }
    }
}

impl actix::Supervised for PaymentActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        for lane in &mut self.chains {
            lane.busy = false;
        }
        if let Some(bot) = &mut self.bot {
            bot.sending = false;
            bot.polling = false;
        }
    }
}

crate::supervised_actor!(PaymentActor);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_updates_do_not_stop_the_bot() {
        let raw = r#"{"ok":true,"result":[
            {"update_id":5,"message":{"chat":{"id":42},"text":"/buy node"}},
            {"update_id":6,"strange_new_kind":{"x":1}}
        ]}"#;
        let updates = raw_updates(raw).expect("updates");
        assert_eq!(
            updates,
            [
                Incoming {
                    update_id: 5,
                    message: Some((42, "/buy node".into()))
                },
                Incoming {
                    update_id: 6,
                    message: None
                }
            ]
        );
        assert!(raw_updates(r#"{"ok":false}"#).is_none());
        assert!(raw_updates("<html>").is_none());
    }
}
