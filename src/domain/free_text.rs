//! Reading an order typed the way it is said at the market: "bu, brambang sekilo, lombok rawit
//! seprapat, tempe 2 papan" becomes items (a commodity and an exact quantity) and the parts that
//! were not understood. A question ("harga cabe berapa?", "ada daging sapi?") is told apart
//! from an order.
//!
//! Pure and regex-free at its core: the message is cut into pieces at separators (commas, new
//! lines, `dan`, `sama`, `karo`, `+`, bullets, numbered lists), each piece into words; names are
//! found longest first among the catalogue's names, aliases and market words (then with a typo
//! allowance), amounts with the one quantity parser ([`crate::domain::quantity`]). Nothing here
//! knows stalls or prices: the buyer conversation and `pasar parse` add those.

use crate::domain::amount::{Amount, AmountError, is_money_word, parse_amount};
use crate::domain::catalog::{Commodity, normalize};
use crate::domain::quantity::{
    Quantity, QuantityError, SaleUnit, is_piece_word, is_unit_word, parse_number, parse_quantity, tokens,
};
use serde::Serialize;
use std::collections::HashMap;

/// The most characters of a message that are read (a longer one is cut, and says so).
pub const MAX_CHARS: usize = 2000;
/// The most items one message may order.
pub const MAX_ITEMS: usize = 30;

/// Words of politeness and chatter around an order, in Indonesian and Javanese.
const FILLER: &[&str] = &[
    "bu",
    "buk",
    "bude",
    "mbak",
    "mbok",
    "mas",
    "pak",
    "lur",
    "dik",
    "dek",
    "cak",
    "ning",
    "tolong",
    "ya",
    "yo",
    "iya",
    "ok",
    "oke",
    "beli",
    "tuku",
    "pesan",
    "pesen",
    "mau",
    "pingin",
    "nggih",
    "ngge",
    "enggih",
    "dong",
    "aja",
    "wae",
    "ae",
    "sekalian",
    "batal",
    "jadi",
    "kirim",
    "makasih",
    "terima",
    "kasih",
    "matur",
    "nuwun",
    "suwun",
    "halo",
    "hai",
    "pagi",
    "siang",
    "sore",
    "malam",
    "assalamualaikum",
    "permisi",
    "punten",
    "minta",
    "njaluk",
    "saya",
    "aku",
    "kulo",
    "x",
    "yang",
    "sing",
    "ini",
    "itu",
    "lagi",
    "juga",
    "pun",
    "nya",
    "kak",
    "gan",
    "sis",
    "hari",
    "besok",
    "buat",
    "untuk",
    "bayar",
    "cod",
    "antar",
    "diantar",
    "dikirim",
    "ongkir",
    "jam",
    "alamat",
    "nanti",
    "cepat",
    "segera",
    "sekarang",
];

/// Words that join two items in one line.
const JOINERS: &[&str] = &["dan", "sama", "karo", "terus", "lalu", "plus", "ambek", "kalih", "serta"];

/// Words that make a message a question, not an order.
/// Words that ask a price: a message with one is a question unless it lists several amounts.
const PRICE_WORDS: &[&str] = &["harga", "berapa", "brp", "piro", "pira", "pinten", "regane", "hargane"];
/// Words that ask whether something is sold: a question only when no amount is written.
const ASKING_WORDS: &[&str] = &["ready", "ono", "onok", "tersedia", "apakah"];

/// Greetings and small talk that hold a word of the catalogue ("salam"): dropped before reading.
const SMALL_TALK: &[&str] = &[
    "salam kenal",
    "salam sehat",
    "salam hangat",
    "selamat pagi",
    "selamat siang",
    "selamat sore",
    "selamat malam",
    "sugeng enjing",
    "sugeng siang",
    "sugeng sonten",
    "nyuwun sewu",
];

/// Words that continue a number ("dua belas", "tiga puluh"): an amount followed by one that was
/// not read with it is not understood rather than read short.
const NUMBER_TAILS: &[&str] = &["belas", "puluh", "ratus", "atus", "juta", "puluhan", "belasan"];

/// Words that say what the goods before them are for ("buat rawon"): the rest of the piece is a
/// remark, not an order.
const PURPOSE: &[&str] = &["buat", "untuk", "kanggo", "gawe", "for"];

/// Words that name a commodity and also count pieces of another.
const NAME_OR_COUNTER: &[&str] = &["tongkol"];

/// Chat abbreviations and colour words, expanded when the expansion completes a commodity's
/// name ("bwg merah", "cbe rawit", "dg sapi", "ayam kpg", "lombok ijo"); `true` when the word
/// alone is already that commodity's word ("tlr").
const ABBREVIATIONS: &[(&str, &str, bool)] = &[
    ("bwg", "bawang", true),
    ("bw", "bawang", false),
    ("bwng", "bawang", false),
    ("bwang", "bawang", false),
    ("cbe", "cabe", true),
    ("cb", "cabe", false),
    ("cbai", "cabai", false),
    ("cabe", "cabai", false),
    ("lombok", "cabai", false),
    ("dg", "daging", false),
    ("dgg", "daging", false),
    ("dging", "daging", false),
    ("dgng", "daging", false),
    ("kpg", "kampung", false),
    ("kmpg", "kampung", false),
    ("kampong", "kampung", false),
    ("tlr", "telur", true),
    ("tlor", "telur", true),
    ("telor", "telur", true),
    ("ijo", "hijau", false),
    ("ijau", "hijau", false),
    ("abang", "merah", false),
    ("mrh", "merah", false),
    ("pth", "putih", false),
    ("kcg", "kacang", false),
    ("kc", "kacang", false),
    ("tpg", "tepung", false),
    ("tp", "tepung", false),
    ("ikn", "ikan", false),
    ("iwak", "ikan", false),
    ("aym", "ayam", false),
    ("ayg", "ayam", false),
    ("mnyk", "minyak", true),
    ("myk", "minyak", false),
    ("grg", "goreng", false),
    ("gl", "gula", false),
    ("psr", "pasir", false),
    ("brs", "beras", true),
    ("sp", "sapi", false),
    ("kmbg", "kembang", false),
    ("dn", "daun", false),
    ("godong", "daun", false),
    ("ptk", "petik", false),
];

