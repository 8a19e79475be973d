//! Golden conversations: each `tests/transcripts/*.txt` is replayed line by line (`> ` lines are
//! typed, `--- restart ---` reopens the engine on the same file, `--- clock ... ---` sets the
//! time) against the real engine on a temp SQLite file, and the whole output must equal the file.
//! Set UPDATE_TRANSCRIPTS=1 to rewrite the files after an intended change, then read the diff.

mod common;

use pasar_online::channel::console::{ConsoleClock, ConsoleError, ScriptOptions, run_script};
use pasar_online::config::Config;
use pasar_online::conversation::engine::Clock;
use std::path::Path;
use std::sync::Arc;

fn play(file: &Path) -> (String, String) {
    let expected = std::fs::read_to_string(file).expect("read transcript");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("pasar.db");
    let clock = Arc::new(ConsoleClock::fixed(Some(common::morning())));
    // A fixed invite secret, so invite codes in the transcripts are the same on every run.
    let mut config = Config::default();
    config.policy.invite_secret = Some(pasar_online::secret::Secret::new("transcripts"));
    // Virtual accounts offered too (the bank's news is played by `--- bank ... ---` lines).
    config.policy.payment.va_bank = Some("bni".into());
    // The city trade office's admin, as the config names it (every market).
    config.policy.admins.push(pasar_online::config::AdminEntry {
        user: pasar_online::channel::UserKey {
            channel: pasar_online::channel::ChannelKind::Console,
            id: "kantor-kota".into(),
        },
        markets: Vec::new(),
    });
    let open = || {
        pasar_online::runtime::open_engine(&config, &db, Arc::clone(&clock) as Arc<dyn Clock>)
            .map_err(|e| ConsoleError::Script(e.to_string()))
    };
    let mut out = Vec::new();
    let options = ScriptOptions { market: "blimbing".into(), user: "sri".into() };
    run_script(&mut expected.as_bytes(), &mut out, &options, &clock, &open).expect("script runs");
    (expected, String::from_utf8(out).expect("utf8"))
}

#[test]
fn transcripts_match() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("transcripts dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "expected the transcript set, found {files:?}");
    let update = std::env::var_os("UPDATE_TRANSCRIPTS").is_some();
    let mut failures = Vec::new();
    for file in &files {
        let (expected, actual) = play(file);
        if expected == actual {
            continue;
        }
        if update {
            std::fs::write(file, &actual).expect("write transcript");
            continue;
        }
        let first_diff = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .find(|(_, (e, a))| e != a)
            .map(|(i, (e, a))| format!("line {}:\n  expected: {e}\n  actual:   {a}", i + 1))
            .unwrap_or_else(|| {
                format!("lengths differ: {} vs {} lines", expected.lines().count(), actual.lines().count())
            });
        failures.push(format!("{}: {first_diff}", file.display()));
    }
    assert!(failures.is_empty(), "transcripts differ (UPDATE_TRANSCRIPTS=1 rewrites them):\n{}", failures.join("\n"));
}
