//! A moving pipe: the buffer, the parties being served, the body decoder,
//! and the pump that moves bytes between them under the readiness rules.
//!
//! The sender is read only while the buffer has room (R4); each receiver is
//! written from its own cursor and the buffer is released up to the slowest
//! cursor (R5), so memory is one buffer per moving pipe whatever the
//! transfer's size or a receiver's speed. A run stops after
//! [`PUMP_BUDGET`] bytes and says so, and the core
//! queues the pipe for the next turn (R8).
//!
//! Endings: every receiver of a complete body gets its terminator (final
//! chunk, or the full `Content-Length`). A cut transfer never looks
//! complete: chunked receivers miss the final chunk, length receivers miss
//! bytes, and close-delimited (HTTP/1.0) receivers are reset (by the core).

use std::io::{self, Write};
use std::time::Instant;

use mio::Token;

use crate::http::chunked::{ChunkEncoder, ChunkedDecoder};
use crate::http::multipart::{self, MultipartScanner};
use crate::http::request::BodyFraming;
use crate::http::response::{self, LAST_CHUNK};
use crate::relay::env::{sender_text, Effect, End, Env, Role, Upload, PUMP_BUDGET};
use crate::ring::Ring;
#[cfg(target_os = "linux")]
use crate::splice::{Fill, KernelPipe};
use crate::wire::{drain_input, read_into, Io, Ready, Stream};

/// A moving pipe's buffer: a ring from the pool, or (Linux, one receiver,
/// known length) a kernel pipe that `splice(2)` moves bytes through
/// without copying them into user space.
#[derive(Debug)]
pub enum Buf {
    /// A ring from the pool.
    Ring(Ring),
    /// A kernel pipe.
    #[cfg(target_os = "linux")]
    Kernel(KernelPipe),
}

/// What a fill from the sender's socket found.
#[derive(Debug)]
enum Filled {
    Moved(usize),
    /// Nothing moved; `socket_empty` says whether the readable bit may be
    /// cleared (R2).
    Blocked {
        socket_empty: bool,
    },
    Eof,
}

impl Buf {
    /// Bytes ever put in (the transfer's size so far).
    pub fn end_offset(&self) -> u64 {
        match self {
            Buf::Ring(r) => r.end_offset(),
            #[cfg(target_os = "linux")]
            Buf::Kernel(k) => k.end_offset(),
        }
    }

    fn free(&self) -> usize {
        match self {
            Buf::Ring(r) => r.free(),
            #[cfg(target_os = "linux")]
            Buf::Kernel(k) => k.free(),
        }
    }

    fn push(&mut self, data: &[u8]) -> usize {
        match self {
            Buf::Ring(r) => r.push(data),
            #[cfg(target_os = "linux")]
            Buf::Kernel(k) => k.push(data),
        }
    }

    fn release_to(&mut self, offset: u64) {
        if let Buf::Ring(r) = self {
            r.release_to(offset);
        }
    }

    /// Held bytes from `cursor` (ring only; chunked receivers never use a
    /// kernel pipe).
    fn readable_from(&self, cursor: u64) -> (&[u8], &[u8]) {
        match self {
            Buf::Ring(r) => r.readable_from(cursor),
            #[cfg(target_os = "linux")]
            Buf::Kernel(_) => (&[], &[]),
        }
    }

