//! Pipes: the pairing table and the pump (upload → ring → downloads).
//!
//! A pipe is keyed by its path. Its sender and its `n` receivers may arrive
//! in any order; while any is missing the others are *parked*: their
//! connections hold only the parsed head, and a parked sender's body is not
//! read (R6), so TCP flow control holds it in the client. When the last
//! party arrives the pipe takes one ring from the capped pool (or answers
//! `503`) and starts.
//!
//! The pump moves bytes under the readiness rules: the sender is read only
//! while the ring has space (R4); each receiver writes from its own cursor
//! and the ring is released up to the slowest cursor (R5), so memory is one
//! ring per streaming pipe whatever the transfer's size or a receiver's
//! speed. A pump stops after a byte budget and is queued for the next turn
//! (R8).
//!
//! Endings: every receiver of a complete body gets its terminator (final
//! chunk, or the full `Content-Length`). A cut transfer never looks
//! complete: chunked receivers miss the final chunk, length receivers miss
//! bytes, and close-delimited (HTTP/1.0) receivers are reset. The sender's
//! last progress line says what happened.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use log::{debug, info};
use mio::Token;

use crate::conn::{Io, State};
use crate::http::chunked::{ChunkEncoder, ChunkedDecoder};
use crate::http::multipart::{self, MultipartScanner};
use crate::http::request::BodyFraming;
use crate::http::response::{self, LAST_CHUNK};
use crate::http::Head;
use crate::readiness::Ready;
use crate::ring::Ring;
use crate::server::{Server, Timer};
#[cfg(target_os = "linux")]
use crate::splice::{Fill, KernelPipe};
use crate::{hooks, pages};

/// Bytes a pump may move before it yields to the rest of the loop (R8).
const PUMP_BUDGET: usize = 1 << 20;

/// How the sender's body is delimited, with the decoding state.
#[derive(Debug)]
pub(crate) enum BodyDecoder {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// How a receiver's response body is delimited.
#[derive(Debug)]
pub(crate) enum OutFraming {
    /// Raw bytes: `Content-Length` was sent, or the body ends at close.
    Raw { close_delimited: bool },
    /// `Transfer-Encoding: chunked`.
    Chunked(ChunkEncoder),
}

#[derive(Debug)]
pub(crate) struct SenderSide {
    pub token: Token,
    pub minor: u8,
    pub framing: BodyFraming,
    pub decoder: BodyDecoder,
    pub multipart: Option<Box<MultipartScanner>>,
    pub multipart_done: bool,
    pub content_type: Option<Vec<u8>>,
    pub content_disposition: Option<Vec<u8>>,
    pub x_piping: Vec<Vec<u8>>,
    /// Body bytes that arrived with the head.
    pub early: Vec<u8>,
    /// Decoded body bytes so far (counted against `max_upload_bytes`).
    pub body_bytes: u64,
    /// Its response (head and lines) waits in `out` until its body has been
    /// read: behind nginx an early answer stops the upload, and a client
    /// that closed after its whole body must not be written to before that
    /// body is read (a write would draw a reset that destroys it).
    pub hold: bool,
}

impl SenderSide {
    fn chunked_out(&self) -> bool {
        self.minor >= 1
    }
}

/// Bytes of progress lines a held sender's `out` may collect; past it the
/// intermediate lines are dropped (its last line is always written). A
/// receiver that comes and goes in a loop cannot grow a parked sender.
const HELD_LINES_MAX: usize = 4096;

/// Queue a progress line for a sender (dropped when held and full).
fn sender_line(out: &mut Vec<u8>, s: &SenderSide, text: &str) {
    if s.hold && out.len() >= HELD_LINES_MAX {
        return;
    }
    response::stream_text(out, s.chunked_out(), text);
}

#[derive(Debug)]
pub(crate) struct ReceiverSide {
    pub token: Token,
    pub minor: u8,
    pub cursor: u64,
    pub framing: OutFraming,
    pub head_written: bool,
}

/// One path's transfer, from the first arrival to the last byte.
#[derive(Debug)]
pub(crate) struct Pipe {
    pub key: String,
    pub n: usize,
    pub sender: Option<SenderSide>,
    pub receivers: Vec<ReceiverSide>,
    pub streaming: bool,
    pub ring: Option<Buf>,
    pub body_done: bool,
    pub heads_written: bool,
    pub started_at: Option<Instant>,
    pub last_progress: Instant,
    pub timer: Option<crate::timer::Handle>,
    pub queued: bool,
    pub delivered: usize,
    pub lost: usize,
    /// Set for server-assigned IDs (`POST /`, `GET /reserve`).
    pub ephemeral: Option<Ephemeral>,
    /// Bytes relayed when the progress hook last ran.
    pub progress_mark: u64,
}

/// What an ephemeral socket adds to a pipe.
#[derive(Debug)]
pub(crate) struct Ephemeral {
    pub id: String,
    /// The end of waiting, fixed when the ID was made; never reset.
    pub deadline: Instant,
    /// Made by `GET /reserve` (kept while nobody is attached).
    pub reservation: bool,
    /// The reservation's upload has arrived; the ID cannot be uploaded to again.
    pub claimed: bool,
}

/// A streaming pipe's buffer: a ring from the pool, or (Linux, one
/// receiver, known length) a kernel pipe that `splice(2)` moves bytes
/// through without copying them into user space.
#[derive(Debug)]
pub(crate) enum Buf {
    Ring(Ring),
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
    pub(crate) fn end_offset(&self) -> u64 {
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

    fn fill_from(
        &mut self,
        sock: &mut mio::net::TcpStream,
        want: usize,
    ) -> std::io::Result<Filled> {
        match self {
            Buf::Ring(r) => match r.fill_from(sock, want) {
                Ok(0) => Ok(Filled::Eof),
                Ok(n) => Ok(Filled::Moved(n)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    Ok(Filled::Blocked { socket_empty: true })
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(Filled::Moved(0)),
                Err(e) => Err(e),
            },
            #[cfg(target_os = "linux")]
            Buf::Kernel(k) => Ok(match k.fill_from(sock, want)? {
                Fill::Moved(n) => Filled::Moved(n),
                Fill::Blocked { socket_empty } => Filled::Blocked { socket_empty },
                Fill::Eof => Filled::Eof,
            }),
        }
    }

    /// Write held bytes from `cursor` to `sock` (raw framing).
    fn drain_into(
        &mut self,
        sock: &mut mio::net::TcpStream,
        cursor: u64,
        limit: usize,
    ) -> std::io::Result<usize> {
        match self {
            Buf::Ring(r) => r.drain_into(sock, cursor, limit),
            #[cfg(target_os = "linux")]
            Buf::Kernel(k) => {
                debug_assert_eq!(cursor, k.start_offset());
                k.drain_into(sock, limit)
            }
        }
    }
}

#[derive(Debug)]
enum Ingress {
    /// Wire bytes taken from the sender (early bytes or its socket); a
    /// multipart body's skipped parts count, though none reach the buffer,
    /// so that the pump keeps reading them.
    Moved(usize),
    Idle,
    Done,
    Cut(String),
}

#[derive(Debug)]
enum Egress {
    Moved,
    Idle,
    Gone,
}

/// Which side of a pipe a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Sender,
    Receiver,
}

impl Server {
    /// A request on a pipe path: validate it, pair it, park or start.
    pub(crate) fn pipe_request(&mut self, token: Token, head: Head, early: Vec<u8>, role: Role) {
        let minor = head.minor;
        let key = head.path.clone();
        let n = match head.query_param("n") {
            None => 1,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 && n <= self.config.max_receivers => n,
                _ => {
                    let msg = format!(
                        "?n= must be a whole number from 1 to {}.",
                        self.config.max_receivers
                    );
                    return self.reject(token, minor, 400, &msg);
                }
            },
        };
        let multipart = match role {
            Role::Sender => match self.sender_checks(&head, true) {
                Ok(m) => m,
                Err((status, msg)) => return self.reject(token, minor, status, &msg),
            },
            Role::Receiver => None,
        };
        let existing = self.paths.get(&key).copied();
        if let Some(p) = existing {
            let pipe = &self.pipes[p];
            if pipe.streaming {
                let msg = format!("A transfer on {key} is already running; try another path.");
                return self.reject(token, minor, 409, &msg);
            }
            if pipe.n != n {
                let msg = format!(
                    "The number of receivers does not match: this request says n={n}, the waiting party said n={}.",
                    pipe.n
                );
                return self.reject(token, minor, 400, &msg);
            }
            if role == Role::Sender && pipe.sender.is_some() {
                let msg = format!("Another sender is already waiting on {key}.");
                return self.reject(token, minor, 409, &msg);
            }
            if role == Role::Receiver && pipe.receivers.len() >= pipe.n {
                let msg = format!("{key} already has its {n} receiver(s).");
                return self.reject(token, minor, 409, &msg);
            }
        }
        let p = match existing {
            Some(p) => p,
            None => self.new_pipe(key, n, None),
        };
        self.join(p, token, head, early, role, multipart);
    }

