//! The same-text load (`cargo bench --bench telegram_load -- --mode text`): every shopper sends
//! one text over and over in a closed loop, so the cost of answering different texts can be
//! compared (a commodity, `kangkung`; a command word, `keranjang`; a word matching nothing,
//! `halo`) against each other and against the echo bot with the same shape.
//!
//! A reply may be more than one call to the Bot API (a message and a keyboard hint, say), and
//! what the bot says depends on the shopper's state; this module never guesses a reply's end
//! from its wording. Instead each market's bot is first calibrated on a chat of its own
//! ([`calibrate`]): the text is sent [`CALIBRATION_ROUNDS`] times, and after the first call of
//! each reply the chat must stay quiet for [`SETTLE`] before the calls are counted. That gives
//! the number of calls answering a new shopper's first message and each later one (which must
//! not change from round to round). In the measured loop a message counts as answered once its
//! chat has had that many more calls (sends and edits) since the message before; at the end,
//! after [`SETTLE`] again, every chat must have had exactly the calls counted, no more, so each
//! message was answered once and no late reply was counted for the next one.

use super::{CHAT_BASE, Fake, MarketInfo, STEP_TIMEOUT, Sample, text_update_json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a calibrating chat must stay quiet after a call before its reply is taken as whole
/// (`pasar run` sends a reply's messages back to back, milliseconds apart, when idle).
pub(super) const SETTLE: Duration = Duration::from_millis(250);
/// Messages each calibrating chat sends: a new shopper's first, then enough to see the count hold.
const CALIBRATION_ROUNDS: usize = 4;

/// Bot API calls (`sendMessage`, `sendPhoto`, `editMessageText`) answering one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReplyShape {
    /// To a new shopper's first message.
    pub first: u64,
    /// To each later one (the same text again).
    pub later: u64,
}

/// What [`calibrate`] found: each market bot's [`ReplyShape`] for the text, by bot.
#[derive(Debug, Clone)]
pub(super) struct Calibration {
    pub by_bot: Vec<ReplyShape>,
    /// The first line of the first bot's last reply (to see what the text gets).
    pub sample: String,
}

