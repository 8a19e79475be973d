//! `pasar loadtest outage` (issue 10): Telegram and WhatsApp down and back. Shoppers do whole
//! orders on all ten bots with the markets' traders and couriers (every second one of each on
//! WhatsApp) while the fake Bot API and the fake Graph API go through five phases together:
//!
//! 1. calm (`--calm` s): no faults;
//! 2. down (`--down` s): every Bot API call is answered `502 Bad Gateway`, as Telegram's front
//!    (nginx) answers while the Bot API behind it is down: alternately its JSON
//!    (`{"ok":false,"error_code":502,"description":"Bad Gateway"}`) and nginx's HTML page, the
//!    two shapes bots have seen in Telegram's outages. Refusing connections would be the other
//!    shape; a 502 is the harder one for a client, since teloxide treats it as an answer (and
//!    waits 10 s after any 5xx before returning it), not as a network error. Shoppers keep
//!    writing: their updates queue at the fake, as at Telegram. Every Graph API call is answered
//!    alternately `503` with Meta's "Service temporarily unavailable" (code 2) and a front's
//!    `502` page, and Meta delivers webhooks late: each is held half the down phase, so those
//!    of its first half reach `pasar run` while it cannot answer them, and the rest come in a
//!    burst when Meta is back;
//! 3. storm (`--storm` s): the APIs are back, but every send (`sendMessage`, `setMyCommands`...)
//!    is answered `429 Too Many Requests` with `parameters.retry_after` = 5 s, and every Graph
//!    API message with the number's throughput limit (`130429`, which gives no time to wait);
//!    `getUpdates` and webhooks work, so the backlog reaches the bot and its replies wait;
//! 4. slow (`--slow` s): every call to either API is answered after 2 s;
//! 5. calm again (`--calm` s), then the shoppers finish their steps, the traders and couriers
//!    take every order placed to its door, and `pasar run` is stopped.
//!
//! The bot's timers run on through the outage: a courier's offer not taken in 5 minutes goes to
//! the next courier, and an order no trader answered in 10 minutes is cancelled. Outages near
//! those lengths (`--down` plus `--storm` plus `--slow`) end in orders not delivered.
//!
//! The checks, each printed, and the run fails if one does not hold:
//! - nothing lost: every step of every shopper, trader and courier answered (each waits as
//!   long as the outage and a minute more), every update and webhook stored and handled, every
//!   message to them marked sent (on both channels), every order a shopper was told of in the
//!   database and delivered with its cash recorded (read after `pasar run` exits);
//! - each chat's order kept, on both channels ([`check_chat_order`]): the fakes number a chat's
//!   messages as they arrive, as Telegram does (the fake Graph API gives the number in the
//!   wamid), so the bot's messages must have rising numbers in the order the bot made them (its
//!   outbox ids); and every reply must come while its shopper, trader or courier is still on
//!   the step that caused it (a step's reply arriving after the next step began fails);
//! - 429s honoured: no Telegram send more than a second after a 429 and before its
//!   `retry_after` is up (WhatsApp's 130429 names no wait: its count is printed);
//! - recovery within 64 s of the APIs coming back (the end of the down phase): the first reply
//!   delivered, and the last reply to every step that was waiting (queued before the APIs came
//!   back and unanswered when they went down), on both channels.

use super::staff::{self, WorkerRun};
use super::{
    Crowd, Fake, LoadtestArgs, STEP_TIMEOUT, Sample, Seeded, ShopperRun, fresh_copy, markets, ms, percentile,
    proc_status_kb, seed_database, serve, spawn_pasar, wait_ready,
};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long each call takes in the slow phase.
const SLOW_ANSWER: Duration = Duration::from_secs(2);
/// The `retry_after` of the storm's 429s (Telegram's are a few seconds to a few tens).
const RETRY_AFTER_SECS: u64 = 5;
/// A call in flight when a 429 was answered may still arrive: only calls later than this after
/// it count as not waiting for the `retry_after`.
const RETRY_AFTER_GRACE: Duration = Duration::from_secs(1);
/// The backlog must be answered within this of the API coming back.
const RECOVERY_TARGET: Duration = Duration::from_secs(64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Phase {
    #[default]
    Before = 0,
    Down = 1,
    Storm = 2,
    Slow = 3,
    After = 4,
}

const PHASES: [Phase; 5] = [Phase::Before, Phase::Down, Phase::Storm, Phase::Slow, Phase::After];

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Before => "calm before",
            Phase::Down => "down (5xx)",
            Phase::Storm => "429 storm",
            Phase::Slow => "slow (2 s)",
            Phase::After => "calm after",
        }
    }

    fn from_index(i: u8) -> Phase {
        PHASES.get(usize::from(i)).copied().unwrap_or(Phase::Before)
    }
}

