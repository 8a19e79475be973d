//! QRIS, Indonesia's national QR payment standard, in the EMVCo merchant-presented format.
//!
//! A market (or stall) prints one *static* QRIS from its bank: a string of tag-length-value
//! fields (`00` format, `01` point of initiation `11`, `26`-`51` merchant accounts, `52`
//! category, `53` currency `360`, `58` country `ID`, `59` name, `60` city, ... and `63` the
//! CRC). For an order we make a *dynamic* QRIS for the exact amount: point of initiation `12`,
//! the amount in tag `54`, and the CRC in tag `63` computed again (CRC-16/CCITT-FALSE over the
//! whole payload up to and including `6304`). Any banking or e-wallet app then pays exactly that.
//!
//! Lengths count characters, as the standard says; payloads are almost always plain ASCII.

use super::money::Rupiah;

/// Why a static QRIS payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrisError {
    #[error("field {at}: {what}")]
    Malformed { at: usize, what: String },
    #[error("the payload does not start with 000201 (payload format indicator 01)")]
    Format,
    #[error("the CRC (tag 63) must be the last field, 4 hex digits")]
    CrcMissing,
    #[error("CRC mismatch: the payload says {found}, its content gives {computed} (a typo or a tampered payload)")]
    CrcMismatch { found: String, computed: String },
    #[error("not a static QRIS: point of initiation (tag 01) is `{0}`, not 11")]
    NotStatic(String),
    #[error("a static QRIS must not carry an amount (tag 54)")]
    HasAmount,
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("currency (tag 53) is `{0}`, not 360 (rupiah)")]
    Currency(String),
}

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), as EMVCo QR codes use it.
pub fn crc16(data: &[u8]) -> u16 {
    const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);
    CRC.checksum(data)
}

/// Reads tag-length-value fields.
pub fn fields(payload: &str) -> Result<Vec<(String, String)>, QrisError> {
    let chars: Vec<char> = payload.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let head: String = chars.get(i..i + 4).map(|c| c.iter().collect()).unwrap_or_default();
        if head.len() != 4 || !head.chars().all(|c| c.is_ascii_digit()) {
            return Err(QrisError::Malformed { at: i, what: format!("`{head}` is not a tag and a length") });
        }
        let tag = head[..2].to_string();
        let len: usize = head[2..].parse().map_err(|_| QrisError::Malformed { at: i, what: "length".into() })?;
        let value: String = chars
            .get(i + 4..i + 4 + len)
            .map(|c| c.iter().collect())
            .ok_or_else(|| QrisError::Malformed { at: i, what: format!("tag {tag} runs past the end") })?;
        out.push((tag, value));
        i += 4 + len;
    }
    Ok(out)
}

fn serialize(fields: &[(String, String)]) -> String {
    fields.iter().map(|(t, v)| format!("{t}{:02}{v}", v.chars().count())).collect()
}

/// The payload with its CRC field appended.
fn with_crc(body: &str) -> String {
    let signed = format!("{body}6304");
    format!("{signed}{:04X}", crc16(signed.as_bytes()))
}

/// A merchant's static QRIS, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticQris {
    /// Every field but the CRC, in order.
    fields: Vec<(String, String)>,
}

