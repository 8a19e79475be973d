//! Orders: one per checkout, with one sub-order per stall. Every status change goes through
//! [`OrderStatus::can_move_to`] / [`SubOrderStatus::can_move_to`], which refuse illegal moves; the
//! store records each accepted move with time and actor in the audit table.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How the shopper pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentMethod {
    Transfer,
    Qris,
    CashOnDelivery,
}

impl PaymentMethod {
    pub const ALL: [PaymentMethod; 3] = [
        PaymentMethod::Transfer,
        PaymentMethod::Qris,
        PaymentMethod::CashOnDelivery,
    ];

    pub fn code(self) -> &'static str {
        match self {
            PaymentMethod::Transfer => "transfer",
            PaymentMethod::Qris => "qris",
            PaymentMethod::CashOnDelivery => "cod",
        }
    }
}

impl FromStr for PaymentMethod {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        PaymentMethod::ALL
            .into_iter()
            .find(|m| m.code() == s)
            .ok_or(())
    }
}

/// The life of a whole order, as the shopper sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Placed; waiting for the traders to confirm.
    AwaitingTraders,
    /// A trader changed something after weighing; the shopper must agree.
    AwaitingBuyer,
    AwaitingPayment,
    /// Paid (or cash on delivery agreed); traders are packing.
    Preparing,
    ReadyForPickup,
    OnDelivery,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::AwaitingTraders,
        OrderStatus::AwaitingBuyer,
        OrderStatus::AwaitingPayment,
        OrderStatus::Preparing,
        OrderStatus::ReadyForPickup,
        OrderStatus::OnDelivery,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
    ];

    pub fn code(self) -> &'static str {
        match self {
            OrderStatus::AwaitingTraders => "awaiting_traders",
            OrderStatus::AwaitingBuyer => "awaiting_buyer",
            OrderStatus::AwaitingPayment => "awaiting_payment",
            OrderStatus::Preparing => "preparing",
            OrderStatus::ReadyForPickup => "ready_for_pickup",
            OrderStatus::OnDelivery => "on_delivery",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn from_code(code: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The one table of legal moves.
    pub fn can_move_to(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (
                AwaitingTraders,
                AwaitingBuyer | AwaitingPayment | Preparing | Cancelled
            ) | (
                AwaitingBuyer,
                AwaitingTraders | AwaitingPayment | Preparing | Cancelled
            ) | (AwaitingPayment, Preparing | Cancelled)
                | (Preparing, ReadyForPickup | Cancelled)
                | (ReadyForPickup, OnDelivery | Cancelled)
                | (OnDelivery, Delivered | ReadyForPickup)
        )
    }

    pub fn is_open(self) -> bool {
        !matches!(self, OrderStatus::Delivered | OrderStatus::Cancelled)
    }
}

/// The part of an order one stall handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubOrderStatus {
    AwaitingTrader,
    /// Trader changed quantity or price; waiting for the shopper.
    Adjusted,
    Accepted,
    Rejected,
    Packed,
    PickedUp,
    Cancelled,
}

impl SubOrderStatus {
    pub const ALL: [SubOrderStatus; 7] = [
        SubOrderStatus::AwaitingTrader,
        SubOrderStatus::Adjusted,
        SubOrderStatus::Accepted,
        SubOrderStatus::Rejected,
        SubOrderStatus::Packed,
        SubOrderStatus::PickedUp,
        SubOrderStatus::Cancelled,
    ];

