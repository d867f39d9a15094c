//! Routing a parsed request: reserved paths, preflight, pipes.
//!
//! Reserved paths are answered from memory with keep-alive; everything
//! else on `GET`, `PUT` or `POST` is a pipe path. A short request that came
//! with a body is answered and the connection closed, so the body is never
//! mistaken for the next request.

use mio::Token;

use super::{http as phases, Families};
use crate::events::Events;
use crate::http::body::Purpose;
use crate::http::request::Method;
use crate::http::{response, Head};
use crate::metrics::{self, Gauges};
use crate::net::{Ctx, State};
use crate::page;
use crate::relay::core::Role;

/// Path prefixes that belong to other families and are never pipes.
/// A prefix covers the path itself and everything below it (`/signal`,
/// `/signal/abc`), not its look-alikes (`/signals`).
pub const RESERVED_PREFIXES: &[&str] =
    &["/s", "/reserve", "/signal", "/events", "/sockjs", "/status"];

/// Exact paths answered by the relay itself.
pub const RESERVED_PATHS: &[&str] = &[
    "/",
    "/help",
    "/version",
    "/healthz",
    "/metrics",
    "/robots.txt",
    "/favicon.ico",
    "/noscript",
    "/qr",
];

/// Whether `path` can never be a pipe.
pub fn is_reserved(path: &str) -> bool {
    RESERVED_PATHS.contains(&path)
        || RESERVED_PREFIXES.iter().any(|p| {
            path.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

impl Families {
    /// Route one parsed request.
    pub(crate) fn route(&mut self, ctx: &mut Ctx, token: Token, head: Head<'_>, early: Vec<u8>) {
        let minor = head.minor;
        // Bytes read past a head without a body are the next request(s) on
        // the connection (pipelining): they wait in `inbuf` and are read
        // once this answer is written. After an upgrade they belong to the
        // new protocol, and after a body head they are body.
        let early = if head.has_body() || head.upgrade_websocket {
            early
        } else {
            if let Some(conn) = ctx.live_mut(token) {
                conn.inbuf = early;
            }
            Vec::new()
        };
        // The one gate: listener and access rules, before any family.
        if !super::access::admit(ctx, token, &head, is_reserved(head.path)) {
            return;
        }
        if head.path.starts_with("/sockjs/") {
            // A send request's body is read here, then handed back.
            if let Some(b) = self.sockjs.request(ctx, &mut self.ws, token, head, early) {
                let purpose = Purpose::SockJsSend;
                phases::start_body(ctx, self, token, &b.head, b.early, purpose, b.limit);
            }
            return;
        }
        // A body we do not consume must not be read as the next request.
        let keep = head.keep_alive && !head.has_body() && !ctx.stopping;
        match head.method {
            Method::Other => {
                let allow = allowed(ctx, head.path);
                let msg = if is_reserved(head.path) {
                    format!("Method not allowed: {} answers {allow}.", head.path)
                } else {
                    "Method not allowed: use GET to receive, PUT or POST to send.".to_string()
                };
                return ctx.respond_405(token, minor, allow, &msg, keep);
            }
            Method::Options => return preflight(ctx, token, &head, keep),
            _ => {}
        }
        match (head.method, head.path) {
            (Method::Post | Method::Put, "/") => {
                return self.relay.ephemeral_open(ctx, token, head, early)
            }
            (Method::Get, p) if p.starts_with("/s/") => {
                return self.relay.ephemeral_receive(ctx, token, head)
            }
            (Method::Get, "/reserve") if ctx.config.reservations => {
                return self.relay.reserve(ctx, token, head)
            }
            (Method::Post | Method::Put, p)
                if ctx.config.reservations && p.starts_with("/reserve/") =>
            {
                return self.relay.reserve_upload(ctx, token, head, early)
            }
            (Method::Get, p) if head.upgrade_websocket && !is_reserved(p) => {
                return self.ws.pipe_request(ctx, token, head, early)
            }
            (Method::Head, p)
                if p.starts_with("/s/")
                    || (ctx.config.reservations
                        && (p == "/reserve" || p.starts_with("/reserve/"))) =>
            {
                let allow = allowed(ctx, p);
                let msg = format!("{p} answers {allow}: a HEAD here would use it up.");
                return ctx.respond_405(token, minor, allow, &msg, keep);
            }
            (Method::Get, "/signal") => return self.events.signal_create(ctx, token, head),
            (Method::Head, "/signal") => return Events::stream_head(ctx, token, &head, keep),
            (Method::Get, p) if p.starts_with("/signal/") => {
                let id = p["/signal/".len()..].to_string();
                return self.events.signal_join(ctx, token, head, &id);
            }
            (Method::Head, p) if p.starts_with("/signal/") => {
                if !self.events.has_swarm(&p["/signal/".len()..]) {
                    let msg = "No such swarm: it never existed, or its initiator left.";
                    return ctx.respond_error(token, minor, 404, msg, keep);
                }
                return Events::stream_head(ctx, token, &head, keep);
            }
            (Method::Post, p) if p.starts_with("/signal/") => {
                let id = &p["/signal/".len()..];
                if !self.events.has_swarm(id) {
                    return ctx.respond_error(
                        token,
                        minor,
                        404,
                        "No such swarm: it never existed, or its initiator left.",
                        false,
                    );
                }
                let limit = ctx.config.signal_body_limit;
                return phases::start_body(ctx, self, token, &head, early, Purpose::Signal, limit);
            }
            (Method::Get, p) if p.starts_with("/events/") => {
                let topic = p["/events/".len()..].to_string();
                return self.events.topic_subscribe(ctx, token, head, &topic);
            }
            (Method::Head, p) if p.starts_with("/events/") => {
                if !crate::events::topics::valid_topic(&p["/events/".len()..]) {
                    let msg = "A topic is /events/<name>: 1 to 200 characters, no '/'.";
                    return ctx.respond_error(token, minor, 404, msg, keep);
                }
                return Events::stream_head(ctx, token, &head, keep);
            }
            (Method::Post, p) if p.starts_with("/events/") => {
                let limit = ctx.config.event_body_limit;
                return phases::start_body(ctx, self, token, &head, early, Purpose::Publish, limit);
            }
            _ => {}
        }
        if !is_reserved(head.path) {
            return match head.method {
                Method::Get if service_worker(&head) => ctx.respond_error(
                    token,
                    minor,
                    400,
                    "Service-Worker requests are refused: a relay path cannot be a service worker.",
                    keep,
                ),
                Method::Get => self.relay.request(ctx, token, head, early, Role::Receiver),
                Method::Put | Method::Post => {
                    self.relay.request(ctx, token, head, early, Role::Sender)
                }
                _ => ctx.respond_405(
                    token,
                    minor,
                    allowed(ctx, head.path),
                    "Method not allowed on a pipe path: GET receives, PUT or POST sends.",
                    keep,
                ),
            };
        }
        let get = matches!(head.method, Method::Get | Method::Head);
        let head_only = head.method == Method::Head;
        if !get {
            let allow = allowed(ctx, head.path);
            let msg = if matches!(head.method, Method::Put | Method::Post) {
                format!(
                    "{} is reserved; send to another path, e.g. /mypath123.",
                    head.path
                )
            } else {
                format!("{} answers {allow}.", head.path)
            };
            return ctx.respond_405(token, minor, allow, &msg, keep);
        }
        let text = "text/plain; charset=utf-8";
        let html = "text/html; charset=utf-8";
        let mut extra = String::from("Cache-Control: no-store\r\n");
        let (status, ctype, body): (u16, &str, Vec<u8>) = match head.path {
            // A browser gets the page, every other client the text help.
            "/" if page::wants_html(&head) => {
                let Ok(nonce) = crate::ids::new_token() else {
                    let msg = "No randomness for the page's nonce; try again.";
                    return ctx.respond_error(token, minor, 503, msg, keep);
                };
                let p = page::index(&nonce);
                extra = format!("Vary: Accept\r\n{}", p.headers);
                (200, html, p.body.into_bytes())
            }
            "/" | "/help" => {
                if head.path == "/" {
                    extra.push_str("Vary: Accept\r\n");
                }
                (200, text, help_text(ctx, &head, token).into_bytes())
            }
            "/version" => (
                200,
                text,
                format!("weir {}\n", env!("CARGO_PKG_VERSION")).into_bytes(),
            ),
            "/healthz" => (200, text, b"ok\n".to_vec()),
            "/robots.txt" => (200, text, b"User-agent: *\nDisallow: /\n".to_vec()),
            "/favicon.ico" => (204, text, Vec::new()),
            "/noscript" => {
                let (Ok(nonce), Ok(fresh)) = (crate::ids::new_token(), crate::ids::new_id(16))
                else {
                    let msg = "No randomness for the page; try again.";
                    return ctx.respond_error(token, minor, 503, msg, keep);
                };
                let tls = ctx.is_tls(token);
                let p = page::noscript(&head, ctx.config.trust_proxy, tls, &nonce, &fresh);
                extra = p.headers;
                (200, html, p.body.into_bytes())
            }
            "/qr" => match page::qr_svg(&head) {
                Ok(svg) => {
                    extra = page::QR_HEADERS.to_string();
                    (200, "image/svg+xml", svg.into_bytes())
                }
                Err(msg) => return ctx.respond_error(token, minor, 400, msg, keep),
            },
            "/metrics" => (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics::render(&ctx.metrics, &self.gauges(ctx, token)).into_bytes(),
            ),
            // The pipe's key is its path: `/status/a/b` reports `/a/b`.
            p if p.starts_with("/status/") => (
                200,
                "application/json",
                self.relay.status_json(&p["/status".len()..]).into_bytes(),
            ),
            p if !allowed(ctx, p).contains("GET") => {
                let allow = allowed(ctx, p);
                let msg = format!("{p} answers {allow}.");
                return ctx.respond_405(token, minor, allow, &msg, keep);
            }
            _ => {
                let msg = format!("{} is reserved and not available on this relay.", head.path);
                return ctx.respond_error(token, minor, 404, &msg, keep);
            }
        };
        let mut out = Vec::with_capacity(body.len() + 256);
        if status == 204 {
            response::status_line(&mut out, minor, 204);
            response::connection_header(&mut out, minor, keep);
            out.extend_from_slice(b"\r\n");
        } else {
            response::Short {
                minor,
                status,
                content_type: ctype,
                extra: &extra,
                body: &body,
                keep_alive: keep,
                head_only,
            }
            .write(&mut out);
        }
        ctx.respond(token, &out, keep);
    }

    /// A finished short body goes to the family it is for.
    pub(crate) fn body_done(
        &mut self,
        ctx: &mut Ctx,
        t: Token,
        head: Head<'_>,
        purpose: Purpose,
        body: Vec<u8>,
    ) {
        match purpose {
            Purpose::Signal => self.events.signal_post(ctx, t, head, body),
            Purpose::Publish => self.events.topic_publish(ctx, t, head, body),
            Purpose::SockJsSend => self.sockjs.send_body(ctx, &mut self.ws, t, head, body),
        }
    }

    /// Gauges counted from the live tables; `asking` is left out.
    pub(crate) fn gauges(&self, ctx: &Ctx, asking: Token) -> Gauges {
        let count = |f: fn(&State) -> bool| ctx.conns.iter().filter(|(_, c)| f(&c.state)).count();
        let connections = ctx
            .conns
            .iter()
            .filter(|(k, c)| *k != asking.0 && !c.state.is_dead())
            .count();
        let relay = self.relay.gauges();
        let events = self.events.gauges();
        let ws = self.ws.gauges();
        let sj = self.sockjs.gauges();
        Gauges {
            connections,
            pipes_waiting: relay.waiting,
            pipes_streaming: relay.streaming,
            rings_in_use: relay.rings_in_use,
            ring_bytes: relay.ring_bytes,
            event_streams: count(|s| matches!(s, State::Events(_))),
            swarms: events.swarms,
            topics: events.topics,
            websockets: count(|s| {
                matches!(s, State::WebSocket(_))
                    || matches!(s, State::SockJs(c) if c.is_websocket())
            }),
            ws_waiting: ws.waiting,
            ws_bridged: ws.bridged,
            ws_inbufs: ctx.ws_buffers.counts().0,
            ws_rings: ctx.ws_rings.counts().0,
            sockjs_sessions: sj.sessions,
            sockjs_channels: sj.channels,
        }
    }
}

/// The help text for `head`, which came on `token`'s connection (`https`
/// URLs when it came over TLS).
fn help_text(ctx: &Ctx, head: &Head<'_>, token: Token) -> String {
    let opts = crate::help::Options {
        reservations: ctx.config.reservations,
        required_referer: ctx.config.required_referer.as_deref(),
    };
    let scheme = if ctx.is_tls(token) { "https" } else { "http" };
    crate::help::text(head, ctx.config.trust_proxy, scheme, opts)
}

/// Whether a browser fetches the request to install a service worker
/// (`Service-Worker: script`).
fn service_worker(head: &Head<'_>) -> bool {
    head.header("service-worker")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"script"))
}

/// The methods `path` answers, for `Allow` on a `405`.
pub(crate) fn allowed(ctx: &Ctx, path: &str) -> &'static str {
    let reservations = ctx.config.reservations;
    match path {
        "/" => "GET, HEAD, POST, PUT, OPTIONS",
        "/reserve" if reservations => "GET, OPTIONS",
        p if reservations && p.starts_with("/reserve/") => "POST, PUT, OPTIONS",
        p if p.starts_with("/s/") => "GET, OPTIONS",
        "/signal" => "GET, HEAD, OPTIONS",
        p if p.starts_with("/signal/") || p.starts_with("/events/") => "GET, HEAD, POST, OPTIONS",
        p if is_reserved(p) => "GET, HEAD, OPTIONS",
        _ => "GET, PUT, POST, OPTIONS",
    }
}

