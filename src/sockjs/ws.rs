//! SockJS over WebSocket: the `websocket` transport of a session
//! (`/<server>/<session>/websocket`, SockJS frames in text messages) and
//! the raw endpoint (`/websocket`: plain messages, a member of the channel,
//! or the test services' echo).
//!
//! A session's socket and a raw member are `State::SockJs(SockJsConn::Ws)`
//! connections whose WebSocket side the websocket family drives; what they
//! read comes back here as messages (`ws_messages`) and their end as a
//! report (`ws_gone`). The test services' raw echo is a
//! plain echo WebSocket (`State::WebSocket`), the websocket family's own.
//! A `websocket`-transport session is not entered in the session index: it
//! lives and dies with its socket, and its id may be in use by another
//! WebSocket at the same time.

use mio::Token;

use super::conn::SockJsConn;
use super::protocol::{self, Attach, Receiver};
use super::{Member, Service, SockJs};
use crate::http::Head;
use crate::net::{Ctx, State};
use crate::websocket::conn::{Handshake, WsConn, WsMode};
use crate::websocket::{self, codec, handshake, WebSockets};

impl SockJs {
    /// `/<server>/<session>/websocket`: a session over a WebSocket.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ws_session(
        &mut self,
        ctx: &mut Ctx,
        ws: &mut WebSockets,
        t: Token,
        head: Head<'_>,
        early: Vec<u8>,
        service: Service,
        channel: &str,
        key: String,
    ) {
        let Some(hs) = upgrade(ctx, t, &head, service) else {
            return;
        };
        let k = self.new_session(ctx, service, channel, key);
        let attach = self.sessions[k].s.attach(ctx.now, Receiver::WebSocket);
        self.rearm(ctx, k);
        let max = ctx.config.ws_max_message;
        let conn = WsConn::new(WsMode::SockJs(k), max, &early, hs, ctx.budget.lease());
        websocket::attach(ctx, t, State::SockJs(SockJsConn::Ws(Box::new(conn))));
        match attach {
            Attach::Rejected(frame) => {
                ws.text(ctx, t, frame.as_bytes());
                ws.close_with(ctx, t, codec::close::NORMAL, "");
            }
            Attach::Gone => ws.close_with(ctx, t, codec::close::NORMAL, ""),
            Attach::Attached {
                frames,
                end,
                opened,
                ..
            } => {
                for f in &frames {
                    ws.text(ctx, t, f.as_bytes());
                }
                if end {
                    ws.close_with(ctx, t, codec::close::NORMAL, "");
                } else {
                    self.sessions[k].ws = Some(t);
                }
                if opened {
                    self.opened(k, service);
                }
                self.pump(ctx, ws, k);
            }
        }
        self.drive_ws(ctx, ws, t);
    }

    /// `/websocket`: a raw WebSocket member of the channel (the test
    /// services: an echo socket).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn raw_websocket(
        &mut self,
        ctx: &mut Ctx,
        ws: &mut WebSockets,
        t: Token,
        head: Head<'_>,
        early: Vec<u8>,
        service: Service,
        channel: &str,
    ) {
        let Some(hs) = upgrade(ctx, t, &head, service) else {
            return;
        };
        let max = ctx.config.ws_max_message;
        match service {
            Service::Bridge => {
                let conn = WsConn::new(
                    WsMode::Raw(channel.to_string()),
                    max,
                    &early,
                    hs,
                    ctx.budget.lease(),
                );
                websocket::attach(ctx, t, State::SockJs(SockJsConn::Ws(Box::new(conn))));
                self.channels
                    .entry(channel.to_string())
                    .or_default()
                    .push(Member::Raw(t));
            }
            Service::Close => {
                let conn = WsConn::new(WsMode::Echo, max, &early, hs, ctx.budget.lease());
                websocket::attach(ctx, t, State::WebSocket(Box::new(conn)));
                let (code, reason) = protocol::CLOSE_GO_AWAY;
                ws.close_with(ctx, t, code, reason);
            }
            _ => {
                let conn = WsConn::new(WsMode::Echo, max, &early, hs, ctx.budget.lease());
                websocket::attach(ctx, t, State::WebSocket(Box::new(conn)));
            }
        }
        self.drive_ws(ctx, ws, t);
    }

    /// A WebSocket member sent messages (read by the websocket family).
    pub(super) fn ws_messages(
        &mut self,
        ctx: &mut Ctx,
        ws: &mut WebSockets,
        t: Token,
        mode: &WsMode,
        texts: Vec<String>,
    ) {
        match mode {
            WsMode::SockJs(k) => {
                let Some(channel) = self.sessions.get(*k).map(|s| s.channel.clone()) else {
                    return;
                };
                let mut msgs = Vec::new();
                for text in texts {
                    match protocol::parse_ws_message(&text) {
                        Ok(m) => msgs.extend(m),
                        Err(_) => {
                            let (code, reason) = protocol::WS_BROKEN_FRAMING;
                            return ws.close_with(ctx, t, code, reason);
                        }
                    }
                }
                if self.sessions[*k].s.is_open() {
                    self.deliver(ctx, ws, &channel, Member::Session(*k), msgs);
                }
            }
            WsMode::Raw(channel) => self.deliver(ctx, ws, channel, Member::Raw(t), texts),
            _ => {}
        }
    }

    /// A SockJS WebSocket ended: its session goes, or it leaves its
    /// channel.
    pub(super) fn ws_gone(&mut self, ctx: &mut Ctx, t: Token, mode: &WsMode) {
        match mode {
            WsMode::SockJs(k) if self.sessions.get(*k).is_some_and(|s| s.ws == Some(t)) => {
                self.remove(ctx, *k);
            }
            WsMode::Raw(channel) => self.leave(channel, Member::Raw(t)),
            _ => {}
        }
    }
}

/// The SockJS flavour of the upgrade checks (400 with SockJS's texts).
/// RFC 6455 (versions 13 and 8), and hixie-76 (`Sec-WebSocket-Key1` and
/// `Key2`, no version), which the SockJS protocol still tests.
fn upgrade(ctx: &mut Ctx, t: Token, head: &Head<'_>, service: Service) -> Option<Handshake> {
    let minor = head.minor;
    if !service.websocket() {
        let msg = "WebSocket is disabled on this channel.";
        ctx.respond_error(t, minor, 404, msg, false);
        return None;
    }
    if !head.upgrade_websocket || !head.connection_upgrade {
        ctx.respond_error(t, minor, 400, protocol::ERR_NOT_WEBSOCKET, false);
        return None;
    }
    let hixie = head.header("sec-websocket-version").is_none()
        && head.header("sec-websocket-key").is_none()
        && (head.header("sec-websocket-key1").is_some()
            || head.header("sec-websocket-key2").is_some());
    if hixie {
        return handshake::accept_hixie(ctx, t, head);
    }
    if !matches!(
        head.header_str("sec-websocket-version"),
        Some("13") | Some("8")
    ) {
        ctx.respond_error(t, minor, 400, protocol::ERR_WEBSOCKET_VERSION, false);
        return None;
    }
    handshake::accept(ctx, t, head).then_some(Handshake::Rfc6455)
}
