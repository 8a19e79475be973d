//! What a shopper asks for on one line, the way it is asked at a stall: an exact quantity
//! (`sekilo`, `2 papan`), so much money's worth (`brambang 5rb`), or whole pieces of something
//! sold by weight (`ayam 1 ekor`, `telur 10 butir`).
//!
//! Money and pieces are estimates until the trader packs: the weight of `Rp 5.000` of shallots
//! depends on the stall's price, and one chicken weighs what it weighs. [`Amount::quantity`]
//! turns an amount into the quantity to pack at a stall's price, rounded to the commodity's
//! sellable step; [`OrderedBy`] is what a cart or order line keeps of how it was asked, so the
//! price of a money line stays the sum typed and a pieces line is shown as `1 ekor (± 1,2 kg)`.
//! This module does no I/O and knows no stalls: callers pass the price.

use crate::domain::money::Rupiah;
use crate::domain::quantity::{
    PieceSize, PieceUnit, Quantity, QuantityError, SaleUnit, parse_quantity, piece_word, tokens,
};
use crate::text::Lang;
use serde::{Deserialize, Serialize};

/// The most one line ordered by money may cost: a household's shopping, not a wholesale order.
pub const MAX_MONEY: Rupiah = Rupiah(2_000_000);

/// What was asked for on one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    /// An exact quantity.
    Exact(Quantity),
    /// So much money's worth: the price is the sum, the weight an estimate.
    Money(Rupiah),
    /// Whole pieces of a commodity sold by weight: weight and price are estimates.
    Pieces { count: u64, size: PieceSize },
}

/// Why an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    /// Less money than one sellable step costs at this stall.
    #[error("less than {min}, the price of the smallest amount sold")]
    BelowStep { min: Rupiah },
    #[error("more than {max} on one line")]
    MoneyTooLarge { max: Rupiah },
}

/// How a cart or order line was asked for, when not simply by quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderedBy {
    /// `brambang 5rb`: the line costs this, whatever the scale says.
    Money(Rupiah),
    /// `ayam 1 ekor`: so many pieces, priced by their weight.
    Pieces { count: u64, unit: PieceUnit },
}

impl OrderedBy {
    /// Whether the line's price is an estimate until the trader weighs (pieces are; a money line
    /// costs what was typed).
    pub fn price_is_estimate(self) -> bool {
        matches!(self, OrderedBy::Pieces { .. })
    }

    /// The same kind of asking with more of it ("5rb" and "3rb" make "8rb"); `None` when the
    /// two cannot be added up that way.
    pub fn plus(self, other: OrderedBy) -> Option<OrderedBy> {
        match (self, other) {
            (OrderedBy::Money(a), OrderedBy::Money(b)) if a + b <= MAX_MONEY => Some(OrderedBy::Money(a + b)),
            (OrderedBy::Pieces { count: a, unit }, OrderedBy::Pieces { count: b, unit: u }) if unit == u => {
                Some(OrderedBy::Pieces { count: a + b, unit })
            }
            _ => None,
        }
    }
}

/// A line's price: the sum typed for a money line, else the price per unit times the quantity.
pub fn line_price(price_per_unit: Rupiah, quantity: Quantity, by: Option<OrderedBy>) -> Rupiah {
    match by {
        Some(OrderedBy::Money(sum)) => sum,
        _ => crate::domain::cart::line_total(price_per_unit, quantity),
    }
}

/// A line's amount as a shopper or trader reads it: `1,5 kg`; `Rp 5.000 (± 150 gr)`;
/// `1 ekor (± 1,2 kg)` before weighing and `1 ekor, ditimbang 1,3 kg` after.
pub fn describe(quantity: Quantity, by: Option<OrderedBy>, weighed: bool, lang: Lang) -> String {
    let q = quantity.display(lang);
    match by {
        None => q,
        Some(OrderedBy::Money(sum)) if weighed => format!("{sum} ({q})"),
        Some(OrderedBy::Money(sum)) => format!("{sum} (± {q})"),
        Some(OrderedBy::Pieces { count, unit }) if weighed => {
            let word = match lang {
                Lang::Id => "ditimbang",
                Lang::En => "weighed",
            };
            format!("{count} {}, {word} {q}", unit.name())
        }
        Some(OrderedBy::Pieces { count, unit }) => format!("{count} {} (± {q})", unit.name()),
    }
}

