//! The compact sorted index behind [`super::ClamDb`].
//!
//! Owns: fixed-width records (digest, required size, offset of the name) in two
//! vectors sorted by digest, one contiguous arena of names, and the list of
//! origins (which file and member each run of names came from). Must not own:
//! reading files or containers (`container.rs`, `clamdb.rs`), or the decision.
//!
//! Why this shape and not [`crate::HashDb`]'s entries: ClamAV's main and daily
//! databases hold millions of hashes, and an owned `String` name, an `Arc` path
//! and a line number per entry cost about 120 bytes each. A record here is 24
//! bytes (MD5) or 40 bytes (SHA-256) plus the name's bytes in the arena; the
//! origin of a hit is found from the name's offset (names are appended in load
//! order), so no record carries it. Lookups are a binary search that returns
//! borrowed slices: O(log n), no allocation. The index is an ordinary `Vec`, not
//! a memory map of a file: mapping needs `unsafe`, which the project keeps in the
//! fanotify layer, and a mapping can raise SIGBUS when the file is truncated.

use std::path::{Path, PathBuf};

use super::names::{Name, Names, NamesBuilder};
use crate::hashdb::HashKind;

/// `size` of a record that matches a file of any size (`*` in the list).
const SIZE_ANY: u32 = u32::MAX;
/// `size` of a record whose required size is 4 GiB − 2 or more: it matches any
/// file at least that large (ClamAV itself does not scan files that large).
const SIZE_LARGE: u32 = u32::MAX - 1;

/// One entry: the digest, the size it requires, where its name starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record<const N: usize> {
    digest: [u8; N],
    size: u32,
    name: u32,
}

impl<const N: usize> Record<N> {
    fn matches_size(&self, size: u64) -> bool {
        match self.size {
            SIZE_ANY => true,
            SIZE_LARGE => size >= u64::from(SIZE_LARGE),
            want => u64::from(want) == size,
        }
    }
}

/// Where a run of names came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    /// Offset of the first name from this origin in the arena.
    first_name: u32,
    /// The file in the database directory.
    path: PathBuf,
    /// The member inside a container, or empty for a loose file.
    member: String,
}

/// A hit in the index: everything borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClamHit<'a> {
    /// The signature name, e.g. `Win.Trojan.Agent-123-0` (its `Display`).
    pub name: Name<'a>,
    /// Which digest matched.
    pub kind: HashKind,
    /// The database file (`/var/lib/clamav/main.cvd`).
    pub path: &'a Path,
    /// The member of a container (`main.hdb`), empty for a loose file.
    pub member: &'a str,
}

/// The built index. Read-only; lookups never allocate.
#[derive(Debug, Clone, Default)]
pub struct Index {
    md5: Vec<Record<16>>,
    sha256: Vec<Record<32>>,
    names: Names,
    origins: Vec<Origin>,
}

/// Collects entries, then sorts them once ([`Builder::finish`]).
#[derive(Debug, Default)]
pub struct Builder {
    index: Index,
    names: NamesBuilder,
}

/// The arena would pass 4 GiB (offsets are `u32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaFull;

impl Builder {
    /// Starts the entries of one file (or container member).
    pub fn begin(&mut self, path: &Path, member: &str) -> Result<(), ArenaFull> {
        let first_name = self.names.next_offset()?;
        self.index.origins.push(Origin {
            first_name,
            path: path.to_owned(),
            member: member.to_owned(),
        });
        Ok(())
    }

    /// Adds an MD5 entry of the current origin.
    pub fn add_md5(
        &mut self,
        digest: [u8; 16],
        size: Option<u64>,
        name: &str,
    ) -> Result<(), ArenaFull> {
        let (size, name) = self.push_name(size, name)?;
        self.index.md5.push(Record { digest, size, name });
        Ok(())
    }

    /// Adds a SHA-256 entry of the current origin.
    pub fn add_sha256(
        &mut self,
        digest: [u8; 32],
        size: Option<u64>,
        name: &str,
    ) -> Result<(), ArenaFull> {
        let (size, name) = self.push_name(size, name)?;
        self.index.sha256.push(Record { digest, size, name });
        Ok(())
    }

