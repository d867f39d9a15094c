//! Exhaustion: every limit on shared resources is answered, and none of them
//! turns the event loop into a spin.
//!
//! - `--max-connections`: past it the relay stops accepting (the kernel's
//!   backlog holds new connections) and resumes only below 90%.
//! - Out of file descriptors (`EMFILE` on accept): the loop pauses accepting
//!   on a timer instead of spinning on the listener, and serves the waiting
//!   connections once descriptors are free.
//! - The ring pool (`--max-streaming-pipes`): a transfer that would start
//!   without a ring is answered `503`; the others keep waiting.
//! - `--max-parked-per-ip`: one address cannot hold every path; past the
//!   limit a party that would wait is answered `429`.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{http::*, net::*, pipe::*, relay::*, DEADLINE};

const WAITING: &str = "weir_pipes{state=\"waiting\"}";
const STREAMING: &str = "weir_pipes{state=\"streaming\"}";
const REJECTED: &str = "weir_transfers_total{outcome=\"rejected\"}";

/// How long a negative check ("no answer yet") listens.
const QUIET: Duration = Duration::from_millis(400);

/// An idle keep-alive connection the relay has certainly accepted: it has
/// answered one request on it.
fn accepted_idle(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = connect(addr);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let head = read_head(&mut s);
    assert_eq!(head.status, 200);
    assert_eq!(read_exact(&mut s, 3), b"ok\n");
    s
}

#[test]
fn max_connections_pauses_accepting_and_resumes_below_90_percent() {
    let relay = Relay::with(|c| {
        c.max_connections = 20;
        // The held connections must outlive the test's negative checks.
        c.head_timeout = Duration::from_secs(60);
    });
    let mut held: Vec<TcpStream> = (0..20).map(|_| accepted_idle(relay.addr)).collect();

    // The 21st completes its TCP handshake (the kernel's backlog) but the
    // relay does not take it, so its request is not answered.
    let mut late = connect(relay.addr);
    late.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_no_response(&mut late, QUIET);

    // Hysteresis: 19 and 18 open are not below 90% of 20.
    for _ in 0..2 {
        drop(held.pop());
        assert_no_response(&mut late, QUIET);
    }
    // 17 open: accepting resumes and the waiting request is served.
    drop(held.pop());
    let r = parse_response(&read_to_end(&mut late));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"ok\n");

    // The held connections were never disturbed: each still serves.
    for s in &mut held {
        s.write_all(b"GET /version HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_head(s).status, 200);
    }
    drop(held);
    drop(late);
    assert_serves(relay.addr);
    relay.assert_idle();
}

#[test]
fn emfile_on_accept_does_not_spin_and_recovers() {
    // Few descriptors: the relay's own (epoll, waker, signals, listener,
    // stdio) leave room for a handful of connections.
    const NOFILE: u32 = 32;
    const CLIENTS: usize = 40;
    let mut weir = Binary::start_with_nofile(NOFILE, &["--head-timeout", "60"]);
    assert_eq!(weir.nofile_limit(), u64::from(NOFILE));

    // Every client sends a keep-alive request and then stays. Those the
    // relay accepted are answered; the others wait in the backlog.
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut s = connect(weir.addr);
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    // Accepted connections are answered in accept order; the first one
    // that is not answered marks where descriptors ran out.
    let mut served = 0;
    for s in &mut clients {
        s.set_read_timeout(Some(QUIET)).unwrap();
        let mut b = [0u8; 1];
        match std::io::Read::read(s, &mut b) {
            Ok(1) => {
                s.set_read_timeout(Some(DEADLINE)).unwrap();
                let mut raw = b.to_vec();
                raw.extend(read_until(s, b"ok\n"));
                assert!(raw.starts_with(b"HTTP/1.1 200 OK\r\n"));
                served += 1;
            }
            _ => break,
        }
    }
    assert!(served > 0, "nothing served");
    assert!(
        served < CLIENTS,
        "all {CLIENTS} served: the descriptor limit was never reached"
    );
    let fds = weir.open_fds();
    assert!(
        fds as u64 >= u64::from(NOFILE) - 2,
        "{fds} descriptors open: not at the limit"
    );
    eprintln!("{served} of {CLIENTS} accepted with {fds} descriptors open");

    // While the rest wait, the loop must sleep: measure its CPU time.
    let window = Duration::from_millis(1500);
    let before = cpu_ticks(weir.pid());
    let started = Instant::now();
    // The waiting clients prove, over the same window, that nothing moved.
    for s in clients.iter_mut().skip(served).take(3) {
        assert_no_response(s, window / 3);
    }
    let elapsed = started.elapsed();
    let used = cpu_ticks(weir.pid()) - before;
    // A spinning loop burns the whole window (150 ticks at 100 Hz); a
    // 100 ms retry timer costs a few ticks at most.
    eprintln!("{used} ticks of CPU in {elapsed:?} at EMFILE");
    assert!(used <= 15, "{used} ticks of CPU in {elapsed:?}: spinning");

    // Free the descriptors: every waiting client is then accepted and
    // served, in turn (the relay only has room for a few at once).
    let waiting = clients.split_off(served);
    drop(clients);
    for mut s in waiting {
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let head = read_head(&mut s);
        assert_eq!(head.status, 200);
        assert_eq!(read_exact(&mut s, 3), b"ok\n");
    }
    assert_serves(weir.addr);
    wait_metric(weir.addr, "weir_connections", 0.0);
    assert!(
        weir.child.try_wait().unwrap().is_none(),
        "the relay is still running"
    );
}

