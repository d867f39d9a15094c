//! The read loop of a WebSocket connection: fill the input buffer from the
//! socket when the parser asks for input, parse, and act on each frame as
//! its mode says (stream it to the pipe peer, hold it for echo, assemble
//! it into a message), answering pings on the way.
//!
//! It works on the connections in place. A WebSocket's [`WsConn`] lives in
//! its connection's state, and each step borrows the connection apart (its
//! socket, readiness and output beside its `WsConn`, see [`split`]), and
//! the pipe peer's connection with it when a frame goes there
//! ([`Slab::get2_mut`]). Nothing is taken out of a connection, so while
//! this runs every connection still is what it was: never dead-looking,
//! never in another family, whatever else looks at it.
//!
//! Rules: a step reads the socket only when the parser has nothing left
//! to parse (a zero-length frame is acted on without waiting for more
//! bytes); before each step the queues this reading fills are checked
//! against their bound (a pipe peer's [`WsConn::feed_limit`], a queue
//! answered into [`WS_QUEUE`]) and reading pauses (drops READABLE interest) only
//! once their sockets really block, so that a writable edge resumes it; a
//! ping is answered only when the queue has room, else reading pauses
//! until it has.

use crate::net::conn::Sock;
use mio::Token;
use slab::Slab;

use super::codec::{self, Completed, OpCode, Parsed, WsError};
use super::conn::{Cur, HeldFrame, Proto, WsConn, WsMode, WS_QUEUE};
use super::hixie;
use crate::budget::BufPool;
use crate::net::{Conn, Ctx};
use crate::wire::{self, Io, OutBuf, Readiness, Ready};

/// What the read loop ended with.
#[derive(Debug)]
pub enum Stop {
    /// Nothing more to read now, or a queue it fills is full.
    Idle,
    /// A close frame arrived (code and raw payload to pass on).
    Closed(Option<u16>, Vec<u8>),
    /// The client broke the protocol.
    Failed(WsError),
    /// The client's connection ended (EOF or error) without a close frame.
    Gone,
}

/// A WebSocket connection's socket side, borrowed apart from its `WsConn`.
pub(super) struct Side<'a> {
    pub(super) sock: &'a mut Sock,
    pub(super) ready: &'a mut Readiness,
    pub(super) read_eof: &'a mut bool,
    pub(super) out: &'a mut OutBuf,
}

impl Side<'_> {
    /// Write what is queued for `ws` (this connection's) while the socket
    /// takes it.
    pub(super) fn flush(&mut self, ws: &mut WsConn) -> std::io::Result<bool> {
        ws.flush(self.out, self.sock, self.ready)
    }
}

/// A WebSocket connection borrowed apart: its socket side, its `WsConn`.
pub(super) type Parts<'a> = (Side<'a>, &'a mut WsConn);

/// Borrow a connection apart: its socket side and its `WsConn`. `None`
/// when it carries no WebSocket (it is dead, or was never one).
pub(super) fn split(conn: &mut Conn) -> Option<Parts<'_>> {
    let Conn {
        sock,
        ready,
        read_eof,
        out,
        state,
        ..
    } = conn;
    let ws = state.websocket_mut()?;
    Some((
        Side {
            sock,
            ready,
            read_eof,
            out,
        },
        ws,
    ))
}

/// `t`'s socket side and `WsConn`.
pub(super) fn parts(conns: &mut Slab<Conn>, t: Token) -> Option<Parts<'_>> {
    conns.get_mut(t.0).and_then(split)
}

/// Whether `peer` is a WebSocket bridged to `t`.
pub(super) fn is_peer_of(conns: &Slab<Conn>, peer: Token, t: Token) -> bool {
    conns
        .get(peer.0)
        .and_then(|c| c.state.websocket())
        .is_some_and(|w| matches!(w.mode, WsMode::Pipe { peer: p, .. } if p == t))
}

/// The pipe peer of `t` (whose mode is `mode`), if it is still a WebSocket
/// bridged to `t`. A freed peer's slot may hold another connection by now;
/// this never names it.
pub(super) fn pipe_peer(conns: &Slab<Conn>, t: Token, mode: &WsMode) -> Option<Token> {
    let WsMode::Pipe { peer, .. } = mode else {
        return None;
    };
    is_peer_of(conns, *peer, t).then_some(*peer)
}

/// `t`'s connection and, if `peer` is a WebSocket bridged to `t`, the
/// peer's, both borrowed apart.
fn with_peer(
    conns: &mut Slab<Conn>,
    t: Token,
    peer: Option<Token>,
) -> Option<(Parts<'_>, Option<Parts<'_>>)> {
    if let Some(p) = peer.filter(|p| *p != t && is_peer_of(conns, *p, t)) {
        if conns.contains(t.0) {
            let (me, other) = conns.get2_mut(t.0, p.0)?;
            return Some((split(me)?, split(other)));
        }
    }
    Some((parts(conns, t)?, None))
}

