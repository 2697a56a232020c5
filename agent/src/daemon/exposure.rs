//! Exposure: what can run on this machine right now without vigil seeing it, and
//! how to close it, for `vigil status`.
//!
//! Owns reading the kernel settings that decide it (`vm.memfd_noexec`,
//! `user.max_user_namespaces`) and the wording of each line; every line is
//! reported, `open` or `closed`. Must not own: changing any of them
//! (`policy.sysctl_hardening`, in [`crate::daemon::sysctl_hardening`], or the
//! administrator). Every line is checked against the machine when `vigil status`
//! asks, never cached.

use serde::{Deserialize, Serialize};

/// One way around the agent, and whether it is open on this machine now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposure {
    /// A stable name (`memfd-exec`, `user-namespaces`, `new-mounts`).
    pub id: String,
    /// `open` (vigil can be bypassed this way now) or `closed`.
    pub state: String,
    /// What can bypass vigil, or what closes it.
    pub what: String,
    /// How to close it (empty when closed).
    pub close: String,
}

impl Exposure {
    /// True when this way around vigil is open now.
    pub fn is_open(&self) -> bool {
        self.state == "open"
    }
}

/// The kernel facts the exposure lines depend on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Kernel {
    /// `vm.memfd_noexec` (0, 1, 2), if the kernel has it.
    pub memfd_noexec: Option<u8>,
    /// `user.max_user_namespaces`, if readable.
    pub max_user_namespaces: Option<u64>,
}

impl Kernel {
    /// Reads the settings from `/proc/sys` (as they apply to the daemon's own
    /// pid and user namespaces).
    pub fn read() -> Kernel {
        let number = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        Kernel {
            memfd_noexec: number("/proc/sys/vm/memfd_noexec").and_then(|v| u8::try_from(v).ok()),
            max_user_namespaces: number("/proc/sys/user/max_user_namespaces"),
        }
    }
}

/// What the daemon itself covers: whether filesystems mounted after start are
/// marked, and how the watcher hears of them (`fanotify-mntns`,
/// `mountinfo-poll`), from [`crate::daemon::mount_watch`]; and what the exec
/// guard does machine-wide with execs from filesystems vigil has not marked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Coverage {
    /// `None`: new mounts are not watched.
    pub new_mounts: Option<&'static str>,
    /// `None`: no guard loaded, or one scoped to a cgroup (it does not cover
    /// the machine).
    pub guard: Option<GuardCover>,
}

/// What a loaded, machine-wide exec guard does with an exec from an unmarked
/// filesystem or a memfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardCover {
    /// Refuses it (`guard.uncovered = "deny"`): the route is closed.
    Deny,
    /// Allows and reports it (`"audit"`): still open, but seen.
    Audit,
}

fn line(id: &str, open: bool, what: String, close: String) -> Exposure {
    Exposure {
        id: id.to_owned(),
        state: if open { "open" } else { "closed" }.to_owned(),
        what,
        close: if open { close } else { String::new() },
    }
}

const GUARD_DENY: &str = "guard.uncovered = \"deny\" (the server and lockdown default)";
const AUDITED: &str = "; the exec guard reports each such exec (guard.uncovered = \"audit\")";

