//! Fault tests (issue 10) against the real `pasar run`, with Telegram (a fake Bot API) and
//! WhatsApp (signed webhooks, a fake Graph API) on one temp database:
//!
//! - **replay**: shoppers on both channels each place a whole order while every update and
//!   every webhook delivery comes three times, some after newer ones. Each has exactly one effect:
//!   one order per journey, the same replies as a run without redeliveries, stock taken once.
//! - **last unit**: twenty shoppers (ten a channel) press "Pesan sekarang" at the same moment for
//!   a stall's last kilo (exactly one gets it), and for its last 7 kg in different amounts. Never
//!   oversold, everyone answered, and nobody refused while enough was left.

mod common;

use common::http;

use common::Harness;
use common::fake_graph::FakeGraph;
use common::fake_telegram::FakeTelegram;
use pasar_online::channel::whatsapp::sign;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BLIMBING: &str = "111:blimbing-token";
const DINOYO: &str = "222:dinoyo-token";
const NUMBER: &str = "1001"; // Pasar Blimbing's WhatsApp number id
const APP_SECRET: &str = "app-secret-for-tests";
/// Blimbing's admin (from the config) and the trader of the stall, both on Telegram.
const ADMIN: i64 = 9001;
const TRADER: i64 = 2002;

static INSTANCE: AtomicU64 = AtomicU64::new(0);

/// `pasar run` serving Blimbing on Telegram and WhatsApp, with a known stock of bawang merah
/// at one stall.
struct World {
    telegram: FakeTelegram,
    graph: FakeGraph,
    db: std::path::PathBuf,
    pasar: Option<common::Running>,
    /// The offer raced for, its stall's name (what its button or list row shows) and number.
    offer: i64,
    stall: String,
    stall_number: String,
}