/// What is wrong with the fake Bot API now, and what it answered. `Fake::api` asks
/// [`Faults::intercept`] first; with no outage running (the default) it lets every call through.
#[derive(Default)]
pub(super) struct Faults {
    phase: AtomicU8,
    /// When the API came back (the down phase ended).
    back_at: Mutex<Option<Instant>>,
    /// The first reply delivered after that.
    first_reply: Mutex<Option<Instant>>,
    bad_gateways: AtomicU64,
    too_many: AtomicU64,
    slowed: AtomicU64,
    /// Sends that came after a 429's grace and before its `retry_after` was up.
    early: AtomicU64,
    /// Per bot: when its latest 429 was answered.
    last_429: Mutex<HashMap<usize, Instant>>,
    /// Replies let through, by the phase they came in.
    replies: [AtomicU64; 5],
    /// The Graph API's answers: the service down (503 in Meta's JSON, or the front's 502 page),
    /// the number's throughput limit (130429), and calls slowed.
    wa_unavailable: AtomicU64,
    wa_too_many: AtomicU64,
    wa_slowed: AtomicU64,
    /// Webhooks Meta held while down, and how long it holds one (half the down phase: those of
    /// its first half come while the Graph API still refuses every reply, those of its second
    /// half in a burst when it is back).
    webhooks_held: AtomicU64,
    webhook_delay: Mutex<Duration>,
}

/// One reply as it reached a chat (noted by `Fake::reply`, in order).
#[derive(Debug, Clone, Copy)]
pub(super) struct Arrival {
    /// The message id it got (an edit: the id of the message it changed).
    pub(super) message: i64,
    pub(super) edit: bool,
    /// The chat's latest update when it came: the step the shopper was on.
    pub(super) update: i64,
}

impl Faults {
    pub(super) fn phase(&self) -> Phase {
        Phase::from_index(self.phase.load(Ordering::SeqCst))
    }

