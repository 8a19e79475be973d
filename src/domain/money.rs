//! Money: whole Rupiah in one integer type with one formatter (`Rp 38.000`).
//!
//! Never use floats for money. Multiplying a price by a fractional quantity goes through
//! [`Rupiah::times_fraction`], which rounds half up to the whole rupiah once, at the line.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

/// An amount of money in whole Indonesian Rupiah.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Rupiah(pub i64);

impl Rupiah {
    pub const ZERO: Rupiah = Rupiah(0);

    /// `self * numerator / denominator`, rounded half up (away from zero for negatives).
    /// Used for "price per kg x grams / 1000". Returns `None` on overflow or a zero denominator.
    pub fn times_fraction(self, numerator: u64, denominator: u64) -> Option<Rupiah> {
        if denominator == 0 {
            return None;
        }
        let product = i128::from(self.0).checked_mul(i128::from(numerator))?;
        let den = i128::from(denominator);
        let half = den / 2;
        let rounded = if product >= 0 { (product + half) / den } else { (product - half) / den };
        i64::try_from(rounded).ok().map(Rupiah)
    }

    pub fn value(self) -> i64 {
        self.0
    }

    /// Reads a price as traders type it: `36000`, `36.000`, `Rp 36.000`, `36rb`, `36 ribu`,
    /// `7,5rb`, `36k`. Between Rp 1 and Rp 10.000.000.
    pub fn parse(input: &str) -> Option<Rupiah> {
        let s: String = input.to_lowercase().chars().filter(|c| !c.is_whitespace()).collect();
        let s = s.strip_prefix("rp").unwrap_or(&s).trim_start_matches('.');
        let (number, thousands) =
            if let Some(n) = s.strip_suffix("ribu").or_else(|| s.strip_suffix("rb")).or_else(|| s.strip_suffix('k')) {
                (n, true)
            } else {
                (s, false)
            };
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',') {
            return None;
        }
        let value: i64 = if thousands {
            // "7,5rb" or "7.5rb": a decimal mark, at most three decimals.
            let n = number.replace(',', ".");
            let (int, frac) = n.split_once('.').unwrap_or((&n, ""));
            if frac.len() > 3 || frac.contains('.') {
                return None;
            }
            let int: i64 = int.parse().ok()?;
            let frac_value: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<3}").parse().ok()? };
            int.checked_mul(1000)?.checked_add(frac_value)?
        } else {
            // "36.000": dots (or commas) group thousands; "36000" plain.
            let groups: Vec<&str> = number.split(['.', ',']).collect();
            if groups.len() > 1 && groups[1..].iter().any(|g| g.len() != 3) {
                return None;
            }
            groups.concat().parse().ok()?
        };
        (1..=10_000_000).contains(&value).then_some(Rupiah(value))
    }
}

impl fmt::Display for Rupiah {
    /// Indonesian style: `Rp 38.000`, `Rp 1.250.500`, `-Rp 5.000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.unsigned_abs().to_string();
        let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push('.');
            }
            grouped.push(ch);
        }
        if self.0 < 0 { write!(f, "-Rp {grouped}") } else { write!(f, "Rp {grouped}") }
    }
}

impl Add for Rupiah {
    type Output = Rupiah;
    fn add(self, rhs: Rupiah) -> Rupiah {
        Rupiah(self.0 + rhs.0)
    }
}

impl AddAssign for Rupiah {
    fn add_assign(&mut self, rhs: Rupiah) {
        self.0 += rhs.0;
    }
}

impl Sum for Rupiah {
    fn sum<I: Iterator<Item = Rupiah>>(iter: I) -> Rupiah {
        iter.fold(Rupiah::ZERO, Add::add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_dot_thousands() {
        assert_eq!(Rupiah(0).to_string(), "Rp 0");
        assert_eq!(Rupiah(500).to_string(), "Rp 500");
        assert_eq!(Rupiah(1000).to_string(), "Rp 1.000");
        assert_eq!(Rupiah(38000).to_string(), "Rp 38.000");
        assert_eq!(Rupiah(100000).to_string(), "Rp 100.000");
        assert_eq!(Rupiah(1250500).to_string(), "Rp 1.250.500");
        assert_eq!(Rupiah(-5000).to_string(), "-Rp 5.000");
    }

    #[test]
    fn fraction_rounds_half_up() {
        // 35.000 per kg x 250 g = 8.750
        assert_eq!(Rupiah(35000).times_fraction(250, 1000), Some(Rupiah(8750)));
        // 3.333 x 1/2 = 1.666,5 -> 1.667
        assert_eq!(Rupiah(3333).times_fraction(1, 2), Some(Rupiah(1667)));
        assert_eq!(Rupiah(3333).times_fraction(1, 3), Some(Rupiah(1111)));
        assert_eq!(Rupiah(10).times_fraction(1, 0), None);
        assert_eq!(Rupiah(i64::MAX).times_fraction(u64::MAX, 1), None);
    }

    #[test]
    fn parses_prices_as_traders_type_them() {
        for (input, want) in [
            ("36000", 36000),
            ("36.000", 36000),
            ("Rp 36.000", 36000),
            ("rp36.000", 36000),
            ("36rb", 36000),
            ("36 ribu", 36000),
            ("7,5rb", 7500),
            ("36k", 36000),
            ("1.250.000", 1250000),
        ] {
            assert_eq!(Rupiah::parse(input), Some(Rupiah(want)), "{input}");
        }
        for bad in ["", "abc", "0", "-5000", "36.00", "99999999", "Rp", "3,5"] {
            assert_eq!(Rupiah::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn sums() {
        let total: Rupiah = [Rupiah(1000), Rupiah(2500)].into_iter().sum();
        assert_eq!(total, Rupiah(3500));
    }
}