fn expansion(word: &str) -> Option<(&'static str, bool)> {
    ABBREVIATIONS.iter().find(|(a, _, _)| *a == word).map(|(_, full, alone)| (*full, *alone))
}

/// One item of an order, as read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadItem {
    /// The commodity's id.
    pub commodity: String,
    /// The quantity: exact, or for money and pieces an estimate (money at the office's
    /// reference price; the conversation estimates again at the stall's own price).
    #[serde(skip)]
    pub quantity: Quantity,
    /// How it was asked: a quantity, money or pieces.
    #[serde(skip)]
    pub amount: Amount,
    /// The amount as written (`sekilo`, `2 papan`); empty when none was written (one of the
    /// commodity's unit is assumed).
    pub written: String,
    /// The words that named it.
    pub named: String,
}

/// Something in the message that did not become an item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotUnderstood {
    pub text: String,
    /// Why, when a commodity was recognised but its amount was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    #[serde(skip)]
    pub error: Option<AmountError>,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ReadOrder {
    pub items: Vec<ReadItem>,
    pub not_understood: Vec<NotUnderstood>,
    /// A question about these commodities (their ids): prices and stalls, not an order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<Vec<String>>,
    /// The message was longer than [`MAX_CHARS`] and was read only that far.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
}

/// The catalogue's names prepared for reading: every name, English name, alias and market word,
/// normalized, with the commodities it means.
#[derive(Debug, Default)]
pub struct FreeTextIndex {
    terms: HashMap<String, Vec<usize>>,
    /// Names without their vowels ("tmp" for tempe), each with its term and commodity.
    skeletons: HashMap<String, Vec<(String, usize)>>,
    /// For typo matching: (term, commodity, characters, words).
    by_words: Vec<(String, usize, usize, usize)>,
    /// The first words of `by_words`' terms, indexed for typos, and where each starts a term.
    first_words: crate::domain::near::NearWords,
    by_first: HashMap<String, Vec<usize>>,
    longest: usize,
}

impl FreeTextIndex {
    pub fn new(commodities: &[Commodity]) -> FreeTextIndex {
        let mut terms: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, c) in commodities.iter().enumerate() {
            let names = [&c.name, &c.name_en, &c.id].into_iter().chain(&c.aliases).chain(&c.javanese);
            for name in names {
                let t = normalize(&name.replace('-', " "));
                if t.is_empty() {
                    continue;
                }
                let list = terms.entry(t).or_default();
                if !list.contains(&i) {
                    list.push(i);
                }
            }
        }
        let mut by_words = Vec::new();
        let mut longest = 1;
        for (t, list) in &terms {
            let words = t.split(' ').count();
            longest = longest.max(words);
            if let [only] = list.as_slice() {
                by_words.push((t.clone(), *only, t.chars().count(), words));
            }
        }
        by_words.sort();
        let mut skeletons: HashMap<String, Vec<(String, usize)>> = HashMap::new();
        for (t, list) in &terms {
            if let [only] = list.as_slice() {
                let key = t.split(' ').map(consonants).collect::<Vec<_>>().join(" ");
                skeletons.entry(key).or_default().push((t.clone(), *only));
            }
        }
        let mut by_first: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (t, ..)) in by_words.iter().enumerate() {
            by_first.entry(t.split(' ').next().unwrap_or_default().to_string()).or_default().push(i);
        }
        let first_words = crate::domain::near::NearWords::new(by_first.keys().map(String::as_str));
        FreeTextIndex { terms, skeletons, by_words, first_words, by_first, longest }
    }

    /// The commodities these words name exactly (several when a word means two), also with
    /// chat abbreviations written out ("bwg merah", "cbe rawit", "tlr").
    fn exact(&self, words: &[&str]) -> Option<&[usize]> {
        if let Some(found) = self.terms.get(&words.join(" ")) {
            return Some(found);
        }
        let mut changed = false;
        let expanded: Vec<&str> = words
            .iter()
            .map(|w| match expansion(w) {
                Some((full, alone)) if words.len() > 1 || alone => {
                    changed = true;
                    full
                }
                _ => w,
            })
            .collect();
        if !changed {
            return None;
        }
        self.terms.get(&expanded.join(" ")).map(Vec::as_slice)
    }

    /// The one commodity these words name with their vowels left out, as chat writes them
    /// ("tmpe", "byam", "kcap", "tmt"): each word keeps the first letter and every consonant of
    /// the name's word, in order; `None` when none or two commodities fit.
    fn skeleton(&self, words: &[&str]) -> Option<usize> {
        let short: Vec<String> = words.iter().map(|w| consonants(w)).collect();
        if words.iter().any(|w| w.chars().count() < 3 || !w.chars().all(|c| c.is_ascii_lowercase())) {
            return None;
        }
        let key = short.join(" ");
        let found = self.skeletons.get(&key)?;
        let fits: Vec<usize> = found
            .iter()
            .filter(|(term, _)| {
                let tw: Vec<&str> = term.split(' ').collect();
                // Each word is its name's word with letters left out (never the whole word:
                // that is an exact match, or another word).
                tw.len() == words.len()
                    && tw
                        .iter()
                        .zip(words)
                        .all(|(t, w)| w.len() < t.len() && subsequence(w, t) && t.chars().next() == w.chars().next())
            })
            .map(|(_, c)| *c)
            .collect();
        match fits.as_slice() {
            [first, rest @ ..] if rest.iter().all(|c| c == first) => Some(*first),
            _ => None,
        }
    }

    /// The one commodity these words name with a small typo (one letter in a word of five or
    /// more letters, two in a long name); `None` when none or two are that close.
    fn near(&self, words: &[&str]) -> Option<usize> {
        let q = words.join(" ");
        let len = q.chars().count();
        let allowed = match len {
            0..=4 => return None,
            5..=9 => 1,
            _ => 2,
        };
        let mut best: Option<(usize, usize)> = None;
        let mut tie = false;
        // Only names whose first word is near the first word can be near (the index, not a
        // scan), compared in the list's order so that ties fall as they always did.
        let mut candidates: Vec<usize> = self
            .first_words
            .within(words.first().copied().unwrap_or_default(), allowed)
            .into_iter()
            .flat_map(|(w, _)| self.by_first.get(w).into_iter().flatten().copied())
            .collect();
        candidates.sort_unstable();
        for (t, c, tlen, tw) in candidates.into_iter().filter_map(|i| self.by_words.get(i)) {
            if *tw != words.len() || tlen.abs_diff(len) > allowed {
                continue;
            }
            let d = strsim::damerau_levenshtein(&q, t);
            if d > allowed {
                continue;
            }
            match best {
                Some((bd, bc)) if d == bd && bc != *c => tie = true,
                Some((bd, _)) if d >= bd => {}
                _ => {
                    best = Some((d, *c));
                    tie = false;
                }
            }
        }
        best.filter(|_| !tie).map(|(_, c)| c)
    }
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// A word's first letter and its consonants: "tempe" and "tmpe" are both "tmp".
fn consonants(word: &str) -> String {
    word.chars().enumerate().filter(|(i, c)| *i == 0 || !is_vowel(*c)).map(|(_, c)| c).collect()
}

