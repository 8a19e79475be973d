//! Wiring: opening the store (migrating and seeding it on first use), loading dialogues, and
//! building the engine. Later: pollers, webhook server, senders, timers and shutdown.

use crate::config::Config;
use crate::conversation::engine::{Clock, Engine};
use crate::domain::catalog::SeedData;
use crate::store::Store;
use crate::text::Texts;
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;

/// Opens the database at `db` (seeding an empty one from the config's data folder) and returns an
/// engine over it.
pub fn open_engine(config: &Config, db: &Path, clock: Arc<dyn Clock>) -> anyhow::Result<Engine> {
    let mut store =
        Store::open(db).with_context(|| format!("opening database {}", db.display()))?;
    if !store.is_seeded()? {
        // The data folder if there is one (operators edit it); else the copy in the binary.
        let seed = if config.data_dir.exists() {
            SeedData::load(&config.data_dir).context("loading seed data")?
        } else {
            SeedData::builtin().context("loading the built-in seed data")?
        };
        store.seed(&seed).context("seeding the database")?;
        tracing::info!(db = %db.display(), markets = seed.markets.len(), "new database seeded");
    }
    let texts = Texts::load(&config.dialogues_dir).context("loading dialogues")?;
    Ok(Engine::new(
        store,
        Arc::new(texts),
        clock,
        config.default_language,
        config.policy.clone(),
    )?)
}
