//! The relay family: named pipes and ephemeral sockets.
//!
//! [`core`] is the pairing table and each pipe's life, sans-io; [`pump`] is
//! a moving pipe's buffer and pump. This module connects them to the loop:
//! it reads what the core needs from a request head (and answers the
//! requests it must refuse before any pairing: a bad `?n=`, a declared
//! length over the limit, a form without a boundary), lends the core the
//! loop's connections through [`core::Env`], and carries out the core's
//! [`core::Effect`]s on them. [`ephemeral`] has what is particular to
//! server-assigned IDs (`POST /`, `/reserve`).

pub mod core;
pub mod env;
pub mod ephemeral;
pub mod pump;

use std::time::Instant;

use mio::Token;

use self::core::{
    Effect, Env, Limits, PartyIo, PipeId, RelayTimer, Request, Role, Side, Table, Upload,
};
use crate::hooks::{self, Hooks};
use crate::http::multipart::{self, MultipartScanner};
use crate::http::request::BodyFraming;
use crate::http::Head;
use crate::metrics::Metrics;
use crate::net::{Ctx, State, Timer};
use crate::timer::Handle;

pub use self::core::{PipeStatus, RelayGauges};

/// The relay family: the pairing table, lent the loop's connections.
#[derive(Debug)]
pub struct Relay {
    table: Table,
    fx: Vec<Effect>,
}

/// The core's view of the loop: the connections, timers, counters, hooks.
struct CtxEnv<'a> {
    ctx: &'a mut Ctx,
}

impl Env for CtxEnv<'_> {
    fn io(&mut self, t: Token) -> Option<PartyIo<'_>> {
        let conn = self.ctx.live_mut(t)?;
        debug_assert!(
            matches!(conn.state, State::Relay { .. } | State::Http(_)),
            "the relay reached connection {} in {:?}",
            t.0,
            conn.state
        );
        Some(PartyIo {
            stream: &mut conn.sock,
            ready: &mut conn.ready,
            out: &mut conn.out,
            read_eof: &mut conn.read_eof,
        })
    }

    fn may_park(&mut self, t: Token) -> bool {
        self.ctx.park_allowed(t)
    }

    fn park_limit(&self) -> usize {
        self.ctx.config.max_parked_per_ip
    }

    fn arm(&mut self, at: Instant, what: RelayTimer) -> Handle {
        self.ctx.timers.insert_at(at, Timer::Relay(what))
    }

    fn disarm(&mut self, h: Handle) {
        self.ctx.timers.cancel(h);
    }

    fn metrics(&mut self) -> &mut Metrics {
        &mut self.ctx.metrics
    }

    fn hooks(&mut self) -> &mut dyn Hooks {
        &mut *self.ctx.hooks
    }

    fn can_splice(&mut self, t: Token) -> bool {
        cfg!(target_os = "linux") && self.ctx.live(t).is_some_and(|c| c.sock.spliceable())
    }

    fn moved(&mut self, t: Token, read: u64, written: u64) {
        if let Some(a) = self.ctx.live_mut(t).and_then(|c| c.access.as_mut()) {
            a.read += read;
            a.written += written;
        }
    }
}

impl Relay {
    /// See [`Table::shrink`].
    pub fn shrink(&mut self) {
        self.table.shrink();
        self.fx.shrink_to_fit();
    }

    /// A relay with the limits of `ctx`'s configuration.
    pub fn new(config: &crate::config::Config) -> Relay {
        Relay {
            table: Table::new(Limits {
                ttl: config.ttl,
                max_upload_bytes: config.max_upload_bytes,
                max_streaming_pipes: config.max_streaming_pipes,
                buffer_size: config.buffer_size,
                splice: config.splice,
                splice_budget: config.splice_budget,
                sender_progress: config.sender_progress,
            }),
            fx: Vec::new(),
        }
    }

    /// Gauges for `/metrics`.
    pub fn gauges(&self) -> RelayGauges {
        self.table.gauges()
    }

