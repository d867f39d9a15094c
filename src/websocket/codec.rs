//! WebSocket (RFC 6455) codec: handshake keys, frame parsing and writing,
//! and the message-level protocol checks. Sans-io: it sees byte slices only,
//! never a socket or a clock.
//!
//! The pieces, in the order a server uses them:
//!
//! - [`valid_key`] and [`accept_key`] answer the opening handshake.
//! - [`FrameParser`] turns incoming bytes into frame headers and payload
//!   pieces. It never buffers a payload: each piece is unmasked in place in
//!   the caller's slice and handed back at once, so a relay can forward a
//!   frame of any length through a fixed buffer. Its only memory is the
//!   header of the frame being read (at most 14 bytes).
//! - [`MessageState`] sits behind the parser and enforces what needs memory
//!   across frames: fragmentation order, the per-message size limit, UTF-8
//!   of text messages (checked incrementally, failing at the first byte
//!   that cannot start valid UTF-8 — Autobahn's "fail fast"), and the close
//!   frame's code and reason. It keeps at most one control payload (125
//!   bytes) and the UTF-8 validator's state (4 bytes).
//! - [`write_header`] and [`close_frame`] build outgoing frames.
//!
//! Rules that hold throughout: no extension is ever negotiated, so every RSV
//! bit must be 0; no function panics on any input; every error maps to the
//! close code to send ([`WsError::close_code`]). A parser that returned an
//! error is poisoned and keeps returning it: after a protocol error the
//! connection is failed (RFC 6455 §7.1.7), never resumed.
//!
//! The read loop, per connection (`buf[pos..end]` holds unread bytes):
//!
//! ```text
//! loop match parser.parse(&mut buf[pos..end])? {
//!     (used, Parsed::NeedMore)      => { pos += used; break }   // read more
//!     (used, Parsed::Header { fin, opcode, len, .. }) => {
//!         pos += used; msgs.on_header(fin, opcode, len)?; /* forward header */ }
//!     (used, Parsed::Payload { start, n, last }) => {
//!         let piece = &buf[pos + start..pos + start + n]; pos += used;
//!         msgs.on_payload(piece)?;                           /* forward piece */
//!         if last { match msgs.on_frame_end()? { Some(Completed::Ping(p)) => ..., _ => ... } }
//!     }
//! }
//! on Err(e): send e.close_frame(), stop reading, close after the peer's close.
//! ```
//!
//! A frame's payload length is accepted in any of the three encodings, even
//! a non-minimal one (RFC 6455 §5.2 says senders must use the minimal one;
//! rejecting is allowed but buys nothing and Autobahn does not test it).

use std::fmt;

/// The GUID that RFC 6455 §1.3 appends to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Longest close reason that fits a control frame after the 2-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// Longest frame header: 2 bytes, 8 bytes of extended length, 4 of mask.
pub const MAX_HEADER: usize = 14;

/// Close codes this module produces or checks (RFC 6455 §7.4.1).
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away.
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A data type the endpoint cannot accept.
    pub const UNSUPPORTED: u16 = 1003;
    /// Text that is not valid UTF-8 (invalid frame payload data).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A policy was violated.
    pub const POLICY: u16 = 1008;
    /// A message too big to process.
    pub const TOO_BIG: u16 = 1009;
    /// The server met an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// 1013: the server is overloaded; the client may try again later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

// ---------------------------------------------------------------------------
// Handshake keys

pub use crate::encoding::base64_encode;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key +
/// GUID)) (RFC 6455 §4.2.2). Surrounding whitespace of the header value is
/// not part of the key and is trimmed.
pub fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(GUID.as_bytes());
    base64_encode(&sha.digest().bytes())
}

/// Whether a client's `Sec-WebSocket-Key` is base64 of exactly 16 bytes
/// (RFC 6455 §4.1): 22 alphabet characters then `==`, surrounding
/// whitespace trimmed. The 4 unused bits of the last character are not
/// checked (RFC 4648 §3.5 lets a decoder ignore them).
pub fn valid_key(key: &str) -> bool {
    let k = key.trim().as_bytes();
    k.len() == 24
        && k[22..] == *b"=="
        && k[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

// ---------------------------------------------------------------------------
// Errors

/// Why a connection must be failed. Each maps to the close code to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsError {
    /// The peer broke the framing rules (close code 1002). The text says
    /// which rule, for logs and the close reason.
    Protocol(&'static str),
    /// A frame or message over the configured limit (close code 1009).
    TooBig,
    /// A text message or close reason that is not UTF-8 (close code 1007).
    BadUtf8,
    /// The messages every connection is assembling fill the relay's shared
    /// budget (close code 1009).
    OverBudget,
    /// No input buffer is free for this connection now (close code 1013,
    /// Try Again Later).
    Busy,
}

impl WsError {
    /// The close code to send for this error (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            Self::Protocol(_) => close::PROTOCOL_ERROR,
            Self::TooBig => close::TOO_BIG,
            Self::BadUtf8 => close::INVALID_PAYLOAD,
            Self::OverBudget => close::TOO_BIG,
            Self::Busy => close::TRY_AGAIN_LATER,
        }
    }

    /// The close frame (server side, unmasked) that fails the connection
    /// for this error, with the error's text as reason.
    pub fn close_frame(&self) -> Vec<u8> {
        close_frame(self.close_code(), &self.to_string())
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(why) => write!(f, "protocol error: {why}"),
            Self::TooBig => f.write_str("message too big"),
            Self::BadUtf8 => f.write_str("invalid UTF-8 in text"),
            Self::OverBudget => f.write_str("the relay holds as many message bytes as it allows"),
            Self::Busy => {
                f.write_str("the relay is at its limit of open WebSockets; try again later")
            }
        }
    }
}

impl std::error::Error for WsError {}

// ---------------------------------------------------------------------------
// Frames

/// A frame's opcode (RFC 6455 §5.2). Reserved opcodes have no variant: the
/// parser rejects them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The opcode for the low 4 bits of a frame's first byte; `None` for a
    /// reserved value (3–7, 0xB–0xF) or anything above 0xF.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, ping and pong: never fragmented, payload ≤ 125 bytes.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// Which side of the connection the parser reads for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads a client's frames: every frame must be masked.
    Server,
    /// Reads a server's frames: no frame may be masked.
    Client,
}

/// XOR `buf` with the masking key, `offset` being the position of `buf[0]`
/// within the frame's payload (RFC 6455 §5.3). Masking and unmasking are
/// the same operation.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: u64) {
    let r = (offset & 3) as usize;
    let m = [
        mask[r],
        mask[(r + 1) & 3],
        mask[(r + 2) & 3],
        mask[(r + 3) & 3],
    ];
    let wide = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        if let Ok(arr) = <[u8; 8]>::try_from(&*chunk) {
            chunk.copy_from_slice(&(u64::from_ne_bytes(arr) ^ wide).to_ne_bytes());
        }
    }
    // The tail starts at a multiple of 8 past `buf[0]`, so the rotation holds.
    for (b, k) in chunks.into_remainder().iter_mut().zip(m.iter().cycle()) {
        *b ^= k;
    }
}

