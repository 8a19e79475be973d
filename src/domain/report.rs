//! The admins' reports: the period of `/statistik` and its figures, and the date range of
//! `/ekspor`. Pure: the store counts, these types say over what and how it reads.

use super::money::Rupiah;
use super::slot::{local, malang_midnight};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Utc};

/// What `/statistik` looks back over, in Malang days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Today so far; the chart goes per hour.
    Day,
    /// The last 7 days with today; the chart goes per day.
    Week,
    /// The last 30 days with today; the chart goes per day.
    Month,
}

impl Period {
    /// `hari`/`day` (the default), `minggu`/`week`, `bulan`/`month`.
    pub fn parse(args: &str) -> Option<Period> {
        match args.trim().to_lowercase().as_str() {
            "" | "hari" | "hari ini" | "day" | "today" => Some(Period::Day),
            "minggu" | "pekan" | "week" => Some(Period::Week),
            "bulan" | "month" => Some(Period::Month),
            _ => None,
        }
    }

    /// Days the period covers, today included.
    pub fn days(self) -> i64 {
        match self {
            Period::Day => 1,
            Period::Week => 7,
            Period::Month => 30,
        }
    }

    /// The first and last local day of the period ending today.
    pub fn dates(self, now: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
        let today = local(now).date_naive();
        (today - Duration::days(self.days() - 1), today)
    }

    /// The instants the period runs from and to (exclusive): from the first day's midnight to the
    /// next midnight after today, in Malang.
    pub fn range(self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let (first, last) = self.dates(now);
        Some((malang_midnight(first)?, malang_midnight(last + Duration::days(1))?))
    }

    /// The chart's buckets: the 24 hours of today, or each day of the period.
    pub fn buckets(self, now: DateTime<Utc>) -> Vec<NaiveDateTime> {
        let (first, last) = self.dates(now);
        match self {
            Period::Day => (0..24).filter_map(|h| first.and_hms_opt(h, 0, 0)).collect(),
            Period::Week | Period::Month => {
                first.iter_days().take_while(|d| *d <= last).filter_map(|d| d.and_hms_opt(0, 0, 0)).collect()
            }
        }
    }

    /// The bucket (start of its hour or day, local) an order placed at `local_hour` falls in.
    pub fn bucket_of(self, local_hour: NaiveDateTime) -> NaiveDateTime {
        match self {
            Period::Day => local_hour.with_minute(0).and_then(|t| t.with_second(0)).unwrap_or(local_hour),
            Period::Week | Period::Month => local_hour.date().and_hms_opt(0, 0, 0).unwrap_or(local_hour),
        }
    }

    /// The x label of a bucket: `07` (hour) or `29/11` (day).
    pub fn label(self, bucket: NaiveDateTime) -> String {
        match self {
            Period::Day => bucket.format("%H").to_string(),
            Period::Week | Period::Month => bucket.format("%d/%m").to_string(),
        }
    }
}

/// A market's orders placed in a period, as `/statistik` shows them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MarketFigures {
    pub market: String,
    pub orders: u32,
    /// The total of the orders not cancelled or rejected.
    pub value: Rupiah,
    pub rejected: u32,
    pub cancelled: u32,
    /// Stall parts a trader answered (accepted, changed or refused), and the average time from
    /// the order being placed to that first answer, in minutes.
    pub answered: u32,
    pub answer_minutes: Option<f64>,
}

impl MarketFigures {
    /// A part of the orders in whole percent (0 when there are none).
    pub fn percent(&self, part: u32) -> u32 {
        if self.orders == 0 { 0 } else { ((f64::from(part) * 100.0) / f64::from(self.orders)).round() as u32 }
    }
}

/// A commodity's sales in a period: how much was sold (base units: grams, millilitres, pieces)
/// and for how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommodityFigures {
    pub commodity_id: String,
    pub name: String,
    pub base: u64,
    pub value: Rupiah,
}

