//! Wiring: opening the store (migrating and seeding it on first use), loading dialogues and
//! building the engine; and `pasar run`: every market's bots in one process, with the engine
//! thread, the one HTTP server, graceful shutdown, and each channel's pollers and senders in its
//! own module (`runtime/telegram.rs`).

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

use crate::channel::UserKey;
use crate::conversation::engine::SystemClock;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use telegram::{WebhookState, poll, send, set_commands, set_role_menus, telegram_role_holders, telegram_webhook};
use teloxide::Bot;
use teloxide::payloads::SetWebhookSetters;
use teloxide::prelude::Requester;
use tokio::sync::Notify;

mod telegram;
mod whatsapp;
pub use telegram::{BotPlan, telegram_plan, telegram_user};
pub use whatsapp::{WhatsAppPlan, whatsapp_plan};

/// Failed attempts (server errors) after which a message is parked as failed: with the capped
/// backoff below that is more than an hour of retrying.
pub(crate) const MAX_ATTEMPTS: u32 = 21;
/// Longest wait between two attempts at one message, and between two tries to reach the API.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The wait before the next attempt at a message that failed `attempts` times: 1 s, 2 s, 4 s...
pub(crate) fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

/// What a sender needs to know of a recipient: their language and when they last wrote.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Recipient {
    pub(crate) lang: Option<crate::text::Lang>,
    pub(crate) last_inbound: Option<chrono::DateTime<Utc>>,
}

