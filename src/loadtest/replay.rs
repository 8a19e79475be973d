//! `pasar loadtest replay` (issue 10): every update delivered three times, some out of order,
//! has exactly one effect.
//!
//! In each market served, the admin invites the raced-for stall's trader (`/undang`, `/daftar`),
//! then shoppers on both channels each place a whole order at once (eleven steps, each on a
//! thread of its own), the trader accepts every order and each shopper is told. This runs twice
//! on fresh databases: once clean, once with every Telegram update redelivered twice after it was
//! acknowledged (the fake Bot API gives it again after newer ones) and every WhatsApp webhook
//! posted twice at once and a third time after the shopper's next message's. Checked:
//!
//! - each shopper, trader and admin got the same messages (numbers aside) as in the clean run:
//!   none doubled, none missing;
//! - each Telegram update was in exactly three `getUpdates` answers;
//! - each update is stored once (eleven per shopper), and handled;
//! - one order per shopper, each accepted once, every order number distinct;
//! - the stock went down once per order; the database file is sound; `pasar run` never exited
//!   or panicked.

use super::world::{ADMIN, Channel, Expect, Input, Shopper, TRADER, World, WorldOptions, join_all};
use anyhow::{Context, ensure};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// How big a replay run is.
#[derive(Debug, Clone)]
pub struct ReplayArgs {
    /// The first this many of the ten markets.
    pub markets: usize,
    /// Shoppers a channel in each market.
    pub per_channel: usize,
}

/// What a replay run did (every check passed, or it returned an error instead).
#[derive(Debug, Clone)]
pub struct ReplayReport {
    pub markets: usize,
    /// Shoppers on Telegram and on WhatsApp, each with one whole order.
    pub telegram_shoppers: usize,
    pub whatsapp_shoppers: usize,
    /// Updates stored in the replayed run (each once).
    pub updates: i64,
    /// Telegram updates given by `getUpdates` (each three times) and WhatsApp bodies posted.
    pub telegram_deliveries: usize,
    pub whatsapp_posts: usize,
    /// Messages to shoppers and traders, the same in both runs.
    pub replies: usize,
    pub orders: i64,
    /// Grams of bawang merah ordered (and taken from the stock once).
    pub grams: i64,
    pub clean_run: Duration,
    pub replayed_run: Duration,
}

/// The shoppers' amounts (as typed, and in grams) and names, taken in turn.
const AMOUNTS: [(&str, i64); 6] =
    [("1 kg", 1000), ("1/2 kg", 500), ("2 kg", 2000), ("1,5 kg", 1500), ("3 kg", 3000), ("1 kg", 1000)];
const NAMES: [&str; 6] =
    ["Ani Rahayu", "Budi Santoso", "Citra Lestari", "Dewi Sartika", "Eko Prasetyo", "Fajar Nugroho"];

/// Shopper `j` of market `m`: their channel, name and amount. The first `per_channel` are on
/// Telegram.
fn journey(m: usize, j: usize, per_channel: usize) -> (Channel, &'static str, (&'static str, i64)) {
    let channel = if j < per_channel {
        Channel::Telegram(1_000_000 + (m * 10_000 + j) as i64)
    } else {
        Channel::WhatsApp((m * 10_000 + j) as u64)
    };
    (channel, NAMES[j % NAMES.len()], AMOUNTS[j % AMOUNTS.len()])
}

