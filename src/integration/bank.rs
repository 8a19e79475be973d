//! The bank partner's payment API, for virtual accounts. The contract is Midtrans' Core API
//! (https://docs.midtrans.com, "Bank Transfer" and "HTTP(S) Notification"), which Indonesian
//! banks' payment gateways resemble:
//!
//! - **Charge**: `POST {url}/v2/charge` with HTTP Basic auth (the server key as user, no
//!   password) and `{"payment_type": "bank_transfer", "transaction_details": {"order_id",
//!   "gross_amount"}, "bank_transfer": {"bank": "bni"}, "custom_expiry": {...}}`. The answer
//!   carries `transaction_id` and `va_numbers: [{"bank", "va_number"}]`.
//! - **Notification**: the bank posts JSON to us with `order_id`, `status_code`, `gross_amount`
//!   (`"15400.00"`), `transaction_status` (`pending`, `settlement`, `expire`, `cancel`, `deny`),
//!   `transaction_id` and `signature_key` = hex SHA-512 of `order_id + status_code +
//!   gross_amount + server key`.
//!
//! Our `order_id` names the payment request, not the order (an order whose amount changes gets
//! a new request and a new virtual account): `P<payment id>-<order number>`.
//!
//! This module only shapes and checks messages; the runtime does the HTTP and the engine decides
//! what a notification means for the order.

use crate::channel::UserKey;
use crate::domain::money::Rupiah;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

/// The environment variable with the bank partner's server key.
pub const SERVER_KEY_VARIABLE: &str = "PASAR_PAYMENT_SERVER_KEY";
/// Notifications are small; anything larger is not one.
pub const MAX_NOTIFICATION_BODY: usize = 64 * 1024;

/// A virtual account to ask the bank for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaCharge {
    pub payment_id: i64,
    pub order_number: String,
    pub amount: Rupiah,
    /// The bank that issues the account (`bni`, `bri`, `bca`, `permata`).
    pub bank: String,
    /// When our request lapses: the bank's account must not outlive it (a charge posted late,
    /// after retries, asks for only the time left).
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl VaCharge {
    /// Our `order_id` at the bank.
    pub fn bank_order_id(&self) -> String {
        bank_order_id(self.payment_id, &self.order_number)
    }

    /// Whole minutes left at `now` before the request lapses (none: not worth asking the bank).
    pub fn minutes_left(&self, now: chrono::DateTime<chrono::Utc>) -> Option<i64> {
        Some((self.expires_at - now).num_minutes()).filter(|m| *m >= 1)
    }

    /// The charge request body, its account lasting `minutes`.
    pub fn body(&self, minutes: i64) -> serde_json::Value {
        serde_json::json!({
            "payment_type": "bank_transfer",
            "transaction_details": {"order_id": self.bank_order_id(), "gross_amount": self.amount.value()},
            "bank_transfer": {"bank": self.bank},
            "custom_expiry": {"expiry_duration": minutes, "unit": "minute"},
        })
    }
}

pub fn bank_order_id(payment_id: i64, order_number: &str) -> String {
    format!("P{payment_id}-{order_number}")
}

/// The payment id in one of our `order_id`s.
pub fn payment_id_of(order_id: &str) -> Option<i64> {
    let (head, _) = order_id.strip_prefix('P')?.split_once('-')?;
    head.parse().ok().filter(|id| *id > 0)
}

/// The virtual account in a charge answer.
pub fn va_number_of(answer: &serde_json::Value) -> Option<(String, String)> {
    let first = answer.get("va_numbers")?.as_array()?.first()?;
    let bank = first.get("bank")?.as_str()?.to_string();
    let number = first.get("va_number")?.as_str()?.to_string();
    let plausible = !number.is_empty() && number.len() <= 32 && number.chars().all(|c| c.is_ascii_digit());
    plausible.then_some((bank, number))
}

/// The key that makes money reported for a request count once: the signed request id and
/// amount (the transaction id is not signed, so a replay under another id is the same money).
pub fn money_key(payment_id: i64, amount: Rupiah) -> String {
    format!("bank:P{payment_id}:{}", amount.value())
}

/// What the bank says about a payment request, as the engine hears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankNews {
    pub payment_id: i64,
    pub event: BankEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BankEvent {
    /// The virtual account exists: the shopper can pay into it.
    AccountReady { bank: String, number: String },
    /// The bank would not make one (or could not be reached): the admins take over.
    AccountRefused { reason: String },
    /// Money arrived.
    Paid { amount: Rupiah, transaction_id: String },
    /// Anything else the bank reports (pending, expire, cancel, deny): kept in the log only.
    Other { status: String },
}

/// Who bank news comes from, in the inbox.
pub fn bank_user() -> UserKey {
    UserKey { channel: crate::channel::ChannelKind::Console, id: "bank".into() }
}

/// A notification as posted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Notification {
    pub order_id: String,
    pub status_code: String,
    pub gross_amount: String,
    pub signature_key: String,
    pub transaction_status: String,
    pub transaction_id: String,
}

/// Why a notification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("not a notification: {0}")]
    Malformed(String),
    #[error("bad signature")]
    Signature,
    #[error("not one of our payment requests: {0}")]
    UnknownOrder(String),
    #[error("amount `{0}` is not whole rupiah")]
    Amount(String),
}

/// The signature the bank puts on a notification.
pub fn signature(order_id: &str, status_code: &str, gross_amount: &str, server_key: &str) -> String {
    let mut h = Sha512::new();
    h.update(order_id.as_bytes());
    h.update(status_code.as_bytes());
    h.update(gross_amount.as_bytes());
    h.update(server_key.as_bytes());
    hex::encode(h.finalize())
}

