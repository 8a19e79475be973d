//! The bank partner at run time: virtual-account requests posted to its API (an outbox drained
//! with retries), and its signed payment notifications taken on the HTTP server into the inbox.
//!
//! The bank is behind one [`PaymentProvider`] trait: asking for a virtual account, and reading
//! a notification. [`Midtrans`] is the HTTP implementation (reqwest), its contract in
//! [`crate::integration::bank`]; another bank partner is another implementation.
//!
//! A charge the bank answers with an account, or refuses for good (4xx, or failures past
//! [`MAX_BANK_ATTEMPTS`]), becomes bank news in the inbox in the same transaction as the
//! request's mark, so the engine tells the shopper (or the admins) exactly once.

use super::{Shared, backoff};
use crate::channel::{Inbound, InboundEvent};
use crate::integration::bank::VaCharge;
use crate::integration::bank::{
    BankEvent, BankNews, MAX_NOTIFICATION_BODY, Notification, NotificationError, SERVER_KEY_VARIABLE, bank_user,
    va_number_of,
};
use crate::store::{BankRequest, Store};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use chrono::Utc;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// Tries at one charge before the admins are told (about 20 minutes with the capped backoff).
pub const MAX_BANK_ATTEMPTS: u32 = 12;

/// What the bank integration needs to run.
#[derive(Clone, Debug)]
pub struct BankPlan {
    pub url: String,
    pub server_key: crate::secret::Secret,
}

/// How asking the bank for a virtual account ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charged {
    Account {
        bank: String,
        number: String,
    },
    /// Refused for good.
    Refused(String),
    /// Try again later.
    Failed(String),
}

/// A bank partner's payment API.
pub trait PaymentProvider: Send + Sync {
    /// Asks for a virtual account for the request.
    fn charge<'a>(&'a self, charge: &'a VaCharge) -> Pin<Box<dyn Future<Output = Charged> + Send + 'a>>;
    /// Reads and checks a notification the bank posted: the news, and the key that makes it
    /// count once.
    fn notification(&self, body: &[u8]) -> Result<(BankNews, String), NotificationError>;
}

/// Midtrans Core API (bank transfer) over HTTP.
pub struct Midtrans {
    pub client: reqwest::Client,
    pub plan: BankPlan,
}

impl PaymentProvider for Midtrans {
    fn charge<'a>(&'a self, charge: &'a VaCharge) -> Pin<Box<dyn Future<Output = Charged> + Send + 'a>> {
        Box::pin(post(&self.client, &self.plan, charge))
    }

    fn notification(&self, body: &[u8]) -> Result<(BankNews, String), NotificationError> {
        Notification::verify(body, self.plan.server_key.expose())
    }
}

/// `Ok(None)` when no virtual accounts are configured; an error (virtual accounts wait, the rest
/// runs) when the server key or the HTTP server is missing.
pub fn bank_plan(config: &crate::config::Config) -> anyhow::Result<Option<BankPlan>> {
    let Some(url) = config.bank_url.clone() else {
        return Ok(None);
    };
    let Some(server_key) = crate::secret::Secret::from_env(SERVER_KEY_VARIABLE, None) else {
        anyhow::bail!("virtual accounts need {SERVER_KEY_VARIABLE} in the environment");
    };
    if config.server_listen.is_none() {
        anyhow::bail!("virtual accounts need [server] listen: the bank posts to <your address>/payment/notify");
    }
    Ok(Some(BankPlan { url, server_key }))
}

pub(super) struct NotifyState {
    pub(super) provider: Arc<dyn PaymentProvider>,
    pub(super) store: Arc<Mutex<Store>>,
    pub(super) shared: Arc<Shared>,
}

pub(super) fn routes(state: Arc<NotifyState>) -> axum::Router {
    axum::Router::new()
        .route("/payment/notify", axum::routing::post(notify))
        .layer(DefaultBodyLimit::max(MAX_NOTIFICATION_BODY))
        .with_state(state)
}

