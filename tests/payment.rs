//! Payment through the real engine on a temp database: when payment is asked for, its expiry and
//! the stock it gives back, and the ledger adding up over random order histories (payments in
//! the right and the wrong amount, items running out after payment, cancellations, expiries,
//! deliveries with the cash a courier collects at the door, and refunds, in any order).

mod common;

use chrono::Duration;
use common::market::{ADMIN, BUDI, SRI, as_user, market_with_couriers, order_id};
use common::{Harness, joined, payload};
use pasar_online::conversation::payload::Action;
use pasar_online::domain::money::Rupiah;
use proptest::prelude::*;

/// Time passes with nobody typing: the timers run.
fn wait(h: &mut Harness, minutes: i64) {
    h.clock.advance(Duration::minutes(minutes));
    h.engine.process_pending().expect("timers");
}

/// Ani orders 3 ikat kangkung and 2 ikat bayam from Bu Sri, paying by `method`; the
/// order's number.
fn place(h: &mut Harness, method: &str) -> String {
    as_user(h, "ani");
    for (commodity, amount) in [("kangkung", "3 ikat"), ("bayam", "2 ikat")] {
        let offer = h.engine.catalog().offers_for("blimbing", commodity)[0].id;
        h.button(&Action::Offer(offer).encode());
        h.text(amount);
    }
    h.button("checkout");
    h.text("Ani Rahayu");
    h.text("0812-3456-7890");
    let r = h.text("Jl. Borobudur No. 12, Purwodadi");
    h.button(&payload(&r, "Hari ini"));
    h.button(&format!("pay:{method}"));
    h.button("note:none");
    let r = h.button("place");
    let text = joined(&r);
    text.split("Pesanan ").nth(1).and_then(|s| s.split_whitespace().next()).expect("number").to_string()
}

fn sub_id(h: &Harness, number: &str) -> i64 {
    h.count(&format!("SELECT id FROM sub_orders WHERE order_id = {}", order_id(h, number)))
}

fn status(h: &Harness, number: &str) -> String {
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    conn.query_row("SELECT status FROM orders WHERE number = ?1", [number], |r| r.get(0)).expect("order")
}

fn accept(h: &mut Harness, number: &str) {
    let sub = sub_id(h, number);
    as_user(h, SRI);
    h.button(&Action::TraderAccept(sub).encode());
}

fn admin(h: &mut Harness, line: &str) -> String {
    as_user(h, ADMIN);
    joined(&h.command(line))
}

/// The pending request's amount.
fn asked(h: &Harness, number: &str) -> i64 {
    h.count(&format!("SELECT amount FROM payments WHERE order_id = {} AND status = 'pending'", order_id(h, number)))
}

#[test]
fn payment_is_asked_only_when_every_stall_confirmed_and_no_courier_comes_before_it() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[common::market::BUDI]);
    common::market::start_shift(&mut h, "budi");
    let number = place(&mut h, "qris");
    assert_eq!(h.count("SELECT COUNT(*) FROM payments"), 0, "not asked before the trader answers");
    let before = admin(&mut h, &format!("/lunas {number}"));
    assert!(before.contains("tidak sedang menunggu pembayaran"), "{before}");
    accept(&mut h, &number);
    assert_eq!(status(&h, &number), "awaiting_payment");
    // Packed, but unpaid: no courier is asked.
    let sub = sub_id(&h, &number);
    as_user(&mut h, SRI);
    h.button(&Action::TraderPack(sub).encode());
    assert_eq!(status(&h, &number), "awaiting_payment");
    assert_eq!(h.count("SELECT COUNT(*) FROM deliveries"), 0);
    let r = admin(&mut h, &format!("/tugaskan {number} 1"));
    assert!(r.contains("belum bisa ditugaskan"), "{r}");
    let r = admin(&mut h, &format!("/lunas {number}"));
    assert!(r.contains("dicatat lunas"), "{r}");
    assert_eq!(status(&h, &number), "ready_for_pickup");
    assert_eq!(h.count("SELECT COUNT(*) FROM deliveries WHERE status = 'offered'"), 1, "now the courier is asked");
}

