//! Configuration: an optional `config.toml` plus the environment (`.env` read with dotenvy).
//! Everything has a default, so `pasar chat` runs with no config file and no tokens.
//! See `config.example.toml` for every setting.

use crate::channel::UserKey;
use crate::text::Lang;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
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
    #[serde(default)]
    orders: RawOrders,
    #[serde(default)]
    delivery: RawDelivery,
    #[serde(default)]
    payment: RawPayment,
    #[serde(default)]
    backup: RawBackup,
    #[serde(default)]
    privacy: RawPrivacy,
    #[serde(default)]
    inbound: RawInbound,
    #[serde(default)]
    markets: std::collections::BTreeMap<String, RawMarket>,
    #[serde(default)]
    admins: Vec<RawAdmin>,
    #[serde(default)]
    telegram: RawTelegram,
    #[serde(default)]
    whatsapp: RawWhatsApp,
    #[serde(default)]
    server: RawServer,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhatsApp {
    graph_url: Option<String>,
    timeout_secs: Option<u64>,
    #[serde(default)]
    limits: RawWhatsAppLimits,
    #[serde(default)]
    templates: std::collections::BTreeMap<String, RawTemplate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    name: String,
    language: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhatsAppLimits {
    per_number_per_sec: Option<f64>,
    per_user_interval_secs: Option<f64>,
    per_user_burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelegram {
    api_url: Option<String>,
    mode: Option<String>,
    public_url: Option<String>,
    listen: Option<String>,
    poll_timeout_secs: Option<u32>,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    per_chat_per_sec: Option<f64>,
    per_bot_per_sec: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    ops_listen: Option<String>,
    header_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrders {
    trader_deadline_minutes: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    offer_timeout_minutes: Option<u32>,
    lead_minutes: Option<u32>,
    vendor_url: Option<String>,
    vendor_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMarket {
    trader_deadline_minutes: Option<u32>,
    /// `couriers` (the market's own, the default) or `vendor`.
    delivery: Option<String>,
    /// The market's static QRIS payload, from its bank.
    qris: Option<String>,
    /// The market's own account for transfers (all three, or none for the city's).
    transfer_bank: Option<String>,
    transfer_account: Option<String>,
    transfer_holder: Option<String>,
    whatsapp_phone_number_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    dir: Option<PathBuf>,
    keep_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInbound {
    per_user_messages: Option<u32>,
    per_user_window_secs: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrivacy {
    keep_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPayment {
    expiry_minutes: Option<u32>,
    reminder_minutes: Option<u32>,
    qris: Option<String>,
    transfer_bank: Option<String>,
    transfer_account: Option<String>,
    transfer_holder: Option<String>,
    va_url: Option<String>,
    va_bank: Option<String>,
    va_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    channel: String,
    user: String,
    #[serde(default)]
    markets: Vec<String>,
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
    /// Order rules and who administers what.
    pub policy: Policy,
    pub telegram: TelegramConfig,
    pub whatsapp: WhatsAppConfig,
    /// The outside delivery vendor's API (`delivery.vendor_url`), for markets that use one.
    pub vendor_url: Option<String>,
    pub vendor_timeout: std::time::Duration,
    /// The bank partner's payment API (`payment.va_url`), for virtual accounts.
    pub bank_url: Option<String>,
    pub bank_timeout: std::time::Duration,
    /// Where backups go (`[backup] dir`; relative to the database's folder).
    pub backup_dir: PathBuf,
    /// Backups older than this many days are deleted by `pasar backup` and `pasar purge`
    /// (`[backup] keep_days`): a backup must not keep what a purge removed.
    pub backup_keep_days: u32,
    /// `pasar purge` without `--older-than` removes the personal data of what finished this
    /// many days ago (`[privacy] keep_days`).
    pub privacy_keep_days: u32,
    /// Address of the public HTTP server (webhooks, a bare `/healthz`); `[server] listen`.
    pub server_listen: Option<String>,
    /// Address of the operators' server (`/healthz` with detail, `/metrics`); `[server]
    /// ops_listen`, [`DEFAULT_OPS_LISTEN`] when the public server runs, none with `"off"`.
    pub ops_listen: Option<String>,
    /// Timeouts and the connection limit of both servers.
    pub http_limits: HttpLimits,
}

/// The operators' listener when `[server] ops_listen` is not given: loopback only.
pub const DEFAULT_OPS_LISTEN: &str = "127.0.0.1:9464";

/// The limits of one listener (`[server]` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time to send a request's headers, and to start the next request on a kept-alive
    /// connection.
    pub header_timeout: std::time::Duration,
    /// Time to send a request's body once its headers came.
    pub body_timeout: std::time::Duration,
    /// Time for the whole answer (a request still waiting for the store then gets 408, and
    /// the platform delivers it again).
    pub request_timeout: std::time::Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    /// Meta delivers a webhook again when it gets no 200 within about 20 s, Midtrans within
    /// about 10-15 s: a webhook is stored within milliseconds, so the limits sit well inside
    /// those, and leave room for a few hundred senders at once.
    fn default() -> HttpLimits {
        HttpLimits {
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(10),
            request_timeout: std::time::Duration::from_secs(15),
            max_connections: 512,
        }
    }
}

/// How updates reach the bots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelegramMode {
    Polling,
    Webhook,
}

/// `[telegram]`: where the Bot API is and how fast the bots may talk.
#[derive(Debug, Clone, PartialEq)]
pub struct TelegramConfig {
    /// The Bot API server (a local Bot API server, or a fake in tests).
    pub api_url: String,
    pub mode: TelegramMode,
    pub public_url: Option<String>,
    /// Seconds a `getUpdates` long poll waits for news.
    pub poll_timeout_secs: u32,
    /// Telegram's limits: about one message a second per chat, thirty per bot.
    pub per_chat_per_sec: f64,
    pub per_bot_per_sec: f64,
}

impl Default for TelegramConfig {
    fn default() -> TelegramConfig {
        TelegramConfig {
            api_url: "https://api.telegram.org".into(),
            mode: TelegramMode::Polling,
            public_url: None,
            poll_timeout_secs: 25,
            per_chat_per_sec: 1.0,
            per_bot_per_sec: 30.0,
        }
    }
}

/// `[whatsapp]` and each market's `whatsapp_phone_number_id`. The access token, app secret and
/// verify token come from the environment only (see [`crate::runtime`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WhatsAppConfig {
    /// The Graph API with its version; requests go to `{graph_url}/{phone_number_id}/messages`.
    pub graph_url: String,
    /// Market slug -> the WhatsApp Business phone number id that is its bot.
    pub phone_numbers: std::collections::BTreeMap<String, String>,
    /// WhatsApp's limits: 80 messages a second per number; to one user about one every six
    /// seconds, with short bursts allowed.
    pub per_number_per_sec: f64,
    pub per_user_interval: std::time::Duration,
    pub per_user_burst: u32,
    /// How long one Graph API call may take before it is given up and retried.
    pub timeout: std::time::Duration,
    /// Approved message templates per kind of notification, for users whose 24-hour window
    /// has closed. A kind without one is held until the user writes again (admins are told).
    pub templates: std::collections::BTreeMap<crate::channel::NoticeKind, Template>,
}

/// An approved WhatsApp message template with one body parameter (the notification's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    /// The template's language code as approved (`id`, `en_US`...).
    pub language: String,
}

/// The Graph API version the requests are written for.
pub const GRAPH_API: &str = "https://graph.facebook.com/v21.0";

impl Default for WhatsAppConfig {
    fn default() -> WhatsAppConfig {
        WhatsAppConfig {
            graph_url: GRAPH_API.into(),
            phone_numbers: Default::default(),
            per_number_per_sec: 80.0,
            per_user_interval: std::time::Duration::from_secs(6),
            per_user_burst: 5,
            timeout: std::time::Duration::from_secs(30),
            templates: Default::default(),
        }
    }
}

/// An admin named in the config: of the listed markets, or of every market (a city admin) when
/// none are listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminEntry {
    pub user: UserKey,
    pub markets: Vec<String>,
}

/// Rules the conversations follow, from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// How long a trader has to answer a new order before a reminder (then the admin is told,
    /// then the stall's part is cancelled, at half this interval each).
    pub trader_deadline: chrono::Duration,
    pub market_deadlines: std::collections::BTreeMap<String, chrono::Duration>,
    /// How long a courier has to take an offered delivery before the next one is asked.
    pub courier_offer_timeout: chrono::Duration,
    /// How long before its slot starts an order is offered to a courier even if some stall is
    /// still packing.
    pub courier_lead: chrono::Duration,
    /// Markets whose deliveries go to the outside vendor instead of their own couriers.
    pub vendor_markets: std::collections::BTreeSet<String>,
    pub admins: Vec<AdminEntry>,
    /// Keys invite codes (env `PASAR_INVITE_SECRET`); without it the database's own random
    /// secret is used.
    pub invite_secret: Option<crate::secret::Secret>,
    pub payment: PaymentPolicy,
    /// How many messages one person may send in how long before the rest are skipped
    /// (`[inbound]`).
    pub flood: FloodRule,
}

/// The flood rule: past `messages` within `window` from one person on a chat platform, their
/// messages are stored but not worked or answered, with one polite word per burst, until they
/// pause for a whole window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodRule {
    pub messages: u32,
    pub window: chrono::Duration,
}

