//! Replays every committed seed corpus (`fuzz/corpus/<target>/`) through
//! the fuzz targets' property checks, so that plain `cargo test` exercises
//! them even where cargo-fuzz (a nightly tool) is not installed.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use failover_fuzzcheck::targets;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn names_in(dir: &Path, suffix: &str) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(suffix).map(String::from))
        .collect()
}

#[test]
fn every_target_has_a_fuzz_target_and_a_corpus() {
    let checks: BTreeSet<String> = targets().map(|t| t.name.to_string()).collect();
    assert_eq!(names_in(&fuzz_dir().join("fuzz_targets"), ".rs"), checks);
    assert_eq!(names_in(&fuzz_dir().join("corpus"), ""), checks);
}

#[test]
fn every_seed_passes_its_checks() {
    for target in targets() {
        let dir = fuzz_dir().join("corpus").join(target.name);
        let mut seeds = 0;
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| (target.check)(&data));
            assert!(outcome.is_ok(), "{} fails its checks", path.display());
            seeds += 1;
        }
        assert!(seeds >= 10, "{}: only {seeds} seeds", dir.display());
        println!("{}: {seeds} seeds pass", target.name);
    }
}
