//! The outside delivery vendor at run time: job requests posted to its API (an outbox drained
//! with retries), and its signed status callbacks taken on the HTTP server into the inbox.
//!
//! A request the vendor refuses for good (4xx, or server errors past [`MAX_VENDOR_ATTEMPTS`]) is
//! turned into a `rejected` event in the inbox, so the engine gives the delivery back to the
//! market's admins in the same way as a vendor saying no.

use super::{Shared, backoff};
use crate::channel::{Inbound, InboundEvent};
use crate::integration::signature;
use crate::integration::vendor::{
    KEY_VARIABLE, MAX_CALLBACK_BODY, SECRET_VARIABLE, SIGNATURE_HEADER, VendorStep, VendorUpdate, reference,
    vendor_user,
};
use crate::secret::Secret;
use crate::store::{Store, VendorRequest};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Tries at posting one job request before the admins are told: with the capped backoff that
/// is about 20 minutes of a vendor that cannot be reached.
pub const MAX_VENDOR_ATTEMPTS: u32 = 12;

/// What the vendor integration needs to run.
#[derive(Clone, Debug)]
pub struct VendorPlan {
    pub url: String,
    pub key: Secret,
    pub secret: Secret,
    pub markets: BTreeSet<String>,
}

fn secret(name: &str) -> Option<Secret> {
    Secret::from_env(name, None)
}

/// `Ok(None)` when no market uses the vendor; an error (the vendor part does not run, the rest
/// does) when its key, secret or the HTTP server is missing.
pub fn vendor_plan(config: &crate::config::Config) -> anyhow::Result<Option<VendorPlan>> {
    if config.policy.vendor_markets.is_empty() {
        return Ok(None);
    }
    let Some(url) = config.vendor_url.clone() else {
        anyhow::bail!("markets use the delivery vendor but delivery.vendor_url is not set");
    };
    let missing: Vec<&str> = [KEY_VARIABLE, SECRET_VARIABLE].into_iter().filter(|v| secret(v).is_none()).collect();
    if !missing.is_empty() {
        anyhow::bail!("the delivery vendor needs {} in the environment", missing.join(", "));
    }
    if config.server_listen.is_none() {
        anyhow::bail!("the delivery vendor needs [server] listen: it posts to <your address>/delivery/vendor");
    }
    Ok(Some(VendorPlan {
        url,
        key: secret(KEY_VARIABLE).unwrap_or_default(),
        secret: secret(SECRET_VARIABLE).unwrap_or_default(),
        markets: config.policy.vendor_markets.clone(),
    }))
}

/// What the callback handler needs.
pub(super) struct CallbackState {
    pub(super) plan: VendorPlan,
    pub(super) store: Arc<Mutex<Store>>,
    pub(super) shared: Arc<Shared>,
}

pub(super) fn routes(state: Arc<CallbackState>) -> axum::Router {
    axum::Router::new()
        .route("/delivery/vendor", axum::routing::post(callback))
        .layer(DefaultBodyLimit::max(MAX_CALLBACK_BODY))
        .with_state(state)
}

/// A callback: signature first (401 and nothing stored when missing or wrong), then the body
/// (400 when it is not a callback, 404 for a market that does not use the vendor), then the
/// inbox under the vendor's event id (a duplicate is answered 200 and ignored), then 200.
async fn callback(State(state): State<Arc<CallbackState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if !signature::verify(state.plan.secret.expose().as_bytes(), &body, header) {
        return StatusCode::UNAUTHORIZED;
    }
    let update = match VendorUpdate::parse(&body) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "vendor callback refused");
            return StatusCode::BAD_REQUEST;
        }
    };
    let Some((market, _)) = update.target() else {
        return StatusCode::BAD_REQUEST;
    };
    if !state.plan.markets.contains(market) {
        return StatusCode::NOT_FOUND;
    }
    let event = InboundEvent {
        source_id: format!("vendor:{market}:{}", update.event_id),
        market: market.to_string(),
        user: vendor_user(),
        display_name: None,
        received_at: Utc::now(),
        inbound: Inbound::VendorStatus(Box::new(update)),
        pressed_on: None,
    };
    let stored = super::on_io_store(&state.shared, &state.store, move |store| {
        store.ingest(std::slice::from_ref(&event)).map_err(|e| e.to_string())
    })
    .await;
    super::stored_answer(stored, &state.shared, "a vendor callback")
}

