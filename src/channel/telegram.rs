//! The Telegram channel: one bot per market, through teloxide.
//!
//! Inbound: a dptree handler tree turns each Bot API update (messages, commands, button presses,
//! shared locations and contacts, photos, live-location updates) into an [`InboundEvent`] keyed `telegram:<market>:<update_id>`,
//! which the poller writes to the inbox *before* the next `getUpdates` offset acknowledges it.
//! Outbound: [`render`] turns an [`Outbound`] into Bot API requests (inline keyboards for choices,
//! a reply keyboard for location and contact requests). The sender lives in
//! [`crate::runtime`]. Nothing here decides anything about shopping.

use crate::channel::{ChannelKind, Inbound, InboundEvent, Outbound, Request, UserKey};
use chrono::{DateTime, Utc};
use teloxide::dispatching::{DpHandlerDescription, UpdateFilterExt};
use teloxide::dptree;
use teloxide::types::{
    ButtonRequest, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, KeyboardMarkup, Message,
    Update,
};

/// The Bot API's limit on a message's text.
pub const MAX_TEXT: usize = 4096;
/// Characters of a photo's caption.
pub const MAX_CAPTION: usize = 1024;

/// What one update means for the core, before it is stamped with market and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub chat: i64,
    pub display_name: Option<String>,
    pub inbound: Inbound,
    /// A button press to acknowledge with `answerCallbackQuery` once it is stored.
    pub callback_id: Option<String>,
    /// The id of the message the pressed button was on.
    pub pressed_on: Option<i32>,
}

fn from_message(msg: Message) -> Option<Converted> {
    // The bots serve people in private chats; group chats are not shops.
    if !msg.chat.is_private() {
        return None;
    }
    let display_name = msg.from.as_ref().map(|u| u.full_name());
    let inbound = if let Some(text) = msg.text() {
        Inbound::from_typed(text)
    } else if let Some(loc) = msg.location() {
        Inbound::Location { lat: loc.latitude, lon: loc.longitude, live: false }
    } else if let Some(contact) = msg.contact() {
        Inbound::Contact { phone: contact.phone_number.clone(), name: Some(contact.first_name.clone()) }
    } else if let Some(sizes) = msg.photo() {
        // The largest size: a courier's proof at the door should be legible.
        let largest = sizes.iter().max_by_key(|p| u64::from(p.width) * u64::from(p.height))?;
        Inbound::Image { reference: largest.file.id.to_string(), caption: msg.caption().map(str::to_string) }
    } else {
        // Stickers, voice notes...: the core answers "not understood" with the menu.
        Inbound::Text(String::new())
    };
    Some(Converted { chat: msg.chat.id.0, display_name, inbound, callback_id: None, pressed_on: None })
}

/// An edited message matters only as the next point of a live location being shared (a
/// courier on the road); edited text is not a new message.
fn from_edited(msg: Message) -> Option<Converted> {
    if !msg.chat.is_private() {
        return None;
    }
    let loc = msg.location()?;
    Some(Converted {
        chat: msg.chat.id.0,
        display_name: msg.from.as_ref().map(|u| u.full_name()),
        inbound: Inbound::Location { lat: loc.latitude, lon: loc.longitude, live: true },
        callback_id: None,
        pressed_on: None,
    })
}

fn from_callback(q: CallbackQuery) -> Option<Converted> {
    // The press is the presser's, whatever chat the message is in: a user's private chat has the
    // user's id, and a button on a message elsewhere (a group, a forged update) must not act in
    // the name of that chat's owner.
    let chat = q.from.id.0 as i64;
    let payload = q.data.clone().unwrap_or_default();
    let pressed_on = q.message.as_ref().filter(|m| m.chat().id.0 == chat).map(|m| m.id().0);
    Some(Converted {
        chat,
        display_name: Some(q.from.full_name()),
        inbound: Inbound::Button(payload),
        callback_id: Some(q.id.0.clone()),
        pressed_on,
    })
}

/// The handler tree: messages and button presses become [`Converted`]; every other kind of
/// update is ignored.
pub fn handler() -> dptree::Handler<'static, Option<Converted>, DpHandlerDescription> {
    dptree::entry()
        .branch(Update::filter_message().endpoint(|msg: Message| async move { from_message(msg) }))
        .branch(Update::filter_edited_message().endpoint(|msg: Message| async move { from_edited(msg) }))
        .branch(Update::filter_callback_query().endpoint(|q: CallbackQuery| async move { from_callback(q) }))
}

