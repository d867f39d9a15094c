//! A seeded simulation that drives the real relay core
//! (`weir::relay::core::Table`) over simulated connections, with a
//! virtual clock and the real timer wheel.
//!
//! Each case makes a few pipes and their parties and lets them arrive,
//! send, read, stall, resume, half-close, close for good and reset at
//! random, while the simulated kernel takes and gives bytes in random
//! pieces (every read and write may be partial, and `WouldBlock` comes
//! whenever a buffer is empty or full). Edges are delivered as an
//! edge-triggered poller would: when new bytes, room, a close or a reset
//! arrive. Clients:
//!
//! - senders like `curl -T` (they ask `Expect: 100-continue` and read
//!   their lines as they come), like nginx (no `Expect`, and they stop
//!   forwarding the body for good as soon as any byte of their response
//!   arrives), like `nc -N` (HTTP/1.0, the body ends with a half-close),
//!   like `curl -m 1` giving up (the whole body, then a close for good while
//!   parked: a write to it draws a reset that destroys what the relay has
//!   not read), and senders that vanish or reset mid-body;
//! - receivers, HTTP/1.1 or 1.0, that read at random rates, stall and
//!   resume, or leave; up to three per pipe (`?n=`), and extra ones or
//!   mismatched `n` that must be refused.
//!
//! Invariants checked after every step: what each receiver has is a prefix
//! of the payload (no byte lost, duplicated or reordered); a response that
//! looks complete (its length, its final chunk, a clean close) holds the
//! whole payload, so every cut is visible; a sender's response ends cleanly
//! only after every receiver got every byte; a party that is gone is no
//! party of any pipe, and no path stays taken by parties that left; the
//! relay's own table checks ([`Table::check`]) hold. And no stall: when no
//! client can act and nothing is queued, the clock jumps to the next
//! deadline; a case that runs out of deadlines with a transfer unfinished,
//! or that takes too many steps, fails.
//!
//! Every case is seeded: a failure prints its seed and
//! `WEIR_SEED=<seed> cargo test --test it sim::` replays that one case
//! (`WEIR_SIM_TRACE=1` prints every effect and client move).
//! `WEIR_SIM_CASES` sets how many cases a run makes (default 10,000).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::seed::{test_seed, Rng, SeedReport};
use mio::Token;
use weir::config::SenderProgress;
use weir::hooks::{DefaultHooks, Hooks};
use weir::http::multipart::MultipartScanner;
use weir::http::request::BodyFraming;
use weir::metrics::Metrics;
use weir::relay::core::{
    Effect, End, Env, Limits, PartyIo, PipeId, RelayTimer, Request, Role, Side, Table, Upload,
};
use weir::timer::{Handle, TimerWheel};
use weir::wire::{OutBuf, Readiness, Ready, Stream};

/// Steps one case may take before it counts as stuck.
const MAX_STEPS: usize = 200_000;

// --- The simulated kernel ------------------------------------------------------

/// One TCP connection as the relay sees it, with its client's end.
#[derive(Debug)]
struct Sock {
    /// Client → relay bytes the relay has not read.
    inbound: VecDeque<u8>,
    /// How much the relay's receive buffer holds.
    in_cap: usize,
    /// The client shut down its sending side (after `inbound`).
    fin: bool,
    /// Relay → client bytes the client has not read.
    outbound: VecDeque<u8>,
    /// How much the client's receive buffer holds.
    out_cap: usize,
    /// The connection was reset: reads and writes fail.
    rst: bool,
    /// The client closed for good: the next relay write draws a reset.
    client_gone: bool,
    /// A reset is on its way to the relay (it lands at a later step).
    rst_coming: bool,
    /// The relay shut down its side (a FIN after `outbound`).
    relay_fin: bool,
    /// The relay reset the connection (the client reads what it has,
    /// then gets the error).
    relay_rst: bool,
    /// Largest piece one call moves, for partial reads and writes.
    piece: usize,
    /// A small generator for the piece sizes.
    rng: Rng,
    /// Edges to deliver.
    edges: Ready,
}

impl Sock {
    fn new(rng: &mut Rng) -> Sock {
        let caps = [64usize, 300, 1024, 4096, 16384];
        Sock {
            inbound: VecDeque::new(),
            in_cap: caps[rng.below(caps.len())],
            fin: false,
            outbound: VecDeque::new(),
            out_cap: caps[rng.below(caps.len())],
            rst: false,
            client_gone: false,
            rst_coming: false,
            relay_fin: false,
            relay_rst: false,
            piece: [1usize, 7, 100, 1500, 65536][rng.below(5)],
            rng: Rng::new(rng.next_u64()),
            // A fresh socket is writable.
            edges: Ready::WRITABLE,
        }
    }

    fn cut(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        1 + self.rng.below(n.min(self.piece))
    }

    /// The client sends `bytes` (as many as fit); returns how many.
    fn client_send(&mut self, bytes: &[u8]) -> usize {
        if self.rst || self.fin || self.client_gone {
            return 0;
        }
        let room = self.in_cap.saturating_sub(self.inbound.len());
        let n = bytes.len().min(room);
        if n > 0 {
            self.inbound.extend(&bytes[..n]);
            self.edges.insert(Ready::READABLE);
        }
        n
    }

