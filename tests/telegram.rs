//! The whole system on Telegram: `pasar run` against a fake Bot API (real teloxide client, real
//! HTTP), two market bots, a shopper and a trader in their own chats, a redelivered batch, and
//! Telegram's one-message-a-second-per-chat limit.

mod common;

/// Posts to the Telegram webhook; the HTTP status.
fn post(port: u16, path: &str, secret: Option<&str>, body: &str) -> u16 {
    common::post_telegram(port, path, secret, body.as_bytes())
}

use common::fake_telegram::{FakeTelegram, RunPasar, Running};
use std::process::{Command, Stdio};
use std::time::Duration;

const BLIMBING: &str = "111:blimbing-token";
const DINOYO: &str = "222:dinoyo-token";
const ADMIN: i64 = 9001;
const TRADER: i64 = 2002;
const TRADER2: i64 = 2003;
const SHOPPER: i64 = 1001;

fn start(fake: &FakeTelegram, dir: &std::path::Path, fast: bool) -> Running {
    start_with_limits(
        fake,
        dir,
        if fast { "[telegram.limits]\nper_chat_per_sec = 1000\nper_bot_per_sec = 1000\n" } else { "" },
    )
}

fn start_with_limits(fake: &FakeTelegram, dir: &std::path::Path, limits: &str) -> Running {
    fake.run_pasar(dir, (BLIMBING, DINOYO), ADMIN, limits)
}

#[test]
fn a_whole_order_through_two_market_bots() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _pasar = start(&fake, dir.path(), true);

    // The market admin (from the config) invites the trader of stall A-07.
    fake.text(BLIMBING, ADMIN, "/undang A-07");
    let (invite, _) = fake.wait_for(BLIMBING, ADMIN, "Kode undangan", 0);
    let code = invite.text.split("/daftar ").nth(1).expect("code").trim().to_string();
    fake.text(BLIMBING, TRADER, &format!("/daftar {code}"));
    fake.wait_for(BLIMBING, TRADER, "Selamat bergabung", 0);
    // From then on the trader's menu has the stall's commands; the admin's has /undang.
    let trader_menu = fake.chat_menu(BLIMBING, TRADER).expect("the trader's menu was set");
    assert!(["harga", "stok", "tutup", "buka", "rekap", "pesanan"].iter().all(|c| trader_menu.iter().any(|m| m == c)));
    assert!(!trader_menu.iter().any(|m| m == "undang"), "{trader_menu:?}");
    let admin_menu = fake.chat_menu(BLIMBING, ADMIN).expect("the admin's menu was set at start");
    assert!(admin_menu.iter().any(|m| m == "undang") && !admin_menu.iter().any(|m| m == "harga"), "{admin_menu:?}");
    assert_eq!(fake.chat_menu(BLIMBING, SHOPPER), None, "shoppers keep the bot's common menu");
    // And the trader of stall A-12.
    fake.text(BLIMBING, ADMIN, "/undang A-12");
    let (invite, _) = fake.wait_for(BLIMBING, ADMIN, "Bumbu Dapur Bu Kasiyem", 1);
    let code = invite.text.split("/daftar ").nth(1).expect("code").trim().to_string();
    fake.text(BLIMBING, TRADER2, &format!("/daftar {code}"));
    fake.wait_for(BLIMBING, TRADER2, "Selamat bergabung", 0);

    // The shopper buys kangkung with buttons and typed answers.
    let mut seen = 0;
    fake.text(BLIMBING, SHOPPER, "/start");
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "Pasar Blimbing", seen);
    seen = add_to_cart(&fake, "kangkung", "Kangkung (per ikat)", "Sayur Bu Sri", "3 ikat", seen);
    // ...and bawang merah from another stall, by its Javanese name.
    seen = add_to_cart(&fake, "brambang", "Bawang Merah", "Bu Kasiyem", "1/2 kg", seen);
    fake.press(BLIMBING, SHOPPER, "checkout");
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "atas nama siapa", seen);
    fake.text(BLIMBING, SHOPPER, "Ani Rahayu");
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "Nomor HP", seen);
    fake.text(BLIMBING, SHOPPER, "0812-3456-7890");
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "Kirim ke mana", seen);
    // The location request comes as a reply keyboard under its own short message.
    let (hint, _) = fake.wait_for(BLIMBING, SHOPPER, "tombol di bawah", seen);
    assert_eq!(hint.markup["keyboard"][0][0]["request_location"], serde_json::json!(true), "{:?}", hint.markup);
    fake.location(BLIMBING, SHOPPER, -7.9361, 112.6440);
    let (slots, n) = fake.wait_for(BLIMBING, SHOPPER, "jam berapa", seen);
    seen = n;
    fake.press(BLIMBING, SHOPPER, &slots.button("Besok").expect("a slot"));
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "Bayar pakai apa", seen);
    fake.press(BLIMBING, SHOPPER, "pay:qris");
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "catatan", seen);
    fake.press(BLIMBING, SHOPPER, "note:none");
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "Ringkasan", seen);
    fake.press(BLIMBING, SHOPPER, "place");
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "BLB-0001 sudah kami terima", seen);

    // Each trader gets their own part in their own chat, without the buyer's name or phone.
    let (order, _) = fake.wait_for(BLIMBING, TRADER, "Pesanan baru BLB-0001", 0);
    assert!(!order.text.contains("Ani") && !order.text.contains("0812"), "{}", order.text);
    assert!(order.text.contains("Kangkung") && !order.text.contains("Bawang Merah"), "{}", order.text);
    let (order2, _) = fake.wait_for(BLIMBING, TRADER2, "Pesanan baru BLB-0001", 0);
    assert!(order2.text.contains("Bawang Merah") && !order2.text.contains("Kangkung"), "{}", order2.text);
    fake.press(BLIMBING, TRADER, &order.button("Terima").expect("Terima button"));
    let (accepted, _) = fake.wait_for(BLIMBING, TRADER, "diterima", 0);
    assert!(accepted.text.contains("Ani Rahayu") && accepted.text.contains("0812-3456-7890"), "{}", accepted.text);
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "Sayur Bu Sri menerima", seen);
    fake.press(BLIMBING, TRADER2, &order2.button("Terima").expect("Terima button"));
    fake.wait_for(BLIMBING, TRADER2, "diterima", 0);
    // Now, and only now, the payment: the QRIS for the exact amount as a picture, the amount and
    // the deadline in its caption.
    let (request, n) = fake.wait_for(BLIMBING, SHOPPER, "Semua pedagang sudah mengonfirmasi", seen);
    seen = n;
    assert!(
        request.text.contains("Bayar Rp 25.750 dengan QRIS") && request.text.contains("sebelum pukul"),
        "{}",
        request.text
    );
    let payload = common::decode_qr(request.photo.as_deref().expect("sent as a photo"));
    let qris = pasar_online::domain::qris::read_dynamic(&payload).expect("a dynamic QRIS");
    assert_eq!(qris.amount, pasar_online::domain::money::Rupiah(25_750));
    assert!(request.button("Batalkan").is_some());
    // The market office sees the money arrive.
    fake.text(BLIMBING, ADMIN, "/lunas BLB-0001");
    fake.wait_for(BLIMBING, ADMIN, "dicatat lunas", 0);
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "sudah kami terima. Terima kasih", seen);
    fake.wait_for(BLIMBING, TRADER, "sudah dibayar", 0);

    // The same chat is a different shopper at another market's bot, which speaks as that market.
    fake.text(DINOYO, SHOPPER, "/start");
    fake.wait_for(DINOYO, SHOPPER, "Pasar Dinoyo", 0);

    // A lost acknowledgement: every Blimbing update comes again. Nothing happens twice.
    let before = fake.sent(BLIMBING).len();
    fake.replay_all(BLIMBING);
    fake.text(BLIMBING, SHOPPER, "/pesanan");
    let (orders, _) = fake.wait_for(BLIMBING, SHOPPER, "Pesanan Anda", seen);
    assert!(orders.text.contains("BLB-0001") && !orders.text.contains("BLB-0002"), "{}", orders.text);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fake.sent(BLIMBING).len(), before + 1, "only the reply to /pesanan is new");
    // Each bot set its command menu in Indonesian (the default) and English.
    let mut menus = fake.command_menus(BLIMBING);
    menus.sort();
    assert_eq!(menus, ["", "en"]);
    // Every button press was acknowledged (the spinner stops).
    assert!(fake.callbacks_answered(BLIMBING) >= 7);
    let conn = rusqlite::Connection::open(dir.path().join("pasar.db")).expect("db");
    let orders: i64 = conn.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0)).expect("count");
    assert_eq!(orders, 1);
}

