//! HTTP/1.x framing: request heads, response heads, and body codecs.
//!
//! Everything here is sans-io: functions take byte slices and return values
//! or bytes to write; no socket and no clock is touched.

pub mod body;
pub mod chunked;
pub mod forwarded;
pub mod multipart;
pub mod request;
pub mod response;

pub use request::{parse_head, Head, HeadError, Limits, Method};

/// Decode a percent-encoded query value (`+` is a space). `None` when the
/// result is not UTF-8; a `%` not followed by two hex digits is kept as is.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_decoding() {
        let table = [
            ("a%20b+c", Some("a b c")),
            ("%0D%0a", Some("\r\n")),
            ("100%", Some("100%")),
            ("%zz%4", Some("%zz%4")),
            ("%C3%A9", Some("é")),
            ("%FF", None),
        ];
        for (input, want) in table {
            assert_eq!(super::percent_decode(input).as_deref(), want, "{input}");
        }
    }
}
