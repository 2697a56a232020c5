//! The known-bad hash database: loading hash lists and looking digests up.
//!
//! Owns: every loaded [`HashEntry`], two sorted indexes (SHA-256 and MD5 digest →
//! entry), and the list of sources with the SHA-256 of each file's bytes (the
//! content generation the agent reports). Must not own: hashing the scanned file
//! (the agent's worker does it in its single read pass) or the decision
//! ([`crate::verdict::hash_reason`] turns a hit into a reason).
//!
//! Why sorted vectors: lookups are a binary search over `([u8; N], u32)` pairs,
//! which never allocates and keeps each entry at 36 or 20 bytes of index. A database
//! is built once per content generation and then only read.

pub(crate) mod parse;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, utf8_error_line};
use parse::{Digest, Format, parse_line};

/// Name under which the built-in test signature is listed.
pub const BUILTIN_SOURCE: &str = "<builtin>";

/// The built-in test signature, in `.hsb` form: the SHA-256 and size of the EICAR
/// anti-malware test file, so that a fresh install can be tested end to end.
const BUILTIN_HSB: &str =
    "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f:68:EICAR-Test-File\n";

/// Which digest an entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashKind {
    /// SHA-256 (`.hsb` and plain lists).
    Sha256,
    /// MD5 (`.hdb`).
    Md5,
}

/// One known-bad file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashEntry {
    /// Signature name, e.g. `Linux.Trojan.Mirai`.
    pub name: String,
    /// Exact size the file must have to match; `None` (written `*`) matches any size.
    pub size: Option<u64>,
    /// Digest kind.
    pub kind: HashKind,
    /// File the entry came from (shared by all its entries), or [`BUILTIN_SOURCE`].
    pub source: Arc<Path>,
    /// 1-based line in `source`.
    pub line: usize,
}

/// The loaded hash lists. Lookups never allocate.
#[derive(Debug, Clone, Default)]
pub struct HashDb {
    entries: Vec<HashEntry>,
    /// Sorted by digest, one pair per distinct digest (the first loaded wins).
    sha256: Vec<([u8; 32], u32)>,
    /// Sorted by digest, one pair per distinct digest (the first loaded wins).
    md5: Vec<([u8; 16], u32)>,
    sources: Vec<(PathBuf, String, usize)>,
}

impl HashDb {
    /// A database with no entries.
    pub fn empty() -> HashDb {
        HashDb::default()
    }

    /// Loads every file in `paths` in order; a directory expands to its regular,
    /// non-hidden hash-list files (by [`LIST_EXTENSIONS`]) sorted by name (not
    /// recursively). `builtin` adds the built-in test signature after them.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] if a path cannot be read; [`Error::HashList`] naming the file
    /// and line of the first malformed line (or a line that is not UTF-8).
    pub fn load(paths: &[PathBuf], builtin: bool) -> Result<HashDb, Error> {
        let mut db = HashDb::empty();
        for path in paths {
            for file in expand(path, &LIST_EXTENSIONS)? {
                // A false-positive list read as a block list would deny exactly
                // the files the administrator meant to allow.
                if Format::is_allow_list(&file) {
                    return Err(Error::HashList {
                        path: file,
                        line: 0,
                        message: "a ClamAV false-positive list (.fp/.sfp) allows files: \
                                  name it in `content.allow`, not `content.hashes`"
                            .to_owned(),
                    });
                }
                db.load_file(&file)?;
            }
        }
        if builtin {
            db.parse_as(BUILTIN_HSB, Path::new(BUILTIN_SOURCE), Format::Hsb)?;
        }
        Ok(db)
    }

