//! What sits between a protocol's logic and a socket: readiness kept in
//! user space, the outcome of one I/O step, a connection's control output
//! buffer, and the byte stream itself as a trait, so that the relay core
//! runs the same over a real socket and over a simulated one.
//!
//! Readiness rules (design rules R1–R3): every socket is registered once for
//! readable and writable, edge-triggered. The kernel's edges are kept in
//! [`Readiness::event`]; a bit is cleared only when the operation it allows
//! returns `WouldBlock` (or end of stream for reads). What the connection
//! wants to do now is [`Readiness::interest`]. Work is done only on
//! `event & interest`, so pausing a direction is dropping an interest bit,
//! and resuming it needs no new edge from the kernel: the event bit was
//! kept. Nothing here reads the clock or owns a socket.

use std::fmt;
use std::io::{self, Read, Write};
use std::ops::{BitAnd, BitOr, BitOrAssign};

/// A small set of readiness bits.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Ready(u8);

impl Ready {
    /// No bits.
    pub const EMPTY: Ready = Ready(0);
    /// Reading would not block.
    pub const READABLE: Ready = Ready(1);
    /// Writing would not block.
    pub const WRITABLE: Ready = Ready(2);
    /// The peer shut down its writing side, or the socket hung up.
    pub const HUP: Ready = Ready(4);
    /// The socket reported an error.
    pub const ERROR: Ready = Ready(8);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Ready) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Whether no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Clear the bits of `other`.
    pub fn remove(&mut self, other: Ready) {
        self.0 &= !other.0;
    }

    /// Set the bits of `other`.
    pub fn insert(&mut self, other: Ready) {
        self.0 |= other.0;
    }
}

impl BitOr for Ready {
    type Output = Ready;
    fn bitor(self, rhs: Ready) -> Ready {
        Ready(self.0 | rhs.0)
    }
}

impl BitOrAssign for Ready {
    fn bitor_assign(&mut self, rhs: Ready) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Ready {
    type Output = Ready;
    fn bitand(self, rhs: Ready) -> Ready {
        Ready(self.0 & rhs.0)
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [(1, "R"), (2, "W"), (4, "HUP"), (8, "ERR")];
        let mut first = true;
        for (bit, name) in names {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// What the kernel said (`event`) and what the connection wants (`interest`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Edges seen and not yet consumed by a `WouldBlock`.
    pub event: Ready,
    /// Directions the connection wants to act on now.
    pub interest: Ready,
}

impl Readiness {
    /// The bits that can be acted on now.
    pub fn filtered(&self) -> Ready {
        self.event & self.interest
    }

    /// Whether reading is both possible and wanted.
    pub fn can_read(&self) -> bool {
        self.filtered().contains(Ready::READABLE)
    }

    /// Whether writing is both possible and wanted.
    pub fn can_write(&self) -> bool {
        self.filtered().contains(Ready::WRITABLE)
    }

    /// Whether the kernel reported a hang-up or an error (always of interest).
    pub fn hung_up(&self) -> bool {
        self.event.contains(Ready::HUP) || self.event.contains(Ready::ERROR)
    }
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

/// How a connection ends once its last response is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Shut down writing, then drain the client until it closes (it may
    /// still be sending a body that will not be read), so that its unread
    /// bytes do not turn into a reset that destroys the response in flight.
    Linger,
    /// Shut down writing and close: nothing more is expected from it.
    Close,
    /// Close with a reset: a close-delimited response that failed, which
    /// only a reset can say.
    ResetAfterWrite,
}

/// A connection's byte stream: a TCP socket in the event loop, a simulated
/// one in `tests/sim`. `fd` lets the Linux zero-copy path splice from and to
/// it; a stream without a descriptor simply never gets a kernel pipe.
pub trait Stream: Read + Write {
    /// The descriptor, for `splice(2)`; `None` when there is none.
    #[cfg(target_os = "linux")]
    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }

    /// Bytes the kernel holds that have not been read (`FIONREAD`); 0 when
    /// unknown.
    fn queued(&self) -> u64 {
        0
    }
}

/// Control bytes a connection's owner writes itself (response heads,
/// progress lines, error answers, frames): small, bounded by what the relay
/// writes, and written before any body byte that follows them.
#[derive(Default)]
pub struct OutBuf {
    buf: Vec<u8>,
    pos: usize,
    meter: Meter,
}

/// What a connection's control output wrote since the meter was last
/// taken: bytes, and the status of the first final response head among
/// them (for the access log). Fed the bytes as they reach the socket, so it
/// holds however the answer was queued.
#[derive(Clone, Debug, Default)]
pub struct Meter {
    /// Bytes written.
    pub sent: u64,
    /// The first final status written (`0`: none yet). `1xx` heads other
    /// than `101` are interim and skipped.
    pub status: u16,
    sniff: Sniff,
}

/// Where the status sniffer is in the written bytes.
#[derive(Clone, Debug)]
enum Sniff {
    /// Collecting a status line's first 12 bytes (`HTTP/1.1 200`).
    Line([u8; 12], u8),
    /// Skipping an interim head; how much of `\r\n\r\n` was seen.
    Interim(u8),
    /// Found, or the output is not an HTTP head.
    Done,
}

impl Default for Sniff {
    fn default() -> Self {
        Sniff::Line([0; 12], 0)
    }
}

impl Meter {
    /// Count `bytes` written, and look for the status in them.
    pub fn wrote(&mut self, bytes: &[u8]) {
        self.sent += bytes.len() as u64;
        let mut rest = bytes;
        while !rest.is_empty() {
            match &mut self.sniff {
                Sniff::Done => return,
                Sniff::Line(line, got) => {
                    let take = (12 - *got as usize).min(rest.len());
                    line[*got as usize..*got as usize + take].copy_from_slice(&rest[..take]);
                    *got += take as u8;
                    rest = &rest[take..];
                    if *got < 12 {
                        return;
                    }
                    let code = (line.starts_with(b"HTTP/1.") && line[8] == b' ')
                        .then(|| std::str::from_utf8(&line[9..12]).ok()?.parse::<u16>().ok())
                        .flatten();
                    self.sniff = match code {
                        Some(c) if (100..200).contains(&c) && c != 101 => Sniff::Interim(0),
                        Some(c) => {
                            self.status = c;
                            Sniff::Done
                        }
                        None => Sniff::Done,
                    };
                }
                Sniff::Interim(seen) => {
                    let b = rest[0];
                    rest = &rest[1..];
                    let want = b"\r\n\r\n"[*seen as usize];
                    *seen = if b == want {
                        *seen + 1
                    } else if b == b'\r' {
                        1
                    } else {
                        0
                    };
                    if *seen == 4 {
                        self.sniff = Sniff::default();
                    }
                }
            }
        }
    }
}

impl fmt::Debug for OutBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutBuf")
            .field("pending", &self.pending())
            .field("capacity", &self.buf.capacity())
            .finish()
    }
}

