//! The relay core: the pairing table and each pipe's life, sans-io.
//!
//! A pipe is keyed by its path (or `/s/<id>` for an ephemeral socket). Its
//! sender and its `n` receivers may arrive in any order; while any is
//! missing the others are *parked*: the pipe keeps only what it needs of
//! their heads, and a parked sender's body is not read (R6), so TCP flow
//! control holds it in the client. When the last party arrives the pipe
//! takes one buffer (a ring from the capped pool, or a kernel pipe) or
//! refuses with `503`, and starts.
//!
//! Nothing here touches a socket or the clock. Every call gets `now`, an
//! [`Env`] (the parties' byte streams, readiness and control output, the
//! timer wheel, the counters and the hooks) and a list to push
//! [`Effect`]s on: what the event loop must do with a connection once the
//! call returns (make it a party, answer and close it, let it go). The
//! loop runs this code over real sockets; `tests/sim` runs the same code
//! over simulated ones.
//!
//! A pipe's `Phase` owns what that phase needs: `Waiting` the parked
//! parties and the sender's upload as it arrived; `Streaming` the buffer,
//! the parties being served and the body decoder; `Finishing` the buffer and
//! the receivers still being written once the body is read. The parties of
//! a pipe are its links to connections: every accessor goes through them and
//! returns `Option`, and [`Table::check`] (run after every call in debug
//! builds) holds the table to its invariants.
//!
//! Rules kept here: R4/R5 (the sender is read only while the buffer has
//! room, a receiver written only while its cursor has bytes), R6 (a parked
//! sender is not read), R8 (a pump moves at most [`PUMP_BUDGET`] bytes, then
//! is queued), R10 (a ring only while streaming, from a capped pool).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use log::{debug, info, log};
use mio::Token;
use slab::Slab;

use crate::config::SenderProgress;
use crate::hooks;
use crate::http::request::BodyFraming;
use crate::http::response;
use crate::relay::env::sender_text;
pub use crate::relay::env::{
    Effect, End, Env, PartyIo, PipeId, RelayTimer, Request, Role, Side, Upload, PUMP_BUDGET,
};
use crate::relay::pump::{self, Buf, Decoding, Flow, Receiver};
use crate::ring::RingPool;
use crate::timer::Handle;
use crate::wire::Ready;

/// The relay's limits (from the server's configuration).
#[derive(Clone, Debug)]
pub struct Limits {
    /// How long a party may wait, and how long a transfer may stall.
    pub ttl: Duration,
    /// Per-transfer byte limit; 0 = none.
    pub max_upload_bytes: u64,
    /// Pipes streaming at once (each holds a ring or a kernel pipe).
    pub max_streaming_pipes: usize,
    /// Ring (and kernel pipe) size.
    pub buffer_size: usize,
    /// Use kernel pipes for one-receiver, known-length transfers.
    pub splice: bool,
    /// Bytes kernel pipes may grow by past `buffer_size`, all together.
    pub splice_budget: usize,
    /// When a sender's response is written.
    pub sender_progress: SenderProgress,
}

/// What an ephemeral socket adds to a pipe.
#[derive(Debug)]
pub struct Ephemeral {
    /// The ID (the key is `/s/<id>`).
    pub id: String,
    /// The end of waiting, fixed when the ID was made; never reset.
    pub deadline: Instant,
    /// Made by `GET /reserve` (kept while nobody is attached).
    pub reservation: bool,
    /// The reservation's upload has arrived: it cannot be uploaded to again.
    pub claimed: bool,
}

/// A parked sender.
#[derive(Debug)]
struct WaitingSender {
    token: Token,
    minor: u8,
    /// Its response waits in `out` until its body is read.
    hold: bool,
    /// It closed (a HUP, or a write of ours failed) with its whole body
    /// here: a reset that follows does not take the body back.
    closed: bool,
    wait: Option<Handle>,
    upload: Box<Upload>,
}

impl WaitingSender {
    /// Whether its declared body is all here, with the head or in the
    /// kernel: nothing it does from now on can take it back (Linux keeps a
    /// socket's received bytes readable after a close or a reset).
    fn body_in_kernel(&self, queued: u64) -> bool {
        match self.upload.framing {
            BodyFraming::Length(len) => {
                (self.upload.early.len() as u64).saturating_add(queued) >= len
            }
            _ => false,
        }
    }
}

/// A parked receiver.
#[derive(Debug)]
struct WaitingReceiver {
    token: Token,
    minor: u8,
    wait: Option<Handle>,
}

/// The parties of a pipe that has not started.
#[derive(Debug, Default)]
struct Waiting {
    sender: Option<WaitingSender>,
    receivers: Vec<WaitingReceiver>,
}

/// Where a pipe is in its life.
#[derive(Debug)]
enum Phase {
    /// Parties are arriving; no buffer is held.
    Waiting(Waiting),
    /// The body is read and relayed.
    Streaming(Box<Flow>, Box<Decoding>),
    /// The body is read; receivers are still being written.
    Finishing(Box<Flow>),
    /// Only while the phase is being replaced.
    Moving,
}

/// One path's transfer, from the first arrival to the last byte.
#[derive(Debug)]
struct Pipe {
    key: String,
    n: usize,
    phase: Phase,
    /// The ephemeral deadline while waiting; the stall check while moving.
    timer: Option<Handle>,
    ephemeral: Option<Ephemeral>,
    /// Queued for another pump next turn (R8).
    queued: bool,
}

impl Pipe {
    /// Which side `t` is on, if it is a party of this pipe.
    fn role_of(&self, t: Token) -> Option<Role> {
        match &self.phase {
            Phase::Waiting(w) => {
                if w.sender.as_ref().is_some_and(|s| s.token == t) {
                    Some(Role::Sender)
                } else {
                    w.receivers
                        .iter()
                        .any(|r| r.token == t)
                        .then_some(Role::Receiver)
                }
            }
            Phase::Streaming(f, _) | Phase::Finishing(f) => f.role_of(t),
            Phase::Moving => None,
        }
    }

    /// Every party's connection.
    fn tokens(&self) -> Vec<Token> {
        match &self.phase {
            Phase::Waiting(w) => w
                .sender
                .iter()
                .map(|s| s.token)
                .chain(w.receivers.iter().map(|r| r.token))
                .collect(),
            Phase::Streaming(f, _) | Phase::Finishing(f) => f.tokens(),
            Phase::Moving => Vec::new(),
        }
    }

    fn is_moving(&self) -> bool {
        matches!(self.phase, Phase::Streaming(..) | Phase::Finishing(_))
    }
}

/// The relay: every pipe, keyed by path, and the buffers they stream through.
#[derive(Debug)]
pub struct Table {
    limits: Limits,
    pipes: Slab<Pipe>,
    paths: HashMap<String, PipeId>,
    pool: RingPool,
    kernel_pipes: usize,
    /// Bytes the kernel pipes have grown by, within `splice_budget`.
    splice_growth: usize,
    queued: Vec<PipeId>,
    scratch: Vec<u8>,
}

/// Gauges for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayGauges {
    /// Pipes waiting for a party (and unused reservations).
    pub waiting: usize,
    /// Pipes moving bytes.
    pub streaming: usize,
    /// Rings out of the pool.
    pub rings_in_use: usize,
    /// The ring size.
    pub ring_bytes: usize,
}

impl Table {
    /// Give back what the tables hold beyond what they use (pipes stay
    /// at their IDs: only free entries past the last one go).
    pub fn shrink(&mut self) {
        self.pipes.shrink_to_fit();
        self.paths.shrink_to_fit();
        self.queued.shrink_to_fit();
    }

    /// An empty relay.
    pub fn new(limits: Limits) -> Table {
        let pool = RingPool::new(limits.buffer_size, limits.max_streaming_pipes, 4);
        Table {
            limits,
            pipes: Slab::new(),
            paths: HashMap::new(),
            pool,
            kernel_pipes: 0,
            splice_growth: 0,
            queued: Vec::new(),
            scratch: vec![0; 64 * 1024],
        }
    }

    /// Its limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Gauges counted from the table.
    pub fn gauges(&self) -> RelayGauges {
        let streaming = self.pipes.iter().filter(|(_, p)| p.is_moving()).count();
        RelayGauges {
            waiting: self.pipes.len() - streaming,
            streaming,
            rings_in_use: self.pool.in_use(),
            ring_bytes: self.pool.ring_capacity(),
        }
    }

    /// Whether `key` names a live pipe (or reservation).
    pub fn taken(&self, key: &str) -> bool {
        self.paths.contains_key(key)
    }

    /// Whether a pump waits for the next turn.
    pub fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// Pipes that are moving bytes (for the shutdown notice).
    pub fn streaming(&self) -> usize {
        self.gauges().streaming
    }

    // --- Arrivals --------------------------------------------------------------

    /// A request on a named pipe path: pair it, park it or start.
    pub fn request(&mut self, env: &mut dyn Env, now: Instant, req: Request, fx: &mut Vec<Effect>) {
        let existing = self.paths.get(&req.key).copied();
        if let Some(p) = existing {
            if let Err((status, msg)) = self.pairing_check(p, &req) {
                return refuse(env, fx, &req, status, msg);
            }
        }
        let p = match existing {
            Some(p) => p,
            None => self.new_pipe(env, req.key.clone(), req.n, None),
        };
        self.join(env, now, p, req, fx);
        self.debug_check();
    }

