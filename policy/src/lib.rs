//! `vigil-policy`: what vigil watches, what it knows is bad, and how it decides.
//!
//! This crate is pure: no threads of its own, no kernel interfaces, no async runtime
//! (yara-x starts one heartbeat thread for scan timeouts; see [`rules`]). The agent
//! loads a [`Config`], builds [`Exclusions`], a [`HashDb`] and a [`RuleSet`] from it
//! once per generation, and then, for every scanned file, collects the [`Reason`]s
//! of each stage (hash lookup, YARA rules, [`heuristics`]) and turns them into a
//! [`Decision`] with [`decide`].
//!
//! Main types:
//! - [`Config`]: the TOML configuration (`vigil.toml` plus `conf.d/*.toml` drop-ins).
//!   Every error names the file, the line and the key.
//! - [`HashDb`]: known-bad SHA-256 and MD5 digests from ClamAV `.hsb`/`.hdb` files or
//!   plain `sha256sum`-style lists.
//! - [`ClamDb`]: ClamAV's whole-file hash databases (`.cvd`/`.cld` containers
//!   and loose `.hdb`/`.hsb`/`.hdu`/`.hsu` lists): sorted 8-byte digest prefixes
//!   in memory, the records and names in an unlinked scratch file; lookups
//!   never allocate, and a miss does no I/O (a hit reads its record with `pread`).
//! - [`Allowlist`]: files the administrator declared good, by SHA-256 (plain lists,
//!   ClamAV `.sfp`) or MD5 (ClamAV `.fp`); an allowed file skips every detection
//!   stage, and [`Allowlist::conflicts`] names the hashes also on a block list.
//! - [`RuleSet`] / [`RuleScanner`]: YARA rules compiled with yara-x, one namespace
//!   per file; a match is a [`Reason`] scored from the rule's `severity`.
//! - [`heuristics::analyze`]: ELF and script heuristics over the file's bytes, each
//!   finding with a stable id (`elf.upx`, `script.reverse_shell`, …).
//! - [`Exclusions`]: path globs and executables that are never scanned.
//! - [`Interpreters`]: the programs whose opens of text files are scanned as scripts.
//! - [`ExecPolicy`]: exec rules (the administrator's, then the profile's: `desktop`,
//!   `server`, `lockdown`), evaluated before any scan, first match wins;
//!   [`execpolicy::trusted_only`] decides a `trusted-only` rule, including the
//!   package-upgrade exceptions.
//! - [`TrustStore`]: files installed by the package manager with their SHA-256,
//!   O(1) lookup by path; the parsers of dpkg's `status` and `md5sums` lists.
//! - [`Reason`], [`Verdict`], [`Decision`]: the result of a scan;
//!   [`Decision::explain`] says how it was reached.
//! - [`answer`]: the one function from a verdict, the exec rules' outcome
//!   ([`RuleOutcome`]) and the mode to the [`Action`] the agent takes, with [`Why`].
//!
//! Guarantees:
//! - Everything called per event does no I/O: [`HashDb::lookup_sha256`],
//!   [`HashDb::lookup_md5`], [`Allowlist::lookup`] and [`Exclusions::process_excluded`] never allocate;
//!   [`decide`] only moves its input; [`Exclusions::path_excluded`] uses globset,
//!   which may allocate matcher scratch space the first time a thread uses it;
//!   [`heuristics::analyze`] and [`RuleScanner::scan`] allocate only for findings
//!   (and ELF table parsing), never panic on malformed input, and are bounded
//!   ([`heuristics::elf::PARSE_SIZE_CAP`], [`heuristics::script::SCRIPT_SIZE_CAP`],
//!   the rule timeout).
//! - Loading is all-or-nothing: a bad config, hash list or rule file (unless
//!   `content.rules_on_error = "skip"`) is an [`Error`] and nothing partial is
//!   returned, so the agent can keep its previous generation.
//! - The enums ([`Verdict`], [`Action`], [`Stage`], [`Mode`], [`FailMode`],
//!   [`VerdictAction`], [`RuleErrorPolicy`]) are exhaustive: adding a case breaks
//!   every match that must handle it.
//! - Heuristic scores are calibrated so that no single weak signal reaches the
//!   suspicious threshold and a stock Debian `/usr` gives no malicious verdict.
//!
//! ```
//! use std::path::Path;
//! use sha2::{Digest, Sha256};
//! use vigil_policy::{Action, Config, HashDb, Mode, Stage, Verdict, decide, heuristics};
//! use vigil_policy::verdict::hash_reason;
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
//! let mut reasons: Vec<_> = db
//!     .lookup_sha256(&digest, sample.len() as u64)
//!     .map(hash_reason)
//!     .into_iter()
//!     .collect();
//! reasons.extend(heuristics::analyze(sample)); // text, but no script behaviour: nothing
//! let decision = decide(reasons, &config.decision);
//! assert_eq!(decision.verdict, Verdict::Malicious);
//! assert_eq!(decision.action, Action::Deny);
//! assert_eq!(decision.reasons[0].stage, Stage::Hash);
//! assert!(decision.explain().contains("verdict: malicious"));
//! # Ok::<(), vigil_policy::Error>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod allowlist;
pub mod answer;
pub mod clamdb;
pub mod config;
pub mod error;
pub mod exclusions;
pub mod execpolicy;
pub mod hashdb;
pub mod heuristics;
pub mod interpreters;
pub mod rules;
pub mod score;
pub mod trust;
pub mod verdict;

pub use allowlist::Allowlist;
pub use answer::{Action, Answer, RuleOutcome, Why, answer};
pub use clamdb::{ClamDb, ClamHit};
pub use config::{
    CacheConfig, Config, DecisionConfig, EventSink, FailMode, GuardConfig, GuardMode, Mode,
    ModelSource, PolicyConfig, Profile, Quarantine, RuleAction, RuleConfig, RuleErrorPolicy,
    ScanOnOpen, SourceConfig, SourceFormat, UpdateConfig, VerdictAction, Verify, WatchPath,
    Weights, WriteAction,
};
pub use error::Error;
pub use exclusions::Exclusions;
pub use execpolicy::{ExecFacts, ExecPolicy, RuleMatch, TrustFacts, TrustOutcome};
pub use hashdb::{HashDb, HashEntry, HashKind};
pub use interpreters::Interpreters;
pub use rules::{RuleScanner, RuleSet, RuleWarning};
pub use score::Stage;
pub use trust::{TrustEntry, TrustStore};
pub use verdict::{Decision, Reason, Verdict, decide};
