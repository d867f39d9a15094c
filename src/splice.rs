//! The zero-copy path: a kernel pipe between two sockets (Linux only).
//!
//! For a transfer with one receiver and a known length, the body can move
//! with `splice(2)` from the sender's socket into a kernel pipe and from
//! the pipe into the receiver's socket, without being copied into user
//! space. The kernel pipe plays the ring's part, with the same absolute
//! offsets and the same backpressure rules (R4, R5): the sender is read
//! only while the pipe has room, the receiver written only while it holds
//! bytes. `rustix` wraps the calls safely, so this module has no `unsafe`.
//!
//! One rule differs: a pipe can run out of page slots before it runs out
//! of bytes, so `EAGAIN` from socket → pipe while the pipe holds data may
//! mean "pipe full" rather than "socket empty". Only an `EAGAIN` on an
//! empty pipe clears the sender's readable bit; otherwise the bit is kept
//! and the read is retried after the receiver drains, so no edge is lost.
//!
//! The window: a pipe starts at the ring's size. A transfer that keeps
//! filling it (the sender is faster than one pipe-full per turn) asks to
//! grow ([`KernelPipe::wants_grow`]); the relay core doubles it up to
//! [`MAX_PIPE`] while its global splice budget lasts, and takes the growth
//! back when the pipe is dropped. Fewer, larger splices cost less per byte.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};

/// The largest a pipe grows (Linux's default `fs.pipe-max-size`).
pub const MAX_PIPE: usize = 1 << 20;
/// Fills that left the pipe full, since it last grew, before it asks to.
const FULL_FILLS_TO_GROW: u32 = 4;

/// A kernel pipe used as a transfer's buffer.
#[derive(Debug)]
pub struct KernelPipe {
    rd: OwnedFd,
    wr: OwnedFd,
    cap: usize,
    /// The size it was made with; `cap - base` is its growth.
    base: usize,
    /// Fills that found or left it full since it last grew.
    full_fills: u32,
    /// The kernel refused to grow it; don't ask again.
    stuck: bool,
    written: u64,
    read: u64,
}

/// What a fill from a socket found.
#[derive(Debug)]
pub enum Fill {
    /// Bytes moved into the pipe.
    Moved(usize),
    /// The socket had nothing, or the pipe could take nothing.
    Blocked {
        /// Whether the socket is surely empty (the pipe was empty).
        socket_empty: bool,
    },
    /// The sender shut down its side.
    Eof,
}

impl KernelPipe {
    /// A non-blocking pipe of about `size` bytes (the kernel may round it).
    pub fn new(size: usize) -> io::Result<KernelPipe> {
        let (rd, wr) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        // Best effort: unprivileged processes may be held to a smaller size.
        let cap = fcntl_setpipe_size(&wr, size).unwrap_or(64 * 1024);
        Ok(KernelPipe {
            rd,
            wr,
            cap,
            base: cap,
            full_fills: 0,
            stuck: false,
            written: 0,
            read: 0,
        })
    }

    /// Its capacity now.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes it has grown by since it was made (what it holds of the
    /// splice budget).
    pub fn growth(&self) -> usize {
        self.cap.saturating_sub(self.base)
    }

    /// The sender keeps filling it: it would move more per call if larger.
    pub fn wants_grow(&self) -> bool {
        !self.stuck && self.cap < MAX_PIPE && self.full_fills >= FULL_FILLS_TO_GROW
    }

    /// Double the capacity if that adds at most `room` bytes (and stays
    /// within [`MAX_PIPE`]). Returns the bytes added (0 if it did not grow).
    pub fn grow(&mut self, room: usize) -> usize {
        let target = (self.cap * 2).min(MAX_PIPE);
        if target <= self.cap || target - self.cap > room {
            return 0;
        }
        self.full_fills = 0;
        match fcntl_setpipe_size(&self.wr, target) {
            // The kernel rounds up to a power of two pages, which `target`
            // already is for any size the kernel made.
            Ok(c) if c > self.cap => {
                let added = c - self.cap;
                self.cap = c;
                added
            }
            _ => {
                // Over `fs.pipe-max-size` or the user's pipe pages.
                self.stuck = true;
                0
            }
        }
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        (self.written - self.read) as usize
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.written == self.read
    }

    /// Room left, by byte count.
    pub fn free(&self) -> usize {
        self.cap - self.len()
    }

    /// Total bytes ever put in (the ring's `end_offset`).
    pub fn end_offset(&self) -> u64 {
        self.written
    }

    /// Total bytes taken out (the one receiver's cursor).
    pub fn start_offset(&self) -> u64 {
        self.read
    }

