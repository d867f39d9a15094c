//! What `tests/sim.rs` takes from the integration tests' support, until
//! the simulation moves into `tests/it`.

#[path = "../it/support/mod.rs"]
mod support;

pub use support::{test_seed, Rng, SeedReport};
