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
mod debug;
mod envelope;
mod monitor;
mod proto;
mod statefile;

/// One fuzz target: its name (that of `fuzz/fuzz_targets/<name>.rs` and of
/// `fuzz/corpus/<name>/`) and its check.
pub struct Target {
    pub name: &'static str,
    pub check: fn(&[u8]),
}

/// Every target; the corpus test checks that `fuzz/fuzz_targets/` and
/// `fuzz/corpus/` hold the same list.
pub const TARGETS: &[Target] = &[
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
        name: "monitor",
        check: monitor::snapshot,
    },
    Target {
        name: "debug",
        check: debug::line,
    },
    Target {
        name: "envelope",
        check: envelope::envelope,
    },
];

/// Runs the check of the target called `name`; the fuzz targets call this.
///
/// # Panics
/// When a property fails (that is the point), or when no target has that
/// name.
pub fn check(name: &str, data: &[u8]) {
    let target = TARGETS
        .iter()
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
