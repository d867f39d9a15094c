//! WebSocket connections on the event loop: the upgrade, and two modes.
//!
//! - **Pipe** (`GET /<path>` with `Upgrade: websocket`): two peers on one
//!   path are bridged frame by frame. Either may come first; the first gets
//!   its `101` at once and waits, unread (TCP holds its frames), under
//!   `--ttl`. Frames are streamed: a header is forwarded when parsed and
//!   payload pieces as they arrive, through the connection's fixed 64 KiB
//!   input buffer, so a message of any size costs no more memory. A peer
//!   whose outbound queue passes 256 KiB stops the other from being read
//!   (backpressure both ways). Pings are answered here; a close from one
//!   side is passed on with its code and reason, and both connections end
//!   once each has answered its close.
//! - **Echo** (`/sockjs/echo/websocket`, the SockJS test service's raw
//!   endpoint): each data frame is echoed once it is complete and valid,
//!   so an invalid frame is refused (close 1007/1002) before any of it is
//!   echoed. A frame is held whole, up to `--ws-max-message`.
//!
//! Every incoming frame passes the codec's checks (`crate::ws`): masking,
//! RSV bits, opcodes, control frame rules, fragmentation order, sizes, and
//! UTF-8 of text messages, fail-fast. The SockJS endpoints may also speak
//! hixie-76 (`crate::hixie`): the `101` head goes out at once, the
//! challenge answer once the client's key3 is read, and frames queued
//! before that wait behind it.
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
//! - The close handshake: after weir sends a close frame it goes on reading
//!   (dropping data) until the peer's close, at most [`CLOSE_WAIT`], and
//!   only then ends TCP, through the plain closing path (shut down writes,
//!   read what is left), so the peer's close never meets a reset. A close
//!   due while the connection's output is inside a forwarded frame waits
//!   for that frame's end. After a protocol error nothing more is parsed:
//!   the close goes out and the connection lingers until the client closes.
//! - A pipe peer is named by token; a freed peer's slot may be reused, so
//!   every use checks that the peer is still bridged to this connection.

use std::time::Duration;

use mio::Token;

use crate::conn::{Conn, Io, State};
use crate::hixie;
use crate::http::{response, Head};
use crate::readiness::Ready;
use crate::server::{Server, Timer};
use crate::ws::{self, Completed, FrameParser, MessageState, OpCode, Parsed, Role, WsError};

/// Bytes one connection's outbound queue may hold. Past it, whatever fills
/// the queue stops: the connection itself is not read (its pongs and
/// echoes), the pipe peer feeding it is not read, a SockJS session keeps
/// its messages in its own bounded outbox, and a raw channel member that
/// others write to is closed as too slow.
pub(crate) const WS_QUEUE: usize = 256 * 1024;

/// Input buffer per WebSocket connection.
const WS_INBUF: usize = 64 * 1024;

/// How long weir waits for the peer's close frame after sending its own
/// (RFC 6455 §7.1.1: the server closes TCP after the close handshake).
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// What a WebSocket connection is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WsMode {
    /// Waiting for its peer on this path.
    Waiting(String),
    /// Bridged to `peer` on path `key`.
    Pipe {
        /// The other end.
        peer: Token,
        /// The path both asked for.
        key: String,
    },
    /// Echoes every message.
    Echo,
    /// Carries the SockJS session with this slab key (messages are
    /// assembled and parsed as SockJS frames).
    SockJs(usize),
    /// A raw WebSocket member of a SockJS channel.
    Raw(String),
}

/// Which handshake a WebSocket was opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handshake {
    /// RFC 6455 (the `101` is written).
    Rfc6455,
    /// hixie-76: the `101` head is written; the answer to the challenge
    /// follows once the client's 8-byte key3 is read.
    Hixie76 {
        /// `Sec-WebSocket-Key1`'s number.
        n1: u32,
        /// `Sec-WebSocket-Key2`'s number.
        n2: u32,
    },
}

/// The wire protocol's reading state.
#[derive(Debug)]
enum Proto {
    Rfc6455 {
        parser: FrameParser,
        msgs: MessageState,
    },
    Hixie76 {
        dec: hixie::Decoder,
        /// Still reading key3: the numbers, the bytes so far and how many.
        key3: Option<(u32, u32, [u8; hixie::KEY3_LEN], usize)>,
    },
}

/// A frame being echoed, held until complete.
#[derive(Debug)]
struct HeldFrame {
    fin: bool,
    opcode: OpCode,
    data: Vec<u8>,
}

/// What happens to the data frame being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cur {
    /// No data frame (between frames, or a control frame).
    None,
    /// Streamed to the pipe peer (its header is written there).
    Forward(Token),
    /// Held whole, then echoed.
    Hold,
    /// Collected into a message (SockJS and raw channel members).
    Assemble,
    /// Read and dropped: the connection is closing, or nobody takes it.
    Discard,
}

/// Our side of the close handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CloseOut {
    /// No close frame queued.
    Open,
    /// A close is due, but the connection's output is inside a forwarded
    /// frame: it is written when that frame is complete.
    Pending(Vec<u8>),
    /// Our close frame is queued or written.
    Sent,
}

