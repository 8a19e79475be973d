//! Shared test helpers: an engine on a temp SQLite file with a fixed clock, and a harness that
//! speaks to it like a channel would.
#![allow(dead_code)]

pub mod fake_bank;
pub mod fake_telegram;
// The fakes live in the library (`pasar loadtest` uses them too); not every test uses both.
#[allow(unused_imports)]
pub use pasar_online::fakes::{graph as fake_graph, serve_on_thread};
pub mod fake_vendor;
pub mod market;

use chrono::{DateTime, TimeZone, Utc};
use pasar_online::channel::{ChannelKind, Inbound, InboundEvent, Outbound, UserKey};
use pasar_online::config::Config;
use pasar_online::conversation::buyer::BuyerState;
use pasar_online::conversation::engine::{Clock, Engine, FixedClock};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// 07:00 WIB on 28 November 2026.
pub fn morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).single().expect("time")
}

pub fn open_engine(db: &std::path::Path, clock: Arc<FixedClock>) -> Engine {
    pasar_online::runtime::open_engine(&Config::default(), db, clock as Arc<dyn Clock>).expect("engine")
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// One shopper talking to one market's engine on a temp database.
pub struct Harness {
    pub config: Config,
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub clock: Arc<FixedClock>,
    pub engine: Engine,
    pub market: String,
    pub user: UserKey,
}

impl Harness {
    pub fn new(market: &str) -> Harness {
        Harness::with_config(market, Config::default())
    }

    /// The same with a config of the test's own (a market on the delivery vendor, say).
    pub fn with_config(market: &str, config: Config) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("pasar.db");
        let clock = Arc::new(FixedClock::new(morning()));
        let engine =
            pasar_online::runtime::open_engine(&config, &db, Arc::clone(&clock) as Arc<dyn Clock>).expect("engine");
        Harness {
            config,
            dir,
            db,
            clock,
            engine,
            market: market.to_string(),
            user: UserKey { channel: ChannelKind::Console, id: "sri".into() },
        }
    }

    /// Simulates a restart: a new engine over the same file.
    pub fn restart(&mut self) {
        self.engine =
            pasar_online::runtime::open_engine(&self.config, &self.db, Arc::clone(&self.clock) as Arc<dyn Clock>)
                .expect("engine");
    }

    /// Sends one input and returns the replies to this user, marking them delivered.
    pub fn send(&mut self, inbound: Inbound) -> Vec<Outbound> {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let event = InboundEvent {
            source_id: format!("test:{}:{seq}", self.user.id),
            market: self.market.clone(),
            user: self.user.clone(),
            display_name: None,
            received_at: self.clock.now(),
            inbound,
            pressed_on: None,
        };
        self.deliver_event(event)
    }

    pub fn deliver_event(&mut self, event: InboundEvent) -> Vec<Outbound> {
        self.engine.store().ingest(std::slice::from_ref(&event)).expect("ingest");
        self.engine.process_pending().expect("process");
        let mut pending = self.engine.store().pending_outbox(ChannelKind::Console, 1000).expect("outbox");
        if self.user.channel != ChannelKind::Console {
            pending.extend(self.engine.store().pending_outbox(self.user.channel, 1000).expect("outbox"));
        }
        let mut mine = Vec::new();
        for m in pending {
            self.engine.store().mark_sent(m.id, self.clock.now()).expect("sent");
            if m.to == self.user {
                mine.push(m.message);
            }
        }
        mine
    }

    pub fn text(&mut self, s: &str) -> Vec<Outbound> {
        self.send(Inbound::Text(s.to_string()))
    }

    pub fn command(&mut self, s: &str) -> Vec<Outbound> {
        self.send(Inbound::from_typed(s))
    }

    pub fn button(&mut self, payload: &str) -> Vec<Outbound> {
        self.send(Inbound::Button(payload.to_string()))
    }

    /// The stored conversation state of this user.
    pub fn state(&self) -> BuyerState {
        let conn = rusqlite::Connection::open(&self.db).expect("db");
        let json: String = conn
            .query_row(
                "SELECT state FROM conversations WHERE market = ?1 AND channel = 'console' AND user_id = ?2 AND role = 'buyer'",
                [&self.market, &self.user.id],
                |r| r.get(0),
            )
            .expect("state row");
        serde_json::from_str(&json).expect("state json")
    }

    /// A single-number query on the database file.
    pub fn count(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open(&self.db).expect("db");
        conn.query_row(sql, [], |r| r.get(0)).expect("count")
    }
}

