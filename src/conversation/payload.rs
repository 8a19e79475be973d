//! Button payloads: short, typed, parsed by one function.
//!
//! A payload only says what was pressed. Whether the press is still valid (the offer still sold,
//! the slot still open, the order the presser's own) is checked by the conversation against the
//! database every time, so a forged or stale payload changes nothing.

use crate::domain::catalog::Category;
use crate::domain::delivery::FailReason;
use crate::domain::money::Rupiah;
use crate::domain::order::{OrderNumber, PaymentMethod};
use crate::text::Lang;

/// Telegram's `callback_data` limit.
pub const MAX_PAYLOAD_BYTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Menu,
    Shop,
    Category {
        category: Category,
        page: usize,
    },
    Commodity(String),
    Offer(i64),
    QuickQuantity {
        offer: i64,
        base: u64,
    },
    Cart,
    CartLine(i64),
    EditLine(i64),
    RemoveLine(i64),
    EmptyCart,
    EmptyCartConfirmed,
    Checkout,
    UseSavedName,
    UseSavedPhone,
    UseSavedAddress,
    Slot(String),
    Payment(PaymentMethod),
    NoNote,
    PlaceOrder,
    Abort,
    Orders,
    CancelOrder(OrderNumber),
    CancelOrderConfirmed(OrderNumber),
    LanguageMenu,
    Language(Lang),
    Help,
    Search,
    // The shopper's answers in the order lifecycle.
    AgreeChanges(i64),
    DropStall(i64),
    AcknowledgeDrop(i64),
    // Traders, on a sub-order or one of its lines.
    TraderAccept(i64),
    TraderChange(i64),
    TraderReject(i64),
    TraderReason {
        sub: i64,
        reason: ReasonCode,
    },
    TraderLine(i64),
    TraderOutOfStock(i64),
    TraderDone(i64),
    TraderPack(i64),
    /// An admin's order list: which orders, which page.
    AdminOrders {
        filter: crate::domain::order::OrderFilter,
        page: usize,
    },
    /// An admin opens one order.
    AdminOrder(OrderNumber),
    /// The admin confirms their broadcast draft: it is sent.
    BroadcastSend(i64),
    /// The admin drops their broadcast draft.
    BroadcastCancel(i64),
    /// The shopper agrees to get the market's news.
    Subscribe,
    /// The shopper no longer wants the market's news.
    Unsubscribe,
    /// "Something ran out" on a part already accepted: choose the line (by sub-order).
    TraderShortage(i64),
    /// That line ran out after all (by line).
    TraderDropLine(i64),
    // The shopper's timeline of an order, and their ratings of a delivered one.
    Track(OrderNumber),
    /// Stars for the order's courier (`sub: None`) or for one stall's part.
    Rate {
        order: i64,
        sub: Option<i64>,
        stars: u8,
    },
    SkipReviewComment(i64),
    // Couriers, on a delivery (and a stall's part of it).
    CourierTake(i64),
    CourierSkip(i64),
    CourierPicked {
        delivery: i64,
        sub: i64,
    },
    CourierDepart(i64),
    CourierDelivered(i64),
    /// The cash collected at the door of an order paid there: the amount the button showed.
    CourierCash {
        delivery: i64,
        amount: Rupiah,
    },
    CourierFail(i64),
    CourierFailReason {
        delivery: i64,
        reason: FailReason,
    },
    // A typed order under review: its lines are in the shopper's state, by position, and every
    // showing of the review has its own number, so a press on an older one is stale.
    /// Every line into the cart.
    TypedAddAll(u32),
    /// Choose a line to change.
    TypedChange(u32),
    /// One line: its stalls, or take it out.
    TypedLine {
        review: u32,
        line: usize,
    },
    /// Take this line from that stall.
    TypedStall {
        review: u32,
        line: usize,
        offer: i64,
    },
    /// Take the line out.
    TypedDrop {
        review: u32,
        line: usize,
    },
    /// Back to the whole review.
    TypedReview(u32),
}

/// The reasons a trader picks from when rejecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonCode {
    Habis,
    Tutup,
    Lainnya,
}

