//! A fake WhatsApp Cloud API (Graph API) on 127.0.0.1 with a random port: `POST
//! /{phone_number_id}/messages` answers like Meta (a wamid per message), records every body with
//! the bearer token, and lets a test inject Graph API errors for one recipient; `POST
//! /{phone_number_id}/media` takes a multipart upload, records it and answers its media id
//! (`media-N`), or an injected error. For the tests and `pasar loadtest`; like the fake Bot API it
//! keeps everything behind one lock, to see exactly what was sent.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A message the bot sent (accepted by the fake).
#[derive(Debug, Clone)]
pub struct WaSent {
    pub number: String,
    pub to: String,
    pub wamid: String,
    pub body: Value,
    pub at: Instant,
}

impl WaSent {
    /// What the user reads: the text, the interactive body, or the caption.
    pub fn text(&self) -> String {
        let b = &self.body;
        b["text"]["body"]
            .as_str()
            .or(b["interactive"]["body"]["text"].as_str())
            .or(b["image"]["caption"].as_str())
            .or(b["document"]["caption"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    /// The media id of a picture sent by its upload.
    pub fn media_id(&self) -> Option<&str> {
        self.body["image"]["id"].as_str()
    }

    /// The media id and file name of a document sent by its upload.
    pub fn document(&self) -> Option<(&str, &str)> {
        Some((self.body["document"]["id"].as_str()?, self.body["document"]["filename"].as_str()?))
    }

    /// Every choice offered: (title or description, id).
    pub fn choices(&self) -> Vec<(String, String)> {
        let i = &self.body["interactive"];
        let mut out = Vec::new();
        for b in i["action"]["buttons"].as_array().cloned().unwrap_or_default() {
            out.push((
                b["reply"]["title"].as_str().unwrap_or_default().to_string(),
                b["reply"]["id"].as_str().unwrap_or_default().to_string(),
            ));
        }
        for s in i["action"]["sections"].as_array().cloned().unwrap_or_default() {
            for r in s["rows"].as_array().cloned().unwrap_or_default() {
                let label = r["description"].as_str().or(r["title"].as_str()).unwrap_or_default();
                out.push((label.to_string(), r["id"].as_str().unwrap_or_default().to_string()));
            }
        }
        out
    }

    /// The id of the choice whose label contains `label`.
    pub fn choice(&self, label: &str) -> Option<String> {
        self.choices().into_iter().find(|(l, _)| l.contains(label)).map(|(_, id)| id)
    }
}

/// A file uploaded to the media endpoint (accepted by the fake).
#[derive(Debug, Clone)]
pub struct WaUpload {
    pub number: String,
    pub id: String,
    /// The form's text fields (`messaging_product`, `type`).
    pub fields: Vec<(String, String)>,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
    pub token: String,
}

#[derive(Default)]
struct Graph {
    uploads: Vec<WaUpload>,
    /// Upload attempts: accepted or not.
    upload_calls: Vec<bool>,
    /// Errors to answer uploads with: (HTTP status, error code, times left).
    upload_failures: Vec<(u16, i64, u32)>,
    sent: Vec<WaSent>,
    /// Every call: recipient and whether it was accepted.
    calls: Vec<(String, bool)>,
    tokens: Vec<String>,
    next: u64,
    /// Errors to answer for one recipient: (to, HTTP status, error code, times left).
    failures: Vec<(String, u16, i64, u32)>,
    /// Calls to one recipient that hang this long and are then lost: (to, delay, times left).
    hangs: Vec<(String, Duration, u32)>,
    /// Messages delivered at once and answered late: (to, delay, times).
    late: Vec<(String, Duration, u32)>,
    /// Media users sent the number, by their media id: (mime type, bytes).
    received: std::collections::HashMap<String, (String, Vec<u8>)>,
    /// Where `GET /{media_id}` says a received file can be downloaded.
    base: String,
    /// Refuse what the Cloud API refuses for its size (see [`strict_refusal`]).
    strict: bool,
    /// The messages refused by `strict`: recipient, body and why.
    refused: Vec<(String, Value, String)>,
}

/// Why the Cloud API would refuse a message for the length of its parts, if it would: text up
/// to 4,096 characters (not empty), an interactive body up to 1,024, a caption up to 1,024, at
/// most 3 reply buttons of 20 characters with ids up to 256, a list of at most 10 rows in all
/// with titles up to 24, descriptions up to 72, ids up to 200, and a button label up to 20.
pub fn strict_refusal(body: &Value) -> Option<String> {
    let chars = |v: &Value| v.as_str().map(|s| s.chars().count()).unwrap_or(0);
    let too_long =
        |what: &str, v: &Value, max: usize| (chars(v) > max).then(|| format!("{what} over {max} characters"));
    match body["type"].as_str().unwrap_or_default() {
        "text" => {
            let text = &body["text"]["body"];
            if text.as_str().is_none_or(|t| t.trim().is_empty()) {
                return Some("empty text body".into());
            }
            too_long("text body", text, 4096)
        }
        "image" | "document" => {
            let kind = body["type"].as_str().unwrap_or_default();
            too_long("caption", &body[kind]["caption"], 1024)
        }
        "interactive" => {
            let i = &body["interactive"];
            if i["type"] != "location_request_message" && chars(&i["body"]["text"]) == 0 {
                return Some("empty interactive body".into());
            }
            if let Some(why) = too_long("interactive body", &i["body"]["text"], 1024)
                .or_else(|| too_long("header", &i["header"]["text"], 60))
                .or_else(|| too_long("footer", &i["footer"]["text"], 60))
                .or_else(|| too_long("list button", &i["action"]["button"], 20))
            {
                return Some(why);
            }
            let buttons = i["action"]["buttons"].as_array().cloned().unwrap_or_default();
            if buttons.len() > 3 {
                return Some("more than 3 buttons".into());
            }
            for b in &buttons {
                if let Some(why) = too_long("button title", &b["reply"]["title"], 20)
                    .or_else(|| too_long("button id", &b["reply"]["id"], 256))
                {
                    return Some(why);
                }
            }
            let sections = i["action"]["sections"].as_array().cloned().unwrap_or_default();
            let rows: Vec<Value> =
                sections.iter().flat_map(|s| s["rows"].as_array().cloned().unwrap_or_default()).collect();
            if rows.len() > 10 {
                return Some("more than 10 rows".into());
            }
            for s in &sections {
                if let Some(why) = too_long("section title", &s["title"], 24) {
                    return Some(why);
                }
            }
            for r in &rows {
                if let Some(why) = too_long("row title", &r["title"], 24)
                    .or_else(|| too_long("row description", &r["description"], 72))
                    .or_else(|| too_long("row id", &r["id"], 200))
                {
                    return Some(why);
                }
            }
            None
        }
        _ => None,
    }
}

pub struct FakeGraph {
    pub url: String,
    state: Arc<Mutex<Graph>>,
}

async fn messages(
    State(state): State<Arc<Mutex<Graph>>>,
    Path((_version, number)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let to = body["to"].as_str().unwrap_or_default().to_string();
    let hang = {
        let mut g = state.lock().expect("fake graph");
        match g.hangs.iter_mut().find(|(t, _, left)| *t == to && *left > 0) {
            Some(rule) => {
                rule.2 -= 1;
                let delay = rule.1;
                g.calls.push((to.clone(), false));
                Some(delay)
            }
            None => None,
        }
    };
    if let Some(delay) = hang {
        tokio::time::sleep(delay).await;
        return (axum::http::StatusCode::GATEWAY_TIMEOUT, "lost").into_response();
    }
    let mut late = None;
    let answer = answer_message(&state, number, &headers, body, to, &mut late);
    if let Some(delay) = late {
        tokio::time::sleep(delay).await;
    }
    answer
}

/// The fake's answer to a message; `late`: how long it waits before giving it.
fn answer_message(
    state: &Mutex<Graph>,
    number: String,
    headers: &HeaderMap,
    body: Value,
    to: String,
    late: &mut Option<Duration>,
) -> axum::response::Response {
    let mut g = state.lock().expect("fake graph");
    g.tokens.push(bearer(headers));
    if let Some(rule) = g.failures.iter_mut().find(|(t, _, _, left)| *t == to && *left > 0) {
        rule.3 -= 1;
        let (status, code) = (rule.1, rule.2);
        g.calls.push((to, false));
        return (
            axum::http::StatusCode::from_u16(status).expect("status"),
            axum::Json(json!({"error": {"message": format!("fake error {code}"), "type": "OAuthException", "code": code, "fbtrace_id": "x"}})),
        )
            .into_response();
    }
    if body["messaging_product"] != "whatsapp" || to.is_empty() {
        g.calls.push((to, false));
        return (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": "(#100) Invalid parameter", "code": 100}})),
        )
            .into_response();
    }
    if g.strict
        && let Some(why) = strict_refusal(&body)
    {
        g.calls.push((to.clone(), false));
        g.refused.push((to, body, why.clone()));
        return (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": {"message": format!("(#131009) Parameter value is not valid: {why}"), "code": 131009}}),
            ),
        )
            .into_response();
    }
    // A picture goes by link or by the id of an upload; anything else is not Meta's API.
    if body["type"] == "image" {
        let image = &body["image"];
        let uploaded = image["id"].as_str().is_some_and(|id| g.uploads.iter().any(|u| u.id == id));
        let fields_ok =
            image.as_object().is_some_and(|o| o.keys().all(|k| ["id", "link", "caption"].contains(&k.as_str())));
        if !fields_ok || !(uploaded || image["link"].is_string()) {
            g.calls.push((to, false));
            return (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {"message": "(#100) Invalid image parameter", "code": 100}})),
            )
                .into_response();
        }
    }
    g.next += 1;
    let wamid = format!("wamid.out.{}", g.next);
    g.calls.push((to.clone(), true));
    if let Some(rule) = g.late.iter_mut().find(|(t, _, left)| *t == to && *left > 0) {
        rule.2 -= 1;
        *late = Some(rule.1);
    }
    g.sent.push(WaSent { number, to: to.clone(), wamid: wamid.clone(), body, at: Instant::now() });
    axum::Json(
        json!({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}], "messages": [{"id": wamid}]}),
    )
    .into_response()
}

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string()
}

