//! The one list of binaries whose man pages are generated.
//!
//! Everything else — the files written, the SEE ALSO cross-references, the
//! test that keeps `docs/man/` current — is driven from [`BINARIES`], so a
//! new binary is one line here plus its crate in
//! `Cargo.toml`.

use clap::{Command, CommandFactory};

/// A binary: its name (also the page's file name, `NAME.1`) and a function
/// that builds its clap [`Command`].
pub type Binary = (&'static str, fn() -> Command);

/// Every binary with a generated section-1 page, in the order they are
/// listed under SEE ALSO.
pub const BINARIES: &[Binary] = &[
    ("faild", faild::cli::Cli::command),
    ("failc", failc::cli::Cli::command),
    ("failsh", failsh::cli::Cli::command),
    ("failmon", failmon::cli::Cli::command),
    ("faildebug", faildebug::cli::Cli::command),
];

/// Hand-written pages in `docs/man/` (not generated): `(name, section)`.
/// They are cross-referenced from every generated page and checked with
/// groff by the tests like the generated ones.
pub const HAND_WRITTEN: &[(&str, &str)] = &[
    ("faild-community", "5"),
    ("faild-keys", "5"),
    ("failsh-config", "5"),
];