/// Runs an update through the handler tree.
pub async fn convert(
    handler: &dptree::Handler<'static, Option<Converted>, DpHandlerDescription>,
    update: Update,
) -> Option<Converted> {
    match handler.dispatch(dptree::deps![update]).await {
        std::ops::ControlFlow::Break(out) => out,
        std::ops::ControlFlow::Continue(_) => None,
    }
}

/// The inbox event of a converted update.
pub fn event(market: &str, update_id: u32, c: Converted, received_at: DateTime<Utc>) -> InboundEvent {
    InboundEvent {
        source_id: format!("telegram:{market}:{update_id}"),
        market: market.to_string(),
        user: UserKey { channel: ChannelKind::Telegram, id: c.chat.to_string() },
        display_name: c.display_name,
        received_at,
        inbound: c.inbound,
        pressed_on: c.pressed_on.map(|id| id.to_string()),
    }
}

/// One Bot API call to make for an outbound message.
#[derive(Debug, Clone, PartialEq)]
pub enum Send {
    Text {
        text: String,
        keyboard: Option<InlineKeyboardMarkup>,
    },
    /// A picture by its URL, or by a file id of this bot (a photo someone sent it).
    Photo {
        url: String,
        caption: String,
        keyboard: Option<InlineKeyboardMarkup>,
    },
    /// A QR code drawn as a PNG when it is sent (a QRIS payment), with its caption.
    Qr {
        content: String,
        caption: String,
        keyboard: Option<InlineKeyboardMarkup>,
    },
    /// A chart drawn as a PNG when it is sent (`/statistik`), with its caption.
    Chart {
        chart: Box<crate::channel::Chart>,
        caption: String,
        keyboard: Option<InlineKeyboardMarkup>,
    },
    /// A file (`/ekspor`'s CSV) uploaded with `sendDocument`, with its caption.
    Document {
        document: Box<crate::channel::Document>,
        caption: String,
        keyboard: Option<InlineKeyboardMarkup>,
    },
    /// The new text and buttons of a message already in the chat (a page turn).
    Edit {
        message_id: i32,
        text: String,
        keyboard: Option<InlineKeyboardMarkup>,
    },
    /// A location or contact request: a one-time reply keyboard under a short text.
    Request {
        text: String,
        keyboard: KeyboardMarkup,
    },
}

/// Buttons as an inline keyboard: short labels two to a row, long ones alone.
fn inline_keyboard(message: &Outbound) -> Option<InlineKeyboardMarkup> {
    if message.buttons.is_empty() {
        return None;
    }
    let mut rows: Vec<Vec<InlineKeyboardButton>> = Vec::new();
    let mut pending: Option<InlineKeyboardButton> = None;
    for b in &message.buttons {
        let button = InlineKeyboardButton::callback(b.label.clone(), b.payload.clone());
        let short = b.label.chars().count() <= 16;
        match (short, pending.take()) {
            (true, None) => pending = Some(button),
            (true, Some(first)) => rows.push(vec![first, button]),
            (false, first) => {
                if let Some(first) = first {
                    rows.push(vec![first]);
                }
                rows.push(vec![button]);
            }
        }
    }
    if let Some(last) = pending {
        rows.push(vec![last]);
    }
    Some(InlineKeyboardMarkup::new(rows))
}

/// Splits text at line breaks into pieces the Bot API accepts.
fn chunks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        if current.chars().count() + line.chars().count() > MAX_TEXT && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        if line.chars().count() > MAX_TEXT {
            let chars: Vec<char> = line.chars().collect();
            for piece in chars.chunks(MAX_TEXT) {
                out.push(piece.iter().collect());
            }
            continue;
        }
        current.push_str(line);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(current);
    }
    out
}

/// A text as messages of at most [`MAX_TEXT`] characters, the buttons under the last.
fn push_text(sends: &mut Vec<Send>, text: &str, keyboard: &Option<InlineKeyboardMarkup>) {
    let pieces = chunks(text);
    let last = pieces.len().saturating_sub(1);
    for (i, text) in pieces.into_iter().enumerate() {
        let text = if text.trim().is_empty() { "…".to_string() } else { text };
        sends.push(Send::Text { text, keyboard: if i == last { keyboard.clone() } else { None } });
    }
}

