//! Free delivery through the real engine on a temp database: who gets offered a job, offers that
//! lapse or are passed, the slot-near offer, forged and stale courier buttons, the cash and the
//! photo at the door, a failed delivery and its reassignment, live positions and the shopper's
//! timeline.

mod common;

use chrono::Duration;
use common::market::{
    ADMIN, BUDI, SITI, SRI, accept, as_user, code_in, delivery, market_with_couriers, place_order, place_order_for,
    ready_order, start_shift, sub_of,
};
use common::{Harness, joined, payload};
use pasar_online::channel::{Inbound, InboundEvent, Outbound};
use pasar_online::conversation::engine::Clock;
use pasar_online::conversation::payload::Action;
use pasar_online::domain::money::Rupiah;

/// Every message queued for a console user, oldest first.
fn messages_to(h: &Harness, user: &str) -> Vec<Outbound> {
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    let mut stmt = conn
        .prepare("SELECT message FROM outbox WHERE channel = 'console' AND recipient = ?1 ORDER BY id")
        .expect("sql");
    let rows = stmt.query_map([user], |r| r.get::<_, String>(0)).expect("query");
    rows.map(|m| serde_json::from_str(&m.expect("row")).expect("outbound")).collect()
}

fn last_to(h: &Harness, user: &str) -> Outbound {
    messages_to(h, user).pop().expect("a message")
}

/// Time passes with nobody typing: the timers run.
fn wait(h: &mut Harness, minutes: i64) {
    h.clock.advance(Duration::minutes(minutes));
    h.engine.process_pending().expect("timers");
}

#[test]
fn offers_go_to_the_fewest_jobs_then_the_longest_idle_and_pass_on_when_not_taken() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[BUDI, SITI, ("joko", "Joko Susilo, 0814-3333-4444, Honda Vario, N 9012 EF")]);
    // Shifts start in another order than registration: idle longest is not registered first.
    for c in ["joko", "budi", "siti"] {
        start_shift(&mut h, c);
        h.clock.advance(Duration::minutes(1));
    }
    let first = place_order(&mut h, "ani", None);
    accept(&mut h, &first, true);
    let (d1, status, to) = delivery(&h, &first);
    assert_eq!((status.as_str(), to.as_deref()), ("offered", Some("joko")), "idle longest");
    as_user(&mut h, "joko");
    let r = h.button(&Action::CourierTake(d1).encode());
    assert!(joined(&r).contains("Tugas ini milik Anda"), "{r:#?}");

    let second = place_order(&mut h, "dewi", None);
    accept(&mut h, &second, true);
    let (d2, status, to) = delivery(&h, &second);
    assert_eq!((status.as_str(), to.as_deref()), ("offered", Some("budi")), "Joko has a job; Budi idle longer");
    as_user(&mut h, "budi");
    h.button(&Action::CourierSkip(d2).encode());
    assert_eq!(delivery(&h, &second).2.as_deref(), Some("siti"), "passed on at once");

    // Siti lets it lapse: Joko (one job already) is all that is left.
    wait(&mut h, 4);
    assert_eq!(delivery(&h, &second).2.as_deref(), Some("siti"), "not before the offer's time is up");
    as_user(&mut h, "siti");
    let r = h.command("/tugas");
    assert!(joined(&r).contains("Ambil dalam 1 menit"), "the time left: {r:#?}");
    wait(&mut h, 1);
    assert_eq!(delivery(&h, &second).2.as_deref(), Some("joko"));
    assert!(last_to(&h, "siti").text.contains("tidak lagi untuk Anda"));
    as_user(&mut h, "siti");
    let r = h.button(&Action::CourierTake(d2).encode());
    assert!(joined(&r).contains("sudah dialihkan"), "an old offer's button: {r:#?}");
    assert_eq!(delivery(&h, &second).1, "offered", "nothing changed");

    // Joko lets it lapse too: nobody is left, and the admin is told.
    wait(&mut h, 5);
    assert_eq!(delivery(&h, &second).1, "unassigned");
    assert!(last_to(&h, ADMIN).text.contains("belum punya kurir"), "{:?}", last_to(&h, ADMIN));
    // A courier starting a shift later is offered what nobody has (if they did not pass on it).
    as_user(&mut h, ADMIN);
    let r = h.command("/undang_kurir Rina Wati, 0815-4444-5555, Suzuki Nex, N 3456 GH");
    let code = code_in(&r);
    as_user(&mut h, "rina");
    h.command(&format!("/daftar {code}"));
    start_shift(&mut h, "rina");
    assert_eq!(delivery(&h, &second), (d2, "offered".into(), Some("rina".into())));
    // Ending the shift passes the offer on (nobody left: unassigned again).
    as_user(&mut h, "rina");
    let r = h.command("/selesai");
    assert!(joined(&r).contains("Shift selesai"), "{r:#?}");
    assert_eq!(delivery(&h, &second).1, "unassigned");
    // Created, offered to Budi, Siti, Joko, unassigned, offered to Rina, unassigned.
    let audit = h.count(&format!("SELECT COUNT(*) FROM delivery_events WHERE delivery_id = {d2}"));
    assert_eq!(audit, 7, "every offer and pass is audited");
}

