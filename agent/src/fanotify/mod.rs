//! The fanotify layer: the group, its marks, and the answers written to it.
//!
//! Owns the fanotify group fd (inside [`Group`]) and every syscall made on it. It
//! does not own events once read: each [`nix::sys::fanotify::FanotifyEvent`] owns
//! its fd and travels to a worker inside a [`crate::daemon::respond::Pending`].
//!
//! # Which wrapper, and why
//! The design card names `fanotify-rs`. We measured it (ARCHITECTURE.md): its reader
//! closes each event fd before returning it, panics on non-UTF-8 names (leaving the
//! event unanswered, so the opener hangs), reads through an unaligned cast and drops
//! read and response errors. Its only sound parts are thin `fanotify_init` and
//! `fanotify_mark` wrappers, and `nix::sys::fanotify` offers the same calls with typed
//! flags (`FAN_MARK_FILESYSTEM`, `FAN_MARK_IGNORE`, `FAN_MARK_EVICTABLE`), events that
//! own their fd and surfaced errors. Mixing two wrappers over one fd would give two
//! sets of flag types for no gain, so vigil uses **nix only** and does not depend on
//! fanotify-rs. The one `unsafe` step nix cannot do for us, registering the group
//! with tokio's reactor, lives in [`sys`].

pub mod sys;

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;
use vigil_policy::Action;

use nix::errno::Errno;
use nix::fcntl::AT_FDCWD;
use nix::sys::fanotify::{
    EventFFlags, Fanotify, FanotifyResponse, InitFlags, MarkFlags, MaskFlags, Response,
};

/// The events vigil asks for on every watched filesystem or mount: execs
/// always, opens unless `scan_on_open = "none"`, and the notification that a
/// file written to was closed (`FAN_CLOSE_WRITE`) for `scan.scan_on_write`.
pub fn watch_mask(scan_on_open: bool, scan_on_write: bool) -> MaskFlags {
    let mut mask = MaskFlags::FAN_OPEN_EXEC_PERM;
    if scan_on_open {
        mask |= MaskFlags::FAN_OPEN_PERM;
    }
    if scan_on_write {
        mask |= MaskFlags::FAN_CLOSE_WRITE;
    }
    mask
}

/// How a mark attaches to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkKind {
    /// `FAN_MARK_FILESYSTEM`: the whole superblock, seen from every mount namespace.
    Filesystem,
    /// `FAN_MARK_MOUNT`: one mount; misses other mount namespaces.
    Mount,
}

impl MarkKind {
    fn flag(self) -> MarkFlags {
        match self {
            MarkKind::Filesystem => MarkFlags::FAN_MARK_FILESYSTEM,
            MarkKind::Mount => MarkFlags::FAN_MARK_MOUNT,
        }
    }

    /// Stable lower-case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            MarkKind::Filesystem => "filesystem",
            MarkKind::Mount => "mount",
        }
    }
}

/// Which flavour of inode ignore mark the kernel accepted, learnt at the first try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreStyle {
    /// `FAN_MARK_IGNORE | FAN_MARK_EVICTABLE` (Linux ≥ 6.0).
    Ignore,
    /// `FAN_MARK_IGNORED_MASK | FAN_MARK_EVICTABLE` (Linux 5.19).
    IgnoredMask,
}

impl IgnoreStyle {
    fn base(self) -> MarkFlags {
        match self {
            IgnoreStyle::Ignore => MarkFlags::FAN_MARK_IGNORE,
            IgnoreStyle::IgnoredMask => MarkFlags::FAN_MARK_IGNORED_MASK,
        }
    }
}

/// A fanotify permission group (`FAN_CLASS_CONTENT`), shared by the reader (reads)
/// and the workers (answers, ignore marks). Cloning shares the same fd.
#[derive(Debug, Clone)]
pub struct Group {
    fan: Arc<Fanotify>,
}

impl Group {
    /// Creates the group: `FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK`, event fds
    /// opened `O_RDONLY | O_LARGEFILE | O_CLOEXEC`, plus `O_NOATIME` when the kernel
    /// accepts it (scanning must not change what `ls -lu` shows).
    ///
    /// # Errors
    /// The `fanotify_init` errno: `EPERM` without `CAP_SYS_ADMIN`, `EINVAL` on a kernel
    /// without permission events.
    pub fn new() -> Result<Group, Errno> {
        let flags = InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK;
        let base = EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC;
        let fan = match Fanotify::init(flags, base | EventFFlags::O_NOATIME) {
            Ok(fan) => fan,
            Err(Errno::EINVAL) | Err(Errno::EPERM) => Fanotify::init(flags, base)?,
            Err(e) => return Err(e),
        };
        Ok(Group { fan: Arc::new(fan) })
    }

