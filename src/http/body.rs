//! Short request bodies, read whole within a limit: sans-io.
//!
//! `POST /signal/<id>`, `POST /events/<topic>` and SockJS's `xhr_send` and
//! `jsonp_send` carry small bodies that are acted on as a whole. A
//! [`ShortBody`] takes the bytes as they arrive, in any split, decodes
//! `Content-Length`, strict chunked (the pipes' decoder) or HTTP/1.0
//! until-close framing, and refuses a body past its limit without holding
//! more than the limit. Bytes after the body belong to the next request.

use crate::budget::Lease;
use crate::http::chunked::ChunkedDecoder;
use crate::http::request::BodyFraming;
use crate::http::Head;

/// What a body is for (which family acts on it once it is whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
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
pub struct ShortBody {
    /// The head's bytes, parsed again when the body is whole.
    head: Vec<u8>,
    minor: u8,
    purpose: Purpose,
    framing: Framing,
    body: Vec<u8>,
    limit: usize,
    /// Its share of the budget all connections' bodies share.
    lease: Lease,
}

/// How a body stands after some input.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// More is needed.
    More,
    /// The body is whole; this many input bytes were part of it.
    Done(usize),
    /// The body passed the limit.
    TooLarge,
    /// The budget every connection's bodies share is spent.
    OverBudget,
    /// The framing is broken; the line says how.
    Bad(String),
}

impl ShortBody {
    /// Start reading the body of `head`; `Err` with `413` and a line when
    /// its declared length is over `limit`.
    pub fn new(
        head: &Head<'_>,
        purpose: Purpose,
        limit: usize,
        lease: Lease,
    ) -> Result<ShortBody, (u16, String)> {
        let framing = match head.framing {
            BodyFraming::None => Framing::Length(0),
            BodyFraming::Length(n) if n > limit as u64 => {
                return Err((
                    413,
                    format!("The body is larger than the limit of {limit} bytes."),
                ))
            }
            BodyFraming::Length(n) => Framing::Length(n),
            BodyFraming::Chunked => Framing::Chunked(ChunkedDecoder::new()),
            BodyFraming::UntilClose => Framing::UntilClose,
        };
        let mut body = Vec::new();
        if let Framing::Length(n) = framing {
            body.reserve_exact(n as usize);
        }
        Ok(ShortBody {
            head: head.raw.to_vec(),
            minor: head.minor,
            purpose,
            framing,
            body,
            limit,
            lease,
        })
    }

    /// Whether there is nothing to read at all.
    pub fn is_empty(&self) -> bool {
        matches!(self.framing, Framing::Length(0))
    }

    /// Whether the body ends when the client closes its side (HTTP/1.0).
    pub fn ends_at_close(&self) -> bool {
        matches!(self.framing, Framing::UntilClose)
    }

    /// The limit, for the `413` line.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The request's HTTP minor version.
    pub fn minor(&self) -> u8 {
        self.minor
    }

    /// The head's bytes (parse them with
    /// [`parse_again`](crate::http::request::parse_again)), what the body
    /// is for, and the body (whose lease is given back: the body is acted
    /// on at once).
    pub fn into_parts(self) -> (Vec<u8>, Purpose, Vec<u8>) {
        (self.head, self.purpose, self.body)
    }

    /// Take body bytes from `input`.
    pub fn feed(&mut self, input: &[u8]) -> Fed {
        let before = self.body.len();
        let fed = self.decode(input);
        let grew = self.body.len() - before;
        if grew > 0 && !self.lease.grow(grew) {
            return Fed::OverBudget;
        }
        fed
    }

    fn decode(&mut self, input: &[u8]) -> Fed {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;
    use crate::http::{parse_head, Limits};

    fn short(extra: &str, limit: usize, lease: Lease) -> Result<ShortBody, (u16, String)> {
        let raw = format!("POST /events/t HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        let limits = Limits {
            max_head: 16384,
            max_target: 4096,
        };
        let head = parse_head(raw.as_bytes(), limits).unwrap().unwrap().0;
        ShortBody::new(&head, Purpose::Publish, limit, lease)
    }

    #[test]
    fn every_framing_at_every_split() {
        let cases: &[(&str, &[u8], &[u8])] = &[
            ("Content-Length: 5\r\n", b"helloNEXT", b"hello"),
            (
                "Transfer-Encoding: chunked\r\n",
                b"2\r\nhe\r\n3;x=1\r\nllo\r\n0\r\n\r\nNEXT",
                b"hello",
            ),
        ];
        for (extra, wire, want) in cases {
            for k in 0..=wire.len() {
                let mut b = short(extra, 100, Budget::new(1000).lease()).unwrap();
                let (x, y) = wire.split_at(k);
                let mut used_total = 0;
                let mut done = false;
                for part in [x, y] {
                    if done {
                        break;
                    }
                    match b.feed(part) {
                        Fed::More => used_total += part.len(),
                        Fed::Done(n) => {
                            used_total += n;
                            done = true;
                        }
                        other => panic!("{other:?}"),
                    }
                }
                assert!(done, "{extra:?} split {k}");
                assert_eq!(&wire[used_total..], b"NEXT", "{extra:?} split {k}");
                let (raw, purpose, body) = b.into_parts();
                assert_eq!(body, *want);
                assert_eq!(purpose, Purpose::Publish);
                let again = crate::http::request::parse_again(&raw).expect("the head again");
                assert_eq!(again.path, "/events/t");
            }
        }
    }

    #[test]
    fn limits_and_errors() {
        let budget = Budget::new(8);
        let body = |extra: &str, limit| short(extra, limit, budget.lease());
        assert_eq!(body("Content-Length: 101\r\n", 100).unwrap_err().0, 413);
        let mut b = body("Transfer-Encoding: chunked\r\n", 4).unwrap();
        assert_eq!(b.feed(b"5\r\nhello\r\n"), Fed::TooLarge);
        let mut b = body("Transfer-Encoding: chunked\r\n", 4).unwrap();
        assert!(matches!(b.feed(b"zz\r\n"), Fed::Bad(_)));
        assert!(body("", 4).unwrap().is_empty());
        // Two bodies share the budget of 8 bytes; dropping one gives back.
        let mut a = body("Content-Length: 6\r\n", 100).unwrap();
        let mut c = body("Content-Length: 6\r\n", 100).unwrap();
        assert_eq!(a.feed(b"123456"), Fed::Done(6));
        assert_eq!(c.feed(b"123456"), Fed::OverBudget);
        drop((a, c));
        let mut c = body("Content-Length: 6\r\n", 100).unwrap();
        assert_eq!(c.feed(b"123456"), Fed::Done(6));
    }
}
