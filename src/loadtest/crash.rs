//! `pasar loadtest crash`: the rush, with `pasar run` killed (`SIGKILL`, no chance to tidy up)
//! at `--kills` random moments and started again on the same database each time. Afterwards,
//! from the fake Bot API's record and the database:
//!
//! - every update the shoppers sent was stored exactly once and handled (`inbox`);
//! - every order a shopper was told about ("Pesanan … sudah kami terima") exists exactly once,
//!   for that shopper, and there is one order per finished journey and no other;
//! - every order went all the way: accepted and packed by its trader, delivered by a courier
//!   (the `staff` of the run), its cash recorded once in the ledger, no press refused;
//! - every outbox row to a shopper, trader or courier was sent, and the fake got at least its calls (none lost);
//!   calls repeated after a kill are counted and printed: Telegram's Bot API has no idempotency
//!   key, so a kill between a call and its record in the store means the call is made again
//!   after the restart (at least once, never lost; exactly once everywhere else);
//! - the stock taken from every counted offer is what its orders hold;
//! - `PRAGMA integrity_check` is ok.

use super::*;
use crate::channel::Outbound;
use std::collections::BTreeMap;

/// What one crash run found.
pub(super) struct CrashReport {
    pub kills: usize,
    pub updates: usize,
    /// Of the updates, the WhatsApp shoppers' messages, and their webhook posts made again
    /// because `pasar run` was down (each message is stored once however often it came).
    pub wa_messages: u64,
    pub wa_retried: u64,
    pub journeys: usize,
    pub orders: usize,
    /// Deliveries the couriers finished (cash and photo), presses refused to traders and
    /// couriers, ratings stored.
    pub delivered: usize,
    pub refused: usize,
    pub ratings: i64,
    pub sent_rows: usize,
    pub calls_expected: u64,
    pub calls_made: u64,
    pub restart_max: Duration,
}

/// A small random source for the kill moments (splitmix64): the seed is printed, so a failing
/// run can be repeated with `--seed`.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `kills` moments in `[0, span)`, in order.
fn kill_moments(seed: u64, kills: usize, span: Duration) -> Vec<Duration> {
    let mut rng = SplitMix(seed);
    let mut at: Vec<Duration> = (0..kills).map(|_| span.mul_f64(rng.unit())).collect();
    at.sort_unstable();
    at
}