/// Orders placed in one local hour of one market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourCount {
    pub market: String,
    pub hour: NaiveDateTime,
    pub orders: u32,
}

/// The longest range `/ekspor` sends at once.
pub const MAX_EXPORT_DAYS: i64 = 366;

/// Why an export range was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    /// A word that is not a date (`2026-11-01` or `01/11/2026`).
    NotADate,
    /// The end before the start.
    Reversed,
    /// More than [`MAX_EXPORT_DAYS`].
    TooLong,
}

/// A date as admins write it: `2026-11-01` or `01/11/2026`.
pub fn parse_date(word: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(word, "%Y-%m-%d").or_else(|_| NaiveDate::parse_from_str(word, "%d/%m/%Y")).ok()
}

/// The days of `/ekspor [dari] [sampai]`, both included: by default this month so far; with one
/// date, from it to today.
pub fn export_range(words: &[&str], today: NaiveDate) -> Result<(NaiveDate, NaiveDate), RangeError> {
    let dates = words.iter().map(|w| parse_date(w).ok_or(RangeError::NotADate)).collect::<Result<Vec<_>, _>>()?;
    let (from, to) = match dates[..] {
        [] => (today.with_day(1).unwrap_or(today), today),
        [from] => (from, today),
        [from, to] => (from, to),
        _ => return Err(RangeError::NotADate),
    };
    if to < from {
        return Err(RangeError::Reversed);
    }
    if (to - from).num_days() + 1 > MAX_EXPORT_DAYS {
        return Err(RangeError::TooLong);
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn periods_end_today_in_malang() {
        // 29/11 01:30 in Malang is still 28/11 in UTC.
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 18, 30, 0).single().expect("time");
        assert_eq!(Period::parse(""), Some(Period::Day));
        assert_eq!(Period::parse("Minggu"), Some(Period::Week));
        assert_eq!(Period::parse("month"), Some(Period::Month));
        assert_eq!(Period::parse("tahun"), None);
        assert_eq!(Period::Day.dates(now), (day(2026, 11, 29), day(2026, 11, 29)));
        let (from, to) = Period::Week.range(now).expect("range");
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 11, 22, 17, 0, 0).single().expect("time"));
        assert_eq!(to, Utc.with_ymd_and_hms(2026, 11, 29, 17, 0, 0).single().expect("time"));
        let hours = Period::Day.buckets(now);
        assert_eq!(hours.len(), 24);
        assert_eq!(Period::Day.label(hours[7]), "07");
        let days = Period::Month.buckets(now);
        assert_eq!(days.len(), 30);
        assert_eq!(Period::Month.label(days[29]), "29/11");
        let at = day(2026, 11, 29).and_hms_opt(7, 0, 0).expect("time");
        assert_eq!(Period::Week.bucket_of(at), day(2026, 11, 29).and_hms_opt(0, 0, 0).expect("time"));
    }

    #[test]
    fn export_ranges_default_to_this_month_and_refuse_nonsense() {
        let today = day(2026, 11, 29);
        assert_eq!(export_range(&[], today), Ok((day(2026, 11, 1), today)));
        assert_eq!(export_range(&["2026-11-10"], today), Ok((day(2026, 11, 10), today)));
        assert_eq!(export_range(&["01/10/2026", "2026-10-31"], today), Ok((day(2026, 10, 1), day(2026, 10, 31))));
        assert_eq!(export_range(&["2026-11-10", "2026-11-01"], today), Err(RangeError::Reversed));
        assert_eq!(export_range(&["2025-01-01", "2026-11-01"], today), Err(RangeError::TooLong));
        assert_eq!(export_range(&["2025-11-29", "2026-11-29"], today), Ok((day(2025, 11, 29), today)), "366 days");
        assert_eq!(export_range(&["kemarin"], today), Err(RangeError::NotADate));
        assert_eq!(export_range(&["2026-11-01", "2026-11-02", "2026-11-03"], today), Err(RangeError::NotADate));
    }
}