impl Default for FloodRule {
    fn default() -> FloodRule {
        FloodRule { messages: 20, window: chrono::Duration::seconds(10) }
    }
}

/// How shoppers pay: the deadlines and where the money goes.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentPolicy {
    /// How long a shopper has to pay once asked; then the order is cancelled.
    pub expiry: chrono::Duration,
    /// How long before the expiry the reminder goes.
    pub reminder_before: chrono::Duration,
    /// The city's static QRIS, for markets without their own (`None`: no QRIS).
    pub qris: Option<crate::domain::qris::StaticQris>,
    pub market_qris: std::collections::BTreeMap<String, crate::domain::qris::StaticQris>,
    /// The city's account for transfers, for markets without their own (`None`: no transfers).
    pub transfer: Option<crate::domain::payment::BankAccount>,
    pub market_transfer: std::collections::BTreeMap<String, crate::domain::payment::BankAccount>,
    /// The bank that issues virtual accounts through the bank partner's API (`[payment] va_url`);
    /// `None`: no virtual accounts.
    pub va_bank: Option<String>,
    /// The embedded sample merchant and account are in use (no `[payment]` data): fine for
    /// trying it out, never for real money. `pasar run` warns.
    pub samples: bool,
}

impl Default for PaymentPolicy {
    fn default() -> PaymentPolicy {
        PaymentPolicy {
            expiry: chrono::Duration::minutes(60),
            reminder_before: chrono::Duration::minutes(15),
            qris: crate::domain::qris::StaticQris::parse(&crate::domain::qris::city_sample()).ok(),
            market_qris: Default::default(),
            transfer: Some(crate::domain::payment::BankAccount::sample()),
            market_transfer: Default::default(),
            va_bank: None,
            samples: true,
        }
    }
}

