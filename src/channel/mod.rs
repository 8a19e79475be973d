//! Channels are pipes. Each one turns platform messages into [`Inbound`] events for the inbox and
//! renders [`Outbound`] messages from the outbox back onto the platform. No channel decides
//! anything about shopping; that is the conversation core's job.

pub mod chart;
pub mod console;
pub mod telegram;
pub mod whatsapp;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A chat platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChannelKind {
    Console,
    Telegram,
    WhatsApp,
}

impl ChannelKind {
    pub fn code(self) -> &'static str {
        match self {
            ChannelKind::Console => "console",
            ChannelKind::Telegram => "telegram",
            ChannelKind::WhatsApp => "whatsapp",
        }
    }
}

impl FromStr for ChannelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "console" => Ok(ChannelKind::Console),
            "telegram" => Ok(ChannelKind::Telegram),
            "whatsapp" => Ok(ChannelKind::WhatsApp),
            other => Err(format!("unknown channel `{other}`")),
        }
    }
}

/// A person on one channel: the Telegram user id, the WhatsApp number, the console user name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserKey {
    pub channel: ChannelKind,
    pub id: String,
}

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.channel.code(), self.id)
    }
}

impl UserKey {
    /// The person as a log line may name them: a WhatsApp id is a phone number (of any
    /// country, which no pattern can tell from a Telegram chat id), so it is logged as a
    /// pseudonym, the same for the same number within one run of the process; Telegram and
    /// console ids are not personal data and stay as they are.
    pub fn for_log(&self) -> LoggedUser<'_> {
        LoggedUser(self)
    }
}

/// [`UserKey::for_log`]'s `Display`.
pub struct LoggedUser<'a>(&'a UserKey);

/// The key of this process's pseudonyms (random at start: a log line cannot be turned back into
/// a number by hashing every possible one).
static LOG_KEY: std::sync::LazyLock<[u8; 16]> = std::sync::LazyLock::new(|| {
    let mut key = [0u8; 16];
    let _ = getrandom::fill(&mut key);
    key
});

impl fmt::Display for LoggedUser<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.channel {
            ChannelKind::WhatsApp => {
                use sha2::Digest;
                let mut hash = sha2::Sha256::new();
                hash.update(*LOG_KEY);
                hash.update(self.0.id.as_bytes());
                let digest = hash.finalize();
                write!(f, "whatsapp:#{}", hex::encode(&digest[..5]))
            }
            _ => write!(f, "{}", self.0),
        }
    }
}

/// What a user did, in platform-neutral terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Inbound {
    /// Free text.
    Text(String),
    /// `/name args`, name lower-cased without the slash (and without a `@botname` suffix).
    Command { name: String, args: String },
    /// The payload of a pressed button.
    Button(String),
    Location {
        lat: f64,
        lon: f64,
        /// An update of a live location (Telegram sends one every few seconds while sharing).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        live: bool,
    },
    /// A shared contact card.
    Contact { phone: String, name: Option<String> },
    /// A picture, kept as the platform's reference to it (a WhatsApp media id).
    Image { reference: String, caption: Option<String> },
    /// News from an outside delivery vendor about one of its jobs (not a person's message: its
    /// user is the vendor).
    VendorStatus(Box<crate::integration::vendor::VendorUpdate>),
    /// News from the bank partner about a payment request (a virtual account made, money in).
    BankNews(Box<crate::integration::bank::BankNews>),
}

impl Inbound {
    /// Reads a typed line: `/cari bawang` is a command, anything else is text.
    pub fn from_typed(line: &str) -> Inbound {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix('/') {
            let (head, args) = match rest.split_once(char::is_whitespace) {
                Some((h, a)) => (h, a.trim()),
                None => (rest, ""),
            };
            let name = head.split('@').next().unwrap_or(head).to_lowercase();
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Inbound::Command { name, args: args.to_string() };
            }
        }
        Inbound::Text(trimmed.to_string())
    }
}

/// An update as it enters the inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundEvent {
    /// The platform's id for this update, unique per source (`telegram:blimbing:812345`).
    /// A second event with the same id is a redelivery and is ignored.
    pub source_id: String,
    pub market: String,
    pub user: UserKey,
    pub display_name: Option<String>,
    pub received_at: DateTime<Utc>,
    pub inbound: Inbound,
    /// For a button press: the platform's reference to the message the button was on (Telegram
    /// `message_id`), so a reply may take that message's place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressed_on: Option<String>,
}

/// A choice offered to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub label: String,
    /// Short typed payload, at most 64 bytes (Telegram's `callback_data` limit).
    pub payload: String,
}

/// Something the platform should ask of the user with its own control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Location,
    Contact,
}