#[test]
fn with_the_default_limits_no_chat_gets_more_than_one_message_a_second() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _pasar = start(&fake, dir.path(), false);
    fake.text(BLIMBING, SHOPPER, "/start");
    fake.text(BLIMBING, SHOPPER, "brambang");
    fake.wait_for(BLIMBING, SHOPPER, "Bawang Merah", 0);
    let sent = fake.sent_to(BLIMBING, SHOPPER);
    assert!(sent.len() >= 3, "welcome, menu, search result");
    for pair in sent.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        // A lower bound: a slow machine only makes the gaps longer.
        assert!(gap >= Duration::from_millis(950), "two messages {gap:?} apart");
    }
}

#[test]
fn a_raised_chat_limit_sends_a_queue_in_one_go_and_still_keeps_its_pace() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _pasar =
        start_with_limits(&fake, dir.path(), "[telegram.limits]\nper_chat_per_sec = 4\nper_bot_per_sec = 30\n");
    // Welcome, menu and the search result are queued together: one round takes them all.
    fake.text(BLIMBING, SHOPPER, "/start");
    fake.text(BLIMBING, SHOPPER, "brambang");
    fake.wait_for(BLIMBING, SHOPPER, "Bawang Merah", 0);
    let sent = fake.sent_to(BLIMBING, SHOPPER);
    assert!(sent.len() >= 3, "welcome, menu, search result");
    assert!(sent[0].text.contains("Sugeng rawuh") && sent[1].text.contains("Mau belanja apa"), "in order");
    for pair in sent.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        // 4 a second: a quarter of a second apart at least (a slow machine only adds to it).
        assert!(gap >= Duration::from_millis(235), "two messages {gap:?} apart");
    }
}

#[test]
fn flood_control_on_one_bot_does_not_hold_up_the_others() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _pasar = start(&fake, dir.path(), true);
    // Make sure both bots are up before flooding one.
    fake.text(DINOYO, SHOPPER, "/bantuan");
    fake.wait_for(DINOYO, SHOPPER, "Cara belanja", 0);
    fake.flood(BLIMBING, 2, 2);
    fake.text(BLIMBING, SHOPPER, "/start");
    fake.text(DINOYO, SHOPPER, "/start");
    let (dinoyo, _) = fake.wait_for(DINOYO, SHOPPER, "Pasar Dinoyo", 1);
    let (welcome, n) = fake.wait_for(BLIMBING, SHOPPER, "Pasar Blimbing", 0);
    let (menu, _) = fake.wait_for(BLIMBING, SHOPPER, "Mau belanja apa", n - 1);
    assert!(dinoyo.at < welcome.at, "Dinoyo answered while Blimbing waited out its 429");
    assert!(welcome.at <= menu.at, "order kept after the pause");
    assert_eq!(fake.sent_to(BLIMBING, SHOPPER).len(), 2, "nothing lost, nothing doubled");
}

