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
    let mut engine = Engine::new(store, Arc::new(texts), clock, config.default_language, config.policy.clone())?;
    engine.set_backup_dir(backup_dir(config, db));
    Ok(engine)
}

/// The catalogue for a command-line tool: the database's when it exists (admins' changes
/// included), else the seed data read into a database in memory (nothing is written).
pub fn tool_catalog(config: &Config, db: Option<&Path>) -> anyhow::Result<crate::domain::catalog::Catalog> {
    let today = crate::domain::slot::local(chrono::Utc::now()).date_naive();
    if let Some(db) = db.filter(|d| d.exists()) {
        let store = Store::open(db).with_context(|| format!("opening database {}", db.display()))?;
        return Ok(store.load_catalog(today)?);
    }
    let mut store = Store::open(Path::new(":memory:")).context("a database in memory")?;
    let seed = if config.data_dir.exists() {
        SeedData::load(&config.data_dir).context("loading seed data")?
    } else {
        SeedData::builtin().context("loading the built-in seed data")?
    };
    store.seed(&seed).context("seeding the database in memory")?;
    Ok(store.load_catalog(today)?)
}

/// The backup folder: `[backup] dir`, relative to the database's folder unless absolute.
pub fn backup_dir(config: &Config, db: &Path) -> std::path::PathBuf {
    if config.backup_dir.is_absolute() {
        return config.backup_dir.clone();
    }
    db.parent().unwrap_or(Path::new(".")).join(&config.backup_dir)
}

/// Every environment variable holding a secret that `pasar run` reads, for these markets (what
/// `deploy/pasar.env.example` must list).
pub fn secret_variables(markets: &[String]) -> Vec<String> {
    let mut names: Vec<String> = markets.iter().map(|m| crate::channel::telegram::token_variable(m)).collect();
    names.push(WEBHOOK_SECRET_VARIABLE.to_string());
    for (name, _) in [whatsapp::ACCESS_TOKEN_VARIABLE, whatsapp::APP_SECRET_VARIABLE, whatsapp::VERIFY_TOKEN_VARIABLE] {
        names.push(name.to_string());
    }
    names.push(crate::integration::vendor::KEY_VARIABLE.to_string());
    names.push(crate::integration::vendor::SECRET_VARIABLE.to_string());
    names.push(crate::integration::bank::SERVER_KEY_VARIABLE.to_string());
    names.push(crate::config::INVITE_SECRET_VARIABLE.to_string());
    names
}

/// How long `pasar run` gives itself to stop after SIGTERM, for every task together: below the
/// systemd unit's `TimeoutStopSec` (30 s), so that systemd never has to kill it.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

/// Deletes the backups (`pasar-*.db` in the backup folder) older than `[backup] keep_days`:
/// a backup must not keep for long what a purge removed. Returns the files deleted.
pub fn prune_backups(config: &Config, db: &Path) -> anyhow::Result<usize> {
    let dir = backup_dir(config, db);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(0);
    };
    let keep = Duration::from_secs(u64::from(config.backup_keep_days) * 86_400);
    let mut deleted = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if !(name.starts_with("pasar-") && name.ends_with(".db")) {
            continue;
        }
        let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
        if age > keep {
            std::fs::remove_file(entry.path())?;
            deleted += 1;
        }
    }
    Ok(deleted)
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
use tokio::sync::{Notify, oneshot};

mod bank;
mod http;
mod ops;
mod telegram;
mod vendor;
mod whatsapp;
pub use bank::{BankPlan, Charged, Midtrans, PaymentProvider, bank_plan};
pub use telegram::{BotPlan, telegram_plan, telegram_user};
pub use vendor::{VendorPlan, vendor_plan};
pub use whatsapp::{WhatsAppPlan, whatsapp_plan};

/// Failed attempts (server errors) after which a message is parked as failed: with the capped
/// backoff below that is more than an hour of retrying.
pub(crate) const MAX_ATTEMPTS: u32 = 21;
/// Longest wait between two attempts at one message, and between two tries to reach the API.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Longest wait between two tries to reach an API that is down (unreachable, or its front
/// answering 502/503/504 or an error page; for WhatsApp, Meta's "service unavailable" too), for
/// Telegram's pollers and senders and WhatsApp's senders: a try costs the API nothing, and the
/// bots come back at most this long (plus the try itself) after it does. `pasar loadtest
/// outage` checks recovery within 64 s of a 2-minute outage of both.
pub(crate) const API_DOWN_MAX_WAIT: Duration = Duration::from_secs(16);

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

/// What a sender reads at the start of a round: the head of each chat's queue, with what it
/// needs to know of each recipient.
pub(crate) type Heads = (Vec<crate::store::OutboxMessage>, HashMap<String, Recipient>);

