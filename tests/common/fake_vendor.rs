//! A fake delivery vendor API on 127.0.0.1 with a random port: it records every job request
//! (with its headers) and answers as the test tells it (server errors first, or a refusal).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct JobRequest {
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct Fake {
    requests: Vec<JobRequest>,
    /// Answer this many requests with 503 first.
    fail_first: usize,
    /// Refuse every request with 422.
    refuse: bool,
}

pub struct FakeVendor {
    /// Base URL, as `delivery.vendor_url`.
    pub url: String,
    state: Arc<Mutex<Fake>>,
}

async fn jobs(State(state): State<Arc<Mutex<Fake>>>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let mut fake = state.lock().expect("fake");
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    fake.requests.push(JobRequest {
        authorization: header("authorization"),
        idempotency_key: header("idempotency-key"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let n = fake.requests.len();
    if n <= fake.fail_first {
        return (StatusCode::SERVICE_UNAVAILABLE, "busy".into());
    }
    if fake.refuse {
        return (StatusCode::UNPROCESSABLE_ENTITY, json!({"error": "outside our service area"}).to_string());
    }
    (StatusCode::CREATED, json!({"job_id": format!("JOB-{n}")}).to_string())
}

impl FakeVendor {
    pub fn start(fail_first: usize, refuse: bool) -> FakeVendor {
        let state = Arc::new(Mutex::new(Fake { fail_first, refuse, ..Fake::default() }));
        let app = Router::new().route("/v1/jobs", axum::routing::post(jobs)).with_state(Arc::clone(&state));
        let addr = super::serve_on_thread(app);
        FakeVendor { url: format!("http://{addr}/v1"), state }
    }

    pub fn requests(&self) -> Vec<JobRequest> {
        self.state.lock().expect("fake").requests.clone()
    }
}