    pub fn code(self) -> &'static str {
        match self {
            SubOrderStatus::AwaitingTrader => "awaiting_trader",
            SubOrderStatus::Adjusted => "adjusted",
            SubOrderStatus::Accepted => "accepted",
            SubOrderStatus::Rejected => "rejected",
            SubOrderStatus::Packed => "packed",
            SubOrderStatus::PickedUp => "picked_up",
            SubOrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn from_code(code: &str) -> Option<SubOrderStatus> {
        SubOrderStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    pub fn can_move_to(self, next: SubOrderStatus) -> bool {
        use SubOrderStatus::*;
        matches!(
            (self, next),
            (AwaitingTrader, Adjusted | Accepted | Rejected | Cancelled)
                | (Adjusted, Accepted | Rejected | Cancelled)
                | (Accepted, Packed | Cancelled)
                | (Packed, PickedUp | Cancelled)
        )
    }

    /// A trader has said yes to this sub-order at some point.
    pub fn trader_confirmed(self) -> bool {
        matches!(
            self,
            SubOrderStatus::Accepted | SubOrderStatus::Packed | SubOrderStatus::PickedUp
        )
    }
}

/// A short number people can read out on the phone: `BLB-0042`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderNumber(String);

impl OrderNumber {
    pub fn new(market_code: &str, seq: i64) -> OrderNumber {
        OrderNumber(format!("{market_code}-{seq:04}"))
    }

    /// Reads what a shopper types: `BLB-0042`, `blb-42`, `BLB42`, `#BLB-0042`.
    pub fn parse(input: &str) -> Option<OrderNumber> {
        let cleaned: String = input
            .trim()
            .trim_start_matches('#')
            .chars()
            .filter(|c| *c != '-' && *c != ' ')
            .collect::<String>()
            .to_uppercase();
        if cleaned.len() < 4 || cleaned.len() > 12 {
            return None;
        }
        let (code, digits) = cleaned.split_at(3);
        if !code.chars().all(|c| c.is_ascii_uppercase())
            || !digits.chars().all(|c| c.is_ascii_digit())
            || digits.is_empty()
        {
            return None;
        }
        let seq: i64 = digits.parse().ok()?;
        Some(OrderNumber::new(code, seq))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers() {
        assert_eq!(OrderNumber::new("BLB", 42).as_str(), "BLB-0042");
        assert_eq!(OrderNumber::new("BLB", 12345).as_str(), "BLB-12345");
        for typed in ["BLB-0042", "blb-42", "BLB42", "#BLB-0042", " blb 0042 "] {
            assert_eq!(
                OrderNumber::parse(typed),
                Some(OrderNumber::new("BLB", 42)),
                "{typed}"
            );
        }
        for bad in ["", "42", "BL-42", "BLB-", "BLB-4x", "1BL-42"] {
            assert_eq!(OrderNumber::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_legal_moves() {
        use OrderStatus::*;
        assert!(AwaitingTraders.can_move_to(Cancelled));
        assert!(!Delivered.can_move_to(Cancelled));
        assert!(!Cancelled.can_move_to(AwaitingTraders));
        assert!(!AwaitingTraders.can_move_to(Delivered));
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::from_code(s.code()), Some(s));
            assert!(!s.can_move_to(s), "{s:?} to itself");
        }
        for s in SubOrderStatus::ALL {
            assert_eq!(SubOrderStatus::from_code(s.code()), Some(s));
        }
        assert!(SubOrderStatus::AwaitingTrader.can_move_to(SubOrderStatus::Cancelled));
        assert!(!SubOrderStatus::Rejected.can_move_to(SubOrderStatus::Accepted));
    }
}

// ---------------------------------------------------------------------------------------------
// Placing and listing orders

use crate::domain::contact::{Address, PhoneNumber};
use crate::domain::money::Rupiah;
use crate::domain::quantity::Quantity;
use crate::domain::slot::SlotChoice;
use chrono::{DateTime, Utc};

/// One priced line of an order about to be placed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrderLine {
    pub offer_id: i64,
    pub stall_id: i64,
    pub commodity_id: String,
    pub commodity_name: String,
    pub quantity: Quantity,
    pub unit_price: Rupiah,
    pub total: Rupiah,
}

/// Everything checkout collected, ready to be stored as an order with a sub-order per stall.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub buyer_name: String,
    pub phone: PhoneNumber,
    pub address: Address,
    pub slot: SlotChoice,
    pub payment: PaymentMethod,
    pub note: Option<String>,
    pub lines: Vec<NewOrderLine>,
    pub placed_at: DateTime<Utc>,
}

impl NewOrder {
    pub fn total(&self) -> Rupiah {
        self.lines.iter().map(|l| l.total).sum()
    }
}

/// An order as the shopper's "Pesanan saya" shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderSummary {
    pub number: OrderNumber,
    pub status: OrderStatus,
    pub total: Rupiah,
    pub placed_at: DateTime<Utc>,
    pub slot: SlotChoice,
    pub payment: PaymentMethod,
    pub stalls: usize,
    /// No trader has confirmed any part yet.
    pub cancellable: bool,
}

/// Why an order cannot be cancelled by its shopper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelRefusal {
    NotFound,
    AlreadyCancelled,
    ConfirmedByTrader,
    TooLate,
}

/// The shopper may cancel while no trader has confirmed anything.
pub fn buyer_may_cancel(status: OrderStatus, subs: &[SubOrderStatus]) -> Result<(), CancelRefusal> {
    match status {
        OrderStatus::Cancelled => Err(CancelRefusal::AlreadyCancelled),
        OrderStatus::AwaitingTraders | OrderStatus::AwaitingBuyer => {
            if subs.iter().any(|s| s.trader_confirmed()) {
                Err(CancelRefusal::ConfirmedByTrader)
            } else {
                Ok(())
            }
        }
        _ => Err(CancelRefusal::TooLate),
    }
}

#[cfg(test)]
mod cancel_tests {
    use super::*;

    #[test]
    fn cancel_only_before_any_trader_confirms() {
        use SubOrderStatus as S;
        assert_eq!(
            buyer_may_cancel(
                OrderStatus::AwaitingTraders,
                &[S::AwaitingTrader, S::AwaitingTrader]
            ),
            Ok(())
        );
        assert_eq!(
            buyer_may_cancel(
                OrderStatus::AwaitingTraders,
                &[S::AwaitingTrader, S::Accepted]
            ),
            Err(CancelRefusal::ConfirmedByTrader)
        );
        assert_eq!(
            buyer_may_cancel(OrderStatus::Cancelled, &[]),
            Err(CancelRefusal::AlreadyCancelled)
        );
        assert_eq!(
            buyer_may_cancel(OrderStatus::OnDelivery, &[S::PickedUp]),
            Err(CancelRefusal::TooLate)
        );
    }
}
