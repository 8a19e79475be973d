//! Couriers and deliveries: the store's side of [`DeliveryRepo`].

use super::shopper::RepoTx;
use super::{StoreError, parse_ts, ts};
use crate::channel::UserKey;
use crate::conversation::{DeliveryRepo, RepoResult};
use crate::domain::delivery::{
    Candidate, Courier, CourierProfile, Delivery, DeliveryEvent, DeliveryStatus, FailReason, Position, RatingTarget,
};
use crate::domain::order::AuditEntry;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

const COURIER_COLUMNS: &str =
    "id, channel, user_id, name, phone, vehicle, plate, on_shift, idle_since, lat, lon, located_at, active";

const DELIVERY_COLUMNS: &str =
    "id, order_id, status, courier_id, offer_deadline_at, passed, proof, fail_reason, created_at,
     by_vendor, vendor_job, vendor_courier, vendor_lat, vendor_lon, vendor_located_at";

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

/// A courier row as read, decoded outside rusqlite's row callback so errors keep their kind.
type CourierRow =
    (i64, String, String, String, String, String, String, i64, String, Option<f64>, Option<f64>, Option<String>, i64);

fn courier_row(r: &Row<'_>) -> rusqlite::Result<CourierRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}

fn courier_from(row: CourierRow) -> Result<Courier, StoreError> {
    let (id, channel, user_id, name, phone, vehicle, plate, on_shift, idle, lat, lon, located, active) = row;
    let bad = |what: &str| corrupt(format!("courier {id}: {what}"));
    let position = match (lat, lon, located) {
        (Some(lat), Some(lon), Some(at)) => Some(Position { lat, lon, at: parse_ts(&at)? }),
        _ => None,
    };
    Ok(Courier {
        id,
        user: UserKey { channel: channel.parse().map_err(|_| bad("channel"))?, id: user_id },
        profile: CourierProfile {
            name,
            phone: crate::domain::contact::PhoneNumber::parse(&phone).map_err(|_| bad("phone"))?,
            vehicle,
            plate,
        },
        on_shift: on_shift != 0,
        idle_since: parse_ts(&idle)?,
        position,
        active: active != 0,
    })
}

/// A delivery row as read.
struct DeliveryRow {
    id: i64,
    order_id: i64,
    status: String,
    courier_id: Option<i64>,
    deadline: Option<String>,
    passed: String,
    proof: Option<String>,
    fail: Option<String>,
    created: String,
    by_vendor: i64,
    vendor_job: Option<String>,
    vendor_courier: Option<String>,
    vendor_lat: Option<f64>,
    vendor_lon: Option<f64>,
    vendor_located: Option<String>,
}

fn delivery_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.get(0)?,
        order_id: r.get(1)?,
        status: r.get(2)?,
        courier_id: r.get(3)?,
        deadline: r.get(4)?,
        passed: r.get(5)?,
        proof: r.get(6)?,
        fail: r.get(7)?,
        created: r.get(8)?,
        by_vendor: r.get(9)?,
        vendor_job: r.get(10)?,
        vendor_courier: r.get(11)?,
        vendor_lat: r.get(12)?,
        vendor_lon: r.get(13)?,
        vendor_located: r.get(14)?,
    })
}

fn delivery_from(row: DeliveryRow) -> Result<Delivery, StoreError> {
    let id = row.id;
    let bad = |what: &str| corrupt(format!("delivery {id}: {what}"));
    let vendor_position = match (row.vendor_lat, row.vendor_lon, row.vendor_located) {
        (Some(lat), Some(lon), Some(at)) => Some(Position { lat, lon, at: parse_ts(&at)? }),
        _ => None,
    };
    Ok(Delivery {
        id,
        order_id: row.order_id,
        status: DeliveryStatus::from_code(&row.status).ok_or_else(|| bad("status"))?,
        courier_id: row.courier_id,
        offer_deadline: row.deadline.as_deref().map(parse_ts).transpose()?,
        passed: serde_json::from_str(&row.passed)?,
        proof: row.proof,
        fail_reason: match row.fail {
            Some(f) => Some(f.parse::<FailReason>().map_err(|_| bad("fail reason"))?),
            None => None,
        },
        created_at: parse_ts(&row.created)?,
        by_vendor: row.by_vendor != 0,
        vendor_job: row.vendor_job,
        vendor_courier: row.vendor_courier.as_deref().map(serde_json::from_str).transpose()?,
        vendor_position,
    })
}

