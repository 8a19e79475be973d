//! `pasar loadtest abuse` (issue 10): `pasar run` with Pasar Blimbing's bot on Telegram (the
//! fake Bot API) and its WhatsApp number (webhooks, the fake Graph API), fed seeded random inputs
//! (10,000 by default, three in four on Telegram) from random users: market words and amounts,
//! emoji, control characters, 4,000+ character messages, SQL-looking text, every slash command
//! (admin ones from non-admins), forged and foreign buttons, absurd locations, updates of other
//! shapes, and on WhatsApp malformed, wrongly signed, tampered and unsigned bodies. Checked:
//!
//! - `pasar run` stays up and never panics; no webhook answer is a 5xx, each bad body gets its
//!   4xx and each good one a 200;
//! - every input is answered: a reply to every user who wrote, an answer to every button press,
//!   a reply of its own to every stored message, every reply sent, and nothing the platforms
//!   would refuse (the fakes are strict: a text over 4,096 characters, callback data over 64
//!   bytes, a WhatsApp button title over 20... fail the run);
//! - no state of another user touched: a shopper on each channel who built a cart before the
//!   storm finds exactly that cart and conversation afterwards and got no message meanwhile, the
//!   admins heard nothing, and prices, stock and every staff-only table are unchanged.
//!
//! Halfway through, the fake Bot API loses an acknowledgement (the next `getUpdates` gives every
//! update again). The inputs are the same on every run of a seed (the WhatsApp bodies' digest is
//! printed), but for which of the bot's real buttons are pressed back, which depends on what it
//! had sent by then.

use super::world::{ADMIN, APP_SECRET, Channel, Expect, Input, Shopper, World, WorldOptions, post, wa_delivery};
use crate::channel::whatsapp::sign;
use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// The WhatsApp admin of the market (from the config).
const WA_ADMIN: &str = "6281100002222";
/// The shoppers with a cart before the storm, on Telegram and WhatsApp.
pub const TG_VICTIM: i64 = 5005;
const WA_VICTIM: u64 = 9_900_005_005;
/// WhatsApp's inputs come from a generator of their own (seeded with the seed XOR this), so they
/// stay the same whatever Telegram's timing.
const WHATSAPP_SEED: u64 = 0x5EED_0A0B_05E5_2026 ^ 0x0A11_CE5E_ED00_0010;
/// The storm is about what hostile inputs say, not how many come: its users may send this many
/// messages in the flood rule's window, so that every fuzzed input is worked (the flood rule
/// has its own case, `super::flood`, with the shipped rule).
const STORM_PER_USER: u32 = 10_000;
/// The storm comes in this many waves.
const WAVES: usize = 12;

/// How big an abuse run is.
#[derive(Debug, Clone)]
pub struct AbuseArgs {
    /// Fuzzed inputs in all: three in four are Telegram updates, the rest WhatsApp bodies.
    pub inputs: usize,
    /// Fuzzing users: seven in ten on Telegram, the rest on WhatsApp.
    pub users: usize,
    /// The generators' seed.
    pub seed: u64,
}

/// The seed `pasar loadtest abuse` and the test use by default.
pub const DEFAULT_SEED: u64 = 0x5EED_0A0B_05E5_2026;

/// What an abuse run did (every check passed, or it returned an error instead).
#[derive(Debug, Clone)]
pub struct AbuseReport {
    /// Telegram updates pushed in the storm (presses among them) and WhatsApp bodies posted.
    pub telegram_updates: usize,
    pub presses: usize,
    pub whatsapp_bodies: usize,
    /// The webhook's answers, by kind of body and status.
    pub whatsapp_answers: BTreeMap<String, BTreeMap<u16, usize>>,
    /// Users who wrote or pressed.
    pub users: usize,
    /// Inputs stored (handled), replies sent on each channel.
    pub stored: i64,
    pub telegram_replies: usize,
    pub whatsapp_replies: usize,
    /// Presses answered by the callback's toast alone.
    pub toast_only: usize,
    /// Kinds of warnings and errors `pasar run` logged, but for the refusals expected here.
    pub logged: BTreeSet<String>,
    pub wa_digest: u64,
    pub elapsed: Duration,
}

/// A small deterministic generator (xorshift64*): the same inputs on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const WORDS: &[&str] = &[
    "brambang",
    "bawang merah",
    "bawang putih",
    "lombok rawit",
    "cabe",
    "tempe",
    "tahu",
    "endog",
    "telur",
    "kobis",
    "kangkung",
    "ayam",
    "daging sapi",
    "beras",
    "gula",
    "minyak",
    "bawamg",
    "keranjang",
    "pesan sekarang",
    "batal",
    "ya",
    "tidak",
    "menu",
    "bu",
    "tolong",
    "nggih",
    "harga cabe berapa?",
    "ada daging sapi",
    "brambang piro sekilo?",
    "bu, brambang sekilo, lombok rawit seprapat, tempe 2 papan",
    "Ani Rahayu",
    "0812-3456-7890",
    "+62 812 3456 7890",
    "Jl. Borobudur 12, Malang",
    "BLB-0001",
    "BLB-9999",
];

const AMOUNTS: &[&str] = &[
    "2 kg",
    "1/2 kg",
    "1,5 kg",
    "500 gr",
    "2 ons",
    "3 ikat",
    "setengah kilo",
    "sekilo setengah",
    "selusin",
    "2 papan",
    "0 kg",
    "-5 kg",
    "1/0 kg",
    "0/0",
    "99999999999999999999 kg",
    "18446744073709551616",
    "9223372036854775807 gr",
    "1e308 kg",
    "NaN kg",
    "inf",
    "0,0000001 kg",
    "1.000.000.000 kg",
    "2 kwintal",
    "½ kg",
    "٣ kg",
    "1",
    "2",
    "3",
    "0",
    "-1",
    "10",
];

