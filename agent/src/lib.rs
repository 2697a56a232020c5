//! vigil's agent: the on-access daemon and its command line.
//!
//! One event, from kernel to answer: [`reader`] reads it from the fanotify group
//! (answering its own pid and excluded processes at once) and hands a
//! [`respond::Pending`] to the bounded [`pool`]; a worker pins the current
//! [`generation`], asks the [`cache`], runs the [`scan`] pipeline through the event fd
//! on a miss, and answers; [`respond`]'s deadline thread answers with the fail mode
//! if the worker has not by the deadline. Only after the answer: the kernel ignore
//! mark, the move into [`quarantine`] (on its own thread), the [`alerts`] for
//! subscribers (`vigil notifier`), and the [`events`] log. [`daemon`] wires these together and owns startup,
//! reload and shutdown; [`cli`] maps subcommands to exit codes.
//!
//! Guarantees: every permission event read is answered exactly once, by its
//! deadline, whatever the workers do; a rejected reload leaves the running
//! generation in place; `unsafe` exists only in [`fanotify::sys`].
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod alerts;
pub mod allow_cmd;
pub mod cache;
pub mod cli;
pub mod control;
pub mod daemon;
pub mod eval_cmd;
pub mod events;
pub mod exec_gate;
pub mod exec_history;
pub mod fanotify;
pub mod features_cmd;
pub mod generation;
pub mod ignore_marks;
pub mod latency;
pub mod logging;
pub mod marks;
pub mod model;
pub mod model_cmd;
pub mod mountinfo;
pub mod notifier;
pub mod notify;
pub mod policy_cmd;
pub mod pool;
pub mod quarantine;
pub mod ratelimit;
pub mod reader;
pub mod respond;
pub mod scan;
pub mod scan_cmd;
pub mod stats;
pub mod trust;
pub mod trust_cmd;
pub mod walk;
