//! The decision: from what the scan stages found to a verdict and an answer.
//!
//! Owns: the score thresholds and [`decide`], the one pure function that turns a
//! list of [`Reason`]s and the [`Mode`] into a [`Decision`]. Must not own: running
//! the stages, the deadline or overflow fail modes (the agent answers those without a
//! decision), logging. After `decide`, the agent answers the kernel with
//! [`Decision::action`], then logs the decision.
//!
//! Every enum here is exhaustive and matched without `_` arms: a new stage, verdict
//! or action must be handled everywhere it is used.

use std::fmt;

use serde::Serialize;

use crate::config::Mode;
use crate::hashdb::{HashEntry, HashKind};

/// Total score at or above which a file is [`Verdict::Malicious`].
pub const MALICIOUS_SCORE: u32 = 100;
/// Total score at or above which a file is [`Verdict::Suspicious`].
pub const SUSPICIOUS_SCORE: u32 = 50;

/// The scan stage that produced a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Known-bad hash lookup.
    Hash,
}

impl Stage {
    /// Stable lower-case name, as in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Hash => "hash",
        }
    }
}

/// One finding of one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Which stage found it.
    pub stage: Stage,
    /// Stable identifier, e.g. `hash.sha256`.
    pub id: String,
    /// Contribution to the total score.
    pub score: u32,
    /// Human-readable detail, e.g. the signature name and where it is listed.
    pub detail: String,
}

/// What the file is judged to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing (or too little) found.
    Clean,
    /// Some evidence; allowed and logged.
    Suspicious,
    /// Enough evidence to deny in enforce mode.
    Malicious,
}

impl Verdict {
    /// The verdict for a total score.
    pub fn from_score(score: u32) -> Verdict {
        if score >= MALICIOUS_SCORE {
            Verdict::Malicious
        } else if score >= SUSPICIOUS_SCORE {
            Verdict::Suspicious
        } else {
            Verdict::Clean
        }
    }

    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Suspicious => "suspicious",
            Verdict::Malicious => "malicious",
        }
    }
}

/// The answer given to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// `FAN_ALLOW`.
    Allow,
    /// `FAN_DENY`.
    Deny,
}

impl Action {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verdict, the answer it leads to, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// What the file is judged to be.
    pub verdict: Verdict,
    /// What the kernel is told.
    pub action: Action,
    /// Every finding, in the order the stages reported them.
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// Total score of the reasons (saturating).
    pub fn score(&self) -> u32 {
        total(&self.reasons)
    }
}

fn total(reasons: &[Reason]) -> u32 {
    reasons
        .iter()
        .fold(0, |sum, reason| sum.saturating_add(reason.score))
}

/// Decides: total score ≥ [`MALICIOUS_SCORE`] → malicious, ≥ [`SUSPICIOUS_SCORE`] →
/// suspicious, else clean. Only a malicious verdict in [`Mode::Enforce`] is denied;
/// audit mode allows everything (the caller logs what it would have denied) and
/// suspicious files are allowed and logged.
pub fn decide(reasons: Vec<Reason>, mode: Mode) -> Decision {
    let verdict = Verdict::from_score(total(&reasons));
    let action = match verdict {
        Verdict::Malicious => match mode {
            Mode::Enforce => Action::Deny,
            Mode::Audit => Action::Allow,
        },
        Verdict::Suspicious | Verdict::Clean => Action::Allow,
    };
    Decision {
        verdict,
        action,
        reasons,
    }
}

/// The reason for a hash list hit: score [`MALICIOUS_SCORE`], detail
/// `<name> (listed in <source>:<line>)`.
pub fn hash_reason(entry: &HashEntry) -> Reason {
    let id = match entry.kind {
        HashKind::Sha256 => "hash.sha256",
        HashKind::Md5 => "hash.md5",
    };
    Reason {
        stage: Stage::Hash,
        id: id.to_owned(),
        score: MALICIOUS_SCORE,
        detail: format!(
            "{} (listed in {}:{})",
            entry.name,
            entry.source.display(),
            entry.line
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::Arc;

    fn reason(score: u32) -> Reason {
        Reason {
            stage: Stage::Hash,
            id: "test".into(),
            score,
            detail: String::new(),
        }
    }

    #[test]
    fn decide_table() {
        use Action::{Allow, Deny};
        use Mode::{Audit, Enforce};
        use Verdict::{Clean, Malicious, Suspicious};
        let cases: &[(&[u32], Mode, Verdict, Action)] = &[
            (&[], Enforce, Clean, Allow),
            (&[], Audit, Clean, Allow),
            (&[49], Enforce, Clean, Allow),
            (&[50], Enforce, Suspicious, Allow),
            (&[25, 25], Enforce, Suspicious, Allow),
            (&[99], Enforce, Suspicious, Allow),
            (&[99], Audit, Suspicious, Allow),
            (&[100], Enforce, Malicious, Deny),
            (&[100], Audit, Malicious, Allow),
            (&[60, 40], Enforce, Malicious, Deny),
            (&[u32::MAX, u32::MAX], Enforce, Malicious, Deny),
            (&[0, 0, 0], Enforce, Clean, Allow),
        ];
        for &(scores, mode, verdict, action) in cases {
            let reasons: Vec<Reason> = scores.iter().map(|&s| reason(s)).collect();
            let decision = decide(reasons.clone(), mode);
            assert_eq!(
                (decision.verdict, decision.action),
                (verdict, action),
                "{scores:?} {mode:?}"
            );
            assert_eq!(decision.reasons, reasons);
        }
    }

    #[test]
    fn names_are_stable() {
        assert_eq!(Stage::Hash.as_str(), "hash");
        let verdicts = [
            (Verdict::Clean, "clean"),
            (Verdict::Suspicious, "suspicious"),
            (Verdict::Malicious, "malicious"),
        ];
        for (verdict, name) in verdicts {
            assert_eq!(verdict.as_str(), name);
            assert_eq!(verdict.to_string(), name);
        }
        for (action, name) in [(Action::Allow, "allow"), (Action::Deny, "deny")] {
            assert_eq!(action.as_str(), name);
        }
    }

    #[test]
    fn hash_reason_table() {
        let source: Arc<Path> = Path::new("/var/lib/vigil/content/x.hsb").into();
        let cases = [
            (HashKind::Sha256, "hash.sha256"),
            (HashKind::Md5, "hash.md5"),
        ];
        for (kind, id) in cases {
            let entry = HashEntry {
                name: "Linux.Trojan.Test".into(),
                size: Some(10),
                kind,
                source: Arc::clone(&source),
                line: 7,
            };
            let reason = hash_reason(&entry);
            assert_eq!(reason.stage, Stage::Hash);
            assert_eq!(reason.id, id);
            assert_eq!(reason.score, MALICIOUS_SCORE);
            assert_eq!(
                reason.detail,
                "Linux.Trojan.Test (listed in /var/lib/vigil/content/x.hsb:7)"
            );
        }
    }

    #[test]
    fn decision_serializes_lower_case() {
        let decision = decide(vec![reason(100)], Mode::Enforce);
        let json = serde_json::to_string(&decision).unwrap();
        assert_eq!(
            json,
            r#"{"verdict":"malicious","action":"deny","reasons":[{"stage":"hash","id":"test","score":100,"detail":""}]}"#
        );
    }
}
