//! `vigil trust update|status|check|begin`: building the package trust store from
//! dpkg's database and keeping it in step with package upgrades.
//!
//! Owns: the I/O of a build (reading `status` and `info/*.md5sums`, hashing each
//! listed file once for MD5 and SHA-256 on every CPU, the atomic write of the store),
//! the incremental update (a package whose version and md5sums list are unchanged
//! keeps its entries without a rehash), and the upgrade-window marker. Must not
//! own: the store format or the dpkg parsers (`vigil_policy::trust`), or the
//! daemon's use of the store (it reloads it on `vigil reload`, which an update
//! asks for).
//!
//! The upgrade path (apt's hooks in `packaging/apt/`): `DPkg::Pre-Invoke` runs
//! `vigil trust begin` (opens the window: a `trusted-only` rule then allows
//! root-owned files at package-managed paths whose content changed),
//! `DPkg::Post-Invoke` runs `vigil trust update` (rehashes the changed packages,
//! writes the store, closes the window, reloads the daemon).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use md5::Md5;
use sha2::{Digest, Sha256};
use vigil_policy::trust::{
    DpkgPackage, Fingerprint, PackageRecord, parse_dpkg_status, parse_md5sums,
};
use vigil_policy::{Config, TrustEntry, TrustStore};

use crate::exec_gate::pending_marker_for;
use crate::generation::load_config;

/// Read buffer per hashing thread.
const READ_CHUNK: usize = 256 * 1024;

/// Where a build reads from and writes to.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// dpkg's admin directory (`status`, `info/`).
    pub admin: PathBuf,
    /// The root the listed paths are relative to.
    pub root: PathBuf,
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
            store: config.policy.trust_db.clone(),
            only: Vec::new(),
            full: false,
        }
    }
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
    /// Listed files whose MD5 did not match dpkg's (left out: not trusted).
    pub md5_mismatches: usize,
    /// Listed files that are missing, not regular, or unreadable (left out).
    pub unreadable: usize,
    /// Bytes hashed.
    pub bytes_hashed: u64,
    /// Size of the written store file.
    pub store_bytes: u64,
    /// Wall time in milliseconds.
    pub elapsed_ms: u128,
}

/// One file to hash.
struct Job {
    package: u32,
    rel: Vec<u8>,
    md5: [u8; 16],
}

