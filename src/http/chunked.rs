//! Chunked transfer-coding (RFC 9112 §7.1): a strict incremental decoder for
//! senders' request bodies and an encoder that frames receivers' responses.
//!
//! Both halves are sans-io: the decoder takes byte slices and reports ranges,
//! the encoder writes into any `std::io::Write` and never buffers payload.
//!
//! Invariants:
//! - The decoder never panics and never buffers: framing is consumed byte by
//!   byte into a small state machine; payload is returned as a range of the
//!   caller's slice. Extensions are capped at [`MAX_EXTENSION_LEN`] bytes per
//!   size line and the trailer section at [`MAX_TRAILER_LEN`] bytes; both are
//!   only counted, never stored.
//! - Line endings are CRLF everywhere; a bare CR or LF is an error, because
//!   peers that disagree about line endings are how request smuggling starts.
//! - Once an error is returned, every later call returns the same error.
//! - The encoder announces a chunk size only for payload the caller has in
//!   hand, and then owes exactly that many payload bytes before the chunk's
//!   CRLF, however many calls it takes.

use std::fmt;
use std::io::{self, IoSlice, Write};
use std::ops::Range;

/// Largest extension text (everything after the size digits, up to the CR)
/// accepted on one chunk-size line.
pub const MAX_EXTENSION_LEN: usize = 1024;

/// Largest trailer section accepted (all trailer lines with their CRLFs,
/// not counting the final empty line). Trailers are checked and discarded.
pub const MAX_TRAILER_LEN: usize = 8 * 1024;

/// Sixteen hex digits always fit a `u64`, so a digit cap is the overflow check.
const MAX_SIZE_DIGITS: u8 = 16;

/// Largest chunk the encoder announces; bounds how long one chunk stays open.
pub const MAX_ENCODED_CHUNK: usize = 1 << 20;

/// Why a chunked body was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkedError {
    /// The chunk-size line does not start with a hex digit, or has a stray byte.
    BadSize,
    /// The chunk size has more than 16 hex digits.
    SizeOverflow,
    /// A bare LF, or a CR not followed by LF.
    BadLineEnding,
    /// A chunk's data is not followed by CRLF.
    BadChunkEnd,
    /// The chunk extension holds a control byte or does not start with `;`.
    BadExtension,
    /// The chunk extension is longer than [`MAX_EXTENSION_LEN`].
    ExtensionTooLong,
    /// A trailer line is not `name: value`.
    BadTrailer,
    /// The trailer section is longer than [`MAX_TRAILER_LEN`].
    TrailersTooLong,
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadSize => "The chunk size is not a plain hex number.",
            Self::SizeOverflow => "The chunk size has more than 16 hex digits.",
            Self::BadLineEnding => "The chunked body has a line not ended by CRLF.",
            Self::BadChunkEnd => "The chunk data is not followed by CRLF.",
            Self::BadExtension => "The chunk extension is malformed.",
            Self::ExtensionTooLong => "The chunk extension is too long.",
            Self::BadTrailer => "A trailer line in the chunked body is malformed.",
            Self::TrailersTooLong => "The chunked body's trailers are too long.",
        })
    }
}

impl std::error::Error for ChunkedError {}

/// The outcome of one [`ChunkedDecoder::decode`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// How many input bytes were used (framing and payload).
    pub consumed: usize,
    /// Payload bytes, as a range of the input inside `..consumed`; `0..0` when none.
    pub data: Range<usize>,
    /// True once the last chunk, the trailers and the final CRLF are consumed.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SizeStart,
    Size,
    /// Whitespace after the size digits: only `;` may end it (BWS before an extension).
    ExtWs,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// Start of a trailer line, or of the final empty line.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
}

/// Incremental, strict decoder of a chunked body.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// The size being parsed, then the payload bytes still owed by this chunk.
    size: u64,
    digits: u8,
    ext_len: usize,
    trailer_len: usize,
    error: Option<ChunkedError>,
    /// The size of the last chunk begun.
    last_size: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

