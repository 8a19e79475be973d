//! The typed-order reader against a labelled corpus of messages written the way Malang shoppers
//! write (tests/fixtures/free_text.tsv, labelled by someone who did not write the reader):
//! item-level precision and recall must each be at least 95% on the whole file and at least 90%
//! in each of the groups the market's words brought (money, pieces, Javanese numbers,
//! abbreviations, goods new to the catalogue). Run with `--nocapture` to see the figures and
//! every message read differently from its label.
//!
//! A label is `id=VALUE;...`: VALUE is the quantity in the commodity's base unit (grams,
//! millilitres, pieces), `Rp5000` for so much money's worth, or `3pc` for pieces of a commodity
//! sold by weight.

use pasar_online::config::Config;
use pasar_online::domain::amount::Amount;
use std::collections::{BTreeMap, HashMap};

/// One labelled message: its group, the text, and the items expected as (commodity id, value).
struct Labelled {
    group: String,
    message: String,
    expected: Vec<(String, String)>,
}

fn corpus() -> Vec<Labelled> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/free_text.tsv");
    let text = std::fs::read_to_string(&path).expect("the corpus");
    let mut out = Vec::new();
    let mut group = String::from("(none)");
    for (n, line) in text.lines().enumerate() {
        if let Some(header) = line.strip_prefix("# ==") {
            group = header.trim_end_matches('=').trim().to_string();
            continue;
        }
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (message, expected) = line.split_once('\t').unwrap_or_else(|| panic!("line {}: no tab", n + 1));
        let items = expected
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                let (id, value) = s.trim().split_once('=').unwrap_or_else(|| panic!("line {}: `{s}`", n + 1));
                let valid = value.strip_prefix("Rp").or_else(|| value.strip_suffix("pc")).unwrap_or(value);
                assert!(valid.parse::<u64>().is_ok(), "line {}: `{s}`", n + 1);
                (id.to_string(), value.to_string())
            })
            .collect();
        out.push(Labelled { group: group.clone(), message: message.replace("\\n", "\n"), expected: items });
    }
    out
}

/// An item as the label writes it.
fn label(commodity: &str, amount: Amount) -> (String, String) {
    let value = match amount {
        Amount::Exact(q) => q.base().to_string(),
        Amount::Money(r) => format!("Rp{}", r.value()),
        Amount::Pieces { count, .. } => format!("{count}pc"),
    };
    (commodity.to_string(), value)
}

#[derive(Default)]
struct Tally {
    messages: usize,
    expected: usize,
    found: usize,
    right: usize,
}

impl Tally {
    fn precision(&self) -> f64 {
        self.right as f64 / self.found.max(1) as f64
    }
    fn recall(&self) -> f64 {
        self.right as f64 / self.expected.max(1) as f64
    }
}

/// Groups that must each reach 90%, with at least 40 messages each.
const GROUPS: [&str; 5] =
    ["money amounts", "pieces of weight-sold goods", "javanese numbers", "abbreviations", "goods new to the catalogue"];

#[test]
fn the_reader_finds_at_least_95_percent_of_the_items_and_invents_under_5_percent() {
    let catalog = pasar_online::runtime::tool_catalog(&Config::default(), None).expect("catalogue");
    let corpus = corpus();
    assert!(corpus.len() >= 600, "the corpus has {} messages", corpus.len());
    let mut total = Tally::default();
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    let mut misses = Vec::new();
    for Labelled { group, message, expected } in &corpus {
        let read = catalog.read_order(message);
        let found: Vec<(String, String)> = read.items.iter().map(|i| label(&i.commodity, i.amount)).collect();
        let mut left: HashMap<&(String, String), usize> = HashMap::new();
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
        for t in [&mut total, groups.entry(group.clone()).or_default()] {
            t.messages += 1;
            t.expected += expected.len();
            t.found += found.len();
            t.right += hits;
        }
        if hits != expected.len() || hits != found.len() {
            misses.push(format!("[{group}] {message:?}\n   expected {expected:?}\n   read     {found:?}"));
        }
    }
    println!(
        "free-text corpus: {} messages, {} items expected, {} read, {} right: precision {:.1}%, recall {:.1}%",
        total.messages,
        total.expected,
        total.found,
        total.right,
        total.precision() * 100.0,
        total.recall() * 100.0
    );
    for (name, t) in &groups {
        println!(
            "  {name}: {} messages, {} expected, {} read, {} right: precision {:.1}%, recall {:.1}%",
            t.messages,
            t.expected,
            t.found,
            t.right,
            t.precision() * 100.0,
            t.recall() * 100.0
        );
    }
    for m in &misses {
        println!("{m}");
    }
    assert!(
        total.precision() >= 0.95 && total.recall() >= 0.95,
        "precision {:.3}, recall {:.3}",
        total.precision(),
        total.recall()
    );
    for name in GROUPS {
        let t = groups.get(name).unwrap_or_else(|| panic!("no group `{name}` in the corpus"));
        assert!(t.messages >= 40, "`{name}` has {} messages", t.messages);
        assert!(
            t.precision() >= 0.90 && t.recall() >= 0.90,
            "`{name}`: precision {:.3}, recall {:.3}",
            t.precision(),
            t.recall()
        );
    }
}