/// Per-connection WebSocket state.
#[derive(Debug)]
pub struct WsConn {
    pub(crate) mode: WsMode,
    proto: Proto,
    inbuf: Box<[u8]>,
    start: usize,
    end: usize,
    held: Option<HeldFrame>,
    /// Payload bytes of a forwarded frame this connection still has to
    /// receive into its `out`: while non-zero its output is mid-frame and
    /// no other frame may be written to it.
    owed: u64,
    close_out: CloseOut,
    /// The peer's close frame was read.
    close_in: bool,
    /// The peer broke the protocol: nothing more is parsed; after our
    /// close the connection lingers (drains without parsing) and ends.
    failed: bool,
    cur: Cur,
    /// SockJS modes: the message being assembled, and complete ones.
    msg: Vec<u8>,
    inbox: Vec<String>,
    /// The payload of the latest ping not yet answered: its pong waits
    /// for room in the queue (and for the output to be between frames).
    /// Only the latest ping is answered (RFC 6455 §5.5.3 allows it), so
    /// pings cost at most one pong.
    pong: Option<Vec<u8>>,
    /// hixie-76: frames queued before the challenge answer could be
    /// written (it needs key3, which may come after our `101` head).
    held_out: Vec<u8>,
    /// The parser said `NeedMore` for what is buffered.
    need_input: bool,
}

impl WsConn {
    fn new(mode: WsMode, max_message: u64, early: &[u8], hs: Handshake) -> WsConn {
        let mut inbuf = vec![0u8; WS_INBUF].into_boxed_slice();
        // The client should wait for 101, but any early bytes are frames
        // (or, for hixie-76, key3 and frames).
        let n = early.len().min(WS_INBUF);
        inbuf[..n].copy_from_slice(&early[..n]);
        let proto = match hs {
            Handshake::Rfc6455 => Proto::Rfc6455 {
                parser: FrameParser::new(Role::Server, max_message),
                msgs: MessageState::new(max_message),
            },
            Handshake::Hixie76 { n1, n2 } => Proto::Hixie76 {
                dec: hixie::Decoder::new(max_message),
                key3: Some((n1, n2, [0; hixie::KEY3_LEN], 0)),
            },
        };
        WsConn {
            mode,
            proto,
            inbuf,
            start: 0,
            end: n,
            held: None,
            owed: 0,
            close_out: CloseOut::Open,
            close_in: false,
            failed: false,
            cur: Cur::None,
            msg: Vec::new(),
            inbox: Vec::new(),
            pong: None,
            held_out: Vec::new(),
            need_input: n == 0,
        }
    }

    /// Neither side has started the close handshake.
    fn open(&self) -> bool {
        self.close_out == CloseOut::Open && !self.close_in && !self.failed
    }

    fn hixie(&self) -> bool {
        matches!(self.proto, Proto::Hixie76 { .. })
    }

    /// Still waiting for hixie-76's key3: output goes to `held_out`.
    fn awaiting_key3(&self) -> bool {
        matches!(self.proto, Proto::Hixie76 { key3: Some(_), .. })
    }
}

/// Bytes queued for `conn` and not yet written.
fn queued(conn: &Conn) -> usize {
    conn.out.len() - conn.out_pos + conn.ws.as_ref().map_or(0, |w| w.held_out.len())
}

/// Where frames for `conn` go: its output, or, during a hixie-76
/// handshake, the bytes held until the challenge answer.
fn out_of(conn: &mut Conn) -> &mut Vec<u8> {
    match &mut conn.ws {
        Some(ws) if ws.awaiting_key3() => &mut ws.held_out,
        _ => &mut conn.out,
    }
}

/// What the read loop ended with.
enum Stop {
    /// Nothing more to read now, or a queue it fills is full.
    Idle,
    /// A close frame arrived (code and raw payload to pass on).
    Closed(Option<u16>, Vec<u8>),
    /// The client broke the protocol.
    Failed(WsError),
    /// The client's connection ended (EOF or error) without a close frame.
    Gone,
}

impl Server {
    /// Answer a WebSocket upgrade, or refuse it. Returns the accept key.
    fn ws_handshake(&mut self, token: Token, head: &Head) -> Option<()> {
        let minor = head.minor;
        if minor < 1 || !head.connection_upgrade {
            self.respond_error(
                token,
                minor,
                400,
                "A WebSocket upgrade needs HTTP/1.1 and Connection: Upgrade.",
                false,
            );
            return None;
        }
        if head.ws_version.as_deref().map(str::trim) != Some("13") {
            let mut out = Vec::new();
            response::error(
                &mut out,
                minor,
                426,
                "Only WebSocket version 13 is supported.",
                "Sec-WebSocket-Version: 13\r\n",
                false,
            );
            self.respond(token, out, false);
            return None;
        }
        self.ws_accept(token, head).then_some(())
    }

    /// Write the `101` answer (or `400` for a bad key). Returns whether the
    /// connection is now a WebSocket.
    pub(crate) fn ws_accept(&mut self, token: Token, head: &Head) -> bool {
        let Some(key) = head.ws_key.as_deref().filter(|k| ws::valid_key(k)) else {
            let msg = "Missing or invalid Sec-WebSocket-Key.";
            self.respond_error(token, head.minor, 400, msg, false);
            return false;
        };
        let conn = &mut self.conns[token.0];
        conn.out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
        conn.out.extend_from_slice(ws::accept_key(key).as_bytes());
        conn.out.extend_from_slice(b"\r\n\r\n");
        true
    }

