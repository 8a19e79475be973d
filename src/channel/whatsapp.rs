//! The WhatsApp channel: one WhatsApp Business number per market, through the Cloud API.
//!
//! Inbound: Meta posts webhook deliveries to `/whatsapp`. [`verify_signature`] checks the
//! `X-Hub-Signature-256` HMAC over the raw bytes; [`parse_delivery`] turns a payload into the
//! messages (keyed by their `wamid`, so a redelivery is ignored by the inbox) and the delivery
//! statuses it carries. Outbound: [`render`] turns an [`Outbound`] into Graph API message bodies
//! within WhatsApp's limits (3 reply buttons of 20 characters, lists of 10 rows of 24, bodies of
//! 1,024), degrading to a list, a list plus buttons, or a numbered text menu without losing a
//! choice. A QR code (a QRIS payment) is rendered as an image still to be drawn and uploaded by
//! the sender. The webhook handler and the sender live in `runtime/whatsapp.rs`. Nothing here
//! decides anything about shopping.

use crate::channel::{Button, ChannelKind, Inbound, InboundEvent, Outbound, Request, UserKey};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

/// Reply buttons per message, and characters per button title.
pub const MAX_REPLY_BUTTONS: usize = 3;
pub const MAX_BUTTON_TITLE: usize = 20;
/// Rows per list message (all sections together), and characters per row title and description.
pub const MAX_LIST_ROWS: usize = 10;
pub const MAX_ROW_TITLE: usize = 24;
pub const MAX_ROW_DESCRIPTION: usize = 72;
/// Characters of the body of an interactive message, and of a plain text message.
pub const MAX_INTERACTIVE_BODY: usize = 1024;
pub const MAX_TEXT: usize = 4096;
/// Characters of a list's button and of a photo caption.
pub const MAX_LIST_BUTTON: usize = 20;
pub const MAX_CAPTION: usize = 1024;
/// Bytes of a button or row id (WhatsApp allows 256 and 200; ours are at most 64).
pub const MAX_ROW_ID: usize = 200;
/// Menus longer than a list plus a row of buttons are sent as numbered text; a typed number
/// then picks (see [`pick_numbered`]).
pub const MAX_INTERACTIVE_CHOICES: usize = MAX_LIST_ROWS + MAX_REPLY_BUTTONS;

/// `X-Hub-Signature-256: sha256=<hex>` is the HMAC-SHA256 of the raw body under the app secret.
/// Compared in constant time; anything missing or malformed is a mismatch.
pub fn verify_signature(app_secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    crate::integration::signature::verify(app_secret, body, header)
}

/// The signature header value for a body, as Meta computes it (for tests and the benchmark).
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    crate::integration::signature::sign(app_secret, body)
}

/// Why a webhook body was refused (answered 400).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a WhatsApp Business payload (object `{0}`)")]
    NotWhatsApp(String),
}

#[derive(Debug, Deserialize)]
struct Delivery {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
struct Change {
    #[serde(default)]
    field: String,
    value: ChangeValue,
}

#[derive(Debug, Deserialize)]
struct ChangeValue {
    metadata: Option<Metadata>,
    #[serde(default)]
    contacts: Vec<Contact>,
    #[serde(default)]
    messages: Vec<RawMessage>,
    #[serde(default)]
    statuses: Vec<RawStatus>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Debug, Deserialize)]
struct Contact {
    wa_id: Option<String>,
    profile: Option<Profile>,
}