    fn pairing_check(&self, p: PipeId, req: &Request) -> Result<(), (u16, String)> {
        let pipe = &self.pipes[p.0];
        let key = &pipe.key;
        let Phase::Waiting(w) = &pipe.phase else {
            return Err((
                409,
                format!("A transfer on {key} is already running; try another path."),
            ));
        };
        if pipe.n != req.n {
            return Err((
                400,
                format!(
                    "The number of receivers does not match: this request says n={}, the waiting party said n={}.",
                    req.n, pipe.n
                ),
            ));
        }
        match req.side {
            Side::Sender(_) if w.sender.is_some() => {
                Err((409, format!("Another sender is already waiting on {key}.")))
            }
            Side::Receiver if w.receivers.len() >= pipe.n => {
                Err((409, format!("{key} already has its {} receiver(s).", req.n)))
            }
            _ => Ok(()),
        }
    }

    /// `POST /`: a sender opens an ephemeral socket `id`, reachable at `url`.
    pub fn open_ephemeral(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        req: Request,
        id: String,
        url: &str,
        fx: &mut Vec<Effect>,
    ) {
        let text = env
            .hooks()
            .opened(&id, url)
            .unwrap_or_else(|| hooks::text::opened(&id, url));
        let deadline = now + self.limits.ttl;
        let p = self.new_pipe(
            env,
            format!("/s/{id}"),
            1,
            Some(Ephemeral {
                id,
                deadline,
                reservation: false,
                claimed: true,
            }),
        );
        self.join_with_text(env, now, p, req, Some(text), fx);
        self.debug_check();
    }

    /// `GET /reserve`: make the reservation `id` now; the upload comes later.
    pub fn reserve(&mut self, env: &mut dyn Env, now: Instant, id: String) {
        let deadline = now + self.limits.ttl;
        self.new_pipe(
            env,
            format!("/s/{id}"),
            1,
            Some(Ephemeral {
                id,
                deadline,
                reservation: true,
                claimed: false,
            }),
        );
        self.debug_check();
    }

    /// `GET /s/<id>`: the one receiver of an ephemeral socket. Refused
    /// `404` when the ID is unknown, spent or already being received.
    pub fn receive_ephemeral(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        req: Request,
        id: &str,
        fx: &mut Vec<Effect>,
    ) {
        let usable = self.paths.get(&req.key).copied().filter(|&p| {
            let pipe = &self.pipes[p.0];
            pipe.ephemeral.is_some()
                && matches!(&pipe.phase, Phase::Waiting(w) if w.receivers.is_empty())
        });
        let Some(p) = usable else {
            let msg = env
                .hooks()
                .not_found(id)
                .unwrap_or_else(|| hooks::text::not_found(id));
            return refuse(env, fx, &req, 404, msg);
        };
        self.join(env, now, p, req, fx);
        self.debug_check();
    }

    /// `POST /reserve/<id>`: the upload into a reservation; `404` when the
    /// ID is unknown, expired or already uploaded to.
    pub fn upload_reserved(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        req: Request,
        id: &str,
        url: &str,
        fx: &mut Vec<Effect>,
    ) {
        let open = self.paths.get(&format!("/s/{id}")).copied().filter(|&p| {
            self.pipes[p.0]
                .ephemeral
                .as_ref()
                .is_some_and(|e| e.reservation && !e.claimed)
        });
        let Some(p) = open else {
            let msg = env
                .hooks()
                .not_found(id)
                .unwrap_or_else(|| hooks::text::not_found(id));
            return refuse(env, fx, &req, 404, msg);
        };
        if let Some(e) = self.pipes[p.0].ephemeral.as_mut() {
            e.claimed = true;
        }
        // Its response starts as a `POST /`'s does: the ID and the URL.
        let text = env
            .hooks()
            .opened(id, url)
            .unwrap_or_else(|| hooks::text::opened(id, url));
        self.join_with_text(env, now, p, req, Some(text), fx);
        self.debug_check();
    }

    /// A new, empty pipe registered under `key`.
    fn new_pipe(
        &mut self,
        env: &mut dyn Env,
        key: String,
        n: usize,
        ephemeral: Option<Ephemeral>,
    ) -> PipeId {
        let deadline = ephemeral.as_ref().map(|e| e.deadline);
        let p = PipeId(self.pipes.insert(Pipe {
            key: key.clone(),
            n,
            phase: Phase::Waiting(Waiting::default()),
            timer: None,
            ephemeral,
            queued: false,
        }));
        self.paths.insert(key, p);
        if let Some(d) = deadline {
            self.pipes[p.0].timer = Some(env.arm(d, RelayTimer::Pipe(p)));
        }
        p
    }

    fn join(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        p: PipeId,
        req: Request,
        fx: &mut Vec<Effect>,
    ) {
        self.join_with_text(env, now, p, req, None, fx);
    }

    /// Add a checked party to pipe `p`; start the pipe if it is complete.
    /// `opened` is an ephemeral socket's first text for its sender.
    fn join_with_text(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        p: PipeId,
        req: Request,
        opened: Option<String>,
        fx: &mut Vec<Effect>,
    ) {
        let token = req.token;
        let pipe = &self.pipes[p.0];
        let n = pipe.n;
        let Phase::Waiting(w) = &pipe.phase else {
            debug_assert!(false, "join on a moving pipe");
            return refuse(
                env,
                fx,
                &req,
                409,
                "The transfer is already running.".into(),
            );
        };
        let completes = match req.side {
            Side::Sender(_) => w.receivers.len() == n,
            Side::Receiver => w.sender.is_some() && w.receivers.len() + 1 == n,
        };
        if !completes && !env.may_park(token) {
            self.drop_if_empty(env, p);
            let msg = format!(
                "Too many waiting transfers from your address ({}); finish some first.",
                env.park_limit()
            );
            return refuse(env, fx, &req, 429, msg);
        }
        let buf = if completes {
            let body = match (&req.side, &w.sender) {
                (Side::Sender(u), _) => Some((u.framing, u.multipart.is_some())),
                (Side::Receiver, Some(s)) => Some((s.upload.framing, s.upload.multipart.is_some())),
                (Side::Receiver, None) => None,
            };
            let mut parties = w.receivers.iter().map(|r| r.token);
            let spliceable = env.can_splice(token)
                && parties.all(|t| env.can_splice(t))
                && w.sender.as_ref().map_or(true, |s| env.can_splice(s.token));
            match self.take_buf(env, n, body, spliceable) {
                Some(b) => Some(b),
                None => {
                    self.drop_if_empty(env, p);
                    return refuse(
                        env,
                        fx,
                        &req,
                        503,
                        "The relay is at its limit of running transfers; try again soon.".into(),
                    );
                }
            }
        } else {
            None
        };
        let live_only = self.pipes[p.0]
            .ephemeral
            .as_ref()
            .is_some_and(|e| !e.reservation);
        let ephemeral_id = self.pipes[p.0].ephemeral.as_ref().map(|e| e.id.clone());
        let Some(io) = env.io(token) else {
            debug_assert!(false, "a request from no connection");
            return;
        };
        fx.push(Effect::Joined {
            token,
            pipe: p,
            role: match req.side {
                Side::Sender(_) => Role::Sender,
                Side::Receiver => Role::Receiver,
            },
        });
        let Phase::Waiting(w) = &mut self.pipes[p.0].phase else {
            return;
        };
        match req.side {
            Side::Sender(upload) => {
                // `POST /` must be live: its first lines carry the new ID.
                let hold = !live_only && self.limits.sender_progress.holds(req.expect_continue);
                let minor = req.minor;
                if req.expect_continue {
                    // An interim answer, not the response: a held sender
                    // gets it at once too (curl waits a second without it).
                    io.out.push(b"HTTP/1.1 100 Continue\r\n\r\n");
                    if hold {
                        let _ = io.out.flush_to(io.stream, io.ready);
                    }
                }
                let out = io.out.buf();
                response::status_line(out, minor, 200);
                out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
                out.extend_from_slice(response::NO_BUFFERING.as_bytes());
                if minor >= 1 {
                    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                }
                out.extend_from_slice(b"Connection: close\r\n\r\n");
                let have = w.receivers.len();
                let chunked = minor >= 1;
                match opened {
                    Some(text) => response::stream_text(out, chunked, &text),
                    None if ephemeral_id.is_some() => {}
                    None => {
                        if have < n {
                            let line = format!("[INFO] Waiting for {n} receiver(s)...");
                            response::stream_line(out, chunked, &line);
                        }
                        if have > 0 {
                            let line = format!("[INFO] {have} receiver(s) connected.");
                            response::stream_line(out, chunked, &line);
                        }
                    }
                }
                w.sender = Some(WaitingSender {
                    token,
                    minor,
                    hold,
                    closed: false,
                    wait: None,
                    upload,
                });
                debug!("[{}] sender on {} (n={n})", token.0, self.pipes[p.0].key);
            }
            Side::Receiver => {
                w.receivers.push(WaitingReceiver {
                    token,
                    minor: req.minor,
                    wait: None,
                });
                let have = w.receivers.len();
                if let Some(s) = &w.sender {
                    let text = match &ephemeral_id {
                        Some(id) => env
                            .hooks()
                            .connected(id)
                            .unwrap_or_else(hooks::text::connected),
                        None => format!("[INFO] {have} receiver(s) connected.\n"),
                    };
                    let (st, hold, chunked) = (s.token, s.hold, s.minor >= 1);
                    if let Some(sio) = env.io(st) {
                        sender_text(sio.out, hold, chunked, &text);
                    }
                    self.flush_waiting(env, p, st, fx);
                }
                debug!(
                    "[{}] receiver {have}/{n} on {}",
                    token.0, self.pipes[p.0].key
                );
            }
        }
        if let Some(buf) = buf {
            // Writing to the waiting sender may have found it gone.
            let still = matches!(
                &self.pipes[p.0].phase,
                Phase::Waiting(w) if w.sender.is_some() && w.receivers.len() == n
            );
            if still {
                self.start(env, now, p, buf, fx);
                return;
            }
            self.return_buf(buf);
        }
        fx.push(Effect::Park(token));
        // Ephemeral sockets wait under their pipe's fixed deadline; a named
        // pipe's parties each wait under their own TTL.
        let wait = self.pipes[p.0]
            .ephemeral
            .is_none()
            .then(|| env.arm(now + self.limits.ttl, RelayTimer::Wait(p, token)));
        if let Phase::Waiting(w) = &mut self.pipes[p.0].phase {
            if let Some(s) = w.sender.as_mut().filter(|s| s.token == token) {
                s.wait = wait;
            } else if let Some(r) = w.receivers.iter_mut().find(|r| r.token == token) {
                r.wait = wait;
            }
        }
        if let Some(io) = env.io(token) {
            io.ready.interest = Ready::EMPTY;
        }
        self.flush_waiting(env, p, token, fx);
        // R2/R3: edges seen while the head was read are kept in `event`. A
        // close that came in the same read as the head is one of them, and
        // no new edge will repeat it: act on what is kept, now.
        if self
            .pipes
            .get(p.0)
            .is_some_and(|pp| pp.role_of(token).is_some())
        {
            self.ready(env, now, p, token, fx);
        }
    }