/// A message to one user. Renderers decide how buttons look on their platform (inline keyboard,
/// reply buttons, a list, or numbered text); the core only says what the choices are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outbound {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
    /// A picture to show with the text as its caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
    /// A QR code to show as a picture with the text as its caption (a QRIS payment): the code's
    /// content, drawn by the channel when it sends (a terminal prints the content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr: Option<String>,
    /// A chart to show as a picture with the text as its caption (`/statistik`): its data,
    /// drawn by the channel when it sends, like a QR code (a terminal prints a small table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<Chart>,
    /// A file to send with the text as its caption (`/ekspor`'s CSV). A terminal saves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<Document>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// The question wants typed input (an amount, a phone number), so a typed number is an
    /// answer, not a choice: renderers with numbered menus must not map it to a button.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expects_text: bool,
    /// Show this in place of an earlier message (a page turn edits the page it was turned on),
    /// by the platform's reference to it. Channels that cannot edit send it as a new message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// The user's roles changed with this message: platforms with a command menu show this one
    /// to them from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub menu: Option<CommandMenu>,
    /// A message the user did not just ask for (a new order for a trader, an order update, an
    /// alert). Platforms that allow such messages only for a while after the user last wrote
    /// (WhatsApp: 24 hours) send it as the approved template for its kind, or hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<NoticeKind>,
}

/// A chart's data: one value per x label for each series (a market's orders per hour or day).
/// The channel draws it (see [`chart`]); the core never handles pixels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chart {
    pub title: String,
    pub x_labels: Vec<String>,
    /// What the values count, written along the y axis.
    pub y_label: String,
    pub series: Vec<Series>,
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    /// One value per x label.
    pub values: Vec<u32>,
}

/// A text file sent as a document. Text only, so it can live in the outbox row as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub file_name: String,
    /// `text/csv`.
    pub mime: String,
    pub content: String,
}

/// What kind of notification a message is (WhatsApp templates are configured per kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A new order (or a reminder of one) for a trader.
    NewOrder,
    /// News about a shopper's order.
    OrderUpdate,
    /// News for a trader about an order they hold (the shopper agreed, cancelled...).
    TraderUpdate,
    /// Something an admin must look at.
    AdminAlert,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 4] =
        [NoticeKind::NewOrder, NoticeKind::OrderUpdate, NoticeKind::TraderUpdate, NoticeKind::AdminAlert];

    /// The name used in the config (`[whatsapp.templates.new_order]`).
    pub fn code(self) -> &'static str {
        match self {
            NoticeKind::NewOrder => "new_order",
            NoticeKind::OrderUpdate => "order_update",
            NoticeKind::TraderUpdate => "trader_update",
            NoticeKind::AdminAlert => "admin_alert",
        }
    }
}

/// Which commands a user's menu lists: every user's are the shopper's; traders and admins have
/// theirs too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct CommandMenu {
    pub trader: bool,
    pub admin: bool,
    #[serde(default)]
    pub courier: bool,
    /// A city admin (every market): the city's commands too.
    #[serde(default)]
    pub city: bool,
}

impl Outbound {
    pub fn text(text: impl Into<String>) -> Outbound {
        Outbound {
            text: text.into(),
            buttons: Vec::new(),
            photo: None,
            qr: None,
            chart: None,
            document: None,
            request: None,
            expects_text: false,
            replaces: None,
            menu: None,
            notice: None,
        }
    }

    pub fn with_buttons(text: impl Into<String>, buttons: Vec<Button>) -> Outbound {
        Outbound {
            text: text.into(),
            buttons,
            photo: None,
            qr: None,
            chart: None,
            document: None,
            request: None,
            expects_text: false,
            replaces: None,
            menu: None,
            notice: None,
        }
    }

    /// A question answered by typing, with optional shortcut buttons.
    pub fn question(text: impl Into<String>, buttons: Vec<Button>) -> Outbound {
        Outbound {
            text: text.into(),
            buttons,
            photo: None,
            qr: None,
            chart: None,
            document: None,
            request: None,
            expects_text: true,
            replaces: None,
            menu: None,
            notice: None,
        }
    }
}

/// An outbound message and who gets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub market: String,
    pub to: UserKey,
    pub message: Outbound,
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_whatsapp_number_is_logged_as_a_pseudonym_and_a_telegram_id_as_it_is() {
        let wa = UserKey { channel: ChannelKind::WhatsApp, id: "447700900123".into() };
        let logged = wa.for_log().to_string();
        assert!(logged.starts_with("whatsapp:#") && !logged.contains("447700900123"), "{logged}");
        assert_eq!(logged, wa.for_log().to_string(), "the same within a run");
        let other = UserKey { channel: ChannelKind::WhatsApp, id: "447700900124".into() };
        assert_ne!(logged, other.for_log().to_string());
        let tg = UserKey { channel: ChannelKind::Telegram, id: "7012345678".into() };
        assert_eq!(tg.for_log().to_string(), "telegram:7012345678");
    }

    use super::*;

    #[test]
    fn typed_lines_become_commands_or_text() {
        assert_eq!(
            Inbound::from_typed("/cari bawang merah"),
            Inbound::Command { name: "cari".into(), args: "bawang merah".into() }
        );
        assert_eq!(
            Inbound::from_typed("/START@PasarBlimbingBot"),
            Inbound::Command { name: "start".into(), args: String::new() }
        );
        assert_eq!(Inbound::from_typed(" brambang "), Inbound::Text("brambang".into()));
        assert_eq!(Inbound::from_typed("/ halo"), Inbound::Text("/ halo".into()));
        assert_eq!(Inbound::from_typed("1/2 kg"), Inbound::Text("1/2 kg".into()));
    }
}
