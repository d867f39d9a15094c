//! Memory shared by every connection (design rule R10): a byte budget for
//! what is assembled whole, and a bounded pool of fixed buffers.
//!
//! What a connection assembles whole before acting on it (a short request
//! body, a WebSocket message to echo, a SockJS message) is bounded per
//! connection by its own limit, and all of them together by one
//! [`Budget`]: each holder takes a [`Lease`] and grows it as its bytes
//! grow; a growth the budget cannot cover is refused, and the holder gives
//! its client the protocol's "too big" answer. A lease gives its bytes back
//! when it is dropped, whatever path ended it, so nothing can leak a
//! reservation.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes that may be held at once across all leases.
#[derive(Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    used: AtomicUsize,
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("limit", &self.inner.limit)
            .field("used", &self.used())
            .finish()
    }
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Budget {
        Budget {
            inner: Arc::new(Inner {
                limit,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// Bytes held now, by every lease.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// An empty lease on this budget.
    pub fn lease(&self) -> Lease {
        Lease {
            budget: self.clone(),
            held: 0,
        }
    }
}

/// A holder's share of a [`Budget`].
pub struct Lease {
    budget: Budget,
    held: usize,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("held", &self.held).finish()
    }
}

impl Lease {
    /// Hold `n` more bytes; false (and nothing taken) when the budget
    /// cannot cover them.
    pub fn grow(&mut self, n: usize) -> bool {
        let inner = &self.budget.inner;
        let mut used = inner.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = used.checked_add(n).filter(|v| *v <= inner.limit) else {
                return false;
            };
            match inner
                .used
                .compare_exchange_weak(used, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.held += n;
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }

    /// Give all of it back (the lease stays usable).
    pub fn clear(&mut self) {
        self.budget
            .inner
            .used
            .fetch_sub(self.held, Ordering::Relaxed);
        self.held = 0;
    }

    /// Bytes this lease holds.
    pub fn held(&self) -> usize {
        self.held
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Fixed buffers of one size, at most `max` out at once, a few spares kept
/// for reuse. A taker that finds none left is refused (and answers its
/// client "try again later"); never an allocation past the bound. A
/// buffer goes back when dropped.
#[derive(Clone)]
pub struct BufPool {
    inner: Arc<Mutex<PoolInner>>,
}

struct PoolInner {
    size: usize,
    max: usize,
    keep: usize,
    out: usize,
    spare: Vec<Box<[u8]>>,
}

impl fmt::Debug for BufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (out, max) = self.counts();
        f.debug_struct("BufPool")
            .field("out", &out)
            .field("max", &max)
            .finish()
    }
}

impl BufPool {
    /// A pool of `max` buffers of `size` bytes, keeping up to `keep` spare.
    pub fn new(size: usize, max: usize, keep: usize) -> BufPool {
        BufPool {
            inner: Arc::new(Mutex::new(PoolInner {
                size,
                max,
                keep,
                out: 0,
                spare: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolInner> {
        // One thread uses it; a poisoned lock still holds valid counts.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer, or `None` when `max` are out.
    pub fn take(&self) -> Option<PoolBuf> {
        let mut p = self.lock();
        if p.out >= p.max {
            return None;
        }
        p.out += 1;
        let size = p.size;
        let buf = p
            .spare
            .pop()
            .unwrap_or_else(|| vec![0u8; size].into_boxed_slice());
        Some(PoolBuf {
            buf: Some(buf),
            pool: self.clone(),
        })
    }

    /// Buffers out, and the most there may be.
    pub fn counts(&self) -> (usize, usize) {
        let p = self.lock();
        (p.out, p.max)
    }
}

/// A buffer from a [`BufPool`]; it goes back when dropped.
pub struct PoolBuf {
    buf: Option<Box<[u8]>>,
    pool: BufPool,
}

impl fmt::Debug for PoolBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuf").field("len", &self.len()).finish()
    }
}

impl Deref for PoolBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.as_deref().unwrap_or(&[])
    }
}

impl DerefMut for PoolBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().unwrap_or(&mut [])
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        let mut p = self.pool.lock();
        p.out -= 1;
        if let Some(b) = self.buf.take() {
            if p.spare.len() < p.keep {
                p.spare.push(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_share_the_limit_and_give_back_on_drop() {
        let b = Budget::new(100);
        let mut a = b.lease();
        let mut c = b.lease();
        assert!(a.grow(60));
        assert!(!c.grow(41), "over the shared limit");
        assert_eq!(c.held(), 0, "a refused growth takes nothing");
        assert!(c.grow(40));
        assert_eq!(b.used(), 100);
        drop(a);
        assert_eq!(b.used(), 40);
        c.clear();
        assert_eq!(b.used(), 0);
        assert!(c.grow(100));
        assert!(!c.grow(1));
    }

    #[test]
    fn the_pool_is_bounded_and_takes_buffers_back() {
        let pool = BufPool::new(16, 2, 1);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        assert!(pool.take().is_none(), "no third buffer");
        assert_eq!(a.len(), 16);
        drop(a);
        assert_eq!(pool.counts(), (1, 2));
        let c = pool.take().unwrap();
        drop((b, c));
        assert_eq!(pool.counts(), (0, 2));
    }
}
