//! `pasar run` on Telegram: the pollers (inbox before the offset acknowledges), the webhook
//! handler, the command menus and the rate-limited sender of each market's bot.

use super::{API_DOWN_MAX_WAIT, MAX_ATTEMPTS, Mark, Round, Shared, backoff, mark, shared_stopped, start_round};
use crate::channel::telegram::{self, Send};
use crate::channel::{ChannelKind, CommandMenu, UserKey};
use crate::config::Config;
use crate::domain::catalog::SeedData;
use crate::store::{SendResult, Store};
use crate::text::{Key, Lang};
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use teloxide::payloads::{
    EditMessageTextSetters, GetUpdatesSetters, SendDocumentSetters, SendPhotoSetters, SetMyCommandsSetters,
};
use teloxide::prelude::Requester;
use teloxide::types::{BotCommand, BotCommandScope, ChatId, InputFile, ReplyMarkup};
use teloxide::{ApiError, Bot, RequestError};

/// What `pasar run` found to run.
#[derive(Debug, Clone, PartialEq)]
pub struct BotPlan {
    pub market: String,
    pub token_variable: String,
    pub token: Option<crate::secret::Secret>,
}

/// Which markets have a Telegram token in the environment.
pub fn telegram_plan(config: &Config) -> anyhow::Result<Vec<BotPlan>> {
    let seed = if config.data_dir.exists() { SeedData::load(&config.data_dir)? } else { SeedData::builtin()? };
    Ok(seed
        .markets
        .iter()
        .map(|m| {
            let var = telegram::token_variable(&m.slug);
            let token = crate::secret::Secret::from_env(&var, None);
            BotPlan { market: m.slug.clone(), token_variable: var, token }
        })
        .collect())
}

