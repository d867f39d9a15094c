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
//!   side is passed on with its code and reason, and both connections end.
//! - **Echo** (`/sockjs/echo/websocket`, the SockJS test service's raw
//!   endpoint): each data frame is echoed once it is complete and valid,
//!   so an invalid frame is refused (close 1007/1002) before any of it is
//!   echoed. A frame is held whole, up to `--ws-max-message`.
//!
//! Every incoming frame passes the codec's checks (`crate::ws`): masking,
//! RSV bits, opcodes, control frame rules, fragmentation order, sizes, and
//! UTF-8 of text messages, fail-fast.

use mio::Token;

use crate::conn::{Io, State};
use crate::http::{response, Head};
use crate::readiness::Ready;
use crate::server::{Server, Timer};
use crate::ws::{self, Completed, FrameParser, MessageState, OpCode, Parsed, Role, WsError};

/// Bytes one connection's outbound queue may hold before the connection
/// feeding it is paused.
const WS_QUEUE: usize = 256 * 1024;

/// Input buffer per WebSocket connection.
const WS_INBUF: usize = 64 * 1024;

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

/// A frame being echoed, held until complete.
#[derive(Debug)]
struct HeldFrame {
    fin: bool,
    opcode: OpCode,
    data: Vec<u8>,
}

/// Per-connection WebSocket state.
#[derive(Debug)]
pub struct WsConn {
    pub(crate) mode: WsMode,
    parser: FrameParser,
    msgs: MessageState,
    inbuf: Box<[u8]>,
    start: usize,
    end: usize,
    held: Option<HeldFrame>,
    /// Payload bytes of a forwarded frame this connection still has to
    /// receive into its `out`: while non-zero its output is mid-frame and
    /// no other frame may be written to it.
    owed: u64,
    /// A close frame was queued to this connection.
    sent_close: bool,
    /// The frame being read is a data frame (its payload is relayed).
    cur_data: bool,
    /// SockJS modes: the message being assembled, and complete ones.
    msg: Vec<u8>,
    inbox: Vec<String>,
    /// The parser said `NeedMore` for what is buffered.
    need_input: bool,
}

impl WsConn {
    fn new(mode: WsMode, max_message: u64, early: &[u8]) -> WsConn {
        let mut inbuf = vec![0u8; WS_INBUF].into_boxed_slice();
        // The client should wait for 101, but any early bytes are frames.
        let n = early.len().min(WS_INBUF);
        inbuf[..n].copy_from_slice(&early[..n]);
        WsConn {
            mode,
            parser: FrameParser::new(Role::Server, max_message),
            msgs: MessageState::new(max_message),
            inbuf,
            start: 0,
            end: n,
            held: None,
            owed: 0,
            sent_close: false,
            cur_data: false,
            msg: Vec::new(),
            inbox: Vec::new(),
            need_input: n == 0,
        }
    }
}

/// What the read loop ended with.
enum Stop {
    /// Nothing more to read now, or the target is full.
    Idle,
    /// A close frame arrived (code and raw payload to pass on).
    Closed(Option<u16>, Vec<u8>),
    /// The client broke the protocol.
    Failed(WsError),
    /// The client's connection ended without a close frame.
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

