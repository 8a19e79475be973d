//! Payment in the order's life: asking for it once every stall has confirmed (and the shopper
//! agreed to the weighed total), taking it (an admin's `/lunas`, the bank's notification, or the
//! cash a courier collects at the door of an order paid there), the reminder and the expiry that
//! cancels an unpaid order, and the refunds a paid order owes when it shrinks or is cancelled.
//!
//! Money is never lost track of: every rupiah received is a ledger row, and whatever of it the
//! order no longer costs becomes a "refund owed" row at once, shown to the shopper and the admins
//! until `/refund` records it paid back. Nothing here talks to a bank: requests and
//! notifications go through the store (the runtime does the HTTP).

use super::lifecycle::{SYSTEM_ACTOR, lang_of, release, tell_admins, tell_buyer, tell_traders};
use super::payload::Action;
use super::{MarketRepo, RepoResult, Turn};
use crate::channel::{NoticeKind, Outbound};
use crate::domain::money::Rupiah;
use crate::domain::order::{Order, OrderStatus, PaymentMethod, SubOrderStatus, derive_order_status};
use crate::domain::payment::{
    Balance, LedgerEntry, LedgerKind, NewPayment, Payment, PaymentStatus, newly_owed, paid_in_advance, settle_status,
    unique_code,
};
use crate::domain::slot::local;
use crate::integration::bank::{BankEvent, BankNews, VaCharge};
use crate::text::{Key, Lang};

/// What the order costs the shopper now: its lines plus the transfer's unique code, or nothing
/// once it is cancelled or rejected.
pub fn charge(order: &Order, code: i64) -> Rupiah {
    match order.status {
        OrderStatus::Cancelled | OrderStatus::Rejected => Rupiah::ZERO,
        _ => Rupiah(order.total().0 + code),
    }
}

/// Whether the order has been paid: its payment request was met (money that came in the wrong
/// amount, or too late, is owed back and pays nothing).
pub fn is_paid(repo: &mut dyn MarketRepo, order_id: i64) -> RepoResult<bool> {
    Ok(repo.current_payment(order_id)?.is_some_and(|p| p.status == PaymentStatus::Paid))
}

/// The order has just reached "awaiting payment" (or its amount changed while it waits): a new
/// request for the exact amount goes to the shopper, and any older one lapses.
pub fn ask(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, order: &Order, intro: Key) -> RepoResult<()> {
    if !paid_in_advance(order.payment) {
        return Ok(());
    }
    if let Some(old) = repo.current_payment(order.id)?
        && old.status == PaymentStatus::Pending
    {
        repo.set_payment_status(old.id, PaymentStatus::Cancelled)?;
    }
    let total = order.total();
    let (code, reference) = match order.payment {
        PaymentMethod::Transfer => {
            let pending = repo.pending_transfer_amounts()?;
            (unique_code(order.id, total, &pending).unwrap_or(0), None)
        }
        PaymentMethod::Qris => (0, turn.policy.payment.qris_of(&turn.market.slug).map(|q| q.dynamic(total))),
        // The account number comes from the bank (see `bank_news`).
        PaymentMethod::VirtualAccount => (0, None),
        PaymentMethod::CashOnDelivery => return Ok(()),
    };
    let expires_at = turn.now + turn.policy.payment.expiry;
    let payment = repo.create_payment(&NewPayment {
        order_id: order.id,
        method: order.payment,
        amount: Rupiah(total.0 + code),
        unique_code: code,
        reference,
        created_at: turn.now,
        expires_at,
        remind_at: expires_at - turn.policy.payment.reminder_before,
    })?;
    if let (PaymentMethod::VirtualAccount, Some(bank)) = (order.payment, &turn.policy.payment.va_bank) {
        repo.request_virtual_account(&VaCharge {
            payment_id: payment.id,
            order_number: order.number.to_string(),
            amount: payment.amount,
            bank: bank.clone(),
            expires_at: payment.expires_at,
        })?;
    }
    let lang = lang_of(repo, turn, &order.buyer)?;
    let intro = turn.tf_in(lang, intro, &[("number", &order.number), ("total", &total)]);
    let msg = request_message(turn, lang, order, &payment, &intro);
    turn.send(&order.buyer.clone(), msg);
    Ok(())
}