/// Read frames from `t` and act on them. Returns why it stopped, and the
/// messages completed on the way (SockJS modes), for the caller to hand
/// on before it acts on the stop.
pub(super) fn read(ctx: &mut Ctx, t: Token) -> (Stop, Vec<String>) {
    let Some((_, ws)) = parts(&mut ctx.conns, t) else {
        return (Stop::Idle, Vec::new());
    };
    let stop = if ws.failed || (matches!(ws.mode, WsMode::Waiting(_)) && ws.open()) {
        Stop::Idle
    } else if ws.hixie() {
        read_hixie(ctx, t)
    } else {
        read_rfc6455(ctx, t)
    };
    let inbox = parts(&mut ctx.conns, t)
        .map(|(_, ws)| std::mem::take(&mut ws.inbox))
        .unwrap_or_default();
    (stop, inbox)
}

/// Whether a queue `t`'s reading fills is over the bound even after
/// writing what the socket takes: its own (if `own`), and `fwd`'s, the
/// pipe peer its frames go to. `Err` when writing its own queue failed.
fn over_bound(conns: &mut Slab<Conn>, t: Token, own: bool, fwd: Option<Token>) -> Result<bool, ()> {
    for (c, own) in [(own.then_some(t), true), (fwd, false)] {
        let Some((mut side, ws)) = c.and_then(|c| parts(conns, c)) else {
            continue;
        };
        let limit = if own { WS_QUEUE } else { ws.feed_limit() };
        if ws.queued(side.out) <= limit {
            continue;
        }
        // Pause only when its socket is really full: that WouldBlock
        // guarantees a writable edge later, whose drive resumes this
        // reader.
        if side.flush(ws).is_err() {
            if own {
                return Err(());
            }
            continue;
        }
        if ws.queued(side.out) > limit {
            side.ready.interest.insert(Ready::WRITABLE);
            return Ok(true);
        }
    }
    Ok(false)
}

/// The bound check at the top of each read step: `Some(stop)` when
/// reading must pause (or the connection failed).
fn check_bound(conns: &mut Slab<Conn>, t: Token) -> Option<Stop> {
    let (_, ws) = parts(conns, t)?;
    let own = matches!(ws.mode, WsMode::Echo | WsMode::SockJs(_));
    let fwd = match ws.cur {
        Cur::Forward(p) => Some(p),
        _ if ws.open() => match ws.mode {
            WsMode::Pipe { peer, .. } => Some(peer),
            _ => None,
        },
        _ => None,
    };
    // Its own queue counts where what it sends is answered into it
    // (echoes, SockJS replies). Elsewhere its own queue holds what its
    // peer sent, and pausing it on that would deadlock two clients that
    // both write before they read; its pings are bounded by `write_pong`
    // instead.
    let fwd = fwd.filter(|p| is_peer_of(conns, *p, t));
    match over_bound(conns, t, own, fwd) {
        Err(()) => Some(Stop::Gone),
        Ok(true) => {
            if let Some(c) = conns.get_mut(t.0) {
                c.ready.interest.remove(Ready::READABLE);
            }
            Some(Stop::Idle)
        }
        Ok(false) => None,
    }
}

/// Fill the input buffer from the socket when the parser needs input.
/// `Some(stop)` when there is nothing to parse.
fn fill(conns: &mut Slab<Conn>, pool: &BufPool, t: Token) -> Option<Stop> {
    let (side, ws) = parts(conns, t)?;
    if ws.start < ws.end || !ws.need_input {
        return None;
    }
    if !side.ready.can_read() {
        return Some(Stop::Idle);
    }
    let Some(buf) = ws.input_buffer(pool) else {
        // Every input buffer is out (R10): this socket is turned away
        // rather than memory growing past the bound.
        return Some(Stop::Failed(WsError::Busy));
    };
    let n = match wire::read_into(side.sock, side.ready, side.read_eof, buf) {
        Io::Moved(n) => {
            ws.start = 0;
            ws.end = n;
            ws.need_input = false;
            n
        }
        Io::WouldBlock => return Some(Stop::Idle),
        Io::Eof | Io::Failed(_) => return Some(Stop::Gone),
    };
    // Frame bytes read count as the request's `in=` in its access line.
    if let Some(a) = conns.get_mut(t.0).and_then(|c| c.access.as_mut()) {
        a.read += n as u64;
    }
    None
}

