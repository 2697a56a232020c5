//! Code piped from a network client into an interpreter (`curl … | sh`,
//! `wget -qO- … | bash`, `python3 -c '…urllib…' | sh`): the script never
//! touches a file, so no scan sees it. What the agent sees is the pipeline: the
//! exec of a network client whose standard output is a pipe, and the exec of an
//! interpreter whose standard input is the same pipe, in either order.
//!
//! Owns the table of pipe ends seen at exec ([`Pipes`]) and recognising the two
//! kinds of end. Must not own: what the daemon does with a match (the worker
//! logs it, and the `server` and `lockdown` profiles deny the exec).
//!
//! Each exec of a watched program (a network client or an interpreter, by
//! name) reads one `/proc/PID/fd/N` link; an end whose descriptor is a pipe is
//! remembered by the pipe's inode for [`KEEP`], so the other end's exec finds it
//! even when the first has already exited (a fast download) or has not yet
//! replaced the forking shell by its own program (both ends of a pipeline are
//! forked together and exec at about the same moment). An interpreter handed
//! code that fetches (`python3 -c 'import urllib…'`) is only known as a client
//! once it runs, by its command line: for those the processes whose pid is
//! within [`NEIGHBOURS`] of the interpreter's are looked at, while they run.

use std::path::{Path, PathBuf};

use vigil_policy::Interpreters;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::alerts::{Alert, Alerts};
use super::events::EventLog;
use super::priority::{self, Lane};

use crate::procfs::{cmdline_of, parent_pid, pipe_of, program_of, runs_after_exec};

/// How long an end waits in the table for the other end's exec.
pub const KEEP: Duration = Duration::from_secs(30);
/// Longest wait for an allowed exec to take effect before its command line is
/// read (its answer may wait for a scan on another worker, and the
/// deadline bounds that).
const SETTLE: Duration = Duration::from_secs(5);
/// How long a worker waits, after allowing a network client's exec, for it to
/// take effect (almost always at once) to keep its command line.
const SETTLE_ON_WORKER: Duration = Duration::from_millis(5);
/// Reports waiting for command lines at most; beyond, a report is written at
/// once with what is known.
const REPORTERS_MAX: usize = 16;
/// Ends kept at most; older ones are dropped first when the table is full.
const TABLE_MAX: usize = 4096;

/// How far from the exec'ing pid the other end is looked for.
pub const NEIGHBOURS: i32 = 16;
/// Programs that fetch from the network and write what they fetch to stdout.
const NETWORK_CLIENTS: &[&str] = &[
    "curl",
    "wget",
    "wget2",
    "fetch",
    "nc",
    "ncat",
    "netcat",
    "nc.openbsd",
    "nc.traditional",
    "socat",
    "tftp",
    "ftpget",
    "lwp-download",
    "lwp-request",
    "aria2c",
];
/// What an interpreter's command line holds when it fetches code
/// (`python3 -c 'import urllib.request…'`, `perl -MLWP::Simple -e …`).
const FETCH_MARKERS: &[&str] = &[
    "http://",
    "https://",
    "urllib",
    "requests.get",
    "socket",
    "lwp::",
    "lwp-",
    "net::http",
    "open-uri",
    "fsockopen",
];
/// Shells: they run what they read on stdin, whatever their arguments. Other
/// interpreters read stdin as data with `-c`/`-m`/`-e` (`curl … | python3 -m
/// json.tool`), which their exec does not show yet.
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "ash", "zsh", "ksh", "ksh93", "mksh", "pdksh", "yash", "csh", "tcsh",
    "fish", "busybox",
];
/// Bytes of a command line kept for the event line.
const CMDLINE_LIMIT: usize = 1024;

/// One end of the pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// Its process.
    pub pid: i32,
    /// Its program (for the exec'ing end: the file being executed).
    pub program: Option<PathBuf>,
    /// Its command line (`None` for the exec'ing end, whose new command line
    /// the kernel has not set yet).
    pub cmdline: Option<String>,
}

/// A network client's output piped into an interpreter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipedDownload {
    /// The end that reads the pipe as code.
    pub interpreter: End,
    /// The end that writes what it fetched.
    pub client: End,
    /// The pipe's inode.
    pub pipe: u64,
}

/// Which end an exec is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Interpreter,
    Client,
}

/// True for a program that fetches from the network by its name.
pub fn is_network_client(program: &Path) -> bool {
    program
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|name| NETWORK_CLIENTS.contains(&name))
}

