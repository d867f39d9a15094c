//! Readiness kept in user space (design rules R1–R3).
//!
//! Every socket is registered once for readable and writable, edge-triggered.
//! The kernel's edges are accumulated in `event`; a bit is cleared only when
//! the operation it allows returns `WouldBlock` (or end of stream for reads).
//! What the connection currently wants to do lives in `interest`. Work is done
//! only on `event & interest`, so pausing a direction is dropping an interest
//! bit, and resuming it needs no new edge from the kernel: the event bit was
//! kept.

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};

/// A small set of readiness bits.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Ready(u8);

impl Ready {
    /// No bits.
    pub const EMPTY: Ready = Ready(0);
    /// Reading would not block.
    pub const READABLE: Ready = Ready(1);
    /// Writing would not block.
    pub const WRITABLE: Ready = Ready(2);
    /// The peer shut down its writing side, or the socket hung up.
    pub const HUP: Ready = Ready(4);
    /// The socket reported an error.
    pub const ERROR: Ready = Ready(8);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Ready) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Whether no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Clear the bits of `other`.
    pub fn remove(&mut self, other: Ready) {
        self.0 &= !other.0;
    }

    /// Set the bits of `other`.
    pub fn insert(&mut self, other: Ready) {
        self.0 |= other.0;
    }

    /// Build from a mio event.
    pub fn from_event(e: &mio::event::Event) -> Ready {
        let mut r = Ready::EMPTY;
        if e.is_readable() {
            r.insert(Ready::READABLE);
        }
        if e.is_writable() {
            r.insert(Ready::WRITABLE);
        }
        if e.is_read_closed() || e.is_write_closed() {
            r.insert(Ready::HUP);
        }
        if e.is_error() {
            r.insert(Ready::ERROR);
        }
        r
    }
}

impl BitOr for Ready {
    type Output = Ready;
    fn bitor(self, rhs: Ready) -> Ready {
        Ready(self.0 | rhs.0)
    }
}

impl BitOrAssign for Ready {
    fn bitor_assign(&mut self, rhs: Ready) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Ready {
    type Output = Ready;
    fn bitand(self, rhs: Ready) -> Ready {
        Ready(self.0 & rhs.0)
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [(1, "R"), (2, "W"), (4, "HUP"), (8, "ERR")];
        let mut first = true;
        for (bit, name) in names {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// What the kernel said (`event`) and what the connection wants (`interest`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Edges seen and not yet consumed by a `WouldBlock`.
    pub event: Ready,
    /// Directions the connection wants to act on now.
    pub interest: Ready,
}

impl Readiness {
    /// The bits that can be acted on now.
    pub fn filtered(&self) -> Ready {
        self.event & self.interest
    }

    /// Whether reading is both possible and wanted.
    pub fn can_read(&self) -> bool {
        self.filtered().contains(Ready::READABLE)
    }

    /// Whether writing is both possible and wanted.
    pub fn can_write(&self) -> bool {
        self.filtered().contains(Ready::WRITABLE)
    }

    /// Whether the kernel reported a hang-up or an error (always of interest).
    pub fn hung_up(&self) -> bool {
        self.event.contains(Ready::HUP) || self.event.contains(Ready::ERROR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filtered_is_event_and_interest() {
        let mut r = Readiness::default();
        r.event.insert(Ready::READABLE | Ready::WRITABLE);
        assert!(!r.can_read());
        r.interest.insert(Ready::READABLE);
        assert!(r.can_read());
        assert!(!r.can_write());
        // Pausing keeps the edge: dropping and restoring interest resumes.
        r.interest.remove(Ready::READABLE);
        assert!(!r.can_read());
        r.interest.insert(Ready::READABLE);
        assert!(r.can_read());
        r.event.remove(Ready::READABLE);
        assert!(!r.can_read());
    }

    #[test]
    fn contains_needs_all_bits() {
        let r = Ready::READABLE | Ready::HUP;
        assert!(r.contains(Ready::HUP));
        assert!(!r.contains(Ready::READABLE | Ready::WRITABLE));
        assert!(!r.contains(Ready::EMPTY));
        assert_eq!(format!("{:?}", r), "R|HUP");
    }
}
