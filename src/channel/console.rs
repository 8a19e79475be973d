//! The terminal channel: `pasar chat`.
//!
//! Bot messages are printed as `< ` lines with their buttons as numbered lines (`[1] Sayur`); when
//! a question expects typed input (an amount, a phone number) the buttons are lettered instead
//! (`[a] 1/2 kg`) so that a typed `2` stays an amount. The user answers with the number or letter,
//! the label, or free text. Typed lines go through the same inbox, engine and outbox as every
//! other channel, so the terminal chat is a faithful way to test the bots.
//!
//! Scripts (`--script FILE`) use the transcript format of `tests/transcripts/`: `> ` lines are what
//! the user types, `< ` lines are expected bot output and are skipped on input, `#` lines are
//! comments, and `--- restart ---`, `--- clock <RFC 3339 time> ---`, `--- user <name> ---` are
//! directives. `--- bank account <order> <number> ---` and `--- bank paid <order> <amount> <tx>
//! ---` play the bank partner's news about the order's latest payment request (its virtual
//! account is ready; money came in), as the runtime would store them.

use crate::channel::{Button, ChannelKind, Inbound, InboundEvent, Outbound, Request, UserKey};
use crate::conversation::engine::{Clock, Engine};
use crate::domain::catalog::normalize;
use crate::store::StoreError;
use crate::text::Key;
use chrono::{DateTime, Utc};
use std::io::{BufRead, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Real time unless a script fixes it.
#[derive(Default)]
pub struct ConsoleClock(Mutex<Option<DateTime<Utc>>>);

impl ConsoleClock {
    pub fn fixed(at: Option<DateTime<Utc>>) -> ConsoleClock {
        ConsoleClock(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }
}

impl Clock for ConsoleClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).unwrap_or_else(Utc::now)
    }
}

/// The buttons a typed number or letter refers to.
#[derive(Debug, Clone, Default)]
struct Menu {
    buttons: Vec<Button>,
    lettered: bool,
}

/// One user's terminal chat with one market's bot.
pub struct ConsoleChat<'e> {
    engine: &'e mut Engine,
    market: String,
    user: UserKey,
    menu: Menu,
    /// Where files sent to the user are saved (`pasar chat`: the current directory); scripts
    /// only show them.
    files: Option<std::path::PathBuf>,
}

static LINE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Errors of the terminal chat.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("terminal: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Script(String),
}

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

/// Lines of a file the terminal shows.
const DOCUMENT_PREVIEW: usize = 6;

/// Renders a message as terminal lines.
pub fn render(message: &Outbound) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    if let Some(photo) = &message.photo {
        lines.push(format!("< [foto: {photo}]"));
    }
    if let Some(qr) = &message.qr {
        lines.push(format!("< [kode QR: {qr}]"));
    }
    for l in message.text.lines() {
        lines.push(if l.is_empty() { "<".to_string() } else { format!("< {l}") });
    }
    // A chart as a small table under its caption (the title is the caption's).
    if let Some(chart) = &message.chart {
        lines.extend(super::chart::text_table(chart).into_iter().skip(1).map(|l| format!("<   {l}")));
    }
    // A file: its name and size, and its first lines (`pasar chat` also saves it).
    if let Some(doc) = &message.document {
        let content = doc.content.trim_start_matches('\u{feff}');
        let rows: Vec<&str> = content.lines().collect();
        lines.push(format!("<   [berkas: {}, {} baris]", doc.file_name, rows.len()));
        for row in rows.iter().take(DOCUMENT_PREVIEW) {
            lines.push(format!("<   | {row}"));
        }
        if rows.len() > DOCUMENT_PREVIEW {
            lines.push(format!("<   | … {} baris lagi", rows.len() - DOCUMENT_PREVIEW));
        }
    }
    for (i, b) in message.buttons.iter().enumerate() {
        let tag = if message.expects_text {
            LETTERS.get(i).map(|c| (*c as char).to_string()).unwrap_or_else(|| (i + 1).to_string())
        } else {
            (i + 1).to_string()
        };
        lines.push(format!("<   [{tag}] {}", b.label));
    }
    match message.request {
        Some(Request::Location) => lines.push("<   [📍 /lokasi <lat>,<lon>]".to_string()),
        Some(Request::Contact) => lines.push("<   [📇 /kontak <nomor>]".to_string()),
        None => {}
    }
    lines
}

