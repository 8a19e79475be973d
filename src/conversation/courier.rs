//! The courier's conversation: shifts (`/mulai`, `/selesai`), their jobs (`/tugas`), the step
//! buttons of a delivery, the photo at the door, and the position they share.
//!
//! [`CourierState`] is what the bot waits for from a courier in the middle of something (the
//! photo after "Terkirim"). The steps themselves live in [`super::delivery`], which checks every
//! press against the stored delivery.

use super::delivery::{self, Step, StepFail};
use super::payload::Action;
use super::{Repo, RepoResult, Turn};
use crate::channel::{CommandMenu, Inbound, Outbound};
use crate::domain::delivery::{Courier, DeliveryStatus};
use crate::text::Key;
use serde::{Deserialize, Serialize};

/// What the bot is waiting for from a courier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CourierState {
    #[default]
    Idle,
    /// The photo at the door, after "Terkirim".
    ReceiveProof { delivery: i64 },
}

impl CourierState {
    /// Waiting for the photo: typed text is answered here (a reminder) rather than taken as
    /// shopping.
    pub fn is_busy(&self) -> bool {
        matches!(self, CourierState::ReceiveProof { .. })
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
    let admin = turn.policy.is_config_admin(&turn.market.slug, turn.user) || repo.staff_admins()?.contains(turn.user);
    let trader = !repo.stalls_of(turn.user)?.is_empty();
    let menu = Some(CommandMenu { trader, admin, courier: true });
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
            CourierState::ReceiveProof { delivery } => {
                let step = delivery::proof_received(repo, turn, &me, delivery, reference);
                went(turn, step)?;
                Ok(CourierState::Idle)
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
            CourierState::ReceiveProof { .. } if is_way_out(text) => {
                turn.say(Key::JobProofCancelled);
                Ok(CourierState::Idle)
            }
            CourierState::ReceiveProof { delivery } => {
                let still_out = repo.delivery(delivery)?.is_some_and(|d| d.status == DeliveryStatus::OnTheWay);
                if still_out {
                    turn.say(Key::JobProofNeedPhoto);
                    Ok(state)
                } else {
                    // The delivery ended another way meanwhile: stop waiting for its photo.
                    turn.say(Key::NotUnderstood);
                    Ok(CourierState::Idle)
                }
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

/// Whether a step went through; a refusal is told to the courier (nothing changed), a store
/// failure rolls the event back.
fn went(turn: &mut Turn<'_>, step: Step) -> RepoResult<bool> {
    match step {
        Ok(()) => Ok(true),
        Err(StepFail::Refused(r)) => {
            r.tell(turn);
            Ok(false)
        }
        Err(StepFail::Repo(e)) => Err(e),
    }
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
            return Ok(if went(turn, step)? { CourierState::ReceiveProof { delivery: d } } else { state });
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
