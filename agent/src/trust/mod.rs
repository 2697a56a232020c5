//! Building the package trust store from the package managers' databases
//! (`vigil trust update`).
//!
//! Owns: the I/O of a build (reading dpkg's database in [`dpkg`] and rpm's
//! through the `rpm` program in [`rpm`], hashing each listed file once for the
//! package manager's digest and SHA-256 on every CPU, the atomic write of the
//! store), and the incremental update (a package whose version and file list
//! are unchanged keeps its entries without a rehash). Must not own: the store
//! format or the parsers of the databases (`vigil_policy::trust`), the CLI, the
//! upgrade window and `check`/`status` (`crate::cmd::trust`), or the daemon's use
//! of the store (it reloads it on `vigil reload`, which an update asks for).

pub mod dpkg;
pub mod rpm;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use md5::Md5;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use vigil_policy::trust::rpm::DigestAlgo;
use vigil_policy::trust::{Fingerprint, PackageManager, PackageRecord};
use vigil_policy::{Config, TrustEntry, TrustStore};

/// Read buffer per hashing thread.
const READ_CHUNK: usize = 256 * 1024;

/// Where a build reads from and writes to.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// dpkg's admin directory (`status`, `info/`); skipped when it has no
    /// `status` file.
    pub admin: PathBuf,
    /// The root the listed paths are relative to (and rpm's `--root`).
    pub root: PathBuf,
    /// rpm's database directory inside `root` (rpm's `--dbpath`); `None`: the
    /// first of [`rpm::DB_CANDIDATES`] that holds a database.
    pub rpm_dbpath: Option<PathBuf>,
    /// The `rpm` program (found in `PATH` when a bare name).
    pub rpm_program: PathBuf,
    /// The store file to write (and to reuse entries from).
    pub store: PathBuf,
    /// Only these packages (empty: all installed).
    pub only: Vec<String>,
    /// Ignore the previous store: rehash everything.
    pub full: bool,
}

impl BuildOptions {
    /// The options `config`'s `[policy]` table gives.
    pub fn from_config(config: &Config) -> BuildOptions {
        BuildOptions {
            admin: config.policy.dpkg_admin.clone(),
            root: config.policy.dpkg_root.clone(),
            rpm_dbpath: config.policy.rpm_dbpath.clone(),
            rpm_program: PathBuf::from("rpm"),
            store: config.policy.trust_db.clone(),
            only: Vec::new(),
            full: false,
        }
    }
}

/// What a build did with one package manager's packages.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ManagerReport {
    /// Where its database was read from.
    pub database: PathBuf,
    /// Its packages in the store.
    pub packages: usize,
    /// Of those, kept without a rehash.
    pub packages_reused: usize,
    /// Its files in the store.
    pub files: usize,
    /// Files read and hashed by this build.
    pub files_hashed: usize,
    /// Listed files whose content did not match the package manager's digest
    /// (left out: not trusted).
    pub digest_mismatches: usize,
    /// Listed files that are missing, not regular, or unreadable (left out).
    pub unreadable: usize,
    /// Listed regular files not checked: rpm's `%ghost` files, files rpm did
    /// not install, and files whose digest algorithm vigil does not check.
    pub files_skipped: usize,
}

/// What a build did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct BuildReport {
    /// Packages in the store.
    pub packages: usize,
    /// Packages whose entries were kept without a rehash.
    pub packages_reused: usize,
    /// Files in the store.
    pub files: usize,
    /// Files read and hashed by this build.
    pub files_hashed: usize,
    /// Listed files whose content did not match the package manager's digest.
    pub digest_mismatches: usize,
    /// Listed files that are missing, not regular, or unreadable (left out).
    pub unreadable: usize,
    /// Listed files not checked (see [`ManagerReport::files_skipped`]).
    pub files_skipped: usize,
    /// Bytes hashed.
    pub bytes_hashed: u64,
    /// Size of the written store file.
    pub store_bytes: u64,
    /// Wall time in milliseconds.
    pub elapsed_ms: u128,
    /// Per package manager whose database was read (`dpkg`, `rpm`).
    pub managers: BTreeMap<&'static str, ManagerReport>,
    /// What was left out and why (e.g. an rpm database without `rpm`).
    pub warnings: Vec<String>,
}

