//! The crate's one error type.
//!
//! Owns nothing. Feature extraction has no errors (every input gets a row); errors
//! come from reading archives for training (naming the archive and member) and from
//! loading or running a model bundle (naming the bundle).

use std::io;
use std::path::PathBuf;

/// What went wrong, with the file (and archive member) it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive could not be opened or its first bytes read.
    #[error("cannot open archive {}: {source}", path.display())]
    Open {
        /// The archive.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The archive stream is corrupt or could not be read (xz or tar level).
    #[error("cannot read archive {}: {source}", path.display())]
    Read {
        /// The archive.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// One member could not be read.
    #[error("cannot read member {member} of {}: {source}", path.display())]
    Member {
        /// The archive.
        path: PathBuf,
        /// The member's name.
        member: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A model bundle that cannot be used: unreadable, inconsistent with its
    /// manifest, or made for another feature schema.
    #[error("model bundle {origin}: {reason}")]
    Bundle {
        /// `builtin` or the bundle directory.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// Running a loaded model failed.
    #[error("model inference: {0}")]
    Inference(String),
}
