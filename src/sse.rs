//! Server-Sent Events: the framing, and event-stream connections.
//!
//! Framing follows the EventSource parsing rules: every line of a payload
//! (split on CR, LF or CRLF) becomes its own `data:` line, so no payload can
//! end an event early or inject a field; `event` and `id` values may not
//! contain CR or LF (and an `id` no NUL, which EventSource would ignore).
//!
//! An event stream is a long-lived response. Each stream has a bounded
//! outbound queue (`--stream-queue-bytes`): an event is encoded once and
//! appended to every subscriber's queue, and a subscriber whose queue would
//! pass the bound is dropped with a final comment saying why, so one slow
//! reader never delays the others and never grows memory. A comment
//! heartbeat keeps proxies from closing idle streams.

use std::fmt;
use std::io::Write as _;

use mio::Token;

use crate::conn::State;
use crate::http::{response, Head};
use crate::readiness::Ready;
use crate::server::{Server, Timer};

/// One event to encode.
#[derive(Clone, Copy, Debug, Default)]
pub struct Event<'a> {
    /// `event:` field (the type; EventSource's default is `message`).
    pub event: Option<&'a str>,
    /// `id:` field.
    pub id: Option<&'a str>,
    /// `retry:` field, in milliseconds.
    pub retry: Option<u32>,
    /// The payload; split into `data:` lines.
    pub data: &'a str,
}

/// A field value that cannot be framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldError {
    /// CR or LF in an `event` or `id` value.
    LineBreak,
    /// NUL in an `id` value.
    Nul,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldError::LineBreak => "event and id values may not contain CR or LF",
            FieldError::Nul => "an id value may not contain NUL",
        })
    }
}

impl std::error::Error for FieldError {}

/// Check an `event` or `id` value.
pub fn check_field(v: &str, is_id: bool) -> Result<(), FieldError> {
    if v.contains(['\r', '\n']) {
        return Err(FieldError::LineBreak);
    }
    if is_id && v.contains('\0') {
        return Err(FieldError::Nul);
    }
    Ok(())
}

/// The lines of `text`, split on CR, LF or CRLF. A trailing line break
/// yields a final empty line, so the receiver gets the text back with
/// every line break as LF.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\r', '\n']) {
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    })
}

