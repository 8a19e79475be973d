//! Broadcasts on Telegram: `pasar run` against the fake Bot API sends an admin's `/siaran` to
//! a thousand subscribed shoppers, each once, within the bot's and each chat's limits, and the
//! admin's progress message ends with the right counts; shoppers who blocked the bot are counted
//! unreachable, and a shopper's reply is not held up behind a broadcast. Its own test binary, so
//! that no other test's processes crowd the second it measures.

mod common;

use common::fake_telegram::{FakeTelegram, RunPasar, Running};
use std::time::Duration;

const BLIMBING: &str = "111:blimbing-token";
const DINOYO: &str = "222:dinoyo-token";
const ADMIN: i64 = 9001;
const SHOPPER: i64 = 1001;

fn start_with_limits(fake: &FakeTelegram, dir: &std::path::Path, limits: &str) -> Running {
    fake.run_pasar(dir, (BLIMBING, DINOYO), ADMIN, limits)
}

/// The market's news, as the admin types it.
const NEWS: &str = "Besok pasar tutup jam 12 untuk kerja bakti";

/// Subscribes these chats to Pasar Blimbing's news straight in the database of the running
/// `pasar run` (as if each had typed /langganan).
fn subscribe(dir: &std::path::Path, chats: impl Iterator<Item = i64>) {
    let mut conn = rusqlite::Connection::open(dir.join("pasar.db")).expect("db");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    let tx = conn.transaction().expect("tx");
    for chat in chats {
        tx.execute(
            "INSERT INTO subscriptions (market, channel, user_id, subscribed, changed_at)
             VALUES ('blimbing', 'telegram', ?1, 1, '2026-11-28T01:00:00.000Z')",
            [chat.to_string()],
        )
        .expect("subscribe");
    }
    tx.commit().expect("commit");
}

/// The admin writes `/siaran`, checks the preview's reach and presses "✅ Kirim"; returns the
/// preview message (which becomes the progress message).
fn broadcast(fake: &FakeTelegram, reach: usize) -> common::fake_telegram::SentMessage {
    // The bot is up and the database seeded before anyone subscribes.
    fake.text(BLIMBING, ADMIN, &format!("/siaran {NEWS}"));
    let (preview, _) = fake.wait_for(BLIMBING, ADMIN, "Pratinjau siaran", 0);
    assert!(preview.text.contains(&format!("Akan dikirim ke {reach} pembeli")), "{}", preview.text);
    assert!(preview.text.contains("Ketik /berhenti"), "{}", preview.text);
    let send = preview.button("Kirim").expect("send button");
    fake.press_on(BLIMBING, &preview, &send);
    preview
}

/// Waits (up to two minutes) until `count` chats other than the admin's got the news.
fn wait_for_news(fake: &FakeTelegram, count: usize) -> Vec<common::fake_telegram::SentMessage> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let news: Vec<_> =
            fake.sent(BLIMBING).into_iter().filter(|m| m.chat != ADMIN && m.text.contains(NEWS)).collect();
        if news.len() >= count {
            return news;
        }
        assert!(std::time::Instant::now() < deadline, "only {} of {count} shoppers got the news", news.len());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The most send calls the fake saw in any one second, and the shortest gap between two calls
/// to one chat.
fn busiest_second_and_closest_pair(fake: &FakeTelegram) -> (usize, Duration) {
    let times = fake.attempt_times(BLIMBING);
    let mut busiest = 0;
    let mut end = 0;
    for (start, (_, at)) in times.iter().enumerate() {
        while end < times.len() && times[end].1 < *at + Duration::from_secs(1) {
            end += 1;
        }
        busiest = busiest.max(end - start);
    }
    let mut last: std::collections::HashMap<i64, std::time::Instant> = std::collections::HashMap::new();
    let mut closest = Duration::MAX;
    for (chat, at) in times {
        if let Some(before) = last.insert(chat, at) {
            closest = closest.min(at.duration_since(before));
        }
    }
    (busiest, closest)
}

