//! The command line: what each subcommand means and which exit code it returns.
//!
//! Owns argument parsing and the mapping of outcomes to exit codes (0 ok, 1 found
//! something or a request was refused, 2 usage or runtime error).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::eval_cmd::Label;
use crate::generation::{Generation, load_config};
use crate::{control, daemon, eval_cmd, features_cmd, scan_cmd};

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
        /// Files or directories (recursive).
        paths: Vec<PathBuf>,
    },
    /// Validate a configuration and the content it names, without a daemon.
    CheckConfig {
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
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
            paths,
        } => {
            if tar.is_empty() && paths.is_empty() {
                anyhow::bail!("vigil features: give at least one PATH or --tar ARCHIVE");
            }
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let written = features_cmd::run(&mut out, &paths, &tar, &label, all_files)?;
            std::io::Write::flush(&mut out)?;
            eprintln!(
                "wrote {} rows ({} files skipped)",
                written.rows, written.skipped
            );
            Ok(0)
        }
        Cmd::CheckConfig { config } => {
            let generation = Generation::load(1, config.as_deref())?;
            warn_skipped_rules(&generation);
            println!("ok: {}", generation.summary());
            Ok(0)
        }
    }
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