impl ReasonCode {
    pub fn code(self) -> &'static str {
        match self {
            ReasonCode::Habis => "habis",
            ReasonCode::Tutup => "tutup",
            ReasonCode::Lainnya => "lain",
        }
    }

    fn parse(s: &str) -> Option<ReasonCode> {
        [ReasonCode::Habis, ReasonCode::Tutup, ReasonCode::Lainnya].into_iter().find(|r| r.code() == s)
    }
}

impl Action {
    pub fn encode(&self) -> String {
        match self {
            Action::Menu => "menu".into(),
            Action::Shop => "shop".into(),
            Action::Category { category, page } => format!("cat:{}:{page}", category.slug()),
            Action::Commodity(id) => format!("com:{id}"),
            Action::Offer(id) => format!("off:{id}"),
            Action::QuickQuantity { offer, base } => format!("qty:{offer}:{base}"),
            Action::Cart => "cart".into(),
            Action::CartLine(id) => format!("line:{id}"),
            Action::EditLine(id) => format!("edit:{id}"),
            Action::RemoveLine(id) => format!("del:{id}"),
            Action::EmptyCart => "empty".into(),
            Action::EmptyCartConfirmed => "empty!".into(),
            Action::Checkout => "checkout".into(),
            Action::UseSavedName => "name:saved".into(),
            Action::UseSavedPhone => "phone:saved".into(),
            Action::UseSavedAddress => "addr:saved".into(),
            Action::Slot(code) => format!("slot:{code}"),
            Action::Payment(m) => format!("pay:{}", m.code()),
            Action::NoNote => "note:none".into(),
            Action::PlaceOrder => "place".into(),
            Action::Abort => "abort".into(),
            Action::Orders => "orders".into(),
            Action::CancelOrder(n) => format!("cancel:{n}"),
            Action::CancelOrderConfirmed(n) => format!("cancel!:{n}"),
            Action::LanguageMenu => "lang".into(),
            Action::Language(l) => format!("lang:{}", l.code()),
            Action::Help => "help".into(),
            Action::Search => "search".into(),
            Action::AgreeChanges(id) => format!("agree:{id}"),
            Action::DropStall(id) => format!("dropst:{id}"),
            Action::AcknowledgeDrop(id) => format!("ack:{id}"),
            Action::TraderAccept(id) => format!("t:ok:{id}"),
            Action::TraderChange(id) => format!("t:chg:{id}"),
            Action::TraderReject(id) => format!("t:no:{id}"),
            Action::TraderReason { sub, reason } => format!("t:why:{sub}:{}", reason.code()),
            Action::TraderLine(id) => format!("t:line:{id}"),
            Action::TraderOutOfStock(id) => format!("t:oos:{id}"),
            Action::TraderDone(id) => format!("t:done:{id}"),
            Action::TraderPack(id) => format!("t:pack:{id}"),
            Action::AdminOrders { filter, page } => format!("a:list:{}:{page}", filter.code()),
            Action::AdminOrder(n) => format!("a:ord:{n}"),
            Action::BroadcastSend(id) => format!("a:bc:{id}"),
            Action::BroadcastCancel(id) => format!("a:bx:{id}"),
            Action::Subscribe => "sub".into(),
            Action::Unsubscribe => "unsub".into(),
            Action::TraderShortage(id) => format!("t:short:{id}"),
            Action::TraderDropLine(id) => format!("t:drop:{id}"),
            Action::Track(n) => format!("track:{n}"),
            Action::Rate { order, sub: None, stars } => format!("rate:{order}:k:{stars}"),
            Action::Rate { order, sub: Some(sub), stars } => format!("rate:{order}:{sub}:{stars}"),
            Action::SkipReviewComment(order) => format!("rvskip:{order}"),
            Action::CourierTake(id) => format!("k:take:{id}"),
            Action::CourierSkip(id) => format!("k:skip:{id}"),
            Action::CourierPicked { delivery, sub } => format!("k:pick:{delivery}:{sub}"),
            Action::CourierDepart(id) => format!("k:go:{id}"),
            Action::CourierDelivered(id) => format!("k:done:{id}"),
            Action::CourierCash { delivery, amount } => format!("k:cash:{delivery}:{}", amount.0),
            Action::CourierFail(id) => format!("k:fail:{id}"),
            Action::CourierFailReason { delivery, reason } => format!("k:why:{delivery}:{}", reason.code()),
            Action::TypedAddAll(r) => format!("ft:{r}:all"),
            Action::TypedChange(r) => format!("ft:{r}:chg"),
            Action::TypedLine { review, line } => format!("ft:{review}:l:{line}"),
            Action::TypedStall { review, line, offer } => format!("ft:{review}:s:{line}:{offer}"),
            Action::TypedDrop { review, line } => format!("ft:{review}:d:{line}"),
            Action::TypedReview(r) => format!("ft:{r}:rev"),
        }
    }

