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
use crate::{control, daemon, eval_cmd, features_cmd, model_cmd, scan_cmd};

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
        Cmd::Status { config, socket } => request(config, socket, "status", |reply| {
            let status = reply.get("status").cloned().unwrap_or_default();
            println!(
                "{}",
                serde_json::to_string_pretty(&status).unwrap_or_default()
            );
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
        Cmd::CheckConfig { config } => {
            let generation = Generation::load(1, config.as_deref())?;
            warn_skipped_rules(&generation);
            println!("ok: {}", generation.summary());
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

fn warn_skipped_rules(generation: &Generation) {
    for w in &generation.rule_warnings {
        eprintln!("vigil: warning: rule file skipped: {w}");
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
