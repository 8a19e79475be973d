//! Payments: what a shopper is asked to pay, and the ledger of every rupiah that moved.
//!
//! Payment is asked for only once every stall has confirmed and the shopper has agreed to the
//! weighed total (see [`settle_status`]). A request ([`Payment`]) is one amount by one method with
//! an expiry: QRIS (a dynamic QR for the exact amount), bank transfer (the amount plus a unique
//! 3-digit code so that an incoming transfer can be matched), or a virtual account from the bank
//! partner's API. Cash on delivery is never asked for in advance: the courier records what was
//! collected.
//!
//! The ledger only ever grows. Three kinds of entry: money in ([`LedgerKind::Payment`]), money
//! the market owes the shopper back ([`LedgerKind::RefundOwed`], when a line or stall drops out
//! after payment, or a paid order is cancelled), and money paid back ([`LedgerKind::Refund`]).
//! [`Balance`] sums them; its invariant (paid minus owed is what the order now costs) is checked
//! by a test over random order histories.

use super::money::Rupiah;
use super::order::{OrderStatus, PaymentMethod};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where transfers go: the bank partner's account for the market.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankAccount {
    pub bank: String,
    pub number: String,
    pub holder: String,
}

impl BankAccount {
    /// The sample account of the embedded defaults (replace it in `[payment]`).
    pub fn sample() -> BankAccount {
        BankAccount {
            bank: "Bank Jatim".into(),
            number: "0011223344".into(),
            holder: "Pasar Online Kota Malang (contoh)".into(),
        }
    }
}

/// The state of one payment request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStatus {
    /// Asked for, not yet paid.
    Pending,
    Paid,
    /// Not paid in time: the order was cancelled.
    Expired,
    /// Replaced by a new request (the amount changed) or the order was cancelled.
    Cancelled,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 4] =
        [PaymentStatus::Pending, PaymentStatus::Paid, PaymentStatus::Expired, PaymentStatus::Cancelled];

    pub fn code(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Paid => "paid",
            PaymentStatus::Expired => "expired",
            PaymentStatus::Cancelled => "cancelled",
        }
    }

    pub fn from_code(code: &str) -> Option<PaymentStatus> {
        PaymentStatus::ALL.into_iter().find(|s| s.code() == code)
    }
}

/// A payment request as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub id: i64,
    pub order_id: i64,
    pub method: PaymentMethod,
    /// What the shopper must pay: the order's total, plus the unique code for a transfer.
    pub amount: Rupiah,
    /// The transfer's unique code (1-999), already in `amount`; 0 for other methods.
    pub unique_code: i64,
    /// The dynamic QRIS payload, or the virtual account number once the bank gave one.
    pub reference: Option<String>,
    pub status: PaymentStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub reminded: bool,
}

/// A request about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPayment {
    pub order_id: i64,
    pub method: PaymentMethod,
    pub amount: Rupiah,
    pub unique_code: i64,
    pub reference: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When the "still unpaid" reminder goes.
    pub remind_at: DateTime<Utc>,
}

/// The methods that are paid before delivery (the others are paid at the door).
pub fn paid_in_advance(method: PaymentMethod) -> bool {
    !matches!(method, PaymentMethod::CashOnDelivery)
}

/// A unique code for a transfer of `total`: starts from a number derived from the order and
/// takes the next one whose amount no pending transfer of the market already has, so that an
/// incoming transfer of that exact amount names one order. `None` when all 999 are taken.
pub fn unique_code(order_id: i64, total: Rupiah, pending_amounts: &[Rupiah]) -> Option<i64> {
    let start = (order_id.rem_euclid(999) * 37).rem_euclid(999);
    (0..999).map(|i| (start + i).rem_euclid(999) + 1).find(|code| !pending_amounts.contains(&Rupiah(total.0 + code)))
}

/// The order's status once the traders' phase says `derived`: an order paid in advance waits for
/// its payment before it is prepared and handed to a courier.
pub fn settle_status(derived: OrderStatus, method: PaymentMethod, paid: bool) -> OrderStatus {
    if !paid_in_advance(method) {
        return derived;
    }
    match derived {
        OrderStatus::Confirmed | OrderStatus::ReadyForPickup if !paid => OrderStatus::AwaitingPayment,
        OrderStatus::Confirmed if paid => OrderStatus::Preparing,
        other => other,
    }
}

