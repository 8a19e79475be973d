//! A shopper's cart, profile and orders, inside one transaction: the store's side of
//! [`ShopperRepo`].

use super::{StoreError, StoreResult, Tx, parse_ts, ts};
use crate::channel::UserKey;
use crate::conversation::{PlaceRefusal, PlacedOrder, Profile, RepoError, RepoResult, ShopperRepo};
use crate::domain::cart::CartLine;
use crate::domain::contact::{Address, PhoneNumber};
use crate::domain::money::Rupiah;
use crate::domain::order::{
    CancelRefusal, NewOrder, OrderNumber, OrderStatus, OrderSummary, PaymentMethod, SubOrderStatus, SubOrderView,
    buyer_may_cancel,
};
use crate::domain::slot::{DeliverySlot, SlotChoice};
use crate::text::Lang;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;

impl From<StoreError> for RepoError {
    fn from(e: StoreError) -> RepoError {
        RepoError(Box::new(e))
    }
}

impl From<rusqlite::Error> for RepoError {
    fn from(e: rusqlite::Error) -> RepoError {
        RepoError(Box::new(StoreError::from(e)))
    }
}

impl From<serde_json::Error> for RepoError {
    fn from(e: serde_json::Error) -> RepoError {
        RepoError(Box::new(StoreError::from(e)))
    }
}

/// One shopper in one market, inside the current transaction.
pub struct RepoTx<'a> {
    pub tx: &'a super::Tx<'a>,
    pub market: &'a str,
    pub user: &'a UserKey,
    pub now: DateTime<Utc>,
}

/// Records a status change in the audit table.
pub fn audit(
    tx: &Tx<'_>,
    order_id: i64,
    sub_order_id: Option<i64>,
    from: Option<&str>,
    to: &str,
    actor: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO order_events (order_id, sub_order_id, from_status, to_status, actor, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![order_id, sub_order_id, from, to, actor, ts(at)])?;
    Ok(())
}

impl RepoTx<'_> {
    fn channel(&self) -> &'static str {
        self.user.channel.code()
    }

    fn actor(&self) -> String {
        format!("buyer:{}", self.user)
    }

    fn touch_user(&self) -> StoreResult<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO users (channel, user_id, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (channel, user_id) DO UPDATE SET updated_at = excluded.updated_at",
            )?
            .execute(params![self.channel(), self.user.id, ts(self.now)])?;
        Ok(())
    }
}