/// A notification: checked (400 malformed, 401 bad signature, 404 not one of our requests;
/// nothing stored), then into the inbox keyed by the bank's transaction and status (a duplicate
/// is answered 200 and ignored), then 200.
async fn notify(State(state): State<Arc<NotifyState>>, body: Bytes) -> StatusCode {
    let (news, key) = match state.provider.notification(&body) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, "bank notification refused");
            return match e {
                NotificationError::Signature => StatusCode::UNAUTHORIZED,
                NotificationError::UnknownOrder(_) => StatusCode::NOT_FOUND,
                NotificationError::Malformed(_) | NotificationError::Amount(_) => StatusCode::BAD_REQUEST,
            };
        }
    };
    let stored = super::on_io_store(&state.shared, &state.store, move |store| {
        let Some(market) = store.payment_market(news.payment_id).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let event = InboundEvent {
            source_id: format!("bank:{key}"),
            market,
            user: bank_user(),
            display_name: None,
            received_at: Utc::now(),
            inbound: Inbound::BankNews(Box::new(news)),
            pressed_on: None,
        };
        store.ingest(std::slice::from_ref(&event)).map(Some).map_err(|e| e.to_string())
    })
    .await;
    match stored {
        Ok(None) => StatusCode::NOT_FOUND,
        Ok(Some(n)) => super::stored_answer(Ok(n), &state.shared, "a bank notification"),
        Err(e) => super::stored_answer(Err(e), &state.shared, "a bank notification"),
    }
}

async fn post(client: &reqwest::Client, plan: &BankPlan, charge: &VaCharge) -> Charged {
    // Asked too late (the bank unreachable for a while): the order is expiring; an account now
    // would take money for an order about to be cancelled.
    let Some(minutes) = charge.minutes_left(Utc::now()) else {
        return Charged::Refused("the payment time ran out before the bank answered".into());
    };
    let sent = client
        .post(format!("{}/v2/charge", plan.url))
        .basic_auth(plan.server_key.expose(), Some(""))
        .header(reqwest::header::ACCEPT, "application/json")
        .json(&charge.body(minutes))
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        // A timeout (or a connection lost) after the request went out: the bank may have made
        // the account all the same. Ask it before trying again (the next charge of the same
        // order id would only be refused as a duplicate).
        Err(e) => {
            return match account_made(client, plan, charge).await {
                Made::Account(bank, number) => Charged::Account { bank, number },
                Made::None | Made::Unknown => Charged::Failed(format!("request: {e}")),
            };
        }
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    let detail = format!("{status}: {}", text.chars().take(200).collect::<String>());
    // "Duplicate order ID": an earlier try made it (its answer lost); its account is the one.
    let duplicate = status.as_u16() == 406 || answer["status_code"].as_str() == Some("406");
    if duplicate {
        match account_made(client, plan, charge).await {
            Made::Account(bank, number) => return Charged::Account { bank, number },
            // The bank could not say: ask again later rather than give the order up.
            Made::Unknown => return Charged::Failed(format!("a duplicate, and its status unknown: {detail}")),
            Made::None => {}
        }
    }
    if status.is_success() {
        return match va_number_of(&answer) {
            Some((bank, number)) => Charged::Account { bank, number },
            // The gateway answers 200 with its own status_code in the body: a 4xx there is a
            // refusal, anything else a try again.
            None if answer["status_code"].as_str().is_some_and(|c| c.starts_with('4')) => {
                Charged::Refused(answer["status_message"].as_str().unwrap_or("refused").chars().take(80).collect())
            }
            None => Charged::Failed(format!("no virtual account in the answer: {detail}")),
        };
    }
    match status.as_u16() {
        401 | 403 => {
            tracing::error!(status = %status, "the bank refuses our server key ({SERVER_KEY_VARIABLE}); requests wait");
            Charged::Failed(detail)
        }
        408 | 409 | 425 | 429 => Charged::Failed(detail),
        400..=499 => Charged::Refused(status.to_string()),
        _ => Charged::Failed(detail),
    }
}