    /// The client reads up to `max` bytes. `Err` once the relay's reset
    /// reaches it (after the bytes that came before it).
    fn client_read(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let n = self.outbound.len().min(max);
        if n == 0 && (self.relay_rst || self.rst) {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        let got: Vec<u8> = self.outbound.drain(..n).collect();
        if n > 0 && !self.rst {
            self.edges.insert(Ready::WRITABLE);
        }
        Ok(got)
    }

    fn client_fin(&mut self) {
        if !self.fin && !self.rst {
            self.fin = true;
            self.edges.insert(Ready::READABLE | Ready::HUP);
        }
    }

    /// The client closes for good: its side is shut, and anything the
    /// relay writes from now on draws a reset.
    fn client_close(&mut self) {
        if !self.outbound.is_empty() {
            // A close with unread bytes is a reset (RFC 2525 §2.17; Linux).
            return self.client_reset();
        }
        self.client_fin();
        self.client_gone = true;
    }

    /// The client resets. As on Linux, what it sent before stays readable
    /// in the relay's socket; after it, a read fails (or reads the end,
    /// when a close came first) and so does every write.
    fn client_reset(&mut self) {
        if !self.rst {
            self.rst = true;
            self.edges
                .insert(Ready::READABLE | Ready::WRITABLE | Ready::HUP | Ready::ERROR);
        }
    }

    /// Whether the client can tell the relay is done with it.
    fn relay_done(&self) -> bool {
        self.relay_fin || self.relay_rst
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inbound.is_empty() {
            return if self.fin {
                Ok(0)
            } else if self.rst {
                Err(io::ErrorKind::ConnectionReset.into())
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = self.cut(self.inbound.len().min(buf.len()));
        for (i, b) in self.inbound.drain(..n).enumerate() {
            buf[i] = b;
        }
        Ok(n)
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.rst || self.relay_rst {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if self.client_gone {
            if self.rst_coming {
                // The reset from the earlier write has landed.
                self.client_reset();
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            // This write goes out; the client's kernel answers a reset.
            self.rst_coming = true;
            return Ok(buf.len());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let room = self.out_cap.saturating_sub(self.outbound.len());
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.cut(room.min(buf.len()));
        self.outbound.extend(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for Sock {
    fn queued(&self) -> u64 {
        self.inbound.len() as u64
    }
}

// --- Clients -------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum SenderKind {
    /// `curl -T`: asks Expect, reads its lines as they come.
    Curl,
    /// nginx in front: no Expect; stops forwarding the body for good once
    /// any byte of its response has arrived.
    Nginx,
    /// `curl -m 1` giving up: its whole (small) body, then a close for good
    /// while parked.
    GivesUp,
    /// Leaves mid-body: a close, or a reset.
    Vanishes { at: usize, reset: bool },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ReceiverKind {
    /// Reads to the end, at its own pace, stalling at times.
    Reader,
    /// Leaves after `at` body bytes (a close or a reset).
    Leaves { at: usize, reset: bool },
}

#[derive(Debug)]
enum Role2 {
    Sender {
        kind: SenderKind,
        /// The whole request body on the wire (framed).
        wire: Vec<u8>,
        /// Bytes of `wire` sent so far (the early ones included).
        sent: usize,
        expect: bool,
        framing: BodyFraming,
        boundary: Option<String>,
        /// Stopped forwarding (nginx, after an early answer).
        stopped: bool,
        /// Its response so far.
        resp: Resp,
    },
    Receiver {
        kind: ReceiverKind,
        resp: Resp,
        /// Reading is paused until this step.
        stall_until: usize,
    },
}

/// One client and its connection.
#[derive(Debug)]
struct Client {
    pipe: usize,
    key: String,
    n: usize,
    minor: u8,
    role: Role2,
    /// It has sent its head (the relay took its request).
    arrived: bool,
    /// Step at which it arrives.
    arrive_at: usize,
    sock: Option<usize>,
    /// Done with: closed, reset, or its response ended.
    done: bool,
    /// Read error seen (a reset from the relay).
    saw_reset: bool,
    /// It left by its own choice (it does not judge the response).
    quit: bool,
}

// --- The connections as the loop keeps them ---------------------------------------

#[derive(Debug, PartialEq)]
enum ConnState {
    /// Its head was given to the relay; nothing yet came back.
    Asked,
    Party(PipeId, Role),
    /// Writing `out`, then ending this way.
    Releasing(End),
    Closed,
}

#[derive(Debug)]
struct Conn {
    sock: Sock,
    ready: Readiness,
    out: OutBuf,
    read_eof: bool,
    state: ConnState,
}

/// The loop's side of the core: connections, timers, counters.
struct World {
    now: Instant,
    conns: Vec<Conn>,
    timers: TimerWheel<RelayTimer>,
    metrics: Metrics,
    hooks: DefaultHooks,
    park_room: usize,
}

impl Env for World {
    fn io(&mut self, t: Token) -> Option<PartyIo<'_>> {
        let c = self.conns.get_mut(t.0)?;
        assert_ne!(
            c.state,
            ConnState::Closed,
            "the core used a closed connection {}",
            t.0
        );
        Some(PartyIo {
            stream: &mut c.sock,
            ready: &mut c.ready,
            out: &mut c.out,
            read_eof: &mut c.read_eof,
        })
    }
    fn may_park(&mut self, _t: Token) -> bool {
        self.park_room > 0
    }
    fn park_limit(&self) -> usize {
        2
    }
    fn arm(&mut self, at: Instant, what: RelayTimer) -> Handle {
        self.timers.insert_at(at, what)
    }
    fn disarm(&mut self, h: Handle) {
        self.timers.cancel(h);
    }
    fn metrics(&mut self) -> &mut Metrics {
        &mut self.metrics
    }
    fn hooks(&mut self) -> &mut dyn Hooks {
        &mut self.hooks
    }
    fn can_splice(&mut self, _: Token) -> bool {
        false
    }
}

// --- Bodies --------------------------------------------------------------------------

struct Plan {
    /// What a receiver gets: the payload, or the forwarded part of a form.
    part: Vec<u8>,
    /// Its sender sends its whole body, then closes for good while parked
    /// (`curl -m 1`): its receivers must get every byte, or be refused;
    /// never a `200` and then a cut. (Only for a path no other plan shares
    /// and with no upload limit, where nothing else may cut it.)
    must_deliver: bool,
    key: String,
}

fn chunk_encode(rng: &mut Rng, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        // Mostly small chunks; some large enough (32 KiB and more) that
        // the pump reads their payload straight into the ring and only the
        // framing between them through its scratch buffer.
        let most = if rng.chance(25) { 150_000 } else { 3000 };
        let n = 1 + rng.below(rest.len().min(most));
        write!(out, "{n:x}").unwrap();
        if rng.chance(10) {
            out.extend_from_slice(b";ext=1");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n");
    if rng.chance(10) {
        out.extend_from_slice(b"X-Trailer: 1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Bytes without the boundary in them.
fn payload(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(10) {
        0 => 0,
        1..=6 => rng.below(3000),
        7 | 8 => rng.below(20_000),
        _ => rng.below(140_000),
    };
    let mut p = rng.bytes(len);
    for b in &mut p {
        if *b == b'-' {
            *b = b'_';
        }
    }
    p
}

// --- One case --------------------------------------------------------------------------

struct Case {
    rng: Rng,
    relay: Table,
    world: World,
    clients: Vec<Client>,
    plans: Vec<Plan>,
    step: usize,
    fx: Vec<Effect>,
    /// `WEIR_SIM_TRACE=1`: print every effect and client move.
    trace: bool,
    /// The upload limit (0 = none).
    max_upload: u64,
    /// `--sender-progress live`.
    live: bool,
}

impl Case {
    fn new(seed: u64) -> Case {
        let mut rng = Rng::new(seed);
        let ttl = Duration::from_secs(1 + rng.below(30) as u64);
        let limits = Limits {
            ttl,
            max_upload_bytes: if rng.chance(10) {
                1 + rng.below(30_000) as u64
            } else {
                0
            },
            max_streaming_pipes: 1 + rng.below(4),
            buffer_size: [16usize, 100, 1024, 4096, 65536][rng.below(5)],
            splice: false,
            splice_budget: 0,
            sender_progress: match rng.below(6) {
                0 => SenderProgress::Held,
                1 => SenderProgress::Live,
                _ => SenderProgress::Auto,
            },
        };
        let max_upload = limits.max_upload_bytes;
        let live = limits.sender_progress == SenderProgress::Live;
        let now = Instant::now();
        let world = World {
            now,
            conns: Vec::new(),
            timers: TimerWheel::new(now, Duration::from_millis(10), 64),
            metrics: Metrics::default(),
            hooks: DefaultHooks,
            park_room: if rng.chance(5) {
                rng.below(3)
            } else {
                usize::MAX
            },
        };
        let mut case = Case {
            relay: Table::new(limits),
            world,
            clients: Vec::new(),
            plans: Vec::new(),
            step: 0,
            fx: Vec::new(),
            rng,
            trace: std::env::var("WEIR_SIM_TRACE").is_ok(),
            max_upload,
            live,
        };
        let pipes = 1 + case.rng.below(3);
        for i in 0..pipes {
            case.plan_pipe(i);
        }
        case
    }

    fn plan_pipe(&mut self, i: usize) {
        let rng = &mut self.rng;
        // Two pipes may share a key: the second set of parties meets a
        // running transfer (409) or joins a waiting one.
        let shared = i > 0 && rng.chance(15);
        let key = format!("/p{}", if shared { 0 } else { i });
        let n = 1 + rng.below(3);
        // Parties that may meet on one path send the same bytes, so that
        // whoever pairs with whom, a receiver's bytes can be checked.
        let data = if shared {
            self.plans[0].part.clone()
        } else {
            payload(rng)
        };
        let kind = match rng.below(10) {
            0..=3 => SenderKind::Curl,
            4..=6 => SenderKind::Nginx,
            7 => SenderKind::GivesUp,
            _ => SenderKind::Vanishes {
                at: rng.below(data.len() + 1),
                reset: rng.chance(50),
            },
        };
        let minor = if rng.chance(15) { 0 } else { 1 };
        let multipart = !data.is_empty() && rng.chance(15);
        let (framing, content, boundary, part) = if multipart {
            let b = format!("b{}", rng.below(1000));
            let mut body = Vec::new();
            if rng.chance(50) {
                write!(
                    body,
                    "--{b}\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n"
                )
                .unwrap();
            } else {
                write!(
                    body,
                    "--{b}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\nContent-Type: application/x-sim\r\n\r\n"
                )
                .unwrap();
            }
            body.extend_from_slice(&data);
            write!(body, "\r\n--{b}--\r\n").unwrap();
            let framing = if minor == 0 {
                BodyFraming::UntilClose
            } else if rng.chance(50) {
                BodyFraming::Chunked
            } else {
                BodyFraming::Length(body.len() as u64)
            };
            (framing, body, Some(b), data.clone())
        } else {
            let framing = if minor == 0 && rng.chance(50) {
                BodyFraming::UntilClose
            } else if rng.chance(40) {
                BodyFraming::Chunked
            } else if data.is_empty() && rng.chance(50) {
                BodyFraming::None
            } else {
                BodyFraming::Length(data.len() as u64)
            };
            (framing, data.clone(), None, data.clone())
        };
        let framing = if minor == 0 && framing == BodyFraming::Chunked {
            BodyFraming::Length(content.len() as u64)
        } else {
            framing
        };
        let wire = if framing == BodyFraming::Chunked {
            chunk_encode(rng, &content)
        } else {
            content
        };
        let kind = match kind {
            SenderKind::GivesUp if wire.len() > 2000 => SenderKind::Curl,
            // `--sender-progress live` is for relays with no such proxy
            // in front.
            SenderKind::Nginx if self.live => SenderKind::Curl,
            // An HTTP/1.0 body ends at the sender's close: a clean close
            // mid-body is, to anyone, the end of a shorter body. Only a
            // reset is a vanishing.
            SenderKind::Vanishes { at, .. } if framing == BodyFraming::UntilClose => {
                SenderKind::Vanishes { at, reset: true }
            }
            k => k,
        };
        let expect = match kind {
            SenderKind::Nginx => false,
            SenderKind::Curl => minor == 1,
            _ => minor == 1 && rng.chance(50),
        };
        let pipe = self.plans.len();
        let must_deliver = kind == SenderKind::GivesUp && !shared && self.max_upload == 0;
        self.plans.push(Plan {
            part,
            must_deliver,
            key: key.clone(),
        });
        let horizon = 200;
        let sender = Client {
            pipe,
            key: key.clone(),
            n,
            minor,
            role: Role2::Sender {
                kind,
                wire,
                sent: 0,
                expect,
                framing,
                boundary,
                stopped: false,
                resp: Resp::new(),
            },
            arrived: false,
            arrive_at: rng.below(horizon),
            sock: None,
            done: false,
            saw_reset: false,
            quit: false,
        };
        self.clients.push(sender);
        let extra = usize::from(rng.chance(10));
        for _ in 0..n + extra {
            let rn = if rng.chance(5) { 1 + rng.below(3) } else { n };
            let kind = if rng.chance(15) {
                ReceiverKind::Leaves {
                    at: rng.below(self.plans[pipe].part.len() + 1),
                    reset: rng.chance(50),
                }
            } else {
                ReceiverKind::Reader
            };
            self.clients.push(Client {
                pipe,
                key: key.clone(),
                n: rn,
                minor: if rng.chance(20) { 0 } else { 1 },
                role: Role2::Receiver {
                    kind,
                    resp: Resp::new(),
                    stall_until: 0,
                },
                arrived: false,
                arrive_at: rng.below(horizon),
                sock: None,
                done: false,
                saw_reset: false,
                quit: false,
            });
        }
    }

    fn run(&mut self) {
        loop {
            self.step += 1;
            assert!(self.step < MAX_STEPS, "stuck: {} steps", self.step);
            let acted = self.tick();
            self.check();
            if self.finished() {
                break;
            }
            if !acted {
                // Nobody can act and nothing is queued: a client still to
                // come, or time, is all that can move things now.
                if let Some(next) = self
                    .clients
                    .iter()
                    .filter(|c| !c.arrived)
                    .map(|c| c.arrive_at)
                    .min()
                {
                    self.step = self.step.max(next);
                    continue;
                }
                let stalled = self.clients.iter().any(|c| {
                    matches!(&c.role, Role2::Receiver { stall_until, .. } if *stall_until > self.step)
                });
                if stalled {
                    // A receiver pausing by choice: its pause ends.
                    self.step += 50;
                    continue;
                }
                match self.world.timers.next_deadline() {
                    Some(d) => {
                        let d = d.max(self.world.now);
                        self.world.now = d + Duration::from_millis(self.rng.below(30) as u64);
                        self.expire();
                    }
                    None => self.stalled(),
                }
            }
        }
        // Every connection is closed and the table is empty.
        assert!(
            self.relay.gauges() == Default::default() || self.relay.gauges().waiting == 0,
            "{:?}",
            self.relay.gauges()
        );
        self.relay.check().unwrap();
    }

    fn stalled(&self) -> ! {
        let mut s = String::new();
        for (i, c) in self.clients.iter().enumerate() {
            s.push_str(&format!(
                "client {i}: pipe {} arrived {} done {} sock {:?}\n",
                c.pipe, c.arrived, c.done, c.sock
            ));
            if let Some(k) = c.sock {
                let cc = &self.world.conns[k];
                s.push_str(&format!(
                    "   conn {k}: {:?} ready {:?} out {} in {} fin {} outb {} rst {}\n",
                    cc.state,
                    cc.ready,
                    cc.out.pending(),
                    cc.sock.inbound.len(),
                    cc.sock.fin,
                    cc.sock.outbound.len(),
                    cc.sock.rst
                ));
            }
            match &c.role {
                Role2::Sender {
                    sent,
                    wire,
                    stopped,
                    kind,
                    ..
                } => s.push_str(&format!(
                    "   sender {kind:?} sent {sent}/{} stopped {stopped}\n",
                    wire.len()
                )),
                Role2::Receiver { kind, resp, .. } => {
                    s.push_str(&format!("   receiver {kind:?} got {} bytes\n", resp.len()))
                }
            }
        }
        panic!("stall: nothing can move and no timer is armed\n{s}");
    }

    fn finished(&self) -> bool {
        self.clients.iter().all(|c| c.done)
            && self
                .world
                .conns
                .iter()
                .all(|c| c.state == ConnState::Closed)
    }

    /// One step: something acts. False when nothing could.
    fn tick(&mut self) -> bool {
        if self.relay.has_queued() && self.rng.chance(70) {
            let now = self.world.now;
            self.relay.run_queued(&mut self.world, now, &mut self.fx);
            self.apply();
            return true;
        }
        // Small steps of time pass now and then.
        if self.rng.chance(3) {
            self.world.now += Duration::from_millis(self.rng.below(50) as u64);
            self.expire();
        }
        // From a random place, the first that can act acts.
        let all = self.clients.len() + self.world.conns.len();
        let first = self.rng.below(all);
        let stride = if self.rng.chance(50) { 1 } else { all - 1 };
        for j in 0..all {
            let k = (first + j * stride) % all;
            let acted = if k < self.clients.len() {
                self.client_step(k)
            } else {
                self.conn_step(k - self.clients.len())
            };
            if acted {
                return true;
            }
        }
        if self.relay.has_queued() {
            let now = self.world.now;
            self.relay.run_queued(&mut self.world, now, &mut self.fx);
            self.apply();
            return true;
        }
        false
    }

    fn expire(&mut self) {
        let mut fired = Vec::new();
        self.world.timers.expire(self.world.now, &mut fired);
        for (h, what) in fired {
            let now = self.world.now;
            self.relay
                .timer(&mut self.world, now, what, h, &mut self.fx);
            self.apply();
        }
    }

    /// The loop's side of one connection: deliver its edges to the relay,
    /// or write what a released connection still has to say.
    fn conn_step(&mut self, k: usize) -> bool {
        let c = &mut self.world.conns[k];
        if c.sock.rst_coming && c.sock.client_gone && self.rng.chance(30) {
            c.sock.rst_coming = false;
            c.sock.client_reset();
        }
        let edges = std::mem::replace(&mut c.sock.edges, Ready::EMPTY);
        match c.state {
            ConnState::Closed | ConnState::Asked => false,
            ConnState::Party(p, _) => {
                if edges.is_empty() {
                    return false;
                }
                c.ready.event |= edges;
                let now = self.world.now;
                self.relay
                    .ready(&mut self.world, now, p, Token(k), &mut self.fx);
                self.apply();
                true
            }
            ConnState::Releasing(end) => {
                c.ready.event |= edges;
                if c.sock.rst {
                    c.state = ConnState::Closed;
                    return true;
                }
                let before = c.out.pending();
                match c.out.flush_to(&mut c.sock, &mut c.ready) {
                    Ok(true) => {
                        match end {
                            End::ResetAfterWrite => c.sock.relay_rst = true,
                            End::Linger | End::Close => c.sock.relay_fin = true,
                        }
                        c.state = ConnState::Closed;
                        true
                    }
                    Ok(false) => !edges.is_empty() || c.out.pending() < before,
                    Err(_) => {
                        c.state = ConnState::Closed;
                        true
                    }
                }
            }
        }
    }

    fn new_conn(&mut self) -> usize {
        let sock = Sock::new(&mut self.rng);
        self.world.conns.push(Conn {
            sock,
            ready: Readiness::default(),
            out: OutBuf::default(),
            read_eof: false,
            state: ConnState::Asked,
        });
        self.world.conns.len() - 1
    }

    fn client_step(&mut self, i: usize) -> bool {
        if self.clients[i].done {
            return false;
        }
        if !self.clients[i].arrived {
            if self.step < self.clients[i].arrive_at {
                return false;
            }
            self.arrive(i);
            return true;
        }
        let Some(k) = self.clients[i].sock else {
            return false;
        };
        let before = self.client_view(i, k);
        let acted = match &self.clients[i].role {
            Role2::Sender { .. } => self.sender_step(i, k),
            Role2::Receiver { .. } => self.receiver_step(i, k),
        };
        if self.trace && acted {
            eprintln!(
                "  step {} client {i} (conn {k}): {before} -> {}",
                self.step,
                self.client_view(i, k)
            );
        }
        acted
    }

    fn client_view(&self, i: usize, k: usize) -> String {
        let c = &self.clients[i];
        let s = &self.world.conns[k].sock;
        let (a, b) = match &c.role {
            Role2::Sender { sent, resp, .. } => (*sent, resp.len()),
            Role2::Receiver { resp, .. } => (0, resp.len()),
        };
        format!(
            "sent {a} read {b} fin {} gone {} rst {} done {}",
            s.fin, s.client_gone, s.rst, c.done
        )
    }

    fn arrive(&mut self, i: usize) {
        let k = self.new_conn();
        let c = &mut self.clients[i];
        c.arrived = true;
        c.sock = Some(k);
        let early_len = self.rng.below(4097);
        let (side, expect) = match &mut c.role {
            Role2::Sender {
                wire,
                sent,
                expect,
                framing,
                boundary,
                ..
            } => {
                let early_len = early_len.min(wire.len());
                let early = wire[..early_len].to_vec();
                *sent = early_len;
                let multipart = boundary
                    .as_deref()
                    .map(|b| Box::new(MultipartScanner::first_part(b)));
                let upload = Upload {
                    framing: *framing,
                    content_type: boundary
                        .as_ref()
                        .map(|b| format!("multipart/form-data; boundary={b}").into_bytes()),
                    content_disposition: None,
                    x_piping: Vec::new(),
                    multipart,
                    early,
                };
                (Side::Sender(Box::new(upload)), *expect)
            }
            Role2::Receiver { .. } => (Side::Receiver, false),
        };
        let req = Request {
            token: Token(k),
            key: c.key.clone(),
            n: c.n,
            minor: c.minor,
            expect_continue: expect,
            side,
        };
        if self.trace {
            eprintln!(
                "  step {} client {i} arrives on conn {k}: {req:?}",
                self.step
            );
        }
        let now = self.world.now;
        self.relay.request(&mut self.world, now, req, &mut self.fx);
        self.apply();
    }

    fn sender_step(&mut self, i: usize, k: usize) -> bool {
        let prefer_read = self.rng.chance(50);
        let piece = 1 + self.rng.below(5000);
        let gives_up_now = self.rng.chance(20);
        let Client {
            role,
            done,
            saw_reset,
            quit,
            ..
        } = &mut self.clients[i];
        let Role2::Sender {
            kind,
            wire,
            sent,
            framing,
            stopped,
            resp,
            ..
        } = role
        else {
            unreachable!()
        };
        let conn = &mut self.world.conns[k];
        let still_party = matches!(conn.state, ConnState::Party(..));
        let sock = &mut conn.sock;
        // nginx: any byte of its answer before its body is all sent stops
        // the upload for good.
        if *kind == SenderKind::Nginx
            && *sent < wire.len()
            && !sock.outbound.is_empty()
            && !*stopped
        {
            *stopped = true;
            // An early answer that ends the exchange (a refusal, a timeout)
            // is fine: nginx passes it on. An early answer to a transfer
            // that is still on is the stall nginx users met: the upload
            // stops for good.
            assert!(
                !still_party,
                "client {i}: a sender behind nginx got its answer before its body was read"
            );
        }
        if sock.rst {
            *done = true;
            return true;
        }
        let all_sent = *sent >= wire.len();
        // What it can do now.
        let can_read = !sock.outbound.is_empty() || sock.relay_done();
        let vanish = matches!(kind, SenderKind::Vanishes { at, .. } if *sent >= *at) && !sock.fin;
        // Like curl, it reads what came before it closes (a close with
        // unread bytes would be a reset).
        let give_up =
            *kind == SenderKind::GivesUp && all_sent && !sock.fin && sock.outbound.is_empty();
        let can_send = !all_sent && !*stopped && !sock.fin && sock.inbound.len() < sock.in_cap;
        let half_close = all_sent && *framing == BodyFraming::UntilClose && !sock.fin;
        if vanish {
            let SenderKind::Vanishes { reset, .. } = *kind else {
                unreachable!()
            };
            if reset {
                sock.client_reset();
            } else {
                sock.client_close();
            }
            *done = true;
            *quit = true;
            return true;
        }
        if give_up && (gives_up_now || !can_read) {
            // A while later, with its body all sent, it closes for good.
            sock.client_close();
            *done = true;
            *quit = true;
            return true;
        }
        if can_read && (prefer_read || !(can_send || half_close)) {
            match sock.client_read(1 + piece % 2000) {
                Ok(b) if !b.is_empty() => resp.feed(&b),
                Ok(_) => *done = true,
                Err(_) => {
                    *saw_reset = true;
                    *done = true;
                }
            }
            return true;
        }
        if can_send {
            let n = piece.min(wire.len() - *sent);
            *sent += sock.client_send(&wire[*sent..*sent + n]);
            return true;
        }
        if half_close {
            // `nc -N`: the body ends with a half-close.
            sock.client_fin();
            return true;
        }
        false
    }

    fn receiver_step(&mut self, i: usize, k: usize) -> bool {
        let step = self.step;
        let Client {
            role,
            done,
            saw_reset,
            quit,
            ..
        } = &mut self.clients[i];
        let Role2::Receiver {
            kind,
            resp,
            stall_until,
        } = role
        else {
            unreachable!()
        };
        let sock = &mut self.world.conns[k].sock;
        if sock.rst {
            *done = true;
            return true;
        }
        if let ReceiverKind::Leaves { at, reset } = kind {
            let body_so_far = resp.body.len();
            if body_so_far >= *at && (body_so_far > 0 || self.rng.chance(5)) {
                if *reset {
                    sock.client_reset();
                } else {
                    sock.client_close();
                }
                *done = true;
                *quit = true;
                return true;
            }
        }
        if step < *stall_until {
            return false;
        }
        if self.rng.chance(3) {
            *stall_until = step + 1 + self.rng.below(300);
            return false;
        }
        match sock.client_read(1 + self.rng.below(3000)) {
            Ok(b) if !b.is_empty() => {
                resp.feed(&b);
                true
            }
            Ok(_) => {
                if sock.relay_fin {
                    *done = true;
                    true
                } else {
                    false
                }
            }
            Err(_) => {
                *saw_reset = true;
                *done = true;
                true
            }
        }
    }

    /// Apply the core's effects, as the event loop does.
    fn apply(&mut self) {
        for e in std::mem::take(&mut self.fx) {
            if self.trace {
                eprintln!("  step {} effect {e:?}", self.step);
            }
            match e {
                Effect::Refuse { token, status, .. } => {
                    let c = &mut self.world.conns[token.0];
                    assert!(
                        matches!(c.state, ConnState::Asked | ConnState::Party(..)),
                        "refuse of {:?} in {:?}",
                        token,
                        c.state
                    );
                    c.out.clear();
                    c.out.push(format!("HTTP/1.1 {status} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
                    c.ready.interest = Ready::WRITABLE;
                    c.state = ConnState::Releasing(End::Close);
                }
                Effect::Joined { token, pipe, role } => {
                    let c = &mut self.world.conns[token.0];
                    assert_eq!(c.state, ConnState::Asked);
                    c.state = ConnState::Party(pipe, role);
                }
                Effect::Park(_) => {
                    self.world.park_room = self.world.park_room.saturating_sub(1);
                }
                Effect::Unpark(_) => {
                    if self.world.park_room != usize::MAX {
                        self.world.park_room += 1;
                    }
                }
                Effect::Release { token, end } => {
                    let c = &mut self.world.conns[token.0];
                    assert!(
                        matches!(c.state, ConnState::Party(..)),
                        "release of {:?} in {:?}",
                        token,
                        c.state
                    );
                    c.state = ConnState::Releasing(end);
                    c.ready.interest = Ready::WRITABLE;
                }
                Effect::Close(token) => {
                    let c = &mut self.world.conns[token.0];
                    c.sock.relay_fin = true;
                    c.state = ConnState::Closed;
                }
                Effect::Reset(token) => {
                    let c = &mut self.world.conns[token.0];
                    c.sock.relay_rst = true;
                    c.state = ConnState::Closed;
                }
            }
        }
    }

    /// The invariants, after every step.
    fn check(&mut self) {
        if let Err(e) = self.relay.check() {
            panic!("relay table: {e}");
        }
        for (k, c) in self.world.conns.iter().enumerate() {
            let party = self.relay.party(Token(k));
            match &c.state {
                ConnState::Party(p, role) => {
                    assert_eq!(party, Some((*p, *role)), "conn {k} thinks it is a party");
                }
                _ => assert_eq!(party, None, "conn {k} ({:?}) is still a party", c.state),
            }
        }
        let plans = &self.plans;
        for (i, cl) in self.clients.iter_mut().enumerate() {
            let plan = &plans[cl.pipe];
            match &mut cl.role {
                Role2::Receiver { resp: r, .. } => {
                    if r.status != Some(200) {
                        continue;
                    }
                    let want = &plan.part;
                    let from = r.checked;
                    assert!(
                        r.body.len() <= want.len() && want[from..r.body.len()] == r.body[from..],
                        "client {i}: got bytes that are not a prefix of the payload ({} of {})",
                        r.body.len(),
                        want.len()
                    );
                    r.checked = r.body.len();
                    let ended = cl.done || self.world.conns[cl.sock.unwrap()].sock.relay_done();
                    let clean_end =
                        self.world.conns[cl.sock.unwrap()].sock.relay_fin && !cl.saw_reset;
                    let looks_complete = match r.framing {
                        Framing::Length(l) => r.body.len() as u64 == l,
                        Framing::Chunked { done } => done,
                        Framing::Close => ended && clean_end && cl.done,
                    };
                    let alone = plans.iter().filter(|p| p.key == plan.key).count() == 1;
                    if plan.must_deliver && alone && cl.done && !cl.quit {
                        // Whatever else happens (a receiver that joins and
                        // leaves, a timeout), a 200 means every byte.
                        assert_eq!(
                            r.body.len(),
                            want.len(),
                            "client {i}: a sender that closed after its whole body was cut after 200"
                        );
                    }
                    if looks_complete && !cl.quit {
                        assert_eq!(
                            r.body.len(),
                            want.len(),
                            "client {i}: a cut looks complete ({:?})",
                            r.framing
                        );
                    }
                }
                Role2::Sender { resp, .. } => {
                    if !cl.done || cl.quit {
                        continue;
                    }
                    let r = resp;
                    let ok_end = match r.framing {
                        Framing::Chunked { done } => done,
                        Framing::Close => !cl.saw_reset,
                        Framing::Length(_) => true,
                    };
                    if r.status == Some(200) && ok_end {
                        let text = String::from_utf8_lossy(&r.body);
                        let last = text.lines().last().unwrap_or("");
                        assert!(
                            last.starts_with("[INFO] Sent successfully!"),
                            "client {i}: a sender's response ended cleanly after {last:?}"
                        );
                    }
                }
            }
        }
    }
}

// --- Reading responses ------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    Length(u64),
    Chunked { done: bool },
    Close,
}

/// Where a reference chunked decoder (not weir's) stands.
#[derive(Debug, Clone, PartialEq)]
enum Chunk {
    /// Reading a size line.
    Size(Vec<u8>),
    /// Payload bytes left in this chunk.
    Data(usize),
    /// The CRLF after a chunk's payload (bytes of it seen).
    DataEnd(usize),
    /// After the last chunk: the empty line (bytes of it seen).
    Last(usize),
    Done,
}

/// A client's response, parsed as it arrives: skips `100 Continue`, reads
/// the head, decodes the body.
#[derive(Debug)]
struct Resp {
    raw: usize,
    head: Vec<u8>,
    status: Option<u16>,
    framing: Framing,
    body: Vec<u8>,
    chunk: Chunk,
    /// Body bytes already compared with the payload.
    checked: usize,
}

impl Resp {
    fn new() -> Resp {
        Resp {
            raw: 0,
            head: Vec::new(),
            status: None,
            framing: Framing::Close,
            body: Vec::new(),
            chunk: Chunk::Size(Vec::new()),
            checked: 0,
        }
    }

    fn len(&self) -> usize {
        self.raw
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        self.raw += bytes.len();
        while !bytes.is_empty() {
            if self.status.is_none() {
                self.head.push(bytes[0]);
                bytes = &bytes[1..];
                if self.head.ends_with(b"\r\n\r\n") {
                    let head =
                        String::from_utf8(std::mem::take(&mut self.head)).expect("utf-8 head");
                    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
                    if status == 100 {
                        continue;
                    }
                    let lower = head.to_ascii_lowercase();
                    self.framing = if lower.contains("transfer-encoding: chunked") {
                        Framing::Chunked { done: false }
                    } else if let Some(i) = lower.find("content-length: ") {
                        let v = &lower[i + 16..];
                        let v = &v[..v.find('\r').unwrap_or(v.len())];
                        Framing::Length(v.trim().parse().unwrap())
                    } else {
                        Framing::Close
                    };
                    self.status = Some(status);
                }
                continue;
            }
            match self.framing {
                Framing::Length(l) => {
                    assert!(
                        self.body.len() + bytes.len() <= l as usize,
                        "more bytes than Content-Length"
                    );
                    self.body.extend_from_slice(bytes);
                    return;
                }
                Framing::Close => {
                    self.body.extend_from_slice(bytes);
                    return;
                }
                Framing::Chunked { .. } => {
                    let b = bytes[0];
                    let mut used = 1;
                    self.chunk = match std::mem::replace(&mut self.chunk, Chunk::Done) {
                        Chunk::Size(mut line) => {
                            line.push(b);
                            if line.ends_with(b"\r\n") {
                                let text = std::str::from_utf8(&line[..line.len() - 2]).unwrap();
                                let size = usize::from_str_radix(
                                    text.split(';').next().unwrap().trim(),
                                    16,
                                )
                                .expect("chunk size");
                                if size == 0 {
                                    Chunk::Last(0)
                                } else {
                                    Chunk::Data(size)
                                }
                            } else {
                                Chunk::Size(line)
                            }
                        }
                        Chunk::Data(left) => {
                            let n = left.min(bytes.len());
                            self.body.extend_from_slice(&bytes[..n]);
                            used = n;
                            if n == left {
                                Chunk::DataEnd(0)
                            } else {
                                Chunk::Data(left - n)
                            }
                        }
                        Chunk::DataEnd(k) => {
                            assert_eq!(b, b"\r\n"[k], "chunk not ended by CRLF");
                            if k == 1 {
                                Chunk::Size(Vec::new())
                            } else {
                                Chunk::DataEnd(1)
                            }
                        }
                        Chunk::Last(k) => {
                            assert_eq!(b, b"\r\n"[k], "last chunk not ended by an empty line");
                            if k == 1 {
                                self.framing = Framing::Chunked { done: true };
                                Chunk::Done
                            } else {
                                Chunk::Last(1)
                            }
                        }
                        Chunk::Done => panic!("bytes after the last chunk"),
                    };
                    bytes = &bytes[used..];
                }
            }
        }
    }
}

fn run_case(seed: u64) -> usize {
    if std::env::var("WEIR_SIM_TRACE").is_ok() {
        let _ = env_logger::builder()
            .is_test(true)
            .filter_level(log::LevelFilter::Debug)
            .try_init();
    }
    let mut case = Case::new(seed);
    case.run();
    case.step
}

#[test]
fn simulation() {
    let cases: usize = std::env::var("WEIR_SIM_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let started = Instant::now();
    match std::env::var("WEIR_SEED") {
        Ok(_) => {
            let seed = test_seed();
            eprintln!("sim::simulation: seed {seed}");
            let _report = SeedReport {
                name: "sim::simulation",
                seed,
            };
            let steps = run_case(seed);
            eprintln!("simulation: {steps} steps");
        }
        Err(_) => {
            let base = std::env::var("WEIR_SIM_BASE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(test_seed);
            eprintln!(
                "sim::simulation: base seed {base} (WEIR_SIM_BASE={base} runs these cases again)"
            );
            let mut seeds = Rng::new(base);
            let seeds: Vec<u64> = (0..cases).map(|_| seeds.next_u64()).collect();
            // Cases are independent: they run on every core, in chunks.
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, 8);
            let failed = AtomicBool::new(false);
            let chunk = seeds.len().div_ceil(threads).max(1);
            let results: Vec<(usize, Option<u64>)> = std::thread::scope(|scope| {
                let handles: Vec<_> = seeds
                    .chunks(chunk)
                    .map(|part| {
                        let failed = &failed;
                        scope.spawn(move || {
                            let mut steps = 0;
                            for &seed in part {
                                if failed.load(Ordering::Relaxed) {
                                    break;
                                }
                                match std::panic::catch_unwind(|| run_case(seed)) {
                                    Ok(n) => steps += n,
                                    Err(_) => {
                                        failed.store(true, Ordering::Relaxed);
                                        return (steps, Some(seed));
                                    }
                                }
                            }
                            (steps, None)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            if let Some(seed) = results.iter().find_map(|r| r.1) {
                panic!(
                    "sim::simulation case FAILED (its panic is above): replay with \
                     WEIR_SEED={seed} cargo test --test it sim::"
                );
            }
            let steps: usize = results.iter().map(|r| r.0).sum();
            eprintln!("simulation: {steps} steps on {threads} thread(s)");
        }
    }
    eprintln!(
        "simulation: {cases} cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
