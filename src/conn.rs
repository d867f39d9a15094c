//! One accepted socket: its readiness, its state, its pending control bytes.
//!
//! A `Conn` lives in the server's slab; its key is its mio `Token`. Control
//! bytes (response heads, progress lines, error answers) go through `out`,
//! which is small and bounded by what the relay itself writes. Body bytes of
//! a pipe never pass through `out`: they go from the pipe's ring straight to
//! the socket.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;

use crate::readiness::{Readiness, Ready};
use crate::timer::Handle;

/// What a connection is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Reading a request head (also: idle between keep-alive requests).
    ReadingHead,
    /// Writing `out`; then the next request (`keep_alive`) or lingering.
    Responding {
        /// Whether the connection reads another request afterwards.
        keep_alive: bool,
    },
    /// The sender of a pipe (parked or streaming).
    Sender {
        /// The pipe's slab key.
        pipe: usize,
    },
    /// A receiver of a pipe (parked or streaming).
    Receiver {
        /// The pipe's slab key.
        pipe: usize,
    },
    /// Write side shut down; the client's bytes are read and dropped until it
    /// closes or the linger timer fires, so the response is not destroyed by
    /// a reset.
    Lingering {
        /// Bytes dropped so far (bounded).
        dropped: usize,
    },
    /// Reading a short request body (`POST /signal/<id>`, `POST
    /// /events/<topic>`); the request waits in `Conn::pending`.
    ReadingBody,
    /// A Server-Sent Events stream (see `Conn::sub`).
    EventStream,
    /// A WebSocket (see `Conn::ws`).
    WebSocket,
    /// The receiving response of a SockJS session (see `Conn::sj`).
    SockJsRecv,
    /// Freed at the end of this loop turn; events for it are ignored.
    Dead,
}

/// Outcome of one I/O step at the socket boundary.
#[derive(Debug)]
pub enum Io {
    /// Some bytes moved.
    Moved(usize),
    /// The kernel has nothing more for now (the event bit was cleared).
    WouldBlock,
    /// The peer ended its sending side.
    Eof,
    /// The connection failed.
    Failed(io::Error),
}

/// One accepted connection.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub sock: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// Kernel edges and current wishes.
    pub ready: Readiness,
    /// What it is doing.
    pub state: State,
    /// The one timer armed for it (head timeout, wait TTL or linger).
    pub timer: Option<Handle>,
    /// Head bytes read so far, while reading a head; pipelined bytes after.
    pub inbuf: Vec<u8>,
    /// Control bytes to write.
    pub out: Vec<u8>,
    /// How much of `out` is written.
    pub out_pos: usize,
    /// The peer shut down its sending side.
    pub read_eof: bool,
    /// After its last response, drain the client before closing (it may
    /// still be sending bytes we will not read). Off for connections whose
    /// input is known to be complete, which can close at once.
    pub linger: bool,
    /// For event streams: chunked framing (HTTP/1.1) or close-delimited.
    pub chunked_stream: bool,
    /// For event streams: what it is subscribed to.
    pub sub: Option<Box<crate::sse::Subscription>>,
    /// For short requests with a body: the request being read.
    pub pending: Option<Box<crate::body::PendingBody>>,
    /// For SockJS receiving responses: the session it serves.
    pub sj: Option<Box<crate::sjserver::SjLink>>,
    /// Counted as parked against its IP (`--max-parked-per-ip`).
    pub parked: bool,
    /// For WebSockets: framing and relay state.
    pub ws: Option<Box<crate::wsconn::WsConn>>,
    /// The request being answered is `HEAD`: no answer carries a body.
    pub head_only: bool,
    /// Once `out` is written, close with a reset rather than a FIN: the
    /// response is close-delimited and was cut, and only a reset says so.
    pub reset_after_write: bool,
}

impl Conn {
    /// A freshly accepted connection, reading its first head.
    pub fn new(sock: TcpStream, peer: SocketAddr) -> Conn {
        Conn {
            sock,
            peer,
            ready: Readiness {
                event: Ready::EMPTY,
                interest: Ready::READABLE,
            },
            state: State::ReadingHead,
            timer: None,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            read_eof: false,
            linger: true,
            chunked_stream: false,
            sub: None,
            pending: None,
            ws: None,
            parked: false,
            sj: None,
            head_only: false,
            reset_after_write: false,
        }
    }

    /// Whether control bytes wait to be written.
    pub fn out_pending(&self) -> bool {
        self.out_pos < self.out.len()
    }

    /// Write pending control bytes until done or the kernel blocks.
    /// Returns `Ok(true)` when nothing is left.
    pub fn flush_out(&mut self) -> io::Result<bool> {
        while self.out_pos < self.out.len() {
            if !self.ready.event.contains(Ready::WRITABLE) {
                return Ok(false);
            }
            match self.sock.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ready.event.remove(Ready::WRITABLE);
                    // A queue that is topped up while it drains may never
                    // empty: drop the written part once it is the larger
                    // half, so memory follows what is pending, not what
                    // was ever queued.
                    if self.out_pos >= 32 * 1024 && self.out_pos * 2 >= self.out.len() {
                        self.out.drain(..self.out_pos);
                        self.out_pos = 0;
                    }
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        if self.out.capacity() > 4096 {
            self.out.shrink_to(1024);
        }
        Ok(true)
    }

    /// One read into `buf`, keeping the readiness rules: `WouldBlock` and
    /// end of stream clear the readable bit.
    pub fn read_into(&mut self, buf: &mut [u8]) -> Io {
        if !self.ready.event.contains(Ready::READABLE) {
            return Io::WouldBlock;
        }
        loop {
            match self.sock.read(buf) {
                Ok(0) => {
                    self.ready.event.remove(Ready::READABLE);
                    self.read_eof = true;
                    return Io::Eof;
                }
                Ok(n) => return Io::Moved(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ready.event.remove(Ready::READABLE);
                    return Io::WouldBlock;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Io::Failed(e),
            }
        }
    }

    /// Read and drop whatever the peer sent, up to `limit` bytes, to notice
    /// its end of stream. Used for connections that have nothing to say.
    pub fn drain_input(&mut self, scratch: &mut [u8], limit: usize) -> Io {
        let mut total = 0;
        while total < limit {
            let cap = scratch.len().min(limit - total);
            match self.read_into(&mut scratch[..cap]) {
                Io::Moved(n) => total += n,
                other => return other,
            }
        }
        Io::Moved(total)
    }
}