    fn set(&self, phase: Phase) {
        if self.phase() == Phase::Down && phase != Phase::Down {
            *self.back_at.lock().expect("faults lock") = Some(Instant::now());
        }
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    /// While the API is down: its front's answer, `502 Bad Gateway`, alternately as the API's
    /// JSON and as nginx's HTML page.
    pub(super) fn cut_off(&self) -> Option<Response> {
        if self.phase() != Phase::Down {
            return None;
        }
        let n = self.bad_gateways.fetch_add(1, Ordering::Relaxed);
        Some(if n.is_multiple_of(2) {
            let body = json!({"ok": false, "error_code": 502, "description": "Bad Gateway"});
            (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
        } else {
            let page = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                        <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
                        </body>\r\n</html>\r\n";
            (StatusCode::BAD_GATEWAY, [(header::CONTENT_TYPE, "text/html")], page).into_response()
        })
    }

    /// The fault's answer to a call of bot `bot`'s `method`, or `None` to answer it as usual
    /// (after the slow phase's wait).
    pub(super) async fn intercept(&self, bot: usize, method: &str) -> Option<Response> {
        let method = method.to_ascii_lowercase();
        let reply = matches!(method.as_str(), "sendmessage" | "sendphoto" | "senddocument" | "editmessagetext");
        // The messages and menus the senders pace (not the poller's answers to button presses).
        let send = reply || method == "setmycommands";
        let phase = self.phase();
        if send && phase != Phase::Down {
            let now = Instant::now();
            let mut last = self.last_429.lock().expect("faults lock");
            let held = last.get(&bot).copied();
            if let Some(at) = held
                && now > at + RETRY_AFTER_GRACE
                && now < at + Duration::from_secs(RETRY_AFTER_SECS)
            {
                self.early.fetch_add(1, Ordering::Relaxed);
            }
            if phase == Phase::Storm {
                // A fresh wait once the last one is up (Telegram's own answer to an early call
                // would be another 429, as here).
                if held.is_none_or(|at| now >= at + Duration::from_secs(RETRY_AFTER_SECS)) {
                    last.insert(bot, now);
                }
                self.too_many.fetch_add(1, Ordering::Relaxed);
                let description = format!("Too Many Requests: retry after {RETRY_AFTER_SECS}");
                let body = json!({"ok": false, "error_code": 429, "description": description,
                    "parameters": {"retry_after": RETRY_AFTER_SECS}});
                return Some((StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response());
            }
        }
        match phase {
            Phase::Down => return self.cut_off(),
            Phase::Slow => {
                self.slowed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(SLOW_ANSWER).await;
            }
            _ => {}
        }
        if reply {
            self.let_through(phase);
        }
        None
    }

    /// A reply let through: counted in the phase the call came in.
    fn let_through(&self, phase: Phase) {
        self.replies[phase as usize].fetch_add(1, Ordering::Relaxed);
        if self.back_at.lock().expect("faults lock").is_some() {
            self.first_reply.lock().expect("faults lock").get_or_insert_with(Instant::now);
        }
    }

    /// The fault's answer to a Graph API `messages` call, or `None` to answer it as usual (after
    /// the slow phase's wait). WhatsApp goes through the same phases as Telegram, in Meta's
    /// words: down, every call is answered alternately `503` with Meta's "Service temporarily
    /// unavailable" (code 2, `is_transient`) and the front's `502` page; in the storm, the
    /// number's throughput limit (`130429`, which, unlike Telegram's 429, says nothing of how
    /// long to wait); slow, 2 s a call.
    pub(super) async fn intercept_graph(&self) -> Option<Response> {
        let phase = self.phase();
        match phase {
            Phase::Down => {
                let n = self.wa_unavailable.fetch_add(1, Ordering::Relaxed);
                return Some(if n.is_multiple_of(2) {
                    let body = json!({"error": {"message": "Service temporarily unavailable", "type": "OAuthException",
                        "code": 2, "is_transient": true, "fbtrace_id": "AoutageXYZ"}});
                    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
                } else {
                    let page = "<html><body><h1>502 Bad Gateway</h1>The server returned an invalid or \
                                incomplete response.</body></html>";
                    (StatusCode::BAD_GATEWAY, [(header::CONTENT_TYPE, "text/html")], page).into_response()
                });
            }
            Phase::Storm => {
                self.wa_too_many.fetch_add(1, Ordering::Relaxed);
                let body = json!({"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException",
                    "code": 130429, "error_data": {"messaging_product": "whatsapp",
                    "details": "Cloud API message throughput has been reached."}, "fbtrace_id": "AoutageXYZ"}});
                return Some((StatusCode::BAD_REQUEST, axum::Json(body)).into_response());
            }
            Phase::Slow => {
                self.wa_slowed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(SLOW_ANSWER).await;
            }
            Phase::Before | Phase::After => {}
        }
        self.let_through(phase);
        None
    }

    /// Meta delivers webhooks late while it is down: each waits half the down phase, or until
    /// Meta is back, whichever comes first (the last ones come in a burst).
    pub(super) async fn hold_webhook(&self) {
        if self.phase() != Phase::Down {
            return;
        }
        self.webhooks_held.fetch_add(1, Ordering::Relaxed);
        let until = Instant::now() + *self.webhook_delay.lock().expect("faults lock");
        while self.phase() == Phase::Down && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A message the bot made for a chat, as its outbox row says after the run.
#[derive(Debug, Clone)]
struct Produced {
    /// Its outbox id: the order the bot made the chat's messages in.
    id: i64,
    /// The id of the chat message its last call left (for an edit, the message it changed);
    /// none if it never went.
    platform: Option<i64>,
    /// The update (its id at the fake) it answers; none for a message of the bot's own accord.
    cause: Option<i64>,
    /// It replaces an earlier message (an edit, a page turned).
    edit: bool,
}

/// Whether one chat got the bot's messages in order: `produced` in the bot's (outbox) order,
/// `arrivals` as they came. The fake numbers a chat's messages as they arrive (as Telegram
/// does), so the messages' numbers must rise in the bot's order; every arrival (one of a
/// message's calls: the calls of a message come after the previous message's and up to its own
/// number) must have come while its shopper was still on the step that caused it.
fn check_chat_order(produced: &[Produced], arrivals: &[Arrival]) -> Result<(), String> {
    let mut previous: Option<(i64, i64)> = None;
    let mut messages: Vec<(i64, &Produced)> = Vec::new();
    let mut edits: HashMap<i64, VecDeque<&Produced>> = HashMap::new();
    for p in produced {
        let Some(platform) = p.platform else {
            return Err(format!("message {} never went", p.id));
        };
        if p.edit {
            edits.entry(platform).or_default().push_back(p);
            continue;
        }
        if let Some((before, its)) = previous
            && platform <= its
        {
            return Err(format!(
                "message {} arrived as #{platform}, before message {before} (#{its}) which the bot made first",
                p.id
            ));
        }
        previous = Some((p.id, platform));
        messages.push((platform, p));
    }
    for a in arrivals {
        let owner = if a.edit {
            edits.get_mut(&a.message).and_then(|q| q.pop_front())
        } else {
            messages.iter().find(|(platform, _)| *platform >= a.message).map(|(_, p)| *p)
        };
        let Some(owner) = owner else {
            return Err(format!("reply #{} is none of the messages the bot made", a.message));
        };
        if let Some(cause) = owner.cause
            && cause != a.update
        {
            return Err(format!(
                "reply #{} (message {}, answering update {cause}) came when the shopper had sent update {}",
                a.message, owner.id, a.update
            ));
        }
    }
    Ok(())
}

/// The number at the end of an id: the update id of `telegram:<market>:<update_id>`, the
/// sender's message count of `whatsapp:wamid.rush.<number>.<count>`, Telegram's message id, or
/// the chat's message number in the fake Graph API's `wamid.out.<chat>.<number>`.
fn trailing_number(id: &str) -> Option<i64> {
    id.rsplit([':', '.']).next().and_then(|n| n.parse().ok())
}

/// `pasar loadtest outage`.
pub(super) fn run(args: &LoadtestArgs, pasar: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.down > 0.0 && args.calm >= 0.0 && args.storm >= 0.0 && args.slow >= 0.0,
        "--down must be positive; --calm, --storm and --slow not negative"
    );
    let markets = markets()?;
    let dir = tempfile::tempdir()?;
    let seeded = dir.path().join("seeded.db");
    eprintln!("seeding {} conversations...", args.conversations);
    let Seeded { conversations: stored, staff } = seed_database(&seeded, &markets, args.conversations, true)?;
    let db = fresh_copy(&seeded, &dir.path().join("outage"))?;
    let schedule = [
        (Phase::Before, args.calm),
        (Phase::Down, args.down),
        (Phase::Storm, args.storm),
        (Phase::Slow, args.slow),
        (Phase::After, args.calm),
    ];
    let patience = Duration::from_secs_f64(args.down + args.storm + args.slow) + STEP_TIMEOUT;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let outcome = runtime.block_on(async {
        let fake = Arc::new(Fake::new(&markets, args.shoppers, &staff).with_whatsapp()?);
        *fake.faults.webhook_delay.lock().expect("faults lock") = Duration::from_secs_f64(args.down / 2.0);
        let (url, server) = serve(Arc::clone(&fake)).await?;
        let run_dir = dir.path().join("outage");
        let mut target = spawn_pasar(pasar, &fake, &url, &run_dir, &db, &markets)?;
        let startup = wait_ready(&fake, &mut target).await?;
        eprintln!("  pasar run (pid {}) polling all ten bots after {:.2} s", target.pid(), startup.as_secs_f64());
        let driven = drive(&fake, &markets, &staff, args, &schedule, patience).await;
        let peak_rss_kb = proc_status_kb(target.pid(), "VmHWM:").unwrap_or(0);
        if let Some(status) = target.child.try_wait()? {
            anyhow::bail!("pasar run exited during the outage: {status}");
        }
        // The last deliveries recorded, then a graceful stop, so the database is read whole.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = std::process::Command::new("kill").args(["-TERM", &target.pid().to_string()]).status();
        let t = Instant::now();
        while target.child.try_wait()?.is_none() && t.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(target);
        server.abort();
        Ok::<_, anyhow::Error>((fake, driven?, peak_rss_kb))
    })?;
    let (fake, (reports, workers, down_at, stalls), peak_rss_kb) = outcome;
    let driven = Driven { shoppers: reports, workers, staff, down_at, stalls };
    report(args, &fake, &db, stored, &driven, peak_rss_kb)
}

/// What [`drive`] did.
struct Driven {
    shoppers: Vec<ShopperRun>,
    workers: Vec<WorkerRun>,
    staff: Vec<staff::Member>,
    /// When the API went down.
    down_at: Instant,
    /// Ticks skipped because everyone was waiting.
    stalls: usize,
}

/// Runs the shoppers, traders and couriers at `args.rate` through the phases of `schedule`;
/// returns what each did, when the API went down, and the ticks skipped because everyone was
/// waiting.
#[allow(clippy::type_complexity)]
async fn drive(
    fake: &Arc<Fake>,
    markets: &[super::MarketInfo],
    staff: &[staff::Member],
    args: &LoadtestArgs,
    schedule: &[(Phase, f64)],
    patience: Duration,
) -> anyhow::Result<(Vec<ShopperRun>, Vec<WorkerRun>, Instant, usize)> {
    let mut crowd = Crowd::start(fake, markets, args.shoppers, true, staff, patience, false);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Instant::now();
    let mut ends = Vec::new();
    let mut at = start;
    for (phase, seconds) in schedule {
        at += Duration::from_secs_f64(*seconds);
        ends.push((*phase, at));
    }
    let mut down_at = start;
    let mut current = 0usize;
    let mut stalls = 0usize;
    eprintln!("  phase: {}", schedule[0].0.name());
    loop {
        ticks.tick().await;
        let now = Instant::now();
        while current < ends.len() && now >= ends[current].1 {
            current += 1;
            if let Some((phase, _)) = ends.get(current) {
                fake.faults.set(*phase);
                if *phase == Phase::Down {
                    down_at = now;
                    // The long polls in progress end too (with the 502).
                    for bot in &fake.bots {
                        bot.notify.notify_waiters();
                    }
                }
                eprintln!("  phase: {} at {:.1} s", phase.name(), now.duration_since(start).as_secs_f64());
            }
        }
        if current >= ends.len() {
            break;
        }
        // During the outage everyone ends up waiting for an answer: the tick is skipped (nobody
        // writes twice without an answer), never waited for, so the phases keep time.
        match crowd.try_next() {
            Some(who) => crowd.give(who).await?,
            None => stalls += 1,
        }
    }
    fake.faults.set(Phase::After);
    eprintln!("  every shopper finishing their step, and every order placed taken to its door...");
    let (shoppers, workers) = crowd.finish().await;
    Ok((shoppers, workers, down_at, stalls))
}

/// A check's outcome for the report.
struct Check {
    name: &'static str,
    passed: bool,
    detail: String,
}

/// Reads the database `pasar run` left, checks, prints the summary; an error if a check failed.
fn report(
    args: &LoadtestArgs,
    fake: &Fake,
    db: &Path,
    stored: i64,
    driven: &Driven,
    peak_rss_kb: u64,
) -> anyhow::Result<()> {
    let (reports, down_at, stalls) = (&driven.shoppers, driven.down_at, driven.stalls);
    let samples = || reports.iter().flat_map(|r| &r.samples).chain(driven.workers.iter().flat_map(|w| &w.samples));
    let faults = &fake.faults;
    let back_at = faults.back_at.lock().expect("faults lock").unwrap_or(down_at);
    let conn = rusqlite::Connection::open(db)?;
    let mut checks = Vec::new();

    // Nothing lost.
    // A trader or courier stuck first: their market's shoppers wait for them.
    let errors: Vec<&str> = driven
        .workers
        .iter()
        .filter_map(|w| w.error.as_deref())
        .chain(reports.iter().filter_map(|r| r.error.as_deref()))
        .collect();
    let steps = samples().count();
    checks.push(Check {
        name: "every step answered",
        passed: errors.is_empty(),
        detail: if errors.is_empty() {
            format!("{steps} steps by {} shoppers and {} traders and couriers", reports.len(), driven.workers.len())
        } else {
            format!("{} shoppers or workers stuck, e.g. {}", errors.len(), errors[0])
        },
    });
    let webhooks = fake.wa.as_ref().map_or(0, |w| w.messages.load(Ordering::Relaxed) as i64);
    let pushed: i64 = fake.bots.iter().map(|b| b.queue.lock().expect("queue lock").next_id).sum::<i64>() + webhooks;
    let (stored_updates, handled): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(status = 'done'), 0) FROM inbox WHERE source_id NOT LIKE '%:seed-%'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    checks.push(Check {
        name: "every update stored and handled",
        passed: stored_updates == pushed && handled == pushed,
        detail: format!(
            "{pushed} sent ({webhooks} of them WhatsApp webhooks), {stored_updates} in the inbox, {handled} handled"
        ),
    });
    let mut told = 0usize;
    let mut missing = Vec::new();
    for r in reports {
        let user = &r.user;
        for number in &r.orders {
            told += 1;
            let found: i64 = conn.query_row(
                "SELECT COUNT(*) FROM orders WHERE number = ?1 AND user_id = ?2 AND channel = ?3",
                rusqlite::params![number, user, r.channel],
                |row| row.get(0),
            )?;
            if found != 1 {
                missing.push(format!("{number} (chat {user})"));
            }
        }
    }
    checks.push(Check {
        name: "every order told of is in the database",
        passed: missing.is_empty() && told > 0,
        detail: if missing.is_empty() {
            format!("{told} orders")
        } else {
            format!("{} of {told} missing, e.g. {}", missing.len(), missing[0])
        },
    });
    let undelivered: i64 =
        conn.query_row("SELECT COUNT(*) FROM orders WHERE status <> 'delivered'", [], |r| r.get(0))?;
    let cash: i64 = conn.query_row(
        "SELECT COUNT(DISTINCT order_id) FROM ledger WHERE kind = 'payment' AND method = 'cod'",
        [],
        |r| r.get(0),
    )?;
    let delivered: usize = driven.workers.iter().map(|w| w.delivered).sum();
    let refused: usize = driven.workers.iter().map(|w| w.refused).sum();
    checks.push(Check {
        name: "every order delivered, its cash recorded",
        passed: undelivered == 0 && delivered == told && cash as usize == told,
        detail: format!(
            "{delivered} of {told} orders handed over by couriers, {undelivered} not delivered, {cash} with the cash \
             recorded; {refused} presses refused (an offer that lapsed while the API was down goes to another courier)"
        ),
    });

    // Order per chat, on both channels: the fake numbers a WhatsApp chat's messages as they
    // arrive too, and gives that number in the wamid it answers with.
    let chats: Vec<i64> = reports.iter().map(|r| r.chat).chain(driven.staff.iter().map(|m| m.chat)).collect();
    let in_run: std::collections::HashSet<i64> = chats.iter().copied().collect();
    let mut produced: HashMap<i64, Vec<Produced>> = HashMap::new();
    let mut unsent = Vec::new();
    {
        let mut statement = conn.prepare(
            // The update a message answers: one of the recipient's own (a notification caused
            // by someone else's update is, for this chat, of the bot's own accord).
            // WhatsApp has no edits: a message that replaces another goes as a new one.
            "SELECT o.id, o.recipient, o.status, o.platform_id,
                    CASE WHEN i.user_id = o.recipient THEN i.source_id END,
                    o.channel = 'telegram' AND json_extract(o.message, '$.replaces') IS NOT NULL
             FROM outbox o LEFT JOIN inbox i ON i.id = o.inbox_id
             WHERE COALESCE(i.source_id, '') NOT LIKE '%:seed-%' ORDER BY o.id",
        )?;
        let rows = statement.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, bool>(5)?,
            ))
        })?;
        for row in rows {
            let (id, recipient, status, platform, source, edit) = row?;
            let Some(chat) = super::chat_of(&recipient).filter(|c| in_run.contains(c)) else {
                continue; // Not a chat of this run (the seeded conversations' rows were sent before).
            };
            if status != "sent" {
                unsent.push(format!("{id} to {recipient}: {status}"));
            }
            let cause = source.as_deref().and_then(trailing_number);
            let platform = platform.as_deref().and_then(trailing_number);
            if platform.is_none() && status == "sent" || source.is_some() && cause.is_none() {
                unsent.push(format!("{id} to {recipient}: unreadable ids {platform:?} {source:?}"));
            }
            produced.entry(chat).or_default().push(Produced { id, platform, cause, edit });
        }
    }
    let replies_made: usize = produced.values().map(Vec::len).sum();
    let wa_chats = reports.iter().filter(|r| r.channel == "whatsapp").map(|r| r.chat);
    let wa_chats = wa_chats.chain(driven.staff.iter().filter(|m| m.wa.is_some()).map(|m| m.chat));
    let wa_made: usize = wa_chats.filter_map(|chat| produced.get(&chat)).map(Vec::len).sum();
    checks.push(Check {
        name: "every message to a shopper, trader or courier sent",
        passed: unsent.is_empty() && replies_made > 0,
        detail: if unsent.is_empty() {
            format!("{} on Telegram, {wa_made} on WhatsApp", replies_made - wa_made)
        } else {
            format!("{} of {replies_made} not sent, e.g. {}", unsent.len(), unsent[0])
        },
    });
    let mut disorder = Vec::new();
    let mut arrivals = 0usize;
    for &chat in &chats {
        let Some(slot) = fake.slot(chat) else { continue };
        let log = slot.inner.lock().expect("chat lock").log.clone();
        arrivals += log.len();
        let made = produced.get(&chat).map(Vec::as_slice).unwrap_or_default();
        if let Err(e) = check_chat_order(made, &log) {
            disorder.push(format!("chat {chat}: {e}"));
        }
    }
    checks.push(Check {
        name: "each chat's replies in the bot's order",
        passed: disorder.is_empty(),
        detail: if disorder.is_empty() {
            format!("{arrivals} calls arrived in {} chats", chats.len())
        } else {
            format!("{} chats out of order, e.g. {}", disorder.len(), disorder[0])
        },
    });
    let early = faults.early.load(Ordering::Relaxed);
    checks.push(Check {
        name: "429s honoured",
        passed: early == 0,
        detail: format!("{early} sends within a 429's retry_after ({RETRY_AFTER_SECS} s, after a 1 s grace)"),
    });

    // Recovery.
    let first_reply = faults.first_reply.lock().expect("faults lock").map(|t| t.saturating_duration_since(back_at));
    let backlog: Vec<&Sample> = samples().filter(|s| s.queued < back_at && s.queued + s.complete > down_at).collect();
    let backlog_done =
        backlog.iter().map(|s| (s.queued + s.complete).saturating_duration_since(back_at)).max().unwrap_or_default();
    let recovered = first_reply.is_some_and(|f| f <= RECOVERY_TARGET) && backlog_done <= RECOVERY_TARGET;
    let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    checks.push(Check {
        name: "recovery within 64 s of the API coming back",
        passed: recovered && errors.is_empty(),
        detail: format!(
            "first reply {} after, the backlog ({} steps) answered {} after",
            first_reply.map_or_else(|| "never".to_string(), secs),
            backlog.len(),
            secs(backlog_done)
        ),
    });

    println!();
    println!(
        "outage: ten bots on a fake Bot API and a fake Graph API, {stored} stored conversations, {} shoppers (half \
         on WhatsApp) at {} updates/s",
        args.shoppers, args.rate
    );
    println!(
        "phases (both APIs): calm {} s, down {} s (502/503 to every call, webhooks held), 429 storm {} s \
         (retry_after {RETRY_AFTER_SECS} s to every send; 130429 on WhatsApp), slow {} s ({} s a call), calm {} s",
        args.calm,
        args.down,
        args.storm,
        args.slow,
        SLOW_ANSWER.as_secs(),
        args.calm
    );
    println!("updates: queued in the phase; replies: delivered in it; step: update queued -> the step's last reply");
    println!(
        "{:<14} {:>8} {:>8} {:>12} {:>12} {:>12}",
        "phase", "updates", "replies", "step p50 ms", "step p99 ms", "step max ms"
    );
    for phase in PHASES {
        let mut times: Vec<Duration> = samples().filter(|s| s.phase == phase).map(|s| s.complete).collect();
        times.sort_unstable();
        println!(
            "{:<14} {:>8} {:>8} {:>12} {:>12} {:>12}",
            phase.name(),
            times.len(),
            faults.replies[phase as usize].load(Ordering::Relaxed),
            ms(percentile(&times, 0.50)),
            ms(percentile(&times, 0.99)),
            ms(times.last().copied().unwrap_or_default()),
        );
    }
    println!(
        "recovery: first reply {} after the API came back; the backlog of {} steps answered {} after it (target <= \
         64 s: {})",
        first_reply.map_or_else(|| "never".to_string(), secs),
        backlog.len(),
        secs(backlog_done),
        if recovered { "met" } else { "NOT met" }
    );
    println!(
        "Bot API answers: {} x 502, {} x 429, {} slowed; {} calls arrived; {stalls} ticks skipped (nobody ready: waiting for an answer or an order at the door); \
         pasar peak RSS {:.1} MB",
        faults.bad_gateways.load(Ordering::Relaxed),
        faults.too_many.load(Ordering::Relaxed),
        faults.slowed.load(Ordering::Relaxed),
        arrivals,
        super::kb_to_mb(peak_rss_kb)
    );
    println!(
        "Graph API answers: {} x 503/502 (down), {} x 130429 (throughput limit), {} slowed; {} webhooks held while \
         Meta was down (each up to {:.0} s, the last ones until it came back)",
        faults.wa_unavailable.load(Ordering::Relaxed),
        faults.wa_too_many.load(Ordering::Relaxed),
        faults.wa_slowed.load(Ordering::Relaxed),
        faults.webhooks_held.load(Ordering::Relaxed),
        args.down / 2.0,
    );
    println!("checks:");
    for c in &checks {
        println!("  {} {}: {}", if c.passed { "ok    " } else { "FAILED" }, c.name, c.detail);
    }
    let failed: Vec<&str> = checks.iter().filter(|c| !c.passed).map(|c| c.name).collect();
    for d in disorder.iter().skip(1).take(4) {
        println!("  also {d}");
    }
    anyhow::ensure!(failed.is_empty(), "outage: {} check(s) failed: {}", failed.len(), failed.join("; "));
    println!("errors: none (every check passed)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made(id: i64, platform: i64, cause: i64) -> Produced {
        Produced { id, platform: Some(platform), cause: Some(cause), edit: false }
    }

    fn came(message: i64, update: i64) -> Arrival {
        Arrival { message, edit: false, update }
    }

    /// Update 1 answered by a message in one call (#1) and one in two calls (#2, #3: a question
    /// and the hint under its keyboard); update 2 by one message (#4).
    fn chat() -> (Vec<Produced>, Vec<Arrival>) {
        (vec![made(10, 1, 1), made(11, 3, 1), made(12, 4, 2)], vec![came(1, 1), came(2, 1), came(3, 1), came(4, 2)])
    }

    #[test]
    fn the_ids_of_both_channels_give_their_numbers() {
        assert_eq!(trailing_number("telegram:blimbing:1234"), Some(1234));
        assert_eq!(trailing_number("whatsapp:wamid.rush.628000000007.12"), Some(12));
        assert_eq!(trailing_number("wamid.out.10000007.31"), Some(31));
        assert_eq!(trailing_number("57"), Some(57));
        assert_eq!(trailing_number("whatsapp:wamid.HBgM"), None);
    }

    #[test]
    fn a_chat_served_in_order_passes() {
        let (produced, arrivals) = chat();
        assert_eq!(check_chat_order(&produced, &arrivals), Ok(()));
        // An edit of #1 while on update 2, and a message of the bot's own accord, are in order too.
        let mut produced = produced;
        produced.push(Produced { id: 13, platform: Some(1), cause: Some(2), edit: true });
        produced.push(Produced { id: 14, platform: Some(5), cause: None, edit: false });
        let mut arrivals = arrivals;
        arrivals.push(Arrival { message: 1, edit: true, update: 2 });
        arrivals.push(came(5, 2));
        assert_eq!(check_chat_order(&produced, &arrivals), Ok(()));
    }

    #[test]
    fn two_messages_sent_the_other_way_round_fail() {
        // The sender sent message 11 before message 10: 11 got the lower number.
        let produced = vec![made(10, 3, 1), made(11, 2, 1), made(12, 4, 2)];
        let arrivals = vec![came(1, 1), came(2, 1), came(3, 1), came(4, 2)];
        let e = check_chat_order(&produced, &arrivals).expect_err("reordered");
        assert!(e.contains("before message 10"), "{e}");
    }

    #[test]
    fn a_reply_that_comes_after_the_next_step_began_fails() {
        // The two calls of message 11 swapped: the hint (with the step's needle) came first,
        // the shopper went on (update 2), and the question came after.
        let (produced, mut arrivals) = chat();
        arrivals[2].update = 2;
        let e = check_chat_order(&produced, &arrivals).expect_err("late");
        assert!(e.contains("answering update 1") && e.contains("sent update 2"), "{e}");
    }

    #[test]
    fn a_message_that_never_went_or_a_stray_reply_fails() {
        let (mut produced, arrivals) = chat();
        produced[2].platform = None;
        assert!(check_chat_order(&produced, &arrivals).expect_err("lost").contains("never went"));
        let (produced, mut arrivals) = chat();
        arrivals.push(came(9, 2));
        assert!(check_chat_order(&produced, &arrivals).expect_err("stray").contains("none of the messages"));
    }
}