impl<'e> ConsoleChat<'e> {
    pub fn new(engine: &'e mut Engine, market: &str, user: &str) -> Result<ConsoleChat<'e>, ConsoleError> {
        check_market(engine, market)?;
        let user = UserKey { channel: ChannelKind::Console, id: user.to_string() };
        let mut chat = ConsoleChat { engine, market: market.to_string(), user, menu: Menu::default(), files: None };
        // Buttons of the last message survive a restart, like an inline keyboard on a phone.
        let recent = chat.engine.store().recent_sent_to(&chat.market, &chat.user, 20)?;
        if let Some(with_buttons) = recent.iter().find(|m| !m.buttons.is_empty()) {
            chat.remember(with_buttons);
        }
        Ok(chat)
    }

    /// Saves files sent to the user into `dir` (and says where).
    pub fn save_files_to(mut self, dir: std::path::PathBuf) -> Self {
        self.files = Some(dir);
        self
    }

    /// After a restart: says where the conversation was, by showing the last message again.
    pub fn resume(&mut self, out: &mut dyn Write) -> Result<bool, ConsoleError> {
        // Finish what a crash interrupted: events stored but not handled, replies not printed.
        self.engine.process_pending()?;
        let mut pending = Vec::new();
        self.deliver(&mut pending)?;
        if !pending.is_empty() {
            out.write_all(&pending)?;
            return Ok(true);
        }
        let recent = self.engine.store().recent_sent_to(&self.market, &self.user, 1)?;
        let Some(last) = recent.first() else {
            return Ok(false);
        };
        let lang = self.engine.store().language_of(&self.user)?.unwrap_or(self.engine.default_lang());
        let notice = self.engine.texts().get(&self.market, lang, Key::ResumeNotice).to_string();
        writeln!(out, "< {notice}")?;
        for line in render(last) {
            writeln!(out, "{line}")?;
        }
        Ok(true)
    }

    fn remember(&mut self, message: &Outbound) {
        if !message.buttons.is_empty() {
            self.menu = Menu { buttons: message.buttons.clone(), lettered: message.expects_text };
        }
    }

    /// What a typed line means: a button by number, letter or label, a console location or
    /// contact, a command, or text.
    fn read(&self, line: &str) -> Inbound {
        let t = line.trim();
        let pick = if self.menu.lettered {
            let mut chars = t.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_lowercase() => LETTERS.iter().position(|l| *l as char == c),
                _ => None,
            }
        } else {
            t.parse::<usize>().ok().filter(|n| *n >= 1).map(|n| n - 1)
        };
        if let Some(b) = pick.and_then(|i| self.menu.buttons.get(i)) {
            return Inbound::Button(b.payload.clone());
        }
        // A label may be typed without its emoji and in any case ("checkout" picks "✅ Checkout"),
        // and without the price after a "·" ("sayur bu sri" picks "Sayur Bu Sri · Rp 17.500").
        // A minus sign is part of what was typed ("-2 kg" is not the "2 kg" button).
        let chars: Vec<char> = t.chars().collect();
        let minus = chars
            .windows(2)
            .enumerate()
            .any(|(i, w)| w[0] == '-' && w[1].is_ascii_digit() && (i == 0 || !chars[i - 1].is_alphanumeric()));
        let typed = if minus { String::new() } else { normalize(t) };
        let label_matches = |label: &str| {
            normalize(label) == typed || label.split_once('·').is_some_and(|(head, _)| normalize(head) == typed)
        };
        if !typed.is_empty()
            && let Some(b) = self.menu.buttons.iter().find(|b| label_matches(&b.label))
        {
            return Inbound::Button(b.payload.clone());
        }
        match Inbound::from_typed(t) {
            Inbound::Command { name, args } if name == "lokasi" || name == "location" => {
                let parsed = args
                    .split_once(',')
                    .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)));
                match parsed {
                    Some((lat, lon)) if lat.is_finite() && lon.is_finite() => {
                        Inbound::Location { lat, lon, live: false }
                    }
                    // Not a location: the core answers it like any other unknown command.
                    _ => Inbound::Command { name, args },
                }
            }
            // Presses a button by its payload, as a forged or old button would arrive.
            Inbound::Command { name, args } if name == "tombol" || name == "press" => Inbound::Button(args),
            Inbound::Command { name, args } if name == "kontak" || name == "contact" => {
                Inbound::Contact { phone: args, name: None }
            }
            // A photo, by a name standing for the platform's reference to it, and the rest of the
            // line as its caption: `/foto bm.jpg /foto bawang merah` is an admin's catalogue photo.
            Inbound::Command { name, args } if (name == "foto" || name == "photo") && !args.is_empty() => {
                let (reference, caption) = match args.split_once(char::is_whitespace) {
                    Some((r, c)) => (r.to_string(), Some(c.trim().to_string())),
                    None => (args, None),
                };
                Inbound::Image { reference, caption }
            }
            // A live location's next point, as a courier on the road sends it.
            Inbound::Command { name, args } if name == "lokasi_live" || name == "live_location" => {
                let parsed = args
                    .split_once(',')
                    .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)));
                match parsed {
                    Some((lat, lon)) if lat.is_finite() && lon.is_finite() => {
                        Inbound::Location { lat, lon, live: true }
                    }
                    _ => Inbound::Command { name, args },
                }
            }
            other => other,
        }
    }

    /// Sends one typed line through inbox, engine and outbox, and prints the replies.
    pub fn send(&mut self, line: &str, out: &mut dyn Write) -> Result<(), ConsoleError> {
        // Unique per typed line: wall time, process and counter.
        let seq = LINE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let wall = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let id = format!("console:{}:{}:{wall}:{}:{seq}", self.market, self.user.id, std::process::id());
        self.send_as(line, id, out)
    }

    /// Sends a line under a given source id: a script line sent again after a crash has the same
    /// id, so the inbox ignores it instead of doing it twice.
    pub fn send_as(&mut self, line: &str, source_id: String, out: &mut dyn Write) -> Result<(), ConsoleError> {
        let inbound = self.read(line);
        let now = self.engine.now();
        let event = InboundEvent {
            source_id,
            market: self.market.clone(),
            user: self.user.clone(),
            display_name: Some(self.user.id.clone()),
            received_at: now,
            inbound,
            pressed_on: None,
        };
        self.engine.store().ingest(std::slice::from_ref(&event))?;
        self.engine.process_pending()?;
        self.deliver(out)
    }

    /// Runs due timers and anything pending, then prints what waits for this user.
    pub fn catch_up(&mut self, out: &mut dyn Write) -> Result<(), ConsoleError> {
        self.engine.process_pending()?;
        self.deliver(out)
    }

    /// Prints and marks sent every pending message for this user in this market, in order.
    /// Messages for other users wait for them (another actor, or another terminal).
    pub fn deliver(&mut self, out: &mut dyn Write) -> Result<(), ConsoleError> {
        loop {
            let batch = self.engine.store().pending_outbox_for(&self.market, &self.user, 100)?;
            if batch.is_empty() {
                return Ok(());
            }
            for m in batch {
                let now = self.engine.now();
                // Claim it first: another terminal on the same database may be delivering too.
                if !self.engine.store().claim_sent(m.id, now)? {
                    continue;
                }
                self.remember(&m.message);
                for line in render(&m.message) {
                    writeln!(out, "{line}")?;
                }
                if let (Some(dir), Some(doc)) = (&self.files, &m.message.document) {
                    // Only the file's own name: nothing in it may point elsewhere.
                    let name = std::path::Path::new(&doc.file_name).file_name().unwrap_or_default();
                    let path = dir.join(name);
                    match std::fs::write(&path, &doc.content) {
                        Ok(()) => writeln!(out, "<   [disimpan: {}]", path.display())?,
                        Err(e) => writeln!(out, "<   [tidak bisa disimpan ke {}: {e}]", path.display())?,
                    }
                }
            }
        }
    }
}

