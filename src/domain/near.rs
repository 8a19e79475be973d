//! Words within a typo or two of a shopper's word, found through an index instead of comparing
//! the word with every name in the catalogue.
//!
//! The index keeps every word of the catalogue's names with each of its variants that lack one
//! or two letters (the idea of SymSpell): two words within `d` edits (Damerau: a transposition
//! counts one) always share a variant with at most `d` letters removed from each. A lookup makes
//! the query's own variants, collects the words that share one, and keeps those truly within the
//! distance. A word that matches nothing costs a few dozen hash lookups, however large the
//! catalogue grows. Pure; no I/O.

use std::collections::{HashMap, HashSet};

/// The most edits the index is built for.
pub const MAX_DISTANCE: usize = 2;

/// The index of a set of words.
#[derive(Debug, Default)]
pub struct NearWords {
    words: Vec<String>,
    /// A word or a variant of it with letters removed -> the words it comes from.
    variants: HashMap<String, Vec<u32>>,
}

/// `word` and its variants with up to `max` letters removed.
fn deletions(word: &str, max: usize) -> HashSet<String> {
    let mut out: HashSet<String> = HashSet::new();
    out.insert(word.to_string());
    let mut frontier = vec![word.to_string()];
    for _ in 0..max {
        let mut next = Vec::new();
        for w in &frontier {
            let chars: Vec<char> = w.chars().collect();
            if chars.is_empty() {
                continue;
            }
            for i in 0..chars.len() {
                let shorter: String = chars.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, c)| *c).collect();
                if out.insert(shorter.clone()) {
                    next.push(shorter);
                }
            }
        }
        frontier = next;
    }
    out
}

impl NearWords {
    /// Indexes the distinct words given.
    pub fn new<'a>(words: impl IntoIterator<Item = &'a str>) -> NearWords {
        let mut index = NearWords::default();
        let mut seen: HashSet<&str> = HashSet::new();
        for word in words {
            if word.is_empty() || !seen.insert(word) {
                continue;
            }
            let id = u32::try_from(index.words.len()).unwrap_or(u32::MAX);
            index.words.push(word.to_string());
            for v in deletions(word, MAX_DISTANCE) {
                index.variants.entry(v).or_default().push(id);
            }
        }
        index
    }

    /// The indexed words within `distance` edits of `word` (at most [`MAX_DISTANCE`]), with
    /// their distance, closest first.
    pub fn within(&self, word: &str, distance: usize) -> Vec<(&str, usize)> {
        let distance = distance.min(MAX_DISTANCE);
        let mut candidates: HashSet<u32> = HashSet::new();
        for v in deletions(word, distance) {
            if let Some(ids) = self.variants.get(&v) {
                candidates.extend(ids);
            }
        }
        let len = word.chars().count();
        let mut out: Vec<(&str, usize)> = candidates
            .into_iter()
            .filter_map(|id| self.words.get(id as usize))
            .filter(|w| w.chars().count().abs_diff(len) <= distance)
            .filter_map(|w| {
                let d = strsim::damerau_levenshtein(word, w);
                (d <= distance).then_some((w.as_str(), d))
            })
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
        out
    }

    /// How many words are indexed.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_the_words_a_full_comparison_finds() {
        let words =
            ["bawang", "merah", "putih", "brambang", "tempe", "tahu", "kangkung", "bayam", "labu", "siam", "kol"];
        let index = NearWords::new(words);
        for query in ["bawamg", "bwang", "tmpe", "tahuu", "kangkng", "halo", "abyam", "mearh", "x", "", "labuu", "kolo"]
        {
            for d in 0..=2 {
                let mut scan: Vec<(&str, usize)> = words
                    .iter()
                    .map(|w| (*w, strsim::damerau_levenshtein(query, w)))
                    .filter(|(_, dist)| *dist <= d)
                    .collect();
                scan.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
                assert_eq!(index.within(query, d), scan, "{query} within {d}");
            }
        }
    }

    use proptest::prelude::*;

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Whatever the words: the index finds what comparing with every word finds.
        #[test]
        fn the_index_agrees_with_a_scan(
            words in proptest::collection::vec("[a-e]{1,7}", 1..30),
            query in "[a-e]{0,8}",
            d in 0usize..=2,
        ) {
            let index = NearWords::new(words.iter().map(String::as_str));
            let mut unique: Vec<&str> = words.iter().map(String::as_str).collect();
            unique.sort();
            unique.dedup();
            let mut scan: Vec<(&str, usize)> = unique
                .iter()
                .map(|w| (*w, strsim::damerau_levenshtein(&query, w)))
                .filter(|(_, dist)| *dist <= d)
                .collect();
            scan.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
            prop_assert_eq!(index.within(&query, d), scan);
        }
    }
}
