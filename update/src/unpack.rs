//! Unpacking an archive into a fresh staging directory, refusing anything that
//! could write outside it or exhaust the disk.
//!
//! Owns: reading `.tar.gz`/`.tgz`/`.tar` and `.zip` archives from memory; the
//! checks on every member (no absolute path, no `..`, no symbolic or hard link,
//! no device or FIFO; a member count and an unpacked-size limit counted on the
//! bytes actually written, not on what headers claim); and writing the kept
//! members. Must not own: which members a source keeps (the caller's `keep`) or
//! what they mean.
//!
//! Two passes over the archive: the first checks every member and learns
//! whether all paths share one top-level directory (GitHub's archives put
//! everything under `<repo>-<ref>/`), the second writes. A bad member anywhere
//! refuses the whole archive, before anything is written.

use std::fs::{self, OpenOptions};
use std::io::{self, Cursor, Read, Write};
use std::path::{Component, Path, PathBuf};

/// Limits on one archive.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most members (directories included).
    pub max_files: u64,
    /// Most bytes written in all.
    pub max_bytes: u64,
}

/// What went wrong, and with which member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackError {
    /// The member at fault, if one is.
    pub member: Option<String>,
    /// What is wrong.
    pub message: String,
}

fn whole(message: impl Into<String>) -> UnpackError {
    UnpackError {
        member: None,
        message: message.into(),
    }
}

fn at(member: &str, message: impl Into<String>) -> UnpackError {
    UnpackError {
        member: Some(member.to_owned()),
        message: message.into(),
    }
}

/// The archive kinds, by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TarGz,
    Tar,
    Zip,
}

fn kind_of(bytes: &[u8]) -> Result<Kind, UnpackError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        Ok(Kind::TarGz)
    } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        Ok(Kind::Zip)
    } else if bytes.get(257..262) == Some(b"ustar") {
        Ok(Kind::Tar)
    } else {
        Err(whole(
            "not a .tar.gz, .tar or .zip archive (unknown first bytes)",
        ))
    }
}

/// One member as the first pass saw it.
#[derive(Debug, Clone)]
struct Member {
    /// The checked relative path.
    path: PathBuf,
    is_dir: bool,
}

/// Unpacks the members of `bytes` for which `keep(relative path)` is true into
/// `into` (which must exist and be empty), where the relative path has the
/// archive's single top-level directory removed if it has one and `strip_top`
/// is set. Returns the relative paths written.
///
/// # Errors
///
/// The archive is damaged or truncated, a member is unsafe (absolute, `..`,
/// a link, a device), a limit is passed, or writing fails.
pub fn unpack(
    bytes: &[u8],
    into: &Path,
    limits: Limits,
    strip_top: bool,
    keep: &dyn Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, UnpackError> {
    let kind = kind_of(bytes)?;
    let members = match kind {
        Kind::TarGz | Kind::Tar => tar_members(bytes, kind, limits)?,
        Kind::Zip => zip_members(bytes, limits)?,
    };
    let strip = if strip_top {
        single_top(&members)
    } else {
        None
    };
    let target = |path: &Path| -> Option<PathBuf> {
        let relative = match &strip {
            Some(top) => path.strip_prefix(top).ok()?.to_path_buf(),
            None => path.to_path_buf(),
        };
        (!relative.as_os_str().is_empty() && keep(&relative)).then_some(relative)
    };
    let mut written = Vec::new();
    let mut budget = limits.max_bytes;
    let mut write = |path: &Path, reader: &mut dyn Read| -> Result<(), UnpackError> {
        let name = path.display().to_string();
        let Some(relative) = target(path) else {
            return Ok(());
        };
        let destination = into.join(&relative);
        if let Some(parent) = destination.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| at(&name, format!("cannot create its directory: {e}")))?;
        }
        // create_new: never follows or replaces anything already there.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&destination)
            .map_err(|e| {
                at(
                    &name,
                    format!("cannot create {}: {e}", destination.display()),
                )
            })?;
        let copied = io::copy(&mut reader.take(budget + 1), &mut file)
            .map_err(|e| at(&name, format!("damaged or truncated: {e}")))?;
        if copied > budget {
            return Err(at(
                &name,
                format!(
                    "unpacks to more than update.max_unpacked_size ({} bytes)",
                    limits.max_bytes
                ),
            ));
        }
        budget -= copied;
        file.flush()
            .map_err(|e| at(&name, format!("cannot write: {e}")))?;
        written.push(relative);
        Ok(())
    };
    match kind {
        Kind::TarGz | Kind::Tar => {
            let mut archive = tar::Archive::new(tar_reader(bytes, kind));
            let entries = archive
                .entries()
                .map_err(|e| whole(format!("damaged tar: {e}")))?;
            for entry in entries {
                let mut entry =
                    entry.map_err(|e| whole(format!("damaged or truncated archive: {e}")))?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let path = checked_path(&entry.path_bytes())?;
                write(&path, &mut entry)?;
            }
        }
        Kind::Zip => {
            let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
                .map_err(|e| whole(format!("damaged zip: {e}")))?;
            for index in 0..archive.len() {
                let mut file = archive
                    .by_index(index)
                    .map_err(|e| whole(format!("damaged zip: {e}")))?;
                if file.is_dir() {
                    continue;
                }
                let path = checked_path(file.name_raw())?;
                write(&path, &mut file)?;
            }
        }
    }
    Ok(written)
}

