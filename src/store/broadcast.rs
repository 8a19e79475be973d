//! Broadcasts and the consent they need: shoppers' subscriptions to a market's news, the
//! broadcasts themselves (draft -> sending -> done), their outbox rows and their counts. The
//! store's side of [`BroadcastRepo`] and of the engine's progress timer.

use super::shopper::RepoTx;
use super::{Store, StoreResult, Tx, parse_ts, ts};
use crate::channel::{Envelope, UserKey};
use crate::conversation::{BroadcastRepo, RepoResult};
use crate::domain::broadcast::{
    Broadcast, BroadcastCounts, BroadcastStatus, BroadcastText, ProgressMessage, SendingBroadcast,
};
use crate::text::Lang;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

/// Why a broadcast message still held when its broadcast ends (WhatsApp took it and then said
/// the shopper was outside its window) is given up: an announcement ("closed tomorrow")
/// delivered days later, when the shopper writes again, would mislead.
const HELD_AT_END: &str = "unreachable: held outside the platform's window when the broadcast ended";

/// The shopper's consent in this market (`None`: never asked or answered).
pub(super) fn subscription(tx: &Tx<'_>, market: &str, user: &UserKey) -> StoreResult<Option<bool>> {
    let on: Option<i64> = tx
        .prepare_cached("SELECT subscribed FROM subscriptions WHERE market = ?1 AND channel = ?2 AND user_id = ?3")?
        .query_row(params![market, user.channel.code(), user.id], |r| r.get(0))
        .optional()?;
    Ok(on.map(|on| on != 0))
}

pub(super) fn set_subscription(
    tx: &Tx<'_>,
    market: &str,
    user: &UserKey,
    on: bool,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO subscriptions (market, channel, user_id, subscribed, changed_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (market, channel, user_id) DO UPDATE SET subscribed = excluded.subscribed, changed_at = excluded.changed_at",
    )?
    .execute(params![market, user.channel.code(), user.id, i64::from(on), ts(now)])?;
    Ok(())
}

fn user_key(channel: &str, id: String) -> Option<UserKey> {
    channel.parse().ok().map(|channel| UserKey { channel, id })
}

