//! `pasar loadtest last-unit` (issue 10): shoppers on both channels racing for the last stock of
//! one stall of Pasar Blimbing are never oversold.
//!
//! Two races, each on a fresh `pasar run` and database: everyone wants the stall's last kilo
//! (exactly one gets it), then the stall's last kilos (0.7 kg a shopper in the race, 2 kg at
//! least) in different amounts. Each shopper goes, on a thread of their own, up to the order's summary, waits until
//! everyone is there, and then all press "Pesan sekarang" at the same moment. Checked: never
//! oversold (the stock left is what was not sold, never below zero), everyone answered, nobody
//! refused while enough was left for them, the database agreeing with the answers (one order per
//! shopper told so, none for the others, every order number distinct), every press stored, the
//! file sound, and `pasar run` never exited or panicked.

use super::world::{Channel, Expect, Input, Shopper, World, WorldOptions, join_all};
use anyhow::{Context, ensure};
use std::path::Path;
use std::time::{Duration, Instant};

/// One race's outcome (every check passed, or the race returned an error instead).
#[derive(Debug, Clone)]
pub struct RaceReport {
    pub what: &'static str,
    pub shoppers: usize,
    /// Grams at the stall before the race, sold, and left.
    pub stock: i64,
    pub sold: i64,
    pub left: i64,
    pub orders: usize,
    pub refused: usize,
    /// Milliseconds between the first and the last press of "Pesan sekarang" stored.
    pub spread_ms: i64,
    pub elapsed: Duration,
}

/// The answers a press of "Pesan sekarang" may get: placed, sold out, or less left.
const ANSWERS: &[&str] = &["sudah kami terima", "baru saja habis", "di lapak itu tinggal"];

/// `per_channel` shoppers a channel, each ordering one of `amounts` (as typed, grams) in turn,
/// press "Pesan sekarang" at the same moment for a stall that has `stock` grams. Fails with the
/// first check that did not hold.
pub fn race(
    pasar: &Path,
    what: &'static str,
    per_channel: usize,
    stock: i64,
    amounts: &[(&str, i64)],
) -> anyhow::Result<RaceReport> {
    ensure!(per_channel > 0 && !amounts.is_empty(), "a race needs shoppers and amounts");
    let started = Instant::now();
    let w = World::start(
        pasar,
        &WorldOptions {
            markets: 1,
            stock: Some(stock),
            admins: &[],
            strict: false,
            real_limits: false,
            per_user_messages: None,
        },
    )?;
    let shoppers: Vec<(Channel, usize)> = (0..per_channel)
        .flat_map(|i| [(Channel::Telegram(5_000_000 + i as i64), i), (Channel::WhatsApp(500_000 + i as u64), i + 1)])
        .collect();
    let ready = std::sync::Barrier::new(shoppers.len());
    // Each shopper's user id, amount and answer.
    let answers: Vec<(String, i64, String)> = std::thread::scope(|s| {
        let handles = shoppers
            .iter()
            .map(|&(channel, i)| {
                let (w, ready) = (&w, &ready);
                s.spawn(move || {
                    let (amount, grams) = amounts[i % amounts.len()];
                    let mut shopper = Shopper::new(w, 0, channel, false);
                    // A shopper who fails before the press still waits at the barrier, or the
                    // others would wait for ever.
                    let summary = shopper.up_to_the_summary("Pembeli Setia", amount);
                    ready.wait();
                    summary?;
                    // Everyone presses "Pesan sekarang" at the same moment.
                    let answer = shopper.step(Input::Press("place"), Expect::AnyOf(ANSWERS))?;
                    Ok((shopper.user_id(), grams, answer))
                })
            })
            .collect();
        join_all(handles)
    })
    .with_context(|| format!("the {what} race"))?;
    w.wait_quiet()?;
    w.check_alive()?;
    w.stop();

    let offer = w.markets[0].offer;
    let (accepted, refused): (Vec<_>, Vec<_>) = answers.iter().partition(|a| a.2.contains(ANSWERS[0]));
    let sold: i64 = accepted.iter().map(|a| a.1).sum();
    ensure!(sold <= stock, "oversold: {sold} g of {stock} g");
    let left = w.one(&format!("SELECT stock FROM offers WHERE id = {offer}"))?;
    ensure!(left == stock - sold, "{left} g left, but {sold} g of {stock} g were sold");
    ensure!(left >= 0, "{left} g left");
    // Nobody was refused while enough was left for them (stock only went down meanwhile).
    for (user, grams, answer) in &refused {
        ensure!(*grams > left, "{user} was refused {grams} g with {left} g left: {answer}");
    }
    // The database agrees with the answers: one order per accepted shopper, none for the others.
    let orders = w.one("SELECT COUNT(*) FROM orders")?;
    ensure!(orders == accepted.len() as i64, "{orders} orders for {} shoppers told so", accepted.len());
    for (user, ..) in &accepted {
        let n = w.one(&format!("SELECT COUNT(*) FROM orders WHERE user_id = '{user}'"))?;
        ensure!(n == 1, "{user} was told the order was taken and has {n} orders");
    }
    let in_orders =
        w.one(&format!("SELECT COALESCE(SUM(quantity_base), 0) FROM order_lines WHERE offer_id = {offer}"))?;
    ensure!(in_orders == sold, "{in_orders} g in orders, {sold} g told sold");
    let numbers = w.one("SELECT COUNT(DISTINCT number) FROM orders")?;
    ensure!(numbers == accepted.len() as i64, "{numbers} distinct order numbers for {} orders", accepted.len());
    ensure!(!accepted.is_empty() && !refused.is_empty(), "a race has winners and losers");
    w.check_integrity()?;
    // How close together the presses of "Pesan sekarang" were stored.
    let presses = w.one("SELECT COUNT(*) FROM inbox WHERE event LIKE '%\"place\"%'")?;
    ensure!(presses == answers.len() as i64, "{presses} presses stored for {} shoppers", answers.len());
    let spread_ms = w.one(
        "SELECT CAST((julianday(MAX(received_at)) - julianday(MIN(received_at))) * 86400000 AS INTEGER)
           FROM inbox WHERE event LIKE '%\"place\"%'",
    )?;
    Ok(RaceReport {
        what,
        shoppers: answers.len(),
        stock,
        sold,
        left,
        orders: accepted.len(),
        refused: refused.len(),
        spread_ms,
        elapsed: started.elapsed(),
    })
}