/// Encode one event. The caller has checked `event` and `id`.
pub fn encode(ev: &Event<'_>, out: &mut Vec<u8>) {
    if let Some(e) = ev.event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    if let Some(id) = ev.id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    if let Some(r) = ev.retry {
        let _ = writeln!(out, "retry: {r}");
    }
    for line in lines(ev.data) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Encode a comment (ignored by EventSource; keeps the stream alive).
pub fn comment(text: &str, out: &mut Vec<u8>) {
    for line in lines(text) {
        out.extend_from_slice(b": ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// What an event stream is subscribed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// A peer of a signal swarm.
    Peer {
        /// Swarm ID.
        swarm: String,
        /// The peer's client ID.
        cid: String,
    },
    /// A subscriber of an event topic.
    Topic {
        /// Topic name.
        topic: String,
    },
}

/// Why a stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// It finished normally (its swarm ended, the relay stops).
    Done,
    /// It fell too far behind.
    Slow,
}

impl Server {
    /// Answer `token` with an event-stream head and a welcome comment; the
    /// connection becomes an event stream subscribed to `sub`.
    pub(crate) fn open_stream(
        &mut self,
        token: Token,
        head: &Head,
        status: u16,
        sub: Subscription,
    ) {
        let heartbeat = self.config.heartbeat;
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        let chunked = head.minor >= 1;
        response::status_line(&mut conn.out, head.minor, status);
        conn.out
            .extend_from_slice(b"Content-Type: text/event-stream; charset=utf-8\r\n");
        conn.out
            .extend_from_slice(response::NO_BUFFERING.as_bytes());
        if chunked {
            conn.out
                .extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        conn.out.extend_from_slice(b"Connection: close\r\n\r\n");
        let mut welcome = Vec::with_capacity(96);
        let note = match &head.last_event_id {
            // Nothing is stored, so nothing can be replayed; say so.
            Some(id) if check_field(id, true).is_ok() => {
                format!("weir event stream; last-event-id {id}; nothing is replayed")
            }
            _ => "weir event stream".to_string(),
        };
        comment(&note, &mut welcome);
        frame(&mut conn.out, chunked, &welcome);
        conn.state = State::EventStream;
        conn.inbuf = Vec::new();
        conn.chunked_stream = chunked;
        conn.sub = Some(Box::new(sub));
        conn.ready.interest = Ready::READABLE | Ready::WRITABLE;
        if let Some(h) = conn.timer.take() {
            self.timers.cancel(h);
        }
        conn.timer = Some(self.timers.insert(self.now, heartbeat, Timer::Conn(token)));
        self.metrics.streams_opened += 1;
        self.stream_flush(token);
    }

    /// Queue an encoded event (or comment) on a stream. Returns false if
    /// the stream was dropped for falling behind.
    pub(crate) fn stream_send(&mut self, token: Token, encoded: &[u8]) -> bool {
        let limit = self.config.stream_queue_bytes;
        let Some(conn) = self.conns.get_mut(token.0) else {
            return false;
        };
        if conn.state != State::EventStream {
            return false;
        }
        let queued = conn.out.len() - conn.out_pos;
        if queued + encoded.len() > limit {
            self.end_stream(token, StreamEnd::Slow);
            return false;
        }
        let chunked = conn.chunked_stream;
        frame(&mut conn.out, chunked, encoded);
        conn.ready.interest.insert(Ready::WRITABLE);
        self.stream_flush(token);
        true
    }

    /// Write what a stream has queued; notice a client that left.
    pub(crate) fn stream_flush(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.ready.can_read() {
            // A stream's client has nothing to say; reading notices it leave.
            if let crate::conn::Io::Eof | crate::conn::Io::Failed(_) =
                conn.drain_input(&mut self.scratch, 64 * 1024)
            {
                self.stream_gone(token, "client left");
                return;
            }
        }
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        match conn.flush_out() {
            Ok(true) => conn.ready.interest.remove(Ready::WRITABLE),
            Ok(false) => {}
            Err(_) => self.stream_gone(token, "write failed"),
        }
    }

    /// The heartbeat timer of a stream fired.
    pub(crate) fn stream_heartbeat(&mut self, token: Token) {
        let mut beat = Vec::with_capacity(16);
        comment("heartbeat", &mut beat);
        if self.stream_send(token, &beat) {
            let heartbeat = self.config.heartbeat;
            if let Some(conn) = self.conns.get_mut(token.0) {
                conn.timer = Some(self.timers.insert(self.now, heartbeat, Timer::Conn(token)));
            }
        }
    }

    /// End a stream from our side: its subscription is removed, a final
    /// comment says why, the response is ended, and the connection closes
    /// once that is written (or after the linger bound).
    pub(crate) fn end_stream(&mut self, token: Token, why: StreamEnd) {
        let limit = self.config.stream_queue_bytes;
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.state != State::EventStream {
            return;
        }
        let sub = conn.sub.take();
        let chunked = conn.chunked_stream;
        let mut last = Vec::with_capacity(128);
        match why {
            StreamEnd::Done => comment("the stream has ended", &mut last),
            StreamEnd::Slow => {
                self.metrics.streams_dropped_slow += 1;
                comment(
                    &format!("dropped: this stream fell more than {limit} bytes behind; reconnect to go on"),
                    &mut last,
                );
            }
        }
        frame(&mut conn.out, chunked, &last);
        if chunked {
            conn.out.extend_from_slice(response::LAST_CHUNK);
        }
        conn.state = State::Responding { keep_alive: false };
        conn.linger = false;
        self.finish_conn(token);
        if let Some(sub) = sub {
            self.unsubscribe(token, *sub);
        }
    }

    /// A stream's client is gone: close it (`kill` unsubscribes it).
    pub(crate) fn stream_gone(&mut self, token: Token, why: &str) {
        self.kill(token, why);
    }

    /// Take a stream out of its swarm or topic.
    pub(crate) fn unsubscribe(&mut self, token: Token, sub: Subscription) {
        match sub {
            Subscription::Peer { swarm, cid } => self.peer_left(&swarm, &cid),
            Subscription::Topic { topic } => self.topic_left(&topic, token),
        }
    }
}

/// Frame `bytes` for a stream: one chunk, or raw for HTTP/1.0.
pub(crate) fn frame(out: &mut Vec<u8>, chunked: bool, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if chunked {
        let _ = write!(out, "{:x}\r\n", bytes.len());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ev: Event<'_>) -> String {
        let mut out = Vec::new();
        encode(&ev, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn line_splitting_follows_eventsource() {
        let table: &[(&str, &[&str])] = &[
            ("", &[""]),
            ("a", &["a"]),
            ("a\nb", &["a", "b"]),
            ("a\rb", &["a", "b"]),
            ("a\r\nb", &["a", "b"]),
            ("a\n\nb", &["a", "", "b"]),
            ("a\r\r\nb", &["a", "", "b"]),
            ("a\n", &["a", ""]),
            ("\r", &["", ""]),
            ("é\n日本", &["é", "日本"]),
        ];
        for (text, want) in table {
            let got: Vec<&str> = lines(text).collect();
            assert_eq!(&got, want, "{text:?}");
        }
    }

    #[test]
    fn encoding_edge_cases() {
        assert_eq!(
            enc(Event {
                data: "hi",
                ..Event::default()
            }),
            "data: hi\n\n"
        );
        assert_eq!(
            enc(Event {
                data: "",
                ..Event::default()
            }),
            "data: \n\n"
        );
        assert_eq!(
            enc(Event {
                event: Some("signal"),
                id: Some("7"),
                retry: Some(1500),
                data: "l1\r\nl2\rl3\n"
            }),
            "event: signal\nid: 7\nretry: 1500\ndata: l1\ndata: l2\ndata: l3\ndata: \n\n"
        );
        // A payload cannot inject a field or end the event early.
        assert_eq!(
            enc(Event {
                data: "x\n\nevent: evil\r\ndata: y",
                ..Event::default()
            }),
            "data: x\ndata: \ndata: event: evil\ndata: data: y\n\n"
        );
        let mut c = Vec::new();
        comment("a\nb", &mut c);
        assert_eq!(c, b": a\n: b\n\n");
    }

    #[test]
    fn field_checks() {
        assert!(check_field("ok name", false).is_ok());
        assert_eq!(check_field("a\nb", false), Err(FieldError::LineBreak));
        assert_eq!(check_field("a\rb", true), Err(FieldError::LineBreak));
        assert_eq!(check_field("a\0b", true), Err(FieldError::Nul));
        assert!(check_field("a\0b", false).is_ok());
    }
}
