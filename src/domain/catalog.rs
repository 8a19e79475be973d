//! The market catalogue: markets, commodities, stalls and their offers, and search over them.
//!
//! Seed data is read from `data/` by [`SeedData::load`], which rejects bad rows with the file,
//! line and reason. The store turns seed data into rows; [`Catalog`] is the read-only, in-memory
//! view the conversation core browses and searches. This module does no I/O besides reading the
//! seed files.

use crate::domain::money::Rupiah;
use crate::domain::quantity::{PieceSize, SaleUnit};
use crate::domain::slot::DeliverySlot;
use chrono::NaiveTime;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The shelves of a pasar, in the order the browse menu shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Category {
    Sayur,
    Buah,
    Bumbu,
    DagingAyam,
    Ikan,
    Telur,
    Sembako,
    TahuTempe,
    Jajanan,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::Sayur,
        Category::Buah,
        Category::Bumbu,
        Category::DagingAyam,
        Category::Ikan,
        Category::Telur,
        Category::Sembako,
        Category::TahuTempe,
        Category::Jajanan,
    ];

    /// The id used in seed data and button payloads.
    pub fn slug(self) -> &'static str {
        match self {
            Category::Sayur => "sayur",
            Category::Buah => "buah",
            Category::Bumbu => "bumbu",
            Category::DagingAyam => "daging-ayam",
            Category::Ikan => "ikan",
            Category::Telur => "telur",
            Category::Sembako => "sembako",
            Category::TahuTempe => "tahu-tempe",
            Category::Jajanan => "jajanan",
        }
    }
}

impl FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL.into_iter().find(|c| c.slug() == s.trim()).ok_or_else(|| format!("unknown category `{s}`"))
    }
}

/// One pasar and how it delivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Market {
    pub slug: String,
    /// Three letters that start its order numbers: `BLB-0042`.
    pub code: String,
    pub name: String,
    pub address: String,
    pub opens: NaiveTime,
    pub closes: NaiveTime,
    pub slots: Vec<DeliverySlot>,
    pub lat: f64,
    pub lon: f64,
    pub delivery_radius_km: f64,
    pub kelurahan: Vec<String>,
    /// Orders the market's couriers can take in one delivery slot; a full slot is not offered.
    pub slot_capacity: u32,
    /// How far (percent) a weighing may be from the estimate of a line ordered by the piece
    /// before the shopper is asked to agree; within it they are only told the final price.
    pub weigh_tolerance_percent: u32,
    /// Closed by its admins (`/pasar_tutup`), with the reason shoppers see: no orders meanwhile.
    pub closed: Option<String>,
}

/// How far (in whole percent) a price is from the office's reference price, when it is more
/// than a third away either way (worth an admin's look); `None` when it is close.
pub fn off_reference(price: Rupiah, reference: Rupiah) -> Option<i64> {
    let (p, r) = (price.value(), reference.value());
    if r <= 0 {
        return None;
    }
    let percent = ((p - r).abs() * 100 + r / 2) / r;
    (percent > 33).then_some(percent)
}

/// How far a weighed piece may be from its estimate, unasked, when `data/markets.toml` does
/// not say (the weigh-and-adjust limit, 25 %, still applies beyond it).
pub const DEFAULT_WEIGH_TOLERANCE_PERCENT: u32 = 15;

/// Orders per delivery slot when `data/markets.toml` does not say.
pub const DEFAULT_SLOT_CAPACITY: u32 = 30;

impl Market {
    /// "04:00-13:00"
    pub fn hours(&self) -> String {
        format!("{}-{}", self.opens.format("%H:%M"), self.closes.format("%H:%M"))
    }
}

/// Something the market sells, independent of who sells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commodity {
    pub id: String,
    pub category: Category,
    pub name: String,
    pub name_en: String,
    pub unit: SaleUnit,
    pub aliases: Vec<String>,
    pub javanese: Vec<String>,
    pub reference_price: Rupiah,
    /// The smallest sellable step, in base units (50 g for spices, 100 g for vegetables; 1 for
    /// goods sold by the piece): estimates from money or pieces are rounded to it.
    #[serde(default = "one")]
    pub step: u64,
    /// For goods sold by weight that people also order by the piece (`ayam 1 ekor`).
    #[serde(default)]
    pub piece: Option<PieceSize>,
}

fn one() -> u64 {
    1
}

/// The step a commodity sold per `unit` has when its data names none.
pub fn default_step(unit: SaleUnit) -> u64 {
    match unit {
        SaleUnit::Kilogram | SaleUnit::Liter => 100,
        SaleUnit::Piece(_) => 1,
    }
}

impl Commodity {
    pub fn display_name(&self, lang: crate::text::Lang) -> &str {
        match lang {
            crate::text::Lang::Id => &self.name,
            crate::text::Lang::En => &self.name_en,
        }
    }
}

/// A trader's stall in one market.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stall {
    pub id: i64,
    pub market: String,
    /// As painted in the market: `A-07`.
    pub number: String,
    pub name: String,
    pub trader: String,
    /// The local date the trader closed the stall for (`/tutup`); its offers are hidden that day.
    pub closed_on: Option<chrono::NaiveDate>,
    /// In service; an admin's `/nonaktif` hides its offers until `/aktif`.
    pub active: bool,
}

/// A stall's price for a commodity, per the commodity's sale unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub id: i64,
    pub stall_id: i64,
    pub commodity: String,
    pub price: Rupiah,
}

// ---------------------------------------------------------------------------------------------
// Seed data

/// A seed row that could not be accepted.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {reason}", file.display(), if *line > 0 { format!(":{line}") } else { String::new() })]
pub struct SeedError {
    pub file: PathBuf,
    pub line: u64,
    pub reason: String,
}