/// The last kilo: everyone wants 1 kg of the stall's last 1 kg; exactly one gets it.
pub fn last_kilo(pasar: &Path, per_channel: usize) -> anyhow::Result<RaceReport> {
    let r = race(pasar, "last kilo", per_channel, 1_000, &[("1 kg", 1000)])?;
    ensure!(r.orders == 1, "the last kilo went to {} shoppers", r.orders);
    Ok(r)
}

/// The last kilos: 0.7 kg a shopper in the race (2 kg at least, so that every amount fits in
/// a cart), wanted in 1, 1/2, 1,5 and 2 kg. Needs two shoppers a channel or more (with fewer,
/// everyone's amounts fit and nobody loses).
pub fn last_kilos(pasar: &Path, per_channel: usize) -> anyhow::Result<RaceReport> {
    ensure!(per_channel >= 2, "the last kilos race needs two shoppers a channel or more");
    let stock = (350 * 2 * per_channel as i64).max(2000);
    race(pasar, "last kilos", per_channel, stock, &[("1 kg", 1000), ("1/2 kg", 500), ("1,5 kg", 1500), ("2 kg", 2000)])
}

/// Both races at `per_channel` shoppers a channel.
pub fn run(pasar: &Path, per_channel: usize) -> anyhow::Result<Vec<RaceReport>> {
    Ok(vec![last_kilo(pasar, per_channel)?, last_kilos(pasar, per_channel)?])
}

/// Prints one race's outcome (`pasar loadtest last-unit`'s summary).
pub fn print(r: &RaceReport) {
    println!(
        "{}: {} shoppers (half on Telegram, half on WhatsApp) pressed \"Pesan sekarang\" within {} ms for {} g: \
         {} orders ({} g), {} refused, {} g left; never oversold; {:.1} s",
        r.what,
        r.shoppers,
        r.spread_ms,
        r.stock,
        r.orders,
        r.sold,
        r.refused,
        r.left,
        r.elapsed.as_secs_f64()
    );
}