#[test]
fn deliveries_nobody_could_take_are_offered_when_a_courier_is_free() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[BUDI]);
    // Nobody on shift: both orders wait, and the admin hears of each once.
    let first = place_order(&mut h, "ani", None);
    accept(&mut h, &first, true);
    let second = place_order(&mut h, "dewi", None);
    accept(&mut h, &second, true);
    assert_eq!(delivery(&h, &first).1, "unassigned");
    assert_eq!(delivery(&h, &second).1, "unassigned");
    let alerts = |h: &Harness| messages_to(h, ADMIN).iter().filter(|m| m.text.contains("belum punya kurir")).count();
    assert_eq!(alerts(&h), 2);
    // Budi starts: both are offered to him.
    start_shift(&mut h, "budi");
    assert_eq!(delivery(&h, &first).2.as_deref(), Some("budi"));
    assert_eq!(delivery(&h, &second).2.as_deref(), Some("budi"));
    // He passes on the second; with nobody else it waits again, without a second alert...
    let (d2, _, _) = delivery(&h, &second);
    as_user(&mut h, "budi");
    h.button(&Action::CourierSkip(d2).encode());
    assert_eq!(delivery(&h, &second).1, "unassigned");
    assert_eq!(alerts(&h), 3, "the admin hears that nobody took it");
    // ...and Siti, new on shift, gets it.
    as_user(&mut h, ADMIN);
    let code = code_in(&h.command("/undang_kurir Siti Aminah, 0813-2222-3333, Yamaha Mio, N 5678 CD"));
    as_user(&mut h, "siti");
    h.command(&format!("/daftar {code}"));
    start_shift(&mut h, "siti");
    assert_eq!(delivery(&h, &second).2.as_deref(), Some("siti"));
}

#[test]
fn an_order_is_offered_when_its_slot_is_near_even_if_a_stall_is_still_packing() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[BUDI]);
    start_shift(&mut h, "budi");
    // Placed at 07:00 for the 09:00-11:00 slot; accepted, not packed.
    let number = place_order(&mut h, "ani", None);
    accept(&mut h, &number, false);
    assert_eq!(h.count("SELECT COUNT(*) FROM deliveries"), 0);
    wait(&mut h, 89); // 08:29
    assert_eq!(h.count("SELECT COUNT(*) FROM deliveries"), 0, "not yet: the lead time is 30 minutes");
    wait(&mut h, 1); // 08:30
    let (d, status, to) = delivery(&h, &number);
    assert_eq!((status.as_str(), to.as_deref()), ("offered", Some("budi")));
    let offer = last_to(&h, "budi");
    assert!(offer.text.contains("masih dikemas"), "{}", offer.text);

    as_user(&mut h, "budi");
    h.button(&Action::CourierTake(d).encode());
    let sub = sub_of(&h, &number);
    let r = h.button(&Action::CourierPicked { delivery: d, sub }.encode());
    assert!(joined(&r).contains("belum selesai mengemas"), "{r:#?}");
    let r = h.button(&Action::CourierDepart(d).encode());
    assert!(joined(&r).contains("belum dijemput"), "{r:#?}");
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM sub_orders WHERE id = {sub} AND status = 'accepted'")), 1);

    // The trader packs: the courier holding the job hears it, and a second timer pass does
    // not make a second delivery.
    as_user(&mut h, SRI);
    h.button(&Action::TraderPack(sub).encode());
    assert!(last_to(&h, "budi").text.contains("Semua lapak sudah selesai mengemas"));
    wait(&mut h, 1);
    assert_eq!(h.count("SELECT COUNT(*) FROM deliveries"), 1);
    as_user(&mut h, "budi");
    let r = h.button(&Action::CourierPicked { delivery: d, sub }.encode());
    assert!(joined(&r).contains("sudah dijemput"), "{r:#?}");
    let r = h.button(&Action::CourierDepart(d).encode());
    assert!(joined(&r).contains("Hati-hati di jalan"), "{r:#?}");
    assert_eq!(
        h.count(&format!("SELECT COUNT(*) FROM orders WHERE number = '{number}' AND status = 'on_delivery'")),
        1
    );
}

