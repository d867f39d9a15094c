//! The websocket family: WebSocket connections on the event loop, the
//! upgrade, and two modes of its own.
//!
//! - **Pipe** (`GET /<path>` with `Upgrade: websocket`): two peers on one
//!   path are bridged frame by frame. Either may come first; the first gets
//!   its `101` at once and waits, unread (TCP holds its frames), under
//!   `--ttl`. Frames are streamed: a header is forwarded when parsed and
//!   payload pieces as they arrive, through the connection's fixed 64 KiB
//!   input buffer, so a message of any size costs no more memory. What is
//!   queued for a peer goes through a fixed ring ([`conn::WS_RING`], taken
//!   while bytes wait, given back once they are written); a peer with more
//!   than [`conn::WS_FEED`] queued stops the other from being read
//!   (backpressure both ways). Pings are answered here; a close from one
//!   side is passed on with its code and reason, and both connections end
//!   once each has answered its close.
//! - **Echo** (`/sockjs/echo/websocket`, the SockJS test service's raw
//!   endpoint): each data frame is echoed once it is complete and valid,
//!   so an invalid frame is refused (close 1007/1002) before any of it is
//!   echoed. A frame is held whole, up to `--ws-max-message`.
//!
//! The family's tables are the waiting peers by path and the bridged
//! paths ([`WebSockets`]); a connection's own state is its [`WsConn`], in
//! `State::WebSocket`. The sockjs family drives its own WebSockets (a
//! session's socket, a raw channel member; `State::SockJs`) through the
//! same methods (its readiness in two halves, [`WebSockets::drive_writes`]
//! and [`WebSockets::drive_reads`], so that its session's frames reach the
//! socket between them), and what concerns it comes back as [`Report`]s,
//! which it takes with [`WebSockets::take_report`]: the messages a read
//! completed (handed on before the read's end is acted on,
//! [`WebSockets::end_read`]), a queue that has room again, a connection
//! that ended. This family never calls into sockjs.
//!
//! Every incoming frame passes the codec's checks ([`codec`]): masking,
//! RSV bits, opcodes, control frame rules, fragmentation order, sizes, and
//! UTF-8 of text messages, fail-fast. The SockJS endpoints may also speak
//! hixie-76 ([`hixie`]): the `101` head goes out at once, the challenge
//! answer once the client's key3 is read, and frames queued before that
//! wait behind it.
//!
//! Rules that hold for every mode:
//!
//! - The queue bound ([`WS_QUEUE`]): what weir queues for a connection is
//!   bounded. A pipe peer feeding a full queue is not read; an echo or
//!   SockJS connection whose own queue is full is not read; no connection
//!   is read past a ping it has no room to answer, and only its latest
//!   ping is answered; SockJS frames wait in their session's bounded
//!   outbox; a raw channel member that falls behind is closed. Reading
//!   resumes on the drain.
//! - Memory (R10): a connection's 64 KiB input buffer is allocated when it
//!   is first read from its socket (bridged, echo, SockJS), never at the
//!   upgrade: a peer waiting for its other end holds no input buffer.
//! - The close handshake: after weir sends a close frame it goes on reading
//!   (dropping data) until the peer's close, at most [`CLOSE_WAIT`], and
//!   only then ends TCP, through the plain closing path
//!   (`ctx.finish(t, End::Close)`: shut down writes, read what is left), so
//!   the peer's close never meets a reset. A close due while the
//!   connection's output is inside a forwarded frame waits for that
//!   frame's end. After a protocol error nothing more is parsed: the close
//!   goes out and the connection lingers (`End::Linger`) until the client
//!   closes.
//! - A pipe peer is named by token; a freed peer's slot may be reused, so
//!   every use checks that the peer is still bridged to this connection.
//! - A connection's `WsConn` is never taken out of its state while this
//!   code works on it: connections are borrowed apart in place (see
//!   `read.rs`), so no connection ever looks dead or like another family's
//!   in the middle of a step. Ending one goes through `ctx.kill` (whose
//!   returned state is then forgotten here, [`WebSockets::closed`]) or
//!   `ctx.finish`.

