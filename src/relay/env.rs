//! What the relay core and its pump share, and how they meet the world:
//! the [`Env`] the loop lends them (the parties' connections, timers,
//! counters, hooks), the [`Effect`]s they hand back, and a pipe request as
//! the table takes it. Sans-io: nothing here reads the clock or owns a
//! socket.

use std::time::Instant;

use mio::Token;

use crate::hooks::Hooks;
use crate::http::multipart::MultipartScanner;
use crate::http::request::BodyFraming;
use crate::http::response;
use crate::metrics::Metrics;
use crate::timer::Handle;
pub use crate::wire::End;
use crate::wire::{OutBuf, Readiness, Stream};

/// Bytes a pump may move before it yields to the rest of the loop (R8).
pub const PUMP_BUDGET: usize = 1 << 20;

/// Bytes of progress lines a held sender's output may collect; past it the
/// intermediate lines are dropped (its last line is always written), so a
/// receiver that comes and goes in a loop cannot grow a parked sender.
pub(crate) const HELD_LINES_MAX: usize = 4096;

/// A pipe's key in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PipeId(pub usize);

/// Which side of a pipe a party is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `PUT`/`POST`: the body comes from it.
    Sender,
    /// `GET`: the body goes to it.
    Receiver,
}

/// What a relay timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayTimer {
    /// The pipe's own timer: an ephemeral socket's deadline while it
    /// waits, the stall check while it streams.
    Pipe(PipeId),
    /// A parked party's wait (`--ttl`).
    Wait(PipeId, Token),
}

/// A party's connection as the core sees it.
pub struct PartyIo<'a> {
    /// Its byte stream.
    pub stream: &'a mut dyn Stream,
    /// Kernel edges and wishes.
    pub ready: &'a mut Readiness,
    /// Control bytes to write before anything else.
    pub out: &'a mut OutBuf,
    /// Its peer ended its sending side.
    pub read_eof: &'a mut bool,
}

impl std::fmt::Debug for PartyIo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartyIo")
            .field("ready", &self.ready)
            .field("out", &self.out)
            .field("read_eof", &self.read_eof)
            .finish_non_exhaustive()
    }
}

/// Everything the core reaches outside itself.
pub trait Env {
    /// The connection `t`, if it exists.
    fn io(&mut self, t: Token) -> Option<PartyIo<'_>>;
    /// Whether `t`'s client may park one more party (`--max-parked-per-ip`).
    fn may_park(&mut self, t: Token) -> bool;
    /// The limit `may_park` holds to, for the refusal's line.
    fn park_limit(&self) -> usize;
    /// Arm a timer.
    fn arm(&mut self, at: Instant, what: RelayTimer) -> Handle;
    /// Cancel a timer (a stale handle is a no-op).
    fn disarm(&mut self, h: Handle);
    /// The counters.
    fn metrics(&mut self) -> &mut Metrics;
    /// The embedder's hooks.
    fn hooks(&mut self) -> &mut dyn Hooks;
    /// Whether `t`'s stream can be spliced: it has a descriptor and the
    /// bytes on it are the body itself (not TLS records).
    fn can_splice(&mut self, t: Token) -> bool;
}

/// What the event loop must do once a core call returns.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// The request was refused: answer `status` with the `[ERROR]` line and
    /// close. It never became a party.
    Refuse {
        /// The connection.
        token: Token,
        /// Its HTTP minor version.
        minor: u8,
        /// The status.
        status: u16,
        /// The line, without `[ERROR] `.
        msg: String,
    },
    /// The connection is now a party of `pipe`.
    Joined {
        /// The connection.
        token: Token,
        /// Its pipe.
        pipe: PipeId,
        /// Its side.
        role: Role,
    },
    /// Count it as waiting against its address.
    Park(Token),
    /// It no longer waits.
    Unpark(Token),
    /// It is no longer a party; its `out` holds the end of its response.
    Release {
        /// The connection.
        token: Token,
        /// How the connection ends.
        end: End,
    },
    /// It is no longer a party and is gone (or must go): close it now,
    /// with a FIN after what the kernel already took.
    Close(Token),
    /// It is no longer a party: reset it now (a close-delimited body was
    /// cut, and only a reset says so).
    Reset(Token),
}

/// A pipe request: what the relay keeps of its head.
#[derive(Debug)]
pub struct Request {
    /// The connection.
    pub token: Token,
    /// The pipe's key: the path, or `/s/<id>`.
    pub key: String,
    /// Receivers the pipe is for (`?n=`).
    pub n: usize,
    /// HTTP minor version.
    pub minor: u8,
    /// It asked `Expect: 100-continue`.
    pub expect_continue: bool,
    /// Which side, with a sender's upload.
    pub side: Side,
}

/// A request's side.
#[derive(Debug)]
pub enum Side {
    /// A sender and what it uploads.
    Sender(Box<Upload>),
    /// A receiver.
    Receiver,
}

/// A sender's upload as it arrived: its framing, the headers a receiver
/// gets, a multipart scanner when the body is a form, and body bytes that
/// came with the head.
#[derive(Debug)]
pub struct Upload {
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// `Content-Type`.
    pub content_type: Option<Vec<u8>>,
    /// `Content-Disposition`.
    pub content_disposition: Option<Vec<u8>>,
    /// `X-Piping` values.
    pub x_piping: Vec<Vec<u8>>,
    /// The form's scanner, when the body is `multipart/form-data`.
    pub multipart: Option<Box<MultipartScanner>>,
    /// Body bytes read with the head.
    pub early: Vec<u8>,
}

/// Queue a progress text for a sender (dropped when held and full).
pub(crate) fn sender_text(out: &mut OutBuf, hold: bool, chunked: bool, text: &str) {
    if hold && out.pending() >= HELD_LINES_MAX {
        return;
    }
    response::stream_text(out.buf(), chunked, text);
}
