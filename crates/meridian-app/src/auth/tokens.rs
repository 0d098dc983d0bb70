//! Bearer secrets: 256 random bits, base64url, with a visible prefix naming the kind so that
//! leaked secrets are recognizable (secret scanners, logs). Only SHA-256 hashes are stored: the
//! secrets are high-entropy, so a fast hash is enough and keeps per-request lookups cheap.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub const ACCESS_TOKEN_PREFIX: &str = "mrd_at_";
pub const REFRESH_TOKEN_PREFIX: &str = "mrd_rt_";
pub const API_KEY_PREFIX: &str = "mrd_sk_";
pub const INVITE_TOKEN_PREFIX: &str = "mrd_inv_";
pub const SETUP_TOKEN_PREFIX: &str = "mrd_setup_";

/// How many characters of an API key are kept in clear to tell keys apart in lists.
pub const API_KEY_VISIBLE_CHARS: usize = API_KEY_PREFIX.len() + 8;

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS random source failing is unrecoverable; every secret depends on it.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// A fresh secret: `prefix` followed by 43 base64url characters (256 bits).
pub fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_long() {
        let a = new_secret(API_KEY_PREFIX);
        let b = new_secret(API_KEY_PREFIX);
        assert!(a.starts_with("mrd_sk_"));
        assert_eq!(a.len(), API_KEY_PREFIX.len() + 43);
        assert_ne!(a, b);
        assert_eq!(hash_secret(&a).len(), 64);
        assert_ne!(hash_secret(&a), a);
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
