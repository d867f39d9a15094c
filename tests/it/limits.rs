//! Error statuses and the short answers: every refusal is a status, plain
//! UTF-8 text and one `[ERROR] ` line; reserved paths, preflight and
//! keep-alive behave as a browser or curl expects.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::{http::*, net::*, pipe::*, relay::*, DEADLINE};

const WAITING: &str = "weir_pipes{state=\"waiting\"}";
const STREAMING: &str = "weir_pipes{state=\"streaming\"}";
const REQUESTS: &str = "weir_requests_total";

// --- Malformed or oversized heads -------------------------------------------

#[test]
fn malformed_head_is_400() {
    let relay = Relay::start();
    let r = exchange(relay.addr, b"GET /x HTTP/1.1\r\nHost t\r\n\r\n");
    assert_error(&r, 400);
    let r = exchange(relay.addr, b"NOT HTTP AT ALL\r\n\r\n");
    assert_error(&r, 400);
    relay.assert_idle();
}

#[test]
fn unknown_method_is_405_with_allow() {
    let relay = Relay::start();
    let r = exchange(
        relay.addr,
        b"DELETE /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_error(&r, 405);
    let allow = r.header("Allow").expect("Allow header");
    for m in ["GET", "PUT", "POST"] {
        assert!(allow.split(", ").any(|a| a == m), "{allow}");
    }
    assert!(!allow.contains("DELETE"), "{allow}");
    relay.assert_idle();
}

#[test]
fn head_timeout_is_408_then_close() {
    let relay = Relay::with(|c| c.head_timeout = Duration::from_secs(1));
    let started = Instant::now();
    let mut s = relay.connect();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n").unwrap();
    // `read_to_end` returns only when the relay closes.
    let r = parse_response(&read_to_end(&mut s));
    assert!(started.elapsed() >= Duration::from_secs(1), "not early");
    assert_error(&r, 408);
    assert_eq!(r.header("Connection"), Some("close"));
    drop(s);
    relay.assert_idle();
}

#[test]
fn long_target_is_414() {
    let relay = Relay::start();
    let req = format!(
        "GET /{} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "a".repeat(5 << 10)
    );
    assert_error(&exchange(relay.addr, req.as_bytes()), 414);
    assert_eq!(relay.metric(WAITING), 0.0);
    relay.assert_idle();
}

#[test]
fn large_head_is_431() {
    let relay = Relay::start();
    // Few headers, long values: the byte limit, not the header count.
    let mut req = String::from("GET /big-head HTTP/1.1\r\nHost: t\r\n");
    for i in 0..5 {
        req.push_str(&format!("X-Filler-{i}: {}\r\n", "v".repeat(3500)));
    }
    req.push_str("\r\n");
    assert!(req.len() > 17 << 10);
    assert_error(&exchange(relay.addr, req.as_bytes()), 431);
    relay.assert_idle();
}

#[test]
fn service_worker_get_is_400() {
    let relay = Relay::start();
    let r = exchange(
        relay.addr,
        b"GET /sw.js HTTP/1.1\r\nHost: t\r\nService-Worker: script\r\nConnection: close\r\n\r\n",
    );
    assert_error(&r, 400);
    assert!(r.text().contains("Service-Worker"), "{:?}", r.text());
    // It did not park as a receiver.
    assert_eq!(relay.metric(WAITING), 0.0);
    relay.assert_idle();
}

#[test]
fn declared_length_over_the_limit_is_413() {
    let relay = Relay::with(|c| c.max_upload_bytes = 1000);
    let r = exchange(
        relay.addr,
        b"PUT /too-big HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n",
    );
    assert_error(&r, 413);
    assert!(r.text().contains("1000"), "{:?}", r.text());
    assert_eq!(relay.metric(WAITING), 0.0);
    // At the limit is allowed: it parks.
    let mut s = start_sender(relay.addr, "/fits", "Content-Length: 1000\r\n");
    read_until(&mut s, b"Waiting for 1 receiver(s)");
    assert_eq!(relay.metric(WAITING), 1.0);
    drop(s);
    relay.assert_idle();
}

// --- 409 Conflict -------------------------------------------------------------

#[test]
fn second_sender_on_a_waiting_path_is_409() {
    let relay = Relay::start();
    let mut first = start_sender(relay.addr, "/twice", "Content-Length: 2\r\n");
    read_until(&mut first, b"Waiting for 1 receiver(s)");
    let r = exchange(
        relay.addr,
        b"PUT /twice HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nzz",
    );
    assert_error(&r, 409);
    // The first sender still owns the path.
    first.write_all(b"ok").unwrap();
    let got = get(relay.addr, "/twice");
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"ok");
    let rest = String::from_utf8(read_to_end(&mut first)).unwrap();
    assert!(
        rest.contains("[INFO] Sent successfully! (2 bytes)"),
        "{rest:?}"
    );
    drop(first);
    relay.assert_idle();
}

