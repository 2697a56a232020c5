//! Exposure: what can run on this machine right now without vigil seeing it, and
//! how to close it, for `vigil status`.
//!
//! Owns reading the kernel settings that decide it (`vm.memfd_noexec`,
//! `user.max_user_namespaces`, the active LSMs) and the wording of each line.
//! Must not own: changing any of them (an administrator's decision). Every line
//! is checked against the machine when `vigil status` asks, never cached.

use serde::{Deserialize, Serialize};

/// One way around the agent that is open on this machine now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposure {
    /// A stable name (`memfd-exec`, `user-namespaces`, `new-mounts`).
    pub id: String,
    /// What can bypass vigil.
    pub what: String,
    /// How to close it.
    pub close: String,
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
    /// Reads the settings from `/proc/sys`.
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

/// The exposure lines for `kernel`.
pub fn exposures(kernel: &Kernel) -> Vec<Exposure> {
    let mut out = Vec::new();
    if kernel.memfd_noexec.is_none_or(|v| v < 2) {
        out.push(Exposure {
            id: "memfd-exec".to_owned(),
            what: "a program written to a memfd (memfd_create) and executed from it never \
                   passes a watched filesystem, so vigil does not see it (fileless loaders)"
                .to_owned(),
            close: match kernel.memfd_noexec {
                Some(_) => "sysctl -w vm.memfd_noexec=2 (refuses exec of memfds; runc and \
                            some sandboxes re-execute themselves from a memfd: test first)"
                    .to_owned(),
                None => "this kernel has no vm.memfd_noexec (Linux >= 6.3)".to_owned(),
            },
        });
    }
    if kernel.max_user_namespaces.is_none_or(|n| n > 0) {
        out.push(Exposure {
            id: "user-namespaces".to_owned(),
            what: "an unprivileged user can create a user and mount namespace and mount a \
                   tmpfs there (unshare -Urm); vigil does not watch filesystems mounted after \
                   it started, so programs run from it are not scanned"
                .to_owned(),
            close: "sysctl -w user.max_user_namespaces=0 (breaks rootless containers and \
                    browser sandboxes that need user namespaces), or restart vigil after new \
                    filesystems are mounted"
                .to_owned(),
        });
    }
    out.push(Exposure {
        id: "new-mounts".to_owned(),
        what: "a filesystem mounted after vigil started (a USB stick, a new tmpfs) is not \
               watched unless its mount point is in watch.filesystems and vigil reloaded \
               since"
            .to_owned(),
        close: "add the mount point to watch.filesystems, then vigil reload".to_owned(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(kernel: &Kernel) -> Vec<String> {
        exposures(kernel).into_iter().map(|e| e.id).collect()
    }

    #[test]
    fn each_setting_opens_or_closes_its_line() {
        let open = Kernel {
            memfd_noexec: Some(0),
            max_user_namespaces: Some(96_000),
        };
        assert_eq!(ids(&open), ["memfd-exec", "user-namespaces", "new-mounts"]);
        let closed = Kernel {
            memfd_noexec: Some(2),
            max_user_namespaces: Some(0),
        };
        assert_eq!(ids(&closed), ["new-mounts"]);
        // memfd_noexec = 1 only sets a default a process can change back.
        let one = Kernel {
            memfd_noexec: Some(1),
            max_user_namespaces: Some(0),
        };
        assert_eq!(ids(&one), ["memfd-exec", "new-mounts"]);
        // Unknown settings count as open.
        assert_eq!(
            ids(&Kernel::default()),
            ["memfd-exec", "user-namespaces", "new-mounts"]
        );
    }

    #[test]
    fn this_machine_is_read() {
        let kernel = Kernel::read();
        assert!(exposures(&kernel).iter().any(|e| e.id == "new-mounts"));
    }
}
