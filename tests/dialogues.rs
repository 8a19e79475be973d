//! The dialogue catalogs: both languages have exactly the keys the code knows, with the same
//! placeholders; every key is used by the code; market overrides only use known keys.

use pasar_online::text::{Key, Lang, Texts};
use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn catalog(lang: &str) -> toml::Table {
    let text = std::fs::read_to_string(root().join(format!("dialogues/{lang}.toml"))).expect("catalog file");
    toml::from_str(&text).expect("catalog parses")
}

fn placeholders(s: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\{([a-z_]+)\}").expect("regex");
    re.captures_iter(s).map(|c| c[1].to_string()).collect()
}

#[test]
fn both_languages_have_exactly_the_known_keys() {
    let known: BTreeSet<&str> = Key::ALL.iter().map(|k| k.name()).collect();
    for lang in ["id", "en"] {
        let cat = catalog(lang);
        let keys: BTreeSet<&str> = cat.keys().map(String::as_str).collect();
        let missing: Vec<_> = known.difference(&keys).collect();
        let unknown: Vec<_> = keys.difference(&known).collect();
        assert!(missing.is_empty(), "{lang}.toml lacks {missing:?}");
        assert!(unknown.is_empty(), "{lang}.toml has keys the code does not know: {unknown:?}");
        for (k, v) in &cat {
            assert!(v.as_str().is_some_and(|s| !s.trim().is_empty()), "{lang}.{k} is empty or not a string");
        }
    }
}

#[test]
fn placeholders_agree_between_languages() {
    let id = catalog("id");
    let en = catalog("en");
    for key in Key::ALL {
        let a = placeholders(id[key.name()].as_str().unwrap_or_default());
        let b = placeholders(en[key.name()].as_str().unwrap_or_default());
        assert_eq!(a, b, "placeholders of `{}` differ between id and en", key.name());
    }
}

#[test]
fn every_key_is_used_by_the_code() {
    let mut code = String::new();
    let mut stack = vec![root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("text.rs") {
                code.push_str(&std::fs::read_to_string(&path).expect("source"));
            }
        }
    }
    let unused: Vec<&str> = Key::ALL
        .iter()
        .filter(|k| {
            let used = format!("Key::{}", k.variant());
            // A match on the variant followed by a non-identifier character.
            !code
                .match_indices(&used)
                .any(|(i, _)| code[i + used.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric() && c != '_'))
        })
        .map(|k| k.name())
        .collect();
    assert!(unused.is_empty(), "catalog keys no code uses: {unused:?}");
}

#[test]
fn market_overrides_load_and_win() {
    let texts = Texts::load(&root().join("dialogues")).expect("dialogues load");
    let blimbing = texts.get("blimbing", Lang::Id, Key::Welcome);
    let dinoyo = texts.get("dinoyo", Lang::Id, Key::Welcome);
    assert!(blimbing.contains("Pasar Blimbing"), "Blimbing greets with its own words");
    assert_ne!(blimbing, dinoyo, "other markets keep the base greeting");
    // A market override only replaces what it names.
    assert_eq!(texts.get("blimbing", Lang::Id, Key::Help), texts.get("dinoyo", Lang::Id, Key::Help));
    // Every override file uses only known keys (Texts::load refuses others).
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("markets")).expect("mkdir");
    std::fs::write(dir.path().join("markets/blimbing.id.toml"), "no_such_key = \"x\"\n").expect("write");
    let err = Texts::load(dir.path()).expect_err("unknown key refused");
    assert!(err.to_string().contains("no_such_key"), "{err}");
}
