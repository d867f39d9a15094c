//! What a reverse proxy says about the request it passes on: the scheme
//! and host the client used and the client's address, from `Forwarded`
//! (RFC 7239) or, without it, `X-Forwarded-Proto`, `X-Forwarded-Host` and
//! `X-Forwarded-For`.
//!
//! The relay reads these only when told to trust its proxy
//! (`--trust-proxy`); a client talking to the relay directly could write
//! them itself. Only the proxy next to the relay is trusted, so where a
//! header holds a list (each proxy appends its entry) the last entry is
//! the one taken: earlier ones come from further away, the client
//! included. Every value returned is checked against the characters it
//! may hold, so it can be printed in a URL or a log line as it is.

use super::Head;

/// What the proxy told, each part only when present and well-formed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forwarded<'a> {
    /// `http` or `https`.
    pub proto: Option<&'static str>,
    /// The `Host` the client asked for.
    pub host: Option<&'a str>,
    /// The client's address as the proxy saw it (an IP address, or an
    /// obfuscated identifier such as `_hidden`), without a port.
    pub client: Option<&'a str>,
}

impl<'a> Forwarded<'a> {
    /// Read from a head: `Forwarded` when present (its last element), else
    /// the `X-Forwarded-*` headers (each one's last entry).
    pub fn from_head(head: &Head<'a>) -> Forwarded<'a> {
        if let Some(line) = head.headers("forwarded").last() {
            if let Ok(s) = std::str::from_utf8(line) {
                return parse(s);
            }
            return Forwarded::default();
        }
        let last = |name: &str| {
            head.headers(name)
                .last()
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.rsplit(',').next())
                .map(str::trim)
        };
        Forwarded {
            proto: last("x-forwarded-proto").and_then(proto),
            host: last("x-forwarded-host").filter(|h| valid_host(h)),
            client: last("x-forwarded-for").and_then(client),
        }
    }
}

/// One `Forwarded` header value: its last element's `proto`, `host` and
/// `for` parameters. Commas and semicolons inside quoted strings do not
/// split.
pub fn parse(value: &str) -> Forwarded<'_> {
    let element = split_unquoted(value, b',').last().unwrap_or("");
    let mut f = Forwarded::default();
    for pair in split_unquoted(element, b';') {
        let Some((name, v)) = pair.split_once('=') else {
            continue;
        };
        let v = unquote(v.trim());
        match name.trim().to_ascii_lowercase().as_str() {
            "proto" => f.proto = proto(v),
            "host" => f.host = Some(v).filter(|h| valid_host(h)),
            "for" => f.client = client(v),
            _ => {}
        }
    }
    f
}

/// Split on `sep` outside double quotes (a backslash escapes inside them).
fn split_unquoted(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let b = s.as_bytes();
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &c) in b.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && c == b'\\' {
            escaped = true;
        } else if c == b'"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

fn proto(v: &str) -> Option<&'static str> {
    if v.eq_ignore_ascii_case("https") {
        Some("https")
    } else if v.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// Whether `h` may stand as the host of a URL the relay prints.
pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}

/// A client address from `for=` or `X-Forwarded-For`: an IP address with
/// its port and brackets taken off, or an obfuscated identifier
/// (`_hidden`, `unknown`).
fn client(v: &str) -> Option<&str> {
    let v = v.trim();
    if let Some(rest) = v.strip_prefix('[') {
        // "[2001:db8::1]" or "[2001:db8::1]:4711"
        let ip = rest.split(']').next()?;
        return ip.parse::<std::net::Ipv6Addr>().is_ok().then_some(ip);
    }
    if v.parse::<std::net::IpAddr>().is_ok() {
        return Some(v);
    }
    if let Some((ip, port)) = v.rsplit_once(':') {
        if ip.parse::<std::net::Ipv4Addr>().is_ok() && port.bytes().all(|b| b.is_ascii_digit()) {
            return Some(ip);
        }
    }
    let ident = v == "unknown"
        || (v.starts_with('_')
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
    ident.then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_head, Limits};

    fn head_with(headers: &str) -> Vec<u8> {
        format!("GET / HTTP/1.1\r\nHost: relay.local\r\n{headers}\r\n").into_bytes()
    }

    fn from(headers: &str) -> (Option<&'static str>, Option<String>, Option<String>) {
        let raw = head_with(headers);
        let limits = Limits {
            max_head: 16384,
            max_target: 4096,
        };
        let (head, _) = parse_head(&raw, limits).unwrap().unwrap();
        let f = Forwarded::from_head(&head);
        (
            f.proto,
            f.host.map(str::to_string),
            f.client.map(str::to_string),
        )
    }

    #[test]
    fn forwarded_last_element_wins() {
        let (p, h, c) = from(
            "Forwarded: for=6.6.6.6;proto=http;host=evil, for=192.0.2.60;proto=https;host=relay.example\r\n",
        );
        assert_eq!(p, Some("https"));
        assert_eq!(h.as_deref(), Some("relay.example"));
        assert_eq!(c.as_deref(), Some("192.0.2.60"));
    }

    #[test]
    fn forwarded_quoted_ipv6_with_port() {
        let (_, _, c) = from("Forwarded: for=\"[2001:db8:cafe::17]:4711\"\r\n");
        assert_eq!(c.as_deref(), Some("2001:db8:cafe::17"));
        let (_, _, c) = from("Forwarded: For=\"_hidden\";by=x\r\n");
        assert_eq!(c.as_deref(), Some("_hidden"));
        // A quoted comma does not split elements.
        let (_, h, _) = from("Forwarded: host=\"a,b\";for=1.2.3.4\r\n");
        assert_eq!(h, None);
    }

    #[test]
    fn x_forwarded_headers_last_entry() {
        let (p, h, c) = from(
            "X-Forwarded-For: 6.6.6.6, 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: relay.example:8443\r\n",
        );
        assert_eq!(p, Some("https"));
        assert_eq!(h.as_deref(), Some("relay.example:8443"));
        assert_eq!(c.as_deref(), Some("203.0.113.9"));
        let (_, _, c) = from("X-Forwarded-For: 203.0.113.9:5555\r\n");
        assert_eq!(c.as_deref(), Some("203.0.113.9"));
    }

    #[test]
    fn junk_is_dropped() {
        let (p, h, c) = from(
            "X-Forwarded-For: <script>\r\nX-Forwarded-Proto: gopher\r\nX-Forwarded-Host: a b\r\n",
        );
        assert_eq!((p, h, c), (None, None, None));
        let (p, h, c) = from("Forwarded: for=\"x y\";proto=ftp;host=\r\n");
        assert_eq!((p, h, c), (None, None, None));
        assert_eq!(parse(""), Forwarded::default());
        assert_eq!(parse("\"unterminated;for=1.2.3.4"), Forwarded::default());
    }
}
