//! What `tests/sim.rs` takes from the integration tests' support, until
//! the simulation moves into `tests/it`: the seeded-test module, included
//! as it is, and the one method only the simulation uses.

#[path = "../it/support/seed.rs"]
mod seed;

pub use seed::{test_seed, Rng, SeedReport};

impl Rng {
    /// `n` pseudo-random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}