/// Store work the engine thread does for the pollers and senders on its own connection: one
/// connection for everything keeps SQLite's page cache warm, and the writes of a pass (every
/// poller's updates, every sender's results) share one transaction and one commit.
pub(crate) enum StoreJob {
    /// New updates for the inbox; answered once they are committed (the poller acknowledges
    /// them to Telegram only then).
    Ingest(Vec<crate::channel::InboundEvent>, oneshot::Sender<Result<usize, String>>),
    /// A sender's round: what became of each call.
    Record(Vec<(i64, crate::store::SendResult)>, oneshot::Sender<Result<(), String>>),
    /// One message's fate, on its own.
    Mark(i64, Mark, oneshot::Sender<Result<(), String>>),
    /// The heads of one market's queues on one channel (so many messages of each chat), read
    /// after the pass's processing.
    Heads(HeadsRequest),
}

/// Hands a job to the engine thread and waits for its answer.
async fn store_job<T>(
    shared: &Shared,
    job: impl FnOnce(oneshot::Sender<Result<T, String>>) -> StoreJob,
) -> Result<T, String> {
    let (done, answer) = oneshot::channel();
    shared.jobs.send(job(done)).map_err(|_| "the engine thread has stopped".to_string())?;
    answer.await.map_err(|_| "the engine thread has stopped".to_string())?
}

/// Stores updates in the inbox; `Ok` once they are committed.
pub(crate) async fn ingest(shared: &Shared, events: Vec<crate::channel::InboundEvent>) -> Result<usize, String> {
    store_job(shared, |done| StoreJob::Ingest(events, done)).await
}

/// The first `per_chat` messages of each chat's queue for one market on one channel.
pub(crate) async fn read_heads(
    shared: &Shared,
    channel: crate::channel::ChannelKind,
    market: &str,
    per_chat: usize,
    bulk: usize,
) -> Result<Heads, String> {
    let market = market.to_string();
    store_job(shared, |done| StoreJob::Heads(HeadsRequest { channel, market, per_chat, bulk, done })).await
}

/// How a sender's round starts.
pub(crate) enum Round {
    /// These messages are next.
    Send(Heads),
    /// Nothing to send yet (or the store could not be read): look again.
    Again,
    /// Shutting down and nothing is left.
    Done,
}

/// Reads the next round's messages (broadcast messages last, at most `bulk` of them: about a
/// second's worth for the sender, so that its round stays short); with none, waits for new ones
/// (a quarter of a second at most) or ends the sender when stopping.
pub(crate) async fn start_round(
    shared: &Shared,
    channel: crate::channel::ChannelKind,
    market: &str,
    per_chat: usize,
    bulk: usize,
    queued: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
) -> Round {
    let stopping = shared.stop.load(Ordering::SeqCst);
    match read_heads(shared, channel, market, per_chat, bulk).await {
        Ok(heads) if !heads.0.is_empty() => Round::Send(heads),
        Ok(_) if stopping => Round::Done,
        Ok(_) => {
            // The engine rings the bell for every message it queues (and, at its timer pass,
            // for rows any other process queued), and the bell was listened for before this
            // read: the timeout is only a safety net, long enough not to poll an idle store.
            let _ = tokio::time::timeout(IDLE_LOOK, queued).await;
            Round::Again
        }
        Err(error) => {
            tracing::error!(market = %market, %error, "reading the outbox failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
            Round::Again
        }
    }
}

/// Records a sender's round.
pub(crate) async fn record(shared: &Shared, results: Vec<(i64, crate::store::SendResult)>) -> Result<(), String> {
    store_job(shared, |done| StoreJob::Record(results, done)).await
}

/// Shared between the pollers, the engine thread and the senders.
pub(crate) struct Shared {
    stop: AtomicBool,
    /// Pollers stored new updates.
    inbox: Notify,
    /// Rung once, when `stop` is set (see [`shared_stopped`]).
    halt: Notify,
    /// The engine queued messages (wakes the vendor and bank drains, and on shutdown, after
    /// deadlines and the like, every sender).
    outbox: Notify,
    /// Each sender's own bell, by channel and market: after a batch the engine rings only the
    /// senders whose markets got new messages (ringing all of them made every sender read the
    /// store after every batch).
    bells: Mutex<HashMap<(crate::channel::ChannelKind, String), Arc<Notify>>>,
    /// Store work for the engine thread.
    jobs: tokio::sync::mpsc::UnboundedSender<StoreJob>,
    /// Everything else has stopped: the engine thread finishes and exits.
    engine_stop: AtomicBool,
    /// The engine thread ended before it was told to (a panic): the process stops.
    engine_failed: AtomicBool,
    /// Metrics and health for `/metrics` and `/healthz`.
    ops: Arc<ops::Ops>,
    /// The webhooks' turns at their store connection (see [`on_io_store`]).
    io_turn: Arc<tokio::sync::Semaphore>,
    /// WhatsApp menus being sent, or sent and not recorded yet, by (market, user): a typed
    /// number answering one is read against it (the user can be quicker than Meta's answer to
    /// the call, and than the sender's round, whose outcomes are written when its slowest call
    /// returns).
    wa_menus: Mutex<HashMap<(String, String), (i64, crate::channel::Outbound)>>,
}

impl Shared {
    /// Sets `stop` and wakes everything waiting in [`shared_stopped`].
    fn halt_all(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.halt.notify_waiters();
    }

    /// The bell of one market's sender on one channel.
    pub(crate) fn bell(&self, channel: crate::channel::ChannelKind, market: &str) -> Arc<Notify> {
        let mut bells = self.bells.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(bells.entry((channel, market.to_string())).or_default())
    }

    /// Wakes the senders of these channels and markets, and the drains.
    fn ring(&self, places: &[(crate::channel::ChannelKind, String)]) {
        {
            let bells = self.bells.lock().unwrap_or_else(|p| p.into_inner());
            for place in places {
                if let Some(bell) = bells.get(place) {
                    bell.notify_waiters();
                }
            }
        }
        self.outbox.notify_waiters();
    }

    /// Wakes every sender and the drains.
    pub(crate) fn ring_all(&self) {
        {
            let bells = self.bells.lock().unwrap_or_else(|p| p.into_inner());
            for bell in bells.values() {
                bell.notify_waiters();
            }
        }
        self.outbox.notify_waiters();
    }
}

/// Runs every market's bot that has a token until SIGINT/SIGTERM.
pub fn run(config: &Config, db: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run_async(config.clone(), db.to_path_buf()))
}

