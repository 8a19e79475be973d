//! A fake Telegram Bot API on 127.0.0.1 with a random port, for several bot tokens. It serves
//! `getMe`, `getUpdates` (long poll, offsets), `sendMessage`, `sendPhoto`, `sendDocument`, `editMessageText`,
//! `answerCallbackQuery`, `setMyCommands`, `setWebhook`, `deleteWebhook`, records what the bots
//! send, and lets its user (a test, a `pasar loadtest` scenario) inject updates, redeliveries,
//! flood-control errors and blocked users. Everything it holds is behind one lock: it is built to
//! see exactly what happened, not to be fast (the `rush` scenario has a fake of its own for that).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A message a bot sent.
#[derive(Debug, Clone)]
pub struct SentMessage {
    /// The message's id in the chat (an edit keeps the id of the message it changed).
    pub id: i64,
    /// For an `editMessageText`: the message it changed.
    pub edit_of: Option<i64>,
    pub chat: i64,
    pub text: String,
    pub markup: Value,
    pub at: Instant,
    /// The picture uploaded with a `sendPhoto` (multipart), if any.
    pub photo: Option<Vec<u8>>,
    /// The file uploaded with a `sendDocument` (multipart), if any: its name and bytes.
    pub document: Option<(String, Vec<u8>)>,
    /// The picture a `sendPhoto` named instead (a file id or URL), if any.
    pub photo_ref: Option<String>,
}

impl SentMessage {
    /// The callback data of the inline button whose label contains `label`.
    pub fn button(&self, label: &str) -> Option<String> {
        self.markup["inline_keyboard"]
            .as_array()?
            .iter()
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .find(|b| b["text"].as_str().is_some_and(|t| t.contains(label)))
            .and_then(|b| b["callback_data"].as_str().map(String::from))
    }
}

#[derive(Default)]
struct BotState {
    updates: Vec<Value>,
    next_update: u32,
    sent: Vec<SentMessage>,
    next_message: i64,
    callbacks_answered: usize,
    /// The ids of the callback queries answered (once each however often answered).
    callback_ids_answered: std::collections::BTreeSet<String>,
    /// Answer this many sends with 429 retry_after.
    flood: u32,
    flood_seconds: u32,
    blocked: Vec<i64>,
    /// The next getUpdates ignores the offset once (a lost acknowledgement).
    replay: bool,
    /// Every update comes this many times more after it was acknowledged: newest first, after
    /// the new updates of a later batch (out of order); without new ones only once `flush`, and
    /// then one a batch, the oldest first.
    redeliver: u32,
    /// How many times each update (by id) came again so far.
    redelivered: HashMap<i64, u32>,
    /// Owed redeliveries may come in a batch of their own.
    flush: bool,
    /// How many times each update (by id) was in a `getUpdates` answer.
    deliveries: HashMap<i64, u32>,
    /// `getUpdates` requests (a long poll counts once).
    polls: usize,
    /// Refuse every `sendPhoto` that names a file id or URL (a file id gone stale).
    refuse_photo_refs: bool,
    get_updates_calls: usize,
    /// The highest `offset` a `getUpdates` asked with: every update below it is acknowledged.
    acknowledged: i64,
    /// Language codes ("" for the default) of the command menus set for every chat.
    command_menus: Vec<String>,
    /// The commands of the menus set for one chat (`scope` chat), latest last.
    chat_menus: HashMap<i64, Vec<Vec<String>>>,
    /// Sends whose text contains the needle fail: (needle, times left or None for always,
    /// HTTP status, Telegram's description).
    failures: Vec<(String, Option<u32>, u16, String)>,
    /// Every send attempt's chat and text, failed or not, and when it came.
    attempts: Vec<(i64, String, Instant)>,
    /// Refuse what the real Bot API refuses: an empty or too long text (4096 characters, 1024
    /// for a caption), a button's `callback_data` over 64 bytes.
    strict: bool,
    /// The sends refused by `strict`: chat, text and Telegram's description.
    refused: Vec<(i64, String, String)>,
    /// The webhook URL set for the bot: while one is set, `getUpdates` answers 409 Conflict, as
    /// the real Bot API does.
    webhook: Option<String>,
}

