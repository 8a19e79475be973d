//! The flood rule (see [`crate::config::FloodRule`]): one person's messages on a chat platform
//! past so many within a window are skipped, not worked or answered, so that a flood costs a
//! row each and not a step and a reply each (a thousand messages were a thousand steps and
//! sixteen minutes of replies at one a second, and thirty flooding accounts took a bot's whole
//! send budget from traders' new-order notices).
//!
//! Only what people type counts (text and commands): a press of a button, a location (a live
//! one moves every few seconds), a photo or a contact is always worked, so that a trader's
//! "Terima", a courier's photo at the door or an admin's confirmation is never lost to the rule,
//! even when the platform hands over a backlog at once after an outage.
//!
//! The count lives in memory, by the times the messages reached us: a restart forgets it,
//! which only forgives. What was decided is stored with the row (`skipped`), in the step's
//! transaction; a batch run again (after a failed event or commit) gets the same verdict for
//! the same row, not a second count.

use crate::channel::{ChannelKind, Inbound, UserKey};
use crate::config::FloodRule;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Work it as usual.
    Take,
    /// Skip it; `first` of its burst: say once why.
    Skip { first: bool },
}

#[derive(Default)]
struct Sender {
    /// When their latest messages came, within the window (skipped ones too: flooding on keeps
    /// the rule on until they pause).
    times: VecDeque<DateTime<Utc>>,
    /// Their last message was skipped.
    skipping: bool,
    /// The verdicts on their latest rows (inbox id), for a batch run again.
    decided: VecDeque<(i64, Verdict)>,
}

/// Verdicts remembered per sender (more than a batch holds of one person's rows).
const REMEMBERED: usize = 256;

/// Who sent how many lately, per market.
#[derive(Default)]
pub struct FloodGuard {
    senders: Mutex<HashMap<(String, UserKey), Sender>>,
}

/// Past this many people remembered, those quiet for a window are forgotten.
const PRUNE_ABOVE: usize = 10_000;

impl FloodGuard {
    /// The verdict on a message from `user` to `market`'s bot that reached us `at`. Only chat
    /// platforms are counted (the terminal, the bank's and the vendor's news are not people
    /// typing).
    pub fn check(
        &self,
        rule: &FloodRule,
        market: &str,
        user: &UserKey,
        row: i64,
        inbound: &Inbound,
        at: DateTime<Utc>,
    ) -> Verdict {
        if !matches!(user.channel, ChannelKind::Telegram | ChannelKind::WhatsApp)
            || !matches!(inbound, Inbound::Text(_) | Inbound::Command { .. })
        {
            return Verdict::Take;
        }
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        if senders.len() > PRUNE_ABOVE {
            senders.retain(|_, s| s.times.back().is_some_and(|t| at - *t < rule.window));
        }
        let sender = senders.entry((market.to_string(), user.clone())).or_default();
        if let Some((_, verdict)) = sender.decided.iter().find(|(id, _)| *id == row) {
            return *verdict;
        }
        let verdict = Self::count(sender, rule, at);
        sender.decided.push_back((row, verdict));
        if sender.decided.len() > REMEMBERED {
            sender.decided.pop_front();
        }
        verdict
    }

    fn count(sender: &mut Sender, rule: &FloodRule, at: DateTime<Utc>) -> Verdict {
        while sender.times.front().is_some_and(|t| at - *t >= rule.window) {
            sender.times.pop_front();
        }
        let over = sender.times.len() >= rule.messages as usize;
        sender.times.push_back(at);
        // Bounded: only whether the window holds `messages` matters.
        while sender.times.len() > rule.messages as usize + 1 {
            sender.times.pop_front();
        }
        if over {
            let first = !sender.skipping;
            sender.skipping = true;
            Verdict::Skip { first }
        } else {
            sender.skipping = false;
            Verdict::Take
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn past_the_limit_messages_are_skipped_with_one_word_per_burst_until_a_pause() {
        let rule = FloodRule { messages: 3, window: chrono::Duration::seconds(10) };
        let guard = FloodGuard::default();
        let text = Inbound::Text("kangkung".into());
        let rows = std::cell::Cell::new(0);
        let next = || {
            rows.set(rows.get() + 1);
            rows.get()
        };
        let ani = UserKey { channel: ChannelKind::WhatsApp, id: "6281234567890".into() };
        let t0 = Utc.with_ymd_and_hms(2026, 12, 8, 1, 0, 0).single().expect("time");
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let verdicts: Vec<Verdict> =
            (0..6).map(|i| guard.check(&rule, "blimbing", &ani, next(), &text, at(i))).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Take,
                Verdict::Take,
                Verdict::Take,
                Verdict::Skip { first: true },
                Verdict::Skip { first: false },
                Verdict::Skip { first: false },
            ]
        );
        // Flooding on keeps it on; another person, market or the terminal is not counted.
        assert_eq!(guard.check(&rule, "blimbing", &ani, next(), &text, at(9)), Verdict::Skip { first: false });
        assert_eq!(guard.check(&rule, "dinoyo", &ani, next(), &text, at(9)), Verdict::Take);
        let budi = UserKey { channel: ChannelKind::Telegram, id: "1001".into() };
        assert_eq!(guard.check(&rule, "blimbing", &budi, next(), &text, at(9)), Verdict::Take);
        let console = UserKey { channel: ChannelKind::Console, id: "sri".into() };
        assert!((0..10).all(|_| guard.check(&rule, "blimbing", &console, next(), &text, at(9)) == Verdict::Take));
        // A pause of a whole window: taken again, and a new burst gets its word again.
        assert_eq!(guard.check(&rule, "blimbing", &ani, next(), &text, at(20)), Verdict::Take);
        for s in 21..23 {
            assert_eq!(guard.check(&rule, "blimbing", &ani, next(), &text, at(s)), Verdict::Take);
        }
        assert_eq!(guard.check(&rule, "blimbing", &ani, next(), &text, at(23)), Verdict::Skip { first: true });
        // A press, a location or a photo is never skipped, nor counted.
        let press = Inbound::Button("ok:1".into());
        assert_eq!(guard.check(&rule, "blimbing", &ani, next(), &press, at(23)), Verdict::Take);
        // The same row again (its batch run again): the same verdict, not a second count.
        let row = next();
        assert_eq!(guard.check(&rule, "blimbing", &ani, row, &text, at(40)), Verdict::Take);
        for _ in 0..5 {
            assert_eq!(guard.check(&rule, "blimbing", &ani, row, &text, at(40)), Verdict::Take);
        }
        assert_eq!(guard.check(&rule, "blimbing", &ani, next(), &text, at(40)), Verdict::Take);
    }
}
