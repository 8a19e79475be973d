//! What operators watch of `pasar run`: `/healthz` (process up, database writable, each bot's
//! state and last successful poll or webhook) and `/metrics` in Prometheus' text format (updates
//! in and messages out per market and channel, outbox depth and age, send errors by code, orders
//! by status, the engine's step latency).
//!
//! Both are served on their own listener (`[server] ops_listen`, loopback by default); the public
//! listener keeps only a bare `/healthz` (200 or 503, no detail: can this instance take
//! webhooks) for load balancers. Neither ever
//! touches the store on the request path: a watcher thread with its own connection refreshes a
//! snapshot every [`REFRESH`], so a crowd of scrapers cannot hold the lock the webhooks need.

use super::Shared;
use crate::channel::ChannelKind;
use crate::store::Store;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A polling bot whose last successful `getUpdates` is older than this is unhealthy (a poll
/// waits at most the long-poll timeout, 30 s by default, so a healthy one answers well within).
pub(crate) const POLL_STALE: Duration = Duration::from_secs(90);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Place {
    market: String,
    channel: String,
}

impl Place {
    pub(crate) fn new(market: &str, channel: ChannelKind) -> Place {
        Place { market: market.to_string(), channel: channel.code().to_string() }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SendError {
    market: String,
    channel: String,
    /// `429`, `403`, `400`, `401`, `window`, `5xx` or `network`.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrderStatus {
    market: String,
    status: String,
}

/// How a bot takes its updates: a polling bot that stops succeeding is unhealthy; a webhook
/// only reports when it last took one (a quiet market is not a fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Intake {
    Polling,
    Webhook,
}

struct BotHealth {
    intake: Intake,
    last_ok: Option<Instant>,
    /// Why a configured bot does not run (`getMe` or `setWebhook` failed), if it does not.
    down: Option<String>,
}

/// How often the watcher reads the store for `/healthz` and `/metrics`.
pub(crate) const REFRESH: Duration = Duration::from_secs(2);
/// A snapshot older than this means the watcher is stuck (a store that never answers).
const SNAPSHOT_STALE: Duration = Duration::from_secs(30);

/// What the watcher last read of the store.
struct Snapshot {
    /// Whether a write transaction could be begun.
    database: Result<(), String>,
    store: StoreSnapshot,
    taken: Instant,
}

/// The process's metrics and health.
pub(crate) struct Ops {
    registry: Registry,
    updates_in: Family<Place, Counter>,
    messages_out: Family<Place, Counter>,
    send_errors: Family<SendError, Counter>,
    outbox_pending: Family<Place, Gauge>,
    outbox_oldest: Family<Place, Gauge<f64, AtomicU64>>,
    orders: Family<OrderStatus, Gauge>,
    steps: Histogram,
    bots: Mutex<HashMap<(ChannelKind, String), BotHealth>>,
    snapshot: Mutex<Option<Snapshot>>,
    started: Instant,
}

impl Ops {
    pub(crate) fn new() -> Ops {
        let mut registry = Registry::with_prefix("pasar");
        let updates_in = Family::<Place, Counter>::default();
        registry.register("updates", "Updates the engine handled, per market and channel", updates_in.clone());
        let messages_out = Family::<Place, Counter>::default();
        registry.register(
            "messages_sent",
            "Platform calls that delivered a message (or a part of one), per market and channel",
            messages_out.clone(),
        );
        let send_errors = Family::<SendError, Counter>::default();
        registry.register(
            "send_errors",
            "Failed platform calls by kind: 429 (rate limits), 403 (user unreachable), 400 (refused), 401 (token refused), window (outside WhatsApp's 24 hours), 5xx, network",
            send_errors.clone(),
        );
        let outbox_pending = Family::<Place, Gauge>::default();
        registry.register("outbox_pending", "Messages waiting to be sent", outbox_pending.clone());
        let outbox_oldest = Family::<Place, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest message waiting to be sent",
            outbox_oldest.clone(),
        );
        let orders = Family::<OrderStatus, Gauge>::default();
        registry.register("orders", "Orders by market and status", orders.clone());
        // 50 µs to about 3.3 s.
        let steps = Histogram::new(exponential_buckets(0.000_05, 2.0, 17));
        registry.register(
            "step_seconds",
            "Time the engine took for one update's step (inside its batch's transaction)",
            steps.clone(),
        );
        Ops {
            registry,
            updates_in,
            messages_out,
            send_errors,
            outbox_pending,
            outbox_oldest,
            orders,
            steps,
            bots: Mutex::new(HashMap::new()),
            snapshot: Mutex::new(None),
            started: Instant::now(),
        }
    }

    /// One update handled by the engine, in `took`.
    pub(crate) fn stepped(&self, market: &str, channel: ChannelKind, took: Duration) {
        self.updates_in.get_or_create(&Place::new(market, channel)).inc();
        self.steps.observe(took.as_secs_f64());
    }

    /// `n` platform calls delivered.
    pub(crate) fn sent(&self, market: &str, channel: ChannelKind, n: u64) {
        if n > 0 {
            self.messages_out.get_or_create(&Place::new(market, channel)).inc_by(n);
        }
    }

    pub(crate) fn send_error(&self, market: &str, channel: ChannelKind, code: &str) {
        let labels =
            SendError { market: market.to_string(), channel: channel.code().to_string(), code: code.to_string() };
        self.send_errors.get_or_create(&labels).inc();
    }

    /// A bot starts taking updates this way.
    pub(crate) fn bot_started(&self, channel: ChannelKind, market: &str, intake: Intake) {
        let mut bots = self.bots.lock().unwrap_or_else(|p| p.into_inner());
        bots.insert((channel, market.to_string()), BotHealth { intake, last_ok: None, down: None });
    }

    /// A configured bot does not run, for `reason`: the process is unhealthy until it is fixed
    /// and restarted.
    pub(crate) fn bot_down(&self, channel: ChannelKind, market: &str, intake: Intake, reason: &str) {
        let mut bots = self.bots.lock().unwrap_or_else(|p| p.into_inner());
        bots.insert((channel, market.to_string()), BotHealth { intake, last_ok: None, down: Some(reason.to_string()) });
    }

    /// A bot took updates (a `getUpdates` answered, a webhook accepted).
    pub(crate) fn bot_ok(&self, channel: ChannelKind, market: &str) {
        let mut bots = self.bots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = bots.get_mut(&(channel, market.to_string())) {
            b.last_ok = Some(Instant::now());
        }
    }

    /// The watcher's new reading of the store.
    fn refreshed(&self, database: Result<(), String>, store: StoreSnapshot) {
        let mut snapshot = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        *snapshot = Some(Snapshot { database, store, taken: Instant::now() });
    }

    /// What the last snapshot says of the database (an error while there is none yet, or when
    /// it is stale).
    fn database(&self) -> Result<(), String> {
        let snapshot = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        match &*snapshot {
            None => Err("not checked yet".to_string()),
            Some(s) if s.taken.elapsed() > SNAPSHOT_STALE => {
                Err(format!("not checked for {} s (the store does not answer)", s.taken.elapsed().as_secs()))
            }
            Some(s) => s.database.clone(),
        }
    }

    /// The health report: status, and whether everything is healthy.
    fn health(&self, engine_alive: bool) -> (bool, serde_json::Value) {
        let database = self.database();
        let now = Instant::now();
        let bots = self.bots.lock().unwrap_or_else(|p| p.into_inner());
        let mut healthy = database.is_ok() && engine_alive;
        let mut list: Vec<serde_json::Value> = bots
            .iter()
            .map(|((channel, market), b)| {
                let age = b.last_ok.map(|t| now.duration_since(t));
                // A polling bot is stale once its last success (or its start) is too long ago.
                let since = age.unwrap_or_else(|| now.duration_since(self.started));
                let ok = b.down.is_none() && (b.intake == Intake::Webhook || since < POLL_STALE);
                healthy &= ok;
                serde_json::json!({
                    "market": market,
                    "channel": channel.code(),
                    "intake": match b.intake { Intake::Polling => "polling", Intake::Webhook => "webhook" },
                    "state": if b.down.is_some() { "down" } else if ok { "running" } else { "stale" },
                    "error": b.down,
                    "last_ok_seconds_ago": age.map(|a| a.as_secs_f64()),
                    "ok": ok,
                })
            })
            .collect();
        list.sort_by_key(|v| format!("{}/{}", v["channel"], v["market"]));
        let report = serde_json::json!({
            "status": if healthy { "ok" } else { "unhealthy" },
            "uptime_seconds": now.duration_since(self.started).as_secs(),
            "database": match &database { Ok(()) => "writable".to_string(), Err(e) => e.clone() },
            "engine": if engine_alive { "running" } else { "stopped" },
            "bots": list,
        });
        (healthy, report)
    }

    /// Sets the gauges from the last snapshot of the store, then encodes everything.
    fn encode(&self) -> Result<String, std::fmt::Error> {
        let guard = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        let empty = StoreSnapshot::default();
        let snapshot = guard.as_ref().map_or(&empty, |s| &s.store);
        self.outbox_pending.clear();
        self.outbox_oldest.clear();
        for (place, count, oldest) in &snapshot.outbox {
            self.outbox_pending.get_or_create(place).set(*count);
            self.outbox_oldest.get_or_create(place).set(*oldest);
        }
        self.orders.clear();
        for (market, status, count) in &snapshot.orders {
            self.orders.get_or_create(&OrderStatus { market: market.clone(), status: status.clone() }).set(*count);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// What `/metrics` reads from the store at each scrape.
#[derive(Default)]
struct StoreSnapshot {
    outbox: Vec<(Place, i64, f64)>,
    orders: Vec<(String, String, i64)>,
}

fn snapshot(store: &Store) -> Result<StoreSnapshot, String> {
    let now = chrono::Utc::now();
    let outbox = store.outbox_depth().map_err(|e| e.to_string())?;
    let orders = store.order_counts().map_err(|e| e.to_string())?;
    Ok(StoreSnapshot {
        outbox: outbox
            .into_iter()
            .map(|d| {
                let age = d.oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
                (Place { market: d.market, channel: d.channel }, d.pending, age)
            })
            .collect(),
        orders,
    })
}

/// Starts the watcher: a thread with its own connection to `db` that reads the store every
/// [`REFRESH`] for the routes below, until the process stops. Readers never wait for the
/// writers in WAL mode; the writability check waits at most the connection's busy timeout.
pub(crate) fn watch(ops: Arc<Ops>, db: &std::path::Path, shared: Arc<Shared>) -> anyhow::Result<()> {
    let store = Store::open_companion(db)?;
    std::thread::Builder::new().name("ops-watch".into()).spawn(move || {
        while !shared.stop.load(Ordering::SeqCst) {
            let database = store.check_writable().map_err(|e| format!("not writable: {e}"));
            let read = snapshot(&store).unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading the store for /metrics failed");
                StoreSnapshot::default()
            });
            ops.refreshed(database, read);
            // Short naps, so that a stop is seen soon.
            let until = Instant::now() + REFRESH;
            while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })?;
    Ok(())
}

/// What the operator routes need: no store, only what the watcher keeps.
#[derive(Clone)]
pub(crate) struct OpsState {
    pub(crate) ops: Arc<Ops>,
    pub(crate) shared: Arc<Shared>,
}

/// The operators' listener: `/healthz` with its detail and `/metrics`.
pub(crate) fn routes(state: OpsState) -> axum::Router {
    axum::Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/metrics", axum::routing::get(metrics))
        .with_state(state)
}

/// The public listener's `/healthz`: 200 or 503 and nothing else (a stranger should learn
/// nothing of the bots). It answers what a load balancer asks: can this instance take webhooks
/// (the database takes a write, the engine runs). One market's bot being down is for the
/// operators to see on their listener: it must not make the balancer send every webhook, the
/// bank's and the vendor's included, elsewhere.
pub(crate) fn public_routes(state: OpsState) -> axum::Router {
    axum::Router::new().route("/healthz", axum::routing::get(bare_healthz)).with_state(state)
}

async fn bare_healthz(axum::extract::State(s): axum::extract::State<OpsState>) -> axum::response::Response {
    let up = s.ops.database().is_ok() && !s.shared.engine_failed.load(Ordering::SeqCst);
    if up { (StatusCode::OK, "ok\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n") }.into_response()
}

async fn healthz(axum::extract::State(s): axum::extract::State<OpsState>) -> axum::response::Response {
    let (healthy, report) = s.ops.health(!s.shared.engine_failed.load(Ordering::SeqCst));
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(report)).into_response()
}

async fn metrics(axum::extract::State(s): axum::extract::State<OpsState>) -> axum::response::Response {
    match s.ops.encode() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
