//! A seeded simulation of weir's sans-io core, with a virtual clock.
//!
//! Simulated senders make random bodies, framed at random (`Content-Length`
//! or chunked with random chunk sizes, extensions and trailers; raw or
//! `multipart/form-data` with near-miss delimiters in the payload). Their
//! wire bytes are fed in random splits through
//! [`weir::http::chunked::ChunkedDecoder`] and
//! [`weir::http::multipart::MultipartScanner`] into a [`weir::ring::Ring`]
//! of random capacity, from which several simulated receivers (each with
//! its own cursor) drain at random rates through sockets that accept random
//! partial writes, raw or through [`weir::http::chunked::ChunkEncoder`].
//! What each receiver got is decoded again and compared with the payload.
//!
//! Time is virtual: a [`weir::timer::TimerWheel`] of random tick and size
//! holds each waiting party's TTL and each running transfer's stall
//! deadline, while the clock advances by random steps (from nothing to
//! several wheel revolutions). Every expiry is checked against a model:
//! never early, never late, and nothing due is left behind.
//!
//! The pairing table itself lives inside the server (`src/pipe.rs`: it
//! owns sockets and is not sans-io), so it is not driven here; this file
//! keeps a minimal stand-in (first party parks under its TTL, the second
//! pairs with it) only to give the timers realistic work.
//!
//! Every case is seeded. A failure prints its seed; `WEIR_SEED=<seed>
//! cargo test --test sim` replays that one case.

mod common;

use std::collections::HashMap;
use std::io::{self, IoSlice, Write};
use std::time::{Duration, Instant};

use common::{test_seed, Rng, SeedReport};
use weir::http::chunked::{ChunkEncoder, ChunkedDecoder};
use weir::http::multipart::MultipartScanner;
use weir::ring::Ring;
use weir::timer::{Handle, TimerWheel};

/// Cases per run when no seed is given.
const CASES: usize = 500;
/// Steps one case may take before it counts as stuck.
const MAX_STEPS: usize = 2_000_000;

// --- Senders -------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Transport {
    Length,
    Chunked,
}

#[derive(Debug)]
struct Body {
    /// What receivers must get.
    payload: Vec<u8>,
    /// What the sender puts on the wire.
    wire: Vec<u8>,
    transport: Transport,
    /// `Some(boundary)` for a multipart body.
    boundary: Option<String>,
    /// The wire was damaged on purpose: decoding may fail (never panic).
    corrupt: bool,
}

fn random_payload(rng: &mut Rng, len: usize, delimiter_like: Option<&[u8]>) -> Vec<u8> {
    let mut p = rng.bytes(len);
    // Near misses: prefixes of the delimiter, CRs and LFs, where a scanner
    // that restarts its match wrongly would lose or invent bytes.
    if let Some(delim) = delimiter_like {
        let n = rng.below(8);
        for _ in 0..n {
            if p.is_empty() {
                break;
            }
            let cut = 1 + rng.below(delim.len() - 1);
            let mut near = delim[..cut].to_vec();
            if rng.chance(50) {
                near.insert(0, b'\r');
            }
            let at = rng.below(p.len());
            let end = (at + near.len()).min(p.len());
            p[at..end].copy_from_slice(&near[..end - at]);
        }
        // A random payload may hold the whole delimiter by chance (short
        // boundaries); break every occurrence with a byte no delimiter has.
        while let Some(i) = find(&p, delim) {
            p[i] = 0;
        }
    }
    p
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn random_boundary(rng: &mut Rng) -> String {
    const BCHARS: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_,-./:=?";
    let len = match rng.below(4) {
        0 => 1 + rng.below(3),
        1 => 70,
        _ => 8 + rng.below(40),
    };
    (0..len)
        .map(|_| BCHARS[rng.below(BCHARS.len())] as char)
        .collect()
}

fn multipart_content(rng: &mut Rng, boundary: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    if rng.chance(30) {
        b.extend_from_slice(b"This is the preamble.\r\n");
    }
    if rng.chance(50) {
        b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        b.extend_from_slice(b"Content-Disposition: form-data; name=\"field\"\r\n\r\n");
        b.extend_from_slice(b"a value\r\n");
    }
    b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    b.extend_from_slice(
        b"Content-Disposition: form-data; name=\"file\"; filename=\"some/dir/sim.bin\"\r\n",
    );
    b.extend_from_slice(b"Content-Type: application/x-sim\r\n\r\n");
    b.extend_from_slice(payload);
    b.extend_from_slice(format!("\r\n--{boundary}").as_bytes());
    if rng.chance(50) {
        b.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"after\"\r\n\r\nmore");
        b.extend_from_slice(format!("\r\n--{boundary}").as_bytes());
    }
    b.extend_from_slice(b"--\r\n");
    if rng.chance(20) {
        b.extend_from_slice(b"epilogue");
    }
    b
}

