//! Traders and couriers in `pasar loadtest rush`, `crash` and `outage`: whole orders, from the
//! shopper's "Pesan sekarang" to the cash and the photo at the door and the shopper's ratings.
//!
//! Before `pasar run` starts, [`enrol`] makes them through the engine as a market's people would:
//! an admin of each market invites (`/undang <lapak>`, `/undang_kurir ...`) a trader for every
//! stall selling kangkung (the shoppers' commodity) and three couriers, who join with `/daftar
//! <kode>`; the couriers start their shift (`/mulai`). Every second one (odd `k`) works on
//! WhatsApp, at their market's number (their presses and the photo are signed webhooks, their
//! messages come to the fake Graph API); the others are Telegram chats of their market's bot.
//!
//! In the run each is a [`Worker`]: it reads every message its chat gets and presses the buttons
//! that move an order on, in the order a person would: the trader ✅ Terima then 📦 Siap diambil;
//! the courier ✋ Ambil tugas, 📦 Sudah dijemput, 🛵 Berangkat, ✅ Terkirim, 💵 Diterima pas, then
//! sends the photo. A job's next button (in the answer to a press) is pressed before anything
//! that came meanwhile (a new order, another offer), so a courier finishes the delivery in hand
//! first. No button is pressed twice, so a message repeated after a kill (Telegram's sends are
//! at least once) is read once. A press the bot refuses ("tidak ada yang diubah": an offer that
//! lapsed while the API was down, say) is counted and the worker goes on.

use super::{Fake, MarketInfo, Reply, Sample, buttons, chat_json, press_json, user_json, world};
use crate::channel::{ChannelKind, Inbound, InboundEvent, UserKey};
use crate::conversation::engine::Engine;
use serde_json::json;
use std::collections::{HashSet, VecDeque};
use std::time::Duration;

/// Traders' and couriers' chat ids start here (member `k` is chat `STAFF_BASE + k`).
pub(super) const STAFF_BASE: i64 = 20_000_000;
/// A trader's or courier's WhatsApp number: this and nine digits, `k` (a shopper's is `628`
/// and nine).
pub(super) const WA_STAFF_PREFIX: &str = "6281";

/// Member `k`'s WhatsApp number.
pub(super) fn wa_staff(k: usize) -> String {
    format!("{WA_STAFF_PREFIX}{k:09}")
}
/// The admin who invites them (one chat, an admin of every market).
const ADMIN_CHAT: i64 = 30_000_000;
/// Couriers on shift at each market.
const COURIERS_PER_MARKET: usize = 3;
/// A delivery slot every hour of the day: an order's slot then always starts within two hours
/// (the first one offered is at least an hour ahead), so a packed order is offered to a courier
/// at once, whatever the time of the run (with the seed's morning slots, an order placed in the
/// afternoon is for tomorrow and waits for its courier until then).
pub(super) fn hourly_slots() -> String {
    let mut slots: Vec<String> = (0..23).map(|h| format!("{h:02}:00-{:02}:00", h + 1)).collect();
    slots.push("23:00-23:59".into());
    slots.join(",")
}

/// The buttons that move an order on (never "Ubah", "Tolak", "Lewati", "Gagal kirim").
const FORWARD: [&str; 7] = ["t:ok:", "t:pack:", "k:take:", "k:pick:", "k:go:", "k:done:", "k:cash:"];
/// What the bot answers an input of a trader or courier it refuses (a stale or forged button,
/// a step out of order, a photo or a cash amount it was not waiting for).
const REFUSED: [&str; 7] = [
    "tidak ada yang diubah",
    "Masih ada lapak",
    "belum selesai mengemas",
    "sudah tidak berlaku",
    "Foto hanya dibutuhkan",
    "Yang dibutuhkan fotonya",
    "Catat dulu uang",
];
/// What asks a courier for the photo at the door.
const PHOTO_ASKED: &str = "Kirim foto bukti serah terima pesanan ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Trader,
    Courier,
}

/// One trader or courier: their chat at their market's bot.
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub chat: i64,
    pub bot: usize,
    pub role: Role,
    /// Their WhatsApp number, if they work there.
    pub wa: Option<String>,
}

impl Member {
    fn user(&self) -> UserKey {
        match &self.wa {
            Some(number) => UserKey { channel: ChannelKind::WhatsApp, id: number.clone() },
            None => UserKey { channel: ChannelKind::Telegram, id: self.chat.to_string() },
        }
    }
}