#[test]
fn an_unpaid_order_is_reminded_then_expires_and_gives_its_stock_back() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[]);
    let kk = h.engine.catalog().offers_for("blimbing", "kangkung")[0].id;
    {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.execute("UPDATE offers SET stock = 10 WHERE id = ?1", [kk]).expect("stock");
    }
    h.restart();
    let number = place(&mut h, "transfer");
    accept(&mut h, &number);
    assert_eq!(h.count(&format!("SELECT stock FROM offers WHERE id = {kk}")), 7, "3 ikat reserved");
    let amount = asked(&h, &number);
    let code = amount - 15_400;
    assert!((1..=999).contains(&code), "a unique code is added: {amount}");
    wait(&mut h, 44);
    assert_eq!(h.count("SELECT reminded FROM payments"), 0);
    wait(&mut h, 2);
    assert_eq!(h.count("SELECT reminded FROM payments"), 1, "the reminder 15 minutes before");
    assert_eq!(status(&h, &number), "awaiting_payment");
    // The expiry is a row: a restart in between loses it not.
    h.restart();
    wait(&mut h, 15);
    assert_eq!(status(&h, &number), "cancelled");
    assert_eq!(h.count("SELECT COUNT(*) FROM payments WHERE status = 'expired'"), 1);
    assert_eq!(h.count(&format!("SELECT stock FROM offers WHERE id = {kk}")), 10, "stock back");
    assert_eq!(h.count("SELECT COUNT(*) FROM sub_orders WHERE status = 'cancelled'"), 1);
    // A transfer that arrives late is money all the same: recorded, and owed back in full (the
    // order stays cancelled, its stock where it is); typed twice, it counts once.
    let r = admin(&mut h, &format!("/lunas {number}"));
    assert!(r.contains("dicatat di buku kas") && r.contains("dikembalikan"), "{r}");
    let ledger = |h: &Harness, kind: &str| {
        h.count(&format!(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind = '{kind}' AND order_id = {}",
            order_id(h, &number)
        ))
    };
    assert_eq!((ledger(&h, "payment"), ledger(&h, "refund_owed")), (amount, amount));
    let r = admin(&mut h, &format!("/lunas {number}"));
    assert!(r.contains("tidak dicatat dua kali"), "{r}");
    assert_eq!((ledger(&h, "payment"), ledger(&h, "refund_owed")), (amount, amount));
    assert_eq!(status(&h, &number), "cancelled");
    assert_eq!(h.count(&format!("SELECT stock FROM offers WHERE id = {kk}")), 10);
    // The shopper was told the money goes back to them.
    assert!(
        h.count("SELECT COUNT(*) FROM outbox WHERE message LIKE '%dikembalikan%' AND recipient <> 'pak-lurah'") >= 1
    ); // A purge keeps the details of an order that still owes money back (whom to pay it to);
    // once it is paid back, they go.
    use pasar_online::conversation::engine::Clock;
    let name = |h: &Harness| {
        let conn = rusqlite::Connection::open(&h.db).expect("db");
        conn.query_row("SELECT buyer_name FROM orders WHERE number = ?1", [&number], |r| r.get::<_, String>(0))
            .expect("order")
    };
    h.clock.advance(chrono::Duration::days(2));
    h.engine.store().purge(h.clock.now() - chrono::Duration::days(1), Some("k")).expect("purge");
    assert_eq!(name(&h), "Ani Rahayu", "still owed back");
    let r = admin(&mut h, &format!("/refund {number} {amount} transfer terlambat"));
    assert!(!r.is_empty());
    h.clock.advance(chrono::Duration::days(2));
    h.engine.store().purge(h.clock.now() - chrono::Duration::days(1), Some("k")).expect("purge");
    assert_eq!(name(&h), "(dihapus)", "settled, then purged");
}

#[test]
fn a_second_transfer_of_the_same_total_gets_another_code() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[]);
    let first = place(&mut h, "transfer");
    accept(&mut h, &first);
    let second = place(&mut h, "transfer");
    accept(&mut h, &second);
    assert_ne!(asked(&h, &first), asked(&h, &second));
}

