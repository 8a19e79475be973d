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
    /// A virtual account from the bank partner's API.
    VirtualAccount,
}

impl PaymentMethod {
    pub const ALL: [PaymentMethod; 4] =
        [PaymentMethod::Transfer, PaymentMethod::VirtualAccount, PaymentMethod::Qris, PaymentMethod::CashOnDelivery];

    pub fn code(self) -> &'static str {
        match self {
            PaymentMethod::Transfer => "transfer",
            PaymentMethod::Qris => "qris",
            PaymentMethod::CashOnDelivery => "cod",
            PaymentMethod::VirtualAccount => "va",
        }
    }
}

impl FromStr for PaymentMethod {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        PaymentMethod::ALL.into_iter().find(|m| m.code() == s).ok_or(())
    }
}

/// The life of a whole order, as the shopper sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Placed; waiting for the traders to confirm.
    AwaitingTraders,
    /// A trader changed something after weighing, or a stall dropped out: the shopper must agree.
    AwaitingBuyer,
    /// Every remaining stall has said yes at the agreed total.
    Confirmed,
    AwaitingPayment,
    /// Paid (or cash on delivery agreed); traders are packing.
    Preparing,
    /// Every stall has packed its part; waiting for the courier.
    ReadyForPickup,
    OnDelivery,
    Delivered,
    /// Cancelled by the shopper, an admin, or because nobody answered.
    Cancelled,
    /// Every stall said no.
    Rejected,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 10] = [
        OrderStatus::AwaitingTraders,
        OrderStatus::AwaitingBuyer,
        OrderStatus::Confirmed,
        OrderStatus::AwaitingPayment,
        OrderStatus::Preparing,
        OrderStatus::ReadyForPickup,
        OrderStatus::OnDelivery,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::Rejected,
    ];

    pub fn code(self) -> &'static str {
        match self {
            OrderStatus::AwaitingTraders => "awaiting_traders",
            OrderStatus::AwaitingBuyer => "awaiting_buyer",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::AwaitingPayment => "awaiting_payment",
            OrderStatus::Preparing => "preparing",
            OrderStatus::ReadyForPickup => "ready_for_pickup",
            OrderStatus::OnDelivery => "on_delivery",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Rejected => "rejected",
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
            (AwaitingTraders, AwaitingBuyer | Confirmed | AwaitingPayment | Cancelled | Rejected)
                | (
                    AwaitingBuyer,
                    AwaitingTraders | Confirmed | AwaitingPayment | Preparing | ReadyForPickup | Cancelled | Rejected
                )
                | (Confirmed, AwaitingPayment | Preparing | ReadyForPickup | AwaitingBuyer | Cancelled)
                | (AwaitingPayment, Preparing | ReadyForPickup | AwaitingBuyer | Cancelled | Rejected)
                | (Preparing, ReadyForPickup | AwaitingBuyer | Cancelled | Rejected)
                | (ReadyForPickup, OnDelivery | Cancelled)
                | (OnDelivery, Delivered | ReadyForPickup)
        )
    }

    /// Still going: not delivered, cancelled or rejected.
    pub fn is_open(self) -> bool {
        !matches!(self, OrderStatus::Delivered | OrderStatus::Cancelled | OrderStatus::Rejected)
    }

    /// The phase in which the traders' answers (and the payment) decide the status (see
    /// [`derive_order_status`] and [`crate::domain::payment::settle_status`]).
    pub fn in_trader_phase(self) -> bool {
        matches!(
            self,
            OrderStatus::AwaitingTraders
                | OrderStatus::AwaitingBuyer
                | OrderStatus::Confirmed
                | OrderStatus::AwaitingPayment
                | OrderStatus::Preparing
                | OrderStatus::ReadyForPickup
        )
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
                | (Adjusted, Accepted | Cancelled)
                | (Accepted, Packed | Cancelled)
                | (Packed, PickedUp | Cancelled)
        )
    }

    /// A trader has said yes to this sub-order at some point.
    pub fn trader_confirmed(self) -> bool {
        matches!(self, SubOrderStatus::Accepted | SubOrderStatus::Packed | SubOrderStatus::PickedUp)
    }

    /// Out of the order: rejected by the stall or cancelled.
    pub fn is_dropped(self) -> bool {
        matches!(self, SubOrderStatus::Rejected | SubOrderStatus::Cancelled)
    }
}

