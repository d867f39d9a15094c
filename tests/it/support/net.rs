//! Raw sockets with deadlines: connect, read until a needle, to the end
//! or to the close, expect silence for a bounded while, half-close, reset.
//! No read here waits without a bound, and no test asserts on one `read()`.

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::DEADLINE;

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Read until the peer closes, or panic at the deadline.
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    read_to_end_result(s).expect("read to end")
}

/// Read until the peer closes; an error (such as a reset) is returned with
/// the bytes read before it.
pub fn read_to_end_result(s: &mut TcpStream) -> Result<Vec<u8>, (io::Error, Vec<u8>)> {
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if Instant::now() > deadline {
            panic!("deadline passed; read {} bytes", out.len());
        }
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                panic!("read timed out after {} bytes", out.len())
            }
            Err(e) => return Err((e, out)),
        }
    }
}

/// Read until `needle` has been seen, returning everything read so far.
pub fn read_until(s: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.windows(needle.len()).any(|w| w == needle) {
        assert!(
            Instant::now() < deadline,
            "deadline waiting for {:?}",
            String::from_utf8_lossy(needle)
        );
        match s.read(&mut byte) {
            Ok(0) => panic!(
                "closed before {:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&out)
            ),
            Ok(_) => out.push(byte[0]),
            Err(e) => panic!(
                "read error {e} before {:?}",
                String::from_utf8_lossy(needle)
            ),
        }
    }
    out
}

/// Read exactly `n` bytes.
pub fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v).expect("read_exact");
    v
}

/// Read until the peer closes (or resets) and return what came before,
/// with whether it ended in an error; panics at `within`.
pub fn read_until_closed(s: &mut TcpStream, within: Duration) -> (Vec<u8>, Option<io::Error>) {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "not closed within {within:?}; read {} bytes",
            out.len()
        );
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
            }
            Err(e) => return (out, Some(e)),
        }
    }
}

/// Expect no byte on `s` for `quiet` (a negative check with a bound, not a
/// synchronisation): panics if anything arrives or the peer closes.
pub fn assert_no_response(s: &mut TcpStream, quiet: Duration) {
    s.set_read_timeout(Some(quiet)).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => panic!("closed instead of staying silent"),
        Ok(_) => panic!("answered while it should wait"),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {}
        Err(e) => panic!("read error while waiting: {e}"),
    }
    s.set_read_timeout(Some(DEADLINE)).unwrap();
}

pub fn half_close(s: &TcpStream) {
    s.shutdown(Shutdown::Write).unwrap();
}

/// Close abortively: `SO_LINGER 0`, so the peer sees a reset, as when a
/// client crashes or its network goes away.
pub fn reset(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}
