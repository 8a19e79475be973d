//! Administration through the real engine: who may use which admin command (a command of a
//! role you do not have gets the same "unknown command" a shopper gets), market admins added and
//! removed by a city admin with one-time codes, and the audit of every admin action.

mod common;

use common::market::{BUDI, SRI, as_user, code_in, market_with_couriers};
use common::{Harness, joined};
use pasar_online::channel::Inbound;
use pasar_online::channel::{ChannelKind, UserKey};
use pasar_online::config::{AdminEntry, Config};
use pasar_online::conversation::payload::Action;
use pasar_online::conversation::{ADMIN_COMMANDS, CITY_ADMIN_COMMANDS, COMMAND_ALIASES};

const CITY: &str = "kantor-kota";
const UNKNOWN: &str = "perintah itu tidak dikenal";

/// A market with Bu Sri at A-07, the courier Budi, the config's city admin, and a market admin
/// (`bu-lurah`) added by the city admin's code.
fn market() -> Harness {
    let mut config = Config::default();
    let city = UserKey { channel: ChannelKind::Console, id: CITY.into() };
    config.policy.admins.push(AdminEntry { user: city, markets: Vec::new() });
    let mut h = Harness::with_config("blimbing", config);
    market_with_couriers(&mut h, &[BUDI]);
    as_user(&mut h, CITY);
    let code = code_in(&h.command("/admin_tambah"));
    as_user(&mut h, "bu-lurah");
    let r = joined(&h.command(&format!("/daftar {code}")));
    assert!(r.contains("terdaftar sebagai admin Pasar Blimbing"), "{r}");
    h
}

/// Harmless arguments for each command (nothing exists for them to change).
fn line(command: &str) -> String {
    match command {
        "undang" => "/undang Z-99".into(),
        "undang_kurir" => "/undang_kurir x".into(),
        "tugaskan" | "lunas" | "refund" | "batalkan" => format!("/{command} BLB-0999 1 uji"),
        "pembayaran" => "/pembayaran 31/02".into(),
        "admin_hapus" => "/admin_hapus".into(),
        "admin_tambah" => "/admin_tambah".into(),
        "siaran" => "/siaran uji coba".into(),
        other => format!("/{other}"),
    }
}

#[test]
fn every_admin_command_by_every_role() {
    let mut h = market();
    // (who, may use market admin commands, may use city admin commands)
    let roles = [
        ("ani", false, false),
        (SRI, false, false),
        ("budi", false, false),
        ("bu-lurah", true, false),
        (CITY, true, true),
    ];
    for (who, admin, city) in roles {
        for (commands, allowed) in [(ADMIN_COMMANDS, admin), (CITY_ADMIN_COMMANDS, city)] {
            for command in commands {
                if *command == "pesanan" {
                    continue; // everyone has a /pesanan: the shopper's own orders (tested below)
                }
                as_user(&mut h, who);
                let r = joined(&h.command(&line(command)));
                assert_eq!(!r.contains(UNKNOWN), allowed, "{who} /{command}: {r}");
            }
        }
        // Each command's English name is the same command, for the same people.
        for (english, command) in COMMAND_ALIASES {
            let allowed = if *command == "pesanan" {
                continue; // everyone's, as above
            } else if CITY_ADMIN_COMMANDS.contains(command) {
                city
            } else if ADMIN_COMMANDS.contains(command) {
                admin
            } else {
                continue;
            };
            as_user(&mut h, who);
            let typed = line(command).replacen(&format!("/{command}"), &format!("/{english}"), 1);
            let r = joined(&h.command(&typed));
            assert_eq!(!r.contains(UNKNOWN), allowed, "{who} /{english}: {r}");
        }
        // /bantuan lists exactly what the asker may use.
        as_user(&mut h, who);
        let help = joined(&h.command("/bantuan"));
        assert_eq!(help.contains("/lunas"), admin, "{who}: {help}");
        assert_eq!(help.contains("/siaran"), admin, "{who}: {help}");
        assert_eq!(help.contains("/admin_tambah"), city, "{who}: {help}");
    }
}

#[test]
fn admin_actions_are_audited_and_a_removed_admin_loses_the_role() {
    let mut h = market();
    as_user(&mut h, "bu-lurah");
    h.command("/undang A-07");
    h.command("/batalkan BLB-0999 salah ketik");
    as_user(&mut h, "ani");
    h.command("/batalkan BLB-0999 iseng"); // not an admin: refused, not audited as an admin action
    as_user(&mut h, CITY);
    let r = joined(&h.command("/audit"));
    assert!(r.contains("console:bu-lurah · /batalkan BLB-0999 salah ketik"), "{r}");
    assert!(r.contains("console:bu-lurah · /undang A-07"), "{r}");
    assert!(r.contains("console:kantor-kota · /admin_tambah"), "{r}");
    assert!(!r.contains("iseng"), "{r}");
    let newest = r.lines().nth(1).unwrap_or_default();
    assert!(newest.contains("/batalkan"), "newest first: {r}");
    assert!(joined(&h.command("/audit 0")).contains("Tulis: /audit"));
    assert!(joined(&h.command("/audit 2")).lines().count() == 3);

    let list = joined(&h.command("/admin_hapus"));
    assert!(list.contains("1. console:bu-lurah"), "{list}");
    let r = joined(&h.command("/admin_hapus 1"));
    assert!(r.contains("bukan lagi admin"), "{r}");
    as_user(&mut h, "bu-lurah");
    assert!(joined(&h.command("/audit")).contains(UNKNOWN));
    // A code works once.
    as_user(&mut h, CITY);
    let code = code_in(&h.command("/admin_tambah"));
    as_user(&mut h, "pak-rt");
    assert!(joined(&h.command(&format!("/daftar {code}"))).contains("terdaftar sebagai admin"));
    as_user(&mut h, "pak-rw");
    assert!(joined(&h.command(&format!("/daftar {code}"))).contains("tidak berlaku"));
}