pub mod codec;
pub mod conn;
pub mod handshake;
pub mod hixie;
mod read;

use std::collections::{HashMap, HashSet, VecDeque};

use log::debug;
use mio::Token;

use crate::http::Head;
use crate::net::{Ctx, End, State};
use crate::wire::Ready;
use codec::{OpCode, WsError};
use conn::{CloseOut, Cur, Handshake, WsConn, WsMode, CLOSE_WAIT, WS_QUEUE};
pub use read::Stop;
use read::{parts, pipe_peer};

/// Gauges for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WsGauges {
    /// Pipe peers waiting for their other end.
    pub waiting: usize,
    /// Bridged pipe paths.
    pub bridged: usize,
}

/// What happened to a WebSocket the sockjs family owns (`WsMode::SockJs`
/// or `WsMode::Raw`), for it to act on.
#[derive(Debug)]
pub enum Report {
    /// A read completed these messages. The owner hands them on, then
    /// calls [`WebSockets::end_read`] with `stop`.
    Messages {
        /// The connection.
        t: Token,
        /// Its mode.
        mode: WsMode,
        /// The messages, in order.
        texts: Vec<String>,
        /// How the read ended.
        stop: Stop,
    },
    /// The socket of session `session` has room in its queue again: more
    /// of the session's frames may move to it.
    Room {
        /// The session's key.
        session: usize,
    },
    /// The connection ended (it is dead or closing); forget it.
    Ended {
        /// The connection.
        t: Token,
        /// Its mode.
        mode: WsMode,
    },
}

/// The websocket family's tables.
#[derive(Debug, Default)]
pub struct WebSockets {
    /// A peer waiting for its other end, by path.
    waiting: HashMap<String, Token>,
    /// Paths whose two peers are bridged.
    running: HashSet<String>,
    /// What happened to sockjs-owned connections, oldest first.
    reports: VecDeque<Report>,
}

/// The payload of a complete unmasked close frame built by
/// `codec::close_frame`.
fn close_payload(frame: &[u8]) -> Vec<u8> {
    // Control frames are short: a 2-byte header.
    frame.get(2..).unwrap_or(&[]).to_vec()
}

/// Make `t` a WebSocket: `state` holds its [`WsConn`] (whose `101` head is
/// queued). A hixie-76 client's key3 is due at once; it gets the time a
/// head gets.
pub fn attach(ctx: &mut Ctx, t: Token, state: State) {
    let head_timeout = ctx.config.head_timeout;
    let Some(conn) = ctx.live_mut(t) else {
        return;
    };
    let hixie = state.websocket().is_some_and(|w| w.awaiting_key3());
    debug_assert!(state.websocket().is_some());
    conn.state = state;
    conn.ready.interest = Ready::READABLE | Ready::WRITABLE;
    if hixie {
        ctx.arm(t, head_timeout);
    }
}

impl WebSockets {
    /// Give back what the tables hold beyond what they use.
    pub fn shrink(&mut self) {
        self.waiting.shrink_to_fit();
        self.running.shrink_to_fit();
        self.reports.shrink_to_fit();
    }

    /// Gauges counted from the tables.
    pub fn gauges(&self) -> WsGauges {
        WsGauges {
            waiting: self.waiting.len(),
            bridged: self.running.len(),
        }
    }

    /// The oldest report about a sockjs-owned connection, if any.
    pub fn take_report(&mut self) -> Option<Report> {
        self.reports.pop_front()
    }

    // --- The loop's moments -----------------------------------------------------

    /// Readiness of a WebSocket: write, resume what waited for room, read.
    pub fn ready(&mut self, ctx: &mut Ctx, t: Token) {
        self.drive(ctx, t);
    }

