//! `sha256=<hex>` HMAC-SHA256 signatures of a raw body, as Meta's WhatsApp webhooks and our
//! delivery vendor's callbacks carry them. Compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Whether `header` is `sha256=<hex>` of `body` under `secret`; anything missing or malformed
/// is a mismatch.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The header value for a body (for tests, benchmarks and fakes).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_only_their_body_and_secret() {
        let s = sign(b"secret", b"body");
        assert!(verify(b"secret", b"body", Some(&s)));
        assert!(!verify(b"secret", b"body!", Some(&s)));
        assert!(!verify(b"other", b"body", Some(&s)));
        assert!(!verify(b"secret", b"body", None));
        assert!(!verify(b"secret", b"body", Some("sha256=zz")));
        assert!(!verify(b"secret", b"body", Some(s.trim_start_matches("sha256="))));
    }
}
