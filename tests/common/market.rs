//! A market as the delivery tests need it: an admin, Bu Sri's stall A-07 (kangkung), couriers
//! invited and registered the way real ones are, and one-stall orders.

use super::{Harness, joined, payload};
use pasar_online::channel::{Inbound, Outbound, UserKey};
use pasar_online::conversation::payload::Action;

pub const ADMIN: &str = "pak-lurah";
pub const SRI: &str = "bu-sri"; // stall A-07: kangkung
/// Couriers as `market_with_couriers` takes them: chat and `/undang_kurir` line.
pub const BUDI: (&str, &str) = ("budi", "Budi Santoso, 0812-1111-2222, Honda Beat, N 1234 AB");
pub const SITI: (&str, &str) = ("siti", "Siti Aminah, 0813-2222-3333, Yamaha Mio, N 5678 CD");

/// Switches who is typing, on the harness's current channel.
pub fn as_user(h: &mut Harness, id: &str) {
    h.user = UserKey { channel: h.user.channel, id: id.into() };
}

/// The code at the end of an invite reply (`... /daftar CODE`).
pub fn code_in(replies: &[Outbound]) -> String {
    joined(replies).split("/daftar ").nth(1).map(|s| s.trim().to_string()).expect("code in the reply")
}

/// The admin, Bu Sri at stall A-07, and these couriers, each invited and registered.
pub fn market_with_couriers(h: &mut Harness, couriers: &[(&str, &str)]) {
    market_with_couriers_as(h, ADMIN, SRI, couriers);
}

/// The same with the admin's and the trader's own ids (a Telegram chat id, say).
pub fn market_with_couriers_as(h: &mut Harness, admin: &str, trader: &str, couriers: &[(&str, &str)]) {
    as_user(h, admin);
    let key = h.user.clone();
    h.engine.store().grant_admin("blimbing", &key, super::morning()).expect("admin");
    let code = code_in(&h.command("/undang A-07"));
    as_user(h, trader);
    assert!(joined(&h.command(&format!("/daftar {code}"))).contains("Selamat bergabung"));
    for (user, profile) in couriers {
        as_user(h, admin);
        let code = code_in(&h.command(&format!("/undang_kurir {profile}")));
        as_user(h, user);
        let r = h.command(&format!("/daftar {code}"));
        assert!(joined(&r).contains("terdaftar sebagai kurir"), "{r:#?}");
    }
}

pub fn start_shift(h: &mut Harness, courier: &str) {
    as_user(h, courier);
    let r = h.command("/mulai");
    assert!(joined(&r).contains("Shift dimulai"), "{r:#?}");
}

/// A shopper orders 3 ikat kangkung from A-07 for today's first slot, to a shared location
/// (or a typed address), cash on delivery.
pub fn place_order(h: &mut Harness, buyer: &str, location: Option<(f64, f64)>) -> String {
    place_order_for(h, buyer, location, "Hari ini")
}

/// The same for the first slot whose label contains `slot` ("Besok 29/11 07:00").
pub fn place_order_for(h: &mut Harness, buyer: &str, location: Option<(f64, f64)>, slot: &str) -> String {
    as_user(h, buyer);
    let kk = h.engine.catalog().offers_for("blimbing", "kangkung")[0].id;
    h.button(&Action::Offer(kk).encode());
    h.text("3 ikat");
    h.button("checkout");
    h.text("Ani Rahayu");
    h.text("0812-3456-7890");
    let r = match location {
        Some((lat, lon)) => h.send(Inbound::Location { lat, lon, live: false }),
        None => h.text("Jl. Borobudur No. 12, Purwodadi"),
    };
    h.button(&payload(&r, slot));
    h.button("pay:cod");
    h.button("note:none");
    let r = h.button("place");
    let text = joined(&r);
    let number = text.split("Pesanan ").nth(1).and_then(|s| s.split_whitespace().next()).expect("number");
    number.to_string()
}

pub fn order_id(h: &Harness, number: &str) -> i64 {
    h.count(&format!("SELECT id FROM orders WHERE number = '{number}'"))
}

pub fn sub_of(h: &Harness, number: &str) -> i64 {
    h.count(&format!("SELECT id FROM sub_orders WHERE order_id = {}", order_id(h, number)))
}

/// Bu Sri accepts the order and, unless told otherwise, packs it.
pub fn accept(h: &mut Harness, number: &str, pack: bool) {
    accept_as(h, SRI, number, pack);
}

pub fn accept_as(h: &mut Harness, trader: &str, number: &str, pack: bool) {
    let sub = sub_of(h, number);
    as_user(h, trader);
    h.button(&Action::TraderAccept(sub).encode());
    if pack {
        h.button(&Action::TraderPack(sub).encode());
    }
}

/// The order's newest delivery: (id, status, courier's chat).
pub fn delivery(h: &Harness, number: &str) -> (i64, String, Option<String>) {
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    conn.query_row(
        "SELECT d.id, d.status, c.user_id FROM deliveries d LEFT JOIN couriers c ON c.id = d.courier_id
         WHERE d.order_id = (SELECT id FROM orders WHERE number = ?1) ORDER BY d.id DESC LIMIT 1",
        [number],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .expect("a delivery")
}

/// An order placed for today's first slot, accepted and packed by Bu Sri: its number and its
/// delivery (offered by then, or waiting for a courier).
pub fn ready_order(h: &mut Harness, buyer: &str, location: Option<(f64, f64)>) -> (String, i64) {
    let number = place_order(h, buyer, location);
    accept(h, &number, true);
    let (d, _, _) = delivery(h, &number);
    (number, d)
}