#[test]
fn forged_and_stale_courier_buttons_change_nothing() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[BUDI, SITI]);
    start_shift(&mut h, "budi");
    let (number, d) = ready_order(&mut h, "ani", None);
    let sub = sub_of(&h, &number);
    let snapshot = |h: &Harness| {
        (
            delivery(h, &number),
            h.count(&format!("SELECT COUNT(*) FROM sub_orders WHERE id = {sub} AND status = 'packed'")),
            h.count("SELECT COUNT(*) FROM delivery_events"),
        )
    };
    let before = snapshot(&h);
    // The shopper, another courier, made-up ids, and steps out of order.
    as_user(&mut h, "ani");
    assert!(joined(&h.button(&Action::CourierTake(d).encode())).contains("Tombol itu sudah tidak berlaku"));
    as_user(&mut h, "siti");
    assert!(joined(&h.button(&Action::CourierTake(d).encode())).contains("bukan untuk Anda"));
    assert!(joined(&h.button(&Action::CourierTake(d + 1000).encode())).contains("bukan untuk Anda"));
    as_user(&mut h, "budi");
    for forged in [
        Action::CourierPicked { delivery: d, sub }.encode(),
        Action::CourierDepart(d).encode(),
        Action::CourierDelivered(d).encode(),
        Action::CourierCash { delivery: d, amount: Rupiah(9_000) }.encode(),
        Action::CourierFailReason { delivery: d, reason: pasar_online::domain::delivery::FailReason::Refused }.encode(),
    ] {
        let r = h.button(&forged);
        assert!(joined(&r).contains("sudah dilakukan atau sudah lewat"), "{forged}: {r:#?}");
    }
    assert!(joined(&h.button("k:take:abc")).contains("Tombol itu sudah tidak berlaku"));
    assert_eq!(snapshot(&h), before);
    // A photo nobody asked for is not proof of anything (it is read as shopping).
    let r = h.send(Inbound::Image { reference: "random".into(), caption: None });
    assert!(joined(&r).contains("belum paham"), "{r:#?}");
    assert_eq!(snapshot(&h), before);
}

#[test]
fn the_photo_at_the_door_is_kept_and_survives_a_restart_while_awaited() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[BUDI]);
    start_shift(&mut h, "budi");
    let number = place_order(&mut h, "ani", Some((-7.9290, 112.6520)));
    accept(&mut h, &number, true);
    let (d, _, _) = delivery(&h, &number);
    let sub = sub_of(&h, &number);
    as_user(&mut h, "budi");
    h.button(&Action::CourierTake(d).encode());
    h.button(&Action::CourierPicked { delivery: d, sub }.encode());
    // A live location while collecting, then off to the shopper.
    let r = h.send(Inbound::Location { lat: -7.9345, lon: 112.6460, live: true });
    assert!(r.is_empty(), "live updates are kept silently: {r:#?}");
    h.button(&Action::CourierDepart(d).encode());
    let pushed = last_to(&h, "ani");
    assert!(pushed.text.contains("menit lagi"), "an estimate in minutes from a shared location: {}", pushed.text);

    h.clock.advance(Duration::minutes(4));
    as_user(&mut h, "ani");
    let r = h.command(&format!("/status {number}"));
    let status = joined(&r);
    assert!(status.contains("Budi Santoso · Honda Beat N 1234 AB"), "{status}");
    assert!(status.contains("wa.me/6281211112222"), "{status}");
    assert!(status.contains("diperbarui 4 menit lalu"), "{status}");
    assert!(status.contains("Dalam perjalanan"), "{status}");
    // Someone else's order is not shown.
    as_user(&mut h, "dewi");
    assert!(joined(&h.command(&format!("/status {number}"))).contains("tidak ditemukan"));

    as_user(&mut h, "budi");
    let r = h.button(&Action::CourierDelivered(d).encode());
    assert!(joined(&r).contains("tagihannya Rp 9.000"), "paid at the door: the cash first: {r:#?}");
    let r = h.button(&payload(&r, "Diterima pas Rp 9.000"));
    assert!(joined(&r).contains("Kirim foto bukti"), "{r:#?}");
    h.restart();
    let r = h.text("sudah mas");
    assert!(joined(&r).contains("Yang dibutuhkan fotonya"), "still waiting after a restart: {r:#?}");
    let r = h.send(Inbound::Image { reference: "AgACAgUAAxk-proof".into(), caption: None });
    assert!(joined(&r).contains("selesai diantar"), "{r:#?}");
    assert_eq!(ledger(&h, &number), vec![payment_row(9_000, d)], "the cash counted before the restart");
    assert_eq!(
        h.count(&format!(
            "SELECT COUNT(*) FROM deliveries WHERE id = {d} AND status = 'delivered' AND proof = 'AgACAgUAAxk-proof'"
        )),
        1
    );
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM orders WHERE number = '{number}' AND status = 'delivered'")), 1);
    assert!(messages_to(&h, "ani").iter().any(|m| m.text.contains("sudah diterima")));
    assert!(last_to(&h, "ani").text.contains("Beri bintang"), "then the ratings are asked for");
    // The photo went into the delivery, not into the shopper's conversation.
    let r = h.text("bayam");
    assert!(joined(&r).contains("Bayam"), "the courier can shop again: {r:#?}");
}

