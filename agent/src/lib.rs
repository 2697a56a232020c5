//! vigil's agent: the on-access daemon and its command line.
//!
//! Three rooms. [`daemon`] is the runtime: one event goes from the kernel to its
//! answer through `daemon/reader.rs` (reads the fanotify group, answers its own
//! pid and excluded processes at once, arms the deadline), `daemon/pool.rs` (the
//! bounded queue and the worker threads), `daemon/worker.rs` (gate, scan or
//! cache, answer: the action comes from `vigil_policy::answer`) and
//! `daemon/respond.rs` (answers exactly once, by the deadline at the latest);
//! then `daemon/after_answer.rs` hands the ignore mark, the quarantine move,
//! the alert and the event record to their own threads. [`engine`] is what the
//! daemon and the command line share to judge a file: the [`engine::generation`]
//! snapshot and the [`engine::scan`] pipeline. [`cmd`] holds the command-line
//! front ends; [`cli`] parses and dispatches to them. The daemon and its clients
//! speak the typed [`protocol`]; [`procfs`] owns every `/proc` read.
//!
//! Guarantees: every permission event read is answered exactly once, by its
//! deadline, whatever the workers do; a rejected reload leaves the running
//! generation in place; `unsafe` exists only in [`fanotify::sys`].
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
pub mod cmd;
pub mod daemon;
pub mod engine;
pub mod fanotify;
pub mod guard;
pub mod logging;
pub mod procfs;
pub mod protocol;
pub mod quarantine;
pub mod ratelimit;
pub mod trust;
