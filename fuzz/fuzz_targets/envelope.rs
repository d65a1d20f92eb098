#![no_main]
//! Property checks in crates/fuzzcheck (failover_fuzzcheck), shared with
//! the corpus replay test.

libfuzzer_sys::fuzz_target!(|data: &[u8]| failover_fuzzcheck::check("envelope", data));
