//! Broadcasts (`/siaran`): an admin's announcement to the shoppers of a market who opted in.
//! The text as an admin may send it, the broadcast's life (draft -> sending -> done, or
//! cancelled), its counts, and when the admin's progress message is edited. Pure: the store
//! keeps these, the engine's timer acts on [`next_report`].

use chrono::{DateTime, Duration, Utc};

/// Longest announcement, in characters (a shopper reads it on a phone; Telegram allows 4096).
pub const MAX_BROADCAST_CHARS: usize = 1000;

/// The admin's progress message is edited at most this often while a broadcast is sending.
pub fn progress_every() -> Duration {
    Duration::seconds(3)
}

/// An announcement's text: not empty, at most [`MAX_BROADCAST_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastText(String);

impl BroadcastText {
    pub fn parse(text: &str) -> Option<BroadcastText> {
        let text = text.trim();
        (!text.is_empty() && text.chars().count() <= MAX_BROADCAST_CHARS).then(|| BroadcastText(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastStatus {
    /// Shown to its admin with the confirm and cancel buttons.
    Draft,
    Cancelled,
    /// Confirmed: its messages are in the outbox.
    Sending,
    /// Every message was sent or given up on; the admin got the final counts.
    Done,
}

impl BroadcastStatus {
    pub fn code(self) -> &'static str {
        match self {
            BroadcastStatus::Draft => "draft",
            BroadcastStatus::Cancelled => "cancelled",
            BroadcastStatus::Sending => "sending",
            BroadcastStatus::Done => "done",
        }
    }

    pub fn parse(code: &str) -> Option<BroadcastStatus> {
        [BroadcastStatus::Draft, BroadcastStatus::Cancelled, BroadcastStatus::Sending, BroadcastStatus::Done]
            .into_iter()
            .find(|s| s.code() == code)
    }
}

/// A stored broadcast.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    pub id: i64,
    pub market: String,
    /// The admin who wrote it: only they confirm it, and they see its progress.
    pub by: crate::channel::UserKey,
    pub text: String,
    pub status: BroadcastStatus,
}

/// Where a broadcast's messages are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastCounts {
    /// Not yet sent.
    pub pending: u32,
    pub sent: u32,
    /// Refused by the platform or failed for good.
    pub failed: u32,
    /// The shopper blocked the bot (or left), or the platform will not take it now (WhatsApp
    /// outside its 24-hour window).
    pub unreachable: u32,
}

impl BroadcastCounts {
    pub fn total(&self) -> u32 {
        self.pending + self.sent + self.failed + self.unreachable
    }

    pub fn finished(&self) -> bool {
        self.pending == 0
    }

    /// What the admin was last shown, as stored ("sent/failed/unreachable").
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.sent, self.failed, self.unreachable)
    }
}

/// The admin's latest progress message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressMessage {
    /// Not sent yet: its platform id is not known.
    Queued,
    /// Sent; the platform's id for it, if the platform gave one.
    Sent(Option<String>),
    /// It could not be delivered.
    Failed,
}

/// A broadcast being sent, as the progress timer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SendingBroadcast {
    pub id: i64,
    pub market: String,
    pub by: crate::channel::UserKey,
    pub progress: ProgressMessage,
    /// The counts last shown, and when.
    pub reported: Option<String>,
    pub reported_at: Option<DateTime<Utc>>,
}

/// What the timer does about a sending broadcast now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Nothing (nothing changed, too soon, or the last edit has not gone yet).
    Nothing,
    /// Edit the progress message (by its platform id) to show the counts.
    Edit(String),
    /// Every message is done: the final counts, editing the progress message where it can be
    /// (`Some` platform id), else as a new message; the broadcast is done.
    Final(Option<String>),
}

/// The progress rule: platforms that can edit (`can_edit`) get the counts edited into the
/// progress message at most every [`progress_every`] and when they changed, and the final counts
/// edited in too (once the progress message's id is known); the others get only a final summary.
pub fn next_report(b: &SendingBroadcast, counts: &BroadcastCounts, now: DateTime<Utc>, can_edit: bool) -> Report {
    let target = match &b.progress {
        ProgressMessage::Sent(Some(id)) if can_edit => Some(id.clone()),
        _ => None,
    };
    if counts.finished() {
        // The final edit needs the message's id: wait for the progress message to go first.
        if can_edit && b.progress == ProgressMessage::Queued {
            return Report::Nothing;
        }
        return Report::Final(target);
    }
    let Some(target) = target else {
        return Report::Nothing;
    };
    if b.reported.as_deref() == Some(counts.key().as_str()) {
        return Report::Nothing;
    }
    if b.reported_at.is_some_and(|at| now < at + progress_every()) {
        return Report::Nothing;
    }
    Report::Edit(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{ChannelKind, UserKey};

    fn sending(progress: ProgressMessage, reported: Option<&str>, at: Option<DateTime<Utc>>) -> SendingBroadcast {
        SendingBroadcast {
            id: 1,
            market: "blimbing".into(),
            by: UserKey { channel: ChannelKind::Telegram, id: "9".into() },
            progress,
            reported: reported.map(String::from),
            reported_at: at,
        }
    }

    #[test]
    fn a_text_is_not_empty_and_not_too_long() {
        assert_eq!(
            BroadcastText::parse("  Besok tutup jam 12  ").map(|t| t.as_str().to_string()),
            Some("Besok tutup jam 12".into())
        );
        assert!(BroadcastText::parse("   ").is_none());
        assert!(BroadcastText::parse(&"a".repeat(MAX_BROADCAST_CHARS)).is_some());
        assert!(BroadcastText::parse(&"é".repeat(MAX_BROADCAST_CHARS + 1)).is_none());
    }

    #[test]
    fn progress_is_edited_when_it_changed_and_not_too_often() {
        let now = Utc::now();
        let counts = BroadcastCounts { pending: 5, sent: 3, failed: 0, unreachable: 1 };
        let id = || ProgressMessage::Sent(Some("77".into()));
        assert_eq!(
            next_report(&sending(id(), Some("0/0/0"), Some(now - progress_every())), &counts, now, true),
            Report::Edit("77".into())
        );
        assert_eq!(
            next_report(&sending(id(), Some("0/0/0"), Some(now)), &counts, now, true),
            Report::Nothing,
            "too soon"
        );
        assert_eq!(next_report(&sending(id(), Some("3/0/1"), None), &counts, now, true), Report::Nothing, "unchanged");
        assert_eq!(next_report(&sending(ProgressMessage::Queued, None, None), &counts, now, true), Report::Nothing);
        assert_eq!(next_report(&sending(id(), None, None), &counts, now, false), Report::Nothing, "cannot edit");
    }

    #[test]
    fn the_end_is_edited_in_once_the_message_is_known_or_sent_as_a_summary() {
        let now = Utc::now();
        let done = BroadcastCounts { pending: 0, sent: 9, failed: 1, unreachable: 0 };
        let id = ProgressMessage::Sent(Some("77".into()));
        assert_eq!(
            next_report(&sending(id.clone(), Some("9/1/0"), Some(now)), &done, now, true),
            Report::Final(Some("77".into()))
        );
        assert_eq!(next_report(&sending(ProgressMessage::Queued, None, None), &done, now, true), Report::Nothing);
        assert_eq!(next_report(&sending(ProgressMessage::Failed, None, None), &done, now, true), Report::Final(None));
        assert_eq!(next_report(&sending(ProgressMessage::Queued, None, None), &done, now, false), Report::Final(None));
        assert_eq!(next_report(&sending(id, None, None), &done, now, false), Report::Final(None));
    }
}