    /// A buffer for a pipe about to start: a kernel pipe when the
    /// zero-copy path applies (one receiver, a declared length, no form),
    /// else a ring from the pool; `None` at the limit (R10).
    fn take_buf(
        &mut self,
        env: &mut dyn Env,
        n: usize,
        body: Option<(BodyFraming, bool)>,
        spliceable: bool,
    ) -> Option<Buf> {
        if self.pool.in_use() + self.kernel_pipes >= self.limits.max_streaming_pipes {
            return None;
        }
        #[cfg(target_os = "linux")]
        if self.limits.splice && spliceable && n == 1 {
            if let Some((framing, multipart)) = body {
                if matches!(framing, BodyFraming::Length(l) if l > 0) && !multipart {
                    match crate::splice::KernelPipe::new(self.limits.buffer_size) {
                        Ok(k) => {
                            self.kernel_pipes += 1;
                            return Some(Buf::Kernel(k));
                        }
                        Err(e) => debug!("no kernel pipe ({e}); using a ring"),
                    }
                }
            }
        }
        let _ = (env, n, body, spliceable);
        self.pool.take().map(Buf::Ring)
    }

    fn return_buf(&mut self, buf: Buf) {
        match buf {
            Buf::Ring(r) => self.pool.give(r),
            #[cfg(target_os = "linux")]
            Buf::Kernel(k) => {
                self.kernel_pipes -= 1;
                self.splice_growth -= k.growth();
            }
        }
    }

    /// Every party is here: move from `Waiting` to `Streaming`.
    fn start(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        p: PipeId,
        buf: Buf,
        fx: &mut Vec<Effect>,
    ) {
        let ttl = self.limits.ttl;
        let pipe = &mut self.pipes[p.0];
        let Phase::Waiting(w) = std::mem::replace(&mut pipe.phase, Phase::Moving) else {
            debug_assert!(false, "start on a moving pipe");
            return;
        };
        let Some(sender) = w.sender else {
            debug_assert!(false, "start without a sender");
            return;
        };
        if let Some(h) = pipe.timer.take() {
            env.disarm(h);
        }
        pipe.timer = Some(env.arm(now + ttl, RelayTimer::Pipe(p)));
        for h in w.receivers.iter().filter_map(|r| r.wait).chain(sender.wait) {
            env.disarm(h);
        }
        for t in w.receivers.iter().map(|r| r.token).chain([sender.token]) {
            fx.push(Effect::Unpark(t));
        }
        if pipe.ephemeral.is_none() {
            if let Some(io) = env.io(sender.token) {
                let line = format!("[INFO] Start sending to {} receiver(s)!\n", pipe.n);
                sender_text(io.out, sender.hold, sender.minor >= 1, &line);
            }
        }
        let receivers = w.receivers.iter().map(|r| (r.token, r.minor)).collect();
        let active = pump::Sender {
            token: sender.token,
            minor: sender.minor,
            hold: sender.hold,
        };
        let (flow, dec) = pump::begin(now, buf, active, receivers, *sender.upload);
        let multipart = dec.has_multipart();
        pipe.phase = Phase::Streaming(flow, dec);
        if !multipart {
            self.write_heads(env, p);
        }
        debug!(
            "pipe {} started: {} receiver(s)",
            self.pipes[p.0].key, self.pipes[p.0].n
        );
        self.pump(env, now, p, fx);
    }

    /// Queue each receiver's response head, forwarding the sender's headers.
    fn write_heads(&mut self, env: &mut dyn Env, p: PipeId) {
        if let Phase::Streaming(flow, dec) = &mut self.pipes[p.0].phase {
            pump::write_heads(env, flow, dec);
        }
    }

    // --- Events ------------------------------------------------------------------

    /// Readiness changed for party `t` of pipe `p`.
    pub fn ready(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        p: PipeId,
        t: Token,
        fx: &mut Vec<Effect>,
    ) {
        let Some(pipe) = self.pipes.get(p.0) else {
            return;
        };
        let Some(role) = pipe.role_of(t) else {
            return;
        };
        if pipe.is_moving() {
            let act = env
                .io(t)
                .is_some_and(|io| !io.ready.filtered().is_empty() || io.ready.hung_up());
            if act {
                self.pump(env, now, p, fx);
            }
            self.debug_check();
            return;
        }
        // Parked: notice a client that left, then write what is pending
        // (in this order: a sender that closed must not be written to).
        match role {
            Role::Sender => self.parked_sender_event(env, now, p, t, fx),
            Role::Receiver => {
                let gone = match env.io(t) {
                    Some(io) => {
                        let scratch = &mut self.scratch;
                        matches!(
                            crate::wire::drain_input(
                                io.stream,
                                io.ready,
                                io.read_eof,
                                scratch,
                                64 * 1024
                            ),
                            crate::wire::Io::Eof | crate::wire::Io::Failed(_)
                        )
                    }
                    None => true,
                };
                if gone {
                    debug!("[{}] parked receiver left", t.0);
                    self.party_gone(env, now, p, t, fx);
                }
            }
        }
        if self
            .pipes
            .get(p.0)
            .is_some_and(|pp| pp.role_of(t).is_some())
        {
            self.flush_waiting(env, p, t, fx);
        }
        self.debug_check();
    }

    fn parked_sender_event(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        p: PipeId,
        t: Token,
        fx: &mut Vec<Effect>,
    ) {
        let Phase::Waiting(w) = &mut self.pipes[p.0].phase else {
            return;
        };
        let Some(s) = w.sender.as_mut() else { return };
        let Some(io) = env.io(t) else { return };
        let until_close = s.upload.framing == BodyFraming::UntilClose;
        let body_in_kernel = s.body_in_kernel(io.stream.queued());
        let ev = io.ready.event;
        // A reset is a sender that gave up (even with its body here),
        // unless it closed first: then the reset answers a write of ours,
        // and its body is still in the kernel.
        let gone = if ev.contains(Ready::ERROR) {
            !s.closed
        } else {
            ev.contains(Ready::HUP) && !until_close && !body_in_kernel
        };
        if gone {
            // A framed body's sender that shuts down before it is read has
            // given up (R7 holds for streaming senders, whose bytes are read
            // to the end; a parked one's are never read).
            debug!("[{}] parked sender left", t.0);
            self.party_gone(env, now, p, t, fx);
        } else if ev.contains(Ready::HUP) {
            // Its whole body is here (a half-close ends an HTTP/1.0 body; or
            // the declared length is in the kernel). It may have closed for
            // good (`curl -m`) rather than half-closed (`nc -N`): a write now
            // would only draw a reset, so nothing is written to it until the
            // body is read.
            io.ready.interest.remove(Ready::WRITABLE);
            if !s.hold {
                debug!(
                    "[{}] parked sender closed its side; holding its response",
                    t.0
                );
            }
            s.hold = true;
            s.closed = true;
        }
    }