/// The environment variable holding the webhook secret token.
pub const WEBHOOK_SECRET_VARIABLE: &str = "PASAR_TELEGRAM_WEBHOOK_SECRET";

async fn run_async(config: Config, db: std::path::PathBuf) -> anyhow::Result<()> {
    if config.policy.payment.samples {
        tracing::warn!(
            "payments use the SAMPLE QRIS merchant and bank account (no [payment] data in the config): fine for trying it out, never for real money"
        );
    }
    if config.policy.invite_secret.is_none() {
        tracing::warn!(
            "{} is not set: invite codes are keyed with a secret kept in the database itself, so anyone with a copy of the database (a backup) can make valid codes; set it in the environment (deploy/pasar.env.example)",
            crate::config::INVITE_SECRET_VARIABLE
        );
    }
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
    let mut engine = open_engine(&config, &db, Arc::new(SystemClock))?;
    engine.make_backups_in_background();
    let ops = Arc::new(ops::Ops::new());
    let observer = Arc::clone(&ops);
    engine.observe_steps(Arc::new(move |market, channel, took| observer.stepped(market, channel, took)));
    let texts = Arc::new(engine.texts().clone());
    let (jobs, job_queue) = tokio::sync::mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        inbox: Notify::new(),
        halt: Notify::new(),
        outbox: Notify::new(),
        bells: Mutex::new(HashMap::new()),
        jobs,
        engine_stop: AtomicBool::new(false),
        engine_failed: AtomicBool::new(false),
        ops: Arc::clone(&ops),
        io_turn: Arc::new(tokio::sync::Semaphore::new(WEBHOOK_TURNS)),
        wa_menus: Mutex::new(HashMap::new()),
    });
    let api_url = reqwest::Url::parse(&config.telegram.api_url)?;
    // The pollers' and senders' store work runs on the engine thread (`StoreJob`); the webhook
    // handlers, which answer the platform as soon as an update is stored and must not wait for
    // an engine pass, share this second connection.
    let io_store = Arc::new(Mutex::new(Store::open_companion(&db)?));
    // Pollers, senders and drains: stopped together, within one deadline (see below).
    let mut tasks = tokio::task::JoinSet::new();
    let mut running = 0;
    let mut webhook_bots: HashMap<String, Bot> = HashMap::new();
    // The pollers' own client: teloxide's default one gives up on any request after 17 s (it
    // does not stretch that for getUpdates' `timeout`), which cut every long poll of
    // `poll_timeout_secs` (25 s by default) short with an error, a new connection and a pause.
    let poll_client = teloxide::net::default_reqwest_settings()
        .timeout(Duration::from_secs(u64::from(config.telegram.poll_timeout_secs) + 15))
        .build()?;
    for plan in telegram_plan(&config)? {
        let Some(token) = plan.token else {
            tracing::info!(market = %plan.market, "no {} set: Telegram bot skipped", plan.token_variable);
            continue;
        };
        let bot = Bot::new(token.expose()).set_api_url(api_url.clone());
        let intake = if webhook.is_some() { ops::Intake::Webhook } else { ops::Intake::Polling };
        match tokio::time::timeout(Duration::from_secs(30), bot.get_me()).await {
            Ok(Ok(me)) => {
                tracing::info!(market = %plan.market, bot = %me.username(), "Telegram bot running (polling)");
            }
            Ok(Err(e)) => {
                tracing::error!(market = %plan.market, error = %e, "getMe failed: this market's Telegram bot does not run");
                ops.bot_down(
                    crate::channel::ChannelKind::Telegram,
                    &plan.market,
                    intake,
                    &format!("getMe failed: {e}"),
                );
                continue;
            }
            Err(_) => {
                tracing::error!(market = %plan.market, "getMe timed out: this market's Telegram bot does not run");
                ops.bot_down(crate::channel::ChannelKind::Telegram, &plan.market, intake, "getMe timed out");
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
        tasks.spawn(set_role_menus(
            bot.clone(),
            plan.market.clone(),
            holders,
            Arc::clone(&texts),
            config.default_language,
        ));
        ops.bot_started(crate::channel::ChannelKind::Telegram, &plan.market, intake);
        match &webhook {
            None => {
                // A bot switched back from webhook mode keeps its webhook at Telegram, and every
                // getUpdates would answer 409 Conflict until it is deleted.
                match tokio::time::timeout(Duration::from_secs(30), bot.delete_webhook()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(market = %plan.market, error = %e, "deleteWebhook failed"),
                    Err(_) => tracing::warn!(market = %plan.market, "deleteWebhook timed out"),
                }
                let polling = Bot::with_client(bot.token(), poll_client.clone()).set_api_url(api_url.clone());
                tasks.spawn(poll(polling, plan.market.clone(), Arc::clone(&shared), config.telegram.poll_timeout_secs));
            }
            Some((secret, public_url, _)) => {
                let url =
                    reqwest::Url::parse(&format!("{}/telegram/{}", public_url.trim_end_matches('/'), plan.market))?;
                if let Err(e) = bot.set_webhook(url).secret_token(secret.clone()).await {
                    tracing::error!(market = %plan.market, error = %e, "setWebhook failed: this market's Telegram bot does not run");
                    ops.bot_down(
                        crate::channel::ChannelKind::Telegram,
                        &plan.market,
                        intake,
                        &format!("setWebhook failed: {e}"),
                    );
                    continue;
                }
                webhook_bots.insert(plan.market.clone(), bot.clone());
            }
        }
        tasks.spawn(send(
            bot,
            plan.market.clone(),
            Arc::clone(&shared),
            Arc::clone(&texts),
            config.default_language,
            config.telegram.per_chat_per_sec,
            config.telegram.per_bot_per_sec,
        ));
    }
    if running == 0 {
        tracing::warn!("no Telegram bot is running: set PASAR_<MARKET>_TELEGRAM_TOKEN (see README)");
    }
    // The one HTTP server: Telegram's webhook (in webhook mode), WhatsApp's, the delivery
    // vendor's callbacks and the bank's payment notifications.
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
        Err(e) => {
            tracing::error!(error = %e, "WhatsApp does not run");
            for market in config.whatsapp.phone_numbers.keys() {
                ops.bot_down(crate::channel::ChannelKind::WhatsApp, market, ops::Intake::Webhook, &e.to_string());
            }
        }
        Ok(Some(plan)) => {
            let client = reqwest::Client::builder().timeout(config.whatsapp.timeout).build()?;
            for (phone_number_id, market) in &plan.numbers {
                tracing::info!(market = %market, phone_number_id = %phone_number_id, "WhatsApp number running");
                ops.bot_started(crate::channel::ChannelKind::WhatsApp, market, ops::Intake::Webhook);
                tasks.spawn(whatsapp::send(whatsapp::Sender {
                    client: client.clone(),
                    market: market.clone(),
                    phone_number_id: phone_number_id.clone(),
                    graph_url: config.whatsapp.graph_url.clone(),
                    access_token: plan.access_token.expose().to_string(),
                    store: Arc::clone(&io_store),
                    shared: Arc::clone(&shared),
                    texts: Arc::clone(&texts),
                    default_lang: config.default_language,
                    per_number_per_sec: config.whatsapp.per_number_per_sec,
                    per_user_interval: config.whatsapp.per_user_interval,
                    per_user_burst: config.whatsapp.per_user_burst,
                    templates: config.whatsapp.templates.clone(),
                    config_admins: config.policy.config_admins(market).cloned().collect(),
                    rehosted: std::sync::Mutex::new(HashMap::new()),
                }));
            }
            let state =
                Arc::new(whatsapp::WebhookState { plan, store: Arc::clone(&io_store), shared: Arc::clone(&shared) });
            app = app.merge(whatsapp::routes(state));
            listen = listen.or_else(|| config.server_listen.clone());
        }
    }
    match vendor_plan(&config) {
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "the delivery vendor does not run (its deliveries wait)"),
        Ok(Some(plan)) => {
            tracing::info!(markets = ?plan.markets, url = %plan.url, "delivery vendor running");
            let client = reqwest::Client::builder().timeout(config.vendor_timeout).build()?;
            tasks.spawn(vendor::post_jobs(client, plan.clone(), Arc::clone(&io_store), Arc::clone(&shared)));
            let state =
                Arc::new(vendor::CallbackState { plan, store: Arc::clone(&io_store), shared: Arc::clone(&shared) });
            app = app.merge(vendor::routes(state));
            listen = listen.or_else(|| config.server_listen.clone());
        }
    }
    match bank_plan(&config) {
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "virtual accounts do not run (their requests wait)"),
        Ok(Some(plan)) => {
            tracing::info!(url = %plan.url, "bank partner (virtual accounts) running");
            let client = reqwest::Client::builder().timeout(config.bank_timeout).build()?;
            let provider: Arc<dyn bank::PaymentProvider> = Arc::new(bank::Midtrans { client, plan });
            tasks.spawn(bank::post_charges(Arc::clone(&provider), Arc::clone(&io_store), Arc::clone(&shared)));
            let state =
                Arc::new(bank::NotifyState { provider, store: Arc::clone(&io_store), shared: Arc::clone(&shared) });
            app = app.merge(bank::routes(state));
            listen = listen.or_else(|| config.server_listen.clone());
        }
    }
    // Operators: a bare `/healthz` on the public server for load balancers; the detail and
    // `/metrics` on their own listener (loopback by default), both from the watcher's snapshot.
    let ops_state = ops::OpsState { ops: Arc::clone(&ops), shared: Arc::clone(&shared) };
    app = app.merge(ops::public_routes(ops_state.clone()));
    let listen = listen.or_else(|| config.server_listen.clone());
    let mut servers = Vec::new();
    if listen.is_some() || config.ops_listen.is_some() {
        ops::watch(Arc::clone(&ops), &db, Arc::clone(&shared))?;
    }
    if let Some(listen) = listen {
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        tracing::info!(listen = %listener.local_addr()?, "HTTP server listening (webhooks, /healthz)");
        servers.push(tokio::spawn(http::serve(listener, app, config.http_limits, Arc::clone(&shared), SERVER_GRACE)));
    }
    if let Some(ops_listen) = &config.ops_listen {
        let listener = tokio::net::TcpListener::bind(ops_listen)
            .await
            .map_err(|e| anyhow::anyhow!("[server] ops_listen {ops_listen}: {e}"))?;
        tracing::info!(listen = %listener.local_addr()?, "operators' HTTP server listening (/healthz, /metrics)");
        servers.push(tokio::spawn(http::serve(
            listener,
            ops::routes(ops_state),
            config.http_limits,
            Arc::clone(&shared),
            SERVER_GRACE,
        )));
    }
    let engine_shared = Arc::clone(&shared);
    let engine_thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || drive_engine(engine, engine_shared, job_queue))?;
    // A signal, or the engine thread gone (it stops everything on its way out).
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = shared_stopped(&shared) => {}
    }
    tracing::info!("shutting down: no new updates; finishing what is in flight");
    // One deadline for everything, below the unit's TimeoutStopSec: what is not done by then is
    // dropped and done again after the restart (nothing is lost: see the durability design).
    let deadline = tokio::time::Instant::now() + SHUTDOWN_DEADLINE;
    shared.halt_all();
    shared.inbox.notify_waiters();
    shared.ring_all();
    for s in servers {
        let _ = tokio::time::timeout_at(deadline, s).await;
    }
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {}
    if !tasks.is_empty() {
        // Still sending at the deadline: what they have not recorded goes again next time.
        tracing::warn!(tasks = tasks.len(), "shutdown deadline reached: stopping the tasks still running");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    // Only now: the pollers and senders needed the engine thread for their store work.
    shared.engine_stop.store(true, Ordering::SeqCst);
    shared.inbox.notify_waiters();
    let engine = tokio::task::spawn_blocking(move || engine_thread.join());
    if tokio::time::timeout_at(deadline + ENGINE_LAST_PASS, engine).await.is_err() {
        tracing::warn!(
            "the engine did not finish its last pass in time: what it was doing is rolled back and done after the restart"
        );
    }
    if shared.engine_failed.load(Ordering::SeqCst) {
        anyhow::bail!("the engine thread stopped unexpectedly (see the log above); restart pasar run");
    }
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

/// How long the HTTP servers' requests in flight may take to finish at shutdown.
const SERVER_GRACE: Duration = Duration::from_secs(10);
/// The engine's last pass may run this long past [`SHUTDOWN_DEADLINE`] (still inside the unit's
/// TimeoutStopSec): everything else has stopped by then.
const ENGINE_LAST_PASS: Duration = Duration::from_secs(5);

/// How often the engine looks at the inbox and the deadlines without being woken, while it
/// has work (anything in the last [`BUSY_FOR`]).
const TIMER_PASS: Duration = Duration::from_millis(500);
/// The same when idle: deadlines are minutes apart (a trader's reminder, a payment's expiry, a
/// courier's lateness), so a look every fifteen seconds keeps them punctual without polling an
/// idle store (each pass is a few reads and a commit: `pasar loadtest idle` measures it).
const IDLE_PASS: Duration = Duration::from_secs(15);
/// How long after its last work (updates, send results) the engine counts as busy.
const BUSY_FOR: Duration = Duration::from_secs(5);
/// How long an idle sender waits for its bell before looking at the store anyway.
pub(crate) const IDLE_LOOK: Duration = Duration::from_secs(30);

/// The engine's own thread: the store work of the pollers and senders, stored updates and due
/// timers; wakes the senders.
fn drive_engine(
    mut engine: crate::conversation::engine::Engine,
    shared: Arc<Shared>,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<StoreJob>,
) {
    let _guard = EngineGuard(Arc::clone(&shared));
    // Messages up to this outbox id have woken their senders (the senders read what was queued
    // before the start when they start).
    let mut queued = engine.store().outbox_newest_id().unwrap_or(0);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build();
    let Ok(rt) = rt else { return };
    rt.block_on(async {
        let mut carried: Vec<StoreJob> = Vec::new();
        // Whether the inbox or the clock calls for a pass: the senders' reads and results alone
        // do not (each pass wakes every sender, and each sender's next read would call for
        // another one).
        let mut due = true;
        let mut last_pass = tokio::time::Instant::now();
        // When the deadlines, broadcasts and backups were last looked at (not at every pass:
        // each look is its own read of the store).
        let mut last_chores: Option<tokio::time::Instant> = None;
        // The last time there was work: updates, or send results (not the idle senders' reads).
        let mut last_work = tokio::time::Instant::now();
        loop {
            // Listening before looking: an update stored while the engine works still wakes it.
            let stored = shared.inbox.notified();
            tokio::pin!(stored);
            stored.as_mut().enable();
            let jobs = take_jobs(&mut queue, std::mem::take(&mut carried));
            due |= jobs.iter().any(|j| matches!(j, StoreJob::Ingest(..)));
            if due || jobs.iter().any(|j| !matches!(j, StoreJob::Heads(..))) {
                last_work = tokio::time::Instant::now();
            }
            // A backup on its own thread is reported by the first pass after it is done.
            let busy = last_work.elapsed() < BUSY_FOR || engine.backups_running();
            let every = if busy { TIMER_PASS } else { IDLE_PASS };
            if due || last_pass.elapsed() >= every {
                due = false;
                last_pass = tokio::time::Instant::now();
                let chores = last_chores.is_none_or(|t| t.elapsed() >= TIMER_PASS);
                if chores {
                    last_chores = Some(last_pass);
                }
                engine_pass(&mut engine, &shared, &mut queue, jobs, chores, &mut queued);
            } else {
                serve(engine.store(), jobs);
            }
            if shared.engine_stop.load(Ordering::SeqCst) {
                break;
            }
            tokio::select! {
                _ = &mut stored => due = true,
                job = queue.recv() => carried.extend(job),
                _ = tokio::time::sleep_until(last_pass + every) => {}
            }
        }
    });
    // Everything else has stopped: answer what is left, and one more pass for updates stored
    // just before the stop.
    queue.close();
    let jobs = take_jobs(&mut queue, Vec::new());
    engine_pass(&mut engine, &shared, &mut queue, jobs, true, &mut queued);
}

/// Stops the process if the engine thread ends before it is told to.
struct EngineGuard(Arc<Shared>);

impl Drop for EngineGuard {
    fn drop(&mut self) {
        if !self.0.engine_stop.load(Ordering::SeqCst) {
            tracing::error!("the engine thread stopped unexpectedly: shutting down");
            self.0.engine_failed.store(true, Ordering::SeqCst);
            self.0.halt_all();
            self.0.inbox.notify_waiters();
            self.0.ring_all();
        }
    }
}

/// `jobs` and whatever else is queued.
fn take_jobs(queue: &mut tokio::sync::mpsc::UnboundedReceiver<StoreJob>, mut jobs: Vec<StoreJob>) -> Vec<StoreJob> {
    while let Ok(job) = queue.try_recv() {
        jobs.push(job);
    }
    jobs
}

/// Handles the inbox batch by batch, each batch in one transaction with the store work queued
/// before it (the pollers' new updates, the senders' results: one commit for all), answering
/// the senders' reads after each commit (so a long queue of updates never holds up sending);
/// then, with `chores`, the due deadlines, broadcasts' progress and backups. Wakes the senders
/// whenever something was queued.
fn engine_pass(
    engine: &mut crate::conversation::engine::Engine,
    shared: &Shared,
    queue: &mut tokio::sync::mpsc::UnboundedReceiver<StoreJob>,
    mut jobs: Vec<StoreJob>,
    chores: bool,
    queued: &mut i64,
) {
    use crate::conversation::engine::MAX_BATCH;
    loop {
        let now = Utc::now();
        let (writes, reads) = split_jobs(engine.store(), jobs, now);
        let batch = match engine.process_batch_after(MAX_BATCH, |tx| write_jobs_in(tx, &writes, now)) {
            Ok(batch) => {
                answer_writes(writes, batch.before);
                Ok((batch.taken, batch.more))
            }
            Err(_) => {
                // The writes on their own (one bad job must not fail the others), then the batch.
                write_jobs_alone(engine.store(), writes, now);
                engine.process_batch_after(MAX_BATCH, |_| Ok(())).map(|b| (b.taken, b.more))
            }
        };
        if matches!(batch, Ok((n, _)) if n > 0) {
            wake_senders(engine.store(), shared, queued);
        }
        answer_reads(engine.store(), reads);
        jobs = take_jobs(queue, Vec::new());
        match batch {
            // Nothing left in the inbox but what new work brought (stored with the next batch).
            Ok((_, false)) if !jobs.iter().any(|j| matches!(j, StoreJob::Ingest(..))) => {
                serve(engine.store(), jobs);
                break;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "engine: store error; retrying");
                serve(engine.store(), jobs);
                break;
            }
        }
    }
    if chores {
        if let Err(e) = engine.run_timers() {
            tracing::error!(error = %e, "engine: store error in the timers; retrying");
        }
        if let Err(e) = engine.run_broadcasts() {
            tracing::error!(error = %e, "engine: store error reporting broadcasts; retrying");
        }
        // Backups admins asked for with /cadangan (made here, after their request committed).
        if let Err(e) = engine.run_backups() {
            tracing::error!(error = %e, "engine: store error making a backup; retrying");
        }
    }
    // Whatever else queued messages since (the chores, the bank's and vendor's answers).
    wake_senders(engine.store(), shared, queued);
}