    /// `GET /status/<path>`: what the table knows of pipe `key`, as one
    /// JSON object (docs/protocol.md, "Status of a path").
    pub fn status_json(&self, key: &str) -> String {
        use crate::json::string;
        use std::fmt::Write as _;
        let Some(st) = self.table.status(key) else {
            return format!("{{\"path\":{},\"state\":\"none\"}}\n", string(key));
        };
        let opt = |v: &Option<String>| v.as_deref().map_or("null".to_string(), string);
        let mut out = String::with_capacity(256);
        let _ = writeln!(
            out,
            "{{\"path\":{},\"state\":\"{}\",\"n\":{},\"receivers\":{},\"sender\":{},\"length\":{},\"read\":{},\"delivered\":{},\"type\":{},\"disposition\":{},\"form\":{}}}",
            string(key),
            st.state,
            st.n,
            st.receivers,
            st.sender,
            st.length.map_or("null".to_string(), |l| l.to_string()),
            st.read,
            st.delivered,
            opt(&st.content_type),
            opt(&st.disposition),
            st.form,
        );
        out
    }

    /// Pipes moving bytes.
    pub fn streaming(&self) -> usize {
        self.table.streaming()
    }

    /// Whether a pump waits for the next turn (the poll must not sleep).
    pub fn has_queued(&self) -> bool {
        self.table.has_queued()
    }

    /// Carry out what the core asked.
    fn apply(&mut self, ctx: &mut Ctx) {
        #[cfg(debug_assertions)]
        let touched: Vec<Token> = self.fx.iter().map(effect_token).collect();
        for e in self.fx.drain(..) {
            match e {
                Effect::Refuse {
                    token,
                    minor,
                    status,
                    msg,
                } => ctx.respond_error(token, minor, status, &msg, false),
                Effect::Joined { token, pipe, role } => {
                    if let Some(conn) = ctx.live_mut(token) {
                        conn.state = State::Relay { pipe, role };
                        if role == Role::Receiver {
                            // Its response closes the connection: pipelined
                            // bytes after its head are never read.
                            conn.inbuf = Vec::new();
                        }
                    }
                    ctx.disarm(token);
                }
                Effect::Park(t) => ctx.mark_parked(t),
                Effect::Unpark(t) => ctx.unpark(t),
                Effect::Release { token, end } => ctx.finish(token, end),
                Effect::Close(t) => {
                    if let Some(conn) = ctx.live_mut(t) {
                        conn.sock.shutdown_write();
                    }
                    ctx.kill(t, "done with the pipe");
                }
                Effect::Reset(t) => {
                    ctx.reset(t, "cut (reset)");
                }
            }
        }
        #[cfg(debug_assertions)]
        self.check_links(ctx, &touched);
    }

    /// The links between the table and the connections agree, for the
    /// connections an effect named: a connection is `State::Relay` of a
    /// pipe exactly when the table lists it as that pipe's party.
    #[cfg(debug_assertions)]
    fn check_links(&self, ctx: &Ctx, tokens: &[Token]) {
        for &t in tokens {
            let conn_says = ctx.live(t).and_then(|c| match c.state {
                State::Relay { pipe, role } => Some((pipe, role)),
                _ => None,
            });
            assert_eq!(
                conn_says,
                self.table.party(t),
                "connection {} and the pairing table disagree",
                t.0
            );
        }
    }

    // --- The loop's moments ------------------------------------------------------

    /// Readiness of party `t` of `pipe`.
    pub fn ready(&mut self, ctx: &mut Ctx, t: Token, pipe: PipeId) {
        let now = ctx.now;
        self.table
            .ready(&mut CtxEnv { ctx }, now, pipe, t, &mut self.fx);
        self.apply(ctx);
    }

    /// A relay timer fired.
    pub fn timer(&mut self, ctx: &mut Ctx, what: RelayTimer, h: Handle) {
        let now = ctx.now;
        self.table
            .timer(&mut CtxEnv { ctx }, now, what, h, &mut self.fx);
        self.apply(ctx);
    }

    /// The loop closed party `t` (the relay is stopping, or it failed):
    /// its pipe lets it go.
    pub fn closed(&mut self, ctx: &mut Ctx, t: Token, pipe: PipeId) {
        let now = ctx.now;
        self.table
            .gone(&mut CtxEnv { ctx }, now, pipe, t, &mut self.fx);
        self.apply(ctx);
    }

    /// The relay is stopping: waiting parties are told; transfers go on.
    pub fn shutdown(&mut self, ctx: &mut Ctx) {
        self.table.shutdown(&mut CtxEnv { ctx }, &mut self.fx);
        self.apply(ctx);
    }

