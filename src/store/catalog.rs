//! Catalogue rows: seeding from `data/` and loading the in-memory [`Catalog`].

use super::{Store, StoreError, StoreResult};
use crate::domain::catalog::{Catalog, Category, Commodity, CommodityPhoto, Market, Offer, SeedData, Stall};
use crate::domain::money::Rupiah;
use crate::domain::quantity::{PieceSize, SaleUnit};
use crate::domain::slot::DeliverySlot;
use chrono::NaiveTime;
use rusqlite::{OptionalExtension, params};

impl Store {
    /// Bumped by every catalogue change; a process whose catalogue is older reloads it.
    pub fn catalog_version(&self) -> StoreResult<i64> {
        let v: String = self
            .conn()
            .prepare_cached("SELECT value FROM meta WHERE key = 'catalog_version'")?
            .query_row([], |r| r.get(0))?;
        v.parse().map_err(|_| StoreError::Corrupt(format!("catalog_version `{v}`")))
    }

    /// The secret that keys invite codes, created at random on first use.
    pub fn secret(&mut self) -> StoreResult<String> {
        let existing: Option<String> =
            self.conn().query_row("SELECT value FROM meta WHERE key = 'secret'", [], |r| r.get(0)).optional()?;
        if let Some(s) = existing {
            return Ok(s);
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Corrupt(format!("no randomness: {e}")))?;
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.conn().execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('secret', ?1)", [&secret])?;
        self.conn().query_row("SELECT value FROM meta WHERE key = 'secret'", [], |r| r.get(0)).map_err(Into::into)
    }

    /// Whether the catalogue has been seeded.
    pub fn is_seeded(&self) -> StoreResult<bool> {
        let n: i64 = self.conn().query_row("SELECT COUNT(*) FROM markets", [], |r| r.get(0))?;
        Ok(n > 0)
    }

    /// Writes the seed data in one transaction. Only for an empty catalogue: an existing
    /// market's data belongs to its admins once it runs.
    pub fn seed(&mut self, seed: &SeedData) -> StoreResult<()> {
        self.write(|tx| {
            for m in &seed.markets {
                insert_market(tx, m)?;
            }
            for c in &seed.commodities {
                insert_commodity(tx, c)?;
            }
            for s in &seed.stalls {
                tx.execute(
                    "INSERT INTO stalls (market, number, name, trader) VALUES (?1, ?2, ?3, ?4)",
                    params![s.market, s.number, s.name, s.trader],
                )?;
                let stall_id = tx.last_insert_rowid();
                for (commodity, price) in &s.prices {
                    tx.execute(
                        "INSERT INTO offers (stall_id, commodity_id, price) VALUES (?1, ?2, ?3)",
                        params![stall_id, commodity, price.value()],
                    )?;
                }
            }
            Ok::<_, StoreError>(())
        })
    }

