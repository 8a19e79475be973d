//! The whole system on WhatsApp: `pasar run` with a market number, webhook deliveries signed
//! like Meta signs them (fixtures in tests/fixtures/whatsapp/), replies captured by a fake Graph
//! API; and a trader on Telegram serving a shopper on WhatsApp.

mod common;

use common::{http, post_whatsapp as post};

use common::fake_graph::FakeGraph;
use common::fake_telegram::FakeTelegram;
use pasar_online::channel::whatsapp::sign;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const NUMBER: &str = "1001"; // Pasar Blimbing's WhatsApp number id
const APP_SECRET: &str = "app-secret-for-tests";
const SHOPPER: &str = "6281234567890";
const TRADER: &str = "6285600001111";
const ADMIN: &str = "6281100002222";
const TG_TOKEN: &str = "111:blimbing-token";
const TG_TRADER: i64 = 2002;

/// The running server, its port, and its verify token (one per instance, so a test knows it
/// talks to its own server and not to another that took the port it had picked).
struct Running(Child, u16, String);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(graph: &FakeGraph, telegram: Option<&FakeTelegram>, dir: &std::path::Path) -> Running {
    start_with(graph, telegram, dir, "")
}

fn start_with(graph: &FakeGraph, telegram: Option<&FakeTelegram>, dir: &std::path::Path, extra: &str) -> Running {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let verify_token = format!("verify-me-{}-{port}", std::process::id());
        let tg = telegram
            .map(|t| format!("[telegram]\napi_url = \"{}\"\npoll_timeout_secs = 1\n[telegram.limits]\nper_chat_per_sec = 1000\nper_bot_per_sec = 1000\n", t.url))
            .unwrap_or_default();
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nops_listen = \"127.0.0.1:0\"\n[markets.blimbing]\nwhatsapp_phone_number_id = \"{NUMBER}\"\n\
             [whatsapp]\ngraph_url = \"{}\"\ntimeout_secs = 1\n[whatsapp.limits]\nper_number_per_sec = 1000\nper_user_interval_secs = 0\n{tg}\n\
             {extra}\n[[admins]]\nchannel = \"whatsapp\"\nuser = \"{ADMIN}\"\nmarkets = [\"blimbing\"]\n",
            graph.url
        );
        let path = dir.join("config.toml");
        std::fs::write(&path, config).expect("config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pasar"));
        cmd.arg("--config")
            .arg(&path)
            .args(["run", "--db"])
            .arg(dir.join("pasar.db"))
            .env("PASAR_WHATSAPP_ACCESS_TOKEN", "graph-token")
            .env("PASAR_WHATSAPP_APP_SECRET", APP_SECRET)
            .env("PASAR_WHATSAPP_VERIFY_TOKEN", &verify_token)
            .env_remove("PASAR_DB")
            .env_remove("PASAR_BLIMBING_TELEGRAM_TOKEN")
            // The log goes to a file in `dir` (at info level), so tests can read what it shows.
            .env("PASAR_LOG", std::env::var("PASAR_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("PASAR_TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("pasar.log"));
                log.map(Stdio::from).unwrap_or_else(|_| Stdio::null())
            });
        if telegram.is_some() {
            cmd.env("PASAR_BLIMBING_TELEGRAM_TOKEN", TG_TOKEN);
        }
        let mut running = Running(cmd.spawn().expect("pasar run"), port, verify_token);
        // Up when the server answers Meta's check with this instance's token; if the port was
        // taken meanwhile, pasar exits and we go again on another.
        let check = format!(
            "GET /whatsapp?hub.mode=subscribe&hub.verify_token={}&hub.challenge=42 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            running.2
        );
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http(port, check.as_bytes()) == (200, "42".into())
            {
                return running;
            }
            if running.0.try_wait().ok().flatten().is_some() {
                break; // Exited (the port was taken): another port.
            }
            assert!(std::time::Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(running);
    }
}

/// Posts a body signed with the app secret, as Meta does.
fn deliver(port: u16, body: &str) -> u16 {
    post(port, body.as_bytes(), Some(&sign(APP_SECRET.as_bytes(), body.as_bytes())))
}

fn fixture(name: &str, from: &str, wamid: &str, fill: &[(&str, &str)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/whatsapp").join(name);
    let mut s = std::fs::read_to_string(path).expect("fixture");
    s = s.replace("__NUMBER__", NUMBER).replace("__FROM__", from).replace("__WAMID__", wamid);
    for (k, v) in fill {
        s = s.replace(k, v);
    }
    s
}

struct Chat<'a> {
    port: u16,
    from: &'a str,
    n: u32,
}

impl Chat<'_> {
    fn wamid(&mut self) -> String {
        self.n += 1;
        format!("wamid.{}.{}", self.from, self.n)
    }
    fn text(&mut self, text: &str) {
        let id = self.wamid();
        assert_eq!(deliver(self.port, &fixture("text.json", self.from, &id, &[("__TEXT__", text)])), 200);
    }
    fn press(&mut self, payload: &str) {
        let id = self.wamid();
        assert_eq!(deliver(self.port, &fixture("button_reply.json", self.from, &id, &[("__PAYLOAD__", payload)])), 200);
    }
    fn pick(&mut self, payload: &str) {
        let id = self.wamid();
        assert_eq!(deliver(self.port, &fixture("list_reply.json", self.from, &id, &[("__PAYLOAD__", payload)])), 200);
    }
    fn location(&mut self) {
        let id = self.wamid();
        assert_eq!(deliver(self.port, &fixture("location.json", self.from, &id, &[])), 200);
    }
}

/// The shopper searches each item, picks the stall from the list and types the amount; returns
/// how many messages they have had.
fn shop(graph: &FakeGraph, shopper: &mut Chat, items: &[(&str, &str, &str)]) -> usize {
    let mut seen = graph.sent_to(shopper.from).len();
    for (search, stall, amount) in items {
        shopper.text(search);
        let (choice, n) = graph.wait_for_choice(shopper.from, stall, seen);
        shopper.pick(&choice);
        (_, seen) = graph.wait_for(shopper.from, "Mau berapa", n);
        shopper.text(amount);
        (_, seen) = graph.wait_for(shopper.from, "masuk keranjang", seen);
    }
    seen
}

/// Checkout with a shared location, tomorrow's first slot and cash on delivery, up to the
/// order number.
fn check_out(graph: &FakeGraph, shopper: &mut Chat, seen: usize) -> usize {
    check_out_paying(graph, shopper, seen, "pay:cod")
}