/// A stall as written in `stalls.csv`, with its price list.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedStall {
    pub market: String,
    pub number: String,
    pub name: String,
    pub trader: String,
    pub prices: Vec<(String, Rupiah)>,
}

/// Everything in `data/`, checked.
#[derive(Debug, Clone)]
pub struct SeedData {
    pub markets: Vec<Market>,
    pub commodities: Vec<Commodity>,
    pub stalls: Vec<SeedStall>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarketsFile {
    markets: Vec<MarketRow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarketRow {
    slug: String,
    code: String,
    name: String,
    address: String,
    opens: String,
    closes: String,
    slots: Vec<String>,
    lat: f64,
    lon: f64,
    delivery_radius_km: f64,
    kelurahan: Vec<String>,
    slot_capacity: Option<u32>,
    weigh_tolerance_percent: Option<u32>,
}

#[derive(Deserialize)]
struct CommodityRow {
    id: String,
    category: String,
    name: String,
    name_en: String,
    unit: String,
    aliases: String,
    javanese: String,
    reference_price: i64,
    #[serde(default)]
    step: Option<u64>,
    #[serde(default)]
    piece: Option<String>,
    #[serde(default)]
    piece_grams: Option<u64>,
    /// Where the reference price's level comes from: a key of `data/SOURCES.md`, or `estimate`.
    #[serde(default)]
    price_source: Option<String>,
}

#[derive(Deserialize)]
struct StallRow {
    market: String,
    stall: String,
    name: String,
    trader: String,
    commodity: String,
    price: i64,
}

fn words_list(s: &str) -> Vec<String> {
    s.split('|').map(|w| w.trim().to_lowercase()).filter(|w| !w.is_empty()).collect()
}

impl SeedData {
    /// Reads `markets.toml`, `commodities.csv` and `stalls.csv` from `dir`, and checks that
    /// every `price_source` of the commodities is a key that `SOURCES.md` names (when there is one).
    pub fn load(dir: &Path) -> Result<SeedData, SeedError> {
        let files = ["markets.toml", "commodities.csv", "stalls.csv"].map(|f| dir.join(f));
        let [m, c, s] = &files;
        let (mt, ct, st) = (read(m)?, read(c)?, read(s)?);
        let seed = SeedData::parse([(m, &mt), (c, &ct), (s, &st)])?;
        let sources = dir.join("SOURCES.md");
        if sources.exists() {
            check_sources(c, &ct, &read(&sources)?)?;
        }
        Ok(seed)
    }

    /// The seed data compiled into the binary, for a binary run away from its source tree.
    pub fn builtin() -> Result<SeedData, SeedError> {
        let (m, c, s) =
            (Path::new("data/markets.toml"), Path::new("data/commodities.csv"), Path::new("data/stalls.csv"));
        SeedData::parse([
            (m, include_str!("../../data/markets.toml")),
            (c, include_str!("../../data/commodities.csv")),
            (s, include_str!("../../data/stalls.csv")),
        ])
    }

    /// Checks the three files' contents; the paths are only for messages.
    fn parse(files: [(&Path, &str); 3]) -> Result<SeedData, SeedError> {
        let [(m, mt), (c, ct), (s, st)] = files;
        let markets = load_markets(m, mt)?;
        let commodities = load_commodities(c, ct)?;
        let stalls = load_stalls(s, st, &markets, &commodities)?;
        Ok(SeedData { markets, commodities, stalls })
    }
}

fn read(file: &Path) -> Result<String, SeedError> {
    std::fs::read_to_string(file).map_err(|e| SeedError {
        file: file.to_path_buf(),
        line: 0,
        reason: format!("cannot read: {e}"),
    })
}

fn load_markets(file: &Path, text: &str) -> Result<Vec<Market>, SeedError> {
    let fail = |line: u64, reason: String| SeedError { file: file.to_path_buf(), line, reason };
    let parsed: MarketsFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count() as u64).unwrap_or(0);
        fail(line, e.message().to_string())
    })?;
    // Line of each market's slug, for messages about a market as a whole.
    let line_of =
        |slug: &str| text.lines().position(|l| l.contains(&format!("\"{slug}\""))).map(|i| i as u64 + 1).unwrap_or(0);
    let mut seen = HashSet::new();
    let mut codes = HashSet::new();
    let mut markets = Vec::new();
    for row in parsed.markets {
        let line = line_of(&row.slug);
        let valid_slug = !row.slug.is_empty() && row.slug.chars().all(|c| c.is_ascii_lowercase() || c == '-');
        if !valid_slug {
            return Err(fail(line, format!("slug `{}` must be lower-case letters and `-`", row.slug)));
        }
        if !seen.insert(row.slug.clone()) {
            return Err(fail(line, format!("market `{}` appears twice", row.slug)));
        }
        if row.code.len() != 3 || !row.code.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(fail(line, format!("code `{}` must be three capital letters", row.code)));
        }
        if !codes.insert(row.code.clone()) {
            return Err(fail(line, format!("code `{}` is used twice", row.code)));
        }
        let time = |s: &str| {
            NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| fail(line, format!("time `{s}` must be HH:MM")))
        };
        let opens = time(&row.opens)?;
        let closes = time(&row.closes)?;
        if closes <= opens {
            return Err(fail(line, "market closes before it opens".into()));
        }
        let mut slots = Vec::new();
        for s in &row.slots {
            slots.push(s.parse::<DeliverySlot>().map_err(|e| fail(line, e))?);
        }
        if slots.is_empty() {
            return Err(fail(line, "a market needs at least one delivery slot".into()));
        }
        if !(-90.0..=90.0).contains(&row.lat) || !(-180.0..=180.0).contains(&row.lon) {
            return Err(fail(line, "lat/lon out of range".into()));
        }
        if !(row.delivery_radius_km > 0.0 && row.delivery_radius_km <= 50.0) {
            return Err(fail(line, "delivery_radius_km must be between 0 and 50".into()));
        }
        let slot_capacity = row.slot_capacity.unwrap_or(DEFAULT_SLOT_CAPACITY);
        if !(1..=10_000).contains(&slot_capacity) {
            return Err(fail(line, "slot_capacity must be between 1 and 10000 orders".into()));
        }
        let weigh_tolerance_percent = row.weigh_tolerance_percent.unwrap_or(DEFAULT_WEIGH_TOLERANCE_PERCENT);
        if weigh_tolerance_percent > 25 {
            return Err(fail(line, "weigh_tolerance_percent must be between 0 and 25 (the adjustment limit)".into()));
        }
        markets.push(Market {
            slot_capacity,
            weigh_tolerance_percent,
            slug: row.slug,
            code: row.code,
            name: row.name,
            address: row.address,
            opens,
            closes,
            slots,
            lat: row.lat,
            lon: row.lon,
            delivery_radius_km: row.delivery_radius_km,
            kelurahan: row.kelurahan,
            closed: None,
        });
    }
    if markets.is_empty() {
        return Err(fail(0, "no markets".into()));
    }
    Ok(markets)
}

