//! Ephemeral sockets (spec §2): server-assigned IDs, reservations, limits,
//! hooks. Real sockets on 127.0.0.1.

#[path = "../../examples/embed.rs"]
mod embed;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{http::*, net::*, payload::*, pipe::*, relay::*};

/// Open an ephemeral socket with a declared body of `len` bytes; returns
/// the socket (body not yet sent) and the ID from the open line.
fn open(relay: &Relay, len: usize) -> (TcpStream, String, String) {
    let mut s = relay.connect();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: relay.test\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let got = read_until(&mut s, b"\r\n\r\n");
    assert!(got.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"));
    let head = read_until(&mut s, b"\r\n\r\n");
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let text = read_chunks_until(&mut s, "\n", 2);
    let mut lines = text.lines();
    let first = lines.next().unwrap().to_string();
    let id = first
        .strip_prefix("Ephemeral socket open with ID ")
        .unwrap_or_else(|| panic!("open line: {first}"))
        .to_string();
    let url = lines.next().unwrap().to_string();
    (s, id, url)
}

/// Read chunked text until it holds `count` occurrences of `sep`.
fn read_chunks_until(s: &mut TcpStream, sep: &str, count: usize) -> String {
    let mut text = String::new();
    while text.matches(sep).count() < count {
        let size_line = String::from_utf8(read_until(s, b"\r\n")).unwrap();
        let size = usize::from_str_radix(size_line.trim_end(), 16).unwrap();
        assert!(size > 0, "body ended early: {text}");
        let data = read_exact(s, size + 2);
        text.push_str(std::str::from_utf8(&data[..size]).unwrap());
    }
    text
}

#[test]
fn open_line_and_url_arrive_before_any_receiver() {
    let relay = Relay::start();
    let (mut s, id, url) = open(&relay, 5);
    assert_eq!(id.len(), 12);
    assert!(id.bytes().all(|b| weir::ids::ALPHABET.contains(&b)));
    assert_eq!(url, format!("http://relay.test/s/{id}"));
    assert_eq!(relay.metric("weir_pipes{state=\"waiting\"}"), 1.0);
    // Now the receiver comes, and the body is sent.
    let mut r = start_receiver(relay.addr, &format!("/s/{id}"));
    s.write_all(b"hello").unwrap();
    let resp = parse_response(&read_to_end(&mut r));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"hello");
    assert_eq!(resp.header("content-length"), Some("5"));
    let rest = String::from_utf8_lossy(&read_to_end(&mut s)).into_owned();
    let (text, complete) = dechunk(rest.as_bytes());
    assert!(complete);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("Receiver connected."), "{text}");
    assert!(
        text.ends_with("Upload complete. Socket deleted. (5 bytes)\n"),
        "{text}"
    );
    relay.assert_idle();
}

#[test]
fn an_id_has_exactly_one_receiver_and_unknown_ids_are_404_at_once() {
    let relay = Relay::start();
    let (mut s, id, _) = open(&relay, 3);
    let mut r = start_receiver(relay.addr, &format!("/s/{id}"));
    // The first receiver has spent the ID, even before any byte flows.
    relay.wait_metric("weir_pipes{state=\"streaming\"}", 1.0);
    let second = get(relay.addr, &format!("/s/{id}"));
    assert_eq!(second.status, 404);
    assert!(second.text().starts_with("[ERROR] No socket with ID"));
    s.write_all(b"abc").unwrap();
    assert_eq!(parse_response(&read_to_end(&mut r)).body, b"abc");
    read_to_end(&mut s);
    // After the transfer the ID is gone too.
    assert_eq!(get(relay.addr, &format!("/s/{id}")).status, 404);
    let t0 = Instant::now();
    let unknown = get(relay.addr, "/s/AAAAAAAAAAAA");
    assert_eq!(unknown.status, 404);
    assert!(t0.elapsed() < Duration::from_secs(2), "404 must not wait");
    assert_eq!(get(relay.addr, "/s/").status, 404);
    relay.assert_idle();
}

