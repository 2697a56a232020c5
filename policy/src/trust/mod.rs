//! The package trust store: every file the package managers installed, with its
//! SHA-256; the readers of each package manager's database are [`dpkg`] and
//! [`rpm`].
//!
//! Owns: [`TrustStore`] (an in-memory map from absolute path to [`TrustEntry`],
//! O(1) lookup that never allocates), its compact on-disk format
//! ([`TrustStore::to_bytes`] / [`TrustStore::from_bytes`]). Must not own: the
//! database parsers ([`dpkg`], [`rpm`]), hashing
//! files or walking the package database (the agent's `vigil trust update` does
//! that I/O), or what a trusted file is allowed to skip (the agent's scan).
//!
//! Why the SHA-256 and not size + mtime: the scan computes the file's SHA-256 anyway
//! (for the hash blocklist), so comparing it costs nothing more, and it is the only
//! check a modified file cannot pass: mtime can be set back with `touch -d`, and an
//! inode number is reused after a delete. dpkg only records MD5 sums, so the store
//! is built by reading each file once, checking its MD5 against dpkg's list, and
//! keeping its SHA-256; a file whose MD5 does not match is left out (not trusted).
//!
//! rpm records SHA-256 digests itself for modern packages (MD5 for old ones):
//! the build checks the file against rpm's digest in rpm's algorithm and keeps
//! the SHA-256, as for dpkg.
//!
//! File format (little endian), all of it covered by a SHA-256 trailer:
//! ```text
//! "VGTRUST2"  u32 packages  u32 files
//! per package: u8 manager (0 dpkg, 1 rpm); u16 len, name; u16 len, version;
//!              u64 size, i64 mtime_ns, u64 inode (its Fingerprint: an
//!              unchanged package is not hashed again)
//! per file:    u32 package index; u64 size; [u8; 32] sha256; u16 len, path bytes
//! [u8; 32] SHA-256 of everything above
//! ```
//! A "VGTRUST1" store (before rpm support) is the same without the manager
//! byte; it is still read (every package is dpkg's).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::Error;

pub mod dpkg;
pub mod rpm;

/// The magic bytes (and format version) at the start of a store file.
pub const MAGIC: &[u8; 8] = b"VGTRUST2";
/// The magic of the previous format (no package manager byte), still read.
pub const MAGIC_V1: &[u8; 8] = b"VGTRUST1";
/// Longest path (bytes) a store holds; longer ones are left out at build time.
pub const MAX_PATH_LEN: usize = u16::MAX as usize;

/// One trusted file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustEntry {
    /// SHA-256 of the content the package manager installed.
    pub sha256: [u8; 32],
    /// Its size in bytes.
    pub size: u64,
    /// Index into [`TrustStore::packages`].
    pub package: u32,
}

/// Identity of a package's file list when the store was built: an unchanged
/// list means the package's files need no rehash.
///
/// For dpkg, the `info/<package>.md5sums` file's size, mtime and inode (dpkg
/// replaces lists by rename). For rpm, which has no file per package, the
/// length of the package's query output (its NEVRA, install transaction and
/// every file's mode, flags, state, digest and name) in `size` and the first 8
/// bytes of its SHA-256 in `inode` ([`rpm::RpmPackage::fingerprint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    /// Size of the list in bytes.
    pub size: u64,
    /// Its modification time, in nanoseconds since the epoch (0 for rpm).
    pub mtime_ns: i64,
    /// Its inode number (for rpm: a digest of the listing).
    pub inode: u64,
}

/// The package manager a package record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum PackageManager {
    /// dpkg (`/var/lib/dpkg`).
    #[default]
    Dpkg,
    /// rpm (`/var/lib/rpm`, `/usr/lib/sysimage/rpm`).
    Rpm,
}

impl PackageManager {
    /// Every package manager, in the order a build reads them.
    pub const ALL: [PackageManager; 2] = [PackageManager::Dpkg, PackageManager::Rpm];

    /// `dpkg` or `rpm`.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageManager::Dpkg => "dpkg",
            PackageManager::Rpm => "rpm",
        }
    }

    fn to_byte(self) -> u8 {
        match self {
            PackageManager::Dpkg => 0,
            PackageManager::Rpm => 1,
        }
    }

    fn from_byte(byte: u8) -> Option<PackageManager> {
        match byte {
            0 => Some(PackageManager::Dpkg),
            1 => Some(PackageManager::Rpm),
            _ => None,
        }
    }
}