#[test]
fn a_broadcast_reaches_a_thousand_shoppers_once_within_the_limits_and_its_progress_ends_right() {
    const PER_BOT: usize = 100;
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _pasar = start_with_limits(
        &fake,
        dir.path(),
        &format!("[telegram.limits]\nper_chat_per_sec = 1\nper_bot_per_sec = {PER_BOT}\n"),
    );
    fake.text(BLIMBING, ADMIN, "/bantuan");
    fake.wait_for(BLIMBING, ADMIN, "/siaran", 0);
    let shoppers = 100_000..101_000_i64;
    subscribe(dir.path(), shoppers.clone());
    let preview = broadcast(&fake, 1000);
    let news = wait_for_news(&fake, 1000);
    // Each shopper exactly once, and the text ends with how to stop.
    let mut got: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    for m in &news {
        *got.entry(m.chat).or_default() += 1;
        assert!(m.text.ends_with("Ketik /berhenti"), "{}", m.text);
    }
    assert_eq!(got.len(), 1000);
    assert!(shoppers.clone().all(|c| got.get(&c) == Some(&1)), "someone got it twice or not at all");
    // The progress message (the preview, edited) ends with the final counts.
    let (end, _) = fake.wait_for(BLIMBING, ADMIN, "Siaran selesai", 0);
    assert_eq!(end.edit_of, Some(preview.id), "the progress is edited in place: {end:?}");
    assert!(end.text.contains("1000/1000 terkirim, 0 gagal, 0 tidak terjangkau"), "{}", end.text);
    let progress: Vec<String> =
        fake.sent_to(BLIMBING, ADMIN).into_iter().filter(|m| m.edit_of == Some(preview.id)).map(|m| m.text).collect();
    assert!(progress[0].contains("Siaran: 0/1000 terkirim"), "{progress:?}");
    assert_eq!(progress.iter().filter(|t| t.contains("Siaran selesai")).count(), 1, "{progress:?}");
    // Sending takes ten seconds at least (1,000 at 100 a second) and the progress is edited
    // every three: the admin saw it grow on the way.
    let sent: Vec<u32> =
        progress.iter().filter_map(|t| t.split(": ").nth(1)?.split('/').next()?.parse().ok()).collect();
    assert!(sent.windows(2).all(|w| w[0] <= w[1]), "the count only grows: {progress:?}");
    assert!(sent.iter().any(|n| (1..1000).contains(n)), "edited on the way: {progress:?}");
    // Never above the bot's limit in any second (as the fake saw the calls arrive), never two
    // calls to one chat within a second.
    let (busiest, closest) = busiest_second_and_closest_pair(&fake);
    assert!(busiest <= PER_BOT, "{busiest} calls in one second (limit {PER_BOT})");
    assert!(closest >= Duration::from_millis(950), "two calls to one chat {closest:?} apart");
    let conn = rusqlite::Connection::open(dir.path().join("pasar.db")).expect("db");
    let done: (String, i64, i64, i64) = conn
        .query_row("SELECT status, sent, failed, unreachable FROM broadcasts", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .expect("broadcast");
    assert_eq!(done, ("done".to_string(), 1000, 0, 0));
}

#[test]
fn shoppers_who_blocked_the_bot_are_counted_unreachable_and_an_order_reply_is_not_held_up() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _pasar =
        start_with_limits(&fake, dir.path(), "[telegram.limits]\nper_chat_per_sec = 1\nper_bot_per_sec = 30\n");
    fake.text(BLIMBING, ADMIN, "/bantuan");
    fake.wait_for(BLIMBING, ADMIN, "/siaran", 0);
    subscribe(dir.path(), 200_000..200_150_i64);
    for chat in [200_003, 200_077, 200_149] {
        fake.block(BLIMBING, chat);
    }
    broadcast(&fake, 150);
    // While the broadcast goes (five seconds at 30 a second), a shopper is answered at once.
    fake.wait_for(BLIMBING, 200_010, NEWS, 0);
    fake.text(BLIMBING, SHOPPER, "/bantuan");
    fake.wait_for(BLIMBING, SHOPPER, "Cara belanja", 0);
    let news_before = fake.sent(BLIMBING).iter().filter(|m| m.text.contains(NEWS)).count();
    assert!(news_before < 140, "the shopper waited behind the broadcast ({news_before} sent first)");
    wait_for_news(&fake, 147);
    let (end, _) = fake.wait_for(BLIMBING, ADMIN, "Siaran selesai", 0);
    assert!(end.text.contains("147/150 terkirim, 0 gagal, 3 tidak terjangkau"), "{}", end.text);
    for chat in [200_003, 200_077, 200_149] {
        assert!(fake.sent_to(BLIMBING, chat).is_empty());
    }
}
