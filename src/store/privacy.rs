//! The end of personal data (UU PDP): `pasar purge` (and the shipped daily timer) removes what
//! identifies a person once it is no longer needed, and makes sure the bytes are gone from the
//! file, not only from the tables.
//!
//! What goes, for what finished (or went quiet) before the cutoff: the shopper's name, phone,
//! address, location and note on orders; rating comments; the photo at the door and the
//! vendor's positions; WhatsApp numbers used as user ids on orders and in every actor column
//! (order, delivery and admin events, the ledger), replaced by a keyed pseudonym (the same
//! person gets the same one, so figures like repeat customers still add up); delivered, failed
//! and held messages; handled and failed updates (their platform ids stay as hashes, so a
//! captured webhook or callback cannot be played again once its row is gone); conversation
//! states and carts of people quiet since; saved profiles; request bodies sent to the delivery
//! vendor and the bank; the detail typed with admin commands; done backup requests; spent
//! invites. Orders, lines, statuses and money stay, as anonymous figures. Consent records
//! (`subscriptions`: a "no" to market news must be remembered) stay.
//!
//! Each step is a short transaction of at most [`BATCH`] rows, so the bots wait at most a few
//! milliseconds at a time. The connection runs with `secure_delete`, so deleted and overwritten
//! content is zeroed in the file; the WAL is then truncated, and on a database with incremental
//! auto-vacuum (every database created since issue 23) the freed pages are given back in small
//! steps.

use super::{StoreResult, ts};
use chrono::{DateTime, Utc};
use rusqlite::params;

/// What `pasar purge` removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeReport {
    pub orders: usize,
    /// Saved contact details (name, phone, address) of shoppers gone quiet since before then.
    pub profiles: usize,
    pub messages: usize,
    pub updates: usize,
    /// WhatsApp numbers replaced by pseudonyms (orders and actor columns).
    pub pseudonymised: usize,
    /// Conversation states and cart lines of people quiet since.
    pub states: usize,
    /// Request bodies to the delivery vendor and the bank, admin command details, done backup
    /// requests and spent invites.
    pub other: usize,
    /// Pages given back to the file system (incremental vacuum).
    pub pages_freed: i64,
}

/// What a purged order shows instead of the shopper's name and address.
pub const PURGED: &str = "(dihapus)";

/// Rows changed per transaction.
pub const BATCH: usize = 500;

/// Pages given back per transaction by the incremental vacuum (4 KB each).
const VACUUM_STEP: i64 = 256;

/// The pseudonym that replaces a WhatsApp number: a keyed hash, so that nobody can find the
/// number again by hashing every possible one, yet the same number always gets the same one.
pub fn pseudonym(secret: &str, number: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"pseudonym\0");
    mac.update(number.as_bytes());
    format!("anon-{}", hex::encode(&mac.finalize().into_bytes()[..8]))
}

/// The key kept of a purged update's platform id (see [`super::inbox`]).
pub fn seen_key(source_id: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(source_id.as_bytes()).to_vec()
}