/// Invites and registers the traders of every stall selling kangkung and three couriers in
/// each market, through the engine (the replies marked sent, as if read before the run), and
/// starts the couriers' shifts.
pub(super) fn enrol(engine: &mut Engine, markets: &[MarketInfo]) -> anyhow::Result<Vec<Member>> {
    let code = regex::Regex::new(r"/daftar ([A-Z0-9]+)")?;
    let admin = UserKey { channel: ChannelKind::Telegram, id: ADMIN_CHAT.to_string() };
    let mut members = Vec::new();
    let mut said = 0u64;
    for (bot, m) in markets.iter().enumerate() {
        let now = engine.now();
        engine.store().grant_admin(&m.slug, &admin, now)?;
        let stalls: Vec<String> = {
            let catalog = engine.catalog();
            catalog
                .offers_for(&m.slug, "kangkung")
                .iter()
                .filter_map(|o| catalog.stall(o.stall_id).map(|s| s.number.clone()))
                .collect()
        };
        let mut invites: Vec<(String, Role)> = stalls.iter().map(|s| (format!("/undang {s}"), Role::Trader)).collect();
        for k in 0..COURIERS_PER_MARKET {
            let profile = format!(
                "Kurir {} {}, 0812-{:04}-{:04}, Honda Beat, N {} AB",
                m.slug,
                k + 1,
                1000 + bot,
                1000 + k,
                1000 + k
            );
            invites.push((format!("/undang_kurir {profile}"), Role::Courier));
        }
        for (invite, role) in invites {
            let answer = say(engine, &m.slug, &admin, &invite, &mut said)?.join("\n");
            let joined_code = code
                .captures(&answer)
                .and_then(|c| c.get(1))
                .ok_or_else(|| anyhow::anyhow!("no invitation code in the answer to {invite}: {answer}"))?
                .as_str()
                .to_string();
            let k = members.len();
            let wa = (k % 2 == 1).then(|| wa_staff(k));
            let member = Member { chat: STAFF_BASE + k as i64, bot, role, wa };
            let user = member.user();
            let welcome = say(engine, &m.slug, &user, &format!("/daftar {joined_code}"), &mut said)?.join("\n");
            anyhow::ensure!(welcome.contains("Selamat bergabung"), "{invite}: /daftar answered {welcome}");
            if role == Role::Courier {
                let shift = say(engine, &m.slug, &user, "/mulai", &mut said)?.join("\n");
                anyhow::ensure!(shift.contains("Shift dimulai"), "/mulai answered {shift}");
            }
            members.push(member);
        }
    }
    Ok(members)
}

/// `user` types `text` to `market`'s bot: the texts of the replies (marked sent).
fn say(engine: &mut Engine, market: &str, user: &UserKey, text: &str, said: &mut u64) -> anyhow::Result<Vec<String>> {
    *said += 1;
    let now = engine.now();
    let event = InboundEvent {
        // `:seed-` marks the updates made before the run (the scenarios count the others).
        source_id: format!("{}:{market}:seed-staff-{said}", user.channel.code()),
        market: market.to_string(),
        user: user.clone(),
        display_name: Some(format!("Staf {}", user.id)),
        received_at: now,
        inbound: Inbound::from_typed(text),
        pressed_on: None,
    };
    engine.store().ingest(&[event])?;
    engine.process_pending()?;
    let rows = engine.store().pending_outbox_for(market, user, 100)?;
    let texts = rows.iter().map(|m| m.message.text.clone()).collect();
    for m in rows {
        engine.store().mark_sent(m.id, now)?;
    }
    Ok(texts)
}

/// What a worker does next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Task {
    /// Press the button with this data on the message `on`.
    Press { data: String, on: i64 },
    /// Send the photo at the door of this order.
    Photo(String),
}

impl Task {
    /// What the answer to it contains.
    fn needle(&self) -> &'static str {
        match self {
            Task::Press { data, .. } => match FORWARD.iter().position(|p| data.starts_with(p)) {
                Some(0) => "diterima. Kirim ke",
                Some(1) => "tercatat siap diambil",
                Some(2) => "Tugas ini milik Anda",
                Some(3) => "Barang dari",
                Some(4) => "Hati-hati di jalan",
                Some(5) => "Berapa uang yang Anda terima",
                _ => PHOTO_ASKED,
            },
            Task::Photo(_) => "selesai diantar",
        }
    }
}

/// A trader or courier at work in a run.
pub(super) struct Worker {
    pub member: Member,
    /// Buttons queued or pressed, photos queued or sent: never twice.
    seen: HashSet<String>,
    todo: VecDeque<Task>,
    /// How long an answer may take before the run is declared broken.
    pub patience: Duration,
    /// Presses the bot refused.
    pub refused: usize,
    /// Deliveries finished (couriers).
    pub delivered: usize,
    /// Messages sent on WhatsApp (numbering their wamids).
    sent: u64,
}

