//! The engine: inbox event -> step -> one transaction.
//!
//! For each pending inbox row, in order, the engine loads the user's conversation state, runs the
//! role's step, and writes the next state, the domain changes, the outgoing messages and the inbox
//! row's `done` mark in one `BEGIN IMMEDIATE` transaction. A failing or panicking step is rolled
//! back; after [`MAX_ATTEMPTS`] the event is parked as `failed` and the user gets an apology, so
//! one bad event never stops a bot.

use super::buyer::{self, BuyerState};
use super::courier::{self, CourierState};
use super::lifecycle::{self, SYSTEM_ACTOR};
use super::trader::{self, TraderState};
use super::{Busy, MarketRepo, Role, Roles, Route, Turn, admin};
use crate::channel::UserKey;
use crate::channel::{Envelope, Outbound};
use crate::config::Policy;
use crate::domain::catalog::Catalog;
use crate::domain::slot::local;
use crate::store::{BackupRequest, Store, StoreError, StoreResult};
use crate::store::{RepoTx, Tx};
use crate::text::{Key, Lang, Texts};
use chrono::NaiveDate;
use chrono::{DateTime, Duration, Utc};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

/// Tries per inbox event before it is parked as failed.
pub const MAX_ATTEMPTS: i64 = 3;

/// Most inbox events handled in one transaction.
pub const MAX_BATCH: usize = 64;

/// A batch commits once its events have taken this long, so that group commit never makes one
/// shopper wait long for another's work.
pub const BATCH_BUDGET: std::time::Duration = std::time::Duration::from_micros(3000);

/// What a batch did: the inbox rows it took up, whether more are waiting (it stopped at its
/// size, its time budget or a catalogue change, or left a user's later events for the next),
/// and what the writes before it returned.
pub struct Batch<T> {
    pub taken: usize,
    pub more: bool,
    pub before: T,
}

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
    /// The catalogue version and local date the in-memory catalogue was loaded for.
    catalog_loaded: (i64, NaiveDate),
    texts: Arc<Texts>,
    clock: Arc<dyn Clock>,
    default_lang: Lang,
    policy: Arc<Policy>,
    secret: String,
    /// Where `/cadangan` writes backups (`None`: backups are refused with a reason).
    backup_dir: Option<std::path::PathBuf>,
    /// Make backups on threads of their own (`pasar run`), not in the pass that finds them.
    backups_in_background: bool,
    /// Backups being made on their own threads: each request, its file, and its outcome when
    /// done (the size, or why it failed).
    backups_running: Vec<RunningBackup>,
    /// Told of each update's step and how long it took (`pasar run`'s metrics).
    step_observer: Option<StepObserver>,
    /// Who sent how many messages lately (the flood rule).
    flood: super::flood::FloodGuard,
}

/// A backup being made on its own thread: the request, the file, and the copy's outcome (its
/// size, or why it failed) once done.
type RunningBackup = (BackupRequest, std::path::PathBuf, std::sync::mpsc::Receiver<Result<u64, String>>);

/// Called after each update's step: its market, its channel and the step's time.
pub type StepObserver = Arc<dyn Fn(&str, crate::channel::ChannelKind, std::time::Duration) + Send + Sync>;

/// What every event's step shares.
struct Shared<'a> {
    catalog: &'a Catalog,
    texts: &'a Texts,
    policy: &'a Policy,
    secret: &'a str,
    default_lang: Lang,
    flood: &'a super::flood::FloodGuard,
}

/// How a plain batch ended when it did not commit.
enum BatchOutcome {
    /// The store failed: nothing can be done in this batch.
    Store(StoreError),
    /// An event failed or does not decode: run the batch again with savepoints.
    NeedsCare,
}

impl From<StoreError> for BatchOutcome {
    fn from(e: StoreError) -> BatchOutcome {
        BatchOutcome::Store(e)
    }
}