#[test]
fn a_user_who_blocked_the_bot_is_parked_and_others_are_served() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _pasar = start(&fake, dir.path(), true);
    fake.block(BLIMBING, 3003);
    fake.text(BLIMBING, 3003, "/start");
    fake.text(BLIMBING, SHOPPER, "/start");
    fake.wait_for(BLIMBING, SHOPPER, "Mau belanja apa", 0);
    let conn = rusqlite::Connection::open(dir.path().join("pasar.db")).expect("db");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let parked: i64 = conn
            .query_row("SELECT COUNT(*) FROM outbox WHERE recipient = '3003' AND status = 'failed' AND last_error LIKE '%blocked%'", [], |r| r.get(0))
            .expect("outbox");
        if parked == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the blocked user's messages were not parked ({parked})");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(fake.sent_to(BLIMBING, 3003).is_empty());
    assert_eq!(fake.attempts_to(BLIMBING, 3003), 1, "after the first 403 the bot stops trying");
    let marked: i64 = conn
        .query_row("SELECT COUNT(*) FROM unreachable WHERE market = 'blimbing' AND user_id = '3003'", [], |r| r.get(0))
        .expect("unreachable");
    assert_eq!(marked, 1, "the user is marked unreachable for this bot");
    // They unblock the bot and write again: reachable, answered.
    fake.unblock(BLIMBING, 3003);
    fake.text(BLIMBING, 3003, "/bantuan");
    fake.wait_for(BLIMBING, 3003, "Cara belanja", 0);
    let marked: i64 = conn
        .query_row("SELECT COUNT(*) FROM unreachable WHERE user_id = '3003'", [], |r| r.get(0))
        .expect("unreachable");
    assert_eq!(marked, 0);
}

#[test]
fn kill_9_and_a_replayed_batch_make_exactly_one_order() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pasar = start(&fake, dir.path(), true);
    let mut seen = 0;
    let steps: [(&str, &str, &str); 8] = [
        ("text", "brambang", "Bawang Merah (per kg)"),
        ("stall", "Bumbu Dapur", "Mau berapa"),
        ("text", "1 kg", "masuk keranjang"),
        ("press", "checkout", "atas nama siapa"),
        ("text", "Ani Rahayu", "Nomor HP"),
        ("text", "0812-3456-7890", "Kirim ke mana"),
        ("text", "Jl. Borobudur No. 12, Purwodadi", "jam berapa"),
        ("slot", "Besok", "Bayar pakai apa"),
    ];
    let mut last = None;
    for (kind, what, expect) in steps {
        match kind {
            "text" => {
                fake.text(BLIMBING, SHOPPER, what);
            }
            "press" => {
                fake.press(BLIMBING, SHOPPER, what);
            }
            _ => {
                let msg: &common::fake_telegram::SentMessage = last.as_ref().expect("previous message");
                fake.press(BLIMBING, SHOPPER, &msg.button(what).expect("button"));
            }
        }
        let (m, n) = fake.wait_for(BLIMBING, SHOPPER, expect, seen);
        seen = n;
        last = Some(m);
    }
    fake.press(BLIMBING, SHOPPER, "pay:qris");
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "catatan", seen);
    fake.press(BLIMBING, SHOPPER, "note:none");
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "Ringkasan", seen);
    fake.press(BLIMBING, SHOPPER, "place");
    // Killed at once: the order may or may not have been stored, the offset may not be acked.
    let _ = pasar.0.kill();
    let _ = pasar.0.wait();
    drop(pasar);
    fake.replay_all(BLIMBING);
    let _pasar = start(&fake, dir.path(), true);
    fake.wait_for(BLIMBING, SHOPPER, "BLB-0001 sudah kami terima", seen);
    fake.text(BLIMBING, SHOPPER, "/pesanan");
    let (orders, _) = fake.wait_for(BLIMBING, SHOPPER, "Pesanan Anda", seen);
    assert!(!orders.text.contains("BLB-0002"), "{}", orders.text);
    let conn = rusqlite::Connection::open(dir.path().join("pasar.db")).expect("db");
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0)).expect("orders");
    assert_eq!(n, 1);
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
    assert_eq!(check, "ok");
}

fn update_json(id: u32, chat: i64, text: &str) -> String {
    serde_json::json!({"update_id": id, "message": {
        "message_id": id, "date": 1_764_300_000,
        "chat": {"id": chat, "type": "private", "first_name": "u"},
        "from": {"id": chat, "is_bot": false, "first_name": "u"},
        "text": text
    }})
    .to_string()
}

