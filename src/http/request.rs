//! Request heads: incremental parsing with `httparse`, limits, and the few
//! headers the relay acts on.
//!
//! `parse_head` is called with everything read so far. Partial input is not
//! an error (`Ok(None)`). A complete [`Head`] borrows the bytes it was
//! parsed from (no header is copied for every request); each family reads
//! the headers it needs by name and copies only what it keeps, so a parked
//! connection holds a few hundred bytes rather than its read buffer.
//! Ambiguous framing (request smuggling shapes) is refused here, before any
//! body byte is read.

use std::fmt;

/// Most headers accepted in one request; more is answered `431`.
pub const MAX_HEADERS: usize = 64;

/// Limits applied while parsing.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest head in bytes.
    pub max_head: usize,
    /// Largest request target in bytes.
    pub max_target: usize,
}

/// The request method, as far as the relay cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `OPTIONS`
    Options,
    /// Anything else (answered `405`).
    Other,
}

impl Method {
    /// The method as it is spelled on the wire (`OTHER` for the ones the
    /// relay does not answer).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }
}

/// Body framing the client declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (no `Content-Length`, no `Transfer-Encoding`, HTTP/1.1).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// HTTP/1.0 with neither header: the body runs until the client shuts
    /// down its sending side. Only meaningful for senders.
    UntilClose,
}

/// A parsed request head. It borrows the bytes it was parsed from: its
/// path, its query and every header are slices of them. The framing and
/// the connection's fate are decided here, with every request-smuggling
/// shape refused; anything else a family needs it reads itself, by name,
/// with [`Head::header`], and copies only what it keeps.
#[derive(Clone, Copy)]
pub struct Head<'a> {
    /// Method.
    pub method: Method,
    /// Target path, without the query (raw, not percent-decoded).
    pub path: &'a str,
    /// Query string without the `?`, if any.
    pub query: Option<&'a str>,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Declared body framing.
    pub framing: BodyFraming,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// The connection may be reused after this exchange.
    pub keep_alive: bool,
    /// `Upgrade: websocket` was sent (the router reads it).
    pub upgrade_websocket: bool,
    /// `Connection` lists `upgrade`.
    pub connection_upgrade: bool,
    /// The head's bytes, as read (for a body read later, which re-parses it).
    pub raw: &'a [u8],
    headers: [httparse::Header<'a>; MAX_HEADERS],
    count: usize,
}

impl fmt::Debug for Head<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Head")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("minor", &self.minor)
            .field("framing", &self.framing)
            .field("headers", &self.count)
            .finish_non_exhaustive()
    }
}

impl<'a> Head<'a> {
    /// The first value of header `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers(name).next()
    }

    /// The first value of header `name` as text; `None` when absent or not
    /// UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of header `name`, in order.
    pub fn headers<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers[..self.count]
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// `Host`.
    pub fn host(&self) -> Option<&'a str> {
        self.header_str("host")
    }

    /// `Content-Type`.
    pub fn content_type(&self) -> Option<&'a [u8]> {
        self.header("content-type")
    }

    /// The value of query parameter `name`, if present (first occurrence).
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        let q = self.query?;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }

    /// Whether the request carries a body.
    pub fn has_body(&self) -> bool {
        match self.framing {
            BodyFraming::None => false,
            BodyFraming::Length(n) => n > 0,
            BodyFraming::Chunked | BodyFraming::UntilClose => true,
        }
    }
}

/// Why a head was refused: the status to answer and a one-line reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadError {
    /// HTTP status code.
    pub status: u16,
    /// One line for the client, without the `[ERROR] ` prefix.
    pub message: &'static str,
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for HeadError {}

const fn herr(status: u16, message: &'static str) -> HeadError {
    HeadError { status, message }
}

