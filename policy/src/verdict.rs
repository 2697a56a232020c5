//! The decision: from what the scan stages found to a verdict and an answer.
//!
//! Owns: [`decide`], the one pure function that turns a list of [`Reason`]s and the
//! `[decision]` config (thresholds, per-stage weights, action per verdict, mode) into
//! a [`Decision`], and [`Decision::explain`], its human-readable account. Must not
//! own: running the stages, the deadline or overflow fail modes (the agent answers
//! those without a decision), logging. After `decide`, the agent answers the kernel
//! with [`Decision::action`], then logs the decision.
//!
//! Scores are on one scale for every stage: [`MALICIOUS_SCORE`] (100) is a finding
//! conclusive on its own (a hash hit, a YARA match), [`SUSPICIOUS_SCORE`] (50) is
//! worth a look; weak heuristics score well below that and only add up. The config's
//! thresholds default to these two values.
//!
//! Every enum here is exhaustive and matched without `_` arms: a new stage, verdict
//! or action must be handled everywhere it is used.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::answer::{Action, RuleOutcome, answer};
use crate::config::{DecisionConfig, Mode, VerdictAction, Weights};
use crate::hashdb::{HashEntry, HashKind};
pub use crate::score::{MALICIOUS_SCORE, SUSPICIOUS_SCORE, Stage};

/// One finding of one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Which stage found it.
    pub stage: Stage,
    /// Stable identifier, e.g. `hash.sha256`, `elf.upx`, or a YARA rule's name.
    pub id: String,
    /// Contribution to the total score, before the stage's weight.
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
    /// Some evidence; allowed and logged unless `decision.on_suspicious = "deny"`.
    Suspicious,
    /// Enough evidence to deny in enforce mode.
    Malicious,
}