/// One file to hash.
struct Job {
    package: u32,
    rel: Vec<u8>,
    algo: DigestAlgo,
    digest: Box<[u8]>,
}

/// A build in progress: the new store, what the previous one can give it, and
/// the files still to hash.
struct Build<'p> {
    store: TrustStore,
    /// The previous store's packages by (manager, name, version).
    old_index: HashMap<(PackageManager, &'p str, &'p str), (usize, Fingerprint)>,
    old_files: Vec<Vec<(PathBuf, TrustEntry)>>,
    jobs: Vec<Job>,
    report: BuildReport,
}

impl<'p> Build<'p> {
    fn new(previous: Option<&'p TrustStore>) -> Build<'p> {
        let (old_index, old_files) = match previous {
            Some(store) => (
                store
                    .packages()
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        (
                            (p.manager, p.name.as_str(), p.version.as_str()),
                            (i, p.fingerprint),
                        )
                    })
                    .collect(),
                store.files_by_package(),
            ),
            None => (HashMap::new(), Vec::new()),
        };
        Build {
            store: TrustStore::new(),
            old_index,
            old_files,
            jobs: Vec::new(),
            report: BuildReport::default(),
        }
    }

    fn manager(&mut self, manager: PackageManager) -> &mut ManagerReport {
        self.report.managers.entry(manager.as_str()).or_default()
    }

    /// Adds a package. Returns its index when its files must be hashed, `None`
    /// when the previous store had it with the same version and fingerprint
    /// (its entries are kept).
    fn add_package(&mut self, record: PackageRecord) -> Option<u32> {
        let manager = record.manager;
        let old = self
            .old_index
            .get(&(manager, record.name.as_str(), record.version.as_str()))
            .filter(|(_, fingerprint)| *fingerprint == record.fingerprint)
            .map(|(i, _)| *i);
        let index = self.store.add_package(record);
        self.manager(manager).packages += 1;
        let Some(old) = old else {
            return Some(index);
        };
        for (path, entry) in std::mem::take(&mut self.old_files[old]) {
            self.store.insert(
                &path,
                TrustEntry {
                    package: index,
                    ..entry
                },
            );
        }
        self.manager(manager).packages_reused += 1;
        None
    }

    /// Queues one file of package `package` to check against `digest`.
    fn add_file(&mut self, package: u32, rel: &[u8], algo: DigestAlgo, digest: &[u8]) {
        self.jobs.push(Job {
            package,
            rel: rel.to_vec(),
            algo,
            digest: digest.into(),
        });
    }

    /// Keeps every package of `manager` the previous store had, unchanged
    /// (its database cannot be read this time); returns how many.
    fn keep_previous(&mut self, previous: Option<&TrustStore>, manager: PackageManager) -> usize {
        let Some(previous) = previous else { return 0 };
        let mut kept = 0;
        for record in previous.packages().iter().filter(|p| p.manager == manager) {
            if self.add_package(record.clone()).is_none() {
                kept += 1;
            }
        }
        kept
    }

    fn manager_of(&self, package: u32) -> PackageManager {
        self.store
            .packages()
            .get(package as usize)
            .map(|p| p.manager)
            .unwrap_or_default()
    }
}