/// One step of [`FrameParser::parse`].
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A frame header was read (payload follows in `Payload` items). `len`
    /// is the payload length.
    Header {
        /// Final fragment of its message (always true for control frames).
        fin: bool,
        /// The frame's opcode.
        opcode: OpCode,
        /// Payload length in bytes.
        len: u64,
        /// The frame carried a masking key (already checked against the role).
        masked: bool,
    },
    /// `n` payload bytes, already unmasked in place at `input[start..start +
    /// n]` of the slice passed to `parse` (`start` is currently always 0:
    /// the bytes are those just consumed). `last`: this completes the
    /// frame's payload. Every frame ends with exactly one `last` item; for
    /// an empty payload it is `n == 0`, returned without needing input.
    Payload {
        /// Offset of the piece in the input slice.
        start: usize,
        /// Length of the piece.
        n: usize,
        /// The frame's payload is complete.
        last: bool,
    },
    /// Need more input; everything given was consumed (into the header
    /// buffer) or there was nothing to consume.
    NeedMore,
}

#[derive(Debug, Clone, Copy)]
enum ParseState {
    /// Reading a header; `have` bytes of it are in `buf`.
    Header { buf: [u8; MAX_HEADER], have: usize },
    /// Reading a payload: `remaining` bytes left, `offset` bytes already
    /// seen (the position in the mask cycle).
    Payload {
        remaining: u64,
        offset: u64,
        mask: Option<[u8; 4]>,
    },
}

const EMPTY_HEADER: ParseState = ParseState::Header {
    buf: [0; MAX_HEADER],
    have: 0,
};

/// Incremental frame parser. Feed bytes; it yields frame headers and
/// payload pieces without buffering payloads (payloads can be large and are
/// relayed as they come), unmasking in place into the caller's slice.
///
/// Memory: the header being read, at most [`MAX_HEADER`] bytes.
///
/// It checks everything one frame header can show: RSV bits, reserved
/// opcodes, control frames fragmented or over 125 bytes, masking against
/// the role, a 64-bit length with the top bit set, and the per-frame limit.
/// Rules across frames are [`MessageState`]'s.
#[derive(Debug)]
pub struct FrameParser {
    role: Role,
    max_frame: u64,
    state: ParseState,
    failed: Option<WsError>,
}

impl FrameParser {
    /// A parser for frames read in `role`, refusing (1009) any frame whose
    /// payload is longer than `max_frame` bytes.
    pub fn new(role: Role, max_frame: u64) -> Self {
        Self {
            role,
            max_frame,
            state: EMPTY_HEADER,
            failed: None,
        }
    }

    /// Whether the parser sits between frames (no header or payload half
    /// read): a clean place for the stream to end.
    pub fn at_frame_boundary(&self) -> bool {
        matches!(self.state, ParseState::Header { have: 0, .. })
    }

    /// Parse from `input` (mutable so payload is unmasked in place).
    /// Returns the bytes consumed and one item; call again with the rest.
    /// Header bytes split across calls are buffered internally (≤ 14
    /// bytes). After an error every call returns the same error.
    pub fn parse(&mut self, input: &mut [u8]) -> Result<(usize, Parsed), WsError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let r = self.step(input);
        if let Err(e) = r {
            self.failed = Some(e);
        }
        r
    }

    fn step(&mut self, input: &mut [u8]) -> Result<(usize, Parsed), WsError> {
        match &mut self.state {
            ParseState::Payload {
                remaining,
                offset,
                mask,
            } => {
                if *remaining > 0 && input.is_empty() {
                    return Ok((0, Parsed::NeedMore));
                }
                let n = usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
                let piece = input.get_mut(..n).unwrap_or_default();
                if let Some(m) = mask {
                    apply_mask(piece, *m, *offset);
                }
                *remaining -= n as u64;
                *offset += n as u64;
                let last = *remaining == 0;
                if last {
                    self.state = EMPTY_HEADER;
                }
                Ok((n, Parsed::Payload { start: 0, n, last }))
            }
            ParseState::Header { buf, have } => {
                let mut used = 0;
                loop {
                    let want = header_len(&buf[..*have]);
                    if *have == want {
                        break;
                    }
                    let Some(&b) = input.get(used) else {
                        return Ok((used, Parsed::NeedMore));
                    };
                    buf[*have] = b;
                    *have += 1;
                    used += 1;
                    match *have {
                        1 => check_first_byte(b)?,
                        2 => check_second_byte(buf[0], b, self.role)?,
                        _ => {}
                    }
                }
                let Head {
                    fin,
                    opcode,
                    len,
                    mask,
                } = decode_header(&buf[..*have])?;
                if len > self.max_frame {
                    return Err(WsError::TooBig);
                }
                self.state = ParseState::Payload {
                    remaining: len,
                    offset: 0,
                    mask,
                };
                Ok((
                    used,
                    Parsed::Header {
                        fin,
                        opcode,
                        len,
                        masked: mask.is_some(),
                    },
                ))
            }
        }
    }
}

/// Total header length implied by the bytes read so far (2 until the second
/// byte is known).
fn header_len(h: &[u8]) -> usize {
    match h.get(1) {
        None => 2,
        Some(&b1) => {
            let ext = match b1 & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
            2 + ext + mask
        }
    }
}

fn check_first_byte(b0: u8) -> Result<(), WsError> {
    if b0 & 0x70 != 0 {
        return Err(WsError::Protocol("RSV bit set without an extension"));
    }
    let op = OpCode::from_u8(b0 & 0x0f).ok_or(WsError::Protocol("reserved opcode"))?;
    if op.is_control() && b0 & 0x80 == 0 {
        return Err(WsError::Protocol("fragmented control frame"));
    }
    Ok(())
}

fn check_second_byte(b0: u8, b1: u8, role: Role) -> Result<(), WsError> {
    let masked = b1 & 0x80 != 0;
    match (role, masked) {
        (Role::Server, false) => return Err(WsError::Protocol("unmasked client frame")),
        (Role::Client, true) => return Err(WsError::Protocol("masked server frame")),
        _ => {}
    }
    let control = OpCode::from_u8(b0 & 0x0f).is_some_and(OpCode::is_control);
    if control && usize::from(b1 & 0x7f) > MAX_CONTROL_PAYLOAD {
        return Err(WsError::Protocol("control frame payload over 125 bytes"));
    }
    Ok(())
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy)]
struct Head {
    fin: bool,
    opcode: OpCode,
    len: u64,
    mask: Option<[u8; 4]>,
}

