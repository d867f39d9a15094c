//! A memory budget shared by every connection (design rule R10).
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
}
