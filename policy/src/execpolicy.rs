//! Exec rules: which programs may run, decided before any scanning.
//!
//! Owns: the compiled rule list of one generation (the administrator's
//! `[[policy.rules]]` first, then the rules of `policy.profile`), [`ExecPolicy::evaluate`]
//! (first match wins) and [`trusted_only`], the pure decision of a `trusted-only`
//! rule including the package-upgrade exceptions. Must not own: gathering the facts
//! (the agent reads the file's owner and mode from the event fd's `fstat`, the
//! executing process's uid, gid and executable from `/proc/<pid>`), the trust store
//! ([`crate::trust`]), or the answer (the agent answers, then logs the match).
//!
//! Evaluation does no I/O and no allocation beyond globset's per-thread scratch
//! space; a rule whose condition needs a fact the agent could not read does not
//! match (so `vigil scan`, which has no process, never matches process rules).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use globset::{GlobSet, GlobSetBuilder};

use crate::config::{PolicyConfig, Profile, RuleAction, RuleConfig};
use crate::error::Error;
use crate::exclusions::compile_glob;

/// Name of the `server` profile's rule against execs from world-writable places.
pub const RULE_TMP_EXEC: &str = "server.tmp-exec";
/// Name of the `server` profile's rule against services starting shells.
pub const RULE_SERVICE_SHELL: &str = "server.service-shell";
/// Name of the `lockdown` profile's catch-all trusted-only rule.
pub const RULE_TRUSTED_ONLY: &str = "lockdown.trusted-only";

/// What the agent knows about one exec. `None` means "could not be read".
#[derive(Debug, Clone, Copy)]
pub struct ExecFacts<'a> {
    /// The executed file's path (from the event fd).
    pub path: Option<&'a Path>,
    /// The file's owner (`fstat` of the event fd).
    pub file_uid: u32,
    /// The file's mode bits (`st_mode`).
    pub file_mode: u32,
    /// Effective uid of the executing process.
    pub uid: Option<u32>,
    /// Effective gid of the executing process.
    pub gid: Option<u32>,
    /// The executing process's current program: for an exec, the parent of the
    /// program about to run (php-fpm about to exec `/bin/sh`).
    pub parent: Option<&'a Path>,
}

impl ExecFacts<'_> {
    /// True when a non-root user can change the file: owned by a non-root user
    /// (who can chmod it), or group or world writable.
    pub fn non_root_writable(&self) -> bool {
        self.file_uid != 0 || self.file_mode & 0o022 != 0
    }
}

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSource {
    /// `[[policy.rules]]` entry number n (1-based).
    Config(usize),
    /// The built-in rules of a profile.
    Profile(Profile),
}

impl fmt::Display for RuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleSource::Config(n) => write!(f, "policy.rules[{}]", n - 1),
            RuleSource::Profile(p) => write!(f, "profile {}", p.as_str()),
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    name: String,
    action: RuleAction,
    source: RuleSource,
    path: Option<GlobSet>,
    parent: Option<GlobSet>,
    uid: Vec<u32>,
    gid: Vec<u32>,
    file_uid: Vec<u32>,
    non_root_writable: Option<bool>,
    /// The conditions as written, for `--explain`.
    text: String,
}

/// The rule that matched an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleMatch<'p> {
    /// The rule's name (`server.tmp-exec`, or the config's `name`, or `rule-<n>`).
    pub name: &'p str,
    /// What it does.
    pub action: RuleAction,
    /// Where it was defined.
    pub source: RuleSource,
    /// Its conditions, e.g. `path ["/tmp/**"]`.
    pub conditions: &'p str,
}

impl RuleMatch<'_> {
    /// One line for `--explain` and logs: `rule server.tmp-exec (profile server):
    /// path ["/tmp/**"] -> deny`.
    pub fn explain(&self) -> String {
        format!(
            "rule {} ({}): {} -> {}",
            self.name,
            self.source,
            self.conditions,
            self.action.as_str()
        )
    }
}

/// The exec rules of one generation.
#[derive(Debug, Clone)]
pub struct ExecPolicy {
    rules: Vec<Rule>,
    profile: Profile,
    package_managers: HashSet<PathBuf>,
}