/// RFC 9110 tchar, for trailer field names.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Control bytes other than HTAB never belong in an extension or a field value.
fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

impl ChunkedDecoder {
    /// A decoder positioned at the first chunk-size line.
    pub fn new() -> Self {
        Self {
            state: State::SizeStart,
            size: 0,
            digits: 0,
            ext_len: 0,
            trailer_len: 0,
            error: None,
            last_size: 0,
        }
    }

    /// True once the whole chunked body (through its final CRLF) is consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Payload bytes the current chunk still owes while the decoder is
    /// inside one; `0` while it reads framing (or has failed). A caller
    /// may move that many bytes itself, straight to where the payload goes,
    /// and report them with [`ChunkedDecoder::skip_data`].
    pub fn data_owed(&self) -> u64 {
        if self.state == State::Data && self.error.is_none() {
            self.size
        } else {
            0
        }
    }

    /// The size of the last chunk begun (0 before the first): a caller
    /// choosing how much framing to read at once can tell large chunks
    /// from small ones.
    pub fn last_chunk_size(&self) -> u64 {
        self.last_size
    }

    /// Count `n` payload bytes (at most [`ChunkedDecoder::data_owed`]) that
    /// the caller moved itself, as [`ChunkedDecoder::decode`] would have.
    pub fn skip_data(&mut self, n: u64) {
        let n = n.min(self.data_owed());
        if n == 0 {
            return;
        }
        self.size -= n;
        if self.size == 0 {
            self.state = State::DataCr;
        }
    }

    /// Consume framing and at most one payload span from `input`.
    ///
    /// Returns `consumed == 0` only when `input` is empty or the body is done.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, ChunkedError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let mut pos = 0;
        let mut data = 0..0;
        let mut have_data = false;
        while pos < input.len() && self.state != State::Done {
            if self.state == State::Data {
                // One span per call keeps the result a single range.
                if have_data {
                    break;
                }
                let avail = input.len() - pos;
                let n = usize::try_from(self.size).map_or(avail, |r| r.min(avail));
                data = pos..pos + n;
                pos += n;
                self.size -= n as u64;
                have_data = true;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            if let Err(e) = self.step(input[pos]) {
                self.error = Some(e.clone());
                return Err(e);
            }
            pos += 1;
        }
        Ok(Decoded {
            consumed: pos,
            data,
            done: self.state == State::Done,
        })
    }

    fn count_ext(&mut self) -> Result<(), ChunkedError> {
        self.ext_len += 1;
        if self.ext_len > MAX_EXTENSION_LEN {
            return Err(ChunkedError::ExtensionTooLong);
        }
        Ok(())
    }

