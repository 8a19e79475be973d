//! Quantities: exact amounts in grams, millilitres or pieces, and the one parser that turns what a
//! shopper types (`2`, `1/2 kg`, `1,5 kg`, `500 gr`, `2 ons`, `3 ikat`, `setengah kilo`) into one.
//!
//! A commodity is priced per [`SaleUnit`] (per kg, per liter, or per piece such as `ikat`). A
//! [`Quantity`] is always stored in the base unit of that sale unit: grams, millilitres or pieces,
//! so prices multiply exactly. This module never touches money or the catalog.

use crate::text::Lang;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Piece units a commodity can be sold in. The names are the market words and stay Indonesian in
/// every language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PieceUnit {
    Ikat,
    Biji,
    Butir,
    Buah,
    Papan,
    Sisir,
    Bungkus,
    Pak,
    Ekor,
    Potong,
    Botol,
    Lembar,
    Bonggol,
    Kotak,
}

impl PieceUnit {
    pub const ALL: [PieceUnit; 14] = [
        PieceUnit::Ikat,
        PieceUnit::Biji,
        PieceUnit::Butir,
        PieceUnit::Buah,
        PieceUnit::Papan,
        PieceUnit::Sisir,
        PieceUnit::Bungkus,
        PieceUnit::Pak,
        PieceUnit::Ekor,
        PieceUnit::Potong,
        PieceUnit::Botol,
        PieceUnit::Lembar,
        PieceUnit::Bonggol,
        PieceUnit::Kotak,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PieceUnit::Ikat => "ikat",
            PieceUnit::Biji => "biji",
            PieceUnit::Butir => "butir",
            PieceUnit::Buah => "buah",
            PieceUnit::Papan => "papan",
            PieceUnit::Sisir => "sisir",
            PieceUnit::Bungkus => "bungkus",
            PieceUnit::Pak => "pak",
            PieceUnit::Ekor => "ekor",
            PieceUnit::Potong => "potong",
            PieceUnit::Botol => "botol",
            PieceUnit::Lembar => "lembar",
            PieceUnit::Bonggol => "bonggol",
            PieceUnit::Kotak => "kotak",
        }
    }
}

/// How a commodity sold by weight is counted when a shopper orders it by the piece (`ayam 1
/// ekor`): its piece word and the average weight of one piece, for the estimate the trader
/// weighs later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PieceSize {
    pub unit: PieceUnit,
    /// Grams (or millilitres) of an average piece.
    pub grams: u64,
}

/// The unit a commodity's price is quoted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SaleUnit {
    Kilogram,
    Liter,
    Piece(PieceUnit),
}

impl SaleUnit {
    /// How many base units (grams, millilitres, pieces) one sale unit holds.
    pub fn base_per_unit(self) -> u64 {
        match self {
            SaleUnit::Kilogram | SaleUnit::Liter => 1000,
            SaleUnit::Piece(_) => 1,
        }
    }

    /// The smallest amount anyone sells: 50 g, 100 ml, one piece.
    pub fn min_base(self) -> u64 {
        match self {
            SaleUnit::Kilogram => 50,
            SaleUnit::Liter => 100,
            SaleUnit::Piece(_) => 1,
        }
    }

    /// The most one cart line may hold: 50 kg, 20 liter, 100 pieces. More than that is a
    /// wholesale order, not a shopping trip.
    pub fn max_base(self) -> u64 {
        match self {
            SaleUnit::Kilogram => 50_000,
            SaleUnit::Liter => 20_000,
            SaleUnit::Piece(_) => 100,
        }
    }

    /// The word shown after a price: "per kg", "per ikat".
    pub fn label(self) -> &'static str {
        match self {
            SaleUnit::Kilogram => "kg",
            SaleUnit::Liter => "liter",
            SaleUnit::Piece(p) => p.name(),
        }
    }

    /// Quantities offered as one-tap buttons when a shopper picks an offer.
    pub fn quick_amounts(self) -> [u64; 4] {
        match self {
            SaleUnit::Kilogram => [250, 500, 1000, 2000],
            SaleUnit::Liter => [500, 1000, 2000, 5000],
            SaleUnit::Piece(_) => [1, 2, 3, 5],
        }
    }
}