/// Whether `short`'s letters appear in `long` in order.
fn subsequence(short: &str, long: &str) -> bool {
    let mut rest = long.chars();
    short.chars().all(|c| rest.any(|l| l == c))
}

/// A word of a piece, as the reader sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Filler,
    Amount,
    Word,
}

fn kind(word: &str) -> Kind {
    if FILLER.contains(&word) {
        Kind::Filler
    } else if parse_number(word).is_some()
        || is_unit_word(word)
        || is_money_word(word)
        || word.strip_prefix('-').is_some_and(|n| parse_number(n).is_some())
    {
        Kind::Amount
    } else {
        Kind::Word
    }
}

/// Reads a message against the catalogue's commodities: an order, or a question.
pub fn read(index: &FreeTextIndex, commodities: &[Commodity], message: &str) -> ReadOrder {
    read_as(index, commodities, message, true)
}

/// Reads a message as an order only (`/pesan`): question words change nothing.
pub fn read_order_only(index: &FreeTextIndex, commodities: &[Commodity], message: &str) -> ReadOrder {
    read_as(index, commodities, message, false)
}

fn read_as(index: &FreeTextIndex, commodities: &[Commodity], message: &str, questions: bool) -> ReadOrder {
    let mut out = ReadOrder::default();
    let text: String = if message.chars().count() > MAX_CHARS {
        out.cut = true;
        message.chars().take(MAX_CHARS).collect()
    } else {
        message.to_string()
    };
    let mut lowered = text.to_lowercase();
    for phrase in SMALL_TALK {
        lowered = lowered.replace(phrase, " ");
    }
    let words: Vec<&str> = lowered.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    // A question mark asks as plainly as a price word.
    let asks_price = words.iter().any(|w| PRICE_WORDS.contains(w)) || lowered.trim_end().ends_with('?');
    let asks = lowered.contains('?')
        || words.iter().any(|w| ASKING_WORDS.contains(w))
        || words.first() == Some(&"ada")
        || words.windows(2).any(|p| matches!(p, ["apa" | "masih" | "enek" | "onok", "ada"]));
    let mut explicit = 0;
    let mut mentioned = Vec::new();
    for piece in pieces(&lowered) {
        read_piece(index, commodities, &piece, &mut out, &mut explicit, &mut mentioned);
        if out.items.len() > MAX_ITEMS {
            out.items.truncate(MAX_ITEMS);
            out.cut = true;
            break;
        }
    }
    // A question names commodities without ordering them: asking a price or ending with a
    // question mark ("brambang piro sekilo?") unless several amounts are listed; asking whether
    // it is sold ("ada daging sapi", "ready?" inside) unless an amount is written.
    if questions && ((asks_price && explicit < 2) || (asks && explicit == 0)) {
        let mut ids: Vec<String> = Vec::new();
        for i in mentioned {
            let id = commodities[i].id.clone();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        out.items.clear();
        out.not_understood.retain(|n| n.error.is_none());
        out.question = Some(ids);
    }
    out
}

/// Number words written in two ("dua belas", "tiga puluh lima", "seratus") as one number.
fn join_numbers(words: Vec<String>) -> Vec<String> {
    let small = |w: &str| match crate::domain::quantity::number_word(w) {
        Some(r) if r.den == 1 && r.num < 10 => Some(r.num),
        _ => w.parse::<u64>().ok().filter(|n| *n < 10),
    };
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let next = words.get(i + 1).map(String::as_str);
        let (value, used) = match (w, small(w), next) {
            ("sebelas", ..) => (Some(11), 1),
            ("seratus", ..) => (Some(100), 1),
            (_, Some(n), Some("belas")) => (Some(10 + n), 2),
            (_, Some(n), Some("ratus" | "atus")) => (Some(100 * n), 2),
            (_, Some(n), Some("puluh")) => match words.get(i + 2).and_then(|t| small(t)) {
                Some(m) if m > 0 => (Some(10 * n + m), 3),
                _ => (Some(10 * n), 2),
            },
            _ => (None, 1),
        };
        match value {
            Some(v) => out.push(v.to_string()),
            None => out.push(words[i].clone()),
        }
        i += used;
    }
    out
}