impl Calibration {
    /// "1 call to a first message, 1 to each later one", or each bot's where they differ.
    pub fn describe(&self) -> String {
        let one = |s: &ReplyShape| format!("{} call(s) to the first message, {} to each later one", s.first, s.later);
        match self.by_bot.first() {
            Some(s) if self.by_bot.iter().all(|o| o == s) => format!("{} (every bot)", one(s)),
            _ => self
                .by_bot
                .iter()
                .enumerate()
                .map(|(b, s)| format!("bot {b}: {}", one(s)))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    /// Whether any message is answered with more than one call.
    pub fn multi_call(&self) -> bool {
        self.by_bot.iter().any(|s| s.first > 1 || s.later > 1)
    }
}

/// Calls to `chat` so far in the run.
fn calls(fake: &Fake, chat: i64) -> anyhow::Result<u64> {
    let slot = fake.slot(chat).ok_or_else(|| anyhow::anyhow!("no chat {chat} at the fake"))?;
    Ok(slot.inner.lock().expect("chat lock").calls)
}

/// Sends `text` from `chat` to `bot` [`CALIBRATION_ROUNDS`] times, each after the previous reply
/// settled, and counts the calls of each reply; also returns the last reply's first line.
async fn calibrate_chat(fake: &Fake, bot: usize, chat: i64, text: &str) -> anyhow::Result<(ReplyShape, String)> {
    let slot = fake.slot(chat).ok_or_else(|| anyhow::anyhow!("no chat {chat} at the fake"))?;
    let mut counts = Vec::with_capacity(CALIBRATION_ROUNDS);
    for _ in 0..CALIBRATION_ROUNDS {
        let before = calls(fake, chat)?;
        fake.push(bot, chat, |id| text_update_json(id, chat, text));
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        while calls(fake, chat)? == before {
            if tokio::time::timeout_at(deadline, slot.notify.notified()).await.is_err() {
                anyhow::bail!("bot {bot}: no reply to {text:?} within {STEP_TIMEOUT:?}");
            }
        }
        // Quiet for SETTLE: any call (or a wake-up left from before) starts the wait again.
        while tokio::time::timeout(SETTLE, slot.notify.notified()).await.is_ok() {}
        counts.push(calls(fake, chat)? - before);
    }
    let later = counts[1];
    anyhow::ensure!(
        counts[1..].iter().all(|c| *c == later),
        "bot {bot}: the calls answering {text:?} change from message to message ({counts:?}); the same-text load \
         needs a steady count"
    );
    let last = slot.inner.lock().expect("chat lock").replies.last().map(|r| r.text.clone()).unwrap_or_default();
    Ok((ReplyShape { first: counts[0], later }, last.lines().next().unwrap_or_default().to_string()))
}

/// Calibrates every bot at once, each on a chat of its own: shoppers' chats `shoppers ..
/// shoppers + markets.len()` (bot = index % bots, as for every shopper), which the fake must have.
async fn calibrate(
    fake: &Arc<Fake>,
    markets: &[MarketInfo],
    shoppers: usize,
    text: &str,
) -> anyhow::Result<Calibration> {
    let bots = markets.len();
    let mut by_bot = vec![ReplyShape { first: 0, later: 0 }; bots];
    let mut sample = String::new();
    let mut runs = tokio::task::JoinSet::new();
    for i in shoppers..shoppers + bots {
        let (fake, text) = (Arc::clone(fake), text.to_string());
        runs.spawn(async move {
            let bot = i % bots;
            (bot, calibrate_chat(&fake, bot, CHAT_BASE + i as i64, &text).await)
        });
    }
    while let Some(run) = runs.join_next().await {
        let (bot, calibrated) = run?;
        let (shape, last) = calibrated?;
        by_bot[bot] = shape;
        if bot == 0 {
            sample = last;
        }
    }
    Ok(Calibration { by_bot, sample })
}

/// One shopper (`index`, on bot `index % bots`) sends `text` `messages` times, each once the
/// previous one is answered (its chat got the calibrated number of calls more); returns the
/// samples and when the last reply came.
async fn shopper(
    fake: Arc<Fake>,
    index: usize,
    bots: usize,
    shape: ReplyShape,
    messages: usize,
    text: Arc<str>,
) -> anyhow::Result<(Vec<Sample>, Instant)> {
    let bot = index % bots;
    let chat = CHAT_BASE + index as i64;
    let slot = fake.slot(chat).ok_or_else(|| anyhow::anyhow!("no chat {chat} at the fake"))?;
    let mut samples = Vec::with_capacity(messages);
    let mut expected = calls(&fake, chat)?;
    let mut last = Instant::now();
    for k in 0..messages {
        expected += if k == 0 { shape.first } else { shape.later };
        let queued = fake.push(bot, chat, |id| text_update_json(id, chat, &text));
        let phase = fake.faults.phase();
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        let first = loop {
            {
                let c = slot.inner.lock().expect("chat lock");
                if c.calls >= expected {
                    break c.first;
                }
            }
            if tokio::time::timeout_at(deadline, slot.notify.notified()).await.is_err() {
                let got = calls(&fake, chat)?;
                anyhow::bail!(
                    "chat {chat}: {got} of {expected} calls to message {k} ({text:?}) within {STEP_TIMEOUT:?}"
                );
            }
        };
        last = Instant::now();
        let complete = last.duration_since(queued);
        samples.push(Sample { queued, phase, whatsapp: false, first: first.unwrap_or(complete), complete });
    }
    Ok((samples, last))
}

/// The same-text closed loop on a fake with `shoppers + markets.len()` shoppers' chats: the
/// bots are calibrated on the last `markets.len()` ([`calibrate`]), then `shoppers` shoppers
/// (spread over the bots) each send `text` `messages` times, the next once the previous is
/// answered. Returns the samples, the time from the first send to the last reply, and the
/// calibration. Fails if a chat got more calls than counted (checked after [`SETTLE`]).
pub(super) async fn same_text_loop(
    fake: Arc<Fake>,
    markets: &[MarketInfo],
    shoppers: usize,
    messages: usize,
    text: &str,
) -> anyhow::Result<(Vec<Sample>, Duration, Calibration)> {
    let calibration = calibrate(&fake, markets, shoppers, text).await?;
    eprintln!("  replies to {text:?}: {}; bot 0 says {:?}", calibration.describe(), calibration.sample);
    let bots = markets.len();
    let text: Arc<str> = Arc::from(text);
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..shoppers {
        let shape = calibration.by_bot[i % bots];
        tasks.spawn(shopper(Arc::clone(&fake), i, bots, shape, messages, Arc::clone(&text)));
    }
    let mut all = Vec::with_capacity(shoppers * messages);
    let mut end = t0;
    while let Some(r) = tasks.join_next().await {
        let (samples, last) = r??;
        all.extend(samples);
        end = end.max(last);
    }
    let elapsed = end.duration_since(t0);
    // Late calls would have been counted for the next message: none may come.
    tokio::time::sleep(SETTLE).await;
    let mut extra = Vec::new();
    for i in 0..shoppers {
        let shape = calibration.by_bot[i % bots];
        let counted = shape.first + shape.later * (messages as u64).saturating_sub(1);
        let got = calls(&fake, CHAT_BASE + i as i64)?;
        if got != counted {
            extra.push(format!("chat {}: {got} calls, {counted} counted", CHAT_BASE + i as i64));
        }
    }
    anyhow::ensure!(
        extra.is_empty(),
        "{} of {shoppers} chats got other calls than counted for {text:?} (first: {})",
        extra.len(),
        extra.first().map_or("", String::as_str)
    );
    Ok((all, elapsed, calibration))
}
