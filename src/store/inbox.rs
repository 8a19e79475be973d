//! The inbox: every update is stored, keyed by its platform id, before it is acknowledged.
//! A second copy of the same id is ignored, so redelivery never doubles an effect.

use super::{Store, StoreResult, ts};
use crate::channel::InboundEvent;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

/// An inbox row waiting to be processed.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub id: i64,
    pub attempts: i64,
    /// The stored event, or why it no longer decodes (such a row is parked, never retried).
    pub event: Result<InboundEvent, String>,
}

/// Inserts the event unless its source id was seen before. Returns whether it was new.
pub fn ingest_in(tx: &Transaction<'_>, event: &InboundEvent) -> StoreResult<bool> {
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

    /// The oldest pending inbox row.
    pub fn next_pending(&self) -> StoreResult<Option<PendingEvent>> {
        let row = self
            .conn()
            .prepare_cached("SELECT id, attempts, event FROM inbox WHERE status = 'pending' ORDER BY id LIMIT 1")?
            .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)))
            .optional()?;
        match row {
            None => Ok(None),
            Some((id, attempts, json)) => Ok(Some(PendingEvent {
                id,
                attempts,
                event: serde_json::from_str(&json).map_err(|e| e.to_string()),
            })),
        }
    }

    /// Counts inbox rows by status, for tests and `db` reports.
    pub fn inbox_count(&self, status: &str) -> StoreResult<i64> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM inbox WHERE status = ?1",
            [status],
            |r| r.get(0),
        )?)
    }

    /// Records a failed attempt; after `max_attempts` the row is parked as `failed`.
    pub fn record_failure(&mut self, id: i64, max_attempts: i64) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE inbox SET attempts = attempts + 1,
                     status = CASE WHEN attempts + 1 >= ?2 THEN 'failed' ELSE status END
                 WHERE id = ?1",
                params![id, max_attempts],
            )?;
            Ok::<_, super::StoreError>(())
        })
    }
}

/// Marks an inbox row processed, inside the event's transaction.
pub fn mark_done(tx: &Transaction<'_>, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
    tx.prepare_cached("UPDATE inbox SET status = 'done', processed_at = ?2 WHERE id = ?1")?
        .execute(params![id, ts(now)])?;
    Ok(())
}

/// Marks an inbox row as given up on, inside a transaction that also apologises to the user.
pub fn mark_failed(tx: &Transaction<'_>, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
    tx.prepare_cached("UPDATE inbox SET status = 'failed', processed_at = ?2, attempts = attempts + 1 WHERE id = ?1")?
        .execute(params![id, ts(now)])?;
    Ok(())
}