    /// Reads one list file into the database (format by extension, as
    /// [`HashDb::parse_into`]).
    pub(crate) fn load_file(&mut self, file: &Path) -> Result<(), Error> {
        let bytes = fs::read(file).map_err(|source| Error::Read {
            path: file.to_owned(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|error| Error::HashList {
            path: file.to_owned(),
            line: utf8_error_line(&error),
            message: "not valid UTF-8".to_owned(),
        })?;
        self.parse_into(&text, file)
    }

    /// Parses one file's text into the database; the format comes from the file
    /// name's extension: `.hsb`/`.sfp` (ClamAV SHA-256), `.hdb`/`.fp` (ClamAV MD5),
    /// anything else a plain `<sha256> [name]` list. On error the database is
    /// unchanged.
    ///
    /// # Errors
    ///
    /// [`Error::HashList`] naming `source` and the 1-based line that is malformed.
    pub fn parse_into(&mut self, text: &str, source: &Path) -> Result<(), Error> {
        self.parse_as(text, source, Format::of(source))
    }

    fn parse_as(&mut self, text: &str, source: &Path, format: Format) -> Result<(), Error> {
        let error = |line: usize, message: String| Error::HashList {
            path: source.to_owned(),
            line,
            message,
        };
        let shared: Arc<Path> = source.into();
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Parse the whole file before touching the database, so a bad file leaves it
        // as it was.
        let mut parsed = Vec::new();
        for (index, line) in body.lines().enumerate() {
            if let Some(entry) = parse_line(format, line).map_err(|m| error(index + 1, m))? {
                parsed.push((entry, index + 1));
            }
        }
        let first = self.entries.len();
        let too_many = || error(0, "too many hash entries (more than 4294967295)".to_owned());
        let first_slot = u32::try_from(first).map_err(|_| too_many())?;
        u32::try_from(first + parsed.len()).map_err(|_| too_many())?;
        let count = parsed.len();
        // Slots stay below u32::MAX: the end was checked above.
        for ((entry, line), slot) in parsed.into_iter().zip(first_slot..) {
            let kind = match entry.digest {
                Digest::Sha256(digest) => {
                    self.sha256.push((digest, slot));
                    HashKind::Sha256
                }
                Digest::Md5(digest) => {
                    self.md5.push((digest, slot));
                    HashKind::Md5
                }
            };
            self.entries.push(HashEntry {
                name: entry.name.into_owned(),
                size: entry.size,
                kind,
                source: Arc::clone(&shared),
                line,
            });
        }
        // A stable sort keeps earlier entries first among equal digests; dedup keeps
        // the first of each run. The old part is already sorted, so this is cheap.
        self.sha256.sort_by_key(|pair| pair.0);
        self.sha256.dedup_by(|later, earlier| later.0 == earlier.0);
        self.md5.sort_by_key(|pair| pair.0);
        self.md5.dedup_by(|later, earlier| later.0 == earlier.0);
        let digest = hex::encode(Sha256::digest(text.as_bytes()));
        self.sources.push((source.to_owned(), digest, count));
        Ok(())
    }

    /// The entry for a SHA-256 digest, if listed and its size matches. Never allocates.
    pub fn lookup_sha256(&self, digest: &[u8; 32], size: u64) -> Option<&HashEntry> {
        let found = self
            .sha256
            .binary_search_by(|(key, _)| key.cmp(digest))
            .ok()?;
        self.entry(self.sha256[found].1, size)
    }

    /// The entry for an MD5 digest, if listed and its size matches. Never allocates.
    pub fn lookup_md5(&self, digest: &[u8; 16], size: u64) -> Option<&HashEntry> {
        let found = self.md5.binary_search_by(|(key, _)| key.cmp(digest)).ok()?;
        self.entry(self.md5[found].1, size)
    }

    /// The entry for a SHA-256 digest whatever its size condition (for comparing
    /// lists at load time, not for scanning).
    pub fn lookup_sha256_any_size(&self, digest: &[u8; 32]) -> Option<&HashEntry> {
        let found = self
            .sha256
            .binary_search_by(|(key, _)| key.cmp(digest))
            .ok()?;
        self.entries
            .get(usize::try_from(self.sha256[found].1).ok()?)
    }

    /// The entry for an MD5 digest whatever its size condition.
    pub fn lookup_md5_any_size(&self, digest: &[u8; 16]) -> Option<&HashEntry> {
        let found = self.md5.binary_search_by(|(key, _)| key.cmp(digest)).ok()?;
        self.entries.get(usize::try_from(self.md5[found].1).ok()?)
    }

    /// Every distinct SHA-256 digest with its (first) entry, in digest order.
    pub fn sha256_entries(&self) -> impl Iterator<Item = (&[u8; 32], &HashEntry)> {
        self.sha256.iter().filter_map(|(digest, slot)| {
            Some((digest, self.entries.get(usize::try_from(*slot).ok()?)?))
        })
    }

    /// Every distinct MD5 digest with its (first) entry, in digest order.
    pub fn md5_entries(&self) -> impl Iterator<Item = (&[u8; 16], &HashEntry)> {
        self.md5.iter().filter_map(|(digest, slot)| {
            Some((digest, self.entries.get(usize::try_from(*slot).ok()?)?))
        })
    }

    fn entry(&self, slot: u32, size: u64) -> Option<&HashEntry> {
        let entry = self.entries.get(usize::try_from(slot).ok()?)?;
        entry.size.is_none_or(|want| want == size).then_some(entry)
    }

    /// True iff any MD5 entry is loaded (the scanner can skip MD5 otherwise).
    pub fn needs_md5(&self) -> bool {
        !self.md5.is_empty()
    }

    /// Number of distinct digests loaded.
    pub fn len(&self) -> usize {
        self.sha256.len() + self.md5.len()
    }

    /// True if nothing is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every source in load order: its path ([`BUILTIN_SOURCE`] for the built-in
    /// signature), the SHA-256 hex of its bytes, and the number of entry lines in it
    /// (duplicates included).
    pub fn sources(&self) -> &[(PathBuf, String, usize)] {
        &self.sources
    }
}

/// Extensions of the files a content directory contributes. Content folders also
/// hold licences and READMEs; a file named explicitly is loaded whatever its name.
pub const LIST_EXTENSIONS: [&str; 6] = ["hsb", "hdb", "hsu", "hdu", "sha256", "sha256sum"];

/// A file as itself; a directory as its regular, non-hidden files whose extension
/// is one of `extensions` ([`LIST_EXTENSIONS`] for block lists), sorted by name.
pub(crate) fn expand(path: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, Error> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Read { path, source }
    };
    let metadata = fs::metadata(path).map_err(read_error(path))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).map_err(read_error(path))? {
        let entry = entry.map_err(read_error(path))?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let file = entry.path();
        let listed = file
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.iter().any(|l| l.eq_ignore_ascii_case(e)));
        // Follows symlinks: a list linked into the directory is still loaded.
        if listed && fs::metadata(&file).map_err(read_error(&file))?.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Md5;
    use std::time::Instant;

