//! `pasar run` on WhatsApp: the webhook (`GET /whatsapp` for Meta's subscription check,
//! `POST /whatsapp` for deliveries, signed with the app secret) and one rate-limited sender per
//! market number, all on the Cloud API (a QR picture is uploaded to the number's media first and
//! sent by its media id).
//!
//! A delivery is in the inbox (keyed by each message's wamid) before the 200, so Meta's
//! redeliveries, which go on for days, are ignored; processing happens after the answer.

use super::{API_DOWN_MAX_WAIT, MAX_ATTEMPTS, MAX_BACKOFF, Round, Shared, backoff, start_round};
use crate::channel::whatsapp::{self, Labels};
use crate::channel::{ChannelKind, Envelope, Inbound, InboundEvent, NoticeKind, Outbound, UserKey};
use crate::config::Config;
use crate::secret::Secret;
use crate::store::{SendResult, Store};
use crate::text::{Key, Lang};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variables holding WhatsApp's secrets, each with its old name (still read,
/// with a warning).
pub const ACCESS_TOKEN_VARIABLE: (&str, &str) = ("PASAR_WHATSAPP_ACCESS_TOKEN", "WHATSAPP_ACCESS_TOKEN");
pub const APP_SECRET_VARIABLE: (&str, &str) = ("PASAR_WHATSAPP_APP_SECRET", "WHATSAPP_APP_SECRET");
pub const VERIFY_TOKEN_VARIABLE: (&str, &str) = ("PASAR_WHATSAPP_VERIFY_TOKEN", "WHATSAPP_VERIFY_TOKEN");

/// Webhook bodies above this are refused (413) without being read: Meta's are a few kilobytes.
pub const MAX_WEBHOOK_BODY: usize = 256 * 1024;

/// What runs on WhatsApp.
#[derive(Debug, Clone)]
pub struct WhatsAppPlan {
    /// Phone number id -> market slug.
    pub numbers: HashMap<String, String>,
    pub access_token: Secret,
    pub app_secret: Secret,
    pub verify_token: Secret,
}

fn secret((name, old_name): (&str, &str)) -> Option<Secret> {
    Secret::from_env(name, Some(old_name))
}

/// The markets with a WhatsApp number and the secrets to serve them. `Ok(None)` when no market
/// has a number; an error (WhatsApp does not run, the rest does) when a secret is missing.
pub fn whatsapp_plan(config: &Config, markets: &[String]) -> anyhow::Result<Option<WhatsAppPlan>> {
    if config.whatsapp.phone_numbers.is_empty() {
        return Ok(None);
    }
    let without: Vec<&str> =
        markets.iter().filter(|m| !config.whatsapp.phone_numbers.contains_key(*m)).map(String::as_str).collect();
    if !without.is_empty() {
        tracing::info!(markets = %without.join(", "), "no whatsapp_phone_number_id: these markets have no WhatsApp bot");
    }
    for slug in config.whatsapp.phone_numbers.keys() {
        if !markets.contains(slug) {
            anyhow::bail!("markets.{slug}.whatsapp_phone_number_id: there is no market `{slug}`");
        }
    }
    let missing: Vec<&str> = [ACCESS_TOKEN_VARIABLE, APP_SECRET_VARIABLE, VERIFY_TOKEN_VARIABLE]
        .into_iter()
        .filter(|v| secret(*v).is_none())
        .map(|(name, _)| name)
        .collect();
    if !missing.is_empty() {
        anyhow::bail!("WhatsApp needs {} in the environment", missing.join(", "));
    }
    if config.server_listen.is_none() {
        anyhow::bail!("WhatsApp needs [server] listen: Meta posts to <your address>/whatsapp");
    }
    Ok(Some(WhatsAppPlan {
        numbers: config.whatsapp.phone_numbers.iter().map(|(m, id)| (id.clone(), m.clone())).collect(),
        access_token: secret(ACCESS_TOKEN_VARIABLE).unwrap_or_default(),
        app_secret: secret(APP_SECRET_VARIABLE).unwrap_or_default(),
        verify_token: secret(VERIFY_TOKEN_VARIABLE).unwrap_or_default(),
    }))
}

/// What the webhook handlers need.
pub(super) struct WebhookState {
    pub(super) plan: WhatsAppPlan,
    pub(super) store: Arc<Mutex<Store>>,
    pub(super) shared: Arc<Shared>,
}

/// The `/whatsapp` routes, with the body limit.
pub(super) fn routes(state: Arc<WebhookState>) -> axum::Router {
    axum::Router::new()
        .route("/whatsapp", axum::routing::get(verify).post(webhook))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY))
        .with_state(state)
}

/// Meta's subscription check: `hub.mode=subscribe` with our verify token gets the challenge
/// back; anything else is 403.
async fn verify(
    State(state): State<Arc<WebhookState>>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    use subtle::ConstantTimeEq;
    let token_ok = q
        .get("hub.verify_token")
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(state.plan.verify_token.expose().as_bytes())));
    match (q.get("hub.mode").map(String::as_str), q.get("hub.challenge")) {
        (Some("subscribe"), Some(challenge)) if token_ok => (StatusCode::OK, challenge.clone()),
        _ => (StatusCode::FORBIDDEN, String::new()),
    }
}