impl ExecPolicy {
    /// Compiles the administrator's rules, then the profile's.
    ///
    /// # Errors
    /// [`Error::Glob`] for a pattern that does not compile (validation of a loaded
    /// [`crate::Config`] has already reported it with its file and line).
    pub fn new(cfg: &PolicyConfig) -> Result<ExecPolicy, Error> {
        let mut rules = Vec::new();
        for (index, rule) in cfg.rules.iter().enumerate() {
            let name = rule
                .name
                .clone()
                .unwrap_or_else(|| format!("rule-{}", index + 1));
            rules.push(compile(rule, name, RuleSource::Config(index + 1))?);
        }
        let strings = |v: &[String]| v.to_vec();
        let profile_rule = |name: &str, action, path: Vec<String>, parent: Vec<String>| {
            let rule = RuleConfig {
                name: None,
                action,
                path,
                parent,
                uid: Vec::new(),
                gid: Vec::new(),
                file_uid: Vec::new(),
                non_root_writable: None,
            };
            compile(&rule, name.to_owned(), RuleSource::Profile(cfg.profile))
        };
        let server = |rules: &mut Vec<Rule>| -> Result<(), Error> {
            rules.push(profile_rule(
                RULE_TMP_EXEC,
                RuleAction::Deny,
                strings(&cfg.tmp_paths),
                Vec::new(),
            )?);
            rules.push(profile_rule(
                RULE_SERVICE_SHELL,
                RuleAction::Deny,
                strings(&cfg.shells),
                strings(&cfg.services),
            )?);
            Ok(())
        };
        match cfg.profile {
            Profile::Desktop => {}
            Profile::Server => server(&mut rules)?,
            Profile::Lockdown => {
                server(&mut rules)?;
                rules.push(profile_rule(
                    RULE_TRUSTED_ONLY,
                    RuleAction::TrustedOnly,
                    Vec::new(),
                    Vec::new(),
                )?);
            }
        }
        Ok(ExecPolicy {
            rules,
            profile: cfg.profile,
            package_managers: cfg.package_managers.iter().cloned().collect(),
        })
    }

    /// A policy with no rules (every exec goes to the scan).
    pub fn empty() -> ExecPolicy {
        ExecPolicy {
            rules: Vec::new(),
            profile: Profile::Desktop,
            package_managers: HashSet::new(),
        }
    }

    /// The profile the built-in rules come from.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Number of rules (administrator's and profile's).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when some rule looks at the executing process's uid or gid.
    pub fn needs_credentials(&self) -> bool {
        self.rules
            .iter()
            .any(|r| !r.uid.is_empty() || !r.gid.is_empty())
    }

    /// True when some rule looks at the executing process's program.
    pub fn needs_parent(&self) -> bool {
        self.rules.iter().any(|r| r.parent.is_some())
    }

    /// True when some rule is `trusted-only` (the agent then needs the trust store).
    pub fn uses_trust(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.action == RuleAction::TrustedOnly)
    }

    /// Whether a kernel ignore mark for *execs* may be placed on a file found
    /// clean. Such a mark makes the kernel stop asking about the inode, for every
    /// process and under any name it is later renamed or linked to, so it is only
    /// safe when no rule looks at the process or the path.
    pub fn exec_ignore_marks_safe(&self) -> bool {
        self.rules
            .iter()
            .all(|r| r.path.is_none() && r.parent.is_none() && r.uid.is_empty() && r.gid.is_empty())
    }

    /// True when `exe` is one of `policy.package_managers`.
    pub fn is_package_manager(&self, exe: &Path) -> bool {
        self.package_managers.contains(exe)
    }

    /// The first rule every condition of which holds for `facts`, if any.
    pub fn evaluate(&self, facts: &ExecFacts<'_>) -> Option<RuleMatch<'_>> {
        self.rules
            .iter()
            .find(|rule| matches(rule, facts))
            .map(|rule| RuleMatch {
                name: &rule.name,
                action: rule.action,
                source: rule.source,
                conditions: &rule.text,
            })
    }

    /// Every rule in evaluation order, for `vigil policy show`-style listings.
    pub fn describe(&self) -> Vec<String> {
        self.rules
            .iter()
            .map(|rule| {
                RuleMatch {
                    name: &rule.name,
                    action: rule.action,
                    source: rule.source,
                    conditions: &rule.text,
                }
                .explain()
            })
            .collect()
    }
}

