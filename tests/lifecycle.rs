//! The order lifecycle between shoppers and traders, through the real engine: stock is reserved
//! and released, buttons are checked against who presses them, changes stay within limits, and
//! every status change is audited.

mod common;

use common::{Harness, joined};
use pasar_online::channel::{ChannelKind, UserKey};
use pasar_online::conversation::payload::{Action, ReasonCode};

const BUYER: &str = "ani";
const KASIYEM: &str = "bu-kasiyem"; // stall A-12: bawang merah
const SRI: &str = "bu-sri"; // stall A-07: kangkung

fn as_user(h: &mut Harness, id: &str) {
    h.user = UserKey { channel: ChannelKind::Console, id: id.into() };
}

fn stall_id(h: &Harness, number: &str) -> i64 {
    h.engine.catalog().stalls_in("blimbing").iter().find(|s| s.number == number).map(|s| s.id).expect("stall")
}

/// Registers both traders the way a real one does: an admin's invite, then /daftar.
fn register_traders(h: &mut Harness) {
    as_user(h, "pak-lurah");
    let now = common::morning();
    let admin = h.user.clone();
    h.engine.store().grant_admin("blimbing", &admin, now).expect("admin");
    for (stall, trader) in [("A-12", KASIYEM), ("A-07", SRI)] {
        as_user(h, "pak-lurah");
        let r = h.command(&format!("/undang {stall}"));
        let text = joined(&r);
        let code = text.split("/daftar ").nth(1).map(|s| s.trim().to_string()).expect("code in the reply");
        as_user(h, trader);
        let r = h.command(&format!("/daftar {code}"));
        assert!(joined(&r).contains("Selamat bergabung"), "{r:#?}");
    }
}

/// The shopper orders 1 kg bawang merah from A-12 and 3 ikat kangkung from A-07.
/// Kasiyem (stall A-12) opens her part of the order and picks its one line to weigh again:
/// the part and the line.
fn weigh_a12_line(h: &mut Harness) -> (i64, i64) {
    as_user(h, KASIYEM);
    let sub = sub_of(h, "A-12");
    let line = h.count(&format!("SELECT id FROM order_lines WHERE sub_order_id = {sub}"));
    h.button(&Action::TraderChange(sub).encode());
    h.button(&Action::TraderLine(line).encode());
    (sub, line)
}

fn place_two_stall_order(h: &mut Harness) {
    as_user(h, BUYER);
    place_two_stall_order_as_is(h, "Hari ini");
}

/// The same order by whoever is typing, who reads today's slot as `today`.
fn place_two_stall_order_as_is(h: &mut Harness, today: &str) {
    let bm = h
        .engine
        .catalog()
        .offers_for("blimbing", "bawang-merah")
        .iter()
        .find(|o| o.stall_id == stall_id(h, "A-12"))
        .expect("offer")
        .id;
    let kk = h
        .engine
        .catalog()
        .offers_for("blimbing", "kangkung")
        .iter()
        .find(|o| o.stall_id == stall_id(h, "A-07"))
        .expect("offer")
        .id;
    h.button(&Action::Offer(bm).encode());
    h.text("1 kg");
    h.button(&Action::Offer(kk).encode());
    h.text("3 ikat");
    let r = check_out_cod(h, today);
    assert!(joined(&r).contains("BLB-0001"), "{r:#?}");
}

/// Checkout of the cart as Ani, to a typed address, the slot read as `today`, cash on delivery;
/// the replies to "Pesan sekarang".
fn check_out_cod(h: &mut Harness, today: &str) -> Vec<pasar_online::channel::Outbound> {
    h.button("checkout");
    h.text("Ani Rahayu");
    h.text("0812-3456-7890");
    let r = h.text("Jl. Borobudur No. 12, Purwodadi");
    h.button(&common::payload(&r, today));
    h.button("pay:cod");
    h.button("note:none");
    h.button("place")
}

fn sub_of(h: &Harness, stall: &str) -> i64 {
    h.count(&format!("SELECT id FROM sub_orders WHERE stall_id = {}", stall_id(h, stall)))
}

