//! Ring buffer throughput: bytes moved through a 64 KiB [`weir::ring::Ring`]
//! by `fill_from` / `drain_into` / `release_to`, the pump's three calls,
//! with mock sockets that copy like `readv`/`writev` do.
//!
//! Two shapes: whole-ring reads and writes (a fast receiver), and odd,
//! unequal sizes that make the ring wrap on most calls (a receiver slower
//! than its sender, where the vectored second slice earns its keep). The
//! baseline, measured in the same run, moves the same bytes through a plain
//! buffer with the same mocks: the gap between the two is the ring's cost.

use criterion::{criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::time::Duration;
use weir::ring::Ring;

const RING: usize = 64 << 10;
/// Bytes moved per iteration.
const MOVE: usize = 16 << 20;

/// A socket-like reader: at most `max` bytes per call, copied from a fixed
/// source, filling every buffer it is given (as `readv` does).
///
/// The mocks' buffers sit at an odd offset from a page boundary: large
/// allocations are page-aligned plus a fixed header, and a copy between two
/// buffers with the same offset in the page suffers 4K aliasing, which made
/// whichever bench ran first look several times slower than the rest.
struct MockReader {
    src: Vec<u8>,
    pos: usize,
    max: usize,
}

impl Read for MockReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_vectored(&mut [IoSliceMut::new(buf)])
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let mut left = self.max;
        let mut n = 0;
        for b in bufs.iter_mut() {
            let mut done = 0;
            while done < b.len() && left > 0 {
                let k = (b.len() - done).min(left).min(self.src.len() - self.pos);
                b[done..done + k].copy_from_slice(&self.src[self.pos..self.pos + k]);
                self.pos += k;
                if self.pos == self.src.len() {
                    self.pos = SKEW;
                }
                done += k;
                left -= k;
            }
            n += done;
        }
        Ok(n)
    }
}

/// A socket-like writer: at most `max` bytes per call, copied into a sink
/// (as `writev` copies into the socket buffer).
struct MockWriter {
    sink: Vec<u8>,
    max: usize,
}

impl Write for MockWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut n = 0;
        for b in bufs {
            let k = b.len().min(self.max - n);
            self.sink[SKEW + n..SKEW + n + k].copy_from_slice(&b[..k]);
            n += k;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Move `MOVE` bytes through the ring; returns the bytes written out.
fn pump(ring: &mut Ring, r: &mut MockReader, w: &mut MockWriter) -> usize {
    ring.clear();
    let mut cursor = 0u64;
    let mut read = 0;
    while (cursor as usize) < MOVE {
        if read < MOVE {
            read += ring.fill_from(r, MOVE - read).expect("mock read");
        }
        let n = ring.drain_into(w, cursor, usize::MAX).expect("mock write");
        black_box(&w.sink);
        cursor += n as u64;
        ring.release_to(cursor);
    }
    cursor as usize
}

/// Bytes skipped at the start of the mocks' buffers (see [`MockReader`]).
const SKEW: usize = 1088;

/// The source for the reader: 1 MiB of pattern, at a skewed address.
fn source() -> Vec<u8> {
    (0..(1usize << 20) + SKEW)
        .map(|i| (i * 131 + 7) as u8)
        .collect()
}

/// A sink for the writer, of `n` bytes at a skewed address.
fn sink(n: usize) -> Vec<u8> {
    vec![0; n + 2 * SKEW]
}

fn shapes(c: &mut Criterion) {
    let src = source();
    let mut g = c.benchmark_group("ring_64KiB");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(MOVE as u64));
    for (name, max_read, max_write) in [
        ("whole_ring", RING, RING),
        ("wrapping_48K_in_40K_out", 48 << 10, 40 << 10),
    ] {
        let mut ring = Ring::new(RING);
        let mut r = MockReader {
            src: src.clone(),
            pos: SKEW,
            max: max_read,
        };
        let mut w = MockWriter {
            sink: sink(max_write),
            max: max_write,
        };
        assert_eq!(pump(&mut ring, &mut r, &mut w), MOVE);
        g.bench_function(name, |b| b.iter(|| pump(&mut ring, &mut r, &mut w)));
    }
    g.finish();
}

/// The baseline for the figures above: the same bytes copied by the same
/// mocks with no ring in between (one memcpy in, one out).
fn baseline(c: &mut Criterion) {
    let src = source();
    let mut g = c.benchmark_group("ring_64KiB");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(MOVE as u64));
    let mut r = MockReader {
        src,
        pos: SKEW,
        max: RING,
    };
    let mut w = MockWriter {
        sink: sink(RING),
        max: RING,
    };
    // The plain buffer is skewed too, as a ring's would be by its header.
    let mut plain = vec![0u8; RING + 2 * SKEW];
    let buf = &mut plain[SKEW / 2..SKEW / 2 + RING];
    g.bench_function("baseline_plain_buffer", |b| {
        b.iter(|| {
            let mut moved = 0;
            while moved < MOVE {
                let n = r.read(buf).expect("mock read");
                let k = w.write(&buf[..n]).expect("mock write");
                black_box(&w.sink);
                moved += k;
            }
            moved
        })
    });
    g.finish();
}

/// Every bench in this file, configured from the command line.
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    shapes(&mut c);
    baseline(&mut c);
}

criterion_main!(benches);
