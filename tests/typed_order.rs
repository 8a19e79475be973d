//! Orders typed the way they are said, through the real engine: what was understood is shown
//! line by line with its stall and price, nothing enters the cart before "add all", stalls can be
//! changed and lines removed, questions get prices, and bad input changes nothing.

mod common;

use common::{Harness, joined, payload};
use pasar_online::conversation::payload::Action;

fn cart(h: &Harness) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    let mut stmt = conn
        .prepare(
            "SELECT o.commodity_id, json_extract(c.quantity, '$.base') FROM cart_lines c JOIN offers o ON o.id = c.offer_id
             WHERE c.user_id = ?1 ORDER BY o.commodity_id",
        )
        .expect("sql");
    stmt.query_map([&h.user.id], |r| Ok((r.get(0)?, r.get(1)?))).expect("rows").map(|r| r.expect("row")).collect()
}

/// The review number the buttons of these replies carry.
fn review_of(replies: &[pasar_online::channel::Outbound]) -> u32 {
    let add = payload(replies, "Masukkan keranjang");
    add.split(':').nth(1).and_then(|r| r.parse().ok()).expect("a review number")
}

#[test]
fn a_typed_order_is_shown_line_by_line_and_goes_into_the_cart_only_on_add_all() {
    let mut h = Harness::new("blimbing");
    let first = h.text("bu, brambang sekilo, lombok rawit seprapat, tempe 2 papan, ayam 2 kwintal");
    let r = joined(&first);
    assert!(r.contains("1. Bawang Merah 1 kg — Bumbu Dapur Bu Kasiyem (lapak A-12) · Rp 33.500"), "{r}");
    assert!(r.contains("2. Cabai Rawit 250 gr — Bumbu Dapur Bu Kasiyem"), "{r}");
    assert!(r.contains("3. Tempe 2 papan — Tahu Tempe Bu Darmi"), "{r}");
    assert!(r.contains("\"ayam 2 kwintal\" (paling banyak 50 kg sekali pesan)"), "refused politely: {r}");
    assert!(cart(&h).is_empty(), "nothing before the tap");
    // The first line from the other stall that sells it.
    let lines = h.button(&payload(&first, "Ubah"));
    let stalls = h.button(&payload(&lines, "1. Bawang Merah"));
    let second = h.button(&payload(&stalls, "Sayur Bu Sri"));
    let r = joined(&second);
    assert!(r.contains("1. Bawang Merah 1 kg — Sayur Bu Sri (lapak A-07) · Rp 37.500"), "{r}");
    // Stale: the first showing's buttons. Forged: a stall of another commodity, a line that is
    // not there.
    let review = review_of(&second);
    let tempe_offer = h.engine.catalog().offers_for("blimbing", "tempe")[0].id;
    for forged in [
        payload(&first, "Masukkan keranjang"),
        Action::TypedStall { review, line: 0, offer: tempe_offer }.encode(),
        Action::TypedLine { review, line: 9 }.encode(),
    ] {
        assert!(joined(&h.button(&forged)).contains("Tombol itu sudah tidak berlaku"), "{forged}");
    }
    assert!(cart(&h).is_empty());
    let r = joined(&h.button(&payload(&second, "Masukkan keranjang")));
    assert!(r.contains("3 barang masuk keranjang"), "{r}");
    assert_eq!(
        cart(&h),
        vec![("bawang-merah".into(), 1000), ("cabai-rawit".into(), 250), ("tempe".into(), 2)],
        "exactly what was shown"
    );
    // Pressed again after: stale, nothing doubled.
    assert!(joined(&h.button(&payload(&second, "Masukkan keranjang"))).contains("Tombol itu sudah tidak berlaku"));
    assert_eq!(cart(&h)[0].1, 1000);
}

#[test]
fn lines_can_be_removed_once_and_typed_yes_adds_them() {
    let mut h = Harness::new("blimbing");
    let review = h.text("tahu 5\ntelur 1kg\nbeli kangkung 2 ikat");
    let lines = h.button(&payload(&review, "Ubah"));
    let line = h.button(&payload(&lines, "2. Telur"));
    let drop = payload(&line, "Hapus dari pesanan");
    let r = joined(&h.button(&drop));
    assert!(!r.contains("Telur") && r.contains("Kangkung"), "{r}");
    // A second tap on the same button (a double tap, an old message) removes nothing more.
    assert!(joined(&h.button(&drop)).contains("Tombol itu sudah tidak berlaku"));
    let r = joined(&h.text("ya"));
    assert!(r.contains("2 barang masuk keranjang"), "{r}");
    assert_eq!(cart(&h), vec![("kangkung".into(), 2), ("tahu-putih".into(), 5)]);
}

