//! Free delivery: couriers, the delivery of an order, and the rules that move it.
//!
//! A delivery is created when an order is ready for pickup (or its slot is near) and walks
//! `Offered -> Assigned -> OnTheWay -> Delivered | Failed`; every move goes through
//! [`DeliveryStatus::can_move_to`]. Status news from an outside vendor may arrive twice or out of
//! order: [`DeliveryStatus::progress`] orders the statuses so that such news never moves a
//! delivery backwards.

use super::contact::{PhoneError, PhoneNumber, distance_km};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Average speed of a motorbike courier in Malang's traffic, for arrival estimates.
pub const COURIER_KMH: f64 = 20.0;
/// Minutes added to every estimate: parking, finding the house, handing over.
pub const HANDOVER_MINUTES: i64 = 3;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeliveryStatus {
    /// Offered to one courier, who has until the offer's deadline to take it.
    Offered,
    /// Nobody took it (or nobody is on shift): an admin must assign it.
    Unassigned,
    /// A courier took it and is collecting from the stalls.
    Assigned,
    /// Everything is collected; on the way to the shopper.
    OnTheWay,
    Delivered,
    /// The courier could not hand it over (not home, wrong address, refused).
    Failed,
    /// The order was cancelled.
    Cancelled,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 7] = [
        DeliveryStatus::Offered,
        DeliveryStatus::Unassigned,
        DeliveryStatus::Assigned,
        DeliveryStatus::OnTheWay,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Cancelled,
    ];

    pub fn code(self) -> &'static str {
        match self {
            DeliveryStatus::Offered => "offered",
            DeliveryStatus::Unassigned => "unassigned",
            DeliveryStatus::Assigned => "assigned",
            DeliveryStatus::OnTheWay => "on_the_way",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    pub fn from_code(code: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The one table of legal moves. An offer may pass from one courier to the next
    /// (`Offered -> Offered`).
    pub fn can_move_to(self, next: DeliveryStatus) -> bool {
        use DeliveryStatus::*;
        matches!(
            (self, next),
            (Offered, Offered | Assigned | Unassigned | Cancelled)
                | (Unassigned, Offered | Assigned | Cancelled)
                | (Assigned, OnTheWay | Cancelled)
                | (OnTheWay, Delivered | Failed)
        )
    }

    /// Still someone's work: not delivered, failed or cancelled.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Offered | DeliveryStatus::Unassigned | DeliveryStatus::Assigned | DeliveryStatus::OnTheWay
        )
    }

    /// How far along a delivery is. News that would lower it is old news.
    pub fn progress(self) -> u8 {
        match self {
            DeliveryStatus::Offered | DeliveryStatus::Unassigned => 0,
            DeliveryStatus::Assigned => 1,
            DeliveryStatus::OnTheWay => 2,
            DeliveryStatus::Delivered | DeliveryStatus::Failed | DeliveryStatus::Cancelled => 3,
        }
    }
}

/// Why a courier could not hand an order over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailReason {
    NotHome,
    WrongAddress,
    Refused,
}

impl FailReason {
    pub const ALL: [FailReason; 3] = [FailReason::NotHome, FailReason::WrongAddress, FailReason::Refused];

    pub fn code(self) -> &'static str {
        match self {
            FailReason::NotHome => "not_home",
            FailReason::WrongAddress => "wrong_address",
            FailReason::Refused => "refused",
        }
    }
}

impl FromStr for FailReason {
    type Err = ();
    fn from_str(s: &str) -> Result<FailReason, ()> {
        FailReason::ALL.into_iter().find(|r| r.code() == s).ok_or(())
    }
}

/// Who a shopper rates after delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RatingTarget {
    /// One of the market's couriers (by courier id).
    Courier,
    Stall,
    /// The outside vendor's courier of one delivery (by delivery id).
    VendorCourier,
}

impl RatingTarget {
    pub fn code(self) -> &'static str {
        match self {
            RatingTarget::Courier => "courier",
            RatingTarget::Stall => "stall",
            RatingTarget::VendorCourier => "vendor_courier",
        }
    }

    pub fn from_code(code: &str) -> Option<RatingTarget> {
        [RatingTarget::Courier, RatingTarget::Stall, RatingTarget::VendorCourier].into_iter().find(|t| t.code() == code)
    }
}

