//! The HTTP phases of a connection: reading a head (and handing it to the
//! router), reading a short body, writing an answer, lingering.
//!
//! A head that has arrived whole is found with `MSG_PEEK` and read alone,
//! so that body bytes sent right behind it stay in the kernel (held back by
//! TCP flow control) rather than in memory while the connection waits;
//! one that arrives in pieces is read in steps of [`HEAD_READ_STEP`] bytes.
//! Bytes read past a head are kept: they are body, or the next request of
//! a pipelined client. After its answer, a keep-alive connection reads its next head
//! from what it already has first (no new edge will come for it, R2/R3).
//!
//! A closing connection first writes its answer, then, by its [`End`]:
//! shuts down writing and drains the client until it closes or the linger
//! timer fires (so unread client bytes do not turn into a reset that
//! destroys the answer in flight), closes at once, or resets.

use log::debug;
use mio::Token;

use super::Families;
use crate::help;
use crate::http::body::{Fed, Purpose, ShortBody};
use crate::http::{self, Head, Limits};
use crate::net::access::Access;
use crate::net::{Ctx, End, Http, State};
use crate::wire::{Io, Ready};

/// Heads are read in steps of this size (see the module comment).
pub const HEAD_READ_STEP: usize = 4096;

/// Bytes a lingering connection may send before it is closed anyway.
const LINGER_DROP_LIMIT: usize = 256 * 1024;

/// Act on an HTTP-phase connection's readiness.
pub(crate) fn ready(ctx: &mut Ctx, fam: &mut Families, t: Token) {
    let Some(conn) = ctx.live(t) else {
        return;
    };
    match &conn.state {
        State::Http(Http::ReadingHead) => read_head(ctx, fam, t),
        State::Http(Http::ReadingBody(_)) => read_body(ctx, fam, t),
        State::Http(Http::Responding { .. } | Http::Lingering { .. }) => write_and_end(ctx, t),
        _ => {}
    }
}

/// The connection's own timer, in an HTTP phase.
pub(crate) fn timer(ctx: &mut Ctx, t: Token) {
    let now = ctx.now;
    let Some(conn) = ctx.live_mut(t) else {
        return;
    };
    match &conn.state {
        State::Http(Http::ReadingHead) => {
            if conn.inbuf.is_empty() {
                ctx.kill(t, "idle");
            } else {
                conn.access = Some(Access::unparsed(now));
                ctx.metrics.bad_requests += 1;
                ctx.respond_error(t, 1, 408, "The request head did not arrive in time.", false);
            }
        }
        State::Http(Http::ReadingBody(_)) => {
            ctx.respond_error(t, 1, 408, "The request body did not arrive in time.", false);
        }
        _ => {
            ctx.kill(t, "timer");
        }
    }
}