    fn fill_from(&mut self, sock: &mut dyn Stream, want: usize) -> io::Result<Filled> {
        match self {
            Buf::Ring(r) => match r.fill_from(sock, want) {
                Ok(0) => Ok(Filled::Eof),
                Ok(n) => Ok(Filled::Moved(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    Ok(Filled::Blocked { socket_empty: true })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Filled::Moved(0)),
                Err(e) => Err(e),
            },
            #[cfg(target_os = "linux")]
            Buf::Kernel(k) => {
                let fd = sock
                    .fd()
                    .ok_or_else(|| io::Error::other("no descriptor to splice"))?;
                Ok(match k.fill_from(&fd, want)? {
                    Fill::Moved(n) => Filled::Moved(n),
                    Fill::Blocked { socket_empty } => Filled::Blocked { socket_empty },
                    Fill::Eof => Filled::Eof,
                })
            }
        }
    }

    /// Write held bytes from `cursor` to `sock` (raw framing).
    fn drain_into(
        &mut self,
        sock: &mut dyn Stream,
        cursor: u64,
        limit: usize,
    ) -> io::Result<usize> {
        match self {
            Buf::Ring(r) => r.drain_into(sock, cursor, limit),
            #[cfg(target_os = "linux")]
            Buf::Kernel(k) => {
                debug_assert_eq!(cursor, k.start_offset());
                let fd = sock
                    .fd()
                    .ok_or_else(|| io::Error::other("no descriptor to splice"))?;
                k.drain_into(&fd, limit)
            }
        }
    }
}

/// How a receiver's response body is delimited.
#[derive(Debug)]
pub enum OutFraming {
    /// Raw bytes: `Content-Length` was sent, or the body ends at close.
    Raw {
        /// Ends at close (HTTP/1.0 without a length).
        close_delimited: bool,
    },
    /// `Transfer-Encoding: chunked`.
    Chunked(ChunkEncoder),
}

/// The sender of a moving pipe.
#[derive(Debug)]
pub struct Sender {
    /// Its connection.
    pub token: Token,
    /// Its HTTP minor version.
    pub minor: u8,
    /// Its response waits until its body is read.
    pub hold: bool,
}

/// A receiver of a moving pipe.
#[derive(Debug)]
pub struct Receiver {
    /// Its connection.
    pub token: Token,
    /// Its HTTP minor version.
    pub minor: u8,
    /// Absolute offset of the next byte it gets.
    pub cursor: u64,
    /// How its body is delimited (set with its head).
    pub framing: OutFraming,
}

impl Receiver {
    /// Whether its body ends at close (a cut needs a reset).
    pub fn close_delimited(&self) -> bool {
        matches!(
            self.framing,
            OutFraming::Raw {
                close_delimited: true
            }
        )
    }

    fn framing_pending(&self) -> bool {
        matches!(&self.framing, OutFraming::Chunked(e) if e.has_pending())
    }
}

/// A moving pipe's state.
#[derive(Debug)]
pub struct Flow {
    /// The buffer (ring or kernel pipe).
    pub buf: Buf,
    /// The sender, while it is connected.
    pub sender: Option<Sender>,
    /// The receivers still being served.
    pub receivers: Vec<Receiver>,
    /// When it started.
    pub started_at: Instant,
    /// When a byte last moved.
    pub last_progress: Instant,
    /// The receivers' heads are queued.
    pub heads_written: bool,
    /// Bytes relayed when the progress hook last ran.
    pub progress_mark: u64,
    /// Receivers that got everything.
    pub delivered: usize,
    /// Receivers that left before the end.
    pub lost: usize,
}

impl Flow {
    /// Which side `t` is on.
    pub fn role_of(&self, t: Token) -> Option<Role> {
        if self.sender.as_ref().is_some_and(|s| s.token == t) {
            Some(Role::Sender)
        } else {
            self.receivers
                .iter()
                .any(|r| r.token == t)
                .then_some(Role::Receiver)
        }
    }

    /// Every party's connection.
    pub fn tokens(&self) -> Vec<Token> {
        self.sender
            .iter()
            .map(|s| s.token)
            .chain(self.receivers.iter().map(|r| r.token))
            .collect()
    }

    /// Take receiver `t` out.
    pub fn remove_receiver(&mut self, t: Token) -> Option<Receiver> {
        let i = self.receivers.iter().position(|r| r.token == t)?;
        Some(self.receivers.swap_remove(i))
    }
}

/// How the sender's body is delimited, with the decoding state.
#[derive(Debug)]
enum BodyDecoder {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// The sender's body being read: its decoder, the form scanner, bytes that
/// came with its head, and the headers the receivers' heads forward.
#[derive(Debug)]
pub struct Decoding {
    decoder: BodyDecoder,
    multipart: Option<Box<MultipartScanner>>,
    multipart_done: bool,
    early: Vec<u8>,
    /// Decoded body bytes so far (counted against `max_upload_bytes`).
    body_bytes: u64,
    framing: BodyFraming,
    /// The sender's `Content-Type`.
    pub content_type: Option<Vec<u8>>,
    /// The sender's `Content-Disposition`.
    pub content_disposition: Option<Vec<u8>>,
    x_piping: Vec<Vec<u8>>,
}

impl Decoding {
    /// Whether the body is a form (heads wait for its part's headers).
    pub fn has_multipart(&self) -> bool {
        self.multipart.is_some()
    }