/// One package the store was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRecord {
    /// Which database it is from.
    pub manager: PackageManager,
    /// Package name: with `:arch` for multi-arch packages as dpkg names them;
    /// rpm's `NAME`.
    pub name: String,
    /// Installed version; for rpm `[EPOCH:]VERSION-RELEASE.ARCH`.
    pub version: String,
    /// Of its file list.
    pub fingerprint: Fingerprint,
}

/// Packages and files of one package manager in a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ManagerCounts {
    /// Package records.
    pub packages: usize,
    /// Trusted files (a path two packages list counts for the one that won).
    pub files: usize,
}

/// The trust store of one generation.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    packages: Vec<PackageRecord>,
    files: HashMap<Box<[u8]>, TrustEntry>,
}

impl TrustStore {
    /// An empty store.
    pub fn new() -> TrustStore {
        TrustStore::default()
    }

    /// Number of trusted files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when no file is trusted.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The packages the store was built from.
    pub fn packages(&self) -> &[PackageRecord] {
        &self.packages
    }

    /// The entry for `path` (absolute, as the kernel reports it). Never allocates.
    pub fn lookup(&self, path: &Path) -> Option<&TrustEntry> {
        self.files.get(path.as_os_str().as_bytes())
    }

    /// True when `path` is in the store with exactly this SHA-256.
    pub fn verify(&self, path: &Path, sha256: &[u8; 32]) -> bool {
        self.lookup(path).is_some_and(|e| &e.sha256 == sha256)
    }

    /// Adds a package; returns its index for [`TrustStore::insert`].
    pub fn add_package(&mut self, record: PackageRecord) -> u32 {
        self.packages.push(record);
        u32::try_from(self.packages.len() - 1).unwrap_or(u32::MAX)
    }

    /// Adds (or replaces) a file. Paths longer than [`MAX_PATH_LEN`] are ignored
    /// and reported as `false`.
    pub fn insert(&mut self, path: &Path, entry: TrustEntry) -> bool {
        let bytes = path.as_os_str().as_bytes();
        if bytes.len() > MAX_PATH_LEN {
            return false;
        }
        self.files.insert(bytes.into(), entry);
        true
    }

