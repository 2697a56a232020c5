//! The index behind [`super::ClamDb`]: what a miss needs in memory, what a
//! hit needs in an unlinked scratch file.
//!
//! Owns: the in-memory tables of 8-byte digest prefixes (one sorted `u64` per
//! distinct digest, per kind), the layout of the fixed-width records in the
//! scratch file, the list of origins (which file and member each run of names
//! came from), and lookups. Must not own: building the tables (`build.rs`),
//! reading databases (`container.rs`, `clamdb.rs`), or the decision.
//!
//! Why this split: almost every lookup is a miss (a file no list names), and a
//! miss only needs to know that no listed digest starts with the same 8 bytes:
//! a binary search over `u64`s in memory, with no syscall and no allocation.
//! A hit (rare: the file is malware) reads the candidate records, the full
//! digest, the required size and the name's offset, with `pread`, then the
//! name. For 4 million entries the prefixes are 31 MiB where the records and
//! names would be 125 MiB. The file is read with `pread`, not mapped: mapping
//! needs `unsafe`, which the project keeps in the fanotify layer, and a mapping
//! raises SIGBUS when its file is truncated; the file here has no name, so no
//! other process can truncate it.
//!
//! Layout of the scratch file: the encoded names (`names.rs`), then the MD5
//! records, then the SHA-256 records, each table sorted by digest and holding
//! one record per distinct digest: `digest`, `size` (u32 LE), `name` (u32 LE,
//! offset of the name in the file). Record `i` of a table is at
//! `start + i × width`, the same position as its prefix in memory.
//!
//! When a prefix matches but its record cannot be read back (an I/O error on
//! the scratch file's disk), the lookup returns a hit named
//! [`Name::Unreadable`]: the digest is listed by its first 8 bytes, which a
//! file not listed matches with a chance of about n / 2⁶⁴ (2·10⁻¹³ for 4
//! million entries), so denying with that reason is almost always right, where
//! a miss would let listed malware run whenever the disk misbehaves.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::names::{Families, MAX_ENCODED, Name};
use crate::hashdb::HashKind;

/// `size` of a record that matches a file of any size (`*` in the list).
pub(super) const SIZE_ANY: u32 = u32::MAX;
/// `size` of a record whose required size is 4 GiB − 2 or more: it matches any
/// file at least that large (ClamAV itself does not scan files that large).
pub(super) const SIZE_LARGE: u32 = u32::MAX - 1;
/// Records read per `pread` when several share a prefix.
const CHUNK: usize = 8;
/// Width of the widest record (SHA-256).
const MAX_WIDTH: usize = 32 + 8;

/// One entry: the digest, the size it requires, where its name starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Record<const N: usize> {
    pub digest: [u8; N],
    pub size: u32,
    pub name: u32,
}

impl<const N: usize> Record<N> {
    /// Bytes of a record in the scratch file.
    pub const WIDTH: usize = N + 8;

    fn matches_size(&self, size: u64) -> bool {
        match self.size {
            SIZE_ANY => true,
            SIZE_LARGE => size >= u64::from(SIZE_LARGE),
            want => u64::from(want) == size,
        }
    }

    /// Appends the record's [`Self::WIDTH`] bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.name.to_le_bytes());
    }

    /// The record in the first [`Self::WIDTH`] bytes of `bytes`, if that many.
    pub fn read_from(bytes: &[u8]) -> Option<Record<N>> {
        let u32_at = |at: usize| {
            bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
        };
        Some(Record {
            digest: bytes.get(..N)?.try_into().ok()?,
            size: u32_at(N)?,
            name: u32_at(N + 4)?,
        })
    }

    /// The order of records in a table: by digest, then by load order (names
    /// are written in load order), so the first loaded of equal digests wins.
    pub fn key(&self) -> (&[u8; N], u32) {
        (&self.digest, self.name)
    }
}

/// The first 8 bytes of a digest, big-endian: prefixes sort as digests do.
pub(super) fn prefix(digest: &[u8]) -> u64 {
    digest
        .first_chunk::<8>()
        .map_or(0, |bytes| u64::from_be_bytes(*bytes))
}

/// One kind's table: a prefix per record, and where the records start.
#[derive(Debug, Clone, Default)]
pub(super) struct Table {
    pub prefixes: Vec<u64>,
    pub start: u64,
}

