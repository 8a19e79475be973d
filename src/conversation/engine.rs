//! The engine: inbox event -> step -> one transaction.
//!
//! For each pending inbox row, in order, the engine loads the user's conversation state, runs the
//! role's step, and writes the next state, the domain changes, the outgoing messages and the inbox
//! row's `done` mark in one `BEGIN IMMEDIATE` transaction. A failing or panicking step is rolled
//! back; after [`MAX_ATTEMPTS`] the event is parked as `failed` and the user gets an apology, so
//! one bad event never stops a bot.

use super::buyer::{self, BuyerState};
use super::{Role, Turn};
use crate::channel::{Envelope, Outbound};
use crate::domain::catalog::Catalog;
use crate::store::{ShopperTx, Store, StoreError, StoreResult};
use crate::text::{Key, Lang, Texts};
use chrono::{DateTime, Duration, Utc};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

/// Tries per inbox event before it is parked as failed.
pub const MAX_ATTEMPTS: i64 = 3;

/// Most inbox events handled in one transaction.
pub const MAX_BATCH: usize = 32;

/// A batch commits once its events have taken this long, so that group commit never makes one
/// shopper wait long for another's work.
pub const BATCH_BUDGET: std::time::Duration = std::time::Duration::from_micros(400);

/// Where time comes from. Tests and transcripts use a [`FixedClock`].
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn new(at: DateTime<Utc>) -> FixedClock {
        FixedClock(Mutex::new(at))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why one event could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Repo(#[from] super::RepoError),
    #[error("the step panicked")]
    Panic,
}

/// Runs conversations over a store.
pub struct Engine {
    store: Store,
    catalog: Arc<Catalog>,
    texts: Arc<Texts>,
    clock: Arc<dyn Clock>,
    default_lang: Lang,
}

impl Engine {
    pub fn new(
        store: Store,
        texts: Arc<Texts>,
        clock: Arc<dyn Clock>,
        default_lang: Lang,
    ) -> StoreResult<Engine> {
        let catalog = Arc::new(store.load_catalog()?);
        Ok(Engine {
            store,
            catalog,
            texts,
            clock,
            default_lang,
        })
    }

    pub fn store(&mut self) -> &mut Store {
        &mut self.store
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn texts(&self) -> &Texts {
        &self.texts
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The language of users who have not chosen one.
    pub fn default_lang(&self) -> Lang {
        self.default_lang
    }

    /// Processes every pending inbox row in order; returns how many were handled.
    pub fn process_pending(&mut self) -> StoreResult<usize> {
        let mut handled = 0;
        loop {
            let n = self.process_batch(MAX_BATCH)?;
            if n == 0 {
                return Ok(handled);
            }
            handled += n;
        }
    }

    /// Handles up to `max` pending inbox rows, oldest first, in one transaction (group commit:
    /// one WAL commit for many events). Each event runs inside its own savepoint, so a failing or
    /// panicking step is rolled back alone; nothing is delivered before the commit, so a crash
    /// loses no reply anyone has seen. Returns how many rows were taken up (handled, retried or
    /// parked).
    pub fn process_batch(&mut self, max: usize) -> StoreResult<usize> {
        let now = self.clock.now();
        let catalog = Arc::clone(&self.catalog);
        let texts = Arc::clone(&self.texts);
        let default_lang = self.default_lang;
        self.store.write(|tx| {
            let pending = crate::store::pending_in(tx, max)?;
            // A user whose event must be retried keeps their later events for the next batch, so
            // each user's messages are handled in the order they were sent.
            let mut deferred: Vec<&crate::channel::UserKey> = Vec::new();
            let mut taken = 0;
            let started = std::time::Instant::now();
            for p in &pending {
                if taken > 0 && started.elapsed() >= BATCH_BUDGET {
                    break;
                }
                let ev = match &p.event {
                    Ok(ev) => ev,
                    Err(reason) => {
                        tracing::error!(inbox_id = p.id, %reason, "inbox row does not decode; parked as failed");
                        crate::store::mark_failed(tx, p.id, now)?;
                        taken += 1;
                        continue;
                    }
                };
                if deferred.contains(&&ev.user) {
                    continue;
                }
                taken += 1;
                crate::store::savepoint(tx)?;
                match step_event(tx, p.id, ev, now, &catalog, &texts, default_lang) {
                    Ok(()) => crate::store::release_savepoint(tx)?,
                    Err(e) => {
                        crate::store::rollback_savepoint(tx)?;
                        tracing::error!(inbox_id = p.id, source = %ev.source_id, error = %e, "event failed");
                        if p.attempts + 1 < MAX_ATTEMPTS {
                            crate::store::record_attempt(tx, p.id)?;
                            deferred.push(&ev.user);
                        } else {
                            // Give up on this event: tell the user, keep the bot going.
                            let lang = crate::store::user_lang(tx, &ev.user)?.unwrap_or(default_lang);
                            let apology = texts.get(&ev.market, lang, Key::InternalError).to_string();
                            let envelope = Envelope {
                                market: ev.market.clone(),
                                to: ev.user.clone(),
                                message: Outbound::text(apology),
                            };
                            crate::store::mark_failed(tx, p.id, now)?;
                            crate::store::enqueue(tx, &envelope, Some(p.id), now)?;
                        }
                    }
                }
            }
            Ok(taken)
        })
    }
}

/// One event's step inside the open transaction: load state, step, save state, queue replies,
/// mark the inbox row done.
fn step_event(
    tx: &rusqlite::Transaction<'_>,
    inbox_id: i64,
    ev: &crate::channel::InboundEvent,
    now: DateTime<Utc>,
    catalog: &Catalog,
    texts: &Texts,
    default_lang: Lang,
) -> Result<(), StepError> {
    let Some(market) = catalog.market(&ev.market) else {
        tracing::warn!(market = %ev.market, "event for an unknown market dropped");
        crate::store::mark_done(tx, inbox_id, now)?;
        return Ok(());
    };
    let lang = crate::store::user_lang(tx, &ev.user)?.unwrap_or(default_lang);
    let mut turn = Turn {
        now,
        market,
        catalog,
        texts,
        user: &ev.user,
        lang,
        out: Vec::new(),
    };
    let stored = crate::store::load_state(tx, &market.slug, &ev.user, Role::Buyer)?;
    let state = match stored {
        None => BuyerState::default(),
        Some(json) => match serde_json::from_str::<BuyerState>(&json) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(user = %ev.user, error = %e, "stored state no longer decodes; reset");
                turn.say(Key::StateReset);
                BuyerState::default()
            }
        },
    };
    let mut repo = ShopperTx {
        tx,
        market: &market.slug,
        user: &ev.user,
        now,
    };
    let stepped = std::panic::catch_unwind(AssertUnwindSafe(|| {
        buyer::step(state, &ev.inbound, &mut repo, &mut turn)
    }));
    let next = match stepped {
        Ok(result) => result?,
        Err(_) => return Err(StepError::Panic),
    };
    let json = serde_json::to_string(&next).map_err(StoreError::from)?;
    crate::store::save_state(tx, &market.slug, &ev.user, Role::Buyer, &json, now)?;
    for envelope in &turn.out {
        crate::store::enqueue(tx, envelope, Some(inbox_id), now)?;
    }
    crate::store::mark_done(tx, inbox_id, now)?;
    Ok(())
}
