//! A market on an outside delivery vendor: `pasar run` posts the job to a fake vendor on
//! 127.0.0.1 (retrying its server errors) and takes the vendor's HMAC-signed callbacks on its
//! HTTP server, in order, duplicated, out of order and badly signed; a vendor that refuses the
//! job hands it back to the market's admins.

mod common;

use common::fake_vendor::FakeVendor;
use common::market::{ADMIN, BUDI, accept, as_user, delivery, market_with_couriers, place_order, start_shift};
use common::{Harness, Running, joined, post_json, run_pasar, wait_for};
use pasar_online::config::Config;
use pasar_online::integration::signature::sign;

const KEY: &str = "vendor-api-key";
const SECRET: &str = "vendor-callback-secret";

/// A harness whose engine knows that Pasar Blimbing uses the vendor at `url`.
fn vendor_market(url: &str) -> Harness {
    let mut config = Config { vendor_url: Some(url.to_string()), ..Config::default() };
    config.policy.vendor_markets.insert("blimbing".into());
    Harness::with_config("blimbing", config)
}

/// `pasar run` on the harness's database, with the vendor and the HTTP server.
fn start(h: &Harness, vendor: &FakeVendor) -> Running {
    let config = |port: u16| {
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nops_listen = \"127.0.0.1:0\"\n[delivery]\nvendor_url = \"{}\"\n[markets.blimbing]\ndelivery = \"vendor\"\n",
            vendor.url
        )
    };
    let env = [
        (pasar_online::integration::vendor::KEY_VARIABLE, KEY),
        (pasar_online::integration::vendor::SECRET_VARIABLE, SECRET),
    ];
    // Up when our server answers an unsigned callback with 401.
    run_pasar(h, config, &env, |port| callback(port, "{}", None) == 401)
}

/// Posts a callback (signed as given); returns the status.
fn callback(port: u16, body: &str, signature: Option<&str>) -> u16 {
    match signature {
        Some(sig) => post_json(port, "/delivery/vendor", body, &[("X-Vendor-Signature", sig)]),
        None => post_json(port, "/delivery/vendor", body, &[]),
    }
}

fn signed(port: u16, body: &str) -> u16 {
    callback(port, body, Some(&sign(SECRET.as_bytes(), body.as_bytes())))
}

fn news(event: &str, reference: &str, status: &str, at: &str, extra: &str) -> String {
    format!(
        r#"{{"event_id":"{event}","reference":"{reference}","job_id":"JOB-2","status":"{status}","at":"{at}"{extra}}}"#
    )
}

/// Messages queued for a console user whose text contains `needle`.
fn told(h: &Harness, user: &str, needle: &str) -> i64 {
    h.count(&format!(
        "SELECT COUNT(*) FROM outbox WHERE channel = 'console' AND recipient = '{user}' AND message LIKE '%{needle}%'"
    ))
}

