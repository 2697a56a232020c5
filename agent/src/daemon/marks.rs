//! Which filesystems and mounts are watched, and keeping the kernel's marks in step
//! with the configuration.
//!
//! Owns the list of marks the daemon placed. Filesystem marks are deduplicated by
//! device (two paths on one filesystem are one superblock). On reload, new marks are
//! added before stale ones are removed, so nothing goes unwatched in between.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
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
#[derive(Debug, Default)]
pub struct Marks {
    marks: Vec<Mark>,
    /// Devices of filesystem marks added at run time ([`Marks::add_filesystem`]):
    /// kept across reloads, which only plan the configured ones.
    runtime: HashSet<u64>,
}

/// The path through which the daemon reaches superblock `dev` as process `pid`
/// sees it: `/proc/PID/root/<mount point>` of a mount of it in the process's
/// mount namespace (a mount of the filesystem's root preferred). `None` when
/// the process is gone or has no such mount, or the path no longer leads to
/// `dev` (checked with `stat`, so a reused pid cannot redirect the mark).
pub fn path_to_superblock(pid: u32, dev: u64) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    let wanted = format!("{}:{}", nix::libc::major(dev), nix::libc::minor(dev));
    let mut best: Option<(bool, PathBuf)> = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.get(2) != Some(&wanted.as_str()) {
            continue;
        }
        let (Some(root), Some(mount_point)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let whole = *root == "/";
        if best.as_ref().is_some_and(|(w, _)| *w || !whole) {
            continue;
        }
        let mp = PathBuf::from(crate::daemon::mountinfo::unescape(mount_point));
        let rel = mp.strip_prefix("/").unwrap_or(&mp).to_path_buf();
        best = Some((whole, PathBuf::from(format!("/proc/{pid}/root")).join(rel)));
    }
    let (_, path) = best?;
    let md = std::fs::metadata(&path).ok()?;
    (md.dev() == dev).then_some(path)
}

fn key_of(kind: MarkKind) -> &'static str {
    match kind {
        MarkKind::Filesystem => "filesystems",
        MarkKind::Mount => "mounts",
    }
}

/// The events every filesystem or mount mark asks for under `config`.
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
    if !filesystems.is_empty() && filesystems.iter().all(|w| !w.required) {
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
        for old in &self.marks {
            if old.kind == MarkKind::Filesystem
                && self.runtime.contains(&old.dev)
                && !placed.iter().any(|p| same_target(p, old))
            {
                placed.push(old.clone());
                continue;
            }
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
        Ok(())
    }

    /// Adds a filesystem mark on `path` (superblock `dev`) at run time, e.g. for
    /// a filesystem the exec guard reported. It stays until shutdown or until
    /// the filesystem is unmounted (the kernel then drops it); reloads keep it.
    ///
    /// # Errors
    /// The `fanotify_mark` errno.
    pub fn add_filesystem(
        &mut self,
        group: &Group,
        path: &Path,
        dev: u64,
        mask: MaskFlags,
    ) -> Result<(), Errno> {
        group.mark(MarkKind::Filesystem, path, mask)?;
        self.marks
            .retain(|m| !(m.kind == MarkKind::Filesystem && m.dev == dev));
        self.marks.push(Mark {
            kind: MarkKind::Filesystem,
            path: path.to_path_buf(),
            dev,
            mask,
        });
        self.runtime.insert(dev);
        Ok(())
    }

    /// Removes every filesystem and mount mark (shutdown).
    pub fn remove_all(&mut self, group: &Group) {
        for kind in [MarkKind::Filesystem, MarkKind::Mount] {
            if let Err(errno) = group.flush(kind) {
                tracing::warn!(kind = kind.as_str(), %errno, "could not flush marks");
            }
        }
        self.marks.clear();
        self.runtime.clear();
    }

    /// True when the filesystem mark on `dev` was added at run time.
    pub fn is_runtime(&self, dev: u64) -> bool {
        self.runtime.contains(&dev)
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
    fn path_to_superblock_finds_the_root_filesystem_through_proc() {
        let dev = std::fs::metadata("/").unwrap().dev();
        let pid = std::process::id();
        let path = path_to_superblock(pid, dev).expect("a mount of / in our own namespace");
        assert!(
            path.starts_with(format!("/proc/{pid}/root")),
            "{}",
            path.display()
        );
        assert_eq!(std::fs::metadata(&path).unwrap().dev(), dev);
        // A device nothing is mounted from, and a process that does not exist.
        assert_eq!(
            path_to_superblock(pid, nix::libc::makedev(4095, 1_048_000)),
            None
        );
        assert_eq!(path_to_superblock(u32::MAX - 1, dev), None);
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