fn stock(h: &Harness, stall: &str, commodity: &str) -> i64 {
    h.count(&format!(
        "SELECT stock FROM offers WHERE stall_id = {} AND commodity_id = '{commodity}'",
        stall_id(h, stall)
    ))
}

#[test]
fn stock_is_reserved_by_orders_and_released_by_rejection() {
    let mut h = Harness::new("blimbing");
    register_traders(&mut h);
    as_user(&mut h, KASIYEM);
    h.command("/stok bawang merah 5 kg");
    as_user(&mut h, SRI);
    h.command("/stok kangkung 10");
    place_two_stall_order(&mut h);
    assert_eq!(stock(&h, "A-12", "bawang-merah"), 4000);
    assert_eq!(stock(&h, "A-07", "kangkung"), 7);
    as_user(&mut h, KASIYEM);
    let sub = sub_of(&h, "A-12");
    h.button(&Action::TraderReject(sub).encode());
    let r = h.button(&Action::TraderReason { sub, reason: ReasonCode::Habis }.encode());
    assert!(joined(&r).contains("ditolak"), "{r:#?}");
    assert_eq!(stock(&h, "A-12", "bawang-merah"), 5000, "rejection puts the stock back");
    // The shopper cancels the rest: that stock goes back too, and the trader is told.
    as_user(&mut h, BUYER);
    let r = h.command("/batal BLB-0001");
    assert!(joined(&r).contains("dibatalkan"), "{r:#?}");
    assert_eq!(stock(&h, "A-07", "kangkung"), 10);
    assert_eq!(
        h.count("SELECT COUNT(*) FROM outbox WHERE recipient = 'bu-sri' AND message LIKE '%dibatalkan pembeli%'"),
        1
    );
}

#[test]
fn buttons_are_checked_against_who_presses_them() {
    let mut h = Harness::new("blimbing");
    register_traders(&mut h);
    place_two_stall_order(&mut h);
    let kasiyem_sub = sub_of(&h, "A-12");
    // Bu Sri presses Terima on Bu Kasiyem's part: refused, nothing changes.
    as_user(&mut h, SRI);
    let r = h.button(&Action::TraderAccept(kasiyem_sub).encode());
    assert!(joined(&r).contains("bukan untuk Anda"), "{r:#?}");
    assert_eq!(
        h.count(&format!("SELECT COUNT(*) FROM sub_orders WHERE id = {kasiyem_sub} AND status = 'awaiting_trader'")),
        1
    );
    // The shopper presses a trader's button: refused.
    as_user(&mut h, BUYER);
    let r = h.button(&Action::TraderAccept(kasiyem_sub).encode());
    assert!(joined(&r).contains("bukan untuk Anda"), "{r:#?}");
    // Bu Kasiyem accepts twice: the second press changes nothing.
    as_user(&mut h, KASIYEM);
    let r = h.button(&Action::TraderAccept(kasiyem_sub).encode());
    assert!(
        joined(&r).contains("Ani Rahayu") && joined(&r).contains("0812-3456-7890"),
        "name and phone after accepting: {r:#?}"
    );
    let events = h.count("SELECT COUNT(*) FROM order_events");
    let r = h.button(&Action::TraderAccept(kasiyem_sub).encode());
    assert!(joined(&r).contains("sudah dijawab"), "{r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM order_events"), events, "no second audit row");
    // A shopper's agreement button for a sub-order that is not theirs to agree to.
    as_user(&mut h, "tetangga");
    let r = h.button(&Action::AgreeChanges(kasiyem_sub).encode());
    assert!(joined(&r).contains("bukan untuk Anda"), "{r:#?}");
}

#[test]
fn the_trader_sees_the_area_only_until_accepting() {
    let mut h = Harness::new("blimbing");
    register_traders(&mut h);
    place_two_stall_order(&mut h);
    let msg: String = {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.query_row(
            "SELECT message FROM outbox WHERE recipient = 'bu-kasiyem' AND message LIKE '%Pesanan baru BLB%'",
            [],
            |r| r.get(0),
        )
        .expect("new order message")
    };
    assert!(msg.contains("Jl. Borobudur Purwodadi"), "{msg}");
    assert!(!msg.contains("Ani") && !msg.contains("0812") && !msg.contains("No. 12"), "no name, phone or house: {msg}");
}

