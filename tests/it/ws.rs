//! WebSocket pipes and the echo endpoint (spec §5), with real sockets.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{http::*, net::*, payload::*, relay::*, ws::*, DEADLINE};
use weir::websocket::codec::OpCode;

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
        let close = weir::websocket::codec::close_frame(1000, "done");
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
    let close = weir::websocket::codec::close_frame(4001, "custom bye");
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
    weir::websocket::codec::write_header(
        &mut frame,
        true,
        OpCode::Binary,
        chunk.len() as u64,
        Some(mask),
    );
    let hl = frame.len();
    frame.extend_from_slice(&chunk);
    weir::websocket::codec::apply_mask(&mut frame[hl..], mask, 0);
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
    // What the relay holds for B is in one fixed ring (nothing for A).
    assert_eq!(relay.metric("weir_ws_buffers{kind=\"ring\"}"), 1.0);
    // B now reads; every complete frame arrives intact.
    let mut got = 0;
    while got < sent_frames {
        let f = ws_recv(&mut b).unwrap();
        assert_eq!(hash(&f.payload), hash(&chunk));
        got += 1;
    }
    // All of it written, the ring goes back to its pool.
    relay.wait_metric("weir_ws_buffers{kind=\"ring\"}", 0.0);
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

/// Issue 10 item 5: weir sent its close and closed TCP at once, so the
/// client's close met a reset. Now it waits for the client's close, then
/// ends TCP cleanly. The close service's raw WebSocket.
#[test]
fn the_close_service_waits_for_the_clients_close() {
    let relay = Relay::start();
    let mut s = ws_connect(relay.addr, "/sockjs/close/websocket");
    let f = ws_recv(&mut s).unwrap();
    assert_eq!(ws_close_of(&f), (3000, "Go away!".to_string()));
    ws_answer_close(&mut s, &f.payload);
    relay.assert_idle();
}

/// The same after a SockJS `Broken framing` close on the websocket
/// transport (the client used to get ECONNRESET every time).
#[test]
fn a_broken_framing_close_waits_for_the_clients_close() {
    let relay = Relay::start();
    let mut s = ws_connect(relay.addr, "/sockjs/echo/000/bf/websocket");
    assert_eq!(ws_recv(&mut s).unwrap().payload, b"o");
    ws_send(&mut s, true, OpCode::Text, b"[not json");
    let f = ws_recv(&mut s).unwrap();
    assert_eq!(ws_close_of(&f), (3000, "Broken framing.".to_string()));
    ws_answer_close(&mut s, &f.payload);
    relay.wait_metric("weir_sockjs_sessions", 0.0);
    relay.assert_idle();
}

/// A pipe: the close weir passes on waits for that peer's answer; the
/// peer that started the close gets the echo, then a clean end.
#[test]
fn a_passed_on_close_waits_for_the_other_peers_close() {
    let relay = Relay::start();
    let mut a = ws_connect(relay.addr, "/closing");
    relay.wait_metric("weir_connections", 1.0);
    let mut b = ws_connect(relay.addr, "/closing");
    let close = weir::websocket::codec::close_frame(4001, "custom bye");
    ws_send(&mut b, true, OpCode::Close, &close[2..]);
    let passed = ws_recv(&mut a).unwrap();
    assert_eq!(ws_close_of(&passed), (4001, "custom bye".to_string()));
    // The initiator: its close is echoed, then TCP ends cleanly.
    assert_eq!(ws_close_of(&ws_recv(&mut b).unwrap()).0, 4001);
    ws_expect_clean_end(&mut b);
    // The other side: weir waits for its answer.
    ws_answer_close(&mut a, &passed.payload);
    relay.assert_idle();
}

