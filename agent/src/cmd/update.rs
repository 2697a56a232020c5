//! `vigil update` (fetch, check, switch, reload), `--rollback` and `--status`,
//! and `vigil bundle pack|verify|keygen`.
//!
//! Owns: turning a `vigil_update` run into output and an exit code (0 a new
//! version is in force, 1 nothing new, 2 an error), the check that loads a
//! staged version with the daemon's own generation loader, and telling the
//! running daemon to reload after a switch. If the daemon rejects the new
//! version, `current` is switched back, so a daemon restart cannot pick up
//! what the running daemon refused. Must not own: fetching, verifying,
//! unpacking or the store (the `vigil-update` crate).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use vigil_update::run::SourceOutcome;
use vigil_update::store::Store;

use crate::engine::generation::{Generation, load_config};
use crate::protocol::{self, Reply, Request};

/// `vigil update` arguments.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Configuration file ([update], [content], daemon.socket)
    /// [default: /etc/vigil/vigil.toml, or built-in defaults if absent].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Go back to the version before the current one, and reload the daemon.
    #[arg(long, conflicts_with = "status")]
    pub rollback: bool,
    /// Show each source's version, age, last check and last error.
    #[arg(long)]
    pub status: bool,
    /// With --status: JSON instead of text.
    #[arg(long, requires = "status")]
    pub json: bool,
    /// Do not ask the running daemon to reload after a switch.
    #[arg(long)]
    pub no_reload: bool,
}

/// `vigil bundle` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BundleCmd {
    /// Pack DIR (hashes/…, rules/…) into a signed bundle: FILE.tar.gz with a
    /// manifest of every file's SHA-256, and FILE.tar.gz.minisig.
    Pack {
        /// The directory to pack.
        dir: PathBuf,
        /// The minisign secret key (`vigil bundle keygen`, or `minisign -G`;
        /// an encrypted key's password is read from VIGIL_BUNDLE_KEY_PASSWORD).
        #[arg(long)]
        key: PathBuf,
        /// The bundle to write [default: vigil-bundle-VERSION.tar.gz].
        #[arg(long)]
        out: Option<PathBuf>,
        /// The bundle's version [default: the UTC time, YYYYMMDDTHHMMSSZ].
        #[arg(long)]
        version: Option<String>,
    },
    /// Check a bundle's signature (FILE.minisig) and every file against its manifest.
    ///
    /// Exit status 0 valid, 2 not.
    Verify {
        /// The bundle.
        file: PathBuf,
        /// The public key: the base64 line, or a minisign .pub file.
        #[arg(long)]
        key: String,
    },
    /// Make a key pair: PREFIX.key (secret, unencrypted, 0600) and PREFIX.pub.
    Keygen {
        /// Path prefix of the two files.
        prefix: PathBuf,
    },
}

/// Runs `vigil update`.
///
/// # Errors
/// The configuration cannot be loaded (exit code 2).
pub fn run(args: UpdateArgs) -> anyhow::Result<u8> {
    let (config, config_path) = load_config(args.config.as_deref())?;
    if args.status {
        let status = vigil_update::status::status(&config.update);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&status)?);
        } else {
            print!("{}", render_status(&status));
        }
        return Ok(0);
    }
    if args.rollback {
        return rollback(&config, args.no_reload);
    }
    if !config.update.sources.iter().any(|s| s.enabled) {
        println!(
            "vigil update: no enabled source in [update] ({}); nothing to do",
            config_path.as_deref().map_or_else(
                || "built-in defaults".to_owned(),
                |p| p.display().to_string()
            )
        );
        return Ok(1);
    }
    let started = Instant::now();
    let check = |staged: &Path| check_staged(config_path.as_deref(), staged);
    let report = vigil_update::run::update(&config.update, &check);
    for (name, outcome) in &report.sources {
        match outcome {
            SourceOutcome::Updated { version, bytes } => {
                println!("source {name:?}: new version {version} ({bytes} bytes)");
            }
            SourceOutcome::NotModified => println!("source {name:?}: not modified"),
            SourceOutcome::Failed => {
                println!("source {name:?}: failed; its previous content stays")
            }
        }
    }
    for error in &report.errors {
        eprintln!("vigil update: error: {error}");
    }
    let mut code = report.exit_code();
    if let Some(version) = &report.switched {
        println!(
            "switched to {version} (was {}) in {:.2} s",
            report.previous.as_deref().unwrap_or("none"),
            started.elapsed().as_secs_f64()
        );
        if !args.no_reload && !reload(&config, report.previous.as_deref()) {
            code = 2;
        }
    } else if report.errors.is_empty() {
        println!(
            "nothing new; {} stays",
            report.previous.as_deref().unwrap_or("no version")
        );
    } else {
        println!(
            "running content unchanged ({})",
            report.previous.as_deref().unwrap_or("no version")
        );
    }
    Ok(code)
}

/// Loads the staged version exactly as the daemon will (the same generation
/// loader with the staged directory in place of `current`). A rule file of the
/// staged version that `rules_on_error = "skip"` would leave out fails the
/// check too: an update must not silently lose rules.
fn check_staged(config: Option<&Path>, staged: &Path) -> Result<(), String> {
    let generation =
        Generation::load_with_update(1, config, Some(staged)).map_err(|e| e.to_string())?;
    if let Some(skipped) = generation
        .rule_warnings
        .iter()
        .find(|w| w.path.starts_with(staged))
    {
        return Err(skipped.to_string());
    }
    Ok(())
}

