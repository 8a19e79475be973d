//! Every buyer state's answer to good and bad input, through the real engine on a temp SQLite
//! file: bad input gets a reply and changes nothing; forged and stale buttons are refused.

mod common;

use chrono::Duration;
use common::{Harness, joined, payload};
use pasar_online::channel::{ChannelKind, Inbound, UserKey};
use pasar_online::conversation::buyer::BuyerState;
use pasar_online::conversation::payload::Action;

/// The first offer of a commodity in the harness's market.
fn offer(h: &Harness, commodity: &str) -> i64 {
    h.engine.catalog().offers_for(&h.market, commodity).first().map(|o| o.id).expect("offer")
}

fn add(h: &mut Harness, commodity: &str, qty: &str) {
    let id = offer(h, commodity);
    h.button(&Action::Offer(id).encode());
    let r = h.text(qty);
    assert!(joined(&r).contains('✅'), "adding {qty} {commodity}: {r:#?}");
}

/// Fills the cart from two stalls and walks checkout up to the summary.
fn checkout_to_summary(h: &mut Harness) -> Vec<pasar_online::channel::Outbound> {
    add(h, "bawang-merah", "1/2 kg");
    add(h, "kangkung", "2");
    h.button("checkout");
    h.text("Sri Wahyuni");
    h.text("0812-3456-7890");
    // A street in a kelurahan the market delivers to.
    let kelurahan = h.engine.catalog().market(&h.market).expect("market").kelurahan[0].clone();
    let r = h.text(&format!("Jl. Borobudur No. 12, {kelurahan}"));
    let slot = payload(&r, "Hari ini");
    h.button(&slot);
    h.button("pay:qris");
    h.button("note:none")
}

fn cart_lines(h: &Harness) -> i64 {
    h.count("SELECT COUNT(*) FROM cart_lines")
}

#[test]
fn start_greets_with_the_market_and_menu() {
    let mut h = Harness::new("dinoyo");
    let r = h.command("/start");
    let text = joined(&r);
    assert!(text.contains("Pasar Dinoyo") && text.contains("GRATIS"), "{text}");
    let labels: Vec<&str> = r.iter().flat_map(|m| m.buttons.iter()).map(|b| b.label.as_str()).collect();
    for want in ["Belanja", "Cari", "Keranjang", "Pesanan saya", "Bantuan", "Bahasa"] {
        assert!(labels.iter().any(|l| l.contains(want)), "menu lacks {want}: {labels:?}");
    }
    assert_eq!(h.state(), BuyerState::MainMenu);
}

#[test]
fn browsing_pages_and_refuses_pages_that_do_not_exist() {
    let mut h = Harness::new("blimbing");
    let r = h.button("cat:sayur:0");
    assert!(joined(&r).contains("1/"), "{r:#?}");
    assert!(r[0].buttons.iter().any(|b| b.payload == "cat:sayur:1"), "a next page button");
    h.button("cat:sayur:1");
    assert_eq!(h.state(), BuyerState::Browsing { category: pasar_online::domain::catalog::Category::Sayur, page: 1 });
    let r = h.button("cat:sayur:99");
    assert!(joined(&r).contains("tidak berlaku"), "{r:#?}");
    assert_eq!(h.state(), BuyerState::Browsing { category: pasar_online::domain::catalog::Category::Sayur, page: 1 });
}

#[test]
fn forged_and_foreign_buttons_change_nothing() {
    let mut h = Harness::new("blimbing");
    h.command("/start");
    let before = h.state();
    // An offer id that does not exist, one from another market, a quantity out of bounds,
    // a malformed payload, a checkout step pressed out of turn.
    let foreign = h.engine.catalog().offers_for("dinoyo", "bawang-merah")[0].id;
    let mine = offer(&h, "bawang-merah");
    for forged in [
        "off:999999".to_string(),
        format!("off:{foreign}"),
        format!("qty:{foreign}:500"),
        format!("qty:{mine}:99999999"),
        format!("qty:{mine}:0"),
        "cat:ikan:7".into(),
        "com:no-such-thing".into(),
        "off:1;DROP TABLE orders".into(),
        "place".into(),
        "pay:qris".into(),
        "slot:202611281100".into(),
        "empty!".into(),
        "cancel!:BLB-0001".into(),
        "line:12345".into(),
        "del:12345".into(),
        "x".repeat(500),
    ] {
        let r = h.button(&forged);
        assert!(joined(&r).contains("tidak berlaku"), "{forged}: {r:#?}");
        assert_eq!(h.state(), before, "{forged} changed the state");
    }
    assert_eq!(cart_lines(&h), 0);
    assert_eq!(h.count("SELECT COUNT(*) FROM orders"), 0);
}

