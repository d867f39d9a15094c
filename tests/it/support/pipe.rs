//! The two parties of a named pipe over raw sockets: senders (with or
//! without `Expect: 100-continue`) whose progress lines are recorded so a
//! test can wait for them one by one, and receivers.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use super::http::{parse_response, Response};
use super::net::{connect, read_to_end, read_to_end_result};
use super::DEADLINE;

/// Start a sender: write the head (and optionally body bytes), return the socket.
///
/// Like `curl -T`, it asks `Expect: 100-continue`, so the relay writes its
/// progress lines live (docs/protocol.md, "The sender's response"); pass
/// your own `Expect` header, or use [`start_plain_sender`], for the held
/// response a client without it gets.
pub fn start_sender(addr: SocketAddr, path: &str, extra_headers: &str) -> TcpStream {
    let expect = if extra_headers.to_ascii_lowercase().contains("expect:") {
        ""
    } else {
        "Expect: 100-continue\r\n"
    };
    start_plain_sender(addr, path, &format!("{expect}{extra_headers}"))
}

/// Start a sender without `Expect: 100-continue`: its response is held
/// until its body has been read (as nginx's requests are).
pub fn start_plain_sender(addr: SocketAddr, path: &str, extra_headers: &str) -> TcpStream {
    let mut s = connect(addr);
    write!(s, "PUT {path} HTTP/1.1\r\nHost: t\r\n{extra_headers}\r\n").unwrap();
    s
}

/// Start a receiver: write the head, return the socket.
pub fn start_receiver(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = connect(addr);
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    s
}

/// A sender whose response is recorded.
pub fn sender(addr: SocketAddr, path: &str, extra_headers: &str) -> Recorded {
    Recorded::new(start_sender(addr, path, extra_headers))
}

/// A client socket that keeps every byte it has read, so that a test can
/// wait for progress lines one by one and still parse the whole response
/// at the end.
pub struct Recorded {
    pub sock: TcpStream,
    seen: Vec<u8>,
    pos: usize,
}

impl Recorded {
    pub fn new(sock: TcpStream) -> Recorded {
        Recorded {
            sock,
            seen: Vec::new(),
            pos: 0,
        }
    }

    /// Read until `needle` appears after the previous match; return the
    /// bytes from the previous match up to the end of this one.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let needle = needle.as_bytes();
        let deadline = Instant::now() + DEADLINE;
        let mut buf = [0u8; 1];
        loop {
            if let Some(i) = self.seen[self.pos..]
                .windows(needle.len())
                .position(|w| w == needle)
            {
                let end = self.pos + i + needle.len();
                let got = String::from_utf8_lossy(&self.seen[self.pos..end]).into_owned();
                self.pos = end;
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "deadline waiting for {:?}",
                String::from_utf8_lossy(needle)
            );
            // One byte at a time: nothing past the needle is consumed, so
            // the kernel never holds a response byte the test has not read.
            match self.sock.read(&mut buf) {
                Ok(0) => panic!(
                    "closed before {:?}; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.seen)
                ),
                Ok(_) => self.seen.push(buf[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!(
                    "read error {e} before {:?}; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.seen)
                ),
            }
        }
    }

    /// Read to the end and parse everything read on this socket.
    pub fn finish(&mut self) -> Response {
        let rest = read_to_end(&mut self.sock);
        self.seen.extend_from_slice(&rest);
        parse_response(&self.seen)
    }

    /// Like `finish`, but a reset after some bytes is not a failure.
    pub fn finish_lossy(&mut self) -> Response {
        let rest = match read_to_end_result(&mut self.sock) {
            Ok(b) => b,
            Err((_, b)) => b,
        };
        self.seen.extend_from_slice(&rest);
        parse_response(&self.seen)
    }
}

impl Write for Recorded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

/// The lines of a progress response (a sender's body).
pub fn lines(r: &Response) -> Vec<String> {
    r.text().lines().map(str::to_string).collect()
}
