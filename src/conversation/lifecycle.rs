//! The order lifecycle between shoppers and traders: announcing new orders to each stall,
//! accepting, changing after weighing, rejecting, the shopper's agreement, packing, and what
//! happens when a trader does not answer in time.
//!
//! Every status change goes through the transition tables of [`crate::domain::order`] (illegal
//! moves are refused with a clear answer, never applied) and is audited by the store. Every
//! message to another person is rendered in that person's language and goes out through the
//! outbox in the same transaction as the change.

use super::payload::Action;
use super::{MarketRepo, RepoResult, Role, Turn};
use crate::channel::{Button, NoticeKind, Outbound, UserKey};
use crate::domain::order::{Order, OrderStatus, RejectReason, SubOrder, SubOrderStatus, derive_order_status};
use crate::domain::payment::{paid_in_advance, settle_status};
use crate::domain::slot::local;
use crate::text::{Key, Lang};

/// The actor label of timers in the audit table.
pub const SYSTEM_ACTOR: &str = "system";

/// Why a trader's or shopper's press on an order was refused. Each maps to a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The order or sub-order does not exist or is not this person's.
    NotYours,
    /// The order was cancelled or rejected meanwhile.
    OrderClosed,
    /// It was already answered (accepted twice, rejected after accepting...).
    AlreadyAnswered,
    /// A change outside the allowed limits.
    OutOfLimits,
}

impl Refusal {
    pub fn key(self) -> Key {
        match self {
            Refusal::NotYours => Key::OrderNotYours,
            Refusal::OrderClosed => Key::OrderClosed,
            Refusal::AlreadyAnswered => Key::AlreadyAnswered,
            Refusal::OutOfLimits => Key::ChangeOutOfLimits,
        }
    }
}

pub type Outcome = Result<(), Refusal>;

pub(super) fn lang_of(repo: &mut dyn MarketRepo, turn: &Turn<'_>, user: &UserKey) -> RepoResult<Lang> {
    if user == turn.user {
        return Ok(turn.lang);
    }
    Ok(repo.language_of(user)?.unwrap_or(turn.default_lang))
}

pub(super) fn stall_label(turn: &Turn<'_>, stall_id: i64) -> (String, String) {
    turn.catalog
        .stall(stall_id)
        .map(|s| (s.name.clone(), s.number.clone()))
        .unwrap_or_else(|| (format!("#{stall_id}"), String::new()))
}

/// A sub-order's lines for a trader or shopper: `• Bawang Merah 1 kg × Rp 35.000/kg = Rp 35.000`,
/// with changes after weighing shown against what was ordered.
pub fn lines_text(turn: &Turn<'_>, lang: Lang, sub: &SubOrder) -> String {
    let mut out = Vec::new();
    for l in &sub.lines {
        let unit = l.quantity.unit().label();
        let line = if l.out_of_stock {
            turn.tf_in(
                lang,
                Key::LineOutOfStock,
                &[("commodity", &l.commodity_name), ("qty", &l.describe_ordered(lang))],
            )
        } else if l.changed() {
            turn.tf_in(
                lang,
                Key::LineChanged,
                &[
                    ("commodity", &l.commodity_name),
                    ("ordered", &l.describe_ordered(lang)),
                    ("qty", &l.describe(lang)),
                    ("price", &l.unit_price),
                    ("unit", &unit),
                    ("total", &l.describe_total()),
                ],
            )
        } else {
            turn.tf_in(
                lang,
                Key::LineItem,
                &[
                    ("commodity", &l.commodity_name),
                    ("qty", &l.describe(lang)),
                    ("price", &l.unit_price),
                    ("unit", &unit),
                    ("total", &l.describe_total()),
                ],
            )
        };
        out.push(line);
    }
    out.join("\n")
}

pub(super) fn slot_text(turn: &Turn<'_>, lang: Lang, order: &Order) -> String {
    let today = local(turn.now).date_naive();
    let key = if order.slot.date == today { Key::SlotToday } else { Key::SlotTomorrow };
    turn.tf_in(lang, key, &[("slot", &order.slot.slot), ("date", &order.slot.date.format("%d/%m"))])
}

/// The Terima / Ubah / Tolak buttons of a new sub-order.
fn answer_buttons(turn: &Turn<'_>, lang: Lang, sub_id: i64) -> Vec<Button> {
    vec![
        turn.button_in(lang, Key::BtnAccept, Action::TraderAccept(sub_id).encode()),
        turn.button_in(lang, Key::BtnChange, Action::TraderChange(sub_id).encode()),
        turn.button_in(lang, Key::BtnReject, Action::TraderReject(sub_id).encode()),
    ]
}