#[test]
fn oversized_messages_are_refused() {
    let mut h = Harness::new("blimbing");
    h.button(&Action::Offer(offer(&h, "bawang-merah")).encode());
    let state = h.state();
    let r = h.text(&"bawang ".repeat(400));
    assert!(joined(&r).contains("terlalu panjang"), "{r:#?}");
    assert_eq!(h.state(), state);
    assert_eq!(cart_lines(&h), 0);
}

#[test]
fn quantity_state_answers_bad_amounts_and_accepts_good_ones() {
    let mut h = Harness::new("blimbing");
    let id = offer(&h, "bawang-merah");
    h.button(&Action::Offer(id).encode());
    let asking = BuyerState::ReceiveQuantity { offer: id };
    for (bad, says) in [
        ("-3", "lebih dari nol"),
        ("0", "lebih dari nol"),
        ("abc", "belum bisa saya baca"),
        ("9999 kg", "Terlalu banyak"),
        ("3 ikat", "per kg, bukan per ikat"),
        ("5 gr", "Terlalu sedikit"),
        ("-2 kg", "lebih dari nol"),
        ("0 kg", "lebih dari nol"),
        ("-5rb", "lebih dari nol"),
        ("75", "Terlalu banyak"),
        ("1rb", "belum cukup"),
        ("5000rb", "Terlalu banyak"),
    ] {
        let r = h.text(bad);
        assert!(joined(&r).contains(says), "{bad}: {r:#?}");
        assert_eq!(h.state(), asking, "{bad}");
        assert_eq!(cart_lines(&h), 0, "{bad}");
    }
    let r = h.text("2 ons");
    assert!(joined(&r).contains("200 gr"), "{r:#?}");
    assert_eq!(cart_lines(&h), 1);
    // Adding more of the same offer adds up, within the maximum.
    h.button(&Action::Offer(id).encode());
    h.text("1 kg");
    let q: String = {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.query_row("SELECT quantity FROM cart_lines", [], |r| r.get(0)).expect("row")
    };
    assert!(q.contains("1200"), "{q}");
    h.button(&Action::Offer(id).encode());
    let r = h.text("49 kg");
    assert!(joined(&r).contains("Terlalu banyak"), "{r:#?}");
    assert!(h.count("SELECT COUNT(*) FROM cart_lines WHERE quantity LIKE '%1200%'") == 1, "unchanged");
}

/// At the amount prompt, money is money and a bare hundred is grams: `5rb` never becomes kilos.
#[test]
fn the_amount_prompt_takes_money_grams_and_pieces_as_said_at_the_stall() {
    let mut h = Harness::new("blimbing");
    let shallots = offer(&h, "bawang-merah");
    h.button(&Action::Offer(shallots).encode());
    let r = h.text("5rb");
    let said = joined(&r);
    assert!(said.contains("Rp 5.000 (± 150 gr)") && said.contains("Bawang Merah"), "{said}");
    let row = |h: &Harness| -> (String, Option<String>) {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.query_row("SELECT quantity, ordered_by FROM cart_lines", [], |r| Ok((r.get(0)?, r.get(1)?))).expect("row")
    };
    let (q, by) = row(&h);
    assert!(q.contains("150") && !q.contains("5000"), "never 5 kg: {q}");
    assert!(by.as_deref().is_some_and(|b| b.contains("5000")), "{by:?}");
    // More money adds up as money.
    h.button(&Action::Offer(shallots).encode());
    h.text("Rp 3.000");
    let r = h.command("keranjang");
    assert!(joined(&r).contains("Rp 8.000 (± 250 gr)"), "{}", joined(&r));
    // A bare 500 is grams; the line becomes a plain quantity.
    h.button(&Action::Offer(shallots).encode());
    h.text("500");
    let (q, by) = row(&h);
    assert!(q.contains("750") && by.is_none(), "{q} {by:?}");
    // A chicken by the piece.
    let chicken = offer(&h, "ayam-potong");
    h.button(&Action::Offer(chicken).encode());
    let r = h.text("1 ekor");
    assert!(joined(&r).contains("1 ekor (± 1,2 kg)"), "{}", joined(&r));
    assert_eq!(cart_lines(&h), 2);
}

