//! The events family: Server-Sent Events streams for signal swarms
//! (`/signal`, [`swarms`]) and event topics (`/events/<topic>`, [`topics`]).
//!
//! An event stream is a long-lived response. Each stream has a bounded
//! outbound queue (`--stream-queue-bytes`): an event is encoded once and
//! appended to every subscriber's queue, and a subscriber whose queue would
//! pass the bound is dropped with a final comment saying why, so one slow
//! reader never delays the others and never grows memory. A comment
//! heartbeat keeps proxies from closing idle streams. A stream connection's
//! state is [`State::Events`] holding its [`EventStream`]; the swarms and
//! topics name their streams by token.

pub mod sse;
pub mod swarms;
pub mod topics;

use mio::Token;

use crate::http::{response, Head};
use crate::net::{Ctx, End, State};
use crate::wire::{Io, Ready};
use sse::{check_field, comment, frame, EventStream, Subscription};

/// Why a stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamEnd {
    /// It finished normally (its swarm ended, the relay stops).
    Done,
    /// It fell too far behind.
    Slow,
}

/// The events family's tables.
#[derive(Debug, Default)]
pub struct Events {
    swarms: swarms::Swarms,
    topics: topics::Topics,
}

/// Gauges for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventGauges {
    /// Swarms.
    pub swarms: usize,
    /// Topics with subscribers.
    pub topics: usize,
}

impl Events {
    /// Give back what the tables hold beyond what they use.
    pub fn shrink(&mut self) {
        self.swarms.shrink_to_fit();
        self.topics.shrink_to_fit();
    }

    /// No swarm, no topic.
    pub fn new() -> Events {
        Events::default()
    }

    /// Gauges counted from the tables.
    pub fn gauges(&self) -> EventGauges {
        EventGauges {
            swarms: self.swarms.len(),
            topics: self.topics.len(),
        }
    }

    // --- The loop's moments -----------------------------------------------------

    /// Readiness of a stream: write what is queued, notice a client that
    /// left.
    pub fn ready(&mut self, ctx: &mut Ctx, t: Token) {
        self.flush(ctx, t);
    }

    /// The stream's timer: its heartbeat.
    pub fn timer(&mut self, ctx: &mut Ctx, t: Token) {
        let mut beat = Vec::with_capacity(16);
        comment("heartbeat", &mut beat);
        if self.send(ctx, t, &beat) {
            let heartbeat = ctx.config.heartbeat;
            ctx.arm(t, heartbeat);
        }
    }

    /// The relay is stopping: the stream ends.
    pub fn shutdown(&mut self, ctx: &mut Ctx, t: Token) {
        self.end_stream(ctx, t, StreamEnd::Done);
    }

    /// The loop closed a stream: its swarm or topic forgets it.
    pub fn closed(&mut self, ctx: &mut Ctx, t: Token, stream: &EventStream) {
        self.unsubscribe(ctx, t, stream.sub.clone());
    }

    // --- Streams ------------------------------------------------------------------

    /// Answer `t` with an event-stream head and a welcome comment; the
    /// connection becomes an event stream subscribed to `sub`.
    fn open_stream(
        &mut self,
        ctx: &mut Ctx,
        t: Token,
        head: &Head<'_>,
        status: u16,
        sub: Subscription,
    ) {
        let heartbeat = ctx.config.heartbeat;
        let Some(conn) = ctx.live_mut(t) else {
            return;
        };
        let chunked = head.minor >= 1;
        let out = conn.out.buf();
        response::status_line(out, head.minor, status);
        out.extend_from_slice(b"Content-Type: text/event-stream; charset=utf-8\r\n");
        out.extend_from_slice(response::NO_BUFFERING.as_bytes());
        if chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        let mut welcome = Vec::with_capacity(96);
        let note = match head.header_str("last-event-id") {
            // Nothing is stored, so nothing can be replayed; say so.
            Some(id) if check_field(id, true).is_ok() => {
                format!("weir event stream; last-event-id {id}; nothing is replayed")
            }
            _ => "weir event stream".to_string(),
        };
        comment(&note, &mut welcome);
        frame(out, chunked, &welcome);
        conn.state = State::Events(Box::new(EventStream { sub, chunked }));
        // Its response closes the connection: pipelined bytes are never read.
        conn.inbuf = Vec::new();
        conn.ready.interest = Ready::READABLE | Ready::WRITABLE;
        ctx.arm(t, heartbeat);
        ctx.metrics.streams_opened += 1;
        self.flush(ctx, t);
    }

    /// Queue an encoded event (or comment) on a stream. False if it is no
    /// stream, or it was dropped for falling behind.
    fn send(&mut self, ctx: &mut Ctx, t: Token, encoded: &[u8]) -> bool {
        let limit = ctx.config.stream_queue_bytes;
        let Some(conn) = ctx.live_mut(t) else {
            return false;
        };
        let State::Events(stream) = &conn.state else {
            return false;
        };
        if conn.out.pending() + encoded.len() > limit {
            self.end_stream(ctx, t, StreamEnd::Slow);
            return false;
        }
        let chunked = stream.chunked;
        frame(conn.out.buf(), chunked, encoded);
        conn.ready.interest.insert(Ready::WRITABLE);
        self.flush(ctx, t);
        true
    }

