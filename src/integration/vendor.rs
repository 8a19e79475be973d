//! An outside delivery vendor: a partner that runs its own dispatch.
//!
//! For a market whose config says `delivery = "vendor"`, a delivery is not offered to the
//! market's couriers: the engine stores a job request ([`VendorJob`], in the same transaction as
//! the delivery), the runtime's vendor sender posts it to `POST {delivery.vendor_url}/jobs` with
//! the key from `PASAR_DELIVERY_VENDOR_KEY`, and the vendor reports each step back to
//! `POST /delivery/vendor` on our HTTP server, signed with `X-Vendor-Signature: sha256=<hex>`
//! (HMAC-SHA256 of the body under `PASAR_DELIVERY_VENDOR_SECRET`). A callback is stored in the
//! inbox under its `event_id` (a duplicate is ignored) and applied by the engine, which never
//! moves a delivery backwards ([`crate::domain::delivery::DeliveryStatus::progress`]).
//!
//! Nothing here does I/O: the HTTP calls live in [`crate::runtime`].

use crate::domain::delivery::{CourierProfile, FailReason};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The environment variable with the key for the vendor's API.
pub const KEY_VARIABLE: &str = "PASAR_DELIVERY_VENDOR_KEY";
/// The environment variable with the secret that signs the vendor's callbacks.
pub const SECRET_VARIABLE: &str = "PASAR_DELIVERY_VENDOR_SECRET";
/// The callback header.
pub const SIGNATURE_HEADER: &str = "x-vendor-signature";
/// The largest callback body taken.
pub const MAX_CALLBACK_BODY: usize = 64 * 1024;

/// What a job request says: where to collect, what, and where to bring it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VendorJob {
    /// Ours, echoed in every callback: `<market>:<delivery id>`.
    pub reference: String,
    pub order: String,
    pub pickup: Pickup,
    pub dropoff: Dropoff,
    /// The delivery window, Malang time: `2026-11-28 09:00-11:00`.
    pub slot: String,
    /// Cash the courier collects at the door (0 when paid).
    pub cash_on_delivery: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pickup {
    pub market: String,
    pub address: String,
    pub lat: f64,
    pub lon: f64,
    /// In walking order.
    pub stalls: Vec<PickupStall>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PickupStall {
    pub number: String,
    pub name: String,
    pub items: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropoff {
    pub name: String,
    pub phone: String,
    pub address: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub note: Option<String>,
}

/// A status the vendor reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VendorStep {
    /// A vendor courier took the job.
    Assigned,
    /// Everything collected; on the way.
    PickedUp,
    Delivered,
    Failed,
    /// The vendor will not do it (or our request could not be placed): the admins take over.
    Rejected,
}

/// One callback, as stored in the inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VendorUpdate {
    /// The vendor's id for this news; the same id twice is one event.
    pub event_id: String,
    pub reference: String,
    #[serde(default)]
    pub job_id: Option<String>,
    pub status: VendorStep,
    #[serde(default)]
    pub courier: Option<VendorCourier>,
    #[serde(default)]
    pub position: Option<VendorPosition>,
    #[serde(default)]
    pub proof_url: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// When it happened at the vendor.
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VendorCourier {
    pub name: String,
    pub phone: String,
    #[serde(default)]
    pub vehicle: String,
    #[serde(default)]
    pub plate: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VendorPosition {
    pub lat: f64,
    pub lon: f64,
}

/// Why a callback body was refused (answered 400).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CallbackError {
    #[error("not a vendor callback: {0}")]
    Malformed(String),
    #[error("reference `{0}` is not `<market>:<delivery id>`")]
    Reference(String),
    #[error("a field is too long")]
    TooLong,
}

impl VendorUpdate {
    /// Reads a callback body; refuses anything that is not one.
    pub fn parse(body: &[u8]) -> Result<VendorUpdate, CallbackError> {
        let update: VendorUpdate = serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
        update.target().ok_or_else(|| CallbackError::Reference(update.reference.clone()))?;
        let fields =
            [Some(&update.event_id), update.job_id.as_ref(), update.proof_url.as_ref(), update.reason.as_ref()];
        if update.event_id.is_empty() || fields.iter().flatten().any(|f| f.len() > 500) {
            return Err(CallbackError::TooLong);
        }
        if let Some(p) = update.position
            && !(p.lat.is_finite() && p.lon.is_finite() && p.lat.abs() <= 90.0 && p.lon.abs() <= 180.0)
        {
            return Err(CallbackError::Malformed("position out of range".into()));
        }
        Ok(update)
    }

    /// The market and delivery the reference names.
    pub fn target(&self) -> Option<(&str, i64)> {
        let (market, id) = self.reference.split_once(':')?;
        let id = id.parse::<i64>().ok().filter(|n| *n > 0)?;
        (!market.is_empty()).then_some((market, id))
    }

    /// The courier the vendor named, if their phone number reads as one.
    pub fn courier_profile(&self) -> Option<CourierProfile> {
        let c = self.courier.as_ref()?;
        Some(CourierProfile {
            name: c.name.chars().take(60).collect(),
            phone: crate::domain::contact::PhoneNumber::parse(&c.phone).ok()?,
            vehicle: c.vehicle.chars().take(60).collect(),
            plate: c.plate.chars().take(20).collect::<String>().to_uppercase(),
        })
    }

    /// The vendor's reason for a failed delivery, in our terms (unknown reasons count as the
    /// shopper not being reachable at home).
    pub fn fail_reason(&self) -> FailReason {
        match self.reason.as_deref() {
            Some("wrong_address") => FailReason::WrongAddress,
            Some("refused") => FailReason::Refused,
            _ => FailReason::NotHome,
        }
    }
}

/// Who vendor news comes from in the inbox: nobody's chat.
pub fn vendor_user() -> crate::channel::UserKey {
    crate::channel::UserKey { channel: crate::channel::ChannelKind::Console, id: "vendor".to_string() }
}

/// The reference of a delivery.
pub fn reference(market: &str, delivery_id: i64) -> String {
    format!("{market}:{delivery_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_are_read_or_refused() {
        let body = br#"{"event_id":"e1","reference":"blimbing:12","job_id":"J-7","status":"assigned",
            "courier":{"name":"Eko","phone":"0812-9999-0000","vehicle":"Honda Beat","plate":"n 1 ab"},
            "at":"2026-11-28T02:00:00Z"}"#;
        let u = VendorUpdate::parse(body).expect("a callback");
        assert_eq!(u.target(), Some(("blimbing", 12)));
        assert_eq!(u.status, VendorStep::Assigned);
        assert_eq!(u.courier_profile().map(|c| c.plate), Some("N 1 AB".to_string()));
        for bad in [
            &b"not json"[..],
            br#"{"event_id":"e1","reference":"blimbing:12","status":"teleported","at":"2026-11-28T02:00:00Z"}"#,
            br#"{"event_id":"e1","reference":"blimbing","status":"assigned","at":"2026-11-28T02:00:00Z"}"#,
            br#"{"event_id":"e1","reference":"blimbing:0","status":"assigned","at":"2026-11-28T02:00:00Z"}"#,
            br#"{"event_id":"","reference":"blimbing:1","status":"assigned","at":"2026-11-28T02:00:00Z"}"#,
            br#"{"event_id":"e1","reference":"blimbing:1","status":"assigned"}"#,
            br#"{"event_id":"e1","reference":"blimbing:1","status":"assigned","at":"2026-11-28T02:00:00Z","position":{"lat":95,"lon":0}}"#,
        ] {
            assert!(VendorUpdate::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
