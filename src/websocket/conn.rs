//! What a WebSocket connection keeps: its mode, the reading state of its
//! wire protocol (RFC 6455 or hixie-76), its input buffer, and its side of
//! the close handshake. The websocket family drives it; the type itself
//! does no I/O.
//!
//! It lives in the connection's state: `State::WebSocket` for a pipe or
//! echo socket, `State::SockJs(SockJsConn::Ws)` for a SockJS session's
//! socket or a raw channel member (its [`WsMode`] says which).
//!
//! Memory (R10): the 64 KiB input buffer ([`WS_INBUF`]) is allocated when
//! the connection is first read from its socket (bridged, echo, SockJS),
//! not at the upgrade: a pipe peer waiting for its other end holds only the
//! few bytes that came with its head, if any.

use std::time::Duration;

use mio::Token;

use super::codec::{self, FrameParser, MessageState, OpCode, Role};
use super::hixie;
use crate::budget::{BufPool, Lease, PoolBuf};
use crate::ring::Ring;
use crate::wire::{self, OutBuf, Readiness};

/// Bytes one connection's outbound queue may hold. Past it, whatever fills
/// the queue stops: the connection itself is not read (its pongs and
/// echoes), a SockJS session keeps
/// its messages in its own bounded outbox, and a raw channel member that
/// others write to is closed as too slow. (A bridged pipe peer's queue is
/// its ring, bounded by [`WS_FEED`] for the peer that feeds it.)
pub const WS_QUEUE: usize = 256 * 1024;

/// Input buffer per WebSocket connection that is being read.
pub const WS_INBUF: usize = 64 * 1024;

/// The output ring of a bridged pipe peer, taken while bytes wait for it.
pub const WS_RING: usize = 128 * 1024;

/// A pipe peer stops feeding the other's queue once more than this is
/// queued there: the step that may follow (one input buffer of payload and
/// a frame header) and the control frames still due (a pong, a close) then
/// always fit the other's [`WS_RING`].
pub const WS_FEED: usize = WS_RING - WS_INBUF - 1024;

/// How long weir waits for the peer's close frame after sending its own
/// (RFC 6455 §7.1.1: the server closes TCP after the close handshake).
pub const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// What a WebSocket connection is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMode {
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
    /// assembled and handed to the sockjs family).
    SockJs(usize),
    /// A raw WebSocket member of this SockJS channel.
    Raw(String),
}

impl WsMode {
    /// Whether the sockjs family owns a connection in this mode (its
    /// messages and its end are reported to that family).
    pub fn is_sockjs(&self) -> bool {
        matches!(self, WsMode::SockJs(_) | WsMode::Raw(_))
    }
}

/// Which handshake a WebSocket was opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
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
pub(super) enum Proto {
    /// RFC 6455: frames, then messages.
    Rfc6455 {
        parser: FrameParser,
        msgs: MessageState,
    },
    /// hixie-76: text frames, each one a message.
    Hixie76 {
        dec: hixie::Decoder,
        /// Still reading key3: the numbers, the bytes so far and how many.
        key3: Option<(u32, u32, [u8; hixie::KEY3_LEN], usize)>,
    },
}

/// A frame being echoed, held until complete.
#[derive(Debug)]
pub(super) struct HeldFrame {
    pub(super) fin: bool,
    pub(super) opcode: OpCode,
    pub(super) data: Vec<u8>,
}

/// What happens to the data frame being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cur {
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
pub(super) enum CloseOut {
    /// No close frame queued.
    Open,
    /// A close is due, but the connection's output is inside a forwarded
    /// frame: it is written when that frame is complete.
    Pending(Vec<u8>),
    /// Our close frame is queued or written.
    Sent,
}

/// A WebSocket's input buffer: the bytes that came with its head, until
/// it is read from its socket; then a buffer from the pool.
#[derive(Debug)]
pub(super) enum Inbuf {
    /// Bytes sent right behind the head (often none).
    Early(Box<[u8]>),
    /// A [`WS_INBUF`] buffer from the pool.
    Pooled(PoolBuf),
}

impl std::ops::Deref for Inbuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Inbuf::Early(b) => b,
            Inbuf::Pooled(b) => b,
        }
    }
}

impl std::ops::DerefMut for Inbuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Inbuf::Early(b) => b,
            Inbuf::Pooled(b) => b,
        }
    }
}