#[test]
fn a_failed_delivery_tells_the_shopper_and_admin_and_can_be_assigned_again() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[BUDI, SITI]);
    start_shift(&mut h, "budi");
    let number = place_order(&mut h, "ani", None);
    as_user(&mut h, ADMIN);
    let r = h.command(&format!("/tugaskan {number} 1"));
    assert!(joined(&r).contains("belum bisa ditugaskan"), "{r:#?}");
    accept(&mut h, &number, true);
    let (d, _, _) = delivery(&h, &number);
    let sub = sub_of(&h, &number);
    as_user(&mut h, "budi");
    h.button(&Action::CourierTake(d).encode());
    h.button(&Action::CourierPicked { delivery: d, sub }.encode());
    h.button(&Action::CourierDepart(d).encode());
    let r = h.button(&Action::CourierFail(d).encode());
    let reason = payload(&r, "Alamat salah");
    let r = h.button(&reason);
    assert!(joined(&r).contains("gagal diantar (alamat salah"), "{r:#?}");
    assert_eq!(delivery(&h, &number).1, "failed");
    assert_eq!(
        h.count(&format!("SELECT COUNT(*) FROM orders WHERE number = '{number}' AND status = 'ready_for_pickup'")),
        1,
        "the goods go back to the market"
    );
    assert!(last_to(&h, "ani").text.contains("tidak bisa menyerahkan"));
    assert!(last_to(&h, ADMIN).text.contains("gagal diantar oleh Budi Santoso"));

    as_user(&mut h, ADMIN);
    assert!(joined(&h.command(&format!("/tugaskan {number}"))).contains("Tulis: /tugaskan"));
    assert!(joined(&h.command(&format!("/tugaskan {number} nobody"))).contains("tidak ditemukan"));
    let r = h.command(&format!("/tugaskan {number} siti"));
    assert!(joined(&r).contains("ditugaskan ke Siti Aminah"), "{r:#?}");
    let (d2, status, to) = delivery(&h, &number);
    assert_ne!(d2, d, "a new attempt, the failed one kept");
    assert_eq!((status.as_str(), to.as_deref()), ("assigned", Some("siti")));
    assert!(joined(&h.command(&format!("/tugaskan {number} budi"))).contains("sedang dipegang kurir Siti Aminah"));
    let r = h.command("/kurir");
    assert!(joined(&r).contains("2. Siti Aminah · Yamaha Mio N 5678 CD · ⚪ libur · 1 tugas"), "{r:#?}");
    // The timeline shows both attempts.
    as_user(&mut h, "ani");
    let timeline = joined(
        &h.button(&Action::Track(pasar_online::domain::order::OrderNumber::parse(&number).expect("n")).encode()),
    );
    assert!(timeline.contains("Gagal diantar"), "{timeline}");
    assert!(timeline.contains("Kurir Siti Aminah ditugaskan"), "{timeline}");
}