/// A price shown with `±` when it is an estimate.
pub fn describe_price(price: Rupiah, by: Option<OrderedBy>, weighed: bool) -> String {
    match by {
        Some(b) if b.price_is_estimate() && !weighed => format!("± {price}"),
        _ => price.to_string(),
    }
}

impl Amount {
    /// How this amount is kept on a line of a commodity sold per `unit`: money's worth of goods
    /// sold by the piece becomes the whole pieces it buys, priced as such (never more than
    /// their worth).
    pub fn ordered_by_at(self, unit: SaleUnit) -> Option<OrderedBy> {
        match (self, unit) {
            (Amount::Money(_), SaleUnit::Piece(_)) => None,
            _ => self.ordered_by(),
        }
    }

    /// How this amount is kept on a line.
    pub fn ordered_by(self) -> Option<OrderedBy> {
        match self {
            Amount::Exact(_) => None,
            Amount::Money(sum) => Some(OrderedBy::Money(sum)),
            Amount::Pieces { count, size } => Some(OrderedBy::Pieces { count, unit: size.unit }),
        }
    }

    /// The quantity to pack at `price` per unit, rounded to the nearest sellable `step` (grams
    /// or millilitres; 1 for goods sold by the piece).
    pub fn quantity(self, unit: SaleUnit, step: u64, price: Rupiah) -> Result<Quantity, AmountError> {
        let step = step.max(1);
        match self {
            Amount::Exact(q) => Ok(q),
            Amount::Money(sum) => {
                if sum > MAX_MONEY {
                    return Err(AmountError::MoneyTooLarge { max: MAX_MONEY });
                }
                let per_unit = u128::from(unit.base_per_unit());
                let price = u128::try_from(price.value()).unwrap_or(0).max(1);
                let sum = u128::try_from(sum.value()).unwrap_or(0);
                // Goods sold by the piece: as many whole pieces as the sum pays for (the line is
                // then priced by its count, see `ordered_by_at`).
                if let SaleUnit::Piece(_) = unit {
                    let count = sum / price;
                    if count == 0 {
                        let min = Rupiah(i64::try_from(price).unwrap_or(i64::MAX));
                        return Err(AmountError::BelowStep { min });
                    }
                    return Ok(Quantity::new(u64::try_from(count).unwrap_or(u64::MAX), unit)?);
                }
                // base = sum / price * base_per_unit, to the nearest step.
                let steps = (sum * per_unit * 2 + price * u128::from(step)) / (price * u128::from(step) * 2);
                // Less than one step costs: the stall cannot pack it for that money.
                if steps == 0 || sum * per_unit < price * u128::from(step) {
                    let min = Rupiah(i64::try_from(price * u128::from(step)).unwrap_or(i64::MAX))
                        .times_fraction(1, unit.base_per_unit())
                        .unwrap_or(Rupiah(i64::MAX));
                    // Rounded up, so the price named buys the step.
                    let min = Rupiah((min.value().max(1) + 99) / 100 * 100);
                    return Err(AmountError::BelowStep { min });
                }
                let base = u64::try_from(steps * u128::from(step)).unwrap_or(u64::MAX);
                Ok(Quantity::new(base.max(unit.min_base()), unit)?)
            }
            Amount::Pieces { count, size } => {
                let grams = count.saturating_mul(size.grams);
                let base = (grams + step / 2) / step * step;
                Ok(Quantity::new(base.max(step).max(unit.min_base()), unit)?)
            }
        }
    }
}