fn csv_rows<T: for<'de> Deserialize<'de>>(file: &Path, text: &str) -> Result<Vec<(u64, T)>, SeedError> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let mut out = Vec::new();
    for record in reader.deserialize::<T>() {
        match record {
            Ok(row) => out.push(row),
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                return Err(SeedError { file: file.to_path_buf(), line, reason: e.to_string() });
            }
        }
    }
    // csv positions are only on errors; recount lines for the rows (header is line 1).
    Ok(out.into_iter().enumerate().map(|(i, r)| (i as u64 + 2, r)).collect())
}

/// Every `price_source` is `estimate` or a key written as `` `key` `` in SOURCES.md.
fn check_sources(file: &Path, commodities: &str, sources: &str) -> Result<(), SeedError> {
    for (line, row) in csv_rows::<CommodityRow>(file, commodities)? {
        match row.price_source.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(SeedError {
                    file: file.to_path_buf(),
                    line,
                    reason: format!("`{}` has no price_source (a key of SOURCES.md, or `estimate`)", row.id),
                });
            }
            Some("estimate") => {}
            Some(key) if sources.contains(&format!("`{key}`")) => {}
            Some(key) => {
                return Err(SeedError {
                    file: file.to_path_buf(),
                    line,
                    reason: format!("price_source `{key}` is not a key of SOURCES.md"),
                });
            }
        }
    }
    Ok(())
}

fn load_commodities(file: &Path, text: &str) -> Result<Vec<Commodity>, SeedError> {
    let fail = |line: u64, reason: String| SeedError { file: file.to_path_buf(), line, reason };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (line, row) in csv_rows::<CommodityRow>(file, text)? {
        if row.id.is_empty() || !row.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(fail(line, format!("id `{}` must be kebab-case", row.id)));
        }
        if !seen.insert(row.id.clone()) {
            return Err(fail(line, format!("commodity `{}` appears twice", row.id)));
        }
        let category = row.category.parse::<Category>().map_err(|e| fail(line, e))?;
        let unit = row.unit.parse::<SaleUnit>().map_err(|e| fail(line, e))?;
        if row.name.trim().is_empty() {
            return Err(fail(line, "name is empty".into()));
        }
        if row.reference_price <= 0 {
            return Err(fail(line, format!("reference_price {} must be positive", row.reference_price)));
        }
        let by_weight = matches!(unit, SaleUnit::Kilogram | SaleUnit::Liter);
        let step = match (row.step, by_weight) {
            (None, _) => default_step(unit),
            (Some(s), true) if [50, 100, 250, 500, 1000].contains(&s) && s >= unit.min_base() => s,
            (Some(s), true) => {
                return Err(fail(
                    line,
                    format!("step {s} must be one of 50, 100, 250, 500, 1000 (and at least {})", unit.min_base()),
                ));
            }
            (Some(1), false) => 1,
            (Some(s), false) => {
                return Err(fail(line, format!("step {s}: a commodity sold per {} has no step", unit.label())));
            }
        };
        let piece = match (row.piece.as_deref().map(str::trim).filter(|p| !p.is_empty()), row.piece_grams) {
            (None, None) => None,
            (Some(_), _) | (_, Some(_)) if !by_weight => {
                return Err(fail(
                    line,
                    format!("piece and piece_grams are for goods sold by weight, not per {}", unit.label()),
                ));
            }
            (Some(word), Some(grams)) => {
                let SaleUnit::Piece(p) = word.parse::<SaleUnit>().map_err(|e| fail(line, e))? else {
                    return Err(fail(line, format!("piece `{word}` must be a piece word (ekor, buah, biji...)")));
                };
                if !(1..=unit.max_base()).contains(&grams) {
                    return Err(fail(line, format!("piece_grams {grams} is not a sensible weight")));
                }
                Some(PieceSize { unit: p, grams })
            }
            _ => return Err(fail(line, "piece and piece_grams go together".into())),
        };
        if let Some(source) = &row.price_source
            && !source.is_empty()
            && !source.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(fail(line, format!("price_source `{source}` must be a key of data/SOURCES.md or `estimate`")));
        }
        out.push(Commodity {
            id: row.id,
            category,
            name: row.name,
            name_en: row.name_en,
            unit,
            aliases: words_list(&row.aliases),
            javanese: words_list(&row.javanese),
            reference_price: Rupiah(row.reference_price),
            step,
            piece,
        });
    }
    Ok(out)
}

