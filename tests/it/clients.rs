//! Real clients and the ways they really behave (issue "Correct behind real
//! proxies and with real clients"): senders whose response must wait for
//! their body, clients that give up while parked, browser forms, `HEAD`,
//! pipelining, the end of the shutdown grace, and what curl's exit status
//! says after a failed transfer.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{curl::*, fs::*, http::*, net::*, payload::*, pipe::*, relay::*, sse::*};
use weir::config::SenderProgress;

const WAITING: &str = "weir_pipes{state=\"waiting\"}";
const STREAMING: &str = "weir_pipes{state=\"streaming\"}";

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

// --- The sender's response waits for its body (nginx) -------------------------

/// A sender without `Expect: 100-continue` (every request nginx forwards)
/// sees no byte of its response until its whole body has been read: nginx
/// stops forwarding a body once the upstream's answer has begun.
#[test]
fn a_sender_without_expect_gets_no_response_byte_before_its_body_is_read() {
    let relay = Relay::start();
    let body = pattern(300_000, 3);
    let mut s = start_plain_sender(
        relay.addr,
        "/held",
        &format!("Content-Length: {}\r\n", body.len()),
    );
    relay.wait_metric(WAITING, 1.0);
    assert_no_response(&mut s, Duration::from_millis(300));
    let mut r = start_receiver(relay.addr, "/held");
    relay.wait_metric(STREAMING, 1.0);
    // The transfer runs; half the body is through, still no answer.
    s.write_all(&body[..150_000]).unwrap();
    let head = read_head(&mut r);
    assert_eq!(head.status, 200);
    assert_eq!(
        read_exact(&mut r, 150_000),
        &body[..150_000],
        "the receiver gets bytes while the sender's answer waits"
    );
    assert_no_response(&mut s, Duration::from_millis(300));
    s.write_all(&body[150_000..]).unwrap();
    assert_eq!(read_exact(&mut r, 150_000), &body[150_000..]);
    let resp = parse_response(&read_to_end(&mut s));
    assert_eq!(resp.status, 200);
    assert!(resp.complete);
    assert_eq!(
        lines(&resp),
        [
            "[INFO] Waiting for 1 receiver(s)...",
            "[INFO] 1 receiver(s) connected.",
            "[INFO] Start sending to 1 receiver(s)!",
            "[INFO] Sent successfully! (300000 bytes)",
        ]
    );
    relay.assert_idle();
}

/// `Expect: 100-continue` (curl -T) keeps the live lines; `--sender-progress
/// held` holds them even then (the interim `100` still goes at once), and
/// `live` writes them at once for everyone.
#[test]
fn sender_progress_modes() {
    // auto + Expect: live.
    let relay = Relay::start();
    let mut s = sender(relay.addr, "/auto", "Content-Length: 3\r\n");
    s.wait_for("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK");
    s.wait_for("[INFO] Waiting for 1 receiver(s)...");
    let mut r = start_receiver(relay.addr, "/auto");
    s.wait_for("[INFO] Start sending to 1 receiver(s)!");
    s.write_all(b"abc").unwrap();
    assert_eq!(parse_response(&read_to_end(&mut r)).body, b"abc");
    assert!(s.finish().complete);
    drop(relay);

    // held + Expect: the 100 at once, nothing else until the body.
    let relay = Relay::with(|c| c.sender_progress = SenderProgress::Held);
    let mut s = sender(relay.addr, "/held", "Content-Length: 3\r\n");
    let interim = read_exact(&mut s.sock, 25);
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    relay.wait_metric(WAITING, 1.0);
    assert_no_response(&mut s.sock, Duration::from_millis(300));
    let mut r = start_receiver(relay.addr, "/held");
    relay.wait_metric(STREAMING, 1.0);
    assert_no_response(&mut s.sock, Duration::from_millis(300));
    s.write_all(b"abc").unwrap();
    assert_eq!(parse_response(&read_to_end(&mut r)).body, b"abc");
    let resp = parse_response(&read_to_end(&mut s.sock));
    assert!(lines(&resp)
        .last()
        .unwrap()
        .contains("Sent successfully! (3 bytes)"));
    drop(relay);

    // live without Expect: the lines at once.
    let relay = Relay::with(|c| c.sender_progress = SenderProgress::Live);
    let mut s = Recorded::new(start_plain_sender(
        relay.addr,
        "/live",
        "Content-Length: 3\r\n",
    ));
    s.wait_for("[INFO] Waiting for 1 receiver(s)...");
}

