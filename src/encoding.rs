//! The byte encodings the relay needs: hex (digests, keys), standard
//! base64 (the WebSocket accept key; HTTP Basic credentials, decoded),
//! unpadded base64url (link signatures). Small enough to write here; the
//! decoder is fuzzed with the access rules (`fuzz/fuzz_targets/auth.rs`).

/// Lowercase hex.
pub mod hex {
    /// `bytes` as lowercase hex digits.
    pub fn encode(bytes: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            s.push(DIGITS[usize::from(b >> 4)] as char);
            s.push(DIGITS[usize::from(b & 15)] as char);
        }
        s
    }

    /// Hex digits (either case, even count) as bytes.
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        if s.len() % 2 != 0 {
            return None;
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        s.as_bytes()
            .chunks(2)
            .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
            .collect()
    }
}

/// Unpadded base64url (RFC 4648 §5).
pub mod base64url {
    /// `bytes` in the URL-safe alphabet, without `=` padding.
    pub fn encode(bytes: &[u8]) -> String {
        super::encode(bytes, crate::ids::ALPHABET)
    }
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn encode(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..=chunk.len() {
            s.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    s
}

/// Standard base64 with optional padding (what HTTP Basic carries).
/// `None` on any character outside the alphabet, a misplaced `=`, or a
/// length no encoder makes.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    let pad = s.len() - body.len();
    if pad > 2 || (pad > 0 && s.len() % 4 != 0) || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in body.bytes() {
        let v = STANDARD.iter().position(|&a| a == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `bytes` in standard base64 (RFC 4648 §4) with `=` padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut s = encode(bytes, STANDARD);
    while s.len() % 4 != 0 {
        s.push('=');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_known_values() {
        // RFC 4648 §10.
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes(), "{enc}");
            // Unpadded is accepted too (some clients leave it off).
            assert_eq!(
                base64_decode(enc.trim_end_matches('=')).unwrap(),
                plain.as_bytes()
            );
        }
        // The two last characters of the standard alphabet.
        assert_eq!(base64_encode(&[0xfb, 0xff]), "+/8=");
        assert_eq!(
            base64_decode("YWxhZGRpbjpvcGVuc2VzYW1l").unwrap(),
            b"aladdin:opensesame"
        );
        for bad in ["Zg=", "Z", "Zg===", "Zm9v!", "Zm=9", "-_-_"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn base64url_and_hex() {
        assert_eq!(base64url::encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url::encode(&[0u8; 32]).len(), 43);
        assert_eq!(hex::encode(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(hex::decode("00AB10").unwrap(), vec![0, 0xab, 0x10]);
        assert_eq!(hex::decode("0"), None);
        assert_eq!(hex::decode("zz"), None);
    }
}
