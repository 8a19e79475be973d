//! Administration rows: market admins' invite codes and the audit of admin commands, the
//! store's side of [`AdminRepo`].

use super::shopper::RepoTx;
use super::{StoreError, parse_ts, ts};
use crate::channel::UserKey;
use crate::conversation::{AdminAction, AdminRepo, RepoResult};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

impl AdminRepo for RepoTx<'_> {
    fn create_admin_invite(
        &mut self,
        code: &str,
        seed: &str,
        by: &UserKey,
        expires_at: DateTime<Utc>,
    ) -> RepoResult<()> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO admin_invites (code, market, created_by, created_at, expires_at, seed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![code, self.market, by.to_string(), ts(self.now), ts(expires_at), seed])?;
        Ok(())
    }

    fn forget_code(&mut self, user: &UserKey, code: &str) -> RepoResult<()> {
        // The message being handled is still pending (it is marked done in this transaction):
        // the partial index of pending rows keeps this a look at a few rows.
        self.tx
            .prepare_cached(
                "UPDATE inbox SET event = replace(event, ?1, ?2)
                 WHERE status = 'pending' AND market = ?3 AND channel = ?4 AND user_id = ?5 AND instr(event, ?1) > 0",
            )?
            .execute(params![code, crate::domain::invite::REDACTED, self.market, user.channel.code(), user.id])?;
        Ok(())
    }

    fn redeem_admin_invite(&mut self, code: &str, user: &UserKey) -> RepoResult<bool> {
        let expires: Option<String> = self
            .tx
            .prepare_cached("SELECT expires_at FROM admin_invites WHERE code = ?1 AND market = ?2 AND used_by IS NULL")?
            .query_row(params![code, self.market], |r| r.get(0))
            .optional()?;
        let Some(expires) = expires else {
            return Ok(false);
        };
        if parse_ts(&expires)? <= self.now {
            return Ok(false);
        }
        self.tx
            .prepare_cached("UPDATE admin_invites SET used_by = ?2, used_at = ?3 WHERE code = ?1")?
            .execute(params![code, user.to_string(), ts(self.now)])?;
        self.tx
            .prepare_cached(
                "INSERT OR IGNORE INTO staff (market, channel, user_id, role, since) VALUES (?1, ?2, ?3, 'admin', ?4)",
            )?
            .execute(params![self.market, user.channel.code(), user.id, ts(self.now)])?;
        Ok(true)
    }

    fn remove_admin(&mut self, user: &UserKey) -> RepoResult<bool> {
        let n = self
            .tx
            .prepare_cached("DELETE FROM staff WHERE market = ?1 AND channel = ?2 AND user_id = ?3 AND role = 'admin'")?
            .execute(params![self.market, user.channel.code(), user.id])?;
        Ok(n > 0)
    }

    fn request_backup(&mut self, by: &UserKey) -> RepoResult<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO backup_requests (market, channel, user_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![self.market, by.channel.code(), by.id, ts(self.now)])?;
        Ok(())
    }

    fn record_admin_action(&mut self, a: &AdminAction) -> RepoResult<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO admin_audit (market, actor, command, object, detail, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![self.market, a.actor.to_string(), a.command, a.object, a.detail, ts(a.at)])?;
        Ok(())
    }

    fn admin_actions(&mut self, limit: usize) -> RepoResult<Vec<AdminAction>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT actor, command, object, detail, at FROM admin_audit WHERE market = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![self.market, limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (actor, command, object, detail, at) in rows {
            let (channel, id) =
                actor.split_once(':').ok_or_else(|| StoreError::Corrupt(format!("audit actor `{actor}`")))?;
            let channel = channel.parse().map_err(|_| StoreError::Corrupt(format!("audit actor `{actor}`")))?;
            out.push(AdminAction {
                actor: UserKey { channel, id: id.to_string() },
                command,
                object,
                detail,
                at: parse_ts(&at)?,
            });
        }
        Ok(out)
    }
}

