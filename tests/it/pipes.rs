//! Named pipes over real sockets on 127.0.0.1: pairing in either order,
//! every body framing, fan-out, streaming without buffering, `curl`, parked
//! parties that give up, the wait TTL, and transfers cut from either end.
//!
//! Every scenario ends with `assert_idle`: the relay holds no connection and
//! no pipe once the clients are gone.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{curl::*, fs::*, http::*, net::*, payload::*, pipe::*, relay::*, DEADLINE};

const WAITING: &str = "weir_pipes{state=\"waiting\"}";
const CUT: &str = "weir_transfers_total{outcome=\"cut\"}";

/// Read a sender's whole progress response.
fn sender_response(s: &mut Recorded) -> Response {
    let r = s.finish();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    r
}

fn last_line(r: &Response) -> String {
    lines(r).last().cloned().unwrap_or_default()
}

// --- 1. Either party may come first -----------------------------------------

#[test]
fn sender_first_then_receiver() {
    let relay = Relay::start();
    let body = b"hello, weir";
    let mut sender = sender(
        relay.addr,
        "/order-a",
        &format!("Content-Length: {}\r\n", body.len()),
    );
    sender.wait_for("[INFO] Waiting for 1 receiver(s)...");
    relay.wait_metric(WAITING, 1.0);
    // The body may be written now: TCP holds it until the receiver comes.
    sender.write_all(body).unwrap();

    let mut receiver = start_receiver(relay.addr, "/order-a");
    let r = parse_response(&read_to_end(&mut receiver));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("11"));
    assert_eq!(r.body, body);
    assert!(r.complete);

    let s = sender_response(&mut sender);
    assert_eq!(
        lines(&s),
        [
            "[INFO] Waiting for 1 receiver(s)...",
            "[INFO] 1 receiver(s) connected.",
            "[INFO] Start sending to 1 receiver(s)!",
            "[INFO] Sent successfully! (11 bytes)",
        ]
    );
    assert!(s.complete, "final chunk");
    drop((sender, receiver));
    relay.assert_idle();
}

#[test]
fn receiver_first_then_sender() {
    let relay = Relay::start();
    let mut receiver = start_receiver(relay.addr, "/order-b");
    relay.wait_metric(WAITING, 1.0);

    let body = pattern(10_000, 1);
    let mut sender = sender(
        relay.addr,
        "/order-b",
        &format!("Content-Length: {}\r\n", body.len()),
    );
    sender.write_all(&body).unwrap();
    let r = parse_response(&read_to_end(&mut receiver));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
    assert!(r.complete);

    let s = sender_response(&mut sender);
    let l = lines(&s);
    let connected = l
        .iter()
        .position(|x| x == "[INFO] 1 receiver(s) connected.");
    let start = l
        .iter()
        .position(|x| x == "[INFO] Start sending to 1 receiver(s)!");
    assert!(connected.is_some() && connected < start, "{l:?}");
    assert_eq!(last_line(&s), "[INFO] Sent successfully! (10000 bytes)");
    assert!(s.complete);
    drop((sender, receiver));
    relay.assert_idle();
}

// --- 2. Body framings ------------------------------------------------------

#[test]
fn content_length_body_and_forwarded_headers() {
    let relay = Relay::start();
    let body = pattern(100_000, 2);
    let mut receiver = start_receiver(relay.addr, "/cl");
    relay.wait_metric(WAITING, 1.0);
    let mut sender = sender(
        relay.addr,
        "/cl",
        &format!(
            "Content-Length: {}\r\nContent-Type: application/x-weir\r\n\
             Content-Disposition: attachment; filename=\"a.bin\"\r\n\
             X-Piping: one\r\nX-Piping: two\r\n",
            body.len()
        ),
    );
    sender.write_all(&body).unwrap();
    let r = parse_response(&read_to_end(&mut receiver));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("100000"));
    assert_eq!(r.header("Content-Type"), Some("application/x-weir"));
    assert_eq!(
        r.header("Content-Disposition"),
        Some("attachment; filename=\"a.bin\"")
    );
    let piping: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("x-piping"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(piping, ["one", "two"]);
    assert_eq!(r.header("X-Robots-Tag"), Some("none"));
    assert_eq!(r.header("Transfer-Encoding"), None);
    assert_eq!(hash(&r.body), hash(&body));
    assert!(r.complete);
    let s = sender_response(&mut sender);
    assert_eq!(last_line(&s), "[INFO] Sent successfully! (100000 bytes)");
    drop((sender, receiver));
    relay.assert_idle();
}

