//! Exit statuses, so scripts (and monitoring checks built on `failmon -1`)
//! can tell an unreachable failsh from a usage error without parsing text.

/// Done: the state was printed, or the user quit.
pub const OK: u8 = 0;
/// Anything else: stdout could not be written, no terminal for the UI.
pub const FAILURE: u8 = 1;
/// A bad argument; the same status clap uses for its usage errors.
pub const USAGE: u8 = 2;
/// failsh could not be reached, closed the connection, went silent or sent
/// something that is not a snapshot.
pub const UNREACHABLE: u8 = 3;

/// The exit statuses as shown at the end of `failmon --help`.
pub const SUMMARY: &str = "\
Exit status:
  0  success (state printed, or quit)
  1  other failure (output not written, no terminal for the UI)
  2  bad arguments
  3  failsh unreachable: connection refused or lost, unknown host, no snapshot in time,
     or not a snapshot (-1, --json, -h, -l at start-up)";
