//! Issue 9's speed target: reading one typed order takes under 1 ms on the full catalogue.
//!
//! ```sh
//! cargo bench --bench free_text            # every corpus message, 200 rounds
//! cargo bench --bench free_text -- 1000    # more rounds
//! ```
//!
//! Every message of `tests/fixtures/free_text.tsv` is read `rounds` times against the seed
//! catalogue (every commodity of the ten markets); the time of one reading is its round's
//! average. Prints the mean, p50, p99 and the slowest message, and the throughput.

use pasar_online::config::Config;
use std::time::Instant;

fn main() {
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200);
    let catalog = pasar_online::runtime::tool_catalog(&Config::default(), None).expect("catalogue");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/free_text.tsv");
    let text = std::fs::read_to_string(path).expect("the corpus");
    let messages: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split('\t').next().unwrap_or_default().replace("\\n", "\n"))
        .collect();
    // Warm up (caches, allocator).
    for m in &messages {
        std::hint::black_box(catalog.read_order(m));
    }
    let mut per_message: Vec<(f64, &str)> = Vec::with_capacity(messages.len());
    let all = Instant::now();
    for m in &messages {
        let t = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(catalog.read_order(std::hint::black_box(m)));
        }
        per_message.push((t.elapsed().as_secs_f64() * 1e6 / rounds as f64, m));
    }
    let total = all.elapsed().as_secs_f64();
    per_message.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = per_message.len();
    let mean = per_message.iter().map(|p| p.0).sum::<f64>() / n as f64;
    let at = |q: f64| per_message[((n as f64 * q) as usize).min(n - 1)].0;
    let (slowest, which) = per_message[n - 1];
    println!("free-text reading: {n} messages x {rounds} rounds, {} commodities", catalog.commodities().len());
    println!("  mean {mean:.1} µs, p50 {:.1} µs, p99 {:.1} µs, max {slowest:.1} µs", at(0.5), at(0.99));
    println!("  slowest: {:?}", which.chars().take(80).collect::<String>());
    println!("  throughput: {:.0} messages/s on one core", (n * rounds) as f64 / total);
    // What a shopper's word costs the bot before a reply: reading it as an order, then the
    // search (a word that matches nothing must not be the slow path).
    println!("one word, read as an order and searched in Pasar Blimbing ({} rounds each):", rounds * 50);
    for word in ["kangkung", "halo", "assalamualaikum", "brambang 5rb", "sabun colek"] {
        let t = Instant::now();
        for _ in 0..rounds * 50 {
            std::hint::black_box(catalog.read_order(std::hint::black_box(word)));
        }
        let read = t.elapsed().as_secs_f64() * 1e6 / (rounds * 50) as f64;
        let t = Instant::now();
        for _ in 0..rounds * 50 {
            std::hint::black_box(catalog.search("blimbing", std::hint::black_box(word)));
        }
        let search = t.elapsed().as_secs_f64() * 1e6 / (rounds * 50) as f64;
        println!("  {word:>16}: read {read:.1} µs, search {search:.1} µs");
    }
}