#[test]
fn checkout_states_refuse_bad_answers_and_keep_what_was_collected() {
    let mut h = Harness::new("blimbing");
    add(&mut h, "bawang-merah", "1 kg");
    h.button("checkout");
    assert_eq!(h.state(), BuyerState::ReceiveName);
    for bad in ["1", "@@", "x"] {
        let r = h.text(bad);
        assert!(joined(&r).contains("nama"), "{bad}: {r:#?}");
        assert_eq!(h.state(), BuyerState::ReceiveName);
    }
    h.text("Sri Wahyuni");
    for bad in ["12345", "0341-123456", "+1 415 555 0100", "nomor saya"] {
        let r = h.text(bad);
        assert!(joined(&r).contains("bukan nomor HP"), "{bad}: {r:#?}");
        assert!(matches!(h.state(), BuyerState::ReceivePhone { ref name } if name == "Sri Wahyuni"));
    }
    // A shared contact card is accepted as the phone number.
    h.send(Inbound::Contact { phone: "+62 812 3456 7890".into(), name: None });
    assert!(matches!(h.state(), BuyerState::ReceiveAddress { .. }));
    let r = h.text("rumah");
    assert!(joined(&r).contains("terlalu singkat"), "{r:#?}");
    let r = h.send(Inbound::Location { lat: -97.0, lon: 112.6, live: false });
    assert!(joined(&r).contains("Lokasi itu tidak bisa dibaca"), "{r:#?}");
    assert!(matches!(h.state(), BuyerState::ReceiveAddress { .. }));
    let r = h.send(Inbound::Location { lat: -7.936, lon: 112.644, live: false });
    assert!(matches!(h.state(), BuyerState::ReceiveSlot { .. }));
    // 07:00 now: the 07:00 slot (and 09:00, under the hour of lead time) are not offered today.
    let labels: Vec<&str> = r.iter().flat_map(|m| m.buttons.iter()).map(|b| b.label.as_str()).collect();
    assert!(!labels.iter().any(|l| l.contains("Hari ini 07:00")), "{labels:?}");
    assert!(labels.iter().any(|l| l.contains("Hari ini 09:00")), "09:00 starts 2 h from now: {labels:?}");
    let r = h.text("jam 3 pagi");
    assert!(joined(&r).contains("belum paham"), "{r:#?}");
    assert!(matches!(h.state(), BuyerState::ReceiveSlot { .. }));
    h.text("besok 07:00");
    assert!(matches!(h.state(), BuyerState::ReceivePayment { slot, .. } if slot.slot.to_string() == "07:00-09:00"));
    let r = h.text("bitcoin");
    assert!(joined(&r).contains("belum paham"), "{r:#?}");
    assert!(matches!(h.state(), BuyerState::ReceivePayment { .. }));
    h.text("cod");
    let r = h.text(&"cabai merah semua ".repeat(30));
    assert!(joined(&r).contains("terlalu panjang"), "{r:#?}");
    assert!(matches!(h.state(), BuyerState::ReceiveNote { .. }));
    let r = h.text("cabainya merah semua");
    assert!(joined(&r).contains("Ongkir: Rp 0 (gratis)"), "{r:#?}");
    assert!(matches!(h.state(), BuyerState::ConfirmOrder { .. }));
    let r = h.text("hmm");
    assert!(joined(&r).contains("belum paham"));
    assert_eq!(h.count("SELECT COUNT(*) FROM orders"), 0, "nothing ordered before confirming");
    let r = h.button("place");
    assert!(joined(&r).contains("BLB-0001"), "{r:#?}");
    assert_eq!(
        h.count(
            "SELECT COUNT(*) FROM orders WHERE lat IS NOT NULL AND payment = 'cod' AND note = 'cabainya merah semua'"
        ),
        1
    );
    assert_eq!(cart_lines(&h), 0, "the cart became the order");
}

