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
        Relay::with_hooks(f, None)
    }

    pub fn with_hooks(f: impl FnOnce(&mut Config), hooks: Option<Box<dyn weir::Hooks>>) -> Relay {
        let mut config = Config {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            shutdown_grace: Duration::from_secs(1),
            ..Config::default()
        };
        f(&mut config);
        let mut server = Server::bind(config).expect("bind");
        if let Some(h) = hooks {
            server.set_hooks(h);
        }
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
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
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
        assert!(
            Instant::now() < deadline,
            "deadline waiting for {:?}",
            String::from_utf8_lossy(needle)
        );
        match s.read(&mut byte) {
            Ok(0) => panic!(
                "closed before {:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&out)
            ),
            Ok(_) => out.push(byte[0]),
            Err(e) => panic!(
                "read error {e} before {:?}",
                String::from_utf8_lossy(needle)
            ),
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
        assert!(
            Instant::now() < deadline,
            "{name} is {got:?}, expected {value}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

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

// ---------------------------------------------------------------------------
// Helpers added for the pipe, limit and footprint tests.

/// Incremental FNV-1a: the same value as [`hash`] over the concatenation of
/// every `update`, for payloads too large to keep.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf29ce484222325)
    }
}

impl Fnv {
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x100000001b3);
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

/// The bytes of [`pattern`] as a stream: any sequence of `fill` calls
/// yields the same bytes as one `pattern(total, seed)`.
#[derive(Debug)]
pub struct PatternStream {
    x: u64,
    word: [u8; 8],
    used: usize,
}

impl PatternStream {
    pub fn new(seed: u64) -> Self {
        PatternStream {
            x: seed | 1,
            word: [0; 8],
            used: 8,
        }
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut i = 0;
        while i < buf.len() {
            if self.used == 8 {
                self.x ^= self.x << 13;
                self.x ^= self.x >> 7;
                self.x ^= self.x << 17;
                self.word = self.x.to_le_bytes();
                self.used = 0;
            }
            let take = (8 - self.used).min(buf.len() - i);
            buf[i..i + take].copy_from_slice(&self.word[self.used..self.used + take]);
            self.used += take;
            i += take;
        }
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

/// The lines of a progress response (a sender's body).
pub fn lines(r: &Response) -> Vec<String> {
    r.text().lines().map(str::to_string).collect()
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

/// A file under the system temp directory, removed on drop.
pub struct TempFile {
    pub path: std::path::PathBuf,
}

impl TempFile {
    pub fn new(name: &str, contents: &[u8]) -> TempFile {
        let dir =
            std::env::temp_dir().join(format!("weir-test-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        TempFile { path }
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A running curl whose stdout lines arrive on a channel, so that a test
/// can wait for one line with a deadline.
pub struct Curl {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Curl {
    /// `curl --max-time 20 ARGS...`; curl's own limit bounds every wait.
    pub fn spawn(args: &[&str]) -> Curl {
        let mut child = Command::new("/usr/bin/curl")
            .arg("--max-time")
            .arg(DEADLINE.as_secs().to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn curl");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Curl {
            child,
            lines: rx,
            stderr: Some(stderr),
        }
    }

    /// The next line of curl's stdout, or panic at the deadline.
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(DEADLINE)
            .expect("a line from curl within the deadline")
    }

    /// Wait for curl to end; its remaining stdout lines and its stderr.
    pub fn finish(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        let mut rest = Vec::new();
        let deadline = Instant::now() + DEADLINE + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => rest.push(l),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("curl stdout did not end: {e}"),
            }
        }
        let status = self.child.wait().expect("wait for curl");
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (status, rest, stderr)
    }
}

impl Drop for Curl {
    fn drop(&mut self) {
        // Only if a test failed before `finish`: do not leave curl behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run curl to completion: (exit status, stdout, stderr).
pub fn curl(args: &[&str]) -> (std::process::ExitStatus, Vec<u8>, String) {
    let out = Command::new("/usr/bin/curl")
        .arg("--max-time")
        .arg(DEADLINE.as_secs().to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    (
        out.status,
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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

/// A sender whose response is recorded.
pub fn sender(addr: SocketAddr, path: &str, extra_headers: &str) -> Recorded {
    Recorded::new(start_sender(addr, path, extra_headers))
}

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

/// Open a WebSocket to `path`; panics unless the answer is `101`.
pub fn ws_connect(addr: SocketAddr, path: &str) -> TcpStream {
    let (s, status) = ws_try_connect(addr, path);
    assert_eq!(status, 101, "upgrade refused");
    s
}

/// Try a WebSocket upgrade; returns the socket and the status.
pub fn ws_try_connect(addr: SocketAddr, path: &str) -> (TcpStream, u16) {
    let mut s = connect(addr);
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let head = String::from_utf8(read_until(&mut s, b"\r\n\r\n")).unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    if status == 101 {
        assert!(
            head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{head}"
        );
    }
    (s, status)
}

/// Send one masked frame.
pub fn ws_send(s: &mut TcpStream, fin: bool, opcode: weir::ws::OpCode, payload: &[u8]) {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = Vec::with_capacity(payload.len() + 14);
    weir::ws::write_header(&mut out, fin, opcode, payload.len() as u64, Some(mask));
    let start = out.len();
    out.extend_from_slice(payload);
    weir::ws::apply_mask(&mut out[start..], mask, 0);
    s.write_all(&out).unwrap();
}

/// A received frame.
#[derive(Debug, PartialEq)]
pub struct WsFrame {
    pub fin: bool,
    pub opcode: weir::ws::OpCode,
    pub payload: Vec<u8>,
}

/// Read one frame (server frames are unmasked); `None` at end of stream.
pub fn ws_recv(s: &mut TcpStream) -> Option<WsFrame> {
    ws_recv_from(s)
}

/// [`ws_recv`] from any reader (a `BufReader` for many small frames).
pub fn ws_recv_from(s: &mut impl Read) -> Option<WsFrame> {
    let mut h = [0u8; 2];
    if let Err(e) = s.read_exact(&mut h) {
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ),
            "read error: {e}"
        );
        return None;
    }
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b).unwrap();
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).unwrap();
        len = u64::from_be_bytes(b);
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).unwrap();
    Some(WsFrame {
        fin: h[0] & 0x80 != 0,
        opcode: weir::ws::OpCode::from_u8(h[0] & 0x0f).expect("opcode"),
        payload,
    })
}

/// A close frame's code and reason.
pub fn ws_close_of(f: &WsFrame) -> (u16, String) {
    assert_eq!(f.opcode, weir::ws::OpCode::Close, "{f:?}");
    let code = u16::from_be_bytes([f.payload[0], f.payload[1]]);
    (code, String::from_utf8(f.payload[2..].to_vec()).unwrap())
}

// ---------------------------------------------------------------------------
// Helpers added for the hostile, exhaustion, soak and simulation tests.

/// The relay still answers a plain request: `GET /healthz` is `200 ok`.
pub fn assert_serves(addr: SocketAddr) {
    let r = get(addr, "/healthz");
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert_eq!(r.body, b"ok\n");
}

/// Read until the peer closes (or resets) and return what came before,
/// with whether it ended in an error; panics at `within`.
pub fn read_until_closed(s: &mut TcpStream, within: Duration) -> (Vec<u8>, Option<io::Error>) {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "not closed within {within:?}; read {} bytes",
            out.len()
        );
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
            }
            Err(e) => return (out, Some(e)),
        }
    }
}

/// Expect no byte on `s` for `quiet` (a negative check with a bound, not a
/// synchronisation): panics if anything arrives or the peer closes.
pub fn assert_no_response(s: &mut TcpStream, quiet: Duration) {
    s.set_read_timeout(Some(quiet)).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => panic!("closed instead of staying silent"),
        Ok(_) => panic!("answered while it should wait"),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {}
        Err(e) => panic!("read error while waiting: {e}"),
    }
    s.set_read_timeout(Some(DEADLINE)).unwrap();
}

/// Close abortively: `SO_LINGER 0`, so the peer sees a reset, as when a
/// client crashes or its network goes away.
pub fn reset(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}

/// A small seeded generator (splitmix64): test plans, never IDs.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi);
        let span = hi - lo;
        if span == u64::MAX {
            return self.next_u64();
        }
        lo + self.next_u64() % (span + 1)
    }

    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0);
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }

    /// A size in `0..=max`, spread over the orders of magnitude (so that
    /// small and large values both come up often).
    pub fn size(&mut self, max: u64) -> u64 {
        let bits = 64 - max.leading_zeros() as u64;
        let b = self.range(0, bits);
        let cap = if b >= 64 {
            max
        } else {
            ((1u64 << b) - 1).min(max)
        };
        self.range(0, cap)
    }
}

