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

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};

/// A kernel pipe used as a transfer's buffer.
#[derive(Debug)]
pub struct KernelPipe {
    rd: OwnedFd,
    wr: OwnedFd,
    cap: usize,
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
            written: 0,
            read: 0,
        })
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
            return Ok(Fill::Blocked {
                socket_empty: false,
            });
        }
        let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
        match splice(sock, None, &self.wr, None, want, flags) {
            Ok(0) => Ok(Fill::Eof),
            Ok(n) => {
                self.written += n as u64;
                Ok(Fill::Moved(n))
            }
            Err(rustix::io::Errno::AGAIN) => Ok(Fill::Blocked {
                socket_empty: self.is_empty(),
            }),
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
}
