//! Load on `pasar run` through a fake Telegram Bot API on 127.0.0.1: issue 4's benchmark
//! (`cargo bench --bench telegram_load`: `pasar run`, ten market bots with the full ordering
//! flow and durable SQLite, against a minimal teloxide echo bot) and `pasar loadtest rush`
//! (issue 10: the morning rush, 250 updates/s for 5 minutes by default), which `crash.rs`
//! (kills and restarts) and `outage.rs` (both APIs down, 429s, slow) put faults into; the fault
//! scenarios on both channels (`replay.rs`, `last_unit.rs`, `abuse.rs`) run on `world.rs`.
//!
//! ```sh
//! cargo bench --bench telegram_load                        # everything, default sizes
//! cargo bench --bench telegram_load -- --mode closed --shoppers 200 --journeys 10
//! cargo bench --bench telegram_load -- --mode open --rate 250 --seconds 30
//! cargo bench --bench telegram_load -- --mode text --texts keranjang,kangkung,halo
//! pasar loadtest rush                                      # 250 updates/s for 300 s
//! ```
//!
//! - The fake Bot API (axum) serves ten tokens; `getUpdates` long-polls, woken by a
//!   `tokio::sync::Notify` when an update is queued. Every update's time of queueing is noted
//!   per chat; the first `sendMessage`/`sendPhoto`/`editMessageText` to that chat after it is
//!   its reply, and the difference is the update-to-reply latency.
//! - Before `pasar run` starts, its database is seeded (through the library's engine) with
//!   10,000 stored Telegram conversations, each with a cart, so peak RSS is measured with them.
//! - The baseline is the calling binary re-executed with `--echo-bot <url>`: ten teloxide
//!   dispatchers on one tokio runtime (two workers, as `pasar run`), each echoing a message's
//!   text or a button's data, and answering button presses.
//! - Closed loop: N shoppers spread over the ten bots do whole journeys (`/start`, `kangkung`,
//!   the stall's button, `3 ikat`, checkout, name, phone, shared location, a slot, `pay:cod`,
//!   `note:none`, `place`); each sends its next update only once the step's last reply came.
//!   The echo bot gets the same updates from the same shoppers (one echo is the whole answer).
//! - Open loop: updates at a fixed rate (default 250/s) for a fixed time, each from the next
//!   shopper in line whose previous step is answered; p50/p99/max update-to-reply latency.
//! - Same text ([`same_text`]): for each of `--texts`, a fresh `pasar run` where every shopper
//!   (`--text-shoppers` a bot) sends that text `--messages` times in a closed loop; then the echo
//!   bot once with the same shape, as the floor. Compares the cost of answering different texts.
//! - Whole orders (`pasar loadtest rush`, `crash`, `outage`; [`staff`]): each market's traders
//!   and couriers are enrolled in the database first and press their buttons as orders come
//!   (served before the shoppers in line); the shoppers' script goes on past "Pesan sekarang" to
//!   the wait for the door and the ratings ([`WHOLE_ORDER`]), and the run ends when every order
//!   placed is delivered. Every second shopper ([`WHOLE_ORDER_WA`]), trader and courier chats
//!   on WhatsApp: their messages are webhooks signed with the app secret, posted to `pasar
//!   run`'s HTTP server (and posted again until it takes them, as Meta does), and its replies
//!   come to a Graph API on the same fake. The benchmark's shoppers stop at "Pesan sekarang", as the echo bot's do, and are
//!   all on Telegram.
//!
//! Peak RSS is `VmHWM` from `/proc/<pid>/status`; CPU time from `/proc/<pid>/stat`.
//!
//! The fault scenarios (`replay`, `last-unit`, `abuse`: every update three times, the last stock
//! raced for, fuzzed input) have modules of their own on `world.rs`: `pasar run` on Telegram and
//! WhatsApp at once, through the fakes of [`crate::fakes`], checked for exactness, not speed.

pub mod abuse;
pub mod flood;
pub mod last_unit;
pub mod replay;
mod world;

use crate::channel::{ChannelKind, Inbound, InboundEvent, UserKey};
use crate::config::Config;
use crate::conversation::engine::{Clock, SystemClock};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::ValueEnum;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

mod crash;
mod outage;
mod same_text;
mod staff;

/// Shoppers' chat ids start here (shopper `i` is chat `CHAT_BASE + i`).
const CHAT_BASE: i64 = 10_000_000;
/// The pre-seeded conversations' chat ids start here.
const SEEDED_CHAT_BASE: i64 = 50_000_000;
/// How long one step may take before the run is declared broken.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// The wait for the order at the door may take this many steps' time.
const AWAIT_STEPS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Closed loop (pasar and echo) and open loop (pasar).
    All,
    /// Closed loop only: updates/s of pasar and of the echo bot.
    Closed,
    /// Open loop only: latency at a fixed rate.
    Open,
    /// Same text: every shopper sends one text over and over (closed loop), for each of
    /// `--texts`, against pasar, then the echo bot once (not part of `all`).
    Text,
}

/// What to run and how big.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    #[arg(long, value_enum, default_value_t = Mode::All)]
    pub mode: Mode,
    /// Closed loop: simulated shoppers, spread over the ten bots.
    #[arg(long, default_value_t = 200)]
    pub shoppers: usize,
    /// Closed loop: whole journeys per shopper (12 updates each).
    #[arg(long, default_value_t = 10)]
    pub journeys: usize,
    /// Open loop: updates per second.
    #[arg(long, default_value_t = 250.0)]
    pub rate: f64,
    /// Open loop: measured seconds (after the warm-up).
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// Open loop: seconds at the same rate before measuring.
    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,
    /// Open loop: shoppers taking turns (each sends its next update when its turn comes and
    /// its previous one is answered).
    #[arg(long, default_value_t = 1000)]
    pub open_shoppers: usize,
    /// Open loop: also against the echo bot (a floor for the fake and teloxide themselves).
    #[arg(long)]
    pub open_echo: bool,
    /// Conversations stored in pasar's database before it starts.
    #[arg(long, default_value_t = 10_000)]
    pub conversations: usize,
    /// Print the replies of shopper 0's first journey (checks the script against the bot).
    #[arg(long)]
    pub trace: bool,
    /// Same text: the texts compared, each in a run of its own (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "keranjang,kangkung,halo")]
    pub texts: Vec<String>,
    /// Same text: messages each shopper sends (each after the previous one is answered).
    #[arg(long, default_value_t = 100)]
    pub messages: usize,
    /// Same text: shoppers PER BOT (ten bots: 20 a bot x 100 messages = 20,000 updates a text).
    #[arg(long, default_value_t = 20)]
    pub text_shoppers: usize,
    /// Open loop: whole orders, with traders and couriers (`pasar loadtest rush`); the
    /// benchmark's shoppers stop at "Pesan sekarang", as the echo bot's do.
    #[arg(skip)]
    pub whole_orders: bool,
}

/// A `pasar loadtest` scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// The morning rush: shoppers on all ten market bots (every second one on WhatsApp, as are
    /// every second trader and courier) doing
    /// whole orders at --rate updates/s (10x the expected peak) for --seconds, with each
    /// market's traders (accept,
    /// pack) and three couriers (take, pick up, go, deliver, the cash, the photo) and the
    /// shoppers' ratings; prints updates/s, p50/p99/max update-to-reply, peak RSS and CPU, and
    /// fails if any step goes unanswered for a minute, an order placed is not delivered, or
    /// `pasar run` exits.
    Rush,
    /// No traffic: the time until every bot polls, then CPU and memory over --seconds.
    Idle,
    /// The rush with `pasar run` killed (SIGKILL) at --kills random moments and restarted each
    /// time (WhatsApp webhooks that fail meanwhile are posted again, as Meta does); then checks
    /// that every update and webhook was stored once and handled, every order a shopper was
    /// told about exists exactly once, every message was sent (calls repeated after a kill are
    /// counted: neither the Bot API nor the Graph API has an idempotency key), every order was
    /// delivered with its cash recorded once, stock adds up, and integrity_check is ok.
    Crash,
    /// Telegram and WhatsApp down and back: shoppers doing whole orders at --rate on all ten bots
    /// while the fake Bot API and Graph API are calm for --calm seconds, down (5xx to every call,
    /// webhooks held) for --down, answer every send with 429 (WhatsApp: 130429) for --storm,
    /// answer slowly (2 s a call) for --slow, then are calm again for --calm. Fails unless nothing
    /// is lost (every step answered, every order told of in the database and delivered), each
    /// chat's replies come in the bot's order, every 429's retry_after is honoured, and the
    /// backlog is answered within 64 s of the APIs coming back.
    Outage,
    /// Every update delivered 3 times, some out of order: --markets markets (default all ten),
    /// --per-channel shoppers a channel in each (default 6) each place an order the trader
    /// accepts, once clean and once replayed; fails unless each update had exactly one effect
    /// (the same replies, one order each, stock taken once).
    Replay,
    /// Shoppers on both channels racing for one stall's last stock (--per-channel a channel,
    /// default 60): everyone presses "Pesan sekarang" at once for the last kilo, then for the
    /// last kilos in different amounts; fails if oversold, anyone unanswered, or refused while
    /// enough was left.
    LastUnit,
    /// --inputs fuzzed inputs (random text, emoji, huge messages, forged button payloads,
    /// malformed and wrongly signed webhooks) from --users random users on both channels; fails
    /// on a panic, a 5xx, a user left unanswered (but for messages skipped under the flood
    /// rule), or another user's state touched. Then thirty accounts flood one bot with
    /// --flood-messages each while an order is placed: how long its trader's notice takes.
    Abuse,
}

/// `pasar loadtest`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadtestArgs {
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// rush, crash, outage: updates per second.
    #[arg(long, default_value_t = 250.0)]
    pub rate: f64,
    /// rush, crash: measured seconds (after the warm-up); idle: seconds watched (the outage's
    /// length is its phases').
    #[arg(long, default_value_t = 300.0)]
    pub seconds: f64,
    /// rush, crash: seconds at the same rate before measuring.
    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,
    /// rush, crash, outage: shoppers taking turns (every second one on WhatsApp), with the
    /// markets' traders and couriers (every second one on WhatsApp too).
    #[arg(long, default_value_t = 1000)]
    pub shoppers: usize,
    /// Conversations stored in the database before `pasar run` starts.
    #[arg(long, default_value_t = 10_000)]
    pub conversations: usize,
    /// crash: how many times `pasar run` is killed.
    #[arg(long, default_value_t = 100)]
    pub kills: usize,
    /// crash: the seed of the kill moments (default: a random one, printed); abuse: the random
    /// generators' seed (default: the one the test suite uses).
    #[arg(long)]
    pub seed: Option<u64>,
    /// outage: seconds of calm (no faults) before the outage, and again after it.
    #[arg(long, default_value_t = 30.0)]
    pub calm: f64,
    /// outage: seconds the APIs are down (with --storm and --slow, keep it well under the 5
    /// minutes after which a courier's offer passes on and the 10 after which an unanswered
    /// order is cancelled: the bot's timers run on through an outage).
    #[arg(long, default_value_t = 120.0)]
    pub down: f64,
    /// outage: seconds of 429 answers to every send once the APIs are back.
    #[arg(long, default_value_t = 30.0)]
    pub storm: f64,
    /// outage: seconds of slow (2 s) answers after the storm.
    #[arg(long, default_value_t = 60.0)]
    pub slow: f64,
    /// abuse: fuzzed inputs (three in four on Telegram).
    #[arg(long, default_value_t = 10_000)]
    pub inputs: usize,
    /// abuse: fuzzing users (seven in ten on Telegram).
    #[arg(long, default_value_t = 150)]
    pub users: usize,
    /// abuse: messages each of the thirty flooding accounts sends at once.
    #[arg(long, default_value_t = 100)]
    pub flood_messages: usize,
    /// replay: markets served (the first of the ten).
    #[arg(long, default_value_t = 10)]
    pub markets: usize,
    /// replay: shoppers a channel in each market (default 6); last-unit: shoppers a channel in a
    /// race (default 60).
    #[arg(long)]
    pub per_channel: Option<usize>,
}

