//! Payment requests and the money ledger: the store's side of [`PaymentRepo`].

use super::shopper::RepoTx;
use super::{StoreError, parse_ts, ts};
use crate::conversation::{PaymentRepo, RepoResult};
use crate::domain::money::Rupiah;
use crate::domain::order::{OrderNumber, PaymentMethod};
use crate::domain::payment::{LedgerEntry, LedgerKind, NewPayment, Payment, PaymentStatus};
use crate::integration::bank::VaCharge;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

const PAYMENT_COLUMNS: &str =
    "id, order_id, method, amount, unique_code, reference, status, created_at, expires_at, reminded";

type PaymentRow = (i64, i64, String, i64, i64, Option<String>, String, String, String, i64);

fn payment_row(r: &Row<'_>) -> rusqlite::Result<PaymentRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
}

fn payment_from(row: PaymentRow) -> Result<Payment, StoreError> {
    let (id, order_id, method, amount, unique_code, reference, status, created, expires, reminded) = row;
    let bad = |what: &str| StoreError::Corrupt(format!("payment {id}: {what}"));
    Ok(Payment {
        id,
        order_id,
        method: method.parse().map_err(|_| bad("method"))?,
        amount: Rupiah(amount),
        unique_code,
        reference,
        status: PaymentStatus::from_code(&status).ok_or_else(|| bad("status"))?,
        created_at: parse_ts(&created)?,
        expires_at: parse_ts(&expires)?,
        reminded: reminded != 0,
    })
}

type LedgerRow = (i64, String, String, i64, String, String, Option<String>, Option<String>);

fn ledger_row(r: &Row<'_>) -> rusqlite::Result<LedgerRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}

fn ledger_from(row: LedgerRow) -> Result<LedgerEntry, StoreError> {
    let (order_id, kind, method, amount, at, actor, reference, note) = row;
    let bad = |what: &str| StoreError::Corrupt(format!("ledger of order {order_id}: {what}"));
    Ok(LedgerEntry {
        order_id,
        kind: LedgerKind::from_code(&kind).ok_or_else(|| bad("kind"))?,
        method: method.parse::<PaymentMethod>().map_err(|_| bad("method"))?,
        amount: Rupiah(amount),
        at: parse_ts(&at)?,
        actor,
        reference,
        note,
    })
}

const LEDGER_COLUMNS: &str = "order_id, kind, method, amount, at, actor, reference, note";

impl PaymentRepo for RepoTx<'_> {
    fn create_payment(&mut self, p: &NewPayment) -> RepoResult<Payment> {
        self.tx
            .prepare_cached(
                "INSERT INTO payments (order_id, market, method, amount, unique_code, reference, status,
                                       created_at, expires_at, due_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9)",
            )?
            .execute(params![
                p.order_id,
                self.market,
                p.method.code(),
                p.amount.0,
                p.unique_code,
                p.reference,
                ts(p.created_at),
                ts(p.expires_at),
                ts(p.remind_at.min(p.expires_at)),
            ])?;
        let id = self.tx.last_insert_rowid();
        self.payment(id)?.ok_or_else(|| StoreError::Corrupt(format!("payment {id} vanished")).into())
    }

    fn payment(&mut self, id: i64) -> RepoResult<Option<Payment>> {
        let row = self
            .tx
            .prepare_cached(&format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = ?1 AND market = ?2"))?
            .query_row(params![id, self.market], payment_row)
            .optional()?;
        Ok(row.map(payment_from).transpose()?)
    }

    fn current_payment(&mut self, order_id: i64) -> RepoResult<Option<Payment>> {
        let row = self
            .tx
            .prepare_cached(&format!(
                "SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = ?1 AND market = ?2 ORDER BY id DESC LIMIT 1"
            ))?
            .query_row(params![order_id, self.market], payment_row)
            .optional()?;
        Ok(row.map(payment_from).transpose()?)
    }

    fn set_payment_status(&mut self, payment_id: i64, status: PaymentStatus) -> RepoResult<()> {
        let paid_at = (status == PaymentStatus::Paid).then(|| ts(self.now));
        self.tx
            .prepare_cached("UPDATE payments SET status = ?2, paid_at = COALESCE(?3, paid_at) WHERE id = ?1")?
            .execute(params![payment_id, status.code(), paid_at])?;
        Ok(())
    }

    fn payment_reminded(&mut self, payment_id: i64) -> RepoResult<()> {
        self.tx
            .prepare_cached("UPDATE payments SET reminded = 1, due_at = expires_at WHERE id = ?1")?
            .execute([payment_id])?;
        Ok(())
    }

    fn due_payments(&mut self, now: DateTime<Utc>) -> RepoResult<Vec<i64>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT id FROM payments WHERE status = 'pending' AND due_at <= ?1 AND market = ?2 ORDER BY due_at, id",
        )?;
        let rows = stmt.query_map(params![ts(now), self.market], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<i64>, _>>()?)
    }

    fn pending_transfer_amounts(&mut self) -> RepoResult<Vec<Rupiah>> {
        // Every market's: markets without an account of their own share the city's, so a code
        // must name one order across them all.
        let mut stmt =
            self.tx.prepare_cached("SELECT amount FROM payments WHERE status = 'pending' AND method = 'transfer'")?;
        let rows = stmt.query_map([], |r| r.get(0).map(Rupiah))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn record_ledger(&mut self, e: &LedgerEntry) -> RepoResult<bool> {
        let written = self
            .tx
            .prepare_cached(
                "INSERT INTO ledger (order_id, market, kind, method, amount, at, actor, reference, note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (reference) DO NOTHING",
            )?
            .execute(params![
                e.order_id,
                self.market,
                e.kind.code(),
                e.method.code(),
                e.amount.0,
                ts(e.at),
                e.actor,
                e.reference,
                e.note
            ])?;
        Ok(written == 1)
    }

    fn ledger(&mut self, order_id: i64) -> RepoResult<Vec<LedgerEntry>> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger WHERE order_id = ?1 AND market = ?2 ORDER BY id"
        ))?;
        let rows = stmt.query_map(params![order_id, self.market], ledger_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows.into_iter().map(ledger_from).collect::<Result<Vec<_>, _>>()?)
    }

    fn ledger_between(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> RepoResult<Vec<(OrderNumber, LedgerEntry)>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT o.number, l.order_id, l.kind, l.method, l.amount, l.at, l.actor, l.reference, l.note
             FROM ledger l JOIN orders o ON o.id = l.order_id
             WHERE l.market = ?1 AND l.at >= ?2 AND l.at < ?3 ORDER BY l.at, l.id",
        )?;
        let rows = stmt
            .query_map(params![self.market, ts(from), ts(to)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?),
                ))
            })?
            .collect::<Result<Vec<(String, LedgerRow)>, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (number, row) in rows {
            let number =
                OrderNumber::parse(&number).ok_or_else(|| StoreError::Corrupt(format!("order number {number}")))?;
            out.push((number, ledger_from(row)?));
        }
        Ok(out)
    }

    fn request_virtual_account(&mut self, charge: &VaCharge) -> RepoResult<()> {
        self.tx
            .prepare_cached(
                "INSERT OR IGNORE INTO bank_requests (market, payment_id, body, next_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![self.market, charge.payment_id, serde_json::to_string(charge)?, ts(self.now)])?;
        Ok(())
    }

    fn set_payment_reference(&mut self, payment_id: i64, reference: &str) -> RepoResult<()> {
        self.tx
            .prepare_cached("UPDATE payments SET reference = ?2 WHERE id = ?1 AND market = ?3")?
            .execute(params![payment_id, reference, self.market])?;
        Ok(())
    }

    fn refunds_outstanding(&mut self) -> RepoResult<Vec<(OrderNumber, Rupiah)>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT o.number, SUM(CASE l.kind WHEN 'payment' THEN 0 WHEN 'refund' THEN -l.amount ELSE l.amount END) AS due
             FROM ledger l JOIN orders o ON o.id = l.order_id
             WHERE l.market = ?1 AND l.kind IN ('refund_owed', 'goodwill', 'refund')
             GROUP BY l.order_id HAVING due > 0 ORDER BY l.order_id",
        )?;
        let rows = stmt
            .query_map([self.market], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (number, due) in rows {
            let number =
                OrderNumber::parse(&number).ok_or_else(|| StoreError::Corrupt(format!("order number {number}")))?;
            out.push((number, Rupiah(due)));
        }
        Ok(out)
    }
}