impl PaymentPolicy {
    pub fn qris_of(&self, market: &str) -> Option<&crate::domain::qris::StaticQris> {
        self.market_qris.get(market).or(self.qris.as_ref())
    }

    pub fn transfer_to(&self, market: &str) -> Option<&crate::domain::payment::BankAccount> {
        self.market_transfer.get(market).or(self.transfer.as_ref())
    }

    /// The methods a shopper of this market may choose, in the order they are offered.
    pub fn methods(&self, market: &str) -> Vec<crate::domain::order::PaymentMethod> {
        use crate::domain::order::PaymentMethod;
        PaymentMethod::ALL
            .into_iter()
            .filter(|m| match m {
                PaymentMethod::Qris => self.qris_of(market).is_some(),
                PaymentMethod::Transfer => self.transfer_to(market).is_some(),
                PaymentMethod::VirtualAccount => self.va_bank.is_some(),
                PaymentMethod::CashOnDelivery => true,
            })
            .collect()
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            trader_deadline: chrono::Duration::minutes(10),
            market_deadlines: Default::default(),
            courier_offer_timeout: chrono::Duration::minutes(5),
            courier_lead: chrono::Duration::minutes(30),
            vendor_markets: Default::default(),
            admins: Vec::new(),
            invite_secret: None,
            payment: PaymentPolicy::default(),
            flood: FloodRule::default(),
        }
    }
}

impl Policy {
    pub fn trader_deadline(&self, market: &str) -> chrono::Duration {
        self.market_deadlines.get(market).copied().unwrap_or(self.trader_deadline)
    }