#[test]
fn webhook_mode_checks_the_secret_and_stores_before_answering() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    // A secret of this test's own: a server that answers a bad body with 400 rather than 401 is
    // ours, not another test's that took the port picked here (then pasar exits: another port).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (_pasar, port, secret) = loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let secret = format!("s3cret-token-{}-{port}", std::process::id());
        let config = format!(
            "[telegram]\napi_url = \"{}\"\nmode = \"webhook\"\npublic_url = \"https://pasar.example.id\"\nlisten = \"127.0.0.1:{port}\"\n\
             [telegram.limits]\nper_chat_per_sec = 1000\nper_bot_per_sec = 1000\n\
             [server]\nops_listen = \"127.0.0.1:0\"\n",
            fake.url
        );
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).expect("config");
        let child = Command::new(env!("CARGO_BIN_EXE_pasar"))
            .arg("--config")
            .arg(&path)
            .args(["run", "--db"])
            .arg(dir.path().join("pasar.db"))
            .env("PASAR_BLIMBING_TELEGRAM_TOKEN", BLIMBING)
            .env("PASAR_TELEGRAM_WEBHOOK_SECRET", &secret)
            .env_remove("PASAR_DB")
            .env("PASAR_LOG", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pasar run");
        let mut pasar = Running(child);
        let up = loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && post(port, "/telegram/blimbing", Some(&secret), "{not json") == 400
            {
                break true;
            }
            if pasar.0.try_wait().ok().flatten().is_some() {
                break false;
            }
            assert!(std::time::Instant::now() < deadline, "the webhook server did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        if up {
            break (pasar, port, secret);
        }
    };
    let inbox = || -> i64 {
        let conn = rusqlite::Connection::open(dir.path().join("pasar.db")).expect("db");
        conn.query_row("SELECT COUNT(*) FROM inbox", [], |r| r.get(0)).expect("inbox")
    };
    let good = update_json(1, SHOPPER, "/start");
    assert_eq!(post(port, "/telegram/blimbing", Some("wrong"), &good), 401);
    assert_eq!(post(port, "/telegram/blimbing", None, &good), 401);
    assert_eq!(inbox(), 0, "nothing stored without the right secret");
    assert_eq!(post(port, "/telegram/blimbing", Some(&secret), "{not json"), 400);
    assert_eq!(post(port, "/telegram/blimbing", Some(&secret), "{\"hello\": 1}"), 400);
    assert_eq!(post(port, "/telegram/dinoyo", Some(&secret), &good), 404, "no bot runs for dinoyo");
    assert_eq!(inbox(), 0);
    assert_eq!(post(port, "/telegram/blimbing", Some(&secret), &good), 200);
    assert_eq!(inbox(), 1, "stored before the 200");
    // Telegram redelivers: harmless.
    assert_eq!(post(port, "/telegram/blimbing", Some(&secret), &good), 200);
    assert_eq!(inbox(), 1);
    fake.wait_for(BLIMBING, SHOPPER, "Mau belanja apa", 0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fake.sent_to(BLIMBING, SHOPPER).len(), 2, "welcome and menu, once");
}

#[test]
fn sigterm_stops_taking_updates_flushes_and_exits_0() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pasar = start(&fake, dir.path(), true);
    fake.text(BLIMBING, SHOPPER, "/start");
    fake.wait_for(BLIMBING, SHOPPER, "Mau belanja apa", 0);
    let pid = pasar.0.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = pasar.0.try_wait().expect("wait") {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "pasar did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");
}

/// The Blimbing shopper searches, presses a stall's button and types the amount; returns how many
/// messages they have had.
fn add_to_cart(fake: &FakeTelegram, search: &str, found: &str, stall: &str, amount: &str, seen: usize) -> usize {
    fake.text(BLIMBING, SHOPPER, search);
    let (offers, n) = fake.wait_for(BLIMBING, SHOPPER, found, seen);
    fake.press(BLIMBING, SHOPPER, &offers.button(stall).expect("stall button"));
    let (_, n) = fake.wait_for(BLIMBING, SHOPPER, "Mau berapa", n);
    fake.text(BLIMBING, SHOPPER, amount);
    fake.wait_for(BLIMBING, SHOPPER, "masuk keranjang", n).1
}

/// The shopper goes as far as the phone question, which Telegram gets as two calls: the
/// question, then the contact request keyboard under a short hint.
fn up_to_the_phone_question(fake: &FakeTelegram) -> usize {
    let mut seen = add_to_cart(fake, "kangkung", "Kangkung (per ikat)", "Sayur Bu Sri", "3 ikat", 0);
    fake.press(BLIMBING, SHOPPER, "checkout");
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "atas nama siapa", seen);
    fake.text(BLIMBING, SHOPPER, "Ani Rahayu");
    seen
}