    /// Brings what is new in the seed data into a database already running (`pasar seed
    /// --update`), in one transaction: new markets, new commodities, the market words, steps
    /// and piece sizes of every commodity, new stalls with their price lists, and offers of
    /// commodities new to the catalogue at stalls no trader has registered for. It never
    /// touches orders, carts, registered traders or their stalls' lists, a stall that exists
    /// (its name, closing, prices and stock belong to its trader and admins), an offer that
    /// exists or was removed, a commodity's unit or reference price. Running it twice changes
    /// nothing the second time.
    pub fn update_catalog(&mut self, seed: &SeedData) -> StoreResult<CatalogUpdate> {
        self.write(|tx| {
            let mut report = CatalogUpdate::default();
            for m in &seed.markets {
                let known: bool =
                    tx.query_row("SELECT EXISTS (SELECT 1 FROM markets WHERE slug = ?1)", [&m.slug], |r| r.get(0))?;
                if !known {
                    insert_market(tx, m)?;
                    report.markets += 1;
                }
            }
            let mut new_commodities = std::collections::HashSet::new();
            for c in &seed.commodities {
                let existing: Option<(String, String, String)> = tx
                    .query_row("SELECT unit, aliases, javanese FROM commodities WHERE id = ?1", [&c.id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()?;
                let Some((unit, aliases, javanese)) = existing else {
                    insert_commodity(tx, c)?;
                    new_commodities.insert(c.id.as_str());
                    report.commodities_added += 1;
                    continue;
                };
                // Words are added to what admins may have given it, never taken away.
                let merged = |stored: &str, seeded: &[String]| {
                    let mut words: Vec<String> =
                        stored.split('|').filter(|w| !w.is_empty()).map(String::from).collect();
                    for w in seeded {
                        if !words.contains(w) {
                            words.push(w.clone());
                        }
                    }
                    words.join("|")
                };
                let (aliases, javanese) = (merged(&aliases, &c.aliases), merged(&javanese, &c.javanese));
                // A piece size is for goods sold by weight, as the database sells them.
                let by_weight = matches!(unit.parse::<SaleUnit>(), Ok(SaleUnit::Kilogram | SaleUnit::Liter));
                let same_unit = unit == c.unit.label();
                let piece = c.piece.filter(|_| by_weight && same_unit);
                // A unit the database changed keeps its own default step.
                let step = match unit.parse::<SaleUnit>() {
                    Ok(_) if same_unit => c.step,
                    Ok(stored) => crate::domain::catalog::default_step(stored),
                    Err(_) => 1,
                };
                // The reference price is the office's (admins may have set it): left alone.
                report.commodities_updated += tx
                    .prepare_cached(
                        "UPDATE commodities SET name_en = ?2, aliases = ?3, javanese = ?4,
                                step = ?5, piece = ?6, piece_grams = ?7
                         WHERE id = ?1 AND (name_en, aliases, javanese, step, piece, piece_grams)
                               IS NOT (?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        c.id,
                        c.name_en,
                        aliases,
                        javanese,
                        step,
                        piece.map(|p| p.unit.name()),
                        piece.map(|p| p.grams),
                    ])?;
            }
            for s in &seed.stalls {
                let existing: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM stalls WHERE market = ?1 AND number = ?2",
                        params![s.market, s.number],
                        |r| r.get(0),
                    )
                    .optional()?;
                let (stall_id, new_stall) = match existing {
                    Some(id) => (id, false),
                    None => {
                        tx.execute(
                            "INSERT INTO stalls (market, number, name, trader) VALUES (?1, ?2, ?3, ?4)",
                            params![s.market, s.number, s.name, s.trader],
                        )?;
                        report.stalls_added += 1;
                        (tx.last_insert_rowid(), true)
                    }
                };
                // A stall a trader runs keeps its own list: new goods go only to stalls without one.
                let registered: bool = !new_stall
                    && tx.query_row(
                        "SELECT EXISTS (SELECT 1 FROM stall_traders WHERE stall_id = ?1)",
                        [stall_id],
                        |r| r.get(0),
                    )?;
                for (commodity, price) in &s.prices {
                    if !new_stall && (registered || !new_commodities.contains(commodity.as_str())) {
                        continue;
                    }
                    report.offers_added += tx.execute(
                        "INSERT OR IGNORE INTO offers (stall_id, commodity_id, price) VALUES (?1, ?2, ?3)",
                        params![stall_id, commodity, price.value()],
                    )?;
                }
            }
            if report.changed() {
                tx.execute(
                    "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'catalog_version'",
                    [],
                )?;
            }
            Ok::<_, StoreError>(report)
        })
    }

    /// Reads the whole catalogue into memory.
    /// `today` (local) decides which stalls are closed.
    pub fn load_catalog(&self, today: chrono::NaiveDate) -> StoreResult<Catalog> {
        let conn = self.conn();
        let corrupt = |what: &str, e: String| StoreError::Corrupt(format!("{what}: {e}"));
        let mut markets = Vec::new();
        let mut stmt = conn.prepare(
            "SELECT slug, code, name, address, opens, closes, slots, lat, lon, delivery_radius_km, kelurahan, slot_capacity, closed_reason, weigh_tolerance_percent FROM markets ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, f64>(7)?,
                r.get::<_, f64>(8)?,
                r.get::<_, f64>(9)?,
                r.get::<_, String>(10)?,
                r.get::<_, u32>(11)?,
                r.get::<_, Option<String>>(12)?,
                r.get::<_, u32>(13)?,
            ))
        })?;
        for row in rows {
            let (
                slug,
                code,
                name,
                address,
                opens,
                closes,
                slots,
                lat,
                lon,
                radius,
                kelurahan,
                slot_capacity,
                closed,
                weigh_tolerance_percent,
            ) = row?;
            let time = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").map_err(|e| corrupt(&slug, e.to_string()));
            let slots = slots
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<DeliverySlot>().map_err(|e| corrupt(&slug, e)))
                .collect::<StoreResult<Vec<_>>>()?;
            markets.push(Market {
                opens: time(&opens)?,
                closes: time(&closes)?,
                slug: slug.clone(),
                code,
                name,
                address,
                slots,
                lat,
                lon,
                delivery_radius_km: radius,
                kelurahan: kelurahan.split('|').filter(|s| !s.is_empty()).map(String::from).collect(),
                slot_capacity,
                weigh_tolerance_percent,
                closed,
            });
        }
        let mut commodities = Vec::new();
        let mut stmt = conn.prepare(
            "SELECT id, category, name, name_en, unit, aliases, javanese, reference_price, step, piece, piece_grams FROM commodities ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, Option<String>>(9)?,
                r.get::<_, Option<i64>>(10)?,
            ))
        })?;
        let list = |s: &str| s.split('|').filter(|w| !w.is_empty()).map(String::from).collect::<Vec<_>>();
        for row in rows {
            let (id, category, name, name_en, unit, aliases, javanese, price, step, piece, piece_grams) = row?;
            let piece = match (piece, piece_grams) {
                (Some(word), Some(grams)) => match word.parse::<SaleUnit>() {
                    Ok(SaleUnit::Piece(unit)) => Some(PieceSize { unit, grams: u64::try_from(grams).unwrap_or(0) }),
                    _ => return Err(corrupt(&id, format!("piece `{word}`"))),
                },
                _ => None,
            };
            commodities.push(Commodity {
                step: u64::try_from(step).unwrap_or(1).max(1),
                piece,
                category: category.parse::<Category>().map_err(|e| corrupt(&id, e))?,
                unit: unit.parse::<SaleUnit>().map_err(|e| corrupt(&id, e))?,
                id,
                name,
                name_en,
                aliases: list(&aliases),
                javanese: list(&javanese),
                reference_price: Rupiah(price),
            });
        }
        let mut stmt = conn.prepare("SELECT id, market, number, name, trader, closed_on, active FROM stalls")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    Stall {
                        id: r.get(0)?,
                        market: r.get(1)?,
                        number: r.get(2)?,
                        name: r.get(3)?,
                        trader: r.get(4)?,
                        closed_on: None,
                        active: r.get::<_, i64>(6)? != 0,
                    },
                    r.get::<_, Option<String>>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stalls = Vec::with_capacity(rows.len());
        for (mut stall, closed) in rows {
            stall.closed_on = closed.and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
            stalls.push(stall);
        }
        let mut stmt = conn.prepare("SELECT id, stall_id, commodity_id, price FROM offers")?;
        let offers = stmt
            .query_map([], |r| {
                Ok(Offer { id: r.get(0)?, stall_id: r.get(1)?, commodity: r.get(2)?, price: Rupiah(r.get(3)?) })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = conn.prepare("SELECT market, commodity_id, channel, reference FROM commodity_photos")?;
        let photos = stmt
            .query_map([], |r| {
                Ok(CommodityPhoto { market: r.get(0)?, commodity: r.get(1)?, channel: r.get(2)?, reference: r.get(3)? })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Catalog::new(markets, commodities, stalls, offers, today).with_photos(photos))
    }
}

/// What `pasar seed --update` brought into a database.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatalogUpdate {
    pub markets: usize,
    pub commodities_added: usize,
    /// Existing commodities whose words, step, piece size or reference price changed.
    pub commodities_updated: usize,
    pub stalls_added: usize,
    pub offers_added: usize,
}