/// `POST /` must tell the sender its new ID before anyone can receive it,
/// so its first lines are live whatever the sender asked.
#[test]
fn an_ephemeral_upload_gets_its_id_at_once_without_expect() {
    let relay = Relay::start();
    let mut s = Recorded::new(connect(relay.addr));
    s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n")
        .unwrap();
    let got = s.wait_for("/s/");
    assert!(got.contains("Ephemeral socket open with ID"), "{got}");
}

// --- Clients that go away while parked ----------------------------------------

/// What `curl -m1 -X POST --data-binary 'my message'` does: its whole body
/// sits in the relay's socket buffer, it reads the first line, then closes
/// for good. The next receiver gets every byte (never a `200` then a cut).
#[test]
fn a_parked_sender_that_closed_after_its_whole_body_is_delivered() {
    let relay = Relay::start();
    for (path, expect) in [("/gone-live", true), ("/gone-held", false)] {
        let mut s = connect(relay.addr);
        let e = if expect {
            "Expect: 100-continue\r\n"
        } else {
            ""
        };
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n{e}\r\nmy message"
        )
        .unwrap();
        relay.wait_metric(WAITING, 1.0);
        if expect {
            // All of it, to the chunk's end: a close with unread bytes
            // would be a reset (the case below), not a close.
            read_until(&mut s, b"Waiting for 1 receiver(s)...\n\r\n");
        }
        // Gone for good: not a half-close; a write to it draws a reset.
        s.shutdown(Shutdown::Both).unwrap();
        drop(s);
        let (status, body, err) = curl(&["-sS", &relay.url(path)]);
        assert!(status.success(), "receiver of {path}: {err}");
        assert_eq!(body, b"my message");
        relay.wait_metric(WAITING, 0.0);
        relay.wait_metric(STREAMING, 0.0);
    }
    assert_eq!(relay.metric("weir_transfers_total{outcome=\"cut\"}"), 0.0);
    relay.assert_idle();
}

/// The same with the real client the issue names.
#[test]
fn curl_that_gives_up_while_parked_still_delivers_its_message() {
    let relay = Relay::start();
    let (status, _, _) = curl(&[
        "-sS",
        "-m1",
        "-X",
        "POST",
        "--data-binary",
        "my message",
        &relay.url("/x"),
    ]);
    assert_eq!(status.code(), Some(28), "curl timed out as planned");
    let (status, body, err) = curl(&["-sS", &relay.url("/x")]);
    assert!(status.success(), "the receiver was cut: {err}");
    assert_eq!(body, b"my message");
    relay.assert_idle();
}

/// A parked sender that resets frees its path within a second: a new
/// sender is parked, not refused `409`.
#[test]
fn a_parked_sender_that_resets_frees_its_path_at_once() {
    let relay = Relay::start();
    for body_sent in [0usize, 10] {
        let mut s = start_plain_sender(relay.addr, "/rst", "Content-Length: 10\r\n");
        s.write_all(&b"0123456789"[..body_sent]).unwrap();
        relay.wait_metric(WAITING, 1.0);
        let t0 = Instant::now();
        reset(s);
        relay.wait_metric(WAITING, 0.0);
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        let mut again = sender(relay.addr, "/rst", "Content-Length: 1\r\n");
        again.wait_for("[INFO] Waiting for 1 receiver(s)...");
        drop(again);
        relay.wait_metric(WAITING, 0.0);
    }
    relay.assert_idle();
}

