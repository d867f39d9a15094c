//! Memory: the real binary relays 256 MiB to a receiver that stops reading,
//! and its resident set stays where it was. Flow control, not memory, holds
//! the sender back.

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{http::*, net::*, payload::*, pipe::*, relay::*, DEADLINE};

const WAITING: &str = "weir_pipes{state=\"waiting\"}";
const LEN: usize = 256 << 20;
/// How much weir's resident set may grow over the whole transfer.
const SLACK_KIB: u64 = 2048;

#[test]
fn a_stalled_receiver_blocks_the_sender_without_growing_memory() {
    let weir = Binary::start(&["--buffer-size", "65536"]);
    let rss_before = weir.rss_kib();

    let mut receiver = start_receiver(weir.addr, "/footprint");
    wait_metric(weir.addr, WAITING, 1.0);
    let mut sender = start_sender(
        weir.addr,
        "/footprint",
        &format!("Content-Length: {LEN}\r\n"),
    );

    // The writer reports how much it had written when a write first made no
    // progress for a whole second, then goes on with the normal deadline.
    let (blocked_tx, blocked_rx) = mpsc::channel();
    let writer = thread::spawn(move || {
        sender
            .set_write_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut gen = PatternStream::new(21);
        let mut fnv = Fnv::default();
        let mut buf = vec![0u8; 64 << 10];
        let mut sent = 0usize;
        let mut reported = false;
        while sent < LEN {
            let n = buf.len().min(LEN - sent);
            gen.fill(&mut buf[..n]);
            fnv.update(&buf[..n]);
            let mut off = 0;
            while off < n {
                match sender.write(&buf[off..n]) {
                    Ok(0) => panic!("write returned 0"),
                    Ok(k) => off += k,
                    Err(e)
                        if !reported
                            && matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) =>
                    {
                        reported = true;
                        blocked_tx.send(sent + off).unwrap();
                        sender.set_write_timeout(Some(DEADLINE)).unwrap();
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => panic!("write failed after {} bytes: {e}", sent + off),
                }
            }
            sent += n;
        }
        let response = parse_response(&read_to_end(&mut sender));
        (fnv.finish(), response)
    });

    let accepted = blocked_rx
        .recv_timeout(DEADLINE)
        .expect("the sender's writes block while the receiver does not read");
    let rss_blocked = weir.rss_kib();
    eprintln!(
        "blocked after {} KiB written; RSS {rss_before} KiB before, {rss_blocked} KiB while blocked",
        accepted >> 10
    );
    assert!(
        accepted < LEN / 2,
        "{accepted} bytes accepted by a stalled pipe"
    );
    assert!(
        rss_blocked <= rss_before + SLACK_KIB,
        "RSS grew from {rss_before} KiB to {rss_blocked} KiB"
    );

    // Now read everything, watching the resident set as the bytes pass.
    let head = read_head(&mut receiver);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), Some(&LEN.to_string()[..]));
    let started = Instant::now();
    let mut fnv = Fnv::default();
    let mut got = 0usize;
    let mut rss_max = rss_blocked;
    let mut next_sample = 0usize;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match receiver.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("read failed after {got} bytes: {e}"),
        };
        if n == 0 {
            break;
        }
        fnv.update(&buf[..n]);
        got += n;
        if got >= next_sample {
            rss_max = rss_max.max(weir.rss_kib());
            next_sample += 16 << 20;
        }
    }
    eprintln!(
        "received {} MiB in {:.2?}; RSS at most {rss_max} KiB",
        got >> 20,
        started.elapsed()
    );
    assert_eq!(got, LEN);
    let (sent_hash, response) = writer.join().unwrap();
    assert_eq!(fnv.finish(), sent_hash);
    assert_eq!(
        lines(&response).last().map(String::as_str),
        Some(&format!("[INFO] Sent successfully! ({LEN} bytes)")[..])
    );
    let rss_after = weir.rss_kib();
    rss_max = rss_max.max(rss_after);
    assert!(
        rss_max <= rss_before + SLACK_KIB,
        "RSS grew from {rss_before} KiB to {rss_max} KiB during the transfer"
    );
    drop(receiver);
    wait_metric(weir.addr, "weir_connections", 0.0);
    wait_metric(weir.addr, WAITING, 0.0);
    wait_metric(weir.addr, "weir_pipes{state=\"streaming\"}", 0.0);
}