/// Invite codes are stored by a keyed hash only: a copy of the database lets nobody register.
/// Once a code is used, the message that carried it to its admin and the message that used it
/// keep no trace of it; an expired code leaves its admin's message too.
#[test]
fn invite_codes_are_stored_hashed_and_redacted_once_used_or_expired() {
    let mut h = market();
    as_user(&mut h, CITY);
    let used = code_in(&h.command("/admin_tambah"));
    let expiring = code_in(&h.command("/admin_tambah"));
    let stall = code_in(&h.command("/undang A-07"));
    for code in [&used, &expiring, &stall] {
        for table in ["admin_invites", "invites"] {
            assert_eq!(h.count(&format!("SELECT COUNT(*) FROM {table} WHERE code = '{code}'")), 0, "{code} in clear");
        }
        assert_eq!(h.count(&format!("SELECT COUNT(*) FROM outbox WHERE instr(message, '{code}') > 0")), 1);
    }
    assert_eq!(h.count("SELECT COUNT(*) FROM admin_invites WHERE length(code) <> 64 OR seed IS NULL"), 0);
    // Used: gone from the stored messages, both ways.
    as_user(&mut h, "pak-rt");
    assert!(joined(&h.command(&format!("/daftar {used}"))).contains("terdaftar sebagai admin"));
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM inbox WHERE instr(event, '{used}') > 0")), 0);
    assert!(h.count("SELECT COUNT(*) FROM inbox WHERE instr(event, '[kode]') > 0") > 0);
    h.command("/bantuan"); // the next pass's timers
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM outbox WHERE instr(message, '{used}') > 0")), 0);
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM outbox WHERE instr(message, '{expiring}') > 0")), 1);
    // Two days later the others have expired: gone too, and they no longer work.
    h.clock.advance(chrono::Duration::hours(49));
    h.command("/bantuan");
    for code in [&expiring, &stall] {
        assert_eq!(h.count(&format!("SELECT COUNT(*) FROM outbox WHERE instr(message, '{code}') > 0")), 0, "{code}");
    }
    assert_eq!(h.count("SELECT COUNT(*) FROM admin_invites WHERE redacted_at IS NULL"), 0);
    as_user(&mut h, "pak-rw");
    assert!(joined(&h.command(&format!("/daftar {expiring}"))).contains("tidak berlaku"));
}

/// A database from before hashed codes: its codes in clear are re-keyed when the engine opens
/// it, and still work.
#[test]
fn invite_codes_stored_in_clear_by_an_older_version_are_rekeyed_and_still_work() {
    let mut h = market();
    as_user(&mut h, CITY);
    let code = code_in(&h.command("/admin_tambah"));
    // As an older version stored it.
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    conn.execute("UPDATE admin_invites SET code = ?1, seed = NULL WHERE used_by IS NULL", [&code]).expect("clear code");
    drop(conn);
    h.restart();
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM admin_invites WHERE code = '{code}'")), 0);
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM outbox WHERE instr(message, '{code}') > 0")), 0);
    as_user(&mut h, "pak-rt");
    assert!(joined(&h.command(&format!("/daftar {code}"))).contains("terdaftar sebagai admin"));
}

#[test]
fn a_closed_market_shows_its_reason_and_takes_no_orders_until_it_opens() {
    let mut h = market();
    as_user(&mut h, "ani");
    let kk = h.engine.catalog().offers_for("blimbing", "kangkung")[0].id;
    h.button(&pasar_online::conversation::payload::Action::Offer(kk).encode());
    h.text("3 ikat");
    h.button("checkout");
    h.text("Ani Rahayu");
    h.text("0812-3456-7890");
    let r = h.text("Jl. Borobudur No. 12, Purwodadi");
    h.button(&common::payload(&r, "Hari ini"));
    h.button("pay:cod");
    h.button("note:none");
    // Closed while Ani is at the summary.
    as_user(&mut h, "bu-lurah");
    assert!(joined(&h.command("/pasar_tutup")).contains("Tulis: /pasar_tutup"));
    assert!(joined(&h.command("/pasar_tutup banjir di Jl. Borobudur")).contains("ditutup"));
    as_user(&mut h, "ani");
    let r = joined(&h.button("place"));
    assert!(r.contains("sedang tutup: banjir di Jl. Borobudur"), "{r}");
    assert_eq!(h.count("SELECT COUNT(*) FROM orders"), 0);
    assert!(joined(&h.command("/start")).contains("sedang tutup: banjir"));
    assert!(joined(&h.button("checkout")).contains("sedang tutup"));
    assert_eq!(h.count("SELECT COUNT(*) FROM cart_lines"), 1, "the cart is kept");
    // Shopping still works; ordering again once it opens.
    as_user(&mut h, "bu-lurah");
    assert!(joined(&h.command("/pasar_buka")).contains("dibuka lagi"));
    assert!(joined(&h.command("/pasar_buka")).contains("memang sedang buka"));
    as_user(&mut h, "ani");
    assert!(!joined(&h.command("/start")).contains("tutup"));
    assert!(joined(&h.button("checkout")).contains("atas nama siapa"));
}