/// A parked receiver that goes away (a close or a reset) frees its place.
#[test]
fn a_parked_receiver_that_leaves_frees_its_place_at_once() {
    let relay = Relay::start();
    for abortive in [false, true] {
        let r = start_receiver(relay.addr, "/rleave");
        relay.wait_metric(WAITING, 1.0);
        if abortive {
            reset(r);
        } else {
            drop(r);
        }
        relay.wait_metric(WAITING, 0.0);
        let mut r2 = start_receiver(relay.addr, "/rleave");
        relay.wait_metric(WAITING, 1.0);
        let mut s = sender(relay.addr, "/rleave", "Content-Length: 2\r\n");
        s.write_all(b"ok").unwrap();
        assert_eq!(parse_response(&read_to_end(&mut r2)).body, b"ok");
        assert!(s.finish().complete);
    }
    relay.assert_idle();
}

/// `nc -N`: an HTTP/1.0 sender that half-closes after its body, with or
/// without a length, still works and still reads its lines.
#[test]
fn a_half_closed_http10_sender_still_works() {
    let relay = Relay::start();
    for (path, length) in [("/nc-close", false), ("/nc-length", true)] {
        let mut s = connect(relay.addr);
        let cl = if length { "Content-Length: 5\r\n" } else { "" };
        write!(s, "PUT {path} HTTP/1.0\r\n{cl}\r\nhello").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        relay.wait_metric(WAITING, 1.0);
        let (status, body, err) = curl(&["-sS", &relay.url(path)]);
        assert!(status.success(), "{err}");
        assert_eq!(body, b"hello");
        let told = String::from_utf8_lossy(&read_to_end(&mut s)).into_owned();
        assert!(
            told.contains("[INFO] Sent successfully! (5 bytes)"),
            "{told}"
        );
    }
    relay.assert_idle();
}

// --- Forms --------------------------------------------------------------------

/// A browser form in text mode (`curl -F input_data=hello`): the receiver
/// of a named pipe gets the text, typed as text.
#[test]
fn a_text_field_on_a_named_pipe_reaches_the_receiver() {
    let relay = Relay::start();
    let recv = Curl::spawn(&["-sS", "-D", "-", &relay.url("/form")]);
    relay.wait_metric(WAITING, 1.0);
    let (status, out, err) = curl(&["-sS", "-F", "input_data=hello", &relay.url("/form")]);
    assert!(status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out).contains("Sent successfully! (5 bytes)"));
    let (status, lines, err) = recv.finish();
    assert!(status.success(), "{err}");
    let text = lines.join("\n");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        text.contains("Content-Type: text/plain; charset=utf-8"),
        "{text}"
    );
    assert!(!text.contains("\nContent-Disposition:"), "{text}");
    assert!(text.ends_with("\nhello"), "{text}");
}

fn multipart_body(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, filename, data) in parts {
        write!(
            b,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""
        )
        .unwrap();
        if let Some(f) = filename {
            write!(b, "; filename=\"{f}\"\r\nContent-Type: application/x-test").unwrap();
        }
        b.extend_from_slice(b"\r\n\r\n");
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    write!(b, "--{boundary}--\r\n").unwrap();
    b
}

/// `POST /` forwards the first file part: 70 KB of fields before it are
/// skipped, whatever the buffer size, and the receiver gets the file.
#[test]
fn an_ephemeral_upload_skips_70_kb_of_fields_before_the_file() {
    for buffer in [4096usize, 65536] {
        let relay = Relay::with(|c| c.buffer_size = buffer);
        let field = vec![b'f'; 70_000];
        let file = pattern(100_000, 5);
        let body = multipart_body(
            "XyZ",
            &[
                ("a", None, &field),
                ("b", None, b"short"),
                ("f", Some("data.bin"), &file),
            ],
        );
        let mut s = Recorded::new(connect(relay.addr));
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        let opened = s.wait_for("/s/");
        let _ = opened;
        let id_line = s.wait_for("\n");
        let id = id_line.trim().trim_end_matches('\r').to_string();
        let mut r = start_receiver(relay.addr, &format!("/s/{id}"));
        s.write_all(&body).unwrap();
        let got = parse_response(&read_to_end(&mut r));
        assert_eq!(got.status, 200);
        assert_eq!(got.header("Content-Type"), Some("application/x-test"));
        assert!(got.complete);
        assert_eq!(hash(&got.body), hash(&file), "buffer {buffer}");
        relay.assert_idle();
    }
}

