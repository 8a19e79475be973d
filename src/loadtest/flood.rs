//! The flood case of `pasar loadtest abuse` (issue 23): thirty accounts flood one bot on
//! Telegram (with Telegram's real send limits: one message a second per chat, thirty per bot)
//! while a shopper places an order; measured is how long the stall's trader waits for the new
//! order's notice meanwhile (goal: under 2 s). Checked: every flooder's messages past the flood
//! rule are stored and skipped, each flooder gets exactly one "pelan-pelan", and everything
//! else is handled and sent.
//!
//! Meanwhile 64 clients ask the operators' listener for `/metrics` and `/healthz` without
//! pause, and a WhatsApp shopper's webhooks are timed: scrapers must not hold up the webhooks
//! (they answer from a snapshot, never from the store).

use super::world::{ADMIN, Channel, Expect, Input, Shopper, TRADER, World, WorldOptions, http, wa_delivery};
use anyhow::{Context, ensure};
use std::path::Path;
use std::time::{Duration, Instant};

/// Accounts flooding at once.
pub const FLOODERS: usize = 30;
/// The flooders' Telegram ids start here.
const FLOODER: i64 = 700_000;
/// The shopper who orders during the flood.
const SHOPPER: i64 = 3003;
/// What flooders type.
const WORDS: [&str; 6] = ["kangkung", "brambang", "tempe", "/start", "telur", "lombok"];

/// What the flood did.
#[derive(Debug, Clone)]
pub struct FloodReport {
    pub flooders: usize,
    /// Messages pushed, in all.
    pub messages: usize,
    /// Rows worked, and rows skipped under the flood rule.
    pub taken: i64,
    pub skipped: i64,
    /// From the shopper's "place" to the trader's new-order notice.
    pub notice: Duration,
    /// From the shopper's "place" to their own confirmation.
    pub confirmed: Duration,
    /// Until every reply owed went out.
    pub drained: Duration,
    /// Operators' requests answered meanwhile (64 clients without pause), and how many failed.
    pub ops_requests: usize,
    pub ops_failed: usize,
    /// A WhatsApp shopper's webhooks posted meanwhile, one after another: acknowledgement p50,
    /// p99 and max.
    pub webhooks: usize,
    pub webhook_p50: Duration,
    pub webhook_p99: Duration,
    pub webhook_max: Duration,
}

/// Operators' clients asking without pause.
const OPS_CLIENTS: usize = 64;
/// The WhatsApp shopper's webhooks during the flood.
const WEBHOOKS: usize = 200;