    /// Answer a hixie-76 upgrade (`Sec-WebSocket-Key1`/`Key2`, no version):
    /// the `101` head now, the challenge answer once key3 is read (a proxy
    /// that does not know hixie-76 sends key3 only after it sees our head).
    /// `400` for keys that do not give numbers or a missing `Host`.
    pub(crate) fn ws_accept_hixie(&mut self, token: Token, head: &Head) -> Option<Handshake> {
        let minor = head.minor;
        let n1 = head.ws_hixie_keys.0.as_deref().and_then(hixie::key_number);
        let n2 = head.ws_hixie_keys.1.as_deref().and_then(hixie::key_number);
        let host = head.host.as_deref().filter(|h| !h.is_empty());
        let (Some(n1), Some(n2), Some(host)) = (n1, n2, host) else {
            let msg = "Invalid hixie-76 handshake: Sec-WebSocket-Key1/Key2 and Host are needed.";
            self.respond_error(token, minor, 400, msg, false);
            return None;
        };
        let scheme = match head.forwarded_proto.as_deref() {
            Some(p) if p.eq_ignore_ascii_case("https") => "wss",
            _ => "ws",
        };
        let query = head
            .query
            .as_deref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let mut h = String::with_capacity(256);
        h.push_str("HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n");
        if let Some(origin) = head.origin.as_deref() {
            h.push_str(&format!("Sec-WebSocket-Origin: {origin}\r\n"));
        }
        h.push_str(&format!(
            "Sec-WebSocket-Location: {scheme}://{host}{}{query}\r\n\r\n",
            head.path
        ));
        self.conns[token.0].out.extend_from_slice(h.as_bytes());
        Some(Handshake::Hixie76 { n1, n2 })
    }

