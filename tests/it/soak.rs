//! Soak: many pipes at once, with random sizes, framings, chunkings, read
//! and write splits, arrival orders, and clients that vanish at random
//! byte offsets. Bounded in time and count; seeded (`WEIR_SEED` replays).
//!
//! After a round:
//! - every complete transfer's bytes are identical (FNV hash) and its
//!   sender's last line is `[INFO] Sent successfully! (N bytes)`;
//! - every cut transfer was seen as cut by its receiver (short of its
//!   `Content-Length`, no final chunk, or a reset when close-delimited),
//!   the bytes it did get are a prefix of the body, and a sender that is
//!   still there got an `[ERROR]` last line;
//! - `/metrics` counts exactly those outcomes, and nothing is left open;
//! - against the real binary, its resident set is back near idle.
//!
//! The CI form (`soak_ci`, `soak_rss_back_near_idle`) runs in seconds. The
//! long form (`soak_long`, ignored by default) is described in
//! `docs/soak.md`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{http::*, net::*, payload::*, pipe::*, relay::*, seed::*, DEADLINE};

/// How a sender frames its body.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    /// HTTP/1.1 with `Content-Length`.
    Length,
    /// HTTP/1.1 chunked, chunks of 1..=`max_chunk` bytes.
    Chunked { max_chunk: usize },
    /// HTTP/1.0 without a length: the body ends at the half-close.
    UntilClose,
}

/// What happens to a pipe.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    /// Both stay to the end.
    Complete,
    /// The sender vanishes after `at` body bytes, once the transfer runs.
    SenderVanishes { at: u64, abort: bool },
    /// The receiver vanishes after reading `at` body bytes; the sender
    /// holds back the last byte(s) so that the body cannot complete.
    ReceiverVanishes { at: u64, abort: bool },
    /// Only a sender, which leaves while parked.
    SenderAbandons,
    /// Only receivers: two arrive, one is refused `409` (proving that the
    /// other is parked), and the parked one leaves.
    ReceiverAbandons,
}

#[derive(Clone, Debug)]
struct Plan {
    id: usize,
    path: String,
    size: u64,
    seed: u64,
    framing: Framing,
    expect_continue: bool,
    /// The sender writes its body before the transfer starts (TCP flow
    /// control holds it), rather than after `Start sending`.
    eager: bool,
    receiver_http10: bool,
    sender_first: bool,
    fate: Fate,
}

impl Plan {
    fn random(id: usize, rng: &mut Rng, max_size: u64) -> Plan {
        let size = if rng.chance(50) {
            rng.size(max_size)
        } else {
            rng.range(0, max_size)
        };
        let framing = match rng.below(3) {
            0 => Framing::Length,
            1 => Framing::Chunked {
                max_chunk: [1, 16, 1000, 4096, 65536][rng.below(5)],
            },
            _ => Framing::UntilClose,
        };
        let fate = match rng.below(100) {
            _ if size == 0 => Fate::Complete,
            0..=8 => Fate::SenderVanishes {
                at: rng.range(0, size - 1),
                // A FIN from an HTTP/1.0 sender is the end of its body.
                abort: framing == Framing::UntilClose || rng.chance(50),
            },
            9..=17 => Fate::ReceiverVanishes {
                at: rng.range(0, size - 1),
                abort: rng.chance(50),
            },
            18..=19 => Fate::SenderAbandons,
            20..=21 => Fate::ReceiverAbandons,
            _ => Fate::Complete,
        };
        Plan {
            id,
            path: format!("/soak-{id}-{:x}", rng.next_u64() & 0xffff),
            size,
            seed: rng.next_u64(),
            framing,
            expect_continue: framing != Framing::UntilClose && rng.chance(20),
            eager: rng.chance(50),
            receiver_http10: rng.chance(25),
            sender_first: rng.chance(50),
            fate,
        }
    }
}

