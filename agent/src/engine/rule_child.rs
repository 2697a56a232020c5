//! The daemon's YARA rules, compiled by a short-lived child process.
//!
//! Compiling runs yara-x's code generator (cranelift), and what that touches
//! stays in the compiling process's resident memory for its whole life: its
//! code pages and the heap it leaves fragmented. Measured with the shared
//! content (988 rules, yara-x alone): 31.8 MiB resident after compiling in
//! process, 16.6 MiB after loading the same set compiled elsewhere
//! (docs/performance.md). So the daemon executes its own binary
//! (`/proc/self/exe`: the same build even after an upgrade replaced the file)
//! with the hidden `compile-rules` command, which compiles exactly as
//! [`RuleSet::load`] does and writes [`vigil_policy::rules::to_bytes`]'s
//! output to its stdout; the daemon maps the native code in.
//!
//! The child is an optimisation, never a new way to fail: when it cannot run,
//! is killed at [`CHILD_LIMIT`], or sends back anything unreadable, the rules
//! are compiled in the daemon as before, which also gives a rule error its
//! usual message. The reason is kept for the log ([`CompiledBy::Fallback`]).
//!
//! At a reload the child's exec and its reads of the rule files are events the
//! running daemon answers like any other (its own executable is allowed);
//! the thread that waits here is a reload thread, never a worker.

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vigil_policy::config::RuleErrorPolicy;
use vigil_policy::{RuleSet, RuleWarning};

/// The hidden subcommand the child runs (see [`crate::cli`]).
pub const COMMAND: &str = "compile-rules";

/// How long the child may take before it is killed and the daemon compiles
/// the rules itself. Far above a real compile (0.35 s for the shared
/// content on these machines, release build): only a child stuck for good
/// meets it.
pub const CHILD_LIMIT: Duration = Duration::from_secs(120);

/// The daemon's own binary, whatever its path is now.
pub const SELF_EXE: &str = "/proc/self/exe";

/// A rule set and how it was compiled.
pub struct Loaded {
    /// The set, as [`RuleSet::load`] returns it.
    pub set: RuleSet,
    /// Rule files left out under `rules_on_error = "skip"`.
    pub warnings: Vec<RuleWarning>,
    /// Who compiled it.
    pub by: CompiledBy,
}

/// Who compiled a generation's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompiledBy {
    /// This process, as asked (the command line).
    ThisProcess,
    /// A child, in this many milliseconds from its start to the set loaded.
    Child {
        /// Wall time of the child and the load of its output.
        ms: u128,
    },
    /// This process, because the child failed for this reason.
    Fallback(String),
}

/// [`RuleSet::load`] with the compile done by `program` run as `program
/// compile-rules` (the daemon passes [`SELF_EXE`]); falls back to compiling here
/// when that fails (module docs).
///
/// # Errors
/// As [`RuleSet::load`], from the compile in this process: a child that failed
/// because of the rules is not trusted to say so.
pub fn load(
    program: &Path,
    paths: &[PathBuf],
    on_error: RuleErrorPolicy,
    builtin: bool,
) -> Result<Loaded, vigil_policy::Error> {
    let started = Instant::now();
    let why = match run_child(program, paths, on_error, builtin) {
        Ok(bytes) => match vigil_policy::rules::from_bytes(&bytes) {
            Ok((set, warnings)) => {
                let ms = started.elapsed().as_millis();
                return Ok(Loaded {
                    set,
                    warnings,
                    by: CompiledBy::Child { ms },
                });
            }
            Err(e) => e.to_string(),
        },
        Err(why) => why,
    };
    let (set, warnings) = RuleSet::load(paths, on_error, builtin)?;
    Ok(Loaded {
        set,
        warnings,
        by: CompiledBy::Fallback(why),
    })
}

