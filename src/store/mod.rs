//! The only place that knows SQL and rusqlite.
//!
//! Everything else calls functions here with domain types. The database is one SQLite file in
//! WAL mode with foreign keys on and a busy timeout; every write runs in a `BEGIN IMMEDIATE`
//! transaction ([`Store::write`]), so one event's state, domain changes, outbox rows and inbox
//! mark commit together or not at all.

mod admin;
mod broadcast;
mod catalog;
mod conversations;
mod delivery;
mod export;
mod inbox;
mod market;
mod migrations;
mod outbox;
mod payment;
mod privacy;
mod report;
mod shopper;

pub use admin::BackupRequest;
pub use catalog::CatalogUpdate;
pub use conversations::{RoleStates, load_state, load_states, save_state, user_lang};
pub use delivery::VendorRequest;
pub use export::EXPORT_COLUMNS;
pub use inbox::PendingEvent;
pub use inbox::{
    ingest_in, mark_done, mark_failed, mark_skipped, pending_in, record_attempt, release_savepoint, rollback_savepoint,
    savepoint,
};
pub use outbox::{OutboxDepth, OutboxMessage, SendResult};
pub use outbox::{enqueue, record_send_results_in};
pub use payment::BankRequest;
pub use privacy::{PURGED, PurgeReport};
pub use shopper::RepoTx;

impl Store {
    /// Markets with a timer due: a trader deadline or a courier's offer that has passed, or an
    /// order (paid, or paid at the door) whose slot starts by `courier_due` (Malang time) and has
    /// no courier yet, or a delivery still open after its slot ended (by `local_now`, Malang
    /// time), or an unpaid order's reminder or expiry. Orders of
    /// slots before yesterday are left alone (they are the admins' to close, not a courier's).
    pub fn markets_with_due_deadlines(
        &self,
        now: DateTime<Utc>,
        courier_due: chrono::NaiveDateTime,
        local_now: chrono::NaiveDateTime,
    ) -> StoreResult<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT o.market FROM sub_orders s JOIN orders o ON o.id = s.order_id
             WHERE s.status = 'awaiting_trader' AND s.deadline_at <= ?1
             UNION
             SELECT market FROM deliveries WHERE status = 'offered' AND offer_deadline_at <= ?1
             UNION
             SELECT o.market FROM orders o
             WHERE o.status IN ('confirmed', 'awaiting_payment', 'preparing', 'ready_for_pickup')
               AND o.status != 'awaiting_payment'
               AND o.slot_date <= ?2 AND o.slot_date >= date(?2, '-1 day')
               AND (o.slot_date || 'T' || substr(o.slot, 1, 5)) <= ?3
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.order_id = o.id)
             UNION
             SELECT d.market FROM deliveries d JOIN orders o ON o.id = d.order_id
             WHERE d.status IN ('offered', 'unassigned', 'assigned', 'on_the_way') AND d.late_alerted = 0
               AND (o.slot_date || 'T' || substr(o.slot, 7, 5)) <= ?4
             UNION
             SELECT market FROM payments WHERE status = 'pending' AND due_at <= ?1",
        )?;
        let date = courier_due.date().format("%Y-%m-%d").to_string();
        let stamp = courier_due.format("%Y-%m-%dT%H:%M").to_string();
        let late = local_now.format("%Y-%m-%dT%H:%M").to_string();
        let rows = stmt.query_map(rusqlite::params![ts(now), date, stamp, late], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }

    /// Makes a user an admin of a market (the terminal's operator; later `/admin_tambah`).
    /// The traders, couriers and stored admins of a market on one channel, for their command
    /// menus.
    pub fn role_holders(
        &self,
        market: &str,
        channel: crate::channel::ChannelKind,
    ) -> StoreResult<Vec<(crate::channel::UserKey, crate::channel::CommandMenu)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT user_id, MAX(trader), MAX(admin), MAX(courier) FROM (
                 SELECT t.user_id, 1 AS trader, 0 AS admin, 0 AS courier FROM stall_traders t
                 JOIN stalls s ON s.id = t.stall_id WHERE s.market = ?1 AND t.channel = ?2
                 UNION ALL
                 SELECT user_id, 0, 1, 0 FROM staff WHERE market = ?1 AND channel = ?2 AND role = 'admin'
                 UNION ALL
                 SELECT user_id, 0, 0, 1 FROM couriers WHERE market = ?1 AND channel = ?2
             ) GROUP BY user_id ORDER BY user_id",
        )?;
        let rows = stmt.query_map(rusqlite::params![market, channel.code()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? != 0, r.get::<_, i64>(2)? != 0, r.get::<_, i64>(3)? != 0))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, trader, admin, courier) = row?;
            out.push((
                crate::channel::UserKey { channel, id },
                crate::channel::CommandMenu { trader, admin, courier, city: false },
            ));
        }
        Ok(out)
    }

    pub fn grant_admin(&mut self, market: &str, user: &crate::channel::UserKey, now: DateTime<Utc>) -> StoreResult<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO staff (market, channel, user_id, role, since) VALUES (?1, ?2, ?3, 'admin', ?4)",
            rusqlite::params![market, user.channel.code(), user.id, ts(now)],
        )?;
        Ok(())
    }
}

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

