//! The courier's conversation: shifts (`/mulai`, `/selesai`), their jobs (`/tugas`), the step
//! buttons of a delivery, the cash and the photo at the door, and the position they share.
//!
//! [`CourierState`] is what the bot waits for from a courier in the middle of something (the
//! cash collected, then the photo, after "Terkirim"). The steps themselves live in
//! [`super::delivery`], which checks every press against the stored delivery.

use super::delivery::{self, AtTheDoor, DoorStep, StepFail};
use super::payload::Action;
use super::{Repo, RepoResult, Turn};
use crate::channel::{Inbound, Outbound};
use crate::domain::delivery::{Courier, DeliveryStatus};
use crate::domain::money::Rupiah;
use crate::text::Key;
use serde::{Deserialize, Serialize};

/// What the bot is waiting for from a courier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CourierState {
    #[default]
    Idle,
    /// The cash collected at the door of an order paid there, after "Terkirim": a button for the
    /// exact bill, or a typed amount (confirmed by a button when it is not the bill).
    ReceiveCash { delivery: i64 },
    /// The photo at the door, after "Terkirim" (and the cash, which is recorded with the photo).
    ReceiveProof {
        delivery: i64,
        /// The cash the courier confirmed, for an order paid at the door. (States saved before
        /// cash was asked have none: the cash is asked when the photo comes.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cash: Option<Rupiah>,
    },
}

impl CourierState {
    /// Waiting for the cash or the photo: typed text is answered here (the amount, or a
    /// reminder) rather than taken as shopping.
    pub fn is_busy(&self) -> bool {
        matches!(self, CourierState::ReceiveCash { .. } | CourierState::ReceiveProof { .. })
    }

    /// The state after a step at the door of `delivery`.
    fn at_the_door(delivery: i64, next: AtTheDoor) -> CourierState {
        match next {
            AtTheDoor::Cash => CourierState::ReceiveCash { delivery },
            AtTheDoor::Proof { cash } => CourierState::ReceiveProof { delivery, cash },
            AtTheDoor::Delivered => CourierState::Idle,
        }
    }
}

/// Commands only couriers have.
pub const COURIER_COMMANDS: &[&str] = &["mulai", "selesai", "tugas"];

/// The welcome of a newly registered courier (after `/daftar` with a courier code).
pub fn registered(repo: &mut dyn Repo, turn: &mut Turn<'_>, courier: &Courier) -> RepoResult<()> {
    let text = turn.tf(
        Key::CourierRegistered,
        &[
            ("name", &courier.profile.name),
            ("market", &turn.market.name),
            ("vehicle", &courier.profile.vehicle),
            ("plate", &courier.profile.plate),
        ],
    );
    let menu = Some(super::menu_for(repo, turn, turn.user)?);
    turn.reply(Outbound { menu, ..Outbound::text(text) });
    turn.say(Key::CourierHelp);
    Ok(())
}

/// Answers one input of a registered courier. Anyone else never reaches here (see
/// [`super::route`]); a courier record that vanished meanwhile gets "unknown command".
pub fn step(
    state: CourierState,
    input: &Inbound,
    repo: &mut dyn Repo,
    turn: &mut Turn<'_>,
) -> RepoResult<CourierState> {
    let Some(me) = repo.courier_of(turn.user)? else {
        // A courier's button pressed by someone who is not one: forged or from another chat.
        turn.say(if matches!(input, Inbound::Button(_)) { Key::StaleButton } else { Key::UnknownCommand });
        return Ok(CourierState::Idle);
    };
    match input {
        Inbound::Command { name, .. } => command(state, name, &me, repo, turn),
        Inbound::Button(payload) => match Action::parse(payload) {
            Some(action) => act(state, action, &me, repo, turn),
            None => {
                turn.say(Key::StaleButton);
                Ok(state)
            }
        },
        Inbound::Image { reference, .. } => match state {
            CourierState::ReceiveProof { delivery, cash } => {
                let step = delivery::proof_received(repo, turn, &me, delivery, reference, cash);
                door(turn, delivery, step)
            }
            // The photo before the cash: the cash first (the photo is sent again after).
            CourierState::ReceiveCash { delivery } => {
                let step = delivery::cash_needed(repo, turn, &me, delivery);
                door(turn, delivery, step)
            }
            CourierState::Idle => {
                turn.say(Key::CourierPhotoNotNeeded);
                Ok(state)
            }
        },
        Inbound::Location { lat, lon, live } => {
            repo.set_courier_position(me.id, *lat, *lon)?;
            // A live location sends an update every few seconds: those are kept silently.
            if !live {
                turn.say(Key::CourierPositionSaved);
            }
            Ok(state)
        }
        Inbound::Text(text) => match state {
            CourierState::ReceiveProof { cash: None, .. } if is_way_out(text) => {
                turn.say(Key::JobProofCancelled);
                Ok(CourierState::Idle)
            }
            // Nothing was recorded: the cash is asked again with the next "Terkirim".
            CourierState::ReceiveCash { .. } | CourierState::ReceiveProof { .. } if is_way_out(text) => {
                turn.say(Key::JobCashCancelled);
                Ok(CourierState::Idle)
            }
            CourierState::ReceiveCash { delivery } | CourierState::ReceiveProof { delivery, .. }
                if !repo.delivery(delivery)?.is_some_and(|d| d.status == DeliveryStatus::OnTheWay) =>
            {
                // The delivery ended another way meanwhile: stop waiting for it.
                turn.say(Key::NotUnderstood);
                Ok(CourierState::Idle)
            }
            CourierState::ReceiveCash { delivery } => {
                let step = delivery::cash_typed(repo, turn, &me, delivery, text);
                door(turn, delivery, step)
            }
            CourierState::ReceiveProof { .. } => {
                turn.say(Key::JobProofNeedPhoto);
                Ok(state)
            }
            CourierState::Idle => {
                turn.say(Key::CourierHelp);
                Ok(state)
            }
        },
        _ => {
            turn.say(Key::CourierHelp);
            Ok(state)
        }
    }
}

