//! `weir bench`: the load client for weir, or for any relay that pairs a
//! `PUT /path` upload with a `GET /path` download (piping-server style).
//! It is built as the crate's second binary, `weir-bench`:
//!
//! ```text
//! weir-bench --url http://127.0.0.1:8080/ [--size 1G] [--pipes N] [--chunked] [--latency]
//! weir-bench --url http://127.0.0.1:8080/ --ws [--size 1G] [--pipes N]  # WebSocket pipes
//! weir-bench --raw [--raw-listen ADDR] [--raw-connect ADDR]   # TCP without a relay
//! weir-bench --park N --url URL [--park-side sender|receiver] # hold N parked clients
//! ```
//!
//! What it owns and which rules hold:
//! - It is a client, not the relay: plain threads and blocking `std::net`
//!   sockets, two threads per pipe. It stays cheap so that the relay, not
//!   the client, is what a run measures: senders write slices of one static
//!   pattern buffer (no per-byte work), receivers read into one reusable
//!   discard buffer per pipe and check it with a `memcmp` against the same
//!   pattern. Byte `i` of every stream is `(i * 131 + 7) as u8`, a pattern
//!   of period 256, so any offset is a slice of the static buffer.
//! - HTTP/1.1 is written by hand: `PUT` with `Content-Length` (or
//!   `Transfer-Encoding: chunked` in 64 KiB chunks with `--chunked`), `GET`
//!   on the receiving side; response bodies framed by length, chunks
//!   (decoded with the relay's own strict decoder) or close are accepted.
//!   A body that ends short, or a sender response with an `[ERROR]` line,
//!   fails the run.
//! - `--ws` runs each pipe as two WebSocket peers on one path instead: the
//!   sender writes binary frames of [`WS_FRAME`] bytes, masked with the
//!   all-zero key (a legal key that leaves the payload as it is, so the
//!   client does no per-byte work), then a close; the receiver reads the
//!   unmasked frames, checks their payload against the pattern and counts
//!   it, and ends at the close weir passes on.
//! - `--size` is per pipe. Progress goes to stderr once a second; results go
//!   to stdout as `name value` lines that scripts can pick with awk.
//! - CPU time comes from `/proc/<pid>/stat` (user + system, plus reaped
//!   children so that a forking relay such as `socat ... fork` is counted),
//!   in clock ticks read from the auxiliary vector.
//! - Every socket has read and write timeouts and the whole run a deadline
//!   (`--timeout`), so a stuck relay ends the run with an error, not a hang.

use std::env;
use std::fs;
use std::io::{self, IoSlice, IsTerminal, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weir::http::chunked::ChunkedDecoder;

/// Period of the byte pattern.
const PERIOD: usize = 256;
/// The static send buffer (plus one period, so any offset has a full slice).
const PATTERN_LEN: usize = 1 << 20;
/// Receive (discard) buffer per receiver.
const RECV_BUF: usize = 256 << 10;
/// Chunk size of a `--chunked` upload.
const CHUNK: usize = 64 << 10;
/// Largest response head accepted.
const MAX_HEAD: usize = 64 << 10;
/// How much of a sender's response is kept to look for `[ERROR]`.
const KEEP_RESPONSE: usize = 64 << 10;
/// Payload bytes per WebSocket frame with `--ws`.
const WS_FRAME: usize = 64 << 10;
/// Rounds run before the timed latency rounds.
const LATENCY_WARMUP: usize = 50;

const USAGE: &str = "\
weir-bench: the `weir bench` load client for weir or any piping-server-style relay

USAGE:
  weir-bench --url http://HOST:PORT/[PREFIX/] [OPTIONS]
  weir-bench --raw [--raw-listen ADDR] [--raw-connect ADDR] [OPTIONS]
  weir-bench --park N --url URL [--park-side sender|receiver] [--hold SECS]

OPTIONS:
  --url URL            the relay; pipes are PUT/GET on URL's path + a unique name
  --size SIZE          bytes per pipe: 1G, 512M, 100K or a plain number [1G]
  --pipes N            sender/receiver pairs at once, on distinct paths [1]
  --chunked            send Transfer-Encoding: chunked (64 KiB chunks)
  --ws                 WebSocket pipes: both peers upgrade on the path, the
                       sender writes 64 KiB binary frames, then a close
  --latency            also time one byte crossing, ROUNDS times (one pipe)
  --rounds K           latency rounds [1000]
  --relay-pid PID      report that process's CPU seconds per GiB
  --raw                no relay: TCP from the senders to this tool's own listener
  --raw-listen ADDR    where --raw listens [127.0.0.1:0]
  --raw-connect ADDR   where --raw senders connect [the listener itself];
                       point it at a TCP relay that forwards to --raw-listen
  --park N             open N parked clients, print `ready N`, hold them
  --park-side SIDE     sender or receiver [sender]
  --hold SECS          how long --park holds its clients [600]
  --timeout SECS       deadline for the whole run [300]
  --quiet              no progress lines
  -h, --help           this text

Output: `name value` lines on stdout (bytes, wall_s, gib_per_s, client_cpu_s,
relay_cpu_s_per_gib, latency_p50_us, latency_p99_us, ...). --size 0 skips the
throughput run (e.g. with --latency).";

/// What the run talks to.
#[derive(Debug, Clone)]
enum Target {
    /// An HTTP relay: `addr` to connect, `host` for the Host header, `prefix`
    /// (ends with `/`) for pipe paths.
    Http {
        addr: SocketAddr,
        host: String,
        prefix: String,
    },
    /// Raw TCP: senders connect to `connect`, which reaches `listen`.
    Raw {
        listen: SocketAddr,
        connect: Option<SocketAddr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Sender,
    Receiver,
}

#[derive(Debug, Clone)]
struct Opts {
    target: Target,
    size: u64,
    pipes: usize,
    chunked: bool,
    ws: bool,
    latency: bool,
    rounds: usize,
    relay_pid: Option<u32>,
    park: Option<usize>,
    park_side: Side,
    hold: Duration,
    timeout: Duration,
    quiet: bool,
}

fn parse_size(v: &str) -> Result<u64, String> {
    let v = v.trim();
    let (num, mult) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => return Err(format!("'{v}': unknown size suffix")),
            };
            (&v[..i], m)
        }
        _ => (v, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{v}' is not a size like 1G, 512M, 100K or 1000"))?;
    if !(n >= 0.0 && n * (mult as f64) < 1e18) {
        return Err(format!("'{v}' is out of range"));
    }
    Ok((n * mult as f64).round() as u64)
}

fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("'{url}': only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let with_port = if authority.rsplit_once(':').is_some_and(|(h, p)| {
        !h.is_empty() && !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit())
    }) {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("'{authority}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{authority}' has no address"))?;
    let mut prefix = path.split(['?', '#']).next().unwrap_or("/").to_string();
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok(Target::Http {
        addr,
        host: authority.to_string(),
        prefix,
    })
}