/// A delivery: signature first (401 without one, 403 when wrong, nothing stored), then the
/// payload (400 when it is not one), then the inbox, then 200.
async fn webhook(State(state): State<Arc<WebhookState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(signature) = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok()) else {
        return StatusCode::UNAUTHORIZED;
    };
    if !whatsapp::verify_signature(state.plan.app_secret.expose().as_bytes(), &body, Some(signature)) {
        return StatusCode::FORBIDDEN;
    }
    let parsed = match whatsapp::parse_delivery(&body) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "WhatsApp webhook body refused");
            return StatusCode::BAD_REQUEST;
        }
    };
    let now = Utc::now();
    let stored = {
        let inner = Arc::clone(&state);
        super::on_io_store(&state.shared, &state.store, move |store| {
            let state = inner;
            let mut events: Vec<InboundEvent> = Vec::new();
            for m in &parsed.messages {
                let Some(market) = state.plan.numbers.get(&m.phone_number_id) else {
                    tracing::warn!(phone_number_id = %m.phone_number_id, "a message for a number no market has");
                    continue;
                };
                let Some(mut event) = m.event(market, now) else {
                    continue;
                };
                // A typed number answering a numbered menu picks that choice.
                if let Inbound::Text(t) = &event.inbound
                    && !t.is_empty()
                    && t.trim().chars().all(|c| c.is_ascii_digit() || c == '.')
                {
                    // The newest menu the user got: one being sent or sent but not yet recorded
                    // (the user may answer before Meta answers the call, or before the sender's
                    // round ends), else the newest one recorded as sent.
                    let key = (market.clone(), event.user.id.clone());
                    let unrecorded =
                        state.shared.wa_menus.lock().ok().and_then(|menus| menus.get(&key).map(|(_, m)| m.clone()));
                    let menu = match unrecorded {
                        Some(menu) => Some(menu),
                        None => {
                            let recent = store.recent_sent_to(market, &event.user, 10).map_err(|e| e.to_string())?;
                            recent.into_iter().find(|o| !o.buttons.is_empty())
                        }
                    };
                    if let Some(payload) = menu.and_then(|menu| whatsapp::pick_numbered(&menu, t)) {
                        event.inbound = Inbound::Button(payload);
                    }
                }
                events.push(event);
            }
            let new = store.ingest(&events).map_err(|e| e.to_string())?;
            for e in &events {
                state.shared.ops.bot_ok(ChannelKind::WhatsApp, &e.market);
            }
            for s in &parsed.statuses {
                let error = s.error.as_ref().map(|(code, title)| format!("{code}: {title}"));
                if s.status == "failed" && s.error.as_ref().is_some_and(|(code, _)| *code == 131047) {
                    // Accepted, then refused: the user's window had closed. Held again, it goes
                    // out when they write; nothing they were told about is lost.
                    let reason = format!("outside the 24-hour window: {}", error.as_deref().unwrap_or_default());
                    if store.hold_again(&s.wamid, &reason).map_err(|e| e.to_string())? {
                        tracing::warn!(wamid = %s.wamid, "delivery failed outside the 24-hour window; held again");
                        continue;
                    }
                }
                store.record_delivery(&s.wamid, &s.status, error.as_deref()).map_err(|e| e.to_string())?;
            }
            Ok(new)
        })
        .await
    };
    // Not stored: Meta delivers it again.
    super::stored_answer(stored, &state.shared, "a WhatsApp delivery")
}

/// How one Graph API call ended.
#[derive(Debug, PartialEq)]
enum Sent {
    /// Accepted, with the wamid.
    Ok(String),
    /// The number's throughput limit (130429, 80007, 4): the number waits.
    NumberLimited,
    /// Too many messages to this user (131056): this chat waits.
    UserLimited(String),
    /// Outside the 24-hour window (131047): a free-form message cannot go.
    OutsideWindow(String),
    /// Refused for good (bad request, unsupported, undeliverable): parked.
    Refused(String),
    /// Server trouble with this message: retry it later.
    Failed(String),
    /// The access token was refused (190, 401): the number waits, loudly; no message is blamed.
    Unauthorized(String),
    /// The Graph API could not be reached: the number waits; no message is blamed.
    Network(String),
    /// The service itself is down: Meta says so (2 "Service temporarily unavailable", 131016
    /// "Service unavailable"), or its front answers for it (502, 503, 504, or a 5xx page that is
    /// not the Graph API's JSON). Like [`Sent::Network`], the number waits and no message is
    /// blamed (a message's attempts, which park it in the end, are not counted).
    Unavailable(String),
}

/// Sorts a Graph API answer: HTTP status and the `error.code` of its body.
fn classify(status: u16, body: &serde_json::Value) -> Sent {
    if (200..300).contains(&status) {
        return match body["messages"][0]["id"].as_str() {
            Some(id) => Sent::Ok(id.to_string()),
            None => Sent::Failed(format!("no message id in {body}")),
        };
    }
    let code = body["error"]["code"].as_i64().unwrap_or(0);
    let text = format!(
        "{status} {code}: {}",
        body["error"]["message"].as_str().or(body["error"]["error_data"]["details"].as_str()).unwrap_or("")
    );
    match code {
        130429 | 80007 | 4 => Sent::NumberLimited,
        131056 => Sent::UserLimited(text),
        131047 => Sent::OutsideWindow(text),
        190 => Sent::Unauthorized(text),
        2 | 131016 => Sent::Unavailable(text),
        _ if matches!(status, 502..=504) || (status >= 500 && body.is_null()) => Sent::Unavailable(text),
        1 | 131000 => Sent::Failed(text),
        _ if status == 401 => Sent::Unauthorized(text),
        _ if status == 429 => Sent::NumberLimited,
        _ if status >= 500 => Sent::Failed(text),
        _ => Sent::Refused(text),
    }
}