#[test]
fn only_the_stall_s_trader_takes_an_item_out_and_only_before_packing() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[]);
    let number = place(&mut h, "qris");
    let bayam = line_id(&h, &number, "bayam").expect("bayam line");
    // Not accepted yet: that is the trader's Ubah, not "ran out".
    as_user(&mut h, SRI);
    let r = joined(&h.button(&Action::TraderDropLine(bayam).encode()));
    assert!(r.contains("tidak ada yang diubah"), "{r}");
    accept(&mut h, &number);
    let asked_before = asked(&h, &number);
    // The shopper (or anyone but the stall's trader) pressing a forged button changes nothing.
    for who in ["ani", ADMIN] {
        as_user(&mut h, who);
        let r = joined(&h.button(&Action::TraderDropLine(bayam).encode()));
        assert!(r.contains("tidak ada yang diubah"), "{who}: {r}");
        let r = joined(&h.button(&Action::TraderShortage(sub_id(&h, &number)).encode()));
        assert!(r.contains("tidak ada yang diubah"), "{who}: {r}");
    }
    assert_eq!(h.count(&format!("SELECT out_of_stock FROM order_lines WHERE id = {bayam}")), 0);
    assert_eq!(asked(&h, &number), asked_before);
    // The trader takes it out before paying: the request is made again for the new amount.
    as_user(&mut h, SRI);
    let r = joined(&h.button(&Action::TraderDropLine(bayam).encode()));
    assert!(r.contains("dikeluarkan"), "{r}");
    assert_eq!(asked(&h, &number), asked_before - 6_400);
    assert_eq!(h.count("SELECT COUNT(*) FROM payments WHERE status = 'cancelled'"), 1, "the old request lapsed");
    // Pressed again, or after packing: refused, nothing changes.
    let again = joined(&h.button(&Action::TraderDropLine(bayam).encode()));
    assert!(again.contains("tidak ada yang diubah"), "{again}");
    let kangkung = line_id(&h, &number, "kangkung").expect("kangkung line");
    h.button(&Action::TraderPack(sub_id(&h, &number)).encode());
    let packed = joined(&h.button(&Action::TraderDropLine(kangkung).encode()));
    assert!(packed.contains("tidak ada yang diubah"), "{packed}");
    assert_eq!(h.count(&format!("SELECT out_of_stock FROM order_lines WHERE id = {kangkung}")), 0);
}