fn load_stalls(
    file: &Path,
    text: &str,
    markets: &[Market],
    commodities: &[Commodity],
) -> Result<Vec<SeedStall>, SeedError> {
    let fail = |line: u64, reason: String| SeedError { file: file.to_path_buf(), line, reason };
    let market_slugs: HashSet<&str> = markets.iter().map(|m| m.slug.as_str()).collect();
    let commodity_ids: HashSet<&str> = commodities.iter().map(|c| c.id.as_str()).collect();
    let mut stalls: Vec<SeedStall> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for (line, row) in csv_rows::<StallRow>(file, text)? {
        if !market_slugs.contains(row.market.as_str()) {
            return Err(fail(line, format!("unknown market `{}`", row.market)));
        }
        if !commodity_ids.contains(row.commodity.as_str()) {
            return Err(fail(line, format!("unknown commodity `{}`", row.commodity)));
        }
        if row.price <= 0 || row.price > 10_000_000 {
            return Err(fail(line, format!("price {} is not a sensible price", row.price)));
        }
        if row.stall.is_empty() || row.name.is_empty() {
            return Err(fail(line, "stall number and name are required".into()));
        }
        let key = (row.market.clone(), row.stall.clone());
        let at = match index.get(&key) {
            Some(&i) => {
                let s = &stalls[i];
                if s.name != row.name || s.trader != row.trader {
                    return Err(fail(
                        line,
                        format!("stall {} in {} has another name or trader above", row.stall, row.market),
                    ));
                }
                i
            }
            None => {
                stalls.push(SeedStall {
                    market: row.market.clone(),
                    number: row.stall.clone(),
                    name: row.name.clone(),
                    trader: row.trader.clone(),
                    prices: Vec::new(),
                });
                index.insert(key, stalls.len() - 1);
                stalls.len() - 1
            }
        };
        if stalls[at].prices.iter().any(|(c, _)| *c == row.commodity) {
            return Err(fail(line, format!("stall {} lists `{}` twice", row.stall, row.commodity)));
        }
        stalls[at].prices.push((row.commodity, Rupiah(row.price)));
    }
    Ok(stalls)
}

// ---------------------------------------------------------------------------------------------
// The in-memory catalogue

/// Read-only view of every market's catalogue, loaded from the store.
#[derive(Debug, Default)]
pub struct Catalog {
    markets: Vec<Market>,
    commodities: Vec<Commodity>,
    commodity_index: HashMap<String, usize>,
    stalls: HashMap<i64, Stall>,
    offers: HashMap<i64, Offer>,
    /// market -> commodity -> offer ids, cheapest first.
    offers_by_item: HashMap<String, HashMap<String, Vec<i64>>>,
    /// market -> category -> commodity indexes sold there, by name.
    shelves: HashMap<String, HashMap<Category, Vec<usize>>>,
    search_terms: Vec<SearchTerm>,
    /// Every word of the search terms, indexed for typos.
    near_words: crate::domain::near::NearWords,
    /// A word -> the search terms that hold it.
    terms_by_word: std::collections::BTreeMap<String, Vec<usize>>,
    /// (market, commodity, channel) -> the platform's reference to the commodity's picture
    /// (a Telegram file id of that market's bot), set by an admin with `/foto`.
    photos: HashMap<(String, String, String), String>,
    /// The names prepared for reading typed orders.
    free_text: crate::domain::free_text::FreeTextIndex,
}

/// A commodity's picture in one market, on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommodityPhoto {
    pub market: String,
    pub commodity: String,
    pub channel: String,
    pub reference: String,
}

/// A normalized name, alias or market word of a commodity, split once for matching.
#[derive(Debug)]
struct SearchTerm {
    text: String,
    words: Vec<(String, usize)>,
    commodity: usize,
    /// The commodity's own name (Indonesian or English), not an alias or market word.
    is_name: bool,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchResult<'a> {
    Found(Vec<&'a Commodity>),
    /// Known goods, but no open stall here sells them ("Santan belum dijual di Pasar
    /// Blimbing"): the commodities, each with the markets that do sell it.
    NotSoldHere(Vec<(&'a Commodity, Vec<&'a Market>)>),
    /// Nothing matched; these are the close names, for "did you mean..." (none when nothing is
    /// close: a greeting or chatter gets no product suggestions).
    NotFound {
        suggestions: Vec<&'a Commodity>,
    },
}

/// Lower-case, letters and digits only, single spaces.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars().flat_map(char::to_lowercase) {
        if ch.is_alphanumeric() {
            out.push(ch);
        } else if !out.ends_with(' ') && !out.is_empty() {
            out.push(' ');
        }
    }
    out.trim_end().to_string()
}

