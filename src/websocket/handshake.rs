//! The opening handshakes: the checks on an upgrade request and the `101`
//! answers, for RFC 6455 and for hixie-76 (which the SockJS endpoints still
//! speak). A refused upgrade is an HTTP answer and the connection closes;
//! an accepted one has its `101` head queued on the connection, which the
//! caller then makes a WebSocket ([`super::attach`]).

use mio::Token;

use super::codec;
use super::conn::Handshake;
use super::hixie;
use crate::http::{response, Head};
use crate::net::Ctx;

/// The checks on a pipe upgrade (`GET /<path>`): HTTP/1.1, `Connection:
/// Upgrade`, version 13, then the `101`. Returns whether the connection
/// may become a WebSocket; if not, it has its answer.
pub fn check_and_accept(ctx: &mut Ctx, t: Token, head: &Head<'_>) -> bool {
    let minor = head.minor;
    if minor < 1 || !head.connection_upgrade {
        ctx.respond_error(
            t,
            minor,
            400,
            "A WebSocket upgrade needs HTTP/1.1 and Connection: Upgrade.",
            false,
        );
        return false;
    }
    if head.header_str("sec-websocket-version") != Some("13") {
        let mut out = Vec::new();
        response::error(
            &mut out,
            minor,
            426,
            "Only WebSocket version 13 is supported.",
            "Sec-WebSocket-Version: 13\r\n",
            false,
        );
        ctx.respond(t, &out, false);
        return false;
    }
    accept(ctx, t, head)
}

/// Queue the RFC 6455 `101` answer (or answer `400` for a bad key).
/// Returns whether the connection may now become a WebSocket.
pub fn accept(ctx: &mut Ctx, t: Token, head: &Head<'_>) -> bool {
    let Some(key) = head
        .header_str("sec-websocket-key")
        .filter(|k| codec::valid_key(k))
    else {
        let msg = "Missing or invalid Sec-WebSocket-Key.";
        ctx.respond_error(t, head.minor, 400, msg, false);
        return false;
    };
    let Some(conn) = ctx.live_mut(t) else {
        return false;
    };
    let out = conn.out.buf();
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    out.extend_from_slice(codec::accept_key(key).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    true
}

/// Answer a hixie-76 upgrade (`Sec-WebSocket-Key1`/`Key2`, no version):
/// the `101` head now, the challenge answer once key3 is read (a proxy
/// that does not know hixie-76 sends key3 only after it sees our head).
/// `400` for keys that do not give numbers or a missing `Host`.
pub fn accept_hixie(ctx: &mut Ctx, t: Token, head: &Head<'_>) -> Option<Handshake> {
    let minor = head.minor;
    let n1 = head
        .header_str("sec-websocket-key1")
        .and_then(hixie::key_number);
    let n2 = head
        .header_str("sec-websocket-key2")
        .and_then(hixie::key_number);
    let host = head.host().filter(|h| !h.is_empty());
    let (Some(n1), Some(n2), Some(host)) = (n1, n2, host) else {
        let msg = "Invalid hixie-76 handshake: Sec-WebSocket-Key1/Key2 and Host are needed.";
        ctx.respond_error(t, minor, 400, msg, false);
        return None;
    };
    // The location only echoes what this client asked for, so a proxy's
    // word is taken even without --trust-proxy.
    let forwarded_tls = head
        .header_str("x-forwarded-proto")
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let scheme = if ctx.is_tls(t) || forwarded_tls {
        "wss"
    } else {
        "ws"
    };
    let query = head.query.map(|q| format!("?{q}")).unwrap_or_default();
    let mut h = String::with_capacity(256);
    h.push_str("HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n");
    if let Some(origin) = head.header_str("origin") {
        h.push_str(&format!("Sec-WebSocket-Origin: {origin}\r\n"));
    }
    h.push_str(&format!(
        "Sec-WebSocket-Location: {scheme}://{host}{}{query}\r\n\r\n",
        head.path
    ));
    ctx.live_mut(t)?.out.push(h.as_bytes());
    Some(Handshake::Hixie76 { n1, n2 })
}