/// Runs the child and returns its stdout, or why it gave none.
fn run_child(
    program: &Path,
    paths: &[PathBuf],
    on_error: RuleErrorPolicy,
    builtin: bool,
) -> Result<Vec<u8>, String> {
    let mut command = Command::new(program);
    command.arg0("vigil").arg(COMMAND);
    if builtin {
        command.arg("--builtin");
    }
    if on_error == RuleErrorPolicy::Refuse {
        command.arg("--refuse");
    }
    command
        .arg("--")
        .args(paths)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting {} {COMMAND}: {e}", program.display()))?;
    let pid = i32::try_from(child.id()).map(Pid::from_raw);
    let (done, finished) = mpsc::channel::<()>();
    // Kills the child at the limit, so a stuck one ends the reads below. It can
    // only hit the child: `done` is sent before the child is reaped.
    let watchdog = std::thread::Builder::new()
        .name("vigil-rulechild".to_owned())
        .spawn(move || {
            if let (Err(mpsc::RecvTimeoutError::Timeout), Ok(pid)) =
                (finished.recv_timeout(CHILD_LIMIT), pid)
            {
                let _ = kill(pid, Signal::SIGKILL);
            }
        });
    let mut out = Vec::new();
    let mut err = Vec::new();
    // Its stderr is a line at most (an error), so reading stdout first cannot
    // leave the child blocked on a full stderr pipe.
    let read = child
        .stdout
        .take()
        .map(|mut s| s.read_to_end(&mut out))
        .transpose()
        .and_then(|_| {
            child
                .stderr
                .take()
                .map(|mut s| s.read_to_end(&mut err))
                .transpose()
        });
    let _ = done.send(());
    let status = child.wait();
    if let Ok(watchdog) = watchdog {
        let _ = watchdog.join();
    }
    read.map_err(|e| format!("reading from {COMMAND}: {e}"))?;
    let status = status.map_err(|e| format!("waiting for {COMMAND}: {e}"))?;
    if !status.success() {
        let said = String::from_utf8_lossy(&err);
        let said = said.trim();
        return Err(format!(
            "{COMMAND} ended with {status}{}{said}",
            if said.is_empty() { "" } else { ": " }
        ));
    }
    Ok(out)
}

/// The child's side: compiles as [`RuleSet::load`] and writes the set to
/// stdout. Returns the exit code.
///
/// # Errors
/// The load's error (printed by `main`, exit code 2), or a failed write.
pub fn serve(paths: &[PathBuf], refuse: bool, builtin: bool) -> anyhow::Result<u8> {
    use std::io::Write as _;
    let on_error = if refuse {
        RuleErrorPolicy::Refuse
    } else {
        RuleErrorPolicy::Skip
    };
    let (set, warnings) = RuleSet::load(paths, on_error, builtin)?;
    let bytes = vigil_policy::rules::to_bytes(&set, &warnings)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&bytes)?;
    stdout.flush()?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory holding one rule file (removed by the caller).
    fn rules_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vigil-rulechild-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("probe.yar"),
            "rule Probe { strings: $a = \"vigil-child-probe\" condition: $a }",
        )
        .unwrap();
        dir
    }

    #[test]
    fn a_child_that_cannot_compile_leaves_the_compile_to_this_process() {
        let dir = rules_dir("fallback");
        let paths = [dir.clone()];
        let cases = [
            ("/nonexistent/vigil", "starting /nonexistent/vigil"),
            ("/bin/false", "ended with exit status: 1"),
            // Exits 0 with bytes that are not a rule set.
            ("/bin/echo", "wrong header"),
        ];
        for (program, why) in cases {
            let loaded = load(Path::new(program), &paths, RuleErrorPolicy::Refuse, false).unwrap();
            let CompiledBy::Fallback(fallback) = loaded.by else {
                panic!("{program}: {:?}", loaded.by);
            };
            assert!(fallback.contains(why), "{why:?} not in {fallback:?}");
            let found = loaded
                .set
                .scan(b"a vigil-child-probe", Duration::from_secs(5))
                .unwrap();
            assert_eq!(found.len(), 1, "{program}: {found:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rule_error_is_the_usual_error_whatever_the_child_did() {
        let dir = rules_dir("broken");
        std::fs::write(dir.join("broken.yar"), "rule {").unwrap();
        let paths = [dir.clone()];
        let error = load(
            Path::new("/bin/false"),
            &paths,
            RuleErrorPolicy::Refuse,
            false,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(error.contains("broken.yar:1"), "{error}");
    }
}
