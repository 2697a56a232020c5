//! `vigil scan`: the daemon's pipeline on demand, over files and directory trees.
//!
//! Owns the walk and the report (text or JSON lines). Exit status follows clamscan:
//! 0 nothing found, 1 something found, 2 an error and nothing found.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use vigil_policy::{Decision, Reason, RuleScanner, Verdict, decide};

use crate::engine::generation::Generation;
use crate::engine::scan::{Depth, Scanner};

/// What `vigil scan` found overall.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Regular files scanned.
    pub files: u64,
    /// Files with a malicious or suspicious verdict.
    pub detections: u64,
    /// Paths that could not be scanned.
    pub errors: u64,
}

impl Summary {
    /// The process exit code: 1 if anything was found, else 2 if anything failed.
    pub fn exit_code(&self) -> u8 {
        if self.detections > 0 {
            1
        } else if self.errors > 0 {
            2
        } else {
            0
        }
    }
}

struct Report {
    path: PathBuf,
    sha256: Option<[u8; 32]>,
    size: u64,
    verdict: Result<Verdict, String>,
    reasons: Vec<Reason>,
    elapsed_us: u64,
    /// What the exec rules would do with an exec of this file by no particular
    /// process (rules on the process never match here), and whether the trust
    /// store vouches for its content.
    policy: Option<PolicyView>,
    /// The allow entry the hash matched (no detection stage ran), and the block
    /// list entry it overrides, if any.
    allowed: Option<AllowView>,
}

struct AllowView {
    entry: serde_json::Value,
    describe: String,
    overrides: Option<String>,
}

struct PolicyView {
    rule: Option<String>,
    rule_json: Option<serde_json::Value>,
    trusted: bool,
}

/// Scans every path (directories recursively, without following symlinks inside
/// them) and writes one report per file to stdout. With `explain`, every stage runs
/// (no early exit) and each file's report is followed by how its verdict was reached.
pub fn run(generation: &Generation, paths: &[PathBuf], as_json: bool, explain: bool) -> Summary {
    let mut walker = Walker {
        generation,
        scanner: Scanner::new(),
        rules: generation.rules.scanner(),
        depth: if explain {
            Depth::All
        } else {
            Depth::FirstMalicious
        },
        summary: Summary::default(),
        out: io::stdout().lock(),
        as_json,
        explain,
    };
    for path in paths {
        walker.walk(path, true);
    }
    let _ = walker.out.flush();
    walker.summary
}

struct Walker<'g> {
    generation: &'g Generation,
    scanner: Scanner,
    rules: RuleScanner<'g>,
    depth: Depth,
    summary: Summary,
    out: io::StdoutLock<'static>,
    as_json: bool,
    explain: bool,
}

impl Walker<'_> {
    fn walk(&mut self, path: &Path, top: bool) {
        // Named paths follow symlinks (as the user asked for them); entries found
        // while walking do not, so a link cannot lead the walk out of the tree or
        // into a loop.
        let md = if top {
            std::fs::metadata(path)
        } else {
            std::fs::symlink_metadata(path)
        };
        let md = match md {
            Ok(md) => md,
            Err(e) => return self.emit(error_report(path, e.to_string()), None),
        };
        if md.is_dir() {
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) => return self.emit(error_report(path, e.to_string()), None),
            };
            entries.sort();
            for entry in entries {
                self.walk(&entry, false);
            }
            return;
        }
        if !md.is_file() {
            return; // FIFOs, sockets, devices, links inside trees: nothing to scan
        }
        let started = Instant::now();
        let file = match File::options()
            .read(true)
            .custom_flags(open_flags())
            .open(path)
        {
            Ok(f) => f,
            Err(e) => return self.emit(error_report(path, e.to_string()), None),
        };
        if md.len() > self.generation.config.scan.max_file_size {
            let decision = decide(Vec::new(), &self.generation.config.decision);
            let report = Report {
                path: path.to_path_buf(),
                sha256: None,
                size: md.len(),
                verdict: Ok(decision.verdict),
                reasons: Vec::new(),
                elapsed_us: elapsed_us(started),
                policy: None,
                allowed: None,
            };
            return self.emit(report, Some(&decision));
        }
        // The daemon names files by their resolved path; so do the rules and the
        // trust store here.
        let resolved = std::fs::canonicalize(path).ok();
        let trust = self
            .generation
            .trust
            .as_ref()
            .zip(resolved.as_deref())
            .and_then(|(t, p)| t.lookup(p));
        match self.scanner.scan_fd(
            file.as_fd(),
            md.len(),
            self.generation,
            &mut self.rules,
            self.depth,
            trust,
            &|_| None,
        ) {
            Ok(result) => {
                let policy = self.policy_view(resolved.as_deref(), &md, result.trusted);
                let allowed = result.allowed.as_ref().map(|entry| AllowView {
                    entry: crate::daemon::events::allow_entry_json(entry),
                    describe: vigil_policy::allowlist::entry_ref(entry),
                    overrides: self
                        .generation
                        .hashes
                        .lookup_sha256(&result.sha256, result.size)
                        .map(vigil_policy::allowlist::entry_ref),
                });
                let report = Report {
                    path: path.to_path_buf(),
                    sha256: Some(result.sha256),
                    size: result.size,
                    verdict: Ok(result.decision.verdict),
                    reasons: result.decision.reasons.clone(),
                    elapsed_us: elapsed_us(started),
                    policy,
                    allowed,
                };
                self.emit(report, Some(&result.decision));
            }
            Err(errno) => self.emit(error_report(path, format!("read failed: {errno}")), None),
        }
    }

    /// The exec rules' and the trust store's view of a scanned file, when the
    /// generation has either.
    fn policy_view(
        &self,
        resolved: Option<&Path>,
        md: &std::fs::Metadata,
        trusted: bool,
    ) -> Option<PolicyView> {
        use std::os::unix::fs::MetadataExt;
        let policy = &self.generation.exec_policy;
        if policy.is_empty() && self.generation.trust.is_none() {
            return None;
        }
        let facts = vigil_policy::ExecFacts {
            path: resolved,
            file_uid: md.uid(),
            file_mode: md.mode(),
            uid: None,
            gid: None,
            parent: None,
        };
        let m = policy.evaluate(&facts);
        Some(PolicyView {
            rule: Some(m.map_or_else(
                || "no exec rule matches (scanned, detections denied)".to_owned(),
                |m| m.explain(),
            )),
            rule_json: m.map(|m| crate::daemon::exec_gate::rule_json(&m, None)),
            trusted,
        })
    }

    fn emit(&mut self, report: Report, decision: Option<&Decision>) {
        match &report.verdict {
            Ok(Verdict::Clean) => self.summary.files += 1,
            Ok(Verdict::Suspicious | Verdict::Malicious) => {
                self.summary.files += 1;
                self.summary.detections += 1;
            }
            Err(_) => self.summary.errors += 1,
        }
        print(
            &mut self.out,
            &report,
            self.as_json,
            decision.filter(|_| self.explain),
        );
    }
}