/// The payment request: how much, how, by when; a QRIS comes as its QR code with this caption.
pub fn request_message(turn: &Turn<'_>, lang: Lang, order: &Order, payment: &Payment, intro: &str) -> Outbound {
    let expires = local(payment.expires_at).format("%H:%M").to_string();
    let body = match payment.method {
        PaymentMethod::Transfer => match turn.policy.payment.transfer_to(&turn.market.slug) {
            Some(account) => turn.tf_in(
                lang,
                Key::PayTransferBody,
                &[
                    ("amount", &payment.amount),
                    ("bank", &account.bank),
                    ("account", &account.number),
                    ("holder", &account.holder),
                    ("code", &format!("{:03}", payment.unique_code)),
                    ("expires", &expires),
                ],
            ),
            None => turn.tf_in(lang, Key::PayAskAdmin, &[("amount", &payment.amount), ("expires", &expires)]),
        },
        PaymentMethod::VirtualAccount => match (&payment.reference, &turn.policy.payment.va_bank) {
            (Some(number), Some(bank)) => turn.tf_in(
                lang,
                Key::PayVaBody,
                &[
                    ("amount", &payment.amount),
                    ("bank", &bank.to_uppercase()),
                    ("account", &number),
                    ("expires", &expires),
                ],
            ),
            (None, Some(_)) => turn.tf_in(lang, Key::PayVaPreparing, &[("amount", &payment.amount)]),
            _ => turn.tf_in(lang, Key::PayAskAdmin, &[("amount", &payment.amount), ("expires", &expires)]),
        },
        PaymentMethod::Qris if payment.reference.is_some() => {
            let merchant = turn.policy.payment.qris_of(&turn.market.slug).map(|q| q.merchant_name()).unwrap_or("");
            turn.tf_in(
                lang,
                Key::PayQrisBody,
                &[("amount", &payment.amount), ("merchant", &merchant), ("expires", &expires)],
            )
        }
        _ => turn.tf_in(lang, Key::PayAskAdmin, &[("amount", &payment.amount), ("expires", &expires)]),
    };
    let text = if intro.is_empty() { body } else { format!("{intro}\n\n{body}") };
    let cancel = turn.button_in(lang, Key::BtnCancelUnpaid, Action::CancelOrder(order.number.clone()).encode());
    Outbound {
        qr: payment.reference.clone().filter(|_| payment.method == PaymentMethod::Qris),
        notice: Some(NoticeKind::OrderUpdate),
        ..Outbound::with_buttons(text, vec![cancel])
    }
}

/// Why a payment could not be taken for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayOutcome {
    /// Paid: the order goes on to packing and delivery.
    Paid,
    /// The same notification (or confirmation) was recorded before: nothing changed.
    Duplicate,
    /// Money came for an order not waiting for it (expired, cancelled, paid already): it is in
    /// the ledger and owed back in full.
    NotAwaiting(OrderStatus),
    /// Money came, but not the amount asked: in the ledger and owed back; still unpaid.
    WrongAmount { expected: Rupiah },
}

/// Where money for an order came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub method: PaymentMethod,
    pub amount: Rupiah,
    /// Who recorded it: an admin, or `bank`.
    pub actor: String,
    /// Makes it count once (the bank's transaction id).
    pub reference: Option<String>,
    /// The payment request it answers (a virtual account names one); `None`: whichever is
    /// pending.
    pub request: Option<i64>,
}

/// Money came in for an order: from an admin's `/lunas` or a bank notification. Every rupiah
/// that came is recorded; only the exact amount of the pending request pays the order.
pub fn take_payment(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    order: &Order,
    receipt: Receipt,
) -> RepoResult<PayOutcome> {
    let Receipt { method, amount, actor, reference, request } = receipt;
    let actor = actor.as_str();
    let entry =
        LedgerEntry { reference, ..LedgerEntry::new(order.id, LedgerKind::Payment, method, amount, turn.now, actor) };
    if !repo.record_ledger(&entry)? {
        return Ok(PayOutcome::Duplicate);
    }
    let pending = repo
        .current_payment(order.id)?
        .filter(|p| p.status == PaymentStatus::Pending && request.is_none_or(|r| r == p.id));
    let outcome = match pending {
        Some(p) if order.status == OrderStatus::AwaitingPayment && p.amount == amount => {
            repo.set_payment_status(p.id, PaymentStatus::Paid)?;
            paid(repo, turn, order, actor)?;
            return Ok(PayOutcome::Paid);
        }
        Some(p) if order.status == OrderStatus::AwaitingPayment => PayOutcome::WrongAmount { expected: p.amount },
        _ => PayOutcome::NotAwaiting(order.status),
    };
    // Not a payment of this order as it stands: all of it goes back.
    let why = match &outcome {
        PayOutcome::WrongAmount { expected } => {
            turn.tf_in(turn.default_lang, Key::RefundWhyWrongAmount, &[("expected", expected)])
        }
        _ => turn.t_in(turn.default_lang, Key::RefundWhyNotAwaiting),
    };
    owe(repo, turn, order, method, amount, actor, &why)?;
    Ok(outcome)
}