/// Numbers vary between runs (order numbers, stock left as `19,5 kg` or `20 kg`, amounts):
/// each is compared as one `#`.
pub fn shape(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut in_number = false;
    for (i, &c) in chars.iter().enumerate() {
        let separator = matches!(c, ',' | '.') && in_number && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if c.is_ascii_digit() || separator {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// The grams each market's shoppers order in all.
fn ordered(args: &ReplayArgs) -> i64 {
    (0..2 * args.per_channel).map(|j| AMOUNTS[j % AMOUNTS.len()].1).sum()
}

/// The stock each market's raced-for stall starts with: enough for everyone, and some left.
fn stock(args: &ReplayArgs) -> i64 {
    (2 * ordered(args)).max(20_000)
}

/// Whose messages a run compares: a name of theirs, and their market (by index) and chat.
type People = BTreeMap<String, (usize, Channel)>;

/// One run (clean or replayed): returns everyone's messages (shaped; a trader's sorted, as the
/// orders come in any order; an admin's only counted, the invite code being random), WhatsApp
/// bodies posted, and the world (stopped).
fn journeys(
    pasar: &Path,
    args: &ReplayArgs,
    replay: bool,
) -> anyhow::Result<(World, BTreeMap<String, Vec<String>>, usize)> {
    let w = World::start(
        pasar,
        &WorldOptions {
            markets: args.markets,
            stock: Some(stock(args)),
            admins: &[],
            strict: false,
            real_limits: false,
            per_user_messages: None,
        },
    )?;
    if replay {
        for m in &w.markets {
            w.telegram.redeliver_each(&m.token, 2);
        }
    }
    let shoppers_per_market = 2 * args.per_channel;
    let markets = w.markets.len();
    let (people, posts) = std::thread::scope(|s| -> anyhow::Result<_> {
        let w = &w;
        let handles: Vec<_> = (0..markets)
            .map(|m| {
                s.spawn(move || -> anyhow::Result<(People, usize)> {
                    let slug = &w.markets[m].slug;
                    let mut admin = Shopper::new(w, m, Channel::Telegram(ADMIN), replay);
                    let invite = admin.step(
                        Input::Text(&format!("/undang {}", w.markets[m].stall_number)),
                        Expect::Says("Kode undangan"),
                    )?;
                    let code = invite.split("/daftar ").nth(1).context("no invite code")?.trim().to_string();
                    let mut trader = Shopper::new(w, m, Channel::Telegram(TRADER), replay);
                    trader.step(Input::Text(&format!("/daftar {code}")), Expect::Says("Selamat bergabung"))?;
                    let mut shoppers = std::thread::scope(|s| {
                        let handles = (0..shoppers_per_market)
                            .map(|j| {
                                s.spawn(move || {
                                    let (channel, name, (amount, _)) = journey(m, j, args.per_channel);
                                    let mut shopper = Shopper::new(w, m, channel, replay);
                                    shopper.up_to_the_summary(name, amount)?;
                                    let placed =
                                        shopper.step(Input::Press("place"), Expect::Says("sudah kami terima"))?;
                                    let code = &w.markets[m].code;
                                    ensure!(placed.contains(&format!("{code}-")), "no {code} order number: {placed}");
                                    Ok(shopper)
                                })
                            })
                            .collect();
                        join_all(handles)
                    })?;
                    // The trader accepts each order (the presses redelivered like everything else).
                    let token = &w.markets[m].token;
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let orders = loop {
                        let orders: Vec<_> = w
                            .telegram
                            .sent_to(token, TRADER)
                            .into_iter()
                            .filter(|m| m.text.starts_with("🛒 Pesanan baru"))
                            .collect();
                        if orders.len() >= shoppers_per_market {
                            break orders;
                        }
                        ensure!(Instant::now() < deadline, "{slug}: the trader got {} orders", orders.len());
                        std::thread::sleep(Duration::from_millis(20));
                    };
                    ensure!(orders.len() == shoppers_per_market, "{slug}: the trader got {} new orders", orders.len());
                    for order in &orders {
                        let accept = order.button("Terima").context("no Terima button")?;
                        w.telegram.press(token, TRADER, &accept);
                    }
                    let mut posts = 0;
                    for shopper in &mut shoppers {
                        shopper.expect(Expect::Says("menerima pesanan"))?;
                        shopper.finish()?;
                        posts += shopper.posts;
                    }
                    // Whose messages are compared, once everything went out.
                    let mut people: Vec<(String, Channel)> =
                        shoppers.iter().map(|sh| (format!("{slug} {}", sh.user_id()), sh.channel)).collect();
                    people.push((format!("{slug} trader"), Channel::Telegram(TRADER)));
                    people.push((format!("{slug} admin"), Channel::Telegram(ADMIN)));
                    Ok((people.into_iter().map(|(k, c)| (k, (m, c))).collect::<BTreeMap<_, _>>(), posts))
                })
            })
            .collect();
        let per_market = join_all(handles)?;
        let posts = per_market.iter().map(|(_, p)| p).sum::<usize>();
        Ok((per_market.into_iter().flat_map(|(m, _)| m).collect::<BTreeMap<_, _>>(), posts))
    })?;
    if replay {
        // The redeliveries still owed come now, in batches of their own; once they all came,
        // the poll after the last of them shows it was stored.
        let deadline = Instant::now() + Duration::from_secs(120);
        for m in &w.markets {
            w.telegram.flush_redeliveries(&m.token);
        }
        for m in &w.markets {
            while w.telegram.redeliveries_owed(&m.token) > 0 {
                ensure!(Instant::now() < deadline, "{}: redeliveries still owed", m.slug);
                std::thread::sleep(Duration::from_millis(20));
            }
            let polls = w.telegram.polls(&m.token);
            while w.telegram.polls(&m.token) <= polls {
                ensure!(Instant::now() < deadline, "{}: the poller stopped", m.slug);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Each update came exactly three times: once new, twice again.
        for m in &w.markets {
            let deliveries = w.telegram.deliveries(&m.token);
            // The admin's and the trader's messages, eleven steps per shopper, one acceptance each.
            let updates = 2 + 11 * args.per_channel + shoppers_per_market;
            ensure!(w.telegram.updates_pushed(&m.token) == updates, "{}: updates pushed", m.slug);
            ensure!(deliveries.len() == updates, "{}: {} of {updates} updates delivered", m.slug, deliveries.len());
            if let Some((id, n)) = deliveries.iter().find(|(_, n)| **n != 3) {
                anyhow::bail!("{}: update {id} was delivered {n} times, not 3", m.slug);
            }
            ensure!(w.telegram.redelivered(&m.token).values().all(|n| *n == 2), "{}: redeliveries", m.slug);
        }
    }
    w.wait_quiet()?;
    w.check_alive()?;
    w.stop();
    let mut messages = BTreeMap::new();
    for (who, (m, channel)) in people {
        let mut texts: Vec<String> = Shopper::new(&w, m, channel, false).texts().iter().map(|t| shape(t)).collect();
        if who.ends_with(" trader") {
            texts.sort();
        } else if who.ends_with(" admin") {
            texts = vec![texts.len().to_string()];
        }
        messages.insert(who, texts);
    }
    Ok((w, messages, posts))
}

/// Runs the scenario at `args`' size against `pasar` (the `pasar` binary); fails with the first
/// check that did not hold.
pub fn run(pasar: &Path, args: &ReplayArgs) -> anyhow::Result<ReplayReport> {
    ensure!(args.markets > 0 && args.per_channel > 0, "--markets and --per-channel must be positive");
    let started = Instant::now();
    let (_, reference, _) = journeys(pasar, args, false).context("the clean run")?;
    let clean_run = started.elapsed();
    let started = Instant::now();
    let (w, replayed, whatsapp_posts) = journeys(pasar, args, true).context("the replayed run")?;
    let replayed_run = started.elapsed();

    // The same replies as without redeliveries: none doubled, none missing.
    ensure!(
        reference.len() == replayed.len(),
        "{} people in the clean run, {} replayed",
        reference.len(),
        replayed.len()
    );
    for (who, want) in &reference {
        let got = replayed.get(who).map(Vec::as_slice).unwrap_or_default();
        ensure!(got == want.as_slice(), "the replies to {who} differ:\nclean: {want:#?}\nreplayed: {got:#?}");
    }
    let replies: usize = reference.iter().filter(|(k, _)| !k.ends_with(" admin")).map(|(_, v)| v.len()).sum();
    let shoppers = args.markets * 2 * args.per_channel;
    let shoppers_i = shoppers as i64;
    let accepted = w.one("SELECT COUNT(*) FROM sub_orders WHERE status = 'accepted'")?;
    ensure!(accepted == shoppers_i, "{accepted} sub-orders accepted, not {shoppers}");
    let staff = w.one(&format!("SELECT COUNT(*) FROM inbox WHERE user_id IN ('{ADMIN}', '{TRADER}')"))?;
    ensure!(staff == 2 * args.markets as i64 + shoppers_i, "{staff} updates of the admin and traders stored");
    // Each update stored once (the eleven steps of a journey), each handled.
    for (m, market) in w.markets.iter().enumerate() {
        for j in 0..2 * args.per_channel {
            let (channel, ..) = journey(m, j, args.per_channel);
            let user = Shopper::new(&w, m, channel, true).user_id();
            let stored = w.one(&format!("SELECT COUNT(*) FROM inbox WHERE user_id = '{user}'"))?;
            ensure!(stored == 11, "{}: {stored} of {user}'s 11 updates stored", market.slug);
            let orders = w.one(&format!("SELECT COUNT(*) FROM orders WHERE user_id = '{user}'"))?;
            ensure!(orders == 1, "{}: {user} has {orders} orders", market.slug);
            // Each outbox row was sent (once: the fake saw the same messages as the clean run).
            let rows = w.one(&format!("SELECT COUNT(*) FROM outbox WHERE recipient = '{user}' AND status = 'sent'"))?;
            let seen = replayed.get(&format!("{} {user}", market.slug)).map_or(0, Vec::len);
            ensure!(
                rows > 0 && rows as usize <= seen,
                "{}: {user} has {rows} outbox rows for {seen} messages",
                market.slug
            );
        }
        // Stock taken once per order.
        let sum = w.one(&format!(
            "SELECT COALESCE(SUM(quantity_base), 0) FROM order_lines WHERE offer_id = {}",
            market.offer
        ))?;
        ensure!(sum == ordered(args), "{}: {sum} g ordered, not {} g", market.slug, ordered(args));
        let left = w.one(&format!("SELECT stock FROM offers WHERE id = {}", market.offer))?;
        ensure!(left == stock(args) - ordered(args), "{}: {left} g left of {} g", market.slug, stock(args));
    }
    let orders = w.one("SELECT COUNT(*) FROM orders")?;
    ensure!(orders == shoppers_i, "{orders} orders for {shoppers} shoppers");
    let numbers = w.one("SELECT COUNT(DISTINCT number) FROM orders")?;
    ensure!(numbers == shoppers_i, "{numbers} distinct order numbers for {shoppers} orders");
    ensure!(w.one("SELECT COUNT(*) FROM inbox WHERE status <> 'done'")? == 0, "updates not handled");
    w.check_integrity()?;
    let telegram_deliveries =
        w.markets.iter().map(|m| w.telegram.deliveries(&m.token).values().sum::<u32>() as usize).sum();
    Ok(ReplayReport {
        markets: args.markets,
        telegram_shoppers: args.markets * args.per_channel,
        whatsapp_shoppers: args.markets * args.per_channel,
        updates: w.one("SELECT COUNT(*) FROM inbox")?,
        telegram_deliveries,
        whatsapp_posts,
        replies,
        orders,
        grams: ordered(args) * args.markets as i64,
        clean_run,
        replayed_run,
    })
}

/// Prints a report (`pasar loadtest replay`'s summary).
pub fn print(r: &ReplayReport) {
    println!(
        "replay: {} markets, {} shoppers on Telegram and {} on WhatsApp, each a whole order (11 updates) the trader accepts",
        r.markets, r.telegram_shoppers, r.whatsapp_shoppers
    );
    println!(
        "  every update delivered 3 times, some after newer ones: {} Telegram deliveries, {} WhatsApp posts",
        r.telegram_deliveries, r.whatsapp_posts
    );
    println!(
        "  exactly one effect each: {} updates stored once, {} orders ({} g taken from the stock once), {} replies the same as the clean run's",
        r.updates, r.orders, r.grams, r.replies
    );
    println!(
        "  clean run {:.1} s, replayed run {:.1} s; errors: none (every check held)",
        r.clean_run.as_secs_f64(),
        r.replayed_run.as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_hide_every_number() {
        assert_eq!(shape("BLB-0001: sisa 19,5 kg, Rp 33.500/kg."), shape("BLB-0012: sisa 20 kg, Rp 100.500/kg."));
        assert_eq!(shape("1. a, 2."), "#. a, #.");
    }

    #[test]
    fn the_first_shoppers_are_on_telegram_with_distinct_ids() {
        let ids: std::collections::BTreeSet<String> =
            (0..3).flat_map(|m| (0..8).map(move |j| format!("{:?}", journey(m, j, 4).0))).collect();
        assert_eq!(ids.len(), 24);
        assert!(matches!(journey(1, 3, 4).0, Channel::Telegram(_)));
        assert!(matches!(journey(1, 4, 4).0, Channel::WhatsApp(_)));
    }
}
