//! The sockjs family: SockJS on the event loop, with its channels, sessions
//! and transports.
//!
//! `/sockjs/<channel>/...` speaks the SockJS protocol; [`protocol`] holds
//! its sans-io logic (routing, framing, the session state machine) and
//! this module connects it to connections and timers. Sessions live in a
//! slab, so that a timer can name one by key (`Timer::SockJs`); each has at
//! most one receiving connection: an HTTP response that frames are written
//! to (`State::SockJs(SockJsConn::Recv)`), or a WebSocket
//! (`State::SockJs(SockJsConn::Ws)`, see `ws.rs`).
//!
//! Channels: the sessions and raw WebSockets opened on one channel are
//! bridged: a message from one member goes to every other member. Four
//! channel names are the reference test services instead: `echo` (each
//! message back to its sender; streaming responses end after 4096 bytes),
//! `close` (every session is closed with `3000 "Go away!"` as it opens),
//! `disabled_websocket_echo` (echo without the WebSocket transports) and
//! `cookie_needed_echo` (echo with the `JSESSIONID` cookie).
//!
//! Rules that hold:
//!
//! - Every queue is bounded: a session's outbox by the protocol's limits
//!   (a full one closes the session), an HTTP receiver's output by the
//!   frames the session releases to it, a WebSocket's by
//!   [`WS_QUEUE`](crate::websocket::conn::WS_QUEUE): frames move from the
//!   outbox to the socket only while it has room, and the socket's drain
//!   pumps again (`Report::Room`).
//! - The WebSockets this family owns are driven by the websocket family's
//!   code (`WebSockets`, passed in as `ws`), which never calls back: what
//!   concerns this family comes back as reports (messages read, room in a
//!   queue, a socket that ended), taken and acted on before each entry
//!   point returns (`SockJs::settle`).
//! - A receiving HTTP response that ends by the server's choice gets its
//!   last chunk and closes (`End::Close`); one the client cuts detaches
//!   from its session as interrupted.
//! - A request body (`xhr_send`, `jsonp_send`) is read by the loop's HTTP
//!   phase: [`SockJs::request`] returns what to read, and the loop hands
//!   the whole body to [`SockJs::send_body`].

pub mod conn;
pub mod protocol;
mod ws;

use std::collections::HashMap;

use mio::Token;
use slab::Slab;

use crate::events::sse;
use crate::http::{response, Head};
use crate::net::{Ctx, End, State, Timer};
use crate::timer::Handle;
use crate::websocket::{Report, WebSockets};
use crate::wire::{Io, Ready};
use conn::{SjLink, SockJsConn};
use protocol::{
    Attach, Detach, Receiver, ReceiverId, RequestInfo, Route, Session, SessionOpts, Tick, Transport,
};

/// Gauges for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SjGauges {
    /// Sessions.
    pub sessions: usize,
    /// Channels with members.
    pub channels: usize,
}

/// A request whose body the loop reads before it comes back to
/// [`SockJs::send_body`].
#[derive(Debug)]
pub struct ReadBody<'a> {
    /// The request.
    pub head: Head<'a>,
    /// Body bytes read with the head.
    pub early: Vec<u8>,
    /// The most body bytes accepted.
    pub limit: usize,
}

/// What a channel does with messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Echo,
    Close,
    NoWebsocketEcho,
    CookieEcho,
    Bridge,
}

impl Service {
    fn of(channel: &str) -> Service {
        match channel {
            "echo" => Service::Echo,
            "close" => Service::Close,
            "disabled_websocket_echo" => Service::NoWebsocketEcho,
            "cookie_needed_echo" => Service::CookieEcho,
            _ => Service::Bridge,
        }
    }

    fn echoes(self) -> bool {
        matches!(
            self,
            Service::Echo | Service::NoWebsocketEcho | Service::CookieEcho
        )
    }

    fn cookie_needed(self) -> bool {
        self == Service::CookieEcho
    }

    fn websocket(self) -> bool {
        self != Service::NoWebsocketEcho
    }
}

/// A member of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Session(usize),
    Raw(Token),
}

/// A receiving request, as routed.
struct RecvRequest<'a> {
    head: &'a Head<'a>,
    service: Service,
    channel: &'a str,
    transport: Transport,
    callback: Option<String>,
}