#[test]
fn an_unclaimed_post_times_out_with_its_message() {
    let relay = Relay::with(|c| c.ttl = Duration::from_secs(1));
    let t0 = Instant::now();
    let (mut s, id, _) = open(&relay, 10);
    let rest = read_to_end(&mut s);
    let waited = t0.elapsed();
    let (text, complete) = dechunk(&rest);
    // A sender whose upload went nowhere must be able to tell from curl's
    // exit status: the response ends without its final chunk.
    assert!(
        !complete,
        "a timed-out upload's response must not look complete"
    );
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "Timed out. No one requested your socket.\n"
    );
    assert!(
        waited >= Duration::from_millis(950),
        "expired early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "expired late: {waited:?}");
    assert_eq!(get(relay.addr, &format!("/s/{id}")).status, 404);
    assert_eq!(
        relay.metric("weir_transfers_total{outcome=\"timeout\"}"),
        1.0
    );
    relay.assert_idle();
}

#[test]
fn post_without_a_body_is_411_and_oversized_is_413() {
    let relay = Relay::with(|c| c.max_upload_bytes = 1000);
    let r = exchange(relay.addr, b"POST / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 411);
    let r = exchange(
        relay.addr,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n",
    );
    assert_eq!(r.status, 413);
    assert_eq!(
        r.text(),
        "[ERROR] The upload is larger than the limit of 1000 bytes.\n"
    );
    // Named pipes share the limit.
    let r = exchange(
        relay.addr,
        b"PUT /big HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n",
    );
    assert_eq!(r.status, 413);
    relay.assert_idle();
}

#[test]
fn a_chunked_upload_past_the_limit_is_cut_and_its_receiver_can_tell() {
    let relay = Relay::with(|c| c.max_upload_bytes = 1000);
    let mut s = relay.connect();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    read_until(&mut s, b"\r\n\r\n");
    let text = read_chunks_until(&mut s, "\n", 2);
    let id = text
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let mut r = start_receiver(relay.addr, &format!("/s/{id}"));
    let block = vec![b'x'; 400];
    for _ in 0..4 {
        write!(s, "190\r\n").unwrap();
        s.write_all(&block).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    let got = parse_response(&read_to_end(&mut r));
    assert_eq!(got.status, 200);
    assert!(!got.complete, "a cut transfer must not look complete");
    assert!(got.body.len() <= 1000);
    let tail = String::from_utf8_lossy(&read_to_end(&mut s)).into_owned();
    assert!(
        tail.contains("[ERROR] The upload passed the limit of 1000 bytes"),
        "{tail}"
    );
    relay.wait_metric("weir_transfers_total{outcome=\"cut\"}", 1.0);
    relay.assert_idle();
}

#[test]
fn reservation_flow_with_receiver_first() {
    let relay = Relay::with(|c| c.reservations = true);
    let r = get(relay.addr, "/reserve");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.text();
    let id = body.split('"').nth(3).unwrap().to_string();
    assert!(
        body.contains(&format!("\"upload\": \"http://t/reserve/{id}\"")),
        "{body}"
    );
    assert!(
        body.contains(&format!("\"download\": \"http://t/s/{id}\"")),
        "{body}"
    );
    assert!(body.contains("\"expires_in\": 600"), "{body}");
    // The receiver comes first and waits; the reservation is not lost.
    let mut recv = start_receiver(relay.addr, &format!("/s/{id}"));
    relay.wait_metric("weir_connections", 1.0);
    let mut s = start_sender(
        relay.addr,
        &format!("/reserve/{id}"),
        "Content-Length: 4\r\n",
    );
    s.write_all(b"data").unwrap();
    assert_eq!(parse_response(&read_to_end(&mut recv)).body, b"data");
    read_to_end(&mut s);
    // Used: a second upload or download is 404.
    let again = exchange(
        relay.addr,
        format!("POST /reserve/{id} HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx").as_bytes(),
    );
    assert_eq!(again.status, 404);
    assert_eq!(get(relay.addr, &format!("/s/{id}")).status, 404);
    relay.assert_idle();
}

#[test]
fn a_receiver_that_gives_up_does_not_burn_the_reservation() {
    let relay = Relay::with(|c| c.reservations = true);
    let body = get(relay.addr, "/reserve").text();
    let id = body.split('"').nth(3).unwrap().to_string();
    let first = start_receiver(relay.addr, &format!("/s/{id}"));
    relay.wait_metric("weir_connections", 1.0);
    drop(first);
    relay.wait_metric("weir_connections", 0.0);
    let mut recv = start_receiver(relay.addr, &format!("/s/{id}"));
    relay.wait_metric("weir_connections", 1.0);
    let mut s = start_sender(
        relay.addr,
        &format!("/reserve/{id}"),
        "Content-Length: 2\r\n",
    );
    s.write_all(b"ok").unwrap();
    assert_eq!(parse_response(&read_to_end(&mut recv)).body, b"ok");
    read_to_end(&mut s);
    relay.assert_idle();
}

#[test]
fn reservation_deadline_counts_from_get_reserve_and_is_not_reset() {
    let relay = Relay::with(|c| {
        c.reservations = true;
        c.ttl = Duration::from_secs(2);
    });
    let t0 = Instant::now();
    let body = get(relay.addr, "/reserve").text();
    let id = body.split('"').nth(3).unwrap().to_string();
    // Upload after half the TTL: its wait still ends at t0 + 2 s.
    let waiting = start_receiver(relay.addr, "/sync-probe");
    relay.wait_metric("weir_connections", 1.0);
    drop(waiting);
    while t0.elapsed() < Duration::from_millis(1000) {
        // Poll the relay rather than sleep: a metrics scrape is a read.
        relay.metrics();
    }
    let mut s = start_sender(
        relay.addr,
        &format!("/reserve/{id}"),
        "Content-Length: 3\r\n",
    );
    let raw = read_to_end(&mut s);
    let elapsed = t0.elapsed();
    let resp = parse_response(&raw);
    // The upload is told its ID and URL first, as a POST / would be.
    let text = resp.text();
    assert!(
        text.starts_with(&format!("Ephemeral socket open with ID {id}\n")),
        "{text}"
    );
    assert!(
        text.ends_with("\nTimed out. No one requested your socket.\n"),
        "{text}"
    );
    assert!(elapsed >= Duration::from_millis(1950), "early: {elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(2900),
        "reset or late: {elapsed:?}"
    );
    // An unused reservation vanishes at its deadline.
    let body = get(relay.addr, "/reserve").text();
    let id2 = body.split('"').nth(3).unwrap().to_string();
    let mut recv = start_receiver(relay.addr, &format!("/s/{id2}"));
    let resp = parse_response(&read_to_end(&mut recv));
    assert_eq!(resp.status, 404);
    let late = exchange(
        relay.addr,
        format!("POST /reserve/{id2} HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx").as_bytes(),
    );
    assert_eq!(late.status, 404);
    relay.assert_idle();
}

#[test]
fn reservations_are_off_by_default() {
    let relay = Relay::start();
    assert_eq!(get(relay.addr, "/reserve").status, 404);
    relay.assert_idle();
}

#[test]
fn required_referer_match_and_mismatch() {
    let relay = Relay::with(|c| {
        c.reservations = true;
        c.required_referer = Some("https://app.example/share".into());
    });
    let ask = |extra: &str| {
        exchange(
            relay.addr,
            format!("GET /reserve HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    assert_eq!(
        ask("Referer: https://app.example/share/page\r\n").status,
        200
    );
    assert_eq!(ask("Origin: https://app.example\r\n").status, 200);
    let no = ask("Referer: https://evil.example/share\r\n");
    assert_eq!(no.status, 403);
    assert!(no.text().starts_with("[ERROR] "));
    assert_eq!(ask("").status, 403);
    assert_eq!(ask("Referer: https://app.example/sharex\r\n").status, 403);
    // The two reservations made wait for uploads until their deadline.
    relay.wait_metric("weir_pipes{state=\"waiting\"}", 2.0);
    relay.wait_metric("weir_connections", 0.0);
}

#[test]
fn trust_proxy_builds_urls_from_forwarded_headers() {
    let relay = Relay::with(|c| c.trust_proxy = true);
    let mut s = relay.connect();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: inner:8080\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: relay.example\r\nContent-Length: 1\r\n\r\n"
    )
    .unwrap();
    read_until(&mut s, b"\r\n\r\n");
    let text = read_chunks_until(&mut s, "\n", 2);
    assert!(text.contains("\nhttps://relay.example/s/"), "{text}");
    drop(s);
    relay.assert_idle();
}

#[test]
fn the_embed_example_rewords_and_observes() {
    let (tx, rx) = std::sync::mpsc::channel();
    let relay = Relay::with_hooks(
        |c| c.reservations = true,
        Some(Box::new(embed::Announcer::new(tx))),
    );
    let mut s = relay.connect();
    let payload = pattern(3 << 20, 7);
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    )
    .unwrap();
    read_until(&mut s, b"\r\n\r\n");
    let text = read_chunks_until(&mut s, "\n", 2);
    assert!(
        text.starts_with("Your upload waits for its reader at:\nhttp://h/s/"),
        "{text}"
    );
    let id = text.trim_end().rsplit('/').next().unwrap().to_string();
    let mut r = start_receiver(relay.addr, &format!("/s/{id}"));
    let writer = {
        let mut s2 = s.try_clone().unwrap();
        std::thread::spawn(move || s2.write_all(&payload).unwrap())
    };
    let mut resp = Vec::new();
    r.read_to_end(&mut resp).unwrap();
    writer.join().unwrap();
    let resp = parse_response(&resp);
    assert_eq!(hash(&resp.body), hash(&pattern(3 << 20, 7)));
    let tail = String::from_utf8(dechunk(&read_to_end(&mut s)).0).unwrap();
    assert!(tail.contains("Someone is reading it now."), "{tail}");
    assert!(
        tail.contains(&format!("Delivered {} bytes in", 3 << 20)),
        "{tail}"
    );
    let log: Vec<String> = rx.try_iter().collect();
    assert_eq!(
        log.first().map(String::as_str),
        Some(format!("opened {id}").as_str())
    );
    assert!(log.contains(&format!("connected {id}")), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with(&format!("progress {id} "))),
        "{log:?}"
    );
    assert_eq!(log.last(), Some(&format!("end {id} {}", 3 << 20)));
    relay.assert_idle();
}

/// `--instance w7`: every ID the relay makes for a URL starts with `w7-`
/// (a fleet's balancer routes it by that prefix, docs/scale-out.md), and
/// the prefixed IDs work as any other.
#[test]
fn instance_prefixes_every_server_made_id() {
    let relay = Relay::with(|c| {
        c.reservations = true;
        c.instance = Some("w7".into());
    });
    let (mut s, id, url) = open(&relay, 4);
    assert!(id.starts_with("w7-") && id.len() == 3 + 12, "{id}");
    assert!(url.ends_with(&format!("/s/{id}")), "{url}");
    let mut recv = start_receiver(relay.addr, &format!("/s/{id}"));
    s.write_all(b"data").unwrap();
    assert_eq!(parse_response(&read_to_end(&mut recv)).body, b"data");
    read_to_end(&mut s);

    let body = get(relay.addr, "/reserve").text();
    let id = body.split('"').nth(3).unwrap().to_string();
    assert!(id.starts_with("w7-"), "{body}");
    assert!(body.contains(&format!("/reserve/{id}\"")), "{body}");

    let mut swarm = crate::support::sse::SseClient::open(relay.addr, "/signal");
    let ev = swarm.next_event().expect("connect");
    assert!(ev.data.starts_with("{\"id\":\"w7-"), "{}", ev.data);
    let swarm_id = ev.data.split('"').nth(3).unwrap().to_string();
    let mut peer = crate::support::sse::SseClient::open(relay.addr, &format!("/signal/{swarm_id}"));
    assert_eq!(peer.status, 200);
    assert_eq!(peer.next_event().unwrap().event.as_deref(), Some("connect"));
    drop((swarm, peer));
    relay.wait_metric("weir_swarms", 0.0);
}
