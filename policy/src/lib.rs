//! `vigil-policy`: what vigil watches, what it knows is bad, and how it decides.
//!
//! This crate is pure: no threads, no kernel interfaces, no async runtime. The agent
//! loads a [`Config`], builds [`Exclusions`] and a [`HashDb`] from it once per
//! generation, and then, for every scanned file, turns what the stages found into a
//! [`Decision`] with [`decide`].
//!
//! Main types:
//! - [`Config`]: the TOML configuration (`vigil.toml` plus `conf.d/*.toml` drop-ins).
//!   Every error names the file, the line and the key.
//! - [`HashDb`]: known-bad SHA-256 and MD5 digests from ClamAV `.hsb`/`.hdb` files or
//!   plain `sha256sum`-style lists.
//! - [`Exclusions`]: path globs and executables that are never scanned.
//! - [`Reason`], [`Verdict`], [`Action`], [`Decision`]: the result of a scan.
//!
//! Guarantees:
//! - Everything called per event does no I/O: [`HashDb::lookup_sha256`],
//!   [`HashDb::lookup_md5`] and [`Exclusions::process_excluded`] never allocate;
//!   [`decide`] only moves its input; [`Exclusions::path_excluded`] uses globset,
//!   which may allocate matcher scratch space the first time a thread uses it.
//! - Loading is all-or-nothing: a bad config or hash list is an [`Error`] and nothing
//!   partial is returned, so the agent can keep its previous generation.
//! - The enums ([`Verdict`], [`Action`], [`Stage`], [`Mode`], [`FailMode`]) are
//!   exhaustive: adding a case breaks every match that must handle it.
//!
//! ```
//! use std::path::Path;
//! use sha2::{Digest, Sha256};
//! use vigil_policy::{Action, Config, HashDb, Mode, Verdict, decide, verdict::hash_reason};
//!
//! let config = Config::from_toml("[decision]\nmode = \"enforce\"\n", Path::new("vigil.toml"))?;
//! assert_eq!(config.decision.mode, Mode::Enforce);
//!
//! // A plain list: `<sha256> [name]` per line.
//! let sample = b"pretend this is malware";
//! let digest: [u8; 32] = Sha256::digest(sample).into();
//! let mut db = HashDb::empty();
//! db.parse_into(&format!("{} Test.Sample\n", hex::encode(digest)), Path::new("local.sha256"))?;
//!
//! let reasons: Vec<_> = db
//!     .lookup_sha256(&digest, sample.len() as u64)
//!     .map(hash_reason)
//!     .into_iter()
//!     .collect();
//! let decision = decide(reasons, config.decision.mode);
//! assert_eq!(decision.verdict, Verdict::Malicious);
//! assert_eq!(decision.action, Action::Deny);
//! # Ok::<(), vigil_policy::Error>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod exclusions;
pub mod hashdb;
pub mod verdict;

pub use config::{Config, EventSink, FailMode, Mode, ScanOnOpen, WatchPath};
pub use error::Error;
pub use exclusions::Exclusions;
pub use hashdb::{HashDb, HashEntry, HashKind};
pub use verdict::{Action, Decision, Reason, Stage, Verdict, decide};