    /// Buttons only a delivery's courier may press.
    pub fn is_courier(&self) -> bool {
        matches!(
            self,
            Action::CourierTake(_)
                | Action::CourierSkip(_)
                | Action::CourierPicked { .. }
                | Action::CourierDepart(_)
                | Action::CourierDelivered(_)
                | Action::CourierCash { .. }
                | Action::CourierFail(_)
                | Action::CourierFailReason { .. }
        )
    }

    /// Buttons only admins may press.
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Action::AdminOrders { .. } | Action::AdminOrder(_) | Action::BroadcastSend(_) | Action::BroadcastCancel(_)
        )
    }

    /// Buttons only a stall's trader may press.
    pub fn is_trader(&self) -> bool {
        matches!(
            self,
            Action::TraderAccept(_)
                | Action::TraderChange(_)
                | Action::TraderReject(_)
                | Action::TraderReason { .. }
                | Action::TraderLine(_)
                | Action::TraderOutOfStock(_)
                | Action::TraderDone(_)
                | Action::TraderPack(_)
                | Action::TraderShortage(_)
                | Action::TraderDropLine(_)
        )
    }

    /// The one parser of payloads. Anything unknown, malformed or oversized is `None`.
    pub fn parse(payload: &str) -> Option<Action> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return None;
        }
        let (head, rest) = match payload.split_once(':') {
            Some((h, r)) => (h, Some(r)),
            None => (payload, None),
        };
        let id = |s: &str| s.parse::<i64>().ok().filter(|n| *n > 0);
        if let ("k", Some(r)) = (head, rest) {
            let (verb, arg) = r.split_once(':')?;
            return Some(match verb {
                "take" => Action::CourierTake(id(arg)?),
                "skip" => Action::CourierSkip(id(arg)?),
                "pick" => {
                    let (delivery, sub) = arg.split_once(':')?;
                    Action::CourierPicked { delivery: id(delivery)?, sub: id(sub)? }
                }
                "go" => Action::CourierDepart(id(arg)?),
                "done" => Action::CourierDelivered(id(arg)?),
                "cash" => {
                    let (delivery, amount) = arg.split_once(':')?;
                    Action::CourierCash { delivery: id(delivery)?, amount: Rupiah(id(amount)?) }
                }
                "fail" => Action::CourierFail(id(arg)?),
                "why" => {
                    let (delivery, reason) = arg.split_once(':')?;
                    Action::CourierFailReason { delivery: id(delivery)?, reason: reason.parse().ok()? }
                }
                _ => return None,
            });
        }
        if let ("ft", Some(r)) = (head, rest) {
            let line = |s: &str| s.parse::<usize>().ok().filter(|n| *n < crate::domain::free_text::MAX_ITEMS);
            let (review, r) = r.split_once(':')?;
            let review: u32 = review.parse().ok()?;
            let (verb, arg) = r.split_once(':').unwrap_or((r, ""));
            return Some(match (verb, arg) {
                ("all", "") => Action::TypedAddAll(review),
                ("chg", "") => Action::TypedChange(review),
                ("rev", "") => Action::TypedReview(review),
                ("l", i) => Action::TypedLine { review, line: line(i)? },
                ("d", i) => Action::TypedDrop { review, line: line(i)? },
                ("s", a) => {
                    let (i, offer) = a.split_once(':')?;
                    Action::TypedStall { review, line: line(i)?, offer: id(offer)? }
                }
                _ => return None,
            });
        }
        if let ("a", Some(r)) = (head, rest) {
            let (verb, arg) = r.split_once(':')?;
            return Some(match verb {
                "list" => {
                    let (filter, page) = arg.split_once(':')?;
                    Action::AdminOrders {
                        filter: crate::domain::order::OrderFilter::parse(filter)?,
                        page: page.parse().ok().filter(|p| *p < 10_000)?,
                    }
                }
                "ord" => Action::AdminOrder(OrderNumber::parse(arg)?),
                "bc" => Action::BroadcastSend(id(arg)?),
                "bx" => Action::BroadcastCancel(id(arg)?),
                _ => return None,
            });
        }
        if let ("t", Some(r)) = (head, rest) {
            let (verb, arg) = r.split_once(':')?;
            return Some(match verb {
                "ok" => Action::TraderAccept(id(arg)?),
                "chg" => Action::TraderChange(id(arg)?),
                "no" => Action::TraderReject(id(arg)?),
                "why" => {
                    let (sub, reason) = arg.split_once(':')?;
                    Action::TraderReason { sub: id(sub)?, reason: ReasonCode::parse(reason)? }
                }
                "line" => Action::TraderLine(id(arg)?),
                "oos" => Action::TraderOutOfStock(id(arg)?),
                "done" => Action::TraderDone(id(arg)?),
                "pack" => Action::TraderPack(id(arg)?),
                "short" => Action::TraderShortage(id(arg)?),
                "drop" => Action::TraderDropLine(id(arg)?),
                _ => return None,
            });
        }
        Some(match (head, rest) {
            ("menu", None) => Action::Menu,
            ("shop", None) => Action::Shop,
            ("cat", Some(r)) => {
                let (cat, page) = r.split_once(':')?;
                Action::Category { category: cat.parse().ok()?, page: page.parse().ok()? }
            }
            ("com", Some(r)) if !r.is_empty() && r.len() <= 48 => Action::Commodity(r.to_string()),
            ("off", Some(r)) => Action::Offer(id(r)?),
            ("qty", Some(r)) => {
                let (offer, base) = r.split_once(':')?;
                Action::QuickQuantity { offer: id(offer)?, base: base.parse().ok()? }
            }
            ("cart", None) => Action::Cart,
            ("line", Some(r)) => Action::CartLine(id(r)?),
            ("edit", Some(r)) => Action::EditLine(id(r)?),
            ("del", Some(r)) => Action::RemoveLine(id(r)?),
            ("empty", None) => Action::EmptyCart,
            ("empty!", None) => Action::EmptyCartConfirmed,
            ("checkout", None) => Action::Checkout,
            ("name", Some("saved")) => Action::UseSavedName,
            ("phone", Some("saved")) => Action::UseSavedPhone,
            ("addr", Some("saved")) => Action::UseSavedAddress,
            ("slot", Some(r)) if r.len() == 12 && r.chars().all(|c| c.is_ascii_digit()) => Action::Slot(r.to_string()),
            ("pay", Some(r)) => Action::Payment(r.parse().ok()?),
            ("note", Some("none")) => Action::NoNote,
            ("place", None) => Action::PlaceOrder,
            ("abort", None) => Action::Abort,
            ("orders", None) => Action::Orders,
            ("cancel", Some(r)) => Action::CancelOrder(OrderNumber::parse(r)?),
            ("cancel!", Some(r)) => Action::CancelOrderConfirmed(OrderNumber::parse(r)?),
            ("lang", None) => Action::LanguageMenu,
            ("lang", Some(r)) => Action::Language(Lang::from_code(r)?),
            ("help", None) => Action::Help,
            ("search", None) => Action::Search,
            ("sub", None) => Action::Subscribe,
            ("unsub", None) => Action::Unsubscribe,
            ("agree", Some(r)) => Action::AgreeChanges(id(r)?),
            ("dropst", Some(r)) => Action::DropStall(id(r)?),
            ("ack", Some(r)) => Action::AcknowledgeDrop(id(r)?),
            ("track", Some(r)) => Action::Track(OrderNumber::parse(r)?),
            ("rate", Some(r)) => {
                let mut parts = r.split(':');
                let (Some(order), Some(target), Some(stars), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return None;
                };
                let stars: u8 = stars.parse().ok().filter(|s| (1..=5).contains(s))?;
                let sub = if target == "k" { None } else { Some(id(target)?) };
                Action::Rate { order: id(order)?, sub, stars }
            }
            ("rvskip", Some(r)) => Action::SkipReviewComment(id(r)?),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_within_64_bytes() {
        let actions = vec![
            Action::Menu,
            Action::Shop,
            Action::Category { category: Category::DagingAyam, page: 3 },
            Action::Commodity("cabai-merah-keriting".into()),
            Action::Offer(123456),
            Action::QuickQuantity { offer: 99999, base: 50000 },
            Action::Cart,
            Action::CartLine(7),
            Action::EditLine(7),
            Action::RemoveLine(7),
            Action::EmptyCart,
            Action::EmptyCartConfirmed,
            Action::Checkout,
            Action::UseSavedName,
            Action::UseSavedPhone,
            Action::UseSavedAddress,
            Action::Slot("202611280700".into()),
            Action::Payment(PaymentMethod::CashOnDelivery),
            Action::NoNote,
            Action::PlaceOrder,
            Action::Abort,
            Action::Orders,
            Action::CancelOrder(OrderNumber::new("BLB", 42)),
            Action::CancelOrderConfirmed(OrderNumber::new("BLB", 42)),
            Action::LanguageMenu,
            Action::Language(Lang::En),
            Action::Help,
            Action::Search,
            Action::AgreeChanges(9),
            Action::DropStall(9),
            Action::AcknowledgeDrop(9),
            Action::TraderAccept(123456789),
            Action::TraderChange(1),
            Action::TraderReject(1),
            Action::TraderReason { sub: 77, reason: ReasonCode::Lainnya },
            Action::TraderLine(5),
            Action::TraderOutOfStock(5),
            Action::TraderDone(1),
            Action::TraderPack(1),
            Action::AdminOrders { filter: crate::domain::order::OrderFilter::Payment, page: 3 },
            Action::AdminOrder(OrderNumber::new("BLB", 12345)),
            Action::BroadcastSend(123456789),
            Action::BroadcastCancel(1),
            Action::Subscribe,
            Action::Unsubscribe,
            Action::TraderShortage(1),
            Action::TraderDropLine(1),
            Action::Track(OrderNumber::new("BLB", 12345)),
            Action::Rate { order: 123456789, sub: None, stars: 5 },
            Action::Rate { order: 123456789, sub: Some(123456789), stars: 1 },
            Action::SkipReviewComment(7),
            Action::CourierTake(123456789),
            Action::CourierSkip(1),
            Action::CourierPicked { delivery: 123456789, sub: 123456789 },
            Action::CourierDepart(1),
            Action::CourierDelivered(1),
            Action::CourierCash { delivery: 123456789, amount: Rupiah(9_999_999_999) },
            Action::CourierFail(1),
            Action::CourierFailReason { delivery: 123456789, reason: FailReason::WrongAddress },
            Action::TypedAddAll(u32::MAX),
            Action::TypedChange(7),
            Action::TypedReview(0),
            Action::TypedLine { review: u32::MAX, line: 29 },
            Action::TypedDrop { review: 1, line: 0 },
            Action::TypedStall { review: u32::MAX, line: 29, offer: 123456789 },
        ];
        for a in actions {
            let p = a.encode();
            assert!(p.len() <= MAX_PAYLOAD_BYTES, "{p}");
            assert_eq!(Action::parse(&p), Some(a), "{p}");
        }
    }

    #[test]
    fn forged_payloads_are_refused() {
        for bad in [
            "",
            "nope",
            "off:",
            "off:-1",
            "off:abc",
            "cat:daging:1",
            "cat:sayur",
            "qty:1",
            "pay:bitcoin",
            "slot:2026",
            "lang:fr",
            "cancel:xx",
            "k:take:0",
            "k:pick:1",
            "k:why:1:lost",
            "k:cash:1",
            "k:cash:1:0",
            "k:cash:1:-9000",
            "k:cash:1:9.000",
            "k:fly:1",
            "track:1",
            "rate:1:k:0",
            "rate:1:k:6",
            "rate:1:2",
            "rate:1:x:3",
            "rate:1:2:3:4",
            "a:bc:0",
            "a:bc:x",
            "a:bx:",
            "sub:1",
            &"a".repeat(65),
        ] {
            assert_eq!(Action::parse(bad), None, "{bad}");
        }
    }
}
