//! vigil's own executable, recognised by content so that no scan judges it.
//!
//! The binary necessarily carries strings that detection content looks for
//! (the model's indicator tables, error texts of its dependencies): the
//! built-in rules once matched it, and third-party rules may. A file whose
//! SHA-256 equals that of the running executable is the program already
//! running as root, so trusting it adds nothing an attacker could use. The
//! digest is computed lazily, the first time a scanned file has exactly the
//! executable's size, so other scans pay one integer comparison.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use vigil_policy::{HashEntry, HashKind};

/// The name an allow entry for the executable carries in verdicts and logs.
pub const OWN_EXECUTABLE: &str = "vigil's own executable";

/// One executable file: its size now, its digest when first needed.
#[derive(Debug)]
pub struct OwnExecutable {
    path: PathBuf,
    size: u64,
    digest: OnceLock<Option<[u8; 32]>>,
}

impl OwnExecutable {
    /// The file at `path` (`None` if it cannot be read).
    pub fn of(path: &Path) -> Option<OwnExecutable> {
        let size = std::fs::metadata(path).ok()?.len();
        Some(OwnExecutable {
            path: path.to_owned(),
            size,
            digest: OnceLock::new(),
        })
    }

    /// The running vigil executable (`/proc/self/exe`), read once per process.
    pub fn current() -> Option<&'static OwnExecutable> {
        static CURRENT: OnceLock<Option<OwnExecutable>> = OnceLock::new();
        CURRENT
            .get_or_init(|| OwnExecutable::of(Path::new("/proc/self/exe")))
            .as_ref()
    }

    /// Whether a file of `size` bytes with digest `sha256` is this one.
    pub fn is(&self, sha256: &[u8; 32], size: u64) -> bool {
        size == self.size && self.digest().is_some_and(|d| d == sha256)
    }

    /// The allow entry a match is reported with.
    pub fn entry(&self) -> HashEntry {
        HashEntry {
            name: OWN_EXECUTABLE.to_owned(),
            size: Some(self.size),
            kind: HashKind::Sha256,
            source: Arc::from(Path::new("/proc/self/exe")),
            line: 0,
        }
    }

    fn digest(&self) -> Option<&[u8; 32]> {
        self.digest
            .get_or_init(|| {
                crate::engine::scan::hash_file(&self.path)
                    .ok()
                    .map(|(d, _)| d)
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn a_file_is_recognised_by_size_and_digest_only() {
        let dir = std::env::temp_dir().join(format!("vigil-own-exe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("exe");
        std::fs::write(&path, b"not really an executable").unwrap();
        let own = OwnExecutable::of(&path).unwrap();
        let digest: [u8; 32] = Sha256::digest(b"not really an executable").into();
        let size = 24;
        // A wrong size is refused without reading the file.
        assert!(!own.is(&digest, size + 1));
        assert!(own.is(&digest, size));
        let mut other = digest;
        other[0] ^= 1;
        assert!(!own.is(&other, size));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(own.entry().name, OWN_EXECUTABLE);
    }
}
