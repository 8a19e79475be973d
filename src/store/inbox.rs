//! The inbox: every update is stored, keyed by its platform id, before it is acknowledged.
//! A second copy of the same id is ignored, so redelivery never doubles an effect.

use super::{Store, StoreResult, Tx, ts};
use crate::channel::InboundEvent;
use chrono::{DateTime, Utc};
use rusqlite::params;

/// An inbox row waiting to be processed.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub id: i64,
    pub attempts: i64,
    /// The stored event, or why it no longer decodes (such a row is parked, never retried).
    pub event: Result<InboundEvent, String>,
}

/// Inserts the event unless its source id was seen before. Returns whether it was new.
pub fn ingest_in(tx: &Tx<'_>, event: &InboundEvent) -> StoreResult<bool> {
    // Seen before and purged since: still seen (a replay must not count again).
    let purged = tx
        .prepare_cached("SELECT 1 FROM inbox_seen WHERE key = ?1")?
        .exists([super::privacy::seen_key(&event.source_id)])?;
    if purged {
        return Ok(false);
    }
    let json = serde_json::to_string(event)?;
    let n = tx.prepare_cached(
        "INSERT OR IGNORE INTO inbox (source_id, market, channel, user_id, event, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        event.source_id,
        event.market,
        event.user.channel.code(),
        event.user.id,
        json,
        ts(event.received_at)
    ])?;
    if n == 1 {
        let who = params![event.market, event.user.channel.code(), event.user.id];
        // They wrote to the bot: whatever blocked it is over.
        tx.prepare_cached("DELETE FROM unreachable WHERE market = ?1 AND channel = ?2 AND user_id = ?3")?
            .execute(who)?;
        // WhatsApp's window for messages to them opens again, and what was held for that goes
        // out now (Telegram has no such window: nothing is held there).
        if event.user.channel == crate::channel::ChannelKind::WhatsApp {
            tx.prepare_cached(
                "INSERT INTO last_inbound (market, channel, user_id, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (market, channel, user_id) DO UPDATE SET at = MAX(at, excluded.at)",
            )?
            .execute(params![
                event.market,
                event.user.channel.code(),
                event.user.id,
                ts(event.received_at)
            ])?;
            tx.prepare_cached(
                "UPDATE outbox SET status = 'pending' WHERE market = ?1 AND channel = ?2 AND recipient = ?3 AND status = 'held'",
            )?
            .execute(who)?;
        }
    }
    Ok(n == 1)
}

impl Store {
    /// Stores a batch of updates in one transaction; returns how many were new.
    pub fn ingest(&mut self, events: &[InboundEvent]) -> StoreResult<usize> {
        self.write(|tx| {
            let mut new = 0;
            for e in events {
                if ingest_in(tx, e)? {
                    new += 1;
                }
            }
            Ok::<_, super::StoreError>(new)
        })
    }

    /// Counts inbox rows by status, for tests and `db` reports.
    pub fn inbox_count(&self, status: &str) -> StoreResult<i64> {
        Ok(self.conn().query_row("SELECT COUNT(*) FROM inbox WHERE status = ?1", [status], |r| r.get(0))?)
    }
}

/// Marks an inbox row processed, inside the event's transaction.
pub fn mark_done(tx: &Tx<'_>, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
    tx.prepare_cached("UPDATE inbox SET status = 'done', processed_at = ?2 WHERE id = ?1")?
        .execute(params![id, ts(now)])?;
    Ok(())
}

/// Marks an inbox row as skipped under the flood rule: stored, never stepped nor answered.
pub fn mark_skipped(tx: &Tx<'_>, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
    tx.prepare_cached("UPDATE inbox SET status = 'skipped', processed_at = ?2 WHERE id = ?1")?
        .execute(params![id, ts(now)])?;
    Ok(())
}

/// Marks an inbox row as given up on, inside a transaction that also apologises to the user.
pub fn mark_failed(tx: &Tx<'_>, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
    tx.prepare_cached("UPDATE inbox SET status = 'failed', processed_at = ?2, attempts = attempts + 1 WHERE id = ?1")?
        .execute(params![id, ts(now)])?;
    Ok(())
}

/// The oldest pending inbox rows, inside the processing transaction.
pub fn pending_in(tx: &Tx<'_>, limit: usize) -> StoreResult<Vec<PendingEvent>> {
    // No `LIMIT ?`: a bound LIMIT makes SQLite re-prepare the statement on every call (it can
    // change the plan); reading stops after `limit` rows instead.
    let mut stmt = tx.prepare_cached("SELECT id, attempts, event FROM inbox WHERE status = 'pending' ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)))?;
    let mut out = Vec::new();
    for row in rows.take(limit) {
        let (id, attempts, json) = row?;
        out.push(PendingEvent { id, attempts, event: serde_json::from_str(&json).map_err(|e| e.to_string()) });
    }
    Ok(out)
}

/// Counts a failed attempt; the row stays pending for a retry.
pub fn record_attempt(tx: &Tx<'_>, id: i64) -> StoreResult<()> {
    tx.prepare_cached("UPDATE inbox SET attempts = attempts + 1 WHERE id = ?1")?.execute([id])?;
    Ok(())
}

/// Opens a savepoint for one event inside a batch transaction.
pub fn savepoint(tx: &Tx<'_>) -> StoreResult<()> {
    tx.prepare_cached("SAVEPOINT event")?.execute([])?;
    Ok(())
}

pub fn release_savepoint(tx: &Tx<'_>) -> StoreResult<()> {
    tx.prepare_cached("RELEASE event")?.execute([])?;
    Ok(())
}

/// Undoes everything since [`savepoint`] and closes it.
pub fn rollback_savepoint(tx: &Tx<'_>) -> StoreResult<()> {
    tx.prepare_cached("ROLLBACK TO event")?.execute([])?;
    tx.prepare_cached("RELEASE event")?.execute([])?;
    Ok(())
}
