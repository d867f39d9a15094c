//! A connection's byte stream: plain TCP, or TLS over TCP (feature `tls`).
//!
//! Families read and write a [`Sock`] as they would a socket; TLS is
//! invisible to them but for two things. Ciphertext that rustls could not
//! hand to the kernel yet waits inside it: the loop flushes it whenever the
//! socket is writable ([`Sock::flush_pending`]), and a connection counts as
//! flushed only when it is empty, so an answer is never cut by a close.
//! And a TLS stream has no descriptor to `splice(2)` (the kernel would move
//! records, not the body): its pipes use a ring.
//!
//! Readiness keeps its rules (R1–R3): a read returns `WouldBlock` only when
//! rustls holds no plaintext and the socket has nothing more, so the
//! readable bit is cleared only then; a write returns `WouldBlock` only
//! when rustls's bounded output is full and the socket refused more.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

#[cfg(feature = "tls")]
use crate::wire::Ready;
use crate::wire::{Readiness, Stream};

#[cfg(feature = "tls")]
pub use tls::TlsSock;

/// A connection's stream.
#[derive(Debug)]
pub enum Sock {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, accepted on a `--tls-listen` address.
    #[cfg(feature = "tls")]
    Tls(Box<TlsSock>),
}

impl Sock {
    /// The TCP socket underneath (to register it, to set options).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Sock::Plain(s) => s,
            #[cfg(feature = "tls")]
            Sock::Tls(t) => &t.tcp,
        }
    }

    /// The TCP socket underneath, mutably (to register or deregister it).
    pub fn tcp_mut(&mut self) -> &mut TcpStream {
        match self {
            Sock::Plain(s) => s,
            #[cfg(feature = "tls")]
            Sock::Tls(t) => &mut t.tcp,
        }
    }

    /// Whether the connection came in over TLS (its URLs are `https`).
    pub fn is_tls(&self) -> bool {
        match self {
            Sock::Plain(_) => false,
            #[cfg(feature = "tls")]
            Sock::Tls(t) => !t.is_plain(),
        }
    }

    /// Whether a client spoke plain HTTP to a TLS address: its request is
    /// read as plain text only so that it can be told so.
    pub fn plain_on_tls_port(&self) -> bool {
        match self {
            Sock::Plain(_) => false,
            #[cfg(feature = "tls")]
            Sock::Tls(t) => t.is_plain(),
        }
    }

    /// Copy what the kernel holds into `buf` without taking it (plain TCP
    /// only: a TLS stream's kernel bytes are records, not the request, so
    /// it answers `Unsupported` and the caller reads the ordinary way).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Plain(s) => s.peek(buf),
            #[cfg(feature = "tls")]
            Sock::Tls(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// Whether the body on this stream can move by `splice(2)`.
    pub fn spliceable(&self) -> bool {
        matches!(self, Sock::Plain(_))
    }

    /// Whether output waits inside the stream (TLS records not yet in the
    /// kernel).
    pub fn has_pending(&self) -> bool {
        match self {
            Sock::Plain(_) => false,
            #[cfg(feature = "tls")]
            Sock::Tls(t) => t.has_pending(),
        }
    }

    /// Hand waiting output to the kernel while the socket is writable.
    /// `Ok(true)` when nothing waits; a `WouldBlock` clears the writable
    /// bit.
    pub fn flush_pending(&mut self, ready: &mut Readiness) -> io::Result<bool> {
        match self {
            Sock::Plain(_) => {
                let _ = ready;
                Ok(true)
            }
            #[cfg(feature = "tls")]
            Sock::Tls(t) => {
                if !t.has_pending() {
                    return Ok(true);
                }
                if !ready.event.contains(Ready::WRITABLE) {
                    return Ok(false);
                }
                match t.flush_tls() {
                    Ok(done) => Ok(done),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready.event.remove(Ready::WRITABLE);
                        Ok(false)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// End the writing side: over TLS a `close_notify` first (best effort:
    /// everything else was flushed before this is called), then a FIN.
    pub fn shutdown_write(&mut self) {
        #[cfg(feature = "tls")]
        if let Sock::Tls(t) = self {
            t.close_notify();
        }
        let _ = self.tcp().shutdown(Shutdown::Write);
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Sock::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Sock::Tls(t) => t.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Sock::Plain(s) => s.write_vectored(bufs),
            #[cfg(feature = "tls")]
            Sock::Tls(t) => t.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for Sock {
    #[cfg(target_os = "linux")]
    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        match self {
            Sock::Plain(s) => Some(s.as_fd()),
            #[cfg(feature = "tls")]
            Sock::Tls(_) => None,
        }
    }

    /// Body bytes waiting in the kernel. Over TLS the kernel holds records,
    /// not body bytes, so nothing is counted: a parked TLS sender that
    /// closes is never taken to have its whole body here.
    fn queued(&self) -> u64 {
        match self {
            Sock::Plain(s) => {
                #[cfg(target_os = "linux")]
                {
                    rustix::io::ioctl_fionread(s).unwrap_or(0)
                }
                #[cfg(not(target_os = "linux"))]
                {
                    let _ = s;
                    0
                }
            }
            #[cfg(feature = "tls")]
            Sock::Tls(_) => 0,
        }
    }
}

#[cfg(feature = "tls")]
mod tls {
    use std::io::{self, Read, Write};
    use std::sync::Arc;

    use mio::net::TcpStream;
    use rustls::{ServerConfig, ServerConnection};

    /// Most TLS output a connection buffers before its writes block: the
    /// bound on what one TLS connection holds besides its input record.
    pub const OUTPUT_LIMIT: usize = 64 * 1024;

    #[derive(Debug)]
    enum Mode {
        /// Nothing read yet: the first byte says whether this is TLS.
        Sniff(Arc<ServerConfig>),
        /// A TLS session.
        Tls(Box<ServerConnection>),
        /// A client that spoke plain HTTP to the TLS address: its request
        /// is read as is, to be answered with a clear error.
        Plain,
    }

    /// A TLS server stream over a nonblocking TCP socket, sans blocking:
    /// rustls's `ServerConnection` is fed and drained in the loop's steps.
    #[derive(Debug)]
    pub struct TlsSock {
        pub(super) tcp: TcpStream,
        mode: Mode,
        /// The socket reached end of stream.
        tcp_eof: bool,
    }

    /// The first byte of a TLS handshake record.
    const HANDSHAKE: u8 = 0x16;

    impl TlsSock {
        /// A stream that will negotiate TLS with `config`.
        pub fn new(tcp: TcpStream, config: Arc<ServerConfig>) -> TlsSock {
            TlsSock {
                tcp,
                mode: Mode::Sniff(config),
                tcp_eof: false,
            }
        }

        pub(super) fn is_plain(&self) -> bool {
            matches!(self.mode, Mode::Plain)
        }

        pub(super) fn has_pending(&self) -> bool {
            matches!(&self.mode, Mode::Tls(c) if c.wants_write())
        }

        /// Write TLS output to the socket until none is left (`Ok(true)`)
        /// or the socket blocks (`WouldBlock`).
        pub(super) fn flush_tls(&mut self) -> io::Result<bool> {
            let Mode::Tls(conn) = &mut self.mode else {
                return Ok(true);
            };
            while conn.wants_write() {
                match conn.write_tls(&mut self.tcp) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(true)
        }

        /// Flush, with a blocked socket not an error.
        fn try_flush(&mut self) -> io::Result<()> {
            match self.flush_tls() {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                Err(e) => Err(e),
            }
        }

        pub(super) fn close_notify(&mut self) {
            if let Mode::Tls(conn) = &mut self.mode {
                conn.send_close_notify();
                let _ = self.try_flush();
            }
        }

        /// The first byte decides the mode.
        fn sniff(&mut self) -> io::Result<()> {
            let Mode::Sniff(config) = &self.mode else {
                return Ok(());
            };
            let mut first = [0u8; 1];
            let n = loop {
                match self.tcp.peek(&mut first) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                // Closed before a byte: an empty read reports it.
                self.mode = Mode::Plain;
                return Ok(());
            }
            self.mode = if first[0] == HANDSHAKE {
                let mut conn = ServerConnection::new(config.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                conn.set_buffer_limit(Some(OUTPUT_LIMIT));
                Mode::Tls(Box::new(conn))
            } else {
                Mode::Plain
            };
            Ok(())
        }

        pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.sniff()?;
            let conn = match &mut self.mode {
                Mode::Plain => return self.tcp.read(buf),
                Mode::Sniff(_) => unreachable!("sniffed above"),
                Mode::Tls(c) => c,
            };
            loop {
                match conn.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The socket ended without a close_notify. HTTP's own
                    // framing says whether anything was cut, as over TCP.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                if self.tcp_eof {
                    return Ok(0);
                }
                match conn.read_tls(&mut self.tcp) {
                    Ok(0) => self.tcp_eof = true,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // Handshake replies go out as soon as they are made.
                        while conn.wants_write() {
                            match conn.write_tls(&mut self.tcp) {
                                Ok(_) => {}
                                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                                Err(e) => return Err(e),
                            }
                        }
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                }
                if let Err(e) = conn.process_new_packets() {
                    // Tell the client why (an alert), then fail.
                    let _ = conn.write_tls(&mut self.tcp);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        }

        pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if matches!(self.mode, Mode::Plain | Mode::Sniff(_)) {
                return self.tcp.write(buf);
            }
            if buf.is_empty() {
                return Ok(0);
            }
            // Make room first: what rustls holds goes to the kernel.
            self.try_flush()?;
            let Mode::Tls(conn) = &mut self.mode else {
                unreachable!("checked above")
            };
            let n = conn.writer().write(buf)?;
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.try_flush()?;
            Ok(n)
        }

        pub(super) fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
            if matches!(self.mode, Mode::Plain | Mode::Sniff(_)) {
                return self.tcp.write_vectored(bufs);
            }
            match bufs.iter().find(|b| !b.is_empty()) {
                Some(b) => self.write(b),
                None => Ok(0),
            }
        }
    }
}