/// A store failure. Callers log the chain; users see a friendly apology.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("database schema version {found} is newer than this program knows ({known})")]
    TooNew { found: i64, known: i64 },
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("seed data: {0}")]
    Seed(#[from] crate::domain::catalog::SeedError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Timestamps are stored as RFC 3339 UTC text with milliseconds, which sorts correctly.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse_ts(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp `{s}`: {e}")))
}

/// An open write transaction. Code outside `store/` only passes it back to store functions;
/// it dereferences to rusqlite's transaction for the store's own use.
pub struct Tx<'c>(Transaction<'c>);

impl<'c> std::ops::Deref for Tx<'c> {
    type Target = Transaction<'c>;
    fn deref(&self) -> &Transaction<'c> {
        &self.0
    }
}

/// One connection to the database file.
pub struct Store {
    conn: Connection,
    /// Moves WAL checkpoints off the writer's path; stopped when the store is dropped.
    _checkpointer: Option<Checkpointer>,
}

/// How often the background thread copies the WAL back into the database file while the
/// database is being written.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// When nothing was committed on the store's connection: the thread sleeps until a commit
/// wakes it, or this long (for other connections' writes).
const CHECKPOINT_IDLE: Duration = Duration::from_secs(60);

/// A thread with its own connection that runs passive WAL checkpoints. A checkpoint copies pages
/// and fsyncs the database file; done by the committing writer (SQLite's default), it stalls the
/// unlucky event that crosses the threshold for milliseconds. Passive checkpoints never block
/// the writer. The store's connection wakes it with each commit (a commit hook), so an idle
/// process does not wake to look; it stops when that connection (and so the hook) is dropped.
struct Checkpointer {
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread; `watched` gets the commit hook that wakes it.
    fn start(path: &Path, watched: &Connection) -> StoreResult<Checkpointer> {
        use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(1))?;
        let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || {
                let checkpoint = || {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                    }
                };
                loop {
                    // Idle until a commit (or, for other connections' writes, a while).
                    if let Err(RecvTimeoutError::Disconnected) = nudged.recv_timeout(CHECKPOINT_IDLE) {
                        return;
                    }
                    // Writing: a checkpoint every CHECKPOINT_EVERY while commits keep coming.
                    loop {
                        std::thread::sleep(CHECKPOINT_EVERY);
                        let mut committed = false;
                        loop {
                            match nudged.try_recv() {
                                Ok(()) => committed = true,
                                Err(TryRecvError::Empty) => break,
                                Err(TryRecvError::Disconnected) => {
                                    checkpoint();
                                    return;
                                }
                            }
                        }
                        checkpoint();
                        if !committed {
                            break;
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start the checkpoint thread: {e}")))?;
        watched.commit_hook(Some(move || {
            // Full means a wake-up is already waiting.
            let _ = nudge.try_send(());
            false
        }));
        Ok(Checkpointer { thread: Some(thread) })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // The store's connection (declared before this) is gone, and with it the hook: the
        // thread sees the channel closed.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// SQLite's busy handler: `retries` waits so far; false gives up (SQLITE_BUSY). 50 µs waits at
/// first, then 1 ms, about ten seconds in all.
fn short_busy_wait(retries: i32) -> bool {
    let wait = if retries < 100 { Duration::from_micros(50) } else { Duration::from_millis(1) };
    if retries > 100 + 10_000 {
        return false;
    }
    std::thread::sleep(wait);
    true
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`, with a background
    /// checkpointer for its WAL.
    pub fn open(path: &Path) -> StoreResult<Store> {
        let mut store = Store::open_companion(path)?;
        store._checkpointer = Some(Checkpointer::start(path, &store.conn)?);
        Ok(store)
    }

    /// Another connection to a database a [`Store::open`] in this process keeps checkpointed
    /// (one checkpointer per process is enough).
    pub fn open_companion(path: &Path) -> StoreResult<Store> {
        let conn = Connection::open(path)?;
        // Writers in one process (the engine, pollers, senders) wait for each other often and
        // briefly: SQLite's default busy handler sleeps up to 100 ms at a time, far longer than
        // any of our transactions, so poll in short sleeps instead, for up to ten seconds.
        conn.busy_handler(Some(short_busy_wait))?;
        // Every statement the engine runs stays prepared (rusqlite keeps only 16 by default).
        conn.set_prepared_statement_cache_capacity(256);
        // WAL keeps readers off the writer's back. FULL sync: every commit reaches the disk
        // before it returns. A commit is what a webhook's 200, a poll's next offset and a reply
        // sent after it stand on: with NORMAL a power cut could lose the last commits, and with
        // them a bank's settlement Meta or the bank will never send again, or an order its
        // shopper was told about. The engine commits a batch of updates at once, so the cost is
        // one WAL sync per batch (BENCHMARKS.md, issue 23).
        // A new database gives freed pages back in small steps (`pasar purge`); this can only be
        // set before its first table, and before WAL mode writes its header.
        let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
        if tables == 0 {
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Deleted and overwritten content is zeroed inside its page (at no extra I/O), so that
        // what a person wrote does not linger in the file after the row changed; `pasar purge`
        // zeroes the rest and gives the free pages back.
        conn.pragma_update(None, "secure_delete", "FAST")?;
        // The background checkpointer keeps the WAL short; the writer never checkpoints itself
        // unless the WAL grows past ~64 MB (the checkpointer stalled).
        conn.pragma_update(None, "wal_autocheckpoint", 16000)?;
        let mut store = Store { conn, _checkpointer: None };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> StoreResult<()> {
        let version: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = migrations::MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew { found: version, known });
        }
        for (i, sql) in migrations::MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The schema version now in the file.
    pub fn schema_version(&self) -> StoreResult<i64> {
        Ok(self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction: committed if it returns `Ok`, rolled back
    /// otherwise.
    pub fn write<T, E: From<StoreError>>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| E::from(StoreError::from(e)))?;
        let tx = Tx(tx);
        let out = f(&tx)?;
        tx.0.commit().map_err(|e| E::from(StoreError::from(e)))?;
        Ok(out)
    }

    /// Runs `f`'s reads in one read transaction: one snapshot, and one take of the WAL's read
    /// lock rather than one per statement. If the transaction cannot begin, `f` runs anyway
    /// (each statement then reads on its own).
    pub fn read_together<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        let began = self.conn.is_autocommit() && self.conn.execute_batch("BEGIN DEFERRED").is_ok();
        let out = f(self);
        if began && let Err(e) = self.conn.execute_batch("COMMIT") {
            tracing::warn!(error = %e, "ending a read transaction failed");
        }
        out
    }

    /// Whether a write could start now: takes the write lock and lets it go (`/healthz`).
    pub fn check_writable(&self) -> StoreResult<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?;
        Ok(())
    }

    /// `PRAGMA integrity_check`: `ok` for a healthy file.
    pub fn integrity_check(&self) -> StoreResult<String> {
        Ok(self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    /// `PRAGMA synchronous` of this connection (2 is FULL).
    pub fn synchronous(&self) -> StoreResult<i64> {
        Ok(self.conn.pragma_query_value(None, "synchronous", |r| r.get(0))?)
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    /// The slot counts the triggers keep equal a count of the orders, whatever happens to them.
    #[test]
    fn slot_bookings_follow_every_order_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("t.db")).expect("open");
        store.seed(&crate::domain::catalog::SeedData::builtin().expect("seed data")).expect("seed");
        let conn = store.conn();
        let place = |n: usize, market: &str, date: &str, slot: &str, status: &str| {
            conn.execute(
                "INSERT INTO orders (market, number, channel, user_id, status, buyer_name, phone, slot_date, slot,
                                     payment, total, placed_at, updated_at)
                 VALUES (?1, ?2, 'telegram', 'u', ?3, 'B', '08', ?4, ?5, 'cod', 1000, 'x', 'x')",
                params![market, format!("N{n}"), status, date, slot],
            )
            .expect("order");
        };
        let statuses = ["placed", "confirmed", "cancelled", "rejected", "delivered"];
        let slots = ["07:00-09:00", "09:00-11:00"];
        let mut n = 0;
        for market in ["blimbing", "dinoyo"] {
            for date in ["2026-11-28", "2026-11-29"] {
                for slot in slots {
                    for status in statuses {
                        n += 1;
                        place(n, market, date, slot, status);
                    }
                }
            }
        }
        let exec = |sql: &str| conn.execute(sql, []).expect(sql);
        exec("UPDATE orders SET status = 'cancelled' WHERE number IN ('N1', 'N2', 'N3')");
        exec("UPDATE orders SET status = 'placed' WHERE number IN ('N4', 'N9')");
        exec("UPDATE orders SET slot = '09:00-11:00' WHERE number = 'N12'");
        exec("UPDATE orders SET slot_date = '2026-11-30', status = 'rejected' WHERE number = 'N13'");
        exec("DELETE FROM orders WHERE number IN ('N21', 'N23')");
        exec("UPDATE orders SET phone = '' WHERE number = 'N22'");
        let rows = |sql: &str| -> Vec<(String, String, String, i64)> {
            let mut stmt = conn.prepare(sql).expect("prepare");
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows")
        };
        let counted = rows(
            "SELECT market, slot_date, slot, COUNT(*) FROM orders WHERE status NOT IN ('cancelled', 'rejected')
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        );
        let kept = rows("SELECT market, slot_date, slot, orders FROM slot_bookings WHERE orders > 0 ORDER BY 1, 2, 3");
        assert_eq!(kept, counted);
        assert_eq!(counted.len(), 8);
        assert!(rows("SELECT market, slot_date, slot, orders FROM slot_bookings WHERE orders < 0").is_empty());
    }

    #[test]
    fn migrates_a_new_file_once_in_wal_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let store = Store::open(&path).expect("open");
        assert_eq!(store.schema_version().expect("version"), migrations::MIGRATIONS.len() as i64);
        let mode: String = store.conn().query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("mode");
        assert_eq!(mode, "wal");
        // Every commit is synced before it returns (a webhook's 200 stands on it), on the
        // engine's connection and on the webhooks' companion alike.
        assert_eq!(store.synchronous().expect("sync"), 2, "synchronous=FULL");
        assert_eq!(Store::open_companion(&path).expect("companion").synchronous().expect("sync"), 2);
        drop(store);
        // Re-opening does not re-run migrations (they would fail on existing tables).
        let again = Store::open(&path).expect("reopen");
        assert_eq!(again.integrity_check().expect("check"), "ok");
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        drop(Store::open(&path).expect("open"));
        let conn = Connection::open(&path).expect("conn");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        drop(conn);
        assert!(matches!(Store::open(&path), Err(StoreError::TooNew { found: 99, .. })));
    }

    #[test]
    fn lookups_by_parent_use_an_index_not_a_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        for sql in [
            "SELECT id FROM sub_orders WHERE order_id = 1 ORDER BY id",
            "SELECT id FROM order_lines WHERE sub_order_id = 1 ORDER BY id",
            "SELECT MAX(id) FROM order_events WHERE sub_order_id = 1",
            // A WhatsApp user's typed number read against the last menu sent to them: it was a
            // walk back over the whole outbox, holding up every webhook behind it.
            "SELECT message FROM outbox WHERE market = 'blimbing' AND channel = 'whatsapp'
             AND recipient = '628111' AND status = 'sent' ORDER BY id DESC",
        ] {
            let plan = plan_of(&store, sql);
            assert!(plan.iter().all(|step| !step.starts_with("SCAN")), "{sql}: {plan:?}");
        }
    }

    fn plan_of(store: &Store, sql: &str) -> Vec<String> {
        let mut stmt = store.conn().prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("plan");
        stmt.query_map([], |r| r.get::<_, String>(3)).expect("rows").collect::<Result<_, _>>().expect("plan")
    }

    #[test]
    fn the_senders_read_only_the_pending_messages() {
        // Through an index on every status the heads' read walked a market's whole history
        // (the sent messages): it must use the index of the pending ones.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let sql = "SELECT o.id, o.recipient, o.message, o.parts_sent, o.attempts, h.bulk FROM outbox o JOIN (
                 SELECT id, bulk FROM (
                     SELECT id, broadcast_id IS NOT NULL AS bulk,
                            ROW_NUMBER() OVER (PARTITION BY recipient ORDER BY id) AS place
                     FROM outbox WHERE channel = 'whatsapp' AND status = 'pending' AND market = 'blimbing'
                 ) WHERE place <= 1
             ) h ON h.id = o.id ORDER BY h.bulk, o.id";
        let plan = plan_of(&store, sql);
        assert!(plan.iter().any(|step| step.contains("INDEX outbox_pending_by_chat")), "{plan:?}");
    }
}