/// A client that closes while a frame from its peer is being streamed to
/// it gets the rest of that frame, then the echo of its close, then a
/// clean end (it used to be reset: a close cannot go inside a frame). The
/// peer's frame in flight is finished before its own close answer.
#[test]
fn a_close_while_receiving_a_frame_waits_for_the_frame() {
    let relay = Relay::start();
    let mut a = ws_connect(relay.addr, "/midframe");
    relay.wait_metric("weir_connections", 1.0);
    let mut b = ws_connect(relay.addr, "/midframe");
    let body = pattern(1 << 20, 7);
    let mask = [9, 8, 7, 6];
    let mut frame = Vec::new();
    weir::websocket::codec::write_header(
        &mut frame,
        true,
        OpCode::Binary,
        body.len() as u64,
        Some(mask),
    );
    let hl = frame.len();
    frame.extend_from_slice(&body);
    weir::websocket::codec::apply_mask(&mut frame[hl..], mask, 0);
    // A sends the header and a first part; B sees the frame start.
    let first = hl + 100_000;
    a.write_all(&frame[..first]).unwrap();
    let got_head = read_exact(&mut b, 10 + 1000);
    assert_eq!(&got_head[..2], &[0x82, 127], "a 64-bit length binary frame");
    // B closes mid-frame. Weir passes the close on to A.
    let close = weir::websocket::codec::close_frame(1000, "enough");
    ws_send(&mut b, true, OpCode::Close, &close[2..]);
    let passed = ws_recv(&mut a).unwrap();
    assert_eq!(ws_close_of(&passed), (1000, "enough".to_string()));
    // A finishes its frame, then answers the close.
    a.write_all(&frame[first..]).unwrap();
    ws_send(&mut a, true, OpCode::Close, &passed.payload);
    // B gets the whole frame, then its close echoed, then a clean end.
    let rest = read_exact(&mut b, body.len() - 1000);
    assert_eq!(hash(&[&got_head[10..], &rest[..]].concat()), hash(&body));
    assert_eq!(
        ws_close_of(&ws_recv(&mut b).unwrap()),
        (1000, "enough".to_string())
    );
    ws_expect_clean_end(&mut b);
    ws_expect_clean_end(&mut a);
    relay.assert_idle();
}