/// The message cut at its separators, each piece without its list marker.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.split(['\n', '\r', ';', '+', '&', '|', '?', '!']) {
        // "sayur asem bu: kacang panjang 3rb, ...": a heading before a colon, without an amount,
        // says what the list is for.
        // But "bawang merah: 1/2 kg" is a name and its amount.
        let joined;
        let line = match line.split_once(':') {
            Some((head, rest)) if !head.chars().any(|c| c.is_ascii_digit()) => {
                let amount_next = rest.split_whitespace().next().is_some_and(|w| {
                    w.starts_with(|c: char| c.is_ascii_digit())
                        || parse_number(w).is_some()
                        || tokens(w).first().is_some_and(|t| parse_number(t).is_some())
                });
                if amount_next {
                    joined = format!("{head} {rest}");
                    joined.as_str()
                } else {
                    rest
                }
            }
            _ => line,
        };
        // A comma between digits is a decimal mark ("1,5 kg"); any other separates items.
        let chars: Vec<char> = line.chars().collect();
        let mut current = String::new();
        for (i, ch) in chars.iter().enumerate() {
            let decimal = *ch == ','
                && i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit());
            if *ch == ',' && !decimal {
                out.push(std::mem::take(&mut current));
            } else {
                current.push(*ch);
            }
        }
        out.push(current);
    }
    let mut split = Vec::new();
    for piece in out {
        // "brambang sekilo dan tempe 2": the joining words separate too.
        let mut current: Vec<&str> = Vec::new();
        let words: Vec<&str> = piece.split_whitespace().collect();
        for (i, &word) in words.iter().enumerate() {
            // Krama "kalih" is "and", and "two" before a unit ("tempe kalih papan").
            if word == "kalih" && words.get(i + 1).is_some_and(|w| is_unit_word(w)) {
                current.push("2");
                continue;
            }
            if JOINERS.contains(&word) {
                split.push(current.join(" "));
                current.clear();
            } else {
                current.push(word);
            }
        }
        split.push(current.join(" "));
    }
    split.into_iter().map(|p| strip_marker(&p)).filter(|p| !p.trim().is_empty()).collect()
}

/// "1. bawang", "2) tempe", "- tahu", "• telur": the list marker goes.
fn strip_marker(piece: &str) -> String {
    let t = piece.trim_start();
    // A minus sign before a number is kept: "-2 kg" is refused, not read as 2 kg.
    let t = if t.starts_with('-') && t[1..].starts_with(|c: char| c.is_ascii_digit()) {
        t
    } else {
        t.trim_start_matches(['-', '•', '*', '·', '>', '–', '—', '○', '▪'])
    };
    let digits = t.chars().take_while(char::is_ascii_digit).count();
    if (1..=2).contains(&digits) {
        let rest = &t[digits..];
        if let Some(after) = rest.strip_prefix('.').or_else(|| rest.strip_prefix(')'))
            && after.starts_with(char::is_whitespace)
        {
            return after.trim().to_string();
        }
    }
    t.trim().to_string()
}

/// Keeps what can be part of a name or an amount: letters, digits, `/ , . ½`; the rest
/// (emoji, quotes, stars) becomes a space.
fn clean(piece: &str) -> String {
    let chars: Vec<char> = piece.chars().collect();
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            // A minus sign: before a digit and not inside a word ("-2 kg", not "onde-onde").
            let minus = c == '-'
                && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                && (i == 0 || !chars[i - 1].is_alphanumeric());
            if c.is_alphanumeric() || minus || matches!(c, '/' | ',' | '.' | '½' | '¼' | '¾') { c } else { ' ' }
        })
        .collect()
}

/// "ote2" is chat for "ote-ote": a word with a 2 stuck to it is doubled when the doubled word is a
/// name (else the 2 stays a number: "tempe2" is not read as two tempe).
fn reduplicated(index: &FreeTextIndex, text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        let base = word.strip_suffix('2').unwrap_or_default();
        if base.chars().count() >= 3 && base.chars().all(char::is_alphabetic) && index.exact(&[base, base]).is_some() {
            out.push(format!("{base} {base}"));
        } else {
            out.push(word.to_string());
        }
    }
    out.join(" ")
}

/// One mention of a commodity in a piece: its word positions and what it is.
/// Whether an amount follows position `at` (after any filler).
fn next_is_amount(kinds: &[Kind], at: usize) -> bool {
    kinds[at.min(kinds.len())..].iter().find(|k| **k != Kind::Filler) == Some(&Kind::Amount)
}

struct Mention {
    start: usize,
    end: usize,
    found: Result<usize, ()>,
    /// Found only with the typo allowance.
    typo: bool,
}

