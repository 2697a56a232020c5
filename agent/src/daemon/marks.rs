//! Which filesystems and mounts are watched, and keeping the kernel's marks in step
//! with the configuration.
//!
//! Owns the list of marks the daemon placed. Filesystem marks are deduplicated by
//! device (two paths on one filesystem are one superblock). On reload, new marks are
//! added before stale ones are removed, so nothing goes unwatched in between.
//! Marks placed at run time for a filesystem found after start
//! ([`MarkSource::Mount`], by [`crate::daemon::mount_watch`] or any other caller
//! of [`Marks::add_superblock`]) survive reloads while the configuration still
//! watches new mounts (those the exec guard asked for, [`MarkSource::Guard`],
//! always), and leave the list when their filesystem is unmounted
//! everywhere ([`Marks::drop_unmounted`]; the kernel drops the mark itself with the
//! superblock).

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::fanotify::MaskFlags;
use vigil_policy::{Config, ScanOnOpen, WatchPath};

use crate::fanotify::{Group, MarkKind, watch_mask};

/// One mark the daemon placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Filesystem or mount.
    pub kind: MarkKind,
    /// The path it was placed through.
    pub path: PathBuf,
    /// The device of that path (identifies the filesystem).
    pub dev: u64,
    /// The events asked for.
    pub mask: MaskFlags,
    /// Why it is there.
    pub source: MarkSource,
}

/// Why a mark is in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkSource {
    /// `watch.filesystems` / `watch.mounts` (or the built-in default) at start
    /// or reload.
    Config,
    /// A filesystem found at run time (mounted after start, or in another mount
    /// namespace).
    Mount,
    /// A filesystem the exec guard reported an exec from.
    Guard,
}

impl MarkSource {
    /// Stable lower-case name for logs and `vigil status`.
    pub fn as_str(self) -> &'static str {
        match self {
            MarkSource::Config => "config",
            MarkSource::Mount => "mount",
            MarkSource::Guard => "guard",
        }
    }
}

/// Why a run-time filesystem mark could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum CoverError {
    /// No mount of that device is reachable through `/proc/<pid>/root`.
    #[error("no mount of device {major}:{minor} is reachable from process {pid}")]
    Unreachable {
        /// The process whose mount namespace was searched.
        pid: i32,
        /// Major device number.
        major: u64,
        /// Minor device number.
        minor: u64,
    },
    /// The path could not be opened or is no longer on that device.
    #[error("{path}: {reason}")]
    Path {
        /// The path tried.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The kernel refused the mark.
    #[error("fanotify refused to mark {path}: {errno}")]
    Kernel {
        /// The path tried.
        path: PathBuf,
        /// The errno.
        errno: Errno,
    },
}

/// A mark that could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    /// A configured path does not exist or cannot be examined.
    #[error("watch.{key}: cannot use {path}: {source}")]
    Path {
        /// `filesystems` or `mounts`.
        key: &'static str,
        /// The configured path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The kernel refused the mark.
    #[error("watch.{key}: fanotify refused to mark {path}: {errno}")]
    Kernel {
        /// `filesystems` or `mounts`.
        key: &'static str,
        /// The configured path.
        path: PathBuf,
        /// The errno (EXDEV/ENODEV: filesystem without an fsid, such as some FUSE).
        errno: Errno,
    },
}

/// True when both marks are on the same kernel object: the same superblock for
/// filesystem marks, the same mount path for mount marks.
fn same_target(a: &Mark, b: &Mark) -> bool {
    a.kind == b.kind
        && match a.kind {
            MarkKind::Filesystem => a.dev == b.dev,
            MarkKind::Mount => a.path == b.path,
        }
}

/// The marks currently in place.
#[derive(Debug)]
pub struct Marks {
    marks: Vec<Mark>,
    /// The mask of the configuration last applied: what run-time marks ask for.
    mask: MaskFlags,
}

