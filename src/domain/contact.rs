//! Who an order goes to: an Indonesian phone number and a delivery address.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An Indonesian mobile number, kept as `+62` followed by the national number without the 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an Indonesian mobile number")]
pub struct PhoneError;

impl PhoneNumber {
    /// Accepts `0812-3456-7890`, `+62 812 3456 7890`, `6281234567890`, `(0812) 3456 7890`.
    /// Indonesian mobile numbers start with 8 after the country code and have 9 to 12 digits
    /// after it.
    pub fn parse(input: &str) -> Result<PhoneNumber, PhoneError> {
        let trimmed = input.trim();
        if trimmed.len() > 32 {
            return Err(PhoneError);
        }
        let mut digits = String::new();
        for (i, ch) in trimmed.chars().enumerate() {
            match ch {
                '0'..='9' => digits.push(ch),
                '+' if i == 0 => {}
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(PhoneError),
            }
        }
        let national = if let Some(rest) = digits.strip_prefix("62") {
            rest.to_string()
        } else if let Some(rest) = digits.strip_prefix('0') {
            rest.to_string()
        } else {
            return Err(PhoneError);
        };
        if !national.starts_with('8') || !(9..=12).contains(&national.len()) {
            return Err(PhoneError);
        }
        Ok(PhoneNumber(format!("+62{national}")))
    }

    /// `+6281234567890`
    pub fn e164(&self) -> &str {
        &self.0
    }

    /// The number of an order whose personal data was purged (`pasar purge`).
    pub fn redacted() -> PhoneNumber {
        PhoneNumber(String::new())
    }

    pub fn is_redacted(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for PhoneNumber {
    /// The way people in Malang write it: `0812-3456-7890`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(rest) = self.0.get(3..).filter(|r| !r.is_empty()) else {
            return f.write_str("—");
        };
        let national = format!("0{rest}");
        let (a, rest) = national.split_at(4.min(national.len()));
        let (b, c) = rest.split_at(4.min(rest.len()));
        write!(f, "{a}-{b}-{c}")
    }
}

/// Where the courier brings the order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Address {
    Text(String),
    Location { lat: f64, lon: f64 },
}

/// Why a typed address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("too short")]
    TooShort,
    #[error("too long")]
    TooLong,
}

impl Address {
    pub const MIN_LEN: usize = 10;
    pub const MAX_LEN: usize = 300;

    /// A typed address: long enough for a courier to find (street and number), not a novel.
    pub fn parse_text(input: &str) -> Result<Address, AddressError> {
        let text = input.split_whitespace().collect::<Vec<_>>().join(" ");
        let n = text.chars().count();
        if n < Self::MIN_LEN || !text.chars().any(char::is_alphabetic) {
            return Err(AddressError::TooShort);
        }
        if n > Self::MAX_LEN {
            return Err(AddressError::TooLong);
        }
        Ok(Address::Text(text))
    }

    pub fn location(lat: f64, lon: f64) -> Option<Address> {
        let ok = lat.is_finite() && lon.is_finite() && (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon);
        ok.then_some(Address::Location { lat, lon })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Text(t) => f.write_str(t),
            Address::Location { lat, lon } => {
                write!(f, "{lat:.5}, {lon:.5} · https://maps.google.com/?q={lat:.6},{lon:.6}")
            }
        }
    }
}

/// Great-circle distance in kilometres between two points (haversine; plenty for a city).
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let r = 6371.0_f64;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * r * a.sqrt().asin()
}

/// The first of `kelurahan` that a typed address names, word for word (case, dots and hyphens
/// do not matter, and "Oro2 Dowo" is "Oro-oro Dowo"); `None` when it names none of them. What
/// follows "Kec.", "Kab." or "Kota" in a part of the address names a district or a city, not a
/// kelurahan, and is not looked at ("Wonokoyo, Kec. Kedungkandang" is not in Kedungkandang).
pub fn kelurahan_in<'a>(address: &str, kelurahan: &'a [String]) -> Option<&'a str> {
    const DISTRICT: [&str; 5] = ["kec", "kecamatan", "kab", "kabupaten", "kota"];
    let mut said: Vec<String> = Vec::new();
    for part in address.split([',', ';', '\n']) {
        said.extend(words(part).into_iter().take_while(|w| !DISTRICT.contains(&w.as_str())));
        said.push(",".into()); // a name never runs across two parts
    }
    kelurahan.iter().map(String::as_str).find(|k| {
        let name = words(k);
        !name.is_empty() && said.windows(name.len()).any(|w| w == name.as_slice())
    })
}

