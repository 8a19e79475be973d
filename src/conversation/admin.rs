//! The market admin's conversation: inviting traders and couriers, the courier list, assigning
//! a delivery by hand, and the money: confirming a transfer (`/lunas`), recording a refund
//! (`/refund`) and a day's payments (`/pembayaran`). Admins are named in the config or granted at run time; a
//! command from anyone else never reaches this module.

use super::delivery::AssignRefusal;
use super::payment::PayOutcome;
use super::{Repo, RepoResult, Turn};
use crate::channel::{Inbound, Outbound};
use crate::domain::catalog::normalize;
use crate::domain::catalog::{Category, Commodity};
use crate::domain::delivery::{Courier, CourierProfile, ProfileError};
use crate::domain::invite::{code_key, invite_code, lifetime};
use crate::domain::money::Rupiah;
use crate::domain::order::{OrderNumber, OrderStatus, PaymentMethod};
use crate::domain::payment::{
    Balance, LedgerEntry, LedgerKind, PaymentStatus, RefundRefusal, paid_in_advance, refund_entries,
};
use crate::domain::quantity::{PieceUnit, SaleUnit};
use crate::domain::slot::{DeliverySlot, SlotChoice, local};
use crate::text::Key;
use chrono::{Datelike, NaiveDate};

/// Answers one admin command. Admins have no multi-step dialogue yet, so there is no state.
pub fn step(input: &Inbound, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    // A photo captioned `/foto <komoditas>`: the commodity's picture (routed here only for admins).
    if let Inbound::Image { reference, caption } = input {
        let args = match caption.as_deref().map(Inbound::from_typed) {
            Some(Inbound::Command { args, .. }) => args,
            _ => String::new(),
        };
        repo.record_admin_action(&super::AdminAction {
            actor: turn.user.clone(),
            command: "foto".into(),
            object: Some(args.chars().take(40).collect()),
            detail: None,
            at: turn.now,
        })?;
        return set_photo(&args, Some(reference), repo, turn);
    }
    if let Inbound::Button(payload) = input {
        return match super::payload::Action::parse(payload) {
            Some(super::payload::Action::AdminOrders { filter, page }) => list_orders(filter, page, repo, turn),
            Some(super::payload::Action::AdminOrder(number)) => show_order(&number, repo, turn),
            Some(super::payload::Action::BroadcastSend(id)) => send_broadcast(id, repo, turn),
            Some(super::payload::Action::BroadcastCancel(id)) => cancel_broadcast(id, repo, turn),
            _ => {
                turn.say(Key::StaleButton);
                Ok(())
            }
        };
    }
    let Inbound::Command { name, args } = input else {
        turn.say(Key::NotUnderstood);
        return Ok(());
    };
    // Every admin command is audited, whatever came of it: who, when, what, on which object.
    if !matches!(name.as_str(), "bantuan" | "help" | "audit") {
        let mut words = args.split_whitespace();
        let object = words.next().map(|w| w.chars().take(40).collect::<String>());
        let detail = words.collect::<Vec<_>>().join(" ");
        repo.record_admin_action(&super::AdminAction {
            actor: turn.user.clone(),
            command: name.chars().take(40).collect(),
            object,
            detail: (!detail.is_empty()).then(|| detail.chars().take(200).collect()),
            at: turn.now,
        })?;
    }
    match name.as_str() {
        "undang" => invite(args, repo, turn),
        "undang_kurir" => invite_courier(args, repo, turn),
        "kurir" => list_couriers(repo, turn),
        "tugaskan" => assign(args, repo, turn),
        "lunas" => confirm_paid(args, repo, turn),
        "refund" => refund(args, repo, turn),
        "pembayaran" => payments_report(args, repo, turn),
        "batalkan" => cancel_order(args, repo, turn),
        "audit" => audit(args, repo, turn),
        "pasar_tutup" => close_market(args, repo, turn),
        "pedagang" => list_traders(repo, turn),
        "harga_acuan" => set_reference_price(args, repo, turn),
        "nonaktif" => set_active(args, false, repo, turn),
        "aktif" => set_active(args, true, repo, turn),
        "statistik" => super::report::statistics(args, repo, turn),
        "ekspor" => super::report::export(args, repo, turn),
        "siaran" => draft_broadcast(args, repo, turn),
        "pesanan" => {
            let a = args.trim();
            if a.is_empty() {
                list_orders(crate::domain::order::OrderFilter::Open, 0, repo, turn)
            } else if let Some(filter) = crate::domain::order::OrderFilter::parse(a) {
                list_orders(filter, 0, repo, turn)
            } else if let Some(number) = OrderNumber::parse(a) {
                show_order(&number, repo, turn)
            } else {
                turn.say(Key::AdminOrdersUsage);
                Ok(())
            }
        }
        "pasar_buka" => open_market(repo, turn),
        "jam" => hours(args, repo, turn),
        "kapasitas" => capacity(args, repo, turn),
        "komoditas_tambah" => add_commodity(args, repo, turn),
        "komoditas_ubah" => edit_commodity(args, repo, turn),
        "foto" => set_photo(args, None, repo, turn),
        "admin_tambah" => invite_admin(repo, turn),
        "admin_hapus" => remove_admin(args, repo, turn),
        "cadangan" => {
            // Made by the engine once this commits (no I/O inside a step).
            repo.request_backup(turn.user)?;
            turn.say(Key::BackupQueued);
            Ok(())
        }
        _ => {
            let mut text = turn.t(Key::AdminHelp);
            if turn.policy.is_city_admin(turn.user) {
                text.push('\n');
                text.push_str(&turn.t(Key::AdminHelpCity));
            }
            turn.reply(Outbound::text(text));
            Ok(())
        }
    }
}