/// How a receiver's response ended.
#[derive(Debug, Default)]
struct Received {
    /// Decoded body bytes and their hash.
    bytes: u64,
    hash: u64,
    /// The body's own framing says it is whole (full length, final chunk,
    /// or a clean close for a close-delimited body).
    complete: bool,
    reset: bool,
    /// The receiver left on purpose.
    vanished: bool,
    framing: &'static str,
}

#[derive(Debug, Default)]
struct Sent {
    /// The last line of the sender's progress response, if it stayed.
    last_line: Option<String>,
    /// Body bytes written.
    written: u64,
}

#[derive(Debug)]
struct Outcome {
    plan: Plan,
    sent: Option<Sent>,
    received: Option<Received>,
}

/// Counts a round must leave in `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    complete: u64,
    cut: u64,
    abandoned: u64,
    refused_409: u64,
    bytes: u64,
}

// --- Clients -------------------------------------------------------------------

/// Decodes a chunked body as it arrives (a test-side decoder, independent
/// of the relay's).
#[derive(Debug, Default)]
struct Dechunker {
    buf: Vec<u8>,
    /// Payload bytes still owed by the current chunk, then its CRLF.
    in_chunk: Option<u64>,
    done: bool,
}

impl Dechunker {
    /// Feed wire bytes; payload goes to `out`.
    fn feed(&mut self, wire: &[u8], out: &mut dyn FnMut(&[u8])) {
        self.buf.extend_from_slice(wire);
        let mut pos = 0;
        loop {
            if self.done {
                break;
            }
            match self.in_chunk {
                Some(0) => {
                    if self.buf.len() - pos < 2 {
                        break;
                    }
                    assert_eq!(&self.buf[pos..pos + 2], b"\r\n", "chunk not ended by CRLF");
                    pos += 2;
                    self.in_chunk = None;
                }
                Some(n) => {
                    let avail = (self.buf.len() - pos) as u64;
                    if avail == 0 {
                        break;
                    }
                    let take = n.min(avail) as usize;
                    out(&self.buf[pos..pos + take]);
                    pos += take;
                    self.in_chunk = Some(n - take as u64);
                }
                None => {
                    let Some(nl) = self.buf[pos..].windows(2).position(|w| w == b"\r\n") else {
                        break;
                    };
                    let line = std::str::from_utf8(&self.buf[pos..pos + nl]).unwrap();
                    let size = u64::from_str_radix(line.split(';').next().unwrap(), 16)
                        .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                    pos += nl + 2;
                    if size == 0 {
                        // The relay sends no trailers: the final CRLF follows.
                        if self.buf.len() - pos < 2 {
                            pos -= nl + 2;
                            break;
                        }
                        assert_eq!(&self.buf[pos..pos + 2], b"\r\n");
                        pos += 2;
                        self.done = true;
                    } else {
                        self.in_chunk = Some(size);
                    }
                }
            }
        }
        self.buf.drain(..pos);
    }
}

fn receiver_request(plan: &Plan) -> String {
    if plan.receiver_http10 {
        format!("GET {} HTTP/1.0\r\n\r\n", plan.path)
    } else {
        format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", plan.path)
    }
}