fn parse_args(args: &[String]) -> Result<Option<Opts>, String> {
    let mut url = None;
    let mut raw = false;
    let mut raw_listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut raw_connect = None;
    let mut o = Opts {
        target: Target::Raw {
            listen: raw_listen,
            connect: None,
        },
        size: 1 << 30,
        pipes: 1,
        chunked: false,
        ws: false,
        latency: false,
        rounds: 1000,
        relay_pid: None,
        park: None,
        park_side: Side::Sender,
        hold: Duration::from_secs(600),
        timeout: Duration::from_secs(300),
        quiet: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let num = |v: String| -> Result<u64, String> {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("{name}: '{v}' is not a whole number"))
        };
        match name {
            "-h" | "--help" => return Ok(None),
            "--url" => url = Some(value()?),
            "--size" => o.size = parse_size(&value()?)?,
            "--pipes" => o.pipes = num(value()?)? as usize,
            "--chunked" => o.chunked = true,
            "--ws" => o.ws = true,
            "--latency" => o.latency = true,
            "--rounds" => o.rounds = num(value()?)? as usize,
            "--relay-pid" => o.relay_pid = Some(num(value()?)? as u32),
            "--raw" => raw = true,
            "--raw-listen" => {
                raw_listen = value()?
                    .parse()
                    .map_err(|_| format!("{name}: not an address like 127.0.0.1:9000"))?
            }
            "--raw-connect" => {
                raw_connect = Some(
                    value()?
                        .parse()
                        .map_err(|_| format!("{name}: not an address like 127.0.0.1:9000"))?,
                )
            }
            "--park" => o.park = Some(num(value()?)? as usize),
            "--park-side" => {
                o.park_side = match value()?.as_str() {
                    "sender" => Side::Sender,
                    "receiver" => Side::Receiver,
                    v => return Err(format!("{name}: '{v}' is not sender or receiver")),
                }
            }
            "--hold" => o.hold = Duration::from_secs(num(value()?)?),
            "--timeout" => o.timeout = Duration::from_secs(num(value()?)?.max(1)),
            "--quiet" => o.quiet = true,
            _ => return Err(format!("unknown argument '{a}' (see --help)")),
        }
    }
    if o.pipes == 0 || o.pipes > 10_000 {
        return Err("--pipes must be between 1 and 10000".into());
    }
    o.target = match (url, raw) {
        (Some(_), true) => return Err("--url and --raw exclude each other".into()),
        (Some(u), false) => parse_url(&u)?,
        (None, true) => Target::Raw {
            listen: raw_listen,
            connect: raw_connect,
        },
        (None, false) => return Err("give --url URL (or --raw); see --help".into()),
    };
    if o.park.is_some() && !matches!(o.target, Target::Http { .. }) {
        return Err("--park needs --url".into());
    }
    if (o.chunked || o.ws) && matches!(o.target, Target::Raw { .. }) {
        return Err("--chunked and --ws are for HTTP relays".into());
    }
    if o.ws && (o.chunked || o.latency || o.park.is_some()) {
        return Err("--ws goes with --size and --pipes only".into());
    }
    Ok(Some(o))
}

// ---------------------------------------------------------------------------
// The pattern.