/// The stock of every counted offer.
fn stocks(conn: &rusqlite::Connection) -> anyhow::Result<BTreeMap<i64, i64>> {
    let mut stmt = conn.prepare("SELECT id, stock FROM offers WHERE stock IS NOT NULL")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn one(conn: &rusqlite::Connection, sql: &str) -> anyhow::Result<i64> {
    Ok(conn.query_row(sql, [], |r| r.get(0))?)
}

/// A chat of the run: a shopper's, a trader's or a courier's (not the seeded conversations').
fn in_run(user: &str) -> Option<i64> {
    chat_of(user).filter(|c| (CHAT_BASE..staff::STAFF_BASE + 1_000_000).contains(c))
}

/// Runs the crash scenario and prints its report; fails when a check fails.
pub(super) fn crash(pasar: &Path, args: &LoadtestArgs) -> anyhow::Result<()> {
    let markets = markets()?;
    let dir = tempfile::tempdir()?;
    let seeded = dir.path().join("seeded.db");
    eprintln!("seeding {} conversations...", args.conversations);
    let Seeded { staff, .. } = seed_database(&seeded, &markets, args.conversations, true)?;
    let staff_count = staff.len();
    let db = fresh_copy(&seeded, &dir.path().join("crash"))?;
    let before = {
        let conn = rusqlite::Connection::open(&db)?;
        // Kangkung's stock is counted (ample: the checks are about sums, not running out).
        conn.execute("UPDATE offers SET stock = 1000000000 WHERE commodity_id = 'kangkung'", [])?;
        stocks(&conn)?
    };
    let seed = match args.seed {
        Some(seed) => seed,
        None => {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random seed: {e}"))?;
            u64::from_le_bytes(bytes)
        }
    };
    let span = Duration::from_secs_f64(args.warmup + args.seconds);
    let moments = kill_moments(seed, args.kills, span);
    eprintln!("crash: {} kills in {:.0} s (seed {seed})", args.kills, span.as_secs_f64());

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (report, told, calls) = runtime.block_on(async {
        let fake = Arc::new(Fake::new(&markets, args.shoppers, &staff).with_whatsapp()?);
        let (url, server) = serve(Arc::clone(&fake)).await?;
        let run_dir = db.parent().map(Path::to_path_buf).unwrap_or_else(|| dir.path().to_path_buf());
        let mut target = spawn_pasar(pasar, &fake, &url, &run_dir, &db, &markets)?;
        let startup = wait_ready(&fake, &mut target).await?;
        eprintln!("  pasar run polling all ten bots after {:.2} s", startup.as_secs_f64());

        // The killer: at each moment, SIGKILL and start again at once.
        let target = Arc::new(tokio::sync::Mutex::new(target));
        let killer = {
            let target = Arc::clone(&target);
            let fake = Arc::clone(&fake);
            let (pasar, url, run_dir, db, markets) =
                (pasar.to_path_buf(), url.clone(), run_dir.clone(), db.clone(), markets.clone());
            tokio::spawn(async move {
                let start = tokio::time::Instant::now();
                let mut restart_max = Duration::ZERO;
                let mut done = 0usize;
                for at in moments {
                    tokio::time::sleep_until(start + at).await;
                    let mut t = target.lock().await;
                    if let Some(status) = t.child.try_wait()? {
                        anyhow::bail!("pasar run exited by itself before kill {}: {status}", done + 1);
                    }
                    t.child.kill()?;
                    t.child.wait()?;
                    let t0 = Instant::now();
                    for bot in &fake.bots {
                        bot.polled.store(false, Ordering::SeqCst);
                    }
                    *t = spawn_pasar(&pasar, &fake, &url, &run_dir, &db, &markets)?;
                    wait_ready(&fake, &mut t).await?;
                    restart_max = restart_max.max(t0.elapsed());
                    done += 1;
                }
                Ok::<_, anyhow::Error>((done, restart_max))
            })
        };
        let load = open_loop(
            Arc::clone(&fake),
            &markets,
            args.shoppers,
            &staff,
            args.rate,
            Duration::from_secs_f64(args.warmup),
            Duration::from_secs_f64(args.seconds),
            false,
        )
        .await?;
        let (kills, restart_max) = killer.await??;

        // Every step was answered; wait until the last messages are out, then the last kill.
        let deadline = Instant::now() + STEP_TIMEOUT;
        let conn = rusqlite::Connection::open(&db)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        loop {
            let pending = one(&conn, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'")?
                + one(&conn, "SELECT COUNT(*) FROM inbox WHERE status = 'pending'")?;
            if pending == 0 {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{pending} messages and updates still pending after a minute");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        {
            let mut t = target.lock().await;
            if let Some(status) = t.child.try_wait()? {
                anyhow::bail!("pasar run exited by itself: {status}");
            }
            t.child.kill()?;
            t.child.wait()?;
        }
        server.abort();
        let wa = fake
            .wa
            .as_ref()
            .map_or((0, 0), |w| (w.messages.load(Ordering::Relaxed), w.retried.load(Ordering::Relaxed)));
        let updates = fake.bots.iter().map(|b| b.queue.lock().expect("queue lock").next_id).sum::<i64>() + wa.0 as i64;
        let told = std::mem::take(&mut *fake.told.lock().expect("told lock"));
        let chats = (0..args.shoppers as i64).map(|i| CHAT_BASE + i).chain(staff.iter().map(|m| m.chat));
        let calls: BTreeMap<i64, u64> =
            chats.map(|chat| (chat, fake.slot(chat).map_or(0, |s| s.inner.lock().expect("chat lock").calls))).collect();
        let report = CrashReport {
            kills,
            updates: usize::try_from(updates).unwrap_or(0),
            wa_messages: wa.0,
            wa_retried: wa.1,
            journeys: load.journeys,
            orders: 0,
            delivered: load.delivered,
            refused: load.refused,
            ratings: 0,
            sent_rows: 0,
            calls_expected: 0,
            calls_made: calls.values().sum(),
            restart_max,
        };
        Ok::<_, anyhow::Error>((report, told, calls))
    })?;
    let report = check(&db, &before, report, &told, &calls)?;

    println!("crash: the rush with pasar run killed (SIGKILL) and restarted at random moments");
    println!(
        "{} kills in {:.0} s at {} updates/s (seed {seed}); longest from a kill to all ten bots polling again {:.0} ms",
        report.kills,
        span.as_secs_f64(),
        args.rate,
        report.restart_max.as_secs_f64() * 1e3
    );
    println!(
        "updates: {} sent by {} shoppers and {} traders and couriers (half of each on WhatsApp: {} webhooks, {} \
         posts made again while pasar run was down), each stored once and handled",
        report.updates, args.shoppers, staff_count, report.wa_messages, report.wa_retried
    );
    println!(
        "orders: {} placed by shoppers, {} stored, each told to its shopper and stored exactly once",
        report.journeys, report.orders
    );
    println!(
        "messages: {} outbox rows sent, {} calls to the Bot API and the Graph API expected, {} made: none lost, {} \
         repeated after a kill",
        report.sent_rows,
        report.calls_expected,
        report.calls_made,
        report.calls_made - report.calls_expected
    );
    println!(
        "whole orders: every one accepted and packed by its trader, taken and delivered by a courier ({} deliveries, \
         cash recorded once each), {} ratings; {} presses refused",
        report.delivered, report.ratings, report.refused
    );
    println!("stock: every counted offer lost exactly what its orders hold; integrity_check ok");
    println!("errors: none");
    Ok(())
}

/// The checks on the database after the run (pasar run stopped).
fn check(
    db: &Path,
    before: &BTreeMap<i64, i64>,
    mut report: CrashReport,
    told: &[(i64, String)],
    calls: &BTreeMap<i64, u64>,
) -> anyhow::Result<CrashReport> {
    let conn = rusqlite::Connection::open(db)?;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    anyhow::ensure!(integrity == "ok", "integrity_check: {integrity}");

    // Updates: each stored once (source ids are unique), none lost, all handled.
    let stored = one(&conn, "SELECT COUNT(*) FROM inbox WHERE source_id NOT LIKE '%:seed-%'")?;
    anyhow::ensure!(
        stored as usize == report.updates,
        "{} updates sent, {stored} stored: {}",
        report.updates,
        if (stored as usize) < report.updates { "some lost" } else { "some twice" }
    );
    let unhandled = one(&conn, "SELECT COUNT(*) FROM inbox WHERE status <> 'done'")?;
    anyhow::ensure!(unhandled == 0, "{unhandled} stored updates not handled");

    // Orders: the ones told are the ones stored, once each, one per finished journey.
    let mut orders: BTreeMap<String, (String, i64)> = BTreeMap::new();
    {
        let mut stmt = conn.prepare("SELECT number, user_id FROM orders")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (number, user) = row?;
            if let Some(chat) = in_run(&user) {
                let entry = orders.entry(number).or_insert((user, chat));
                anyhow::ensure!(entry.1 == chat, "order number {} stored twice", entry.0);
            }
        }
    }
    let mut told_once: BTreeMap<&str, i64> = BTreeMap::new();
    for (chat, number) in told {
        let stored = orders.get(number.as_str());
        anyhow::ensure!(stored.is_some(), "chat {chat} was told of order {number}, which is not stored");
        anyhow::ensure!(
            stored.is_some_and(|(_, c)| c == chat),
            "chat {chat} was told of order {number}, which is another shopper's"
        );
        told_once.insert(number, *chat);
    }
    anyhow::ensure!(
        told_once.len() == orders.len(),
        "{} orders stored for shoppers, {} told",
        orders.len(),
        told_once.len()
    );
    anyhow::ensure!(
        orders.len() == report.journeys,
        "{} journeys finished, {} orders stored (a place press counted twice or lost)",
        report.journeys,
        orders.len()
    );
    report.orders = orders.len();

    // Whole orders: each accepted, packed, delivered once, its cash recorded once.
    let undelivered = one(&conn, "SELECT COUNT(*) FROM orders WHERE status <> 'delivered'")?;
    anyhow::ensure!(undelivered == 0, "{undelivered} of {} orders not delivered", orders.len());
    anyhow::ensure!(
        report.delivered == orders.len(),
        "{} orders, but the couriers finished {} deliveries",
        orders.len(),
        report.delivered
    );
    let deliveries = one(&conn, "SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'")?;
    anyhow::ensure!(deliveries as usize == orders.len(), "{} orders, {deliveries} deliveries done", orders.len());
    let wrong_cash = one(
        &conn,
        "SELECT COUNT(*) FROM orders o WHERE (SELECT COUNT(*) FROM ledger l
         WHERE l.order_id = o.id AND l.kind = 'payment' AND l.method = 'cod') <> 1",
    )?;
    anyhow::ensure!(wrong_cash == 0, "{wrong_cash} orders without exactly one cash payment recorded");
    anyhow::ensure!(report.refused == 0, "{} presses of traders and couriers refused", report.refused);
    report.ratings = one(&conn, "SELECT COUNT(*) FROM ratings")?;

    // Messages: every row to a shopper sent; each chat got at least its calls.
    let unsent = one(&conn, "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'")?;
    anyhow::ensure!(unsent == 0, "{unsent} outbox rows not sent");
    let mut expected: BTreeMap<i64, u64> = BTreeMap::new();
    {
        // Not the rows of the traders' and couriers' enrolment (marked sent before the run).
        let mut stmt = conn.prepare(
            "SELECT o.channel, o.recipient, o.message FROM outbox o LEFT JOIN inbox i ON i.id = o.inbox_id
             WHERE COALESCE(i.source_id, '') NOT LIKE '%:seed-%'",
        )?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
        let labels = crate::channel::whatsapp::Labels {
            open_list: "",
            more_choices: "",
            share_location: "",
            reply_with_number: "",
        };
        for row in rows {
            let (channel, recipient, message) = row?;
            let Some(chat) = in_run(&recipient) else { continue };
            let message: Outbound = serde_json::from_str(&message)?;
            let calls = match channel.as_str() {
                "whatsapp" => crate::channel::whatsapp::render(&message, &recipient, &labels).len(),
                _ => crate::channel::telegram::render(&message, "", "").len(),
            };
            *expected.entry(chat).or_default() += calls as u64;
            report.sent_rows += 1;
        }
    }
    for (chat, want) in &expected {
        let got = calls.get(chat).copied().unwrap_or(0);
        anyhow::ensure!(got >= *want, "chat {chat}: {want} calls recorded as sent, the fake got {got} (lost)");
    }
    report.calls_expected = expected.values().sum();

    // Stock: what each counted offer lost is what its live order lines hold.
    let after = stocks(&conn)?;
    let mut taken: BTreeMap<i64, i64> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT l.offer_id, SUM(l.quantity_base) FROM order_lines l JOIN sub_orders s ON s.id = l.sub_order_id
             WHERE s.status NOT IN ('cancelled', 'rejected') AND l.out_of_stock = 0 GROUP BY l.offer_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for row in rows {
            let (offer, sum) = row?;
            taken.insert(offer, sum);
        }
    }
    for (offer, was) in before {
        let now = after.get(offer).copied().unwrap_or(0);
        let sold = taken.get(offer).copied().unwrap_or(0);
        anyhow::ensure!(was - now == sold, "offer {offer}: stock {was} -> {now}, but its orders hold {sold}");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_moments_are_spread_in_order_and_repeat_with_the_seed() {
        let span = Duration::from_secs(300);
        let a = kill_moments(7, 100, span);
        assert_eq!(a, kill_moments(7, 100, span));
        assert_ne!(a, kill_moments(8, 100, span));
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert!(a.iter().all(|d| *d < span));
        // Spread over the run, not bunched: each third of it gets some.
        for third in 0..3 {
            let (lo, hi) = (span * third / 3, span * (third + 1) / 3);
            assert!(a.iter().filter(|d| **d >= lo && **d < hi).count() >= 20, "{a:?}");
        }
    }

    #[test]
    fn users_are_the_run_s_chats_on_either_channel() {
        assert_eq!(chat_of(&wa_user(7)), Some(CHAT_BASE + 7), "a WhatsApp shopper's number");
        assert_eq!(in_run(&wa_user(7)), Some(CHAT_BASE + 7));
        assert_eq!(in_run("10000003"), Some(CHAT_BASE + 3), "a Telegram shopper");
        assert_eq!(in_run(&staff::STAFF_BASE.to_string()), Some(staff::STAFF_BASE), "a trader");
        assert_eq!(in_run(&staff::wa_staff(3)), Some(staff::STAFF_BASE + 3), "a courier on WhatsApp");
        assert_eq!(in_run(&(SEEDED_CHAT_BASE + 1).to_string()), None, "a seeded conversation");
        assert_eq!(in_run("30000000"), None, "the admin who invited the staff");
        assert_eq!(in_run("6281234567890"), None, "another WhatsApp number");
    }

    #[test]
    fn order_numbers_are_read_from_the_confirmation_only() {
        assert_eq!(placed_order_number("🎉 Pesanan BLB-0428-017 sudah kami terima!\nTotal"), Some("BLB-0428-017"));
        assert_eq!(placed_order_number("💰 Pembayaran pesanan BLB-1 (Rp 5.000) sudah kami terima."), None);
        assert_eq!(placed_order_number("🎉 Pesanan BLB-1 dibatalkan"), None);
        assert_eq!(placed_order_number("Pesanan sudah kami terima"), None);
    }
}
