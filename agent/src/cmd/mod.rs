//! The command-line front ends: one module per subcommand family, each turning
//! parsed arguments into calls on the engine (on-demand scans, evaluation,
//! features, the model) or requests to the running daemon, and into output and
//! an exit code. None of them is on the event path.

pub mod allow;
pub mod attack;
pub mod ctl;
pub mod eval;
pub mod features;
pub mod model;
pub mod notifier;
pub mod policy;
pub mod quarantine;
pub mod scan;
pub mod trust;
pub mod update;

use std::path::Path;

use crate::engine::generation::Generation;

/// Loads a generation for an on-demand command (scan, eval, check-config,
/// model mutations) and prints each rule file it had to skip.
///
/// # Errors
/// The configuration or its content is invalid.
pub fn load_generation(config: Option<&Path>) -> anyhow::Result<Generation> {
    let generation = Generation::load(1, config)?;
    for w in &generation.rule_warnings {
        eprintln!("vigil: warning: rule file skipped: {w}");
    }
    Ok(generation)
}
