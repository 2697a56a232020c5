//! Scores and the stages that give them: the one scale every finding is put on.
//!
//! Owns [`Stage`] and the two reference scores. Depends on nothing else in the
//! crate, so both the configuration (whose weights and thresholds are per stage
//! and default to these scores) and the verdict (which adds them up) can use it
//! without depending on each other.

use std::fmt;

use serde::Serialize;

/// Score of a finding that is conclusive on its own; the default
/// `decision.malicious_score`.
pub const MALICIOUS_SCORE: u32 = 100;
/// Score of a finding worth a look; the default `decision.suspicious_score`.
pub const SUSPICIOUS_SCORE: u32 = 50;

/// The scan stage that produced a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Known-bad hash lookup.
    Hash,
    /// YARA rule matches.
    Rules,
    /// ELF and script heuristics.
    Heuristics,
    /// The machine-learning models of the model bundle.
    Model,
}

impl Stage {
    /// Every stage, in the order the scan runs them (and `explain` lists them).
    pub const ALL: [Stage; 4] = [Stage::Hash, Stage::Rules, Stage::Heuristics, Stage::Model];

    /// Stable lower-case name, as in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Hash => "hash",
            Stage::Rules => "rules",
            Stage::Heuristics => "heuristics",
            Stage::Model => "model",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
