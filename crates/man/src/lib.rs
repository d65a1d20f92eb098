//! The man pages of the failover binaries, rendered from their clap
//! definitions with `clap_mangen`, so `--help` and `man faild` cannot drift
//! apart. `cargo run -p failover-man` rewrites `docs/man/*.1`; a test fails
//! when the committed pages differ from what the code would render.
//!
//! The pages are deterministic: no date, only the crate version, so the
//! same code always renders the same bytes.

pub mod binaries;
pub mod render;

use std::io;
use std::path::{Path, PathBuf};

pub use binaries::{BINARIES, Binary, HAND_WRITTEN};

/// Section of every generated page (user commands).
pub const SECTION: &str = "1";

/// Why pages could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// One rendered page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// `NAME.1`
    pub file_name: String,
    /// The roff source.
    pub text: String,
}

/// `docs/man/` of this source tree, where the committed pages live.
pub fn docs_dir() -> PathBuf {
    // crates/man -> the workspace root
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2);
    root.expect("crates/man sits two levels below the workspace root")
        .join("docs/man")
}

/// Renders the page of every binary in [`BINARIES`].
pub fn pages() -> Vec<Page> {
    BINARIES
        .iter()
        .map(|&(name, command)| Page {
            file_name: format!("{name}.{SECTION}"),
            text: render::page(name, command()),
        })
        .collect()
}

/// Writes every page into `dir` (created if missing) and returns the paths
/// written.
pub fn write_pages(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut written = Vec::new();
    for page in pages() {
        let path = dir.join(&page.file_name);
        std::fs::write(&path, &page.text).map_err(io_error(&path))?;
        written.push(path);
    }
    Ok(written)
}