    /// The shutdown grace ran out: running transfers are cut.
    pub fn cut_all(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        self.table.cut_all(&mut CtxEnv { ctx }, now, &mut self.fx);
        self.apply(ctx);
    }

    /// Run pumps queued by an earlier turn (R8).
    pub fn run_queued(&mut self, ctx: &mut Ctx) {
        if self.table.has_queued() {
            let now = ctx.now;
            self.table
                .run_queued(&mut CtxEnv { ctx }, now, &mut self.fx);
            self.apply(ctx);
        }
    }

    // --- Requests -------------------------------------------------------------------

    /// A request on a pipe path: a sender (`PUT`/`POST`) or a receiver
    /// (`GET`).
    pub fn request(&mut self, ctx: &mut Ctx, t: Token, head: Head<'_>, early: Vec<u8>, role: Role) {
        let minor = head.minor;
        let n = match head.query_param("n") {
            None => 1,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 && n <= ctx.config.max_receivers => n,
                _ => {
                    let msg = format!(
                        "?n= must be a whole number from 1 to {}.",
                        ctx.config.max_receivers
                    );
                    return refuse(ctx, t, minor, 400, &msg);
                }
            },
        };
        let side = match role {
            Role::Sender => match upload(ctx, &head, early, true) {
                Ok(u) => Side::Sender(u),
                Err((status, msg)) => return refuse(ctx, t, minor, status, &msg),
            },
            Role::Receiver => Side::Receiver,
        };
        let req = Request {
            token: t,
            key: head.path.to_string(),
            n,
            minor,
            expect_continue: head.expect_continue,
            side,
        };
        let now = ctx.now;
        self.table
            .request(&mut CtxEnv { ctx }, now, req, &mut self.fx);
        self.apply(ctx);
    }
}

/// The connection an effect is about.
#[cfg(debug_assertions)]
fn effect_token(e: &Effect) -> Token {
    match e {
        Effect::Refuse { token, .. }
        | Effect::Joined { token, .. }
        | Effect::Release { token, .. } => *token,
        Effect::Park(t) | Effect::Unpark(t) | Effect::Close(t) | Effect::Reset(t) => *t,
    }
}

/// Refuse a pipe request before it reaches the table.
fn refuse(ctx: &mut Ctx, t: Token, minor: u8, status: u16, msg: &str) {
    ctx.metrics.transfers_rejected += 1;
    // The client may already be sending a body that will not be read.
    ctx.respond_error(t, minor, status, msg, false);
}

/// A sender's upload as the core keeps it: checks on its head first (the
/// declared length against the limit, a form's boundary). A form forwards
/// its first part (`any_part`: named pipes) or its first file part
/// (ephemeral sockets, as ephemeral-socket-service did).
fn upload(
    ctx: &mut Ctx,
    head: &Head<'_>,
    early: Vec<u8>,
    any_part: bool,
) -> Result<Box<Upload>, (u16, String)> {
    if let BodyFraming::Length(len) = head.framing {
        let max = ctx.config.max_upload_bytes;
        if max > 0 && len > max {
            let msg = ctx
                .hooks
                .too_large(max)
                .unwrap_or_else(|| hooks::text::too_large(max));
            return Err((413, msg));
        }
    }
    let ct = head.content_type().unwrap_or(b"");
    let ct = String::from_utf8_lossy(ct);
    let form = ct
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/form-data");
    let multipart = if form {
        match multipart::boundary_from_content_type(&ct) {
            Some(b) if any_part => Some(Box::new(MultipartScanner::first_part(&b))),
            Some(b) => Some(Box::new(MultipartScanner::new(&b))),
            None => {
                return Err((
                    400,
                    "multipart/form-data needs a valid boundary parameter.".to_string(),
                ))
            }
        }
    } else {
        None
    };
    Ok(Box::new(Upload {
        framing: head.framing,
        content_type: head.content_type().map(<[u8]>::to_vec),
        content_disposition: head.header("content-disposition").map(<[u8]>::to_vec),
        x_piping: head.headers("x-piping").map(<[u8]>::to_vec).collect(),
        multipart,
        early,
    }))
}