impl Verdict {
    /// The verdict for a weighted total score under `policy`'s thresholds.
    pub fn from_score(score: u32, policy: &DecisionConfig) -> Verdict {
        if score >= policy.malicious_score {
            Verdict::Malicious
        } else if score >= policy.suspicious_score {
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

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The part of the `[decision]` config a decision was reached with, kept so that
/// [`Decision::explain`] can show it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Basis {
    /// Enforce or audit.
    pub mode: Mode,
    /// `decision.malicious_score`.
    pub malicious_score: u32,
    /// `decision.suspicious_score`.
    pub suspicious_score: u32,
    /// `decision.weights`.
    pub weights: Weights,
    /// `decision.on_malicious`.
    pub on_malicious: VerdictAction,
    /// `decision.on_suspicious`.
    pub on_suspicious: VerdictAction,
}

/// A verdict, the answer it leads to, and why.
///
/// Not `Eq`: the [`Basis`] holds float weights.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// What the file is judged to be.
    pub verdict: Verdict,
    /// What the kernel is told.
    pub action: Action,
    /// Total of the reasons' weighted scores (saturating), compared to the thresholds.
    pub score: u32,
    /// Every finding, in the order the stages reported them (scores unweighted).
    pub reasons: Vec<Reason>,
    /// The thresholds, weights and actions applied (not serialized: it is config).
    #[serde(skip)]
    pub basis: Basis,
}

/// A reason's score times its stage's weight, rounded, saturating at `u32::MAX`.
pub fn weighted_score(reason: &Reason, weights: &Weights) -> u32 {
    let weighted = (f64::from(reason.score) * weights.of(reason.stage)).round();
    // `as` saturates (and maps NaN to 0); validation keeps weights finite and ≥ 0.
    weighted as u32
}

/// The weighted total of `reasons` under `weights` (saturating).
pub fn total_score(reasons: &[Reason], weights: &Weights) -> u32 {
    reasons.iter().fold(0u32, |sum, reason| {
        sum.saturating_add(weighted_score(reason, weights))
    })
}

/// True when `reasons` already make a file malicious under `policy`: the scan
/// stops there on the hot path, since later stages cannot change the answer.
pub fn is_conclusive(reasons: &[Reason], policy: &DecisionConfig) -> bool {
    Verdict::from_score(total_score(reasons, &policy.weights), policy) == Verdict::Malicious
}

impl Basis {
    /// The part of `policy` a decision is reached and answered with.
    pub fn of(policy: &DecisionConfig) -> Basis {
        Basis {
            mode: policy.mode,
            malicious_score: policy.malicious_score,
            suspicious_score: policy.suspicious_score,
            weights: policy.weights,
            on_malicious: policy.on_malicious,
            on_suspicious: policy.on_suspicious,
        }
    }
}

/// Decides: the weighted total ≥ `policy.malicious_score` → malicious, ≥
/// `policy.suspicious_score` → suspicious, else clean. The action is the file's
/// own ([`answer`] with no exec rule): in [`Mode::Enforce`] a malicious or
/// suspicious file gets `policy.on_malicious` / `policy.on_suspicious`, a clean
/// one is allowed; [`Mode::Audit`] allows everything (the caller logs what it
/// would have denied).
pub fn decide(reasons: Vec<Reason>, policy: &DecisionConfig) -> Decision {
    let score = total_score(&reasons, &policy.weights);
    let verdict = Verdict::from_score(score, policy);
    let basis = Basis::of(policy);
    Decision {
        verdict,
        action: answer(Some(verdict), RuleOutcome::None, &basis).action,
        score,
        reasons,
        basis,
    }
}

impl Decision {
    /// A multi-line account for `vigil scan --explain`: each stage's findings with
    /// score, weight and weighted score, the total against both thresholds, the
    /// verdict, and the action with the mode and setting that produced it.
    pub fn explain(&self) -> String {
        let basis = &self.basis;
        let mut out = String::new();
        for stage in Stage::ALL {
            let weight = basis.weights.of(stage);
            let found: Vec<&Reason> = self.reasons.iter().filter(|r| r.stage == stage).collect();
            if found.is_empty() {
                let _ = writeln!(out, "{stage}: no findings (weight {weight})");
                continue;
            }
            let subtotal = found.iter().fold(0u32, |sum, reason| {
                sum.saturating_add(weighted_score(reason, &basis.weights))
            });
            let _ = writeln!(
                out,
                "{stage}: {} finding{} (weight {weight}), {subtotal} points",
                found.len(),
                if found.len() == 1 { "" } else { "s" },
            );
            for reason in found {
                let _ = writeln!(
                    out,
                    "  {} score {} x {weight} = {}: {}",
                    reason.id,
                    reason.score,
                    weighted_score(reason, &basis.weights),
                    reason.detail
                );
            }
        }
        let _ = writeln!(
            out,
            "total: {} (suspicious at {}, malicious at {})",
            self.score, basis.suspicious_score, basis.malicious_score
        );
        let _ = writeln!(out, "verdict: {}", self.verdict);
        let why = match (basis.mode, self.verdict) {
            (Mode::Audit, _) => "audit mode allows everything".to_owned(),
            (Mode::Enforce, Verdict::Malicious) => {
                format!(
                    "decision.on_malicious = \"{}\"",
                    basis.on_malicious.as_str()
                )
            }
            (Mode::Enforce, Verdict::Suspicious) => {
                format!(
                    "decision.on_suspicious = \"{}\"",
                    basis.on_suspicious.as_str()
                )
            }
            (Mode::Enforce, Verdict::Clean) => "clean files are allowed".to_owned(),
        };
        let _ = writeln!(out, "action: {} ({why})", self.action);
        out
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

/// The reason for a ClamAV database hit: score [`MALICIOUS_SCORE`], id
/// `hash.clamav.md5`/`hash.clamav.sha256`, detail `<name> (listed in <file>[:<member>])`.
pub fn clamav_reason(hit: &crate::clamdb::ClamHit<'_>) -> Reason {
    let id = match hit.kind {
        HashKind::Sha256 => "hash.clamav.sha256",
        HashKind::Md5 => "hash.clamav.md5",
    };
    let member = if hit.member.is_empty() {
        String::new()
    } else {
        format!(":{}", hit.member)
    };
    Reason {
        stage: Stage::Hash,
        id: id.to_owned(),
        score: MALICIOUS_SCORE,
        detail: format!("{} (listed in {}{member})", hit.name, hit.path.display()),
    }
}

/// A model's score thresholds, lowest first: `suspicious <= detect <= block`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelThresholds {
    /// From here a finding adds [`SUSPICIOUS_SCORE`] / 2 points: not enough on
    /// its own, it tips the verdict with any other finding (1 % FPR on validation).
    pub suspicious: f32,
    /// From here [`SUSPICIOUS_SCORE`]: suspicious on its own (0.1 % FPR).
    pub detect: f32,
    /// From here [`MALICIOUS_SCORE`]: malicious (denied) on its own. Calibrated
    /// so that at most 1 in 10,000 held-out benign ELF files reach it;
    /// `f32::INFINITY` for a model that never blocks alone.
    pub block: f32,
}

/// The finding of one model under `t`: [`MALICIOUS_SCORE`] at `t.block`,
/// [`SUSPICIOUS_SCORE`] at `t.detect`, half that at `t.suspicious`, else 0
/// points (information only: callers keep it for `--explain`). The id is
/// `model.<name>` and the detail carries the raw score, so `--explain` and the
/// event log show how close it was.
pub fn model_reason(name: &str, score: f32, t: &ModelThresholds) -> Reason {
    let points = if score >= t.block {
        MALICIOUS_SCORE
    } else if score >= t.detect {
        SUSPICIOUS_SCORE
    } else if score >= t.suspicious {
        SUSPICIOUS_SCORE / 2
    } else {
        0
    };
    Reason {
        stage: Stage::Model,
        id: format!("model.{name}"),
        score: points,
        detail: format!(
            "score {score:.6} (blocks at {:.6}, detection at {:.6}, suspicious at {:.6})",
            t.block, t.detect, t.suspicious
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_reason_maps_thresholds_to_points() {
        let t = ModelThresholds {
            suspicious: 0.5,
            detect: 0.9,
            block: 0.99,
        };
        // (score, points, verdict under the default decision config)
        let cases = [
            (0.1, 0, Verdict::Clean),
            (0.5, SUSPICIOUS_SCORE / 2, Verdict::Clean),
            (0.9, SUSPICIOUS_SCORE, Verdict::Suspicious),
            (0.989, SUSPICIOUS_SCORE, Verdict::Suspicious),
            (0.99, MALICIOUS_SCORE, Verdict::Malicious),
            (1.0, MALICIOUS_SCORE, Verdict::Malicious),
        ];
        for (score, points, verdict) in cases {
            let r = model_reason("m", score, &t);
            assert_eq!(
                (r.stage, r.score, r.id.as_str()),
                (Stage::Model, points, "model.m"),
                "{score}"
            );
            let d = decide(vec![r], &DecisionConfig::default());
            assert_eq!(d.verdict, verdict, "{score}");
        }
        assert!(model_reason("m", 0.95, &t).detail.contains("0.950000"));
        // A model without a block threshold never blocks on its own.
        let never = ModelThresholds {
            block: f32::INFINITY,
            ..t
        };
        assert_eq!(model_reason("m", 1.0, &never).score, SUSPICIOUS_SCORE);
        // The weaker band still tips a suspicious heuristic finding to malicious
        // only together with a detection-level one.
        let heur = Reason {
            stage: Stage::Heuristics,
            id: "elf.x".to_owned(),
            score: SUSPICIOUS_SCORE,
            detail: String::new(),
        };
        let both = decide(
            vec![heur, model_reason("m", 0.9, &t)],
            &DecisionConfig::default(),
        );
        assert_eq!(both.verdict, Verdict::Malicious);
    }
    use std::path::Path;
    use std::sync::Arc;

    fn reason(stage: Stage, score: u32) -> Reason {
        Reason {
            stage,
            id: "test".into(),
            score,
            detail: String::new(),
        }
    }

    fn policy(mode: Mode) -> DecisionConfig {
        DecisionConfig {
            mode,
            ..DecisionConfig::default()
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
            let reasons: Vec<Reason> = scores.iter().map(|&s| reason(Stage::Hash, s)).collect();
            let decision = decide(reasons.clone(), &policy(mode));
            assert_eq!(
                (decision.verdict, decision.action),
                (verdict, action),
                "{scores:?} {mode:?}"
            );
            assert_eq!(decision.reasons, reasons);
        }
    }

    #[test]
    fn weights_thresholds_and_actions_come_from_config() {
        use Action::{Allow, Deny};
        use Verdict::{Clean, Malicious, Suspicious};
        type Edit = fn(&mut DecisionConfig);
        type Case<'a> = (&'a str, Edit, &'a [(Stage, u32)], u32, Verdict, Action);
        let cases: &[Case] = &[
            (
                "defaults",
                |_| {},
                &[(Stage::Heuristics, 60)],
                60,
                Suspicious,
                Allow,
            ),
            (
                "heuristics halved",
                |p| p.weights.heuristics = 0.5,
                &[(Stage::Heuristics, 60), (Stage::Rules, 40)],
                70,
                Suspicious,
                Allow,
            ),
            (
                "rules doubled",
                |p| p.weights.rules = 2.0,
                &[(Stage::Rules, 50)],
                100,
                Malicious,
                Deny,
            ),
            (
                "weight zero is information only",
                |p| p.weights.hash = 0.0,
                &[(Stage::Hash, 100)],
                0,
                Clean,
                Allow,
            ),
            (
                "rounding",
                |p| p.weights.heuristics = 0.333,
                &[(Stage::Heuristics, 10), (Stage::Heuristics, 10)],
                6,
                Clean,
                Allow,
            ),
            (
                "raised malicious threshold",
                |p| p.malicious_score = 150,
                &[(Stage::Rules, 100)],
                100,
                Suspicious,
                Allow,
            ),
            (
                "lowered suspicious threshold",
                |p| p.suspicious_score = 10,
                &[(Stage::Heuristics, 15)],
                15,
                Suspicious,
                Allow,
            ),
            (
                "deny suspicious",
                |p| p.on_suspicious = VerdictAction::Deny,
                &[(Stage::Heuristics, 50)],
                50,
                Suspicious,
                Deny,
            ),
            (
                "allow malicious",
                |p| p.on_malicious = VerdictAction::Allow,
                &[(Stage::Hash, 100)],
                100,
                Malicious,
                Allow,
            ),
            (
                "audit beats deny",
                |p| {
                    p.mode = Mode::Audit;
                    p.on_suspicious = VerdictAction::Deny;
                },
                &[(Stage::Heuristics, 50)],
                50,
                Suspicious,
                Allow,
            ),
            (
                "huge weight saturates",
                |p| p.weights.rules = 100.0,
                &[(Stage::Rules, u32::MAX)],
                u32::MAX,
                Malicious,
                Deny,
            ),
        ];
        for &(name, edit, found, score, verdict, action) in cases {
            let mut config = DecisionConfig::default();
            edit(&mut config);
            let reasons = found.iter().map(|&(stage, s)| reason(stage, s)).collect();
            let decision = decide(reasons, &config);
            assert_eq!(
                (decision.score, decision.verdict, decision.action),
                (score, verdict, action),
                "{name}"
            );
        }
    }

    #[test]
    fn quarantine_is_a_deny_in_enforce_mode_only() {
        use VerdictAction::{Allow, Deny, Quarantine};
        let cases: &[(Mode, VerdictAction, VerdictAction, u32, Action, bool)] = &[
            (
                Mode::Enforce,
                Quarantine,
                Allow,
                100,
                Action::Quarantine,
                true,
            ),
            (Mode::Enforce, Quarantine, Allow, 50, Action::Allow, false),
            (
                Mode::Enforce,
                Deny,
                Quarantine,
                50,
                Action::Quarantine,
                true,
            ),
            (
                Mode::Enforce,
                Quarantine,
                Quarantine,
                0,
                Action::Allow,
                false,
            ),
            (Mode::Enforce, Deny, Allow, 100, Action::Deny, false),
            (
                Mode::Audit,
                Quarantine,
                Quarantine,
                100,
                Action::Allow,
                false,
            ),
        ];
        for &(mode, on_malicious, on_suspicious, score, action, quarantine) in cases {
            let config = DecisionConfig {
                mode,
                on_malicious,
                on_suspicious,
                ..DecisionConfig::default()
            };
            let found = if score == 0 {
                Vec::new()
            } else {
                vec![reason(Stage::Hash, score)]
            };
            let decision = decide(found, &config);
            assert_eq!(
                (decision.action, decision.action == Action::Quarantine),
                (action, quarantine),
                "{mode:?} {on_malicious:?} {on_suspicious:?} score {score}"
            );
        }
    }

    #[test]
    fn names_are_stable() {
        let stages = [
            (Stage::Hash, "hash"),
            (Stage::Rules, "rules"),
            (Stage::Heuristics, "heuristics"),
            (Stage::Model, "model"),
        ];
        assert_eq!(Stage::ALL.len(), stages.len());
        for (stage, name) in stages {
            assert_eq!(stage.as_str(), name);
            assert_eq!(
                serde_json::to_string(&stage).unwrap(),
                format!("\"{name}\"")
            );
        }
        let verdicts = [
            (Verdict::Clean, "clean"),
            (Verdict::Suspicious, "suspicious"),
            (Verdict::Malicious, "malicious"),
        ];
        for (verdict, name) in verdicts {
            assert_eq!(verdict.as_str(), name);
            assert_eq!(verdict.to_string(), name);
        }
        for (action, name) in [
            (Action::Allow, "allow"),
            (Action::Deny, "deny"),
            (Action::Quarantine, "quarantine"),
        ] {
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
        let decision = decide(vec![reason(Stage::Hash, 100)], &policy(Mode::Enforce));
        let json = serde_json::to_string(&decision).unwrap();
        assert_eq!(
            json,
            r#"{"verdict":"malicious","action":"deny","score":100,"reasons":[{"stage":"hash","id":"test","score":100,"detail":""}]}"#
        );
    }

    #[test]
    fn explain_shows_every_stage_and_the_arithmetic() {
        let mut config = DecisionConfig::default();
        config.weights.heuristics = 0.5;
        let reasons = vec![
            Reason {
                stage: Stage::Rules,
                id: "elastic:Linux_Trojan_Mirai_1".into(),
                score: 100,
                detail: "Linux.Trojan.Mirai (severity 100)".into(),
            },
            Reason {
                stage: Stage::Heuristics,
                id: "elf.upx".into(),
                score: 60,
                detail: "UPX header".into(),
            },
        ];
        let cases = [
            (
                Mode::Enforce,
                "hash: no findings (weight 1)\n\
                 rules: 1 finding (weight 1), 100 points\n\
                 \x20 elastic:Linux_Trojan_Mirai_1 score 100 x 1 = 100: Linux.Trojan.Mirai (severity 100)\n\
                 heuristics: 1 finding (weight 0.5), 30 points\n\
                 \x20 elf.upx score 60 x 0.5 = 30: UPX header\n\
                 model: no findings (weight 1)\n\
                 total: 130 (suspicious at 50, malicious at 100)\n\
                 verdict: malicious\n\
                 action: deny (decision.on_malicious = \"deny\")\n",
            ),
            (
                Mode::Audit,
                "action: allow (audit mode allows everything)\n",
            ),
        ];
        for (mode, want) in cases {
            config.mode = mode;
            let text = decide(reasons.clone(), &config).explain();
            assert!(text.ends_with(want), "{mode:?}:\n{text}");
        }
        let clean = decide(Vec::new(), &DecisionConfig::default()).explain();
        assert!(
            clean.contains("total: 0 (suspicious at 50, malicious at 100)"),
            "{clean}"
        );
        assert!(
            clean.ends_with("action: allow (clean files are allowed)\n"),
            "{clean}"
        );
    }
}