/// Words that leave the photo question (the delivery stays on the road; `/tugas` shows it).
fn is_way_out(text: &str) -> bool {
    matches!(text.trim().to_lowercase().as_str(), "batal" | "menu" | "cancel" | "kembali" | "back" | "ora sido")
}

/// Whether a step went through (and what it gave); a refusal is told to the courier (nothing
/// changed), a store failure rolls the event back.
fn went<T>(turn: &mut Turn<'_>, step: Result<T, StepFail>) -> RepoResult<Option<T>> {
    match step {
        Ok(next) => Ok(Some(next)),
        Err(StepFail::Refused(r)) => {
            r.tell(turn);
            Ok(None)
        }
        Err(StepFail::Repo(e)) => Err(e),
    }
}

/// The state after a step at the door: what it asks next, or nothing awaited when it was
/// refused (the delivery moved on, or was never theirs).
fn door(turn: &mut Turn<'_>, delivery: i64, step: DoorStep) -> RepoResult<CourierState> {
    Ok(went(turn, step)?.map_or(CourierState::Idle, |next| CourierState::at_the_door(delivery, next)))
}

fn command(
    state: CourierState,
    name: &str,
    me: &Courier,
    repo: &mut dyn Repo,
    turn: &mut Turn<'_>,
) -> RepoResult<CourierState> {
    match name {
        "mulai" => {
            if !me.active {
                turn.say(Key::CourierInactive);
                return Ok(state);
            }
            if me.on_shift {
                turn.say(Key::ShiftAlreadyOn);
                return Ok(state);
            }
            repo.set_on_shift(me.id, true)?;
            let text = turn.tf(Key::ShiftStarted, &[("name", &me.profile.name)]);
            turn.reply(Outbound::text(text));
            delivery::offer_waiting(repo, turn)?;
            Ok(state)
        }
        "selesai" => {
            if !me.on_shift {
                turn.say(Key::ShiftNotOn);
                return Ok(state);
            }
            repo.set_on_shift(me.id, false)?;
            let open = repo.deliveries_of(me.id)?;
            // Offers not taken yet go to the next courier now rather than when they lapse.
            for d in open.iter().filter(|d| d.status == DeliveryStatus::Offered) {
                let step = delivery::skip(repo, turn, me, d.id);
                went(turn, step)?;
            }
            let held = open.iter().filter(|d| d.status != DeliveryStatus::Offered).count();
            if held > 0 {
                delivery::shift_ended_holding(repo, turn, me, held)?;
            }
            let key = if held == 0 { Key::ShiftEnded } else { Key::ShiftEndedWithJobs };
            let text = turn.tf(key, &[("name", &me.profile.name), ("count", &held)]);
            turn.reply(Outbound::text(text));
            Ok(state)
        }
        "tugas" => {
            show_jobs(me, repo, turn)?;
            Ok(CourierState::Idle)
        }
        _ => {
            turn.say(Key::CourierHelp);
            Ok(state)
        }
    }
}

/// `/tugas`: the courier's open jobs, each with its current buttons.
fn show_jobs(me: &Courier, repo: &mut dyn Repo, turn: &mut Turn<'_>) -> RepoResult<()> {
    let open = repo.deliveries_of(me.id)?;
    if open.is_empty() {
        let key = if me.on_shift { Key::JobsNone } else { Key::JobsNoneOffShift };
        turn.say(key);
        return Ok(());
    }
    for d in open {
        delivery::show_job(repo, turn, &d)?;
    }
    Ok(())
}

fn act(
    state: CourierState,
    action: Action,
    me: &Courier,
    repo: &mut dyn Repo,
    turn: &mut Turn<'_>,
) -> RepoResult<CourierState> {
    let step = match action {
        Action::CourierTake(d) => delivery::take(repo, turn, me, d),
        Action::CourierSkip(d) => delivery::skip(repo, turn, me, d),
        Action::CourierPicked { delivery: d, sub } => delivery::picked_up(repo, turn, me, d, sub),
        Action::CourierDepart(d) => delivery::depart(repo, turn, me, d),
        Action::CourierDelivered(d) => {
            let step = delivery::delivered_pressed(repo, turn, me, d);
            return Ok(went(turn, step)?.map_or(state, |next| CourierState::at_the_door(d, next)));
        }
        Action::CourierCash { delivery: d, amount } => {
            let step = delivery::cash_confirmed(repo, turn, me, d, amount);
            return Ok(went(turn, step)?.map_or(state, |next| CourierState::at_the_door(d, next)));
        }
        Action::CourierFail(d) => delivery::fail_pressed(repo, turn, me, d),
        Action::CourierFailReason { delivery: d, reason } => {
            let step = delivery::failed(repo, turn, me, d, reason);
            went(turn, step)?;
            return Ok(CourierState::Idle);
        }
        _ => {
            turn.say(Key::StaleButton);
            return Ok(state);
        }
    };
    went(turn, step)?;
    Ok(state)
}