    /// The connection's timer fired: a waiting peer's TTL, a hixie-76
    /// client's key3 that did not come, or the end of the wait for the
    /// peer's close.
    pub fn timer(&mut self, ctx: &mut Ctx, t: Token) {
        let Some((side, ws)) = parts(&mut ctx.conns, t) else {
            return;
        };
        if ws.awaiting_key3() && ws.open() {
            return self.gone(ctx, t, "hixie-76 key3 did not arrive in time");
        }
        if !ws.open() || ws.failed {
            // No close from the peer in time. If ours is written, close
            // cleanly (lingering: it may still send); else cut.
            if ws.close_out == CloseOut::Sent && ws.queued(side.out) == 0 {
                debug!("[{}] websocket: no close from the peer in time", t.0);
                let linger = !*side.read_eof;
                self.finish(ctx, t, linger);
            } else {
                self.gone(ctx, t, "websocket close not written in time");
            }
            return;
        }
        let secs = ctx.config.ttl.as_secs();
        let reason = format!("No peer arrived within {secs} s.");
        self.close_with(ctx, t, codec::close::GOING_AWAY, &reason);
    }

    /// The relay is stopping: every WebSocket gets 1001.
    pub fn shutdown(&mut self, ctx: &mut Ctx, t: Token) {
        self.close_with(
            ctx,
            t,
            codec::close::GOING_AWAY,
            "The relay is shutting down.",
        );
    }

    /// A WebSocket connection was killed (by the loop, or by its owner
    /// through `ctx.kill`): its pipe peer is told, and the tables forget it.
    pub fn closed(&mut self, ctx: &mut Ctx, t: Token, ws: Box<WsConn>) {
        if let Some(peer) = pipe_peer(&ctx.conns, t, &ws.mode) {
            if !self.cut_mid_frame(ctx, peer) {
                let p = close_payload(&codec::close_frame(1001, "The peer went away."));
                self.send_close(ctx, peer, &p);
            }
        }
        self.forget(ctx, t, &ws.mode);
    }

    // --- Pipes --------------------------------------------------------------------

    /// `GET /<path>` with `Upgrade: websocket`: pair two peers on the path.
    pub fn pipe_request(&mut self, ctx: &mut Ctx, t: Token, head: Head<'_>, early: Vec<u8>) {
        let key = head.path.to_string();
        if self.running.contains(&key) {
            let msg = format!("A WebSocket pair on {key} is already connected; try another path.");
            return ctx.respond_error(t, head.minor, 409, &msg, false);
        }
        let waiting = self
            .waiting
            .get(&key)
            .is_some_and(|p| is_waiting(ctx, *p, &key));
        if !waiting && !ctx.park_allowed(t) {
            let msg = format!(
                "Too many waiting transfers from your address ({}); finish some first.",
                ctx.config.max_parked_per_ip
            );
            return ctx.respond_error(t, head.minor, 429, &msg, false);
        }
        if !handshake::check_and_accept(ctx, t, &head) {
            return;
        }
        let max = ctx.config.ws_max_message;
        let rfc = Handshake::Rfc6455;
        match self.waiting.remove(&key) {
            Some(peer) if is_waiting(ctx, peer, &key) => {
                let mode = WsMode::Pipe {
                    peer,
                    key: key.clone(),
                };
                let ws = WsConn::new(mode, max, &early, rfc, ctx.budget.lease());
                attach(ctx, t, State::WebSocket(Box::new(ws)));
                if let Some((_, pw)) = parts(&mut ctx.conns, peer) {
                    pw.mode = WsMode::Pipe {
                        peer: t,
                        key: key.clone(),
                    };
                }
                ctx.disarm(peer);
                ctx.unpark(peer);
                self.running.insert(key.clone());
                debug!("[{}] websocket pipe {key} bridged with [{}]", t.0, peer.0);
                self.drive(ctx, peer);
                self.drive(ctx, t);
            }
            _ => {
                let ws = WsConn::new(
                    WsMode::Waiting(key.clone()),
                    max,
                    &early,
                    rfc,
                    ctx.budget.lease(),
                );
                attach(ctx, t, State::WebSocket(Box::new(ws)));
                self.waiting.insert(key, t);
                ctx.mark_parked(t);
                let ttl = ctx.config.ttl;
                if let Some(conn) = ctx.live_mut(t) {
                    conn.ready.interest = Ready::WRITABLE;
                }
                ctx.arm(t, ttl);
                self.drive(ctx, t);
            }
        }
    }