    /// Queue one text message to a WebSocket (dropped if it is closing).
    pub(crate) fn ws_text(&mut self, token: Token, text: &[u8]) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        let Some(ws) = conn.ws.as_ref() else { return };
        if conn.state != State::WebSocket || ws.sent_close || ws.owed > 0 {
            return;
        }
        ws::write_header(&mut conn.out, true, OpCode::Text, text.len() as u64, None);
        conn.out.extend_from_slice(text);
        self.ws_flush(token);
    }

    /// Close a WebSocket with `code` and `reason`.
    pub(crate) fn ws_close_with(&mut self, token: Token, code: u16, reason: &str) {
        let p = close_payload(&ws::close_frame(code, reason));
        self.ws_send_close(token, &p);
    }

    /// Make `token` a WebSocket in `mode` (after its `101`).
    pub(crate) fn ws_become(&mut self, token: Token, mode: WsMode, early: &[u8]) {
        let max = self.config.ws_max_message;
        let conn = &mut self.conns[token.0];
        conn.state = State::WebSocket;
        conn.ws = Some(Box::new(WsConn::new(mode, max, early)));
        conn.ready.interest = Ready::READABLE | Ready::WRITABLE;
        conn.linger = false;
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
        match self.ws_waiting.remove(&key) {
            Some(peer)
                if self
                    .conns
                    .get(peer.0)
                    .is_some_and(|c| c.state == State::WebSocket) =>
            {
                self.ws_become(
                    token,
                    WsMode::Pipe {
                        peer,
                        key: key.clone(),
                    },
                    &early,
                );
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
                self.ws_become(token, WsMode::Waiting(key.clone()), &early);
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

    /// Readiness for a WebSocket connection.
    pub(crate) fn ws_drive(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.state != State::WebSocket {
            return;
        }
        // 1. Write what is queued for it.
        match conn.flush_out() {
            Ok(_) => {}
            Err(_) => return self.ws_gone(token),
        }
        let drained = conn.out.len() - conn.out_pos < WS_QUEUE;
        let Some(ws) = conn.ws.as_ref() else { return };
        if ws.sent_close && !conn.out_pending() && ws.owed == 0 {
            // Our close is out: the connection is done.
            let ws = conn.ws.take();
            conn.state = State::Responding { keep_alive: false };
            self.finish_conn(token);
            if let Some(ws) = ws {
                self.ws_forget(token, &ws.mode);
            }
            return;
        }
        let mode = ws.mode.clone();
        // 2. A reader paused because our queue was full may go on.
        if drained && mode == WsMode::Echo {
            self.conns[token.0].ready.interest.insert(Ready::READABLE);
        }
        if let WsMode::Pipe { peer, .. } = mode {
            if drained {
                if let Some(p) = self.conns.get_mut(peer.0) {
                    if p.state == State::WebSocket && !p.ready.interest.contains(Ready::READABLE) {
                        p.ready.interest.insert(Ready::READABLE);
                        self.ws_read(peer);
                    }
                }
            }
        }
        // 3. Read and relay its frames.
        match mode {
            WsMode::Waiting(_) => {
                let conn = &self.conns[token.0];
                if conn.ready.hung_up() && !conn.out_pending() {
                    self.ws_gone(token);
                }
            }
            _ => self.ws_read(token),
        }
    }

    /// Read frames from `token` and pass them to their target.
    fn ws_read(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.state != State::WebSocket {
            return;
        }
        let Some(mut ws) = conn.ws.take() else { return };
        let target = match ws.mode {
            WsMode::Pipe { peer, .. } => peer,
            WsMode::Echo | WsMode::SockJs(_) | WsMode::Raw(_) => token,
            WsMode::Waiting(_) => {
                self.conns[token.0].ws = Some(ws);
                return;
            }
        };
        let stop = self.ws_read_loop(token, target, &mut ws);
        let inbox = std::mem::take(&mut ws.inbox);
        let mode = ws.mode.clone();
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        conn.ws = Some(ws);
        if !inbox.is_empty() {
            self.sj_ws_messages(token, &mode, inbox);
        }
        match stop {
            Stop::Idle => {}
            Stop::Closed(code, payload) => self.ws_closed(token, code, &payload),
            Stop::Failed(e) => self.ws_failed(token, e),
            Stop::Gone => self.ws_gone(token),
        }
        // Write what was queued for the target (and for us: pongs).
        if target != token {
            self.ws_flush(target);
        }
        self.ws_flush(token);
    }

    fn ws_read_loop(&mut self, token: Token, target: Token, ws: &mut WsConn) -> Stop {
        loop {
            let Some(tconn) = self.conns.get(target.0) else {
                return Stop::Gone;
            };
            if tconn.state != State::WebSocket {
                return Stop::Gone;
            }
            if tconn.out.len() - tconn.out_pos > WS_QUEUE {
                // Write the target's queue out first. Pause only when its
                // socket is really full: that WouldBlock guarantees a
                // writable edge later, whose drive resumes this reader.
                let t = &mut self.conns[target.0];
                if t.flush_out().is_err() {
                    return Stop::Idle;
                }
                if t.out.len() - t.out_pos > WS_QUEUE {
                    t.ready.interest.insert(Ready::WRITABLE);
                    self.conns[token.0].ready.interest.remove(Ready::READABLE);
                    return Stop::Idle;
                }
            }
            // Parse first, read only when the parser asks for input: after
            // a header with a zero length the (empty) payload is ready with
            // no bytes at all, and reading first would hold that frame
            // until the client sent something else.
            if ws.start == ws.end && ws.need_input {
                let conn = &mut self.conns[token.0];
                if !conn.ready.can_read() {
                    return Stop::Idle;
                }
                match conn.read_into(&mut ws.inbuf) {
                    Io::Moved(n) => {
                        ws.start = 0;
                        ws.end = n;
                        ws.need_input = false;
                    }
                    Io::WouldBlock => return Stop::Idle,
                    Io::Eof | Io::Failed(_) => return Stop::Gone,
                }
            }
            let (used, item) = match ws.parser.parse(&mut ws.inbuf[ws.start..ws.end]) {
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
                    if let Err(e) = ws.msgs.on_header(fin, opcode, len) {
                        return Stop::Failed(e);
                    }
                    ws.cur_data = !opcode.is_control();
                    let assemble = matches!(ws.mode, WsMode::SockJs(_) | WsMode::Raw(_));
                    if ws.cur_data && !assemble {
                        if target == token {
                            ws.held = Some(HeldFrame {
                                fin,
                                opcode,
                                data: Vec::with_capacity(len.min(1 << 20) as usize),
                            });
                        } else {
                            let t = &mut self.conns[target.0];
                            ws::write_header(&mut t.out, fin, opcode, len, None);
                            if let Some(tw) = t.ws.as_mut() {
                                tw.owed = len;
                            }
                        }
                    }
                }
                Parsed::Payload { start, n, last } => {
                    let piece = &ws.inbuf[piece_at + start..piece_at + start + n];
                    if let Err(e) = ws.msgs.on_payload(piece) {
                        return Stop::Failed(e);
                    }
                    if matches!(ws.mode, WsMode::SockJs(_) | WsMode::Raw(_)) {
                        if ws.cur_data {
                            ws.msg.extend_from_slice(piece);
                        }
                    } else if let Some(h) = ws.held.as_mut() {
                        h.data.extend_from_slice(piece);
                    } else if target != token && ws.cur_data {
                        let t = &mut self.conns[target.0];
                        t.out.extend_from_slice(piece);
                        if let Some(tw) = t.ws.as_mut() {
                            tw.owed = tw.owed.saturating_sub(n as u64);
                        }
                    }
                    if last {
                        match ws.msgs.on_frame_end() {
                            Err(e) => return Stop::Failed(e),
                            Ok(Some(Completed::Ping(p))) => {
                                let pong = ws::frame(true, OpCode::Pong, p.as_bytes());
                                let own = &mut self.conns[token.0];
                                if !ws.sent_close && ws.owed == 0 {
                                    own.out.extend_from_slice(&pong);
                                }
                            }
                            Ok(Some(Completed::Close { code, payload })) => {
                                return Stop::Closed(code, payload.as_bytes().to_vec());
                            }
                            Ok(Some(Completed::Message { .. }))
                                if matches!(ws.mode, WsMode::SockJs(_) | WsMode::Raw(_)) =>
                            {
                                let bytes = std::mem::take(&mut ws.msg);
                                ws.inbox.push(String::from_utf8_lossy(&bytes).into_owned());
                            }
                            Ok(_) => {
                                if let Some(h) = ws.held.take() {
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
                let done = conn
                    .ws
                    .as_ref()
                    .is_some_and(|w| w.sent_close && w.owed == 0)
                    && !conn.out_pending();
                if done {
                    self.ws_drive(token);
                }
            }
            Err(_) => self.ws_gone(token),
        }
    }

    /// Queue a close frame to `token` (if its output is at a frame boundary;
    /// otherwise it can only be cut). Its connection ends once written.
    fn ws_send_close(&mut self, token: Token, payload: &[u8]) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        let Some(ws) = conn.ws.as_mut() else { return };
        if ws.sent_close {
            return;
        }
        ws.sent_close = true;
        // Nothing more is read from it.
        conn.ready.interest.remove(Ready::READABLE);
        if ws.owed > 0 {
            // Mid-frame: a close frame would corrupt the stream; cut it.
            let _ = socket2::SockRef::from(&conn.sock).set_linger(Some(std::time::Duration::ZERO));
            self.kill(token, "websocket cut mid-frame");
            return;
        }
        ws::write_header(
            &mut conn.out,
            true,
            OpCode::Close,
            payload.len() as u64,
            None,
        );
        conn.out.extend_from_slice(payload);
        conn.ready.interest.insert(Ready::WRITABLE);
        self.ws_flush(token);
    }

    /// A valid close arrived from `token`: echo it, pass it on.
    fn ws_closed(&mut self, token: Token, code: Option<u16>, payload: &[u8]) {
        let mode = self.conns[token.0].ws.as_ref().map(|w| w.mode.clone());
        self.ws_send_close(token, payload);
        if let Some(WsMode::Pipe { peer, key }) = mode {
            // The other side learns the code and reason; the path is free.
            log::info!("websocket pipe {key} closed by a peer (code {code:?})");
            self.ws_running.remove(&key);
            self.ws_send_close(peer, payload);
        }
    }

    /// `token` broke the protocol: it gets the error's close code; its
    /// peer is told the other side failed.
    fn ws_failed(&mut self, token: Token, e: WsError) {
        log::debug!("[{}] websocket protocol error: {e}", token.0);
        let mode = self.conns[token.0].ws.as_ref().map(|w| w.mode.clone());
        let frame = e.close_frame();
        // close_frame is a whole frame; send its payload through ws_send_close.
        let payload = close_payload(&frame);
        self.ws_send_close(token, &payload);
        if let Some(WsMode::Pipe { peer, key }) = mode {
            self.ws_running.remove(&key);
            let p = close_payload(&ws::close_frame(
                1001,
                "The peer broke the WebSocket protocol.",
            ));
            self.ws_send_close(peer, &p);
        }
    }

    /// `token`'s connection ended without a close.
    pub(crate) fn ws_gone(&mut self, token: Token) {
        self.kill(token, "websocket client left");
    }

    /// A WebSocket connection is being freed (called from `kill`): its
    /// peer is told and the tables forget it.
    pub(crate) fn ws_detach(&mut self, token: Token, ws: WsConn) {
        if let WsMode::Pipe { peer, .. } = &ws.mode {
            let p = close_payload(&ws::close_frame(1001, "The peer went away."));
            self.ws_send_close(*peer, &p);
        }
        self.ws_forget(token, &ws.mode);
    }

    /// Remove a finished connection from the pairing tables.
    fn ws_forget(&mut self, token: Token, mode: &WsMode) {
        match mode {
            WsMode::Waiting(key) => {
                if self.ws_waiting.get(key) == Some(&token) {
                    self.ws_waiting.remove(key);
                }
            }
            WsMode::Pipe { key, .. } => {
                self.ws_running.remove(key);
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

    /// A waiting peer's TTL expired.
    pub(crate) fn ws_wait_expired(&mut self, token: Token) {
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