/// Makes one Graph API call: the HTTP status and the JSON answer (`null` when it is not JSON),
/// or how it failed before an answer came.
async fn call(request: reqwest::RequestBuilder) -> Result<(u16, serde_json::Value), Sent> {
    match request.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.bytes().await {
                Ok(bytes) => Ok((status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))),
                Err(e) => Err(Sent::Failed(format!("{status}: reading the answer: {e}"))),
            }
        }
        // No connection at all (refused, or a route that answers nothing): the API is out of reach.
        Err(e) if e.is_connect() => Err(Sent::Network(e.to_string())),
        Err(e) if e.is_timeout() => Err(Sent::Failed(format!("timeout: {e}"))),
        Err(e) => Err(Sent::Network(e.to_string())),
    }
}

async fn post(client: &reqwest::Client, url: &str, token: &str, body: &serde_json::Value) -> Sent {
    match call(client.post(url).bearer_auth(token).json(body)).await {
        Ok((status, json)) => classify(status, &json),
        Err(sent) => sent,
    }
}

/// Uploads a PNG as the number's media (`POST /{phone_number_id}/media`): its media id, or the
/// failure sorted like a message's.
async fn upload_png(client: &reqwest::Client, url: &str, token: &str, png: Vec<u8>) -> Result<String, Sent> {
    upload_media(client, url, token, png, "qris.png".into(), "image/png").await
}

/// How long an upload of ours may be sent by its id (WhatsApp keeps uploads 30 days).
const UPLOAD_LIFETIME: Duration = Duration::from_secs(29 * 24 * 3600);
/// The largest picture WhatsApp sends (5 MB).
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

/// A picture a user sent this number, as an upload of the number's own: downloaded
/// (`GET /{media_id}` gives its URL, fetched with the token) and uploaded again; remembered
/// while the upload lasts.
async fn rehost(s: &Sender, media_url: &str, received: &str) -> Result<String, Sent> {
    if let Ok(cache) = s.rehosted.lock()
        && let Some((id, at)) = cache.get(received)
        && at.elapsed() < UPLOAD_LIFETIME
    {
        return Ok(id.clone());
    }
    // Uploaded before (by this process or an earlier one) and still kept by WhatsApp.
    let stored = {
        let (store, market, received) = (Arc::clone(&s.store), s.market.clone(), received.to_string());
        tokio::task::spawn_blocking(move || store.lock().ok().and_then(|g| g.photo_upload(&market, &received).ok()))
            .await
            .ok()
            .flatten()
            .flatten()
    };
    if let Some((id, at)) = stored
        && Utc::now().signed_duration_since(at).to_std().is_ok_and(|age| age < UPLOAD_LIFETIME)
    {
        if let Ok(mut cache) = s.rehosted.lock() {
            cache.insert(received.to_string(), (id.clone(), Instant::now()));
        }
        return Ok(id);
    }
    let info_url = format!("{}/{received}", s.graph_url.trim_end_matches('/'));
    let (status, info) = call(s.client.get(&info_url).bearer_auth(&s.access_token)).await?;
    if !(200..300).contains(&status) {
        return Err(classify(status, &info));
    }
    let Some(file_url) = info["url"].as_str() else {
        return Err(Sent::Refused(format!("no download URL for media {received}")));
    };
    let mime = info["mime_type"].as_str().unwrap_or("image/jpeg").to_string();
    let bytes = match s.client.get(file_url).bearer_auth(&s.access_token).send().await {
        // Too big to send: not downloaded at all.
        Ok(resp) if resp.content_length().is_some_and(|n| n > MAX_IMAGE_BYTES as u64) => {
            return Err(Sent::Refused(format!("media {received} is over WhatsApp's 5 MB")));
        }
        Ok(resp) if resp.status().is_success() => {
            resp.bytes().await.map_err(|e| Sent::Failed(format!("downloading media {received}: {e}")))?
        }
        Ok(resp) if resp.status().is_server_error() => {
            return Err(Sent::Failed(format!("downloading media {received}: {}", resp.status())));
        }
        Ok(resp) => return Err(Sent::Refused(format!("downloading media {received}: {}", resp.status()))),
        Err(e) if e.is_timeout() => return Err(Sent::Failed(format!("timeout: {e}"))),
        Err(e) => return Err(Sent::Network(e.to_string())),
    };
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(Sent::Refused(format!("media {received} is {} bytes, over WhatsApp's 5 MB", bytes.len())));
    }
    let name = if mime == "image/png" { "foto.png" } else { "foto.jpg" };
    let id = upload_media(&s.client, media_url, &s.access_token, bytes.to_vec(), name.into(), &mime).await?;
    if let Ok(mut cache) = s.rehosted.lock() {
        cache.insert(received.to_string(), (id.clone(), Instant::now()));
    }
    let (store, market, received, upload) = (Arc::clone(&s.store), s.market.clone(), received.to_string(), id.clone());
    let saved = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut guard = store.lock().map_err(|_| "store lock poisoned".to_string())?;
        guard.save_photo_upload(&market, &received, &upload, Utc::now()).map_err(|e| e.to_string())
    })
    .await;
    if !matches!(saved, Ok(Ok(()))) {
        tracing::warn!(market = %s.market, "remembering a photo's upload failed; it is uploaded again next time");
    }
    Ok(id)
}

