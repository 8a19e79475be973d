//! A fake WhatsApp Cloud API (Graph API) on 127.0.0.1 with a random port: `POST
//! /{phone_number_id}/messages` answers like Meta (a wamid per message), records every body with
//! the bearer token, and lets a test inject Graph API errors for one recipient.
#![allow(dead_code)]

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
            .unwrap_or_default()
            .to_string()
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

#[derive(Default)]
struct Graph {
    sent: Vec<WaSent>,
    /// Every call: recipient and whether it was accepted.
    calls: Vec<(String, bool)>,
    tokens: Vec<String>,
    next: u64,
    /// Errors to answer for one recipient: (to, HTTP status, error code, times left).
    failures: Vec<(String, u16, i64, u32)>,
    /// Calls to one recipient that hang this long and are then lost: (to, delay, times left).
    hangs: Vec<(String, Duration, u32)>,
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
    let mut g = state.lock().expect("fake graph");
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    g.tokens.push(token);
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
    g.next += 1;
    let wamid = format!("wamid.out.{}", g.next);
    g.calls.push((to.clone(), true));
    g.sent.push(WaSent { number, to: to.clone(), wamid: wamid.clone(), body, at: Instant::now() });
    axum::Json(
        json!({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}], "messages": [{"id": wamid}]}),
    )
    .into_response()
}

impl FakeGraph {
    pub fn start() -> FakeGraph {
        let state = Arc::new(Mutex::new(Graph::default()));
        let app = Router::new()
            .route("/{version}/{number}/messages", axum::routing::post(messages))
            .with_state(Arc::clone(&state));
        let addr = super::serve_on_thread(app);
        FakeGraph { url: format!("http://{addr}/v21.0"), state }
    }

    /// The next `times` messages to `to` get this Graph API error.
    pub fn fail(&self, to: &str, status: u16, code: i64, times: u32) {
        self.state.lock().expect("fake").failures.push((to.into(), status, code, times));
    }

    /// The next `times` calls to `to` hang for `delay` (longer than the client waits).
    pub fn hang(&self, to: &str, delay: Duration, times: u32) {
        self.state.lock().expect("fake").hangs.push((to.into(), delay, times));
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