impl Catalog {
    pub fn new(
        markets: Vec<Market>,
        commodities: Vec<Commodity>,
        stalls: Vec<Stall>,
        offers: Vec<Offer>,
        today: chrono::NaiveDate,
    ) -> Catalog {
        let commodity_index: HashMap<String, usize> =
            commodities.iter().enumerate().map(|(i, c)| (c.id.clone(), i)).collect();
        let stalls: HashMap<i64, Stall> = stalls.into_iter().map(|s| (s.id, s)).collect();
        let mut offers_by_item: HashMap<String, HashMap<String, Vec<i64>>> = HashMap::new();
        for o in &offers {
            if let Some(stall) = stalls.get(&o.stall_id)
                && stall.closed_on != Some(today)
                && stall.active
            {
                offers_by_item
                    .entry(stall.market.clone())
                    .or_default()
                    .entry(o.commodity.clone())
                    .or_default()
                    .push(o.id);
            }
        }
        let offers: HashMap<i64, Offer> = offers.into_iter().map(|o| (o.id, o)).collect();
        for ids in offers_by_item.values_mut().flat_map(|m| m.values_mut()) {
            ids.sort_by_key(|id| offers.get(id).map(|o| (o.price, o.id)));
        }
        let mut shelves: HashMap<String, HashMap<Category, Vec<usize>>> = HashMap::new();
        for (market, items) in &offers_by_item {
            let shelf = shelves.entry(market.clone()).or_default();
            for id in items.keys() {
                if let Some(&i) = commodity_index.get(id) {
                    shelf.entry(commodities[i].category).or_default().push(i);
                }
            }
            for list in shelf.values_mut() {
                list.sort_by(|a, b| commodities[*a].name.cmp(&commodities[*b].name));
            }
        }
        let mut search_terms = Vec::new();
        for (i, c) in commodities.iter().enumerate() {
            let names = [&c.name, &c.name_en].into_iter().chain(&c.aliases).chain(&c.javanese);
            for (n, term) in names.enumerate() {
                let text = normalize(term);
                if !text.is_empty() {
                    let words = text.split(' ').map(|w| (w.to_string(), w.chars().count())).collect();
                    search_terms.push(SearchTerm { text, words, commodity: i, is_name: n < 2 });
                }
            }
        }
        let free_text = crate::domain::free_text::FreeTextIndex::new(&commodities);
        let mut terms_by_word: std::collections::BTreeMap<String, Vec<usize>> = std::collections::BTreeMap::new();
        for (t, term) in search_terms.iter().enumerate() {
            for (w, _) in &term.words {
                let list = terms_by_word.entry(w.clone()).or_default();
                if list.last() != Some(&t) {
                    list.push(t);
                }
            }
        }
        let near_words = crate::domain::near::NearWords::new(terms_by_word.keys().map(String::as_str));
        Catalog {
            near_words,
            terms_by_word,
            markets,
            commodities,
            commodity_index,
            stalls,
            offers,
            offers_by_item,
            shelves,
            free_text,
            search_terms,
            photos: HashMap::new(),
        }
    }

    /// Reads an order typed the way it is said ("brambang sekilo, tempe 2 papan").
    pub fn read_order(&self, message: &str) -> crate::domain::free_text::ReadOrder {
        crate::domain::free_text::read(&self.free_text, &self.commodities, message)
    }

    /// Reads a message as an order only (`/pesan`), never as a question.
    pub fn read_order_only(&self, message: &str) -> crate::domain::free_text::ReadOrder {
        crate::domain::free_text::read_order_only(&self.free_text, &self.commodities, message)
    }

    /// The catalogue with the commodities' pictures.
    pub fn with_photos(mut self, photos: Vec<CommodityPhoto>) -> Catalog {
        self.photos = photos.into_iter().map(|p| ((p.market, p.commodity, p.channel), p.reference)).collect();
        self
    }

    /// The picture of a commodity in a market, for one channel.
    pub fn photo(&self, market: &str, commodity: &str, channel: &str) -> Option<&str> {
        self.photos.get(&(market.to_string(), commodity.to_string(), channel.to_string())).map(String::as_str)
    }

    /// The commodity whose name, English name, alias or market word is exactly this (after
    /// normalizing): a new commodity must not take a name that already means another.
    pub fn named(&self, name: &str) -> Option<&Commodity> {
        let q = normalize(name);
        self.search_terms.iter().find(|t| !q.is_empty() && t.text == q).map(|t| &self.commodities[t.commodity])
    }

    pub fn markets(&self) -> &[Market] {
        &self.markets
    }

    pub fn market(&self, slug: &str) -> Option<&Market> {
        self.markets.iter().find(|m| m.slug == slug)
    }

    pub fn commodities(&self) -> &[Commodity] {
        &self.commodities
    }

    pub fn commodity(&self, id: &str) -> Option<&Commodity> {
        self.commodity_index.get(id).map(|&i| &self.commodities[i])
    }

    pub fn stall(&self, id: i64) -> Option<&Stall> {
        self.stalls.get(&id)
    }

    pub fn offer(&self, id: i64) -> Option<&Offer> {
        self.offers.get(&id)
    }

    /// Stalls of a market, by stall number.
    pub fn stalls_in(&self, market: &str) -> Vec<&Stall> {
        let mut v: Vec<&Stall> = self.stalls.values().filter(|s| s.market == market).collect();
        v.sort_by(|a, b| a.number.cmp(&b.number));
        v
    }

    /// Offers for a commodity in a market, cheapest first.
    pub fn offers_for(&self, market: &str, commodity: &str) -> Vec<&Offer> {
        self.offers_by_item
            .get(market)
            .and_then(|m| m.get(commodity))
            .map(|ids| ids.iter().filter_map(|id| self.offers.get(id)).collect())
            .unwrap_or_default()
    }

    /// Whether any stall of the market sells the commodity.
    pub fn sold_in(&self, market: &str, commodity: &str) -> bool {
        self.offers_by_item.get(market).is_some_and(|m| m.contains_key(commodity))
    }

    /// Categories with at least one commodity on sale in the market.
    pub fn categories_in(&self, market: &str) -> Vec<Category> {
        let shelf = self.shelves.get(market);
        Category::ALL
            .into_iter()
            .filter(|cat| shelf.is_some_and(|s| s.get(cat).is_some_and(|v| !v.is_empty())))
            .collect()
    }

    /// Commodities of a category sold in the market, by name.
    pub fn commodities_in(&self, market: &str, category: Category) -> Vec<&Commodity> {
        self.shelves
            .get(market)
            .and_then(|s| s.get(&category))
            .map(|list| list.iter().map(|&i| &self.commodities[i]).collect())
            .unwrap_or_default()
    }