/// Where the first line ends, if it does within `buf`.
fn first_line_len(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Parse a request head from `buf` (everything read so far).
///
/// Returns `Ok(None)` while the head is incomplete and within limits,
/// `Ok(Some((head, len)))` with the head's length in bytes (body bytes, if
/// any, follow at `buf[len..]`), or the status to refuse it with.
pub fn parse_head(buf: &[u8], limits: Limits) -> Result<Option<(Head<'_>, usize)>, HeadError> {
    // Tolerate empty lines before a request (RFC 9112 §2.2), as clients
    // that pipeline after a body sometimes send a stray CRLF.
    let skip = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    if skip > 64 {
        return Err(herr(400, "Malformed request: too many empty lines."));
    }
    let data = &buf[skip..];
    // A request line that never ends within the target limit is a 414 even
    // before the head is complete.
    if first_line_len(data).is_none() && data.len() > limits.max_target + 32 {
        return Err(herr(414, "Request target too long."));
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(data) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= limits.max_head {
                return Err(herr(431, "Request head too large."));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(herr(431, "Too many headers.")),
        Err(httparse::Error::Version) => {
            if data.starts_with(b"PRI * HTTP/2") {
                return Err(herr(505, "HTTP/2 is not supported here; use HTTP/1.1."));
            }
            return Err(herr(400, "Malformed request: bad HTTP version."));
        }
        Err(_) => {
            if data.first() == Some(&0x16) {
                return Err(herr(400, "This port speaks plain HTTP, not TLS."));
            }
            return Err(herr(400, "Malformed request head."));
        }
    };
    if skip + len > limits.max_head {
        return Err(herr(431, "Request head too large."));
    }
    let target = req.path.unwrap_or("/");
    if target.len() > limits.max_target {
        return Err(herr(414, "Request target too long."));
    }
    let minor = req.version.unwrap_or(1);
    let method = match req.method.unwrap_or("") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "OPTIONS" => Method::Options,
        _ => Method::Other,
    };
    let (path, query) = split_target(target)?;
    let raw = &buf[..skip + len];

    let mut head = Head {
        method,
        path,
        query,
        minor,
        framing: BodyFraming::None,
        expect_continue: false,
        keep_alive: minor >= 1,
        upgrade_websocket: false,
        connection_upgrade: false,
        raw,
        headers: [httparse::EMPTY_HEADER; MAX_HEADERS],
        count: 0,
    };
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut host = false;
    for h in req.headers.iter() {
        let v = trim(h.value);
        let name = h.name;
        head.headers[head.count] = httparse::Header { name, value: v };
        head.count += 1;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(v)?;
            if content_length.is_some_and(|m| m != n) {
                return Err(herr(400, "Conflicting Content-Length headers."));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if transfer_encoding.is_some() {
                return Err(herr(
                    501,
                    "Only one Transfer-Encoding: chunked is supported.",
                ));
            }
            transfer_encoding = Some(v);
        } else if name.eq_ignore_ascii_case("expect") {
            if v.eq_ignore_ascii_case(b"100-continue") {
                head.expect_continue = true;
            } else {
                return Err(herr(417, "Only Expect: 100-continue is supported."));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for tok in v.split(|&b| b == b',') {
                let tok = trim(tok);
                if tok.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if tok.eq_ignore_ascii_case(b"keep-alive") && minor == 0 {
                    head.keep_alive = true;
                } else if tok.eq_ignore_ascii_case(b"upgrade") {
                    head.connection_upgrade = true;
                }
            }
        } else if name.eq_ignore_ascii_case("host") {
            if host {
                return Err(herr(400, "More than one Host header."));
            }
            host = true;
        } else if name.eq_ignore_ascii_case("upgrade") {
            head.upgrade_websocket |= v.eq_ignore_ascii_case(b"websocket");
        }
    }
    head.framing = match (transfer_encoding, content_length) {
        (Some(_), Some(_)) => {
            return Err(herr(
                400,
                "Content-Length together with Transfer-Encoding is refused.",
            ))
        }
        (Some(te), None) => {
            if minor == 0 {
                return Err(herr(400, "Transfer-Encoding is not allowed in HTTP/1.0."));
            }
            if !te.eq_ignore_ascii_case(b"chunked") {
                return Err(herr(501, "Only Transfer-Encoding: chunked is supported."));
            }
            BodyFraming::Chunked
        }
        (None, Some(n)) => BodyFraming::Length(n),
        (None, None) => {
            if minor == 0 && matches!(method, Method::Post | Method::Put) {
                BodyFraming::UntilClose
            } else {
                BodyFraming::None
            }
        }
    };
    if minor >= 1 && !host {
        return Err(herr(400, "HTTP/1.1 requests need a Host header."));
    }
    Ok(Some((head, skip + len)))
}

/// Parse again a head that [`parse_head`] accepted before (its
/// [`Head::raw`] bytes, kept while its body was read). `None` only for bytes
/// that never came from `parse_head`.
pub fn parse_again(raw: &[u8]) -> Option<Head<'_>> {
    let limits = Limits {
        max_head: raw.len(),
        max_target: raw.len(),
    };
    match parse_head(raw, limits) {
        Ok(Some((head, len))) if len == raw.len() => Some(head),
        _ => None,
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

fn parse_content_length(v: &[u8]) -> Result<u64, HeadError> {
    // RFC 9110 allows a list of identical values; anything else is refused.
    let mut value: Option<u64> = None;
    for part in v.split(|&b| b == b',') {
        let part = trim(part);
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err(herr(400, "Invalid Content-Length."));
        }
        let n = part
            .iter()
            .try_fold(0u64, |acc, &d| {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .ok_or(herr(400, "Invalid Content-Length."))?;
        if value.is_some_and(|m| m != n) {
            return Err(herr(400, "Conflicting Content-Length values."));
        }
        value = Some(n);
    }
    value.ok_or(herr(400, "Invalid Content-Length."))
}

fn split_target(target: &str) -> Result<(&str, Option<&str>), HeadError> {
    // Absolute-form targets (proxies) are reduced to their path.
    let target = if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        rest.find('/').map_or("/", |i| &rest[i..])
    } else {
        target
    };
    if !target.starts_with('/') {
        return Err(herr(400, "The request target must start with '/'."));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let path = path.split('#').next().unwrap_or("/");
    Ok((path, query))
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_head: 16 * 1024,
        max_target: 4096,
    };

    fn ok(raw: &str) -> (Head<'_>, usize) {
        parse_head(raw.as_bytes(), L).unwrap().expect("complete")
    }

    fn status(raw: &[u8]) -> u16 {
        parse_head(raw, L).unwrap_err().status
    }

    #[test]
    fn table_of_refusals() {
        let table: &[(&[u8], u16)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
            (b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400),
            (b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
            (b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
            (b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
            (b"PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (b"PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            (b"PUT /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\n  folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
            (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        ];
        for (raw, want) in table {
            assert_eq!(status(raw), *want, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn partial_is_not_an_error() {
        let full = b"PUT /abc?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
        let head_len = full.len() - 3;
        for cut in 0..head_len {
            assert!(parse_head(&full[..cut], L).unwrap().is_none(), "cut {cut}");
        }
        let (h, n) = parse_head(full, L).unwrap().unwrap();
        assert_eq!(n, head_len);
        assert_eq!(h.method, Method::Put);
        assert_eq!(h.path, "/abc");
        assert_eq!(h.query_param("n"), Some("2"));
        assert_eq!(h.framing, BodyFraming::Length(3));
    }

    #[test]
    fn limits() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(5000));
        assert_eq!(status(long.as_bytes()), 414);
        // An unfinished request line past the limit is refused early.
        let partial = format!("GET /{}", "a".repeat(5000));
        assert_eq!(status(partial.as_bytes()), 414);
        let mut big = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        while big.len() < 17 * 1024 {
            big.push_str("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(status(big.as_bytes()), 431);
        let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..70 {
            many.push_str(&format!("X-{i}: 1\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(status(many.as_bytes()), 431);
    }

    #[test]
    fn framing_and_flags() {
        let (h, _) = ok("PUT /a HTTP/1.0\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::UntilClose);
        assert!(!h.keep_alive);
        let (h, _) = ok("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::None);
        assert!(h.keep_alive);
        let (h, _) = ok("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert!(h.expect_continue);
        assert!(!h.keep_alive);
        let (h, _) = ok("PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\nX-Piping: one\r\nx-piping: two\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Length(7));
        let piping: Vec<&[u8]> = h.headers("x-piping").collect();
        assert_eq!(piping, [&b"one"[..], &b"two"[..]]);
        assert_eq!(h.header("X-PIPING"), Some(&b"one"[..]));
        assert_eq!(h.header("x-missing"), None);
        let (h, n) =
            ok("\r\nGET http://host/p?q HTTP/1.1\r\nHost: a\r\nService-Worker: script\r\n\r\n");
        assert_eq!(h.path, "/p");
        assert_eq!(h.query, Some("q"));
        assert_eq!(h.header_str("service-worker"), Some("script"));
        assert!(n > 2);
    }
}
