//! End-to-end throughput over 127.0.0.1: a real [`weir::Server`] on its own
//! thread relays `PUT`s into `GET`s, against the baseline measured in the
//! same run, raw loopback TCP moving the same bytes with the same client
//! code (style habit 10). The ratio of the two is the relay's cost.
//!
//! Shapes: one pipe moving 64 MiB, and 64 pipes at once moving 4 MiB each.
//! The clients are blocking std sockets on plain threads; each receiver
//! checks every byte against the pattern with a memcmp.
//!
//! On a small machine the clients share the cores with the relay, so the
//! absolute figures are lower bounds; `scripts/compare.sh` measures the
//! release binary with `weir-bench` against socat as well.

use criterion::{criterion_main, Criterion, SamplingMode, Throughput};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;
use weir::{Config, Server};

/// Period of the byte pattern: byte `i` of a stream is `(i * 131 + 7) as u8`.
const PERIOD: usize = 256;
const PATTERN_LEN: usize = 1 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn pattern() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        (0..PATTERN_LEN + PERIOD)
            .map(|i| (i * 131 + 7) as u8)
            .collect()
    })
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// Write `len` pattern bytes.
fn send_pattern(s: &mut TcpStream, len: u64) -> io::Result<()> {
    let p = pattern();
    let mut off = 0u64;
    while off < len {
        let start = (off % PERIOD as u64) as usize;
        let n = (len - off).min(PATTERN_LEN as u64) as usize;
        let k = s.write(&p[start..start + n])?;
        if k == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        off += k as u64;
    }
    Ok(())
}

/// Check `data` against the pattern at stream offset `off`.
fn check(data: &[u8], off: u64) -> io::Result<()> {
    let start = (off % PERIOD as u64) as usize;
    if data != &pattern()[start..start + data.len()] {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "pattern mismatch",
        ));
    }
    Ok(())
}

/// Read and check `len` body bytes; `early` are body bytes read with the head.
fn receive_pattern(s: &mut TcpStream, early: &[u8], len: u64) -> io::Result<()> {
    check(early, 0)?;
    let mut got = early.len() as u64;
    let mut buf = vec![0u8; 256 << 10];
    while got < len {
        let want = (len - got).min(buf.len() as u64) as usize;
        let n = s.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        check(&buf[..n], got)?;
        got += n as u64;
    }
    Ok(())
}

/// Read a response head; returns the body bytes that came with it.
fn read_head(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            if !head.starts_with(b"HTTP/1.1 200") {
                return Err(io::Error::other(
                    String::from_utf8_lossy(&head).into_owned(),
                ));
            }
            return Ok(head.split_off(end + 4));
        }
        if head.len() > 64 << 10 {
            return Err(io::Error::other("response head too large"));
        }
    }
}

fn relay_receiver(addr: SocketAddr, path: &str, len: u64) -> io::Result<()> {
    let mut s = connect(addr)?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n")?;
    let early = read_head(&mut s)?;
    receive_pattern(&mut s, &early, len)
}

fn relay_sender(addr: SocketAddr, path: &str, len: u64) -> io::Result<()> {
    let mut s = connect(addr)?;
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len}\r\n\r\n"
    )?;
    send_pattern(&mut s, len)?;
    // The progress lines end with the verdict; the relay closes after it.
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    if !resp.windows(7).any(|w| w == b"[ERROR]") {
        Ok(())
    } else {
        Err(io::Error::other(
            String::from_utf8_lossy(&resp).into_owned(),
        ))
    }
}

static RUN: AtomicU64 = AtomicU64::new(0);

/// `pipes` transfers of `len` bytes each through the relay, all at once.
fn through_relay(addr: SocketAddr, pipes: usize, len: u64) {
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let mut joins = Vec::with_capacity(pipes * 2);
    for i in 0..pipes {
        let path = format!("/bench-{run}-{i}");
        let p = path.clone();
        joins.push(thread::spawn(move || relay_receiver(addr, &p, len)));
        joins.push(thread::spawn(move || relay_sender(addr, &path, len)));
    }
    for j in joins {
        j.join().expect("client thread").expect("transfer");
    }
}

/// The same transfers over plain TCP: each sender connects straight to a
/// receiver that accepted it.
fn raw_loopback(listener: &TcpListener, pipes: usize, len: u64) {
    let addr = listener.local_addr().expect("local addr");
    let mut joins = Vec::with_capacity(pipes * 2);
    for _ in 0..pipes {
        let l = listener.try_clone().expect("clone listener");
        joins.push(thread::spawn(move || -> io::Result<()> {
            let (mut s, _) = l.accept()?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            receive_pattern(&mut s, &[], len)
        }));
        joins.push(thread::spawn(move || -> io::Result<()> {
            let mut s = connect(addr)?;
            send_pattern(&mut s, len)?;
            s.shutdown(Shutdown::Write)
        }));
    }
    for j in joins {
        j.join().expect("client thread").expect("transfer");
    }
}

fn loopback(c: &mut Criterion) {
    let config = Config {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        max_upload_bytes: 0,
        linger: Duration::from_millis(200),
        ..Config::default()
    };
    let mut server = Server::bind(config).expect("bind weir");
    let addr = server.local_addrs()[0];
    let stop = server.stop_handle();
    let relay = thread::spawn(move || server.run());
    let raw = TcpListener::bind("127.0.0.1:0").expect("bind raw listener");

    let mut g = c.benchmark_group("loopback");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (name, pipes, len) in [
        ("1_pipe_64MiB", 1, 64u64 << 20),
        ("64_pipes_4MiB", 64, 4 << 20),
    ] {
        g.throughput(Throughput::Bytes(pipes as u64 * len));
        g.bench_function(format!("weir/{name}"), |b| {
            b.iter(|| through_relay(addr, pipes, len))
        });
        g.bench_function(format!("raw_tcp/{name}"), |b| {
            b.iter(|| raw_loopback(&raw, pipes, len))
        });
    }
    g.finish();

    stop.stop();
    relay.join().expect("relay thread").expect("relay run");
}

/// Every bench in this file, configured from the command line.
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    loopback(&mut c);
}

criterion_main!(benches);