    /// Finds commodities sold in `market` by name, alias, Javanese word or a near spelling.
    pub fn search(&self, market: &str, query: &str) -> SearchResult<'_> {
        let q = normalize(query);
        if q.is_empty() {
            return SearchResult::NotFound { suggestions: Vec::new() };
        }
        let allowed = |c: &Commodity| self.sold_in(market, &c.id);
        let found = self.ranked(&q, &allowed);
        if !found.is_empty() {
            return SearchResult::Found(found.into_iter().map(|(_, c)| c).take(12).collect());
        }
        // Known goods this market does not sell: said plainly, with where they are sold.
        let elsewhere = self.ranked(&q, &|_| true);
        if elsewhere.first().is_some_and(|(score, _)| *score >= 80) {
            let top = elsewhere[0].0;
            let known = elsewhere
                .into_iter()
                .filter(|(s, _)| *s == top)
                .take(3)
                .map(|(_, c)| (c, self.markets.iter().filter(|m| self.sold_in(&m.slug, &c.id)).collect()))
                .collect();
            return SearchResult::NotSoldHere(known);
        }
        SearchResult::NotFound { suggestions: self.close_names(&q, &allowed) }
    }

    /// The search terms that `terms_of` finds for every one of the query's words (its
    /// candidates intersected), in the terms' order.
    fn terms_for_every_word(
        &self,
        q_words: &[(&str, usize)],
        terms_of: &dyn Fn(&str, usize) -> Vec<usize>,
    ) -> Vec<&SearchTerm> {
        let mut candidates: Option<Vec<usize>> = None;
        for (qw, qlen) in q_words {
            let mut terms = terms_of(qw, *qlen);
            terms.sort_unstable();
            terms.dedup();
            candidates = Some(match candidates {
                None => terms,
                Some(before) => before.into_iter().filter(|t| terms.binary_search(t).is_ok()).collect(),
            });
        }
        candidates.unwrap_or_default().into_iter().map(|t| &self.search_terms[t]).collect()
    }

    /// Commodities with a name close to the query, for "did you mean": a name's word within two
    /// typos of a query word of five letters or more (one for four letters), or a query word
    /// that starts with a name's word ("tomatoes"); at most three, closest first.
    fn close_names(&self, q: &str, allowed: &dyn Fn(&Commodity) -> bool) -> Vec<&Commodity> {
        // Per commodity: its closeness (summed over the query's words) and how many of the
        // query's words it is close to. Every word of four letters or more must be close to it.
        let mut best: HashMap<usize, (usize, usize)> = HashMap::new();
        let mut needed = 0;
        for qw in q.split(' ') {
            let len = qw.chars().count();
            let distance = match len {
                0..=3 => continue,
                4 => 1,
                _ => 2,
            };
            needed += 1;
            let first = qw.chars().next();
            // A typo keeps the first letter ("kangkong", not "sudah" for "buah").
            let mut close: Vec<(&str, usize)> =
                self.near_words.within(qw, distance).into_iter().filter(|(w, _)| w.chars().next() == first).collect();
            // "tomatoes": a name's word that the query word starts with.
            for end in (4..len).rev() {
                let prefix: String = qw.chars().take(end).collect();
                if let Some((word, _)) = self.terms_by_word.get_key_value(&prefix) {
                    close.push((word.as_str(), len - end));
                    break;
                }
            }
            let mut this_word: HashMap<usize, usize> = HashMap::new();
            for (word, d) in close {
                for t in self.terms_by_word.get(word).into_iter().flatten() {
                    let c = self.search_terms[*t].commodity;
                    if allowed(&self.commodities[c]) {
                        let e = this_word.entry(c).or_insert(usize::MAX);
                        *e = (*e).min(d);
                    }
                }
            }
            for (c, d) in this_word {
                let e = best.entry(c).or_insert((0, 0));
                e.0 += d;
                e.1 += 1;
            }
        }
        let mut found: Vec<(usize, &Commodity)> = best
            .into_iter()
            .filter(|(_, (_, words))| *words == needed)
            .map(|(c, (d, _))| (d, &self.commodities[c]))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.name.cmp(&b.1.name)));
        found.into_iter().map(|(_, c)| c).take(3).collect()
    }

    /// The one commodity a name means, in the whole catalogue (for traders naming what they
    /// sell): an exact name, alias or market word, else the only best match.
    pub fn find_any(&self, query: &str) -> Option<&Commodity> {
        let q = normalize(query);
        if q.is_empty() {
            return None;
        }
        let found = self.ranked(&q, &|_| true);
        let top = found.first()?.0;
        let best: Vec<&Commodity> = found.iter().filter(|(s, _)| *s == top).map(|(_, c)| *c).collect();
        (best.len() == 1).then(|| best[0])
    }

    /// Commodities matching a normalized query, best first, within 30 points of the best: so
    /// "bawang" (bawang putih in Javanese) still lists the other bawang, but a typo match never
    /// stands beside an exact one.
    fn ranked(&self, q: &str, allowed: &dyn Fn(&Commodity) -> bool) -> Vec<(u32, &Commodity)> {
        let q_words: Vec<(&str, usize)> = q.split(' ').map(|w| (w, w.chars().count())).collect();
        let mut best: HashMap<usize, u32> = HashMap::new();
        let mut exact = false;
        let mut exact_name = false;
        let mut named_prefix: HashSet<usize> = HashSet::new();
        // Only terms with a word that each query word starts (or is, under three letters) can
        // match whole words: found in the sorted word list, not by a scan.
        let starting = |qw: &str, qlen: usize| -> Vec<usize> {
            if qlen >= 3 {
                self.terms_by_word
                    .range::<str, _>((std::ops::Bound::Included(qw), std::ops::Bound::Unbounded))
                    .take_while(|(w, _)| w.starts_with(qw))
                    .flat_map(|(_, ts)| ts.iter().copied())
                    .collect()
            } else {
                self.terms_by_word.get(qw).cloned().unwrap_or_default()
            }
        };
        for term in self.terms_for_every_word(&q_words, &starting) {
            if !allowed(&self.commodities[term.commodity]) {
                continue;
            }
            let score = whole_word_score(q, &q_words, term);
            if score > 0 {
                let e = best.entry(term.commodity).or_insert(0);
                *e = (*e).max(score);
                if score == 100 {
                    exact = true;
                    exact_name |= term.is_name;
                }
                // Its own name holds the query's words whole ("bawang" in "Bawang Merah", not
                // "shallot" in "Fried Shallots").
                let whole = q_words.iter().all(|(qw, _)| term.words.iter().any(|(tw, _)| tw == qw));
                if score < 100 && term.is_name && whole {
                    named_prefix.insert(term.commodity);
                }
            }
        }
        // A commodity's own name ("kentang", "tempe") opens it. A market word or alias that
        // names one thing exactly ("ayam", "bawang", "telur") shows it with the goods whose own
        // names hold that word ("Ayam Kampung", "Bawang Merah"), but not every alias that
        // begins with it ("brambang goreng" is Bawang Goreng's market word: "brambang" opens
        // Bawang Merah).
        if exact_name {
            best.retain(|_, s| *s == 100);
        } else if exact {
            best.retain(|c, s| *s == 100 || named_prefix.contains(c));
        }
        // Typo matches only matter when nothing matched exactly. Only the terms holding a word
        // near each query word can score (found through the index, not by a scan).
        if !best.values().any(|s| *s == 100) {
            let near = |qw: &str, qlen: usize| -> Vec<usize> {
                let allowed_edits = match qlen {
                    0..=3 => 0,
                    4..=6 => 1,
                    _ => 2,
                };
                self.near_words
                    .within(qw, allowed_edits)
                    .into_iter()
                    .flat_map(|(w, _)| self.terms_by_word.get(w).into_iter().flatten().copied())
                    .collect()
            };
            for term in self.terms_for_every_word(&q_words, &near) {
                if !allowed(&self.commodities[term.commodity]) {
                    continue;
                }
                let score = typo_score(&q_words, term);
                if score > 0 {
                    let e = best.entry(term.commodity).or_insert(0);
                    *e = (*e).max(score);
                }
            }
        }
        let mut found: Vec<(u32, &Commodity)> = best.into_iter().map(|(i, s)| (s, &self.commodities[i])).collect();
        let top = found.iter().map(|(s, _)| *s).max().unwrap_or(0);
        found.retain(|(s, _)| *s + 30 >= top);
        found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.name.cmp(&b.1.name)));
        found
    }
}