/// The Bot API calls for one outbound message, in order. `request_hint` is the text under a
/// location/contact reply keyboard; `request_label` the button's label.
pub fn render(message: &Outbound, request_label: &str, request_hint: &str) -> Vec<Send> {
    let keyboard = inline_keyboard(message);
    let mut sends = Vec::new();
    // An edit is one call: only a plain text with inline buttons that fits one message.
    let editable = message.photo.is_none()
        && message.qr.is_none()
        && message.chart.is_none()
        && message.document.is_none()
        && message.request.is_none()
        && message.text.chars().count() <= MAX_TEXT;
    if let Some(message_id) = message.replaces.as_deref().and_then(|r| r.parse::<i32>().ok())
        && editable
        && !message.text.trim().is_empty()
    {
        sends.push(Send::Edit { message_id, text: message.text.clone(), keyboard });
        return sends;
    }
    // A chart or a file goes like a QR code: the text as its caption when it fits, else after it.
    let fits = message.text.chars().count() <= MAX_CAPTION;
    let attachment = |caption: String, keyboard: Option<InlineKeyboardMarkup>| {
        if let Some(chart) = &message.chart {
            Some(Send::Chart { chart: Box::new(chart.clone()), caption, keyboard })
        } else {
            message.document.as_ref().map(|d| Send::Document { document: Box::new(d.clone()), caption, keyboard })
        }
    };
    if let Some(send) = attachment(if fits { message.text.clone() } else { String::new() }, None) {
        if fits {
            sends.push(attachment(message.text.clone(), keyboard).unwrap_or(send));
        } else {
            sends.push(send);
            let pieces = chunks(&message.text);
            let last = pieces.len().saturating_sub(1);
            for (i, text) in pieces.into_iter().enumerate() {
                sends.push(Send::Text { text, keyboard: if i == last { keyboard.clone() } else { None } });
            }
        }
        return sends;
    }
    match (&message.qr, &message.photo) {
        (Some(content), _) if message.text.chars().count() <= MAX_CAPTION => {
            sends.push(Send::Qr { content: content.clone(), caption: message.text.clone(), keyboard });
        }
        (Some(content), _) => {
            sends.push(Send::Qr { content: content.clone(), caption: String::new(), keyboard: None });
            push_text(&mut sends, &message.text, &keyboard);
        }
        (None, Some(url)) if message.text.chars().count() <= MAX_CAPTION => {
            sends.push(Send::Photo { url: url.clone(), caption: message.text.clone(), keyboard });
        }
        // A caption too long for a photo: the picture, then the text with the buttons.
        (None, Some(url)) => {
            sends.push(Send::Photo { url: url.clone(), caption: String::new(), keyboard: None });
            push_text(&mut sends, &message.text, &keyboard);
        }
        (None, _) => {
            push_text(&mut sends, &message.text, &keyboard);
        }
    }
    if let Some(request) = message.request {
        let button = KeyboardButton::new(request_label).request(match request {
            Request::Location => ButtonRequest::Location,
            Request::Contact => ButtonRequest::Contact,
        });
        let keyboard = KeyboardMarkup::new(vec![vec![button]]).resize_keyboard().one_time_keyboard();
        sends.push(Send::Request { text: request_hint.to_string(), keyboard });
    }
    sends
}

