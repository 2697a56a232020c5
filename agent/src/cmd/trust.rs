//! `vigil trust update|status|check|begin`: the command line of the package
//! trust store.
//!
//! Owns: the subcommands, the upgrade-window marker (`begin`/[`end`]), checking
//! files against a store, and its status. Must not own: building the store from
//! the package databases (`crate::trust`), the store format or the parsers
//! (`vigil_policy::trust`), or the daemon's use of the store (it reloads it on
//! `vigil reload`, which an update asks for).
//!
//! The upgrade path keeps the store in step with the package managers:
//! - apt (`packaging/apt/80vigil-trust`): `DPkg::Pre-Invoke` runs `vigil trust
//!   begin` (opens the window: a `trusted-only` rule then allows root-owned files
//!   at package-managed paths whose content changed), `DPkg::Post-Invoke` runs
//!   `vigil trust update` (rehashes the changed packages, writes the store,
//!   closes the window, reloads the daemon).
//! - plain dpkg (`packaging/debian/triggers`): a file trigger on the package
//!   directories runs `vigil trust update --keep-window` after dpkg's run (an
//!   apt run's window stays open until its Post-Invoke).
//! - rpm (file triggers in `packaging/rpm/vigil.spec.in`): before a
//!   transaction that removes or replaces package files, `vigil trust begin`;
//!   after it, `vigil trust update`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use vigil_policy::{Config, TrustStore};

use crate::daemon::exec_gate::pending_marker_for;
use crate::engine::generation::load_config;
use crate::trust::{BuildOptions, BuildReport, update};

/// Read buffer of `check`.
const READ_CHUNK: usize = 256 * 1024;

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

/// `vigil trust status` as JSON: the store's size and age, its packages and
/// files per package manager, and the window state.
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
    let managers: serde_json::Map<String, serde_json::Value> = store
        .counts_by_manager()
        .iter()
        .filter(|(_, counts)| counts.packages > 0)
        .map(|(manager, counts)| (manager.as_str().to_owned(), serde_json::json!(counts)))
        .collect();
    Ok(serde_json::json!({
        "store": store_path.to_string_lossy(),
        "packages": store.packages().len(),
        "files": store.len(),
        "managers": managers,
        "bytes": md.len(),
        "age_s": age.as_secs(),
        "upgrade_window_open": crate::daemon::exec_gate::window_open(config),
    }))
}

/// The text form of a build report: one line for the store, one per package
/// manager read.
pub fn report_text(store: &Path, report: &BuildReport) -> String {
    let mut out = format!(
        "{}: {} files of {} packages ({} reused, {} files hashed, {} digest mismatches, {} unreadable, {} skipped), {} bytes, {} ms",
        store.display(),
        report.files,
        report.packages,
        report.packages_reused,
        report.files_hashed,
        report.digest_mismatches,
        report.unreadable,
        report.files_skipped,
        report.store_bytes,
        report.elapsed_ms
    );
    for (name, m) in &report.managers {
        out.push_str(&format!(
            "\n  {name} ({}): {} files of {} packages ({} reused, {} files hashed, {} digest mismatches, {} unreadable, {} skipped)",
            m.database.display(),
            m.files,
            m.packages,
            m.packages_reused,
            m.files_hashed,
            m.digest_mismatches,
            m.unreadable,
            m.files_skipped
        ));
    }
    out
}

/// `vigil trust` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TrustCmd {
    /// Build or update the trust store from dpkg's database and rpm's (each
    /// when present): every installed package's regular files, checked against
    /// the package manager's digest (dpkg's MD5, rpm's SHA-256 or MD5) and
    /// stored with their SHA-256. Only packages whose version or file list
    /// changed are hashed again. Then closes an upgrade window and asks a
    /// running daemon to reload. rpm's database is read with the `rpm` program.
    Update {
        /// Configuration file (`[policy]`: trust_db, dpkg_admin, dpkg_root,
        /// rpm_dbpath).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The store to write [default: policy.trust_db].
        #[arg(long)]
        store: Option<PathBuf>,
        /// dpkg's admin directory [default: policy.dpkg_admin].
        #[arg(long)]
        dpkg_admin: Option<PathBuf>,
        /// The root the packages' paths are relative to, and rpm's `--root`
        /// [default: policy.dpkg_root].
        #[arg(long)]
        root: Option<PathBuf>,
        /// rpm's database directory inside the root, as rpm's `--dbpath`
        /// [default: policy.rpm_dbpath, else /usr/lib/sysimage/rpm or
        /// /var/lib/rpm, whichever holds a database].
        #[arg(long)]
        rpm_dbpath: Option<PathBuf>,
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
        /// Leave an open upgrade window open (dpkg's file trigger: within an
        /// apt run, the window lasts until apt's Post-Invoke).
        #[arg(long)]
        keep_window: bool,
    },
    /// Print the store's packages and files (in all and per package manager),
    /// size and age, and whether an upgrade window is open.
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
    /// Open an upgrade window (apt's DPkg::Pre-Invoke, rpm's file trigger
    /// before a transaction): until `vigil trust update` or
    /// policy.upgrade_window_s, a trusted-only rule also allows root-owned
    /// files at package paths whose content the upgrade changed.
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
/// Unreadable configuration, package database or store.
pub fn run(command: TrustCmd) -> anyhow::Result<u8> {
    match command {
        TrustCmd::Update {
            config,
            store,
            dpkg_admin,
            root,
            rpm_dbpath,
            packages,
            full,
            no_reload,
            json,
            if_exists,
            keep_window,
        } => {
            let (config, _) = load_config(config.as_deref())?;
            let mut opts = BuildOptions::from_config(&config);
            opts.store = store.unwrap_or(opts.store);
            if if_exists && !opts.store.exists() {
                return Ok(0);
            }
            opts.admin = dpkg_admin.unwrap_or(opts.admin);
            opts.root = root.unwrap_or(opts.root);
            opts.rpm_dbpath = rpm_dbpath.or(opts.rpm_dbpath);
            opts.only = packages;
            opts.full = full;
            let report = update(&opts)?;
            if !keep_window {
                end(&opts.store);
            }
            for warning in &report.warnings {
                eprintln!("vigil trust update: warning: {warning}");
            }
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", report_text(&opts.store, &report));
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
    match crate::protocol::call(socket, crate::protocol::Request::Reload) {
        Ok(crate::protocol::Reply::Failed { error }) => {
            eprintln!("vigil trust update: the daemon kept its previous generation: {error}");
        }
        Ok(_) => eprintln!("vigil trust update: daemon reloaded"),
        Err(e) => eprintln!("vigil trust update: {e:#}"),
    }
}