    fn count_trailer(&mut self) -> Result<(), ChunkedError> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILER_LEN {
            return Err(ChunkedError::TrailersTooLong);
        }
        Ok(())
    }

    /// Advance the framing state machine by one byte.
    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        use ChunkedError as E;
        match self.state {
            State::SizeStart => {
                self.size = hex_value(b).ok_or(E::BadSize)?;
                self.digits = 1;
                self.ext_len = 0;
                self.state = State::Size;
            }
            State::Size => match b {
                b';' => {
                    self.count_ext()?;
                    self.state = State::Ext;
                }
                b' ' | b'\t' => {
                    self.count_ext()?;
                    self.state = State::ExtWs;
                }
                b'\r' => self.state = State::SizeLf,
                b'\n' => return Err(E::BadLineEnding),
                _ => {
                    let v = hex_value(b).ok_or(E::BadSize)?;
                    if self.digits == MAX_SIZE_DIGITS {
                        return Err(E::SizeOverflow);
                    }
                    self.digits += 1;
                    self.size = (self.size << 4) | v;
                }
            },
            State::ExtWs => {
                self.count_ext()?;
                match b {
                    b' ' | b'\t' => {}
                    b';' => self.state = State::Ext,
                    _ => return Err(E::BadExtension),
                }
            }
            State::Ext => match b {
                b'\r' => self.state = State::SizeLf,
                b'\n' => return Err(E::BadLineEnding),
                _ if is_ctl(b) => return Err(E::BadExtension),
                _ => self.count_ext()?,
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(E::BadLineEnding);
                }
                if self.size == 0 {
                    self.trailer_len = 0;
                    self.state = State::TrailerStart;
                } else {
                    self.last_size = self.size;
                    self.state = State::Data;
                }
            }
            // `decode` handles payload without calling `step`; reaching here
            // would be a bug, so fail closed rather than panic.
            State::Data | State::Done => return Err(E::BadChunkEnd),
            State::DataCr => {
                if b != b'\r' {
                    return Err(E::BadChunkEnd);
                }
                self.state = State::DataLf;
            }
            State::DataLf => {
                if b != b'\n' {
                    return Err(E::BadLineEnding);
                }
                self.state = State::SizeStart;
            }
            State::TrailerStart => match b {
                b'\r' => self.state = State::FinalLf,
                b'\n' => return Err(E::BadLineEnding),
                _ if is_tchar(b) => {
                    self.count_trailer()?;
                    self.state = State::TrailerName;
                }
                // Includes SP/HTAB: obsolete line folding is refused.
                _ => return Err(E::BadTrailer),
            },
            State::TrailerName => {
                self.count_trailer()?;
                match b {
                    b':' => self.state = State::TrailerValue,
                    b'\r' | b'\n' => return Err(E::BadTrailer),
                    _ if is_tchar(b) => {}
                    _ => return Err(E::BadTrailer),
                }
            }
            State::TrailerValue => {
                self.count_trailer()?;
                match b {
                    b'\r' => self.state = State::TrailerLf,
                    b'\n' => return Err(E::BadLineEnding),
                    _ if is_ctl(b) => return Err(E::BadTrailer),
                    _ => {}
                }
            }
            State::TrailerLf => {
                self.count_trailer()?;
                if b != b'\n' {
                    return Err(E::BadLineEnding);
                }
                self.state = State::TrailerStart;
            }
            State::FinalLf => {
                if b != b'\n' {
                    return Err(E::BadLineEnding);
                }
                self.state = State::Done;
            }
        }
        Ok(())
    }
}

/// Longest chunk header: 16 hex digits and CRLF.
const HEAD_CAP: usize = 18;
const CRLF: &[u8; 2] = b"\r\n";
const LAST_CHUNK: &[u8; 5] = b"0\r\n\r\n";

/// Frames payload as chunks, resuming partial writes of its own framing.
#[derive(Debug, Default)]
pub struct ChunkEncoder {
    head: [u8; HEAD_CAP],
    head_len: usize,
    head_pos: usize,
    /// Payload bytes the open chunk still owes.
    remaining: usize,
    /// Bytes of the open chunk's closing CRLF already written.
    crlf_pos: usize,
    in_chunk: bool,
    /// Bytes of the last-chunk already written; non-zero means the body is closed.
    last_pos: usize,
}

impl ChunkEncoder {
    /// An encoder with no chunk open.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when framing bytes are pending (a chunk header or CRLF partly
    /// written, or a started chunk not complete, or a partly written last-chunk).
    pub fn has_pending(&self) -> bool {
        self.in_chunk || (self.last_pos > 0 && self.last_pos < LAST_CHUNK.len())
    }

    fn start_chunk(&mut self, size: usize) {
        let mut len = 0;
        let mut started = false;
        for shift in (0..16).rev() {
            let nibble = (size as u64 >> (shift * 4)) & 0xf;
            if nibble != 0 || started || shift == 0 {
                started = true;
                self.head[len] = b"0123456789abcdef"[nibble as usize];
                len += 1;
            }
        }
        self.head[len] = b'\r';
        self.head[len + 1] = b'\n';
        self.head_len = len + 2;
        self.head_pos = 0;
        self.remaining = size;
        self.crlf_pos = 0;
        self.in_chunk = true;
    }