fn pattern() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        (0..PATTERN_LEN + PERIOD)
            .map(|i| (i * 131 + 7) as u8)
            .collect()
    })
}

/// Up to `max` pattern bytes starting at stream offset `off`.
fn pattern_at(off: u64, max: u64) -> &'static [u8] {
    let start = (off % PERIOD as u64) as usize;
    let n = max.min(PATTERN_LEN as u64) as usize;
    &pattern()[start..start + n]
}

/// `data`, received at stream offset `off`, must be the pattern.
fn check(data: &[u8], off: u64) -> io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        let want = pattern_at(off + done as u64, (data.len() - done) as u64);
        if data[done..done + want.len()] != *want {
            let bad = data[done..]
                .iter()
                .zip(want)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "payload mismatch at byte {} of the stream",
                    off + (done + bad) as u64
                ),
            ));
        }
        done += want.len();
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// CPU time from /proc.

/// Clock ticks per second (`AT_CLKTCK` from the auxiliary vector; 100 if
/// unreadable, the Linux default for USER_HZ).
fn clock_ticks() -> f64 {
    const AT_CLKTCK: usize = 17;
    const W: usize = std::mem::size_of::<usize>();
    let aux = fs::read("/proc/self/auxv").unwrap_or_default();
    let word = |b: &[u8]| {
        let mut a = [0u8; W];
        a.copy_from_slice(b);
        usize::from_ne_bytes(a)
    };
    aux.chunks_exact(2 * W)
        .find(|p| word(&p[..W]) == AT_CLKTCK)
        .map(|p| word(&p[W..]))
        .filter(|&t| t > 0)
        .map_or(100.0, |t| t as f64)
}

/// User + system CPU seconds of a process, including its reaped children.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f
        .get(11..15)?
        .iter()
        .map(|v| v.parse::<i64>().unwrap_or(0).max(0) as u64)
        .sum();
    Some(ticks as f64 / clock_ticks())
}

/// The relay's CPU reading once it has settled: a forking relay's children
/// count only after they exit and are reaped, shortly after the last byte.
fn settled_cpu(pid: u32) -> Option<f64> {
    let mut last = cpu_seconds(Some(pid))?;
    for _ in 0..20 {
        thread::sleep(Duration::from_millis(100));
        let now = cpu_seconds(Some(pid))?;
        if now == last {
            break;
        }
        last = now;
    }
    Some(last)
}

// ---------------------------------------------------------------------------
// Sockets and HTTP/1.1 by hand.

const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

fn write_all_parts(s: &mut TcpStream, parts: [&[u8]; 3]) -> io::Result<()> {
    let mut parts = parts;
    while parts.iter().any(|p| !p.is_empty()) {
        let bufs = parts.map(IoSlice::new);
        let mut n = s.write_vectored(&bufs)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        for p in parts.iter_mut() {
            let k = n.min(p.len());
            *p = &p[k..];
            n -= k;
        }
    }
    Ok(())
}

/// Write `len` pattern bytes, raw or as chunks.
fn send_body(s: &mut TcpStream, len: u64, chunked: bool) -> io::Result<()> {
    let mut off = 0u64;
    while off < len {
        if chunked {
            let data = pattern_at(off, (len - off).min(CHUNK as u64));
            let head = format!("{:x}\r\n", data.len());
            write_all_parts(s, [head.as_bytes(), data, b"\r\n"])?;
            off += data.len() as u64;
        } else {
            let n = s.write(pattern_at(off, len - off))?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            off += n as u64;
        }
    }
    if chunked {
        s.write_all(b"0\r\n\r\n")?;
    }
    Ok(())
}

/// How a response body is delimited.
#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(ChunkedDecoder),
    Close,
}

/// A response head, as far as this client cares.
#[derive(Debug)]
struct RespHead {
    status: u16,
    framing: Framing,
    text: String,
}

/// Read a response head (skipping interim `1xx` heads; `101` is final);
/// returns it and the body bytes read with it.
fn read_head(s: &mut TcpStream) -> io::Result<(RespHead, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut tmp = [0u8; 16 << 10];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            let head = parse_resp_head(&buf)?;
            if (100..200).contains(&head.status) && head.status != 101 {
                buf = rest;
                continue;
            }
            return Ok((head, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::other("response head larger than 64 KiB"));
        }
        let n = s.read(&mut tmp)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed before a response head ({} bytes: {:?})",
                    buf.len(),
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn parse_resp_head(raw: &[u8]) -> io::Result<RespHead> {
    let text = String::from_utf8_lossy(raw).into_owned();
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad response head: {text:?}"),
        )
    };
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or_else(bad)?;
    let mut words = status_line.split(' ');
    if !words.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(bad());
    }
    let status: u16 = words.next().and_then(|c| c.parse().ok()).ok_or_else(bad)?;
    let mut framing = Framing::Close;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            framing = Framing::Chunked(ChunkedDecoder::new());
        } else if name.eq_ignore_ascii_case("content-length")
            && !matches!(framing, Framing::Chunked(_))
        {
            framing = Framing::Length(value.parse().map_err(|_| bad())?);
        }
    }
    Ok(RespHead {
        status,
        framing,
        text,
    })
}