    /// The payload's length, when the sender declared it (not a form).
    pub fn payload_length(&self) -> Option<u64> {
        match (self.framing, &self.multipart) {
            (BodyFraming::Length(l), None) => Some(l),
            (BodyFraming::None, None) => Some(0),
            _ => None,
        }
    }
}

/// Start moving: the buffer, the parties, and the upload as it arrived.
pub fn begin(
    now: Instant,
    buf: Buf,
    sender: Sender,
    receivers: Vec<(Token, u8)>,
    upload: Upload,
) -> (Box<Flow>, Box<Decoding>) {
    let Upload {
        framing,
        content_type,
        content_disposition,
        x_piping,
        multipart,
        early,
    } = upload;
    let decoder = match framing {
        BodyFraming::None => BodyDecoder::Length { remaining: 0 },
        BodyFraming::Length(l) => BodyDecoder::Length { remaining: l },
        BodyFraming::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new()),
        BodyFraming::UntilClose => BodyDecoder::UntilClose,
    };
    let flow = Flow {
        buf,
        sender: Some(sender),
        receivers: receivers
            .into_iter()
            .map(|(token, minor)| Receiver {
                token,
                minor,
                cursor: 0,
                framing: OutFraming::Raw {
                    close_delimited: false,
                },
            })
            .collect(),
        started_at: now,
        last_progress: now,
        heads_written: false,
        progress_mark: 0,
        delivered: 0,
        lost: 0,
    };
    let dec = Decoding {
        decoder,
        multipart,
        multipart_done: false,
        early,
        body_bytes: 0,
        framing,
        content_type,
        content_disposition,
        x_piping,
    };
    (Box::new(flow), Box::new(dec))
}

/// Queue each receiver's response head, forwarding the sender's headers.
pub fn write_heads(env: &mut dyn Env, flow: &mut Flow, dec: &Decoding) {
    flow.heads_written = true;
    let (ct, cd) = match dec.multipart.as_ref().and_then(|m| m.file_part()) {
        // A part without a type is text (RFC 7578 §4.4): a form's text
        // field is what a browser sends in text mode.
        Some(part) => (
            Some(
                part.content_type
                    .as_deref()
                    .unwrap_or("text/plain; charset=utf-8")
                    .as_bytes()
                    .to_vec(),
            ),
            part.filename
                .as_ref()
                .map(|f| multipart::content_disposition_attachment(f).into_bytes()),
        ),
        None => (dec.content_type.clone(), dec.content_disposition.clone()),
    };
    let mut extra: Vec<u8> = Vec::new();
    extra.extend_from_slice(b"Content-Type: ");
    extra.extend_from_slice(ct.as_deref().unwrap_or(b"application/octet-stream"));
    extra.extend_from_slice(b"\r\n");
    if let Some(cd) = cd {
        extra.extend_from_slice(b"Content-Disposition: ");
        extra.extend_from_slice(&cd);
        extra.extend_from_slice(b"\r\n");
    }
    for x in &dec.x_piping {
        extra.extend_from_slice(b"X-Piping: ");
        extra.extend_from_slice(x);
        extra.extend_from_slice(b"\r\n");
    }
    let length = dec.payload_length();
    let mut common = String::new();
    common.push_str(response::EXPOSE_HEADERS);
    common.push_str(response::NO_BUFFERING);
    // A sender must not be able to run script on the relay's origin.
    common.push_str("X-Content-Type-Options: nosniff\r\nContent-Security-Policy: sandbox\r\n");
    common.push_str("X-Robots-Tag: none\r\nConnection: close\r\n");
    for r in &mut flow.receivers {
        let Some(io) = env.io(r.token) else { continue };
        let out = io.out.buf();
        response::status_line(out, r.minor, 200);
        out.extend_from_slice(&extra);
        match length {
            Some(l) => {
                let _ = write!(out, "Content-Length: {l}\r\n");
                r.framing = OutFraming::Raw {
                    close_delimited: false,
                };
            }
            None if r.minor >= 1 => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                r.framing = OutFraming::Chunked(ChunkEncoder::new());
            }
            None => {
                r.framing = OutFraming::Raw {
                    close_delimited: true,
                };
            }
        }
        out.extend_from_slice(common.as_bytes());
        out.extend_from_slice(b"\r\n");
        io.ready.interest.insert(Ready::WRITABLE);
    }
}