/// 100 when the query is the term, 80 when every query word starts a word of the term
/// ("bawang" ~ "bawang merah", "cab mer" ~ "cabai merah"), else 0.
fn whole_word_score(q: &str, q_words: &[(&str, usize)], term: &SearchTerm) -> u32 {
    if q == term.text {
        return 100;
    }
    let prefixes = q_words
        .iter()
        .all(|(qw, qlen)| term.words.iter().any(|(tw, _)| tw.starts_with(qw) && (*qlen >= 3 || tw == qw)));
    if prefixes { 80 } else { 0 }
}

/// 60 minus 10 per edit when every query word is within one or two edits of a word of the term
/// (one for words of four to six letters, two for longer ones), else 0.
fn typo_score(q_words: &[(&str, usize)], term: &SearchTerm) -> u32 {
    let mut total = 0u32;
    for (qw, qlen) in q_words {
        let allowed = match qlen {
            0..=3 => 0,
            4..=6 => 1,
            _ => 2,
        };
        if allowed == 0 {
            if !term.words.iter().any(|(tw, _)| tw == qw) {
                return 0;
            }
            continue;
        }
        let d = term
            .words
            .iter()
            // Words whose lengths differ by more than the allowance cannot be that close.
            .filter(|(_, tlen)| tlen.abs_diff(*qlen) <= allowed)
            // Two typos keep the first letter ("kangkong" is kangkung, not singkong).
            .map(|(tw, _)| {
                let d = strsim::damerau_levenshtein(qw, tw);
                if d >= 2 && tw.chars().next() != qw.chars().next() { usize::MAX } else { d }
            })
            .min()
            .unwrap_or(usize::MAX);
        if d > allowed {
            return 0;
        }
        total += d as u32;
    }
    // A longer name the query only partly covers ranks below one it covers whole ("bawang
    // merahhh" is Bawang Merah before "bawang merah goreng").
    let extra = term.words.len().saturating_sub(q_words.len()) as u32;
    60u32.saturating_sub(total * 10 + extra * 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_a_third_off_the_reference_are_flagged() {
        assert_eq!(off_reference(Rupiah(3000), Rupiah(3000)), None);
        assert_eq!(off_reference(Rupiah(4000), Rupiah(3000)), None);
        assert_eq!(off_reference(Rupiah(4100), Rupiah(3000)), Some(37));
        assert_eq!(off_reference(Rupiah(1900), Rupiah(3000)), Some(37));
        assert_eq!(off_reference(Rupiah(1), Rupiah(0)), None);
    }

    fn commodity(id: &str, cat: Category, name: &str, aliases: &[&str], jv: &[&str]) -> Commodity {
        Commodity {
            id: id.into(),
            category: cat,
            name: name.into(),
            name_en: String::new(),
            unit: SaleUnit::Kilogram,
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            javanese: jv.iter().map(|s| s.to_string()).collect(),
            reference_price: Rupiah(10000),
            step: 1,
            piece: None,
        }
    }

    fn sample() -> Catalog {
        let commodities = vec![
            commodity("bawang-merah", Category::Bumbu, "Bawang Merah", &["bawang abang", "bamer"], &["brambang"]),
            commodity("bawang-putih", Category::Bumbu, "Bawang Putih", &[], &["bawang"]),
            commodity(
                "cabai-rawit",
                Category::Bumbu,
                "Cabai Rawit",
                &["cabe rawit", "cabe"],
                &["lombok", "lombok rawit"],
            ),
            commodity(
                "cabai-merah",
                Category::Bumbu,
                "Cabai Merah Keriting",
                &["cabe merah"],
                &["lombok abang", "lombok"],
            ),
            commodity("tomat", Category::Sayur, "Tomat", &["tomad"], &[]),
            commodity("durian", Category::Buah, "Durian", &[], &[]),
        ];
        let stalls = vec![Stall {
            id: 1,
            market: "blimbing".into(),
            number: "A-1".into(),
            name: "Sayur Bu Sri".into(),
            trader: "Bu Sri".into(),
            closed_on: None,
            active: true,
        }];
        let offers = ["bawang-merah", "bawang-putih", "cabai-rawit", "cabai-merah", "tomat"]
            .iter()
            .enumerate()
            .map(|(i, c)| Offer { id: i as i64 + 1, stall_id: 1, commodity: (*c).into(), price: Rupiah(1000) })
            .collect();
        Catalog::new(Vec::new(), commodities, stalls, offers, chrono::NaiveDate::MIN)
    }

    fn ids(r: SearchResult<'_>) -> Vec<String> {
        match r {
            SearchResult::Found(v) => v.iter().map(|c| c.id.clone()).collect(),
            SearchResult::NotFound { .. } | SearchResult::NotSoldHere(_) => Vec::new(),
        }
    }

    #[test]
    fn finds_by_name_alias_and_javanese_word() {
        let c = sample();
        assert_eq!(ids(c.search("blimbing", "Bawang Merah")), ["bawang-merah"]);
        assert_eq!(ids(c.search("blimbing", "brambang")), ["bawang-merah"]);
        assert_eq!(ids(c.search("blimbing", "bamer")), ["bawang-merah"]);
        assert_eq!(ids(c.search("blimbing", "tomad")), ["tomat"]);
        let lombok = ids(c.search("blimbing", "lombok"));
        assert!(lombok.contains(&"cabai-rawit".to_string()) && lombok.contains(&"cabai-merah".to_string()));
        assert_eq!(ids(c.search("blimbing", "cabe rawit")), ["cabai-rawit"]);
    }

    #[test]
    fn tolerates_small_typos() {
        let c = sample();
        let r = ids(c.search("blimbing", "bawamg"));
        assert!(r.contains(&"bawang-merah".to_string()) && r.contains(&"bawang-putih".to_string()), "{r:?}");
        assert_eq!(ids(c.search("blimbing", "brambong")), ["bawang-merah"]);
        assert_eq!(ids(c.search("blimbing", "tomaat")), ["tomat"]);
    }

    #[test]
    fn unknown_words_suggest_near_names_only_from_this_market() {
        let c = sample();
        match c.search("blimbing", "tomatoes") {
            SearchResult::NotFound { suggestions } => {
                assert_eq!(suggestions.first().map(|c| c.id.as_str()), Some("tomat"))
            }
            other => panic!("expected not found, got {other:?}"),
        }
        // Durian exists in the catalogue but no stall in this market sells it: said plainly.
        match c.search("blimbing", "durian") {
            SearchResult::NotSoldHere(known) => assert_eq!(known[0].0.id, "durian"),
            other => panic!("expected not sold here, got {other:?}"),
        }
        // Greetings and chatter are not near any name: no suggestions.
        for chatter in ["halo", "assalamualaikum", "makasih", "sudah transfer bu"] {
            assert!(
                matches!(c.search("blimbing", chatter), SearchResult::NotFound { suggestions } if suggestions.is_empty()),
                "{chatter}"
            );
        }
        assert!(
            matches!(c.search("blimbing", "xyzzy"), SearchResult::NotFound { suggestions } if suggestions.is_empty())
        );
        assert!(matches!(c.search("blimbing", "  !! "), SearchResult::NotFound { .. }));
    }

    #[test]
    fn offers_are_cheapest_first() {
        let commodities = vec![commodity("tomat", Category::Sayur, "Tomat", &[], &[])];
        let stalls = vec![
            Stall {
                id: 1,
                market: "m".into(),
                number: "A-1".into(),
                name: "A".into(),
                trader: "a".into(),
                closed_on: None,
                active: true,
            },
            Stall {
                id: 2,
                market: "m".into(),
                number: "A-2".into(),
                name: "B".into(),
                trader: "b".into(),
                closed_on: None,
                active: true,
            },
        ];
        let offers = vec![
            Offer { id: 10, stall_id: 1, commodity: "tomat".into(), price: Rupiah(9000) },
            Offer { id: 11, stall_id: 2, commodity: "tomat".into(), price: Rupiah(8000) },
        ];
        let c = Catalog::new(Vec::new(), commodities, stalls, offers, chrono::NaiveDate::MIN);
        let ids: Vec<i64> = c.offers_for("m", "tomat").iter().map(|o| o.id).collect();
        assert_eq!(ids, [11, 10]);
        assert!(c.offers_for("other", "tomat").is_empty());
    }
}