/// Per-connection WebSocket state.
#[derive(Debug)]
pub struct WsConn {
    /// What the connection is for.
    pub mode: WsMode,
    pub(super) proto: Proto,
    /// Unread input is `inbuf[start..end]`. Until the connection is first
    /// read from its socket this holds only the bytes that came with the
    /// head (often none); a [`WS_INBUF`] buffer is taken from the bounded
    /// pool then (R10).
    pub(super) inbuf: Inbuf,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) held: Option<HeldFrame>,
    /// Payload bytes of a forwarded frame this connection still has to
    /// receive into its `out`: while non-zero its output is mid-frame and
    /// no other frame may be written to it.
    pub(super) owed: u64,
    pub(super) close_out: CloseOut,
    /// The peer's close frame was read.
    pub(super) close_in: bool,
    /// The peer broke the protocol: nothing more is parsed; after our
    /// close the connection lingers (drains without parsing) and ends.
    pub(super) failed: bool,
    pub(super) cur: Cur,
    /// SockJS modes: the message being assembled, and complete ones.
    pub(super) msg: Vec<u8>,
    /// What the message (or echoed frame) being assembled holds of the
    /// budget every connection shares (R10); given back when it is done.
    pub(super) lease: Lease,
    pub(super) inbox: Vec<String>,
    /// The payload of the latest ping not yet answered: its pong waits
    /// for room in the queue (and for the output to be between frames).
    /// Only the latest ping is answered (RFC 6455 §5.5.3 allows it), so
    /// pings cost at most one pong.
    pub(super) pong: Option<Vec<u8>>,
    /// hixie-76: frames queued before the challenge answer could be
    /// written (it needs key3, which may come after our `101` head).
    pub(super) held_out: Vec<u8>,
    /// The parser said `NeedMore` for what is buffered.
    pub(super) need_input: bool,
    /// What is queued for a bridged pipe peer, behind whatever its own
    /// buffer still holds (its `101`): frames forwarded from the other
    /// peer, its pongs, its close. Taken from `Ctx::ws_rings` (at most two
    /// per `--max-streaming-pipes`) when something is
    /// queued, given back once all of it is written, so a quiet pipe holds
    /// none.
    pub(super) ring: Option<Ring<PoolBuf>>,
}

