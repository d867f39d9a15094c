//! The legacy hixie-76 WebSocket protocol (draft-hixie-thewebsocketprotocol-76,
//! also called hybi-00): the handshake's challenge answer and the framing.
//! Sans-io, like `crate::ws`: byte slices in, items out, no socket, no clock.
//!
//! Old proxies and a few old clients still speak it, and the SockJS protocol
//! tests it, so weir accepts it on the SockJS WebSocket endpoints.
//!
//! - [`key_number`] and [`challenge_response`] answer the handshake: each of
//!   `Sec-WebSocket-Key1`/`Key2` gives a 32-bit number (its digits divided
//!   by its spaces); the answer is MD5 of both numbers (big endian) and the
//!   8 bytes the client sends after its head.
//! - [`Decoder`] reads frames. A text frame is `0x00`, UTF-8, `0xFF`; a frame
//!   whose type byte has the high bit set carries a length (7 bits a byte,
//!   high bit = more) and is skipped, except `0xFF 0x00`, the close frame.
//!   Text frames of another type byte (`0x01..=0x7F`) are skipped to their
//!   `0xFF`. Text is handed out in pieces borrowed from the input, never
//!   buffered; the only state is a few integers. UTF-8 is not checked here:
//!   the draft has the receiver replace invalid sequences (U+FFFD), which the
//!   caller does when it turns a message into a string.
//! - [`text_frame`] and [`CLOSE_FRAME`] build outgoing frames.
//!
//! No function panics on any input. A decoder that returned an error keeps
//! returning it; after the close frame it consumes and ignores everything.

use std::fmt;

use md5::{Digest, Md5};

/// The close frame, both ways.
pub const CLOSE_FRAME: [u8; 2] = [0xFF, 0x00];

/// Length of the key the client sends after its head (`key3`).
pub const KEY3_LEN: usize = 8;

/// The number a `Sec-WebSocket-Key1`/`Key2` value stands for: its decimal
/// digits read as one number, divided by its count of spaces. `None` when
/// there is no space, the digits pass `u32`, or the division leaves a
/// remainder (the draft says to abort the handshake then).
pub fn key_number(key: &str) -> Option<u32> {
    let mut digits: u64 = 0;
    let mut spaces: u64 = 0;
    for b in key.bytes() {
        match b {
            b'0'..=b'9' => {
                digits = digits * 10 + u64::from(b - b'0');
                if digits > u64::from(u32::MAX) {
                    return None;
                }
            }
            b' ' => spaces += 1,
            _ => {}
        }
    }
    if spaces == 0 || digits % spaces != 0 {
        return None;
    }
    u32::try_from(digits / spaces).ok()
}

/// The 16 bytes the server sends after its `101` head: MD5 of the two key
/// numbers (big endian) followed by `key3`.
pub fn challenge_response(n1: u32, n2: u32, key3: &[u8; KEY3_LEN]) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(n1.to_be_bytes());
    md5.update(n2.to_be_bytes());
    md5.update(key3);
    md5.finalize().into()
}

/// Append a text frame: `0x00`, the bytes, `0xFF`. `text` must hold no
/// `0xFF` byte (valid UTF-8 never does); any that it holds are dropped so
/// the frame cannot end early.
pub fn text_frame(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + 2);
    out.push(0x00);
    if text.contains(&0xFF) {
        out.extend(text.iter().copied().filter(|b| *b != 0xFF));
    } else {
        out.extend_from_slice(text);
    }
    out.push(0xFF);
}

/// Why a hixie-76 stream must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HixieError {
    /// A text frame, or a length-prefixed frame, over the size limit.
    TooBig,
    /// A length that does not fit 63 bits.
    BadLength,
}

impl fmt::Display for HixieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooBig => "hixie-76 frame too big",
            Self::BadLength => "hixie-76 frame length too long",
        })
    }
}

impl std::error::Error for HixieError {}

