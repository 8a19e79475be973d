//! What operators see of `pasar run`: `/healthz`, `/metrics` in Prometheus' text format, and
//! logs (text or JSON) that never show a bot token, a phone number or an address.

mod common;

use common::fake_telegram::{FakeTelegram, Running};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// Real-looking tokens, so that the redaction is tested on what Telegram issues.
const BLIMBING: &str = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ";
const DINOYO: &str = "7087654321:AAFq9ZzXw8YtR5uVb3nMk2LpQ7sDfGhJkLs";
const ADMIN: i64 = 9001;
const SHOPPER: i64 = 1001;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `pasar run` against `api_url` with `[server] listen` on `port` and `ops_listen` on
/// `ops_port`, its stderr in `log`.
fn run(dir: &std::path::Path, api_url: &str, ports: (u16, u16), log: &std::path::Path, json: bool) -> Running {
    run_with(dir, api_url, ports, log, json, "")
}

/// [`run`] with more `[server]` lines.
fn run_with(
    dir: &std::path::Path,
    api_url: &str,
    (port, ops_port): (u16, u16),
    log: &std::path::Path,
    json: bool,
    server: &str,
) -> Running {
    let config = format!(
        "[telegram]\napi_url = \"{api_url}\"\npoll_timeout_secs = 1\n\n[telegram.limits]\nper_chat_per_sec = 1000\nper_bot_per_sec = 1000\n\n[server]\nlisten = \"127.0.0.1:{port}\"\nops_listen = \"127.0.0.1:{ops_port}\"\n{server}\n\n[[admins]]\nchannel = \"telegram\"\nuser = \"{ADMIN}\"\nmarkets = [\"blimbing\"]\n"
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).expect("config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pasar"));
    cmd.arg("--config").arg(&path);
    if json {
        cmd.args(["--log-format", "json"]);
    }
    let child = cmd
        .args(["run", "--db"])
        .arg(dir.join("pasar.db"))
        .env("PASAR_BLIMBING_TELEGRAM_TOKEN", BLIMBING)
        .env("PASAR_DINOYO_TELEGRAM_TOKEN", DINOYO)
        .env_remove("PASAR_DB")
        .env_remove("PASAR_LOG_FORMAT")
        .env("PASAR_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("pasar run");
    Running(child)
}

/// GET `path` on 127.0.0.1:`port`: status and body (None while nothing listens).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let (status, body) = common::http(port, request.as_bytes());
    // Chunked bodies (axum streams them so): drop the chunk-size lines (hex digits alone; no
    // JSON or metrics line is one).
    let body = body.lines().filter(|l| l.is_empty() || !l.chars().all(|c| c.is_ascii_hexdigit())).collect::<Vec<_>>();
    (status != 0).then(|| (status, body.join("\n")))
}