/// How a run of the pump ended.
#[derive(Debug)]
pub enum Outcome {
    /// Still moving; `budget_spent` when it stopped for the budget (R8).
    Going {
        /// It has more to do now: run it again next turn.
        budget_spent: bool,
    },
    /// The body has been read completely (move to `Finishing`).
    BodyDone,
    /// The body is read and every receiver has it or left.
    Complete,
    /// The transfer fails: the body was bad, over the limit, or its sender
    /// failed mid-body. The sender (if there) is told.
    Cut(String),
    /// The last receiver left before any got everything.
    AllReceiversLeft(String),
    /// The sender's connection went away before its body was complete.
    SenderLeft(String),
}

#[derive(Debug)]
enum Ingress {
    /// Wire bytes taken from the sender (early bytes or its socket); a
    /// multipart body's skipped parts count, though none reach the buffer,
    /// so that the pump keeps reading them.
    Moved(usize),
    Done,
    Cut(String),
    /// The body needs more bytes and the sender's connection is gone.
    SenderGone,
}

#[derive(Debug)]
enum Egress {
    Moved,
    Idle,
    Gone,
}

/// Move bytes until nothing moves or the budget is spent. `dec` is the
/// body decoder while the body is being read (`None` once it is).
pub fn run(
    env: &mut dyn Env,
    now: Instant,
    flow: &mut Flow,
    mut dec: Option<&mut Box<Decoding>>,
    scratch: &mut [u8],
    limit: u64,
    fx: &mut Vec<Effect>,
) -> Outcome {
    let mut budget = PUMP_BUDGET;
    loop {
        let mut progressed = false;
        if dec.is_some() {
            hold_if_closed(env, flow);
        }
        // A sender whose connection fails while its body is read is held:
        // what it sent before it went is still in the kernel (Linux keeps
        // a socket's received bytes readable after a reset), so whether
        // the transfer is cut is ingress's call.
        flush_sender(env, flow, fx, dec.is_some());
        if let Some(d) = dec.as_deref_mut() {
            let before = flow.buf.end_offset();
            let got = ingress(env, flow, d, scratch, limit);
            let stored = flow.buf.end_offset() - before;
            if let (Some(s), true) = (&flow.sender, stored > 0) {
                env.moved(s.token, stored, 0);
            }
            match got {
                Ingress::Moved(n) => {
                    progressed = n > 0;
                    budget = budget.saturating_sub(n);
                }
                Ingress::Done => {
                    if let Some(s) = flow.sender.as_mut() {
                        // The body is read: a held response may go now.
                        s.hold = false;
                        if let Some(io) = env.io(s.token) {
                            io.ready.interest.remove(Ready::READABLE);
                        }
                    }
                    flush_sender(env, flow, fx, false);
                    if !flow.heads_written {
                        // A form whose part never began was cut in ingress;
                        // here the heads are surely written.
                        write_heads(env, flow, d);
                    }
                    flow.last_progress = now;
                    return Outcome::BodyDone;
                }
                Ingress::Cut(why) => return Outcome::Cut(why),
                Ingress::SenderGone => {
                    return Outcome::SenderLeft(format!(
                        "The sender left after {} bytes, before the body was complete.",
                        flow.buf.end_offset()
                    ))
                }
            }
            // Heads of forms wait for the forwarded part's headers.
            if !flow.heads_written
                && d.multipart
                    .as_ref()
                    .is_some_and(|m| m.file_part().is_some())
            {
                write_heads(env, flow, d);
            }
        }
        let mut i = 0;
        while i < flow.receivers.len() {
            match egress(env, flow, i, budget, scratch) {
                Egress::Moved => progressed = true,
                Egress::Idle => {}
                Egress::Gone => {
                    let r = flow.receivers.swap_remove(i);
                    fx.push(Effect::Close(r.token));
                    flow.lost += 1;
                    progressed = true;
                    if flow.receivers.is_empty() && flow.delivered == 0 {
                        return Outcome::AllReceiversLeft(format!(
                            "All receivers left; the transfer was cut after {} bytes.",
                            flow.buf.end_offset()
                        ));
                    }
                    let others = flow.receivers.len();
                    if let Some(s) = &flow.sender {
                        let line = format!(
                            "[ERROR] A receiver left before the end; the {others} other receiver(s) go on.\n"
                        );
                        if let Some(io) = env.io(s.token) {
                            sender_text(io.out, s.hold, s.minor >= 1, &line);
                        }
                    }
                    continue;
                }
            }
            i += 1;
        }
        let min = flow.receivers.iter().map(|r| r.cursor).min();
        let end = flow.buf.end_offset();
        flow.buf.release_to(min.unwrap_or(end));
        if progressed {
            flow.last_progress = now;
        }
        if dec.is_none() {
            finish_drained_receivers(env, flow, fx);
            if flow.receivers.is_empty() {
                return Outcome::Complete;
            }
        }
        if !progressed {
            break;
        }
        if budget == 0 {
            update_interest(env, flow, dec.as_deref().map(|d| &**d));
            return Outcome::Going { budget_spent: true };
        }
    }
    update_interest(env, flow, dec.as_deref().map(|d| &**d));
    Outcome::Going {
        budget_spent: false,
    }
}