/// The environment variable that holds a market's bot token: `PASAR_BLIMBING_TELEGRAM_TOKEN`.
pub fn token_variable(slug: &str) -> String {
    format!("PASAR_{}_TELEGRAM_TOKEN", slug.to_uppercase().replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Button;

    #[test]
    fn token_variables_follow_the_slug() {
        assert_eq!(token_variable("blimbing"), "PASAR_BLIMBING_TELEGRAM_TOKEN");
        assert_eq!(token_variable("oro-oro-dowo"), "PASAR_ORO_ORO_DOWO_TELEGRAM_TOKEN");
    }

    fn callback(from: i64, chat: i64) -> CallbackQuery {
        serde_json::from_value(serde_json::json!({
            "id": "cb1",
            "from": {"id": from, "is_bot": false, "first_name": "Ani"},
            "chat_instance": "ci",
            "data": "checkout",
            "message": {
                "message_id": 77, "date": 1_764_300_000,
                "chat": {"id": chat, "type": "private", "first_name": "Budi"},
                "from": {"id": 42, "is_bot": true, "first_name": "Pasar"},
                "text": "menu"
            }
        }))
        .expect("a callback query")
    }

    #[test]
    fn a_press_acts_for_the_presser_never_for_the_chat_of_the_message_it_names() {
        let own = from_callback(callback(1001, 1001)).expect("converted");
        assert_eq!((own.chat, own.pressed_on), (1001, Some(77)));
        // A forged update (or a message in someone else's chat): the presser's own chat, and no
        // message of theirs to edit.
        let forged = from_callback(callback(1001, 5005)).expect("converted");
        assert_eq!((forged.chat, forged.pressed_on), (1001, None));
        assert_eq!(forged.callback_id.as_deref(), Some("cb1"), "still answered");
    }

    #[test]
    fn long_texts_are_split_and_buttons_go_last() {
        let text = "baris\n".repeat(1500);
        let msg = Outbound::with_buttons(text, vec![Button { label: "Menu".into(), payload: "menu".into() }]);
        let sends = render(&msg, "📍", "hint");
        assert!(sends.len() >= 3);
        for s in &sends[..sends.len() - 1] {
            assert!(matches!(s, Send::Text { keyboard: None, text } if text.chars().count() <= MAX_TEXT));
        }
        assert!(matches!(sends.last(), Some(Send::Text { keyboard: Some(_), .. })));
    }

    #[test]
    fn a_page_turn_edits_the_page_it_was_turned_on() {
        let mut msg =
            Outbound::with_buttons("Sayur (2/3)", vec![Button { label: "›".into(), payload: "cat:sayur:2".into() }]);
        msg.replaces = Some("77".into());
        let sends = render(&msg, "", "");
        assert!(matches!(&sends[..], [Send::Edit { message_id: 77, keyboard: Some(_), .. }]), "{sends:?}");
        // A reference that is not a Telegram message id, or a message that cannot be an edit,
        // goes as a new message.
        msg.replaces = Some("wa:abc".into());
        assert!(matches!(&render(&msg, "", "")[..], [Send::Text { .. }]));
        msg.replaces = Some("77".into());
        msg.request = Some(Request::Location);
        assert!(matches!(&render(&msg, "", "")[0], Send::Text { .. }));
    }

    #[test]
    fn a_qr_code_goes_as_a_photo_with_its_caption() {
        let mut msg =
            Outbound::with_buttons("Bayar Rp 39.500", vec![Button { label: "x".into(), payload: "x".into() }]);
        msg.qr = Some("000201010212".into());
        msg.replaces = Some("77".into());
        let sends = render(&msg, "", "");
        assert!(
            matches!(&sends[..], [Send::Qr { content, caption, keyboard: Some(_) }] if content == "000201010212" && caption == "Bayar Rp 39.500"),
            "{sends:?}"
        );
        // A caption too long for a photo: the picture, then the text with the buttons.
        msg.text = "x".repeat(MAX_CAPTION + 1);
        let sends = render(&msg, "", "");
        assert!(matches!(&sends[..], [Send::Qr { keyboard: None, .. }, Send::Text { keyboard: Some(_), .. }]));
    }

    #[test]
    fn a_chart_and_a_file_go_with_their_caption() {
        let mut msg = Outbound::text("📈 Pesanan per jam");
        msg.chart = Some(crate::channel::Chart {
            title: "Pesanan per jam".into(),
            x_labels: vec!["07".into()],
            y_label: "pesanan".into(),
            series: Vec::new(),
        });
        msg.replaces = Some("77".into());
        let sends = render(&msg, "", "");
        assert!(matches!(&sends[..], [Send::Chart { caption, .. }] if caption == "📈 Pesanan per jam"), "{sends:?}");
        let mut msg = Outbound::text("x".repeat(MAX_CAPTION + 1));
        msg.document = Some(crate::channel::Document {
            file_name: "pesanan.csv".into(),
            mime: "text/csv".into(),
            content: "a,b\n".into(),
        });
        let sends = render(&msg, "", "");
        assert!(
            matches!(&sends[..], [Send::Document { caption, .. }, Send::Text { .. }] if caption.is_empty()),
            "{sends:?}"
        );
    }

    #[test]
    fn requests_add_a_reply_keyboard() {
        let mut msg = Outbound::text("Kirim ke mana?");
        msg.request = Some(Request::Location);
        let sends = render(&msg, "📍 Kirim lokasi", "Atau tekan:");
        assert_eq!(sends.len(), 2);
        assert!(matches!(&sends[1], Send::Request { text, .. } if text == "Atau tekan:"));
    }

    #[test]
    fn short_buttons_pair_up() {
        let b = |l: &str| Button { label: l.into(), payload: l.into() };
        let msg =
            Outbound::with_buttons("x", vec![b("1 kg"), b("2 kg"), b("A very long label for one row"), b("Menu")]);
        let Some(Send::Text { keyboard: Some(k), .. }) = render(&msg, "", "").into_iter().next() else {
            panic!("a keyboard")
        };
        let widths: Vec<usize> = k.inline_keyboard.iter().map(Vec::len).collect();
        assert_eq!(widths, [2, 1, 1]);
    }
}
