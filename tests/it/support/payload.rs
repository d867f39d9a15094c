//! Payloads: deterministic pseudo-random bytes, whole ([`pattern`]) or as
//! a stream ([`PatternStream`], for bodies too large to hold), and FNV-1a
//! hashes to compare them without keeping two copies.

/// Deterministic pseudo-random bytes (xorshift), for payloads.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// The bytes of [`pattern`] as a stream: any sequence of `fill` calls
/// yields the same bytes as one `pattern(total, seed)`.
#[derive(Debug)]
pub struct PatternStream {
    x: u64,
    word: [u8; 8],
    used: usize,
}

impl PatternStream {
    pub fn new(seed: u64) -> Self {
        PatternStream {
            x: seed | 1,
            word: [0; 8],
            used: 8,
        }
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut i = 0;
        while i < buf.len() {
            if self.used == 8 {
                self.x ^= self.x << 13;
                self.x ^= self.x >> 7;
                self.x ^= self.x << 17;
                self.word = self.x.to_le_bytes();
                self.used = 0;
            }
            let take = (8 - self.used).min(buf.len() - i);
            buf[i..i + take].copy_from_slice(&self.word[self.used..self.used + take]);
            self.used += take;
            i += take;
        }
    }
}

/// FNV-1a, enough to compare large payloads without keeping two copies.
pub fn hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Incremental FNV-1a: the same value as [`hash`] over the concatenation of
/// every `update`, for payloads too large to keep.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf29ce484222325)
    }
}

impl Fnv {
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x100000001b3);
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}
