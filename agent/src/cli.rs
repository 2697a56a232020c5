//! The command line: what each subcommand means and which exit code it returns.
//!
//! Owns argument parsing and the mapping of outcomes to exit codes (0 ok, 1 found
//! something or a request was refused, 2 usage or runtime error).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::eval_cmd::Label;
use crate::generation::{Generation, load_config};
use crate::{control, daemon, eval_cmd, features_cmd, model_cmd, notifier, scan_cmd};

/// vigil — on-access anti-malware for Linux.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the on-access daemon in the foreground (root only).
    Daemon {
        /// Configuration file [default: /etc/vigil/vigil.toml, or built-in defaults if absent].
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Scan files and directories on demand with the daemon's pipeline.
    ///
    /// Exit status: 0 nothing found, 1 something found, 2 errors (and nothing found).
    Scan {
        /// Configuration file (for content and limits).
        #[arg(long)]
        config: Option<PathBuf>,
        /// One JSON object per file instead of text.
        #[arg(long)]
        json: bool,
        /// Run every stage and print how each verdict was reached.
        #[arg(long)]
        explain: bool,
        /// Files or directories (recursive).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Ask the running daemon to reload its configuration and content.
    ///
    /// Exit status 1 when the daemon rejected the new configuration (it keeps the old one).
    Reload {
        /// Configuration file, to find the control socket.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Control socket [default: daemon.socket from the configuration].
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Print the running daemon's state and counters as JSON.
    Status {
        /// Configuration file, to find the control socket.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Control socket [default: daemon.socket from the configuration].
        #[arg(long)]
        socket: Option<PathBuf>,
        /// One compact JSON line instead of indented JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the running daemon's counters, queue depth and per-stage latency
    /// percentiles (hash, rules, heuristics, model, total).
    Stats {
        /// Configuration file, to find the control socket.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Control socket [default: daemon.socket from the configuration].
        #[arg(long)]
        socket: Option<PathBuf>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Count detections and false positives per stage over labelled sets.
    ///
    /// Each set is a directory or a `.tar`/`.tar.xz` archive (read in memory, never
    /// unpacked). Only ELF files and scripts are evaluated unless --all-files.
    Eval {
        /// Configuration file (content, weights, thresholds).
        #[arg(long)]
        config: Option<PathBuf>,
        /// A set of known malware (repeatable).
        #[arg(long)]
        malicious: Vec<PathBuf>,
        /// A set of known-good files (repeatable); every finding is listed.
        #[arg(long)]
        benign: Vec<PathBuf>,
        /// Evaluate every regular file, not only ELF files and scripts.
        #[arg(long)]
        all_files: bool,
    },
    /// Write static feature rows (CSV) for model training.
    ///
    /// Columns: sha256, name, schema, parsed, the --label columns, then the features
    /// in the extractor's schema order. Only ELF files and scripts unless --all-files.
    Features {
        /// A `.tar`/`.tar.xz` archive read in memory, never unpacked (repeatable).
        #[arg(long)]
        tar: Vec<PathBuf>,
        /// A column added to every row, as KEY=VALUE (repeatable).
        #[arg(long)]
        label: Vec<String>,
        /// Write every regular file, not only ELF files and scripts.
        #[arg(long)]
        all_files: bool,
        /// Also write a row for every mutation of every ELF file (training
        /// augmentation); adds the columns `mutation` ("none" for the original)
        /// and `origin` (the original's SHA-256). Needs --donor.
        #[arg(long, requires = "donor")]
        mutations: bool,
        /// A benign binary whose bytes and strings some mutations borrow.
        #[arg(long)]
        donor: Option<PathBuf>,
        /// Files or directories (recursive).
        paths: Vec<PathBuf>,
    },
    /// The model bundle: describe it, score feature rows, measure evasion.
    Model {
        /// What to do with it.
        #[command(subcommand)]
        command: ModelCmd,
    },
    /// Print alerts live as the daemon sends them: every alert for root, otherwise
    /// those about your files or your processes.
    Alerts {
        /// Configuration file, to find the control socket.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Control socket [default: daemon.socket from the configuration].
        #[arg(long)]
        socket: Option<PathBuf>,
        /// One JSON event line per alert instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show alerts as desktop notifications (run per user, e.g. as a systemd user
    /// service); reconnects when the daemon restarts.
    Notifier {
        /// Configuration file, to find the control socket.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Control socket [default: daemon.socket from the configuration].
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// List, show, restore or delete quarantined files (through the daemon).
    ///
    /// Anyone may list and show the items whose file they owned; root sees all, and
    /// only root may restore or delete. Exit status 1 when the daemon refused.
    Quarantine {
        /// Configuration file, to find the control socket.
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        /// Control socket [default: daemon.socket from the configuration].
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        action: QuarantineCmd,
    },
    /// The package trust store: build it from dpkg and rpm, check files, open an
    /// upgrade window (see `policy.profile = "lockdown"`).
    Trust {
        /// What to do.
        #[command(subcommand)]
        action: crate::trust_cmd::TrustCmd,
    },
    /// Exec policies: a dry run of the rules over what the daemon saw.
    Policy {
        /// What to do.
        #[command(subcommand)]
        action: crate::policy_cmd::PolicyCmd,
    },
    /// Allow a file by its SHA-256 after a false alarm (root): append it to
    /// local.sha256 in the first `content.allow` directory with a comment, who and
    /// when, and reload the daemon. `--list` shows every allowed hash, `--remove`
    /// takes one back.
    ///
    /// An allowed file skips every detection stage (exec rules of `[policy]` still
    /// apply). Exit status 1 when refused or not done.
    Allow(crate::allow_cmd::AllowArgs),
    /// Validate a configuration and the content it names, without a daemon.
    CheckConfig {
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// `vigil model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCmd {
    /// Describe a bundle (the built-in one by default) after checking it.
    Info {
        /// A bundle directory instead of the built-in bundle.
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
    /// Score feature rows (CSV from `vigil features`, or any CSV with a sha256
    /// column and every feature column) with every model of the bundle.
    Score {
        /// A bundle directory instead of the built-in bundle.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// The CSV file ("-" for stdin).
        csv: PathBuf,
    },
    /// Apply each evasion-style mutation to the ELF samples of an archive (in
    /// memory) and write, per sample and mutation, the classifier's score and
    /// the whole pipeline's verdict as CSV.
    Mutations {
        /// Configuration file (content, thresholds, `content.model`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The malware archive (`.tar`/`.tar.xz`).
        #[arg(long)]
        tar: PathBuf,
        /// A benign binary whose bytes and strings some mutations borrow.
        #[arg(long)]
        donor: PathBuf,
        /// A file of SHA-256 digests, one per line: only these samples.
        #[arg(long)]
        only: Option<PathBuf>,
    },
}

/// `vigil quarantine` subcommands.
#[derive(Debug, Subcommand)]
pub enum QuarantineCmd {
    /// List the items, oldest first.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one item's record (JSON).
    Show {
        /// The item id (from `list`).
        id: String,
    },
    /// Put an item back with its original owner, mode and times, then drop it from
    /// the store.
    ///
    /// The file is never written over an existing one unless --overwrite. A file
    /// whose SHA-256 is still on a known-bad list needs --force (and will be denied,
    /// and quarantined again, on its next use unless an exclusion covers it).
    Restore {
        /// The item id.
        id: String,
        /// Restore to this path instead of the original one.
        #[arg(long)]
        to: Option<PathBuf>,
        /// Restore even if the hash is still known-bad.
        #[arg(long)]
        force: bool,
        /// Replace an existing file at the target path.
        #[arg(long)]
        overwrite: bool,
        /// Allow the item's SHA-256 first (as `vigil allow`, with the item in the
        /// comment), so the restored file runs; taken back if the restore fails.
        #[arg(long, conflicts_with = "force")]
        allow: bool,
    },
    /// Delete an item for good.
    Delete {
        /// The item id.
        id: String,
    },
}

/// Runs the parsed command; returns the process exit code.
///
/// # Errors
/// Usage and runtime errors (exit code 2, printed by `main`).
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Cmd::Daemon { config } => daemon::run(config).map(|()| 0),
        Cmd::Scan {
            config,
            json,
            explain,
            paths,
        } => {
            let generation = Generation::load(1, config.as_deref())?;
            warn_skipped_rules(&generation);
            let summary = scan_cmd::run(&generation, &paths, json, explain);
            eprintln!(
                "scanned {} files: {} detections, {} errors",
                summary.files, summary.detections, summary.errors
            );
            Ok(summary.exit_code())
        }
        Cmd::Reload { config, socket } => request(config, socket, "reload", |reply| {
            let summary = reply.get("summary").and_then(|s| s.as_str()).unwrap_or("");
            println!("reloaded: {summary}");
        }),
        Cmd::Status {
            config,
            socket,
            json,
        } => request(config, socket, "status", |reply| {
            let status = reply.get("status").cloned().unwrap_or_default();
            let text = if json {
                serde_json::to_string(&status)
            } else {
                serde_json::to_string_pretty(&status)
            };
            println!("{}", text.unwrap_or_default());
        }),
        Cmd::Stats {
            config,
            socket,
            json,
        } => request(config, socket, "stats", |reply| {
            let stats = reply.get("stats").cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string(&stats).unwrap_or_default());
            } else {
                print!("{}", render_stats(&stats));
            }
        }),
        Cmd::Eval {
            config,
            malicious,
            benign,
            all_files,
        } => {
            let generation = Generation::load(1, config.as_deref())?;
            warn_skipped_rules(&generation);
            let mut sets = Vec::new();
            let labelled = malicious.into_iter().map(|p| (p, Label::Malicious));
            for (path, label) in labelled.chain(benign.into_iter().map(|p| (p, Label::Benign))) {
                let tally = eval_cmd::evaluate_set(&generation, &path, label, all_files)?;
                sets.push((path, label, tally));
            }
            print!("{}", eval_cmd::render(&sets));
            let false_positives = sets
                .iter()
                .any(|(_, l, t)| *l == Label::Benign && t.malicious > 0);
            Ok(u8::from(false_positives))
        }
        Cmd::Features {
            tar,
            label,
            all_files,
            mutations,
            donor,
            paths,
        } => {
            if tar.is_empty() && paths.is_empty() {
                anyhow::bail!("vigil features: give at least one PATH or --tar ARCHIVE");
            }
            let donor = match donor.filter(|_| mutations) {
                Some(p) => {
                    Some(std::fs::read(&p).with_context(|| format!("--donor {}", p.display()))?)
                }
                None => None,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let written =
                features_cmd::run(&mut out, &paths, &tar, &label, all_files, donor.as_deref())?;
            std::io::Write::flush(&mut out)?;
            eprintln!(
                "wrote {} rows ({} files skipped)",
                written.rows, written.skipped
            );
            Ok(0)
        }
        Cmd::Model { command } => run_model(command),
        Cmd::Quarantine {
            config,
            socket,
            action,
        } => quarantine(config, socket, action),
        Cmd::Notifier { config, socket } => {
            crate::logging::init("info");
            notifier::run(socket_path(config, socket)?).map(|()| 0)
        }
        Cmd::Alerts {
            config,
            socket,
            json,
        } => {
            use std::io::Write as _;
            let socket = socket_path(config, socket)?;
            control::subscribe_with(
                &socket,
                |hello| {
                    let uid = hello.get("uid").and_then(|u| u.as_u64()).unwrap_or(0);
                    eprintln!("vigil alerts: subscribed as uid {uid}");
                },
                |alert| {
                    let line = if json {
                        alert.to_string()
                    } else {
                        crate::notifier::summary(alert).join(": ")
                    };
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
                },
            )?;
            Ok(0)
        }
        Cmd::Trust { action } => crate::trust_cmd::run(action),
        Cmd::Policy { action } => crate::policy_cmd::run(action),
        Cmd::Allow(args) => crate::allow_cmd::run(args),
        Cmd::CheckConfig { config } => {
            let generation = Generation::load(1, config.as_deref())?;
            warn_skipped_rules(&generation);
            println!("ok: {}", generation.summary());
            println!(
                "allowlist: {} entries in {} files, {} also on a block list",
                generation.allow.len(),
                generation.allow.sources().len(),
                generation.allow_conflicts.len()
            );
            for absent in generation.allow.absent() {
                println!(
                    "allowlist: {} does not exist (nothing allowed from it)",
                    absent.display()
                );
            }
            for conflict in &generation.allow_conflicts {
                println!("warning: {conflict}");
            }
            Ok(0)
        }
    }
}

fn run_model(command: ModelCmd) -> anyhow::Result<u8> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match command {
        ModelCmd::Info { bundle } => {
            let bundle = model_cmd::load(bundle.as_deref())?;
            write!(out, "{}", model_cmd::info(&bundle))?;
        }
        ModelCmd::Score { bundle, csv } => {
            let bundle = model_cmd::load(bundle.as_deref())?;
            let n = if csv.as_os_str() == "-" {
                model_cmd::score(&bundle, std::io::stdin().lock(), &mut out)?
            } else {
                let file = std::fs::File::open(&csv).with_context(|| csv.display().to_string())?;
                model_cmd::score(&bundle, file, &mut out)
                    .with_context(|| csv.display().to_string())?
            };
            eprintln!("scored {n} rows");
        }
        ModelCmd::Mutations {
            config,
            tar,
            donor,
            only,
        } => {
            let generation = Generation::load(1, config.as_deref())?;
            warn_skipped_rules(&generation);
            let donor =
                std::fs::read(&donor).with_context(|| format!("--donor {}", donor.display()))?;
            let only = match only {
                Some(p) => Some(
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("--only {}", p.display()))?
                        .lines()
                        .map(|l| l.trim().to_ascii_lowercase())
                        .filter(|l| !l.is_empty())
                        .collect(),
                ),
                None => None,
            };
            let n = model_cmd::mutations(&generation, &tar, &donor, only.as_ref(), &mut out)?;
            eprintln!("wrote {n} rows");
        }
    }
    std::io::Write::flush(&mut out)?;
    Ok(0)
}

/// `vigil stats` as text: the latency table, then queue and counters.
fn render_stats(stats: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let n = |v: &serde_json::Value| match v.as_u64() {
        Some(x) => x.to_string(),
        None => "-".to_owned(),
    };
    let _ = writeln!(
        out,
        "{:<11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "stage (us)", "count", "mean", "p50", "p95", "p99", "max"
    );
    for stage in crate::latency::Timed::ALL {
        let h = &stats["latency_us"][stage.as_str()];
        let _ = writeln!(
            out,
            "{:<11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            stage.as_str(),
            n(&h["count"]),
            n(&h["mean_us"]),
            n(&h["p50_us"]),
            n(&h["p95_us"]),
            n(&h["p99_us"]),
            n(&h["max_us"]),
        );
    }
    let _ = writeln!(
        out,
        "\nqueue {}/{}  pending {}  cache entries {}  uptime {} s",
        n(&stats["queue_depth"]),
        n(&stats["queue_capacity"]),
        n(&stats["pending"]),
        n(&stats["cache_entries"]),
        n(&stats["uptime_s"]),
    );
    if let Some(counters) = stats["counters"].as_object() {
        for (k, v) in counters {
            let _ = writeln!(out, "{k:<24} {}", n(v));
        }
    }
    out
}

fn warn_skipped_rules(generation: &Generation) {
    for w in &generation.rule_warnings {
        eprintln!("vigil: warning: rule file skipped: {w}");
    }
}

fn quarantine(
    config: Option<PathBuf>,
    socket: Option<PathBuf>,
    action: QuarantineCmd,
) -> anyhow::Result<u8> {
    use std::os::unix::ffi::OsStrExt;
    let base = |cmd: &str, id: Option<String>| control::Request {
        v: control::PROTOCOL_VERSION,
        cmd: cmd.to_owned(),
        id,
        ..control::Request::default()
    };
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    match action {
        QuarantineCmd::List { json } => {
            send(config, socket, base("quarantine-list", None), |reply| {
                let items = reply.get("items").cloned().unwrap_or_default();
                if json {
                    println!("{}", pretty(&items));
                    return;
                }
                let items = items.as_array().cloned().unwrap_or_default();
                println!(
                    "{:<16}  {:<20}  {:>10}  {:<10}  PATH",
                    "ID", "WHEN", "SIZE", "VERDICT"
                );
                for item in &items {
                    let s = |k: &str| item.get(k).and_then(|v| v.as_str()).unwrap_or("");
                    let size = item.get("size").and_then(|v| v.as_u64()).unwrap_or(0);
                    println!(
                        "{:<16}  {:<20}  {size:>10}  {:<10}  {}",
                        s("id"),
                        s("quarantined_at"),
                        s("verdict"),
                        s("path").escape_debug()
                    );
                }
            })
        }
        QuarantineCmd::Show { id } => {
            send(config, socket, base("quarantine-show", Some(id)), |reply| {
                println!(
                    "{}",
                    pretty(&reply.get("item").cloned().unwrap_or_default())
                );
            })
        }
        QuarantineCmd::Restore {
            id,
            to,
            force,
            overwrite,
            allow,
        } => {
            let to_hex = match to {
                Some(p) => {
                    let p = if p.is_absolute() {
                        p
                    } else {
                        std::env::current_dir()
                            .context("resolving --to against the working directory")?
                            .join(p)
                    };
                    Some(hex::encode(p.as_os_str().as_bytes()))
                }
                None => None,
            };
            let request = control::Request {
                to_hex,
                force,
                overwrite,
                ..base("quarantine-restore", Some(id))
            };
            if allow {
                return crate::allow_cmd::restore_allowed(config.as_deref(), socket, request);
            }
            send(config, socket, request, |reply| {
                let path = reply.get("restored").and_then(|v| v.as_str()).unwrap_or("");
                println!("restored: {path}");
            })
        }
        QuarantineCmd::Delete { id } => send(
            config,
            socket,
            base("quarantine-delete", Some(id)),
            |reply| {
                let id = reply.get("deleted").and_then(|v| v.as_str()).unwrap_or("");
                println!("deleted: {id}");
            },
        ),
    }
}

fn socket_path(config: Option<PathBuf>, socket: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match socket {
        Some(s) => s,
        None => {
            load_config(config.as_deref())
                .context("finding the control socket")?
                .0
                .daemon
                .socket
        }
    })
}

fn send(
    config: Option<PathBuf>,
    socket: Option<PathBuf>,
    request: control::Request,
    on_ok: impl FnOnce(&serde_json::Value),
) -> anyhow::Result<u8> {
    let socket = socket_path(config, socket)?;
    let reply = control::call_with(&socket, &request)?;
    if reply.get("ok").and_then(|v| v.as_bool()) == Some(true) {
        on_ok(&reply);
        Ok(0)
    } else {
        let error = reply
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("unknown error");
        eprintln!("vigil {}: rejected: {error}", request.cmd.replace('-', " "));
        Ok(1)
    }
}

fn request(
    config: Option<PathBuf>,
    socket: Option<PathBuf>,
    cmd: &str,
    on_ok: impl FnOnce(&serde_json::Value),
) -> anyhow::Result<u8> {
    let socket = match socket {
        Some(s) => s,
        None => {
            load_config(config.as_deref())
                .context("finding the control socket")?
                .0
                .daemon
                .socket
        }
    };
    let reply = control::call(&socket, cmd)?;
    if reply.get("ok").and_then(|v| v.as_bool()) == Some(true) {
        on_ok(&reply);
        Ok(0)
    } else {
        let error = reply
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("unknown error");
        eprintln!("vigil {cmd}: rejected: {error}");
        Ok(1)
    }
}