/// Issue 10 item 8: a client that sends pings and never reads the pongs
/// grew weir's memory without bound on a bridged pipe (2.8 MB to 493 MB in
/// 3 s). Every byte queued for a connection counts against the bound; past
/// it, the connection is not read, and it is read again once its client
/// reads. The same for every WebSocket mode. Run against the real binary,
/// its RSS read from /proc.
#[test]
fn a_ping_flood_is_bounded_in_every_mode_and_resumes() {
    const FLOOD: usize = 200 << 20;
    const BOUND_KIB: u64 = 32 << 10;
    let weir = Binary::start(&[]);
    let start_kib = weir.rss_kib();
    // One ping frame (125-byte payload, masked), repeated into a batch.
    let mut ping = Vec::new();
    let mask = [1, 2, 3, 4];
    weir::websocket::codec::write_header(&mut ping, true, OpCode::Ping, 125, Some(mask));
    let hl = ping.len();
    ping.extend_from_slice(&[b'p'; 125]);
    weir::websocket::codec::apply_mask(&mut ping[hl..], mask, 0);
    let batch: Vec<u8> = ping.repeat((64 << 10) / ping.len());

    // (mode, path of the flooding client, path of the one the marker
    // reaches (None: the flooder itself), marker sent, marker expected)
    type Mode = (
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static [u8],
        &'static [u8],
    );
    let modes: [Mode; 4] = [
        ("pipe", "/flood", Some("/flood"), b"resumed", b"resumed"),
        (
            "echo",
            "/sockjs/echo/websocket",
            None,
            b"resumed",
            b"resumed",
        ),
        (
            "sockjs",
            "/sockjs/echo/000/flood/websocket",
            None,
            br#"["resumed"]"#,
            br#"a["resumed"]"#,
        ),
        (
            "raw",
            "/sockjs/floodroom/websocket",
            Some("/sockjs/floodroom/websocket"),
            b"resumed",
            b"resumed",
        ),
    ];
    for (mode, path, other, marker, want) in modes {
        let mut a = ws_connect(weir.addr, path);
        if mode == "sockjs" {
            assert_eq!(ws_recv(&mut a).unwrap().payload, b"o");
        }
        let mut b = other.map(|p| {
            if mode == "pipe" {
                wait_metric(weir.addr, "weir_ws_pipes{state=\"waiting\"}", 1.0);
            }
            let b = ws_connect(weir.addr, p);
            wait_metric(weir.addr, "weir_websockets", 2.0);
            b
        });
        // Flood without reading, until a write stalls for half a second
        // (weir stopped reading; the kernel's buffers are full) or FLOOD
        // bytes went out. Whole frames only: a stalled write keeps its
        // remainder for later.
        a.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let (mut sent, mut pos, mut peak) = (0usize, 0usize, 0u64);
        let stalled = loop {
            if sent >= FLOOD && pos == 0 {
                break false;
            }
            match a.write(&batch[pos..]) {
                Ok(n) => {
                    sent += n;
                    pos = (pos + n) % batch.len();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break true
                }
                Err(e) => panic!("{mode}: write failed: {e}"),
            }
            if sent % (4 << 20) < batch.len() {
                peak = peak.max(weir.rss_kib());
                assert!(
                    peak < start_kib + BOUND_KIB,
                    "{mode}: RSS {peak} KiB after {} MiB of pings (start {start_kib} KiB)",
                    sent >> 20
                );
            }
        };
        peak = peak.max(weir.rss_kib());
        assert!(
            stalled,
            "{mode}: weir read {} MiB of pings nobody took",
            sent >> 20
        );
        assert!(
            peak < start_kib + BOUND_KIB,
            "{mode}: RSS {peak} KiB (start {start_kib} KiB)"
        );
        // The client reads now: its pongs (only the latest of a burst may
        // be answered), then, once weir reads it again, the marker.
        a.set_write_timeout(Some(DEADLINE)).unwrap();
        let mut reader = a.try_clone().unwrap();
        let own = b.is_none();
        let want_own = want.to_vec();
        let drain = std::thread::spawn(move || {
            let mut r = std::io::BufReader::with_capacity(1 << 16, &mut reader);
            let mut pongs = 0usize;
            loop {
                let f = ws_recv_from(&mut r).expect("frames until the marker");
                match f.opcode {
                    OpCode::Pong => pongs += 1,
                    _ if own && f.payload == want_own => return pongs,
                    OpCode::Close if !own => return pongs,
                    op => panic!("unexpected {op:?} frame"),
                }
            }
        });
        a.write_all(&batch[pos..]).unwrap();
        ws_send(&mut a, true, OpCode::Text, marker);
        if let Some(b) = b.as_mut() {
            assert_eq!(ws_recv(b).unwrap().payload, want, "{mode}");
            let close = weir::websocket::codec::close_frame(1000, "");
            ws_send(b, true, OpCode::Close, &close[2..]);
            if mode == "raw" {
                ws_send(&mut a, true, OpCode::Close, &close[2..]);
            }
        } else {
            let close = weir::websocket::codec::close_frame(1000, "");
            ws_send(&mut a, true, OpCode::Close, &close[2..]);
        }
        let pongs = drain.join().unwrap();
        assert!(pongs > 0, "{mode}: no pong");
        eprintln!(
            "{mode}: stalled after {} KiB of pings; RSS peak {peak} KiB (start {start_kib}); {pongs} pongs",
            sent >> 10
        );
        drop((a, b));
        wait_metric(weir.addr, "weir_websockets", 0.0);
    }
}

/// The close handshakes above, and the SockJS session id reuse, with a real
/// client library: websocket-client (Debian's `python3-websocket`) runs
/// `tests/clients/ws_close.py`, which checks what the library sees and the
/// TCP connection under it (kept open for the client's close, then a clean
/// EOF). Without the library the test prints a notice and passes, unless
/// `WEIR_BROWSER_TESTS=1` (CI, whose `.ci/run` installs it) requires it.
#[test]
fn a_client_library_sees_clean_close_handshakes() {
    const PYTHON: &str = "/usr/bin/python3";
    let have = Command::new(PYTHON)
        .args(["-c", "import websocket"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        let msg =
            format!("websocket-client for {PYTHON} is missing (apt-get install python3-websocket)");
        if std::env::var("WEIR_BROWSER_TESTS").as_deref() == Ok("1") {
            panic!("{msg}; WEIR_BROWSER_TESTS=1 requires it");
        }
        let _ = writeln!(
            std::io::stderr(),
            "NOTICE: skipping the client library test: {msg}"
        );
        return;
    }
    let relay = Relay::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/ws_close.py");
    let mut child = Command::new(PYTHON)
        .arg(script)
        .arg(format!("ws://{}", relay.addr))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            // Ours, by its handle (its PID): nothing else is touched.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = status.unwrap_or_else(|| panic!("ws_close.py ran over 60 s\n{out}\n{err}"));
    assert!(
        status.success(),
        "ws_close.py failed ({status})\n{out}\n{err}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok ")).count(),
        5,
        "every scenario reported\n{out}"
    );
    relay.wait_metric("weir_sockjs_sessions", 0.0);
    relay.assert_idle();
}