#[test]
fn chunked_body_with_chunks_of_several_sizes() {
    let relay = Relay::start();
    let mut receiver = start_receiver(relay.addr, "/chunked");
    relay.wait_metric(WAITING, 1.0);
    let mut sender = sender(relay.addr, "/chunked", "Transfer-Encoding: chunked\r\n");
    let sizes = [1usize, 2, 15, 16, 255, 4096, 65_536, 70_001, 3];
    let body = pattern(sizes.iter().sum(), 3);
    let mut wire = Vec::new();
    let mut at = 0;
    for (i, &n) in sizes.iter().enumerate() {
        // Upper and lower case hex, and one chunk extension.
        if i % 2 == 0 {
            write!(wire, "{n:x}\r\n").unwrap();
        } else {
            write!(wire, "{n:X};name=value\r\n").unwrap();
        }
        wire.extend_from_slice(&body[at..at + n]);
        wire.extend_from_slice(b"\r\n");
        at += n;
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    sender.write_all(&wire).unwrap();

    let r = parse_response(&read_to_end(&mut receiver));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(r.header("Content-Length"), None);
    assert!(r.complete, "final chunk");
    assert_eq!(r.body.len(), body.len());
    assert_eq!(hash(&r.body), hash(&body));
    let s = sender_response(&mut sender);
    assert_eq!(
        last_line(&s),
        format!("[INFO] Sent successfully! ({} bytes)", body.len())
    );
    drop((sender, receiver));
    relay.assert_idle();
}

#[test]
fn http10_sender_body_ends_at_half_close() {
    let relay = Relay::start();
    let body = pattern(50_000, 4);
    let mut sender = connect(relay.addr);
    sender.write_all(b"PUT /ten HTTP/1.0\r\n\r\n").unwrap();
    sender.write_all(&body).unwrap();
    // The body ends here: no Content-Length, HTTP/1.0, half-closed while
    // still parked. The relay must not take that for a sender leaving.
    half_close(&sender);
    relay.wait_metric(WAITING, 1.0);

    let mut receiver = start_receiver(relay.addr, "/ten");
    let r = parse_response(&read_to_end(&mut receiver));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    assert!(r.complete, "final chunk");
    assert_eq!(r.body, body);

    // HTTP/1.0 progress lines are delimited by close, not chunked.
    let raw = read_to_end(&mut sender);
    let s = parse_response(&raw);
    assert!(raw.starts_with(b"HTTP/1.0 200"), "{:?}", s.text());
    assert_eq!(s.header("Transfer-Encoding"), None);
    assert_eq!(last_line(&s), "[INFO] Sent successfully! (50000 bytes)");
    drop((sender, receiver));
    relay.assert_idle();
}

#[test]
fn multipart_from_curl_forwards_the_file_part_only() {
    let relay = Relay::start();
    // File bytes that look like the start of a boundary line, too.
    let mut contents = pattern(200_000, 5);
    contents.extend_from_slice(b"\r\n--not-the-boundary\r\n\r\n--");
    contents.extend_from_slice(&pattern(1000, 6));
    let file = TempFile::new("report.txt", &contents);

    let mut receiver = start_receiver(relay.addr, "/form");
    relay.wait_metric(WAITING, 1.0);
    let form = format!("file=@{};type=text/x-test", file.path_str());
    let (status, out, err) = curl(&["-sS", "-F", &form, &relay.url("/form")]);
    assert!(status.success(), "curl: {err}");
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.lines().last()
            == Some(&format!("[INFO] Sent successfully! ({} bytes)", contents.len())[..]),
        "{out:?}"
    );

    let r = parse_response(&read_to_end(&mut receiver));
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert_eq!(r.header("Content-Type"), Some("text/x-test"));
    assert_eq!(
        r.header("Content-Disposition"),
        Some("attachment; filename=\"report.txt\"")
    );
    assert_eq!(r.body.len(), contents.len());
    assert_eq!(hash(&r.body), hash(&contents));
    drop(receiver);
    relay.assert_idle();
}

// --- 3. Sizes --------------------------------------------------------------

