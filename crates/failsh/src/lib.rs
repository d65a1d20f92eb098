//! failsh: the failover shell. Runs a per-host Lua config, polls the faild of
//! every master and slave, and drives each service's
//! [`Machine`](failover::machine::Machine) with real time, sockets and hooks.

pub mod batcher;
pub mod cli;
pub mod client;
pub mod config;
pub mod debug;
pub mod dump;
pub mod engine;
pub mod hooks;
pub mod listen;
pub mod monitor;
mod reload;
pub mod slots;
pub mod unread;

mod startup;

pub use startup::main;