/// A multipart body with no part at all (or, on `POST /`, no file part):
/// the receiver gets `502 Bad Gateway` with a reason, promptly.
#[test]
fn a_multipart_body_with_no_part_is_a_prompt_502() {
    let relay = Relay::start();
    // Named pipe, no part at all.
    let mut r = start_receiver(relay.addr, "/nopart");
    relay.wait_metric(WAITING, 1.0);
    let body = b"--b--\r\n";
    let mut s = sender(
        relay.addr,
        "/nopart",
        &format!(
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n",
            body.len()
        ),
    );
    s.write_all(body).unwrap();
    let t0 = Instant::now();
    let got = parse_response(&read_to_end(&mut r));
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(got.status, 502);
    let raw_reason_ok = got.text().contains("has no part");
    assert!(raw_reason_ok, "{}", got.text());
    let sent = s.finish_lossy();
    assert!(lines(&sent)
        .last()
        .unwrap()
        .starts_with("[ERROR] Bad multipart body"));
    // POST /: 70 KB of fields and no file part.
    let field = vec![b'x'; 70_000];
    let body = multipart_body("q", &[("a", None, &field)]);
    let mut s = Recorded::new(connect(relay.addr));
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=q\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.wait_for("/s/");
    let id = s.wait_for("\n").trim().to_string();
    let mut raw = connect(relay.addr);
    write!(raw, "GET /s/{id} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    relay.wait_metric(STREAMING, 1.0);
    s.write_all(&body).unwrap();
    let got = parse_response(&read_to_end(&mut raw));
    assert_eq!(got.status, 502, "{}", got.text());
    assert!(got.text().contains("no file part"), "{}", got.text());
    let mut head = Vec::new();
    // The status line carries the right reason phrase.
    write!(head, "{}", got.status).unwrap();
    relay.assert_idle();
}

// --- HEAD, Allow, pipelining ------------------------------------------------------

/// Send `req` and read exactly one response (by its length) from `s`.
fn one_response(s: &mut TcpStream, head_only: bool) -> Response {
    let head = read_until(s, b"\r\n\r\n");
    let r = parse_response(&head);
    let len: usize = r
        .header("Content-Length")
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    let body = if head_only {
        Vec::new()
    } else {
        read_exact(s, len)
    };
    Response {
        status: r.status,
        headers: r.headers,
        body,
        complete: true,
    }
}

#[test]
fn head_on_an_error_has_no_body_and_the_connection_goes_on() {
    let relay = Relay::start();
    let mut s = connect(relay.addr);
    s.write_all(b"HEAD /somepipe HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = one_response(&mut s, true);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, PUT, POST, OPTIONS"));
    // The next response on the connection is read from the right place.
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = one_response(&mut s, false);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));
    // Likewise a 404 to HEAD.
    s.write_all(
        b"HEAD /signal/nope HTTP/1.1\r\nHost: x\r\n\r\nGET /version HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let r = one_response(&mut s, true);
    assert_eq!(r.status, 404);
    let r = one_response(&mut s, false);
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(b"weir "));
}