#[test]
fn an_order_has_one_sub_order_per_stall_and_an_audit_trail() {
    let mut h = Harness::new("blimbing");
    let stalls: Vec<i64> = ["bawang-merah", "ayam-potong", "tempe"]
        .iter()
        .map(|c| h.engine.catalog().offer(offer(&h, c)).expect("offer").stall_id)
        .collect();
    let r = checkout_to_summary(&mut h);
    assert!(joined(&r).contains("Ringkasan"), "{r:#?}");
    h.button("place");
    let distinct: std::collections::HashSet<_> = stalls.iter().collect();
    assert!(distinct.len() >= 2);
    assert_eq!(h.count("SELECT COUNT(*) FROM sub_orders"), 2, "bawang merah and kangkung come from two stalls");
    assert_eq!(h.count("SELECT COUNT(*) FROM order_lines"), 2);
    assert_eq!(
        h.count("SELECT total FROM orders"),
        h.count("SELECT SUM(total) FROM sub_orders"),
        "sub-order totals add up to the order"
    );
    assert_eq!(h.count("SELECT COUNT(*) FROM order_events"), 3, "the order and each sub-order were recorded");
    // Numbers run per market.
    let mut d = Harness::new("dinoyo");
    let r = checkout_to_summary(&mut d);
    assert!(joined(&r).contains("Ringkasan"));
    let r = d.button("place");
    assert!(joined(&r).contains("DNY-0001"), "{r:#?}");
}

#[test]
fn a_price_change_before_confirming_shows_the_new_summary() {
    let mut h = Harness::new("blimbing");
    checkout_to_summary(&mut h);
    let id = offer(&h, "bawang-merah");
    {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.execute("UPDATE offers SET price = price + 2000 WHERE id = ?1", [id]).expect("price");
    }
    h.restart();
    let r = h.button("place");
    assert!(joined(&r).contains("berubah"), "{r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM orders"), 0);
    assert!(matches!(h.state(), BuyerState::ConfirmOrder { .. }));
    let r = h.button("place");
    assert!(joined(&r).contains("BLB-0001"), "{r:#?}");
}

#[test]
fn a_slot_that_passes_while_deciding_is_asked_again() {
    let mut h = Harness::new("blimbing");
    checkout_to_summary(&mut h);
    h.clock.advance(Duration::hours(4)); // 11:00 now: the 11:00 slot has begun
    let r = h.button("place");
    assert!(joined(&r).contains("sudah lewat"), "{r:#?}");
    assert!(matches!(h.state(), BuyerState::ReceiveSlot { .. }));
    assert_eq!(h.count("SELECT COUNT(*) FROM orders"), 0);
}

#[test]
fn cancellation_rules() {
    let mut h = Harness::new("blimbing");
    checkout_to_summary(&mut h);
    h.button("place");
    // Another shopper cannot cancel it, nor learn that it exists.
    let owner = h.user.clone();
    h.user.id = "tetangga".into();
    let r = h.command("/batal BLB-0001");
    assert!(joined(&r).contains("tidak ditemukan"), "{r:#?}");
    h.user = owner;
    assert_eq!(h.count("SELECT COUNT(*) FROM orders WHERE status = 'awaiting_traders'"), 1);
    // Once a trader has confirmed part of it, the shopper cannot cancel it alone.
    {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.execute("UPDATE sub_orders SET status = 'accepted' WHERE id = (SELECT MIN(id) FROM sub_orders)", [])
            .expect("accept");
    }
    let r = h.command("/batal BLB-0001");
    assert!(joined(&r).contains("sudah dikonfirmasi pedagang"), "{r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM orders WHERE status = 'awaiting_traders'"), 1);
    let r = h.button("orders");
    assert!(!r.iter().flat_map(|m| m.buttons.iter()).any(|b| b.payload.starts_with("cancel")), "no cancel button");
    {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.execute("UPDATE sub_orders SET status = 'awaiting_trader'", []).expect("reset");
    }
    let r = h.command("/batal blb-1");
    assert!(joined(&r).contains("sudah dibatalkan"), "{r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM sub_orders WHERE status = 'cancelled'"), 2);
    assert_eq!(h.count("SELECT COUNT(*) FROM order_events WHERE to_status = 'cancelled'"), 3);
}

