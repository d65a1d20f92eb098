//! A deterministic cluster simulator. Each simulated host runs the very
//! registry faild serves ([`failover::registry`]) and the very step machine
//! failsh drives ([`failover::machine`]); the network, the clock, the hooks
//! and the faults are simulated, from a seed, so a failing seed replays
//! exactly. See `docs/safety.md`.

pub mod heard;
pub mod rng;
pub mod world;

pub use world::{Driver, FaultKind, Report, run, run_with};