/// Decode a complete header (its first two bytes already checked).
fn decode_header(h: &[u8]) -> Result<Head, WsError> {
    let (&b0, rest) = h.split_first().ok_or(WsError::Protocol("short header"))?;
    let (&b1, rest) = rest
        .split_first()
        .ok_or(WsError::Protocol("short header"))?;
    let opcode = OpCode::from_u8(b0 & 0x0f).ok_or(WsError::Protocol("reserved opcode"))?;
    let (len, rest) = match b1 & 0x7f {
        126 => {
            let (l, r) = rest
                .split_at_checked(2)
                .ok_or(WsError::Protocol("short header"))?;
            (u64::from(u16::from_be_bytes([l[0], l[1]])), r)
        }
        127 => {
            let (l, r) = rest
                .split_at_checked(8)
                .ok_or(WsError::Protocol("short header"))?;
            let a = <[u8; 8]>::try_from(l).map_err(|_| WsError::Protocol("short header"))?;
            let len = u64::from_be_bytes(a);
            if len >> 63 != 0 {
                return Err(WsError::Protocol("64-bit length with the top bit set"));
            }
            (len, r)
        }
        n => (u64::from(n), rest),
    };
    let mask = if b1 & 0x80 != 0 {
        Some(<[u8; 4]>::try_from(rest).map_err(|_| WsError::Protocol("short header"))?)
    } else {
        None
    };
    Ok(Head {
        fin: b0 & 0x80 != 0,
        opcode,
        len,
        mask,
    })
}

/// An unmasked (server) frame header written into `h`; returns its
/// length. RSV bits are 0; the length is encoded minimally; a `len` with
/// the top bit set is not representable and is clamped to `2^63 - 1` (no
/// valid frame is that long).
pub fn header(h: &mut [u8; MAX_HEADER], fin: bool, opcode: OpCode, len: u64) -> usize {
    let len = len.min(u64::MAX >> 1);
    h[0] = if fin { 0x80 } else { 0 } | opcode.as_u8();
    if len <= 125 {
        h[1] = len as u8;
        2
    } else if let Ok(l) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&l.to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&len.to_be_bytes());
        10
    }
}

/// Append a frame header to `out`, as [`header`] writes it. Server frames
/// pass `mask: None`; client frames pass their masking key, and the caller
/// then masks the payload with [`apply_mask`] (offset 0).
pub fn write_header(out: &mut Vec<u8>, fin: bool, opcode: OpCode, len: u64, mask: Option<[u8; 4]>) {
    let mut h = [0; MAX_HEADER];
    let mut n = header(&mut h, fin, opcode, len);
    if let Some(m) = mask {
        h[1] |= 0x80;
        h[n..n + 4].copy_from_slice(&m);
        n += 4;
    }
    out.extend_from_slice(&h[..n]);
}

/// A whole unmasked (server) frame: header and payload.
pub fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + MAX_HEADER);
    write_header(&mut out, fin, opcode, payload.len() as u64, None);
    out.extend_from_slice(payload);
    out
}

/// An unmasked (server) close frame with `code` and `reason`, the reason
/// cut on a char boundary to fit the 123 bytes a control frame leaves. The
/// codes that must never be sent (1005, 1006, 1015) give an empty close
/// frame instead: "no code".
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    if matches!(code, 1005 | 1006 | 1015) {
        return frame(true, OpCode::Close, &[]);
    }
    let mut cut = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    frame(true, OpCode::Close, &payload)
}

// ---------------------------------------------------------------------------
// Close payloads

/// Whether `code` may appear in a close frame received from the wire.
///
/// Valid: 1000–1003, 1007–1014 (1012–1014 were registered with IANA after
/// RFC 6455; Autobahn stopped calling them invalid in 2016 and 2018), and
/// 3000–4999 (libraries, applications). Invalid: 0–999, 1004 (reserved),
/// 1005/1006/1015 (must never be sent on the wire), the other unassigned
/// 1016–2999 and everything from 5000.
pub fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Parse a received close frame's payload: `Ok(None)` when empty,
/// `Ok(Some((code, reason)))` when it holds a valid code and a UTF-8
/// reason; otherwise the close code to answer with: 1002 for a 1-byte
/// payload, an invalid code or a payload over 125 bytes, 1007 for a reason
/// that is not UTF-8.
pub fn parse_close(payload: &[u8]) -> Result<Option<(u16, &str)>, u16> {
    match payload {
        [] => Ok(None),
        _ if payload.len() > MAX_CONTROL_PAYLOAD => Err(close::PROTOCOL_ERROR),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !valid_close_code(code) {
                return Err(close::PROTOCOL_ERROR);
            }
            let reason = std::str::from_utf8(reason).map_err(|_| close::INVALID_PAYLOAD)?;
            Ok(Some((code, reason)))
        }
        [_] => Err(close::PROTOCOL_ERROR),
    }
}

// ---------------------------------------------------------------------------
// UTF-8

/// Incremental UTF-8 validator: feed a message in pieces of any size; it
/// fails on the first byte that cannot continue valid UTF-8 (so an invalid
/// sequence is caught as soon as it is seen, not at the message's end).
/// State: the bytes still owed by a sequence split across pieces and the
/// range the next one must fall in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Validator {
    /// Continuation bytes still owed by the sequence in progress (0–3).
    need: u8,
    /// Inclusive range the next continuation byte must fall in.
    lo: u8,
    hi: u8,
}

impl Default for Utf8Validator {
    fn default() -> Self {
        Self::new()
    }
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self {
            need: 0,
            lo: 0x80,
            hi: 0xBF,
        }
    }

    /// Back to the start of a message.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Check the next piece of the message. `Err` as soon as the bytes so
    /// far are not a prefix of any valid UTF-8 string; the validator then
    /// stays failed only in the sense that the message is bad (reset it for
    /// the next one).
    #[allow(clippy::result_unit_err)]
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ()> {
        // Finish a sequence split across pieces byte by byte.
        while self.need > 0 {
            let Some((&b, rest)) = bytes.split_first() else {
                return Ok(());
            };
            self.byte(b)?;
            bytes = rest;
        }
        // Then the bulk through std's fast validator; only an incomplete
        // sequence at the very end is carried over.
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(()),
            Err(e) => {
                for &b in bytes.get(e.valid_up_to()..).unwrap_or_default() {
                    self.byte(b)?;
                }
                Ok(())
            }
        }
    }

    /// The message ended: `Err` when a sequence is left incomplete.
    #[allow(clippy::result_unit_err)]
    pub fn finish(&self) -> Result<(), ()> {
        if self.need == 0 {
            Ok(())
        } else {
            Err(())
        }
    }

    /// One byte through the state machine (Unicode Table 3-7, well-formed
    /// byte sequences).
    fn byte(&mut self, b: u8) -> Result<(), ()> {
        if self.need > 0 {
            if b < self.lo || b > self.hi {
                return Err(());
            }
            self.need -= 1;
            self.lo = 0x80;
            self.hi = 0xBF;
            return Ok(());
        }
        let (need, lo, hi) = match b {
            0x00..=0x7F => return Ok(()),
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => return Err(()),
        };
        self.need = need;
        self.lo = lo;
        self.hi = hi;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Messages

/// The payload of a control frame, kept whole (≤ 125 bytes) because it is
/// answered (ping → pong) or parsed (close) only once complete.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ControlPayload {
    buf: [u8; MAX_CONTROL_PAYLOAD],
    len: u8,
}

