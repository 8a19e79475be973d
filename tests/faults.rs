//! Fault tests (issue 10) against the real `pasar run`, with Telegram (a fake Bot API) and
//! WhatsApp (signed webhooks, a fake Graph API) on a temp database: the test-sized runs of
//! `pasar loadtest replay` and `pasar loadtest last-unit` (the scenarios, and every check they
//! make, are in `src/loadtest/replay.rs` and `src/loadtest/last_unit.rs`; a failed check is an
//! error naming it).
//!
//! - **replay**: three shoppers a channel each place a whole order while every update and every
//!   webhook delivery comes three times, some after newer ones. Each has exactly one effect:
//!   one order per journey, the same replies as a run without redeliveries, stock taken once.
//! - **last unit**: twenty shoppers (ten a channel) press "Pesan sekarang" at the same moment for
//!   a stall's last kilo (exactly one gets it), and for its last 7 kg in different amounts. Never
//!   oversold, everyone answered, and nobody refused while enough was left.

use pasar_online::loadtest::{last_unit, replay};
use std::path::Path;

fn pasar() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pasar"))
}

#[test]
fn every_update_delivered_three_times_and_out_of_order_has_one_effect() {
    let r =
        replay::run(pasar(), &replay::ReplayArgs { markets: 1, per_channel: 3 }).unwrap_or_else(|e| panic!("{e:#}"));
    replay::print(&r);
    assert_eq!((r.telegram_shoppers, r.whatsapp_shoppers, r.orders), (3, 3, 6));
    // The admin's invite, the trader's sign-up, eleven steps a shopper, six acceptances.
    assert_eq!(r.updates, 2 + 6 * 11 + 6);
    // Three Telegram shoppers' and the staff's updates, each three times; three WhatsApp
    // shoppers' eleven bodies, each three times.
    assert_eq!(r.telegram_deliveries, 3 * (2 + 3 * 11 + 6));
    assert_eq!(r.whatsapp_posts, 3 * 3 * 11);
    assert_eq!(r.grams, 1000 + 500 + 2000 + 1500 + 3000 + 1000);
    assert!(r.replies > 6 * 12, "{} replies", r.replies);
}

#[test]
fn the_last_kilo_goes_to_exactly_one_of_twenty_shoppers() {
    let r = last_unit::last_kilo(pasar(), 10).unwrap_or_else(|e| panic!("{e:#}"));
    last_unit::print(&r);
    assert_eq!((r.shoppers, r.orders, r.refused, r.sold, r.left), (20, 1, 19, 1000, 0));
}

#[test]
fn twenty_shoppers_racing_for_the_last_kilos_with_different_amounts_never_oversell() {
    let r = last_unit::last_kilos(pasar(), 10).unwrap_or_else(|e| panic!("{e:#}"));
    last_unit::print(&r);
    assert_eq!((r.shoppers, r.stock), (20, 7000));
    assert!(r.sold <= r.stock && r.sold + r.left == r.stock);
    assert!(r.orders >= 1 && r.refused >= 1 && r.orders + r.refused == 20);
}
