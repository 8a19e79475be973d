//! Wiring: opening the store (migrating and seeding it on first use), loading dialogues, and
//! building the engine. Later: pollers, webhook server, senders, timers and shutdown.

use crate::config::Config;
use crate::conversation::engine::{Clock, Engine};
use crate::domain::catalog::SeedData;
use crate::store::Store;
use crate::text::Texts;
use anyhow::Context;
use chrono::Utc;
use std::path::Path;
use std::sync::Arc;

/// Opens the database at `db` (seeding an empty one from the config's data folder) and returns an
/// engine over it.
pub fn open_engine(config: &Config, db: &Path, clock: Arc<dyn Clock>) -> anyhow::Result<Engine> {
    let mut store = Store::open(db).with_context(|| format!("opening database {}", db.display()))?;
    if !store.is_seeded()? {
        // The data folder if there is one (operators edit it); else the copy in the binary.
        let seed = if config.data_dir.exists() {
            SeedData::load(&config.data_dir).context("loading seed data")?
        } else {
            SeedData::builtin().context("loading the built-in seed data")?
        };
        store.seed(&seed).context("seeding the database")?;
        tracing::info!(db = %db.display(), markets = seed.markets.len(), "new database seeded");
    }
    let texts = Texts::load(&config.dialogues_dir).context("loading dialogues")?;
    Ok(Engine::new(store, Arc::new(texts), clock, config.default_language, config.policy.clone())?)
}

// ---------------------------------------------------------------------------------------------
// `pasar run`: every market's bot in one process.

use crate::channel::telegram::{self, Send};
use crate::channel::{ChannelKind, UserKey};
use crate::conversation::engine::SystemClock;
use crate::text::{Key, Lang};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use teloxide::payloads::{
    GetUpdatesSetters, SendMessageSetters, SendPhotoSetters, SetMyCommandsSetters, SetWebhookSetters,
};
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, InputFile, ReplyMarkup};
use teloxide::{ApiError, Bot, RequestError};
use tokio::sync::Notify;

/// What `pasar run` found to run.
#[derive(Debug, Clone, PartialEq)]
pub struct BotPlan {
    pub market: String,
    pub token_variable: String,
    pub token: Option<String>,
}

/// Which markets have a Telegram token in the environment.
pub fn telegram_plan(config: &Config) -> anyhow::Result<Vec<BotPlan>> {
    let seed = if config.data_dir.exists() { SeedData::load(&config.data_dir)? } else { SeedData::builtin()? };
    Ok(seed
        .markets
        .iter()
        .map(|m| {
            let var = telegram::token_variable(&m.slug);
            let token = std::env::var(&var).ok().filter(|t| !t.trim().is_empty());
            BotPlan { market: m.slug.clone(), token_variable: var, token }
        })
        .collect())
}

/// Shared between the pollers, the engine thread and the senders.
struct Shared {
    stop: AtomicBool,
    /// Pollers stored new updates.
    inbox: Notify,
    /// The engine queued messages.
    outbox: Notify,
}

/// Runs every market's bot that has a token until SIGINT/SIGTERM.
pub fn run(config: &Config, db: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run_async(config.clone(), db.to_path_buf()))
}

/// The environment variable holding the webhook secret token.
pub const WEBHOOK_SECRET_VARIABLE: &str = "PASAR_TELEGRAM_WEBHOOK_SECRET";