/// What a ledger entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerKind {
    /// Money received from the shopper (QRIS, transfer, virtual account, or cash at the door).
    Payment,
    /// Money the market owes the shopper back.
    RefundOwed,
    /// Money paid back to the shopper.
    Refund,
    /// Money the market chose to give back beyond what the order owes (bad produce, say): owed
    /// like a refund, and the order costs that much less from then on.
    Goodwill,
}

impl LedgerKind {
    pub const ALL: [LedgerKind; 4] =
        [LedgerKind::Payment, LedgerKind::RefundOwed, LedgerKind::Refund, LedgerKind::Goodwill];

    pub fn code(self) -> &'static str {
        match self {
            LedgerKind::Payment => "payment",
            LedgerKind::RefundOwed => "refund_owed",
            LedgerKind::Refund => "refund",
            LedgerKind::Goodwill => "goodwill",
        }
    }

    pub fn from_code(code: &str) -> Option<LedgerKind> {
        LedgerKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// One row of the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    pub order_id: i64,
    pub kind: LedgerKind,
    pub method: PaymentMethod,
    /// Always positive; the kind says which way it went.
    pub amount: Rupiah,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// A key that makes the entry once-only (a bank notification's id): a second entry with the
    /// same reference is not written.
    pub reference: Option<String>,
    pub note: Option<String>,
}

impl LedgerEntry {
    /// An entry without a reference or a note.
    pub fn new(
        order_id: i64,
        kind: LedgerKind,
        method: PaymentMethod,
        amount: Rupiah,
        at: DateTime<Utc>,
        actor: &str,
    ) -> LedgerEntry {
        LedgerEntry { order_id, kind, method, amount, at, actor: actor.to_string(), reference: None, note: None }
    }
}

/// An order's money, summed from its ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balance {
    pub paid: Rupiah,
    /// Everything owed back, goodwill included.
    pub owed: Rupiah,
    pub refunded: Rupiah,
    pub goodwill: Rupiah,
}

impl Balance {
    pub fn of(entries: &[LedgerEntry]) -> Balance {
        let sum = |k: LedgerKind| Rupiah(entries.iter().filter(|e| e.kind == k).map(|e| e.amount.0).sum());
        let goodwill = sum(LedgerKind::Goodwill);
        Balance {
            paid: sum(LedgerKind::Payment),
            owed: Rupiah(sum(LedgerKind::RefundOwed).0 + goodwill.0),
            refunded: sum(LedgerKind::Refund),
            goodwill,
        }
    }

    /// Money the market keeps for the order: paid minus everything owed back.
    pub fn kept(&self) -> Rupiah {
        Rupiah(self.paid.0 - self.owed.0)
    }

    /// Owed back and not yet paid back.
    pub fn outstanding(&self) -> Rupiah {
        Rupiah(self.owed.0 - self.refunded.0)
    }

    pub fn is_paid(&self) -> bool {
        self.paid.0 > 0
    }
}

/// What the market should keep of a paid order that now costs `charge` (its total plus any
/// unique code; zero once cancelled), after the goodwill it gave.
pub fn to_keep(balance: &Balance, charge: Rupiah) -> Rupiah {
    Rupiah((charge.0 - balance.goodwill.0).max(0))
}

/// What becomes owed to the shopper when a paid order now costs `charge`: the part of what the
/// market keeps above [`to_keep`].
pub fn newly_owed(balance: &Balance, charge: Rupiah) -> Rupiah {
    Rupiah((balance.kept().0 - to_keep(balance, charge).0).max(0))
}

/// Why `/refund` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundRefusal {
    NotPaid,
    /// More than was paid and not yet given back.
    TooMuch {
        max: Rupiah,
    },
}