/// Reads a response body through its framing into one reusable buffer and
/// hands each payload span, with its stream offset, to a sink.
struct Body {
    framing: Framing,
    buf: Vec<u8>,
    /// Undecoded bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Payload bytes delivered so far.
    offset: u64,
    done: bool,
}

type Sink<'a> = &'a mut dyn FnMut(u64, &[u8]) -> io::Result<()>;

impl Body {
    fn new(framing: Framing, early: &[u8], cap: usize) -> Body {
        let mut buf = vec![0u8; cap.max(early.len())];
        buf[..early.len()].copy_from_slice(early);
        let done = matches!(framing, Framing::Length(0));
        Body {
            framing,
            buf,
            start: 0,
            end: early.len(),
            offset: 0,
            done,
        }
    }

    /// Decode what is pending or else read once. `Ok(None)` at the end of
    /// the body; `Ok(Some(n))` after `n` payload bytes (possibly 0 when only
    /// framing arrived).
    fn step(&mut self, s: &mut TcpStream, sink: Sink<'_>) -> io::Result<Option<usize>> {
        if self.done {
            return Ok(None);
        }
        if self.start == self.end {
            let cap = match self.framing {
                Framing::Length(rem) => rem.min(self.buf.len() as u64) as usize,
                _ => self.buf.len(),
            };
            let n = s.read(&mut self.buf[..cap])?;
            if n == 0 {
                if matches!(self.framing, Framing::Close) {
                    self.done = true;
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body cut after {} payload bytes", self.offset),
                ));
            }
            self.start = 0;
            self.end = n;
        }
        let mut got = 0;
        match &mut self.framing {
            Framing::Length(rem) => {
                let n = (self.end - self.start).min(*rem as usize);
                sink(self.offset, &self.buf[self.start..self.start + n])?;
                *rem -= n as u64;
                self.done = *rem == 0;
                got = n;
                self.start = self.end;
            }
            Framing::Close => {
                got = self.end - self.start;
                sink(self.offset, &self.buf[self.start..self.end])?;
                self.start = self.end;
            }
            Framing::Chunked(dec) => {
                while self.start < self.end {
                    let input = &self.buf[self.start..self.end];
                    let d = dec
                        .decode(input)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    let data = &input[d.data.clone()];
                    sink(self.offset + got as u64, data)?;
                    got += data.len();
                    self.start += d.consumed;
                    if d.done {
                        self.done = true;
                        self.start = self.end;
                        break;
                    }
                }
            }
        }
        self.offset += got as u64;
        Ok(Some(got))
    }
}