/// A receiver: reads the response with random read sizes, decoding the
/// body, and vanishes at `vanish_at` body bytes if given.
fn run_receiver(addr: SocketAddr, plan: &Plan, mut rng: Rng) -> Received {
    let (vanish_at, abort) = match plan.fate {
        Fate::ReceiverVanishes { at, abort } => (Some(at), abort),
        _ => (None, false),
    };
    let mut s = connect(addr);
    s.write_all(receiver_request(plan).as_bytes()).unwrap();
    let head = read_head(&mut s);
    let mut got = Received::default();
    assert_eq!(head.status, 200, "pipe {}: receiver status", plan.id);
    let length: Option<u64> = head.header("Content-Length").map(|v| v.parse().unwrap());
    let chunked = head.header("Transfer-Encoding") == Some("chunked");
    got.framing = match (length, chunked) {
        (Some(_), _) => "length",
        (None, true) => "chunked",
        (None, false) => "close",
    };
    let mut fnv = Fnv::default();
    let mut bytes = 0u64;
    let mut dechunker = Dechunker::default();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(at) = vanish_at {
            if bytes >= at {
                got.vanished = true;
                if abort {
                    reset(s);
                } else {
                    let _ = s.shutdown(Shutdown::Both);
                }
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "pipe {}: receiver deadline after {bytes} bytes",
            plan.id
        );
        let want = 1 + rng.below(buf.len());
        match s.read(&mut buf[..want]) {
            Ok(0) => {
                got.complete = match (length, chunked) {
                    (Some(l), _) => bytes == l,
                    (None, true) => dechunker.done,
                    (None, false) => true,
                };
                break;
            }
            Ok(n) => {
                let wire = &buf[..n];
                if chunked && length.is_none() {
                    dechunker.feed(wire, &mut |d| {
                        fnv.update(d);
                        bytes += d.len() as u64;
                    });
                } else {
                    fnv.update(wire);
                    bytes += n as u64;
                    if let Some(l) = length {
                        assert!(bytes <= l, "pipe {}: more than Content-Length", plan.id);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                panic!(
                    "pipe {}: receiver read timed out after {bytes} bytes",
                    plan.id
                )
            }
            Err(_) => {
                got.reset = true;
                break;
            }
        }
    }
    got.bytes = bytes;
    got.hash = fnv.finish();
    got
}

/// Writes `data` in random pieces; false once the relay stops taking it.
fn write_split(s: &mut TcpStream, data: &[u8], rng: &mut Rng) -> bool {
    let mut off = 0;
    while off < data.len() {
        let n = (1 + rng.below(data.len() - off)).min(data.len() - off);
        if s.write_all(&data[off..off + n]).is_err() {
            return false;
        }
        off += n;
    }
    true
}

/// Writes a plan's body in its framing, in pieces: chunk boundaries and
/// write splits are random, and independent of each other.
struct BodyWriter {
    gen: PatternStream,
    framing: Framing,
    /// The largest chunk: at least 1/2048 of the body, so that a big body
    /// is not sent one byte per chunk.
    max_chunk: usize,
    /// Payload still owed by the chunk whose header was written.
    chunk_left: u64,
    buf: Vec<u8>,
}

impl BodyWriter {
    fn new(plan: &Plan) -> BodyWriter {
        let max_chunk = match plan.framing {
            Framing::Chunked { max_chunk } => max_chunk.max((plan.size / 2048) as usize),
            _ => 0,
        };
        BodyWriter {
            gen: PatternStream::new(plan.seed),
            framing: plan.framing,
            max_chunk,
            chunk_left: 0,
            buf: Vec::with_capacity(80 << 10),
        }
    }

    /// Write the next `n` body bytes of `total_left`; false once the relay
    /// stops taking them.
    fn write(&mut self, s: &mut TcpStream, mut n: u64, total_left: u64, rng: &mut Rng) -> bool {
        let mut total_left = total_left;
        let chunked = matches!(self.framing, Framing::Chunked { .. });
        while n > 0 {
            self.buf.clear();
            // Gather up to 64 KiB of wire bytes (several small chunks, or a
            // part of a large one), then write them in random splits.
            while n > 0 && self.buf.len() < 64 << 10 {
                if chunked && self.chunk_left == 0 {
                    let size = (1 + rng.below(self.max_chunk) as u64).min(total_left);
                    let ext = if rng.chance(10) { ";soak=1" } else { "" };
                    self.buf
                        .extend_from_slice(format!("{size:x}{ext}\r\n").as_bytes());
                    self.chunk_left = size;
                }
                let room = (64usize << 10).saturating_sub(self.buf.len()).max(1) as u64;
                let mut take = n.min(room) as usize;
                if chunked {
                    take = take.min(self.chunk_left as usize);
                }
                let at = self.buf.len();
                self.buf.resize(at + take, 0);
                self.gen.fill(&mut self.buf[at..]);
                n -= take as u64;
                total_left -= take as u64;
                if chunked {
                    self.chunk_left -= take as u64;
                    if self.chunk_left == 0 {
                        self.buf.extend_from_slice(b"\r\n");
                    }
                }
            }
            let wire = std::mem::take(&mut self.buf);
            let ok = write_split(s, &wire, rng);
            self.buf = wire;
            if !ok {
                return false;
            }
        }
        true
    }

    fn finish(&mut self, s: &mut TcpStream, rng: &mut Rng) -> bool {
        match self.framing {
            Framing::Chunked { .. } => {
                let end: &[u8] = if rng.chance(20) {
                    b"0\r\nX-Soak-Trailer: 1\r\n\r\n"
                } else {
                    b"0\r\n\r\n"
                };
                write_split(s, end, rng)
            }
            Framing::UntilClose => s.shutdown(Shutdown::Write).is_ok(),
            Framing::Length => true,
        }
    }
}

fn sender_head(plan: &Plan) -> String {
    let expect = if plan.expect_continue {
        "Expect: 100-continue\r\n"
    } else {
        ""
    };
    match plan.framing {
        Framing::Length => format!(
            "PUT {} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n{expect}\r\n",
            plan.path, plan.size
        ),
        Framing::Chunked { .. } => format!(
            "PUT {} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n{expect}\r\n",
            plan.path
        ),
        Framing::UntilClose => format!("PUT {} HTTP/1.0\r\n\r\n", plan.path),
    }
}

/// A sender. `arrived` is signalled once the relay has taken its head (its
/// first progress line came).
fn run_sender(addr: SocketAddr, plan: &Plan, mut rng: Rng, arrived: mpsc::Sender<()>) -> Sent {
    let mut rec = Recorded::new(connect(addr));
    rec.write_all(sender_head(plan).as_bytes()).unwrap();
    rec.wait_for("receiver(s)");
    let _ = arrived.send(());
    let mut sent = Sent::default();
    let mut body = BodyWriter::new(plan);
    match plan.fate {
        Fate::SenderAbandons => {
            // Its first line said it waits: it is parked. Now it leaves.
            reset(rec.sock);
            return sent;
        }
        Fate::SenderVanishes { at, abort } => {
            if !plan.eager {
                rec.wait_for("[INFO] Start sending to 1 receiver(s)!");
            }
            if body.write(&mut rec.sock, at, plan.size, &mut rng) {
                sent.written = at;
            }
            if plan.eager {
                // Vanish only once the transfer runs: a sender that leaves
                // while parked is an abandon, not a cut.
                rec.wait_for("[INFO] Start sending to 1 receiver(s)!");
            }
            if abort {
                reset(rec.sock);
            } else {
                let _ = rec.sock.shutdown(Shutdown::Both);
            }
            return sent;
        }
        _ => {}
    }
    let stop_at = match plan.fate {
        // Hold back at least one byte, so that the body cannot complete
        // and the relay has to notice the receiver leaving.
        Fate::ReceiverVanishes { at, .. } => (at + rng.range(0, 32 << 10)).min(plan.size - 1),
        _ => plan.size,
    };
    if !plan.eager {
        rec.wait_for("[INFO] Start sending to 1 receiver(s)!");
    }
    let mut ok = body.write(&mut rec.sock, stop_at, plan.size, &mut rng);
    if ok && stop_at == plan.size {
        ok = body.finish(&mut rec.sock, &mut rng);
    }
    if ok {
        sent.written = stop_at;
    }
    let r = rec.finish_lossy();
    assert_eq!(r.status, 200, "pipe {}: sender status", plan.id);
    sent.last_line = lines(&r).last().cloned();
    sent
}

/// The abandoning receivers: two GETs on one path; the one refused `409`
/// proves the other is parked, which then leaves.
fn run_abandoning_receivers(addr: SocketAddr, plan: &Plan) {
    let mut a = connect(addr);
    a.write_all(receiver_request(plan).as_bytes()).unwrap();
    let mut b = connect(addr);
    b.write_all(receiver_request(plan).as_bytes()).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut parked = None;
    // Whichever answers is the refused one; bounded polls of both.
    while parked.is_none() {
        assert!(Instant::now() < deadline, "pipe {}: no 409", plan.id);
        for (me, other) in [(0, 1), (1, 0)] {
            let s = if me == 0 { &mut a } else { &mut b };
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let mut byte = [0u8; 1];
            if let Ok(1) = s.peek(&mut byte) {
                s.set_read_timeout(Some(DEADLINE)).unwrap();
                let r = parse_response(&read_to_end(s));
                assert_error(&r, 409);
                parked = Some(other);
                break;
            }
        }
    }
    let parked = if parked == Some(0) { a } else { b };
    reset(parked);
}

/// Run one pipe to its end.
fn run_pipe(addr: SocketAddr, plan: Plan, mut rng: Rng) -> Outcome {
    match plan.fate {
        Fate::ReceiverAbandons => {
            run_abandoning_receivers(addr, &plan);
            return Outcome {
                plan,
                sent: None,
                received: None,
            };
        }
        Fate::SenderAbandons => {
            let (tx, _rx) = mpsc::channel();
            let sent = run_sender(addr, &plan, rng, tx);
            return Outcome {
                plan,
                sent: Some(sent),
                received: None,
            };
        }
        _ => {}
    }
    let (srng, rrng) = (Rng::new(rng.next_u64()), Rng::new(rng.next_u64()));
    let (tx, rx) = mpsc::channel();
    let (sent, received) = if plan.sender_first {
        let p = plan.clone();
        let sender = thread::spawn(move || run_sender(addr, &p, srng, tx));
        // The receiver comes once the sender is parked (or has failed).
        let _ = rx.recv_timeout(DEADLINE);
        let received = run_receiver(addr, &plan, rrng);
        (sender.join(), received)
    } else {
        let p = plan.clone();
        let receiver = thread::spawn(move || run_receiver(addr, &p, rrng));
        let sent = run_sender(addr, &plan, srng, tx);
        let received = match receiver.join() {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e),
        };
        (Ok(sent), received)
    };
    let sent = match sent {
        Ok(s) => s,
        Err(e) => std::panic::resume_unwind(e),
    };
    Outcome {
        plan,
        sent: Some(sent),
        received: Some(received),
    }
}

// --- A round -------------------------------------------------------------------

fn pattern_hash(seed: u64, len: u64) -> u64 {
    let mut gen = PatternStream::new(seed);
    let mut fnv = Fnv::default();
    let mut buf = vec![0u8; 65536];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        gen.fill(&mut buf[..n]);
        fnv.update(&buf[..n]);
        left -= n as u64;
    }
    fnv.finish()
}

