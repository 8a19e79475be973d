//! The outbox: outgoing messages are rows written in the same transaction as the change that
//! caused them. A channel's sender delivers them in order per recipient and marks them sent.

use super::{Store, StoreResult, Tx, ts};
use crate::channel::{ChannelKind, Envelope, Outbound, UserKey};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

/// One market's queue on one channel (`/metrics`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxDepth {
    pub market: String,
    pub channel: String,
    pub pending: i64,
    /// When the oldest waiting message was queued.
    pub oldest: Option<DateTime<Utc>>,
}

/// An outbox row to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub id: i64,
    pub market: String,
    pub to: UserKey,
    pub message: Outbound,
    /// A message a channel sends as several calls (a long text in pieces, a request keyboard
    /// after the text): how many already went, so a retry sends only the rest.
    pub parts_sent: usize,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// One of a broadcast's messages (sent after the others; never held for later).
    pub broadcast: bool,
}

/// What became of one delivery attempt, for [`Store::record_send_results`].
#[derive(Debug, Clone, PartialEq)]
pub enum SendResult {
    Sent,
    /// Sent, and the platform's id for it (a Telegram message id: an edit of it changes it).
    SentAs(String),
    /// This many calls of a multi-call message went.
    Parts(usize),
    /// Failed for a reason that may pass: counted, retried later.
    Error(String),
    /// Parked for good, with the reason.
    Undeliverable(String),
}

/// Queues a message inside the current transaction.
pub fn enqueue(tx: &Tx<'_>, envelope: &Envelope, inbox_id: Option<i64>, now: DateTime<Utc>) -> StoreResult<()> {
    enqueue_as(tx, envelope, inbox_id, None, now).map(|_| ())
}

/// Queues a message, of a broadcast if `broadcast_id` says so (senders send those after the
/// other messages, see [`Store::outbox_heads_of`]); returns its outbox id.
pub(super) fn enqueue_as(
    tx: &Tx<'_>,
    envelope: &Envelope,
    inbox_id: Option<i64>,
    broadcast_id: Option<i64>,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let json = serde_json::to_string(&envelope.message)?;
    // A message to someone who blocked this bot is parked at once, with the reason.
    tx.prepare_cached(
        "INSERT INTO outbox (market, channel, recipient, message, inbox_id, created_at, status, last_error, broadcast_id)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6,
                CASE WHEN u.reason IS NULL THEN 'pending' ELSE 'failed' END,
                CASE WHEN u.reason IS NULL THEN NULL ELSE 'unreachable since ' || u.since || ': ' || u.reason END,
                ?7
         FROM (SELECT 1) LEFT JOIN unreachable u ON u.market = ?1 AND u.channel = ?2 AND u.user_id = ?3",
    )?
    .execute(params![
        envelope.market,
        envelope.to.channel.code(),
        envelope.to.id,
        json,
        inbox_id,
        ts(now),
        broadcast_id
    ])?;
    Ok(tx.last_insert_rowid())
}

