//! The scan pipeline: a file's bytes, read once through a descriptor, to a decision.
//!
//! Owns the per-thread read buffer and the order of the stages (today: SHA-256, and
//! MD5 only when an MD5 list is loaded, against the hash database). It does not
//! answer events or touch the cache: the worker (daemon) and `vigil scan` (CLI) call
//! [`Scanner::scan_fd`] and act on the result.
//!
//! The daemon hands in the fanotify event fd: reading by path would re-enter
//! fanotify and race with renames. Reads use `pread` from offset 0, so the event
//! fd's own offset (which the opener shares nothing with) does not matter.

use std::os::fd::BorrowedFd;

use md5::Md5;
use nix::errno::Errno;
use sha2::{Digest, Sha256};
use vigil_policy::verdict::hash_reason;
use vigil_policy::{Decision, Reason, decide};

use crate::generation::Generation;

/// Bytes read per `pread`: large enough to amortise the syscall, small enough to
/// stay in L2 while both digests consume it.
pub const READ_CHUNK: usize = 256 * 1024;

/// What a scan found.
#[derive(Debug)]
pub struct ScanResult {
    /// SHA-256 of the bytes read.
    pub sha256: [u8; 32],
    /// Bytes read (the file's size unless it changed during the scan).
    pub size: u64,
    /// The decision reached from every stage's findings.
    pub decision: Decision,
}

/// A reusable scanner: one per worker thread (it owns its read buffer).
pub struct Scanner {
    buf: Vec<u8>,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    /// A scanner with its read buffer allocated.
    pub fn new() -> Scanner {
        Scanner { buf: vec![0; READ_CHUNK] }
    }

    /// Reads the file behind `fd` from offset 0 to EOF in one pass and runs every
    /// stage of `generation` on it.
    ///
    /// # Errors
    /// The `pread` errno (`EIO`, …). `EINTR` is retried.
    pub fn scan_fd(&mut self, fd: BorrowedFd<'_>, generation: &Generation) -> Result<ScanResult, Errno> {
        let mut sha = Sha256::new();
        let mut md5 = generation.hashes.needs_md5().then(Md5::new);
        let mut offset: u64 = 0;
        loop {
            let n = match nix::sys::uio::pread(fd, &mut self.buf, offset as i64) {
                Ok(0) => break,
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            };
            let chunk = &self.buf[..n];
            sha.update(chunk);
            if let Some(m) = md5.as_mut() {
                m.update(chunk);
            }
            offset += n as u64;
        }
        let sha256: [u8; 32] = sha.finalize().into();
        let mut reasons: Vec<Reason> = Vec::new();
        if let Some(entry) = generation.hashes.lookup_sha256(&sha256, offset) {
            reasons.push(hash_reason(entry));
        }
        if let Some(m) = md5 {
            let digest: [u8; 16] = m.finalize().into();
            if let Some(entry) = generation.hashes.lookup_md5(&digest, offset) {
                reasons.push(hash_reason(entry));
            }
        }
        Ok(ScanResult { sha256, size: offset, decision: decide(reasons, generation.config.decision.mode) })
    }
}

/// Reads up to `buf.len()` leading bytes of the file behind `fd` (for sniffing).
///
/// # Errors
/// The `pread` errno.
pub fn read_prefix(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match nix::sys::uio::pread(fd, buf, 0) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}
