//! Test harness: a relay on 127.0.0.1, raw HTTP clients with deadlines.
//!
//! Every read here has a deadline; no test synchronises on a sleep. A test
//! that waits for the relay to reach a state polls `/metrics` until the
//! state shows or the deadline passes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weir::{Config, Server, StopHandle};

/// The default deadline for any one expectation.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A relay running on a thread of the test process.
pub struct Relay {
    pub addr: SocketAddr,
    stop: StopHandle,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    pub fn start() -> Relay {
        Relay::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut Config)) -> Relay {
        let mut config = Config {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            shutdown_grace: Duration::from_secs(1),
            ..Config::default()
        };
        f(&mut config);
        let mut server = Server::bind(config).expect("bind");
        let addr = server.local_addrs()[0];
        let stop = server.stop_handle();
        let thread = std::thread::spawn(move || server.run().expect("run"));
        Relay {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// The `/metrics` values by full series name (`weir_pipes{state="waiting"}`).
    pub fn metrics(&self) -> HashMap<String, f64> {
        metrics(self.addr)
    }

    pub fn metric(&self, name: &str) -> f64 {
        self.metrics().get(name).copied().unwrap_or(f64::NAN)
    }

    /// Poll `/metrics` until `name` equals `value`, or panic at the deadline.
    pub fn wait_metric(&self, name: &str, value: f64) {
        wait_metric(self.addr, name, value)
    }

    /// After a scenario: nothing left open, nothing left waiting.
    pub fn assert_idle(&self) {
        self.wait_metric("weir_connections", 0.0);
        self.wait_metric("weir_pipes{state=\"waiting\"}", 0.0);
        self.wait_metric("weir_pipes{state=\"streaming\"}", 0.0);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The real `weir` binary as a child process (for RSS and signals).
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Binary {
    pub fn start(args: &[&str]) -> Binary {
        // Pick a free port by binding and releasing it; retried on a clash.
        for _ in 0..20 {
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
                .arg("--listen")
                .arg(addr.to_string())
                .args(args)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn weir");
            let deadline = Instant::now() + DEADLINE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(addr).is_ok() {
                    return Binary { child, addr };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("weir did not start");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub fn metrics(&self) -> HashMap<String, f64> {
        metrics(self.addr)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Read until the peer closes, or panic at the deadline.
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    read_to_end_result(s).expect("read to end")
}

/// Read until the peer closes; an error (such as a reset) is returned with
/// the bytes read before it.
pub fn read_to_end_result(s: &mut TcpStream) -> Result<Vec<u8>, (io::Error, Vec<u8>)> {
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if Instant::now() > deadline {
            panic!("deadline passed; read {} bytes", out.len());
        }
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
                panic!("read timed out after {} bytes", out.len())
            }
            Err(e) => return Err((e, out)),
        }
    }
}

/// Read until `needle` has been seen, returning everything read so far.
pub fn read_until(s: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.windows(needle.len()).any(|w| w == needle) {
        assert!(Instant::now() < deadline, "deadline waiting for {:?}", String::from_utf8_lossy(needle));
        match s.read(&mut byte) {
            Ok(0) => panic!(
                "closed before {:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&out)
            ),
            Ok(_) => out.push(byte[0]),
            Err(e) => panic!("read error {e} before {:?}", String::from_utf8_lossy(needle)),
        }
    }
    out
}

/// Read exactly `n` bytes.
pub fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v).expect("read_exact");
    v
}

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
        let chunked = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"));
        let (body, complete) = if chunked {
            dechunk(body)
        } else if let Some((_, len)) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")) {
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

pub fn metrics(addr: SocketAddr) -> HashMap<String, f64> {
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    r.text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

pub fn wait_metric(addr: SocketAddr, name: &str, value: f64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = metrics(addr).get(name).copied();
        if got == Some(value) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} is {got:?}, expected {value}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Start a sender: write the head (and optionally body bytes), return the socket.
pub fn start_sender(addr: SocketAddr, path: &str, extra_headers: &str) -> TcpStream {
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

pub fn half_close(s: &TcpStream) {
    s.shutdown(Shutdown::Write).unwrap();
}

/// Deterministic pseudo-random bytes (xorshift), for payloads.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// FNV-1a, enough to compare large payloads without keeping two copies.
pub fn hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

pub fn curl_available() -> bool {
    Command::new("curl").arg("--version").output().is_ok()
}