#[derive(Debug, Deserialize)]
struct Profile {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawMessage {
    from: String,
    id: String,
    #[serde(rename = "type")]
    kind: String,
    text: Option<TextBody>,
    interactive: Option<Interactive>,
    location: Option<Location>,
    #[serde(default)]
    contacts: Vec<SharedContact>,
    image: Option<Media>,
    button: Option<QuickReply>,
}

#[derive(Debug, Deserialize)]
struct TextBody {
    body: String,
}

#[derive(Debug, Deserialize)]
struct Interactive {
    button_reply: Option<Reply>,
    list_reply: Option<Reply>,
}

#[derive(Debug, Deserialize)]
struct Reply {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Location {
    latitude: f64,
    longitude: f64,
}

#[derive(Debug, Deserialize)]
struct SharedContact {
    name: Option<ContactName>,
    #[serde(default)]
    phones: Vec<ContactPhone>,
}

#[derive(Debug, Deserialize)]
struct ContactName {
    formatted_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ContactPhone {
    phone: Option<String>,
    wa_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Media {
    id: String,
    caption: Option<String>,
}

/// A tap on a template's quick-reply button.
#[derive(Debug, Deserialize)]
struct QuickReply {
    payload: Option<String>,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawStatus {
    id: String,
    status: String,
    recipient_id: Option<String>,
    #[serde(default)]
    errors: Vec<StatusError>,
}

#[derive(Debug, Deserialize)]
struct StatusError {
    code: Option<i64>,
    title: Option<String>,
}

/// A message a user sent to a market's number.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The number it was sent to: which market's bot.
    pub phone_number_id: String,
    /// The sender's WhatsApp id (their number, digits only).
    pub from: String,
    pub wamid: String,
    pub display_name: Option<String>,
    /// What it means for the core; `None` for what is not addressed to the bot (a reaction).
    pub inbound: Option<Inbound>,
}

impl Received {
    /// The inbox event, keyed by the wamid (unique across WhatsApp): a redelivery is ignored.
    pub fn event(&self, market: &str, received_at: DateTime<Utc>) -> Option<InboundEvent> {
        Some(InboundEvent {
            source_id: format!("whatsapp:{}", self.wamid),
            market: market.to_string(),
            user: UserKey { channel: ChannelKind::WhatsApp, id: self.from.clone() },
            display_name: self.display_name.clone(),
            received_at,
            inbound: self.inbound.clone()?,
            pressed_on: None,
        })
    }
}

/// What happened to a message the bot sent.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryStatus {
    pub phone_number_id: String,
    pub wamid: String,
    /// `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    pub recipient: Option<String>,
    /// For `failed`: the error code and title (131047: outside the 24-hour window).
    pub error: Option<(i64, String)>,
}

/// Everything one webhook delivery carries (Meta batches several messages and statuses).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    pub messages: Vec<Received>,
    pub statuses: Vec<DeliveryStatus>,
}

/// Reads a webhook body. Kinds of change or message the bots do not use are skipped or become
/// "not understood"; only a body that is not JSON or not a WhatsApp Business payload is an error.
pub fn parse_delivery(body: &[u8]) -> Result<Parsed, PayloadError> {
    let delivery: Delivery = serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    if delivery.object != "whatsapp_business_account" {
        return Err(PayloadError::NotWhatsApp(delivery.object));
    }
    let mut out = Parsed::default();
    for change in delivery.entry.into_iter().flat_map(|e| e.changes) {
        if change.field != "messages" {
            continue;
        }
        let Some(metadata) = change.value.metadata else {
            continue;
        };
        let names = &change.value.contacts;
        for m in change.value.messages {
            let display_name = names
                .iter()
                .find(|c| c.wa_id.as_deref() == Some(m.from.as_str()))
                .or(names.first())
                .and_then(|c| c.profile.as_ref()?.name.clone());
            let inbound = inbound_of(&m);
            out.messages.push(Received {
                phone_number_id: metadata.phone_number_id.clone(),
                from: m.from,
                wamid: m.id,
                display_name,
                inbound,
            });
        }
        for s in change.value.statuses {
            let error = s.errors.first().map(|e| (e.code.unwrap_or(0), e.title.clone().unwrap_or_default()));
            out.statuses.push(DeliveryStatus {
                phone_number_id: metadata.phone_number_id.clone(),
                wamid: s.id,
                status: s.status,
                recipient: s.recipient_id,
                error,
            });
        }
    }
    Ok(out)
}

fn inbound_of(m: &RawMessage) -> Option<Inbound> {
    Some(match m.kind.as_str() {
        "text" => Inbound::from_typed(m.text.as_ref().map(|t| t.body.as_str()).unwrap_or_default()),
        "interactive" => {
            let i = m.interactive.as_ref();
            let reply = i.and_then(|i| i.button_reply.as_ref().or(i.list_reply.as_ref()));
            match reply {
                Some(r) => Inbound::Button(r.id.clone()),
                None => Inbound::Text(String::new()),
            }
        }
        "button" => match &m.button {
            Some(QuickReply { payload: Some(p), .. }) if !p.is_empty() => Inbound::Button(p.clone()),
            Some(QuickReply { text: Some(t), .. }) => Inbound::from_typed(t),
            _ => Inbound::Text(String::new()),
        },
        "location" => match &m.location {
            Some(l) if l.latitude.is_finite() && l.longitude.is_finite() => {
                Inbound::Location { lat: l.latitude, lon: l.longitude, live: false }
            }
            _ => Inbound::Text(String::new()),
        },
        "contacts" => {
            let card = m.contacts.first();
            let phone = card
                .and_then(|c| c.phones.iter().find_map(|p| p.phone.clone().or_else(|| p.wa_id.clone())))
                .unwrap_or_default();
            let name = card.and_then(|c| c.name.as_ref()?.formatted_name.clone());
            Inbound::Contact { phone, name }
        }
        "image" => match &m.image {
            Some(media) => Inbound::Image { reference: media.id.clone(), caption: media.caption.clone() },
            None => Inbound::Text(String::new()),
        },
        // A reaction to a message is not addressed to the bot.
        "reaction" => return None,
        // Stickers, voice notes, catalogue orders, unsupported kinds: the core answers "not
        // understood" with the menu.
        _ => Inbound::Text(String::new()),
    })
}

/// A title cut to `max` characters, with an ellipsis when cut.
fn fit(label: &str, max: usize) -> String {
    let label = label.trim();
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let cut: String = label.chars().take(max.saturating_sub(1)).collect();
        format!("{}…", cut.trim_end())
    }
}

/// Splits a text into pieces of at most `max` characters, at line ends where possible.
fn chunks(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        if current.chars().count() + line.chars().count() > max && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        if line.chars().count() > max {
            let chars: Vec<char> = line.chars().collect();
            for piece in chars.chunks(max) {
                out.push(piece.iter().collect());
            }
        } else {
            current.push_str(line);
        }
    }
    if !current.is_empty() || out.is_empty() {
        out.push(current);
    }
    out.into_iter().map(|s| s.trim_end().to_string()).filter(|s| !s.is_empty()).collect()
}

