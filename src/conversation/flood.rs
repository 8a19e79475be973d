//! The flood rule (see [`crate::config::FloodRule`]): one person's messages on a chat platform
//! past so many within a window are skipped, not worked or answered, so that a flood costs a
//! row each and not a step and a reply each (a thousand messages were a thousand steps and
//! sixteen minutes of replies at one a second, and thirty flooding accounts took a bot's whole
//! send budget from traders' new-order notices).
//!
//! The count lives in memory, by the times the messages reached us: a restart forgets it,
//! which only forgives. What was decided is stored with the row (`skipped`), in the step's
//! transaction.

use crate::channel::{ChannelKind, UserKey};
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
}

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
    pub fn check(&self, rule: &FloodRule, market: &str, user: &UserKey, at: DateTime<Utc>) -> Verdict {
        if !matches!(user.channel, ChannelKind::Telegram | ChannelKind::WhatsApp) {
            return Verdict::Take;
        }
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        if senders.len() > PRUNE_ABOVE {
            senders.retain(|_, s| s.times.back().is_some_and(|t| at - *t < rule.window));
        }
        let sender = senders.entry((market.to_string(), user.clone())).or_default();
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
        let ani = UserKey { channel: ChannelKind::WhatsApp, id: "6281234567890".into() };
        let t0 = Utc.with_ymd_and_hms(2026, 12, 8, 1, 0, 0).single().expect("time");
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let verdicts: Vec<Verdict> = (0..6).map(|i| guard.check(&rule, "blimbing", &ani, at(i))).collect();
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
        assert_eq!(guard.check(&rule, "blimbing", &ani, at(9)), Verdict::Skip { first: false });
        assert_eq!(guard.check(&rule, "dinoyo", &ani, at(9)), Verdict::Take);
        let budi = UserKey { channel: ChannelKind::Telegram, id: "1001".into() };
        assert_eq!(guard.check(&rule, "blimbing", &budi, at(9)), Verdict::Take);
        let console = UserKey { channel: ChannelKind::Console, id: "sri".into() };
        assert!((0..10).all(|_| guard.check(&rule, "blimbing", &console, at(9)) == Verdict::Take));
        // A pause of a whole window: taken again, and a new burst gets its word again.
        assert_eq!(guard.check(&rule, "blimbing", &ani, at(20)), Verdict::Take);
        for s in 21..23 {
            assert_eq!(guard.check(&rule, "blimbing", &ani, at(s)), Verdict::Take);
        }
        assert_eq!(guard.check(&rule, "blimbing", &ani, at(23)), Verdict::Skip { first: true });
    }
}