/// Waits until `check` holds for `GET path`, then returns the body.
fn wait_get(port: u16, path: &str, what: &str, check: impl Fn(u16, &str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline {
        if let Some((status, body)) = get(port, path) {
            if check(status, &body) {
                return body;
            }
            last = Some((status, body));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: last answer {last:?}");
}

/// The value of one metric line (`name{labels} value`).
fn metric(body: &str, line_start: &str) -> Option<f64> {
    body.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[test]
fn healthz_and_metrics_report_the_bots_the_database_and_the_traffic_on_the_operators_listener() {
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, ops_port) = (free_port(), free_port());
    let _pasar = run(dir.path(), &fake.url, (port, ops_port), &dir.path().join("pasar.log"), false);

    // Healthy once both bots have polled: database writable, engine running.
    let health = wait_get(ops_port, "/healthz", "healthy with both bots polling", |status, body| {
        status == 200 && body.matches("\"ok\":true").count() == 2 && !body.contains("\"last_ok_seconds_ago\":null")
    });
    let health: serde_json::Value = serde_json::from_str(&health).expect("healthz is JSON");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database"], "writable");
    assert_eq!(health["engine"], "running");
    let bots = health["bots"].as_array().expect("bots");
    assert_eq!(bots.len(), 2, "{health}");
    assert!(bots.iter().all(|b| b["channel"] == "telegram" && b["intake"] == "polling"), "{health}");
    assert!(bots.iter().all(|b| b["state"] == "running"), "{health}");
    assert!(bots.iter().all(|b| b["last_ok_seconds_ago"].as_f64().is_some_and(|s| s < 30.0)), "{health}");

    // The public listener tells a load balancer up or down and nothing more: no bots, no
    // database, no metrics.
    assert_eq!(get(port, "/healthz"), Some((200, "ok".to_string())));
    assert_eq!(get(port, "/metrics").map(|(status, _)| status), Some(404));

    // Traffic: a shopper's /start and a search on Blimbing; the second reply fails twice with a
    // server error before it goes.
    fake.server_error(BLIMBING, "Sayur Bu Sri", 2);
    fake.text(BLIMBING, SHOPPER, "/start");
    let (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "Pasar Blimbing", 0);
    fake.text(BLIMBING, SHOPPER, "kangkung");
    fake.wait_for(BLIMBING, SHOPPER, "Sayur Bu Sri", seen);
    let body = wait_get(ops_port, "/metrics", "metrics after the traffic", |status, body| {
        status == 200
            && metric(body, "pasar_send_errors_total{market=\"blimbing\",channel=\"telegram\",code=\"5xx\"}")
                == Some(2.0)
    });
    assert_eq!(metric(&body, "pasar_updates_total{market=\"blimbing\",channel=\"telegram\"}"), Some(2.0), "{body}");
    assert_eq!(metric(&body, "pasar_updates_total{market=\"dinoyo\""), None, "{body}");
    // /start answers with two messages, the search with one.
    assert!(
        metric(&body, "pasar_messages_sent_total{market=\"blimbing\",channel=\"telegram\"}") >= Some(3.0),
        "{body}"
    );
    assert_eq!(metric(&body, "pasar_step_seconds_count"), Some(2.0), "{body}");
    assert!(body.contains("# TYPE pasar_step_seconds histogram"), "{body}");
    // Everything went: no queue is left (gauges with no market show no line at all; the
    // snapshot is a couple of seconds behind).
    wait_get(ops_port, "/metrics", "no queue left", |_, body| metric(body, "pasar_outbox_pending{").is_none());
    assert!(body.trim_end().ends_with("# EOF"), "{body}");

    // A database nobody can write to (another process holds the write lock) is unhealthy.
    let db = rusqlite::Connection::open(dir.path().join("pasar.db")).expect("open");
    db.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let body = wait_get(ops_port, "/healthz", "unhealthy while locked", |status, _| status == 503);
    let report: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(report["status"], "unhealthy");
    assert!(report["database"].as_str().is_some_and(|d| d.starts_with("not writable")), "{report}");
    assert_eq!(get(port, "/healthz"), Some((503, "unavailable".to_string())));
    // Meanwhile the answers come from the snapshot, not from the locked store.
    assert_eq!(get(ops_port, "/metrics").map(|(status, _)| status), Some(200));
    db.execute_batch("ROLLBACK").expect("unlock");
    wait_get(ops_port, "/healthz", "healthy again", |status, _| status == 200);
}

#[test]
fn a_bot_that_cannot_start_is_reported_down_and_a_webhook_left_behind_is_deleted_for_polling() {
    // Dinoyo's token is refused (getMe 401); Blimbing's bot still has the webhook of an earlier
    // deployment in webhook mode, so its getUpdates would answer 409 Conflict forever.
    let fake = FakeTelegram::start(&[BLIMBING]);
    fake.set_webhook(BLIMBING, "https://old.example.org/telegram/blimbing");
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, ops_port) = (free_port(), free_port());
    let _pasar = run(dir.path(), &fake.url, (port, ops_port), &dir.path().join("pasar.log"), false);

    let body = wait_get(ops_port, "/healthz", "Blimbing polling, Dinoyo down", |status, body| {
        status == 503 && body.contains("\"state\":\"down\"") && body.contains("\"state\":\"running\"")
    });
    let report: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(report["status"], "unhealthy", "{report}");
    let bot = |market: &str| {
        report["bots"].as_array().and_then(|b| b.iter().find(|b| b["market"] == market)).cloned().expect("bot")
    };
    assert_eq!(bot("dinoyo")["ok"], false, "{report}");
    assert!(bot("dinoyo")["error"].as_str().is_some_and(|e| e.starts_with("getMe failed")), "{report}");
    assert_eq!(bot("blimbing")["ok"], true, "{report}");
    assert_eq!(fake.webhook(BLIMBING), None, "the old webhook was deleted");
    // Blimbing answers.
    fake.text(BLIMBING, SHOPPER, "/start");
    fake.wait_for(BLIMBING, SHOPPER, "Pasar Blimbing", 0);
    // The public listener still takes webhooks: one market's bot down is the operators' to see,
    // not a reason for a load balancer to send every webhook elsewhere.
    assert_eq!(get(port, "/healthz"), Some((200, "ok".to_string())));
}

#[test]
fn a_connection_that_never_finishes_its_headers_is_closed_and_connections_are_limited() {
    use std::io::{Read, Write};
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, ops_port) = (free_port(), free_port());
    let _pasar = run_with(
        dir.path(),
        &fake.url,
        (port, ops_port),
        &dir.path().join("pasar.log"),
        false,
        "header_timeout_secs = 3\nmax_connections = 2",
    );
    wait_get(port, "/healthz", "the server is up", |status, _| status == 200);

    // Two clients that start a request and never finish its headers hold both slots.
    let slow = |_| {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n").expect("half a request");
        c.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        c
    };
    let mut slow: Vec<std::net::TcpStream> = (0..2).map(slow).collect();
    std::thread::sleep(Duration::from_millis(500));
    // A third is not served while they hold them...
    let mut third = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("request");
    third.set_read_timeout(Some(Duration::from_millis(800))).expect("timeout");
    let mut answer = Vec::new();
    let early = third.read_to_end(&mut answer);
    assert!(early.is_err() && answer.is_empty(), "served beyond max_connections: {answer:?}");
    // ...the server closes the slow ones once their headers are late (they would be held
    // forever without a header timeout; the 60 s read timeout above would fail this test)...
    for c in &mut slow {
        let mut rest = Vec::new();
        let closed = c.read_to_end(&mut rest);
        assert!(closed.is_ok(), "the slow connection was not closed: {closed:?}");
    }
    // ...and then the third is answered.
    third.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    third.read_to_end(&mut answer).expect("the answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn json_logs_never_show_tokens_phone_numbers_or_addresses() {
    // Nothing listens at this API address: every getMe fails, and the HTTP client's error
    // carries the URL, whose path holds the bot token.
    let dir = tempfile::tempdir().expect("tempdir");
    let dead_api = format!("http://127.0.0.1:{}", free_port());
    let log = dir.path().join("dead.log");
    let mut pasar = run(dir.path(), &dead_api, (free_port(), free_port()), &log, true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && std::fs::read_to_string(&log).unwrap_or_default().matches("getMe").count() < 2 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = pasar.0.kill();
    let _ = pasar.0.wait();
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("getMe"), "{text}");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
    }
    assert!(text.contains("error sending request for url"), "the failing URL is logged: {text}");
    for secret in [BLIMBING, DINOYO, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"] {
        assert!(!text.contains(secret), "a token in the log: {text}");
    }

    // A shopper's checkout with a phone number and a typed address, logged at debug level.
    let fake = FakeTelegram::start(&[BLIMBING, DINOYO]);
    let log = dir.path().join("shop.log");
    let _pasar = run(dir.path(), &fake.url, (free_port(), free_port()), &log, true);
    fake.text(BLIMBING, SHOPPER, "/start");
    let (_, mut seen) = fake.wait_for(BLIMBING, SHOPPER, "Pasar Blimbing", 0);
    fake.text(BLIMBING, SHOPPER, "kangkung");
    let (offer, n) = fake.wait_for(BLIMBING, SHOPPER, "Sayur Bu Sri", seen);
    fake.press(BLIMBING, SHOPPER, &offer.button("Sayur Bu Sri").expect("the stall's button"));
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "Mau berapa", n);
    fake.text(BLIMBING, SHOPPER, "3 ikat");
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "masuk keranjang", seen);
    fake.press(BLIMBING, SHOPPER, "checkout");
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "atas nama siapa", seen);
    fake.text(BLIMBING, SHOPPER, "Ani Rahayu");
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "Nomor HP", seen);
    fake.text(BLIMBING, SHOPPER, "0812-3456-7890");
    (_, seen) = fake.wait_for(BLIMBING, SHOPPER, "Kirim ke mana", seen);
    fake.text(BLIMBING, SHOPPER, "Jl. Borobudur No. 12 RT 3 RW 4, Purwodadi, Blimbing");
    fake.wait_for(BLIMBING, SHOPPER, "jam berapa", seen);
    // The log is written as things happen; give the last lines a moment.
    std::thread::sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.lines().count() > 5, "debug logging is on: {text}");
    for secret in [BLIMBING, DINOYO, "0812-3456-7890", "081234567890", "3456-7890", "Borobudur No. 12", "RT 3 RW 4"] {
        assert!(!text.contains(secret), "{secret:?} in the log: {text}");
    }
}