#[test]
fn allow_lists_what_the_path_allows() {
    let relay = Relay::with(|c| c.reservations = true);
    let cases = [
        ("POST /healthz", "GET, HEAD, OPTIONS"),
        ("DELETE /metrics", "GET, HEAD, OPTIONS"),
        ("DELETE /", "GET, HEAD, POST, PUT, OPTIONS"),
        ("DELETE /mypipe", "GET, PUT, POST, OPTIONS"),
        ("HEAD /mypipe", "GET, PUT, POST, OPTIONS"),
        ("PUT /signal", "GET, HEAD, OPTIONS"),
        ("DELETE /signal/abc", "GET, HEAD, POST, OPTIONS"),
        ("PUT /events/t", "GET, HEAD, POST, OPTIONS"),
        ("POST /s/abc", "GET, OPTIONS"),
        ("HEAD /s/abc", "GET, OPTIONS"),
        ("POST /reserve", "GET, OPTIONS"),
        ("GET /reserve/abc", "POST, PUT, OPTIONS"),
    ];
    for (req, allow) in cases {
        let r = exchange(
            relay.addr,
            format!("{req} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 405, "{req}");
        assert_eq!(r.header("Allow"), Some(allow), "{req}");
        if !req.starts_with("HEAD") {
            assert_error(&r, 405);
        }
    }
    // A send to a reserved path says what to do.
    let r = exchange(
        relay.addr,
        b"PUT /help HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_error(&r, 405);
    assert!(
        r.text()
            .contains("/help is reserved; send to another path, e.g. /mypath123."),
        "{}",
        r.text()
    );
}

#[test]
fn head_on_event_stream_urls_answers_gets_headers_and_creates_nothing() {
    let relay = Relay::start();
    let mut s = connect(relay.addr);
    s.write_all(
        b"HEAD /signal HTTP/1.1\r\nHost: x\r\n\r\nHEAD /events/news HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    for _ in 0..2 {
        let r = one_response(&mut s, true);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Type"),
            Some("text/event-stream; charset=utf-8")
        );
        assert_eq!(r.header("X-Accel-Buffering"), Some("no"));
    }
    let r = one_response(&mut s, false);
    assert_eq!(r.body, b"ok\n");
    assert_eq!(relay.metric("weir_swarms"), 0.0);
    assert_eq!(relay.metric("weir_event_streams"), 0.0);
}

/// Every request on a connection is answered, in order: two in one write,
/// and a second head split across writes.
#[test]
fn pipelined_requests_are_all_answered_in_order() {
    let relay = Relay::start();
    let mut s = connect(relay.addr);
    s.write_all(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /version HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(one_response(&mut s, false).body, b"ok\n");
    assert!(one_response(&mut s, false).body.starts_with(b"weir "));
    // A head split across writes, the first write carrying a whole request.
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /hea")
        .unwrap();
    assert_eq!(one_response(&mut s, false).body, b"ok\n");
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"lthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(one_response(&mut s, false).body, b"ok\n");
    // OPTIONS, an error, and a reserved path, pipelined.
    s.write_all(
        b"OPTIONS /x HTTP/1.1\r\nHost: x\r\n\r\nBREW /x HTTP/1.1\r\nHost: x\r\n\r\nGET /robots.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(one_response(&mut s, false).status, 204);
    assert_eq!(one_response(&mut s, false).status, 405);
    let r = one_response(&mut s, false);
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(b"User-agent"));
    // The same through nc's way of sending: all at once, then a half-close.
    let mut s = connect(relay.addr);
    s.write_all(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let all = read_to_end(&mut s);
    assert_eq!(
        String::from_utf8_lossy(&all)
            .matches("HTTP/1.1 200 OK")
            .count(),
        2
    );
}

// --- The end of the shutdown grace ---------------------------------------------

/// When `--shutdown-grace` runs out, a close-delimited (HTTP/1.0) receiver
/// is reset, not ended cleanly, and a running sender gets an `[ERROR]` line
/// and a response that does not look complete.
#[test]
fn the_end_of_the_grace_cuts_visibly() {
    let relay = Binary::start(&["--shutdown-grace", "1"]);
    let addr = relay.addr;
    // An HTTP/1.0 receiver of a chunked sender's body: close-delimited.
    let mut r = connect(addr);
    r.write_all(b"GET /grace HTTP/1.0\r\n\r\n").unwrap();
    let mut s = sender(addr, "/grace", "Transfer-Encoding: chunked\r\n");
    s.wait_for("[INFO] Start sending to 1 receiver(s)!");
    s.write_all(b"5\r\nhello\r\n").unwrap();
    read_until(&mut r, b"hello");
    signal(relay.pid(), "-TERM");
    let (_, err) = read_until_closed(&mut r, Duration::from_secs(10));
    let err = err.expect("a close-delimited receiver must see a reset, not a clean end");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    let (rest, _) = read_until_closed(&mut s.sock, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&rest).into_owned();
    assert!(
        text.contains("[ERROR] The relay shut down before the transfer ended"),
        "{text}"
    );
    assert!(!text.ends_with("0\r\n\r\n"), "no final chunk: {text:?}");
}

// --- Small things --------------------------------------------------------------

#[test]
fn signals_accept_every_json_media_type() {
    let relay = Relay::start();
    let mut init = SseClient::open(relay.addr, "/signal");
    let connect_ev = init.next_event().unwrap();
    let v: Vec<String> = ["id", "token"]
        .iter()
        .map(|k| {
            let key = format!("\"{k}\":\"");
            let i = connect_ev.data.find(&key).unwrap() + key.len();
            connect_ev.data[i..i + 32].to_string()
        })
        .collect();
    let (id, token) = (&v[0], &v[1]);
    for ct in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/vnd.api+json",
        "application/merge-patch+JSON",
    ] {
        let body = format!("{{\"token\":\"{token}\",\"data\":1}}");
        let req = format!(
            "POST /signal/{id} HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let r = exchange(relay.addr, req.as_bytes());
        assert_eq!(r.status, 200, "{ct}: {}", r.text());
        assert_eq!(init.next_event().unwrap().event.as_deref(), Some("signal"));
    }
}

#[test]
fn help_and_noscript_use_forwarded_urls_with_trust_proxy() {
    let relay = Relay::with(|c| c.trust_proxy = true);
    for path in ["/help", "/noscript"] {
        let r = exchange(
            relay.addr,
            format!("GET {path} HTTP/1.1\r\nHost: internal:8080\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: relay.example\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(r.text().contains("https://relay.example/"), "{path}");
        assert!(!r.text().contains("internal:8080"), "{path}");
    }
}

#[test]
fn cannot_listen_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["--listen", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

/// `tar c dir | curl -T - http://R/backup && echo sent` must not say sent
/// after a cut: curl's exit status tells.
#[test]
fn curl_exits_with_an_error_when_its_transfer_was_cut() {
    let relay = Relay::start();
    let data = TempFile::new("big.bin", &pattern(8 << 20, 7));
    // A receiver that takes 64 KiB and goes away.
    let mut r = start_receiver(relay.addr, "/backup");
    relay.wait_metric(WAITING, 1.0);
    let send = Curl::spawn(&["-sS", "-T", data.path_str(), &relay.url("/backup")]);
    read_head(&mut r);
    let mut buf = vec![0u8; 65536];
    r.read_exact(&mut buf).unwrap();
    reset(r);
    let (status, lines, err) = send.finish();
    // The exit status is what a script sees. (The `[ERROR]` line is
    // written too, but curl, still uploading, may stop at the failed send
    // before it reads it: "(55) Send failure".)
    assert!(
        !status.success(),
        "curl said success after a cut: {lines:?} {err}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("[ERROR]")) || err.contains("curl: ("),
        "{lines:?} {err}"
    );
    // And a sender whose receivers never came (HTTP/1.0: close-delimited,
    // so the failure is a reset).
    let relay = Relay::with(|c| c.ttl = Duration::from_secs(1));
    let (status, out, _) = curl(&["-sS", "-0", "-T", data.path_str(), &relay.url("/late")]);
    assert!(!status.success(), "{}", String::from_utf8_lossy(&out));
    assert!(String::from_utf8_lossy(&out).contains("[ERROR] Timed out"));
}