fn chunk(rng: &mut Rng, content: &[u8]) -> Vec<u8> {
    let max_chunk = [1usize, 7, 100, 4096, 1 << 16][rng.below(5)];
    let mut w = Vec::with_capacity(content.len() + content.len() / max_chunk.max(1) * 8 + 64);
    let mut rest = content;
    while !rest.is_empty() {
        let n = (1 + rng.below(max_chunk)).min(rest.len());
        let digits = if rng.chance(10) {
            format!("{n:08X}")
        } else {
            format!("{n:x}")
        };
        w.extend_from_slice(digits.as_bytes());
        if rng.chance(5) {
            w.extend_from_slice(b" ;name=value");
        } else if rng.chance(5) {
            w.extend_from_slice(b";flag");
        }
        w.extend_from_slice(b"\r\n");
        w.extend_from_slice(&rest[..n]);
        w.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    w.extend_from_slice(b"0\r\n");
    if rng.chance(20) {
        w.extend_from_slice(b"X-Trailer: yes\r\nX-Other: 1\r\n");
    }
    w.extend_from_slice(b"\r\n");
    w
}

fn random_body(rng: &mut Rng) -> Body {
    let max = if rng.chance(10) { 256 << 10 } else { 48 << 10 };
    let len = rng.size(max) as usize;
    let boundary = rng.chance(35).then(|| random_boundary(rng));
    let delim = boundary.as_ref().map(|b| format!("\r\n--{b}").into_bytes());
    let payload = random_payload(rng, len, delim.as_deref());
    let content = match &boundary {
        Some(b) => multipart_content(rng, b, &payload),
        None => payload.clone(),
    };
    let transport = if rng.chance(50) {
        Transport::Chunked
    } else {
        Transport::Length
    };
    let mut wire = match transport {
        Transport::Chunked => chunk(rng, &content),
        Transport::Length => content,
    };
    let corrupt = transport == Transport::Chunked && rng.chance(5) && !wire.is_empty();
    if corrupt {
        let i = rng.below(wire.len());
        wire[i] = rng.next_u64() as u8;
    }
    Body {
        payload,
        wire,
        transport,
        boundary,
        corrupt,
    }
}

// --- A socket that takes random partial writes -------------------------------------

/// Accepts at most `budget` bytes per call, and `WouldBlock` when none.
struct SimSocket<'a> {
    out: &'a mut Vec<u8>,
    budget: usize,
    rng: &'a mut Rng,
}

