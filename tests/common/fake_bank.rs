//! A fake bank partner payment API (Midtrans Core API's charge and status) on 127.0.0.1 with a
//! random port: it records every charge (with its Authorization header) and answers with a
//! virtual account, or as the test tells it (server errors first, a refusal, or an account made
//! but answered too late). A second charge of an order id it knows is a duplicate, as the real
//! gateway says; `GET /v2/{order_id}/status` tells what it has for an order.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Charge {
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct Fake {
    charges: Vec<Charge>,
    fail_first: usize,
    refuse: bool,
    /// The first this many accounts are made, but answered only after this long.
    slow_first: usize,
    slow_by: std::time::Duration,
    /// The accounts made, by order id.
    made: std::collections::HashMap<String, Value>,
    /// The first this many status questions get a server error.
    status_fail_first: usize,
    statuses: usize,
}

pub struct FakeBank {
    /// Base URL, as `payment.va_url`.
    pub url: String,
    state: Arc<Mutex<Fake>>,
}

/// The virtual account the fake gives the n-th charge.
pub fn va_number(n: usize) -> String {
    format!("98812345{n:05}")
}

async fn charge(State(state): State<Arc<Mutex<Fake>>>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let (answer, wait) = charge_now(&state, &headers, &body);
    if let Some(wait) = wait {
        tokio::time::sleep(wait).await;
    }
    answer
}

fn charge_now(
    state: &Arc<Mutex<Fake>>,
    headers: &HeaderMap,
    body: &Bytes,
) -> ((StatusCode, String), Option<std::time::Duration>) {
    let mut fake = state.lock().expect("fake");
    let (answer, slow) = charge_in(&mut fake, headers, body);
    let wait = slow.then_some(fake.slow_by);
    (answer, wait)
}

fn charge_in(fake: &mut Fake, headers: &HeaderMap, body: &Bytes) -> ((StatusCode, String), bool) {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    fake.charges.push(Charge {
        authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
        body: body.clone(),
    });
    let n = fake.charges.len();
    if n <= fake.fail_first {
        return ((StatusCode::INTERNAL_SERVER_ERROR, "{}".into()), false);
    }
    let order_id = body["transaction_details"]["order_id"].clone();
    let gross = body["transaction_details"]["gross_amount"].as_i64().unwrap_or(0);
    // The gateway's way: HTTP 200 with its own 4xx status in the body.
    let duplicate = json!({"status_code": "406", "status_message": "Duplicate order ID"}).to_string();
    if fake.refuse || order_id.as_str().is_some_and(|id| fake.made.contains_key(id)) {
        return ((StatusCode::OK, duplicate), false);
    }
    let bank = body["bank_transfer"]["bank"].clone();
    let answer = json!({
        "status_code": "201",
        "status_message": "Success, Bank Transfer transaction is created",
        "transaction_id": format!("tx-{n}"),
        "order_id": order_id,
        "gross_amount": format!("{gross}.00"),
        "payment_type": "bank_transfer",
        "transaction_status": "pending",
        "va_numbers": [{"bank": bank, "va_number": va_number(n)}],
    });
    if let Some(id) = order_id.as_str() {
        fake.made.insert(id.to_string(), answer.clone());
    }
    let slow = fake.made.len() <= fake.slow_first;
    ((StatusCode::CREATED, answer.to_string()), slow)
}

/// `GET /v2/{order_id}/status`: the transaction, or the gateway's 404.
async fn status(
    State(state): State<Arc<Mutex<Fake>>>,
    axum::extract::Path(order_id): axum::extract::Path<String>,
) -> (StatusCode, String) {
    let mut fake = state.lock().expect("fake");
    fake.statuses += 1;
    if fake.statuses <= fake.status_fail_first {
        return (StatusCode::INTERNAL_SERVER_ERROR, "{}".into());
    }
    match fake.made.get(&order_id) {
        Some(made) => {
            let mut made = made.clone();
            made["status_code"] = json!("201");
            (StatusCode::OK, made.to_string())
        }
        None => {
            (StatusCode::OK, json!({"status_code": "404", "status_message": "Transaction doesn't exist."}).to_string())
        }
    }
}

impl FakeBank {
    pub fn start(fail_first: usize, refuse: bool) -> FakeBank {
        FakeBank::start_with(Fake { fail_first, refuse, ..Fake::default() })
    }

    /// The first `n` accounts are made but answered only after `by` (past the client's timeout);
    /// the first `status_fail` status questions get a server error.
    pub fn slow(n: usize, by: std::time::Duration, status_fail: usize) -> FakeBank {
        FakeBank::start_with(Fake { slow_first: n, slow_by: by, status_fail_first: status_fail, ..Fake::default() })
    }

    /// Status questions asked so far.
    pub fn statuses(&self) -> usize {
        self.state.lock().expect("fake").statuses
    }

    fn start_with(fake: Fake) -> FakeBank {
        let state = Arc::new(Mutex::new(fake));
        let app = Router::new()
            .route("/v2/charge", axum::routing::post(charge))
            .route("/v2/{order_id}/status", axum::routing::get(status))
            .with_state(Arc::clone(&state));
        let addr = super::serve_on_thread(app);
        FakeBank { url: format!("http://{addr}"), state }
    }

    pub fn charges(&self) -> Vec<Charge> {
        self.state.lock().expect("fake").charges.clone()
    }
}
