//! The event loop: one thread, one `mio::Poll`. It knows no protocol.
//!
//! Each turn: poll (timeout from the timer wheel, zero when work is queued,
//! R12), record edges into each connection's readiness and hand the
//! connection to whoever owns it (R1–R3), run the loop's own follow-ups
//! (wakes, queued pumps, R8), fire due timers, resume accepting below the
//! connection limit (R9), and free dead connections last (R11), so that no
//! event or timer of this turn can reach a freed slot.
//!
//! **The one dispatch point.** A connection's [`State`] names its family;
//! `Server::dispatch` and its siblings (timer, shutdown, close) match on
//! it and call the family for the moments every family has: ready, timer,
//! shutdown, close. Adding a family is a variant in `State` and an arm in
//! each of these matches, here and nowhere else.
//!
//! The HTTP phases of a connection (reading a head, a short body,
//! answering, lingering) are in [`http`]; routing a parsed head to its
//! family is in [`route`].

pub mod access;
pub mod http;
pub mod route;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Events as MioEvents, Interest, Poll, Token, Waker};

use crate::config::Config;
use crate::events::Events;
use crate::hooks::{DefaultHooks, Hooks};
use crate::net::sock::Sock;
use crate::net::{Conn, Ctx, Http, ListenerKind, State, Timer};
use crate::relay::Relay;
use crate::sockjs::SockJs;
use crate::websocket::WebSockets;
use crate::wire::Ready;

const WAKER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
const LISTENER_BASE: usize = usize::MAX - 1024;

/// The longest the loop sleeps without a deadline, so that a clock jump or
/// a lost wake-up can never stall it for long.
const POLL_CEILING: Duration = Duration::from_secs(1);
/// Connection slots a table keeps without giving memory back.
const SHRINK_ABOVE: usize = 1024;

/// Rounds of wakes one turn runs before it lets the poll in (R8).
const WAKE_ROUNDS: usize = 64;

/// Which family a connection belongs to, read off its state.
#[derive(Clone, Copy, Debug)]
enum Family {
    /// Between keep-alive requests, with nothing read.
    IdleHttp,
    Http,
    Relay(crate::relay::core::PipeId),
    Events,
    WebSocket,
    SockJs,
}

/// The families: each owns its tables and its logic.
#[derive(Debug)]
pub(crate) struct Families {
    /// Named pipes and ephemeral sockets.
    pub relay: Relay,
    /// Signal swarms and event topics.
    pub events: Events,
    /// WebSocket pipes and echo.
    pub ws: WebSockets,
    /// SockJS.
    pub sockjs: SockJs,
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

/// One listening socket and what its connections speak.
struct Listener {
    sock: TcpListener,
    addr: SocketAddr,
    /// Connections accepted here speak TLS.
    tls: bool,
    /// The `--metrics-listen` address: `/metrics` and `/healthz` only.
    metrics: bool,
}

/// The relay: listeners, connections and families on one thread.
pub struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    /// The TLS settings new connections start with; replaced on `SIGHUP`.
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
    ctx: Ctx,
    fam: Families,
    accept_paused: bool,
    accept_timer: Option<crate::timer::Handle>,
    stop_flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    grace_deadline: Option<Instant>,
    /// When the tables last gave memory back ([`Server::maybe_shrink`]).
    shrunk: Shrunk,
}

/// The last time the tables gave memory back.
struct Shrunk {
    at: Instant,
    /// Connection slots left then.
    capacity: usize,
    /// Connections then.
    len: usize,
}

