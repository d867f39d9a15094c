//! Event topics (spec §4): one-way push over Server-Sent Events.
//!
//! `GET /events/<topic>` subscribes; `POST /events/<topic>` publishes its
//! body as one event to every current subscriber and answers how many it
//! reached. `?event=`, `?id=` and `?retry=` set those fields. Nothing is
//! stored: a subscriber gets what is published while it is connected.

use std::collections::HashMap;

use mio::Token;

use super::sse::{self, Event, Subscription};
use super::Events;
use crate::http::{percent_decode, response, Head};
use crate::net::Ctx;

/// Subscribers by topic.
pub type Topics = HashMap<String, Vec<Token>>;

/// Longest topic name.
pub const MAX_TOPIC: usize = 200;

/// Whether `name` can be a topic: 1 to 200 characters, no `/`.
pub fn valid_topic(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_TOPIC && !name.contains('/')
}

impl Events {
    /// `GET /events/<topic>`.
    pub fn topic_subscribe(&mut self, ctx: &mut Ctx, token: Token, head: Head<'_>, topic: &str) {
        let minor = head.minor;
        if !valid_topic(topic) {
            return ctx.respond_error(
                token,
                minor,
                404,
                "A topic is /events/<name>: 1 to 200 characters, no '/'.",
                false,
            );
        }
        if !super::accepts_event_stream(&head) {
            return ctx.respond_error(
                token,
                minor,
                406,
                "Event streams need Accept: text/event-stream.",
                false,
            );
        }
        if !self.topics.contains_key(topic) && self.topics.len() >= ctx.config.max_topics {
            return ctx.respond_error(
                token,
                minor,
                503,
                "The relay has as many topics as it allows; try again later.",
                false,
            );
        }
        self.topics
            .entry(topic.to_string())
            .or_default()
            .push(token);
        self.open_stream(
            ctx,
            token,
            &head,
            200,
            Subscription::Topic {
                topic: topic.to_string(),
            },
        );
    }

    /// A subscriber's stream ended.
    pub(super) fn topic_left(&mut self, topic: &str, token: Token) {
        if let Some(subs) = self.topics.get_mut(topic) {
            subs.retain(|t| *t != token);
            if subs.is_empty() {
                self.topics.remove(topic);
            }
        }
    }

    /// `POST /events/<topic>` once its body is read.
    pub fn topic_publish(&mut self, ctx: &mut Ctx, token: Token, head: Head<'_>, body: Vec<u8>) {
        let minor = head.minor;
        let keep = head.keep_alive && !ctx.stopping;
        let topic = head.path.trim_start_matches("/events/").to_string();
        if !valid_topic(&topic) {
            return ctx.respond_error(
                token,
                minor,
                404,
                "A topic is /events/<name>: 1 to 200 characters, no '/'.",
                keep,
            );
        }
        let field = |name: &str| head.query_param(name).map(percent_decode);
        let event = field("event");
        let id = field("id");
        let (event, id) = match (event, id) {
            (Some(None), _) | (_, Some(None)) => {
                return ctx.respond_error(
                    token,
                    minor,
                    400,
                    "event and id must be valid percent-encoded UTF-8.",
                    keep,
                )
            }
            (e, i) => (e.flatten(), i.flatten()),
        };
        for (v, is_id) in [(&event, false), (&id, true)] {
            if let Some(v) = v {
                if let Err(e) = sse::check_field(v, is_id) {
                    let msg = format!("Bad field: {e}.");
                    return ctx.respond_error(token, minor, 400, &msg, keep);
                }
            }
        }
        let retry = match head.query_param("retry") {
            None => None,
            Some(r) => match r.parse::<u32>() {
                Ok(ms) => Some(ms),
                Err(_) => {
                    return ctx.respond_error(
                        token,
                        minor,
                        400,
                        "retry must be a whole number of milliseconds.",
                        keep,
                    )
                }
            },
        };
        let Ok(data) = std::str::from_utf8(&body) else {
            return ctx.respond_error(token, minor, 400, "Event data must be UTF-8 text.", keep);
        };
        let mut encoded = Vec::with_capacity(body.len() + 64);
        sse::encode(
            &Event {
                event: event.as_deref(),
                id: id.as_deref(),
                retry,
                data,
            },
            &mut encoded,
        );
        let subs = self.topics.get(&topic).cloned().unwrap_or_default();
        let mut delivered = 0;
        for t in subs {
            if self.send(ctx, t, &encoded) {
                delivered += 1;
            }
        }
        ctx.metrics.events_published += 1;
        let text = format!("{delivered}\n");
        let extra = format!(
            "X-Subscribers: {delivered}\r\nAccess-Control-Expose-Headers: X-Subscribers\r\n"
        );
        let mut out = Vec::with_capacity(256);
        response::Short {
            minor,
            status: 200,
            content_type: "text/plain; charset=utf-8",
            extra: &extra,
            body: text.as_bytes(),
            keep_alive: keep,
            head_only: false,
        }
        .write(&mut out);
        ctx.respond(token, &out, keep);
    }
}
