//! SockJS on the event loop: channels, sessions, transports.
//!
//! `/sockjs/<channel>/...` speaks the SockJS protocol; `crate::sockjs` holds
//! its pure logic (routing, framing, the session state machine) and this
//! module connects it to sockets and timers. Sessions live in a slab, so a
//! timer can name one by key; each has at most one receiving connection
//! (an HTTP response that frames are written to, or a WebSocket).
//!
//! Channels: the sessions and raw WebSockets opened on one channel are
//! bridged: a message from one member goes to every other member. Four
//! channel names are the reference test services instead: `echo` (each
//! message back to its sender; streaming responses end after 4096 bytes),
//! `close` (every session is closed with `3000 "Go away!"` as it opens),
//! `disabled_websocket_echo` (echo without the WebSocket transports) and
//! `cookie_needed_echo` (echo with the `JSESSIONID` cookie).

use std::collections::HashMap;

use mio::Token;
use slab::Slab;

use crate::conn::{Io, State};
use crate::http::{response, Head};
use crate::readiness::Ready;
use crate::server::{Server, Timer};
use crate::sockjs::{
    self, Attach, Detach, Receiver, ReceiverId, RequestInfo, Route, Session, SessionOpts, Tick,
    Transport,
};
use crate::timer::Handle;
use crate::wsconn::{Handshake, WsMode};