/// The user timers act as: nobody's chat.
fn system_user() -> UserKey {
    UserKey { channel: crate::channel::ChannelKind::Console, id: SYSTEM_ACTOR.to_string() }
}

impl Engine {
    pub fn new(
        mut store: Store,
        texts: Arc<Texts>,
        clock: Arc<dyn Clock>,
        default_lang: Lang,
        policy: Policy,
    ) -> StoreResult<Engine> {
        let today = local(clock.now()).date_naive();
        let version = store.catalog_version()?;
        let catalog = Arc::new(store.load_catalog(today)?);
        let secret = match &policy.invite_secret {
            Some(s) => s.expose().to_string(),
            None => store.secret()?,
        };
        // Codes kept in clear by an older version: stored by their key from now on.
        let rekeyed = store.rekey_clear_invites(|code| crate::domain::invite::code_key(&secret, code), clock.now())?;
        if rekeyed > 0 {
            tracing::info!(invites = rekeyed, "invite codes stored in clear are now stored by their key");
        }
        Ok(Engine {
            store,
            catalog,
            catalog_loaded: (version, today),
            texts,
            clock,
            default_lang,
            policy: Arc::new(policy),
            secret,
            backup_dir: None,
            backups_in_background: false,
            backups_running: Vec::new(),
            step_observer: None,
            flood: super::flood::FloodGuard::default(),
        })
    }

    /// Has `observer` told of every update's step from now on.
    pub fn observe_steps(&mut self, observer: StepObserver) {
        self.step_observer = Some(observer);
    }

    /// Where backups asked for with `/cadangan` go.
    pub fn set_backup_dir(&mut self, dir: std::path::PathBuf) {
        self.backup_dir = Some(dir);
    }

    /// Makes each backup on a thread of its own, so that the engine (whose pass finds and
    /// reports them) never waits for a copy of the whole database (`pasar run`).
    pub fn make_backups_in_background(&mut self) {
        self.backups_in_background = true;
    }