impl super::Store {
    /// Removes the personal data of what finished or went quiet before `before` (see the
    /// module's documentation), in short steps, and reclaims the pages.
    ///
    /// `key` keys the pseudonyms: a secret from the environment, so that a copy of the database
    /// alone cannot turn them back into numbers (there are few enough numbers to try them all);
    /// without one, the database's own secret (and whoever has the file can).
    pub fn purge(&mut self, before: DateTime<Utc>, key: Option<&str>) -> StoreResult<PurgeReport> {
        self.conn().pragma_update(None, "secure_delete", "ON")?;
        let secret = match key {
            Some(k) => k.to_string(),
            None => self.secret()?,
        };
        let cutoff = ts(before);
        // Finished, and owing the shopper nothing: an order with money still to give back keeps
        // the details needed to give it back.
        let finished = "status IN ('delivered', 'cancelled', 'rejected') AND updated_at < ?1
            AND (SELECT COALESCE(SUM(CASE l.kind WHEN 'refund_owed' THEN l.amount WHEN 'refund' THEN -l.amount
                                                 ELSE 0 END), 0)
                 FROM ledger l WHERE l.order_id = orders.id) <= 0";
        let mut r = PurgeReport::default();

        // Orders, and what hangs off them.
        r.other += self.write(|tx| {
            let mut n = tx.execute(
                &format!(
                    "UPDATE ratings SET comment = NULL WHERE comment IS NOT NULL
                     AND order_id IN (SELECT id FROM orders WHERE {finished})"
                ),
                params![cutoff],
            )?;
            n += tx.execute(
                &format!(
                    "UPDATE deliveries SET proof = NULL, vendor_lat = NULL, vendor_lon = NULL, vendor_courier = NULL
                     WHERE (proof IS NOT NULL OR vendor_lat IS NOT NULL OR vendor_courier IS NOT NULL)
                       AND order_id IN (SELECT id FROM orders WHERE {finished})"
                ),
                params![cutoff],
            )?;
            Ok::<_, super::StoreError>(n)
        })?;
        r.orders = self.in_batches(
            &format!(
                "UPDATE orders SET buyer_name = '{PURGED}', phone = '', address = '{PURGED}', lat = NULL, lon = NULL,
                 note = NULL
             WHERE id IN (SELECT id FROM orders WHERE {finished} AND buyer_name <> '{PURGED}' LIMIT {BATCH})"
            ),
            &cutoff,
        )?;
        // WhatsApp numbers as ids, on finished orders and in the actor columns.
        r.pseudonymised += self.pseudonymise(
            &format!(
                "SELECT id, user_id FROM orders WHERE channel = 'whatsapp' AND user_id NOT LIKE 'anon-%' AND {finished}"
            ),
            "UPDATE orders SET user_id = ?2 WHERE id = ?1",
            &cutoff,
            |number| pseudonym(&secret, number),
        )?;
        for (table, time) in
            [("order_events", "at"), ("delivery_events", "at"), ("ledger", "at"), ("admin_audit", "at")]
        {
            // Actors are `whatsapp:<number>`, with a role before it at times (`buyer:whatsapp:...`).
            r.pseudonymised += self.pseudonymise(
                &format!(
                    "SELECT id, actor FROM {table}
                     WHERE actor LIKE '%whatsapp:%' AND actor NOT LIKE '%whatsapp:anon-%' AND {time} < ?1"
                ),
                &format!("UPDATE {table} SET actor = ?2 WHERE id = ?1"),
                &cutoff,
                |actor| match actor.split_once("whatsapp:") {
                    Some((role, number)) => format!("{role}whatsapp:{}", pseudonym(&secret, number)),
                    None => actor.to_string(),
                },
            )?;
        }

        // Messages and updates: what they said carried names, phones and addresses. A message
        // not sent yet stays (it is still owed); an update still referenced by one stays too.
        r.messages = self.in_batches(
            &format!(
                "DELETE FROM outbox WHERE id IN
                   (SELECT id FROM outbox WHERE status <> 'pending' AND created_at < ?1 LIMIT {BATCH})"
            ),
            &cutoff,
        )?;
        loop {
            let n = self.write(|tx| {
                let rows = tx
                    .prepare_cached(&format!(
                        "SELECT id, source_id FROM inbox WHERE status IN ('done', 'failed', 'skipped') AND received_at < ?1
                           AND id NOT IN (SELECT inbox_id FROM outbox WHERE inbox_id IS NOT NULL) LIMIT {BATCH}"
                    ))?
                    .query_map([&cutoff], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                for (id, source) in &rows {
                    tx.prepare_cached("INSERT OR IGNORE INTO inbox_seen (key) VALUES (?1)")?
                        .execute([seen_key(source)])?;
                    tx.prepare_cached("DELETE FROM inbox WHERE id = ?1")?.execute([id])?;
                }
                Ok::<_, super::StoreError>(rows.len())
            })?;
            r.updates += n;
            if n < BATCH {
                break;
            }
        }

        // People gone quiet: no update from them and no open order since the cutoff.
        let quiet = "NOT EXISTS (SELECT 1 FROM inbox i WHERE i.channel = t.channel AND i.user_id = t.user_id
                                    AND i.received_at >= ?1)
                     AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.channel = t.channel AND o.user_id = t.user_id
                                    AND (o.placed_at >= ?1 OR o.status NOT IN ('delivered', 'cancelled', 'rejected')))";
        r.profiles = self.write(|tx| {
            let n = tx.execute(
                &format!(
                    "UPDATE users AS t SET name = NULL, phone = NULL, address = NULL
                     WHERE updated_at < ?1 AND (name IS NOT NULL OR phone IS NOT NULL OR address IS NOT NULL) AND {quiet}"
                ),
                params![cutoff],
            )?;
            // A WhatsApp user's key is their number: the row goes (a language chosen is asked again).
            tx.execute(
                &format!("DELETE FROM users AS t WHERE channel = 'whatsapp' AND updated_at < ?1 AND {quiet}"),
                params![cutoff],
            )?;
            Ok::<_, super::StoreError>(n)
        })?;
        r.states = self.write(|tx| {
            let mut n = tx.execute(
                &format!("DELETE FROM conversations AS t WHERE updated_at < ?1 AND {quiet}"),
                params![cutoff],
            )?;
            n +=
                tx.execute(&format!("DELETE FROM cart_lines AS t WHERE added_at < ?1 AND {quiet}"), params![cutoff])?;
            tx.execute("DELETE FROM last_inbound WHERE at < ?1", params![cutoff])?;
            tx.execute("DELETE FROM unreachable WHERE since < ?1", params![cutoff])?;
            Ok::<_, super::StoreError>(n)
        })?;

