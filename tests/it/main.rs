//! The integration tests, one binary: each module is one family of tests
//! against a relay on 127.0.0.1 (in this process or the real `weir`
//! binary), `support` holds what they share.
//!
//! The tests of every module run in this one process, two or more at a
//! time (`--test-threads`): a test must not assume the process, a port or
//! an environment variable to itself.

mod support;

mod browser;
mod clients;
mod ephemeral;
mod exhaustion;
mod footprint;
mod hostile;
mod layers;
mod limits;
mod pipes;
mod proxy;
mod signals;
mod sim;
mod soak;
mod sockjs;
mod sse;
mod tls;
mod ws;