impl Server {
    /// Bind every listen address of `config`.
    pub fn bind(config: Config) -> io::Result<Server> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        #[cfg(feature = "tls")]
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(
                crate::net::tls::load(cert, key)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            ),
            _ => None,
        };
        let poll = Poll::new()?;
        let mut listeners = Vec::new();
        let plain = config.listen.iter().map(|a| (*a, false));
        let secure = config.tls_addrs().into_iter().map(|a| (a, true));
        for (i, (addr, tls)) in plain.chain(secure).enumerate() {
            let mut sock = bind_listener(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            let local = sock.local_addr()?;
            poll.registry()
                .register(&mut sock, Token(LISTENER_BASE + i), Interest::READABLE)?;
            listeners.push(Listener {
                sock,
                addr: local,
                tls,
                metrics: false,
            });
        }
        if let Some(addr) = config.metrics_listen {
            let mut sock = bind_listener(addr).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr} for metrics: {e}"),
                )
            })?;
            let token = Token(LISTENER_BASE + listeners.len());
            poll.registry()
                .register(&mut sock, token, Interest::READABLE)?;
            listeners.push(Listener {
                addr: sock.local_addr()?,
                sock,
                tls: false,
                metrics: true,
            });
        }
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let fam = Families {
            relay: Relay::new(&config),
            events: Events::new(),
            ws: WebSockets::default(),
            sockjs: SockJs::default(),
        };
        let ctx = Ctx::new(config, Instant::now(), Box::new(DefaultHooks));
        Ok(Server {
            poll,
            listeners,
            #[cfg(feature = "tls")]
            tls,
            ctx,
            fam,
            accept_paused: false,
            accept_timer: None,
            stop_flag: Arc::new(AtomicBool::new(false)),
            waker,
            signals: None,
            grace_deadline: None,
            shrunk: Shrunk {
                at: Instant::now(),
                capacity: 0,
                len: 0,
            },
        })
    }

    /// The plain-HTTP addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| !l.tls && !l.metrics)
            .map(|l| l.addr)
            .collect()
    }

    /// The `--metrics-listen` address actually bound.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.listeners.iter().find(|l| l.metrics).map(|l| l.addr)
    }

    /// The HTTPS addresses actually bound.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| l.tls)
            .map(|l| l.addr)
            .collect()
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
        self.ctx.hooks = hooks;
    }

    /// Stop gracefully on SIGINT or SIGTERM (a second signal stops at
    /// once); on SIGHUP reread the TLS certificate and key.
    pub fn handle_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Run until stopped.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = MioEvents::with_capacity(1024);
        for l in &self.listeners {
            let scheme = if l.tls { "https" } else { "http" };
            if l.metrics {
                info!("serving /metrics and /healthz on http://{}", l.addr);
            } else {
                info!("listening on {scheme}://{}", l.addr);
            }
        }
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            self.ctx.now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {
                        if self.stop_flag.load(Ordering::SeqCst) && self.begin_shutdown() {
                            return Ok(());
                        }
                    }
                    SIGNALS => {
                        let got: Vec<i32> = self
                            .signals
                            .as_mut()
                            .map_or_else(Vec::new, |s| s.pending().collect());
                        if got.contains(&signal_hook::consts::SIGHUP) {
                            self.reload();
                        }
                        let stop = got.iter().any(|s| *s != signal_hook::consts::SIGHUP);
                        if stop && self.begin_shutdown() {
                            info!("second signal: stopping now");
                            return Ok(());
                        }
                    }
                    Token(t) if t >= LISTENER_BASE => self.accept(t - LISTENER_BASE),
                    token => self.on_event(token, ready_of(ev)),
                }
                self.run_wakes();
            }
            self.fam.relay.run_queued(&mut self.ctx);
            self.run_wakes();
            self.expire_timers();
            self.run_wakes();
            self.maybe_resume_accept();
            self.free_dead();
            self.maybe_shrink();
            if let Some(deadline) = self.grace_deadline {
                if self.ctx.conns.is_empty() {
                    info!("all connections done; stopped");
                    return Ok(());
                }
                if self.ctx.now >= deadline {
                    info!(
                        "grace period over; closing {} connection(s)",
                        self.ctx.conns.len()
                    );
                    self.fam.relay.cut_all(&mut self.ctx);
                    self.run_wakes();
                    // Whatever is left ends here; each family forgets its
                    // own (their clients see the connection close).
                    let left: Vec<Token> = self.ctx.conns.iter().map(|(k, _)| Token(k)).collect();
                    for t in left {
                        self.close(t, "grace period over");
                    }
                    return Ok(());
                }
            }
        }
    }

    /// After a burst has gone, give its memory back: when fewer than a
    /// quarter of the connection table's slots are in use (and it has
    /// room for more than [`SHRINK_ABOVE`]), every table lets go of what
    /// it does not use, at most once per [`POLL_CEILING`], and then
    /// `config.release_memory` runs (the binary's returns the allocator's
    /// free pages to the kernel). Each step is linear in its table, as
    /// its growth was.
    fn maybe_shrink(&mut self) {
        let (cap, len) = (self.ctx.conns.capacity(), self.ctx.conns.len());
        // Again only once the table has grown since, or the connections
        // have fallen to a quarter of what they were at the last time: a
        // connection left high in the table (which keeps it from
        // shrinking) does not bring this back every second.
        let news = cap > self.shrunk.capacity || len * 4 <= self.shrunk.len;
        if cap <= SHRINK_ABOVE
            || len * 4 >= cap
            || !news
            || self.shrunk.at + POLL_CEILING > self.ctx.now
        {
            return;
        }
        self.ctx.shrink();
        self.fam.relay.shrink();
        self.fam.events.shrink();
        self.fam.ws.shrink();
        self.fam.sockjs.shrink();
        if let Some(release) = self.ctx.config.release_memory {
            release();
        }
        self.shrunk = Shrunk {
            at: self.ctx.now,
            capacity: self.ctx.conns.capacity(),
            len,
        };
        debug!(
            "gave back table memory: connection slots {cap} -> {}",
            self.shrunk.capacity
        );
    }

    fn poll_timeout(&self) -> Duration {
        if self.fam.relay.has_queued() {
            return Duration::ZERO;
        }
        let mut t = POLL_CEILING;
        if let Some(d) = self.ctx.timers.next_deadline() {
            // Round up to whole milliseconds: epoll would otherwise truncate
            // and wake us just before the deadline.
            let wait = d.saturating_duration_since(self.ctx.now);
            let wait = Duration::from_millis(wait.as_nanos().div_ceil(1_000_000) as u64);
            t = t.min(wait);
        }
        if let Some(g) = self.grace_deadline {
            t = t.min(g.saturating_duration_since(self.ctx.now));
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
            self.fam.relay.streaming(),
            self.ctx.config.shutdown_grace
        );
        for l in &mut self.listeners {
            let _ = self.poll.registry().deregister(&mut l.sock);
        }
        self.listeners.clear();
        self.grace_deadline = Some(self.ctx.now + self.ctx.config.shutdown_grace);
        self.ctx.stopping = true;
        // Waiting parties are told; running transfers go on.
        self.fam.relay.shutdown(&mut self.ctx);
        let tokens: Vec<Token> = self.ctx.conns.iter().map(|(k, _)| Token(k)).collect();
        for t in tokens {
            self.shutdown_conn(t);
        }
        self.run_wakes();
        false
    }

    fn accept(&mut self, idx: usize) {
        if self.accept_paused || self.grace_deadline.is_some() {
            return;
        }
        loop {
            if self.ctx.conns.len() >= self.ctx.config.max_connections {
                warn!(
                    "{} connections: not accepting until below 90%",
                    self.ctx.conns.len()
                );
                self.accept_paused = true;
                return;
            }
            let Some(listener) = self.listeners.get(idx) else {
                return;
            };
            let (tls, metrics) = (listener.tls, listener.metrics);
            match listener.sock.accept() {
                Ok((mut sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    let token = Token(self.ctx.conns.vacant_key());
                    if let Err(e) = self.poll.registry().register(
                        &mut sock,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        warn!("register failed: {e}");
                        continue;
                    }
                    let sock = self.wrap(sock, tls);
                    let mut conn = Conn::new(sock, peer);
                    if metrics {
                        conn.listener = ListenerKind::Metrics;
                    }
                    let key = self.ctx.conns.insert(conn);
                    debug_assert_eq!(key, token.0);
                    let head_timeout = self.ctx.config.head_timeout;
                    self.ctx.arm(token, head_timeout);
                    self.ctx.metrics.accepted += 1;
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
                        let now = self.ctx.now;
                        self.accept_timer = Some(self.ctx.timers.insert(
                            now,
                            Duration::from_millis(100),
                            Timer::Accept,
                        ));
                    }
                    return;
                }
            }
        }
    }

    /// The stream for a socket accepted on a plain or a TLS listener.
    fn wrap(&self, sock: mio::net::TcpStream, tls: bool) -> Sock {
        #[cfg(feature = "tls")]
        if let (true, Some(config)) = (tls, &self.tls) {
            return Sock::Tls(Box::new(crate::net::sock::TlsSock::new(
                sock,
                config.clone(),
            )));
        }
        debug_assert!(!tls, "a TLS listener without TLS settings");
        Sock::Plain(sock)
    }

    /// `SIGHUP`: reread the certificate and key, and the access rules.
    /// Connections that are running keep the certificate they began with
    /// and the decisions already made; new ones get the new settings. A
    /// file that cannot be read or parsed keeps the old settings.
    fn reload(&mut self) {
        let mut reloaded = false;
        #[cfg(feature = "tls")]
        if let (Some(cert), Some(key)) = (&self.ctx.config.tls_cert, &self.ctx.config.tls_key) {
            reloaded = true;
            match crate::net::tls::load(cert, key) {
                Ok(config) => {
                    self.tls = Some(config);
                    info!(
                        "SIGHUP: reloaded the TLS certificate from {}",
                        cert.display()
                    );
                }
                Err(e) => warn!("SIGHUP: {e}; keeping the certificate in use"),
            }
        }
        if let Some(file) = &self.ctx.config.auth_file {
            reloaded = true;
            match access::load_rules(file) {
                Ok(rules) => {
                    info!("SIGHUP: reloaded the access rules from {}", file.display());
                    self.ctx.config.auth = Some(Arc::new(rules));
                }
                Err(e) => warn!("SIGHUP: {e}; keeping the access rules in use"),
            }
        }
        if !reloaded {
            info!("SIGHUP: nothing to reload");
        }
    }

    fn maybe_resume_accept(&mut self) {
        if self.accept_paused
            && self.accept_timer.is_none()
            && self.ctx.conns.len() < self.ctx.config.max_connections * 9 / 10
        {
            self.accept_paused = false;
            for i in 0..self.listeners.len() {
                self.accept(i);
            }
        }
    }

    fn on_event(&mut self, token: Token, bits: Ready) {
        let Some(conn) = self.ctx.live_mut(token) else {
            return;
        };
        conn.ready.event |= bits;
        // TLS output that waited for room goes first; a failure is the
        // family's to see, as a socket error.
        if conn.sock.has_pending() {
            let mut ready = conn.ready;
            if conn.sock.flush_pending(&mut ready).is_err() {
                ready.event |= Ready::ERROR;
            }
            conn.ready = ready;
        }
        self.dispatch(token);
    }

    // --- The dispatch point ---------------------------------------------------

    /// Which family `t` belongs to now.
    fn family(&self, t: Token) -> Option<Family> {
        let conn = self.ctx.live(t)?;
        Some(match &conn.state {
            State::Http(Http::ReadingHead) if conn.inbuf.is_empty() => Family::IdleHttp,
            State::Http(_) => Family::Http,
            State::Relay { pipe, .. } => Family::Relay(*pipe),
            State::Events(_) => Family::Events,
            State::WebSocket(_) => Family::WebSocket,
            State::SockJs(_) => Family::SockJs,
            State::Dead => return None,
        })
    }

    /// Act on a connection's readiness: its family decides what that means.
    fn dispatch(&mut self, t: Token) {
        let Some(family) = self.family(t) else {
            return;
        };
        let (ctx, fam) = (&mut self.ctx, &mut self.fam);
        match family {
            Family::Http | Family::IdleHttp => http::ready(ctx, fam, t),
            Family::Relay(pipe) => fam.relay.ready(ctx, t, pipe),
            Family::Events => fam.events.ready(ctx, t),
            Family::WebSocket => fam.ws.ready(ctx, t),
            Family::SockJs => fam.sockjs.ready(ctx, &mut fam.ws, t),
        }
    }

    /// A connection's own timer fired.
    fn conn_timer(&mut self, t: Token) {
        let Some(family) = self.family(t) else {
            return;
        };
        let (ctx, fam) = (&mut self.ctx, &mut self.fam);
        match family {
            Family::Http | Family::IdleHttp => http::timer(ctx, t),
            // The relay keeps its parties' timers in its own table.
            Family::Relay(_) => {}
            Family::Events => fam.events.timer(ctx, t),
            Family::WebSocket => fam.ws.timer(ctx, t),
            Family::SockJs => fam.sockjs.timer(ctx, &mut fam.ws, t),
        }
    }

    /// The relay is stopping: each connection ends as its family says
    /// (pipe parties are handled by the relay as a whole).
    fn shutdown_conn(&mut self, t: Token) {
        let Some(family) = self.family(t) else {
            return;
        };
        let (ctx, fam) = (&mut self.ctx, &mut self.fam);
        match family {
            Family::IdleHttp => {
                ctx.kill(t, "shutdown");
            }
            // Answers are written; pipe parties are the relay's to end.
            Family::Http | Family::Relay(_) => {}
            Family::Events => fam.events.shutdown(ctx, t),
            Family::WebSocket => fam.ws.shutdown(ctx, t),
            Family::SockJs => fam.sockjs.shutdown(ctx, &mut fam.ws, t),
        }
    }

    /// Close `t` for a reason of the loop's; its family forgets it.
    fn close(&mut self, t: Token, why: &str) {
        let Some(state) = self.ctx.kill(t, why) else {
            return;
        };
        let (ctx, fam) = (&mut self.ctx, &mut self.fam);
        match state {
            State::Http(_) | State::Dead => {}
            State::Relay { pipe, .. } => fam.relay.closed(ctx, t, pipe),
            State::Events(stream) => fam.events.closed(ctx, t, &stream),
            State::WebSocket(ws) => fam.ws.closed(ctx, t, ws),
            State::SockJs(c) => fam.sockjs.closed(ctx, &mut fam.ws, t, c),
        }
    }

    /// Run connections whose next step is the loop's (an answer to write,
    /// a pipelined request to read), in bounded rounds.
    fn run_wakes(&mut self) {
        for _ in 0..WAKE_ROUNDS {
            let wakes = self.ctx.take_wakes();
            if wakes.is_empty() {
                return;
            }
            for t in wakes {
                self.dispatch(t);
            }
        }
    }

    fn free_dead(&mut self) {
        for token in self.ctx.take_dead() {
            if let Some(mut conn) = self.ctx.conns.try_remove(token.0) {
                let _ = self.poll.registry().deregister(conn.sock.tcp_mut());
            }
        }
    }

    fn expire_timers(&mut self) {
        let mut fired = Vec::new();
        let now = self.ctx.now;
        self.ctx.timers.expire(now, &mut fired);
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
                Timer::Relay(rt) => self.fam.relay.timer(&mut self.ctx, rt, handle),
                Timer::SockJs(k) => {
                    let Families { sockjs, ws, .. } = &mut self.fam;
                    sockjs.session_timer(&mut self.ctx, ws, k, handle);
                }
                Timer::Conn(token) => {
                    if self.ctx.take_timer(token, handle) {
                        self.conn_timer(token);
                    }
                }
            }
            self.run_wakes();
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.local_addrs())
            .field("connections", &self.ctx.conns.len())
            .finish_non_exhaustive()
    }
}

/// The bits of a mio event, in the loop's own terms.
fn ready_of(e: &mio::event::Event) -> Ready {
    let mut r = Ready::EMPTY;
    if e.is_readable() {
        r.insert(Ready::READABLE);
    }
    if e.is_writable() {
        r.insert(Ready::WRITABLE);
    }
    if e.is_read_closed() || e.is_write_closed() {
        r.insert(Ready::HUP);
    }
    if e.is_error() {
        r.insert(Ready::ERROR);
    }
    r
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