#[test]
fn a_redelivered_update_has_one_effect() {
    let mut h = Harness::new("blimbing");
    let id = offer(&h, "bawang-merah");
    h.button(&Action::Offer(id).encode());
    let event = pasar_online::channel::InboundEvent {
        source_id: "telegram:blimbing:4242".into(),
        market: "blimbing".into(),
        user: h.user.clone(),
        display_name: None,
        received_at: common::morning(),
        inbound: Inbound::Text("1 kg".into()),
        pressed_on: None,
    };
    let first = h.deliver_event(event.clone());
    let second = h.deliver_event(event);
    assert!(joined(&first).contains("1 kg"));
    assert!(second.is_empty(), "a duplicate is ignored: {second:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM inbox WHERE source_id = 'telegram:blimbing:4242'"), 1);
    assert_eq!(h.count("SELECT COUNT(*) FROM cart_lines WHERE quantity LIKE '%1000%'"), 1);
}

#[test]
fn a_failing_step_is_rolled_back_and_the_user_told() {
    let mut h = Harness::new("blimbing");
    let id = offer(&h, "bawang-merah");
    h.button(&Action::Offer(id).encode());
    {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON cart_lines BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
        )
        .expect("trigger");
    }
    let outbox_before = h.count("SELECT COUNT(*) FROM outbox");
    let r = h.text("1 kg");
    assert!(joined(&r).contains("gangguan"), "the user hears about it: {r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM outbox"), outbox_before + 1, "only the apology was queued");
    assert_eq!(h.state(), BuyerState::ReceiveQuantity { offer: id }, "state rolled back");
    assert_eq!(cart_lines(&h), 0);
    assert_eq!(h.count("SELECT COUNT(*) FROM inbox WHERE status = 'failed'"), 1);
    {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.execute_batch("DROP TRIGGER boom;").expect("drop");
    }
    let r = h.text("1 kg");
    assert!(joined(&r).contains('✅'), "the bot keeps working: {r:#?}");
}

#[test]
fn a_state_that_no_longer_decodes_resets_with_an_apology() {
    let mut h = Harness::new("blimbing");
    add(&mut h, "bawang-merah", "1 kg");
    {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.execute("UPDATE conversations SET state = '{\"OldState\":{\"x\":1}}'", []).expect("corrupt");
    }
    let r = h.text("keranjang");
    let text = joined(&r);
    assert!(text.contains("diperbarui") && text.contains("Keranjang Anda"), "{text}");
    assert_eq!(cart_lines(&h), 1, "the cart survives");
    assert_eq!(h.state(), BuyerState::ViewingCart);
}

#[test]
fn language_is_remembered_per_user() {
    let mut h = Harness::new("blimbing");
    h.button("lang:en");
    let r = h.command("/start");
    assert!(joined(&r).contains("Welcome to Pasar Blimbing"), "{r:#?}");
    h.restart();
    let r = h.text("shallot");
    assert!(joined(&r).contains("sold by"), "{r:#?}");
    let other = h.user.clone();
    h.user.id = "budi".into();
    let r = h.command("/start");
    assert!(joined(&r).contains("Selamat datang") || joined(&r).contains("Sugeng rawuh"), "{r:#?}");
    h.user = other;
    let r = h.command("/bahasa klingon");
    assert!(joined(&r).contains("Choose your language"), "{r:#?}");
}

#[test]
fn unknown_commands_and_help() {
    let mut h = Harness::new("blimbing");
    let r = h.command("/hapus_semua");
    assert!(joined(&r).contains("tidak dikenal"), "{r:#?}");
    let r = h.command("/bantuan");
    assert!(joined(&r).contains("/batal"), "{r:#?}");
    let r = h.command("/batal");
    assert!(joined(&r).contains("dibatalkan"), "{r:#?}");
}

#[test]
fn an_undecodable_inbox_row_is_parked_and_does_not_stall_the_bot() {
    let mut h = Harness::new("blimbing");
    {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.execute(
            "INSERT INTO inbox (source_id, market, channel, user_id, event, received_at)
             VALUES ('garbage:1', 'blimbing', 'console', 'sri', '{not json', '2026-11-28T00:00:00.000Z')",
            [],
        )
        .expect("insert");
    }
    let r = h.command("/start");
    assert!(joined(&r).contains("Pasar Blimbing"), "{r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM inbox WHERE source_id = 'garbage:1' AND status = 'failed'"), 1);
}