fn read_piece(
    index: &FreeTextIndex,
    commodities: &[Commodity],
    piece: &str,
    out: &mut ReadOrder,
    explicit: &mut usize,
    mentioned: &mut Vec<usize>,
) {
    let words = join_numbers(tokens(&reduplicated(index, &clean(piece))));
    let words: Vec<&str> = words
        .iter()
        .map(|w| {
            let w = w.trim_end_matches([',', '.']);
            // ".5" is a half.
            if w.starts_with('.') && w[1..].starts_with(|c: char| c.is_ascii_digit()) {
                w
            } else {
                w.trim_start_matches([',', '.'])
            }
        })
        .filter(|w| !w.is_empty())
        .collect();
    // "... buat rawon", "... kanggo warung bakso": what it is for, not more goods.
    // Only a tail without amounts: "untuk besok tempe 2 papan" is still an order.
    let words: Vec<&str> = match words.iter().position(|w| PURPOSE.contains(w)) {
        Some(p) if p > 0 && !words[p..].iter().any(|w| kind(w) == Kind::Amount) => words[..p].to_vec(),
        _ => words,
    };
    let mut kinds: Vec<Kind> = words.iter().map(|w| kind(w)).collect();
    // A word that is both a name and a counter ("tongkol": a tuna, or an ear of corn) counts
    // only right after a number ("jagung 2 tongkol").
    for i in 0..words.len() {
        if NAME_OR_COUNTER.contains(&words[i]) {
            kinds[i] = if i > 0 && kinds[i - 1] == Kind::Amount { Kind::Amount } else { Kind::Word };
        }
        // "2 pak" is two packs; "pak" alone is "sir".
        if kinds[i] == Kind::Filler && i > 0 && parse_number(words[i - 1]).is_some() && is_unit_word(words[i]) {
            kinds[i] = Kind::Amount;
        }
    }
    // Names, longest first (exact before a typo at each length). A name may hold a unit word
    // ("buah naga", "ayam potong", "tempe bungkus"), so spans run over amount words too, but
    // an amount word alone is never a name.
    let mut mentions: Vec<Mention> = Vec::new();
    let mut unknown: Vec<&str> = Vec::new();
    let mut named = vec![false; words.len()];
    let mut i = 0;
    while i < words.len() {
        if kinds[i] == Kind::Filler {
            i += 1;
            continue;
        }
        let run = (i..words.len()).take_while(|&j| kinds[j] != Kind::Filler).count();
        let mut matched = None;
        // A name may hold a word that is chatter elsewhere ("pisang mas", "ikan mas": "mas" is
        // also "brother"): exact names run over filler, typos never do.
        for n in (1..=(words.len() - i).min(index.longest)).rev() {
            let span = &words[i..i + n];
            if n == 1 && kinds[i] == Kind::Amount {
                break;
            }
            if n > run && index.exact(span).is_none() {
                continue;
            }
            if let Some(found) = index.exact(span) {
                matched = Some((n, if found.len() == 1 { Ok(found[0]) } else { Err(()) }, false));
                break;
            }
            let all_words = kinds[i..i + n].iter().all(|k| *k == Kind::Word);
            if all_words
                && n <= 3
                && let Some((c, shortened)) =
                    index.near(span).map(|c| (c, false)).or_else(|| index.skeleton(span).map(|c| (c, true)))
            {
                // A name written without its vowels ("tmpe") is taken only with an amount: a
                // short word alone ("Bu Sri") is too often a person or chatter.
                if shortened && !next_is_amount(&kinds, i + n) {
                    continue;
                }
                matched = Some((n, Ok(c), true));
                break;
            }
        }
        match matched {
            Some((n, found, typo)) => {
                named[i..i + n].iter_mut().for_each(|x| *x = true);
                mentions.push(Mention { start: i, end: i + n, found, typo });
                i += n;
            }
            None if kinds[i] == Kind::Word => {
                unknown.push(words[i]);
                i += 1;
            }
            None => i += 1,
        }
    }
    // Amounts: runs of number and unit words that are not part of a name.
    let amount = |j: usize| kinds[j] == Kind::Amount && !named[j];
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut j = 0;
    while j < words.len() {
        if amount(j) {
            let start = j;
            while j < words.len() && amount(j) {
                j += 1;
            }
            groups.push((start, j));
        } else {
            j += 1;
        }
    }
    // Amounts come before the names ("sekilo brambang") or after them ("brambang sekilo"), as
    // the piece starts.
    let first = kinds.iter().position(|k| *k != Kind::Filler);
    let amount_first = first.is_some_and(amount);
    let mut taken = vec![false; groups.len()];
    let mut chosen: Vec<Option<usize>> = Vec::with_capacity(mentions.len());
    for (m, mention) in mentions.iter().enumerate() {
        let prev_end = if m == 0 { 0 } else { mentions[m - 1].end };
        let next_start = mentions.get(m + 1).map_or(words.len(), |n| n.start);
        let before =
            groups.iter().enumerate().rev().find(|(g, (s, e))| !taken[*g] && *e <= mention.start && *s >= prev_end);
        let after = groups.iter().enumerate().find(|(g, (s, e))| !taken[*g] && *s >= mention.end && *e <= next_start);
        let pick = if amount_first { before.or(after) } else { after.or(before) }.map(|(g, _)| g);
        if let Some(g) = pick {
            taken[g] = true;
        }
        chosen.push(pick);
    }
    let chatter = !unknown.is_empty();
    for (mention, group) in mentions.iter().zip(chosen) {
        let named = words[mention.start..mention.end].join(" ");
        let Ok(c) = mention.found else {
            out.not_understood.push(NotUnderstood { text: named, problem: Some("ambiguous".into()), error: None });
            continue;
        };
        // One word that only looks like a name, with no amount, among other words ("bayar cod
        // ya" is not bayam): chatter, not an item.
        if mention.typo && mention.end - mention.start == 1 && group.is_none() && chatter {
            unknown.push(words[mention.start]);
            continue;
        }
        // An amount that goes on in words the reader did not take ("dua belas" written oddly):
        // not read short.
        if let Some(g) = group
            && words.get(groups[g].1).is_some_and(|w| NUMBER_TAILS.contains(w))
        {
            let written = words[groups[g].0..=groups[g].1].join(" ");
            out.not_understood.push(NotUnderstood {
                text: format!("{named} {written}"),
                problem: Some(QuantityError::NotANumber.to_string()),
                error: Some(QuantityError::NotANumber.into()),
            });
            continue;
        }
        mentioned.push(c);
        let commodity = &commodities[c];
        let written = group.map(|g| words[groups[g].0..groups[g].1].join(" ")).unwrap_or_default();
        if !written.is_empty() {
            *explicit += 1;
        }
        match amount_of(&written, commodity) {
            Ok(amount) => {
                let quantity = estimate(amount, commodity);
                out.items.push(ReadItem { commodity: commodity.id.clone(), quantity, amount, written, named })
            }
            Err(e) => out.not_understood.push(NotUnderstood {
                text: format!("{named} {written}").trim().to_string(),
                problem: Some(e.to_string()),
                error: Some(e),
            }),
        }
    }
    for (g, (s, e)) in groups.iter().enumerate() {
        if !taken[g] {
            unknown.push("");
            unknown.extend(&words[*s..*e]);
        }
    }
    let rest = unknown.join(" ");
    let rest = rest.split("  ").map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    if !rest.is_empty() {
        out.not_understood.push(NotUnderstood { text: rest, problem: None, error: None });
    }
}