/// What the bank has for a charge's order id.
enum Made {
    /// An account to pay into: its bank and number.
    Account(String, String),
    /// None (or none that can still be paid).
    None,
    /// It could not say (unreachable, an error).
    Unknown,
}

/// The account the bank made for this charge's order id, if it made one: `GET
/// /v2/{order_id}/status` (Midtrans's contract).
async fn account_made(client: &reqwest::Client, plan: &BankPlan, charge: &VaCharge) -> Made {
    let asked = client
        .get(format!("{}/v2/{}/status", plan.url, charge.bank_order_id()))
        .basic_auth(plan.server_key.expose(), Some(""))
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await;
    let response = match asked {
        Ok(r) if r.status().is_success() || r.status().as_u16() == 404 => r,
        Ok(r) => {
            tracing::warn!(status = %r.status(), "asking the bank for a charge's status failed");
            return Made::Unknown;
        }
        Err(e) => {
            tracing::warn!(error = %e, "asking the bank for a charge's status failed");
            return Made::Unknown;
        }
    };
    let Ok(answer) = response.json::<serde_json::Value>().await else {
        return Made::Unknown;
    };
    // The gateway's own status: 404 is "no such transaction".
    if answer["status_code"].as_str() == Some("404") {
        return Made::None;
    }
    // An account that lapsed or was cancelled is no account to pay into.
    if matches!(answer["transaction_status"].as_str(), Some("expire" | "cancel" | "deny" | "failure")) {
        return Made::None;
    }
    match va_number_of(&answer) {
        Some((bank, number)) => Made::Account(bank, number),
        None => Made::Unknown,
    }
}

fn answered(store: &mut Store, request: &BankRequest, event: BankEvent) -> crate::store::StoreResult<bool> {
    let failed = match &event {
        BankEvent::AccountRefused { reason } => Some(reason.clone()),
        _ => None,
    };
    let news = InboundEvent {
        source_id: format!("bank-charge:{}", request.id),
        market: request.market.clone(),
        user: bank_user(),
        display_name: None,
        received_at: Utc::now(),
        inbound: Inbound::BankNews(Box::new(BankNews { payment_id: request.charge.payment_id, event })),
        pressed_on: None,
    };
    store.bank_request_answered(request.id, failed.as_deref(), &news)
}

/// Writes the bank's answer to a charge: news for the engine (the account, or a refusal), or
/// another try later.
fn record(store: &mut Store, request: BankRequest, posted: Charged) -> crate::store::StoreResult<bool> {
    let event = match posted {
        Charged::Account { bank, number } => BankEvent::AccountReady { bank, number },
        Charged::Refused(reason) => BankEvent::AccountRefused { reason },
        Charged::Failed(e) if request.attempts + 1 >= MAX_BANK_ATTEMPTS => {
            tracing::error!(market = %request.market, error = %e, "bank unreachable; giving up");
            BankEvent::AccountRefused { reason: "unreachable".into() }
        }
        Charged::Failed(e) => {
            tracing::warn!(market = %request.market, error = %e, "bank charge failed; retrying");
            let wait = chrono::Duration::from_std(backoff(request.attempts + 1)).unwrap_or_default();
            store.bank_request_retry(request.id, &e, Utc::now() + wait)?;
            return Ok(false);
        }
    };
    answered(store, &request, event)
}

/// Posts due charges until the process stops.
pub(super) async fn post_charges(provider: Arc<dyn PaymentProvider>, store: Arc<Mutex<Store>>, shared: Arc<Shared>) {
    let send = |request: BankRequest| {
        let provider = Arc::clone(&provider);
        async move {
            let posted = provider.charge(&request.charge).await;
            (request, posted)
        }
    };
    let due = |store: &Store| store.due_bank_requests(Utc::now(), 16);
    super::drain_requests(store, shared, "bank", due, send, record).await;
}