fn tar_reader(bytes: &[u8], kind: Kind) -> Box<dyn Read + '_> {
    match kind {
        Kind::TarGz => Box::new(flate2::read::GzDecoder::new(bytes)),
        Kind::Tar | Kind::Zip => Box::new(bytes),
    }
}

/// First pass over a tar: every member checked, the whole stream read (so a
/// truncated archive fails here, before anything is written).
fn tar_members(bytes: &[u8], kind: Kind, limits: Limits) -> Result<Vec<Member>, UnpackError> {
    let mut archive = tar::Archive::new(tar_reader(bytes, kind));
    let entries = archive
        .entries()
        .map_err(|e| whole(format!("damaged tar: {e}")))?;
    let mut members = Vec::new();
    let mut total = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| whole(format!("damaged or truncated archive: {e}")))?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        use tar::EntryType as T;
        let is_dir = match kind {
            T::Regular | T::Continuous => false,
            T::Directory => true,
            // pax headers (GitHub puts the commit id in a global one).
            T::XGlobalHeader | T::XHeader => continue,
            T::Symlink | T::Link => {
                return Err(at(&name, "links are not allowed in content archives"));
            }
            other => {
                return Err(at(
                    &name,
                    format!("member type {other:?} is not allowed (only files and directories)"),
                ));
            }
        };
        let path = checked_path(&raw)?;
        members.push(Member { path, is_dir });
        if members.len() as u64 > limits.max_files {
            return Err(whole(format!(
                "more than update.max_files ({}) members",
                limits.max_files
            )));
        }
        // Read the data: a truncated stream fails here, and the size counts.
        total += io::copy(&mut entry, &mut io::sink())
            .map_err(|e| at(&name, format!("damaged or truncated: {e}")))?;
        if total > limits.max_bytes {
            return Err(whole(format!(
                "unpacks to more than update.max_unpacked_size ({} bytes)",
                limits.max_bytes
            )));
        }
    }
    if members.is_empty() {
        return Err(whole("the archive is empty"));
    }
    Ok(members)
}

/// First pass over a zip.
fn zip_members(bytes: &[u8], limits: Limits) -> Result<Vec<Member>, UnpackError> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| whole(format!("damaged zip: {e}")))?;
    if archive.len() as u64 > limits.max_files {
        return Err(whole(format!(
            "more than update.max_files ({}) members",
            limits.max_files
        )));
    }
    let mut members = Vec::new();
    let mut total = 0u64;
    for index in 0..archive.len() {
        let mut file = archive
            .by_index(index)
            .map_err(|e| whole(format!("damaged zip: {e}")))?;
        let name = String::from_utf8_lossy(file.name_raw()).into_owned();
        if file.is_symlink() {
            return Err(at(&name, "links are not allowed in content archives"));
        }
        let path = checked_path(file.name_raw())?;
        let is_dir = file.is_dir();
        total += io::copy(&mut file, &mut io::sink())
            .map_err(|e| at(&name, format!("damaged or truncated: {e}")))?;
        if total > limits.max_bytes {
            return Err(whole(format!(
                "unpacks to more than update.max_unpacked_size ({} bytes)",
                limits.max_bytes
            )));
        }
        members.push(Member { path, is_dir });
    }
    if members.is_empty() {
        return Err(whole("the archive is empty"));
    }
    Ok(members)
}