impl ShopperRepo for RepoTx<'_> {
    fn subscription(&mut self) -> RepoResult<Option<bool>> {
        Ok(super::broadcast::subscription(self.tx, self.market, self.user)?)
    }

    fn set_subscription(&mut self, on: bool) -> RepoResult<()> {
        Ok(super::broadcast::set_subscription(self.tx, self.market, self.user, on, self.now)?)
    }

    fn profile(&mut self) -> RepoResult<Profile> {
        let row = self
            .tx
            .prepare_cached("SELECT lang, name, phone, address FROM users WHERE channel = ?1 AND user_id = ?2")?
            .query_row(params![self.channel(), self.user.id], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .optional()?;
        let mut profile = match row {
            None => Profile::default(),
            Some((lang, name, phone, address)) => Profile {
                lang: lang.and_then(|l| Lang::from_code(&l)),
                name,
                phone: phone.and_then(|p| PhoneNumber::parse(&p).ok()),
                address,
            },
        };
        // On WhatsApp the user id is their (verified) number: the same person is recognised by
        // the details they saved with that number on another channel, and their number needs
        // no typing.
        if self.user.channel == crate::channel::ChannelKind::WhatsApp
            && let Ok(own) = PhoneNumber::parse(&self.user.id)
        {
            if profile.name.is_none() || profile.address.is_none() {
                let elsewhere: Option<(Option<String>, Option<String>, Option<String>)> = self
                    .tx
                    .prepare_cached(
                        "SELECT lang, name, address FROM users
                         WHERE phone = ?1 AND name IS NOT NULL AND NOT (channel = ?2 AND user_id = ?3)
                         ORDER BY updated_at DESC",
                    )?
                    .query_row(params![own.e164(), self.channel(), self.user.id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()?;
                if let Some((lang, name, address)) = elsewhere {
                    profile.lang = profile.lang.or(lang.and_then(|l| Lang::from_code(&l)));
                    profile.name = profile.name.or(name);
                    profile.address = profile.address.or(address);
                }
            }
            profile.phone = profile.phone.or(Some(own));
        }
        Ok(profile)
    }

    fn set_language(&mut self, lang: Lang) -> RepoResult<()> {
        self.touch_user()?;
        self.tx.prepare_cached("UPDATE users SET lang = ?3 WHERE channel = ?1 AND user_id = ?2")?.execute(params![
            self.channel(),
            self.user.id,
            lang.code()
        ])?;
        Ok(())
    }

    fn save_contact(&mut self, name: &str, phone: &PhoneNumber, address: Option<&str>) -> RepoResult<()> {
        self.touch_user()?;
        self.tx
            .prepare_cached(
                "UPDATE users SET name = ?3, phone = ?4, address = COALESCE(?5, address) WHERE channel = ?1 AND user_id = ?2",
            )?
            .execute(params![self.channel(), self.user.id, name, phone.e164(), address])?;
        Ok(())
    }

    fn cart(&mut self) -> RepoResult<Vec<CartLine>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT offer_id, quantity, ordered_by FROM cart_lines WHERE market = ?1 AND channel = ?2 AND user_id = ?3 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![self.market, self.channel(), self.user.id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (offer_id, q, by) = row?;
            let ordered_by = by.map(|b| serde_json::from_str(&b)).transpose()?;
            out.push(CartLine { offer_id, quantity: serde_json::from_str(&q)?, ordered_by });
        }
        Ok(out)
    }

    fn set_cart_line(
        &mut self,
        offer_id: i64,
        quantity: crate::domain::quantity::Quantity,
        ordered_by: Option<crate::domain::amount::OrderedBy>,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        let q = serde_json::to_string(&quantity)?;
        let by = ordered_by.map(|b| serde_json::to_string(&b)).transpose()?;
        self.tx
            .prepare_cached(
                "INSERT INTO cart_lines (market, channel, user_id, offer_id, quantity, seq, added_at, ordered_by)
                 VALUES (?1, ?2, ?3, ?4, ?5,
                         (SELECT COALESCE(MAX(seq), 0) + 1 FROM cart_lines WHERE market = ?1 AND channel = ?2 AND user_id = ?3),
                         ?6, ?7)
                 ON CONFLICT (market, channel, user_id, offer_id) DO UPDATE SET quantity = excluded.quantity, ordered_by = excluded.ordered_by",
            )?
            .execute(params![self.market, self.channel(), self.user.id, offer_id, q, ts(now), by])?;
        Ok(())
    }

    fn remove_cart_line(&mut self, offer_id: i64) -> RepoResult<bool> {
        let n = self
            .tx
            .prepare_cached(
                "DELETE FROM cart_lines WHERE market = ?1 AND channel = ?2 AND user_id = ?3 AND offer_id = ?4",
            )?
            .execute(params![self.market, self.channel(), self.user.id, offer_id])?;
        Ok(n > 0)
    }

    fn clear_cart(&mut self) -> RepoResult<()> {
        self.tx
            .prepare_cached("DELETE FROM cart_lines WHERE market = ?1 AND channel = ?2 AND user_id = ?3")?
            .execute(params![self.market, self.channel(), self.user.id])?;
        Ok(())
    }

    fn place_order(&mut self, order: &NewOrder) -> RepoResult<Result<PlacedOrder, PlaceRefusal>> {
        // Check every line against the stored price and stock before writing anything: inside
        // this IMMEDIATE transaction nobody else can take the stock meanwhile.
        let mut wanted: BTreeMap<i64, u64> = BTreeMap::new();
        let mut stocks: BTreeMap<i64, Option<i64>> = BTreeMap::new();
        for l in &order.lines {
            *wanted.entry(l.offer_id).or_default() += l.quantity.base();
            let (price, stock): (i64, Option<i64>) = self
                .tx
                .prepare_cached("SELECT price, stock FROM offers WHERE id = ?1")?
                .query_row([l.offer_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            if price != l.unit_price.value() {
                return Ok(Err(PlaceRefusal::PriceChanged));
            }
            stocks.insert(l.offer_id, stock);
        }
        for (offer_id, base) in &wanted {
            if let Some(Some(stock)) = stocks.get(offer_id).copied()
                && (stock as u64) < *base
            {
                return Ok(Err(PlaceRefusal::OutOfStock { offer_id: *offer_id, available: stock.max(0) as u64 }));
            }
        }
        for (offer_id, base) in &wanted {
            self.tx
                .prepare_cached("UPDATE offers SET stock = stock - ?2 WHERE id = ?1 AND stock IS NOT NULL")?
                .execute(params![offer_id, *base as i64])?;
        }
        let (seq, code): (i64, String) = self
            .tx
            .prepare_cached("UPDATE markets SET order_seq = order_seq + 1 WHERE slug = ?1 RETURNING order_seq, code")?
            .query_row(params![self.market], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let number = OrderNumber::new(&code, seq);
        let (address, lat, lon) = match &order.address {
            Address::Text(t) => (Some(t.clone()), None, None),
            Address::Location { lat, lon } => (None, Some(*lat), Some(*lon)),
        };
        let status = OrderStatus::AwaitingTraders;
        self.tx
            .prepare_cached(
                "INSERT INTO orders (market, number, channel, user_id, status, buyer_name, phone, address, lat, lon,
                                     slot_date, slot, payment, note, total, placed_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)",
            )?
            .execute(params![
                self.market,
                number.as_str(),
                self.channel(),
                self.user.id,
                status.code(),
                order.buyer_name,
                order.phone.e164(),
                address,
                lat,
                lon,
                order.slot.date.format("%Y-%m-%d").to_string(),
                order.slot.slot.to_string(),
                order.payment.code(),
                order.note,
                order.total().value(),
                ts(order.placed_at),
            ])?;
        let order_id = self.tx.last_insert_rowid();
        let actor = self.actor();
        audit(self.tx, order_id, None, None, status.code(), &actor, order.placed_at)?;
        let mut by_stall: BTreeMap<i64, Vec<&crate::domain::order::NewOrderLine>> = BTreeMap::new();
        for line in &order.lines {
            by_stall.entry(line.stall_id).or_default().push(line);
        }
        for (stall_id, lines) in by_stall {
            let subtotal: Rupiah = lines.iter().map(|l| l.total).sum();
            let sub_status = SubOrderStatus::AwaitingTrader;
            self.tx
                .prepare_cached(
                    "INSERT INTO sub_orders (order_id, stall_id, status, total, deadline_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![order_id, stall_id, sub_status.code(), subtotal.value(), ts(order.trader_deadline)])?;
            let sub_id = self.tx.last_insert_rowid();
            audit(self.tx, order_id, Some(sub_id), None, sub_status.code(), &actor, order.placed_at)?;
            for l in lines {
                self.tx
                    .prepare_cached(
                        "INSERT INTO order_lines (sub_order_id, offer_id, commodity_id, commodity_name, quantity, quantity_base,
                                                  unit_price, total, ordered_quantity, ordered_unit_price, ordered_by)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?5, ?7, ?9)",
                    )?
                    .execute(params![
                        sub_id,
                        l.offer_id,
                        l.commodity_id,
                        l.commodity_name,
                        serde_json::to_string(&l.quantity)?,
                        l.quantity.base() as i64,
                        l.unit_price.value(),
                        l.total.value(),
                        l.ordered_by.map(|b| serde_json::to_string(&b)).transpose()?,
                    ])?;
            }
        }
        Ok(Ok(PlacedOrder { id: order_id, number }))
    }

    fn slot_orders(&mut self, slots: &[crate::domain::slot::SlotChoice]) -> RepoResult<Vec<u32>> {
        let (Some(first), Some(last)) = (slots.iter().map(|s| s.date).min(), slots.iter().map(|s| s.date).max()) else {
            return Ok(Vec::new());
        };
        let mut stmt = self.tx.prepare_cached(
            "SELECT slot_date, slot, orders FROM slot_bookings WHERE market = ?1 AND slot_date BETWEEN ?2 AND ?3",
        )?;
        let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
        let rows = stmt.query_map(params![self.market, day(first), day(last)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
        })?;
        let mut counts = std::collections::HashMap::new();
        for row in rows {
            let (date, slot, n) = row?;
            counts.insert((date, slot), u32::try_from(n).unwrap_or(u32::MAX));
        }
        Ok(slots.iter().map(|s| counts.get(&(day(s.date), s.slot.to_string())).copied().unwrap_or(0)).collect())
    }

    fn orders(&mut self, limit: usize) -> RepoResult<Vec<OrderSummary>> {
        // No `LIMIT ?` (it re-prepares the statement on every call); stop reading instead.
        let mut stmt = self.tx.prepare_cached(
            "SELECT o.id, o.number, o.status, o.total, o.placed_at, o.slot_date, o.slot, o.payment,
                    (SELECT group_concat(status || ':' || buyer_ack) FROM sub_orders s WHERE s.order_id = o.id)
             FROM orders o WHERE o.market = ?1 AND o.channel = ?2 AND o.user_id = ?3 ORDER BY o.id DESC",
        )?;
        let rows = stmt.query_map(params![self.market, self.channel(), self.user.id], |r| {
            Ok((
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows.take(limit) {
            let (number, status, total, placed_at, slot_date, slot, payment, subs) = row?;
            let corrupt = |what: &str| StoreError::Corrupt(format!("order {number}: {what}"));
            let status = OrderStatus::from_code(&status).ok_or_else(|| corrupt("status"))?;
            let subs: Vec<SubOrderView> = subs
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let (code, ack) = s.split_once(':').ok_or_else(|| corrupt("sub-order status"))?;
                    let status = SubOrderStatus::from_code(code).ok_or_else(|| corrupt("sub-order status"))?;
                    Ok(SubOrderView { status, buyer_acknowledged: ack == "1" })
                })
                .collect::<Result<_, StoreError>>()?;
            let date = NaiveDate::parse_from_str(&slot_date, "%Y-%m-%d").map_err(|_| corrupt("slot date"))?;
            let slot: DeliverySlot = slot.parse().map_err(|_| corrupt("slot"))?;
            out.push(OrderSummary {
                number: OrderNumber::parse(&number).ok_or_else(|| corrupt("number"))?,
                status,
                total: Rupiah(total),
                placed_at: parse_ts(&placed_at)?,
                slot: SlotChoice { date, slot },
                payment: payment.parse::<PaymentMethod>().map_err(|_| corrupt("payment"))?,
                stalls: subs.len(),
                cancellable: buyer_may_cancel(status, &subs).is_ok(),
            });
        }
        Ok(out)
    }

    fn cancel_order(&mut self, number: &OrderNumber, now: DateTime<Utc>) -> RepoResult<Result<i64, CancelRefusal>> {
        let row: Option<(i64, String)> = self
            .tx
            .prepare_cached(
                "SELECT id, status FROM orders WHERE number = ?1 AND market = ?2 AND channel = ?3 AND user_id = ?4",
            )?
            .query_row(params![number.as_str(), self.market, self.channel(), self.user.id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        // Someone else's order number looks exactly like an unknown one.
        let Some((order_id, status)) = row else {
            return Ok(Err(CancelRefusal::NotFound));
        };
        let corrupt = |what: &str| StoreError::Corrupt(format!("order {number}: {what}"));
        let status = OrderStatus::from_code(&status).ok_or_else(|| corrupt("status"))?;
        let mut subs: Vec<(i64, SubOrderStatus)> = Vec::new();
        let mut views: Vec<SubOrderView> = Vec::new();
        {
            let mut stmt =
                self.tx.prepare_cached("SELECT id, status, buyer_ack FROM sub_orders WHERE order_id = ?1")?;
            let rows =
                stmt.query_map([order_id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
            for row in rows {
                let (id, s, ack) = row?;
                let status = SubOrderStatus::from_code(&s).ok_or_else(|| corrupt("sub-order status"))?;
                subs.push((id, status));
                views.push(SubOrderView { status, buyer_acknowledged: ack != 0 });
            }
        }
        if let Err(refusal) = buyer_may_cancel(status, &views) {
            return Ok(Err(refusal));
        }
        let actor = self.actor();
        let next = OrderStatus::Cancelled;
        if !status.can_move_to(next) {
            return Ok(Err(CancelRefusal::TooLate));
        }
        self.tx.prepare_cached("UPDATE orders SET status = ?2, updated_at = ?3 WHERE id = ?1")?.execute(params![
            order_id,
            next.code(),
            ts(now)
        ])?;
        audit(self.tx, order_id, None, Some(status.code()), next.code(), &actor, now)?;
        for (sub_id, s) in subs {
            if s.can_move_to(SubOrderStatus::Cancelled) {
                self.tx
                    .prepare_cached("UPDATE sub_orders SET status = ?2 WHERE id = ?1")?
                    .execute(params![sub_id, SubOrderStatus::Cancelled.code()])?;
                audit(self.tx, order_id, Some(sub_id), Some(s.code()), SubOrderStatus::Cancelled.code(), &actor, now)?;
            }
        }
        Ok(Ok(order_id))
    }
}

impl super::Store {
    /// Number of orders in the database, for reports and tests.
    pub fn count_orders(&self) -> StoreResult<i64> {
        Ok(self.conn().query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))?)
    }
}
