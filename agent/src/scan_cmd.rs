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
use vigil_policy::{Reason, Verdict, decide};

use crate::generation::Generation;
use crate::scan::Scanner;

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
}

/// Scans every path (directories recursively, without following symlinks inside
/// them) and writes one report per file to stdout.
pub fn run(generation: &Generation, paths: &[PathBuf], as_json: bool) -> Summary {
    let mut scanner = Scanner::new();
    let mut summary = Summary::default();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for path in paths {
        walk(path, true, &mut |report| {
            match &report.verdict {
                Ok(Verdict::Clean) => summary.files += 1,
                Ok(Verdict::Suspicious | Verdict::Malicious) => {
                    summary.files += 1;
                    summary.detections += 1;
                }
                Err(_) => summary.errors += 1,
            }
            print(&mut out, &report, as_json);
        }, generation, &mut scanner);
    }
    let _ = out.flush();
    summary
}

fn walk(path: &Path, top: bool, emit: &mut dyn FnMut(Report), generation: &Generation, scanner: &mut Scanner) {
    let started = Instant::now();
    let error = |e: String| Report {
        path: path.to_path_buf(),
        sha256: None,
        size: 0,
        verdict: Err(e),
        reasons: Vec::new(),
        elapsed_us: 0,
    };
    // Named paths follow symlinks (as the user asked for them); entries found while
    // walking do not, so a link cannot lead the walk out of the tree or into a loop.
    let md = if top { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) };
    let md = match md {
        Ok(md) => md,
        Err(e) => return emit(error(e.to_string())),
    };
    if md.is_dir() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => return emit(error(e.to_string())),
        };
        entries.sort();
        for entry in entries {
            walk(&entry, false, emit, generation, scanner);
        }
        return;
    }
    if !md.is_file() {
        return; // FIFOs, sockets, devices, links inside trees: nothing to scan
    }
    let file = match File::options()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)
    {
        Ok(f) => f,
        Err(e) => return emit(error(e.to_string())),
    };
    if md.len() > generation.config.scan.max_file_size {
        let decision = decide(Vec::new(), generation.config.decision.mode);
        return emit(Report {
            path: path.to_path_buf(),
            sha256: None,
            size: md.len(),
            verdict: Ok(decision.verdict),
            reasons: decision.reasons,
            elapsed_us: elapsed_us(started),
        });
    }
    match scanner.scan_fd(file.as_fd(), generation) {
        Ok(result) => emit(Report {
            path: path.to_path_buf(),
            sha256: Some(result.sha256),
            size: result.size,
            verdict: Ok(result.decision.verdict),
            reasons: result.decision.reasons,
            elapsed_us: elapsed_us(started),
        }),
        Err(errno) => emit(error(format!("read failed: {errno}"))),
    }
}

/// `O_NONBLOCK` so a FIFO swapped in after the type check cannot block the open;
/// `O_NOCTTY` for the same reason with terminals.
fn libc_flags() -> i32 {
    (nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOCTTY).bits()
}

fn print(out: &mut impl Write, r: &Report, as_json: bool) {
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
        if let (Some(e), Some(obj)) = (error, v.as_object_mut()) {
            obj.insert("error".into(), json!(e));
        }
        v.to_string()
    } else {
        match &r.verdict {
            Ok(Verdict::Clean) => format!("{}: OK", r.path.display()),
            Ok(v) => {
                let why: Vec<String> = r.reasons.iter().map(|x| format!("{} {}", x.id, x.detail)).collect();
                format!("{}: {} ({})", r.path.display(), v.as_str().to_uppercase(), why.join("; "))
            }
            Err(e) => format!("{}: ERROR {e}", r.path.display()),
        }
    };
    let _ = writeln!(out, "{line}");
}

fn elapsed_us(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}
