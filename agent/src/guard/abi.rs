//! The byte layouts shared with `bpf/guard.bpf.c`: the config value, the map
//! keys, the ring-buffer event, and the filesystem classes by magic number.
//!
//! Owns encoding and decoding them without `unsafe` (native-endian byte
//! arrays, offsets written once here). Change this file and the C structs
//! together.

use std::ffi::CStr;

use vigil_policy::GuardMode;

/// `guard_config` value size.
pub const CONFIG_SIZE: usize = 16;
/// `guard_event` size.
pub const EVENT_SIZE: usize = 192;

/// `enum cover`: vigil marked it from its configuration.
pub const COVER_MARKED: u8 = 1;
/// `enum cover`: mounted when vigil started and left unmarked on purpose.
pub const COVER_KNOWN: u8 = 2;
/// `enum cover`: marked after the guard reported it; counts only while the
/// superblock carries an exec mark (its device number may be reused).
pub const COVER_RUNTIME: u8 = 3;

/// `enum fs_class`: a type vigil watches (mountinfo's `LOCAL_FSTYPES`).
pub const CLASS_WATCHED: u8 = 1;
/// `enum fs_class`: network and FUSE filesystems, left out of marks on purpose.
pub const CLASS_NETWORK: u8 = 2;

/// Counter slots of the `counters` map, by their stable names.
pub const COUNTERS: [&str; 4] = [
    "guard_uncovered",
    "guard_denied",
    "guard_memfd_program_allowed",
    "guard_events_lost",
];

/// Filesystem magic numbers (`statfs.f_type`) of the types in
/// `mountinfo::LOCAL_FSTYPES`, and of the network and FUSE types.
pub const MAGICS: &[(&str, u64, u8)] = &[
    ("ext2/3/4", 0xEF53, CLASS_WATCHED),
    ("xfs", 0x5846_5342, CLASS_WATCHED),
    ("btrfs", 0x9123_683E, CLASS_WATCHED),
    ("f2fs", 0xF2F5_2010, CLASS_WATCHED),
    ("jfs", 0x3153_464A, CLASS_WATCHED),
    ("reiserfs", 0x5265_4973, CLASS_WATCHED),
    ("nilfs2", 0x3434, CLASS_WATCHED),
    ("bcachefs", 0xCA45_1A4E, CLASS_WATCHED),
    ("zfs", 0x2FC1_2FC1, CLASS_WATCHED),
    ("tmpfs", 0x0102_1994, CLASS_WATCHED),
    ("ramfs", 0x8584_58F6, CLASS_WATCHED),
    ("vfat", 0x4D44, CLASS_WATCHED),
    ("exfat", 0x2011_BAB0, CLASS_WATCHED),
    ("ntfs3", 0x7366_746E, CLASS_WATCHED),
    ("nfs", 0x6969, CLASS_NETWORK),
    ("cifs", 0xFF53_4D42, CLASS_NETWORK),
    ("smb2", 0xFE53_4D42, CLASS_NETWORK),
    ("ceph", 0x00C3_6400, CLASS_NETWORK),
    ("9p", 0x0102_1997, CLASS_NETWORK),
    ("afs", 0x5346_414F, CLASS_NETWORK),
    ("fuse", 0x6573_5546, CLASS_NETWORK),
];

/// The kernel's `dev_t` (`MKDEV`: major << 20 | minor), as `sb->s_dev` holds it,
/// from a user-space `st_dev`.
pub fn kernel_dev(st_dev: u64) -> u32 {
    let major = nix::libc::major(st_dev);
    let minor = nix::libc::minor(st_dev);
    (major << 20) | (minor & 0xF_FFFF)
}

/// The user-space `st_dev` of a kernel `dev_t`.
pub fn user_dev(kdev: u32) -> u64 {
    nix::libc::makedev(kdev >> 20, kdev & 0xF_FFFF)
}

fn mode_byte(mode: GuardMode) -> u8 {
    match mode {
        GuardMode::Off => 0,
        GuardMode::Audit => 1,
        GuardMode::Deny => 2,
    }
}

/// The `guard_config` value.
pub fn config_value(
    cgroup: Option<(u64, u32)>,
    uncovered: GuardMode,
    network: GuardMode,
) -> [u8; CONFIG_SIZE] {
    let (id, level) = cgroup.unwrap_or((0, 0));
    let mut out = [0u8; CONFIG_SIZE];
    out[0..8].copy_from_slice(&id.to_ne_bytes());
    out[8..12].copy_from_slice(&level.to_ne_bytes());
    out[12] = mode_byte(uncovered);
    out[13] = mode_byte(network);
    out
}

/// The `allowed_exe` key of an executable (kernel dev, inode).
pub fn exe_key(kdev: u32, ino: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&kdev.to_ne_bytes());
    out[8..16].copy_from_slice(&ino.to_ne_bytes());
    out
}

/// Which program the guard runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `lsm/bprm_check_security`: a refused exec fails with `EPERM`.
    Lsm,
    /// `tp_btf/sched_prepare_exec` (the kernel will not run LSM programs): a
    /// refused exec is killed with `SIGKILL` before the new program runs.
    Tracepoint,
}

