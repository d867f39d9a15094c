//! Ephemeral sockets (spec §2): server-assigned IDs under `/s/`.
//!
//! `POST /` makes a fresh ID from the OS CSPRNG and parks the upload under
//! it; `GET /s/<id>` is its one receiver, and the ID is spent when that
//! receiver arrives. With `--reservations`, `GET /reserve` makes an ID
//! first and `POST /reserve/<id>` uploads into it. The wait is bounded by a
//! deadline fixed when the ID is made (never reset); after that the
//! transfer streams like any pipe. The texts written at each moment come
//! from [`crate::hooks`].

use mio::Token;

use super::core::{Request, Side, Upload};
use super::{upload, CtxEnv, Relay};
use crate::http::request::BodyFraming;
use crate::http::{response, Head};
use crate::net::Ctx;
use crate::{hooks, ids, json, pages};

impl Relay {
    /// `POST /` or `PUT /`: open an ephemeral socket.
    pub fn ephemeral_open(&mut self, ctx: &mut Ctx, t: Token, head: Head<'_>, early: Vec<u8>) {
        let minor = head.minor;
        let Some(up) = upload_checks(ctx, t, &head, early) else {
            return;
        };
        let Some(id) = self.fresh_id(ctx) else {
            return ctx.respond_no_id(t, minor);
        };
        let url = format!(
            "{}/s/{id}",
            pages::base_url(&head, ctx.config.trust_proxy, ctx.is_tls(t))
        );
        let req = Request {
            token: t,
            key: format!("/s/{id}"),
            n: 1,
            minor,
            expect_continue: head.expect_continue,
            side: Side::Sender(up),
        };
        let now = ctx.now;
        self.table
            .open_ephemeral(&mut CtxEnv { ctx }, now, req, id, &url, &mut self.fx);
        self.apply(ctx);
    }

    /// `GET /s/<id>`: the one receiver of an ephemeral socket.
    pub fn ephemeral_receive(&mut self, ctx: &mut Ctx, t: Token, head: Head<'_>) {
        let id = head.path.trim_start_matches("/s/").to_string();
        let req = Request {
            token: t,
            key: head.path.to_string(),
            n: 1,
            minor: head.minor,
            expect_continue: false,
            side: Side::Receiver,
        };
        let now = ctx.now;
        self.table
            .receive_ephemeral(&mut CtxEnv { ctx }, now, req, &id, &mut self.fx);
        self.apply(ctx);
    }

    /// `GET /reserve`: make an ID now, upload later.
    pub fn reserve(&mut self, ctx: &mut Ctx, t: Token, head: Head<'_>) {
        let minor = head.minor;
        if let Some(required) = ctx.config.required_referer.clone() {
            let (referer, origin) = (head.header_str("referer"), head.header_str("origin"));
            if !referer_matches(&required, referer, origin) {
                let seen = referer.or(origin);
                let msg = ctx
                    .hooks
                    .referer_rejected(seen)
                    .unwrap_or_else(hooks::text::referer_rejected);
                return ctx.respond_error(t, minor, 403, &msg, false);
            }
        }
        let Some(id) = self.fresh_id(ctx) else {
            return ctx.respond_no_id(t, minor);
        };
        let ttl = ctx.config.ttl;
        let now = ctx.now;
        self.table.reserve(&mut CtxEnv { ctx }, now, id.clone());
        ctx.hooks.reserved(&id, ttl);
        let base = pages::base_url(&head, ctx.config.trust_proxy, ctx.is_tls(t));
        let body = format!(
            "{{\"id\": {}, \"upload\": {}, \"download\": {}, \"expires_in\": {}}}\n",
            json::string(&id),
            json::string(&format!("{base}/reserve/{id}")),
            json::string(&format!("{base}/s/{id}")),
            ttl.as_secs()
        );
        let mut out = Vec::with_capacity(body.len() + 256);
        response::Short {
            minor,
            status: 200,
            content_type: "application/json",
            extra: "Cache-Control: no-store\r\n",
            body: body.as_bytes(),
            keep_alive: head.keep_alive,
            head_only: false,
        }
        .write(&mut out);
        ctx.respond(t, &out, head.keep_alive);
    }

    /// `POST /reserve/<id>`: the upload into a reservation.
    pub fn reserve_upload(&mut self, ctx: &mut Ctx, t: Token, head: Head<'_>, early: Vec<u8>) {
        let minor = head.minor;
        let id = head.path.trim_start_matches("/reserve/").to_string();
        let Some(up) = upload_checks(ctx, t, &head, early) else {
            return;
        };
        let url = format!(
            "{}/s/{id}",
            pages::base_url(&head, ctx.config.trust_proxy, ctx.is_tls(t))
        );
        let req = Request {
            token: t,
            key: format!("/s/{id}"),
            n: 1,
            minor,
            expect_continue: head.expect_continue,
            side: Side::Sender(up),
        };
        let now = ctx.now;
        self.table
            .upload_reserved(&mut CtxEnv { ctx }, now, req, &id, &url, &mut self.fx);
        self.apply(ctx);
    }

    /// A fresh ID no live socket uses (a clash at 72 bits is all but
    /// impossible; the loop makes it certain).
    fn fresh_id(&self, ctx: &Ctx) -> Option<String> {
        for _ in 0..4 {
            let id = ids::new_id(ctx.config.id_length).ok()?;
            if !self.table.taken(&format!("/s/{id}")) {
                return Some(id);
            }
        }
        None
    }
}

/// An ephemeral upload needs a body and must pass the sender checks (its
/// form's first *file* part is forwarded); `None` when it was answered.
fn upload_checks(ctx: &mut Ctx, t: Token, head: &Head<'_>, early: Vec<u8>) -> Option<Box<Upload>> {
    if head.framing == BodyFraming::None {
        let msg =
            "The upload needs a body, sent with Content-Length or Transfer-Encoding: chunked.";
        ctx.respond_error(t, head.minor, 411, msg, false);
        return None;
    }
    match upload(ctx, head, early, false) {
        Ok(u) => Some(u),
        Err((status, msg)) => {
            ctx.metrics.transfers_rejected += 1;
            ctx.respond_error(t, head.minor, status, &msg, false);
            None
        }
    }
}

/// Whether a request's `Referer` or `Origin` belongs to `required` (a URL
/// without a trailing slash). The Referer must be the URL itself or below
/// it; the Origin must be the URL's origin.
pub fn referer_matches(required: &str, referer: Option<&str>, origin: Option<&str>) -> bool {
    let under = |r: &str| {
        r.strip_prefix(required)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
    };
    if referer.is_some_and(under) {
        return true;
    }
    let required_origin = origin_of(required);
    origin.is_some_and(|o| o.trim_end_matches('/') == required_origin)
}

fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referer_rules() {
        let req = "https://app.example/share";
        assert!(referer_matches(
            req,
            Some("https://app.example/share"),
            None
        ));
        assert!(referer_matches(
            req,
            Some("https://app.example/share/page?x"),
            None
        ));
        assert!(!referer_matches(
            req,
            Some("https://app.example/sharex"),
            None
        ));
        assert!(!referer_matches(
            req,
            Some("https://app.example.evil/share"),
            None
        ));
        assert!(referer_matches(req, None, Some("https://app.example")));
        assert!(!referer_matches(req, None, Some("https://evil.example")));
        assert!(!referer_matches(req, None, None));
        assert!(referer_matches(
            "http://a:8080",
            None,
            Some("http://a:8080")
        ));
    }
}