/// A sender that closed its side before its body was read may have
/// closed for good (`curl -m` giving up after its last byte): a write to it
/// now would only draw a reset, and a failed write must not be taken for a
/// sender that left before its body was read. Nothing more is written to
/// it until its body is in.
fn hold_if_closed(env: &mut dyn Env, flow: &mut Flow) {
    let Some(s) = flow.sender.as_mut() else {
        return;
    };
    if s.hold {
        return;
    }
    if env
        .io(s.token)
        .is_some_and(|io| io.ready.event.contains(Ready::HUP) || *io.read_eof)
    {
        log::debug!(
            "[{}] sender closed its side mid-body; holding its lines",
            s.token.0
        );
        s.hold = true;
    }
}

/// Write the sender's pending lines (unless held). A failed write while
/// its body is being `reading` holds the sender (its lines are dropped;
/// its body is read on); after that it means the sender is gone, and it is
/// taken out of the flow and closed (false).
fn flush_sender(env: &mut dyn Env, flow: &mut Flow, fx: &mut Vec<Effect>, reading: bool) -> bool {
    let Some(s) = flow.sender.as_mut() else {
        return true;
    };
    let t = s.token;
    let Some(io) = env.io(t) else {
        flow.sender = None;
        fx.push(Effect::Close(t));
        return false;
    };
    if s.hold || !io.out.is_pending() {
        return true;
    }
    match io.out.flush_to(io.stream, io.ready) {
        Ok(_) => {
            if io.out.is_pending() {
                io.ready.interest.insert(Ready::WRITABLE);
            }
            true
        }
        Err(e) if reading => {
            log::debug!("[{}] write failed: {e}; reading the rest of its body", t.0);
            io.out.clear();
            io.ready.interest.remove(Ready::WRITABLE);
            s.hold = true;
            true
        }
        Err(e) => {
            log::debug!("[{}] write failed: {e}", t.0);
            flow.sender = None;
            fx.push(Effect::Close(t));
            false
        }
    }
}

