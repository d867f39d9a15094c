//! SockJS (spec §5): every transport against the reference services,
//! heartbeats and the disconnect delay with short values, and bridging.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::{http::*, net::*, relay::*, ws::*, DEADLINE};
use weir::websocket::codec::OpCode;

fn post(addr: SocketAddr, path: &str, ctype: &str, body: &str) -> Response {
    exchange(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn xhr(addr: SocketAddr, base: &str, session: &str) -> String {
    let r = post(addr, &format!("{base}/000/{session}/xhr"), "text/plain", "");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/javascript; charset=UTF-8")
    );
    r.text()
}

fn xhr_send(addr: SocketAddr, base: &str, session: &str, body: &str) -> u16 {
    post(
        addr,
        &format!("{base}/000/{session}/xhr_send"),
        "text/plain",
        body,
    )
    .status
}

/// Open a streaming transport on a raw socket; returns it past the head.
fn stream(addr: SocketAddr, method: &str, path: &str) -> TcpStream {
    let mut s = connect(addr);
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let head = String::from_utf8(read_until(&mut s, b"\r\n\r\n")).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

#[test]
fn greeting_info_and_iframe() {
    let relay = Relay::start();
    let g = get(relay.addr, "/sockjs/echo");
    assert_eq!((g.status, g.text().as_str()), (200, "Welcome to SockJS!\n"));
    let info = get(relay.addr, "/sockjs/echo/info");
    assert_eq!(info.status, 200);
    assert!(
        info.text().contains("\"websocket\":true"),
        "{}",
        info.text()
    );
    assert!(info.text().contains("\"cookie_needed\":false"));
    assert!(get(relay.addr, "/sockjs/disabled_websocket_echo/info")
        .text()
        .contains("\"websocket\":false"));
    assert!(get(relay.addr, "/sockjs/cookie_needed_echo/info")
        .text()
        .contains("\"cookie_needed\":true"));
    let page = get(relay.addr, "/sockjs/echo/iframe.html");
    assert_eq!(page.status, 200);
    let etag = page.header("etag").unwrap().to_string();
    let again = exchange(
        relay.addr,
        format!("GET /sockjs/echo/iframe.html HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(get(relay.addr, "/sockjs/echo/nope").status, 404);
    relay.assert_idle();
}

#[test]
fn xhr_polling_echo_and_2010() {
    let relay = Relay::start();
    let b = "/sockjs/echo";
    assert_eq!(xhr(relay.addr, b, "s1"), "o\n");
    assert_eq!(xhr_send(relay.addr, b, "s1", r#"["a","b\u2028"]"#), 204);
    assert_eq!(xhr(relay.addr, b, "s1"), "a[\"a\",\"b\\u2028\"]\n");
    // A poll waits; a second concurrent poll is refused with 2010.
    let mut waiting = connect(relay.addr);
    write!(
        waiting,
        "POST {b}/000/s1/xhr HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    relay.wait_metric("weir_connections", 1.0);
    assert_eq!(
        xhr(relay.addr, b, "s1"),
        "c[2010,\"Another connection still open\"]\n"
    );
    assert_eq!(xhr_send(relay.addr, b, "s1", r#"["late"]"#), 204);
    let r = parse_response(&read_to_end(&mut waiting));
    assert_eq!(r.text(), "a[\"late\"]\n");
    // Errors of the send path.
    assert_eq!(xhr_send(relay.addr, b, "unknown", r#"["x"]"#), 404);
    let empty = post(
        relay.addr,
        &format!("{b}/000/s1/xhr_send"),
        "text/plain",
        "",
    );
    assert_eq!(empty.status, 500);
    assert!(empty.text().contains("Payload expected."));
    let broken = post(
        relay.addr,
        &format!("{b}/000/s1/xhr_send"),
        "text/plain",
        "[\"x",
    );
    assert!(broken.text().contains("Broken JSON encoding."));
    relay.wait_metric("weir_connections", 0.0);
}

#[test]
fn xhr_streaming_eventsource_htmlfile_echo() {
    let relay = Relay::start();
    let b = "/sockjs/echo";
    // xhr_streaming: a 2 KiB prelude of h, then o, then messages.
    let mut s = stream(relay.addr, "POST", &format!("{b}/000/st/xhr_streaming"));
    let got = read_until(&mut s, b"o\n");
    assert!(got.windows(2048).any(|w| w.iter().all(|&c| c == b'h')));
    assert_eq!(xhr_send(relay.addr, b, "st", r#"["x"]"#), 204);
    read_until(&mut s, b"a[\"x\"]\n");
    drop(s);
    // eventsource.
    let mut e = stream(relay.addr, "GET", &format!("{b}/000/ev/eventsource"));
    read_until(&mut e, b"data: o\r\n\r\n");
    assert_eq!(xhr_send(relay.addr, b, "ev", r#"["y"]"#), 204);
    read_until(&mut e, b"data: a[\"y\"]\r\n\r\n");
    drop(e);
    // htmlfile with its callback.
    let mut h = stream(relay.addr, "GET", &format!("{b}/000/hf/htmlfile?c=cb"));
    read_until(&mut h, b"p(\"o\");");
    assert_eq!(xhr_send(relay.addr, b, "hf", r#"["z"]"#), 204);
    read_until(&mut h, b"a[\\\"z\\\"]");
    drop(h);
    let missing = get(relay.addr, &format!("{b}/000/hf2/htmlfile"));
    assert_eq!(missing.status, 500);
    assert!(missing.text().contains("\"callback\" parameter required"));
    relay.wait_metric("weir_connections", 0.0);
}

#[test]
fn jsonp_polling_and_send() {
    let relay = Relay::start();
    let b = "/sockjs/echo";
    assert_eq!(
        get(relay.addr, &format!("{b}/000/jp/jsonp?c=cb")).text(),
        "/**/cb(\"o\");\r\n"
    );
    let r = post(
        relay.addr,
        &format!("{b}/000/jp/jsonp_send"),
        "application/x-www-form-urlencoded",
        "d=%5B%22hi%22%5D",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert_eq!(
        get(relay.addr, &format!("{b}/000/jp/jsonp?c=cb")).text(),
        "/**/cb(\"a[\\\"hi\\\"]\");\r\n"
    );
    relay.wait_metric("weir_connections", 0.0);
}

#[test]
fn websocket_transport_echo_and_close_service() {
    let relay = Relay::start();
    let mut s = ws_connect(relay.addr, "/sockjs/echo/000/w1/websocket");
    assert_eq!(ws_recv(&mut s).unwrap().payload, b"o");
    ws_send(&mut s, true, OpCode::Text, br#"["hi","there"]"#);
    assert_eq!(ws_recv(&mut s).unwrap().payload, br#"a["hi","there"]"#);
    ws_send(&mut s, true, OpCode::Text, br#""single""#);
    assert_eq!(ws_recv(&mut s).unwrap().payload, br#"a["single"]"#);
    // Broken framing closes the socket.
    ws_send(&mut s, true, OpCode::Text, b"[not json");
    let (code, _) = ws_close_of(&ws_recv(&mut s).unwrap());
    assert_eq!(code, 3000);
    drop(s);
    // The close service: open, then c[3000,"Go away!"], then a close.
    let mut c = ws_connect(relay.addr, "/sockjs/close/000/w2/websocket");
    assert_eq!(ws_recv(&mut c).unwrap().payload, b"o");
    assert_eq!(ws_recv(&mut c).unwrap().payload, br#"c[3000,"Go away!"]"#);
    assert_eq!(ws_recv(&mut c).unwrap().opcode, OpCode::Close);
    drop(c);
    // xhr on the close service.
    assert_eq!(xhr(relay.addr, "/sockjs/close", "x1"), "o\n");
    assert_eq!(
        xhr(relay.addr, "/sockjs/close", "x1"),
        "c[3000,\"Go away!\"]\n"
    );
    // Raw websocket on the close service closes with 3000.
    let mut r = ws_connect(relay.addr, "/sockjs/close/websocket");
    assert_eq!(ws_close_of(&ws_recv(&mut r).unwrap()).0, 3000);
    drop(r);
    // WebSockets are refused on the disabled service.
    let (_d, status) = ws_try_connect(
        relay.addr,
        "/sockjs/disabled_websocket_echo/000/w3/websocket",
    );
    assert_eq!(status, 404);
    relay.wait_metric("weir_connections", 0.0);
}

#[test]
fn cookie_needed_sets_jsessionid() {
    let relay = Relay::start();
    let r = post(
        relay.addr,
        "/sockjs/cookie_needed_echo/000/c1/xhr",
        "text/plain",
        "",
    );
    assert_eq!(r.header("set-cookie"), Some("JSESSIONID=dummy; path=/"));
    let r = exchange(
        relay.addr,
        b"POST /sockjs/cookie_needed_echo/000/c2/xhr HTTP/1.1\r\nHost: t\r\nCookie: JSESSIONID=abc\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.header("set-cookie"), Some("JSESSIONID=abc; path=/"));
    relay.wait_metric("weir_connections", 0.0);
}

#[test]
fn heartbeat_and_disconnect_delay_with_short_values() {
    let relay = Relay::with(|c| {
        c.heartbeat = Duration::from_millis(200);
        c.sockjs_disconnect_delay = Duration::from_millis(300);
    });
    let b = "/sockjs/room";
    let mut s = stream(relay.addr, "POST", &format!("{b}/000/hb/xhr_streaming"));
    read_until(&mut s, b"o\n");
    read_until(&mut s, b"h\n");
    read_until(&mut s, b"h\n");
    drop(s);
    // With no receiver the session expires after the delay.
    assert_eq!(xhr(relay.addr, b, "dd"), "o\n");
    relay.wait_metric("weir_sockjs_sessions", 0.0);
    assert_eq!(xhr_send(relay.addr, b, "dd", r#"["x"]"#), 404);
    // A polling request with nothing to say answers h at the heartbeat.
    assert_eq!(xhr(relay.addr, b, "pp"), "o\n");
    assert_eq!(xhr(relay.addr, b, "pp"), "h\n");
    relay.wait_metric("weir_connections", 0.0);
}

#[test]
fn echo_streaming_responses_end_at_4096_bytes() {
    let relay = Relay::start();
    let b = "/sockjs/echo";
    let mut s = stream(relay.addr, "POST", &format!("{b}/000/lim/xhr_streaming"));
    read_until(&mut s, b"o\n");
    let msg = "x".repeat(128);
    for _ in 0..40 {
        assert_eq!(xhr_send(relay.addr, b, "lim", &format!("[\"{msg}\"]")), 204);
    }
    // The response ends (the client would reopen); it never sent 40 frames.
    let rest = read_to_end(&mut s);
    let frames = rest.windows(3).filter(|w| w == b"a[\"").count();
    assert!(frames > 0 && frames < 40, "{frames} frames");
    relay.wait_metric("weir_connections", 0.0);
}

#[test]
fn sessions_on_one_channel_are_bridged() {
    let relay = Relay::start();
    let b = "/sockjs/chat";
    assert_eq!(xhr(relay.addr, b, "alice"), "o\n");
    let mut bob = ws_connect(relay.addr, &format!("{b}/000/bob/websocket"));
    assert_eq!(ws_recv(&mut bob).unwrap().payload, b"o");
    let mut raw = ws_connect(relay.addr, &format!("{b}/websocket"));
    relay.wait_metric("weir_sockjs_sessions", 2.0);
    assert_eq!(xhr_send(relay.addr, b, "alice", r#"["from alice"]"#), 204);
    assert_eq!(ws_recv(&mut bob).unwrap().payload, br#"a["from alice"]"#);
    assert_eq!(ws_recv(&mut raw).unwrap().payload, b"from alice");
    ws_send(&mut raw, true, OpCode::Text, b"from raw");
    assert_eq!(ws_recv(&mut bob).unwrap().payload, br#"a["from raw"]"#);
    assert_eq!(xhr(relay.addr, b, "alice"), "a[\"from raw\"]\n");
    drop((bob, raw));
    relay.wait_metric("weir_connections", 0.0);
}

/// Issue 10 item 6, the SockJS protocol's `test_reuseSessionId`: two
/// websocket-transport sessions may share one session id at the same time
/// (they are not in the index that polling transports share); each gets
/// its own `o` and its own echoes, and the id can be used again after.
#[test]
fn two_websocket_sessions_may_share_a_session_id() {
    let relay = Relay::start();
    let path = "/sockjs/echo/000/same/websocket";
    let mut one = ws_connect(relay.addr, path);
    assert_eq!(ws_recv(&mut one).unwrap().payload, b"o");
    let mut two = ws_connect(relay.addr, path);
    assert_eq!(ws_recv(&mut two).unwrap().payload, b"o");
    relay.wait_metric("weir_sockjs_sessions", 2.0);
    ws_send(&mut one, true, OpCode::Text, br#"["a"]"#);
    assert_eq!(ws_recv(&mut one).unwrap().payload, br#"a["a"]"#);
    ws_send(&mut two, true, OpCode::Text, br#"["b"]"#);
    assert_eq!(ws_recv(&mut two).unwrap().payload, br#"a["b"]"#);
    for s in [&mut one, &mut two] {
        ws_send(s, true, OpCode::Close, b"\x03\xe8");
        assert_eq!(ws_recv(s).unwrap().opcode, OpCode::Close);
        ws_expect_clean_end(s);
    }
    relay.wait_metric("weir_sockjs_sessions", 0.0);
    let mut again = ws_connect(relay.addr, path);
    assert_eq!(ws_recv(&mut again).unwrap().payload, b"o");
    ws_send(&mut again, true, OpCode::Text, br#"["c"]"#);
    assert_eq!(ws_recv(&mut again).unwrap().payload, br#"a["c"]"#);
    drop(again);
    relay.wait_metric("weir_sockjs_sessions", 0.0);
    relay.assert_idle();
}

/// A hixie-76 handshake (`Sec-WebSocket-Key1`/`Key2`) on the websocket
/// transport, the HAProxy way: the `101` head comes before key3 is sent,
/// the 16-byte answer after; then hixie-76 framing (`0x00 text 0xFF`) and
/// its close (`0xFF 0x00`), answered and ended cleanly.
#[test]
fn hixie76_on_the_websocket_transport_head_before_key3() {
    let relay = Relay::start();
    let path = "/sockjs/echo/000/hx/websocket";
    let (mut s, head) = hixie_connect(relay.addr, path, false);
    let r = parse_response(head.as_bytes());
    assert_eq!(r.status, 101, "{head}");
    assert_eq!(
        r.header("upgrade").map(str::to_lowercase).as_deref(),
        Some("websocket")
    );
    assert_eq!(
        r.header("connection").map(str::to_lowercase).as_deref(),
        Some("upgrade")
    );
    let location = format!("ws://{}{path}", relay.addr);
    assert_eq!(r.header("sec-websocket-location"), Some(location.as_str()));
    let origin = format!("http://{}", relay.addr);
    assert_eq!(r.header("sec-websocket-origin"), Some(origin.as_str()));
    assert_eq!(r.header("content-length"), None);
    // Nothing more until key3 is there (the answer needs it).
    assert_no_response(&mut s, Duration::from_millis(100));
    s.write_all(HIXIE_KEY3).unwrap();
    assert_eq!(read_exact(&mut s, 16), HIXIE_ANSWER);
    assert_eq!(hixie_recv(&mut s).unwrap(), b"o");
    hixie_send(&mut s, b"");
    hixie_send(&mut s, br#"["a","\u00e9"]"#);
    assert_eq!(hixie_recv(&mut s).unwrap(), "a[\"a\",\"é\"]".as_bytes());
    // The client closes: weir answers with the close frame and ends.
    s.write_all(&[0xff, 0x00]).unwrap();
    assert_eq!(hixie_recv(&mut s), None);
    ws_expect_clean_end(&mut s);
    relay.wait_metric("weir_sockjs_sessions", 0.0);
    relay.assert_idle();
}

/// hixie-76 with key3 sent right behind the head (as browsers did), on
/// the close service: `o`, `c[3000,"Go away!"]`, then weir's close frame,
/// and weir waits for the client's close before it ends TCP.
#[test]
fn hixie76_with_key3_in_the_head_and_a_server_close() {
    let relay = Relay::start();
    let (mut s, head) = hixie_connect(relay.addr, "/sockjs/close/000/hx2/websocket", true);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(read_exact(&mut s, 16), HIXIE_ANSWER);
    assert_eq!(hixie_recv(&mut s).unwrap(), b"o");
    assert_eq!(hixie_recv(&mut s).unwrap(), br#"c[3000,"Go away!"]"#);
    assert_eq!(hixie_recv(&mut s), None);
    assert_no_response(&mut s, Duration::from_millis(200));
    s.write_all(&[0xff, 0x00]).unwrap();
    ws_expect_clean_end(&mut s);
    relay.assert_idle();
}

/// hixie-76 on the raw endpoints: `/sockjs/echo/websocket` echoes text
/// frames; a raw member of a channel is bridged with an RFC 6455 member.
/// Bad keys are refused with `400`.
#[test]
fn hixie76_on_the_raw_websocket_endpoints() {
    let relay = Relay::start();
    let (mut e, _) = hixie_connect(relay.addr, "/sockjs/echo/websocket", true);
    assert_eq!(read_exact(&mut e, 16), HIXIE_ANSWER);
    hixie_send(&mut e, "héllo".as_bytes());
    assert_eq!(hixie_recv(&mut e).unwrap(), "héllo".as_bytes());
    e.write_all(&[0xff, 0x00]).unwrap();
    assert_eq!(hixie_recv(&mut e), None);
    ws_expect_clean_end(&mut e);

    let (mut old, _) = hixie_connect(relay.addr, "/sockjs/mixed/websocket", false);
    old.write_all(HIXIE_KEY3).unwrap();
    assert_eq!(read_exact(&mut old, 16), HIXIE_ANSWER);
    let mut new = ws_connect(relay.addr, "/sockjs/mixed/websocket");
    relay.wait_metric("weir_websockets", 2.0);
    hixie_send(&mut old, b"from hixie");
    assert_eq!(ws_recv(&mut new).unwrap().payload, b"from hixie");
    ws_send(&mut new, true, OpCode::Text, b"from rfc 6455");
    assert_eq!(hixie_recv(&mut old).unwrap(), b"from rfc 6455");
    drop((old, new));

    for key1 in ["12345", "1 2 3 ", "99999999999 "] {
        let r = exchange(
            relay.addr,
            format!(
                "GET /sockjs/echo/websocket HTTP/1.1\r\nHost: t\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key1: {key1}\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 400, "{key1:?}");
    }
    relay.assert_idle();
}

/// A hixie-76 client that never sends key3 does not hold its connection:
/// it gets the time a request head gets, then the connection ends.
#[test]
fn hixie76_without_key3_is_closed_at_the_head_timeout() {
    let relay = Relay::with(|c| c.head_timeout = Duration::from_millis(500));
    let (mut s, head) = hixie_connect(relay.addr, "/sockjs/echo/000/nokey/websocket", false);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let (rest, _) = read_until_closed(&mut s, DEADLINE);
    assert!(rest.is_empty(), "no answer without key3: {rest:x?}");
    relay.wait_metric("weir_sockjs_sessions", 0.0);
    relay.assert_idle();
}