/// `/undang A-07`: a one-time code for the trader of stall A-07, valid 48 hours.
fn invite(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let wanted = normalize(args).replace(' ', "");
    let stalls = turn.catalog.stalls_in(&turn.market.slug);
    let found = stalls.iter().find(|s| !wanted.is_empty() && normalize(&s.number).replace(' ', "") == wanted);
    let Some(stall) = found else {
        let numbers: Vec<&str> = stalls.iter().map(|s| s.number.as_str()).collect();
        let text = turn.tf(Key::InviteUnknownStall, &[("stall", &args.trim()), ("stalls", &numbers.join(", "))]);
        turn.reply(Outbound::text(text));
        return Ok(());
    };
    let code = invite_code(turn.secret, turn.event_key);
    let expires = turn.now + lifetime();
    repo.create_invite(&code_key(turn.secret, &code), turn.event_key, stall.id, turn.user, expires)?;
    let text = turn.tf(
        Key::InviteCreated,
        &[
            ("code", &code),
            ("stall", &stall.name),
            ("number", &stall.number),
            ("expires", &local(expires).format("%d/%m %H:%M")),
        ],
    );
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/undang_kurir Budi Santoso, 0812-1111-2222, Honda Beat, N 1234 AB`: a one-time code for a
/// courier, valid 48 hours. The name, phone, vehicle and plate are what shoppers will see.
fn invite_courier(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let profile = match CourierProfile::parse(args) {
        Ok(p) => p,
        Err(ProfileError::Phone(_)) => {
            turn.say(Key::CourierInvitePhone);
            return Ok(());
        }
        Err(ProfileError::Fields | ProfileError::TooLong) => {
            turn.say(Key::CourierInviteUsage);
            return Ok(());
        }
    };
    let code = invite_code(turn.secret, turn.event_key);
    let expires = turn.now + lifetime();
    repo.create_courier_invite(&code_key(turn.secret, &code), turn.event_key, &profile, turn.user, expires)?;
    let text = turn.tf(
        Key::CourierInviteCreated,
        &[
            ("code", &code),
            ("name", &profile.name),
            ("vehicle", &profile.vehicle),
            ("plate", &profile.plate),
            ("expires", &local(expires).format("%d/%m %H:%M")),
        ],
    );
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/kurir`: the market's couriers, their numbers (for `/tugaskan`), shifts and open jobs.
fn list_couriers(repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let couriers = repo.couriers()?;
    if couriers.is_empty() {
        turn.say(Key::CourierListNone);
        return Ok(());
    }
    let ratings = repo.courier_ratings()?;
    let mut text = turn.tf(Key::CourierListHeader, &[("market", &turn.market.name)]);
    for (c, open) in &couriers {
        let shift = turn.t(if c.on_shift { Key::CourierOnShift } else { Key::CourierOffShift });
        let rating = match ratings.iter().find(|(id, _, _)| *id == c.id) {
            Some((_, avg, count)) => {
                let avg = format!("{avg:.1}");
                let avg = if turn.lang == crate::text::Lang::Id { avg.replace('.', ",") } else { avg };
                turn.tf(Key::CourierRating, &[("avg", &avg), ("count", count)])
            }
            None => turn.t(Key::CourierNotRated),
        };
        text.push('\n');
        text.push_str(&turn.tf(
            Key::CourierListLine,
            &[
                ("id", &c.id),
                ("name", &c.profile.name),
                ("vehicle", &c.profile.vehicle),
                ("plate", &c.profile.plate),
                ("shift", &shift),
                ("jobs", open),
                ("rating", &rating),
            ],
        ));
    }
    turn.reply(Outbound::text(text));
    Ok(())
}

/// The courier an admin names: their number from `/kurir`, or a unique part of their name.
fn named_courier(repo: &mut dyn Repo, wanted: &str) -> RepoResult<Option<Courier>> {
    let couriers: Vec<Courier> = repo.couriers()?.into_iter().map(|(c, _)| c).collect();
    if let Ok(id) = wanted.trim().trim_start_matches('#').parse::<i64>() {
        return Ok(couriers.into_iter().find(|c| c.id == id));
    }
    let wanted = normalize(wanted);
    if wanted.is_empty() {
        return Ok(None);
    }
    let mut matching = couriers.into_iter().filter(|c| normalize(&c.profile.name).contains(&wanted));
    match (matching.next(), matching.next()) {
        (Some(c), None) => Ok(Some(c)),
        _ => Ok(None),
    }
}

/// `/tugaskan BLB-0001 2`: gives an order's delivery to a courier.
fn assign(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let (number, who) = args.trim().split_once(char::is_whitespace).unwrap_or((args.trim(), ""));
    let (Some(number), false) = (OrderNumber::parse(number), who.trim().is_empty()) else {
        turn.say(Key::AssignUsage);
        return Ok(());
    };
    let order = match repo.order_id_by_number(&number)? {
        Some(id) => repo.order(id)?,
        None => None,
    };
    let Some(order) = order else {
        let text = turn.tf(Key::AssignUnknownOrder, &[("number", &number)]);
        turn.reply(Outbound::text(text));
        return Ok(());
    };
    // `paksa` at the end takes a delivery over from the outside vendor.
    let (who, take_from_vendor) = match who.trim().rsplit_once(char::is_whitespace) {
        Some((rest, last)) if matches!(last.to_lowercase().as_str(), "paksa" | "force") => (rest, true),
        _ => (who, false),
    };
    let Some(courier) = named_courier(repo, who)? else {
        let text = turn.tf(Key::AssignUnknownCourier, &[("courier", &who.trim())]);
        turn.reply(Outbound::text(text));
        return Ok(());
    };
    let text = match super::delivery::assign(repo, turn, &order, &courier, take_from_vendor)? {
        Ok(()) if courier.on_shift => {
            turn.tf(Key::AssignDone, &[("number", &number), ("courier", &courier.profile.name)])
        }
        Ok(()) => turn.tf(Key::AssignDoneOffShift, &[("number", &number), ("courier", &courier.profile.name)]),
        Err(AssignRefusal::NotReady) => {
            let status = turn.t(super::buyer::status_key(order.status));
            turn.tf(Key::AssignNotReady, &[("number", &number), ("status", &status)])
        }
        Err(AssignRefusal::Busy(holder)) => turn.tf(Key::AssignBusy, &[("number", &number), ("courier", &holder)]),
        Err(AssignRefusal::Vendor(holder)) => {
            turn.tf(Key::AssignBusyVendor, &[("number", &number), ("courier", &holder), ("who", &courier.profile.name)])
        }
    };
    turn.reply(Outbound::text(text));
    Ok(())
}

/// The order an admin named, or the reply saying it is not in this market.
fn admin_order(
    number: &OrderNumber,
    repo: &mut dyn Repo,
    turn: &mut Turn<'_>,
) -> RepoResult<Option<crate::domain::order::Order>> {
    let order = match repo.order_id_by_number(number)? {
        Some(id) => repo.order(id)?,
        None => None,
    };
    if order.is_none() {
        let text = turn.tf(Key::AssignUnknownOrder, &[("number", number)]);
        turn.reply(Outbound::text(text));
    }
    Ok(order)
}

/// `/lunas BLB-0001 [amount]`: the admin saw the transfer (or QRIS payment) arrive. Without an
/// amount, the amount asked; an amount that differs is recorded and owed back, and the order
/// stays unpaid. Money for an order that ended unpaid (its time to pay ran out, or it was
/// cancelled) is recorded all the same, the way the bank's is, and owed back: money that came
/// is never left out of the books.
fn confirm_paid(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let mut words = args.split_whitespace();
    let number = words.next().and_then(OrderNumber::parse);
    let rest: Vec<&str> = words.collect();
    let amount = if rest.is_empty() { Ok(None) } else { Rupiah::parse(&rest.join(" ")).map(Some).ok_or(()) };
    let (Some(number), Ok(amount)) = (number, amount) else {
        turn.say(Key::PaidUsage);
        return Ok(());
    };
    let Some(order) = admin_order(&number, repo, turn)? else {
        return Ok(());
    };
    if !paid_in_advance(order.payment) {
        let text = turn.tf(Key::PaidAtDoor, &[("number", &number)]);
        turn.reply(Outbound::text(text));
        return Ok(());
    }
    let current = repo.current_payment(order.id)?;
    let pending = current.clone().filter(|p| p.status == PaymentStatus::Pending);
    let late = current.filter(|p| p.status != PaymentStatus::Paid && order.status == OrderStatus::Cancelled);
    let pending = match (order.status, pending, late) {
        (OrderStatus::AwaitingPayment, Some(pending), _) => pending,
        (_, _, Some(last)) => return confirm_late(&number, amount, &order, &last, repo, turn),
        _ => {
            let status = turn.t(super::buyer::status_key(order.status));
            let text = turn.tf(Key::PaidNotAwaiting, &[("number", &number), ("status", &status)]);
            turn.reply(Outbound::text(text));
            return Ok(());
        }
    };
    // A virtual account the bank made is confirmed by the bank's own notification: recording it
    // here too would count the same money twice when the notification comes.
    if order.payment == PaymentMethod::VirtualAccount && pending.reference.is_some() {
        let text = turn.tf(Key::PaidByBank, &[("number", &number)]);
        turn.reply(Outbound::text(text));
        return Ok(());
    }
    let amount = amount.unwrap_or(pending.amount);
    let actor = turn.actor(super::Role::Admin);
    let receipt = super::payment::Receipt { method: order.payment, amount, actor, reference: None, request: None };
    let text = match super::payment::take_payment(repo, turn, &order, receipt)? {
        PayOutcome::Paid => turn.tf(Key::PaidDone, &[("number", &number), ("amount", &amount)]),
        PayOutcome::WrongAmount { expected } => {
            turn.tf(Key::PaidWrongAmount, &[("number", &number), ("amount", &amount), ("expected", &expected)])
        }
        PayOutcome::Duplicate | PayOutcome::NotAwaiting(_) => {
            let status = turn.t(super::buyer::status_key(order.status));
            turn.tf(Key::PaidNotAwaiting, &[("number", &number), ("status", &status)])
        }
    };
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/lunas` for an order that ended unpaid: the money (the amount given, else the last amount
/// asked) is recorded and owed back to the shopper, and the admin is told how to settle it.
fn confirm_late(
    number: &OrderNumber,
    amount: Option<Rupiah>,
    order: &crate::domain::order::Order,
    last: &crate::domain::payment::Payment,
    repo: &mut dyn Repo,
    turn: &mut Turn<'_>,
) -> RepoResult<()> {
    // A virtual account's money is the bank's to report (its notification records it, owed
    // back the same way): recording it here too would count it twice.
    if order.payment == PaymentMethod::VirtualAccount && last.reference.is_some() {
        let text = turn.tf(Key::PaidByBank, &[("number", number)]);
        turn.reply(Outbound::text(text));
        return Ok(());
    }
    let amount = amount.unwrap_or(last.amount);
    let actor = turn.actor(super::Role::Admin);
    // Once per request and amount: the same /lunas typed twice is not twice the money.
    let reference = Some(format!("lunas-late:P{}:{}", last.id, amount.value()));
    let receipt = super::payment::Receipt { method: order.payment, amount, actor, reference, request: None };
    let outcome = super::payment::take_payment(repo, turn, order, receipt)?;
    let status = turn.t(super::buyer::status_key(order.status));
    let key = if outcome == PayOutcome::Duplicate { Key::PaidLateAlready } else { Key::PaidLateOwed };
    let text = turn.tf(key, &[("number", number), ("amount", &amount), ("status", &status)]);
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/refund BLB-0001 8000 bayam layu`: money was paid back to the shopper. It settles what the
/// order owes back; above that it is a refund the admin decided (recorded as owed, then paid).
fn refund(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let mut words = args.split_whitespace();
    let number = words.next().and_then(OrderNumber::parse);
    let amount = words.next().and_then(Rupiah::parse);
    let reason = words.collect::<Vec<_>>().join(" ");
    let (Some(number), Some(amount), false) = (number, amount, reason.is_empty()) else {
        turn.say(Key::RefundUsage);
        return Ok(());
    };
    if reason.chars().count() > 200 {
        turn.say(Key::RefundUsage);
        return Ok(());
    }
    let Some(order) = admin_order(&number, repo, turn)? else {
        return Ok(());
    };
    let balance = Balance::of(&repo.ledger(order.id)?);
    let entries = match refund_entries(&balance, amount) {
        Ok(e) => e,
        Err(RefundRefusal::NotPaid) => {
            let text = turn.tf(Key::RefundNotPaid, &[("number", &number)]);
            turn.reply(Outbound::text(text));
            return Ok(());
        }
        Err(RefundRefusal::TooMuch { max }) => {
            let text = turn.tf(Key::RefundTooMuch, &[("number", &number), ("max", &max)]);
            turn.reply(Outbound::text(text));
            return Ok(());
        }
    };
    let actor = turn.actor(super::Role::Admin);
    for (kind, value) in entries {
        repo.record_ledger(&LedgerEntry {
            note: Some(reason.clone()),
            ..LedgerEntry::new(order.id, kind, order.payment, value, turn.now, &actor)
        })?;
    }
    let left = Balance::of(&repo.ledger(order.id)?).outstanding();
    let text = turn.tf(Key::RefundDone, &[("number", &number), ("amount", &amount), ("left", &left)]);
    turn.reply(Outbound::text(text));
    super::lifecycle::tell_buyer(
        repo,
        turn,
        &order,
        Key::BuyerRefunded,
        &[("number", &number), ("amount", &amount), ("reason", &reason)],
        &[],
    )
}

/// Reads the day of `/pembayaran`: nothing (today), `kemarin`, `28/11`, `28/11/2026`, `2026-11-28`.
fn report_day(args: &str, today: NaiveDate) -> Option<NaiveDate> {
    let a = args.trim().to_lowercase();
    match a.as_str() {
        "" | "hari ini" | "today" => return Some(today),
        "kemarin" | "yesterday" => return today.pred_opt(),
        _ => {}
    }
    if let Ok(d) = NaiveDate::parse_from_str(&a, "%Y-%m-%d") {
        return Some(d);
    }
    if let Ok(d) = NaiveDate::parse_from_str(&a, "%d/%m/%Y") {
        return Some(d);
    }
    let (d, m) = a.split_once('/')?;
    NaiveDate::from_ymd_opt(today.year(), m.parse().ok()?, d.parse().ok()?)
}

/// `/pembayaran [tanggal]`: a day's money per method (to match against the bank's statement),
/// each entry, and every refund still owed.
fn payments_report(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let today = local(turn.now).date_naive();
    let Some(day) = report_day(args, today) else {
        turn.say(Key::PaymentsUsage);
        return Ok(());
    };
    let Some(from) = crate::domain::slot::malang_midnight(day) else {
        turn.say(Key::PaymentsUsage);
        return Ok(());
    };
    let entries = repo.ledger_between(from, from + chrono::Duration::days(1))?;
    let mut text = turn.tf(Key::PaymentsHeader, &[("market", &turn.market.name), ("date", &day.format("%d/%m/%Y"))]);
    let mut total_in = Rupiah::ZERO;
    for method in PaymentMethod::ALL {
        let of: Vec<Rupiah> = entries
            .iter()
            .filter(|(_, e)| e.kind == LedgerKind::Payment && e.method == method)
            .map(|(_, e)| e.amount)
            .collect();
        if of.is_empty() {
            continue;
        }
        let sum: Rupiah = of.iter().copied().sum();
        total_in += sum;
        let name = turn.t(super::buyer::payment_key(method));
        text.push('\n');
        text.push_str(&turn.tf(Key::PaymentsMethodLine, &[("method", &name), ("count", &of.len()), ("total", &sum)]));
    }
    let refunds: Vec<Rupiah> =
        entries.iter().filter(|(_, e)| e.kind == LedgerKind::Refund).map(|(_, e)| e.amount).collect();
    let refunded: Rupiah = refunds.iter().copied().sum();
    text.push('\n');
    text.push_str(
        &turn.tf(
            Key::PaymentsTotals,
            &[("total", &total_in), ("refund_count", &refunds.len()), ("refunded", &refunded)],
        ),
    );
    if entries.is_empty() {
        text.push('\n');
        text.push_str(&turn.t(Key::PaymentsNone));
    }
    for (number, e) in &entries {
        let what = match e.kind {
            // Cash is with the courier who collected it (the row's note) until it reaches the office.
            LedgerKind::Payment if e.method == PaymentMethod::CashOnDelivery && e.note.is_some() => {
                let method = turn.t(super::buyer::payment_key(e.method));
                let courier = e.note.clone().unwrap_or_default();
                turn.tf(Key::PaymentsKindCash, &[("method", &method), ("courier", &courier)])
            }
            LedgerKind::Payment => turn.t(super::buyer::payment_key(e.method)),
            LedgerKind::RefundOwed => turn.t(Key::PaymentsKindOwed),
            LedgerKind::Goodwill => turn.t(Key::PaymentsKindGoodwill),
            LedgerKind::Refund => turn.t(Key::PaymentsKindRefund),
        };
        text.push('\n');
        text.push_str(&turn.tf(
            Key::PaymentsEntry,
            &[("time", &local(e.at).format("%H:%M")), ("number", number), ("what", &what), ("amount", &e.amount)],
        ));
    }
    let owed = repo.refunds_outstanding()?;
    if !owed.is_empty() {
        text.push('\n');
        text.push_str(&turn.t(Key::PaymentsOwedHeader));
        for (number, amount) in &owed {
            text.push('\n');
            text.push_str(&turn.tf(Key::PaymentsOwedLine, &[("number", number), ("amount", amount)]));
        }
    }
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/batalkan BLB-0001 pembeli minta batal lewat telepon`: an admin cancels an order that is not
/// on the road yet. Every part still in it is cancelled and its stock released, a courier who
/// was offered or holds it is told, any payment request lapses and money already paid is owed
/// back; the shopper and the stalls' traders are told why.
fn cancel_order(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let (number, reason) = args.trim().split_once(char::is_whitespace).unwrap_or((args.trim(), ""));
    let reason = reason.trim();
    let (Some(number), false) = (OrderNumber::parse(number), reason.is_empty()) else {
        turn.say(Key::AdminCancelUsage);
        return Ok(());
    };
    if reason.chars().count() > 200 {
        turn.say(Key::AdminCancelUsage);
        return Ok(());
    }
    let Some(order) = admin_order(&number, repo, turn)? else {
        return Ok(());
    };
    if !order.status.is_open() || !order.status.can_move_to(OrderStatus::Cancelled) {
        let status = turn.t(super::buyer::status_key(order.status));
        let text = turn.tf(Key::AdminCancelRefused, &[("number", &number), ("status", &status)]);
        turn.reply(Outbound::text(text));
        return Ok(());
    }
    let actor = turn.actor(super::Role::Admin);
    repo.set_order_status(order.id, order.status, OrderStatus::Cancelled, &actor, Some(reason))?;
    for sub in order.subs.iter().filter(|s| !s.status.is_dropped()) {
        if sub.status.can_move_to(crate::domain::order::SubOrderStatus::Cancelled) {
            let cancelled = crate::domain::order::SubOrderStatus::Cancelled;
            repo.set_sub_status(order.id, sub.id, sub.status, cancelled, &actor, Some(reason))?;
            repo.set_sub_deadline(sub.id, None, sub.escalation)?;
        }
        super::lifecycle::release(repo, sub)?;
        super::lifecycle::tell_traders(repo, turn, sub.stall_id, &|t, lang| {
            Outbound::text(t.tf_in(
                lang,
                Key::TraderOrderCancelledByMarket,
                &[("number", &number), ("reason", &reason)],
            ))
        })?;
    }
    if let Some(mut d) = repo.latest_delivery(order.id)?
        && d.status.can_move_to(crate::domain::delivery::DeliveryStatus::Cancelled)
    {
        let courier = d.courier_id;
        d.status = crate::domain::delivery::DeliveryStatus::Cancelled;
        d.offer_deadline = None;
        repo.save_delivery(&d, &actor, Some(reason))?;
        if let Some(c) = courier.map(|id| repo.courier(id)).transpose()?.flatten() {
            repo.set_idle(c.id)?;
            let lang = super::lifecycle::lang_of(repo, turn, &c.user)?;
            let text = turn.tf_in(lang, Key::JobCancelledByMarket, &[("number", &number), ("reason", &reason)]);
            turn.send(&c.user, Outbound::text(text));
        }
    }
    super::lifecycle::tell_buyer(
        repo,
        turn,
        &order,
        Key::BuyerOrderCancelledByMarket,
        &[("number", &number), ("reason", &reason)],
        &[],
    )?;
    let cancelled = crate::domain::order::Order { status: OrderStatus::Cancelled, ..order };
    super::payment::reconcile(repo, turn, &cancelled, &actor)?;
    let text = turn.tf(Key::AdminCancelDone, &[("number", &number)]);
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/audit [n]`: the market's last admin actions (10, at most 50), newest first.
fn audit(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let n = match args.trim() {
        "" => 10,
        a => match a.parse::<usize>() {
            Ok(n) if (1..=50).contains(&n) => n,
            _ => {
                turn.say(Key::AuditUsage);
                return Ok(());
            }
        },
    };
    let actions = repo.admin_actions(n)?;
    if actions.is_empty() {
        turn.say(Key::AuditNone);
        return Ok(());
    }
    let mut text = turn.tf(Key::AuditHeader, &[("market", &turn.market.name), ("count", &actions.len())]);
    for a in &actions {
        let what = [Some(format!("/{}", a.command)), a.object.clone(), a.detail.clone()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        text.push('\n');
        text.push_str(
            &turn.tf(
                Key::AuditLine,
                &[("time", &local(a.at).format("%d/%m %H:%M")), ("who", &a.actor), ("what", &what)],
            ),
        );
    }
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/admin_tambah` (city admins): a one-time code, valid 48 hours, that makes whoever sends
/// `/daftar <code>` to this market's bot one of its admins.
fn invite_admin(repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let code = invite_code(turn.secret, turn.event_key);
    let expires = turn.now + lifetime();
    repo.create_admin_invite(&code_key(turn.secret, &code), turn.event_key, turn.user, expires)?;
    let text = turn.tf(
        Key::AdminInviteCreated,
        &[("code", &code), ("market", &turn.market.name), ("expires", &local(expires).format("%d/%m %H:%M"))],
    );
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/admin_hapus` (city admins) lists the market's admins added with `/admin_tambah`, numbered;
/// `/admin_hapus <number>` takes that one's role away. Admins named in the config stay.
fn remove_admin(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let admins = repo.staff_admins()?;
    let chosen = args.trim().parse::<usize>().ok().and_then(|n| n.checked_sub(1)).and_then(|i| admins.get(i));
    let Some(user) = chosen.cloned() else {
        if admins.is_empty() {
            turn.say(Key::AdminListNone);
            return Ok(());
        }
        let mut text = turn.tf(Key::AdminListHeader, &[("market", &turn.market.name)]);
        for (i, a) in admins.iter().enumerate() {
            text.push('\n');
            text.push_str(&format!("{}. {a}", i + 1));
        }
        turn.reply(Outbound::text(text));
        return Ok(());
    };
    repo.remove_admin(&user)?;
    let menu = Some(super::menu_for(repo, turn, &user)?);
    let lang = super::lifecycle::lang_of(repo, turn, &user)?;
    let notice = turn.tf_in(lang, Key::AdminRemovedNotice, &[("market", &turn.market.name)]);
    turn.send(&user, Outbound { menu, ..Outbound::text(notice) });
    let text = turn.tf(Key::AdminRemoved, &[("who", &user), ("market", &turn.market.name)]);
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/pasar_tutup banjir di Jl. Borobudur`: the market takes no orders until `/pasar_buka`;
/// shoppers see the reason. Orders already placed go on.
fn close_market(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let reason = args.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        turn.say(Key::MarketCloseUsage);
        return Ok(());
    }
    repo.set_market_closed(Some(reason))?;
    turn.catalog_changed = true;
    let text = turn.tf(Key::MarketClosedDone, &[("market", &turn.market.name), ("reason", &reason)]);
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/pasar_buka`: orders are taken again.
fn open_market(repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let key = if turn.market.closed.is_some() { Key::MarketOpenedDone } else { Key::MarketAlreadyOpen };
    repo.set_market_closed(None)?;
    turn.catalog_changed = true;
    let text = turn.tf(key, &[("market", &turn.market.name)]);
    turn.reply(Outbound::text(text));
    Ok(())
}

/// Orders a page of `/pesanan` shows.
const ORDERS_PER_PAGE: usize = 8;

/// `/pesanan [status]`: the market's orders, newest first, a page at a time, each with a button
/// that opens it; turning a page edits the message.
fn list_orders(
    filter: crate::domain::order::OrderFilter,
    page: usize,
    repo: &mut dyn Repo,
    turn: &mut Turn<'_>,
) -> RepoResult<()> {
    use super::payload::Action;
    let (rows, total) = repo.market_orders(filter.statuses(), page * ORDERS_PER_PAGE, ORDERS_PER_PAGE)?;
    let pages = total.div_ceil(ORDERS_PER_PAGE).max(1);
    let filter_name = turn.t(filter_key(filter));
    if rows.is_empty() && page == 0 {
        let text = turn.tf(Key::AdminOrdersNone, &[("market", &turn.market.name), ("filter", &filter_name)]);
        turn.reply(Outbound::text(text));
        return Ok(());
    }
    let mut text = turn.tf(
        Key::AdminOrdersHeader,
        &[
            ("market", &turn.market.name),
            ("filter", &filter_name),
            ("count", &total),
            ("page", &(page + 1)),
            ("pages", &pages),
        ],
    );
    let mut buttons = Vec::new();
    for r in &rows {
        let status = turn.t(super::buyer::status_key(r.status));
        text.push('\n');
        text.push_str(&turn.tf(
            Key::AdminOrdersLine,
            &[
                ("number", &r.number),
                ("time", &local(r.placed_at).format("%d/%m %H:%M")),
                ("name", &r.buyer_name),
                ("total", &r.total),
                ("status", &status),
            ],
        ));
        buttons.push(crate::channel::Button {
            label: format!("📄 {}", r.number),
            payload: Action::AdminOrder(r.number.clone()).encode(),
        });
    }
    if page > 0 {
        buttons.push(turn.button(Key::BtnPrev, Action::AdminOrders { filter, page: page - 1 }.encode()));
    }
    if page + 1 < pages {
        buttons.push(turn.button(Key::BtnNext, Action::AdminOrders { filter, page: page + 1 }.encode()));
    }
    let replaces = turn.pressed_on.map(str::to_string);
    turn.reply(Outbound { replaces, ..Outbound::with_buttons(text, buttons) });
    Ok(())
}

fn filter_key(filter: crate::domain::order::OrderFilter) -> Key {
    use crate::domain::order::OrderFilter::*;
    match filter {
        Open => Key::FilterOpen,
        New => Key::FilterNew,
        Payment => Key::FilterPayment,
        Ready => Key::FilterReady,
        OnTheRoad => Key::FilterOnTheRoad,
        Delivered => Key::FilterDelivered,
        Cancelled => Key::FilterCancelled,
    }
}

/// `/pesanan BLB-0001`: everything about one order: the shopper and where it goes, each stall's
/// lines and status, the payment, and the whole timeline with the courier.
fn show_order(number: &OrderNumber, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let Some(order) = admin_order(number, repo, turn)? else {
        return Ok(());
    };
    let lang = turn.lang;
    let method = turn.t(super::buyer::payment_key(order.payment));
    let mut text = turn.tf(
        Key::AdminOrderParty,
        &[
            ("name", &order.buyer_name),
            ("phone", &order.phone),
            ("address", &order.address),
            ("method", &method),
            ("total", &order.total()),
        ],
    );
    for sub in &order.subs {
        let (stall, stall_number) = super::lifecycle::stall_label(turn, sub.stall_id);
        let status = turn.t(sub_status_key(sub.status));
        text.push_str("\n\n");
        text.push_str(&turn.tf(
            Key::AdminOrderStall,
            &[("stall", &stall), ("stall_number", &stall_number), ("status", &status), ("total", &sub.total())],
        ));
        text.push('\n');
        text.push_str(&super::lifecycle::lines_text(turn, lang, sub));
    }
    let track = super::delivery::track_message(repo, turn, &order)?;
    let text = format!("{}\n\n{text}", track.text);
    turn.reply(Outbound::text(text));
    Ok(())
}

fn sub_status_key(status: crate::domain::order::SubOrderStatus) -> Key {
    use crate::domain::order::SubOrderStatus::*;
    match status {
        AwaitingTrader => Key::SubAwaitingTrader,
        Adjusted => Key::SubAdjusted,
        Accepted => Key::SubAccepted,
        Rejected => Key::SubRejected,
        Packed => Key::SubPacked,
        PickedUp => Key::SubPickedUp,
        Cancelled => Key::SubCancelled,
    }
}

/// `/pedagang`: the market's stalls with their registered trader chats, whether in service, and
/// how fast their traders answered new orders in the last 30 days.
fn list_traders(repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let times = repo.response_times(turn.now - chrono::Duration::days(30))?;
    let mut text = turn.tf(Key::TraderListHeader, &[("market", &turn.market.name)]);
    let stalls: Vec<crate::domain::catalog::Stall> =
        turn.catalog.stalls_in(&turn.market.slug).into_iter().cloned().collect();
    for stall in &stalls {
        let chats = repo.traders_of(stall.id)?.len();
        let answers = match times.iter().find(|(id, _, _)| *id == stall.id) {
            Some((_, n, avg)) => turn.tf(Key::TraderListAnswers, &[("count", n), ("minutes", &format!("{avg:.0}"))]),
            None => turn.t(Key::TraderListNoAnswers),
        };
        let state = turn.t(if stall.active { Key::TraderListActive } else { Key::TraderListInactive });
        text.push('\n');
        text.push_str(&turn.tf(
            Key::TraderListLine,
            &[
                ("number", &stall.number),
                ("name", &stall.name),
                ("chats", &chats),
                ("state", &state),
                ("answers", &answers),
            ],
        ));
    }
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/nonaktif A-07` (a stall: its offers are hidden) or `/nonaktif 2` (a courier, by number or
/// name: off shift and offered nothing), and `/aktif` to bring them back. Orders already placed
/// go on; the stall's traders or the courier are told.
fn set_active(args: &str, active: bool, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let wanted = normalize(args).replace(' ', "");
    if wanted.is_empty() {
        turn.say(Key::ActiveUsage);
        return Ok(());
    }
    let stall = turn
        .catalog
        .stalls_in(&turn.market.slug)
        .into_iter()
        .find(|s| normalize(&s.number).replace(' ', "") == wanted)
        .map(|s| (s.id, s.name.clone(), s.number.clone()));
    let who = if let Some((id, name, number)) = stall {
        repo.set_stall_active(id, active)?;
        turn.catalog_changed = true;
        let key = if active { Key::StallActivated } else { Key::StallDeactivated };
        let market = turn.market.name.clone();
        super::lifecycle::tell_traders(repo, turn, id, &|t, lang| {
            Outbound::text(t.tf_in(lang, key, &[("stall", &name), ("market", &market)]))
        })?;
        format!("{name} ({number})")
    } else if let Some(courier) = named_courier(repo, args)? {
        repo.set_courier_active(courier.id, active)?;
        let key = if active { Key::CourierActivated } else { Key::CourierDeactivated };
        let lang = super::lifecycle::lang_of(repo, turn, &courier.user)?;
        let text = turn.tf_in(lang, key, &[("market", &turn.market.name)]);
        turn.send(&courier.user, Outbound::text(text));
        courier.profile.name.clone()
    } else {
        let text = turn.tf(Key::ActiveUnknown, &[("what", &args.trim())]);
        turn.reply(Outbound::text(text));
        return Ok(());
    };
    let key = if active { Key::ActiveDone } else { Key::InactiveDone };
    let text = turn.tf(key, &[("who", &who)]);
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/harga_acuan bawang merah 36000` (city admins): the trade office's reference price of a
/// commodity, for every market. Traders' prices far from it are flagged to the admins; prices
/// four times off are refused.
fn set_reference_price(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let words: Vec<&str> = args.split_whitespace().collect();
    let split = (1..words.len()).rev().find_map(|k| Rupiah::parse(&words[k..].join(" ")).map(|p| (k, p)));
    let Some((k, price)) = split else {
        turn.say(Key::ReferenceUsage);
        return Ok(());
    };
    let query = words[..k].join(" ");
    let Some(commodity) = turn.catalog.find_any(&query).cloned() else {
        let text = turn.tf(Key::TraderUnknownCommodity, &[("query", &query)]);
        turn.reply(Outbound::text(text));
        return Ok(());
    };
    repo.set_reference_price(&commodity.id, price)?;
    turn.catalog_changed = true;
    let text = turn.tf(
        Key::ReferenceSet,
        &[
            ("commodity", &commodity.name),
            ("old", &commodity.reference_price),
            ("price", &price),
            ("unit", &commodity.unit.label()),
        ],
    );
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/jam`: the market's hours, delivery slots and capacity; `/jam 04:00-13:00` sets the opening
/// hours; `/jam antar 07:00-09:00, 09:00-11:00` the delivery slots (orders already placed keep
/// theirs).
fn hours(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let market = turn.market;
    let slots_text = |slots: &[DeliverySlot]| slots.iter().map(DeliverySlot::to_string).collect::<Vec<_>>().join(", ");
    let args = args.trim();
    if args.is_empty() {
        let text = turn.tf(
            Key::HoursShow,
            &[
                ("market", &market.name),
                ("hours", &market.hours()),
                ("slots", &slots_text(&market.slots)),
                ("capacity", &market.slot_capacity),
            ],
        );
        turn.reply(Outbound::text(text));
        return Ok(());
    }
    let (first, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
    if matches!(normalize(first).as_str(), "antar" | "slot" | "delivery" | "slots") {
        let Some(slots) = parse_slots(rest) else {
            turn.say(Key::HoursUsage);
            return Ok(());
        };
        repo.set_market_hours(market.opens, market.closes, &slots)?;
        turn.catalog_changed = true;
        let text = turn.tf(
            Key::SlotsSet,
            &[("market", &market.name), ("slots", &slots_text(&slots)), ("old", &slots_text(&market.slots))],
        );
        turn.reply(Outbound::text(text));
        return Ok(());
    }
    // Opening hours read like a slot: "04:00-13:00" (also "04.00 - 13.00").
    let Ok(open) = args.replace('.', ":").replace(' ', "").parse::<DeliverySlot>() else {
        turn.say(Key::HoursUsage);
        return Ok(());
    };
    repo.set_market_hours(open.start, open.end, &market.slots)?;
    turn.catalog_changed = true;
    let text = turn.tf(Key::HoursSet, &[("market", &market.name), ("hours", &open), ("old", &market.hours())]);
    turn.reply(Outbound::text(text));
    Ok(())
}

/// The most delivery slots a day may have.
const MAX_SLOTS: usize = 8;

/// "07:00-09:00, 09:00-11:00": one to eight slots, in order of time, none overlapping another.
fn parse_slots(text: &str) -> Option<Vec<DeliverySlot>> {
    // "07:00 - 09:00" is one slot.
    let text = text.split('-').map(str::trim).collect::<Vec<_>>().join("-");
    let mut slots = text
        .split([',', ';', '\n'])
        .flat_map(str::split_whitespace)
        .filter(|s| !s.is_empty())
        .map(|s| s.replace('.', ":").parse::<DeliverySlot>().ok())
        .collect::<Option<Vec<_>>>()?;
    slots.sort();
    let overlapping = slots.windows(2).any(|w| w[1].start < w[0].end);
    (!slots.is_empty() && slots.len() <= MAX_SLOTS && !overlapping).then_some(slots)
}

/// The most orders one delivery slot may be set to take.
const MAX_CAPACITY: u32 = 500;

/// `/kapasitas`: orders per delivery slot, and how full today's and tomorrow's slots are;
/// `/kapasitas 40` sets it (a full slot is not offered at checkout).
fn capacity(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let market = turn.market;
    let args = args.trim();
    if args.is_empty() {
        let today = local(turn.now).date_naive();
        let choices: Vec<SlotChoice> = [Some(today), today.succ_opt()]
            .into_iter()
            .flatten()
            .flat_map(|date| market.slots.iter().map(move |slot| SlotChoice { date, slot: *slot }))
            .collect();
        let booked = repo.slot_orders(&choices)?;
        let lines: Vec<String> = choices
            .iter()
            .zip(&booked)
            .map(|(c, n)| {
                let key = if *n >= market.slot_capacity { Key::CapacityLineFull } else { Key::CapacityLine };
                turn.tf(
                    key,
                    &[
                        ("day", &c.date.format("%d/%m")),
                        ("slot", &c.slot),
                        ("booked", n),
                        ("capacity", &market.slot_capacity),
                    ],
                )
            })
            .collect();
        let text = turn.tf(
            Key::CapacityShow,
            &[("market", &market.name), ("capacity", &market.slot_capacity), ("lines", &lines.join("\n"))],
        );
        turn.reply(Outbound::text(text));
        return Ok(());
    }
    let Some(capacity) = args.parse::<u32>().ok().filter(|c| (1..=MAX_CAPACITY).contains(c)) else {
        turn.say(Key::CapacityUsage);
        return Ok(());
    };
    repo.set_slot_capacity(capacity)?;
    turn.catalog_changed = true;
    let text =
        turn.tf(Key::CapacitySet, &[("market", &market.name), ("capacity", &capacity), ("old", &market.slot_capacity)]);
    turn.reply(Outbound::text(text));
    Ok(())
}

/// Characters of a commodity's name.
const MAX_COMMODITY_NAME: usize = 40;

/// The shelf an admin names: its id (`daging-ayam`) or its label without the emoji.
fn parse_category(text: &str, turn: &Turn<'_>) -> Option<Category> {
    let wanted = normalize(text);
    Category::ALL
        .into_iter()
        .find(|c| normalize(c.slug()) == wanted || normalize(&turn.t(super::buyer::category_key(*c))) == wanted)
}

/// The sale unit an admin names: kg (kilo), liter, or a piece unit (ikat, biji...).
fn parse_unit(text: &str) -> Option<SaleUnit> {
    match normalize(text).as_str() {
        "kilo" | "kilogram" | "kg" => Some(SaleUnit::Kilogram),
        "l" | "liter" | "litre" => Some(SaleUnit::Liter),
        other => other.parse().ok(),
    }
}

/// A list of names separated by commas; `-` alone means none. `None` when one cannot be a
/// name (see [`fit_name`]).
fn name_list(parts: &[&str]) -> Option<Vec<String>> {
    parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty() && *p != "-").map(fit_name).collect()
}

/// A name as the catalogue can keep it: at most 40 characters, with a letter in it, no `|`
/// (it separates names in the store) or control characters, and not an amount or unit word
/// (`kilo`, `2`), which the typed-order reader would take for an amount.
fn fit_name(name: &str) -> Option<String> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_COMMODITY_NAME
        && name.chars().any(char::is_alphabetic)
        && !name.chars().any(|c| c == '|' || c.is_control())
        && !name.split_whitespace().all(|w| {
            let w = w.to_lowercase();
            crate::domain::quantity::is_unit_word(&w) || crate::domain::quantity::parse_number(&w).is_some()
        });
    ok.then(|| name.to_string())
}

/// A commodity's id from its name: ASCII letters and digits with dashes, at most 32 bytes (it
/// travels in button payloads).
fn commodity_id(name: &str) -> String {
    let mut id = String::new();
    for c in normalize(name).chars() {
        match c {
            'a'..='z' | '0'..='9' => id.push(c),
            ' ' if !id.ends_with('-') => id.push('-'),
            _ => {}
        }
    }
    id.truncate(32);
    id.trim_matches('-').to_string()
}

/// Shows the usage of adding a commodity, with the categories and units to choose from.
fn say_commodity_usage(turn: &mut Turn<'_>) {
    let categories: Vec<&str> = Category::ALL.iter().map(|c| c.slug()).collect();
    let units: Vec<&str> = ["kg", "liter"].into_iter().chain(PieceUnit::ALL.iter().map(|p| p.name())).collect();
    let text = turn.tf(Key::CommodityAddUsage, &[("categories", &categories.join(", ")), ("units", &units.join(", "))]);
    turn.reply(Outbound::text(text));
}

/// `/komoditas_tambah Kencur, bumbu, kg, 30000, cikur`: a new commodity in the city's catalogue
/// (name, shelf, sale unit, the office's reference price, other names); every market's traders
/// may then price it with `/harga`. A name that already means a commodity is refused.
fn add_commodity(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let parts: Vec<&str> = args.split([',', ';']).map(str::trim).collect();
    if parts.len() < 4 {
        say_commodity_usage(turn);
        return Ok(());
    }
    let (Some(name), Some(category), Some(unit), Some(price), Some(aliases)) = (
        fit_name(parts[0]),
        parse_category(parts[1], turn),
        parse_unit(parts[2]),
        Rupiah::parse(parts[3]),
        name_list(&parts[4..]),
    ) else {
        say_commodity_usage(turn);
        return Ok(());
    };
    let name = name.as_str();
    let id = commodity_id(name);
    if id.is_empty() || price.value() <= 0 {
        say_commodity_usage(turn);
        return Ok(());
    }
    let catalog = turn.catalog;
    let taken = std::iter::once(name)
        .chain(aliases.iter().map(String::as_str))
        .find_map(|n| catalog.named(n).map(|c| (n.to_string(), c.name.clone())))
        .or_else(|| catalog.commodity(&id).map(|c| (name.to_string(), c.name.clone())));
    if let Some((wanted, existing)) = taken {
        let text = turn.tf(Key::CommodityExists, &[("name", &wanted), ("existing", &existing)]);
        turn.reply(Outbound::text(text));
        return Ok(());
    }
    let commodity = Commodity {
        id,
        category,
        name: name.to_string(),
        name_en: name.to_string(),
        unit,
        aliases,
        javanese: Vec::new(),
        reference_price: price,
        step: crate::domain::catalog::default_step(unit),
        piece: None,
    };
    repo.add_commodity(&commodity)?;
    turn.catalog_changed = true;
    let category_name = turn.t(super::buyer::category_key(category));
    let text = turn.tf(
        Key::CommodityAdded,
        &[("name", &commodity.name), ("category", &category_name), ("unit", &unit.label()), ("price", &price)],
    );
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/komoditas_ubah kencur, alias, cikur, kencor`: a commodity's name, English name, shelf, other
/// names or Javanese market words. Its unit stays: prices and orders are counted in it.
fn edit_commodity(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let parts: Vec<&str> = args.split([',', ';']).map(str::trim).collect();
    if parts.len() < 3 || parts[2].is_empty() {
        turn.say(Key::CommodityEditUsage);
        return Ok(());
    }
    let catalog = turn.catalog;
    // Exactly a name the commodity has: a change for every market never lands on a guess.
    let Some(found) = catalog.named(parts[0]) else {
        let text = turn.tf(Key::CommodityExactName, &[("query", &parts[0])]);
        turn.reply(Outbound::text(text));
        return Ok(());
    };
    let mut commodity = found.clone();
    let value = parts[2..].join(", ");
    // A new name must not already mean another commodity.
    let clash = |n: &str| catalog.named(n).filter(|c| c.id != commodity.id).map(|c| (n.to_string(), c.name.clone()));
    let field = normalize(parts[1]);
    let names_field = matches!(
        field.as_str(),
        "nama" | "name" | "inggris" | "english" | "en" | "alias" | "nama lain" | "jawa" | "javanese"
    );
    let names = if names_field { name_list(&parts[2..]) } else { Some(Vec::new()) };
    let Some(names) = names else {
        turn.say(Key::CommodityEditUsage);
        return Ok(());
    };
    let taken = match field.as_str() {
        "nama" | "name" | "inggris" | "english" | "en" if names.len() != 1 => {
            turn.say(Key::CommodityEditUsage);
            return Ok(());
        }
        "nama" | "name" => {
            let taken = clash(&names[0]);
            commodity.name = names[0].clone();
            taken
        }
        "inggris" | "english" | "en" => {
            let taken = clash(&names[0]);
            commodity.name_en = names[0].clone();
            taken
        }
        "alias" | "nama lain" => {
            commodity.aliases = names;
            commodity.aliases.iter().find_map(|n| clash(n))
        }
        "jawa" | "javanese" => {
            commodity.javanese = names;
            commodity.javanese.iter().find_map(|n| clash(n))
        }
        "kategori" | "category" => match parse_category(parts[2], turn) {
            Some(c) => {
                commodity.category = c;
                None
            }
            None => {
                turn.say(Key::CommodityEditUsage);
                return Ok(());
            }
        },
        "satuan" | "unit" => {
            let text =
                turn.tf(Key::CommodityUnitFixed, &[("name", &commodity.name), ("unit", &commodity.unit.label())]);
            turn.reply(Outbound::text(text));
            return Ok(());
        }
        "harga" | "harga acuan" | "price" => {
            turn.say(Key::ReferenceUsage);
            return Ok(());
        }
        _ => {
            turn.say(Key::CommodityEditUsage);
            return Ok(());
        }
    };
    if let Some((wanted, existing)) = taken {
        let text = turn.tf(Key::CommodityExists, &[("name", &wanted), ("existing", &existing)]);
        turn.reply(Outbound::text(text));
        return Ok(());
    }
    if normalize(&commodity.name).is_empty() || normalize(&commodity.name_en).is_empty() {
        turn.say(Key::CommodityEditUsage);
        return Ok(());
    }
    repo.update_commodity(&commodity)?;
    turn.catalog_changed = true;
    let text = turn
        .tf(Key::CommodityEdited, &[("name", &commodity.name), ("field", &parts[1].to_lowercase()), ("value", &value)]);
    turn.reply(Outbound::text(text));
    Ok(())
}

/// `/foto <komoditas>` on a photo: its picture in this market's catalogue, on this channel;
/// `/foto <komoditas> hapus` removes it. Without a photo, says how to send one.
fn set_photo(args: &str, photo: Option<&str>, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let words: Vec<&str> = args.split_whitespace().collect();
    let removing = photo.is_none() && words.last().is_some_and(|w| matches!(normalize(w).as_str(), "hapus" | "remove"));
    let query = if removing { words[..words.len() - 1].join(" ") } else { words.join(" ") };
    if query.is_empty() || (photo.is_none() && !removing) {
        turn.say(Key::PhotoUsage);
        return Ok(());
    }
    let Some(commodity) = turn.catalog.find_any(&query).cloned() else {
        let text = turn.tf(Key::TraderUnknownCommodity, &[("query", &query)]);
        turn.reply(Outbound::text(text));
        return Ok(());
    };
    repo.set_commodity_photo(&commodity.id, photo, turn.user)?;
    turn.catalog_changed = true;
    let key = if photo.is_some() { Key::PhotoSet } else { Key::PhotoRemoved };
    let text = turn.tf(key, &[("commodity", &commodity.display_name(turn.lang)), ("market", &turn.market.name)]);
    turn.reply(Outbound::text(text));
    Ok(())
}

/// A broadcast as one shopper gets it: the market's name, the admin's words, and how to stop.
fn broadcast_message(turn: &Turn<'_>, lang: crate::text::Lang, text: &str) -> String {
    turn.tf_in(lang, Key::BroadcastMessage, &[("market", &turn.market.name), ("text", &text)])
}

fn broadcast_counts_text(turn: &Turn<'_>, key: Key, total: usize) -> String {
    turn.tf(key, &[("sent", &0), ("total", &total), ("failed", &0), ("unreachable", &0)])
}

/// `/siaran Besok pasar tutup jam 12 untuk kerja bakti`: a draft, shown to the admin exactly as
/// shoppers will get it and with how many will get it, to send with a button (or cancel). Only
/// shoppers who opted in (`/langganan`) get it.
fn draft_broadcast(args: &str, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let Some(text) = crate::domain::broadcast::BroadcastText::parse(args) else {
        let text = turn.tf(Key::BroadcastUsage, &[("max", &crate::domain::broadcast::MAX_BROADCAST_CHARS)]);
        turn.reply(Outbound::text(text));
        return Ok(());
    };
    let count = repo.subscriber_count()?;
    if count == 0 {
        let text = turn.tf(Key::BroadcastNoSubscribers, &[("market", &turn.market.name)]);
        turn.reply(Outbound::text(text));
        return Ok(());
    }
    let id = repo.create_broadcast(turn.user, &text)?;
    let message = broadcast_message(turn, turn.lang, text.as_str());
    let preview = turn.tf(Key::BroadcastPreview, &[("message", &message), ("count", &count)]);
    let buttons = vec![
        turn.button(Key::BtnBroadcastSend, super::payload::Action::BroadcastSend(id).encode()),
        turn.button(Key::BtnBroadcastCancel, super::payload::Action::BroadcastCancel(id).encode()),
    ];
    turn.reply(Outbound::with_buttons(preview, buttons));
    Ok(())
}

/// The admin's own draft of this market, still a draft: anything else is a stale or forged
/// press.
fn own_draft(id: i64, repo: &mut dyn Repo, turn: &Turn<'_>) -> RepoResult<Option<crate::domain::broadcast::Broadcast>> {
    Ok(repo
        .broadcast(id)?
        .filter(|b| b.status == crate::domain::broadcast::BroadcastStatus::Draft && &b.by == turn.user))
}

/// "✅ Kirim" under a draft: one message per subscriber goes into the outbox (sent after
/// ordinary messages, within the platform's limits), and the preview becomes the progress
/// message the engine's timer keeps up to date. A second press finds no draft and sends nothing.
fn send_broadcast(id: i64, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let Some(draft) = own_draft(id, repo, turn)? else {
        turn.say(Key::StaleButton);
        return Ok(());
    };
    let subscribers = repo.subscribers()?;
    let mut rendered: Vec<(crate::text::Lang, String)> = Vec::new();
    let mut messages = Vec::with_capacity(subscribers.len());
    for (user, lang) in &subscribers {
        let lang = lang.unwrap_or(turn.default_lang);
        let text = match rendered.iter().find(|(l, _)| *l == lang) {
            Some((_, t)) => t.clone(),
            None => {
                let t = broadcast_message(turn, lang, &draft.text);
                rendered.push((lang, t.clone()));
                t
            }
        };
        messages.push(crate::channel::Envelope {
            market: turn.market.slug.clone(),
            to: user.clone(),
            message: Outbound::text(text),
        });
    }
    let text = broadcast_counts_text(turn, Key::BroadcastProgress, messages.len());
    let progress = crate::channel::Envelope {
        market: turn.market.slug.clone(),
        to: turn.user.clone(),
        message: Outbound { replaces: turn.pressed_on.map(str::to_string), ..Outbound::text(text) },
    };
    if !repo.start_broadcast(id, &messages, &progress)? {
        turn.say(Key::StaleButton);
        return Ok(());
    }
    repo.record_admin_action(&super::AdminAction {
        actor: turn.user.clone(),
        command: "siaran_kirim".into(),
        object: Some(format!("#{id}")),
        detail: Some(turn.tf(Key::AuditBroadcastRecipients, &[("count", &messages.len())])),
        at: turn.now,
    })?;
    Ok(())
}

/// "❌ Batal" under a draft: nothing is sent.
fn cancel_broadcast(id: i64, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    if own_draft(id, repo, turn)?.is_none() || !repo.cancel_broadcast(id)? {
        turn.say(Key::StaleButton);
        return Ok(());
    }
    repo.record_admin_action(&super::AdminAction {
        actor: turn.user.clone(),
        command: "siaran_batal".into(),
        object: Some(format!("#{id}")),
        detail: None,
        at: turn.now,
    })?;
    let text = turn.t(Key::BroadcastCancelled);
    turn.reply(Outbound { replaces: turn.pressed_on.map(str::to_string), ..Outbound::text(text) });
    Ok(())
}