impl Write for SimSocket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Ok(0);
        }
        if self.budget == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = (1 + self.rng.below(self.budget)).min(total);
        self.budget -= n;
        let taken = n;
        for b in bufs {
            let k = b.len().min(n);
            self.out.extend_from_slice(&b[..k]);
            n -= k;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// --- Transfers -----------------------------------------------------------------

#[derive(Debug)]
struct Receiver {
    /// Absolute ring offset of the next byte to send.
    cursor: u64,
    /// `None`: raw output (a length or a close delimits it).
    encoder: Option<ChunkEncoder>,
    out: Vec<u8>,
    /// `finish_to` began: from now on only it may be called.
    finishing: bool,
    finished: bool,
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Phase {
    /// Parties still to arrive.
    Pending,
    Streaming,
    Complete,
    /// Stalled past its deadline, or a malformed body.
    Cut,
    /// The waiting party's TTL passed.
    TimedOut,
}

#[derive(Debug)]
struct Transfer {
    body: Body,
    phase: Phase,
    /// Virtual arrival times of the sender and the first receiver.
    arrivals: [Duration; 2],
    arrived: [bool; 2],
    /// The waiting party's TTL timer.
    wait_timer: Option<Handle>,
    stall_timer: Option<Handle>,
    ttl: Duration,
    stall: Duration,
    ring: Ring,
    fed: usize,
    /// Transport state.
    decoder: Option<ChunkedDecoder>,
    scanner: Option<MultipartScanner>,
    multipart_done: bool,
    body_done: bool,
    receivers: Vec<Receiver>,
    decode_error: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum TimerKind {
    Wait(usize),
    Stall(usize),
}

/// The model of the wheel: every live entry with its exact deadline and
/// the expiry round it was inserted in.
struct Timers {
    wheel: TimerWheel<TimerKind>,
    model: HashMap<Handle, (Instant, TimerKind, u64)>,
    /// How many `expire` calls so far, and the `now` of the last one.
    rounds: u64,
    last_now: Instant,
}

impl Timers {
    fn insert(&mut self, now: Instant, after: Duration, kind: TimerKind) -> Handle {
        let h = self.wheel.insert(now, after, kind);
        assert_eq!(self.wheel.deadline(h), Some(now + after));
        assert!(self
            .model
            .insert(h, (now + after, kind, self.rounds))
            .is_none());
        h
    }

    fn cancel(&mut self, h: Handle) {
        let (_, kind, _) = self.model.remove(&h).expect("cancel of a live timer");
        assert_eq!(self.wheel.cancel(h), Some(kind));
        // The handle is stale now.
        assert_eq!(self.wheel.cancel(h), None);
        assert!(self.wheel.get(h).is_none());
    }

    /// Expire at `now` and check never-early, never-late, nothing behind.
    fn expire(&mut self, now: Instant) -> Vec<TimerKind> {
        let mut fired = Vec::new();
        self.wheel.expire(now, &mut fired);
        let mut kinds = Vec::new();
        for (h, kind) in fired {
            let (deadline, k, round) = self
                .model
                .remove(&h)
                .unwrap_or_else(|| panic!("fired an entry that is not live: {kind:?}"));
            assert_eq!(k, kind);
            assert!(
                deadline <= now,
                "early: {kind:?} due {deadline:?}, now {now:?}"
            );
            if round < self.rounds {
                // It was live at the previous expire and was not due then.
                assert!(
                    deadline > self.last_now,
                    "late: {kind:?} was due at {deadline:?}, before the previous expire"
                );
            }
            assert!(self.wheel.get(h).is_none(), "a fired handle is stale");
            kinds.push(kind);
        }
        for (deadline, kind, _) in self.model.values() {
            assert!(*deadline > now, "left behind: {kind:?} due {deadline:?}");
        }
        assert_eq!(self.wheel.len(), self.model.len());
        match (
            self.wheel.next_deadline(),
            self.model.values().map(|e| e.0).min(),
        ) {
            (None, None) => {}
            (Some(next), Some(min)) => {
                assert!(next <= min, "next_deadline after the earliest entry");
                assert!(next > now, "next_deadline not after now: would spin");
            }
            (a, b) => panic!("next_deadline {a:?} but earliest entry {b:?}"),
        }
        self.rounds += 1;
        self.last_now = now;
        kinds
    }
}

struct Sim {
    rng: Rng,
    origin: Instant,
    clock: Duration,
    timers: Timers,
    transfers: Vec<Transfer>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng::new(seed);
        let origin = Instant::now();
        let tick = Duration::from_millis([1, 10, 100][rng.below(3)]);
        let slots = [1, 8, 64, 1024][rng.below(4)];
        let wheel = TimerWheel::new(origin, tick, slots);
        let n = 1 + rng.below(12);
        let transfers = (0..n)
            .map(|_| {
                let body = random_body(&mut rng);
                let multipart = body.boundary.is_some();
                let min_cap = if multipart { 128 } else { 16 };
                let cap = [16usize, 64, 256, 1024, 4096, 65536][rng.below(6)].max(min_cap);
                let receivers = (0..1 + rng.below(3))
                    .map(|_| Receiver {
                        cursor: 0,
                        encoder: (multipart || rng.chance(50)).then(ChunkEncoder::new),
                        out: Vec::new(),
                        finishing: false,
                        finished: false,
                    })
                    .collect();
                let scanner = body.boundary.as_deref().map(MultipartScanner::new);
                let decoder = (body.transport == Transport::Chunked).then(ChunkedDecoder::new);
                Transfer {
                    arrivals: [
                        Duration::from_millis(rng.range(0, 30_000)),
                        Duration::from_millis(rng.range(0, 30_000)),
                    ],
                    arrived: [false; 2],
                    wait_timer: None,
                    stall_timer: None,
                    ttl: Duration::from_millis(rng.range(0, 40_000)),
                    stall: Duration::from_millis(rng.range(1, 20_000)),
                    ring: Ring::new(cap),
                    fed: 0,
                    decoder,
                    scanner,
                    multipart_done: false,
                    body_done: false,
                    receivers,
                    decode_error: false,
                    phase: Phase::Pending,
                    body,
                }
            })
            .collect();
        Sim {
            rng,
            origin,
            clock: Duration::ZERO,
            timers: Timers {
                wheel,
                model: HashMap::new(),
                rounds: 0,
                last_now: origin,
            },
            transfers,
        }
    }

    fn now(&self) -> Instant {
        self.origin + self.clock
    }

    fn active(&self) -> bool {
        self.transfers
            .iter()
            .any(|t| matches!(t.phase, Phase::Pending | Phase::Streaming))
    }

    /// Advance the clock: to the next arrival at most, so arrivals happen
    /// exactly on time; then expire timers and act on what fired.
    fn advance(&mut self) {
        let dt = match self.rng.below(10) {
            0 => Duration::ZERO,
            1..=5 => Duration::from_micros(self.rng.range(1, 20_000)),
            6..=8 => Duration::from_millis(self.rng.range(1, 3_000)),
            _ => Duration::from_millis(self.rng.range(1, 60_000)),
        };
        let next_arrival = self
            .transfers
            .iter()
            .flat_map(|t| (0..2).filter(|&i| !t.arrived[i]).map(|i| t.arrivals[i]))
            .filter(|&a| a >= self.clock)
            .min();
        let target = match next_arrival {
            Some(a) if a < self.clock + dt => a,
            _ => self.clock + dt,
        };
        self.clock = target;
        let now = self.now();
        for kind in self.timers.expire(now) {
            match kind {
                TimerKind::Wait(i) => {
                    let t = &mut self.transfers[i];
                    assert_eq!(t.phase, Phase::Pending);
                    t.wait_timer = None;
                    t.phase = Phase::TimedOut;
                }
                TimerKind::Stall(i) => {
                    let t = &mut self.transfers[i];
                    assert_eq!(t.phase, Phase::Streaming);
                    t.stall_timer = None;
                    t.phase = Phase::Cut;
                }
            }
        }
        for i in 0..self.transfers.len() {
            for party in 0..2 {
                let t = &self.transfers[i];
                if !t.arrived[party] && t.arrivals[party] <= self.clock {
                    self.arrive(i, party);
                }
            }
        }
    }

    /// The stand-in pairing table: the first party waits under its TTL, the
    /// second starts the transfer if the first is still there.
    fn arrive(&mut self, i: usize, party: usize) {
        let now = self.now();
        let t = &mut self.transfers[i];
        t.arrived[party] = true;
        if t.phase != Phase::Pending {
            return;
        }
        match t.wait_timer.take() {
            None => {
                let ttl = t.ttl;
                t.wait_timer = Some(self.timers.insert(now, ttl, TimerKind::Wait(i)));
            }
            Some(h) => {
                self.timers.cancel(h);
                let t = &mut self.transfers[i];
                t.phase = Phase::Streaming;
                let stall = t.stall;
                t.stall_timer = Some(self.timers.insert(now, stall, TimerKind::Stall(i)));
            }
        }
    }

    /// Bytes moved: the stall deadline moves, and is filed again.
    fn progressed(&mut self, i: usize) {
        let now = self.now();
        let t = &mut self.transfers[i];
        let old = t
            .stall_timer
            .take()
            .expect("a running transfer has a stall timer");
        let stall = t.stall;
        self.timers.cancel(old);
        self.transfers[i].stall_timer = Some(self.timers.insert(now, stall, TimerKind::Stall(i)));
    }

    /// Feed a random split of the sender's wire into the ring.
    fn ingress(&mut self, i: usize) -> bool {
        let rng = &mut self.rng;
        let t = &mut self.transfers[i];
        if t.body_done || t.decode_error {
            return false;
        }
        let reserve = if t.scanner.is_some() {
            MultipartScanner::MAX_HELD
        } else {
            0
        };
        let room = t.ring.free().saturating_sub(reserve);
        let left = t.body.wire.len() - t.fed;
        if room == 0 && left > 0 {
            return false;
        }
        let max = room.min(left);
        let split = if max == 0 {
            0
        } else {
            let step = [1, 3, 64, 1500, 1 << 16][rng.below(5)];
            1 + rng.below(max.min(step))
        };
        let input = &t.body.wire[t.fed..t.fed + split];
        let before = t.ring.end_offset();
        let mut pos = 0;
        let mut transport_done = false;
        // The transport: the length, or the chunked decoder.
        let mut decoded: Vec<std::ops::Range<usize>> = Vec::new();
        match &mut t.decoder {
            None => {
                decoded.push(0..input.len());
                pos = input.len();
                transport_done = t.fed + pos == t.body.wire.len();
            }
            Some(dec) => {
                while pos < input.len() {
                    match dec.decode(&input[pos..]) {
                        Ok(d) => {
                            assert!(d.data.end <= d.consumed);
                            decoded.push(pos + d.data.start..pos + d.data.end);
                            pos += d.consumed;
                            if d.done {
                                transport_done = true;
                                break;
                            }
                            if d.consumed == 0 {
                                break;
                            }
                        }
                        Err(e) => {
                            assert!(t.body.corrupt, "a valid body was refused: {e}");
                            // Sticky: the same error again.
                            assert_eq!(dec.decode(b"0\r\n\r\n"), Err(e));
                            t.decode_error = true;
                            t.phase = Phase::Cut;
                            return true;
                        }
                    }
                }
            }
        }
        // The content: raw, or the multipart scanner's file part.
        for r in decoded {
            let data = &input[r];
            match &mut t.scanner {
                None => assert_eq!(t.ring.push(data), data.len(), "ring overflow"),
                Some(sc) if !t.multipart_done => {
                    let ring = &mut t.ring;
                    let mut short = false;
                    let res = sc.feed(data, &mut |d| short |= ring.push(d) < d.len());
                    assert!(
                        !short,
                        "the scanner emitted more than MAX_HELD past its input"
                    );
                    match res {
                        Ok(done) => t.multipart_done |= done,
                        Err(e) => {
                            assert!(t.body.corrupt, "a valid multipart body was refused: {e}");
                            t.decode_error = true;
                            t.phase = Phase::Cut;
                            return true;
                        }
                    }
                    if t.ring.end_offset() > 0 {
                        let info = sc.file_part().expect("payload before the part's headers");
                        if !t.body.corrupt {
                            assert_eq!(info.filename.as_deref(), Some("sim.bin"));
                            assert_eq!(info.content_type.as_deref(), Some("application/x-sim"));
                        }
                    }
                }
                Some(_) => {}
            }
        }
        t.fed += pos;
        assert!(t.ring.len() <= t.ring.capacity());
        if transport_done {
            if let Some(sc) = &t.scanner {
                if let Err(e) = sc.finish() {
                    assert!(t.body.corrupt, "multipart did not finish: {e}");
                    t.decode_error = true;
                    t.phase = Phase::Cut;
                    return true;
                }
            }
            t.body_done = true;
        }
        if t.body_done && !t.body.corrupt {
            assert_eq!(t.fed, t.body.wire.len(), "the transport ended early");
        }
        split > 0 || t.ring.end_offset() > before || transport_done
    }

    /// Let receiver `j` write what its socket takes.
    fn egress(&mut self, i: usize, j: usize) -> bool {
        let budget = match self.rng.below(6) {
            0 => 0,
            1 => 1 + self.rng.below(4),
            2 => 1 + self.rng.below(100),
            _ => 1 + self.rng.below(1 << 17),
        };
        // What the event loop lets one receiver write now (its budget).
        let limit = match self.rng.below(4) {
            0 => 1 + self.rng.below(3),
            1 => 1 + self.rng.below(64),
            _ => 1 + self.rng.below(1 << 17),
        };
        let t = &mut self.transfers[i];
        let end = t.ring.end_offset();
        let body_done = t.body_done;
        let r = &mut t.receivers[j];
        if r.finished {
            return false;
        }
        let mut sock = SimSocket {
            out: &mut r.out,
            budget,
            rng: &mut self.rng,
        };
        let pending = r.encoder.as_ref().is_some_and(ChunkEncoder::has_pending);
        let mut moved = false;
        if !r.finishing && (r.cursor < end || pending) {
            let res = match &mut r.encoder {
                None => t.ring.drain_into(&mut sock, r.cursor, limit),
                Some(enc) => {
                    let (a, b) = t.ring.readable_from(r.cursor);
                    let a = &a[..a.len().min(limit)];
                    let b = &b[..b.len().min(limit - a.len())];
                    enc.write_to(&mut sock, a, b)
                }
            };
            match res {
                Ok(n) => {
                    r.cursor += n as u64;
                    moved = true;
                }
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}"),
            }
            assert!(r.cursor <= end);
        }
        let pending = r.encoder.as_ref().is_some_and(ChunkEncoder::has_pending);
        if r.finishing || (body_done && r.cursor == end && !pending) {
            match &mut r.encoder {
                None => r.finished = true,
                Some(enc) => match enc.finish_to(&mut sock) {
                    Ok(true) => {
                        r.finished = true;
                        moved = true;
                    }
                    Ok(false) => {
                        r.finishing = true;
                        moved = true;
                    }
                    Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}"),
                },
            }
        }
        // The ring forgets what every receiver has sent.
        let min = t.receivers.iter().map(|r| r.cursor).min().unwrap();
        t.ring.release_to(min);
        assert_eq!(t.ring.start_offset(), min);
        if t.receivers.iter().all(|r| r.finished) {
            t.phase = Phase::Complete;
        }
        moved
    }

    fn run(&mut self) {
        let mut steps = 0;
        while self.active() {
            steps += 1;
            assert!(steps < MAX_STEPS, "stuck after {steps} steps");
            let streaming: Vec<usize> = (0..self.transfers.len())
                .filter(|&i| self.transfers[i].phase == Phase::Streaming)
                .collect();
            if streaming.is_empty() || self.rng.chance(3) {
                self.advance();
                continue;
            }
            let i = streaming[self.rng.below(streaming.len())];
            let n = self.transfers[i].receivers.len();
            let moved = if self.rng.chance(40) {
                self.ingress(i)
            } else {
                let j = self.rng.below(n);
                self.egress(i, j)
            };
            match self.transfers[i].phase {
                Phase::Streaming if moved => self.progressed(i),
                Phase::Complete | Phase::Cut => {
                    if let Some(h) = self.transfers[i].stall_timer.take() {
                        self.timers.cancel(h);
                    }
                }
                _ => {}
            }
        }
        // Let every remaining timer fire: the wheel must end empty.
        for _ in 0..10_000 {
            if self.timers.model.is_empty() {
                break;
            }
            self.clock += Duration::from_secs(7);
            let now = self.now();
            self.timers.expire(now);
        }
        assert!(self.timers.wheel.is_empty());
    }

    fn check(&mut self) {
        for (i, t) in self.transfers.iter().enumerate() {
            let ctx = format!(
                "transfer {i}: {:?}, {} payload bytes, {:?}, multipart {}, corrupt {}",
                t.phase,
                t.body.payload.len(),
                t.body.transport,
                t.body.boundary.is_some(),
                t.body.corrupt
            );
            for (j, r) in t.receivers.iter().enumerate() {
                let (got, done) = match &r.encoder {
                    None => (r.out.clone(), r.finished),
                    Some(_) => redecode(&r.out, &mut self.rng),
                };
                // A damaged wire may still decode (a changed payload byte,
                // or a size that turns framing into payload): for those
                // only the absence of panics counts, and the framing checks.
                if !t.body.corrupt {
                    assert!(
                        got.len() <= t.body.payload.len(),
                        "{ctx}: receiver {j}: too long"
                    );
                    assert_eq!(
                        got,
                        t.body.payload[..got.len()],
                        "{ctx}: receiver {j}: bytes"
                    );
                }
                match t.phase {
                    Phase::Complete => {
                        assert!(done, "{ctx}: receiver {j} has no end");
                        if !t.body.corrupt {
                            assert_eq!(got.len(), t.body.payload.len(), "{ctx}: receiver {j}");
                        }
                    }
                    Phase::Cut | Phase::TimedOut if r.finished => {
                        // It had every byte before the transfer was cut.
                        assert!(done, "{ctx}: receiver {j} has no end");
                        if !t.body.corrupt {
                            assert_eq!(got.len(), t.body.payload.len(), "{ctx}: receiver {j}");
                        }
                    }
                    Phase::Cut | Phase::TimedOut => {
                        // A cut never looks complete: no final chunk.
                        if r.encoder.is_some() {
                            assert!(!done, "{ctx}: receiver {j}: a cut looks complete");
                        }
                    }
                    Phase::Pending | Phase::Streaming => panic!("{ctx}: unfinished"),
                }
            }
            if t.phase == Phase::TimedOut {
                assert!(t.receivers.iter().all(|r| r.out.is_empty()), "{ctx}");
            }
        }
    }
}