impl Default for Marks {
    fn default() -> Marks {
        Marks {
            marks: Vec::new(),
            mask: MaskFlags::empty(),
        }
    }
}

/// True when the configuration uses the built-in filesystem list (no
/// `watch.filesystems` written: every entry optional).
pub fn uses_builtin_list(config: &Config) -> bool {
    let list = &config.watch.filesystems;
    !list.is_empty() && list.iter().all(|w| !w.required)
}

/// True when filesystems mounted after start are marked: `watch.new_mounts`,
/// which defaults to on with the built-in list and off with an explicit
/// `watch.filesystems` (then exactly the listed filesystems are watched).
pub fn watches_new_mounts(config: &Config) -> bool {
    config
        .watch
        .new_mounts
        .unwrap_or_else(|| uses_builtin_list(config))
}

/// A path through which this daemon can reach (and mark) the filesystem with
/// device `dev` as process `pid` sees it: the first mount of that device in
/// `pid`'s mount namespace whose mount point still leads to it (not hidden by
/// another mount), as `/proc/<pid>/root/<mount point>`, or the plain mount
/// point when `pid` is the daemon itself. `None` when `pid` is gone, has no
/// such mount, or every mount of it is hidden. (A btrfs subvolume, whose
/// `st_dev` is not its superblock's device, is not found this way.)
///
/// The path is checked when returned, not held: callers that act on it should
/// open it and check the device again (as [`Marks::add_superblock`] does).
pub fn path_to_superblock(pid: i32, dev: u64) -> Option<PathBuf> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    crate::daemon::mountinfo::parse(&table)
        .into_iter()
        .filter(|m| m.dev == dev)
        .map(|m| reach(pid, &m.mount_point))
        .find(|path| std::fs::metadata(path).is_ok_and(|md| md.dev() == dev))
}

/// The path through which `mount_point`, as process `pid` sees it, is reached
/// from this daemon.
pub fn reach(pid: i32, mount_point: &Path) -> PathBuf {
    if u32::try_from(pid).is_ok_and(|p| p == std::process::id()) {
        return mount_point.to_path_buf();
    }
    let rel = mount_point.strip_prefix("/").unwrap_or(mount_point);
    PathBuf::from(format!("/proc/{pid}/root")).join(rel)
}

fn key_of(kind: MarkKind) -> &'static str {
    match kind {
        MarkKind::Filesystem => "filesystems",
        MarkKind::Mount => "mounts",
    }
}

/// The events every filesystem or mount mark of `config` asks for.
pub fn mask_for(config: &Config) -> MaskFlags {
    watch_mask(
        !matches!(config.watch.scan_on_open, ScanOnOpen::None),
        config.scan.scan_on_write,
    )
}

/// Resolves the configuration into the marks it asks for. Optional (built-in
/// default) paths that do not exist are skipped.
///
/// # Errors
/// A required path that cannot be examined.
pub fn plan(config: &Config) -> Result<Vec<Mark>, MarkError> {
    let mask = mask_for(config);
    let mut out = Vec::new();
    let mut seen_fs = HashSet::new();
    // The built-in default (no `watch.filesystems` in the config: every entry
    // optional) grows to every local filesystem mounted, so /run/user, /boot or a
    // separate /srv are covered too.
    let mut filesystems = config.watch.filesystems.clone();
    if uses_builtin_list(config) {
        filesystems.extend(
            crate::daemon::mountinfo::local_filesystems()
                .into_iter()
                .map(|path| WatchPath {
                    path,
                    required: false,
                }),
        );
    }
    let lists: [(MarkKind, &[WatchPath]); 2] = [
        (MarkKind::Filesystem, &filesystems),
        (MarkKind::Mount, &config.watch.mounts),
    ];
    for (kind, list) in lists {
        for wp in list {
            let dev = match std::fs::metadata(&wp.path) {
                Ok(md) => md.dev(),
                Err(_) if !wp.required => continue,
                Err(source) => {
                    return Err(MarkError::Path {
                        key: key_of(kind),
                        path: wp.path.clone(),
                        source,
                    });
                }
            };
            if kind == MarkKind::Filesystem && !seen_fs.insert(dev) {
                continue;
            }
            out.push(Mark {
                kind,
                path: wp.path.clone(),
                dev,
                mask,
                source: MarkSource::Config,
            });
        }
    }
    Ok(out)
}