impl RepoTx<'_> {
    fn couriers_where(&self, condition: &str, args: impl rusqlite::Params) -> RepoResult<Vec<Courier>> {
        let sql = format!("SELECT {COURIER_COLUMNS} FROM couriers WHERE market = ?1 AND {condition} ORDER BY id");
        let rows = self.tx.prepare_cached(&sql)?.query_map(args, courier_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows.into_iter().map(courier_from).collect::<Result<Vec<_>, _>>()?)
    }

    fn deliveries_where(&self, condition: &str, args: impl rusqlite::Params) -> RepoResult<Vec<Delivery>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE market = ?1 AND {condition} ORDER BY id");
        let rows = self.tx.prepare_cached(&sql)?.query_map(args, delivery_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows.into_iter().map(delivery_from).collect::<Result<Vec<_>, _>>()?)
    }
}

impl DeliveryRepo for RepoTx<'_> {
    fn create_courier_invite(
        &mut self,
        code: &str,
        seed: &str,
        profile: &CourierProfile,
        by: &UserKey,
        expires_at: DateTime<Utc>,
    ) -> RepoResult<()> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO courier_invites (code, market, profile, created_by, created_at, expires_at, seed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                code,
                self.market,
                serde_json::to_string(profile)?,
                by.to_string(),
                ts(self.now),
                ts(expires_at),
                seed
            ])?;
        Ok(())
    }

    fn redeem_courier_invite(&mut self, code: &str, user: &UserKey) -> RepoResult<Option<Courier>> {
        let row: Option<(String, String)> = self
            .tx
            .prepare_cached(
                "SELECT profile, expires_at FROM courier_invites WHERE code = ?1 AND market = ?2 AND used_by IS NULL",
            )?
            .query_row(params![code, self.market], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((profile, expires_at)) = row else {
            return Ok(None);
        };
        if parse_ts(&expires_at)? <= self.now {
            return Ok(None);
        }
        let profile: CourierProfile = serde_json::from_str(&profile)?;
        self.tx
            .prepare_cached("UPDATE courier_invites SET used_by = ?2, used_at = ?3 WHERE code = ?1")?
            .execute(params![code, user.to_string(), ts(self.now)])?;
        // Invited again (a new phone, a new motorbike): the same courier with the new profile.
        self.tx
            .prepare_cached(
                "INSERT INTO couriers (market, channel, user_id, name, phone, vehicle, plate, idle_since, since)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
                 ON CONFLICT (market, channel, user_id) DO UPDATE SET
                     name = excluded.name, phone = excluded.phone, vehicle = excluded.vehicle, plate = excluded.plate",
            )?
            .execute(params![
                self.market,
                user.channel.code(),
                user.id,
                profile.name,
                profile.phone.e164(),
                profile.vehicle,
                profile.plate,
                ts(self.now)
            ])?;
        self.courier_of(user)
    }

    fn courier_of(&mut self, user: &UserKey) -> RepoResult<Option<Courier>> {
        Ok(self
            .couriers_where("channel = ?2 AND user_id = ?3", params![self.market, user.channel.code(), user.id])?
            .into_iter()
            .next())
    }

    fn courier(&mut self, id: i64) -> RepoResult<Option<Courier>> {
        Ok(self.couriers_where("id = ?2", params![self.market, id])?.into_iter().next())
    }

    fn couriers(&mut self) -> RepoResult<Vec<(Courier, u32)>> {
        let couriers = self.couriers_where("1", params![self.market])?;
        // Every courier's open jobs in one query, not one a courier.
        let mut stmt = self.tx.prepare_cached(
            "SELECT courier_id, COUNT(*) FROM deliveries
             WHERE market = ?1 AND courier_id IS NOT NULL AND status IN ('offered', 'assigned', 'on_the_way')
             GROUP BY courier_id",
        )?;
        let open = stmt
            .query_map([self.market], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?)))?
            .collect::<Result<std::collections::HashMap<i64, u32>, _>>()?;
        Ok(couriers
            .into_iter()
            .map(|c| {
                let n = open.get(&c.id).copied().unwrap_or(0);
                (c, n)
            })
            .collect())
    }

    fn set_on_shift(&mut self, courier_id: i64, on: bool) -> RepoResult<()> {
        if on {
            self.tx
                .prepare_cached("UPDATE couriers SET on_shift = 1, idle_since = ?3 WHERE id = ?1 AND market = ?2")?
                .execute(params![courier_id, self.market, ts(self.now)])?;
        } else {
            self.tx
                .prepare_cached("UPDATE couriers SET on_shift = 0 WHERE id = ?1 AND market = ?2")?
                .execute(params![courier_id, self.market])?;
        }
        Ok(())
    }

    fn set_idle(&mut self, courier_id: i64) -> RepoResult<()> {
        self.tx
            .prepare_cached("UPDATE couriers SET idle_since = ?3 WHERE id = ?1 AND market = ?2")?
            .execute(params![courier_id, self.market, ts(self.now)])?;
        Ok(())
    }

    fn set_courier_position(&mut self, courier_id: i64, lat: f64, lon: f64) -> RepoResult<()> {
        self.tx
            .prepare_cached("UPDATE couriers SET lat = ?3, lon = ?4, located_at = ?5 WHERE id = ?1 AND market = ?2")?
            .execute(params![courier_id, self.market, lat, lon, ts(self.now)])?;
        Ok(())
    }

    fn candidates(&mut self) -> RepoResult<Vec<Candidate>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT c.id, c.idle_since,
                    (SELECT COUNT(*) FROM deliveries d WHERE d.courier_id = c.id
                     AND d.status IN ('offered', 'assigned', 'on_the_way'))
             FROM couriers c WHERE c.market = ?1 AND c.on_shift = 1 AND c.active = 1 ORDER BY c.id",
        )?;
        let rows = stmt
            .query_map([self.market], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, u32>(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (courier_id, idle, open_jobs) in rows {
            out.push(Candidate { courier_id, open_jobs, idle_since: parse_ts(&idle)? });
        }
        Ok(out)
    }

    fn create_delivery(&mut self, order_id: i64, actor: &str) -> RepoResult<Delivery> {
        let status = DeliveryStatus::Unassigned;
        self.tx
            .prepare_cached(
                "INSERT INTO deliveries (order_id, market, status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![order_id, self.market, status.code(), ts(self.now)])?;
        let id = self.tx.last_insert_rowid();
        self.tx
            .prepare_cached("INSERT INTO delivery_events (delivery_id, status, actor, at) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![id, status.code(), actor, ts(self.now)])?;
        Ok(Delivery {
            id,
            order_id,
            status,
            courier_id: None,
            offer_deadline: None,
            passed: Vec::new(),
            proof: None,
            fail_reason: None,
            created_at: self.now,
            by_vendor: false,
            vendor_job: None,
            vendor_courier: None,
            vendor_position: None,
        })
    }

    fn delivery(&mut self, id: i64) -> RepoResult<Option<Delivery>> {
        Ok(self.deliveries_where("id = ?2", params![self.market, id])?.into_iter().next())
    }

    fn latest_delivery(&mut self, order_id: i64) -> RepoResult<Option<Delivery>> {
        Ok(self.deliveries_where("order_id = ?2", params![self.market, order_id])?.into_iter().next_back())
    }

    fn save_delivery(&mut self, d: &Delivery, actor: &str, note: Option<&str>) -> RepoResult<()> {
        let before: Option<(String, Option<i64>)> = self
            .tx
            .prepare_cached("SELECT status, courier_id FROM deliveries WHERE id = ?1 AND market = ?2")?
            .query_row(params![d.id, self.market], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((status, courier)) = before else {
            return Err(corrupt(format!("delivery {} is not in market {}", d.id, self.market)).into());
        };
        self.tx
            .prepare_cached(
                "UPDATE deliveries SET status = ?2, courier_id = ?3, offer_deadline_at = ?4, passed = ?5, proof = ?6,
                        fail_reason = ?7, updated_at = ?8, by_vendor = ?9, vendor_job = ?10, vendor_courier = ?11,
                        vendor_lat = ?12, vendor_lon = ?13, vendor_located_at = ?14
                 WHERE id = ?1",
            )?
            .execute(params![
                d.id,
                d.status.code(),
                d.courier_id,
                d.offer_deadline.map(ts),
                serde_json::to_string(&d.passed)?,
                d.proof,
                d.fail_reason.map(FailReason::code),
                ts(self.now),
                d.by_vendor,
                d.vendor_job,
                d.vendor_courier.as_ref().map(serde_json::to_string).transpose()?,
                d.vendor_position.map(|p| p.lat),
                d.vendor_position.map(|p| p.lon),
                d.vendor_position.map(|p| ts(p.at)),
            ])?;
        if status != d.status.code() || courier != d.courier_id {
            self.tx
                .prepare_cached(
                    "INSERT INTO delivery_events (delivery_id, status, courier_id, actor, at, note)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![d.id, d.status.code(), d.courier_id, actor, ts(self.now), note])?;
        }
        Ok(())
    }

    fn deliveries_of(&mut self, courier_id: i64) -> RepoResult<Vec<Delivery>> {
        self.deliveries_where(
            "courier_id = ?2 AND status IN ('offered', 'assigned', 'on_the_way')",
            params![self.market, courier_id],
        )
    }

    fn due_offers(&mut self, now: DateTime<Utc>) -> RepoResult<Vec<i64>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT id FROM deliveries WHERE status = 'offered' AND offer_deadline_at <= ?2 AND market = ?1
             ORDER BY offer_deadline_at",
        )?;
        let rows = stmt.query_map(params![self.market, ts(now)], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<i64>, _>>()?)
    }

    fn unassigned_deliveries(&mut self) -> RepoResult<Vec<i64>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT id FROM deliveries WHERE market = ?1 AND status = 'unassigned' ORDER BY id")?;
        let rows = stmt.query_map([self.market], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<i64>, _>>()?)
    }

    fn orders_due_for_courier(&mut self, local: chrono::NaiveDateTime) -> RepoResult<Vec<i64>> {
        let mut stmt = self.tx.prepare_cached(ORDERS_DUE_FOR_COURIER)?;
        let date = local.date().format("%Y-%m-%d").to_string();
        let stamp = local.format("%Y-%m-%dT%H:%M").to_string();
        let rows = stmt.query_map(params![date, stamp, self.market], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<i64>, _>>()?)
    }

    fn late_deliveries(&mut self, local: chrono::NaiveDateTime) -> RepoResult<Vec<i64>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT d.id FROM deliveries d JOIN orders o ON o.id = d.order_id
             WHERE d.market = ?1 AND d.status IN ('offered', 'unassigned', 'assigned', 'on_the_way')
               AND d.late_alerted = 0 AND (o.slot_date || 'T' || substr(o.slot, 7, 5)) <= ?2
             ORDER BY d.id",
        )?;
        let rows = stmt.query_map(params![self.market, local.format("%Y-%m-%dT%H:%M").to_string()], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<i64>, _>>()?)
    }

    fn mark_late_alerted(&mut self, delivery_id: i64) -> RepoResult<()> {
        self.tx
            .prepare_cached("UPDATE deliveries SET late_alerted = 1 WHERE id = ?1 AND market = ?2")?
            .execute(params![delivery_id, self.market])?;
        Ok(())
    }

    fn delivery_events(&mut self, order_id: i64) -> RepoResult<Vec<DeliveryEvent>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT e.status, e.courier_id, e.at FROM delivery_events e JOIN deliveries d ON d.id = e.delivery_id
             WHERE d.order_id = ?1 AND d.market = ?2 ORDER BY e.id",
        )?;
        let rows = stmt
            .query_map(params![order_id, self.market], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, String>(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (status, courier_id, at) in rows {
            let status =
                DeliveryStatus::from_code(&status).ok_or_else(|| corrupt(format!("delivery event status {status}")))?;
            out.push(DeliveryEvent { status, courier_id, at: parse_ts(&at)? });
        }
        Ok(out)
    }

    fn order_history(&mut self, order_id: i64) -> RepoResult<Vec<AuditEntry>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT e.sub_order_id, e.from_status, e.to_status, e.at FROM order_events e JOIN orders o ON o.id = e.order_id
             WHERE e.order_id = ?1 AND o.market = ?2 ORDER BY e.id",
        )?;
        let rows = stmt
            .query_map(params![order_id, self.market], |r| {
                Ok((
                    r.get::<_, Option<i64>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (sub_order_id, from, to, at) in rows {
            out.push(AuditEntry { sub_order_id, from, to, at: parse_ts(&at)? });
        }
        Ok(out)
    }

    fn request_vendor_job(&mut self, delivery_id: i64, job: &crate::integration::vendor::VendorJob) -> RepoResult<()> {
        self.tx
            .prepare_cached(
                "INSERT OR IGNORE INTO vendor_requests (market, delivery_id, body, next_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![self.market, delivery_id, serde_json::to_string(job)?, ts(self.now)])?;
        Ok(())
    }

    fn rate(&mut self, order_id: i64, target: RatingTarget, target_id: i64, stars: u8) -> RepoResult<bool> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO ratings (order_id, target, target_id, stars, at)
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM orders WHERE id = ?1 AND market = ?6)",
            )?
            .execute(params![order_id, target.code(), target_id, stars, ts(self.now), self.market])?;
        Ok(n == 1)
    }

    fn rated(&mut self, order_id: i64) -> RepoResult<Vec<(RatingTarget, i64)>> {
        let mut stmt = self.tx.prepare_cached("SELECT target, target_id FROM ratings WHERE order_id = ?1")?;
        let rows = stmt
            .query_map([order_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows.into_iter().filter_map(|(t, id)| Some((RatingTarget::from_code(&t)?, id))).collect())
    }

    fn comment_ratings(&mut self, order_id: i64, comment: &str) -> RepoResult<()> {
        self.tx
            .prepare_cached("UPDATE ratings SET comment = ?2 WHERE order_id = ?1")?
            .execute(params![order_id, comment])?;
        Ok(())
    }

    fn courier_ratings(&mut self) -> RepoResult<Vec<(i64, f64, u32)>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT r.target_id, AVG(r.stars), COUNT(*) FROM ratings r JOIN couriers c ON c.id = r.target_id
             WHERE r.target = 'courier' AND c.market = ?1 GROUP BY r.target_id",
        )?;
        let rows = stmt
            .query_map([self.market], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?, r.get::<_, u32>(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

/// Orders past the traders' answers and not yet on the road, whose slot starts by a local time,
/// with no delivery yet (a failed one is the admin's to assign again). The timer's check for
/// markets with a timer due (`Store::markets_with_due_deadlines`) has the same conditions.
const ORDERS_DUE_FOR_COURIER: &str = "SELECT o.id FROM orders o
     WHERE o.status IN ('confirmed', 'awaiting_payment', 'preparing', 'ready_for_pickup')
       AND o.status != 'awaiting_payment'
       AND o.slot_date <= ?1 AND o.slot_date >= date(?1, '-1 day')
       AND (o.slot_date || 'T' || substr(o.slot, 1, 5)) <= ?2 AND o.market = ?3
       AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.order_id = o.id)
     ORDER BY o.id";

/// A job request waiting for the vendor's API.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorRequest {
    pub id: i64,
    pub market: String,
    pub delivery_id: i64,
    /// The JSON to post.
    pub body: String,
    pub attempts: u32,
}

impl super::Store {
    /// Job requests due to be posted to the vendor, oldest first.
    pub fn due_vendor_requests(&self, now: DateTime<Utc>, limit: usize) -> super::StoreResult<Vec<VendorRequest>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, market, delivery_id, body, attempts FROM vendor_requests
             WHERE status = 'pending' AND next_at <= ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![ts(now), limit as i64], |r| {
            Ok(VendorRequest {
                id: r.get(0)?,
                market: r.get(1)?,
                delivery_id: r.get(2)?,
                body: r.get(3)?,
                attempts: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The vendor took the request: its job id goes on the delivery.
    pub fn vendor_request_sent(&mut self, id: i64, job_id: &str, now: DateTime<Utc>) -> super::StoreResult<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE vendor_requests SET status = 'sent', sent_at = ?2, last_error = NULL WHERE id = ?1",
            )?
            .execute(params![id, ts(now)])?;
            tx.prepare_cached(
                "UPDATE deliveries SET vendor_job = ?2
                 WHERE id = (SELECT delivery_id FROM vendor_requests WHERE id = ?1) AND vendor_job IS NULL",
            )?
            .execute(params![id, job_id])?;
            Ok(())
        })
    }

    /// A try failed for now: again at `next_at`.
    pub fn vendor_request_retry(&mut self, id: i64, error: &str, next_at: DateTime<Utc>) -> super::StoreResult<()> {
        self.conn()
            .prepare_cached(
                "UPDATE vendor_requests SET attempts = attempts + 1, last_error = ?2, next_at = ?3 WHERE id = ?1",
            )?
            .execute(params![id, error, ts(next_at)])?;
        Ok(())
    }

    /// The request will not be placed: it is marked failed and `event` (the vendor's "no", for
    /// the engine) enters the inbox in the same transaction, so a crash never leaves one without
    /// the other. Returns whether the event is new.
    pub fn vendor_request_give_up(
        &mut self,
        id: i64,
        error: &str,
        event: &crate::channel::InboundEvent,
    ) -> super::StoreResult<bool> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE vendor_requests SET status = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            )?
            .execute(params![id, error])?;
            super::ingest_in(tx, event)
        })
    }
}