/// Decode a receiver's chunked output twice: with weir's decoder in random
/// splits, and with a plain reference decoder; both must agree.
fn redecode(wire: &[u8], rng: &mut Rng) -> (Vec<u8>, bool) {
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < wire.len() && !dec.is_done() {
        let step = 1 + rng.below(5000);
        let split = 1 + rng.below((wire.len() - pos).min(step));
        let piece = &wire[pos..pos + split];
        let mut k = 0;
        while k < piece.len() {
            let d = dec
                .decode(&piece[k..])
                .expect("the encoder's output decodes");
            out.extend_from_slice(&piece[k..][d.data.clone()]);
            k += d.consumed;
            if d.done || d.consumed == 0 {
                break;
            }
        }
        pos += k;
        if dec.is_done() {
            break;
        }
    }
    assert_eq!(pos, wire.len(), "bytes after the final chunk");
    let (reference, ref_done) = reference_dechunk(wire);
    assert_eq!(out, reference, "weir's decoder and the reference disagree");
    assert_eq!(dec.is_done(), ref_done);
    (out, dec.is_done())
}

fn reference_dechunk(mut b: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap(), 16).unwrap();
        b = &b[nl + 2..];
        if size == 0 {
            assert!(
                b == b"\r\n" || b.is_empty() || b"\r\n".starts_with(b),
                "{b:?}"
            );
            return (out, b == b"\r\n");
        }
        if b.len() < size + 2 {
            out.extend_from_slice(&b[..b.len().min(size)]);
            return (out, false);
        }
        assert_eq!(&b[size..size + 2], b"\r\n");
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// What the cases did, to show that they did something.
#[derive(Debug, Default)]
struct Stats {
    complete: usize,
    cut: usize,
    timed_out: usize,
    multipart: usize,
    chunked: usize,
    corrupt: usize,
    receivers: usize,
    bytes_delivered: usize,
    expiries: u64,
}

