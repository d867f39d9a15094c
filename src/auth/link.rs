//! Signed links: a URL that lets its holder send or receive on one path
//! until a time, without an account.
//!
//! A link carries three query parameters next to the path's own (`?n=`
//! and the like, which the signature does not cover and which may come in
//! any order): `exp` (Unix seconds, decimal), `allow` (`s`, `r` or `sr`)
//! and `sig`, the HMAC-SHA256 of `PATH "\n" EXP "\n" ALLOW` under the
//! relay's link key, in unpadded base64url (43 characters). `PATH` is the
//! request path exactly as sent, without the query; no decoding or
//! normalising happens on either side, so one changed byte anywhere
//! changes the signature.
//!
//! A link is valid while `now < exp`. The comparison is constant-time
//! (`hmac`'s `verify_slice` through [`Mac`]).
//!
//! The key file holds at least 32 random bytes as hex digits (whitespace
//! around them is ignored); `weir new-key` writes one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{base64url, hex, Actions};

type HmacSha256 = Hmac<Sha256>;

/// Shortest link key, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// The link parameters a request's query carries (unchecked).
#[derive(Clone, Copy, Debug)]
pub struct Presented<'q> {
    exp: &'q str,
    allow: &'q str,
    sig: &'q str,
}

/// Why a presented link is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// Missing or malformed parameters, or a signature that does not match
    /// this path, expiry and action under this key.
    Invalid,
    /// The signature is right and the time is past `exp`.
    Expired,
}

impl LinkError {
    /// The one-line answer for the client.
    pub fn message(self) -> &'static str {
        match self {
            LinkError::Invalid => {
                "This signed link is not valid here (changed, for another path, \
                 or made with another key); ask for a new one."
            }
            LinkError::Expired => "This signed link has expired; ask for a new one.",
        }
    }
}

fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

impl<'q> Presented<'q> {
    /// The link in `query`, when it has a `sig` parameter.
    pub fn find(query: Option<&'q str>) -> Option<Presented<'q>> {
        let q = query?;
        let sig = param(q, "sig")?;
        Some(Presented {
            exp: param(q, "exp").unwrap_or(""),
            allow: param(q, "allow").unwrap_or(""),
            sig,
        })
    }

    /// What the link allows on `path` at `now`, if it is genuine and
    /// unexpired.
    pub fn verify(&self, key: &[u8], path: &str, now: u64) -> Result<Actions, LinkError> {
        let actions = Actions::from_link_code(self.allow).ok_or(LinkError::Invalid)?;
        let digits_only = !self.exp.is_empty() && self.exp.bytes().all(|b| b.is_ascii_digit());
        let exp: u64 = match digits_only.then(|| self.exp.parse().ok()).flatten() {
            Some(e) => e,
            None => return Err(LinkError::Invalid),
        };
        let tag = base64url_decode_43(self.sig).ok_or(LinkError::Invalid)?;
        mac(key, path, self.exp, self.allow)
            .verify_slice(&tag)
            .map_err(|_| LinkError::Invalid)?;
        if now >= exp {
            return Err(LinkError::Expired);
        }
        Ok(actions)
    }
}

fn mac(key: &[u8], path: &str, exp: &str, allow: &str) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(path.as_bytes());
    m.update(b"\n");
    m.update(exp.as_bytes());
    m.update(b"\n");
    m.update(allow.as_bytes());
    m
}

/// A 32-byte tag from its 43-character unpadded base64url form; `None`
/// for anything else (a non-canonical last character included, so two
/// spellings never verify).
fn base64url_decode_43(s: &str) -> Option<[u8; 32]> {
    if s.len() != 43 {
        return None;
    }
    let mut out = [0u8; 32];
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut n = 0;
    for c in s.bytes() {
        let v = crate::ids::ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out[n] = (acc >> bits) as u8;
            n += 1;
            acc &= (1 << bits) - 1;
        }
    }
    // 43 × 6 = 258 bits: the 2 left over must be zero.
    (acc == 0).then_some(out)
}

/// The query parameters that sign `path` for `actions` until `exp`:
/// `exp=..&allow=..&sig=..`.
pub fn sign(key: &[u8], path: &str, exp: u64, actions: Actions) -> String {
    let exp = exp.to_string();
    let allow = actions.link_code();
    let tag = mac(key, path, &exp, allow).finalize().into_bytes();
    format!("exp={exp}&allow={allow}&sig={}", base64url::encode(&tag))
}

/// A whole link: `base` (scheme and host, e.g. `https://relay.example`),
/// then `target` (a path, maybe with its own query, which stays and is not
/// signed), then the signature parameters.
pub fn url(base: &str, target: &str, key: &[u8], exp: u64, actions: Actions) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let signed = sign(key, path, exp, actions);
    let base = base.trim_end_matches('/');
    match query {
        Some(q) if !q.is_empty() => format!("{base}{path}?{q}&{signed}"),
        _ => format!("{base}{path}?{signed}"),
    }
}

/// A key file's contents: hex digits of at least [`MIN_KEY_BYTES`] bytes.
pub fn parse_key(text: &str) -> Result<Vec<u8>, String> {
    let key = hex::decode(text.trim())
        .ok_or("the key file must hold hex digits only; make one with `weir new-key`")?;
    if key.len() < MIN_KEY_BYTES {
        return Err(format!(
            "the key is {} bytes; it needs at least {MIN_KEY_BYTES} (64 hex digits); make one with `weir new-key`",
            key.len()
        ));
    }
    Ok(key)
}

/// A fresh key file's contents: 32 random bytes as hex, and a newline.
pub fn new_key() -> Result<String, rand_core::OsError> {
    let mut k = [0u8; MIN_KEY_BYTES];
    crate::ids::fill(&mut k)?;
    Ok(format!("{}\n", hex::encode(&k)))
}
