//! Property checks of every parser that reads what another party wrote:
//! faild's requests and replies, the HMAC envelope of signed ones,
//! community files, state files, failsh's monitor snapshots and its
//! debug-port lines.
//!
//! Each check takes arbitrary bytes and panics when a property fails, so
//! the cargo-fuzz targets in `fuzz/` are one line each, and the committed
//! seed corpora (`fuzz/corpus/<target>/`) are replayed by an ordinary
//! `cargo test` (`tests/corpus.rs`) through the very same code: CI
//! exercises every corpus even where cargo-fuzz is not installed.
//!
//! The checks are properties, not only "no panic": what a decoder accepts
//! re-encodes to text that decodes to the same value, an encoder's output
//! is always accepted by its decoder, errors stay on one line. See
//! `docs/fuzzing.md`.

mod community;
#[cfg(feature = "daemons")]
mod debug;
mod envelope;
#[cfg(feature = "daemons")]
mod monitor;
mod proto;
mod statefile;

/// One fuzz target: its name (that of `fuzz/fuzz_targets/<name>.rs` and of
/// `fuzz/corpus/<name>/`) and its check.
pub struct Target {
    pub name: &'static str,
    pub check: fn(&[u8]),
}

/// The targets of the pure core (`failover` only): quick to build with the
/// fuzzer's instrumentation, so CI's short fuzz run takes just these.
const CORE: &[Target] = &[
    Target {
        name: "request",
        check: proto::request,
    },
    Target {
        name: "reply",
        check: proto::reply,
    },
    Target {
        name: "community",
        check: community::rules,
    },
    Target {
        name: "statefile",
        check: statefile::state_file,
    },
    Target {
        name: "envelope",
        check: envelope::envelope,
    },
];

/// The targets that need the daemons' and clients' crates (failsh's
/// tokio and vendored Lua among them: minutes to build instrumented).
#[cfg(feature = "daemons")]
const DAEMONS: &[Target] = &[
    Target {
        name: "monitor",
        check: monitor::snapshot,
    },
    Target {
        name: "debug",
        check: debug::line,
    },
];
#[cfg(not(feature = "daemons"))]
const DAEMONS: &[Target] = &[];

/// Every target built with this crate's features; the corpus test checks
/// that `fuzz/fuzz_targets/` and `fuzz/corpus/` hold the same list.
pub fn targets() -> impl Iterator<Item = &'static Target> {
    CORE.iter().chain(DAEMONS)
}

/// Runs the check of the target called `name`; the fuzz targets call this.
///
/// # Panics
/// When a property fails (that is the point), or when no target has that
/// name.
pub fn check(name: &str, data: &[u8]) {
    let target = targets()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no fuzz target {name:?}"));
    (target.check)(data);
}

/// An error message that is sent or logged as one line.
fn assert_one_line(what: &str, message: &str) {
    assert!(
        !message.contains(['\n', '\r']),
        "{what} spans lines: {message:?}"
    );
}