impl StaticQris {
    pub fn parse(payload: &str) -> Result<StaticQris, QrisError> {
        let payload = payload.trim();
        if !payload.starts_with("000201") {
            return Err(QrisError::Format);
        }
        let mut fields = fields(payload)?;
        let Some((tag, found)) = fields.pop() else {
            return Err(QrisError::CrcMissing);
        };
        if tag != "63" || found.len() != 4 || !found.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(QrisError::CrcMissing);
        }
        let computed = format!("{:04X}", crc16(&payload.as_bytes()[..payload.len() - 4]));
        if !computed.eq_ignore_ascii_case(&found) {
            return Err(QrisError::CrcMismatch { found, computed });
        }
        let get = |t: &str| fields.iter().find(|(tag, _)| tag == t).map(|(_, v)| v.as_str());
        match get("01") {
            Some("11") => {}
            Some(other) => return Err(QrisError::NotStatic(other.to_string())),
            None => return Err(QrisError::Missing("the point of initiation (tag 01)")),
        }
        if get("54").is_some() {
            return Err(QrisError::HasAmount);
        }
        if !fields.iter().any(|(t, _)| t.parse::<u8>().is_ok_and(|n| (26..=51).contains(&n))) {
            return Err(QrisError::Missing("a merchant account (tags 26-51)"));
        }
        match get("53") {
            Some("360") => {}
            Some(other) => return Err(QrisError::Currency(other.to_string())),
            None => return Err(QrisError::Missing("the currency (tag 53)")),
        }
        for (tag, what) in
            [("58", "the country (tag 58)"), ("59", "the merchant name (tag 59)"), ("60", "the city (tag 60)")]
        {
            if get(tag).is_none_or(str::is_empty) {
                return Err(QrisError::Missing(what));
            }
        }
        Ok(StaticQris { fields })
    }

    fn get(&self, tag: &str) -> &str {
        self.fields.iter().find(|(t, _)| t == tag).map(|(_, v)| v.as_str()).unwrap_or_default()
    }

    pub fn merchant_name(&self) -> &str {
        self.get("59")
    }

    pub fn city(&self) -> &str {
        self.get("60")
    }

    /// The dynamic QRIS for an amount: point of initiation 12, the amount in tag 54 (whole
    /// rupiah) placed in tag order, the CRC computed again.
    pub fn dynamic(&self, amount: Rupiah) -> String {
        let mut fields: Vec<(String, String)> = self
            .fields
            .iter()
            .map(|(t, v)| if t == "01" { (t.clone(), "12".to_string()) } else { (t.clone(), v.clone()) })
            .collect();
        let at = fields.iter().position(|(t, _)| t.as_str() > "54").unwrap_or(fields.len());
        fields.insert(at, ("54".to_string(), amount.value().to_string()));
        with_crc(&serialize(&fields))
    }
}

/// What a dynamic QRIS says, read back (for checks and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicQris {
    pub amount: Rupiah,
    pub merchant_name: String,
}

/// Reads a dynamic QRIS and checks its CRC.
pub fn read_dynamic(payload: &str) -> Result<DynamicQris, QrisError> {
    let fields = fields(payload)?;
    let Some((tag, found)) = fields.last() else {
        return Err(QrisError::CrcMissing);
    };
    if tag != "63" || found.len() != 4 || !found.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(QrisError::CrcMissing);
    }
    let computed = format!("{:04X}", crc16(&payload.as_bytes()[..payload.len() - 4]));
    if !computed.eq_ignore_ascii_case(found) {
        return Err(QrisError::CrcMismatch { found: found.clone(), computed });
    }
    let get = |t: &str| fields.iter().find(|(tag, _)| tag == t).map(|(_, v)| v.clone());
    let amount = get("54").and_then(|a| a.parse::<i64>().ok()).ok_or(QrisError::Missing("the amount (tag 54)"))?;
    Ok(DynamicQris { amount: Rupiah(amount), merchant_name: get("59").unwrap_or_default() })
}