/// Queue the pong `ws` owes, if its output is between frames and its
/// queue has room. Returns `false` when the queue is full (the socket
/// took what it could): the caller stops reading, and the drain that
/// follows writes the pong and resumes it.
pub(super) fn write_pong(side: &mut Side<'_>, ws: &mut WsConn, rings: &BufPool) -> bool {
    if ws.pong.is_none() || ws.owed > 0 || !ws.open() {
        return true;
    }
    if ws.queued(side.out) > ws.feed_limit() {
        let _ = side.flush(ws);
        if ws.queued(side.out) > ws.feed_limit() {
            side.ready.interest.insert(Ready::WRITABLE);
            side.ready.interest.remove(Ready::READABLE);
            return false;
        }
    }
    if let Some(p) = ws.pong.take() {
        ws.put_header(side.out, rings, true, OpCode::Pong, p.len() as u64);
        ws.put(side.out, rings, &p);
    }
    true
}

fn read_rfc6455(ctx: &mut Ctx, t: Token) -> Stop {
    loop {
        if let Some(stop) = check_bound(&mut ctx.conns, t) {
            return stop;
        }
        // Parse first, read only when the parser asks for input: after
        // a header with a zero length the (empty) payload is ready with
        // no bytes at all, and reading first would hold that frame
        // until the client sent something else.
        if let Some(stop) = fill(&mut ctx.conns, &ctx.ws_buffers, t) {
            return stop;
        }
        if let Some(stop) = step_rfc6455(&mut ctx.conns, &ctx.ws_rings, t) {
            return stop;
        }
    }
}

/// Parse one item of what is buffered and act on it.
fn step_rfc6455(conns: &mut Slab<Conn>, rings: &BufPool, t: Token) -> Option<Stop> {
    let peer = conns
        .get(t.0)
        .and_then(|c| c.state.websocket())
        .and_then(|ws| match (ws.cur, &ws.mode) {
            (Cur::Forward(p), _) => Some(p),
            (_, WsMode::Pipe { peer, .. }) => Some(*peer),
            _ => None,
        });
    let Some(((mut me, ws), mut other)) = with_peer(conns, t, peer) else {
        return Some(Stop::Idle);
    };
    let open = ws.open();
    let Proto::Rfc6455 { parser, msgs } = &mut ws.proto else {
        return Some(Stop::Idle);
    };
    let (used, item) = match parser.parse(&mut ws.inbuf[ws.start..ws.end]) {
        Ok(x) => x,
        Err(e) => return Some(Stop::Failed(e)),
    };
    let piece_at = ws.start;
    ws.start += used;
    match item {
        Parsed::NeedMore => {
            ws.start = ws.end;
            ws.need_input = true;
        }
        Parsed::Header {
            fin, opcode, len, ..
        } => {
            if let Err(e) = msgs.on_header(fin, opcode, len) {
                return Some(Stop::Failed(e));
            }
            ws.cur = if opcode.is_control() {
                Cur::None
            } else if !open {
                Cur::Discard
            } else {
                match &ws.mode {
                    WsMode::Pipe { peer, .. } => match other.as_mut() {
                        Some((side, tw)) if tw.open() => {
                            tw.owed = len;
                            tw.put_header(side.out, rings, fin, opcode, len);
                            Cur::Forward(*peer)
                        }
                        _ => Cur::Discard,
                    },
                    WsMode::Echo => {
                        // Grown as its bytes come (and leased from the
                        // shared budget), not sized from the header.
                        ws.held = Some(HeldFrame {
                            fin,
                            opcode,
                            data: Vec::new(),
                        });
                        Cur::Hold
                    }
                    WsMode::SockJs(_) | WsMode::Raw(_) => Cur::Assemble,
                    WsMode::Waiting(_) => Cur::Discard,
                }
            };
        }
        Parsed::Payload { start: at, n, last } => {
            let piece = &ws.inbuf[piece_at + at..piece_at + at + n];
            if let Err(e) = msgs.on_payload(piece) {
                return Some(Stop::Failed(e));
            }
            match ws.cur {
                Cur::Forward(p) => {
                    // `other` is `p`'s connection, there only while `p`
                    // is still bridged to us.
                    if let Some((side, tw)) = other.as_mut() {
                        debug_assert!(matches!(ws.mode, WsMode::Pipe { peer, .. } if peer == p));
                        tw.put(side.out, rings, piece);
                        tw.owed = tw.owed.saturating_sub(n as u64);
                    }
                }
                Cur::Hold => {
                    if let Some(h) = ws.held.as_mut() {
                        if !ws.lease.grow(piece.len()) {
                            return Some(Stop::Failed(WsError::OverBudget));
                        }
                        h.data.extend_from_slice(piece);
                    }
                }
                Cur::Assemble => {
                    if !ws.lease.grow(piece.len()) {
                        return Some(Stop::Failed(WsError::OverBudget));
                    }
                    ws.msg.extend_from_slice(piece);
                }
                Cur::Discard | Cur::None => {}
            }
            if last {
                let cur = std::mem::replace(&mut ws.cur, Cur::None);
                match msgs.on_frame_end() {
                    Err(e) => return Some(Stop::Failed(e)),
                    Ok(Some(Completed::Ping(p))) => {
                        // After our close, nothing more is sent.
                        if ws.open() {
                            ws.pong = Some(p.as_bytes().to_vec());
                            if !write_pong(&mut me, ws, rings) {
                                // Its queue is full: it is not read until
                                // the queue drains.
                                return Some(Stop::Idle);
                            }
                        }
                    }
                    Ok(Some(Completed::Close { code, payload })) => {
                        return Some(Stop::Closed(code, payload.as_bytes().to_vec()));
                    }
                    Ok(Some(Completed::Message { .. })) if cur == Cur::Assemble => {
                        let bytes = std::mem::take(&mut ws.msg);
                        ws.lease.clear();
                        if ws.open() {
                            ws.inbox.push(String::from_utf8_lossy(&bytes).into_owned());
                        }
                    }
                    Ok(_) => {
                        if cur == Cur::Discard {
                            ws.msg.clear();
                        }
                        if cur == Cur::Hold {
                            ws.lease.clear();
                        }
                        if let Some(h) = ws.held.take().filter(|_| cur == Cur::Hold) {
                            if ws.open() && ws.owed == 0 {
                                let out = me.out.buf();
                                codec::write_header(
                                    out,
                                    h.fin,
                                    h.opcode,
                                    h.data.len() as u64,
                                    None,
                                );
                                out.extend_from_slice(&h.data);
                            }
                        }
                    }
                }
            }
        }
    }
    None
}