/// Where a run of names came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin {
    /// Offset of the first name from this origin in the scratch file.
    pub first_name: u32,
    /// The file in the database directory.
    pub path: PathBuf,
    /// The member inside a container, or empty for a loose file.
    pub member: String,
}

/// A hit in the index: borrowed from it, or inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClamHit<'a> {
    /// The signature name, e.g. `Win.Trojan.Agent-123-0` (its `Display`).
    pub name: Name<'a>,
    /// Which digest matched.
    pub kind: HashKind,
    /// The database file (`/var/lib/clamav/main.cvd`); the database directory
    /// when the entry could not be read ([`Name::Unreadable`]).
    pub path: &'a Path,
    /// The member of a container (`main.hdb`), empty for a loose file.
    pub member: &'a str,
}

/// The scratch file, shared by the clones of an index.
#[derive(Debug, Clone)]
pub(super) struct ScratchFile {
    pub file: Arc<File>,
    pub dir: PathBuf,
    pub bytes: u64,
}

/// The built index. Read-only; lookups never allocate, and a miss makes no
/// syscall.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub(super) md5: Table,
    pub(super) sha256: Table,
    pub(super) families: Families,
    pub(super) origins: Vec<Origin>,
    /// The database directory (named by a hit whose entry cannot be read).
    pub(super) dir: PathBuf,
    pub(super) scratch: Option<ScratchFile>,
}

/// The names would pass 4 GiB (offsets are `u32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaFull;

impl Index {
    /// The entry for an MD5 digest, if listed for this size. Never allocates;
    /// a digest whose first 8 bytes no entry shares costs no syscall.
    pub fn lookup_md5(&self, digest: &[u8; 16], size: u64) -> Option<ClamHit<'_>> {
        self.find(&self.md5, digest, size, HashKind::Md5)
    }

    /// The entry for a SHA-256 digest, if listed for this size. As
    /// [`Index::lookup_md5`].
    pub fn lookup_sha256(&self, digest: &[u8; 32], size: u64) -> Option<ClamHit<'_>> {
        self.find(&self.sha256, digest, size, HashKind::Sha256)
    }

    fn find<const N: usize>(
        &self,
        table: &Table,
        digest: &[u8; N],
        size: u64,
        kind: HashKind,
    ) -> Option<ClamHit<'_>> {
        let key = prefix(digest);
        let first = table.prefixes.partition_point(|&p| p < key);
        // The common case, a miss, ends here.
        if table.prefixes.get(first) != Some(&key) {
            return None;
        }
        let same = table
            .prefixes
            .get(first..)
            .map_or(0, |rest| rest.partition_point(|&p| p == key));
        let Some(scratch) = &self.scratch else {
            return Some(self.unreadable(kind, ErrorKind::NotFound));
        };
        let width = Record::<N>::WIDTH;
        let mut buf = [0u8; CHUNK * MAX_WIDTH];
        let mut done = 0;
        while done < same {
            let n = (same - done).min(CHUNK);
            let offset = (first + done)
                .checked_mul(width)
                .and_then(|at| u64::try_from(at).ok())
                .and_then(|at| at.checked_add(table.start));
            let (Some(offset), Some(bytes)) = (offset, buf.get_mut(..n * width)) else {
                return Some(self.unreadable(kind, ErrorKind::InvalidData));
            };
            if let Err(e) = scratch.file.read_exact_at(bytes, offset) {
                return Some(self.unreadable(kind, e.kind()));
            }
            for raw in bytes.chunks_exact(width) {
                let Some(record) = Record::<N>::read_from(raw) else {
                    return Some(self.unreadable(kind, ErrorKind::InvalidData));
                };
                if record.digest == *digest {
                    // One record per distinct digest: this is the entry.
                    return record
                        .matches_size(size)
                        .then(|| self.hit(&scratch.file, record.name, kind));
                }
            }
            done += n;
        }
        None
    }

    /// The hit for the name at `offset` of the scratch file.
    fn hit(&self, file: &File, offset: u32, kind: HashKind) -> ClamHit<'_> {
        let (path, member) = self.origin(offset);
        let mut buf = [0u8; MAX_ENCODED];
        let name = match read_up_to(file, &mut buf, u64::from(offset)) {
            Ok(read) => buf
                .get(..read)
                .and_then(|bytes| self.families.decode(bytes))
                .unwrap_or(Name::Unreadable(ErrorKind::InvalidData)),
            Err(e) => Name::Unreadable(e.kind()),
        };
        ClamHit {
            name,
            kind,
            path,
            member,
        }
    }

    /// A hit whose record could not be read: see the module's documentation.
    fn unreadable(&self, kind: HashKind, error: ErrorKind) -> ClamHit<'_> {
        ClamHit {
            name: Name::Unreadable(error),
            kind,
            path: &self.dir,
            member: "",
        }
    }

    /// The file and member the name at `offset` came from: the last origin
    /// whose names start at or before it (origins without entries share their
    /// first offset with the next one, so the last of equal ones is taken).
    fn origin(&self, offset: u32) -> (&Path, &str) {
        let after = self.origins.partition_point(|o| o.first_name <= offset);
        match after.checked_sub(1).and_then(|i| self.origins.get(i)) {
            Some(origin) => (&origin.path, &origin.member),
            None => (&self.dir, ""),
        }
    }

    /// Distinct MD5 digests.
    pub fn md5_len(&self) -> usize {
        self.md5.prefixes.len()
    }

    /// Distinct SHA-256 digests.
    pub fn sha256_len(&self) -> usize {
        self.sha256.prefixes.len()
    }

    /// Bytes held in memory: the prefixes, the families and the origins.
    pub fn heap_bytes(&self) -> usize {
        (self.md5.prefixes.capacity() + self.sha256.prefixes.capacity()) * 8
            + self.families.heap_bytes()
            + self
                .origins
                .iter()
                .map(|o| std::mem::size_of::<Origin>() + o.path.capacity() + o.member.capacity())
                .sum::<usize>()
    }

    /// The scratch file's size in bytes and its directory (none when empty).
    pub fn scratch(&self) -> Option<(u64, &Path)> {
        self.scratch.as_ref().map(|s| (s.bytes, s.dir.as_path()))
    }
}

