//! Orders as CSV, for spreadsheets and the city's records (`pasar export`): one row per order
//! with its stalls, items and money. UTF-8 with a byte-order mark, so that spreadsheet programs
//! read the Indonesian text right; quoting by the `csv` crate.

use super::{StoreResult, ts};
use crate::domain::slot::local;
use chrono::{DateTime, Utc};
use rusqlite::params;

/// The columns, in order.
pub const EXPORT_COLUMNS: [&str; 16] = [
    "market",
    "order",
    "placed_at_wib",
    "status",
    "buyer",
    "phone",
    "address",
    "slot_date",
    "slot",
    "payment",
    "stalls",
    "items",
    "total_rp",
    "paid_rp",
    "owed_back_rp",
    "given_back_rp",
];

impl super::Store {
    /// Writes the orders placed from `from` to before `to` (every market, or one) as CSV; returns
    /// how many.
    pub fn export_orders(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        market: Option<&str>,
        out: &mut dyn std::io::Write,
    ) -> StoreResult<usize> {
        write_orders_csv(self.conn(), from, to, market, out)
    }
}

/// The CSV of `pasar export` and of the admins' `/ekspor`, from a connection or the current
/// transaction: one writer, so both give the same file.
pub(super) fn write_orders_csv(
    conn: &rusqlite::Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    market: Option<&str>,
    out: &mut dyn std::io::Write,
) -> StoreResult<usize> {
    let mut stmt = conn.prepare_cached(
            "SELECT o.market, o.number, o.placed_at, o.status, o.buyer_name, o.phone,
                    COALESCE(o.address, printf('%.5f, %.5f', o.lat, o.lon)), o.slot_date, o.slot, o.payment,
                    (SELECT group_concat(st.number || ' ' || st.name, '; ') FROM sub_orders s JOIN stalls st ON st.id = s.stall_id
                      WHERE s.order_id = o.id AND s.status NOT IN ('rejected', 'cancelled')),
                    o.id,
                    o.total,
                    (SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE order_id = o.id AND kind = 'payment'),
                    (SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE order_id = o.id AND kind IN ('refund_owed', 'goodwill')),
                    (SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE order_id = o.id AND kind = 'refund')
             FROM orders o
             WHERE o.placed_at >= ?1 AND o.placed_at < ?2 AND (?3 IS NULL OR o.market = ?3)
             ORDER BY o.id",
        )?;
    let mut lines = conn.prepare_cached(
        "SELECT l.commodity_name, l.quantity FROM order_lines l JOIN sub_orders s ON s.id = l.sub_order_id
             WHERE s.order_id = ?1 AND l.out_of_stock = 0 AND s.status NOT IN ('rejected', 'cancelled') ORDER BY l.id",
    )?;
    // The byte-order mark: spreadsheet programs then read the file as UTF-8.
    out.write_all("\u{feff}".as_bytes()).map_err(|e| super::StoreError::Corrupt(format!("writing CSV: {e}")))?;
    let mut w = csv::Writer::from_writer(out);
    let io = |e: csv::Error| super::StoreError::Corrupt(format!("writing CSV: {e}"));
    w.write_record(EXPORT_COLUMNS).map_err(io)?;
    let mut rows = stmt.query(params![ts(from), ts(to), market])?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let placed: String = r.get(2)?;
        let placed = super::parse_ts(&placed)?;
        let text = |i: usize| -> rusqlite::Result<String> { Ok(r.get::<_, Option<String>>(i)?.unwrap_or_default()) };
        let mut items = Vec::new();
        for line in lines.query_map([r.get::<_, i64>(11)?], |l| Ok((l.get::<_, String>(0)?, l.get::<_, String>(1)?)))? {
            let (name, quantity) = line?;
            let q: crate::domain::quantity::Quantity = serde_json::from_str(&quantity)?;
            items.push(format!("{name} {}", q.display(crate::text::Lang::Id)));
        }
        // What people typed (names, addresses) and what admins named (stalls, goods) is never
        // a formula in the admin's spreadsheet.
        let record = [
            text(0)?,
            text(1)?,
            local(placed).format("%Y-%m-%d %H:%M").to_string(),
            text(3)?,
            no_formula(text(4)?),
            text(5)?,
            no_formula(text(6)?),
            text(7)?,
            text(8)?,
            text(9)?,
            no_formula(text(10)?),
            no_formula(items.join("; ")),
            r.get::<_, i64>(12)?.to_string(),
            r.get::<_, i64>(13)?.to_string(),
            r.get::<_, i64>(14)?.to_string(),
            r.get::<_, i64>(15)?.to_string(),
        ];
        w.write_record(&record).map_err(io)?;
        n += 1;
    }
    w.flush().map_err(|e| super::StoreError::Corrupt(format!("writing CSV: {e}")))?;
    Ok(n)
}

/// A cell a spreadsheet would run as a formula (`=HYPERLINK(...)`, `+`, `-`, `@`, a tab or a
/// carriage return first) gets a leading apostrophe, OWASP's advice against CSV injection. A
/// shared location written as coordinates (`-7.93610, 112.64400`) is a place, left as it is.
fn no_formula(cell: String) -> String {
    let coordinates = cell.split_once(", ").is_some_and(|(a, b)| a.parse::<f64>().is_ok() && b.parse::<f64>().is_ok());
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && !coordinates { format!("'{cell}") } else { cell }
}

#[cfg(test)]
mod tests {
    use super::no_formula;

    #[test]
    fn cells_that_would_be_formulas_are_neutralised_and_places_are_not() {
        for bad in ["=HYPERLINK(\"http://x\",\"klik\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(no_formula(bad.to_string()), format!("'{bad}"), "{bad}");
        }
        for fine in ["Jl. Borobudur No. 12", "Ani Rahayu", "-7.93610, 112.64400", "", "A-07 Sayur Bu Sri"] {
            assert_eq!(no_formula(fine.to_string()), fine, "{fine}");
        }
    }
}