/// A catalogue photo WhatsApp no longer has (received media is kept about a month): out of the
/// catalogue, and the admin who set it is asked to send it again.
async fn photo_gone(s: &Sender, received: &str) {
    let (store, market, texts, default_lang) =
        (Arc::clone(&s.store), s.market.clone(), Arc::clone(&s.texts), s.default_lang);
    let received = received.to_string();
    let result = tokio::task::spawn_blocking(move || -> Result<bool, String> {
        let mut guard = store.lock().map_err(|_| "store lock poisoned".to_string())?;
        let Some((commodity, admin)) =
            guard.photo_setter(&market, ChannelKind::WhatsApp, &received).map_err(|e| e.to_string())?
        else {
            return Ok(false);
        };
        let lang = guard.language_of(&admin).ok().flatten().unwrap_or(default_lang);
        let name = guard.commodity_name(&commodity, lang).map_err(|e| e.to_string())?.unwrap_or(commodity);
        let text = texts.render(&market, lang, Key::PhotoGone, &[("commodity", &name)]);
        let message = Outbound { notice: Some(NoticeKind::AdminAlert), ..Outbound::text(text) };
        let tell = Envelope { market: market.clone(), to: admin, message };
        guard.drop_photo(&market, ChannelKind::WhatsApp, &received, Some(&tell), Utc::now()).map_err(|e| e.to_string())
    })
    .await;
    match result {
        Ok(Ok(true)) => {
            tracing::warn!(market = %s.market, "a catalogue photo WhatsApp no longer has was removed; its admin is told");
            s.shared.ring_all();
        }
        Ok(Ok(false)) => {}
        other => tracing::error!(market = %s.market, result = ?other.map(|r| r.err()), "removing a stale photo failed"),
    }
}

/// Uploads a file as the number's media: its media id, or the failure sorted like a message's.
async fn upload_media(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    bytes: Vec<u8>,
    file_name: String,
    mime: &str,
) -> Result<String, Sent> {
    let file = reqwest::multipart::Part::bytes(bytes)
        .file_name(file_name)
        .mime_str(mime)
        .map_err(|e| Sent::Refused(format!("the upload's content type: {e}")))?;
    let form = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", mime.to_string())
        .part("file", file);
    let (status, json) = call(client.post(url).bearer_auth(token).multipart(form)).await?;
    if !(200..300).contains(&status) {
        return Err(classify(status, &json));
    }
    match json["id"].as_str() {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => Err(Sent::Failed(format!("no media id in {json}"))),
    }
}

/// Sends one rendered part. A QR picture or a chart is drawn and uploaded first, a file uploaded,
/// then sent by its media id;
/// a failed upload ends like a failed send of the part (retried, paused or parked the same way),
/// and the next try uploads again.
async fn send_part(s: &Sender, messages_url: &str, media_url: &str, part: &serde_json::Value) -> Sent {
    if let Some(chart) = whatsapp::chart_of(part) {
        let png = match crate::channel::chart::png(&chart) {
            Ok(png) => png,
            Err(e) => {
                // The figures went as text before it: the caption still goes.
                tracing::error!(market = %s.market, error = %e, "drawing a chart failed; sending its caption");
                return post(&s.client, messages_url, &s.access_token, &whatsapp::caption_as_text(part)).await;
            }
        };
        return match upload_media(&s.client, media_url, &s.access_token, png, "statistik.png".into(), "image/png").await
        {
            Ok(id) => post(&s.client, messages_url, &s.access_token, &whatsapp::with_media_id(part, &id)).await,
            Err(sent) => sent,
        };
    }
    if let Some(doc) = whatsapp::document_of(part) {
        let bytes = doc.content.into_bytes();
        return match upload_media(&s.client, media_url, &s.access_token, bytes, doc.file_name, &doc.mime).await {
            Ok(id) => post(&s.client, messages_url, &s.access_token, &whatsapp::with_media_id(part, &id)).await,
            Err(sent) => sent,
        };
    }
    let Some(content) = whatsapp::qr_content(part) else {
        // A picture someone sent this number (an admin's catalogue photo): WhatsApp sends media
        // by the ids of the number's own uploads, so it is uploaded again first (once a month).
        let rehosted;
        let part = match part["image"]["id"].as_str() {
            Some(received) if part["type"] == "image" => match rehost(s, media_url, received).await {
                Ok(id) => {
                    let mut body = part.clone();
                    body["image"]["id"] = serde_json::json!(id);
                    rehosted = body;
                    &rehosted
                }
                Err(Sent::Refused(reason)) => {
                    // Gone for good (WhatsApp keeps received media about a month): the words go.
                    tracing::warn!(market = %s.market, reason, "a picture could not be fetched; sending its caption alone");
                    photo_gone(s, received).await;
                    return match part["image"]["caption"].as_str() {
                        Some(_) => post(&s.client, messages_url, &s.access_token, &whatsapp::qr_as_text(part)).await,
                        None => Sent::Ok(String::new()),
                    };
                }
                Err(other) => return other,
            },
            _ => part,
        };
        let sent = post(&s.client, messages_url, &s.access_token, part).await;
        // A catalogue picture WhatsApp will not take (a media id gone stale): the words still go.
        if let Sent::Refused(reason) = &sent
            && part["type"] == "image"
        {
            tracing::warn!(market = %s.market, reason, "a picture was refused; sending its caption alone");
            return match part["image"]["caption"].as_str() {
                Some(_) => post(&s.client, messages_url, &s.access_token, &whatsapp::qr_as_text(part)).await,
                None => Sent::Ok(String::new()),
            };
        }
        return sent;
    };
    let png = match crate::domain::qris::png(content) {
        Ok(png) => png,
        Err(e) => {
            // Cannot happen for a payload we made (it fits a QR code): the words still go, as
            // text (the code's content when there is no caption).
            tracing::error!(market = %s.market, error = %e, "drawing a QR code failed; sending it as text");
            return post(&s.client, messages_url, &s.access_token, &whatsapp::qr_as_text(part)).await;
        }
    };
    match upload_png(&s.client, media_url, &s.access_token, png).await {
        Ok(media_id) => post(&s.client, messages_url, &s.access_token, &whatsapp::with_media_id(part, &media_id)).await,
        Err(sent) => sent,
    }
}