    fn push_name(&mut self, size: Option<u64>, name: &str) -> Result<(u32, u32), ArenaFull> {
        let offset = self.names.push(name)?;
        let size = match size {
            None => SIZE_ANY,
            Some(size) => u32::try_from(size).map_or(SIZE_LARGE, |s| s.min(SIZE_LARGE)),
        };
        Ok((size, offset))
    }

    /// Sorts by digest and keeps the first loaded entry of each digest (names
    /// grow with load order, so sorting by name offset second keeps it first).
    pub fn finish(mut self) -> Index {
        self.index.names = self.names.finish();
        let index = &mut self.index;
        index
            .md5
            .sort_unstable_by(|a, b| a.digest.cmp(&b.digest).then(a.name.cmp(&b.name)));
        index
            .md5
            .dedup_by(|later, earlier| later.digest == earlier.digest);
        index
            .sha256
            .sort_unstable_by(|a, b| a.digest.cmp(&b.digest).then(a.name.cmp(&b.name)));
        index
            .sha256
            .dedup_by(|later, earlier| later.digest == earlier.digest);
        index.md5.shrink_to_fit();
        index.sha256.shrink_to_fit();
        self.index
    }
}

impl Index {
    /// The entry for an MD5 digest, if listed for this size. Never allocates.
    pub fn lookup_md5(&self, digest: &[u8; 16], size: u64) -> Option<ClamHit<'_>> {
        let found = self.md5.binary_search_by(|r| r.digest.cmp(digest)).ok()?;
        let record = self.md5.get(found)?;
        if !record.matches_size(size) {
            return None;
        }
        self.hit(record.name, HashKind::Md5)
    }

    /// The entry for a SHA-256 digest, if listed for this size. Never allocates.
    pub fn lookup_sha256(&self, digest: &[u8; 32], size: u64) -> Option<ClamHit<'_>> {
        let found = self
            .sha256
            .binary_search_by(|r| r.digest.cmp(digest))
            .ok()?;
        let record = self.sha256.get(found)?;
        if !record.matches_size(size) {
            return None;
        }
        self.hit(record.name, HashKind::Sha256)
    }

    fn hit(&self, offset: u32, kind: HashKind) -> Option<ClamHit<'_>> {
        let name = self.names.get(offset)?;
        // The last origin whose names start at or before this one.
        let origin = match self.origins.binary_search_by(|o| o.first_name.cmp(&offset)) {
            Ok(i) => {
                // Origins without entries share a first offset: take the last.
                let mut i = i;
                while self
                    .origins
                    .get(i + 1)
                    .is_some_and(|o| o.first_name == offset)
                {
                    i += 1;
                }
                self.origins.get(i)?
            }
            Err(i) => self.origins.get(i.checked_sub(1)?)?,
        };
        Some(ClamHit {
            name,
            kind,
            path: &origin.path,
            member: &origin.member,
        })
    }

    /// Distinct MD5 digests.
    pub fn md5_len(&self) -> usize {
        self.md5.len()
    }

    /// Distinct SHA-256 digests.
    pub fn sha256_len(&self) -> usize {
        self.sha256.len()
    }

    /// Bytes held by the records and the name arena (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        self.md5.capacity() * std::mem::size_of::<Record<16>>()
            + self.sha256.capacity() * std::mem::size_of::<Record<32>>()
            + self.names.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_fixed_width() {
        assert_eq!(std::mem::size_of::<Record<16>>(), 24);
        assert_eq!(std::mem::size_of::<Record<32>>(), 40);
    }

    #[test]
    fn lookups_find_first_entry_size_and_origin() {
        let mut b = Builder::default();
        b.begin(Path::new("/db/main.cvd"), "main.hdb").unwrap();
        b.add_md5([1; 16], Some(10), "A.first").unwrap();
        b.add_md5([3; 16], None, "C.any").unwrap();
        b.begin(Path::new("/db/empty.hdb"), "").unwrap();
        b.begin(Path::new("/db/daily.cld"), "daily.hsb").unwrap();
        b.add_md5([1; 16], Some(10), "A.second").unwrap();
        b.add_sha256([2; 32], Some(5_000_000_000), "B.large")
            .unwrap();
        b.add_md5([0; 16], Some(1), "Z.low").unwrap();
        let index = b.finish();
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
    }
}
