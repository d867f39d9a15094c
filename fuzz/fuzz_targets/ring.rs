//! `Ring` under random fills and drains, checked after every step against a
//! `VecDeque` model with three receiver cursors. Every byte written is a
//! function of its absolute offset, so misplaced bytes show up.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use weir::ring::Ring;

const CURSORS: usize = 3;

#[derive(Arbitrary, Debug)]
enum Op {
    Push(u8),
    /// Write the whole free space through `free_slices_mut`, commit `n`.
    Commit(u8),
    /// `fill_from` with `limit`; the reader gives `give` bytes (0 blocks).
    Fill {
        limit: u8,
        give: u8,
    },
    /// `drain_into` for a cursor; the writer takes `take` bytes (0 blocks)
    /// and may claim more than it took.
    Drain {
        who: u8,
        limit: u8,
        take: u8,
        lie: bool,
    },
    /// Release up to the slowest cursor, as the pump does.
    ReleaseSlowest,
    /// Release to an offset near the held range (clamped by the ring).
    ReleaseTo(i8),
    /// Move a cursor anywhere near the held range (readers behind are clamped).
    Seek {
        who: u8,
        delta: i8,
    },
    Clear,
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    ops: Vec<Op>,
}

fn byte_at(offset: u64) -> u8 {
    (offset ^ (offset >> 8) ^ (offset >> 16)).wrapping_mul(31) as u8
}

fn near(base: u64, delta: i8) -> u64 {
    base.saturating_add_signed(i64::from(delta))
}

struct Reader {
    next: u64,
    give: usize,
    called: bool,
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_vectored(&mut [IoSliceMut::new(buf)])
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.called = true;
        if self.give == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for b in bufs.iter_mut() {
            for slot in b.iter_mut() {
                if n == self.give {
                    return Ok(n);
                }
                *slot = byte_at(self.next + n as u64);
                n += 1;
            }
        }
        Ok(n)
    }
}

struct Writer {
    take: usize,
    lie: bool,
    got: Vec<u8>,
    called: bool,
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.called = true;
        if self.take == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        for b in bufs {
            let k = b.len().min(self.take - self.got.len());
            self.got.extend_from_slice(&b[..k]);
        }
        Ok(if self.lie {
            self.got.len() + 1000
        } else {
            self.got.len()
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Model {
    bytes: VecDeque<u8>,
    base: u64,
    cursors: [u64; CURSORS],
}

impl Model {
    fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }
    fn append(&mut self, n: usize) {
        for _ in 0..n {
            let off = self.end();
            self.bytes.push_back(byte_at(off));
        }
    }
    fn release_to(&mut self, offset: u64) {
        while self.base < offset.min(self.end()) {
            self.bytes.pop_front();
            self.base += 1;
        }
    }
    fn from(&self, offset: u64) -> Vec<u8> {
        let skip = offset.clamp(self.base, self.end()) - self.base;
        self.bytes.iter().skip(skip as usize).copied().collect()
    }
}

fn check(ring: &mut Ring, m: &Model) {
    let cap = ring.capacity();
    assert!(cap.is_power_of_two() && cap >= 16);
    assert_eq!(ring.len(), m.bytes.len());
    assert_eq!(ring.free(), cap - m.bytes.len());
    assert_eq!(ring.is_empty(), m.bytes.is_empty());
    assert_eq!(ring.is_full(), m.bytes.len() == cap);
    assert_eq!((ring.start_offset(), ring.end_offset()), (m.base, m.end()));
    for &c in m
        .cursors
        .iter()
        .chain([0, m.base, m.end(), u64::MAX].iter())
    {
        let (a, b) = ring.readable_from(c);
        assert!(a.iter().chain(b).eq(m.from(c).iter()), "cursor {c}");
        assert!(b.is_empty() || !a.is_empty());
    }
    let (a, b) = ring.free_slices_mut();
    assert_eq!(a.len() + b.len(), cap - m.bytes.len());
    if m.bytes.is_empty() {
        assert_eq!(a.len(), cap, "an empty ring fills in one slice");
    }
}

fuzz_target!(|input: Input| {
    let mut ring = Ring::new(16 << (input.capacity % 4));
    let mut m = Model {
        bytes: VecDeque::new(),
        base: 0,
        cursors: [0; CURSORS],
    };
    for op in input.ops {
        match op {
            Op::Push(n) => {
                let data: Vec<u8> = (0..u64::from(n)).map(|i| byte_at(m.end() + i)).collect();
                let took = ring.push(&data);
                assert_eq!(took, data.len().min(ring.capacity() - m.bytes.len()));
                m.append(took);
            }
            Op::Commit(n) => {
                let end = m.end();
                let (a, b) = ring.free_slices_mut();
                for (i, slot) in a.iter_mut().chain(b.iter_mut()).enumerate() {
                    *slot = byte_at(end + i as u64);
                }
                let free = ring.free();
                ring.commit(usize::from(n));
                m.append(usize::from(n).min(free));
            }
            Op::Fill { limit, give } => {
                let mut r = Reader {
                    next: m.end(),
                    give: usize::from(give),
                    called: false,
                };
                let room = usize::from(limit).min(ring.free());
                match ring.fill_from(&mut r, usize::from(limit)) {
                    Ok(n) => {
                        assert!(n <= room && n <= usize::from(give));
                        m.append(n);
                    }
                    Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
                }
                assert_eq!(r.called, room > 0, "read called iff there was room");
            }
            Op::Drain {
                who,
                limit,
                take,
                lie,
            } => {
                let k = usize::from(who) % CURSORS;
                let c = m.cursors[k];
                let want = m.from(c);
                let mut w = Writer {
                    take: usize::from(take),
                    lie,
                    got: Vec::new(),
                    called: false,
                };
                let can = want.len().min(usize::from(limit));
                match ring.drain_into(&mut w, c, usize::from(limit)) {
                    Ok(n) => {
                        assert!(n <= can);
                        assert_eq!(w.got[..], want[..w.got.len()]);
                        if !lie {
                            assert_eq!(n, w.got.len());
                        }
                        // A cursor behind the ring reads from its oldest byte.
                        m.cursors[k] = c.max(m.base) + n as u64;
                    }
                    Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
                }
                assert_eq!(w.called, can > 0, "write called iff bytes to send");
            }
            Op::ReleaseSlowest => {
                let min = m.cursors.iter().copied().min().unwrap_or(0);
                ring.release_to(min);
                m.release_to(min);
            }
            Op::ReleaseTo(delta) => {
                let off = near(m.base, delta);
                ring.release_to(off);
                m.release_to(off);
            }
            Op::Seek { who, delta } => {
                let k = usize::from(who) % CURSORS;
                m.cursors[k] = near(m.base, delta);
            }
            Op::Clear => {
                ring.clear();
                m = Model {
                    bytes: VecDeque::new(),
                    base: 0,
                    cursors: [0; CURSORS],
                };
            }
        }
        check(&mut ring, &m);
    }
});