/// Rings the senders of the markets whose messages were queued after outbox id `queued` (all
/// of them if the store cannot tell), and moves `queued` on.
fn wake_senders(store: &Store, shared: &Shared, queued: &mut i64) {
    match store.queued_since(*queued) {
        Ok((places, newest)) => {
            *queued = newest;
            shared.ring(&places);
        }
        Err(e) => {
            tracing::error!(error = %e, "reading where new messages go failed; waking every sender");
            shared.ring_all();
        }
    }
}

/// The store work between passes: the writes in one transaction, then the reads.
fn serve(store: &mut Store, jobs: Vec<StoreJob>) {
    let now = Utc::now();
    let (writes, reads) = split_jobs(store, jobs, now);
    if !writes.is_empty() {
        match store.write(|tx| write_jobs_in(tx, &writes, now)) {
            Ok(answers) => answer_writes(writes, answers),
            Err(_) => write_jobs_alone(store, writes, now),
        }
    }
    answer_reads(store, reads);
}

pub(crate) struct HeadsRequest {
    channel: crate::channel::ChannelKind,
    market: String,
    per_chat: usize,
    bulk: usize,
    done: oneshot::Sender<Result<Heads, String>>,
}

/// Sorts store work: a single message's fate is written (and answered) at once; the other
/// writes and the reads are returned, in that order.
fn split_jobs(
    store: &mut Store,
    jobs: Vec<StoreJob>,
    now: chrono::DateTime<Utc>,
) -> (Vec<StoreJob>, Vec<HeadsRequest>) {
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    for job in jobs {
        match job {
            StoreJob::Heads(request) => reads.push(request),
            StoreJob::Mark(id, how, done) => {
                let _ = done.send(mark_now(store, id, how, now));
            }
            other => writes.push(other),
        }
    }
    (writes, reads)
}

