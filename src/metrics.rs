//! Counters and the Prometheus text exposition of `/metrics`.
//!
//! Gauges are not stored: they are counted from the live tables when
//! scraped, so they cannot drift from the state they describe. Counters are
//! bumped by the code that makes the event happen.

use std::fmt::Write;

/// Monotonic counters.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    /// Connections accepted.
    pub accepted: u64,
    /// Request heads parsed.
    pub requests: u64,
    /// Heads refused as malformed or over a limit, and head timeouts.
    pub bad_requests: u64,
    /// Body bytes taken from senders and handed to receivers.
    pub bytes_relayed: u64,
    /// Transfers whose every byte reached every receiver.
    pub transfers_complete: u64,
    /// Transfers cut: a party left, a limit was passed, or it stalled.
    pub transfers_cut: u64,
    /// Parked parties whose wait TTL expired.
    pub transfers_timeout: u64,
    /// Pipe requests refused (400, 409, 413, 503 on a pipe path).
    pub transfers_rejected: u64,
    /// Parked parties that left before their transfer started.
    pub transfers_abandoned: u64,
    /// Event streams opened (signal peers and topic subscribers).
    pub streams_opened: u64,
    /// Event streams dropped for falling behind.
    pub streams_dropped_slow: u64,
    /// `POST /signal/<id>` requests delivered.
    pub signals_sent: u64,
    /// `POST /events/<topic>` requests published.
    pub events_published: u64,
    /// Requests refused by the access rules: `401` (credentials missing
    /// or wrong) and `403` (not allowed).
    pub auth_refused: [u64; 2],
}

/// Live gauges, counted by the server when scraped.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    /// Open connections, not counting the scrape's own.
    pub connections: usize,
    /// Pipes waiting for a party.
    pub pipes_waiting: usize,
    /// Pipes streaming.
    pub pipes_streaming: usize,
    /// Ring buffers taken from the pool.
    pub rings_in_use: usize,
    /// Bytes of ring buffer per streaming pipe.
    pub ring_bytes: usize,
    /// Open event streams.
    pub event_streams: usize,
    /// Signal swarms.
    pub swarms: usize,
    /// Event topics with subscribers.
    pub topics: usize,
    /// Open WebSockets (pipes, echo, SockJS).
    pub websockets: usize,
    /// WebSocket pipes waiting for a peer.
    pub ws_waiting: usize,
    /// WebSocket pipes bridged.
    pub ws_bridged: usize,
    /// WebSocket input buffers taken from their pool.
    pub ws_inbufs: usize,
    /// WebSocket pipe output rings taken from their pool.
    pub ws_rings: usize,
    /// SockJS sessions.
    pub sockjs_sessions: usize,
    /// SockJS channels with members.
    pub sockjs_channels: usize,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Render the exposition text.