impl ControlPayload {
    const EMPTY: Self = Self {
        buf: [0; MAX_CONTROL_PAYLOAD],
        len: 0,
    };

    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Append; `false` (nothing appended) when it would pass 125 bytes.
    fn push(&mut self, bytes: &[u8]) -> bool {
        let at = usize::from(self.len);
        match self.buf.get_mut(at..at + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len() as u8;
                true
            }
            None => false,
        }
    }
}

impl fmt::Debug for ControlPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ControlPayload")
            .field(&self.as_bytes())
            .finish()
    }
}

/// What a completed frame finished, as told by [`MessageState::on_frame_end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    /// The final frame of a data message: its kind and total payload length.
    Message {
        /// A text message (valid UTF-8, checked); else binary.
        text: bool,
        /// Sum of its fragments' payload lengths.
        len: u64,
    },
    /// A ping; answer with a pong carrying the same payload.
    Ping(ControlPayload),
    /// A pong (unsolicited ones are allowed and ignored).
    Pong(ControlPayload),
    /// A valid close. `code` is `None` for an empty payload; `payload` is the
    /// raw close payload (code and UTF-8 reason), ready to echo.
    Close {
        /// The status code, if any.
        code: Option<u16>,
        /// The whole close payload.
        payload: ControlPayload,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// No frame header seen since the last frame end.
    None,
    /// A data frame (text, binary or continuation) with its FIN bit.
    Data { fin: bool },
    /// A control frame of this opcode.
    Control(OpCode),
}

/// Message-level rules across frames, fed from [`FrameParser`]'s items:
/// call [`on_header`](Self::on_header) for each `Header`,
/// [`on_payload`](Self::on_payload) with each unmasked piece, and
/// [`on_frame_end`](Self::on_frame_end) after the `last` piece.
///
/// It enforces: a continuation needs a message in progress; a new text or
/// binary frame may not start inside a fragmented message (control frames
/// may be interleaved); the total message size limit (1009); text is UTF-8,
/// checked as it comes (1007); control frames are final and ≤ 125 bytes;
/// the close payload ([`parse_close`]).
///
/// Memory: one control payload (125 bytes) and a [`Utf8Validator`].
/// After any error the connection is failed; the state is then not
/// meaningful and must not be fed further.
#[derive(Debug)]
pub struct MessageState {
    max_message: u64,
    /// `Some(is_text)` while a data message is open.
    message: Option<bool>,
    /// Payload bytes of the open message, announced by headers so far.
    size: u64,
    utf8: Utf8Validator,
    frame: Frame,
    control: ControlPayload,
}

impl MessageState {
    /// Rules for a stream whose messages may total at most `max_message`
    /// payload bytes (the sum of their fragments).
    pub fn new(max_message: u64) -> Self {
        Self {
            max_message,
            message: None,
            size: 0,
            utf8: Utf8Validator::new(),
            frame: Frame::None,
            control: ControlPayload::EMPTY,
        }
    }

    /// Whether a fragmented data message is open (its final frame not yet
    /// complete).
    pub fn in_message(&self) -> bool {
        self.message.is_some()
    }