/// Builds (or incrementally updates) the store from dpkg's database and rpm's,
/// whichever are present, and writes it atomically.
///
/// # Errors
/// Neither database present; an unreadable dpkg `status` file or `md5sums`
/// list; an rpm query that fails or prints malformed output; a `--package`
/// that no database has; a failed write. Individual files that are missing or
/// modified are not errors: they are left out and counted. A present rpm
/// database without the `rpm` program is a warning in the report (its
/// packages are left out).
pub fn update(opts: &BuildOptions) -> anyhow::Result<BuildReport> {
    let started = Instant::now();
    let previous = if opts.full {
        None
    } else {
        match TrustStore::load(&opts.store) {
            Ok(store) => Some(store),
            Err(vigil_policy::Error::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                None
            }
            Err(e) => {
                eprintln!("vigil trust update: {e}; rebuilding from scratch");
                None
            }
        }
    };
    let mut build = Build::new(previous.as_ref());
    let mut found = Vec::new();
    let dpkg_read = dpkg::read(opts, &mut build, &mut found)?;
    let rpm_read = rpm::read(opts, &mut build, &mut found)?;
    if !rpm_read && !build.report.warnings.is_empty() {
        // A database that is there but cannot be read: its packages stay as
        // they were rather than vanish from the store.
        let kept = build.keep_previous(previous.as_ref(), PackageManager::Rpm);
        if kept > 0 {
            build
                .report
                .warnings
                .push(format!("kept the previous store's {kept} rpm package(s)"));
        }
    }
    if !dpkg_read && !rpm_read && build.store.packages().is_empty() {
        anyhow::bail!(
            "no package database read: no dpkg status in {} and no rpm database under {}{}",
            opts.admin.display(),
            opts.root.display(),
            build
                .report
                .warnings
                .iter()
                .map(|w| format!("; {w}"))
                .collect::<String>()
        );
    }
    for wanted in &opts.only {
        if !found.contains(wanted) {
            anyhow::bail!("package {wanted:?} is not installed (per dpkg's or rpm's database)");
        }
    }

    let hashed = hash_all(&opts.root, &build.jobs);
    for result in hashed {
        match result {
            Hashed::Ok { path, entry, bytes } => {
                let manager = build.manager_of(entry.package);
                build.manager(manager).files_hashed += 1;
                build.report.bytes_hashed += bytes;
                build.store.insert(&path, entry);
            }
            Hashed::Mismatch { package } => {
                let manager = build.manager_of(package);
                build.manager(manager).digest_mismatches += 1;
            }
            Hashed::Unreadable { package } => {
                let manager = build.manager_of(package);
                build.manager(manager).unreadable += 1;
            }
        }
    }
    for (manager, counts) in build.store.counts_by_manager() {
        if let Some(report) = build.report.managers.get_mut(manager.as_str()) {
            report.files = counts.files;
        }
    }
    let mut report = std::mem::take(&mut build.report);
    for m in report.managers.values() {
        report.packages += m.packages;
        report.packages_reused += m.packages_reused;
        report.files_hashed += m.files_hashed;
        report.digest_mismatches += m.digest_mismatches;
        report.unreadable += m.unreadable;
        report.files_skipped += m.files_skipped;
    }
    report.files = build.store.len();
    let bytes = build.store.to_bytes();
    write_atomically(&opts.store, &bytes)?;
    report.store_bytes = bytes.len() as u64;
    report.elapsed_ms = started.elapsed().as_millis();
    Ok(report)
}

enum Hashed {
    Ok {
        path: PathBuf,
        entry: TrustEntry,
        bytes: u64,
    },
    Mismatch {
        package: u32,
    },
    Unreadable {
        package: u32,
    },
}

/// Hashes every job on every CPU (the work is reading and two digests per file).
fn hash_all(root: &Path, jobs: &[Job]) -> Vec<Hashed> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::with_capacity(jobs.len()));
    // Directory canonicalisation is shared: `/bin` → `/usr/bin` once, not per file.
    let dirs: Mutex<HashMap<PathBuf, Option<PathBuf>>> = Mutex::new(HashMap::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut buf = vec![0u8; READ_CHUNK];
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    mine.push(hash_one(root, job, &mut buf, &dirs));
                }
                if let Ok(mut out) = out.lock() {
                    out.extend(mine);
                }
            });
        }
    });
    out.into_inner().unwrap_or_default()
}