fn run_case(seed: u64, stats: &mut Stats) {
    let _report = SeedReport {
        name: "simulation",
        seed,
    };
    let mut sim = Sim::new(seed);
    sim.run();
    sim.check();
    for t in &sim.transfers {
        match t.phase {
            Phase::Complete => stats.complete += 1,
            Phase::Cut => stats.cut += 1,
            Phase::TimedOut => stats.timed_out += 1,
            _ => {}
        }
        stats.multipart += usize::from(t.body.boundary.is_some());
        stats.chunked += usize::from(t.body.transport == Transport::Chunked);
        stats.corrupt += usize::from(t.body.corrupt);
        stats.receivers += t.receivers.len();
        stats.bytes_delivered += t.receivers.iter().map(|r| r.out.len()).sum::<usize>();
    }
    stats.expiries += sim.timers.rounds;
}

#[test]
fn simulation() {
    let mut stats = Stats::default();
    if std::env::var("WEIR_SEED").is_ok() {
        let seed = test_seed();
        eprintln!("replaying seed {seed}");
        run_case(seed, &mut stats);
        eprintln!("{stats:?}");
        return;
    }
    let mut seeds = Rng::new(test_seed());
    let started = Instant::now();
    for _ in 0..CASES {
        run_case(seeds.next_u64(), &mut stats);
    }
    eprintln!("{CASES} cases in {:?}: {stats:?}", started.elapsed());
    assert!(stats.complete > 0 && stats.cut > 0 && stats.timed_out > 0);
}