/// Money words: a marker before or after a number that makes it rupiah.
fn money_marker(word: &str) -> Option<u64> {
    Some(match word {
        "rp" | "idr" | "an" | "rupiah" => 1,
        "rb" | "ribu" | "rebu" | "ewu" | "k" | "rbu" | "ribuan" | "rban" | "rebuan" | "ewonan" | "rbuan" => 1000,
        _ => return None,
    })
}

/// Whether a word marks money (`rb`, `ribu`, `ewu`, `rp`, `k`, the `an` of `5000an`).
pub fn is_money_word(word: &str) -> bool {
    money_marker(word).is_some() || matches!(word, "goceng" | "ceban")
}

/// Reads money as shoppers write it after a commodity: `5rb`, `5 ribu`, `5000an`, `Rp 5.000`,
/// `10k`, `2,5rb`, `limang ewu`; `None` when the words are not money.
fn parse_money(toks: &[String]) -> Option<Result<Rupiah, AmountError>> {
    if !toks.iter().any(|t| is_money_word(t)) {
        return None;
    }
    let mut number: Option<crate::domain::quantity::Ratio> = None;
    let mut times: u64 = 1;
    let mut slang: u64 = 0;
    for t in toks {
        if let Some(m) = money_marker(t) {
            times = times.max(m);
            continue;
        }
        match t.as_str() {
            "goceng" => slang += 5000,
            "ceban" => slang += 10_000,
            _ => {
                if t.starts_with('-') {
                    return Some(Err(QuantityError::NotPositive.into()));
                }
                let Some(r) = crate::domain::quantity::parse_number(t) else {
                    return Some(Err(QuantityError::NotANumber.into()));
                };
                if number.is_some() {
                    return Some(Err(QuantityError::NotANumber.into()));
                }
                number = Some(r);
            }
        }
    }
    let value = match number {
        Some(r) => {
            let scaled = u128::from(r.num) * u128::from(times);
            let den = u128::from(r.den.max(1));
            if scaled % den != 0 {
                return Some(Err(QuantityError::NotANumber.into()));
            }
            u64::try_from(scaled / den).unwrap_or(u64::MAX)
        }
        None if slang > 0 => slang,
        None => return Some(Err(QuantityError::NotANumber.into())),
    };
    if value == 0 {
        return Some(Err(QuantityError::NotPositive.into()));
    }
    let value = i64::try_from(value).unwrap_or(i64::MAX);
    if Rupiah(value) > MAX_MONEY {
        return Some(Err(AmountError::MoneyTooLarge { max: MAX_MONEY }));
    }
    Some(Ok(Rupiah(value)))
}