pub fn render(m: &Metrics, g: &Gauges) -> String {
    let mut o = String::with_capacity(2048);
    family(
        &mut o,
        "weir_connections",
        "gauge",
        "Open client connections (not counting this scrape).",
    );
    let _ = writeln!(o, "weir_connections {}", g.connections);
    family(&mut o, "weir_pipes", "gauge", "Pipes by state.");
    let _ = writeln!(o, "weir_pipes{{state=\"waiting\"}} {}", g.pipes_waiting);
    let _ = writeln!(o, "weir_pipes{{state=\"streaming\"}} {}", g.pipes_streaming);
    family(&mut o, "weir_ring_buffers", "gauge", "Ring buffers in use.");
    let _ = writeln!(o, "weir_ring_buffers {}", g.rings_in_use);
    family(
        &mut o,
        "weir_ring_buffer_bytes",
        "gauge",
        "Size of each ring buffer.",
    );
    let _ = writeln!(o, "weir_ring_buffer_bytes {}", g.ring_bytes);
    family(
        &mut o,
        "weir_bytes_relayed_total",
        "counter",
        "Body bytes taken from senders.",
    );
    let _ = writeln!(o, "weir_bytes_relayed_total {}", m.bytes_relayed);
    family(
        &mut o,
        "weir_transfers_total",
        "counter",
        "Finished transfers by outcome.",
    );
    for (k, v) in [
        ("complete", m.transfers_complete),
        ("cut", m.transfers_cut),
        ("timeout", m.transfers_timeout),
        ("rejected", m.transfers_rejected),
        ("abandoned", m.transfers_abandoned),
    ] {
        let _ = writeln!(o, "weir_transfers_total{{outcome=\"{k}\"}} {v}");
    }
    family(
        &mut o,
        "weir_event_streams",
        "gauge",
        "Open Server-Sent Events streams.",
    );
    let _ = writeln!(o, "weir_event_streams {}", g.event_streams);
    family(&mut o, "weir_swarms", "gauge", "Signal swarms.");
    let _ = writeln!(o, "weir_swarms {}", g.swarms);
    family(
        &mut o,
        "weir_topics",
        "gauge",
        "Event topics with subscribers.",
    );
    let _ = writeln!(o, "weir_topics {}", g.topics);
    family(
        &mut o,
        "weir_event_streams_total",
        "counter",
        "Event streams opened, and dropped for falling behind.",
    );
    let _ = writeln!(
        o,
        "weir_event_streams_total{{event=\"opened\"}} {}",
        m.streams_opened
    );
    let _ = writeln!(
        o,
        "weir_event_streams_total{{event=\"dropped_slow\"}} {}",
        m.streams_dropped_slow
    );
    family(&mut o, "weir_websockets", "gauge", "Open WebSockets.");
    let _ = writeln!(o, "weir_websockets {}", g.websockets);
    family(
        &mut o,
        "weir_ws_pipes",
        "gauge",
        "WebSocket pipes by state.",
    );
    let _ = writeln!(o, "weir_ws_pipes{{state=\"waiting\"}} {}", g.ws_waiting);
    let _ = writeln!(o, "weir_ws_pipes{{state=\"bridged\"}} {}", g.ws_bridged);
    family(
        &mut o,
        "weir_ws_buffers",
        "gauge",
        "WebSocket buffers in use: input buffers, and pipe output rings.",
    );
    let _ = writeln!(o, "weir_ws_buffers{{kind=\"input\"}} {}", g.ws_inbufs);
    let _ = writeln!(o, "weir_ws_buffers{{kind=\"ring\"}} {}", g.ws_rings);
    family(&mut o, "weir_sockjs_sessions", "gauge", "SockJS sessions.");
    let _ = writeln!(o, "weir_sockjs_sessions {}", g.sockjs_sessions);
    family(
        &mut o,
        "weir_sockjs_channels",
        "gauge",
        "SockJS channels with members.",
    );
    let _ = writeln!(o, "weir_sockjs_channels {}", g.sockjs_channels);
    family(
        &mut o,
        "weir_signals_total",
        "counter",
        "Signals posted to swarms.",
    );
    let _ = writeln!(o, "weir_signals_total {}", m.signals_sent);
    family(
        &mut o,
        "weir_events_published_total",
        "counter",
        "Events published to topics.",
    );
    let _ = writeln!(o, "weir_events_published_total {}", m.events_published);
    family(
        &mut o,
        "weir_connections_accepted_total",
        "counter",
        "Connections accepted.",
    );
    let _ = writeln!(o, "weir_connections_accepted_total {}", m.accepted);
    family(
        &mut o,
        "weir_requests_total",
        "counter",
        "Request heads parsed.",
    );
    let _ = writeln!(o, "weir_requests_total {}", m.requests);
    family(
        &mut o,
        "weir_bad_requests_total",
        "counter",
        "Request heads refused or timed out.",
    );
    let _ = writeln!(o, "weir_bad_requests_total {}", m.bad_requests);
    family(
        &mut o,
        "weir_auth_refused_total",
        "counter",
        "Requests refused by the access rules (--auth), by status.",
    );
    for (status, v) in [(401, m.auth_refused[0]), (403, m.auth_refused[1])] {
        let _ = writeln!(o, "weir_auth_refused_total{{status=\"{status}\"}} {v}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_spec_names() {
        let m = Metrics {
            bytes_relayed: 42,
            transfers_cut: 2,
            ..Metrics::default()
        };
        let g = Gauges {
            connections: 3,
            pipes_waiting: 1,
            ..Gauges::default()
        };
        let text = render(&m, &g);
        for line in [
            "weir_connections 3",
            "weir_pipes{state=\"waiting\"} 1",
            "weir_pipes{state=\"streaming\"} 0",
            "weir_bytes_relayed_total 42",
            "weir_transfers_total{outcome=\"cut\"} 2",
            "weir_transfers_total{outcome=\"complete\"} 0",
            "# TYPE weir_transfers_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}");
        }
    }
}