fn ingress(
    env: &mut dyn Env,
    flow: &mut Flow,
    d: &mut Decoding,
    scratch: &mut [u8],
    limit: u64,
) -> Ingress {
    let reserve = if d.multipart.is_some() {
        MultipartScanner::MAX_HELD
    } else {
        0
    };
    if let BodyDecoder::Length { remaining: 0 } = d.decoder {
        // Nothing (more) to read; a zero-byte read would look like EOF.
        return finish_body(d);
    }
    let mut moved = 0usize;
    // Body bytes that came with the head go first.
    while !d.early.is_empty() {
        let room = flow.buf.free().saturating_sub(reserve);
        if room == 0 {
            return Ingress::Moved(moved);
        }
        let take = room.min(d.early.len());
        let chunk: Vec<u8> = d.early.drain(..take).collect();
        match feed(d, &mut flow.buf, &chunk, limit) {
            Ok((n, done)) => {
                moved += take;
                env.metrics().bytes_relayed += n as u64;
                if done {
                    d.early = Vec::new();
                    return finish_body(d);
                }
            }
            Err(why) => return Ingress::Cut(why),
        }
    }
    let Some(s) = flow.sender.as_ref() else {
        return Ingress::SenderGone;
    };
    let Some(io) = env.io(s.token) else {
        return Ingress::SenderGone;
    };
    let room = flow.buf.free().saturating_sub(reserve);
    if room == 0 || !io.ready.event.contains(Ready::READABLE) {
        return Ingress::Moved(moved);
    }
    let fast = d.multipart.is_none();
    // Body bytes that may go straight from the socket to the ring: the rest
    // of a `Content-Length` body, or of a chunk that still owes at least
    // `DIRECT_MIN` (only framing, and what comes with it, needs `scratch`
    // and the decoder).
    let direct = match (&d.decoder, fast) {
        (BodyDecoder::Length { remaining }, true) => Some(*remaining),
        (BodyDecoder::Chunked(dec), true) if dec.data_owed() >= DIRECT_MIN => {
            let allowed = if limit == 0 {
                u64::MAX
            } else {
                limit.saturating_sub(d.body_bytes)
            };
            if allowed == 0 {
                return Ingress::Cut(over_limit(limit));
            }
            Some(dec.data_owed().min(allowed))
        }
        _ => None,
    };
    let outcome = match direct {
        Some(owed) => match flow
            .buf
            .fill_from(io.stream, owed.min(room as u64) as usize)
        {
            Ok(Filled::Eof) => {
                *io.read_eof = true;
                io.ready.event.remove(Ready::READABLE);
                Io::Eof
            }
            Ok(Filled::Moved(n)) => {
                d.body_bytes += n as u64;
                env.metrics().bytes_relayed += n as u64;
                moved += n;
                match &mut d.decoder {
                    BodyDecoder::Length { remaining } => {
                        *remaining -= n as u64;
                        if *remaining == 0 {
                            return finish_body(d);
                        }
                    }
                    BodyDecoder::Chunked(dec) => dec.skip_data(n as u64),
                    BodyDecoder::UntilClose => {}
                }
                Io::Moved(n)
            }
            Ok(Filled::Blocked { socket_empty }) => {
                if socket_empty {
                    io.ready.event.remove(Ready::READABLE);
                }
                Io::WouldBlock
            }
            Err(e) => Io::Failed(e),
        },
        None => {
            // Between large chunks, read the end of the chunk and little
            // more than the framing after it, so that the next payload is
            // read straight into the ring.
            let large = match &d.decoder {
                BodyDecoder::Chunked(dec) if fast && dec.last_chunk_size() >= LARGE_CHUNK => {
                    Some(dec.data_owed() as usize + FRAMING_READ)
                }
                _ => None,
            };
            let cap = room.min(scratch.len()).min(large.unwrap_or(usize::MAX));
            match read_into(io.stream, io.ready, io.read_eof, &mut scratch[..cap]) {
                Io::Moved(n) => match feed(d, &mut flow.buf, &scratch[..n], limit) {
                    Ok((m, done)) => {
                        moved += n;
                        env.metrics().bytes_relayed += m as u64;
                        if done {
                            return finish_body(d);
                        }
                        Io::Moved(n)
                    }
                    Err(why) => return Ingress::Cut(why),
                },
                other => other,
            }
        }
    };
    match outcome {
        Io::Moved(_) | Io::WouldBlock => Ingress::Moved(moved),
        Io::Eof => {
            if matches!(d.decoder, BodyDecoder::UntilClose) {
                finish_body(d)
            } else {
                Ingress::Cut(format!(
                    "The sender's connection ended after {} bytes, before the body was complete.",
                    d.body_bytes
                ))
            }
        }
        Io::Failed(e) => Ingress::Cut(format!(
            "The sender's connection failed after {} bytes ({e}).",
            d.body_bytes
        )),
    }
}

