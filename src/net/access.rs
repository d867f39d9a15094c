//! The access log: one line per finished request, for an operator.
//!
//! A request's [`Access`] is made when its head is parsed and written out
//! when the request is over: its answer written on a keep-alive
//! connection, or its connection closed (a pipe's party, an event stream,
//! a WebSocket, a client that left). The line:
//!
//! ```text
//! [7] 203.0.113.9 via 127.0.0.1 PUT /mypath 200 in=1048576 out=183 0.012s
//! ```
//!
//! the connection's token; the client (with `--trust-proxy`, the address
//! the proxy forwarded, then `via` the proxy's own); the method as the
//! client spelt it; the path without its query (a query may carry a
//! secret); the status of the answer (`-` when none was written); the body
//! bytes read from the client (a pipe's upload, a posted message); the
//! bytes written to it (heads and bodies, a pipe's download included);
//! the time from the head to the end.
//!
//! Statuses below 500 are logged at `info` (a 4xx is the client's
//! mistake, worth seeing, not a fault); 5xx at `warn`. The target is
//! `weir::access`, so `RUST_LOG=warn,weir::access=info` keeps just these.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Instant;

use log::{info, warn};

use crate::http::forwarded::Forwarded;
use crate::http::Head;
use crate::wire::Meter;

/// Longest path written to the log; longer ones are cut with `...`.
const PATH_MAX: usize = 200;

/// One request, while it is answered.
#[derive(Debug)]
pub struct Access {
    /// `METHOD /path`, in one allocation (a parked party keeps it for
    /// minutes).
    request: String,
    forwarded_for: Option<String>,
    started: Instant,
    /// Body bytes read from the client.
    pub read: u64,
    /// Body bytes written to the client past its control output (a pipe's
    /// download).
    pub written: u64,
}

impl Access {
    /// A request whose head was parsed at `now`; the forwarded client
    /// counts only with `trust_proxy`.
    pub fn new(head: &Head<'_>, now: Instant, trust_proxy: bool) -> Access {
        let mut request: String = head
            .raw
            .split(|&b| b == b' ')
            .next()
            .unwrap_or(b"")
            .iter()
            .take(32)
            .map(|&b| printable(b))
            .collect();
        request.push(' ');
        push_clean_path(&mut request, head.path);
        let forwarded_for = if trust_proxy {
            Forwarded::from_head(head).client.map(str::to_string)
        } else {
            None
        };
        request.shrink_to_fit();
        Access {
            request,
            forwarded_for,
            started: now,
            read: 0,
            written: 0,
        }
    }

    /// A request whose head could not be parsed.
    pub fn unparsed(now: Instant) -> Access {
        Access {
            request: "- -".into(),
            forwarded_for: None,
            started: now,
            read: 0,
            written: 0,
        }
    }

    /// Write the line for the request, now over, on connection `token` from
    /// `peer`, whose control output wrote what `meter` says.
    pub fn log(self, token: usize, peer: SocketAddr, meter: &Meter, now: Instant) {
        let mut line = format!("[{token}] ");
        match &self.forwarded_for {
            Some(c) => {
                let _ = write!(line, "{c} via {}", peer.ip());
            }
            None => {
                let _ = write!(line, "{}", peer.ip());
            }
        }
        let _ = write!(line, " {} ", self.request);
        if meter.status == 0 {
            line.push('-');
        } else {
            let _ = write!(line, "{}", meter.status);
        }
        let took = now.saturating_duration_since(self.started);
        let _ = write!(
            line,
            " in={} out={} {:.3}s",
            self.read,
            meter.sent + self.written,
            took.as_secs_f64()
        );
        if meter.status >= 500 {
            warn!(target: "weir::access", "{line}");
        } else {
            info!(target: "weir::access", "{line}");
        }
    }
}

/// A byte as it may stand in a log line: visible ASCII, else `?`.
fn printable(b: u8) -> char {
    if b.is_ascii_graphic() {
        b as char
    } else {
        '?'
    }
}

/// The path for the log: no control characters or spaces (a line cannot be
/// forged), at most [`PATH_MAX`] characters.
fn push_clean_path(out: &mut String, p: &str) {
    out.extend(p.chars().take(PATH_MAX).map(|c| {
        if c.is_control() || c.is_whitespace() {
            '?'
        } else {
            c
        }
    }));
    if p.chars().nth(PATH_MAX).is_some() {
        out.push_str("...");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_forge_a_line() {
        let clean = |p: &str| {
            let mut s = String::new();
            push_clean_path(&mut s, p);
            s
        };
        assert_eq!(clean("/a\nb c"), "/a?b?c");
        let long = "/".repeat(300);
        assert_eq!(clean(&long).len(), PATH_MAX + 3);
        assert_eq!(printable(b'\r'), '?');
    }
}