/// True for a running process that fetches: a network client, or an
/// interpreter whose command line fetches.
fn fetches(program: &Path, cmdline: Option<&str>, interpreters: &Interpreters) -> bool {
    if is_network_client(program) {
        return true;
    }
    interpreters.matches(program)
        && cmdline.is_some_and(|line| {
            let line = line.to_ascii_lowercase();
            FETCH_MARKERS.iter().any(|m| line.contains(m))
        })
}

/// Whether an exec of `target` is worth checking at all (a name test, no I/O);
/// such execs get no kernel ignore mark, so each of them is seen.
pub fn watched(target: &Path, interpreters: &Interpreters) -> bool {
    is_network_client(target) || interpreters.matches(target)
}

/// Whether the configuration denies the exec that completes a pipeline: the
/// `server` and `lockdown` profiles do (a server has no reason to run code
/// fetched straight into a shell); `desktop` reports it only.
pub fn denied_by(config: &vigil_policy::Config) -> bool {
    matches!(
        config.policy.profile,
        vigil_policy::Profile::Server | vigil_policy::Profile::Lockdown
    )
}

/// One end seen at its exec.
#[derive(Debug, Clone)]
struct Seen {
    role: Role,
    pid: i32,
    program: PathBuf,
    /// Its command line once it runs its program ([`Pipes::settle`]).
    cmdline: Option<String>,
    at: Instant,
}

/// The pipe ends seen at exec, by pipe inode. See the module doc.
#[derive(Debug, Default)]
pub struct Pipes {
    ends: Mutex<HashMap<u64, Seen>>,
    /// Report threads waiting for command lines.
    reporters: Arc<AtomicUsize>,
}

/// Where and how a match is reported.
pub struct Report {
    /// The process whose exec completed the pipeline.
    pub exec_pid: i32,
    /// Whether that exec was denied.
    pub denied: bool,
    /// `policy.profile`, for the line.
    pub profile: &'static str,
    /// The exec'ing process's uid, for alert subscribers.
    pub process_uid: Option<u32>,
    /// The event log.
    pub events: EventLog,
    /// The alert subscribers.
    pub alerts: Arc<Alerts>,
}

impl PipedDownload {
    /// True when the reading end is a shell, which runs what it reads whatever
    /// its arguments: only then may the exec be denied before it runs.
    pub fn into_shell(&self) -> bool {
        self.interpreter
            .program
            .as_deref()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .is_some_and(|name| SHELLS.contains(&name))
    }

    /// True when the reading end's command line (once known) shows it reads
    /// its input as data: code given with `-c`/`-e`, a module with `-m`, or a
    /// per-line loop (`perl -ne`). Shells are never data-only here.
    pub fn reads_data_only(&self) -> bool {
        if self.into_shell() {
            return false;
        }
        let Some(line) = &self.interpreter.cmdline else {
            return false;
        };
        line.split_whitespace().nth(1).is_some_and(|first| {
            first.len() > 1
                && first.starts_with('-')
                && first[1..]
                    .bytes()
                    .any(|b| matches!(b, b'c' | b'e' | b'E' | b'm' | b'n' | b'p'))
        })
    }

    /// After the answer to the exec that completed the pipeline: the command
    /// lines the kernel sets only once an exec is done, for each end that runs
    /// (not the exec'ing end when `denied`). Waits up to [`SETTLE`] per end: the
    /// other end's exec may still be on another worker. Never on the path to an
    /// answer.
    pub fn with_cmdlines(mut self, exec_pid: i32, denied: bool) -> PipedDownload {
        for end in [&mut self.interpreter, &mut self.client] {
            if end.cmdline.is_some() || (denied && end.pid == exec_pid) {
                continue;
            }
            if let Some(program) = &end.program {
                end.cmdline = settled_cmdline(end.pid, program, SETTLE);
            }
        }
        self
    }
}