/// The pollers' updates and the senders' results inside an open transaction: for each job,
/// the number of new updates stored (0 for results).
fn write_jobs_in(
    tx: &crate::store::Tx<'_>,
    writes: &[StoreJob],
    now: chrono::DateTime<Utc>,
) -> crate::store::StoreResult<Vec<usize>> {
    let mut answers = Vec::with_capacity(writes.len());
    for job in writes {
        answers.push(match job {
            StoreJob::Ingest(events, _) => {
                let mut new = 0;
                for e in events {
                    new += usize::from(crate::store::ingest_in(tx, e)?);
                }
                new
            }
            StoreJob::Record(results, _) => {
                crate::store::record_send_results_in(tx, results, now)?;
                0
            }
            _ => 0,
        });
    }
    Ok(answers)
}

/// Tells the pollers and senders their work is committed.
fn answer_writes(writes: Vec<StoreJob>, answers: Vec<usize>) {
    for (job, n) in writes.into_iter().zip(answers) {
        match job {
            StoreJob::Ingest(_, done) => drop(done.send(Ok(n))),
            StoreJob::Record(_, done) => drop(done.send(Ok(()))),
            _ => {}
        }
    }
}

/// The writes each in its own transaction (after they failed together), answered one by one.
fn write_jobs_alone(store: &mut Store, writes: Vec<StoreJob>, now: chrono::DateTime<Utc>) {
    for job in writes {
        match job {
            StoreJob::Ingest(events, done) => drop(done.send(store.ingest(&events).map_err(|e| e.to_string()))),
            StoreJob::Record(results, done) => {
                drop(done.send(store.record_send_results(&results, now).map_err(|e| e.to_string())))
            }
            _ => {}
        }
    }
}