#[test]
fn third_party_on_a_running_path_is_409() {
    let relay = Relay::start();
    let mut receiver = start_receiver(relay.addr, "/busy");
    relay.wait_metric(WAITING, 1.0);
    let mut sender = start_sender(relay.addr, "/busy", "Content-Length: 10\r\n");
    sender.write_all(b"01234").unwrap();
    relay.wait_metric(STREAMING, 1.0);
    assert_error(&get(relay.addr, "/busy"), 409);
    let r = exchange(
        relay.addr,
        b"PUT /busy HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_error(&r, 409);
    // The running transfer is not disturbed.
    sender.write_all(b"56789").unwrap();
    let r = parse_response(&read_to_end(&mut receiver));
    assert_eq!(r.body, b"0123456789");
    let s = parse_response(&read_to_end(&mut sender));
    assert_eq!(
        lines(&s).last().map(String::as_str),
        Some("[INFO] Sent successfully! (10 bytes)")
    );
    drop((sender, receiver));
    relay.assert_idle();
}

#[test]
fn receiver_beyond_n_is_409() {
    let relay = Relay::start();
    let a = start_receiver(relay.addr, "/pair?n=2");
    relay.wait_metric(WAITING, 1.0);
    let mark = relay.metric(REQUESTS);
    let b = start_receiver(relay.addr, "/pair?n=2");
    wait_heads_parsed(&relay, mark, 1);
    let r = get(relay.addr, "/pair?n=2");
    assert_error(&r, 409);
    assert_eq!(relay.metric(WAITING), 1.0);
    drop((a, b));
    relay.assert_idle();
}

/// Wait until the relay has parsed `n` request heads besides the scrapes'
/// own, counting from `mark` (a `weir_requests_total` read by one scrape).
fn wait_heads_parsed(relay: &Relay, mark: f64, n: u32) {
    let deadline = Instant::now() + DEADLINE;
    let mut scrapes = 0.0;
    loop {
        scrapes += 1.0;
        let now = relay.metric(REQUESTS);
        if now - mark - scrapes >= f64::from(n) {
            return;
        }
        assert!(Instant::now() < deadline, "{n} head(s) not parsed");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// --- Short answers ------------------------------------------------------------

#[test]
fn head_version_has_headers_and_no_body() {
    let relay = Relay::start();
    let mut s = relay.connect();
    s.write_all(b"HEAD /version HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let raw = read_to_end(&mut s);
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        end,
        raw.len(),
        "no body after the head: {:?}",
        String::from_utf8_lossy(&raw)
    );
    let head = String::from_utf8(raw).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    // The length of what GET would send.
    let got = get(relay.addr, "/version");
    assert_eq!(got.body.len(), len);
    assert!(got.text().starts_with("weir "), "{:?}", got.text());
    drop(s);
    relay.assert_idle();
}

#[test]
fn options_preflight_is_204_with_cors_headers() {
    let relay = Relay::start();
    let raw = {
        let mut s = relay.connect();
        s.write_all(
            b"OPTIONS /some/pipe HTTP/1.1\r\nHost: t\r\nOrigin: https://example.test\r\n\
              Access-Control-Request-Method: PUT\r\n\
              Access-Control-Request-Headers: content-type, x-piping, x-custom\r\n\
              Connection: close\r\n\r\n",
        )
        .unwrap();
        read_to_end(&mut s)
    };
    let r = parse_response(&raw);
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    let methods = r.header("Access-Control-Allow-Methods").expect("methods");
    for m in ["GET", "PUT", "POST"] {
        assert!(methods.contains(m), "{methods}");
    }
    assert_eq!(
        r.header("Access-Control-Allow-Headers"),
        Some("content-type, x-piping, x-custom")
    );
    let age: u64 = r
        .header("Access-Control-Max-Age")
        .expect("max age")
        .parse()
        .unwrap();
    assert!(age > 0);
    let expose = r.header("Access-Control-Expose-Headers").expect("expose");
    assert!(expose.contains("Content-Disposition"), "{expose}");
    assert_eq!(relay.metric(WAITING), 0.0);
    relay.assert_idle();
}

#[test]
fn healthz_and_robots_txt() {
    let relay = Relay::start();
    let h = get(relay.addr, "/healthz");
    assert_eq!(h.status, 200);
    assert_eq!(h.body, b"ok\n");
    assert_eq!(h.header("Access-Control-Allow-Origin"), Some("*"));
    let r = get(relay.addr, "/robots.txt");
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").unwrap().starts_with("text/plain"));
    assert!(r.text().contains("Disallow: /"), "{:?}", r.text());
    assert_eq!(relay.metric(WAITING), 0.0);
    relay.assert_idle();
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let relay = Relay::start();
    let mut s = relay.connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let first = read_head(&mut s);
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("Connection"),
        None,
        "HTTP/1.1 default: keep-alive"
    );
    let len: usize = first.header("Content-Length").unwrap().parse().unwrap();
    assert_eq!(read_exact(&mut s, len), b"ok\n");
    // Same socket, second request.
    s.write_all(b"GET /robots.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let second = parse_response(&read_to_end(&mut s));
    assert_eq!(second.status, 200);
    assert!(second.text().contains("Disallow"), "{:?}", second.text());
    assert_eq!(second.header("Connection"), Some("close"));
    drop(s);
    relay.assert_idle();
}
