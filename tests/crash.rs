//! Kill -9 at random moments: the two-trader order of `tests/transcripts/08_two_traders.txt` is
//! played by `pasar chat --script` and the process is SIGKILLed at a random point, 50 times,
//! each time starting again on the same database (as an operator would). In the end every
//! message to the shopper, the traders and the admin exists exactly once, each was delivered,
//! every typed line was handled once, and `PRAGMA integrity_check` is ok.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KILLS: usize = 50;

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts/08_two_traders.txt")
}

fn pasar(db: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pasar"));
    c.args(["chat", "--script"])
        .arg(script())
        .arg("--db")
        .arg(db)
        .env("PASAR_INVITE_SECRET", "transcripts")
        .env("PASAR_LOG", "off")
        .env_remove("PASAR_CONFIG")
        .env_remove("PASAR_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Every outbox message as (recipient, text), counted; and the state of the rows.
fn messages(db: &Path) -> (BTreeMap<(String, String), usize>, i64, i64, i64, String) {
    let conn = rusqlite::Connection::open(db).expect("db");
    let mut stmt = conn.prepare("SELECT recipient, message, status FROM outbox").expect("prepare");
    let mut counts = BTreeMap::new();
    let mut unsent = 0;
    for row in stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
        .expect("query")
    {
        let (to, msg, status) = row.expect("row");
        *counts.entry((to, msg)).or_insert(0) += 1;
        if status != "sent" {
            unsent += 1;
        }
    }
    let orders: i64 = conn.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0)).expect("orders");
    let undone: i64 =
        conn.query_row("SELECT COUNT(*) FROM inbox WHERE status <> 'done'", [], |r| r.get(0)).expect("inbox");
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
    (counts, unsent, orders, undone, check)
}

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn nothing_is_lost_or_doubled_by_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A clean run gives the reference, and how long a whole run takes.
    let reference_db = dir.path().join("reference.db");
    let started = Instant::now();
    let status = pasar(&reference_db).status().expect("reference run");
    assert!(status.success());
    let full_run = started.elapsed();
    let (reference, unsent, orders, undone, check) = messages(&reference_db);
    assert_eq!((unsent, orders, undone, check.as_str()), (0, 1, 0, "ok"));
    assert!(reference.values().all(|n| *n == 1), "the reference run has no duplicates");

    let db = dir.path().join("crashy.db");
    let mut rng = Lcg(0x5eed_2026);
    let mut killed_mid_run = 0;
    for _ in 0..KILLS {
        let mut child = pasar(&db).spawn().expect("spawn");
        let delay = Duration::from_micros(rng.next() % (full_run.as_micros() as u64 + 1));
        std::thread::sleep(delay);
        if child.try_wait().expect("wait").is_none() {
            killed_mid_run += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    // Once the database has caught up, a replay is quick and a kill may come after it ended;
    // the early ones cannot miss.
    assert!(killed_mid_run >= 1, "no kill landed while the chat was running");
    let status = pasar(&db).status().expect("final run");
    assert!(status.success());
    let (after, unsent, orders, undone, check) = messages(&db);
    assert_eq!(check, "ok");
    assert_eq!(orders, 1, "one order, never two");
    assert_eq!(undone, 0, "every typed line was handled");
    assert_eq!(unsent, 0, "every message was delivered");
    let doubled: Vec<_> = after.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "messages written twice: {doubled:#?}");
    let lost: Vec<_> = reference.keys().filter(|k| !after.contains_key(*k)).collect();
    assert!(lost.is_empty(), "messages lost: {lost:#?}");
    let extra: Vec<_> = after.keys().filter(|k| !reference.contains_key(*k)).collect();
    assert!(extra.is_empty(), "messages the clean run never sent: {extra:#?}");
}