fn matches(rule: &Rule, facts: &ExecFacts<'_>) -> bool {
    let glob = |set: &Option<GlobSet>, value: Option<&Path>| match set {
        None => true,
        Some(set) => value.is_some_and(|v| set.is_match(v)),
    };
    let listed = |list: &[u32], value: Option<u32>| {
        list.is_empty() || value.is_some_and(|v| list.contains(&v))
    };
    glob(&rule.path, facts.path)
        && listed(&rule.file_uid, Some(facts.file_uid))
        && rule
            .non_root_writable
            .is_none_or(|want| want == facts.non_root_writable())
        && listed(&rule.uid, facts.uid)
        && listed(&rule.gid, facts.gid)
        && glob(&rule.parent, facts.parent)
}

fn compile(rule: &RuleConfig, name: String, source: RuleSource) -> Result<Rule, Error> {
    let set = |patterns: &[String]| -> Result<Option<GlobSet>, Error> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            builder.add(compile_glob(pattern).map_err(|e| glob_error(pattern, &e))?);
        }
        builder.build().map(Some).map_err(|e| {
            let pattern = e.glob().unwrap_or_default().to_owned();
            glob_error(&pattern, &e)
        })
    };
    let mut text = Vec::new();
    if !rule.path.is_empty() {
        text.push(format!("path {:?}", rule.path));
    }
    if !rule.file_uid.is_empty() {
        text.push(format!("file_uid {:?}", rule.file_uid));
    }
    if let Some(w) = rule.non_root_writable {
        text.push(format!("non_root_writable = {w}"));
    }
    if !rule.uid.is_empty() {
        text.push(format!("uid {:?}", rule.uid));
    }
    if !rule.gid.is_empty() {
        text.push(format!("gid {:?}", rule.gid));
    }
    if !rule.parent.is_empty() {
        text.push(format!("parent {:?}", rule.parent));
    }
    let text = if text.is_empty() {
        "every exec".to_owned()
    } else {
        text.join(", ")
    };
    Ok(Rule {
        name,
        action: rule.action,
        source,
        path: set(&rule.path)?,
        parent: set(&rule.parent)?,
        uid: rule.uid.clone(),
        gid: rule.gid.clone(),
        file_uid: rule.file_uid.clone(),
        non_root_writable: rule.non_root_writable,
        text,
    })
}

fn glob_error(pattern: &str, error: &globset::Error) -> Error {
    Error::Glob {
        key: "policy.rules",
        pattern: pattern.to_owned(),
        message: error.kind().to_string(),
    }
}

/// The outcome of a `trusted-only` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustOutcome {
    /// In the trust store with the same SHA-256: allowed.
    Trusted,
    /// A package-managed path whose content changed while a package upgrade is
    /// under way (`vigil trust begin` … `vigil trust update`), root-owned and
    /// writable by root only: allowed so the upgrade cannot lock the machine up.
    UpgradeWindow,
    /// Run by a package manager or one of its descendants (maintainer scripts),
    /// root-owned and writable by root only: allowed.
    PackageManager,
    /// None of the above: denied.
    Untrusted,
}

impl TrustOutcome {
    /// Stable name for logs and `--explain`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustOutcome::Trusted => "trusted",
            TrustOutcome::UpgradeWindow => "upgrade-window",
            TrustOutcome::PackageManager => "package-manager",
            TrustOutcome::Untrusted => "untrusted",
        }
    }

    /// True when the exec is allowed.
    pub fn allowed(self) -> bool {
        match self {
            TrustOutcome::Trusted | TrustOutcome::UpgradeWindow | TrustOutcome::PackageManager => {
                true
            }
            TrustOutcome::Untrusted => false,
        }
    }
}

/// What the agent found out for a `trusted-only` decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustFacts {
    /// The path is in the store and its SHA-256 matches the file's.
    pub digest_matches: bool,
    /// The path is in the store (whatever its digest).
    pub path_known: bool,
    /// A `vigil trust begin` window is open.
    pub window_open: bool,
    /// The executing process or one of its ancestors is a package manager.
    pub package_manager: bool,
}