    // --- Driving a connection -------------------------------------------------------

    /// Readiness for a WebSocket connection: write what is queued for it,
    /// resume what waited for room in its queue, read and relay its frames.
    pub fn drive(&mut self, ctx: &mut Ctx, t: Token) {
        if let Some((reads, waiting)) = self.drive_out(ctx, t) {
            self.drive_in(ctx, t, reads, waiting);
        }
    }

    /// The first half of [`drive`](Self::drive), for the sockjs family,
    /// which moves its session's frames to the socket (on the
    /// `Report::Room` this pushes) before the socket is read: write what
    /// is queued, resume what waited for room. Returns whether
    /// [`drive_reads`](Self::drive_reads) should follow.
    pub fn drive_writes(&mut self, ctx: &mut Ctx, t: Token) -> bool {
        self.drive_out(ctx, t).is_some()
    }

    /// The second half of [`drive`](Self::drive): read and relay frames.
    pub fn drive_reads(&mut self, ctx: &mut Ctx, t: Token) {
        let Some((_, ws)) = parts(&mut ctx.conns, t) else {
            return;
        };
        let reads = !ws.failed && (ws.open() || ws.close_out == CloseOut::Sent);
        let waiting = matches!(ws.mode, WsMode::Waiting(_)) && ws.open();
        self.drive_in(ctx, t, reads, waiting);
    }

    /// Steps 1 and 2 of a drive. `Some((reads, waiting))` for step 3,
    /// `None` when the connection ended or its handshake finished.
    fn drive_out(&mut self, ctx: &mut Ctx, t: Token) -> Option<(bool, bool)> {
        let (mut side, ws) = parts(&mut ctx.conns, t)?;
        // 1. Write what is queued for it.
        if side.flush(ws).is_err() {
            self.gone(ctx, t, "websocket client left");
            return None;
        }
        if self.release_close(ctx, t) || self.done(ctx, t) {
            return None;
        }
        let (side, ws) = parts(&mut ctx.conns, t)?;
        let mode = ws.mode.clone();
        let reads = !ws.failed && (ws.open() || ws.close_out == CloseOut::Sent);
        let waiting = matches!(mode, WsMode::Waiting(_)) && ws.open();
        // 2. Below the bound again: whatever it paused goes on.
        if ws.queued(side.out) < ws.feed_limit() {
            self.pong_due(ctx, t);
            if reads && !waiting {
                if let Some(c) = ctx.live_mut(t) {
                    c.ready.interest.insert(Ready::READABLE);
                }
            }
            if let WsMode::SockJs(session) = mode {
                self.reports.push_back(Report::Room { session });
            }
            if let Some(peer) = pipe_peer(&ctx.conns, t, &mode) {
                let resume = ctx.live_mut(peer).is_some_and(|p| {
                    let paused = !p.ready.interest.contains(Ready::READABLE)
                        && p.state.websocket().is_some_and(|w| !w.failed);
                    if paused {
                        p.ready.interest.insert(Ready::READABLE);
                    }
                    paused
                });
                if resume {
                    self.read(ctx, peer);
                }
            }
        }
        Some((reads, waiting))
    }

    /// Step 3 of a drive: read and relay its frames; a waiting peer is not
    /// read, but its leaving is noticed.
    fn drive_in(&mut self, ctx: &mut Ctx, t: Token, reads: bool, waiting: bool) {
        let Some((side, _)) = parts(&mut ctx.conns, t) else {
            return;
        };
        if waiting {
            if side.ready.hung_up() && !side.out.is_pending() {
                self.gone(ctx, t, "websocket client left");
            }
        } else if reads {
            self.read(ctx, t);
        }
    }

    /// Read frames from `t` and pass them on. Messages of a sockjs-owned
    /// connection go to its owner first, which then calls
    /// [`end_read`](Self::end_read) itself.
    fn read(&mut self, ctx: &mut Ctx, t: Token) {
        let Some(mode) = parts(&mut ctx.conns, t).map(|(_, ws)| ws.mode.clone()) else {
            return;
        };
        let (stop, texts) = read::read(ctx, t);
        if !texts.is_empty() {
            self.reports.push_back(Report::Messages {
                t,
                mode,
                texts,
                stop,
            });
            return;
        }
        self.end_read(ctx, t, stop);
    }

