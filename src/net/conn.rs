//! One accepted socket: its readiness, its control output, and the state
//! of what it is doing, whose variants own their data.
//!
//! A `Conn` lives in the loop's slab; its key is its mio `Token`. Control
//! bytes (response heads, progress lines, error answers, event frames) go
//! through `out`, which is bounded by what the relay itself writes. Body
//! bytes of a pipe never pass through `out`: they go from the pipe's buffer
//! straight to the socket.
//!
//! [`State`]'s variants are the families: a connection is in an HTTP
//! exchange (reading a head or a short body, answering, lingering), a party
//! of a pipe, an event stream, a WebSocket, or a SockJS connection. Each
//! variant holds what that family keeps for the connection, moved in by
//! value when the connection changes hands; nothing about a protocol lives
//! beside the state on the connection.

use std::io;
use std::net::SocketAddr;

use crate::events::sse::EventStream;
use crate::http::body::ShortBody;
use crate::relay::core::{PipeId, Role};
use crate::sockjs::conn::SockJsConn;
use crate::timer::Handle;
use crate::websocket::conn::WsConn;
pub use crate::wire::End;
use crate::wire::{OutBuf, Readiness, Ready};

pub use super::sock::Sock;

/// The phases of a plain HTTP exchange.
#[derive(Debug)]
pub enum Http {
    /// Reading a request head (also: idle between keep-alive requests).
    ReadingHead,
    /// Reading a short request body, acted on once whole.
    ReadingBody(Box<ShortBody>),
    /// Writing `out`; then the next request (`keep_alive`), or the end.
    Responding {
        /// Whether the connection reads another request afterwards.
        keep_alive: bool,
        /// How it ends when it does not.
        end: End,
    },
    /// Write side shut down; the client's bytes are read and dropped until
    /// it closes or the linger timer fires, so the response is not
    /// destroyed by a reset.
    Lingering {
        /// Bytes dropped so far (bounded).
        dropped: usize,
    },
}

/// What a connection is doing; the variants are the families.
#[derive(Debug)]
pub enum State {
    /// A plain HTTP exchange.
    Http(Http),
    /// A party of a pipe (the relay family).
    Relay {
        /// Its pipe.
        pipe: PipeId,
        /// Its side.
        role: Role,
    },
    /// A Server-Sent Events stream (the events family).
    Events(Box<EventStream>),
    /// A WebSocket pipe or echo connection (the websocket family).
    WebSocket(Box<WsConn>),
    /// A SockJS receiving response or WebSocket (the sockjs family).
    SockJs(SockJsConn),
    /// Freed at the end of this loop turn; events for it are ignored.
    Dead,
}

impl State {
    /// A fresh connection's state: reading its first head.
    pub fn new() -> State {
        State::Http(Http::ReadingHead)
    }

    /// Whether it is being freed.
    pub fn is_dead(&self) -> bool {
        matches!(self, State::Dead)
    }

    /// The WebSocket this connection carries, whichever family owns it
    /// (a pipe or echo socket, or a SockJS session's or channel member's).
    pub fn websocket(&self) -> Option<&WsConn> {
        match self {
            State::WebSocket(ws) | State::SockJs(SockJsConn::Ws(ws)) => Some(ws),
            _ => None,
        }
    }

    /// The WebSocket this connection carries, to change in place.
    pub fn websocket_mut(&mut self) -> Option<&mut WsConn> {
        match self {
            State::WebSocket(ws) | State::SockJs(SockJsConn::Ws(ws)) => Some(ws),
            _ => None,
        }
    }

    /// The WebSocket a state held (one given back by `Ctx::kill`).
    pub fn into_websocket(self) -> Option<Box<WsConn>> {
        match self {
            State::WebSocket(ws) | State::SockJs(SockJsConn::Ws(ws)) => Some(ws),
            _ => None,
        }
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// One accepted connection.
#[derive(Debug)]
pub struct Conn {
    /// The socket (plain, or TLS).
    pub sock: Sock,
    /// The client's address.
    pub peer: SocketAddr,
    /// Kernel edges and current wishes.
    pub ready: Readiness,
    /// Control bytes to write.
    pub out: OutBuf,
    /// Head bytes read so far while reading a head; bytes a client sent
    /// past a head (the next request) until they are read as one.
    pub inbuf: Vec<u8>,
    /// The peer shut down its sending side.
    pub read_eof: bool,
    /// The one timer armed for it by its HTTP phase or its family.
    pub timer: Option<Handle>,
    /// The request being answered is `HEAD`: no answer carries a body.
    pub head_only: bool,
    /// Counted as waiting against its address (`--max-parked-per-ip`).
    pub parked: bool,
    /// What it is doing.
    pub state: State,
}

impl Conn {
    /// A freshly accepted connection, reading its first head.
    pub fn new(sock: Sock, peer: SocketAddr) -> Conn {
        Conn {
            sock,
            peer,
            ready: Readiness {
                event: Ready::EMPTY,
                interest: Ready::READABLE,
            },
            out: OutBuf::default(),
            inbuf: Vec::new(),
            read_eof: false,
            timer: None,
            head_only: false,
            parked: false,
            state: State::new(),
        }
    }

    /// Whether control bytes wait to be written (in `out`, or as TLS
    /// records inside the stream).
    pub fn out_pending(&self) -> bool {
        self.out.is_pending() || self.sock.has_pending()
    }

    /// Write pending control bytes until done or the kernel blocks.
    /// `Ok(true)` when nothing is left, TLS records included.
    pub fn flush_out(&mut self) -> io::Result<bool> {
        if !self.out.flush_to(&mut self.sock, &mut self.ready)? {
            return Ok(false);
        }
        self.sock.flush_pending(&mut self.ready)
    }

    /// One read into `buf` under the readiness rules.
    pub fn read_into(&mut self, buf: &mut [u8]) -> crate::wire::Io {
        crate::wire::read_into(&mut self.sock, &mut self.ready, &mut self.read_eof, buf)
    }

    /// Read and drop up to `limit` bytes, to notice the peer's end.
    pub fn drain_input(&mut self, scratch: &mut [u8], limit: usize) -> crate::wire::Io {
        crate::wire::drain_input(
            &mut self.sock,
            &mut self.ready,
            &mut self.read_eof,
            scratch,
            limit,
        )
    }
}