    /// Write a parked party's pending control bytes (unless held); a failed
    /// write means it is gone, unless it is a sender whose whole body is
    /// in the kernel (then it is held).
    fn flush_waiting(&mut self, env: &mut dyn Env, p: PipeId, t: Token, fx: &mut Vec<Effect>) {
        let Some(pipe) = self.pipes.get(p.0) else {
            return;
        };
        let Phase::Waiting(w) = &pipe.phase else {
            return;
        };
        let held = w.sender.as_ref().is_some_and(|s| s.token == t && s.hold);
        let Some(io) = env.io(t) else { return };
        if held {
            io.ready.interest.remove(Ready::WRITABLE);
            // It may wait for minutes: keep its few lines, not slack.
            io.out.release();
            return;
        }
        match io.out.flush_to(io.stream, io.ready) {
            Ok(_) => {
                if io.out.is_pending() {
                    io.ready.interest.insert(Ready::WRITABLE);
                } else {
                    io.ready.interest.remove(Ready::WRITABLE);
                    // A parked party may wait for minutes: keep nothing.
                    io.out.release();
                }
            }
            Err(e) => {
                // A sender whose whole body is in the kernel has not left
                // for the relay's purposes: hold it and read the body when
                // the pipe starts.
                if let Some(Phase::Waiting(w)) = self.pipes.get_mut(p.0).map(|pp| &mut pp.phase) {
                    if let Some(s) = w.sender.as_mut().filter(|s| s.token == t) {
                        if s.body_in_kernel(io.stream.queued()) {
                            debug!("[{}] write failed: {e}; its body is here, holding", t.0);
                            io.out.clear();
                            io.ready.interest.remove(Ready::WRITABLE);
                            s.hold = true;
                            s.closed = true;
                            return;
                        }
                    }
                }
                debug!("[{}] write failed: {e}", t.0);
                self.party_gone_parked(env, p, t, fx);
            }
        }
    }

    /// A timer of the relay's fired.
    pub fn timer(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        what: RelayTimer,
        h: Handle,
        fx: &mut Vec<Effect>,
    ) {
        match what {
            RelayTimer::Pipe(p) => self.pipe_timer(env, now, p, h, fx),
            RelayTimer::Wait(p, t) => self.wait_expired(env, p, t, h, fx),
        }
        self.debug_check();
    }

    fn pipe_timer(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        p: PipeId,
        h: Handle,
        fx: &mut Vec<Effect>,
    ) {
        let ttl = self.limits.ttl;
        let Some(pipe) = self.pipes.get_mut(p.0) else {
            return;
        };
        if pipe.timer != Some(h) {
            return;
        }
        pipe.timer = None;
        let last = match &pipe.phase {
            Phase::Waiting(_) => return self.ephemeral_expired(env, p, fx),
            Phase::Streaming(f, _) | Phase::Finishing(f) => f.last_progress,
            Phase::Moving => return,
        };
        let due = last + ttl;
        if now >= due {
            let why = format!(
                "No byte moved for {} s; the transfer was cut.",
                ttl.as_secs()
            );
            self.abort(env, now, p, &why, true, fx);
        } else {
            pipe.timer = Some(env.arm(due, RelayTimer::Pipe(p)));
        }
    }

    /// An ephemeral socket's wait is over: the sender is told, a waiting
    /// receiver gets `404`, a bare reservation vanishes.
    fn ephemeral_expired(&mut self, env: &mut dyn Env, p: PipeId, fx: &mut Vec<Effect>) {
        let Some(pipe) = self.remove_pipe(env, p) else {
            return;
        };
        let id = pipe
            .ephemeral
            .as_ref()
            .map_or("", |e| e.id.as_str())
            .to_string();
        let Phase::Waiting(w) = pipe.phase else {
            return;
        };
        if w.sender.is_some() || !w.receivers.is_empty() {
            env.metrics().transfers_timeout += 1;
        }
        debug!("ephemeral socket {id} expired");
        for r in w.receivers {
            let msg = env
                .hooks()
                .not_found(&id)
                .unwrap_or_else(|| hooks::text::not_found(&id));
            fx.push(Effect::Unpark(r.token));
            if let Some(h) = r.wait {
                env.disarm(h);
            }
            fx.push(Effect::Refuse {
                token: r.token,
                minor: r.minor,
                status: 404,
                msg,
            });
        }
        if let Some(s) = w.sender {
            let text = env
                .hooks()
                .timeout(&id)
                .unwrap_or_else(hooks::text::timeout);
            fx.push(Effect::Unpark(s.token));
            end_sender(env, s.token, s.minor >= 1, &text, End::Linger, false, fx);
        }
    }

    /// A parked party waited longer than the TTL.
    fn wait_expired(
        &mut self,
        env: &mut dyn Env,
        p: PipeId,
        t: Token,
        h: Handle,
        fx: &mut Vec<Effect>,
    ) {
        let Some(pipe) = self.pipes.get_mut(p.0) else {
            return;
        };
        let n = pipe.n;
        let Phase::Waiting(w) = &mut pipe.phase else {
            return;
        };
        let secs = self.limits.ttl.as_secs();
        let mine = w
            .sender
            .as_ref()
            .is_some_and(|s| s.token == t && s.wait == Some(h))
            || w.receivers
                .iter()
                .any(|r| r.token == t && r.wait == Some(h));
        if !mine {
            return;
        }
        env.metrics().transfers_timeout += 1;
        match self.detach_waiting(env, p, t, fx) {
            Some((Role::Sender, minor)) => {
                let line =
                    format!("[ERROR] Timed out: {n} receiver(s) did not arrive within {secs} s.\n");
                end_sender(env, t, minor >= 1, &line, End::Linger, false, fx);
            }
            Some((Role::Receiver, minor)) => fx.push(Effect::Refuse {
                token: t,
                minor,
                status: 408,
                msg: format!("Timed out: no sender arrived within {secs} s."),
            }),
            None => {}
        }
    }

    /// Take a parked party out of its pipe and say which side it was; the
    /// pipe goes when empty. The connection itself is left to the caller.
    fn detach_waiting(
        &mut self,
        env: &mut dyn Env,
        p: PipeId,
        t: Token,
        fx: &mut Vec<Effect>,
    ) -> Option<(Role, u8)> {
        let pipe = self.pipes.get_mut(p.0)?;
        let Phase::Waiting(w) = &mut pipe.phase else {
            return None;
        };
        let found = if w.sender.as_ref().is_some_and(|s| s.token == t) {
            let s = w.sender.take()?;
            if let Some(h) = s.wait {
                env.disarm(h);
            }
            Some((Role::Sender, s.minor))
        } else if let Some(i) = w.receivers.iter().position(|r| r.token == t) {
            let r = w.receivers.swap_remove(i);
            if let Some(h) = r.wait {
                env.disarm(h);
            }
            Some((Role::Receiver, r.minor))
        } else {
            None
        };
        if found.is_some() {
            fx.push(Effect::Unpark(t));
        }
        self.drop_if_empty(env, p);
        found
    }

    /// The loop closed party `t` for a reason of its own (it is already
    /// gone): the pipe lets it go as if it had left.
    pub fn gone(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        p: PipeId,
        t: Token,
        fx: &mut Vec<Effect>,
    ) {
        if self
            .pipes
            .get(p.0)
            .is_some_and(|pp| pp.role_of(t).is_some())
        {
            self.party_gone(env, now, p, t, fx);
        }
        self.debug_check();
    }

    /// Party `t` left (its connection failed or closed): it is taken out,
    /// closed, and the others are told.
    fn party_gone(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        p: PipeId,
        t: Token,
        fx: &mut Vec<Effect>,
    ) {
        let Some(pipe) = self.pipes.get(p.0) else {
            return;
        };
        if pipe.is_moving() {
            self.moving_party_gone(env, now, p, t, fx);
        } else {
            self.party_gone_parked(env, p, t, fx);
        }
    }

    fn party_gone_parked(&mut self, env: &mut dyn Env, p: PipeId, t: Token, fx: &mut Vec<Effect>) {
        let Some(pipe) = self.pipes.get(p.0) else {
            return;
        };
        let ephemeral = pipe.ephemeral.is_some();
        let n = pipe.n;
        match self.detach_waiting(env, p, t, fx) {
            Some((Role::Sender, _)) => {
                fx.push(Effect::Close(t));
                env.metrics().transfers_abandoned += 1;
                if ephemeral {
                    // The ID was for this upload only: whoever waits for it
                    // learns now rather than at the deadline.
                    self.end_waiting(
                        env,
                        p,
                        404,
                        "The upload into this socket was abandoned.",
                        fx,
                    );
                }
            }
            Some((Role::Receiver, _)) => {
                fx.push(Effect::Close(t));
                env.metrics().transfers_abandoned += 1;
                let Some(Phase::Waiting(w)) = self.pipes.get(p.0).map(|pp| &pp.phase) else {
                    return;
                };
                let have = w.receivers.len();
                if let Some(s) = &w.sender {
                    let line =
                        format!("[INFO] A receiver left; {have} of {n} receiver(s) connected.\n");
                    let (st, hold, chunked) = (s.token, s.hold, s.minor >= 1);
                    if let Some(io) = env.io(st) {
                        sender_text(io.out, hold, chunked, &line);
                    }
                    self.flush_waiting(env, p, st, fx);
                }
            }
            None => {}
        }
    }

