//! dpkg's part of a trust store build: `status` and `info/<package>.md5sums`.
//!
//! Owns: finding each installed package's md5sums list, its fingerprint (the
//! list's size, mtime and inode: dpkg replaces lists by rename), and queueing
//! its files with their MD5. Must not own: the parsers (`vigil_policy::trust`)
//! or the hashing (`super`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use vigil_policy::trust::rpm::DigestAlgo;
use vigil_policy::trust::{
    DpkgPackage, Fingerprint, PackageManager, PackageRecord, parse_dpkg_status, parse_md5sums,
};

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
    let mut packages = parse_dpkg_status(&status);
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
