//! weir: an ephemeral relay.
//!
//! Bytes flow through weir from one HTTP client to another and are never
//! stored: `curl -T file http://relay/x` on one machine, `curl
//! http://relay/x > file` on another. One thread runs one `mio` event loop;
//! memory is bounded by configuration, not by what clients send.
//!
//! # The life of one pipe
//!
//! 1. The loop ([`reactor`]) accepts a connection, registers it once for
//!    reading and writing, and arms its head timer. Its state
//!    ([`net::State`]) is `Http(ReadingHead)`.
//! 2. [`reactor::http`] reads the head into a small buffer in 4 KiB steps
//!    (body bytes sent behind it stay in the kernel) and parses it with
//!    [`http::parse_head`]; [`reactor::route`] sends it to its family.
//!    Reserved paths (`/`, `/help`, `/metrics`, ...) are answered at once.
//! 3. `PUT`/`POST /path` is a sender, `GET /path` a receiver: the relay
//!    family ([`relay`]) turns the head into a [`relay::core::Request`] and
//!    hands it to the pairing table ([`relay::core::Table`]). Whoever
//!    arrives first is parked: the connection becomes `State::Relay`, the
//!    table keeps a few hundred bytes of its head, and a parked sender's
//!    body is not read (TCP flow control holds it in the client).
//! 4. When the sender and all `?n=` receivers are there, the pipe takes one
//!    buffer (a ring from a capped pool, or a kernel pipe for `splice(2)`)
//!    and moves to `Streaming`. The pump ([`relay::pump`]) moves the body
//!    from the sender's socket into the buffer and from the buffer to every
//!    receiver's socket, pausing the sender when the buffer is full and a
//!    receiver when it has nothing to write (R4, R5).
//! 5. When the body is read the pipe is `Finishing`; each receiver gets its
//!    terminator and the sender its last line, and the table hands the
//!    connections back to the loop, which writes what is left and closes
//!    them. A cut transfer never looks complete.
//!
//! The table and the pump are sans-io: they take `now`, an [`relay::core::Env`]
//! that lends them the connections, and return [`relay::core::Effect`]s for
//! the loop to carry out. `tests/it/sim.rs` runs this same code over simulated
//! connections.
//!
//! # The modules, by layer
//!
//! A module uses only modules of its own layer or below.
//!
//! - **Support** (no I/O, no protocol state): [`config`], [`ids`], [`json`],
//!   [`form`], [`metrics`], [`hooks`], [`budget`], [`encoding`] (hex,
//!   base64), [`auth`] (access rules, signed links).
//! - **Sans-io edges**: [`http`] (heads, answers, chunked, multipart, short
//!   bodies, what a proxy forwards), [`help`] (the help text, from a head),
//!   [`page`] (the browser page, `/noscript` and the QR encoder), [`ring`],
//!   [`timer`], [`wire`] (readiness, the stream trait),
//!   [`splice`], [`websocket::codec`], [`websocket::hixie`] and
//!   [`websocket::conn`] (what a WebSocket connection keeps),
//!   [`sockjs::protocol`] and [`sockjs::conn`], [`events::sse`], and the
//!   relay's core ([`relay::core`], [`relay::env`], [`relay::pump`]).
//!   Bytes and `now` in, results out; each parser has a fuzz target.
//! - **Connections** ([`net`]): `Conn`, its `State` (whose variants are the
//!   families), and the `Ctx` every family is handed.
//! - **Families**: [`relay`] (named pipes, ephemeral sockets), [`events`]
//!   (swarms, topics), [`websocket`] (pipes, echo), [`sockjs`]. Each owns its
//!   tables and its logic.
//! - **The loop** ([`reactor`]): poll, accept, dispatch by token to the
//!   connection's family, timers, frees at the end of a turn. It knows no
//!   protocol.

#![forbid(unsafe_code)]

pub mod auth;
pub mod budget;
pub mod config;
pub mod encoding;
pub mod events;
pub mod form;
pub mod help;
pub mod hooks;
pub mod http;
pub mod ids;
pub mod json;
pub mod metrics;
pub mod net;
pub mod page;
pub mod reactor;
pub mod relay;
pub mod ring;
pub mod sockjs;
#[cfg(target_os = "linux")]
pub mod splice;
pub mod timer;
pub mod websocket;
pub mod wire;

pub use config::Config;
pub use hooks::{DefaultHooks, Hooks};
pub use reactor::{Server, StopHandle};
pub use relay::ephemeral::referer_matches;