    /// End a waiting pipe: each parked receiver gets `status`, a parked
    /// sender gets the line, and the pipe is removed.
    fn end_waiting(
        &mut self,
        env: &mut dyn Env,
        p: PipeId,
        status: u16,
        msg: &str,
        fx: &mut Vec<Effect>,
    ) {
        let Some(pipe) = self.remove_pipe(env, p) else {
            return;
        };
        let Phase::Waiting(w) = pipe.phase else {
            return;
        };
        for r in w.receivers {
            if let Some(h) = r.wait {
                env.disarm(h);
            }
            fx.push(Effect::Unpark(r.token));
            fx.push(Effect::Refuse {
                token: r.token,
                minor: r.minor,
                status,
                msg: msg.to_string(),
            });
        }
        if let Some(s) = w.sender {
            if let Some(h) = s.wait {
                env.disarm(h);
            }
            fx.push(Effect::Unpark(s.token));
            end_sender(
                env,
                s.token,
                s.minor >= 1,
                &format!("[ERROR] {msg}\n"),
                End::Linger,
                false,
                fx,
            );
        }
    }

    /// The relay is stopping: parked parties are told and let go; running
    /// transfers go on.
    pub fn shutdown(&mut self, env: &mut dyn Env, fx: &mut Vec<Effect>) {
        let waiting: Vec<PipeId> = self
            .pipes
            .iter()
            .filter(|(_, pp)| !pp.is_moving())
            .map(|(k, _)| PipeId(k))
            .collect();
        for p in waiting {
            // A reservation with nobody attached simply stays until it is
            // dropped with the process.
            if self.pipes[p.0].tokens().is_empty() {
                continue;
            }
            self.end_waiting_shutdown(env, p, fx);
        }
        self.debug_check();
    }

    fn end_waiting_shutdown(&mut self, env: &mut dyn Env, p: PipeId, fx: &mut Vec<Effect>) {
        let Some(pipe) = self.remove_pipe(env, p) else {
            return;
        };
        let Phase::Waiting(w) = pipe.phase else {
            return;
        };
        for r in w.receivers {
            if let Some(h) = r.wait {
                env.disarm(h);
            }
            fx.push(Effect::Unpark(r.token));
            fx.push(Effect::Refuse {
                token: r.token,
                minor: r.minor,
                status: 503,
                msg: "The relay is shutting down.".into(),
            });
        }
        if let Some(s) = w.sender {
            if let Some(h) = s.wait {
                env.disarm(h);
            }
            fx.push(Effect::Unpark(s.token));
            end_sender(
                env,
                s.token,
                s.minor >= 1,
                "[ERROR] The relay is shutting down.\n",
                End::Linger,
                false,
                fx,
            );
        }
    }

    /// The shutdown grace ran out: every running transfer is cut as any cut
    /// is, so each receiver can tell and each sender gets its `[ERROR]` line.
    pub fn cut_all(&mut self, env: &mut dyn Env, now: Instant, fx: &mut Vec<Effect>) {
        let moving: Vec<PipeId> = self
            .pipes
            .iter()
            .filter(|(_, pp)| pp.is_moving())
            .map(|(k, _)| PipeId(k))
            .collect();
        for p in moving {
            self.abort(
                env,
                now,
                p,
                "The relay shut down before the transfer ended; send it again.",
                true,
                fx,
            );
        }
        self.debug_check();
    }

    /// Run the pumps queued by an earlier turn (R8).
    pub fn run_queued(&mut self, env: &mut dyn Env, now: Instant, fx: &mut Vec<Effect>) {
        for p in std::mem::take(&mut self.queued) {
            if let Some(pipe) = self.pipes.get_mut(p.0) {
                pipe.queued = false;
                self.pump(env, now, p, fx);
            }
        }
        self.debug_check();
    }

    // --- The pump -------------------------------------------------------------------

