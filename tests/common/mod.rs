//! Shared test helpers: an engine on a temp SQLite file with a fixed clock, and a harness that
//! speaks to it like a channel would.
#![allow(dead_code)]

pub mod fake_graph;
pub mod fake_telegram;
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
/// Serves a fake platform API on 127.0.0.1 with a random port, on its own thread and runtime
/// (tests are synchronous); returns the address.
pub fn serve_on_thread(app: axum::Router) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("addr");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    rx.recv().expect("fake server started")
}

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