impl WsConn {
    /// A WebSocket in `mode` whose `101` head (for `hs`) is written;
    /// `early` are bytes the client sent right behind its head.
    pub fn new(
        mode: WsMode,
        max_message: u64,
        early: &[u8],
        hs: Handshake,
        lease: Lease,
    ) -> WsConn {
        // The client should wait for 101, but any early bytes are frames
        // (or, for hixie-76, key3 and frames). They are kept as they are;
        // the full input buffer waits until the socket is read (R10).
        let n = early.len().min(WS_INBUF);
        let inbuf = Inbuf::Early(early[..n].into());
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
            lease,
            inbox: Vec::new(),
            pong: None,
            held_out: Vec::new(),
            need_input: n == 0,
            ring: None,
        }
    }

    /// Neither side has started the close handshake.
    pub fn open(&self) -> bool {
        self.close_out == CloseOut::Open && !self.close_in && !self.failed
    }

    /// Opened with a hixie-76 handshake.
    pub(super) fn hixie(&self) -> bool {
        matches!(self.proto, Proto::Hixie76 { .. })
    }

    /// Still waiting for hixie-76's key3: output goes to `held_out`.
    pub(super) fn awaiting_key3(&self) -> bool {
        matches!(self.proto, Proto::Hixie76 { key3: Some(_), .. })
    }

    /// Whether the full input buffer is there (the socket has been read).
    pub fn has_input_buffer(&self) -> bool {
        matches!(self.inbuf, Inbuf::Pooled(_))
    }

    /// Before a read from the socket, with nothing unread left: the full
    /// input buffer, taken from `pool` the first time (R10); `None` when
    /// the pool has none free.
    pub(super) fn input_buffer(&mut self, pool: &BufPool) -> Option<&mut [u8]> {
        debug_assert!(self.start >= self.end);
        if let Inbuf::Early(_) = self.inbuf {
            self.inbuf = Inbuf::Pooled(pool.take()?);
        }
        Some(&mut self.inbuf)
    }

    /// Bytes queued for this connection and not yet written, given its
    /// connection's output.
    pub(super) fn queued(&self, out: &OutBuf) -> usize {
        out.pending() + self.held_out.len() + self.ring.as_ref().map_or(0, |r| r.len())
    }

    /// Bridged to a pipe peer: its output goes through a ring.
    fn is_pipe(&self) -> bool {
        matches!(self.mode, WsMode::Pipe { .. })
    }

    /// How much may be queued for this connection before whatever feeds
    /// it pauses: [`WS_FEED`] for a bridged pipe peer (so a step always
    /// fits its ring), [`WS_QUEUE`] for the others.
    pub(super) fn feed_limit(&self) -> usize {
        if self.is_pipe() {
            WS_FEED
        } else {
            WS_QUEUE
        }
    }

    /// Queue `bytes` for the client, behind everything queued before.
    ///
    /// A bridged pipe peer's bytes go to its ring: the one it holds, or
    /// one taken from `rings` when its own buffer has nothing left to
    /// write (so the buffer's bytes, older, go first). With no ring free
    /// they go to the buffer, as do every other mode's. Should a ring ever
    /// lack room (the feeder's bound, [`WS_FEED`], keeps it from
    /// happening), its bytes move to the buffer ahead of these: the order
    /// holds either way.
    pub(super) fn put(&mut self, out: &mut OutBuf, rings: &BufPool, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.awaiting_key3() {
            self.held_out.extend_from_slice(bytes);
            return;
        }
        if self.ring.is_none() && !out.is_pending() && self.is_pipe() {
            self.ring = rings.take().and_then(Ring::over);
        }
        let Some(ring) = self.ring.as_mut() else {
            return out.push(bytes);
        };
        if ring.free() < bytes.len() {
            let (a, b) = ring.readable_from(ring.start_offset());
            out.push(a);
            out.push(b);
            self.ring = None;
            return out.push(bytes);
        }
        ring.push(bytes);
    }

    /// Queue a frame header (unmasked, as the server sends).
    pub(super) fn put_header(
        &mut self,
        out: &mut OutBuf,
        rings: &BufPool,
        fin: bool,
        op: OpCode,
        len: u64,
    ) {
        let mut h = [0; codec::MAX_HEADER];
        let n = codec::header(&mut h, fin, op, len);
        self.put(out, rings, &h[..n]);
    }

    /// Write what is queued while the socket takes it: the buffer, then
    /// the ring, which goes back to the pool once empty. `Ok(true)` when
    /// nothing is left.
    pub(super) fn flush(
        &mut self,
        out: &mut OutBuf,
        w: &mut dyn std::io::Write,
        ready: &mut Readiness,
    ) -> std::io::Result<bool> {
        if !out.flush_to(w, ready)? {
            return Ok(false);
        }
        let Some(ring) = self.ring.as_mut() else {
            return Ok(true);
        };
        while !ring.is_empty() {
            let (a, b) = ring.readable_from(ring.start_offset());
            let bufs = [std::io::IoSlice::new(a), std::io::IoSlice::new(b)];
            let Some(n) = wire::write_some(w, &bufs, ready)? else {
                return Ok(false);
            };
            out.count_sent(n);
            ring.release_to(ring.start_offset() + n as u64);
        }
        self.ring = None;
        Ok(true)
    }

    /// Where frames for this connection go: its output, or, during a
    /// hixie-76 handshake, the bytes held until the challenge answer.
    pub(super) fn out_of<'a>(&'a mut self, out: &'a mut OutBuf) -> &'a mut Vec<u8> {
        // Only a bridged pipe peer holds a ring, and nothing written here
        // goes to one (it would pass the ring's older bytes).
        debug_assert!(self.ring.is_none());
        if self.awaiting_key3() {
            &mut self.held_out
        } else {
            out.buf()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::budget::Budget;
    use crate::wire::Ready;

    /// A socket that takes at most `room` bytes, then blocks.
    struct Kernel {
        got: Vec<u8>,
        room: usize,
    }

    impl std::io::Write for Kernel {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let n = b.len().min(self.room);
            if n == 0 {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            self.room -= n;
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn writable() -> Readiness {
        Readiness {
            event: Ready::WRITABLE,
            interest: Ready::WRITABLE,
        }
    }

    fn bridged() -> WsConn {
        let budget = Budget::new(1 << 20);
        let mode = WsMode::Pipe {
            peer: Token(1),
            key: "/x".into(),
        };
        WsConn::new(mode, 1 << 20, b"", Handshake::Rfc6455, budget.lease())
    }

    #[test]
    fn a_pipe_peers_frames_go_through_a_ring_behind_its_head() {
        let rings = BufPool::new(64, 2, 0);
        let mut ws = bridged();
        let mut out = OutBuf::default();
        out.push(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
        // The head is still queued: a frame goes behind it, in the buffer.
        ws.put(&mut out, &rings, b"one");
        assert!(ws.ring.is_none());
        let mut k = Kernel {
            got: Vec::new(),
            room: 1 << 20,
        };
        let mut ready = writable();
        assert!(ws.flush(&mut out, &mut k, &mut ready).unwrap());
        // Nothing left in the buffer: the next bytes take a ring.
        ws.put_header(&mut out, &rings, true, OpCode::Binary, 3);
        ws.put(&mut out, &rings, b"two");
        assert_eq!(rings.counts().0, 1);
        assert_eq!((out.pending(), ws.queued(&out)), (0, 5));
        // The socket takes two bytes, then blocks: the rest stays queued.
        k.room = 2;
        assert!(!ws.flush(&mut out, &mut k, &mut ready).unwrap());
        assert!(!ready.event.contains(Ready::WRITABLE));
        assert_eq!(ws.queued(&out), 3);
        // Written out, the ring goes back to the pool.
        k.room = 1 << 20;
        ready = writable();
        assert!(ws.flush(&mut out, &mut k, &mut ready).unwrap());
        assert_eq!(rings.counts().0, 0);
        assert!(ws.ring.is_none());
        assert!(k.got.ends_with(b"\r\n\r\none\x82\x03two"), "{:?}", k.got);
        assert_eq!(
            out.meter().sent,
            k.got.len() as u64,
            "the ring's bytes are counted"
        );
    }

    #[test]
    fn a_ring_without_room_moves_to_the_buffer_and_keeps_the_order() {
        let rings = BufPool::new(16, 1, 0);
        let mut ws = bridged();
        let mut out = OutBuf::default();
        ws.put(&mut out, &rings, b"0123456789");
        assert_eq!(rings.counts().0, 1);
        ws.put(&mut out, &rings, b"abcdefghij");
        assert!(ws.ring.is_none(), "the ring went back");
        assert_eq!(rings.counts().0, 0);
        ws.put(&mut out, &rings, b"!");
        let mut k = Kernel {
            got: Vec::new(),
            room: 1 << 20,
        };
        assert!(ws.flush(&mut out, &mut k, &mut writable()).unwrap());
        assert_eq!(k.got, b"0123456789abcdefghij!");
    }

    #[test]
    fn with_no_ring_free_the_buffer_takes_the_frames() {
        let rings = BufPool::new(16, 0, 0);
        let mut ws = bridged();
        let mut out = OutBuf::default();
        ws.put(&mut out, &rings, b"frame");
        assert!(ws.ring.is_none());
        assert_eq!(out.pending(), 5);
        // Other modes never take one.
        let mut echo = bridged();
        echo.mode = WsMode::Echo;
        echo.put(&mut out, &BufPool::new(16, 1, 0), b"x");
        assert!(echo.ring.is_none());
    }

    #[test]
    fn a_waiting_socket_holds_no_input_buffer() {
        let budget = Budget::new(1 << 20);
        let pool = BufPool::new(WS_INBUF, 1, 0);
        let ws = WsConn::new(
            WsMode::Waiting("/x".into()),
            1 << 20,
            b"",
            Handshake::Rfc6455,
            budget.lease(),
        );
        assert_eq!(ws.inbuf.len(), 0);
        assert!(!ws.has_input_buffer());
        let mut ws = WsConn::new(
            WsMode::Echo,
            1 << 20,
            b"\x81\x80",
            Handshake::Rfc6455,
            budget.lease(),
        );
        assert_eq!(&ws.inbuf[ws.start..ws.end], b"\x81\x80");
        ws.start = ws.end;
        assert_eq!(ws.input_buffer(&pool).map(|b| b.len()), Some(WS_INBUF));
        assert!(ws.has_input_buffer());
        // The pool has one buffer: a second socket finds none.
        let mut other = WsConn::new(
            WsMode::Echo,
            1 << 20,
            b"",
            Handshake::Rfc6455,
            budget.lease(),
        );
        assert!(other.input_buffer(&pool).is_none());
        drop(ws);
        assert!(other.input_buffer(&pool).is_some(), "the buffer came back");
    }
}
