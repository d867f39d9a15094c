//! What every family shares: the connections, the timer wheel, the clock
//! of this turn, the configuration, the counters and the hooks, in one
//! [`Ctx`] the loop hands to whichever family a connection belongs to.
//!
//! Families change a connection's state through `Ctx`: answering it and
//! letting it go ([`Ctx::respond`], [`Ctx::finish`]) hands it back to the
//! loop's HTTP phases, which write the answer; [`Ctx::kill`] marks it for
//! freeing at the end of the turn (R11) and gives back the state it had, so
//! that its family can forget it. Connections whose next step is the
//! loop's are put on a wake list the loop drains before the turn ends: a
//! keep-alive connection may hold the next request already (R2/R3: no new
//! edge will come for bytes already read).

pub mod access;
pub mod conn;
pub mod sock;
#[cfg(feature = "tls")]
pub mod tls;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use log::debug;
use mio::Token;
use slab::Slab;

use crate::budget::{Budget, BufPool};
use crate::config::Config;
use crate::hooks::Hooks;
use crate::http::response;
use crate::metrics::Metrics;
use crate::relay::core::RelayTimer;
use crate::timer::{Handle, TimerWheel};
use crate::wire::Ready;

pub use conn::{Conn, End, Http, ListenerKind, State};

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// The connection's own timer; its state says what expiry means.
    Conn(Token),
    /// Retry accepting after the process ran out of file descriptors.
    Accept,
    /// A relay timer (a pipe's, or a parked party's wait).
    Relay(RelayTimer),
    /// A SockJS session's heartbeat or expiry.
    SockJs(usize),
}

/// The scratch buffer's size: head reads and non-fast body reads.
pub const SCRATCH: usize = 64 * 1024;

/// Shared by the loop and every family, one per server.
pub struct Ctx {
    /// Every connection, keyed by its token.
    pub conns: Slab<Conn>,
    /// Every deadline.
    pub timers: TimerWheel<Timer>,
    /// The time of this loop turn (only the loop reads the clock).
    pub now: Instant,
    /// The limits.
    pub config: Config,
    /// The counters.
    pub metrics: Metrics,
    /// A shared buffer for reads whose bytes are consumed at once.
    pub scratch: Vec<u8>,
    /// The embedder's hooks.
    pub hooks: Box<dyn Hooks>,
    /// A stop was asked for: no new long exchanges, no keep-alive.
    pub stopping: bool,
    /// Bytes of messages being assembled whole, all connections together.
    pub budget: Budget,
    /// Input buffers of WebSockets that are read (bridged, echo, SockJS),
    /// at most two per `--max-streaming-pipes`.
    pub ws_buffers: BufPool,
    /// Output rings of bridged WebSocket pipe peers, taken while bytes
    /// wait for a peer, at most two per `--max-streaming-pipes`.
    pub ws_rings: BufPool,
    dead: Vec<Token>,
    wake: Vec<Token>,
    parked_by_ip: HashMap<IpAddr, u32>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("connections", &self.conns.len())
            .field("stopping", &self.stopping)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// Give back what the connection table, the timers and the per-address
    /// counts hold beyond what they use. Connections stay at their tokens:
    /// only free slots past the last live one go.
    pub fn shrink(&mut self) {
        self.conns.shrink_to_fit();
        self.timers.shrink_if_empty();
        self.parked_by_ip.shrink_to_fit();
        self.dead.shrink_to_fit();
        self.wake.shrink_to_fit();
    }

    /// A context for `config`, its clock starting at `now`.
    pub fn new(config: Config, now: Instant, hooks: Box<dyn Hooks>) -> Ctx {
        let budget = Budget::new(config.message_budget);
        let ws_buffers = BufPool::new(
            crate::websocket::conn::WS_INBUF,
            config.max_streaming_pipes.saturating_mul(2),
            8,
        );
        let ws_rings = BufPool::new(
            crate::websocket::conn::WS_RING,
            config.max_streaming_pipes.saturating_mul(2),
            4,
        );
        Ctx {
            conns: Slab::new(),
            timers: TimerWheel::new(now, Duration::from_millis(10), 1024),
            now,
            config,
            metrics: Metrics::default(),
            scratch: vec![0; SCRATCH],
            hooks,
            stopping: false,
            budget,
            ws_buffers,
            ws_rings,
            dead: Vec::new(),
            wake: Vec::new(),
            parked_by_ip: HashMap::new(),
        }
    }

    /// Seconds since the Unix epoch, for `Expires`-like headers.
    pub fn unix_now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// A live connection (not being freed).
    pub fn live(&self, t: Token) -> Option<&Conn> {
        self.conns.get(t.0).filter(|c| !c.state.is_dead())
    }

    /// Whether `t` came in over TLS (its URLs are `https`).
    pub fn is_tls(&self, t: Token) -> bool {
        self.live(t).is_some_and(|c| c.sock.is_tls())
    }

    /// The live connection `t`, mutably.
    pub fn live_mut(&mut self, t: Token) -> Option<&mut Conn> {
        self.conns.get_mut(t.0).filter(|c| !c.state.is_dead())
    }

    /// Run the loop's next step for `t` before this turn ends.
    pub fn wake(&mut self, t: Token) {
        if !self.wake.contains(&t) {
            self.wake.push(t);
        }
    }

    /// The connections to run again (for the loop).
    pub fn take_wakes(&mut self) -> Vec<Token> {
        std::mem::take(&mut self.wake)
    }

    /// The connections to free (for the loop, at the end of a turn).
    pub fn take_dead(&mut self) -> Vec<Token> {
        std::mem::take(&mut self.dead)
    }

    // --- Timers ----------------------------------------------------------------