/// Check one pipe against its fate; returns what `/metrics` should count.
fn check(o: &Outcome, tally: &mut Tally) {
    let p = &o.plan;
    let ctx = format!("pipe {} {:?}", p.id, p);
    match p.fate {
        Fate::Complete => {
            let r = o.received.as_ref().unwrap();
            let s = o.sent.as_ref().unwrap();
            assert!(r.complete && !r.reset, "{ctx}: not complete: {r:?}");
            assert_eq!(r.bytes, p.size, "{ctx}: {r:?}");
            assert_eq!(r.hash, pattern_hash(p.seed, p.size), "{ctx}: bytes differ");
            assert_eq!(
                s.last_line.as_deref(),
                Some(format!("[INFO] Sent successfully! ({} bytes)", p.size).as_str()),
                "{ctx}"
            );
            tally.complete += 1;
            tally.bytes += p.size;
        }
        Fate::SenderVanishes { at, .. } => {
            let r = o.received.as_ref().unwrap();
            assert!(
                !r.complete,
                "{ctx}: a cut looked complete to its receiver: {r:?}"
            );
            if r.framing == "close" {
                assert!(
                    r.reset,
                    "{ctx}: a close-delimited cut must be a reset: {r:?}"
                );
            }
            assert!(r.bytes <= at, "{ctx}: more than was sent: {r:?}");
            assert_eq!(r.hash, pattern_hash(p.seed, r.bytes), "{ctx}: not a prefix");
            tally.cut += 1;
        }
        Fate::ReceiverVanishes { at, .. } => {
            let r = o.received.as_ref().unwrap();
            let s = o.sent.as_ref().unwrap();
            assert!(r.vanished && r.bytes >= at, "{ctx}: {r:?}");
            assert_eq!(r.hash, pattern_hash(p.seed, r.bytes), "{ctx}: not a prefix");
            let last = s.last_line.as_deref().unwrap_or("");
            assert!(
                last.starts_with("[ERROR] All receivers left"),
                "{ctx}: the sender was not told: {last:?} ({s:?})"
            );
            tally.cut += 1;
        }
        Fate::SenderAbandons => tally.abandoned += 1,
        Fate::ReceiverAbandons => {
            tally.abandoned += 1;
            tally.refused_409 += 1;
        }
    }
}