#[derive(Default)]
struct Fake {
    bots: HashMap<String, BotState>,
}

pub struct FakeTelegram {
    pub url: String,
    state: Arc<Mutex<Fake>>,
}

fn ok(result: Value) -> axum::response::Response {
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

/// A `callback_query` update: `chat`'s user pressed the button `data` on the message `on`.
fn callback_json(id: u32, chat: i64, data: &str, on: Value) -> Value {
    json!({"update_id": id, "callback_query": {
        "id": format!("cb{id}"),
        "from": {"id": chat, "is_bot": false, "first_name": format!("user{chat}")},
        "chat_instance": "ci",
        "data": data,
        "message": on
    }})
}

fn message_json(id: i64, chat: i64, text: &str) -> Value {
    json!({
        "message_id": id,
        "date": 1_764_300_000,
        "chat": {"id": chat, "type": "private", "first_name": "Pembeli"},
        "from": {"id": 42, "is_bot": true, "first_name": "Pasar", "username": "pasar_bot"},
        "text": text
    })
}

/// A multipart body (a file upload, as teloxide sends `sendPhoto` with a picture): its text
/// fields as parameters (each read as JSON where it is JSON, as `chat_id` and `reply_markup`
/// are), and the name and bytes of its file.
async fn multipart(boundary: String, body: Bytes) -> (Value, Option<(String, Vec<u8>)>) {
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut params = serde_json::Map::new();
    let mut file = None;
    while let Ok(Some(field)) = parts.next_field().await {
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(String::from);
        let Ok(bytes) = field.bytes().await else { break };
        if let Some(file_name) = file_name {
            file = Some((file_name, bytes.to_vec()));
        } else {
            let text = String::from_utf8_lossy(&bytes).to_string();
            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            params.insert(name, value);
        }
    }
    (Value::Object(params), file)
}

/// What the real Bot API says to a send it refuses for its text or buttons, if it does.
fn strict_refusal(method: &str, params: &Value, text: &str) -> Option<String> {
    let captioned = method.eq_ignore_ascii_case("sendphoto") || method.eq_ignore_ascii_case("senddocument");
    let length = text.encode_utf16().count();
    if captioned && length > 1024 {
        return Some("Bad Request: message caption is too long".into());
    }
    if !captioned && text.trim().is_empty() {
        return Some("Bad Request: message text is empty".into());
    }
    if !captioned && length > 4096 {
        return Some("Bad Request: message is too long".into());
    }
    let buttons = params["reply_markup"]["inline_keyboard"].as_array().cloned().unwrap_or_default();
    for button in buttons.iter().flat_map(|row| row.as_array().cloned().unwrap_or_default()) {
        let data = button["callback_data"].as_str().unwrap_or_default();
        let label = button["text"].as_str().unwrap_or_default();
        if data.len() > 64 || label.trim().is_empty() {
            return Some("Bad Request: BUTTON_DATA_INVALID".into());
        }
    }
    None
}

async fn api(
    State(state): State<Arc<Mutex<Fake>>>,
    Path((bot, method)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let Some(token) = bot.strip_prefix("bot").map(String::from) else {
        return (axum::http::StatusCode::NOT_FOUND, "no").into_response();
    };
    let boundary = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    let (params, file) = match boundary {
        Some(b) => multipart(b, body).await,
        None => (serde_json::from_slice(&body).unwrap_or(json!({})), None),
    };
    if !state.lock().expect("fake").bots.contains_key(&token) {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        )
            .into_response();
    }
    // Bot API method names are case-insensitive (teloxide sends `GetMe`).
    match method.to_lowercase().as_str() {
        "getme" => ok(json!({
            "id": 42, "is_bot": true, "first_name": "Pasar", "username": format!("pasar_{}_bot", token.split(':').next().unwrap_or("x")),
            "can_join_groups": false, "can_read_all_group_messages": false, "supports_inline_queries": false,
            "can_connect_to_business": false, "has_main_web_app": false
        })),
        "getupdates" if state.lock().expect("fake").bots.get(&token).is_some_and(|b| b.webhook.is_some()) => (
            axum::http::StatusCode::CONFLICT,
            axum::Json(json!({"ok": false, "error_code": 409,
                "description": "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"})),
        )
            .into_response(),
        "getupdates" => {
            let offset = params["offset"].as_i64().unwrap_or(0);
            let wait = params["timeout"].as_u64().unwrap_or(0).min(1);
            // As many updates as asked for, 100 at most (Telegram's default and limit).
            let limit = params["limit"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
            let deadline = Instant::now() + Duration::from_secs(wait);
            state.lock().expect("fake").bots.get_mut(&token).expect("bot").polls += 1;
            loop {
                {
                    let mut fake = state.lock().expect("fake");
                    let b = fake.bots.get_mut(&token).expect("bot");
                    b.get_updates_calls += 1;
                    b.acknowledged = b.acknowledged.max(offset);
                    let replay = std::mem::take(&mut b.replay);
                    let mut out: Vec<Value> = b
                        .updates
                        .iter()
                        .filter(|u| replay || u["update_id"].as_i64().unwrap_or(0) >= offset)
                        .take(limit)
                        .cloned()
                        .collect();
                    if b.redeliver > 0 && (!out.is_empty() || b.flush) {
                        let mut owed: Vec<Value> = b
                            .updates
                            .iter()
                            .rev()
                            .filter(|u| {
                                let id = u["update_id"].as_i64().unwrap_or(0);
                                id < offset && b.redelivered.get(&id).copied().unwrap_or(0) < b.redeliver
                            })
                            .cloned()
                            .collect();
                        if out.is_empty() {
                            // A batch of its own: only the oldest, with nothing newer.
                            owed = owed.split_off(owed.len().saturating_sub(1));
                        }
                        owed.truncate(limit - out.len()); // Still no more than asked for.
                        for u in &owed {
                            *b.redelivered.entry(u["update_id"].as_i64().unwrap_or(0)).or_default() += 1;
                        }
                        out.extend(owed);
                    }
                    for u in &out {
                        *b.deliveries.entry(u["update_id"].as_i64().unwrap_or(0)).or_default() += 1;
                    }
                    if !out.is_empty() {
                        return ok(Value::Array(out));
                    }
                }
                if Instant::now() >= deadline {
                    return ok(json!([]));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        "sendmessage" | "sendphoto" | "senddocument" | "editmessagetext" => {
            let mut fake = state.lock().expect("fake");
            let b = fake.bots.get_mut(&token).expect("bot");
            let chat = params["chat_id"].as_i64().unwrap_or(0);
            let text = params["text"].as_str().or(params["caption"].as_str()).unwrap_or("").to_string();
            b.attempts.push((chat, text.clone(), Instant::now()));
            if b.strict
                && let Some(description) = strict_refusal(&method, &params, &text)
            {
                b.refused.push((chat, text.clone(), description.clone()));
                return (
                    axum::http::StatusCode::BAD_REQUEST,
                    axum::Json(json!({"ok": false, "error_code": 400, "description": description})),
                )
                    .into_response();
            }
            if b.flood > 0 {
                b.flood -= 1;
                let secs = b.flood_seconds;
                return (
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(json!({"ok": false, "error_code": 429, "description": format!("Too Many Requests: retry after {secs}"), "parameters": {"retry_after": secs}})),
                )
                    .into_response();
            }
            if b.blocked.contains(&chat) {
                return (
                    axum::http::StatusCode::FORBIDDEN,
                    axum::Json(json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})),
                )
                    .into_response();
            }
            if let Some(rule) =
                b.failures.iter_mut().find(|(needle, left, ..)| text.contains(needle.as_str()) && *left != Some(0))
            {
                if let Some(left) = rule.1.as_mut() {
                    *left -= 1;
                }
                let (status, description) = (rule.2, rule.3.clone());
                if description.starts_with('<') {
                    // A gateway's own page, not the API's JSON.
                    let status = axum::http::StatusCode::from_u16(status).expect("status");
                    return (status, [(axum::http::header::CONTENT_TYPE, "text/html")], description).into_response();
                }
                return (
                    axum::http::StatusCode::from_u16(status).expect("status"),
                    axum::Json(json!({"ok": false, "error_code": status, "description": description})),
                )
                    .into_response();
            }
            let photo_ref = params["photo"].as_str().map(String::from);
            if photo_ref.is_some() && b.refuse_photo_refs {
                return (
                    axum::http::StatusCode::BAD_REQUEST,
                    axum::Json(json!({"ok": false, "error_code": 400, "description": "Bad Request: wrong file identifier/HTTP URL specified"})),
                )
                    .into_response();
            }
            if method.eq_ignore_ascii_case("editmessagetext") {
                let target = params["message_id"].as_i64().unwrap_or(0);
                let Some(old) = b.sent.iter().rev().find(|m| m.chat == chat && m.id == target).cloned() else {
                    return (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(json!({"ok": false, "error_code": 400, "description": "Bad Request: message to edit not found"})),
                    )
                        .into_response();
                };
                if old.text == text && old.markup == params["reply_markup"] {
                    return (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(json!({"ok": false, "error_code": 400, "description": "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"})),
                    )
                        .into_response();
                }
                b.sent.push(SentMessage {
                    id: target,
                    edit_of: Some(target),
                    chat,
                    text: text.clone(),
                    markup: params["reply_markup"].clone(),
                    at: Instant::now(),
                    photo: None,
                    document: None,
                    photo_ref: None,
                });
                return ok(message_json(target, chat, &text));
            }
            b.next_message += 1;
            let id = b.next_message;
            let (photo, document) = match file {
                Some((_, bytes)) if method.eq_ignore_ascii_case("sendphoto") => (Some(bytes), None),
                Some(file) if method.eq_ignore_ascii_case("senddocument") => (None, Some(file)),
                _ => (None, None),
            };
            b.sent.push(SentMessage {
                id,
                edit_of: None,
                chat,
                text: text.clone(),
                markup: params["reply_markup"].clone(),
                at: Instant::now(),
                photo,
                document,
                photo_ref,
            });
            ok(message_json(id, chat, &text))
        }
        "answercallbackquery" => {
            let mut fake = state.lock().expect("fake");
            let b = fake.bots.get_mut(&token).expect("bot");
            b.callbacks_answered += 1;
            b.callback_ids_answered.insert(params["callback_query_id"].as_str().unwrap_or_default().to_string());
            ok(json!(true))
        }
        "setmycommands" => {
            let mut fake = state.lock().expect("fake");
            let lang = params["language_code"].as_str().unwrap_or("").to_string();
            let commands: Vec<String> = params["commands"]
                .as_array()
                .map(|c| c.iter().filter_map(|c| c["command"].as_str().map(String::from)).collect())
                .unwrap_or_default();
            let b = fake.bots.get_mut(&token).expect("bot");
            if params["scope"]["type"] == "chat" {
                let chat = params["scope"]["chat_id"].as_i64().unwrap_or(0);
                b.chat_menus.entry(chat).or_default().push(commands);
            } else if !commands.is_empty() {
                b.command_menus.push(lang);
            }
            ok(json!(true))
        }
        "setwebhook" => {
            let url = params["url"].as_str().unwrap_or_default().to_string();
            state.lock().expect("fake").bots.get_mut(&token).expect("bot").webhook = Some(url);
            ok(json!(true))
        }
        "deletewebhook" => {
            state.lock().expect("fake").bots.get_mut(&token).expect("bot").webhook = None;
            ok(json!(true))
        }
        "getwebhookinfo" => {
            let url = state.lock().expect("fake").bots.get(&token).and_then(|b| b.webhook.clone());
            ok(json!({"url": url.unwrap_or_default(), "has_custom_certificate": false, "pending_update_count": 0}))
        }
        _ => (
            axum::http::StatusCode::NOT_FOUND,
            axum::Json(json!({"ok": false, "error_code": 404, "description": "Not Found"})),
        )
            .into_response(),
    }
}

impl FakeTelegram {
    /// Starts the fake for these bot tokens on its own thread.
    pub fn start(tokens: &[&str]) -> FakeTelegram {
        let mut fake = Fake::default();
        for t in tokens {
            fake.bots.insert(t.to_string(), BotState { next_update: 1, ..BotState::default() });
        }
        let state = Arc::new(Mutex::new(fake));
        let app =
            Router::new().route("/{bot}/{method}", axum::routing::post(api).get(api)).with_state(Arc::clone(&state));
        let addr = super::serve_on_thread(app);
        FakeTelegram { url: format!("http://{addr}"), state }
    }

    fn with<T>(&self, token: &str, f: impl FnOnce(&mut BotState) -> T) -> T {
        let mut fake = self.state.lock().expect("fake");
        f(fake.bots.get_mut(token).expect("known token"))
    }

    fn push(&self, token: &str, body: impl FnOnce(u32) -> Value) -> u32 {
        self.with(token, |b| {
            let id = b.next_update;
            b.next_update += 1;
            b.updates.push(body(id));
            id
        })
    }

    /// The bot has a webhook set (left from a deployment in webhook mode): `getUpdates` answers
    /// 409 until it is deleted.
    pub fn set_webhook(&self, token: &str, url: &str) {
        self.with(token, |b| b.webhook = Some(url.to_string()));
    }

    /// The webhook URL set for the bot, if any.
    pub fn webhook(&self, token: &str) -> Option<String> {
        self.with(token, |b| b.webhook.clone())
    }

    /// Any update: `body` gets the update id and returns the whole update.
    pub fn update(&self, token: &str, body: impl FnOnce(u32) -> Value) -> u32 {
        self.push(token, body)
    }

    /// A user types a message in their private chat with the bot.
    pub fn text(&self, token: &str, chat: i64, text: &str) -> u32 {
        self.push(token, |id| {
            json!({"update_id": id, "message": {
                "message_id": id, "date": 1_764_300_000,
                "chat": {"id": chat, "type": "private", "first_name": format!("user{chat}")},
                "from": {"id": chat, "is_bot": false, "first_name": format!("user{chat}")},
                "text": text
            }})
        })
    }

    /// A user shares their location.
    pub fn location(&self, token: &str, chat: i64, lat: f64, lon: f64) -> u32 {
        self.push(token, |id| {
            json!({"update_id": id, "message": {
                "message_id": id, "date": 1_764_300_000,
                "chat": {"id": chat, "type": "private", "first_name": "u"},
                "from": {"id": chat, "is_bot": false, "first_name": "u"},
                "location": {"latitude": lat, "longitude": lon}
            }})
        })
    }

    /// A user sends a photo: Telegram gives several sizes of it, smallest first.
    pub fn photo(&self, token: &str, chat: i64, file_id: &str) -> u32 {
        self.photo_with_caption(token, chat, file_id, "sudah diterima ibunya")
    }

    /// Sendings of photos by file id or URL are refused from now on (stale file ids).
    pub fn refuse_photo_refs(&self, token: &str) {
        self.with(token, |b| b.refuse_photo_refs = true);
    }

    /// The same with its caption.
    pub fn photo_with_caption(&self, token: &str, chat: i64, file_id: &str, caption: &str) -> u32 {
        self.push(token, |id| {
            json!({"update_id": id, "message": {
                "message_id": id, "date": 1_764_300_000,
                "chat": {"id": chat, "type": "private", "first_name": "u"},
                "from": {"id": chat, "is_bot": false, "first_name": "u"},
                "photo": [
                    {"file_id": format!("{file_id}-small"), "file_unique_id": "s", "width": 90, "height": 120, "file_size": 1200},
                    {"file_id": file_id, "file_unique_id": "l", "width": 960, "height": 1280, "file_size": 98000},
                    {"file_id": format!("{file_id}-medium"), "file_unique_id": "m", "width": 320, "height": 427, "file_size": 9000}
                ],
                "caption": caption
            }})
        })
    }

    /// The next point of a live location a user is sharing: Telegram edits the location message.
    pub fn live_location(&self, token: &str, chat: i64, message_id: i64, lat: f64, lon: f64) -> u32 {
        self.push(token, |id| {
            json!({"update_id": id, "edited_message": {
                "message_id": message_id, "date": 1_764_300_000, "edit_date": 1_764_300_060,
                "chat": {"id": chat, "type": "private", "first_name": "u"},
                "from": {"id": chat, "is_bot": false, "first_name": "u"},
                "location": {"latitude": lat, "longitude": lon, "live_period": 3600}
            }})
        })
    }

    /// A user presses an inline button.
    pub fn press(&self, token: &str, chat: i64, data: &str) -> u32 {
        self.push(token, |id| callback_json(id, chat, data, message_json(9_000 + i64::from(id), chat, "menu")))
    }

    /// A user presses an inline button of a message the bot sent.
    pub fn press_on(&self, token: &str, message: &SentMessage, data: &str) -> u32 {
        let chat = message.chat;
        let on = message_json(message.id, chat, &message.text);
        self.push(token, |id| callback_json(id, chat, data, on))
    }

    /// A user presses a button of a message in another chat (a forged callback query: `from`
    /// is not the chat the message is in).
    pub fn press_as(&self, token: &str, from: i64, chat: i64, message_id: i64, data: &str) -> u32 {
        self.push(token, |id| {
            json!({"update_id": id, "callback_query": {
                "id": format!("cb{id}"),
                "from": {"id": from, "is_bot": false, "first_name": format!("user{from}")},
                "chat_instance": "ci",
                "data": data,
                "message": message_json(message_id, chat, "menu")
            }})
        })
    }

    /// Refuse from now on what the real Bot API refuses (see `BotState::strict`).
    pub fn strict(&self, token: &str) {
        self.with(token, |b| b.strict = true);
    }

    /// The sends refused for their text or buttons: chat, text, description.
    pub fn refused(&self, token: &str) -> Vec<(i64, String, String)> {
        self.with(token, |b| b.refused.clone())
    }

    /// Whether the bot has acknowledged every update pushed so far (asked for the ones after).
    pub fn all_acknowledged(&self, token: &str) -> bool {
        self.with(token, |b| b.acknowledged >= i64::from(b.next_update))
    }

    /// Every update pushed so far.
    pub fn updates(&self, token: &str) -> Vec<Value> {
        self.with(token, |b| b.updates.clone())
    }

    /// How many updates were pushed so far.
    pub fn updates_pushed(&self, token: &str) -> usize {
        self.with(token, |b| b.updates.len())
    }

    /// The next `getUpdates` returns every update again, as after a lost acknowledgement.
    pub fn replay_all(&self, token: &str) {
        self.with(token, |b| b.replay = true);
    }

    /// From now on every update comes `times` more times after it was acknowledged (as if the
    /// acknowledgements were lost): each time after the new updates of a later batch, so older
    /// updates come after newer ones. Until `flush_redeliveries`, only together with new ones;
    /// after it, also one at a time in batches of their own (the oldest first).
    pub fn redeliver_each(&self, token: &str, times: u32) {
        self.with(token, |b| b.redeliver = times);
    }

    /// The redeliveries still owed may now come in batches of their own.
    pub fn flush_redeliveries(&self, token: &str) {
        self.with(token, |b| b.flush = true);
    }

    /// How many redeliveries are still owed (updates acknowledged but not yet sent again
    /// `times` times).
    pub fn redeliveries_owed(&self, token: &str) -> u32 {
        self.with(token, |b| {
            let n = b.redeliver;
            b.updates
                .iter()
                .map(|u| {
                    n.saturating_sub(b.redelivered.get(&u["update_id"].as_i64().unwrap_or(0)).copied().unwrap_or(0))
                })
                .sum()
        })
    }

    /// How many times each update came again, by update id.
    pub fn redelivered(&self, token: &str) -> HashMap<i64, u32> {
        self.with(token, |b| b.redelivered.clone())
    }

    /// How many times each update was in a `getUpdates` answer, by update id.
    pub fn deliveries(&self, token: &str) -> HashMap<i64, u32> {
        self.with(token, |b| b.deliveries.clone())
    }

    /// `getUpdates` requests so far (a long poll counts once).
    pub fn polls(&self, token: &str) -> usize {
        self.with(token, |b| b.polls)
    }

    pub fn flood(&self, token: &str, times: u32, seconds: u32) {
        self.with(token, |b| {
            b.flood = times;
            b.flood_seconds = seconds;
        });
    }

    /// The next `times` sends whose text contains `needle` get a 500 Internal Server Error.
    pub fn server_error(&self, token: &str, needle: &str, times: u32) {
        self.with(token, |b| b.failures.push((needle.into(), Some(times), 500, "Internal Server Error".into())));
    }

    /// The next `times` sends whose text contains `needle` get a 502 Bad Gateway, as Telegram's
    /// front answers while the API behind it is down: alternately its JSON and nginx's HTML page.
    pub fn bad_gateway(&self, token: &str, needle: &str, times: u32) {
        self.with(token, |b| {
            for i in 0..times {
                let description = if i.is_multiple_of(2) {
                    "Bad Gateway".to_string()
                } else {
                    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n".to_string()
                };
                b.failures.push((needle.into(), Some(1), 502, description));
            }
        });
    }

    /// Every send whose text contains `needle` is refused as a bad request, for good.
    pub fn bad_request(&self, token: &str, needle: &str) {
        self.with(token, |b| {
            b.failures.push((
                needle.into(),
                None,
                400,
                "Bad Request: can't parse entities: unsupported start tag".into(),
            ))
        });
    }

    /// How many send attempts (failed or not) carried a text containing `needle`.
    pub fn attempts_with(&self, token: &str, needle: &str) -> usize {
        self.with(token, |b| b.attempts.iter().filter(|(_, t, _)| t.contains(needle)).count())
    }

    /// How many send attempts (failed or not) went to one chat.
    pub fn attempts_to(&self, token: &str, chat: i64) -> usize {
        self.with(token, |b| b.attempts.iter().filter(|(c, _, _)| *c == chat).count())
    }

    /// Every send attempt (`sendMessage`, `sendPhoto`, `editMessageText`, failed or not): its
    /// chat and when it came, in order.
    pub fn attempt_times(&self, token: &str) -> Vec<(i64, Instant)> {
        self.with(token, |b| b.attempts.iter().map(|(c, _, at)| (*c, *at)).collect())
    }

    pub fn unblock(&self, token: &str, chat: i64) {
        self.with(token, |b| b.blocked.retain(|c| *c != chat));
    }

    pub fn block(&self, token: &str, chat: i64) {
        self.with(token, |b| b.blocked.push(chat));
    }

    pub fn sent(&self, token: &str) -> Vec<SentMessage> {
        self.with(token, |b| b.sent.clone())
    }

    /// The messages sent to one chat (edits included), in order.
    pub fn sent_to(&self, token: &str, chat: i64) -> Vec<SentMessage> {
        self.with(token, |b| b.sent.iter().filter(|m| m.chat == chat).cloned().collect())
    }

    pub fn command_menus(&self, token: &str) -> Vec<String> {
        self.with(token, |b| b.command_menus.clone())
    }

    /// The commands of the latest menu set for one chat, if any.
    pub fn chat_menu(&self, token: &str, chat: i64) -> Option<Vec<String>> {
        self.with(token, |b| b.chat_menus.get(&chat).and_then(|m| m.last().cloned()))
    }

    /// The ids of the callback queries answered, each once.
    pub fn callback_ids_answered(&self, token: &str) -> std::collections::BTreeSet<String> {
        self.with(token, |b| b.callback_ids_answered.clone())
    }

    pub fn callbacks_answered(&self, token: &str) -> usize {
        self.with(token, |b| b.callbacks_answered)
    }

    /// Waits (up to a minute) for a message to `chat` containing `needle`, sent after the first
    /// `after` messages to that chat; returns it and the new count.
    pub fn wait_for(&self, token: &str, chat: i64, needle: &str, after: usize) -> (SentMessage, usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let msgs = self.sent_to(token, chat);
            if let Some((i, m)) = msgs.iter().enumerate().skip(after).find(|(_, m)| m.text.contains(needle)) {
                return (m.clone(), i + 1);
            }
            assert!(
                Instant::now() < deadline,
                "no message with {needle:?} to chat {chat}; got: {:#?}",
                msgs.iter().map(|m| &m.text).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