/// Sentences the renderer adds around the core's text, in the recipient's language.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    /// The button that opens a list ("Pilih").
    pub open_list: &'a str,
    /// The body of the extra message holding the rest of the buttons ("Atau:").
    pub more_choices: &'a str,
    /// The body of a location request that follows a menu ("Atau kirim lokasi Anda:").
    pub share_location: &'a str,
    /// Under a numbered menu ("Balas dengan nomornya").
    pub reply_with_number: &'a str,
}

fn envelope(to: &str, kind: &str, content: Value) -> Value {
    let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": kind});
    body[kind] = content;
    body
}

fn text_message(to: &str, text: &str) -> Value {
    envelope(to, "text", json!({"body": text, "preview_url": false}))
}

fn reply_buttons(to: &str, body: &str, buttons: &[Button]) -> Value {
    let buttons: Vec<Value> = buttons
        .iter()
        .map(|b| json!({"type": "reply", "reply": {"id": b.payload, "title": fit(&b.label, MAX_BUTTON_TITLE)}}))
        .collect();
    envelope(to, "interactive", json!({"type": "button", "body": {"text": body}, "action": {"buttons": buttons}}))
}

fn list(to: &str, body: &str, open: &str, buttons: &[Button]) -> Value {
    let rows: Vec<Value> = buttons
        .iter()
        .map(|b| {
            let title = fit(&b.label, MAX_ROW_TITLE);
            let mut row = json!({"id": b.payload, "title": title});
            if title != b.label.trim() {
                row["description"] = json!(fit(&b.label, MAX_ROW_DESCRIPTION));
            }
            row
        })
        .collect();
    envelope(
        to,
        "interactive",
        json!({
            "type": "list",
            "body": {"text": body},
            "action": {"button": fit(open, MAX_LIST_BUTTON), "sections": [{"rows": rows}]}
        }),
    )
}

/// The key under `image` of a rendered QR picture, holding the code's content: not a Graph API
/// field. The sender draws the code, uploads it as media and puts the media's `id` in its place
/// (see [`qr_content`]) before posting.
pub const QR_MARKER: &str = "qr";

/// The content of the QR code a rendered body still has to have drawn and uploaded, if any.
pub fn qr_content(body: &Value) -> Option<&str> {
    body["image"][QR_MARKER].as_str()
}

/// The key under `image` of a rendered chart, holding the chart's data (drawn and uploaded by
/// the sender like a QR code), and the key under `document` of a rendered file, holding its
/// content and type (uploaded by the sender). Neither is a Graph API field.
pub const CHART_MARKER: &str = "chart";
pub const DOCUMENT_MARKER: &str = "content";
const DOCUMENT_MIME: &str = "mime";

/// The chart a rendered body still has to have drawn and uploaded, if any.
pub fn chart_of(body: &Value) -> Option<crate::channel::Chart> {
    serde_json::from_value(body["image"].get(CHART_MARKER)?.clone()).ok()
}

/// The file a rendered body still has to have uploaded, if any: its name, type and content.
pub fn document_of(body: &Value) -> Option<crate::channel::Document> {
    let d = &body["document"];
    Some(crate::channel::Document {
        file_name: d["filename"].as_str()?.to_string(),
        mime: d[DOCUMENT_MIME].as_str()?.to_string(),
        content: d[DOCUMENT_MARKER].as_str()?.to_string(),
    })
}