fn wait_idle(addr: SocketAddr) {
    wait_metric(addr, "weir_connections", 0.0);
    wait_metric(addr, "weir_pipes{state=\"waiting\"}", 0.0);
    wait_metric(addr, "weir_pipes{state=\"streaming\"}", 0.0);
}

fn outcome_counts(addr: SocketAddr) -> [f64; 5] {
    let m = metrics(addr);
    let get = |k: &str| {
        m.get(&format!("weir_transfers_total{{outcome=\"{k}\"}}"))
            .copied()
            .unwrap_or(f64::NAN)
    };
    [
        get("complete"),
        get("cut"),
        get("abandoned"),
        get("rejected"),
        get("timeout"),
    ]
}

/// One round of `pipes` concurrent pipes against the relay at `addr`.
fn round(addr: SocketAddr, pipes: usize, max_size: u64, seed: u64) -> Tally {
    let started = Instant::now();
    let before = outcome_counts(addr);
    let mut rng = Rng::new(seed);
    let plans: Vec<Plan> = (0..pipes)
        .map(|i| Plan::random(i, &mut rng, max_size))
        .collect();
    let handles: Vec<_> = plans
        .into_iter()
        .map(|plan| {
            let prng = Rng::new(rng.next_u64());
            let name = format!("pipe-{}", plan.id);
            thread::Builder::new()
                .name(name)
                .spawn(move || run_pipe(addr, plan, prng))
                .unwrap()
        })
        .collect();
    let mut tally = Tally::default();
    let mut outcomes = Vec::new();
    for h in handles {
        match h.join() {
            Ok(o) => outcomes.push(o),
            Err(e) => std::panic::resume_unwind(e),
        }
    }
    for o in &outcomes {
        check(o, &mut tally);
    }
    wait_idle(addr);
    let after = outcome_counts(addr);
    let delta: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let want = [
        tally.complete as f64,
        tally.cut as f64,
        tally.abandoned as f64,
        tally.refused_409 as f64,
        0.0,
    ];
    assert_eq!(
        delta, want,
        "metrics [complete, cut, abandoned, rejected, timeout] moved by {delta:?}, expected {want:?}"
    );
    eprintln!(
        "soak round: {pipes} pipes, {} complete ({} MiB), {} cut, {} abandoned in {:?}",
        tally.complete,
        tally.bytes >> 20,
        tally.cut,
        tally.abandoned,
        started.elapsed()
    );
    tally
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The seed for the test `name`, printed now, and again with how to
/// replay it if the test fails.
fn seeded(name: &'static str) -> (u64, SeedReport) {
    let seed = test_seed();
    eprintln!("{name}: seed {seed} (replay with WEIR_SEED={seed})");
    (seed, SeedReport { name, seed })
}

// --- Tests -----------------------------------------------------------------------

const CI_PIPES: usize = 60;
const CI_MAX_SIZE: u64 = 2 << 20;

#[test]
fn soak_ci() {
    let (seed, _report) = seeded("soak::soak_ci");
    let started = Instant::now();
    // Senders here pace themselves on their progress lines, with or
    // without `Expect`: live lines for all (the pipes tests cover the
    // held response).
    let relay = Relay::with(|c| c.sender_progress = weir::config::SenderProgress::Live);
    round(relay.addr, CI_PIPES, CI_MAX_SIZE, seed);
    assert_serves(relay.addr);
    relay.assert_idle();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the CI form must stay short: {:?}",
        started.elapsed()
    );
}