impl Marks {
    /// Places the marks of `config`.
    ///
    /// # Errors
    /// A required path missing, or a mark the kernel refused on a required path
    /// (refusals on optional default paths are logged and skipped). Marks placed
    /// before the error are removed again.
    pub fn apply(group: &Group, config: &Config) -> Result<Marks, MarkError> {
        let mut marks = Marks::default();
        marks.update(group, config)?;
        Ok(marks)
    }

    /// Moves the kernel's marks from the current set to what `config` asks for:
    /// adds first, then removes what is no longer wanted.
    ///
    /// # Errors
    /// As [`Marks::apply`]; on error the previous marks are still in place.
    pub fn update(&mut self, group: &Group, config: &Config) -> Result<(), MarkError> {
        let wanted = plan(config)?;
        let required: HashSet<&Path> = config
            .watch
            .filesystems
            .iter()
            .chain(&config.watch.mounts)
            .filter(|w| w.required)
            .map(|w| w.path.as_path())
            .collect();
        let mut placed = Vec::new();
        for m in wanted {
            if self
                .marks
                .iter()
                .any(|o| same_target(o, &m) && o.mask == m.mask)
            {
                placed.push(m);
                continue;
            }
            match group.mark(m.kind, &m.path, m.mask) {
                Ok(()) => placed.push(m),
                Err(errno) if !required.contains(m.path.as_path()) => {
                    tracing::warn!(path = %m.path.display(), kind = m.kind.as_str(), %errno,
                        "cannot watch this default path; skipped");
                }
                Err(errno) => {
                    // Undo what this call added; the old set stays.
                    for p in placed
                        .iter()
                        .filter(|p| !self.marks.iter().any(|o| same_target(o, p)))
                    {
                        let _ = group.unmark(p.kind, &p.path, p.mask);
                    }
                    return Err(MarkError::Kernel {
                        key: key_of(m.kind),
                        path: m.path,
                        errno,
                    });
                }
            }
        }
        // Run-time marks stay while new mounts are still watched, moved to the new
        // mask (added first, like every mark here); a configured mark on the same
        // filesystem takes their place.
        let mask = mask_for(config);
        let keep_runtime = watches_new_mounts(config);
        for old in self.marks.iter().filter(|o| o.source != MarkSource::Config) {
            let kept = keep_runtime || old.source == MarkSource::Guard;
            if !kept || placed.iter().any(|p| same_target(p, old)) {
                continue;
            }
            if old.mask != mask
                && let Err(errno) = group.mark(old.kind, &old.path, mask)
            {
                // The mount watcher places it again from a fresh path.
                tracing::warn!(path = %old.path.display(), %errno, "could not move a run-time mark to the new mask");
                continue;
            }
            placed.push(Mark {
                mask,
                ..old.clone()
            });
        }
        for old in &self.marks {
            let still = placed.iter().find(|p| same_target(p, old));
            let drop_bits = match still {
                Some(p) => old.mask.difference(p.mask),
                None => old.mask,
            };
            if !drop_bits.is_empty()
                && let Err(errno) = group.unmark(old.kind, &old.path, drop_bits)
            {
                tracing::warn!(path = %old.path.display(), %errno, "could not remove a stale mark");
            }
        }
        self.marks = placed;
        self.mask = mask;
        Ok(())
    }