    /// Arm `t`'s own timer `after` from now, replacing any it had.
    pub fn arm(&mut self, t: Token, after: Duration) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(t.0) else {
            return;
        };
        if let Some(h) = conn.timer.take() {
            self.timers.cancel(h);
        }
        conn.timer = Some(self.timers.insert(now, after, Timer::Conn(t)));
    }

    /// Cancel `t`'s own timer.
    pub fn disarm(&mut self, t: Token) {
        if let Some(h) = self.conns.get_mut(t.0).and_then(|c| c.timer.take()) {
            self.timers.cancel(h);
        }
    }

    /// Whether `h` is `t`'s current timer (a stale one is ignored), taking
    /// it if so.
    pub fn take_timer(&mut self, t: Token, h: Handle) -> bool {
        match self.conns.get_mut(t.0) {
            Some(c) if c.timer == Some(h) && !c.state.is_dead() => {
                c.timer = None;
                true
            }
            _ => false,
        }
    }

    // --- Answers -----------------------------------------------------------------

    /// Queue `bytes` as `t`'s answer; the loop writes it, then reads the
    /// next request (`keep_alive`) or lets the connection go.
    pub fn respond(&mut self, t: Token, bytes: &[u8], keep_alive: bool) {
        let Some(conn) = self.live_mut(t) else {
            return;
        };
        conn.out.push(bytes);
        conn.state = State::Http(Http::Responding {
            keep_alive,
            end: End::Linger,
        });
        conn.ready.interest = Ready::WRITABLE;
        if !keep_alive {
            self.bound_final_write(t);
        }
        self.wake(t);
    }

    /// An `[ERROR]` answer (the head alone when the request was `HEAD`).
    pub fn respond_error(&mut self, t: Token, minor: u8, status: u16, msg: &str, keep_alive: bool) {
        let extra = if status == 405 {
            "Allow: GET, HEAD, POST, PUT, OPTIONS\r\n"
        } else {
            ""
        };
        self.respond_error_with(t, minor, status, msg, extra, keep_alive);
    }

    /// `405` with the methods this path allows.
    pub fn respond_405(&mut self, t: Token, minor: u8, allow: &str, msg: &str, keep_alive: bool) {
        let extra = format!("Allow: {allow}\r\n");
        self.respond_error_with(t, minor, 405, msg, &extra, keep_alive);
    }

    /// An `[ERROR]` answer with extra header lines.
    pub fn respond_error_with(
        &mut self,
        t: Token,
        minor: u8,
        status: u16,
        msg: &str,
        extra: &str,
        keep_alive: bool,
    ) {
        let head_only = self.live(t).is_some_and(|c| c.head_only);
        let mut out = Vec::with_capacity(256);
        response::error_to(&mut out, minor, status, msg, extra, keep_alive, head_only);
        self.respond(t, &out, keep_alive);
    }

    /// The OS random source failed (it practically never does): `503`.
    pub fn respond_no_id(&mut self, t: Token, minor: u8) {
        let msg = "No random ID could be made; try again.";
        self.respond_error(t, minor, 503, msg, false);
    }

    /// `t`'s exchange is over: write what its `out` holds, then end the
    /// connection as `end` says.
    pub fn finish(&mut self, t: Token, end: End) {
        let Some(conn) = self.live_mut(t) else {
            return;
        };
        conn.state = State::Http(Http::Responding {
            keep_alive: false,
            end,
        });
        conn.ready.interest = Ready::WRITABLE;
        self.bound_final_write(t);
        self.wake(t);
    }

    /// A client that never reads its last answer must not hold its slot
    /// forever: a timer bounds the final write.
    fn bound_final_write(&mut self, t: Token) {
        let after = self.config.linger.max(Duration::from_secs(1)) * 5;
        self.arm(t, after);
    }

    /// Mark `t` for freeing at the end of this turn; returns the state it
    /// had, for its family to forget it by. A dead connection gets no more
    /// events and its timer is cancelled.
    pub fn kill(&mut self, t: Token, why: &str) -> Option<State> {
        let now = self.now;
        let conn = self.live_mut(t)?;
        conn.end_request(t.0, now);
        let state = std::mem::replace(&mut conn.state, State::Dead);
        conn.ready.interest = Ready::EMPTY;
        let timer = conn.timer.take();
        if let Some(h) = timer {
            self.timers.cancel(h);
        }
        debug!("[{}] closing: {why}", t.0);
        self.dead.push(t);
        self.unpark(t);
        Some(state)
    }

    /// Close `t` with a reset: `SO_LINGER` 0, then [`kill`](Ctx::kill).
    pub fn reset(&mut self, t: Token, why: &str) -> Option<State> {
        if let Some(conn) = self.live(t) {
            let _ = socket2::SockRef::from(conn.sock.tcp()).set_linger(Some(Duration::ZERO));
        }
        self.kill(t, why)
    }

    // --- Waiting parties per address (`--max-parked-per-ip`) -----------------------

    /// Whether `t`'s client may park one more connection.
    pub fn park_allowed(&self, t: Token) -> bool {
        let limit = self.config.max_parked_per_ip;
        let Some(conn) = self.conns.get(t.0) else {
            return false;
        };
        limit == 0
            || (self.parked_by_ip.get(&conn.peer.ip()).copied().unwrap_or(0) as usize) < limit
    }

    /// Count `t` as waiting against its address.
    pub fn mark_parked(&mut self, t: Token) {
        if let Some(conn) = self.conns.get_mut(t.0) {
            if !conn.parked {
                conn.parked = true;
                *self.parked_by_ip.entry(conn.peer.ip()).or_insert(0) += 1;
            }
        }
    }

    /// `t` no longer waits.
    pub fn unpark(&mut self, t: Token) {
        if let Some(conn) = self.conns.get_mut(t.0) {
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
}