#[test]
fn soak_rss_back_near_idle() {
    /// What the relay may keep after a round: spare rings, grown tables.
    const SLACK_KIB: u64 = 4096;
    let (seed, _report) = seeded("soak::soak_rss_back_near_idle");
    let weir = Binary::start(&["--sender-progress", "live"]);
    assert_serves(weir.addr);
    let idle = weir.rss_kib();
    round(weir.addr, CI_PIPES, CI_MAX_SIZE, seed);
    let after = weir.rss_kib();
    eprintln!("RSS idle {idle} KiB, after the round {after} KiB");
    assert!(
        after <= idle + SLACK_KIB,
        "RSS grew from {idle} KiB to {after} KiB"
    );
}

/// The long form: `WEIR_SOAK_PIPES` pipes at once, rounds until
/// `WEIR_SOAK_SECS` have passed, against the real binary. See docs/soak.md.
#[test]
#[ignore = "long; run with --ignored (docs/soak.md)"]
fn soak_long() {
    let pipes = env_or("WEIR_SOAK_PIPES", 200) as usize;
    let secs = env_or("WEIR_SOAK_SECS", 300);
    let max_size = env_or("WEIR_SOAK_MAX_BYTES", 8 << 20);
    let (seed, _report) = seeded("soak::soak_long");
    // No per-address cap: every client of the soak comes from 127.0.0.1.
    let weir = Binary::start(&["--max-parked-per-ip", "0", "--sender-progress", "live"]);
    assert_serves(weir.addr);
    let idle = weir.rss_kib();
    let mut rng = Rng::new(seed);
    let until = Instant::now() + Duration::from_secs(secs);
    let mut rounds = 0u64;
    let mut total = Tally::default();
    let mut first_round_rss = None;
    // Bounded: at least two rounds, then as many as fit in the time.
    while rounds < 2 || Instant::now() < until {
        let round_seed = rng.next_u64();
        eprintln!("round {rounds}: seed {round_seed}");
        let t = round(weir.addr, pipes, max_size, round_seed);
        total.complete += t.complete;
        total.cut += t.cut;
        total.abandoned += t.abandoned;
        total.bytes += t.bytes;
        rounds += 1;
        let rss = weir.rss_kib();
        first_round_rss.get_or_insert(rss);
        eprintln!("RSS {rss} KiB (idle {idle} KiB)");
    }
    let after = weir.rss_kib();
    let first = first_round_rss.unwrap();
    eprintln!(
        "{rounds} rounds: {} complete ({} MiB), {} cut, {} abandoned; \
         RSS idle {idle} KiB, after round 1 {first} KiB, at the end {after} KiB",
        total.complete,
        total.bytes >> 20,
        total.cut,
        total.abandoned
    );
    // No leak: what the first round left is all that stays, however many
    // rounds follow. (The allocator may keep its high-water mark: with
    // many pipes at once, freed rings in the middle of the heap stay
    // resident.)
    assert!(
        after <= first + 2048,
        "RSS kept growing: {first} KiB after one round, {after} KiB after {rounds}"
    );
    // And never more than every ring of the busiest moment, plus slack.
    let rings_kib = (pipes as u64) * 64;
    assert!(
        after <= idle + 4096 + rings_kib,
        "RSS grew from {idle} KiB to {after} KiB"
    );
}
