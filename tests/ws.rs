//! WebSocket pipes and the echo endpoint (spec §5), with real sockets.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use weir::ws::OpCode;

#[test]
fn a_pipe_bridges_either_order_both_ways() {
    let relay = Relay::start();
    for (first_is_a, path) in [(true, "/room1"), (false, "/room2")] {
        let (mut a, mut b) = if first_is_a {
            let a = ws_connect(relay.addr, path);
            relay.wait_metric("weir_connections", 1.0);
            (a, ws_connect(relay.addr, path))
        } else {
            let b = ws_connect(relay.addr, path);
            relay.wait_metric("weir_connections", 1.0);
            (ws_connect(relay.addr, path), b)
        };
        ws_send(&mut a, true, OpCode::Text, "hello, b".as_bytes());
        let f = ws_recv(&mut b).unwrap();
        assert_eq!(
            (f.fin, f.opcode, f.payload.as_slice()),
            (true, OpCode::Text, "hello, b".as_bytes())
        );
        ws_send(&mut b, true, OpCode::Binary, &[0, 1, 2, 255]);
        let f = ws_recv(&mut a).unwrap();
        assert_eq!(
            (f.opcode, f.payload.as_slice()),
            (OpCode::Binary, &[0u8, 1, 2, 255][..])
        );
        // Fragments pass as fragments, with a ping in between answered here.
        ws_send(&mut a, false, OpCode::Text, b"frag");
        ws_send(&mut a, true, OpCode::Ping, b"p");
        ws_send(&mut a, true, OpCode::Continuation, b"ment");
        let pong = ws_recv(&mut a).unwrap();
        assert_eq!(
            (pong.opcode, pong.payload.as_slice()),
            (OpCode::Pong, &b"p"[..])
        );
        let f1 = ws_recv(&mut b).unwrap();
        let f2 = ws_recv(&mut b).unwrap();
        assert_eq!(
            (f1.fin, f1.opcode, f1.payload.as_slice()),
            (false, OpCode::Text, &b"frag"[..])
        );
        assert_eq!(
            (f2.fin, f2.opcode, f2.payload.as_slice()),
            (true, OpCode::Continuation, &b"ment"[..])
        );
        let close = weir::ws::close_frame(1000, "done");
        ws_send(&mut a, true, OpCode::Close, &close[2..]);
        assert_eq!(
            ws_close_of(&ws_recv(&mut b).unwrap()),
            (1000, "done".to_string())
        );
        assert_eq!(
            ws_close_of(&ws_recv(&mut a).unwrap()),
            (1000, "done".to_string())
        );
    }
    relay.assert_idle();
}

#[test]
fn large_binary_messages_both_ways_with_hashes() {
    let relay = Relay::start();
    let mut a = ws_connect(relay.addr, "/big");
    relay.wait_metric("weir_connections", 1.0);
    let mut b = ws_connect(relay.addr, "/big");
    let pa = pattern(8 << 20, 1);
    let pb = pattern(6 << 20, 2);
    let (ha, hb) = (hash(&pa), hash(&pb));
    let mut a2 = a.try_clone().unwrap();
    let mut b2 = b.try_clone().unwrap();
    let wa = std::thread::spawn(move || ws_send(&mut a2, true, OpCode::Binary, &pa));
    let wb = std::thread::spawn(move || ws_send(&mut b2, true, OpCode::Binary, &pb));
    let got_b = ws_recv(&mut b).unwrap();
    let got_a = ws_recv(&mut a).unwrap();
    wa.join().unwrap();
    wb.join().unwrap();
    assert_eq!((got_b.payload.len(), hash(&got_b.payload)), (8 << 20, ha));
    assert_eq!((got_a.payload.len(), hash(&got_a.payload)), (6 << 20, hb));
    drop((a, b));
    relay.assert_idle();
}

#[test]
fn close_codes_are_passed_on_and_a_vanished_peer_is_1001() {
    let relay = Relay::start();
    let mut a = ws_connect(relay.addr, "/c");
    relay.wait_metric("weir_connections", 1.0);
    let mut b = ws_connect(relay.addr, "/c");
    let close = weir::ws::close_frame(4001, "custom bye");
    ws_send(&mut b, true, OpCode::Close, &close[2..]);
    assert_eq!(
        ws_close_of(&ws_recv(&mut a).unwrap()),
        (4001, "custom bye".to_string())
    );
    assert_eq!(ws_close_of(&ws_recv(&mut b).unwrap()).0, 4001);
    assert!(ws_recv(&mut a).is_none(), "closed after the close frame");
    relay.assert_idle();

    let a = ws_connect(relay.addr, "/c");
    relay.wait_metric("weir_connections", 1.0);
    let mut b = ws_connect(relay.addr, "/c");
    relay.wait_metric("weir_connections", 2.0);
    drop(a);
    let (code, reason) = ws_close_of(&ws_recv(&mut b).unwrap());
    assert_eq!(code, 1001);
    assert!(reason.contains("went away"), "{reason}");
    drop(b);
    relay.assert_idle();
}