impl FromStr for SaleUnit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "kg" => Ok(SaleUnit::Kilogram),
            "liter" => Ok(SaleUnit::Liter),
            other => PieceUnit::ALL
                .iter()
                .find(|p| p.name() == other)
                .map(|p| SaleUnit::Piece(*p))
                .ok_or_else(|| format!("unknown unit `{other}`")),
        }
    }
}

/// An exact amount of one commodity, in the base unit of its sale unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantity {
    base: u64,
    unit: SaleUnit,
}

impl Quantity {
    /// A quantity checked against the unit's bounds.
    pub fn new(base: u64, unit: SaleUnit) -> Result<Quantity, QuantityError> {
        if base == 0 {
            return Err(QuantityError::NotPositive);
        }
        if base < unit.min_base() {
            return Err(QuantityError::TooSmall { min: Quantity { base: unit.min_base(), unit } });
        }
        if base > unit.max_base() {
            return Err(QuantityError::TooLarge { max: Quantity { base: unit.max_base(), unit } });
        }
        Ok(Quantity { base, unit })
    }

    /// An amount that is not an order (stock left, say): not checked against the unit's bounds.
    pub fn amount(base: u64, unit: SaleUnit) -> Quantity {
        Quantity { base, unit }
    }

    /// Grams, millilitres or pieces.
    pub fn base(self) -> u64 {
        self.base
    }

    pub fn unit(self) -> SaleUnit {
        self.unit
    }

    /// `1,5 kg`, `250 gr`, `3 ikat` (English uses a decimal point).
    pub fn display(self, lang: Lang) -> String {
        let sep = match lang {
            Lang::Id => ",",
            Lang::En => ".",
        };
        match self.unit {
            SaleUnit::Kilogram | SaleUnit::Liter => {
                let (big, small) = match self.unit {
                    SaleUnit::Kilogram => ("kg", "gr"),
                    _ => ("liter", "ml"),
                };
                if self.base < 1000 {
                    format!("{} {small}", self.base)
                } else {
                    let whole = self.base / 1000;
                    let frac = self.base % 1000;
                    if frac == 0 {
                        format!("{whole} {big}")
                    } else {
                        let digits = format!("{frac:03}");
                        format!("{whole}{sep}{} {big}", digits.trim_end_matches('0'))
                    }
                }
            }
            SaleUnit::Piece(p) => format!("{} {}", self.base, p.name()),
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display(Lang::Id))
    }
}

/// Why a typed amount was refused. Each maps to a sentence the shopper sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("not an amount")]
    NotANumber,
    #[error("amount must be more than zero")]
    NotPositive,
    #[error("less than the minimum {min}")]
    TooSmall { min: Quantity },
    #[error("more than the maximum {max}")]
    TooLarge { max: Quantity },
    #[error("sold per {}, not in {given}", expected.label())]
    WrongUnit { given: String, expected: SaleUnit },
    #[error("{} is sold in whole pieces", unit.label())]
    NotWhole { unit: SaleUnit },
    /// A bare number of a thousand or more: rupiah, not an amount of the unit (`brambang
    /// 5000`). The reader of orders takes it as money; where only a quantity fits it is refused.
    #[error("{0} looks like rupiah, not an amount")]
    LooksLikeMoney(u64),
}

/// What a unit word measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnitWord {
    /// Grams per one of this word.
    Mass(u64),
    /// Millilitres per one of this word.
    Volume(u64),
    /// A generic counter (`biji`, `buah`, `pcs`) that fits any piece commodity.
    AnyPiece,
    /// A dozen pieces of anything sold by the piece.
    Dozen,
    /// A specific piece unit (`ikat`, `papan`...).
    Piece(PieceUnit),
    /// Wholesale units we do not take (`kwintal`, `ton`).
    Wholesale,
}

