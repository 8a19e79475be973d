//! Virtual accounts through the bank partner's API (Midtrans Core API's contract): `pasar run`
//! asks a fake bank on 127.0.0.1 for the account (retrying its server errors), the shopper gets
//! the number, and the bank's signed notifications are taken on the HTTP server: a good one, a
//! duplicate, a wrong amount, a bad signature, malformed JSON, an unknown request, and money for
//! an order that was cancelled meanwhile. A bank that refuses hands the order to the admins.

mod common;

use common::fake_bank::{FakeBank, va_number};
use common::market::{ADMIN, SRI, as_user, market_with_couriers, order_id};
use common::{Harness, Running, joined, payload, post_json, run_pasar, wait_for};
use pasar_online::config::Config;
use pasar_online::conversation::payload::Action;
use pasar_online::integration::bank::{SERVER_KEY_VARIABLE, signature};

const SERVER_KEY: &str = "SB-Mid-server-test";

/// A harness whose engine offers virtual accounts from the bank at `url`.
fn bank_market(url: &str) -> Harness {
    let mut config = Config { bank_url: Some(url.to_string()), ..Config::default() };
    config.policy.payment.va_bank = Some("bni".into());
    let mut h = Harness::with_config("blimbing", config);
    // `pasar run` keeps real time, and runs the payment timers by it.
    h.clock.set(chrono::Utc::now());
    market_with_couriers(&mut h, &[]);
    h
}

fn start(h: &Harness, bank: &FakeBank) -> Running {
    start_with(h, bank, "")
}

/// [`start`] with more `[payment]` lines.
fn start_with(h: &Harness, bank: &FakeBank, payment: &str) -> Running {
    let config = |port: u16| {
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nops_listen = \"127.0.0.1:0\"\n[payment]\nva_url = \"{}\"\nva_bank = \"bni\"\n{payment}",
            bank.url
        )
    };
    // Up when our server answers a notification that is not one with 400.
    run_pasar(h, config, &[(SERVER_KEY_VARIABLE, SERVER_KEY)], |port| notify(port, "{}") == 400)
}

fn notify(port: u16, body: &str) -> u16 {
    post_json(port, "/payment/notify", body, &[])
}

/// A notification as the bank signs it (or with another key).
fn notification(order_id: &str, status: &str, gross: &str, tx: &str, key: &str) -> String {
    serde_json::json!({
        "order_id": order_id, "status_code": "200", "gross_amount": gross, "transaction_status": status,
        "transaction_id": tx, "payment_type": "bank_transfer", "fraud_status": "accept",
        "signature_key": signature(order_id, "200", gross, key),
    })
    .to_string()
}

/// Ani orders 3 ikat kangkung (Rp 9.000) by virtual account; Bu Sri accepts.
fn va_order(h: &mut Harness) -> String {
    as_user(h, "ani");
    let kk = h.engine.catalog().offers_for("blimbing", "kangkung")[0].id;
    h.button(&Action::Offer(kk).encode());
    h.text("3 ikat");
    h.button("checkout");
    h.text("Ani Rahayu");
    h.text("0812-3456-7890");
    let r = h.text("Jl. Borobudur No. 12, Purwodadi");
    // The first slot still open, whatever the time of day.
    let slot = r.iter().flat_map(|m| &m.buttons).find(|b| b.payload.starts_with("slot:")).expect("a slot");
    let r = h.button(&slot.payload.clone());
    assert!(joined(&r).contains("Bayar pakai apa") && payload(&r, "Virtual account") == "pay:va", "{r:#?}");
    h.button("pay:va");
    h.button("note:none");
    let r = h.button("place");
    let number = joined(&r).split("Pesanan ").nth(1).and_then(|s| s.split_whitespace().next()).expect("n").to_string();
    let sub = h.count(&format!("SELECT id FROM sub_orders WHERE order_id = {}", order_id(h, &number)));
    as_user(h, SRI);
    h.button(&Action::TraderAccept(sub).encode());
    number
}

fn told(h: &Harness, user: &str, needle: &str) -> i64 {
    h.count(&format!(
        "SELECT COUNT(*) FROM outbox WHERE channel = 'console' AND recipient = '{user}' AND message LIKE '%{needle}%'"
    ))
}

fn status(h: &Harness, number: &str) -> String {
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    conn.query_row("SELECT status FROM orders WHERE number = ?1", [number], |r| r.get(0)).expect("order")
}

