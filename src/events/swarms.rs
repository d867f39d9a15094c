//! Signal swarms (spec §3): koa-signal's events over Server-Sent Events.
//!
//! `GET /signal` creates a swarm and makes its stream the initiator;
//! `GET /signal/<id>` joins; `POST /signal/<id>` with `{token, data, cid?}`
//! sends `event: signal` to every peer or to one. IDs, client IDs and
//! tokens are 128 bits from the OS CSPRNG, as 32 lowercase hex digits (the
//! shape koa-signal's clients expect). Tokens are compared in constant
//! time. When the initiator leaves, every stream of the swarm ends and the
//! swarm is gone.

use std::collections::HashMap;

use mio::Token;

use super::sse::{self, Event, Subscription};
use super::{Events, StreamEnd};
use crate::http::{response, Head};
use crate::json::{self, Value};
use crate::net::Ctx;
use crate::{form, ids};

/// One swarm.
#[derive(Debug)]
pub struct Swarm {
    initiator: String,
    peers: Vec<Peer>,
}

#[derive(Debug)]
struct Peer {
    cid: String,
    secret: String,
    conn: Token,
}

/// All swarms, by ID.
pub type Swarms = HashMap<String, Swarm>;

fn event_json(event: &str, data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    sse::encode(
        &Event {
            event: Some(event),
            data,
            ..Event::default()
        },
        &mut out,
    );
    out
}

fn id_cid(id: &str, cid: &str) -> String {
    format!(
        "{{\"id\":{},\"cid\":{}}}",
        json::string(id),
        json::string(cid)
    )
}

impl Events {
    /// Whether swarm `id` exists.
    pub fn has_swarm(&self, id: &str) -> bool {
        self.swarms.contains_key(id)
    }

    /// `GET /signal`: a new swarm with this stream as its initiator.
    pub fn signal_create(&mut self, ctx: &mut Ctx, token: Token, head: Head<'_>) {
        if !super::accepts_event_stream(&head) {
            return ctx.respond_error(
                token,
                head.minor,
                406,
                "Signal streams need Accept: text/event-stream.",
                false,
            );
        }
        if self.swarms.len() >= ctx.config.max_swarms {
            return ctx.respond_error(
                token,
                head.minor,
                503,
                "The relay has as many swarms as it allows; try again later.",
                false,
            );
        }
        let (Ok(id), Ok(cid), Ok(secret)) = (ids::new_token(), ids::new_token(), ids::new_token())
        else {
            return ctx.respond_no_id(token, head.minor);
        };
        // The swarm's ID is in its URLs: a fleet's balancer routes it by
        // the instance prefix. cids and tokens travel in bodies only.
        let id = ids::with_instance(ctx.config.instance.as_deref(), id);
        self.swarms.insert(
            id.clone(),
            Swarm {
                initiator: cid.clone(),
                peers: vec![Peer {
                    cid: cid.clone(),
                    secret: secret.clone(),
                    conn: token,
                }],
            },
        );
        // 200, not koa-signal's 201: EventSource fails on any other status,
        // and swarms are made for browsers (docs/protocol.md §3).
        self.connect_peer(ctx, token, &head, 200, &id, &cid, &secret);
    }

