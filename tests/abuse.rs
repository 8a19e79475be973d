//! Abuse (issue 10): `pasar run` against the fake Telegram Bot API and the WhatsApp webhook with
//! a fake Graph API, fed a few thousand seeded random inputs from about fifty users: market words
//! and amounts, emoji, control characters, 4,000+ character messages, SQL-looking text, every
//! slash command (admin ones from non-admins), forged and foreign buttons, absurd locations, and
//! on WhatsApp malformed, wrongly signed and unsigned bodies. The process must stay up without a
//! panic, no webhook answer may be a 5xx, every input must be answered, and a shopper who built a
//! cart before the storm must find exactly that cart (and the catalogue its prices) afterwards.
//! The fakes are strict here: they refuse what the real APIs refuse for its size (a text over
//! 4,096 characters, callback data over 64 bytes, a WhatsApp button title over 20...), so a reply
//! the platform would bounce fails the test. A second test throws the same at the Telegram
//! webhook mode. The inputs are the same on every run (a seeded generator; the WhatsApp bodies'
//! digest is printed), but for which of the bot's real buttons are pressed back, which depends on
//! what it had sent by then.

mod common;

use common::{http, post_telegram, post_whatsapp as post};

use common::fake_graph::FakeGraph;
use common::fake_telegram::FakeTelegram;
use pasar_online::channel::whatsapp::sign;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "111:blimbing-token";
const NUMBER: &str = "1001";
const APP_SECRET: &str = "app-secret-for-abuse";
const TG_ADMIN: i64 = 9001;
const WA_ADMIN: &str = "6281100002222";
const VICTIM: i64 = 5005;
const WA_VICTIM: &str = "6289900005005";
/// The fuzzing users: Telegram chats and WhatsApp numbers.
const TG_USERS: i64 = 35;
const WA_USERS: u64 = 15;
const TG_INPUTS: usize = 3600;
const WA_INPUTS: usize = 1200;

/// A small deterministic generator (xorshift64*): the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
    fn chance(&mut self, percent: usize) -> bool {
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
fn random_text(rng: &mut Rng) -> String {
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
                    7 => (rng.next() as i64).to_string(),
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
fn random_payload(rng: &mut Rng) -> String {
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

const LOCATIONS: &[(f64, f64)] = &[
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

/// `pasar run` with the Blimbing bot on Telegram and its WhatsApp number, its standard error
/// kept in a file.
struct Pasar {
    child: Child,
    port: u16,
    stderr: std::path::PathBuf,
}

impl Pasar {
    /// `pasar run` with this config and database, the Blimbing bot's token and `env`, its
    /// stderr in `stderr`; its HTTP server on `port`.
    fn start(
        config: &std::path::Path,
        db: &std::path::Path,
        port: u16,
        stderr: std::path::PathBuf,
        env: &[(&str, &str)],
    ) -> Pasar {
        let child = Command::new(env!("CARGO_BIN_EXE_pasar"))
            .arg("--config")
            .arg(config)
            .args(["run", "--db"])
            .arg(db)
            .env("PASAR_BLIMBING_TELEGRAM_TOKEN", TOKEN)
            .envs(env.iter().copied())
            .env_remove("PASAR_DB")
            .env("NO_COLOR", "1")
            .env("PASAR_LOG", std::env::var("PASAR_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("pasar run");
        Pasar { child, port, stderr }
    }
}

impl Drop for Pasar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(telegram: &FakeTelegram, graph: &FakeGraph, dir: &std::path::Path) -> Pasar {
    let deadline = Instant::now() + Duration::from_secs(60);
    for attempt in 0.. {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let verify = format!("verify-abuse-{}-{port}", std::process::id());
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[markets.blimbing]\nwhatsapp_phone_number_id = \"{NUMBER}\"\n\
             [whatsapp]\ngraph_url = \"{}\"\ntimeout_secs = 2\n[whatsapp.limits]\nper_number_per_sec = 1000\nper_user_interval_secs = 0\n\
             [telegram]\napi_url = \"{}\"\npoll_timeout_secs = 1\n[telegram.limits]\nper_chat_per_sec = 1000\nper_bot_per_sec = 1000\n\
             [[admins]]\nchannel = \"telegram\"\nuser = \"{TG_ADMIN}\"\nmarkets = [\"blimbing\"]\n\
             [[admins]]\nchannel = \"whatsapp\"\nuser = \"{WA_ADMIN}\"\nmarkets = [\"blimbing\"]\n",
            graph.url, telegram.url
        );
        let path = dir.join("config.toml");
        std::fs::write(&path, config).expect("config");
        let stderr = dir.join(format!("stderr-{attempt}.log"));
        let env = [
            ("WHATSAPP_ACCESS_TOKEN", "graph-token"),
            ("WHATSAPP_APP_SECRET", APP_SECRET),
            ("WHATSAPP_VERIFY_TOKEN", verify.as_str()),
        ];
        let mut pasar = Pasar::start(&path, &dir.join("pasar.db"), port, stderr, &env);
        let check = format!(
            "GET /whatsapp?hub.mode=subscribe&hub.verify_token={verify}&hub.challenge=42 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && http(port, check.as_bytes()).0 == 200 {
                return pasar;
            }
            if pasar.child.try_wait().ok().flatten().is_some() {
                break; // The port was taken meanwhile: another one.
            }
            assert!(Instant::now() < deadline, "pasar run did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    unreachable!()
}

fn signed(body: &[u8]) -> String {
    sign(APP_SECRET.as_bytes(), body)
}

/// A WhatsApp delivery of one message from `from`.
fn wa_delivery(from: &str, number: &str, message: Value) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "6281130000001", "phone_number_id": number},
            "contacts": [{"profile": {"name": "Pembeli"}, "wa_id": from}],
            "messages": [message]
        }}]}]
    })
    .to_string()
}

