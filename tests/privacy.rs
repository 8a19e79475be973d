//! What a purge leaves of a person (UU PDP): nothing that names them, in the tables or in the
//! bytes of the file, while the orders stay as anonymous figures and a replayed update stays
//! ignored.

mod common;

use common::Harness;
use common::market::{ADMIN, as_user, market_with_couriers, place_order};
use pasar_online::channel::{ChannelKind, Inbound, InboundEvent, UserKey};
use pasar_online::conversation::engine::Clock;

/// A British number: no pattern tells it from any other id, so only the purge can hide it.
const SHOPPER: &str = "447700900123";

/// Every table's text, as one string per row, for a search.
fn rows_mentioning(h: &Harness, needle: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .expect("tables")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("names");
    let mut found = Vec::new();
    for table in tables {
        let columns: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .expect("columns")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("names");
        let concat = columns.iter().map(|c| format!("COALESCE(CAST(\"{c}\" AS TEXT), '')")).collect::<Vec<_>>();
        let sql = format!("SELECT CAST(({}) AS BLOB) FROM \"{table}\"", concat.join(" || '|' || "));
        let mut stmt = conn.prepare(&sql).expect("select");
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).expect("rows");
        for row in rows {
            let row = String::from_utf8_lossy(&row.expect("row")).to_string();
            if row.contains(needle) {
                found.push(format!("{table}: {row}"));
            }
        }
    }
    found
}

/// The bytes of the database's files (the database, its WAL if any).
fn file_bytes(h: &Harness) -> Vec<u8> {
    let mut bytes = std::fs::read(&h.db).expect("db file");
    let wal = h.db.with_extension("db-wal");
    if let Ok(more) = std::fs::read(wal) {
        bytes.extend(more);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_purge_leaves_no_trace_of_a_whatsapp_shopper_and_a_replayed_update_stays_ignored() {
    let mut h = Harness::new("blimbing");
    market_with_couriers(&mut h, &[]);
    h.user = UserKey { channel: ChannelKind::WhatsApp, id: SHOPPER.into() };
    let number = place_order(&mut h, SHOPPER, None);
    let first_update: String = rusqlite::Connection::open(&h.db)
        .expect("db")
        .query_row("SELECT source_id FROM inbox WHERE user_id = ?1 ORDER BY id LIMIT 1", [SHOPPER], |r| r.get(0))
        .expect("an update of theirs");
    // The market's admin cancels it (a finished order).
    h.user = UserKey { channel: ChannelKind::Console, id: ADMIN.into() };
    as_user(&mut h, ADMIN);
    h.command(&format!("/batalkan {number} stok habis"));
    // The shopper's messages went out (a message still owed would stay until sent).
    for m in h.engine.store().pending_outbox(ChannelKind::WhatsApp, 1000).expect("outbox") {
        h.engine.store().mark_sent(m.id, h.clock.now()).expect("sent");
    }
    assert!(!rows_mentioning(&h, SHOPPER).is_empty(), "before: the number is everywhere");
    assert!(!rows_mentioning(&h, "Borobudur No. 12").is_empty());

    h.clock.advance(chrono::Duration::days(2));
    let report =
        h.engine.store().purge(h.clock.now() - chrono::Duration::days(1), Some("pseudonym-key")).expect("purge");
    assert_eq!(report.orders, 1, "{report:?}");
    assert!(report.pseudonymised >= 1 && report.messages > 0 && report.updates > 0, "{report:?}");

    // Nothing in any table names them, and nothing in the file's bytes either.
    for needle in [SHOPPER, "7700900123", "Ani Rahayu", "0812-3456-7890", "081234567890", "Borobudur No. 12"] {
        assert_eq!(rows_mentioning(&h, needle), Vec::<String>::new(), "{needle}");
        let db = std::fs::read(&h.db).expect("db");
        let wal = std::fs::read(h.db.with_extension("db-wal")).unwrap_or_default();
        let at = |b: &[u8]| b.windows(needle.len()).position(|w| w == needle.as_bytes());
        assert!(
            !contains(&file_bytes(&h), needle),
            "{needle} is still in the file's bytes: db {:?} (of {}), wal {:?} (of {})",
            at(&db),
            db.len(),
            at(&wal),
            wal.len()
        );
    }
    // The order stays, anonymous: its buyer is a pseudonym, the same for every order of theirs.
    let conn = rusqlite::Connection::open(&h.db).expect("db");
    let (user, name, total): (String, String, i64) = conn
        .query_row("SELECT user_id, buyer_name, total FROM orders WHERE number = ?1", [&number], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("the order");
    assert!(user.starts_with("anon-"), "{user}");
    assert_eq!(name, "(dihapus)");
    assert!(total > 0);
    // A new database gives its pages back.
    let auto_vacuum: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).expect("pragma");
    assert_eq!(auto_vacuum, 2, "incremental");
    assert!(report.pages_freed > 0, "{report:?}");
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0)).expect("pragma");
    assert_eq!(free, 0);

    // A captured update played again after its row was purged is still a redelivery.
    let replay = InboundEvent {
        source_id: first_update,
        market: "blimbing".into(),
        user: UserKey { channel: ChannelKind::WhatsApp, id: SHOPPER.into() },
        display_name: None,
        received_at: h.clock.now(),
        inbound: Inbound::Text("/start".into()),
        pressed_on: None,
    };
    assert_eq!(h.engine.store().ingest(&[replay]).expect("ingest"), 0, "ignored");
    // A purge again finds nothing more.
    let again =
        h.engine.store().purge(h.clock.now() - chrono::Duration::days(1), Some("pseudonym-key")).expect("purge");
    assert_eq!((again.orders, again.pseudonymised, again.messages, again.updates), (0, 0, 0, 0), "{again:?}");
}