impl Worker {
    pub fn new(member: Member, patience: Duration) -> Worker {
        Worker { member, seen: HashSet::new(), todo: VecDeque::new(), patience, refused: 0, delivered: 0, sent: 0 }
    }

    /// The new tasks a message brings.
    fn tasks_in(&mut self, r: &Reply) -> Vec<Task> {
        let mut tasks = Vec::new();
        for data in buttons(&r.markup) {
            if FORWARD.iter().any(|p| data.starts_with(p)) && self.seen.insert(data.clone()) {
                tasks.push(Task::Press { data, on: r.id });
            }
        }
        if let Some(rest) = r.text.split(PHOTO_ASKED).nth(1) {
            let number = rest.split_whitespace().next().unwrap_or_default().to_string();
            if self.seen.insert(format!("photo:{number}")) {
                tasks.push(Task::Photo(number));
            }
        }
        tasks
    }

    /// Reads the messages that came since the last look: whether there is work.
    pub fn look(&mut self, fake: &Fake) -> bool {
        let replies = match fake.slot(self.member.chat) {
            Some(slot) => std::mem::take(&mut slot.inner.lock().expect("chat lock").replies),
            None => Vec::new(),
        };
        for r in &replies {
            let tasks = self.tasks_in(r);
            self.todo.extend(tasks);
        }
        !self.todo.is_empty()
    }

    /// Does the next task and waits for its answer.
    pub async fn act(&mut self, fake: &Fake) -> anyhow::Result<Sample> {
        let Some(task) = self.todo.pop_front() else {
            anyhow::bail!("chat {}: a turn with nothing to do", self.member.chat);
        };
        let (chat, bot) = (self.member.chat, self.member.bot);
        let queued = match (&task, self.member.wa.clone()) {
            (task, Some(from)) => {
                self.sent += 1;
                let content = match task {
                    Task::Press { data, .. } => world::wa_choice(data, false),
                    // The photo's media id at WhatsApp (kept as the proof).
                    Task::Photo(_) => json!({"type": "image", "image": {"mime_type": "image/jpeg",
                        "sha256": "ZmFrZS1zaGEyNTY=", "id": format!("{}{:06}", 10 + chat, self.sent)}}),
                };
                fake.whatsapp_in(chat, bot, &from, self.sent, content, self.patience).await?
            }
            (Task::Press { data, on }, None) => fake.push(bot, chat, |id| press_json(id, chat, data, *on)),
            (Task::Photo(number), None) => {
                let file = format!("AgACAgUAAxkBAAIB-door-{number}");
                fake.push(bot, chat, |id| {
                    json!({"update_id": id, "message": {
                        "message_id": id, "date": 1_764_300_000, "chat": chat_json(chat), "from": user_json(chat),
                        "photo": [{"file_id": file, "file_unique_id": format!("u{id}"), "width": 960, "height": 1280}]
                    }})
                })
            }
        };
        let needle = task.needle();
        let phase = fake.faults.phase();
        let slot = fake.slot(chat).ok_or_else(|| anyhow::anyhow!("no chat {chat} at the fake"))?;
        let deadline = tokio::time::Instant::now() + self.patience;
        let mut got = Vec::new();
        loop {
            let replies = std::mem::take(&mut slot.inner.lock().expect("chat lock").replies);
            let mut answered = false;
            let mut next = Vec::new();
            for r in &replies {
                got.push(r.text.clone());
                let tasks = self.tasks_in(r);
                if answered {
                    self.todo.extend(tasks);
                } else if r.text.contains(needle) {
                    answered = true;
                    next = tasks;
                    if matches!(task, Task::Photo(_)) {
                        self.delivered += 1;
                    }
                } else if REFUSED.iter().any(|n| r.text.contains(n)) {
                    answered = true;
                    self.refused += 1;
                    self.todo.extend(tasks);
                } else {
                    self.todo.extend(tasks);
                }
            }
            if answered {
                // The job in hand goes on before whatever came meanwhile.
                for t in next.into_iter().rev() {
                    self.todo.push_front(t);
                }
                let complete = queued.elapsed();
                let whatsapp = self.member.wa.is_some();
                return Ok(Sample { queued, phase, whatsapp, first: complete, complete });
            }
            if tokio::time::timeout_at(deadline, slot.notify.notified()).await.is_err() {
                anyhow::bail!(
                    "chat {chat}: no answer with {needle:?} to {task:?} within {:?}; got {got:?}",
                    self.patience
                );
            }
        }
    }
}