#[test]
fn ratings_come_after_delivery_once_each_from_the_shopper_only() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[BUDI]);
    start_shift(&mut h, "budi");
    let number = place_order(&mut h, "ani", None);
    let order = h.count(&format!("SELECT id FROM orders WHERE number = '{number}'"));
    let sub = sub_of(&h, &number);
    as_user(&mut h, "ani");
    let r = h.button(&Action::Rate { order, sub: Some(sub), stars: 5 }.encode());
    assert!(joined(&r).contains("setelah diterima"), "not before delivery: {r:#?}");
    accept(&mut h, &number, true);
    let (d, _, _) = delivery(&h, &number);
    as_user(&mut h, "budi");
    h.button(&Action::CourierTake(d).encode());
    h.button(&Action::CourierPicked { delivery: d, sub }.encode());
    h.button(&Action::CourierDepart(d).encode());
    h.button(&Action::CourierDelivered(d).encode());
    h.button(&Action::CourierCash { delivery: d, amount: Rupiah(9_000) }.encode());
    h.send(Inbound::Image { reference: "door".into(), caption: None });
    let ask = last_to(&h, "ani");
    assert!(ask.text.contains("kurir Budi Santoso"), "{}", ask.text);
    let five = payload(std::slice::from_ref(&ask), "⭐⭐⭐⭐⭐");

    as_user(&mut h, "dewi");
    assert!(joined(&h.button(&five)).contains("Tombol itu sudah tidak berlaku"), "not her order");
    as_user(&mut h, "ani");
    let r = h.button(&five);
    assert!(joined(&r).contains("Bagaimana belanjaan dari Sayur Bu Sri"), "{r:#?}");
    assert!(joined(&h.button(&five)).contains("sudah Anda nilai"), "once each");
    assert!(joined(&h.button("rate:1:k:9")).contains("Tombol itu sudah tidak berlaku"));
    let r = h.button(&Action::Rate { order, sub: Some(sub), stars: 3 }.encode());
    assert!(joined(&r).contains("Ada pesan atau saran"), "{r:#?}");
    let r = h.text(&"bagus ".repeat(100));
    assert!(joined(&r).contains("terlalu panjang"), "{r:#?}");
    let r = h.text("Kangkungnya agak layu");
    assert!(joined(&r).contains("Terima kasih"), "{r:#?}");
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    let mut stmt = conn.prepare("SELECT target, stars, comment FROM ratings ORDER BY target").expect("sql");
    let rows: Vec<(String, i64, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    let comment = Some("Kangkungnya agak layu".to_string());
    assert_eq!(rows, vec![("courier".into(), 5, comment.clone()), ("stall".into(), 3, comment)]);
    as_user(&mut h, ADMIN);
    assert!(joined(&h.command("/kurir")).contains("⭐ 5,0 (1 penilaian)"));
}

#[test]
fn an_order_packed_long_before_its_slot_waits_and_a_shoppers_live_location_gets_no_replies() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[BUDI]);
    start_shift(&mut h, "budi");
    // Tomorrow 07:00-09:00, packed today at 07:00: not a courier's job yet.
    let number = place_order_for(&mut h, "ani", None, "Besok 29/11 07:00");
    accept(&mut h, &number, true);
    assert_eq!(h.count("SELECT COUNT(*) FROM deliveries"), 0);
    // The shopper shares a live location: its updates are not answered one by one.
    as_user(&mut h, "ani");
    let r = h.send(Inbound::Location { lat: -7.93, lon: 112.65, live: true });
    assert!(r.is_empty(), "{r:#?}");
    wait(&mut h, 23 * 60 + 29); // tomorrow 06:29
    assert_eq!(h.count("SELECT COUNT(*) FROM deliveries"), 0);
    wait(&mut h, 1); // 06:30, half an hour before the slot
    assert_eq!(delivery(&h, &number).2.as_deref(), Some("budi"));
}

#[test]
fn a_delivery_still_open_when_its_slot_ends_is_reported_once() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[BUDI]);
    start_shift(&mut h, "budi");
    // 07:00, for today's 09:00-11:00 slot.
    let (number, d) = ready_order(&mut h, "ani", None);
    as_user(&mut h, "budi");
    h.button(&Action::CourierTake(d).encode());
    let late =
        |h: &Harness, user: &str, needle: &str| messages_to(h, user).iter().filter(|m| m.text.contains(needle)).count();
    wait(&mut h, 3 * 60 + 59); // 10:59
    assert_eq!(late(&h, ADMIN, "sudah lewat"), 0);
    wait(&mut h, 1); // 11:00
    assert_eq!(late(&h, ADMIN, "Dipegang: Budi Santoso"), 1, "{:?}", last_to(&h, ADMIN));
    assert_eq!(late(&h, "ani", "jam antarnya (09:00-11:00) sudah lewat"), 1);
    wait(&mut h, 30);
    assert_eq!(late(&h, ADMIN, "sudah lewat"), 1, "once");
    assert_eq!(delivery(&h, &number).1, "assigned", "nothing moved: a late delivery goes on");
}

