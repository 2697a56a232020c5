//! `vigil policy test`: the dry run. What would a policy have denied?
//!
//! Owns: replaying exec records (the running daemon's ring, fetched over the
//! control socket, or a recorded JSON-lines file) or walking trees, through the
//! exec rules of a configuration (optionally with another profile) and the trust
//! store, and the report. Must not own: the rules (`vigil_policy::execpolicy`) or
//! the ring (`exec_history`). Nothing is enforced: this only reads.
//!
//! A replayed record carries every fact the daemon had (path, owner, mode,
//! process uid/gid and program, SHA-256); a walked file has no process, so rules
//! on the process cannot match it (as in `vigil scan --explain`). The upgrade
//! exceptions of `trusted-only` are not replayed: the report shows what the
//! steady-state policy denies.

use std::io::{BufRead, Read, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use vigil_policy::{Config, ExecFacts, ExecPolicy, Profile, RuleAction, TrustStore};

use crate::daemon::exec_history::{ExecRecord, now_ms};

/// What the dry run found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Execs (or files) looked at.
    pub seen: u64,
    /// Would be denied.
    pub denied: u64,
    /// Would be logged by an `audit` rule.
    pub audited: u64,
}

/// One verdict of the dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// "deny" or "audit".
    pub outcome: &'static str,
    /// The file.
    pub path: String,
    /// The rule's explanation.
    pub rule: String,
    /// Who ran it (the record's parent program and uid), when known.
    pub by: String,
}

/// The policy a dry run applies.
pub struct DryRun {
    policy: ExecPolicy,
    trust: Option<TrustStore>,
}

impl DryRun {
    /// The exec rules of `config`, with `profile` instead of its own when given,
    /// and the trust store when the rules use it (or it exists).
    ///
    /// # Errors
    /// A bad rule, or a `trusted-only` policy without a readable store.
    pub fn new(config: &Config, profile: Option<Profile>) -> anyhow::Result<DryRun> {
        let mut policy_config = config.policy.clone();
        if let Some(p) = profile {
            policy_config.profile = p;
        }
        let policy = ExecPolicy::new(&policy_config)?;
        let trust = match TrustStore::load(&policy_config.trust_db) {
            Ok(store) => Some(store),
            Err(e) if policy.uses_trust() => {
                return Err(anyhow::anyhow!(e))
                    .context("the policy has a trusted-only rule (run `vigil trust update`)");
            }
            Err(_) => None,
        };
        Ok(DryRun { policy, trust })
    }

    /// What the policy does with one exec record; `None` when it is allowed
    /// without comment.
    pub fn judge(&self, record: &ExecRecord) -> Option<Finding> {
        let path = record.path.as_deref().map(Path::new);
        let parent = record.parent.as_deref().map(Path::new);
        let facts = ExecFacts {
            path,
            file_uid: record.file_uid,
            file_mode: record.file_mode,
            uid: record.uid,
            gid: record.gid,
            parent,
        };
        let m = self.policy.evaluate(&facts)?;
        let outcome = match m.action {
            RuleAction::Allow => return None,
            RuleAction::Deny => "deny",
            RuleAction::Audit => "audit",
            RuleAction::TrustedOnly => {
                let mut digest = [0u8; 32];
                let known = record
                    .sha256
                    .as_deref()
                    .is_some_and(|h| hex::decode_to_slice(h, &mut digest).is_ok());
                let trusted = known
                    && path
                        .zip(self.trust.as_ref())
                        .is_some_and(|(p, t)| t.verify(p, &digest));
                if trusted {
                    return None;
                }
                "deny"
            }
        };
        Some(Finding {
            outcome,
            path: record.path.clone().unwrap_or_else(|| "?".into()),
            rule: m.explain(),
            by: match (&record.parent, record.uid) {
                (Some(p), Some(u)) => format!("run by {p} (uid {u})"),
                (Some(p), None) => format!("run by {p}"),
                (None, Some(u)) => format!("uid {u}"),
                (None, None) => String::new(),
            },
        })
    }

    /// Judges every record, writing one line per finding; returns the tally.
    pub fn report(&self, records: &[ExecRecord], out: &mut impl std::io::Write) -> Tally {
        let mut tally = Tally::default();
        for record in records {
            tally.seen += 1;
            if let Some(f) = self.judge(record) {
                match f.outcome {
                    "deny" => tally.denied += 1,
                    _ => tally.audited += 1,
                }
                let by = if f.by.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", f.by)
                };
                let _ = writeln!(
                    out,
                    "would {}: {}{by}: {}",
                    f.outcome.to_uppercase(),
                    f.path,
                    f.rule
                );
            }
        }
        tally
    }
}

/// Reads exec records from a JSON-lines file (one [`ExecRecord`] per line;
/// blank lines skipped).
///
/// # Errors
/// An unreadable file or a malformed line (named with its number).
pub fn read_records(path: &Path) -> anyhow::Result<Vec<ExecRecord>> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut out = Vec::new();
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not an exec record", path.display(), index + 1))?,
        );
    }
    Ok(out)
}

/// The earliest time (ms since the epoch) a `--since` duration reaches back to.
pub fn since_ms(since: Option<std::time::Duration>) -> u64 {
    since.map_or(0, |d| {
        now_ms().saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    })
}