/// Answers the senders' reads.
fn answer_reads(store: &Store, reads: Vec<HeadsRequest>) {
    if reads.is_empty() {
        return;
    }
    store.read_together(|store| {
        for r in reads {
            let _ = r.done.send(heads_of(store, r.channel, &r.market, r.per_chat, r.bulk));
        }
    });
}

fn heads_of(
    store: &Store,
    channel: crate::channel::ChannelKind,
    market: &str,
    per_chat: usize,
    bulk: usize,
) -> Result<Heads, String> {
    let msgs = store.outbox_heads_of(channel, market, per_chat, 1000, bulk).map_err(|e| e.to_string())?;
    let mut recipients = HashMap::new();
    for m in &msgs {
        if !recipients.contains_key(&m.to.id) {
            let lang = store.language_of(&m.to).map_err(|e| e.to_string())?;
            // Only WhatsApp has a customer-service window.
            let last_inbound = match channel {
                crate::channel::ChannelKind::WhatsApp => {
                    store.last_inbound(market, &m.to).map_err(|e| e.to_string())?
                }
                _ => None,
            };
            recipients.insert(m.to.id.clone(), Recipient { lang, last_inbound });
        }
    }
    Ok((msgs, recipients))
}

/// Drains an outbox of requests to an outside API (the delivery vendor's jobs, the bank's
/// charges) until the process stops: `due` reads the requests due now, `post` sends one (and
/// hands it back with the answer), `record` writes the outcome holding the store and says
/// whether it queued news for the engine. Woken by new outbox work or every second.
pub(crate) async fn drain_requests<R, O, P, F>(
    store: Arc<Mutex<Store>>,
    shared: Arc<Shared>,
    what: &'static str,
    due: fn(&Store) -> crate::store::StoreResult<Vec<R>>,
    post: P,
    record: fn(&mut Store, R, O) -> crate::store::StoreResult<bool>,
) where
    R: Send + 'static,
    O: Send + 'static,
    P: Fn(R) -> F,
    F: std::future::Future<Output = (R, O)>,
{
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let read = {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || {
                due(&*store.lock().map_err(|_| "store lock poisoned".to_string())?).map_err(|e| e.to_string())
            })
            .await
        };
        let requests = match read {
            Ok(Ok(requests)) => requests,
            other => {
                tracing::error!(result = ?other.map(|r| r.err()), "reading {what} requests failed");
                Vec::new()
            }
        };
        for request in requests {
            let (request, outcome) = post(request).await;
            let store = Arc::clone(&store);
            let recorded = tokio::task::spawn_blocking(move || -> Result<bool, String> {
                let mut store = store.lock().map_err(|_| "store lock poisoned".to_string())?;
                record(&mut store, request, outcome).map_err(|e| e.to_string())
            })
            .await;
            match recorded {
                Ok(Ok(true)) => shared.inbox.notify_waiters(),
                Ok(Ok(false)) => {}
                other => tracing::error!(result = ?other.map(|r| r.err()), "recording a {what} request failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shared.outbox.notified() => {}
            _ = shared_stopped(&shared) => return,
        }
    }
}

