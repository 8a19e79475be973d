//! `pasar bench`: engine steps per second for whole buyer journeys on a file-backed SQLite store
//! in WAL mode. A step is what happens to one user message: it is written to the inbox (one
//! transaction) and processed (load state, step, write state + cart/order + outbox + inbox mark in
//! a second transaction). Figures go into BENCHMARKS.md.

use crate::channel::{ChannelKind, Inbound, InboundEvent, UserKey};
use crate::config::Config;
use crate::conversation::engine::{Clock, Engine, FixedClock};
use crate::conversation::payload::Action;
use crate::domain::catalog::Category;
use crate::domain::order::PaymentMethod;
use crate::domain::slot::available_slots;
use anyhow::Context;
use chrono::{TimeZone, Utc};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Backups during a run (`pasar bench --backup`), to see what they cost the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BackupDuring {
    /// None.
    #[default]
    None,
    /// `pasar run`'s way since issue 23: `VACUUM INTO` on a connection and thread of its own,
    /// one after another for the whole run.
    Thread,
    /// The way before it: SQLite's backup API inside the engine's pass (`run_to_completion` with
    /// no pause), once, a third of the way in; the updates waiting meanwhile wait for it.
    Engine,
}

/// The load around the journeys (`pasar bench --fill-mb --webhooks-per-sec --backup`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Around {
    /// Grow the database to about this many megabytes first (old delivered messages of 2 KB).
    pub fill_mb: u64,
    /// Webhooks stored meanwhile on a second connection, as `pasar run`'s webhooks are.
    pub webhooks_per_sec: u64,
    pub backup: BackupDuring,
}

/// What a benchmark run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub journeys: usize,
    pub concurrent: usize,
    pub steps: usize,
    pub ingest_batches: usize,
    pub orders: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Backups finished during the run, and the longest.
    pub backups: usize,
    pub longest_backup: Duration,
    /// Webhooks stored meanwhile.
    pub webhooks: u64,
    pub db_bytes: u64,
}

impl BenchReport {
    pub fn steps_per_second(&self) -> f64 {
        self.steps as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "journeys:   {}", self.journeys)?;
        writeln!(f, "concurrent: {}", self.concurrent)?;
        writeln!(f, "steps:      {}", self.steps)?;
        writeln!(f, "inbox txs:  {}", self.ingest_batches)?;
        writeln!(f, "orders:     {}", self.orders)?;
        writeln!(f, "elapsed:    {:.3} s", self.elapsed.as_secs_f64())?;
        writeln!(f, "steps/s:    {:.0}", self.steps_per_second())?;
        writeln!(f, "step p50:   {:.1} µs", self.p50.as_secs_f64() * 1e6)?;
        writeln!(f, "step p99:   {:.1} µs", self.p99.as_secs_f64() * 1e6)?;
        writeln!(f, "step max:   {:.1} µs", self.max.as_secs_f64() * 1e6)?;
        writeln!(f, "database:   {:.0} MB", self.db_bytes as f64 / 1_048_576.0)?;
        writeln!(f, "webhooks:   {} stored meanwhile", self.webhooks)?;
        write!(f, "backups:    {} made meanwhile, the longest {:.2} s", self.backups, self.longest_backup.as_secs_f64())
    }
}

/// The inputs of one whole buyer journey in `market`: browse, search, add two items, check out,
/// place the order, look at the orders.
fn journey(engine: &Engine, market: &str, slot: usize) -> anyhow::Result<Vec<Inbound>> {
    let catalog = engine.catalog();
    let m = catalog.market(market).context("market")?;
    let veg = catalog.commodities_in(market, Category::Sayur);
    let first = veg.first().context("a vegetable")?;
    let offer = catalog.offers_for(market, &first.id).first().map(|o| o.id).context("an offer")?;
    let shallot = catalog.offers_for(market, "bawang-merah").first().map(|o| o.id).context("bawang merah")?;
    let slots = available_slots(&m.slots, engine.now());
    let slot = slots.get(slot % slots.len().max(1)).map(|s| s.code()).context("a slot")?;
    let b = |a: Action| Inbound::Button(a.encode());
    let t = |s: &str| Inbound::Text(s.to_string());
    // A street in the market's own first kelurahan: typed addresses are placed by kelurahan.
    let address = format!("Jl. Merdeka No. 12, {}", m.kelurahan.first().map(String::as_str).unwrap_or("Kota Malang"));
    let qty = if first.unit == crate::domain::quantity::SaleUnit::Kilogram { "1/2 kg" } else { "2" };
    Ok(vec![
        Inbound::Command { name: "start".into(), args: String::new() },
        b(Action::Shop),
        b(Action::Category { category: Category::Sayur, page: 0 }),
        b(Action::Commodity(first.id.clone())),
        b(Action::Offer(offer)),
        t(qty),
        t("brambang"),
        b(Action::Offer(shallot)),
        t("2 ons"),
        b(Action::Cart),
        b(Action::Checkout),
        t("Budi Santoso"),
        t("0812-3456-7890"),
        t(&address),
        b(Action::Slot(slot)),
        b(Action::Payment(PaymentMethod::Qris)),
        b(Action::NoNote),
        b(Action::PlaceOrder),
        b(Action::Orders),
    ])
}

