//! rpm's part of a trust store build, read through the `rpm` program.
//!
//! Owns: finding rpm's database under the root, running `rpm -qa` with
//! `vigil_policy::trust::rpm::QUERY_FORMAT`, and queueing each package's
//! regular files with rpm's digest. Must not own: the query format and its
//! parser (`vigil_policy::trust::rpm`) or the hashing (`super`).
//!
//! rpm names its database directory inside `--root` (`rpm --root /mnt --dbpath
//! /var/lib/rpm` reads `/mnt/var/lib/rpm`), and so does `BuildOptions::rpm_dbpath`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use vigil_policy::trust::rpm::{DigestAlgo, QUERY_FORMAT, parse_query};
use vigil_policy::trust::{PackageManager, PackageRecord};

use super::{Build, BuildOptions};

/// Where rpm keeps its database, newest layout first (Fedora 36+ and openSUSE
/// moved it to `/usr`, leaving `/var/lib/rpm` a symlink; RHEL 8/9 keep it there).
pub const DB_CANDIDATES: [&str; 2] = ["/usr/lib/sysimage/rpm", "/var/lib/rpm"];
/// A database directory holds one of these (SQLite, Berkeley DB, NDB backends).
const DB_FILES: [&str; 3] = ["rpmdb.sqlite", "Packages", "Packages.db"];

/// The database directory (as rpm's `--dbpath`, inside `root`) a build reads:
/// `configured` when given, else the first of [`DB_CANDIDATES`] holding a
/// database. `None` when there is none (no rpm on this machine; Debian's own
/// `rpm` package keeps its database in the user's home).
///
/// # Errors
/// When `configured` holds no database.
pub fn find_db(root: &Path, configured: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    let has_db = |dbpath: &Path| {
        let dir = root.join(dbpath.strip_prefix("/").unwrap_or(dbpath));
        DB_FILES.iter().any(|f| dir.join(f).is_file())
    };
    if let Some(dbpath) = configured {
        if !has_db(dbpath) {
            anyhow::bail!(
                "{}: no rpm database (none of {}) under root {}",
                dbpath.display(),
                DB_FILES.join(", "),
                root.display()
            );
        }
        return Ok(Some(dbpath.to_path_buf()));
    }
    Ok(DB_CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| has_db(p))
        .map(Path::to_path_buf))
}

/// Adds rpm's installed packages (those in `opts.only`, when given) to `build`,
/// pushing their names onto `found`. Returns false when there is no rpm
/// database, or (with a warning in the report) no `rpm` program to read it.
///
/// # Errors
/// A configured database that is not one, an `rpm` that fails, or output
/// [`parse_query`] refuses.
pub(super) fn read(
    opts: &BuildOptions,
    build: &mut Build<'_>,
    found: &mut Vec<String>,
) -> anyhow::Result<bool> {
    let Some(dbpath) = find_db(&opts.root, opts.rpm_dbpath.as_deref())? else {
        return Ok(false);
    };
    let mut command = Command::new(&opts.rpm_program);
    command.arg("-qa").arg("--dbpath").arg(&dbpath);
    let mut origin = format!("rpm -qa --dbpath {}", dbpath.display());
    if opts.root != Path::new("/") {
        command.arg("--root").arg(&opts.root);
        origin.push_str(&format!(" --root {}", opts.root.display()));
    }
    command
        .arg("--queryformat")
        .arg(QUERY_FORMAT)
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    let output = match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            build.report.warnings.push(format!(
                "rpm database {} found but no `{}` program to read it: rpm packages left out \
                 (install rpm)",
                opts.root
                    .join(dbpath.strip_prefix("/").unwrap_or(&dbpath))
                    .display(),
                opts.rpm_program.display()
            ));
            return Ok(false);
        }
        Err(e) => anyhow::bail!("{origin}: cannot run {}: {e}", opts.rpm_program.display()),
    };
    if !output.status.success() {
        anyhow::bail!(
            "{origin}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let report = build.manager(PackageManager::Rpm);
    report.database = opts.root.join(dbpath.strip_prefix("/").unwrap_or(&dbpath));
    let mut unchecked: BTreeMap<String, usize> = BTreeMap::new();
    for package in parse_query(&output.stdout, &origin)? {
        if !opts.only.is_empty() && !opts.only.contains(&package.name) {
            continue;
        }
        found.push(package.name.clone());
        let algo = match package.algo {
            Ok(DigestAlgo::Sha1) => Err("sha1".to_owned()),
            Ok(algo) => Ok(algo),
            Err(id) => Err(format!("algorithm {id}")),
        };
        let mut skipped = package.files_skipped;
        if let Err(name) = &algo {
            skipped += package.files.len();
            *unchecked.entry(name.clone()).or_default() += 1;
        }
        build.manager(PackageManager::Rpm).files_skipped += skipped;
        let Some(index) = build.add_package(PackageRecord {
            manager: PackageManager::Rpm,
            name: package.name.clone(),
            version: package.evra(),
            fingerprint: package.fingerprint(),
        }) else {
            continue; // unchanged: entries kept
        };
        let Ok(algo) = algo else { continue };
        for file in &package.files {
            build.add_file(index, file.rel, algo, &file.digest);
        }
    }
    for (algo, packages) in unchecked {
        build.report.warnings.push(format!(
            "{packages} rpm package(s) with file digests in {algo}, which vigil does not \
             check: their files are not trusted"
        ));
    }
    Ok(true)
}