/// Whether a word is a unit of amount (`kg`, `ons`, `ikat`, `lusin`, `kwintal`...).
pub fn is_unit_word(word: &str) -> bool {
    unit_word(word).is_some()
}

/// What a piece word counts: `Some(None)` for a word that fits any piece (`biji`, `buah`,
/// `pcs`), `Some(Some(unit))` for a particular one (`ekor`, `sisir`, `iket`), `None` for a word
/// that is not a piece word.
pub fn piece_word(word: &str) -> Option<Option<PieceUnit>> {
    match unit_word(word)? {
        UnitWord::AnyPiece => Some(None),
        UnitWord::Piece(p) => Some(Some(p)),
        _ => None,
    }
}

/// Whether a word counts pieces (`biji`, `papan`, `bungkus`...), of whatever piece unit.
pub fn is_piece_word(word: &str) -> bool {
    matches!(unit_word(word), Some(UnitWord::AnyPiece | UnitWord::Piece(_)))
}

fn unit_word(word: &str) -> Option<UnitWord> {
    Some(match word {
        "kg" | "kilo" | "kilogram" | "kgs" | "kilogr" | "kilogramm" | "kiloan" => UnitWord::Mass(1000),
        "g" | "gr" | "gram" | "grm" | "grs" | "gramm" => UnitWord::Mass(1),
        "ons" | "on" | "onz" => UnitWord::Mass(100),
        "l" | "liter" | "litre" | "ltr" | "lt" => UnitWord::Volume(1000),
        "ml" | "mili" | "mililiter" | "cc" => UnitWord::Volume(1),
        "biji" | "bj" | "buah" | "bh" | "pcs" | "pc" | "piece" | "pieces" => UnitWord::AnyPiece,
        "lusin" | "losin" => UnitWord::Dozen,
        "kwintal" | "kuintal" | "ton" | "kw" => UnitWord::Wholesale,
        "btr" | "butir" => UnitWord::Piece(PieceUnit::Butir),
        "pack" | "pak" => UnitWord::Piece(PieceUnit::Pak),
        "bks" | "bungkus" => UnitWord::Piece(PieceUnit::Bungkus),
        "ptg" | "potong" => UnitWord::Piece(PieceUnit::Potong),
        "lbr" | "lembar" => UnitWord::Piece(PieceUnit::Lembar),
        "btl" | "botol" => UnitWord::Piece(PieceUnit::Botol),
        "kotak" | "box" => UnitWord::Piece(PieceUnit::Kotak),
        "iket" | "ikt" | "unting" => UnitWord::Piece(PieceUnit::Ikat),
        "ekr" => UnitWord::Piece(PieceUnit::Ekor),
        // "tongkol" is also a fish: the reader of orders takes it as a counter only after a number.
        "glundung" | "tongkol" => UnitWord::AnyPiece,
        other => {
            return PieceUnit::ALL.iter().find(|p| p.name() == other).map(|p| UnitWord::Piece(*p));
        }
    })
}

/// An exact non-negative rational number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    pub num: u64,
    pub den: u64,
}

impl Ratio {
    pub const fn whole(n: u64) -> Ratio {
        Ratio { num: n, den: 1 }
    }

    fn add(self, other: Ratio) -> Option<Ratio> {
        let num = self.num.checked_mul(other.den)?.checked_add(other.num.checked_mul(self.den)?)?;
        Some(Ratio { num, den: self.den.checked_mul(other.den)? })
    }

    fn is_zero(self) -> bool {
        self.num == 0
    }
}