    /// Admins of `market` named in the config.
    pub fn config_admins(&self, market: &str) -> impl Iterator<Item = &UserKey> {
        self.admins
            .iter()
            .filter(move |a| a.markets.is_empty() || a.markets.iter().any(|m| m == market))
            .map(|a| &a.user)
    }

    /// Whether the market's deliveries go to the outside vendor.
    pub fn uses_vendor(&self, market: &str) -> bool {
        self.vendor_markets.contains(market)
    }

    /// A city admin: named in the config for every market (the city trade office).
    pub fn is_city_admin(&self, user: &UserKey) -> bool {
        self.admins.iter().any(|a| a.markets.is_empty() && &a.user == user)
    }

    pub fn is_config_admin(&self, market: &str, user: &UserKey) -> bool {
        self.config_admins(market).any(|u| u == user)
    }
}

/// A bank account number as banks print it: digits, maybe grouped with spaces or dashes.
fn is_account_number(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    (6..=20).contains(&digits) && s.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
}

/// A folder given relative to the working directory, or else the one shipped in the source tree,
/// so `cargo run` works from anywhere in the checkout.
fn shipped(dir: &Path) -> PathBuf {
    if dir.is_absolute() || dir.exists() {
        return dir.to_path_buf();
    }
    let in_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    if in_tree.exists() { in_tree } else { dir.to_path_buf() }
}

/// The invite-code secret from the environment, if set (never from a file).
fn secret_from_env() -> Option<crate::secret::Secret> {
    crate::secret::Secret::from_env(INVITE_SECRET_VARIABLE, None)
}

/// The environment variable holding the invite-code secret.
pub const INVITE_SECRET_VARIABLE: &str = "PASAR_INVITE_SECRET";

impl Default for Config {
    fn default() -> Config {
        Config {
            database_path: PathBuf::from("pasar.db"),
            default_language: Lang::Id,
            data_dir: shipped(Path::new("data")),
            dialogues_dir: shipped(Path::new("dialogues")),
            policy: Policy { invite_secret: secret_from_env(), ..Policy::default() },
            telegram: TelegramConfig::default(),
            whatsapp: WhatsAppConfig::default(),
            vendor_url: None,
            vendor_timeout: std::time::Duration::from_secs(10),
            bank_url: None,
            bank_timeout: std::time::Duration::from_secs(15),
            backup_dir: PathBuf::from("backups"),
            backup_keep_days: 30,
            privacy_keep_days: 90,
            server_listen: None,
            ops_listen: None,
            http_limits: HttpLimits::default(),
        }
    }
}

