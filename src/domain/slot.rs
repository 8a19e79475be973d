//! Delivery slots and market hours, in Malang's local time (WIB, UTC+7, no daylight saving).
//!
//! A slot is offered only when there is still time to shop and pack for it: today's slots that
//! start within [`LEAD_MINUTES`] are not offered.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How long traders and the courier need between an order and the start of its slot.
pub const LEAD_MINUTES: i64 = 60;

/// Western Indonesia Time.
pub fn wib() -> FixedOffset {
    // 7 hours is always a valid offset.
    FixedOffset::east_opt(7 * 3600).expect("UTC+7 is a valid offset")
}

/// The moment a day starts in Malang, as UTC.
pub fn malang_midnight(day: chrono::NaiveDate) -> Option<DateTime<Utc>> {
    day.and_hms_opt(0, 0, 0)?.and_local_timezone(wib()).single().map(|t| t.with_timezone(&Utc))
}

/// Local time in Malang.
pub fn local(now: DateTime<Utc>) -> DateTime<FixedOffset> {
    now.with_timezone(&wib())
}

/// A daily delivery window such as 07:00-09:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeliverySlot {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl DeliverySlot {
    /// A compact id for button payloads: `0700`.
    pub fn code(&self) -> String {
        self.start.format("%H%M").to_string()
    }
}

impl fmt::Display for DeliverySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start.format("%H:%M"), self.end.format("%H:%M"))
    }
}

impl FromStr for DeliverySlot {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s.split_once('-').ok_or_else(|| format!("slot `{s}` must look like 07:00-09:00"))?;
        let start = NaiveTime::parse_from_str(a.trim(), "%H:%M").map_err(|_| format!("slot `{s}`: bad start time"))?;
        let end = NaiveTime::parse_from_str(b.trim(), "%H:%M").map_err(|_| format!("slot `{s}`: bad end time"))?;
        if end <= start {
            return Err(format!("slot `{s}` ends before it starts"));
        }
        Ok(DeliverySlot { start, end })
    }
}

/// One slot on one day, as chosen at checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotChoice {
    pub date: NaiveDate,
    pub slot: DeliverySlot,
}

impl SlotChoice {
    /// `d20261128s0700`: fits easily in a button payload.
    pub fn code(&self) -> String {
        format!("{}{}", self.date.format("%Y%m%d"), self.slot.code())
    }
}

/// The slots a shopper may pick now: the rest of today's (with lead time) and all of tomorrow's.
pub fn available_slots(slots: &[DeliverySlot], now: DateTime<Utc>) -> Vec<SlotChoice> {
    let local_now = local(now);
    let today = local_now.date_naive();
    let earliest = (local_now + Duration::minutes(LEAD_MINUTES)).naive_local();
    let mut out = Vec::new();
    for day in [Some(today), today.succ_opt()].into_iter().flatten() {
        for slot in slots {
            if day.and_time(slot.start) >= earliest {
                out.push(SlotChoice { date: day, slot: *slot });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn slots() -> Vec<DeliverySlot> {
        ["07:00-09:00", "09:00-11:00", "11:00-13:00"].iter().map(|s| s.parse().expect("slot")).collect()
    }

    #[test]
    fn parses_and_refuses_slots() {
        let s: DeliverySlot = "07:00-09:00".parse().expect("slot");
        assert_eq!(s.to_string(), "07:00-09:00");
        assert!("09:00-07:00".parse::<DeliverySlot>().is_err());
        assert!("pagi".parse::<DeliverySlot>().is_err());
    }

    #[test]
    fn past_slots_of_today_are_not_offered() {
        // 08:30 WIB = 01:30 UTC: 07:00 and 09:00 (only 30 min away) are gone, 11:00 remains.
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 1, 30, 0).single().expect("time");
        let got = available_slots(&slots(), now);
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).expect("date");
        assert_eq!(got[0].date, today);
        assert_eq!(got[0].slot.to_string(), "11:00-13:00");
        assert_eq!(got.len(), 4, "11:00 today and three tomorrow");
        // Late evening: only tomorrow.
        let night = Utc.with_ymd_and_hms(2026, 11, 28, 14, 0, 0).single().expect("time");
        assert!(available_slots(&slots(), night).iter().all(|c| c.date != today));
    }
}