#[test]
fn ring_pool_exhaustion_is_503_and_the_others_keep_waiting() {
    let relay = Relay::with(|c| {
        c.max_streaming_pipes = 1;
        c.splice = false;
    });
    // Transfer one holds the only ring: started, body not finished.
    let mut r1 = start_receiver(relay.addr, "/pool-1");
    relay.wait_metric(WAITING, 1.0);
    let mut s1 = sender(relay.addr, "/pool-1", "Content-Length: 10\r\n");
    s1.wait_for("[INFO] Start sending to 1 receiver(s)!");
    s1.write_all(b"01234").unwrap();
    relay.wait_metric(STREAMING, 1.0);

    // Transfer two: its receiver parks (waiting needs no ring) ...
    let mut r2 = start_receiver(relay.addr, "/pool-2");
    relay.wait_metric(WAITING, 1.0);
    // ... and the sender that would start it is refused.
    let r = exchange(
        relay.addr,
        b"PUT /pool-2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_error(&r, 503);
    assert_eq!(relay.metric(REJECTED), 1.0);
    // The receiver keeps waiting, and the running transfer is untouched.
    assert_eq!(relay.metric(WAITING), 1.0);
    assert_eq!(relay.metric(STREAMING), 1.0);

    // The same from the other side: a receiver that would complete a
    // waiting sender is refused, and the sender keeps waiting.
    let mut s3 = sender(relay.addr, "/pool-3", "Content-Length: 3\r\n");
    s3.wait_for("[INFO] Waiting for 1 receiver(s)...");
    assert_error(&get(relay.addr, "/pool-3"), 503);
    assert_eq!(relay.metric(WAITING), 2.0);

    // Transfer one ends; its ring goes back to the pool.
    s1.write_all(b"56789").unwrap();
    assert_eq!(parse_response(&read_to_end(&mut r1)).body, b"0123456789");
    let s = s1.finish();
    assert_eq!(
        lines(&s).last().map(String::as_str),
        Some("[INFO] Sent successfully! (10 bytes)")
    );
    relay.wait_metric(STREAMING, 0.0);

    // Now the waiting parties can be completed, one at a time.
    let r = exchange(
        relay.addr,
        b"PUT /pool-2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(r.status, 200);
    assert_eq!(parse_response(&read_to_end(&mut r2)).body, b"abc");
    s3.write_all(b"xyz").unwrap();
    assert_eq!(get(relay.addr, "/pool-3").body, b"xyz");
    let s = s3.finish();
    assert_eq!(
        lines(&s).last().map(String::as_str),
        Some("[INFO] Sent successfully! (3 bytes)")
    );
    drop((r1, r2, s3));
    relay.assert_idle();
}

#[test]
fn max_parked_per_ip_is_429_and_frees_as_parties_leave() {
    let relay = Relay::with(|c| c.max_parked_per_ip = 3);
    let mut parked: Vec<TcpStream> = (0..3)
        .map(|i| {
            let s = start_receiver(relay.addr, &format!("/ip-{i}"));
            relay.wait_metric(WAITING, f64::from(i + 1));
            s
        })
        .collect();

    // A fourth party from 127.0.0.1 that would wait: 429, nothing parked.
    let r = get(relay.addr, "/ip-3");
    assert_error(&r, 429);
    assert!(r.text().contains('3'), "{:?}", r.text());
    let mut s = sender(relay.addr, "/ip-4", "Content-Length: 1\r\n");
    let r = s.finish();
    assert_error(&r, 429);
    assert_eq!(relay.metric(WAITING), 3.0);

    // A party that completes a pipe does not wait, so it is not refused.
    let r = exchange(
        relay.addr,
        b"PUT /ip-0 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok",
    );
    assert_eq!(r.status, 200);
    let mut first = parked.remove(0);
    assert_eq!(parse_response(&read_to_end(&mut first)).body, b"ok");
    drop(first);
    relay.wait_metric(WAITING, 2.0);

    // One slot is free again: another party may park, then the limit holds.
    let again = start_receiver(relay.addr, "/ip-5");
    relay.wait_metric(WAITING, 3.0);
    assert_error(&get(relay.addr, "/ip-6"), 429);

    // A parked party that leaves frees its slot too.
    drop(parked.pop());
    relay.wait_metric(WAITING, 2.0);
    let last = start_receiver(relay.addr, "/ip-7");
    relay.wait_metric(WAITING, 3.0);

    drop((parked, again, last));
    relay.assert_idle();
}