#[test]
fn empty_body_content_length_zero() {
    let relay = Relay::start();
    let mut sender = sender(relay.addr, "/empty", "Content-Length: 0\r\n");
    sender.wait_for("Waiting");
    let mut receiver = start_receiver(relay.addr, "/empty");
    let raw = read_to_end(&mut receiver);
    let r = parse_response(&raw);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("0"));
    assert!(r.body.is_empty());
    assert!(raw.ends_with(b"\r\n\r\n"), "nothing after the head");
    let s = sender_response(&mut sender);
    assert_eq!(last_line(&s), "[INFO] Sent successfully! (0 bytes)");
    drop((sender, receiver));
    relay.assert_idle();
}

#[test]
fn sixty_four_mib_with_hash() {
    const LEN: usize = 64 << 20;
    let relay = Relay::start();
    let addr = relay.addr;
    let body = pattern(LEN, 7);
    let want = hash(&body);

    let receiver = thread::spawn(move || {
        let mut r = start_receiver(addr, "/big");
        parse_response(&read_to_end(&mut r))
    });
    relay.wait_metric(WAITING, 1.0);
    let sender = thread::spawn(move || {
        let mut s = start_sender(addr, "/big", &format!("Content-Length: {LEN}\r\n"));
        s.write_all(&body).unwrap();
        parse_response(&read_to_end(&mut s))
    });
    let r = receiver.join().unwrap();
    let s = sender.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some(&LEN.to_string()[..]));
    assert_eq!(r.body.len(), LEN);
    assert_eq!(hash(&r.body), want);
    assert_eq!(
        last_line(&s),
        format!("[INFO] Sent successfully! ({LEN} bytes)")
    );
    assert_eq!(relay.metric("weir_bytes_relayed_total"), LEN as f64);
    relay.assert_idle();
}

// --- 4. Fan-out --------------------------------------------------------------

#[test]
fn n3_three_receivers_get_identical_copies() {
    const LEN: usize = 1 << 20;
    let relay = Relay::start();
    let addr = relay.addr;
    let body = pattern(LEN, 8);
    let mut sender = sender(
        relay.addr,
        "/fan?n=3",
        &format!("Content-Length: {LEN}\r\n"),
    );
    sender.wait_for("[INFO] Waiting for 3 receiver(s)...");
    let mut receivers = Vec::new();
    for i in 1..=3 {
        receivers.push(thread::spawn(move || {
            let mut r = start_receiver(addr, "/fan?n=3");
            parse_response(&read_to_end(&mut r))
        }));
        // Each arrival is announced to the sender.
        sender.wait_for(&format!("[INFO] {i} receiver(s) connected."));
    }
    sender.write_all(&body).unwrap();
    let s = sender_response(&mut sender);
    assert!(
        s.text().contains("[INFO] Start sending to 3 receiver(s)!"),
        "{:?}",
        s.text()
    );
    assert_eq!(
        last_line(&s),
        format!("[INFO] Sent successfully! ({LEN} bytes)")
    );
    for r in receivers {
        let r = r.join().unwrap();
        assert_eq!(r.status, 200);
        assert!(r.complete);
        assert_eq!(r.body.len(), LEN);
        assert_eq!(hash(&r.body), hash(&body));
    }
    drop(sender);
    relay.assert_idle();
}

#[test]
fn mismatched_n_is_400_naming_both_numbers() {
    let relay = Relay::start();
    let mut sender = sender(relay.addr, "/mis?n=2", "Content-Length: 1\r\n");
    sender.wait_for("Waiting for 2 receiver(s)");
    let r = get(relay.addr, "/mis?n=3");
    assert_error(&r, 400);
    let text = r.text();
    assert!(text.contains("n=3") && text.contains("n=2"), "{text:?}");
    // The waiting sender is untouched.
    assert_eq!(relay.metric(WAITING), 1.0);
    drop(sender);
    relay.assert_idle();
}

// --- 5. No buffering ---------------------------------------------------------

#[test]
fn byte_by_byte_streaming_is_not_buffered() {
    let relay = Relay::start();
    let mut receiver = start_receiver(relay.addr, "/drip");
    relay.wait_metric(WAITING, 1.0);
    let mut sender = sender(relay.addr, "/drip", "Transfer-Encoding: chunked\r\n");
    let head = read_head(&mut receiver);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Transfer-Encoding"), Some("chunked"));

    // Each byte must reach the receiver before the next one is sent; a
    // relay that waits for more input before forwarding misses the deadline.
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let bytes = pattern(50, 9);
    let mut raw = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        sender.write_all(b"1\r\n").unwrap();
        sender.write_all(&[*b]).unwrap();
        sender.write_all(b"\r\n").unwrap();
        let got = read_chunked_payload(&mut receiver, &mut raw, i + 1);
        assert_eq!(got, bytes[..i + 1], "byte {i}");
    }
    sender.write_all(b"0\r\n\r\n").unwrap();
    receiver.set_read_timeout(Some(DEADLINE)).unwrap();
    raw.extend_from_slice(&read_to_end(&mut receiver));
    let (body, complete) = dechunk(&raw);
    assert!(complete);
    assert_eq!(body, bytes);
    let s = sender_response(&mut sender);
    assert_eq!(last_line(&s), "[INFO] Sent successfully! (50 bytes)");
    drop((sender, receiver));
    relay.assert_idle();
}

