//! Server-Sent Events framing, and what an event-stream connection keeps:
//! sans-io.
//!
//! Framing follows the EventSource parsing rules: every line of a payload
//! (split on CR, LF or CRLF) becomes its own `data:` line, so no payload can
//! end an event early or inject a field; `event` and `id` values may not
//! contain CR or LF (and an `id` no NUL, which EventSource would ignore).

use std::fmt;
use std::io::Write as _;

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

/// What an event-stream connection keeps: what it is subscribed to, and
/// how its response is framed.
#[derive(Debug)]
pub struct EventStream {
    /// Its subscription.
    pub sub: Subscription,
    /// Chunked (HTTP/1.1) or delimited by close (HTTP/1.0).
    pub chunked: bool,
}

/// Frame `bytes` for a stream: one chunk, or raw for HTTP/1.0.
pub fn frame(out: &mut Vec<u8>, chunked: bool, bytes: &[u8]) {
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