fn error_report(path: &Path, message: String) -> Report {
    Report {
        path: path.to_path_buf(),
        sha256: None,
        size: 0,
        verdict: Err(message),
        reasons: Vec::new(),
        elapsed_us: 0,
        policy: None,
        allowed: None,
    }
}

/// `O_NONBLOCK` so a FIFO swapped in after the type check cannot block the open;
/// `O_NOCTTY` for the same reason with terminals.
fn open_flags() -> i32 {
    (nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOCTTY).bits()
}

fn print(out: &mut impl Write, r: &Report, as_json: bool, explain: Option<&Decision>) {
    let line = if as_json {
        let (verdict, error) = match &r.verdict {
            Ok(v) => (v.as_str(), None),
            Err(e) => ("error", Some(e.as_str())),
        };
        let mut v = json!({
            "path": r.path.to_string_lossy(),
            "sha256": r.sha256.map(hex::encode),
            "size": r.size,
            "verdict": verdict,
            "reasons": r.reasons,
            "elapsed_us": r.elapsed_us,
        });
        if let Some(obj) = v.as_object_mut() {
            if let Some(e) = error {
                obj.insert("error".into(), json!(e));
            }
            if let Some(d) = explain {
                obj.insert("explain".into(), json!(d.explain()));
            }
            if let Some(p) = &r.policy {
                obj.insert("rule".into(), json!(p.rule_json));
                obj.insert("trusted".into(), json!(p.trusted));
            }
            if let Some(a) = &r.allowed {
                obj.insert("allowlist".into(), a.entry.clone());
            }
        }
        v.to_string()
    } else {
        let text = match &r.verdict {
            Ok(Verdict::Clean) if r.allowed.is_some() => {
                format!("{}: OK (allowlisted)", r.path.display())
            }
            Ok(Verdict::Clean) => format!("{}: OK", r.path.display()),
            Ok(v) => {
                let why: Vec<String> = r
                    .reasons
                    .iter()
                    .map(|x| format!("{} {}", x.id, x.detail))
                    .collect();
                format!(
                    "{}: {} ({})",
                    r.path.display(),
                    v.as_str().to_uppercase(),
                    why.join("; ")
                )
            }
            Err(e) => format!("{}: ERROR {e}", r.path.display()),
        };
        match explain {
            Some(d) => {
                let mut account = String::new();
                if let Some(p) = &r.policy {
                    if let Some(rule) = &p.rule {
                        account.push_str(&format!("policy: {rule}\n"));
                    }
                    account.push_str(if p.trusted {
                        "trust: content matches the trust store (rules, heuristics and model skipped)\n"
                    } else {
                        "trust: not a trusted package file\n"
                    });
                }
                if let Some(a) = &r.allowed {
                    account.push_str(&format!(
                        "allowlist: {} -- every detection stage skipped\n",
                        a.describe
                    ));
                    if let Some(blocked) = &a.overrides {
                        account.push_str(&format!(
                            "allowlist: overrides the block list entry {blocked}\n"
                        ));
                    }
                } else {
                    account.push_str("allowlist: not listed\n");
                }
                account.push_str(&d.explain());
                format!("{text}\n{}", indent(&account))
            }
            None => text,
        }
    };
    let _ = writeln!(out, "{line}");
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn elapsed_us(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}