/// All reply texts joined, for `contains` assertions.
pub fn joined(replies: &[Outbound]) -> String {
    replies.iter().map(|m| m.text.as_str()).collect::<Vec<_>>().join("\n---\n")
}

/// The payload of the first button whose label contains `label`.
pub fn payload(replies: &[Outbound], label: &str) -> String {
    replies
        .iter()
        .flat_map(|m| m.buttons.iter())
        .find(|b| b.label.contains(label))
        .map(|b| b.payload.clone())
        .unwrap_or_else(|| panic!("no button with `{label}` in {replies:#?}"))
}

/// A `pasar run` child process on a harness's database; killed when dropped. `.1` is the port of
/// its HTTP server.
pub struct Running(pub std::process::Child, pub u16);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `pasar run` on the harness's database with `config` (given the free port it is to
/// listen on, returns the config text) and these environment variables; waits until `ready`
/// says its server answers (tries another port if the one picked was taken meanwhile).
pub fn run_pasar(
    h: &Harness,
    config: impl Fn(u16) -> String,
    env: &[(&str, &str)],
    ready: impl Fn(u16) -> bool,
) -> Running {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let path = h.dir.path().join("config.toml");
        std::fs::write(&path, config(port)).expect("config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_pasar"));
        command
            .arg("--config")
            .arg(&path)
            .args(["run", "--db"])
            .arg(&h.db)
            .env_remove("PASAR_DB")
            .env_remove("PASAR_BLIMBING_TELEGRAM_TOKEN")
            .env("PASAR_LOG", std::env::var("PASAR_TEST_LOG").unwrap_or_else(|_| "off".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("PASAR_TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() });
        for (k, v) in env {
            command.env(k, v);
        }
        let mut running = Running(command.spawn().expect("pasar run"), port);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && ready(port) {
                return running;
            }
            if running.0.try_wait().expect("wait").is_some() {
                break; // The port was taken meanwhile: another one.
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = running.0.kill();
    }
    panic!("pasar run did not start");
}

// Not every test file uses both.
#[allow(unused_imports)]
pub use pasar_online::fakes::{http, post_bytes};

/// [`post_bytes`] with a text body.
pub fn post_json(port: u16, path: &str, body: &str, headers: &[(&str, &str)]) -> u16 {
    post_bytes(port, path, body.as_bytes(), headers)
}

/// Posts `body` to the WhatsApp webhook with this `X-Hub-Signature-256` (or none); the status.
pub fn post_whatsapp(port: u16, body: &[u8], signature: Option<&str>) -> u16 {
    let headers: Vec<(&str, &str)> = signature.map(|s| ("X-Hub-Signature-256", s)).into_iter().collect();
    post_bytes(port, "/whatsapp", body, &headers)
}

/// Posts `body` to the Telegram webhook at `path` with this secret header (or none); the status.
pub fn post_telegram(port: u16, path: &str, secret: Option<&str>, body: &[u8]) -> u16 {
    let headers: Vec<(&str, &str)> = secret.map(|s| ("X-Telegram-Bot-Api-Secret-Token", s)).into_iter().collect();
    post_bytes(port, path, body, &headers)
}

/// Waits (up to 30 s) until a query on the database gives `want`.
pub fn wait_for(h: &Harness, sql: &str, want: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let got = h.count(sql);
        if got == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "`{sql}` stayed {got}, wanted {want}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The text of the one QR code in a PNG (a QRIS payment request as a channel sent it).
pub fn decode_qr(png_bytes: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("frame");
    assert_eq!(info.color_type, png::ColorType::Grayscale, "one byte a pixel");
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the picture");
    grids[0].decode().expect("the QR code decodes").1
}