/// One step of [`Decoder::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// Everything given was consumed; more input is needed.
    NeedMore,
    /// A text message starts.
    TextStart,
    /// The next piece of the text message: `input[start..start + n]` of
    /// the slice just passed to `parse` (the last bytes consumed; `start`
    /// is past any skipped frame before it). Never empty.
    Text {
        /// Offset of the piece in the input slice.
        start: usize,
        /// Length of the piece.
        n: usize,
    },
    /// The text message is complete (its `0xFF` was consumed).
    TextEnd,
    /// The client's close frame. Everything after it is ignored.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Between frames: the next byte is a frame type.
    Type,
    /// Inside a text frame; `len` bytes so far; `keep`: type 0x00 (a
    /// message), else skipped.
    Text { len: u64, keep: bool },
    /// Reading the length of a frame of type `ty`; `len` so far.
    Length { ty: u8, len: u64 },
    /// Skipping the rest of a length-prefixed frame.
    Skip { left: u64 },
    /// The close frame was read.
    Closed,
}

/// Incremental hixie-76 frame reader (client to server).
#[derive(Debug)]
pub struct Decoder {
    max: u64,
    st: St,
    failed: Option<HixieError>,
}

impl Decoder {
    /// A decoder refusing ([`HixieError::TooBig`]) any frame over `max`
    /// bytes.
    pub fn new(max: u64) -> Self {
        Self {
            max,
            st: St::Type,
            failed: None,
        }
    }

    /// Whether the close frame was read.
    pub fn closed(&self) -> bool {
        self.st == St::Closed
    }

