//! Seeded tests: a small generator for test plans ([`Rng`]), the seed
//! (`$WEIR_SEED` to replay, else a fresh one), and [`SeedReport`], which
//! says how to replay a failure.

/// A small seeded generator (splitmix64): test plans, never IDs.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi);
        let span = hi - lo;
        if span == u64::MAX {
            return self.next_u64();
        }
        lo + self.next_u64() % (span + 1)
    }

    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0);
        (self.next_u64() % n as u64) as usize
    }

    /// `n` pseudo-random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// A size in `0..=max`, spread over the orders of magnitude (so that
    /// small and large values both come up often).
    pub fn size(&mut self, max: u64) -> u64 {
        let bits = 64 - max.leading_zeros() as u64;
        let b = self.range(0, bits);
        let cap = if b >= 64 {
            max
        } else {
            ((1u64 << b) - 1).min(max)
        };
        self.range(0, cap)
    }
}

/// The seed for a seeded test: `$WEIR_SEED` to replay, else a fresh one.
pub fn test_seed() -> u64 {
    match std::env::var("WEIR_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("WEIR_SEED={s:?} is not a number"))
        }
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64;
            let mut r = Rng::new(t ^ (u64::from(std::process::id()) << 32) ^ unique());
            r.next_u64()
        }
    }
}

/// Prints how to replay a seeded test when it fails (on drop while
/// panicking): `WEIR_SEED=<seed> cargo test --test <binary> <name>`.
pub struct SeedReport {
    /// The test as `cargo test` filters it in its binary (`soak::soak_ci`).
    pub name: &'static str,
    pub seed: u64,
}

impl Drop for SeedReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let binary = env!("CARGO_CRATE_NAME");
            let (name, seed) = (self.name, self.seed);
            eprintln!(
                "{name} FAILED with seed {seed}: replay with \
                 WEIR_SEED={seed} cargo test --test {binary} {name}"
            );
        }
    }
}

/// Mixed into fresh seeds: two tests that ask in the same nanosecond get
/// different seeds.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
