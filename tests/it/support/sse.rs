//! Server-Sent Events over a raw socket: an EventSource-style reader that
//! de-chunks the body and parses events and comments as the EventSource
//! rules say.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use super::net::{connect, read_until};
use super::DEADLINE;

/// One parsed Server-Sent Event (or comment, when `comment` is set).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sse {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
    pub comment: Option<String>,
}

/// A minimal EventSource-style reader over a raw socket: de-chunks the
/// response body and parses events as the EventSource rules say.
pub struct SseClient {
    pub stream: TcpStream,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    chunked: bool,
    raw: Vec<u8>,
    body: Vec<u8>,
    pub ended: bool,
}

impl SseClient {
    /// Send `GET path` with `Accept: text/event-stream` and read the head.
    pub fn open(addr: SocketAddr, path: &str) -> SseClient {
        SseClient::open_with(addr, path, "Accept: text/event-stream\r\n")
    }

    pub fn open_with(addr: SocketAddr, path: &str, headers: &str) -> SseClient {
        let mut stream = connect(addr);
        write!(stream, "GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n").unwrap();
        let head = read_until(&mut stream, b"\r\n\r\n");
        let head = String::from_utf8(head).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked");
        SseClient {
            stream,
            status,
            headers,
            chunked,
            raw: Vec::new(),
            body: Vec::new(),
            ended: false,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Move complete chunks from `raw` to `body`.
    fn dechunk(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            let Some(nl) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&self.raw[..nl]).unwrap(), 16).unwrap();
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                return;
            }
            if self.raw.len() < nl + 2 + size + 2 {
                return;
            }
            self.body
                .extend_from_slice(&self.raw[nl + 2..nl + 2 + size]);
            self.raw.drain(..nl + 2 + size + 2);
        }
    }

    /// The next event or comment; `None` when the stream ended.
    pub fn next_any(&mut self) -> Option<Sse> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.body.drain(..end + 2).collect();
                let text = String::from_utf8(block).unwrap();
                let mut ev = Sse::default();
                let mut data: Vec<&str> = Vec::new();
                for line in text.trim_end_matches('\n').split('\n') {
                    if let Some(c) = line.strip_prefix(':') {
                        ev.comment = Some(c.trim_start().to_string());
                        continue;
                    }
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => ev.event = Some(value.to_string()),
                        "id" => ev.id = Some(value.to_string()),
                        "data" => data.push(value),
                        _ => {}
                    }
                }
                ev.data = data.join("\n");
                return Some(ev);
            }
            if self.ended {
                return None;
            }
            assert!(Instant::now() < deadline, "no event before the deadline");
            let mut buf = [0u8; 65536];
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.ended = true;
                    return None;
                }
                Ok(n) => {
                    self.raw.extend_from_slice(&buf[..n]);
                    self.dechunk();
                }
                Err(e) => panic!("read error: {e}"),
            }
        }
    }

    /// The next event, skipping comments.
    pub fn next_event(&mut self) -> Option<Sse> {
        loop {
            let ev = self.next_any()?;
            if ev.comment.is_none() {
                return Some(ev);
            }
        }
    }
}