    /// Act on how a read of `t` ended, then write what it queued for its
    /// pipe peer and for itself (pongs, echoes).
    pub fn end_read(&mut self, ctx: &mut Ctx, t: Token, stop: Stop) {
        // Handing on its messages may have ended the connection.
        let Some((side, ws)) = parts(&mut ctx.conns, t) else {
            return;
        };
        let mode = ws.mode.clone();
        let closing_eof = *side.read_eof && !ws.open();
        match stop {
            Stop::Idle => {}
            Stop::Closed(code, payload) => self.closed_by_peer(ctx, t, code, &payload),
            Stop::Failed(e) => self.failed(ctx, t, e),
            Stop::Gone => {
                if closing_eof {
                    // The peer ended after our close: done once it is out.
                    if !self.done(ctx, t) {
                        if let Some(c) = ctx.live_mut(t) {
                            c.ready.interest.remove(Ready::READABLE);
                        }
                    }
                } else {
                    self.gone(ctx, t, "websocket client left");
                }
            }
        }
        if let Some(peer) = pipe_peer(&ctx.conns, t, &mode) {
            self.flush(ctx, peer);
        }
        self.flush(ctx, t);
    }

    /// Write what is queued for `t`; a close held back goes out, a
    /// finished handshake ends the connection, a pong owed is queued.
    fn flush(&mut self, ctx: &mut Ctx, t: Token) {
        let Some((mut side, ws)) = parts(&mut ctx.conns, t) else {
            return;
        };
        match side.flush(ws) {
            Ok(_) => {
                if ws.queued(side.out) > 0 {
                    side.ready.interest.insert(Ready::WRITABLE);
                }
                if !self.release_close(ctx, t) && !self.done(ctx, t) {
                    self.pong_due(ctx, t);
                }
            }
            Err(_) => self.gone(ctx, t, "websocket client left"),
        }
    }

    /// Queue the pong `t` owes, if there is room (see `read::write_pong`).
    fn pong_due(&mut self, ctx: &mut Ctx, t: Token) {
        if let Some((mut side, ws)) = parts(&mut ctx.conns, t) {
            read::write_pong(&mut side, ws, &ctx.ws_rings);
        }
    }

    // --- Messages from other families --------------------------------------------

    /// Queue one text message to a WebSocket (dropped if it is closing).
    pub fn text(&mut self, ctx: &mut Ctx, t: Token, text: &[u8]) {
        let Some((side, ws)) = parts(&mut ctx.conns, t) else {
            return;
        };
        if !ws.open() || ws.owed > 0 {
            return;
        }
        let hixie = ws.hixie();
        let out = ws.out_of(side.out);
        if hixie {
            hixie::text_frame(out, text);
        } else {
            codec::write_header(out, true, OpCode::Text, text.len() as u64, None);
            out.extend_from_slice(text);
        }
        self.flush(ctx, t);
    }

    /// Whether `t` is a WebSocket whose queue has room (under
    /// [`WS_QUEUE`]) for more frames.
    pub fn room(ctx: &Ctx, t: Token) -> bool {
        ctx.live(t)
            .and_then(|c| Some((c.state.websocket()?, &c.out)))
            .is_some_and(|(ws, out)| ws.queued(out) < WS_QUEUE)
    }

    /// A message from another member of a channel to member `t`: queued,
    /// unless that passes the bound; then the member, which does not read
    /// fast enough, is closed (nobody else waits for it).
    pub fn text_to_member(&mut self, ctx: &mut Ctx, t: Token, text: &[u8]) {
        if !Self::room(ctx, t) {
            if let Some((mut side, ws)) = parts(&mut ctx.conns, t) {
                let _ = side.flush(ws);
            }
        }
        if Self::room(ctx, t) {
            return self.text(ctx, t, text);
        }
        let Some((_, ws)) = parts(&mut ctx.conns, t) else {
            return;
        };
        if ws.open() {
            debug!("[{}] raw websocket member too slow: closing", t.0);
            let reason = format!(
                "Receiver too slow: more than {} KiB queued.",
                WS_QUEUE / 1024
            );
            self.close_with(ctx, t, codec::close::POLICY, &reason);
        }
    }

