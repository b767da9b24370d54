//! A fake Telegram Bot API for the sales bot: `getUpdates` long polling
//! with Telegram's offset rule (an update stays until a later offset
//! confirms it), and `sendMessage`, which records every message it accepted.
//! `hold_sends` makes `sendMessage` hang unanswered, to kill a node while it
//! waits: a held message never reaches the chat (when released it is
//! answered 502 and not recorded). Scripted replies (429 with
//! `retry_after`, 5xx) go first.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fixture::{Fixture, Received, Reply};

/// Longest a `getUpdates` is held open here, whatever its `timeout`.
const MAX_HOLD: Duration = Duration::from_secs(1);

/// A message the bot sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Chat.
    pub chat_id: i64,
    /// Text.
    pub text: String,
}

#[derive(Default)]
struct State {
    /// Updates not yet confirmed.
    pending: Mutex<Vec<Value>>,
    next_update: AtomicI64,
    sent: Mutex<Vec<Sent>>,
    /// Update ids handed out in a `getUpdates` answer.
    served: Mutex<Vec<i64>>,
    hold_sends: AtomicBool,
    /// How long an answer carrying updates is held back before it is sent.
    updates_delay: Mutex<Duration>,
}

/// The fake Bot API.
pub struct FakeTelegram {
    /// The server.
    pub fixture: Fixture,
    state: Arc<State>,
}

impl FakeTelegram {
    /// Starts it; the bot's token is not checked.
    pub fn start() -> Self {
        let state = Arc::new(State {
            next_update: AtomicI64::new(100),
            ..State::default()
        });
        let serving = state.clone();
        let fixture = Fixture::serve(Arc::new(move |request| answer(request, &serving)));
        Self { fixture, state }
    }

    /// A buyer in `chat_id` writes `text` to the bot.
    pub fn say(&self, chat_id: i64, text: &str) -> i64 {
        let id = self.state.next_update.fetch_add(1, Ordering::SeqCst);
        let update = json!({
            "update_id": id,
            "message": {
                "message_id": id,
                "from": {"id": chat_id, "is_bot": false, "first_name": "Buyer"},
                "chat": {"id": chat_id, "type": "private", "first_name": "Buyer"},
                "date": 1_764_000_000,
                "text": text,
            }
        });
        self.state.pending.lock().expect("pending").push(update);
        id
    }

    /// Messages accepted so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.state.sent.lock().expect("sent").clone()
    }

    /// Messages accepted for `chat_id`.
    pub fn sent_to(&self, chat_id: i64) -> Vec<String> {
        self.sent()
            .into_iter()
            .filter(|s| s.chat_id == chat_id)
            .map(|s| s.text)
            .collect()
    }

    /// Whether update `id` was handed to the bot.
    pub fn served(&self, id: i64) -> bool {
        self.state.served.lock().expect("served").contains(&id)
    }

    /// How many `getUpdates` answers carried update `id`.
    pub fn served_times(&self, id: i64) -> usize {
        self.state
            .served
            .lock()
            .expect("served")
            .iter()
            .filter(|s| **s == id)
            .count()
    }

    /// Holds every answer that carries updates for `delay` after the
    /// updates count as handed out: a node killed meanwhile fetched them
    /// but never handled them.
    pub fn delay_updates(&self, delay: Duration) {
        *self.state.updates_delay.lock().expect("delay") = delay;
    }

    /// While on, `sendMessage` is not answered, and the message is lost.
    pub fn hold_sends(&self, on: bool) {
        self.state.hold_sends.store(on, Ordering::SeqCst);
    }

    /// `sendMessage` requests received, answered or not.
    pub fn send_attempts(&self) -> usize {
        self.fixture
            .received()
            .iter()
            .filter(|r| r.route().ends_with("/sendMessage"))
            .count()
    }
}

fn ok(result: Value) -> Reply {
    Reply::json(200, json!({"ok": true, "result": result}))
}

fn answer(request: &Received, state: &State) -> Reply {
    let method = request.route().rsplit('/').next().unwrap_or("");
    match method {
        "getUpdates" => {
            let offset = request.body["offset"].as_i64().unwrap_or(0);
            let wait = Duration::from_secs(request.body["timeout"].as_u64().unwrap_or(0)).min(MAX_HOLD);
            let deadline = Instant::now() + wait;
            loop {
                let updates: Vec<Value> = {
                    let mut pending = state.pending.lock().expect("pending");
                    pending.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
                    pending.clone()
                };
                if !updates.is_empty() || Instant::now() >= deadline {
                    let ids = updates.iter().filter_map(|u| u["update_id"].as_i64());
                    state.served.lock().expect("served").extend(ids);
                    if !updates.is_empty() {
                        std::thread::sleep(*state.updates_delay.lock().expect("delay"));
                    }
                    return ok(Value::Array(updates));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        "sendMessage" => {
            if state.hold_sends.load(Ordering::SeqCst) {
                while state.hold_sends.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return Reply::json(
                    502,
                    json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
                );
            }
            let chat_id = request.body["chat_id"].as_i64().unwrap_or(0);
            let text = request.body["text"].as_str().unwrap_or("").to_string();
            if text.is_empty() || text.chars().count() > 4096 {
                return Reply::json(
                    400,
                    json!({"ok": false, "error_code": 400, "description": "Bad Request: message text is empty"}),
                );
            }
            let mut sent = state.sent.lock().expect("sent");
            sent.push(Sent {
                chat_id,
                text: text.clone(),
            });
            ok(json!({
                "message_id": sent.len(),
                "from": {"id": 1, "is_bot": true, "first_name": "Shop"},
                "chat": {"id": chat_id, "type": "private"},
                "date": 1_764_000_000,
                "text": text,
            }))
        }
        _ => Reply::json(
            404,
            json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}),
        ),
    }
}