/// A refund of `amount` paid back: the entries to write. Up to what is outstanding settles the
/// debt; anything above (a goodwill refund, for bad produce, say) is first recorded as goodwill
/// owed, so paid minus owed stays what the market keeps. Never more than paid and not yet
/// refunded.
pub fn refund_entries(balance: &Balance, amount: Rupiah) -> Result<Vec<(LedgerKind, Rupiah)>, RefundRefusal> {
    if !balance.is_paid() {
        return Err(RefundRefusal::NotPaid);
    }
    let max = Rupiah(balance.paid.0 - balance.refunded.0);
    if amount.0 <= 0 || amount > max {
        return Err(RefundRefusal::TooMuch { max });
    }
    let extra = amount.0 - balance.outstanding().0;
    let mut out = Vec::new();
    if extra > 0 {
        out.push((LedgerKind::Goodwill, Rupiah(extra)));
    }
    out.push((LedgerKind::Refund, amount));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: LedgerKind, amount: i64) -> LedgerEntry {
        LedgerEntry::new(1, kind, PaymentMethod::Qris, Rupiah(amount), DateTime::<Utc>::UNIX_EPOCH, "t")
    }

    #[test]
    fn unique_codes_avoid_pending_amounts() {
        let total = Rupiah(38_000);
        let first = unique_code(42, total, &[]).expect("a code");
        assert!((1..=999).contains(&first));
        let second = unique_code(42, total, &[Rupiah(38_000 + first)]).expect("another");
        assert_ne!(first, second);
        let all: Vec<Rupiah> = (1..=999).map(|c| Rupiah(38_000 + c)).collect();
        assert_eq!(unique_code(42, total, &all), None);
        // Different orders start at different codes.
        assert_ne!(unique_code(1, total, &[]), unique_code(2, total, &[]));
    }

    #[test]
    fn payment_waits_for_every_trader_and_comes_before_packing_counts() {
        use OrderStatus::*;
        use PaymentMethod::*;
        assert_eq!(settle_status(Confirmed, Qris, false), AwaitingPayment);
        assert_eq!(settle_status(ReadyForPickup, Transfer, false), AwaitingPayment);
        assert_eq!(settle_status(Confirmed, Qris, true), Preparing);
        assert_eq!(settle_status(ReadyForPickup, Qris, true), ReadyForPickup);
        assert_eq!(settle_status(AwaitingTraders, Qris, false), AwaitingTraders);
        assert_eq!(settle_status(AwaitingBuyer, Transfer, false), AwaitingBuyer);
        assert_eq!(settle_status(Confirmed, CashOnDelivery, false), Confirmed);
    }

    #[test]
    fn refunds_settle_what_is_owed_and_never_exceed_what_was_paid() {
        let b = Balance::of(&[entry(LedgerKind::Payment, 50_000), entry(LedgerKind::RefundOwed, 8_000)]);
        assert_eq!((b.kept(), b.outstanding()), (Rupiah(42_000), Rupiah(8_000)));
        assert_eq!(refund_entries(&b, Rupiah(8_000)), Ok(vec![(LedgerKind::Refund, Rupiah(8_000))]));
        assert_eq!(
            refund_entries(&b, Rupiah(10_000)),
            Ok(vec![(LedgerKind::Goodwill, Rupiah(2_000)), (LedgerKind::Refund, Rupiah(10_000))])
        );
        // Goodwill given, the order costs that much less: a later drop owes only the rest.
        let g = Balance::of(&[
            entry(LedgerKind::Payment, 50_000),
            entry(LedgerKind::Goodwill, 5_000),
            entry(LedgerKind::Refund, 5_000),
        ]);
        assert_eq!(newly_owed(&g, Rupiah(50_000)), Rupiah(0));
        assert_eq!(newly_owed(&g, Rupiah(40_000)), Rupiah(10_000));
        assert_eq!(newly_owed(&g, Rupiah(0)), Rupiah(45_000));
        assert_eq!(refund_entries(&b, Rupiah(50_001)), Err(RefundRefusal::TooMuch { max: Rupiah(50_000) }));
        assert!(refund_entries(&b, Rupiah(0)).is_err());
        assert_eq!(refund_entries(&Balance::default(), Rupiah(1)), Err(RefundRefusal::NotPaid));
        assert_eq!(newly_owed(&b, Rupiah(40_000)), Rupiah(2_000));
        assert_eq!(newly_owed(&b, Rupiah(45_000)), Rupiah(0));
    }
}