    /// Close a WebSocket with `code` and `reason`.
    pub fn close_with(&mut self, ctx: &mut Ctx, t: Token, code: u16, reason: &str) {
        let p = close_payload(&codec::close_frame(code, reason));
        self.send_close(ctx, t, &p);
    }

    // --- The close handshake ----------------------------------------------------------

    /// A close held back while `t`'s output was inside a forwarded frame
    /// goes out once that frame is complete. Returns whether it did.
    fn release_close(&mut self, ctx: &mut Ctx, t: Token) -> bool {
        let Some((_, ws)) = parts(&mut ctx.conns, t) else {
            return false;
        };
        if ws.owed > 0 || !matches!(ws.close_out, CloseOut::Pending(_)) {
            return false;
        }
        let CloseOut::Pending(p) = std::mem::replace(&mut ws.close_out, CloseOut::Open) else {
            return false;
        };
        self.send_close(ctx, t, &p);
        true
    }

    /// Start our side of the close handshake: queue a close frame to `t`
    /// (held back while its output is inside a forwarded frame), go on
    /// reading for the peer's close, under [`CLOSE_WAIT`].
    fn send_close(&mut self, ctx: &mut Ctx, t: Token, payload: &[u8]) {
        let Some((side, ws)) = parts(&mut ctx.conns, t) else {
            return;
        };
        if ws.close_out != CloseOut::Open {
            return;
        }
        if ws.owed > 0 {
            ws.close_out = CloseOut::Pending(payload.to_vec());
        } else {
            ws.close_out = CloseOut::Sent;
            if ws.hixie() {
                ws.put(side.out, &ctx.ws_rings, &hixie::CLOSE_FRAME);
            } else {
                let len = payload.len() as u64;
                ws.put_header(side.out, &ctx.ws_rings, true, OpCode::Close, len);
                ws.put(side.out, &ctx.ws_rings, payload);
            }
        }
        side.ready.interest.insert(Ready::WRITABLE);
        if !ws.failed {
            // Read on: the peer's close (frames before it are dropped).
            side.ready.interest.insert(Ready::READABLE);
        }
        ctx.arm(t, CLOSE_WAIT);
        self.drive(ctx, t);
    }

    /// Cut `t` if its output is inside a frame whose source can no longer
    /// finish it (a close frame cannot be placed inside a frame). Returns
    /// whether it was cut.
    fn cut_mid_frame(&mut self, ctx: &mut Ctx, t: Token) -> bool {
        if !parts(&mut ctx.conns, t).is_some_and(|(_, ws)| ws.owed > 0) {
            return false;
        }
        if let Some(ws) = ctx
            .reset(t, "websocket cut mid-frame")
            .and_then(State::into_websocket)
        {
            self.closed(ctx, t, ws);
        }
        true
    }

    /// A valid close arrived from `t`: echo it; if it started the
    /// handshake, pass it on to its pipe peer.
    fn closed_by_peer(&mut self, ctx: &mut Ctx, t: Token, code: Option<u16>, payload: &[u8]) {
        let Some((_, ws)) = parts(&mut ctx.conns, t) else {
            return;
        };
        let started = ws.close_out == CloseOut::Open;
        ws.close_in = true;
        let mode = ws.mode.clone();
        if started {
            if let WsMode::Pipe { key, .. } = &mode {
                // The other side learns the code and reason; the path is free.
                debug!(
                    "[{}] websocket pipe {key} closed by a peer (code {code:?})",
                    t.0
                );
                self.running.remove(key);
                if let Some(peer) = pipe_peer(&ctx.conns, t, &mode) {
                    self.send_close(ctx, peer, payload);
                }
            }
        }
        self.send_close(ctx, t, payload);
        // A reply to our close: the handshake may be over.
        self.drive(ctx, t);
    }