    /// `GET /signal/<id>`: join a swarm.
    pub fn signal_join(&mut self, ctx: &mut Ctx, token: Token, head: Head<'_>, id: &str) {
        let minor = head.minor;
        if !self.swarms.contains_key(id) {
            return ctx.respond_error(
                token,
                minor,
                404,
                "No such swarm: it never existed, or its initiator left.",
                false,
            );
        }
        if !super::accepts_event_stream(&head) {
            return ctx.respond_error(
                token,
                minor,
                406,
                "Signal streams need Accept: text/event-stream.",
                false,
            );
        }
        let cap = ctx.config.max_swarm_peers;
        if self.swarms[id].peers.len() >= cap {
            let msg = format!("The swarm is full ({cap} peers).");
            return ctx.respond_error(token, minor, 409, &msg, false);
        }
        let (Ok(cid), Ok(secret)) = (ids::new_token(), ids::new_token()) else {
            return ctx.respond_no_id(token, minor);
        };
        let swarm = self.swarms.get_mut(id).expect("checked above");
        swarm.peers.push(Peer {
            cid: cid.clone(),
            secret: secret.clone(),
            conn: token,
        });
        let initiator = swarm
            .peers
            .iter()
            .find(|p| p.cid == swarm.initiator)
            .map(|p| p.conn);
        self.connect_peer(ctx, token, &head, 200, id, &cid, &secret);
        if let Some(init) = initiator {
            self.send(ctx, init, &event_json("join", &id_cid(id, &cid)));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn connect_peer(
        &mut self,
        ctx: &mut Ctx,
        token: Token,
        head: &Head<'_>,
        status: u16,
        id: &str,
        cid: &str,
        secret: &str,
    ) {
        self.open_stream(
            ctx,
            token,
            head,
            status,
            Subscription::Peer {
                swarm: id.to_string(),
                cid: cid.to_string(),
            },
        );
        let data = format!(
            "{{\"id\":{},\"cid\":{},\"token\":{}}}",
            json::string(id),
            json::string(cid),
            json::string(secret)
        );
        self.send(ctx, token, &event_json("connect", &data));
    }

    /// A peer's stream ended (it left, or was dropped).
    pub(super) fn peer_left(&mut self, ctx: &mut Ctx, id: &str, cid: &str) {
        let Some(swarm) = self.swarms.get_mut(id) else {
            return;
        };
        swarm.peers.retain(|p| p.cid != cid);
        if swarm.initiator == cid {
            // The initiator is the swarm: everyone else's stream ends.
            let swarm = self.swarms.remove(id).expect("present");
            for p in swarm.peers {
                self.end_stream(ctx, p.conn, StreamEnd::Done);
            }
            return;
        }
        let initiator = swarm
            .peers
            .iter()
            .find(|p| p.cid == swarm.initiator)
            .map(|p| p.conn);
        if let Some(init) = initiator {
            self.send(ctx, init, &event_json("leave", &id_cid(id, cid)));
        }
    }

    /// `POST /signal/<id>` once its body is read.
    pub fn signal_post(&mut self, ctx: &mut Ctx, token: Token, head: Head<'_>, body: Vec<u8>) {
        let minor = head.minor;
        let keep = head.keep_alive && !ctx.stopping;
        let id = head.path.trim_start_matches("/signal/").to_string();
        if !self.swarms.contains_key(&id) {
            return ctx.respond_error(
                token,
                minor,
                404,
                "No such swarm: it never existed, or its initiator left.",
                keep,
            );
        }
        let media = media_type(&head);
        let json_type = media == "application/json"
            || (media.starts_with("application/") && media.ends_with("+json"));
        let value =
            match media.as_str() {
                _ if json_type => {
                    json::parse(&body, json::Limits { max_depth: 64 }).map_err(|e| e.to_string())
                }
                "application/x-www-form-urlencoded" => form::parse(
                    &body,
                    form::Limits {
                        max_params: 1000,
                        max_depth: 5,
                        max_array_index: 20,
                    },
                )
                .map_err(|e| e.to_string()),
                _ => return ctx.respond_error(
                    token,
                    minor,
                    415,
                    "Send JSON (application/json) or a form (application/x-www-form-urlencoded).",
                    keep,
                ),
            };
        let value = match value {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return ctx.respond_error(
                    token,
                    minor,
                    400,
                    "The body must be an object with token and data.",
                    keep,
                )
            }
            Err(e) => {
                let msg = format!("The body could not be parsed: {e}");
                return ctx.respond_error(token, minor, 400, &msg, keep);
            }
        };
        let swarm = &self.swarms[&id];
        let known = value.get("token").and_then(Value::as_str).is_some_and(|t| {
            // Compare against every peer so the time taken does not tell
            // which one matched.
            swarm.peers.iter().fold(false, |acc, p| {
                acc | ids::constant_time_eq(p.secret.as_bytes(), t.as_bytes())
            })
        });
        if !known {
            return ctx.respond_error(
                token,
                minor,
                401,
                "A token of a peer of this swarm is needed.",
                keep,
            );
        }
        let Some(data) = value.get("data").filter(|d| **d != Value::Null) else {
            return ctx.respond_error(token, minor, 400, "The body needs a data field.", keep);
        };
        let targets: Vec<Token> = match value.get("cid") {
            Some(Value::String(cid)) => match swarm.peers.iter().find(|p| &p.cid == cid) {
                Some(p) => vec![p.conn],
                None => {
                    return ctx.respond_error(
                        token,
                        minor,
                        404,
                        "No peer with that cid in this swarm.",
                        keep,
                    )
                }
            },
            Some(Value::Null) | None => swarm.peers.iter().map(|p| p.conn).collect(),
            Some(_) => return ctx.respond_error(token, minor, 400, "cid must be a string.", keep),
        };
        let encoded = event_json("signal", &data.to_json());
        let mut delivered = 0;
        for t in targets {
            if self.send(ctx, t, &encoded) {
                delivered += 1;
            }
        }
        ctx.metrics.signals_sent += 1;
        let text = format!("delivered to {delivered} peer(s)\n");
        let mut out = Vec::with_capacity(256);
        response::Short {
            minor,
            status: 200,
            content_type: "text/plain; charset=utf-8",
            extra: "",
            body: text.as_bytes(),
            keep_alive: keep,
            head_only: false,
        }
        .write(&mut out);
        ctx.respond(token, &out, keep);
    }
}

/// The request's media type, lowercased, without parameters.
pub(crate) fn media_type(head: &Head<'_>) -> String {
    let ct = head.content_type().unwrap_or(b"");
    String::from_utf8_lossy(ct)
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}