/// What the admin says about a courier when inviting them; the shopper sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourierProfile {
    pub name: String,
    pub phone: PhoneNumber,
    /// Make and model, e.g. "Honda Beat merah".
    pub vehicle: String,
    /// Number plate, upper case, e.g. "N 1234 AB".
    pub plate: String,
}

/// Why `/undang_kurir` arguments were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("expected name, phone, vehicle and plate")]
    Fields,
    #[error(transparent)]
    Phone(#[from] PhoneError),
    #[error("a field is too long")]
    TooLong,
}

/// The longest name, vehicle or plate kept.
const MAX_FIELD: usize = 60;

impl CourierProfile {
    /// `Budi Santoso, 0812-1111-2222, Honda Beat, N 1234 AB` (commas, semicolons or `|`).
    pub fn parse(input: &str) -> Result<CourierProfile, ProfileError> {
        let fields: Vec<&str> = input.split([',', ';', '|']).map(str::trim).collect();
        let [name, phone, vehicle, plate] = fields.as_slice() else {
            return Err(ProfileError::Fields);
        };
        if [name, vehicle, plate].iter().any(|f| f.is_empty()) {
            return Err(ProfileError::Fields);
        }
        if [name, vehicle, plate].iter().any(|f| f.chars().count() > MAX_FIELD) {
            return Err(ProfileError::TooLong);
        }
        let plate = plate.split_whitespace().collect::<Vec<_>>().join(" ").to_uppercase();
        Ok(CourierProfile {
            name: name.split_whitespace().collect::<Vec<_>>().join(" "),
            phone: PhoneNumber::parse(phone)?,
            vehicle: vehicle.split_whitespace().collect::<Vec<_>>().join(" "),
            plate,
        })
    }
}

/// A point and when it was reported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
    pub at: DateTime<Utc>,
}

/// A registered courier of one market.
#[derive(Debug, Clone, PartialEq)]
pub struct Courier {
    pub id: i64,
    pub user: crate::channel::UserKey,
    pub profile: CourierProfile,
    pub on_shift: bool,
    /// Since when they have had nothing to do (shift start or last delivery's end).
    pub idle_since: DateTime<Utc>,
    /// The latest position they shared, live or not.
    pub position: Option<Position>,
    /// In service; an admin's `/nonaktif` takes them off shift and out of offers until `/aktif`.
    pub active: bool,
}

/// The delivery of one order. An order whose delivery failed may get a new one.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub order_id: i64,
    pub status: DeliveryStatus,
    /// The courier it is offered to or taken by.
    pub courier_id: Option<i64>,
    /// When the current offer lapses.
    pub offer_deadline: Option<DateTime<Utc>>,
    /// Couriers whose offer lapsed or who passed: not offered it again automatically.
    pub passed: Vec<i64>,
    /// The platform's reference to the photo taken at the door.
    pub proof: Option<String>,
    pub fail_reason: Option<FailReason>,
    pub created_at: DateTime<Utc>,
    /// Handled by the outside delivery vendor, not the market's couriers.
    pub by_vendor: bool,
    /// The vendor's id for the job, once it has accepted the request.
    pub vendor_job: Option<String>,
    /// The vendor's courier, as the vendor named them.
    pub vendor_courier: Option<CourierProfile>,
    /// The vendor courier's latest reported position.
    pub vendor_position: Option<Position>,
}

/// One step of a delivery, for the shopper's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryEvent {
    pub status: DeliveryStatus,
    pub courier_id: Option<i64>,
    pub at: DateTime<Utc>,
}

/// A courier as automatic assignment sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub courier_id: i64,
    /// Deliveries offered to or held by them and not finished.
    pub open_jobs: u32,
    pub idle_since: DateTime<Utc>,
}

/// Automatic assignment: the courier with the fewest open jobs, then the one idle longest, then
/// the one registered first (lowest id) so the choice never depends on row order.
pub fn choose_courier(candidates: &[Candidate], passed: &[i64]) -> Option<i64> {
    candidates
        .iter()
        .filter(|c| !passed.contains(&c.courier_id))
        .min_by_key(|c| (c.open_jobs, c.idle_since, c.courier_id))
        .map(|c| c.courier_id)
}

/// Minutes a courier needs to ride `km` and hand the order over.
pub fn eta_minutes(km: f64) -> i64 {
    let riding = (km.max(0.0) / COURIER_KMH * 60.0).ceil() as i64;
    riding + HANDOVER_MINUTES
}

