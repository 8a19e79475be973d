//! `pasar`: the command line. Parses arguments, loads configuration, then hands off to the library.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use pasar_online::channel::console::{
    ConsoleChat, ConsoleClock, ConsoleError, ScriptOptions, run_script, switch_actor,
};
use pasar_online::config::Config;
use pasar_online::conversation::engine::Clock;
use pasar_online::domain::catalog::SeedData;
use pasar_online::logging::LogFormat;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// mimalloc: the engine and the HTTP clients allocate many small short-lived buffers (JSON,
/// SQL rows, messages), which it serves with less CPU than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Pasar Online: chatbot ordering for the traditional markets of Kota Malang.
#[derive(Parser)]
#[command(name = "pasar", version, about, long_about = None)]
struct Cli {
    /// Configuration file (see config.example.toml). Without one, built-in defaults are used.
    #[arg(long, global = true, env = "PASAR_CONFIG")]
    config: Option<PathBuf>,
    /// Log lines as text or as one JSON object per line (stderr; `PASAR_LOG` sets the level,
    /// default warn). Tokens and phone numbers are never written either way.
    #[arg(long, global = true, env = "PASAR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Role {
    Buyer,
    Trader,
    Courier,
    Admin,
}

#[derive(Subcommand)]
enum Command {
    /// Chat with a market's bot in the terminal (buttons appear as numbered lines; files the
    /// bot sends, such as an admin's /ekspor, are saved in the current directory).
    Chat {
        /// Market slug: blimbing, oro-oro-dowo, klojen, bunul, dinoyo, madyopuro, mergan,
        /// sawojajar, sukun, tawangmangu.
        #[arg(long, default_value = "blimbing")]
        market: String,
        /// Read the user's lines from FILE (or `-` for stdin) and print the conversation.
        /// Accepts the transcript format of tests/transcripts/.
        #[arg(long, value_name = "FILE")]
        script: Option<String>,
        /// Who is typing: an admin needs no config in the terminal; a trader registers with
        /// /daftar <code>. In the chat, `:as <role> <name>` switches who is typing.
        #[arg(long = "as", value_enum, default_value = "buyer")]
        role: Role,
        /// The user's name on the terminal channel; each name has its own cart and orders.
        #[arg(long, default_value = "pembeli")]
        user: String,
        /// Database file (default: the config's [database] path, else ./pasar.db).
        #[arg(long, env = "PASAR_DB")]
        db: Option<PathBuf>,
        /// Pretend the time is this RFC 3339 instant (for demos and reproducible scripts).
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
    },
    /// Run every market's bots until SIGINT/SIGTERM: on Telegram where a token is set
    /// (PASAR_<MARKET>_TELEGRAM_TOKEN), on WhatsApp where the config gives the market a
    /// whatsapp_phone_number_id (secrets PASAR_WHATSAPP_ACCESS_TOKEN, PASAR_WHATSAPP_APP_SECRET,
    /// PASAR_WHATSAPP_VERIFY_TOKEN); markets with `delivery = "vendor"` post jobs to delivery.vendor_url
    /// (PASAR_DELIVERY_VENDOR_KEY, PASAR_DELIVERY_VENDOR_SECRET).
    Run {
        /// Database file (default: the config's [database] path, else ./pasar.db).
        #[arg(long, env = "PASAR_DB")]
        db: Option<PathBuf>,
        /// Check the config, the database, every Telegram token (getMe) and the WhatsApp
        /// numbers and secrets, print what would run, exit (status 1 if something set up would
        /// not run).
        #[arg(long)]
        check: bool,
    },
    /// Measure engine steps per second for whole buyer journeys on a file-backed WAL database.
    Bench {
        /// Number of buyer journeys (19 steps each), spread over all markets.
        #[arg(long, default_value_t = 2000)]
        journeys: usize,
        /// Shoppers chatting at the same time; their messages reach the inbox in batches.
        #[arg(long, default_value_t = 50)]
        concurrent: usize,
        /// Database file to create; default: a fresh file in a temporary folder.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Grow the database to about this many megabytes first (old delivered messages).
        #[arg(long, default_value_t = 0)]
        fill_mb: u64,
        /// Webhooks stored meanwhile on a second connection, per second.
        #[arg(long, default_value_t = 0)]
        webhooks_per_sec: u64,
        /// Backups during the run: none, thread (VACUUM INTO on its own connection and thread,
        /// one after another) or engine (the backup API inside the engine's pass, once: the way
        /// before issue 23).
        #[arg(long, value_enum, default_value_t = pasar_online::bench::BackupDuring::None)]
        backup: pasar_online::bench::BackupDuring,
    },
    /// Make the dynamic QRIS for an amount from a merchant's static QRIS payload (for operators
    /// checking their merchant data): prints the payload, and writes the QR image with --png.
    /// A malformed or tampered static payload is refused with the reason (exit code 1).
    Qris {
        /// The merchant's static QRIS payload (the text in the QR code their bank gave them).
        #[arg(long = "static", value_name = "PAYLOAD")]
        static_payload: String,
        /// The amount in whole rupiah, e.g. 42500.
        #[arg(long)]
        amount: i64,
        /// Also write the QR code as a PNG image to FILE.
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
    },
    /// Read typed orders the way the bots do ("brambang sekilo, tempe 2 papan"): for each
    /// message (TEXT, or else each line of standard input, where `\n` stands for a new line)
    /// one JSON line with the items understood (commodity id and name, the quantity in grams,
    /// millilitres or pieces, the amount as written, the market's cheapest open stall and its
    /// price), the parts not understood, and the commodities asked about when it is a question.
    Parse {
        /// Market slug (its stalls and prices).
        #[arg(long, default_value = "blimbing")]
        market: String,
        /// Database file to read the catalogue from (default: the config's [database] path if
        /// it exists, else the seed data).
        #[arg(long, env = "PASAR_DB")]
        db: Option<PathBuf>,
        /// The message; without it, one message per line of standard input.
        text: Vec<String>,
    },
    /// Load and fault scenarios against `pasar run` (a child process) on fake chat APIs on
    /// 127.0.0.1 and a temporary database (rush and idle: with stored conversations); each
    /// scenario prints its figures and fails if one of its checks fails.
    Loadtest(pasar_online::loadtest::LoadtestArgs),
    /// Make an online backup of the database (`VACUUM INTO` in one read transaction; the bots
    /// keep running) into the backup folder ([backup] dir, next to the database) or --to, check
    /// it with PRAGMA integrity_check, and print the file and its size.
    Backup {
        /// Database file (default: the config's [database] path, else ./pasar.db).
        #[arg(long, env = "PASAR_DB")]
        db: Option<PathBuf>,
        /// The backup file to write (default: pasar-<date>-<time>.db in the backup folder).
        #[arg(long, value_name = "FILE")]
        to: Option<PathBuf>,
    },
    /// Write the orders placed between two dates as CSV (UTF-8 with a byte-order mark, one row
    /// per order: stalls, items, total, paid, owed back, given back), for a spreadsheet.
    Export {
        /// Database file (default: the config's [database] path, else ./pasar.db).
        #[arg(long, env = "PASAR_DB")]
        db: Option<PathBuf>,
        /// First day (Malang time), YYYY-MM-DD; default: 30 days before --to.
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last day (Malang time, included), YYYY-MM-DD; default: today.
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        /// Only this market (slug); default: every market.
        #[arg(long)]
        market: Option<String>,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Remove the personal data of orders finished more than DAYS ago (the shopper's name, phone,
    /// address, location, note, photo at the door, rating comments, WhatsApp numbers as ids,
    /// replaced by pseudonyms) and the messages, updates, vendor and bank requests from before
    /// then, keeping orders, items and money as anonymous figures (Indonesia's personal data
    /// protection law, UU PDP); people quiet since then also lose their saved details,
    /// conversation states and carts. The bytes are zeroed in the file and the pages given
    /// back, in short steps (the bots may keep running). Then deletes backups older than
    /// [backup] keep_days.
    Purge {
        /// Database file (default: the config's [database] path, else ./pasar.db).
        #[arg(long, env = "PASAR_DB")]
        db: Option<PathBuf>,
        /// Days to keep (default: the config's [privacy] keep_days, else 90).
        #[arg(long, value_name = "DAYS")]
        older_than: Option<u32>,
    },
    /// Seed a database from data/: a new one in full; with --update, one already running gets
    /// what is new in data/ (markets, commodities, market words, steps and piece sizes, stalls
    /// with their price lists, offers of new commodities) without touching its orders, carts,
    /// registered traders, existing stalls, or the prices and stock traders set. The bots may
    /// keep running: they reload the catalogue. Safe to run again.
    Seed {
        /// Database file (default: the config's [database] path, else ./pasar.db).
        #[arg(long, env = "PASAR_DB")]
        db: Option<PathBuf>,
        /// Seed data folder (default: the config's data_dir, else the copy in the binary).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Bring new data into a database that was seeded before (without it, only an empty
        /// database is seeded).
        #[arg(long)]
        update: bool,
    },
    /// Check the seed data in data/ and report what it holds (exit code 1 with file:line on error).
    CheckData {
        /// Seed data folder (default: the config's data_dir).
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

fn main() {
    // A missing .env is fine; a broken one is reported.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("warning: .env: {e}");
    }
    let cli = Cli::parse();
    pasar_online::logging::init(cli.log_format);
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Chat { market, script, role, user, db, now } => {
            let db = db.unwrap_or_else(|| config.database_path.clone());
            let fixed = match now {
                Some(t) => Some(
                    chrono::DateTime::parse_from_rfc3339(&t)
                        .with_context(|| format!("--now `{t}` is not an RFC 3339 time"))?
                        .with_timezone(&chrono::Utc),
                ),
                None => None,
            };
            let clock = Arc::new(ConsoleClock::fixed(fixed));
            if !matches!(role, Role::Buyer) {
                eprintln!("note: only the buyer conversation exists yet; you are chatting as a buyer.");
            }
            let open = || {
                pasar_online::runtime::open_engine(&config, &db, Arc::clone(&clock) as Arc<dyn Clock>)
                    .map_err(|e| ConsoleError::Script(format!("{e:#}")))
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            match script {
                Some(path) => {
                    let options = ScriptOptions { market, user };
                    if path == "-" {
                        let stdin = std::io::stdin();
                        run_script(&mut stdin.lock(), &mut out, &options, &clock, &open)?;
                    } else {
                        let file = std::fs::File::open(&path).with_context(|| format!("opening script {path}"))?;
                        run_script(&mut std::io::BufReader::new(file), &mut out, &options, &clock, &open)?;
                    }
                }
                None => interactive(&open, &market, role, &user, &mut out)?,
            }
            Ok(())
        }
        Command::Export { db, from, to, market, out } => {
            use pasar_online::domain::slot::{local, malang_midnight};
            let db = db.unwrap_or_else(|| config.database_path.clone());
            if !db.exists() {
                anyhow::bail!("no database at {}", db.display());
            }
            let to = to.unwrap_or_else(|| local(chrono::Utc::now()).date_naive());
            let from = from.unwrap_or(to - chrono::Duration::days(30));
            if from > to {
                anyhow::bail!("--from {from} is after --to {to}");
            }
            let start = malang_midnight(from).context("the --from day")?;
            let end = malang_midnight(to + chrono::Duration::days(1)).context("the --to day")?;
            let store = pasar_online::store::Store::open(&db).with_context(|| format!("opening {}", db.display()))?;
            let n = match &out {
                Some(path) => {
                    let mut file =
                        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
                    store.export_orders(start, end, market.as_deref(), &mut file)?
                }
                None => store.export_orders(start, end, market.as_deref(), &mut std::io::stdout().lock())?,
            };
            eprintln!("{n} orders from {from} to {to}");
            Ok(())
        }
        Command::Purge { db, older_than } => {
            let db = db.unwrap_or_else(|| config.database_path.clone());
            if !db.exists() {
                anyhow::bail!("no database at {}", db.display());
            }
            let mut store =
                pasar_online::store::Store::open(&db).with_context(|| format!("opening {}", db.display()))?;
            let older_than = older_than.unwrap_or(config.privacy_keep_days);
            let before = chrono::Utc::now() - chrono::Duration::days(i64::from(older_than));
            let key = config.policy.invite_secret.as_ref().map(|s| s.expose().to_string());
            if key.is_none() {
                eprintln!(
                    "warning: {} is not set: pseudonyms are keyed with the database's own secret, so a copy of the database can turn them back into numbers",
                    pasar_online::config::INVITE_SECRET_VARIABLE
                );
            }
            let r = store.purge(before, key.as_deref())?;
            drop(store);
            let backups = pasar_online::runtime::prune_backups(&config, &db)?;
            println!(
                "purged: {} orders' personal data, {} saved shopper profiles, {} messages, {} updates, {} WhatsApp numbers pseudonymised, {} conversation states and cart lines, {} other rows; {} pages given back; {} backups older than {} days deleted (before {})",
                r.orders,
                r.profiles,
                r.messages,
                r.updates,
                r.pseudonymised,
                r.states,
                r.other,
                r.pages_freed,
                backups,
                config.backup_keep_days,
                before.format("%Y-%m-%d %H:%M UTC")
            );
            Ok(())
        }
        Command::Loadtest(args) => pasar_online::loadtest::main(&args, &std::env::current_exe()?),
        Command::Backup { db, to } => {
            let db = db.unwrap_or_else(|| config.database_path.clone());
            if !db.exists() {
                anyhow::bail!("no database at {}", db.display());
            }
            // Opened (and migrated) first, so that a database of an older version is brought up
            // to date rather than copied as it is.
            drop(pasar_online::store::Store::open(&db).with_context(|| format!("opening {}", db.display()))?);
            let to = match to {
                Some(to) => to,
                None => {
                    let dir = pasar_online::runtime::backup_dir(&config, &db);
                    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                    dir.join(format!("pasar-{}.db", chrono::Local::now().format("%Y%m%d-%H%M%S")))
                }
            };
            let size = pasar_online::store::Store::backup_file(&db, &to)
                .with_context(|| format!("backing up to {}", to.display()))?;
            println!("backup: {} ({size} bytes, integrity_check ok)", to.display());
            let pruned = pasar_online::runtime::prune_backups(&config, &db)?;
            if pruned > 0 {
                println!("deleted {pruned} backups older than {} days ([backup] keep_days)", config.backup_keep_days);
            }
            Ok(())
        }
        Command::Run { db, check } => {
            let db = db.unwrap_or_else(|| config.database_path.clone());
            if check {
                return check_run(&config, &db);
            }
            pasar_online::runtime::run(&config, &db)
        }
        Command::Bench { journeys, concurrent, db, fill_mb, webhooks_per_sec, backup } => {
            let dir = tempfile_dir()?;
            let db = db.unwrap_or_else(|| dir.join("bench.db"));
            let around = pasar_online::bench::Around { fill_mb, webhooks_per_sec, backup };
            let report = pasar_online::bench::run_with(&config, &db, journeys, concurrent, around)?;
            println!("database:   {} (WAL, synchronous=FULL)", db.display());
            println!("{report}");
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }
        Command::Qris { static_payload, amount, png } => {
            use pasar_online::domain::qris::{StaticQris, png as qr_png, read_dynamic};
            if !(1..=1_000_000_000).contains(&amount) {
                anyhow::bail!("--amount must be between 1 and 1000000000 rupiah");
            }
            let qris = StaticQris::parse(&static_payload).context("the static QRIS payload")?;
            let dynamic = qris.dynamic(pasar_online::domain::money::Rupiah(amount));
            let read = read_dynamic(&dynamic).context("the dynamic payload")?;
            println!("merchant: {} ({})", qris.merchant_name(), qris.city());
            println!("amount:   {}", read.amount);
            println!("{dynamic}");
            if let Some(path) = png {
                let image = qr_png(&dynamic).map_err(|e| anyhow::anyhow!(e))?;
                std::fs::write(&path, image).with_context(|| format!("writing {}", path.display()))?;
                println!("QR image: {}", path.display());
            }
            Ok(())
        }
        Command::Parse { market, db, text } => {
            let db = db.unwrap_or_else(|| config.database_path.clone());
            let catalog = pasar_online::runtime::tool_catalog(&config, Some(&db))?;
            if catalog.market(&market).is_none() {
                anyhow::bail!("unknown market `{market}`");
            }
            let mut out = std::io::stdout().lock();
            let mut one = |message: &str| -> anyhow::Result<()> {
                let json = pasar_online::domain::free_text::to_json(&catalog, &market, message);
                writeln!(out, "{json}")?;
                Ok(())
            };
            if text.is_empty() {
                for line in std::io::stdin().lock().lines() {
                    one(&line?.replace("\\n", "\n"))?;
                }
            } else {
                one(&text.join(" "))?;
            }
            Ok(())
        }
        Command::Seed { db, data, update } => {
            let db = db.unwrap_or_else(|| config.database_path.clone());
            let dir = data.unwrap_or_else(|| config.data_dir.clone());
            let seed = if dir.exists() {
                SeedData::load(&dir).with_context(|| format!("loading seed data from {}", dir.display()))?
            } else {
                SeedData::builtin().context("loading the built-in seed data")?
            };
            let mut store =
                pasar_online::store::Store::open(&db).with_context(|| format!("opening database {}", db.display()))?;
            if !store.is_seeded()? {
                store.seed(&seed).context("seeding the database")?;
                println!(
                    "{}: seeded with {} markets, {} commodities, {} stalls",
                    db.display(),
                    seed.markets.len(),
                    seed.commodities.len(),
                    seed.stalls.len()
                );
                return Ok(());
            }
            if !update {
                anyhow::bail!("{} is seeded already: use --update to bring in what is new in data/", db.display());
            }
            let r = store.update_catalog(&seed).context("updating the catalogue")?;
            println!(
                "{}: {} markets, {} commodities and {} stalls added, {} offers added, {} commodities updated{}",
                db.display(),
                r.markets,
                r.commodities_added,
                r.stalls_added,
                r.offers_added,
                r.commodities_updated,
                if r.changed() { "" } else { " (nothing new)" }
            );
            Ok(())
        }
        Command::CheckData { data } => {
            let dir = data.unwrap_or(config.data_dir);
            let seed = SeedData::load(&dir)?;
            let offers: usize = seed.stalls.iter().map(|s| s.prices.len()).sum();
            println!(
                "{}: {} markets, {} commodities, {} stalls, {} offers: ok",
                dir.display(),
                seed.markets.len(),
                seed.commodities.len(),
                seed.stalls.len(),
                offers
            );
            Ok(())
        }
    }
}

/// A fresh folder under the system temp dir for the benchmark database.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("pasar-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn interactive(
    open: &dyn Fn() -> Result<pasar_online::conversation::engine::Engine, ConsoleError>,
    market: &str,
    role: Role,
    user: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut engine = open()?;
    let role_name = match role {
        Role::Buyer => "buyer",
        Role::Trader => "trader",
        Role::Courier => "courier",
        Role::Admin => "admin",
    };
    let mut user = switch_actor(&mut engine, market, &format!("{role_name} {user}"))?;
    // Files the bot sends (an admin's /ekspor) are saved where the chat was started.
    let files = std::env::current_dir()?;
    {
        let mut chat = ConsoleChat::new(&mut engine, market, &user)?.save_files_to(files.clone());
        if !chat.resume(out)? && matches!(role, Role::Buyer) {
            chat.send("/start", out)?;
        }
    }
    // Lines arrive from a reader thread, so that while nobody types the chat still shows what
    // timers and other terminals on the same database caused.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    write!(out, "> ")?;
    out.flush()?;
    loop {
        let line = match lines.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let mut shown = Vec::new();
                ConsoleChat::new(&mut engine, market, &user)?.save_files_to(files.clone()).catch_up(&mut shown)?;
                if !shown.is_empty() {
                    writeln!(out)?;
                    out.write_all(&shown)?;
                    write!(out, "> ")?;
                    out.flush()?;
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                writeln!(out)?;
                return Ok(());
            }
        };
        if let Some(spec) = line.trim().strip_prefix(":as ") {
            user = switch_actor(&mut engine, market, spec)?;
            ConsoleChat::new(&mut engine, market, &user)?.save_files_to(files.clone()).catch_up(out)?;
        } else if !line.trim().is_empty() {
            ConsoleChat::new(&mut engine, market, &user)?.save_files_to(files.clone()).send(&line, out)?;
        }
        write!(out, "> ")?;
        out.flush()?;
    }
}

/// `pasar run --check`: what would run, without running it. Fails (exit 1) when a bot whose
/// token is set would not run, so a deploy script can stop there.
fn check_run(config: &Config, db: &std::path::Path) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(pasar_online::conversation::engine::SystemClock);
    let engine = pasar_online::runtime::open_engine(config, db, clock)?;
    println!("database:  {} (ok, {} markets)", db.display(), engine.catalog().markets().len());
    println!("telegram:  {} ({:?})", config.telegram.api_url, config.telegram.mode);
    match &config.policy.invite_secret {
        Some(_) => println!("invites:   codes keyed with {}", pasar_online::config::INVITE_SECRET_VARIABLE),
        None => println!(
            "invites:   WARNING {} is not set: the secret that keys invite codes is kept in the database",
            pasar_online::config::INVITE_SECRET_VARIABLE
        ),
    }
    if config.policy.payment.samples {
        println!("payment:   SAMPLE QRIS merchant and bank account (set [payment] before taking real money)");
    }
    match pasar_online::runtime::bank_plan(config) {
        Ok(Some(plan)) => println!("payment:   virtual accounts through {}", plan.url),
        Ok(None) => {}
        Err(e) => println!("payment:   virtual accounts will NOT run: {e}"),
    }
    let plans = pasar_online::runtime::telegram_plan(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let url = reqwest::Url::parse(&config.telegram.api_url)?;
    println!("{:<14} {:<38} bot", "market", "token variable");
    let mut failed = Vec::new();
    for plan in plans {
        let status = match &plan.token {
            None => "not set: skipped".to_string(),
            Some(token) => {
                let bot = teloxide::Bot::new(token.expose()).set_api_url(url.clone());
                match runtime.block_on(async {
                    tokio::time::timeout(std::time::Duration::from_secs(15), teloxide::prelude::Requester::get_me(&bot))
                        .await
                }) {
                    Ok(Ok(me)) => {
                        // A webhook left at Telegram by a deployment in webhook mode: a polling
                        // bot deletes it at start (getUpdates answers 409 while it is set).
                        let info = runtime.block_on(async {
                            tokio::time::timeout(
                                std::time::Duration::from_secs(15),
                                teloxide::prelude::Requester::get_webhook_info(&bot),
                            )
                            .await
                        });
                        let set = match info {
                            Ok(Ok(info)) => info.url.map(|u| u.to_string()),
                            _ => None,
                        };
                        match (config.telegram.mode, set) {
                            (pasar_online::config::TelegramMode::Polling, Some(url)) => format!(
                                "@{} ok, but a webhook is still set ({url}): polling deletes it at start",
                                me.username()
                            ),
                            _ => format!("@{} ok", me.username()),
                        }
                    }
                    Ok(Err(e)) => {
                        failed.push(format!("the Telegram bot of {}", plan.market));
                        format!("getMe failed: {e}")
                    }
                    Err(_) => {
                        failed.push(format!("the Telegram bot of {}", plan.market));
                        "getMe timed out".to_string()
                    }
                }
            }
        };
        println!("{:<14} {:<38} {}", plan.market, plan.token_variable, status);
    }
    let markets: Vec<String> = engine.catalog().markets().iter().map(|m| m.slug.clone()).collect();
    println!("whatsapp:  {}", config.whatsapp.graph_url);
    let whatsapp = pasar_online::runtime::whatsapp_plan(config, &markets);
    for slug in &markets {
        let status = match (config.whatsapp.phone_numbers.get(slug), &whatsapp) {
            (None, _) => "no whatsapp_phone_number_id: skipped".to_string(),
            (Some(id), Ok(Some(_))) => format!("number {id} ok"),
            (Some(id), Err(e)) => format!("number {id}: {e}"),
            (Some(id), Ok(None)) => format!("number {id}"),
        };
        println!("{slug:<14} {status}");
    }
    if let Err(e) = whatsapp {
        failed.push(format!("WhatsApp ({e})"));
    }
    match pasar_online::runtime::vendor_plan(config) {
        Ok(None) => println!("delivery:  every market's own couriers"),
        Ok(Some(plan)) => {
            let markets: Vec<&str> = plan.markets.iter().map(String::as_str).collect();
            println!("delivery:  vendor {} for {} (callbacks at /delivery/vendor)", plan.url, markets.join(", "));
        }
        Err(e) => {
            println!("delivery:  vendor: {e}");
            failed.push(format!("the delivery vendor ({e})"));
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("{} would not run (see above)", failed.join(", "));
    }
    Ok(())
}