    /// Checks on a sender's head before it is parked: the declared length
    /// against the limit, and a multipart body's boundary. A multipart body
    /// forwards its first part (`any_part`: named pipes) or its first file
    /// part (ephemeral sockets, as ephemeral-socket-service did).
    pub(crate) fn sender_checks(
        &mut self,
        head: &Head,
        any_part: bool,
    ) -> Result<Option<Box<MultipartScanner>>, (u16, String)> {
        if let BodyFraming::Length(len) = head.framing {
            let max = self.config.max_upload_bytes;
            if max > 0 && len > max {
                let msg = self
                    .hooks
                    .too_large(max)
                    .unwrap_or_else(|| hooks::text::too_large(max));
                return Err((413, msg));
            }
        }
        let ct = head.content_type.as_deref().unwrap_or(b"");
        let ct = String::from_utf8_lossy(ct);
        if !ct
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
        {
            return Ok(None);
        }
        match multipart::boundary_from_content_type(&ct) {
            Some(b) if any_part => Ok(Some(Box::new(MultipartScanner::first_part(&b)))),
            Some(b) => Ok(Some(Box::new(MultipartScanner::new(&b)))),
            None => Err((
                400,
                "multipart/form-data needs a valid boundary parameter.".to_string(),
            )),
        }
    }

    /// A new, empty pipe registered under `key`.
    pub(crate) fn new_pipe(
        &mut self,
        key: String,
        n: usize,
        ephemeral: Option<Ephemeral>,
    ) -> usize {
        let p = self.pipes.insert(Pipe {
            key: key.clone(),
            n,
            sender: None,
            receivers: Vec::with_capacity(n.min(4)),
            streaming: false,
            ring: None,
            body_done: false,
            heads_written: false,
            started_at: None,
            last_progress: self.now,
            timer: None,
            queued: false,
            delivered: 0,
            lost: 0,
            ephemeral,
            progress_mark: 0,
        });
        self.paths.insert(key, p);
        if let Some(deadline) = self.pipes[p].ephemeral.as_ref().map(|e| e.deadline) {
            self.pipes[p].timer = Some(self.timers.insert_at(deadline, Timer::Pipe(p)));
        }
        p
    }

