//! The one error type of `vigil-update`.
//!
//! Owns: nothing but the [`Error`] enum. Every variant names the source (its
//! `name` from `[[update.sources]]`) or the file, and where (URL, archive
//! member), so that `Display` alone tells the operator what is wrong and where.

use std::io;
use std::path::PathBuf;

/// Everything that can make an update, a rollback or a bundle operation fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A download failed: connection, TLS, timeout, or an HTTP error status.
    #[error("source {source_name:?}: {url}: {message}")]
    Fetch {
        /// The source.
        source_name: String,
        /// What was requested.
        url: String,
        /// What went wrong.
        message: String,
    },

    /// The download failed its signature or digest check.
    #[error("source {source_name:?}: {url}: verification failed: {message}")]
    Verify {
        /// The source.
        source_name: String,
        /// What was downloaded.
        url: String,
        /// Why it was refused.
        message: String,
    },

    /// An archive (or bundle) is damaged, unsafe or over a limit.
    #[error("source {source_name:?}: {url}: {}{message}", member.as_deref().map(|m| format!("member {m:?}: ")).unwrap_or_default())]
    Archive {
        /// The source (or, for `vigil bundle`, the bundle file).
        source_name: String,
        /// Where it came from.
        url: String,
        /// The member at fault, if one is.
        member: Option<String>,
        /// What is wrong.
        message: String,
    },

    /// The new content does not load the way the daemon would load it.
    #[error("the new content does not load: {message}")]
    Check {
        /// The loader's error (it names the file and line).
        message: String,
    },

    /// A file or directory of the update store (or a key or bundle) could not be
    /// read or written.
    #[error("{}: {message}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        message: &'static str,
        /// What the operating system said.
        source: io::Error,
    },

    /// A key, bundle manifest or state file is malformed.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// `--rollback` with no earlier version to go back to.
    #[error("{}: no previous version to roll back to{}", dir.display(), current.as_deref().map(|c| format!(" (current: {c})")).unwrap_or_default())]
    NoPrevious {
        /// The update directory.
        dir: PathBuf,
        /// The current version, if any.
        current: Option<String>,
    },
}

impl Error {
    /// A constructor of [`Error::Io`] for `path`, for `map_err`.
    pub fn io(path: impl Into<PathBuf>, message: &'static str) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            path,
            message,
            source,
        }
    }
}