#[test]
fn a_message_sent_in_two_calls_resends_only_the_call_that_failed() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _pasar = start(&fake, dir.path(), true);
    // The second call (the request keyboard) fails twice with a server error.
    fake.server_error(BLIMBING, "tombol di bawah", 2);
    let seen = up_to_the_phone_question(&fake);
    let (question, n) = fake.wait_for(BLIMBING, SHOPPER, "Nomor HP", seen);
    let (hint, _) = fake.wait_for(BLIMBING, SHOPPER, "tombol di bawah", n);
    assert_eq!(hint.markup["keyboard"][0][0]["request_contact"], serde_json::json!(true), "{:?}", hint.markup);
    assert!(question.at <= hint.at);
    assert_eq!(fake.attempts_with(BLIMBING, "Nomor HP"), 1, "the question went once, not again with each retry");
    assert_eq!(fake.attempts_with(BLIMBING, "tombol di bawah"), 3);
    let delivered = fake.sent_to(BLIMBING, SHOPPER);
    assert_eq!(delivered.iter().filter(|m| m.text.contains("Nomor HP")).count(), 1);
    // The row is sent, with its two failed attempts on record.
    let conn = rusqlite::Connection::open(dir.path().join("pasar.db")).expect("db");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row: (String, i64, i64) = conn
            .query_row(
                "SELECT status, attempts, parts_sent FROM outbox WHERE recipient = ?1 AND message LIKE '%Nomor HP%'",
                [SHOPPER.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("outbox row");
        if row.0 == "sent" {
            assert_eq!(row.1, 3, "two failures and the success");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never marked sent: {row:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_bot_api_outage_pauses_the_bot_without_counting_against_the_message() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _pasar = start(&fake, dir.path(), true);
    // The API is down: its front answers 502, once as JSON, once as nginx's HTML page.
    fake.bad_gateway(BLIMBING, "Mau belanja apa", 2);
    fake.text(BLIMBING, SHOPPER, "/start");
    fake.wait_for(BLIMBING, SHOPPER, "Mau belanja apa", 0);
    assert_eq!(fake.attempts_with(BLIMBING, "Mau belanja apa"), 3, "two 502s, then the API is back");
    // Unlike a server error about one message (three attempts on record in the test above),
    // an outage is not the message's fault: only the attempt that went counts, so a long
    // outage never uses up its attempts and parks it.
    let conn = rusqlite::Connection::open(dir.path().join("pasar.db")).expect("db");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row: (String, i64) = conn
            .query_row(
                "SELECT status, attempts FROM outbox WHERE recipient = ?1 AND message LIKE '%Mau belanja apa%'",
                [SHOPPER.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("outbox row");
        if row.0 == "sent" {
            assert_eq!(row.1, 1, "the 502s are not counted against the message");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never marked sent: {row:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_message_telegram_refuses_is_parked_and_the_chat_goes_on() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _pasar = start(&fake, dir.path(), true);
    fake.bad_request(BLIMBING, "Sugeng rawuh");
    fake.text(BLIMBING, SHOPPER, "/start");
    // The welcome can never go; the menu after it still does, once.
    fake.wait_for(BLIMBING, SHOPPER, "Mau belanja apa", 0);
    assert_eq!(fake.attempts_with(BLIMBING, "Sugeng rawuh"), 1, "a bad request is not retried");
    let conn = rusqlite::Connection::open(dir.path().join("pasar.db")).expect("db");
    let parked: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE status = 'failed' AND last_error LIKE '%parse entities%'",
            [],
            |r| r.get(0),
        )
        .expect("outbox");
    assert_eq!(parked, 1);
}

#[test]
fn a_chat_with_a_long_queue_does_not_hold_up_the_other_chats() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    // The default limits: one message a second per chat (and no flood rule in the way: this is
    // about the sender's fairness).
    let _pasar = start_with_limits(&fake, dir.path(), "[inbound]\nper_user_messages = 10000\n");
    const BUSY: i64 = 4004;
    fake.text(BLIMBING, BUSY, "/start");
    fake.wait_for(BLIMBING, BUSY, "Pasar Blimbing", 0);
    // Some 250 replies queue up for one chat: minutes of sending at one a second.
    for _ in 0..125 {
        fake.text(BLIMBING, BUSY, "/start");
    }
    let conn = rusqlite::Connection::open(dir.path().join("pasar.db")).expect("db");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let queued: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE recipient = ?1 AND status = 'pending'",
                [BUSY.to_string()],
                |r| r.get(0),
            )
            .expect("outbox");
        if queued >= 220 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the backlog never built up ({queued})");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another shopper is answered now, not after the busy chat's queue.
    fake.text(BLIMBING, SHOPPER, "/bantuan");
    fake.wait_for(BLIMBING, SHOPPER, "Cara belanja", 0);
    let busy_got = fake.sent_to(BLIMBING, BUSY).len();
    assert!(busy_got < 30, "the other shopper waited behind {busy_got} messages of the busy chat");
}

#[test]
fn turning_a_page_edits_the_message_it_was_turned_on() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _pasar = start(&fake, dir.path(), true);
    fake.text(BLIMBING, SHOPPER, "/start");
    let (menu, seen) = fake.wait_for(BLIMBING, SHOPPER, "Mau belanja apa", 0);
    fake.press_on(BLIMBING, &menu, "cat:sayur:0");
    let (page1, seen) = fake.wait_for(BLIMBING, SHOPPER, "halaman 1/6", seen);
    assert_eq!(page1.edit_of, None, "opening a category is a new message");
    let next = page1.button("Berikutnya").expect("next page button");
    fake.press_on(BLIMBING, &page1, &next);
    let (page2, seen) = fake.wait_for(BLIMBING, SHOPPER, "halaman 2/6", seen);
    assert_eq!(page2.edit_of, Some(page1.id), "the page turned in place");
    // Back a page from the edited message: the same message again.
    let prev = page2.button("Sebelumnya").expect("previous page button");
    fake.press_on(BLIMBING, &page2, &prev);
    let (again, _) = fake.wait_for(BLIMBING, SHOPPER, "halaman 1/6", seen);
    assert_eq!(again.edit_of, Some(page1.id));
    // A page turn on a message the chat no longer has comes as a new message.
    let mut gone = page2.clone();
    gone.id = 999_999;
    let before = fake.sent_to(BLIMBING, SHOPPER).len();
    fake.press_on(BLIMBING, &gone, &next);
    let (fresh, _) = fake.wait_for(BLIMBING, SHOPPER, "halaman 2/6", before);
    assert_eq!(fresh.edit_of, None, "{fresh:?}");
}

#[test]
fn a_wrong_token_fails_its_bot_loudly_and_the_others_run() {
    let fake = FakeTelegram::start(&[BLIMBING]);
    // Blimbing's bot still has the webhook of a deployment in webhook mode.
    fake.set_webhook(BLIMBING, "https://old.example.org/telegram/blimbing");
    let dir = tempfile::tempdir().expect("tempdir");
    // `run --check` shows the table and fails for the wrong token.
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("[telegram]\napi_url = \"{}\"\n", fake.url)).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_pasar"))
        .arg("--config")
        .arg(&config)
        .args(["run", "--check", "--db"])
        .arg(dir.path().join("check.db"))
        .env("PASAR_BLIMBING_TELEGRAM_TOKEN", BLIMBING)
        .env("PASAR_DINOYO_TELEGRAM_TOKEN", "333:revoked-token")
        .env_remove("PASAR_INVITE_SECRET")
        .env_remove("PASAR_DB")
        .output()
        .expect("pasar run --check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    let line = |market: &str| stdout.lines().find(|l| l.starts_with(market)).unwrap_or_default().to_string();
    assert!(line("blimbing").contains("ok"), "{stdout}");
    assert!(line("blimbing").contains("a webhook is still set (https://old.example.org"), "{stdout}");
    assert!(line("dinoyo").contains("getMe failed"), "{stdout}");
    assert!(line("sukun").contains("not set"), "{stdout}");
    assert!(line("invites").contains("WARNING PASAR_INVITE_SECRET is not set"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("dinoyo"));
    // Running: Dinoyo's bot does not start, Blimbing's serves (polling, its webhook deleted).
    let _pasar = start(&fake, dir.path(), true);
    fake.text(BLIMBING, SHOPPER, "/start");
    fake.wait_for(BLIMBING, SHOPPER, "Mau belanja apa", 0);
}

#[test]
fn a_courier_on_telegram_shares_a_live_location_and_delivers_with_a_photo() {
    use common::market::{accept_as, as_user, delivery, market_with_couriers_as, place_order, start_shift, sub_of};
    use pasar_online::channel::{ChannelKind, UserKey};
    use pasar_online::conversation::payload::Action;
    const COURIER: i64 = 3001;
    // The order up to the courier on the road, through the engine as Telegram users.
    let mut h = common::Harness::new("blimbing");
    h.user = UserKey { channel: ChannelKind::Telegram, id: ADMIN.to_string() };
    market_with_couriers_as(
        &mut h,
        &ADMIN.to_string(),
        &TRADER.to_string(),
        &[(&COURIER.to_string(), "Budi Santoso, 0812-1111-2222, Honda Beat, N 1234 AB")],
    );
    start_shift(&mut h, &COURIER.to_string());
    let number = place_order(&mut h, &SHOPPER.to_string(), Some((-7.9290, 112.6520)));
    accept_as(&mut h, &TRADER.to_string(), &number, true);
    let (d, _, _) = delivery(&h, &number);
    let sub = sub_of(&h, &number);
    as_user(&mut h, &COURIER.to_string());
    h.button(&Action::CourierTake(d).encode());
    h.button(&Action::CourierPicked { delivery: d, sub }.encode());
    h.button(&Action::CourierDepart(d).encode());

    // On the road, through the real channel: live location points, Terkirim, the cash collected
    // (paid at the door: typed in the chat), the photo.
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let _pasar = start(&fake, h.dir.path(), true);
    fake.live_location(BLIMBING, COURIER, 555, -7.9331, 112.6498);
    fake.live_location(BLIMBING, COURIER, 555, -7.9310, 112.6510);
    fake.press(BLIMBING, COURIER, &Action::CourierDelivered(d).encode());
    let (_, seen) = fake.wait_for(BLIMBING, COURIER, "tagihannya Rp 9.000", 0);
    assert_eq!(fake.sent_to(BLIMBING, COURIER).len(), seen, "live points are kept without a reply");
    let position = h.count("SELECT CAST(ROUND(lat * 10000) AS INTEGER) FROM couriers");
    assert_eq!(position, -79310, "the latest point is kept");
    fake.text(BLIMBING, COURIER, "9rb");
    let (_, seen) = fake.wait_for(BLIMBING, COURIER, "Kirim foto bukti", seen);
    fake.photo(BLIMBING, COURIER, "AgACAgUAAxkBAAIBdoor");
    fake.wait_for(BLIMBING, COURIER, "selesai diantar", seen);
    fake.wait_for(BLIMBING, SHOPPER, "sudah diterima", 0);
    assert_eq!(
        h.count(&format!("SELECT COUNT(*) FROM deliveries WHERE id = {d} AND proof = 'AgACAgUAAxkBAAIBdoor'")),
        1,
        "the largest size of the photo is kept as proof"
    );
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM orders WHERE number = '{number}' AND status = 'delivered'")), 1);
    assert_eq!(h.count("SELECT SUM(amount) FROM ledger WHERE kind = 'payment' AND method = 'cod'"), 9_000);
    // The courier's chat gets the courier's commands at start (role menus are set paced).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let menu = loop {
        match fake.chat_menu(BLIMBING, COURIER) {
            Some(menu) => break menu,
            None if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            None => panic!("the courier's menu was never set"),
        }
    };
    assert!(["mulai", "selesai", "tugas"].iter().all(|c| menu.iter().any(|m| m == c)), "{menu:?}");
}

/// The width and height in a PNG's header.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("a PNG");
    (reader.info().width, reader.info().height)
}

#[test]
fn an_admin_gets_the_chart_as_a_png_and_the_orders_as_a_csv_document() {
    let fake = FakeTelegram::start(&[BLIMBING]);
    let mut h = common::Harness::new("blimbing");
    // `pasar run` keeps real time: the orders are placed now.
    h.clock.set(chrono::Utc::now());
    common::market::market_with_couriers(&mut h, &[]);
    let numbers: Vec<String> =
        ["ani", "dewi"].iter().map(|b| common::market::place_order_for(&mut h, b, None, "Besok")).collect();
    let _pasar = start(&fake, h.dir.path(), true);

    fake.text(BLIMBING, ADMIN, "/statistik");
    let (figures, _) = fake.wait_for(BLIMBING, ADMIN, "Statistik Pasar Blimbing", 0);
    assert!(figures.text.contains("Pesanan: 2 ·"), "{}", figures.text);
    let (chart, _) = fake.wait_for(BLIMBING, ADMIN, "Pesanan per jam", 0);
    let png = chart.photo.as_deref().expect("the chart uploaded with sendPhoto");
    assert_eq!(png_size(png), (pasar_online::channel::chart::WIDTH, pasar_online::channel::chart::HEIGHT));

    fake.text(BLIMBING, ADMIN, "/ekspor");
    let (sent, _) = fake.wait_for(BLIMBING, ADMIN, "2 pesanan Pasar Blimbing", 0);
    let (name, bytes) = sent.document.clone().expect("the orders uploaded with sendDocument");
    assert!(name.starts_with("pesanan-blimbing-") && name.ends_with(".csv"), "{name}");
    let body = bytes.strip_prefix("\u{feff}".as_bytes()).expect("a byte-order mark");
    let mut csv = csv::Reader::from_reader(body);
    let header: Vec<String> = csv.headers().expect("header").iter().map(String::from).collect();
    assert_eq!(header, pasar_online::store::EXPORT_COLUMNS);
    let orders: Vec<String> = csv.records().map(|r| r.expect("a row")[1].to_string()).collect();
    assert_eq!(orders, numbers);
    // A bad range: the usage, no file.
    fake.text(BLIMBING, ADMIN, "/ekspor 2026-11-20 2026-11-01");
    fake.wait_for(BLIMBING, ADMIN, "sebelum tanggal awal", 0);
    assert_eq!(fake.sent_to(BLIMBING, ADMIN).iter().filter(|m| m.document.is_some()).count(), 1);
}

#[test]
fn an_admin_s_photo_captioned_foto_shows_with_the_commodity_on_telegram() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let _pasar = start(&fake, dir.path(), true);
    fake.photo_with_caption(BLIMBING, ADMIN, "AgACAgUAAxkBAAIBbawang", "/foto bawang merah");
    fake.wait_for(BLIMBING, ADMIN, "Foto Bawang Merah terpasang", 0);
    fake.text(BLIMBING, SHOPPER, "/cari bawang merah");
    let (shown, seen) = fake.wait_for(BLIMBING, SHOPPER, "Bawang Merah", 0);
    assert_eq!(shown.photo_ref.as_deref(), Some("AgACAgUAAxkBAAIBbawang"), "sent by the bot's file id: {shown:?}");
    assert!(shown.button("Rp").is_some(), "the stalls' buttons under the picture: {shown:?}");
    // The picture on the other market's bot is its own: none there.
    fake.text(DINOYO, SHOPPER, "/cari bawang merah");
    let (other, _) = fake.wait_for(DINOYO, SHOPPER, "Bawang Merah", 0);
    assert_eq!(other.photo_ref, None);
    // A file id Telegram no longer takes: the words and buttons still come.
    fake.refuse_photo_refs(BLIMBING);
    fake.text(BLIMBING, SHOPPER, "/cari bawang merah");
    let (again, _) = fake.wait_for(BLIMBING, SHOPPER, "Bawang Merah", seen);
    assert!(again.photo_ref.is_none() && again.button("Rp").is_some(), "{again:?}");
}

#[test]
fn a_city_admin_s_cadangan_makes_the_backup_under_pasar_run() {
    const CITY: i64 = 9002;
    let dir = tempfile::tempdir().expect("dir");
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let city = format!("[[admins]]\nchannel = \"telegram\"\nuser = \"{CITY}\"\n");
    let _pasar = start_with_limits(&fake, dir.path(), &city);
    fake.text(BLIMBING, CITY, "/cadangan");
    let (done, _) = fake.wait_for(BLIMBING, CITY, "Cadangan database dibuat", 0);
    let file = done.text.split("dibuat: ").nth(1).and_then(|s| s.split(" (").next()).expect("the file");
    let conn = rusqlite::Connection::open(file).expect("the backup opens");
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
    let markets: i64 = conn.query_row("SELECT COUNT(*) FROM markets", [], |r| r.get(0)).expect("markets");
    assert_eq!((ok.as_str(), markets), ("ok", 10));
}

/// "ayam 1 ekor" on Telegram: one piece at an estimated 1,2 kg; the trader weighs it. Inside the
/// market's tolerance (1,3 kg) the shopper is only told the final price; beyond it (1,45 kg)
/// the shopper is asked to agree.
#[test]
fn a_chicken_ordered_by_the_piece_is_weighed_and_only_a_big_difference_is_asked() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _pasar = start(&fake, dir.path(), true);
    // Cak Rofiq's chicken stall (C-08), the market's cheapest for ayam potong.
    fake.text(BLIMBING, ADMIN, "/undang C-08");
    let (invite, _) = fake.wait_for(BLIMBING, ADMIN, "Kode undangan", 0);
    let code = invite.text.split("/daftar ").nth(1).expect("code").trim().to_string();
    fake.text(BLIMBING, TRADER, &format!("/daftar {code}"));
    let (_, mut trader_seen) = fake.wait_for(BLIMBING, TRADER, "Selamat bergabung", 0);
    for (shopper, number, weighed, asked) in
        [(SHOPPER, "BLB-0001", "1,3 kg", false), (1002, "BLB-0002", "1450 gr", true)]
    {
        fake.text(BLIMBING, shopper, "ayam 1 ekor");
        let (review, seen) = fake.wait_for(BLIMBING, shopper, "Yang saya tangkap", 0);
        assert!(
            review.text.contains("Ayam Potong 1 ekor (± 1,2 kg)") && review.text.contains("± Rp 41.400"),
            "{}",
            review.text
        );
        fake.press(BLIMBING, shopper, &review.button("Masukkan").expect("add all"));
        let (_, mut seen) = fake.wait_for(BLIMBING, shopper, "1 barang masuk keranjang", seen);
        fake.press(BLIMBING, shopper, "checkout");
        (_, seen) = fake.wait_for(BLIMBING, shopper, "atas nama siapa", seen);
        fake.text(BLIMBING, shopper, "Ani Rahayu");
        (_, seen) = fake.wait_for(BLIMBING, shopper, "Nomor HP", seen);
        fake.text(BLIMBING, shopper, "0812-3456-7890");
        (_, seen) = fake.wait_for(BLIMBING, shopper, "Kirim ke mana", seen);
        fake.location(BLIMBING, shopper, -7.9361, 112.6440);
        let (slots, n) = fake.wait_for(BLIMBING, shopper, "jam berapa", seen);
        fake.press(BLIMBING, shopper, &slots.button("Besok").expect("a slot"));
        (_, seen) = fake.wait_for(BLIMBING, shopper, "Bayar pakai apa", n);
        fake.press(BLIMBING, shopper, "pay:cod");
        (_, seen) = fake.wait_for(BLIMBING, shopper, "catatan", seen);
        fake.press(BLIMBING, shopper, "note:none");
        let (summary, n) = fake.wait_for(BLIMBING, shopper, "Ringkasan", seen);
        assert!(summary.text.contains("1 ekor (± 1,2 kg)"), "{}", summary.text);
        fake.press(BLIMBING, shopper, "place");
        (_, seen) = fake.wait_for(BLIMBING, shopper, &format!("{number} sudah kami terima"), n);

        let (order, n) = fake.wait_for(BLIMBING, TRADER, &format!("Pesanan baru {number}"), trader_seen);
        assert!(order.text.contains("1 ekor (± 1,2 kg)"), "{}", order.text);
        fake.press(BLIMBING, TRADER, &order.button("Ubah").expect("Ubah"));
        let (lines, n) = fake.wait_for(BLIMBING, TRADER, "Ayam Potong", n);
        fake.press(BLIMBING, TRADER, &lines.button("Ayam Potong").expect("the line"));
        let (_, n) = fake.wait_for(BLIMBING, TRADER, "timbang", n);
        fake.text(BLIMBING, TRADER, weighed);
        let (lines, n) = fake.wait_for(BLIMBING, TRADER, "ditimbang", n);
        fake.press(BLIMBING, TRADER, &lines.button("Selesai").expect("done"));
        trader_seen = n;
        if asked {
            let (proposal, n) = fake.wait_for(BLIMBING, shopper, "Setuju?", seen);
            assert!(
                proposal.text.contains("1 ekor, ditimbang 1,45 kg") && proposal.text.contains("Rp 50.025"),
                "{}",
                proposal.text
            );
            fake.press(BLIMBING, shopper, &proposal.button("Setuju").expect("agree"));
            fake.wait_for(BLIMBING, shopper, "Semua pedagang sudah mengonfirmasi", n);
        } else {
            let (told, n) = fake.wait_for(BLIMBING, shopper, "sudah menimbang", seen);
            assert!(told.text.contains("1 ekor, ditimbang 1,3 kg") && told.text.contains("Rp 44.850"), "{}", told.text);
            assert!(told.button("Setuju").is_none(), "not asked: {}", told.text);
            fake.wait_for(BLIMBING, shopper, "Semua pedagang sudah mengonfirmasi", n);
        }
    }
    let conn = rusqlite::Connection::open(dir.path().join("pasar.db")).expect("db");
    let totals: Vec<i64> = conn
        .prepare("SELECT total FROM orders ORDER BY id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("totals");
    assert_eq!(totals, [44_850, 50_025]);
}

/// A flood from one account: past the rule (here 5 messages in 3 s), the messages are stored and
/// skipped, with one "pelan-pelan" for the burst; another shopper meanwhile is answered as
/// usual, and after a pause the flooder is too.
#[test]
fn a_flood_from_one_account_is_stored_and_skipped_with_one_word_and_others_are_served() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _pasar = start_with_limits(
        &fake,
        dir.path(),
        "[telegram.limits]\nper_chat_per_sec = 1000\nper_bot_per_sec = 1000\n[inbound]\nper_user_messages = 5\nper_user_window_secs = 3\n",
    );
    const FLOODER: i64 = 6666;
    for i in 0..12 {
        fake.text(BLIMBING, FLOODER, &format!("kangkung {i}"));
    }
    fake.text(BLIMBING, SHOPPER, "/start");
    fake.wait_for(BLIMBING, SHOPPER, "Mau belanja apa", 0);
    fake.wait_for(BLIMBING, FLOODER, "Pelan-pelan ya", 0);
    let db = dir.path().join("pasar.db");
    let count = |sql: &str| -> i64 {
        rusqlite::Connection::open(&db).expect("db").query_row(sql, [], |r| r.get(0)).expect("count")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count("SELECT COUNT(*) FROM inbox WHERE status = 'pending'") > 0 {
        assert!(std::time::Instant::now() < deadline, "never handled");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count("SELECT COUNT(*) FROM inbox WHERE user_id = '6666' AND status = 'done'"), 5);
    assert_eq!(count("SELECT COUNT(*) FROM inbox WHERE user_id = '6666' AND status = 'skipped'"), 7);
    let polite = fake.sent_to(BLIMBING, FLOODER).iter().filter(|m| m.text.contains("Pelan-pelan")).count();
    assert_eq!(polite, 1, "one word for the burst");
    // Replies only to what was taken: one each for five searches and the word.
    assert_eq!(count("SELECT COUNT(*) FROM outbox WHERE recipient = '6666'"), 6);
    // After a pause of the window, they are answered again.
    std::thread::sleep(Duration::from_secs(4));
    let seen = fake.sent_to(BLIMBING, FLOODER).len();
    fake.text(BLIMBING, FLOODER, "/bantuan");
    fake.wait_for(BLIMBING, FLOODER, "Cara belanja", seen);
}