#[test]
fn weighed_changes_stay_within_limits_and_need_the_shopper() {
    let mut h = Harness::new("blimbing");
    register_traders(&mut h);
    place_two_stall_order(&mut h);
    let (sub, _) = weigh_a12_line(&mut h);
    for bad in ["1,5 kg", "500 gr", "harga 50000"] {
        let r = h.text(bad);
        assert!(joined(&r).contains("di luar batas"), "{bad}: {r:#?}");
    }
    let r = h.text("1,1 kg");
    assert!(joined(&r).contains("ditimbang 1,1 kg"), "{r:#?}");
    // Terima with a changed line goes to the shopper first.
    h.button(&Action::TraderAccept(sub).encode());
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM sub_orders WHERE id = {sub} AND status = 'adjusted'")), 1);
    assert_eq!(h.count("SELECT COUNT(*) FROM orders WHERE status = 'awaiting_buyer'"), 1);
    as_user(&mut h, BUYER);
    let r = h.button(&Action::DropStall(sub).encode());
    assert!(joined(&r).contains("dihapus"), "{r:#?}");
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM sub_orders WHERE id = {sub} AND status = 'cancelled'")), 1);
    // The order goes on with the other stall; its total follows.
    assert_eq!(h.count("SELECT total FROM orders"), 9000);
    assert_eq!(h.count("SELECT COUNT(*) FROM orders WHERE status = 'awaiting_traders'"), 1);
    let actors = h.count("SELECT COUNT(DISTINCT actor) FROM order_events");
    assert!(actors >= 2, "buyer and trader both appear in the audit trail");
}

#[test]
fn an_adjusted_part_waits_for_the_shopper_not_for_a_second_terima() {
    let mut h = Harness::new("blimbing");
    register_traders(&mut h);
    place_two_stall_order(&mut h);
    let (sub, line) = weigh_a12_line(&mut h);
    h.text("1,1 kg");
    h.button(&Action::TraderDone(sub).encode());
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM sub_orders WHERE id = {sub} AND status = 'adjusted'")), 1);
    // The weighing itself is in the audit trail, by the trader.
    assert_eq!(
        h.count(&format!(
            "SELECT COUNT(*) FROM order_events WHERE sub_order_id = {sub} AND note LIKE 'line {line} bawang-merah: 1100 %' AND actor LIKE 'trader:%'"
        )),
        1
    );
    // The old Terima button on the first message must not accept for the shopper.
    let r = h.button(&Action::TraderAccept(sub).encode());
    assert!(joined(&r).contains("sudah dijawab"), "{r:#?}");
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM sub_orders WHERE id = {sub} AND status = 'adjusted'")), 1);
    assert!(!joined(&r).contains("Ani Rahayu"), "no buyer details before the shopper agrees: {r:#?}");
    // The shopper agrees: now it is accepted.
    as_user(&mut h, BUYER);
    h.button(&Action::AgreeChanges(sub).encode());
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM sub_orders WHERE id = {sub} AND status = 'accepted'")), 1);
}