/// A ledger row as the tests compare it: kind, method, amount, actor, reference.
type LedgerRow = (String, String, i64, String, Option<String>);

/// The order's ledger, oldest first.
fn ledger(h: &Harness, number: &str) -> Vec<LedgerRow> {
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    let mut stmt = conn
        .prepare(
            "SELECT kind, method, amount, actor, reference FROM ledger
             WHERE order_id = (SELECT id FROM orders WHERE number = ?1) ORDER BY id",
        )
        .expect("sql");
    stmt.query_map([number], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

/// The cash Budi collected at the door of delivery `d`.
fn payment_row(amount: i64, d: i64) -> LedgerRow {
    ("payment".into(), "cod".into(), amount, "courier:console:budi".into(), Some(format!("cod:{d}")))
}

/// Budi (on shift) and Siti (registered, off shift); Ani's order of 3 ikat kangkung (Rp 9.000,
/// paid at the door) collected by Budi and on the road. Budi is typing.
fn on_the_road(h: &mut Harness) -> (String, i64) {
    market_with_couriers(h, &[BUDI, SITI]);
    start_shift(h, "budi");
    let (number, d) = ready_order(h, "ani", None);
    let sub = sub_of(h, &number);
    as_user(h, "budi");
    h.button(&Action::CourierTake(d).encode());
    h.button(&Action::CourierPicked { delivery: d, sub }.encode());
    let r = h.button(&Action::CourierDepart(d).encode());
    assert!(joined(&r).contains("tagih Rp 9.000 tunai"), "{r:#?}");
    (number, d)
}

fn photo(h: &mut Harness, reference: &str) -> Vec<Outbound> {
    h.send(Inbound::Image { reference: reference.into(), caption: None })
}

#[test]
fn the_cash_at_the_door_is_confirmed_and_recorded_once_with_the_delivery() {
    let mut h = Harness::new("blimbing");
    let (number, d) = on_the_road(&mut h);
    let r = h.button(&Action::CourierDelivered(d).encode());
    assert!(joined(&r).contains("dibayar di tempat: tagihannya Rp 9.000"), "{r:#?}");
    assert!(r.iter().all(|m| m.expects_text), "a typed amount is an answer, not a menu choice");
    let exact = payload(&r, "Diterima pas Rp 9.000");
    assert_eq!(exact, Action::CourierCash { delivery: d, amount: Rupiah(9_000) }.encode());
    // Pressed twice (a double tap, or the button of an older message): the photo is asked each
    // time, and nothing is written before it comes.
    for _ in 0..2 {
        let r = joined(&h.button(&exact));
        assert!(r.contains("Uang dari pembeli: Rp 9.000"), "{r}");
        assert!(r.contains("Kirim foto bukti"), "{r}");
    }
    assert_eq!(ledger(&h, &number), vec![], "recorded with the delivery, not before");
    // The photo, then the same update delivered again by the platform, then the cash button and
    // another photo after the delivery: one row.
    let event = InboundEvent {
        source_id: "test:budi:door-photo".into(),
        market: h.market.clone(),
        user: h.user.clone(),
        display_name: None,
        received_at: h.clock.now(),
        inbound: Inbound::Image { reference: "door".into(), caption: None },
        pressed_on: None,
    };
    let r = h.deliver_event(event.clone());
    assert!(joined(&r).contains("selesai diantar, dan Rp 9.000 tunai dari pembeli sudah dicatat"), "{r:#?}");
    assert!(h.deliver_event(event).is_empty(), "a redelivered update is handled once");
    let r = h.button(&exact);
    assert!(joined(&r).contains("sudah dilakukan atau sudah lewat"), "{r:#?}");
    photo(&mut h, "door-again");
    assert_eq!(ledger(&h, &number), vec![payment_row(9_000, d)]);
    assert_eq!(delivery(&h, &number).1, "delivered");
    // The exact amount: nobody hears of a difference.
    assert!(!messages_to(&h, ADMIN).iter().any(|m| m.text.contains("kurang")));
    assert!(!messages_to(&h, "ani").iter().any(|m| m.text.contains("dikembalikan")));
    // The shopper sees it paid; the office sees it under bayar di tempat, with who has the cash.
    as_user(&mut h, "ani");
    let status = joined(&h.command(&format!("/status {number}")));
    assert!(status.contains("💰 Dibayar: Rp 9.000"), "{status}");
    as_user(&mut h, ADMIN);
    let report = joined(&h.command("/pembayaran"));
    assert!(report.contains("• 💵 Bayar di tempat: 1×, jumlah Rp 9.000"), "{report}");
    assert!(report.contains(&format!("{number} · 💵 Bayar di tempat, diterima Budi Santoso · Rp 9.000")), "{report}");
    assert!(report.contains("Total masuk: Rp 9.000"), "{report}");
    let r = joined(&h.command(&format!("/lunas {number}")));
    assert!(r.contains("dibayar di tempat"), "{r}");
    assert_eq!(ledger(&h, &number).len(), 1);
}

#[test]
fn a_shortfall_is_confirmed_before_it_is_recorded_and_the_admins_hear_who_collected_it() {
    let mut h = Harness::new("blimbing");
    let (number, d) = on_the_road(&mut h);
    h.button(&Action::CourierDelivered(d).encode());
    // Not an amount, or the photo first: the cash is asked again.
    let r = joined(&h.text("sudah"));
    assert!(r.contains("Catat dulu uang dari pembeli"), "{r}");
    let r = joined(&photo(&mut h, "too-early"));
    assert!(r.contains("Catat dulu uang dari pembeli"), "{r}");
    // A slip of the thumb is shown back, not recorded; typed again.
    let r = joined(&h.text("80000"));
    assert!(r.contains("lebih Rp 71.000 dari tagihan Rp 9.000"), "{r}");
    let r = h.text("8rb");
    assert!(joined(&r).contains("kurang Rp 1.000 dari tagihan Rp 9.000"), "{r:#?}");
    assert_eq!(ledger(&h, &number), vec![]);
    let r = h.button(&payload(&r, "Ya, diterima Rp 8.000"));
    assert!(joined(&r).contains("Kirim foto bukti"), "{r:#?}");
    let r = joined(&photo(&mut h, "door"));
    assert!(r.contains("Rp 8.000 tunai dari pembeli sudah dicatat"), "{r}");
    assert_eq!(ledger(&h, &number), vec![payment_row(8_000, d)], "the money that came; nothing owed back");
    let alerts: Vec<String> =
        messages_to(&h, ADMIN).into_iter().map(|m| m.text).filter(|t| t.contains("kurang")).collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].contains(
            "kurir Budi Santoso menerima Rp 8.000 dari pembeli Ani Rahayu (0812-3456-7890), kurang Rp 1.000 dari tagihan Rp 9.000"
        ),
        "{}",
        alerts[0]
    );
    assert!(!messages_to(&h, "ani").iter().any(|m| m.text.contains("dikembalikan")));
    as_user(&mut h, "ani");
    assert!(joined(&h.command(&format!("/status {number}"))).contains("💰 Dibayar: Rp 8.000"));
}