/// Decides a `trusted-only` rule. The exceptions never apply to a file a non-root
/// user can modify: those are exactly the files an attacker would plant.
pub fn trusted_only(facts: &ExecFacts<'_>, trust: &TrustFacts) -> TrustOutcome {
    if trust.digest_matches {
        return TrustOutcome::Trusted;
    }
    if facts.non_root_writable() {
        return TrustOutcome::Untrusted;
    }
    if trust.package_manager {
        TrustOutcome::PackageManager
    } else if trust.window_open && trust.path_known {
        TrustOutcome::UpgradeWindow
    } else {
        TrustOutcome::Untrusted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(path: &'a str, parent: Option<&'a str>) -> ExecFacts<'a> {
        ExecFacts {
            path: Some(Path::new(path)),
            file_uid: 0,
            file_mode: 0o100755,
            uid: Some(1000),
            gid: Some(1000),
            parent: parent.map(Path::new),
        }
    }

    fn policy(profile: Profile, rules: Vec<RuleConfig>) -> ExecPolicy {
        ExecPolicy::new(&PolicyConfig {
            profile,
            rules,
            ..PolicyConfig::default()
        })
        .unwrap()
    }

    fn rule(action: RuleAction) -> RuleConfig {
        RuleConfig {
            name: None,
            action,
            path: Vec::new(),
            parent: Vec::new(),
            uid: Vec::new(),
            gid: Vec::new(),
            file_uid: Vec::new(),
            non_root_writable: None,
        }
    }

    /// Profile, executed path, parent program, expected (rule, action).
    type ProfileCase = (
        Profile,
        &'static str,
        Option<&'static str>,
        Option<(&'static str, RuleAction)>,
    );

    #[test]
    fn profiles_table() {
        let cases: [ProfileCase; 12] = [
            (Profile::Desktop, "/tmp/x", None, None),
            (
                Profile::Desktop,
                "/usr/bin/dash",
                Some("/usr/sbin/nginx"),
                None,
            ),
            (
                Profile::Server,
                "/tmp/x",
                None,
                Some((RULE_TMP_EXEC, RuleAction::Deny)),
            ),
            (
                Profile::Server,
                "/dev/shm/a/b",
                Some("/usr/bin/bash"),
                Some((RULE_TMP_EXEC, RuleAction::Deny)),
            ),
            (
                Profile::Server,
                "/run/user/1000/x",
                None,
                Some((RULE_TMP_EXEC, RuleAction::Deny)),
            ),
            (Profile::Server, "/tmpfile", None, None),
            (
                Profile::Server,
                "/usr/bin/ls",
                Some("/usr/sbin/nginx"),
                None,
            ),
            (
                Profile::Server,
                "/usr/bin/dash",
                Some("/usr/sbin/php-fpm8.2"),
                Some((RULE_SERVICE_SHELL, RuleAction::Deny)),
            ),
            (
                Profile::Server,
                "/usr/bin/bash",
                Some("/usr/lib/postgresql/15/bin/postgres"),
                Some((RULE_SERVICE_SHELL, RuleAction::Deny)),
            ),
            (
                Profile::Server,
                "/usr/bin/dash",
                Some("/usr/bin/make"),
                None,
            ),
            (
                Profile::Lockdown,
                "/usr/bin/ls",
                None,
                Some((RULE_TRUSTED_ONLY, RuleAction::TrustedOnly)),
            ),
            (
                Profile::Lockdown,
                "/var/tmp/x",
                None,
                Some((RULE_TMP_EXEC, RuleAction::Deny)),
            ),
        ];
        for (profile, path, parent, want) in cases {
            let p = policy(profile, Vec::new());
            let got = p.evaluate(&facts(path, parent)).map(|m| (m.name, m.action));
            assert_eq!(got, want, "{profile:?} {path} {parent:?}");
        }
    }

    #[test]
    fn conditions_table() {
        let mut by_uid = rule(RuleAction::Deny);
        by_uid.uid = vec![33];
        let mut by_gid = rule(RuleAction::Deny);
        by_gid.gid = vec![33];
        let mut by_owner = rule(RuleAction::Audit);
        by_owner.file_uid = vec![1000];
        let mut writable = rule(RuleAction::Deny);
        writable.non_root_writable = Some(true);
        let mut downloads = rule(RuleAction::Deny);
        downloads.path = vec!["/home/*/Downloads/**".into()];
        let mut parent = rule(RuleAction::Deny);
        parent.parent = vec!["/usr/sbin/nginx".into()];
        type Edit = fn(&mut ExecFacts<'static>);
        let cases: [(&RuleConfig, Edit, bool); 14] = [
            (&by_uid, |f| f.uid = Some(33), true),
            (&by_uid, |f| f.uid = Some(34), false),
            (&by_uid, |f| f.uid = None, false),
            (&by_gid, |f| f.gid = Some(33), true),
            (&by_gid, |_| {}, false),
            (&by_owner, |f| f.file_uid = 1000, true),
            (&by_owner, |_| {}, false),
            (&writable, |f| f.file_uid = 1000, true),
            (&writable, |f| f.file_mode = 0o100777, true),
            (&writable, |f| f.file_mode = 0o100775, true),
            (&writable, |_| {}, false),
            (
                &downloads,
                |f| f.path = Some(Path::new("/home/ann/Downloads/x/y")),
                true,
            ),
            (
                &downloads,
                |f| f.path = Some(Path::new("/home/ann/Documents/y")),
                false,
            ),
            (&parent, |f| f.parent = None, false),
        ];
        for (index, (rule, edit, want)) in cases.into_iter().enumerate() {
            let p = policy(Profile::Desktop, vec![rule.clone()]);
            let mut f = facts("/usr/bin/x", None);
            edit(&mut f);
            assert_eq!(p.evaluate(&f).is_some(), want, "case {index}: {rule:?}");
        }
    }

    #[test]
    fn first_match_wins_and_admin_rules_come_first() {
        let mut allow = rule(RuleAction::Allow);
        allow.name = Some("build-dir".into());
        allow.path = vec!["/tmp/build/**".into()];
        let p = policy(Profile::Server, vec![allow]);
        let m = p.evaluate(&facts("/tmp/build/a.out", None)).unwrap();
        assert_eq!((m.name, m.action), ("build-dir", RuleAction::Allow));
        assert_eq!(m.source, RuleSource::Config(1));
        assert_eq!(
            m.explain(),
            "rule build-dir (policy.rules[0]): path [\"/tmp/build/**\"] -> allow"
        );
        let m = p.evaluate(&facts("/tmp/other", None)).unwrap();
        assert_eq!(m.name, RULE_TMP_EXEC);
        assert_eq!(m.source, RuleSource::Profile(Profile::Server));
        // An unnamed rule is named after its position.
        let p = policy(Profile::Desktop, vec![rule(RuleAction::Audit)]);
        let m = p.evaluate(&facts("/x", None)).unwrap();
        assert_eq!(m.name, "rule-1");
        assert_eq!(m.conditions, "every exec");
    }

    #[test]
    fn what_the_agent_must_gather() {
        let desktop = policy(Profile::Desktop, Vec::new());
        assert!(desktop.is_empty() && desktop.exec_ignore_marks_safe());
        assert!(!desktop.needs_parent() && !desktop.uses_trust());
        let server = policy(Profile::Server, Vec::new());
        assert!(server.needs_parent() && !server.needs_credentials());
        assert!(!server.exec_ignore_marks_safe());
        let lockdown = policy(Profile::Lockdown, Vec::new());
        assert!(lockdown.uses_trust());
        let only_trust = policy(Profile::Desktop, vec![rule(RuleAction::TrustedOnly)]);
        assert!(only_trust.exec_ignore_marks_safe());
        assert!(lockdown.is_package_manager(Path::new("/usr/bin/dpkg")));
        assert!(!lockdown.is_package_manager(Path::new("/usr/bin/apt")));
        assert_eq!(lockdown.describe().len(), 3);
    }

    #[test]
    fn trusted_only_table() {
        let root = facts("/usr/bin/x", None);
        let mut user = root;
        user.file_uid = 1000;
        let t = |digest_matches, path_known, window_open, package_manager| TrustFacts {
            digest_matches,
            path_known,
            window_open,
            package_manager,
        };
        let cases = [
            (root, t(true, true, false, false), TrustOutcome::Trusted),
            (user, t(true, true, false, false), TrustOutcome::Trusted),
            (root, t(false, true, false, false), TrustOutcome::Untrusted),
            (
                root,
                t(false, true, true, false),
                TrustOutcome::UpgradeWindow,
            ),
            (root, t(false, false, true, false), TrustOutcome::Untrusted),
            (user, t(false, true, true, false), TrustOutcome::Untrusted),
            (
                root,
                t(false, false, false, true),
                TrustOutcome::PackageManager,
            ),
            (user, t(false, false, false, true), TrustOutcome::Untrusted),
        ];
        for (index, (f, trust, want)) in cases.into_iter().enumerate() {
            assert_eq!(trusted_only(&f, &trust), want, "case {index}");
            assert_eq!(want.allowed(), want != TrustOutcome::Untrusted);
        }
    }
}
