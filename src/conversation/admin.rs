//! The market admin's conversation: inviting traders and couriers, the courier list, and
//! assigning a delivery by hand. Admins are named in the config or granted at run time; a
//! command from anyone else never reaches this module.

use super::delivery::AssignRefusal;
use super::{Repo, RepoResult, Turn};
use crate::channel::{Inbound, Outbound};
use crate::domain::catalog::normalize;
use crate::domain::delivery::{Courier, CourierProfile, ProfileError};
use crate::domain::invite::{invite_code, lifetime};
use crate::domain::order::OrderNumber;
use crate::domain::slot::local;
use crate::text::Key;

/// Answers one admin command. Admins have no multi-step dialogue yet, so there is no state.
pub fn step(input: &Inbound, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let Inbound::Command { name, args } = input else {
        turn.say(Key::NotUnderstood);
        return Ok(());
    };
    match name.as_str() {
        "undang" => invite(args, repo, turn),
        "undang_kurir" => invite_courier(args, repo, turn),
        "kurir" => list_couriers(repo, turn),
        "tugaskan" => assign(args, repo, turn),
        _ => {
            turn.say(Key::AdminHelp);
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
    repo.create_invite(&code, stall.id, turn.user, expires)?;
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
    repo.create_courier_invite(&code, &profile, turn.user, expires)?;
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
