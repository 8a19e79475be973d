//! Invite codes: short, unguessable, typed by hand.
//!
//! A code is derived from a secret and the id of the admin's message that asked for it, so it
//! is the same on a redelivery of that message (the inbox makes the effect happen once anyway)
//! and cannot be guessed without the secret.

use sha2::{Digest, Sha256};

/// Letters and digits that cannot be mistaken for each other (no 0/O, 1/I/L).
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// Length of a code: 31^8, about 8.5e11 possibilities.
pub const CODE_LEN: usize = 8;

/// How long an invite is valid.
pub fn lifetime() -> chrono::Duration {
    chrono::Duration::hours(48)
}

pub fn invite_code(secret: &str, seed: &str) -> String {
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update([0u8]);
    h.update(seed.as_bytes());
    let digest = h.finalize();
    digest.iter().take(CODE_LEN).map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

/// What stands in a stored message for an invite code once it is used or expired.
pub const REDACTED: &str = "[kode]";

/// The key an invite is stored and looked up by: HMAC-SHA256 of the code, keyed with the invite
/// secret, in hex. The database never holds a usable code: a copy of it (a backup) lets nobody
/// register as a trader, courier or admin.
pub fn code_key(secret: &str, code: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"invite-code\0");
    mac.update(code.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// What a trader typed, in the stored form: upper case, no spaces or dashes. `None` when it
/// cannot be a code at all.
pub fn normalize_code(input: &str) -> Option<String> {
    let code: String = input.chars().filter(|c| !matches!(c, ' ' | '-')).collect::<String>().to_uppercase();
    (code.len() == CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_per_seed_and_differ_between_seeds_and_secrets() {
        let a = invite_code("s", "inbox:1");
        assert_eq!(a.len(), CODE_LEN);
        assert_eq!(a, invite_code("s", "inbox:1"));
        assert_ne!(a, invite_code("s", "inbox:2"));
        assert_ne!(a, invite_code("t", "inbox:1"));
        assert_eq!(normalize_code(&a.to_lowercase()), Some(a.clone()));
        let spaced = format!("{} {}", &a[..4], &a[4..]);
        assert_eq!(normalize_code(&spaced), Some(a));
        assert_eq!(normalize_code("ABC"), None);
        assert_eq!(normalize_code("ABCDEFG0"), None, "0 is not in the alphabet");
    }
}