    /// The shared handle, for the reader's `AsyncFd`.
    pub fn handle(&self) -> Arc<Fanotify> {
        Arc::clone(&self.fan)
    }

    /// Adds `mask` to the mark of `kind` on the object at `path`.
    ///
    /// # Errors
    /// The `fanotify_mark` errno (`ENOENT`, `EXDEV` for a filesystem without an fsid …).
    pub fn mark(&self, kind: MarkKind, path: &Path, mask: MaskFlags) -> Result<(), Errno> {
        self.fan.mark(
            MarkFlags::FAN_MARK_ADD | kind.flag(),
            mask,
            AT_FDCWD,
            Some(path),
        )
    }

    /// Adds `mask` to the mark of `kind` on the directory `dir` refers to (an
    /// `O_PATH` descriptor the caller has already checked, so no path is looked
    /// up again between the check and the mark: the kernel resolves `.`
    /// relative to it, as it refuses `O_PATH` descriptors themselves as targets).
    ///
    /// # Errors
    /// The `fanotify_mark` errno (`ENOTDIR` when `dir` is not a directory).
    pub fn mark_dir_fd(
        &self,
        kind: MarkKind,
        dir: BorrowedFd<'_>,
        mask: MaskFlags,
    ) -> Result<(), Errno> {
        self.fan.mark(
            MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_ONLYDIR | kind.flag(),
            mask,
            dir,
            Some("."),
        )
    }

    /// Removes `mask` from the mark of `kind` on the object at `path`.
    ///
    /// # Errors
    /// The `fanotify_mark` errno; `ENOENT` when there was no such mark.
    pub fn unmark(&self, kind: MarkKind, path: &Path, mask: MaskFlags) -> Result<(), Errno> {
        self.fan.mark(
            MarkFlags::FAN_MARK_REMOVE | kind.flag(),
            mask,
            AT_FDCWD,
            Some(path),
        )
    }

    /// Removes every mark of `kind` (all watched filesystems or mounts).
    ///
    /// # Errors
    /// The `fanotify_mark` errno.
    pub fn flush(&self, kind: MarkKind) -> Result<(), Errno> {
        self.fan.mark(
            MarkFlags::FAN_MARK_FLUSH | kind.flag(),
            MaskFlags::empty(),
            AT_FDCWD,
            None::<&Path>,
        )
    }

    /// Removes every inode mark: all the ignore marks. Called when a new content
    /// generation makes past "clean" answers stale.
    ///
    /// # Errors
    /// The `fanotify_mark` errno.
    pub fn flush_ignore_marks(&self) -> Result<(), Errno> {
        self.fan.mark(
            MarkFlags::FAN_MARK_FLUSH,
            MaskFlags::empty(),
            AT_FDCWD,
            None::<&Path>,
        )
    }

    /// Tells the kernel to stop asking about `file` for the events in `mask` until the
    /// file is modified (the kernel clears the ignore mask on write or truncate) or its
    /// inode is evicted.
    ///
    /// # Errors
    /// `EINVAL` when the kernel lacks this `style`; `ENOSPC` at the mark limit.
    pub fn ignore(
        &self,
        file: BorrowedFd<'_>,
        mask: MaskFlags,
        style: IgnoreStyle,
    ) -> Result<(), Errno> {
        let flags = MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_EVICTABLE | style.base();
        self.fan.mark(flags, mask, file, None::<&Path>)
    }

    /// Takes back an ignore mark added with [`Group::ignore`].
    ///
    /// # Errors
    /// The `fanotify_mark` errno; `ENOENT` when the mark is already gone.
    pub fn unignore(
        &self,
        file: BorrowedFd<'_>,
        mask: MaskFlags,
        style: IgnoreStyle,
    ) -> Result<(), Errno> {
        self.fan.mark(
            MarkFlags::FAN_MARK_REMOVE | style.base(),
            mask,
            file,
            None::<&Path>,
        )
    }

    /// Answers one permission event.
    ///
    /// # Errors
    /// `ENOENT` when the event was already answered or its opener is gone.
    /// [`Action::Quarantine`] is a deny here; the move happens after the answer.
    pub fn respond(&self, event_fd: BorrowedFd<'_>, action: Action) -> Result<(), Errno> {
        let response = if action.allows() {
            Response::FAN_ALLOW
        } else {
            Response::FAN_DENY
        };
        self.fan
            .write_response(FanotifyResponse::new(event_fd, response))
    }
}

/// `FAN_REPORT_MNT` (Linux 6.15): a group reporting mount attach/detach events.
/// Not in libc 0.2.191 or nix 0.32; values from the kernel's uapi `fanotify.h`.
const FAN_REPORT_MNT: u32 = 0x0000_4000;
/// `FAN_MARK_MNTNS`: the mark's object is a mount namespace (an nsfs file).
const FAN_MARK_MNTNS: u32 = 0x0000_0110;
/// `FAN_MNT_ATTACH` | `FAN_MNT_DETACH`.
const FAN_MNT_EVENTS: u64 = FAN_MNT_ATTACH | 0x0200_0000;

