//! HTTP responses read off raw sockets: parse a whole response (skipping
//! `100 Continue`), a head alone, a chunked body as it arrives; one-shot
//! exchanges (`GET` with `Connection: close`); and the shape of weir's
//! `[ERROR]` answers.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::net::{connect, read_to_end, read_until};

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// For chunked bodies: whether the final chunk arrived.
    pub complete: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parse one full response (read to close) from raw bytes, skipping any
/// `100 Continue` interim responses.
pub fn parse_response(raw: &[u8]) -> Response {
    let mut rest = raw;
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no head end in {:?}", String::from_utf8_lossy(raw)));
        let head = std::str::from_utf8(&rest[..end]).expect("utf-8 head");
        let body = &rest[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        if status == 100 {
            rest = body;
            continue;
        }
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let chunked = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
        });
        let (body, complete) = if chunked {
            dechunk(body)
        } else if let Some((_, len)) = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            let len: usize = len.parse().unwrap();
            (body[..body.len().min(len)].to_vec(), body.len() >= len)
        } else {
            (body.to_vec(), true)
        };
        return Response {
            status,
            headers,
            body,
            complete,
        };
    }
}

/// Decode a chunked body; `false` if the final chunk never came.
pub fn dechunk(mut b: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size_str = std::str::from_utf8(&b[..nl]).unwrap();
        let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap();
        b = &b[nl + 2..];
        if size == 0 {
            return (out, b.starts_with(b"\r\n"));
        }
        if b.len() < size + 2 {
            out.extend_from_slice(&b[..b.len().min(size)]);
            return (out, false);
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Read one response head (skipping `100 Continue`), consuming no body byte.
/// The returned `Response` has an empty body.
pub fn read_head(s: &mut TcpStream) -> Response {
    loop {
        let raw = read_until(s, b"\r\n\r\n");
        let r = parse_response(&raw);
        if r.status != 100 {
            return r;
        }
    }
}

/// Read a chunked body from `s` until at least `want` payload bytes have
/// been decoded. `raw` keeps the undecoded wire bytes between calls. Each
/// read is bounded by the socket's read timeout.
pub fn read_chunked_payload(s: &mut TcpStream, raw: &mut Vec<u8>, want: usize) -> Vec<u8> {
    let mut buf = [0u8; 4096];
    loop {
        let (decoded, _) = dechunk(raw);
        if decoded.len() >= want {
            return decoded;
        }
        match s.read(&mut buf) {
            Ok(0) => panic!("closed after {} of {want} payload bytes", decoded.len()),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "no payload byte {} within the read deadline: {e}",
                decoded.len()
            ),
        }
    }
}

/// A whole exchange on a fresh connection: send `req`, read to close.
pub fn exchange(addr: SocketAddr, req: &[u8]) -> Response {
    let mut s = connect(addr);
    s.write_all(req).unwrap();
    parse_response(&read_to_end(&mut s))
}

/// `GET path` with `Connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// An `[ERROR]` answer: the status, plain UTF-8 text, one line.
pub fn assert_error(r: &Response, status: u16) {
    assert_eq!(r.status, status, "body: {:?}", r.text());
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; charset=utf-8"),
        "status {status}"
    );
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    let text = r.text();
    assert!(text.starts_with("[ERROR] "), "{text:?}");
    assert!(text.ends_with('\n'), "{text:?}");
    assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
    assert!(r.complete, "{text:?}");
}
