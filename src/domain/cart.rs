//! The shopping cart: lines of (stall offer, quantity) and their totals.
//!
//! Prices are taken from the offer when the cart is shown and again when the order is placed, so a
//! cart never carries a stale price into an order.

use crate::domain::money::Rupiah;
use crate::domain::quantity::Quantity;
use serde::{Deserialize, Serialize};

/// One line of a cart as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub offer_id: i64,
    /// Exact, or an estimate when ordered by money or pieces.
    pub quantity: Quantity,
    /// How it was asked for when not by quantity (`brambang 5rb`, `ayam 1 ekor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered_by: Option<crate::domain::amount::OrderedBy>,
}

/// Price of a quantity at a price per sale unit, rounded to the whole rupiah.
pub fn line_total(price_per_unit: Rupiah, quantity: Quantity) -> Rupiah {
    price_per_unit
        .times_fraction(quantity.base(), quantity.unit().base_per_unit())
        // Bounded quantities times sane prices cannot overflow i64; saturate rather than panic.
        .unwrap_or(Rupiah(i64::MAX))
}

/// The most lines one cart may hold: a long market list, not a warehouse.
pub const MAX_CART_LINES: usize = 40;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::quantity::{PieceUnit, SaleUnit};

    #[test]
    fn line_totals() {
        let q = |b, u| Quantity::new(b, u).expect("quantity");
        assert_eq!(line_total(Rupiah(38000), q(1000, SaleUnit::Kilogram)), Rupiah(38000));
        assert_eq!(line_total(Rupiah(38000), q(250, SaleUnit::Kilogram)), Rupiah(9500));
        assert_eq!(line_total(Rupiah(45000), q(100, SaleUnit::Kilogram)), Rupiah(4500));
        assert_eq!(line_total(Rupiah(17500), q(1500, SaleUnit::Liter)), Rupiah(26250));
        assert_eq!(line_total(Rupiah(3000), q(3, SaleUnit::Piece(PieceUnit::Ikat))), Rupiah(9000));
        assert_eq!(line_total(Rupiah(33333), q(333, SaleUnit::Kilogram)), Rupiah(11100));
    }
}