    /// True when a filesystem mark covers device `dev`.
    pub fn covers(&self, dev: u64) -> bool {
        self.marks
            .iter()
            .any(|m| m.kind == MarkKind::Filesystem && m.dev == dev)
    }

    /// Marks the filesystem with device `dev` as process `pid` sees it (found
    /// with [`path_to_superblock`]), with the events the configuration asks for,
    /// and lists it. For callers that learn of an unmarked filesystem at run
    /// time (the mount watcher, an exec guard). Always asks the kernel, even
    /// when [`Marks::covers`] says yes: device numbers of memory filesystems are
    /// reused, so a listed device may be a new superblock; a mark already on the
    /// superblock is left as it is by the kernel.
    ///
    /// # Errors
    /// [`CoverError`]: no reachable mount, or the kernel refused.
    pub fn add_superblock(
        &mut self,
        group: &Group,
        pid: i32,
        dev: u64,
        source: MarkSource,
    ) -> Result<Mark, CoverError> {
        let path = path_to_superblock(pid, dev).ok_or(CoverError::Unreachable {
            pid,
            major: nix::sys::stat::major(dev),
            minor: nix::sys::stat::minor(dev),
        })?;
        self.add_path(group, &path, dev, source)
    }

    /// Marks the filesystem at `path`, which must be on device `dev`: the path
    /// is opened `O_PATH` and checked, and the mark placed through that
    /// descriptor, so a mount swapped in between cannot redirect the mark.
    ///
    /// # Errors
    /// [`CoverError::Path`] when the path cannot be opened or is on another
    /// device; [`CoverError::Kernel`] when the kernel refused.
    pub fn add_path(
        &mut self,
        group: &Group,
        path: &Path,
        dev: u64,
        source: MarkSource,
    ) -> Result<Mark, CoverError> {
        let path_error = |reason: String| CoverError::Path {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::options()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_PATH.bits())
            .open(path)
            .map_err(|e| path_error(e.to_string()))?;
        let md = file.metadata().map_err(|e| path_error(e.to_string()))?;
        let found = md.dev();
        if found != dev {
            return Err(path_error(format!(
                "now on device {}:{}, not {}:{}",
                nix::sys::stat::major(found),
                nix::sys::stat::minor(found),
                nix::sys::stat::major(dev),
                nix::sys::stat::minor(dev)
            )));
        }
        let mask = if self.mask.is_empty() {
            watch_mask(false, false)
        } else {
            self.mask
        };
        let placed = if md.is_dir() {
            group.mark_dir_fd(MarkKind::Filesystem, file.as_fd(), mask)
        } else {
            // A file bind-mounted on a file: no directory to resolve from; the
            // path was just checked.
            group.mark(MarkKind::Filesystem, path, mask)
        };
        placed.map_err(|errno| CoverError::Kernel {
            path: path.to_path_buf(),
            errno,
        })?;
        let mark = Mark {
            kind: MarkKind::Filesystem,
            path: path.to_path_buf(),
            dev,
            mask,
            source,
        };
        // One entry per device: a run-time entry is replaced (its path may be
        // gone), a configured one stays as it is.
        match self
            .marks
            .iter_mut()
            .find(|m| m.kind == MarkKind::Filesystem && m.dev == dev)
        {
            Some(old) if old.source != MarkSource::Config => *old = mark.clone(),
            Some(_) => {}
            None => self.marks.push(mark.clone()),
        }
        Ok(mark)
    }

    /// Forgets the filesystem marks whose device is in no mount table any more
    /// (`present`: every device mounted in a mount namespace the daemon knows)
    /// and whose path no longer leads to it, and returns them. The kernel already
    /// removed each such mark with its superblock, or does when the last user of
    /// a lazily unmounted one lets go. (The path check keeps a filesystem whose
    /// `st_dev` differs from its mountinfo device, such as a btrfs subvolume.)
    pub fn drop_unmounted(&mut self, present: &HashSet<u64>) -> Vec<Mark> {
        let (gone, kept): (Vec<Mark>, Vec<Mark>) = self.marks.drain(..).partition(|m| {
            m.kind == MarkKind::Filesystem
                && !present.contains(&m.dev)
                && !std::fs::metadata(&m.path).is_ok_and(|md| md.dev() == m.dev)
        });
        self.marks = kept;
        gone
    }

