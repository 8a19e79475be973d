//! Market-wide rows for the order lifecycle, traders and admins: the store's side of
//! [`MarketRepo`].

use super::shopper::{RepoTx, audit};
use super::{StoreError, parse_ts, ts};
use crate::channel::UserKey;
use crate::conversation::{MarketRepo, RepoResult};
use crate::domain::catalog::Commodity;
use crate::domain::contact::{Address, PhoneNumber};
use crate::domain::money::Rupiah;
use crate::domain::order::{Order, OrderLine, OrderNumber, OrderStatus, PaymentMethod, SubOrder, SubOrderStatus};
use crate::domain::quantity::Quantity;
use crate::domain::slot::{DeliverySlot, SlotChoice};
use crate::text::Lang;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rusqlite::{OptionalExtension, params};

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

impl RepoTx<'_> {
    /// The order's total follows its sub-orders: weighed amounts, dropped stalls. A fully
    /// dropped order keeps the total it had, for the record.
    fn refresh_order_total(&self, sub_id: i64) -> RepoResult<()> {
        self.tx
            .prepare_cached(
                "UPDATE orders SET total = (SELECT SUM(total) FROM sub_orders WHERE order_id = orders.id AND status NOT IN ('rejected', 'cancelled'))
                 WHERE id = (SELECT order_id FROM sub_orders WHERE id = ?1)
                   AND EXISTS (SELECT 1 FROM sub_orders WHERE order_id = orders.id AND status NOT IN ('rejected', 'cancelled'))",
            )?
            .execute([sub_id])?;
        Ok(())
    }

    fn bump_catalog_version(&self) -> RepoResult<()> {
        self.tx
            .prepare_cached(
                "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'catalog_version'",
            )?
            .execute([])?;
        Ok(())
    }

    fn sub_orders_of(&self, order_id: i64) -> RepoResult<Vec<SubOrder>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT id, stall_id, status, reason, buyer_ack, escalation FROM sub_orders WHERE order_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([order_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut subs = Vec::with_capacity(rows.len());
        for (id, stall_id, status, reason, ack, escalation) in rows {
            let status = SubOrderStatus::from_code(&status)
                .ok_or_else(|| corrupt(format!("sub-order {id}: status {status}")))?;
            subs.push(SubOrder {
                id,
                order_id,
                stall_id,
                status,
                reason,
                buyer_acknowledged: ack != 0,
                escalation,
                lines: self.lines_of(id)?,
            });
        }
        Ok(subs)
    }

    fn lines_of(&self, sub_id: i64) -> RepoResult<Vec<OrderLine>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT id, offer_id, commodity_id, commodity_name, quantity, unit_price, total, ordered_quantity,
                    ordered_unit_price, out_of_stock, ordered_by
             FROM order_lines WHERE sub_order_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([sub_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, Option<String>>(10)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut lines = Vec::with_capacity(rows.len());
        for (id, offer_id, commodity_id, commodity_name, q, price, total, oq, oprice, oos, by) in rows {
            lines.push(OrderLine {
                id,
                offer_id,
                commodity_id,
                commodity_name,
                quantity: serde_json::from_str::<Quantity>(&q)?,
                unit_price: Rupiah(price),
                total: Rupiah(total),
                ordered_quantity: serde_json::from_str::<Quantity>(&oq)?,
                ordered_unit_price: Rupiah(oprice),
                out_of_stock: oos != 0,
                ordered_by: by.map(|b| serde_json::from_str(&b)).transpose()?,
            });
        }
        Ok(lines)
    }
}

impl MarketRepo for RepoTx<'_> {
    fn language_of(&mut self, user: &UserKey) -> RepoResult<Option<Lang>> {
        Ok(super::conversations::user_lang(self.tx, user)?)
    }

    fn staff_admins(&mut self) -> RepoResult<Vec<UserKey>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT channel, user_id FROM staff WHERE market = ?1 AND role = 'admin' ORDER BY since")?;
        let rows = stmt
            .query_map([self.market], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows.into_iter().filter_map(|(c, id)| Some(UserKey { channel: c.parse().ok()?, id })).collect())
    }

    fn stalls_of(&mut self, user: &UserKey) -> RepoResult<Vec<i64>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT t.stall_id FROM stall_traders t JOIN stalls s ON s.id = t.stall_id
             WHERE t.channel = ?1 AND t.user_id = ?2 AND s.market = ?3 ORDER BY s.number",
        )?;
        let rows = stmt.query_map(params![user.channel.code(), user.id, self.market], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<i64>, _>>()?)
    }

    fn traders_of(&mut self, stall_id: i64) -> RepoResult<Vec<UserKey>> {
        let mut stmt =
            self.tx.prepare_cached("SELECT channel, user_id FROM stall_traders WHERE stall_id = ?1 ORDER BY since")?;
        let rows = stmt
            .query_map([stall_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows.into_iter().filter_map(|(c, id)| Some(UserKey { channel: c.parse().ok()?, id })).collect())
    }

    fn create_invite(
        &mut self,
        code: &str,
        seed: &str,
        stall_id: i64,
        by: &UserKey,
        expires_at: DateTime<Utc>,
    ) -> RepoResult<()> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO invites (code, market, stall_id, created_by, created_at, expires_at, seed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![code, self.market, stall_id, by.to_string(), ts(self.now), ts(expires_at), seed])?;
        Ok(())
    }

    fn redeem_invite(&mut self, code: &str, user: &UserKey) -> RepoResult<Option<i64>> {
        let row: Option<(i64, String)> = self
            .tx
            .prepare_cached(
                "SELECT stall_id, expires_at FROM invites WHERE code = ?1 AND market = ?2 AND used_by IS NULL",
            )?
            .query_row(params![code, self.market], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((stall_id, expires_at)) = row else {
            return Ok(None);
        };
        if parse_ts(&expires_at)? <= self.now {
            return Ok(None);
        }
        self.tx.prepare_cached("UPDATE invites SET used_by = ?2, used_at = ?3 WHERE code = ?1")?.execute(params![
            code,
            user.to_string(),
            ts(self.now)
        ])?;
        self.tx
            .prepare_cached(
                "INSERT OR IGNORE INTO stall_traders (stall_id, channel, user_id, since) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![stall_id, user.channel.code(), user.id, ts(self.now)])?;
        Ok(Some(stall_id))
    }

    fn order(&mut self, order_id: i64) -> RepoResult<Option<Order>> {
        let row = self
            .tx
            .prepare_cached(
                "SELECT market, number, channel, user_id, status, buyer_name, phone, address, lat, lon, slot_date, slot,
                        payment, note, placed_at
                 FROM orders WHERE id = ?1 AND market = ?2",
            )?
            .query_row(params![order_id, self.market], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<f64>>(8)?,
                    r.get::<_, Option<f64>>(9)?,
                    r.get::<_, String>(10)?,
                    r.get::<_, String>(11)?,
                    r.get::<_, String>(12)?,
                    r.get::<_, Option<String>>(13)?,
                    r.get::<_, String>(14)?,
                ))
            })
            .optional()?;
        let Some((
            market,
            number,
            channel,
            user_id,
            status,
            name,
            phone,
            address,
            lat,
            lon,
            date,
            slot,
            payment,
            note,
            placed,
        )) = row
        else {
            return Ok(None);
        };
        let bad = |what: &str| corrupt(format!("order {number}: {what}"));
        let address = match (address, lat, lon) {
            (Some(t), _, _) => Address::Text(t),
            (None, Some(lat), Some(lon)) => Address::Location { lat, lon },
            _ => return Err(bad("address").into()),
        };
        Ok(Some(Order {
            id: order_id,
            market,
            number: OrderNumber::parse(&number).ok_or_else(|| bad("number"))?,
            buyer: UserKey { channel: channel.parse().map_err(|_| bad("channel"))?, id: user_id },
            status: OrderStatus::from_code(&status).ok_or_else(|| bad("status"))?,
            buyer_name: name,
            // Purged orders keep no number.
            phone: if phone.is_empty() {
                PhoneNumber::redacted()
            } else {
                PhoneNumber::parse(&phone).map_err(|_| bad("phone"))?
            },
            address,
            slot: SlotChoice {
                date: NaiveDate::parse_from_str(&date, "%Y-%m-%d").map_err(|_| bad("slot date"))?,
                slot: slot.parse::<DeliverySlot>().map_err(|_| bad("slot"))?,
            },
            payment: payment.parse::<PaymentMethod>().map_err(|_| bad("payment"))?,
            note,
            placed_at: parse_ts(&placed)?,
            subs: self.sub_orders_of(order_id)?,
        }))
    }

    fn order_id_by_number(&mut self, number: &OrderNumber) -> RepoResult<Option<i64>> {
        Ok(self
            .tx
            .prepare_cached("SELECT id FROM orders WHERE number = ?1 AND market = ?2")?
            .query_row(params![number.as_str(), self.market], |r| r.get(0))
            .optional()?)
    }

    fn order_id_of_sub(&mut self, sub_id: i64) -> RepoResult<Option<i64>> {
        Ok(self
            .tx
            .prepare_cached("SELECT s.order_id FROM sub_orders s JOIN orders o ON o.id = s.order_id WHERE s.id = ?1 AND o.market = ?2")?
            .query_row(params![sub_id, self.market], |r| r.get(0))
            .optional()?)
    }

    fn order_id_of_line(&mut self, line_id: i64) -> RepoResult<Option<i64>> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT s.order_id FROM order_lines l JOIN sub_orders s ON s.id = l.sub_order_id JOIN orders o ON o.id = s.order_id
                 WHERE l.id = ?1 AND o.market = ?2",
            )?
            .query_row(params![line_id, self.market], |r| r.get(0))
            .optional()?)
    }

    fn set_order_status(
        &mut self,
        order_id: i64,
        from: OrderStatus,
        to: OrderStatus,
        actor: &str,
        note: Option<&str>,
    ) -> RepoResult<()> {
        let n = self
            .tx
            .prepare_cached("UPDATE orders SET status = ?3, updated_at = ?4, reason = COALESCE(?5, reason) WHERE id = ?1 AND status = ?2")?
            .execute(params![order_id, from.code(), to.code(), ts(self.now), note])?;
        if n != 1 {
            return Err(corrupt(format!("order {order_id} was not {}", from.code())).into());
        }
        audit(self.tx, order_id, None, Some(from.code()), to.code(), actor, self.now)?;
        Ok(())
    }

    fn set_sub_status(
        &mut self,
        order_id: i64,
        sub_id: i64,
        from: SubOrderStatus,
        to: SubOrderStatus,
        actor: &str,
        reason: Option<&str>,
    ) -> RepoResult<()> {
        let n = self
            .tx
            .prepare_cached(
                "UPDATE sub_orders SET status = ?3, reason = COALESCE(?4, reason) WHERE id = ?1 AND status = ?2",
            )?
            .execute(params![sub_id, from.code(), to.code(), reason])?;
        if n != 1 {
            return Err(corrupt(format!("sub-order {sub_id} was not {}", from.code())).into());
        }
        audit(self.tx, order_id, Some(sub_id), Some(from.code()), to.code(), actor, self.now)?;
        self.refresh_order_total(sub_id)?;
        if let Some(r) = reason {
            self.tx
                .prepare_cached("UPDATE order_events SET note = ?2 WHERE id = (SELECT MAX(id) FROM order_events WHERE sub_order_id = ?1)")?
                .execute(params![sub_id, r])?;
        }
        Ok(())
    }

    fn set_sub_deadline(&mut self, sub_id: i64, at: Option<DateTime<Utc>>, escalation: i64) -> RepoResult<()> {
        self.tx
            .prepare_cached("UPDATE sub_orders SET deadline_at = ?2, escalation = ?3 WHERE id = ?1")?
            .execute(params![sub_id, at.map(ts), escalation])?;
        Ok(())
    }

    fn acknowledge_sub(&mut self, sub_id: i64) -> RepoResult<()> {
        self.tx.prepare_cached("UPDATE sub_orders SET buyer_ack = 1 WHERE id = ?1")?.execute([sub_id])?;
        Ok(())
    }

    fn update_line(&mut self, sub_id: i64, line: &OrderLine, actor: &str) -> RepoResult<()> {
        self.tx
            .prepare_cached(
                "UPDATE order_lines SET quantity = ?2, quantity_base = ?3, unit_price = ?4, total = ?5, out_of_stock = ?6
                 WHERE id = ?1 AND sub_order_id = ?7",
            )?
            .execute(params![
                line.id,
                serde_json::to_string(&line.quantity)?,
                line.quantity.base() as i64,
                line.unit_price.value(),
                line.total.value(),
                i64::from(line.out_of_stock),
                sub_id
            ])?;
        self.tx
            .prepare_cached(
                "UPDATE sub_orders SET total = (SELECT COALESCE(SUM(total), 0) FROM order_lines WHERE sub_order_id = ?1 AND out_of_stock = 0)
                 WHERE id = ?1",
            )?
            .execute([sub_id])?;
        // The audit keeps what the trader changed: the status stays, the note says how.
        let note = if line.out_of_stock {
            format!("line {} {}: out of stock", line.id, line.commodity_id)
        } else {
            format!(
                "line {} {}: {} base units at Rp {} = Rp {}",
                line.id,
                line.commodity_id,
                line.quantity.base(),
                line.unit_price.value(),
                line.total.value()
            )
        };
        self.tx
            .prepare_cached(
                "INSERT INTO order_events (order_id, sub_order_id, from_status, to_status, actor, at, note)
                 SELECT order_id, id, status, status, ?2, ?3, ?4 FROM sub_orders WHERE id = ?1",
            )?
            .execute(params![sub_id, actor, ts(self.now), note])?;
        self.refresh_order_total(sub_id)
    }

    fn release_stock(&mut self, offer_id: i64, base: u64) -> RepoResult<()> {
        self.tx
            .prepare_cached("UPDATE offers SET stock = stock + ?2 WHERE id = ?1 AND stock IS NOT NULL")?
            .execute(params![offer_id, base as i64])?;
        Ok(())
    }

    fn take_stock(&mut self, offer_id: i64, base: u64) -> RepoResult<bool> {
        let n = self
            .tx
            .prepare_cached("UPDATE offers SET stock = stock - ?2 WHERE id = ?1 AND (stock IS NULL OR stock >= ?2)")?
            .execute(params![offer_id, base as i64])?;
        Ok(n > 0)
    }

    fn stock_of(&mut self, offer_id: i64) -> RepoResult<Option<u64>> {
        let stock: Option<Option<i64>> = self
            .tx
            .prepare_cached("SELECT stock FROM offers WHERE id = ?1")?
            .query_row([offer_id], |r| r.get(0))
            .optional()?;
        Ok(stock.flatten().map(|s| s.max(0) as u64))
    }

    fn due_sub_orders(&mut self, now: DateTime<Utc>) -> RepoResult<Vec<i64>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT s.id FROM sub_orders s JOIN orders o ON o.id = s.order_id
             WHERE s.status = 'awaiting_trader' AND s.deadline_at <= ?1 AND o.market = ?2 ORDER BY s.deadline_at, s.id",
        )?;
        let rows = stmt.query_map(params![ts(now), self.market], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<i64>, _>>()?)
    }

    fn open_sub_orders(&mut self, stalls: &[i64]) -> RepoResult<Vec<i64>> {
        let mut out = Vec::new();
        for stall in stalls {
            let mut stmt = self.tx.prepare_cached(
                "SELECT id FROM sub_orders WHERE stall_id = ?1 AND status IN ('awaiting_trader', 'adjusted', 'accepted') ORDER BY id",
            )?;
            let rows = stmt.query_map([stall], |r| r.get(0))?;
            for r in rows {
                out.push(r?);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn sales_on(&mut self, stalls: &[i64], date: NaiveDate) -> RepoResult<(usize, Rupiah)> {
        // Orders placed on the local date: from local midnight (UTC+7) to the next.
        let start =
            date.and_hms_opt(0, 0, 0).map(|t| t - chrono::Duration::hours(7)).ok_or_else(|| corrupt("date".into()))?;
        let (from, to) = (ts(start.and_utc()), ts((start + chrono::Duration::days(1)).and_utc()));
        let (mut count, mut total) = (0usize, 0i64);
        for stall in stalls {
            let (n, sum): (i64, i64) = self
                .tx
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(s.total), 0) FROM sub_orders s JOIN orders o ON o.id = s.order_id
                     WHERE s.stall_id = ?1 AND s.status IN ('accepted', 'packed', 'picked_up')
                       AND o.placed_at >= ?2 AND o.placed_at < ?3",
                )?
                .query_row(params![stall, from, to], |r| Ok((r.get(0)?, r.get(1)?)))?;
            count += n as usize;
            total += sum;
        }
        Ok((count, Rupiah(total)))
    }

    fn set_price(&mut self, stall_id: i64, commodity_id: &str, price: Rupiah) -> RepoResult<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO offers (stall_id, commodity_id, price) VALUES (?1, ?2, ?3)
                 ON CONFLICT (stall_id, commodity_id) DO UPDATE SET price = excluded.price",
            )?
            .execute(params![stall_id, commodity_id, price.value()])?;
        self.bump_catalog_version()
    }

    fn set_stock(&mut self, stall_id: i64, commodity_id: &str, stock: Option<u64>) -> RepoResult<bool> {
        let n = self
            .tx
            .prepare_cached("UPDATE offers SET stock = ?3 WHERE stall_id = ?1 AND commodity_id = ?2")?
            .execute(params![stall_id, commodity_id, stock.map(|s| s as i64)])?;
        Ok(n > 0)
    }

    fn market_orders(
        &mut self,
        statuses: &[OrderStatus],
        offset: usize,
        limit: usize,
    ) -> RepoResult<(Vec<crate::domain::order::MarketOrderRow>, usize)> {
        // The statuses as one JSON array parameter: one prepared statement for every filter.
        let codes = serde_json::to_string(&statuses.iter().map(|s| s.code()).collect::<Vec<_>>())?;
        let mut stmt = self.tx.prepare_cached(
            "SELECT number, status, total, placed_at, buyer_name FROM orders
             WHERE market = ?1 AND status IN (SELECT value FROM json_each(?2)) ORDER BY id DESC",
        )?;
        let rows = stmt.query_map(params![self.market, codes], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        let mut total = 0;
        for row in rows {
            total += 1;
            if total <= offset || out.len() >= limit {
                continue;
            }
            let (number, status, amount, placed_at, buyer_name) = row?;
            let bad = |what: &str| corrupt(format!("order {number}: {what}"));
            out.push(crate::domain::order::MarketOrderRow {
                number: OrderNumber::parse(&number).ok_or_else(|| bad("number"))?,
                status: OrderStatus::from_code(&status).ok_or_else(|| bad("status"))?,
                total: Rupiah(amount),
                placed_at: parse_ts(&placed_at)?,
                buyer_name,
            });
        }
        Ok((out, total))
    }

    fn set_reference_price(&mut self, commodity_id: &str, price: Rupiah) -> RepoResult<()> {
        self.tx
            .prepare_cached("UPDATE commodities SET reference_price = ?2 WHERE id = ?1")?
            .execute(params![commodity_id, price.value()])?;
        self.bump_catalog_version()
    }

    fn set_stall_active(&mut self, stall_id: i64, active: bool) -> RepoResult<()> {
        self.tx.prepare_cached("UPDATE stalls SET active = ?2 WHERE id = ?1 AND market = ?3")?.execute(params![
            stall_id,
            active,
            self.market
        ])?;
        self.bump_catalog_version()
    }

    fn set_courier_active(&mut self, courier_id: i64, active: bool) -> RepoResult<()> {
        self.tx
            .prepare_cached(
                "UPDATE couriers SET active = ?2, on_shift = CASE WHEN ?2 THEN on_shift ELSE 0 END
                 WHERE id = ?1 AND market = ?3",
            )?
            .execute(params![courier_id, active, self.market])?;
        Ok(())
    }

    fn response_times(&mut self, since: DateTime<Utc>) -> RepoResult<Vec<(i64, u32, f64)>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT s.stall_id, COUNT(*), AVG((julianday(e.at) - julianday(o.placed_at)) * 1440.0)
             FROM order_events e JOIN sub_orders s ON s.id = e.sub_order_id JOIN orders o ON o.id = e.order_id
             WHERE o.market = ?1 AND o.placed_at >= ?2 AND e.from_status = 'awaiting_trader'
               AND e.to_status IN ('accepted', 'adjusted', 'rejected') AND e.actor LIKE 'trader:%'
             GROUP BY s.stall_id",
        )?;
        let rows = stmt
            .query_map(params![self.market, ts(since)], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, f64>(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn set_market_closed(&mut self, reason: Option<&str>) -> RepoResult<()> {
        self.tx
            .prepare_cached("UPDATE markets SET closed_reason = ?2 WHERE slug = ?1")?
            .execute(params![self.market, reason])?;
        self.bump_catalog_version()
    }

    fn set_closed(&mut self, stall_id: i64, on: Option<NaiveDate>) -> RepoResult<()> {
        self.tx
            .prepare_cached("UPDATE stalls SET closed_on = ?2 WHERE id = ?1")?
            .execute(params![stall_id, on.map(|d| d.format("%Y-%m-%d").to_string())])?;
        self.bump_catalog_version()
    }

    fn set_market_hours(&mut self, opens: NaiveTime, closes: NaiveTime, slots: &[DeliverySlot]) -> RepoResult<()> {
        let slots: Vec<String> = slots.iter().map(DeliverySlot::to_string).collect();
        self.tx.prepare_cached("UPDATE markets SET opens = ?2, closes = ?3, slots = ?4 WHERE slug = ?1")?.execute(
            params![
                self.market,
                opens.format("%H:%M").to_string(),
                closes.format("%H:%M").to_string(),
                slots.join(",")
            ],
        )?;
        self.bump_catalog_version()
    }

    fn set_slot_capacity(&mut self, capacity: u32) -> RepoResult<()> {
        self.tx
            .prepare_cached("UPDATE markets SET slot_capacity = ?2 WHERE slug = ?1")?
            .execute(params![self.market, capacity])?;
        self.bump_catalog_version()
    }

    fn add_commodity(&mut self, c: &Commodity) -> RepoResult<()> {
        super::catalog::insert_commodity(self.tx, c)?;
        self.bump_catalog_version()
    }

    fn update_commodity(&mut self, c: &Commodity) -> RepoResult<()> {
        self.tx
            .prepare_cached(
                "UPDATE commodities SET category = ?2, name = ?3, name_en = ?4, aliases = ?5, javanese = ?6 WHERE id = ?1",
            )?
            .execute(params![c.id, c.category.slug(), c.name, c.name_en, c.aliases.join("|"), c.javanese.join("|")])?;
        self.bump_catalog_version()
    }

    fn set_commodity_photo(&mut self, commodity_id: &str, reference: Option<&str>, by: &UserKey) -> RepoResult<()> {
        match reference {
            Some(reference) => self
                .tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO commodity_photos (market, commodity_id, channel, reference, set_by, set_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    self.market,
                    commodity_id,
                    by.channel.code(),
                    reference,
                    by.to_string(),
                    ts(self.now)
                ])?,
            None => self
                .tx
                .prepare_cached(
                    "DELETE FROM commodity_photos WHERE market = ?1 AND commodity_id = ?2 AND channel = ?3",
                )?
                .execute(params![self.market, commodity_id, by.channel.code()])?,
        };
        self.bump_catalog_version()
    }
}
