//! What the integration tests share, one module per kind of help.
//!
//! Every read here has a deadline; no test synchronises on a sleep. A test
//! that waits for the relay to reach a state polls `/metrics` until the
//! state shows or the deadline passes.

use std::time::Duration;

pub mod curl;
pub mod fs;
pub mod http;
pub mod net;
pub mod payload;
pub mod pipe;
pub mod relay;
pub mod seed;
pub mod shell;
pub mod sse;
pub mod ws;

/// The default deadline for any one expectation.
pub const DEADLINE: Duration = Duration::from_secs(20);