/// The read loop of a hixie-76 connection: key3 first, then text frames
/// (each one a message) and the close frame.
fn read_hixie(ctx: &mut Ctx, t: Token) -> Stop {
    loop {
        if let Some(stop) = check_bound(&mut ctx.conns, t) {
            return stop;
        }
        if let Some(stop) = fill(&mut ctx.conns, &ctx.ws_buffers, t) {
            return stop;
        }
        if let Some(stop) = step_hixie(ctx, t) {
            return stop;
        }
    }
}

/// Parse one item of what a hixie-76 connection buffered and act on it.
fn step_hixie(ctx: &mut Ctx, t: Token) -> Option<Stop> {
    let Some((me, ws)) = parts(&mut ctx.conns, t) else {
        return Some(Stop::Idle);
    };
    let open = ws.open();
    let echo = ws.mode == WsMode::Echo;
    let WsConn {
        proto,
        inbuf,
        start,
        end,
        msg,
        inbox,
        held_out,
        need_input,
        lease,
        ..
    } = &mut *ws;
    let Proto::Hixie76 { dec, key3 } = proto else {
        return Some(Stop::Idle);
    };
    if let Some((n1, n2, k, have)) = key3 {
        let take = (hixie::KEY3_LEN - *have).min(*end - *start);
        k[*have..*have + take].copy_from_slice(&inbuf[*start..*start + take]);
        *have += take;
        *start += take;
        if *have == hixie::KEY3_LEN {
            let answer = hixie::challenge_response(*n1, *n2, k);
            *key3 = None;
            me.out.push(&answer);
            me.out.buf().append(held_out);
            // The key3 timer, unless a close already replaced it.
            if open {
                ctx.disarm(t);
            }
            return None;
        }
        *need_input = true;
        return None;
    }
    let (used, item) = match dec.parse(&inbuf[*start..*end]) {
        Ok(x) => x,
        Err(hixie::HixieError::TooBig) => return Some(Stop::Failed(WsError::TooBig)),
        Err(hixie::HixieError::BadLength) => {
            return Some(Stop::Failed(WsError::Protocol(
                "hixie-76 frame length too long",
            )))
        }
    };
    let at = *start;
    *start += used;
    match item {
        hixie::Item::NeedMore => {
            *start = *end;
            *need_input = true;
        }
        hixie::Item::TextStart => {
            msg.clear();
            lease.clear();
        }
        hixie::Item::Text { start: s, n } => {
            if open {
                if !lease.grow(n) {
                    return Some(Stop::Failed(WsError::OverBudget));
                }
                msg.extend_from_slice(&inbuf[at + s..at + s + n]);
            }
        }
        hixie::Item::TextEnd => {
            let bytes = std::mem::take(msg);
            lease.clear();
            if open {
                if echo {
                    hixie::text_frame(me.out.buf(), &bytes);
                } else {
                    inbox.push(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
        }
        hixie::Item::Close => return Some(Stop::Closed(None, Vec::new())),
    }
    None
}
