//! Hostile requests: each shape is answered with its status or a close,
//! never a panic and never a hang, and the relay goes on serving.
//!
//! Every test asserts the exact status (`docs/protocol.md` §0) or that the
//! connection is closed within a deadline, then that `GET /healthz` still
//! works and that nothing is left open (`assert_idle`).

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::{http::*, net::*, payload::*, pipe::*, relay::*, DEADLINE};

const WAITING: &str = "weir_pipes{state=\"waiting\"}";
const STREAMING: &str = "weir_pipes{state=\"streaming\"}";
const CUT: &str = "weir_transfers_total{outcome=\"cut\"}";
const ABANDONED: &str = "weir_transfers_total{outcome=\"abandoned\"}";
const REQUESTS: &str = "weir_requests_total";

/// After a hostile exchange: the relay still serves, and holds nothing.
fn still_fine(relay: &Relay) {
    assert_serves(relay.addr);
    relay.assert_idle();
}

/// How many responses `raw` holds: lines that look like a status line.
fn status_lines(raw: &[u8]) -> usize {
    (0..raw.len())
        .filter(|&i| i == 0 || raw[i - 1] == b'\n')
        .filter(|&i| {
            let l = &raw[i..];
            l.len() >= 13
                && (l.starts_with(b"HTTP/1.0 ") || l.starts_with(b"HTTP/1.1 "))
                && l[9..12].iter().all(u8::is_ascii_digit)
        })
        .count()
}

/// Send `req` on a fresh connection and expect the `[ERROR]` answer with
/// `status`, `Connection: close`, and then the close itself. Returns the
/// message line.
fn refused(addr: SocketAddr, req: &[u8], status: u16) -> String {
    let mut s = connect(addr);
    s.write_all(req).unwrap();
    let (raw, err) = read_until_closed(&mut s, DEADLINE);
    assert!(err.is_none(), "closed by a reset: {err:?}");
    // Exactly one response: whatever followed the refused head was not
    // read as another request.
    assert_eq!(status_lines(&raw), 1, "{:?}", String::from_utf8_lossy(&raw));
    let r = parse_response(&raw);
    assert_error(&r, status);
    assert_eq!(r.header("Connection"), Some("close"), "{:?}", r.headers);
    r.text()
}

// --- Slow, endless and silent heads ------------------------------------------