fn preflight(ctx: &mut Ctx, token: Token, head: &Head<'_>, keep: bool) {
    let mut out = Vec::with_capacity(512);
    response::status_line(&mut out, head.minor, 204);
    out.extend_from_slice(b"Access-Control-Allow-Methods: GET, HEAD, POST, PUT, OPTIONS\r\n");
    out.extend_from_slice(b"Access-Control-Allow-Headers: ");
    match head.header("access-control-request-headers") {
        Some(h) if !h.is_empty() => out.extend_from_slice(h),
        _ => out.extend_from_slice(b"Content-Type, Content-Disposition, X-Piping"),
    }
    out.extend_from_slice(b"\r\nAccess-Control-Max-Age: 86400\r\n");
    out.extend_from_slice(response::EXPOSE_HEADERS.as_bytes());
    response::connection_header(&mut out, head.minor, keep);
    out.extend_from_slice(b"\r\n");
    ctx.respond(token, &out, keep);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_paths_and_prefixes() {
        for p in [
            "/",
            "/help",
            "/metrics",
            "/s/abc",
            "/signal",
            "/signal/x",
            "/events/t",
            "/sockjs/echo/info",
            "/reserve",
            "/status/x",
        ] {
            assert!(is_reserved(p), "{p}");
        }
        for p in [
            "/x", "/helpme", "/signals", "/eventsx", "/a/s/b", "/ss", "/statusx",
        ] {
            assert!(!is_reserved(p), "{p}");
        }
    }
}
