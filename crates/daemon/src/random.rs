//! Random bytes from the kernel, for the seeds of request nonces.

use std::io::Read;

/// 16 bytes from `/dev/urandom`.
pub fn seed() -> std::io::Result<[u8; 16]> {
    let mut seed = [0; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    Ok(seed)
}
