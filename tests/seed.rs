//! The seed data in `data/` loads, describes ten living markets, and bad rows are refused with
//! the file, line and reason.

use pasar_online::domain::catalog::{Catalog, Category, SearchResult, SeedData};
use pasar_online::store::Store;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

#[test]
fn ten_markets_each_with_stalls_and_offers() {
    let seed = SeedData::load(&data_dir()).expect("seed data loads");
    let slugs: Vec<&str> = seed.markets.iter().map(|m| m.slug.as_str()).collect();
    assert_eq!(
        slugs,
        [
            "blimbing",
            "oro-oro-dowo",
            "klojen",
            "bunul",
            "dinoyo",
            "madyopuro",
            "mergan",
            "sawojajar",
            "sukun",
            "tawangmangu"
        ]
    );
    assert!(seed.commodities.len() >= 80, "{} commodities", seed.commodities.len());
    let categories: HashSet<Category> = seed.commodities.iter().map(|c| c.category).collect();
    assert_eq!(categories.len(), Category::ALL.len(), "every category has commodities");
    for m in &seed.markets {
        let stalls: Vec<_> = seed.stalls.iter().filter(|s| s.market == m.slug).collect();
        assert!(stalls.len() >= 4, "{} has {} stalls", m.slug, stalls.len());
        assert!(stalls.iter().all(|s| !s.prices.is_empty()), "{}: a stall without prices", m.slug);
        assert!(!m.slots.is_empty() && m.delivery_radius_km > 0.0 && m.slot_capacity > 0);
        for staple in ["bawang-merah", "cabai-rawit", "beras-medium", "tempe"] {
            assert!(stalls.iter().any(|s| s.prices.iter().any(|(c, _)| c == staple)), "{} sells no {staple}", m.slug);
        }
    }
    // Prices are of the right order of magnitude: within a factor of two of the reference.
    for s in &seed.stalls {
        for (c, price) in &s.prices {
            let reference =
                seed.commodities.iter().find(|x| &x.id == c).map(|x| x.reference_price.value()).unwrap_or(0);
            assert!(price.value() * 2 >= reference && price.value() <= reference * 2, "{} {c}: {price}", s.name);
        }
    }
}

#[test]
fn seeded_store_finds_market_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&dir.path().join("s.db")).expect("store");
    store.seed(&SeedData::load(&data_dir()).expect("seed")).expect("seeded");
    let catalog: Catalog = store.load_catalog(chrono::NaiveDate::MIN).expect("catalog");
    let ids = |q: &str| match catalog.search("blimbing", q) {
        SearchResult::Found(v) => v.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        SearchResult::NotFound { .. } | SearchResult::NotSoldHere(_) => Vec::new(),
    };
    assert_eq!(ids("brambang").first().map(String::as_str), Some("bawang-merah"));
    assert!(ids("lombok").contains(&"cabai-rawit".to_string()));
    assert!(ids("bawamg").contains(&"bawang-merah".to_string()));
    assert!(ids("endog").iter().any(|c| c.starts_with("telur")));
    assert!(ids("kobis").contains(&"kubis".to_string()));
    match catalog.search("blimbing", "bawang merahhh") {
        SearchResult::Found(v) => assert_eq!(v[0].id, "bawang-merah"),
        other => panic!("{other:?}"),
    }
}

fn corrupted(file: &str, edit: impl Fn(&str) -> String) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["markets.toml", "commodities.csv", "stalls.csv", "SOURCES.md"] {
        let text = std::fs::read_to_string(data_dir().join(f)).expect("read");
        let text = if f == file { edit(&text) } else { text };
        std::fs::write(dir.path().join(f), text).expect("write");
    }
    SeedData::load(dir.path()).expect_err("bad seed data must be refused").to_string()
}

