//! Configuration: an optional `config.toml` plus the environment (`.env` read with dotenvy).
//! Everything has a default, so `pasar chat` runs with no config file and no tokens.
//! See `config.example.toml` for every setting.

use crate::text::Lang;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    general: RawGeneral,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGeneral {
    default_language: Option<String>,
    data_dir: Option<PathBuf>,
    dialogues_dir: Option<PathBuf>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// SQLite file; created, migrated and seeded on first use.
    pub database_path: PathBuf,
    /// Language for users who have not chosen one.
    pub default_language: Lang,
    /// Seed data folder (`markets.toml`, `commodities.csv`, `stalls.csv`).
    pub data_dir: PathBuf,
    /// Dialogue folder; its `markets/` holds per-market overrides.
    pub dialogues_dir: PathBuf,
}

/// A folder given relative to the working directory, or else the one shipped in the source tree,
/// so `cargo run` works from anywhere in the checkout.
fn shipped(dir: &Path) -> PathBuf {
    if dir.is_absolute() || dir.exists() {
        return dir.to_path_buf();
    }
    let in_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    if in_tree.exists() {
        in_tree
    } else {
        dir.to_path_buf()
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            database_path: PathBuf::from("pasar.db"),
            default_language: Lang::Id,
            data_dir: shipped(Path::new("data")),
            dialogues_dir: shipped(Path::new("dialogues")),
        }
    }
}

impl Config {
    /// Reads `path` if given; no path means all defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let defaults = Config::default();
        let default_language = match raw.general.default_language {
            None => defaults.default_language,
            Some(code) => Lang::from_code(&code).ok_or_else(|| {
                invalid(format!("default_language `{code}` must be `id` or `en`"))
            })?,
        };
        Ok(Config {
            database_path: raw.database.path.unwrap_or(defaults.database_path),
            default_language,
            data_dir: raw
                .general
                .data_dir
                .map(|d| shipped(&d))
                .unwrap_or(defaults.data_dir),
            dialogues_dir: raw
                .general
                .dialogues_dir
                .map(|d| shipped(&d))
                .unwrap_or(defaults.dialogues_dir),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_a_file() {
        let c = Config::load(None).expect("defaults");
        assert_eq!(c.database_path, PathBuf::from("pasar.db"));
        assert_eq!(c.default_language, Lang::Id);
        assert!(c.data_dir.join("markets.toml").exists());
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let c = Config::load(Some(&path)).expect("example config loads");
        assert_eq!(c.database_path, PathBuf::from("pasar.db"));
    }

    #[test]
    fn refuses_unknown_settings_and_languages() {
        let p = Path::new("x.toml");
        assert!(Config::parse("[general]\ndefault_language = \"fr\"\n", p).is_err());
        assert!(Config::parse("[database]\npth = \"x\"\n", p).is_err());
        let c = Config::parse(
            "[general]\ndefault_language = \"en\"\n[database]\npath = \"/tmp/x.db\"\n",
            p,
        )
        .expect("ok");
        assert_eq!(c.default_language, Lang::En);
        assert_eq!(c.database_path, PathBuf::from("/tmp/x.db"));
    }
}