/// Refuses a market slug the catalogue does not know, listing the ones it does.
pub fn check_market(engine: &Engine, market: &str) -> Result<(), ConsoleError> {
    if engine.catalog().market(market).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = engine.catalog().markets().iter().map(|m| m.slug.as_str()).collect();
    Err(ConsoleError::Script(format!("unknown market `{market}`; known: {}", known.join(", "))))
}

/// Who is typing in a script, and where.
pub struct ScriptOptions {
    pub market: String,
    pub user: String,
}

/// Switches who is typing: `:as trader bu-sri`. An admin switch makes that terminal user an
/// admin of the market (the terminal is the operator's own tool). Returns the user name.
pub fn switch_actor(engine: &mut Engine, market: &str, spec: &str) -> Result<String, ConsoleError> {
    let mut words = spec.split_whitespace();
    let (Some(role), Some(name), None) = (words.next(), words.next(), words.next()) else {
        return Err(ConsoleError::Script(format!("`:as {spec}`: write `:as buyer|trader|courier|admin <name>`")));
    };
    let user = UserKey { channel: ChannelKind::Console, id: name.to_string() };
    match role {
        "admin" => {
            let now = engine.now();
            engine.store().grant_admin(market, &user, now)?;
        }
        "buyer" | "trader" | "courier" => {}
        other => {
            return Err(ConsoleError::Script(format!("unknown role `{other}` in `:as {spec}`")));
        }
    }
    Ok(name.to_string())
}