/// How posting one request ended.
enum Posted {
    Accepted(String),
    /// Refused for good.
    Refused(String),
    /// Try again later.
    Failed(String),
}

async fn post(client: &reqwest::Client, plan: &VendorPlan, request: &VendorRequest) -> Posted {
    let sent = client
        .post(format!("{}/jobs", plan.url))
        .bearer_auth(plan.key.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", reference(&request.market, request.delivery_id))
        .body(request.body.clone())
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => return Posted::Failed(format!("request: {e}")),
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        let job = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("job_id").and_then(|j| j.as_str().map(str::to_string)));
        return match job {
            Some(job) if !job.is_empty() && job.len() <= 200 => Posted::Accepted(job),
            _ => Posted::Failed(format!("{status} without a job_id: {}", text.chars().take(200).collect::<String>())),
        };
    }
    let detail = format!("{status}: {}", text.chars().take(200).collect::<String>());
    match status.as_u16() {
        // Our key is wrong: every job would be refused. The operator must fix it; the requests
        // wait (and the log says so loudly).
        401 | 403 => {
            tracing::error!(status = %status, "the delivery vendor refuses our key ({KEY_VARIABLE}); requests wait");
            Posted::Failed(detail)
        }
        // Timeouts, conflicts (a replayed Idempotency-Key after a crash), too early, too many:
        // worth another try.
        408 | 409 | 425 | 429 => Posted::Failed(detail),
        400..=499 => {
            tracing::warn!(detail = %detail, "the delivery vendor refused a job");
            Posted::Refused(status.to_string())
        }
        _ => Posted::Failed(detail),
    }
}

/// The request will not be placed: the engine hears it as the vendor saying no (in the same
/// transaction as the request's `failed` mark). `reason` is short, for the admins; the details
/// are in the log.
fn give_up(store: &mut Store, request: &VendorRequest, reason: &str) -> crate::store::StoreResult<bool> {
    let now = Utc::now();
    let update = VendorUpdate {
        event_id: format!("request-{}", request.id),
        reference: reference(&request.market, request.delivery_id),
        job_id: None,
        status: VendorStep::Rejected,
        courier: None,
        position: None,
        proof_url: None,
        reason: Some(reason.chars().take(80).collect()),
        at: now,
    };
    let event = InboundEvent {
        source_id: format!("vendor-request:{}", request.id),
        market: request.market.clone(),
        user: vendor_user(),
        display_name: None,
        received_at: now,
        inbound: Inbound::VendorStatus(Box::new(update)),
        pressed_on: None,
    };
    store.vendor_request_give_up(request.id, reason, &event)
}

/// Writes the vendor's answer to a job request: its job id, news for the engine (a refusal, or
/// giving up), or another try later.
fn record(store: &mut Store, request: VendorRequest, posted: Posted) -> crate::store::StoreResult<bool> {
    match posted {
        Posted::Accepted(job) => {
            tracing::info!(market = %request.market, delivery = request.delivery_id, job = %job, "vendor took the job");
            store.vendor_request_sent(request.id, &job, Utc::now())?;
            Ok(false)
        }
        Posted::Refused(e) => {
            tracing::warn!(market = %request.market, delivery = request.delivery_id, error = %e, "vendor refused the job");
            give_up(store, &request, &e)
        }
        Posted::Failed(e) if request.attempts + 1 >= MAX_VENDOR_ATTEMPTS => {
            tracing::error!(market = %request.market, delivery = request.delivery_id, error = %e, "vendor unreachable; giving up");
            give_up(store, &request, "unreachable")
        }
        Posted::Failed(e) => {
            tracing::warn!(market = %request.market, delivery = request.delivery_id, error = %e, "vendor request failed; retrying");
            let wait = chrono::Duration::from_std(backoff(request.attempts + 1)).unwrap_or_default();
            store.vendor_request_retry(request.id, &e, Utc::now() + wait)?;
            Ok(false)
        }
    }
}

/// Posts due job requests until the process stops.
pub(super) async fn post_jobs(
    client: reqwest::Client,
    plan: VendorPlan,
    store: Arc<Mutex<Store>>,
    shared: Arc<Shared>,
) {
    let send = |request: VendorRequest| {
        let (client, plan) = (client.clone(), plan.clone());
        async move {
            let posted = post(&client, &plan, &request).await;
            (request, posted)
        }
    };
    let due = |store: &Store| store.due_vendor_requests(Utc::now(), 16);
    super::drain_requests(store, shared, "vendor", due, send, record).await;
}