/// Builds (or incrementally updates) the store and writes it atomically.
///
/// # Errors
/// An unreadable `status` file or `md5sums` list, or a failed write. Individual
/// files that are missing or modified are not errors: they are left out and
/// counted.
pub fn update(opts: &BuildOptions) -> anyhow::Result<BuildReport> {
    let started = Instant::now();
    let status_path = opts.admin.join("status");
    let status = std::fs::read_to_string(&status_path)
        .with_context(|| format!("{}: cannot read dpkg status", status_path.display()))?;
    let mut packages = parse_dpkg_status(&status);
    if !opts.only.is_empty() {
        packages.retain(|p| opts.only.contains(&p.name));
        for wanted in &opts.only {
            if !packages.iter().any(|p| p.name == *wanted) {
                anyhow::bail!(
                    "package {wanted:?} is not installed (per {})",
                    status_path.display()
                );
            }
        }
    }
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
    let (old_index, mut old_files) = match &previous {
        Some(store) => {
            let index: HashMap<&str, (usize, &PackageRecord)> = store
                .packages()
                .iter()
                .enumerate()
                .map(|(i, p)| (p.name.as_str(), (i, p)))
                .collect();
            (index, store.files_by_package())
        }
        None => (HashMap::new(), Vec::new()),
    };

    let mut store = TrustStore::new();
    let mut report = BuildReport::default();
    let mut jobs = Vec::new();
    for package in &packages {
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
        let index = store.add_package(PackageRecord {
            name: name.clone(),
            version: package.version.clone(),
            fingerprint,
        });
        if let Some(&(old, record)) = old_index.get(name.as_str())
            && record.version == package.version
            && record.fingerprint == fingerprint
        {
            for (path, entry) in std::mem::take(&mut old_files[old]) {
                store.insert(
                    &path,
                    TrustEntry {
                        package: index,
                        ..entry
                    },
                );
            }
            report.packages_reused += 1;
            continue;
        }
        let Some(list) = list else {
            continue; // a package without md5sums (metapackages): no files to trust
        };
        let text =
            std::fs::read(&list).with_context(|| format!("{}: cannot read", list.display()))?;
        for (md5, rel) in parse_md5sums(&text, &list)? {
            jobs.push(Job {
                package: index,
                rel: rel.to_vec(),
                md5,
            });
        }
    }

    let hashed = hash_all(&opts.root, &jobs);
    for result in hashed {
        match result {
            Hashed::Ok { path, entry, bytes } => {
                report.files_hashed += 1;
                report.bytes_hashed += bytes;
                store.insert(&path, entry);
            }
            Hashed::Mismatch => report.md5_mismatches += 1,
            Hashed::Unreadable => report.unreadable += 1,
        }
    }
    report.packages = store.packages().len();
    report.files = store.len();
    let bytes = store.to_bytes();
    write_atomically(&opts.store, &bytes)?;
    report.store_bytes = bytes.len() as u64;
    report.elapsed_ms = started.elapsed().as_millis();
    Ok(report)
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

enum Hashed {
    Ok {
        path: PathBuf,
        entry: TrustEntry,
        bytes: u64,
    },
    Mismatch,
    Unreadable,
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

fn hash_one(
    root: &Path,
    job: &Job,
    buf: &mut [u8],
    dirs: &Mutex<HashMap<PathBuf, Option<PathBuf>>>,
) -> Hashed {
    let listed = root.join(Path::new(std::ffi::OsStr::from_bytes(&job.rel)));
    // The kernel names an exec'd file by its resolved path (`/bin/ls` runs as
    // `/usr/bin/ls` on a merged-/usr system): store it under that name.
    let (Some(parent), Some(file_name)) = (listed.parent(), listed.file_name()) else {
        return Hashed::Unreadable;
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
        return Hashed::Unreadable;
    };
    let path = dir.join(file_name);
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let Ok(mut file) = File::options()
        .read(true)
        .custom_flags(flags.bits())
        .open(&path)
    else {
        return Hashed::Unreadable;
    };
    match file.metadata() {
        Ok(md) if md.is_file() => {}
        _ => return Hashed::Unreadable,
    }
    let mut md5 = Md5::new();
    let mut sha = Sha256::new();
    let mut size = 0u64;
    loop {
        match file.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                md5.update(&buf[..n]);
                sha.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Hashed::Unreadable,
        }
    }
    let md5: [u8; 16] = md5.finalize().into();
    if md5 != job.md5 {
        return Hashed::Mismatch;
    }
    Hashed::Ok {
        path,
        entry: TrustEntry {
            sha256: sha.finalize().into(),
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

/// Opens the upgrade window (`vigil trust begin`): writes the marker next to the
/// store. Root only: the daemon ignores a marker root does not own.
///
/// # Errors
/// When the marker cannot be written.
pub fn begin(store: &Path) -> anyhow::Result<PathBuf> {
    let marker = pending_marker_for(store);
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    }
    // Rewritten (not only created) so the window's age starts now.
    std::fs::write(&marker, format!("{}\n", std::process::id()))
        .with_context(|| format!("{}: cannot write the upgrade marker", marker.display()))?;
    Ok(marker)
}

/// Closes the upgrade window (after an update wrote the store).
pub fn end(store: &Path) {
    let _ = std::fs::remove_file(pending_marker_for(store));
}

/// What `vigil trust check` says about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// In the store with this content.
    Trusted {
        /// The package that installed it.
        package: String,
    },
    /// In the store, but the content differs from what the package installed.
    Modified {
        /// The package that installed it.
        package: String,
    },
    /// Not in the store.
    Unknown,
}

/// Checks `path` (resolved as the kernel would name it) against `store`.
///
/// # Errors
/// When the file cannot be resolved or read.
pub fn check(store: &TrustStore, path: &Path) -> anyhow::Result<(PathBuf, CheckResult)> {
    let resolved = std::fs::canonicalize(path)
        .with_context(|| format!("{}: cannot resolve", path.display()))?;
    let Some(entry) = store.lookup(&resolved) else {
        return Ok((resolved, CheckResult::Unknown));
    };
    let mut file =
        File::open(&resolved).with_context(|| format!("{}: cannot open", resolved.display()))?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("{}: cannot read", resolved.display()))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
    }
    let digest: [u8; 32] = sha.finalize().into();
    let package = store
        .packages()
        .get(entry.package as usize)
        .map(|p| format!("{} {}", p.name, p.version))
        .unwrap_or_default();
    Ok((
        resolved,
        if digest == entry.sha256 {
            CheckResult::Trusted { package }
        } else {
            CheckResult::Modified { package }
        },
    ))
}