/// Runs `journeys` whole buyer journeys, spread over every market, on a fresh database at `db`.
pub fn run(config: &Config, db: &Path, journeys: usize, concurrent: usize) -> anyhow::Result<BenchReport> {
    run_with(config, db, journeys, concurrent, Around::default())
}

/// [`run`] with load around it: a grown database, webhooks stored meanwhile, backups.
pub fn run_with(
    config: &Config,
    db: &Path,
    journeys: usize,
    concurrent: usize,
    around: Around,
) -> anyhow::Result<BenchReport> {
    // 07:00 WIB, so the day's later slots are open.
    let start = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).single().context("time")?;
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(start));
    let mut engine = crate::runtime::open_engine(config, db, Arc::clone(&clock))?;
    // Every journey ends in an order, thousands in the same few slots: the slots' capacity is
    // not what this measures.
    engine.store().conn().execute("UPDATE markets SET slot_capacity = 10000", [])?;
    fill(engine.store(), around.fill_mb)?;
    drop(engine);
    let mut engine = crate::runtime::open_engine(config, db, clock)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let webhooks = spawn_webhooks(db, around.webhooks_per_sec, Arc::clone(&stop))?;
    let backups = match around.backup {
        BackupDuring::Thread => Some(spawn_backups(db, Arc::clone(&stop))?),
        _ => None,
    };
    let mut engine_backup_at = match around.backup {
        BackupDuring::Engine => Some(journeys.div_ceil(concurrent.max(1)) * 19 / 3),
        _ => None,
    };
    let mut engine_backups = Vec::new();
    let markets: Vec<String> = engine.catalog().markets().iter().map(|m| m.slug.clone()).collect();
    // Each market's journeys take its slots in turn, as a morning's orders spread over them.
    let mut scripts: Vec<(String, Vec<Inbound>)> = Vec::new();
    for k in 0..4 {
        for m in &markets {
            scripts.push((m.clone(), journey(&engine, m, k)?));
        }
    }
    let mut latencies = Vec::with_capacity(journeys * 20);
    let mut ingest_batches = 0usize;
    let now = engine.now();
    let began = Instant::now();
    // Shoppers arrive `concurrent` at a time and interleave, as in a morning rush: each round the
    // poller or webhook stores one message from every active shopper in one transaction, then
    // the engine handles them one by one, each in its own transaction.
    let concurrent = concurrent.max(1);
    let mut next_journey = 0usize;
    let mut active: Vec<(usize, usize)> = Vec::new(); // (journey, next step)
    loop {
        while active.len() < concurrent && next_journey < journeys {
            active.push((next_journey, 0));
            next_journey += 1;
        }
        if active.is_empty() {
            break;
        }
        let mut batch = Vec::with_capacity(active.len());
        for (j, step) in &mut active {
            let (market, script) = &scripts[*j % scripts.len()];
            batch.push(InboundEvent {
                source_id: format!("bench:{j}:{step}"),
                market: market.clone(),
                user: UserKey { channel: ChannelKind::Console, id: format!("bench-{j}") },
                display_name: None,
                received_at: now,
                inbound: script[*step].clone(),
                pressed_on: None,
            });
            *step += 1;
        }
        engine.store().ingest(&batch)?;
        ingest_batches += 1;
        // The old way: a backup in the engine's pass, while this batch waits.
        let mut waited = Duration::ZERO;
        if engine_backup_at.is_some_and(|at| ingest_batches >= at) {
            engine_backup_at = None;
            let t = Instant::now();
            let to = db.with_extension(format!("engine-backup-{ingest_batches}.db"));
            old_backup(engine.store(), &to)?;
            let _ = std::fs::remove_file(&to);
            waited = t.elapsed();
            engine_backups.push(waited);
        }
        // Every event of a batch waits for the batch's commit before its reply can be sent, so
        // each one's latency is the batch's duration.
        loop {
            let t0 = Instant::now().checked_sub(std::mem::take(&mut waited)).unwrap_or_else(Instant::now);
            let n = engine.process_batch(crate::conversation::engine::MAX_BATCH)?;
            if n == 0 {
                break;
            }
            let took = t0.elapsed();
            latencies.extend(std::iter::repeat_n(took, n));
        }
        active.retain(|(j, step)| *step < scripts[*j % scripts.len()].1.len());
    }
    let elapsed = began.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let webhooks = webhooks.map(|h| h.join().unwrap_or(0)).unwrap_or(0);
    let mut made = engine_backups;
    if let Some(h) = backups {
        made.extend(h.join().unwrap_or_default());
    }
    let db_bytes = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0);
    let orders = engine.store().count_orders()? as usize;
    latencies.sort_unstable();
    let pct =
        |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default();
    Ok(BenchReport {
        journeys,
        concurrent,
        ingest_batches,
        steps: latencies.len(),
        orders,
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        max: latencies.last().copied().unwrap_or_default(),
        backups: made.len(),
        longest_backup: made.iter().max().copied().unwrap_or_default(),
        webhooks,
        db_bytes,
    })
}