#[test]
fn cancel_everything_works_when_a_stall_drops_out_after_another_accepted() {
    let mut h = Harness::new("blimbing");
    register_traders(&mut h);
    as_user(&mut h, SRI);
    h.command("/stok kangkung 10");
    place_two_stall_order(&mut h);
    as_user(&mut h, SRI);
    h.button(&Action::TraderAccept(sub_of(&h, "A-07")).encode());
    as_user(&mut h, KASIYEM);
    let sub = sub_of(&h, "A-12");
    h.button(&Action::TraderReject(sub).encode());
    h.button(&Action::TraderReason { sub, reason: ReasonCode::Habis }.encode());
    // The shopper was offered "Batalkan semua": it must do what it says.
    let offered: String = {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.query_row("SELECT message FROM outbox WHERE recipient = 'ani' ORDER BY id DESC LIMIT 1", [], |r| r.get(0))
            .expect("question to the shopper")
    };
    let cancel =
        Action::CancelOrder(pasar_online::domain::order::OrderNumber::parse("BLB-0001").expect("number")).encode();
    assert!(offered.contains(&cancel), "{offered}");
    as_user(&mut h, BUYER);
    let r = h.button(&cancel);
    let r = if joined(&r).contains("Yakin") { h.button(&common::payload(&r, "Ya")) } else { r };
    assert!(joined(&r).contains("dibatalkan"), "{r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM orders WHERE status = 'cancelled'"), 1);
    assert_eq!(stock(&h, "A-07", "kangkung"), 10, "the accepted stall's stock goes back");
    assert_eq!(
        h.count("SELECT COUNT(*) FROM outbox WHERE recipient = 'bu-sri' AND message LIKE '%dibatalkan pembeli%'"),
        1,
        "the trader who had accepted is told"
    );
    // Once the shopper has chosen to go on, an accepted stall holds again.
    let mut h = Harness::new("blimbing");
    register_traders(&mut h);
    place_two_stall_order(&mut h);
    as_user(&mut h, SRI);
    h.button(&Action::TraderAccept(sub_of(&h, "A-07")).encode());
    as_user(&mut h, KASIYEM);
    let sub = sub_of(&h, "A-12");
    h.button(&Action::TraderReject(sub).encode());
    h.button(&Action::TraderReason { sub, reason: ReasonCode::Tutup }.encode());
    as_user(&mut h, BUYER);
    h.button(&Action::AcknowledgeDrop(sub).encode());
    let r = h.command("/batal BLB-0001");
    assert!(!joined(&r).contains("sudah dibatalkan"), "{r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM orders WHERE status = 'cancelled'"), 0);
}

#[test]
fn weighing_never_creates_or_loses_stock() {
    let mut h = Harness::new("blimbing");
    register_traders(&mut h);
    as_user(&mut h, KASIYEM);
    h.command("/stok bawang merah 1 kg");
    place_two_stall_order(&mut h);
    assert_eq!(stock(&h, "A-12", "bawang-merah"), 0);
    let (_, line) = weigh_a12_line(&mut h);
    // More than the recorded stock: refused, nothing changes.
    let r = h.text("1,1 kg");
    assert!(joined(&r).contains("tinggal 0 gr"), "{r:#?}");
    assert_eq!(h.count(&format!("SELECT quantity_base FROM order_lines WHERE id = {line}")), 1000);
    assert_eq!(stock(&h, "A-12", "bawang-merah"), 0);
    // The trader records what they really have, then weighs again: taken exactly.
    h.command("/stok bawang merah 300 gr");
    h.button(&Action::TraderLine(line).encode());
    h.text("1,2 kg");
    assert_eq!(stock(&h, "A-12", "bawang-merah"), 100);
    h.button(&Action::TraderLine(line).encode());
    h.text("900 gr");
    assert_eq!(stock(&h, "A-12", "bawang-merah"), 400);
    // The shopper cancels: exactly what the line held goes back.
    as_user(&mut h, BUYER);
    let r = h.command("/batal BLB-0001");
    assert!(joined(&r).contains("dibatalkan"), "{r:#?}");
    assert_eq!(stock(&h, "A-12", "bawang-merah"), 1300, "300 recorded + the 1 kg the order held");
}

