//! The allowlist: files the administrator declared good, by hash.
//!
//! Owns: the loaded allow entries (`content.allow`: plain `<sha256> [comment]`
//! lists and ClamAV's false-positive lists, `.sfp` for SHA-256 and `.fp` for MD5),
//! which configured paths were absent, and the comparison with the block lists
//! ([`Allowlist::conflicts`]). Must not own: hashing the file (the agent's scanner
//! does it in its one read pass and asks [`Allowlist::lookup`] right after), the
//! exec rules of `[policy]` (they run before any scan and still apply), or writing
//! the lists (`vigil allow` in the agent edits `local.sha256`).
//!
//! The entries live in a [`HashDb`] built with the same line parsers as the block
//! lists, so a lookup is the same binary search over sorted digests and never
//! allocates. An allowed file skips every detection stage: the administrator's
//! word wins over a block list, which is why [`Allowlist::conflicts`] exists, so
//! the daemon and `vigil check-config` can name every hash that is on both.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::hashdb::{HashDb, HashEntry, HashKind, expand};

/// Default `content.allow`: the directory `vigil allow` writes to.
pub const DEFAULT_ALLOW_DIR: &str = "/etc/vigil/allow.d";

/// The file `vigil allow` appends to, inside the first allow directory.
pub const LOCAL_LIST: &str = "local.sha256";

/// Extensions of the files an allow directory contributes: plain SHA-256 lists
/// and ClamAV's false-positive lists. A file named explicitly is loaded whatever
/// its name (format by extension, plain otherwise).
pub const ALLOW_EXTENSIONS: [&str; 4] = ["sha256", "sha256sum", "sfp", "fp"];

/// The loaded allow lists. Lookups never allocate.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    db: HashDb,
    absent: Vec<PathBuf>,
}

/// One allowed digest, as `vigil allow --list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed<'a> {
    /// The digest's bytes (32 for SHA-256, 16 for MD5; see `entry.kind`).
    pub digest: &'a [u8],
    /// The entry: comment (`name`), size condition, source file and line.
    pub entry: &'a HashEntry,
}

/// A digest that is both allowed and on a block list (the allow entry wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict<'a> {
    /// The digest both lists name.
    pub digest: &'a [u8],
    /// The allow entry.
    pub allowed: &'a HashEntry,
    /// The block list entry.
    pub blocked: &'a HashEntry,
}

impl Conflict<'_> {
    /// One line for logs and `vigil check-config`, naming both entries.
    pub fn describe(&self) -> String {
        format!(
            "{} {} is both blocked ({}) and allowed ({}); the allowlist wins",
            kind_name(self.allowed.kind),
            hex::encode(self.digest),
            entry_ref(self.blocked),
            entry_ref(self.allowed),
        )
    }
}

/// `name (source:line)` of an entry, as event lines and messages name it.
pub fn entry_ref(entry: &HashEntry) -> String {
    format!("{} ({}:{})", entry.name, entry.source.display(), entry.line)
}

fn kind_name(kind: HashKind) -> &'static str {
    match kind {
        HashKind::Sha256 => "sha256",
        HashKind::Md5 => "md5",
    }
}

impl Allowlist {
    /// An allowlist with no entries.
    pub fn empty() -> Allowlist {
        Allowlist::default()
    }