// --- 6. curl -T and Expect: 100-continue -----------------------------------

#[test]
fn curl_upload_progress_lines_and_bytes() {
    let relay = Relay::start();
    let contents = pattern(300_000, 10);
    let file = TempFile::new("upload.bin", &contents);
    let curl = Curl::spawn(&[
        "-sS",
        "-N",
        "-v",
        "-T",
        file.path_str(),
        &relay.url("/curl-t"),
    ]);
    // The sender learns that it waits before any receiver exists.
    assert_eq!(curl.next_line(), "[INFO] Waiting for 1 receiver(s)...");
    assert_eq!(relay.metric(WAITING), 1.0);

    let mut receiver = start_receiver(relay.addr, "/curl-t");
    let r = parse_response(&read_to_end(&mut receiver));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("300000"));
    assert_eq!(hash(&r.body), hash(&contents));

    let (status, rest, stderr) = curl.finish();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("> Expect: 100-continue"), "{stderr}");
    assert!(stderr.contains("< HTTP/1.1 100 Continue"), "{stderr}");
    assert!(
        rest.iter()
            .any(|l| l == "[INFO] Start sending to 1 receiver(s)!"),
        "{rest:?}"
    );
    assert_eq!(
        rest.last().map(String::as_str),
        Some("[INFO] Sent successfully! (300000 bytes)")
    );
    drop(receiver);
    relay.assert_idle();
}

#[test]
fn expect_100_continue_is_answered_before_a_receiver_exists() {
    let relay = Relay::start();
    let mut sender = sender(
        relay.addr,
        "/expect",
        "Content-Length: 5\r\nExpect: 100-continue\r\n",
    );
    // No body byte sent, no receiver: the interim answer comes first.
    let first = sender.wait_for("\r\n\r\n");
    assert_eq!(first, "HTTP/1.1 100 Continue\r\n\r\n");
    let head = sender.wait_for("\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    sender.wait_for("[INFO] Waiting for 1 receiver(s)...");
    assert_eq!(relay.metric(WAITING), 1.0);

    let mut receiver = start_receiver(relay.addr, "/expect");
    sender.wait_for("[INFO] Start sending");
    sender.write_all(b"12345").unwrap();
    let r = parse_response(&read_to_end(&mut receiver));
    assert_eq!(r.body, b"12345");
    let s = sender_response(&mut sender);
    assert_eq!(last_line(&s), "[INFO] Sent successfully! (5 bytes)");
    drop((sender, receiver));
    relay.assert_idle();
}

// --- 8. Parked parties that give up ------------------------------------------

fn pair_works(relay: &Relay, path: &str) {
    let mut receiver = start_receiver(relay.addr, path);
    let mut sender = sender(relay.addr, path, "Content-Length: 3\r\n");
    sender.write_all(b"abc").unwrap();
    let r = parse_response(&read_to_end(&mut receiver));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"abc");
    let s = sender_response(&mut sender);
    assert_eq!(last_line(&s), "[INFO] Sent successfully! (3 bytes)");
}

#[test]
fn parked_sender_gives_up_and_the_path_is_free() {
    let relay = Relay::start();
    let mut sender = sender(relay.addr, "/quit-s", "Content-Length: 3\r\n");
    sender.wait_for("Waiting for 1 receiver(s)...\n\r\n");
    relay.wait_metric(WAITING, 1.0);
    drop(sender);
    relay.wait_metric(WAITING, 0.0);
    assert_eq!(relay.metric("weir_connections"), 0.0);
    pair_works(&relay, "/quit-s");
    relay.assert_idle();
}