/// A QR code of the payload as a PNG image (black on white, 8 pixels a module, a 4-module quiet
/// zone), for sending as a photo.
pub fn png(payload: &str) -> Result<Vec<u8>, String> {
    let code = qrcode::QrCode::with_error_correction_level(payload.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| format!("QR code: {e}"))?;
    let width = code.width();
    let colors = code.to_colors();
    const SCALE: usize = 8;
    const QUIET: usize = 4;
    let side = (width + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (mx, my) = (i % width + QUIET, i / width + QUIET);
            for y in my * SCALE..(my + 1) * SCALE {
                pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    {
        let side = u32::try_from(side).map_err(|_| "QR code too large".to_string())?;
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| format!("PNG: {e}"))?;
        writer.write_image_data(&pixels).map_err(|e| format!("PNG: {e}"))?;
    }
    Ok(out)
}

/// The embedded sample: a static QRIS of a made-up merchant "PASAR ONLINE MALANG", so that the
/// defaults can show the whole QRIS flow. Paying it moves no money anywhere real; operators put
/// their bank's payload in `[payment] qris`.
pub fn city_sample() -> String {
    with_crc(
        "00020101021126570011ID.DANA.WWW011893600915300000000102090000000010303UMI\
         51440014ID.CO.QRIS.WWW0215ID10260000000010303UMI520454995303360\
         5802ID5919PASAR ONLINE MALANG6006MALANG61056514162070703A01",
    )
}

/// A static QRIS for tests: a merchant account under the QRIS GUID, category, currency,
/// country, name, city, postal code, with its CRC.
#[cfg(test)]
pub(crate) fn sample_static() -> String {
    let body = "00020101021126570011ID.DANA.WWW011893600915302259148102090225914810303UMI\
                51440014ID.CO.QRIS.WWW0215ID10200176114730303UMI520454115303360\
                5802ID5921PASAR BLIMBING MALANG6006MALANG61056512662070703A01";
    with_crc(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_ccitt_false() {
        // The standard check value of CRC-16/CCITT-FALSE.
        assert_eq!(crc16(b"123456789"), 0x29B1);
        // A published EMVCo-format payload (Thai PromptPay) and its CRC field.
        let promptpay = "00020101021129370016A000000677010111011300669245317755802TH54076000.00530376463049B3B";
        assert_eq!(format!("{:04X}", crc16(&promptpay.as_bytes()[..promptpay.len() - 4])), "9B3B");
    }

    #[test]
    fn a_static_payload_becomes_a_dynamic_one_for_the_amount() {
        let qris = StaticQris::parse(&sample_static()).expect("static");
        assert_eq!(qris.merchant_name(), "PASAR BLIMBING MALANG");
        assert_eq!(qris.city(), "MALANG");
        let dynamic = qris.dynamic(Rupiah(42_500));
        assert!(dynamic.starts_with("000201010212"), "{dynamic}");
        let read = read_dynamic(&dynamic).expect("reads back");
        assert_eq!(read, DynamicQris { amount: Rupiah(42_500), merchant_name: "PASAR BLIMBING MALANG".into() });
        // Every field but the point of initiation, the amount and the CRC is unchanged, in order.
        let before: Vec<_> = fields(&sample_static()).expect("fields");
        let after: Vec<_> = fields(&dynamic).expect("fields");
        let keep = |f: &Vec<(String, String)>| -> Vec<(String, String)> {
            f.iter().filter(|(t, _)| !matches!(t.as_str(), "01" | "54" | "63")).cloned().collect()
        };
        assert_eq!(keep(&before), keep(&after));
        let tags: Vec<&str> = after.iter().map(|(t, _)| t.as_str()).collect();
        let at = tags.iter().position(|t| *t == "54").expect("amount");
        assert_eq!((tags[at - 1], tags[at + 1]), ("53", "58"), "the amount in tag order: {tags:?}");
    }

    #[test]
    fn the_embedded_sample_is_a_valid_static_qris() {
        let sample = StaticQris::parse(&city_sample()).expect("the sample parses");
        assert_eq!(sample.merchant_name(), "PASAR ONLINE MALANG");
    }

    #[test]
    fn bad_static_payloads_are_refused_with_the_reason() {
        let good = sample_static();
        let tampered = good.replacen("BLIMBING", "BLIMBINK", 1);
        assert!(matches!(StaticQris::parse(&tampered), Err(QrisError::CrcMismatch { .. })));
        let dynamic = StaticQris::parse(&good).expect("static").dynamic(Rupiah(1000));
        assert!(matches!(StaticQris::parse(&dynamic), Err(QrisError::NotStatic(_))));
        assert_eq!(StaticQris::parse("hello"), Err(QrisError::Format));
        assert!(StaticQris::parse(&good[..good.len() - 10]).is_err());
        // Not ASCII where the CRC should be: refused, never a panic.
        assert!(StaticQris::parse(&format!("{}ééé", &good[..good.len() - 4])).is_err());
        assert!(read_dynamic("000201010212630€€€€").is_err());
        let no_crc = &good[..good.len() - 8];
        assert!(StaticQris::parse(no_crc).is_err());
        let dollars = with_crc(&good[..good.len() - 8].replace("5303360", "5303840"));
        assert_eq!(StaticQris::parse(&dollars), Err(QrisError::Currency("840".into())));
        assert!(read_dynamic(&dynamic.replacen("54041000", "54049000", 1)).is_err(), "a changed amount breaks the CRC");
    }

    #[test]
    fn the_png_decodes_to_the_payload() {
        let payload = StaticQris::parse(&sample_static()).expect("static").dynamic(Rupiah(42_500));
        let png_bytes = png(&payload).expect("png");
        let decoder = ::png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("frame");
        let (w, h) = (info.width as usize, info.height as usize);
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_, content) = grids[0].decode().expect("decodes");
        assert_eq!(content, payload);
    }
}
