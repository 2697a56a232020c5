//! Which local filesystems exist: the default watch list, read from
//! `/proc/self/mountinfo`, and the parsed mount table of any mount namespace
//! (`/proc/<pid>/mountinfo`) for the mount watcher.
//!
//! Owns the list of filesystem types worth watching by default: disk filesystems
//! and memory filesystems (tmpfs is where droppers like to run from). Network and
//! FUSE filesystems are left out on purpose: reading a file through them can wait
//! on a remote peer or on a user-space server that may itself be waiting for us.

use std::path::PathBuf;

/// Filesystem types watched when the configuration does not list filesystems.
pub const LOCAL_FSTYPES: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "jfs", "reiserfs", "nilfs2", "bcachefs", "zfs",
    "tmpfs", "ramfs", "vfat", "exfat", "ntfs3",
];

/// One line of a mountinfo table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount ID (first field; unique among the mounts alive, reused after).
    pub id: u32,
    /// The device of the filesystem (`st_dev` of every file on it), from the
    /// `major:minor` field.
    pub dev: u64,
    /// Where it is mounted, in that namespace, unescaped.
    pub mount_point: PathBuf,
    /// The filesystem type (`tmpfs`, `ext4`, `fuse.sshfs` …).
    pub fstype: String,
}

impl Mount {
    /// True when the type is one vigil watches by default ([`LOCAL_FSTYPES`]).
    pub fn is_local(&self) -> bool {
        LOCAL_FSTYPES.contains(&self.fstype.as_str())
    }
}

/// Every well-formed line of a mountinfo text, in order (malformed lines are
/// skipped: the kernel never writes them, and a partial table is still useful).
pub fn parse(mountinfo: &str) -> Vec<Mount> {
    mountinfo.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let id = fields.first()?.parse().ok()?;
    let (major, minor) = fields.get(2)?.split_once(':')?;
    let dev = nix::sys::stat::makedev(major.parse().ok()?, minor.parse().ok()?);
    let mount_point = PathBuf::from(unescape(fields.get(4)?));
    // Optional fields end at a lone "-"; the filesystem type follows it.
    let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    let fstype = (*fields.get(sep + 1)?).to_owned();
    Some(Mount {
        id,
        dev,
        mount_point,
        fstype,
    })
}

/// The mount points of local filesystems in a mountinfo text, in order. Mount
/// points are unescaped (`\040` is a space).
pub fn local_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    parse(mountinfo)
        .into_iter()
        .filter(Mount::is_local)
        .map(|m| m.mount_point)
        .collect()
}

/// Reads this process's mountinfo; empty (with a warning) when it cannot.
pub fn local_filesystems() -> Vec<PathBuf> {
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => local_mount_points(&text),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read /proc/self/mountinfo; watching the built-in list only");
            Vec::new()
        }
    }
}

/// Undoes the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline,
/// `\134` backslash) in a mountinfo path.
pub fn unescape(s: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') << 6 | (d[1] - b'0') << 3 | (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let text = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:5 / /proc rw,nosuid shared:12 - proc proc rw
24 22 0:22 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=1m
25 24 0:40 / /run/user/1000 rw,nosuid,nodev,relatime shared:300 master:2 - tmpfs tmpfs rw
26 22 0:41 / /mnt/my\\040disk rw - vfat /dev/sdb1 rw
27 22 0:42 / /net/share rw - nfs4 srv:/x rw
28 22 0:43 / /home/u/.cache/doc rw - fuse.portal portal rw
29 22 0:44 / /odd\\134name\\012 rw - btrfs /dev/sdc rw
garbage line
";
        let got = local_mount_points(text);
        let want: Vec<PathBuf> = [
            "/",
            "/run",
            "/run/user/1000",
            "/mnt/my disk",
            "/odd\\name\n",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn lines_give_device_point_and_type() {
        let text = "25 24 0:40 / /run/user/1000 rw shared:300 master:2 - tmpfs tmpfs rw\n\
                    26 22 259:3 /sub /mnt/my\\040disk rw - vfat /dev/sdb1 rw\n\
                    27 22 x:y / /bad rw - ext4 /dev/sdc rw\n";
        let got = parse(text);
        assert_eq!(
            got,
            vec![
                Mount {
                    id: 25,
                    dev: nix::sys::stat::makedev(0, 40),
                    mount_point: "/run/user/1000".into(),
                    fstype: "tmpfs".into(),
                },
                Mount {
                    id: 26,
                    dev: nix::sys::stat::makedev(259, 3),
                    mount_point: "/mnt/my disk".into(),
                    fstype: "vfat".into(),
                },
            ]
        );
        assert!(got.iter().all(Mount::is_local));
    }

    #[test]
    fn devices_match_stat() {
        use std::os::unix::fs::MetadataExt;
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = parse(&text)
            .into_iter()
            .rfind(|m| m.mount_point == std::path::Path::new("/"))
            .unwrap();
        assert_eq!(root.dev, std::fs::metadata("/").unwrap().dev());
    }

    #[test]
    fn this_machine_has_a_local_root() {
        assert!(!local_filesystems().is_empty());
    }
}