/// What one worker did in a run.
#[derive(Default)]
pub(super) struct WorkerRun {
    pub samples: Vec<Sample>,
    pub refused: usize,
    pub delivered: usize,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn message(id: i64, text: &str, data: &[&str]) -> Reply {
        let row: Vec<Value> = data.iter().map(|d| json!({"text": "b", "callback_data": d})).collect();
        Reply { id, text: text.into(), markup: json!({"inline_keyboard": [row]}) }
    }

    fn worker() -> Worker {
        Worker::new(Member { chat: STAFF_BASE, bot: 0, role: Role::Courier, wa: None }, Duration::from_secs(1))
    }

    #[test]
    fn only_forward_buttons_become_tasks_and_never_twice() {
        let mut w = worker();
        let offer = message(7, "🔔 Tugas antar baru", &["k:take:3", "k:skip:3"]);
        assert_eq!(w.tasks_in(&offer), vec![Task::Press { data: "k:take:3".into(), on: 7 }]);
        assert_eq!(w.tasks_in(&offer), vec![], "the same offer again (sent twice after a kill)");
        let order = message(8, "🛒 Pesanan baru", &["t:ok:5", "t:chg:5", "t:no:5"]);
        assert_eq!(w.tasks_in(&order), vec![Task::Press { data: "t:ok:5".into(), on: 8 }]);
        let ask = message(9, "📸 Kirim foto bukti serah terima pesanan BLB-0007 (belanjaan di depan pintu)", &[]);
        assert_eq!(w.tasks_in(&ask), vec![Task::Photo("BLB-0007".into())]);
        assert_eq!(w.tasks_in(&ask), vec![]);
    }

    #[test]
    fn each_press_waits_for_its_own_answer() {
        let needle = |data: &str| Task::Press { data: data.into(), on: 1 }.needle();
        assert_eq!(needle("t:ok:1"), "diterima. Kirim ke");
        assert_eq!(needle("k:cash:4:9000"), PHOTO_ASKED);
        assert_eq!(Task::Photo("BLB-0001".into()).needle(), "selesai diantar");
    }

    /// The fake Graph API hands a reply to the trader's or courier's chat it is for. Member 13
    /// (a courier of the fourth market, on WhatsApp) has number `6281000000013`, which read as a
    /// shopper's is shopper 1,000,000,013's, of the same market: the run's shoppers are fewer.
    #[tokio::test]
    async fn a_reply_on_whatsapp_reaches_its_trader_or_courier() {
        use axum::extract::{Path, State};
        let markets = super::super::markets().expect("markets");
        let members: Vec<Member> = (0..16)
            .map(|k| Member {
                chat: STAFF_BASE + k as i64,
                bot: k / 4,
                role: if k % 4 == 0 { Role::Trader } else { Role::Courier },
                wa: (k % 2 == 1).then(|| wa_staff(k)),
            })
            .collect();
        let fake = std::sync::Arc::new(Fake::new(&markets, 20, &members).with_whatsapp().expect("fake"));
        let send = |number: usize, to: String| {
            let body = json!({"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "🔔 Tugas"}});
            super::super::graph(
                State(std::sync::Arc::clone(&fake)),
                Path(super::super::wa_number(number)),
                axum::body::Bytes::from(body.to_string()),
            )
        };
        assert_eq!(send(3, wa_staff(13)).await.status(), 200);
        let replies = |chat: i64| fake.slot(chat).map(|s| s.inner.lock().expect("chat").replies.len());
        assert_eq!(replies(STAFF_BASE + 13), Some(1), "the courier got it");
        // From another market's number, or to a member on Telegram: refused.
        assert_eq!(send(2, wa_staff(13)).await.status(), 400);
        assert_eq!(send(3, wa_staff(14)).await.status(), 400);
        assert_eq!(replies(STAFF_BASE + 13), Some(1));
        // A shopper of the run is still theirs.
        assert_eq!(send(3, super::super::wa_user(13)).await.status(), 200);
        assert_eq!(replies(super::super::CHAT_BASE + 13), Some(1));
    }

    #[test]
    fn hourly_slots_cover_the_day_and_parse() {
        let slots = hourly_slots();
        let parsed: Vec<crate::domain::slot::DeliverySlot> =
            slots.split(',').map(|s| s.parse().expect("a slot")).collect();
        assert_eq!(parsed.len(), 24);
    }
}