/// A member path as a safe relative path: UTF-8, not absolute, no `..`, no
/// empty or `.` components kept.
fn checked_path(raw: &[u8]) -> Result<PathBuf, UnpackError> {
    let name = String::from_utf8_lossy(raw).into_owned();
    let text = std::str::from_utf8(raw).map_err(|_| at(&name, "member name is not UTF-8"))?;
    let path = Path::new(text);
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(at(&name, "member path contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(at(&name, "member path is absolute"));
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(at(&name, "member path is empty"));
    }
    Ok(clean)
}

/// The one top-level directory every member is under, if there is one and at
/// least one member is below it.
fn single_top(members: &[Member]) -> Option<PathBuf> {
    let mut top: Option<&std::ffi::OsStr> = None;
    let mut below = false;
    for member in members {
        let mut parts = member.path.components();
        let first = parts.next()?.as_os_str();
        match top {
            None => top = Some(first),
            Some(t) if t == first => {}
            Some(_) => return None,
        }
        let deeper = parts.next().is_some();
        if !deeper && !member.is_dir {
            // A file at the top level: there is no single directory to strip.
            return None;
        }
        below |= deeper;
    }
    below.then(|| PathBuf::from(top.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(members: &[(&str, &[u8], tar::EntryType)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes, kind) in members {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            // Write the name raw: the tar crate refuses `..` through set_path.
            let field = &mut header.as_old_mut().name;
            field[..name.len()].copy_from_slice(name.as_bytes());
            if *kind == tar::EntryType::Symlink {
                header.set_link_name("/etc/passwd").unwrap();
            }
            header.set_cksum();
            builder.append(&header, *bytes).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-unpack-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    const LIMITS: Limits = Limits {
        max_files: 100,
        max_bytes: 1 << 20,
    };
    const FILE: tar::EntryType = tar::EntryType::Regular;

    #[test]
    fn github_style_archive_strips_top_and_filters() {
        let dir = scratch("github");
        let archive = tar_gz(&[
            ("repo-abc/", b"", tar::EntryType::Directory),
            (
                "repo-abc/yara/rules/Linux_A.yar",
                b"rule a { condition: true }",
                FILE,
            ),
            (
                "repo-abc/yara/rules/Windows_B.yar",
                b"rule b { condition: true }",
                FILE,
            ),
            ("repo-abc/README.md", b"readme", FILE),
        ]);
        let keep = |p: &Path| p.starts_with("yara/rules") && p.to_string_lossy().contains("Linux_");
        let written = unpack(&archive, &dir, LIMITS, true, &keep).unwrap();
        assert_eq!(written, [PathBuf::from("yara/rules/Linux_A.yar")]);
        assert!(dir.join("yara/rules/Linux_A.yar").is_file());
        assert!(!dir.join("README.md").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unsafe_or_damaged_archives_are_refused_before_writing() {
        let all = |_: &Path| true;
        let good = tar_gz(&[("a.yar", b"x", FILE), ("b.yar", b"y", FILE)]);
        let cases: Vec<(&str, Vec<u8>, Limits, &str)> = vec![
            (
                "dotdot",
                tar_gz(&[("ok.yar", b"x", FILE), ("../evil.yar", b"x", FILE)]),
                LIMITS,
                "member \"../evil.yar\": member path contains `..`",
            ),
            (
                "absolute",
                tar_gz(&[("/etc/evil.yar", b"x", FILE)]),
                LIMITS,
                "member path is absolute",
            ),
            (
                "symlink",
                tar_gz(&[
                    ("ok.yar", b"x", FILE),
                    ("link.yar", b"", tar::EntryType::Symlink),
                ]),
                LIMITS,
                "links are not allowed",
            ),
            (
                "device",
                tar_gz(&[("dev", b"", tar::EntryType::Char)]),
                LIMITS,
                "is not allowed",
            ),
            (
                "truncated",
                good[..good.len() / 2].to_vec(),
                LIMITS,
                "truncated",
            ),
            (
                "too many",
                good.clone(),
                Limits {
                    max_files: 1,
                    max_bytes: 100,
                },
                "more than update.max_files (1)",
            ),
            (
                "too big",
                good.clone(),
                Limits {
                    max_files: 10,
                    max_bytes: 1,
                },
                "more than update.max_unpacked_size (1 bytes)",
            ),
            (
                "not an archive",
                b"hello world".to_vec(),
                LIMITS,
                "not a .tar.gz",
            ),
        ];
        for (label, bytes, limits, want) in cases {
            let dir = scratch(&label.replace(' ', "-"));
            let error = unpack(&bytes, &dir, limits, true, &all).unwrap_err();
            let text = match &error.member {
                Some(m) => format!("member {m:?}: {}", error.message),
                None => error.message.clone(),
            };
            assert!(text.contains(want), "{label}: {text}");
            assert_eq!(
                fs::read_dir(&dir).unwrap().count(),
                0,
                "{label}: wrote something"
            );
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn zip_archives_unpack_and_refuse_dotdot() {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("top/rules/a.yar", options).unwrap();
        zip.write_all(b"rule a { condition: true }").unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        let dir = scratch("zip");
        let written = unpack(&bytes, &dir, LIMITS, true, &|_| true).unwrap();
        assert_eq!(written, [PathBuf::from("rules/a.yar")]);
        fs::remove_dir_all(&dir).unwrap();

        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.start_file("../evil.yar", options).unwrap();
        zip.write_all(b"x").unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        let dir = scratch("zip-evil");
        let error = unpack(&bytes, &dir, LIMITS, true, &|_| true).unwrap_err();
        assert!(error.message.contains(".."), "{error:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
