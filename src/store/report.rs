//! The admins' reports: `/statistik` figures counted in SQL from the orders, their parts' audit
//! trail and their lines, and `/ekspor`'s CSV through the same writer as `pasar export`.

use super::shopper::RepoTx;
use super::{StoreError, ts};
use crate::conversation::{RepoResult, ReportRepo};
use crate::domain::money::Rupiah;
use crate::domain::report::{CommodityFigures, HourCount, MarketFigures};
use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::params;

impl ReportRepo for RepoTx<'_> {
    fn order_figures(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        every_market: bool,
    ) -> RepoResult<Vec<MarketFigures>> {
        let market = (!every_market).then_some(self.market);
        let mut out: Vec<MarketFigures> = Vec::new();
        let mut stmt = self.tx.prepare_cached(
            "SELECT market, COUNT(*),
                    COALESCE(SUM(CASE WHEN status IN ('cancelled', 'rejected') THEN 0 ELSE total END), 0),
                    SUM(status = 'rejected'), SUM(status = 'cancelled')
             FROM orders WHERE placed_at >= ?1 AND placed_at < ?2 AND (?3 IS NULL OR market = ?3)
             GROUP BY market ORDER BY market",
        )?;
        let rows = stmt.query_map(params![ts(from), ts(to), market], |r| {
            Ok(MarketFigures {
                market: r.get(0)?,
                orders: r.get(1)?,
                value: Rupiah(r.get(2)?),
                rejected: r.get(3)?,
                cancelled: r.get(4)?,
                answered: 0,
                answer_minutes: None,
            })
        })?;
        for row in rows {
            out.push(row?);
        }
        // A trader's first answer to each stall's part (accepted, changed or refused; not the
        // system's timeout), from the parts' audit trail, minus when the order was placed.
        let mut stmt = self.tx.prepare_cached(
            "SELECT market, COUNT(*), AVG(minutes) FROM (
                 SELECT o.market AS market, (julianday(MIN(e.at)) - julianday(o.placed_at)) * 1440.0 AS minutes
                 FROM order_events e JOIN orders o ON o.id = e.order_id
                 WHERE e.sub_order_id IS NOT NULL AND e.from_status = 'awaiting_trader' AND e.actor LIKE 'trader:%'
                   AND o.placed_at >= ?1 AND o.placed_at < ?2 AND (?3 IS NULL OR o.market = ?3)
                 GROUP BY e.sub_order_id)
             GROUP BY market",
        )?;
        let answers = stmt
            .query_map(params![ts(from), ts(to), market], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, f64>(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (market, count, minutes) in answers {
            if let Some(f) = out.iter_mut().find(|f| f.market == market) {
                f.answered = count;
                f.answer_minutes = Some(minutes);
            }
        }
        Ok(out)
    }

    fn top_commodities(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> RepoResult<Vec<CommodityFigures>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT l.commodity_id, MAX(l.commodity_name), SUM(l.quantity_base), SUM(l.total)
             FROM order_lines l JOIN sub_orders s ON s.id = l.sub_order_id JOIN orders o ON o.id = s.order_id
             WHERE o.market = ?1 AND o.placed_at >= ?2 AND o.placed_at < ?3 AND l.out_of_stock = 0
               AND s.status NOT IN ('rejected', 'cancelled') AND o.status NOT IN ('rejected', 'cancelled')
             GROUP BY l.commodity_id ORDER BY SUM(l.total) DESC, l.commodity_id LIMIT ?4",
        )?;
        let rows = stmt
            .query_map(params![self.market, ts(from), ts(to), limit as i64], |r| {
                Ok(CommodityFigures {
                    commodity_id: r.get(0)?,
                    name: r.get(1)?,
                    base: r.get::<_, i64>(2)?.max(0) as u64,
                    value: Rupiah(r.get(3)?),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn orders_by_hour(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        every_market: bool,
    ) -> RepoResult<Vec<HourCount>> {
        let market = (!every_market).then_some(self.market);
        let mut stmt = self.tx.prepare_cached(
            "SELECT market, strftime('%Y-%m-%d %H:00:00', placed_at, '+7 hours') AS hour, COUNT(*)
             FROM orders WHERE placed_at >= ?1 AND placed_at < ?2 AND (?3 IS NULL OR market = ?3)
             GROUP BY market, hour ORDER BY market, hour",
        )?;
        let rows = stmt
            .query_map(params![ts(from), ts(to), market], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, u32>(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (market, hour, orders) in rows {
            let hour = NaiveDateTime::parse_from_str(&hour, "%Y-%m-%d %H:%M:%S")
                .map_err(|e| StoreError::Corrupt(format!("order hour `{hour}`: {e}")))?;
            out.push(HourCount { market, hour, orders });
        }
        Ok(out)
    }

    fn orders_csv(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        market: Option<&str>,
    ) -> RepoResult<(String, usize)> {
        let mut bytes = Vec::new();
        let n = super::export::write_orders_csv(self.tx, from, to, market, &mut bytes)?;
        let csv = String::from_utf8(bytes).map_err(|e| StoreError::Corrupt(format!("CSV not UTF-8: {e}")))?;
        Ok((csv, n))
    }
}