impl OutBuf {
    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether bytes wait to be written.
    pub fn is_pending(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// The buffer to append to.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Append bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// What was written since the last call; starts a new count (a new
    /// request on the connection).
    pub fn take_meter(&mut self) -> Meter {
        std::mem::take(&mut self.meter)
    }

    /// Count `n` bytes written to the connection from elsewhere (a
    /// WebSocket pipe's ring), after everything this buffer held.
    pub fn count_sent(&mut self, n: usize) {
        self.meter.sent += n as u64;
    }

    /// What was written so far.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Drop everything queued (an answer replaced by another).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }

    /// Give the memory back (a connection that may wait for minutes).
    pub fn release(&mut self) {
        if !self.is_pending() {
            self.buf = Vec::new();
            self.pos = 0;
        } else {
            self.buf.shrink_to_fit();
        }
    }

    /// A queue that is topped up while it drains (a WebSocket's, an event
    /// stream's) may never empty: drop the written part once it is the
    /// larger half, so that memory follows what is pending, not what was
    /// ever queued.
    fn compact(&mut self) {
        if self.pos >= 32 * 1024 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Write what is queued while the writable bit is set, keeping the
    /// readiness rules. `Ok(true)` when nothing is left.
    pub fn flush_to(&mut self, w: &mut dyn Write, ready: &mut Readiness) -> io::Result<bool> {
        while self.pos < self.buf.len() {
            let Some(n) = write_some(w, &[io::IoSlice::new(&self.buf[self.pos..])], ready)? else {
                if !ready.event.contains(Ready::WRITABLE) {
                    self.compact();
                }
                return Ok(false);
            };
            self.meter.wrote(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
        }
        self.buf.clear();
        self.pos = 0;
        if self.buf.capacity() > 4096 {
            self.buf.shrink_to(1024);
        }
        Ok(true)
    }
}

/// One write of `bufs` (in order) under the readiness rules: `None` when
/// the writable bit is not set, or the write would block (which clears
/// it); a write of zero bytes is an error; an interrupted write is
/// retried.
pub fn write_some(
    w: &mut dyn Write,
    bufs: &[io::IoSlice<'_>],
    ready: &mut Readiness,
) -> io::Result<Option<usize>> {
    loop {
        if !ready.event.contains(Ready::WRITABLE) {
            return Ok(None);
        }
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready.event.remove(Ready::WRITABLE);
                return Ok(None);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One read into `buf` under the readiness rules: `WouldBlock` and end of
/// stream clear the readable bit; end of stream also sets `read_eof`.
pub fn read_into(
    r: &mut dyn Read,
    ready: &mut Readiness,
    read_eof: &mut bool,
    buf: &mut [u8],
) -> Io {
    if !ready.event.contains(Ready::READABLE) {
        return Io::WouldBlock;
    }
    loop {
        match r.read(buf) {
            Ok(0) => {
                ready.event.remove(Ready::READABLE);
                *read_eof = true;
                return Io::Eof;
            }
            Ok(n) => return Io::Moved(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready.event.remove(Ready::READABLE);
                return Io::WouldBlock;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Io::Failed(e),
        }
    }
}

/// Read and drop up to `limit` bytes, to notice a peer's end of stream on
/// a connection that has nothing to say.
pub fn drain_input(
    r: &mut dyn Read,
    ready: &mut Readiness,
    read_eof: &mut bool,
    scratch: &mut [u8],
    limit: usize,
) -> Io {
    let mut total = 0;
    while total < limit {
        let cap = scratch.len().min(limit - total);
        match read_into(r, ready, read_eof, &mut scratch[..cap]) {
            Io::Moved(n) => total += n,
            other => return other,
        }
    }
    Io::Moved(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filtered_is_event_and_interest() {
        let mut r = Readiness::default();
        r.event.insert(Ready::READABLE | Ready::WRITABLE);
        assert!(!r.can_read());
        r.interest.insert(Ready::READABLE);
        assert!(r.can_read());
        assert!(!r.can_write());
        // Pausing keeps the edge: dropping and restoring interest resumes.
        r.interest.remove(Ready::READABLE);
        assert!(!r.can_read());
        r.interest.insert(Ready::READABLE);
        assert!(r.can_read());
        r.event.remove(Ready::READABLE);
        assert!(!r.can_read());
    }

    #[test]
    fn contains_needs_all_bits() {
        let r = Ready::READABLE | Ready::HUP;
        assert!(r.contains(Ready::HUP));
        assert!(!r.contains(Ready::READABLE | Ready::WRITABLE));
        assert!(!r.contains(Ready::EMPTY));
        assert_eq!(format!("{:?}", r), "R|HUP");
    }

    /// Takes at most three bytes per write, then blocks once.
    struct Trickle {
        got: Vec<u8>,
        block_next: bool,
    }

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.block_next {
                self.block_next = false;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.block_next = true;
            let n = b.len().min(3);
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Takes `n` bytes per edge, then blocks.
    struct Slow {
        n: usize,
        took: bool,
    }

    impl Write for Slow {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if std::mem::replace(&mut self.took, true) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(b.len().min(self.n))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_queue_topped_up_while_it_drains_does_not_grow() {
        let mut out = OutBuf::default();
        let mut w = Slow {
            n: 48 * 1024,
            took: false,
        };
        let mut ready = Readiness::default();
        let piece = vec![7u8; 40 * 1024];
        out.push(&piece);
        for _ in 0..1000 {
            // 40 KiB in, 48 KiB out per round, never quite empty.
            out.push(&piece);
            ready.event.insert(Ready::WRITABLE);
            w.took = false;
            assert!(!out.flush_to(&mut w, &mut ready).unwrap());
            out.push(&piece[..8 * 1024]);
        }
        assert!(out.pending() < 256 * 1024);
        assert!(out.buf.len() < 512 * 1024, "{} bytes held", out.buf.len());
    }

    #[test]
    fn meter_finds_the_final_status_however_the_bytes_are_split() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nA: b\r\n\r\n[INFO] x\n";
        for split in 0..wire.len() {
            let mut m = Meter::default();
            m.wrote(&wire[..split]);
            m.wrote(&wire[split..]);
            assert_eq!(
                (m.status, m.sent),
                (200, wire.len() as u64),
                "split {split}"
            );
        }
        let mut m = Meter::default();
        for b in b"HTTP/1.1 101 Switching Protocols\r\n\r\n" {
            m.wrote(&[*b]);
        }
        assert_eq!(m.status, 101);
        let mut m = Meter::default();
        m.wrote(b"HTTP/1.0 404 Not Found\r\n\r\nHTTP/1.1 500 x");
        assert_eq!(m.status, 404);
        let mut m = Meter::default();
        m.wrote(b"event: x\ndata: y\n\n");
        assert_eq!(m.status, 0);
    }

    #[test]
    fn outbuf_flushes_under_the_readiness_rules() {
        let mut out = OutBuf::default();
        out.push(b"hello, world");
        let mut w = Trickle {
            got: Vec::new(),
            block_next: false,
        };
        let mut ready = Readiness::default();
        // No writable edge: nothing is tried.
        assert!(!out.flush_to(&mut w, &mut ready).unwrap());
        assert!(w.got.is_empty());
        let mut rounds = 0;
        loop {
            ready.event.insert(Ready::WRITABLE);
            if out.flush_to(&mut w, &mut ready).unwrap() {
                break;
            }
            // A WouldBlock cleared the bit: the next edge is needed.
            assert!(!ready.event.contains(Ready::WRITABLE));
            rounds += 1;
            assert!(rounds < 10);
        }
        assert_eq!(w.got, b"hello, world");
        assert!(!out.is_pending());
    }
}