/// The receiving HTTP response of a session.
#[derive(Debug, Clone)]
struct SjRecv {
    token: Token,
    id: Option<ReceiverId>,
    transport: Transport,
    callback: Option<String>,
    chunked: bool,
}

#[derive(Debug)]
struct SjSession {
    channel: String,
    key: String,
    s: Session,
    recv: Option<SjRecv>,
    /// The WebSocket of a `websocket`-transport session.
    ws: Option<Token>,
    timer: Option<Handle>,
    joined: bool,
}

/// The sockjs family's tables.
#[derive(Debug, Default)]
pub struct SockJs {
    /// Every session, keyed as its timer names it.
    sessions: Slab<SjSession>,
    /// HTTP sessions by `<channel>/<session id>`.
    index: HashMap<String, usize>,
    /// The members of each channel.
    channels: HashMap<String, Vec<Member>>,
}

/// Longest channel name.
const MAX_CHANNEL: usize = 64;

fn valid_channel(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= MAX_CHANNEL
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn req_info<'a>(head: &Head<'a>) -> RequestInfo<'a> {
    RequestInfo {
        origin: head.header_str("origin"),
        request_headers: head.header_str("access-control-request-headers"),
        cookie: head.header_str("cookie"),
    }
}

/// Split `/sockjs/<channel><rest>`.
fn split(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix("/sockjs/")?;
    let (channel, rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    valid_channel(channel).then_some((channel, rest))
}

/// End a response head: length or nothing, `Connection`, blank line.
fn finish_head(out: &mut Vec<u8>, minor: u8, len: Option<usize>, keep: bool) {
    if let Some(n) = len {
        out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
    }
    response::connection_header(out, minor, keep);
    out.extend_from_slice(b"\r\n");
}

impl SockJs {
    /// Give back what the tables hold beyond what they use (sessions stay
    /// at their keys: only free entries past the last one go).
    pub fn shrink(&mut self) {
        self.sessions.shrink_to_fit();
        self.index.shrink_to_fit();
        self.channels.shrink_to_fit();
    }

    /// Gauges counted from the tables.
    pub fn gauges(&self) -> SjGauges {
        SjGauges {
            sessions: self.sessions.len(),
            channels: self.channels.len(),
        }
    }

    // --- The loop's moments -----------------------------------------------------

    /// Readiness of a SockJS connection: a receiving response writes and
    /// notices its client leave; a WebSocket is driven.
    pub fn ready(&mut self, ctx: &mut Ctx, ws: &mut WebSockets, t: Token) {
        match ctx.live(t).map(|c| &c.state) {
            Some(State::SockJs(SockJsConn::Recv(_))) => self.recv_event(ctx, t),
            Some(State::SockJs(SockJsConn::Ws(_))) => self.drive_ws(ctx, ws, t),
            _ => {}
        }
    }

    /// The connection's own timer: a WebSocket's (see
    /// [`WebSockets::timer`]); a receiving response has none.
    pub fn timer(&mut self, ctx: &mut Ctx, ws: &mut WebSockets, t: Token) {
        match ctx.live(t).map(|c| &c.state) {
            Some(State::SockJs(SockJsConn::Ws(_))) => {
                ws.timer(ctx, t);
                self.settle(ctx, ws);
            }
            Some(_) => self.kill_recv(ctx, t, "timer"),
            None => {}
        }
    }

    /// The relay is stopping: a receiving response is cut (its session is
    /// interrupted), a WebSocket gets 1001.
    pub fn shutdown(&mut self, ctx: &mut Ctx, ws: &mut WebSockets, t: Token) {
        match ctx.live(t).map(|c| &c.state) {
            Some(State::SockJs(SockJsConn::Ws(_))) => {
                ws.shutdown(ctx, t);
                self.settle(ctx, ws);
            }
            Some(_) => self.kill_recv(ctx, t, "shutdown"),
            None => {}
        }
    }

    /// The loop closed a SockJS connection: its session or channel
    /// forgets it.
    pub fn closed(&mut self, ctx: &mut Ctx, ws: &mut WebSockets, t: Token, c: SockJsConn) {
        match c {
            SockJsConn::Recv(link) => self.detach_recv(ctx, link),
            SockJsConn::Ws(w) => {
                ws.closed(ctx, t, w);
                self.settle(ctx, ws);
            }
        }
    }

    /// A session's timer fired.
    pub fn session_timer(&mut self, ctx: &mut Ctx, ws: &mut WebSockets, k: usize, handle: Handle) {
        self.on_session_timer(ctx, ws, k, handle);
        self.settle(ctx, ws);
    }

    /// Any request under `/sockjs/`. A send request's body is for the loop
    /// to read: it is returned, and comes back in
    /// [`send_body`](Self::send_body).
    pub fn request<'h>(
        &mut self,
        ctx: &mut Ctx,
        ws: &mut WebSockets,
        t: Token,
        head: Head<'h>,
        early: Vec<u8>,
    ) -> Option<ReadBody<'h>> {
        let body = self.route(ctx, ws, t, head, early);
        self.settle(ctx, ws);
        body
    }

    /// `xhr_send` / `jsonp_send` once the body is read.
    pub fn send_body(
        &mut self,
        ctx: &mut Ctx,
        ws: &mut WebSockets,
        t: Token,
        head: Head<'_>,
        body: Vec<u8>,
    ) {
        self.deliver_body(ctx, ws, t, head, body);
        self.settle(ctx, ws);
    }

    /// Drive one of this family's WebSockets: write, let its session's
    /// frames move to it while it has room, then read it.
    fn drive_ws(&mut self, ctx: &mut Ctx, ws: &mut WebSockets, t: Token) {
        if ws.drive_writes(ctx, t) {
            // The session's frames go before whatever the read answers
            // (pongs, echoes).
            self.settle(ctx, ws);
            ws.drive_reads(ctx, t);
        }
        self.settle(ctx, ws);
    }

    /// Act on what happened to this family's WebSockets, until nothing is
    /// left: hand on messages read (before the read's end is acted on),
    /// pump sessions whose socket has room, forget sockets that ended.
    fn settle(&mut self, ctx: &mut Ctx, ws: &mut WebSockets) {
        while let Some(r) = ws.take_report() {
            match r {
                Report::Messages {
                    t,
                    mode,
                    texts,
                    stop,
                } => {
                    let live = ctx.live(t).is_some_and(|c| c.state.websocket().is_some());
                    if live {
                        self.ws_messages(ctx, ws, t, &mode, texts);
                    }
                    ws.end_read(ctx, t, stop);
                }
                Report::Room { session } => self.pump(ctx, ws, session),
                Report::Ended { t, mode } => self.ws_gone(ctx, t, &mode),
            }
        }
    }

    // --- Requests -----------------------------------------------------------------

    fn opts(ctx: &Ctx, service: Service) -> SessionOpts {
        SessionOpts {
            heartbeat: ctx.config.heartbeat,
            disconnect_delay: ctx.config.sockjs_disconnect_delay,
            response_limit: if service == Service::Echo {
                4096
            } else {
                ctx.config.sockjs_response_limit
            },
            ..SessionOpts::default()
        }
    }

    fn route<'h>(
        &mut self,
        ctx: &mut Ctx,
        ws: &mut WebSockets,
        t: Token,
        head: Head<'h>,
        early: Vec<u8>,
    ) -> Option<ReadBody<'h>> {
        let minor = head.minor;
        let keep = head.keep_alive && !head.has_body() && !ctx.stopping;
        let Some((channel, rest)) = split(head.path) else {
            ctx.respond_error(t, minor, 404, "No such SockJS channel.", keep);
            return None;
        };
        let (channel, rest) = (channel.to_string(), rest.to_string());
        let service = Service::of(&channel);
        let route = protocol::route(&rest, head.query, head.method);
        let unix = ctx.unix_now();
        let mut out = Vec::with_capacity(512);
        match route {
            Route::Greeting => {
                let r = response::Short {
                    minor,
                    status: 200,
                    content_type: protocol::TEXT_PLAIN,
                    extra: "",
                    body: protocol::GREETING.as_bytes(),
                    keep_alive: keep,
                    head_only: false,
                };
                r.write(&mut out);
            }
            Route::Info => {
                let mut entropy = [0u8; 4];
                let _ = crate::ids::fill(&mut entropy);
                let body = protocol::info_json(
                    service.websocket(),
                    service.cookie_needed(),
                    u32::from_le_bytes(entropy),
                );
                response::status_line_bare(&mut out, minor, 200);
                protocol::push_info_headers(&mut out, &req_info(&head));
                finish_head(&mut out, minor, Some(body.len()), keep);
                out.extend_from_slice(body.as_bytes());
            }
            Route::Iframe => {
                let html = protocol::iframe_html(protocol::DEFAULT_CLIENT_URL);
                let etag = protocol::etag(&html);
                let fresh = head
                    .header_str("if-none-match")
                    .is_some_and(|inm| protocol::etag_matches(inm, &etag));
                if fresh {
                    response::status_line_bare(&mut out, minor, 304);
                    protocol::push_iframe_headers(&mut out, &etag, unix, false);
                    finish_head(&mut out, minor, None, keep);
                } else {
                    response::status_line_bare(&mut out, minor, 200);
                    protocol::push_iframe_headers(&mut out, &etag, unix, true);
                    finish_head(&mut out, minor, Some(html.len()), keep);
                    out.extend_from_slice(html.as_bytes());
                }
            }
            Route::Preflight { allow_methods } => {
                response::status_line_bare(&mut out, minor, 204);
                protocol::push_preflight_headers(
                    &mut out,
                    allow_methods,
                    &req_info(&head),
                    service.cookie_needed(),
                    unix,
                );
                finish_head(&mut out, minor, None, keep);
            }
            Route::MethodNotAllowed { allow } => {
                response::status_line_bare(&mut out, minor, 405);
                out.extend_from_slice(format!("Allow: {allow}\r\n").as_bytes());
                finish_head(&mut out, minor, Some(0), keep);
            }
            Route::BadCallback(e) => {
                ctx.respond_error(t, minor, e.status(), &e.to_string(), keep);
                return None;
            }
            Route::NotFound => {
                ctx.respond_error(t, minor, 404, "Not a SockJS URL.", keep);
                return None;
            }
            Route::RawWebsocket => {
                self.raw_websocket(ctx, ws, t, head, early, service, &channel);
                return None;
            }
            Route::Session {
                session,
                transport,
                callback,
                ..
            } => {
                let key = format!("{channel}/{session}");
                match transport {
                    Transport::Websocket => {
                        self.ws_session(ctx, ws, t, head, early, service, &channel, key);
                    }
                    Transport::XhrSend | Transport::JsonpSend => {
                        if !self.index.contains_key(&key) {
                            ctx.respond_error(t, minor, 404, "No such session.", false);
                            return None;
                        }
                        let limit = SessionOpts::default().outbox_bytes;
                        return Some(ReadBody { head, early, limit });
                    }
                    _ => {
                        let recv = RecvRequest {
                            head: &head,
                            service,
                            channel: &channel,
                            transport,
                            callback,
                        };
                        self.receive(ctx, ws, t, recv, key);
                    }
                }
                return None;
            }
        }
        ctx.respond(t, &out, keep);
        None
    }

    /// A receiving request: xhr, xhr_streaming, eventsource, htmlfile, jsonp.
    fn receive(
        &mut self,
        ctx: &mut Ctx,
        ws: &mut WebSockets,
        t: Token,
        req: RecvRequest<'_>,
        key: String,
    ) {
        let RecvRequest {
            head,
            service,
            channel,
            transport,
            callback,
        } = req;
        let kind = transport.receiver().unwrap_or(Receiver::Polling);
        let (k, attach) = self.attach(ctx, service, channel, key, kind);
        let minor = head.minor;
        let chunked = minor >= 1;
        let Some(conn) = ctx.live_mut(t) else {
            return;
        };
        let out = conn.out.buf();
        response::status_line_bare(out, minor, 200);
        protocol::push_session_headers(out, transport, &req_info(head), service.cookie_needed());
        if chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        let prelude = protocol::prelude(transport, callback.as_deref());
        sse::frame(out, chunked, &prelude);
        let recv = SjRecv {
            token: t,
            id: None,
            transport,
            callback,
            chunked,
        };
        match attach {
            Attach::Rejected(frame) => {
                write_frame(ctx, &recv, &frame);
                end_response(ctx, t, chunked);
            }
            Attach::Gone => end_response(ctx, t, chunked),
            Attach::Attached {
                id,
                frames,
                end,
                opened,
            } => {
                let recv = SjRecv {
                    id: Some(id),
                    ..recv
                };
                let mut ended = end;
                for f in &frames {
                    let n = write_frame(ctx, &recv, f);
                    if kind == Receiver::Streaming && self.sessions[k].s.account(ctx.now, id, n) {
                        ended = true;
                    }
                }
                if ended {
                    self.sessions[k].s.detach(ctx.now, id, Detach::Ended);
                    end_response(ctx, t, chunked);
                } else if let Some(conn) = ctx.live_mut(t) {
                    conn.state = State::SockJs(SockJsConn::Recv(SjLink {
                        session: k,
                        id,
                        chunked,
                    }));
                    // Its response closes the connection: pipelined bytes
                    // are never read.
                    conn.inbuf = Vec::new();
                    conn.ready.interest = Ready::READABLE | Ready::WRITABLE;
                    self.sessions[k].recv = Some(recv);
                    self.flush_recv(ctx, t);
                    // As for pipes: act on a close that came with the head.
                    self.recv_event(ctx, t);
                }
                if opened {
                    self.opened(k, service);
                }
                self.pump(ctx, ws, k);
            }
        }
    }

    /// Find or make the session `key` and attach a receiver of `kind`.
    fn attach(
        &mut self,
        ctx: &mut Ctx,
        service: Service,
        channel: &str,
        key: String,
        kind: Receiver,
    ) -> (usize, Attach) {
        if let Some(&k) = self.index.get(&key) {
            let a = self.sessions[k].s.attach(ctx.now, kind);
            if a != Attach::Gone {
                self.rearm(ctx, k);
                return (k, a);
            }
            self.remove(ctx, k);
        }
        let k = self.new_session(ctx, service, channel, key.clone());
        self.index.insert(key, k);
        let a = self.sessions[k].s.attach(ctx.now, kind);
        self.rearm(ctx, k);
        (k, a)
    }

    /// A new session, not yet in the index (a `websocket`-transport
    /// session never is: it lives and dies with its socket, and its id may
    /// be in use by another WebSocket at the same time).
    fn new_session(&mut self, ctx: &Ctx, service: Service, channel: &str, key: String) -> usize {
        let opts = Self::opts(ctx, service);
        self.sessions.insert(SjSession {
            channel: channel.to_string(),
            key,
            s: Session::new(ctx.now, opts),
            recv: None,
            ws: None,
            timer: None,
            joined: false,
        })
    }

    /// A session opened: it joins its channel; the close service closes it.
    fn opened(&mut self, k: usize, service: Service) {
        let sess = &mut self.sessions[k];
        if !sess.joined {
            sess.joined = true;
            self.channels
                .entry(sess.channel.clone())
                .or_default()
                .push(Member::Session(k));
        }
        if service == Service::Close {
            let (code, reason) = protocol::CLOSE_GO_AWAY;
            self.sessions[k].s.close(code, reason);
        }
    }

    // --- Sessions -----------------------------------------------------------------

    /// Write every frame the session has for its receiver (a WebSocket:
    /// while its queue has room).
    fn pump(&mut self, ctx: &mut Ctx, ws: &mut WebSockets, k: usize) {
        loop {
            let Some(sess) = self.sessions.get_mut(k) else {
                return;
            };
            if let Some(wt) = sess.ws {
                // Frames move to the socket's queue only while it has room
                // (the WebSocket bound); the rest waits in the session's
                // own bounded outbox, and the socket's drain pumps again.
                while WebSockets::room(ctx, wt) {
                    let now = ctx.now;
                    let Some(f) = self.sessions.get_mut(k).and_then(|s| s.s.take_frame(now)) else {
                        break;
                    };
                    ws.text(ctx, wt, f.text.as_bytes());
                    if f.end {
                        ws.close_with(ctx, wt, 1000, "");
                        break;
                    }
                }
                break;
            }
            let Some(r) = sess.recv.clone() else {
                break;
            };
            let Some(f) = sess.s.take_frame(ctx.now) else {
                break;
            };
            let Some(rid) = r.id else {
                break;
            };
            let n = write_frame(ctx, &r, &f.text);
            let limit_hit = r.transport.receiver() == Some(Receiver::Streaming)
                && self.sessions[k].s.account(ctx.now, rid, n);
            if f.end || limit_hit {
                self.sessions[k].recv = None;
                self.sessions[k].s.detach(ctx.now, rid, Detach::Ended);
                end_response(ctx, r.token, r.chunked);
            } else {
                self.flush_recv(ctx, r.token);
            }
        }
        self.rearm(ctx, k);
    }

    /// Keep the session's timer at its next deadline.
    fn rearm(&mut self, ctx: &mut Ctx, k: usize) {
        let Some(sess) = self.sessions.get_mut(k) else {
            return;
        };
        let want = sess.s.next_deadline();
        let have = sess.timer.and_then(|h| ctx.timers.deadline(h));
        if want == have {
            return;
        }
        if let Some(h) = sess.timer.take() {
            ctx.timers.cancel(h);
        }
        if let Some(d) = want {
            sess.timer = Some(ctx.timers.insert_at(d, Timer::SockJs(k)));
        }
    }

    fn on_session_timer(&mut self, ctx: &mut Ctx, ws: &mut WebSockets, k: usize, handle: Handle) {
        let Some(sess) = self.sessions.get_mut(k) else {
            return;
        };
        if sess.timer != Some(handle) {
            return;
        }
        sess.timer = None;
        match sess.s.on_timer(ctx.now) {
            Tick::Nothing => {}
            Tick::Expire => return self.remove(ctx, k),
            Tick::Heartbeat(f) => {
                if let Some(wt) = sess.ws {
                    ws.text(ctx, wt, f.text.as_bytes());
                } else if let Some(r) = sess.recv.clone() {
                    write_frame(ctx, &r, &f.text);
                    if f.end {
                        self.sessions[k].recv = None;
                        if let Some(rid) = r.id {
                            self.sessions[k].s.detach(ctx.now, rid, Detach::Ended);
                        }
                        end_response(ctx, r.token, r.chunked);
                    } else {
                        self.flush_recv(ctx, r.token);
                    }
                }
            }
        }
        self.rearm(ctx, k);
    }

    /// Remove a session: it leaves its channel; any receiver ends.
    fn remove(&mut self, ctx: &mut Ctx, k: usize) {
        let Some(sess) = self.sessions.try_remove(k) else {
            return;
        };
        if self.index.get(&sess.key) == Some(&k) {
            self.index.remove(&sess.key);
        }
        if let Some(h) = sess.timer {
            ctx.timers.cancel(h);
        }
        self.leave(&sess.channel, Member::Session(k));
        if let Some(r) = sess.recv {
            end_response(ctx, r.token, r.chunked);
        }
    }

    fn leave(&mut self, channel: &str, m: Member) {
        if let Some(members) = self.channels.get_mut(channel) {
            members.retain(|x| *x != m);
            if members.is_empty() {
                self.channels.remove(channel);
            }
        }
    }

    /// Messages from a member: echoed, dropped (close service) or bridged.
    fn deliver(
        &mut self,
        ctx: &mut Ctx,
        ws: &mut WebSockets,
        channel: &str,
        from: Member,
        msgs: Vec<String>,
    ) {
        if msgs.is_empty() {
            return;
        }
        let targets: Vec<Member> = match Service::of(channel) {
            Service::Close => Vec::new(),
            s if s.echoes() => vec![from],
            _ => self
                .channels
                .get(channel)
                .map(|ms| ms.iter().copied().filter(|m| *m != from).collect())
                .unwrap_or_default(),
        };
        for target in targets {
            match target {
                Member::Session(k) => {
                    if let Some(sess) = self.sessions.get_mut(k) {
                        // A full outbox closes the session itself (3001).
                        let _ = sess.s.send(msgs.clone());
                        self.pump(ctx, ws, k);
                    }
                }
                Member::Raw(member) => {
                    for m in &msgs {
                        ws.text_to_member(ctx, member, m.as_bytes());
                    }
                }
            }
        }
    }

    /// `xhr_send` / `jsonp_send` with its whole body.
    fn deliver_body(
        &mut self,
        ctx: &mut Ctx,
        ws: &mut WebSockets,
        t: Token,
        head: Head<'_>,
        body: Vec<u8>,
    ) {
        let minor = head.minor;
        let keep = head.keep_alive && !ctx.stopping;
        let Some((channel, rest)) = split(head.path) else {
            return ctx.respond_error(t, minor, 404, "No such SockJS channel.", keep);
        };
        let (channel, rest) = (channel.to_string(), rest.to_string());
        let Route::Session {
            session, transport, ..
        } = protocol::route(&rest, head.query, head.method)
        else {
            return ctx.respond_error(t, minor, 404, "Not a SockJS URL.", keep);
        };
        let key = format!("{channel}/{session}");
        let Some(&k) = self.index.get(&key) else {
            return ctx.respond_error(t, minor, 404, "No such session.", keep);
        };
        let ct = String::from_utf8_lossy(head.content_type().unwrap_or(b"")).into_owned();
        let msgs = match protocol::parse_send(transport, &ct, &body) {
            Ok(m) => m,
            Err(e) => return ctx.respond_error(t, minor, e.status(), &e.to_string(), keep),
        };
        if self.sessions[k].s.is_open() {
            self.deliver(ctx, ws, &channel, Member::Session(k), msgs);
        }
        let service = Service::of(&channel);
        let mut out = Vec::with_capacity(256);
        let (status, body): (u16, &[u8]) = if transport == Transport::XhrSend {
            (204, b"")
        } else {
            (200, b"ok")
        };
        response::status_line_bare(&mut out, minor, status);
        protocol::push_session_headers(
            &mut out,
            transport,
            &req_info(&head),
            service.cookie_needed(),
        );
        finish_head(&mut out, minor, (status != 204).then_some(body.len()), keep);
        out.extend_from_slice(body);
        ctx.respond(t, &out, keep);
    }

    // --- Receiving responses --------------------------------------------------------

    /// Events on a receiving response: write, notice its client leave.
    fn recv_event(&mut self, ctx: &mut Ctx, t: Token) {
        let Ctx { conns, scratch, .. } = &mut *ctx;
        let Some(conn) = conns.get_mut(t.0) else {
            return;
        };
        if conn.ready.can_read() {
            if let Io::Eof | Io::Failed(_) = conn.drain_input(scratch, 64 * 1024) {
                return self.kill_recv(ctx, t, "sockjs receiver left");
            }
        }
        self.flush_recv(ctx, t);
    }

    /// Write what a receiving response has queued.
    fn flush_recv(&mut self, ctx: &mut Ctx, t: Token) {
        let Some(conn) = ctx.live_mut(t) else {
            return;
        };
        match conn.flush_out() {
            Ok(_) => {
                if conn.out_pending() {
                    conn.ready.interest.insert(Ready::WRITABLE);
                }
            }
            Err(_) => self.kill_recv(ctx, t, "sockjs receiver write failed"),
        }
    }

    /// Close a receiving response that the client cut (or the relay
    /// stops); its session learns it was interrupted.
    fn kill_recv(&mut self, ctx: &mut Ctx, t: Token, why: &str) {
        if let Some(State::SockJs(SockJsConn::Recv(link))) = ctx.kill(t, why) {
            self.detach_recv(ctx, link);
        }
    }

    /// A receiving response is gone: its session lets go of it, if it
    /// still holds it.
    fn detach_recv(&mut self, ctx: &mut Ctx, link: SjLink) {
        let k = link.session;
        if let Some(sess) = self.sessions.get_mut(k) {
            if sess.recv.as_ref().is_some_and(|r| r.id == Some(link.id)) {
                sess.recv = None;
                sess.s.detach(ctx.now, link.id, Detach::Interrupted);
            }
            self.rearm(ctx, k);
        }
    }
}

/// Write one frame to a receiving response; returns the bytes written.
fn write_frame(ctx: &mut Ctx, r: &SjRecv, frame: &str) -> usize {
    let wrapped = protocol::wrap(r.transport, frame, r.callback.as_deref());
    if let Some(conn) = ctx.live_mut(r.token) {
        sse::frame(conn.out.buf(), r.chunked, &wrapped);
    }
    wrapped.len()
}

/// End a receiving response (the server ended it): the last chunk, then
/// the connection closes once that is written.
fn end_response(ctx: &mut Ctx, t: Token, chunked: bool) {
    let Some(conn) = ctx.live_mut(t) else {
        return;
    };
    if chunked {
        conn.out.push(response::LAST_CHUNK);
    }
    ctx.finish(t, End::Close);
}