/// Reads into `buf` from `offset` until it is full or the file ends; returns
/// the bytes read (a name near the end of the file is shorter than `buf`).
fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut read = 0;
    while let Some(rest) = buf.get_mut(read..).filter(|r| !r.is_empty()) {
        let at = offset.saturating_add(read as u64);
        match file.read_at(rest, at) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::super::build::Builder;
    use super::*;

    #[test]
    fn records_are_fixed_width() {
        assert_eq!(Record::<16>::WIDTH, 24);
        assert_eq!(Record::<32>::WIDTH, 40);
        let record = Record {
            digest: [7; 16],
            size: 9,
            name: 0x0102_0304,
        };
        let mut bytes = Vec::new();
        record.write_to(&mut bytes);
        assert_eq!(bytes.len(), 24);
        assert_eq!(Record::<16>::read_from(&bytes), Some(record));
        assert_eq!(Record::<16>::read_from(&bytes[..23]), None);
    }

    #[test]
    fn lookups_find_first_entry_size_and_origin() {
        let tmp = std::env::temp_dir();
        let mut b = Builder::new(Path::new("/db"), &[&tmp]).unwrap();
        b.begin(Path::new("/db/main.cvd"), "main.hdb").unwrap();
        b.add_md5([1; 16], Some(10), "A.first").unwrap();
        b.add_md5([3; 16], None, "C.any").unwrap();
        b.begin(Path::new("/db/empty.hdb"), "").unwrap();
        b.begin(Path::new("/db/daily.cld"), "daily.hsb").unwrap();
        b.add_md5([1; 16], Some(10), "A.second").unwrap();
        b.add_sha256([2; 32], Some(5_000_000_000), "B.large")
            .unwrap();
        b.add_md5([0; 16], Some(1), "Z.low").unwrap();
        let index = b.finish().unwrap();
        assert_eq!((index.md5_len(), index.sha256_len()), (3, 1));

        let hit = index.lookup_md5(&[1; 16], 10).unwrap();
        assert_eq!(
            (
                hit.name.to_string().as_str(),
                hit.path,
                hit.member,
                hit.kind
            ),
            (
                "A.first",
                Path::new("/db/main.cvd"),
                "main.hdb",
                HashKind::Md5
            )
        );
        assert!(index.lookup_md5(&[1; 16], 11).is_none());
        assert_eq!(
            index.lookup_md5(&[3; 16], 123).unwrap().name.to_string(),
            "C.any"
        );
        let low = index.lookup_md5(&[0; 16], 1).unwrap();
        assert_eq!(
            (low.name.to_string().as_str(), low.member),
            ("Z.low", "daily.hsb")
        );
        assert!(index.lookup_md5(&[9; 16], 1).is_none());
        let large = index.lookup_sha256(&[2; 32], 5_000_000_000).unwrap();
        assert_eq!(
            (large.name.to_string().as_str(), large.kind),
            ("B.large", HashKind::Sha256)
        );
        assert!(index.lookup_sha256(&[2; 32], 10).is_none());
        assert!(
            index
                .lookup_sha256(&[2; 32], u64::from(SIZE_LARGE) - 1)
                .is_none()
        );
    }

    /// Digests that share their first 8 bytes: only the listed one hits, a
    /// digest with the same prefix that is not listed misses, sizes are checked
    /// per record, and runs of equal prefixes longer than one read work.
    #[test]
    fn shared_prefixes_compare_the_full_digest() {
        let tmp = std::env::temp_dir();
        let mut b = Builder::new(Path::new("/db"), &[&tmp]).unwrap();
        b.begin(Path::new("/db/x.hsb"), "").unwrap();
        let digest = |last: u8| {
            let mut d = [0xab; 32];
            d[31] = last;
            d
        };
        // 2 × CHUNK + 3 digests with one prefix, added out of order.
        let listed: Vec<u8> = (0..(2 * CHUNK as u8 + 3)).map(|i| 200 - 3 * i).collect();
        for &last in &listed {
            b.add_sha256(digest(last), Some(u64::from(last)), &format!("P.{last}"))
                .unwrap();
        }
        // Neighbours on both sides of the shared prefix.
        let mut below = [0xab; 32];
        below[7] = 0xaa;
        let mut above = [0xab; 32];
        above[7] = 0xac;
        b.add_sha256(below, None, "Below").unwrap();
        b.add_sha256(above, None, "Above").unwrap();
        let index = b.finish().unwrap();
        assert_eq!(index.sha256_len(), listed.len() + 2);
        for &last in &listed {
            let hit = index.lookup_sha256(&digest(last), u64::from(last));
            assert_eq!(
                hit.map(|h| h.name.to_string()),
                Some(format!("P.{last}")),
                "{last}"
            );
            // Same digest, other size: not this entry.
            assert!(index.lookup_sha256(&digest(last), 1000).is_none());
            // Same prefix, a digest that is not listed.
            assert!(
                index
                    .lookup_sha256(&digest(last + 1), u64::from(last))
                    .is_none()
            );
        }
        assert_eq!(
            index.lookup_sha256(&below, 1).map(|h| h.name.to_string()),
            Some("Below".to_owned())
        );
        assert_eq!(
            index.lookup_sha256(&above, 1).map(|h| h.name.to_string()),
            Some("Above".to_owned())
        );
    }

    /// A record that cannot be read back denies with an unreadable name, never
    /// a miss and never a panic; a digest whose prefix is not listed still
    /// misses without reading.
    #[test]
    fn unreadable_entries_are_hits_with_unknown_names() {
        let tmp = std::env::temp_dir();
        let mut b = Builder::new(Path::new("/db"), &[&tmp]).unwrap();
        b.begin(Path::new("/db/x.hdb"), "").unwrap();
        b.add_md5([5; 16], Some(3), "Listed-1-0").unwrap();
        let mut index = b.finish().unwrap();
        // The scratch file cut short: the record is no longer there.
        if let Some(scratch) = &index.scratch {
            scratch.file.set_len(0).unwrap();
        }
        let hit = index.lookup_md5(&[5; 16], 3).unwrap();
        assert_eq!(hit.name, Name::Unreadable(ErrorKind::UnexpectedEof));
        assert_eq!(hit.path, Path::new("/db"));
        assert!(
            hit.name.to_string().starts_with("unknown signature"),
            "{}",
            hit.name
        );
        assert!(index.lookup_md5(&[6; 16], 3).is_none());
        // No scratch file at all (prefixes without records) is the same.
        index.scratch = None;
        assert!(matches!(
            index.lookup_md5(&[5; 16], 3).map(|h| h.name),
            Some(Name::Unreadable(_))
        ));
    }
}