#[test]
fn a_peer_that_stops_reading_holds_back_the_other() {
    let relay = Relay::start();
    let mut a = ws_connect(relay.addr, "/slow");
    relay.wait_metric("weir_connections", 1.0);
    let mut b = ws_connect(relay.addr, "/slow");
    a.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // B reads nothing. A writes 64 KiB frames until a write times out.
    let chunk = pattern(64 << 10, 3);
    let mask = [1, 2, 3, 4];
    let mut frame = Vec::new();
    weir::ws::write_header(
        &mut frame,
        true,
        OpCode::Binary,
        chunk.len() as u64,
        Some(mask),
    );
    let hl = frame.len();
    frame.extend_from_slice(&chunk);
    weir::ws::apply_mask(&mut frame[hl..], mask, 0);
    let mut sent_frames = 0usize;
    let blocked = loop {
        assert!(
            sent_frames < 4096,
            "256 MiB went through a peer that reads nothing"
        );
        match a.write_all(&frame) {
            Ok(()) => sent_frames += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(
        blocked.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));
    // Kernel buffers plus the relay's bounded queue: far less than sent-all.
    assert!(sent_frames < 2048, "{sent_frames} frames before blocking");
    // B now reads; every complete frame arrives intact.
    let mut got = 0;
    while got < sent_frames {
        let f = ws_recv(&mut b).unwrap();
        assert_eq!(hash(&f.payload), hash(&chunk));
        got += 1;
    }
    drop((a, b));
    relay.assert_idle();
}

#[test]
fn a_lone_peer_is_closed_at_the_ttl() {
    let relay = Relay::with(|c| c.ttl = Duration::from_secs(1));
    let mut a = ws_connect(relay.addr, "/alone");
    let (code, reason) = ws_close_of(&ws_recv(&mut a).unwrap());
    assert_eq!(code, 1001);
    assert!(reason.contains("No peer arrived"), "{reason}");
    drop(a);
    relay.assert_idle();
}

#[test]
fn a_third_peer_on_a_bridged_path_is_409_and_bad_upgrades_are_refused() {
    let relay = Relay::start();
    let _a = ws_connect(relay.addr, "/busy");
    relay.wait_metric("weir_connections", 1.0);
    let _b = ws_connect(relay.addr, "/busy");
    relay.wait_metric("weir_connections", 2.0);
    let (_c, status) = ws_try_connect(relay.addr, "/busy");
    assert_eq!(status, 409);
    let r = exchange(
        relay.addr,
        b"GET /x HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    );
    assert_eq!(r.status, 426);
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    let r = exchange(
        relay.addr,
        b"GET /x HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(r.status, 400);
}

#[test]
fn echo_endpoint_echoes_and_fails_bad_frames() {
    let relay = Relay::start();
    let mut s = ws_connect(relay.addr, "/sockjs/echo/websocket");
    ws_send(&mut s, true, OpCode::Text, "héllo".as_bytes());
    assert_eq!(ws_recv(&mut s).unwrap().payload, "héllo".as_bytes());
    ws_send(&mut s, true, OpCode::Binary, &[9; 70000]);
    assert_eq!(ws_recv(&mut s).unwrap().payload, vec![9; 70000]);
    // Invalid UTF-8 in a text frame: 1007, and nothing of it is echoed.
    ws_send(&mut s, true, OpCode::Text, &[0xce, 0xba, 0xff]);
    assert_eq!(ws_close_of(&ws_recv(&mut s).unwrap()).0, 1007);
    drop(s);
    // An unmasked client frame: 1002.
    let mut s = ws_connect(relay.addr, "/sockjs/echo/websocket");
    s.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    assert_eq!(ws_close_of(&ws_recv(&mut s).unwrap()).0, 1002);
    drop(s);
    relay.assert_idle();
}

/// Autobahn 1.1.1 / 2.1 / 7.3.1: a frame with an empty payload is acted on
/// at once, not when the next bytes arrive.
#[test]
fn empty_frames_are_answered_at_once() {
    let relay = Relay::start();
    let mut s = ws_connect(relay.addr, "/sockjs/echo/websocket");
    ws_send(&mut s, true, OpCode::Text, b"");
    let f = ws_recv(&mut s).unwrap();
    assert_eq!((f.opcode, f.payload.len()), (OpCode::Text, 0));
    ws_send(&mut s, true, OpCode::Ping, b"");
    assert_eq!(ws_recv(&mut s).unwrap().opcode, OpCode::Pong);
    ws_send(&mut s, false, OpCode::Binary, b"ab");
    ws_send(&mut s, true, OpCode::Continuation, b"");
    assert_eq!(ws_recv(&mut s).unwrap().payload, b"ab");
    assert_eq!(ws_recv(&mut s).unwrap().payload, b"");
    ws_send(&mut s, true, OpCode::Close, b"");
    let f = ws_recv(&mut s).unwrap();
    assert_eq!((f.opcode, f.payload.len()), (OpCode::Close, 0));
    drop(s);
    relay.assert_idle();
}
