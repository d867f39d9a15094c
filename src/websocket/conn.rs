//! What a WebSocket connection keeps: its mode, the reading state of its
//! wire protocol (RFC 6455 or hixie-76), its input buffer, and its side of
//! the close handshake. The websocket family drives it; the type itself
//! does no I/O.

#![allow(missing_docs)]

use std::time::Duration;

use mio::Token;

use super::codec::{FrameParser, MessageState, OpCode, Role};
use super::hixie;

/// Bytes one connection's outbound queue may hold. Past it, whatever fills
/// the queue stops: the connection itself is not read (its pongs and
/// echoes), the pipe peer feeding it is not read, a SockJS session keeps
/// its messages in its own bounded outbox, and a raw channel member that
/// others write to is closed as too slow.
pub const WS_QUEUE: usize = 256 * 1024;

/// Input buffer per WebSocket connection.
pub const WS_INBUF: usize = 64 * 1024;

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
    /// assembled and parsed as SockJS frames).
    SockJs(usize),
    /// A raw WebSocket member of a SockJS channel.
    Raw(String),
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
pub enum Proto {
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
pub struct HeldFrame {
    fin: bool,
    opcode: OpCode,
    data: Vec<u8>,
}

/// What happens to the data frame being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cur {
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
pub enum CloseOut {
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
    pub mode: WsMode,
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