/// A rendered QR picture, chart or file sent by the id of its upload, its caption kept.
pub fn with_media_id(body: &Value, media_id: &str) -> Value {
    let mut body = body.clone();
    for (kind, markers) in
        [("image", &[QR_MARKER, CHART_MARKER][..]), ("document", &[DOCUMENT_MARKER, DOCUMENT_MIME][..])]
    {
        if let Some(media) = body[kind].as_object_mut()
            && markers.iter().any(|m| media.contains_key(*m))
        {
            for m in markers {
                media.remove(*m);
            }
            media.insert("id".into(), json!(media_id));
        }
    }
    body
}

/// A rendered chart or file as a text message instead (when it cannot be drawn): its caption.
pub fn caption_as_text(body: &Value) -> Value {
    let caption = body["image"]["caption"].as_str().or(body["document"]["caption"].as_str()).unwrap_or("…");
    text_message(body["to"].as_str().unwrap_or_default(), caption)
}

/// A rendered QR picture as a text message instead (when the code cannot be drawn): its caption,
/// or the code's content when it has none.
pub fn qr_as_text(body: &Value) -> Value {
    let image = &body["image"];
    let text = image["caption"].as_str().or(image[QR_MARKER].as_str()).unwrap_or_default();
    text_message(body["to"].as_str().unwrap_or_default(), text)
}

/// The Graph API message bodies for one outbound message to `to` (a WhatsApp id), in order. A
/// QR code (`message.qr`, or else a `photo`) comes first as an image, with the text as its
/// caption when that fits and there is no menu; a QR image carries [`QR_MARKER`] in place of
/// its media id until the sender has uploaded it.
pub fn render(message: &Outbound, to: &str, labels: &Labels<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    let buttons = &message.buttons;
    let interactive = !buttons.is_empty() && buttons.len() <= MAX_INTERACTIVE_CHOICES;
    let mut rest = if buttons.len() > MAX_INTERACTIVE_CHOICES {
        numbered(message.text.trim(), buttons, labels)
    } else {
        message.text.trim().to_string()
    };
    // A QR code goes like a photo, marked for the sender to draw and upload (see [`QR_MARKER`]).
    // So does a chart (its data marked for the sender to draw) and a file (its content marked
    // for the sender to upload).
    let picture = match (&message.qr, &message.chart, &message.photo) {
        (Some(content), _, _) => Some(("image", json!({QR_MARKER: content}))),
        (None, Some(chart), _) => Some(("image", json!({CHART_MARKER: chart}))),
        (None, None, Some(url)) if url.starts_with("https://") || url.starts_with("http://") => {
            Some(("image", json!({"link": url})))
        }
        // A photo someone sent this number (an admin's `/foto`), by its media id.
        (None, None, Some(id)) => Some(("image", json!({"id": id}))),
        (None, None, None) => None,
    };
    let file = message
        .document
        .as_ref()
        .map(|d| ("document", json!({"filename": d.file_name, DOCUMENT_MIME: d.mime, DOCUMENT_MARKER: d.content})));
    for (kind, mut media) in picture.into_iter().chain(file) {
        if !interactive && !rest.is_empty() && rest.chars().count() <= MAX_CAPTION {
            media["caption"] = json!(rest);
            rest.clear();
        }
        out.push(envelope(to, kind, media));
    }
    let mut parts = chunks(&rest, if interactive { MAX_INTERACTIVE_BODY } else { MAX_TEXT });
    if interactive {
        let body = parts.pop().unwrap_or_else(|| labels.more_choices.to_string());
        out.extend(parts.iter().map(|p| text_message(to, p)));
        let all_fit = buttons.iter().all(|b| b.label.trim().chars().count() <= MAX_BUTTON_TITLE);
        if buttons.len() <= MAX_REPLY_BUTTONS && all_fit {
            out.push(reply_buttons(to, &body, buttons));
        } else if buttons.len() <= MAX_LIST_ROWS {
            out.push(list(to, &body, labels.open_list, buttons));
        } else {
            // A list of the first ones, then the last few (paging and "back") as buttons.
            let split = buttons.len() - MAX_REPLY_BUTTONS;
            out.push(list(to, &body, labels.open_list, &buttons[..split]));
            out.push(reply_buttons(to, labels.more_choices, &buttons[split..]));
        }
    } else {
        out.extend(parts.iter().map(|p| text_message(to, p)));
    }
    if message.request == Some(Request::Location) {
        // A question without a menu is itself the request; after a menu, a short one follows.
        let last_text = out.last().and_then(|m| m["text"]["body"].as_str().map(String::from));
        match last_text {
            Some(question) if question.chars().count() <= MAX_INTERACTIVE_BODY => {
                out.pop();
                out.push(location_request(to, &question));
            }
            _ => out.push(location_request(to, labels.share_location)),
        }
    }
    out
}