    /// Loads every path in order; a directory expands to its regular, non-hidden
    /// files with one of [`ALLOW_EXTENSIONS`], sorted by name. A configured path
    /// that does not exist allows nothing and is remembered ([`Allowlist::absent`]):
    /// the default directory only appears with the first `vigil allow`.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] if a path exists but cannot be read; [`Error::HashList`]
    /// naming the file and line of the first malformed line.
    pub fn load(paths: &[PathBuf]) -> Result<Allowlist, Error> {
        let mut list = Allowlist::empty();
        for path in paths {
            let files = match expand(path, &ALLOW_EXTENSIONS) {
                Ok(files) => files,
                Err(Error::Read { path: p, source })
                    if p == *path && source.kind() == io::ErrorKind::NotFound =>
                {
                    list.absent.push(p);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for file in files {
                list.db.load_file(&file)?;
            }
        }
        Ok(list)
    }

    /// Parses one file's text into the allowlist (format by the name's extension:
    /// `.sfp`/`.hsb` ClamAV SHA-256, `.fp`/`.hdb` ClamAV MD5, anything else plain
    /// `<sha256> [comment]`). On error the allowlist is unchanged.
    ///
    /// # Errors
    ///
    /// [`Error::HashList`] naming `source` and the 1-based line that is malformed.
    pub fn parse_into(&mut self, text: &str, source: &Path) -> Result<(), Error> {
        self.db.parse_into(text, source)
    }

    /// The allow entry for a file of `size` bytes with these digests (`md5` only
    /// when [`Allowlist::needs_md5`]), SHA-256 first. Never allocates.
    pub fn lookup(
        &self,
        sha256: &[u8; 32],
        md5: Option<&[u8; 16]>,
        size: u64,
    ) -> Option<&HashEntry> {
        self.db
            .lookup_sha256(sha256, size)
            .or_else(|| md5.and_then(|digest| self.db.lookup_md5(digest, size)))
    }

    /// True iff an MD5 entry (a `.fp` list) is loaded.
    pub fn needs_md5(&self) -> bool {
        self.db.needs_md5()
    }

    /// Number of distinct digests allowed.
    pub fn len(&self) -> usize {
        self.db.len()
    }

    /// True if nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.db.is_empty()
    }

    /// Every file loaded: path, SHA-256 hex of its bytes, entry lines in it.
    pub fn sources(&self) -> &[(PathBuf, String, usize)] {
        self.db.sources()
    }

    /// Configured paths that did not exist at load time.
    pub fn absent(&self) -> &[PathBuf] {
        &self.absent
    }

    /// Every allowed digest (the first entry of each), in load order: by file,
    /// then by line.
    pub fn entries(&self) -> Vec<Allowed<'_>> {
        let mut all: Vec<Allowed<'_>> = self
            .db
            .sha256_entries()
            .map(|(digest, entry)| Allowed {
                digest: digest.as_slice(),
                entry,
            })
            .chain(self.db.md5_entries().map(|(digest, entry)| Allowed {
                digest: digest.as_slice(),
                entry,
            }))
            .collect();
        let order = |entry: &HashEntry| {
            self.sources()
                .iter()
                .position(|(path, _, _)| **path == *entry.source)
                .unwrap_or(usize::MAX)
        };
        all.sort_by_key(|a| (order(a.entry), a.entry.line));
        all
    }

