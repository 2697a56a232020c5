//! ClamAV's whole-file hash databases, read from freshclam's directory.
//!
//! Owns: choosing the files of a database directory (`content.clamav_db`):
//! `.cvd`/`.cld` containers (of two with the same name, the higher version, as
//! clamd does) and loose `.hdb`/`.hsb`/`.hdu`/`.hsu` lists; parsing their hash
//! lines into the compact [`index`] (digest prefixes in memory, records and
//! names in an unlinked scratch file); and the [`Fingerprint`] of the directory
//! by which the agent notices that freshclam replaced a file. Must not own: the
//! agent's polling or reloading, or any other signature type (ClamAV's body,
//! logical and bytecode signatures are not vigil's business).
//!
//! Lines a ClamAV database may hold that vigil does not use are skipped and
//! counted, not refused: SHA-1 entries in `.hsb` files. Any other malformed line
//! fails the load with the file, member and line, like every content error.
//!
//! ```
//! use vigil_policy::ClamDb;
//! let dir = std::env::temp_dir().join(format!("clamdb-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! std::fs::write(dir.join("local.hdb"), "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n")?;
//! // The scratch file holding the records goes to the first usable directory.
//! let db = ClamDb::load(&dir, &[std::env::temp_dir().as_path()])?;
//! let md5: [u8; 16] = hex::decode("44d88612fea8a8f36de82e1278abb02f").unwrap().try_into().unwrap();
//! let hit = db.lookup_md5(&md5, 68).map(|hit| hit.name.to_string());
//! assert_eq!(hit.as_deref(), Some("Eicar-Test-Signature"));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod build;
pub mod container;
pub mod index;
pub mod names;
pub mod scratch;

use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::Error;
use crate::hashdb::parse::{Digest, Format, parse_line};
use build::Builder;
pub use index::ClamHit;
use index::Index;
pub use names::Name;

/// Extensions of the hash lists read, loose or inside a container.
pub const HASH_EXTENSIONS: [&str; 4] = ["hdb", "hsb", "hdu", "hsu"];
/// Extensions of the containers.
pub const CONTAINER_EXTENSIONS: [&str; 2] = ["cvd", "cld"];

/// One file of the directory as last seen: name, inode, size, modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    /// The file.
    pub path: PathBuf,
    /// Its inode (freshclam replaces files by rename: a new inode).
    pub inode: u64,
    /// Its size.
    pub size: u64,
    /// Its modification time.
    pub modified: Option<SystemTime>,
}

/// The files a load read, in order; equal fingerprints mean nothing changed.
pub type Fingerprint = Vec<FileStamp>;

/// What one loaded file contributed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClamSource {
    /// The file.
    pub path: PathBuf,
    /// The container's version (`None` for a loose list).
    pub version: Option<u64>,
    /// Entry lines read (duplicates included).
    pub entries: usize,
    /// SHA-1 lines skipped.
    pub skipped: usize,
}

/// A loaded ClamAV database directory. Lookups never allocate; a miss makes
/// no syscall. Clones share the scratch file.
#[derive(Debug, Clone, Default)]
pub struct ClamDb {
    dir: Option<PathBuf>,
    index: Index,
    sources: Vec<ClamSource>,
    fingerprint: Fingerprint,
}

impl ClamDb {
    /// No database (`content.clamav_db` unset).
    pub fn empty() -> ClamDb {
        ClamDb::default()
    }

    /// Loads every hash list of the directory `dir`. The records and names go
    /// to an unlinked scratch file in the first of `scratch_dirs` where one can
    /// be created (a missing directory is created, mode 0700); the file lives
    /// as long as this database and its clones.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] if the directory or a file cannot be read;
    /// [`Error::ClamAv`] naming the file (and member and line) that is damaged or
    /// malformed; [`Error::ClamAvScratch`] naming each directory tried if no
    /// scratch file can be created, or the one that failed if it cannot be
    /// written. Nothing partial is returned.
    pub fn load(dir: &Path, scratch_dirs: &[&Path]) -> Result<ClamDb, Error> {
        let files = database_files(dir)?;
        let mut builder = Builder::new(dir, scratch_dirs)?;
        let mut sources = Vec::with_capacity(files.len());
        for file in &files {
            sources.push(load_file(&mut builder, &file.path)?);
        }
        Ok(ClamDb {
            dir: Some(dir.to_owned()),
            index: builder.finish()?,
            sources,
            fingerprint: files,
        })
    }

    /// The fingerprint of the files `load` would read from `dir` now.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] if the directory cannot be listed.
    pub fn fingerprint_of(dir: &Path) -> Result<Fingerprint, Error> {
        database_files(dir)
    }

    /// The directory loaded, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The fingerprint of the files this database was loaded from.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The entry for an MD5 digest, if listed for this size. Never allocates.
    pub fn lookup_md5(&self, digest: &[u8; 16], size: u64) -> Option<ClamHit<'_>> {
        self.index.lookup_md5(digest, size)
    }

    /// The entry for a SHA-256 digest, if listed for this size. Never allocates.
    pub fn lookup_sha256(&self, digest: &[u8; 32], size: u64) -> Option<ClamHit<'_>> {
        self.index.lookup_sha256(digest, size)
    }

    /// True iff any MD5 entry is loaded.
    pub fn needs_md5(&self) -> bool {
        self.index.md5_len() > 0
    }

    /// Distinct digests loaded.
    pub fn len(&self) -> usize {
        self.index.md5_len() + self.index.sha256_len()
    }

    /// True if nothing is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What each file contributed, in load order.
    pub fn sources(&self) -> &[ClamSource] {
        &self.sources
    }

    /// Bytes the index holds in memory (prefixes, families, origins).
    pub fn heap_bytes(&self) -> usize {
        self.index.heap_bytes()
    }

    /// The scratch file's size in bytes and the directory it was created in
    /// (`None` for [`ClamDb::empty`]).
    pub fn scratch(&self) -> Option<(u64, &Path)> {
        self.index.scratch()
    }
}