/// One user's allowance: WhatsApp tolerates short bursts, then about one message per interval.
struct Allowance {
    tokens: f64,
    at: Instant,
}

impl Allowance {
    /// When the next message may go, refilling first.
    fn ready_at(&mut self, now: Instant, interval: Duration, burst: f64) -> Instant {
        if !interval.is_zero() {
            self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() / interval.as_secs_f64()).min(burst);
        } else {
            self.tokens = burst;
        }
        self.at = now;
        if self.tokens >= 1.0 { now } else { now + interval.mul_f64(1.0 - self.tokens) }
    }
}

/// What one market's sender needs.
pub(super) struct Sender {
    pub(super) client: reqwest::Client,
    pub(super) market: String,
    pub(super) phone_number_id: String,
    pub(super) graph_url: String,
    pub(super) access_token: String,
    pub(super) store: Arc<Mutex<Store>>,
    pub(super) shared: Arc<Shared>,
    pub(super) texts: Arc<crate::text::Texts>,
    pub(super) default_lang: Lang,
    pub(super) per_number_per_sec: f64,
    pub(super) per_user_interval: Duration,
    pub(super) per_user_burst: u32,
    pub(super) templates: std::collections::BTreeMap<NoticeKind, crate::config::Template>,
    /// The market's admins named in the config (the database names the others).
    pub(super) config_admins: Vec<UserKey>,
    /// Pictures users sent, uploaded again as the number's own: received id -> (upload id, when).
    pub(super) rehosted: std::sync::Mutex<HashMap<String, (String, Instant)>>,
}

/// WhatsApp lets a business write freely only within 24 hours of the user's last message; a
/// little margin keeps a message sent at the edge from being refused.
fn window_open(last_inbound: Option<chrono::DateTime<Utc>>) -> bool {
    last_inbound.is_some_and(|t| Utc::now() - t < chrono::Duration::hours(24) - chrono::Duration::minutes(5))
}

/// Holds a notification that cannot go now, and tells the market's admins (unless it is itself
/// an alert to an admin), in their language.
async fn hold(s: &Sender, m: &crate::store::OutboxMessage, kind: Option<NoticeKind>, reason: String) {
    let store = Arc::clone(&s.store);
    let (market, texts, default_lang) = (s.market.clone(), Arc::clone(&s.texts), s.default_lang);
    let config_admins = s.config_admins.clone();
    let (id, to) = (m.id, m.to.clone());
    let logged = reason.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut guard = store.lock().map_err(|_| "store lock poisoned".to_string())?;
        let mut alerts = Vec::new();
        if kind != Some(NoticeKind::AdminAlert) {
            let mut admins = config_admins;
            for a in guard.staff_admins_of(&market).map_err(|e| e.to_string())? {
                if !admins.contains(&a) {
                    admins.push(a);
                }
            }
            for admin in admins.into_iter().filter(|a| *a != to) {
                let lang = guard.language_of(&admin).ok().flatten().unwrap_or(default_lang);
                let kind_name = kind.map(NoticeKind::code).unwrap_or("message");
                let text = texts.render(&market, lang, Key::WaHeldAlert, &[("who", &to.id), ("kind", &kind_name)]);
                let message = Outbound { notice: Some(NoticeKind::AdminAlert), ..Outbound::text(text) };
                alerts.push(Envelope { market: market.clone(), to: admin, message });
            }
        }
        guard.hold(id, &reason, &alerts, Utc::now()).map_err(|e| e.to_string())
    })
    .await;
    match result {
        Ok(Ok(())) => {
            tracing::warn!(market = %s.market, user = %m.to.for_log(), reason = %logged, "held until the user writes again; admins told");
            s.shared.ring_all();
        }
        other => tracing::error!(market = %s.market, result = ?other.map(|r| r.err()), "holding a message failed"),
    }
}

/// Which of a round's calls (by their users) goes as the probe after a pause: the user after
/// `last` (the one probed before), in order of their ids, round to the first.
fn probe_pick(users: &[&str], last: Option<&str>) -> usize {
    let by_id = |a: &usize, b: &usize| users[*a].cmp(users[*b]);
    (0..users.len())
        .filter(|i| last.is_none_or(|last| users[*i] > last))
        .min_by(by_id)
        .or_else(|| (0..users.len()).min_by(by_id))
        .unwrap_or(0)
}

/// One call of a round: the next part of a message to one user.
struct Call {
    m: crate::store::OutboxMessage,
    user: String,
    /// Parts of the message already sent, and how many it has.
    done: usize,
    total: usize,
    part: serde_json::Value,
}