/// Messages held whole (echoed frames, SockJS messages) share the relay's
/// message budget: a message that does not fit beside the others is
/// refused with close 1009, and the budget comes back after.
#[test]
fn held_messages_share_the_message_budget() {
    let relay = Relay::with(|c| c.message_budget = 64 * 1024);
    // One echo socket holds 40 KiB of an unfinished 50 KiB frame.
    let mut holder = ws_connect(relay.addr, "/sockjs/echo/websocket");
    let head = [0x82u8, 127, 0, 0, 0, 0, 0, 0, 0xc8, 0x00]; // binary, 51200 bytes, masked below
    let mut frame = head.to_vec();
    frame[1] |= 0x80;
    frame.extend_from_slice(&[0, 0, 0, 0]); // mask key 0: payload as is
    frame.extend_from_slice(&vec![b'h'; 40 * 1024]);
    holder.write_all(&frame).unwrap();
    // Another socket's 30 KiB message does not fit: 1009.
    let deadline = Instant::now() + DEADLINE;
    let (code, reason) = loop {
        let mut other = ws_connect(relay.addr, "/sockjs/echo/websocket");
        ws_send(&mut other, true, OpCode::Binary, &vec![b'o'; 30 * 1024]);
        let f = ws_recv(&mut other).expect("an answer");
        if f.opcode == OpCode::Close {
            break ws_close_of(&f);
        }
        // The holder's bytes were not all read yet: try again.
        assert!(Instant::now() < deadline, "never refused");
    };
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("message bytes"), "{reason}");
    // The holder finishes its frame: its echo comes back, and so does the
    // budget (a 30 KiB message now fits).
    holder.write_all(&vec![b'h'; 10 * 1024]).unwrap();
    let echo = ws_recv(&mut holder).expect("the echo");
    assert_eq!(echo.payload.len(), 50 * 1024);
    let mut again = ws_connect(relay.addr, "/sockjs/echo/websocket");
    ws_send(&mut again, true, OpCode::Binary, &vec![b'a'; 30 * 1024]);
    let f = ws_recv(&mut again).unwrap();
    assert_eq!((f.opcode, f.payload.len()), (OpCode::Binary, 30 * 1024));
}

/// Sockets that are read take their input buffer from a bounded pool
/// (two per `--max-streaming-pipes`): past it, a socket is closed with
/// 1013 Try Again Later, and a freed buffer serves the next.
#[test]
fn input_buffers_come_from_a_bounded_pool() {
    let relay = Relay::with(|c| c.max_streaming_pipes = 1);
    let mut a = ws_connect(relay.addr, "/sockjs/echo/websocket");
    let mut b = ws_connect(relay.addr, "/sockjs/echo/websocket");
    for s in [&mut a, &mut b] {
        ws_send(s, true, OpCode::Text, b"hi");
        assert_eq!(ws_recv(s).unwrap().payload, b"hi");
    }
    let mut c = ws_connect(relay.addr, "/sockjs/echo/websocket");
    ws_send(&mut c, true, OpCode::Text, b"hi");
    let f = ws_recv(&mut c).unwrap();
    assert_eq!(ws_close_of(&f).0, 1013);
    // A waiting pipe peer holds no buffer: it is not refused.
    let mut w = ws_connect(relay.addr, "/a-room");
    relay.wait_metric("weir_ws_pipes{state=\"waiting\"}", 1.0);
    drop(a);
    // `a`'s buffer comes back: a new socket is served.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut d = ws_connect(relay.addr, "/sockjs/echo/websocket");
        ws_send(&mut d, true, OpCode::Text, b"hi");
        let f = ws_recv(&mut d).unwrap();
        if f.opcode == OpCode::Text {
            break;
        }
        assert!(Instant::now() < deadline, "the buffer never came back");
    }
    ws_send(
        &mut w,
        true,
        OpCode::Close,
        &weir::websocket::codec::close_frame(1000, "")[2..],
    );
}