/// Asks the daemon to reload. If it refuses the new content, `current` goes
/// back to `previous`. Returns false when the daemon refused.
fn reload(config: &vigil_policy::Config, previous: Option<&str>) -> bool {
    match protocol::call(&config.daemon.socket, Request::Reload) {
        Ok(Reply::Reloaded { summary, .. }) => {
            println!("reloaded: {summary}");
            true
        }
        Ok(Reply::Failed { error }) => {
            eprintln!("vigil update: error: the daemon rejected the new content: {error}");
            let restored = match (Store::existing(&config.update.dir), previous) {
                (Some(store), Some(previous)) => {
                    store.switch(previous).map(|()| previous.to_owned())
                }
                (Some(store), None) => {
                    std::fs::remove_file(store.dir().join(vigil_update::layout::CURRENT))
                        .map(|()| "no version".to_owned())
                        .map_err(vigil_update::Error::io(
                            store.dir(),
                            "cannot remove the current link",
                        ))
                }
                (None, _) => Ok("no version".to_owned()),
            };
            match restored {
                Ok(to) => eprintln!("vigil update: switched back to {to}"),
                Err(e) => eprintln!("vigil update: error: cannot switch back: {e}"),
            }
            false
        }
        Ok(other) => {
            eprintln!("vigil update: unexpected reply to reload: {other:?}");
            false
        }
        Err(e) => {
            println!("{e:#}; the daemon loads the new content when it starts");
            true
        }
    }
}

fn rollback(config: &vigil_policy::Config, no_reload: bool) -> anyhow::Result<u8> {
    let Some(store) = Store::existing(&config.update.dir) else {
        eprintln!(
            "vigil update: error: {}: no updates were ever installed",
            config.update.dir.display()
        );
        return Ok(2);
    };
    match store.rollback() {
        Ok((from, to)) => {
            println!(
                "rolled back from {} to {to}",
                from.as_deref().unwrap_or("none")
            );
            if !no_reload && !reload(config, from.as_deref()) {
                return Ok(2);
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("vigil update: error: {e}");
            Ok(2)
        }
    }
}

fn render_status(status: &vigil_update::status::UpdateStatus) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "update dir: {}\ncurrent: {}\nversions kept: {}",
        status.dir,
        status.current.as_deref().unwrap_or("none"),
        status.versions.len()
    );
    if let Some(error) = &status.last_error {
        let _ = writeln!(out, "last error: {error}");
    }
    for s in &status.sources {
        let age = s.age_s.map_or_else(
            || "-".to_owned(),
            |a| humantime::format_duration(std::time::Duration::from_secs(a)).to_string(),
        );
        let _ = writeln!(
            out,
            "source {:?}: {} {} verify={}{}{} version={} age={} last_check={} last_error={}",
            s.name,
            s.format,
            s.url,
            s.verify,
            if s.unverified { " (UNVERIFIED)" } else { "" },
            if s.enabled { "" } else { " (disabled)" },
            s.version.as_deref().unwrap_or("-"),
            age,
            s.last_check.as_deref().unwrap_or("never"),
            s.last_error.as_deref().unwrap_or("none"),
        );
    }
    out
}

/// Runs `vigil bundle`.
///
/// # Errors
/// Packing or key generation fails (exit code 2).
pub fn bundle(command: BundleCmd) -> anyhow::Result<u8> {
    match command {
        BundleCmd::Pack {
            dir,
            key,
            out,
            version,
        } => {
            let version = version.unwrap_or_else(|| {
                humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string()
                    .chars()
                    .filter(|c| *c != '-' && *c != ':')
                    .collect()
            });
            let out =
                out.unwrap_or_else(|| PathBuf::from(format!("vigil-bundle-{version}.tar.gz")));
            let manifest = vigil_update::bundle::pack(&dir, &key, &out, &version)?;
            println!(
                "packed {} files as version {} into {} (signature {})",
                manifest.files.len(),
                manifest.version,
                out.display(),
                vigil_update::bundle::signature_path(&out).display()
            );
            Ok(0)
        }
        BundleCmd::Verify { file, key } => {
            let key = public_key(&key)?;
            match vigil_update::bundle::verify_file(&file, &key) {
                Ok(manifest) => {
                    println!(
                        "ok: {} version {} ({} files, signature and every SHA-256 match)",
                        file.display(),
                        manifest.version,
                        manifest.files.len()
                    );
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("vigil bundle verify: error: {e}");
                    Ok(2)
                }
            }
        }
        BundleCmd::Keygen { prefix } => {
            let public = vigil_update::bundle::keygen(&prefix)?;
            println!("wrote {0}.key (secret) and {0}.pub", prefix.display());
            println!("verify = \"minisign:{public}\"");
            Ok(0)
        }
    }
}

/// A public key given as the base64 line or as a minisign `.pub` file.
fn public_key(key: &str) -> anyhow::Result<String> {
    let path = Path::new(key);
    if !path.is_file() {
        return Ok(key.trim().to_owned());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {key}"))?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
        .map(str::to_owned)
        .with_context(|| format!("{key}: no key line in the file"))
}