/// A sub-order as the order's status depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubOrderView {
    pub status: SubOrderStatus,
    /// For a dropped sub-order: the shopper has been asked and agreed to go on without it.
    pub buyer_acknowledged: bool,
}

/// The order's status in the trader phase, from its sub-orders: the shopper's agreement is
/// needed first, then the traders' answers, then packing.
pub fn derive_order_status(subs: &[SubOrderView]) -> OrderStatus {
    let active: Vec<&SubOrderView> = subs.iter().filter(|s| !s.status.is_dropped()).collect();
    if active.is_empty() {
        return if subs.iter().any(|s| s.status == SubOrderStatus::Rejected) {
            OrderStatus::Rejected
        } else {
            OrderStatus::Cancelled
        };
    }
    let needs_buyer =
        subs.iter().any(|s| s.status == SubOrderStatus::Adjusted || (s.status.is_dropped() && !s.buyer_acknowledged));
    if needs_buyer {
        return OrderStatus::AwaitingBuyer;
    }
    if active.iter().any(|s| s.status == SubOrderStatus::AwaitingTrader) {
        return OrderStatus::AwaitingTraders;
    }
    if active.iter().all(|s| matches!(s.status, SubOrderStatus::Packed | SubOrderStatus::PickedUp)) {
        return OrderStatus::ReadyForPickup;
    }
    OrderStatus::Confirmed
}

/// Why a stall said no.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    /// Sold out.
    Habis,
    /// Stall closed.
    Tutup,
    Other(String),
}

impl RejectReason {
    /// Stored form: `habis`, `tutup`, or the trader's words.
    pub fn stored(&self) -> String {
        match self {
            RejectReason::Habis => "habis".into(),
            RejectReason::Tutup => "tutup".into(),
            RejectReason::Other(s) => format!("lainnya: {s}"),
        }
    }

    pub fn from_stored(s: &str) -> RejectReason {
        match s {
            "habis" => RejectReason::Habis,
            "tutup" => RejectReason::Tutup,
            other => RejectReason::Other(other.strip_prefix("lainnya: ").unwrap_or(other).to_string()),
        }
    }
}

/// How far a weighed amount may differ from what was ordered: a quarter either way for goods
/// sold by weight or volume; for pieces, only fewer (a stall cannot sell more than it has).
pub fn adjustment_allowed(ordered: u64, weighed: u64, by_piece: bool) -> bool {
    if weighed == 0 {
        return false;
    }
    if by_piece {
        return weighed <= ordered;
    }
    weighed * 4 >= ordered * 3 && weighed * 4 <= ordered * 5
}