#[test]
fn a_line_whose_stall_stopped_selling_can_move_to_another_stall() {
    let mut h = Harness::new("blimbing");
    let review = h.text("brambang sekilo, tempe 2");
    assert!(joined(&review).contains("Bawang Merah 1 kg — Bumbu Dapur Bu Kasiyem"));
    // Bumbu Dapur Bu Kasiyem (A-12, the cheapest) is taken out of service meanwhile.
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    conn.execute("UPDATE stalls SET active = 0 WHERE number = 'A-12' AND market = 'blimbing'", []).expect("stall");
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'catalog_version'", []).expect("version");
    h.restart();
    let lines = h.button(&payload(&review, "Ubah"));
    let stalls = h.button(&payload(&lines, "1. Bawang Merah"));
    assert!(stalls.iter().flat_map(|m| &m.buttons).all(|b| !b.label.contains("Kasiyem")), "{stalls:?}");
    let moved = h.button(&payload(&stalls, "Sayur Bu Sri"));
    assert!(joined(&moved).contains("1. Bawang Merah 1 kg — Sayur Bu Sri"), "{}", joined(&moved));
    let r = joined(&h.button(&payload(&moved, "Masukkan keranjang")));
    assert!(r.contains("2 barang masuk keranjang"), "{r}");
    // Added while its stall is closed: named, not added.
    let review = h.text("tempe 1, kangkung 2");
    conn.execute("UPDATE stalls SET active = 0 WHERE number = 'A-21' AND market = 'blimbing'", []).expect("stall");
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'catalog_version'", []).expect("version");
    h.restart();
    let r = joined(&h.button(&payload(&review, "Masukkan keranjang")));
    assert!(r.contains("Tempe: lapaknya sudah tidak menjual"), "{r}");
}

#[test]
fn more_than_the_stall_has_is_not_added_and_says_why() {
    let mut h = Harness::new("blimbing");
    let offer = h.engine.catalog().offers_for("blimbing", "bawang-merah")[0].id;
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    conn.execute("UPDATE offers SET stock = 500 WHERE id = ?1", [offer]).expect("stock");
    let review = h.text("brambang 2 kilo, tempe 1");
    let r = joined(&h.button(&payload(&review, "Masukkan keranjang")));
    assert!(r.contains("1 barang masuk keranjang") && r.contains("Bawang Merah: stok tinggal 500 gr"), "{r}");
    assert_eq!(cart(&h), vec![("tempe".into(), 1)]);
}

#[test]
fn questions_get_prices_and_bad_input_changes_nothing() {
    let mut h = Harness::new("blimbing");
    let r = joined(&h.text("harga cabe berapa?"));
    assert!(r.contains("Cabai Rawit: Rp 45.000–Rp 49.000/kg di 2 lapak"), "{r}");
    let r = joined(&h.text("ada daging sapi?"));
    assert!(r.contains("Daging Sapi: Rp 128.000/kg di 1 lapak"), "{r}");
    let r = joined(&h.text("brambang piro sekilo?"));
    assert!(r.contains("Bawang Merah:") && !r.contains("Yang saya tangkap"), "a question, not an order: {r}");
    let r = joined(&h.command("/pesan"));
    assert!(r.contains("Tulis pesanan Anda setelah /pesan"), "{r}");
    let r = joined(&h.command("/pesan 🥬🥬🥬"));
    assert!(r.contains("belum ada barang yang bisa saya tangkap"), "{r}");
    let long = "tempe 1, ".repeat(40);
    let r = joined(&h.command(&format!("/pesan {long}")));
    assert!(r.contains("30. Tempe 1 papan") && r.contains("hanya bagian awalnya yang saya baca"), "{r}");
    assert!(!r.contains("31. "), "at most 30 lines: {r}");
    h.command("/batal");
    for junk in ["🥬🥬🥬", "123 456", "'; DROP TABLE orders; --", "x".repeat(10_000).as_str()] {
        let r = joined(&h.text(junk));
        assert!(!r.is_empty() && !r.contains("Yang saya tangkap"), "answered, nothing to order: {junk}: {r}");
        assert!(!r.contains("masuk keranjang"));
    }
    assert!(cart(&h).is_empty());
    assert_eq!(h.count("SELECT COUNT(*) FROM orders"), 0);
}

#[test]
fn a_typed_order_instead_of_an_amount_is_read_as_an_order() {
    let mut h = Harness::new("blimbing");
    let kk = h.engine.catalog().offers_for("blimbing", "kangkung")[0].id;
    h.button(&Action::Offer(kk).encode());
    let r = joined(&h.text("tempe 2, tahu 5"));
    assert!(r.contains("1. Tempe 2 papan") && r.contains("2. Tahu Putih 5 biji"), "{r}");
    // A plain wrong amount is still a wrong amount.
    h.button(&Action::Offer(kk).encode());
    let r = joined(&h.text("banyak"));
    assert!(!r.contains("Yang saya tangkap"), "{r}");
}