fn replace_line(text: &str, n: usize, with: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == n { with.to_string() } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn bad_rows_are_refused_with_file_line_and_reason() {
    let e = corrupted("stalls.csv", |t| replace_line(t, 5, "blimbing,A-07,Sayur Bu Sri,Bu Sri,durian-montong-x,5000"));
    assert!(e.contains("stalls.csv:5") && e.contains("unknown commodity"), "{e}");
    let e = corrupted("stalls.csv", |t| replace_line(t, 7, "atlantis,Z-1,Toko,Pak X,bayam,5000"));
    assert!(e.contains("stalls.csv:7") && e.contains("unknown market"), "{e}");
    let e = corrupted("stalls.csv", |t| replace_line(t, 3, "blimbing,A-07,Sayur Bu Sri,Bu Sri,kangkung,-5"));
    assert!(e.contains("stalls.csv:3") && e.contains("price"), "{e}");
    let e = corrupted("commodities.csv", |t| replace_line(t, 4, "sawi-x,sayur,Sawi X,Sawi,karung,,,1000,,,,estimate"));
    assert!(e.contains("commodities.csv:4") && e.contains("unknown unit"), "{e}");
    let e = corrupted("commodities.csv", |t| replace_line(t, 6, "bayam,sayur,Bayam,Spinach,ikat,,,3000,,,,estimate"));
    assert!(e.contains("commodities.csv:6") && e.contains("twice"), "{e}");
    // The market's words: a step that is no sellable step, a piece word on goods sold by the
    // piece, a piece without its weight, a source that is no key.
    let e = corrupted("commodities.csv", |t| replace_line(t, 7, "sawi-y,sayur,Sawi Y,Sawi,kg,,,1000,70,,,estimate"));
    assert!(e.contains("commodities.csv:7") && e.contains("step 70"), "{e}");
    let e =
        corrupted("commodities.csv", |t| replace_line(t, 7, "sawi-y,sayur,Sawi Y,Sawi,ikat,,,1000,,ekor,500,estimate"));
    assert!(e.contains("commodities.csv:7") && e.contains("sold by weight"), "{e}");
    let e =
        corrupted("commodities.csv", |t| replace_line(t, 7, "sawi-y,sayur,Sawi Y,Sawi,kg,,,1000,100,ekor,,estimate"));
    assert!(e.contains("commodities.csv:7") && e.contains("go together"), "{e}");
    let e = corrupted("commodities.csv", |t| {
        replace_line(t, 7, "sawi-y,sayur,Sawi Y,Sawi,kg,,,1000,100,karung,500,estimate")
    });
    assert!(e.contains("commodities.csv:7") && e.contains("karung"), "{e}");
    let e =
        corrupted("commodities.csv", |t| replace_line(t, 7, "sawi-y,sayur,Sawi Y,Sawi,kg,,,1000,100,,,Kemendag Nov"));
    assert!(e.contains("commodities.csv:7") && e.contains("price_source"), "{e}");
    let e = corrupted("markets.toml", |t| t.replacen("opens = \"04:00\"", "opens = \"4 pagi\"", 1));
    assert!(e.contains("markets.toml") && e.contains("HH:MM"), "{e}");
    let e = corrupted("markets.toml", |t| t.replacen("code = \"OOD\"", "code = \"BLB\"", 1));
    assert!(e.contains("markets.toml") && e.contains("used twice"), "{e}");
    let e = corrupted("markets.toml", |t| t.replacen("slot_capacity = 30", "slot_capacity = 0", 1));
    assert!(e.contains("markets.toml") && e.contains("slot_capacity"), "{e}");
}

#[test]
fn the_binary_carries_the_same_seed_data() {
    let from_files = SeedData::load(&data_dir()).expect("files");
    let built_in = SeedData::builtin().expect("built in");
    assert_eq!(from_files.markets, built_in.markets);
    assert_eq!(from_files.commodities, built_in.commodities);
    assert_eq!(from_files.stalls, built_in.stalls);
    let missing = SeedData::load(Path::new("/nonexistent")).expect_err("no folder").to_string();
    assert!(missing.contains("markets.toml: cannot read"), "{missing}");
}

/// Telegram's `callback_data` holds 64 bytes. Every button the core can emit, with the longest
/// values the seed data and the id ranges allow, must fit, and parse back to itself.
#[test]
fn every_button_payload_fits_telegram_with_the_longest_real_values() {
    use pasar_online::conversation::payload::{Action, MAX_PAYLOAD_BYTES, ReasonCode};
    use pasar_online::domain::order::{OrderNumber, PaymentMethod};
    use pasar_online::domain::slot::SlotChoice;
    use pasar_online::text::Lang;
    let seed = SeedData::load(&data_dir()).expect("seed data loads");
    let big = i64::MAX;
    let mut actions = vec![
        Action::Menu,
        Action::Shop,
        Action::Cart,
        Action::EmptyCart,
        Action::EmptyCartConfirmed,
        Action::Checkout,
        Action::UseSavedName,
        Action::UseSavedPhone,
        Action::UseSavedAddress,
        Action::NoNote,
        Action::PlaceOrder,
        Action::Abort,
        Action::Orders,
        Action::LanguageMenu,
        Action::Help,
        Action::Search,
        Action::Offer(big),
        Action::QuickQuantity { offer: big, base: u64::MAX },
        Action::CartLine(big),
        Action::EditLine(big),
        Action::RemoveLine(big),
        Action::AgreeChanges(big),
        Action::DropStall(big),
        Action::AcknowledgeDrop(big),
        Action::TraderAccept(big),
        Action::TraderChange(big),
        Action::TraderReject(big),
        Action::TraderLine(big),
        Action::TraderOutOfStock(big),
        Action::TraderDone(big),
        Action::TraderPack(big),
    ];
    actions.extend(Lang::ALL.map(Action::Language));
    actions.extend(PaymentMethod::ALL.map(Action::Payment));
    for reason in [ReasonCode::Habis, ReasonCode::Tutup, ReasonCode::Lainnya] {
        actions.push(Action::TraderReason { sub: big, reason });
    }
    for category in Category::ALL {
        actions.push(Action::Category { category, page: usize::MAX });
    }
    for c in &seed.commodities {
        actions.push(Action::Commodity(c.id.clone()));
    }
    let date = chrono::NaiveDate::from_ymd_opt(2099, 12, 31).expect("date");
    for m in &seed.markets {
        for slot in &m.slots {
            actions.push(Action::Slot(SlotChoice { date, slot: *slot }.code()));
        }
        // Order numbers grow past four digits in a busy year.
        let number = OrderNumber::new(&m.code, 99_999_999);
        actions.push(Action::CancelOrder(number.clone()));
        actions.push(Action::CancelOrderConfirmed(number));
    }
    for a in actions {
        let p = a.encode();
        assert!(p.len() <= MAX_PAYLOAD_BYTES, "{} bytes: {p}", p.len());
        assert_eq!(Action::parse(&p), Some(a), "{p}");
    }
}

/// The zones and distances of the ten markets with their real coordinates: each market's own
/// address is in its kelurahan list, all ten lie in Kota Malang, and distances between them
/// (as the zone check and the courier's arrival estimate use them) are what a map says.
#[test]
fn zones_and_distances_with_the_real_coordinates_of_the_ten_markets() {
    use pasar_online::domain::contact::{distance_km, kelurahan_in};
    use pasar_online::domain::delivery::eta_between;
    let seed = SeedData::load(&data_dir()).expect("seed data loads");
    // Alun-alun Merdeka, the centre of Kota Malang.
    let alun_alun = (-7.9826, 112.6308);
    for m in &seed.markets {
        assert!(kelurahan_in(&m.address, &m.kelurahan).is_some(), "{}: its own address is outside its list", m.slug);
        let from_centre = distance_km(alun_alun.0, alun_alun.1, m.lat, m.lon);
        assert!(from_centre < 8.0, "{} is {from_centre:.1} km from the alun-alun", m.slug);
        assert!(m.delivery_radius_km >= 2.0 && m.delivery_radius_km <= 8.0, "{}", m.slug);
    }
    let at = |slug: &str| seed.markets.iter().find(|m| m.slug == slug).map(|m| (m.lat, m.lon)).expect("market");
    let km = |a: &str, b: &str| distance_km(at(a).0, at(a).1, at(b).0, at(b).1);
    for (a, b, low, high) in [
        ("blimbing", "dinoyo", 3.5, 4.6),
        ("oro-oro-dowo", "klojen", 0.9, 1.6),
        ("sukun", "blimbing", 7.0, 8.8),
        ("bunul", "blimbing", 2.3, 3.1),
        ("madyopuro", "sawojajar", 0.9, 1.6),
        ("mergan", "sukun", 1.5, 2.0),
    ] {
        let d = km(a, b);
        assert!((low..=high).contains(&d), "{a} to {b}: {d:.2} km");
        assert!((d - km(b, a)).abs() < 1e-9);
    }
    // A shopper standing at Pasar Bunul is inside Pasar Blimbing's radius; one at Pasar Sukun is not.
    let blimbing = seed.markets.iter().find(|m| m.slug == "blimbing").expect("blimbing");
    assert!(km("blimbing", "bunul") <= blimbing.delivery_radius_km);
    assert!(km("blimbing", "sukun") > blimbing.delivery_radius_km);
    // A courier leaving Blimbing for Bunul: about 2.7 km at 20 km/h, and the handover.
    assert_eq!(eta_between(at("blimbing"), at("bunul")), 12);
    // Typed addresses: a kelurahan of another market's area is refused by Blimbing.
    assert_eq!(kelurahan_in("Jl. Soekarno Hatta 9, Jatimulyo", &blimbing.kelurahan), None);
    assert!(kelurahan_in("Jl. Raden Intan 3, Arjosari, Kec. Blimbing", &blimbing.kelurahan).is_some());
}

/// The data as it stood before the catalogue grew: the first 118 commodities in the old eight
/// columns, and only the stall rows that sell them.
fn older_data(dir: &Path) -> HashSet<String> {
    let commodities = std::fs::read_to_string(data_dir().join("commodities.csv")).expect("read");
    let mut old_ids = HashSet::new();
    let mut rows = Vec::new();
    for (i, line) in commodities.lines().enumerate() {
        let mut fields = csv_fields(line);
        fields.truncate(8);
        if i > 0 {
            old_ids.insert(fields[0].clone());
        }
        rows.push(
            fields
                .iter()
                .map(|f| if f.contains(',') { format!("\"{f}\"") } else { f.clone() })
                .collect::<Vec<_>>()
                .join(","),
        );
        if i == 118 {
            break;
        }
    }
    std::fs::write(dir.join("commodities.csv"), rows.join("\n")).expect("write");
    let stalls = std::fs::read_to_string(data_dir().join("stalls.csv")).expect("read");
    let kept: Vec<&str> = stalls
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || old_ids.contains(l.rsplit(',').nth(1).unwrap_or("")))
        .map(|(_, l)| l)
        .collect();
    std::fs::write(dir.join("stalls.csv"), kept.join("\n")).expect("write");
    std::fs::copy(data_dir().join("markets.toml"), dir.join("markets.toml")).expect("copy");
    old_ids
}