/// Records for every regular file below `paths` (no process facts; SHA-256
/// computed when a trust store is loaded).
pub fn walk_records(dry: &DryRun, paths: &[PathBuf]) -> Vec<ExecRecord> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if md.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
                names.sort();
                stack.extend(names.into_iter().rev());
            }
            continue;
        }
        // Only files with an execute bit: those are what an exec rule is about.
        if !md.is_file() || md.mode() & 0o111 == 0 {
            continue;
        }
        let resolved = std::fs::canonicalize(&path).unwrap_or(path);
        let sha256 = dry.trust.as_ref().and_then(|_| sha256_of(&resolved));
        out.push(ExecRecord {
            time_ms: 0,
            path: Some(resolved.to_string_lossy().into_owned()),
            file_uid: md.uid(),
            file_mode: md.mode(),
            pid: 0,
            uid: None,
            gid: None,
            parent: None,
            sha256,
            denied: false,
        });
    }
    out
}

fn sha256_of(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => sha.update(&buf[..n]),
            Err(_) => return None,
        }
    }
    Some(hex::encode(sha.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, parent: Option<&str>) -> ExecRecord {
        ExecRecord {
            time_ms: 1,
            path: Some(path.into()),
            file_uid: 0,
            file_mode: 0o100755,
            pid: 42,
            uid: Some(33),
            gid: Some(33),
            parent: parent.map(str::to_owned),
            sha256: None,
            denied: false,
        }
    }

    #[test]
    fn server_dry_run_over_records() {
        let config = Config::default();
        let dry = DryRun {
            policy: ExecPolicy::new(&vigil_policy::PolicyConfig {
                profile: Profile::Server,
                ..config.policy.clone()
            })
            .unwrap(),
            trust: None,
        };
        let records = [
            record("/tmp/x", None),
            record("/usr/bin/dash", Some("/usr/sbin/nginx")),
            record("/usr/bin/ls", Some("/usr/bin/bash")),
        ];
        let mut out = Vec::new();
        let tally = dry.report(&records, &mut out);
        assert_eq!(
            tally,
            Tally {
                seen: 3,
                denied: 2,
                audited: 0
            }
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("would DENY: /usr/bin/dash [run by /usr/sbin/nginx (uid 33)]: rule server.service-shell"),
            "{text}"
        );
        assert!(
            text.contains("would DENY: /tmp/x [uid 33]: rule server.tmp-exec"),
            "{text}"
        );
        assert!(!text.contains("/usr/bin/ls"), "{text}");
    }
}

/// `vigil policy` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCmd {
    /// Dry run: print what the exec rules would deny (and audit) over the running
    /// daemon's recent execs (default), a recorded exec log (--events), or the
    /// executable files below PATHs. Nothing is enforced.
    ///
    /// Exit status: 0 nothing would be denied, 1 something would.
    Test {
        /// Configuration file (the rules, the trust store, the control socket).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Control socket [default: daemon.socket from the configuration].
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Apply this profile instead of the configuration's (desktop, server,
        /// lockdown).
        #[arg(long)]
        profile: Option<String>,
        /// Only execs this recent (e.g. 1h, 30m) [default: the whole ring].
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// Replay exec records from this JSON-lines file (as `exec-history`
        /// writes them) instead of asking the daemon.
        #[arg(long, conflicts_with = "paths")]
        events: Option<PathBuf>,
        /// Walk these files and directories instead of replaying execs.
        paths: Vec<PathBuf>,
        /// Print the records replayed (JSON lines, the --events format) to stdout
        /// instead of judging them: a recording for later runs.
        #[arg(long)]
        dump: bool,
    },
}

/// Runs a `vigil policy` subcommand; returns the exit code.
///
/// # Errors
/// Unreadable configuration, records or store; an unreachable daemon.
pub fn run(command: PolicyCmd) -> anyhow::Result<u8> {
    match command {
        PolicyCmd::Test {
            config,
            socket,
            profile,
            since,
            events,
            paths,
            dump,
        } => {
            let (config, _) = crate::engine::generation::load_config(config.as_deref())?;
            let profile = match profile.as_deref() {
                None => None,
                Some("desktop") => Some(Profile::Desktop),
                Some("server") => Some(Profile::Server),
                Some("lockdown") => Some(Profile::Lockdown),
                Some(other) => {
                    anyhow::bail!("--profile {other:?}: expected desktop, server or lockdown")
                }
            };
            let dry = DryRun::new(&config, profile)?;
            let since = since_ms(since);
            let (records, source) = if let Some(file) = &events {
                let mut r = read_records(file)?;
                r.retain(|r| r.time_ms >= since);
                (r, file.display().to_string())
            } else if !paths.is_empty() {
                (walk_records(&dry, &paths), "the files given".to_owned())
            } else {
                let socket = socket.unwrap_or_else(|| config.daemon.socket.clone());
                use crate::protocol::{Reply, Request, call};
                match call(&socket, Request::ExecHistory { since_ms: since })? {
                    Reply::Records { records } => (records, "the daemon's exec history".to_owned()),
                    Reply::Failed { error } => {
                        eprintln!("vigil policy test: rejected: {error}");
                        return Ok(2);
                    }
                    other => anyhow::bail!("unexpected reply to exec-history: {other:?}"),
                }
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            if dump {
                for r in &records {
                    let _ = writeln!(out, "{}", serde_json::to_string(r)?);
                }
                return Ok(0);
            }
            let tally = dry.report(&records, &mut out);
            eprintln!(
                "{} execs from {source}: {} would be denied, {} audited (profile {})",
                tally.seen,
                tally.denied,
                tally.audited,
                dry.policy.profile().as_str()
            );
            Ok(u8::from(tally.denied > 0))
        }
    }
}