/// A changed unit price may differ by at most a fifth from the ordered one.
pub fn price_change_allowed(ordered: i64, new: i64) -> bool {
    new > 0 && new * 5 >= ordered * 4 && new * 5 <= ordered * 6
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
        if !cleaned.is_ascii() || cleaned.len() < 4 || cleaned.len() > 12 {
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
            assert_eq!(OrderNumber::parse(typed), Some(OrderNumber::new("BLB", 42)), "{typed}");
        }
        for bad in ["", "42", "BL-42", "BLB-", "BLB-4x", "1BL-42", "éé12", "BLÉ-0042"] {
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
    /// Ordered by money or pieces: the quantity is an estimate for the trader.
    pub ordered_by: Option<crate::domain::amount::OrderedBy>,
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
    /// When the traders must have answered (then a reminder).
    pub trader_deadline: DateTime<Utc>,
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

/// The shopper may cancel while no trader has confirmed anything, and also while the order is
/// no longer what they placed and they are being asked about it (a stall dropped out and they
/// have not said whether to go on without it, or a stall changed its part after weighing): the
/// "Batalkan semua" button offered then must work even when another stall already said yes.
pub fn buyer_may_cancel(status: OrderStatus, subs: &[SubOrderView]) -> Result<(), CancelRefusal> {
    match status {
        OrderStatus::Cancelled | OrderStatus::Rejected => Err(CancelRefusal::AlreadyCancelled),
        // Not paid yet: the shopper may still back out (the stock goes back).
        OrderStatus::AwaitingPayment => Ok(()),
        OrderStatus::AwaitingTraders | OrderStatus::AwaitingBuyer => {
            let being_asked = subs
                .iter()
                .any(|s| (s.status.is_dropped() && !s.buyer_acknowledged) || s.status == SubOrderStatus::Adjusted);
            if !being_asked && subs.iter().any(|s| s.status.trader_confirmed()) {
                Err(CancelRefusal::ConfirmedByTrader)
            } else {
                Ok(())
            }
        }
        _ => Err(CancelRefusal::TooLate),
    }
}

#[cfg(test)]
mod lifecycle_tests {
    use super::*;
    use SubOrderStatus as S;

    fn v(status: SubOrderStatus, ack: bool) -> SubOrderView {
        SubOrderView { status, buyer_acknowledged: ack }
    }

    #[test]
    fn order_status_follows_its_sub_orders() {
        assert_eq!(
            derive_order_status(&[v(S::AwaitingTrader, false), v(S::Accepted, false)]),
            OrderStatus::AwaitingTraders
        );
        assert_eq!(derive_order_status(&[v(S::Accepted, false), v(S::Accepted, false)]), OrderStatus::Confirmed);
        assert_eq!(derive_order_status(&[v(S::Accepted, false), v(S::Adjusted, false)]), OrderStatus::AwaitingBuyer);
        assert_eq!(derive_order_status(&[v(S::Accepted, false), v(S::Rejected, false)]), OrderStatus::AwaitingBuyer);
        assert_eq!(derive_order_status(&[v(S::Accepted, false), v(S::Rejected, true)]), OrderStatus::Confirmed);
        assert_eq!(derive_order_status(&[v(S::Packed, false), v(S::Rejected, true)]), OrderStatus::ReadyForPickup);
        assert_eq!(derive_order_status(&[v(S::Packed, false), v(S::Accepted, false)]), OrderStatus::Confirmed);
        assert_eq!(derive_order_status(&[v(S::Rejected, false), v(S::Rejected, false)]), OrderStatus::Rejected);
        assert_eq!(derive_order_status(&[v(S::Cancelled, false)]), OrderStatus::Cancelled);
    }

    #[test]
    fn adjustment_limits() {
        assert!(adjustment_allowed(1000, 1100, false));
        assert!(adjustment_allowed(1000, 750, false));
        assert!(!adjustment_allowed(1000, 1300, false));
        assert!(!adjustment_allowed(1000, 700, false));
        assert!(!adjustment_allowed(1000, 0, false));
        assert!(adjustment_allowed(3, 2, true));
        assert!(!adjustment_allowed(3, 4, true));
        assert!(price_change_allowed(35000, 38000));
        assert!(!price_change_allowed(35000, 45000));
        assert!(!price_change_allowed(35000, 0));
    }

    #[test]
    fn reject_reasons_round_trip() {
        for r in [RejectReason::Habis, RejectReason::Tutup, RejectReason::Other("listrik mati".into())] {
            assert_eq!(RejectReason::from_stored(&r.stored()), r);
        }
    }

    #[test]
    fn every_status_has_a_way_out_or_is_final() {
        for s in OrderStatus::ALL {
            let exits = OrderStatus::ALL.iter().filter(|n| s.can_move_to(**n)).count();
            assert_eq!(exits == 0, !s.is_open(), "{s:?}");
        }
    }
}

#[cfg(test)]
mod cancel_tests {
    use super::*;

    #[test]
    fn cancel_only_before_any_trader_confirms() {
        use SubOrderStatus as S;
        let v = |status, ack| SubOrderView { status, buyer_acknowledged: ack };
        let waiting = v(S::AwaitingTrader, false);
        let accepted = v(S::Accepted, false);
        assert_eq!(buyer_may_cancel(OrderStatus::AwaitingTraders, &[waiting, waiting]), Ok(()));
        assert_eq!(
            buyer_may_cancel(OrderStatus::AwaitingTraders, &[waiting, accepted]),
            Err(CancelRefusal::ConfirmedByTrader)
        );
        assert_eq!(buyer_may_cancel(OrderStatus::Cancelled, &[]), Err(CancelRefusal::AlreadyCancelled));
        assert_eq!(buyer_may_cancel(OrderStatus::OnDelivery, &[v(S::PickedUp, false)]), Err(CancelRefusal::TooLate));
    }

    #[test]
    fn cancel_while_asked_about_a_changed_order_even_after_a_stall_confirmed() {
        use SubOrderStatus as S;
        let v = |status, ack| SubOrderView { status, buyer_acknowledged: ack };
        // A stall rejected and the shopper has not answered "go on without it?".
        assert_eq!(
            buyer_may_cancel(OrderStatus::AwaitingBuyer, &[v(S::Rejected, false), v(S::Accepted, false)]),
            Ok(())
        );
        // Once they chose to go on, the accepted stall holds again.
        assert_eq!(
            buyer_may_cancel(OrderStatus::Confirmed, &[v(S::Rejected, true), v(S::Accepted, false)]),
            Err(CancelRefusal::TooLate)
        );
        assert_eq!(
            buyer_may_cancel(
                OrderStatus::AwaitingTraders,
                &[v(S::Rejected, true), v(S::Accepted, false), v(S::AwaitingTrader, false)]
            ),
            Err(CancelRefusal::ConfirmedByTrader)
        );
        // A stall changed its part after weighing.
        assert_eq!(
            buyer_may_cancel(OrderStatus::AwaitingBuyer, &[v(S::Adjusted, false), v(S::Accepted, false)]),
            Ok(())
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Orders as traders, shoppers and timers see them after placing

use crate::channel::UserKey;

/// One line of a placed order, with what was ordered and what was weighed.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderLine {
    pub id: i64,
    pub offer_id: i64,
    pub commodity_id: String,
    pub commodity_name: String,
    pub quantity: Quantity,
    pub unit_price: Rupiah,
    pub total: Rupiah,
    pub ordered_quantity: Quantity,
    pub ordered_unit_price: Rupiah,
    pub out_of_stock: bool,
    /// Ordered by money or pieces: `ordered_quantity` was an estimate.
    pub ordered_by: Option<crate::domain::amount::OrderedBy>,
}

impl OrderLine {
    /// The amount as the shopper and trader read it: `1 ekor (± 1,2 kg)` before weighing,
    /// `1 ekor, ditimbang 1,3 kg` after.
    pub fn describe(&self, lang: crate::text::Lang) -> String {
        crate::domain::amount::describe(self.quantity, self.ordered_by, self.quantity != self.ordered_quantity, lang)
    }

    /// What was ordered, as the shopper asked for it.
    pub fn describe_ordered(&self, lang: crate::text::Lang) -> String {
        crate::domain::amount::describe(self.ordered_quantity, self.ordered_by, false, lang)
    }

    /// The line's price, with `±` while it is an estimate.
    pub fn describe_total(&self) -> String {
        crate::domain::amount::describe_price(self.total, self.ordered_by, self.quantity != self.ordered_quantity)
    }

    /// A weighing the shopper is only told about, not asked: of a line ordered by money (it
    /// costs the sum they typed, whatever the scale says), or of one ordered by the piece close
    /// enough to its estimate (within `tolerance_percent`, at the same price).
    pub fn weighed_within(&self, tolerance_percent: u64) -> bool {
        if let Some(crate::domain::amount::OrderedBy::Money(sum)) = self.ordered_by {
            return !self.out_of_stock && self.total == sum;
        }
        let by_piece = matches!(self.ordered_by, Some(crate::domain::amount::OrderedBy::Pieces { .. }));
        let (from, to) = (self.ordered_quantity.base(), self.quantity.base());
        by_piece
            && !self.out_of_stock
            && self.unit_price == self.ordered_unit_price
            && from.abs_diff(to) * 100 <= from * tolerance_percent
    }

    /// The trader changed it after weighing (or has none).
    pub fn changed(&self) -> bool {
        self.out_of_stock || self.quantity != self.ordered_quantity || self.unit_price != self.ordered_unit_price
    }
}

/// One stall's part of a placed order.
#[derive(Debug, Clone, PartialEq)]
pub struct SubOrder {
    pub id: i64,
    pub order_id: i64,
    pub stall_id: i64,
    pub status: SubOrderStatus,
    pub reason: Option<String>,
    pub buyer_acknowledged: bool,
    pub escalation: i64,
    pub lines: Vec<OrderLine>,
}

impl SubOrder {
    pub fn total(&self) -> Rupiah {
        self.lines.iter().filter(|l| !l.out_of_stock).map(|l| l.total).sum()
    }

    pub fn view(&self) -> SubOrderView {
        SubOrderView { status: self.status, buyer_acknowledged: self.buyer_acknowledged }
    }
}

/// One recorded move of an order or of one of its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// The part that moved (`None`: the whole order).
    pub sub_order_id: Option<i64>,
    /// The status codes it moved from and to (an [`OrderStatus`] or [`SubOrderStatus`] code).
    pub from: Option<String>,
    pub to: String,
    pub at: DateTime<Utc>,
}

/// A placed order with its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: i64,
    pub market: String,
    pub number: OrderNumber,
    pub buyer: UserKey,
    pub status: OrderStatus,
    pub buyer_name: String,
    pub phone: PhoneNumber,
    pub address: Address,
    pub slot: SlotChoice,
    pub payment: PaymentMethod,
    pub note: Option<String>,
    pub placed_at: DateTime<Utc>,
    pub subs: Vec<SubOrder>,
}

impl Order {
    /// What the shopper pays now: every line still in the order, at its weighed amount.
    pub fn total(&self) -> Rupiah {
        self.subs.iter().filter(|s| !s.status.is_dropped()).map(SubOrder::total).sum()
    }

    pub fn sub(&self, id: i64) -> Option<&SubOrder> {
        self.subs.iter().find(|s| s.id == id)
    }

    /// What a trader may know before accepting: the street and kelurahan, not the house number,
    /// name or phone. For a shared location: only that it is a shared location.
    pub fn area(&self) -> Option<String> {
        match &self.address {
            Address::Text(t) => {
                // The street (from its "Jl."/"Gg." word on) and the last part (the kelurahan),
                // without house numbers, RT/RW, "No." and the buyer's own name: people write
                // "Rumah Bu Ani, Jl. Kawi 5, Klojen".
                let name: Vec<String> = self.buyer_name.split_whitespace().map(str::to_lowercase).collect();
                let clean = |segment: &str| -> Vec<String> {
                    segment
                        .split_whitespace()
                        .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
                        .filter(|w| {
                            let l = w.to_lowercase();
                            let bare = l.trim_end_matches(['.', ':']);
                            !matches!(bare, "no" | "rt" | "rw" | "blok" | "nomor" | "rumah" | "kos" | "bu" | "pak")
                                && !name.iter().any(|n| n == bare)
                        })
                        .map(str::to_string)
                        .collect()
                };
                let segments: Vec<&str> = t.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                let is_street_word = |w: &str| {
                    matches!(
                        w.to_lowercase().trim_end_matches('.'),
                        "jl" | "jln" | "jalan" | "gg" | "gang" | "perum" | "perumahan" | "komplek" | "griya"
                    )
                };
                let street = segments.iter().enumerate().find_map(|(i, s)| {
                    let words: Vec<&str> = s.split_whitespace().collect();
                    let at = words.iter().position(|w| is_street_word(w))?;
                    Some((i, clean(&words[at..].join(" "))))
                });
                let mut words = Vec::new();
                if let Some((_, w)) = &street {
                    words.extend(w.iter().cloned());
                }
                let last = segments.len().checked_sub(1);
                if let Some(last) = last
                    && street.as_ref().is_none_or(|(i, _)| *i != last)
                {
                    words.extend(clean(segments[last]));
                }
                Some(words.join(" "))
            }
            Address::Location { .. } => None,
        }
    }
}

#[cfg(test)]
mod area_tests {
    use super::*;

    #[test]
    fn the_area_hides_the_house() {
        let order = |address: Address| Order {
            id: 1,
            market: "blimbing".into(),
            number: OrderNumber::new("BLB", 1),
            buyer: UserKey { channel: crate::channel::ChannelKind::Console, id: "sri".into() },
            status: OrderStatus::AwaitingTraders,
            buyer_name: "Sri".into(),
            phone: PhoneNumber::parse("081234567890").expect("phone"),
            address,
            slot: SlotChoice {
                date: chrono::NaiveDate::from_ymd_opt(2026, 11, 28).expect("date"),
                slot: "07:00-09:00".parse().expect("slot"),
            },
            payment: PaymentMethod::Qris,
            note: None,
            placed_at: DateTime::<Utc>::MIN_UTC,
            subs: Vec::new(),
        };
        let o = order(Address::Text("Jl. Borobudur No. 12 RT 03/RW 05, Purwodadi".into()));
        assert_eq!(o.area().as_deref(), Some("Jl. Borobudur Purwodadi"));
        // Whatever people write before the street (often their own name) stays out.
        let o = order(Address::Text("Rumah Bu Sri Wahyuni, Jl. Kawi No. 5, Klojen".into()));
        assert_eq!(o.area().as_deref(), Some("Jl. Kawi Klojen"));
        let o = order(Address::Text("Sri, Gg. Melati 3 belakang masjid, Sukun".into()));
        assert_eq!(o.area().as_deref(), Some("Gg. Melati belakang masjid Sukun"));
        let o = order(Address::Text("Perumahan Griya Shanta blok C-4".into()));
        assert_eq!(o.area().as_deref(), Some("Perumahan Griya Shanta"));
        assert_eq!(order(Address::Location { lat: -7.9, lon: 112.6 }).area(), None);
    }
}

// ---------------------------------------------------------------------------------------------
// The admins' order lists

/// Which of a market's orders an admin lists (`/pesanan [status]`), by the word they type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderFilter {
    /// Everything not finished (the default).
    Open,
    /// Waiting for traders or the shopper.
    New,
    /// Waiting for payment.
    Payment,
    /// Being prepared or waiting for a courier.
    Ready,
    OnTheRoad,
    Delivered,
    /// Cancelled or rejected.
    Cancelled,
}

impl OrderFilter {
    pub const ALL: [OrderFilter; 7] = [
        OrderFilter::Open,
        OrderFilter::New,
        OrderFilter::Payment,
        OrderFilter::Ready,
        OrderFilter::OnTheRoad,
        OrderFilter::Delivered,
        OrderFilter::Cancelled,
    ];

    /// The word an admin types, and the code in a button.
    pub fn code(self) -> &'static str {
        match self {
            OrderFilter::Open => "aktif",
            OrderFilter::New => "baru",
            OrderFilter::Payment => "bayar",
            OrderFilter::Ready => "siap",
            OrderFilter::OnTheRoad => "antar",
            OrderFilter::Delivered => "selesai",
            OrderFilter::Cancelled => "batal",
        }
    }

    /// Reads a typed word (Indonesian, or its English alias).
    pub fn parse(word: &str) -> Option<OrderFilter> {
        let w = word.trim().to_lowercase();
        let english = [
            ("open", OrderFilter::Open),
            ("new", OrderFilter::New),
            ("payment", OrderFilter::Payment),
            ("ready", OrderFilter::Ready),
            ("road", OrderFilter::OnTheRoad),
            ("delivered", OrderFilter::Delivered),
            ("cancelled", OrderFilter::Cancelled),
        ];
        OrderFilter::ALL
            .into_iter()
            .find(|f| f.code() == w)
            .or_else(|| english.iter().find(|(e, _)| *e == w).map(|(_, f)| *f))
    }

    pub fn statuses(self) -> &'static [OrderStatus] {
        use OrderStatus::*;
        match self {
            OrderFilter::Open => {
                &[AwaitingTraders, AwaitingBuyer, Confirmed, AwaitingPayment, Preparing, ReadyForPickup, OnDelivery]
            }
            OrderFilter::New => &[AwaitingTraders, AwaitingBuyer],
            OrderFilter::Payment => &[AwaitingPayment],
            OrderFilter::Ready => &[Confirmed, Preparing, ReadyForPickup],
            OrderFilter::OnTheRoad => &[OnDelivery],
            OrderFilter::Delivered => &[Delivered],
            OrderFilter::Cancelled => &[Cancelled, Rejected],
        }
    }
}

/// One row of an admin's order list.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketOrderRow {
    pub number: OrderNumber,
    pub status: OrderStatus,
    pub total: Rupiah,
    pub placed_at: DateTime<Utc>,
    pub buyer_name: String,
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn every_status_is_in_exactly_one_filter_besides_open() {
        for s in OrderStatus::ALL {
            let n = OrderFilter::ALL[1..].iter().filter(|f| f.statuses().contains(&s)).count();
            assert_eq!(n, 1, "{s:?}");
            assert_eq!(OrderFilter::Open.statuses().contains(&s), s.is_open(), "{s:?}");
        }
        for f in OrderFilter::ALL {
            assert_eq!(OrderFilter::parse(f.code()), Some(f));
        }
        assert_eq!(OrderFilter::parse("Delivered"), Some(OrderFilter::Delivered));
        assert_eq!(OrderFilter::parse("semua"), None);
    }
}