impl BroadcastRepo for RepoTx<'_> {
    fn subscribers(&mut self) -> RepoResult<Vec<(UserKey, Option<Lang>)>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT s.channel, s.user_id, u.lang FROM subscriptions s
             LEFT JOIN users u ON u.channel = s.channel AND u.user_id = s.user_id
             WHERE s.market = ?1 AND s.subscribed = 1 ORDER BY s.changed_at, s.channel, s.user_id",
        )?;
        let rows = stmt.query_map([self.market], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (channel, id, lang) = row?;
            if let Some(user) = user_key(&channel, id) {
                out.push((user, lang.and_then(|l| Lang::from_code(&l))));
            }
        }
        Ok(out)
    }

    fn subscriber_count(&mut self) -> RepoResult<usize> {
        let n: i64 = self
            .tx
            .prepare_cached("SELECT COUNT(*) FROM subscriptions WHERE market = ?1 AND subscribed = 1")?
            .query_row([self.market], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn create_broadcast(&mut self, by: &UserKey, text: &BroadcastText) -> RepoResult<i64> {
        self.tx
            .prepare_cached(
                "INSERT INTO broadcasts (market, channel, user_id, text, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![self.market, by.channel.code(), by.id, text.as_str(), ts(self.now)])?;
        Ok(self.tx.last_insert_rowid())
    }

    fn broadcast(&mut self, id: i64) -> RepoResult<Option<Broadcast>> {
        let row: Option<(String, String, String, String)> = self
            .tx
            .prepare_cached("SELECT channel, user_id, text, status FROM broadcasts WHERE id = ?1 AND market = ?2")?
            .query_row(params![id, self.market], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        let Some((channel, user, text, status)) = row else {
            return Ok(None);
        };
        let (Some(by), Some(status)) = (user_key(&channel, user), BroadcastStatus::parse(&status)) else {
            return Err(super::StoreError::Corrupt(format!("broadcast {id}")).into());
        };
        Ok(Some(Broadcast { id, market: self.market.to_string(), by, text, status }))
    }

    fn cancel_broadcast(&mut self, id: i64) -> RepoResult<bool> {
        let n = self
            .tx
            .prepare_cached(
                "UPDATE broadcasts SET status = 'cancelled', finished_at = ?3
                 WHERE id = ?1 AND market = ?2 AND status = 'draft'",
            )?
            .execute(params![id, self.market, ts(self.now)])?;
        Ok(n == 1)
    }

    fn start_broadcast(&mut self, id: i64, messages: &[Envelope], progress: &Envelope) -> RepoResult<bool> {
        let n = self
            .tx
            .prepare_cached(
                "UPDATE broadcasts SET status = 'sending', started_at = ?3, recipients = ?4
                 WHERE id = ?1 AND market = ?2 AND status = 'draft'",
            )?
            .execute(params![id, self.market, ts(self.now), messages.len() as i64])?;
        if n != 1 {
            return Ok(false);
        }
        for m in messages {
            super::outbox::enqueue_as(self.tx, m, None, Some(id), self.now)?;
        }
        let progress_id = super::outbox::enqueue_as(self.tx, progress, None, None, self.now)?;
        self.tx
            .prepare_cached("UPDATE broadcasts SET progress_outbox_id = ?2 WHERE id = ?1")?
            .execute(params![id, progress_id])?;
        Ok(true)
    }
}

impl Store {
    /// Every broadcast being sent, with the state of its admin's latest progress message.
    pub fn sending_broadcasts(&self) -> StoreResult<Vec<SendingBroadcast>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT b.id, b.market, b.channel, b.user_id, b.reported, b.reported_at, o.status, o.platform_id
             FROM broadcasts b LEFT JOIN outbox o ON o.id = b.progress_outbox_id
             WHERE b.status = 'sending' ORDER BY b.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, market, channel, user, reported, reported_at, status, platform_id) = row?;
            let Some(by) = user_key(&channel, user) else {
                continue;
            };
            let progress = match status.as_deref() {
                Some("pending") => ProgressMessage::Queued,
                Some("sent") => ProgressMessage::Sent(platform_id),
                // Failed, held, or gone (purged): the end comes as a new message.
                _ => ProgressMessage::Failed,
            };
            let reported_at = reported_at.map(|t| parse_ts(&t)).transpose()?;
            out.push(SendingBroadcast { id, market, by, progress, reported, reported_at });
        }
        Ok(out)
    }

    /// Where a broadcast's messages are. A message parked because the shopper blocked the bot,
    /// or held by the platform's window, counts as unreachable; any other parked one as failed.
    pub fn broadcast_counts(&self, id: i64) -> StoreResult<BroadcastCounts> {
        let (pending, sent, failed, unreachable): (i64, i64, i64, i64) = self
            .conn()
            .prepare_cached(
                "SELECT COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'sent'), 0),
                        COALESCE(SUM(status = 'failed' AND COALESCE(last_error, '') NOT LIKE 'unreachable%'), 0),
                        COALESCE(SUM(status = 'held' OR (status = 'failed' AND last_error LIKE 'unreachable%')), 0)
                 FROM outbox WHERE broadcast_id = ?1",
            )?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        let n = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(BroadcastCounts { pending: n(pending), sent: n(sent), failed: n(failed), unreachable: n(unreachable) })
    }

    /// Shows the admin the counts (`message`, an edit of the progress message or a new one),
    /// which becomes the progress message the next edit changes. `finished`: the broadcast is
    /// done with these counts, and messages still held for the platform's window are given up.
    pub fn report_broadcast(
        &mut self,
        id: i64,
        counts: &BroadcastCounts,
        message: &Envelope,
        finished: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.write(|tx| {
            let progress_id = super::outbox::enqueue_as(tx, message, None, None, now)?;
            tx.prepare_cached(
                "UPDATE broadcasts SET progress_outbox_id = ?2, reported = ?3, reported_at = ?4 WHERE id = ?1",
            )?
            .execute(params![id, progress_id, counts.key(), ts(now)])?;
            if finished {
                tx.prepare_cached(
                    "UPDATE broadcasts SET status = 'done', finished_at = ?2, sent = ?3, failed = ?4, unreachable = ?5
                     WHERE id = ?1",
                )?
                .execute(params![id, ts(now), counts.sent, counts.failed, counts.unreachable])?;
                tx.prepare_cached(
                    "UPDATE outbox SET status = 'failed', last_error = ?2 WHERE broadcast_id = ?1 AND status = 'held'",
                )?
                .execute(params![id, HELD_AT_END])?;
            }
            Ok(())
        })
    }
}