/// The package manager's digest, computed beside the SHA-256 (nothing more
/// for SHA-256 itself).
enum Check {
    Md5(Md5),
    Sha224(Sha224),
    Sha256,
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Check {
    /// `None` for an algorithm vigil does not check (SHA-1: the collectors
    /// leave such files out before they become jobs).
    fn new(algo: DigestAlgo) -> Option<Check> {
        Some(match algo {
            DigestAlgo::Md5 => Check::Md5(Md5::new()),
            DigestAlgo::Sha224 => Check::Sha224(Sha224::new()),
            DigestAlgo::Sha256 => Check::Sha256,
            DigestAlgo::Sha384 => Check::Sha384(Sha384::new()),
            DigestAlgo::Sha512 => Check::Sha512(Sha512::new()),
            DigestAlgo::Sha1 => return None,
        })
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Check::Md5(h) => h.update(data),
            Check::Sha224(h) => h.update(data),
            Check::Sha256 => {}
            Check::Sha384(h) => h.update(data),
            Check::Sha512(h) => h.update(data),
        }
    }

    fn matches(self, sha256: &[u8; 32], want: &[u8]) -> bool {
        match self {
            Check::Md5(h) => h.finalize().as_slice() == want,
            Check::Sha224(h) => h.finalize().as_slice() == want,
            Check::Sha256 => sha256.as_slice() == want,
            Check::Sha384(h) => h.finalize().as_slice() == want,
            Check::Sha512(h) => h.finalize().as_slice() == want,
        }
    }
}

fn hash_one(
    root: &Path,
    job: &Job,
    buf: &mut [u8],
    dirs: &Mutex<HashMap<PathBuf, Option<PathBuf>>>,
) -> Hashed {
    let unreadable = Hashed::Unreadable {
        package: job.package,
    };
    let listed = root.join(Path::new(std::ffi::OsStr::from_bytes(&job.rel)));
    // The kernel names an exec'd file by its resolved path (`/bin/ls` runs as
    // `/usr/bin/ls` on a merged-/usr system): store it under that name.
    let (Some(parent), Some(file_name)) = (listed.parent(), listed.file_name()) else {
        return unreadable;
    };
    let canonical_dir = {
        let cached = dirs.lock().ok().and_then(|d| d.get(parent).cloned());
        match cached {
            Some(dir) => dir,
            None => {
                let dir = std::fs::canonicalize(parent).ok();
                if let Ok(mut d) = dirs.lock() {
                    d.insert(parent.to_path_buf(), dir.clone());
                }
                dir
            }
        }
    };
    let Some(dir) = canonical_dir else {
        return unreadable;
    };
    let Some(mut check) = Check::new(job.algo) else {
        return unreadable;
    };
    let path = dir.join(file_name);
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let Ok(mut file) = File::options()
        .read(true)
        .custom_flags(flags.bits())
        .open(&path)
    else {
        return unreadable;
    };
    match file.metadata() {
        Ok(md) if md.is_file() => {}
        _ => return unreadable,
    }
    let mut sha = Sha256::new();
    let mut size = 0u64;
    loop {
        match file.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                check.update(&buf[..n]);
                sha.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return unreadable,
        }
    }
    let sha256: [u8; 32] = sha.finalize().into();
    if !check.matches(&sha256, &job.digest) {
        return Hashed::Mismatch {
            package: job.package,
        };
    }
    Hashed::Ok {
        path,
        entry: TrustEntry {
            sha256,
            size,
            package: job.package,
        },
        bytes: size,
    }
}