/// Checkout up to the question where to deliver: the request for the location, and how many
/// messages the shopper has had.
fn check_out_to_location(
    graph: &FakeGraph,
    shopper: &mut Chat,
    mut seen: usize,
) -> (common::fake_graph::WaSent, usize) {
    let me = shopper.from;
    shopper.press("checkout");
    (_, seen) = graph.wait_for(me, "atas nama siapa", seen);
    shopper.text("Ani Rahayu");
    (_, seen) = graph.wait_for(me, "Nomor HP", seen);
    shopper.text("0812-3456-7890");
    (_, seen) = graph.wait_for(me, "Kirim ke mana", seen);
    // With WhatsApp's own "send location" control after the question.
    graph.wait_for(me, "lokasi Anda", seen)
}

/// The same paying by `pay` (`pay:qris`, `pay:transfer`, `pay:cod`).
fn check_out_paying(graph: &FakeGraph, shopper: &mut Chat, seen: usize, pay: &str) -> usize {
    let me = shopper.from;
    let (request, n) = check_out_to_location(graph, shopper, seen);
    assert_eq!(request.body["interactive"]["type"], "location_request_message", "{:?}", request.body);
    shopper.location();
    let (slot, n) = graph.wait_for_choice(me, "Besok", n);
    shopper.pick(&slot);
    let (_, seen) = graph.wait_for(me, "Bayar pakai apa", n);
    shopper.pick(pay);
    let (_, seen) = graph.wait_for(me, "catatan", seen);
    shopper.press("note:none");
    let (_, seen) = graph.wait_for(me, "Ringkasan", seen);
    shopper.press("place");
    graph.wait_for(me, "BLB-0001 sudah kami terima", seen).1
}

fn db_count(dir: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("pasar.db")).expect("db");
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

