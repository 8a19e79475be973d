//! The world of the fault scenarios (`replay`, `last-unit`, `abuse`): `pasar run` as a child
//! process serving some of the ten markets on Telegram (the fake Bot API of
//! [`crate::fakes::telegram`]) and WhatsApp (signed webhooks posted to its HTTP server, replies
//! caught by the fake Graph API of [`crate::fakes::graph`]), on a temp database made and seeded
//! here through the engine; and shoppers who chat with it on either channel, each on a thread of
//! their own, waiting for the bot's answers the way a person reads them.
//!
//! The checks read the database file (read-only SQL, as an operator would). Nothing here reaches
//! the internet: every server is on 127.0.0.1.

use crate::channel::whatsapp::sign;
use crate::config::Config;
use crate::conversation::engine::{Clock, SystemClock};
use crate::fakes::graph::FakeGraph;
use crate::fakes::telegram::FakeTelegram;
use anyhow::{Context, anyhow, bail, ensure};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The admin of every market (from the config), on Telegram.
pub(super) const ADMIN: i64 = 9001;
/// The trader of the raced-for stall of every market, on Telegram (a chat of each bot).
pub(super) const TRADER: i64 = 2002;
pub(super) const APP_SECRET: &str = "app-secret-for-loadtest";
/// How long one awaited answer may take before the scenario is declared broken.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a waiting shopper looks for the answer.
const LOOK_EVERY: Duration = Duration::from_millis(25);

/// One market as the world serves it.
pub(super) struct MarketSetup {
    pub slug: String,
    /// Its bot's token on the fake Bot API.
    pub token: String,
    /// Its WhatsApp phone number id.
    pub number: String,
    /// The offer of bawang merah raced for (the market's first stall selling it), its stall's
    /// name (what its button or list row shows) and number (for `/undang`).
    pub offer: i64,
    pub stall: String,
    pub stall_number: String,
    /// A typed address in its delivery area.
    pub address: String,
    /// The three letters its order numbers start with (`BLB`).
    pub code: String,
}

/// What to start.
pub(super) struct WorldOptions<'a> {
    /// The first this many of the ten markets (in `data/markets.toml` order).
    pub markets: usize,
    /// Grams of bawang merah at each market's raced-for stall; `None` keeps the seed's stock.
    pub stock: Option<i64>,
    /// Admins of every market besides [`ADMIN`]: (channel, user).
    pub admins: &'a [(&'a str, &'a str)],
    /// The fakes refuse what the real platforms refuse for its size.
    pub strict: bool,
    /// Telegram's real send limits (1 a second per chat, 30 per bot) instead of none.
    pub real_limits: bool,
    /// The flood rule's messages per person (`[inbound] per_user_messages`), if not the default.
    pub per_user_messages: Option<u32>,
}

/// `pasar run` and its fakes; `pasar run` is killed when dropped.
pub(super) struct World {
    pub telegram: FakeTelegram,
    pub graph: FakeGraph,
    pub markets: Vec<MarketSetup>,
    pub db: PathBuf,
    pub port: u16,
    /// Its operators' listener (`/healthz` with detail, `/metrics`).
    pub ops_port: u16,
    stderr: PathBuf,
    pasar: std::sync::Mutex<Option<Child>>,
    _dir: tempfile::TempDir,
}

