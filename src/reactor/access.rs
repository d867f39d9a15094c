//! The router's gate: which listener a request came in on, and whether the
//! access rules let it through, decided before any family sees it.
//!
//! `admit` runs once per parsed head, before routing. A refused request
//! is answered here (`401`, `403` or `404`) and goes no further: nothing is
//! parked, no path or ID is taken, no party is reached. Requests that read
//! a body are answered and closed (the body is never read).
//!
//! What a request does, for the rules (docs/auth.md has the table):
//! `GET`/`HEAD` receive and `PUT`/`POST` send on the request path; a
//! WebSocket does both; `POST /` and `GET /reserve` send on `/s/` (the IDs
//! they make live there) and `POST /reserve/<id>` sends on `/s/<id>`;
//! SockJS requests act on their channel, `/sockjs/<channel>`, by
//! transport. `GET /status/<path>` tells whether `<path>` has parties
//! waiting, so it is let through for anyone who may send or receive on
//! `<path>`. `OPTIONS`, the relay's own pages (with `/qr`, which only
//! draws the text it is given), `/healthz` and the SockJS greeting, info
//! and iframe pages are public.
//!
//! Nothing logged here holds a secret: no header value and no query.

use std::borrow::Cow;
use std::path::Path;

use log::debug;
use mio::Token;

use crate::auth::{Actions, Decision, Request, Rules};
use crate::http::request::Method;
use crate::http::Head;
use crate::net::{Ctx, ListenerKind};
use crate::sockjs::protocol::{self, Route, Transport};

/// `WWW-Authenticate` on every `401`: both schemes the rules accept.
const CHALLENGE: &str = "WWW-Authenticate: Basic realm=\"weir\", charset=\"UTF-8\"\r\n\
                         WWW-Authenticate: Bearer realm=\"weir\"\r\n";

/// Pages anyone may read, whatever the rules.
const PUBLIC: &[&str] = &[
    "/",
    "/help",
    "/noscript",
    "/healthz",
    "/version",
    "/robots.txt",
    "/favicon.ico",
    "/qr",
];

/// What a request would do: the path the rules' prefixes match, the path
/// a signed link must name, the action.
#[derive(Debug, PartialEq, Eq)]
struct Target<'h> {
    resource: Cow<'h, str>,
    link_path: &'h str,
    action: Actions,
    /// `/status/<path>`: sending is as good as receiving.
    or_send: bool,
}

/// Whether the request may go on to the router; when not, it has been
/// answered. `reserved`: the path is the relay's own (the router's
/// `is_reserved`), so an upgrade there is not a WebSocket pipe.
pub(crate) fn admit(ctx: &mut Ctx, t: Token, head: &Head<'_>, reserved: bool) -> bool {
    let Some(listener) = ctx.live(t).map(|c| c.listener) else {
        return false;
    };
    let keep = head.keep_alive && !head.has_body() && !head.upgrade_websocket && !ctx.stopping;
    if listener == ListenerKind::Metrics {
        if matches!(head.path, "/metrics" | "/healthz") {
            return true;
        }
        let msg = "This address serves /metrics and /healthz only.";
        ctx.respond_error(t, head.minor, 404, msg, keep);
        return false;
    }
    if head.path == "/metrics" && ctx.config.metrics_listen.is_some() {
        let msg = "/metrics is not served on this address.";
        ctx.respond_error(t, head.minor, 404, msg, keep);
        return false;
    }
    let Some(rules) = ctx.config.auth.as_deref() else {
        return true;
    };
    let Some(target) = target(head, reserved) else {
        return true;
    };
    let check = |action| {
        rules.check(&Request {
            resource: &target.resource,
            link_path: target.link_path,
            action,
            authorization: head.header("authorization"),
            query: head.query,
            now: ctx.unix_now(),
        })
    };
    let mut decision = check(target.action);
    if target.or_send && !matches!(decision, Decision::Allow { .. }) {
        if let d @ Decision::Allow { .. } = check(Actions::SEND) {
            decision = d;
        }
    }
    let (status, msg, extra) = match decision {
        Decision::Allow { who } => {
            debug!(
                "[{}] {} {} allowed: {who}",
                t.0,
                target.action.words(),
                target.resource
            );
            return true;
        }
        Decision::Unauthenticated(msg) => (401, Cow::Borrowed(msg), CHALLENGE),
        Decision::Forbidden(msg) => (403, Cow::Owned(msg), ""),
    };
    ctx.metrics.auth_refused[usize::from(status == 403)] += 1;
    debug!(
        "[{}] {status}: may not {} {}",
        t.0,
        target.action.words(),
        target.resource
    );
    ctx.respond_error_with(t, head.minor, status, &msg, extra, keep);
    false
}