#[test]
fn in_a_batch_only_the_failing_event_is_rolled_back() {
    let mut h = Harness::new("blimbing");
    let id = offer(&h, "bawang-merah");
    let users = ["rusak", "sehat"];
    for u in users {
        h.user.id = u.into();
        h.button(&Action::Offer(id).encode());
    }
    {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON cart_lines WHEN NEW.user_id = 'rusak'
             BEGIN SELECT RAISE(ABORT, 'bad sector'); END;",
        )
        .expect("trigger");
    }
    // Both messages arrive together and are handled in one batch transaction.
    let events: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| pasar_online::channel::InboundEvent {
            source_id: format!("batch:{i}"),
            market: "blimbing".into(),
            user: pasar_online::channel::UserKey {
                channel: pasar_online::channel::ChannelKind::Console,
                id: (*u).into(),
            },
            display_name: None,
            received_at: common::morning(),
            inbound: Inbound::Text("1 kg".into()),
            pressed_on: None,
        })
        .collect();
    h.engine.store().ingest(&events).expect("ingest");
    h.engine.process_pending().expect("process");
    assert_eq!(h.count("SELECT COUNT(*) FROM cart_lines WHERE user_id = 'sehat'"), 1, "the healthy event committed");
    assert_eq!(h.count("SELECT COUNT(*) FROM cart_lines WHERE user_id = 'rusak'"), 0);
    assert_eq!(
        h.count("SELECT COUNT(*) FROM inbox WHERE source_id = 'batch:0' AND status = 'failed' AND attempts = 3"),
        1
    );
    assert_eq!(h.count("SELECT COUNT(*) FROM inbox WHERE source_id = 'batch:1' AND status = 'done'"), 1);
    assert_eq!(
        h.count("SELECT COUNT(*) FROM outbox o JOIN inbox i ON o.inbox_id = i.id WHERE i.source_id = 'batch:0'"),
        1,
        "the failing user gets exactly one message: the apology"
    );
}

#[test]
fn the_benchmark_journeys_complete_in_every_market() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = pasar_online::bench::run(&pasar_online::config::Config::default(), &dir.path().join("b.db"), 30, 7)
        .expect("bench runs");
    assert_eq!(report.orders, 30, "every journey ended in an order");
    assert_eq!(report.steps, 30 * 19);
}

#[test]
fn review_findings_stay_fixed() {
    let mut h = Harness::new("blimbing");
    let id = offer(&h, "bawang-merah");
    // A quick-amount button pressed outside its question (double tap, old keyboard) adds nothing.
    h.button(&Action::Offer(id).encode());
    h.button(&Action::QuickQuantity { offer: id, base: 1000 }.encode());
    let r = h.button(&Action::QuickQuantity { offer: id, base: 1000 }.encode());
    assert!(joined(&r).contains("tidak berlaku"), "{r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM cart_lines WHERE quantity LIKE '%1000%'"), 1);
    // Oversized command arguments are refused like oversized text.
    let r = h.command(&format!("/cari {}", "x".repeat(5000)));
    assert!(joined(&r).contains("terlalu panjang"), "{r:#?}");
    // Non-ASCII order numbers are an unknown number, not a crash.
    let r = h.command("/batal éé12");
    assert!(joined(&r).contains("nomor pesanannya"), "{r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM inbox WHERE status = 'failed'"), 0);
    // Checkout: a typed "Besok 09:00" (phones capitalise) is tomorrow's slot.
    h.button("checkout");
    h.text("Sri Wahyuni");
    // Switching language mid-checkout asks the same question again, in English.
    let r = h.command("/bahasa en");
    assert!(joined(&r).contains("Which mobile/WhatsApp number"), "{r:#?}");
    assert!(matches!(h.state(), BuyerState::ReceivePhone { ref name } if name == "Sri Wahyuni"));
    h.button("lang:id");
    h.text("0812-3456-7890");
    // A shared location far outside the market's radius is refused before anything else.
    let r = h.send(Inbound::Location { lat: -6.2, lon: 106.8, live: false });
    assert!(joined(&r).contains("di luar jangkauan"), "{r:#?}");
    assert!(matches!(h.state(), BuyerState::ReceiveAddress { .. }));
    h.text("Jl. Mawar {total} {slot} No. 3, Blimbing");
    h.text("Besok 09:00");
    match h.state() {
        BuyerState::ReceivePayment { slot, .. } => {
            assert_eq!(slot.date, chrono::NaiveDate::from_ymd_opt(2026, 11, 29).expect("date"));
        }
        other => panic!("{other:?}"),
    }
    h.text("qris");
    let r = h.button("note:none");
    // A typed placeholder stays as typed in the summary.
    assert!(joined(&r).contains("Jl. Mawar {total} {slot} No. 3"), "{r:#?}");
}