/// The files of `dir` to load, sorted by name: containers (the higher version of
/// a `.cvd`/`.cld` pair) and loose hash lists; hidden files skipped.
fn database_files(dir: &Path) -> Result<Fingerprint, Error> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Read { path, source }
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_error(dir))? {
        let entry = entry.map_err(read_error(dir))?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let extension = extension_of(&path);
        let wanted = CONTAINER_EXTENSIONS
            .iter()
            .chain(&HASH_EXTENSIONS)
            .any(|e| *e == extension);
        if !wanted {
            continue;
        }
        let metadata = fs::metadata(&path).map_err(read_error(&path))?;
        if !metadata.is_file() {
            continue;
        }
        files.push(FileStamp {
            inode: std::os::unix::fs::MetadataExt::ino(&metadata),
            size: metadata.len(),
            modified: metadata.modified().ok(),
            path,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    // daily.cvd beside daily.cld: keep the higher version (clamd does the same).
    let mut keep = vec![true; files.len()];
    for (i, file) in files.iter().enumerate() {
        if extension_of(&file.path) != "cld" {
            continue;
        }
        let cvd = file.path.with_extension("cvd");
        if let Some(j) = files.iter().position(|f| f.path == cvd) {
            let version = |p: &Path| container::read_header(p).map(|h| h.version).unwrap_or(0);
            if version(&file.path) >= version(&cvd) {
                keep[j] = false;
            } else {
                keep[i] = false;
            }
        }
    }
    let mut keep = keep.into_iter();
    files.retain(|_| keep.next().unwrap_or(true));
    Ok(files)
}

/// The lowercase extension of a path, or "".
fn extension_of(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Loads one container or loose list into `builder`.
fn load_file(builder: &mut Builder, path: &Path) -> Result<ClamSource, Error> {
    let extension = extension_of(path);
    let error = |member: Option<String>, line: usize, message: String| Error::ClamAv {
        path: path.to_owned(),
        member,
        line,
        message,
    };
    let mut source = ClamSource {
        path: path.to_owned(),
        version: None,
        entries: 0,
        skipped: 0,
    };
    if CONTAINER_EXTENSIONS.contains(&extension.as_str()) {
        let header = container::read(path, extension == "cvd", |name, reader| {
            let format = match Path::new(name)
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("hdb" | "hdu") => Format::Hdb,
                Some("hsb" | "hsu") => Format::Hsb,
                _ => return Ok(()),
            };
            builder.begin(path, name).map_err(|e| (0, e.to_string()))?;
            let (entries, skipped) = load_lines(builder, reader, format)?;
            source.entries += entries;
            source.skipped += skipped;
            Ok(())
        })
        .map_err(|(member, line, message)| error(member, line, message))?;
        source.version = Some(header.version);
    } else {
        let file = fs::File::open(path).map_err(|e| Error::Read {
            path: path.to_owned(),
            source: e,
        })?;
        let format = match extension.as_str() {
            "hdb" | "hdu" => Format::Hdb,
            _ => Format::Hsb,
        };
        builder
            .begin(path, "")
            .map_err(|e| error(None, 0, e.to_string()))?;
        let mut reader = std::io::BufReader::new(file);
        let (entries, skipped) = load_lines(builder, &mut reader, format)
            .map_err(|(line, message)| error(None, line, message))?;
        source.entries = entries;
        source.skipped = skipped;
    }
    Ok(source)
}

/// Parses every line of one list, streaming (a list may be hundreds of MB).
/// Returns (entries, SHA-1 lines skipped).
fn load_lines(
    builder: &mut Builder,
    reader: &mut dyn BufRead,
    format: Format,
) -> Result<(usize, usize), (usize, String)> {
    let mut line = Vec::with_capacity(128);
    let (mut number, mut entries, mut skipped) = (0usize, 0usize, 0usize);
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| (number + 1, format!("cannot read: {e}")))?;
        if read == 0 {
            break;
        }
        number += 1;
        let text =
            std::str::from_utf8(&line).map_err(|_| (number, "not valid UTF-8".to_owned()))?;
        // ClamAV's .hsb lists may hold SHA-1 entries; vigil hashes with SHA-256
        // and MD5 only, so these can never match: skip them.
        if format == Format::Hsb && text.trim_start().split(':').next().map(str::len) == Some(40) {
            skipped += 1;
            continue;
        }
        let text = without_max_flevel(text);
        let Some(parsed) = parse_line(format, text).map_err(|m| (number, m))? else {
            continue;
        };
        let added = match parsed.digest {
            Digest::Md5(d) => builder.add_md5(d, parsed.size, &parsed.name),
            Digest::Sha256(d) => builder.add_sha256(d, parsed.size, &parsed.name),
        };
        added.map_err(|e| (number, e.to_string()))?;
        entries += 1;
    }
    Ok((entries, skipped))
}

/// `HASH:SIZE:NAME:MINFL:MAXFL` without its `:MAXFL`: ClamAV's hash lines may
/// bound the engine version from both sides; vigil only needs the hash, size
/// and name, and the line parser takes at most the minimum level.
fn without_max_flevel(line: &str) -> &str {
    let trimmed = line.trim_end();
    if trimmed.matches(':').count() != 4 {
        return line;
    }
    match trimmed.rsplit_once(':') {
        Some((head, max)) if !max.is_empty() && max.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => line,
    }
}

#[cfg(test)]
mod tests;