    /// Queue one text message to a WebSocket (dropped if it is closing).
    pub(crate) fn ws_text(&mut self, token: Token, text: &[u8]) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        let Some(ws) = conn.ws.as_ref() else { return };
        if conn.state != State::WebSocket || !ws.open() || ws.owed > 0 {
            return;
        }
        let hixie = ws.hixie();
        let out = out_of(conn);
        if hixie {
            hixie::text_frame(out, text);
        } else {
            ws::write_header(out, true, OpCode::Text, text.len() as u64, None);
            out.extend_from_slice(text);
        }
        self.ws_flush(token);
    }

    /// Whether `token` is a WebSocket whose queue has room (under
    /// [`WS_QUEUE`]) for more frames.
    pub(crate) fn ws_room(&self, token: Token) -> bool {
        self.conns
            .get(token.0)
            .is_some_and(|c| c.state == State::WebSocket && queued(c) < WS_QUEUE)
    }

    /// A message from another member of a channel to raw member `token`:
    /// queued, unless that passes the bound; then the member, which does
    /// not read fast enough, is closed (nobody else waits for it).
    pub(crate) fn ws_text_to_member(&mut self, token: Token, text: &[u8]) {
        if !self.ws_room(token) {
            if let Some(c) = self.conns.get_mut(token.0) {
                let _ = c.flush_out();
            }
        }
        if self.ws_room(token) {
            return self.ws_text(token, text);
        }
        let Some(conn) = self.conns.get(token.0) else {
            return;
        };
        if conn.ws.as_ref().is_some_and(|w| w.open()) {
            log::debug!("[{}] raw websocket member too slow: closing", token.0);
            let reason = format!(
                "Receiver too slow: more than {} KiB queued.",
                WS_QUEUE / 1024
            );
            self.ws_close_with(token, ws::close::POLICY, &reason);
        }
    }

    /// Close a WebSocket with `code` and `reason`.
    pub(crate) fn ws_close_with(&mut self, token: Token, code: u16, reason: &str) {
        let p = close_payload(&ws::close_frame(code, reason));
        self.ws_send_close(token, &p);
    }

    /// Make `token` a WebSocket in `mode` (after its `101` head).
    pub(crate) fn ws_become(&mut self, token: Token, mode: WsMode, early: &[u8], hs: Handshake) {
        let max = self.config.ws_max_message;
        let conn = &mut self.conns[token.0];
        conn.state = State::WebSocket;
        conn.ws = Some(Box::new(WsConn::new(mode, max, early, hs)));
        conn.ready.interest = Ready::READABLE | Ready::WRITABLE;
        conn.linger = false;
        if matches!(hs, Handshake::Hixie76 { .. }) {
            // key3 is due at once; it gets the time a head gets.
            let t = self
                .timers
                .insert(self.now, self.config.head_timeout, Timer::Conn(token));
            if let Some(old) = self.conns[token.0].timer.replace(t) {
                self.timers.cancel(old);
            }
        }
    }

    /// `GET /<path>` with `Upgrade: websocket`: pair two peers on the path.
    pub(crate) fn ws_pipe_request(&mut self, token: Token, head: Head, early: Vec<u8>) {
        let key = head.path.clone();
        if self.ws_running.contains(&key) {
            let msg = format!("A WebSocket pair on {key} is already connected; try another path.");
            return self.respond_error(token, head.minor, 409, &msg, false);
        }
        let waiting = self.ws_waiting.get(&key).is_some_and(|p| {
            self.conns
                .get(p.0)
                .is_some_and(|c| c.state == State::WebSocket)
        });
        if !waiting && !self.park_allowed(token) {
            let msg = format!(
                "Too many waiting transfers from your address ({}); finish some first.",
                self.config.max_parked_per_ip
            );
            return self.respond_error(token, head.minor, 429, &msg, false);
        }
        if self.ws_handshake(token, &head).is_none() {
            return;
        }
        let rfc = Handshake::Rfc6455;
        match self.ws_waiting.remove(&key) {
            Some(peer)
                if self
                    .conns
                    .get(peer.0)
                    .is_some_and(|c| c.state == State::WebSocket) =>
            {
                let mode = WsMode::Pipe {
                    peer,
                    key: key.clone(),
                };
                self.ws_become(token, mode, &early, rfc);
                if let Some(ws) = self.conns[peer.0].ws.as_mut() {
                    ws.mode = WsMode::Pipe {
                        peer: token,
                        key: key.clone(),
                    };
                }
                if let Some(h) = self.conns[peer.0].timer.take() {
                    self.timers.cancel(h);
                }
                self.unpark(peer);
                self.ws_running.insert(key.clone());
                log::info!("websocket pipe {key} bridged");
                self.ws_drive(peer);
                self.ws_drive(token);
            }
            _ => {
                self.ws_become(token, WsMode::Waiting(key.clone()), &early, rfc);
                self.ws_waiting.insert(key, token);
                self.mark_parked(token);
                let ttl = self.config.ttl;
                let conn = &mut self.conns[token.0];
                conn.ready.interest = Ready::WRITABLE;
                conn.timer = Some(self.timers.insert(self.now, ttl, Timer::Conn(token)));
                self.ws_drive(token);
            }
        }
    }

    /// The pipe peer of `token` (whose mode is `mode`), if it is still a
    /// WebSocket bridged to `token`. A freed peer's slot may hold another
    /// connection by now; this never names it.
    fn ws_pipe_peer(&self, token: Token, mode: &WsMode) -> Option<Token> {
        let WsMode::Pipe { peer, .. } = mode else {
            return None;
        };
        self.ws_is_peer_of(*peer, token).then_some(*peer)
    }

    /// Whether `peer` is a WebSocket bridged to `token`.
    fn ws_is_peer_of(&self, peer: Token, token: Token) -> bool {
        self.conns.get(peer.0).is_some_and(|c| {
            c.state == State::WebSocket
                && c.ws
                    .as_ref()
                    .is_some_and(|w| matches!(w.mode, WsMode::Pipe { peer: p, .. } if p == token))
        })
    }

    /// Readiness for a WebSocket connection.
    pub(crate) fn ws_drive(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.state != State::WebSocket {
            return;
        }
        // 1. Write what is queued for it.
        if conn.flush_out().is_err() {
            return self.ws_gone(token);
        }
        // (Its WsConn is out while its own read loop runs: nothing more.)
        if conn.ws.is_none() || self.ws_release_close(token) || self.ws_done(token) {
            return;
        }
        let conn = &mut self.conns[token.0];
        let Some(ws) = conn.ws.as_ref() else { return };
        let mode = ws.mode.clone();
        let reads = !ws.failed && (ws.open() || ws.close_out == CloseOut::Sent);
        let waiting = matches!(mode, WsMode::Waiting(_)) && ws.open();
        // 2. Below the bound again: whatever it paused goes on.
        if queued(conn) < WS_QUEUE {
            self.ws_pong_due(token);
            let conn = &mut self.conns[token.0];
            if reads && !waiting {
                conn.ready.interest.insert(Ready::READABLE);
            }
            if let WsMode::SockJs(k) = mode {
                self.sj_pump(k);
            }
            if let Some(peer) = self.ws_pipe_peer(token, &mode) {
                let p = &mut self.conns[peer.0];
                if !p.ready.interest.contains(Ready::READABLE)
                    && p.ws.as_ref().is_some_and(|w| !w.failed)
                {
                    p.ready.interest.insert(Ready::READABLE);
                    self.ws_read(peer);
                }
            }
        }
        // 3. Read and relay its frames.
        let Some(conn) = self.conns.get(token.0) else {
            return;
        };
        if conn.state != State::WebSocket {
            return;
        }
        if waiting {
            // Unread while it waits; still notice it leave.
            if conn.ready.hung_up() && !conn.out_pending() {
                self.ws_gone(token);
            }
        } else if reads {
            self.ws_read(token);
        }
    }

    /// End the connection if its close handshake is over: our close is
    /// written, and the peer's close came (or its EOF, or it failed).
    /// Returns whether it ended.
    fn ws_done(&mut self, token: Token) -> bool {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return false;
        };
        let Some(ws) = conn.ws.as_ref() else {
            return false;
        };
        let over = ws.close_out == CloseOut::Sent
            && ws.owed == 0
            && queued(conn) == 0
            && (ws.close_in || ws.failed || conn.read_eof);
        if over {
            // A failed peer may still be sending: drain it without parsing
            // (lingering) so our close is not destroyed by a reset.
            let linger = ws.failed && !conn.read_eof;
            self.ws_finish(token, linger);
        }
        over
    }

    /// Hand the connection to the plain closing path: shut down writes,
    /// read what the client still sends (lingering, or at once), close.
    fn ws_finish(&mut self, token: Token, linger: bool) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        let ws = conn.ws.take();
        conn.state = State::Responding { keep_alive: false };
        conn.linger = linger;
        self.finish_conn(token);
        if let Some(ws) = ws {
            self.ws_forget(token, &ws.mode);
        }
    }

    /// Read frames from `token` and pass them on.
    fn ws_read(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.state != State::WebSocket {
            return;
        }
        let Some(mut ws) = conn.ws.take() else { return };
        let stop = if ws.failed || (matches!(ws.mode, WsMode::Waiting(_)) && ws.open()) {
            Stop::Idle
        } else if ws.hixie() {
            self.ws_read_hixie(token, &mut ws)
        } else {
            self.ws_read_loop(token, &mut ws)
        };
        let inbox = std::mem::take(&mut ws.inbox);
        let mode = ws.mode.clone();
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        conn.ws = Some(ws);
        if !inbox.is_empty() {
            self.sj_ws_messages(token, &mode, inbox);
            // Answering them may have ended the connection.
            let still = self
                .conns
                .get(token.0)
                .is_some_and(|c| c.state == State::WebSocket && c.ws.is_some());
            if !still {
                return;
            }
        }
        match stop {
            Stop::Idle => {}
            Stop::Closed(code, payload) => self.ws_closed(token, code, &payload),
            Stop::Failed(e) => self.ws_failed(token, e),
            Stop::Gone => {
                let closing_eof = self
                    .conns
                    .get(token.0)
                    .is_some_and(|c| c.read_eof && c.ws.as_ref().is_some_and(|w| !w.open()));
                if closing_eof {
                    // The peer ended after our close: done once it is out.
                    if !self.ws_done(token) {
                        if let Some(c) = self.conns.get_mut(token.0) {
                            c.ready.interest.remove(Ready::READABLE);
                        }
                    }
                } else {
                    self.ws_gone(token);
                }
            }
        }
        // Write what was queued for the peer (and for us: pongs, echoes).
        if let Some(peer) = self.ws_pipe_peer(token, &mode) {
            self.ws_flush(peer);
        }
        self.ws_flush(token);
    }

    /// Whether a queue `token`'s reading fills is over the bound even
    /// after writing what the socket takes: its own (if `own`), and
    /// `fwd`'s, the pipe peer its frames go to. `Err` when writing its own
    /// queue failed.
    fn ws_over_bound(&mut self, token: Token, own: bool, fwd: Option<Token>) -> Result<bool, ()> {
        for (t, own) in [(own.then_some(token), true), (fwd, false)] {
            let Some(t) = t else { continue };
            let Some(c) = self.conns.get_mut(t.0) else {
                continue;
            };
            if queued(c) <= WS_QUEUE {
                continue;
            }
            // Pause only when its socket is really full: that WouldBlock
            // guarantees a writable edge later, whose drive resumes this
            // reader.
            if c.flush_out().is_err() {
                if own {
                    return Err(());
                }
                continue;
            }
            if queued(c) > WS_QUEUE {
                c.ready.interest.insert(Ready::WRITABLE);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Queue the pong `ws` owes, if its output is between frames and its
    /// queue has room. Returns `false` when the queue is full (the socket
    /// took what it could): the caller stops reading `token`, and the
    /// drain that follows writes the pong and resumes it.
    fn ws_write_pong(&mut self, token: Token, ws: &mut WsConn) -> bool {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return true;
        };
        if ws.pong.is_none() || ws.owed > 0 || !ws.open() {
            return true;
        }
        if conn.out.len() - conn.out_pos > WS_QUEUE {
            let _ = conn.flush_out();
            if conn.out.len() - conn.out_pos > WS_QUEUE {
                conn.ready.interest.insert(Ready::WRITABLE);
                conn.ready.interest.remove(Ready::READABLE);
                return false;
            }
        }
        if let Some(p) = ws.pong.take() {
            conn.out
                .extend_from_slice(&ws::frame(true, OpCode::Pong, &p));
        }
        true
    }

    /// `ws_write_pong` for a connection whose `WsConn` is in place.
    fn ws_pong_due(&mut self, token: Token) {
        let Some(mut ws) = self.conns.get_mut(token.0).and_then(|c| c.ws.take()) else {
            return;
        };
        self.ws_write_pong(token, &mut ws);
        if let Some(c) = self.conns.get_mut(token.0) {
            c.ws = Some(ws);
        }
    }

    /// Fill `ws.inbuf` from the socket when the parser needs input.
    /// `Some(stop)` when there is nothing to parse.
    fn ws_fill(&mut self, token: Token, ws: &mut WsConn) -> Option<Stop> {
        if ws.start < ws.end || !ws.need_input {
            return None;
        }
        let conn = &mut self.conns[token.0];
        if !conn.ready.can_read() {
            return Some(Stop::Idle);
        }
        match conn.read_into(&mut ws.inbuf) {
            Io::Moved(n) => {
                ws.start = 0;
                ws.end = n;
                ws.need_input = false;
                None
            }
            Io::WouldBlock => Some(Stop::Idle),
            Io::Eof | Io::Failed(_) => Some(Stop::Gone),
        }
    }

    /// The bound check at the top of each read step: `Some(stop)` when
    /// reading must pause (or the connection failed).
    fn ws_check_bound(&mut self, token: Token, ws: &WsConn) -> Option<Stop> {
        let fwd = match ws.cur {
            Cur::Forward(p) => Some(p),
            _ if ws.open() => self.ws_pipe_peer(token, &ws.mode),
            _ => None,
        };
        // Its own queue counts where what it sends is answered into it
        // (echoes, SockJS replies). Elsewhere its own queue holds what its
        // peer sent, and pausing it on that would deadlock two clients that
        // both write before they read; its pings are bounded by
        // `ws_write_pong` instead.
        let own = matches!(ws.mode, WsMode::Echo | WsMode::SockJs(_));
        match self.ws_over_bound(token, own, fwd) {
            Err(()) => Some(Stop::Gone),
            Ok(true) => {
                self.conns[token.0].ready.interest.remove(Ready::READABLE);
                Some(Stop::Idle)
            }
            Ok(false) => None,
        }
    }

    fn ws_read_loop(&mut self, token: Token, ws: &mut WsConn) -> Stop {
        loop {
            if let Some(stop) = self.ws_check_bound(token, ws) {
                return stop;
            }
            // Parse first, read only when the parser asks for input: after
            // a header with a zero length the (empty) payload is ready with
            // no bytes at all, and reading first would hold that frame
            // until the client sent something else.
            if let Some(stop) = self.ws_fill(token, ws) {
                return stop;
            }
            let Proto::Rfc6455 { parser, msgs } = &mut ws.proto else {
                return Stop::Idle;
            };
            let (used, item) = match parser.parse(&mut ws.inbuf[ws.start..ws.end]) {
                Ok(x) => x,
                Err(e) => return Stop::Failed(e),
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
                        return Stop::Failed(e);
                    }
                    ws.cur = if opcode.is_control() {
                        Cur::None
                    } else if !ws.open() {
                        Cur::Discard
                    } else {
                        match &ws.mode {
                            WsMode::Pipe { .. } => match self.ws_pipe_peer(token, &ws.mode) {
                                Some(p) => {
                                    let t = &mut self.conns[p.0];
                                    match t.ws.as_mut() {
                                        Some(tw) if tw.open() => {
                                            tw.owed = len;
                                            ws::write_header(&mut t.out, fin, opcode, len, None);
                                            Cur::Forward(p)
                                        }
                                        _ => Cur::Discard,
                                    }
                                }
                                None => Cur::Discard,
                            },
                            WsMode::Echo => {
                                ws.held = Some(HeldFrame {
                                    fin,
                                    opcode,
                                    data: Vec::with_capacity(len.min(1 << 20) as usize),
                                });
                                Cur::Hold
                            }
                            WsMode::SockJs(_) | WsMode::Raw(_) => Cur::Assemble,
                            WsMode::Waiting(_) => Cur::Discard,
                        }
                    };
                }
                Parsed::Payload { start, n, last } => {
                    let piece = &ws.inbuf[piece_at + start..piece_at + start + n];
                    if let Err(e) = msgs.on_payload(piece) {
                        return Stop::Failed(e);
                    }
                    match ws.cur {
                        Cur::Forward(p) => {
                            if self.ws_is_peer_of(p, token) {
                                let t = &mut self.conns[p.0];
                                t.out.extend_from_slice(piece);
                                if let Some(tw) = t.ws.as_mut() {
                                    tw.owed = tw.owed.saturating_sub(n as u64);
                                }
                            }
                        }
                        Cur::Hold => {
                            if let Some(h) = ws.held.as_mut() {
                                h.data.extend_from_slice(piece);
                            }
                        }
                        Cur::Assemble => ws.msg.extend_from_slice(piece),
                        Cur::Discard | Cur::None => {}
                    }
                    if last {
                        let cur = std::mem::replace(&mut ws.cur, Cur::None);
                        match msgs.on_frame_end() {
                            Err(e) => return Stop::Failed(e),
                            Ok(Some(Completed::Ping(p))) => {
                                // After our close, nothing more is sent.
                                if ws.open() {
                                    ws.pong = Some(p.as_bytes().to_vec());
                                    if !self.ws_write_pong(token, ws) {
                                        // Its queue is full: it is not read
                                        // until the queue drains.
                                        return Stop::Idle;
                                    }
                                }
                            }
                            Ok(Some(Completed::Close { code, payload })) => {
                                return Stop::Closed(code, payload.as_bytes().to_vec());
                            }
                            Ok(Some(Completed::Message { .. })) if cur == Cur::Assemble => {
                                let bytes = std::mem::take(&mut ws.msg);
                                if ws.open() {
                                    ws.inbox.push(String::from_utf8_lossy(&bytes).into_owned());
                                }
                            }
                            Ok(_) => {
                                if cur == Cur::Discard {
                                    ws.msg.clear();
                                }
                                if let Some(h) = ws.held.take().filter(|_| cur == Cur::Hold) {
                                    if ws.open() && ws.owed == 0 {
                                        let own = &mut self.conns[token.0];
                                        ws::write_header(
                                            &mut own.out,
                                            h.fin,
                                            h.opcode,
                                            h.data.len() as u64,
                                            None,
                                        );
                                        own.out.extend_from_slice(&h.data);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The read loop of a hixie-76 connection: key3 first, then text
    /// frames (each one a message) and the close frame.
    fn ws_read_hixie(&mut self, token: Token, ws: &mut WsConn) -> Stop {
        loop {
            if let Some(stop) = self.ws_check_bound(token, ws) {
                return stop;
            }
            if let Some(stop) = self.ws_fill(token, ws) {
                return stop;
            }
            let Proto::Hixie76 { dec, key3 } = &mut ws.proto else {
                return Stop::Idle;
            };
            if let Some((n1, n2, k, have)) = key3 {
                let take = (hixie::KEY3_LEN - *have).min(ws.end - ws.start);
                k[*have..*have + take].copy_from_slice(&ws.inbuf[ws.start..ws.start + take]);
                *have += take;
                ws.start += take;
                if *have == hixie::KEY3_LEN {
                    let answer = hixie::challenge_response(*n1, *n2, k);
                    *key3 = None;
                    let conn = &mut self.conns[token.0];
                    conn.out.extend_from_slice(&answer);
                    conn.out.append(&mut ws.held_out);
                    // The key3 timer, unless a close already replaced it.
                    if ws.open() {
                        if let Some(t) = conn.timer.take() {
                            self.timers.cancel(t);
                        }
                    }
                } else {
                    ws.need_input = true;
                }
                continue;
            }
            let (used, item) = match dec.parse(&ws.inbuf[ws.start..ws.end]) {
                Ok(x) => x,
                Err(hixie::HixieError::TooBig) => return Stop::Failed(WsError::TooBig),
                Err(hixie::HixieError::BadLength) => {
                    return Stop::Failed(WsError::Protocol("hixie-76 frame length too long"))
                }
            };
            let at = ws.start;
            ws.start += used;
            match item {
                hixie::Item::NeedMore => {
                    ws.start = ws.end;
                    ws.need_input = true;
                }
                hixie::Item::TextStart => ws.msg.clear(),
                hixie::Item::Text { start, n } => {
                    if ws.open() {
                        ws.msg
                            .extend_from_slice(&ws.inbuf[at + start..at + start + n]);
                    }
                }
                hixie::Item::TextEnd => {
                    let bytes = std::mem::take(&mut ws.msg);
                    if !ws.open() {
                        continue;
                    }
                    if ws.mode == WsMode::Echo {
                        hixie::text_frame(&mut self.conns[token.0].out, &bytes);
                    } else {
                        ws.inbox.push(String::from_utf8_lossy(&bytes).into_owned());
                    }
                }
                hixie::Item::Close => return Stop::Closed(None, Vec::new()),
            }
        }
    }

    fn ws_flush(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.state != State::WebSocket {
            return;
        }
        match conn.flush_out() {
            Ok(_) => {
                if conn.out_pending() {
                    conn.ready.interest.insert(Ready::WRITABLE);
                }
                if !self.ws_release_close(token) && !self.ws_done(token) {
                    self.ws_pong_due(token);
                }
            }
            Err(_) => self.ws_gone(token),
        }
    }

    /// A close held back while `token`'s output was inside a forwarded
    /// frame goes out once that frame is complete. Returns whether it did.
    fn ws_release_close(&mut self, token: Token) -> bool {
        let Some(ws) = self.conns.get_mut(token.0).and_then(|c| c.ws.as_mut()) else {
            return false;
        };
        if ws.owed > 0 || !matches!(ws.close_out, CloseOut::Pending(_)) {
            return false;
        }
        let CloseOut::Pending(p) = std::mem::replace(&mut ws.close_out, CloseOut::Open) else {
            return false;
        };
        self.ws_send_close(token, &p);
        true
    }

    /// Start our side of the close handshake: queue a close frame to
    /// `token` (held back while its output is inside a forwarded frame),
    /// go on reading for the peer's close, under [`CLOSE_WAIT`].
    fn ws_send_close(&mut self, token: Token, payload: &[u8]) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.state != State::WebSocket {
            return;
        }
        let Some(ws) = conn.ws.as_mut() else { return };
        if ws.close_out != CloseOut::Open {
            return;
        }
        if ws.owed > 0 {
            ws.close_out = CloseOut::Pending(payload.to_vec());
        } else {
            ws.close_out = CloseOut::Sent;
            let hixie = ws.hixie();
            let out = out_of(conn);
            if hixie {
                out.extend_from_slice(&hixie::CLOSE_FRAME);
            } else {
                ws::write_header(out, true, OpCode::Close, payload.len() as u64, None);
                out.extend_from_slice(payload);
            }
        }
        let failed = conn.ws.as_ref().is_some_and(|w| w.failed);
        conn.ready.interest.insert(Ready::WRITABLE);
        if !failed {
            // Read on: the peer's close (frames before it are dropped).
            conn.ready.interest.insert(Ready::READABLE);
        }
        if let Some(h) = conn.timer.take() {
            self.timers.cancel(h);
        }
        let t = self.timers.insert(self.now, CLOSE_WAIT, Timer::Conn(token));
        self.conns[token.0].timer = Some(t);
        self.ws_drive(token);
    }

    /// Cut `token` if its output is inside a frame whose source can no
    /// longer finish it (a close frame cannot be placed inside a frame).
    /// Returns whether it was cut.
    fn ws_cut_mid_frame(&mut self, token: Token) -> bool {
        let Some(conn) = self.conns.get(token.0) else {
            return false;
        };
        if !conn.ws.as_ref().is_some_and(|w| w.owed > 0) {
            return false;
        }
        let _ = socket2::SockRef::from(&conn.sock).set_linger(Some(Duration::ZERO));
        self.kill(token, "websocket cut mid-frame");
        true
    }

    /// A valid close arrived from `token`: echo it; if it started the
    /// handshake, pass it on to its pipe peer.
    fn ws_closed(&mut self, token: Token, code: Option<u16>, payload: &[u8]) {
        let Some(ws) = self.conns.get_mut(token.0).and_then(|c| c.ws.as_mut()) else {
            return;
        };
        let started = ws.close_out == CloseOut::Open;
        ws.close_in = true;
        let mode = ws.mode.clone();
        if started {
            if let WsMode::Pipe { key, .. } = &mode {
                // The other side learns the code and reason; the path is free.
                log::info!("websocket pipe {key} closed by a peer (code {code:?})");
                self.ws_running.remove(key);
                if let Some(peer) = self.ws_pipe_peer(token, &mode) {
                    self.ws_send_close(peer, payload);
                }
            }
        }
        self.ws_send_close(token, payload);
        // A reply to our close: the handshake may be over.
        self.ws_drive(token);
    }

    /// `token` broke the protocol: it gets the error's close code; its
    /// peer is told the other side failed.
    fn ws_failed(&mut self, token: Token, e: WsError) {
        log::debug!("[{}] websocket protocol error: {e}", token.0);
        let Some(ws) = self.conns.get_mut(token.0).and_then(|c| c.ws.as_mut()) else {
            return;
        };
        ws.failed = true;
        let mode = ws.mode.clone();
        // A failure inside its frame leaves the peer's output mid-frame.
        let fwd = match ws.cur {
            Cur::Forward(p) => Some(p),
            _ => None,
        };
        if let Some(c) = self.conns.get_mut(token.0) {
            // Nothing more is parsed; the close goes out, then it lingers.
            c.ready.interest.remove(Ready::READABLE);
        }
        let payload = close_payload(&e.close_frame());
        self.ws_send_close(token, &payload);
        if let WsMode::Pipe { key, .. } = &mode {
            self.ws_running.remove(key);
            if let Some(peer) = self.ws_pipe_peer(token, &mode) {
                if fwd != Some(peer) || !self.ws_cut_mid_frame(peer) {
                    let p = close_payload(&ws::close_frame(
                        1001,
                        "The peer broke the WebSocket protocol.",
                    ));
                    self.ws_send_close(peer, &p);
                }
            }
        }
        self.ws_drive(token);
    }

    /// `token`'s connection ended without a close.
    pub(crate) fn ws_gone(&mut self, token: Token) {
        self.kill(token, "websocket client left");
    }

    /// A WebSocket connection is being freed (called from `kill`): its
    /// peer is told and the tables forget it.
    pub(crate) fn ws_detach(&mut self, token: Token, ws: WsConn) {
        if let Some(peer) = self.ws_pipe_peer(token, &ws.mode) {
            if !self.ws_cut_mid_frame(peer) {
                let p = close_payload(&ws::close_frame(1001, "The peer went away."));
                self.ws_send_close(peer, &p);
            }
        }
        self.ws_forget(token, &ws.mode);
    }

    /// Remove a finished connection from the pairing tables; a pipe peer
    /// that it held back reads again.
    fn ws_forget(&mut self, token: Token, mode: &WsMode) {
        match mode {
            WsMode::Waiting(key) => {
                if self.ws_waiting.get(key) == Some(&token) {
                    self.ws_waiting.remove(key);
                }
            }
            WsMode::Pipe { key, .. } => {
                self.ws_running.remove(key);
                if let Some(peer) = self.ws_pipe_peer(token, mode) {
                    self.ws_drive(peer);
                }
            }
            WsMode::Echo => {}
            WsMode::SockJs(_) | WsMode::Raw(_) => self.sj_ws_gone(token, mode),
        }
    }

    /// The relay is stopping: every WebSocket gets 1001.
    pub(crate) fn ws_shutdown(&mut self, token: Token) {
        let p = close_payload(&ws::close_frame(1001, "The relay is shutting down."));
        self.ws_send_close(token, &p);
    }

    /// The connection's timer fired: a waiting peer's TTL, a hixie-76
    /// client's key3 that did not come, or the end of the wait for the
    /// peer's close.
    pub(crate) fn ws_wait_expired(&mut self, token: Token) {
        let Some(conn) = self.conns.get(token.0) else {
            return;
        };
        let Some(ws) = conn.ws.as_ref() else { return };
        if ws.awaiting_key3() && ws.open() {
            return self.kill(token, "hixie-76 key3 did not arrive in time");
        }
        if !ws.open() || ws.failed {
            // No close from the peer in time. If ours is written, close
            // cleanly (lingering: it may still send); else cut.
            if ws.close_out == CloseOut::Sent && queued(conn) == 0 {
                log::debug!("[{}] websocket: no close from the peer in time", token.0);
                self.ws_finish(token, !conn.read_eof);
            } else {
                self.kill(token, "websocket close not written in time");
            }
            return;
        }
        let secs = self.config.ttl.as_secs();
        let reason = format!("No peer arrived within {secs} s.");
        let p = close_payload(&ws::close_frame(1001, &reason));
        self.ws_send_close(token, &p);
    }
}

/// The payload of a complete unmasked close frame built by `ws::close_frame`.
fn close_payload(frame: &[u8]) -> Vec<u8> {
    // Control frames are short: a 2-byte header.
    frame.get(2..).unwrap_or(&[]).to_vec()
}
