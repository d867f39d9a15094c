//! What a SockJS connection keeps, in its `State::SockJs`: a session's
//! receiving HTTP response ([`SjLink`]), or a WebSocket (a session's, or a
//! raw member of a channel). The sockjs family drives both; these types do
//! no I/O.

use super::protocol::ReceiverId;
use crate::websocket::conn::WsConn;

/// Links an HTTP receiving response to its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SjLink {
    /// The session's key.
    pub session: usize,
    /// Which receiver of the session it is.
    pub id: ReceiverId,
    /// Its body is chunked (HTTP/1.1), so its end is the last chunk;
    /// otherwise it is delimited by the close.
    pub chunked: bool,
}

/// A SockJS connection's state.
#[derive(Debug)]
pub enum SockJsConn {
    /// A session's receiving HTTP response.
    Recv(SjLink),
    /// A WebSocket: a session's (`WsMode::SockJs`) or a raw channel
    /// member (`WsMode::Raw`).
    Ws(Box<WsConn>),
}

impl SockJsConn {
    /// Whether it is a WebSocket.
    pub fn is_websocket(&self) -> bool {
        matches!(self, SockJsConn::Ws(_))
    }
}
