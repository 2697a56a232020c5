//! The key of a file version in the persistent verdict cache, and where it comes
//! from.
//!
//! Owns which filesystems can be keyed across reboots, how one file version is
//! named there ([`FileVersion`]: filesystem UUID, inode, size, mtime, ctime,
//! birth time) and its fixed-size encoding ([`StoreKey`]). Must not own: the
//! store ([`super::persistent`]) or the in-memory key ([`super::FileKey`], which
//! uses the device number: fine within one boot, not across boots).
//!
//! Why the superblock UUID (`FS_IOC_GETFSUUID`, see
//! [`crate::fanotify::sys::filesystem_uuid`]) and not `st_dev`, `statfs`'s
//! `f_fsid` or `/dev/disk/by-uuid`: `st_dev` is assigned at mount time and
//! changes when disks enumerate in another order or a loop or dm device gets
//! another minor; XFS derives `f_fsid` from the device number too (ext4 and
//! btrfs derive it from the UUID); `/dev/disk/by-uuid` needs udev and maps block
//! devices, not btrfs subvolumes. The UUID is what `blkid` shows and what
//! `/etc/fstab` mounts by.
//!
//! Only filesystems whose UUID and inode numbers are stable across mounts are
//! keyed ([`PERSISTENT_TYPES`]: ext2/3/4, XFS, btrfs, f2fs). tmpfs has a UUID,
//! but a random one per mount, and its files are gone at reboot anyway;
//! overlayfs, FUSE and network filesystems do not promise stable inode numbers.
//! A filesystem with an all-zero UUID (some VM images are made that way) is not
//! keyed either: two such filesystems would share keys. Files there are still
//! cached in memory, just not across restarts (`persistent_unkeyed`).
//!
//! btrfs: every subvolume of a filesystem has the same UUID and inode numbers
//! repeat between subvolumes. A snapshot shares keys with its source, which is
//! harmless: at the moment of the snapshot both hold the same bytes, and any
//! later change to either copy changes its ctime. Two unrelated subvolumes'
//! files would need equal inode, size and nanosecond mtime, ctime and birth
//! time to collide.

use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::MetadataExt as _;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::statfs::{
    BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, F2FS_SUPER_MAGIC, FsType, XFS_SUPER_MAGIC, fstatfs,
};

use crate::fanotify::sys::filesystem_uuid;

/// Filesystem types whose UUID and inode numbers survive a remount and a reboot
/// (`EXT4_SUPER_MAGIC` is also ext2's and ext3's).
pub const PERSISTENT_TYPES: [FsType; 4] = [
    EXT4_SUPER_MAGIC,
    XFS_SUPER_MAGIC,
    BTRFS_SUPER_MAGIC,
    F2FS_SUPER_MAGIC,
];

/// Bytes of an encoded [`StoreKey`]: format, UUID, inode, size, three times of
/// 12 bytes and the birth-time flag.
pub const KEY_LEN: usize = 1 + 16 + 8 + 8 + 3 * 12 + 1;

/// First byte of every key: a new layout gets a new number, so old keys simply
/// never match.
const KEY_FORMAT: u8 = 1;

/// A time as seconds and nanoseconds since the epoch (negative before it).
pub type Stamp = (i64, u32);

/// One version of one file, named so that the name survives a reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileVersion {
    /// The filesystem's UUID.
    pub fs: [u8; 16],
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Last content change.
    pub mtime: Stamp,
    /// Last content or metadata change (write, chmod, chown, rename, link):
    /// the kernel sets it to the current time and no system call sets it to
    /// anything else.
    pub ctime: Stamp,
    /// Creation, where the filesystem records it (`statx` `STATX_BTIME`): a file
    /// deleted and recreated with the same inode number differs here.
    pub btime: Option<Stamp>,
}

/// Why a file gets no persistent key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unkeyed {
    /// Its filesystem is not one of [`PERSISTENT_TYPES`] (tmpfs, overlayfs, NFS, …).
    Volatile,
    /// The filesystem reports no UUID, or an all-zero one.
    NoUuid,
    /// `statx` or `fstatfs` of the descriptor failed.
    Stat,
}

impl FileVersion {
    /// The version of the file behind `fd`, read now (one `fstatfs`, one
    /// ioctl, one `statx` on a duplicate of `fd`; about 2 µs here).
    ///
    /// # Errors
    /// [`Unkeyed`] when the file cannot be keyed across reboots.
    pub fn of(fd: BorrowedFd<'_>) -> Result<FileVersion, Unkeyed> {
        let fs_type = fstatfs(fd).map_err(|_| Unkeyed::Stat)?.filesystem_type();
        if !PERSISTENT_TYPES.contains(&fs_type) {
            return Err(Unkeyed::Volatile);
        }
        let fs = filesystem_uuid(fd)
            .filter(|u| u.iter().any(|&b| b != 0))
            .ok_or(Unkeyed::NoUuid)?;
        // std's `metadata` is one `statx` asking for the birth time too; it needs
        // a `File`, so it gets a duplicate of the event fd (closed on return).
        let file = File::from(fd.try_clone_to_owned().map_err(|_| Unkeyed::Stat)?);
        let meta = file.metadata().map_err(|_| Unkeyed::Stat)?;
        Ok(FileVersion {
            fs,
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), nanos(meta.mtime_nsec())),
            ctime: (meta.ctime(), nanos(meta.ctime_nsec())),
            btime: meta.created().ok().and_then(|t| stamp(t).ok()),
        })
    }

    /// The fixed-size, big-endian encoding (so keys of one filesystem sort
    /// together, by inode).
    pub fn key(&self) -> StoreKey {
        let mut k = [0u8; KEY_LEN];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            k[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&[KEY_FORMAT]);
        put(&self.fs);
        put(&self.ino.to_be_bytes());
        put(&self.size.to_be_bytes());
        for (s, ns) in [self.mtime, self.ctime, self.btime.unwrap_or((0, 0))] {
            put(&s.to_be_bytes());
            put(&ns.to_be_bytes());
        }
        put(&[u8::from(self.btime.is_some())]);
        StoreKey(k)
    }
}

