//! IDs and tokens from the operating system's CSPRNG.
//!
//! Every identifier a client could guess to hijack a transfer or a swarm
//! comes from `OsRng` (getrandom(2) on Linux). There is no seeded or
//! time-based generator anywhere in this module, on purpose.

use rand_core::{OsRng, TryRngCore};

/// The URL-safe base64 alphabet (RFC 4648 §5); each character carries 6 bits.
pub const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Fill `buf` with random bytes from the OS. Fails only if the OS source
/// fails, which the caller answers with `503`.
pub fn fill(buf: &mut [u8]) -> Result<(), rand_core::OsError> {
    OsRng.try_fill_bytes(buf)
}

/// A fresh ID of `len` characters from [`ALPHABET`] (`6 × len` random bits).
pub fn new_id(len: usize) -> Result<String, rand_core::OsError> {
    let mut raw = vec![0u8; len];
    fill(&mut raw)?;
    // 64 divides 256, so masking to 6 bits keeps every character uniform.
    Ok(raw
        .iter()
        .map(|b| ALPHABET[usize::from(b & 63)] as char)
        .collect())
}

/// Longest `--instance` name.
pub const MAX_INSTANCE: usize = 32;

/// Whether `name` may be an instance name: 1 to [`MAX_INSTANCE`] characters
/// of `A-Z a-z 0-9 _`. `-` is left out because it ends the prefix: a
/// balancer takes an ID's instance to be everything before its first `-`.
pub fn valid_instance(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_INSTANCE
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `random` as an ID of this process: `NAME-random` in a fleet (so the
/// balancer can route by the prefix), `random` alone otherwise.
pub fn with_instance(instance: Option<&str>, random: String) -> String {
    match instance {
        Some(name) => format!("{name}-{random}"),
        None => random,
    }
}

/// A fresh secret token: 128 random bits as 32 lowercase hex digits.
pub fn new_token() -> Result<String, rand_core::OsError> {
    let mut raw = [0u8; 16];
    fill(&mut raw)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compare two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ten_thousand_ids_are_distinct_and_in_alphabet() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let id = new_id(12).unwrap();
            assert_eq!(id.len(), 12);
            assert!(id.bytes().all(|b| ALPHABET.contains(&b)), "{id}");
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn instance_names_and_prefixes() {
        for ok in ["w1", "A", "node_07", &"x".repeat(MAX_INSTANCE)] {
            assert!(valid_instance(ok), "{ok}");
        }
        for bad in ["", "w-1", "a.b", "é", " w1", &"x".repeat(MAX_INSTANCE + 1)] {
            assert!(!valid_instance(bad), "{bad}");
        }
        assert_eq!(with_instance(Some("w2"), "abc".into()), "w2-abc");
        assert_eq!(with_instance(None, "abc".into()), "abc");
    }

    #[test]
    fn tokens_and_comparison() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(constant_time_eq(a.as_bytes(), a.as_bytes()));
        assert!(!constant_time_eq(a.as_bytes(), b.as_bytes()));
        assert!(!constant_time_eq(b"ab", b"abc"));
    }
}