/// The measuring client the README's WebSocket figures come from checks
/// what it measures: `weir-bench --ws` moves its pipes through the relay
/// byte for byte (every payload byte compared with the pattern), and
/// fails when a pipe is cut.
#[test]
fn weir_bench_ws_moves_pipes_byte_for_byte() {
    let relay = Relay::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir-bench"))
        .args("--ws --pipes 3 --size 3M --quiet --timeout 60".split(' '))
        .arg("--url")
        .arg(format!("http://{}/", relay.addr))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("(websocket), 3 pipe(s)"), "{stdout}");
    let bytes = stdout.lines().find_map(|l| l.strip_prefix("bytes "));
    assert_eq!(bytes.map(str::trim), Some("9437184"), "{stdout}");
    relay.assert_idle();
    assert_eq!(relay.metric("weir_ws_buffers{kind=\"ring\"}"), 0.0);
}

/// Both peers of a pipe write at once (frames of 0 B to 200 KB, the large
/// ones in two fragments with a ping between them, more pings) while each
/// reads slowly, so both directions fill their rings and pause their
/// feeders: every message arrives whole and in order, and each peer's
/// pongs come back in the order of its pings.
#[test]
fn both_peers_write_and_ping_while_reading_slowly() {
    const N: usize = 400;
    fn size(seed: u64, i: usize) -> usize {
        let k = (i as u64)
            .wrapping_mul(2_654_435_761)
            .wrapping_add(seed * 97)
            % 7;
        [0, 1, 125, 126, 65_535, 65_543, 200_000][k as usize]
    }
    fn message(seed: u64, i: usize) -> Vec<u8> {
        pattern(size(seed, i), seed * 1000 + i as u64)
    }
    let relay = Relay::start();
    let a = ws_connect(relay.addr, "/both-ways");
    relay.wait_metric("weir_connections", 1.0);
    let b = ws_connect(relay.addr, "/both-ways");
    // Each socket stays open until both peers have read everything: a peer
    // that closed with pongs unread would reset its connection, and the
    // relay would lose what it had not yet read from it.
    let keep = [a.try_clone().unwrap(), b.try_clone().unwrap()];
    let mut threads = Vec::new();
    for (me, s) in [(1u64, a), (2u64, b)] {
        let mut w = s.try_clone().unwrap();
        threads.push(std::thread::spawn(move || {
            for i in 0..N {
                let data = message(me, i);
                let ping = format!("{i}");
                if data.len() > 70_000 {
                    let (x, y) = data.split_at(data.len() / 2);
                    ws_send(&mut w, false, OpCode::Binary, x);
                    ws_send(&mut w, true, OpCode::Ping, ping.as_bytes());
                    ws_send(&mut w, true, OpCode::Continuation, y);
                } else {
                    ws_send(&mut w, true, OpCode::Binary, &data);
                }
                if i % 3 == 0 {
                    ws_send(&mut w, true, OpCode::Ping, ping.as_bytes());
                }
            }
        }));
        let mut r = s;
        let other = 3 - me;
        threads.push(std::thread::spawn(move || {
            let (mut got, mut last_pong, mut msg) = (0, -1i64, Vec::new());
            while got < N {
                if got % 5 == 0 {
                    // Slow: the relay's queue toward this peer fills.
                    std::thread::sleep(Duration::from_millis(10));
                }
                let f = ws_recv(&mut r).expect("a frame");
                match f.opcode {
                    OpCode::Pong => {
                        let k: i64 = String::from_utf8(f.payload).unwrap().parse().unwrap();
                        assert!(k >= last_pong, "pong {k} after pong {last_pong}");
                        last_pong = k;
                    }
                    OpCode::Binary | OpCode::Continuation => {
                        msg.extend_from_slice(&f.payload);
                        if f.fin {
                            let want = message(other, got);
                            assert_eq!(msg.len(), want.len(), "message {got}'s length");
                            assert!(msg == want, "message {got}'s bytes");
                            msg.clear();
                            got += 1;
                        }
                    }
                    op => panic!("unexpected {op:?}"),
                }
            }
        }));
    }
    for t in threads {
        t.join().expect("a peer thread failed");
    }
    relay.wait_metric("weir_ws_buffers{kind=\"ring\"}", 0.0);
    drop(keep);
}