/// A backup an admin asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupRequest {
    pub id: i64,
    pub market: String,
    pub by: UserKey,
}

impl super::Store {
    /// Backups asked for and not made yet, oldest first.
    pub fn pending_backups(&self) -> super::StoreResult<Vec<BackupRequest>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, market, channel, user_id FROM backup_requests WHERE done_at IS NULL ORDER BY id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, market, channel, user_id) in rows {
            let channel = channel.parse().map_err(StoreError::Corrupt)?;
            out.push(BackupRequest { id, market, by: UserKey { channel, id: user_id } });
        }
        Ok(out)
    }

    /// The backup was made (or failed): the request is done and the report (written in the
    /// asker's language, if they chose one) goes to whoever asked, in one transaction.
    pub fn finish_backup(
        &mut self,
        request: &BackupRequest,
        report: impl FnOnce(Option<crate::text::Lang>) -> crate::channel::Envelope,
        now: DateTime<Utc>,
    ) -> super::StoreResult<()> {
        self.write(|tx| {
            tx.prepare_cached("UPDATE backup_requests SET done_at = ?2 WHERE id = ?1")?
                .execute(params![request.id, ts(now)])?;
            let lang = super::user_lang(tx, &request.by)?;
            super::enqueue(tx, &report(lang), None, now)?;
            Ok(())
        })
    }

    /// The database file this store has open (none for an in-memory one).
    pub fn path(&self) -> Option<std::path::PathBuf> {
        self.conn().path().filter(|p| !p.is_empty()).map(std::path::PathBuf::from)
    }

    /// An online backup of the database at `db` to the new file `to`, checked with `PRAGMA
    /// integrity_check`; returns its size in bytes. The copy is `VACUUM INTO` on a connection
    /// of its own: one read transaction from start to end, so it never starts over when another
    /// connection commits (SQLite's backup API restarts on every commit of another connection,
    /// and with webhooks writing it never finished) and never holds up a writer (readers do not
    /// block writers in WAL mode). The copy holds no freed pages: what a purge deleted is not in
    /// it.
    pub fn backup_file(db: &std::path::Path, to: &std::path::Path) -> super::StoreResult<u64> {
        if to.exists() {
            return Err(StoreError::Corrupt(format!("backup {}: the file exists already", to.display())));
        }
        // Written under another name and renamed once checked: a copy cut short (the process
        // stopped) or failing its check never looks like a backup.
        let partial = to.with_extension("partial");
        let _ = std::fs::remove_file(&partial);
        let partial_text = partial
            .to_str()
            .ok_or_else(|| StoreError::Corrupt(format!("backup {}: not a UTF-8 path", to.display())))?;
        let src = rusqlite::Connection::open(db)?;
        src.busy_handler(Some(super::short_busy_wait))?;
        src.execute("VACUUM INTO ?1", [partial_text])?;
        drop(src);
        let dst = rusqlite::Connection::open(&partial)?;
        let check: String = dst.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        drop(dst);
        if check != "ok" {
            let _ = std::fs::remove_file(&partial);
            return Err(StoreError::Corrupt(format!("backup {}: integrity_check says {check}", to.display())));
        }
        std::fs::rename(&partial, to).map_err(|e| StoreError::Corrupt(format!("backup {}: {e}", to.display())))?;
        std::fs::metadata(to).map(|m| m.len()).map_err(|e| StoreError::Corrupt(format!("backup {}: {e}", to.display())))
    }
}

/// An invite used or expired and not redacted yet: its key, market, creator, creation time and
/// seed.
type SpentInvite = (String, String, String, String, String);

/// The tables of invite codes (traders', couriers', market admins').
const INVITE_TABLES: [&str; 3] = ["invites", "courier_invites", "admin_invites"];