/// The seed for a seeded test: `$WEIR_SEED` to replay, else a fresh one.
pub fn test_seed() -> u64 {
    match std::env::var("WEIR_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("WEIR_SEED={s:?} is not a number"))
        }
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64;
            let mut r = Rng::new(t ^ (u64::from(std::process::id()) << 32) ^ unique());
            r.next_u64()
        }
    }
}

/// Prints how to replay a seeded test when it fails (on drop while panicking).
pub struct SeedReport {
    pub name: &'static str,
    pub seed: u64,
}

impl SeedReport {
    pub fn new(name: &'static str, seed: u64) -> SeedReport {
        eprintln!("{name}: seed {seed} (replay with WEIR_SEED={seed})");
        SeedReport { name, seed }
    }
}

impl Drop for SeedReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{} FAILED with seed {}: replay with WEIR_SEED={} cargo test --test <file> {}",
                self.name, self.seed, self.seed, self.name
            );
        }
    }
}

/// CPU time (user + system) a process has used, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

impl Binary {
    /// Like [`Binary::start`], with the open-file limit lowered to `nofile`
    /// (through the shell's `ulimit`, then `exec`, so the pid is weir's).
    pub fn start_with_nofile(nofile: u32, args: &[&str]) -> Binary {
        for _ in 0..20 {
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut child = Command::new("bash")
                .arg("-c")
                .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
                .arg(env!("CARGO_BIN_EXE_weir"))
                .arg("--listen")
                .arg(addr.to_string())
                .args(args)
                .env("RUST_LOG", "error")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn weir under ulimit");
            let deadline = Instant::now() + DEADLINE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if let Ok(s) = TcpStream::connect(addr) {
                    drop(s);
                    // The probe is a connection too: wait until the relay
                    // answers, so it is accepted and gone before the test.
                    let r = get(addr, "/healthz");
                    assert_eq!(r.status, 200);
                    return Binary { child, addr };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("weir did not start under ulimit");
    }

    /// The open-file limit the running relay actually has.
    pub fn nofile_limit(&self) -> u64 {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid())).unwrap();
        limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok())
            .expect("Max open files")
    }

    /// File descriptors the relay holds now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------