fn http_request(method: &str, host: &str, path: &str, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: weir-bench\r\n\
         Accept: */*\r\n{extra}\r\n"
    )
}

fn receive_pattern(
    s: &mut TcpStream,
    framing: Framing,
    early: &[u8],
    progress: &AtomicU64,
) -> io::Result<u64> {
    let mut body = Body::new(framing, early, RECV_BUF);
    let mut sink = |off: u64, d: &[u8]| check(d, off);
    while let Some(n) = body.step(s, &mut sink)? {
        progress.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(body.offset)
}

fn http_receiver(
    addr: SocketAddr,
    host: &str,
    path: &str,
    len: u64,
    progress: &AtomicU64,
) -> io::Result<u64> {
    let (mut s, head, early) = get(addr, host, path, "", 200, "receiver")?;
    let got = receive_pattern(&mut s, head.framing, &early, progress)?;
    if got != len {
        return Err(io::Error::other(format!(
            "receiver {path}: got {got} bytes, expected {len}"
        )));
    }
    Ok(got)
}

/// A new connection's `GET path` (with `extra` header lines): the
/// connection, its response head and the bytes read past it; an error
/// naming `who` when the status is not `want`.
fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    extra: &str,
    want: u16,
    who: &str,
) -> io::Result<(TcpStream, RespHead, Vec<u8>)> {
    let mut s = connect(addr)?;
    s.write_all(http_request("GET", host, path, extra).as_bytes())?;
    let (head, early) = read_head(&mut s)?;
    if head.status != want {
        return Err(io::Error::other(format!(
            "{who} {path}: status {}: {}",
            head.status,
            head.text.lines().next().unwrap_or("")
        )));
    }
    Ok((s, head, early))
}

/// Read a sender's response to its end; fails on a non-200 or `[ERROR]`.
fn finish_sender(s: &mut TcpStream, path: &str) -> io::Result<()> {
    let (head, early) = read_head(s)?;
    let mut text = Vec::new();
    let mut body = Body::new(head.framing, &early, 16 << 10);
    let mut sink = |_: u64, d: &[u8]| {
        let room = KEEP_RESPONSE.saturating_sub(text.len());
        text.extend_from_slice(&d[..d.len().min(room)]);
        Ok(())
    };
    while body.step(s, &mut sink)?.is_some() {}
    let text = String::from_utf8_lossy(&text);
    if head.status != 200 || text.contains("[ERROR]") {
        return Err(io::Error::other(format!(
            "sender {path}: status {}: {}",
            head.status,
            text.trim()
        )));
    }
    Ok(())
}

fn http_sender(
    addr: SocketAddr,
    host: &str,
    path: &str,
    len: u64,
    chunked: bool,
) -> io::Result<()> {
    let mut s = connect(addr)?;
    let framing = if chunked {
        "Transfer-Encoding: chunked\r\n".to_string()
    } else {
        format!("Content-Length: {len}\r\n")
    };
    let extra = format!("Content-Type: application/octet-stream\r\n{framing}");
    s.write_all(http_request("PUT", host, path, &extra).as_bytes())?;
    send_body(&mut s, len, chunked)?;
    finish_sender(&mut s, path)
}

// ---------------------------------------------------------------------------
// WebSocket pipes (`--ws`).

/// Upgrade a new connection to a WebSocket on `path`; returns it and the
/// bytes read past the `101` head.
fn ws_upgrade(addr: SocketAddr, host: &str, path: &str) -> io::Result<(TcpStream, Vec<u8>)> {
    let extra = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    let (s, _, early) = get(addr, host, path, extra, 101, "websocket")?;
    Ok((s, early))
}

/// A client frame header (masked with the all-zero key) for `len` bytes.
fn ws_client_header(opcode: u8, len: usize) -> ([u8; 14], usize) {
    let mut h = [0u8; 14];
    h[0] = 0x80 | opcode;
    let n = if len <= 125 {
        h[1] = 0x80 | len as u8;
        2
    } else if len <= 0xffff {
        h[1] = 0x80 | 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        h[1] = 0x80 | 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    // The four key bytes that follow are zero.
    (h, n + 4)
}

/// The close frame a client sends: code 1000, masked with the zero key.
fn ws_client_close() -> Vec<u8> {
    let (h, n) = ws_client_header(0x8, 2);
    let mut f = h[..n].to_vec();
    f.extend_from_slice(&1000u16.to_be_bytes());
    f
}

fn ws_sender(addr: SocketAddr, host: &str, path: &str, len: u64) -> io::Result<()> {
    let (mut s, _) = ws_upgrade(addr, host, path)?;
    let mut off = 0u64;
    while off < len {
        let data = pattern_at(off, (len - off).min(WS_FRAME as u64));
        let (h, n) = ws_client_header(0x2, data.len());
        write_all_parts(&mut s, [&h[..n], data, &[]])?;
        off += data.len() as u64;
    }
    s.write_all(&ws_client_close())?;
    // weir answers the close once it has passed it on; the frames before
    // it are then all with the receiver's side.
    let mut sink = [0u8; 1024];
    while s.read(&mut sink)? > 0 {}
    Ok(())
}

fn ws_receiver(
    addr: SocketAddr,
    host: &str,
    path: &str,
    len: u64,
    progress: &AtomicU64,
) -> io::Result<()> {
    let (mut s, early) = ws_upgrade(addr, host, path)?;
    let mut buf = vec![0u8; RECV_BUF];
    buf[..early.len()].copy_from_slice(&early);
    let (mut start, mut end) = (0, early.len());
    let mut got = 0u64;
    // Payload bytes of the current data frame still to come.
    let mut owed = 0u64;
    loop {
        if owed > 0 && start < end {
            let n = ((end - start) as u64).min(owed) as usize;
            check(&buf[start..start + n], got)?;
            got += n as u64;
            progress.fetch_add(n as u64, Ordering::Relaxed);
            owed -= n as u64;
            start += n;
            continue;
        }
        if owed == 0 {
            if let Some((op, hl, plen)) = ws_server_header(&buf[start..end])? {
                start += hl;
                if op == 0x8 {
                    break;
                }
                if op != 0x2 && op != 0x0 {
                    return Err(io::Error::other(format!("websocket {path}: opcode {op}")));
                }
                owed = plen;
                continue;
            }
            // A partial header: move it to the front, read more.
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        } else {
            start = 0;
            end = 0;
        }
        let n = s.read(&mut buf[end..])?;
        if n == 0 {
            return Err(io::Error::other(format!(
                "websocket {path}: the connection ended after {got} bytes, without a close"
            )));
        }
        end += n;
    }
    // Answer the close, then read to weir's end of TCP (the rest of its
    // close frame included), so the connection ends cleanly, not reset.
    let _ = s.write_all(&ws_client_close());
    let mut sink = [0u8; 1024];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    if got != len {
        return Err(io::Error::other(format!(
            "websocket receiver {path}: got {got} bytes, expected {len}"
        )));
    }
    Ok(())
}

/// A server frame's opcode, header length and payload length, once the
/// whole header is in `b`.
fn ws_server_header(b: &[u8]) -> io::Result<Option<(u8, usize, u64)>> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[1] & 0x80 != 0 {
        return Err(io::Error::other("a masked frame from the server"));
    }
    let (hl, len) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (4, u16::from_be_bytes([b[2], b[3]]) as u64),
        127 if b.len() >= 10 => (10, u64::from_be_bytes(b[2..10].try_into().unwrap())),
        126 | 127 => return Ok(None),
        l => (2, l as u64),
    };
    Ok(Some((b[0] & 0x0f, hl, len)))
}

/// A name no other run uses, so that runs never meet each other's pipes.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("wb{}-{:x}", std::process::id(), nanos & 0xffff_ffff)
}

/// Accept one connection within `deadline`.
fn accept_by(l: &TcpListener, deadline: Instant) -> io::Result<TcpStream> {
    l.set_nonblocking(true)?;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no connection reached the --raw listener",
                    ));
                }
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------------------
// Runs.

/// Results of a throughput run.
#[derive(Debug)]
struct Throughput {
    bytes: u64,
    wall: Duration,
    client_cpu: Option<f64>,
    relay_cpu: Option<f64>,
}

fn describe(o: &Opts) -> String {
    let what = match &o.target {
        Target::Http { host, prefix, .. } => format!(
            "relay http://{host}{prefix} ({})",
            if o.ws {
                "websocket"
            } else if o.chunked {
                "chunked"
            } else {
                "content-length"
            }
        ),
        Target::Raw { listen, connect } => match connect {
            Some(c) => format!("raw tcp via {c} to {listen}"),
            None => "raw one-hop loopback tcp".to_string(),
        },
    };
    format!(
        "{what}, {} pipe(s) x {:.3} GiB",
        o.pipes,
        o.size as f64 / (1u64 << 30) as f64
    )
}

fn throughput(o: &Opts) -> Result<Throughput, String> {
    let progress = Arc::new(AtomicU64::new(0));
    let total = o.size * o.pipes as u64;
    let (done_tx, done_rx) = mpsc::channel::<Result<(), String>>();
    let cpu0 = cpu_seconds(None);
    let relay0 = o.relay_pid.and_then(|p| cpu_seconds(Some(p)));
    let start = Instant::now();
    let deadline = start + o.timeout;
    let len = o.size;
    let mut threads = 0;
    match &o.target {
        Target::Http { addr, host, prefix } => {
            let id = run_id();
            for i in 0..o.pipes {
                let path = format!("{prefix}{id}-{i}");
                let (addr, host, chunked, ws) = (*addr, host.clone(), o.chunked, o.ws);
                let (p, tx) = (progress.clone(), done_tx.clone());
                let (h, pa) = (host.clone(), path.clone());
                thread::spawn(move || {
                    let r = if ws {
                        ws_receiver(addr, &h, &pa, len, &p)
                    } else {
                        http_receiver(addr, &h, &pa, len, &p).map(drop)
                    };
                    let _ = tx.send(r.map_err(|e| e.to_string()));
                });
                let tx = done_tx.clone();
                thread::spawn(move || {
                    let r = if ws {
                        ws_sender(addr, &host, &path, len)
                    } else {
                        http_sender(addr, &host, &path, len, chunked)
                    };
                    let _ = tx.send(r.map_err(|e| e.to_string()));
                });
                threads += 2;
            }
        }
        Target::Raw {
            listen,
            connect: via,
        } => {
            let l = TcpListener::bind(listen).map_err(|e| format!("bind {listen}: {e}"))?;
            let local = l.local_addr().map_err(|e| e.to_string())?;
            let to = via.unwrap_or(local);
            let (p, tx, pipes) = (progress.clone(), done_tx.clone(), o.pipes);
            // One acceptor hands each connection to its own receiver thread;
            // a relay in between may connect in any order.
            thread::spawn(move || {
                for _ in 0..pipes {
                    match accept_by(&l, deadline) {
                        Ok(mut s) => {
                            let (p, tx) = (p.clone(), tx.clone());
                            thread::spawn(move || {
                                let r = receive_pattern(&mut s, Framing::Close, &[], &p).and_then(
                                    |got| {
                                        if got == len {
                                            Ok(())
                                        } else {
                                            Err(io::Error::other(format!(
                                                "raw receiver got {got} bytes, expected {len}"
                                            )))
                                        }
                                    },
                                );
                                let _ = tx.send(r.map_err(|e| e.to_string()));
                            });
                        }
                        Err(e) => {
                            let _ = tx.send(Err(format!("accept: {e}")));
                        }
                    }
                }
            });
            for _ in 0..o.pipes {
                let tx = done_tx.clone();
                thread::spawn(move || {
                    let r = (|| -> io::Result<()> {
                        let mut s = connect(to)?;
                        send_body(&mut s, len, false)?;
                        s.shutdown(Shutdown::Write)?;
                        // Wait for the far end to close, so that a relay in
                        // between has passed every byte on.
                        let mut sink = [0u8; 1024];
                        while s.read(&mut sink)? > 0 {}
                        Ok(())
                    })();
                    let _ = tx.send(r.map_err(|e| format!("raw sender: {e}")));
                });
            }
            threads += 2 * o.pipes;
        }
    }
    drop(done_tx);

    let tty = io::stderr().is_terminal();
    let mut last_print = start;
    let mut finished = 0;
    while finished < threads {
        let wait =
            Duration::from_millis(200).min(deadline.saturating_duration_since(Instant::now()));
        match done_rx.recv_timeout(wait) {
            Ok(Ok(())) => finished += 1,
            Ok(Err(e)) => return Err(e),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "timed out after {} s with {} of {} bytes received",
                        o.timeout.as_secs(),
                        progress.load(Ordering::Relaxed),
                        total
                    ));
                }
            }
        }
        if !o.quiet && last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            let got = progress.load(Ordering::Relaxed);
            let secs = start.elapsed().as_secs_f64();
            let line = format!(
                "{:8.3} / {:.3} GiB  {:5.1} s  {:6.3} GiB/s",
                got as f64 / GIB,
                total as f64 / GIB,
                secs,
                got as f64 / GIB / secs
            );
            if tty {
                eprint!("\r{line}");
            } else {
                eprintln!("{line}");
            }
        }
    }
    let wall = start.elapsed();
    if !o.quiet && tty && wall >= Duration::from_secs(1) {
        eprintln!();
    }
    let cpu1 = cpu_seconds(None);
    let relay1 = o.relay_pid.and_then(settled_cpu);
    Ok(Throughput {
        bytes: progress.load(Ordering::Relaxed),
        wall,
        client_cpu: cpu0.zip(cpu1).map(|(a, b)| b - a),
        relay_cpu: relay0.zip(relay1).map(|(a, b)| b - a),
    })
}

const GIB: f64 = (1u64 << 30) as f64;

/// Time `rounds` one-byte crossings on one pipe: the sender writes one byte
/// (a one-byte chunk through an HTTP relay) and the same thread then blocks
/// until the receiver has read it.
fn latency(o: &Opts) -> Result<Vec<Duration>, String> {
    let deadline = Instant::now() + o.timeout;
    let total = LATENCY_WARMUP + o.rounds;
    let e = |what: &str| {
        let what = what.to_string();
        move |err: io::Error| format!("latency {what}: {err}")
    };
    let mut times = Vec::with_capacity(o.rounds);
    match &o.target {
        Target::Http { addr, host, prefix } => {
            let path = format!("{prefix}{}-latency", run_id());
            let mut r = connect(*addr).map_err(e("connect"))?;
            r.write_all(http_request("GET", host, &path, "").as_bytes())
                .map_err(e("receiver"))?;
            let mut s = connect(*addr).map_err(e("connect"))?;
            let extra = "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n";
            s.write_all(http_request("PUT", host, &path, extra).as_bytes())
                .map_err(e("sender"))?;
            let (head, early) = read_head(&mut r).map_err(e("receiver head"))?;
            if head.status != 200 {
                return Err(format!("latency receiver: status {}", head.status));
            }
            let mut body = Body::new(head.framing, &early, 64 << 10);
            let mut sink = |off: u64, d: &[u8]| check(d, off);
            for k in 0..total {
                if Instant::now() >= deadline {
                    return Err("latency run passed --timeout".into());
                }
                let byte = pattern_at(k as u64, 1);
                let t0 = Instant::now();
                write_all_parts(&mut s, [b"1\r\n", byte, b"\r\n"]).map_err(e("send"))?;
                let mut got = 0;
                while got == 0 {
                    match body.step(&mut r, &mut sink).map_err(e("receive"))? {
                        Some(n) => got += n,
                        None => return Err("latency: body ended early".into()),
                    }
                }
                if k >= LATENCY_WARMUP {
                    times.push(t0.elapsed());
                }
            }
            s.write_all(b"0\r\n\r\n").map_err(e("send"))?;
            while body
                .step(&mut r, &mut sink)
                .map_err(e("receive"))?
                .is_some()
            {}
            finish_sender(&mut s, &path).map_err(e("sender"))?;
        }
        Target::Raw {
            listen,
            connect: via,
        } => {
            let l = TcpListener::bind(listen).map_err(|err| format!("bind {listen}: {err}"))?;
            let to = match via {
                Some(a) => *a,
                None => l.local_addr().map_err(e("listener"))?,
            };
            let mut s = connect(to).map_err(e("connect"))?;
            let mut r = accept_by(&l, deadline).map_err(e("accept"))?;
            let mut buf = [0u8; 64];
            for k in 0..total {
                let byte = pattern_at(k as u64, 1);
                let t0 = Instant::now();
                s.write_all(byte).map_err(e("send"))?;
                let n = r.read(&mut buf).map_err(e("receive"))?;
                if n != 1 {
                    return Err(format!("latency: read {n} bytes, expected 1"));
                }
                check(&buf[..1], k as u64).map_err(e("receive"))?;
                if k >= LATENCY_WARMUP {
                    times.push(t0.elapsed());
                }
            }
        }
    }
    times.sort();
    Ok(times)
}

fn percentile(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e6
}

// ---------------------------------------------------------------------------
// Parking.

/// Read `weir_pipes{state="waiting"}` from the relay's `/metrics`, if any.
fn waiting_pipes(addr: SocketAddr, host: &str) -> Option<f64> {
    let mut s = connect(addr).ok()?;
    s.write_all(http_request("GET", host, "/metrics", "Connection: close\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("weir_pipes{state=\"waiting\"} "))
        .and_then(|v| v.trim().parse().ok())
}

fn park(o: &Opts, n: usize) -> Result<(), String> {
    let Target::Http { addr, host, prefix } = &o.target else {
        return Err("--park needs --url".into());
    };
    let before = waiting_pipes(*addr, host).unwrap_or(0.0);
    let id = run_id();
    let mut held = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let path = format!("{prefix}{id}-park-{i}");
        let head = match o.park_side {
            // The body is never sent: a parked sender's body waits in the
            // client, held back by TCP flow control.
            Side::Sender => http_request(
                "PUT",
                host,
                &path,
                "Content-Type: application/octet-stream\r\nContent-Length: 1048576\r\n",
            ),
            Side::Receiver => http_request("GET", host, &path, ""),
        };
        let mut s = TcpStream::connect(addr).map_err(|err| {
            format!("connection {i}: {err} (raise the open-file limit with `ulimit -n`)")
        })?;
        s.write_all(head.as_bytes())
            .map_err(|err| format!("connection {i}: {err}"))?;
        held.push(s);
    }
    // Ready when the relay says so, or after a pause for relays that do not.
    let deadline = Instant::now() + o.timeout.min(Duration::from_secs(120));
    let mut confirmed = false;
    loop {
        match waiting_pipes(*addr, host) {
            Some(w) if w >= before + n as f64 => {
                confirmed = true;
                break;
            }
            Some(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            Some(w) => {
                return Err(format!(
                    "only {} of {n} parked clients registered as waiting",
                    w - before
                ))
            }
            None => {
                thread::sleep(Duration::from_secs(2));
                break;
            }
        }
    }
    println!(
        "ready {n} {} parked in {:.2} s{}",
        if o.park_side == Side::Sender {
            "senders"
        } else {
            "receivers"
        },
        started.elapsed().as_secs_f64(),
        if confirmed {
            " (confirmed by /metrics)"
        } else {
            ""
        }
    );
    let _ = io::stdout().flush();
    thread::sleep(o.hold);
    drop(held);
    Ok(())
}

fn run(o: &Opts) -> Result<(), String> {
    if let Some(n) = o.park {
        return park(o, n);
    }
    println!("# weir-bench: {}", describe(o));
    if o.size > 0 {
        let t = throughput(o)?;
        let gib = t.bytes as f64 / GIB;
        let secs = t.wall.as_secs_f64();
        println!("bytes                {}", t.bytes);
        println!("wall_s               {secs:.4}");
        println!("gib_per_s            {:.3}", gib / secs);
        if let Some(c) = t.client_cpu {
            println!("client_cpu_s         {c:.3}");
            println!("client_cpu_s_per_gib {:.3}", c / gib);
        }
        if let Some(c) = t.relay_cpu {
            println!("relay_cpu_s          {c:.3}");
            println!("relay_cpu_s_per_gib  {:.3}", c / gib);
        }
    }
    if o.latency {
        let times = latency(o)?;
        println!("latency_rounds       {}", times.len());
        println!("latency_p50_us       {:.1}", percentile(&times, 50));
        println!("latency_p99_us       {:.1}", percentile(&times, 99));
        println!("latency_max_us       {:.1}", percentile(&times, 100));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("weir-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("100K"), Ok(100 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn urls() {
        match parse_url("http://127.0.0.1:8080/a/b").unwrap() {
            Target::Http { addr, host, prefix } => {
                assert_eq!(addr, SocketAddr::from(([127, 0, 0, 1], 8080)));
                assert_eq!(host, "127.0.0.1:8080");
                assert_eq!(prefix, "/a/b/");
            }
            t => panic!("{t:?}"),
        }
        match parse_url("http://127.0.0.1:9").unwrap() {
            Target::Http { prefix, .. } => assert_eq!(prefix, "/"),
            t => panic!("{t:?}"),
        }
        assert!(parse_url("https://127.0.0.1/").is_err());
    }

    #[test]
    fn pattern_checks_at_any_offset() {
        let data: Vec<u8> = (1000..1000 + 3 * PATTERN_LEN as u64)
            .map(|i| (i * 131 + 7) as u8)
            .collect();
        check(&data, 1000).unwrap();
        assert!(check(&data, 1001).is_err());
        let mut bad = data.clone();
        bad[PATTERN_LEN + 5] ^= 1;
        let err = check(&bad, 1000).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{}", 1000 + PATTERN_LEN + 5)),
            "{err}"
        );
    }

    #[test]
    fn response_framing() {
        let h = parse_resp_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert!(matches!(h.framing, Framing::Length(5)));
        let h = parse_resp_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").unwrap();
        assert!(matches!(h.framing, Framing::Chunked(_)));
        let h = parse_resp_head(b"HTTP/1.0 404 Not Found\r\n\r\n").unwrap();
        assert_eq!(h.status, 404);
        assert!(matches!(h.framing, Framing::Close));
    }

    #[test]
    fn cpu_time_is_readable() {
        assert!(cpu_seconds(None).is_some_and(|c| c >= 0.0));
        assert!(clock_ticks() > 0.0);
    }
}