/// Parses what a shopper wrote for a commodity sold per `unit` that may be ordered by the piece
/// (`piece`): money, pieces, or an exact quantity (see [`parse_quantity`]; a bare number of a
/// thousand or more is money).
pub fn parse_amount(input: &str, unit: SaleUnit, piece: Option<PieceSize>) -> Result<Amount, AmountError> {
    let lowered = input.trim().to_lowercase();
    // "Rp 5.000,-": the dash that closes a sum on a price tag.
    let lowered = lowered.trim_end_matches(['-', ',', '.']).trim_end().to_string();
    let toks = tokens(&lowered);
    if let Some(money) = parse_money(&toks) {
        return money.map(Amount::Money);
    }
    // Pieces of a commodity sold by weight: "1 ekor", "10 butir", "2 biji", "selusin".
    if matches!(unit, SaleUnit::Kilogram | SaleUnit::Liter)
        && let Some(size) = piece
        && let Some(word) = toks.iter().find(|t| piece_word(t).is_some() || *t == "lusin")
    {
        let fits = match piece_word(word) {
            Some(Some(p)) => p == size.unit,
            _ => true,
        };
        if !fits {
            return Err(QuantityError::WrongUnit { given: word.clone(), expected: unit }.into());
        }
        let count = parse_quantity(&lowered, SaleUnit::Piece(size.unit))?;
        return Ok(Amount::Pieces { count: count.base(), size });
    }
    match parse_quantity(&lowered, unit) {
        Ok(q) => Ok(Amount::Exact(q)),
        Err(QuantityError::LooksLikeMoney(n)) => {
            let value = i64::try_from(n).unwrap_or(i64::MAX);
            if Rupiah(value) > MAX_MONEY {
                return Err(AmountError::MoneyTooLarge { max: MAX_MONEY });
            }
            Ok(Amount::Money(Rupiah(value)))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KG: SaleUnit = SaleUnit::Kilogram;
    const TEMPE: SaleUnit = SaleUnit::Piece(PieceUnit::Papan);
    const EKOR: PieceSize = PieceSize { unit: PieceUnit::Ekor, grams: 1200 };
    const BUTIR: PieceSize = PieceSize { unit: PieceUnit::Butir, grams: 60 };

    fn money(input: &str) -> i64 {
        match parse_amount(input, KG, None) {
            Ok(Amount::Money(r)) => r.value(),
            other => panic!("`{input}` should be money, got {other:?}"),
        }
    }

    #[test]
    fn money_is_read_every_way_it_is_written_and_never_as_kilos() {
        for (input, rupiah) in [
            ("5rb", 5000),
            ("5 rb", 5000),
            ("5 ribu", 5000),
            ("5 rebu", 5000),
            ("5000an", 5000),
            ("5.000an", 5000),
            ("Rp 5.000", 5000),
            ("rp5000", 5000),
            ("Rp5rb", 5000),
            ("10k", 10_000),
            ("2,5rb", 2500),
            ("2.5rb", 2500),
            ("5 ewu", 5000),
            ("20 ribuan", 20_000),
            ("5000", 5000),
            ("5.000", 5000),
            ("goceng", 5000),
        ] {
            assert_eq!(money(input), rupiah, "{input}");
        }
    }

    #[test]
    fn a_bare_number_is_kilos_to_fifty_grams_from_a_hundred_and_rupiah_from_a_thousand() {
        let exact = |s: &str| match parse_amount(s, KG, None) {
            Ok(Amount::Exact(q)) => q.base(),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(exact("2"), 2000);
        assert_eq!(exact("50"), 50_000);
        assert_eq!(exact("500"), 500);
        assert_eq!(exact("250"), 250);
        assert_eq!(exact(".5 kg"), 500);
        assert_eq!(exact("0.5"), 500);
        assert!(matches!(parse_amount("75", KG, None), Err(AmountError::Quantity(QuantityError::TooLarge { .. }))));
        assert_eq!(money("1000"), 1000);
        assert_eq!(parse_amount("3", TEMPE, None), Ok(Amount::Exact(Quantity::new(3, TEMPE).expect("3"))));
        assert!(matches!(parse_amount("5000", TEMPE, None), Ok(Amount::Money(Rupiah(5000)))));
    }

    #[test]
    fn negative_and_zero_amounts_are_refused() {
        for input in ["-2 kg", "-2", "0", "0 kg", "-5rb", "0rb", "-1 ekor"] {
            let r = parse_amount(input, KG, Some(EKOR));
            assert!(
                matches!(r, Err(AmountError::Quantity(QuantityError::NotPositive | QuantityError::NotANumber))),
                "{input}: {r:?}"
            );
        }
        assert!(parse_amount("5 juta rb", KG, None).is_err());
        assert!(matches!(parse_amount("5000rb", KG, None), Err(AmountError::MoneyTooLarge { .. })));
    }

    #[test]
    fn pieces_of_goods_sold_by_weight() {
        assert_eq!(parse_amount("1 ekor", KG, Some(EKOR)), Ok(Amount::Pieces { count: 1, size: EKOR }));
        assert_eq!(parse_amount("2 biji", KG, Some(EKOR)), Ok(Amount::Pieces { count: 2, size: EKOR }));
        assert_eq!(parse_amount("10 butir", KG, Some(BUTIR)), Ok(Amount::Pieces { count: 10, size: BUTIR }));
        assert_eq!(parse_amount("10 btr", KG, Some(BUTIR)), Ok(Amount::Pieces { count: 10, size: BUTIR }));
        assert_eq!(parse_amount("selusin", KG, Some(BUTIR)), Ok(Amount::Pieces { count: 12, size: BUTIR }));
        assert_eq!(parse_amount("sak ekor", KG, Some(EKOR)), Ok(Amount::Pieces { count: 1, size: EKOR }));
        // No piece word in the data: sold by weight only, as before.
        assert!(matches!(
            parse_amount("1 ekor", KG, None),
            Err(AmountError::Quantity(QuantityError::WrongUnit { .. }))
        ));
        // Another commodity's piece word.
        assert!(matches!(
            parse_amount("1 sisir", KG, Some(EKOR)),
            Err(AmountError::Quantity(QuantityError::WrongUnit { .. }))
        ));
        assert!(matches!(
            parse_amount("1/2 ekor", KG, Some(EKOR)),
            Err(AmountError::Quantity(QuantityError::NotWhole { .. }))
        ));
    }

    #[test]
    fn estimates_round_to_the_step_and_say_when_the_money_is_too_little() {
        // Rp 5.000 of shallots at Rp 33.500/kg is 149 g: 150 g in steps of 50.
        let q = Amount::Money(Rupiah(5000)).quantity(KG, 50, Rupiah(33_500)).expect("150 g");
        assert_eq!(q.base(), 150);
        let q = Amount::Money(Rupiah(3000)).quantity(KG, 100, Rupiah(12_000)).expect("300 g");
        assert_eq!(q.base(), 300, "250 g is halfway between steps of 100: rounded up");
        assert_eq!(
            Amount::Money(Rupiah(1000)).quantity(KG, 50, Rupiah(45_000)),
            Err(AmountError::BelowStep { min: Rupiah(2300) })
        );
        let q = Amount::Pieces { count: 1, size: EKOR }.quantity(KG, 100, Rupiah(35_000)).expect("1,2 kg");
        assert_eq!(q.base(), 1200);
        assert_eq!(
            line_price(Rupiah(35_000), q, Some(OrderedBy::Pieces { count: 1, unit: PieceUnit::Ekor })).value(),
            42_000
        );
        assert_eq!(line_price(Rupiah(33_500), q, Some(OrderedBy::Money(Rupiah(5000)))).value(), 5000);
        // Tahu at Rp 900 a piece: Rp 5.000 buys 5 whole pieces, priced as 5 pieces.
        let tahu = SaleUnit::Piece(PieceUnit::Biji);
        assert_eq!(Amount::Money(Rupiah(5000)).quantity(tahu, 1, Rupiah(900)).expect("5").base(), 5);
        assert_eq!(Amount::Money(Rupiah(5000)).ordered_by_at(tahu), None);
        assert_eq!(
            Amount::Money(Rupiah(500)).quantity(tahu, 1, Rupiah(900)),
            Err(AmountError::BelowStep { min: Rupiah(900) })
        );
    }

    #[test]
    fn lines_read_as_asked() {
        let q = Quantity::new(1200, KG).expect("q");
        let by = Some(OrderedBy::Pieces { count: 1, unit: PieceUnit::Ekor });
        assert_eq!(describe(q, by, false, Lang::Id), "1 ekor (± 1,2 kg)");
        let w = Quantity::new(1300, KG).expect("q");
        assert_eq!(describe(w, by, true, Lang::Id), "1 ekor, ditimbang 1,3 kg");
        let m = Quantity::new(150, KG).expect("q");
        assert_eq!(describe(m, Some(OrderedBy::Money(Rupiah(5000))), false, Lang::Id), "Rp 5.000 (± 150 gr)");
        assert_eq!(describe_price(Rupiah(42_000), by, false), "± Rp 42.000");
        assert_eq!(describe_price(Rupiah(45_500), by, true), "Rp 45.500");
    }
}
