//! SockJS's request-side parsers on any input: the router, send bodies of
//! both transports and WebSocket messages never panic, and accepted
//! messages quote back into a frame that is valid JSON after its `a`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::http::Method;
use weir::sockjs::protocol::{self as sockjs, Transport};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (path, query) = text.split_once('?').unwrap_or((&text, ""));
    for m in [Method::Get, Method::Post, Method::Options] {
        let _ = sockjs::route(path, Some(query), m);
    }
    for t in [Transport::XhrSend, Transport::JsonpSend] {
        for ct in ["text/plain", "application/x-www-form-urlencoded"] {
            if let Ok(msgs) = sockjs::parse_send(t, ct, data) {
                let frame = sockjs::messages(&msgs);
                let json = frame.strip_prefix('a').expect("a frame");
                weir::json::parse(json.as_bytes(), weir::json::Limits { max_depth: 4 })
                    .expect("messages frame is JSON");
            }
        }
    }
    let _ = sockjs::parse_ws_message(&text);
});