async fn media(
    State(state): State<Arc<Mutex<Graph>>>,
    Path((_version, number)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let bad = |message: &str| {
        (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": message, "type": "OAuthException", "code": 100}})),
        )
            .into_response()
    };
    let Some(boundary) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
    else {
        state.lock().expect("fake graph").upload_calls.push(false);
        return bad("(#100) not multipart/form-data");
    };
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let (mut fields, mut file) = (Vec::new(), None);
    while let Ok(Some(field)) = parts.next_field().await {
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(String::from);
        let content_type = field.content_type().map(|m| m.to_string());
        let Ok(bytes) = field.bytes().await else { break };
        if name == "file" {
            file = Some((file_name, content_type, bytes.to_vec()));
        } else {
            fields.push((name, String::from_utf8_lossy(&bytes).to_string()));
        }
    }
    let mut g = state.lock().expect("fake graph");
    if let Some(rule) = g.upload_failures.iter_mut().find(|(.., left)| *left > 0) {
        rule.2 -= 1;
        let (status, code) = (rule.0, rule.1);
        g.upload_calls.push(false);
        return (
            axum::http::StatusCode::from_u16(status).expect("status"),
            axum::Json(json!({"error": {"message": format!("fake error {code}"), "type": "OAuthException", "code": code, "fbtrace_id": "x"}})),
        )
            .into_response();
    }
    let product = fields.iter().any(|(k, v)| k == "messaging_product" && v == "whatsapp");
    let Some((file_name, content_type, bytes)) = file.filter(|_| product) else {
        g.upload_calls.push(false);
        return bad("(#100) messaging_product and file are required");
    };
    g.next += 1;
    let id = format!("media-{}", g.next);
    g.upload_calls.push(true);
    g.uploads.push(WaUpload {
        number,
        id: id.clone(),
        fields,
        file_name,
        content_type,
        bytes,
        token: bearer(&headers),
    });
    axum::Json(json!({"id": id})).into_response()
}

/// `GET /{version}/{media_id}`: where a file a user sent can be downloaded (needs the token).
async fn media_info(
    State(state): State<Arc<Mutex<Graph>>>,
    Path((_version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> axum::response::Response {
    let g = state.lock().expect("fake graph");
    match g.received.get(&id) {
        Some((mime, bytes)) if !bearer(&headers).is_empty() => axum::Json(json!({
            "messaging_product": "whatsapp", "id": id, "mime_type": mime, "file_size": bytes.len(),
            "url": format!("{}/files/{id}", g.base)
        }))
        .into_response(),
        _ => (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": "(#100) Invalid media id", "code": 100}})),
        )
            .into_response(),
    }
}

/// The download of a file a user sent (the URL `media_info` gave; needs the token too).
async fn media_file(
    State(state): State<Arc<Mutex<Graph>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> axum::response::Response {
    let g = state.lock().expect("fake graph");
    match g.received.get(&id) {
        Some((mime, bytes)) if !bearer(&headers).is_empty() => {
            ([(axum::http::header::CONTENT_TYPE, mime.clone())], bytes.clone()).into_response()
        }
        _ => (axum::http::StatusCode::NOT_FOUND, "no").into_response(),
    }
}

impl FakeGraph {
    pub fn start() -> FakeGraph {
        let state = Arc::new(Mutex::new(Graph::default()));
        let app = Router::new()
            .route("/{version}/{number}/messages", axum::routing::post(messages))
            .route("/{version}/{number}/media", axum::routing::post(media))
            .route("/{version}/{id}", axum::routing::get(media_info))
            .route("/files/{id}", axum::routing::get(media_file))
            .with_state(Arc::clone(&state));
        let addr = super::serve_on_thread(app);
        state.lock().expect("fake graph").base = format!("http://{addr}");
        FakeGraph { url: format!("http://{addr}/v21.0"), state }
    }

    /// Refuse from now on what the Cloud API refuses for its size (see [`strict_refusal`]).
    pub fn strict(&self) {
        self.state.lock().expect("fake").strict = true;
    }

    /// The messages refused for their size: recipient, body, why.
    pub fn refused(&self) -> Vec<(String, Value, String)> {
        self.state.lock().expect("fake").refused.clone()
    }

    /// A file a user sends the number (a photo): downloadable by its media id.
    pub fn received_media(&self, id: &str, mime: &str, bytes: &[u8]) {
        self.state.lock().expect("fake").received.insert(id.into(), (mime.into(), bytes.to_vec()));
    }

    /// The next `times` messages to `to` get this Graph API error.
    pub fn fail(&self, to: &str, status: u16, code: i64, times: u32) {
        self.state.lock().expect("fake").failures.push((to.into(), status, code, times));
    }

    /// The next `times` calls to `to` hang for `delay` (longer than the client waits).
    pub fn hang(&self, to: &str, delay: Duration, times: u32) {
        self.state.lock().expect("fake").hangs.push((to.into(), delay, times));
    }

    /// The next `times` messages to `to` are delivered at once (`sent_to` shows them) and
    /// answered after `delay`: Meta slow to answer a call it has carried out.
    pub fn answer_late(&self, to: &str, delay: Duration, times: u32) {
        self.state.lock().expect("fake").late.push((to.into(), delay, times));
    }

    /// The next `times` media uploads get this Graph API error.
    pub fn fail_uploads(&self, status: u16, code: i64, times: u32) {
        self.state.lock().expect("fake").upload_failures.push((status, code, times));
    }

    /// The files uploaded (accepted), in order.
    pub fn uploads(&self) -> Vec<WaUpload> {
        self.state.lock().expect("fake").uploads.clone()
    }

    /// Upload attempts: (accepted, refused).
    pub fn upload_calls(&self) -> (usize, usize) {
        let g = self.state.lock().expect("fake");
        (g.upload_calls.iter().filter(|ok| **ok).count(), g.upload_calls.iter().filter(|ok| !**ok).count())
    }

    pub fn clear_failures(&self, to: &str) {
        self.state.lock().expect("fake").failures.retain(|(t, ..)| t != to);
    }

    pub fn sent_to(&self, to: &str) -> Vec<WaSent> {
        self.state.lock().expect("fake").sent.iter().filter(|m| m.to == to).cloned().collect()
    }

    /// Calls to `to`: (accepted, refused).
    pub fn calls_to(&self, to: &str) -> (usize, usize) {
        let g = self.state.lock().expect("fake");
        let ok = g.calls.iter().filter(|(t, ok)| t == to && *ok).count();
        let refused = g.calls.iter().filter(|(t, ok)| t == to && !*ok).count();
        (ok, refused)
    }

    pub fn tokens(&self) -> Vec<String> {
        self.state.lock().expect("fake").tokens.clone()
    }

    /// Waits (up to a minute) for a message to `to` containing `needle`, after the first
    /// `after` messages to them; returns it and the new count.
    pub fn wait_for(&self, to: &str, needle: &str, after: usize) -> (WaSent, usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let msgs = self.sent_to(to);
            if let Some((i, m)) = msgs.iter().enumerate().skip(after).find(|(_, m)| m.text().contains(needle)) {
                return (m.clone(), i + 1);
            }
            assert!(
                Instant::now() < deadline,
                "no message with {needle:?} to {to}; got: {:#?}",
                msgs.iter().map(|m| m.text()).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the message to `to` that offers a choice labelled `label`, after `after`.
    pub fn wait_for_choice(&self, to: &str, label: &str, after: usize) -> (String, usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let msgs = self.sent_to(to);
            if let Some((i, id)) =
                msgs.iter().enumerate().skip(after).find_map(|(i, m)| m.choice(label).map(|id| (i, id)))
            {
                return (id, i + 1);
            }
            assert!(
                Instant::now() < deadline,
                "no choice {label:?} offered to {to}; got: {:#?}",
                msgs.iter().map(|m| m.choices()).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