/// A virtual-account request waiting for the bank's API.
#[derive(Debug, Clone, PartialEq)]
pub struct BankRequest {
    pub id: i64,
    pub market: String,
    pub charge: VaCharge,
    pub attempts: u32,
}

impl super::Store {
    /// Virtual-account requests due to be posted, oldest first.
    pub fn due_bank_requests(&self, now: DateTime<Utc>, limit: usize) -> super::StoreResult<Vec<BankRequest>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, market, body, attempts FROM bank_requests
             WHERE status = 'pending' AND next_at <= ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![ts(now), limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, u32>(3)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, market, body, attempts) in rows {
            let charge: VaCharge = serde_json::from_str(&body)?;
            out.push(BankRequest { id, market, charge, attempts });
        }
        Ok(out)
    }

    /// The bank answered for good (a virtual account, or a refusal): the request is done and the
    /// answer goes into the inbox for the engine, in one transaction. False when it was done
    /// already.
    pub fn bank_request_answered(
        &mut self,
        id: i64,
        failed: Option<&str>,
        event: &crate::channel::InboundEvent,
    ) -> super::StoreResult<bool> {
        self.write(|tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE bank_requests SET status = ?2, attempts = attempts + 1, last_error = ?3
                     WHERE id = ?1 AND status = 'pending'",
                )?
                .execute(params![id, if failed.is_some() { "failed" } else { "sent" }, failed])?;
            if n == 0 {
                return Ok(false);
            }
            super::ingest_in(tx, event)?;
            Ok(true)
        })
    }

    /// Posting failed for now: try again at `next_at`.
    pub fn bank_request_retry(&mut self, id: i64, error: &str, next_at: DateTime<Utc>) -> super::StoreResult<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE bank_requests SET attempts = attempts + 1, last_error = ?2, next_at = ?3 WHERE id = ?1",
            )?
            .execute(params![id, error, ts(next_at)])?;
            Ok(())
        })
    }

    /// The latest payment request of an order of a market.
    pub fn latest_payment_of(&self, market: &str, number: &OrderNumber) -> super::StoreResult<Option<i64>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT p.id FROM payments p JOIN orders o ON o.id = p.order_id
                 WHERE o.market = ?1 AND o.number = ?2 ORDER BY p.id DESC LIMIT 1",
            )?
            .query_row(params![market, number.as_str()], |r| r.get(0))
            .optional()?)
    }

    /// The market of a payment request (bank notifications name only the request).
    pub fn payment_market(&self, payment_id: i64) -> super::StoreResult<Option<String>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT market FROM payments WHERE id = ?1")?
            .query_row([payment_id], |r| r.get(0))
            .optional()?)
    }
}