fn read_head(ctx: &mut Ctx, fam: &mut Families, t: Token) {
    let limits = Limits {
        max_head: ctx.config.max_head_bytes,
        max_target: ctx.config.max_target_bytes,
    };
    let (now, trust_proxy) = (ctx.now, ctx.config.trust_proxy);
    loop {
        let Ctx { conns, scratch, .. } = &mut *ctx;
        let Some(conn) = conns.get_mut(t.0) else {
            return;
        };
        if !conn.inbuf.is_empty() {
            // The head is parsed from bytes taken out of the connection, so
            // that it can borrow them while the router acts on the context.
            let buf = std::mem::take(&mut conn.inbuf);
            match http::parse_head(&buf, limits) {
                Ok(Some((head, len))) => {
                    // Bytes past the head: body, or the next request.
                    let early = buf[len..].to_vec();
                    conn.head_only = head.method == http::Method::Head;
                    let access = Access::new(&head, now, trust_proxy);
                    conn.access = Some(access);
                    if conn.sock.plain_on_tls_port() {
                        // Read as plain text only to say so.
                        let url = help::origin(&head, false, true);
                        let msg = format!(
                            "This address speaks HTTPS, not plain HTTP: use {url}{}",
                            head.path
                        );
                        ctx.metrics.bad_requests += 1;
                        ctx.respond_error(t, head.minor, 400, &msg, false);
                        return;
                    }
                    ctx.disarm(t);
                    ctx.metrics.requests += 1;
                    debug!(
                        "[{}] {} {} HTTP/1.{}",
                        t.0,
                        head.method.as_str(),
                        head.path,
                        head.minor
                    );
                    fam.route(ctx, t, head, early);
                    return;
                }
                Ok(None) => conn.inbuf = buf,
                Err(e) => {
                    debug!("[{}] bad request head: {}", t.0, e);
                    conn.access = Some(Access::unparsed(now));
                    ctx.metrics.bad_requests += 1;
                    ctx.respond_error(t, 1, e.status, e.message, false);
                    return;
                }
            }
        }
        if conn.inbuf.is_empty() && !conn.read_eof {
            // Look at what the kernel holds without taking it: a complete
            // head is then read alone, and the body behind it stays in the
            // kernel (held back by TCP flow control) until the connection's
            // family reads it, instead of in a per-connection buffer, so
            // thousands of parked senders hold no body bytes here and leave
            // no high-water mark in the allocator. A head that has not all
            // arrived is read the ordinary way below (so that a slow one
            // times out as a 408).
            let want = (limits.max_head + 1).min(scratch.len());
            if let Ok(n) = conn.sock.peek(&mut scratch[..want]) {
                if let Ok(Some((_, len))) = http::parse_head(&scratch[..n], limits) {
                    if let Io::Moved(m) = conn.read_into(&mut scratch[..len]) {
                        conn.inbuf.extend_from_slice(&scratch[..m]);
                        continue;
                    }
                }
            }
        }
        if conn.read_eof {
            // The client ended before completing a head; nothing to say on
            // an idle keep-alive connection, a 400 otherwise.
            if conn.inbuf.is_empty() {
                ctx.kill(t, "closed by client");
            } else {
                conn.access = Some(Access::unparsed(now));
                ctx.respond_error(t, 1, 400, "Incomplete request head.", false);
            }
            return;
        }
        let room = (limits.max_head + 1).saturating_sub(conn.inbuf.len());
        let step = room.clamp(1, HEAD_READ_STEP);
        match conn.read_into(&mut scratch[..step]) {
            Io::Moved(n) => conn.inbuf.extend_from_slice(&scratch[..n]),
            Io::WouldBlock => return,
            Io::Eof => {}
            Io::Failed(e) => {
                debug!("[{}] read failed: {e}", t.0);
                ctx.kill(t, "read error");
                return;
            }
        }
    }
}

/// Read the body of `head`, then hand it to the family it is for.
pub(crate) fn start_body(
    ctx: &mut Ctx,
    fam: &mut Families,
    t: Token,
    head: &Head<'_>,
    early: Vec<u8>,
    purpose: Purpose,
    limit: usize,
) {
    let minor = head.minor;
    let lease = ctx.budget.lease();
    let body = match ShortBody::new(head, purpose, limit, lease) {
        Ok(b) => b,
        Err(e) => return ctx.respond_error(t, minor, e.0, &e.1, false),
    };
    if body.is_empty() {
        // Nothing to read: any bytes after the head are the next request.
        if let Some(conn) = ctx.live_mut(t) {
            conn.inbuf = early;
        }
        return body_done(ctx, fam, t, body);
    }
    let head_timeout = ctx.config.head_timeout;
    let Some(conn) = ctx.live_mut(t) else {
        return;
    };
    conn.state = State::Http(Http::ReadingBody(Box::new(body)));
    conn.ready.interest = Ready::READABLE;
    conn.inbuf = early;
    ctx.arm(t, head_timeout);
    read_body(ctx, fam, t);
}

/// A whole body goes to the family it is for, with its head parsed again.
fn body_done(ctx: &mut Ctx, fam: &mut Families, t: Token, body: ShortBody) {
    let minor = body.minor();
    let (raw, purpose, bytes) = body.into_parts();
    if let Some(a) = ctx.live_mut(t).and_then(|c| c.access.as_mut()) {
        a.read += bytes.len() as u64;
    }
    match http::request::parse_again(&raw) {
        Some(head) => fam.body_done(ctx, t, head, purpose, bytes),
        None => ctx.respond_error(
            t,
            minor,
            500,
            "The request head was lost; send it again.",
            false,
        ),
    }
}

