//! What the guard needs to know about the running kernel and machine before it
//! loads: whether the BPF LSM is active, where a cgroup sits in the cgroup v2
//! hierarchy, which superblocks are mounted now.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::GuardError;

const LSM_LIST: &str = "/sys/kernel/security/lsm";
const SECURITYFS: &str = "/sys/kernel/security";

/// Checks that `bpf` is among the active LSMs. When securityfs is not mounted
/// (some minimal systems, containers), mounts it where systemd would.
///
/// # Errors
/// [`GuardError::NoBpfLsm`] with what was found.
pub fn bpf_lsm_active() -> Result<(), GuardError> {
    let list = match std::fs::read_to_string(LSM_LIST) {
        Ok(list) => list,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            nix::mount::mount(
                Some("securityfs"),
                SECURITYFS,
                Some("securityfs"),
                nix::mount::MsFlags::MS_NOSUID
                    | nix::mount::MsFlags::MS_NODEV
                    | nix::mount::MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .map_err(|errno| {
                GuardError::NoBpfLsm(format!(
                    "{LSM_LIST} is missing and securityfs cannot be mounted on {SECURITYFS}: {errno}"
                ))
            })?;
            tracing::info!("mounted securityfs on {SECURITYFS} to read the active LSMs");
            std::fs::read_to_string(LSM_LIST)
                .map_err(|e| GuardError::NoBpfLsm(format!("{LSM_LIST}: {e}")))?
        }
        Err(e) => return Err(GuardError::NoBpfLsm(format!("{LSM_LIST}: {e}"))),
    };
    if lsm_list_has_bpf(&list) {
        Ok(())
    } else {
        Err(GuardError::NoBpfLsm(format!(
            "the active LSMs are \"{}\" (no bpf: boot with lsm=...,bpf and CONFIG_BPF_LSM=y)",
            list.trim()
        )))
    }
}

/// True when the comma-separated LSM list names `bpf`.
pub fn lsm_list_has_bpf(list: &str) -> bool {
    list.trim().split(',').any(|l| l == "bpf")
}

/// The cgroup v2 id and level (depth below the hierarchy's root, which is level
/// 0) of the cgroup directory `path`, for `bpf_get_current_ancestor_cgroup_id`.
///
/// # Errors
/// [`GuardError::Cgroup`] when `path` is not a directory on a cgroup2 mount.
pub fn cgroup_id_level(path: &Path) -> Result<(u64, u32), GuardError> {
    let bad = |why: String| GuardError::Cgroup {
        path: path.to_path_buf(),
        why,
    };
    let md = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !md.is_dir() {
        return Err(bad("not a directory".to_owned()));
    }
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| bad(e.to_string()))?;
    // The cgroup2 mount this path lies under (the longest mount point that is a
    // prefix of it), and the hierarchy path that mount shows (field 4).
    let mut best: Option<(PathBuf, PathBuf)> = None;
    for line in mountinfo.lines() {
        let Some(m) = MountLine::parse(line) else {
            continue;
        };
        if m.fstype != "cgroup2" || !path.starts_with(&m.mount_point) {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|(mp, _)| m.mount_point.as_os_str().len() > mp.as_os_str().len())
        {
            best = Some((m.mount_point, m.root));
        }
    }
    let (mount_point, root) =
        best.ok_or_else(|| bad("not on a cgroup2 (unified hierarchy) mount".to_owned()))?;
    let below = path
        .strip_prefix(&mount_point)
        .map_err(|e| bad(e.to_string()))?;
    let depth = |p: &Path| {
        p.components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .count()
    };
    if below
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(bad("must not contain . or ..".to_owned()));
    }
    let level = u32::try_from(depth(&root) + depth(below))
        .map_err(|_| bad("nested too deep".to_owned()))?;
    // On cgroup2 the directory's inode number is the cgroup id.
    Ok((md.ino(), level))
}

/// One line of `/proc/PID/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountLine {
    /// `st_dev` of the superblock (from `major:minor`).
    pub dev: u64,
    /// The path inside the filesystem that is mounted (field 4).
    pub root: PathBuf,
    /// The mount point (field 5), unescaped.
    pub mount_point: PathBuf,
    /// The filesystem type.
    pub fstype: String,
}

impl MountLine {
    /// Parses one line; `None` for a malformed one.
    pub fn parse(line: &str) -> Option<MountLine> {
        let fields: Vec<&str> = line.split(' ').collect();
        let (major, minor) = fields.get(2)?.split_once(':')?;
        let dev = nix::libc::makedev(major.parse().ok()?, minor.parse().ok()?);
        let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
        Some(MountLine {
            dev,
            root: PathBuf::from(crate::daemon::mountinfo::unescape(fields.get(3)?)),
            mount_point: PathBuf::from(crate::daemon::mountinfo::unescape(fields.get(4)?)),
            fstype: (*fields.get(sep + 1)?).to_owned(),
        })
    }
}

/// Every superblock mounted in this process's mount namespace now.
pub fn mounted_superblocks() -> Vec<MountLine> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| text.lines().filter_map(MountLine::parse).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsm_list() {
        assert!(lsm_list_has_bpf("lockdown,capability,landlock,bpf\n"));
        assert!(lsm_list_has_bpf("bpf"));
        assert!(!lsm_list_has_bpf("lockdown,capability,landlock"));
        assert!(!lsm_list_has_bpf("bpfx,apparmor"));
    }

    #[test]
    fn mount_line() {
        let m = MountLine::parse(
            "30 22 0:26 /sub /sys/fs/cgroup/my\\040dir rw,nosuid shared:9 - cgroup2 cgroup2 rw",
        )
        .unwrap();
        assert_eq!(m.dev, nix::libc::makedev(0, 26));
        assert_eq!(m.root, PathBuf::from("/sub"));
        assert_eq!(m.mount_point, PathBuf::from("/sys/fs/cgroup/my dir"));
        assert_eq!(m.fstype, "cgroup2");
        assert!(MountLine::parse("garbage").is_none());
    }

    #[test]
    fn not_a_cgroup() {
        assert!(matches!(
            cgroup_id_level(Path::new("/")),
            Err(GuardError::Cgroup { .. })
        ));
    }
}
