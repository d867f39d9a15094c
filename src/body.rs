//! Short request bodies: read whole, within a limit, then handled.
//!
//! `POST /signal/<id>` and `POST /events/<topic>` carry small bodies that
//! are acted on as a whole. The body is read into a buffer no larger than
//! its limit (`413` past it), under the head timeout, with the same strict
//! chunked decoder as pipes. Bytes after the body stay for the next
//! request on the connection.

use mio::Token;

use crate::conn::{Io, State};
use crate::http::chunked::ChunkedDecoder;
use crate::http::request::BodyFraming;
use crate::http::Head;
use crate::readiness::Ready;
use crate::server::{Server, Timer};

/// What a body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `POST /signal/<id>`.
    Signal,
    /// `POST /events/<topic>`.
    Publish,
    /// SockJS `xhr_send` / `jsonp_send`.
    SockJsSend,
}

#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// A request whose body is being read.
#[derive(Debug)]
pub struct PendingBody {
    pub(crate) head: Head,
    pub(crate) purpose: Purpose,
    framing: Framing,
    body: Vec<u8>,
    limit: usize,
}

enum Fed {
    More,
    Done(usize),
    TooLarge,
    Bad(String),
}

impl PendingBody {
    /// Take body bytes from `input`; returns how it stands and, when done,
    /// how many input bytes belonged to the body.
    fn feed(&mut self, input: &[u8]) -> Fed {
        match &mut self.framing {
            Framing::Length(remaining) => {
                let take = (*remaining).min(input.len() as u64) as usize;
                self.body.extend_from_slice(&input[..take]);
                *remaining -= take as u64;
                if *remaining == 0 {
                    Fed::Done(take)
                } else {
                    Fed::More
                }
            }
            Framing::UntilClose => {
                if self.body.len() + input.len() > self.limit {
                    return Fed::TooLarge;
                }
                self.body.extend_from_slice(input);
                Fed::More
            }
            Framing::Chunked(dec) => {
                let mut pos = 0;
                while pos < input.len() {
                    let d = match dec.decode(&input[pos..]) {
                        Ok(d) => d,
                        Err(e) => return Fed::Bad(format!("Bad chunked body: {e}")),
                    };
                    let data = &input[pos..][d.data.clone()];
                    if self.body.len() + data.len() > self.limit {
                        return Fed::TooLarge;
                    }
                    self.body.extend_from_slice(data);
                    pos += d.consumed;
                    if d.done {
                        return Fed::Done(pos);
                    }
                    if d.consumed == 0 {
                        break;
                    }
                }
                Fed::More
            }
        }
    }
}

impl Server {
    /// Read the body of `head`, then hand it to its handler.
    pub(crate) fn read_short_body(
        &mut self,
        token: Token,
        head: Head,
        early: Vec<u8>,
        purpose: Purpose,
        limit: usize,
    ) {
        let framing = match head.framing {
            BodyFraming::None => Framing::Length(0),
            BodyFraming::Length(n) if n > limit as u64 => {
                let msg = format!("The body is larger than the limit of {limit} bytes.");
                return self.respond_error(token, head.minor, 413, &msg, false);
            }
            BodyFraming::Length(n) => Framing::Length(n),
            BodyFraming::Chunked => Framing::Chunked(ChunkedDecoder::new()),
            BodyFraming::UntilClose => Framing::UntilClose,
        };
        if matches!(framing, Framing::Length(0)) {
            // Nothing to read: any bytes after the head are the next request.
            if let Some(conn) = self.conns.get_mut(token.0) {
                conn.inbuf = early;
            }
            return self.body_done(token, head, purpose, Vec::new());
        }
        let mut pending = PendingBody {
            head,
            purpose,
            framing,
            body: Vec::new(),
            limit,
        };
        if let Framing::Length(n) = pending.framing {
            pending.body.reserve_exact(n as usize);
        }
        let head_timeout = self.config.head_timeout;
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        conn.state = State::ReadingBody;
        conn.ready.interest = Ready::READABLE;
        conn.pending = Some(Box::new(pending));
        conn.inbuf = early;
        conn.timer = Some(
            self.timers
                .insert(self.now, head_timeout, Timer::Conn(token)),
        );
        self.read_body(token);
    }

    fn body_done(&mut self, token: Token, head: Head, purpose: Purpose, body: Vec<u8>) {
        match purpose {
            Purpose::Signal => self.signal_post(token, head, body),
            Purpose::Publish => self.topic_publish(token, head, body),
            Purpose::SockJsSend => self.sj_send_body(token, head, body),
        }
    }

    /// Readiness for a connection in `ReadingBody`.
    pub(crate) fn read_body(&mut self, token: Token) {
        loop {
            let Some(conn) = self.conns.get_mut(token.0) else {
                return;
            };
            let Some(mut pending) = conn.pending.take() else {
                return;
            };
            let minor = pending.head.minor;
            // Bytes already read (with the head) come first.
            let fed = if !conn.inbuf.is_empty() {
                let input = std::mem::take(&mut conn.inbuf);
                let fed = pending.feed(&input);
                if let Fed::Done(used) = fed {
                    conn.inbuf = input[used..].to_vec();
                }
                fed
            } else {
                match conn.read_into(&mut self.scratch) {
                    Io::Moved(n) => {
                        let fed = pending.feed(&self.scratch[..n]);
                        if let Fed::Done(used) = fed {
                            // Pipelined bytes after the body: the next request.
                            conn.inbuf = self.scratch[used..n].to_vec();
                        }
                        fed
                    }
                    Io::WouldBlock => {
                        conn.pending = Some(pending);
                        return;
                    }
                    Io::Eof if matches!(pending.framing, Framing::UntilClose) => Fed::Done(0),
                    Io::Eof => return self.kill(token, "closed before its body was complete"),
                    Io::Failed(_) => return self.kill(token, "read error"),
                }
            };
            match fed {
                Fed::More => conn.pending = Some(pending),
                Fed::TooLarge => {
                    let msg = format!(
                        "The body is larger than the limit of {} bytes.",
                        pending.limit
                    );
                    return self.respond_error(token, minor, 413, &msg, false);
                }
                Fed::Bad(msg) => return self.respond_error(token, minor, 400, &msg, false),
                Fed::Done(_) => {
                    if let Some(h) = conn.timer.take() {
                        self.timers.cancel(h);
                    }
                    conn.state = State::ReadingHead;
                    let PendingBody {
                        head,
                        purpose,
                        body,
                        ..
                    } = *pending;
                    return self.body_done(token, head, purpose, body);
                }
            }
        }
    }
}