/// What the store says about one user: their cart lines and conversation states.
fn user_rows(db: &rusqlite::Connection, channel: &str, user: &str) -> Vec<String> {
    let mut rows = Vec::new();
    let mut q = db
        .prepare("SELECT offer_id, quantity, seq FROM cart_lines WHERE channel = ?1 AND user_id = ?2 ORDER BY seq")
        .expect("cart query");
    let lines = q
        .query_map([channel, user], |r| {
            Ok(format!("cart {} {} {}", r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
        })
        .expect("cart rows");
    rows.extend(lines.map(|l| l.expect("cart row")));
    let mut q = db
        .prepare("SELECT market, role, state, updated_at FROM conversations WHERE channel = ?1 AND user_id = ?2 ORDER BY role")
        .expect("state query");
    let states = q
        .query_map([channel, user], |r| {
            Ok(format!(
                "state {} {} {} {}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?
            ))
        })
        .expect("state rows");
    rows.extend(states.map(|s| s.expect("state row")));
    rows
}

fn count(db: &rusqlite::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every offer's price and stock, and the tables only staff can fill.
fn guarded(db: &rusqlite::Connection) -> Vec<String> {
    let mut q = db.prepare("SELECT * FROM offers ORDER BY id").expect("offers");
    let columns = q.column_count();
    let mut out: Vec<String> = q
        .query_map([], |r| {
            let mut row = Vec::new();
            for i in 0..columns {
                row.push(format!("{:?}", r.get_ref(i)?));
            }
            Ok(row.join("|"))
        })
        .expect("offers")
        .map(|r| r.expect("offer"))
        .collect();
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
        out.push(format!("{table}: {}", count(db, &format!("SELECT COUNT(*) FROM {table}"))));
    }
    out.push(format!("markets: {}", count(db, "SELECT COUNT(*) FROM markets")));
    out
}

#[test]
fn thousands_of_hostile_inputs_leave_the_bot_up_answering_and_every_other_user_untouched() {
    let started = Instant::now();
    let telegram = FakeTelegram::start(&[TOKEN]);
    let graph = FakeGraph::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pasar = start(&telegram, &graph, dir.path());
    let port = pasar.port;
    telegram.strict(TOKEN);
    graph.strict();

    // The victim fills a cart before the storm: kangkung and bawang merah from two stalls.
    telegram.text(TOKEN, VICTIM, "/start");
    let (_, mut seen) = telegram.wait_for(TOKEN, VICTIM, "Mau belanja apa", 0);
    for (search, found, stall, amount) in [
        ("kangkung", "Kangkung (per ikat)", "Sayur Bu Sri", "3 ikat"),
        ("brambang", "Bawang Merah", "Bu Kasiyem", "1/2 kg"),
    ] {
        telegram.text(TOKEN, VICTIM, search);
        let (offers, n) = telegram.wait_for(TOKEN, VICTIM, found, seen);
        telegram.press(TOKEN, VICTIM, &offers.button(stall).expect("stall button"));
        let (_, n) = telegram.wait_for(TOKEN, VICTIM, "Mau berapa", n);
        telegram.text(TOKEN, VICTIM, amount);
        (_, seen) = telegram.wait_for(TOKEN, VICTIM, "masuk keranjang", n);
    }
    telegram.text(TOKEN, VICTIM, "/keranjang");
    telegram.wait_for(TOKEN, VICTIM, "Rp", seen);
    // And a victim on WhatsApp: kangkung, picked from the list, typed amount.
    let wa_victim_say = |n: u32, message: Value| {
        let mut message = message;
        message["from"] = json!(WA_VICTIM);
        message["id"] = json!(format!("wamid.victim.{n}"));
        message["timestamp"] = json!("1764300000");
        let body = wa_delivery(WA_VICTIM, NUMBER, message);
        assert_eq!(post(port, body.as_bytes(), Some(&signed(body.as_bytes()))), 200);
    };
    wa_victim_say(1, json!({"type": "text", "text": {"body": "kangkung"}}));
    let (choice, n) = graph.wait_for_choice(WA_VICTIM, "Sayur Bu Sri", 0);
    wa_victim_say(
        2,
        json!({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": choice, "title": "x"}}}),
    );
    let (_, n) = graph.wait_for(WA_VICTIM, "Mau berapa", n);
    wa_victim_say(3, json!({"type": "text", "text": {"body": "2 ikat"}}));
    graph.wait_for(WA_VICTIM, "masuk keranjang", n);
    let db_path = dir.path().join("pasar.db");
    let (victim_before, guarded_before) = {
        let db = rusqlite::Connection::open(&db_path).expect("db");
        // Settled: every update handled, every reply sent.
        let deadline = Instant::now() + Duration::from_secs(30);
        while count(&db, "SELECT COUNT(*) FROM inbox WHERE status = 'pending'") > 0
            || count(&db, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'") > 0
        {
            assert!(Instant::now() < deadline, "the victim's setup did not settle");
            std::thread::sleep(Duration::from_millis(20));
        }
        (user_rows(&db, "telegram", &VICTIM.to_string()), guarded(&db))
    };
    let wa_victim_before = user_rows(&rusqlite::Connection::open(&db_path).expect("db"), "whatsapp", WA_VICTIM);
    assert_eq!(victim_before.iter().filter(|r| r.starts_with("cart ")).count(), 2, "{victim_before:#?}");
    assert_eq!(wa_victim_before.iter().filter(|r| r.starts_with("cart ")).count(), 1, "{wa_victim_before:#?}");
    let victim_messages = telegram.sent_to(TOKEN, VICTIM);
    let wa_victim_messages = graph.sent_to(WA_VICTIM).len();
    let victim_presses = 2; // Pressed so far: the two stall buttons.

    // The storm on Telegram, in waves (as users would type), and on WhatsApp between waves.
    let mut rng = Rng(0x5EED_0A0B_05E5_2026);
    // One Telegram user's id is the WhatsApp admin's number, and two WhatsApp "numbers" are the
    // victim's and the Telegram admin's ids: a user is a channel and an id, never an id alone.
    let tg_user = |rng: &mut Rng| match rng.below(TG_USERS as usize) {
        0 => 6_281_100_002_222,
        n => 10_000 + n as i64,
    };
    let mut presses = victim_presses;
    let mut tg_senders = BTreeSet::new(); // Users who sent a message (not only button presses).
    let mut tg_pressers = BTreeSet::new();
    // WhatsApp's inputs from their own generator: the same bodies whatever Telegram's timing.
    let mut wa_rng = Rng(0x0A11_CE5E_ED00_0010);
    let wa_user = |rng: &mut Rng| match rng.below(WA_USERS as usize) {
        0 => VICTIM.to_string(),
        1 => TG_ADMIN.to_string(),
        n => format!("62812000{n:05}"),
    };
    let mut wa_senders = BTreeSet::new();
    let mut statuses: BTreeMap<String, BTreeMap<u16, usize>> = BTreeMap::new();
    let mut bad_statuses = Vec::new();
    let mut wamid = 0u64;
    let mut wa_digest = 0u64;
    let waves = 12;
    for wave in 0..waves {
        let sent_so_far = telegram.sent(TOKEN);
        for _ in 0..TG_INPUTS / waves {
            let user = tg_user(&mut rng);
            match rng.below(100) {
                0..=54 => {
                    tg_senders.insert(user);
                    telegram.text(TOKEN, user, &random_text(&mut rng));
                }
                55..=74 => {
                    tg_pressers.insert(user);
                    presses += 1;
                    telegram.press(TOKEN, user, &random_payload(&mut rng));
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
                        telegram.press_as(TOKEN, user, message.chat, message.id, &data);
                    } else {
                        telegram.press(TOKEN, user, &data);
                    }
                }
                75..=89 => {
                    tg_pressers.insert(user);
                    presses += 1;
                    telegram.press(TOKEN, user, &random_payload(&mut rng));
                }
                90..=93 => {
                    tg_senders.insert(user);
                    let (lat, lon) = rng.pick(LOCATIONS);
                    telegram.location(TOKEN, user, lat, lon);
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
                    telegram.update(TOKEN, |id| match kind {
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
                    telegram.live_location(TOKEN, user, rng.below(1000) as i64, lat, lon);
                }
                _ => {
                    tg_senders.insert(user);
                    let caption = if rng.chance(50) { "/foto bawang merah".to_string() } else { random_text(&mut rng) };
                    telegram.photo_with_caption(TOKEN, user, &format!("file-{}", rng.below(100)), &caption);
                }
            }
        }
        // WhatsApp: good deliveries, and bodies that must be refused with a 4xx.
        let mut wave_bodies = Vec::new();
        for _ in 0..WA_INPUTS / waves {
            let from = wa_user(&mut wa_rng);
            wamid += 1;
            let id = format!("wamid.abuse.{wamid}");
            let kind = wa_rng.below(100);
            let (label, body, signature, must): (&str, Vec<u8>, Option<String>, Option<u16>) = match kind {
                0..=39 => {
                    let body = wa_delivery(
                        &from,
                        NUMBER,
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
                        NUMBER,
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
                        NUMBER,
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
                        NUMBER,
                        json!({"from": from, "id": id, "timestamp": "1764300004", "type": kind}),
                    );
                    let sig = signed(body.as_bytes());
                    ("odd type", body.into_bytes(), Some(sig), None)
                }
                64..=66 => {
                    // A good-looking message for a number that is no market's.
                    let body = wa_delivery(
                        &from,
                        &wa_rng.next().to_string(),
                        json!({"from": from, "id": id, "timestamp": "1764300000", "type": "text", "text": {"body": "halo"}}),
                    );
                    let sig = signed(body.as_bytes());
                    ("unknown number", body.into_bytes(), Some(sig), None)
                }
                67..=71 => {
                    // Well signed, not JSON (or cut short).
                    let good = wa_delivery(
                        &from,
                        NUMBER,
                        json!({"from": from, "id": id, "type": "text", "text": {"body": "x"}}),
                    );
                    let body: Vec<u8> = match wa_rng.below(5) {
                        0 => good.as_bytes()[..wa_rng.below(good.len())].to_vec(),
                        1 => (0..wa_rng.below(300)).map(|_| wa_rng.next() as u8).collect(),
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
                            "metadata": {"display_phone_number": "6281130000001", "phone_number_id": NUMBER},
                            "statuses": [{"id": format!("wamid.out.{}", wa_rng.next()), "status": wa_rng.pick(&["sent", "delivered", "read", "failed", "🥬"]),
                                          "timestamp": "1764300000", "recipient_id": from}]}}]}]})
                        .to_string()
                    } else {
                        wa_delivery(
                            &from,
                            NUMBER,
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
                        NUMBER,
                        json!({"from": from, "id": id, "type": "text", "text": {"body": "/start"}}),
                    );
                    let sig = sign(b"not-the-secret", body.as_bytes());
                    ("wrong secret", body.into_bytes(), Some(sig), Some(403))
                }
                85..=89 => {
                    let body = wa_delivery(
                        &from,
                        NUMBER,
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
                        NUMBER,
                        json!({"from": from, "id": id, "type": "text", "text": {"body": "/lunas BLB-0001"}}),
                    );
                    let sig = signed(body.as_bytes());
                    let forged = body.replace(&from, if wa_rng.chance(50) { WA_ADMIN } else { WA_VICTIM });
                    ("tampered", forged.into_bytes(), Some(sig), Some(403))
                }
                _ => {
                    let body = wa_delivery(
                        &from,
                        NUMBER,
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
                        chunk.iter().map(|(_, body, sig, _)| post(port, body, sig.as_deref())).collect::<Vec<u16>>()
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().expect("poster")).collect()
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
            telegram.replay_all(TOKEN);
        }
        eprintln!("wave {wave}: {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    let inputs = telegram.updates_pushed(TOKEN);
    eprintln!("WhatsApp bodies' digest {wa_digest:x}");
    eprintln!("{inputs} Telegram updates, {wamid} WhatsApp bodies pushed in {:?}", started.elapsed());

    // Wait until every update is handled and every reply out, and every press answered.
    let db = rusqlite::Connection::open(&db_path).expect("db");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending = count(&db, "SELECT COUNT(*) FROM inbox WHERE status = 'pending'")
            + count(&db, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'");
        let acknowledged = telegram.all_acknowledged(TOKEN);
        if pending == 0 && acknowledged && telegram.callback_ids_answered(TOKEN).len() >= presses {
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
    assert!(pasar.child.try_wait().expect("wait").is_none(), "pasar run exited");
    let log = std::fs::read_to_string(&pasar.stderr).unwrap_or_default();
    let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
    assert!(panics.is_empty(), "panics:\n{}", panics.join("\n"));
    // The warnings and errors logged, each kind once, but for the refusals expected here.
    let errors: BTreeSet<String> = log
        .lines()
        .filter_map(|l| l.split_once(" WARN ").or_else(|| l.split_once(" ERROR ")))
        .map(|(_, what)| what.chars().take(90).collect::<String>())
        .filter(|w| !["webhook body refused", "no market has", "SAMPLE QRIS"].iter().any(|e| w.contains(e)))
        .collect();
    let logged = log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).count();
    eprintln!("{logged} warnings and errors logged; other kinds than refused bodies: {errors:#?}");
    assert!(bad_statuses.is_empty(), "wrong webhook answers: {bad_statuses:#?}");

    // Every input answered: a reply to every user who wrote, an answer to every press, and
    // nothing the platform refused.
    let refused = telegram.refused(TOKEN);
    assert!(
        refused.is_empty(),
        "Telegram refused {} sends, e.g. {:?}",
        refused.len(),
        &refused[..refused.len().min(3)]
    );
    let wa_refused = graph.refused();
    assert!(
        wa_refused.is_empty(),
        "the Graph API refused {} messages, e.g. {:#?}",
        wa_refused.len(),
        &wa_refused[..wa_refused.len().min(3)]
    );
    let unanswered: Vec<i64> = tg_senders.iter().copied().filter(|u| telegram.sent_to(TOKEN, *u).is_empty()).collect();
    assert!(unanswered.is_empty(), "Telegram users never answered: {unanswered:?}");
    // Every press answered (a press given again after the lost acknowledgement may be answered
    // again: its first answer may have been lost too).
    let pressed: BTreeSet<String> =
        telegram.updates(TOKEN).iter().filter_map(|u| u["callback_query"]["id"].as_str().map(String::from)).collect();
    assert_eq!(pressed.len(), presses);
    let answered = telegram.callback_ids_answered(TOKEN);
    let unanswered_presses: Vec<&String> = pressed.difference(&answered).collect();
    assert!(unanswered_presses.is_empty(), "presses never answered: {unanswered_presses:?}");
    let wa_unanswered: Vec<&String> = wa_senders.iter().filter(|u| graph.sent_to(u).is_empty()).collect();
    assert!(wa_unanswered.is_empty(), "WhatsApp users never answered: {wa_unanswered:?}");
    let stuck = count(&db, "SELECT COUNT(*) FROM inbox WHERE status <> 'done'");
    let failed: Vec<String> = db
        .prepare("SELECT channel || ' ' || recipient || ': ' || COALESCE(last_error, '') FROM outbox WHERE status NOT IN ('sent')")
        .expect("outbox")
        .query_map([], |r| r.get(0))
        .expect("outbox")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(stuck, 0, "inbox rows not done");
    // Every input a reply of its own: each stored message (not a press, which may be answered
    // by the callback's toast alone, nor a live location's next point) has at least one.
    let silent: Vec<(String, String)> = db
        .prepare(
            "SELECT channel || ' ' || user_id, event FROM inbox i \
             WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.inbox_id = i.id)",
        )
        .expect("inbox")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("inbox")
        .map(|r| r.expect("row"))
        .collect();
    let silent_presses = silent.iter().filter(|(_, e)| e.contains(r#""inbound":{"Button""#)).count();
    let silent: Vec<&(String, String)> =
        silent.iter().filter(|(_, e)| !e.contains(r#""inbound":{"Button""#) && !e.contains(r#""live":true"#)).collect();
    assert!(silent.is_empty(), "{} inputs got no reply, e.g. {:#?}", silent.len(), &silent[..silent.len().min(5)]);
    let stored = count(&db, "SELECT COUNT(*) FROM inbox");
    assert!(failed.is_empty(), "{} replies not sent, e.g. {:?}", failed.len(), &failed[..failed.len().min(5)]);
    drop(db);

    // Nobody touched the victim, and no outsider changed what only staff may.
    pasar.child.kill().expect("kill");
    pasar.child.wait().expect("wait");
    let db = rusqlite::Connection::open(&db_path).expect("db");
    assert_eq!(user_rows(&db, "telegram", &VICTIM.to_string()), victim_before, "the victim's cart and state");
    assert_eq!(guarded(&db), guarded_before, "prices, stock and staff tables");
    // The admins heard nothing of it (no forged admin command got through to them either).
    assert_eq!(telegram.sent_to(TOKEN, TG_ADMIN).len(), 0, "the Telegram admin");
    assert_eq!(graph.sent_to(WA_ADMIN).len(), 0, "the WhatsApp admin");
    let victim_after = telegram.sent_to(TOKEN, VICTIM);
    assert_eq!(victim_after.len(), victim_messages.len(), "nothing more was sent to the victim");
    assert_eq!(user_rows(&db, "whatsapp", WA_VICTIM), wa_victim_before, "the WhatsApp victim's cart and state");
    assert_eq!(graph.sent_to(WA_VICTIM).len(), wa_victim_messages, "nothing more was sent to the WhatsApp victim");
    let users = tg_senders.union(&tg_pressers).count() + wa_senders.len();
    eprintln!(
        "{inputs} Telegram updates ({presses} presses, {silent_presses} answered by the toast alone) and {wamid} WhatsApp bodies from {users} users; {stored} inputs stored; {} Telegram and {} WhatsApp replies; {:?}",
        telegram.sent(TOKEN).len(),
        wa_senders.iter().map(|u| graph.sent_to(u).len()).sum::<usize>(),
        started.elapsed()
    );
}

/// A Telegram update as JSON, for posting to the webhook.
fn tg_update(id: u32, user: i64, rng: &mut Rng) -> (Value, bool) {
    let from = json!({"id": user, "is_bot": false, "first_name": "u"});
    let chat = json!({"id": user, "type": "private", "first_name": "u"});
    let message = |extra: Value| {
        let mut m = json!({"message_id": id, "date": 1_764_300_000, "chat": chat.clone(), "from": from.clone()});
        if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
            m.extend(extra.clone());
        }
        m
    };
    match rng.below(10) {
        0..=5 => (json!({"update_id": id, "message": message(json!({"text": random_text(rng)}))}), false),
        6..=8 => {
            // Pressed on the user's own message or forged onto another chat's.
            let on = if rng.chance(70) { user } else { VICTIM };
            let pressed = json!({"message_id": rng.below(500), "date": 1_764_300_000,
                "chat": {"id": on, "type": "private", "first_name": "v"},
                "from": {"id": 42, "is_bot": true, "first_name": "Pasar"}, "text": "menu"});
            let data = random_payload(rng);
            (
                json!({"update_id": id, "callback_query": {"id": format!("wh{id}"), "from": from, "chat_instance": "ci",
                    "data": data, "message": pressed}}),
                true,
            )
        }
        _ => {
            let (lat, lon) = rng.pick(LOCATIONS);
            (
                json!({"update_id": id, "message": message(json!({"location": {"latitude": lat, "longitude": lon}}))}),
                false,
            )
        }
    }
}

/// A post to the Telegram webhook: what it is, its path, secret header and body, and the answer
/// it must get (any but a 5xx when `None`).
type WebhookPost = (&'static str, String, Option<String>, Vec<u8>, Option<u16>);

#[test]
fn the_telegram_webhook_refuses_junk_with_a_4xx_and_answers_every_update() {
    let started = Instant::now();
    let telegram = FakeTelegram::start(&[TOKEN]);
    telegram.strict(TOKEN);
    let dir = tempfile::tempdir().expect("tempdir");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut pasar, secret) = loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let secret = format!("abuse-secret-{}-{port}", std::process::id());
        let config = format!(
            "[telegram]\napi_url = \"{}\"\nmode = \"webhook\"\npublic_url = \"https://pasar.example.id\"\nlisten = \"127.0.0.1:{port}\"\n\
             [telegram.limits]\nper_chat_per_sec = 1000\nper_bot_per_sec = 1000\n",
            telegram.url
        );
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).expect("config");
        let stderr = dir.path().join(format!("stderr-{port}.log"));
        let env = [("PASAR_TELEGRAM_WEBHOOK_SECRET", secret.as_str())];
        let mut pasar = Pasar::start(&path, &dir.path().join("pasar.db"), port, stderr, &env);
        // Ours when a bad body with our secret gets 400 (another server would say 401).
        let up = loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && post_telegram(port, "/telegram/blimbing", Some(&secret), b"{not json") == 400
            {
                break true;
            }
            if pasar.child.try_wait().ok().flatten().is_some() {
                break false;
            }
            assert!(Instant::now() < deadline, "the webhook server did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        if up {
            break (pasar, secret);
        }
    };
    let port = pasar.port;

    let mut rng = Rng(0x7E1E_6A3A_0000_0042);
    let mut requests: Vec<WebhookPost> = Vec::new();
    let mut callbacks = BTreeSet::new();
    let path = "/telegram/blimbing".to_string();
    for id in 1..=1200u32 {
        let user = 20_000 + rng.below(25) as i64;
        let request = match rng.below(100) {
            0..=69 => {
                let (update, press) = tg_update(id, user, &mut rng);
                if press {
                    callbacks.insert(format!("wh{id}"));
                }
                ("update", path.clone(), Some(secret.clone()), update.to_string().into_bytes(), Some(200))
            }
            70..=74 => {
                // Telegram redelivers an update (the same id): harmless.
                let (update, _) = tg_update(1 + rng.below(id as usize) as u32, user, &mut rng);
                let update = {
                    let mut u = update;
                    u["update_id"] = json!(id.saturating_sub(1).max(1));
                    u
                };
                ("redelivered", path.clone(), Some(secret.clone()), update.to_string().into_bytes(), None)
            }
            75..=82 => {
                let (update, _) = tg_update(id, user, &mut rng);
                let wrong = rng.pick(&["", "wrong", "abuse-secret", "🥬"]);
                let secret = if rng.chance(30) { None } else { Some(wrong.to_string()) };
                ("bad secret", path.clone(), secret, update.to_string().into_bytes(), Some(401))
            }
            83..=92 => {
                let (update, _) = tg_update(id, user, &mut rng);
                let text = update.to_string();
                let body: Vec<u8> = match rng.below(6) {
                    0 => text.as_bytes()[..rng.below(text.len())].to_vec(),
                    1 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
                    2 => Vec::new(),
                    3 => br#"{"update_id": "x"}"#.to_vec(),
                    4 => br#"[]"#.to_vec(),
                    _ => br#"{"update_id": -5, "message": {"text": 5}}"#.to_vec(),
                };
                ("malformed", path.clone(), Some(secret.clone()), body, Some(400))
            }
            _ => {
                let (update, _) = tg_update(id, user, &mut rng);
                let other = rng.pick(&[
                    "/telegram/dinoyo",
                    "/telegram/",
                    "/telegram/..%2f",
                    "/telegram/BLIMBING",
                    "/telegram/🥬",
                ]);
                ("unknown market", other.to_string(), Some(secret.clone()), update.to_string().into_bytes(), None)
            }
        };
        requests.push(request);
    }
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let workers: Vec<_> = requests
            .chunks(requests.len().div_ceil(4))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(_, path, secret, body, _)| post_telegram(port, path, secret.as_deref(), body))
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("poster")).collect()
    });
    let mut statuses: BTreeMap<&str, BTreeMap<u16, usize>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for ((label, path, _, body, must), status) in requests.iter().zip(&answers) {
        *statuses.entry(label).or_default().entry(*status).or_default() += 1;
        let bad = match must {
            Some(200) => *status != 200,
            Some(code) => status != code,
            None => !(200..500).contains(status),
        };
        if bad || *status >= 500 {
            wrong.push((label, path, status, String::from_utf8_lossy(body).chars().take(160).collect::<String>()));
        }
    }
    eprintln!("{} webhook posts in {:?}: {statuses:?}", requests.len(), started.elapsed());
    assert!(wrong.is_empty(), "wrong answers: {wrong:#?}");

    let db = rusqlite::Connection::open(dir.path().join("pasar.db")).expect("db");
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&db, "SELECT COUNT(*) FROM inbox WHERE status = 'pending'")
        + count(&db, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
        > 0
        || !callbacks.is_subset(&telegram.callback_ids_answered(TOKEN))
    {
        assert!(Instant::now() < deadline, "not settled");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(pasar.child.try_wait().expect("wait").is_none(), "pasar run exited");
    let log = std::fs::read_to_string(&pasar.stderr).unwrap_or_default();
    let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
    assert!(panics.is_empty(), "panics:\n{}", panics.join("\n"));
    let refused = telegram.refused(TOKEN);
    assert!(
        refused.is_empty(),
        "Telegram refused {} sends, e.g. {:?}",
        refused.len(),
        &refused[..refused.len().min(3)]
    );
    let silent = count(
        &db,
        "SELECT COUNT(*) FROM inbox i WHERE event NOT LIKE '%\"inbound\":{\"Button\"%' \
         AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.inbox_id = i.id)",
    );
    assert_eq!(silent, 0, "stored messages without a reply");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'"), 0, "replies not sent");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inbox WHERE status <> 'done'"), 0, "inputs not handled");
    assert!(telegram.sent_to(TOKEN, VICTIM).is_empty(), "nothing went to the chat forged presses named");
    eprintln!(
        "{} inputs stored, {} presses answered, {} replies; {:?}",
        count(&db, "SELECT COUNT(*) FROM inbox"),
        callbacks.len(),
        telegram.sent(TOKEN).len(),
        started.elapsed()
    );
    pasar.child.kill().expect("kill");
}