const ODD: &[&str] = &[
    "🛒",
    "🥬🧅🌶️",
    "👍🏽",
    "🇮🇩",
    "👨‍👩‍👧",
    "\u{0}",
    "\u{7}\u{8}\u{1b}[31m",
    "\r\n\r\n",
    "\t",
    "\u{202E}gnabmarb",
    "\u{FEFF}",
    "\u{200B}\u{200D}",
    "Z\u{0351}\u{0352}\u{0357}a\u{0300}\u{0301}l\u{0316}g\u{0317}o",
    "<b>tebal</b>",
    "<script>alert(1)</script>",
    "*_`[link](http://example.invalid)`_*",
    "'; DROP TABLE orders; --",
    "1 OR 1=1",
    "\" OR \"\"=\"",
    "Robert'); DROP TABLE cart_lines;--",
    "%s%s%s%n",
    "{{name}} {price}",
    "../../etc/passwd",
    "\\",
    "\"",
    "'",
    "",
    " ",
    "ꦧꦮꦁ",
    "بصل",
    "洋葱",
];

const COMMANDS: &[&str] = &[
    "/start",
    "/menu",
    "/cari",
    "/keranjang",
    "/pesanan",
    "/batal",
    "/langganan",
    "/berhenti",
    "/bahasa",
    "/bantuan",
    "/pesan",
    "/status",
    "/help",
    "/cart",
    "/orders",
    "/daftar",
    "/mulai",
    "/selesai",
    "/tugas",
    "/harga",
    "/stok",
    "/tutup",
    "/buka",
    "/rekap",
    "/undang",
    "/undang_kurir",
    "/tugaskan",
    "/kurir",
    "/lunas",
    "/refund",
    "/pembayaran",
    "/batalkan",
    "/audit",
    "/pasar_tutup",
    "/pasar_buka",
    "/pedagang",
    "/nonaktif",
    "/aktif",
    "/jam",
    "/kapasitas",
    "/foto",
    "/statistik",
    "/ekspor",
    "/siaran",
    "/admin_tambah",
    "/admin_hapus",
    "/cadangan",
    "/harga_acuan",
    "/komoditas_tambah",
    "/komoditas_ubah",
    "/invite",
    "/broadcast",
    "/backup",
    "/",
    "//",
    "/@@@",
    "/start@pasar_111_bot",
    "/UNDANG",
    "/tidak_ada",
];

const COMMAND_ARGS: &[&str] = &[
    "A-07",
    "A-12",
    "Z-99",
    "BLB-0001",
    "BLB-0000",
    "XYZ-1",
    "bawang merah 99999999999",
    "cabe -1",
    "tempe habis",
    "kangkung ada",
    "1 telegram:9001",
    "telegram 5005",
    "whatsapp 6281100002222",
    "semua",
    "06:00-10:00",
    "25:99-00:00",
    "0",
    "-1",
    "99999999999999999999",
    "Budi, 0812-1111-2222, Honda Beat, N 1234 AB",
    "Promo! Semua diskon",
    "bawang merah 38000",
];

/// Random text: a few pieces of market talk, amounts, oddities and commands run together.
pub fn random_text(rng: &mut Rng) -> String {
    match rng.below(100) {
        // A very long message: Telegram allows 4,096 characters, a forger more.
        0..=2 => {
            let piece = rng.pick(&["a", "brambang ", "🥬", "1/2 kg, ", "\u{0}", "ꦧ"]).to_string();
            piece.repeat(4_100 / piece.chars().count() + rng.below(2_000))
        }
        3..=27 => {
            let mut s = rng.pick(COMMANDS).to_string();
            if rng.chance(60) {
                s.push(' ');
                s.push_str(if rng.chance(70) { rng.pick(COMMAND_ARGS) } else { rng.pick(WORDS) });
            }
            s
        }
        _ => {
            let mut s = String::new();
            for i in 0..1 + rng.below(4) {
                if i > 0 {
                    s.push_str(rng.pick(&[" ", ", ", "\n", "", " dan ", " + ", "\n- "]));
                }
                let piece = match rng.below(10) {
                    0..=3 => rng.pick(WORDS).to_string(),
                    4..=6 => rng.pick(AMOUNTS).to_string(),
                    7 => (rng.next_u64() as i64).to_string(),
                    _ => rng.pick(ODD).to_string(),
                };
                s.push_str(&piece);
            }
            s
        }
    }
}

const NUMBERS: &[&str] =
    &["0", "-1", "1", "2", "7", "42", "999999", "9223372036854775807", "99999999999999999999999", "x", ""];