/// Returns once the process is stopping. Waits on the `halt` bell, so an idle process does not
/// wake to look (listening before looking: a stop between the look and the wait still rings).
pub(crate) async fn shared_stopped(shared: &Shared) {
    loop {
        let halted = shared.halt.notified();
        tokio::pin!(halted);
        halted.as_mut().enable();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        halted.await;
    }
}

/// Webhooks whose store work may wait on blocking threads at once (see [`on_io_store`]).
/// Measured with `cargo bench --bench whatsapp_webhook` (closed loop, 32 connections): one at a
/// time 3,000-3,200 requests/s and 33 MB, four 4,300-4,700 and 42-51 MB, sixteen 5,600-5,900
/// and 58-65 MB, unbounded (a thread each) 5,400-6,300 and 72 MB.
const WEBHOOK_TURNS: usize = 4;

/// Runs a webhook's `work` on the webhooks' store connection, on a blocking thread, at most
/// [`WEBHOOK_TURNS`] at a time (the connection's lock serialises the work itself; a few waiting
/// keep the handover quick). The others wait their turn as tasks: a burst of webhooks (Meta's
/// backlog when it comes back from an outage) queues here, not as a blocking thread each.
pub(crate) async fn on_io_store<T: Send + 'static>(
    shared: &Shared,
    store: &Arc<Mutex<Store>>,
    work: impl FnOnce(&mut Store) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let turn = Arc::clone(&shared.io_turn).acquire_owned().await.map_err(|e| e.to_string())?;
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        // Held by the work itself: a webhook whose caller hung up (its handler dropped) still
        // has the turn until its work is done.
        let _turn = turn;
        let mut store = store.lock().map_err(|_| "store lock poisoned".to_string())?;
        work(&mut store)
    })
    .await
    .map_err(|e| format!("the store's thread failed: {e}"))?
}