impl Config {
    /// Reads `path` if given; no path means all defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: path.to_path_buf(), message };
        let raw: RawConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let defaults = Config::default();
        let default_language = match raw.general.default_language {
            None => defaults.default_language,
            Some(code) => Lang::from_code(&code)
                .ok_or_else(|| invalid(format!("default_language `{code}` must be `id` or `en`")))?,
        };
        let minutes = |m: u32, what: &str| {
            if (1..=24 * 60).contains(&m) {
                Ok(chrono::Duration::minutes(i64::from(m)))
            } else {
                Err(invalid(format!("{what} must be between 1 and 1440 minutes")))
            }
        };
        let mut policy = defaults.policy.clone();
        match raw.inbound.per_user_messages {
            Some(n @ 1..=10_000) => policy.flood.messages = n,
            Some(_) => return Err(invalid("inbound.per_user_messages must be between 1 and 10000".into())),
            None => {}
        }
        match raw.inbound.per_user_window_secs {
            Some(s @ 1..=3600) => policy.flood.window = chrono::Duration::seconds(i64::from(s)),
            Some(_) => return Err(invalid("inbound.per_user_window_secs must be between 1 and 3600".into())),
            None => {}
        }
        if let Some(m) = raw.orders.trader_deadline_minutes {
            policy.trader_deadline = minutes(m, "orders.trader_deadline_minutes")?;
        }
        if let Some(m) = raw.delivery.offer_timeout_minutes {
            policy.courier_offer_timeout = minutes(m, "delivery.offer_timeout_minutes")?;
        }
        if let Some(m) = raw.delivery.lead_minutes {
            policy.courier_lead = minutes(m, "delivery.lead_minutes")?;
        }
        let mut whatsapp = WhatsAppConfig::default();
        let vendor_url = match raw.delivery.vendor_url {
            Some(url) => {
                reqwest::Url::parse(&url).map_err(|e| invalid(format!("delivery.vendor_url `{url}`: {e}")))?;
                Some(url.trim_end_matches('/').to_string())
            }
            None => None,
        };
        let vendor_timeout = match raw.delivery.vendor_timeout_secs {
            None => std::time::Duration::from_secs(10),
            Some(s) if (1..=120).contains(&s) => std::time::Duration::from_secs(s),
            Some(_) => return Err(invalid("delivery.vendor_timeout_secs must be between 1 and 120".into())),
        };
        let account = |bank: Option<String>, number: Option<String>, holder: Option<String>, at: &str| match (
            bank, number, holder,
        ) {
            (None, None, None) => Ok(None),
            (Some(bank), Some(number), Some(holder))
                if !bank.trim().is_empty() && !holder.trim().is_empty() && is_account_number(&number) =>
            {
                Ok(Some(crate::domain::payment::BankAccount { bank, number, holder }))
            }
            _ => Err(invalid(format!("{at}transfer_bank, transfer_account (digits) and transfer_holder go together"))),
        };
        let pay = &mut policy.payment;
        if let Some(m) = raw.payment.expiry_minutes {
            pay.expiry = minutes(m, "payment.expiry_minutes")?;
        }
        if let Some(m) = raw.payment.reminder_minutes {
            pay.reminder_before = minutes(m, "payment.reminder_minutes")?;
        }
        if pay.reminder_before >= pay.expiry {
            return Err(invalid("payment.reminder_minutes must be less than payment.expiry_minutes".into()));
        }
        let city_account =
            account(raw.payment.transfer_bank, raw.payment.transfer_account, raw.payment.transfer_holder, "payment.")?;
        if raw.payment.qris.is_some() || city_account.is_some() || raw.payment.va_url.is_some() {
            // The operator gave the city's payment data: no sample stands in for a missing part.
            pay.samples = false;
            pay.qris = None;
            pay.transfer = city_account;
        }
        let bank_url = match raw.payment.va_url {
            Some(url) => {
                reqwest::Url::parse(&url).map_err(|e| invalid(format!("payment.va_url `{url}`: {e}")))?;
                let bank = raw.payment.va_bank.unwrap_or_else(|| "bni".into()).to_lowercase();
                if !["bni", "bri", "bca", "permata", "cimb"].contains(&bank.as_str()) {
                    return Err(invalid(format!(
                        "payment.va_bank `{bank}` must be one of bni, bri, bca, permata, cimb"
                    )));
                }
                pay.va_bank = Some(bank);
                Some(url.trim_end_matches('/').to_string())
            }
            None if raw.payment.va_bank.is_some() => {
                return Err(invalid("payment.va_bank needs payment.va_url".into()));
            }
            None => None,
        };
        let bank_timeout = match raw.payment.va_timeout_secs {
            None => std::time::Duration::from_secs(15),
            Some(s) if (1..=120).contains(&s) => std::time::Duration::from_secs(s),
            Some(_) => return Err(invalid("payment.va_timeout_secs must be between 1 and 120".into())),
        };
        if let Some(payload) = &raw.payment.qris {
            pay.qris = Some(
                crate::domain::qris::StaticQris::parse(payload).map_err(|e| invalid(format!("payment.qris: {e}")))?,
            );
        }
        for (slug, market) in raw.markets {
            if let Some(payload) = &market.qris {
                let parsed = crate::domain::qris::StaticQris::parse(payload)
                    .map_err(|e| invalid(format!("markets.{slug}.qris: {e}")))?;
                policy.payment.market_qris.insert(slug.clone(), parsed);
            }
            if let Some(a) = account(
                market.transfer_bank,
                market.transfer_account,
                market.transfer_holder,
                &format!("markets.{slug}."),
            )? {
                policy.payment.market_transfer.insert(slug.clone(), a);
            }
            match market.delivery.as_deref() {
                None | Some("couriers") => {}
                Some("vendor") if vendor_url.is_some() => {
                    policy.vendor_markets.insert(slug.clone());
                }
                Some("vendor") => {
                    return Err(invalid(format!("markets.{slug}.delivery = \"vendor\" needs delivery.vendor_url")));
                }
                Some(other) => {
                    return Err(invalid(format!(
                        "markets.{slug}.delivery must be \"couriers\" or \"vendor\", not `{other}`"
                    )));
                }
            }
            if let Some(m) = market.trader_deadline_minutes {
                let d = minutes(m, &format!("markets.{slug}.trader_deadline_minutes"))?;
                policy.market_deadlines.insert(slug.clone(), d);
            }
            if let Some(id) = market.whatsapp_phone_number_id {
                if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                    return Err(invalid(format!(
                        "markets.{slug}.whatsapp_phone_number_id must be the number's id (digits)"
                    )));
                }
                if let Some((other, _)) = whatsapp.phone_numbers.iter().find(|(_, v)| **v == id) {
                    return Err(invalid(format!("markets {other} and {slug} have the same whatsapp_phone_number_id")));
                }
                whatsapp.phone_numbers.insert(slug, id);
            }
        }
        if let Some(url) = raw.whatsapp.graph_url {
            reqwest::Url::parse(&url).map_err(|e| invalid(format!("whatsapp.graph_url `{url}`: {e}")))?;
            whatsapp.graph_url = url.trim_end_matches('/').to_string();
        }
        if let Some(v) = raw.whatsapp.limits.per_number_per_sec {
            if !(v > 0.0 && v <= 10_000.0) {
                return Err(invalid("whatsapp.limits.per_number_per_sec must be above 0 and at most 10000".into()));
            }
            whatsapp.per_number_per_sec = v;
        }
        if let Some(v) = raw.whatsapp.limits.per_user_interval_secs {
            if !(0.0..=3600.0).contains(&v) {
                return Err(invalid("whatsapp.limits.per_user_interval_secs must be between 0 and 3600".into()));
            }
            whatsapp.per_user_interval = std::time::Duration::from_secs_f64(v);
        }
        if let Some(t) = raw.whatsapp.timeout_secs {
            if !(1..=300).contains(&t) {
                return Err(invalid("whatsapp.timeout_secs must be between 1 and 300".into()));
            }
            whatsapp.timeout = std::time::Duration::from_secs(t);
        }
        for (kind, t) in raw.whatsapp.templates {
            let Some(k) = crate::channel::NoticeKind::ALL.into_iter().find(|k| k.code() == kind) else {
                let kinds: Vec<&str> = crate::channel::NoticeKind::ALL.iter().map(|k| k.code()).collect();
                return Err(invalid(format!("whatsapp.templates.{kind}: the kinds are {}", kinds.join(", "))));
            };
            if t.name.trim().is_empty() || t.language.trim().is_empty() {
                return Err(invalid(format!("whatsapp.templates.{kind} needs a name and a language")));
            }
            whatsapp.templates.insert(k, Template { name: t.name, language: t.language });
        }
        if let Some(v) = raw.whatsapp.limits.per_user_burst {
            if v == 0 {
                return Err(invalid("whatsapp.limits.per_user_burst must be at least 1".into()));
            }
            whatsapp.per_user_burst = v;
        }
        for a in raw.admins {
            let channel = a.channel.parse().map_err(invalid)?;
            if a.user.trim().is_empty() {
                return Err(invalid("an admin needs a user id".into()));
            }
            policy.admins.push(AdminEntry { user: UserKey { channel, id: a.user }, markets: a.markets });
        }
        let mut telegram = TelegramConfig::default();
        if let Some(url) = raw.telegram.api_url {
            reqwest::Url::parse(&url).map_err(|e| invalid(format!("telegram.api_url `{url}`: {e}")))?;
            telegram.api_url = url;
        }
        telegram.mode = match raw.telegram.mode.as_deref() {
            None | Some("polling") => TelegramMode::Polling,
            Some("webhook") => TelegramMode::Webhook,
            Some(other) => {
                return Err(invalid(format!("telegram.mode `{other}` must be `polling` or `webhook`")));
            }
        };
        telegram.public_url = raw.telegram.public_url;
        if let Some(t) = raw.telegram.poll_timeout_secs {
            if t > 50 {
                return Err(invalid("telegram.poll_timeout_secs must be at most 50".into()));
            }
            telegram.poll_timeout_secs = t;
        }
        for (value, name, target) in [
            (raw.telegram.limits.per_chat_per_sec, "per_chat_per_sec", &mut telegram.per_chat_per_sec),
            (raw.telegram.limits.per_bot_per_sec, "per_bot_per_sec", &mut telegram.per_bot_per_sec),
        ] {
            if let Some(v) = value {
                if !(v > 0.0 && v <= 10_000.0) {
                    return Err(invalid(format!("telegram.limits.{name} must be above 0 and at most 10000")));
                }
                *target = v;
            }
        }
        let server_listen = raw.telegram.listen.or(raw.server.listen);
        let privacy_keep_days = match raw.privacy.keep_days {
            Some(d @ 1..=3650) => d,
            Some(_) => return Err(invalid("privacy.keep_days must be between 1 and 3650".into())),
            None => defaults.privacy_keep_days,
        };
        let backup_keep_days = match raw.backup.keep_days {
            Some(d @ 1..=3650) => d,
            Some(_) => return Err(invalid("backup.keep_days must be between 1 and 3650".into())),
            None => defaults.backup_keep_days.min(privacy_keep_days),
        };
        let ops_listen = match raw.server.ops_listen {
            Some(off) if off.trim().eq_ignore_ascii_case("off") => None,
            Some(address) => Some(address),
            None => server_listen.as_ref().map(|_| DEFAULT_OPS_LISTEN.to_string()),
        };
        let mut http_limits = HttpLimits::default();
        for (value, name, target) in [
            (raw.server.header_timeout_secs, "header_timeout_secs", &mut http_limits.header_timeout),
            (raw.server.body_timeout_secs, "body_timeout_secs", &mut http_limits.body_timeout),
            (raw.server.request_timeout_secs, "request_timeout_secs", &mut http_limits.request_timeout),
        ] {
            match value {
                Some(v @ 1..=300) => *target = std::time::Duration::from_secs(v),
                Some(_) => return Err(invalid(format!("server.{name} must be between 1 and 300"))),
                None => {}
            }
        }
        match raw.server.max_connections {
            Some(n @ 1..=100_000) => http_limits.max_connections = n,
            Some(_) => return Err(invalid("server.max_connections must be between 1 and 100000".into())),
            None => {}
        }
        Ok(Config {
            telegram,
            whatsapp,
            vendor_url,
            vendor_timeout,
            bank_url,
            bank_timeout,
            backup_dir: raw.backup.dir.unwrap_or(defaults.backup_dir),
            backup_keep_days,
            privacy_keep_days,
            server_listen,
            ops_listen,
            http_limits,
            policy,
            database_path: raw.database.path.unwrap_or(defaults.database_path),
            default_language,
            data_dir: raw.general.data_dir.map(|d| shipped(&d)).unwrap_or(defaults.data_dir),
            dialogues_dir: raw.general.dialogues_dir.map(|d| shipped(&d)).unwrap_or(defaults.dialogues_dir),
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
    fn the_operators_listener_is_loopback_by_default_and_the_http_limits_are_checked() {
        let parse = |text: &str| Config::parse(text, Path::new("t.toml"));
        let none = parse("").expect("empty");
        assert_eq!((none.server_listen, none.ops_listen), (None, None));
        let public = parse("[server]\nlisten = \"0.0.0.0:8080\"\n").expect("listen");
        assert_eq!(public.ops_listen.as_deref(), Some(DEFAULT_OPS_LISTEN));
        assert!(DEFAULT_OPS_LISTEN.starts_with("127.0.0.1:"));
        let off = parse("[server]\nlisten = \"0.0.0.0:8080\"\nops_listen = \"off\"\n").expect("off");
        assert_eq!(off.ops_listen, None);
        let limits = parse("[server]\nheader_timeout_secs = 3\nmax_connections = 7\n").expect("limits").http_limits;
        assert_eq!(limits.header_timeout, std::time::Duration::from_secs(3));
        assert_eq!(limits.max_connections, 7);
        assert_eq!(limits.body_timeout, HttpLimits::default().body_timeout);
        assert!(parse("[server]\nheader_timeout_secs = 0\n").is_err());
        assert!(parse("[server]\nmax_connections = 0\n").is_err());
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
        let c =
            Config::parse("[general]\ndefault_language = \"en\"\n[database]\npath = \"/tmp/x.db\"\n", p).expect("ok");
        assert_eq!(c.default_language, Lang::En);
        assert_eq!(c.database_path, PathBuf::from("/tmp/x.db"));
    }

    #[test]
    fn order_rules_and_admins() {
        let p = Path::new("x.toml");
        let text = "[orders]\ntrader_deadline_minutes = 15\n[markets.dinoyo]\ntrader_deadline_minutes = 5\n\
                    [[admins]]\nchannel = \"telegram\"\nuser = \"42\"\nmarkets = [\"dinoyo\"]\n\
                    [[admins]]\nchannel = \"whatsapp\"\nuser = \"6281234567890\"\n";
        let c = Config::parse(text, p).expect("valid");
        assert_eq!(c.policy.trader_deadline("blimbing"), chrono::Duration::minutes(15));
        assert_eq!(c.policy.trader_deadline("dinoyo"), chrono::Duration::minutes(5));
        let tg = UserKey { channel: crate::channel::ChannelKind::Telegram, id: "42".into() };
        let wa = UserKey { channel: crate::channel::ChannelKind::WhatsApp, id: "6281234567890".into() };
        assert!(c.policy.is_config_admin("dinoyo", &tg) && !c.policy.is_config_admin("blimbing", &tg));
        assert!(c.policy.is_config_admin("blimbing", &wa), "no markets listed: a city admin");
        assert!(Config::parse("[orders]\ntrader_deadline_minutes = 0\n", p).is_err());
        let d = Config::parse("[delivery]\noffer_timeout_minutes = 3\nlead_minutes = 45\n", p).expect("parses");
        assert_eq!(d.policy.courier_offer_timeout, chrono::Duration::minutes(3));
        assert_eq!(d.policy.courier_lead, chrono::Duration::minutes(45));
        assert_eq!(Config::default().policy.courier_offer_timeout, chrono::Duration::minutes(5));
        assert!(Config::parse("[delivery]\noffer_timeout_minutes = 0\n", p).is_err());
        let v = Config::parse(
            "[delivery]\nvendor_url = \"http://127.0.0.1:9/v1/\"\n[markets.sukun]\ndelivery = \"vendor\"\n",
            p,
        )
        .expect("parses");
        assert_eq!(v.vendor_url.as_deref(), Some("http://127.0.0.1:9/v1"));
        assert!(v.policy.uses_vendor("sukun") && !v.policy.uses_vendor("blimbing"));
        assert!(Config::parse("[markets.sukun]\ndelivery = \"vendor\"\n", p).is_err(), "a vendor needs its url");
        assert!(Config::parse("[markets.sukun]\ndelivery = \"drone\"\n", p).is_err());
        assert!(Config::parse("[delivery]\nvendor_url = \"not a url\"\n", p).is_err());
        let good = crate::domain::qris::sample_static();
        let q = Config::parse(&format!("[markets.blimbing]\nqris = \"{good}\"\n"), p).expect("a good QRIS");
        assert_eq!(q.policy.payment.qris_of("blimbing").map(|s| s.merchant_name()), Some("PASAR BLIMBING MALANG"));
        let tampered = good.replacen("MALANG", "MALANK", 1);
        let va = Config::parse("[payment]\nva_url = \"https://api.sandbox.midtrans.com/\"\n", p).expect("va");
        assert_eq!(va.bank_url.as_deref(), Some("https://api.sandbox.midtrans.com"));
        assert_eq!(va.policy.payment.va_bank.as_deref(), Some("bni"));
        use crate::domain::order::PaymentMethod;
        assert_eq!(
            va.policy.payment.methods("blimbing"),
            [PaymentMethod::VirtualAccount, PaymentMethod::CashOnDelivery],
            "real payment data given: no sample stands in"
        );
        assert!(Config::parse("[payment]\nva_bank = \"bni\"\n", p).is_err(), "a bank without the API");
        assert!(Config::parse("[payment]\nva_url = \"x\"\nva_bank = \"bni\"\n", p).is_err());
        assert!(Config::parse("[payment]\nva_url = \"https://b.id\"\nva_bank = \"jago\"\n", p).is_err());
        let e = Config::parse(&format!("[markets.blimbing]\nqris = \"{tampered}\"\n"), p).expect_err("refused");
        assert!(e.to_string().contains("markets.blimbing.qris: CRC mismatch"), "{e}");
        assert!(Config::parse("[[admins]]\nchannel = \"fax\"\nuser = \"1\"\n", p).is_err());
    }
}