/// The message a trader gets for a sub-order: number, lines, slot and the buyer's area only.
pub fn trader_order_message(turn: &Turn<'_>, lang: Lang, order: &Order, sub: &SubOrder, key: Key) -> Outbound {
    let (stall, number) = stall_label(turn, sub.stall_id);
    let area =
        order.area().unwrap_or_else(|| turn.texts.get(&turn.market.slug, lang, Key::AreaSharedLocation).to_string());
    let note = order.note.as_deref().map(|n| turn.tf_in(lang, Key::TraderNote, &[("note", &n)])).unwrap_or_default();
    let text = turn.tf_in(
        lang,
        key,
        &[
            ("number", &order.number),
            ("stall", &stall),
            ("stall_number", &number),
            ("lines", &lines_text(turn, lang, sub)),
            ("total", &sub.total()),
            ("slot", &slot_text(turn, lang, order)),
            ("area", &area),
            ("note", &note),
            ("minutes", &turn.policy.trader_deadline(&turn.market.slug).num_minutes()),
        ],
    );
    Outbound::with_buttons(text.trim_end(), answer_buttons(turn, lang, sub.id))
}

/// Sends each stall's part of a new order to that stall's traders, and sets their deadlines.
/// A stall without a registered trader is reported to the market's admins.
pub fn announce_new_order(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, order_id: i64) -> RepoResult<()> {
    let Some(order) = repo.order(order_id)? else {
        return Ok(());
    };
    // The deadlines were stored with the sub-orders.
    for sub in &order.subs {
        let traders = repo.traders_of(sub.stall_id)?;
        if traders.is_empty() {
            let (stall, number) = stall_label(turn, sub.stall_id);
            tell_admins(
                repo,
                turn,
                Key::AdminStallWithoutTrader,
                &[("stall", &stall), ("stall_number", &number), ("number", &order.number)],
            )?;
        }
        for trader in traders {
            let lang = lang_of(repo, turn, &trader)?;
            let msg = trader_order_message(turn, lang, &order, sub, Key::TraderNewOrder);
            turn.send(&trader, Outbound { notice: Some(NoticeKind::NewOrder), ..msg });
        }
    }
    Ok(())
}

/// Every admin of the market: from the config, then granted.
pub(super) fn admins_of(repo: &mut dyn MarketRepo, turn: &Turn<'_>) -> RepoResult<Vec<UserKey>> {
    let mut admins: Vec<UserKey> = turn.policy.config_admins(&turn.market.slug).cloned().collect();
    for a in repo.staff_admins()? {
        if !admins.contains(&a) {
            admins.push(a);
        }
    }
    Ok(admins)
}

/// Tells every admin of the market (config and granted) something.
pub(super) fn tell_admins(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    key: Key,
    args: &[(&str, &dyn std::fmt::Display)],
) -> RepoResult<()> {
    for admin in admins_of(repo, turn)? {
        let lang = lang_of(repo, turn, &admin)?;
        let text = turn.tf_in(lang, key, args);
        turn.send(&admin, Outbound { notice: Some(NoticeKind::AdminAlert), ..Outbound::text(text) });
    }
    Ok(())
}

/// Tells the shopper something about their order, in their language.
pub(super) fn tell_buyer(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    order: &Order,
    key: Key,
    args: &[(&str, &dyn std::fmt::Display)],
    buttons: &[(Key, Action)],
) -> RepoResult<()> {
    let lang = lang_of(repo, turn, &order.buyer)?;
    let text = turn.tf_in(lang, key, args);
    let buttons: Vec<Button> = buttons.iter().map(|(k, a)| turn.button_in(lang, *k, a.encode())).collect();
    let msg = Outbound { notice: Some(NoticeKind::OrderUpdate), ..Outbound::with_buttons(text, buttons) };
    turn.send(&order.buyer.clone(), msg);
    Ok(())
}