    /// Parse from `input`; returns the bytes consumed and one item. Call
    /// again with the rest. After an error every call returns it again.
    pub fn parse(&mut self, input: &[u8]) -> Result<(usize, Item), HixieError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let r = self.step(input);
        if let Err(e) = r {
            self.failed = Some(e);
        }
        r
    }

    fn step(&mut self, input: &[u8]) -> Result<(usize, Item), HixieError> {
        let mut used = 0;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            match self.st {
                St::Closed => return Ok((input.len(), Item::NeedMore)),
                St::Type => {
                    let Some(&b) = rest.first() else {
                        return Ok((used, Item::NeedMore));
                    };
                    used += 1;
                    if b & 0x80 == 0 {
                        self.st = St::Text {
                            len: 0,
                            keep: b == 0x00,
                        };
                        if b == 0x00 {
                            return Ok((used, Item::TextStart));
                        }
                    } else {
                        self.st = St::Length { ty: b, len: 0 };
                    }
                }
                St::Text { len, keep } => {
                    let end = rest.iter().position(|&b| b == 0xFF);
                    let n = end.unwrap_or(rest.len());
                    let total = len.saturating_add(n as u64);
                    if total > self.max {
                        return Err(HixieError::TooBig);
                    }
                    if n > 0 {
                        self.st = St::Text { len: total, keep };
                        if keep {
                            return Ok((used + n, Item::Text { start: used, n }));
                        }
                        used += n;
                        continue;
                    }
                    if end.is_none() {
                        return Ok((used, Item::NeedMore));
                    }
                    used += 1;
                    self.st = St::Type;
                    if keep {
                        return Ok((used, Item::TextEnd));
                    }
                }
                St::Length { ty, len } => {
                    let Some(&b) = rest.first() else {
                        return Ok((used, Item::NeedMore));
                    };
                    used += 1;
                    if len > (u64::MAX >> 8) {
                        return Err(HixieError::BadLength);
                    }
                    let len = len << 7 | u64::from(b & 0x7F);
                    if b & 0x80 != 0 {
                        self.st = St::Length { ty, len };
                        continue;
                    }
                    if ty == 0xFF && len == 0 {
                        self.st = St::Closed;
                        return Ok((used, Item::Close));
                    }
                    if len > self.max {
                        return Err(HixieError::TooBig);
                    }
                    self.st = if len == 0 {
                        St::Type
                    } else {
                        St::Skip { left: len }
                    };
                }
                St::Skip { left } => {
                    if rest.is_empty() {
                        return Ok((used, Item::NeedMore));
                    }
                    let n = usize::try_from(left).map_or(rest.len(), |l| l.min(rest.len()));
                    used += n;
                    let left = left - n as u64;
                    self.st = if left == 0 {
                        St::Type
                    } else {
                        St::Skip { left }
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        Msg(Vec<u8>),
        Close,
    }

    /// Feed `pieces` in turn (each buffered with what was left unconsumed,
    /// as a connection's input buffer would); the events and any error.
    fn run(max: u64, pieces: &[&[u8]]) -> (Vec<Ev>, Option<HixieError>) {
        let mut d = Decoder::new(max);
        let mut evs = Vec::new();
        let mut msg: Option<Vec<u8>> = None;
        let mut buf: Vec<u8> = Vec::new();
        for p in pieces {
            buf.extend_from_slice(p);
            let mut pos = 0;
            loop {
                let (used, item) = match d.parse(&buf[pos..]) {
                    Ok(x) => x,
                    Err(e) => return (evs, Some(e)),
                };
                assert!(used <= buf.len() - pos, "consumed past the input");
                match item {
                    Item::NeedMore => {
                        assert_eq!(used, buf.len() - pos, "NeedMore leaves input");
                        pos += used;
                        break;
                    }
                    Item::TextStart => {
                        assert!(msg.is_none());
                        msg = Some(Vec::new());
                    }
                    Item::Text { start, n } => {
                        assert!(n > 0 && start + n == used);
                        msg.as_mut()
                            .expect("text inside a message")
                            .extend_from_slice(&buf[pos + start..pos + start + n]);
                    }
                    Item::TextEnd => evs.push(Ev::Msg(msg.take().expect("a message"))),
                    Item::Close => evs.push(Ev::Close),
                }
                pos += used;
            }
            buf.drain(..pos);
        }
        (evs, None)
    }

    fn msg(s: &str) -> Ev {
        Ev::Msg(s.as_bytes().to_vec())
    }

    #[test]
    fn handshake_vectors() {
        // The draft's own example (section 1.3).
        let n1 = key_number("4 @1  46546xW%0l 1 5").unwrap();
        let n2 = key_number("12998 5 Y3 1  .P00").unwrap();
        assert_eq!((n1, n2), (829_309_203, 259_970_620));
        assert_eq!(
            &challenge_response(n1, n2, b"^n:ds[4U"),
            b"8jKS'y:G*Co,Wxa-"
        );
        // The SockJS protocol tests' HAProxy case, with key3 "aaaaaaaa".
        assert_eq!(
            &challenge_response(n1, n2, b"aaaaaaaa"),
            b"\xca4\x00\xd8\xa5\x08G\x97,\xd5qZ\xba\xbfC{"
        );
    }

    #[test]
    fn key_numbers_that_abort_the_handshake() {
        for (key, want) in [
            ("1 2", Some(12)),
            ("12", None),                    // no space
            ("1 0 1", None),                 // 101 over 2 spaces leaves a remainder
            ("1 0 2", Some(51)),             // 102 / 2
            ("4294967295 ", Some(u32::MAX)), // digits at the limit, one space
            ("4294967296 ", None),           // digits past u32
            ("99999999999999999999999 ", None),
            ("", None),
            ("  ", Some(0)),
        ] {
            assert_eq!(key_number(key), want, "{key:?}");
        }
    }

    #[test]
    fn frames_out() {
        let mut out = Vec::new();
        text_frame(&mut out, "héllo".as_bytes());
        assert_eq!(out, b"\x00h\xc3\xa9llo\xff");
        out.clear();
        text_frame(&mut out, b"a\xffb");
        assert_eq!(out, b"\x00ab\xff");
        assert_eq!(CLOSE_FRAME, [0xff, 0x00]);
    }

    /// A named stream, the events it must decode to, and its error.
    type Case = (&'static str, Vec<u8>, Vec<Ev>, Option<HixieError>);

    /// Streams and what they must decode to, whatever the split points.
    fn cases() -> Vec<Case> {
        let long_len = {
            // A length-prefixed frame of 300 bytes: 300 = 2*128 + 44.
            let mut v = vec![0x80, 0x82, 0x2c];
            v.extend(std::iter::repeat_n(0xAB, 300));
            v
        };
        vec![
            (
                "one text",
                b"\x00hello\xff".to_vec(),
                vec![msg("hello")],
                None,
            ),
            ("empty text", b"\x00\xff".to_vec(), vec![msg("")], None),
            (
                "two texts and close",
                b"\x00a\xff\x00bc\xff\xff\x00".to_vec(),
                vec![msg("a"), msg("bc"), Ev::Close],
                None,
            ),
            (
                "utf-8 passes as bytes",
                [b"\x00".as_slice(), "κόσμε".as_bytes(), b"\xff"].concat(),
                vec![msg("κόσμε")],
                None,
            ),
            (
                "other text type skipped",
                b"\x05junk\xff\x00ok\xff".to_vec(),
                vec![msg("ok")],
                None,
            ),
            (
                "length frame skipped",
                [&long_len[..], b"\x00after\xff"].concat(),
                vec![msg("after")],
                None,
            ),
            (
                "zero-length non-close frame skipped",
                b"\x80\x00\x00x\xff".to_vec(),
                vec![msg("x")],
                None,
            ),
            (
                "bytes after close ignored",
                b"\x00a\xff\xff\x00\x00b\xff\x80\xff\xff".to_vec(),
                vec![msg("a"), Ev::Close],
                None,
            ),
            (
                "text over the limit",
                [b"\x00".as_slice(), &[b'x'; 17], b"\xff"].concat(),
                vec![],
                Some(HixieError::TooBig),
            ),
            (
                "text at the limit",
                [b"\x00".as_slice(), &[b'x'; 16], b"\xff"].concat(),
                vec![Ev::Msg(vec![b'x'; 16])],
                None,
            ),
            (
                "length frame over the limit",
                b"\x80\x11".to_vec(),
                vec![],
                Some(HixieError::TooBig),
            ),
            (
                "length past 63 bits",
                [b"\x80".as_slice(), &[0xFF; 10], b"\x01"].concat(),
                vec![],
                Some(HixieError::BadLength),
            ),
            (
                "close with a non-zero length is skipped",
                b"\xff\x01z\x00y\xff".to_vec(),
                vec![msg("y")],
                None,
            ),
        ]
    }

    #[test]
    fn same_events_at_every_split_point() {
        // Every frame here is at most 16 bytes of text, except "length
        // frame skipped" which needs room to skip 300.
        for (name, bytes, want, err) in cases() {
            let max = if name == "length frame skipped" {
                300
            } else {
                16
            };
            assert_eq!(run(max, &[&bytes]), (want.clone(), err), "{name}: whole");
            for i in 0..=bytes.len() {
                let (a, b) = bytes.split_at(i);
                assert_eq!(run(max, &[a, b]), (want.clone(), err), "{name}: split {i}");
                for j in i..=bytes.len() {
                    let (b, c) = b.split_at(j - i);
                    assert_eq!(
                        run(max, &[a, b, c]),
                        (want.clone(), err),
                        "{name}: split {i}, {j}"
                    );
                }
            }
            let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(run(max, &bytewise), (want, err), "{name}: byte at a time");
        }
    }

    #[test]
    fn errors_stick_and_close_is_final() {
        let mut d = Decoder::new(4);
        assert_eq!(d.parse(b"\x80\x05"), Err(HixieError::TooBig));
        assert_eq!(d.parse(b"\x00ok\xff"), Err(HixieError::TooBig));
        let mut d = Decoder::new(4);
        assert_eq!(d.parse(b"\xff\x00"), Ok((2, Item::Close)));
        assert!(d.closed());
        assert_eq!(d.parse(b"\x00ok\xff"), Ok((4, Item::NeedMore)));
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut x: u64 = 0x5eed_7676;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| match next() % 6 {
                    0 => 0x00,
                    1 => 0xFF,
                    2 => 0x80 | (next() as u8 & 0x7F),
                    _ => next() as u8,
                })
                .collect();
            let cut = (next() as usize) % (len + 1);
            let max = next() % 40;
            let whole = run(max, &[&bytes]);
            let split = run(max, &[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(whole, split, "{bytes:x?} cut {cut} max {max}");
        }
    }
}