#[test]
fn vendor_jobs_and_callbacks_in_order_duplicated_out_of_order_and_badly_signed() {
    let vendor = FakeVendor::start(1, false);
    let mut h = vendor_market(&vendor.url);
    market_with_couriers(&mut h, &[BUDI]);
    start_shift(&mut h, "budi");
    let number = place_order(&mut h, "ani", Some((-7.9290, 112.6520)));
    accept(&mut h, &number, true);
    let (d, status, courier) = delivery(&h, &number);
    assert_eq!((status.as_str(), courier), ("offered", None), "the vendor's, not offered to Budi");
    assert_eq!(
        h.count("SELECT COUNT(*) FROM outbox WHERE recipient = 'budi' AND message LIKE '%Tugas antar baru%'"),
        0
    );
    let reference = format!("blimbing:{d}");

    let running = start(&h, &vendor);
    let port = running.1;
    // The first try meets a 503; the second is taken.
    wait_for(&h, &format!("SELECT COUNT(*) FROM deliveries WHERE id = {d} AND vendor_job = 'JOB-2'"), 1);
    let requests = vendor.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let job = &requests[1];
    assert_eq!(job.authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(job.idempotency_key.as_deref(), Some(reference.as_str()), "a retry is the same job");
    assert_eq!(job.body["reference"], reference.as_str());
    assert_eq!(job.body["order"], number.as_str());
    assert_eq!(job.body["pickup"]["stalls"][0]["number"], "A-07");
    assert_eq!(job.body["pickup"]["stalls"][0]["items"][0], "Kangkung 3 ikat");
    assert_eq!(job.body["dropoff"]["lat"], -7.929);
    assert_eq!(job.body["dropoff"]["phone"], "+6281234567890");
    assert_eq!(job.body["cash_on_delivery"], 9000);

    let inbox = |h: &Harness| h.count("SELECT COUNT(*) FROM inbox WHERE source_id LIKE 'vendor:%'");
    let assigned = news(
        "e1",
        &reference,
        "assigned",
        "2026-11-28T00:10:00Z",
        r#","courier":{"name":"Eko Prasetyo","phone":"0857-1234-5678","vehicle":"Honda Vario","plate":"N 4321 XY"},"position":{"lat":-7.9352,"lon":112.6453}"#,
    );
    // Badly signed, unsigned, malformed, another market: refused, nothing stored.
    assert_eq!(callback(port, &assigned, Some(&sign(b"wrong", assigned.as_bytes()))), 401);
    assert_eq!(callback(port, &assigned, None), 401);
    assert_eq!(signed(port, "{\"event_id\": 1"), 400);
    assert_eq!(signed(port, &news("x", "blimbing:abc", "assigned", "2026-11-28T00:10:00Z", "")), 400);
    assert_eq!(signed(port, &news("x", "dinoyo:1", "assigned", "2026-11-28T00:10:00Z", "")), 404);
    assert_eq!(inbox(&h), 0);

    // In order, then the same news again.
    assert_eq!(signed(port, &assigned), 200);
    wait_for(&h, &format!("SELECT COUNT(*) FROM deliveries WHERE id = {d} AND status = 'assigned'"), 1);
    assert_eq!(signed(port, &assigned), 200, "a duplicate is acknowledged");
    assert_eq!(inbox(&h), 1, "and stored once");
    assert_eq!(told(&h, "ani", "Kurir untuk pesanan"), 1);

    // Out of order: delivered arrives before picked_up. The late pickup moves nothing back.
    let delivered = news(
        "e3",
        &reference,
        "delivered",
        "2026-11-28T00:40:00Z",
        r#","proof_url":"https://vendor.example/p/77.jpg""#,
    );
    assert_eq!(signed(port, &delivered), 200);
    wait_for(&h, &format!("SELECT COUNT(*) FROM orders WHERE number = '{number}' AND status = 'delivered'"), 1);
    let picked =
        news("e2", &reference, "picked_up", "2026-11-28T00:20:00Z", r#","position":{"lat":-7.93,"lon":112.65}"#);
    assert_eq!(signed(port, &picked), 200);
    let late_assigned =
        news("e4", &reference, "assigned", "2026-11-28T00:05:00Z", r#","position":{"lat":-7.95,"lon":112.64}"#);
    assert_eq!(signed(port, &late_assigned), 200);
    wait_for(&h, "SELECT COUNT(*) FROM inbox WHERE source_id LIKE 'vendor:%' AND status = 'done'", 4);
    let (_, status, _) = delivery(&h, &number);
    assert_eq!(status, "delivered", "never backwards");
    assert_eq!(
        h.count(&format!(
            "SELECT COUNT(*) FROM deliveries WHERE id = {d} AND proof = 'https://vendor.example/p/77.jpg'"
        )),
        1
    );
    assert_eq!(told(&h, "ani", "Kurir untuk pesanan"), 1, "the late 'assigned' told nobody anything");
    assert_eq!(told(&h, "ani", "dalam perjalanan"), 0, "the late pickup told nobody anything");
    assert_eq!(told(&h, "ani", "sudah diterima"), 1);
    assert_eq!(
        h.count(&format!("SELECT COUNT(*) FROM sub_orders WHERE order_id = (SELECT id FROM orders WHERE number = '{number}') AND status = 'picked_up'")),
        1,
        "the stall's part counts as collected"
    );
    // The pickup's position (00:20) is kept; the late news' older one (00:05) is not.
    assert_eq!(
        h.count(&format!("SELECT CAST(ROUND(vendor_lat * 10000) AS INTEGER) FROM deliveries WHERE id = {d}")),
        -79300
    );
    drop(running);

    // The shopper's timeline names the vendor's courier, who is rated like the market's own.
    as_user(&mut h, "ani");
    let r = h.command(&format!("/status {number}"));
    let timeline = joined(&r);
    assert!(timeline.contains("Kurir Eko Prasetyo ditugaskan"), "{timeline}");
    assert!(timeline.contains("Honda Vario N 4321 XY"), "{timeline}");
    assert_eq!(told(&h, "ani", "pengantaran oleh kurir Eko Prasetyo"), 1);
    let order = h.count(&format!("SELECT id FROM orders WHERE number = '{number}'"));
    let r = h.button(&pasar_online::conversation::payload::Action::Rate { order, sub: None, stars: 5 }.encode());
    assert!(joined(&r).contains("untuk Eko Prasetyo") && joined(&r).contains("Sayur Bu Sri"), "{r:#?}");
    assert_eq!(
        h.count(&format!(
            "SELECT COUNT(*) FROM ratings WHERE target = 'vendor_courier' AND target_id = {d} AND stars = 5"
        )),
        1
    );
}

#[test]
fn a_job_the_vendor_refuses_goes_back_to_the_admins() {
    let vendor = FakeVendor::start(0, true);
    let mut h = vendor_market(&vendor.url);
    market_with_couriers(&mut h, &[BUDI]);
    start_shift(&mut h, "budi");
    let number = place_order(&mut h, "ani", None);
    accept(&mut h, &number, true);
    let (d, _, _) = delivery(&h, &number);
    as_user(&mut h, ADMIN);
    let r = h.command(&format!("/tugaskan {number} budi"));
    assert!(joined(&r).contains("sedang ditangani vendor pengantaran;"), "the vendor has it: {r:#?}");

    let running = start(&h, &vendor);
    wait_for(&h, &format!("SELECT COUNT(*) FROM deliveries WHERE id = {d} AND status = 'unassigned'"), 1);
    assert_eq!(vendor.requests().len(), 1, "a refusal is not retried");
    assert_eq!(told(&h, ADMIN, "Vendor pengantaran tidak bisa mengantar"), 1);
    drop(running);

    // The admin gives it to the market's own courier.
    h.restart();
    as_user(&mut h, ADMIN);
    let r = h.command(&format!("/tugaskan {number} budi"));
    assert!(joined(&r).contains("ditugaskan ke Budi Santoso"), "{r:#?}");
    let (_, status, courier) = delivery(&h, &number);
    assert_eq!((status.as_str(), courier.as_deref()), ("assigned", Some("budi")));
}

/// Vendor news straight into the engine, as the callback handler stores it.
fn vendor_news(h: &mut Harness, event: &str, reference: &str, status: &str, at: &str) {
    let body = news(
        event,
        reference,
        status,
        at,
        r#","courier":{"name":"Eko Prasetyo","phone":"0857-1234-5678","vehicle":"Honda Vario","plate":"N 4321 XY"}"#,
    );
    let update = pasar_online::integration::vendor::VendorUpdate::parse(body.as_bytes()).expect("news");
    let me = h.user.clone();
    h.user = pasar_online::integration::vendor::vendor_user();
    h.send(pasar_online::channel::Inbound::VendorStatus(Box::new(update)));
    h.user = me;
}

#[test]
fn a_job_the_vendor_gives_back_stays_given_back_and_an_admin_can_take_one_over() {
    let mut h = vendor_market("http://127.0.0.1:9/v1");
    market_with_couriers(&mut h, &[BUDI]);
    start_shift(&mut h, "budi");
    // The vendor says no, then an older "assigned" arrives late: the job stays the admins'.
    let first = place_order(&mut h, "ani", None);
    accept(&mut h, &first, true);
    let (d1, _, _) = delivery(&h, &first);
    let r1 = format!("blimbing:{d1}");
    vendor_news(&mut h, "a1", &r1, "rejected", "2026-11-28T00:10:00Z");
    vendor_news(&mut h, "a0", &r1, "assigned", "2026-11-28T00:05:00Z");
    assert_eq!(delivery(&h, &first).1, "unassigned");
    assert_eq!(told(&h, "ani", "Kurir untuk pesanan"), 0, "nobody was told of a courier");
    as_user(&mut h, ADMIN);
    assert!(joined(&h.command(&format!("/tugaskan {first} budi"))).contains("ditugaskan ke Budi Santoso"));

    // Its courier takes a job, then the vendor gives it back before collecting: the admins'.
    let second = place_order(&mut h, "dewi", None);
    accept(&mut h, &second, true);
    let (d2, _, _) = delivery(&h, &second);
    let r2 = format!("blimbing:{d2}");
    vendor_news(&mut h, "b1", &r2, "assigned", "2026-11-28T00:10:00Z");
    vendor_news(&mut h, "b2", &r2, "rejected", "2026-11-28T00:12:00Z");
    assert_eq!(delivery(&h, &second).1, "unassigned");
    assert_eq!(told(&h, ADMIN, "Vendor pengantaran tidak bisa mengantar pesanan"), 2);

    // A third is with the vendor's courier: an admin may take it over only on purpose.
    let third = place_order(&mut h, "sri", None);
    accept(&mut h, &third, true);
    let (d3, _, _) = delivery(&h, &third);
    vendor_news(&mut h, "c1", &format!("blimbing:{d3}"), "assigned", "2026-11-28T00:10:00Z");
    as_user(&mut h, ADMIN);
    let r = h.command(&format!("/tugaskan {third} budi"));
    assert!(joined(&r).contains("sedang ditangani vendor pengantaran (Eko Prasetyo)"), "{r:#?}");
    let r = h.command(&format!("/tugaskan {third} budi paksa"));
    assert!(joined(&r).contains("ditugaskan ke Budi Santoso"), "{r:#?}");
    assert_eq!(delivery(&h, &third), (d3, "assigned".into(), Some("budi".into())));
    // The vendor's later news about it changes nothing now.
    vendor_news(&mut h, "c2", &format!("blimbing:{d3}"), "delivered", "2026-11-28T00:30:00Z");
    assert_eq!(delivery(&h, &third).1, "assigned");
}

#[test]
fn an_old_rating_button_pressed_during_a_checkout_does_not_take_over_what_is_typed_next() {
    let mut h = vendor_market("http://127.0.0.1:9/v1");
    market_with_couriers(&mut h, &[]);
    let number = place_order(&mut h, "ani", None);
    accept(&mut h, &number, true);
    let (d, _, _) = delivery(&h, &number);
    let reference = format!("blimbing:{d}");
    vendor_news(&mut h, "d1", &reference, "delivered", "2026-11-28T00:30:00Z");
    let order = h.count(&format!("SELECT id FROM orders WHERE number = '{number}'"));
    let sub = h.count(&format!("SELECT id FROM sub_orders WHERE order_id = {order}"));
    // Ani starts a new checkout, and on the name question presses the old stars.
    as_user(&mut h, "ani");
    let kk = h.engine.catalog().offers_for("blimbing", "kangkung")[0].id;
    h.button(&pasar_online::conversation::payload::Action::Offer(kk).encode());
    h.text("1 ikat");
    h.button("checkout");
    let r = h.button(&pasar_online::conversation::payload::Action::Rate { order, sub: Some(sub), stars: 4 }.encode());
    assert!(joined(&r).contains("Terima kasih"), "{r:#?}");
    let r = h.text("Ani Rahayu");
    assert!(joined(&r).contains("Nomor HP"), "the checkout goes on: {r:#?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM ratings WHERE comment IS NOT NULL"), 0);
}

/// Vendor news counts only when it comes the vendor's way (its callback, as its user): the same
/// news sent in as a shopper's changes nothing.
#[test]
fn vendor_news_that_does_not_come_from_the_vendor_is_dropped() {
    let mut h = vendor_market("http://127.0.0.1:9/v1");
    market_with_couriers(&mut h, &[BUDI]);
    let number = place_order(&mut h, "ani", None);
    accept(&mut h, &number, true);
    let (d, before, _) = delivery(&h, &number);
    let body = news("x1", &format!("blimbing:{d}"), "rejected", "2026-11-28T00:10:00Z", "");
    let update = pasar_online::integration::vendor::VendorUpdate::parse(body.as_bytes()).expect("news");
    as_user(&mut h, "ani");
    h.send(pasar_online::channel::Inbound::VendorStatus(Box::new(update)));
    assert_ne!(before, "unassigned");
    assert_eq!(delivery(&h, &number).1, before, "unchanged");
    assert_eq!(told(&h, ADMIN, "Vendor pengantaran tidak bisa mengantar"), 0);
}