/// Number words a shopper types instead of digits. Shared with the free-text order reader.
pub fn number_word(word: &str) -> Option<Ratio> {
    let n = match word {
        "nol" => 0,
        "satu" | "siji" | "one" => 1,
        "dua" | "loro" | "two" => 2,
        "tiga" | "telu" | "three" => 3,
        "empat" | "papat" | "four" => 4,
        "lima" | "limo" | "five" => 5,
        "enam" | "enem" | "six" => 6,
        "tujuh" | "pitu" | "seven" => 7,
        "delapan" | "wolu" | "eight" => 8,
        "sembilan" | "songo" | "nine" => 9,
        "sepuluh" | "ten" => 10,
        // Javanese: the teens, and the forms used before a unit or a tens word ("rong kilo",
        // "limang ons", "telung puluh"). "sak" (one) only before a unit: see `tokens`.
        "sewelas" => 11,
        "rolas" => 12,
        "telulas" => 13,
        "patbelas" => 14,
        "limolas" | "limalas" => 15,
        "nembelas" => 16,
        "pitulas" => 17,
        "wolulas" => 18,
        "sangalas" => 19,
        "selawe" => 25,
        "seket" => 50,
        "satus" => 100,
        "sewu" => 1000,
        "rong" => 2,
        "telung" => 3,
        "patang" => 4,
        "limang" => 5,
        "nem" => 6,
        "pitung" => 7,
        "wolung" => 8,
        "sangang" => 9,
        "setengah" | "separo" | "separuh" | "half" => return Some(Ratio { num: 1, den: 2 }),
        "seperempat" | "seprapat" | "quarter" => return Some(Ratio { num: 1, den: 4 }),
        _ => return None,
    };
    Some(Ratio::whole(n))
}

/// Reads a written number: `2`, `1,5`, `1.5`, `1/2`, `1.500` (Indonesian thousands), `½`.
pub fn parse_number(token: &str) -> Option<Ratio> {
    if let Some(r) = number_word(token) {
        return Some(r);
    }
    if let Some((a, b)) = token.split_once('/') {
        let num: u64 = a.parse().ok()?;
        let den: u64 = b.parse().ok()?;
        if den == 0 {
            return None;
        }
        return Some(Ratio { num, den });
    }
    if !token.chars().all(|c| c.is_ascii_digit() || c == ',' || c == '.') {
        return None;
    }
    // "1.500" with exactly three digits after single dots is a thousands separator; a comma
    // or any other dot is a decimal mark.
    let thousands = token.contains('.')
        && !token.contains(',')
        && token.split('.').skip(1).all(|g| g.len() == 3)
        && !token.starts_with('.');
    let cleaned: String = if thousands { token.replace('.', "") } else { token.replace(',', ".") };
    let (int, frac) = match cleaned.split_once('.') {
        Some((i, f)) => (i, f),
        None => (cleaned.as_str(), ""),
    };
    if int.is_empty() && frac.is_empty() || frac.contains('.') || frac.len() > 6 {
        return None;
    }
    let int: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let den = 10u64.pow(u32::try_from(frac.len()).ok()?);
    let frac_num: u64 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    Some(Ratio { num: int.checked_mul(den)?.checked_add(frac_num)?, den })
}

/// Splits "500gr" into "500 gr", "1/2kg" into "1/2 kg", and expands "sekilo" into "1 kilo".
pub fn tokens(input: &str) -> Vec<String> {
    let mut spaced = String::with_capacity(input.len() + 8);
    let mut prev: Option<char> = None;
    for ch in input.chars() {
        let ch = match ch {
            '½' => {
                spaced.push_str(" 1/2 ");
                prev = None;
                continue;
            }
            '¼' => {
                spaced.push_str(" 1/4 ");
                prev = None;
                continue;
            }
            '¾' => {
                spaced.push_str(" 3/4 ");
                prev = None;
                continue;
            }
            c => c,
        };
        if let Some(p) = prev {
            let boundary = (p.is_ascii_digit() && ch.is_alphabetic()) || (p.is_alphabetic() && ch.is_ascii_digit());
            if boundary {
                spaced.push(' ');
            }
        }
        spaced.push(ch);
        prev = Some(ch);
    }
    let mut out: Vec<String> = Vec::new();
    for word in spaced.split_whitespace() {
        // ".5" is a half; any other leading or trailing dot is punctuation.
        let decimal = word.starts_with('.') && word[1..].starts_with(|c: char| c.is_ascii_digit());
        let word = word.trim_end_matches(['.', '!', '?', ';', ':']);
        let word = if decimal { word } else { word.trim_start_matches(['.', '!', '?', ';', ':']) };
        if word.is_empty() {
            continue;
        }
        // "sak ons", "sak kilo": Javanese "one" before a unit ("sak" alone is a sack, or "as
        // much as").
        if out.last().is_some_and(|w| w == "sak") && unit_word(word).is_some() {
            out.pop();
            out.push("1".to_string());
        }
        // "sekilo", "seons", "seikat", "selusin": "se-" means one.
        if let Some(rest) = word.strip_prefix("sak").or_else(|| word.strip_prefix("se"))
            && number_word(word).is_none()
            && unit_word(rest).is_some()
        {
            out.push("1".to_string());
            out.push(rest.to_string());
            continue;
        }
        out.push(word.to_string());
    }
    out
}

