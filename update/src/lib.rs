//! `vigil-update`: content that stays current.
//!
//! `vigil update` fetches the sources of `[update]` (YARA rule archives, hash
//! lists, vigil's own signed bundles) over HTTPS (or plain HTTP for a source
//! verified by signature or digest), verifies each download before anything
//! parses it, unpacks it with path and size checks into a staged version, has
//! the caller load that version exactly as the daemon will, and only then
//! switches the `current` link atomically. The daemon loads `current` beside
//! `[content]` on every start and reload ([`layout::current`]).
//!
//! Main items:
//! - [`run::update`] / [`run::Report`]: one run and its exit code (0 updated,
//!   1 nothing new, 2 error).
//! - [`store::Store`]: versions, the `current` link, pruning, rollback, state.
//! - [`layout`]: the directory layout and [`layout::Loadable`], what the daemon
//!   loads from a version.
//! - [`bundle`]: `vigil bundle pack` / `verify` / `keygen` (minisign, Ed25519).
//! - [`fetch`], [`verify`], [`unpack`]: the steps.
//! - [`status::status`]: what `vigil update --status` and `vigil status` show.
//!
//! Guarantees: a download that fails verification is never unpacked; an archive
//! with an absolute path, `..`, a link or a special file, or over a limit, is
//! refused whole before anything is written; a version that does not load is
//! never switched to; `current` always names a complete version.
//!
//! ```
//! use vigil_update::run::{Report, SourceOutcome};
//! let report = Report { sources: vec![("a".into(), SourceOutcome::NotModified)], switched: None,
//!     previous: None, errors: vec![], pruned: vec![] };
//! assert_eq!(report.exit_code(), 1);
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bundle;
pub mod error;
pub mod fetch;
pub mod layout;
pub mod run;
pub mod status;
pub mod store;
pub mod unpack;
pub mod verify;

pub use error::Error;