/// Lower-case words; a word ending in "2" is said twice ("oro2" is "oro oro").
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let w = w.to_lowercase();
        match w.strip_suffix('2') {
            Some(stem) if !stem.is_empty() && stem.chars().all(char::is_alphabetic) => {
                out.push(stem.to_string());
                out.push(stem.to_string());
            }
            _ => out.push(w),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purged_number_shows_as_a_dash() {
        assert_eq!(PhoneNumber::redacted().to_string(), "—");
        assert!(PhoneNumber::redacted().is_redacted());
        assert!(!PhoneNumber::parse("0812-3456-7890").expect("valid").is_redacted());
    }

    #[test]
    fn a_typed_address_is_placed_by_the_kelurahan_it_names() {
        let list: Vec<String> =
            ["Oro-oro Dowo", "Rampal Celaket", "Klojen", "Kedungkandang"].map(String::from).to_vec();
        assert_eq!(kelurahan_in("Jl. Guntur No. 5, Oro Oro Dowo", &list), Some("Oro-oro Dowo"));
        assert_eq!(kelurahan_in("jl guntur 5 oro2 dowo", &list), Some("Oro-oro Dowo"));
        assert_eq!(kelurahan_in("jl kawi 12 rampal celaket rt 2", &list), Some("Rampal Celaket"));
        assert_eq!(kelurahan_in("Jl. Borobudur No. 12, Purwodadi", &list), None);
        // A district or a city named after a kelurahan is not that kelurahan.
        assert_eq!(kelurahan_in("Jl. Danau Toba 3, Wonokoyo, Kec. Kedungkandang", &list), None);
        assert_eq!(kelurahan_in("Jl. Kawi 1, Kel. Klojen, Kec. Klojen, Kota Malang", &list), Some("Klojen"));
        // Whole words only: "Klojenan" is not Klojen.
        assert_eq!(kelurahan_in("Perum Klojenan Indah 4", &list), None);
        assert_eq!(kelurahan_in("Jl. Borobudur No. 12", &[String::new()]), None, "an empty name matches nothing");
    }

    #[test]
    fn indonesian_mobile_numbers() {
        for good in [
            "081234567890",
            "0812-3456-7890",
            "+62 812 3456 7890",
            "6281234567890",
            "(0812) 3456 7890",
            "0856.1234.567",
        ] {
            assert!(PhoneNumber::parse(good).is_ok(), "{good}");
        }
        let p = PhoneNumber::parse("+62 812 3456 7890").expect("phone");
        assert_eq!(p.e164(), "+6281234567890");
        assert_eq!(p.to_string(), "0812-3456-7890");
        for bad in [
            "12345",
            "0341-123456",
            "+1 415 555 0100",
            "08123",
            "0812345678901234",
            "abc",
            "",
            "0812x4567890",
            "++6281234567",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn distances() {
        // Pasar Blimbing to Alun-Alun Malang: about 4 km. Malang to Jakarta: about 660 km.
        let d = distance_km(-7.9352, 112.6453, -7.9826, 112.6308);
        assert!((4.0..6.0).contains(&d), "{d}");
        assert!(distance_km(-7.98, 112.63, -6.2, 106.8) > 600.0);
        assert!(distance_km(-7.98, 112.63, -7.98, 112.63) < 1e-9);
    }

    #[test]
    fn addresses() {
        assert!(Address::parse_text("Jl. Borobudur 12, Blimbing").is_ok());
        assert_eq!(Address::parse_text("rumah"), Err(AddressError::TooShort));
        assert_eq!(Address::parse_text("1234567890123"), Err(AddressError::TooShort));
        assert_eq!(Address::parse_text(&"a".repeat(400)), Err(AddressError::TooLong));
        assert!(Address::location(-7.93, 112.64).is_some());
        assert!(Address::location(f64::NAN, 112.64).is_none());
        assert!(Address::location(-97.0, 112.64).is_none());
    }
}