/// Runs `args.scenario` against `pasar` (the `pasar` binary, started as a child process).
pub fn main(args: &LoadtestArgs, pasar: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate > 0.0 && args.seconds > 0.0 && args.shoppers > 0,
        "--rate, --seconds and --shoppers must be positive"
    );
    match args.scenario {
        Scenario::Idle => idle(pasar, args.seconds, args.conversations),
        Scenario::Crash => crash::crash(pasar, args),
        Scenario::Outage => outage::run(args, pasar),
        Scenario::Replay => {
            let size = replay::ReplayArgs { markets: args.markets, per_channel: args.per_channel.unwrap_or(6) };
            replay::print(&replay::run(pasar, &size)?);
            Ok(())
        }
        Scenario::Abuse => {
            let size = abuse::AbuseArgs {
                inputs: args.inputs,
                users: args.users,
                seed: args.seed.unwrap_or(abuse::DEFAULT_SEED),
            };
            abuse::print(&abuse::run(pasar, &size)?);
            flood::print(&flood::run(pasar, flood::FLOODERS, args.flood_messages)?);
            Ok(())
        }
        Scenario::LastUnit => {
            for race in last_unit::run(pasar, args.per_channel.unwrap_or(60))? {
                last_unit::print(&race);
            }
            println!("errors: none (every check held)");
            Ok(())
        }
        Scenario::Rush => {
            let load = LoadArgs {
                mode: Mode::Open,
                shoppers: 1,
                journeys: 1,
                rate: args.rate,
                seconds: args.seconds,
                warmup: args.warmup,
                open_shoppers: args.shoppers,
                open_echo: false,
                conversations: args.conversations,
                trace: false,
                texts: Vec::new(),
                messages: 0,
                text_shoppers: 0,
                whole_orders: true,
            };
            run_load(&load, pasar, &[])
        }
    }
}

/// One market's bot.
#[derive(Debug, Clone)]
struct MarketInfo {
    slug: String,
    token: String,
    lat: f64,
    lon: f64,
}