#[test]
fn parked_receiver_gives_up_and_the_path_is_free() {
    let relay = Relay::start();
    let receiver = start_receiver(relay.addr, "/quit-r");
    relay.wait_metric(WAITING, 1.0);
    drop(receiver);
    relay.wait_metric(WAITING, 0.0);
    pair_works(&relay, "/quit-r");
    relay.assert_idle();
}

// --- 10. Wait TTL ------------------------------------------------------------

#[test]
fn ttl_expiry_ends_a_parked_sender_with_timed_out() {
    let relay = Relay::with(|c| c.ttl = Duration::from_secs(1));
    let started = Instant::now();
    let mut sender = sender(relay.addr, "/ttl-s", "Content-Length: 3\r\n");
    let s = sender_response(&mut sender);
    assert!(started.elapsed() >= Duration::from_secs(1), "not early");
    // Nothing was sent: the response ends without its final chunk, so a
    // client (curl: exit 18) reports the failure, not only the line.
    assert!(
        !s.complete,
        "a failed send must not look complete: {:?}",
        s.text()
    );
    let l = lines(&s);
    assert_eq!(
        l.first().map(String::as_str),
        Some("[INFO] Waiting for 1 receiver(s)...")
    );
    assert!(last_line(&s).starts_with("[ERROR] Timed out"), "{l:?}");
    assert_eq!(
        relay.metric("weir_transfers_total{outcome=\"timeout\"}"),
        1.0
    );
    drop(sender);
    relay.assert_idle();
}

#[test]
fn ttl_expiry_answers_a_parked_receiver_408() {
    let relay = Relay::with(|c| c.ttl = Duration::from_secs(1));
    let started = Instant::now();
    let mut receiver = start_receiver(relay.addr, "/ttl-r");
    let r = parse_response(&read_to_end(&mut receiver));
    assert!(started.elapsed() >= Duration::from_secs(1), "not early");
    assert_error(&r, 408);
    assert!(r.text().contains("Timed out"), "{:?}", r.text());
    drop(receiver);
    relay.assert_idle();
}

// --- 11. Cut transfers -------------------------------------------------------

#[test]
fn sender_cut_mid_stream_content_length_ends_short() {
    const DECLARED: usize = 1 << 20;
    const SENT: usize = 100 << 10;
    let relay = Relay::start();
    let body = pattern(DECLARED, 11);
    let mut receiver = start_receiver(relay.addr, "/cut-cl");
    relay.wait_metric(WAITING, 1.0);
    let mut sender = sender(
        relay.addr,
        "/cut-cl",
        &format!("Content-Length: {DECLARED}\r\n"),
    );
    // Read every byte the relay has written so far, so that the close below
    // is a plain FIN and not a reset.
    sender.wait_for("[INFO] Start sending to 1 receiver(s)!\n\r\n");
    sender.write_all(&body[..SENT]).unwrap();
    drop(sender);

    let r = parse_response(&read_to_end(&mut receiver));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("1048576"));
    assert!(!r.complete, "a cut must not look complete");
    assert!(r.body.len() <= SENT, "{} bytes", r.body.len());
    assert_eq!(r.body, body[..r.body.len()]);
    relay.wait_metric(CUT, 1.0);
    drop(receiver);
    relay.assert_idle();
}

#[test]
fn sender_cut_mid_stream_chunked_has_no_final_chunk() {
    let relay = Relay::start();
    let body = pattern(100 << 10, 12);
    let mut receiver = start_receiver(relay.addr, "/cut-ch");
    relay.wait_metric(WAITING, 1.0);
    let mut sender = sender(relay.addr, "/cut-ch", "Transfer-Encoding: chunked\r\n");
    sender.wait_for("[INFO] Start sending to 1 receiver(s)!\n\r\n");
    for piece in body.chunks(4096) {
        write!(sender, "{:x}\r\n", piece.len()).unwrap();
        sender.write_all(piece).unwrap();
        sender.write_all(b"\r\n").unwrap();
    }
    // No "0\r\n\r\n": the sender vanishes.
    drop(sender);

    let r = parse_response(&read_to_end(&mut receiver));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    assert!(!r.complete, "the final chunk must not arrive");
    assert_eq!(r.body, body[..r.body.len()]);
    relay.wait_metric(CUT, 1.0);
    assert_eq!(
        relay.metric("weir_transfers_total{outcome=\"complete\"}"),
        0.0
    );
    drop(receiver);
    relay.assert_idle();
}