/// How the cash collected at the door compared with the bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CashOutcome {
    /// The exact amount.
    Exact,
    /// Less than the bill by this much: the admins were told.
    Short(Rupiah),
    /// More than the bill by this much: owed back to the shopper.
    Over(Rupiah),
    /// Recorded before under the same reference: nothing changed.
    Duplicate,
}

/// The cash a courier (`collector`, by name) collected at the door of an order paid there, as
/// they counted it; `reference` (`cod:<delivery>`) makes it count once. The whole amount is one
/// payment row. More than the order costs is owed back at once (the existing refund path, so
/// paid minus owed is the order's price); less is told to the admins and nothing else is
/// written: the ledger holds only money that moved, so such an order keeps less than it costs
/// until the market settles the difference outside the bot.
#[allow(clippy::too_many_arguments)]
pub fn cash_collected(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    order: &Order,
    amount: Rupiah,
    actor: &str,
    collector: &str,
    reference: String,
) -> RepoResult<CashOutcome> {
    let entry = LedgerEntry {
        reference: Some(reference),
        note: Some(collector.to_string()),
        ..LedgerEntry::new(order.id, LedgerKind::Payment, PaymentMethod::CashOnDelivery, amount, turn.now, actor)
    };
    if !repo.record_ledger(&entry)? {
        return Ok(CashOutcome::Duplicate);
    }
    let due = charge(order, 0);
    if amount > due {
        let over = Rupiah(amount.0 - due.0);
        let why = turn.tf_in(turn.default_lang, Key::RefundWhyCashOver, &[("amount", &amount), ("total", &due)]);
        owe(repo, turn, order, PaymentMethod::CashOnDelivery, over, actor, &why)?;
        return Ok(CashOutcome::Over(over));
    }
    if amount < due {
        let short = Rupiah(due.0 - amount.0);
        tell_admins(
            repo,
            turn,
            Key::AdminCashShort,
            &[
                ("number", &order.number),
                ("courier", &collector),
                ("amount", &amount),
                ("name", &order.buyer_name),
                ("phone", &order.phone),
                ("short", &short),
                ("total", &due),
            ],
        )?;
        return Ok(CashOutcome::Short(short));
    }
    Ok(CashOutcome::Exact)
}

/// Records money owed back and tells the shopper and the admins.
#[allow(clippy::too_many_arguments)]
fn owe(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    order: &Order,
    method: PaymentMethod,
    amount: Rupiah,
    actor: &str,
    why: &str,
) -> RepoResult<()> {
    repo.record_ledger(&LedgerEntry {
        note: Some(why.to_string()),
        ..LedgerEntry::new(order.id, LedgerKind::RefundOwed, method, amount, turn.now, actor)
    })?;
    tell_buyer(repo, turn, order, Key::BuyerRefundOwed, &[("number", &order.number), ("amount", &amount)], &[])?;
    tell_admins(
        repo,
        turn,
        Key::AdminRefundOwed,
        &[
            ("number", &order.number),
            ("amount", &amount),
            ("plain", &amount.0),
            ("name", &order.buyer_name),
            ("phone", &order.phone),
            ("why", &why),
        ],
    )
}