/// Parked senders whose bodies came right behind their heads: the bodies
/// stay in the kernel (the head is found with MSG_PEEK and read alone), so
/// weir holds no per-sender body buffer, and a parked sender's body still
/// arrives whole when its receiver comes.
#[test]
fn parked_senders_leave_their_early_bodies_in_the_kernel() {
    const N: usize = 2000;
    const BODY: usize = 8192;
    let weir = Binary::start(&["--max-parked-per-ip", "0", "--max-connections", "5000"]);
    let rss_before = weir.rss_kib();
    let body = pattern(BODY, 77);
    let mut senders = Vec::with_capacity(N);
    for i in 0..N {
        let mut s = connect(weir.addr);
        let mut req =
            format!("PUT /early-{i} HTTP/1.1\r\nHost: x\r\nContent-Length: {BODY}\r\n\r\n")
                .into_bytes();
        req.extend_from_slice(&body);
        s.write_all(&req).unwrap();
        senders.push(s);
    }
    wait_metric(weir.addr, WAITING, N as f64);
    let rss_parked = weir.rss_kib();
    let per_sender = (rss_parked.saturating_sub(rss_before) * 1024) / N as u64;
    eprintln!("RSS {rss_before} KiB idle, {rss_parked} KiB with {N} parked: {per_sender} B each");
    // Reading the 4 KiB head step would hold about 4 KiB of body each.
    assert!(
        per_sender < 2048,
        "{per_sender} bytes per parked sender: its body is held in memory"
    );
    let mut receiver = start_receiver(weir.addr, "/early-7");
    let head = read_head(&mut receiver);
    assert_eq!(head.status, 200);
    assert_eq!(read_exact(&mut receiver, BODY), body);
}

/// After a burst of connections has gone, weir gives its memory back: the
/// tables shrink and the binary returns the allocator's free pages, so the
/// resident set comes back near where it was before the burst (it stayed
/// several MiB above it while glibc kept the freed heap).
#[test]
fn a_burst_that_has_gone_gives_its_memory_back() {
    const N: usize = 6000;
    const BODY: usize = 4096;
    let weir = Binary::start(&["--max-parked-per-ip", "0", "--max-connections", "8000"]);
    let rss_idle = weir.rss_kib();
    let body = pattern(BODY, 5);
    let mut held = Vec::with_capacity(N);
    for i in 0..N / 2 {
        let mut s = connect(weir.addr);
        let mut req =
            format!("PUT /burst-s{i} HTTP/1.1\r\nHost: x\r\nContent-Length: {BODY}\r\n\r\n")
                .into_bytes();
        req.extend_from_slice(&body);
        s.write_all(&req).unwrap();
        held.push(s);
        held.push(start_receiver(weir.addr, &format!("/burst-r{i}")));
    }
    wait_metric(weir.addr, WAITING, N as f64);
    let rss_burst = weir.rss_kib();
    assert!(
        rss_burst > rss_idle + 3072,
        "the burst grew RSS only from {rss_idle} to {rss_burst} KiB: nothing to give back"
    );
    // Each client resets its connection (a parked sender whose body sits in
    // the kernel is only seen to go by a reset: a FIN behind its body
    // could be a half-close, and it would wait out --ttl).
    for s in held {
        reset(s);
    }
    wait_metric(weir.addr, WAITING, 0.0);
    // Within a quarter of the growth, and at most 1.5 MiB above idle.
    let bound = rss_idle + ((rss_burst - rss_idle) / 4).min(1536);
    let deadline = Instant::now() + DEADLINE;
    let mut rss = weir.rss_kib();
    while rss > bound && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        rss = weir.rss_kib();
    }
    eprintln!("RSS {rss_idle} KiB idle, {rss_burst} KiB with {N} parked, {rss} KiB after");
    assert!(
        rss <= bound,
        "RSS stayed at {rss} KiB after the burst had gone (idle {rss_idle}, burst {rss_burst}, bound {bound})"
    );
}