#[test]
fn a_line_that_can_no_longer_be_priced_is_removed_not_stuck() {
    let mut h = Harness::new("blimbing");
    add(&mut h, "bawang-merah", "1 kg");
    add(&mut h, "kangkung", "2");
    {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.execute("UPDATE commodities SET unit = 'ikat' WHERE id = 'bawang-merah'", []).expect("unit");
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'catalog_version'", []).expect("version");
    }
    let r = h.text("keranjang");
    assert!(joined(&r).contains("tidak dijual lagi"), "{r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM cart_lines"), 1);
    h.button("checkout");
    h.text("Sri Wahyuni");
    h.text("0812-3456-7890");
    let r = h.text("Jl. Borobudur No. 12, Purwodadi");
    h.button(&payload(&r, "Hari ini"));
    h.button("pay:qris");
    h.button("note:none");
    let r = h.button("place");
    assert!(joined(&r).contains("BLB-0001"), "{r:#?}");
}

#[test]
fn a_whatsapp_number_is_recognised_by_the_details_saved_with_it_elsewhere() {
    use pasar_online::channel::{ChannelKind, UserKey};
    let mut h = Harness::new("blimbing");
    // On one channel Sri checks out with her number, typed as people type it.
    checkout_to_summary(&mut h);
    let r = h.button("place");
    assert!(joined(&r).contains("BLB-0001"), "{r:#?}");
    // The same person on WhatsApp, where her id is her number in another form.
    h.user = UserKey { channel: ChannelKind::WhatsApp, id: "6281234567890".into() };
    add(&mut h, "kangkung", "1");
    let r = h.button("checkout");
    assert!(joined(&r).contains("atas nama siapa"), "{r:#?}");
    let saved = payload(&r, "Sri Wahyuni");
    let r = h.button(&saved);
    // Her number needs no typing, and her address is offered too.
    let use_phone = payload(&r, "0812-3456-7890");
    let r = h.button(&use_phone);
    assert!(joined(&r).contains("Kirim ke mana"), "{r:#?}");
    payload(&r, "Jl. Borobudur");
    // Someone else's WhatsApp number gets nothing of hers.
    h.user = UserKey { channel: ChannelKind::WhatsApp, id: "6289999999999".into() };
    add(&mut h, "kangkung", "1");
    let r = h.button("checkout");
    assert!(!joined(&r).contains("Sri") && !format!("{r:?}").contains("Sri"), "{r:#?}");
}

#[test]
fn a_typed_address_outside_the_markets_kelurahan_is_refused_before_paying() {
    let mut h = Harness::new("dinoyo");
    add(&mut h, "kangkung", "2");
    // Sri's saved address is from an order at Pasar Blimbing.
    let saved = rusqlite::Connection::open(&h.db)
        .expect("db")
        .execute(
            "INSERT INTO users (channel, user_id, address, updated_at)
             VALUES ('console', 'sri', 'Jl. Borobudur No. 12, Purwodadi', '2026-11-27T00:00:00Z')
             ON CONFLICT (channel, user_id) DO UPDATE SET address = excluded.address",
            [],
        )
        .expect("saved address");
    assert_eq!(saved, 1);
    h.button("checkout");
    h.text("Sri Wahyuni");
    let r = h.text("0812-3456-7890");
    assert!(joined(&r).contains("Kirim ke mana"), "{r:#?}");
    assert!(
        r.iter().flat_map(|m| m.buttons.iter()).all(|b| !b.label.contains("Borobudur")),
        "not offered here: {r:#?}"
    );
    // Purwodadi is Pasar Blimbing's: Dinoyo says where it does deliver, and nothing moves on.
    let r = h.text("Jl. Borobudur No. 12, Purwodadi");
    let text = joined(&r);
    assert!(text.contains("kelurahan") && text.contains("Ketawanggede") && text.contains("Pasar Dinoyo"), "{text}");
    assert!(matches!(h.state(), BuyerState::ReceiveAddress { .. }), "{:?}", h.state());
    // One it serves, however it is spelt, goes on to the slots.
    let r = h.text("jl mt haryono 7 rt 2, KETAWANGGEDE");
    assert!(matches!(h.state(), BuyerState::ReceiveSlot { .. }), "{r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM orders"), 0);
}