impl CatalogUpdate {
    pub fn changed(&self) -> bool {
        *self != CatalogUpdate::default()
    }
}

/// Adds a market from the seed data.
fn insert_market(conn: &rusqlite::Connection, m: &Market) -> rusqlite::Result<()> {
    let slots: Vec<String> = m.slots.iter().map(|s| s.to_string()).collect();
    conn.execute(
        "INSERT INTO markets (slug, code, name, address, opens, closes, slots, lat, lon, delivery_radius_km, kelurahan, slot_capacity, weigh_tolerance_percent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            m.slug,
            m.code,
            m.name,
            m.address,
            m.opens.format("%H:%M").to_string(),
            m.closes.format("%H:%M").to_string(),
            slots.join(","),
            m.lat,
            m.lon,
            m.delivery_radius_km,
            m.kelurahan.join("|"),
            m.slot_capacity,
            m.weigh_tolerance_percent,
        ],
    )?;
    Ok(())
}

/// Adds a commodity to the city's catalogue (seeding, or an admin's `/komoditas_tambah`).
pub(super) fn insert_commodity(conn: &rusqlite::Connection, c: &Commodity) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO commodities (id, category, name, name_en, unit, aliases, javanese, reference_price, step, piece, piece_grams)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        c.id,
        c.category.slug(),
        c.name,
        c.name_en,
        c.unit.label(),
        c.aliases.join("|"),
        c.javanese.join("|"),
        c.reference_price.value(),
        c.step,
        c.piece.map(|p| p.unit.name()),
        c.piece.map(|p| p.grams),
    ])?;
    Ok(())
}

