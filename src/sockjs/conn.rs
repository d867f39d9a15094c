//! What a SockJS connection keeps: a session's receiving response, or a
//! WebSocket member of a channel.

use super::protocol::ReceiverId;
use crate::websocket::conn::WsConn;

/// Links an HTTP receiving connection to its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SjLink {
    /// The session's key.
    pub session: usize,
    /// Which receiver of the session it is.
    pub id: ReceiverId,
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