    /// Write what a stream has queued; notice a client that left.
    fn flush(&mut self, ctx: &mut Ctx, t: Token) {
        let Ctx { conns, scratch, .. } = ctx;
        let Some(conn) = conns.get_mut(t.0) else {
            return;
        };
        if !matches!(conn.state, State::Events(_)) {
            return;
        }
        if conn.ready.can_read() {
            // A stream's client has nothing to say; reading notices it leave.
            if let Io::Eof | Io::Failed(_) = conn.drain_input(scratch, 64 * 1024) {
                return self.gone(ctx, t, "client left");
            }
        }
        match conn.flush_out() {
            Ok(true) => conn.ready.interest.remove(Ready::WRITABLE),
            Ok(false) => {}
            Err(_) => self.gone(ctx, t, "write failed"),
        }
    }

    /// End a stream from our side: it leaves its swarm or topic, a final
    /// comment says why, the response is ended, and the connection closes
    /// once that is written (or after the linger bound).
    fn end_stream(&mut self, ctx: &mut Ctx, t: Token, why: StreamEnd) {
        let limit = ctx.config.stream_queue_bytes;
        let Some(conn) = ctx.live_mut(t) else {
            return;
        };
        let State::Events(stream) = std::mem::replace(&mut conn.state, State::Dead) else {
            return;
        };
        // Put a harmless state back until `finish` sets the closing one.
        conn.state = State::new();
        let mut last = Vec::with_capacity(128);
        match why {
            StreamEnd::Done => comment("the stream has ended", &mut last),
            StreamEnd::Slow => {
                comment(
                    &format!("dropped: this stream fell more than {limit} bytes behind; reconnect to go on"),
                    &mut last,
                );
            }
        }
        let out = conn.out.buf();
        frame(out, stream.chunked, &last);
        if stream.chunked {
            out.extend_from_slice(response::LAST_CHUNK);
        }
        if why == StreamEnd::Slow {
            ctx.metrics.streams_dropped_slow += 1;
        }
        // A stream's client sends nothing: close once written.
        ctx.finish(t, End::Close);
        self.unsubscribe(ctx, t, stream.sub);
    }

    /// A stream's client is gone: close it and forget it.
    fn gone(&mut self, ctx: &mut Ctx, t: Token, why: &str) {
        if let Some(State::Events(stream)) = ctx.kill(t, why) {
            self.unsubscribe(ctx, t, stream.sub);
        }
    }

    /// Take a stream out of its swarm or topic.
    fn unsubscribe(&mut self, ctx: &mut Ctx, t: Token, sub: Subscription) {
        match sub {
            Subscription::Peer { swarm, cid } => self.peer_left(ctx, &swarm, &cid),
            Subscription::Topic { topic } => self.topic_left(&topic, t),
        }
    }

    /// `HEAD` on an event stream's URL: the head a `GET` would get, no
    /// body, and nothing created or joined.
    pub fn stream_head(ctx: &mut Ctx, t: Token, head: &Head<'_>, keep: bool) {
        let mut out = Vec::with_capacity(256);
        response::status_line(&mut out, head.minor, 200);
        out.extend_from_slice(b"Content-Type: text/event-stream; charset=utf-8\r\n");
        out.extend_from_slice(response::NO_BUFFERING.as_bytes());
        response::connection_header(&mut out, head.minor, keep);
        out.extend_from_slice(b"\r\n");
        ctx.respond(t, &out, keep);
    }
}

/// Whether the client asked for, or accepts, an event stream (no `Accept`
/// at all counts as yes).
pub(crate) fn accepts_event_stream(head: &Head<'_>) -> bool {
    let mut accepts = head.headers("accept").peekable();
    if accepts.peek().is_none() {
        return true;
    }
    accepts.any(|a| {
        a.split(|&b| b == b',').any(|t| {
            let t = t.split(|&b| b == b';').next().unwrap_or(b"").trim_ascii();
            t.eq_ignore_ascii_case(b"text/event-stream")
                || t == b"*/*"
                || t.eq_ignore_ascii_case(b"text/*")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::accepts_event_stream;
    use crate::http::{parse_head, Limits};

    fn accepts(raw: &str) -> bool {
        let limits = Limits {
            max_head: 4096,
            max_target: 1024,
        };
        let (head, _) = parse_head(raw.as_bytes(), limits).unwrap().unwrap();
        accepts_event_stream(&head)
    }

    #[test]
    fn accept_event_stream() {
        assert!(accepts("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!accepts(
            "GET / HTTP/1.1\r\nHost: a\r\nAccept: text/html\r\n\r\n"
        ));
        assert!(accepts(
            "GET / HTTP/1.1\r\nHost: a\r\nAccept: text/html, text/event-stream;q=0.9\r\n\r\n"
        ));
        assert!(accepts(
            "GET / HTTP/1.1\r\nHost: a\r\nAccept: text/*\r\n\r\n"
        ));
    }
}
