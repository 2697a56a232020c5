//! The unlinked scratch files that hold what a hit in the index needs.
//!
//! Owns: choosing the directory (the first of the candidates where a file can
//! be created) and creating the file there with no name. Must not own: what is
//! written to it (`build.rs`) or read from it (`index.rs`).
//!
//! Why unlinked: a file with no name cannot be truncated, replaced or read by
//! anyone who does not already hold its descriptor, and it disappears when the
//! last descriptor closes (the generation that owns it is dropped), even if the
//! daemon is killed. `tempfile::tempfile_in` uses `O_TMPFILE` where the
//! filesystem has it, and otherwise creates a file with a random name and
//! removes it at once.

use std::fmt::Write as _;
use std::fs::{DirBuilder, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// An unlinked file and the directory it was created in.
#[derive(Debug)]
pub struct Scratch {
    /// The file, open for reading and writing.
    pub file: File,
    /// Where it was created.
    pub dir: PathBuf,
}

/// Creates an unlinked file in the first of `dirs` that allows it (a missing
/// directory is created, mode 0700: the file lists what the daemon looks for).
///
/// # Errors
///
/// [`Error::ClamAvScratch`] naming every directory tried and why each failed.
pub fn create(dirs: &[&Path]) -> Result<Scratch, Error> {
    let mut failures = String::new();
    for dir in dirs {
        let created = DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .and_then(|()| tempfile::tempfile_in(dir));
        match created {
            Ok(file) => {
                return Ok(Scratch {
                    file,
                    dir: dir.to_path_buf(),
                });
            }
            Err(e) => {
                let sep = if failures.is_empty() { "" } else { "; " };
                let _ = write!(failures, "{sep}{}: {e}", dir.display());
            }
        }
    }
    if failures.is_empty() {
        failures.push_str("no directory given");
    }
    Err(Error::ClamAvScratch {
        message: format!("cannot create the index's scratch file: {failures}"),
    })
}