    /// Every allowed digest that `blocked` also lists with a compatible size
    /// condition (same size, or `*` on either side), in load order. An MD5 allow
    /// entry and a SHA-256 block entry for the same file cannot be matched
    /// without the file: they show up when it is scanned.
    pub fn conflicts<'a>(&'a self, blocked: &'a HashDb) -> Vec<Conflict<'a>> {
        let sizes_meet = |a: &HashEntry, b: &HashEntry| match (a.size, b.size) {
            (Some(x), Some(y)) => x == y,
            (None, _) | (_, None) => true,
        };
        self.entries()
            .into_iter()
            .filter_map(|allowed| {
                let hit = match allowed.entry.kind {
                    HashKind::Sha256 => <&[u8; 32]>::try_from(allowed.digest)
                        .ok()
                        .and_then(|d| blocked.lookup_sha256_any_size(d)),
                    HashKind::Md5 => <&[u8; 16]>::try_from(allowed.digest)
                        .ok()
                        .and_then(|d| blocked.lookup_md5_any_size(d)),
                }?;
                sizes_meet(allowed.entry, hit).then_some(Conflict {
                    digest: allowed.digest,
                    allowed: allowed.entry,
                    blocked: hit,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Md5;
    use sha2::{Digest as _, Sha256};
    use std::fs;
    use std::time::Instant;

    fn sha256(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    fn md5(bytes: &[u8]) -> [u8; 16] {
        Md5::digest(bytes).into()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vigil-policy-allow-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Each format an allow directory takes, and a lookup through each.
    #[test]
    fn formats_and_lookups() {
        let dir = scratch("formats");
        let allow = dir.join("allow.d");
        fs::create_dir(&allow).unwrap();
        let (plain, sfp, fp, sized) = (
            b"vendor tool".as_slice(),
            b"clamav sfp".as_slice(),
            b"clamav fp".as_slice(),
            b"sized".as_slice(),
        );
        fs::write(
            allow.join("local.sha256"),
            format!(
                "# comment\n{}  vendor tool v2 -- by root\n",
                hex::encode(sha256(plain))
            ),
        )
        .unwrap();
        fs::write(
            allow.join("daily.sfp"),
            format!(
                "{}:*:Sfp.Entry:73\n{}:{}:Sized.Entry\n",
                hex::encode(sha256(sfp)),
                hex::encode(sha256(sized)),
                sized.len()
            ),
        )
        .unwrap();
        fs::write(
            allow.join("daily.fp"),
            format!("{}:{}:Fp.Entry\n", hex::encode(md5(fp)), fp.len()),
        )
        .unwrap();
        fs::write(allow.join("README"), "not a list").unwrap();
        fs::write(allow.join("blocked.hsb"), "not read here").unwrap();

        let list = Allowlist::load(&[allow.clone(), dir.join("absent.d")]).unwrap();
        assert_eq!(list.len(), 4);
        assert!(list.needs_md5());
        assert_eq!(list.absent(), [dir.join("absent.d")]);
        let names: Vec<_> = list.sources().iter().map(|(p, _, _)| p.clone()).collect();
        assert_eq!(
            names,
            [
                allow.join("daily.fp"),
                allow.join("daily.sfp"),
                allow.join("local.sha256")
            ]
        );

        let size = |b: &[u8]| b.len() as u64;
        let hit = |e: Option<&HashEntry>| e.map(|e| (e.name.clone(), e.line));
        type Hit = Option<(String, usize)>;
        type Want<'a> = Option<(&'a str, usize)>;
        let cases: Vec<(&str, Hit, Want<'_>)> = vec![
            (
                "plain",
                hit(list.lookup(&sha256(plain), None, 123)),
                Some(("vendor tool v2 -- by root", 2)),
            ),
            (
                "sfp",
                hit(list.lookup(&sha256(sfp), None, size(sfp))),
                Some(("Sfp.Entry", 1)),
            ),
            (
                "sfp sized",
                hit(list.lookup(&sha256(sized), None, size(sized))),
                Some(("Sized.Entry", 2)),
            ),
            (
                "sfp wrong size",
                hit(list.lookup(&sha256(sized), None, size(sized) + 1)),
                None,
            ),
            (
                "fp (md5)",
                hit(list.lookup(&sha256(fp), Some(&md5(fp)), size(fp))),
                Some(("Fp.Entry", 1)),
            ),
            (
                "fp without md5",
                hit(list.lookup(&sha256(fp), None, size(fp))),
                None,
            ),
            (
                "not listed",
                hit(list.lookup(&sha256(b"x"), Some(&md5(b"x")), 1)),
                None,
            ),
        ];
        for (label, got, want) in cases {
            let got = got.as_ref().map(|(n, l)| (n.as_str(), *l));
            assert_eq!(got, want, "{label}");
        }

        // Load order: file by file, line by line.
        let listed: Vec<(&str, usize)> = list
            .entries()
            .iter()
            .map(|a| (a.entry.name.as_str(), a.entry.line))
            .collect();
        assert_eq!(
            listed,
            [
                ("Fp.Entry", 1),
                ("Sfp.Entry", 1),
                ("Sized.Entry", 2),
                ("vendor tool v2 -- by root", 2)
            ]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_allow_file_names_file_and_line() {
        let dir = scratch("bad");
        let file = dir.join("local.sha256");
        fs::write(
            &file,
            format!("{} ok\nnot-a-hash comment\n", hex::encode(sha256(b"a"))),
        )
        .unwrap();
        let error = Allowlist::load(std::slice::from_ref(&dir)).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}:2: expected 64 hex digits for a SHA-256, found 10 characters",
                file.display()
            )
        );
        let sfp = dir.join("x.sfp");
        fs::remove_file(&file).unwrap();
        fs::write(&sfp, format!("{}:*:Sha1\n", "a".repeat(40))).unwrap();
        let error = Allowlist::load(std::slice::from_ref(&dir)).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}:1: SHA-1 hashes are not supported; use SHA-256",
                sfp.display()
            )
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fp_lists_are_refused_as_block_lists() {
        let dir = scratch("fp-as-block");
        let fp = dir.join("daily.fp");
        fs::write(&fp, format!("{}:*:X\n", hex::encode(md5(b"a")))).unwrap();
        let error = HashDb::load(std::slice::from_ref(&fp), false).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: a ClamAV false-positive list", fp.display())),
            "{error}"
        );
        // In a block-list directory it is not one of the list extensions: skipped.
        assert!(
            HashDb::load(std::slice::from_ref(&dir), false)
                .unwrap()
                .is_empty()
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn conflicts_name_both_entries() {
        let mut blocked = HashDb::empty();
        let both = b"both";
        let sized = b"sized differently";
        blocked
            .parse_into(
                &format!(
                    "{}:*:Bad.Both\n{}:5:Bad.Sized\n",
                    hex::encode(sha256(both)),
                    hex::encode(sha256(sized))
                ),
                Path::new("/c/bad.hsb"),
            )
            .unwrap();
        let mut allow = Allowlist::empty();
        allow
            .parse_into(
                &format!("{}  tool\n", hex::encode(sha256(both))),
                Path::new("/a/local.sha256"),
            )
            .unwrap();
        allow
            .parse_into(
                &format!("{}:{}:Sized\n", hex::encode(sha256(sized)), sized.len()),
                Path::new("/a/x.sfp"),
            )
            .unwrap();
        let conflicts = allow.conflicts(&blocked);
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert_eq!(
            conflicts[0].describe(),
            format!(
                "sha256 {} is both blocked (Bad.Both (/c/bad.hsb:1)) and allowed (tool (/a/local.sha256:1)); the allowlist wins",
                hex::encode(sha256(both))
            )
        );
    }

    /// What an allowlist lookup adds to the hash stage: a miss and a hit in a list
    /// of 100,000 entries, against the block-list lookup the stage already does.
    /// Printed, not asserted (timing belongs to benchmarks; run with
    /// `cargo test -p vigil-policy --release allowlist::tests::lookup_cost -- --nocapture`).
    #[test]
    fn lookup_cost() {
        const N: u32 = 100_000;
        let mut text = String::new();
        for i in 0..N {
            text.push_str(&hex::encode(sha256(&i.to_le_bytes())));
            text.push_str(" entry\n");
        }
        let mut allow = Allowlist::empty();
        allow.parse_into(&text, Path::new("big.sha256")).unwrap();
        let mut blocked = HashDb::empty();
        blocked.parse_into(&text, Path::new("big.hsb.txt")).unwrap();
        let probes: Vec<[u8; 32]> = (0..1000u32)
            .map(|i| sha256(&(i + N).to_le_bytes()))
            .collect();
        let hits: Vec<[u8; 32]> = (0..1000u32).map(|i| sha256(&i.to_le_bytes())).collect();
        let rounds = 200;
        let time = |f: &dyn Fn(&[u8; 32]) -> bool, set: &[[u8; 32]]| {
            let start = Instant::now();
            let mut found = 0usize;
            for _ in 0..rounds {
                for p in set {
                    found += usize::from(f(std::hint::black_box(p)));
                }
            }
            (
                start.elapsed().as_nanos() as f64 / (rounds * set.len()) as f64,
                found,
            )
        };
        let (allow_miss, n) = time(&|d| allow.lookup(d, None, 1).is_some(), &probes);
        assert_eq!(n, 0);
        let (allow_hit, n) = time(&|d| allow.lookup(d, None, 1).is_some(), &hits);
        assert_eq!(n, rounds * hits.len());
        let (block_miss, _) = time(&|d| blocked.lookup_sha256(d, 1).is_some(), &probes);
        let empty = Allowlist::empty();
        let (empty_miss, _) = time(&|d| empty.lookup(d, None, 1).is_some(), &probes);
        println!(
            "allowlist of {N}: miss {allow_miss:.0} ns, hit {allow_hit:.0} ns; block list miss {block_miss:.0} ns; empty allowlist {empty_miss:.1} ns"
        );
    }
}