// WebSocket close handshakes.

/// The client's half of a close handshake that weir started (its close
/// frame was just read): weir must keep TCP open for the client's close
/// (no EOF within a quiet window), and once it has it, end TCP cleanly: an
/// EOF with nothing after the close frame, not a reset.
pub fn ws_answer_close(s: &mut TcpStream, payload: &[u8]) {
    assert_no_response(s, Duration::from_millis(200));
    ws_send(s, true, weir::ws::OpCode::Close, payload);
    ws_expect_clean_end(s);
}

/// After the close frames: the connection ends with a clean EOF (no
/// reset), and nothing more arrives.
pub fn ws_expect_clean_end(s: &mut TcpStream) {
    let (rest, err) = read_until_closed(s, DEADLINE);
    assert!(err.is_none(), "reset instead of a clean close: {err:?}");
    assert!(rest.is_empty(), "bytes after the close frame: {rest:x?}");
}

/// Open a hixie-76 WebSocket (`Sec-WebSocket-Key1`/`Key2`, the draft's
/// example keys) to `path`; returns the socket after the `101` head, with
/// the head. `key3_with_head` sends the 8 key3 bytes with the head, as a
/// browser does; otherwise the caller sends them (as behind a proxy that
/// waits for the server's head).
pub fn hixie_connect(addr: SocketAddr, path: &str, key3_with_head: bool) -> (TcpStream, String) {
    let mut s = connect(addr);
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nOrigin: http://{addr}\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n"
    )
    .into_bytes();
    if key3_with_head {
        req.extend_from_slice(HIXIE_KEY3);
    }
    s.write_all(&req).unwrap();
    let head = String::from_utf8(read_until(&mut s, b"\r\n\r\n")).unwrap();
    (s, head)
}

/// The key3 the hixie helpers send, and the answer it must get with the
/// draft's example keys (the SockJS protocol tests' HAProxy case).
pub const HIXIE_KEY3: &[u8; 8] = b"aaaaaaaa";
pub const HIXIE_ANSWER: &[u8; 16] = b"\xca4\x00\xd8\xa5\x08G\x97,\xd5qZ\xba\xbfC{";

/// Read one hixie-76 frame: `Some(text)` for a text frame, `None` for the
/// close frame.
pub fn hixie_recv(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b).expect("hixie frame type");
    match b[0] {
        0x00 => {
            let mut text = read_until(s, b"\xff");
            text.pop();
            Some(text)
        }
        0xff => {
            s.read_exact(&mut b).expect("hixie close length");
            assert_eq!(b[0], 0x00, "close frame");
            None
        }
        t => panic!("unexpected hixie frame type {t:#x}"),
    }
}

/// Send one hixie-76 text frame.
pub fn hixie_send(s: &mut TcpStream, text: &[u8]) {
    let mut f = vec![0x00];
    f.extend_from_slice(text);
    f.push(0xff);
    s.write_all(&f).unwrap();
}