/// A template message (for a user whose 24-hour window has closed): the approved template with
/// the notification's text as its one body parameter, on one line as WhatsApp requires
/// (parameters may hold no newlines, tabs or runs of spaces).
pub fn template(to: &str, name: &str, language: &str, text: &str) -> Value {
    let flat: Vec<&str> = text.split_whitespace().collect();
    let flat = fit(&flat.join(" "), MAX_TEMPLATE_PARAMETER);
    envelope(
        to,
        "template",
        json!({
            "name": name,
            "language": {"code": language},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": flat}]}]
        }),
    )
}

/// Characters of a template's body parameter.
pub const MAX_TEMPLATE_PARAMETER: usize = 1024;

fn location_request(to: &str, body: &str) -> Value {
    envelope(
        to,
        "interactive",
        json!({"type": "location_request_message", "body": {"text": body}, "action": {"name": "send_location"}}),
    )
}

/// A menu too long for a list: the choices as numbered lines under the text.
fn numbered(text: &str, buttons: &[Button], labels: &Labels<'_>) -> String {
    let mut s = text.to_string();
    s.push('\n');
    for (i, b) in buttons.iter().enumerate() {
        s.push_str(&format!("\n{}. {}", i + 1, b.label.trim()));
    }
    s.push_str("\n\n");
    s.push_str(labels.reply_with_number);
    s
}

