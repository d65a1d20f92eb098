//! faild: the per-host failover state registry daemon.
//!
//! A thin layer of I/O around [`failover::registry`]: TCP and UDP servers,
//! the durable state file, community rules, signals and daemon chores.

pub mod access;
pub mod cli;
pub mod connection;
pub mod logging;
pub mod persist;
pub mod server;
pub mod signals;
pub mod store;
pub mod tcp;
pub mod udp;

mod startup;

pub use startup::main;