    /// Removes every filesystem and mount mark (shutdown).
    pub fn remove_all(&mut self, group: &Group) {
        for kind in [MarkKind::Filesystem, MarkKind::Mount] {
            if let Err(errno) = group.flush(kind) {
                tracing::warn!(kind = kind.as_str(), %errno, "could not flush marks");
            }
        }
        self.marks.clear();
    }

    /// True when the filesystem mark on `dev` was placed because the exec guard
    /// reported an exec from it.
    pub fn is_guard_placed(&self, dev: u64) -> bool {
        self.marks
            .iter()
            .any(|m| m.dev == dev && m.source == MarkSource::Guard)
    }

    /// The marks in place.
    pub fn list(&self) -> &[Mark] {
        &self.marks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn default_plan_covers_every_local_filesystem_once() {
        let planned = plan(&Config::default()).unwrap();
        let root = std::fs::metadata("/").unwrap().dev();
        assert!(planned.iter().any(|m| m.dev == root), "{planned:?}");
        let local = crate::daemon::mountinfo::local_filesystems();
        for mp in local {
            let Ok(md) = std::fs::metadata(&mp) else {
                continue;
            };
            assert!(
                planned.iter().any(|m| m.dev == md.dev()),
                "{} not planned",
                mp.display()
            );
        }
        let mut devs: Vec<u64> = planned.iter().map(|m| m.dev).collect();
        devs.sort_unstable();
        devs.dedup();
        assert_eq!(
            devs.len(),
            planned.len(),
            "a filesystem planned twice: {planned:?}"
        );
    }

    #[test]
    fn a_superblock_is_found_through_proc_root() {
        let me = std::process::id() as i32;
        let root = std::fs::metadata("/").unwrap().dev();
        assert_eq!(path_to_superblock(me, root), Some(PathBuf::from("/")));
        // Through another process's root (pid 1 shares ours here, or not).
        if let Some(path) = path_to_superblock(1, root) {
            assert!(path.starts_with("/proc/1/root"), "{}", path.display());
            assert_eq!(std::fs::metadata(&path).unwrap().dev(), root);
        }
        // No filesystem has this device; no process has this pid.
        assert_eq!(path_to_superblock(me, u64::MAX), None);
        assert_eq!(path_to_superblock(i32::MAX, root), None);
    }

    #[test]
    fn new_mounts_follow_the_list_unless_set() {
        let mut config = Config::default();
        assert!(uses_builtin_list(&config) && watches_new_mounts(&config));
        config.watch.filesystems = vec![WatchPath {
            path: "/".into(),
            required: true,
        }];
        assert!(!uses_builtin_list(&config) && !watches_new_mounts(&config));
        config.watch.new_mounts = Some(true);
        assert!(watches_new_mounts(&config));
        config.watch.filesystems = Vec::new();
        assert!(!uses_builtin_list(&config) && watches_new_mounts(&config));
        config = Config::default();
        config.watch.new_mounts = Some(false);
        assert!(!watches_new_mounts(&config));
    }

    #[test]
    fn explicit_list_is_taken_as_is() {
        let mut config = Config::default();
        config.watch.filesystems = vec![WatchPath {
            path: "/".into(),
            required: true,
        }];
        let planned = plan(&config).unwrap();
        assert_eq!(planned.len(), 1);
        config.watch.filesystems = vec![WatchPath {
            path: "/does/not/exist".into(),
            required: true,
        }];
        assert!(matches!(plan(&config), Err(MarkError::Path { .. })));
    }
}
