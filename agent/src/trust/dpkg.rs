//! dpkg's part of a trust store build: `status` and `info/<package>.md5sums`.
//!
//! Owns: finding each installed package's md5sums list, its fingerprint (the
//! list's size, mtime and inode: dpkg replaces lists by rename), and queueing
//! its files with their MD5. Must not own: the parsers (`vigil_policy::trust`)
//! or the hashing (`super`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use vigil_policy::trust::dpkg::{DpkgPackage, parse_dpkg_database, parse_md5sums};
use vigil_policy::trust::rpm::DigestAlgo;
use vigil_policy::trust::{Fingerprint, PackageManager, PackageRecord};

use super::{Build, BuildOptions};

/// Adds dpkg's installed packages (those in `opts.only`, when given) to
/// `build`, pushing their names onto `found`. Returns false when `opts.admin`
/// has no `status` file (no dpkg on this machine).
///
/// # Errors
/// An unreadable `status` file or md5sums list, or a malformed list.
pub(super) fn read(
    opts: &BuildOptions,
    build: &mut Build<'_>,
    found: &mut Vec<String>,
) -> anyhow::Result<bool> {
    let status_path = opts.admin.join("status");
    let status = match std::fs::read_to_string(&status_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("{}: cannot read dpkg status", status_path.display()));
        }
    };
    build.manager(PackageManager::Dpkg).database = opts.admin.clone();
    let updates = journal(&opts.admin)?;
    let mut packages = parse_dpkg_database(&status, &updates);
    if !opts.only.is_empty() {
        packages.retain(|p| opts.only.contains(&p.name));
    }
    for package in &packages {
        found.push(package.name.clone());
        let (name, list) = md5sums_of(&opts.admin, package);
        let fingerprint = list
            .as_ref()
            .and_then(|l| std::fs::metadata(l).ok())
            .map(|md| Fingerprint {
                size: md.len(),
                mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
                inode: md.ino(),
            })
            .unwrap_or_default();
        let Some(index) = build.add_package(PackageRecord {
            manager: PackageManager::Dpkg,
            name,
            version: package.version.clone(),
            fingerprint,
        }) else {
            continue; // unchanged: entries kept
        };
        let Some(list) = list else {
            continue; // a package without md5sums (metapackages): no files to trust
        };
        let text =
            std::fs::read(&list).with_context(|| format!("{}: cannot read", list.display()))?;
        for (md5, rel) in parse_md5sums(&text, &list)? {
            build.add_file(index, rel, DigestAlgo::Md5, &md5);
        }
    }
    Ok(true)
}

/// The contents of dpkg's journal (`updates/<number>`), oldest first: the
/// changes of a dpkg run not yet folded into `status` (a file trigger runs
/// before dpkg's final checkpoint).
///
/// # Errors
/// A journal file that cannot be read (one dpkg folded and removed meanwhile
/// is skipped).
fn journal(admin: &Path) -> anyhow::Result<Vec<String>> {
    let dir = admin.join("updates");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot list", dir.display())),
    };
    let mut numbered: Vec<(u64, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("{}: cannot list", dir.display()))?;
        // Only all-digit names: `tmp.i` is an entry dpkg is still writing.
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        numbered.push((number, entry.path()));
    }
    numbered.sort();
    let mut out = Vec::with_capacity(numbered.len());
    for (_, path) in numbered {
        match std::fs::read_to_string(&path) {
            Ok(text) => out.push(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
        }
    }
    Ok(out)
}

/// The md5sums list of `package` and the name dpkg gives it (`name:arch` for
/// multi-arch packages).
fn md5sums_of(admin: &Path, package: &DpkgPackage) -> (String, Option<PathBuf>) {
    for name in package.info_names() {
        let list = admin.join("info").join(format!("{name}.md5sums"));
        if list.is_file() {
            return (name, Some(list));
        }
    }
    (package.name.clone(), None)
}