/// A webhook's answer once its events were (or were not) stored: 200 and the engine woken when
/// something new came in; 500 when storing failed, so the sender delivers it again.
pub(crate) fn stored_answer(stored: Result<usize, String>, shared: &Shared, what: &str) -> axum::http::StatusCode {
    match stored {
        Ok(new) => {
            if new > 0 {
                shared.inbox.notify_waiters();
            }
            axum::http::StatusCode::OK
        }
        Err(e) => {
            tracing::error!(error = %e, "storing {what} failed; the sender will deliver it again");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// What became of one outbox message, written on its own (the senders' ordinary outcomes go
/// in their round's batch, [`record`]).
pub(crate) enum Mark {
    /// The user blocked the bot or is gone: their messages are parked.
    Unreachable { market: String, to: UserKey, reason: String },
}

pub(crate) async fn mark(shared: &Shared, id: i64, how: Mark) -> Result<(), String> {
    store_job(shared, |done| StoreJob::Mark(id, how, done)).await
}

fn mark_now(store: &mut Store, _id: i64, how: Mark, now: chrono::DateTime<Utc>) -> Result<(), String> {
    let r = match how {
        Mark::Unreachable { market, to, reason } => store.mark_unreachable(&market, &to, &reason, now),
    };
    r.map_err(|e| e.to_string())
}