#[test]
fn the_webhook_checks_everything_before_storing_anything() {
    let graph = FakeGraph::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pasar = start(&graph, None, dir.path());
    let port = pasar.1;
    // Meta's subscription check.
    let get =
        |q: &str| http(port, format!("GET /whatsapp?{q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(
        get(&format!("hub.mode=subscribe&hub.verify_token={}&hub.challenge=1158201444", pasar.2)),
        (200, "1158201444".into())
    );
    assert_eq!(get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1").0, 403);
    assert_eq!(get(&format!("hub.mode=unsubscribe&hub.verify_token={}&hub.challenge=1", pasar.2)).0, 403);
    // Signatures.
    let body = fixture("text.json", SHOPPER, "wamid.sig.1", &[("__TEXT__", "/start")]);
    assert_eq!(post(port, body.as_bytes(), None), 401, "missing signature");
    assert_eq!(post(port, body.as_bytes(), Some(&sign(b"not-the-secret", body.as_bytes()))), 403, "wrong secret");
    assert_eq!(post(port, body.as_bytes(), Some("sha256=nothex")), 403);
    // The same JSON re-serialised (as a proxy might) no longer matches the signature.
    let reserialised =
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&body).expect("json")).expect("json");
    assert_eq!(post(port, reserialised.as_bytes(), Some(&sign(APP_SECRET.as_bytes(), body.as_bytes()))), 403);
    assert_eq!(db_count(dir.path(), "SELECT COUNT(*) FROM inbox"), 0, "nothing stored without a good signature");
    // Malformed bodies, correctly signed: 400, never a silent 200.
    assert_eq!(deliver(port, "{not json"), 400);
    assert_eq!(deliver(port, r#"{"object":"page","entry":[]}"#), 400);
    // A 10 MB body is refused without being read.
    let huge = vec![b' '; 10 * 1024 * 1024];
    assert_eq!(post(port, &huge, Some(&sign(APP_SECRET.as_bytes(), &huge))), 413);
    // A good delivery, then the same wamid again (Meta redelivers): one effect.
    assert_eq!(deliver(port, &body), 200);
    assert_eq!(deliver(port, &body), 200);
    graph.wait_for(SHOPPER, "Mau belanja apa", 0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(db_count(dir.path(), "SELECT COUNT(*) FROM inbox"), 1);
    let welcomes = graph.sent_to(SHOPPER).iter().filter(|m| m.text().contains("Sugeng rawuh")).count();
    assert_eq!(welcomes, 1, "a redelivered wamid is answered once");
    assert!(graph.tokens().iter().all(|t| t == "graph-token"), "the access token goes as a bearer token");
    // Two messages in one delivery, an unknown type, and statuses updating the outbox.
    assert_eq!(deliver(port, &fixture("two_messages.json", SHOPPER, "wamid.two", &[])), 200);
    graph.wait_for(SHOPPER, "Bawang Merah", 0);
    assert_eq!(deliver(port, &fixture("unknown_type.json", SHOPPER, "wamid.unknown", &[])), 200);
    graph.wait_for(SHOPPER, "belum paham", 0);
    let sent = graph.sent_to(SHOPPER)[0].wamid.clone();
    assert_eq!(deliver(port, &fixture("statuses.json", SHOPPER, "-", &[("__SENT_WAMID__", &sent)])), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while db_count(
        dir.path(),
        &format!("SELECT COUNT(*) FROM outbox WHERE platform_id = '{sent}' AND delivery = 'read'"),
    ) != 1
    {
        assert!(std::time::Instant::now() < deadline, "the read receipt was not recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A message accepted, then reported failed because the window had closed: held again,
    // and sent again when the user writes.
    let later = graph.sent_to(SHOPPER).last().expect("a sent message").clone();
    assert_eq!(deliver(port, &fixture("status_failed.json", SHOPPER, "-", &[("__SENT_WAMID__", &later.wamid)])), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while db_count(
        dir.path(),
        &format!("SELECT COUNT(*) FROM outbox WHERE recipient = '{SHOPPER}' AND status = 'held'"),
    ) != 1
    {
        assert!(std::time::Instant::now() < deadline, "not held again");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = graph.sent_to(SHOPPER).len();
    assert_eq!(deliver(port, &fixture("text.json", SHOPPER, "wamid.back", &[("__TEXT__", "/bantuan")])), 200);
    let (again, _) = graph.wait_for(SHOPPER, &later.text(), before);
    assert_eq!(again.body, later.body, "the same message, whole");
}

#[test]
fn a_whole_order_on_whatsapp_with_traders_on_whatsapp_and_telegram() {
    let graph = FakeGraph::start();
    let telegram = FakeTelegram::start(&[TG_TOKEN]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pasar = start(&graph, Some(&telegram), dir.path());
    let port = pasar.1;
    let mut admin = Chat { port, from: ADMIN, n: 0 };
    let mut trader = Chat { port, from: TRADER, n: 0 };
    let mut shopper = Chat { port, from: SHOPPER, n: 0 };

    // The admin (on WhatsApp) invites Bu Sri (WhatsApp) and Bu Kasiyem (Telegram).
    admin.text("/undang A-07");
    let (invite, seen) = graph.wait_for(ADMIN, "Kode undangan", 0);
    let code = invite.text().split("/daftar ").nth(1).expect("code").trim().to_string();
    trader.text(&format!("/daftar {code}"));
    graph.wait_for(TRADER, "Selamat bergabung", 0);
    admin.text("/undang A-12");
    let (invite, _) = graph.wait_for(ADMIN, "Kode undangan", seen);
    let code = invite.text().split("/daftar ").nth(1).expect("code").trim().to_string();
    telegram.text(TG_TOKEN, TG_TRADER, &format!("/daftar {code}"));
    telegram.wait_for(TG_TOKEN, TG_TRADER, "Selamat bergabung", 0);

    // The shopper buys kangkung and bawang merah on WhatsApp, with lists and buttons.
    let seen =
        shop(&graph, &mut shopper, &[("kangkung", "Sayur Bu Sri", "3 ikat"), ("brambang", "Bu Kasiyem", "1/2 kg")]);
    let seen = check_out(&graph, &mut shopper, seen);

    // Bu Sri answers on WhatsApp, Bu Kasiyem on Telegram.
    let (order, _) = graph.wait_for(TRADER, "Pesanan baru BLB-0001", 0);
    assert!(order.text().contains("Kangkung") && !order.text().contains("Ani"), "{}", order.text());
    trader.press(&order.choice("Terima").expect("Terima"));
    graph.wait_for(TRADER, "Ani Rahayu", 0);
    let (tg_order, _) = telegram.wait_for(TG_TOKEN, TG_TRADER, "Pesanan baru BLB-0001", 0);
    telegram.press(TG_TOKEN, TG_TRADER, &tg_order.button("Terima").expect("Terima"));
    telegram.wait_for(TG_TOKEN, TG_TRADER, "Ani Rahayu", 0);
    graph.wait_for(SHOPPER, "Semua pedagang sudah mengonfirmasi", seen);
    assert_eq!(db_count(dir.path(), "SELECT COUNT(*) FROM orders WHERE status = 'confirmed'"), 1);
    // Every body sent fits WhatsApp's limits.
    for m in graph.sent_to(SHOPPER) {
        for (title, id) in m.choices() {
            assert!(id.len() <= 200 && !title.is_empty(), "{title} {id}");
        }
    }
}

#[test]
fn sender_faults_wait_retry_or_park_and_a_restart_sends_what_was_left() {
    let graph = FakeGraph::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut shopper_a = "6281111111111";
    // Throughput limit twice, then fine: delivered once, in order.
    graph.fail(shopper_a, 400, 130429, 2);
    {
        let pasar = start(&graph, None, dir.path());
        let mut chat = Chat { port: pasar.1, from: shopper_a, n: 0 };
        chat.text("/start");
        let (welcome, n) = graph.wait_for(shopper_a, "Sugeng rawuh", 0);
        let (menu, _) = graph.wait_for(shopper_a, "Mau belanja apa", n - 1);
        assert!(welcome.at <= menu.at);
        assert_eq!(graph.calls_to(shopper_a), (2, 2));
        // Too many messages to one user, then a server error: both retried, nothing doubled.
        let shopper_b = "6282222222222";
        graph.fail(shopper_b, 400, 131056, 1);
        graph.fail(shopper_b, 500, 131000, 1);
        let mut chat = Chat { port: pasar.1, from: shopper_b, n: 0 };
        chat.text("/bantuan");
        graph.wait_for(shopper_b, "Cara belanja", 0);
        assert_eq!(graph.sent_to(shopper_b).len(), 1);
        assert_eq!(graph.calls_to(shopper_b), (1, 2));
        // A call that hangs past the timeout is given up and tried again.
        let shopper_d = "6285555555555";
        graph.hang(shopper_d, Duration::from_secs(3), 1);
        let mut chat = Chat { port: pasar.1, from: shopper_d, n: 0 };
        chat.text("/bantuan");
        graph.wait_for(shopper_d, "Cara belanja", 0);
        assert_eq!(graph.calls_to(shopper_d), (1, 1));
        // Outside the 24-hour window (WhatsApp says so): held until they write again. A
        // shopper with a British number: the log names them by a pseudonym, never the number.
        let shopper_c = "447700900123";
        graph.fail(shopper_c, 400, 131047, 10);
        let mut chat = Chat { port: pasar.1, from: shopper_c, n: 0 };
        chat.text("/bantuan");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while db_count(
            dir.path(),
            "SELECT COUNT(*) FROM outbox WHERE recipient = '447700900123' AND status = 'held' AND last_error LIKE '%24-hour%'",
        ) != 1
        {
            assert!(std::time::Instant::now() < deadline, "not held");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(graph.calls_to(shopper_c), (0, 1), "not retried until they write again");
        // The number is down (token refused): the message waits in the outbox; then pasar stops.
        shopper_a = "6284444444444";
        graph.fail(shopper_a, 401, 190, 1000);
        let mut chat = Chat { port: pasar.1, from: shopper_a, n: 0 };
        chat.text("/bantuan");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while graph.calls_to(shopper_a).1 == 0 {
            assert!(std::time::Instant::now() < deadline, "never tried");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(
        db_count(dir.path(), "SELECT COUNT(*) FROM outbox WHERE recipient = '6284444444444' AND status = 'pending'"),
        1
    );
    // After a restart with the token working again, what was left goes out.
    graph.clear_failures(shopper_a);
    let _pasar = start(&graph, None, dir.path());
    graph.wait_for(shopper_a, "Cara belanja", 0);
    // The log told of each fault without a phone number, Indonesian or not.
    if std::env::var_os("PASAR_TEST_LOG").is_none() {
        let log = std::fs::read_to_string(dir.path().join("pasar.log")).expect("log");
        assert!(log.contains("held until the user writes again"), "{log}");
        assert!(log.contains("whatsapp:#"), "the pseudonym: {log}");
        for number in ["447700900123", "7700900123", "6282222222222", "6284444444444", "graph-token"] {
            assert!(!log.contains(number), "{number} in the log: {log}");
        }
    }
}

#[test]
fn the_graph_api_down_pauses_the_number_and_blames_no_message() {
    let graph = FakeGraph::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // Meta's "Service temporarily unavailable" (code 2) three times, then a gateway's 503 with
    // Meta's "Service unavailable" (131016): the service is down, not this message.
    let shopper = "6286666666666";
    graph.fail(shopper, 500, 2, 3);
    graph.fail(shopper, 503, 131016, 1);
    let pasar = start(&graph, None, dir.path());
    let mut chat = Chat { port: pasar.1, from: shopper, n: 0 };
    chat.text("/bantuan");
    graph.wait_for(shopper, "Cara belanja", 0);
    assert_eq!(graph.sent_to(shopper).len(), 1, "sent once");
    assert_eq!(graph.calls_to(shopper), (1, 4));
    // The failed calls counted as no attempt at the message (attempts park it in the end): only
    // the call that went. (Recorded just after Meta's answer: waited for.)
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while db_count(dir.path(), "SELECT COUNT(*) FROM outbox WHERE recipient = '6286666666666' AND status = 'sent'") != 1
    {
        assert!(std::time::Instant::now() < deadline, "never recorded as sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        db_count(
            dir.path(),
            "SELECT COUNT(*) FROM outbox WHERE recipient = '6286666666666' AND status = 'sent' AND attempts = 1 \
             AND last_error IS NULL"
        ),
        1
    );
    // One user Meta keeps answering "service unavailable" pauses the number again and again,
    // and the tries after each pause go one at a time, but to one user after another: the
    // others' messages still go.
    let stuck = "6287777777777";
    graph.fail(stuck, 503, 131016, 100_000);
    let mut chat = Chat { port: pasar.1, from: stuck, n: 0 };
    chat.text("/bantuan");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while graph.calls_to(stuck).1 < 2 {
        assert!(std::time::Instant::now() < deadline, "the stuck user was not tried again");
        std::thread::sleep(Duration::from_millis(50));
    }
    for other in ["6288888888881", "6288888888882"] {
        let mut chat = Chat { port: pasar.1, from: other, n: 0 };
        chat.text("/bantuan");
    }
    for other in ["6288888888881", "6288888888882"] {
        graph.wait_for(other, "Cara belanja", 0);
    }
    // The stuck user's message is not lost: it waits in the outbox for Meta to take it.
    assert_eq!(
        db_count(dir.path(), "SELECT COUNT(*) FROM outbox WHERE recipient = '6287777777777' AND status = 'pending'"),
        1
    );
}

/// A number typed to answer a numbered menu (more choices than WhatsApp's lists hold) while
/// Meta has delivered the menu but not yet answered the call that sent it: the number answers
/// that menu, not the one before it (the sender records a message as sent once Meta answers).
#[test]
fn a_numbered_menu_answered_before_meta_answers_its_call_is_read_right() {
    let h = common::Harness::new("blimbing");
    // A slot every hour: 48 choices over two days, a numbered menu.
    let slots: Vec<String> =
        (0..23).map(|h| format!("{h:02}:00-{:02}:00", h + 1)).chain(["23:00-23:59".to_string()]).collect();
    let conn = rusqlite::Connection::open(h.dir.path().join("pasar.db")).expect("db");
    conn.execute("UPDATE markets SET slots = ?1", [slots.join(",")]).expect("slots");
    drop(conn);
    let graph = FakeGraph::start();
    let running = start(&graph, None, h.dir.path());
    let mut shopper = Chat { port: running.1, from: SHOPPER, n: 0 };
    let seen = shop(&graph, &mut shopper, &[("kangkung", "Sayur Bu Sri", "3 ikat")]);
    let (_, seen) = check_out_to_location(&graph, &mut shopper, seen);
    // Meta carries out the next calls at once but answers each 800 ms later (the client waits
    // 1 s); the shopper answers the menu the moment it shows.
    graph.answer_late(SHOPPER, Duration::from_millis(800), 5);
    shopper.location();
    let (menu, seen) = graph.wait_for(SHOPPER, "jam berapa", seen);
    assert!(menu.text().contains("\n1. "), "a numbered menu: {}", menu.text());
    shopper.text("1");
    let (answer, _) = graph.wait_for(SHOPPER, "Bayar pakai apa", seen);
    assert!(!answer.text().contains("belum paham"), "{}", answer.text());
    let confused = graph.sent_to(SHOPPER).iter().skip(seen).filter(|m| m.text().contains("belum paham")).count();
    assert_eq!(confused, 0, "the typed number was read against the menu");
}

#[test]
fn run_check_lists_the_numbers_and_fails_without_the_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"127.0.0.1:1\"\nops_listen = \"127.0.0.1:0\"\n[markets.blimbing]\nwhatsapp_phone_number_id = \"{NUMBER}\"\n"),
    )
    .expect("config");
    let run = |with_secrets: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pasar"));
        cmd.arg("--config").arg(&config).args(["run", "--check", "--db"]).arg(dir.path().join("c.db"));
        cmd.env_remove("PASAR_DB").env_remove("PASAR_BLIMBING_TELEGRAM_TOKEN").env_remove("WHATSAPP_ACCESS_TOKEN");
        cmd.env_remove("WHATSAPP_APP_SECRET").env_remove("WHATSAPP_VERIFY_TOKEN");
        for new in ["PASAR_WHATSAPP_ACCESS_TOKEN", "PASAR_WHATSAPP_APP_SECRET", "PASAR_WHATSAPP_VERIFY_TOKEN"] {
            cmd.env_remove(new);
        }
        // The secrets by their old names: still read, with a warning to rename them.
        if with_secrets {
            cmd.env("WHATSAPP_ACCESS_TOKEN", "t").env("WHATSAPP_APP_SECRET", "s").env("WHATSAPP_VERIFY_TOKEN", "v");
        }
        cmd.output().expect("pasar run --check")
    };
    let out = run(false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("PASAR_WHATSAPP_ACCESS_TOKEN"), "{stdout}");
    let out = run(true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("WHATSAPP_APP_SECRET is the old name of PASAR_WHATSAPP_APP_SECRET"), "{stderr}");
    let line = stdout.lines().find(|l| l.starts_with("blimbing") && l.contains("number")).unwrap_or_default();
    assert!(line.contains(&format!("number {NUMBER} ok")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("dinoyo") && l.contains("skipped")), "{stdout}");
}

/// Sets when a user last wrote, as if it were `hours` ago.
/// Moves `user`'s last message `hours` back, once everything queued for them has gone (a
/// message still queued would otherwise meet the closed window too).
fn wrote_hours_ago(dir: &std::path::Path, user: &str, hours: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while db_count(dir, &format!("SELECT COUNT(*) FROM outbox WHERE recipient = '{user}' AND status = 'pending'")) > 0 {
        assert!(std::time::Instant::now() < deadline, "messages to {user} stay queued");
        std::thread::sleep(Duration::from_millis(20));
    }
    let at = (chrono::Utc::now() - chrono::Duration::hours(hours)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let conn = rusqlite::Connection::open(dir.join("pasar.db")).expect("db");
    let n = conn
        .execute(
            "UPDATE last_inbound SET at = ?1 WHERE channel = 'whatsapp' AND user_id = ?2",
            rusqlite::params![at, user],
        )
        .expect("update");
    assert_eq!(n, 1, "{user} has written before");
}

#[test]
fn notifications_outside_the_24_hour_window_go_as_templates_or_wait_with_the_admin_told() {
    let graph = FakeGraph::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let templates = "[whatsapp.templates.order_update]\nname = \"pasar_kabar_pesanan\"\nlanguage = \"id\"\n";
    let pasar = start_with(&graph, None, dir.path(), templates);
    let port = pasar.1;
    let mut admin = Chat { port, from: ADMIN, n: 0 };
    let mut trader = Chat { port, from: TRADER, n: 0 };
    let mut shopper = Chat { port, from: SHOPPER, n: 0 };
    admin.text("/undang A-07");
    let (invite, admin_seen) = graph.wait_for(ADMIN, "Kode undangan", 0);
    let code = invite.text().split("/daftar ").nth(1).expect("code").trim().to_string();
    trader.text(&format!("/daftar {code}"));
    graph.wait_for(TRADER, "Selamat bergabung", 0);
    // The trader last wrote two days ago (and has had everything sent to them).
    wrote_hours_ago(dir.path(), TRADER, 48);
    let trader_seen = graph.sent_to(TRADER).len();

    let seen = shop(&graph, &mut shopper, &[("kangkung", "Sayur Bu Sri", "3 ikat")]);
    let seen = check_out(&graph, &mut shopper, seen);

    // No template for new orders: held, and the admin is told who to call.
    let (alert, _) = graph.wait_for(ADMIN, "ditahan", admin_seen);
    assert!(alert.text().contains(TRADER) && alert.text().contains("new_order"), "{}", alert.text());
    assert_eq!(graph.sent_to(TRADER).len(), trader_seen, "nothing free-form outside the window");
    assert_eq!(
        db_count(dir.path(), &format!("SELECT COUNT(*) FROM outbox WHERE recipient = '{TRADER}' AND status = 'held'")),
        1
    );
    // The trader writes: the window opens and the order goes out.
    trader.text("halo");
    let (order, _) = graph.wait_for(TRADER, "Pesanan baru BLB-0001", trader_seen);
    // The shopper has been away a day: the trader's yes reaches them as the approved template.
    wrote_hours_ago(dir.path(), SHOPPER, 30);
    trader.press(&order.choice("Terima").expect("Terima"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let template = loop {
        if let Some(m) = graph.sent_to(SHOPPER).into_iter().skip(seen).find(|m| m.body["type"] == "template") {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "no template to the shopper");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(template.body["template"]["name"], "pasar_kabar_pesanan");
    assert_eq!(template.body["template"]["language"]["code"], "id");
    let param = template.body["template"]["components"][0]["parameters"][0]["text"].as_str().expect("param");
    assert!(param.contains("BLB-0001") && !param.contains('\n'), "{param}");
}

#[test]
fn a_courier_on_whatsapp_shares_a_location_and_delivers_with_a_photo() {
    use common::market::{accept_as, as_user, delivery, market_with_couriers_as, place_order, start_shift, sub_of};
    use pasar_online::channel::{ChannelKind, UserKey};
    use pasar_online::conversation::payload::Action;
    const COURIER: &str = "6281211112222";
    const TRADER: &str = "6281300003333";
    const SHOPPER: &str = "6281234567890";
    // Up to the courier on the road, through the engine as WhatsApp users.
    let mut h = common::Harness::new("blimbing");
    h.user = UserKey { channel: ChannelKind::WhatsApp, id: ADMIN.to_string() };
    market_with_couriers_as(&mut h, ADMIN, TRADER, &[(COURIER, "Budi Santoso, 0812-1111-2222, Honda Beat, N 1234 AB")]);
    start_shift(&mut h, COURIER);
    let number = place_order(&mut h, SHOPPER, None);
    accept_as(&mut h, TRADER, &number, true);
    let (d, _, _) = delivery(&h, &number);
    let sub = sub_of(&h, &number);
    as_user(&mut h, COURIER);
    h.button(&Action::CourierTake(d).encode());
    h.button(&Action::CourierPicked { delivery: d, sub }.encode());
    h.button(&Action::CourierDepart(d).encode());
    h.button(&Action::CourierDelivered(d).encode());

    // The courier's location and the photo at the door come through the signed webhook.
    let graph = FakeGraph::start();
    let running = start(&graph, None, h.dir.path());
    let mut courier = Chat { port: running.1, from: COURIER, n: 0 };
    courier.location();
    let (_, seen) = graph.wait_for(COURIER, "Lokasi diperbarui", 0);
    assert_eq!(db_count(h.dir.path(), "SELECT COUNT(*) FROM couriers WHERE lat IS NOT NULL"), 1);
    // Paid at the door: the cash question's button, as a reply button.
    courier.press(&Action::CourierCash { delivery: d, amount: pasar_online::domain::money::Rupiah(9_000) }.encode());
    let (_, seen) = graph.wait_for(COURIER, "Kirim foto bukti", seen);
    let id = courier.wamid();
    let body = fixture("image.json", COURIER, &id, &[("__MEDIA__", "1234567890123456")]);
    assert_eq!(deliver(running.1, &body), 200);
    graph.wait_for(COURIER, "selesai diantar", seen);
    assert_eq!(
        db_count(
            h.dir.path(),
            &format!(
                "SELECT COUNT(*) FROM deliveries WHERE id = {d} AND status = 'delivered' AND proof = '1234567890123456'"
            )
        ),
        1,
        "the media id is kept as proof"
    );
    assert_eq!(
        db_count(h.dir.path(), "SELECT SUM(amount) FROM ledger WHERE kind = 'payment' AND method = 'cod'"),
        9_000
    );
}

/// A shopper on WhatsApp orders kangkung paying by QRIS and the trader (on WhatsApp) accepts:
/// the payment request reaches the shopper. Returns the fake, the running server, its
/// directory, and how many messages the shopper had before the request.
fn order_paid_by_qris(fail_uploads: u32) -> (FakeGraph, Running, tempfile::TempDir, usize) {
    let graph = FakeGraph::start();
    if fail_uploads > 0 {
        graph.fail_uploads(500, 1, fail_uploads);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pasar = start(&graph, None, dir.path());
    let port = pasar.1;
    let mut admin = Chat { port, from: ADMIN, n: 0 };
    let mut trader = Chat { port, from: TRADER, n: 0 };
    let mut shopper = Chat { port, from: SHOPPER, n: 0 };
    admin.text("/undang A-07");
    let (invite, _) = graph.wait_for(ADMIN, "Kode undangan", 0);
    let code = invite.text().split("/daftar ").nth(1).expect("code").trim().to_string();
    trader.text(&format!("/daftar {code}"));
    graph.wait_for(TRADER, "Selamat bergabung", 0);
    let seen = shop(&graph, &mut shopper, &[("kangkung", "Sayur Bu Sri", "3 ikat")]);
    let seen = check_out_paying(&graph, &mut shopper, seen, "pay:qris");
    let (order, _) = graph.wait_for(TRADER, "Pesanan baru BLB-0001", 0);
    trader.press(&order.choice("Terima").expect("Terima"));
    (graph, pasar, dir, seen)
}

/// The payment request sent after `seen`: the QR picture (by its media id), then the words with
/// the amount; checks the upload and what the code says. Returns the picture.
fn check_qris_request(graph: &FakeGraph, dir: &std::path::Path, seen: usize) -> common::fake_graph::WaSent {
    let amount = {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while db_count(dir, "SELECT COUNT(*) FROM payments WHERE method = 'qris' AND status = 'pending'") != 1 {
            assert!(std::time::Instant::now() < deadline, "no QRIS payment asked for");
            std::thread::sleep(Duration::from_millis(20));
        }
        pasar_online::domain::money::Rupiah(db_count(dir, "SELECT amount FROM payments"))
    };
    let (words, _) = graph.wait_for(SHOPPER, "dengan QRIS", seen);
    assert!(words.text().contains(&amount.to_string()), "{}", words.text());
    assert!(words.choices().iter().any(|(label, _)| label.contains("Batalkan")), "{:?}", words.choices());
    let after: Vec<_> = graph.sent_to(SHOPPER).into_iter().skip(seen).collect();
    let pictures: Vec<_> = after.iter().filter(|m| m.body["type"] == "image").collect();
    assert_eq!(pictures.len(), 1, "one picture: {:#?}", after.iter().map(|m| &m.body).collect::<Vec<_>>());
    let picture = pictures[0].clone();
    assert!(picture.at <= words.at, "the picture comes first");
    // With a button to cancel, WhatsApp cannot put it under a picture: the picture goes alone
    // and the words (with the amount) follow it.
    assert!(picture.body["image"]["caption"].is_null(), "{}", picture.body);
    let uploads = graph.uploads();
    assert_eq!(uploads.len(), 1, "one upload");
    let upload = &uploads[0];
    assert_eq!(picture.media_id(), Some(upload.id.as_str()));
    assert_eq!(upload.number, NUMBER);
    assert_eq!(upload.token, "graph-token");
    assert_eq!(upload.file_name.as_deref(), Some("qris.png"));
    assert_eq!(upload.content_type.as_deref(), Some("image/png"));
    for field in [("messaging_product", "whatsapp"), ("type", "image/png")] {
        assert!(upload.fields.iter().any(|(k, v)| (k.as_str(), v.as_str()) == field), "{:?}", upload.fields);
    }
    let payload = common::decode_qr(&upload.bytes);
    let qris = pasar_online::domain::qris::read_dynamic(&payload).expect("a valid dynamic QRIS");
    assert_eq!(qris.amount, amount);
    let stored: String = rusqlite::Connection::open(dir.join("pasar.db"))
        .expect("db")
        .query_row("SELECT reference FROM payments", [], |r| r.get(0))
        .expect("reference");
    assert_eq!(payload, stored, "the code is the payment's own");
    picture
}

#[test]
fn a_qris_payment_request_reaches_the_shopper_as_an_uploaded_qr_picture() {
    let (graph, _pasar, dir, seen) = order_paid_by_qris(0);
    check_qris_request(&graph, dir.path(), seen);
    assert_eq!(graph.upload_calls(), (1, 0));
}

#[test]
fn a_failed_qr_upload_is_retried_and_the_picture_arrives_once() {
    let (graph, _pasar, dir, seen) = order_paid_by_qris(1);
    let picture = check_qris_request(&graph, dir.path(), seen);
    assert_eq!(graph.upload_calls(), (1, 1), "one refused upload, then one that went");
    // Nothing else was sent twice either.
    let after: Vec<_> = graph.sent_to(SHOPPER).into_iter().skip(seen).collect();
    assert_eq!(after.iter().filter(|m| m.wamid == picture.wamid).count(), 1);
    assert_eq!(after.iter().filter(|m| m.text().contains("dengan QRIS")).count(), 1);
    assert_eq!(
        db_count(
            dir.path(),
            &format!("SELECT COUNT(*) FROM outbox WHERE recipient = '{SHOPPER}' AND last_error LIKE '%fake error 1%'")
        ),
        1,
        "the failed upload was recorded against the message"
    );
}

#[test]
fn an_admin_s_photo_captioned_foto_shows_with_the_commodity_on_whatsapp() {
    const SHOPPER: &str = "6281234567890";
    let dir = tempfile::tempdir().expect("dir");
    let graph = FakeGraph::start();
    let running = start(&graph, None, dir.path());
    let jpeg = b"\xff\xd8\xff\xe0 a photo of bawang merah at stall A-12";
    graph.received_media("9988776655", "image/jpeg", jpeg);
    let mut admin = Chat { port: running.1, from: ADMIN, n: 0 };
    let id = admin.wamid();
    let body =
        fixture("image.json", ADMIN, &id, &[("__MEDIA__", "9988776655"), ("sudah diterima", "/foto bawang merah")]);
    assert_eq!(deliver(running.1, &body), 200);
    graph.wait_for(ADMIN, "Foto Bawang Merah terpasang", 0);
    let mut shopper = Chat { port: running.1, from: SHOPPER, n: 0 };
    shopper.text("bawang merah");
    graph.wait_for(SHOPPER, "Bawang Merah", 0);
    let pictures: Vec<_> = graph.sent_to(SHOPPER).into_iter().filter(|m| m.body["type"] == "image").collect();
    assert_eq!(pictures.len(), 1, "{:#?}", graph.sent_to(SHOPPER));
    // Sent as the number's own upload of the downloaded photo (a received id only downloads).
    let uploads = graph.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!((uploads[0].bytes.as_slice(), uploads[0].content_type.as_deref()), (&jpeg[..], Some("image/jpeg")));
    assert_eq!(pictures[0].media_id(), Some(uploads[0].id.as_str()), "{}", pictures[0].body);
    // Seen again: the same upload, not another.
    shopper.text("bawang merah");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while graph.sent_to(SHOPPER).iter().filter(|m| m.body["type"] == "image").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "the second picture never came");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(graph.uploads().len(), 1, "uploaded once");
    // A picture WhatsApp no longer has (received media lasts about a month): the words still go.
    let mut other = Chat { port: running.1, from: "6281999990000", n: 0 };
    let id = admin.wamid();
    let body = fixture("image.json", ADMIN, &id, &[("__MEDIA__", "gone-123"), ("sudah diterima", "/foto kangkung")]);
    assert_eq!(deliver(running.1, &body), 200);
    graph.wait_for(ADMIN, "Foto Kangkung terpasang", 0);
    other.text("kangkung");
    graph.wait_for(other.from, "Kangkung (per ikat)", 0);
    assert!(graph.sent_to(other.from).iter().all(|m| m.body["type"] != "image"));
    // ...and it leaves the catalogue, its admin asked to send it again.
    graph.wait_for(ADMIN, "Foto Kangkung di katalog sudah tidak tersedia", 0);
    assert_eq!(db_count(dir.path(), "SELECT COUNT(*) FROM commodity_photos WHERE commodity_id = 'kangkung'"), 0);
    // The upload is remembered in the database: after a restart it is not uploaded again.
    drop(running);
    let running = start(&graph, None, dir.path());
    let mut shopper = Chat { port: running.1, from: SHOPPER, n: 10 };
    let before = graph.sent_to(SHOPPER).iter().filter(|m| m.body["type"] == "image").count();
    shopper.text("bawang merah");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while graph.sent_to(SHOPPER).iter().filter(|m| m.body["type"] == "image").count() == before {
        assert!(std::time::Instant::now() < deadline, "the picture never came after the restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(graph.uploads().len(), 1, "the stored upload is reused");
}

#[test]
fn an_admin_on_whatsapp_gets_the_chart_and_the_csv_as_uploaded_media() {
    let graph = FakeGraph::start();
    let mut h = common::Harness::new("blimbing");
    // `pasar run` keeps real time: the order is placed now.
    h.clock.set(chrono::Utc::now());
    common::market::market_with_couriers(&mut h, &[]);
    let number = common::market::place_order_for(&mut h, "ani", None, "Besok");
    let pasar = start(&graph, None, h.dir.path());
    let mut admin = Chat { port: pasar.1, from: ADMIN, n: 0 };

    admin.text("/statistik");
    let (chart, seen) = graph.wait_for(ADMIN, "Pesanan per jam", 0);
    let id = chart.media_id().expect("sent by its media id");
    let upload = graph.uploads().into_iter().find(|u| u.id == id).expect("the chart was uploaded");
    assert_eq!(upload.content_type.as_deref(), Some("image/png"));
    let reader = png::Decoder::new(std::io::Cursor::new(upload.bytes)).read_info().expect("a PNG");
    assert_eq!(
        (reader.info().width, reader.info().height),
        (pasar_online::channel::chart::WIDTH, pasar_online::channel::chart::HEIGHT)
    );

    admin.text("/export");
    let (sent, _) = graph.wait_for(ADMIN, "1 pesanan Pasar Blimbing", seen);
    let (id, file_name) = sent.document().expect("sent as a document by its media id");
    assert!(file_name.starts_with("pesanan-blimbing-") && file_name.ends_with(".csv"), "{file_name}");
    let upload = graph.uploads().into_iter().find(|u| u.id == id).expect("the file was uploaded");
    assert_eq!(upload.content_type.as_deref(), Some("text/csv"));
    assert_eq!(upload.file_name.as_deref(), Some(file_name));
    let body = String::from_utf8(upload.bytes).expect("UTF-8");
    let body = body.strip_prefix('\u{feff}').expect("a byte-order mark");
    assert!(body.starts_with("market,order,placed_at_wib,") && body.contains(&number), "{body}");
}

#[test]
fn market_news_on_whatsapp_reaches_shoppers_in_the_window_and_counts_the_others_unreachable() {
    const NEWS: &str = "Besok pasar tutup jam 12 untuk kerja bakti";
    const AWAY: &str = "6285700003333";
    let graph = FakeGraph::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pasar = start(&graph, None, dir.path());
    let port = pasar.1;
    let mut admin = Chat { port, from: ADMIN, n: 0 };
    let mut shopper = Chat { port, from: SHOPPER, n: 0 };
    let mut away = Chat { port, from: AWAY, n: 0 };
    shopper.text("/langganan");
    graph.wait_for(SHOPPER, "akan dapat info dari Pasar Blimbing", 0);
    away.text("langganan");
    graph.wait_for(AWAY, "akan dapat info dari Pasar Blimbing", 0);
    // This one last wrote two days ago: WhatsApp takes no free-form message to them now.
    wrote_hours_ago(dir.path(), AWAY, 48);
    let (shopper_seen, away_seen) = (graph.sent_to(SHOPPER).len(), graph.sent_to(AWAY).len());

    admin.text(&format!("/siaran {NEWS}"));
    let (preview, seen) = graph.wait_for(ADMIN, "Pratinjau siaran", 0);
    assert!(preview.text().contains("Akan dikirim ke 2 pembeli"), "{}", preview.text());
    admin.press(&preview.choice("Kirim").expect("Kirim"));
    // WhatsApp cannot edit: the progress is a new message, and so is the end.
    let (_, seen) = graph.wait_for(ADMIN, "Siaran: 0/2 terkirim", seen);
    let (news, _) = graph.wait_for(SHOPPER, NEWS, shopper_seen);
    assert!(news.text().ends_with("Ketik /berhenti"), "{}", news.text());
    let (end, _) = graph.wait_for(ADMIN, "Siaran selesai", seen);
    assert!(end.text().contains("1/2 terkirim, 0 gagal, 1 tidak terjangkau"), "{}", end.text());
    assert_eq!(graph.sent_to(AWAY).len(), away_seen, "nothing outside the window");
    assert!(graph.sent_to(ADMIN).iter().all(|m| !m.text().contains("ditahan")), "no held-message alerts");
    assert_eq!(db_count(dir.path(), "SELECT COUNT(*) FROM outbox WHERE status = 'held'"), 0, "old news is not kept");
}

#[test]
fn a_typed_order_on_whatsapp_is_reviewed_with_reply_buttons_and_added_in_one_tap() {
    let dir = tempfile::tempdir().expect("dir");
    let graph = FakeGraph::start();
    let running = start(&graph, None, dir.path());
    let mut shopper = Chat { port: running.1, from: SHOPPER, n: 0 };
    shopper.text("bu, brambang sekilo, tempe 2 papan nggih");
    let (review, seen) = graph.wait_for(SHOPPER, "Yang saya tangkap", 0);
    assert_eq!(review.body["interactive"]["type"], "button", "three reply buttons fit: {}", review.body);
    assert!(review.text().contains("1. Bawang Merah 1 kg") && review.text().contains("2. Tempe 2 papan"));
    shopper.press(&review.choice("Masukkan").expect("the add-all button"));
    graph.wait_for(SHOPPER, "2 barang masuk keranjang", seen);
    assert_eq!(db_count(dir.path(), "SELECT COUNT(*) FROM cart_lines WHERE user_id = '6281234567890'"), 2);
}

/// Checkout to a shared location, tomorrow's first slot and cash on delivery, up to the order
/// `number`'s confirmation; returns how many messages the shopper has had.
fn check_out_order(graph: &FakeGraph, shopper: &mut Chat, seen: usize, number: &str) -> usize {
    let me = shopper.from;
    let (_, n) = check_out_to_location(graph, shopper, seen);
    shopper.location();
    let (slot, n) = graph.wait_for_choice(me, "Besok", n);
    shopper.pick(&slot);
    let (_, seen) = graph.wait_for(me, "Bayar pakai apa", n);
    shopper.pick("pay:cod");
    let (_, seen) = graph.wait_for(me, "catatan", seen);
    shopper.press("note:none");
    let (_, seen) = graph.wait_for(me, "Ringkasan", seen);
    shopper.press("place");
    graph.wait_for(me, &format!("{number} sudah kami terima"), seen).1
}

/// "ayam 1 ekor" on WhatsApp: a line of one piece, priced as an estimate; the trader weighs it.
/// Inside the market's tolerance (1,3 kg for ± 1,2 kg) the shopper is only told the final
/// price; beyond it (1,45 kg) the shopper is asked, as with any change.
#[test]
fn a_chicken_ordered_by_the_piece_is_weighed_and_only_a_big_difference_is_asked() {
    let graph = FakeGraph::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pasar = start(&graph, None, dir.path());
    let port = pasar.1;
    let mut admin = Chat { port, from: ADMIN, n: 0 };
    let mut trader = Chat { port, from: TRADER, n: 0 };
    // Cak Rofiq's chicken stall (C-08) is the market's cheapest for ayam potong.
    admin.text("/undang C-08");
    let (invite, _) = graph.wait_for(ADMIN, "Kode undangan", 0);
    let code = invite.text().split("/daftar ").nth(1).expect("code").trim().to_string();
    trader.text(&format!("/daftar {code}"));
    let (_, mut trader_seen) = graph.wait_for(TRADER, "Selamat bergabung", 0);

    // Two shoppers (each a new one, so checkout asks the same questions).
    for (from, number, weighed, asked) in
        [(SHOPPER, "BLB-0001", "1,3", false), ("6281298765432", "BLB-0002", "1,45 kg", true)]
    {
        let mut shopper = Chat { port, from, n: 0 };
        let seen = 0;
        shopper.text("ayam 1 ekor");
        let (review, n) = graph.wait_for(from, "Yang saya tangkap", seen);
        assert!(review.text().contains("Ayam Potong 1 ekor (± 1,2 kg)"), "{}", review.text());
        assert!(review.text().contains("± Rp 41.400"), "an estimate: {}", review.text());
        shopper.press(&review.choice("Masukkan").expect("the add-all button"));
        let (_, n) = graph.wait_for(from, "1 barang masuk keranjang", n);
        let seen = check_out_order(&graph, &mut shopper, n, number);

        let (order, n) = graph.wait_for(TRADER, &format!("Pesanan baru {number}"), trader_seen);
        assert!(order.text().contains("1 ekor (± 1,2 kg)"), "{}", order.text());
        trader.press(&order.choice("Ubah").expect("Ubah"));
        let (lines, n) = graph.wait_for(TRADER, "Ayam Potong", n);
        trader.press(&lines.choice("Ayam Potong").expect("the line"));
        let (_, n) = graph.wait_for(TRADER, "timbang", n);
        trader.text(weighed);
        let (lines, n) = graph.wait_for(TRADER, "ditimbang", n);
        trader.press(&lines.choice("Selesai").expect("done"));
        trader_seen = n;
        if asked {
            let (proposal, n) = graph.wait_for(from, "Setuju?", seen);
            assert!(proposal.text().contains("1 ekor, ditimbang 1,45 kg"), "{}", proposal.text());
            assert!(proposal.text().contains("Rp 50.025"), "1,45 kg at Rp 34.500: {}", proposal.text());
            shopper.press(&proposal.choice("Setuju").expect("agree"));
            graph.wait_for(from, "Semua pedagang sudah mengonfirmasi", n);
        } else {
            let (told, n) = graph.wait_for(from, "sudah menimbang", seen);
            assert!(
                told.text().contains("1 ekor, ditimbang 1,3 kg") && told.text().contains("Rp 44.850"),
                "{}",
                told.text()
            );
            assert!(told.choices().is_empty() && !told.text().contains("Setuju"), "not asked: {}", told.text());
            graph.wait_for(from, "Semua pedagang sudah mengonfirmasi", n);
        }
        let total: i64 = db_count(dir.path(), &format!("SELECT total FROM orders WHERE number = '{number}'"));
        assert_eq!(total, if asked { 50_025 } else { 44_850 }, "{number}");
    }
    assert_eq!(
        db_count(
            dir.path(),
            "SELECT COUNT(*) FROM order_lines WHERE ordered_by LIKE '%pieces%' AND ordered_quantity LIKE '%1200%'"
        ),
        2,
        "each line remembers it was one piece of an estimated 1,2 kg"
    );
}