impl Store {
    /// The number's own upload of a catalogue photo a user sent it (by the platform's
    /// reference to that photo), and when it was made.
    pub fn photo_upload(
        &self,
        market: &str,
        reference: &str,
    ) -> StoreResult<Option<(String, chrono::DateTime<chrono::Utc>)>> {
        let row: Option<(Option<String>, Option<String>)> = self
            .conn()
            .prepare_cached(
                "SELECT upload_id, uploaded_at FROM commodity_photos
                 WHERE market = ?1 AND channel = 'whatsapp' AND reference = ?2 LIMIT 1",
            )?
            .query_row(params![market, reference], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(match row {
            Some((Some(id), Some(at))) => super::parse_ts(&at).ok().map(|at| (id, at)),
            _ => None,
        })
    }

    /// Remembers the number's upload of a catalogue photo.
    pub fn save_photo_upload(
        &mut self,
        market: &str,
        reference: &str,
        upload_id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        self.conn()
            .prepare_cached(
                "UPDATE commodity_photos SET upload_id = ?3, uploaded_at = ?4
                 WHERE market = ?1 AND channel = 'whatsapp' AND reference = ?2",
            )?
            .execute(params![market, reference, upload_id, super::ts(now)])?;
        Ok(())
    }

    /// A catalogue photo the platform no longer has: which commodity it showed and who set it.
    pub fn photo_setter(
        &self,
        market: &str,
        channel: crate::channel::ChannelKind,
        reference: &str,
    ) -> StoreResult<Option<(String, crate::channel::UserKey)>> {
        let row: Option<(String, String)> = self
            .conn()
            .prepare_cached(
                "SELECT commodity_id, set_by FROM commodity_photos WHERE market = ?1 AND channel = ?2 AND reference = ?3",
            )?
            .query_row(params![market, channel.code(), reference], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row.and_then(|(commodity, by)| {
            let (ch, id) = by.split_once(':')?;
            Some((commodity, crate::channel::UserKey { channel: ch.parse().ok()?, id: id.to_string() }))
        }))
    }

    /// A commodity's name in a language.
    pub fn commodity_name(&self, id: &str, lang: crate::text::Lang) -> StoreResult<Option<String>> {
        let column = match lang {
            crate::text::Lang::Id => "name",
            crate::text::Lang::En => "name_en",
        };
        Ok(self
            .conn()
            .prepare_cached(&format!("SELECT {column} FROM commodities WHERE id = ?1"))?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    /// Takes a photo the platform no longer has out of the catalogue (every process reloads it)
    /// and queues the message that tells its admin, in one transaction.
    pub fn drop_photo(
        &mut self,
        market: &str,
        channel: crate::channel::ChannelKind,
        reference: &str,
        tell: Option<&crate::channel::Envelope>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        self.write(|tx| {
            let gone = tx
                .prepare_cached("DELETE FROM commodity_photos WHERE market = ?1 AND channel = ?2 AND reference = ?3")?
                .execute(params![market, channel.code(), reference])?;
            if gone > 0 {
                tx.execute(
                    "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'catalog_version'",
                    [],
                )?;
                if let Some(envelope) = tell {
                    super::outbox::enqueue(tx, envelope, None, now)?;
                }
            }
            Ok::<_, StoreError>(gone > 0)
        })
    }
}
