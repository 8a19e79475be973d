//! WhatsApp webhook load: signed deliveries posted to a running `pasar run` (all ten markets on
//! WhatsApp, replies going to a fake Graph API in this process), measuring how fast the server
//! acknowledges them. The acknowledgement is what Meta waits for: the delivery is in the inbox
//! (durable SQLite) before the 200, and the conversation runs after it.
//!
//! ```sh
//! cargo bench --bench whatsapp_webhook -- [--rate 250] [--seconds 20] [--concurrency 32]
//! ```
//!
//! Two runs: open loop at a fixed rate (latency measured from each request's scheduled time, so
//! a slow server cannot hide its queue), then closed loop with `--concurrency` connections for
//! the most requests a second. Everything on 127.0.0.1.

use pasar_online::channel::whatsapp::sign;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SECRET: &str = "bench-app-secret";
const MARKETS: [&str; 10] = [
    "blimbing",
    "oro-oro-dowo",
    "klojen",
    "bunul",
    "dinoyo",
    "madyopuro",
    "mergan",
    "sawojajar",
    "sukun",
    "tawangmangu",
];
const WORDS: [&str; 8] = ["/start", "kangkung", "brambang", "lombok", "/keranjang", "telur", "/bantuan", "tempe"];

struct Args {
    rate: u64,
    seconds: u64,
    concurrency: usize,
}

fn args() -> Args {
    let mut a = Args { rate: 250, seconds: 20, concurrency: 32 };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |i: usize| -> u64 { args.get(i + 1).and_then(|v| v.parse().ok()).expect("a number after the flag") };
    for (i, flag) in args.iter().enumerate() {
        // Anything else (cargo bench passes --bench) is ignored.
        match flag.as_str() {
            "--rate" => a.rate = value(i),
            "--seconds" => a.seconds = value(i),
            "--concurrency" => a.concurrency = value(i) as usize,
            _ => {}
        }
    }
    a
}

struct Pasar(Child);

impl Drop for Pasar {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fake Graph API that accepts every message.
async fn fake_graph() -> String {
    use axum::response::IntoResponse;
    let counter = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/{version}/{number}/messages",
        axum::routing::post(move || {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            async move {
                axum::Json(serde_json::json!({"messaging_product": "whatsapp", "messages": [{"id": format!("wamid.out.{n}")}]}))
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}/v21.0")
}

fn delivery(seq: u64) -> String {
    let market = seq % 10;
    let user = 6_281_200_000_000_u64 + seq % 5_000;
    let text = WORDS[(seq / 10 % WORDS.len() as u64) as usize];
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"62341","phone_number_id":"{}"}},"contacts":[{{"profile":{{"name":"Pembeli"}},"wa_id":"{user}"}}],"messages":[{{"from":"{user}","id":"wamid.bench.{seq}","timestamp":"1764300000","type":"text","text":{{"body":"{text}"}}}}]}}}}]}}]}}"#,
        1001 + market
    )
}

fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn post(client: &reqwest::Client, url: &str, seq: u64) -> bool {
    let body = delivery(seq);
    let signature = sign(SECRET.as_bytes(), body.as_bytes());
    match client
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
    {
        Ok(r) => r.status().is_success(),
        Err(_) => false,
    }
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let graph = fake_graph().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let mut config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nops_listen = \"127.0.0.1:0\"\n[whatsapp]\ngraph_url = \"{graph}\"\n\
             [whatsapp.limits]\nper_number_per_sec = 10000\nper_user_interval_secs = 0\n"
        );
        for (i, m) in MARKETS.iter().enumerate() {
            config.push_str(&format!("[markets.{m}]\nwhatsapp_phone_number_id = \"{}\"\n", 1001 + i));
        }
        std::fs::write(dir.path().join("config.toml"), config).expect("config");
        // PASAR_BENCH_BIN: another build to measure (an older commit's, for before/after).
        let bin = std::env::var("PASAR_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pasar").to_string());
        let child = Command::new(bin)
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .args(["run", "--db"])
            .arg(dir.path().join("pasar.db"))
            .env("PASAR_WHATSAPP_ACCESS_TOKEN", "bench-token")
            .env("PASAR_WHATSAPP_APP_SECRET", SECRET)
            .env("PASAR_WHATSAPP_VERIFY_TOKEN", "bench")
            .env("PASAR_LOG", "error")
            .env_remove("PASAR_DB")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("pasar run");
        let pid = child.id();
        let _pasar = Pasar(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "pasar did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let url = format!("http://127.0.0.1:{port}/whatsapp");
        let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("client");
        let seq = Arc::new(AtomicU64::new(0));

        // Open loop at a fixed rate.
        let total = a.rate * a.seconds;
        let gap = Duration::from_secs_f64(1.0 / a.rate as f64);
        let start = Instant::now();
        let mut handles = Vec::with_capacity(total as usize);
        for i in 0..total {
            let due = start + gap.mul_f64(i as f64);
            tokio::time::sleep_until(due.into()).await;
            let (client, url, seq) = (client.clone(), url.clone(), Arc::clone(&seq));
            handles.push(tokio::spawn(async move {
                let ok = post(&client, &url, seq.fetch_add(1, Ordering::Relaxed)).await;
                (ok, due.elapsed())
            }));
        }
        let mut latencies = Vec::with_capacity(handles.len());
        let mut failed = 0;
        for h in handles {
            let (ok, latency) = h.await.expect("request task");
            if !ok {
                failed += 1;
            }
            latencies.push(latency);
        }
        let open_elapsed = start.elapsed();
        latencies.sort();
        println!(
            "open loop: {total} signed deliveries at {} /s over {:.1} s, {failed} not acknowledged with 200",
            a.rate,
            open_elapsed.as_secs_f64()
        );
        println!(
            "  acknowledgement latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );

        // Closed loop: as fast as the server acknowledges.
        let done = Arc::new(AtomicU64::new(0));
        let stop_at = Instant::now() + Duration::from_secs(a.seconds.min(10));
        let closed_start = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..a.concurrency {
            let (client, url, seq, done) = (client.clone(), url.clone(), Arc::clone(&seq), Arc::clone(&done));
            workers.push(tokio::spawn(async move {
                while Instant::now() < stop_at {
                    if post(&client, &url, seq.fetch_add(1, Ordering::Relaxed)).await {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for w in workers {
            let _ = w.await;
        }
        let n = done.load(Ordering::Relaxed);
        let secs = closed_start.elapsed().as_secs_f64();
        println!(
            "closed loop: {} connections, {n} acknowledged in {secs:.1} s = {:.0} requests/s",
            a.concurrency,
            n as f64 / secs
        );
        println!("pasar peak RSS: {:.1} MB", peak_rss_kb(pid) as f64 / 1024.0);
    });
}