/// Grows the database to about `mb` megabytes with old delivered messages (2 KB texts, the
/// size of a long order summary), in one transaction.
fn fill(store: &mut crate::store::Store, mb: u64) -> anyhow::Result<()> {
    if mb == 0 {
        return Ok(());
    }
    // About 4 KB of file a row (the text and its page).
    let rows = mb * 1024 / 4;
    let message = serde_json::to_string(&crate::channel::Outbound::text("x".repeat(2000)))?;
    store.conn().execute_batch("BEGIN")?;
    {
        let mut insert = store.conn().prepare(
            "INSERT INTO outbox (market, channel, recipient, message, status, created_at, sent_at)
             VALUES ('blimbing', 'console', ?1, ?2, 'sent', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
        )?;
        for i in 0..rows {
            insert.execute(rusqlite::params![format!("old-{}", i % 5000), message])?;
        }
    }
    store.conn().execute_batch("COMMIT")?;
    Ok(())
}

/// Stores `per_sec` webhooks a second on a connection of its own (as `pasar run`'s webhook
/// handlers do) until `stop`; returns how many.
fn spawn_webhooks(
    db: &Path,
    per_sec: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Option<std::thread::JoinHandle<u64>>> {
    if per_sec == 0 {
        return Ok(None);
    }
    let mut store = crate::store::Store::open_companion(db)?;
    Ok(Some(std::thread::spawn(move || {
        let every = Duration::from_secs_f64(1.0 / per_sec as f64);
        let mut n = 0u64;
        let started = Instant::now();
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let event = InboundEvent {
                source_id: format!("bench-webhook:{n}"),
                market: "dinoyo".into(),
                user: UserKey { channel: ChannelKind::Console, id: format!("webhook-{}", n % 500) },
                display_name: None,
                received_at: Utc::now(),
                inbound: Inbound::Text("kangkung".into()),
                pressed_on: None,
            };
            if store.ingest(std::slice::from_ref(&event)).is_ok() {
                n += 1;
            }
            let due = started + every * (n as u32);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        n
    })))
}

/// Backups one after another on a thread of their own until `stop`; how long each took.
fn spawn_backups(
    db: &Path,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<Vec<Duration>>> {
    let db = db.to_path_buf();
    Ok(std::thread::spawn(move || {
        let mut took = Vec::new();
        let mut k = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let to = db.with_extension(format!("backup-{k}.db"));
            let t = Instant::now();
            if crate::store::Store::backup_file(&db, &to).is_ok() && !stop.load(std::sync::atomic::Ordering::SeqCst) {
                took.push(t.elapsed());
            }
            let _ = std::fs::remove_file(&to);
            k += 1;
        }
        took
    }))
}

/// The backup as it was made before issue 23: SQLite's backup API on the engine's connection,
/// 1,024 pages a step with no pause (it starts over whenever another connection commits).
/// Given up after [`OLD_BACKUP_LIMIT`], so that the bench ends.
fn old_backup(store: &mut crate::store::Store, to: &Path) -> anyhow::Result<()> {
    let mut dst = rusqlite::Connection::open(to)?;
    let backup = rusqlite::backup::Backup::new(store.conn(), &mut dst)?;
    let started = Instant::now();
    while backup.step(1024)? != rusqlite::backup::StepResult::Done {
        if started.elapsed() > OLD_BACKUP_LIMIT {
            eprintln!("the old backup did not finish in {} s: given up", OLD_BACKUP_LIMIT.as_secs());
            break;
        }
    }
    Ok(())
}

/// How long the old way's backup may run before the bench gives up on it.
const OLD_BACKUP_LIMIT: Duration = Duration::from_secs(60);
