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
fn place_two_stall_order(h: &mut Harness) {
    as_user(h, BUYER);
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
    h.button("checkout");
    h.text("Ani Rahayu");
    h.text("0812-3456-7890");
    let r = h.text("Jl. Borobudur No. 12, Purwodadi");
    h.button(&common::payload(&r, "Hari ini"));
    h.button("pay:cod");
    h.button("note:none");
    let r = h.button("place");
    assert!(joined(&r).contains("BLB-0001"), "{r:#?}");
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
    as_user(&mut h, KASIYEM);
    let sub = sub_of(&h, "A-12");
    let line = h.count(&format!("SELECT id FROM order_lines WHERE sub_order_id = {sub}"));
    h.button(&Action::TraderChange(sub).encode());
    h.button(&Action::TraderLine(line).encode());
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