/// The harness (which made the temp database and keeps it) goes beside: it is not `Sync`.
fn world(stock_grams: i64) -> (Harness, World) {
    let telegram = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let graph = FakeGraph::start();
    let h = Harness::new("blimbing");
    let (offer, stall, stall_number) = {
        let catalog = h.engine.catalog();
        let offer = catalog.offers_for("blimbing", "bawang-merah")[0];
        let stall = catalog.stall(offer.stall_id).expect("stall");
        (offer.id, stall.name.clone(), stall.number.clone())
    };
    {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.execute("UPDATE offers SET stock = ?1 WHERE id = ?2", [stock_grams, offer]).expect("stock");
    }
    // A verify token of this instance's own: a server on the port that answers with it is ours.
    let verify = format!("verify-faults-{}-{}", std::process::id(), INSTANCE.fetch_add(1, Ordering::Relaxed));
    let (tg_url, wa_url) = (telegram.url.clone(), graph.url.clone());
    let config = move |port: u16| {
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[markets.blimbing]\nwhatsapp_phone_number_id = \"{NUMBER}\"\n\
             [whatsapp]\ngraph_url = \"{wa_url}\"\ntimeout_secs = 5\n\
             [whatsapp.limits]\nper_number_per_sec = 1000\nper_user_interval_secs = 0\n\
             [telegram]\napi_url = \"{tg_url}\"\npoll_timeout_secs = 1\n\
             [telegram.limits]\nper_chat_per_sec = 1000\nper_bot_per_sec = 1000\n\
             [[admins]]\nchannel = \"telegram\"\nuser = \"{ADMIN}\"\nmarkets = [\"blimbing\"]\n"
        )
    };
    let ready = |port: u16| {
        http(
            port,
            format!(
                "GET /whatsapp?hub.mode=subscribe&hub.verify_token={verify}&hub.challenge=42 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        ) == (200, "42".to_string())
    };
    let env = [
        ("WHATSAPP_ACCESS_TOKEN", "graph-token"),
        ("WHATSAPP_APP_SECRET", APP_SECRET),
        ("WHATSAPP_VERIFY_TOKEN", verify.as_str()),
        ("PASAR_BLIMBING_TELEGRAM_TOKEN", BLIMBING),
        ("PASAR_DINOYO_TELEGRAM_TOKEN", DINOYO),
    ];
    let pasar = common::run_pasar(&h, config, &env, ready);
    let db = h.db.clone();
    (h, World { telegram, graph, db, pasar: Some(pasar), offer, stall, stall_number })
}

impl World {
    fn port(&self) -> u16 {
        self.pasar.as_ref().expect("running").1
    }

    /// Waits until everything stored was handled and every reply went out.
    fn wait_quiet(&self) {
        for sql in
            ["SELECT COUNT(*) FROM inbox WHERE status <> 'done'", "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'"]
        {
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.one(sql) != 0 {
                assert!(Instant::now() < deadline, "`{sql}` stayed {}", self.one(sql));
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Stops `pasar run` (SIGKILL: everything it did is committed or not at all).
    fn stop(&mut self) {
        self.pasar = None;
    }

    /// A single-number query on the database file.
    fn one(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open(&self.db).expect("db");
        conn.query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    fn integrity_check(&self) -> String {
        let conn = rusqlite::Connection::open(&self.db).expect("db");
        conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check")
    }
}

/// Posts a webhook body signed with the app secret, as Meta does; returns the status.
fn deliver(port: u16, body: &str) -> u16 {
    let signature = sign(APP_SECRET.as_bytes(), body.as_bytes());
    common::post_json(port, "/whatsapp", body, &[("X-Hub-Signature-256", &signature)])
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

/// What a shopper does next.
#[derive(Clone, Copy)]
enum Input<'a> {
    Text(&'a str),
    Press(&'a str),
    /// Presses (or picks from a list) the choice the last `Offers` found.
    Choice,
}

/// What the shopper waits for after it.
#[derive(Clone, Copy)]
enum Expect<'a> {
    /// A message containing this.
    Says(&'a str),
    /// A message offering a button or list row labelled with this.
    Offers(&'a str),
    /// A message containing any of these.
    AnyOf(&'a [&'a str]),
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Channel {
    Telegram(i64),
    WhatsApp(u64),
}

/// One shopper's chat with the Blimbing bot on either channel.
struct Shopper<'w> {
    w: &'w World,
    channel: Channel,
    /// Messages to them seen so far.
    seen: usize,
    /// The choice the last `Offers` found.
    choice: Option<String>,
    /// WhatsApp: every delivery goes three times (twice at once, once after the next message's).
    replay: bool,
    /// WhatsApp: this shopper's messages so far (their wamids count up) and the body still
    /// owed its last redelivery.
    n: u32,
    owed: Option<String>,
}

impl<'w> Shopper<'w> {
    fn new(w: &'w World, channel: Channel, replay: bool) -> Shopper<'w> {
        Shopper { w, channel, seen: 0, choice: None, replay, n: 0, owed: None }
    }

    fn wa_number(&self) -> String {
        match self.channel {
            Channel::WhatsApp(n) => format!("628{n:09}"),
            Channel::Telegram(chat) => panic!("chat {chat} is on Telegram"),
        }
    }

    /// The texts of every message sent to them (edits included), in order.
    fn texts(&self) -> Vec<String> {
        match self.channel {
            Channel::Telegram(chat) => self.w.telegram.sent_to(BLIMBING, chat).into_iter().map(|m| m.text).collect(),
            Channel::WhatsApp(_) => self.w.graph.sent_to(&self.wa_number()).iter().map(|m| m.text()).collect(),
        }
    }

    /// Their messages' choices: (label, payload) of each message's buttons or list rows.
    fn choices(&self) -> Vec<Vec<(String, String)>> {
        match self.channel {
            Channel::Telegram(chat) => self
                .w
                .telegram
                .sent_to(BLIMBING, chat)
                .into_iter()
                .map(|m| {
                    m.markup["inline_keyboard"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
                        .map(|b| {
                            (
                                b["text"].as_str().unwrap_or_default().to_string(),
                                b["callback_data"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                })
                .collect(),
            Channel::WhatsApp(_) => self.w.graph.sent_to(&self.wa_number()).iter().map(|m| m.choices()).collect(),
        }
    }

    fn send(&mut self, input: Input) {
        let payload = match input {
            Input::Text(_) => None,
            Input::Press(p) => Some(p.to_string()),
            Input::Choice => Some(self.choice.take().expect("a choice was offered")),
        };
        match self.channel {
            Channel::Telegram(chat) => match (input, payload) {
                (Input::Text(text), _) => {
                    self.w.telegram.text(BLIMBING, chat, text);
                }
                (_, Some(p)) => {
                    self.w.telegram.press(BLIMBING, chat, &p);
                }
                _ => unreachable!(),
            },
            Channel::WhatsApp(_) => {
                self.n += 1;
                let (from, wamid) = (self.wa_number(), format!("wamid.faults.{}.{}", self.wa_number(), self.n));
                let body = match (input, payload) {
                    (Input::Text(text), _) => fixture("text.json", &from, &wamid, &[("__TEXT__", text)]),
                    (Input::Press(_), Some(p)) => fixture("button_reply.json", &from, &wamid, &[("__PAYLOAD__", &p)]),
                    (_, Some(p)) => fixture("list_reply.json", &from, &wamid, &[("__PAYLOAD__", &p)]),
                    _ => unreachable!(),
                };
                let port = self.w.port();
                if self.replay {
                    // Twice at once (racing for the inbox), then the previous message's last
                    // redelivery after this one: older after newer.
                    std::thread::scope(|s| {
                        let twin = s.spawn(|| deliver(port, &body));
                        assert_eq!(deliver(port, &body), 200);
                        assert_eq!(twin.join().expect("twin"), 200);
                    });
                    if let Some(old) = self.owed.replace(body) {
                        assert_eq!(deliver(port, &old), 200);
                    }
                } else {
                    assert_eq!(deliver(port, &body), 200);
                }
            }
        }
    }

    /// Waits (up to a minute) for what they expect; returns the text of the message found.
    fn expect(&mut self, expect: Expect) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let texts = self.texts();
            let choices = self.choices();
            for (i, text) in texts.iter().enumerate().skip(self.seen) {
                let found = match expect {
                    Expect::Says(needle) => text.contains(needle),
                    Expect::AnyOf(needles) => needles.iter().any(|n| text.contains(n)),
                    Expect::Offers(label) => {
                        match choices.get(i).and_then(|c| c.iter().find(|(l, _)| l.contains(label))) {
                            Some((_, payload)) => {
                                self.choice = Some(payload.clone());
                                true
                            }
                            None => false,
                        }
                    }
                };
                if found {
                    self.seen = i + 1;
                    return text.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{:?} never got {}; got: {texts:#?}",
                self.channel,
                match expect {
                    Expect::Says(s) | Expect::Offers(s) => s.to_string(),
                    Expect::AnyOf(s) => s.join(" | "),
                }
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn step(&mut self, input: Input, expect: Expect) -> String {
        self.send(input);
        self.expect(expect)
    }

    /// Their last WhatsApp message's third delivery, still owed.
    fn finish(&mut self) {
        if let Some(old) = self.owed.take() {
            assert_eq!(deliver(self.w.port(), &old), 200);
        }
    }

    /// From the search to the order's summary: `amount` of bawang merah from the world's stall,
    /// a typed address, tomorrow's first slot, cash on delivery.
    fn up_to_the_summary(&mut self, name: &str, amount: &str) {
        let stall = self.w.stall.clone();
        self.step(Input::Text("brambang"), Expect::Offers(&stall));
        self.step(Input::Choice, Expect::Says("Mau berapa"));
        self.step(Input::Text(amount), Expect::Says("masuk keranjang"));
        self.step(Input::Press("checkout"), Expect::Says("atas nama siapa"));
        self.step(Input::Text(name), Expect::Says("Nomor HP"));
        self.step(Input::Text("0812-3456-7890"), Expect::Says("Kirim ke mana"));
        self.step(Input::Text("Jl. Borobudur No. 12, Purwodadi"), Expect::Offers("Besok"));
        self.step(Input::Choice, Expect::Says("Bayar pakai apa"));
        self.step(Input::Press("pay:cod"), Expect::Says("catatan"));
        self.step(Input::Press("note:none"), Expect::Says("Ringkasan"));
    }

    /// The user id their orders and messages are stored under.
    fn user_id(&self) -> String {
        match self.channel {
            Channel::Telegram(chat) => chat.to_string(),
            Channel::WhatsApp(_) => self.wa_number(),
        }
    }
}

/// Numbers vary between runs (order numbers, stock left as `19,5 kg` or `20 kg`, amounts):
/// each is compared as one `#`.
fn shape(text: &str) -> String {
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

#[test]
fn shapes_hide_every_number() {
    assert_eq!(shape("BLB-0001: sisa 19,5 kg, Rp 33.500/kg."), shape("BLB-0012: sisa 20 kg, Rp 100.500/kg."));
    assert_eq!(shape("1. a, 2."), "#. a, #.");
}

/// The replay scenario's shoppers: three on Telegram, three on WhatsApp, each with an amount.
const JOURNEYS: [(Channel, &str, &str, i64); 6] = [
    (Channel::Telegram(1001), "Ani Rahayu", "1 kg", 1000),
    (Channel::Telegram(1002), "Budi Santoso", "1/2 kg", 500),
    (Channel::Telegram(1003), "Citra Lestari", "2 kg", 2000),
    (Channel::WhatsApp(1), "Dewi Sartika", "1,5 kg", 1500),
    (Channel::WhatsApp(2), "Eko Prasetyo", "3 kg", 3000),
    (Channel::WhatsApp(3), "Fajar Nugroho", "1 kg", 1000),
];
const REPLAY_STOCK: i64 = 20_000;

/// The admin invites the stall's trader; every shopper of `JOURNEYS` orders at once (each on
/// their own thread); the trader accepts every order and each shopper is told. Returns each
/// one's messages (shaped; the trader's sorted, as the orders come in any order; the admin's only
/// counted, the invite code being random) after everything went out, and the world (stopped).
fn journeys(replay: bool) -> (Harness, World, BTreeMap<String, Vec<String>>) {
    let (h, mut w) = world(REPLAY_STOCK);
    if replay {
        w.telegram.redeliver_each(BLIMBING, 2);
    }
    let mut admin = Shopper::new(&w, Channel::Telegram(ADMIN), replay);
    let invite = admin.step(Input::Text(&format!("/undang {}", w.stall_number)), Expect::Says("Kode undangan"));
    let code = invite.split("/daftar ").nth(1).expect("code").trim().to_string();
    let mut trader = Shopper::new(&w, Channel::Telegram(TRADER), replay);
    trader.step(Input::Text(&format!("/daftar {code}")), Expect::Says("Selamat bergabung"));
    let mut shoppers: Vec<Shopper> = std::thread::scope(|s| {
        let handles: Vec<_> = JOURNEYS
            .iter()
            .map(|&(channel, name, amount, _)| {
                let w = &w;
                s.spawn(move || {
                    let mut shopper = Shopper::new(w, channel, replay);
                    shopper.up_to_the_summary(name, amount);
                    let placed = shopper.step(Input::Press("place"), Expect::Says("sudah kami terima"));
                    assert!(placed.contains("BLB-"), "{placed}");
                    shopper
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("shopper")).collect()
    });
    // The trader accepts each order (the presses redelivered like everything else).
    let deadline = Instant::now() + Duration::from_secs(60);
    let orders = loop {
        let orders: Vec<_> = w
            .telegram
            .sent_to(BLIMBING, TRADER)
            .into_iter()
            .filter(|m| m.text.starts_with("🛒 Pesanan baru"))
            .collect();
        if orders.len() >= JOURNEYS.len() {
            break orders;
        }
        assert!(Instant::now() < deadline, "the trader got {} orders", orders.len());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(orders.len(), JOURNEYS.len(), "one new order each");
    for order in &orders {
        w.telegram.press(BLIMBING, TRADER, &order.button("Terima").expect("Terima"));
    }
    for shopper in &mut shoppers {
        shopper.expect(Expect::Says("menerima pesanan"));
        shopper.finish();
    }
    if replay {
        // The redeliveries still owed come now, in batches of their own; once they all came,
        // the poll after the last of them shows it was stored.
        w.telegram.flush_redeliveries(BLIMBING);
        let deadline = Instant::now() + Duration::from_secs(60);
        while w.telegram.redeliveries_owed(BLIMBING) > 0 {
            assert!(Instant::now() < deadline, "redeliveries still owed");
            std::thread::sleep(Duration::from_millis(20));
        }
        let polls = w.telegram.polls(BLIMBING);
        while w.telegram.polls(BLIMBING) <= polls {
            assert!(Instant::now() < deadline, "the poller stopped");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Each update came exactly three times: once new, twice again.
        let deliveries = w.telegram.deliveries(BLIMBING);
        let updates = 2 + 3 * 11 + JOURNEYS.len();
        assert_eq!(deliveries.len(), updates, "{deliveries:?}");
        assert!(deliveries.values().all(|n| *n == 3), "{deliveries:?}");
        assert!(w.telegram.redelivered(BLIMBING).values().all(|n| *n == 2));
    }
    w.wait_quiet();
    let mut messages = BTreeMap::new();
    for shopper in &shoppers {
        messages.insert(shopper.user_id(), shopper.texts().iter().map(|t| shape(t)).collect());
    }
    let mut trader_messages: Vec<String> = trader.texts().iter().map(|t| shape(t)).collect();
    trader_messages.sort();
    messages.insert("trader".into(), trader_messages);
    messages.insert("admin".into(), vec![admin.texts().len().to_string()]);
    drop(shoppers);
    w.stop();
    (h, w, messages)
}

#[test]
fn every_update_delivered_three_times_and_out_of_order_has_one_effect() {
    let started = Instant::now();
    let (_, _, reference) = journeys(false);
    let (_h, w, replayed) = journeys(true);

    // The same replies as without redeliveries: none doubled, none missing.
    for (user, want) in &reference {
        let got = &replayed[user];
        assert_eq!(got, want, "the replies to {user}");
    }
    let replies: usize = reference.iter().filter(|(k, _)| *k != "admin").map(|(_, v)| v.len()).sum();
    assert_eq!(
        w.one("SELECT COUNT(*) FROM sub_orders WHERE status = 'accepted'"),
        JOURNEYS.len() as i64,
        "each order accepted once"
    );
    assert_eq!(w.one("SELECT COUNT(*) FROM inbox WHERE user_id IN ('9001', '2002')"), 2 + JOURNEYS.len() as i64);
    // Each update stored once (the eleven steps of a journey), each handled.
    for (channel, ..) in JOURNEYS {
        let user = Shopper::new(&w, channel, true).user_id();
        let stored = w.one(&format!("SELECT COUNT(*) FROM inbox WHERE user_id = '{user}'"));
        assert_eq!(stored, 11, "{user}'s updates stored");
        let orders = w.one(&format!("SELECT COUNT(*) FROM orders WHERE user_id = '{user}'"));
        assert_eq!(orders, 1, "{user} has exactly one order");
        // Each outbox row was sent (once: the fake saw the same messages as the clean run).
        let rows = w.one(&format!("SELECT COUNT(*) FROM outbox WHERE recipient = '{user}' AND status = 'sent'"));
        assert!(rows > 0 && rows as usize <= replayed[&user].len(), "{user}: {rows} rows");
    }
    assert_eq!(w.one("SELECT COUNT(*) FROM orders"), JOURNEYS.len() as i64);
    assert_eq!(w.one("SELECT COUNT(DISTINCT number) FROM orders"), JOURNEYS.len() as i64);
    assert_eq!(w.one("SELECT COUNT(*) FROM inbox WHERE status <> 'done'"), 0);
    // Stock taken once per order.
    let ordered: i64 = JOURNEYS.iter().map(|j| j.3).sum();
    assert_eq!(w.one(&format!("SELECT SUM(quantity_base) FROM order_lines WHERE offer_id = {}", w.offer)), ordered);
    assert_eq!(w.one(&format!("SELECT stock FROM offers WHERE id = {}", w.offer)), REPLAY_STOCK - ordered);
    assert_eq!(w.integrity_check(), "ok");
    eprintln!(
        "replay: {} journeys and the trader's acceptances, {} updates each delivered 3 times, {replies} replies each sent once, {:?}",
        JOURNEYS.len(),
        w.one("SELECT COUNT(*) FROM inbox"),
        started.elapsed()
    );
}

/// Shoppers a channel in a race.
const PER_CHANNEL: usize = 10;

#[test]
fn the_last_kilo_goes_to_exactly_one_of_twenty_shoppers() {
    let accepted = race("last kilo", 1_000, &[("1 kg", 1000)]);
    assert_eq!(accepted, 1);
}

#[test]
fn twenty_shoppers_racing_for_the_last_kilos_with_different_amounts_never_oversell() {
    race("last kilos", 7_000, &[("1 kg", 1000), ("1/2 kg", 500), ("1,5 kg", 1500), ("2 kg", 2000)]);
}

/// Ten shoppers a channel, each ordering one of `amounts` (amount as typed, grams) in turn,
/// press "Pesan sekarang" at the same moment for a stall that has `stock` grams: never oversold,
/// everyone answered, nobody refused while enough was left for them, the database agreeing with
/// the answers. Returns how many orders were placed.
fn race(what: &str, stock: i64, amounts: &[(&str, i64)]) -> usize {
    let started = Instant::now();
    let (_h, mut w) = world(stock);
    let shoppers: Vec<(Channel, usize)> = (0..PER_CHANNEL)
        .flat_map(|i| [(Channel::Telegram(5000 + i as i64), i), (Channel::WhatsApp(500 + i as u64), i + 1)])
        .collect();
    let ready = std::sync::Barrier::new(shoppers.len());
    // Each shopper's user id, amount and answer.
    let answers: Vec<(String, i64, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = shoppers
            .iter()
            .map(|&(channel, i)| {
                let (w, ready) = (&w, &ready);
                s.spawn(move || {
                    let (amount, grams) = amounts[i % amounts.len()];
                    let mut shopper = Shopper::new(w, channel, false);
                    shopper.up_to_the_summary("Pembeli Setia", amount);
                    // Everyone presses "Pesan sekarang" at the same moment.
                    ready.wait();
                    let answer = shopper.step(
                        Input::Press("place"),
                        Expect::AnyOf(&["sudah kami terima", "baru saja habis", "di lapak itu tinggal"]),
                    );
                    (shopper.user_id(), grams, answer)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("shopper")).collect()
    });
    w.wait_quiet();
    w.stop();

    let accepted: Vec<&(String, i64, String)> = answers.iter().filter(|a| a.2.contains("sudah kami terima")).collect();
    let refused: Vec<&(String, i64, String)> = answers.iter().filter(|a| !a.2.contains("sudah kami terima")).collect();
    let sold: i64 = accepted.iter().map(|a| a.1).sum();
    assert!(sold <= stock, "oversold: {sold} g of {stock} g");
    let left = w.one(&format!("SELECT stock FROM offers WHERE id = {}", w.offer));
    assert_eq!(left, stock - sold, "the stock is what was not sold");
    assert!(left >= 0);
    // Nobody was refused while enough was left for them (stock only went down meanwhile).
    for (user, grams, answer) in &refused {
        assert!(*grams > left, "{user} was refused {grams} g with {left} g left: {answer}");
    }
    // The database agrees with the answers: one order per accepted shopper, none for the others.
    assert_eq!(w.one("SELECT COUNT(*) FROM orders"), accepted.len() as i64);
    for (user, ..) in &accepted {
        assert_eq!(w.one(&format!("SELECT COUNT(*) FROM orders WHERE user_id = '{user}'")), 1, "{user}");
    }
    assert_eq!(w.one(&format!("SELECT SUM(quantity_base) FROM order_lines WHERE offer_id = {}", w.offer)), sold);
    assert_eq!(w.one("SELECT COUNT(DISTINCT number) FROM orders"), accepted.len() as i64);
    assert!(!accepted.is_empty() && !refused.is_empty(), "a race has winners and losers");
    assert_eq!(w.integrity_check(), "ok");
    // How close together the presses of "Pesan sekarang" were stored.
    let presses = w.one("SELECT COUNT(*) FROM inbox WHERE event LIKE '%\"place\"%'");
    assert_eq!(presses, answers.len() as i64);
    let spread = w.one(
        "SELECT CAST((julianday(MAX(received_at)) - julianday(MIN(received_at))) * 86400000 AS INTEGER)
           FROM inbox WHERE event LIKE '%\"place\"%'",
    );
    eprintln!(
        "{what}: {} shoppers, {} orders ({sold} g of {stock} g), the {presses} presses stored within {spread} ms, {} refused, {left} g left, {:?}",
        answers.len(),
        accepted.len(),
        refused.len(),
        started.elapsed()
    );
    accepted.len()
}
