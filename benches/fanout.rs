//! How long one published event takes to reach 1,000 subscribers.
//!
//! A relay runs on a thread on 127.0.0.1; 1,000 event-stream subscribers
//! on one topic are opened once. Each iteration publishes one event with
//! `POST /events/<topic>` and stops the clock when every subscriber has
//! read it: the end-to-end fan-out time, clients' reads included.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use criterion::{criterion_main, Criterion};
use weir::{Config, Server};

const SUBSCRIBERS: usize = 1000;

fn start() -> SocketAddr {
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..Config::default()
    };
    let mut server = Server::bind(config).expect("bind");
    let addr = server.local_addrs()[0];
    std::thread::spawn(move || server.run().expect("run"));
    addr
}

fn subscribe(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /events/fan HTTP/1.1\r\nHost: b\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    // Head and welcome comment.
    read_past(&mut s, b": weir event stream\n\n");
    s
}

/// Read until `marker` has been seen (byte by byte: events are tiny).
fn read_past(s: &mut TcpStream, marker: &[u8]) {
    let mut seen = Vec::new();
    let mut b = [0u8; 512];
    while !seen.windows(marker.len()).any(|w| w == marker) {
        let n = s.read(&mut b).expect("read");
        assert!(n > 0, "stream ended");
        seen.extend_from_slice(&b[..n]);
    }
}

fn publish(addr: SocketAddr, n: u64) {
    let mut s = TcpStream::connect(addr).unwrap();
    let body = format!("event {n}");
    write!(
        s,
        "POST /events/fan HTTP/1.1\r\nHost: b\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert!(
        out.ends_with(format!("{SUBSCRIBERS}\n").as_bytes()),
        "not every subscriber reached"
    );
}

fn fanout(c: &mut Criterion) {
    let addr = start();
    let mut subs: Vec<TcpStream> = (0..SUBSCRIBERS).map(|_| subscribe(addr)).collect();
    let mut seq = 0u64;
    let mut g = c.benchmark_group("fanout");
    g.sample_size(10);
    g.bench_function("1000_subscribers_one_event", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                seq += 1;
                let t0 = Instant::now();
                publish(addr, seq);
                let marker = format!("data: event {seq}\n\n");
                for s in &mut subs {
                    read_past(s, marker.as_bytes());
                }
                total += t0.elapsed();
            }
            total
        })
    });
    g.finish();
}

/// The bench group (written out so it can carry a doc comment).
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    fanout(&mut c);
}

criterion_main!(benches);
