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
        write!(f, "step max:   {:.1} µs", self.max.as_secs_f64() * 1e6)
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
    // 07:00 WIB, so the day's later slots are open.
    let start = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).single().context("time")?;
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(start));
    let mut engine = crate::runtime::open_engine(config, db, Arc::clone(&clock))?;
    // Every journey ends in an order, thousands in the same few slots: the slots' capacity is
    // not what this measures.
    engine.store().conn().execute("UPDATE markets SET slot_capacity = 10000", [])?;
    drop(engine);
    let mut engine = crate::runtime::open_engine(config, db, clock)?;
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
        // Every event of a batch waits for the batch's commit before its reply can be sent, so
        // each one's latency is the batch's duration.
        loop {
            let t0 = Instant::now();
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
    })
}