/// Readiness for a connection reading a short body.
fn read_body(ctx: &mut Ctx, fam: &mut Families, t: Token) {
    loop {
        let Ctx { conns, scratch, .. } = &mut *ctx;
        let Some(conn) = conns.get_mut(t.0) else {
            return;
        };
        let State::Http(Http::ReadingBody(body)) = &mut conn.state else {
            return;
        };
        let minor = body.minor();
        // Bytes already read (with the head) come first.
        let fed = if !conn.inbuf.is_empty() {
            let input = std::mem::take(&mut conn.inbuf);
            let fed = body.feed(&input);
            if let Fed::Done(used) = fed {
                conn.inbuf = input[used..].to_vec();
            }
            fed
        } else {
            let ends_at_close = body.ends_at_close();
            match crate::wire::read_into(
                &mut conn.sock,
                &mut conn.ready,
                &mut conn.read_eof,
                scratch,
            ) {
                Io::Moved(n) => {
                    let fed = body.feed(&scratch[..n]);
                    if let Fed::Done(used) = fed {
                        // Pipelined bytes after the body: the next request.
                        conn.inbuf = scratch[used..n].to_vec();
                    }
                    fed
                }
                Io::WouldBlock => return,
                Io::Eof if ends_at_close => Fed::Done(0),
                Io::Eof => {
                    ctx.kill(t, "closed before its body was complete");
                    return;
                }
                Io::Failed(_) => {
                    ctx.kill(t, "read error");
                    return;
                }
            }
        };
        match fed {
            Fed::More => {}
            Fed::TooLarge => {
                let msg = format!(
                    "The body is larger than the limit of {} bytes.",
                    body.limit()
                );
                return ctx.respond_error(t, minor, 413, &msg, false);
            }
            Fed::Bad(msg) => return ctx.respond_error(t, minor, 400, &msg, false),
            Fed::OverBudget => {
                let msg = "The relay holds as many message bytes as it allows; try again shortly.";
                return ctx.respond_error(t, minor, 413, msg, false);
            }
            Fed::Done(_) => {
                let State::Http(Http::ReadingBody(body)) = std::mem::take(&mut conn.state) else {
                    return;
                };
                ctx.disarm(t);
                return body_done(ctx, fam, t, *body);
            }
        }
    }
}

/// Answering and lingering connections: write, then keep alive or end.
fn write_and_end(ctx: &mut Ctx, t: Token) {
    let now = ctx.now;
    let Ctx { conns, scratch, .. } = &mut *ctx;
    let Some(conn) = conns.get_mut(t.0) else {
        return;
    };
    match conn.state {
        State::Http(Http::Responding { keep_alive, end }) => match conn.flush_out() {
            Ok(false) => {
                // Notice a client that went away while we wait.
                if conn.ready.hung_up() && !conn.ready.event.contains(Ready::WRITABLE) {
                    ctx.kill(t, "hung up before the response was written");
                }
            }
            Ok(true) if keep_alive => {
                conn.end_request(t.0, now);
                conn.state = State::new();
                conn.head_only = false;
                conn.ready.interest = Ready::READABLE;
                let head_timeout = ctx.config.head_timeout;
                ctx.arm(t, head_timeout);
                // A pipelined request may be here already.
                ctx.wake(t);
            }
            Ok(true) => match end {
                End::ResetAfterWrite => {
                    ctx.reset(t, "cut (reset)");
                }
                End::Linger => start_linger(ctx, t),
                End::Close => {
                    // Nothing more is expected from the client: close now.
                    // Whatever it did send is read first, so the close is a
                    // FIN, not a reset.
                    conn.sock.shutdown_write();
                    let _ = conn.drain_input(scratch, 64 * 1024);
                    ctx.kill(t, "done");
                }
            },
            Err(e) => {
                debug!("[{}] write failed: {e}", t.0);
                ctx.kill(t, "write error");
            }
        },
        State::Http(Http::Lingering { dropped }) => {
            match conn.drain_input(scratch, LINGER_DROP_LIMIT) {
                Io::Moved(n) => {
                    let dropped = dropped + n;
                    if dropped >= LINGER_DROP_LIMIT {
                        ctx.kill(t, "lingering client kept sending");
                    } else {
                        conn.state = State::Http(Http::Lingering { dropped });
                    }
                }
                Io::WouldBlock => {}
                Io::Eof | Io::Failed(_) => {
                    ctx.kill(t, "done");
                }
            }
        }
        _ => {}
    }
}

/// Shut down writing, then drain the client until it closes (or the
/// linger timer fires).
fn start_linger(ctx: &mut Ctx, t: Token) {
    let linger = ctx.config.linger;
    let Some(conn) = ctx.live_mut(t) else {
        return;
    };
    conn.sock.shutdown_write();
    conn.state = State::Http(Http::Lingering { dropped: 0 });
    conn.ready.interest = Ready::READABLE;
    if conn.read_eof {
        ctx.kill(t, "done");
        return;
    }
    ctx.arm(t, linger);
    write_and_end(ctx, t);
}