/// One thing that can happen to the newest order.
#[derive(Debug, Clone)]
enum Step {
    Place(&'static str),
    Accept,
    /// Bayam ran out after the order was accepted.
    DropBayam,
    /// Kangkung ran out too (the stall's whole part goes).
    DropKangkung,
    PayExact,
    PayWrong(i64),
    /// The shopper cancels (from the request, or when asked about a stall that left).
    Cancel,
    /// The shopper goes on without a stall that left.
    GoOn,
    Wait(i64),
    Refund(i64),
    /// Packed, given to Budi with `/tugaskan` and delivered; an order paid at the door brings
    /// the bill plus this much in cash (less when negative).
    Deliver(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => prop_oneof![Just("qris"), Just("transfer"), Just("cod")].prop_map(Step::Place),
        3 => Just(Step::Accept),
        2 => Just(Step::DropBayam),
        1 => Just(Step::DropKangkung),
        3 => Just(Step::PayExact),
        1 => (-5000i64..5000).prop_map(Step::PayWrong),
        1 => Just(Step::Cancel),
        1 => Just(Step::GoOn),
        1 => (1i64..70).prop_map(Step::Wait),
        1 => (1i64..20_000).prop_map(Step::Refund),
        2 => prop_oneof![2 => Just(0i64), 1 => -3000i64..3000].prop_map(Step::Deliver),
    ]
}

/// The order's line of a commodity, if it has one (a sold-out commodity never made it in).
fn line_id(h: &Harness, number: &str, commodity: &str) -> Option<i64> {
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    conn.query_row(
        "SELECT l.id FROM order_lines l JOIN sub_orders s ON s.id = l.sub_order_id
         WHERE s.order_id = ?1 AND l.commodity_id = ?2",
        rusqlite::params![order_id(h, number), commodity],
        |r| r.get(0),
    )
    .ok()
}

fn apply(h: &mut Harness, newest: &mut Option<String>, step: &Step) {
    if let Step::Place(method) = step {
        // Bu Sri has both again (an earlier step may have run out of them).
        as_user(h, SRI);
        h.command("/stok kangkung ada");
        h.command("/stok bayam ada");
        *newest = Some(place(h, method));
        return;
    }
    let Some(number) = newest.clone() else { return };
    match step {
        Step::Place(_) => {}
        Step::Accept => accept(h, &number),
        Step::DropBayam | Step::DropKangkung => {
            let commodity = if matches!(step, Step::DropBayam) { "bayam" } else { "kangkung" };
            let Some(line) = line_id(h, &number, commodity) else { return };
            as_user(h, SRI);
            h.button(&Action::TraderDropLine(line).encode());
        }
        Step::PayExact => {
            admin(h, &format!("/lunas {number}"));
        }
        Step::PayWrong(delta) => {
            let amount = (15_400 + delta).max(1);
            admin(h, &format!("/lunas {number} {amount}"));
        }
        Step::Cancel => {
            as_user(h, "ani");
            let n = pasar_online::domain::order::OrderNumber::parse(&number).expect("n");
            h.button(&Action::CancelOrder(n.clone()).encode());
            h.button(&Action::CancelOrderConfirmed(n).encode());
        }
        Step::GoOn => {
            let sub = sub_id(h, &number);
            as_user(h, "ani");
            h.button(&Action::AcknowledgeDrop(sub).encode());
        }
        Step::Wait(m) => wait(h, *m),
        Step::Refund(amount) => {
            admin(h, &format!("/refund {number} {amount} uji"));
        }
        Step::Deliver(delta) => deliver(h, &number, *delta),
    }
}

/// The order accepted (if it was not), packed, assigned to Budi and delivered, if it can go
/// (paid, or paid at the door); at the door the courier confirms the bill plus `delta` in cash.
fn deliver(h: &mut Harness, number: &str, delta: i64) {
    let sub = sub_id(h, number);
    as_user(h, SRI);
    h.button(&Action::TraderAccept(sub).encode());
    h.button(&Action::TraderPack(sub).encode());
    admin(h, &format!("/tugaskan {number} budi"));
    let id = order_id(h, number);
    let Ok(d) = rusqlite::Connection::open(&h.db).expect("db").query_row(
        "SELECT id FROM deliveries WHERE order_id = ?1 AND status = 'assigned' ORDER BY id DESC LIMIT 1",
        [id],
        |r| r.get::<_, i64>(0),
    ) else {
        return;
    };
    as_user(h, BUDI.0);
    h.button(&Action::CourierPicked { delivery: d, sub }.encode());
    h.button(&Action::CourierDepart(d).encode());
    let r = joined(&h.button(&Action::CourierDelivered(d).encode()));
    if r.contains("dibayar di tempat") {
        let total = h.count(&format!("SELECT total FROM orders WHERE id = {id}"));
        let amount = (total + delta).max(1);
        let r = joined(&h.text(&amount.to_string()));
        if !r.contains("Kirim foto bukti") {
            h.button(&Action::CourierCash { delivery: d, amount: Rupiah(amount) }.encode());
        }
    }
    h.send(pasar_online::channel::Inbound::Image { reference: format!("door-{d}"), caption: None });
    assert_eq!(status(h, number), "delivered", "{r}");
}

/// Every order's money adds up: what came in minus what is owed back is what the order costs
/// now if it was paid (nothing if it was not, or was cancelled); never more given back than
/// owed; exactly the orders waiting for payment have a pending request.
fn check_ledger(h: &Harness) -> Result<(), TestCaseError> {
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    let mut stmt = conn.prepare("SELECT id, number, status, total, payment FROM orders").expect("sql");
    let orders: Vec<(i64, String, String, i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .expect("orders")
        .collect::<Result<_, _>>()
        .expect("rows");
    for (id, number, status, total, method) in orders {
        let sum = |kind: &str| -> i64 {
            conn.query_row(
                "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE order_id = ?1 AND kind = ?2",
                rusqlite::params![id, kind],
                |r| r.get(0),
            )
            .expect("sum")
        };
        let (paid, goodwill, refunded) = (sum("payment"), sum("goodwill"), sum("refund"));
        let owed = sum("refund_owed") + goodwill;
        prop_assert!(refunded <= owed, "{number}: refunded {refunded} > owed {owed}");
        let code: Option<i64> = conn
            .query_row("SELECT unique_code FROM payments WHERE order_id = ?1 AND status = 'paid'", [id], |r| r.get(0))
            .ok();
        let closed = matches!(status.as_str(), "cancelled" | "rejected");
        let delivered = status == "delivered";
        // What the market keeps: the order's price now, less any goodwill it gave. Cash at the
        // door pays what the courier collected: above the bill it is owed back at once; below
        // it the order keeps that much less (the admins were told of the shortfall).
        let charge = match code {
            Some(_) if closed => 0,
            Some(code) => (total + code - goodwill).max(0),
            None if method == "cod" && delivered => (paid.min(total) - goodwill).max(0),
            None => 0,
        };
        prop_assert_eq!(paid - owed, charge, "{} ({}, {}): paid {} owed {}", number, status, method, paid, owed);
        let pending: i64 = conn
            .query_row("SELECT COUNT(*) FROM payments WHERE order_id = ?1 AND status = 'pending'", [id], |r| r.get(0))
            .expect("pending");
        prop_assert_eq!(
            pending,
            i64::from(status == "awaiting_payment"),
            "{} ({}): {} pending",
            number,
            status,
            pending
        );
        if status == "awaiting_payment" {
            let amount: i64 = conn
                .query_row(
                    "SELECT amount - unique_code FROM payments WHERE order_id = ?1 AND status = 'pending'",
                    [id],
                    |r| r.get(0),
                )
                .expect("amount");
            prop_assert_eq!(amount, total, "{}: the request is for the current total", number);
        }
        if method == "cod" {
            let payments: i64 = conn
                .query_row("SELECT COUNT(*) FROM ledger WHERE order_id = ?1 AND kind = 'payment'", [id], |r| r.get(0))
                .expect("payments");
            prop_assert_eq!(
                payments,
                i64::from(delivered),
                "{} ({}): cash is taken once, at the door, with the delivery",
                number,
                status
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_ledger_adds_up_over_random_order_histories(steps in proptest::collection::vec(step(), 1..24)) {
        let mut h = Harness::new("blimbing");
        market_with_couriers(&mut h, &[BUDI]);
        let mut newest = None;
        for s in &steps {
            apply(&mut h, &mut newest, s);
            check_ledger(&h)?;
        }
    }
}

#[test]
fn an_admin_cancels_a_paid_order_with_its_courier_and_the_money_is_owed_back() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[common::market::BUDI]);
    common::market::start_shift(&mut h, "budi");
    let kk = h.engine.catalog().offers_for("blimbing", "kangkung")[0].id;
    as_user(&mut h, SRI);
    h.command("/stok kangkung 10");
    let number = place(&mut h, "qris");
    accept(&mut h, &number);
    as_user(&mut h, SRI);
    h.button(&Action::TraderPack(sub_id(&h, &number)).encode());
    assert!(admin(&mut h, &format!("/lunas {number}")).contains("dicatat lunas"));
    assert_eq!(h.count("SELECT COUNT(*) FROM deliveries WHERE status = 'offered'"), 1, "Budi is offered it");
    assert_eq!(h.count(&format!("SELECT stock FROM offers WHERE id = {kk}")), 7);

    // A shopper cannot, a reason is needed, and a made-up order is not there.
    as_user(&mut h, "ani");
    assert!(joined(&h.command(&format!("/batalkan {number} iseng"))).contains("perintah itu tidak dikenal"));
    let r = admin(&mut h, &format!("/batalkan {number}"));
    assert!(r.contains("Tulis: /batalkan"), "{r}");
    assert!(admin(&mut h, "/batalkan BLB-0999 salah").contains("tidak ada di pasar ini"));
    assert_eq!(status(&h, &number), "ready_for_pickup");

    let r = admin(&mut h, &format!("/batalkan {number} pembeli minta batal lewat telepon"));
    assert!(r.contains("dibatalkan"), "{r}");
    assert_eq!(status(&h, &number), "cancelled");
    assert_eq!(h.count("SELECT COUNT(*) FROM sub_orders WHERE status = 'cancelled'"), 1);
    assert_eq!(h.count(&format!("SELECT stock FROM offers WHERE id = {kk}")), 10, "stock back");
    assert_eq!(h.count("SELECT COUNT(*) FROM deliveries WHERE status = 'cancelled'"), 1);
    let sum = |h: &Harness, kind: &str| {
        h.count(&format!("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind = '{kind}'"))
    };
    assert_eq!((sum(&h, "payment"), sum(&h, "refund_owed")), (15_400, 15_400), "all of it owed back");
    let told = |h: &Harness, user: &str, needle: &str| {
        h.count(&format!("SELECT COUNT(*) FROM outbox WHERE recipient = '{user}' AND message LIKE '%{needle}%'"))
    };
    assert_eq!(told(&h, "ani", "dibatalkan oleh pengelola pasar: pembeli minta batal lewat telepon"), 1);
    assert_eq!(told(&h, SRI, "dibatalkan oleh pengelola pasar"), 1);
    assert_eq!(told(&h, "budi", "dibatalkan oleh pengelola pasar"), 1);
    // Twice: refused, nothing more owed.
    assert!(admin(&mut h, &format!("/batalkan {number} lagi")).contains("tidak bisa dibatalkan"));
    assert_eq!(sum(&h, "refund_owed"), 15_400);
}