#[test]
fn more_cash_than_the_bill_is_owed_back_to_the_shopper() {
    let mut h = Harness::new("blimbing");
    let (number, d) = on_the_road(&mut h);
    h.button(&Action::CourierDelivered(d).encode());
    let r = h.text("Rp 10.000");
    assert!(joined(&r).contains("lebih Rp 1.000 dari tagihan Rp 9.000"), "{r:#?}");
    h.button(&payload(&r, "Ya, diterima Rp 10.000"));
    photo(&mut h, "door");
    let owed: LedgerRow = ("refund_owed".into(), "cod".into(), 1_000, "courier:console:budi".into(), None);
    assert_eq!(ledger(&h, &number), vec![payment_row(10_000, d), owed], "paid minus owed is the bill");
    assert!(
        messages_to(&h, "ani")
            .iter()
            .any(|m| m.text.contains(&format!("Rp 1.000 dari pembayaran pesanan {number} akan dikembalikan"))),
        "the shopper hears it"
    );
    let told = last_to(&h, ADMIN).text;
    assert!(told.contains("Rp 1.000 harus dikembalikan ke pembeli Ani Rahayu"), "{told}");
    assert!(told.contains("lebih dari tagihan Rp 9.000"), "{told}");
    // Given back and recorded like any refund.
    as_user(&mut h, ADMIN);
    let r = joined(&h.command(&format!("/refund {number} 1000 kembalian")));
    assert!(r.contains("Masih harus dikembalikan: Rp 0"), "{r}");
    as_user(&mut h, "ani");
    let status = joined(&h.command(&format!("/status {number}")));
    assert!(status.contains("💰 Dibayar: Rp 9.000"), "{status}");
}