    /// Move bytes until nothing moves or the budget is spent.
    fn pump(&mut self, env: &mut dyn Env, now: Instant, p: PipeId, fx: &mut Vec<Effect>) {
        let limit = self.limits.max_upload_bytes;
        let Table {
            pipes,
            scratch,
            queued,
            limits,
            splice_growth,
            ..
        } = self;
        let Some(pipe) = pipes.get_mut(p.0) else {
            return;
        };
        let outcome = match &mut pipe.phase {
            Phase::Streaming(flow, dec) => pump::run(env, now, flow, Some(dec), scratch, limit, fx),
            Phase::Finishing(flow) => pump::run(env, now, flow, None, scratch, limit, fx),
            _ => return,
        };
        // A transfer that keeps filling its kernel pipe gets a larger one
        // while the splice budget lasts (returned in `return_buf`).
        #[cfg(target_os = "linux")]
        if let Phase::Streaming(flow, _) | Phase::Finishing(flow) = &mut pipe.phase {
            if let Buf::Kernel(k) = &mut flow.buf {
                if k.wants_grow() {
                    *splice_growth += k.grow(limits.splice_budget - *splice_growth);
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (limits, splice_growth);
        if let Some(e) = pipe.ephemeral.as_ref() {
            if let Phase::Streaming(flow, _) | Phase::Finishing(flow) = &mut pipe.phase {
                let bytes = flow.buf.end_offset();
                if bytes >= flow.progress_mark + (1 << 20) {
                    flow.progress_mark = bytes;
                    env.hooks().progress(&e.id, bytes);
                }
            }
        }
        match outcome {
            pump::Outcome::Going { budget_spent } => {
                if budget_spent && !pipe.queued {
                    pipe.queued = true;
                    queued.push(p);
                }
            }
            pump::Outcome::BodyDone => {
                let Phase::Streaming(flow, _) = std::mem::replace(&mut pipe.phase, Phase::Moving)
                else {
                    return;
                };
                pipe.phase = Phase::Finishing(flow);
                // Receivers may already be through.
                self.pump(env, now, p, fx);
            }
            pump::Outcome::Complete => self.complete(env, now, p, fx),
            pump::Outcome::Cut(why) => self.abort(env, now, p, &why, true, fx),
            pump::Outcome::AllReceiversLeft(why) => self.abort(env, now, p, &why, true, fx),
            pump::Outcome::SenderLeft(why) => self.abort(env, now, p, &why, false, fx),
        }
    }

    /// The body is complete and every receiver has it (or left).
    fn complete(&mut self, env: &mut dyn Env, now: Instant, p: PipeId, fx: &mut Vec<Effect>) {
        let Some(pipe) = self.remove_pipe(env, p) else {
            return;
        };
        let (Phase::Finishing(flow) | Phase::Streaming(flow, _)) = pipe.phase else {
            return;
        };
        let flow = *flow;
        let bytes = flow.buf.end_offset();
        let took = now.saturating_duration_since(flow.started_at);
        let outcome = if flow.lost == 0 {
            "complete"
        } else {
            "partial"
        };
        if flow.lost == 0 {
            env.metrics().transfers_complete += 1;
        } else {
            env.metrics().transfers_cut += 1;
        }
        // The parties' access lines tell a complete transfer; one that
        // some receivers left is worth a line of its own.
        let level = if flow.lost == 0 {
            log::Level::Debug
        } else {
            log::Level::Info
        };
        log!(
            level,
            "transfer {} {outcome}: {bytes} bytes to {}/{} receiver(s) in {:.3}s",
            pipe.key,
            flow.delivered,
            pipe.n,
            took.as_secs_f64()
        );
        if let Some(e) = &pipe.ephemeral {
            env.hooks().progress(&e.id, bytes);
        }
        if let Some(s) = flow.sender {
            let text = match (&pipe.ephemeral, flow.lost) {
                (Some(e), 0) => env
                    .hooks()
                    .end(&e.id, bytes, took)
                    .unwrap_or_else(|| hooks::text::end(bytes)),
                (None, 0) => format!("[INFO] Sent successfully! ({bytes} bytes)\n"),
                _ => format!(
                    "[ERROR] Sent {bytes} bytes to {} of {} receiver(s); {} left before the end.\n",
                    flow.delivered, pipe.n, flow.lost
                ),
            };
            end_sender(
                env,
                s.token,
                s.minor >= 1,
                &text,
                End::Close,
                flow.lost == 0,
                fx,
            );
        }
        self.return_buf(flow.buf);
    }

    /// End a moving pipe early: receivers see a cut, the sender (if still
    /// there and `tell_sender`) gets an `[ERROR]` line.
    fn abort(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        p: PipeId,
        why: &str,
        tell_sender: bool,
        fx: &mut Vec<Effect>,
    ) {
        let Some(pipe) = self.remove_pipe(env, p) else {
            return;
        };
        let (Phase::Finishing(flow) | Phase::Streaming(flow, _)) = pipe.phase else {
            return;
        };
        let mut flow = *flow;
        let bytes = flow.buf.end_offset();
        env.metrics().transfers_cut += 1;
        let took = now.saturating_duration_since(flow.started_at);
        info!(
            "transfer {} cut: {bytes} bytes in {:.3}s: {why}",
            pipe.key,
            took.as_secs_f64()
        );
        for r in std::mem::take(&mut flow.receivers) {
            cut_receiver(env, r, &mut flow.buf, flow.heads_written, why, fx);
        }
        if let Some(s) = flow.sender.take() {
            if tell_sender {
                let mut line = String::from("[ERROR] ");
                let _ = writeln!(line, "{why}");
                end_sender(env, s.token, s.minor >= 1, &line, End::Linger, false, fx);
            } else {
                fx.push(Effect::Close(s.token));
            }
        }
        self.return_buf(flow.buf);
    }

    /// A party of a moving pipe is gone (the loop closed it).
    fn moving_party_gone(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        p: PipeId,
        t: Token,
        fx: &mut Vec<Effect>,
    ) {
        let Some(pipe) = self.pipes.get_mut(p.0) else {
            return;
        };
        let streaming = matches!(pipe.phase, Phase::Streaming(..));
        let (Phase::Streaming(flow, _) | Phase::Finishing(flow)) = &mut pipe.phase else {
            return;
        };
        if flow.sender.as_ref().is_some_and(|s| s.token == t) {
            flow.sender = None;
            fx.push(Effect::Close(t));
            // A sender that leaves after its whole body is fine: the
            // receivers still get every byte. While streaming, the pump
            // decides: what is left of the body may already be in hand.
            if streaming {
                self.pump(env, now, p, fx);
            }
            return;
        }
        if flow.remove_receiver(t).is_some() {
            fx.push(Effect::Close(t));
            flow.lost += 1;
            self.after_receiver_left(env, now, p, fx);
        }
    }

    fn after_receiver_left(
        &mut self,
        env: &mut dyn Env,
        now: Instant,
        p: PipeId,
        fx: &mut Vec<Effect>,
    ) {
        let Some(pipe) = self.pipes.get_mut(p.0) else {
            return;
        };
        let (Phase::Streaming(flow, _) | Phase::Finishing(flow)) = &mut pipe.phase else {
            return;
        };
        if flow.receivers.is_empty() && flow.delivered == 0 {
            let why = format!(
                "All receivers left; the transfer was cut after {} bytes.",
                flow.buf.end_offset()
            );
            return self.abort(env, now, p, &why, true, fx);
        }
        let others = flow.receivers.len();
        if let Some(s) = &flow.sender {
            let line = format!(
                "[ERROR] A receiver left before the end; the {others} other receiver(s) go on.\n"
            );
            if let Some(io) = env.io(s.token) {
                sender_text(io.out, s.hold, s.minor >= 1, &line);
                if !s.hold {
                    io.ready.interest.insert(Ready::WRITABLE);
                }
            }
        }
        if !pipe.queued {
            pipe.queued = true;
            self.queued.push(p);
        }
    }

    /// A pipe nobody is attached to is removed, so its path is free at
    /// once; an unclaimed reservation stays until its deadline.
    fn drop_if_empty(&mut self, env: &mut dyn Env, p: PipeId) {
        let empty = self.pipes.get(p.0).is_some_and(|pp| {
            matches!(&pp.phase, Phase::Waiting(w) if w.sender.is_none() && w.receivers.is_empty())
                && !pp
                    .ephemeral
                    .as_ref()
                    .is_some_and(|e| e.reservation && !e.claimed)
        });
        if empty {
            self.remove_pipe(env, p);
        }
    }

    /// Take a pipe out of the table; its parties are left to the caller.
    fn remove_pipe(&mut self, env: &mut dyn Env, p: PipeId) -> Option<Pipe> {
        let pipe = self.pipes.try_remove(p.0)?;
        if self.paths.get(&pipe.key) == Some(&p) {
            self.paths.remove(&pipe.key);
        }
        if let Some(h) = pipe.timer {
            env.disarm(h);
        }
        self.queued.retain(|q| *q != p);
        Some(pipe)
    }

    // --- Invariants ---------------------------------------------------------------

    fn debug_check(&self) {
        #[cfg(debug_assertions)]
        if let Err(e) = self.check() {
            panic!("relay invariant broken: {e}");
        }
    }

    /// Check the table's invariants: every path maps to its pipe and back;
    /// no connection is a party twice; a waiting pipe has room for its
    /// parties; a moving pipe holds a buffer and has been started by a
    /// sender; the buffers out match the pipes that hold them.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        let mut rings = 0;
        let mut growth = 0;
        let mut kernel = 0;
        for (k, pipe) in &self.pipes {
            if self.paths.get(&pipe.key) != Some(&PipeId(k)) {
                return Err(format!("pipe {k} ({}) is not under its path", pipe.key));
            }
            for t in pipe.tokens() {
                if !seen.insert(t) {
                    return Err(format!("connection {} is a party twice", t.0));
                }
            }
            match &pipe.phase {
                Phase::Waiting(w) => {
                    if w.receivers.len() > pipe.n {
                        return Err(format!(
                            "pipe {} has {} receivers for n={}",
                            pipe.key,
                            w.receivers.len(),
                            pipe.n
                        ));
                    }
                    if w.sender.is_some() && w.receivers.len() == pipe.n {
                        return Err(format!("pipe {} is complete but waiting", pipe.key));
                    }
                }
                Phase::Streaming(f, _) | Phase::Finishing(f) => {
                    if f.receivers.len() + f.delivered + f.lost != pipe.n {
                        return Err(format!("pipe {}: receivers do not add up to n", pipe.key));
                    }
                    match &f.buf {
                        Buf::Ring(_) => rings += 1,
                        #[cfg(target_os = "linux")]
                        Buf::Kernel(k) => {
                            kernel += 1;
                            growth += k.growth();
                        }
                    }
                }
                Phase::Moving => return Err(format!("pipe {} left between phases", pipe.key)),
            }
        }
        if self.paths.len() != self.pipes.len() {
            return Err("a path names no pipe".into());
        }
        if growth != self.splice_growth || self.splice_growth > self.limits.splice_budget {
            return Err(format!(
                "kernel pipes grew by {growth}, the budget says {} of {}",
                self.splice_growth, self.limits.splice_budget
            ));
        }
        if rings != self.pool.in_use() || kernel != self.kernel_pipes {
            return Err(format!(
                "buffers out: {rings} rings and {kernel} kernel pipes held, pool says {} and {}",
                self.pool.in_use(),
                self.kernel_pipes
            ));
        }
        Ok(())
    }

    /// The pipe `t` is a party of, and its side (for tests and checks).
    pub fn party(&self, t: Token) -> Option<(PipeId, Role)> {
        self.pipes
            .iter()
            .find_map(|(k, pp)| pp.role_of(t).map(|r| (PipeId(k), r)))
    }

    /// What the relay knows of the pipe on `key`, for `GET /status/<path>`:
    /// a read of the table, nothing is kept for it.
    pub fn status(&self, key: &str) -> Option<PipeStatus> {
        let pipe = &self.pipes[self.paths.get(key)?.0];
        let mut st = PipeStatus {
            state: "waiting",
            n: pipe.n,
            receivers: 0,
            sender: false,
            length: None,
            read: 0,
            delivered: 0,
            content_type: None,
            disposition: None,
            form: false,
        };
        let text = |v: &Option<Vec<u8>>| {
            v.as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        };
        match &pipe.phase {
            Phase::Waiting(w) => {
                st.receivers = w.receivers.len();
                if let Some(s) = &w.sender {
                    st.sender = true;
                    st.form = s.upload.multipart.is_some();
                    st.length = match s.upload.framing {
                        BodyFraming::Length(l) if !st.form => Some(l),
                        BodyFraming::None => Some(0),
                        _ => None,
                    };
                    st.content_type = text(&s.upload.content_type);
                    st.disposition = text(&s.upload.content_disposition);
                }
            }
            Phase::Streaming(flow, dec) => {
                st.state = "streaming";
                st.sender = flow.sender.is_some();
                st.form = dec.has_multipart();
                st.length = dec.payload_length();
                st.content_type = text(&dec.content_type);
                st.disposition = text(&dec.content_disposition);
                flow_status(flow, &mut st);
            }
            Phase::Finishing(flow) => {
                st.state = "finishing";
                flow_status(flow, &mut st);
                st.length = Some(st.read);
            }
            Phase::Moving => return None,
        }
        Some(st)
    }

    /// Whether a pipe is registered under `key` (for tests).
    pub fn has_path(&self, key: &str) -> bool {
        self.paths.contains_key(key)
    }
}

/// A moving pipe's counts: receivers being served, bytes read, and the
/// bytes the slowest of them has been given.
fn flow_status(flow: &Flow, st: &mut PipeStatus) {
    st.receivers = flow.receivers.len();
    st.read = flow.buf.end_offset();
    st.delivered = flow
        .receivers
        .iter()
        .map(|r| r.cursor)
        .min()
        .unwrap_or(st.read);
}

/// A pipe as `GET /status/<path>` reports it (docs/protocol.md, "Status").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeStatus {
    /// `waiting`, `streaming` or `finishing`.
    pub state: &'static str,
    /// Receivers the pipe waits for (`?n=`).
    pub n: usize,
    /// Receivers connected (waiting) or still being served (moving).
    pub receivers: usize,
    /// Whether the sender is connected.
    pub sender: bool,
    /// The body's length when the sender declared one (not for a form).
    pub length: Option<u64>,
    /// Body bytes taken from the sender.
    pub read: u64,
    /// Body bytes the slowest receiver still being served has been given
    /// (accepted by its kernel); `read` when none is left.
    pub delivered: u64,
    /// The sender's `Content-Type`.
    pub content_type: Option<String>,
    /// The sender's `Content-Disposition`.
    pub disposition: Option<String>,
    /// The body is a form: the receiver gets its first part.
    pub form: bool,
}

/// Refuse a request that never became a party.
fn refuse(env: &mut dyn Env, fx: &mut Vec<Effect>, req: &Request, status: u16, msg: String) {
    env.metrics().transfers_rejected += 1;
    fx.push(Effect::Refuse {
        token: req.token,
        minor: req.minor,
        status,
        msg,
    });
}

/// Write the sender's last text, end its response, and let it go.
///
/// Unless every receiver got every byte (`ok`), the response ends in a way
/// the client reports as an error, so that `curl -T ... && next` does not
/// go on after a failed transfer: a chunked response without its final
/// chunk, a close-delimited one with a reset once the text is written.
pub(crate) fn end_sender(
    env: &mut dyn Env,
    t: Token,
    chunked: bool,
    text: &str,
    end: End,
    ok: bool,
    fx: &mut Vec<Effect>,
) {
    if let Some(io) = env.io(t) {
        response::stream_text(io.out.buf(), chunked, text);
        if chunked && ok {
            io.out.push(response::LAST_CHUNK);
        }
    }
    let end = if !ok && !chunked {
        End::ResetAfterWrite
    } else {
        end
    };
    fx.push(Effect::Release { token: t, end });
}

/// A receiver whose transfer was cut: it must be able to tell.
///
/// What it is owed and the kernel takes now (its head, the bytes it has not
/// read from the buffer) is written first, without waiting, so that a cut
/// shows as a short body rather than an empty reply.
fn cut_receiver(
    env: &mut dyn Env,
    mut r: Receiver,
    buf: &mut Buf,
    heads_written: bool,
    why: &str,
    fx: &mut Vec<Effect>,
) {
    let t = r.token;
    let Some(io) = env.io(t) else {
        fx.push(Effect::Close(t));
        return;
    };
    if !heads_written {
        // Nothing was sent yet: an honest error status is possible.
        io.out.clear();
        fx.push(Effect::Refuse {
            token: t,
            minor: r.minor,
            status: 502,
            msg: format!("The transfer failed before it began: {why}"),
        });
        return;
    }
    io.ready.event.insert(Ready::WRITABLE);
    if let Ok(true) = io.out.flush_to(io.stream, io.ready) {
        pump::write_what_is_taken(io.stream, &mut r, buf);
    }
    if r.close_delimited() {
        // A close-delimited body cannot show a cut by its end; a reset can.
        fx.push(Effect::Reset(t));
    } else {
        // No terminator is written: the missing final chunk or the short
        // Content-Length is the signal.
        fx.push(Effect::Close(t));
    }
}

#[cfg(test)]
mod tests {
    //! The table's rules, one by one, over in-memory connections. (The
    //! seeded simulation in `tests/sim` drives the same code through random
    //! interleavings; these pin each rule by name.)

