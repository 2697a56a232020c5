//! The `[guard]` table: the eBPF exec guard for what fanotify cannot see.
//!
//! Owns: the guard's keys, their defaults (which depend on `policy.profile`) and
//! the default list of programs allowed to execute from memory.
//! Must not own: anything about loading the BPF program (the agent's `guard`
//! module) or which filesystem types are watched (the agent's `mountinfo`).

use std::path::PathBuf;

use serde::Deserialize;

use super::Profile;

/// Programs that legitimately execute a copy of themselves from a memfd: runc
/// (CVE-2019-5736 fix: it re-executes a sealed memfd copy of its binary) and
/// crun (the same defence). Missing paths are skipped.
pub const DEFAULT_MEMFD_PROGRAMS: [&str; 6] = [
    "/usr/bin/runc",
    "/usr/sbin/runc",
    "/usr/local/bin/runc",
    "/usr/local/sbin/runc",
    "/usr/bin/crun",
    "/usr/local/bin/crun",
];

/// What the guard does with an exec from a superblock no vigil mark covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardMode {
    /// Refuse it with `EPERM` and report it.
    Deny,
    /// Allow it and report it.
    Audit,
    /// Neither look nor report (for `guard.uncovered` and `guard.network` both
    /// `off`, the program is not loaded at all).
    Off,
}

impl GuardMode {
    /// The TOML spelling, also used in logs and `vigil status`.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardMode::Deny => "deny",
            GuardMode::Audit => "audit",
            GuardMode::Off => "off",
        }
    }
}

/// The `[guard]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardConfig {
    /// Execs from an unmarked filesystem of a watched type, or from memory
    /// (memfd, anonymous shared memory, hugetlbfs). Absent: by profile, see
    /// [`GuardConfig::uncovered_for`].
    pub uncovered: Option<GuardMode>,
    /// Execs from network and FUSE filesystems, which vigil leaves unmarked on
    /// purpose. Default `off`.
    pub network: GuardMode,
    /// Only tasks in this cgroup v2 directory (and below) are guarded; absent:
    /// every task on the machine. Absolute.
    pub cgroup: Option<PathBuf>,
    /// Executables allowed to execute a program from memory (see
    /// [`DEFAULT_MEMFD_PROGRAMS`]). Absolute.
    pub memfd_programs: Vec<PathBuf>,
}

impl Default for GuardConfig {
    fn default() -> GuardConfig {
        GuardConfig {
            uncovered: None,
            network: GuardMode::Off,
            cgroup: None,
            memfd_programs: DEFAULT_MEMFD_PROGRAMS.iter().map(PathBuf::from).collect(),
        }
    }
}

impl GuardConfig {
    /// The effective `guard.uncovered`: as written, else `deny` under the
    /// `server` and `lockdown` profiles and `audit` on `desktop` (a desktop
    /// user's AppImage or a game launcher's memfd trick must not break before the
    /// administrator has looked at the reports).
    pub fn uncovered_for(&self, profile: Profile) -> GuardMode {
        self.uncovered.unwrap_or(match profile {
            Profile::Desktop => GuardMode::Audit,
            Profile::Server | Profile::Lockdown => GuardMode::Deny,
        })
    }

    /// True when the guard has nothing to do and is not loaded.
    pub fn is_off(&self, profile: Profile) -> bool {
        self.uncovered_for(profile) == GuardMode::Off && self.network == GuardMode::Off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_decides_the_default() {
        let g = GuardConfig::default();
        assert_eq!(g.uncovered_for(Profile::Desktop), GuardMode::Audit);
        assert_eq!(g.uncovered_for(Profile::Server), GuardMode::Deny);
        assert_eq!(g.uncovered_for(Profile::Lockdown), GuardMode::Deny);
        let off = GuardConfig {
            uncovered: Some(GuardMode::Off),
            ..GuardConfig::default()
        };
        assert_eq!(off.uncovered_for(Profile::Server), GuardMode::Off);
        assert!(off.is_off(Profile::Server));
        assert!(!GuardConfig::default().is_off(Profile::Desktop));
    }
}