/// The amount as written, for a commodity: none means one of its unit; money and pieces as
/// [`parse_amount`] reads them; a piece word counts pieces of whatever a piece commodity is
/// sold in ("tempe 2 bungkus").
fn amount_of(written: &str, commodity: &Commodity) -> Result<Amount, AmountError> {
    let unit = commodity.unit;
    if written.is_empty() {
        return Ok(Amount::Exact(Quantity::new(unit.base_per_unit(), unit)?));
    }
    match parse_amount(written, unit, commodity.piece) {
        Err(AmountError::Quantity(QuantityError::WrongUnit { .. })) if matches!(unit, SaleUnit::Piece(_)) => {
            let counted: Vec<&str> = written.split_whitespace().filter(|w| !is_piece_word(w)).collect();
            if counted.len() < written.split_whitespace().count() {
                Ok(Amount::Exact(parse_quantity(&counted.join(" "), unit)?))
            } else {
                parse_amount(written, unit, commodity.piece)
            }
        }
        other => other,
    }
}

/// The quantity an amount comes to before a stall is chosen: money at the reference price.
fn estimate(amount: Amount, commodity: &Commodity) -> Quantity {
    let unit = commodity.unit;
    amount
        .quantity(unit, commodity.step, commodity.reference_price)
        .unwrap_or_else(|_| Quantity::amount(unit.min_base(), unit))
}

/// The base unit a quantity of this sale unit is counted in.
pub fn base_unit(unit: SaleUnit) -> &'static str {
    match unit {
        SaleUnit::Kilogram => "g",
        SaleUnit::Liter => "ml",
        SaleUnit::Piece(_) => "pcs",
    }
}

