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

use crate::http::request::BodyFraming;
use crate::http::{response, Head};
use crate::pipe::{Ephemeral, Role};
use crate::server::Server;
use crate::{hooks, ids, json, pages};

impl Server {
    /// `POST /` or `PUT /`: open an ephemeral socket.
    pub(crate) fn ephemeral_open(&mut self, token: Token, head: Head, early: Vec<u8>) {
        let minor = head.minor;
        let Some(multipart) = self.upload_checks(token, &head) else {
            return;
        };
        let Some(id) = self.fresh_id() else {
            return self.respond_no_id(token, minor);
        };
        let deadline = self.now + self.config.ttl;
        let p = self.new_pipe(
            format!("/s/{id}"),
            1,
            Some(Ephemeral {
                id,
                deadline,
                reservation: false,
                claimed: true,
            }),
        );
        self.join(p, token, head, early, Role::Sender, multipart);
    }

    /// `GET /s/<id>`: the one receiver of an ephemeral socket.
    pub(crate) fn ephemeral_receive(&mut self, token: Token, head: Head) {
        let id = head.path.trim_start_matches("/s/").to_string();
        let usable = self.paths.get(&head.path).copied().filter(|&p| {
            let pipe = &self.pipes[p];
            pipe.ephemeral.is_some() && !pipe.streaming && pipe.receivers.is_empty()
        });
        let Some(p) = usable else {
            return self.not_found(token, head.minor, &id);
        };
        self.join(p, token, head, Vec::new(), Role::Receiver, None);
    }

    /// `GET /reserve`: make an ID now, upload later.
    pub(crate) fn reserve(&mut self, token: Token, head: Head) {
        let minor = head.minor;
        if let Some(required) = self.config.required_referer.clone() {
            if !referer_matches(&required, head.referer.as_deref(), head.origin.as_deref()) {
                let seen = head.referer.as_deref().or(head.origin.as_deref());
                let msg = self
                    .hooks
                    .referer_rejected(seen)
                    .unwrap_or_else(hooks::text::referer_rejected);
                return self.respond_error(token, minor, 403, &msg, false);
            }
        }
        let Some(id) = self.fresh_id() else {
            return self.respond_no_id(token, minor);
        };
        let ttl = self.config.ttl;
        let deadline = self.now + ttl;
        self.new_pipe(
            format!("/s/{id}"),
            1,
            Some(Ephemeral {
                id: id.clone(),
                deadline,
                reservation: true,
                claimed: false,
            }),
        );
        self.hooks.reserved(&id, ttl);
        let base = pages::base_url(&head, self.config.trust_proxy);
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
        self.respond(token, out, head.keep_alive);
    }

    /// `POST /reserve/<id>`: the upload into a reservation.
    pub(crate) fn reserve_upload(&mut self, token: Token, head: Head, early: Vec<u8>) {
        let minor = head.minor;
        let id = head.path.trim_start_matches("/reserve/").to_string();
        let key = format!("/s/{id}");
        let open = self.paths.get(&key).copied().filter(|&p| {
            let pipe = &self.pipes[p];
            pipe.ephemeral
                .as_ref()
                .is_some_and(|e| e.reservation && !e.claimed)
        });
        let Some(p) = open else {
            return self.not_found(token, minor, &id);
        };
        let Some(multipart) = self.upload_checks(token, &head) else {
            return;
        };
        if let Some(e) = self.pipes[p].ephemeral.as_mut() {
            e.claimed = true;
        }
        self.join(p, token, head, early, Role::Sender, multipart);
    }

    /// An ephemeral upload needs a body and must pass the sender checks;
    /// `None` when it was answered with an error.
    fn upload_checks(
        &mut self,
        token: Token,
        head: &Head,
    ) -> Option<Option<Box<crate::http::multipart::MultipartScanner>>> {
        if head.framing == BodyFraming::None {
            let msg =
                "The upload needs a body, sent with Content-Length or Transfer-Encoding: chunked.";
            self.respond_error(token, head.minor, 411, msg, false);
            return None;
        }
        match self.sender_checks(head, false) {
            Ok(m) => Some(m),
            Err((status, msg)) => {
                self.metrics.transfers_rejected += 1;
                self.respond_error(token, head.minor, status, &msg, false);
                None
            }
        }
    }

    fn not_found(&mut self, token: Token, minor: u8, id: &str) {
        let msg = self
            .hooks
            .not_found(id)
            .unwrap_or_else(|| hooks::text::not_found(id));
        self.respond_error(token, minor, 404, &msg, false);
    }

    /// A fresh ID no live socket uses (a clash at 72 bits is all but
    /// impossible; the loop makes it certain).
    fn fresh_id(&mut self) -> Option<String> {
        for _ in 0..4 {
            let id = ids::new_id(self.config.id_length).ok()?;
            if !self.paths.contains_key(&format!("/s/{id}")) {
                return Some(id);
            }
        }
        None
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