/// `vigil trust status` as JSON: the store's size and age, and the window state.
///
/// # Errors
/// When the store is missing or damaged.
pub fn status(config: &Config, store_path: &Path) -> anyhow::Result<serde_json::Value> {
    let md = std::fs::metadata(store_path).with_context(|| {
        format!(
            "{}: no trust store (run `vigil trust update`)",
            store_path.display()
        )
    })?;
    let store = TrustStore::load(store_path)?;
    let age = md
        .modified()
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or(Duration::ZERO);
    Ok(serde_json::json!({
        "store": store_path.to_string_lossy(),
        "packages": store.packages().len(),
        "files": store.len(),
        "bytes": md.len(),
        "age_s": age.as_secs(),
        "upgrade_window_open": crate::exec_gate::window_open(config),
    }))
}

/// `vigil trust` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TrustCmd {
    /// Build or update the trust store from dpkg's database: every installed
    /// package's files, checked against dpkg's MD5 sums and stored with their
    /// SHA-256. Only packages whose version or md5sums list changed are hashed
    /// again. Then closes an upgrade window and asks a running daemon to reload.
    Update {
        /// Configuration file (`[policy]`: trust_db, dpkg_admin, dpkg_root).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The store to write [default: policy.trust_db].
        #[arg(long)]
        store: Option<PathBuf>,
        /// dpkg's admin directory [default: policy.dpkg_admin].
        #[arg(long)]
        dpkg_admin: Option<PathBuf>,
        /// The root dpkg's paths are relative to [default: policy.dpkg_root].
        #[arg(long)]
        root: Option<PathBuf>,
        /// Only this package (repeatable; for spot checks).
        #[arg(long = "package")]
        packages: Vec<String>,
        /// Rehash every package, ignoring the previous store.
        #[arg(long)]
        full: bool,
        /// Do not ask the daemon to reload.
        #[arg(long)]
        no_reload: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Do nothing unless the store already exists (the apt hook: no surprise
        /// first build on a machine that never asked for one).
        #[arg(long)]
        if_exists: bool,
    },
    /// Print the store's packages, files, size and age, and whether an upgrade
    /// window is open.
    Status {
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The store [default: policy.trust_db].
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Say whether each file is trusted (in the store with the same SHA-256),
    /// modified since its package installed it, or unknown.
    ///
    /// Exit status: 0 all trusted, 1 otherwise.
    Check {
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The store [default: policy.trust_db].
        #[arg(long)]
        store: Option<PathBuf>,
        /// Files to check.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Open an upgrade window (apt's DPkg::Pre-Invoke): until `vigil trust
    /// update` or policy.upgrade_window_s, a trusted-only rule also allows
    /// root-owned files at package paths whose content the upgrade changed.
    Begin {
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The store [default: policy.trust_db].
        #[arg(long)]
        store: Option<PathBuf>,
        /// Do nothing unless the store exists (the apt hook).
        #[arg(long)]
        if_exists: bool,
    },
}

/// Runs a `vigil trust` subcommand; returns the exit code.
///
/// # Errors
/// Unreadable configuration, dpkg database or store.
pub fn run(command: TrustCmd) -> anyhow::Result<u8> {
    match command {
        TrustCmd::Update {
            config,
            store,
            dpkg_admin,
            root,
            packages,
            full,
            no_reload,
            json,
            if_exists,
        } => {
            let (config, _) = load_config(config.as_deref())?;
            let mut opts = BuildOptions::from_config(&config);
            opts.store = store.unwrap_or(opts.store);
            if if_exists && !opts.store.exists() {
                return Ok(0);
            }
            opts.admin = dpkg_admin.unwrap_or(opts.admin);
            opts.root = root.unwrap_or(opts.root);
            opts.only = packages;
            opts.full = full;
            let report = update(&opts)?;
            end(&opts.store);
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{}: {} files of {} packages ({} reused, {} files hashed, {} MD5 mismatches, {} unreadable), {} bytes, {} ms",
                    opts.store.display(),
                    report.files,
                    report.packages,
                    report.packages_reused,
                    report.files_hashed,
                    report.md5_mismatches,
                    report.unreadable,
                    report.store_bytes,
                    report.elapsed_ms
                );
            }
            if !no_reload {
                reload_daemon(&config.daemon.socket);
            }
            Ok(0)
        }
        TrustCmd::Status { config, store } => {
            let (config, _) = load_config(config.as_deref())?;
            let store = store.unwrap_or_else(|| config.policy.trust_db.clone());
            let status = status(&config, &store)?;
            println!("{}", serde_json::to_string_pretty(&status)?);
            Ok(0)
        }
        TrustCmd::Check {
            config,
            store,
            paths,
        } => {
            let (config, _) = load_config(config.as_deref())?;
            let store_path = store.unwrap_or_else(|| config.policy.trust_db.clone());
            let store = TrustStore::load(&store_path)?;
            let mut all = true;
            for path in paths {
                let (resolved, result) = check(&store, &path)?;
                let text = match &result {
                    CheckResult::Trusted { package } => format!("trusted ({package})"),
                    CheckResult::Modified { package } => {
                        format!("MODIFIED (differs from what {package} installed)")
                    }
                    CheckResult::Unknown => "unknown (not in the trust store)".to_owned(),
                };
                all &= matches!(result, CheckResult::Trusted { .. });
                println!("{}: {text}", resolved.display());
            }
            Ok(u8::from(!all))
        }
        TrustCmd::Begin {
            config,
            store,
            if_exists,
        } => {
            let (config, _) = load_config(config.as_deref())?;
            let store = store.unwrap_or_else(|| config.policy.trust_db.clone());
            if if_exists && !store.exists() {
                return Ok(0);
            }
            let marker = begin(&store)?;
            println!(
                "upgrade window open ({}; closes on `vigil trust update` or after {} s)",
                marker.display(),
                config.policy.upgrade_window_s
            );
            Ok(0)
        }
    }
}

/// Asks a running daemon to reload (and so load the new store). No daemon is fine:
/// the store is read when it starts.
fn reload_daemon(socket: &Path) {
    if !socket.exists() {
        return;
    }
    match crate::control::call(socket, "reload") {
        Ok(reply) if reply.get("ok").and_then(|v| v.as_bool()) == Some(true) => {
            eprintln!("vigil trust update: daemon reloaded");
        }
        Ok(reply) => eprintln!(
            "vigil trust update: the daemon kept its previous generation: {}",
            reply
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("unknown error")
        ),
        Err(e) => eprintln!("vigil trust update: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (report.packages, report.files, report.md5_mismatches),
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