/// A typed number answering the last numbered menu sent to the user: the choice it picks.
/// Questions that want typed input (an amount) keep their numbers as text.
pub fn pick_numbered(last_menu: &Outbound, typed: &str) -> Option<String> {
    if last_menu.expects_text || last_menu.buttons.len() <= MAX_INTERACTIVE_CHOICES {
        return None;
    }
    let n: usize = typed.trim().trim_end_matches('.').parse().ok()?;
    last_menu.buttons.get(n.checked_sub(1)?).map(|b| b.payload.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABELS: Labels<'static> = Labels {
        open_list: "Pilih",
        more_choices: "Atau:",
        share_location: "Kirim lokasi:",
        reply_with_number: "Balas nomornya.",
    };

    fn b(label: &str, payload: &str) -> Button {
        Button { label: label.into(), payload: payload.into() }
    }

    /// Every body the renderer can produce, for any message the core could send, keeps within
    /// WhatsApp's limits and loses no choice.
    mod limits {
        use super::*;
        use proptest::prelude::*;

        fn label() -> impl Strategy<Value = String> {
            prop_oneof!["[a-zA-Z ]{1,10}", "[a-zA-Z0-9 ·/,.]{1,80}", "\\PC{1,40}"]
                .prop_filter("a visible label", |s| !s.trim().is_empty())
        }

        fn outbound() -> impl Strategy<Value = Outbound> {
            (
                "\\PC{0,300}|(baris\n){0,1200}",
                proptest::collection::vec((label(), "[a-z:0-9]{1,64}"), 0..30),
                any::<bool>(),
                prop_oneof![Just(None), Just(Some(Request::Location)), Just(Some(Request::Contact))],
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(|(text, buttons, photo, request, expects_text, qr)| Outbound {
                    text,
                    buttons: buttons.into_iter().map(|(label, payload)| Button { label, payload }).collect(),
                    photo: photo.then(|| "https://example.id/p.jpg".to_string()),
                    qr: qr.then(|| "00020101021226".to_string()),
                    chart: None,
                    document: None,
                    request,
                    expects_text,
                    replaces: None,
                    menu: None,
                    notice: None,
                })
        }

        fn chars(v: &Value) -> usize {
            v.as_str().map(|s| s.chars().count()).unwrap_or(0)
        }

        proptest! {
            #[test]
            fn every_rendered_body_fits(msg in outbound()) {
                let out = render(&msg, "6281234567890", &LABELS);
                prop_assert!(!out.is_empty() || (msg.text.trim().is_empty() && msg.buttons.is_empty() && msg.photo.is_none() && msg.qr.is_none() && msg.request != Some(Request::Location)));
                let mut offered: Vec<String> = Vec::new();
                for m in &out {
                    prop_assert_eq!(&m["messaging_product"], "whatsapp");
                    prop_assert!(chars(&m["text"]["body"]) <= MAX_TEXT);
                    prop_assert!(chars(&m["image"]["caption"]) <= MAX_CAPTION);
                    let i = &m["interactive"];
                    prop_assert!(chars(&i["body"]["text"]) <= MAX_INTERACTIVE_BODY);
                    if m["type"] == "interactive" {
                        prop_assert!(chars(&i["body"]["text"]) > 0, "an interactive message needs a body");
                    }
                    let buttons = i["action"]["buttons"].as_array().cloned().unwrap_or_default();
                    prop_assert!(buttons.len() <= MAX_REPLY_BUTTONS);
                    for b in &buttons {
                        prop_assert!(chars(&b["reply"]["title"]) <= MAX_BUTTON_TITLE);
                        prop_assert!(chars(&b["reply"]["title"]) > 0);
                        offered.push(b["reply"]["id"].as_str().unwrap_or_default().to_string());
                    }
                    prop_assert!(chars(&i["action"]["button"]) <= MAX_LIST_BUTTON);
                    let rows: Vec<Value> = i["action"]["sections"].as_array().cloned().unwrap_or_default()
                        .iter().flat_map(|s| s["rows"].as_array().cloned().unwrap_or_default()).collect();
                    prop_assert!(rows.len() <= MAX_LIST_ROWS);
                    for r in &rows {
                        prop_assert!(chars(&r["title"]) <= MAX_ROW_TITLE && chars(&r["title"]) > 0);
                        prop_assert!(chars(&r["description"]) <= MAX_ROW_DESCRIPTION);
                        prop_assert!(r["id"].as_str().unwrap_or_default().len() <= MAX_ROW_ID);
                        offered.push(r["id"].as_str().unwrap_or_default().to_string());
                    }
                }
                // No choice lost: offered as a button or row, or numbered in the text.
                if msg.buttons.len() <= MAX_INTERACTIVE_CHOICES {
                    let wanted: Vec<String> = msg.buttons.iter().map(|b| b.payload.clone()).collect();
                    prop_assert_eq!(offered, wanted);
                } else {
                    for i in 1..=msg.buttons.len() {
                        prop_assert_eq!(pick_numbered(&Outbound { expects_text: false, ..msg.clone() }, &i.to_string()), Some(msg.buttons[i - 1].payload.clone()));
                    }
                }
            }
        }
    }

    #[test]
    fn signatures_are_checked_over_the_raw_bytes() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let good = sign(b"rahasia", body);
        assert!(verify_signature(b"rahasia", body, Some(&good)));
        assert!(!verify_signature(b"lain", body, Some(&good)));
        assert!(!verify_signature(b"rahasia", br#"{"object": "whatsapp_business_account","entry":[]}"#, Some(&good)));
        assert!(!verify_signature(b"rahasia", body, None));
        assert!(!verify_signature(b"rahasia", body, Some("sha256=zz")));
        assert!(!verify_signature(b"rahasia", body, Some(good.trim_start_matches("sha256="))));
    }

    #[test]
    fn three_short_choices_are_reply_buttons() {
        let msg = Outbound::with_buttons("Setuju?", vec![b("✅ Setuju", "agree:1"), b("❌ Hapus", "drop:1")]);
        let out = render(&msg, "6281234", &LABELS);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["interactive"]["type"], "button");
        assert_eq!(out[0]["interactive"]["action"]["buttons"][1]["reply"]["id"], "drop:1");
        assert_eq!(out[0]["to"], "6281234");
    }

    #[test]
    fn long_labels_and_up_to_ten_choices_are_a_list_with_the_full_label_kept() {
        let long = "Bumbu Dapur Bu Kasiyem · Rp 33.500/kg";
        let msg = Outbound::with_buttons("Pilih lapak", vec![b(long, "off:1"), b("Kembali", "menu")]);
        let out = render(&msg, "62", &LABELS);
        assert_eq!(out.len(), 1);
        let rows = &out[0]["interactive"]["action"]["sections"][0]["rows"];
        let title = rows[0]["title"].as_str().expect("title");
        assert!(title.chars().count() <= MAX_ROW_TITLE, "{title}");
        assert_eq!(rows[0]["description"], long);
    }

    #[test]
    fn eleven_to_thirteen_choices_are_a_list_and_buttons_and_more_are_numbered() {
        let many: Vec<Button> = (1..=11).map(|i| b(&format!("Barang {i}"), &format!("c:{i}"))).collect();
        let out = render(&Outbound::with_buttons("Sayur 1/3", many.clone()), "62", &LABELS);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["interactive"]["action"]["sections"][0]["rows"].as_array().map(Vec::len), Some(8));
        assert_eq!(out[1]["interactive"]["action"]["buttons"].as_array().map(Vec::len), Some(3));
        let lots: Vec<Button> = (1..=20).map(|i| b(&format!("Barang {i}"), &format!("c:{i}"))).collect();
        let msg = Outbound::with_buttons("Semua", lots);
        let out = render(&msg, "62", &LABELS);
        let text = out.iter().map(|m| m["text"]["body"].as_str().unwrap_or_default()).collect::<String>();
        assert!(text.contains("20. Barang 20"), "{text}");
        assert_eq!(pick_numbered(&msg, "20"), Some("c:20".into()));
        assert_eq!(pick_numbered(&msg, "21"), None);
        assert_eq!(pick_numbered(&msg, "0"), None);
    }

    #[test]
    fn long_texts_go_first_and_the_menu_body_fits() {
        let text = "baris panjang sekali\n".repeat(300);
        let msg = Outbound::with_buttons(text, vec![b("Menu", "menu")]);
        let out = render(&msg, "62", &LABELS);
        assert!(out.len() >= 3);
        let last = out.last().expect("menu");
        assert!(last["interactive"]["body"]["text"].as_str().expect("body").chars().count() <= MAX_INTERACTIVE_BODY);
        for m in &out[..out.len() - 1] {
            assert!(m["text"]["body"].as_str().expect("text").chars().count() <= MAX_TEXT);
        }
    }

    #[test]
    fn a_location_question_asks_with_the_platform_control() {
        let mut msg = Outbound::text("Kirim ke mana?");
        msg.request = Some(Request::Location);
        let out = render(&msg, "62", &LABELS);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["interactive"]["type"], "location_request_message");
        assert_eq!(out[0]["interactive"]["body"]["text"], "Kirim ke mana?");
        msg.buttons = vec![b("Alamat tersimpan", "addr:saved"), b("Batal", "abort")];
        let out = render(&msg, "62", &LABELS);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1]["interactive"]["body"]["text"], "Kirim lokasi:");
    }

    #[test]
    fn a_template_carries_the_text_on_one_line() {
        let t = template("62", "pasar_kabar", "id", "Pesanan baru BLB-0001\n• Kangkung 3 ikat\t  Rp 9.000");
        assert_eq!(t["type"], "template");
        assert_eq!(t["template"]["name"], "pasar_kabar");
        assert_eq!(t["template"]["language"]["code"], "id");
        let p = t["template"]["components"][0]["parameters"][0]["text"].as_str().expect("param");
        assert_eq!(p, "Pesanan baru BLB-0001 • Kangkung 3 ikat Rp 9.000");
    }

    #[test]
    fn a_photo_carries_its_text_as_caption() {
        let mut msg = Outbound::text("Bawang merah segar");
        msg.photo = Some("https://example.id/bm.jpg".into());
        let out = render(&msg, "62", &LABELS);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["image"]["caption"], "Bawang merah segar");
    }

    #[test]
    fn a_chart_and_a_file_go_as_media_to_upload_with_their_caption() {
        let chart = crate::channel::Chart {
            title: "Pesanan per jam".into(),
            x_labels: vec!["07".into(), "08".into()],
            y_label: "pesanan".into(),
            series: vec![crate::channel::Series { name: "Pasar Blimbing".into(), values: vec![1, 2] }],
        };
        let mut msg = Outbound::text("📈 Pesanan per jam");
        msg.chart = Some(chart.clone());
        let out = render(&msg, "6281", &LABELS);
        assert_eq!(out.len(), 1);
        assert_eq!(chart_of(&out[0]), Some(chart));
        assert_eq!(out[0]["image"]["caption"], "📈 Pesanan per jam");
        let sent = with_media_id(&out[0], "media-2");
        assert_eq!(sent["image"], json!({"id": "media-2", "caption": "📈 Pesanan per jam"}));
        assert_eq!(caption_as_text(&out[0])["text"]["body"], "📈 Pesanan per jam");

        let doc = crate::channel::Document {
            file_name: "pesanan.csv".into(),
            mime: "text/csv".into(),
            content: "\u{feff}market,order\n".into(),
        };
        let mut msg = Outbound::text("📄 2 pesanan");
        msg.document = Some(doc.clone());
        let out = render(&msg, "6281", &LABELS);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["type"], "document");
        assert_eq!(document_of(&out[0]), Some(doc));
        let sent = with_media_id(&out[0], "media-3");
        assert_eq!(sent["document"], json!({"id": "media-3", "filename": "pesanan.csv", "caption": "📄 2 pesanan"}));
        assert_eq!(document_of(&sent), None);
    }

    #[test]
    fn a_photo_sent_to_this_number_goes_by_its_media_id() {
        let mut msg = Outbound::text("Bawang merah segar");
        msg.photo = Some("1234567890".into());
        let out = render(&msg, "62", &LABELS);
        assert_eq!(out[0]["image"]["id"], "1234567890");
        assert!(out[0]["image"]["link"].is_null());
    }

    #[test]
    fn a_qr_code_goes_first_as_an_image_to_upload_with_the_caption_rules_of_a_photo() {
        let qris = "00020101021226570011ID.CO.QRIS";
        // Text alone that fits: the caption, one message.
        let mut msg = Outbound::text("Bayar Rp 39.500 dengan QRIS");
        msg.qr = Some(qris.into());
        msg.photo = Some("https://example.id/ignored.jpg".into());
        let out = render(&msg, "62", &LABELS);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["type"], "image");
        assert_eq!(qr_content(&out[0]), Some(qris));
        assert_eq!(out[0]["image"]["caption"], "Bayar Rp 39.500 dengan QRIS");
        assert!(out[0]["image"]["link"].is_null(), "the QR code wins over a photo");
        // Sent by the uploaded media's id, the marker gone, the caption kept.
        let sent = with_media_id(&out[0], "media-1");
        assert_eq!(sent["image"], json!({"id": "media-1", "caption": "Bayar Rp 39.500 dengan QRIS"}));
        assert_eq!(qr_content(&sent), None);
        // Undrawable (it cannot happen for our payloads): the caption as text.
        assert_eq!(qr_as_text(&out[0])["text"]["body"], "Bayar Rp 39.500 dengan QRIS");
        // With a button: the picture alone, then the text with the button.
        msg.buttons = vec![b("❌ Batalkan pesanan", "cancel:BLB-0001")];
        let out = render(&msg, "62", &LABELS);
        assert_eq!(out.len(), 2);
        assert_eq!(qr_content(&out[0]), Some(qris));
        assert!(out[0]["image"]["caption"].is_null());
        assert_eq!(out[1]["interactive"]["body"]["text"], "Bayar Rp 39.500 dengan QRIS");
        assert_eq!(out[1]["interactive"]["action"]["buttons"][0]["reply"]["id"], "cancel:BLB-0001");
        // Text too long for a caption: the picture alone, then the text.
        let long = "Bayar dengan QRIS. ".repeat(60);
        let mut msg = Outbound::text(long.clone());
        msg.qr = Some(qris.into());
        let out = render(&msg, "62", &LABELS);
        assert_eq!(out.len(), 2);
        assert!(out[0]["image"]["caption"].is_null());
        assert_eq!(out[1]["text"]["body"], long.trim());
    }

    #[test]
    fn deliveries_become_events_and_statuses() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
            "messaging_product":"whatsapp","metadata":{"display_phone_number":"62341","phone_number_id":"1001"},
            "contacts":[{"profile":{"name":"Ani"},"wa_id":"6281234567890"}],
            "messages":[
              {"from":"6281234567890","id":"wamid.A","timestamp":"1764300000","type":"text","text":{"body":"/cari brambang"}},
              {"from":"6281234567890","id":"wamid.B","timestamp":"1764300001","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"off:7","title":"Bu Sri"}}},
              {"from":"6281234567890","id":"wamid.C","timestamp":"1764300002","type":"reaction","reaction":{"message_id":"wamid.X","emoji":"+"}},
              {"from":"6281234567890","id":"wamid.D","timestamp":"1764300003","type":"sticker","sticker":{"id":"s"}}
            ],
            "statuses":[{"id":"wamid.OUT","status":"failed","timestamp":"1","recipient_id":"6281234567890","errors":[{"code":131047,"title":"Re-engagement message"}]}]
        }}]}]}"#;
        let parsed = parse_delivery(body).expect("parses");
        assert_eq!(parsed.messages.len(), 4);
        let ev = parsed.messages[0].event("blimbing", Utc::now()).expect("event");
        assert_eq!(ev.source_id, "whatsapp:wamid.A");
        assert_eq!(ev.user.id, "6281234567890");
        assert_eq!(ev.display_name.as_deref(), Some("Ani"));
        assert_eq!(ev.inbound, Inbound::Command { name: "cari".into(), args: "brambang".into() });
        assert_eq!(parsed.messages[1].inbound, Some(Inbound::Button("off:7".into())));
        assert_eq!(parsed.messages[2].event("blimbing", Utc::now()), None, "a reaction is not for the bot");
        assert_eq!(parsed.messages[3].inbound, Some(Inbound::Text(String::new())));
        assert_eq!(parsed.statuses[0].error, Some((131047, "Re-engagement message".into())));
        assert!(matches!(parse_delivery(b"{not json"), Err(PayloadError::NotJson(_))));
        assert!(matches!(parse_delivery(br#"{"object":"page","entry":[]}"#), Err(PayloadError::NotWhatsApp(_))));
    }
}
