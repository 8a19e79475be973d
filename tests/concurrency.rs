//! 200 shoppers, each on their own thread with their own engine and database connection, race
//! for the last 10 kg of shallots at one stall. Exactly the stock is sold, never more, and every
//! shopper gets an answer.

mod common;

use pasar_online::channel::{ChannelKind, Inbound, InboundEvent, UserKey};
use pasar_online::conversation::engine::FixedClock;
use pasar_online::conversation::payload::Action;
use pasar_online::domain::order::PaymentMethod;
use std::sync::Arc;

const SHOPPERS: usize = 200;

#[test]
fn the_last_ten_kilos_are_never_oversold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("race.db");
    let clock = Arc::new(FixedClock::new(common::morning()));
    let (offer, slot) = {
        let engine = common::open_engine(&db, Arc::clone(&clock));
        let offer = engine.catalog().offers_for("blimbing", "bawang-merah")[0].id;
        let market = engine.catalog().market("blimbing").expect("market").clone();
        let slot = pasar_online::domain::slot::available_slots(&market.slots, common::morning())[0].code();
        (offer, slot)
    };
    {
        let conn = rusqlite::Connection::open(&db).expect("db");
        conn.execute("UPDATE offers SET stock = 10000 WHERE id = ?1", [offer]).expect("stock");
    }
    std::thread::scope(|scope| {
        for n in 0..SHOPPERS {
            let db = db.clone();
            let clock = Arc::clone(&clock);
            let slot = slot.clone();
            scope.spawn(move || {
                let mut engine = common::open_engine(&db, clock);
                let user = UserKey { channel: ChannelKind::Console, id: format!("shopper-{n}") };
                let b = |a: Action| Inbound::Button(a.encode());
                let t = |s: &str| Inbound::Text(s.to_string());
                let steps = [
                    b(Action::Offer(offer)),
                    t("1 kg"),
                    b(Action::Checkout),
                    t("Pembeli Setia"),
                    t("0812-3456-7890"),
                    t("Jl. Borobudur No. 12, Purwodadi"),
                    b(Action::Slot(slot)),
                    b(Action::Payment(PaymentMethod::CashOnDelivery)),
                    b(Action::NoNote),
                    b(Action::PlaceOrder),
                ];
                for (i, inbound) in steps.into_iter().enumerate() {
                    let event = InboundEvent {
                        source_id: format!("race:{n}:{i}"),
                        market: "blimbing".into(),
                        user: user.clone(),
                        display_name: None,
                        received_at: common::morning(),
                        inbound,
                        pressed_on: None,
                    };
                    engine.store().ingest(std::slice::from_ref(&event)).expect("ingest");
                    engine.process_pending().expect("process");
                }
            });
        }
    });
    let conn = rusqlite::Connection::open(&db).expect("db");
    let one = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(one("SELECT COUNT(*) FROM orders"), 10, "exactly ten 1 kg orders");
    assert_eq!(one(&format!("SELECT SUM(quantity_base) FROM order_lines WHERE offer_id = {offer}")), 10_000);
    assert_eq!(one(&format!("SELECT stock FROM offers WHERE id = {offer}")), 0, "nothing left, nothing negative");
    assert_eq!(one("SELECT COUNT(*) FROM inbox WHERE status <> 'done'"), 0, "every message was handled");
    // Every shopper was told either that the order was placed or that the shallots ran out.
    for n in 0..SHOPPERS {
        let told: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE recipient = ?1
                   AND (message LIKE '%sudah kami terima%' OR message LIKE '%habis%' OR message LIKE '%tinggal%')",
                [format!("shopper-{n}")],
                |r| r.get(0),
            )
            .expect("outbox");
        assert!(told >= 1, "shopper-{n} got no answer about the shallots");
    }
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
    assert_eq!(check, "ok");
}