    fn sha256(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    fn md5(bytes: &[u8]) -> [u8; 16] {
        Md5::digest(bytes).into()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vigil-policy-hashdb-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn lookups_respect_size_and_kind() {
        let bad = b"not really malware";
        let other = b"harmless";
        let mut db = HashDb::empty();
        let hsb = format!(
            "# header\n{}:{}:Test.Sized:73\n{}:*:Test.Any\n",
            hex::encode(sha256(bad)),
            bad.len(),
            hex::encode(sha256(other)),
        );
        db.parse_into(&hsb, Path::new("/c/test.hsb")).unwrap();
        let hdb = format!("{}:*:Test.Md5\n", hex::encode_upper(md5(bad)));
        db.parse_into(&hdb, Path::new("/c/test.hdb")).unwrap();

        let size = bad.len() as u64;
        type Hit<'a> = Option<(&'a str, usize)>;
        let hit = |entry: Option<&HashEntry>| entry.map(|entry| (entry.name.clone(), entry.line));
        let cases: [(&str, _, Hit<'_>); 6] = [
            (
                "sized",
                hit(db.lookup_sha256(&sha256(bad), size)),
                Some(("Test.Sized", 2)),
            ),
            (
                "wrong size",
                hit(db.lookup_sha256(&sha256(bad), size + 1)),
                None,
            ),
            (
                "any size",
                hit(db.lookup_sha256(&sha256(other), 12345)),
                Some(("Test.Any", 3)),
            ),
            (
                "not listed",
                hit(db.lookup_sha256(&sha256(b"clean"), 5)),
                None,
            ),
            (
                "md5",
                hit(db.lookup_md5(&md5(bad), 999)),
                Some(("Test.Md5", 1)),
            ),
            ("md5 not listed", hit(db.lookup_md5(&md5(other), 8)), None),
        ];
        for (label, got, want) in cases {
            let got = got.as_ref().map(|(name, line)| (name.as_str(), *line));
            assert_eq!(got, want, "{label}");
        }
        let hit = db.lookup_md5(&md5(bad), 1).unwrap();
        assert_eq!(hit.kind, HashKind::Md5);
        assert_eq!(&*hit.source, Path::new("/c/test.hdb"));
        assert!(db.needs_md5());
        assert_eq!(db.len(), 3);
        assert_eq!(db.sources().len(), 2);
        assert_eq!(db.sources()[0].1, hex::encode(sha256(hsb.as_bytes())));
        assert_eq!(db.sources()[0].2, 2);
    }

    #[test]
    fn duplicates_keep_the_first() {
        let digest = hex::encode(sha256(b"x"));
        let mut db = HashDb::empty();
        db.parse_into(
            &format!("{digest} first\n{digest} second\n"),
            Path::new("a.txt"),
        )
        .unwrap();
        db.parse_into(
            &format!("{}  third\n", digest.to_uppercase()),
            Path::new("b.txt"),
        )
        .unwrap();
        assert_eq!(db.len(), 1);
        assert_eq!(db.lookup_sha256(&sha256(b"x"), 1).unwrap().name, "first");
        assert!(!db.needs_md5());
    }

    #[test]
    fn bad_file_names_line_and_leaves_db_unchanged() {
        let good = hex::encode(sha256(b"y"));
        let mut db = HashDb::empty();
        let text = format!("{good}:*:Good\n\n{}:*:Bad\n", &good[..63]);
        let error = db.parse_into(&text, Path::new("/c/bad.hsb")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/c/bad.hsb:3: expected 64 hex digits for a SHA-256, found 63 characters"
        );
        assert!(db.is_empty());
        assert!(db.sources().is_empty());
    }

    #[test]
    fn builtin_signature() {
        let with = HashDb::load(&[], true).unwrap();
        let digest: [u8; 32] = hex::decode(&BUILTIN_HSB[..64]).unwrap().try_into().unwrap();
        let entry = with.lookup_sha256(&digest, 68).unwrap();
        assert_eq!(entry.name, "EICAR-Test-File");
        assert_eq!(&*entry.source, Path::new(BUILTIN_SOURCE));
        assert!(with.lookup_sha256(&digest, 69).is_none());
        assert_eq!(with.sources()[0].0, Path::new(BUILTIN_SOURCE));
        assert!(HashDb::load(&[], false).unwrap().is_empty());
    }

    #[test]
    fn load_expands_directories() {
        let dir = scratch("dir");
        let lists = dir.join("lists");
        fs::create_dir(&lists).unwrap();
        let line = |bytes: &[u8], name: &str| format!("{} {name}\n", hex::encode(sha256(bytes)));
        fs::write(lists.join("b.sha256"), line(b"b", "B")).unwrap();
        fs::write(lists.join("a.sha256"), line(b"a", "A")).unwrap();
        fs::write(lists.join(".hidden.sha256"), "garbage").unwrap();
        fs::write(lists.join("LICENSE.txt"), "not a hash list").unwrap();
        fs::create_dir(lists.join("sub")).unwrap();
        fs::write(lists.join("sub/c.sha256"), line(b"c", "C")).unwrap();
        let single = dir.join("single.sha256");
        fs::write(&single, line(b"d", "D")).unwrap();

        let db = HashDb::load(&[lists.clone(), single.clone()], false).unwrap();
        let names: Vec<&Path> = db
            .sources()
            .iter()
            .map(|(path, _, _)| path.as_path())
            .collect();
        assert_eq!(
            names,
            [
                lists.join("a.sha256"),
                lists.join("b.sha256"),
                single.clone()
            ]
        );
        assert!(db.lookup_sha256(&sha256(b"c"), 1).is_none());
        assert_eq!(db.lookup_sha256(&sha256(b"d"), 1).unwrap().name, "D");

        let latin1 = dir.join("latin1.txt");
        let mut bytes = line(b"e", "E").into_bytes();
        bytes.extend_from_slice(b"# caf\xe9\n");
        fs::write(&latin1, bytes).unwrap();
        let error = HashDb::load(std::slice::from_ref(&latin1), false).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{}:2: not valid UTF-8", latin1.display())
        );

        let missing = dir.join("missing.hsb");
        let error = HashDb::load(std::slice::from_ref(&missing), false).unwrap_err();
        assert!(
            matches!(&error, Error::Read { path, .. } if *path == missing),
            "{error}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Loads the real ClamAV-format lists from the shared content directory when
    /// present (they are not part of the repository) and prints the load time.
    #[test]
    fn real_hsb_files_load() {
        let dir = Path::new("/work/shared/content/hashes");
        let files = [dir.join("eset.hsb"), dir.join("elastic.hsb")];
        if !files.iter().all(|file| file.is_file()) {
            println!("skipped: {} not present", dir.display());
            return;
        }
        for file in &files {
            let start = Instant::now();
            let db = HashDb::load(std::slice::from_ref(file), false).unwrap();
            println!(
                "{}: {} entries ({} lines) in {:?}",
                file.display(),
                db.len(),
                db.sources()[0].2,
                start.elapsed()
            );
            assert!(db.len() > 1000);
        }
        let start = Instant::now();
        let db = HashDb::load(&files, true).unwrap();
        println!(
            "both + builtin: {} entries in {:?}",
            db.len(),
            start.elapsed()
        );
    }
}
