//! The event loop: one thread, one `mio::Poll`.
//!
//! Each turn: poll (timeout from the timer wheel, zero when work is queued,
//! R12), record edges into each connection's readiness and act on them
//! (R1–R3), run queued pumps (R8), fire due timers, resume accepting below
//! the connection limit (R9), and free dead connections last (R11), so that
//! no event or timer of this turn can reach a freed slot.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::config::Config;
use crate::conn::{Conn, Io, State};
use crate::hooks::{DefaultHooks, Hooks};
use crate::http::{self, response, Limits};
use crate::metrics::Metrics;
use crate::pipe::Pipe;
use crate::readiness::Ready;
use crate::ring::RingPool;
use crate::timer::{Handle, TimerWheel};

const WAKER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
const LISTENER_BASE: usize = usize::MAX - 1024;

/// The longest the loop sleeps without a deadline, so that a clock jump or
/// a lost wake-up can never stall it for long.
const POLL_CEILING: Duration = Duration::from_secs(1);

/// Shared scratch buffer for head reads and non-fast body reads.
const SCRATCH: usize = 64 * 1024;

/// Heads are read in steps of this size, so that body bytes sent right
/// behind a head stay in the kernel (held back by TCP flow control) rather
/// than in our memory while the connection is parked.
pub(crate) const HEAD_READ_STEP: usize = 4096;

/// Bytes a lingering connection may send before it is closed anyway.
const LINGER_DROP_LIMIT: usize = 256 * 1024;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The connection's own timer; its state says what expiry means.
    Conn(Token),
    /// A streaming pipe's stall check.
    Pipe(usize),
    /// Retry accepting after the process ran out of file descriptors.
    Accept,
    /// A SockJS session's heartbeat or expiry.
    SockJs(usize),
}

/// Stops a running [`Server`] from another thread.
#[derive(Clone, Debug)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl StopHandle {
    /// Ask the server to stop: it stops accepting, lets running transfers
    /// finish within the grace period, then returns from `run`.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// The relay: listeners, connections, pipes and timers on one thread.
pub struct Server {
    poll: Poll,
    listeners: Vec<(TcpListener, SocketAddr)>,
    pub(crate) conns: Slab<Conn>,
    pub(crate) pipes: Slab<Pipe>,
    pub(crate) paths: HashMap<String, usize>,
    pub(crate) timers: TimerWheel<Timer>,
    pub(crate) pool: RingPool,
    pub(crate) config: Config,
    pub(crate) scratch: Vec<u8>,
    pub(crate) now: Instant,
    pub(crate) metrics: Metrics,
    pub(crate) queued: Vec<usize>,
    dead: Vec<Token>,
    accept_paused: bool,
    accept_timer: Option<Handle>,
    stop_flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    grace_deadline: Option<Instant>,
    pub(crate) hooks: Box<dyn Hooks>,
    pub(crate) kernel_pipes: usize,
    pub(crate) parked_by_ip: HashMap<std::net::IpAddr, u32>,
    pub(crate) sj: crate::sjserver::SockJs,
    pub(crate) ws_waiting: HashMap<String, Token>,
    pub(crate) ws_running: std::collections::HashSet<String>,
    pub(crate) swarms: crate::signal::Swarms,
    pub(crate) topics: crate::topics::Topics,
}

