//! The command line: what each subcommand means and which exit code it returns.
//!
//! Owns argument parsing and the mapping of outcomes to exit codes (0 ok, 1 found
//! something or a request was refused, 2 usage or runtime error). Each
//! subcommand is carried out by its front end in [`crate::cmd`], or by
//! [`crate::daemon`] for `vigil daemon`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::cmd::eval::Label;
use crate::cmd::model::ModelCmd;
use crate::cmd::quarantine::QuarantineCmd;
use crate::cmd::{self, ctl, load_generation};
use crate::daemon;

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
        /// Also write one CSV line per evaluated file here: set, label, name,
        /// sha256, strata, verdict, the model stage's verdict alone, and the ids
        /// of its findings (for reports by malware family or source).
        #[arg(long)]
        per_file: Option<PathBuf>,
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
        action: crate::cmd::trust::TrustCmd,
    },
    /// Exec policies: a dry run of the rules over what the daemon saw.
    Policy {
        /// What to do.
        #[command(subcommand)]
        action: crate::cmd::policy::PolicyCmd,
    },
    /// Allow a file by its SHA-256 after a false alarm (root): append it to
    /// local.sha256 in the first `content.allow` directory with a comment, who and
    /// when, and reload the daemon. `--list` shows every allowed hash, `--remove`
    /// takes one back.
    ///
    /// An allowed file skips every detection stage (exec rules of `[policy]` still
    /// apply). Exit status 1 when refused or not done.
    Allow(crate::cmd::allow::AllowArgs),
    /// Fetch, verify and switch in new content from the sources of [update],
    /// then reload the daemon; --rollback goes back one version, --status shows
    /// each source.
    ///
    /// Exit status: 0 a new version is in force, 1 nothing new, 2 an error (the
    /// running content stays).
    Update(crate::cmd::update::UpdateArgs),
    /// Signed content bundles: pack a directory, verify a bundle, make keys.
    Bundle {
        /// What to do.
        #[command(subcommand)]
        action: crate::cmd::update::BundleCmd,
    },
    /// Validate a configuration and the content it names, without a daemon.
    CheckConfig {
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Compile YARA rules and write them, native code included, to stdout
    /// (internal: the daemon runs this as a child, `engine::rule_child`).
    #[command(name = crate::engine::rule_child::COMMAND, hide = true)]
    CompileRules {
        /// Add the built-in rules.
        #[arg(long)]
        builtin: bool,
        /// Fail on a rule file that does not compile (else skip it).
        #[arg(long)]
        refuse: bool,
        /// Rule files and directories.
        #[arg(last = true)]
        paths: Vec<PathBuf>,
    },
}

/// Runs the parsed command; returns the process exit code.
///
/// # Errors
/// Usage and runtime errors (exit code 2, printed by `main`).
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Cmd::Daemon { config } => daemon::run(config).map(|()| 0),
        Cmd::CompileRules {
            builtin,
            refuse,
            paths,
        } => crate::engine::rule_child::serve(&paths, refuse, builtin),
        Cmd::Scan {
            config,
            json,
            explain,
            paths,
        } => {
            let generation = load_generation(config.as_deref())?;
            let summary = cmd::scan::run(&generation, &paths, json, explain);
            eprintln!(
                "scanned {} files: {} detections, {} errors",
                summary.files, summary.detections, summary.errors
            );
            Ok(summary.exit_code())
        }
        Cmd::Reload { config, socket } => ctl::reload(&ctl::socket_path(config, socket)?),
        Cmd::Status {
            config,
            socket,
            json,
        } => ctl::status(&ctl::socket_path(config, socket)?, json),
        Cmd::Stats {
            config,
            socket,
            json,
        } => ctl::stats(&ctl::socket_path(config, socket)?, json),
        Cmd::Eval {
            config,
            malicious,
            benign,
            all_files,
            per_file,
        } => {
            let generation = load_generation(config.as_deref())?;
            let mut report = match &per_file {
                Some(p) => {
                    let mut f = std::io::BufWriter::new(
                        std::fs::File::create(p)
                            .with_context(|| format!("creating {}", p.display()))?,
                    );
                    writeln!(f, "{}", cmd::eval::PER_FILE_HEADER)?;
                    Some(f)
                }
                None => None,
            };
            let mut sets = Vec::new();
            let labelled = malicious.into_iter().map(|p| (p, Label::Malicious));
            for (path, label) in labelled.chain(benign.into_iter().map(|p| (p, Label::Benign))) {
                let writer = report.as_mut().map(|w| w as &mut dyn std::io::Write);
                let tally = cmd::eval::evaluate_set(&generation, &path, label, all_files, writer)?;
                sets.push((path, label, tally));
            }
            if let Some(mut f) = report {
                f.flush()?;
            }
            print!("{}", cmd::eval::render(&sets));
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
                cmd::features::run(&mut out, &paths, &tar, &label, all_files, donor.as_deref())?;
            std::io::Write::flush(&mut out)?;
            eprintln!(
                "wrote {} rows ({} files skipped)",
                written.rows, written.skipped
            );
            Ok(0)
        }
        Cmd::Model { command } => cmd::model::run(command),
        Cmd::Quarantine {
            config,
            socket,
            action,
        } => cmd::quarantine::run(config, socket, action),
        Cmd::Notifier { config, socket } => {
            crate::logging::init("info");
            cmd::notifier::run(ctl::socket_path(config, socket)?).map(|()| 0)
        }
        Cmd::Alerts {
            config,
            socket,
            json,
        } => ctl::alerts(&ctl::socket_path(config, socket)?, json),
        Cmd::Trust { action } => cmd::trust::run(action),
        Cmd::Policy { action } => cmd::policy::run(action),
        Cmd::Allow(args) => cmd::allow::run(args),
        Cmd::Update(args) => cmd::update::run(args),
        Cmd::Bundle { action } => cmd::update::bundle(action),
        Cmd::CheckConfig { config } => {
            let generation = load_generation(config.as_deref())?;
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