/// A CSV line's fields (quotes allowed).
fn csv_fields(line: &str) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(line.as_bytes());
    reader.records().next().and_then(Result::ok).map(|r| r.iter().map(String::from).collect()).unwrap_or_default()
}

#[test]
fn an_update_brings_the_grown_catalogue_into_a_running_database_and_keeps_its_orders_and_prices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old_dir = dir.path().join("old");
    std::fs::create_dir_all(&old_dir).expect("dir");
    let old_ids = older_data(&old_dir);
    let old = SeedData::load(&old_dir).expect("the older data loads");
    let db = dir.path().join("pasar.db");
    Store::open(&db).expect("store").seed(&old).expect("seeded");
    // The database runs: a trader set a price and stock, took an offer away, registered; an
    // order was placed and a cart filled.
    let conn = rusqlite::Connection::open(&db).expect("open");
    let offer = |stall: &str, commodity: &str| -> i64 {
        conn.query_row(
            "SELECT o.id FROM offers o JOIN stalls s ON s.id = o.stall_id
             WHERE s.market = 'blimbing' AND s.number = ?1 AND o.commodity_id = ?2",
            [stall, commodity],
            |r| r.get(0),
        )
        .expect("offer")
    };
    let shallots = offer("A-12", "bawang-merah");
    conn.execute("UPDATE offers SET price = 31000, stock = 7000 WHERE id = ?1", [shallots]).expect("price");
    let kangkung = offer("A-07", "kangkung");
    conn.execute("DELETE FROM offers WHERE id = ?1", [kangkung]).expect("taken away");
    conn.execute(
        "INSERT INTO stall_traders (stall_id, channel, user_id, since)
         SELECT stall_id, 'telegram', '555', '2026-11-01T00:00:00Z' FROM offers WHERE id = ?1",
        [shallots],
    )
    .expect("trader");
    conn.execute(
        "INSERT INTO orders (market, number, channel, user_id, status, buyer_name, phone, slot_date, slot, payment, total, placed_at, updated_at)
         VALUES ('blimbing', 'BLB-0001', 'telegram', '777', 'delivered', 'Bu Ani', '+6281234567890', '2026-11-28', '07:00-09:00', 'cod', 31000, '2026-11-28T00:00:00Z', '2026-11-28T00:00:00Z')",
        [],
    )
    .expect("order");
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect("count") };
    let stalls_before = count("SELECT COUNT(*) FROM stalls");

    let grown = SeedData::load(&data_dir()).expect("seed");
    let mut store = Store::open(&db).expect("store");
    let version = store.catalog_version().expect("version");
    let report = store.update_catalog(&grown).expect("updated");
    assert_eq!(report.commodities_added, grown.commodities.len() - old_ids.len(), "{report:?}");
    assert!(report.commodities_added >= 100, "the catalogue grew by {report:?}");
    assert!(report.stalls_added >= 40 && report.offers_added > report.stalls_added, "{report:?}");
    assert!(report.commodities_updated > 0, "market words, steps and pieces reach old commodities: {report:?}");
    assert!(store.catalog_version().expect("version") > version, "running bots reload the catalogue");

    // Everything the market did is as it was.
    let (price, stock): (i64, i64) = conn
        .query_row("SELECT price, stock FROM offers WHERE id = ?1", [shallots], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("offer kept");
    assert_eq!((price, stock), (31000, 7000), "the trader's price and stock stay");
    assert_eq!(count(&format!("SELECT COUNT(*) FROM offers WHERE id = {kangkung}")), 0);
    let kangkung_back = count(
        "SELECT COUNT(*) FROM offers o JOIN stalls s ON s.id = o.stall_id
         WHERE s.market = 'blimbing' AND s.number = 'A-07' AND o.commodity_id = 'kangkung'",
    );
    assert_eq!(kangkung_back, 0, "an offer the trader took away is not put back");
    assert_eq!(count("SELECT COUNT(*) FROM stall_traders WHERE user_id = '555'"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM orders WHERE number = 'BLB-0001' AND total = 31000"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM stalls") as usize, stalls_before as usize + report.stalls_added);

    // And the bots now read the market's words and sell the new goods.
    let catalog = store.load_catalog(chrono::NaiveDate::MIN).expect("catalog");
    assert_eq!(catalog.commodities().len(), grown.commodities.len());
    for c in &grown.commodities {
        let stored = catalog.commodity(&c.id).expect("every commodity");
        assert_eq!((stored.step, stored.piece), (c.step, c.piece), "{}", c.id);
    }
    let chicken = catalog.read_order("ayam 1 ekor");
    assert_eq!(chicken.items.len(), 1, "{chicken:?}");
    for m in &grown.markets {
        assert!(catalog.stalls_in(&m.slug).len() >= 12, "{} has its new stalls", m.slug);
    }

    // Again: nothing new.
    let again = store.update_catalog(&grown).expect("again");
    assert!(!again.changed(), "{again:?}");
}

#[test]
fn every_price_level_names_its_source_or_says_it_is_an_estimate() {
    let rows = std::fs::read_to_string(data_dir().join("commodities.csv")).expect("read").lines().count();
    let e =
        corrupted("commodities.csv", |t| format!("{t}\nsawi-y,sayur,Sawi Y,Sawi,kg,,,1000,100,,,siskaperbapok-2099"));
    assert!(e.contains(&format!("commodities.csv:{}", rows + 1)) && e.contains("not a key of SOURCES.md"), "{e}");
    let e = corrupted("commodities.csv", |t| format!("{t}\nsawi-y,sayur,Sawi Y,Sawi,kg,,,1000,100,,,"));
    assert!(e.contains(&format!("commodities.csv:{}", rows + 1)) && e.contains("no price_source"), "{e}");
}