/// Long-polls one bot. Each batch of updates is written to the inbox before the next
/// `getUpdates` (whose offset acknowledges them) is sent: a crash loses none, a redelivery is
/// ignored by the inbox.
pub(super) async fn poll(bot: Bot, market: String, shared: Arc<Shared>, timeout_secs: u32) {
    let handler = telegram::handler();
    let mut offset: Option<i32> = None;
    let mut backoff = Duration::from_millis(500);
    while !shared.stop.load(Ordering::SeqCst) {
        let mut request = bot.get_updates().timeout(timeout_secs);
        if let Some(o) = offset {
            request = request.offset(o);
        }
        let updates = tokio::select! {
            r = async { request.await } => r,
            _ = shared_stopped(&shared) => return,
        };
        let updates = match updates {
            Ok(u) => {
                backoff = Duration::from_millis(500);
                shared.ops.bot_ok(ChannelKind::Telegram, &market);
                u
            }
            Err(e) => {
                tracing::warn!(market = %market, error = %e, "getUpdates failed; retrying");
                tokio::time::sleep(backoff).await;
                // Capped low: after an outage the updates queued at Telegram come soon.
                backoff = (backoff * 2).min(API_DOWN_MAX_WAIT);
                continue;
            }
        };
        if updates.is_empty() {
            continue;
        }
        let last = updates.iter().map(|u| u.id.0).max().unwrap_or(0);
        let now = Utc::now();
        let mut events = Vec::new();
        let mut callbacks = Vec::new();
        for u in updates {
            let id = u.id.0;
            if let Some(c) = telegram::convert(&handler, u).await {
                if let Some(cb) = c.callback_id.clone() {
                    callbacks.push(cb);
                }
                events.push(telegram::event(&market, id, c, now));
            }
        }
        match super::ingest(&shared, events).await {
            Ok(_) => {
                // Never backwards: a batch of only older updates (redelivered) must not ask
                // for the newer ones again.
                let next = i32::try_from(u64::from(last) + 1).ok();
                offset = offset.max(next);
                // Stops the spinners on the pressed buttons (the answers come as messages),
                // without holding up the next poll.
                let bot = bot.clone();
                tokio::spawn(async move {
                    for id in callbacks {
                        let _ = bot.answer_callback_query(teloxide::types::CallbackQueryId(id)).await;
                    }
                });
            }
            Err(error) => {
                // Not acknowledged: the same updates come again.
                tracing::error!(market = %market, %error, "storing updates failed; not acknowledging them");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// The commands a menu lists, described in one language. Traders' `/pesanan` lists their
/// stall's open orders, so it is described as such.
fn command_list(texts: &crate::text::Texts, market: &str, lang: Lang, menu: CommandMenu) -> Vec<BotCommand> {
    let mut list: Vec<(&str, Key)> = vec![("start", Key::CmdStart)];
    if menu.trader {
        list.extend([
            ("pesanan", Key::CmdPesananTrader),
            ("harga", Key::CmdHarga),
            ("stok", Key::CmdStok),
            ("tutup", Key::CmdTutup),
            ("buka", Key::CmdBuka),
            ("rekap", Key::CmdRekap),
        ]);
    }
    if menu.courier {
        list.extend([("mulai", Key::CmdMulai), ("selesai", Key::CmdSelesai), ("tugas", Key::CmdTugas)]);
    }
    if menu.admin {
        list.extend([
            ("undang", Key::CmdUndang),
            ("undang_kurir", Key::CmdUndangKurir),
            ("kurir", Key::CmdKurir),
            ("tugaskan", Key::CmdTugaskan),
            ("lunas", Key::CmdLunas),
            ("refund", Key::CmdRefund),
            ("pembayaran", Key::CmdPembayaran),
            ("batalkan", Key::CmdBatalkan),
            ("audit", Key::CmdAudit),
            ("pasar_tutup", Key::CmdPasarTutup),
            ("pasar_buka", Key::CmdPasarBuka),
            ("pedagang", Key::CmdPedagang),
            ("nonaktif", Key::CmdNonaktif),
            ("aktif", Key::CmdAktif),
            ("jam", Key::CmdJam),
            ("kapasitas", Key::CmdKapasitas),
            ("foto", Key::CmdFoto),
            ("statistik", Key::CmdStatistik),
            ("ekspor", Key::CmdEkspor),
            ("siaran", Key::CmdSiaran),
        ]);
        if menu.city {
            list.extend([
                ("admin_tambah", Key::CmdAdminTambah),
                ("admin_hapus", Key::CmdAdminHapus),
                ("cadangan", Key::CmdCadangan),
                ("harga_acuan", Key::CmdHargaAcuan),
                ("komoditas_tambah", Key::CmdKomoditasTambah),
                ("komoditas_ubah", Key::CmdKomoditasUbah),
            ]);
        }
        // A trader's /pesanan is their stall's; one name, one meaning per menu.
        if !menu.trader {
            list.push(("pesanan", Key::CmdPesananAdmin));
        }
    }
    list.extend([("cari", Key::CmdCari), ("pesan", Key::CmdPesan), ("keranjang", Key::CmdKeranjang)]);
    if !menu.trader && !menu.admin {
        list.push(("pesanan", Key::CmdPesanan));
    }
    list.push(("status", Key::CmdStatus));
    list.extend([
        ("batal", Key::CmdBatal),
        ("langganan", Key::CmdLangganan),
        ("berhenti", Key::CmdBerhenti),
        ("bahasa", Key::CmdBahasa),
        ("bantuan", Key::CmdBantuan),
    ]);
    list.into_iter().map(|(c, k)| BotCommand::new(c, texts.get(market, lang, k))).collect()
}

/// The shopper's commands as every chat's menu, in Indonesian (the default) and English.
pub(super) async fn set_commands(bot: &Bot, market: &str, texts: &crate::text::Texts) {
    let shopper = CommandMenu::default();
    if let Err(e) = bot.set_my_commands(command_list(texts, market, Lang::Id, shopper)).await {
        tracing::warn!(market, error = %e, "setMyCommands failed");
    }
    if let Err(e) = bot.set_my_commands(command_list(texts, market, Lang::En, shopper)).language_code("en").await {
        tracing::warn!(market, error = %e, "setMyCommands (en) failed");
    }
}

/// One chat's own menu (a trader's or an admin's), in that user's language.
async fn set_chat_commands(
    bot: &Bot,
    market: &str,
    texts: &crate::text::Texts,
    chat: i64,
    lang: Lang,
    menu: CommandMenu,
) -> Sent {
    let scope = BotCommandScope::Chat { chat_id: teloxide::types::Recipient::Id(ChatId(chat)) };
    match bot.set_my_commands(command_list(texts, market, lang, menu)).scope(scope).await {
        Ok(_) => Sent::Ok,
        Err(e) => classify(e),
    }
}

/// At start: the menus of everyone with a role in this market (traders, couriers and admins, stored or
/// from the config), paced well under the bot's limit, so a role given while the bot was down
/// or an admin added to the config shows in their menu.
pub(super) async fn set_role_menus(
    bot: Bot,
    market: String,
    holders: Vec<(UserKey, CommandMenu, Option<Lang>)>,
    texts: Arc<crate::text::Texts>,
    default_lang: Lang,
) {
    for (user, menu, lang) in holders {
        let Ok(chat) = user.id.parse::<i64>() else {
            continue;
        };
        loop {
            match set_chat_commands(&bot, &market, &texts, chat, lang.unwrap_or(default_lang), menu).await {
                Sent::RetryAfter(wait) => tokio::time::sleep(wait).await,
                Sent::Ok => break,
                other => {
                    tracing::warn!(market = %market, chat, result = ?other, "setting a role menu failed");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Who in this market has a role on Telegram, with their menu and language.
pub(super) fn telegram_role_holders(
    store: &Store,
    config: &Config,
    market: &str,
) -> crate::store::StoreResult<Vec<(UserKey, CommandMenu, Option<Lang>)>> {
    let mut holders: HashMap<UserKey, CommandMenu> =
        store.role_holders(market, ChannelKind::Telegram)?.into_iter().collect();
    for admin in config.policy.config_admins(market).filter(|u| u.channel == ChannelKind::Telegram) {
        let menu = holders.entry(admin.clone()).or_default();
        menu.admin = true;
        menu.city = config.policy.is_city_admin(admin);
    }
    let mut out = Vec::new();
    for (user, menu) in holders {
        let lang = store.language_of(&user)?;
        out.push((user, menu, lang));
    }
    out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    Ok(out)
}

/// What the webhook handler needs.
pub(super) struct WebhookState {
    pub(super) secret: String,
    pub(super) bots: HashMap<String, Bot>,
    pub(super) store: Arc<Mutex<Store>>,
    pub(super) shared: Arc<Shared>,
    pub(super) handler:
        teloxide::dptree::Handler<'static, Option<telegram::Converted>, teloxide::dispatching::DpHandlerDescription>,
}

/// `POST /telegram/<market>`: the secret header is compared in constant time (401 and nothing
/// stored on a mismatch); a body that is not an update is 400; the update is in the inbox before
/// the 200, so Telegram's redelivery after a crash is harmless.
pub(super) async fn telegram_webhook(
    axum::extract::State(state): axum::extract::State<Arc<WebhookState>>,
    axum::extract::Path(market): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    use axum::http::StatusCode;
    use subtle::ConstantTimeEq;
    let given = headers.get("X-Telegram-Bot-Api-Secret-Token").map(|v| v.as_bytes()).unwrap_or_default();
    if !bool::from(given.ct_eq(state.secret.as_bytes())) {
        return StatusCode::UNAUTHORIZED;
    }
    let Some(bot) = state.bots.get(&market) else {
        return StatusCode::NOT_FOUND;
    };
    let update: teloxide::types::Update = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(_) => return StatusCode::BAD_REQUEST,
    };
    let id = update.id.0;
    let Some(converted) = telegram::convert(&state.handler, update).await else {
        return StatusCode::OK; // a kind of update the bots do not use
    };
    let callback = converted.callback_id.clone();
    let event = telegram::event(&market, id, converted, Utc::now());
    let stored = super::on_io_store(&state.shared, &state.store, move |s| {
        s.ingest(std::slice::from_ref(&event)).map_err(|e| e.to_string())
    })
    .await;
    match stored {
        Ok(_) => {
            state.shared.inbox.notify_waiters();
            state.shared.ops.bot_ok(ChannelKind::Telegram, &market);
            if let Some(cb) = callback {
                let bot = bot.clone();
                tokio::spawn(async move {
                    let _ = bot.answer_callback_query(teloxide::types::CallbackQueryId(cb)).await;
                });
            }
            StatusCode::OK
        }
        // Not stored: Telegram will deliver it again.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// How a send attempt ended.
#[derive(Debug, PartialEq)]
enum Sent {
    Ok,
    /// Flood control: wait this long before this bot sends anything.
    RetryAfter(Duration),
    /// The user blocked the bot or is gone: never deliverable.
    Unreachable(String),
    /// Telegram refused this message for good (a bad request): retrying cannot help.
    Refused(String),
    /// Telegram had trouble with this message (a server error): retry it later.
    Failed(String),
    /// The Bot API could not be reached at all: the whole bot waits, no message is blamed.
    Network(String),
    /// The Bot API's front answered for it: a gateway error (502, 503, 504), or an error page
    /// instead of the API's JSON. That is the whole API down (as in Telegram's outages), not
    /// trouble with this message: like [`Sent::Network`], the bot waits and no message is blamed.
    Unavailable(String),
}

/// A picture drawn here (a QR code, a chart) as a photo, with its caption and buttons; the
/// message id it got.
async fn send_png(
    bot: &Bot,
    chat: ChatId,
    png: Vec<u8>,
    file_name: &str,
    caption: String,
    keyboard: Option<teloxide::types::InlineKeyboardMarkup>,
) -> Result<Option<i32>, RequestError> {
    let mut r = bot.send_photo(chat, InputFile::memory(png).file_name(file_name.to_string()));
    if !caption.is_empty() {
        r = r.caption(caption);
    }
    if let Some(k) = keyboard {
        r = r.reply_markup(ReplyMarkup::InlineKeyboard(k));
    }
    r.await.map(|m| Some(m.id.0))
}

/// How a failed call counts, without taking the error.
fn classify_ref(e: &RequestError) -> Sent {
    match e {
        RequestError::Api(a) => classify(RequestError::Api(a.clone())),
        other => Sent::Failed(other.to_string()),
    }
}

fn classify(e: RequestError) -> Sent {
    match e {
        RequestError::RetryAfter(s) => Sent::RetryAfter(s.duration()),
        RequestError::Api(
            ApiError::BotBlocked | ApiError::UserDeactivated | ApiError::ChatNotFound | ApiError::BotKicked,
        ) => Sent::Unreachable(e.to_string()),
        // teloxide keeps only the description; Telegram's 5xx descriptions are the ones below.
        RequestError::Api(ApiError::Unknown(ref d)) if is_gateway_error(d) => Sent::Unavailable(e.to_string()),
        RequestError::Api(ApiError::Unknown(ref d)) if is_server_error(d) => Sent::Failed(e.to_string()),
        RequestError::Api(_) | RequestError::MigrateToChatId(_) => Sent::Refused(e.to_string()),
        // Not JSON at all: the front's (nginx's) HTML error page, the API behind it down.
        RequestError::InvalidJson { ref raw, .. } if !raw.trim_start().starts_with('{') => {
            Sent::Unavailable(e.to_string())
        }
        // JSON that did not decode, or a reply cut short: this call's trouble.
        RequestError::InvalidJson { .. } => Sent::Failed(e.to_string()),
        RequestError::Network(_) | RequestError::Io(_) => Sent::Network(e.to_string()),
    }
}

/// A gateway's answer for an API that is not there (502, 503, 504), in Telegram's words.
fn is_gateway_error(description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    ["bad gateway", "service unavailable", "gateway timeout"].iter().any(|s| d.contains(s))
}

fn is_server_error(description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    ["internal server error", "timeout", "restart"].iter().any(|s| d.contains(s))
}

/// `sendMessage`, reading back only the new message's id: teloxide's own output type decodes
/// the whole message Telegram echoes back, which under load cost the senders about a tenth of
/// their CPU.
async fn send_text(
    bot: &Bot,
    chat: ChatId,
    text: String,
    markup: Option<ReplyMarkup>,
) -> Result<Option<i32>, RequestError> {
    let mut payload = teloxide::payloads::SendMessage::new(chat, text);
    payload.reply_markup = markup;
    let sent = teloxide::requests::JsonRequest::new(bot.clone(), SendMessageForId(payload)).await?;
    Ok(Some(sent.message_id))
}

/// [`teloxide::payloads::SendMessage`], sent as is, with only the message id decoded from the answer.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct SendMessageForId(teloxide::payloads::SendMessage);

/// The part of Telegram's answer to `sendMessage` the sender keeps.
#[derive(serde::Deserialize)]
struct SentMessageId {
    message_id: i32,
}

impl teloxide::requests::Payload for SendMessageForId {
    type Output = SentMessageId;
    const NAME: &'static str = "SendMessage";
}

/// Makes one call; on success also the id of the message it left in the chat (a new one, or the
/// one an edit changed), which is recorded so a later edit can change it.
async fn deliver(bot: &Bot, chat: ChatId, part: Send) -> (Sent, Option<i32>) {
    let result = match part {
        Send::Text { text, keyboard } => send_text(bot, chat, text, keyboard.map(ReplyMarkup::InlineKeyboard)).await,
        Send::Photo { url, caption, keyboard } => {
            // A URL, or else the file id of a photo sent to this bot (an admin's `/foto`).
            let file = match reqwest::Url::parse(&url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => InputFile::url(u),
                _ => InputFile::file_id(teloxide::types::FileId(url)),
            };
            let mut r = bot.send_photo(chat, file);
            if !caption.is_empty() {
                r = r.caption(caption.clone());
            }
            if let Some(k) = keyboard.clone() {
                r = r.reply_markup(ReplyMarkup::InlineKeyboard(k));
            }
            match r.await {
                // A picture Telegram will not take (a file id gone stale): the words still go.
                Err(e @ RequestError::Api(_)) if matches!(classify_ref(&e), Sent::Refused(_)) => {
                    tracing::warn!(error = %e, "a photo was refused; sending its text alone");
                    if caption.is_empty() {
                        Ok(None)
                    } else {
                        send_text(bot, chat, caption, keyboard.map(ReplyMarkup::InlineKeyboard)).await
                    }
                }
                other => other.map(|m| Some(m.id.0)),
            }
        }
        Send::Qr { content, caption, keyboard } => match crate::domain::qris::png(&content) {
            Ok(png) => send_png(bot, chat, png, "qris.png", caption, keyboard).await,
            // Cannot happen for a payload we made (it fits a QR code); the text still goes.
            Err(e) => {
                tracing::error!(error = %e, "drawing a QR code failed; sending its caption alone");
                send_text(bot, chat, caption, None).await
            }
        },
        Send::Chart { chart, caption, keyboard } => match crate::channel::chart::png(&chart) {
            Ok(png) => send_png(bot, chat, png, "statistik.png", caption, keyboard).await,
            // The figures went as text before it; the caption still goes.
            Err(e) => {
                tracing::error!(error = %e, "drawing a chart failed; sending its caption alone");
                send_text(bot, chat, caption, None).await
            }
        },
        Send::Document { document, caption, keyboard } => {
            let file = InputFile::memory(document.content.into_bytes()).file_name(document.file_name);
            let mut r = bot.send_document(chat, file);
            if !caption.is_empty() {
                r = r.caption(caption);
            }
            if let Some(k) = keyboard {
                r = r.reply_markup(ReplyMarkup::InlineKeyboard(k));
            }
            r.await.map(|m| Some(m.id.0))
        }
        Send::Request { text, keyboard } => send_text(bot, chat, text, Some(ReplyMarkup::Keyboard(keyboard))).await,
        Send::Edit { message_id, text, keyboard } => {
            let mut r = bot.edit_message_text(chat, teloxide::types::MessageId(message_id), text.clone());
            if let Some(k) = keyboard.clone() {
                r = r.reply_markup(k);
            }
            match r.await {
                Ok(m) => Ok(Some(m.id.0)),
                // Pressed twice: the page already shows this.
                Err(RequestError::Api(ApiError::MessageNotModified)) => Ok(Some(message_id)),
                // Too old, deleted, or not ours to edit: show it as a new message instead.
                Err(RequestError::Api(
                    ApiError::MessageToEditNotFound | ApiError::MessageCantBeEdited | ApiError::MessageIdInvalid,
                )) => send_text(bot, chat, text, keyboard.map(ReplyMarkup::InlineKeyboard)).await,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(id) => (Sent::Ok, id),
        Err(e) => (classify(e), None),
    }
}

/// Drains one bot's outbox in order per chat, within Telegram's limits.
///
/// Each round reads the first messages of every chat's queue (as many as the chat's limit
/// allows in a second: one with the defaults) and sends every chat that may send now its calls
/// in order, the chats in flight together, on slots that keep to at most `per_chat` calls a
/// second to one chat (a message sent as several calls, a long text in pieces or a request
/// keyboard after the text, counts each call, and a retry sends only the calls that did not go)
/// and `per_bot` a second in all. A failed call stops its chat's round there. A 429 pauses this
/// bot only; an internal server error holds that chat alone with a capped backoff, up to
/// [`MAX_ATTEMPTS`]; a bad request or a user who blocked the bot parks the message at once; an
/// unreachable API, or one whose front answers for it (a 502/503/504 or an error page: the API
/// is down), pauses the bot without blaming any message, trying again at least every
/// [`API_DOWN_MAX_WAIT`]. A delivered call whose marking
/// fails is remembered and marked again, never sent twice.
#[allow(clippy::too_many_arguments)]
pub(super) async fn send(
    bot: Bot,
    market: String,
    shared: Arc<Shared>,
    texts: Arc<crate::text::Texts>,
    default_lang: Lang,
    per_chat: f64,
    per_bot: f64,
) {
    let chat_gap = Duration::from_secs_f64(1.0 / per_chat);
    // Calls one chat may get in a round: what its limit allows in a second (one with the
    // defaults), at most eight.
    let per_round = (per_chat.floor() as usize).clamp(1, 8);
    let bot_gap = Duration::from_secs_f64(1.0 / per_bot);
    // Broadcast messages a round takes: a second of the bot's sending, so ordinary messages
    // queued during a broadcast wait about a second at most (see `outbox_heads_of`).
    let bulk = (per_bot.ceil() as usize).max(1);
    // When each chat may get its next call (rate limit or retry backoff).
    let mut chat_ready: HashMap<String, Instant> = HashMap::new();
    let pacer = Arc::new(Pacer::new(per_bot));
    let mut network_backoff = Duration::from_secs(1);
    // Calls delivered but not yet recorded in the store (its write failed): outbox id -> parts.
    let mut delivered: HashMap<i64, usize> = HashMap::new();
    let bell = shared.bell(ChannelKind::Telegram, &market);
    loop {
        // Listening before looking: messages queued while this round runs still wake it.
        let queued = bell.notified();
        tokio::pin!(queued);
        queued.as_mut().enable();
        let stopping = shared.stop.load(Ordering::SeqCst);
        let (heads, recipients) =
            match start_round(&shared, ChannelKind::Telegram, &market, per_round, bulk, queued.as_mut()).await {
                Round::Send(heads) => heads,
                Round::Again => continue,
                Round::Done => return,
            };
        let mut soonest: Option<Instant> = None;
        let mut pause: Option<Duration> = None;
        let mut results: Vec<(i64, SendResult)> = Vec::new();
        let mut network_failed = false;
        // Each ready chat's calls for this round, in order: its messages' remaining parts (and
        // a new menu first where a message brings one), at most `per_round` calls.
        let now = Instant::now();
        let mut runs: Vec<ChatRun> = Vec::new();
        let mut run_of: HashMap<String, usize> = HashMap::new();
        let mut waiting: std::collections::HashSet<String> = std::collections::HashSet::new();
        for m in heads {
            if waiting.contains(&m.to.id) {
                continue;
            }
            if let Some(ready) = chat_ready.get(&m.to.id).copied()
                && now < ready
            {
                soonest = Some(soonest.map_or(ready, |s| s.min(ready)));
                waiting.insert(m.to.id.clone());
                continue;
            }
            let Ok(chat) = m.to.id.parse::<i64>() else {
                results.push((m.id, SendResult::Undeliverable("not a Telegram chat id".into())));
                continue;
            };
            let lang = recipients.get(&m.to.id).and_then(|r| r.lang).unwrap_or(default_lang);
            let request_label = match m.message.request {
                Some(crate::channel::Request::Contact) => texts.get(&market, lang, Key::TgShareContact),
                _ => texts.get(&market, lang, Key::TgShareLocation),
            };
            let hint = texts.get(&market, lang, Key::TgRequestHint);
            let parts = telegram::render(&m.message, request_label, hint);
            let done = m.parts_sent.max(delivered.get(&m.id).copied().unwrap_or(0));
            let index = *run_of.entry(m.to.id.clone()).or_insert_with(|| {
                runs.push(ChatRun {
                    chat,
                    to: m.to.clone(),
                    lang,
                    messages: Vec::new(),
                    calls: Vec::new(),
                    last_start: None,
                    failure: None,
                });
                runs.len() - 1
            });
            let run = &mut runs[index];
            if run.calls.len() >= per_round {
                continue; // The rest of this chat's queue waits for the next round.
            }
            if done >= parts.len() {
                if run.messages.is_empty() {
                    // Everything went earlier; only the marking was missing.
                    results.push((m.id, SendResult::Sent));
                }
                continue;
            }
            let message = run.messages.len();
            run.messages.push(InFlight {
                id: m.id,
                attempts: m.attempts,
                start: done,
                done,
                total: parts.len(),
                platform_id: None,
            });
            if let Some(menu) = m.message.menu
                && done == 0
            {
                run.calls.push(Call { message, what: CallKind::Menu(menu) });
            }
            for part in parts.into_iter().skip(done) {
                run.calls.push(Call { message, what: CallKind::Part(part) });
            }
        }
        // Each chat's calls in order, at least `chat_gap` apart; every call takes the bot's
        // next slot when it is due (so the bot's limit holds whatever the replies' times), and
        // none starts while a 429 holds the bot. The chats are in flight together.
        let mut round: tokio::task::JoinSet<ChatRun> = tokio::task::JoinSet::new();
        for mut run in runs {
            if run.calls.is_empty() {
                continue;
            }
            let (bot, market, texts, pacer) = (bot.clone(), market.clone(), Arc::clone(&texts), Arc::clone(&pacer));
            round.spawn(async move {
                let calls = std::mem::take(&mut run.calls);
                for call in calls {
                    let chat_at = run.last_start.map_or_else(Instant::now, |l| l + chat_gap);
                    let Some(at) = pacer.slot(chat_at, bot_gap) else {
                        break; // Held by a 429: the rest waits for the next round.
                    };
                    tokio::time::sleep_until(at.into()).await;
                    // A task woken late must not start right before one woken on time: the
                    // calls actually started are counted too.
                    while let Err(wait) = pacer.admit(Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                    if pacer.held() {
                        break;
                    }
                    run.last_start = Some(Instant::now());
                    let message = &mut run.messages[call.message];
                    let sent = match call.what {
                        // Best effort: the message itself tells them what they can do.
                        CallKind::Menu(menu) => {
                            match set_chat_commands(&bot, &market, &texts, run.chat, run.lang, menu).await {
                                Sent::RetryAfter(wait) => Sent::RetryAfter(wait),
                                _ => continue,
                            }
                        }
                        CallKind::Part(part) => {
                            let (sent, id) = deliver(&bot, ChatId(run.chat), part).await;
                            message.platform_id = id.or(message.platform_id);
                            sent
                        }
                    };
                    match sent {
                        Sent::Ok => message.done += 1,
                        other => {
                            if let Sent::RetryAfter(wait) = other {
                                pacer.hold(wait);
                            }
                            run.failure = Some((call.message, other));
                            break;
                        }
                    }
                }
                run
            });
        }
        while let Some(joined) = round.join_next().await {
            let Ok(run) = joined else {
                continue; // A panicked run: its messages stay pending and are tried again.
            };
            if let Some(last) = run.last_start {
                let next = last + chat_gap;
                let ready = chat_ready.entry(run.to.id.clone()).or_insert(next);
                *ready = (*ready).max(next);
            }
            shared.ops.sent(
                &market,
                ChannelKind::Telegram,
                run.messages.iter().map(|m| (m.done - m.start) as u64).sum(),
            );
            if let Some((_, failure)) = &run.failure {
                let code = match failure {
                    Sent::Ok => None,
                    Sent::RetryAfter(_) => Some("429"),
                    Sent::Unreachable(_) => Some("403"),
                    Sent::Refused(_) => Some("400"),
                    Sent::Failed(_) => Some("5xx"),
                    Sent::Network(_) => Some("network"),
                    Sent::Unavailable(_) => Some("5xx"),
                };
                if let Some(code) = code {
                    shared.ops.send_error(&market, ChannelKind::Telegram, code);
                }
            }
            for m in &run.messages {
                if m.done > m.start {
                    network_backoff = Duration::from_secs(1);
                    delivered.insert(m.id, m.done);
                    results.push((
                        m.id,
                        match (m.done >= m.total, m.platform_id) {
                            (true, Some(id)) => SendResult::SentAs(id.to_string()),
                            (true, None) => SendResult::Sent,
                            (false, _) => SendResult::Parts(m.done),
                        },
                    ));
                }
            }
            let Some((index, sent)) = run.failure else {
                continue;
            };
            let call = &run.messages[index];
            match sent {
                Sent::Ok => {}
                Sent::RetryAfter(wait) => {
                    tracing::warn!(market = %market, seconds = wait.as_secs(), "flood control (429): this bot pauses");
                    pause = Some(pause.map_or(wait, |p| p.max(wait)));
                    chat_ready.remove(&run.to.id);
                }
                Sent::Unreachable(reason) => {
                    tracing::info!(market = %market, chat = %run.to.id, %reason, "user unreachable; their messages parked");
                    let _ =
                        mark(&shared, call.id, Mark::Unreachable { market: market.clone(), to: run.to, reason }).await;
                }
                Sent::Refused(reason) => {
                    tracing::error!(market = %market, chat = %run.to.id, id = call.id, %reason, "Telegram refused the message; parked");
                    results.push((call.id, SendResult::Undeliverable(reason)));
                }
                Sent::Failed(reason) => {
                    let attempts = call.attempts + 1;
                    if attempts >= MAX_ATTEMPTS {
                        tracing::error!(market = %market, chat = %run.to.id, id = call.id, %reason, attempts, "send kept failing; parked");
                        results.push((call.id, SendResult::Undeliverable(format!("{attempts} attempts: {reason}"))));
                    } else {
                        tracing::warn!(market = %market, chat = %run.to.id, %reason, attempts, "send failed; will retry");
                        results.push((call.id, SendResult::Error(reason)));
                        chat_ready.insert(run.to.id.clone(), Instant::now() + backoff(attempts));
                    }
                }
                Sent::Network(reason) | Sent::Unavailable(reason) => {
                    tracing::warn!(market = %market, %reason, wait_secs = network_backoff.as_secs(), "Bot API unreachable; this bot waits");
                    pause = Some(pause.map_or(network_backoff, |p| p.max(network_backoff)));
                    network_failed = true;
                    chat_ready.remove(&run.to.id);
                }
            }
        }
        if network_failed {
            // Capped low: the API answers nothing while down, and the outbox should go soon after
            // it is back (no message's attempts are counted meanwhile).
            network_backoff = (network_backoff * 2).min(API_DOWN_MAX_WAIT);
        }
        if !results.is_empty() {
            let ids: Vec<i64> = results.iter().map(|(id, _)| *id).collect();
            match super::record(&shared, results).await {
                // Recorded: the store knows what went; forget the memory of it.
                Ok(()) => {
                    for id in ids {
                        delivered.remove(&id);
                    }
                }
                Err(e) => {
                    tracing::error!(market = %market, error = %e, "recording deliveries failed; will record again");
                }
            }
        }
        if let Some(wait) = pause {
            if stopping {
                return; // Shutting down: what is left stays in the outbox for the next start.
            }
            tokio::time::sleep(wait).await;
            continue;
        }
        if let Some(t) = soonest {
            let now = Instant::now();
            if t > now {
                if stopping {
                    // Shutting down: wait for what is rate-limited, but not for retries of
                    // failing messages (they stay pending for the next start).
                    if t - now > Duration::from_secs(2) {
                        return;
                    }
                    tokio::time::sleep(t - now).await;
                } else {
                    // New messages for another chat wake the sender early (and a notice missed
                    // while sending costs a quarter of a second at most).
                    let wait = (t - now).min(Duration::from_millis(250));
                    let _ = tokio::time::timeout(wait, queued).await;
                }
            }
        }
    }
}

/// A message in a round: how far it had got before the round, how far now, of how many calls.
struct InFlight {
    id: i64,
    attempts: u32,
    start: usize,
    done: usize,
    total: usize,
    /// The message id Telegram gave its last call.
    platform_id: Option<i32>,
}

/// One chat's part of a round: its messages, the calls to make on their slots, and how it went.
struct ChatRun {
    chat: i64,
    to: UserKey,
    lang: Lang,
    messages: Vec<InFlight>,
    calls: Vec<Call>,
    /// When its last call started.
    last_start: Option<Instant>,
    /// The call that did not go (which message, what happened); the chat's later calls wait.
    failure: Option<(usize, Sent)>,
}

struct Call {
    /// Index into the run's messages.
    message: usize,
    what: CallKind,
}

/// One bot's pace, shared by the runs of a round: when its next call may start, until when a
/// 429 holds all of them, and the calls that actually started lately.
///
/// Slots are handed out `1/per_bot` apart, but a task may wake late and start right before
/// the next one starts on time; so the starts themselves are counted too: at most the bot's
/// limit in any [`Pacer::window`]. Telegram counts calls as they arrive, and one call's trip
/// may be shorter than another's: the window is a little longer than the limit's second
/// ([`ARRIVAL_MARGIN`]), so the API never sees more than the limit in a second.
struct Pacer(std::sync::Mutex<PacerState>);

/// How much shorter one call's trip to the API may be than another's without the API seeing
/// more than the limit in one second.
const ARRIVAL_MARGIN: Duration = Duration::from_millis(50);

#[derive(Default)]
struct PacerState {
    next: Option<Instant>,
    held_until: Option<Instant>,
    /// When the latest calls started, oldest first (at most `per_window` of them).
    started: std::collections::VecDeque<Instant>,
    per_window: usize,
    window: Duration,
}

impl Pacer {
    fn new(per_bot: f64) -> Pacer {
        // The limit as whole calls in a window: 30 a second is 30 in a second; 0.5 a second is
        // one in two seconds.
        let per_window = (per_bot.floor() as usize).max(1);
        let window = Duration::from_secs_f64(per_window as f64 / per_bot) + ARRIVAL_MARGIN;
        Pacer(std::sync::Mutex::new(PacerState { per_window, window, ..PacerState::default() }))
    }

    /// Counts a call starting `now`, or says how long to wait: the window's oldest start must
    /// have left it.
    fn admit(&self, now: Instant) -> Result<(), Duration> {
        let Ok(mut p) = self.0.lock() else {
            return Ok(());
        };
        if p.started.len() >= p.per_window
            && let Some(oldest) = p.started.front().copied()
            && now < oldest + p.window
        {
            return Err(oldest + p.window - now);
        }
        if p.started.len() >= p.per_window {
            p.started.pop_front();
        }
        p.started.push_back(now);
        Ok(())
    }

    /// Takes the bot's next slot, no earlier than `not_before`; `None` while a 429 holds the bot.
    fn slot(&self, not_before: Instant, gap: Duration) -> Option<Instant> {
        let mut p = self.0.lock().ok()?;
        let now = Instant::now();
        if p.held_until.is_some_and(|h| h > now) {
            return None;
        }
        let at = p.next.map_or(now, |n| n.max(now)).max(not_before);
        p.next = Some(at + gap);
        Some(at)
    }

    fn held(&self) -> bool {
        self.0.lock().map_or(true, |p| p.held_until.is_some_and(|h| h > Instant::now()))
    }

    fn hold(&self, wait: Duration) {
        if let Ok(mut p) = self.0.lock() {
            let until = Instant::now() + wait;
            p.held_until = Some(p.held_until.map_or(until, |h| h.max(until)));
        }
    }
}

enum CallKind {
    /// The user's new command menu, before the message that brings it.
    Menu(CommandMenu),
    Part(Send),
}

/// A user key on Telegram.
pub fn telegram_user(chat: i64) -> UserKey {
    UserKey { channel: ChannelKind::Telegram, id: chat.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_menus_list_every_role_command() {
        let texts = crate::text::Texts::load(std::path::Path::new("dialogues")).expect("texts");
        let names = |menu| -> Vec<String> {
            command_list(&texts, "blimbing", Lang::Id, menu).into_iter().map(|c| c.command).collect()
        };
        let admin = names(CommandMenu { admin: true, ..CommandMenu::default() });
        for c in crate::conversation::ADMIN_COMMANDS {
            assert!(admin.iter().any(|a| a == c), "/{c} missing from the admin menu {admin:?}");
        }
        let city = names(CommandMenu { admin: true, city: true, ..CommandMenu::default() });
        for c in crate::conversation::CITY_ADMIN_COMMANDS {
            assert!(city.iter().any(|a| a == c), "/{c} missing from the city admin menu {city:?}");
            assert!(!admin.iter().any(|a| a == c), "/{c} is a city command, not in a market admin's menu");
        }
        assert!(names(CommandMenu { trader: true, ..CommandMenu::default() }).len() < 64, "Telegram's limit");
        assert!(names(CommandMenu { admin: true, trader: true, courier: true, city: true }).len() <= 100);
        for menu in [
            CommandMenu { admin: true, trader: true, courier: true, city: true },
            CommandMenu { admin: true, ..CommandMenu::default() },
            CommandMenu::default(),
        ] {
            let all = names(menu);
            let unique: std::collections::BTreeSet<&String> = all.iter().collect();
            assert_eq!(unique.len(), all.len(), "a command twice in {menu:?}: {all:?}");
        }
        let trader = names(CommandMenu { trader: true, ..CommandMenu::default() });
        for c in crate::conversation::TRADER_COMMANDS {
            assert!(trader.iter().any(|a| a == c), "/{c} missing from the trader menu {trader:?}");
        }
    }

    #[test]
    fn errors_are_sorted_into_retry_park_or_pause() {
        let api = |e: ApiError| classify(RequestError::Api(e));
        assert!(matches!(api(ApiError::BotBlocked), Sent::Unreachable(_)));
        assert!(matches!(api(ApiError::MessageIsTooLong), Sent::Refused(_)));
        assert!(matches!(api(ApiError::Unknown("Bad Request: can't parse entities".into())), Sent::Refused(_)));
        assert!(matches!(api(ApiError::Unknown("Internal Server Error".into())), Sent::Failed(_)));
        assert!(matches!(api(ApiError::Unknown("Timeout: restart".into())), Sent::Failed(_)));
        // The whole API down: its front answers 502 (JSON or nginx's page); the bot waits.
        assert!(matches!(api(ApiError::Unknown("Bad Gateway".into())), Sent::Unavailable(_)));
        assert!(matches!(api(ApiError::Unknown("Service Unavailable".into())), Sent::Unavailable(_)));
        let page = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n</html>";
        let invalid = |raw: &str| RequestError::InvalidJson {
            source: Arc::new(serde_json::from_str::<serde_json::Value>(raw).expect_err("not JSON")),
            raw: raw.into(),
        };
        assert!(matches!(classify(invalid(page)), Sent::Unavailable(_)));
        assert!(matches!(classify(invalid("{\"ok\":true,\"result\":")), Sent::Failed(_)), "a JSON answer cut short");
        assert_eq!(
            classify(RequestError::RetryAfter(teloxide::types::Seconds::from_seconds(7))),
            Sent::RetryAfter(Duration::from_secs(7))
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(matches!(classify(RequestError::Io(Arc::new(io))), Sent::Network(_)));
    }

    #[test]
    fn the_pacer_spaces_the_bots_calls_and_a_429_holds_them_all() {
        let pacer = Pacer::new(10.0);
        let gap = Duration::from_millis(100);
        let now = Instant::now();
        let first = pacer.slot(now, gap).expect("slot");
        let second = pacer.slot(now, gap).expect("slot");
        assert!(second >= first + gap, "two chats' calls a bot's gap apart");
        let later = pacer.slot(now + Duration::from_secs(1), gap).expect("slot");
        assert!(later >= now + Duration::from_secs(1), "and never before the chat's own turn");
        assert!(!pacer.held());
        pacer.hold(Duration::from_secs(5));
        pacer.hold(Duration::from_secs(1));
        assert!(pacer.held(), "a shorter 429 does not shorten a longer one");
        assert!(pacer.slot(now, gap).is_none(), "no call starts while the bot is held");
    }

    #[test]
    fn the_pacer_counts_the_calls_that_started_so_late_wakers_never_crowd_a_second() {
        let pacer = Pacer::new(3.0);
        let t = Instant::now();
        // Three calls woke late, all at once: they may start (three in the window)...
        for _ in 0..3 {
            assert_eq!(pacer.admit(t), Ok(()));
        }
        // ...but the fourth waits until the first has left the window (a second and a margin).
        let wait = pacer.admit(t + Duration::from_millis(500)).expect_err("a fourth call in one second");
        assert_eq!(wait, Duration::from_millis(500) + ARRIVAL_MARGIN);
        assert_eq!(pacer.admit(t + Duration::from_secs(1) + ARRIVAL_MARGIN), Ok(()));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(30), crate::runtime::MAX_BACKOFF);
        let total: Duration = (1..MAX_ATTEMPTS).map(backoff).sum();
        assert!(total >= Duration::from_secs(3600), "a message is retried for over an hour: {total:?}");
    }
}
