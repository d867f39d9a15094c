//! weir: an ephemeral relay.
//!
//! Bytes flow through weir from one HTTP client to another and are never
//! stored: `curl -T file http://relay/x` on one machine, `curl
//! http://relay/x > file` on another. One thread runs one `mio` event loop;
//! memory is bounded by configuration, not by what clients send.
//!
//! # The flow
//!
//! 1. [`Server`] accepts a connection and reads its request head into a
//!    small buffer, under a head timer.
//! 2. The head is parsed ([`http::parse_head`]) and routed: reserved paths
//!    are answered at once; `PUT`/`POST /path` is a sender, `GET /path` a
//!    receiver.
//! 3. Whoever arrives first is parked under the wait TTL. A parked sender's
//!    body is not read: TCP flow control holds it back in the client.
//! 4. When the sender and all `?n=` receivers are there, the pipe takes one
//!    fixed ring buffer from a capped pool and the pump moves the body from
//!    the sender's socket into the ring and from the ring to every
//!    receiver's socket, pausing the sender when the ring is full and a
//!    receiver when it has nothing to write.
//! 5. At the body's end each receiver gets its terminator and the sender
//!    gets its last status line; a cut transfer never looks complete.
//!
//! The readiness rules (register once, keep edges in user space, act on
//! `event & interest`) are described in [`readiness`].

#![forbid(unsafe_code)]

mod body;
pub mod config;
pub mod conn;
mod ephemeral;
pub mod form;
pub mod hixie;
pub mod hooks;
pub mod http;
pub mod ids;
pub mod json;
pub mod metrics;
pub mod pages;
mod pipe;
pub mod readiness;
pub mod relay;
pub mod ring;
pub mod route;
pub mod server;
mod signal;
mod sjserver;
pub mod sockjs;
#[cfg(target_os = "linux")]
pub mod splice;
pub mod sse;
pub mod timer;
mod topics;
pub mod wire;
pub mod ws;
mod wsconn;

pub use config::Config;
pub use ephemeral::referer_matches;
pub use hooks::{DefaultHooks, Hooks};
pub use server::{Server, StopHandle};