/// Writes `bytes` to `path` by a temporary file in the same directory, fsync and
/// rename: a reader sees the old store or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut f = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("{}: cannot write the trust store: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::trust::{CheckResult, check};

    /// A fake dpkg admin dir and root with two packages.
    fn fake(dir: &Path) -> BuildOptions {
        let root = dir.join("root");
        let admin = dir.join("admin");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(admin.join("info")).unwrap();
        let files = [("usr/bin/a", &b"alpha"[..]), ("usr/bin/b", b"beta")];
        let mut list = String::new();
        for (rel, data) in files {
            std::fs::write(root.join(rel), data).unwrap();
            list.push_str(&format!("{}  {rel}\n", hex::encode(Md5::digest(data))));
        }
        std::fs::write(admin.join("info/one.md5sums"), list).unwrap();
        std::fs::write(
            admin.join("info/two:amd64.md5sums"),
            format!("{}  usr/bin/c\n", hex::encode(Md5::digest(b"gamma"))),
        )
        .unwrap();
        std::fs::write(root.join("usr/bin/c"), b"tampered").unwrap();
        std::fs::write(
            admin.join("status"),
            "Package: one\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n\n\
             Package: two\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2\n\n\
             Package: gone\nStatus: deinstall ok config-files\nVersion: 3\n",
        )
        .unwrap();
        BuildOptions {
            admin,
            root,
            rpm_dbpath: None,
            rpm_program: PathBuf::from("rpm"),
            store: dir.join("trust.db"),
            only: Vec::new(),
            full: false,
        }
    }

    #[test]
    fn build_then_incremental_update() {
        let dir = std::env::temp_dir().join(format!("vigil-trust-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let opts = fake(&dir);
        let report = update(&opts).unwrap();
        assert_eq!(
            (report.packages, report.files, report.digest_mismatches),
            (2, 2, 1)
        );
        assert_eq!(report.files_hashed, 2);
        let store = TrustStore::load(&opts.store).unwrap();
        let a = std::fs::canonicalize(opts.root.join("usr/bin/a")).unwrap();
        let sha: [u8; 32] = Sha256::digest(b"alpha").into();
        assert!(store.verify(&a, &sha));
        assert_eq!(
            check(&store, &a).unwrap().1,
            CheckResult::Trusted {
                package: "one 1".into()
            }
        );

        // Nothing changed: every package is reused, nothing rehashed.
        let report = update(&opts).unwrap();
        assert_eq!((report.packages_reused, report.files_hashed), (2, 0));
        assert_eq!(report.files, 2);

        // An upgrade of `one`: new content and a new list; only `one` is rehashed.
        std::fs::write(opts.root.join("usr/bin/a"), b"alpha2").unwrap();
        assert_eq!(
            check(&TrustStore::load(&opts.store).unwrap(), &a)
                .unwrap()
                .1,
            CheckResult::Modified {
                package: "one 1".into()
            }
        );
        std::fs::write(
            opts.admin.join("info/one.md5sums"),
            format!(
                "{}  usr/bin/a\n{}  usr/bin/b\n",
                hex::encode(Md5::digest(b"alpha2")),
                hex::encode(Md5::digest(b"beta"))
            ),
        )
        .unwrap();
        let report = update(&opts).unwrap();
        assert_eq!((report.packages_reused, report.files_hashed), (1, 2));
        let store = TrustStore::load(&opts.store).unwrap();
        let sha2: [u8; 32] = Sha256::digest(b"alpha2").into();
        assert!(store.verify(&a, &sha2));
        assert!(!store.verify(&a, &sha));

        // A dpkg run not yet folded into `status` (as a file trigger sees it):
        // its journal entry removing `two` counts.
        std::fs::create_dir_all(opts.admin.join("updates")).unwrap();
        std::fs::write(
            opts.admin.join("updates/0000"),
            "Package: two\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 2\n",
        )
        .unwrap();
        std::fs::write(opts.admin.join("updates/tmp.i"), "garbage").unwrap();
        let report = update(&opts).unwrap();
        assert_eq!((report.packages, report.packages_reused), (1, 1));
        std::fs::remove_dir_all(opts.admin.join("updates")).unwrap();

        // --package restricts the build; an unknown name is an error.
        let mut only = opts.clone();
        only.only = vec!["one".into()];
        only.full = true;
        assert_eq!(update(&only).unwrap().packages, 1);
        only.only = vec!["nope".into()];
        assert!(update(&only).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