impl Hook {
    /// The stable name (`vigil status`, events).
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Lsm => "lsm",
            Hook::Tracepoint => "tracepoint",
        }
    }
}

/// Why an exec was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A filesystem of a watched type that no mark covers.
    Uncovered,
    /// An internal superblock (memfd, anonymous shared memory, hugetlbfs).
    Internal,
    /// A network or FUSE filesystem (`guard.network`).
    Network,
}

impl Reason {
    /// The stable name in events (`vigil.guard.reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Uncovered => "uncovered-filesystem",
            Reason::Internal => "memory-filesystem",
            Reason::Network => "network-filesystem",
        }
    }
}

/// One exec the guard reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The file's inode.
    pub ino: u64,
    /// The filesystem's magic number.
    pub magic: u64,
    /// Inode of the program that called execve (0 for a kernel thread).
    pub exe_ino: u64,
    /// cgroup v2 id of the calling task.
    pub cgroup_id: u64,
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Real uid.
    pub uid: u32,
    /// The file's superblock (kernel dev_t).
    pub dev: u32,
    /// The calling program's superblock (kernel dev_t).
    pub exe_dev: u32,
    /// Refused (else allowed and reported).
    pub denied: bool,
    /// Which program reported it.
    pub hook: Hook,
    /// Why it was reported.
    pub reason: Reason,
    /// The filesystem type name (`tmpfs`, `hugetlbfs`, …).
    pub fstype: String,
    /// The superblock's id (`sb->s_id`: a device name or the type).
    pub s_id: String,
    /// The file's name (a memfd's is `memfd:NAME`).
    pub name: String,
    /// The calling task's command name.
    pub comm: String,
    /// The calling process's parent (tgid).
    pub ppid: u32,
    /// The calling process's mount namespace (inode of `/proc/PID/ns/mnt`).
    pub mnt_ns: u32,
}

fn text(bytes: &[u8]) -> String {
    CStr::from_bytes_until_nul(bytes)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_ne_bytes(a)
}

impl Event {
    /// Decodes one ring-buffer record; `None` when it is too short or names an
    /// unknown reason (a program/agent mismatch, which cannot happen with the
    /// embedded object).
    pub fn parse(b: &[u8]) -> Option<Event> {
        if b.len() < EVENT_SIZE {
            return None;
        }
        let reason = match b[53] {
            1 => Reason::Uncovered,
            2 => Reason::Internal,
            3 => Reason::Network,
            _ => return None,
        };
        Some(Event {
            ino: u64_at(b, 0),
            magic: u64_at(b, 8),
            exe_ino: u64_at(b, 16),
            cgroup_id: u64_at(b, 24),
            pid: u32_at(b, 32),
            tid: u32_at(b, 36),
            uid: u32_at(b, 40),
            dev: u32_at(b, 44),
            exe_dev: u32_at(b, 48),
            denied: b[52] != 0,
            reason,
            hook: if b[54] == 2 {
                Hook::Tracepoint
            } else {
                Hook::Lsm
            },
            fstype: text(&b[56..72]),
            s_id: text(&b[72..104]),
            name: text(&b[104..168]),
            comm: text(&b[168..184]),
            ppid: u32_at(b, 184),
            mnt_ns: u32_at(b, 188),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_round_trips() {
        for (major, minor) in [(0u32, 42u32), (8, 1), (259, 3), (0, 300)] {
            let st = nix::libc::makedev(major, minor);
            let k = kernel_dev(st);
            assert_eq!(k, (major << 20) | minor);
            assert_eq!(user_dev(k), st);
        }
    }

    #[test]
    fn event_decodes_every_field() {
        let mut b = vec![0u8; EVENT_SIZE];
        b[0..8].copy_from_slice(&7u64.to_ne_bytes());
        b[8..16].copy_from_slice(&0x0102_1994u64.to_ne_bytes());
        b[32..36].copy_from_slice(&1234u32.to_ne_bytes());
        b[44..48].copy_from_slice(&55u32.to_ne_bytes());
        b[52] = 1;
        b[53] = 2;
        b[54] = 2;
        b[56..61].copy_from_slice(b"tmpfs");
        b[104..113].copy_from_slice(b"memfd:abc");
        let e = Event::parse(&b).unwrap();
        assert_eq!(e.ino, 7);
        assert_eq!(e.pid, 1234);
        assert_eq!(e.dev, 55);
        assert!(e.denied);
        assert_eq!(e.reason, Reason::Internal);
        assert_eq!(e.hook, Hook::Tracepoint);
        assert_eq!(e.fstype, "tmpfs");
        assert_eq!(e.name, "memfd:abc");
        assert!(Event::parse(&b[..100]).is_none());
        b[53] = 9;
        assert!(Event::parse(&b).is_none());
    }

    #[test]
    fn config_layout() {
        let v = config_value(Some((99, 3)), GuardMode::Deny, GuardMode::Audit);
        assert_eq!(u64_at(&v, 0), 99);
        assert_eq!(u32_at(&v, 8), 3);
        assert_eq!((v[12], v[13]), (2, 1));
    }
}
