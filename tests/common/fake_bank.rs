//! A fake bank partner payment API (Midtrans Core API's charge) on 127.0.0.1 with a random
//! port: it records every charge (with its Authorization header) and answers with a virtual
//! account, or as the test tells it (server errors first, or a refusal).

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
    let mut fake = state.lock().expect("fake");
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.charges.push(Charge {
        authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
        body: body.clone(),
    });
    let n = fake.charges.len();
    if n <= fake.fail_first {
        return (StatusCode::INTERNAL_SERVER_ERROR, "{}".into());
    }
    let order_id = body["transaction_details"]["order_id"].clone();
    let gross = body["transaction_details"]["gross_amount"].as_i64().unwrap_or(0);
    if fake.refuse {
        // The gateway's way: HTTP 200 with its own 4xx status in the body.
        return (StatusCode::OK, json!({"status_code": "406", "status_message": "Duplicate order ID"}).to_string());
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
    (StatusCode::CREATED, answer.to_string())
}

impl FakeBank {
    pub fn start(fail_first: usize, refuse: bool) -> FakeBank {
        let state = Arc::new(Mutex::new(Fake { fail_first, refuse, ..Fake::default() }));
        let app = Router::new().route("/v2/charge", axum::routing::post(charge)).with_state(Arc::clone(&state));
        let addr = super::serve_on_thread(app);
        FakeBank { url: format!("http://{addr}"), state }
    }

    pub fn charges(&self) -> Vec<Charge> {
        self.state.lock().expect("fake").charges.clone()
    }
}