fn ledger(h: &Harness, number: &str, kind: &str) -> i64 {
    h.count(&format!(
        "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind = '{kind}' AND order_id = {}",
        order_id(h, number)
    ))
}

#[test]
fn a_virtual_account_is_made_paid_and_notified_in_every_way() {
    let bank = FakeBank::start(1, false);
    let mut h = bank_market(&bank.url);
    let number = va_order(&mut h);
    assert_eq!(status(&h, &number), "awaiting_payment");
    assert_eq!(told(&h, "ani", "sedang dibuat oleh bank"), 1);
    let payment = h.count("SELECT id FROM payments WHERE status = 'pending'");
    let bank_order = format!("P{payment}-{number}");

    let running = start(&h, &bank);
    let port = running.1;
    // A 500 first, then the account.
    wait_for(&h, "SELECT COUNT(*) FROM bank_requests WHERE status = 'sent'", 1);
    wait_for(&h, &format!("SELECT COUNT(*) FROM payments WHERE reference = '{}'", va_number(2)), 1);
    let charges = bank.charges();
    assert_eq!(charges.len(), 2);
    let basic = format!("Basic {}", base64_of(&format!("{SERVER_KEY}:")));
    assert_eq!(charges[1].authorization.as_deref(), Some(basic.as_str()));
    assert_eq!(charges[1].body["payment_type"], "bank_transfer");
    assert_eq!(charges[1].body["transaction_details"]["order_id"], bank_order.as_str());
    assert_eq!(charges[1].body["transaction_details"]["gross_amount"], 9000);
    assert_eq!(charges[1].body["bank_transfer"]["bank"], "bni");
    // The account lasts as long as the request has left (a retry asks for less than the hour).
    let minutes = charges[1].body["custom_expiry"]["expiry_duration"].as_i64().expect("minutes");
    assert!((58..=60).contains(&minutes), "{minutes}");
    wait_for(
        &h,
        &format!("SELECT COUNT(*) FROM outbox WHERE recipient = 'ani' AND message LIKE '%{}%'", va_number(2)),
        1,
    );

    let inbox = |h: &Harness| h.count("SELECT COUNT(*) FROM inbox WHERE source_id LIKE 'bank:%'");
    let paid = notification(&bank_order, "settlement", "9000.00", "tx-2", SERVER_KEY);
    // Badly signed, malformed, not ours, cents: refused, nothing stored.
    assert_eq!(notify(port, &notification(&bank_order, "settlement", "9000.00", "tx-2", "guess")), 401);
    assert_eq!(notify(port, "{\"order_id\": 1"), 400);
    assert_eq!(notify(port, &notification("P999-BLB-0009", "settlement", "9000.00", "tx-9", SERVER_KEY)), 404);
    assert_eq!(notify(port, &notification("BLB-0001", "settlement", "9000.00", "tx-9", SERVER_KEY)), 404);
    assert_eq!(notify(port, &notification(&bank_order, "settlement", "9000.50", "tx-2", SERVER_KEY)), 400);
    assert_eq!(inbox(&h), 0);

    // A pending notice changes nothing; a wrong amount is recorded and owed back.
    assert_eq!(notify(port, &notification(&bank_order, "pending", "9000.00", "tx-2", SERVER_KEY)), 200);
    assert_eq!(notify(port, &notification(&bank_order, "settlement", "8000.00", "tx-1", SERVER_KEY)), 200);
    wait_for(
        &h,
        &format!("SELECT COUNT(*) FROM ledger WHERE kind = 'refund_owed' AND order_id = {}", order_id(&h, &number)),
        1,
    );
    assert_eq!(status(&h, &number), "awaiting_payment");
    assert_eq!(ledger(&h, &number, "refund_owed"), 8000);

    // The right amount pays it; the same notification again is harmless.
    assert_eq!(notify(port, &paid), 200);
    wait_for(&h, &format!("SELECT COUNT(*) FROM orders WHERE number = '{number}' AND status = 'preparing'"), 1);
    assert_eq!(notify(port, &paid), 200);
    assert_eq!(inbox(&h), 3, "pending, the wrong amount, the payment; the duplicate is not stored");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(ledger(&h, &number, "payment"), 17_000);
    assert_eq!(ledger(&h, &number, "refund_owed"), 8000);
    assert_eq!(told(&h, "ani", "sudah kami terima. Terima kasih"), 1);
    assert_eq!(told(&h, SRI, "sudah dibayar"), 1);

    // Money for an order cancelled meanwhile: recorded and owed back in full.
    let second = va_order(&mut h);
    wait_for(&h, "SELECT COUNT(*) FROM bank_requests WHERE status = 'sent'", 2);
    let second_payment = h.count(&format!("SELECT id FROM payments WHERE order_id = {}", order_id(&h, &second)));
    as_user(&mut h, "ani");
    let n = pasar_online::domain::order::OrderNumber::parse(&second).expect("n");
    h.button(&Action::CancelOrder(n.clone()).encode());
    let r = joined(&h.button(&Action::CancelOrderConfirmed(n).encode()));
    assert!(r.contains("sudah dibatalkan"), "{r}");
    let late = notification(&format!("P{second_payment}-{second}"), "settlement", "9000.00", "tx-3", SERVER_KEY);
    assert_eq!(notify(port, &late), 200);
    wait_for(
        &h,
        &format!(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind = 'refund_owed' AND order_id = {}",
            order_id(&h, &second)
        ),
        9000,
    );
    assert_eq!(status(&h, &second), "cancelled");
    assert!(told(&h, ADMIN, &second) >= 1, "the admins are told what to give back");
    drop(running);
}