pub(super) fn tell_traders(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    stall_id: i64,
    build: &dyn Fn(&Turn<'_>, Lang) -> Outbound,
) -> RepoResult<()> {
    for trader in repo.traders_of(stall_id)? {
        let lang = lang_of(repo, turn, &trader)?;
        let msg = build(turn, lang);
        let notice = Some(msg.notice.unwrap_or(NoticeKind::TraderUpdate));
        turn.send(&trader, Outbound { notice, ..msg });
    }
    Ok(())
}

/// Loads the order of a sub-order and checks that the trader of this turn trades at its stall.
fn trader_sub(
    repo: &mut dyn MarketRepo,
    turn: &Turn<'_>,
    sub_id: i64,
) -> RepoResult<Result<(Order, SubOrder), Refusal>> {
    let Some(order_id) = repo.order_id_of_sub(sub_id)? else {
        return Ok(Err(Refusal::NotYours));
    };
    let Some(order) = repo.order(order_id)? else {
        return Ok(Err(Refusal::NotYours));
    };
    let Some(sub) = order.sub(sub_id).cloned() else {
        return Ok(Err(Refusal::NotYours));
    };
    if !repo.stalls_of(turn.user)?.contains(&sub.stall_id) {
        return Ok(Err(Refusal::NotYours));
    }
    if !order.status.is_open() {
        return Ok(Err(Refusal::OrderClosed));
    }
    Ok(Ok((order, sub)))
}

/// Moves a sub-order if the move is legal.
fn move_sub(
    repo: &mut dyn MarketRepo,
    turn: &Turn<'_>,
    role: Role,
    sub: &SubOrder,
    to: SubOrderStatus,
    reason: Option<&str>,
) -> RepoResult<Outcome> {
    if !sub.status.can_move_to(to) {
        return Ok(Err(match sub.status {
            SubOrderStatus::Cancelled => Refusal::OrderClosed,
            _ => Refusal::AlreadyAnswered,
        }));
    }
    repo.set_sub_status(sub.order_id, sub.id, sub.status, to, &turn.actor(role), reason)?;
    if to != SubOrderStatus::AwaitingTrader {
        repo.set_sub_deadline(sub.id, None, sub.escalation)?;
    }
    Ok(Ok(()))
}

/// Puts a dropped sub-order's reserved stock back.
pub(super) fn release(repo: &mut dyn MarketRepo, sub: &SubOrder) -> RepoResult<()> {
    for l in &sub.lines {
        if !l.out_of_stock {
            repo.release_stock(l.offer_id, l.quantity.base())?;
        }
    }
    Ok(())
}

/// Re-derives the order's status from its sub-orders (and, for an order paid in advance, its
/// payment) and tells the shopper when it matters; then keeps the money in step (a request for
/// the new amount, or a refund owed).
pub fn refresh_order(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, order_id: i64, actor: &str) -> RepoResult<()> {
    let Some(order) = repo.order(order_id)? else {
        return Ok(());
    };
    if !order.status.in_trader_phase() {
        return super::payment::reconcile(repo, turn, &order, actor);
    }
    let views: Vec<_> = order.subs.iter().map(SubOrder::view).collect();
    let derived = derive_order_status(&views);
    let paid = paid_in_advance(order.payment) && super::payment::is_paid(repo, order.id)?;
    let next = settle_status(derived, order.payment, paid);
    if next == order.status || !order.status.can_move_to(next) {
        return super::payment::reconcile(repo, turn, &order, actor);
    }
    repo.set_order_status(order.id, order.status, next, actor, None)?;
    let order = Order { status: next, ..order };
    let total = order.total();
    match next {
        OrderStatus::Confirmed => tell_buyer(
            repo,
            turn,
            &order,
            Key::BuyerOrderConfirmed,
            &[("number", &order.number), ("total", &total)],
            &[],
        )?,
        OrderStatus::AwaitingPayment => {
            super::payment::ask(repo, turn, &order, Key::BuyerOrderConfirmed)?;
            return Ok(());
        }
        OrderStatus::ReadyForPickup => {
            tell_buyer(repo, turn, &order, Key::BuyerOrderReady, &[("number", &order.number)], &[])?;
            // A slot hours away (tomorrow's, say) is offered by the timer when it is near.
            if super::delivery::slot_within(turn, &order, super::delivery::offer_ahead()) {
                super::delivery::order_ready(repo, turn, order.id, actor)?;
            }
        }
        OrderStatus::Rejected => {
            tell_buyer(repo, turn, &order, Key::BuyerOrderRejected, &[("number", &order.number)], &[])?
        }
        OrderStatus::Cancelled => {
            tell_buyer(repo, turn, &order, Key::BuyerOrderCancelledAll, &[("number", &order.number)], &[])?
        }
        _ => {}
    }
    super::payment::reconcile(repo, turn, &order, actor)
}

/// Terima: the trader confirms their part. With changes after weighing, the shopper is asked
/// first; otherwise the trader now sees who and where the buyer is.
pub fn accept(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, sub_id: i64) -> RepoResult<Outcome> {
    let (order, sub) = match trader_sub(repo, turn, sub_id)? {
        Ok(x) => x,
        Err(r) => return Ok(Err(r)),
    };
    // Only a part still waiting for its trader: an adjusted part becomes accepted when the
    // shopper agrees, never by the trader pressing an old Terima button.
    if sub.status != SubOrderStatus::AwaitingTrader {
        return Ok(Err(if sub.status.is_dropped() { Refusal::OrderClosed } else { Refusal::AlreadyAnswered }));
    }
    if sub.lines.iter().any(|l| l.changed()) {
        return submit_changes(repo, turn, sub_id);
    }
    if let Err(r) = move_sub(repo, turn, Role::Trader, &sub, SubOrderStatus::Accepted, None)? {
        return Ok(Err(r));
    }
    let lang = turn.lang;
    let msg = buyer_details_message(turn, lang, &order, &sub, Key::TraderAccepted);
    turn.reply(msg);
    let (stall, _) = stall_label(turn, sub.stall_id);
    tell_buyer(repo, turn, &order, Key::BuyerStallAccepted, &[("number", &order.number), ("stall", &stall)], &[])?;
    refresh_order(repo, turn, order.id, &turn.actor(Role::Trader))?;
    Ok(Ok(()))
}

/// After a trader has accepted (and the shopper agreed to any change): the buyer's name, phone,
/// full address and note, with the "Siap diambil" button.
fn buyer_details_message(turn: &Turn<'_>, lang: Lang, order: &Order, sub: &SubOrder, key: Key) -> Outbound {
    let note = order.note.as_deref().map(|n| turn.tf_in(lang, Key::TraderNote, &[("note", &n)])).unwrap_or_default();
    let text = turn.tf_in(
        lang,
        key,
        &[
            ("number", &order.number),
            ("name", &order.buyer_name),
            ("phone", &order.phone),
            ("address", &order.address),
            ("slot", &slot_text(turn, lang, order)),
            ("lines", &lines_text(turn, lang, sub)),
            ("total", &sub.total()),
            ("note", &note),
        ],
    );
    Outbound::with_buttons(
        text.trim_end(),
        vec![
            turn.button_in(lang, Key::BtnPacked, Action::TraderPack(sub.id).encode()),
            turn.button_in(lang, Key::BtnRanOut, Action::TraderShortage(sub.id).encode()),
        ],
    )
}

/// Tolak: the trader declines their part, with a reason. The stock goes back and the shopper is
/// asked whether to go on with the other stalls.
pub fn reject(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    sub_id: i64,
    reason: RejectReason,
) -> RepoResult<Outcome> {
    let (order, sub) = match trader_sub(repo, turn, sub_id)? {
        Ok(x) => x,
        Err(r) => return Ok(Err(r)),
    };
    if sub.status != SubOrderStatus::AwaitingTrader {
        return Ok(Err(if sub.status.is_dropped() { Refusal::OrderClosed } else { Refusal::AlreadyAnswered }));
    }
    if let Err(r) = move_sub(repo, turn, Role::Trader, &sub, SubOrderStatus::Rejected, Some(&reason.stored()))? {
        return Ok(Err(r));
    }
    release(repo, &sub)?;
    let text = turn.tf(Key::TraderRejected, &[("number", &order.number)]);
    turn.reply(Outbound::text(text));
    let buyer_lang = lang_of(repo, turn, &order.buyer)?;
    let reason_text = reason_text(turn, buyer_lang, &reason);
    let actor = turn.actor(Role::Trader);
    stall_dropped(repo, turn, &order, &sub, Key::BuyerStallRejected, &reason_text, &actor, &[])?;
    Ok(Ok(()))
}

fn reason_text(turn: &Turn<'_>, lang: Lang, reason: &RejectReason) -> String {
    match reason {
        RejectReason::Habis => turn.texts.get(&turn.market.slug, lang, Key::ReasonHabis).to_string(),
        RejectReason::Tutup => turn.texts.get(&turn.market.slug, lang, Key::ReasonTutup).to_string(),
        RejectReason::Other(s) => s.clone(),
    }
}

/// A stall's part left the order: tell the shopper, and if other stalls remain, ask whether to
/// go on without it. `dropping_too` are other parts of the order leaving in the same moment (two
/// stalls timing out in one timer pass): the shopper is asked once, after the last of them,
/// about all of them, never "go on without A?" when B is about to go as well.
#[allow(clippy::too_many_arguments)]
fn stall_dropped(
    repo: &mut dyn MarketRepo,
    turn: &mut Turn<'_>,
    order: &Order,
    sub: &SubOrder,
    key: Key,
    reason: &str,
    actor: &str,
    dropping_too: &[i64],
) -> RepoResult<()> {
    let (stall, _) = stall_label(turn, sub.stall_id);
    let staying: Vec<&SubOrder> = order
        .subs
        .iter()
        .filter(|s| s.id != sub.id && !s.status.is_dropped() && !dropping_too.contains(&s.id))
        .collect();
    if !dropping_too.is_empty() {
        tell_buyer(repo, turn, order, key, &[("number", &order.number), ("stall", &stall), ("reason", &reason)], &[])?;
    } else if !staying.is_empty() {
        let rest: crate::domain::money::Rupiah = staying.iter().map(|s| s.total()).sum();
        // Every part that left and the shopper has not answered for, this one included.
        let gone: Vec<String> = order
            .subs
            .iter()
            .filter(|s| s.id == sub.id || (s.status.is_dropped() && !s.buyer_acknowledged))
            .map(|s| stall_label(turn, s.stall_id).0)
            .collect();
        tell_buyer(repo, turn, order, key, &[("number", &order.number), ("stall", &stall), ("reason", &reason)], &[])?;
        tell_buyer(
            repo,
            turn,
            order,
            Key::BuyerContinueWithout,
            &[("number", &order.number), ("stall", &gone.join(" & ")), ("total", &rest)],
            &[
                (Key::BtnContinueWithout, Action::AcknowledgeDrop(sub.id)),
                (Key::BtnCancelWholeOrder, Action::CancelOrder(order.number.clone())),
            ],
        )?;
    } else {
        repo.acknowledge_sub(sub.id)?;
        tell_buyer(repo, turn, order, key, &[("number", &order.number), ("stall", &stall), ("reason", &reason)], &[])?;
    }
    refresh_order(repo, turn, order.id, actor)
}

/// Selesai (after Ubah), or Terima with changed lines: the shopper must agree to the weighed
/// amounts and prices.
pub fn submit_changes(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, sub_id: i64) -> RepoResult<Outcome> {
    let (order, sub) = match trader_sub(repo, turn, sub_id)? {
        Ok(x) => x,
        Err(r) => return Ok(Err(r)),
    };
    if sub.lines.iter().all(|l| l.out_of_stock) {
        return reject(repo, turn, sub_id, RejectReason::Habis);
    }
    if !sub.lines.iter().any(|l| l.changed()) {
        return accept(repo, turn, sub_id);
    }
    // Pieces weighed close to their estimate ("ayam 1 ekor" at 1,3 kg for ± 1,2 kg): what the
    // shopper asked for, so the part is accepted and the shopper only told the final price.
    let tolerance = u64::from(turn.market.weigh_tolerance_percent);
    if sub.status == SubOrderStatus::AwaitingTrader
        && sub.lines.iter().filter(|l| l.changed()).all(|l| l.weighed_within(tolerance))
    {
        if let Err(r) = move_sub(repo, turn, Role::Trader, &sub, SubOrderStatus::Accepted, None)? {
            return Ok(Err(r));
        }
        let lang = turn.lang;
        let msg = buyer_details_message(turn, lang, &order, &sub, Key::TraderAccepted);
        turn.reply(msg);
        let buyer_lang = lang_of(repo, turn, &order.buyer)?;
        let (stall, _) = stall_label(turn, sub.stall_id);
        tell_buyer(
            repo,
            turn,
            &order,
            Key::BuyerWeighedFinal,
            &[
                ("number", &order.number),
                ("stall", &stall),
                ("lines", &lines_text(turn, buyer_lang, &sub)),
                ("subtotal", &sub.total()),
                ("total", &order.total()),
            ],
            &[],
        )?;
        refresh_order(repo, turn, order.id, &turn.actor(Role::Trader))?;
        return Ok(Ok(()));
    }
    if let Err(r) = move_sub(repo, turn, Role::Trader, &sub, SubOrderStatus::Adjusted, None)? {
        return Ok(Err(r));
    }
    let text = turn.tf(Key::TraderChangesSent, &[("number", &order.number)]);
    turn.reply(Outbound::text(text));
    let buyer_lang = lang_of(repo, turn, &order.buyer)?;
    let (stall, _) = stall_label(turn, sub.stall_id);
    let mut after = order.clone();
    if let Some(s) = after.subs.iter_mut().find(|s| s.id == sub.id) {
        s.status = SubOrderStatus::Adjusted;
    }
    tell_buyer(
        repo,
        turn,
        &order,
        Key::BuyerChangesProposed,
        &[
            ("number", &order.number),
            ("stall", &stall),
            ("lines", &lines_text(turn, buyer_lang, &sub)),
            ("subtotal", &sub.total()),
            ("total", &after.total()),
        ],
        &[(Key::BtnAgree, Action::AgreeChanges(sub.id)), (Key::BtnDropStall, Action::DropStall(sub.id))],
    )?;
    refresh_order(repo, turn, order.id, &turn.actor(Role::Trader))?;
    Ok(Ok(()))
}

/// Loads an order of the shopper of this turn by sub-order.
fn buyer_sub(
    repo: &mut dyn MarketRepo,
    turn: &Turn<'_>,
    sub_id: i64,
) -> RepoResult<Result<(Order, SubOrder), Refusal>> {
    let Some(order_id) = repo.order_id_of_sub(sub_id)? else {
        return Ok(Err(Refusal::NotYours));
    };
    let Some(order) = repo.order(order_id)? else {
        return Ok(Err(Refusal::NotYours));
    };
    if &order.buyer != turn.user {
        return Ok(Err(Refusal::NotYours));
    }
    let Some(sub) = order.sub(sub_id).cloned() else {
        return Ok(Err(Refusal::NotYours));
    };
    if !order.status.is_open() {
        return Ok(Err(Refusal::OrderClosed));
    }
    Ok(Ok((order, sub)))
}

/// The shopper agrees to a stall's changes: that part is accepted.
pub fn agree(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, sub_id: i64) -> RepoResult<Outcome> {
    let (order, sub) = match buyer_sub(repo, turn, sub_id)? {
        Ok(x) => x,
        Err(r) => return Ok(Err(r)),
    };
    if sub.status != SubOrderStatus::Adjusted {
        return Ok(Err(Refusal::AlreadyAnswered));
    }
    if let Err(r) = move_sub(repo, turn, Role::Buyer, &sub, SubOrderStatus::Accepted, None)? {
        return Ok(Err(r));
    }
    let (stall, _) = stall_label(turn, sub.stall_id);
    let text = turn.tf(Key::BuyerAgreed, &[("number", &order.number), ("stall", &stall)]);
    turn.reply(Outbound::text(text));
    let order_for_traders = order.clone();
    let sub_for_traders = sub.clone();
    tell_traders(repo, turn, sub.stall_id, &|t, lang| {
        buyer_details_message(t, lang, &order_for_traders, &sub_for_traders, Key::TraderBuyerAgreed)
    })?;
    refresh_order(repo, turn, order.id, &turn.actor(Role::Buyer))?;
    Ok(Ok(()))
}

/// The shopper does not want a stall's changed part: it is cancelled, the rest goes on.
pub fn drop_stall(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, sub_id: i64) -> RepoResult<Outcome> {
    let (order, sub) = match buyer_sub(repo, turn, sub_id)? {
        Ok(x) => x,
        Err(r) => return Ok(Err(r)),
    };
    if sub.status != SubOrderStatus::Adjusted {
        return Ok(Err(Refusal::AlreadyAnswered));
    }
    if let Err(r) = move_sub(repo, turn, Role::Buyer, &sub, SubOrderStatus::Cancelled, Some("buyer declined changes"))?
    {
        return Ok(Err(r));
    }
    repo.acknowledge_sub(sub.id)?;
    release(repo, &sub)?;
    let (stall, _) = stall_label(turn, sub.stall_id);
    let text = turn.tf(Key::BuyerDroppedStall, &[("number", &order.number), ("stall", &stall)]);
    turn.reply(Outbound::text(text));
    let number = order.number.clone();
    tell_traders(repo, turn, sub.stall_id, &|t, lang| {
        Outbound::text(t.tf_in(lang, Key::TraderBuyerDeclined, &[("number", &number)]))
    })?;
    refresh_order(repo, turn, order.id, &turn.actor(Role::Buyer))?;
    Ok(Ok(()))
}

/// The shopper goes on without a stall that rejected or did not answer.
pub fn acknowledge_drop(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, sub_id: i64) -> RepoResult<Outcome> {
    let (order, sub) = match buyer_sub(repo, turn, sub_id)? {
        Ok(x) => x,
        Err(r) => return Ok(Err(r)),
    };
    if !sub.status.is_dropped() || sub.buyer_acknowledged {
        return Ok(Err(Refusal::AlreadyAnswered));
    }
    // "Go on without them": every part that left and was not answered for yet.
    for s in order.subs.iter().filter(|s| s.status.is_dropped() && !s.buyer_acknowledged) {
        repo.acknowledge_sub(s.id)?;
    }
    let text = turn.tf(Key::BuyerContinues, &[("number", &order.number)]);
    turn.reply(Outbound::text(text));
    refresh_order(repo, turn, order.id, &turn.actor(Role::Buyer))?;
    Ok(Ok(()))
}

/// The shopper cancelled the whole order (already moved by the store): release the stock of
/// every part still in it and tell those stalls' traders.
pub fn after_buyer_cancel(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, before: &Order) -> RepoResult<()> {
    for sub in &before.subs {
        if sub.status.is_dropped() {
            continue;
        }
        release(repo, sub)?;
        let number = before.number.clone();
        tell_traders(repo, turn, sub.stall_id, &|t, lang| {
            Outbound::text(t.tf_in(lang, Key::TraderOrderCancelled, &[("number", &number)]))
        })?;
    }
    let actor = turn.actor(super::Role::Buyer);
    let cancelled = Order { status: OrderStatus::Cancelled, ..before.clone() };
    super::payment::reconcile(repo, turn, &cancelled, &actor)
}

/// A part of this trader's that was accepted and is not yet packed: the only kind from which a
/// line can still drop out ("ran out after all").
pub fn accepted_sub(
    repo: &mut dyn MarketRepo,
    turn: &Turn<'_>,
    sub_id: i64,
) -> RepoResult<Result<(Order, SubOrder), Refusal>> {
    let (order, sub) = match trader_sub(repo, turn, sub_id)? {
        Ok(x) => x,
        Err(r) => return Ok(Err(r)),
    };
    if sub.status != SubOrderStatus::Accepted {
        return Ok(Err(if sub.status.is_dropped() { Refusal::OrderClosed } else { Refusal::AlreadyAnswered }));
    }
    Ok(Ok((order, sub)))
}

/// A line of an accepted part ran out after all (found bad while packing, say). The shopper is
/// told the new total; a paid order owes the difference back, an unpaid one is asked for the new
/// amount, and cash at the door is simply less. The last line of a part takes the whole part out
/// (the shopper is asked whether to go on without the stall).
pub fn drop_line(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, line_id: i64) -> RepoResult<Outcome> {
    let Some(order_id) = repo.order_id_of_line(line_id)? else {
        return Ok(Err(Refusal::NotYours));
    };
    let Some(sub_id) = repo
        .order(order_id)?
        .and_then(|o| o.subs.iter().find(|s| s.lines.iter().any(|l| l.id == line_id)).map(|s| s.id))
    else {
        return Ok(Err(Refusal::NotYours));
    };
    let (order, sub) = match accepted_sub(repo, turn, sub_id)? {
        Ok(x) => x,
        Err(r) => return Ok(Err(r)),
    };
    let Some(mut line) = sub.lines.iter().find(|l| l.id == line_id).cloned() else {
        return Ok(Err(Refusal::NotYours));
    };
    if line.out_of_stock {
        return Ok(Err(Refusal::AlreadyAnswered));
    }
    let actor = turn.actor(Role::Trader);
    line.out_of_stock = true;
    line.total = crate::domain::money::Rupiah::ZERO;
    repo.update_line(sub.id, &line, &actor)?;
    // The stall has none left: stop offering it.
    repo.set_stock(sub.stall_id, &line.commodity_id, Some(0))?;
    turn.catalog_changed = true;
    let (stall, _) = stall_label(turn, sub.stall_id);
    if sub.lines.iter().all(|l| l.out_of_stock || l.id == line.id) {
        if let Err(r) = move_sub(repo, turn, Role::Trader, &sub, SubOrderStatus::Cancelled, Some("habis"))? {
            return Ok(Err(r));
        }
        let text = turn.tf(Key::TraderRejected, &[("number", &order.number)]);
        turn.reply(Outbound::text(text));
        let buyer_lang = lang_of(repo, turn, &order.buyer)?;
        let reason = reason_text(turn, buyer_lang, &RejectReason::Habis);
        stall_dropped(repo, turn, &order, &sub, Key::BuyerStallRejected, &reason, &actor, &[])?;
        return Ok(Ok(()));
    }
    let mut after = order.clone();
    if let Some(l) = after.subs.iter_mut().flat_map(|s| s.lines.iter_mut()).find(|l| l.id == line.id) {
        l.out_of_stock = true;
        l.total = crate::domain::money::Rupiah::ZERO;
    }
    let sub_total: crate::domain::money::Rupiah =
        after.sub(sub.id).map(SubOrder::total).unwrap_or(crate::domain::money::Rupiah::ZERO);
    let text = turn.tf(
        Key::TraderLineDropped,
        &[("number", &order.number), ("commodity", &line.commodity_name), ("total", &sub_total)],
    );
    turn.reply(Outbound::text(text));
    tell_buyer(
        repo,
        turn,
        &order,
        Key::BuyerLineDropped,
        &[("number", &order.number), ("commodity", &line.commodity_name), ("stall", &stall), ("total", &after.total())],
        &[],
    )?;
    refresh_order(repo, turn, order.id, &actor)?;
    Ok(Ok(()))
}

/// Siap diambil: the trader has packed their part.
pub fn pack(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, sub_id: i64) -> RepoResult<Outcome> {
    let (order, sub) = match trader_sub(repo, turn, sub_id)? {
        Ok(x) => x,
        Err(r) => return Ok(Err(r)),
    };
    if sub.status != SubOrderStatus::Accepted {
        return Ok(Err(Refusal::AlreadyAnswered));
    }
    if let Err(r) = move_sub(repo, turn, Role::Trader, &sub, SubOrderStatus::Packed, None)? {
        return Ok(Err(r));
    }
    let text = turn.tf(Key::TraderPacked, &[("number", &order.number)]);
    turn.reply(Outbound::text(text));
    refresh_order(repo, turn, order.id, &turn.actor(Role::Trader))?;
    Ok(Ok(()))
}

/// A trader's deadline passed: remind them; then tell the admins; then cancel that part.
/// `due` is every sub-order whose deadline this timer pass handles.
pub fn deadline_passed(repo: &mut dyn MarketRepo, turn: &mut Turn<'_>, sub_id: i64, due: &[i64]) -> RepoResult<()> {
    let Some(order_id) = repo.order_id_of_sub(sub_id)? else {
        return Ok(());
    };
    let Some(order) = repo.order(order_id)? else {
        return Ok(());
    };
    let Some(sub) = order.sub(sub_id).cloned() else {
        return Ok(());
    };
    if sub.status != SubOrderStatus::AwaitingTrader || !order.status.is_open() {
        repo.set_sub_deadline(sub.id, None, sub.escalation)?;
        return Ok(());
    }
    let step = turn.policy.trader_deadline(&turn.market.slug) / 2;
    let (stall, number) = stall_label(turn, sub.stall_id);
    match sub.escalation {
        0 => {
            repo.set_sub_deadline(sub.id, Some(turn.now + step), 1)?;
            let (o, s) = (order.clone(), sub.clone());
            tell_traders(repo, turn, sub.stall_id, &|t, lang| Outbound {
                notice: Some(NoticeKind::NewOrder),
                ..trader_order_message(t, lang, &o, &s, Key::TraderReminder)
            })?;
        }
        1 => {
            repo.set_sub_deadline(sub.id, Some(turn.now + step), 2)?;
            let minutes = (turn.now - order.placed_at).num_minutes();
            tell_admins(
                repo,
                turn,
                Key::AdminTraderSilent,
                &[("stall", &stall), ("stall_number", &number), ("number", &order.number), ("minutes", &minutes)],
            )?;
        }
        _ => {
            repo.set_sub_status(
                order.id,
                sub.id,
                sub.status,
                SubOrderStatus::Cancelled,
                SYSTEM_ACTOR,
                Some("no answer"),
            )?;
            repo.set_sub_deadline(sub.id, None, sub.escalation)?;
            release(repo, &sub)?;
            let num = order.number.clone();
            tell_traders(repo, turn, sub.stall_id, &|t, lang| {
                Outbound::text(t.tf_in(lang, Key::TraderTimedOut, &[("number", &num)]))
            })?;
            let buyer_lang = lang_of(repo, turn, &order.buyer)?;
            let reason = turn.texts.get(&turn.market.slug, buyer_lang, Key::ReasonNoAnswer).to_string();
            // Other parts of this order that this same pass is about to cancel.
            let dropping_too: Vec<i64> = order
                .subs
                .iter()
                .filter(|s| {
                    s.id != sub.id
                        && s.status == SubOrderStatus::AwaitingTrader
                        && s.escalation >= 2
                        && due.contains(&s.id)
                })
                .map(|s| s.id)
                .collect();
            stall_dropped(repo, turn, &order, &sub, Key::BuyerStallTimedOut, &reason, SYSTEM_ACTOR, &dropping_too)?;
        }
    }
    Ok(())
}
