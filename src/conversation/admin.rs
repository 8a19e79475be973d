//! The market admin's conversation (for now: inviting traders). Admins are named in the config
//! or granted at run time; a command from anyone else never reaches this module.

use super::{Repo, RepoResult, Turn};
use crate::channel::{Inbound, Outbound};
use crate::domain::catalog::normalize;
use crate::domain::invite::{invite_code, lifetime};
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