/// The head of each chat's queue for one market on one channel, with what the sender needs to
/// know of each recipient; read off the async threads.
pub(crate) async fn read_heads(
    store: &Arc<Mutex<Store>>,
    channel: crate::channel::ChannelKind,
    market: &str,
) -> Result<(Vec<crate::store::OutboxMessage>, HashMap<String, Recipient>), String> {
    let store = Arc::clone(store);
    let market = market.to_string();
    tokio::task::spawn_blocking(move || {
        let guard = store.lock().map_err(|_| "store lock poisoned".to_string())?;
        let msgs = guard.outbox_heads_of(channel, &market, 1000).map_err(|e| e.to_string())?;
        let mut recipients = HashMap::new();
        for m in &msgs {
            if !recipients.contains_key(&m.to.id) {
                let lang = guard.language_of(&m.to).map_err(|e| e.to_string())?;
                let last_inbound = guard.last_inbound(&market, &m.to).map_err(|e| e.to_string())?;
                recipients.insert(m.to.id.clone(), Recipient { lang, last_inbound });
            }
        }
        Ok((msgs, recipients))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Shared between the pollers, the engine thread and the senders.
pub(crate) struct Shared {
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
    // Pollers, senders and webhook handlers share one connection: SQLite takes one writer at a
    // time anyway, and a connection each only multiplies the waiting (the engine has its own).
    let io_store = Arc::new(Mutex::new(Store::open_companion(&db)?));
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
        let send_store = Arc::clone(&io_store);
        let holders = match send_store.lock() {
            Ok(s) => telegram_role_holders(&s, &config, &plan.market)?,
            Err(_) => Vec::new(),
        };
        tasks.push(tokio::spawn(set_role_menus(
            bot.clone(),
            plan.market.clone(),
            holders,
            Arc::clone(&texts),
            config.default_language,
        )));
        match &webhook {
            None => {
                let poll_store = Arc::clone(&io_store);
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
    // The one HTTP server: Telegram's webhook (in webhook mode) and WhatsApp's.
    let mut app = axum::Router::new();
    let mut listen = None;
    if let Some((secret, _, address)) = &webhook {
        let state = Arc::new(WebhookState {
            secret: secret.clone(),
            bots: webhook_bots,
            store: Arc::clone(&io_store),
            shared: Arc::clone(&shared),
            handler: crate::channel::telegram::handler(),
        });
        app = app.merge(
            axum::Router::new().route("/telegram/{market}", axum::routing::post(telegram_webhook)).with_state(state),
        );
        listen = Some(address.clone());
    }
    let markets: Vec<String> = engine.catalog().markets().iter().map(|m| m.slug.clone()).collect();
    match whatsapp_plan(&config, &markets) {
        Ok(None) => tracing::info!("no market has a whatsapp_phone_number_id: WhatsApp is off"),
        Err(e) => tracing::error!(error = %e, "WhatsApp does not run"),
        Ok(Some(plan)) => {
            let client = reqwest::Client::builder().timeout(config.whatsapp.timeout).build()?;
            for (phone_number_id, market) in &plan.numbers {
                tracing::info!(market = %market, phone_number_id = %phone_number_id, "WhatsApp number running");
                tasks.push(tokio::spawn(whatsapp::send(whatsapp::Sender {
                    client: client.clone(),
                    market: market.clone(),
                    phone_number_id: phone_number_id.clone(),
                    graph_url: config.whatsapp.graph_url.clone(),
                    access_token: plan.access_token.clone(),
                    store: Arc::clone(&io_store),
                    shared: Arc::clone(&shared),
                    texts: Arc::clone(&texts),
                    default_lang: config.default_language,
                    per_number_per_sec: config.whatsapp.per_number_per_sec,
                    per_user_interval: config.whatsapp.per_user_interval,
                    per_user_burst: config.whatsapp.per_user_burst,
                    templates: config.whatsapp.templates.clone(),
                    config_admins: config.policy.config_admins(market).cloned().collect(),
                })));
            }
            let state =
                Arc::new(whatsapp::WebhookState { plan, store: Arc::clone(&io_store), shared: Arc::clone(&shared) });
            app = app.merge(whatsapp::routes(state));
            listen = listen.or_else(|| config.server_listen.clone());
        }
    }
    let mut server = None;
    if let Some(listen) = listen {
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        tracing::info!(listen = %listener.local_addr()?, "webhook server listening");
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
        let stop = rt.block_on(async {
            // Listening before looking: an update stored while the engine works still wakes it.
            let stored = shared.inbox.notified();
            tokio::pin!(stored);
            stored.as_mut().enable();
            match engine.process_pending() {
                Ok(_) => shared.outbox.notify_waiters(),
                Err(e) => tracing::error!(error = %e, "engine: store error; retrying"),
            }
            if shared.stop.load(Ordering::SeqCst) {
                return true;
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), stored).await;
            false
        });
        if stop {
            // One more pass for updates stored just before the stop.
            let _ = engine.process_pending();
            shared.outbox.notify_waiters();
            return;
        }
    }
}

/// Long-polls one bot. Each batch of updates is written to the inbox before the next
/// `getUpdates` (whose offset acknowledges them) is sent: a crash loses none, a redelivery is
/// ignored by the inbox.
pub(crate) async fn shared_stopped(shared: &Shared) {
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), shared.inbox.notified()).await;
    }
}

/// The commands a menu lists, described in one language. Traders' `/pesanan` lists their
/// stall's open orders, so it is described as such.
pub(crate) enum Mark {
    Sent,
    /// Sent, with the platform's id for it (a WhatsApp wamid).
    SentAs(String),
    Unreachable {
        market: String,
        to: UserKey,
        reason: String,
    },
    Parts(usize),
    Error(String),
    Undeliverable(String),
}

pub(crate) async fn mark(store: &Arc<Mutex<Store>>, id: i64, how: Mark) -> Result<(), String> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        let mut guard = store.lock().map_err(|_| "store lock poisoned".to_string())?;
        let r = match how {
            Mark::Sent => guard.mark_sent(id, Utc::now()),
            Mark::SentAs(platform_id) => guard.mark_sent_as(id, &platform_id, Utc::now()),
            Mark::Unreachable { market, to, reason } => guard.mark_unreachable(&market, &to, &reason, Utc::now()),
            Mark::Parts(n) => guard.record_parts_sent(id, n),
            Mark::Error(e) => guard.record_send_error(id, &e),
            Mark::Undeliverable(e) => guard.mark_undeliverable(id, &e),
        };
        r.map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}