    use std::collections::VecDeque;
    use std::io::{self, Read, Write};

    use super::*;
    use crate::hooks::{DefaultHooks, Hooks};
    use crate::metrics::Metrics;
    use crate::timer::TimerWheel;
    use crate::wire::{OutBuf, Readiness, Stream};

    #[derive(Default)]
    struct Mem {
        inbound: VecDeque<u8>,
        fin: bool,
        outbound: Vec<u8>,
        /// A write while the client's body is still unread is a failure
        /// (the client may have closed for good; a write draws a reset).
        no_write_before_read: bool,
        /// The client closed for good and its reset has come: writes fail,
        /// and what it sent stays readable (as on Linux).
        reset: bool,
    }

    impl Read for Mem {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.inbound.is_empty() {
                return if self.fin {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let n = buf.len().min(self.inbound.len());
            for (i, b) in self.inbound.drain(..n).enumerate() {
                buf[i] = b;
            }
            Ok(n)
        }
    }

    impl Write for Mem {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            assert!(
                !self.no_write_before_read || self.inbound.is_empty(),
                "written to while its body was unread"
            );
            if self.reset {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.outbound.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Stream for Mem {
        fn queued(&self) -> u64 {
            self.inbound.len() as u64
        }
    }

    #[derive(Default)]
    struct C {
        sock: Mem,
        ready: Readiness,
        out: OutBuf,
        eof: bool,
    }

    struct World {
        conns: Vec<C>,
        timers: TimerWheel<RelayTimer>,
        metrics: Metrics,
        hooks: DefaultHooks,
        park: bool,
    }

    impl Env for World {
        fn io(&mut self, t: Token) -> Option<PartyIo<'_>> {
            let c = self.conns.get_mut(t.0)?;
            Some(PartyIo {
                stream: &mut c.sock,
                ready: &mut c.ready,
                out: &mut c.out,
                read_eof: &mut c.eof,
            })
        }
        fn may_park(&mut self, _t: Token) -> bool {
            self.park
        }
        fn park_limit(&self) -> usize {
            7
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

    struct T {
        table: Table,
        w: World,
        now: Instant,
        fx: Vec<Effect>,
    }

    impl T {
        fn new(progress: SenderProgress) -> T {
            let now = Instant::now();
            T {
                table: Table::new(Limits {
                    ttl: Duration::from_secs(5),
                    max_upload_bytes: 0,
                    max_streaming_pipes: 2,
                    buffer_size: 64,
                    splice: false,
                    splice_budget: 0,
                    sender_progress: progress,
                }),
                w: World {
                    conns: Vec::new(),
                    timers: TimerWheel::new(now, Duration::from_millis(10), 64),
                    metrics: Metrics::default(),
                    hooks: DefaultHooks,
                    park: true,
                },
                now,
                fx: Vec::new(),
            }
        }

        fn conn(&mut self) -> Token {
            let mut c = C::default();
            c.ready.event = Ready::WRITABLE;
            self.w.conns.push(c);
            Token(self.w.conns.len() - 1)
        }

        /// A sender of `body` whose first `early` bytes came with its head
        /// and whose next `sent` bytes wait in the kernel.
        fn sender(
            &mut self,
            key: &str,
            n: usize,
            body: &[u8],
            early: usize,
            sent: usize,
            expect: bool,
        ) -> Token {
            let t = self.conn();
            self.w.conns[t.0]
                .sock
                .inbound
                .extend(&body[early..early + sent]);
            if sent > 0 {
                self.w.conns[t.0].ready.event.insert(Ready::READABLE);
            }
            let req = Request {
                token: t,
                key: key.into(),
                n,
                minor: 1,
                expect_continue: expect,
                side: Side::Sender(Box::new(Upload {
                    framing: BodyFraming::Length(body.len() as u64),
                    content_type: None,
                    content_disposition: None,
                    x_piping: Vec::new(),
                    multipart: None,
                    early: body[..early].to_vec(),
                })),
            };
            self.table.request(&mut self.w, self.now, req, &mut self.fx);
            t
        }

        fn receiver(&mut self, key: &str, n: usize) -> Token {
            let t = self.conn();
            let req = Request {
                token: t,
                key: key.into(),
                n,
                minor: 1,
                expect_continue: false,
                side: Side::Receiver,
            };
            self.table.request(&mut self.w, self.now, req, &mut self.fx);
            t
        }

        /// The client sends more of its body.
        fn send(&mut self, t: Token, bytes: &[u8]) {
            self.w.conns[t.0].sock.inbound.extend(bytes);
            self.ready(t, Ready::READABLE);
        }

        fn ready(&mut self, t: Token, bits: Ready) {
            self.w.conns[t.0].ready.event |= bits;
            if let Some((p, _)) = self.table.party(t) {
                self.table.ready(&mut self.w, self.now, p, t, &mut self.fx);
            }
        }

        /// What `t` got: the socket's bytes, then what its `out` still
        /// holds (a released connection's end, written by the loop).
        fn got(&mut self, t: Token) -> String {
            let released = self.released(t) || self.refused(t).is_some();
            let c = &mut self.w.conns[t.0];
            if !released {
                return String::from_utf8_lossy(&c.sock.outbound).into_owned();
            }
            let mut all = c.sock.outbound.clone();
            let mut rest = Vec::new();
            let mut r = Readiness {
                event: Ready::WRITABLE,
                ..Readiness::default()
            };
            let mut sink = Mem::default();
            let _ = c.out.flush_to(&mut sink, &mut r);
            rest.extend_from_slice(&sink.outbound);
            c.sock.outbound.extend_from_slice(&rest);
            all.extend_from_slice(&rest);
            String::from_utf8_lossy(&all).into_owned()
        }

        fn refused(&self, t: Token) -> Option<u16> {
            self.fx.iter().find_map(|e| match e {
                Effect::Refuse { token, status, .. } if *token == t => Some(*status),
                _ => None,
            })
        }

        fn released(&self, t: Token) -> bool {
            self.fx
                .iter()
                .any(|e| matches!(e, Effect::Release { token, .. } if *token == t))
        }
    }

    #[test]
    fn sender_then_receiver_pairs_moves_every_byte_and_frees_the_path() {
        let mut t = T::new(SenderProgress::Auto);
        let body: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let s = t.sender("/a", 1, &body, 10, 990, true);
        assert!(
            t.got(s).contains("Waiting for 1 receiver(s)"),
            "live with Expect"
        );
        let r = t.receiver("/a", 1);
        for _ in 0..100 {
            t.ready(s, Ready::READABLE);
            t.ready(r, Ready::WRITABLE);
        }
        let got = t.w.conns[r.0].sock.outbound.clone();
        assert!(
            got.ends_with(&body),
            "the receiver got every byte after its head"
        );
        assert!(t.released(s) && t.released(r));
        assert!(!t.table.has_path("/a"), "the path is free");
        assert_eq!(t.w.metrics.transfers_complete, 1);
        t.table.check().unwrap();
    }

    #[test]
    fn pairing_refusals() {
        let mut t = T::new(SenderProgress::Auto);
        let _s = t.sender("/p", 2, b"abc", 0, 0, true);
        let s2 = t.sender("/p", 2, b"abc", 0, 0, true);
        assert_eq!(t.refused(s2), Some(409), "a second sender");
        let r = t.receiver("/p", 3);
        assert_eq!(t.refused(r), Some(400), "n does not match");
        let _r1 = t.receiver("/p", 2);
        let _r2 = t.receiver("/p", 2);
        let late = t.receiver("/p", 2);
        assert_eq!(t.refused(late), Some(409), "the transfer is running");
        t.table.check().unwrap();
    }

    #[test]
    fn a_sender_without_expect_is_held_until_its_body_is_read() {
        let mut t = T::new(SenderProgress::Auto);
        let r = t.receiver("/h", 1);
        let s = t.sender("/h", 1, b"0123456789", 0, 4, false);
        t.ready(r, Ready::WRITABLE);
        assert_eq!(t.got(s), "", "nothing while its body is being read");
        assert!(t.got(r).ends_with("0123"), "the receiver gets what came");
        t.send(s, b"456789");
        let got = t.got(s);
        assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
        assert!(got.contains("Sent successfully! (10 bytes)"), "{got}");
    }

    #[test]
    fn a_parked_sender_that_closed_with_its_body_in_the_kernel_is_held() {
        let mut t = T::new(SenderProgress::Live);
        let s = t.sender("/g", 1, b"my message", 0, 10, false);
        let waiting = t.got(s);
        assert!(waiting.contains("Waiting"), "live: {waiting}");
        // It closes for good, its ten bytes in the kernel: from now on a
        // write before they are read fails the test.
        t.w.conns[s.0].sock.fin = true;
        t.w.conns[s.0].sock.no_write_before_read = true;
        t.ready(s, Ready::HUP);
        assert!(t.table.has_path("/g"), "a complete body keeps the path");
        let r = t.receiver("/g", 1);
        t.ready(r, Ready::WRITABLE);
        assert!(t.got(r).ends_with("my message"), "{}", t.got(r));
        assert!(t.got(s).contains("Sent successfully"));
    }

    #[test]
    fn a_sender_whose_write_fails_as_its_pipe_starts_is_read_to_the_end() {
        // It sent its whole body and closed for good; the relay starts the
        // pipe before it sees the close, and its first line draws the
        // reset. What it sent is still in the kernel: every byte arrives.
        let mut t = T::new(SenderProgress::Live);
        let r1 = t.receiver("/c", 2);
        let s = t.sender("/c", 2, b"all of it", 0, 9, true);
        t.w.conns[s.0].sock.fin = true;
        t.w.conns[s.0].sock.reset = true;
        let r2 = t.receiver("/c", 2);
        t.ready(r1, Ready::WRITABLE);
        t.ready(r2, Ready::WRITABLE);
        assert!(t.got(r1).ends_with("all of it"), "{}", t.got(r1));
        assert!(t.got(r2).ends_with("all of it"), "{}", t.got(r2));
        assert_eq!(t.w.metrics.transfers_abandoned, 0);
    }

    #[test]
    fn a_streaming_sender_whose_write_fails_is_read_to_the_end() {
        let mut t = T::new(SenderProgress::Live);
        let s = t.sender("/e", 2, b"0123456789", 0, 4, true);
        let r1 = t.receiver("/e", 2);
        let r2 = t.receiver("/e", 2);
        t.ready(r1, Ready::WRITABLE);
        assert!(t.got(r1).ends_with("0123"), "{}", t.got(r1));
        // The rest of its body comes and it closes for good; the relay has
        // not seen that yet when a receiver leaves and the line telling
        // the sender so draws the reset.
        let c = &mut t.w.conns[s.0];
        c.sock.inbound.extend(b"456789");
        c.sock.fin = true;
        c.sock.reset = true;
        t.w.conns[r2.0].sock.fin = true;
        t.ready(r2, Ready::READABLE | Ready::HUP);
        assert!(!t.fx.contains(&Effect::Close(s)), "held, not dropped");
        t.ready(s, Ready::READABLE | Ready::HUP);
        t.ready(r1, Ready::WRITABLE);
        assert!(t.got(r1).ends_with("0123456789"), "{}", t.got(r1));
    }

    #[test]
    fn a_parked_sender_whose_write_fails_with_its_body_in_the_kernel_is_held() {
        let mut t = T::new(SenderProgress::Live);
        let s = t.sender("/d", 3, b"0123456789", 4, 6, true);
        let r1 = t.receiver("/d", 3);
        // It closes for good; the next progress line draws the reset.
        t.w.conns[s.0].sock.fin = true;
        t.w.conns[s.0].sock.reset = true;
        let r2 = t.receiver("/d", 3);
        assert!(t.table.has_path("/d"), "its whole body is here: kept");
        assert!(!t.fx.contains(&Effect::Close(s)));
        // The reset our write drew arrives: it does not take the body.
        t.ready(s, Ready::READABLE | Ready::HUP | Ready::ERROR);
        assert!(t.table.has_path("/d"), "a reset after its close keeps it");
        let r3 = t.receiver("/d", 3);
        for r in [r1, r2, r3] {
            t.ready(r, Ready::WRITABLE);
            assert!(t.got(r).ends_with("0123456789"), "{}", t.got(r));
        }
    }

    #[test]
    fn a_parked_sender_that_leaves_early_frees_its_path() {
        let mut t = T::new(SenderProgress::Auto);
        let s = t.sender("/x", 1, b"0123456789", 3, 2, true);
        t.w.conns[s.0].sock.fin = true;
        t.ready(s, Ready::READABLE | Ready::HUP);
        assert!(!t.table.has_path("/x"));
        assert!(t.fx.contains(&Effect::Close(s)));
        assert_eq!(t.w.metrics.transfers_abandoned, 1);
    }

    #[test]
    fn waits_expire_with_their_answers() {
        let mut t = T::new(SenderProgress::Auto);
        let s = t.sender("/t1", 1, b"abc", 0, 0, true);
        let r = t.receiver("/t2", 1);
        t.now += Duration::from_secs(6);
        let mut fired = Vec::new();
        t.w.timers.expire(t.now, &mut fired);
        assert_eq!(fired.len(), 2);
        for (h, what) in fired {
            t.table.timer(&mut t.w, t.now, what, h, &mut t.fx);
        }
        assert_eq!(t.refused(r), Some(408));
        assert!(t.released(s));
        assert!(t.got(s).contains("[ERROR] Timed out"));
        assert!(
            !t.got(s).ends_with("0\r\n\r\n"),
            "a failed send ends without its last chunk"
        );
        assert!(!t.table.has_path("/t1") && !t.table.has_path("/t2"));
    }

    #[test]
    fn the_streaming_limit_is_a_503_and_the_others_keep_waiting() {
        let mut t = T::new(SenderProgress::Auto);
        for p in ["/1", "/2"] {
            t.receiver(p, 1);
            t.sender(p, 1, &[0; 500], 0, 0, true);
        }
        t.receiver("/3", 1);
        let s = t.sender("/3", 1, b"abc", 0, 0, true);
        assert_eq!(t.refused(s), Some(503));
        assert!(t.table.has_path("/3"), "the receiver still waits");
    }

    #[test]
    fn max_parked_is_a_429_naming_the_limit() {
        let mut t = T::new(SenderProgress::Auto);
        t.w.park = false;
        let r = t.receiver("/q", 1);
        assert_eq!(t.refused(r), Some(429));
        let msg = t.fx.iter().find_map(|e| match e {
            Effect::Refuse { msg, .. } => Some(msg.clone()),
            _ => None,
        });
        assert!(msg.unwrap().contains("(7)"));
        assert!(!t.table.has_path("/q"));
    }

    #[test]
    fn ephemeral_ids_are_spent_by_their_receiver() {
        let mut t = T::new(SenderProgress::Auto);
        let s = t.conn();
        let req = Request {
            token: s,
            key: "/s/abc".into(),
            n: 1,
            minor: 1,
            expect_continue: false,
            side: Side::Sender(Box::new(Upload {
                framing: BodyFraming::Length(2),
                content_type: None,
                content_disposition: None,
                x_piping: Vec::new(),
                multipart: None,
                early: b"hi".to_vec(),
            })),
        };
        t.table.open_ephemeral(
            &mut t.w,
            t.now,
            req,
            "abc".into(),
            "http://x/s/abc",
            &mut t.fx,
        );
        assert!(
            t.got(s).contains("Ephemeral socket open with ID abc"),
            "live without Expect"
        );
        let r = t.conn();
        let req = Request {
            token: r,
            key: "/s/abc".into(),
            n: 1,
            minor: 1,
            expect_continue: false,
            side: Side::Receiver,
        };
        t.table
            .receive_ephemeral(&mut t.w, t.now, req, "abc", &mut t.fx);
        t.ready(r, Ready::WRITABLE);
        assert!(t.got(r).ends_with("hi"));
        let again = t.conn();
        let req = Request {
            token: again,
            key: "/s/abc".into(),
            n: 1,
            minor: 1,
            expect_continue: false,
            side: Side::Receiver,
        };
        t.table
            .receive_ephemeral(&mut t.w, t.now, req, "abc", &mut t.fx);
        assert_eq!(t.refused(again), Some(404));
    }
}
