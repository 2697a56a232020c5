//! The answer: one pure function from everything known about an event to what the
//! agent does with it.
//!
//! Owns [`answer`], the only place where a verdict, the outcome of the exec rules
//! of `[policy]`, the trust store's word and the mode become an [`Action`]
//! (allow, deny, or deny and quarantine) with the [`Why`] behind it; and the
//! mapping of the fail modes (deadline, overflow) to an action. Must not own:
//! reaching the verdict ([`crate::verdict::decide`]), evaluating the rules
//! ([`crate::ExecPolicy`]), talking to the kernel. The agent answers the kernel
//! with [`Action::allows`], then quarantines when the action says so.
//!
//! Precedence, in enforce mode: a `deny` rule (the file is not even scanned);
//! then a verdict whose setting (`decision.on_malicious`, `decision.on_suspicious`)
//! denies or quarantines; then a `trusted-only` rule the trust store does not
//! vouch for; else allow. Audit mode allows everything and keeps the reason
//! enforce mode would have acted on, so the log can say what it would have done.

use serde::Serialize;

use crate::config::{FailMode, Mode, VerdictAction};
use crate::execpolicy::TrustOutcome;
use crate::verdict::{Basis, Verdict};

/// What the agent does with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// `FAN_ALLOW`.
    Allow,
    /// `FAN_DENY`.
    Deny,
    /// `FAN_DENY`, then (after the answer) move the file into quarantine.
    Quarantine,
}

impl Action {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Quarantine => "quarantine",
        }
    }

    /// True when the kernel is told to allow the access.
    pub fn allows(self) -> bool {
        match self {
            Action::Allow => true,
            Action::Deny | Action::Quarantine => false,
        }
    }

    /// The answer when no verdict is available in time (`decision.on_timeout`) or
    /// the queue is full (`decision.on_overflow`).
    pub fn from_fail_mode(mode: FailMode) -> Action {
        match mode {
            FailMode::Allow => Action::Allow,
            FailMode::Deny => Action::Deny,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the exec rules of `[policy]` concluded about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOutcome {
    /// No rule applies (an open, or no rule matched the exec).
    None,
    /// An `allow` rule matched: the verdict alone decides.
    Allow,
    /// An `audit` rule matched: the verdict decides; the exec is logged.
    Audit,
    /// A `deny` rule matched: denied without a scan.
    Deny,
    /// A `trusted-only` rule matched; the trust store's word on the file.
    TrustedOnly(TrustOutcome),
}

impl RuleOutcome {
    /// True when the rule wants the event logged even for a clean, allowed file:
    /// an `audit` rule, or a `trusted-only` exec that was not simply trusted.
    pub fn logged(self) -> bool {
        match self {
            RuleOutcome::Audit | RuleOutcome::Deny => true,
            RuleOutcome::TrustedOnly(outcome) => outcome != TrustOutcome::Trusted,
            RuleOutcome::None | RuleOutcome::Allow => false,
        }
    }
}

/// Why the action is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    /// Nothing found, and no rule objected.
    Clean,
    /// The verdict, through its setting (`decision.on_malicious` or
    /// `decision.on_suspicious`); that setting may be `allow`.
    Verdict(Verdict),
    /// A `deny` rule of `[policy]`.
    DenyRule,
    /// A `trusted-only` rule, and the trust store does not vouch for the file.
    Untrusted,
}

/// The action and its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// What the agent does.
    pub action: Action,
    /// Why. In audit mode: why enforce mode would have acted.
    pub why: Why,
}

impl Answer {
    /// True when the exec rules (not the verdict) turned this answer into a
    /// denial (for the `exec_rule_denied` counter).
    pub fn denied_by_rule(&self) -> bool {
        !self.action.allows() && matches!(self.why, Why::DenyRule | Why::Untrusted)
    }
}

