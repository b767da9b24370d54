//! Telegram: one `sendMessage` per alert in MarkdownV2, through the
//! `frankenstein` Bot API client. A 429 names how long to wait
//! (`parameters.retry_after`); other 4xx answers are permanent.

use frankenstein::client_reqwest::Bot;
use frankenstein::methods::SendMessageParams;
use frankenstein::types::ChatId;
use frankenstein::{AsyncTelegramApi, ParseMode};

use super::markdown::{escape, escape_code};
use super::{shorten, unanswered, DeliveryError, NodeContext};
use crate::alert::{Alert, Severity};
use crate::alerter::config::TelegramChat;

/// Most labels shown in one message.
const MAX_LABELS: usize = 12;

/// Longest message Telegram takes.
const MAX_CHARS: usize = 4_096;

/// The Telegram sink.
#[derive(Clone)]
pub struct Telegram {
    bot: Bot,
    chat: ChatId,
    node: NodeContext,
}

impl Telegram {
    /// A sink sending to `chat` with the bot `token` through the Bot API at `api_url`.
    pub fn new(client: reqwest::Client, api_url: &str, token: &str, chat: &TelegramChat, node: NodeContext) -> Self {
        let bot = Bot::builder()
            .api_url(format!("{}/bot{token}", api_url.trim_end_matches('/')))
            .client(client)
            .build();
        let chat = match chat {
            TelegramChat::Id(id) => ChatId::Integer(*id),
            TelegramChat::Name(name) => ChatId::String(name.clone()),
        };
        Self { bot, chat, node }
    }

    /// Sends `alert` as one message.
    pub async fn send(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let params = SendMessageParams::builder()
            .chat_id(self.chat.clone())
            .text(message(alert, &self.node))
            .parse_mode(ParseMode::MarkdownV2)
            .build();
        match self.bot.send_message(&params).await {
            Ok(_) => Ok(()),
            Err(error) if accepted_anyway(&error) => Ok(()),
            Err(error) => Err(sort(error)),
        }
    }
}

/// Telegram said `"ok": true` but the message it returned did not decode:
/// the message was sent, and sending it again would duplicate it.
pub(crate) fn accepted_anyway(error: &frankenstein::Error) -> bool {
    match error {
        frankenstein::Error::JsonDecode { input, .. } => serde_json::from_str::<serde_json::Value>(input)
            .is_ok_and(|answer| answer["ok"] == serde_json::Value::Bool(true)),
        _ => false,
    }
}

/// Sorts a Bot API failure.
pub(crate) fn sort(error: frankenstein::Error) -> DeliveryError {
    match error {
        frankenstein::Error::Api(answer) => {
            let detail = format!("Telegram {}: {}", answer.error_code, answer.description);
            match answer.error_code {
                429 => DeliveryError::Throttled {
                    retry_after: answer
                        .parameters
                        .and_then(|p| p.retry_after)
                        .map(|s| std::time::Duration::from_secs(u64::from(s))),
                    detail,
                },
                500.. => DeliveryError::Transient(detail),
                _ => DeliveryError::Permanent(detail),
            }
        }
        frankenstein::Error::HttpReqwest(error) => unanswered(&error),
        frankenstein::Error::JsonDecode { input, .. } => {
            DeliveryError::Transient(format!("unreadable answer from Telegram: {}", shorten(&input, 200)))
        }
        other => DeliveryError::Permanent(other.to_string()),
    }
}

/// Marker of each severity (and of a resolve).
fn marker(alert: &Alert) -> &'static str {
    match (alert.is_resolved(), alert.severity) {
        (true, _) => "✅ *RESOLVED*",
        (false, Severity::Critical) => "🔴 *CRITICAL*",
        (false, Severity::Warning) => "🟠 *WARNING*",
        (false, Severity::Info) => "🔵 *INFO*",
    }
}

/// The MarkdownV2 text of `alert`.
pub fn message(alert: &Alert, node: &NodeContext) -> String {
    let mut text = format!(
        "{} {}\n{}\nnode `{}` \\(`{}`\\)",
        marker(alert),
        escape(&shorten(&alert.name, 100)),
        escape(&shorten(&alert.summary, 800)),
        escape_code(&shorten(&node.name, 64)),
        escape_code(&node.peer_id),
    );
    let footer = format!("\n{}", escape(&shorten(&node.dashboard_url, 200)));
    for (key, value) in alert.labels.iter().take(MAX_LABELS) {
        let line = format!(
            "\n`{}={}`",
            escape_code(&shorten(key, 40)),
            escape_code(&shorten(value, 120))
        );
        if text.chars().count() + line.chars().count() + footer.chars().count() > MAX_CHARS {
            break;
        }
        text.push_str(&line);
    }
    text.push_str(&footer);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeContext {
        NodeContext {
            name: "alpha-1".into(),
            peer_id: "12D3KooW".into(),
            dashboard_url: "http://127.0.0.1:8080/".into(),
        }
    }

    #[test]
    fn the_message_escapes_text_and_marks_the_severity() {
        let alert = Alert::new("LINK_LOSS", Severity::Warning, "loss 0.4 on a-b!").label("peer", "a_b");
        let text = message(&alert, &node());
        assert!(
            text.starts_with("🟠 *WARNING* LINK\\_LOSS\nloss 0\\.4 on a\\-b\\!\n"),
            "{text}"
        );
        assert!(text.contains("node `alpha-1` \\(`12D3KooW`\\)"), "{text}");
        assert!(text.contains("\n`peer=a_b`"), "{text}");
        assert!(text.ends_with("http://127\\.0\\.0\\.1:8080/"), "{text}");
        let resolved = message(&alert.resolved(), &node());
        assert!(resolved.starts_with("✅ *RESOLVED* LINK\\_LOSS"), "{resolved}");
        assert!(message(&Alert::new("X", Severity::Critical, ""), &node()).starts_with("🔴 *CRITICAL*"));
        assert!(message(&Alert::new("X", Severity::Info, ""), &node()).starts_with("🔵 *INFO*"));
    }

    #[test]
    fn the_message_fits_telegrams_limit() {
        let mut alert = Alert::new("X", Severity::Info, "-".repeat(10_000));
        for i in 0..100 {
            alert = alert.label(&format!("k{i}"), "v".repeat(500));
        }
        assert!(message(&alert, &node()).chars().count() <= MAX_CHARS);
        let worst = Alert::new("\\".repeat(200), Severity::Info, "\\".repeat(2_000)).label("k", "\\".repeat(500));
        assert!(message(&worst, &node()).chars().count() <= MAX_CHARS);
    }
}
