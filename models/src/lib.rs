//! vigil's file understanding: what kind of file a byte prefix is, and (later) the
//! static features and the model bundle that score it.
//!
//! This crate is pure: no I/O beyond what a caller hands it, no threads, no `unsafe`.
//! Today it holds [`sniff`], the content sniffing that decides whether an open is
//! worth scanning under `watch.scan_on_open = "executable"`.
//!
//! ```
//! use vigil_models::sniff::{sniff, FileKind};
//! assert_eq!(sniff(b"\x7fELF\x02\x01\x01"), FileKind::Elf);
//! assert_eq!(sniff(b"#!/bin/sh\necho hi\n"), FileKind::Script);
//! assert_eq!(sniff(b"plain text"), FileKind::Other);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod sniff;