/// A notification group that hears mounts attached to and detached from the
/// mount namespaces marked in it (`FAN_REPORT_MNT`, Linux ≥ 6.15). Separate from
/// [`Group`]: a permission group cannot report mount events. Its events carry no
/// fd, so reading them only needs the byte count.
#[derive(Debug)]
pub struct MountGroup {
    fan: Fanotify,
}

impl MountGroup {
    /// Creates the group (`FAN_CLASS_NOTIF | FAN_REPORT_MNT`, nonblocking).
    ///
    /// # Errors
    /// `EINVAL` on a kernel without mount events (before 6.15): use the
    /// mountinfo poll instead.
    pub fn new() -> Result<MountGroup, Errno> {
        let flags = InitFlags::FAN_CLASS_NOTIF
            | InitFlags::FAN_CLOEXEC
            | InitFlags::FAN_NONBLOCK
            | InitFlags::from_bits_retain(FAN_REPORT_MNT);
        let fan = Fanotify::init(flags, EventFFlags::O_RDONLY | EventFFlags::O_CLOEXEC)?;
        Ok(MountGroup { fan })
    }

    /// Asks for the attach and detach events of the mount namespace `ns_file`
    /// (`/proc/<pid>/ns/mnt`). The mark lives as long as the namespace.
    ///
    /// # Errors
    /// The `fanotify_mark` errno (`EINVAL` when the kernel lacks `FAN_MARK_MNTNS`).
    pub fn watch_namespace(&self, ns_file: &Path) -> Result<(), Errno> {
        self.fan.mark(
            MarkFlags::FAN_MARK_ADD | MarkFlags::from_bits_retain(FAN_MARK_MNTNS),
            MaskFlags::from_bits_retain(FAN_MNT_EVENTS),
            AT_FDCWD,
            Some(ns_file),
        )
    }

    /// Reads every queued event and returns how many were attaches. Only the
    /// metadata's length and mask are read (the mount id record is not: the
    /// watcher rereads the mount tables, which say more than an id would).
    ///
    /// # Errors
    /// A read error other than `EAGAIN`.
    pub fn drain(&self) -> Result<usize, Errno> {
        let mut buf = [0u8; 4096];
        let mut attaches = 0;
        loop {
            match nix::unistd::read(self.fan.as_fd(), &mut buf) {
                Ok(0) | Err(Errno::EAGAIN) => return Ok(attaches),
                Ok(n) => attaches += count_attaches(buf.get(..n).unwrap_or_default()),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// `FAN_MNT_ATTACH`.
const FAN_MNT_ATTACH: u64 = 0x0100_0000;

/// The attach events in a buffer of `fanotify_event_metadata` records
/// (`event_len: u32` at 0, `mask: u64` at 8; each record is `event_len` long).
fn count_attaches(buf: &[u8]) -> usize {
    let mut at = 0;
    let mut n = 0;
    while let (Some(len), Some(mask)) = (buf.get(at..at + 4), buf.get(at + 8..at + 16)) {
        let len = u32::from_ne_bytes(len.try_into().unwrap_or_default()) as usize;
        let mask = u64::from_ne_bytes(mask.try_into().unwrap_or_default());
        if mask & FAN_MNT_ATTACH != 0 {
            n += 1;
        }
        if len < 24 {
            break;
        }
        at += len;
    }
    n
}

impl AsFd for MountGroup {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fan.as_fd()
    }
}

impl AsFd for Group {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fan.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(mask: u64) -> Vec<u8> {
        // metadata (24 bytes) + a mount record (16 bytes)
        let mut r = Vec::new();
        r.extend_from_slice(&40u32.to_ne_bytes());
        r.extend_from_slice(&[3, 0]);
        r.extend_from_slice(&24u16.to_ne_bytes());
        r.extend_from_slice(&mask.to_ne_bytes());
        r.extend_from_slice(&(-1i32).to_ne_bytes());
        r.extend_from_slice(&0i32.to_ne_bytes());
        r.extend_from_slice(&[0u8; 16]);
        r
    }

    #[test]
    fn attaches_are_counted_by_record() {
        let mut buf = record(FAN_MNT_ATTACH);
        buf.extend(record(0x0200_0000));
        buf.extend(record(FAN_MNT_ATTACH));
        assert_eq!(count_attaches(&buf), 2);
        assert_eq!(count_attaches(&buf[..50]), 1);
        assert_eq!(count_attaches(&[]), 0);
        // A zero length cannot loop forever.
        let mut bad = record(FAN_MNT_ATTACH);
        bad[..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(count_attaches(&bad), 1);
    }
}
