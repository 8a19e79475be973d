//! The typed-order reader against a labelled corpus of messages written the way Malang shoppers
//! write (tests/fixtures/free_text.tsv, labelled by someone who did not write the reader):
//! item-level precision and recall must each be at least 95%. Run with `--nocapture` to see the
//! figures and every message read differently from its label.

use pasar_online::config::Config;
use std::collections::HashMap;

/// (message, expected items as (commodity id, base quantity)).
fn corpus() -> Vec<(String, Vec<(String, u64)>)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/free_text.tsv");
    let text = std::fs::read_to_string(&path).expect("the corpus");
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (message, expected) = line.split_once('\t').unwrap_or_else(|| panic!("line {}: no tab", n + 1));
        let items = expected
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                let (id, base) = s.trim().split_once('=').unwrap_or_else(|| panic!("line {}: `{s}`", n + 1));
                (id.to_string(), base.parse().unwrap_or_else(|_| panic!("line {}: `{s}`", n + 1)))
            })
            .collect();
        out.push((message.replace("\\n", "\n"), items));
    }
    out
}

#[test]
fn the_reader_finds_at_least_95_percent_of_the_items_and_invents_under_5_percent() {
    let catalog = pasar_online::runtime::tool_catalog(&Config::default(), None).expect("catalogue");
    let corpus = corpus();
    assert!(corpus.len() >= 300, "the corpus has {} messages", corpus.len());
    let (mut expected_total, mut found_total, mut right) = (0usize, 0usize, 0usize);
    let mut misses = Vec::new();
    for (message, expected) in &corpus {
        let read = catalog.read_order(message);
        let found: Vec<(String, u64)> = read.items.iter().map(|i| (i.commodity.clone(), i.quantity.base())).collect();
        let mut left: HashMap<&(String, u64), usize> = HashMap::new();
        for e in expected {
            *left.entry(e).or_default() += 1;
        }
        let mut hits = 0;
        for f in &found {
            if let Some(n) = left.get_mut(f)
                && *n > 0
            {
                *n -= 1;
                hits += 1;
            }
        }
        expected_total += expected.len();
        found_total += found.len();
        right += hits;
        if hits != expected.len() || hits != found.len() {
            misses.push(format!("{message:?}\n   expected {expected:?}\n   read     {found:?}"));
        }
    }
    let precision = right as f64 / found_total.max(1) as f64;
    let recall = right as f64 / expected_total.max(1) as f64;
    println!(
        "free-text corpus: {} messages, {expected_total} items expected, {found_total} read, {right} right: \
         precision {:.1}%, recall {:.1}%",
        corpus.len(),
        precision * 100.0,
        recall * 100.0
    );
    for m in &misses {
        println!("{m}");
    }
    assert!(precision >= 0.95 && recall >= 0.95, "precision {precision:.3}, recall {recall:.3}");
}