/// A "bungkus" and a "pak" are the same thing at a market stall.
fn same_piece(a: PieceUnit, b: PieceUnit) -> bool {
    let pack = |p| matches!(p, PieceUnit::Bungkus | PieceUnit::Pak);
    a == b || (pack(a) && pack(b))
}

/// Parses what a shopper typed as an amount of a commodity sold per `unit`.
///
/// A bare number means the commodity's own unit (`2` of a per-kg commodity is 2 kg). A trailing
/// `setengah` adds half a unit (`sekilo setengah` is 1,5 kg).
pub fn parse_quantity(input: &str, unit: SaleUnit) -> Result<Quantity, QuantityError> {
    let lowered = input.trim().to_lowercase();
    if lowered.starts_with('-') || lowered.contains(" -") || lowered.contains("min ") {
        return Err(QuantityError::NotPositive);
    }
    let toks = tokens(&lowered);
    let mut i = 0;
    let mut amount: Option<Ratio> = None;
    // A number, possibly mixed ("1 1/2", "satu setengah") or grouped by thousands with a space
    // ("10 000"). Two separate numbers ("2 5") are not one amount.
    let digits = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit());
    while i < toks.len() {
        match parse_number(&toks[i]) {
            Some(r) => {
                amount = Some(match amount {
                    None => r,
                    Some(a)
                        if a.den == 1
                            && a.num < 1000
                            && toks[i].len() == 3
                            && digits(&toks[i])
                            && digits(&toks[i - 1]) =>
                    {
                        Ratio { num: a.num * 1000 + r.num, den: 1 }
                    }
                    Some(a) if a.den == 1 && r.num < r.den => a.add(r).ok_or(QuantityError::NotANumber)?,
                    Some(_) => return Err(QuantityError::NotANumber),
                });
                i += 1;
            }
            None => break,
        }
    }
    let mut amount = amount.ok_or(QuantityError::NotANumber)?;
    let word = match toks.get(i) {
        Some(w) => {
            let u = unit_word(w).ok_or(QuantityError::NotANumber)?;
            i += 1;
            Some((w.clone(), u))
        }
        None => None,
    };
    // "sekilo setengah", "2 kilo setengah".
    if let Some(tail) = toks.get(i) {
        match number_word(tail) {
            Some(r) if r.num < r.den && word.is_some() => {
                amount = amount.add(r).ok_or(QuantityError::NotANumber)?;
                i += 1;
            }
            _ => return Err(QuantityError::NotANumber),
        }
    }
    if i != toks.len() {
        return Err(QuantityError::NotANumber);
    }
    if amount.is_zero() {
        return Err(QuantityError::NotPositive);
    }
    // A bare whole number: a thousand or more is rupiah ("brambang 5000"); for goods sold by
    // weight or volume, 100 to 999 is grams or millilitres ("brambang 500"), less is the unit.
    if word.is_none() && amount.den == 1 {
        let n = amount.num;
        if n >= 1000 {
            return Err(QuantityError::LooksLikeMoney(n));
        }
        if n >= 100 && matches!(unit, SaleUnit::Kilogram | SaleUnit::Liter) {
            return Quantity::new(n, unit);
        }
    }
    // Base units per one of the written unit.
    let per: u64 = match (word, unit) {
        (None, u) => u.base_per_unit(),
        (Some((_, UnitWord::Mass(g))), SaleUnit::Kilogram) => g,
        (Some((_, UnitWord::Volume(ml))), SaleUnit::Liter) => ml,
        (Some((_, UnitWord::AnyPiece)), SaleUnit::Piece(_)) => 1,
        (Some((_, UnitWord::Dozen)), SaleUnit::Piece(_)) => 12,
        (Some((_, UnitWord::Piece(p))), SaleUnit::Piece(q)) if same_piece(p, q) => 1,
        (Some((_, UnitWord::Wholesale)), u) => {
            return Err(QuantityError::TooLarge { max: Quantity { base: u.max_base(), unit: u } });
        }
        (Some((given, _)), expected) => {
            return Err(QuantityError::WrongUnit { given, expected });
        }
    };
    let scaled = u128::from(amount.num) * u128::from(per);
    let den = u128::from(amount.den);
    let base = match unit {
        SaleUnit::Piece(_) => {
            if scaled % den != 0 {
                return Err(QuantityError::NotWhole { unit });
            }
            scaled / den
        }
        // Grams and millilitres: round to the nearest whole one.
        _ => (scaled + den / 2) / den,
    };
    let base = u64::try_from(base).unwrap_or(u64::MAX);
    if base == 0 {
        return Err(QuantityError::TooSmall { min: Quantity { base: unit.min_base(), unit } });
    }
    Quantity::new(base, unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KG: SaleUnit = SaleUnit::Kilogram;
    const L: SaleUnit = SaleUnit::Liter;
    const IKAT: SaleUnit = SaleUnit::Piece(PieceUnit::Ikat);
    const PAPAN: SaleUnit = SaleUnit::Piece(PieceUnit::Papan);
    const BUTIR: SaleUnit = SaleUnit::Piece(PieceUnit::Butir);

    fn ok(input: &str, unit: SaleUnit) -> u64 {
        match parse_quantity(input, unit) {
            Ok(q) => q.base(),
            Err(e) => panic!("`{input}` should parse, got {e:?}"),
        }
    }

    fn err(input: &str, unit: SaleUnit) -> QuantityError {
        match parse_quantity(input, unit) {
            Ok(q) => panic!("`{input}` should be refused, got {q:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn good_amounts_by_weight() {
        let cases = [
            ("2", 2000),
            ("1/2 kg", 500),
            ("1/2kg", 500),
            ("1,5 kg", 1500),
            ("1.5 kg", 1500),
            ("1,5", 1500),
            ("500 gr", 500),
            ("500gr", 500),
            ("500 gram", 500),
            ("250 g", 250),
            ("2 ons", 200),
            ("seons", 100),
            ("setengah kilo", 500),
            ("seperempat kg", 250),
            ("seprapat", 250),
            ("sekilo", 1000),
            ("sekilo setengah", 1500),
            ("satu setengah kilo", 1500),
            ("2 kilo setengah", 2500),
            ("1 1/2 kg", 1500),
            ("½ kg", 500),
            ("dua kilo", 2000),
            ("1.500 gr", 1500),
            ("0,25 kg", 250),
            ("3/4 kg", 750),
            ("  2 KG  ", 2000),
            ("1 kilogram", 1000),
            ("50 kg", 50_000),
            ("1/3 kg", 333),
            ("10 000 gr", 10_000),
        ];
        for (input, grams) in cases {
            assert_eq!(ok(input, KG), grams, "{input}");
        }
    }

    #[test]
    fn good_amounts_by_piece_and_volume() {
        assert_eq!(ok("3 ikat", IKAT), 3);
        assert_eq!(ok("3", IKAT), 3);
        assert_eq!(ok("seikat", IKAT), 1);
        assert_eq!(ok("2 papan", PAPAN), 2);
        assert_eq!(ok("2 biji", PAPAN), 2);
        assert_eq!(ok("selusin", BUTIR), 12);
        assert_eq!(ok("10 butir", BUTIR), 10);
        assert_eq!(ok("10 btr", BUTIR), 10);
        assert_eq!(ok("2 liter", L), 2000);
        assert_eq!(ok("500 ml", L), 500);
        assert_eq!(ok("setengah liter", L), 500);
        assert_eq!(ok("1", L), 1000);
    }

    #[test]
    fn bad_amounts_are_refused_with_a_reason() {
        assert_eq!(err("-3", KG), QuantityError::NotPositive);
        assert_eq!(err("-3 ikat", IKAT), QuantityError::NotPositive);
        assert_eq!(err("0", KG), QuantityError::NotPositive);
        assert_eq!(err("0 kg", KG), QuantityError::NotPositive);
        assert_eq!(err("abc", KG), QuantityError::NotANumber);
        assert_eq!(err("", KG), QuantityError::NotANumber);
        assert_eq!(err("kg", KG), QuantityError::NotANumber);
        assert_eq!(err("2 kg bawang", KG), QuantityError::NotANumber);
        assert_eq!(err("1/0 kg", KG), QuantityError::NotANumber);
        assert_eq!(err("1,2,3", KG), QuantityError::NotANumber);
        assert_eq!(err("2 5", KG), QuantityError::NotANumber, "two numbers are not one amount");
        assert_eq!(err("1/2 1/2", KG), QuantityError::NotANumber);
        assert!(matches!(err("9999 kg", KG), QuantityError::TooLarge { .. }));
        assert!(matches!(err("51 kg", KG), QuantityError::TooLarge { .. }));
        assert!(matches!(err("2 kwintal", KG), QuantityError::TooLarge { .. }));
        assert!(matches!(err("99999999999999999999", KG), QuantityError::NotANumber | QuantityError::TooLarge { .. }));
        assert!(matches!(err("10 gr", KG), QuantityError::TooSmall { .. }));
        assert!(matches!(err("101 ikat", IKAT), QuantityError::TooLarge { .. }));
        assert!(matches!(err("3 ikat", KG), QuantityError::WrongUnit { .. }));
        assert!(matches!(err("2 liter", KG), QuantityError::WrongUnit { .. }));
        assert!(matches!(err("500 gr", IKAT), QuantityError::WrongUnit { .. }));
        assert!(matches!(err("2 papan", IKAT), QuantityError::WrongUnit { .. }));
        assert!(matches!(err("1 kg", L), QuantityError::WrongUnit { .. }));
        assert_eq!(err("1/2 ikat", IKAT), QuantityError::NotWhole { unit: IKAT });
        assert_eq!(err("1,5", IKAT), QuantityError::NotWhole { unit: IKAT });
        assert!(matches!(err("50 ml", L), QuantityError::TooSmall { .. }));
    }

    #[test]
    fn displays_in_the_shoppers_language() {
        let q = |b, u| Quantity::new(b, u).map(|q| q.display(Lang::Id)).unwrap_or_default();
        assert_eq!(q(1500, KG), "1,5 kg");
        assert_eq!(q(2000, KG), "2 kg");
        assert_eq!(q(250, KG), "250 gr");
        assert_eq!(q(1250, KG), "1,25 kg");
        assert_eq!(q(3, IKAT), "3 ikat");
        assert_eq!(q(500, L), "500 ml");
        let en = Quantity::new(1500, KG).map(|q| q.display(Lang::En)).unwrap_or_default();
        assert_eq!(en, "1.5 kg");
    }

    #[test]
    fn sale_units_parse_from_seed_words() {
        assert_eq!("kg".parse::<SaleUnit>(), Ok(KG));
        assert_eq!("ikat".parse::<SaleUnit>(), Ok(IKAT));
        assert!("karung".parse::<SaleUnit>().is_err());
    }
}