async fn run_async(config: Config, db: std::path::PathBuf) -> anyhow::Result<()> {
    let webhook = match config.telegram.mode {
        crate::config::TelegramMode::Polling => None,
        crate::config::TelegramMode::Webhook => {
            let secret = std::env::var(WEBHOOK_SECRET_VARIABLE).ok().filter(|s| !s.is_empty()).ok_or_else(|| {
                anyhow::anyhow!("telegram.mode = \"webhook\" needs {WEBHOOK_SECRET_VARIABLE} in the environment")
            })?;
            let public_url = config
                .telegram
                .public_url
                .clone()
                .ok_or_else(|| anyhow::anyhow!("telegram.mode = \"webhook\" needs telegram.public_url"))?;
            let listen = config.server_listen.clone().ok_or_else(|| {
                anyhow::anyhow!("telegram.mode = \"webhook\" needs telegram.listen or [server] listen")
            })?;
            Some((secret, public_url, listen))
        }
    };
    // Open (migrate, seed) once up front, so a broken database fails before any bot starts.
    let engine = open_engine(&config, &db, Arc::new(SystemClock))?;
    let texts = Arc::new(engine.texts().clone());
    let shared = Arc::new(Shared { stop: AtomicBool::new(false), inbox: Notify::new(), outbox: Notify::new() });
    let api_url = reqwest::Url::parse(&config.telegram.api_url)?;
    let mut tasks = Vec::new();
    let mut running = 0;
    let mut webhook_bots: HashMap<String, Bot> = HashMap::new();
    for plan in telegram_plan(&config)? {
        let Some(token) = plan.token else {
            tracing::info!(market = %plan.market, "no {} set: Telegram bot skipped", plan.token_variable);
            continue;
        };
        let bot = Bot::new(token).set_api_url(api_url.clone());
        match tokio::time::timeout(Duration::from_secs(30), bot.get_me()).await {
            Ok(Ok(me)) => {
                tracing::info!(market = %plan.market, bot = %me.username(), "Telegram bot running (polling)");
            }
            Ok(Err(e)) => {
                tracing::error!(market = %plan.market, error = %e, "getMe failed: this market's Telegram bot does not run");
                continue;
            }
            Err(_) => {
                tracing::error!(market = %plan.market, "getMe timed out: this market's Telegram bot does not run");
                continue;
            }
        }
        set_commands(&bot, &plan.market, &texts).await;
        running += 1;
        let send_store = Arc::new(Mutex::new(Store::open(&db)?));
        match &webhook {
            None => {
                let poll_store = Arc::new(Mutex::new(Store::open(&db)?));
                tasks.push(tokio::spawn(poll(
                    bot.clone(),
                    plan.market.clone(),
                    poll_store,
                    Arc::clone(&shared),
                    config.telegram.poll_timeout_secs,
                )));
            }
            Some((secret, public_url, _)) => {
                let url =
                    reqwest::Url::parse(&format!("{}/telegram/{}", public_url.trim_end_matches('/'), plan.market))?;
                if let Err(e) = bot.set_webhook(url).secret_token(secret.clone()).await {
                    tracing::error!(market = %plan.market, error = %e, "setWebhook failed: this market's Telegram bot does not run");
                    continue;
                }
                webhook_bots.insert(plan.market.clone(), bot.clone());
            }
        }
        tasks.push(tokio::spawn(send(
            bot,
            plan.market.clone(),
            send_store,
            Arc::clone(&shared),
            Arc::clone(&texts),
            config.default_language,
            config.telegram.per_chat_per_sec,
            config.telegram.per_bot_per_sec,
        )));
    }
    if running == 0 {
        tracing::warn!("no Telegram bot is running: set PASAR_<MARKET>_TELEGRAM_TOKEN (see README)");
    }
    let mut server = None;
    if let Some((secret, _, listen)) = &webhook {
        let state = Arc::new(WebhookState {
            secret: secret.clone(),
            bots: webhook_bots,
            store: Mutex::new(Store::open(&db)?),
            shared: Arc::clone(&shared),
            handler: telegram::handler(),
        });
        let listener = tokio::net::TcpListener::bind(listen).await?;
        tracing::info!(listen = %listener.local_addr()?, "webhook server listening");
        let app =
            axum::Router::new().route("/telegram/{market}", axum::routing::post(telegram_webhook)).with_state(state);
        let stop = Arc::clone(&shared);
        server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(async move { shared_stopped(&stop).await }).await;
        }));
    }
    let engine_shared = Arc::clone(&shared);
    let engine_thread =
        std::thread::Builder::new().name("engine".into()).spawn(move || drive_engine(engine, engine_shared))?;
    shutdown_signal().await;
    tracing::info!("shutting down: no new updates; finishing what is in flight");
    shared.stop.store(true, Ordering::SeqCst);
    shared.inbox.notify_waiters();
    shared.outbox.notify_waiters();
    if let Some(s) = server {
        let _ = tokio::time::timeout(Duration::from_secs(10), s).await;
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let _ = engine_thread.join();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The engine's own thread: handles stored updates and due timers, wakes the senders.
fn drive_engine(mut engine: crate::conversation::engine::Engine, shared: Arc<Shared>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build();
    let Ok(rt) = rt else { return };
    loop {
        match engine.process_pending() {
            Ok(_) => shared.outbox.notify_waiters(),
            Err(e) => tracing::error!(error = %e, "engine: store error; retrying"),
        }
        if shared.stop.load(Ordering::SeqCst) {
            // One more pass for updates stored just before the stop.
            let _ = engine.process_pending();
            shared.outbox.notify_waiters();
            return;
        }
        rt.block_on(async {
            let _ = tokio::time::timeout(Duration::from_millis(500), shared.inbox.notified()).await;
        });
    }
}

/// Long-polls one bot. Each batch of updates is written to the inbox before the next
/// `getUpdates` (whose offset acknowledges them) is sent: a crash loses none, a redelivery is
/// ignored by the inbox.
async fn poll(bot: Bot, market: String, store: Arc<Mutex<Store>>, shared: Arc<Shared>, timeout_secs: u32) {
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
                u
            }
            Err(e) => {
                tracing::warn!(market = %market, error = %e, "getUpdates failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
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
        let stored = {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || match store.lock() {
                Ok(mut s) => s.ingest(&events).map_err(|e| e.to_string()),
                Err(_) => Err("store lock poisoned".to_string()),
            })
            .await
        };
        match stored {
            Ok(Ok(_)) => {
                offset = i32::try_from(u64::from(last) + 1).ok();
                shared.inbox.notify_waiters();
                for id in callbacks {
                    // Stops the spinner on the pressed button; the answer comes as a message.
                    let _ = bot.answer_callback_query(teloxide::types::CallbackQueryId(id)).await;
                }
            }
            other => {
                // Not acknowledged: the same updates come again.
                tracing::error!(market = %market, result = ?other.map(|r| r.err()), "storing updates failed; not acknowledging them");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

async fn shared_stopped(shared: &Shared) {
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), shared.inbox.notified()).await;
    }
}

/// The shopper's commands in the bot's menu, in Indonesian (the default) and English.
async fn set_commands(bot: &Bot, market: &str, texts: &crate::text::Texts) {
    use teloxide::types::BotCommand;
    let list = |lang: Lang| {
        [
            ("start", Key::CmdStart),
            ("cari", Key::CmdCari),
            ("keranjang", Key::CmdKeranjang),
            ("pesanan", Key::CmdPesanan),
            ("batal", Key::CmdBatal),
            ("bahasa", Key::CmdBahasa),
            ("bantuan", Key::CmdBantuan),
        ]
        .into_iter()
        .map(|(c, k)| BotCommand::new(c, texts.get(market, lang, k)))
        .collect::<Vec<_>>()
    };
    if let Err(e) = bot.set_my_commands(list(Lang::Id)).await {
        tracing::warn!(market, error = %e, "setMyCommands failed");
    }
    if let Err(e) = bot.set_my_commands(list(Lang::En)).language_code("en").await {
        tracing::warn!(market, error = %e, "setMyCommands (en) failed");
    }
}

/// What the webhook handler needs.
struct WebhookState {
    secret: String,
    bots: HashMap<String, Bot>,
    store: Mutex<Store>,
    shared: Arc<Shared>,
    handler:
        teloxide::dptree::Handler<'static, Option<telegram::Converted>, teloxide::dispatching::DpHandlerDescription>,
}

/// `POST /telegram/<market>`: the secret header is compared in constant time (401 and nothing
/// stored on a mismatch); a body that is not an update is 400; the update is in the inbox before
/// the 200, so Telegram's redelivery after a crash is harmless.
async fn telegram_webhook(
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
    let stored = {
        let state = Arc::clone(&state);
        tokio::task::spawn_blocking(move || match state.store.lock() {
            Ok(mut s) => s.ingest(std::slice::from_ref(&event)).map_err(|e| e.to_string()),
            Err(_) => Err("store lock poisoned".to_string()),
        })
        .await
    };
    match stored {
        Ok(Ok(_)) => {
            state.shared.inbox.notify_waiters();
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
enum Sent {
    Ok,
    /// Flood control: wait this long before this bot sends anything.
    RetryAfter(Duration),
    /// The user blocked the bot or is gone: never deliverable.
    Unreachable(String),
    /// Network or server trouble: try again later.
    Failed(String),
}

fn classify(e: RequestError) -> Sent {
    match e {
        RequestError::RetryAfter(s) => Sent::RetryAfter(s.duration()),
        RequestError::Api(
            ApiError::BotBlocked | ApiError::UserDeactivated | ApiError::ChatNotFound | ApiError::BotKicked,
        ) => Sent::Unreachable(e.to_string()),
        other => Sent::Failed(other.to_string()),
    }
}

async fn deliver(bot: &Bot, chat: ChatId, sends: Vec<Send>) -> Sent {
    for s in sends {
        let result = match s {
            Send::Text { text, keyboard } => {
                let mut r = bot.send_message(chat, text);
                if let Some(k) = keyboard {
                    r = r.reply_markup(ReplyMarkup::InlineKeyboard(k));
                }
                r.await.map(|_| ())
            }
            Send::Photo { url, caption, keyboard } => match reqwest::Url::parse(&url) {
                Ok(u) => {
                    let mut r = bot.send_photo(chat, InputFile::url(u)).caption(caption);
                    if let Some(k) = keyboard {
                        r = r.reply_markup(ReplyMarkup::InlineKeyboard(k));
                    }
                    r.await.map(|_| ())
                }
                Err(_) => bot.send_message(chat, caption).await.map(|_| ()),
            },
            Send::Request { text, keyboard } => {
                bot.send_message(chat, text).reply_markup(ReplyMarkup::Keyboard(keyboard)).await.map(|_| ())
            }
        };
        if let Err(e) = result {
            return classify(e);
        }
    }
    Sent::Ok
}

/// Drains one bot's outbox in order per chat, within Telegram's limits: at most
/// `per_chat` messages a second to one chat and `per_bot` a second in all; a 429 pauses this bot
/// only; network and server errors are retried with a capped backoff; a user who blocked the
/// bot is marked unreachable.
#[allow(clippy::too_many_arguments)]
async fn send(
    bot: Bot,
    market: String,
    store: Arc<Mutex<Store>>,
    shared: Arc<Shared>,
    texts: Arc<crate::text::Texts>,
    default_lang: Lang,
    per_chat: f64,
    per_bot: f64,
) {
    let chat_gap = Duration::from_secs_f64(1.0 / per_chat);
    let bot_gap = Duration::from_secs_f64(1.0 / per_bot);
    let mut last_to_chat: HashMap<String, Instant> = HashMap::new();
    let mut last_any = Instant::now() - bot_gap;
    let mut backoff = Duration::from_millis(500);
    loop {
        let stopping = shared.stop.load(Ordering::SeqCst);
        let pending = {
            let store = Arc::clone(&store);
            let market = market.clone();
            tokio::task::spawn_blocking(move || {
                let guard = store.lock().map_err(|_| "store lock poisoned".to_string())?;
                let msgs = guard.pending_outbox_of(ChannelKind::Telegram, &market, 200).map_err(|e| e.to_string())?;
                let mut langs = HashMap::new();
                for m in &msgs {
                    if !langs.contains_key(&m.to.id) {
                        let lang = guard.language_of(&m.to).ok().flatten();
                        langs.insert(m.to.id.clone(), lang);
                    }
                }
                Ok::<_, String>((msgs, langs))
            })
            .await
        };
        let (pending, langs) = match pending {
            Ok(Ok(p)) => p,
            other => {
                tracing::error!(market = %market, result = ?other.map(|r| r.err()), "reading the outbox failed");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        if pending.is_empty() {
            if stopping {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(250), shared.outbox.notified()).await;
            continue;
        }
        let mut held: Vec<String> = Vec::new(); // chats whose next message must wait (order per chat)
        let mut soonest: Option<Instant> = None;
        for m in pending {
            if held.contains(&m.to.id) {
                continue;
            }
            let now = Instant::now();
            if let Some(t) = last_to_chat.get(&m.to.id)
                && now < *t + chat_gap
            {
                held.push(m.to.id.clone());
                let ready = *t + chat_gap;
                soonest = Some(soonest.map_or(ready, |s| s.min(ready)));
                continue;
            }
            if now < last_any + bot_gap {
                tokio::time::sleep(last_any + bot_gap - now).await;
            }
            let Ok(chat) = m.to.id.parse::<i64>() else {
                let _ = mark(&store, m.id, Mark::Undeliverable("not a Telegram chat id".into())).await;
                continue;
            };
            let lang = langs.get(&m.to.id).copied().flatten().unwrap_or(default_lang);
            let request_label = match m.message.request {
                Some(crate::channel::Request::Contact) => texts.get(&market, lang, Key::TgShareContact),
                _ => texts.get(&market, lang, Key::TgShareLocation),
            };
            let hint = texts.get(&market, lang, Key::TgRequestHint);
            let sends = telegram::render(&m.message, request_label, hint);
            last_any = Instant::now();
            match deliver(&bot, ChatId(chat), sends).await {
                Sent::Ok => {
                    last_to_chat.insert(m.to.id.clone(), Instant::now());
                    backoff = Duration::from_millis(500);
                    let _ = mark(&store, m.id, Mark::Sent).await;
                }
                Sent::RetryAfter(wait) => {
                    tracing::warn!(market = %market, seconds = wait.as_secs(), "flood control (429): this bot pauses");
                    tokio::time::sleep(wait).await;
                    break;
                }
                Sent::Unreachable(reason) => {
                    tracing::info!(market = %market, chat = %m.to.id, %reason, "user unreachable; message parked");
                    let _ = mark(&store, m.id, Mark::Undeliverable(reason)).await;
                }
                Sent::Failed(reason) => {
                    tracing::warn!(market = %market, chat = %m.to.id, %reason, "send failed; will retry");
                    let _ = mark(&store, m.id, Mark::Error(reason)).await;
                    held.push(m.to.id.clone());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        if let Some(t) = soonest {
            let now = Instant::now();
            if t > now {
                tokio::time::sleep(t - now).await;
            }
        }
        if stopping && held.is_empty() {
            // One more round picks up anything queued meanwhile; then stop.
            continue;
        }
    }
}

enum Mark {
    Sent,
    Error(String),
    Undeliverable(String),
}

async fn mark(store: &Arc<Mutex<Store>>, id: i64, how: Mark) -> Result<(), String> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        let mut guard = store.lock().map_err(|_| "store lock poisoned".to_string())?;
        let r = match how {
            Mark::Sent => guard.mark_sent(id, Utc::now()),
            Mark::Error(e) => guard.record_send_error(id, &e),
            Mark::Undeliverable(e) => guard.mark_undeliverable(id, &e),
        };
        r.map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// A user key on Telegram.
pub fn telegram_user(chat: i64) -> UserKey {
    UserKey { channel: ChannelKind::Telegram, id: chat.to_string() }
}