impl Pipes {
    /// Writes the event line (and alert) of a match, off the worker: a short
    /// thread waits (up to [`SETTLE`]) until the ends that run have exec'd, for
    /// their command lines; an interpreter that turns out to read its input as
    /// data (`python3 -m json.tool`) is not reported. With [`REPORTERS_MAX`]
    /// reports already waiting, it is written at once.
    pub fn report(&self, piped: PipedDownload, report: Report) {
        let reporters = Arc::clone(&self.reporters);
        if reporters.fetch_add(1, Ordering::AcqRel) >= REPORTERS_MAX {
            reporters.fetch_sub(1, Ordering::AcqRel);
            emit(&piped, &report);
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("vigil-pipes".into())
            .spawn({
                let reporters = Arc::clone(&reporters);
                move || {
                    priority::lower(Lane::Background);
                    let piped = piped.with_cmdlines(report.exec_pid, report.denied);
                    if !piped.reads_data_only() {
                        emit(&piped, &report);
                    }
                    reporters.fetch_sub(1, Ordering::AcqRel);
                }
            });
        if spawned.is_err() {
            reporters.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The pipeline an exec of `target` by `pid` completes, if it completes
    /// one; otherwise remembers this end when it is one.
    pub fn check(
        &self,
        pid: i32,
        target: &Path,
        interpreters: &Interpreters,
    ) -> Option<PipedDownload> {
        let role = if is_network_client(target) {
            Role::Client
        } else if interpreters.matches(target) {
            Role::Interpreter
        } else {
            return None;
        };
        let pipe = pipe_of(pid, if role == Role::Interpreter { 0 } else { 1 })?;
        let this = End {
            pid,
            program: Some(target.to_path_buf()),
            cmdline: None,
        };
        let other = self.take_other(pipe, role, pid, target).or_else(|| {
            (role == Role::Interpreter)
                .then(|| fetching_neighbour(pid, pipe, interpreters))
                .flatten()
        })?;
        Some(match role {
            Role::Interpreter => PipedDownload {
                interpreter: this,
                client: other,
                pipe,
            },
            Role::Client => PipedDownload {
                interpreter: other,
                client: this,
                pipe,
            },
        })
    }

    /// The other end of `pipe` if it was seen, removing it; otherwise records
    /// this one.
    fn take_other(&self, pipe: u64, role: Role, pid: i32, target: &Path) -> Option<End> {
        let now = Instant::now();
        let mut ends = self
            .ends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(seen) = ends.get(&pipe)
            && seen.role != role
            && now.duration_since(seen.at) < KEEP
        {
            let seen = ends.remove(&pipe)?;
            return Some(End {
                pid: seen.pid,
                program: Some(seen.program),
                cmdline: seen.cmdline,
            });
        }
        if ends.len() >= TABLE_MAX {
            ends.retain(|_, seen| now.duration_since(seen.at) < KEEP);
            if ends.len() >= TABLE_MAX {
                ends.clear();
            }
        }
        ends.insert(
            pipe,
            Seen {
                role,
                pid,
                program: target.to_path_buf(),
                cmdline: None,
                at: now,
            },
        );
        None
    }

    /// After the answer to the exec of the network client `target` by `pid`: once
    /// the process runs its new program (waiting at most [`SETTLE_ON_WORKER`]),
    /// keeps its command line with its end, for the event line of a match that
    /// comes after it exited (a fast download).
    pub fn settle(&self, pid: i32, target: &Path) {
        let Some(pipe) = pipe_of(pid, 1) else {
            return;
        };
        let cmdline = settled_cmdline(pid, target, SETTLE_ON_WORKER);
        let mut ends = self
            .ends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(seen) = ends.get_mut(&pipe)
            && seen.pid == pid
        {
            seen.cmdline = cmdline;
        }
    }
}

/// The command line of `pid` once it runs `program` (its exec was allowed a
/// moment ago); waits up to `wait` for that. `None` once it exited.
pub fn settled_cmdline(pid: i32, program: &Path, wait: Duration) -> Option<String> {
    runs_after_exec(pid, program, wait)
        .then(|| cmdline_of(pid, CMDLINE_LIMIT))
        .flatten()
        .filter(|line| !line.is_empty())
}

/// Logs and publishes a match's event line.
fn emit(piped: &PipedDownload, report: &Report) {
    let line = event_line(piped, report);
    if report.alerts.active() {
        report.alerts.publish(Alert {
            file_uid: None,
            process_uid: report.process_uid,
            line: line.clone(),
        });
    }
    report.events.emit_json(line);
}

/// The event line of a match (`event.action: "piped-download"`), with both
/// ends.
fn event_line(piped: &PipedDownload, report: &Report) -> serde_json::Value {
    let end = |e: &End| {
        serde_json::json!({
            "pid": e.pid,
            "executable": e.program.as_ref().map(|p| p.to_string_lossy().into_owned()),
            "command_line": e.cmdline,
        })
    };
    serde_json::json!({
        "@timestamp": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        "event": {
            "kind": "alert",
            "category": ["process", "intrusion_detection"],
            "action": "piped-download",
            "type": "start",
            "outcome": if report.denied { "denied" } else { "allowed" },
        },
        "process": end(&piped.interpreter),
        "vigil": {
            "pipe": piped.pipe,
            "interpreter": end(&piped.interpreter),
            "client": end(&piped.client),
            "profile": report.profile,
            "message": "a network client's output is piped into an interpreter: code that never touches a file runs (curl ... | sh)",
        },
    })
}

/// A running interpreter near `pid` that writes into `pipe` with a command line
/// that fetches (`python3 -c '…urllib…' | sh`).
fn fetching_neighbour(pid: i32, pipe: u64, interpreters: &Interpreters) -> Option<End> {
    let forker = parent_pid(pid).and_then(program_of);
    neighbours(pid).find_map(|other| {
        if pipe_of(other, 1) != Some(pipe) {
            return None;
        }
        let program = program_of(other)?;
        if forker.as_deref() == Some(program.as_path()) || !interpreters.matches(&program) {
            return None;
        }
        let cmdline = cmdline_of(other, CMDLINE_LIMIT);
        fetches(&program, cmdline.as_deref(), interpreters).then_some(End {
            pid: other,
            program: Some(program),
            cmdline,
        })
    })
}

/// The pids around `pid`, nearest first: a shell forks the members of a
/// pipeline one after the other.
fn neighbours(pid: i32) -> impl Iterator<Item = i32> {
    (1..=NEIGHBOURS)
        .flat_map(move |d| [pid.saturating_sub(d), pid.saturating_add(d)])
        .filter(|&p| p > 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_policy::interpreters::DEFAULT_INTERPRETERS;

    fn interpreters() -> Interpreters {
        let list: Vec<String> = DEFAULT_INTERPRETERS.iter().map(|s| s.to_string()).collect();
        Interpreters::new(&list).unwrap()
    }

    #[test]
    fn who_fetches() {
        let i = interpreters();
        assert!(fetches(Path::new("/usr/bin/curl"), None, &i));
        assert!(fetches(Path::new("/usr/bin/wget"), Some("wget -qO- x"), &i));
        assert!(fetches(
            Path::new("/usr/bin/python3.11"),
            Some("python3 -c import urllib.request as u; print(u.urlopen('http://x').read())"),
            &i
        ));
        assert!(!fetches(
            Path::new("/usr/bin/python3"),
            Some("python3 gen.py"),
            &i
        ));
        assert!(!fetches(Path::new("/usr/bin/cat"), Some("cat x"), &i));
    }

    #[test]
    fn shells_may_be_denied_other_interpreters_only_when_they_run_stdin() {
        let piped = |program: &str, cmdline: Option<&str>| PipedDownload {
            interpreter: End {
                pid: 2,
                program: Some(PathBuf::from(program)),
                cmdline: cmdline.map(str::to_owned),
            },
            client: End {
                pid: 1,
                program: Some(PathBuf::from("/usr/bin/curl")),
                cmdline: None,
            },
            pipe: 7,
        };
        assert!(piped("/bin/sh", None).into_shell());
        assert!(piped("/usr/bin/bash", Some("bash -c x")).into_shell());
        assert!(!piped("/usr/bin/bash", Some("bash -c x")).reads_data_only());
        assert!(!piped("/usr/bin/python3", None).into_shell());
        for (line, data) in [
            ("python3 -m json.tool", true),
            ("python3 -c import sys", true),
            ("perl -ne print", true),
            ("python3", false),
            ("python3 -", false),
            ("perl -w", false),
        ] {
            assert_eq!(
                piped("/usr/bin/python3", Some(line)).reads_data_only(),
                data,
                "{line}"
            );
        }
    }

    #[test]
    fn neighbours_are_nearest_first_and_skip_init() {
        let n: Vec<i32> = neighbours(3).take(4).collect();
        assert_eq!(n, vec![2, 4, 5, 6]);
        assert_eq!(neighbours(100).count(), 2 * NEIGHBOURS as usize);
    }

    #[test]
    fn only_interpreters_and_clients_are_watched() {
        let i = interpreters();
        assert!(watched(Path::new("/usr/bin/curl"), &i));
        assert!(watched(Path::new("/bin/sh"), &i));
        assert!(!watched(Path::new("/usr/bin/grep"), &i));
    }
}