/// A button payload: shaped like a real one with numbers that may be anyone's, or junk.
pub fn random_payload(rng: &mut Rng) -> String {
    let n = |rng: &mut Rng| {
        if rng.chance(50) { (1 + rng.below(60)).to_string() } else { rng.pick(NUMBERS).to_string() }
    };
    match rng.below(40) {
        0 => "menu".into(),
        1 => "shop".into(),
        2 => format!("cat:{}:{}", rng.pick(&["sayur", "bumbu", "daging", "x", ""]), n(rng)),
        3 => format!("com:{}", rng.pick(&["bawang-merah", "kangkung", "../", "", "🥬"])),
        4 => format!("off:{}", n(rng)),
        5 => format!("qty:{}:{}", n(rng), n(rng)),
        6 => "cart".into(),
        7 => format!("line:{}", n(rng)),
        8 => format!("edit:{}", n(rng)),
        9 => format!("del:{}", n(rng)),
        10 => rng.pick(&["empty", "empty!", "checkout", "place", "abort", "orders", "note:none"]).to_string(),
        11 => {
            rng.pick(&["name:saved", "phone:saved", "addr:saved", "lang", "lang:en", "lang:id", "lang:fr"]).to_string()
        }
        12 => format!("slot:{}", rng.pick(&["2026-11-29:0", "2026-11-28:9", "1999-01-01:1", "x", ""])),
        13 => format!("pay:{}", rng.pick(&["qris", "cod", "transfer", "bitcoin", ""])),
        14 => format!("cancel:BLB-{}", n(rng)),
        15 => format!("cancel!:BLB-{}", n(rng)),
        16 => format!("agree:{}", n(rng)),
        17 => format!("dropst:{}", n(rng)),
        18 => {
            format!("t:{}:{}", rng.pick(&["ok", "chg", "no", "line", "oos", "done", "pack", "short", "drop"]), n(rng))
        }
        19 => format!("t:why:{}:{}", n(rng), rng.pick(&["habis", "tutup", "lain", "x"])),
        20 => format!("a:list:{}:{}", rng.pick(&["all", "open", "x"]), n(rng)),
        21 => format!("a:ord:BLB-{}", n(rng)),
        22 => format!("a:{}:{}", rng.pick(&["bc", "bx"]), n(rng)),
        23 => rng.pick(&["sub", "unsub", "help", "search"]).to_string(),
        24 => format!("track:BLB-{}", n(rng)),
        25 => format!("rate:BLB-{}:{}:{}", n(rng), rng.pick(&["k", "1", "x"]), n(rng)),
        26 => format!("rvskip:BLB-{}", n(rng)),
        27 => format!("k:{}:{}", rng.pick(&["take", "skip", "go", "done", "fail"]), n(rng)),
        28 => format!("k:pick:{}:{}", n(rng), n(rng)),
        29 => format!("k:cash:{}:{}", n(rng), n(rng)),
        30 => format!("k:why:{}:{}", n(rng), rng.pick(&["absent", "address", "refused", "lost"])),
        31 => format!("ft:{}:{}", n(rng), rng.pick(&["all", "chg", "rev", "x"])),
        32 => format!("ft:{}:{}:{}", n(rng), rng.pick(&["l", "d"]), n(rng)),
        33 => format!("ft:{}:s:{}:{}", n(rng), n(rng), n(rng)),
        // Junk of every kind.
        _ => {
            let len = rng.below(80);
            (0..len).map(|_| rng.pick(&['a', ':', '0', '9', '-', '!', '🥬', '\u{0}', ' ', 'ß', '/', '%'])).collect()
        }
    }
}

pub const LOCATIONS: &[(f64, f64)] = &[
    (-7.9361, 112.6440),
    (0.0, 0.0),
    (90.0, 180.0),
    (-90.0, -180.0),
    (1000.0, -1000.0),
    (1e300, -1e300),
    (f64::MIN_POSITIVE, f64::MAX),
    (-7.0, 112.0),
    (51.5, -0.12),
];

/// A group member's message (the bot serves private chats only).
fn rng_text_for_groups(id: u32) -> String {
    ["/start", "/undang A-07", "brambang 2 kg", "🥬"][id as usize % 4].to_string()
}

/// A shared contact's phone number, well formed or not.
fn rng_phone(id: u32) -> String {
    ["+6281234567890", "0812", "", "+1 (555) 0100", "'; DROP TABLE users;--", "٠٨١٢٣٤٥٦٧٨٩", "62"][id as usize % 7]
        .to_string()
}

/// Wave `wave`'s share of `total` inputs (the shares add up to `total`).
fn share(total: usize, waves: usize, wave: usize) -> usize {
    total * (wave + 1) / waves - total * wave / waves
}

fn signed(body: &[u8]) -> String {
    sign(APP_SECRET.as_bytes(), body)
}

/// Posts `body` to the WhatsApp webhook with this `X-Hub-Signature-256` (or none); the status.
fn post_whatsapp(port: u16, body: &[u8], signature: Option<&str>) -> u16 {
    let headers: Vec<(&str, &str)> = signature.map(|s| ("X-Hub-Signature-256", s)).into_iter().collect();
    post(port, "/whatsapp", body, &headers)
}