/// Drains one market number's outbox, in order per user: a message sent as several calls
/// (text, then a menu) counts each against the user's allowance, and a retry sends only what
/// did not go (a QR picture is uploaded as media just before it is sent, see [`send_part`]).
/// The number's limit pauses the number; a user's limit holds that user; a server error
/// retries that user's message with a capped backoff; the Graph API unreachable or down pauses
/// the number without blaming any message (unless Meta took another call of the same round:
/// then it is that message's failure), trying again at least every [`API_DOWN_MAX_WAIT`];
/// what WhatsApp refuses for good is parked with the reason. After a pause the number tries
/// one call (to the user after the one it tried last) before the rest of its backlog.
pub(super) async fn send(s: Sender) {
    let s = Arc::new(s);
    let url = format!("{}/{}/messages", s.graph_url.trim_end_matches('/'), s.phone_number_id);
    let media_url = format!("{}/{}/media", s.graph_url.trim_end_matches('/'), s.phone_number_id);
    let number_gap = Duration::from_secs_f64(1.0 / s.per_number_per_sec);
    // Broadcast messages a round takes: about a second of this number's sending.
    let bulk = (s.per_number_per_sec.ceil() as usize).max(1);
    let burst = f64::from(s.per_user_burst);
    let mut allowances: HashMap<String, Allowance> = HashMap::new();
    let mut held_until: HashMap<String, Instant> = HashMap::new();
    let mut last_any = Instant::now() - number_gap;
    let mut pause_backoff = Duration::from_secs(1);
    // While the Graph API is unreachable or down: tried again at least every
    // [`API_DOWN_MAX_WAIT`], so the number is back soon after Meta is (a try costs nothing).
    let mut down_backoff = Duration::from_secs(1);
    // The token refused: someone has to fix the config; tried again from every 30 s.
    let mut unauthorized_backoff = Duration::from_secs(30);
    let mut delivered: HashMap<i64, usize> = HashMap::new();
    // The last round ended in a pause (the number's limit, the API down or the token refused):
    // the next one tries a single call first, not the whole backlog again; each probe is to
    // the user after the last one probed, so one user Meta keeps refusing holds up no one else
    // for long.
    let mut probe = false;
    let mut last_probed: Option<String> = None;
    let bell = s.shared.bell(ChannelKind::WhatsApp, &s.market);
    loop {
        // Listening before looking: messages queued while this round runs still wake it.
        let queued = bell.notified();
        tokio::pin!(queued);
        queued.as_mut().enable();
        let stopping = s.shared.stop.load(Ordering::SeqCst);
        let (heads, recipients) =
            match start_round(&s.shared, ChannelKind::WhatsApp, &s.market, 1, bulk, queued.as_mut()).await {
                Round::Send(heads) => heads,
                Round::Again => continue,
                Round::Done => return,
            };
        let mut soonest: Option<Instant> = None;
        let mut pause: Option<Duration> = None;
        let mut api_down = false;
        let mut results: Vec<(i64, SendResult)> = Vec::new();
        let mut calls: Vec<Call> = Vec::new();
        for m in heads {
            let now = Instant::now();
            let user = m.to.id.clone();
            let held = held_until.get(&user).copied().filter(|t| *t > now);
            let allowed = allowances.entry(user.clone()).or_insert(Allowance { tokens: burst, at: now }).ready_at(
                now,
                s.per_user_interval,
                burst,
            );
            let ready = held.map_or(allowed, |h| h.max(allowed));
            if ready > now {
                soonest = Some(soonest.map_or(ready, |x| x.min(ready)));
                continue;
            }
            let recipient = recipients.get(&user).copied().unwrap_or_default();
            let (lang, last_inbound) = (recipient.lang.unwrap_or(s.default_lang), recipient.last_inbound);
            let labels = Labels {
                open_list: s.texts.get(&s.market, lang, Key::WaOpenList),
                more_choices: s.texts.get(&s.market, lang, Key::WaMoreChoices),
                share_location: s.texts.get(&s.market, lang, Key::WaShareLocation),
                reply_with_number: s.texts.get(&s.market, lang, Key::WaReplyWithNumber),
            };
            let mut parts = whatsapp::render(&m.message, &user, &labels);
            if !window_open(last_inbound) && m.message.notice.is_none() && m.broadcast {
                // Market news is not held for when the shopper writes again (it would be old
                // news by then, and each held message alerts the admins): the broadcast's
                // counts show it as unreachable.
                let reason = "unreachable: outside WhatsApp's 24-hour window (market news is not held)";
                results.push((m.id, SendResult::Undeliverable(reason.into())));
                continue;
            }
            if !window_open(last_inbound) {
                // Only an approved template may open a conversation.
                match m.message.notice.and_then(|k| s.templates.get(&k).map(|t| (k, t))) {
                    Some((_, t)) if m.parts_sent == 0 => {
                        parts = vec![whatsapp::template(&user, &t.name, &t.language, &m.message.text)];
                    }
                    Some(_) => {}
                    None => {
                        let reason = format!(
                            "outside the 24-hour window; no template for {}",
                            m.message.notice.map(NoticeKind::code).unwrap_or("a reply")
                        );
                        hold(&s, &m, m.message.notice, reason).await;
                        continue;
                    }
                }
            }
            let done = m.parts_sent.max(delivered.get(&m.id).copied().unwrap_or(0));
            if done >= parts.len() {
                results.push((m.id, SendResult::Sent));
                continue;
            }
            let part = parts[done].clone();
            calls.push(Call { m, user, done, total: parts.len(), part });
        }
        if probe && !calls.is_empty() {
            // The rest stay pending, untouched, for the next round.
            let users: Vec<&str> = calls.iter().map(|c| c.user.as_str()).collect();
            let pick = probe_pick(&users, last_probed.as_deref());
            calls.swap(0, pick);
            calls.truncate(1);
            last_probed = Some(calls[0].user.clone());
        }
        let made_calls = !calls.is_empty();
        // The round's calls go out together, each started a number's gap after the one before
        // (each is to another user): one after the other, a call's round trip to Meta (a tenth
        // of a second or more from Malang) would cap a number at a few messages a second.
        let mut sending = tokio::task::JoinSet::new();
        for (index, call) in calls.iter().enumerate() {
            let start = (last_any + number_gap).max(Instant::now());
            last_any = start;
            let (s, url, media_url, part) = (Arc::clone(&s), url.clone(), media_url.clone(), call.part.clone());
            // A menu's last part: the user may answer it (a typed number) as soon as Meta has it,
            // which can be before Meta answers the call (a slow answer) and before this round's
            // outcomes are recorded: from the call on, it is the menu their number answers.
            let menu = (call.done + 1 == call.total && !call.m.message.buttons.is_empty())
                .then(|| (call.m.id, call.m.message.clone()));
            let key = (s.market.clone(), call.user.clone());
            sending.spawn(async move {
                tokio::time::sleep_until(start.into()).await;
                let menu_id = menu.as_ref().map(|(id, _)| *id);
                if let Some(menu) = menu
                    && let Ok(mut menus) = s.shared.wa_menus.lock()
                {
                    menus.insert(key.clone(), menu);
                }
                let sent = send_part(&s, &url, &media_url, &part).await;
                // Not taken: the user never saw it, and their numbers answer the menu before.
                if let (false, Some(id)) = (matches!(sent, Sent::Ok(_)), menu_id)
                    && let Ok(mut menus) = s.shared.wa_menus.lock()
                    && menus.get(&key).is_some_and(|(at, _)| *at == id)
                {
                    menus.remove(&key);
                }
                (index, sent)
            });
        }
        let mut outcomes: Vec<Option<Sent>> = calls.iter().map(|_| None).collect();
        while let Some(joined) = sending.join_next().await {
            // A panicked call: its message stays pending and is tried again.
            if let Ok((index, sent)) = joined {
                outcomes[index] = Some(sent);
            }
        }
        // Meta took a call of this round: it is up, and a "down" answer to another call is about
        // that call's message (counted, and retried with that user's backoff like a server error).
        let api_up = outcomes.iter().any(|o| matches!(o, Some(Sent::Ok(_))));
        let pause_for = |pause: &mut Option<Duration>, wait: Duration| {
            *pause = Some(pause.map_or(wait, |p| p.max(wait)));
        };
        let (mut number_limited, mut unauthorized) = (false, false);
        for (call, sent) in calls.into_iter().zip(outcomes) {
            let sent = match sent {
                None => continue,
                Some(Sent::Network(reason) | Sent::Unavailable(reason)) if api_up => Sent::Failed(reason),
                Some(sent) => sent,
            };
            let (m, user) = (call.m, call.user);
            let code = match &sent {
                Sent::Ok(_) => None,
                Sent::NumberLimited | Sent::UserLimited(_) => Some("429"),
                Sent::OutsideWindow(_) => Some("window"),
                Sent::Refused(_) => Some("400"),
                Sent::Failed(_) | Sent::Unavailable(_) => Some("5xx"),
                Sent::Unauthorized(_) => Some("401"),
                Sent::Network(_) => Some("network"),
            };
            match code {
                None => s.shared.ops.sent(&s.market, ChannelKind::WhatsApp, 1),
                Some(code) => s.shared.ops.send_error(&s.market, ChannelKind::WhatsApp, code),
            }
            match sent {
                Sent::Ok(wamid) => {
                    pause_backoff = Duration::from_secs(1);
                    down_backoff = Duration::from_secs(1);
                    unauthorized_backoff = Duration::from_secs(30);
                    if let Some(a) = allowances.get_mut(&user) {
                        a.tokens -= 1.0;
                    }
                    let now_done = call.done + 1;
                    // Remembered until recorded: a failed record must not send it again.
                    delivered.insert(m.id, now_done);
                    results.push((
                        m.id,
                        if now_done >= call.total { SendResult::SentAs(wamid) } else { SendResult::Parts(now_done) },
                    ));
                }
                Sent::NumberLimited => {
                    tracing::warn!(market = %s.market, wait_secs = pause_backoff.as_secs(), "WhatsApp throughput limit: this number pauses");
                    pause_for(&mut pause, pause_backoff);
                    number_limited = true;
                }
                Sent::UserLimited(reason) => {
                    let attempts = m.attempts + 1;
                    tracing::info!(market = %s.market, user = %m.to.for_log(), %reason, "too many messages to one user: that chat waits");
                    results.push((m.id, SendResult::Error(reason)));
                    held_until.insert(user, Instant::now() + s.per_user_interval.max(backoff(attempts)));
                }
                Sent::OutsideWindow(reason) if m.broadcast => {
                    let reason = format!("unreachable: outside WhatsApp's 24-hour window: {reason}");
                    results.push((m.id, SendResult::Undeliverable(reason)));
                }
                Sent::OutsideWindow(reason) => {
                    // WhatsApp knows better than our clock: held like any message outside it.
                    hold(&s, &m, m.message.notice, format!("outside the 24-hour window: {reason}")).await;
                }
                Sent::Refused(reason) => {
                    tracing::error!(market = %s.market, user = %m.to.for_log(), id = m.id, %reason, "WhatsApp refused the message; parked");
                    results.push((m.id, SendResult::Undeliverable(reason)));
                }
                Sent::Failed(reason) => {
                    let attempts = m.attempts + 1;
                    if attempts >= MAX_ATTEMPTS {
                        tracing::error!(market = %s.market, user = %m.to.for_log(), id = m.id, %reason, attempts, "send kept failing; parked");
                        results.push((m.id, SendResult::Undeliverable(format!("{attempts} attempts: {reason}"))));
                    } else {
                        tracing::warn!(market = %s.market, user = %m.to.for_log(), %reason, attempts, "send failed; will retry");
                        results.push((m.id, SendResult::Error(reason)));
                        held_until.insert(user, Instant::now() + backoff(attempts));
                    }
                }
                Sent::Unauthorized(reason) => {
                    tracing::error!(market = %s.market, %reason, "WhatsApp refused the access token: this number waits");
                    pause_for(&mut pause, unauthorized_backoff);
                    unauthorized = true;
                }
                Sent::Network(reason) | Sent::Unavailable(reason) => {
                    tracing::warn!(market = %s.market, %reason, wait_secs = down_backoff.as_secs(), "Graph API unreachable or down; this number waits");
                    pause_for(&mut pause, down_backoff);
                    api_down = true;
                }
            }
        }
        if api_down {
            down_backoff = (down_backoff * 2).min(API_DOWN_MAX_WAIT);
        }
        // Meta names no wait for its throughput limit: capped like a down API's, since the try
        // after the pause is a single call.
        if number_limited {
            pause_backoff = (pause_backoff * 2).min(API_DOWN_MAX_WAIT);
        }
        if unauthorized {
            unauthorized_backoff = (unauthorized_backoff * 2).min(MAX_BACKOFF);
        }
        // The round's outcomes in one write (the engine thread's batch), not one each.
        if !results.is_empty() {
            let ids: Vec<i64> = results.iter().map(|(id, _)| *id).collect();
            match super::record(&s.shared, results).await {
                Ok(()) => {
                    // Recorded as sent: the store has them now.
                    if let Ok(mut menus) = s.shared.wa_menus.lock()
                        && !menus.is_empty()
                    {
                        menus.retain(|_, (id, _)| !ids.contains(id));
                    }
                    for id in ids {
                        delivered.remove(&id);
                    }
                }
                Err(e) => {
                    tracing::error!(market = %s.market, error = %e, "recording deliveries failed; will record again");
                }
            }
        }
        // Still probing until a round that made calls ends without a pause.
        if pause.is_some() {
            probe = true;
        } else if made_calls {
            probe = false;
        }
        if let Some(wait) = pause {
            if stopping {
                return;
            }
            tokio::time::sleep(wait).await;
            continue;
        }
        if let Some(t) = soonest {
            let now = Instant::now();
            if t > now {
                if stopping && t - now > Duration::from_secs(2) {
                    // Shutting down: what must wait longer stays in the outbox for the next start.
                    return;
                }
                let wait = (t - now).min(Duration::from_millis(250));
                let _ = tokio::time::timeout(wait, queued).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn graph_api_answers_are_sorted() {
        assert_eq!(classify(200, &json!({"messages": [{"id": "wamid.1"}]})), Sent::Ok("wamid.1".into()));
        let err = |code: i64| json!({"error": {"code": code, "message": "x"}});
        assert_eq!(classify(400, &err(130429)), Sent::NumberLimited);
        assert!(matches!(classify(400, &err(131056)), Sent::UserLimited(_)));
        assert!(matches!(classify(400, &err(131047)), Sent::OutsideWindow(_)));
        assert!(matches!(classify(401, &err(190)), Sent::Unauthorized(_)));
        assert!(matches!(classify(500, &err(131000)), Sent::Failed(_)));
        // The service down, in Meta's words or its front's: no message is to blame.
        assert!(matches!(classify(503, &json!(null)), Sent::Unavailable(_)));
        assert!(matches!(classify(502, &json!(null)), Sent::Unavailable(_)));
        assert!(matches!(classify(500, &err(2)), Sent::Unavailable(_)));
        assert!(matches!(classify(503, &err(131016)), Sent::Unavailable(_)));
        assert!(matches!(classify(500, &err(1)), Sent::Failed(_)));
        assert!(matches!(classify(500, &json!(null)), Sent::Unavailable(_)));
        assert!(matches!(classify(400, &err(131026)), Sent::Refused(_)));
        assert!(matches!(classify(400, &err(100)), Sent::Refused(_)));
    }

    #[test]
    fn probes_go_to_one_user_after_another() {
        let users = ["628002", "628001", "628003"];
        assert_eq!(probe_pick(&users, None), 1);
        assert_eq!(probe_pick(&users, Some("628001")), 0);
        assert_eq!(probe_pick(&users, Some("628002")), 2);
        assert_eq!(probe_pick(&users, Some("628003")), 1, "round to the first");
        // The one probed last gone from the round (sent, or held): the next one after it.
        assert_eq!(probe_pick(&["628003", "628001"], Some("628002")), 0);
        assert_eq!(probe_pick(&["628009"], Some("628009")), 0);
    }

    #[test]
    fn a_user_gets_a_burst_then_one_message_per_interval() {
        let start = Instant::now();
        let interval = Duration::from_secs(6);
        let mut a = Allowance { tokens: 3.0, at: start };
        for _ in 0..3 {
            assert_eq!(a.ready_at(start, interval, 3.0), start);
            a.tokens -= 1.0;
        }
        assert_eq!(a.ready_at(start, interval, 3.0), start + interval);
        assert_eq!(a.ready_at(start + interval, interval, 3.0), start + interval);
    }
}