    /// Makes the backups admins asked for (after their requests committed: I/O never runs inside
    /// a step's transaction) and tells each admin the file, its size and its check. In the
    /// background (see [`Engine::make_backups_in_background`]) a pass starts the copies and a
    /// later pass reports those that are done; a request whose copy a crash cut short is still
    /// pending and is made again after the restart.
    pub fn run_backups(&mut self) -> StoreResult<usize> {
        let mut handled = 0;
        // The copies that finished since the last pass.
        let mut running = Vec::new();
        for (request, path, done) in std::mem::take(&mut self.backups_running) {
            let outcome = match done.try_recv() {
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    running.push((request, path, done));
                    continue;
                }
                Ok(outcome) => outcome,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => Err("the backup thread stopped".to_string()),
            };
            if let Err(e) = self.report_backup(&request, outcome.map(|size| (path, size))) {
                // The copies still running are not forgotten (nor made twice); this one is made
                // again, its request still pending.
                self.backups_running = running;
                return Err(e);
            }
            handled += 1;
        }
        self.backups_running = running;
        for request in self.store.pending_backups()? {
            if self.backups_running.iter().any(|(r, _, _)| r.id == request.id) {
                continue;
            }
            let now = self.clock.now();
            let (Some(dir), Some(db)) = (&self.backup_dir, self.store.path()) else {
                self.report_backup(&request, Err("no backup folder is set ([backup] dir)".to_string()))?;
                handled += 1;
                continue;
            };
            let name = format!("pasar-{}-{}.db", local(now).format("%Y%m%d-%H%M%S"), request.id);
            let path = dir.join(name);
            let copy = {
                let (dir, path) = (dir.clone(), path.clone());
                move || {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| format!("{}: {e}", dir.display()))
                        .and_then(|_| Store::backup_file(&db, &path).map_err(|e| e.to_string()))
                }
            };
            if self.backups_in_background {
                let (tell, done) = std::sync::mpsc::channel();
                let started = std::thread::Builder::new().name("backup".into()).spawn(move || {
                    let _ = tell.send(copy());
                });
                match started {
                    Ok(_) => self.backups_running.push((request, path, done)),
                    Err(e) => {
                        self.report_backup(&request, Err(format!("starting the backup failed: {e}")))?;
                        handled += 1;
                    }
                }
            } else {
                let outcome = copy();
                self.report_backup(&request, outcome.map(|size| (path, size)))?;
                handled += 1;
            }
        }
        Ok(handled)
    }

    /// Whether a backup is being made on its own thread.
    pub fn backups_running(&self) -> bool {
        !self.backups_running.is_empty()
    }

    /// Marks a backup request done and tells its admin how it went.
    fn report_backup(
        &mut self,
        request: &BackupRequest,
        outcome: Result<(std::path::PathBuf, u64), String>,
    ) -> StoreResult<()> {
        let now = self.clock.now();
        match &outcome {
            Ok((path, size)) => tracing::info!(file = %path.display(), bytes = size, "backup made"),
            Err(e) => tracing::error!(error = %e, "backup failed"),
        }
        let (texts, default_lang) = (Arc::clone(&self.texts), self.default_lang);
        self.store.finish_backup(
            request,
            |lang| {
                let lang = lang.unwrap_or(default_lang);
                let text = match &outcome {
                    Ok((path, size)) => texts.render(
                        &request.market,
                        lang,
                        Key::BackupDone,
                        &[("file", &path.display()), ("size", &format!("{:.1}", *size as f64 / 1_048_576.0))],
                    ),
                    Err(e) => texts.render(&request.market, lang, Key::BackupFailed, &[("error", e)]),
                };
                crate::channel::Envelope {
                    market: request.market.clone(),
                    to: request.by.clone(),
                    message: crate::channel::Outbound::text(text),
                }
            },
            now,
        )
    }

    pub fn store(&mut self) -> &mut Store {
        &mut self.store
    }

    /// The store, for reading.
    pub fn store_ref(&self) -> &Store {
        &self.store
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

    /// Reloads the in-memory catalogue if another step (in this or another process) changed it,
    /// or the day changed (stalls closed "for today" open again).
    fn refresh_catalog(&mut self) -> StoreResult<()> {
        let today = local(self.clock.now()).date_naive();
        let version = self.store.catalog_version()?;
        if (version, today) != self.catalog_loaded {
            self.catalog = Arc::new(self.store.load_catalog(today)?);
            self.catalog_loaded = (version, today);
        }
        Ok(())
    }

    /// Processes every pending inbox row in order, then every due timer; returns how many rows
    /// and deadlines were handled (none: nothing new was queued to send).
    pub fn process_pending(&mut self) -> StoreResult<usize> {
        let mut handled = 0;
        loop {
            let n = self.process_batch(MAX_BATCH)?;
            if n == 0 {
                break;
            }
            handled += n;
        }
        handled += self.run_timers()?;
        handled += self.run_backups()?;
        handled += self.run_broadcasts()?;
        Ok(handled)
    }

    /// Keeps each sending broadcast's admin told: the counts (sent, failed, unreachable) edited
    /// into their progress message at most every few seconds where the platform can edit
    /// (Telegram), and the final counts once every message is sent or given up (on other
    /// platforms as a new message), which ends the broadcast. The counts come from the outbox
    /// and the state is in the broadcast's row, so a restart picks up where it was. Returns how
    /// many messages were queued.
    pub fn run_broadcasts(&mut self) -> StoreResult<usize> {
        use crate::domain::broadcast::{Report, next_report};
        let now = self.clock.now();
        let mut queued = 0;
        for b in self.store.sending_broadcasts()? {
            let counts = self.store.broadcast_counts(b.id)?;
            let can_edit = b.by.channel == crate::channel::ChannelKind::Telegram;
            let (replaces, key, finished) = match next_report(&b, &counts, now, can_edit) {
                Report::Nothing => continue,
                Report::Edit(id) => (Some(id), Key::BroadcastProgress, false),
                Report::Final(id) => (id, Key::BroadcastDone, true),
            };
            let lang = self.store.language_of(&b.by)?.unwrap_or(self.default_lang);
            let text = self.texts.render(
                &b.market,
                lang,
                key,
                &[
                    ("sent", &counts.sent),
                    ("total", &counts.total()),
                    ("failed", &counts.failed),
                    ("unreachable", &counts.unreachable),
                ],
            );
            let message = Outbound { replaces, ..Outbound::text(text) };
            let envelope = Envelope { market: b.market.clone(), to: b.by.clone(), message };
            self.store.report_broadcast(b.id, &counts, &envelope, finished, now)?;
            if finished {
                tracing::info!(market = %b.market, broadcast = b.id, sent = counts.sent, failed = counts.failed, unreachable = counts.unreachable, "broadcast finished");
            }
            queued += 1;
        }
        Ok(queued)
    }

    /// Acts on every trader deadline that has passed (reminder, admin, cancel), every courier
    /// offer that lapsed, and every order whose slot is near without a courier, one market per
    /// transaction. Deadlines are rows, so a restart loses none. Returns how many were due.
    pub fn run_timers(&mut self) -> StoreResult<usize> {
        let now = self.clock.now();
        // Used and expired invite codes leave the stored messages that carried them.
        let secret = self.secret.clone();
        self.store.redact_spent_invites(|seed| crate::domain::invite::invite_code(&secret, seed), now)?;
        self.refresh_catalog()?;
        let courier_due = (local(now) + self.policy.courier_lead).naive_local();
        let markets = self.store.markets_with_due_deadlines(now, courier_due, local(now).naive_local())?;
        let mut handled = 0;
        for slug in markets {
            let catalog = Arc::clone(&self.catalog);
            let texts = Arc::clone(&self.texts);
            let policy = Arc::clone(&self.policy);
            let Some(market) = catalog.market(&slug) else {
                continue;
            };
            let system = system_user();
            let secret = self.secret.clone();
            let default_lang = self.default_lang;
            let result = self
                .store
                .write(|tx| {
                    let mut repo = RepoTx { tx, market: &market.slug, user: &system, now };
                    let due = MarketRepo::due_sub_orders(&mut repo, now)?;
                    let mut turn = Turn {
                        now,
                        market,
                        catalog: &catalog,
                        texts: &texts,
                        policy: &policy,
                        user: &system,
                        lang: default_lang,
                        pressed_on: None,
                        default_lang,
                        event_key: "timer",
                        secret: &secret,
                        out: Vec::new(),
                        catalog_changed: false,
                    };
                    for sub in &due {
                        lifecycle::deadline_passed(&mut repo, &mut turn, *sub, &due)?;
                    }
                    let deliveries = super::delivery::run_timers(&mut repo, &mut turn)?;
                    let payments = super::payment::run_timers(&mut repo, &mut turn)?;
                    for envelope in &turn.out {
                        crate::store::enqueue(tx, envelope, None, now)?;
                    }
                    Ok::<_, StepError>(due.len() + deliveries + payments)
                })
                .map_err(|e| match e {
                    StepError::Store(s) => s,
                    other => StoreError::Corrupt(other.to_string()),
                });
            match result {
                Ok(n) => handled += n,
                // One market's failing timer must not hold up the others' (it is retried on the
                // next pass); a failing store fails them all anyway.
                Err(StoreError::Corrupt(e)) => {
                    tracing::error!(market = %slug, error = %e, "a timer failed; retried on the next pass")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(handled)
    }

    /// Handles up to `max` pending inbox rows, oldest first, in one transaction (group commit:
    /// one WAL commit for many events); nothing is delivered before the commit, so a crash loses
    /// no reply anyone has seen. Returns how many rows were taken up (handled, retried or parked).
    ///
    /// Events almost never fail, so the batch first runs plainly. If any event fails or panics,
    /// the whole batch is rolled back and run again with a savepoint per event, so that only the
    /// failing event is undone (and retried or parked) while the others commit.
    pub fn process_batch(&mut self, max: usize) -> StoreResult<usize> {
        self.process_batch_after(max, |_| Ok(())).map(|b| b.taken)
    }

    /// [`Engine::process_batch`], with `before`'s writes (the pollers' new updates, the
    /// senders' results) at the start of the same transaction, so that one commit serves both.
    /// `before` runs again if the batch has to be run with care; if it fails, nothing of the
    /// batch is done and its error is returned.
    pub fn process_batch_after<T>(
        &mut self,
        max: usize,
        mut before: impl FnMut(&Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<Batch<T>> {
        self.refresh_catalog()?;
        let now = self.clock.now();
        let catalog = Arc::clone(&self.catalog);
        let texts = Arc::clone(&self.texts);
        let policy = Arc::clone(&self.policy);
        let shared = Shared {
            catalog: &catalog,
            texts: &texts,
            policy: &policy,
            secret: &self.secret,
            default_lang: self.default_lang,
            flood: &self.flood,
        };
        let observer = self.step_observer.clone();
        let fast = self.store.write(|tx| {
            let early = before(tx)?;
            let pending = crate::store::pending_in(tx, max)?;
            let started = std::time::Instant::now();
            let mut taken = 0;
            for p in &pending {
                if taken > 0 && started.elapsed() >= BATCH_BUDGET {
                    break;
                }
                let Ok(ev) = &p.event else {
                    return Err(BatchOutcome::NeedsCare);
                };
                taken += 1;
                let step_started = std::time::Instant::now();
                let stepped = step_event(tx, p.id, ev, now, &shared);
                if let (Ok(_), Some(observe)) = (&stepped, &observer) {
                    observe(&ev.market, ev.user.channel, step_started.elapsed());
                }
                match stepped {
                    Ok(true) => break, // later events must see the new catalogue
                    Ok(false) => {}
                    Err(_) => return Err(BatchOutcome::NeedsCare),
                }
            }
            Ok(Batch { taken, more: taken < pending.len() || pending.len() >= max, before: early })
        });
        match fast {
            Ok(done) => Ok(done),
            Err(BatchOutcome::Store(e)) => Err(e),
            Err(BatchOutcome::NeedsCare) => self.process_batch_carefully(max, before),
        }
    }

    /// The batch again, one savepoint per event: a failing or panicking step is rolled back
    /// alone, retried up to [`MAX_ATTEMPTS`] times, then parked with an apology to its user.
    fn process_batch_carefully<T>(
        &mut self,
        max: usize,
        mut before: impl FnMut(&Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<Batch<T>> {
        self.refresh_catalog()?;
        let now = self.clock.now();
        let catalog = Arc::clone(&self.catalog);
        let texts = Arc::clone(&self.texts);
        let policy = Arc::clone(&self.policy);
        let shared = Shared {
            catalog: &catalog,
            texts: &texts,
            policy: &policy,
            secret: &self.secret,
            default_lang: self.default_lang,
            flood: &self.flood,
        };
        let observer = self.step_observer.clone();
        self.store.write(|tx| {
            let early = before(tx)?;
            let pending = crate::store::pending_in(tx, max)?;
            // A user whose event must be retried keeps their later events for the next batch, so
            // each user's messages are handled in the order they were sent.
            let mut deferred: Vec<&UserKey> = Vec::new();
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
                let step_started = std::time::Instant::now();
                match step_event(tx, p.id, ev, now, &shared) {
                    Ok(catalog_changed) => {
                        if let Some(observe) = &observer {
                            observe(&ev.market, ev.user.channel, step_started.elapsed());
                        }
                        crate::store::release_savepoint(tx)?;
                        // Later events must see the new prices: end the batch here.
                        if catalog_changed {
                            break;
                        }
                    }
                    Err(e) => {
                        crate::store::rollback_savepoint(tx)?;
                        tracing::error!(inbox_id = p.id, source = %ev.source_id, error = %e, "event failed");
                        if p.attempts + 1 < MAX_ATTEMPTS {
                            crate::store::record_attempt(tx, p.id)?;
                            deferred.push(&ev.user);
                        } else {
                            // Give up on this event: tell the user, keep the bot going.
                            let lang = crate::store::user_lang(tx, &ev.user)?.unwrap_or(shared.default_lang);
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
            Ok(Batch { taken, more: taken < pending.len() || pending.len() >= max, before: early })
        })
    }
}

fn decode_state<S: serde::de::DeserializeOwned + Default>(json: Option<String>, user: &UserKey, reset: &mut bool) -> S {
    match json {
        None => S::default(),
        Some(json) => serde_json::from_str::<S>(&json).unwrap_or_else(|e| {
            tracing::warn!(user = %user.for_log(), error = %e, "stored state no longer decodes; reset");
            *reset = true;
            S::default()
        }),
    }
}

/// One event's step inside the open transaction: work out who the user is here, route the input
/// to that role's conversation, save its state, queue the messages, mark the inbox row done.
/// Returns whether the catalogue changed.
fn step_event(
    tx: &Tx<'_>,
    inbox_id: i64,
    ev: &crate::channel::InboundEvent,
    now: DateTime<Utc>,
    shared: &Shared<'_>,
) -> Result<bool, StepError> {
    let Some(market) = shared.catalog.market(&ev.market) else {
        tracing::warn!(market = %ev.market, "event for an unknown market dropped");
        crate::store::mark_done(tx, inbox_id, now)?;
        return Ok(false);
    };
    // News of the bank or the vendor counts only as theirs: stored by their routes (their
    // signature checked) as their user, which no chat platform's user can be. Anything else
    // that claims to be such news (a forged or corrupted row) is dropped, whatever it says.
    let outside = match &ev.inbound {
        crate::channel::Inbound::BankNews(_) => Some((crate::integration::bank::bank_user(), "bank")),
        crate::channel::Inbound::VendorStatus(_) => Some((crate::integration::vendor::vendor_user(), "vendor")),
        _ => None,
    };
    if let Some((from, whose)) = outside
        && ev.user != from
    {
        tracing::warn!(inbox_id, source = %ev.source_id, "news claiming to be the {whose}'s from elsewhere: dropped");
        crate::store::mark_done(tx, inbox_id, now)?;
        return Ok(false);
    }
    let lang = crate::store::user_lang(tx, &ev.user)?.unwrap_or(shared.default_lang);
    // Past the flood rule: stored, not worked, not answered; one word per burst.
    if let super::flood::Verdict::Skip { first } =
        shared.flood.check(&shared.policy.flood, &ev.market, &ev.user, inbox_id, &ev.inbound, ev.received_at)
    {
        if first {
            let text = shared.texts.get(&ev.market, lang, Key::SlowDown).to_string();
            let envelope = Envelope { market: ev.market.clone(), to: ev.user.clone(), message: Outbound::text(text) };
            crate::store::enqueue(tx, &envelope, Some(inbox_id), now)?;
        }
        crate::store::mark_skipped(tx, inbox_id, now)?;
        return Ok(false);
    }
    let event_key = format!("inbox:{}", ev.source_id);
    let mut turn = Turn {
        now,
        market,
        catalog: shared.catalog,
        texts: shared.texts,
        policy: shared.policy,
        user: &ev.user,
        lang,
        pressed_on: ev.pressed_on.as_deref(),
        default_lang: shared.default_lang,
        event_key: &event_key,
        secret: shared.secret,
        out: Vec::new(),
        catalog_changed: false,
    };
    let mut repo = RepoTx { tx, market: &market.slug, user: &ev.user, now };
    // Only commands, photos and locations are routed by role (buttons carry their role, text
    // follows the state), so the role lookups are skipped for everything else.
    let inbound = super::canonical(&ev.inbound);
    let inbound: &crate::channel::Inbound = &inbound;
    let roles = if super::needs_roles(inbound) {
        let courier = crate::conversation::DeliveryRepo::courier_of(&mut repo, &ev.user)?;
        let courier_on_job = match &courier {
            Some(c) => crate::conversation::DeliveryRepo::deliveries_of(&mut repo, c.id)?.iter().any(|d| {
                matches!(
                    d.status,
                    crate::domain::delivery::DeliveryStatus::Assigned
                        | crate::domain::delivery::DeliveryStatus::OnTheWay
                )
            }),
            None => false,
        };
        Roles {
            admin: shared.policy.is_config_admin(&market.slug, &ev.user) || repo.staff_admins()?.contains(&ev.user),
            city_admin: shared.policy.is_city_admin(&ev.user),
            stalls: repo.stalls_of(&ev.user)?,
            courier: courier.is_some(),
            courier_on_job,
        }
    } else {
        Roles::default()
    };
    // Every role's state in one read: the trader's and courier's decide where free text goes.
    let states = crate::store::load_states(tx, &market.slug, &ev.user)?;
    let (mut trader_reset, mut courier_reset) = (false, false);
    let trader_state: TraderState = decode_state(states.trader, &ev.user, &mut trader_reset);
    let courier_state: CourierState = decode_state(states.courier, &ev.user, &mut courier_reset);
    let busy = Busy { trader: trader_state.is_busy(), courier: courier_state.is_busy() };
    let route = super::route(inbound, &roles, busy);
    let stepped = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<(), StepError> {
        match route {
            Route::Buyer => {
                let mut reset = false;
                let state: BuyerState = decode_state(states.buyer, &ev.user, &mut reset);
                if reset || trader_reset {
                    turn.say(Key::StateReset);
                }
                let next = buyer::step(state, inbound, &mut repo, &mut turn)?;
                let json = serde_json::to_string(&next).map_err(StoreError::from)?;
                crate::store::save_state(tx, &market.slug, &ev.user, Role::Buyer, &json, now)?;
            }
            Route::Trader => {
                if trader_reset {
                    turn.say(Key::StateReset);
                }
                let next = trader::step(trader_state, inbound, &mut repo, &mut turn)?;
                let json = serde_json::to_string(&next).map_err(StoreError::from)?;
                crate::store::save_state(tx, &market.slug, &ev.user, Role::Trader, &json, now)?;
            }
            Route::Courier => {
                if courier_reset {
                    turn.say(Key::StateReset);
                }
                let next = courier::step(courier_state, inbound, &mut repo, &mut turn)?;
                let json = serde_json::to_string(&next).map_err(StoreError::from)?;
                crate::store::save_state(tx, &market.slug, &ev.user, Role::Courier, &json, now)?;
            }
            Route::Admin => admin::step(inbound, &mut repo, &mut turn)?,
            Route::Vendor => {
                if let crate::channel::Inbound::VendorStatus(update) = inbound {
                    super::delivery::vendor_update(&mut repo, &mut turn, update)?;
                }
            }
            Route::Bank => {
                if let crate::channel::Inbound::BankNews(news) = inbound {
                    super::payment::bank_news(&mut repo, &mut turn, news)?;
                }
            }
        }
        Ok(())
    }));
    match stepped {
        Ok(result) => result?,
        Err(_) => return Err(StepError::Panic),
    }
    for envelope in &turn.out {
        crate::store::enqueue(tx, envelope, Some(inbox_id), now)?;
    }
    crate::store::mark_done(tx, inbox_id, now)?;
    Ok(turn.catalog_changed)
}