impl Server {
    /// Bind every listen address of `config`.
    pub fn bind(config: Config) -> io::Result<Server> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let poll = Poll::new()?;
        let mut listeners = Vec::new();
        for (i, addr) in config.listen.iter().enumerate() {
            let mut l = bind_listener(*addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            let local = l.local_addr()?;
            poll.registry()
                .register(&mut l, Token(LISTENER_BASE + i), Interest::READABLE)?;
            listeners.push((l, local));
        }
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let now = Instant::now();
        let pool = RingPool::new(config.buffer_size, config.max_streaming_pipes, 4);
        Ok(Server {
            poll,
            listeners,
            conns: Slab::new(),
            pipes: Slab::new(),
            paths: HashMap::new(),
            timers: TimerWheel::new(now, Duration::from_millis(10), 1024),
            pool,
            config,
            scratch: vec![0; SCRATCH],
            now,
            metrics: Metrics::default(),
            queued: Vec::new(),
            dead: Vec::new(),
            accept_paused: false,
            accept_timer: None,
            stop_flag: Arc::new(AtomicBool::new(false)),
            waker,
            signals: None,
            grace_deadline: None,
            hooks: Box::new(DefaultHooks),
            kernel_pipes: 0,
            parked_by_ip: HashMap::new(),
            sj: crate::sjserver::SockJs::default(),
            ws_waiting: HashMap::new(),
            ws_running: std::collections::HashSet::new(),
            swarms: HashMap::new(),
            topics: HashMap::new(),
        })
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(_, a)| *a).collect()
    }

    /// A handle that stops the server from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            flag: self.stop_flag.clone(),
            waker: self.waker.clone(),
        }
    }

    /// Replace the hooks that observe and word ephemeral sockets' moments.
    pub fn set_hooks(&mut self, hooks: Box<dyn Hooks>) {
        self.hooks = hooks;
    }

    /// Seconds since the Unix epoch, for `Expires` and `Date`-like headers.
    pub(crate) fn unix_now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// Whether a stop was asked for.
    pub(crate) fn stopping(&self) -> bool {
        self.grace_deadline.is_some()
    }

    /// Stop gracefully on SIGINT or SIGTERM (a second signal stops at once).
    pub fn handle_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Run until stopped.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        for a in self.local_addrs() {
            info!("listening on http://{a}");
        }
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            self.now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {
                        if self.stop_flag.load(Ordering::SeqCst) && self.begin_shutdown() {
                            return Ok(());
                        }
                    }
                    SIGNALS => {
                        let got = self.signals.as_mut().map_or(0, |s| s.pending().count());
                        if got > 0 && self.begin_shutdown() {
                            info!("second signal: stopping now");
                            return Ok(());
                        }
                    }
                    Token(t) if t >= LISTENER_BASE => self.accept(t - LISTENER_BASE),
                    token => self.on_event(token, Ready::from_event(ev)),
                }
            }
            self.run_queued();
            self.expire_timers();
            self.maybe_resume_accept();
            self.free_dead();
            if let Some(deadline) = self.grace_deadline {
                if self.conns.is_empty() {
                    info!("all connections done; stopped");
                    return Ok(());
                }
                if self.now >= deadline {
                    info!(
                        "grace period over; closing {} connection(s)",
                        self.conns.len()
                    );
                    self.end_of_grace();
                    return Ok(());
                }
            }
        }
    }

    fn poll_timeout(&self) -> Duration {
        if !self.queued.is_empty() {
            return Duration::ZERO;
        }
        let mut t = POLL_CEILING;
        if let Some(d) = self.timers.next_deadline() {
            // Round up to whole milliseconds: epoll would otherwise truncate
            // and wake us just before the deadline.
            let wait = d.saturating_duration_since(self.now);
            let wait = Duration::from_millis(wait.as_nanos().div_ceil(1_000_000) as u64);
            t = t.min(wait);
        }
        if let Some(g) = self.grace_deadline {
            t = t.min(g.saturating_duration_since(self.now));
        }
        t
    }

    /// Returns true when the caller should stop right away.
    fn begin_shutdown(&mut self) -> bool {
        if self.grace_deadline.is_some() {
            return true;
        }
        info!(
            "stopping: no new connections; {} transfer(s) may finish within {:?}",
            self.pipes.iter().filter(|(_, p)| p.streaming).count(),
            self.config.shutdown_grace
        );
        for (l, _) in &mut self.listeners {
            let _ = self.poll.registry().deregister(l);
        }
        self.listeners.clear();
        self.grace_deadline = Some(self.now + self.config.shutdown_grace);
        // Idle and waiting connections end now; streaming ones go on.
        let tokens: Vec<Token> = self.conns.iter().map(|(k, _)| Token(k)).collect();
        for t in tokens {
            let Some(c) = self.conns.get(t.0) else {
                continue;
            };
            match c.state {
                State::ReadingHead if c.inbuf.is_empty() => self.kill(t, "shutdown"),
                State::EventStream => self.end_stream(t, crate::sse::StreamEnd::Done),
                State::WebSocket => self.ws_shutdown(t),
                State::SockJsRecv => self.kill(t, "shutdown"),
                State::Sender { pipe } | State::Receiver { pipe }
                    if !self.pipes.get(pipe).is_some_and(|p| p.streaming) =>
                {
                    self.pipe_party_shutdown(t);
                }
                _ => {}
            }
        }
        false
    }

    /// The grace period ran out: every transfer still running is cut as
    /// any cut is, so that each receiver can tell (no final chunk, a short
    /// body, or a reset for a close-delimited one) and each sender gets its
    /// `[ERROR]` line. What the kernels take now is written; the rest is
    /// dropped with the process.
    fn end_of_grace(&mut self) {
        let running: Vec<usize> = self
            .pipes
            .iter()
            .filter(|(_, p)| p.streaming)
            .map(|(k, _)| k)
            .collect();
        for p in running {
            self.pipe_shutdown_cut(p);
        }
    }

    fn accept(&mut self, idx: usize) {
        if self.accept_paused || self.grace_deadline.is_some() {
            return;
        }
        loop {
            if self.conns.len() >= self.config.max_connections {
                warn!(
                    "{} connections: not accepting until below 90%",
                    self.conns.len()
                );
                self.accept_paused = true;
                return;
            }
            let Some((listener, _)) = self.listeners.get(idx) else {
                return;
            };
            match listener.accept() {
                Ok((mut sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    let token = Token(entry.key());
                    if let Err(e) = self.poll.registry().register(
                        &mut sock,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        warn!("register failed: {e}");
                        continue;
                    }
                    let mut conn = Conn::new(sock, peer);
                    conn.timer = Some(self.timers.insert(
                        self.now,
                        self.config.head_timeout,
                        Timer::Conn(token),
                    ));
                    entry.insert(conn);
                    self.metrics.accepted += 1;
                    debug!("[{}] accepted from {peer}", token.0);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: the pending connection stays
                    // queued and the edge will not repeat, so pause and
                    // retry on a timer instead of spinning.
                    warn!("accept failed: {e}; pausing accept for 100 ms");
                    self.accept_paused = true;
                    if self.accept_timer.is_none() {
                        self.accept_timer = Some(self.timers.insert(
                            self.now,
                            Duration::from_millis(100),
                            Timer::Accept,
                        ));
                    }
                    return;
                }
            }
        }
    }

    fn maybe_resume_accept(&mut self) {
        if self.accept_paused
            && self.accept_timer.is_none()
            && self.conns.len() < self.config.max_connections * 9 / 10
        {
            self.accept_paused = false;
            for i in 0..self.listeners.len() {
                self.accept(i);
            }
        }
    }

    fn on_event(&mut self, token: Token, bits: Ready) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.state == State::Dead {
            return;
        }
        conn.ready.event |= bits;
        self.drive(token);
    }

    /// Act on a connection's readiness according to its state.
    pub(crate) fn drive(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        match conn.state {
            State::ReadingHead => self.read_head(token),
            State::Responding { .. } | State::Lingering { .. } => self.drive_plain(token),
            State::Sender { pipe } | State::Receiver { pipe } => self.pipe_event(pipe, token),
            State::ReadingBody => self.read_body(token),
            State::EventStream => self.stream_flush(token),
            State::WebSocket => self.ws_drive(token),
            State::SockJsRecv => self.sj_recv_event(token),
            State::Dead => {}
        }
    }

    fn read_head(&mut self, token: Token) {
        let limits = Limits {
            max_head: self.config.max_head_bytes,
            max_target: self.config.max_target_bytes,
        };
        loop {
            let Some(conn) = self.conns.get_mut(token.0) else {
                return;
            };
            if !conn.inbuf.is_empty() {
                match http::parse_head(&conn.inbuf, limits) {
                    Ok(Some((head, len))) => {
                        let mut early = conn.inbuf.split_off(len);
                        early.shrink_to_fit();
                        conn.inbuf = Vec::new();
                        if let Some(h) = conn.timer.take() {
                            self.timers.cancel(h);
                        }
                        self.metrics.requests += 1;
                        conn.head_only = head.method == http::Method::Head;
                        debug!(
                            "[{}] {:?} {} HTTP/1.{}",
                            token.0, head.method, head.path, head.minor
                        );
                        self.on_request(token, head, early);
                        return;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        debug!("[{}] bad request head: {}", token.0, e);
                        self.metrics.bad_requests += 1;
                        self.respond_error(token, 1, e.status, e.message, false);
                        return;
                    }
                }
            }
            if conn.read_eof {
                // The client ended before completing a head; nothing to say
                // on an idle keep-alive connection, a 400 otherwise.
                if conn.inbuf.is_empty() {
                    self.kill(token, "closed by client");
                } else {
                    self.respond_error(token, 1, 400, "Incomplete request head.", false);
                }
                return;
            }
            let room = (limits.max_head + 1).saturating_sub(conn.inbuf.len());
            let step = room.clamp(1, HEAD_READ_STEP);
            match conn.read_into(&mut self.scratch[..step]) {
                Io::Moved(n) => conn.inbuf.extend_from_slice(&self.scratch[..n]),
                Io::WouldBlock => return,
                Io::Eof => {}
                Io::Failed(e) => {
                    debug!("[{}] read failed: {e}", token.0);
                    self.kill(token, "read error");
                    return;
                }
            }
        }
    }

    /// Responding and lingering connections: write, then keep alive or
    /// shut down and drain.
    fn drive_plain(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        match conn.state {
            State::Responding { keep_alive } => {
                match conn.flush_out() {
                    Ok(false) => {
                        // Notice a client that went away while we wait.
                        if conn.ready.hung_up() && !conn.ready.event.contains(Ready::WRITABLE) {
                            self.kill(token, "hung up before the response was written");
                        }
                    }
                    Ok(true) if conn.reset_after_write => {
                        let _ = socket2::SockRef::from(&conn.sock).set_linger(Some(Duration::ZERO));
                        self.kill(token, "cut (reset)");
                    }
                    Ok(true) if keep_alive => {
                        conn.state = State::ReadingHead;
                        conn.head_only = false;
                        conn.ready.interest = Ready::READABLE;
                        conn.timer = Some(self.timers.insert(
                            self.now,
                            self.config.head_timeout,
                            Timer::Conn(token),
                        ));
                        self.read_head(token);
                    }
                    Ok(true) if conn.linger => self.start_linger(token),
                    Ok(true) => {
                        // Nothing more is expected from the client: close
                        // now. Whatever it did send is read first, so the
                        // close is a FIN, not a reset.
                        let _ = conn.sock.shutdown(Shutdown::Write);
                        let _ = conn.drain_input(&mut self.scratch, 64 * 1024);
                        self.kill(token, "done");
                    }
                    Err(e) => {
                        debug!("[{}] write failed: {e}", token.0);
                        self.kill(token, "write error");
                    }
                }
            }
            State::Lingering { dropped } => {
                match conn.drain_input(&mut self.scratch, LINGER_DROP_LIMIT) {
                    Io::Moved(n) => {
                        let dropped = dropped + n;
                        if dropped >= LINGER_DROP_LIMIT {
                            self.kill(token, "lingering client kept sending");
                        } else {
                            conn.state = State::Lingering { dropped };
                        }
                    }
                    Io::WouldBlock => {}
                    Io::Eof | Io::Failed(_) => self.kill(token, "done"),
                }
            }
            _ => {}
        }
    }

    /// Write `out`, then shut down the write side and drain the client until
    /// it closes (or the linger timer fires).
    pub(crate) fn finish_conn(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        conn.state = State::Responding { keep_alive: false };
        conn.ready.interest = Ready::WRITABLE;
        self.bound_final_write(token);
        self.drive_plain(token);
    }

    /// A client that never reads its last response must not hold its slot
    /// forever: a timer bounds the final write.
    fn bound_final_write(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if let Some(h) = conn.timer.take() {
            self.timers.cancel(h);
        }
        conn.timer = Some(self.timers.insert(
            self.now,
            self.config.linger.max(Duration::from_secs(1)) * 5,
            Timer::Conn(token),
        ));
    }

    fn start_linger(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        let _ = conn.sock.shutdown(Shutdown::Write);
        conn.state = State::Lingering { dropped: 0 };
        conn.ready.interest = Ready::READABLE;
        if let Some(h) = conn.timer.take() {
            self.timers.cancel(h);
        }
        if conn.read_eof {
            self.kill(token, "done");
            return;
        }
        conn.timer = Some(
            self.timers
                .insert(self.now, self.config.linger, Timer::Conn(token)),
        );
        self.drive_plain(token);
    }

    /// A short response: queue it and write it, then keep alive or linger.
    pub(crate) fn respond(&mut self, token: Token, bytes: Vec<u8>, keep_alive: bool) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.out.is_empty() {
            conn.out = bytes;
        } else {
            conn.out.extend_from_slice(&bytes);
        }
        conn.state = State::Responding { keep_alive };
        conn.ready.interest = Ready::WRITABLE;
        if !keep_alive {
            self.bound_final_write(token);
        }
        self.drive_plain(token);
    }

    /// The OS random source failed (it practically never does): `503`.
    pub(crate) fn respond_no_id(&mut self, token: Token, minor: u8) {
        let msg = "No random ID could be made; try again.";
        self.respond_error(token, minor, 503, msg, false);
    }

    /// An `[ERROR]` answer (the head alone when the request was `HEAD`).
    pub(crate) fn respond_error(
        &mut self,
        token: Token,
        minor: u8,
        status: u16,
        message: &str,
        keep_alive: bool,
    ) {
        let extra = if status == 405 {
            "Allow: GET, HEAD, POST, PUT, OPTIONS\r\n"
        } else {
            ""
        };
        self.respond_error_with(token, minor, status, message, extra, keep_alive);
    }

    /// `405` with the methods this path allows.
    pub(crate) fn respond_405(
        &mut self,
        token: Token,
        minor: u8,
        allow: &str,
        message: &str,
        keep_alive: bool,
    ) {
        let extra = format!("Allow: {allow}\r\n");
        self.respond_error_with(token, minor, 405, message, &extra, keep_alive);
    }

    fn respond_error_with(
        &mut self,
        token: Token,
        minor: u8,
        status: u16,
        message: &str,
        extra: &str,
        keep_alive: bool,
    ) {
        let head_only = self.conns.get(token.0).is_some_and(|c| c.head_only);
        let mut out = Vec::with_capacity(256);
        response::error_to(
            &mut out, minor, status, message, extra, keep_alive, head_only,
        );
        self.respond(token, out, keep_alive);
    }

    /// Whether `token`'s client may park one more connection.
    pub(crate) fn park_allowed(&self, token: Token) -> bool {
        let limit = self.config.max_parked_per_ip;
        let Some(conn) = self.conns.get(token.0) else {
            return false;
        };
        limit == 0
            || (self.parked_by_ip.get(&conn.peer.ip()).copied().unwrap_or(0) as usize) < limit
    }

    /// Count `token` as parked against its IP.
    pub(crate) fn mark_parked(&mut self, token: Token) {
        if let Some(conn) = self.conns.get_mut(token.0) {
            if !conn.parked {
                conn.parked = true;
                *self.parked_by_ip.entry(conn.peer.ip()).or_insert(0) += 1;
            }
        }
    }

    /// `token` no longer waits (it started, or it is closing).
    pub(crate) fn unpark(&mut self, token: Token) {
        if let Some(conn) = self.conns.get_mut(token.0) {
            if conn.parked {
                conn.parked = false;
                let ip = conn.peer.ip();
                if let Some(n) = self.parked_by_ip.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        self.parked_by_ip.remove(&ip);
                    }
                }
            }
        }
    }

    /// Mark a connection for freeing at the end of this turn. A pipe party
    /// is detached from its pipe first.
    pub(crate) fn kill(&mut self, token: Token, why: &str) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        let state = conn.state;
        if state == State::Dead {
            return;
        }
        conn.state = State::Dead;
        conn.ready.interest = Ready::EMPTY;
        if let Some(h) = conn.timer.take() {
            self.timers.cancel(h);
        }
        debug!("[{}] closing: {why}", token.0);
        self.dead.push(token);
        self.unpark(token);
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        let sub = conn.sub.take();
        let ws = conn.ws.take();
        if let Some(link) = conn.sj.take() {
            self.sj_detach_conn(*link);
        }
        if let Some(ws) = ws {
            self.ws_detach(token, *ws);
        }
        match state {
            State::Sender { pipe } | State::Receiver { pipe } => self.pipe_party_gone(pipe, token),
            State::EventStream => {
                if let Some(sub) = sub {
                    self.unsubscribe(token, *sub);
                }
            }
            _ => {}
        }
    }

    fn free_dead(&mut self) {
        while let Some(token) = self.dead.pop() {
            if let Some(mut conn) = self.conns.try_remove(token.0) {
                let _ = self.poll.registry().deregister(&mut conn.sock);
            }
        }
    }

    fn run_queued(&mut self) {
        let queued = std::mem::take(&mut self.queued);
        for p in queued {
            if let Some(pipe) = self.pipes.get_mut(p) {
                pipe.queued = false;
                self.pump(p);
            }
        }
    }

    fn expire_timers(&mut self) {
        let mut fired = Vec::new();
        self.timers.expire(self.now, &mut fired);
        for (handle, what) in fired {
            match what {
                Timer::Accept => {
                    if self.accept_timer == Some(handle) {
                        self.accept_timer = None;
                        self.accept_paused = false;
                        for i in 0..self.listeners.len() {
                            self.accept(i);
                        }
                    }
                }
                Timer::Pipe(p) => self.pipe_timer(p, handle),
                Timer::SockJs(k) => self.sj_timer(k, handle),
                Timer::Conn(token) => {
                    let Some(conn) = self.conns.get_mut(token.0) else {
                        continue;
                    };
                    if conn.timer != Some(handle) {
                        continue;
                    }
                    conn.timer = None;
                    match conn.state {
                        State::ReadingHead => {
                            if conn.inbuf.is_empty() {
                                self.kill(token, "idle");
                            } else {
                                self.metrics.bad_requests += 1;
                                self.respond_error(
                                    token,
                                    1,
                                    408,
                                    "The request head did not arrive in time.",
                                    false,
                                );
                            }
                        }
                        State::Sender { .. } | State::Receiver { .. } => self.wait_expired(token),
                        State::EventStream => self.stream_heartbeat(token),
                        State::WebSocket => self.ws_wait_expired(token),
                        State::ReadingBody => {
                            conn.pending = None;
                            self.respond_error(
                                token,
                                1,
                                408,
                                "The request body did not arrive in time.",
                                false,
                            );
                        }
                        _ => self.kill(token, "timer"),
                    }
                }
            }
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.local_addrs())
            .field("connections", &self.conns.len())
            .field("pipes", &self.pipes.len())
            .finish_non_exhaustive()
    }
}

fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // `[::]` serves IPv6 only; list `0.0.0.0` too for both.
        sock.set_only_v6(true)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    Ok(TcpListener::from_std(sock.into()))
}