/// Replaces `code` by [`crate::domain::invite::REDACTED`] in the messages sent to `created_by`
/// (a `channel:id` key) in `market` since `since`.
fn redact_sent_code(
    tx: &super::Tx<'_>,
    market: &str,
    created_by: &str,
    since: &str,
    code: &str,
) -> super::StoreResult<()> {
    let Some((channel, id)) = created_by.split_once(':') else {
        return Ok(());
    };
    tx.prepare_cached(
        "UPDATE outbox SET message = replace(message, ?1, ?2)
         WHERE market = ?3 AND channel = ?4 AND recipient = ?5 AND status = 'sent' AND created_at >= ?6
           AND instr(message, ?1) > 0",
    )?
    .execute(params![code, crate::domain::invite::REDACTED, market, channel, id, since])?;
    Ok(())
}

impl super::Store {
    /// Invite codes stored in clear (before migration 20) become their keys (`key_of`); the
    /// sent messages that carried them are redacted (their admin has them), and those already
    /// used or expired count as redacted. Returns how many were re-keyed.
    pub fn rekey_clear_invites(
        &mut self,
        key_of: impl Fn(&str) -> String,
        now: DateTime<Utc>,
    ) -> super::StoreResult<usize> {
        let code_len = crate::domain::invite::CODE_LEN as i64;
        // A look first: on every open but the first after an upgrade there is nothing to do,
        // and no write transaction is needed for nothing.
        let mut any = false;
        for table in INVITE_TABLES {
            any |= self
                .conn()
                .prepare(&format!("SELECT 1 FROM {table} WHERE length(code) = ?1 LIMIT 1"))?
                .exists([code_len])?;
        }
        if !any {
            return Ok(0);
        }
        self.write(|tx| {
            let mut n = 0;
            for table in INVITE_TABLES {
                let rows = tx
                    .prepare(&format!(
                        "SELECT code, market, created_by, created_at FROM {table} WHERE length(code) = ?1"
                    ))?
                    .query_map([code_len], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                for (code, market, created_by, created_at) in rows {
                    redact_sent_code(tx, &market, &created_by, &created_at, &code)?;
                    // Its messages are redacted now (there is no seed to find the code by later).
                    tx.prepare(&format!("UPDATE {table} SET code = ?2, redacted_at = ?3 WHERE code = ?1"))?
                        .execute(params![code, key_of(&code), ts(now)])?;
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    /// Redacts the codes of invites used or expired (and not redacted yet) from the messages
    /// that carried them to their admins: `code_of` makes a code again from its seed. Returns
    /// how many invites were redacted.
    pub fn redact_spent_invites(
        &mut self,
        code_of: impl Fn(&str) -> String,
        now: DateTime<Utc>,
    ) -> super::StoreResult<usize> {
        let spent = |conn: &rusqlite::Connection, table: &str| -> rusqlite::Result<Vec<SpentInvite>> {
            conn.prepare_cached(&format!(
                "SELECT code, market, created_by, created_at, seed FROM {table}
                 WHERE redacted_at IS NULL AND seed IS NOT NULL AND (used_at IS NOT NULL OR expires_at <= ?1)"
            ))?
            .query_map([ts(now)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect()
        };
        // A look first (most passes find nothing), then a write only when there is something.
        let mut any = false;
        for table in INVITE_TABLES {
            any |= !spent(self.conn(), table)?.is_empty();
        }
        if !any {
            return Ok(0);
        }
        self.write(|tx| {
            let mut n = 0;
            for table in INVITE_TABLES {
                for (key, market, created_by, created_at, seed) in spent(tx, table)? {
                    redact_sent_code(tx, &market, &created_by, &created_at, &code_of(&seed))?;
                    tx.prepare_cached(&format!("UPDATE {table} SET redacted_at = ?2 WHERE code = ?1"))?
                        .execute(params![key, ts(now)])?;
                    n += 1;
                }
            }
            Ok(n)
        })
    }
}