/// `flooders` accounts send `each` messages as fast as the fake Bot API takes them; a second
/// in, a shopper places an order.
pub fn run(pasar: &Path, flooders: usize, each: usize) -> anyhow::Result<FloodReport> {
    let w = World::start(
        pasar,
        &WorldOptions {
            markets: 1,
            stock: None,
            admins: &[],
            strict: true,
            real_limits: true,
            per_user_messages: None,
        },
    )?;
    let token = w.markets[0].token.clone();
    // The raced-for stall's trader, registered the way a real one is.
    let mut admin = Shopper::new(&w, 0, Channel::Telegram(ADMIN), false);
    let invite =
        admin.step(Input::Text(&format!("/undang {}", w.markets[0].stall_number)), Expect::Says("Kode undangan"))?;
    let code = invite.split("/daftar ").nth(1).context("no invite code")?.trim().to_string();
    let mut trader = Shopper::new(&w, 0, Channel::Telegram(TRADER), false);
    trader.step(Input::Text(&format!("/daftar {code}")), Expect::Says("Selamat bergabung"))?;
    let mut shopper = Shopper::new(&w, 0, Channel::Telegram(SHOPPER), false);
    shopper.up_to_the_summary("Ani Rahayu", "1 kg")?;
    w.wait_quiet().context("the setup did not settle")?;

    // Scrapers on the operators' listener, from now until the flood is drained.
    let scraping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let ops_port = w.ops_port;
    let scrapers: Vec<_> = (0..OPS_CLIENTS)
        .map(|i| {
            let scraping = std::sync::Arc::clone(&scraping);
            std::thread::spawn(move || {
                let path = if i % 2 == 0 { "/metrics" } else { "/healthz" };
                let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let (mut ok, mut failed) = (0, 0);
                while scraping.load(std::sync::atomic::Ordering::SeqCst) {
                    match http(ops_port, request.as_bytes()).0 {
                        200 => ok += 1,
                        _ => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    // The flood: every account's messages at once, in the order people would type them.
    let flood_started = Instant::now();
    for i in 0..each {
        for f in 0..flooders {
            w.telegram.text(&token, FLOODER + f as i64, WORDS[(i + f) % WORDS.len()]);
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let orders_before = new_orders(&w, &token);
    let pressed = Instant::now();
    shopper.send(Input::Press("place"))?;
    let deadline = pressed + Duration::from_secs(120);
    let notice = loop {
        if new_orders(&w, &token) > orders_before {
            break pressed.elapsed();
        }
        ensure!(Instant::now() < deadline, "the trader never got the new order during the flood");
        std::thread::sleep(Duration::from_millis(10));
    };
    shopper.expect(Expect::Says("sudah kami terima"))?;
    let confirmed = pressed.elapsed();
    // A WhatsApp shopper writes meanwhile: each webhook timed until its 200.
    let mut acks = Vec::with_capacity(WEBHOOKS);
    for k in 0..WEBHOOKS {
        let body = wa_delivery(
            "6289900000001",
            &w.markets[0].number,
            serde_json::json!({"from": "6289900000001", "id": format!("wamid.flood-{k}"), "timestamp": "1764300000",
                "type": "text", "text": {"body": WORDS[k % WORDS.len()]}}),
        );
        let t = Instant::now();
        let status = w.deliver(&body);
        acks.push(t.elapsed());
        ensure!(status == 200, "a webhook during the flood got {status}");
    }
    acks.sort_unstable();
    let pct = |p: f64| acks[((acks.len() as f64 - 1.0) * p).round() as usize];
    w.wait_quiet().context("the flood's replies did not all go out")?;
    let drained = flood_started.elapsed();
    scraping.store(false, std::sync::atomic::Ordering::SeqCst);
    let (mut ops_requests, mut ops_failed) = (0, 0);
    for s in scrapers {
        let (ok, failed) = s.join().map_err(|_| anyhow::anyhow!("a scraper panicked"))?;
        ops_requests += ok + failed;
        ops_failed += failed;
    }
    ensure!(ops_failed == 0, "{ops_failed} of {ops_requests} operators' requests failed");

    let taken = w.one("SELECT COUNT(*) FROM inbox WHERE user_id LIKE '7000%' AND status = 'done'")?;
    let skipped = w.one("SELECT COUNT(*) FROM inbox WHERE user_id LIKE '7000%' AND status = 'skipped'")?;
    ensure!(
        taken + skipped == (flooders * each) as i64,
        "{taken} taken and {skipped} skipped of {} flood messages",
        flooders * each
    );
    ensure!(skipped > 0 || each <= 20, "nothing skipped");
    for f in 0..flooders {
        let chat = FLOODER + f as i64;
        let polite = w.telegram.sent_to(&token, chat).iter().filter(|m| m.text.contains("Pelan-pelan")).count();
        ensure!(polite == usize::from(each > 20), "flooder {chat} got {polite} words for one burst");
    }
    w.check_alive()?;
    w.stop();
    Ok(FloodReport {
        flooders,
        messages: flooders * each,
        taken,
        skipped,
        notice,
        confirmed,
        drained,
        ops_requests,
        ops_failed,
        webhooks: acks.len(),
        webhook_p50: pct(0.5),
        webhook_p99: pct(0.99),
        webhook_max: pct(1.0),
    })
}

/// The new-order notices the trader got so far.
fn new_orders(w: &World, token: &str) -> usize {
    w.telegram.sent_to(token, TRADER).iter().filter(|m| m.text.starts_with("🛒 Pesanan baru")).count()
}

/// Prints the flood's figures.
pub fn print(r: &FloodReport) {
    println!(
        "flood: {} accounts sent {} messages to one bot at once (Telegram's limits: 1/s a chat, 30/s the bot): {} worked, {} skipped under the flood rule, one \"pelan-pelan\" each",
        r.flooders, r.messages, r.taken, r.skipped
    );
    println!(
        "  an order placed a second in: the trader's notice after {:.2} s (goal: under 2 s), the shopper's confirmation after {:.2} s; every reply out after {:.1} s",
        r.notice.as_secs_f64(),
        r.confirmed.as_secs_f64(),
        r.drained.as_secs_f64()
    );
    println!(
        "  meanwhile {} clients asked /metrics and /healthz {} times ({} failed), and {} WhatsApp webhooks were acknowledged in p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        OPS_CLIENTS,
        r.ops_requests,
        r.ops_failed,
        r.webhooks,
        r.webhook_p50.as_secs_f64() * 1e3,
        r.webhook_p99.as_secs_f64() * 1e3,
        r.webhook_max.as_secs_f64() * 1e3
    );
}
