//! End-to-end tests of `vigil`: the real daemon on private tmpfs mounts.
//!
//! One test binary (registered as the `e2e` integration test of the `vigil`
//! package, so cargo builds the `vigil` binary and sets `CARGO_BIN_EXE_vigil`),
//! one module per topic, and [`fixture`] giving each test a host temp dir, a
//! private tmpfs and a daemon handle. Tests that need root (fanotify, mount
//! namespaces) print `SKIPPED <name>: needs root` and return when not root;
//! `scripts/test.sh` (and CI) runs the suite as root, so none is skipped there.
//!
//! Safety: daemons only ever watch a tmpfs that the fixture mounted itself in a
//! private mount namespace, each runs under `timeout -k 5 120` and is killed by
//! pid when its handle drops.

mod fixture;

mod alerts;
mod allowlist;
mod audit;
mod concurrency;
mod deadline;
mod detection;
mod guard;
mod hardening;
mod hot_path;
mod inline;
mod interpreters;
mod model;
mod mounts;
mod notifier;
mod overflow;
mod persistent;
mod pipes;
mod policy;
mod priority;
mod quarantine;
mod reload;
mod rescan;
mod scan_cli;
mod shutdown;
mod startup;
mod torture;
mod update;
mod written;