#[test]
fn slow_head_is_408_after_the_head_timeout() {
    let relay = Relay::with(|c| c.head_timeout = Duration::from_secs(1));
    let started = Instant::now();
    let mut s = relay.connect();
    // A few header lines, dribbled: never the empty line that ends a head.
    s.write_all(b"PUT /slowloris HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    s.write_all(b"X-A: 1\r\n").unwrap();
    let (raw, err) = read_until_closed(&mut s, DEADLINE);
    assert!(err.is_none(), "{err:?}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(1), "early: {waited:?}");
    assert!(waited < Duration::from_secs(5), "late: {waited:?}");
    let r = parse_response(&raw);
    assert_error(&r, 408);
    assert_eq!(r.header("Connection"), Some("close"));
    assert_eq!(relay.metric(WAITING), 0.0);
    drop(s);
    still_fine(&relay);
}

#[test]
fn endless_header_lines_are_431() {
    let relay = Relay::start();
    let mut s = relay.connect();
    s.write_all(b"GET /endless HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    // Header lines that never end the head: the relay answers once the
    // head passes its limit (16 KiB), whatever the client goes on sending.
    let mut writer = s.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        let line = format!("X-Endless: {}\r\n", "e".repeat(100));
        let mut sent = 0usize;
        // Bounded: 64 KiB, well past the limit; stop when the relay closes.
        while sent < 64 << 10 {
            if writer.write_all(line.as_bytes()).is_err() {
                break;
            }
            sent += line.len();
        }
        // End of our input: the relay may stop draining and close.
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    let (raw, _) = read_until_closed(&mut s, DEADLINE);
    feeder.join().unwrap();
    let r = parse_response(&raw);
    assert_error(&r, 431);
    assert_eq!(r.header("Connection"), Some("close"));
    drop(s);
    still_fine(&relay);
}

#[test]
fn more_than_64_header_lines_are_431() {
    let relay = Relay::start();
    let mut req = String::from("GET /many HTTP/1.1\r\nHost: t\r\n");
    for i in 0..100 {
        req.push_str(&format!("X-{i}: {i}\r\n"));
    }
    req.push_str("\r\n");
    assert!(
        req.len() < 4096,
        "the count, not the size, is over the limit"
    );
    refused(relay.addr, req.as_bytes(), 431);
    still_fine(&relay);
}

#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_head_timeout() {
    let relay = Relay::with(|c| c.head_timeout = Duration::from_secs(1));
    let started = Instant::now();
    let mut s = relay.connect();
    let (raw, err) = read_until_closed(&mut s, DEADLINE);
    let waited = started.elapsed();
    assert!(err.is_none(), "a plain close, not a reset: {err:?}");
    assert!(
        raw.is_empty(),
        "no response: {:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(waited >= Duration::from_secs(1), "early: {waited:?}");
    assert!(waited < Duration::from_secs(5), "late: {waited:?}");
    drop(s);
    still_fine(&relay);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_head_timeout() {
    let relay = Relay::with(|c| c.head_timeout = Duration::from_secs(1));
    let mut s = relay.connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let head = read_head(&mut s);
    assert_eq!(head.status, 200);
    assert_eq!(read_exact(&mut s, 3), b"ok\n");
    let idle_from = Instant::now();
    let (raw, err) = read_until_closed(&mut s, DEADLINE);
    assert!(err.is_none(), "{err:?}");
    assert!(raw.is_empty(), "{:?}", String::from_utf8_lossy(&raw));
    assert!(idle_from.elapsed() < Duration::from_secs(5));
    drop(s);
    still_fine(&relay);
}

// --- Chunk sizes ---------------------------------------------------------------

/// A chunked sender streams one good chunk, then `bad`: the receiver's
/// response is visibly cut (no final chunk) and the sender's last line is
/// `[ERROR] <expected>`.
fn chunked_pipe_is_cut(path: &str, bad: &[u8], expected: &str, relay: &Relay) {
    let mut receiver = start_receiver(relay.addr, path);
    relay.wait_metric(WAITING, 1.0);
    let mut sender = sender(relay.addr, path, "Transfer-Encoding: chunked\r\n");
    sender.wait_for("[INFO] Start sending to 1 receiver(s)!\n\r\n");
    sender.write_all(b"5\r\nhello\r\n").unwrap();
    sender.write_all(bad).unwrap();

    let r = parse_response(&read_to_end(&mut receiver));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    assert!(!r.complete, "a cut must not look complete: {:?}", r.text());
    assert!(b"hello".starts_with(&r.body), "{:?}", r.text());

    let s = sender.finish();
    let l = lines(&s);
    assert_eq!(
        l.last().map(String::as_str),
        Some(expected),
        "sender's lines: {l:?}"
    );
    relay.wait_metric(CUT, 1.0);
    drop((sender, receiver));
}

#[test]
fn chunk_size_of_17_hex_digits_cuts_the_transfer() {
    let relay = Relay::start();
    chunked_pipe_is_cut(
        "/chunk-17",
        b"10000000000000000\r\nx\r\n",
        "[ERROR] Bad chunked body: The chunk size has more than 16 hex digits.",
        &relay,
    );
    still_fine(&relay);
}

#[test]
fn chunk_size_with_leading_zeros_past_16_digits_cuts_the_transfer() {
    // Small in value, but 17 digits: the digit cap is the overflow check.
    let relay = Relay::start();
    chunked_pipe_is_cut(
        "/chunk-zeros",
        b"00000000000000001\r\nx\r\n",
        "[ERROR] Bad chunked body: The chunk size has more than 16 hex digits.",
        &relay,
    );
    still_fine(&relay);
}

#[test]
fn chunk_size_that_is_not_hex_cuts_the_transfer() {
    let relay = Relay::start();
    chunked_pipe_is_cut(
        "/chunk-nothex",
        b"zz\r\nxx\r\n",
        "[ERROR] Bad chunked body: The chunk size is not a plain hex number.",
        &relay,
    );
    still_fine(&relay);
}

#[test]
fn negative_chunk_size_cuts_the_transfer() {
    let relay = Relay::start();
    chunked_pipe_is_cut(
        "/chunk-neg",
        b"-5\r\nhello\r\n",
        "[ERROR] Bad chunked body: The chunk size is not a plain hex number.",
        &relay,
    );
    still_fine(&relay);
}

#[test]
fn chunk_size_with_0x_prefix_cuts_the_transfer() {
    let relay = Relay::start();
    chunked_pipe_is_cut(
        "/chunk-0x",
        b"0x5\r\nhello\r\n",
        "[ERROR] Bad chunked body: The chunk size is not a plain hex number.",
        &relay,
    );
    still_fine(&relay);
}

#[test]
fn chunk_size_line_ended_by_a_bare_lf_cuts_the_transfer() {
    let relay = Relay::start();
    chunked_pipe_is_cut(
        "/chunk-lf",
        b"5\nhello\r\n",
        "[ERROR] Bad chunked body: The chunked body has a line not ended by CRLF.",
        &relay,
    );
    still_fine(&relay);
}

#[test]
fn chunk_data_longer_than_its_size_cuts_the_transfer() {
    let relay = Relay::start();
    chunked_pipe_is_cut(
        "/chunk-long",
        b"3\r\nhello\r\n",
        "[ERROR] Bad chunked body: The chunk data is not followed by CRLF.",
        &relay,
    );
    still_fine(&relay);
}

#[test]
fn huge_chunk_size_is_cut_at_the_upload_limit() {
    // Sixteen hex digits is a legal size (2^64 - 1): the decoder takes it,
    // and the upload limit, counted on decoded bytes, ends it.
    const LIMIT: u64 = 64 << 10;
    let relay = Relay::with(|c| c.max_upload_bytes = LIMIT);
    let mut receiver = start_receiver(relay.addr, "/chunk-huge");
    relay.wait_metric(WAITING, 1.0);
    let mut sender = sender(relay.addr, "/chunk-huge", "Transfer-Encoding: chunked\r\n");
    sender.wait_for("[INFO] Start sending to 1 receiver(s)!\n\r\n");
    sender.write_all(b"ffffffffffffffff\r\n").unwrap();
    let body = pattern(100 << 10, 31);
    // The relay stops reading at the limit and drains the rest while it
    // closes; a write may fail once it has.
    let _ = sender.write_all(&body);

    let r = parse_response(&read_to_end(&mut receiver));
    assert_eq!(r.status, 200);
    assert!(!r.complete, "a cut must not look complete");
    assert!(r.body.len() as u64 <= LIMIT, "{} bytes", r.body.len());
    assert_eq!(r.body, body[..r.body.len()]);

    let s = sender.finish();
    assert_eq!(
        lines(&s).last().map(String::as_str),
        Some("[ERROR] The upload passed the limit of 65536 bytes; the transfer was cut.")
    );
    relay.wait_metric(CUT, 1.0);
    drop((sender, receiver));
    still_fine(&relay);
}

// --- Content-Length ------------------------------------------------------------

#[test]
fn overflowing_content_length_is_400() {
    let relay = Relay::start();
    for value in [
        "18446744073709551616",       // u64::MAX + 1
        "99999999999999999999999999", // far past it
        "18446744073709551615",       // u64::MAX, but 20 digits
    ] {
        let req = format!("PUT /cl-big HTTP/1.1\r\nHost: t\r\nContent-Length: {value}\r\n\r\nabc");
        let text = refused(relay.addr, req.as_bytes(), 400);
        assert!(text.contains("Content-Length"), "{value}: {text:?}");
    }
    assert_eq!(relay.metric(WAITING), 0.0);
    still_fine(&relay);
}

#[test]
fn negative_content_length_is_400() {
    let relay = Relay::start();
    for value in ["-1", "-0", "+5", "0x10", "1e3", "5 5", ""] {
        let req = format!("PUT /cl-neg HTTP/1.1\r\nHost: t\r\nContent-Length: {value}\r\n\r\nabc");
        let text = refused(relay.addr, req.as_bytes(), 400);
        assert!(text.contains("Content-Length"), "{value:?}: {text:?}");
    }
    assert_eq!(relay.metric(WAITING), 0.0);
    still_fine(&relay);
}

#[test]
fn largest_fitting_content_length_is_413_not_a_crash() {
    // 19 digits fit in 64 bits: a number, just far over the upload limit.
    let relay = Relay::start();
    let text = refused(
        relay.addr,
        b"PUT /cl-max HTTP/1.1\r\nHost: t\r\nContent-Length: 9999999999999999999\r\n\r\n",
        413,
    );
    assert!(text.contains("1073741824"), "{text:?}");
    still_fine(&relay);
}

// --- The request target --------------------------------------------------------

#[test]
fn nul_and_control_bytes_in_the_target_are_400() {
    let relay = Relay::start();
    for ctl in [0x00u8, 0x01, 0x08, 0x0b, 0x0c, 0x1b, 0x7f, b'\r'] {
        let mut req = b"GET /a".to_vec();
        req.push(ctl);
        req.extend_from_slice(b"b HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut s = connect(relay.addr);
        s.write_all(&req).unwrap();
        let (raw, err) = read_until_closed(&mut s, DEADLINE);
        assert!(err.is_none(), "byte {ctl:#04x}: {err:?}");
        let r = parse_response(&raw);
        assert_error(&r, 400);
        assert_eq!(r.header("Connection"), Some("close"), "byte {ctl:#04x}");
    }
    assert_eq!(relay.metric(WAITING), 0.0);
    still_fine(&relay);
}

#[test]
fn nul_in_a_header_value_is_400() {
    let relay = Relay::start();
    refused(
        relay.addr,
        b"GET /x HTTP/1.1\r\nHost: t\r\nX-Evil: a\x00b\r\n\r\n",
        400,
    );
    still_fine(&relay);
}

#[test]
fn invalid_utf8_in_the_path_is_400() {
    let relay = Relay::start();
    for bad in [
        &b"/\xff\xfe"[..],
        b"/caf\xc3",      // truncated sequence
        b"/\xc3\x28",     // bad continuation
        b"/\xed\xa0\x80", // surrogate
        b"/\xc0\xaf",     // overlong '/'
        b"/ok?q=\xff",    // in the query
    ] {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(bad);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut s = connect(relay.addr);
        s.write_all(&req).unwrap();
        let (raw, err) = read_until_closed(&mut s, DEADLINE);
        assert!(err.is_none(), "{bad:?}: {err:?}");
        let r = parse_response(&raw);
        assert_error(&r, 400);
    }
    assert_eq!(relay.metric(WAITING), 0.0);
    still_fine(&relay);
}

#[test]
fn percent_encoded_invalid_utf8_is_a_plain_path() {
    // Paths are compared as sent, never decoded: `%FF` is just three bytes.
    let relay = Relay::start();
    let mut receiver = start_receiver(relay.addr, "/%FF%C3%28");
    relay.wait_metric(WAITING, 1.0);
    let r = exchange(
        relay.addr,
        b"PUT /%FF%C3%28 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok",
    );
    assert_eq!(r.status, 200);
    let got = parse_response(&read_to_end(&mut receiver));
    assert_eq!(got.body, b"ok");
    drop(receiver);
    still_fine(&relay);
}

// --- Request smuggling shapes --------------------------------------------------

/// A body that, if it were read as the next request, would be answered.
const SMUGGLED: &str = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn content_length_with_transfer_encoding_is_400() {
    let relay = Relay::start();
    for order in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
    ] {
        let req = format!("PUT /smuggle HTTP/1.1\r\nHost: t\r\n{order}\r\n0\r\n\r\n{SMUGGLED}");
        let text = refused(relay.addr, req.as_bytes(), 400);
        assert!(text.contains("Transfer-Encoding"), "{text:?}");
    }
    assert_eq!(relay.metric(WAITING), 0.0);
    still_fine(&relay);
}

#[test]
fn two_different_content_lengths_are_400() {
    let relay = Relay::start();
    for lengths in [
        "Content-Length: 5\r\nContent-Length: 40\r\n",
        "Content-Length: 5, 40\r\n",
        "Content-Length: 40\r\nContent-Length: 5, 5\r\n",
    ] {
        let req = format!("PUT /two-cl HTTP/1.1\r\nHost: t\r\n{lengths}\r\nhello{SMUGGLED}");
        let text = refused(relay.addr, req.as_bytes(), 400);
        assert!(text.contains("Content-Length"), "{lengths:?}: {text:?}");
    }
    assert_eq!(relay.metric(WAITING), 0.0);
    still_fine(&relay);
}

#[test]
fn identical_repeated_content_lengths_are_accepted() {
    // RFC 9110 §8.6 allows a list of identical values.
    let relay = Relay::start();
    let mut receiver = start_receiver(relay.addr, "/same-cl");
    relay.wait_metric(WAITING, 1.0);
    let r = exchange(
        relay.addr,
        b"PUT /same-cl HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 200);
    assert_eq!(parse_response(&read_to_end(&mut receiver)).body, b"hello");
    drop(receiver);
    still_fine(&relay);
}

#[test]
fn obs_fold_is_400() {
    let relay = Relay::start();
    for fold in [
        "X-Folded: a\r\n b\r\n",
        "X-Folded: a\r\n\tb\r\n",
        "Transfer-Encoding: identity\r\n chunked\r\n",
    ] {
        let req = format!("PUT /fold HTTP/1.1\r\nHost: t\r\n{fold}Content-Length: 0\r\n\r\n");
        refused(relay.addr, req.as_bytes(), 400);
    }
    assert_eq!(relay.metric(WAITING), 0.0);
    still_fine(&relay);
}

#[test]
fn transfer_encoding_other_than_chunked_is_501() {
    let relay = Relay::start();
    for te in [
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: identity\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: chunked, gzip\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: xchunked\r\n",
    ] {
        let req = format!("PUT /te HTTP/1.1\r\nHost: t\r\n{te}\r\n0\r\n\r\n{SMUGGLED}");
        let text = refused(relay.addr, req.as_bytes(), 501);
        assert!(text.contains("chunked"), "{te:?}: {text:?}");
    }
    assert_eq!(relay.metric(WAITING), 0.0);
    still_fine(&relay);
}

#[test]
fn transfer_encoding_in_http10_is_400() {
    let relay = Relay::start();
    let req =
        format!("PUT /te10 HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}");
    refused(relay.addr, req.as_bytes(), 400);
    still_fine(&relay);
}

#[test]
fn whitespace_before_the_header_colon_is_400() {
    // `Transfer-Encoding : chunked` is how some proxies are fooled.
    let relay = Relay::start();
    let req = format!(
        "PUT /ws-colon HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
    );
    refused(relay.addr, req.as_bytes(), 400);
    still_fine(&relay);
}

#[test]
fn two_host_headers_are_400() {
    let relay = Relay::start();
    refused(
        relay.addr,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
    );
    still_fine(&relay);
}

// --- Bytes after a pipe's body -------------------------------------------------

/// Everything after `Content-Length` bytes is not a request: the receiver
/// gets exactly the body and no second response is written to the sender.
#[test]
fn pipelined_bytes_after_a_content_length_body_are_not_served() {
    let relay = Relay::start();
    let mut receiver = start_receiver(relay.addr, "/after-cl");
    relay.wait_metric(WAITING, 1.0);
    let before = relay.metric(REQUESTS);
    let mut s = connect(relay.addr);
    let mut req = b"PUT /after-cl HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    req.extend_from_slice(SMUGGLED.as_bytes());
    req.extend_from_slice(b"PUT /after-cl HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nbad");
    s.write_all(&req).unwrap();

    let got = parse_response(&read_to_end(&mut receiver));
    assert_eq!(got.status, 200);
    assert!(got.complete);
    assert_eq!(got.body, b"hello");

    let (raw, err) = read_until_closed(&mut s, DEADLINE);
    assert!(
        err.is_none(),
        "the sender's answer was cut by a reset: {err:?}"
    );
    assert_eq!(status_lines(&raw), 1, "{:?}", String::from_utf8_lossy(&raw));
    let r = parse_response(&raw);
    assert_eq!(
        lines(&r).last().map(String::as_str),
        Some("[INFO] Sent successfully! (5 bytes)")
    );
    // One head parsed on that connection (plus the one scrape after `before`).
    assert_eq!(relay.metric(REQUESTS), before + 2.0);
    drop((s, receiver));
    still_fine(&relay);
}

#[test]
fn pipelined_bytes_after_a_chunked_body_are_not_served() {
    let relay = Relay::start();
    let mut s = connect(relay.addr);
    // Sender first this time: the extra bytes arrive while it is parked.
    let mut req = b"PUT /after-ch HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        .to_vec();
    req.extend_from_slice(SMUGGLED.as_bytes());
    s.write_all(&req).unwrap();
    relay.wait_metric(WAITING, 1.0);
    let before = relay.metric(REQUESTS);

    let got = get(relay.addr, "/after-ch");
    assert_eq!(got.status, 200);
    assert!(got.complete);
    assert_eq!(got.body, b"abcde");

    let (raw, err) = read_until_closed(&mut s, DEADLINE);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(status_lines(&raw), 1, "{:?}", String::from_utf8_lossy(&raw));
    let r = parse_response(&raw);
    assert_eq!(
        lines(&r).last().map(String::as_str),
        Some("[INFO] Sent successfully! (5 bytes)")
    );
    // The receiver's GET and one scrape: the smuggled GET was never parsed.
    assert_eq!(relay.metric(REQUESTS), before + 2.0);
    drop(s);
    still_fine(&relay);
}

#[test]
fn pipelined_request_after_a_receivers_get_is_not_served() {
    let relay = Relay::start();
    let mut receiver = connect(relay.addr);
    let get_then_more = format!("GET /after-get HTTP/1.1\r\nHost: t\r\n\r\n{SMUGGLED}");
    receiver.write_all(get_then_more.as_bytes()).unwrap();
    relay.wait_metric(WAITING, 1.0);
    let r = exchange(
        relay.addr,
        b"PUT /after-get HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody",
    );
    assert_eq!(r.status, 200);
    let (raw, err) = read_until_closed(&mut receiver, DEADLINE);
    assert!(err.is_none(), "{err:?}");
    let got = parse_response(&raw);
    assert!(got.complete);
    assert_eq!(got.body, b"body", "exactly the body, nothing after it");
    drop(receiver);
    still_fine(&relay);
}

// --- Other protocols on the plain port -----------------------------------------

#[test]
fn http2_prior_knowledge_preface_is_505() {
    let relay = Relay::start();
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // An empty SETTINGS frame, as an h2c client sends right after.
    preface.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let text = refused(relay.addr, &preface, 505);
    assert!(text.contains("HTTP/2"), "{text:?}");
    still_fine(&relay);
}

/// A TLS 1.2/1.3 ClientHello record, as a browser sends to `https://` on
/// the plain port.
fn client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x03]; // client_version
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(32); // session id
    hello.extend_from_slice(&[0x11; 32]);
    hello.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0x13, 0x02]); // ciphers
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
    let sni = b"relay.example";
    let mut ext = Vec::new();
    ext.extend_from_slice(&[0x00, 0x00]); // server_name
    let list_len = sni.len() + 3;
    ext.extend_from_slice(&((list_len + 2) as u16).to_be_bytes());
    ext.extend_from_slice(&(list_len as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    ext.extend_from_slice(sni);
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend_from_slice(&ext);
    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[test]
fn tls_client_hello_is_400() {
    let relay = Relay::start();
    let text = refused(relay.addr, &client_hello(), 400);
    assert!(text.contains("TLS"), "{text:?}");
    // The first byte alone is enough to tell.
    let text = refused(relay.addr, &client_hello()[..5], 400);
    assert!(text.contains("TLS"), "{text:?}");
    still_fine(&relay);
}

// --- Half-closed clients -------------------------------------------------------

#[test]
fn a_request_followed_by_a_half_close_is_still_answered() {
    let relay = Relay::start();
    let mut s = relay.connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    half_close(&s);
    let (raw, err) = read_until_closed(&mut s, DEADLINE);
    assert!(err.is_none(), "{err:?}");
    let r = parse_response(&raw);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"ok\n");
    drop(s);
    still_fine(&relay);
}

#[test]
fn a_half_close_inside_the_head_is_400() {
    let relay = Relay::start();
    let mut s = relay.connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost:").unwrap();
    half_close(&s);
    let (raw, err) = read_until_closed(&mut s, DEADLINE);
    assert!(err.is_none(), "{err:?}");
    let r = parse_response(&raw);
    assert_error(&r, 400);
    drop(s);
    still_fine(&relay);
}

#[test]
fn a_parked_receiver_that_half_closes_is_taken_as_gone() {
    // docs/protocol.md: a receiver must keep its sending side open while it
    // waits; a half-close means it left, and the path is free again.
    let relay = Relay::start();
    let mut receiver = start_receiver(relay.addr, "/half-recv");
    relay.wait_metric(WAITING, 1.0);
    half_close(&receiver);
    relay.wait_metric(WAITING, 0.0);
    relay.wait_metric(ABANDONED, 1.0);
    let (raw, _) = read_until_closed(&mut receiver, DEADLINE);
    assert!(
        raw.is_empty(),
        "no response to a receiver that left: {:?}",
        String::from_utf8_lossy(&raw)
    );
    // A sender now waits for a new receiver instead of sending into the void.
    let mut sender = sender(relay.addr, "/half-recv", "Content-Length: 2\r\n");
    sender.wait_for("[INFO] Waiting for 1 receiver(s)...");
    sender.write_all(b"hi").unwrap();
    let got = get(relay.addr, "/half-recv");
    assert_eq!(got.body, b"hi");
    let s = sender.finish();
    assert_eq!(
        lines(&s).last().map(String::as_str),
        Some("[INFO] Sent successfully! (2 bytes)")
    );
    drop((receiver, sender));
    still_fine(&relay);
}

#[test]
fn a_receiver_that_closes_right_after_its_head_is_noticed() {
    // The head and the FIN can arrive in one read: the relay must still see
    // that the receiver left, not keep it parked until the TTL.
    let relay = Relay::start();
    for i in 0..20 {
        let mut s = relay.connect();
        write!(s, "GET /gone-{i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        drop(s);
    }
    relay.wait_metric(WAITING, 0.0);
    still_fine(&relay);
}

#[test]
fn a_framed_sender_that_half_closes_right_after_its_head_is_noticed() {
    // A sender with a declared length that shuts down its sending side
    // before its body is read has given up (only an HTTP/1.0 sender without
    // a length ends its body that way); as for the receiver above, the FIN
    // may come in the same read as the head.
    let relay = Relay::start();
    let mut held = Vec::new();
    for i in 0..20 {
        let mut s = relay.connect();
        write!(
            s,
            "PUT /half-s-{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"
        )
        .unwrap();
        half_close(&s);
        held.push(s);
    }
    relay.wait_metric(WAITING, 0.0);
    drop(held);
    still_fine(&relay);
}

#[test]
fn a_sender_that_closes_right_after_its_head_is_noticed() {
    let relay = Relay::start();
    for i in 0..20 {
        let mut s = relay.connect();
        write!(
            s,
            "PUT /gone-s-{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"
        )
        .unwrap();
        drop(s);
    }
    relay.wait_metric(WAITING, 0.0);
    still_fine(&relay);
}

#[test]
fn a_streaming_receiver_that_half_closes_is_taken_as_gone() {
    let relay = Relay::start();
    let mut receiver = start_receiver(relay.addr, "/half-stream");
    relay.wait_metric(WAITING, 1.0);
    let mut sender = sender(relay.addr, "/half-stream", "Content-Length: 10\r\n");
    sender.wait_for("[INFO] Start sending to 1 receiver(s)!");
    sender.write_all(b"01234").unwrap();
    relay.wait_metric(STREAMING, 1.0);
    half_close(&receiver);
    // The sender is told, although it has not finished its body.
    sender.wait_for("[ERROR] ");
    let s = sender.finish_lossy();
    let last = lines(&s).last().cloned().unwrap_or_default();
    assert!(last.starts_with("[ERROR] All receivers left"), "{last:?}");
    relay.wait_metric(CUT, 1.0);
    let _ = read_until_closed(&mut receiver, DEADLINE);
    drop((sender, receiver));
    still_fine(&relay);
}