    /// A frame header. The size limit is checked here, on the announced
    /// length, so an oversized message fails before its payload is read.
    pub fn on_header(&mut self, fin: bool, opcode: OpCode, len: u64) -> Result<(), WsError> {
        if opcode.is_control() {
            if !fin {
                return Err(WsError::Protocol("fragmented control frame"));
            }
            if len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(WsError::Protocol("control frame payload over 125 bytes"));
            }
            self.frame = Frame::Control(opcode);
            self.control = ControlPayload::EMPTY;
            return Ok(());
        }
        match (opcode, self.message) {
            (OpCode::Continuation, None) => {
                return Err(WsError::Protocol("continuation without a message"));
            }
            (OpCode::Continuation, Some(_)) => {}
            (_, Some(_)) => {
                return Err(WsError::Protocol("new message inside a fragmented one"));
            }
            (op, None) => {
                self.message = Some(op == OpCode::Text);
                self.size = 0;
                self.utf8.reset();
            }
        }
        self.size = self.size.saturating_add(len);
        if self.size > self.max_message {
            return Err(WsError::TooBig);
        }
        self.frame = Frame::Data { fin };
        Ok(())
    }

    /// A piece of the current frame's payload, already unmasked.
    pub fn on_payload(&mut self, bytes: &[u8]) -> Result<(), WsError> {
        match self.frame {
            Frame::None => Err(WsError::Protocol("payload without a frame")),
            Frame::Control(_) => {
                if self.control.push(bytes) {
                    Ok(())
                } else {
                    Err(WsError::Protocol("control frame payload over 125 bytes"))
                }
            }
            Frame::Data { .. } => {
                if self.message == Some(true) {
                    self.utf8.feed(bytes).map_err(|()| WsError::BadUtf8)?;
                }
                Ok(())
            }
        }
    }

    /// The current frame's payload is complete. Returns what completed: a
    /// message (on its final frame), or a control frame; `None` for a
    /// non-final data frame.
    pub fn on_frame_end(&mut self) -> Result<Option<Completed>, WsError> {
        let frame = std::mem::replace(&mut self.frame, Frame::None);
        match frame {
            Frame::None => Err(WsError::Protocol("frame end without a frame")),
            Frame::Data { fin: false } => Ok(None),
            Frame::Data { fin: true } => {
                let text = self.message.take() == Some(true);
                if text {
                    self.utf8.finish().map_err(|()| WsError::BadUtf8)?;
                }
                Ok(Some(Completed::Message {
                    text,
                    len: self.size,
                }))
            }
            Frame::Control(op) => {
                let payload = self.control;
                Ok(Some(match op {
                    OpCode::Ping => Completed::Ping(payload),
                    OpCode::Pong => Completed::Pong(payload),
                    _ => match parse_close(payload.as_bytes()) {
                        Ok(parsed) => Completed::Close {
                            code: parsed.map(|(c, _)| c),
                            payload,
                        },
                        Err(close::INVALID_PAYLOAD) => return Err(WsError::BadUtf8),
                        Err(_) => return Err(WsError::Protocol("invalid close payload")),
                    },
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded xorshift64*; tests print their seed so a failure replays.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Self {
            println!("seed = {seed:#x}");
            Self(seed | 1)
        }
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
        fn byte(&mut self) -> u8 {
            self.next() as u8
        }
    }

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client (masked) frame.
    fn cframe(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out, fin, op, payload.len() as u64, Some(MASK));
        let at = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[at..], MASK, 0);
        out
    }

    /// A raw masked frame with an arbitrary first byte (RSV bits, opcodes).
    fn raw(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![b0, 0x80 | payload.len() as u8];
        out.extend_from_slice(&MASK);
        let at = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[at..], MASK, 0);
        out
    }

    #[derive(Debug, PartialEq)]
    enum Ev {
        Header(bool, OpCode, u64),
        Payload(Vec<u8>),
        End(Option<Completed>),
    }

    /// Feed `bytes` in pieces ending at `cuts`, driving parser and message
    /// rules the way the server will. Payload pieces of one frame are merged
    /// so that any split gives the same events.
    fn run(role: Role, max: u64, bytes: &[u8], cuts: &[usize]) -> (Vec<Ev>, Option<WsError>) {
        let mut parser = FrameParser::new(role, max);
        let mut msgs = MessageState::new(max);
        let mut evs = Vec::new();
        let mut from = 0;
        let ends = cuts.iter().copied().chain([bytes.len()]);
        for end in ends {
            let end = end.clamp(from, bytes.len());
            let mut piece = bytes[from..end].to_vec();
            from = end;
            let mut pos = 0;
            loop {
                let (used, item) = match parser.parse(&mut piece[pos..]) {
                    Ok(r) => r,
                    Err(e) => return (evs, Some(e)),
                };
                pos += used;
                assert!(pos <= piece.len());
                let r = match item {
                    Parsed::NeedMore => {
                        assert_eq!(pos, piece.len(), "NeedMore left input unconsumed");
                        break;
                    }
                    Parsed::Header {
                        fin,
                        opcode,
                        len,
                        masked,
                    } => {
                        assert_eq!(masked, role == Role::Server);
                        evs.push(Ev::Header(fin, opcode, len));
                        msgs.on_header(fin, opcode, len)
                    }
                    Parsed::Payload { start, n, last } => {
                        assert_eq!(start, 0);
                        let data = &piece[pos - used + start..pos - used + start + n];
                        match evs.last_mut() {
                            Some(Ev::Payload(p)) => p.extend_from_slice(data),
                            _ => evs.push(Ev::Payload(data.to_vec())),
                        }
                        let mut r = msgs.on_payload(data);
                        if r.is_ok() && last {
                            match msgs.on_frame_end() {
                                Ok(c) => evs.push(Ev::End(c)),
                                Err(e) => r = Err(e),
                            }
                        }
                        r
                    }
                };
                if let Err(e) = r {
                    return (evs, Some(e));
                }
            }
        }
        (evs, None)
    }

    fn run_whole(bytes: &[u8]) -> (Vec<Ev>, Option<WsError>) {
        run(Role::Server, 1 << 20, bytes, &[])
    }

    fn code_of(bytes: &[u8]) -> Option<u16> {
        run_whole(bytes).1.map(|e| e.close_code())
    }

    fn ctl(p: &[u8]) -> ControlPayload {
        let mut c = ControlPayload::EMPTY;
        assert!(c.push(p));
        c
    }

    /// RFC 6455 §1.3 and §4.2.2 give this pair (the value checked against
    /// Python's hashlib + base64 too).
    #[test]
    fn accept_key_matches_rfc6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            accept_key(" dGhlIHNhbXBsZSBub25jZQ==\t"),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn valid_key_table() {
        for (key, ok) in [
            ("dGhlIHNhbXBsZSBub25jZQ==", true),
            ("  dGhlIHNhbXBsZSBub25jZQ== ", true),
            ("AAAAAAAAAAAAAAAAAAAAAA==", true),
            ("+/+/+/+/+/+/+/+/+/+/+w==", true),
            ("", false),
            ("dGhlIHNhbXBsZSBub25jZQ=", false),
            ("dGhlIHNhbXBsZSBub25jZQ", false),
            ("dGhlIHNhbXBsZSBub25jZQ===", false),
            ("dGhlIHNhbXBsZSBub25j", false),      // 15 bytes
            ("dGhlIHNhbXBsZSBub25jZXg=", false),  // 17 bytes
            ("dGhlIHNhbXBsZSBub25jZ!==", false),  // bad character
            ("dGhlIHNhbXBs ZSBub25jZQ==", false), // inner space
            ("dGhlIHNhbXBsZSBub25jZQ-_", false),  // url alphabet
            ("ééééééééééé==", false),             // non-ASCII
            ("dGhlIHNhbXBsZSBub25jZQ==dGhl", false),
        ] {
            assert_eq!(valid_key(key), ok, "{key:?}");
        }
        let mut rng = Rng::new(0x5eed_0001);
        for _ in 0..200 {
            let k: Vec<u8> = (0..16).map(|_| rng.byte()).collect();
            assert!(valid_key(&base64_encode(&k)));
        }
    }

    #[test]
    fn apply_mask_matches_bytewise_at_any_offset() {
        let mut rng = Rng::new(0x5eed_0002);
        for _ in 0..500 {
            let len = rng.below(40);
            let offset = rng.next() % 1000;
            let mask = [rng.byte(), rng.byte(), rng.byte(), rng.byte()];
            let orig: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            let mut fast = orig.clone();
            apply_mask(&mut fast, mask, offset);
            let slow: Vec<u8> = orig
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[((offset + i as u64) % 4) as usize])
                .collect();
            assert_eq!(fast, slow, "len {len} offset {offset}");
        }
    }

    fn sample_stream() -> Vec<u8> {
        let big: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        [
            cframe(false, OpCode::Text, b"Hel"),
            cframe(true, OpCode::Ping, b"p"),
            cframe(false, OpCode::Continuation, b""),
            cframe(true, OpCode::Continuation, "lo \u{e9}\u{1f600}".as_bytes()),
            cframe(true, OpCode::Binary, &big),
            cframe(true, OpCode::Pong, b""),
            cframe(true, OpCode::Text, b""),
            close_payload_frame(&[0x03, 0xe8, b'b', b'y', b'e']),
        ]
        .concat()
    }

    fn close_payload_frame(p: &[u8]) -> Vec<u8> {
        cframe(true, OpCode::Close, p)
    }

    #[test]
    fn sample_stream_yields_expected_events() {
        let (evs, err) = run_whole(&sample_stream());
        assert_eq!(err, None);
        let big: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let tail = "lo \u{e9}\u{1f600}".as_bytes();
        let want = vec![
            Ev::Header(false, OpCode::Text, 3),
            Ev::Payload(b"Hel".to_vec()),
            Ev::End(None),
            Ev::Header(true, OpCode::Ping, 1),
            Ev::Payload(b"p".to_vec()),
            Ev::End(Some(Completed::Ping(ctl(b"p")))),
            Ev::Header(false, OpCode::Continuation, 0),
            Ev::Payload(vec![]),
            Ev::End(None),
            Ev::Header(true, OpCode::Continuation, tail.len() as u64),
            Ev::Payload(tail.to_vec()),
            Ev::End(Some(Completed::Message {
                text: true,
                len: 3 + tail.len() as u64,
            })),
            Ev::Header(true, OpCode::Binary, 300),
            Ev::Payload(big),
            Ev::End(Some(Completed::Message {
                text: false,
                len: 300,
            })),
            Ev::Header(true, OpCode::Pong, 0),
            Ev::Payload(vec![]),
            Ev::End(Some(Completed::Pong(ctl(b"")))),
            Ev::Header(true, OpCode::Text, 0),
            Ev::Payload(vec![]),
            Ev::End(Some(Completed::Message { text: true, len: 0 })),
            Ev::Header(true, OpCode::Close, 5),
            Ev::Payload(b"\x03\xe8bye".to_vec()),
            Ev::End(Some(Completed::Close {
                code: Some(1000),
                payload: ctl(b"\x03\xe8bye"),
            })),
        ];
        assert_eq!(evs, want);
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let stream = sample_stream();
        let whole = run_whole(&stream);
        for i in 0..=stream.len() {
            assert_eq!(
                run(Role::Server, 1 << 20, &stream, &[i]),
                whole,
                "cut at {i}"
            );
        }
        // Byte by byte.
        let all: Vec<usize> = (0..stream.len()).collect();
        assert_eq!(run(Role::Server, 1 << 20, &stream, &all), whole);
        // Every pair of cuts over the headers-dense start.
        for i in 0..40 {
            for j in i..60 {
                assert_eq!(run(Role::Server, 1 << 20, &stream, &[i, j]), whole);
            }
        }
        // Random pieces.
        let mut rng = Rng::new(0x5eed_0003);
        for _ in 0..300 {
            let mut cuts: Vec<usize> = (0..rng.below(20))
                .map(|_| rng.below(stream.len()))
                .collect();
            cuts.sort_unstable();
            assert_eq!(
                run(Role::Server, 1 << 20, &stream, &cuts),
                whole,
                "{cuts:?}"
            );
        }
    }

    #[test]
    fn length_encodings_7_16_and_64_bit() {
        for (len, header_len) in [
            (0u64, 2usize),
            (1, 2),
            (125, 2),
            (126, 4),
            (127, 4),
            (65535, 4),
            (65536, 10),
            (70000, 10),
            (1 << 40, 10),
            (u64::MAX >> 1, 10),
        ] {
            for mask in [None, Some(MASK)] {
                let mut h = Vec::new();
                write_header(&mut h, true, OpCode::Binary, len, mask);
                let want_len = header_len + if mask.is_some() { 4 } else { 0 };
                assert_eq!(h.len(), want_len, "len {len}");
                let role = if mask.is_some() {
                    Role::Server
                } else {
                    Role::Client
                };
                let mut p = FrameParser::new(role, u64::MAX);
                let got = p.parse(&mut h.clone()).unwrap();
                assert_eq!(
                    got,
                    (
                        want_len,
                        Parsed::Header {
                            fin: true,
                            opcode: OpCode::Binary,
                            len,
                            masked: mask.is_some()
                        }
                    )
                );
            }
        }
        // Real payloads through the 16- and 64-bit forms.
        for len in [126usize, 65535, 65536, 100_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let (evs, err) = run_whole(&cframe(true, OpCode::Binary, &payload));
            assert_eq!(err, None);
            assert_eq!(evs[1], Ev::Payload(payload));
        }
        // A non-minimal length (126 form for 5 bytes) is accepted.
        let mut f = vec![0x82, 0x80 | 126, 0, 5];
        f.extend_from_slice(&MASK);
        let at = f.len();
        f.extend_from_slice(b"hello");
        apply_mask(&mut f[at..], MASK, 0);
        let (evs, err) = run_whole(&f);
        assert_eq!(err, None);
        assert_eq!(evs[1], Ev::Payload(b"hello".to_vec()));
    }

    #[test]
    fn protocol_violations_map_to_close_codes() {
        let mut huge_len = vec![0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1];
        huge_len.extend_from_slice(&MASK);
        let mut ping_126 = vec![0x89, 0x80 | 126, 0, 126];
        ping_126.extend_from_slice(&MASK);
        ping_126.extend_from_slice(&[0; 126]);
        let mut close_127 = vec![0x88, 0x80 | 127];
        close_127.extend_from_slice(&[0; 8]);
        let mut too_long = Vec::new();
        write_header(
            &mut too_long,
            true,
            OpCode::Binary,
            (1 << 20) + 1,
            Some(MASK),
        );
        let half = vec![0u8; 600 * 1024];
        let text = |fin, p: &[u8]| cframe(fin, OpCode::Text, p);
        let cont = |fin, p: &[u8]| cframe(fin, OpCode::Continuation, p);
        let cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
            ("valid text", text(true, b"ok"), None),
            ("rsv1", raw(0x80 | 0x40 | 1, b"x"), Some(1002)),
            ("rsv2", raw(0x80 | 0x20 | 1, b"x"), Some(1002)),
            ("rsv3", raw(0x80 | 0x10 | 1, b"x"), Some(1002)),
            ("rsv on ping", raw(0x80 | 0x40 | 9, b"x"), Some(1002)),
            ("opcode 3", raw(0x83, b""), Some(1002)),
            ("opcode 4", raw(0x84, b""), Some(1002)),
            ("opcode 5", raw(0x85, b""), Some(1002)),
            ("opcode 6", raw(0x86, b""), Some(1002)),
            ("opcode 7", raw(0x87, b""), Some(1002)),
            ("opcode B", raw(0x8B, b""), Some(1002)),
            ("opcode C", raw(0x8C, b""), Some(1002)),
            ("opcode D", raw(0x8D, b""), Some(1002)),
            ("opcode E", raw(0x8E, b""), Some(1002)),
            ("opcode F", raw(0x8F, b""), Some(1002)),
            ("fragmented ping", raw(0x09, b"x"), Some(1002)),
            ("fragmented pong", raw(0x0A, b"x"), Some(1002)),
            ("fragmented close", raw(0x08, b""), Some(1002)),
            ("ping of 126 bytes", ping_126, Some(1002)),
            ("close with 64-bit length", close_127, Some(1002)),
            (
                "ping of 125 bytes",
                cframe(true, OpCode::Ping, &[b'a'; 125]),
                None,
            ),
            ("continuation first", cont(true, b"x"), Some(1002)),
            (
                "continuation after a finished message",
                [text(true, b"a"), cont(true, b"b")].concat(),
                Some(1002),
            ),
            (
                "text inside text",
                [text(false, b"a"), text(true, b"b")].concat(),
                Some(1002),
            ),
            (
                "binary inside text",
                [text(false, b"a"), cframe(true, OpCode::Binary, b"b")].concat(),
                Some(1002),
            ),
            (
                "ping inside text",
                [
                    text(false, b"a"),
                    cframe(true, OpCode::Ping, b"b"),
                    cont(true, b"c"),
                ]
                .concat(),
                None,
            ),
            (
                "close inside text",
                [text(false, b"a"), cframe(true, OpCode::Close, b"")].concat(),
                None,
            ),
            ("unmasked client frame", vec![0x81, 0x01, b'x'], Some(1002)),
            ("64-bit length top bit", huge_len, Some(1002)),
            ("frame over max_frame", too_long, Some(1009)),
            (
                "message over the limit in fragments",
                [cframe(false, OpCode::Binary, &half), cont(true, &half)].concat(),
                Some(1009),
            ),
            (
                "message at the limit",
                cframe(true, OpCode::Binary, &vec![0; 1 << 20]),
                None,
            ),
            ("bad UTF-8", text(true, b"a\xffb"), Some(1007)),
            ("surrogate", text(true, b"\xed\xa0\x80"), Some(1007)),
            ("overlong", text(true, b"\xc0\xaf"), Some(1007)),
            (
                "truncated at message end",
                text(true, b"a\xe2\x82"),
                Some(1007),
            ),
            (
                "split char across fragments",
                [
                    text(false, b"a\xe2"),
                    cont(false, b"\x82"),
                    cont(true, b"\xac"),
                ]
                .concat(),
                None,
            ),
            (
                "truncated across fragments",
                [text(false, b"a\xe2"), cont(true, b"\x82")].concat(),
                Some(1007),
            ),
            (
                "binary is not UTF-8 checked",
                cframe(true, OpCode::Binary, b"\xff"),
                None,
            ),
            ("close empty", cframe(true, OpCode::Close, b""), None),
            (
                "close 1 byte",
                cframe(true, OpCode::Close, b"\x03"),
                Some(1002),
            ),
            ("close 1000", cframe(true, OpCode::Close, b"\x03\xe8"), None),
            (
                "close 999",
                cframe(true, OpCode::Close, b"\x03\xe7"),
                Some(1002),
            ),
            (
                "close 1005",
                cframe(true, OpCode::Close, b"\x03\xed"),
                Some(1002),
            ),
            (
                "close 5000",
                cframe(true, OpCode::Close, b"\x13\x88"),
                Some(1002),
            ),
            (
                "close bad reason",
                cframe(true, OpCode::Close, b"\x03\xe8\xce\xba\xed\xa0\x80"),
                Some(1007),
            ),
            (
                "close reason 123 bytes",
                cframe(
                    true,
                    OpCode::Close,
                    &[&[0x03, 0xe8][..], &[b'r'; 123]].concat(),
                ),
                None,
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(code_of(&bytes), want, "{name}");
        }
    }

    #[test]
    fn invalid_utf8_fails_before_the_final_fragment() {
        // Autobahn 6.4.1: the second fragment holds 0xF4 0x90, impossible at 0x90.
        let stream = [
            cframe(
                false,
                OpCode::Text,
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
            ),
            cframe(false, OpCode::Continuation, b"\xf4\x90\x80\x80"),
        ]
        .concat();
        assert_eq!(run_whole(&stream).1, Some(WsError::BadUtf8));
        // And within one frame, with the piece holding the bad byte: 0xF4
        // alone is still fine, 0x90 after it is not.
        let f = cframe(false, OpCode::Text, b"\xf4\x90zzzz");
        let mut p = FrameParser::new(Role::Server, 100);
        let mut m = MessageState::new(100);
        let mut buf = f.clone();
        let (used, h) = p.parse(&mut buf).unwrap();
        let Parsed::Header {
            fin, opcode, len, ..
        } = h
        else {
            panic!("{h:?}")
        };
        m.on_header(fin, opcode, len).unwrap();
        let (n, item) = p.parse(&mut buf[used..used + 1]).unwrap();
        assert_eq!(
            item,
            Parsed::Payload {
                start: 0,
                n: 1,
                last: false
            }
        );
        assert_eq!(m.on_payload(&buf[used..used + n]), Ok(()));
        let (n, item) = p.parse(&mut buf[used + 1..used + 2]).unwrap();
        assert_eq!(
            item,
            Parsed::Payload {
                start: 0,
                n: 1,
                last: false
            }
        );
        assert_eq!(
            m.on_payload(&buf[used + 1..used + 1 + n]),
            Err(WsError::BadUtf8)
        );
    }

    #[test]
    fn client_role_rejects_masked_frames() {
        let server_frame = frame(true, OpCode::Text, b"hi");
        let (evs, err) = run(Role::Client, 100, &server_frame, &[]);
        assert_eq!(err, None);
        assert_eq!(evs[1], Ev::Payload(b"hi".to_vec()));
        let (_, err) = run(Role::Client, 100, &cframe(true, OpCode::Text, b"hi"), &[]);
        assert_eq!(err.map(|e| e.close_code()), Some(1002));
    }

    #[test]
    fn parser_stays_failed_after_an_error() {
        let mut p = FrameParser::new(Role::Server, 100);
        let e = p.parse(&mut [0xC1, 0x80]).unwrap_err();
        assert_eq!(e.close_code(), 1002);
        assert_eq!(p.parse(&mut cframe(true, OpCode::Text, b"ok")), Err(e));
    }

    #[test]
    fn reserved_bits_fail_on_the_first_byte() {
        let mut p = FrameParser::new(Role::Server, 100);
        assert!(p.parse(&mut [0x93]).is_err());
        let mut p = FrameParser::new(Role::Server, 100);
        assert_eq!(p.parse(&mut [0x81]), Ok((1, Parsed::NeedMore)));
        assert!(!p.at_frame_boundary());
    }

    #[test]
    fn close_code_table() {
        for (code, ok) in [
            (0u16, false),
            (999, false),
            (1000, true),
            (1001, true),
            (1002, true),
            (1003, true),
            (1004, false),
            (1005, false),
            (1006, false),
            (1007, true),
            (1008, true),
            (1009, true),
            (1010, true),
            (1011, true),
            (1012, true),
            (1013, true),
            (1014, true),
            (1015, false),
            (1016, false),
            (1100, false),
            (2000, false),
            (2999, false),
            (3000, true),
            (3999, true),
            (4000, true),
            (4999, true),
            (5000, false),
            (65535, false),
        ] {
            assert_eq!(valid_close_code(code), ok, "{code}");
        }
    }

    #[test]
    fn parse_close_table() {
        let long = [&[0x03, 0xe8][..], &[b'r'; 124]].concat();
        for (payload, want) in [
            (&b""[..], Ok(None)),
            (b"\x03", Err(1002)),
            (b"\x03\xe8", Ok(Some((1000, "")))),
            (b"\x0f\xa0hi", Ok(Some((4000, "hi")))),
            (b"\x03\xe8\xce\xba", Ok(Some((1000, "\u{3ba}")))),
            (b"\x03\xe8\xce", Err(1007)),
            (b"\x03\xec\xff", Err(1002)), // the code is judged first
            (b"\x00\x00", Err(1002)),
            (&long, Err(1002)),
        ] {
            assert_eq!(parse_close(payload), want, "{payload:?}");
        }
    }

    #[test]
    fn close_frame_truncates_on_a_char_boundary() {
        let f = close_frame(1000, "bye");
        assert_eq!(f, b"\x88\x05\x03\xe8bye");
        // 122 ASCII bytes then a 2-byte char: the char does not fit.
        let reason = format!("{}\u{e9}", "a".repeat(122));
        let f = close_frame(1001, &reason);
        assert_eq!(f[1] as usize, 2 + 122);
        assert_eq!(parse_close(&f[2..]), Ok(Some((1001, &reason[..122]))));
        let f = close_frame(1002, &"\u{1f600}".repeat(40));
        assert!(f.len() - 2 <= MAX_CONTROL_PAYLOAD);
        assert!(parse_close(&f[2..]).is_ok());
        assert_eq!(close_frame(1005, "x"), b"\x88\x00");
        // An error's own close frame parses back to its code.
        for e in [WsError::Protocol("x"), WsError::TooBig, WsError::BadUtf8] {
            let f = e.close_frame();
            assert_eq!(parse_close(&f[2..]).unwrap().unwrap().0, e.close_code());
        }
    }

    /// Random bytes that are often almost UTF-8: encoded chars of every
    /// length, with now and then a random byte or a cut sequence.
    fn utf8ish(rng: &mut Rng) -> Vec<u8> {
        let mut v = Vec::new();
        for _ in 0..rng.below(24) {
            match rng.below(10) {
                0 => v.push(rng.byte()),
                1 => v.push(0x80 | rng.byte() & 0x3f),
                2 => {
                    let c = char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('x');
                    let mut b = [0; 4];
                    let s = c.encode_utf8(&mut b).len();
                    v.extend_from_slice(&b[..rng.below(s).max(1)]);
                }
                3 => v.extend_from_slice(&[0xed, 0xa0 | rng.byte() & 0x1f, 0x80]),
                4 => v.extend_from_slice(&[0xf4, 0x80 | rng.byte() & 0x3f, 0x80, 0x80]),
                5 => v.extend_from_slice(&[0xe0, 0x80 | rng.byte() & 0x3f, 0x80]),
                _ => {
                    let c = char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('y');
                    let mut b = [0; 4];
                    v.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        v
    }

    #[test]
    fn utf8_validator_agrees_with_std_in_random_pieces() {
        let mut rng = Rng::new(0x5eed_0004);
        let (mut good, mut bad) = (0, 0);
        for _ in 0..20_000 {
            let s = utf8ish(&mut rng);
            let mut v = Utf8Validator::new();
            let mut rest = &s[..];
            let mut ok = true;
            while !rest.is_empty() && ok {
                let (piece, r) = rest.split_at(1 + rng.below(rest.len()).min(rng.below(6)));
                ok = v.feed(piece).is_ok();
                rest = r;
            }
            let ok = ok && v.finish().is_ok();
            let want = std::str::from_utf8(&s).is_ok();
            assert_eq!(ok, want, "{s:x?}");
            if want {
                good += 1;
            } else {
                bad += 1;
            }
        }
        assert!(good > 1000 && bad > 1000, "{good} {bad}");
    }

    /// Index of the first byte after which `s` is no longer a prefix of any
    /// valid UTF-8 string, per std; `None` if it is one.
    fn first_impossible_byte(s: &[u8]) -> Option<usize> {
        let e = std::str::from_utf8(s).err()?;
        let at = e.valid_up_to();
        let n = e.error_len()?;
        // std reports the maximal valid prefix of the bad sequence; the byte
        // after it is the culprit, except when the lead byte itself can never
        // start a sequence.
        let lead_ok = matches!(s[at], 0xC2..=0xF4);
        Some(if lead_ok { at + n } else { at })
    }

    #[test]
    fn utf8_validator_fails_at_the_first_impossible_byte() {
        for (s, at) in [
            (&b"\xff"[..], Some(0)),
            (b"ab\xc0\xaf", Some(2)),
            (b"\xe0\x80", Some(1)),
            (b"\xed\xa0\x80", Some(1)),
            (b"\xf4\x90\x80\x80", Some(1)),
            (b"\xf0\x80", Some(1)),
            (b"\xf0\x90\x80A", Some(3)),
            (
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90",
                Some(12),
            ),
            (b"\xe2\x82", None),
            (b"\xe2\x82\xac", None),
        ] {
            assert_eq!(first_impossible_byte(s), at, "std on {s:x?}");
        }
        let mut rng = Rng::new(0x5eed_0005);
        for _ in 0..20_000 {
            let s = utf8ish(&mut rng);
            let mut v = Utf8Validator::new();
            let failed_at = s.iter().position(|b| v.feed(&[*b]).is_err());
            let want = first_impossible_byte(&s);
            assert_eq!(failed_at, want, "{s:x?}");
            if want.is_none() {
                assert_eq!(
                    v.finish().is_ok(),
                    std::str::from_utf8(&s).is_ok(),
                    "{s:x?}"
                );
            }
            // Fed whole (bulk path), the verdict is the same.
            let mut w = Utf8Validator::new();
            let whole = w.feed(&s).is_ok() && w.finish().is_ok();
            assert_eq!(whole, std::str::from_utf8(&s).is_ok());
            // Fed as prefix + rest, the error comes with the piece holding the culprit.
            if let Some(at) = want {
                let cut = rng.below(s.len() + 1);
                let mut w = Utf8Validator::new();
                let first = w.feed(&s[..cut]);
                assert_eq!(first.is_err(), at < cut, "{s:x?} cut {cut}");
                if first.is_ok() {
                    assert!(w.feed(&s[cut..]).is_err());
                }
            }
        }
    }

    #[test]
    fn parser_never_panics_on_random_input() {
        let mut rng = Rng::new(0x5eed_0006);
        let valid = sample_stream();
        for round in 0..20_000 {
            let mut bytes = if round % 2 == 0 {
                (0..rng.below(64)).map(|_| rng.byte()).collect::<Vec<u8>>()
            } else {
                let mut v = valid.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(v.len());
                    v[i] = rng.byte();
                }
                v.truncate(rng.below(v.len() + 1));
                v
            };
            if rng.below(4) == 0 {
                // Mostly well-formed headers with random lengths.
                bytes.splice(0..0, [rng.byte() & 0x8f, 0x80 | rng.byte()]);
            }
            let role = if rng.below(3) == 0 {
                Role::Client
            } else {
                Role::Server
            };
            let max = [0u64, 1, 10, 125, 1 << 20][rng.below(5)];
            let mut cuts: Vec<usize> = (0..rng.below(6))
                .map(|_| rng.below(bytes.len() + 1))
                .collect();
            cuts.sort_unstable();
            let _ = run(role, max, &bytes, &cuts);
        }
        // The message rules on their own, called in any order.
        for _ in 0..20_000 {
            let mut m = MessageState::new(rng.next() % 300);
            for _ in 0..8 {
                let op = [
                    OpCode::Continuation,
                    OpCode::Text,
                    OpCode::Binary,
                    OpCode::Close,
                    OpCode::Ping,
                    OpCode::Pong,
                ][rng.below(6)];
                let junk: Vec<u8> = (0..rng.below(200)).map(|_| rng.byte()).collect();
                let _ = match rng.below(3) {
                    0 => m.on_header(rng.below(2) == 0, op, rng.next() >> rng.below(64)),
                    1 => m.on_payload(&junk),
                    _ => m.on_frame_end().map(|_| ()),
                };
            }
        }
    }
}