/// What a channel does with messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
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
pub(crate) enum Member {
    Session(usize),
    Raw(Token),
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

/// All SockJS state of a server.
#[derive(Debug, Default)]
pub(crate) struct SockJs {
    sessions: Slab<SjSession>,
    index: HashMap<String, usize>,
    channels: HashMap<String, Vec<Member>>,
}

/// Links an HTTP receiving connection to its session.
#[derive(Debug)]
pub struct SjLink {
    session: usize,
    id: ReceiverId,
}

/// Longest channel name.
const MAX_CHANNEL: usize = 64;

fn valid_channel(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= MAX_CHANNEL
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn req_info(head: &Head) -> RequestInfo<'_> {
    RequestInfo {
        origin: head.origin.as_deref(),
        request_headers: head
            .ac_request_headers
            .as_deref()
            .and_then(|h| std::str::from_utf8(h).ok()),
        cookie: head.cookie.as_deref(),
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

impl Server {
    fn sj_opts(&self, service: Service) -> SessionOpts {
        SessionOpts {
            heartbeat: self.config.heartbeat,
            disconnect_delay: self.config.sockjs_disconnect_delay,
            response_limit: if service == Service::Echo {
                4096
            } else {
                self.config.sockjs_response_limit
            },
            ..SessionOpts::default()
        }
    }

    /// Any request under `/sockjs/`.
    pub(crate) fn sj_request(&mut self, token: Token, head: Head, early: Vec<u8>) {
        let minor = head.minor;
        let keep = head.keep_alive && !head.has_body() && !self.stopping();
        let Some((channel, rest)) = split(&head.path) else {
            return self.respond_error(token, minor, 404, "No such SockJS channel.", keep);
        };
        let (channel, rest) = (channel.to_string(), rest.to_string());
        let service = Service::of(&channel);
        let route = sockjs::route(&rest, head.query.as_deref(), head.method);
        let unix = self.unix_now();
        let mut out = Vec::with_capacity(512);
        match route {
            Route::Greeting => {
                let r = response::Short {
                    minor,
                    status: 200,
                    content_type: sockjs::TEXT_PLAIN,
                    extra: "",
                    body: sockjs::GREETING.as_bytes(),
                    keep_alive: keep,
                    head_only: false,
                };
                r.write(&mut out);
            }
            Route::Info => {
                let mut entropy = [0u8; 4];
                let _ = crate::ids::fill(&mut entropy);
                let body = sockjs::info_json(
                    service.websocket(),
                    service.cookie_needed(),
                    u32::from_le_bytes(entropy),
                );
                response::status_line_bare(&mut out, minor, 200);
                sockjs::push_info_headers(&mut out, &req_info(&head));
                finish_head(&mut out, minor, Some(body.len()), keep);
                out.extend_from_slice(body.as_bytes());
            }
            Route::Iframe => {
                let html = sockjs::iframe_html(sockjs::DEFAULT_CLIENT_URL);
                let etag = sockjs::etag(&html);
                let fresh = head
                    .if_none_match
                    .as_deref()
                    .is_some_and(|inm| sockjs::etag_matches(inm, &etag));
                if fresh {
                    response::status_line_bare(&mut out, minor, 304);
                    sockjs::push_iframe_headers(&mut out, &etag, unix, false);
                    finish_head(&mut out, minor, None, keep);
                } else {
                    response::status_line_bare(&mut out, minor, 200);
                    sockjs::push_iframe_headers(&mut out, &etag, unix, true);
                    finish_head(&mut out, minor, Some(html.len()), keep);
                    out.extend_from_slice(html.as_bytes());
                }
            }
            Route::Preflight { allow_methods } => {
                response::status_line_bare(&mut out, minor, 204);
                sockjs::push_preflight_headers(
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
                return self.respond_error(token, minor, e.status(), &e.to_string(), keep)
            }
            Route::NotFound => {
                return self.respond_error(token, minor, 404, "Not a SockJS URL.", keep)
            }
            Route::RawWebsocket => {
                return self.sj_raw_websocket(token, head, early, service, &channel)
            }
            Route::Session {
                session,
                transport,
                callback,
                ..
            } => {
                let key = format!("{channel}/{session}");
                return match transport {
                    Transport::Websocket => {
                        self.sj_ws_session(token, head, early, service, &channel, key)
                    }
                    Transport::XhrSend | Transport::JsonpSend => {
                        if !self.sj.index.contains_key(&key) {
                            return self.respond_error(
                                token,
                                minor,
                                404,
                                "No such session.",
                                false,
                            );
                        }
                        let limit = SessionOpts::default().outbox_bytes;
                        self.read_short_body(
                            token,
                            head,
                            early,
                            crate::body::Purpose::SockJsSend,
                            limit,
                        )
                    }
                    _ => self.sj_receive(token, &head, service, &channel, key, transport, callback),
                };
            }
        }
        self.respond(token, out, keep);
    }

    /// A receiving request: xhr, xhr_streaming, eventsource, htmlfile, jsonp.
    #[allow(clippy::too_many_arguments)]
    fn sj_receive(
        &mut self,
        token: Token,
        head: &Head,
        service: Service,
        channel: &str,
        key: String,
        transport: Transport,
        callback: Option<String>,
    ) {
        let kind = transport.receiver().unwrap_or(Receiver::Polling);
        let (k, attach) = self.sj_attach(service, channel, key, kind);
        let minor = head.minor;
        let chunked = minor >= 1;
        let conn = &mut self.conns[token.0];
        response::status_line_bare(&mut conn.out, minor, 200);
        sockjs::push_session_headers(
            &mut conn.out,
            transport,
            &req_info(head),
            service.cookie_needed(),
        );
        if chunked {
            conn.out
                .extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        conn.out.extend_from_slice(b"Connection: close\r\n\r\n");
        let prelude = sockjs::prelude(transport, callback.as_deref());
        crate::sse::frame(&mut conn.out, chunked, &prelude);
        conn.linger = false;
        conn.chunked_stream = chunked;
        let recv = SjRecv {
            token,
            id: None,
            transport,
            callback,
            chunked,
        };
        match attach {
            Attach::Rejected(frame) => {
                self.sj_write(&recv, &frame);
                self.sj_end_response(token);
            }
            Attach::Gone => self.sj_end_response(token),
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
                    let n = self.sj_write(&recv, f);
                    if kind == Receiver::Streaming && self.sj.sessions[k].s.account(self.now, id, n)
                    {
                        ended = true;
                    }
                }
                if ended {
                    self.sj.sessions[k].s.detach(self.now, id, Detach::Ended);
                    self.sj_end_response(token);
                } else {
                    let conn = &mut self.conns[token.0];
                    conn.state = State::SockJsRecv;
                    conn.inbuf = Vec::new();
                    conn.sj = Some(Box::new(SjLink { session: k, id }));
                    conn.ready.interest = Ready::READABLE | Ready::WRITABLE;
                    self.sj.sessions[k].recv = Some(recv);
                    self.sj_flush(token);
                    // As for pipes: act on a close that came with the head.
                    self.sj_recv_event(token);
                }
                if opened {
                    self.sj_opened(k, service);
                }
                self.sj_pump(k);
            }
        }
    }

    /// Find or make the session `key` and attach a receiver of `kind`.
    fn sj_attach(
        &mut self,
        service: Service,
        channel: &str,
        key: String,
        kind: Receiver,
    ) -> (usize, Attach) {
        if let Some(&k) = self.sj.index.get(&key) {
            let a = self.sj.sessions[k].s.attach(self.now, kind);
            if a != Attach::Gone {
                self.sj_rearm(k);
                return (k, a);
            }
            self.sj_remove(k);
        }
        let k = self.sj_new_session(service, channel, key.clone());
        self.sj.index.insert(key, k);
        let a = self.sj.sessions[k].s.attach(self.now, kind);
        self.sj_rearm(k);
        (k, a)
    }

    /// A new session, not yet in the index (a `websocket`-transport
    /// session never is: it lives and dies with its socket, and its id may
    /// be in use by another WebSocket at the same time).
    fn sj_new_session(&mut self, service: Service, channel: &str, key: String) -> usize {
        let opts = self.sj_opts(service);
        self.sj.sessions.insert(SjSession {
            channel: channel.to_string(),
            key,
            s: Session::new(self.now, opts),
            recv: None,
            ws: None,
            timer: None,
            joined: false,
        })
    }

    /// A session opened: it joins its channel; the close service closes it.
    fn sj_opened(&mut self, k: usize, service: Service) {
        let sess = &mut self.sj.sessions[k];
        if !sess.joined {
            sess.joined = true;
            self.sj
                .channels
                .entry(sess.channel.clone())
                .or_default()
                .push(Member::Session(k));
        }
        if service == Service::Close {
            let (code, reason) = sockjs::CLOSE_GO_AWAY;
            self.sj.sessions[k].s.close(code, reason);
        }
    }

    /// Write one frame to an HTTP receiver; returns the bytes written.
    fn sj_write(&mut self, r: &SjRecv, frame: &str) -> usize {
        let wrapped = sockjs::wrap(r.transport, frame, r.callback.as_deref());
        if let Some(conn) = self.conns.get_mut(r.token.0) {
            crate::sse::frame(&mut conn.out, r.chunked, &wrapped);
        }
        wrapped.len()
    }

    /// End an HTTP receiver's response (the server ended it).
    fn sj_end_response(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.state == State::Dead {
            return;
        }
        conn.sj = None;
        if conn.chunked_stream {
            conn.out.extend_from_slice(response::LAST_CHUNK);
        }
        conn.chunked_stream = false;
        conn.state = State::Responding { keep_alive: false };
        conn.linger = false;
        self.finish_conn(token);
    }

    /// Write every frame the session has for its receiver.
    pub(crate) fn sj_pump(&mut self, k: usize) {
        loop {
            let Some(sess) = self.sj.sessions.get_mut(k) else {
                return;
            };
            if let Some(ws) = sess.ws {
                // Frames move to the socket's queue only while it has room
                // (the WebSocket bound); the rest waits in the session's
                // own bounded outbox, and the socket's drain pumps again.
                while self.ws_room(ws) {
                    let Some(f) = self
                        .sj
                        .sessions
                        .get_mut(k)
                        .and_then(|s| s.s.take_frame(self.now))
                    else {
                        break;
                    };
                    self.ws_text(ws, f.text.as_bytes());
                    if f.end {
                        self.ws_close_with(ws, 1000, "");
                        break;
                    }
                }
                break;
            }
            let Some(r) = sess.recv.clone() else {
                break;
            };
            let Some(f) = sess.s.take_frame(self.now) else {
                break;
            };
            let Some(rid) = r.id else {
                break;
            };
            let n = self.sj_write(&r, &f.text);
            let limit_hit = r.transport.receiver() == Some(Receiver::Streaming)
                && self.sj.sessions[k].s.account(self.now, rid, n);
            if f.end || limit_hit {
                self.sj.sessions[k].recv = None;
                self.sj.sessions[k].s.detach(self.now, rid, Detach::Ended);
                self.sj_end_response(r.token);
            } else {
                self.sj_flush(r.token);
            }
        }
        self.sj_rearm(k);
    }

    fn sj_flush(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        match conn.flush_out() {
            Ok(_) => {
                if conn.out_pending() {
                    conn.ready.interest.insert(Ready::WRITABLE);
                }
            }
            Err(_) => self.kill(token, "sockjs receiver write failed"),
        }
    }

    /// Keep the session's timer at its next deadline.
    fn sj_rearm(&mut self, k: usize) {
        let Some(sess) = self.sj.sessions.get_mut(k) else {
            return;
        };
        let want = sess.s.next_deadline();
        let have = sess.timer.and_then(|h| self.timers.deadline(h));
        if want == have {
            return;
        }
        if let Some(h) = sess.timer.take() {
            self.timers.cancel(h);
        }
        if let Some(d) = want {
            sess.timer = Some(self.timers.insert_at(d, Timer::SockJs(k)));
        }
    }

    /// A session's timer fired.
    pub(crate) fn sj_timer(&mut self, k: usize, handle: Handle) {
        let Some(sess) = self.sj.sessions.get_mut(k) else {
            return;
        };
        if sess.timer != Some(handle) {
            return;
        }
        sess.timer = None;
        match sess.s.on_timer(self.now) {
            Tick::Nothing => {}
            Tick::Expire => return self.sj_remove(k),
            Tick::Heartbeat(f) => {
                if let Some(ws) = sess.ws {
                    self.ws_text(ws, f.text.as_bytes());
                } else if let Some(r) = sess.recv.clone() {
                    self.sj_write(&r, &f.text);
                    if f.end {
                        self.sj.sessions[k].recv = None;
                        if let Some(rid) = r.id {
                            self.sj.sessions[k].s.detach(self.now, rid, Detach::Ended);
                        }
                        self.sj_end_response(r.token);
                    } else {
                        self.sj_flush(r.token);
                    }
                }
            }
        }
        self.sj_rearm(k);
    }

    /// Remove a session: it leaves its channel; any receiver ends.
    fn sj_remove(&mut self, k: usize) {
        let Some(sess) = self.sj.sessions.try_remove(k) else {
            return;
        };
        if self.sj.index.get(&sess.key) == Some(&k) {
            self.sj.index.remove(&sess.key);
        }
        if let Some(h) = sess.timer {
            self.timers.cancel(h);
        }
        self.sj_leave(&sess.channel, Member::Session(k));
        if let Some(r) = sess.recv {
            self.sj_end_response(r.token);
        }
    }

    fn sj_leave(&mut self, channel: &str, m: Member) {
        if let Some(members) = self.sj.channels.get_mut(channel) {
            members.retain(|x| *x != m);
            if members.is_empty() {
                self.sj.channels.remove(channel);
            }
        }
    }

    /// Messages from a member: echoed, dropped (close service) or bridged.
    pub(crate) fn sj_deliver(&mut self, channel: &str, from: Member, msgs: Vec<String>) {
        if msgs.is_empty() {
            return;
        }
        let targets: Vec<Member> = match Service::of(channel) {
            Service::Close => Vec::new(),
            s if s.echoes() => vec![from],
            _ => self
                .sj
                .channels
                .get(channel)
                .map(|ms| ms.iter().copied().filter(|m| *m != from).collect())
                .unwrap_or_default(),
        };
        for t in targets {
            match t {
                Member::Session(k) => {
                    if let Some(sess) = self.sj.sessions.get_mut(k) {
                        // A full outbox closes the session itself (3001).
                        let _ = sess.s.send(msgs.clone());
                        self.sj_pump(k);
                    }
                }
                Member::Raw(tok) => {
                    for m in &msgs {
                        self.ws_text_to_member(tok, m.as_bytes());
                    }
                }
            }
        }
    }

    /// `xhr_send` / `jsonp_send` once the body is read.
    pub(crate) fn sj_send_body(&mut self, token: Token, head: Head, body: Vec<u8>) {
        let minor = head.minor;
        let keep = head.keep_alive && !self.stopping();
        let Some((channel, rest)) = split(&head.path) else {
            return self.respond_error(token, minor, 404, "No such SockJS channel.", keep);
        };
        let (channel, rest) = (channel.to_string(), rest.to_string());
        let Route::Session {
            session, transport, ..
        } = sockjs::route(&rest, head.query.as_deref(), head.method)
        else {
            return self.respond_error(token, minor, 404, "Not a SockJS URL.", keep);
        };
        let key = format!("{channel}/{session}");
        let Some(&k) = self.sj.index.get(&key) else {
            return self.respond_error(token, minor, 404, "No such session.", keep);
        };
        let ct = String::from_utf8_lossy(head.content_type.as_deref().unwrap_or(b"")).into_owned();
        let msgs = match sockjs::parse_send(transport, &ct, &body) {
            Ok(m) => m,
            Err(e) => return self.respond_error(token, minor, e.status(), &e.to_string(), keep),
        };
        if self.sj.sessions[k].s.is_open() {
            self.sj_deliver(&channel, Member::Session(k), msgs);
        }
        let service = Service::of(&channel);
        let mut out = Vec::with_capacity(256);
        let (status, body): (u16, &[u8]) = if transport == Transport::XhrSend {
            (204, b"")
        } else {
            (200, b"ok")
        };
        response::status_line_bare(&mut out, minor, status);
        sockjs::push_session_headers(
            &mut out,
            transport,
            &req_info(&head),
            service.cookie_needed(),
        );
        finish_head(&mut out, minor, (status != 204).then_some(body.len()), keep);
        out.extend_from_slice(body);
        self.respond(token, out, keep);
    }

    /// Events on an HTTP receiving connection: write, notice it leave.
    pub(crate) fn sj_recv_event(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.ready.can_read() {
            if let Io::Eof | Io::Failed(_) = conn.drain_input(&mut self.scratch, 64 * 1024) {
                return self.kill(token, "sockjs receiver left");
            }
        }
        self.sj_flush(token);
    }

    /// An HTTP receiving connection is being freed (from `kill`).
    pub(crate) fn sj_detach_conn(&mut self, link: SjLink) {
        let k = link.session;
        if let Some(sess) = self.sj.sessions.get_mut(k) {
            if sess.recv.as_ref().is_some_and(|r| r.id == Some(link.id)) {
                sess.recv = None;
                sess.s.detach(self.now, link.id, Detach::Interrupted);
            }
            self.sj_rearm(k);
        }
    }

    /// `/<server>/<session>/websocket`: a session over a WebSocket. It is
    /// not entered in the session index: its id may be reused by another
    /// WebSocket at the same time, and no polling request can reach it.
    fn sj_ws_session(
        &mut self,
        token: Token,
        head: Head,
        early: Vec<u8>,
        service: Service,
        channel: &str,
        key: String,
    ) {
        let Some(hs) = self.sj_upgrade(token, &head, service) else {
            return;
        };
        let k = self.sj_new_session(service, channel, key);
        let attach = self.sj.sessions[k].s.attach(self.now, Receiver::WebSocket);
        self.sj_rearm(k);
        self.ws_become(token, WsMode::SockJs(k), &early, hs);
        match attach {
            Attach::Rejected(frame) => {
                self.ws_text(token, frame.as_bytes());
                self.ws_close_with(token, 1000, "");
            }
            Attach::Gone => self.ws_close_with(token, 1000, ""),
            Attach::Attached {
                frames,
                end,
                opened,
                ..
            } => {
                for f in &frames {
                    self.ws_text(token, f.as_bytes());
                }
                if end {
                    self.ws_close_with(token, 1000, "");
                } else {
                    self.sj.sessions[k].ws = Some(token);
                }
                if opened {
                    self.sj_opened(k, service);
                }
                self.sj_pump(k);
            }
        }
        self.ws_drive(token);
    }

    /// `/websocket`: a raw WebSocket member of the channel.
    fn sj_raw_websocket(
        &mut self,
        token: Token,
        head: Head,
        early: Vec<u8>,
        service: Service,
        channel: &str,
    ) {
        let Some(hs) = self.sj_upgrade(token, &head, service) else {
            return;
        };
        match service {
            Service::Bridge => {
                self.ws_become(token, WsMode::Raw(channel.to_string()), &early, hs);
                self.sj
                    .channels
                    .entry(channel.to_string())
                    .or_default()
                    .push(Member::Raw(token));
            }
            Service::Close => {
                self.ws_become(token, WsMode::Echo, &early, hs);
                let (code, reason) = sockjs::CLOSE_GO_AWAY;
                self.ws_close_with(token, code, reason);
            }
            _ => self.ws_become(token, WsMode::Echo, &early, hs),
        }
        self.ws_drive(token);
    }

    /// The SockJS flavour of the upgrade checks (400 with SockJS's texts).
    /// RFC 6455 (versions 13 and 8), and hixie-76 (`Sec-WebSocket-Key1`
    /// and `Key2`, no version), which the SockJS protocol still tests.
    fn sj_upgrade(&mut self, token: Token, head: &Head, service: Service) -> Option<Handshake> {
        let minor = head.minor;
        if !service.websocket() {
            let msg = "WebSocket is disabled on this channel.";
            self.respond_error(token, minor, 404, msg, false);
            return None;
        }
        if !head.upgrade_websocket || !head.connection_upgrade {
            self.respond_error(token, minor, 400, sockjs::ERR_NOT_WEBSOCKET, false);
            return None;
        }
        let hixie = head.ws_version.is_none()
            && head.ws_key.is_none()
            && (head.ws_hixie_keys.0.is_some() || head.ws_hixie_keys.1.is_some());
        if hixie {
            return self.ws_accept_hixie(token, head);
        }
        if !matches!(
            head.ws_version.as_deref().map(str::trim),
            Some("13") | Some("8")
        ) {
            self.respond_error(token, minor, 400, sockjs::ERR_WEBSOCKET_VERSION, false);
            return None;
        }
        self.ws_accept(token, head).then_some(Handshake::Rfc6455)
    }

    /// A WebSocket member sent messages (called by the WebSocket reader).
    pub(crate) fn sj_ws_messages(&mut self, token: Token, mode: &WsMode, texts: Vec<String>) {
        match mode {
            WsMode::SockJs(k) => {
                let Some(channel) = self.sj.sessions.get(*k).map(|s| s.channel.clone()) else {
                    return;
                };
                let mut msgs = Vec::new();
                for t in texts {
                    match sockjs::parse_ws_message(&t) {
                        Ok(m) => msgs.extend(m),
                        Err(_) => {
                            let (code, reason) = sockjs::WS_BROKEN_FRAMING;
                            return self.ws_close_with(token, code, reason);
                        }
                    }
                }
                if self.sj.sessions[*k].s.is_open() {
                    self.sj_deliver(&channel, Member::Session(*k), msgs);
                }
            }
            WsMode::Raw(channel) => {
                let channel = channel.clone();
                self.sj_deliver(&channel, Member::Raw(token), texts);
            }
            _ => {}
        }
    }

    /// A SockJS WebSocket is being freed.
    pub(crate) fn sj_ws_gone(&mut self, token: Token, mode: &WsMode) {
        match mode {
            WsMode::SockJs(k)
                if self
                    .sj
                    .sessions
                    .get(*k)
                    .is_some_and(|s| s.ws == Some(token)) =>
            {
                self.sj_remove(*k);
            }
            WsMode::Raw(channel) => {
                let channel = channel.clone();
                self.sj_leave(&channel, Member::Raw(token));
            }
            _ => {}
        }
    }

    /// Sessions and raw sockets, for `/metrics`.
    pub(crate) fn sj_counts(&self) -> (usize, usize) {
        (self.sj.sessions.len(), self.sj.channels.len())
    }
}

/// End a response head: length or nothing, `Connection`, blank line.
fn finish_head(out: &mut Vec<u8>, minor: u8, len: Option<usize>, keep: bool) {
    if let Some(n) = len {
        out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
    }
    response::connection_header(out, minor, keep);
    out.extend_from_slice(b"\r\n");
}