fn markets() -> anyhow::Result<Vec<MarketInfo>> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let seed = crate::domain::catalog::SeedData::load(&data)?;
    Ok(seed
        .markets
        .iter()
        .enumerate()
        .map(|(i, m)| MarketInfo {
            slug: m.slug.clone(),
            token: format!("{}:bench-{}", 7001 + i, m.slug),
            // A little way from the market, well inside its delivery area.
            lat: m.lat + 0.001,
            lon: m.lon + 0.001,
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The fake Bot API.

#[derive(Default)]
struct Queue {
    next_id: i64,
    /// Updates not yet acknowledged by an offset: (update_id, JSON).
    pending: VecDeque<(i64, String)>,
}

struct BotQueue {
    token: String,
    queue: Mutex<Queue>,
    notify: Notify,
    polled: AtomicBool,
}

struct Reply {
    id: i64,
    text: String,
    markup: Value,
}

#[derive(Default)]
struct ChatInner {
    /// When the update now awaiting its first reply was queued.
    since: Option<Instant>,
    /// Update-to-first-reply time of the latest update.
    first: Option<Duration>,
    /// Replies since the latest update.
    replies: Vec<Reply>,
    next_message: i64,
    /// Every send and edit to the chat in the run (a repeated call counts again).
    calls: u64,
    /// The latest update's id, and every reply in the order it came (checked by the outage).
    update: i64,
    log: Vec<outage::Arrival>,
    /// A trader's or courier's chat: its messages stay until the worker reads them (a new
    /// update does not clear them: an order or an offer may come in between).
    keep: bool,
}

#[derive(Default)]
struct ChatSlot {
    inner: Mutex<ChatInner>,
    /// `notify_one`: a reply that comes while the shopper is not waiting is not lost.
    notify: Notify,
}

struct Fake {
    bots: Vec<BotQueue>,
    by_token: HashMap<String, usize>,
    /// The shoppers' chats, then the traders' and couriers'.
    chats: Vec<ChatSlot>,
    shoppers: usize,
    /// The traders and couriers who work on WhatsApp: number -> their market's bot.
    wa_staff: HashMap<String, usize>,
    other_messages: AtomicI64,
    replies: AtomicU64,
    callbacks_answered: AtomicU64,
    /// Long polls the client gave up on before the fake answered (a client timeout shorter
    /// than the poll's, or a killed process).
    polls_cut: AtomicU64,
    /// The orders shoppers were told were placed: (chat, order number), each time told.
    told: Mutex<Vec<(i64, String)>>,
    /// What is wrong with the API now (`pasar loadtest outage`); nothing by default.
    faults: outage::Faults,
    /// WhatsApp's side, for runs where every second shopper, trader and courier chats there.
    wa: Option<WaSide>,
}

/// WhatsApp's side of the fake: the Graph API `pasar run` sends its replies to (at
/// `/graph/{phone_number_id}/messages` on the same server), and the signed webhooks the
/// shoppers who chat there post to `pasar run`'s HTTP server, made again until it takes them
/// (as Meta does: a webhook that fails is retried, so one may come twice if `pasar run` dies
/// after storing it).
struct WaSide {
    /// `pasar run`'s HTTP server.
    port: u16,
    client: reqwest::Client,
    /// Messages the shoppers sent (one wamid each), and the posts that failed and were made
    /// again (`pasar run` down or restarting).
    messages: AtomicU64,
    retried: AtomicU64,
    /// The longest a webhook post took to be answered (µs), and how many took over 100 ms.
    post_max_us: AtomicU64,
    posts_slow: AtomicU64,
}

/// The app secret the webhooks are signed with (`PASAR_WHATSAPP_APP_SECRET` of `pasar run`).
const WA_SECRET: &str = "app-secret-for-loadtest";

/// A WhatsApp shopper's number: `628` and nine digits, the shopper's index.
fn wa_user(index: usize) -> String {
    format!("628{index:09}")
}

/// A market's WhatsApp phone number id.
fn wa_number(bot: usize) -> String {
    (1001 + bot).to_string()
}

/// The fake's chat of a user id: a Telegram chat id as it is, a WhatsApp shopper's, trader's
/// or courier's number as their chat.
fn chat_of(user: &str) -> Option<i64> {
    if let Some(k) = user.strip_prefix(staff::WA_STAFF_PREFIX).filter(|n| n.len() == 9) {
        return k.parse::<i64>().ok().map(|k| staff::STAFF_BASE + k);
    }
    match user.strip_prefix("628").filter(|n| n.len() == 9) {
        Some(n) => n.parse::<i64>().ok().map(|n| CHAT_BASE + n),
        None => user.parse().ok(),
    }
}

impl Fake {
    /// A fake with `shoppers` shoppers' chats and the chats of `members` (traders and couriers).
    fn new(markets: &[MarketInfo], shoppers: usize, members: &[staff::Member]) -> Fake {
        let staff = members.len();
        Fake {
            bots: markets
                .iter()
                .map(|m| BotQueue {
                    token: m.token.clone(),
                    queue: Mutex::new(Queue::default()),
                    notify: Notify::new(),
                    polled: AtomicBool::new(false),
                })
                .collect(),
            by_token: markets.iter().enumerate().map(|(i, m)| (m.token.clone(), i)).collect(),
            chats: (0..shoppers + staff)
                .map(|i| {
                    let slot = ChatSlot::default();
                    slot.inner.lock().expect("chat lock").keep = i >= shoppers;
                    slot
                })
                .collect(),
            shoppers,
            wa_staff: members.iter().filter_map(|m| Some((m.wa.clone()?, m.bot))).collect(),
            other_messages: AtomicI64::new(1_000_000),
            replies: AtomicU64::new(0),
            callbacks_answered: AtomicU64::new(0),
            polls_cut: AtomicU64::new(0),
            told: Mutex::new(Vec::new()),
            faults: outage::Faults::default(),
            wa: None,
        }
    }

    /// The same with every second shopper (odd indexes) on WhatsApp (the traders and couriers
    /// there are those `Member::wa` says); `pasar run`'s HTTP server
    /// gets a free port.
    fn with_whatsapp(mut self) -> anyhow::Result<Fake> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        self.wa = Some(WaSide {
            port,
            client,
            messages: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            post_max_us: AtomicU64::new(0),
            posts_slow: AtomicU64::new(0),
        });
        Ok(self)
    }

    /// Whether shopper `index` chats on WhatsApp.
    fn on_whatsapp(&self, index: usize) -> bool {
        self.wa.is_some() && index % 2 == 1
    }

    /// A shopper's update is on its way: their chat's clock starts now and the replies to the
    /// previous one are put away.
    fn begin(&self, chat: i64) -> Instant {
        let now = Instant::now();
        if let Some(slot) = self.slot(chat) {
            let mut c = slot.inner.lock().expect("chat lock");
            if !c.keep {
                c.replies.clear();
            }
            c.first = None;
            c.since = Some(now);
        }
        now
    }

    /// `from` (chat `chat`) sends their `count`th message, `content`, to bot `bot`'s number on
    /// WhatsApp: a signed webhook, as Meta posts it. The chat's clock starts before the first
    /// attempt; its step (for the outage's order check) is this message.
    async fn whatsapp_in(
        &self,
        chat: i64,
        bot: usize,
        from: &str,
        count: u64,
        content: Value,
        patience: Duration,
    ) -> anyhow::Result<Instant> {
        let message = world::wa_message(from, &format!("wamid.rush.{from}.{count}"), content);
        let body = world::wa_delivery(from, &wa_number(bot), message);
        let queued = self.begin(chat);
        if let Some(slot) = self.slot(chat) {
            slot.inner.lock().expect("chat lock").update = count as i64;
        }
        self.post_webhook(body, patience).await?;
        Ok(queued)
    }

    /// Posts a WhatsApp webhook body to `pasar run`, signed, until it is taken (200) or
    /// `patience` runs out; a 4xx (a signed body refused) fails at once.
    async fn post_webhook(&self, body: String, patience: Duration) -> anyhow::Result<()> {
        let wa = self.wa.as_ref().ok_or_else(|| anyhow::anyhow!("no WhatsApp in this run"))?;
        wa.messages.fetch_add(1, Ordering::Relaxed);
        self.faults.hold_webhook().await;
        let signature = crate::channel::whatsapp::sign(WA_SECRET.as_bytes(), body.as_bytes());
        let url = format!("http://127.0.0.1:{}/whatsapp", wa.port);
        let deadline = Instant::now() + patience;
        loop {
            let t0 = Instant::now();
            let sent = wa
                .client
                .post(&url)
                .header("X-Hub-Signature-256", &signature)
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send()
                .await;
            let took = t0.elapsed();
            wa.post_max_us.fetch_max(took.as_micros() as u64, Ordering::Relaxed);
            if took > Duration::from_millis(100) {
                wa.posts_slow.fetch_add(1, Ordering::Relaxed);
            }
            match sent {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_client_error() => anyhow::bail!("a signed webhook was refused: {}", r.status()),
                _ => {}
            }
            anyhow::ensure!(Instant::now() < deadline, "pasar run took no webhook for {patience:?}");
            wa.retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn slot(&self, chat: i64) -> Option<&ChatSlot> {
        let index = if chat >= staff::STAFF_BASE {
            usize::try_from(chat - staff::STAFF_BASE).ok().map(|k| self.shoppers + k)
        } else {
            usize::try_from(chat - CHAT_BASE).ok().filter(|i| *i < self.shoppers)
        };
        index.and_then(|i| self.chats.get(i))
    }

    fn all_polled(&self) -> bool {
        self.bots.iter().all(|b| b.polled.load(Ordering::SeqCst))
    }

    /// Makes an update available to `bot`'s `getUpdates`; the chat's clock starts now.
    fn push(&self, bot: usize, chat: i64, body: impl FnOnce(i64) -> Value) -> Instant {
        let now = self.begin(chat);
        let b = &self.bots[bot];
        {
            let mut q = b.queue.lock().expect("queue lock");
            q.next_id += 1;
            let id = q.next_id;
            if let Some(slot) = self.slot(chat) {
                slot.inner.lock().expect("chat lock").update = id;
            }
            let json = body(id).to_string();
            q.pending.push_back((id, json));
        }
        b.notify.notify_waiters();
        now
    }

    /// A reply to `chat` was sent: the first one after an update stops its clock.
    fn reply(&self, chat: i64, edit_of: Option<i64>, text: &str, markup: Value) -> i64 {
        self.replies.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = self.slot(chat) else {
            return edit_of.unwrap_or_else(|| self.other_messages.fetch_add(1, Ordering::Relaxed));
        };
        if let Some(number) = placed_order_number(text) {
            self.told.lock().expect("told lock").push((chat, number.to_string()));
        }
        let now = Instant::now();
        let id = {
            let mut c = slot.inner.lock().expect("chat lock");
            c.calls += 1;
            if let Some(t) = c.since.take() {
                c.first = Some(now.duration_since(t));
            }
            let id = edit_of.unwrap_or_else(|| {
                c.next_message += 1;
                c.next_message
            });
            c.replies.push(Reply { id, text: text.to_string(), markup });
            let arrival = outage::Arrival { message: id, edit: edit_of.is_some(), update: c.update };
            c.log.push(arrival);
            id
        };
        slot.notify.notify_one();
        id
    }
}

/// The order number in "🎉 Pesanan BLB-... sudah kami terima!" (the shopper's confirmation).
fn placed_order_number(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("🎉 Pesanan ")?;
    let (number, after) = rest.split_once(' ')?;
    after.starts_with("sudah kami terima").then_some(number)
}

fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn ok(result: Value) -> Response {
    json_response(json!({"ok": true, "result": result}).to_string())
}

fn error(status: StatusCode, description: &str) -> Response {
    (status, axum::Json(json!({"ok": false, "error_code": status.as_u16(), "description": description})))
        .into_response()
}

fn user_json(chat: i64) -> Value {
    json!({"id": chat, "is_bot": false, "first_name": "Pembeli", "last_name": format!("{chat}")})
}

fn chat_json(chat: i64) -> Value {
    json!({"id": chat, "type": "private", "first_name": "Pembeli"})
}

/// A `callback_query` update: `chat` pressed the button `data` on the bot's message `on`.
fn press_json(id: i64, chat: i64, data: &str, on: i64) -> Value {
    json!({"update_id": id, "callback_query": {
        "id": format!("cb{id}"), "from": user_json(chat), "chat_instance": "ci", "data": data,
        "message": bot_message_json(on, chat, "menu")
    }})
}

/// A `message` update: `chat` typed `text`.
fn text_update_json(id: i64, chat: i64, text: &str) -> Value {
    json!({"update_id": id, "message": {
        "message_id": id, "date": 1_764_300_000, "chat": chat_json(chat), "from": user_json(chat), "text": text
    }})
}

fn bot_message_json(id: i64, chat: i64, text: &str) -> Value {
    json!({
        "message_id": id,
        "date": 1_764_300_000,
        "chat": chat_json(chat),
        "from": {"id": 42, "is_bot": true, "first_name": "Pasar", "username": "pasar_bot"},
        "text": text
    })
}

async fn api(
    State(fake): State<Arc<Fake>>,
    UrlPath((bot, method)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(&b) = bot.strip_prefix("bot").and_then(|t| fake.by_token.get(t)) else {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    if let Some(answer) = fake.faults.intercept(b, &method).await {
        return answer;
    }
    let mut params: Value =
        if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or_default() };
    // Bot API method names are case-insensitive (teloxide sends `GetMe`).
    match method.to_ascii_lowercase().as_str() {
        "getme" => {
            let id = fake.bots[b].token.split(':').next().and_then(|n| n.parse::<i64>().ok()).unwrap_or(42);
            ok(json!({
                "id": id, "is_bot": true, "first_name": "Pasar", "username": format!("pasar_bench_{id}_bot"),
                "can_join_groups": false, "can_read_all_group_messages": false, "supports_inline_queries": false,
                "can_connect_to_business": false, "has_main_web_app": false
            }))
        }
        "getupdates" => get_updates(&fake, b, &params).await,
        m @ ("sendmessage" | "sendphoto" | "editmessagetext") => {
            let chat = params["chat_id"].as_i64().unwrap_or(0);
            let text = params["text"].as_str().or(params["caption"].as_str()).unwrap_or("").to_string();
            let edit_of = if m == "editmessagetext" { params["message_id"].as_i64() } else { None };
            let markup = params["reply_markup"].take();
            let id = fake.reply(chat, edit_of, &text, markup);
            ok(bot_message_json(id, chat, &text))
        }
        "answercallbackquery" => {
            fake.callbacks_answered.fetch_add(1, Ordering::Relaxed);
            ok(json!(true))
        }
        "setmycommands" | "deletewebhook" | "setwebhook" => ok(json!(true)),
        "getwebhookinfo" => ok(json!({"url": "", "has_custom_certificate": false, "pending_update_count": 0})),
        _ => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// The Graph API's `messages`: a reply to a WhatsApp shopper, noted like a Telegram one (its
/// buttons and list rows as the inline keyboard's callback data), answered with a wamid.
async fn graph(State(fake): State<Arc<Fake>>, UrlPath(number): UrlPath<String>, body: Bytes) -> Response {
    if let Some(answer) = fake.faults.intercept_graph().await {
        return answer;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let to = body["to"].as_str().unwrap_or_default();
    // Only a WhatsApp shopper, trader or courier of the run, from their market's number.
    let shopper = to
        .strip_prefix("628")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|i| *i < fake.shoppers && to == wa_user(*i) && fake.on_whatsapp(*i))
        .filter(|i| number == wa_number(*i % fake.bots.len()))
        .map(|i| CHAT_BASE + i as i64);
    let member = fake.wa_staff.get(to).filter(|bot| number == wa_number(**bot)).and_then(|_| chat_of(to));
    let Some(chat) = shopper.or(member) else {
        let refusal = json!({"error": {"message": "(#131030) Recipient phone number not in allowed list",
            "type": "OAuthException", "code": 131030}});
        return (StatusCode::BAD_REQUEST, axum::Json(refusal)).into_response();
    };
    let i = &body["interactive"];
    let text = body["text"]["body"]
        .as_str()
        .or(i["body"]["text"].as_str())
        .or(body["image"]["caption"].as_str())
        .unwrap_or_default();
    let buttons = i["action"]["buttons"].as_array().into_iter().flatten().map(|b| &b["reply"]["id"]);
    let sections = i["action"]["sections"].as_array().into_iter().flatten();
    let rows = sections.flat_map(|s| s["rows"].as_array().into_iter().flatten().map(|r| &r["id"]));
    let row: Vec<Value> = buttons.chain(rows).map(|id| json!({"callback_data": id})).collect();
    let id = fake.reply(chat, None, text, json!({"inline_keyboard": [row]}));
    json_response(
        json!({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
               "messages": [{"id": format!("wamid.out.{chat}.{id}")}]})
        .to_string(),
    )
}

/// Long poll: returns the unacknowledged updates at once, or waits (up to `timeout`) for the
/// next one to be pushed.
async fn get_updates(fake: &Fake, b: usize, params: &Value) -> Response {
    let offset = params["offset"].as_i64().unwrap_or(0);
    let limit = params["limit"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
    let timeout = Duration::from_secs(params["timeout"].as_u64().unwrap_or(0).min(60));
    let deadline = tokio::time::Instant::now() + timeout;
    let bot = &fake.bots[b];
    bot.polled.store(true, Ordering::SeqCst);
    /// Counts the poll as cut unless it was answered (axum drops the handler when the client
    /// leaves first).
    struct Cut<'a>(&'a AtomicU64, bool);
    impl Drop for Cut<'_> {
        fn drop(&mut self) {
            if !self.1 {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let mut cut = Cut(&fake.polls_cut, false);
    let answer = get_updates_answer(fake, bot, offset, limit, timeout, deadline).await;
    cut.1 = true;
    answer
}

async fn get_updates_answer(
    fake: &Fake,
    bot: &BotQueue,
    offset: i64,
    limit: usize,
    timeout: Duration,
    deadline: tokio::time::Instant,
) -> Response {
    loop {
        // Registered before looking, so a push between the look and the wait is not missed.
        let notified = bot.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(cut) = fake.faults.cut_off() {
            return cut; // The API went down during the long poll (the outage wakes it).
        }
        {
            let mut q = bot.queue.lock().expect("queue lock");
            while q.pending.front().is_some_and(|(id, _)| *id < offset) {
                q.pending.pop_front();
            }
            if !q.pending.is_empty() {
                let updates: Vec<&str> = q.pending.iter().take(limit).map(|(_, u)| u.as_str()).collect();
                return json_response(format!("{{\"ok\":true,\"result\":[{}]}}", updates.join(",")));
            }
        }
        if timeout.is_zero() || tokio::time::timeout_at(deadline, notified).await.is_err() {
            return json_response("{\"ok\":true,\"result\":[]}".to_string());
        }
    }
}

/// Serves the fake on 127.0.0.1 with a random port; returns its URL and the server task.
async fn serve(fake: Arc<Fake>) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = Router::new()
        .route("/{bot}/{method}", axum::routing::post(api).get(api))
        .route("/graph/{number}/messages", axum::routing::post(graph))
        .with_state(fake);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("fake Bot API stopped: {e}");
        }
    });
    Ok((url, task))
}

// ---------------------------------------------------------------------------------------------
// Shoppers.

#[derive(Clone, Copy)]
enum Input {
    Text(&'static str),
    /// A button whose data is known in advance.
    Press(&'static str),
    /// The button found in the previous step's reply (the fixed data for the echo bot).
    Captured(&'static str),
    Location,
    /// Nothing sent: the shopper waits for news (their order delivered) and takes no turn.
    Await,
}

/// Which button of the answer to keep for the next step.
#[derive(Clone, Copy)]
enum Capture {
    None,
    /// The first whose data starts with this.
    First(&'static str),
    /// The last whose data starts with this (the fifth star).
    Last(&'static str),
}

#[derive(Clone, Copy)]
struct Step {
    input: Input,
    /// The step is answered once a reply contains this (the last message of the step's answer).
    needle: &'static str,
    capture: Capture,
}

/// What the shopper is told when the order is placed.
const PLACED: &str = "sudah kami terima";
/// The answer to "Pesan sekarang", or to a slot picked, when the slot has meanwhile come within
/// the market's lead time (a shopper held up by an outage, or just slow, across the hour),
/// followed by the slots again.
const SLOT_GONE: &str = "Pilih jam lain";
/// The step that picks a slot (answered by the payment question).
const SLOT_PICKED: &str = "Bayar pakai apa";

/// The whole journey of tests/telegram.rs: search, the stall's button, an amount, checkout
/// (name, phone, shared location, slot, cash on delivery, no note), place the order.
const JOURNEY: [Step; 12] = [
    Step { input: Input::Text("/start"), needle: "Mau belanja apa", capture: Capture::None },
    Step { input: Input::Text("kangkung"), needle: "Pilih lapak", capture: Capture::First("off:") },
    Step { input: Input::Captured("off:1"), needle: "Mau berapa", capture: Capture::None },
    Step { input: Input::Text("3 ikat"), needle: "masuk keranjang", capture: Capture::None },
    Step { input: Input::Press("checkout"), needle: "atas nama siapa", capture: Capture::None },
    // A contact request: the question, then the hint under the reply keyboard.
    Step { input: Input::Text("Ani Rahayu"), needle: "tombol di bawah", capture: Capture::None },
    // A location request, likewise.
    Step { input: Input::Text("0812-3456-7890"), needle: "tombol di bawah", capture: Capture::None },
    Step { input: Input::Location, needle: "jam berapa", capture: Capture::First("slot:") },
    Step { input: Input::Captured("slot:x"), needle: "Bayar pakai apa", capture: Capture::None },
    Step { input: Input::Press("pay:cod"), needle: "catatan", capture: Capture::None },
    Step { input: Input::Press("note:none"), needle: "Ringkasan", capture: Capture::None },
    Step { input: Input::Press("place"), needle: PLACED, capture: Capture::None },
];

/// A whole order (`pasar loadtest rush`, `crash`, `outage`): the journey, then, while the
/// trader and the courier do their part ([`staff`]), the wait until the order is at the door
/// (paid in cash to the courier), and the shopper's ratings: five stars for the courier and
/// for the stall, and a word.
const WHOLE_ORDER: [Step; 16] = [
    JOURNEY[0],
    JOURNEY[1],
    JOURNEY[2],
    JOURNEY[3],
    JOURNEY[4],
    JOURNEY[5],
    JOURNEY[6],
    JOURNEY[7],
    JOURNEY[8],
    JOURNEY[9],
    JOURNEY[10],
    JOURNEY[11],
    Step { input: Input::Await, needle: "pengantaran oleh kurir", capture: Capture::Last("rate:") },
    Step { input: Input::Captured("rate:x"), needle: "Bagaimana belanjaan", capture: Capture::Last("rate:") },
    Step { input: Input::Captured("rate:x"), needle: "Ada pesan atau saran", capture: Capture::None },
    Step {
        input: Input::Text("Sayurnya segar, kurirnya ramah"),
        needle: "Penilaian Anda membantu",
        capture: Capture::None,
    },
];

/// The same on WhatsApp: no reply keyboards (the phone and the address are asked in words),
/// and the slots (one an hour: more than a list holds) come as a numbered menu, answered "1".
const WHOLE_ORDER_WA: [Step; 16] = [
    JOURNEY[0],
    JOURNEY[1],
    JOURNEY[2],
    JOURNEY[3],
    JOURNEY[4],
    Step { input: Input::Text("Ani Rahayu"), needle: "Nomor HP", capture: Capture::None },
    Step { input: Input::Text("0812-3456-7890"), needle: "Kirim ke mana", capture: Capture::None },
    Step { input: Input::Location, needle: "jam berapa", capture: Capture::None },
    Step { input: Input::Text("1"), needle: "Bayar pakai apa", capture: Capture::None },
    JOURNEY[9],
    JOURNEY[10],
    JOURNEY[11],
    WHOLE_ORDER[12],
    WHOLE_ORDER[13],
    WHOLE_ORDER[14],
    WHOLE_ORDER[15],
];

struct Shopper {
    index: usize,
    bot: usize,
    chat: i64,
    lat: f64,
    lon: f64,
    captured: Option<String>,
    /// The id of the latest message in the chat (a pressed button sits on it).
    last_message: i64,
    /// Against the echo bot: any reply answers a step.
    echo: bool,
    trace: bool,
    /// How long a step may go unanswered before the run is declared broken.
    patience: Duration,
    /// On WhatsApp: their number, and how many messages they sent (their wamids count up).
    wa: Option<String>,
    sent: u64,
    /// "Pesan sekarang" was answered with the slots again (the one picked is gone): the shopper
    /// goes back to picking one.
    slot_gone: bool,
}

/// One update's timings.
#[derive(Clone, Copy)]
struct Sample {
    queued: Instant,
    /// The outage's phase when it was queued.
    phase: outage::Phase,
    /// A WhatsApp shopper's message (a webhook), not a Telegram update.
    whatsapp: bool,
    /// Update to the first reply in the chat.
    first: Duration,
    /// Update to the step's last reply.
    complete: Duration,
}

impl Shopper {
    fn new(index: usize, markets: &[MarketInfo], echo: bool, trace: bool, whatsapp: bool) -> Shopper {
        let bot = index % markets.len();
        Shopper {
            index,
            bot,
            chat: CHAT_BASE + index as i64,
            lat: markets[bot].lat,
            lon: markets[bot].lon,
            captured: None,
            last_message: 0,
            echo,
            trace,
            patience: STEP_TIMEOUT,
            wa: whatsapp.then(|| wa_user(index)),
            sent: 0,
            slot_gone: false,
        }
    }

    /// What the shopper's updates are stored under (`orders.user_id`).
    fn user(&self) -> String {
        self.wa.clone().unwrap_or_else(|| self.chat.to_string())
    }

    /// Sends a step's input to the market's number on WhatsApp (a signed webhook, as Meta posts
    /// it); the chat's clock starts before the first attempt.
    async fn send_whatsapp(&mut self, fake: &Fake, from: String, input: Input) -> anyhow::Result<Instant> {
        let content = match input {
            Input::Text(text) => json!({"type": "text", "text": {"body": text}}),
            Input::Location => json!({"type": "location", "location": {"latitude": self.lat, "longitude": self.lon}}),
            Input::Press(data) => world::wa_choice(data, false),
            Input::Captured(fallback) => {
                world::wa_choice(&self.captured.take().unwrap_or_else(|| fallback.to_string()), true)
            }
            Input::Await => anyhow::bail!("nothing to send while waiting"),
        };
        self.sent += 1;
        fake.whatsapp_in(self.chat, self.bot, &from, self.sent, content, self.patience).await
    }

    async fn step(&mut self, fake: &Fake, step: &Step) -> anyhow::Result<Sample> {
        let queued = match (step.input, self.wa.clone()) {
            (Input::Await, _) => Instant::now(),
            (input, Some(from)) => self.send_whatsapp(fake, from, input).await?,
            (_, None) => self.push_telegram(fake, step),
        };
        self.answer(fake, step, queued).await
    }

    /// Queues a step's input at the market's bot.
    fn push_telegram(&mut self, fake: &Fake, step: &Step) -> Instant {
        let chat = self.chat;
        match step.input {
            Input::Text(text) => fake.push(self.bot, chat, |id| text_update_json(id, chat, text)),
            Input::Location => {
                let (lat, lon) = (self.lat, self.lon);
                fake.push(self.bot, chat, |id| {
                    json!({"update_id": id, "message": {
                        "message_id": id, "date": 1_764_300_000, "chat": chat_json(chat), "from": user_json(chat),
                        "location": {"latitude": lat, "longitude": lon}
                    }})
                })
            }
            // Never here (nothing is sent): the news comes by itself.
            Input::Await => Instant::now(),
            Input::Press(_) | Input::Captured(_) => {
                let data = match step.input {
                    Input::Press(d) => d.to_string(),
                    Input::Captured(fallback) => self.captured.take().unwrap_or_else(|| fallback.to_string()),
                    _ => unreachable!("a button"),
                };
                let on = self.last_message;
                fake.push(self.bot, chat, |id| press_json(id, chat, &data, on))
            }
        }
    }

    /// Waits for the step's answer (the reply containing its needle) and keeps the button it
    /// captures.
    async fn answer(&mut self, fake: &Fake, step: &Step, queued: Instant) -> anyhow::Result<Sample> {
        let chat = self.chat;
        let phase = fake.faults.phase();
        let slot = fake.slot(chat).expect("a shopper's chat");
        // The wait for the door is the trader's and the courier's eight steps, each waiting its
        // turn behind the rest of the market's orders.
        let patience = if matches!(step.input, Input::Await) { self.patience * AWAIT_STEPS } else { self.patience };
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            {
                let c = slot.inner.lock().expect("chat lock");
                let mut answer =
                    if self.echo { c.replies.first() } else { c.replies.iter().find(|r| r.text.contains(step.needle)) };
                // The slot went while the shopper was held up: the slots come again, and the first
                // one is picked anew.
                let slots_again = ((step.needle == PLACED || step.needle == SLOT_PICKED) && answer.is_none())
                    .then(|| c.replies.iter().position(|r| r.text.contains(SLOT_GONE)))
                    .flatten()
                    .and_then(|gone| c.replies.iter().skip(gone + 1).find(|r| r.text.contains("jam berapa")));
                if let Some(menu) = slots_again {
                    self.slot_gone = true;
                    self.captured = buttons(&menu.markup).into_iter().find(|d| d.starts_with("slot:"));
                    answer = Some(menu);
                }
                if let Some(answer) = answer {
                    let complete = queued.elapsed();
                    if !self.echo {
                        let found = buttons(&answer.markup);
                        let (prefix, found) = match step.capture {
                            Capture::None => ("", None),
                            Capture::First(p) => (p, found.into_iter().find(|d| d.starts_with(p))),
                            Capture::Last(p) => (p, found.into_iter().rfind(|d| d.starts_with(p))),
                        };
                        if !prefix.is_empty() {
                            anyhow::ensure!(found.is_some(), "no `{prefix}` button in {:?}", answer.text);
                            self.captured = found;
                        }
                    }
                    self.last_message = c.replies.last().map_or(answer.id, |r| r.id);
                    if self.trace && self.index == 0 {
                        for r in &c.replies {
                            println!("  < {} {}", r.text.replace('\n', " ⏎ "), buttons(&r.markup).join(" | "));
                        }
                    }
                    let whatsapp = self.wa.is_some();
                    return Ok(Sample { queued, phase, whatsapp, first: c.first.unwrap_or(complete), complete });
                }
            }
            if tokio::time::timeout_at(deadline, slot.notify.notified()).await.is_err() {
                let c = slot.inner.lock().expect("chat lock");
                let got: Vec<&str> = c.replies.iter().map(|r| r.text.as_str()).collect();
                anyhow::bail!("chat {chat}: no reply with {:?} within {patience:?}; got {got:?}", step.needle);
            }
        }
    }
}

/// The callback data of every inline button.
fn buttons(markup: &Value) -> Vec<String> {
    markup["inline_keyboard"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r.as_array())
                .flatten()
                .filter_map(|b| b["callback_data"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Targets: `pasar run` and the echo bot, as child processes.

struct Target {
    name: &'static str,
    child: Child,
}

impl Target {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `pasar run` on `db` with the fake at `url` as its Bot API (and, if the fake has
/// WhatsApp's side, as its Graph API, with its HTTP server on the fake's port for the webhooks).
fn spawn_pasar(
    exe: &Path,
    fake: &Fake,
    url: &str,
    dir: &Path,
    db: &Path,
    markets: &[MarketInfo],
) -> anyhow::Result<Target> {
    // The data and dialogues built into the binary (the run's folder has none).
    // The load's shoppers may type faster than people do (a test-sized rush gives each of ten
    // shoppers four updates a second): the flood rule has its own case (`pasar loadtest
    // abuse`), not this one.
    let mut config = format!(
        "[telegram]\napi_url = \"{url}\"\n\n\
         [telegram.limits]\nper_chat_per_sec = 10000\nper_bot_per_sec = 10000\n\n\
         [inbound]\nper_user_messages = 10000\n"
    );
    if let Some(wa) = &fake.wa {
        config.push_str(&format!(
            "\n[server]\nlisten = \"127.0.0.1:{}\"\nops_listen = \"127.0.0.1:0\"\n\n[whatsapp]\ngraph_url = \"{url}/graph\"\ntimeout_secs = 10\n\n\
             [whatsapp.limits]\nper_number_per_sec = 10000\nper_user_interval_secs = 0\n",
            wa.port
        ));
        for (i, m) in markets.iter().enumerate() {
            config.push_str(&format!("\n[markets.{}]\nwhatsapp_phone_number_id = \"{}\"\n", m.slug, wa_number(i)));
        }
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, config)?;
    let mut cmd = Command::new(exe);
    cmd.arg("--config").arg(&path).args(["run", "--db"]).arg(db).current_dir(dir);
    for m in markets {
        cmd.env(crate::channel::telegram::token_variable(&m.slug), &m.token);
    }
    if fake.wa.is_some() {
        cmd.env("PASAR_WHATSAPP_ACCESS_TOKEN", "graph-token")
            .env("PASAR_WHATSAPP_APP_SECRET", WA_SECRET)
            .env("PASAR_WHATSAPP_VERIFY_TOKEN", "verify-loadtest");
    }
    let child = cmd
        .env_remove("PASAR_DB")
        .env_remove("PASAR_CONFIG")
        .env("PASAR_LOG", std::env::var("PASAR_BENCH_LOG").unwrap_or_else(|_| "off".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("PASAR_BENCH_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
        .spawn()?;
    Ok(Target { name: "pasar run", child })
}

fn spawn_echo(echo: &[String], url: &str) -> anyhow::Result<Target> {
    let (exe, args) = echo.split_first().ok_or_else(|| anyhow::anyhow!("no echo bot command"))?;
    let child = Command::new(exe)
        .args(args)
        .args(["--echo-bot", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    Ok(Target { name: "teloxide echo", child })
}

/// Waits until every bot has called `getUpdates`.
async fn wait_ready(fake: &Fake, target: &mut Target) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    while !fake.all_polled() {
        if let Some(status) = target.child.try_wait()? {
            anyhow::bail!("{} exited before polling: {status}", target.name);
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(60), "{} did not start polling", target.name);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(t0.elapsed())
}

/// A `/proc/<pid>/status` field in kB.
fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU seconds of a process (clock ticks of 1/100 s, Linux's USER_HZ).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) close with ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// What one run measured.
struct RunReport {
    updates: usize,
    elapsed: Duration,
    first: Vec<Duration>,
    complete: Vec<Duration>,
    peak_rss_kb: u64,
    rss_kb: u64,
    target_cpu: f64,
    bench_cpu: f64,
    stalls: usize,
    /// Whole orders: how many were placed and delivered.
    orders: Option<WholeOrders>,
    /// Update-to-first-reply of the WhatsApp shoppers' messages (sorted; in `first` too).
    on_whatsapp: Vec<Duration>,
    /// Same text: how many calls answer a message, as calibrated.
    calibration: Option<same_text::Calibration>,
}

/// What the traders and couriers of a run did.
struct WholeOrders {
    /// Updates the WhatsApp shoppers sent (webhooks posted to `pasar run`); the longest a post
    /// took to be answered, and how many took over 100 ms.
    webhooks: u64,
    post_max: Duration,
    posts_slow: u64,
    placed: usize,
    delivered: usize,
    /// Orders the shopper rated (the run may end before the last ones are).
    rated: usize,
    /// Presses the bot refused them.
    refused: usize,
}

impl RunReport {
    fn rate(&self) -> f64 {
        self.updates as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------------------------------------
// The two loads.

/// Every shopper does `journeys` whole journeys, each step after the previous one's answer.
async fn closed_loop(
    fake: Arc<Fake>,
    markets: &[MarketInfo],
    shoppers: usize,
    journeys: usize,
    echo: bool,
    trace: bool,
) -> anyhow::Result<(Vec<Sample>, Duration)> {
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..shoppers {
        let fake = Arc::clone(&fake);
        let mut shopper = Shopper::new(i, markets, echo, trace, false);
        tasks.spawn(async move {
            let mut samples = Vec::with_capacity(journeys * JOURNEY.len());
            for j in 0..journeys {
                shopper.trace = trace && j == 0;
                for step in &JOURNEY {
                    if shopper.trace && shopper.index == 0 {
                        println!("> {}", describe(step.input));
                    }
                    samples.push(shopper.step(&fake, step).await?);
                }
            }
            Ok::<_, anyhow::Error>(samples)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r??);
    }
    Ok((all, t0.elapsed()))
}

fn describe(input: Input) -> String {
    match input {
        Input::Text(t) => t.to_string(),
        Input::Press(d) => format!("[press {d}]"),
        Input::Captured(_) => "[press the button found]".into(),
        Input::Location => "[share location]".into(),
        Input::Await => "[wait for the delivery]".into(),
    }
}

/// What one shopper did.
#[derive(Default)]
struct ShopperRun {
    chat: i64,
    /// What their updates are stored under (a Telegram chat id, a WhatsApp number).
    user: String,
    /// "telegram" or "whatsapp".
    channel: &'static str,
    /// One for each update sent (a wait sends none).
    samples: Vec<Sample>,
    /// The order numbers the bot told this shopper, in order.
    orders: Vec<String>,
    /// Times the script was done to its end (for a whole order: rated).
    finished: usize,
    /// Why the shopper stopped early: a step unanswered.
    error: Option<String>,
}

/// Who gets the next turn.
#[derive(Clone, Copy)]
enum Who {
    Shopper(usize),
    Worker(usize),
}

/// The people of a run, each a task that sends its next update when given a turn: shoppers
/// (in line once their previous step is answered) and, for whole orders, traders and couriers
/// (in a line of their own while they have something to do, served first: the order in hand
/// before a new one).
struct Crowd {
    shopper_turns: Vec<tokio::sync::mpsc::Sender<()>>,
    worker_turns: Vec<tokio::sync::mpsc::Sender<()>>,
    ready: tokio::sync::mpsc::UnboundedReceiver<usize>,
    busy: tokio::sync::mpsc::UnboundedReceiver<usize>,
    shoppers: tokio::task::JoinSet<ShopperRun>,
    workers: tokio::task::JoinSet<staff::WorkerRun>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Crowd {
    /// `shoppers` shoppers following their script over and over ([`WHOLE_ORDER`] or, on
    /// WhatsApp, [`WHOLE_ORDER_WA`] if `whole`, else [`JOURNEY`]), and a worker for each of
    /// `staff`; each waits up to `patience` for an answer.
    #[allow(clippy::too_many_arguments)]
    fn start(
        fake: &Arc<Fake>,
        markets: &[MarketInfo],
        shoppers: usize,
        whole: bool,
        staff: &[staff::Member],
        patience: Duration,
        echo: bool,
    ) -> Crowd {
        let (ready_tx, ready) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let (busy_tx, busy) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let (stop, _) = tokio::sync::watch::channel(false);
        let mut crowd = Crowd {
            shopper_turns: Vec::with_capacity(shoppers),
            worker_turns: Vec::with_capacity(staff.len()),
            ready,
            busy,
            shoppers: tokio::task::JoinSet::new(),
            workers: tokio::task::JoinSet::new(),
            stop,
        };
        for i in 0..shoppers {
            let (turn_tx, turn_rx) = tokio::sync::mpsc::channel::<()>(1);
            crowd.shopper_turns.push(turn_tx);
            let wa = fake.on_whatsapp(i);
            let mut shopper = Shopper::new(i, markets, echo, false, wa);
            shopper.patience = patience;
            let script: &'static [Step] = match (whole, wa) {
                (false, _) => &JOURNEY,
                (true, false) => &WHOLE_ORDER,
                (true, true) => &WHOLE_ORDER_WA,
            };
            crowd.shoppers.spawn(shopper_turns(Arc::clone(fake), shopper, script, turn_rx, ready_tx.clone(), i));
        }
        for (k, member) in staff.iter().enumerate() {
            let (turn_tx, turn_rx) = tokio::sync::mpsc::channel::<()>(1);
            crowd.worker_turns.push(turn_tx);
            let worker = staff::Worker::new(member.clone(), patience);
            let stop = crowd.stop.subscribe();
            crowd.workers.spawn(worker_turns(Arc::clone(fake), worker, turn_rx, busy_tx.clone(), k, stop));
        }
        crowd
    }

    /// The next one whose turn it is, if anyone is waiting for one now.
    fn try_next(&mut self) -> Option<Who> {
        if let Ok(k) = self.busy.try_recv() {
            return Some(Who::Worker(k));
        }
        self.ready.try_recv().ok().map(Who::Shopper)
    }

    /// The next one whose turn it is, waiting for one to be ready.
    async fn next(&mut self) -> Option<Who> {
        tokio::select! {
            biased;
            Some(k) = self.busy.recv() => Some(Who::Worker(k)),
            i = self.ready.recv() => i.map(Who::Shopper),
        }
    }

    async fn give(&self, who: Who) -> anyhow::Result<()> {
        let turn = match who {
            Who::Shopper(i) => &self.shopper_turns[i],
            Who::Worker(k) => &self.worker_turns[k],
        };
        turn.send(()).await.map_err(|_| anyhow::anyhow!("a shopper or worker stopped"))
    }

    /// Ends the run: no shopper starts another step; the traders and couriers go on until every
    /// shopper's order in hand is at their door (each shopper waits as patiently as for any
    /// answer), then stop.
    async fn finish(mut self) -> (Vec<ShopperRun>, Vec<staff::WorkerRun>) {
        self.shopper_turns.clear();
        let mut shoppers = Vec::new();
        loop {
            tokio::select! {
                biased;
                Some(k) = self.busy.recv() => {
                    let _ = self.worker_turns[k].send(()).await;
                }
                done = self.shoppers.join_next() => match done {
                    Some(Ok(run)) => shoppers.push(run),
                    Some(Err(e)) => shoppers.push(ShopperRun { error: Some(format!("a shopper's task failed: {e}")), ..ShopperRun::default() }),
                    None => break,
                },
            }
        }
        let _ = self.stop.send(true);
        self.worker_turns.clear();
        let mut workers = Vec::new();
        while let Some(done) = self.workers.join_next().await {
            workers.push(done.unwrap_or_else(|e| staff::WorkerRun {
                error: Some(format!("a worker's task failed: {e}")),
                ..staff::WorkerRun::default()
            }));
        }
        (shoppers, workers)
    }
}

/// A shopper's task: a step each time their turn comes (a wait takes no turn).
async fn shopper_turns(
    fake: Arc<Fake>,
    mut shopper: Shopper,
    script: &'static [Step],
    mut turn: tokio::sync::mpsc::Receiver<()>,
    ready: tokio::sync::mpsc::UnboundedSender<usize>,
    i: usize,
) -> ShopperRun {
    let channel = if shopper.wa.is_some() { "whatsapp" } else { "telegram" };
    let mut run = ShopperRun { chat: shopper.chat, user: shopper.user(), channel, ..ShopperRun::default() };
    let _ = ready.send(i);
    let mut next = 0usize;
    loop {
        let step = &script[next % script.len()];
        let waits = matches!(step.input, Input::Await);
        if !waits && turn.recv().await.is_none() {
            break;
        }
        match shopper.step(&fake, step).await {
            Ok(sample) if !waits => run.samples.push(sample),
            Ok(_) => {}
            Err(e) => {
                run.error = Some(e.to_string());
                break;
            }
        }
        if next % script.len() == script.len() - 1 {
            run.finished += 1;
        }
        if step.needle == PLACED
            && let Some(slot) = fake.slot(shopper.chat)
        {
            let c = slot.inner.lock().expect("chat lock");
            run.orders.extend(c.replies.iter().find_map(|r| placed_order_number(&r.text).map(String::from)));
        }
        if std::mem::take(&mut shopper.slot_gone)
            && let Some(pick) = script.iter().position(|s| s.needle == SLOT_PICKED)
        {
            // Back to the slot, then on as before (the payment, the note, the order again).
            next = next - next % script.len() + pick - 1;
        }
        next += 1;
        if !matches!(script[next % script.len()].input, Input::Await) {
            let _ = ready.send(i);
        }
    }
    run
}

/// A trader's or courier's task: whenever their chat brings something to do, a turn for it.
async fn worker_turns(
    fake: Arc<Fake>,
    mut worker: staff::Worker,
    mut turn: tokio::sync::mpsc::Receiver<()>,
    busy: tokio::sync::mpsc::UnboundedSender<usize>,
    k: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> staff::WorkerRun {
    let mut run = staff::WorkerRun::default();
    let Some(slot) = fake.slot(worker.member.chat) else {
        run.error = Some(format!("no chat {} at the fake", worker.member.chat));
        return run;
    };
    'work: loop {
        while !worker.look(&fake) {
            tokio::select! {
                _ = slot.notify.notified() => {}
                _ = stop.changed() => break 'work,
            }
        }
        let _ = busy.send(k);
        if turn.recv().await.is_none() {
            break;
        }
        match worker.act(&fake).await {
            Ok(sample) => run.samples.push(sample),
            Err(e) => {
                run.error = Some(e.to_string());
                break;
            }
        }
    }
    run.refused = worker.refused;
    run.delivered = worker.delivered;
    run
}

/// What an open loop did.
struct OpenRun {
    /// The samples of the updates queued after the warm-up.
    samples: Vec<Sample>,
    /// Ticks that found everyone waiting (the target fell behind).
    stalls: usize,
    /// Updates answered, warm-up included.
    steps: usize,
    /// Orders placed (the shoppers were told so), warm-up included.
    journeys: usize,
    /// Presses the bot refused a trader or courier, deliveries finished, orders rated.
    refused: usize,
    delivered: usize,
    rated: usize,
}

/// Updates at `rate` per second for `warmup + seconds`; each goes to the trader or courier
/// first in line with something to do or else the shopper first in line whose previous step is
/// answered. Samples queued during the warm-up are dropped. With `staff`, shoppers follow
/// [`WHOLE_ORDER`] and every order ends at the door before the run does.
#[allow(clippy::too_many_arguments)]
async fn open_loop(
    fake: Arc<Fake>,
    markets: &[MarketInfo],
    shoppers: usize,
    staff: &[staff::Member],
    rate: f64,
    warmup: Duration,
    seconds: Duration,
    echo: bool,
) -> anyhow::Result<OpenRun> {
    let mut crowd = Crowd::start(&fake, markets, shoppers, !staff.is_empty(), staff, STEP_TIMEOUT, echo);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + seconds;
    let mut stalls = 0usize;
    loop {
        ticks.tick().await;
        if Instant::now() >= end {
            break;
        }
        let next = match crowd.try_next() {
            Some(who) => who,
            None => {
                // Everyone is waiting for an answer: the target is behind.
                stalls += 1;
                match crowd.next().await {
                    Some(who) => who,
                    None => break,
                }
            }
        };
        crowd.give(next).await?;
    }
    let (shopper_runs, worker_runs) = crowd.finish().await;
    let mut run = OpenRun { samples: Vec::new(), stalls, steps: 0, journeys: 0, refused: 0, delivered: 0, rated: 0 };
    // A trader or courier stuck leaves their market's shoppers waiting: theirs is the cause.
    if let Some(e) = worker_runs.iter().find_map(|r| r.error.clone()) {
        anyhow::bail!(e);
    }
    for r in shopper_runs {
        if let Some(e) = r.error {
            anyhow::bail!(e);
        }
        run.steps += r.samples.len();
        run.journeys += r.orders.len();
        run.rated += r.finished;
        run.samples.extend(r.samples.into_iter().filter(|s| s.queued >= measure_from && s.queued < end));
    }
    for r in worker_runs {
        run.steps += r.samples.len();
        run.refused += r.refused;
        run.delivered += r.delivered;
        run.samples.extend(r.samples.into_iter().filter(|s| s.queued >= measure_from && s.queued < end));
    }
    Ok(run)
}

enum Load {
    Closed {
        shoppers: usize,
        journeys: usize,
        trace: bool,
    },
    /// Every shopper sends `text` `messages` times ([`same_text`]).
    SameText {
        shoppers: usize,
        messages: usize,
        text: String,
    },
    /// With `staff`, whole orders (traders and couriers included).
    Open {
        shoppers: usize,
        staff: Vec<staff::Member>,
        rate: f64,
        warmup: Duration,
        seconds: Duration,
    },
}

/// Starts a fake and the target on it, runs the load, reads the target's memory and CPU.
async fn run(
    markets: &[MarketInfo],
    load: &Load,
    pasar: Option<(&Path, &Path, &Path)>,
    echo: &[String],
) -> anyhow::Result<RunReport> {
    let (chats, staff) = match load {
        Load::Closed { shoppers, .. } => (*shoppers, &[][..]),
        // And a chat for each bot to calibrate on.
        Load::SameText { shoppers, .. } => (*shoppers + markets.len(), &[][..]),
        Load::Open { shoppers, staff, .. } => (*shoppers, &staff[..]),
    };
    let fake = Fake::new(markets, chats, staff);
    // Whole orders: every second shopper, trader and courier on WhatsApp.
    let fake = Arc::new(if !staff.is_empty() && pasar.is_some() { fake.with_whatsapp()? } else { fake });
    let (url, server) = serve(Arc::clone(&fake)).await?;
    let is_echo = pasar.is_none();
    let mut target = match pasar {
        Some((exe, dir, db)) => spawn_pasar(exe, &fake, &url, dir, db, markets)?,
        None => spawn_echo(echo, &url)?,
    };
    let startup = wait_ready(&fake, &mut target).await?;
    let pid = target.pid();
    eprintln!("  {} (pid {pid}) polling all ten bots after {:.2} s", target.name, startup.as_secs_f64());
    let cpu0 = cpu_seconds(&pid.to_string()).unwrap_or(0.0);
    let self0 = cpu_seconds("self").unwrap_or(0.0);
    let mut orders = None;
    let mut calibration = None;
    let (samples, elapsed, stalls) = match load {
        Load::Closed { shoppers, journeys, trace } => {
            let (s, e) = closed_loop(Arc::clone(&fake), markets, *shoppers, *journeys, is_echo, *trace).await?;
            (s, e, 0)
        }
        Load::SameText { shoppers, messages, text } => {
            let (s, e, c) = same_text::same_text_loop(Arc::clone(&fake), markets, *shoppers, *messages, text).await?;
            calibration = Some(c);
            (s, e, 0)
        }
        Load::Open { shoppers, staff, rate, warmup, seconds } => {
            let run =
                open_loop(Arc::clone(&fake), markets, *shoppers, staff, *rate, *warmup, *seconds, is_echo).await?;
            let webhooks = fake.wa.as_ref().map_or(0, |w| w.messages.load(Ordering::Relaxed));
            let (post_max_us, posts_slow) = fake
                .wa
                .as_ref()
                .map_or((0, 0), |w| (w.post_max_us.load(Ordering::Relaxed), w.posts_slow.load(Ordering::Relaxed)));
            orders = Some(WholeOrders {
                webhooks,
                post_max: Duration::from_micros(post_max_us),
                posts_slow,
                placed: run.journeys,
                delivered: run.delivered,
                rated: run.rated,
                refused: run.refused,
            });
            (run.samples, *seconds, run.stalls)
        }
    };
    let target_cpu = cpu_seconds(&pid.to_string()).unwrap_or(0.0) - cpu0;
    let bench_cpu = cpu_seconds("self").unwrap_or(0.0) - self0;
    let peak_rss_kb = proc_status_kb(pid, "VmHWM:").unwrap_or(0);
    let rss_kb = proc_status_kb(pid, "VmRSS:").unwrap_or(0);
    if let Some(status) = target.child.try_wait()? {
        anyhow::bail!("{} exited during the run: {status}", target.name);
    }
    drop(target);
    server.abort();
    let mut first: Vec<Duration> = samples.iter().map(|s| s.first).collect();
    let mut complete: Vec<Duration> = samples.iter().map(|s| s.complete).collect();
    first.sort_unstable();
    complete.sort_unstable();
    let mut on_whatsapp: Vec<Duration> = samples.iter().filter(|s| s.whatsapp).map(|s| s.first).collect();
    on_whatsapp.sort_unstable();
    Ok(RunReport {
        on_whatsapp,
        updates: samples.len(),
        elapsed,
        first,
        complete,
        peak_rss_kb,
        rss_kb,
        target_cpu,
        bench_cpu,
        stalls,
        orders: orders.filter(|_| !staff.is_empty()),
        calibration,
    })
}

// ---------------------------------------------------------------------------------------------
// The database with stored conversations.

/// Creates a database at `db` with `n` Telegram conversations spread over the markets, each
/// after `/start`, a search, the stall's button and an amount (a conversation with a cart).
/// Their replies are marked sent, so `pasar run` starts with an empty outbox. With `staff`,
/// traders and couriers are enrolled first ([`staff::enrol`]) and every market gets a delivery
/// slot each hour.
fn seed_database(db: &Path, markets: &[MarketInfo], n: usize, staff: bool) -> anyhow::Result<Seeded> {
    let config = Config::default();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut engine = crate::runtime::open_engine(&config, db, clock)?;
    let members = if staff { staff::enrol(&mut engine, markets)? } else { Vec::new() };
    let offers: Vec<i64> = markets
        .iter()
        .map(|m| {
            engine
                .catalog()
                .offers_for(&m.slug, "kangkung")
                .first()
                .map(|o| o.id)
                .ok_or_else(|| anyhow::anyhow!("no kangkung at {}", m.slug))
        })
        .collect::<anyhow::Result<_>>()?;
    let now = engine.now();
    let chunk = 1000;
    for start in (0..n).step_by(chunk) {
        let mut events = Vec::new();
        for i in start..(start + chunk).min(n) {
            let m = i % markets.len();
            let user = UserKey { channel: ChannelKind::Telegram, id: (SEEDED_CHAT_BASE + i as i64).to_string() };
            let inputs = [
                Inbound::from_typed("/start"),
                Inbound::Text("kangkung".into()),
                Inbound::Button(format!("off:{}", offers[m])),
                Inbound::Text("2 ikat".into()),
            ];
            for (k, inbound) in inputs.into_iter().enumerate() {
                events.push(InboundEvent {
                    source_id: format!("telegram:{}:seed-{i}-{k}", markets[m].slug),
                    market: markets[m].slug.clone(),
                    user: user.clone(),
                    display_name: Some(format!("Pembeli {i}")),
                    received_at: now,
                    inbound,
                    pressed_on: None,
                });
            }
        }
        engine.store().ingest(&events)?;
        engine.process_pending()?;
        loop {
            let pending = engine.store().pending_outbox(ChannelKind::Telegram, 5000)?;
            if pending.is_empty() {
                break;
            }
            for m in pending {
                engine.store().mark_sent(m.id, now)?;
            }
        }
    }
    drop(engine);
    let conn = rusqlite::Connection::open(db)?;
    // Every journey ends in an order, thousands in a few slots: slot capacity is not measured.
    conn.execute("UPDATE markets SET slot_capacity = 10000", [])?;
    if staff {
        conn.execute("UPDATE markets SET slots = ?1", [staff::hourly_slots()])?;
    }
    let conversations: i64 = conn.query_row("SELECT COUNT(*) FROM conversations", [], |r| r.get(0))?;
    let carts: i64 = conn.query_row("SELECT COUNT(DISTINCT user_id) FROM cart_lines", [], |r| r.get(0)).unwrap_or(-1);
    let pending: i64 = conn.query_row("SELECT COUNT(*) FROM outbox WHERE status = 'pending'", [], |r| r.get(0))?;
    let traders = members.iter().filter(|m| m.role == staff::Role::Trader).count();
    eprintln!(
        "  seeded: {conversations} conversations, {carts} carts, {traders} traders and {} couriers, {pending} pending \
         outbox rows",
        members.len() - traders
    );
    Ok(Seeded { conversations, staff: members })
}

/// What [`seed_database`] made.
struct Seeded {
    /// Conversations stored (the seeded shoppers', and the traders' and couriers').
    conversations: i64,
    staff: Vec<staff::Member>,
}

/// A copy of the seeded database for one run of `pasar run`.
fn fresh_copy(seeded: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let db = dir.join("pasar.db");
    std::fs::copy(seeded, &db)?;
    for suffix in ["-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", seeded.display()));
        if from.exists() {
            std::fs::copy(&from, PathBuf::from(format!("{}{suffix}", db.display())))?;
        }
    }
    Ok(db)
}

// ---------------------------------------------------------------------------------------------
// The echo bot.

/// The baseline: ten teloxide dispatchers echoing against the fake at `url` (the calling binary
/// runs this when re-executed with `--echo-bot <url>`).
pub fn echo_bot(url: &str) -> anyhow::Result<()> {
    let markets = markets()?;
    let markets = &markets;
    use teloxide::dispatching::UpdateFilterExt;
    use teloxide::error_handlers::LoggingErrorHandler;
    use teloxide::prelude::*;
    use teloxide::update_listeners::Polling;

    let api = reqwest::Url::parse(url)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let mut bots = tokio::task::JoinSet::new();
        for m in markets {
            let bot = Bot::new(m.token.clone()).set_api_url(api.clone());
            bots.spawn(async move {
                let handler = dptree::entry()
                    .branch(Update::filter_message().endpoint(|bot: Bot, msg: Message| async move {
                        let text = msg.text().map(String::from).unwrap_or_else(|| "📍".to_string());
                        bot.send_message(msg.chat.id, text).await?;
                        Ok::<(), teloxide::RequestError>(())
                    }))
                    .branch(Update::filter_callback_query().endpoint(|bot: Bot, q: CallbackQuery| async move {
                        if let Some(chat) = q.message.as_ref().map(|m| m.chat().id) {
                            bot.send_message(chat, q.data.clone().unwrap_or_default()).await?;
                        }
                        bot.answer_callback_query(q.id.clone()).await?;
                        Ok(())
                    }));
                let listener = Polling::builder(bot.clone()).timeout(Duration::from_secs(10)).build();
                Dispatcher::builder(bot, handler)
                    .build()
                    .dispatch_with_listener(listener, LoggingErrorHandler::new())
                    .await;
            });
        }
        while bots.join_next().await.is_some() {}
    });
    // Any unanswered step or exit of a target ended the run with an error before this.
    println!("errors: none (every step answered within a minute; every target ran throughout)");
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn print_report(label: &str, r: &RunReport) {
    println!(
        "{label:<28} {:>9.0} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9.1} {:>8.1} {:>7.1}",
        r.rate(),
        ms(percentile(&r.first, 0.50)),
        ms(percentile(&r.first, 0.99)),
        ms(r.first.last().copied().unwrap_or_default()),
        ms(percentile(&r.complete, 0.50)),
        ms(percentile(&r.complete, 0.99)),
        kb_to_mb(r.peak_rss_kb),
        r.target_cpu,
        r.bench_cpu,
    );
}

fn print_header() {
    println!(
        "{:<28} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>7}",
        "run", "updates/s", "p50 ms", "p99 ms", "max ms", "step p50", "step p99", "peak MB", "CPU s", "gen s"
    );
}

/// The same-text echo run's label.
const TEXT_ECHO: &str = "text: teloxide echo";
/// The same-text run the others are compared with, and the share of its rate they must keep.
const TEXT_REFERENCE: &str = "keranjang";
const TEXT_TARGET: f64 = 0.6;

/// `12345.6` as `12,346`.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// One line a text of the same-text runs: its rate and latency, its share of the echo bot's
/// rate and of [`TEXT_REFERENCE`]'s (held to [`TEXT_TARGET`]), and how many calls answered it.
fn print_same_text(texts: &[String], reports: &[(String, RunReport)]) {
    let find = |label: &str| reports.iter().find(|(l, _)| l == label).map(|(_, r)| r);
    let echo = find(TEXT_ECHO);
    let reference = find(&format!("text {TEXT_REFERENCE:?}: pasar run"));
    let line = |r: &RunReport| {
        format!(
            "{} updates/s (p50 {} ms, p99 {} ms)",
            thousands(r.rate()),
            ms(percentile(&r.first, 0.50)),
            ms(percentile(&r.first, 0.99))
        )
    };
    println!(
        "same text: closed loop, each message sent once the previous one is answered (its reply's calls all came)"
    );
    if let Some(e) = echo {
        println!("echo bot: {}", line(e));
    }
    for text in texts {
        let Some(r) = find(&format!("text {text:?}: pasar run")) else { continue };
        let mut out = format!("text {text:?}: pasar run {}", line(r));
        if let Some(e) = echo {
            out.push_str(&format!(", {:.2} of the echo bot", r.rate() / e.rate()));
        }
        if let Some(k) = reference.filter(|_| text != TEXT_REFERENCE) {
            let ratio = r.rate() / k.rate();
            let met = if ratio >= TEXT_TARGET { "met" } else { "NOT met" };
            out.push_str(&format!(", {ratio:.2} of {TEXT_REFERENCE:?} (target >= {TEXT_TARGET:.2}: {met})"));
        }
        println!("{out}");
        if let Some(c) = r.calibration.as_ref().filter(|c| c.multi_call()) {
            println!("  note: {text:?} is answered with more than one call: {}", c.describe());
        }
    }
    if reference.is_none() {
        println!("(no {TEXT_REFERENCE:?} among --texts: no ratios to it)");
    }
}

/// Runs `args` against `pasar` (the `pasar` binary) and, where asked, the echo bot (`echo`: the
/// command that runs [`echo_bot`], without its `--echo-bot <url>`), and prints the report.
/// Fails if a shopper's step went unanswered for a minute or the target exited.
pub fn run_load(args: &LoadArgs, pasar: &Path, echo: &[String]) -> anyhow::Result<()> {
    let markets = markets()?;
    anyhow::ensure!(args.rate > 0.0 && args.shoppers > 0 && args.open_shoppers > 0, "nothing to run");
    if args.mode == Mode::Text {
        anyhow::ensure!(
            !args.texts.is_empty() && args.texts.iter().all(|t| !t.trim().is_empty()),
            "--texts needs at least one text, none empty"
        );
        anyhow::ensure!(args.messages > 0 && args.text_shoppers > 0, "--messages and --text-shoppers must be positive");
    }
    let dir = tempfile::tempdir()?;
    let seeded = dir.path().join("seeded.db");
    eprintln!("seeding {} conversations...", args.conversations);
    let t0 = Instant::now();
    let Seeded { conversations, staff } = seed_database(&seeded, &markets, args.conversations, args.whole_orders)?;
    eprintln!("  in {:.1} s", t0.elapsed().as_secs_f64());

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut reports: Vec<(String, RunReport)> = Vec::new();
    runtime.block_on(async {
        if matches!(args.mode, Mode::All | Mode::Closed) {
            let load = Load::Closed { shoppers: args.shoppers, journeys: args.journeys, trace: args.trace };
            eprintln!("closed loop, pasar: {} shoppers x {} journeys", args.shoppers, args.journeys);
            let run_dir = dir.path().join("closed");
            let db = fresh_copy(&seeded, &run_dir)?;
            reports.push(("closed: pasar run".into(), run(&markets, &load, Some((pasar, &run_dir, &db)), echo).await?));
            eprintln!("closed loop, echo bot");
            let load = Load::Closed { shoppers: args.shoppers, journeys: args.journeys, trace: false };
            reports.push(("closed: teloxide echo".into(), run(&markets, &load, None, echo).await?));
        }
        if matches!(args.mode, Mode::All | Mode::Open) {
            let load = Load::Open {
                shoppers: args.open_shoppers,
                staff: staff.clone(),
                rate: args.rate,
                warmup: Duration::from_secs_f64(args.warmup),
                seconds: Duration::from_secs_f64(args.seconds),
            };
            eprintln!("open loop, pasar: {} updates/s for {} s", args.rate, args.seconds);
            let run_dir = dir.path().join("open");
            let db = fresh_copy(&seeded, &run_dir)?;
            reports.push((
                format!("open {}/s: pasar run", args.rate),
                run(&markets, &load, Some((pasar, &run_dir, &db)), echo).await?,
            ));
            if args.open_echo {
                eprintln!("open loop, echo bot");
                reports.push((format!("open {}/s: teloxide echo", args.rate), run(&markets, &load, None, echo).await?));
            }
        }
        if args.mode == Mode::Text {
            let shoppers = args.text_shoppers * markets.len();
            for (k, text) in args.texts.iter().enumerate() {
                eprintln!("same text {text:?}, pasar: {shoppers} shoppers x {} messages", args.messages);
                let load = Load::SameText { shoppers, messages: args.messages, text: text.clone() };
                let run_dir = dir.path().join(format!("text-{k}"));
                let db = fresh_copy(&seeded, &run_dir)?;
                let report = run(&markets, &load, Some((pasar, &run_dir, &db)), echo).await?;
                reports.push((format!("text {text:?}: pasar run"), report));
            }
            eprintln!("same text, echo bot");
            let load = Load::SameText { shoppers, messages: args.messages, text: args.texts[0].clone() };
            reports.push((TEXT_ECHO.into(), run(&markets, &load, None, echo).await?));
        }
        Ok::<_, anyhow::Error>(())
    })?;

    println!();
    let mut sizes = Vec::new();
    if matches!(args.mode, Mode::All | Mode::Closed) {
        sizes.push(format!(
            "closed loop: {} shoppers x {} journeys x {} updates",
            args.shoppers,
            args.journeys,
            JOURNEY.len()
        ));
    }
    if matches!(args.mode, Mode::All | Mode::Open) {
        sizes.push(format!("open loop: {} shoppers", args.open_shoppers));
    }
    if args.mode == Mode::Text {
        sizes.push(format!(
            "same text: {} bots x {} shoppers x {} messages = {} updates a text",
            markets.len(),
            args.text_shoppers,
            args.messages,
            markets.len() * args.text_shoppers * args.messages
        ));
    }
    println!(
        "Telegram load: ten bots on a fake Bot API, {conversations} stored conversations in pasar's database ({})",
        sizes.join("; ")
    );
    println!("p50/p99/max: update queued -> first reply in that chat; step: -> the step's last reply");
    println!("peak MB: VmHWM of the target process; CPU s: its CPU time in the run; gen s: the generator's");
    print_header();
    for (label, r) in &reports {
        print_report(label, r);
    }
    for (label, r) in &reports {
        if r.stalls > 0 {
            println!(
                "{label}: {} ticks found nobody ready (everyone waiting for an answer{})",
                r.stalls,
                if r.orders.is_some() { " or for their order at the door" } else { ": the target fell behind" }
            );
        }
        println!(
            "{label}: {} updates in {:.2} s, RSS at end {:.1} MB",
            r.updates,
            r.elapsed.as_secs_f64(),
            kb_to_mb(r.rss_kb)
        );
        if let Some(o) = &r.orders {
            println!(
                "{label}: every second shopper, trader and courier on WhatsApp ({} signed webhooks in the whole run, warm-up and the \
                 last deliveries included; theirs: p50 {} ms, p99 {} ms, max {} ms to the first reply; the longest \
                 post took {} ms to be answered, {} over 100 ms)",
                o.webhooks,
                ms(percentile(&r.on_whatsapp, 0.50)),
                ms(percentile(&r.on_whatsapp, 0.99)),
                ms(r.on_whatsapp.last().copied().unwrap_or_default()),
                ms(o.post_max),
                o.posts_slow
            );
            println!(
                "{label}: whole orders: {} placed, {} accepted and packed by their traders, taken, collected and \
                 handed over by couriers (cash and photo); {} rated by their shoppers; {} presses refused",
                o.placed, o.delivered, o.rated, o.refused
            );
            anyhow::ensure!(o.delivered == o.placed, "{} orders placed but {} delivered", o.placed, o.delivered);
            anyhow::ensure!(o.refused == 0, "{} presses of traders and couriers refused", o.refused);
        }
    }
    let closed_pasar = reports.iter().find(|(l, _)| l == "closed: pasar run").map(|(_, r)| r);
    let closed_echo = reports.iter().find(|(l, _)| l == "closed: teloxide echo").map(|(_, r)| r);
    println!();
    if let (Some(p), Some(e)) = (closed_pasar, closed_echo) {
        let ratio = p.rate() / e.rate();
        println!(
            "throughput ratio pasar/echo: {ratio:.2} (target >= 0.70: {})",
            if ratio >= 0.7 { "met" } else { "NOT met" }
        );
    }
    if args.mode == Mode::Text {
        print_same_text(&args.texts, &reports);
    }
    if let Some((_, r)) = reports.iter().find(|(l, _)| l.starts_with("open") && l.ends_with("pasar run")) {
        let p99 = percentile(&r.first, 0.99);
        println!(
            "open loop p99 at {:.0} updates/s: {} ms (target < 50 ms: {})",
            args.rate,
            ms(p99),
            if p99 < Duration::from_millis(50) { "met" } else { "NOT met" }
        );
    }
    let peak = reports.iter().filter(|(l, _)| l.ends_with("pasar run")).map(|(_, r)| r.peak_rss_kb).max();
    if let Some(peak) = peak {
        println!(
            "pasar peak RSS: {:.1} MB with ten bots and {conversations} stored conversations (target < 60 MB: {})",
            kb_to_mb(peak),
            if kb_to_mb(peak) < 60.0 { "met" } else { "NOT met" }
        );
    }
    // Any unanswered step or exit of a target ended the run with an error before this.
    println!("errors: none (every step answered within a minute; every target ran throughout)");
    Ok(())
}

/// `pasar run` with ten bots polling the fake and nothing to do: how long until every bot polls,
/// and the CPU and memory it then uses over `seconds` (the database holds `conversations`).
pub fn idle(pasar: &Path, seconds: f64, conversations: usize) -> anyhow::Result<()> {
    anyhow::ensure!(seconds > 0.0, "--seconds must be positive");
    let markets = markets()?;
    let dir = tempfile::tempdir()?;
    let seeded = dir.path().join("seeded.db");
    eprintln!("seeding {conversations} conversations...");
    let stored = seed_database(&seeded, &markets, conversations, false)?.conversations;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let fake = Arc::new(Fake::new(&markets, 1, &[]));
        let (url, server) = serve(Arc::clone(&fake)).await?;
        let run_dir = dir.path().join("idle");
        let db = fresh_copy(&seeded, &run_dir)?;
        let mut target = spawn_pasar(pasar, &fake, &url, &run_dir, &db, &markets)?;
        let startup = wait_ready(&fake, &mut target).await?;
        let pid = target.pid().to_string();
        // Settled: the start's own work (menus, first reads) is done.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cpu0 = cpu_seconds(&pid).unwrap_or(0.0);
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        let cpu = cpu_seconds(&pid).unwrap_or(0.0) - cpu0;
        let rss = proc_status_kb(target.pid(), "VmRSS:").unwrap_or(0);
        let cut = fake.polls_cut.load(Ordering::Relaxed);
        if let Some(status) = target.child.try_wait()? {
            anyhow::bail!("pasar run exited while idle: {status}");
        }
        drop(target);
        server.abort();
        println!("idle: ten bots polling a fake Bot API, {stored} stored conversations");
        println!("startup: every bot polling {:.2} s after the start (target < 1 s)", startup.as_secs_f64());
        println!(
            "idle CPU: {cpu:.2} s in {seconds:.0} s ({:.2} % of one core); RSS {:.1} MB",
            100.0 * cpu / seconds,
            kb_to_mb(rss)
        );
        // pasar run polls with its default long-poll timeout (25 s): a client that gives up
        // sooner leaves every poll with an error and a new connection.
        println!("long polls given up by pasar run before the answer: {cut}");
        anyhow::ensure!(cut == 0, "{cut} long polls were given up by pasar run before the fake answered");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shopper held up across the hour: "Pesan sekarang" is answered with the slot gone and the
    /// slots again; the shopper takes the first one anew and goes back to picking it.
    #[tokio::test]
    async fn a_slot_gone_at_the_order_sends_the_shopper_back_to_the_slots() {
        let markets = markets().expect("markets");
        let fake = Fake::new(&markets, 1, &[]);
        let mut shopper = Shopper::new(0, &markets, false, false, false);
        let place = WHOLE_ORDER.iter().find(|s| s.needle == PLACED).expect("the order step");
        let queued = fake.begin(shopper.chat);
        fake.reply(
            shopper.chat,
            None,
            "Jam antar itu sudah lewat atau tidak tersedia lagi. Pilih jam lain ya.",
            json!(null),
        );
        let slots = json!({"inline_keyboard": [[{"text": "Hari ini 03:00-04:00", "callback_data": "slot:202611300300"}],
            [{"text": "Hari ini 04:00-05:00", "callback_data": "slot:202611300400"}]]});
        fake.reply(shopper.chat, None, "Mau diantar jam berapa?", slots);
        shopper.answer(&fake, place, queued).await.expect("answered by the slots");
        assert!(shopper.slot_gone);
        assert_eq!(shopper.captured.as_deref(), Some("slot:202611300300"));
        // An order placed is not taken for a slot gone.
        let mut placed = Shopper::new(0, &markets, false, false, false);
        let queued = fake.begin(placed.chat);
        fake.reply(placed.chat, None, "🎉 Pesanan BLB-0001 sudah kami terima!", json!(null));
        placed.answer(&fake, place, queued).await.expect("placed");
        assert!(!placed.slot_gone);
    }
}