    /// Add a validated party to pipe `p`; start the pipe if it is complete.
    pub(crate) fn join(
        &mut self,
        p: usize,
        token: Token,
        head: Head,
        early: Vec<u8>,
        role: Role,
        multipart: Option<Box<MultipartScanner>>,
    ) {
        let minor = head.minor;
        let pipe = &self.pipes[p];
        let n = pipe.n;
        let completes = match role {
            Role::Sender => pipe.receivers.len() == n,
            Role::Receiver => pipe.sender.is_some() && pipe.receivers.len() + 1 == n,
        };
        if !completes && !self.park_allowed(token) {
            self.drop_pipe_if_empty(p);
            let msg = format!(
                "Too many waiting transfers from your address ({}); finish some first.",
                self.config.max_parked_per_ip
            );
            return self.reject(token, minor, 429, &msg);
        }
        let ring = if completes {
            match self.take_buf(p, role, &head) {
                Some(r) => Some(r),
                None => {
                    self.drop_pipe_if_empty(p);
                    return self.reject(
                        token,
                        minor,
                        503,
                        "The relay is at its limit of running transfers; try again soon.",
                    );
                }
            }
        } else {
            None
        };
        let ephemeral_id = self.pipes[p].ephemeral.as_ref().map(|e| e.id.clone());
        match role {
            Role::Sender => {
                let conn = &mut self.conns[token.0];
                conn.state = State::Sender { pipe: p };
                let decoder = match head.framing {
                    BodyFraming::None => BodyDecoder::Length { remaining: 0 },
                    BodyFraming::Length(l) => BodyDecoder::Length { remaining: l },
                    BodyFraming::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new()),
                    BodyFraming::UntilClose => BodyDecoder::UntilClose,
                };
                // `POST /` must be live: its first lines carry the new ID.
                let live_only = ephemeral_id.is_some()
                    && !self.pipes[p]
                        .ephemeral
                        .as_ref()
                        .is_some_and(|e| e.reservation);
                let hold = !live_only && self.config.sender_progress.holds(head.expect_continue);
                if head.expect_continue {
                    // An interim answer, not the response: a held sender
                    // gets it at once too (curl waits a second without it).
                    conn.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    if hold {
                        let _ = conn.flush_out();
                    }
                }
                response::status_line(&mut conn.out, minor, 200);
                conn.out
                    .extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
                conn.out
                    .extend_from_slice(response::NO_BUFFERING.as_bytes());
                if minor >= 1 {
                    conn.out
                        .extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                }
                conn.out.extend_from_slice(b"Connection: close\r\n\r\n");
                let have = self.pipes[p].receivers.len();
                let chunked = minor >= 1;
                match &ephemeral_id {
                    Some(id) => {
                        let url =
                            format!("{}/s/{id}", pages::base_url(&head, self.config.trust_proxy));
                        let text = self
                            .hooks
                            .opened(id, &url)
                            .unwrap_or_else(|| hooks::text::opened(id, &url));
                        response::stream_text(&mut self.conns[token.0].out, chunked, &text);
                    }
                    None => {
                        let out = &mut self.conns[token.0].out;
                        if have < n {
                            let line = format!("[INFO] Waiting for {n} receiver(s)...");
                            response::stream_line(out, chunked, &line);
                        }
                        if have > 0 {
                            let line = format!("[INFO] {have} receiver(s) connected.");
                            response::stream_line(out, chunked, &line);
                        }
                    }
                }
                self.pipes[p].sender = Some(SenderSide {
                    token,
                    minor,
                    framing: head.framing,
                    decoder,
                    multipart,
                    multipart_done: false,
                    content_type: head.content_type,
                    content_disposition: head.content_disposition,
                    x_piping: head.x_piping,
                    early,
                    body_bytes: 0,
                    hold,
                });
                debug!("[{}] sender on {} (n={n})", token.0, self.pipes[p].key);
            }
            Role::Receiver => {
                // Its response closes the connection: pipelined bytes after
                // its head are never read (and a parked party keeps nothing).
                self.conns[token.0].inbuf = Vec::new();
                self.conns[token.0].state = State::Receiver { pipe: p };
                let pipe = &mut self.pipes[p];
                pipe.receivers.push(ReceiverSide {
                    token,
                    minor,
                    cursor: 0,
                    framing: OutFraming::Raw {
                        close_delimited: false,
                    },
                    head_written: false,
                });
                let have = pipe.receivers.len();
                if let Some(s) = &pipe.sender {
                    let st = s.token;
                    let text = match &ephemeral_id {
                        Some(id) => self
                            .hooks
                            .connected(id)
                            .unwrap_or_else(hooks::text::connected),
                        None => format!("[INFO] {have} receiver(s) connected.\n"),
                    };
                    sender_line(&mut self.conns[st.0].out, s, &text);
                    self.flush_party(st);
                }
                debug!("[{}] receiver {have}/{n} on {}", token.0, self.pipes[p].key);
            }
        }
        if let Some(ring) = ring {
            self.start(p, ring);
            return;
        }
        self.mark_parked(token);
        let conn = &mut self.conns[token.0];
        conn.ready.interest = match role {
            Role::Sender => Ready::WRITABLE,
            Role::Receiver => Ready::READABLE,
        };
        // Ephemeral sockets wait under their pipe's fixed deadline; a named
        // pipe's parties each wait under their own TTL.
        if self.pipes[p].ephemeral.is_none() {
            conn.timer = Some(
                self.timers
                    .insert(self.now, self.config.ttl, Timer::Conn(token)),
            );
        }
        self.flush_party(token);
        // R2/R3: edges seen while the head was read are kept in `event`. A
        // close that came in the same read as the head is one of them, and
        // no new edge will repeat it: act on what is kept, now.
        if self
            .conns
            .get(token.0)
            .is_some_and(|c| c.state != State::Dead)
        {
            self.pipe_event(p, token);
        }
    }

    fn reject(&mut self, token: Token, minor: u8, status: u16, msg: &str) {
        self.metrics.transfers_rejected += 1;
        // The client may already be sending a body we will not read.
        self.respond_error(token, minor, status, msg, false);
    }

    /// Write a parked party's pending control bytes; a failed write means
    /// it is gone.
    fn flush_party(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if let State::Sender { pipe } = conn.state {
            let held = self
                .pipes
                .get(pipe)
                .and_then(|p| p.sender.as_ref())
                .is_some_and(|s| s.token == token && s.hold);
            if held {
                conn.ready.interest.remove(Ready::WRITABLE);
                // It may wait for minutes: keep its few lines, not slack.
                conn.out.shrink_to_fit();
                return;
            }
        }
        match conn.flush_out() {
            Ok(_) => {
                if conn.out_pending() {
                    conn.ready.interest.insert(Ready::WRITABLE);
                } else {
                    conn.ready.interest.remove(Ready::WRITABLE);
                    // A parked party may wait for minutes: keep nothing.
                    conn.out = Vec::new();
                }
            }
            Err(e) => {
                debug!("[{}] write failed: {e}", token.0);
                self.kill(token, "write error");
            }
        }
    }

    /// A buffer for a pipe about to start: a kernel pipe when the zero-copy
    /// path applies (Linux, one receiver, a declared length, no multipart),
    /// else a ring from the pool; `None` at the limit (R10).
    fn take_buf(&mut self, p: usize, role: Role, arriving: &Head) -> Option<Buf> {
        if self.pool.in_use() + self.kernel_pipes >= self.config.max_streaming_pipes {
            return None;
        }
        #[cfg(target_os = "linux")]
        if self.config.splice {
            let pipe = &self.pipes[p];
            let (framing, multipart) = match (role, &pipe.sender) {
                (Role::Sender, _) => (
                    arriving.framing,
                    arriving
                        .content_type
                        .as_deref()
                        .is_some_and(|c| c.to_ascii_lowercase().starts_with(b"multipart/")),
                ),
                (Role::Receiver, Some(s)) => (s.framing, s.multipart.is_some()),
                (Role::Receiver, None) => (BodyFraming::None, false),
            };
            if pipe.n == 1 && matches!(framing, BodyFraming::Length(l) if l > 0) && !multipart {
                match KernelPipe::new(self.config.buffer_size) {
                    Ok(k) => {
                        self.kernel_pipes += 1;
                        return Some(Buf::Kernel(k));
                    }
                    Err(e) => debug!("no kernel pipe ({e}); using a ring"),
                }
            }
        }
        let _ = (p, role, arriving);
        self.pool.take().map(Buf::Ring)
    }

    /// Give a finished pipe's buffer back.
    fn return_buf(&mut self, buf: Buf) {
        match buf {
            Buf::Ring(r) => self.pool.give(r),
            #[cfg(target_os = "linux")]
            Buf::Kernel(_) => self.kernel_pipes -= 1,
        }
    }

    fn start(&mut self, p: usize, ring: Buf) {
        let now = self.now;
        let ttl = self.config.ttl;
        let pipe = &mut self.pipes[p];
        pipe.streaming = true;
        pipe.ring = Some(ring);
        pipe.started_at = Some(now);
        pipe.last_progress = now;
        if let Some(h) = pipe.timer.take() {
            self.timers.cancel(h);
        }
        pipe.timer = Some(self.timers.insert(now, ttl, Timer::Pipe(p)));
        let mut tokens: Vec<Token> = pipe.receivers.iter().map(|r| r.token).collect();
        if let Some(s) = &pipe.sender {
            tokens.push(s.token);
            if pipe.ephemeral.is_none() {
                let line = format!("[INFO] Start sending to {} receiver(s)!\n", pipe.n);
                sender_line(&mut self.conns[s.token.0].out, s, &line);
            }
        }
        for t in tokens {
            if let Some(h) = self.conns[t.0].timer.take() {
                self.timers.cancel(h);
            }
            self.unpark(t);
        }
        let pipe = &self.pipes[p];
        let multipart = pipe.sender.as_ref().is_some_and(|s| s.multipart.is_some());
        if !multipart {
            self.write_receiver_heads(p);
        }
        info!(
            "pipe {} started: {} receiver(s)",
            self.pipes[p].key, self.pipes[p].n
        );
        self.pump(p);
    }