/// Minutes from a point to another, by [`eta_minutes`].
pub fn eta_between(from: (f64, f64), to: (f64, f64)) -> i64 {
    eta_minutes(distance_km(from.0, from.1, to.0, to.1))
}

/// A link that opens the point in a map app.
pub fn map_link(lat: f64, lon: f64) -> String {
    format!("https://maps.google.com/?q={lat:.6},{lon:.6}")
}

/// A link that opens a WhatsApp chat with the number.
pub fn whatsapp_link(phone: &PhoneNumber) -> String {
    format!("https://wa.me/{}", phone.e164().trim_start_matches('+'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn only_legal_moves_and_never_backwards() {
        use DeliveryStatus::*;
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::from_code(s.code()), Some(s));
        }
        assert!(Offered.can_move_to(Offered), "an offer passes to the next courier");
        assert!(Offered.can_move_to(Assigned));
        assert!(Assigned.can_move_to(OnTheWay));
        assert!(OnTheWay.can_move_to(Delivered));
        assert!(OnTheWay.can_move_to(Failed));
        assert!(!Assigned.can_move_to(Delivered), "nobody delivers what was not collected");
        assert!(!Delivered.can_move_to(OnTheWay));
        assert!(!Failed.can_move_to(Delivered));
        assert!(!OnTheWay.can_move_to(Cancelled), "goods on a motorbike are not cancelled by a button");
        for a in DeliveryStatus::ALL {
            for b in DeliveryStatus::ALL {
                if a.can_move_to(b) && a != b {
                    assert!(b.progress() >= a.progress(), "{a:?} -> {b:?} goes backwards");
                }
            }
        }
    }

    #[test]
    fn courier_profiles_are_read_from_one_line() {
        let p = CourierProfile::parse(" Budi  Santoso , 0812-1111-2222; Honda Beat | n 1234  ab ").expect("parses");
        assert_eq!(p.name, "Budi Santoso");
        assert_eq!(p.phone.e164(), "+6281211112222");
        assert_eq!(p.vehicle, "Honda Beat");
        assert_eq!(p.plate, "N 1234 AB");
        assert_eq!(CourierProfile::parse("Budi, 0812-1111-2222, Honda Beat"), Err(ProfileError::Fields));
        assert_eq!(CourierProfile::parse("Budi, 0812-1111-2222, , N 1 A"), Err(ProfileError::Fields));
        assert_eq!(CourierProfile::parse("Budi, 12345, Beat, N 1 A"), Err(ProfileError::Phone(PhoneError)));
        let long = "x".repeat(61);
        assert_eq!(CourierProfile::parse(&format!("{long}, 0812-1111-2222, Beat, N 1")), Err(ProfileError::TooLong));
    }

    #[test]
    fn the_courier_with_fewest_jobs_then_idle_longest_is_chosen() {
        let t = |h| Utc.with_ymd_and_hms(2026, 11, 28, h, 0, 0).single().expect("time");
        let c = |id, open_jobs, h| Candidate { courier_id: id, open_jobs, idle_since: t(h) };
        let all = [c(1, 1, 1), c(2, 0, 3), c(3, 0, 2)];
        assert_eq!(choose_courier(&all, &[]), Some(3), "no jobs, idle since 02:00");
        assert_eq!(choose_courier(&all, &[3]), Some(2));
        assert_eq!(choose_courier(&all, &[2, 3]), Some(1));
        assert_eq!(choose_courier(&all, &[1, 2, 3]), None);
        assert_eq!(choose_courier(&[c(5, 0, 1), c(4, 0, 1)], &[]), Some(4), "ties go to the first registered");
    }

    #[test]
    fn arrival_estimates_and_links() {
        assert_eq!(eta_minutes(0.0), HANDOVER_MINUTES);
        assert_eq!(eta_minutes(5.0), 15 + HANDOVER_MINUTES);
        assert_eq!(eta_minutes(-1.0), HANDOVER_MINUTES);
        // Pasar Blimbing to Pasar Dinoyo, about 6 km as the crow flies.
        let minutes = eta_between((-7.9397, 112.6454), (-7.9399, 112.6087));
        assert!((14..=20).contains(&minutes), "{minutes}");
        assert_eq!(map_link(-7.93971, 112.64538), "https://maps.google.com/?q=-7.939710,112.645380");
        let phone = PhoneNumber::parse("0812-1111-2222").expect("phone");
        assert_eq!(whatsapp_link(&phone), "https://wa.me/6281211112222");
    }
}