/// Under `pasar run` the copy is made on a thread of its own: the pass that finds the request
/// only starts it (the engine goes on with other updates meanwhile, which commit while the
/// copy reads), and a later pass reports it.
#[test]
fn a_backup_in_the_background_never_holds_up_the_engine_and_is_reported_when_done() {
    let mut h = market();
    h.engine.make_backups_in_background();
    as_user(&mut h, CITY);
    let r = joined(&h.command("/cadangan"));
    assert!(r.contains("Cadangan sedang dibuat"), "{r}");
    // The pass that took the request started the copy and returned without waiting for it.
    assert!(h.engine.backups_running(), "the copy runs on its own thread");
    assert_eq!(h.count("SELECT COUNT(*) FROM backup_requests WHERE done_at IS NULL"), 1);
    // Other people's updates go on meanwhile (each commits while the copy may be reading).
    as_user(&mut h, "bu-lurah");
    for _ in 0..5 {
        assert!(!h.command("/audit 1").is_empty(), "answered while the copy runs");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while h.count("SELECT COUNT(*) FROM backup_requests WHERE done_at IS NOT NULL") == 0 {
        assert!(std::time::Instant::now() < deadline, "the backup was never reported");
        std::thread::sleep(std::time::Duration::from_millis(20));
        h.engine.run_backups().expect("a pass");
    }
    assert!(!h.engine.backups_running());
    let files: Vec<_> = std::fs::read_dir(h.dir.path().join("backups"))
        .expect("backups folder")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let conn = rusqlite::Connection::open(&files[0]).expect("open backup");
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
    assert_eq!(check, "ok");
    assert_eq!(
        h.count(&format!(
            "SELECT COUNT(*) FROM outbox WHERE recipient = '{CITY}' AND message LIKE '%Cadangan database dibuat%integrity_check: ok%'"
        )),
        1
    );
}

#[test]
fn a_city_admin_backs_up_the_database_online() {
    let mut h = market();
    as_user(&mut h, "bu-lurah");
    assert!(joined(&h.command("/cadangan")).contains(UNKNOWN), "a market admin may not copy every market's data");
    as_user(&mut h, CITY);
    let r = joined(&h.command("/cadangan"));
    assert!(r.contains("Cadangan sedang dibuat"), "{r}");
    // Made once the request committed; the report comes on the next pass.
    let report = joined(&h.command("/audit 1"));
    let done = h.count("SELECT COUNT(*) FROM backup_requests WHERE done_at IS NOT NULL");
    assert_eq!(done, 1, "{report}");
    let dir = h.dir.path().join("backups");
    let files: Vec<_> = std::fs::read_dir(&dir).expect("backups folder").map(|e| e.expect("entry").path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let conn = rusqlite::Connection::open(&files[0]).expect("open backup");
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
    assert_eq!(check, "ok");
    let admins: i64 = conn.query_row("SELECT COUNT(*) FROM staff", [], |r| r.get(0)).expect("staff");
    assert_eq!(admins, 2, "the copy holds the market admins");
    assert_eq!(
        h.count(&format!(
            "SELECT COUNT(*) FROM outbox WHERE recipient = '{CITY}' AND message LIKE '%Cadangan database dibuat%integrity_check: ok%'"
        )),
        1
    );
}

#[test]
fn admins_list_the_market_s_orders_by_status_and_open_one() {
    let mut h = market();
    let mut numbers = Vec::new();
    for buyer in ["ani", "dewi", "rina", "sari", "tono", "umar", "wati", "yani", "zaki"] {
        numbers.push(common::market::place_order(&mut h, buyer, None));
    }
    common::market::accept(&mut h, &numbers[0], true);
    as_user(&mut h, "bu-lurah");
    let first = h.command("/pesanan");
    let text = joined(&first);
    assert!(text.contains("Pesanan aktif Pasar Blimbing: 9 (halaman 1/2)"), "{text}");
    assert!(text.contains(&numbers[8]) && !text.contains(&numbers[0]), "newest first, 8 a page: {text}");
    let next = common::payload(&first, "Berikutnya");
    let second = joined(&h.button(&next));
    assert!(second.contains("halaman 2/2") && second.contains(&numbers[0]), "{second}");
    // By status.
    let ready = joined(&h.command("/pesanan siap"));
    assert!(ready.contains(": 1 (halaman 1/1)") && ready.contains(&numbers[0]), "{ready}");
    assert!(joined(&h.command("/pesanan batal")).contains("Tidak ada pesanan batal"));
    assert!(joined(&h.command("/pesanan semuanya")).contains("Tulis: /pesanan"));
    // One order: the shopper, the stall's lines, the payment, the timeline.
    let open = common::payload(&first, &numbers[8]);
    let one = joined(&h.button(&open));
    for needle in [
        "Ani Rahayu · 0812-3456-7890",
        "Sayur Bu Sri (lapak A-07) · menunggu pedagang",
        "Kangkung 3 ikat",
        "Bayar di tempat",
        "Pesanan dibuat",
    ] {
        assert!(one.contains(needle), "{needle}: {one}");
    }
    assert_eq!(joined(&h.command(&format!("/pesanan {}", numbers[8]))), one);
    // The shopper's /pesanan is still their own orders; an admin's button pressed by a shopper is stale.
    as_user(&mut h, "dewi");
    let mine = joined(&h.command("/pesanan"));
    assert!(mine.contains("Pesanan Anda") && mine.contains(&numbers[1]) && !mine.contains(&numbers[2]), "{mine}");
    assert!(joined(&h.button(&open)).contains("sudah tidak berlaku"));
}

#[test]
fn stalls_and_couriers_are_taken_out_of_service_and_back() {
    let mut h = market();
    let number = common::market::place_order(&mut h, "ani", None);
    h.clock.advance(chrono::Duration::minutes(3));
    common::market::accept(&mut h, &number, false);
    as_user(&mut h, "bu-lurah");
    let list = joined(&h.command("/pedagang"));
    assert!(
        list.contains("A-07 · Sayur Bu Sri · 1 chat pedagang · aktif · 1 pesanan dijawab, rata-rata 3 menit"),
        "{list}"
    );
    assert!(list.contains("belum ada pesanan dijawab"), "other stalls: {list}");

    assert!(joined(&h.command("/nonaktif")).contains("Tulis: /nonaktif"));
    assert!(joined(&h.command("/nonaktif Z-99")).contains("bukan lapak atau kurir"));
    assert!(joined(&h.command("/nonaktif a-07")).contains("Sayur Bu Sri (A-07) dinonaktifkan"));
    assert!(joined(&h.command("/pedagang")).contains("A-07 · Sayur Bu Sri · 1 chat pedagang · ⛔ nonaktif"));
    as_user(&mut h, "ani");
    let found = joined(&h.text("kangkung"));
    assert!(!found.contains("Sayur Bu Sri"), "an inactive stall's goods are hidden: {found}");
    assert_eq!(
        h.count(&format!("SELECT COUNT(*) FROM outbox WHERE recipient = '{SRI}' AND message LIKE '%dinonaktifkan%'")),
        1
    );

    // The courier, by name.
    as_user(&mut h, "budi");
    h.command("/mulai");
    as_user(&mut h, "bu-lurah");
    assert!(joined(&h.command("/nonaktif budi")).contains("Budi Santoso dinonaktifkan"));
    assert_eq!(h.count("SELECT on_shift FROM couriers WHERE user_id = 'budi'"), 0, "off shift");
    as_user(&mut h, "budi");
    assert!(joined(&h.command("/mulai")).contains("dinonaktifkan"));
    assert_eq!(h.count("SELECT on_shift FROM couriers WHERE user_id = 'budi'"), 0);

    as_user(&mut h, "bu-lurah");
    assert!(joined(&h.command("/aktif A-07")).contains("aktif lagi"));
    assert!(joined(&h.command("/aktif budi")).contains("aktif lagi"));
    as_user(&mut h, "ani");
    assert!(joined(&h.text("kangkung")).contains("Sayur Bu Sri"));
    as_user(&mut h, "budi");
    assert!(joined(&h.command("/mulai")).contains("Shift dimulai"));
}

#[test]
fn the_office_sets_reference_prices_and_far_off_trader_prices_are_flagged() {
    let mut h = market();
    let reference = h.engine.catalog().find_any("kangkung").expect("kangkung").reference_price.value();
    let far = reference * 2;
    as_user(&mut h, SRI);
    let r = joined(&h.command(&format!("/harga kangkung {far}")));
    assert!(r.contains("Kangkung"), "{r}");
    let flagged = |h: &Harness| {
        h.count("SELECT COUNT(*) FROM outbox WHERE recipient = 'bu-lurah' AND message LIKE '%di atas harga acuan%'")
    };
    assert_eq!(flagged(&h), 1, "the price is taken and the admins told");
    as_user(&mut h, "bu-lurah");
    assert!(joined(&h.command(&format!("/harga_acuan kangkung {far}"))).contains(UNKNOWN), "city admins only");
    as_user(&mut h, CITY);
    assert!(joined(&h.command("/harga_acuan kangkung")).contains("Tulis: /harga_acuan"));
    let r = joined(&h.command(&format!("/harga_acuan kangkung {far}")));
    assert!(r.contains("untuk semua pasar"), "{r}");
    as_user(&mut h, SRI);
    h.command(&format!("/harga kangkung {}", far + far / 10));
    assert_eq!(flagged(&h), 1, "close to the new reference: not flagged");
}

/// Four orders placed at 07:00 (Malang) today: A accepted after 6 minutes, B after 10, C
/// refused by the trader after 2, D cancelled by its shopper; and E placed yesterday. Returns
/// the numbers A to E.
fn known_orders(h: &mut Harness) -> Vec<String> {
    use common::market::{place_order, sub_of};
    use pasar_online::conversation::engine::Clock;
    use pasar_online::conversation::payload::{Action, ReasonCode};
    let today = h.clock.now();
    h.clock.set(today - chrono::Duration::days(1));
    let e = place_order(h, "eko", None);
    h.clock.set(today);
    let numbers: Vec<String> = ["ani", "dewi", "rina", "sari"].iter().map(|b| place_order(h, b, None)).collect();
    let (a, b, c, d) = (&numbers[0], &numbers[1], &numbers[2], &numbers[3]);
    as_user(h, "sari");
    assert!(joined(&h.command(&format!("/batal {d}"))).contains("dibatalkan"));
    h.clock.set(today + chrono::Duration::minutes(2));
    let sub = sub_of(h, c);
    as_user(h, SRI);
    h.button(&Action::TraderReject(sub).encode());
    h.button(&Action::TraderReason { sub, reason: ReasonCode::Habis }.encode());
    h.clock.set(today + chrono::Duration::minutes(6));
    common::market::accept(h, a, false);
    h.clock.set(today + chrono::Duration::minutes(10));
    common::market::accept(h, b, false);
    let mut all = numbers.clone();
    all.push(e);
    all
}

fn total_of(h: &Harness, number: &str) -> i64 {
    h.count(&format!("SELECT total FROM orders WHERE number = '{number}'"))
}

/// Rupiah as the bot writes them.
fn rp(value: i64) -> String {
    pasar_online::domain::money::Rupiah(value).to_string()
}

#[test]
fn statistik_counts_a_known_day_of_orders_and_draws_them_per_hour() {
    let mut h = market();
    let numbers = known_orders(&mut h);
    assert_eq!(
        h.count(&format!("SELECT COUNT(*) FROM orders WHERE number = '{}' AND status = 'rejected'", numbers[2])),
        1
    );
    as_user(&mut h, "bu-lurah");
    let replies = h.command("/statistik");
    let text = joined(&replies);
    let value = total_of(&h, &numbers[0]) + total_of(&h, &numbers[1]);
    assert!(value > 0);
    for needle in [
        "📊 Statistik Pasar Blimbing, hari ini (28/11/2026)".to_string(),
        format!("Pesanan: 4 · Nilai: {}", rp(value)),
        // (6 + 10 + 2) / 3 answers: the refusal is an answer too; the cancelled one never had one.
        "rata-rata 6 menit setelah pesanan masuk (3 jawaban)".to_string(),
        "Ditolak: 1 (25%) · Dibatalkan: 1 (25%)".to_string(),
        // Only what was sold: A and B's 3 ikat each.
        format!("1. Kangkung — 6 ikat · {}", rp(18_000)),
    ] {
        assert!(text.contains(&needle), "{needle}\n{text}");
    }
    assert!(!text.contains("Semua pasar"), "a market admin sees their market: {text}");
    let chart = replies.iter().find_map(|m| m.chart.clone()).expect("a chart");
    assert_eq!(chart.x_labels.len(), 24);
    assert_eq!(chart.series.len(), 1);
    assert_eq!(chart.series[0].name, "Pasar Blimbing");
    let mut expected = vec![0u32; 24];
    expected[7] = 4; // 07:00 in Malang
    assert_eq!(chart.series[0].values, expected);

    // The week has yesterday's order too, drawn on its day.
    let week = h.command("/statistik minggu");
    let text = joined(&week);
    assert!(text.contains("7 hari terakhir (22/11–28/11/2026)") && text.contains("Pesanan: 5 ·"), "{text}");
    let chart = week.iter().find_map(|m| m.chart.clone()).expect("a chart");
    assert_eq!(chart.x_labels.first().map(String::as_str), Some("22/11"));
    assert_eq!(chart.series[0].values, vec![0, 0, 0, 0, 0, 1, 4]);
    // The English name, and a wrong period.
    assert!(joined(&h.command("/stats month")).contains("30 hari terakhir"));
    let r = h.command("/statistik tahun");
    assert!(joined(&r).contains("Tulis: /statistik") && r.iter().all(|m| m.chart.is_none()));
}

#[test]
fn a_city_admin_s_statistik_has_every_market() {
    let mut h = market();
    known_orders(&mut h);
    as_user(&mut h, CITY);
    let replies = h.command("/statistik");
    let text = joined(&replies);
    assert!(text.contains("Semua pasar (pesanan"), "{text}");
    let markets = h.engine.catalog().markets().to_vec();
    assert_eq!(markets.len(), 10);
    for m in &markets {
        assert!(text.contains(&format!("\n{}: ", m.name)), "{}: {text}", m.name);
    }
    assert!(text.contains("Pasar Blimbing: 4 · ") && text.contains(" · 6 mnt · 25% · 25%"), "{text}");
    let chart = replies.iter().find_map(|m| m.chart.clone()).expect("a chart");
    assert_eq!(chart.series.len(), 10, "a line per market");
    assert!(chart.title.contains("semua pasar"), "{}", chart.title);
    let blimbing = chart.series.iter().find(|s| s.name == "Pasar Blimbing").expect("Blimbing's line");
    assert_eq!(blimbing.values.iter().sum::<u32>(), 4);
    assert!(chart.series.iter().filter(|s| s.name != "Pasar Blimbing").all(|s| s.values.iter().all(|v| *v == 0)));
}

#[test]
fn ekspor_sends_the_range_s_orders_as_csv_and_refuses_bad_ranges() {
    let mut h = market();
    let numbers = known_orders(&mut h);
    as_user(&mut h, "bu-lurah");
    // This month so far: all five.
    let r = h.command("/ekspor");
    let doc = r.iter().find_map(|m| m.document.clone()).expect("a file");
    assert_eq!(doc.mime, "text/csv");
    assert_eq!(doc.file_name, "pesanan-blimbing-20261101-20261128.csv");
    assert!(joined(&r).contains("5 pesanan Pasar Blimbing, 01/11/2026–28/11/2026"), "{}", joined(&r));
    let mut cli = Vec::new();
    let from = pasar_online::domain::slot::malang_midnight(chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("day"));
    let to = pasar_online::domain::slot::malang_midnight(chrono::NaiveDate::from_ymd_opt(2026, 11, 29).expect("day"));
    h.engine.store().export_orders(from.expect("from"), to.expect("to"), Some("blimbing"), &mut cli).expect("export");
    assert_eq!(doc.content.as_bytes(), &cli[..], "the same file as pasar export");
    // Yesterday only: E; today only (the other way of writing dates): A to D.
    let r = h.command("/ekspor 2026-11-27 27/11/2026");
    let doc = r.iter().find_map(|m| m.document.clone()).expect("a file");
    assert!(doc.content.contains(&numbers[4]) && !doc.content.contains(&numbers[0]), "{}", doc.content);
    let r = h.command("/export 28/11/2026");
    let doc = r.iter().find_map(|m| m.document.clone()).expect("a file");
    assert!(numbers[..4].iter().all(|n| doc.content.contains(n.as_str())) && !doc.content.contains(&numbers[4]));
    // Refused, nothing sent.
    for (line, needle) in [
        ("/ekspor 2026-11-20 2026-11-01", "sebelum tanggal awal"),
        ("/ekspor 2025-01-01 2026-11-28", "paling panjang 366 hari"),
        ("/ekspor kemarin", "Tulis: /ekspor"),
        ("/ekspor 31/02/2026", "Tulis: /ekspor"),
        ("/ekspor semua", "Tulis: /ekspor"), // a market admin's scope is their market
        ("/ekspor 2026-11-01 dinoyo", "Tulis: /ekspor"),
    ] {
        let r = h.command(line);
        assert!(joined(&r).contains(needle), "{line}: {}", joined(&r));
        assert!(r.iter().all(|m| m.document.is_none()), "{line}");
    }
    assert!(joined(&h.command("/ekspor 2026-10-01 2026-10-31")).contains("Tidak ada pesanan Pasar Blimbing"));
    // A city admin may take every market, or another one.
    as_user(&mut h, CITY);
    let r = h.command("/ekspor 2026-11-01 semua");
    let doc = r.iter().find_map(|m| m.document.clone()).expect("a file");
    assert_eq!(doc.file_name, "pesanan-semua-20261101-20261128.csv");
    assert!(joined(&h.command("/ekspor dinoyo")).contains("Tidak ada pesanan Pasar Dinoyo"));
    // Audited like every admin command.
    assert!(joined(&h.command("/audit 20")).contains("console:bu-lurah · /ekspor 2026-11-20 2026-11-01"));
}

/// The labels of the delivery slots a shopper is offered at checkout now.
fn offered_slots(h: &mut Harness, buyer: &str) -> Vec<String> {
    as_user(h, buyer);
    let kk = h.engine.catalog().offers_for("blimbing", "kangkung")[0].id;
    h.button(&Action::Offer(kk).encode());
    h.text("1 ikat");
    h.button("checkout");
    h.text("Ani Rahayu");
    h.text("0812-3456-7890");
    let r = h.text("Jl. Borobudur No. 12, Purwodadi");
    let slots: Vec<String> = r
        .iter()
        .flat_map(|m| m.buttons.iter())
        .filter(|b| b.payload.starts_with("slot:"))
        .map(|b| b.label.clone())
        .collect();
    h.command("/batal");
    slots
}

#[test]
fn admins_set_the_market_s_hours_delivery_slots_and_capacity() {
    let mut h = market();
    as_user(&mut h, "bu-lurah");
    let r = joined(&h.command("/jam"));
    assert!(r.contains("Jam buka: 04:00-13:00") && r.contains("07:00-09:00, 09:00-11:00"), "{r}");
    // Bad input changes nothing.
    for bad in ["/jam 13:00-04:00", "/jam pagi", "/jam antar 07:00-09:00, 08:00-10:00", "/jam antar", "/jam antar 9-11"]
    {
        assert!(joined(&h.command(bad)).contains("Tulis: /jam"), "{bad}");
    }
    assert_eq!(
        h.count(
            "SELECT COUNT(*) FROM markets WHERE slug = 'blimbing' AND opens = '04:00' AND slots LIKE '07:00-09:00,%'"
        ),
        1
    );
    let r = joined(&h.command("/jam 05.00-12.00"));
    assert!(r.contains("05:00-12:00") && r.contains("sebelumnya 04:00-13:00"), "{r}");
    let r = joined(&h.command("/jam antar 10:00 - 12:00, 08:00 - 10:00"));
    assert!(r.contains("08:00-10:00, 10:00-12:00"), "sorted: {r}");
    // Shoppers see the new hours and are offered only the new slots (07:00 WIB now: both today).
    as_user(&mut h, "ani");
    assert!(joined(&h.command("/start")).contains("05:00-12:00"));
    let slots = offered_slots(&mut h, "ani");
    assert!(slots.iter().any(|s| s.contains("08:00")) && slots.iter().any(|s| s.contains("10:00")), "{slots:?}");
    assert!(!slots.iter().any(|s| s.contains("09:00") || s.contains("11:00-13:00")), "{slots:?}");
    // It persists.
    h.restart();
    as_user(&mut h, "bu-lurah");
    assert!(joined(&h.command("/hours")).contains("Jam buka: 05:00-12:00"), "English name, after a restart");

    // Capacity: one order per slot fills the slot, which is then not offered.
    assert!(joined(&h.command("/kapasitas 0")).contains("Tulis: /kapasitas"));
    assert!(joined(&h.command("/kapasitas banyak")).contains("Tulis: /kapasitas"));
    assert!(joined(&h.command("/kapasitas 1")).contains("1 pesanan per slot antar (sebelumnya 30)"));
    let before = offered_slots(&mut h, "ani");
    common::market::place_order_for(&mut h, "ani", None, "08:00");
    let after = offered_slots(&mut h, "ani");
    assert_eq!(after.len() + 1, before.len(), "the full slot is no longer offered: {before:?} -> {after:?}");
    as_user(&mut h, "bu-lurah");
    let r = joined(&h.command("/kapasitas"));
    assert!(r.contains("28/11 08:00-10:00: 1/1 — penuh") && r.contains("28/11 10:00-12:00: 0/1"), "{r}");
}

#[test]
fn admins_add_and_change_commodities_that_traders_then_sell() {
    let mut h = market();
    // A market admin may not change the city's catalogue.
    as_user(&mut h, "bu-lurah");
    assert!(joined(&h.command("/komoditas_tambah Kecombrang, bumbu, biji, 4000")).contains(UNKNOWN));
    as_user(&mut h, CITY);
    // Refused: too few parts, an unknown shelf or unit, no price, a name already taken.
    for bad in [
        "/komoditas_tambah Kecombrang",
        "/komoditas_tambah Kecombrang, rempah-rempah, kg, 30000",
        "/komoditas_tambah Kecombrang, bumbu, karung, 30000",
        "/komoditas_tambah Kecombrang, bumbu, kg, murah",
        // A "|" would split into two names when stored ("brambang" taken over).
        "/komoditas_tambah Kecombrang, bumbu, biji, 4000, honje|brambang",
        // An amount word is no name.
        "/komoditas_tambah Kilo, bumbu, kg, 4000",
        "/komoditas_tambah 123, bumbu, kg, 4000",
    ] {
        assert!(joined(&h.command(bad)).contains("Tulis: /komoditas_tambah"), "{bad}");
    }
    let r = joined(&h.command("/komoditas_tambah Brambang, bumbu, kg, 30000"));
    assert!(r.contains("sudah dipakai") && r.contains("Bawang Merah"), "a market word of another: {r}");
    let commodities = "SELECT COUNT(*) FROM commodities";
    let before = h.count(commodities);
    let r = joined(&h.command("/komoditas_tambah Kecombrang, bumbu, kg, 30.000, honje"));
    assert!(r.contains("Kecombrang (🧄 Bumbu & rempah, per kg, harga acuan Rp 30.000)"), "{r}");
    assert_eq!(h.count(commodities), before + 1);
    assert!(joined(&h.command("/komoditas_tambah kecombrang, bumbu, kg, 30000")).contains("sudah dipakai"));
    assert_eq!(h.count(commodities), before + 1, "not twice");

    // A trader prices it; shoppers find it by its other name.
    as_user(&mut h, SRI);
    assert!(joined(&h.command("/harga kecombrang 28000")).contains("Kecombrang"));
    as_user(&mut h, "ani");
    let r = joined(&h.command("/cari honje"));
    assert!(r.contains("Kecombrang") && r.contains("Rp 28.000"), "{r}");

    // Changes: names, market words, shelf; never the unit; never a name another has.
    as_user(&mut h, CITY);
    assert!(joined(&h.command("/komoditas_ubah kecombrang, satuan, ons")).contains("tidak bisa diubah"));
    assert!(joined(&h.command("/komoditas_ubah kecombrang, alias, brambang")).contains("sudah dipakai"));
    assert!(joined(&h.command("/komoditas_ubah kecombrang, warna, kuning")).contains("Tulis: /komoditas_ubah"));
    assert!(joined(&h.command("/komoditas_ubah jahe merah muda, nama, X")).contains("jahe merah muda"));
    let r = joined(&h.command("/edit_commodity kecombrang, jawa, kincung, combrang"));
    assert!(r.contains("Kecombrang diubah"), "{r}");
    assert!(joined(&h.command("/komoditas_ubah kecombrang, inggris, Torch Ginger")).contains("diubah"));
    h.restart();
    as_user(&mut h, "ani");
    assert!(joined(&h.command("/cari kincung")).contains("Kecombrang"), "the new market word, after a restart");
    let kecombrang = h.engine.catalog().named("honje").expect("kecombrang").clone();
    assert_eq!((kecombrang.name_en.as_str(), kecombrang.unit.label()), ("Torch Ginger", "kg"));
    assert!(kecombrang.aliases.contains(&"honje".to_string()), "aliases kept: {kecombrang:?}");
    // Not for shoppers or traders.
    as_user(&mut h, SRI);
    assert!(joined(&h.command("/komoditas_tambah Lengkuas, bumbu, kg, 20000")).contains(UNKNOWN));
}

#[test]
fn a_photo_captioned_foto_becomes_the_commodity_s_picture_in_that_market() {
    let mut h = market();
    let photo = |h: &mut Harness, caption: &str, file: &str| {
        h.send(Inbound::Image { reference: file.into(), caption: Some(caption.into()) })
    };
    // A shopper's or trader's captioned photo sets nothing.
    for who in ["ani", SRI] {
        as_user(&mut h, who);
        photo(&mut h, "/foto bawang merah", "AgAD-iseng");
    }
    let photos = "SELECT COUNT(*) FROM commodity_photos";
    assert_eq!(h.count(photos), 0);
    as_user(&mut h, "bu-lurah");
    assert!(joined(&h.command("/foto bawang merah")).contains("Kirim foto barangnya"), "no photo attached");
    assert!(joined(&photo(&mut h, "/foto", "AgAD-x")).contains("Kirim foto barangnya"));
    assert!(joined(&photo(&mut h, "/foto batu akik", "AgAD-x")).contains("batu akik"));
    assert_eq!(h.count(photos), 0);
    let r = joined(&photo(&mut h, "/foto brambang", "AgAD-bawang-merah"));
    assert!(r.contains("Foto Bawang Merah terpasang di katalog Pasar Blimbing"), "{r}");
    as_user(&mut h, CITY);
    assert!(joined(&h.command("/audit 1")).contains("/foto brambang"), "audited");

    as_user(&mut h, "ani");
    let r = h.button(&Action::Commodity("bawang-merah".into()).encode());
    let shown = r.iter().find(|m| m.text.contains("Bawang Merah")).expect("the commodity");
    assert_eq!(shown.photo.as_deref(), Some("AgAD-bawang-merah"));
    assert!(!shown.buttons.is_empty(), "the stalls' buttons come with it");
    let r = h.button(&Action::Commodity("kangkung".into()).encode());
    assert!(r.iter().all(|m| m.photo.is_none()), "no picture for the others");
    // Another market's catalogue is its own.
    let other = h.engine.catalog().photo("dinoyo", "bawang-merah", "console").map(str::to_string);
    assert_eq!(other, None);

    as_user(&mut h, "bu-lurah");
    assert!(joined(&h.command("/foto bawang merah hapus")).contains("dihapus"));
    as_user(&mut h, "ani");
    let r = h.button(&Action::Commodity("bawang-merah".into()).encode());
    assert!(r.iter().all(|m| m.photo.is_none()));
}

#[test]
fn an_admin_who_also_trades_reaches_both_order_lists() {
    let mut h = market();
    let number = common::market::place_order(&mut h, "ani", None);
    // Make Bu Sri's trader chat a market admin too.
    as_user(&mut h, CITY);
    let code = code_in(&h.command("/admin_tambah"));
    as_user(&mut h, SRI);
    assert!(joined(&h.command(&format!("/daftar {code}"))).contains("admin Pasar Blimbing"));
    let own = joined(&h.command("/pesanan"));
    assert!(own.contains(&number), "her stall's open orders: {own}");
    let market_view = joined(&h.command(&format!("/pesanan {number}")));
    assert!(market_view.contains("Ani Rahayu") && market_view.contains("Sayur Bu Sri"), "{market_view}");
}

// ---------------------------------------------------------------------------------------------
// Broadcasts (/siaran)

const NEWS: &str = "Besok pasar tutup jam 12 untuk kerja bakti";

/// Who got a broadcast message (its text contains `NEWS`), and how many times.
fn receivers(h: &Harness) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    let mut stmt = conn
        .prepare(
            "SELECT recipient, COUNT(*) FROM outbox WHERE broadcast_id IS NOT NULL AND message LIKE '%kerja bakti%'
             GROUP BY recipient ORDER BY recipient",
        )
        .expect("query");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("rows").map(|r| r.expect("row")).collect()
}

/// The messages queued for `who` since the last time they were read (the engine's timers run
/// first), marking them sent.
fn drain_to(h: &mut Harness, who: &str) -> Vec<pasar_online::channel::Outbound> {
    h.engine.process_pending().expect("process");
    let pending = h.engine.store().pending_outbox(ChannelKind::Console, 10_000).expect("outbox");
    let now = h.engine.now();
    let mut mine = Vec::new();
    for m in pending {
        h.engine.store().mark_sent(m.id, now).expect("sent");
        if m.to.id == who {
            mine.push(m.message);
        }
    }
    mine
}

#[test]
fn shoppers_opt_in_and_out_and_only_those_in_get_a_broadcast_once() {
    let mut h = market();
    as_user(&mut h, "ani");
    let r = joined(&h.command("/langganan"));
    assert!(r.contains("akan dapat info dari Pasar Blimbing") && r.contains("/berhenti"), "{r}");
    as_user(&mut h, "dewi");
    h.command("/langganan");
    as_user(&mut h, "eko");
    h.command("/langganan");
    let r = joined(&h.command("/berhenti"));
    assert!(r.contains("tidak akan dapat info") && r.contains("/langganan"), "{r}");
    as_user(&mut h, "fajar"); // never asked: not a subscriber
    h.command("/start");

    as_user(&mut h, "bu-lurah");
    let r = joined(&h.command("/siaran"));
    assert!(r.contains("Tulis: /siaran"), "empty: {r}");
    let r = joined(&h.command(&format!("/siaran {}", "x".repeat(1001))));
    assert!(r.contains("Tulis: /siaran") && r.contains("1000"), "too long: {r}");
    let preview = h.command(&format!("/siaran {NEWS}"));
    let text = joined(&preview);
    assert!(text.contains("Pratinjau siaran"), "{text}");
    assert!(
        text.contains(&format!(
            "📣 Info dari Pasar Blimbing:\n\n{NEWS}\n\n— Tidak mau dapat info lagi? Ketik /berhenti"
        )),
        "{text}"
    );
    assert!(text.contains("Akan dikirim ke 2 pembeli"), "{text}");
    assert!(receivers(&h).is_empty(), "nothing goes before the confirm");
    let send = common::payload(&preview, "Kirim");
    common::payload(&preview, "Batal");

    // Only the admin who wrote it may send it: another admin's press is stale.
    as_user(&mut h, CITY);
    assert!(joined(&h.button(&send)).contains("sudah tidak berlaku"));
    // A shopper's forged press: stale too, and the draft is untouched.
    as_user(&mut h, "ani");
    assert!(joined(&h.button(&send)).contains("sudah tidak berlaku"));
    assert_eq!(h.count("SELECT COUNT(*) FROM broadcasts WHERE status = 'draft'"), 1);

    as_user(&mut h, "bu-lurah");
    let r = joined(&h.button(&send));
    assert!(r.contains("Siaran: 0/2 terkirim, 0 gagal, 0 tidak terjangkau"), "{r}");
    // Every message went (the harness delivers them): the terminal cannot edit, so the admin
    // gets the final counts as a new message, and the broadcast is done.
    let end = joined(&drain_to(&mut h, "bu-lurah"));
    assert!(end.contains("Siaran selesai: 2/2 terkirim, 0 gagal, 0 tidak terjangkau"), "{end}");
    assert_eq!(h.count("SELECT COUNT(*) FROM broadcasts WHERE status = 'done' AND sent = 2"), 1);
    assert!(drain_to(&mut h, "bu-lurah").is_empty(), "the end is told once");
    // Pressed again: nothing more is sent.
    assert!(joined(&h.button(&send)).contains("sudah tidak berlaku"));
    assert_eq!(receivers(&h), vec![("ani".to_string(), 1), ("dewi".to_string(), 1)]);
    let got =
        h.count("SELECT COUNT(*) FROM outbox WHERE message LIKE '%kerja bakti%' AND recipient IN ('eko', 'fajar')");
    assert_eq!(got, 0, "opted out and never opted in get nothing");

    let audit = joined(&h.command("/audit 3"));
    assert!(audit.contains(&format!("/siaran {NEWS}")), "{audit}");
    assert!(audit.contains("/siaran_kirim #1 ke 2 pembeli"), "{audit}");
}

#[test]
fn a_cancelled_draft_sends_nothing_and_its_buttons_are_stale() {
    let mut h = market();
    as_user(&mut h, "bu-lurah");
    assert!(
        joined(&h.command(&format!("/siaran {NEWS}"))).contains("Belum ada pembeli Pasar Blimbing yang berlangganan")
    );
    assert_eq!(h.count("SELECT COUNT(*) FROM broadcasts"), 0);
    as_user(&mut h, "ani");
    h.command("/langganan");
    as_user(&mut h, "bu-lurah");
    let preview = h.command(&format!("/siaran {NEWS}"));
    let (send, cancel) = (common::payload(&preview, "Kirim"), common::payload(&preview, "Batal"));
    assert!(joined(&h.button(&cancel)).contains("Siaran dibatalkan"));
    assert!(joined(&h.button(&send)).contains("sudah tidak berlaku"));
    assert!(joined(&h.button(&cancel)).contains("sudah tidak berlaku"));
    assert!(joined(&h.button("a:bc:999")).contains("sudah tidak berlaku"), "a forged id");
    // The city admin's draft in Pasar Blimbing, pressed in Pasar Dinoyo's bot: not that market's.
    as_user(&mut h, CITY);
    let preview = h.command(&format!("/siaran {NEWS}"));
    let send = common::payload(&preview, "Kirim");
    h.market = "dinoyo".into();
    assert!(joined(&h.button(&send)).contains("sudah tidak berlaku"), "another market's broadcast");
    h.market = "blimbing".into();
    assert_eq!(h.count("SELECT COUNT(*) FROM broadcasts WHERE status = 'draft' AND market = 'blimbing'"), 1);
    as_user(&mut h, "bu-lurah");
    assert!(receivers(&h).is_empty());
    assert_eq!(h.count("SELECT COUNT(*) FROM broadcasts WHERE status = 'cancelled'"), 1);
    // A market admin's button is not for a shopper, even if they are subscribed.
    as_user(&mut h, "ani");
    assert!(joined(&h.command(&format!("/siaran {NEWS}"))).contains(UNKNOWN));
}

#[test]
fn the_first_order_offers_the_news_once_and_english_shoppers_get_english() {
    let mut h = market();
    let number = common::market::place_order(&mut h, "ani", None);
    let placed = h.engine.store().recent_sent_to("blimbing", &h.user, 20).expect("sent");
    let offer = placed.iter().find(|m| m.text.contains(number.as_str())).expect("order placed message");
    let button = offer.buttons.iter().find(|b| b.payload == "sub").expect("the news button under the first order");
    assert!(button.label.contains("Mau dapat info dari pasar"), "{button:?}");
    let second = common::market::place_order(&mut h, "ani", None);
    let placed = h.engine.store().recent_sent_to("blimbing", &h.user, 20).expect("sent");
    let again = placed.iter().find(|m| m.text.contains(second.as_str())).expect("second order placed");
    assert!(again.buttons.iter().all(|b| b.payload != "sub"), "asked once: {again:?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM subscriptions"), 0, "an order is no consent");
    h.command("/bahasa en");
    let r = joined(&h.button("sub"));
    assert!(r.contains("You'll get news from Pasar Blimbing"), "{r}");

    as_user(&mut h, "bu-lurah");
    let preview = h.command(&format!("/siaran {NEWS}"));
    h.button(&common::payload(&preview, "Kirim"));
    as_user(&mut h, "ani");
    let got = h.engine.store().recent_sent_to("blimbing", &h.user, 5).expect("sent");
    let news = got.iter().find(|m| m.text.contains(NEWS)).expect("the broadcast");
    assert!(news.text.starts_with("📣 News from Pasar Blimbing") && news.text.ends_with("Type /berhenti"), "{news:?}");
    // Typed without the slash (as on WhatsApp) works too.
    assert!(joined(&h.text("berhenti")).contains("won't get news"));
    assert_eq!(h.count("SELECT subscribed FROM subscriptions WHERE user_id = 'ani'"), 0);
}

#[test]
fn a_broadcast_under_way_finishes_after_a_restart() {
    let mut h = market();
    for who in ["ani", "dewi", "eko"] {
        as_user(&mut h, who);
        h.command("/langganan");
    }
    as_user(&mut h, "bu-lurah");
    let preview = h.command(&format!("/siaran {NEWS}"));
    h.button(&common::payload(&preview, "Kirim"));
    // The process stops before any count reached the admin; a new one picks the broadcast up
    // from the database (nothing about it is kept in memory).
    h.restart();
    let end = joined(&drain_to(&mut h, "bu-lurah"));
    assert!(end.contains("Siaran selesai: 3/3 terkirim"), "{end}");
    assert_eq!(receivers(&h).len(), 3);
}