/// The bank's news a script plays (`account <order> <number>` or `paid <order> <amount> <tx>`).
fn bank_event(
    engine: &Engine,
    market: &str,
    news: &str,
    key: &str,
    line_no: usize,
) -> Result<InboundEvent, ConsoleError> {
    use crate::integration::bank::{BankEvent, BankNews, bank_user};
    let bad = || {
        ConsoleError::Script(format!(
            "line {line_no}: bank news is `account <order> <number>` or `paid <order> <amount> <tx>`"
        ))
    };
    let words: Vec<&str> = news.split_whitespace().collect();
    let number = words.get(1).and_then(|n| crate::domain::order::OrderNumber::parse(n)).ok_or_else(bad)?;
    let event = match (words.first(), &words[2..]) {
        (Some(&"account"), [account]) => BankEvent::AccountReady { bank: "bni".into(), number: account.to_string() },
        (Some(&"paid"), [amount, tx]) => BankEvent::Paid {
            amount: crate::domain::money::Rupiah::parse(amount).ok_or_else(bad)?,
            transaction_id: tx.to_string(),
        },
        _ => return Err(bad()),
    };
    let payment_id = engine
        .store_ref()
        .latest_payment_of(market, &number)?
        .ok_or_else(|| ConsoleError::Script(format!("line {line_no}: order {number} has no payment request")))?;
    Ok(InboundEvent {
        source_id: format!("console:{market}:bank:script-{key}:{line_no}"),
        market: market.to_string(),
        user: bank_user(),
        display_name: None,
        received_at: engine.now(),
        inbound: Inbound::BankNews(Box::new(BankNews { payment_id, event })),
        pressed_on: None,
    })
}

/// Plays a script (transcript format) and writes the whole conversation to `out`.
/// `open` opens the engine; it is called again on `--- restart ---`, as a real restart would.
/// Each typed line's inbox id comes from the script's content and line number, so playing the
/// same script again on the same database (after a crash) does nothing twice.
pub fn run_script(
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    options: &ScriptOptions,
    clock: &ConsoleClock,
    open: &dyn Fn() -> Result<Engine, ConsoleError>,
) -> Result<(), ConsoleError> {
    let mut script = String::new();
    std::io::Read::read_to_string(input, &mut script)?;
    // A line's id hashes the script up to that line: the same script replays with the same ids,
    // and editing a later line does not change earlier ones.
    let mut prefix = sha2::Sha256::default();
    let mut engine = open()?;
    check_market(&engine, &options.market)?;
    let mut user = options.user.clone();
    for (i, raw) in script.lines().enumerate() {
        let line_no = i + 1;
        if raw.starts_with('<') {
            continue; // expected output in a transcript
        }
        sha2::Digest::update(&mut prefix, raw.as_bytes());
        sha2::Digest::update(&mut prefix, b"\n");

        if raw.trim().is_empty() || raw.starts_with('#') {
            writeln!(out, "{raw}")?;
            continue;
        }
        if let Some(spec) = raw.strip_prefix(":as ") {
            writeln!(out, "{raw}")?;
            user = switch_actor(&mut engine, &options.market, spec)?;
            ConsoleChat::new(&mut engine, &options.market, &user)?.catch_up(out)?;
            continue;
        }
        if let Some(directive) = raw.strip_prefix("---").and_then(|r| r.strip_suffix("---")) {
            writeln!(out, "{raw}")?;
            let directive = directive.trim();
            if directive == "restart" {
                drop(engine);
                engine = open()?;
                let mut chat = ConsoleChat::new(&mut engine, &options.market, &user)?;
                chat.resume(out)?;
            } else if let Some(at) = directive.strip_prefix("clock ") {
                let t = DateTime::parse_from_rfc3339(at.trim())
                    .map_err(|e| ConsoleError::Script(format!("line {line_no}: bad clock `{at}`: {e}")))?;
                clock.set(t.with_timezone(&Utc));
                // Time passed: deadlines may be due.
                ConsoleChat::new(&mut engine, &options.market, &user)?.catch_up(out)?;
            } else if let Some(name) = directive.strip_prefix("user ") {
                user = name.trim().to_string();
            } else if let Some(news) = directive.strip_prefix("bank ") {
                let key: String =
                    sha2::Digest::finalize(prefix.clone()).iter().take(8).map(|b| format!("{b:02x}")).collect();
                let event = bank_event(&engine, &options.market, news.trim(), &key, line_no)?;
                engine.store().ingest(std::slice::from_ref(&event))?;
                ConsoleChat::new(&mut engine, &options.market, &user)?.catch_up(out)?;
            } else {
                return Err(ConsoleError::Script(format!("line {line_no}: unknown directive `{directive}`")));
            }
            continue;
        }
        let typed = raw.strip_prefix('>').map(|s| s.strip_prefix(' ').unwrap_or(s)).unwrap_or(raw);
        writeln!(out, "> {typed}")?;
        let key: String = sha2::Digest::finalize(prefix.clone()).iter().take(8).map(|b| format!("{b:02x}")).collect();
        let source_id = format!("console:{}:{user}:script-{key}:{line_no}", options.market);
        let mut chat = ConsoleChat::new(&mut engine, &options.market, &user)?;
        chat.send_as(typed, source_id, out)?;
    }
    Ok(())
}