/// What `pasar parse` prints for a message: the reading, with each item's name, quantity in
/// its base unit, and the market's cheapest open stall and its price.
pub fn to_json(catalog: &crate::domain::catalog::Catalog, market: &str, message: &str) -> serde_json::Value {
    let read = catalog.read_order(message);
    let items: Vec<serde_json::Value> = read
        .items
        .iter()
        .map(|item| {
            let commodity = catalog.commodity(&item.commodity);
            let offer = catalog.offers_for(market, &item.commodity).first().copied();
            let stall = offer.and_then(|o| catalog.stall(o.stall_id));
            // Money buys what the chosen (cheapest) stall's price gives; else the estimate.
            let quantity = match (commodity, offer) {
                (Some(c), Some(o)) => item.amount.quantity(c.unit, c.step, o.price).unwrap_or(item.quantity),
                _ => item.quantity,
            };
            let mut json = serde_json::json!({
                "commodity": item.commodity,
                "name": commodity.map(|c| c.name.as_str()),
                "quantity": quantity.base(),
                "unit": base_unit(quantity.unit()),
                "written": item.written,
                "named": item.named,
                "stall": stall.map(|s| s.number.as_str()),
                "price": offer.map(|o| o.price.value()),
            });
            match item.amount {
                Amount::Exact(_) => {}
                Amount::Money(r) => {
                    json["rupiah"] = serde_json::json!(r.value());
                    json["estimated"] = serde_json::json!(true);
                }
                Amount::Pieces { count, size } => {
                    json["pieces"] = serde_json::json!(count);
                    json["piece"] = serde_json::json!(size.unit.name());
                    json["estimated"] = serde_json::json!(true);
                }
            }
            json
        })
        .collect();
    let mut json = serde_json::json!({
        "text": message,
        "items": items,
        "not_understood": read.not_understood,
    });
    if let Some(q) = &read.question {
        json["question"] = serde_json::json!(q);
    }
    if read.cut {
        json["cut"] = serde_json::json!(true);
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::SeedData;

    /// The seed catalogue's reader, built once for all the tests (the proptest reads hundreds
    /// of messages).
    fn reader() -> (&'static FreeTextIndex, &'static [Commodity]) {
        static READER: std::sync::OnceLock<(FreeTextIndex, Vec<Commodity>)> = std::sync::OnceLock::new();
        let (index, commodities) = READER.get_or_init(|| {
            let commodities = SeedData::builtin().expect("seed").commodities;
            (FreeTextIndex::new(&commodities), commodities)
        });
        (index, commodities)
    }

    fn items(message: &str) -> Vec<(String, u64)> {
        let (index, commodities) = reader();
        read(index, commodities, message).items.into_iter().map(|i| (i.commodity, i.quantity.base())).collect()
    }

    fn item(id: &str, base: u64) -> (String, u64) {
        (id.to_string(), base)
    }

    #[test]
    fn pieces_split_at_separators_but_not_at_a_decimal_comma() {
        assert_eq!(
            pieces("brambang 1,5 kg, tempe 2\n- tahu 5 dan kangkung + bayam"),
            vec!["brambang 1,5 kg", "tempe 2", "tahu 5", "kangkung", "bayam"]
        );
        assert_eq!(strip_marker("1. bawang merah"), "bawang merah");
        assert_eq!(strip_marker("12) tempe 2"), "tempe 2");
        assert_eq!(strip_marker("1.5 kg"), "1.5 kg", "a decimal is not a list number");
        assert_eq!(strip_marker("• telur"), "telur");
    }

    #[test]
    fn amounts_before_or_after_the_names_as_the_piece_starts() {
        assert_eq!(
            items("brambang sekilo lombok seprapat tempe 2 papan"),
            vec![item("bawang-merah", 1000), item("cabai-rawit", 250), item("tempe", 2)]
        );
        assert_eq!(
            items("sekilo brambang setengah kilo lombok"),
            vec![item("bawang-merah", 1000), item("cabai-rawit", 500)]
        );
        assert_eq!(items("gula sekilo setengah"), vec![item("gula-pasir", 1500)]);
        assert_eq!(items("2 ons merica"), vec![item("merica", 200)]);
        assert_eq!(items("selusin telur bebek"), vec![item("telur-bebek", 12)]);
        assert_eq!(items("minyak setengah liter"), vec![item("minyak-goreng", 500)]);
    }

    #[test]
    fn no_amount_means_one_of_the_unit_and_piece_words_count_pieces() {
        assert_eq!(items("tempe, bawang putih"), vec![item("tempe", 1), item("bawang-putih", 1000)]);
        assert_eq!(items("terasi 2 bungkus, tempe 3 bungkus"), vec![item("terasi", 2), item("tempe", 3)]);
    }

    #[test]
    fn names_may_hold_unit_words_and_typos_of_longer_names_win() {
        assert_eq!(items("buah naga 1 kg"), vec![item("buah-naga", 1000)]);
        assert_eq!(items("ayam potong 3 kg"), vec![item("ayam-potong", 3000)]);
        assert_eq!(items("tempe bungkus 10"), vec![item("tempe-daun", 10)]);
        assert_eq!(items("telur bebekk 5"), vec![item("telur-bebek", 5)]);
        assert_eq!(items("bawng merah 1/2kg"), vec![item("bawang-merah", 500)]);
    }

    #[test]
    fn refused_amounts_and_ambiguous_names_are_not_understood_with_the_reason() {
        let (index, commodities) = reader();
        let r = read(index, commodities, "ayam 2 kwintal, tempe 1 kg, jeruk manis sekilo");
        assert!(r.items.is_empty(), "{r:?}");
        let errors: Vec<_> = r.not_understood.iter().filter_map(|n| n.error.clone()).collect();
        assert!(matches!(errors[0], AmountError::Quantity(QuantityError::TooLarge { .. })), "{errors:?}");
        assert!(matches!(errors[1], AmountError::Quantity(QuantityError::WrongUnit { .. })), "{errors:?}");
        assert!(r.not_understood.iter().any(|n| n.text == "jeruk manis" && n.problem.as_deref() == Some("ambiguous")));
    }

    fn asked(message: &str) -> Vec<(String, String)> {
        let (index, commodities) = reader();
        read(index, commodities, message)
            .items
            .into_iter()
            .map(|i| {
                let v = match i.amount {
                    Amount::Exact(q) => q.base().to_string(),
                    Amount::Money(r) => format!("Rp{}", r.value()),
                    Amount::Pieces { count, .. } => format!("{count}pc"),
                };
                (i.commodity, v)
            })
            .collect()
    }

    fn said(id: &str, v: &str) -> (String, String) {
        (id.to_string(), v.to_string())
    }

    #[test]
    fn money_is_never_kilos_and_bare_numbers_read_by_their_size() {
        assert_eq!(
            asked("brambang 5rb, lombok 3rb"),
            vec![said("bawang-merah", "Rp5000"), said("cabai-rawit", "Rp3000")]
        );
        assert_eq!(asked("brambang 500"), vec![said("bawang-merah", "500")]);
        assert_eq!(asked("brambang 2"), vec![said("bawang-merah", "2000")]);
        assert_eq!(asked("brambang 5000"), vec![said("bawang-merah", "Rp5000")]);
        assert_eq!(asked("brambang .5 kg"), vec![said("bawang-merah", "500")]);
        assert_eq!(asked("Rp 10.000 daging sapi"), vec![said("daging-sapi", "Rp10000")]);
        assert_eq!(asked("lombok limang ewu"), vec![said("cabai-rawit", "Rp5000")]);
        let (index, commodities) = reader();
        let r = read(index, commodities, "brambang -2 kg, tempe 0");
        assert!(r.items.is_empty() && r.not_understood.len() == 2, "{r:?}");
    }

    #[test]
    fn pieces_javanese_numbers_abbreviations_and_colours() {
        assert_eq!(
            asked("ayam 1 ekor, telur 10 butir"),
            vec![said("ayam-potong", "1pc"), said("telur-ayam-ras", "10pc")]
        );
        assert_eq!(asked("jagung 2 tongkol"), vec![said("jagung-manis", "2pc")]);
        assert_eq!(asked("tongkol 1 kg"), vec![said("ikan-tongkol", "1000")]);
        assert_eq!(
            asked("brambang rong ons, lombok sak ons"),
            vec![said("bawang-merah", "200"), said("cabai-rawit", "100")]
        );
        assert_eq!(
            asked("gula sekilo setengah, beras limang kilo"),
            vec![said("gula-pasir", "1500"), said("beras-medium", "5000")]
        );
        assert_eq!(asked("ayam sekilo kalih tempe kalih papan"), vec![said("ayam-potong", "1000"), said("tempe", "2")]);
        assert_eq!(
            asked("bwg merah 1/4, cbe rawit 1 ons, tlr 1 kg"),
            vec![said("bawang-merah", "250"), said("cabai-rawit", "100"), said("telur-ayam-ras", "1000")]
        );
        assert_eq!(
            asked("lombok ijo 1 ons, lombok abang 1 ons"),
            vec![said("cabai-hijau", "100"), said("cabai-merah-besar", "100")]
        );
        assert_eq!(asked("tmpe 2, byam 1"), vec![said("tempe", "2"), said("bayam", "1")]);
        assert!(asked("Bu Sri").is_empty(), "a vowel-less name needs an amount");
        assert!(asked("batal aja bu").is_empty());
        assert_eq!(asked("wortel 1 kg buat warung bakso"), vec![said("wortel", "1000")]);
        assert_eq!(asked("sayur asem bu: kacang panjang 3rb"), vec![said("kacang-panjang", "Rp3000")]);
        assert_eq!(
            asked("bawang merah: 1/2 kg\ntempe: 2 papan"),
            vec![said("bawang-merah", "500"), said("tempe", "2")]
        );
        assert_eq!(asked("saya pesan untuk besok tempe 2 papan"), vec![said("tempe", "2")]);
        assert_eq!(asked("brambang sekilo pak, tempe 2 pak"), vec![said("bawang-merah", "1000"), said("tempe", "2")]);
        assert_eq!(asked("kl bisa tempe 2 papan"), vec![said("tempe", "2")]);
    }

    #[test]
    fn questions_are_told_apart_from_orders() {
        let (index, commodities) = reader();
        let ask = |m: &str| read(index, commodities, m);
        assert_eq!(ask("harga cabe berapa?").question, Some(vec!["cabai-rawit".to_string()]));
        assert_eq!(ask("ada daging sapi").question, Some(vec!["daging-sapi".to_string()]));
        assert_eq!(ask("brambang piro sekilo?").question, Some(vec!["bawang-merah".to_string()]));
        let order = ask("brambang sekilo, tempe 2, kirim jam berapa?");
        assert_eq!(order.question, None, "a list of amounts with a question at its end is an order");
        assert_eq!(order.items.len(), 2);
    }

    #[test]
    fn negations_and_words_containing_ada_do_not_make_a_question() {
        let (index, commodities) = reader();
        for order in ["brambang sekilo, nggak pakai plastik", "kelapa ada 2 butir", "ada pesanan bu: tempe 2 papan"] {
            let r = read(index, commodities, order);
            assert_eq!(r.question, None, "{order}");
            assert!(!r.items.is_empty(), "{order}");
        }
        let r = read_order_only(index, commodities, "brambang sekilo?");
        assert_eq!((r.question, r.items.len()), (None, 1), "/pesan never answers a question");
    }

    #[test]
    fn numbers_in_two_words_are_read_whole_or_not_at_all() {
        assert_eq!(items("tempe dua puluh"), vec![item("tempe", 20)]);
        assert_eq!(items("sebelas tahu"), vec![item("tahu-putih", 11)]);
        assert_eq!(items("telur bebek dua belas butir"), vec![item("telur-bebek", 12)]);
        assert_eq!(items("tahu tiga puluh lima"), vec![item("tahu-putih", 35)]);
        let (index, commodities) = reader();
        let r = read(index, commodities, "tempe 2 puluhan");
        assert!(r.items.is_empty() && r.not_understood[0].error.is_some(), "not read short: {r:?}");
    }

    #[test]
    fn chatter_is_not_read_as_items() {
        assert_eq!(items("tempe 2, bayar cod ya"), vec![item("tempe", 2)]);
        assert_eq!(items("tempe 2, salam kenal bu"), vec![item("tempe", 2)]);
        assert_eq!(items("selamat pagi bu, bayam 2"), vec![item("bayam", 2)]);
        assert_eq!(items("bayem"), vec![item("bayam", 1)], "a market word alone is still an item");
    }

    use proptest::prelude::*;

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Any text at all, market words and amounts mixed with anything: no panic, a bounded
        /// reading, and every item within its commodity's limits.
        #[test]
        fn any_text_reads_without_panic_and_within_limits(
            words in proptest::collection::vec(
                prop_oneof![
                    proptest::sample::select(vec![
                        "brambang", "tempe", "sekilo", "setengah", "1/2", "2", "1,5", "kg", "ons", "biji",
                        "dan", ",", "\n", "-", "1.", "?", "ada", "harga", "buah", "naga", "lusin", "kwintal",
                        "dua", "belas", "puluh", "se", "½", "telur", "bebekk", "x",
                    ]).prop_map(String::from),
                    "\\PC{0,12}".prop_map(|s: String| s),
                ],
                0..40,
            )
        ) {
            let (index, commodities) = reader();
            let message = words.join(" ");
            let r = read(index, commodities, &message);
            prop_assert!(r.items.len() <= MAX_ITEMS);
            for item in &r.items {
                let c = commodities.iter().find(|c| c.id == item.commodity).expect("a commodity");
                prop_assert!(Quantity::new(item.quantity.base(), c.unit).is_ok());
            }
        }
    }

    #[test]
    fn junk_and_huge_messages_are_bounded() {
        let (index, commodities) = reader();
        for junk in ["🥬🥬🥬", "123 456", "'; DROP TABLE orders; --", "", "   "] {
            assert!(read(index, commodities, junk).items.is_empty(), "{junk}");
        }
        let huge = "tempe 1, ".repeat(5000);
        let r = read(index, commodities, &huge);
        assert!(r.cut && r.items.len() == MAX_ITEMS, "{}", r.items.len());
        // Any text at all: no panic, whatever the characters.
        for odd in ["1.", "1)", "½½½", "se", "sesese", "x2 x3", "٣ كيلو", "ｔｅｍｐｅ　２"] {
            let _ = read(index, commodities, odd);
        }
    }
}