#[test]
fn a_cash_press_by_anyone_but_the_delivery_s_courier_records_nothing() {
    let mut h = Harness::new("blimbing");
    let (number, d) = on_the_road(&mut h);
    let forged = Action::CourierCash { delivery: d, amount: Rupiah(9_000) }.encode();
    as_user(&mut h, "siti");
    let r = joined(&h.button(&forged));
    assert!(r.contains("bukan untuk Anda"), "{r}");
    let r = joined(&photo(&mut h, "not-hers"));
    assert!(!r.contains("selesai diantar"), "{r}");
    as_user(&mut h, "ani");
    let r = joined(&h.button(&forged));
    assert!(r.contains("Tombol itu sudah tidak berlaku"), "{r}");
    as_user(&mut h, "budi");
    let r = joined(&h.button(&Action::CourierCash { delivery: d + 1000, amount: Rupiah(9_000) }.encode()));
    assert!(r.contains("bukan untuk Anda"), "{r}");
    assert!(joined(&h.button("k:cash:1:0")).contains("Tombol itu sudah tidak berlaku"));
    // Budi's photo is not awaited after those presses either: it is shopping.
    let r = joined(&photo(&mut h, "stray"));
    assert!(!r.contains("selesai diantar"), "{r}");
    assert_eq!(ledger(&h, &number), vec![]);
    assert_eq!(delivery(&h, &number).1, "on_the_way");
}

#[test]
fn a_restart_while_the_cash_is_asked_loses_nothing() {
    let mut h = Harness::new("blimbing");
    let (number, d) = on_the_road(&mut h);
    // A courier waiting for the photo when cash was not yet asked (a state saved by an older
    // version): the photo brings the cash question first.
    {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        let state = format!(r#"{{"ReceiveProof":{{"delivery":{d}}}}}"#);
        let n = conn
            .execute("UPDATE conversations SET state = ?1 WHERE user_id = 'budi' AND role = 'courier'", [state])
            .expect("state");
        assert_eq!(n, 1);
    }
    h.restart();
    let r = joined(&photo(&mut h, "door"));
    assert!(r.contains("Catat dulu uang dari pembeli"), "{r}");
    assert_eq!(delivery(&h, &number).1, "on_the_way");
    // Waiting for the amount across a restart; "batal" leaves it with nothing recorded.
    h.restart();
    let r = joined(&h.text("batal"));
    assert!(r.contains("pengantaran dan uangnya belum dicatat"), "{r}");
    let r = h.command("/tugas");
    let r = h.button(&payload(&r, "Terkirim"));
    assert!(joined(&r).contains("tagihannya Rp 9.000"), "asked again: {r:#?}");
    h.restart();
    let r = joined(&h.text("9.000"));
    assert!(r.contains("Uang dari pembeli: Rp 9.000"), "the bill typed is taken at once: {r}");
    h.restart();
    let r = joined(&photo(&mut h, "door"));
    assert!(r.contains("selesai diantar"), "{r}");
    assert_eq!(ledger(&h, &number), vec![payment_row(9_000, d)]);
}

#[test]
fn a_courier_sees_the_shopper_s_phone_and_address_only_after_taking_the_job() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[BUDI]);
    start_shift(&mut h, "budi");
    let (_, d) = ready_order(&mut h, "ani", None);
    let offer = last_to(&h, "budi");
    assert!(offer.text.contains("Antar ke daerah: 📍 Jl. Borobudur Purwodadi"), "{}", offer.text);
    assert!(!offer.text.contains("0812") && !offer.text.contains("Ani Rahayu"), "{}", offer.text);
    as_user(&mut h, "budi");
    let taken = joined(&h.button(&Action::CourierTake(d).encode()));
    assert!(taken.contains("Ani Rahayu · 📞 0812-3456-7890") && taken.contains("Jl. Borobudur No. 12"), "{taken}");
    // A shared location: only how far it is, until taken.
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[BUDI]);
    start_shift(&mut h, "budi");
    ready_order(&mut h, "rina", Some((-7.9290, 112.6520)));
    let offer = last_to(&h, "budi");
    assert!(offer.text.contains("± 1,0 km dari pasar"), "{}", offer.text);
    assert!(!offer.text.contains("maps.google") && !offer.text.contains("0812"), "{}", offer.text);
}