/// What `head` would do, or `None` for a public request.
fn target<'h>(head: &Head<'h>, reserved: bool) -> Option<Target<'h>> {
    let p = head.path;
    let on = |action| {
        Some(Target {
            resource: Cow::Borrowed(p),
            link_path: p,
            action,
            or_send: false,
        })
    };
    let on_ids = |resource: Cow<'h, str>| {
        Some(Target {
            resource,
            link_path: p,
            action: Actions::SEND,
            or_send: false,
        })
    };
    let (get, send) = match head.method {
        Method::Get | Method::Head => (true, false),
        Method::Post | Method::Put => (false, true),
        // Preflights carry no credentials; other methods are refused (405).
        Method::Options | Method::Other => return None,
    };
    if let Some(after) = p.strip_prefix("/sockjs/") {
        let channel = after.split('/').next().unwrap_or("");
        let base = &p[.."/sockjs/".len() + channel.len()];
        let action = match protocol::route(&after[channel.len()..], head.query, head.method) {
            Route::RawWebsocket => Actions::BOTH,
            Route::Session { transport, .. } => match transport {
                Transport::Websocket => Actions::BOTH,
                Transport::XhrSend | Transport::JsonpSend => Actions::SEND,
                _ => Actions::RECEIVE,
            },
            // Greeting, info, iframe, preflights and errors: no channel
            // is touched.
            _ => return None,
        };
        return Some(Target {
            resource: Cow::Borrowed(base),
            link_path: base,
            action,
            or_send: false,
        });
    }
    if let Some(path) = p
        .strip_prefix("/status")
        .filter(|r| get && r.starts_with('/'))
    {
        return Some(Target {
            resource: Cow::Borrowed(path),
            link_path: path,
            action: Actions::RECEIVE,
            or_send: true,
        });
    }
    if head.upgrade_websocket && get && !reserved {
        return on(Actions::BOTH);
    }
    if send && p == "/" {
        return on_ids(Cow::Borrowed("/s/"));
    }
    if get && p == "/reserve" {
        return on_ids(Cow::Borrowed("/s/"));
    }
    if let Some(id) = p.strip_prefix("/reserve/").filter(|_| send) {
        return on_ids(Cow::Owned(format!("/s/{id}")));
    }
    if get && PUBLIC.contains(&p) {
        return None;
    }
    on(if send {
        Actions::SEND
    } else {
        Actions::RECEIVE
    })
}

/// Read and check a rules file, and the link key it names (a relative
/// key path is taken from the rules file's directory); `--auth` at start
/// and again on `SIGHUP`. The error is one line naming the file.
pub fn load_rules(path: &Path) -> Result<Rules, String> {
    let text = read_small(path, crate::auth::MAX_RULES_BYTES)?;
    let mut rules = Rules::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(k) = rules.link_key_file() {
        let base = path.parent().unwrap_or(Path::new("."));
        let key_path = base.join(k);
        let key = read_small(&key_path, 4096)?;
        let key = crate::auth::link::parse_key(&key)
            .map_err(|e| format!("{}: {e}", key_path.display()))?;
        rules.set_link_key(key);
    }
    Ok(rules)
}