impl Store {
    /// Pending messages of one channel, oldest first.
    pub fn pending_outbox(&self, channel: ChannelKind, limit: usize) -> StoreResult<Vec<OutboxMessage>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, market, recipient, message, broadcast_id IS NOT NULL FROM outbox
             WHERE channel = ?1 AND status = 'pending' ORDER BY id",
        )?;
        let rows = stmt.query_map(params![channel.code()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows.take(limit) {
            let (id, market, recipient, json, broadcast) = row?;
            out.push(OutboxMessage {
                id,
                market,
                to: UserKey { channel, id: recipient },
                message: serde_json::from_str(&json)?,
                parts_sent: 0,
                attempts: 0,
                broadcast,
            });
        }
        Ok(out)
    }

    /// Where the messages queued after outbox id `since` go (each channel and market once), and
    /// the newest id: the engine wakes only those markets' senders.
    pub fn queued_since(&self, since: i64) -> StoreResult<(Vec<(ChannelKind, String)>, i64)> {
        let mut stmt = self.conn().prepare_cached("SELECT id, channel, market FROM outbox WHERE id > ?1")?;
        let rows =
            stmt.query_map([since], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
        let mut newest = since;
        let mut places: Vec<(ChannelKind, String)> = Vec::new();
        for row in rows {
            let (id, channel, market) = row?;
            newest = newest.max(id);
            if let Ok(channel) = channel.parse::<ChannelKind>()
                && !places.iter().any(|(c, m)| *c == channel && *m == market)
            {
                places.push((channel, market));
            }
        }
        Ok((places, newest))
    }

    /// Messages waiting to be sent, per market and channel: how many, and when the oldest was
    /// queued (for `/metrics`).
    pub fn outbox_depth(&self) -> StoreResult<Vec<OutboxDepth>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT market, channel, COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending'
             GROUP BY market, channel ORDER BY market, channel",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(market, channel, pending, oldest)| {
                Ok(OutboxDepth {
                    market,
                    channel,
                    pending,
                    oldest: oldest.as_deref().map(super::parse_ts).transpose()?,
                })
            })
            .collect()
    }

    /// Orders per market and status (for `/metrics`).
    pub fn order_counts(&self) -> StoreResult<Vec<(String, String, i64)>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT market, status, COUNT(*) FROM orders GROUP BY market, status ORDER BY market, status",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The newest outbox id (0 for none).
    pub fn outbox_newest_id(&self) -> StoreResult<i64> {
        Ok(self.conn().query_row("SELECT COALESCE(MAX(id), 0) FROM outbox", [], |r| r.get(0))?)
    }

    /// Pending messages for one recipient in one market, oldest first.
    pub fn pending_outbox_for(&self, market: &str, to: &UserKey, limit: usize) -> StoreResult<Vec<OutboxMessage>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, message, broadcast_id IS NOT NULL FROM outbox
             WHERE channel = ?1 AND status = 'pending' AND market = ?2 AND recipient = ?3 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![to.channel.code(), market, to.id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows.take(limit) {
            let (id, json, broadcast) = row?;
            out.push(OutboxMessage {
                id,
                market: market.to_string(),
                to: to.clone(),
                message: serde_json::from_str(&json)?,
                parts_sent: 0,
                attempts: 0,
                broadcast,
            });
        }
        Ok(out)
    }

    /// The `per_chat` oldest pending messages of each chat of one market's bot on one channel:
    /// what a sender may send next without breaking the order within a chat. Reading only the
    /// heads of the queues means a chat with a long queue never hides the other chats.
    ///
    /// Broadcast messages come last and at most `bulk` of them (a sender passes what it sends
    /// in about a second): a round of the sender then stays about a second long however big
    /// the broadcast, and the next round takes the order messages queued meanwhile first, so a
    /// broadcast never keeps a shopper or trader waiting for their order's news.
    pub fn outbox_heads_of(
        &self,
        channel: ChannelKind,
        market: &str,
        per_chat: usize,
        limit: usize,
        bulk: usize,
    ) -> StoreResult<Vec<OutboxMessage>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT o.id, o.recipient, o.message, o.parts_sent, o.attempts, h.bulk FROM outbox o JOIN (
                 SELECT id, bulk FROM (
                     SELECT id, broadcast_id IS NOT NULL AS bulk,
                            ROW_NUMBER() OVER (PARTITION BY recipient ORDER BY id) AS place
                     FROM outbox WHERE channel = ?1 AND status = 'pending' AND market = ?2
                 ) WHERE place <= ?3
             ) h ON h.id = o.id ORDER BY h.bulk, o.id",
        )?;
        let per_chat = i64::try_from(per_chat.max(1)).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![channel.code(), market, per_chat], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, bool>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        let mut bulk_taken = 0;
        for row in rows {
            if out.len() >= limit {
                break;
            }
            let (id, recipient, json, parts_sent, attempts, is_bulk) = row?;
            if is_bulk {
                if bulk_taken >= bulk {
                    break; // Broadcast messages are last: the rest are too.
                }
                bulk_taken += 1;
            }
            out.push(OutboxMessage {
                id,
                market: market.to_string(),
                to: UserKey { channel, id: recipient },
                message: serde_json::from_str(&json)?,
                parts_sent: usize::try_from(parts_sent).unwrap_or(0),
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                broadcast: is_bulk,
            });
        }
        Ok(out)
    }

    /// Part of a multi-call message went out: a retry starts after it.
    pub fn record_parts_sent(&mut self, id: i64, parts: usize) -> StoreResult<()> {
        self.conn()
            .prepare_cached("UPDATE outbox SET parts_sent = ?2 WHERE id = ?1 AND status = 'pending'")?
            .execute(params![id, parts as i64])?;
        Ok(())
    }

    /// Several delivery results in one transaction (a sender's round).
    pub fn record_send_results(&mut self, results: &[(i64, SendResult)], now: DateTime<Utc>) -> StoreResult<()> {
        if results.is_empty() {
            return Ok(());
        }
        self.write(|tx| record_send_results_in(tx, results, now))
    }

    /// A delivery attempt failed for a reason that may pass (network, server error).
    pub fn record_send_error(&mut self, id: i64, error: &str) -> StoreResult<()> {
        self.conn()
            .prepare_cached("UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1")?
            .execute(params![id, error])?;
        Ok(())
    }

    /// The message can never be delivered (the user blocked the bot, the channel refused it for
    /// good, or it kept failing): parked with the reason, for an operator to look at.
    pub fn mark_undeliverable(&mut self, id: i64, error: &str) -> StoreResult<()> {
        self.conn()
            .prepare_cached(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            )?
            .execute(params![id, error])?;
        Ok(())
    }

    /// The user blocked this market's bot (or left the platform): this message and every other
    /// one waiting for them are parked, and later ones are parked at once, until they write again.
    pub fn mark_unreachable(
        &mut self,
        market: &str,
        to: &UserKey,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO unreachable (market, channel, user_id, since, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![market, to.channel.code(), to.id, ts(now), reason])?;
            tx.prepare_cached(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = 'unreachable: ' || ?4
                 WHERE market = ?1 AND channel = ?2 AND recipient = ?3 AND status = 'pending'",
            )?
            .execute(params![market, to.channel.code(), to.id, reason])?;
            Ok::<_, super::StoreError>(())
        })
    }

    /// When the user last wrote to this market's bot on their channel.
    pub fn last_inbound(&self, market: &str, user: &UserKey) -> StoreResult<Option<DateTime<Utc>>> {
        let at: Option<String> = self
            .conn()
            .prepare_cached("SELECT at FROM last_inbound WHERE market = ?1 AND channel = ?2 AND user_id = ?3")?
            .query_row(params![market, user.channel.code(), user.id], |r| r.get(0))
            .optional()?;
        at.map(|a| super::parse_ts(&a)).transpose()
    }

    /// The platform will not take this message now (outside its window, no template): it waits
    /// until the user writes again, and these alerts (to the market's admins) go out with it.
    pub fn hold(&mut self, id: i64, reason: &str, alerts: &[Envelope], now: DateTime<Utc>) -> StoreResult<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE outbox SET status = 'held', last_error = ?2 WHERE id = ?1 AND status = 'pending'",
            )?
            .execute(params![id, reason])?;
            for a in alerts {
                enqueue(tx, a, None, now)?;
            }
            Ok::<_, super::StoreError>(())
        })
    }

    /// Admins granted in the database for a market (the config names the others).
    pub fn staff_admins_of(&self, market: &str) -> StoreResult<Vec<UserKey>> {
        let mut stmt =
            self.conn().prepare_cached("SELECT channel, user_id FROM staff WHERE market = ?1 AND role = 'admin'")?;
        let rows = stmt.query_map([market], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (channel, id) = row?;
            if let Ok(channel) = channel.parse() {
                out.push(UserKey { channel, id });
            }
        }
        Ok(out)
    }

    /// Marks a pending message sent; false if someone else already did (two terminals).
    pub fn claim_sent(&mut self, id: i64, now: DateTime<Utc>) -> StoreResult<bool> {
        let n = self
            .conn()
            .prepare_cached("UPDATE outbox SET status = 'sent', sent_at = ?2, attempts = attempts + 1 WHERE id = ?1 AND status = 'pending'")?
            .execute(params![id, ts(now)])?;
        Ok(n == 1)
    }

    /// Marks a message sent with the platform's id for it, so delivery reports find it.
    pub fn mark_sent_as(&mut self, id: i64, platform_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.conn()
            .prepare_cached(
                "UPDATE outbox SET status = 'sent', sent_at = ?2, attempts = attempts + 1, platform_id = ?3 WHERE id = ?1",
            )?
            .execute(params![id, ts(now), platform_id])?;
        Ok(())
    }

    /// A platform's delivery report (WhatsApp `statuses`): delivered, read, or failed with a
    /// reason. Reports never move a row backwards (a late "delivered" after "read" is ignored).
    /// Returns whether a row of ours matched.
    pub fn record_delivery(&mut self, platform_id: &str, status: &str, error: Option<&str>) -> StoreResult<bool> {
        let rank = |s: &str| match s {
            "sent" => 1,
            "delivered" => 2,
            "read" => 3,
            "failed" => 4,
            _ => 0,
        };
        let current: Option<Option<String>> = self
            .conn()
            .prepare_cached("SELECT delivery FROM outbox WHERE platform_id = ?1 AND channel = 'whatsapp'")?
            .query_row([platform_id], |r| r.get(0))
            .optional()?;
        let Some(current) = current else {
            return Ok(false);
        };
        if rank(status) > current.as_deref().map(rank).unwrap_or(0) {
            self.conn()
                .prepare_cached(
                    "UPDATE outbox SET delivery = ?2, last_error = COALESCE(?3, last_error)
                     WHERE platform_id = ?1 AND channel = 'whatsapp'",
                )?
                .execute(params![platform_id, status, error])?;
        }
        Ok(true)
    }

    /// A message the platform accepted but could not deliver for now (WhatsApp's 131047,
    /// reported later in a status): it is held again, whole, until the user writes; a
    /// broadcast's message is given up instead (market news is not kept for later) and counts
    /// as unreachable.
    pub fn hold_again(&mut self, platform_id: &str, reason: &str) -> StoreResult<bool> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE outbox SET parts_sent = 0, platform_id = NULL,
                        status = CASE WHEN broadcast_id IS NULL THEN 'held' ELSE 'failed' END,
                        last_error = CASE WHEN broadcast_id IS NULL THEN ?2 ELSE 'unreachable: ' || ?2 END
                 WHERE platform_id = ?1 AND channel = 'whatsapp' AND status = 'sent'",
            )?
            .execute(params![platform_id, reason])?;
        Ok(n > 0)
    }

    pub fn mark_sent(&mut self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        self.conn()
            .prepare_cached("UPDATE outbox SET status = 'sent', sent_at = ?2, attempts = attempts + 1 WHERE id = ?1")?
            .execute(params![id, ts(now)])?;
        Ok(())
    }

    /// The last messages delivered to a chat, newest first: the console shows the last one again
    /// on resume and maps typed numbers to the buttons of the last one that had buttons.
    pub fn recent_sent_to(&self, market: &str, to: &UserKey, limit: usize) -> StoreResult<Vec<Outbound>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT message FROM outbox WHERE market = ?1 AND channel = ?2 AND recipient = ?3 AND status = 'sent'
             ORDER BY id DESC",
        )?;
        let rows = stmt.query_map(params![market, to.channel.code(), to.id], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for json in rows.take(limit) {
            out.push(serde_json::from_str(&json?)?);
        }
        Ok(out)
    }
}