/// Write `len` pattern bytes until done or the relay stops taking them.
fn spawn_body_writer(mut s: TcpStream, len: usize, seed: u64) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let mut gen = PatternStream::new(seed);
        let mut buf = vec![0u8; 64 << 10];
        let mut sent = 0;
        while sent < len {
            let n = buf.len().min(len - sent);
            gen.fill(&mut buf[..n]);
            if s.write_all(&buf[..n]).is_err() {
                break;
            }
            sent += n;
        }
        sent
    })
}

#[test]
fn receiver_leaving_mid_stream_is_reported_to_the_sender() {
    // Larger than every socket buffer between relay and receiver, so the
    // receiver cannot have it all when it leaves.
    const LEN: usize = 32 << 20;
    let relay = Relay::start();
    let mut receiver = start_receiver(relay.addr, "/leave");
    relay.wait_metric(WAITING, 1.0);
    let sender = start_sender(relay.addr, "/leave", &format!("Content-Length: {LEN}\r\n"));
    let mut sender_reader = sender.try_clone().unwrap();
    let writer = spawn_body_writer(sender, LEN, 13);

    let head = read_head(&mut receiver);
    assert_eq!(head.status, 200);
    read_exact(&mut receiver, 16 << 10);
    drop(receiver);

    let raw = match read_to_end_result(&mut sender_reader) {
        Ok(raw) => raw,
        Err((_, raw)) => raw,
    };
    let s = parse_response(&raw);
    let l = lines(&s);
    assert!(
        l.iter().any(|x| x.starts_with("[ERROR] ")),
        "the sender is told: {l:?}"
    );
    assert!(!last_line(&s).contains("Sent successfully"), "{l:?}");
    // The writer ends when the relay closes the sender (or, with large
    // socket buffers, after handing every byte to the kernel).
    writer.join().unwrap();
    relay.wait_metric(CUT, 1.0);
    drop(sender_reader);
    relay.assert_idle();
}

#[test]
fn n2_one_receiver_leaves_the_other_gets_every_byte() {
    const LEN: usize = 16 << 20;
    let relay = Relay::start();
    let addr = relay.addr;
    let mut sender = sender(
        relay.addr,
        "/half?n=2",
        &format!("Content-Length: {LEN}\r\n"),
    );
    sender.wait_for("[INFO] Waiting for 2 receiver(s)...");
    let stayer = thread::spawn(move || {
        let mut r = start_receiver(addr, "/half?n=2");
        parse_response(&read_to_end(&mut r))
    });
    sender.wait_for("[INFO] 1 receiver(s) connected.");
    let mut leaver = start_receiver(relay.addr, "/half?n=2");
    sender.wait_for("[INFO] Start sending to 2 receiver(s)!");
    let writer = spawn_body_writer(sender.sock.try_clone().unwrap(), LEN, 14);

    assert_eq!(read_head(&mut leaver).status, 200);
    read_exact(&mut leaver, 16 << 10);
    drop(leaver);

    assert_eq!(writer.join().unwrap(), LEN, "the whole body was taken");
    let r = stayer.join().unwrap();
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert_eq!(r.body.len(), LEN);
    assert_eq!(hash(&r.body), hash(&pattern(LEN, 14)));

    let s = sender_response(&mut sender);
    let l = lines(&s);
    assert!(
        l.iter().any(|x| x.starts_with("[ERROR] A receiver left")),
        "{l:?}"
    );
    let last = last_line(&s);
    assert!(last.contains("1 of 2"), "{l:?}");
    assert!(last.contains(&LEN.to_string()), "{l:?}");
    drop(sender);
    relay.assert_idle();
}

/// `nc -N` style: the whole declared body, then a half-close, while parked.
/// The half-close ends a complete upload; it is not a sender giving up.
#[test]
fn a_parked_sender_that_sent_its_whole_body_then_half_closed_is_delivered() {
    let relay = Relay::start();
    let mut s = connect(relay.addr);
    s.write_all(b"PUT /ncn HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    half_close(&s);
    relay.wait_metric("weir_pipes{state=\"waiting\"}", 1.0);
    let mut r = start_receiver(relay.addr, "/ncn");
    let got = parse_response(&read_to_end(&mut r));
    assert_eq!((got.status, got.body.as_slice()), (200, &b"hello"[..]));
    let sent = String::from_utf8_lossy(&read_to_end(&mut s)).into_owned();
    assert!(
        sent.contains("[INFO] Sent successfully! (5 bytes)"),
        "{sent}"
    );
    relay.assert_idle();
}