/// An encoded [`FileVersion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoreKey([u8; KEY_LEN]);

impl StoreKey {
    /// The bytes stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key read back from the store; `None` for bytes of another length.
    pub fn from_bytes(bytes: &[u8]) -> Option<StoreKey> {
        bytes.try_into().ok().map(StoreKey)
    }
}

/// Nanoseconds as stored (the kernel keeps them below 10⁹).
fn nanos(ns: i64) -> u32 {
    u32::try_from(ns).unwrap_or(0)
}

/// A `SystemTime` as seconds and nanoseconds since the epoch.
fn stamp(t: SystemTime) -> io::Result<Stamp> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Ok((
            i64::try_from(d.as_secs()).map_err(|_| io::ErrorKind::InvalidData)?,
            d.subsec_nanos(),
        )),
        Err(before) => {
            let d = before.duration();
            let secs = i64::try_from(d.as_secs()).map_err(|_| io::ErrorKind::InvalidData)?;
            // -1.25 s is (-2 s, 750 000 000 ns), as the kernel writes it.
            Ok(match d.subsec_nanos() {
                0 => (-secs, 0),
                ns => (-secs - 1, 1_000_000_000 - ns),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn version() -> FileVersion {
        FileVersion {
            fs: [7; 16],
            ino: 42,
            size: 1000,
            mtime: (1_700_000_000, 5),
            ctime: (1_700_000_001, 6),
            btime: Some((1_600_000_000, 7)),
        }
    }

    #[test]
    fn every_field_is_part_of_the_key() {
        let base = version();
        let edits: [fn(&mut FileVersion); 9] = [
            |v| v.fs[15] ^= 1,
            |v| v.ino += 1,
            |v| v.size += 1,
            |v| v.mtime.1 += 1,
            |v| v.ctime.0 += 1,
            |v| v.ctime.1 += 1,
            |v| v.btime = Some((1_600_000_000, 8)),
            |v| v.btime = None,
            |v| v.mtime.0 = -1,
        ];
        let mut seen = vec![base.key()];
        for edit in edits {
            let mut v = base;
            edit(&mut v);
            let key = v.key();
            assert!(!seen.contains(&key), "{v:?} collides");
            seen.push(key);
        }
        assert_eq!(base.key(), version().key(), "deterministic");
    }

    #[test]
    fn no_birth_time_differs_from_a_zero_birth_time() {
        let mut zero = version();
        zero.btime = Some((0, 0));
        let mut none = version();
        none.btime = None;
        assert_ne!(zero.key(), none.key());
    }

    #[test]
    fn the_layout_is_fixed_and_big_endian() {
        let key = version().key();
        let bytes = key.as_bytes();
        assert_eq!(bytes.len(), KEY_LEN);
        assert_eq!(bytes[0], KEY_FORMAT);
        assert_eq!(&bytes[1..17], &[7; 16]);
        assert_eq!(&bytes[17..25], &42u64.to_be_bytes());
        assert_eq!(bytes[KEY_LEN - 1], 1);
        assert_eq!(StoreKey::from_bytes(bytes), Some(key));
        assert_eq!(StoreKey::from_bytes(&bytes[1..]), None);
    }

    #[test]
    fn times_before_the_epoch_are_stored_as_the_kernel_writes_them() {
        let t = UNIX_EPOCH - Duration::from_millis(1250);
        assert_eq!(stamp(t).ok(), Some((-2, 750_000_000)));
        assert_eq!(
            stamp(UNIX_EPOCH - Duration::from_secs(3)).ok(),
            Some((-3, 0))
        );
        assert_eq!(stamp(UNIX_EPOCH + Duration::new(5, 9)).ok(), Some((5, 9)));
    }

    #[test]
    fn a_tmpfs_file_is_not_keyed() {
        // /dev/shm is a tmpfs here and on CI; skip where it is not.
        let Ok(file) = tempfile_in("/dev/shm") else {
            return;
        };
        use std::os::fd::AsFd as _;
        let on_tmpfs = fstatfs(file.as_fd())
            .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
            .unwrap_or(false);
        if on_tmpfs {
            assert_eq!(FileVersion::of(file.as_fd()), Err(Unkeyed::Volatile));
        }
    }

    fn tempfile_in(dir: &str) -> io::Result<File> {
        let path =
            std::path::Path::new(dir).join(format!("vigil-store-key-test-{}", std::process::id()));
        let file = File::create(&path)?;
        std::fs::remove_file(&path)?;
        Ok(file)
    }
}