/// Several delivery results, inside a transaction (a sender's round, or the engine thread's
/// batch of every sender's rounds).
pub fn record_send_results_in(tx: &Tx<'_>, results: &[(i64, SendResult)], now: DateTime<Utc>) -> StoreResult<()> {
    for (id, r) in results {
        match r {
            SendResult::Sent => {
                tx.prepare_cached(
                    "UPDATE outbox SET status = 'sent', sent_at = ?2, attempts = attempts + 1 WHERE id = ?1",
                )?
                .execute(params![id, ts(now)])?;
            }
            SendResult::SentAs(platform_id) => {
                tx.prepare_cached(
                    "UPDATE outbox SET status = 'sent', sent_at = ?2, attempts = attempts + 1, platform_id = ?3
                     WHERE id = ?1",
                )?
                .execute(params![id, ts(now), platform_id])?;
            }
            SendResult::Parts(n) => {
                tx.prepare_cached("UPDATE outbox SET parts_sent = ?2 WHERE id = ?1 AND status = 'pending'")?
                    .execute(params![id, *n as i64])?;
            }
            SendResult::Error(e) => {
                tx.prepare_cached("UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1")?
                    .execute(params![id, e])?;
            }
            SendResult::Undeliverable(e) => {
                tx.prepare_cached(
                    "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                )?
                .execute(params![id, e])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_the_oldest_few_of_every_chat_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("t.db")).expect("open");
        let now = Utc::now();
        let to = |id: &str| UserKey { channel: ChannelKind::Telegram, id: id.into() };
        store
            .write(|tx| {
                for (who, text) in [("a", "a1"), ("a", "a2"), ("b", "b1"), ("a", "a3"), ("b", "b2")] {
                    let envelope = Envelope { market: "blimbing".into(), to: to(who), message: Outbound::text(text) };
                    enqueue(tx, &envelope, None, now)?;
                }
                // Another market's and another channel's queues are not this sender's.
                let other = Envelope { market: "dinoyo".into(), to: to("a"), message: Outbound::text("x") };
                enqueue(tx, &other, None, now)?;
                let wa = UserKey { channel: ChannelKind::WhatsApp, id: "a".into() };
                enqueue(tx, &Envelope { market: "blimbing".into(), to: wa, message: Outbound::text("y") }, None, now)
            })
            .expect("queue");
        let texts = |per_chat| -> Vec<String> {
            let heads = store.outbox_heads_of(ChannelKind::Telegram, "blimbing", per_chat, 100, 100).expect("heads");
            heads.into_iter().map(|m| m.message.text).collect()
        };
        assert_eq!(texts(1), ["a1", "b1"]);
        assert_eq!(texts(2), ["a1", "a2", "b1", "b2"]);
        assert_eq!(texts(8), ["a1", "a2", "b1", "a3", "b2"]);
    }

    #[test]
    fn broadcast_messages_come_after_the_others_and_a_round_takes_few_of_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("t.db")).expect("open");
        store.seed(&crate::domain::catalog::SeedData::builtin().expect("seed data")).expect("seed");
        let now = Utc::now();
        let to = |id: &str| UserKey { channel: ChannelKind::Telegram, id: id.into() };
        store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO broadcasts (market, channel, user_id, text, status, created_at)
                     VALUES ('blimbing', 'telegram', 'admin', 'x', 'sending', '2026-11-28T00:00:00.000Z')",
                    [],
                )?;
                let b = tx.last_insert_rowid();
                for (who, text, bulk) in
                    [("s1", "news1", true), ("s2", "news2", true), ("s3", "news3", true), ("s4", "order", false)]
                {
                    let envelope = Envelope { market: "blimbing".into(), to: to(who), message: Outbound::text(text) };
                    enqueue_as(tx, &envelope, None, bulk.then_some(b), now)?;
                }
                // Within a chat the order stays: the broadcast first, then the reply.
                let envelope = Envelope { market: "blimbing".into(), to: to("s1"), message: Outbound::text("reply") };
                enqueue(tx, &envelope, None, now)
            })
            .expect("queue");
        let texts = |per_chat, bulk| -> Vec<String> {
            let heads = store.outbox_heads_of(ChannelKind::Telegram, "blimbing", per_chat, 100, bulk).expect("heads");
            heads.into_iter().map(|m| m.message.text).collect()
        };
        assert_eq!(texts(1, 2), ["order", "news1", "news2"]);
        assert_eq!(texts(2, 100), ["order", "reply", "news1", "news2", "news3"]);
    }
}