/// `"15400.00"` (or `"15400"`) as rupiah; cents other than zero are not rupiah we deal in.
fn amount(gross: &str) -> Option<Rupiah> {
    let (whole, cents) = gross.split_once('.').unwrap_or((gross, ""));
    if !cents.chars().all(|c| c == '0') || whole.is_empty() || !whole.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    whole.parse().ok().filter(|v| *v > 0).map(Rupiah)
}

impl Notification {
    /// Reads and checks a notification: JSON, then the signature (compared in constant time),
    /// then our order id and the amount. Returns the news and the key that makes it count once.
    pub fn verify(body: &[u8], server_key: &str) -> Result<(BankNews, String), NotificationError> {
        let n: Notification = serde_json::from_slice(body).map_err(|e| NotificationError::Malformed(e.to_string()))?;
        let expected = signature(&n.order_id, &n.status_code, &n.gross_amount, server_key);
        let given = n.signature_key.to_ascii_lowercase();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), given.as_bytes())) {
            return Err(NotificationError::Signature);
        }
        let payment_id =
            payment_id_of(&n.order_id).ok_or_else(|| NotificationError::UnknownOrder(n.order_id.clone()))?;
        if n.transaction_id.is_empty() || n.transaction_id.len() > 100 {
            return Err(NotificationError::Malformed("transaction_id".into()));
        }
        let event = match n.transaction_status.as_str() {
            // Only a signed success: `transaction_status` itself is not covered by the signature,
            // but `status_code` is, and a settlement comes with 200 (a pending notice with 201).
            "settlement" | "capture" if n.status_code == "200" => BankEvent::Paid {
                amount: amount(&n.gross_amount).ok_or_else(|| NotificationError::Amount(n.gross_amount.clone()))?,
                transaction_id: n.transaction_id.clone(),
            },
            other => BankEvent::Other { status: other.chars().take(40).collect() },
        };
        let key = format!("{}:{}", n.transaction_id, n.transaction_status.chars().take(40).collect::<String>());
        Ok((BankNews { payment_id, event }, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(status: &str, gross: &str, key: &str) -> Vec<u8> {
        let order_id = "P7-BLB-0002";
        let sig = signature(order_id, "200", gross, key);
        serde_json::json!({
            "order_id": order_id, "status_code": "200", "gross_amount": gross, "signature_key": sig,
            "transaction_status": status, "transaction_id": "tx-1", "payment_type": "bank_transfer",
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_signed_settlement_is_a_payment_of_whole_rupiah() {
        let (news, key) = Notification::verify(&notification("settlement", "15400.00", "sk"), "sk").expect("ok");
        assert_eq!(
            news,
            BankNews {
                payment_id: 7,
                event: BankEvent::Paid { amount: Rupiah(15_400), transaction_id: "tx-1".into() }
            }
        );
        assert_eq!(key, "tx-1:settlement");
        let (news, _) = Notification::verify(&notification("expire", "15400.00", "sk"), "sk").expect("ok");
        assert_eq!(news.event, BankEvent::Other { status: "expire".into() });
    }

    #[test]
    fn a_settlement_needs_the_signed_success_code() {
        // A pending notice (201) with its status changed to settlement is not money.
        let order_id = "P7-BLB-0002";
        let body = serde_json::json!({
            "order_id": order_id, "status_code": "201", "gross_amount": "15400.00",
            "signature_key": signature(order_id, "201", "15400.00", "sk"),
            "transaction_status": "settlement", "transaction_id": "tx-1",
        })
        .to_string();
        let (news, _) = Notification::verify(body.as_bytes(), "sk").expect("signed");
        assert_eq!(news.event, BankEvent::Other { status: "settlement".into() });
        assert_ne!(money_key(7, Rupiah(15_400)), money_key(7, Rupiah(15_000)));
    }

    #[test]
    fn bad_notifications_are_refused() {
        assert_eq!(
            Notification::verify(&notification("settlement", "15400.00", "other"), "sk"),
            Err(NotificationError::Signature)
        );
        assert!(matches!(Notification::verify(b"{", "sk"), Err(NotificationError::Malformed(_))));
        assert!(matches!(
            Notification::verify(&notification("settlement", "15400.50", "sk"), "sk"),
            Err(NotificationError::Amount(_))
        ));
        assert_eq!(payment_id_of("P7-BLB-0002"), Some(7));
        for bad in ["7-BLB", "P-BLB", "Px-BLB", "P0-BLB", "BLB-0002"] {
            assert_eq!(payment_id_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_charge_asks_for_a_virtual_account_for_the_exact_amount() {
        let c = VaCharge {
            payment_id: 7,
            order_number: "BLB-0002".into(),
            amount: Rupiah(15_400),
            bank: "bni".into(),
            expires_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH + chrono::Duration::minutes(60),
        };
        let b = c.body(60);
        assert_eq!(c.minutes_left(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH), Some(60));
        assert_eq!(c.minutes_left(c.expires_at - chrono::Duration::seconds(30)), None);
        assert_eq!(b["transaction_details"]["order_id"], "P7-BLB-0002");
        assert_eq!(b["transaction_details"]["gross_amount"], 15_400);
        assert_eq!(b["bank_transfer"]["bank"], "bni");
        let answer = serde_json::json!({"va_numbers": [{"bank": "bni", "va_number": "9881234567890"}]});
        assert_eq!(va_number_of(&answer), Some(("bni".into(), "9881234567890".into())));
        assert_eq!(va_number_of(&serde_json::json!({"va_numbers": []})), None);
    }
}