/// The exposure lines for `kernel` and `coverage`, open or closed, always the
/// same three in the same order.
pub fn exposures(kernel: &Kernel, coverage: &Coverage) -> Vec<Exposure> {
    let scan_s = crate::daemon::mount_watch::NAMESPACE_SCAN.as_secs();
    let guard_denies = coverage.guard == Some(GuardCover::Deny);
    let audited = if coverage.guard == Some(GuardCover::Audit) {
        AUDITED
    } else {
        ""
    };
    let memfd_kernel = kernel.memfd_noexec.is_none_or(|v| v < 2);
    let memfd = line(
        "memfd-exec",
        memfd_kernel && !guard_denies,
        if !memfd_kernel {
            "vm.memfd_noexec = 2: the kernel refuses to execute memfds".to_owned()
        } else if guard_denies {
            "the exec guard refuses execs from memfds (except the programs in \
             guard.memfd_programs)"
                .to_owned()
        } else {
            format!(
                "a program written to a memfd (memfd_create) and executed from it never \
                 passes a watched filesystem, so vigil does not scan it (fileless \
                 loaders){audited}"
            )
        },
        match kernel.memfd_noexec {
            Some(_) => format!(
                "{GUARD_DENY}, or sysctl -w vm.memfd_noexec=2, or policy.sysctl_hardening = \
                 true with the server or lockdown profile (refuses exec of memfds; runc and \
                 some sandboxes re-execute themselves from a memfd: test first)"
            ),
            None => format!("{GUARD_DENY} (this kernel has no vm.memfd_noexec, Linux >= 6.3)"),
        },
    );
    let userns_kernel = kernel.max_user_namespaces.is_none_or(|n| n > 0);
    let userns = line(
        "user-namespaces",
        userns_kernel && !guard_denies,
        match (userns_kernel, guard_denies, coverage.new_mounts) {
            (false, _, _) => {
                "user.max_user_namespaces = 0: no user can create a user namespace".to_owned()
            }
            (true, true, _) => "an unprivileged user can mount a tmpfs in a new user and \
                                mount namespace (unshare -Urm), but the exec guard refuses \
                                execs from it until vigil has marked it, and marks it: a \
                                retry is scanned"
                .to_owned(),
            (true, false, Some(_)) => format!(
                "an unprivileged user can create a user and mount namespace and mount a \
                 tmpfs there (unshare -Urm); vigil finds new namespaces every {scan_s} s, \
                 so a program run from it before then is not scanned{audited}"
            ),
            (true, false, None) => format!(
                "an unprivileged user can create a user and mount namespace and mount a \
                 tmpfs there (unshare -Urm); vigil does not watch filesystems mounted \
                 after it started, so programs run from it are not scanned{audited}"
            ),
        },
        format!(
            "{GUARD_DENY}, or sysctl -w user.max_user_namespaces=0, or \
             policy.sysctl_hardening = true with the server or lockdown profile (breaks \
             rootless containers and browser sandboxes that need user namespaces)"
        ),
    );
    let mounts = line(
        "new-mounts",
        coverage.new_mounts.is_none() && !guard_denies,
        match (coverage.new_mounts, guard_denies) {
            (Some(via), _) => format!(
                "filesystems mounted after start are marked as they appear ({via}), in \
                 every mount namespace; new namespaces are found within {scan_s} s"
            ),
            (None, true) => "filesystems mounted after start are not watched, but the exec \
                             guard refuses execs from them and marks each one it sees: a \
                             retry is scanned"
                .to_owned(),
            (None, false) => format!(
                "a filesystem mounted after vigil started (a USB stick, a new tmpfs) is \
                 not watched: watch.filesystems lists filesystems and watch.new_mounts \
                 is off{audited}"
            ),
        },
        format!(
            "set watch.new_mounts = true (or drop watch.filesystems for the built-in \
             list), then restart vigil; or {GUARD_DENY}"
        ),
    );
    vec![memfd, userns, mounts]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_ids(kernel: &Kernel, coverage: &Coverage) -> Vec<String> {
        let lines = exposures(kernel, coverage);
        assert_eq!(
            lines.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["memfd-exec", "user-namespaces", "new-mounts"]
        );
        assert!(lines.iter().all(|e| e.is_open() != e.close.is_empty()));
        lines
            .into_iter()
            .filter(Exposure::is_open)
            .map(|e| e.id)
            .collect()
    }

    #[test]
    fn each_setting_opens_or_closes_its_line() {
        let unwatched = Coverage::default();
        let watched = Coverage {
            new_mounts: Some("fanotify-mntns"),
            guard: None,
        };
        let open = Kernel {
            memfd_noexec: Some(0),
            max_user_namespaces: Some(96_000),
        };
        assert_eq!(
            open_ids(&open, &unwatched),
            ["memfd-exec", "user-namespaces", "new-mounts"]
        );
        assert_eq!(open_ids(&open, &watched), ["memfd-exec", "user-namespaces"]);
        let closed = Kernel {
            memfd_noexec: Some(2),
            max_user_namespaces: Some(0),
        };
        assert_eq!(open_ids(&closed, &unwatched), ["new-mounts"]);
        assert!(open_ids(&closed, &watched).is_empty());
        // memfd_noexec = 1 only sets a default a process can change back.
        let one = Kernel {
            memfd_noexec: Some(1),
            max_user_namespaces: Some(0),
        };
        assert_eq!(open_ids(&one, &watched), ["memfd-exec"]);
        // Unknown settings count as open.
        assert_eq!(
            open_ids(&Kernel::default(), &watched),
            ["memfd-exec", "user-namespaces"]
        );
    }

    #[test]
    fn a_denying_guard_closes_every_line_an_auditing_one_none() {
        let open = Kernel {
            memfd_noexec: Some(0),
            max_user_namespaces: Some(96_000),
        };
        let deny = Coverage {
            new_mounts: None,
            guard: Some(GuardCover::Deny),
        };
        assert!(open_ids(&open, &deny).is_empty());
        let audit = Coverage {
            new_mounts: None,
            guard: Some(GuardCover::Audit),
        };
        assert_eq!(
            open_ids(&open, &audit),
            ["memfd-exec", "user-namespaces", "new-mounts"]
        );
        assert!(
            exposures(&open, &audit)
                .iter()
                .all(|e| e.what.contains("reports each"))
        );
    }

    #[test]
    fn this_machine_is_read() {
        let kernel = Kernel::read();
        assert_eq!(exposures(&kernel, &Coverage::default()).len(), 3);
    }
}