        // Requests to the vendor and the bank (names, phones, addresses), admin command
        // details, done backup requests, spent invites.
        r.other += self.write(|tx| {
            let mut n = tx.execute(
                "DELETE FROM vendor_requests WHERE status <> 'pending' AND created_at < ?1",
                params![cutoff],
            )?;
            n +=
                tx.execute("DELETE FROM bank_requests WHERE status <> 'pending' AND created_at < ?1", params![cutoff])?;
            n += tx.execute(
                "UPDATE admin_audit SET detail = NULL WHERE detail IS NOT NULL AND at < ?1",
                params![cutoff],
            )?;
            n += tx.execute("DELETE FROM backup_requests WHERE done_at < ?1", params![cutoff])?;
            for table in ["invites", "courier_invites", "admin_invites"] {
                n += tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE redacted_at IS NOT NULL AND COALESCE(used_at, expires_at) < ?1"
                    ),
                    params![cutoff],
                )?;
            }
            Ok::<_, super::StoreError>(n)
        })?;

        r.pages_freed = self.reclaim()?;
        Ok(r)
    }

    /// Runs `sql` (which changes at most [`BATCH`] rows, `?1` the cutoff) until it changes
    /// fewer: each run its own transaction. Returns the rows changed.
    fn in_batches(&mut self, sql: &str, cutoff: &str) -> StoreResult<usize> {
        let mut total = 0;
        loop {
            let n = self.write(|tx| tx.prepare_cached(sql)?.execute([cutoff]).map_err(super::StoreError::from))?;
            total += n;
            if n < BATCH {
                return Ok(total);
            }
        }
    }

    /// Replaces the values `select` finds (`id`, value; `?1` the cutoff) by `with(value)`
    /// through `update` (`?1` id, `?2` new value), [`BATCH`] rows a transaction.
    fn pseudonymise(
        &mut self,
        select: &str,
        update: &str,
        cutoff: &str,
        with: impl Fn(&str) -> String,
    ) -> StoreResult<usize> {
        let rows = self
            .conn()
            .prepare(select)?
            .query_map([cutoff], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        for chunk in rows.chunks(BATCH) {
            self.write(|tx| {
                let mut stmt = tx.prepare_cached(update)?;
                for (id, value) in chunk {
                    stmt.execute(params![id, with(value)])?;
                }
                Ok::<_, super::StoreError>(())
            })?;
        }
        Ok(rows.len())
    }

    /// After a purge: the WAL (which holds earlier versions of the pages) is copied back and
    /// truncated, and with incremental auto-vacuum the free pages (zeroed by `secure_delete`)
    /// are given back in small steps. Returns the pages given back.
    fn reclaim(&mut self) -> StoreResult<i64> {
        let mut freed = 0;
        let incremental: i64 = self.conn().pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
        if incremental == 2 {
            loop {
                let free: i64 = self.conn().pragma_query_value(None, "freelist_count", |r| r.get(0))?;
                if free == 0 {
                    break;
                }
                let step = free.min(VACUUM_STEP);
                // The pragma frees a page each time it is stepped: step it to the end.
                let n = self.write(|tx| {
                    let mut stmt = tx.prepare(&format!("PRAGMA incremental_vacuum({step})"))?;
                    let mut rows = stmt.query([])?;
                    let mut n = 0i64;
                    while rows.next()?.is_some() {
                        n += 1;
                    }
                    Ok::<_, super::StoreError>(n)
                })?;
                if n == 0 {
                    break;
                }
                freed += n;
            }
        }
        // Readers may hold the WAL for a moment: a few tries, then leave it to the next purge.
        for _ in 0..20 {
            let (busy, _, _): (i64, i64, i64) = self
                .conn()
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            if busy == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(freed)
    }
}