/// The order is paid: on to packing (or straight to a courier when every stall has packed).
fn paid(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, order: &Order, actor: &str) -> RepoResult<()> {
    let views: Vec<_> = order.subs.iter().map(|s| s.view()).collect();
    let next = settle_status(derive_order_status(&views), order.payment, true);
    if order.status.can_move_to(next) {
        repo.set_order_status(order.id, order.status, next, actor, None)?;
    }
    let total = order.total();
    let key = if next == OrderStatus::ReadyForPickup { Key::BuyerPaidReady } else { Key::BuyerPaid };
    tell_buyer(repo, turn, order, key, &[("number", &order.number), ("total", &total)], &[])?;
    for sub in order.subs.iter().filter(|s| !s.status.is_dropped()) {
        let number = order.number.clone();
        let packed = sub.status != SubOrderStatus::Accepted;
        tell_traders(repo, turn, sub.stall_id, &|t, lang| {
            let key = if packed { Key::TraderPaidPacked } else { Key::TraderPaid };
            Outbound::text(t.tf_in(lang, key, &[("number", &number)]))
        })?;
    }
    if next == OrderStatus::ReadyForPickup && super::delivery::slot_within(turn, order, super::delivery::offer_ahead())
    {
        super::delivery::order_ready(repo, turn, order.id, actor)?;
    }
    Ok(())
}

/// Keeps the money in step with the order after a change (a line or stall dropped, the order
/// cancelled): a paid order owes back whatever it no longer costs; an unpaid one gets a new
/// request for the new amount, or its request lapses with the order. `order` is the order as it
/// now stands (status and lines).
pub fn reconcile(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, order: &Order, actor: &str) -> RepoResult<()> {
    let payment = repo.current_payment(order.id)?;
    let balance = Balance::of(&repo.ledger(order.id)?);
    // Paid in advance, or cash collected at the door: what came in and is not owed back pays for
    // the order, and whatever of it the order no longer costs is owed back.
    let paid_request = payment.as_ref().filter(|p| p.status == PaymentStatus::Paid);
    if paid_request.is_some() || (!paid_in_advance(order.payment) && balance.is_paid()) {
        let code = paid_request.map_or(0, |p| p.unique_code);
        let owed = newly_owed(&balance, charge(order, code));
        if owed > Rupiah::ZERO {
            let key = if order.status.is_open() || order.status == OrderStatus::Delivered {
                Key::RefundWhyLess
            } else {
                Key::RefundWhyCancelled
            };
            let why = turn.t_in(turn.default_lang, key);
            owe(repo, turn, order, order.payment, owed, actor, &why)?;
        }
        return Ok(());
    }
    let Some(p) = payment.filter(|p| p.status == PaymentStatus::Pending) else {
        return Ok(());
    };
    if !order.status.is_open() {
        repo.set_payment_status(p.id, PaymentStatus::Cancelled)?;
    } else if order.status == OrderStatus::AwaitingPayment && p.amount.0 != order.total().0 + p.unique_code {
        ask(repo, turn, order, Key::PayAmountChanged)?;
    }
    Ok(())
}

/// Reminders and expiries of unpaid orders that are due. Returns how many were handled.
pub fn run_timers(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>) -> RepoResult<usize> {
    let due = repo.due_payments(turn.now)?;
    for id in &due {
        let Some(payment) = repo.payment(*id)? else {
            continue;
        };
        let Some(order) = repo.order(payment.order_id)? else {
            continue;
        };
        if order.status != OrderStatus::AwaitingPayment {
            repo.set_payment_status(payment.id, PaymentStatus::Cancelled)?;
            continue;
        }
        if !payment.reminded && turn.now < payment.expires_at {
            repo.payment_reminded(payment.id)?;
            let lang = lang_of(repo, turn, &order.buyer)?;
            let minutes = (payment.expires_at - turn.now).num_minutes().max(1);
            let intro = turn.tf_in(lang, Key::PayReminder, &[("number", &order.number), ("minutes", &minutes)]);
            let msg = request_message(turn, lang, &order, &payment, &intro);
            turn.send(&order.buyer.clone(), msg);
            continue;
        }
        expire(repo, turn, &order, &payment)?;
    }
    Ok(due.len())
}