    /// Queue each receiver's response head, forwarding the sender's headers.
    fn write_receiver_heads(&mut self, p: usize) {
        let pipe = &mut self.pipes[p];
        pipe.heads_written = true;
        let Some(s) = &pipe.sender else { return };
        let mut common = String::new();
        let (ct, cd) = match s.multipart.as_ref().and_then(|m| m.file_part()) {
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
            None => (s.content_type.clone(), s.content_disposition.clone()),
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
        for x in &s.x_piping {
            extra.extend_from_slice(b"X-Piping: ");
            extra.extend_from_slice(x);
            extra.extend_from_slice(b"\r\n");
        }
        let length = match (s.framing, &s.multipart) {
            (BodyFraming::Length(l), None) => Some(l),
            (BodyFraming::None, None) => Some(0),
            _ => None,
        };
        common.push_str(response::EXPOSE_HEADERS);
        common.push_str(response::NO_BUFFERING);
        // A sender must not be able to run script on the relay's origin.
        common.push_str("X-Content-Type-Options: nosniff\r\nContent-Security-Policy: sandbox\r\n");
        common.push_str("X-Robots-Tag: none\r\nConnection: close\r\n");
        for r in &mut pipe.receivers {
            let conn = &mut self.conns[r.token.0];
            response::status_line(&mut conn.out, r.minor, 200);
            conn.out.extend_from_slice(&extra);
            match length {
                Some(l) => {
                    let _ = std::io::Write::write_fmt(
                        &mut conn.out,
                        format_args!("Content-Length: {l}\r\n"),
                    );
                    r.framing = OutFraming::Raw {
                        close_delimited: false,
                    };
                }
                None if r.minor >= 1 => {
                    conn.out
                        .extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                    r.framing = OutFraming::Chunked(ChunkEncoder::new());
                }
                None => {
                    r.framing = OutFraming::Raw {
                        close_delimited: true,
                    };
                }
            }
            conn.out.extend_from_slice(common.as_bytes());
            conn.out.extend_from_slice(b"\r\n");
            r.head_written = true;
            conn.ready.interest.insert(Ready::WRITABLE);
        }
    }

    /// A socket event for a pipe party.
    pub(crate) fn pipe_event(&mut self, p: usize, token: Token) {
        let Some(pipe) = self.pipes.get(p) else {
            return;
        };
        let is_sender = pipe.sender.as_ref().is_some_and(|s| s.token == token);
        let until_close = pipe
            .sender
            .as_ref()
            .is_some_and(|s| s.framing == BodyFraming::UntilClose);
        if pipe.streaming {
            let conn = &self.conns[token.0];
            if !conn.ready.filtered().is_empty() || conn.ready.hung_up() {
                self.pump(p);
            }
            return;
        }
        // Parked: notice a client that left, then write what is pending
        // (in this order: a sender that closed must not be written to).
        let conn = &mut self.conns[token.0];
        if is_sender {
            let body_in_kernel = self.pipes[p]
                .sender
                .as_ref()
                .is_some_and(|s| body_complete_in_kernel(s, &conn.sock));
            if conn.ready.event.contains(Ready::ERROR)
                || (conn.ready.event.contains(Ready::HUP) && !until_close && !body_in_kernel)
            {
                // A framed body's sender that shuts down before it is read
                // has given up (R7 holds for streaming senders, whose bytes
                // we read to the end; a parked one's are never read).
                self.kill(token, "parked sender left");
            } else if conn.ready.event.contains(Ready::HUP) {
                // Its whole body is here (a half-close ends an HTTP/1.0
                // body; or the declared length is in the kernel). It may
                // have closed for good (`curl -m`) rather than half-closed
                // (`nc -N`): a write now would draw a reset and lose the
                // body, so nothing is written to it until the body is read.
                conn.ready.interest.remove(Ready::WRITABLE);
                if let Some(s) = self.pipes[p].sender.as_mut() {
                    if !s.hold {
                        debug!(
                            "[{}] parked sender closed its side; holding its response",
                            token.0
                        );
                    }
                    s.hold = true;
                }
            }
        } else {
            match conn.drain_input(&mut self.scratch, 64 * 1024) {
                Io::Eof | Io::Failed(_) => self.kill(token, "parked receiver left"),
                Io::Moved(_) | Io::WouldBlock => {}
            }
        }
        if self
            .conns
            .get(token.0)
            .is_some_and(|c| c.state != State::Dead && c.out_pending())
        {
            self.flush_party(token);
        }
    }

    /// Move bytes until nothing moves or the budget is spent.
    pub(crate) fn pump(&mut self, p: usize) {
        let mut budget = PUMP_BUDGET;
        loop {
            let Some(pipe) = self.pipes.get(p) else {
                return;
            };
            if !pipe.streaming {
                return;
            }
            let mut progressed = false;
            if let Some(s) = &pipe.sender {
                let st = s.token;
                if self.conns[st.0].out_pending() {
                    self.flush_party(st);
                }
            }
            let Some(pipe) = self.pipes.get(p) else {
                return;
            };
            if !pipe.body_done {
                match self.ingress(p) {
                    Ingress::Moved(n) => {
                        progressed = n > 0;
                        budget = budget.saturating_sub(n);
                    }
                    Ingress::Idle => {}
                    Ingress::Done => {
                        progressed = true;
                        self.pipes[p].body_done = true;
                        if let Some(s) = self.pipes[p].sender.as_mut() {
                            // The body is read: a held response may go now.
                            s.hold = false;
                            let t = s.token;
                            self.conns[t.0].ready.interest.remove(Ready::READABLE);
                            self.flush_party(t);
                        }
                    }
                    Ingress::Cut(why) => {
                        self.abort(p, &why, true);
                        return;
                    }
                }
            }
            // Heads of multipart transfers wait for the file part's headers.
            let pipe = &self.pipes[p];
            if !pipe.heads_written
                && pipe
                    .sender
                    .as_ref()
                    .and_then(|s| s.multipart.as_ref())
                    .is_some_and(|m| m.file_part().is_some())
            {
                self.write_receiver_heads(p);
            }
            let mut i = 0;
            while i < self.pipes[p].receivers.len() {
                match self.egress(p, i, budget) {
                    Egress::Moved => progressed = true,
                    Egress::Idle => {}
                    Egress::Gone => {
                        let t = self.pipes[p].receivers[i].token;
                        self.kill(t, "receiver left");
                        if !self.pipes.contains(p) {
                            return;
                        }
                        progressed = true;
                        continue;
                    }
                }
                i += 1;
            }
            let pipe = &mut self.pipes[p];
            if let Some(ring) = pipe.ring.as_mut() {
                let min = pipe.receivers.iter().map(|r| r.cursor).min();
                ring.release_to(min.unwrap_or(ring.end_offset()));
            }
            if progressed {
                pipe.last_progress = self.now;
                if let Some(e) = &pipe.ephemeral {
                    let bytes = pipe.ring.as_ref().map_or(0, Buf::end_offset);
                    if bytes >= pipe.progress_mark + (1 << 20) {
                        pipe.progress_mark = bytes;
                        self.hooks.progress(&e.id, bytes);
                    }
                }
            }
            if pipe.body_done {
                self.finish_drained_receivers(p);
                if self.pipes.get(p).is_some_and(|pp| pp.receivers.is_empty()) {
                    self.complete(p);
                    return;
                }
            }
            if !progressed {
                break;
            }
            if budget == 0 {
                let pipe = &mut self.pipes[p];
                if !pipe.queued {
                    pipe.queued = true;
                    self.queued.push(p);
                }
                break;
            }
        }
        self.update_interest(p);
    }

    fn ingress(&mut self, p: usize) -> Ingress {
        let Server {
            pipes,
            conns,
            scratch,
            config,
            metrics,
            ..
        } = self;
        let pipe = &mut pipes[p];
        let (Some(s), Some(ring)) = (pipe.sender.as_mut(), pipe.ring.as_mut()) else {
            return Ingress::Idle;
        };
        let reserve = if s.multipart.is_some() {
            MultipartScanner::MAX_HELD
        } else {
            0
        };
        let limit = config.max_upload_bytes;
        if let BodyDecoder::Length { remaining: 0 } = s.decoder {
            // Nothing (more) to read; a zero-byte read would look like EOF.
            return finish_body(s);
        }
        let mut moved = 0usize;
        // Body bytes that came with the head go first.
        while !s.early.is_empty() {
            let room = ring.free().saturating_sub(reserve);
            if room == 0 {
                return Ingress::Moved(moved);
            }
            let take = room.min(s.early.len());
            let chunk: Vec<u8> = s.early.drain(..take).collect();
            match feed(s, ring, &chunk, limit) {
                Ok((n, done)) => {
                    moved += take;
                    metrics.bytes_relayed += n as u64;
                    if done {
                        s.early = Vec::new();
                        return finish_body(s);
                    }
                }
                Err(why) => return Ingress::Cut(why),
            }
        }
        let conn = &mut conns[s.token.0];
        let room = ring.free().saturating_sub(reserve);
        if room == 0 || !conn.ready.event.contains(Ready::READABLE) {
            return Ingress::Moved(moved);
        }
        let fast = s.multipart.is_none();
        let outcome = match (&mut s.decoder, fast) {
            (BodyDecoder::Length { remaining }, true) => {
                let want = (*remaining).min(room as u64) as usize;
                match ring.fill_from(&mut conn.sock, want) {
                    Ok(Filled::Eof) => {
                        conn.read_eof = true;
                        conn.ready.event.remove(Ready::READABLE);
                        Io::Eof
                    }
                    Ok(Filled::Moved(n)) => {
                        *remaining -= n as u64;
                        s.body_bytes += n as u64;
                        metrics.bytes_relayed += n as u64;
                        moved += n;
                        if *remaining == 0 {
                            return finish_body(s);
                        }
                        Io::Moved(n)
                    }
                    Ok(Filled::Blocked { socket_empty }) => {
                        if socket_empty {
                            conn.ready.event.remove(Ready::READABLE);
                        }
                        Io::WouldBlock
                    }
                    Err(e) => Io::Failed(e),
                }
            }
            _ => {
                let cap = room.min(scratch.len());
                match conn.read_into(&mut scratch[..cap]) {
                    Io::Moved(n) => match feed(s, ring, &scratch[..n], limit) {
                        Ok((m, done)) => {
                            moved += n;
                            metrics.bytes_relayed += m as u64;
                            if done {
                                return finish_body(s);
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
                if matches!(s.decoder, BodyDecoder::UntilClose) {
                    finish_body(s)
                } else {
                    Ingress::Cut(format!(
                        "The sender's connection ended after {} bytes, before the body was complete.",
                        s.body_bytes
                    ))
                }
            }
            Io::Failed(e) => Ingress::Cut(format!(
                "The sender's connection failed after {} bytes ({e}).",
                s.body_bytes
            )),
        }
    }

    fn egress(&mut self, p: usize, i: usize, budget: usize) -> Egress {
        let Server {
            pipes,
            conns,
            scratch,
            ..
        } = self;
        let pipe = &mut pipes[p];
        let r = &mut pipe.receivers[i];
        let conn = &mut conns[r.token.0];
        // Receivers have nothing to say; reading notices one that left.
        if conn.ready.can_read() {
            if let Io::Eof | Io::Failed(_) = conn.drain_input(scratch, 64 * 1024) {
                return Egress::Gone;
            }
        }
        if conn.ready.event.contains(Ready::ERROR) {
            return Egress::Gone;
        }
        if conn.out_pending() {
            match conn.flush_out() {
                Ok(true) => {}
                Ok(false) => return Egress::Idle,
                Err(_) => return Egress::Gone,
            }
        }
        if !r.head_written {
            return Egress::Idle;
        }
        let Some(ring) = pipe.ring.as_mut() else {
            return Egress::Idle;
        };
        let avail = ring.end_offset() - r.cursor;
        let pending_framing = matches!(&r.framing, OutFraming::Chunked(e) if e.has_pending());
        if avail == 0 && !pending_framing {
            return Egress::Idle;
        }
        if !conn.ready.event.contains(Ready::WRITABLE) {
            return Egress::Idle;
        }
        let limit = budget.max(1);
        let res = match &mut r.framing {
            OutFraming::Raw { .. } => ring.drain_into(&mut conn.sock, r.cursor, limit),
            OutFraming::Chunked(enc) => {
                let (a, b) = ring.readable_from(r.cursor);
                let a = &a[..a.len().min(limit)];
                let b = &b[..b.len().min(limit - a.len())];
                enc.write_to(&mut conn.sock, a, b)
            }
        };
        match res {
            Ok(0) if avail > 0 && matches!(r.framing, OutFraming::Raw { .. }) => Egress::Gone,
            Ok(n) => {
                r.cursor += n as u64;
                Egress::Moved
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                conn.ready.event.remove(Ready::WRITABLE);
                Egress::Idle
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Egress::Idle,
            Err(_) => Egress::Gone,
        }
    }

    /// Receivers that have every byte get their terminator and are let go.
    fn finish_drained_receivers(&mut self, p: usize) {
        let pipe = &mut self.pipes[p];
        let Some(end) = pipe.ring.as_ref().map(Buf::end_offset) else {
            return;
        };
        if !pipe.heads_written {
            return;
        }
        let mut done = Vec::new();
        let mut i = 0;
        while i < pipe.receivers.len() {
            let r = &pipe.receivers[i];
            let framing_pending = matches!(&r.framing, OutFraming::Chunked(e) if e.has_pending());
            if r.cursor < end || framing_pending || self.conns[r.token.0].out_pending() {
                i += 1;
                continue;
            }
            done.push(pipe.receivers.swap_remove(i));
        }
        pipe.delivered += done.len();
        for r in done {
            let conn = &mut self.conns[r.token.0];
            if let OutFraming::Chunked(_) = r.framing {
                conn.out.extend_from_slice(LAST_CHUNK);
            }
            // Not a pipe party any more: its ending is its own.
            conn.state = State::Responding { keep_alive: false };
            conn.linger = false;
            self.finish_conn(r.token);
        }
    }

    /// The body is complete and every receiver has it (or left).
    fn complete(&mut self, p: usize) {
        let Some(pipe) = self.remove_pipe(p) else {
            return;
        };
        let bytes = pipe.ring.as_ref().map_or(0, Buf::end_offset);
        if let Some(ring) = pipe.ring {
            self.return_buf(ring);
        }
        let took = pipe.started_at.map_or(Duration::ZERO, |t| self.now - t);
        let outcome = if pipe.lost == 0 {
            "complete"
        } else {
            "partial"
        };
        if pipe.lost == 0 {
            self.metrics.transfers_complete += 1;
        } else {
            self.metrics.transfers_cut += 1;
        }
        info!(
            "transfer {} {outcome}: {bytes} bytes to {}/{} receiver(s) in {:.3}s",
            pipe.key,
            pipe.delivered,
            pipe.n,
            took.as_secs_f64()
        );
        if let Some(e) = &pipe.ephemeral {
            self.hooks.progress(&e.id, bytes);
        }
        if let Some(s) = pipe.sender {
            let text = match (&pipe.ephemeral, pipe.lost) {
                (Some(e), 0) => self
                    .hooks
                    .end(&e.id, bytes, took)
                    .unwrap_or_else(|| hooks::text::end(bytes)),
                (None, 0) => format!("[INFO] Sent successfully! ({bytes} bytes)\n"),
                _ => format!(
                    "[ERROR] Sent {bytes} bytes to {} of {} receiver(s); {} left before the end.\n",
                    pipe.delivered, pipe.n, pipe.lost
                ),
            };
            let ok = pipe.lost == 0;
            self.end_sender_text(s.token, s.chunked_out(), &text, false, ok);
        }
    }

    /// End a sender's response with an `[ERROR]` line: the transfer failed.
    fn end_sender(&mut self, token: Token, chunked: bool, line: &str) {
        self.end_sender_text(token, chunked, &format!("{line}\n"), true, false);
    }

    /// Write the sender's last text, end its response, and let it go.
    /// `linger` unless its whole body was read.
    ///
    /// Unless every receiver got every byte (`ok`), the response ends in a
    /// way the client reports as an error, so that `curl -T ... && next`
    /// does not go on after a failed transfer: a chunked response without
    /// its final chunk, a close-delimited one with a reset once the text is
    /// written.
    fn end_sender_text(&mut self, token: Token, chunked: bool, text: &str, linger: bool, ok: bool) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.state == State::Dead {
            return;
        }
        conn.linger = linger;
        response::stream_text(&mut conn.out, chunked, text);
        if chunked && ok {
            conn.out.extend_from_slice(LAST_CHUNK);
        }
        conn.reset_after_write = !ok && !chunked;
        conn.state = State::Responding { keep_alive: false };
        self.finish_conn(token);
    }

    /// The shutdown grace ran out while `p` was streaming: cut it.
    pub(crate) fn pipe_shutdown_cut(&mut self, p: usize) {
        self.abort(
            p,
            "The relay shut down before the transfer ended; send it again.",
            true,
        );
    }

    /// Take a pipe out of the tables; its parties are left to the caller.
    fn remove_pipe(&mut self, p: usize) -> Option<Pipe> {
        let pipe = self.pipes.try_remove(p)?;
        if self.paths.get(&pipe.key) == Some(&p) {
            self.paths.remove(&pipe.key);
        }
        if let Some(h) = pipe.timer {
            self.timers.cancel(h);
        }
        Some(pipe)
    }

    /// End a streaming pipe early: receivers see a cut, the sender (if
    /// still there and `tell_sender`) gets an `[ERROR]` line.
    fn abort(&mut self, p: usize, why: &str, tell_sender: bool) {
        let Some(mut pipe) = self.remove_pipe(p) else {
            return;
        };
        let bytes = pipe.ring.as_ref().map_or(0, Buf::end_offset);
        self.metrics.transfers_cut += 1;
        let took = pipe.started_at.map_or(Duration::ZERO, |t| self.now - t);
        info!(
            "transfer {} cut: {bytes} bytes in {:.3}s: {why}",
            pipe.key,
            took.as_secs_f64()
        );
        for r in pipe.receivers {
            self.cut_receiver(r, pipe.ring.as_mut(), why);
        }
        if let Some(ring) = pipe.ring {
            self.return_buf(ring);
        }
        if let Some(s) = pipe.sender {
            if tell_sender {
                let mut line = String::from("[ERROR] ");
                let _ = write!(line, "{why}");
                self.end_sender(s.token, s.chunked_out(), &line);
            } else {
                self.kill_detached(s.token, why);
            }
        }
    }

    /// A receiver whose transfer was cut: it must be able to tell.
    ///
    /// What it is owed and the kernel takes now (its head, the bytes it has
    /// not read from the ring) is written first, without waiting, so that
    /// a cut shows as a short body rather than an empty reply.
    fn cut_receiver(&mut self, mut r: ReceiverSide, ring: Option<&mut Buf>, why: &str) {
        let t = r.token;
        let Some(conn) = self.conns.get_mut(t.0) else {
            return;
        };
        if conn.state == State::Dead {
            return;
        }
        conn.state = State::Responding { keep_alive: false };
        if !r.head_written {
            // Nothing was sent yet: an honest error status is possible.
            conn.out.clear();
            conn.out_pos = 0;
            let msg = format!("The transfer failed before it began: {why}");
            self.respond_error(t, r.minor, 502, &msg, false);
            return;
        }
        conn.ready.event.insert(Ready::WRITABLE);
        if let (Ok(true), Some(ring)) = (conn.flush_out(), ring) {
            while r.cursor < ring.end_offset() {
                let res = match &mut r.framing {
                    OutFraming::Raw { .. } => ring.drain_into(&mut conn.sock, r.cursor, 1 << 20),
                    OutFraming::Chunked(enc) => {
                        let (a, b) = ring.readable_from(r.cursor);
                        enc.write_to(&mut conn.sock, a, b)
                    }
                };
                match res {
                    Ok(n) if n > 0 => r.cursor += n as u64,
                    _ => break,
                }
            }
        }
        match r.framing {
            OutFraming::Raw {
                close_delimited: true,
            } => {
                // A close-delimited body cannot show a cut by its end; a
                // reset can.
                let _ = socket2::SockRef::from(&conn.sock).set_linger(Some(Duration::ZERO));
                self.kill(t, "cut (reset)");
            }
            _ => {
                // No terminator is written: the missing final chunk or the
                // short Content-Length is the signal.
                let _ = conn.sock.shutdown(std::net::Shutdown::Write);
                self.kill(t, "cut");
            }
        }
    }

    /// Close a party that was already taken out of its pipe.
    fn kill_detached(&mut self, token: Token, why: &str) {
        if let Some(conn) = self.conns.get_mut(token.0) {
            if conn.state != State::Dead {
                conn.state = State::Responding { keep_alive: false };
                self.kill(token, why);
            }
        }
    }

    /// A party's connection is gone (called from `kill`).
    pub(crate) fn pipe_party_gone(&mut self, p: usize, token: Token) {
        let Some(pipe) = self.pipes.get_mut(p) else {
            return;
        };
        if pipe.sender.as_ref().is_some_and(|s| s.token == token) {
            let s = pipe.sender.take();
            if pipe.streaming {
                if !pipe.body_done {
                    let bytes = s.map_or(0, |s| s.body_bytes);
                    let why = format!(
                        "The sender left after {bytes} bytes, before the body was complete."
                    );
                    self.abort(p, &why, false);
                }
                // A sender that leaves after its whole body is fine: the
                // receivers still get every byte.
            } else {
                self.metrics.transfers_abandoned += 1;
                if pipe.ephemeral.is_some() {
                    // The ID was for this upload only: whoever waits for it
                    // learns now rather than at the deadline.
                    self.end_waiting(p, 404, "The upload into this socket was abandoned.");
                } else {
                    self.drop_pipe_if_empty(p);
                }
            }
            return;
        }
        let Some(i) = pipe.receivers.iter().position(|r| r.token == token) else {
            return;
        };
        pipe.receivers.swap_remove(i);
        if pipe.streaming {
            pipe.lost += 1;
            let cursor_note = pipe.ring.as_ref().map_or(0, Buf::end_offset);
            if pipe.receivers.is_empty() && pipe.delivered == 0 {
                let why =
                    format!("All receivers left; the transfer was cut after {cursor_note} bytes.");
                self.abort(p, &why, true);
                return;
            }
            let others = pipe.receivers.len();
            if let Some(s) = &pipe.sender {
                let line = format!(
                    "[ERROR] A receiver left before the end; the {others} other receiver(s) go on.\n"
                );
                sender_line(&mut self.conns[s.token.0].out, s, &line);
                if !s.hold {
                    self.conns[s.token.0].ready.interest.insert(Ready::WRITABLE);
                }
            }
            if !pipe.queued {
                pipe.queued = true;
                self.queued.push(p);
            }
        } else {
            self.metrics.transfers_abandoned += 1;
            let have = pipe.receivers.len();
            let n = pipe.n;
            if let Some(s) = &pipe.sender {
                let line =
                    format!("[INFO] A receiver left; {have} of {n} receiver(s) connected.\n");
                let st = s.token;
                sender_line(&mut self.conns[st.0].out, s, &line);
                self.flush_party(st);
            }
            self.drop_pipe_if_empty(p);
        }
    }

    /// A pipe nobody is attached to is removed, so its path is free at
    /// once; an unclaimed reservation stays until its deadline.
    fn drop_pipe_if_empty(&mut self, p: usize) {
        if self.pipes.get(p).is_some_and(|pp| {
            pp.sender.is_none()
                && pp.receivers.is_empty()
                && !pp
                    .ephemeral
                    .as_ref()
                    .is_some_and(|e| e.reservation && !e.claimed)
        }) {
            self.remove_pipe(p);
        }
    }

    /// End a waiting pipe: each parked receiver gets `status`, a parked
    /// sender gets the line, and the pipe is removed.
    fn end_waiting(&mut self, p: usize, status: u16, msg: &str) {
        let Some(pipe) = self.remove_pipe(p) else {
            return;
        };
        for r in pipe.receivers {
            self.conns[r.token.0].state = State::Responding { keep_alive: false };
            self.respond_error(r.token, r.minor, status, msg, false);
        }
        if let Some(s) = pipe.sender {
            self.end_sender(s.token, s.chunked_out(), &format!("[ERROR] {msg}"));
        }
    }

    /// A parked party waited longer than the TTL.
    pub(crate) fn wait_expired(&mut self, token: Token) {
        let Some(conn) = self.conns.get(token.0) else {
            return;
        };
        let (State::Sender { pipe: p } | State::Receiver { pipe: p }) = conn.state else {
            return;
        };
        let secs = self.config.ttl.as_secs();
        self.metrics.transfers_timeout += 1;
        let n = self.pipes.get(p).map_or(1, |pp| pp.n);
        match self.detach_parked(p, token) {
            Some((Role::Sender, minor)) => {
                let line =
                    format!("[ERROR] Timed out: {n} receiver(s) did not arrive within {secs} s.");
                self.end_sender(token, minor >= 1, &line);
            }
            Some((Role::Receiver, minor)) => {
                let msg = format!("Timed out: no sender arrived within {secs} s.");
                self.respond_error(token, minor, 408, &msg, false);
            }
            None => self.kill(token, "timer"),
        }
    }

    /// Take a parked party out of its pipe and say which role it had; the
    /// connection itself stays open for the answer that follows.
    fn detach_parked(&mut self, p: usize, token: Token) -> Option<(Role, u8)> {
        let pipe = self.pipes.get_mut(p)?;
        let found = if pipe.sender.as_ref().is_some_and(|s| s.token == token) {
            pipe.sender.take().map(|s| (Role::Sender, s.minor))
        } else if let Some(i) = pipe.receivers.iter().position(|r| r.token == token) {
            let r = pipe.receivers.swap_remove(i);
            Some((Role::Receiver, r.minor))
        } else {
            None
        };
        self.conns[token.0].state = State::Responding { keep_alive: false };
        self.drop_pipe_if_empty(p);
        found
    }

    /// Server shutdown reaches a parked party.
    pub(crate) fn pipe_party_shutdown(&mut self, token: Token) {
        let Some(conn) = self.conns.get(token.0) else {
            return;
        };
        let (State::Sender { pipe: p } | State::Receiver { pipe: p }) = conn.state else {
            return;
        };
        match self.detach_parked(p, token) {
            Some((Role::Sender, minor)) => {
                self.end_sender(token, minor >= 1, "[ERROR] The relay is shutting down.")
            }
            Some((Role::Receiver, minor)) => {
                self.respond_error(token, minor, 503, "The relay is shutting down.", false)
            }
            None => self.kill(token, "shutdown"),
        }
    }

    /// A pipe's timer: an ephemeral socket's deadline while it waits, the
    /// stall check while it streams.
    pub(crate) fn pipe_timer(&mut self, p: usize, handle: crate::timer::Handle) {
        let ttl = self.config.ttl;
        let now = self.now;
        let Some(pipe) = self.pipes.get_mut(p) else {
            return;
        };
        if pipe.timer != Some(handle) {
            return;
        }
        pipe.timer = None;
        if !pipe.streaming {
            self.ephemeral_expired(p);
            return;
        }
        let due = pipe.last_progress + ttl;
        if now >= due {
            let why = format!(
                "No byte moved for {} s; the transfer was cut.",
                ttl.as_secs()
            );
            self.abort(p, &why, true);
        } else {
            pipe.timer = Some(self.timers.insert_at(due, Timer::Pipe(p)));
        }
    }

    /// An ephemeral socket's wait is over: the sender is told, a waiting
    /// receiver gets `404`, a bare reservation vanishes.
    fn ephemeral_expired(&mut self, p: usize) {
        let Some(pipe) = self.remove_pipe(p) else {
            return;
        };
        let id = pipe
            .ephemeral
            .as_ref()
            .map_or("", |e| e.id.as_str())
            .to_string();
        let attached = usize::from(pipe.sender.is_some()) + pipe.receivers.len();
        if attached > 0 {
            self.metrics.transfers_timeout += 1;
        }
        debug!("ephemeral socket {id} expired");
        for r in pipe.receivers {
            self.conns[r.token.0].state = State::Responding { keep_alive: false };
            let msg = self
                .hooks
                .not_found(&id)
                .unwrap_or_else(|| hooks::text::not_found(&id));
            self.respond_error(r.token, r.minor, 404, &msg, false);
        }
        if let Some(s) = pipe.sender {
            let text = self.hooks.timeout(&id).unwrap_or_else(hooks::text::timeout);
            self.end_sender_text(s.token, s.chunked_out(), &text, true, false);
        }
    }

    fn update_interest(&mut self, p: usize) {
        let Some(pipe) = self.pipes.get(p) else {
            return;
        };
        let end = pipe.ring.as_ref().map_or(0, Buf::end_offset);
        if let Some(s) = &pipe.sender {
            let reserve = if s.multipart.is_some() {
                MultipartScanner::MAX_HELD
            } else {
                0
            };
            let want_read = pipe.streaming
                && !pipe.body_done
                && pipe.ring.as_ref().is_some_and(|r| r.free() > reserve);
            let conn = &mut self.conns[s.token.0];
            let mut interest = Ready::EMPTY;
            if want_read {
                interest.insert(Ready::READABLE);
            }
            if conn.out_pending() && !s.hold {
                interest.insert(Ready::WRITABLE);
            }
            conn.ready.interest = interest;
        }
        for r in &pipe.receivers {
            let conn = &mut self.conns[r.token.0];
            let mut interest = Ready::READABLE;
            let pending = matches!(&r.framing, OutFraming::Chunked(e) if e.has_pending());
            if conn.out_pending() || (r.head_written && (r.cursor < end || pending)) {
                interest.insert(Ready::WRITABLE);
            }
            conn.ready.interest = interest;
        }
    }
}

/// Whether a parked sender's declared body is already complete: the bytes
/// that came with its head plus those waiting in the kernel cover its
/// `Content-Length`. Then a half-close is the end of a complete upload (as
/// `nc -N` sends), not a sender giving up.
fn body_complete_in_kernel(s: &SenderSide, sock: &mio::net::TcpStream) -> bool {
    let BodyFraming::Length(len) = s.framing else {
        return false;
    };
    #[cfg(target_os = "linux")]
    {
        let queued = rustix::io::ioctl_fionread(sock).unwrap_or(0);
        (s.early.len() as u64).saturating_add(queued) >= len
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = sock;
        s.early.len() as u64 >= len
    }
}

/// Never expected: the pump feeds no more than the buffer has room for.
/// Should it happen, the transfer is cut rather than silently short.
const LOST: &str = "Internal error: the relay's buffer refused bytes; the transfer was cut.";

/// Decode `bytes` of the sender's body into the ring. Returns payload bytes
/// stored and whether the body ended. Bytes after the body's end are dropped.
fn feed(
    s: &mut SenderSide,
    ring: &mut Buf,
    bytes: &[u8],
    limit: u64,
) -> Result<(usize, bool), String> {
    let before = ring.end_offset();
    let mut done = false;
    let mut body = 0usize;
    let mut over = false;
    let allowed = if limit == 0 {
        u64::MAX
    } else {
        limit.saturating_sub(s.body_bytes)
    };
    let mut emit = |data: &[u8], s: &mut SenderSide| -> Result<(), String> {
        // Bytes past the limit are never forwarded.
        let room = allowed.saturating_sub(body as u64);
        if data.len() as u64 > room {
            over = true;
        }
        let data = &data[..data.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        body += data.len();
        match s.multipart.as_mut() {
            Some(mp) => {
                if !s.multipart_done {
                    let mut short = false;
                    s.multipart_done = mp
                        .feed(data, &mut |d| {
                            short |= ring.push(d) < d.len();
                        })
                        .map_err(|e| format!("Bad multipart body: {e}"))?;
                    if short {
                        return Err(LOST.to_string());
                    }
                }
                Ok(())
            }
            None => {
                if ring.push(data) < data.len() {
                    return Err(LOST.to_string());
                }
                Ok(())
            }
        }
    };
    match &mut s.decoder {
        BodyDecoder::Length { remaining } => {
            let take = (*remaining).min(bytes.len() as u64) as usize;
            *remaining -= take as u64;
            done = *remaining == 0;
            let data = &bytes[..take];
            let mut tmp = std::mem::replace(&mut s.decoder, BodyDecoder::UntilClose);
            let r = emit(data, s);
            std::mem::swap(&mut s.decoder, &mut tmp);
            r?;
        }
        BodyDecoder::UntilClose => emit(bytes, s)?,
        BodyDecoder::Chunked(_) => {
            let mut pos = 0;
            while pos < bytes.len() {
                let BodyDecoder::Chunked(dec) = &mut s.decoder else {
                    break;
                };
                let d = dec
                    .decode(&bytes[pos..])
                    .map_err(|e| format!("Bad chunked body: {e}"))?;
                let data = &bytes[pos..][d.data.clone()];
                pos += d.consumed;
                emit(data, s)?;
                if d.done {
                    done = true;
                    break;
                }
                if d.consumed == 0 {
                    break;
                }
            }
        }
    }
    s.body_bytes += body as u64;
    if over {
        return Err(format!(
            "The upload passed the limit of {limit} bytes; the transfer was cut."
        ));
    }
    Ok(((ring.end_offset() - before) as usize, done))
}

fn finish_body(s: &mut SenderSide) -> Ingress {
    if let Some(mp) = &s.multipart {
        if let Err(e) = mp.finish() {
            return Ingress::Cut(format!("Bad multipart body: {e}"));
        }
    }
    Ingress::Done
}