/// A small text file, or a one-line reason.
pub fn read_small(path: &Path, limit: usize) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > limit as u64 {
        return Err(format!("{}: larger than {limit} bytes", path.display()));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{parse_head, Limits};

    fn of(req: &str) -> Option<(String, String, &'static str)> {
        let raw = format!("{req}\r\nHost: x\r\n\r\n");
        let limits = Limits {
            max_head: 4096,
            max_target: 1024,
        };
        let (head, _) = parse_head(raw.as_bytes(), limits).unwrap().unwrap();
        target(&head, false).map(|t| {
            (
                t.resource.into_owned(),
                t.link_path.to_string(),
                t.action.words(),
            )
        })
    }

    fn is(req: &str, resource: &str, link: &str, action: &'static str) {
        assert_eq!(
            of(req),
            Some((resource.into(), link.into(), action)),
            "{req}"
        );
    }

    #[test]
    fn what_each_request_does() {
        is("PUT /a/b HTTP/1.1", "/a/b", "/a/b", "send");
        is("POST /a?n=2 HTTP/1.1", "/a", "/a", "send");
        is("GET /a?n=2 HTTP/1.1", "/a", "/a", "receive");
        is("HEAD /a HTTP/1.1", "/a", "/a", "receive");
        is("POST / HTTP/1.1", "/s/", "/", "send");
        is("GET /reserve HTTP/1.1", "/s/", "/reserve", "send");
        is(
            "POST /reserve/abc HTTP/1.1",
            "/s/abc",
            "/reserve/abc",
            "send",
        );
        is("GET /s/abc HTTP/1.1", "/s/abc", "/s/abc", "receive");
        is("GET /signal HTTP/1.1", "/signal", "/signal", "receive");
        is(
            "GET /signal/x HTTP/1.1",
            "/signal/x",
            "/signal/x",
            "receive",
        );
        is("POST /signal/x HTTP/1.1", "/signal/x", "/signal/x", "send");
        is(
            "GET /events/t HTTP/1.1",
            "/events/t",
            "/events/t",
            "receive",
        );
        is("POST /events/t HTTP/1.1", "/events/t", "/events/t", "send");
        is("GET /metrics HTTP/1.1", "/metrics", "/metrics", "receive");
        // A pipe's status: its path, by anyone who may receive (or send).
        is("GET /status/a/b HTTP/1.1", "/a/b", "/a/b", "receive");
        assert_eq!(of("GET /qr?t=hi HTTP/1.1"), None);
        is(
            "GET /p HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade",
            "/p",
            "/p",
            "send and receive",
        );
        let sj = "/sockjs/chat";
        is("POST /sockjs/chat/1/a/xhr_send HTTP/1.1", sj, sj, "send");
        is("POST /sockjs/chat/1/a/jsonp_send HTTP/1.1", sj, sj, "send");
        is("POST /sockjs/chat/1/a/xhr HTTP/1.1", sj, sj, "receive");
        is(
            "POST /sockjs/chat/1/a/xhr_streaming HTTP/1.1",
            sj,
            sj,
            "receive",
        );
        is(
            "GET /sockjs/chat/1/a/eventsource HTTP/1.1",
            sj,
            sj,
            "receive",
        );
        is(
            "GET /sockjs/chat/1/a/htmlfile?c=f HTTP/1.1",
            sj,
            sj,
            "receive",
        );
        is("GET /sockjs/chat/1/a/jsonp?c=f HTTP/1.1", sj, sj, "receive");
        is(
            "GET /sockjs/chat/1/a/websocket HTTP/1.1",
            sj,
            sj,
            "send and receive",
        );
        is(
            "GET /sockjs/chat/websocket HTTP/1.1",
            sj,
            sj,
            "send and receive",
        );
        for public in [
            "GET / HTTP/1.1",
            "HEAD / HTTP/1.1",
            "GET /help HTTP/1.1",
            "GET /noscript HTTP/1.1",
            "GET /healthz HTTP/1.1",
            "OPTIONS /a HTTP/1.1",
            "DELETE /a HTTP/1.1",
            "GET /sockjs/chat HTTP/1.1",
            "GET /sockjs/chat/info HTTP/1.1",
            "GET /sockjs/chat/iframe.html HTTP/1.1",
            "OPTIONS /sockjs/chat/1/a/xhr HTTP/1.1",
        ] {
            assert_eq!(of(public), None, "{public}");
        }
    }
}