/// Not paid in time: the order is cancelled, its stock goes back, everyone is told.
fn expire(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, order: &Order, payment: &Payment) -> RepoResult<()> {
    repo.set_payment_status(payment.id, PaymentStatus::Expired)?;
    repo.set_order_status(order.id, order.status, OrderStatus::Cancelled, SYSTEM_ACTOR, Some("not paid"))?;
    for sub in order.subs.iter().filter(|s| !s.status.is_dropped()) {
        if sub.status.can_move_to(SubOrderStatus::Cancelled) {
            repo.set_sub_status(
                order.id,
                sub.id,
                sub.status,
                SubOrderStatus::Cancelled,
                SYSTEM_ACTOR,
                Some("not paid"),
            )?;
        }
        release(repo, sub)?;
        let number = order.number.clone();
        tell_traders(repo, turn, sub.stall_id, &|t, lang| {
            Outbound::text(t.tf_in(lang, Key::TraderPaymentExpired, &[("number", &number)]))
        })?;
    }
    let expired = local(payment.expires_at).format("%H:%M").to_string();
    tell_buyer(repo, turn, order, Key::BuyerPaymentExpired, &[("number", &order.number), ("expires", &expired)], &[])
}

/// One line about the order's money for its timeline: what is asked, paid, or owed back.
pub fn status_line(repo: &mut dyn MarketRepo, turn: &Turn<'_>, order: &Order) -> RepoResult<Option<String>> {
    let balance = Balance::of(&repo.ledger(order.id)?);
    let mut parts = Vec::new();
    if balance.kept() > Rupiah::ZERO {
        parts.push(turn.tf(Key::PayStatusPaid, &[("amount", &balance.kept())]));
    } else if let Some(p) = repo.current_payment(order.id)?.filter(|p| p.status == PaymentStatus::Pending) {
        let expires = local(p.expires_at).format("%H:%M").to_string();
        parts.push(turn.tf(Key::PayStatusPending, &[("amount", &p.amount), ("expires", &expires)]));
    }
    if balance.outstanding() > Rupiah::ZERO {
        parts.push(turn.tf(Key::PayStatusOwed, &[("amount", &balance.outstanding())]));
    }
    if balance.refunded > Rupiah::ZERO {
        parts.push(turn.tf(Key::PayStatusRefunded, &[("amount", &balance.refunded)]));
    }
    Ok((!parts.is_empty()).then(|| parts.join("\n")))
}

/// News from the bank partner about a payment request: its virtual account (sent to the
/// shopper), a refusal (the admins take over), or money in (paid, if it is the request's exact
/// amount while the order waits; otherwise recorded and owed back).
pub fn bank_news(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, news: &BankNews) -> RepoResult<()> {
    let Some(payment) = repo.payment(news.payment_id)? else {
        tracing::warn!(payment = news.payment_id, "bank news about a payment request we do not have; ignored");
        return Ok(());
    };
    let Some(order) = repo.order(payment.order_id)? else {
        return Ok(());
    };
    match &news.event {
        BankEvent::AccountReady { number, .. } => {
            repo.set_payment_reference(payment.id, number)?;
            // A request that lapsed meanwhile (paid otherwise, replaced, expired) is not shown.
            if payment.status == PaymentStatus::Pending && order.status == OrderStatus::AwaitingPayment {
                let lang = lang_of(repo, turn, &order.buyer)?;
                let payment = Payment { reference: Some(number.clone()), ..payment };
                let msg = request_message(turn, lang, &order, &payment, "");
                turn.send(&order.buyer.clone(), msg);
            }
        }
        BankEvent::AccountRefused { reason } => {
            if payment.status == PaymentStatus::Pending {
                let expires = local(payment.expires_at).format("%H:%M").to_string();
                tell_buyer(
                    repo,
                    turn,
                    &order,
                    Key::PayAskAdmin,
                    &[("amount", &payment.amount), ("expires", &expires)],
                    &[],
                )?;
                tell_admins(repo, turn, Key::AdminVaRefused, &[("number", &order.number), ("why", reason)])?;
            }
        }
        BankEvent::Paid { amount, transaction_id } => {
            let receipt = Receipt {
                method: PaymentMethod::VirtualAccount,
                amount: *amount,
                actor: "bank".into(),
                reference: Some(crate::integration::bank::money_key(payment.id, *amount)),
                request: Some(payment.id),
            };
            let outcome = take_payment(repo, turn, &order, receipt)?;
            tracing::info!(order = %order.number, transaction = %transaction_id, outcome = ?outcome, "bank payment");
        }
        BankEvent::Other { status } => {
            tracing::info!(order = %order.number, status = %status, "bank news with nothing to do");
        }
    }
    Ok(())
}