/// The answer for an event. `verdict` is `None` when the file was not scanned
/// (a `deny` rule answers before the scan); `basis` carries the mode and the
/// per-verdict settings of the generation the event is decided under.
pub fn answer(verdict: Option<Verdict>, rule: RuleOutcome, basis: &Basis) -> Answer {
    let enforced = |action: Action, why: Why| match basis.mode {
        Mode::Enforce => Answer { action, why },
        Mode::Audit => Answer {
            action: Action::Allow,
            why,
        },
    };
    if rule == RuleOutcome::Deny {
        return enforced(Action::Deny, Why::DenyRule);
    }
    let setting = match verdict {
        Some(Verdict::Malicious) => Some(basis.on_malicious),
        Some(Verdict::Suspicious) => Some(basis.on_suspicious),
        Some(Verdict::Clean) | None => None,
    };
    let by_verdict = match setting {
        Some(VerdictAction::Deny) => Some(Action::Deny),
        Some(VerdictAction::Quarantine) => Some(Action::Quarantine),
        Some(VerdictAction::Allow) | None => None,
    };
    if let (Some(action), Some(v)) = (by_verdict, verdict) {
        return enforced(action, Why::Verdict(v));
    }
    if rule == RuleOutcome::TrustedOnly(TrustOutcome::Untrusted) {
        return enforced(Action::Deny, Why::Untrusted);
    }
    let why = match verdict {
        Some(v @ (Verdict::Malicious | Verdict::Suspicious)) => Why::Verdict(v),
        Some(Verdict::Clean) | None => Why::Clean,
    };
    Answer {
        action: Action::Allow,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Weights;
    use Action::{Allow, Deny, Quarantine};
    use TrustOutcome::{PackageManager, Trusted, Untrusted, UpgradeWindow};

    fn basis(mode: Mode, on_malicious: VerdictAction, on_suspicious: VerdictAction) -> Basis {
        Basis {
            mode,
            malicious_score: 100,
            suspicious_score: 50,
            weights: Weights::default(),
            on_malicious,
            on_suspicious,
        }
    }

    const RULES: [RuleOutcome; 8] = [
        RuleOutcome::None,
        RuleOutcome::Allow,
        RuleOutcome::Audit,
        RuleOutcome::Deny,
        RuleOutcome::TrustedOnly(Trusted),
        RuleOutcome::TrustedOnly(UpgradeWindow),
        RuleOutcome::TrustedOnly(PackageManager),
        RuleOutcome::TrustedOnly(Untrusted),
    ];
    const VERDICTS: [Option<Verdict>; 4] = [
        None,
        Some(Verdict::Clean),
        Some(Verdict::Suspicious),
        Some(Verdict::Malicious),
    ];
    const SETTINGS: [VerdictAction; 3] = [
        VerdictAction::Allow,
        VerdictAction::Deny,
        VerdictAction::Quarantine,
    ];

    /// The precedence written out a second way, as a specification: every
    /// combination of verdict, rule outcome, both settings and mode is checked
    /// against it.
    fn expected(verdict: Option<Verdict>, rule: RuleOutcome, b: &Basis) -> (Action, Why) {
        let setting = |v| match v {
            Verdict::Malicious => b.on_malicious,
            Verdict::Suspicious => b.on_suspicious,
            Verdict::Clean => VerdictAction::Allow,
        };
        let (action, why) = if rule == RuleOutcome::Deny {
            (Deny, Why::DenyRule)
        } else {
            match verdict.map(|v| (v, setting(v))) {
                Some((v, VerdictAction::Deny)) => (Deny, Why::Verdict(v)),
                Some((v, VerdictAction::Quarantine)) => (Quarantine, Why::Verdict(v)),
                _ if rule == RuleOutcome::TrustedOnly(Untrusted) => (Deny, Why::Untrusted),
                Some((v @ (Verdict::Malicious | Verdict::Suspicious), _)) => {
                    (Allow, Why::Verdict(v))
                }
                _ => (Allow, Why::Clean),
            }
        };
        match b.mode {
            Mode::Enforce => (action, why),
            Mode::Audit => (Allow, why),
        }
    }

    #[test]
    fn every_combination_follows_the_precedence() {
        let mut checked = 0;
        for mode in [Mode::Enforce, Mode::Audit] {
            for on_malicious in SETTINGS {
                for on_suspicious in SETTINGS {
                    let b = basis(mode, on_malicious, on_suspicious);
                    for verdict in VERDICTS {
                        for rule in RULES {
                            let got = answer(verdict, rule, &b);
                            assert_eq!(
                                (got.action, got.why),
                                expected(verdict, rule, &b),
                                "{mode:?} {on_malicious:?} {on_suspicious:?} {verdict:?} {rule:?}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 3 * 3 * 4 * 8);
    }

    #[test]
    fn table_of_the_cases_that_matter() {
        use VerdictAction as V;
        let enforce = basis(Mode::Enforce, V::Deny, V::Allow);
        let quarantine = basis(Mode::Enforce, V::Quarantine, V::Allow);
        let audit = basis(Mode::Audit, V::Quarantine, V::Deny);
        type Case<'a> = (
            &'a str,
            Option<Verdict>,
            RuleOutcome,
            &'a Basis,
            Action,
            Why,
        );
        let cases: &[Case] = &[
            (
                "clean, no rule",
                Some(Verdict::Clean),
                RuleOutcome::None,
                &enforce,
                Allow,
                Why::Clean,
            ),
            (
                "malicious denied",
                Some(Verdict::Malicious),
                RuleOutcome::None,
                &enforce,
                Deny,
                Why::Verdict(Verdict::Malicious),
            ),
            (
                "suspicious allowed by default",
                Some(Verdict::Suspicious),
                RuleOutcome::None,
                &enforce,
                Allow,
                Why::Verdict(Verdict::Suspicious),
            ),
            (
                "malicious quarantined",
                Some(Verdict::Malicious),
                RuleOutcome::None,
                &quarantine,
                Quarantine,
                Why::Verdict(Verdict::Malicious),
            ),
            (
                "malicious under an allow rule",
                Some(Verdict::Malicious),
                RuleOutcome::Allow,
                &enforce,
                Deny,
                Why::Verdict(Verdict::Malicious),
            ),
            (
                "deny rule, unscanned",
                None,
                RuleOutcome::Deny,
                &enforce,
                Deny,
                Why::DenyRule,
            ),
            (
                "deny rule in audit mode",
                None,
                RuleOutcome::Deny,
                &audit,
                Allow,
                Why::DenyRule,
            ),
            (
                "untrusted clean file",
                Some(Verdict::Clean),
                RuleOutcome::TrustedOnly(Untrusted),
                &enforce,
                Deny,
                Why::Untrusted,
            ),
            (
                "untrusted malicious file: the verdict wins (quarantine)",
                Some(Verdict::Malicious),
                RuleOutcome::TrustedOnly(Untrusted),
                &quarantine,
                Quarantine,
                Why::Verdict(Verdict::Malicious),
            ),
            (
                "upgrade window",
                Some(Verdict::Clean),
                RuleOutcome::TrustedOnly(UpgradeWindow),
                &enforce,
                Allow,
                Why::Clean,
            ),
            (
                "audit mode keeps why",
                Some(Verdict::Malicious),
                RuleOutcome::None,
                &audit,
                Allow,
                Why::Verdict(Verdict::Malicious),
            ),
        ];
        for &(name, verdict, rule, b, action, why) in cases {
            let got = answer(verdict, rule, b);
            assert_eq!((got.action, got.why), (action, why), "{name}");
        }
    }

    #[test]
    fn rule_denials_are_told_apart_from_verdict_denials() {
        let b = basis(Mode::Enforce, VerdictAction::Deny, VerdictAction::Allow);
        assert!(answer(None, RuleOutcome::Deny, &b).denied_by_rule());
        assert!(
            answer(
                Some(Verdict::Clean),
                RuleOutcome::TrustedOnly(Untrusted),
                &b
            )
            .denied_by_rule()
        );
        assert!(!answer(Some(Verdict::Malicious), RuleOutcome::None, &b).denied_by_rule());
        let audit = basis(Mode::Audit, VerdictAction::Deny, VerdictAction::Allow);
        assert!(!answer(None, RuleOutcome::Deny, &audit).denied_by_rule());
    }

    #[test]
    fn fail_modes_map_to_actions() {
        assert_eq!(Action::from_fail_mode(FailMode::Allow), Allow);
        assert_eq!(Action::from_fail_mode(FailMode::Deny), Deny);
        assert!(Allow.allows() && !Deny.allows() && !Quarantine.allows());
    }

    #[test]
    fn rule_outcomes_that_are_logged() {
        let logged: Vec<bool> = RULES.iter().map(|r| r.logged()).collect();
        assert_eq!(logged, [false, false, true, true, false, true, true, true]);
    }
}