fn egress(
    env: &mut dyn Env,
    flow: &mut Flow,
    i: usize,
    budget: usize,
    scratch: &mut [u8],
) -> Egress {
    let heads_written = flow.heads_written;
    let r = &mut flow.receivers[i];
    let Some(io) = env.io(r.token) else {
        return Egress::Gone;
    };
    // Receivers have nothing to say; reading notices one that left.
    if io.ready.can_read() {
        if let Io::Eof | Io::Failed(_) =
            drain_input(io.stream, io.ready, io.read_eof, scratch, 64 * 1024)
        {
            return Egress::Gone;
        }
    }
    if io.ready.event.contains(Ready::ERROR) {
        return Egress::Gone;
    }
    if io.out.is_pending() {
        match io.out.flush_to(io.stream, io.ready) {
            Ok(true) => {}
            Ok(false) => return Egress::Idle,
            Err(_) => return Egress::Gone,
        }
    }
    if !heads_written {
        return Egress::Idle;
    }
    let avail = flow.buf.end_offset() - r.cursor;
    if avail == 0 && !r.framing_pending() {
        return Egress::Idle;
    }
    if !io.ready.event.contains(Ready::WRITABLE) {
        return Egress::Idle;
    }
    let limit = budget.max(1);
    let res = match &mut r.framing {
        OutFraming::Raw { .. } => flow.buf.drain_into(io.stream, r.cursor, limit),
        OutFraming::Chunked(enc) => {
            let (a, b) = flow.buf.readable_from(r.cursor);
            let a = &a[..a.len().min(limit)];
            let b = &b[..b.len().min(limit - a.len())];
            enc.write_to(io.stream, a, b)
        }
    };
    match res {
        Ok(0) if avail > 0 && matches!(r.framing, OutFraming::Raw { .. }) => Egress::Gone,
        Ok(n) => {
            r.cursor += n as u64;
            env.moved(r.token, 0, n as u64);
            Egress::Moved
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            io.ready.event.remove(Ready::WRITABLE);
            Egress::Idle
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Egress::Idle,
        Err(_) => Egress::Gone,
    }
}

/// Receivers that have every byte get their terminator and are let go.
fn finish_drained_receivers(env: &mut dyn Env, flow: &mut Flow, fx: &mut Vec<Effect>) {
    if !flow.heads_written {
        return;
    }
    let end = flow.buf.end_offset();
    let mut i = 0;
    while i < flow.receivers.len() {
        let r = &flow.receivers[i];
        let out_pending = env.io(r.token).is_some_and(|io| io.out.is_pending());
        if r.cursor < end || r.framing_pending() || out_pending {
            i += 1;
            continue;
        }
        let r = flow.receivers.swap_remove(i);
        flow.delivered += 1;
        if let (OutFraming::Chunked(_), Some(io)) = (&r.framing, env.io(r.token)) {
            io.out.push(LAST_CHUNK);
        }
        // Its input is known to be complete (a GET): close once written.
        fx.push(Effect::Release {
            token: r.token,
            end: End::Close,
        });
    }
}

fn update_interest(env: &mut dyn Env, flow: &Flow, dec: Option<&Decoding>) {
    let end = flow.buf.end_offset();
    if let Some(s) = &flow.sender {
        let reserve = if dec.is_some_and(|d| d.multipart.is_some()) {
            MultipartScanner::MAX_HELD
        } else {
            0
        };
        let want_read = dec.is_some() && flow.buf.free() > reserve;
        if let Some(io) = env.io(s.token) {
            let mut interest = Ready::EMPTY;
            if want_read {
                interest.insert(Ready::READABLE);
            }
            if io.out.is_pending() && !s.hold {
                interest.insert(Ready::WRITABLE);
            }
            io.ready.interest = interest;
        }
    }
    for r in &flow.receivers {
        if let Some(io) = env.io(r.token) {
            let mut interest = Ready::READABLE;
            if io.out.is_pending()
                || (flow.heads_written && (r.cursor < end || r.framing_pending()))
            {
                interest.insert(Ready::WRITABLE);
            }
            io.ready.interest = interest;
        }
    }
}

/// Write what a cut receiver is owed and its kernel takes now.
pub fn write_what_is_taken(sock: &mut dyn Stream, r: &mut Receiver, buf: &mut Buf) {
    while r.cursor < buf.end_offset() {
        let res = match &mut r.framing {
            OutFraming::Raw { .. } => buf.drain_into(sock, r.cursor, 1 << 20),
            OutFraming::Chunked(enc) => {
                let (a, b) = buf.readable_from(r.cursor);
                enc.write_to(sock, a, b)
            }
        };
        match res {
            Ok(n) if n > 0 => r.cursor += n as u64,
            _ => break,
        }
    }
}

/// Never expected: the pump feeds no more than the buffer has room for.
/// Should it happen, the transfer is cut rather than silently short.
const LOST: &str = "Internal error: the relay's buffer refused bytes; the transfer was cut.";

/// Decode `bytes` of the sender's body into the buffer. Returns payload
/// bytes stored and whether the body ended. Bytes after the body's end
/// are dropped.
fn feed(
    d: &mut Decoding,
    buf: &mut Buf,
    bytes: &[u8],
    limit: u64,
) -> Result<(usize, bool), String> {
    let before = buf.end_offset();
    let mut done = false;
    let mut body = 0usize;
    let mut over = false;
    let allowed = if limit == 0 {
        u64::MAX
    } else {
        limit.saturating_sub(d.body_bytes)
    };
    let Decoding {
        decoder,
        multipart,
        multipart_done,
        ..
    } = d;
    let mut emit = |data: &[u8]| -> Result<(), String> {
        // Bytes past the limit are never forwarded.
        let room = allowed.saturating_sub(body as u64);
        if data.len() as u64 > room {
            over = true;
        }
        let data = &data[..data.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        body += data.len();
        match multipart.as_mut() {
            Some(mp) => {
                if !*multipart_done {
                    let mut short = false;
                    *multipart_done = mp
                        .feed(data, &mut |chunk| {
                            short |= buf.push(chunk) < chunk.len();
                        })
                        .map_err(|e| format!("Bad multipart body: {e}"))?;
                    if short {
                        return Err(LOST.to_string());
                    }
                }
                Ok(())
            }
            None => {
                if buf.push(data) < data.len() {
                    return Err(LOST.to_string());
                }
                Ok(())
            }
        }
    };
    match decoder {
        BodyDecoder::Length { remaining } => {
            let take = (*remaining).min(bytes.len() as u64) as usize;
            *remaining -= take as u64;
            done = *remaining == 0;
            emit(&bytes[..take])?;
        }
        BodyDecoder::UntilClose => emit(bytes)?,
        BodyDecoder::Chunked(dec) => {
            let mut pos = 0;
            while pos < bytes.len() {
                let dd = dec
                    .decode(&bytes[pos..])
                    .map_err(|e| format!("Bad chunked body: {e}"))?;
                let data = &bytes[pos..][dd.data.clone()];
                pos += dd.consumed;
                emit(data)?;
                if dd.done {
                    done = true;
                    break;
                }
                if dd.consumed == 0 {
                    break;
                }
            }
        }
    }
    d.body_bytes += body as u64;
    if over {
        return Err(over_limit(limit));
    }
    Ok(((buf.end_offset() - before) as usize, done))
}

fn over_limit(limit: u64) -> String {
    format!("The upload passed the limit of {limit} bytes; the transfer was cut.")
}

/// A chunk that still owes this much payload has it read straight into
/// the ring. Less goes through `scratch` with what follows it: for small
/// chunks one scratch read of many chunks costs less than a system call
/// per chunk (4 KiB chunks took 2-3 times weir's CPU when each chunk's
/// payload was read on its own).
const DIRECT_MIN: u64 = 32 * 1024;
/// Chunks at least this large are read chunk by chunk: a read between two
/// takes the rest of one (less than [`DIRECT_MIN`]), its framing, and
/// [`FRAMING_READ`] bytes more, so that the next payload starts in the
/// ring.
const LARGE_CHUNK: u64 = 64 * 1024;
/// How much a read between large chunks takes past the end of a chunk:
/// the CRLF, a size line, perhaps extensions, and a little payload.
const FRAMING_READ: usize = 512;

fn finish_body(d: &mut Decoding) -> Ingress {
    if let Some(mp) = &d.multipart {
        if let Err(e) = mp.finish() {
            return Ingress::Cut(format!("Bad multipart body: {e}"));
        }
    }
    Ingress::Done
}
