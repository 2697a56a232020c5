//! The engine: what the daemon and the command line share to judge a file.
//!
//! [`generation`] loads one immutable snapshot of configuration and content,
//! named across restarts by its [`content_id`];
//! [`scan`] reads a file once and runs the stages of a generation on it (with
//! [`model`], the model bundle's stage); [`walk`] lists files for on-demand scans;
//! [`rule_child`] has the daemon's rules compiled by a child process.
//! Nothing here touches the kernel or answers events.

pub mod content_id;
pub mod generation;
pub mod model;
pub mod own_exe;
pub mod rule_child;
pub mod scan;
pub mod walk;