#[test]
fn messages_to_others_use_the_default_language_not_the_senders() {
    let mut h = Harness::new("blimbing");
    register_traders(&mut h);
    as_user(&mut h, BUYER);
    h.button(&Action::Language(pasar_online::text::Lang::En).encode());
    place_two_stall_order_as_is(&mut h, "Today");
    let msg: String = {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.query_row("SELECT message FROM outbox WHERE recipient = 'bu-kasiyem' ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .expect("new order message")
    };
    assert!(msg.contains("Pesanan baru"), "a trader who chose no language reads Indonesian: {msg}");
}

#[test]
fn a_trader_who_leaves_the_line_menu_can_still_shop_by_typing() {
    let mut h = Harness::new("blimbing");
    register_traders(&mut h);
    place_two_stall_order(&mut h);
    as_user(&mut h, KASIYEM);
    h.button(&Action::TraderChange(sub_of(&h, "A-12")).encode());
    let r = h.text("brambang");
    assert!(joined(&r).contains("Bawang Merah"), "typed text is a search, not an answer to Ubah: {r:#?}");
    assert!(!joined(&r).contains("belum paham"), "{r:#?}");
}

#[test]
fn two_stalls_timing_out_together_ask_the_shopper_nothing_contradictory() {
    let mut h = Harness::new("blimbing");
    register_traders(&mut h);
    place_two_stall_order(&mut h);
    let before = h.count("SELECT COUNT(*) FROM outbox WHERE recipient = 'ani'");
    // Nobody answers: reminder, admins told, then both parts cancelled in one timer pass.
    // The deadline (10 minutes), the reminder's and the admins' (5 more each).
    for _ in 0..4 {
        h.clock.advance(chrono::Duration::minutes(6));
        h.engine.run_timers().expect("timers");
    }
    assert_eq!(h.count("SELECT COUNT(*) FROM sub_orders WHERE status = 'cancelled'"), 2);
    assert_eq!(h.count("SELECT COUNT(*) FROM orders WHERE status = 'cancelled'"), 1);
    let to_buyer: Vec<String> = {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        let mut stmt = conn.prepare("SELECT message FROM outbox WHERE recipient = 'ani' ORDER BY id").expect("sql");
        stmt.query_map([], |r| r.get::<_, String>(0)).expect("rows").map(|r| r.expect("row")).collect()
    };
    let new = &to_buyer[before as usize..];
    assert!(
        !new.iter().any(|m| m.contains("Lanjutkan pesanan")),
        "no 'go on without it?' when no stall is left: {new:#?}"
    );
    assert!(new.iter().any(|m| m.contains("dibatalkan karena tidak ada lapak")), "{new:#?}");
}

#[test]
fn one_press_goes_on_without_every_stall_that_left() {
    let mut h = Harness::new("blimbing");
    register_traders(&mut h);
    place_two_stall_order(&mut h);
    // Bu Sri accepts; Bu Kasiyem never answers and is dropped by the timer.
    as_user(&mut h, SRI);
    h.button(&Action::TraderAccept(sub_of(&h, "A-07")).encode());
    // The deadline (10 minutes), the reminder's and the admins' (5 more each).
    for _ in 0..4 {
        h.clock.advance(chrono::Duration::minutes(6));
        h.engine.run_timers().expect("timers");
    }
    let dropped = sub_of(&h, "A-12");
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM sub_orders WHERE id = {dropped} AND status = 'cancelled'")), 1);
    assert_eq!(h.count("SELECT COUNT(*) FROM orders WHERE status = 'awaiting_buyer'"), 1);
    as_user(&mut h, BUYER);
    let r = h.button(&Action::AcknowledgeDrop(dropped).encode());
    assert!(joined(&r).contains("dilanjutkan"), "{r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM orders WHERE status = 'confirmed'"), 1);
}

/// "brambang 5rb": the line costs Rp 5.000 whatever the scale says. The trader weighs what the
/// money buys and sends it: the shopper is told, not asked, and pays the sum.
#[test]
fn a_line_ordered_by_money_is_weighed_without_asking_and_keeps_its_sum() {
    let mut h = Harness::new("blimbing");
    register_traders(&mut h);
    as_user(&mut h, BUYER);
    let bm = h
        .engine
        .catalog()
        .offers_for("blimbing", "bawang-merah")
        .iter()
        .find(|o| o.stall_id == stall_id(&h, "A-12"))
        .expect("offer")
        .id;
    h.button(&Action::Offer(bm).encode());
    let r = h.text("5rb");
    assert!(joined(&r).contains("Rp 5.000 (± 150 gr)"), "{r:#?}");
    let r = check_out_cod(&mut h, "Hari ini");
    assert!(joined(&r).contains("BLB-0001") && joined(&r).contains("Rp 5.000"), "{r:#?}");
    let (sub, _) = weigh_a12_line(&mut h);
    let r = h.text("160 gr");
    assert!(joined(&r).contains("Rp 5.000 (160 gr)"), "{r:#?}");
    h.button(&Action::TraderDone(sub).encode());
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM sub_orders WHERE id = {sub} AND status = 'accepted'")), 1);
    assert_eq!(h.count("SELECT total FROM orders"), 5000, "the sum typed, not 160 g at Rp 33.500");
    assert_eq!(h.count("SELECT total FROM order_lines"), 5000);
}