    /// Every file with its entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Path, &TrustEntry)> {
        self.files
            .iter()
            .map(|(k, v)| (Path::new(OsStr::from_bytes(k)), v))
    }

    /// Packages and files per package manager ([`PackageManager::ALL`] order).
    pub fn counts_by_manager(&self) -> [(PackageManager, ManagerCounts); 2] {
        let mut out = PackageManager::ALL.map(|m| (m, ManagerCounts::default()));
        let slot = |m: PackageManager| PackageManager::ALL.iter().position(|x| *x == m);
        for p in &self.packages {
            if let Some(i) = slot(p.manager) {
                out[i].1.packages += 1;
            }
        }
        for entry in self.files.values() {
            if let Some(i) = self
                .packages
                .get(entry.package as usize)
                .and_then(|p| slot(p.manager))
            {
                out[i].1.files += 1;
            }
        }
        out
    }

    /// The store's files grouped by package index (for an incremental update).
    pub fn files_by_package(&self) -> Vec<Vec<(PathBuf, TrustEntry)>> {
        let mut out = vec![Vec::new(); self.packages.len()];
        for (path, entry) in self.iter() {
            if let Some(list) = out.get_mut(entry.package as usize) {
                list.push((path.to_path_buf(), *entry));
            }
        }
        out
    }

    /// The on-disk form (files sorted by path, so equal stores give equal bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.files.len() * 96);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.packages.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.files.len() as u32).to_le_bytes());
        for p in &self.packages {
            out.push(p.manager.to_byte());
            put_str(&mut out, p.name.as_bytes());
            put_str(&mut out, p.version.as_bytes());
            out.extend_from_slice(&p.fingerprint.size.to_le_bytes());
            out.extend_from_slice(&p.fingerprint.mtime_ns.to_le_bytes());
            out.extend_from_slice(&p.fingerprint.inode.to_le_bytes());
        }
        let mut files: Vec<_> = self.files.iter().collect();
        files.sort_by(|a, b| a.0.cmp(b.0));
        for (path, e) in files {
            out.extend_from_slice(&e.package.to_le_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            out.extend_from_slice(&e.sha256);
            put_str(&mut out, path);
        }
        let digest: [u8; 32] = Sha256::digest(&out).into();
        out.extend_from_slice(&digest);
        out
    }

    /// Parses the on-disk form; `origin` names the file in errors.
    ///
    /// # Errors
    /// [`Error::TrustStore`] when the magic, the checksum or any record is wrong:
    /// a damaged store is refused whole, never half-trusted.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<TrustStore, Error> {
        let bad = |message: &str| Error::TrustStore {
            path: origin.to_owned(),
            message: message.to_owned(),
        };
        if bytes.len() < MAGIC.len() + 8 + 32 {
            return Err(bad("not a vigil trust store (bad magic)"));
        }
        let v1 = match &bytes[..MAGIC.len()] {
            m if m == MAGIC => false,
            m if m == MAGIC_V1 => true,
            _ => return Err(bad("not a vigil trust store (bad magic)")),
        };
        let (body, trailer) = bytes.split_at(bytes.len() - 32);
        let digest: [u8; 32] = Sha256::digest(body).into();
        if digest.as_slice() != trailer {
            return Err(bad("checksum mismatch (truncated or modified)"));
        }
        let mut r = Reader {
            data: body,
            at: MAGIC.len(),
        };
        let truncated = || bad("truncated record");
        let packages = r.u32().ok_or_else(truncated)? as usize;
        let files = r.u32().ok_or_else(truncated)? as usize;
        let mut store = TrustStore {
            // Counts come from the file: cap the preallocation by what can fit.
            packages: Vec::with_capacity(packages.min(body.len() / 28)),
            files: HashMap::with_capacity(files.min(body.len() / 46)),
        };
        for _ in 0..packages {
            let manager = if v1 {
                PackageManager::Dpkg
            } else {
                let byte = r.take(1).ok_or_else(truncated)?[0];
                PackageManager::from_byte(byte)
                    .ok_or_else(|| bad(&format!("unknown package manager {byte}")))?
            };
            let name = r.text().ok_or_else(truncated)?;
            let version = r.text().ok_or_else(truncated)?;
            let fingerprint = Fingerprint {
                size: r.u64().ok_or_else(truncated)?,
                mtime_ns: r.u64().ok_or_else(truncated)? as i64,
                inode: r.u64().ok_or_else(truncated)?,
            };
            store.packages.push(PackageRecord {
                manager,
                name,
                version,
                fingerprint,
            });
        }
        for _ in 0..files {
            let package = r.u32().ok_or_else(truncated)?;
            let size = r.u64().ok_or_else(truncated)?;
            let sha256: [u8; 32] = r
                .take(32)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(truncated)?;
            let path = r.bytes().ok_or_else(truncated)?;
            if package as usize >= store.packages.len() {
                return Err(bad("file record names a package that does not exist"));
            }
            if path.first() != Some(&b'/') {
                return Err(bad("file record with a relative path"));
            }
            store.files.insert(
                path.into(),
                TrustEntry {
                    sha256,
                    size,
                    package,
                },
            );
        }
        if r.at != body.len() {
            return Err(bad("trailing bytes after the last record"));
        }
        Ok(store)
    }

    /// Reads and parses a store file.
    ///
    /// # Errors
    /// [`Error::Read`], or as [`TrustStore::from_bytes`].
    pub fn load(path: &Path) -> Result<TrustStore, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        TrustStore::from_bytes(&bytes, path)
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    // Callers keep names, versions and paths below 64 KiB (insert refuses longer).
    let len = s.len().min(MAX_PATH_LEN);
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&s[..len]);
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.data.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        self.take(len as usize)
    }
    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TrustStore {
        let mut s = TrustStore::new();
        let p = s.add_package(PackageRecord {
            manager: PackageManager::Dpkg,
            name: "coreutils".into(),
            version: "9.1-1".into(),
            fingerprint: Fingerprint {
                size: 10,
                mtime_ns: -5,
                inode: 7,
            },
        });
        for (i, path) in ["/usr/bin/ls", "/usr/bin/caf\u{e9}", "/usr/bin/cat"]
            .iter()
            .enumerate()
        {
            s.insert(
                Path::new(path),
                TrustEntry {
                    sha256: [i as u8; 32],
                    size: i as u64 * 100,
                    package: p,
                },
            );
        }
        s
    }

    #[test]
    fn round_trip_and_lookup() {
        let s = sample();
        let bytes = s.to_bytes();
        assert_eq!(bytes, sample().to_bytes(), "deterministic");
        let back = TrustStore::from_bytes(&bytes, Path::new("t.db")).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back.packages(), s.packages());
        assert_eq!(
            back.lookup(Path::new("/usr/bin/cat")).map(|e| e.size),
            Some(200)
        );
        assert!(back.verify(Path::new("/usr/bin/ls"), &[0; 32]));
        assert!(!back.verify(Path::new("/usr/bin/ls"), &[1; 32]));
        assert!(!back.verify(Path::new("/usr/bin/nope"), &[0; 32]));
        assert_eq!(back.files_by_package()[0].len(), 3);
    }

    #[test]
    fn managers_round_trip_and_are_counted() {
        let mut s = sample();
        let p = s.add_package(PackageRecord {
            manager: PackageManager::Rpm,
            name: "bash".into(),
            version: "5.2.26-3.fc40.x86_64".into(),
            fingerprint: Fingerprint::default(),
        });
        let entry = TrustEntry {
            sha256: [9; 32],
            size: 1,
            package: p,
        };
        s.insert(Path::new("/usr/bin/bash"), entry);
        // The same path from the rpm package replaces the dpkg one.
        s.insert(Path::new("/usr/bin/cat"), entry);
        let back = TrustStore::from_bytes(&s.to_bytes(), Path::new("t.db")).unwrap();
        assert_eq!(back.packages()[1].manager, PackageManager::Rpm);
        let counts = back.counts_by_manager();
        assert_eq!(
            counts,
            [
                (
                    PackageManager::Dpkg,
                    ManagerCounts {
                        packages: 1,
                        files: 2
                    }
                ),
                (
                    PackageManager::Rpm,
                    ManagerCounts {
                        packages: 1,
                        files: 2
                    }
                ),
            ]
        );
    }

    #[test]
    fn version_1_stores_are_read_as_dpkg() {
        // A store written before rpm support: no manager byte.
        let mut body = MAGIC_V1.to_vec();
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        put_str(&mut body, b"coreutils");
        put_str(&mut body, b"9.1-1");
        body.extend_from_slice(&[0u8; 24]);
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&7u64.to_le_bytes());
        body.extend_from_slice(&[3u8; 32]);
        put_str(&mut body, b"/usr/bin/ls");
        let digest: [u8; 32] = Sha256::digest(&body).into();
        body.extend_from_slice(&digest);
        let store = TrustStore::from_bytes(&body, Path::new("old.db")).unwrap();
        assert_eq!(store.packages()[0].manager, PackageManager::Dpkg);
        assert_eq!(store.packages()[0].name, "coreutils");
        assert!(store.verify(Path::new("/usr/bin/ls"), &[3; 32]));
        // Written back in the current format.
        assert_eq!(&store.to_bytes()[..8], MAGIC);
    }

    #[test]
    fn damaged_stores_are_refused() {
        let bytes = sample().to_bytes();
        let origin = Path::new("/var/lib/vigil/trust.db");
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "bad magic"),
            (b"VGTRUST0".repeat(8), "bad magic"),
            (b"VGTRUST3".repeat(8), "bad magic"),
            (bytes[..bytes.len() - 1].to_vec(), "checksum mismatch"),
            (flipped, "checksum mismatch"),
        ];
        for (data, want) in cases {
            let error = TrustStore::from_bytes(&data, origin)
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with("/var/lib/vigil/trust.db: ") && error.contains(want),
                "{error}"
            );
        }
        // A well-checksummed but inconsistent body (counts larger than the data).
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&5u32.to_le_bytes());
        let digest: [u8; 32] = Sha256::digest(&body).into();
        body.extend_from_slice(&digest);
        let error = TrustStore::from_bytes(&body, origin)
            .unwrap_err()
            .to_string();
        assert!(error.contains("truncated record"), "{error}");
    }
}