#[test]
fn a_bank_that_refuses_hands_the_order_to_the_admins() {
    let bank = FakeBank::start(0, true);
    let mut h = bank_market(&bank.url);
    let number = va_order(&mut h);
    let _running = start(&h, &bank);
    wait_for(&h, "SELECT COUNT(*) FROM bank_requests WHERE status = 'failed'", 1);
    wait_for(
        &h,
        &format!(
            "SELECT COUNT(*) FROM outbox WHERE recipient = '{ADMIN}' AND message LIKE '%virtual account%{number}%'"
        ),
        1,
    );
    assert_eq!(told(&h, "ani", "Pengelola pasar akan mengirim cara pembayarannya"), 1);
    assert_eq!(bank.charges().len(), 1, "a refusal is not retried");
    assert_eq!(status(&h, &number), "awaiting_payment", "the admins can still take the money with /lunas");
}

/// Base64 (standard alphabet, padded) of a short text, for the expected Basic header.
fn base64_of(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn money_for_an_expired_order_is_recorded_and_owed_back_and_counts_once() {
    use pasar_online::channel::{Inbound, InboundEvent};
    use pasar_online::conversation::engine::Clock;
    use pasar_online::integration::bank::{BankEvent, BankNews, bank_user};
    let mut h = bank_market("http://127.0.0.1:9");
    let number = va_order(&mut h);
    let payment = h.count("SELECT id FROM payments WHERE status = 'pending'");
    h.clock.advance(chrono::Duration::minutes(61));
    h.engine.process_pending().expect("timers");
    assert_eq!(status(&h, &number), "cancelled");
    let paid = BankEvent::Paid { amount: pasar_online::domain::money::Rupiah(9000), transaction_id: "tx-late".into() };
    for _ in 0..2 {
        // The same money reported twice (under two inbox keys): one ledger row.
        let event = InboundEvent {
            source_id: format!("bank:tx-late:{}", h.count("SELECT COUNT(*) FROM inbox")),
            market: "blimbing".into(),
            user: bank_user(),
            display_name: None,
            received_at: h.clock.now(),
            inbound: Inbound::BankNews(Box::new(BankNews { payment_id: payment, event: paid.clone() })),
            pressed_on: None,
        };
        h.deliver_event(event);
    }
    assert_eq!(ledger(&h, &number, "payment"), 9000);
    assert_eq!(ledger(&h, &number, "refund_owed"), 9000);
    assert_eq!(status(&h, &number), "cancelled");
    assert_eq!(h.count("SELECT COUNT(*) FROM payments WHERE status = 'expired'"), 1);
}

#[test]
fn a_settlement_replayed_under_another_transaction_id_counts_once_and_the_admin_leaves_it_to_the_bank() {
    use pasar_online::channel::{Inbound, InboundEvent};
    use pasar_online::conversation::engine::Clock;
    use pasar_online::integration::bank::{BankEvent, BankNews, bank_user};
    let mut h = bank_market("http://127.0.0.1:9");
    let number = va_order(&mut h);
    let payment = h.count("SELECT id FROM payments WHERE status = 'pending'");
    let news = |h: &mut Harness, event: BankEvent, key: &str| {
        let event = InboundEvent {
            source_id: format!("bank:{key}"),
            market: "blimbing".into(),
            user: bank_user(),
            display_name: None,
            received_at: h.clock.now(),
            inbound: Inbound::BankNews(Box::new(BankNews { payment_id: payment, event })),
            pressed_on: None,
        };
        h.deliver_event(event);
    };
    news(&mut h, BankEvent::AccountReady { bank: "bni".into(), number: "9881234500001".into() }, "account");
    as_user(&mut h, ADMIN);
    let r = joined(&h.command(&format!("/lunas {number}")));
    assert!(r.contains("bank mengonfirmasinya sendiri"), "{r}");
    assert_eq!(ledger(&h, &number, "payment"), 0);
    let paid =
        |tx: &str| BankEvent::Paid { amount: pasar_online::domain::money::Rupiah(9000), transaction_id: tx.into() };
    news(&mut h, paid("tx-real"), "tx-real");
    news(&mut h, paid("tx-forged"), "tx-forged");
    assert_eq!(ledger(&h, &number, "payment"), 9000, "the same request's money, once");
    assert_eq!(ledger(&h, &number, "refund_owed"), 0);
    assert_eq!(status(&h, &number), "preparing");
}

/// Bank news counts only when it comes the bank's way (its route, as its user): the same news in
/// a row from a chat's user changes nothing.
#[test]
fn bank_news_that_does_not_come_from_the_bank_is_dropped() {
    use pasar_online::channel::{ChannelKind, Inbound, InboundEvent, UserKey};
    use pasar_online::conversation::engine::Clock;
    use pasar_online::integration::bank::{BankEvent, BankNews};
    let mut h = bank_market("http://127.0.0.1:9");
    let number = va_order(&mut h);
    let payment = h.count("SELECT id FROM payments WHERE status = 'pending'");
    let paid = BankEvent::Paid { amount: pasar_online::domain::money::Rupiah(9000), transaction_id: "tx-1".into() };
    let telegram = UserKey { channel: ChannelKind::Telegram, id: "1001".into() };
    let whatsapp = UserKey { channel: ChannelKind::WhatsApp, id: "6281234567890".into() };
    for (user, source) in [(telegram, "bank:tx-1"), (whatsapp, "whatsapp:wamid.1")] {
        let event = InboundEvent {
            source_id: source.into(),
            market: "blimbing".into(),
            user,
            display_name: None,
            received_at: h.clock.now(),
            inbound: Inbound::BankNews(Box::new(BankNews { payment_id: payment, event: paid.clone() })),
            pressed_on: None,
        };
        h.deliver_event(event);
        assert_eq!(ledger(&h, &number, "payment"), 0, "{source}");
        assert_eq!(status(&h, &number), "awaiting_payment", "{source}");
    }
}

/// The bank makes the account but answers after our timeout. Before trying again, pasar asks
/// the bank what it has for the order, and the shopper gets the account that was made; when
/// that question fails too, the next try is refused as a duplicate order id, and the question
/// after it finds the account.
#[test]
fn an_account_made_but_answered_too_late_is_found_by_asking_the_bank() {
    for status_fail in [0, 1] {
        let bank = FakeBank::slow(1, std::time::Duration::from_secs(3), status_fail);
        let mut h = bank_market(&bank.url);
        let number = va_order(&mut h);
        let _running = start_with(&h, &bank, "va_timeout_secs = 1\n");
        wait_for(&h, &format!("SELECT COUNT(*) FROM payments WHERE reference = '{}'", va_number(1)), 1);
        wait_for(
            &h,
            &format!("SELECT COUNT(*) FROM outbox WHERE recipient = 'ani' AND message LIKE '%{}%'", va_number(1)),
            1,
        );
        assert_eq!(status(&h, &number), "awaiting_payment");
        assert_eq!(told(&h, ADMIN, "virtual account"), 0, "no admin had to step in");
        // Asked once after the timeout; with that answer lost, charged again (a duplicate) and
        // asked again.
        assert_eq!((bank.charges().len(), bank.statuses()), (1 + status_fail, 1 + status_fail));
    }
}