    /// Move up to `limit` bytes from `sock` into the pipe.
    pub fn fill_from<S: AsFd>(&mut self, sock: &S, limit: usize) -> io::Result<Fill> {
        let want = limit.min(self.free());
        if want == 0 {
            if self.free() == 0 {
                self.full_fills += 1;
            }
            return Ok(Fill::Blocked {
                socket_empty: false,
            });
        }
        let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
        match splice(sock, None, &self.wr, None, want, flags) {
            Ok(0) => Ok(Fill::Eof),
            Ok(n) => {
                self.written += n as u64;
                if self.free() == 0 {
                    self.full_fills += 1;
                }
                Ok(Fill::Moved(n))
            }
            Err(rustix::io::Errno::AGAIN) => {
                // Out of page slots with bytes held counts as full.
                if !self.is_empty() {
                    self.full_fills += 1;
                }
                Ok(Fill::Blocked {
                    socket_empty: self.is_empty(),
                })
            }
            Err(rustix::io::Errno::INTR) => Ok(Fill::Moved(0)),
            Err(e) => Err(e.into()),
        }
    }

    /// Copy `data` in (bytes that came with the request head). Returns how
    /// many were taken.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let want = data.len().min(self.free());
        if want == 0 {
            return 0;
        }
        match rustix::io::write(&self.wr, &data[..want]) {
            Ok(n) => {
                self.written += n as u64;
                n
            }
            Err(_) => 0,
        }
    }

    /// Move up to `limit` held bytes into `sock`.
    pub fn drain_into<S: AsFd>(&mut self, sock: &S, limit: usize) -> io::Result<usize> {
        let want = limit.min(self.len());
        if want == 0 {
            return Ok(0);
        }
        let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
        match splice(&self.rd, None, sock, None, want, flags) {
            Ok(n) => {
                self.read += n as u64;
                Ok(n)
            }
            Err(rustix::io::Errno::AGAIN) => Err(io::ErrorKind::WouldBlock.into()),
            Err(rustix::io::Errno::INTR) => Err(io::ErrorKind::Interrupted.into()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn moves_bytes_socket_to_socket_with_offsets() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server_in, _) = l.accept().unwrap();
        let mut out_client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server_out, _) = l.accept().unwrap();
        server_in.set_nonblocking(true).unwrap();
        server_out.set_nonblocking(true).unwrap();
        let mut kp = KernelPipe::new(64 * 1024).unwrap();
        assert!(kp.free() >= 4096);
        assert_eq!(kp.push(b"early:"), 6);
        client.write_all(b"hello, pipe").unwrap();
        client.flush().unwrap();
        let mut moved = 0;
        out_client
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // Retry until the bytes arrive (they are in flight on loopback).
        for _ in 0..1000 {
            match kp.fill_from(&server_in, 1024).unwrap() {
                Fill::Moved(n) => moved += n,
                Fill::Blocked { socket_empty } => assert!(!socket_empty || kp.len() <= 6),
                Fill::Eof => panic!("eof"),
            }
            if moved == 11 {
                break;
            }
            std::thread::yield_now();
        }
        assert_eq!(moved, 11);
        assert_eq!(kp.end_offset(), 17);
        assert_eq!(kp.drain_into(&server_out, 100).unwrap(), 17);
        assert!(kp.is_empty());
        let mut got = [0u8; 17];
        out_client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"early:hello, pipe");
        drop(client);
        let mut eof = false;
        for _ in 0..1000 {
            if let Fill::Eof = kp.fill_from(&server_in, 1024).unwrap() {
                eof = true;
                break;
            }
            std::thread::yield_now();
        }
        assert!(eof);
    }

    #[test]
    fn grows_after_repeated_full_fills_within_the_room_given() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server_in, _) = l.accept().unwrap();
        server_in.set_nonblocking(true).unwrap();
        let mut kp = KernelPipe::new(64 * 1024).unwrap();
        let base = kp.capacity();
        assert!(!kp.wants_grow(), "no growth before it fills");
        client.write_all(&vec![7u8; 4 * base]).unwrap();
        let mut fills = 0;
        while !kp.wants_grow() {
            // The first fills bring it to the brim; each later one finds it
            // full (nobody drains it).
            match kp.fill_from(&server_in, usize::MAX).unwrap() {
                Fill::Moved(_) | Fill::Blocked { .. } => {}
                Fill::Eof => panic!("eof"),
            }
            fills += 1;
            assert!(fills < 100_000, "never asked to grow");
            std::thread::yield_now();
        }
        assert_eq!(kp.growth(), 0);
        assert_eq!(kp.grow(base - 1), 0, "not more than the room");
        let added = kp.grow(base);
        assert_eq!(added, base, "doubled");
        assert_eq!(kp.capacity(), 2 * base);
        assert_eq!(kp.growth(), base);
        assert!(!kp.wants_grow(), "the count starts again");
        // Bytes held survive the resize and the room is there to use.
        assert!(kp.free() >= base);
    }
}