/// What the store says about one user: their cart lines and conversation states.
fn user_rows(db: &rusqlite::Connection, channel: &str, user: &str) -> anyhow::Result<Vec<String>> {
    let mut rows = Vec::new();
    let mut q =
        db.prepare("SELECT offer_id, quantity, seq FROM cart_lines WHERE channel = ?1 AND user_id = ?2 ORDER BY seq")?;
    let lines = q.query_map([channel, user], |r| {
        Ok(format!("cart {} {} {}", r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
    })?;
    for line in lines {
        rows.push(line?);
    }
    let mut q = db.prepare(
        "SELECT market, role, state, updated_at FROM conversations WHERE channel = ?1 AND user_id = ?2 ORDER BY role",
    )?;
    let states = q.query_map([channel, user], |r| {
        Ok(format!(
            "state {} {} {} {}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?
        ))
    })?;
    for state in states {
        rows.push(state?);
    }
    Ok(rows)
}

fn count(db: &rusqlite::Connection, sql: &str) -> anyhow::Result<i64> {
    db.query_row(sql, [], |r| r.get(0)).with_context(|| sql.to_string())
}

/// Every offer's price and stock, and the tables only staff can fill.
fn guarded(db: &rusqlite::Connection) -> anyhow::Result<Vec<String>> {
    let mut q = db.prepare("SELECT * FROM offers ORDER BY id")?;
    let columns = q.column_count();
    let offers = q.query_map([], |r| {
        let mut row = Vec::new();
        for i in 0..columns {
            row.push(format!("{:?}", r.get_ref(i)?));
        }
        Ok(row.join("|"))
    })?;
    let mut out = Vec::new();
    for offer in offers {
        out.push(offer?);
    }
    for table in [
        "invites",
        "courier_invites",
        "admin_invites",
        "admin_audit",
        "broadcasts",
        "stall_traders",
        "couriers",
        "payments",
        "ledger",
        "commodity_photos",
    ] {
        out.push(format!("{table}: {}", count(db, &format!("SELECT COUNT(*) FROM {table}"))?));
    }
    out.push(format!("markets: {}", count(db, "SELECT COUNT(*) FROM markets")?));
    Ok(out)
}

/// Runs the scenario at `args`' size against `pasar` (the `pasar` binary); fails with the first
/// check that did not hold.
pub fn run(pasar: &Path, args: &AbuseArgs) -> anyhow::Result<AbuseReport> {
    ensure!(args.inputs >= 4 && args.users >= 4, "at least 4 inputs and 4 users");
    let started = Instant::now();
    let (tg_inputs, wa_inputs) = (args.inputs * 3 / 4, args.inputs - args.inputs * 3 / 4);
    let (tg_users, wa_users) = (args.users * 7 / 10, args.users - args.users * 7 / 10);
    let w = World::start(
        pasar,
        &WorldOptions {
            markets: 1,
            stock: None,
            admins: &[("whatsapp", WA_ADMIN)],
            strict: true,
            real_limits: false,
            per_user_messages: Some(STORM_PER_USER),
        },
    )?;
    let port = w.port;
    let (token, number) = (w.markets[0].token.clone(), w.markets[0].number.clone());
    let (token, number) = (token.as_str(), number.as_str());
    let wa_victim = Shopper::wa_number(WA_VICTIM);
    let db_path = w.db.clone();

    // The victim fills a cart before the storm: kangkung and bawang merah from two stalls.
    let (victim_presses, victim_before, wa_victim_before, guarded_before, victim_messages, wa_victim_messages) = {
        let mut victim = Shopper::new(&w, 0, Channel::Telegram(TG_VICTIM), false);
        victim.step(Input::Text("/start"), Expect::Says("Mau belanja apa"))?;
        for (search, found, stall, amount) in [
            ("kangkung", "Kangkung (per ikat)", "Sayur Bu Sri", "3 ikat"),
            ("brambang", "Bawang Merah", "Bu Kasiyem", "1/2 kg"),
        ] {
            let offers = victim.step(Input::Text(search), Expect::Offers(stall))?;
            ensure!(offers.contains(found), "{search} did not find {found}: {offers}");
            victim.step(Input::Choice, Expect::Says("Mau berapa"))?;
            victim.step(Input::Text(amount), Expect::Says("masuk keranjang"))?;
        }
        victim.step(Input::Text("/keranjang"), Expect::Says("Rp"))?;
        // And a victim on WhatsApp: kangkung, picked from the list, typed amount.
        let mut wa = Shopper::new(&w, 0, Channel::WhatsApp(WA_VICTIM), false);
        wa.step(Input::Text("kangkung"), Expect::Offers("Sayur Bu Sri"))?;
        wa.step(Input::Choice, Expect::Says("Mau berapa"))?;
        wa.step(Input::Text("2 ikat"), Expect::Says("masuk keranjang"))?;
        // Settled: every update handled, every reply sent.
        w.wait_quiet().context("the victims' setup did not settle")?;
        let db = rusqlite::Connection::open(&db_path)?;
        let before = user_rows(&db, "telegram", &TG_VICTIM.to_string())?;
        let wa_before = user_rows(&db, "whatsapp", &wa_victim)?;
        let carts = |rows: &[String]| rows.iter().filter(|r| r.starts_with("cart ")).count();
        ensure!(carts(&before) == 2, "the Telegram victim's cart: {before:#?}");
        ensure!(carts(&wa_before) == 1, "the WhatsApp victim's cart: {wa_before:#?}");
        // Pressed so far: the two stall buttons.
        (2, before, wa_before, guarded(&db)?, victim.texts().len(), wa.texts().len())
    };
    let telegram = &w.telegram;
    let graph = &w.graph;
    let setup_updates = telegram.updates_pushed(token);

    // The storm on Telegram, in waves (as users would type), and on WhatsApp between waves.
    let mut rng = Rng(args.seed);
    // One Telegram user's id is the WhatsApp admin's number, and two WhatsApp "numbers" are the
    // victim's and the Telegram admin's ids: a user is a channel and an id, never an id alone.
    let tg_user = |rng: &mut Rng| match rng.below(tg_users) {
        0 => 6_281_100_002_222,
        n => 10_000 + n as i64,
    };
    let mut presses: usize = victim_presses;
    let mut tg_senders = BTreeSet::new(); // Users who sent a message (not only button presses).
    let mut tg_pressers = BTreeSet::new();
    // WhatsApp's inputs from their own generator: the same bodies whatever Telegram's timing.
    let mut wa_rng = Rng(args.seed ^ WHATSAPP_SEED);
    let wa_user = |rng: &mut Rng| match rng.below(wa_users) {
        0 => TG_VICTIM.to_string(),
        1 => ADMIN.to_string(),
        n => format!("62812000{n:05}"),
    };
    let mut wa_senders = BTreeSet::new();
    let mut statuses: BTreeMap<String, BTreeMap<u16, usize>> = BTreeMap::new();
    let mut bad_statuses = Vec::new();
    let mut wamid = 0u64;
    let mut wa_digest = 0u64;
    let waves = WAVES;
    for wave in 0..waves {
        let sent_so_far = telegram.sent(token);
        for _ in 0..share(tg_inputs, waves, wave) {
            let user = tg_user(&mut rng);
            match rng.below(100) {
                0..=54 => {
                    tg_senders.insert(user);
                    telegram.text(token, user, &random_text(&mut rng));
                }
                55..=74 => {
                    tg_pressers.insert(user);
                    presses += 1;
                    telegram.press(token, user, &random_payload(&mut rng));
                }
                // A real button of a message the bot sent someone, the victim's included, pressed
                // by this user on their own chat or forged onto the other's message.
                75..=89 if !sent_so_far.is_empty() => {
                    let message = rng.pick(&sent_so_far);
                    let buttons: Vec<String> = message.markup["inline_keyboard"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
                        .filter_map(|b| b["callback_data"].as_str().map(String::from))
                        .collect();
                    // As many draws whatever was sent: the inputs after this one stay the same.
                    let (fallback, k) = (random_payload(&mut rng), rng.below(64));
                    let data = if buttons.is_empty() { fallback } else { buttons[k % buttons.len()].clone() };
                    tg_pressers.insert(user);
                    presses += 1;
                    if rng.chance(50) {
                        telegram.press_as(token, user, message.chat, message.id, &data);
                    } else {
                        telegram.press(token, user, &data);
                    }
                }
                75..=89 => {
                    tg_pressers.insert(user);
                    presses += 1;
                    telegram.press(token, user, &random_payload(&mut rng));
                }
                90..=93 => {
                    tg_senders.insert(user);
                    let (lat, lon) = rng.pick(LOCATIONS);
                    telegram.location(token, user, lat, lon);
                }
                94..=95 => {
                    // Updates of other shapes: presses without a message or without data,
                    // group chats, contacts, voice notes, stickers, member changes, junk.
                    let from = json!({"id": user, "is_bot": false, "first_name": random_text(&mut rng)});
                    let private = json!({"id": user, "type": "private", "first_name": "u"});
                    let message = |id: u32, chat: Value, extra: Value| {
                        let mut m =
                            json!({"message_id": id, "date": 1_764_300_000, "chat": chat, "from": from.clone()});
                        if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
                            m.extend(extra.clone());
                        }
                        m
                    };
                    let payload = random_payload(&mut rng);
                    let kind = rng.below(9);
                    if kind < 2 {
                        tg_pressers.insert(user);
                        presses += 1;
                    }
                    telegram.update(token, |id| match kind {
                        0 => json!({"update_id": id, "callback_query": {"id": format!("cb{id}"), "from": from,
                            "chat_instance": "ci", "inline_message_id": "inline-1", "data": payload}}),
                        1 => json!({"update_id": id, "callback_query": {"id": format!("cb{id}"), "from": from,
                            "chat_instance": "ci", "game_short_name": "pasar", "message": message(id, private.clone(), json!({"text": "menu"}))}}),
                        2 => json!({"update_id": id, "message": message(id,
                            json!({"id": -100_000 - i64::from(id), "type": "supergroup", "title": "Grup Pasar"}),
                            json!({"text": rng_text_for_groups(id)}))}),
                        3 => json!({"update_id": id, "message": message(id, private.clone(),
                            json!({"contact": {"phone_number": rng_phone(id), "first_name": "Kontak"}}))}),
                        4 => json!({"update_id": id, "message": message(id, private.clone(),
                            json!({"voice": {"file_id": "v", "file_unique_id": "v", "duration": 3}}))}),
                        5 => json!({"update_id": id, "message": message(id, private.clone(),
                            json!({"sticker": {"file_id": "s", "file_unique_id": "s", "type": "regular", "width": 512,
                                   "height": 512, "is_animated": false, "is_video": false}}))}),
                        6 => json!({"update_id": id, "my_chat_member": {"chat": private, "from": from, "date": 1_764_300_000,
                            "old_chat_member": {"user": from, "status": "member"},
                            "new_chat_member": {"user": from, "status": "kicked", "until_date": 0}}}),
                        7 => json!({"update_id": id, "edited_message": message(id, private.clone(),
                            json!({"text": "diubah", "edit_date": 1_764_300_100}))}),
                        _ => json!({"update_id": id, "message": {"message_id": "x", "chat": 5, "text": ["?"]}}),
                    });
                }
                96..=97 => {
                    let (lat, lon) = rng.pick(LOCATIONS);
                    telegram.live_location(token, user, rng.below(1000) as i64, lat, lon);
                }
                _ => {
                    tg_senders.insert(user);
                    let caption = if rng.chance(50) { "/foto bawang merah".to_string() } else { random_text(&mut rng) };
                    telegram.photo_with_caption(token, user, &format!("file-{}", rng.below(100)), &caption);
                }
            }
        }
        // WhatsApp: good deliveries, and bodies that must be refused with a 4xx.
        let mut wave_bodies = Vec::new();
        for _ in 0..share(wa_inputs, waves, wave) {
            let from = wa_user(&mut wa_rng);
            wamid += 1;
            let id = format!("wamid.abuse.{wamid}");
            let kind = wa_rng.below(100);
            let (label, body, signature, must): (&str, Vec<u8>, Option<String>, Option<u16>) = match kind {
                0..=39 => {
                    let body = wa_delivery(
                        &from,
                        number,
                        json!({"from": from, "id": id, "timestamp": "1764300000", "type": "text", "text": {"body": random_text(&mut wa_rng)}}),
                    );
                    wa_senders.insert(from.clone());
                    let sig = signed(body.as_bytes());
                    ("text", body.into_bytes(), Some(sig), Some(200))
                }
                40..=54 => {
                    let payload = random_payload(&mut wa_rng);
                    let interactive = if wa_rng.chance(50) {
                        json!({"type": "button_reply", "button_reply": {"id": payload, "title": "Pilih"}})
                    } else {
                        json!({"type": "list_reply", "list_reply": {"id": payload, "title": "Pilih", "description": "x"}})
                    };
                    let body = wa_delivery(
                        &from,
                        number,
                        json!({"from": from, "id": id, "timestamp": "1764300001", "type": "interactive", "interactive": interactive}),
                    );
                    wa_senders.insert(from.clone());
                    let sig = signed(body.as_bytes());
                    ("button", body.into_bytes(), Some(sig), Some(200))
                }
                55..=59 => {
                    let (lat, lon) = wa_rng.pick(LOCATIONS);
                    let body = wa_delivery(
                        &from,
                        number,
                        json!({"from": from, "id": id, "timestamp": "1764300003", "type": "location",
                               "location": {"latitude": lat, "longitude": lon, "name": random_text(&mut wa_rng)}}),
                    );
                    wa_senders.insert(from.clone());
                    let sig = signed(body.as_bytes());
                    ("location", body.into_bytes(), Some(sig), Some(200))
                }
                60..=63 => {
                    let kind = wa_rng
                        .pick(&["sticker", "reaction", "audio", "video", "contacts", "order", "system", "", "🥬"]);
                    let body = wa_delivery(
                        &from,
                        number,
                        json!({"from": from, "id": id, "timestamp": "1764300004", "type": kind}),
                    );
                    let sig = signed(body.as_bytes());
                    ("odd type", body.into_bytes(), Some(sig), None)
                }
                64..=66 => {
                    // A good-looking message for a number that is no market's.
                    let body = wa_delivery(
                        &from,
                        &wa_rng.next_u64().to_string(),
                        json!({"from": from, "id": id, "timestamp": "1764300000", "type": "text", "text": {"body": "halo"}}),
                    );
                    let sig = signed(body.as_bytes());
                    ("unknown number", body.into_bytes(), Some(sig), None)
                }
                67..=71 => {
                    // Well signed, not JSON (or cut short).
                    let good = wa_delivery(
                        &from,
                        number,
                        json!({"from": from, "id": id, "type": "text", "text": {"body": "x"}}),
                    );
                    let body: Vec<u8> = match wa_rng.below(5) {
                        0 => good.as_bytes()[..wa_rng.below(good.len())].to_vec(),
                        1 => (0..wa_rng.below(300)).map(|_| wa_rng.next_u64() as u8).collect(),
                        2 => b"{not json".to_vec(),
                        3 => Vec::new(),
                        _ => "\u{FEFF}{}".as_bytes().to_vec(),
                    };
                    let sig = signed(&body);
                    ("malformed", body, Some(sig), Some(400))
                }
                72..=73 => {
                    // Meta's statuses for messages that were never sent, or a redelivery.
                    let body = if wa_rng.chance(50) {
                        json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "6281130000001", "phone_number_id": number},
                            "statuses": [{"id": format!("wamid.out.{}", wa_rng.next_u64()), "status": wa_rng.pick(&["sent", "delivered", "read", "failed", "🥬"]),
                                          "timestamp": "1764300000", "recipient_id": from}]}}]}]})
                        .to_string()
                    } else {
                        wa_delivery(
                            &from,
                            number,
                            json!({"from": from, "id": format!("wamid.abuse.{}", 1 + wa_rng.below(wamid as usize)),
                            "timestamp": "1764300000", "type": "text", "text": {"body": "/start"}}),
                        )
                    };
                    let sig = signed(body.as_bytes());
                    ("status or redelivery", body.into_bytes(), Some(sig), None)
                }
                74..=76 => {
                    // Well signed JSON of the wrong shape.
                    let body = wa_rng
                        .pick(&[
                            r#"{"object":"page","entry":[]}"#,
                            r#"{"object":"whatsapp_business_account"}"#,
                            r#"{"object":"whatsapp_business_account","entry":"x"}"#,
                            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"from":1,"id":2}]}}]}]}"#,
                            r#"[]"#,
                            r#"null"#,
                            r#"42"#,
                            r#""whatsapp""#,
                        ])
                        .as_bytes()
                        .to_vec();
                    let sig = signed(&body);
                    ("wrong shape", body, Some(sig), None)
                }
                77..=84 => {
                    let body = wa_delivery(
                        &from,
                        number,
                        json!({"from": from, "id": id, "type": "text", "text": {"body": "/start"}}),
                    );
                    let sig = sign(b"not-the-secret", body.as_bytes());
                    ("wrong secret", body.into_bytes(), Some(sig), Some(403))
                }
                85..=89 => {
                    let body = wa_delivery(
                        &from,
                        number,
                        json!({"from": from, "id": id, "type": "text", "text": {"body": "/undang A-07"}}),
                    );
                    let sig = wa_rng
                        .pick(&["sha256=nothex", "sha256=", "", "sha1=abcd", "sha256=00", "🥬", "sha256=zz"])
                        .to_string();
                    ("bad signature", body.into_bytes(), Some(sig), Some(403))
                }
                90..=94 => {
                    // Signed, then changed (a forged field): the signature no longer matches.
                    let body = wa_delivery(
                        &from,
                        number,
                        json!({"from": from, "id": id, "type": "text", "text": {"body": "/lunas BLB-0001"}}),
                    );
                    let sig = signed(body.as_bytes());
                    let forged = body.replace(&from, if wa_rng.chance(50) { WA_ADMIN } else { wa_victim.as_str() });
                    ("tampered", forged.into_bytes(), Some(sig), Some(403))
                }
                _ => {
                    let body = wa_delivery(
                        &from,
                        number,
                        json!({"from": from, "id": id, "type": "text", "text": {"body": "/start"}}),
                    );
                    ("unsigned", body.into_bytes(), None, Some(401))
                }
            };
            wa_digest = wa_digest.rotate_left(5)
                ^ body.iter().fold(signature.as_ref().map_or(0, |s| s.len() as u64), |h, b| {
                    h.wrapping_mul(31).wrapping_add(u64::from(*b))
                });
            wave_bodies.push((label, body, signature, must));
        }
        // Posted by four senders at once, as Meta's deliveries come.
        let answers: Vec<u16> = std::thread::scope(|scope| {
            let workers: Vec<_> = wave_bodies
                .chunks(wave_bodies.len().div_ceil(4).max(1))
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|(_, body, sig, _)| post_whatsapp(port, body, sig.as_deref()))
                            .collect::<Vec<u16>>()
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().expect("a poster thread")).collect()
        });
        for ((label, body, _, must), status) in wave_bodies.into_iter().zip(answers) {
            *statuses.entry(label.to_string()).or_default().entry(status).or_default() += 1;
            let wrong = match must {
                Some(200) => status != 200,
                Some(_) => !(400..500).contains(&status),
                None => status >= 500 || status == 0,
            };
            if wrong || status >= 500 {
                bad_statuses.push((
                    label,
                    status,
                    String::from_utf8_lossy(&body).chars().take(200).collect::<String>(),
                ));
            }
        }
        if wave == waves / 2 {
            // A lost acknowledgement: the next getUpdates gives the first updates again.
            telegram.replay_all(token);
        }
        eprintln!("wave {wave}: {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    let inputs = telegram.updates_pushed(token);
    eprintln!("WhatsApp bodies' digest {wa_digest:x}");
    eprintln!("{inputs} Telegram updates, {wamid} WhatsApp bodies pushed in {:?}", started.elapsed());

    // Wait until every update is handled and every reply out, and every press answered.
    let db = rusqlite::Connection::open(&db_path)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pending = count(&db, "SELECT COUNT(*) FROM inbox WHERE status = 'pending'")?
            + count(&db, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'")?;
        let acknowledged = telegram.all_acknowledged(token);
        if pending == 0 && acknowledged && telegram.callback_ids_answered(token).len() >= presses {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("not settled: {pending} pending, all updates acknowledged: {acknowledged}");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    eprintln!("settled after {:?}; WhatsApp answers: {statuses:?}", started.elapsed());

    // Still running, and never panicked (a caught panic prints too).
    w.check_alive()?;
    // The warnings and errors logged, each kind once, but for the refusals expected here.
    let log = w.log();
    let logged: BTreeSet<String> = log
        .lines()
        .filter_map(|l| l.split_once(" WARN ").or_else(|| l.split_once(" ERROR ")))
        .map(|(_, what)| what.chars().take(90).collect::<String>())
        .filter(|w| !["webhook body refused", "no market has", "SAMPLE QRIS"].iter().any(|e| w.contains(e)))
        .collect();
    ensure!(bad_statuses.is_empty(), "wrong webhook answers: {bad_statuses:#?}");

    // Every input answered: a reply to every user who wrote, an answer to every press, and
    // nothing the platform refused.
    let refused = telegram.refused(token);
    ensure!(
        refused.is_empty(),
        "Telegram refused {} sends, e.g. {:?}",
        refused.len(),
        &refused[..refused.len().min(3)]
    );
    let wa_refused = graph.refused();
    ensure!(
        wa_refused.is_empty(),
        "the Graph API refused {} messages, e.g. {:#?}",
        wa_refused.len(),
        &wa_refused[..wa_refused.len().min(3)]
    );
    let unanswered: Vec<i64> = tg_senders.iter().copied().filter(|u| telegram.sent_to(token, *u).is_empty()).collect();
    ensure!(unanswered.is_empty(), "Telegram users never answered: {unanswered:?}");
    // Every press answered (a press given again after the lost acknowledgement may be answered
    // again: its first answer may have been lost too).
    let pressed: BTreeSet<String> =
        telegram.updates(token).iter().filter_map(|u| u["callback_query"]["id"].as_str().map(String::from)).collect();
    ensure!(pressed.len() == presses, "{} presses pushed, {presses} counted", pressed.len());
    let answered = telegram.callback_ids_answered(token);
    let unanswered_presses: Vec<&String> = pressed.difference(&answered).collect();
    ensure!(unanswered_presses.is_empty(), "presses never answered: {unanswered_presses:?}");
    let wa_unanswered: Vec<&String> = wa_senders.iter().filter(|u| graph.sent_to(u).is_empty()).collect();
    ensure!(wa_unanswered.is_empty(), "WhatsApp users never answered: {wa_unanswered:?}");
    let stuck = count(&db, "SELECT COUNT(*) FROM inbox WHERE status NOT IN ('done', 'skipped')")?;
    ensure!(stuck == 0, "{stuck} inbox rows neither done nor skipped under the flood rule");
    // Every input a reply of its own: each stored message (not a press, which may be answered
    // by the callback's toast alone, nor a live location's next point, nor one skipped under
    // the flood rule) has at least one.
    let mut q = db.prepare(
        "SELECT channel || ' ' || user_id, event FROM inbox i \
         WHERE status <> 'skipped' AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.inbox_id = i.id)",
    )?;
    let mut silent: Vec<(String, String)> = Vec::new();
    for row in q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
        silent.push(row?);
    }
    let toast_only = silent.iter().filter(|(_, e)| e.contains(r#""inbound":{"Button""#)).count();
    let silent: Vec<&(String, String)> =
        silent.iter().filter(|(_, e)| !e.contains(r#""inbound":{"Button""#) && !e.contains(r#""live":true"#)).collect();
    ensure!(silent.is_empty(), "{} inputs got no reply, e.g. {:#?}", silent.len(), &silent[..silent.len().min(5)]);
    let stored = count(&db, "SELECT COUNT(*) FROM inbox")?;
    let mut q = db.prepare(
        "SELECT channel || ' ' || recipient || ': ' || COALESCE(last_error, '') FROM outbox WHERE status NOT IN ('sent')",
    )?;
    let mut failed: Vec<String> = Vec::new();
    for row in q.query_map([], |r| r.get(0))? {
        failed.push(row?);
    }
    ensure!(failed.is_empty(), "{} replies not sent, e.g. {:?}", failed.len(), &failed[..failed.len().min(5)]);

    // Nobody touched the victims, and no outsider changed what only staff may.
    w.stop();
    let db = rusqlite::Connection::open(&db_path)?;
    ensure!(
        user_rows(&db, "telegram", &TG_VICTIM.to_string())? == victim_before,
        "the victim's cart and state changed"
    );
    let guarded_after = guarded(&db)?;
    if guarded_after != guarded_before {
        let changed: Vec<_> = guarded_after.iter().filter(|r| !guarded_before.contains(r)).take(5).collect();
        bail!("prices, stock or staff tables changed: {changed:#?}");
    }
    // The admins heard nothing of it (no forged admin command got through to them either).
    let telegram = &w.telegram;
    let graph = &w.graph;
    ensure!(telegram.sent_to(token, ADMIN).is_empty(), "the Telegram admin was sent something");
    ensure!(graph.sent_to(WA_ADMIN).is_empty(), "the WhatsApp admin was sent something");
    let victim_after = telegram.sent_to(token, TG_VICTIM).len();
    ensure!(
        victim_after == victim_messages,
        "{} more messages were sent to the victim",
        victim_after - victim_messages
    );
    ensure!(
        user_rows(&db, "whatsapp", &wa_victim)? == wa_victim_before,
        "the WhatsApp victim's cart and state changed"
    );
    let wa_victim_after = graph.sent_to(&wa_victim).len();
    ensure!(wa_victim_after == wa_victim_messages, "more messages were sent to the WhatsApp victim");
    Ok(AbuseReport {
        telegram_updates: inputs - setup_updates,
        presses: presses - victim_presses,
        whatsapp_bodies: wamid as usize,
        whatsapp_answers: statuses,
        users: tg_senders.union(&tg_pressers).count() + wa_senders.len(),
        stored,
        telegram_replies: telegram.sent(token).len(),
        whatsapp_replies: wa_senders.iter().map(|u| graph.sent_to(u).len()).sum(),
        toast_only,
        logged,
        wa_digest,
        elapsed: started.elapsed(),
    })
}

/// Prints a report (`pasar loadtest abuse`'s summary).
pub fn print(r: &AbuseReport) {
    println!(
        "abuse: {} fuzzed inputs from {} users: {} Telegram updates ({} button presses, forged ones among them) and {} WhatsApp bodies (WhatsApp digest {:x})",
        r.telegram_updates + r.whatsapp_bodies,
        r.users,
        r.telegram_updates,
        r.presses,
        r.whatsapp_bodies,
        r.wa_digest
    );
    println!("  WhatsApp webhook answers by kind: {:?}", r.whatsapp_answers);
    println!(
        "  {} inputs stored and handled; {} Telegram and {} WhatsApp replies, none refused by the platforms; {} presses answered by the toast alone",
        r.stored, r.telegram_replies, r.whatsapp_replies, r.toast_only
    );
    println!("  other warnings and errors logged by pasar run: {:?}", r.logged);
    println!(
        "  {:.1} s; errors: none (no panic, no 5xx, every user answered, the victims' carts and the staff tables untouched)",
        r.elapsed.as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waves_share_every_input() {
        for total in [0, 1, 11, 1200, 2500, 7500] {
            assert_eq!((0..WAVES).map(|w| share(total, WAVES, w)).sum::<usize>(), total);
        }
        assert_eq!(share(3600, WAVES, 5), 300);
    }

    #[test]
    fn the_generator_is_the_same_on_every_run() {
        let mut a = Rng(DEFAULT_SEED);
        let mut b = Rng(DEFAULT_SEED);
        let texts: Vec<String> = (0..300).map(|_| random_text(&mut a)).collect();
        assert_eq!(texts, (0..300).map(|_| random_text(&mut b)).collect::<Vec<_>>());
        assert!(texts.iter().any(|t| t.chars().count() > 4_096), "some messages are huge");
        assert!(texts.iter().any(|t| t.starts_with('/')), "some are commands");
    }
}