    /// Write payload `a` then `b` (two slices from a ring buffer) to `w` with
    /// chunked framing, resuming any partially written framing from an earlier
    /// call. One `write_vectored` per call (header rest, payload, and the
    /// closing CRLF when the chunk completes). Returns the number of PAYLOAD
    /// bytes consumed (0 is possible when only framing bytes were written).
    /// `Err(WouldBlock)` only if nothing at all was written. If
    /// `a.len() + b.len() == 0` and no framing is pending, returns `Ok(0)`
    /// without writing. A writer accepting zero bytes gives `WriteZero`;
    /// writing after [`finish_to`](Self::finish_to) began gives `InvalidInput`.
    pub fn write_to<W: Write + ?Sized>(
        &mut self,
        w: &mut W,
        a: &[u8],
        b: &[u8],
    ) -> io::Result<usize> {
        if self.last_pos > 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "chunked body already finished",
            ));
        }
        if !self.in_chunk {
            let avail = a.len().saturating_add(b.len());
            if avail == 0 {
                return Ok(0);
            }
            self.start_chunk(avail.min(MAX_ENCODED_CHUNK));
        }
        let take_a = a.len().min(self.remaining);
        let take_b = b.len().min(self.remaining - take_a);
        let payload = take_a + take_b;
        let head = &self.head[self.head_pos..self.head_len];
        // The CRLF may go out only when this write can complete the chunk.
        let crlf: &[u8] = if payload == self.remaining {
            &CRLF[self.crlf_pos..]
        } else {
            &[]
        };
        let (head_len, crlf_len) = (head.len(), crlf.len());
        let total = head_len + payload + crlf_len;
        if total == 0 {
            return Ok(0);
        }
        let bufs = [
            IoSlice::new(head),
            IoSlice::new(&a[..take_a]),
            IoSlice::new(&b[..take_b]),
            IoSlice::new(crlf),
        ];
        let n = w.write_vectored(&bufs)?.min(total);
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let h = n.min(head_len);
        self.head_pos += h;
        let p = (n - h).min(payload);
        self.remaining -= p;
        self.crlf_pos += (n - h - p).min(crlf_len);
        if self.remaining == 0 && self.crlf_pos == CRLF.len() {
            self.in_chunk = false;
        }
        Ok(p)
    }

    /// Write the last-chunk `0\r\n\r\n` (after finishing any pending chunk
    /// framing). `Ok(true)` once fully written, `Ok(false)` after a partial
    /// write (call again when writable), `Err(WouldBlock)` if nothing was
    /// written. A chunk still owed payload gives `InvalidInput`: finishing then
    /// would corrupt the framing.
    pub fn finish_to<W: Write + ?Sized>(&mut self, w: &mut W) -> io::Result<bool> {
        if self.last_pos == LAST_CHUNK.len() {
            return Ok(true);
        }
        if self.in_chunk && self.remaining > 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "chunk payload incomplete",
            ));
        }
        // With no payload owed the header is fully out: payload follows it.
        let crlf: &[u8] = if self.in_chunk {
            &CRLF[self.crlf_pos..]
        } else {
            &[]
        };
        let last = &LAST_CHUNK[self.last_pos..];
        let (crlf_len, total) = (crlf.len(), crlf.len() + last.len());
        let n = w
            .write_vectored(&[IoSlice::new(crlf), IoSlice::new(last)])?
            .min(total);
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let c = n.min(crlf_len);
        self.crlf_pos += c;
        if self.in_chunk && self.crlf_pos == CRLF.len() {
            self.in_chunk = false;
        }
        self.last_pos += n - c;
        Ok(self.last_pos == LAST_CHUNK.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode `parts` in order the way the relay does; returns payload, done,
    /// and total bytes consumed. Fails the test if a call stalls.
    fn decode_parts(parts: &[&[u8]]) -> Result<(Vec<u8>, bool, usize), ChunkedError> {
        let mut dec = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut total = 0;
        for part in parts {
            let mut pos = 0;
            while pos < part.len() {
                let d = dec.decode(&part[pos..])?;
                assert!(d.consumed <= part.len() - pos);
                assert!(d.data.end <= d.consumed, "data outside consumed");
                out.extend_from_slice(&part[pos..][d.data]);
                pos += d.consumed;
                total += d.consumed;
                if d.done {
                    assert!(dec.is_done());
                    return Ok((out, true, total));
                }
                assert!(d.consumed > 0, "stalled without being done");
            }
        }
        Ok((out, dec.is_done(), total))
    }

    const VALID: &[(&[u8], &[u8], usize)] = &[
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello", 15),
        (b"0\r\n\r\n", b"", 5),
        (b"00A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", 22),
        (b"4\r\n\r\n\r\n\r\n1\r\n\n\r\n0\r\n\r\n", b"\r\n\r\n\n", 20),
        (
            b"3;name=val\r\nabc\r\n4 ; x=\"a;b\"\r\ndefg\r\n0;last\r\nTrailer: x\r\nOther:y\r\n\r\n",
            b"abcdefg",
            67,
        ),
        (b"1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n", b"x", 11),
        (b"1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n", b"abcdefghijklmnopqrstuvwxyz", 37),
    ];

    /// What the relay's pump does: a chunk's payload is moved by the caller
    /// (`data_owed`, `skip_data`), framing goes through `decode`.
    #[test]
    fn payload_moved_by_the_caller_decodes_the_same() {
        for &(input, payload, consumed) in VALID {
            for step in 1..=input.len() {
                let mut dec = ChunkedDecoder::new();
                let (mut out, mut pos) = (Vec::new(), 0);
                while !dec.is_done() {
                    let owed = dec.data_owed();
                    if owed > 0 {
                        let n = (owed as usize).min(step).min(input.len() - pos);
                        out.extend_from_slice(&input[pos..pos + n]);
                        dec.skip_data(n as u64);
                        pos += n;
                        continue;
                    }
                    let end = (pos + step).min(input.len());
                    let d = dec.decode(&input[pos..end]).unwrap();
                    out.extend_from_slice(&input[pos..][d.data]);
                    pos += d.consumed;
                    assert!(d.consumed > 0 || d.done, "stalled");
                }
                assert_eq!((out.as_slice(), pos), (payload, consumed), "step {step}");
            }
        }
        // Framing owes nothing, and skipping there changes nothing.
        let mut dec = ChunkedDecoder::new();
        assert_eq!(dec.data_owed(), 0);
        dec.skip_data(5);
        assert_eq!(dec.decode(b"3\r\nabc").unwrap().data, 3..6);
    }

    #[test]
    fn valid_bodies_decode_the_same_at_every_split() {
        for &(input, payload, consumed) in VALID {
            let whole = decode_parts(&[input]).unwrap();
            assert_eq!(whole, (payload.to_vec(), true, consumed), "{input:?}");
            for k in 0..=input.len() {
                let (x, y) = input.split_at(k);
                assert_eq!(
                    decode_parts(&[x, y]).unwrap(),
                    whole,
                    "split {k} of {input:?}"
                );
            }
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(decode_parts(&bytes).unwrap(), whole, "bytewise {input:?}");
        }
    }

    #[test]
    fn truncated_body_is_not_done() {
        let input = b"5\r\nhello\r\n0\r\n\r";
        let (out, done, consumed) = decode_parts(&[input]).unwrap();
        assert_eq!(
            (out.as_slice(), done, consumed),
            (&b"hello"[..], false, input.len())
        );
    }

    #[test]
    fn one_data_span_per_call_and_framing_consumed() {
        let mut dec = ChunkedDecoder::new();
        let input = b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n";
        let d = dec.decode(input).unwrap();
        // First span, then framing up to the next chunk's data.
        assert_eq!(
            d,
            Decoded {
                consumed: 10,
                data: 3..5,
                done: false
            }
        );
        let d = dec.decode(&input[10..]).unwrap();
        assert_eq!(
            d,
            Decoded {
                consumed: 9,
                data: 0..2,
                done: true
            }
        );
        assert_eq!(dec.decode(b"more").unwrap().consumed, 0);
    }

    #[test]
    fn sixteen_digit_size_is_accepted() {
        let mut dec = ChunkedDecoder::new();
        let d = dec.decode(b"FFFFFFFFFFFFFFFF\r\nabc").unwrap();
        assert_eq!(d.data, 18..21);
        assert!(!d.done);
    }

    #[test]
    fn invalid_bodies_are_rejected() {
        use ChunkedError as E;
        let long_ext = [b"5;".as_slice(), &[b'a'; MAX_EXTENSION_LEN], b"\r\n"].concat();
        let long_trailer = [
            b"0\r\nX: ".as_slice(),
            &[b'v'; MAX_TRAILER_LEN],
            b"\r\n\r\n",
        ]
        .concat();
        let cases: Vec<(&[u8], ChunkedError)> = vec![
            (b"\r\n", E::BadSize),
            (b" 5\r\nhello\r\n", E::BadSize),
            (b"+5\r\nhello\r\n", E::BadSize),
            (b"-5\r\nhello\r\n", E::BadSize),
            (b"0x5\r\nhello\r\n", E::BadSize),
            (b"g\r\n", E::BadSize),
            (b"5g\r\n", E::BadSize),
            (b"11111111111111111\r\n", E::SizeOverflow),
            (b"5\nhello\r\n", E::BadLineEnding),
            (b"5\r\rhello\r\n", E::BadLineEnding),
            (b"5;a\nhello\r\n", E::BadLineEnding),
            (b"5\r\nhello\n0\r\n\r\n", E::BadChunkEnd),
            (b"5\r\nhelloX\r\n", E::BadChunkEnd),
            (b"5\r\nhello\r0\r\n\r\n", E::BadLineEnding),
            (b"5 \r\nhello\r\n", E::BadExtension),
            (b"5;a\x00b\r\nhello\r\n", E::BadExtension),
            (&long_ext, E::ExtensionTooLong),
            (b"0\r\n: v\r\n\r\n", E::BadTrailer),
            (b"0\r\n folded\r\n\r\n", E::BadTrailer),
            (b"0\r\nX\r\n\r\n", E::BadTrailer),
            (b"0\r\nX: a\x01\r\n\r\n", E::BadTrailer),
            (b"0\r\nX: y\n\r\n", E::BadLineEnding),
            (b"0\r\n\n", E::BadLineEnding),
            (b"0\r\n\r\r", E::BadLineEnding),
            (&long_trailer, E::TrailersTooLong),
        ];
        for (input, want) in &cases {
            assert_eq!(decode_parts(&[input]), Err(want.clone()), "{input:?}");
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(
                decode_parts(&bytes),
                Err(want.clone()),
                "bytewise {input:?}"
            );
        }
    }

    #[test]
    fn error_is_sticky() {
        let mut dec = ChunkedDecoder::new();
        assert_eq!(dec.decode(b"z"), Err(ChunkedError::BadSize));
        assert_eq!(dec.decode(b"5\r\nhello\r\n"), Err(ChunkedError::BadSize));
    }

    fn would_block() -> io::Error {
        io::Error::from(io::ErrorKind::WouldBlock)
    }

    /// Seeded xorshift64; the seed is printed by the test on failure.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// A socket that takes a random few bytes per write and sometimes blocks.
    struct FlakyWriter {
        rng: Rng,
        out: Vec<u8>,
    }
    impl Write for FlakyWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.rng.below(4) == 0 {
                return Err(would_block());
            }
            let mut budget = 1 + self.rng.below(12);
            let mut n = 0;
            for b in bufs {
                let k = b.len().min(budget);
                self.out.extend_from_slice(&b[..k]);
                budget -= k;
                n += k;
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn encoder_output_decodes_to_payload_under_flaky_writes() {
        for seed in 1..=200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let len = rng.below(600);
            let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let mut w = FlakyWriter {
                rng: Rng(rng.next() | 1),
                out: Vec::new(),
            };
            let mut enc = ChunkEncoder::new();
            let mut pos = 0;
            let mut guard = 0;
            while pos < len || enc.has_pending() {
                guard += 1;
                assert!(guard < 100_000, "seed {seed}: no progress");
                // The caller's ring: some of the unsent bytes, in two slices.
                let avail = rng.below(len - pos + 1);
                let cut = rng.below(avail + 1);
                let a = &payload[pos..pos + cut];
                let b = &payload[pos + cut..pos + avail];
                match enc.write_to(&mut w, a, b) {
                    Ok(n) => {
                        assert!(n <= avail, "seed {seed}");
                        pos += n;
                    }
                    Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "seed {seed}"),
                }
            }
            loop {
                guard += 1;
                assert!(guard < 100_000, "seed {seed}: finish stuck");
                match enc.finish_to(&mut w) {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "seed {seed}"),
                }
            }
            assert!(!enc.has_pending(), "seed {seed}");
            let (out, done, consumed) =
                decode_parts(&[&w.out]).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert!(done, "seed {seed}");
            assert_eq!(consumed, w.out.len(), "seed {seed}");
            assert_eq!(out, payload, "seed {seed}");
        }
    }

    #[test]
    fn encoder_frames_exactly() {
        let mut out = Vec::new();
        let mut enc = ChunkEncoder::new();
        assert_eq!(enc.write_to(&mut out, b"", b"").unwrap(), 0);
        assert!(out.is_empty() && !enc.has_pending());
        assert_eq!(enc.write_to(&mut out, b"hello ", b"world").unwrap(), 11);
        assert!(!enc.has_pending());
        assert!(enc.finish_to(&mut out).unwrap());
        assert_eq!(out, b"b\r\nhello world\r\n0\r\n\r\n");
        assert!(enc.write_to(&mut out, b"x", b"").is_err());
    }

    #[test]
    fn encoder_caps_chunk_size_and_keeps_promise() {
        let big = vec![7u8; MAX_ENCODED_CHUNK + 10];
        let mut out = Vec::new();
        let mut enc = ChunkEncoder::new();
        assert_eq!(
            enc.write_to(&mut out, &big, b"").unwrap(),
            MAX_ENCODED_CHUNK
        );
        assert!(out.starts_with(b"100000\r\n"));
        assert_eq!(enc.write_to(&mut out, &big[..10], b"").unwrap(), 10);
        assert!(enc.finish_to(&mut out).unwrap());
        assert_eq!(decode_parts(&[&out]).unwrap(), (big, true, out.len()));
    }

    #[test]
    fn finish_refuses_open_chunk_owing_payload() {
        let mut w = FlakyWriter {
            rng: Rng(3),
            out: Vec::new(),
        };
        let mut enc = ChunkEncoder::new();
        // Keep trying until the header and some, but not all, payload are out.
        let payload = [1u8; 64];
        loop {
            if let Ok(n) = enc.write_to(&mut w, &payload, b"") {
                if n > 0 {
                    break;
                }
            }
        }
        assert!(enc.has_pending());
        let err = enc.finish_to(&mut w).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn random_input_never_panics_or_stalls() {
        const ALPHABET: &[u8] = b"0123456789abcdefABCDEFxX;= \t\r\n:\"\x00\xff";
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
            let len = rng.below(80);
            let input: Vec<u8> = (0..len)
                .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                .collect();
            let cut = rng.below(len + 1);
            // decode_parts asserts the range and progress rules on the way.
            let _ = decode_parts(&[&input[..cut], &input[cut..]]);
        }
    }
}