#[test]
fn a_full_slot_is_not_offered_and_one_that_fills_meanwhile_is_chosen_again() {
    let mut h = Harness::new("blimbing");
    // Room for one order a slot.
    rusqlite::Connection::open(&h.db).expect("db").execute("UPDATE markets SET slot_capacity = 1", []).expect("cap");
    h.restart();
    // Two shoppers reach the slot question; both are offered today's first slot.
    let first_slot = |r: &[pasar_online::channel::Outbound]| payload(r, "Hari ini");
    let reach_slots = |h: &mut Harness, who: &str| {
        h.user = UserKey { channel: ChannelKind::Console, id: who.into() };
        add(h, "kangkung", "2");
        h.button("checkout");
        h.text("Sri Wahyuni");
        h.text("0812-3456-7890");
        h.text("Jl. Borobudur No. 12, Purwodadi")
    };
    let ani = reach_slots(&mut h, "ani");
    let budi = reach_slots(&mut h, "budi");
    let slot = first_slot(&budi);
    assert_eq!(first_slot(&ani), slot);
    // Budi takes it and places his order.
    h.button(&slot);
    h.button("pay:cod");
    h.button("note:none");
    h.button("place");
    assert_eq!(h.count("SELECT COUNT(*) FROM orders"), 1);
    // Ani's button is for a slot that is now full: asked again, without it.
    h.user = UserKey { channel: ChannelKind::Console, id: "ani".into() };
    let r = h.button(&slot);
    assert!(r.iter().flat_map(|m| m.buttons.iter()).all(|b| b.payload != slot), "the full slot is not offered: {r:#?}");
    assert!(matches!(h.state(), BuyerState::ReceiveSlot { .. }), "{:?}", h.state());
    // A newcomer is not offered it either; a cancelled order frees it again.
    let carol = reach_slots(&mut h, "carol");
    assert!(carol.iter().flat_map(|m| m.buttons.iter()).all(|b| b.payload != slot), "{carol:#?}");
    rusqlite::Connection::open(&h.db)
        .expect("db")
        .execute("UPDATE orders SET status = 'cancelled'", [])
        .expect("cancel");
    let again = reach_slots(&mut h, "dewi");
    assert_eq!(first_slot(&again), slot, "a cancelled order's place is free");
}

#[test]
fn a_slot_that_fills_between_the_summary_and_placing_is_chosen_again() {
    let mut h = Harness::new("blimbing");
    rusqlite::Connection::open(&h.db).expect("db").execute("UPDATE markets SET slot_capacity = 1", []).expect("cap");
    h.restart();
    let r = checkout_to_summary(&mut h);
    assert!(joined(&r).contains("Ringkasan"), "{r:#?}");
    // Someone else's order takes today's first slot (the one Sri chose) while she reads.
    let market = h.engine.catalog().market("blimbing").expect("market").clone();
    let chosen = pasar_online::domain::slot::available_slots(&market.slots, common::morning())[0];
    rusqlite::Connection::open(&h.db)
        .expect("db")
        .execute(
            "INSERT INTO orders (market, number, channel, user_id, status, buyer_name, phone, slot_date, slot, payment,
                                 total, placed_at, updated_at)
             VALUES ('blimbing', 'BLB-9999', 'console', 'other', 'awaiting_traders', 'X', '+6281234567890', ?1, ?2,
                     'cod', 1000, '2026-11-28T00:00:00Z', '2026-11-28T00:00:00Z')",
            rusqlite::params![chosen.date.format("%Y-%m-%d").to_string(), chosen.slot.to_string()],
        )
        .expect("the other order");
    let r = h.button("place");
    assert!(matches!(h.state(), BuyerState::ReceiveSlot { .. }), "{:?} {r:#?}", h.state());
    assert!(r.iter().flat_map(|m| m.buttons.iter()).all(|b| b.payload != format!("slot:{}", chosen.code())), "{r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM orders"), 1, "only the other shopper's");
}