    /// `t` broke the protocol: it gets the error's close code; its peer is
    /// told the other side failed.
    fn failed(&mut self, ctx: &mut Ctx, t: Token, e: WsError) {
        debug!("[{}] websocket protocol error: {e}", t.0);
        let Some((side, ws)) = parts(&mut ctx.conns, t) else {
            return;
        };
        ws.failed = true;
        let mode = ws.mode.clone();
        // A failure inside its frame leaves the peer's output mid-frame.
        let fwd = match ws.cur {
            Cur::Forward(p) => Some(p),
            _ => None,
        };
        // Nothing more is parsed; the close goes out, then it lingers.
        side.ready.interest.remove(Ready::READABLE);
        let payload = close_payload(&e.close_frame());
        self.send_close(ctx, t, &payload);
        if let WsMode::Pipe { key, .. } = &mode {
            self.running.remove(key);
            if let Some(peer) = pipe_peer(&ctx.conns, t, &mode) {
                if fwd != Some(peer) || !self.cut_mid_frame(ctx, peer) {
                    let p = close_payload(&codec::close_frame(
                        1001,
                        "The peer broke the WebSocket protocol.",
                    ));
                    self.send_close(ctx, peer, &p);
                }
            }
        }
        self.drive(ctx, t);
    }

    /// End the connection if its close handshake is over: our close is
    /// written, and the peer's close came (or its EOF, or it failed).
    /// Returns whether it ended.
    fn done(&mut self, ctx: &mut Ctx, t: Token) -> bool {
        let Some((side, ws)) = parts(&mut ctx.conns, t) else {
            return false;
        };
        let over = ws.close_out == CloseOut::Sent
            && ws.owed == 0
            && ws.queued(side.out) == 0
            && (ws.close_in || ws.failed || *side.read_eof);
        if over {
            // A failed peer may still be sending: drain it without parsing
            // (lingering) so our close is not destroyed by a reset.
            let linger = ws.failed && !*side.read_eof;
            self.finish(ctx, t, linger);
        }
        over
    }

    /// Hand the connection to the plain closing path: shut down writes,
    /// read what the client still sends (lingering, or at once), close.
    fn finish(&mut self, ctx: &mut Ctx, t: Token, linger: bool) {
        let Some(conn) = ctx.live_mut(t) else {
            return;
        };
        // The HTTP phase that `finish` sets takes the connection over; its
        // WebSocket state (and input buffer) goes.
        let state = std::mem::take(&mut conn.state);
        ctx.finish(t, if linger { End::Linger } else { End::Close });
        if let Some(ws) = state.into_websocket() {
            self.forget(ctx, t, &ws.mode);
        }
    }

    /// `t`'s connection ended without a close: it is killed and forgotten.
    fn gone(&mut self, ctx: &mut Ctx, t: Token, why: &str) {
        if let Some(ws) = ctx.kill(t, why).and_then(State::into_websocket) {
            self.closed(ctx, t, ws);
        }
    }

    /// Remove a finished connection from the pairing tables; a pipe peer
    /// that it held back reads again. The sockjs family is told of its own.
    fn forget(&mut self, ctx: &mut Ctx, t: Token, mode: &WsMode) {
        match mode {
            WsMode::Waiting(key) => {
                if self.waiting.get(key) == Some(&t) {
                    self.waiting.remove(key);
                }
            }
            WsMode::Pipe { key, .. } => {
                self.running.remove(key);
                if let Some(peer) = pipe_peer(&ctx.conns, t, mode) {
                    self.drive(ctx, peer);
                }
            }
            WsMode::Echo => {}
            WsMode::SockJs(_) | WsMode::Raw(_) => self.reports.push_back(Report::Ended {
                t,
                mode: mode.clone(),
            }),
        }
    }
}

/// Whether `peer` is a WebSocket waiting on path `key`.
fn is_waiting(ctx: &Ctx, peer: Token, key: &str) -> bool {
    ctx.live(peer)
        .and_then(|c| c.state.websocket())
        .is_some_and(|w| matches!(&w.mode, WsMode::Waiting(k) if k == key))
}