impl World {
    /// Makes the database, starts the fakes and `pasar` (the `pasar` binary) `run` on them, and
    /// waits until its HTTP server answers as ours.
    pub fn start(pasar: &Path, options: &WorldOptions) -> anyhow::Result<World> {
        let all = super::markets()?;
        ensure!((1..=all.len()).contains(&options.markets), "between 1 and {} markets", all.len());
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("pasar.db");
        let markets = {
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let engine = crate::runtime::open_engine(&Config::default(), &db, clock)?;
            let catalog = engine.catalog();
            all.iter()
                .take(options.markets)
                .enumerate()
                .map(|(i, m)| {
                    let offer = *catalog
                        .offers_for(&m.slug, "bawang-merah")
                        .first()
                        .ok_or_else(|| anyhow!("no bawang merah at {}", m.slug))?;
                    let stall = catalog.stall(offer.stall_id).ok_or_else(|| anyhow!("no stall {}", offer.stall_id))?;
                    let market = catalog.market(&m.slug).ok_or_else(|| anyhow!("no market {}", m.slug))?;
                    let kelurahan =
                        market.kelurahan.first().ok_or_else(|| anyhow!("{} delivers to no kelurahan", m.slug))?;
                    Ok(MarketSetup {
                        slug: m.slug.clone(),
                        token: format!("{}:loadtest-{}", 7101 + i, m.slug),
                        number: (1001 + i).to_string(),
                        offer: offer.id,
                        stall: stall.name.clone(),
                        stall_number: stall.number.clone(),
                        address: format!("Jl. Pasar No. 12, {kelurahan}"),
                        code: market.code.clone(),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        };
        {
            let conn = rusqlite::Connection::open(&db)?;
            if let Some(stock) = options.stock {
                for m in &markets {
                    conn.execute("UPDATE offers SET stock = ?1 WHERE id = ?2", [stock, m.offer])?;
                }
            }
            // Slots are not what is raced for here: a full one would refuse an order for another
            // reason than its stock.
            conn.execute("UPDATE markets SET slot_capacity = 10000", [])?;
        }
        let tokens: Vec<&str> = markets.iter().map(|m| m.token.as_str()).collect();
        let telegram = FakeTelegram::start(&tokens);
        let graph = FakeGraph::start();
        if options.strict {
            for t in &tokens {
                telegram.strict(t);
            }
            graph.strict();
        }
        let mut world = World {
            telegram,
            graph,
            markets,
            db,
            port: 0,
            ops_port: 0,
            stderr: PathBuf::new(),
            pasar: std::sync::Mutex::new(None),
            _dir: dir,
        };
        world.spawn(pasar, options)?;
        Ok(world)
    }

    fn spawn(&mut self, pasar: &Path, options: &WorldOptions) -> anyhow::Result<()> {
        let dir = self._dir.path().to_path_buf();
        let slugs: Vec<String> = self.markets.iter().map(|m| format!("\"{}\"", m.slug)).collect();
        let slugs = slugs.join(", ");
        let deadline = Instant::now() + Duration::from_secs(60);
        let (per_chat, per_bot) = if options.real_limits { (1, 30) } else { (1000, 1000) };
        for attempt in 0.. {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let ops_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            // A verify token of this start's own: a server on the port that answers with it is ours.
            let verify = format!("verify-loadtest-{}-{port}", std::process::id());
            let mut config = format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\nops_listen = \"127.0.0.1:{ops_port}\"\n\
                 [whatsapp]\ngraph_url = \"{}\"\ntimeout_secs = 5\n\
                 [whatsapp.limits]\nper_number_per_sec = 1000\nper_user_interval_secs = 0\n\
                 [telegram]\napi_url = \"{}\"\npoll_timeout_secs = 1\n\
                 [telegram.limits]\nper_chat_per_sec = {per_chat}\nper_bot_per_sec = {per_bot}\n\
                 [[admins]]\nchannel = \"telegram\"\nuser = \"{ADMIN}\"\nmarkets = [{slugs}]\n",
                self.graph.url, self.telegram.url
            );
            if let Some(n) = options.per_user_messages {
                config.push_str(&format!("[inbound]\nper_user_messages = {n}\n"));
            }
            for (channel, user) in options.admins {
                config.push_str(&format!(
                    "[[admins]]\nchannel = \"{channel}\"\nuser = \"{user}\"\nmarkets = [{slugs}]\n"
                ));
            }
            for m in &self.markets {
                config.push_str(&format!("[markets.{}]\nwhatsapp_phone_number_id = \"{}\"\n", m.slug, m.number));
            }
            let path = dir.join("config.toml");
            std::fs::write(&path, config)?;
            let stderr = dir.join(format!("stderr-{attempt}.log"));
            let mut command = Command::new(pasar);
            command
                .arg("--config")
                .arg(&path)
                .args(["run", "--db"])
                .arg(&self.db)
                .current_dir(&dir)
                .env_remove("PASAR_DB")
                .env("PASAR_INVITE_SECRET", "loadtest-invite-secret")
                .env_remove("PASAR_CONFIG")
                .env("PASAR_WHATSAPP_ACCESS_TOKEN", "graph-token")
                .env("PASAR_WHATSAPP_APP_SECRET", APP_SECRET)
                .env("PASAR_WHATSAPP_VERIFY_TOKEN", &verify)
                .env("NO_COLOR", "1")
                .env("PASAR_LOG", std::env::var("PASAR_LOADTEST_LOG").unwrap_or_else(|_| "warn".into()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&stderr)?);
            for m in &self.markets {
                command.env(crate::channel::telegram::token_variable(&m.slug), &m.token);
            }
            let mut child = command.spawn().with_context(|| format!("starting {}", pasar.display()))?;
            let check = format!(
                "GET /whatsapp?hub.mode=subscribe&hub.verify_token={verify}&hub.challenge=42 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            loop {
                if http(port, check.as_bytes()) == (200, "42".to_string()) {
                    (self.port, self.ops_port, self.stderr, self.pasar) =
                        (port, ops_port, stderr, std::sync::Mutex::new(Some(child)));
                    return Ok(());
                }
                if child.try_wait()?.is_some() {
                    break; // The port was taken meanwhile: another one.
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("pasar run did not start within a minute (its log: {})", stderr.display());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            ensure!(Instant::now() < deadline, "pasar run did not start within a minute");
        }
        unreachable!("the loop above returns or fails")
    }

    /// Fails if `pasar run` exited or wrote a panic to its log.
    pub fn check_alive(&self) -> anyhow::Result<()> {
        let mut pasar = self.pasar.lock().map_err(|_| anyhow!("a thread panicked holding pasar run"))?;
        if let Some(child) = pasar.as_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!("pasar run exited: {status}");
        }
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
        ensure!(panics.is_empty(), "pasar run panicked:\n{}", panics.join("\n"));
        Ok(())
    }

    /// `pasar run`'s log (its standard error) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Stops `pasar run` (SIGKILL: everything it did is committed or not at all).
    pub fn stop(&self) {
        let child = self.pasar.lock().map(|mut p| p.take()).unwrap_or_else(|poisoned| poisoned.into_inner().take());
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A single-number query on the database file.
    pub fn one(&self, sql: &str) -> anyhow::Result<i64> {
        let conn = rusqlite::Connection::open(&self.db)?;
        conn.query_row(sql, [], |r| r.get(0)).with_context(|| sql.to_string())
    }

    /// Fails unless SQLite finds the file sound.
    pub fn check_integrity(&self) -> anyhow::Result<()> {
        let conn = rusqlite::Connection::open(&self.db)?;
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        ensure!(check == "ok", "integrity_check: {check}");
        Ok(())
    }

    /// Waits (up to a minute) until everything stored was handled and every reply went out.
    pub fn wait_quiet(&self) -> anyhow::Result<()> {
        for sql in [
            "SELECT COUNT(*) FROM inbox WHERE status NOT IN ('done', 'skipped')",
            "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'",
        ] {
            let deadline = Instant::now() + ANSWER_TIMEOUT;
            loop {
                let n = self.one(sql)?;
                if n == 0 {
                    break;
                }
                ensure!(Instant::now() < deadline, "`{sql}` stayed {n} for a minute");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Posts a WhatsApp webhook body signed with the app secret, as Meta does; the status.
    pub fn deliver(&self, body: &str) -> u16 {
        let signature = sign(APP_SECRET.as_bytes(), body.as_bytes());
        post(self.port, "/whatsapp", body.as_bytes(), &[("X-Hub-Signature-256", &signature)])
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(super) use crate::fakes::{http, post_bytes as post};

/// A WhatsApp delivery of one message from `from` to the number `number`.
pub(super) fn wa_delivery(from: &str, number: &str, message: Value) -> String {
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

/// A shopper's choice on WhatsApp: a reply button pressed, or a list row picked.
pub(super) fn wa_choice(id: &str, list: bool) -> Value {
    let kind = if list { "list_reply" } else { "button_reply" };
    json!({"type": "interactive", "interactive": {"type": kind, kind: {"id": id, "title": "Pilih"}}})
}

/// A message as a webhook carries it: `content` (its `type` and body) from `from`, with its wamid.
pub(super) fn wa_message(from: &str, wamid: &str, mut content: Value) -> Value {
    content["from"] = json!(from);
    content["id"] = json!(wamid);
    content["timestamp"] = json!("1764300000");
    content
}

/// What a shopper does next.
#[derive(Clone, Copy)]
pub(super) enum Input<'a> {
    Text(&'a str),
    Press(&'a str),
    /// Presses (or picks from a list) the choice the last `Offers` found.
    Choice,
}

/// What the shopper waits for after it.
#[derive(Clone, Copy)]
pub(super) enum Expect<'a> {
    /// A message containing this.
    Says(&'a str),
    /// A message offering a button or list row labelled with this.
    Offers(&'a str),
    /// A message containing any of these.
    AnyOf(&'a [&'a str]),
}

/// Where a shopper chats.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Channel {
    /// A chat id on the market's bot.
    Telegram(i64),
    /// A WhatsApp user, by a number of the scenario's (see [`Shopper::wa_number`]).
    WhatsApp(u64),
}

/// One shopper's chat with one market's bot on either channel.
pub(super) struct Shopper<'w> {
    w: &'w World,
    market: usize,
    pub channel: Channel,
    /// Messages to them seen so far.
    seen: usize,
    /// The choice the last `Offers` found.
    choice: Option<String>,
    /// Every delivery comes three times: on Telegram the fake redelivers (set up by the caller);
    /// on WhatsApp twice at once, once after the next message's.
    replay: bool,
    /// WhatsApp: this shopper's messages so far (their wamids count up) and the body still owed
    /// its last redelivery.
    n: u32,
    owed: Option<String>,
    /// WhatsApp bodies posted (redeliveries included).
    pub posts: usize,
}

impl<'w> Shopper<'w> {
    pub fn new(w: &'w World, market: usize, channel: Channel, replay: bool) -> Shopper<'w> {
        Shopper { w, market, channel, seen: 0, choice: None, replay, n: 0, owed: None, posts: 0 }
    }

    fn token(&self) -> &str {
        &self.w.markets[self.market].token
    }

    /// A WhatsApp user's number: `628` and nine digits.
    pub fn wa_number(n: u64) -> String {
        format!("628{n:09}")
    }

    /// The user id their orders and messages are stored under.
    pub fn user_id(&self) -> String {
        match self.channel {
            Channel::Telegram(chat) => chat.to_string(),
            Channel::WhatsApp(n) => Shopper::wa_number(n),
        }
    }

    /// The texts of every message sent to them (edits included) and each one's choices
    /// ((label, payload) of its buttons or list rows), in order.
    pub fn messages(&self) -> Vec<(String, Vec<(String, String)>)> {
        match self.channel {
            Channel::Telegram(chat) => self
                .w
                .telegram
                .sent_to(self.token(), chat)
                .into_iter()
                .map(|m| {
                    let choices = m.markup["inline_keyboard"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
                        .map(|b| {
                            (
                                b["text"].as_str().unwrap_or_default().to_string(),
                                b["callback_data"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect();
                    (m.text, choices)
                })
                .collect(),
            Channel::WhatsApp(n) => {
                self.w.graph.sent_to(&Shopper::wa_number(n)).iter().map(|m| (m.text(), m.choices())).collect()
            }
        }
    }

    /// The texts of every message sent to them, in order.
    pub fn texts(&self) -> Vec<String> {
        self.messages().into_iter().map(|(t, _)| t).collect()
    }

    pub fn send(&mut self, input: Input) -> anyhow::Result<()> {
        let payload = match input {
            Input::Text(_) => None,
            Input::Press(p) => Some(p.to_string()),
            Input::Choice => Some(self.choice.take().ok_or_else(|| anyhow!("{:?}: no choice offered", self.channel))?),
        };
        match self.channel {
            Channel::Telegram(chat) => {
                match (input, payload) {
                    (Input::Text(text), _) => self.w.telegram.text(self.token(), chat, text),
                    (_, Some(p)) => self.w.telegram.press(self.token(), chat, &p),
                    (_, None) => unreachable!("a press has a payload"),
                };
            }
            Channel::WhatsApp(n) => {
                self.n += 1;
                let from = Shopper::wa_number(n);
                let wamid = format!("wamid.loadtest.{from}.{}", self.n);
                let content = match (input, payload) {
                    (Input::Text(text), _) => json!({"type": "text", "text": {"body": text}}),
                    (Input::Press(_), Some(p)) => wa_choice(&p, false),
                    (_, Some(p)) => wa_choice(&p, true),
                    (_, None) => unreachable!("a press has a payload"),
                };
                let message = wa_message(&from, &wamid, content);
                let body = wa_delivery(&from, &self.w.markets[self.market].number, message);
                let w = self.w;
                let ok = |status: u16| {
                    ensure!(status == 200, "a WhatsApp delivery from {from} got {status}");
                    Ok(())
                };
                if self.replay {
                    // Twice at once (racing for the inbox), then the previous message's last
                    // redelivery after this one: older after newer.
                    let (a, b) = std::thread::scope(|s| {
                        let twin = s.spawn(|| w.deliver(&body));
                        (w.deliver(&body), twin.join().unwrap_or(0))
                    });
                    ok(a)?;
                    ok(b)?;
                    self.posts += 2;
                    if let Some(old) = self.owed.replace(body) {
                        ok(w.deliver(&old))?;
                        self.posts += 1;
                    }
                } else {
                    ok(w.deliver(&body))?;
                    self.posts += 1;
                }
            }
        }
        Ok(())
    }

    /// Waits (up to a minute) for what they expect; returns the text of the message found.
    pub fn expect(&mut self, expect: Expect) -> anyhow::Result<String> {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let messages = self.messages();
            for (i, (text, choices)) in messages.iter().enumerate().skip(self.seen) {
                let found = match expect {
                    Expect::Says(needle) => text.contains(needle),
                    Expect::AnyOf(needles) => needles.iter().any(|n| text.contains(n)),
                    Expect::Offers(label) => match choices.iter().find(|(l, _)| l.contains(label)) {
                        Some((_, payload)) => {
                            self.choice = Some(payload.clone());
                            true
                        }
                        None => false,
                    },
                };
                if found {
                    self.seen = i + 1;
                    return Ok(text.clone());
                }
            }
            if Instant::now() > deadline {
                let wanted = match expect {
                    Expect::Says(s) | Expect::Offers(s) => s.to_string(),
                    Expect::AnyOf(s) => s.join(" | "),
                };
                let got: Vec<&String> = messages.iter().skip(self.seen).map(|(t, _)| t).collect();
                bail!(
                    "{} {:?} waited a minute for {wanted:?}; got since: {got:#?}",
                    self.w.markets[self.market].slug,
                    self.channel
                );
            }
            std::thread::sleep(LOOK_EVERY);
        }
    }

    pub fn step(&mut self, input: Input, expect: Expect) -> anyhow::Result<String> {
        self.send(input)?;
        self.expect(expect)
    }

    /// Their last WhatsApp message's third delivery, still owed.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        if let Some(old) = self.owed.take() {
            let status = self.w.deliver(&old);
            ensure!(status == 200, "a WhatsApp redelivery got {status}");
            self.posts += 1;
        }
        Ok(())
    }

    /// From the search to the order's summary: `amount` of bawang merah from the market's
    /// raced-for stall, a typed address in its delivery area, tomorrow's first slot, cash on
    /// delivery (10 steps).
    pub fn up_to_the_summary(&mut self, name: &str, amount: &str) -> anyhow::Result<()> {
        let (stall, address) = (self.w.markets[self.market].stall.clone(), self.w.markets[self.market].address.clone());
        self.step(Input::Text("brambang"), Expect::Offers(&stall))?;
        self.step(Input::Choice, Expect::Says("Mau berapa"))?;
        self.step(Input::Text(amount), Expect::Says("masuk keranjang"))?;
        self.step(Input::Press("checkout"), Expect::Says("atas nama siapa"))?;
        self.step(Input::Text(name), Expect::Says("Nomor HP"))?;
        self.step(Input::Text("0812-3456-7890"), Expect::Says("Kirim ke mana"))?;
        self.step(Input::Text(&address), Expect::Offers("Besok"))?;
        self.step(Input::Choice, Expect::Says("Bayar pakai apa"))?;
        self.step(Input::Press("pay:cod"), Expect::Says("catatan"))?;
        self.step(Input::Press("note:none"), Expect::Says("Ringkasan"))?;
        Ok(())
    }
}

/// Joins scoped threads' results: every thread's value, or the first failure (a thread that
/// panicked is a failure too).
pub(super) fn join_all<T>(
    handles: Vec<std::thread::ScopedJoinHandle<'_, anyhow::Result<T>>>,
) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::with_capacity(handles.len());
    let mut first_error = None;
    for h in handles {
        match h.join() {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(anyhow!("a shopper's thread panicked"));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}
