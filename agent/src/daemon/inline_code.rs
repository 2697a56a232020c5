//! Code handed to an interpreter on its command line (`sh -c '…'`,
//! `python3 -c …`, `perl -e …`, `node -e …`, `php -r …`) never reaches a file,
//! so fanotify never shows it. The kernel sets the new command line only once
//! an exec has taken effect, after the permission event was answered: this
//! code cannot be denied, only scanned as soon as it is readable and stopped.
//!
//! Owns the bounded queue between the workers and the inline-code thread, and
//! that thread. After an allowed exec of a program on `watch.interpreters`, a
//! worker hands the pid over and never waits (a full queue drops it:
//! `inline_dropped`). The thread waits (at most [`SETTLE`]) until the process
//! runs the new program, takes the inline code out of its arguments, and scans
//! it like a script file (hash lists, rules, heuristics). A clean verdict adds
//! nothing. A suspicious one, or a malicious one in audit mode, is an event
//! line (`event.action: "inline-code"`) and an alert; a malicious one in
//! enforce mode kills the process and the children it already started
//! (SIGKILL), checked by pid and start time so a reused pid is never hit.
//! Limits: code that ran to its end before the thread read it (a few
//! milliseconds) is not seen; code read from elsewhere at run time
//! (`sh -c "$(curl …)"`) is only as visible as its text (the command
//! substitution, not what it fetched).
//! Must not own: the scan stages ([`crate::engine::scan`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use vigil_policy::{Mode, Verdict};

use super::alerts::{Alert, Alerts};
use super::events::EventLog;
use super::priority::{self, Lane};
use super::stats::Stats;
use crate::engine::generation::Generation;
use crate::engine::scan::{Depth, ScanResult, scan_bytes};
use crate::procfs::{args_of, parent_pid, program_of, runs_after_exec, start_time, uid_of};

/// Execs waiting for the thread; more are dropped.
const QUEUE: usize = 256;
/// Longest wait for an allowed exec to take effect.
const SETTLE: Duration = Duration::from_secs(2);
/// Bytes of a command line read (an argument is at most 128 KiB).
const ARGS_LIMIT: usize = 256 * 1024;
/// Characters of the code shown in an event line.
const CODE_SHOWN: usize = 512;

/// One allowed exec of an interpreter.
struct Exec {
    pid: i32,
    program: PathBuf,
}

/// The workers' end of the queue.
pub struct InlineCode {
    tx: SyncSender<Exec>,
    stats: Arc<Stats>,
}

/// What the thread reports through.
struct Outputs {
    events: EventLog,
    alerts: Arc<Alerts>,
    stats: Arc<Stats>,
}

impl InlineCode {
    /// Starts the inline-code thread.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn start(
        generation: Arc<ArcSwap<Generation>>,
        events: EventLog,
        alerts: Arc<Alerts>,
        stats: Arc<Stats>,
    ) -> std::io::Result<InlineCode> {
        let (tx, rx) = sync_channel(QUEUE);
        let out = Outputs {
            events,
            alerts,
            stats: Arc::clone(&stats),
        };
        thread::Builder::new()
            .name("vigil-inline".into())
            .spawn(move || {
                priority::lower(Lane::Background);
                run(&rx, &generation, &out)
            })?;
        Ok(InlineCode { tx, stats })
    }

    /// Hands over the allowed exec of interpreter `program` by `pid`, or drops
    /// it when the thread is behind. Never blocks.
    pub fn offer(&self, pid: i32, program: &Path) {
        let exec = Exec {
            pid,
            program: program.to_path_buf(),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(exec) {
            Stats::bump(&self.stats.inline_dropped);
        }
    }
}

/// The thread: one YARA scanner per generation, rebuilt when a reload swaps it.
/// Ends when every sender is gone.
fn run(rx: &Receiver<Exec>, current: &ArcSwap<Generation>, out: &Outputs) {
    let mut carried: Option<Exec> = None;
    loop {
        let generation = current.load_full();
        let mut rules = generation.rules.scanner();
        // Like a worker's scanner, at the thread's start (after a reload an
        // exec is waiting): the first check would pay the new scanner's first
        // use while the program it judges runs on.
        if carried.is_none() && generation.config.scan.inline_code {
            super::worker::warm_up(&mut rules, &generation);
        }
        loop {
            let Some(exec) = carried.take().or_else(|| rx.recv().ok()) else {
                return;
            };
            if current.load().id != generation.id {
                carried = Some(exec);
                break;
            }
            if generation.config.scan.inline_code {
                handle(&exec, &generation, &mut rules, out);
            }
        }
    }
}

fn handle(
    exec: &Exec,
    generation: &Generation,
    rules: &mut vigil_policy::RuleScanner<'_>,
    out: &Outputs,
) {
    let Some(started) = settled(exec.pid, &exec.program) else {
        return;
    };
    let Some(args) = args_of(exec.pid, ARGS_LIMIT) else {
        return;
    };
    let Some(code) = inline_code(&exec.program, &args) else {
        return;
    };
    Stats::bump(&out.stats.inline_scanned);
    let result = scan_bytes(code.as_bytes(), generation, rules, Depth::FirstMalicious);
    let verdict = result.decision.verdict;
    if verdict == Verdict::Clean {
        return;
    }
    Stats::bump(&out.stats.inline_detected);
    let enforce = generation.config.decision.mode == Mode::Enforce;
    let killed = if verdict == Verdict::Malicious && enforce {
        stop(exec.pid, started, &exec.program)
    } else {
        Vec::new()
    };
    if !killed.is_empty() {
        Stats::bump(&out.stats.inline_killed);
    }
    let outcome = match (verdict, enforce, killed.is_empty()) {
        (Verdict::Malicious, true, false) => "killed",
        // Ran to its end (or exec'd another program) before it could be stopped.
        (Verdict::Malicious, true, true) => "exited",
        _ => "allowed",
    };
    let uid = uid_of(exec.pid);
    let line = event_line(&Detection {
        exec,
        args: &args,
        code: &code,
        result: &result,
        generation,
        uid,
        outcome,
        killed: &killed,
    });
    if out.alerts.active() {
        out.alerts.publish(Alert {
            file_uid: None,
            process_uid: uid,
            line: line.clone(),
        });
    }
    tracing::warn!(pid = exec.pid, program = %exec.program.display(), verdict = verdict.as_str(), outcome, "inline code on an interpreter's command line");
    out.events.emit_json(line);
}

/// The start time of `pid` once it runs `program` (its exec was allowed a
/// moment ago); `None` when it exited or runs something else after
/// [`SETTLE`].
fn settled(pid: i32, program: &Path) -> Option<u64> {
    runs_after_exec(pid, program, SETTLE)
        .then(|| start_time(pid))
        .flatten()
}

/// Kills `pid` if it is still the process that started at `started` running
/// `program`, then the children it started meanwhile (and theirs); returns the
/// pids killed, the first being `pid`.
fn stop(pid: i32, started: u64, program: &Path) -> Vec<i32> {
    let same =
        start_time(pid) == Some(started) && program_of(pid).is_some_and(|p| p.as_path() == program);
    if !same || kill(Pid::from_raw(pid), Signal::SIGKILL).is_err() {
        return Vec::new();
    }
    let mut killed = vec![pid];
    for child in descendants(pid) {
        if kill(Pid::from_raw(child), Signal::SIGKILL).is_ok() {
            killed.push(child);
        }
    }
    killed
}

/// Every process below `root`, from one walk of `/proc`.
fn descendants(root: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for pid in dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        if let Some(parent) = parent_pid(pid) {
            children.entry(parent).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// How an interpreter takes code on its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// sh, bash, dash, zsh, ksh, ash: `-c CODE`.
    Shell,
    /// python*: `-c CODE`.
    Python,
    /// perl, ruby, lua: `-e CODE` (repeatable; perl and ruby also `-eCODE`).
    Perl,
    /// node: `-e`/`-p CODE`, `--eval`/`--print CODE`.
    Node,
    /// php: `-r CODE`, `--run CODE`.
    Php,
}

impl Family {
    fn of(name: &str) -> Option<Family> {
        let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        match base {
            "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "ash" | "rbash" => {
                Some(Family::Shell)
            }
            "python" | "pypy" => Some(Family::Python),
            "perl" | "ruby" | "lua" | "luajit" => Some(Family::Perl),
            "node" | "nodejs" => Some(Family::Node),
            "php" => Some(Family::Php),
            _ => None,
        }
    }

    /// Short options whose argument is the code.
    fn code_letters(self) -> &'static [char] {
        match self {
            Family::Shell | Family::Python => &['c'],
            Family::Perl => &['e', 'E'],
            Family::Node => &['e', 'p'],
            Family::Php => &['r'],
        }
    }

    /// Long options whose argument is the code.
    fn code_longs(self) -> &'static [&'static str] {
        match self {
            Family::Node => &["--eval", "--print"],
            Family::Php => &["--run"],
            Family::Shell | Family::Python | Family::Perl => &[],
        }
    }

    /// Short options that take a separate argument that is not code.
    fn arg_letters(self) -> &'static [char] {
        match self {
            Family::Shell => &['o', 'O'],
            Family::Python => &['W', 'X'],
            Family::Perl => &['I', 'M'],
            Family::Node => &['r'],
            Family::Php => &['c', 'd', 'z'],
        }
    }

    /// One piece of code, after which the arguments are the code's own.
    fn single(self) -> bool {
        matches!(self, Family::Shell | Family::Python)
    }
}

/// The code interpreter `program` was given on its command line `args`
/// (`args[0]` is the name it was started as), pieces joined by newlines;
/// `None` when it runs a file, a module or stdin.
fn inline_code(program: &Path, args: &[String]) -> Option<String> {
    let name = program.file_name()?.to_str()?;
    let mut rest = args.get(1..)?;
    let family = if name == "busybox" {
        // `busybox sh -c …`: the applet, then its arguments.
        let applet = rest.first()?;
        rest = rest.get(1..)?;
        Family::of(applet)?
    } else {
        Family::of(name)?
    };
    let mut code = Vec::new();
    let mut i = 0;
    while let Some(arg) = rest.get(i) {
        i += 1;
        if arg == "--" {
            break;
        }
        if family.code_longs().contains(&arg.as_str()) {
            code.extend(rest.get(i).cloned());
            i += 1;
            continue;
        }
        if arg.starts_with("--") {
            continue;
        }
        let Some(cluster) = arg
            .strip_prefix('-')
            .or_else(|| arg.strip_prefix('+'))
            .filter(|c| !c.is_empty())
        else {
            // A script, a module name, or the code's own arguments.
            break;
        };
        if let Some(at) = cluster.find(|c| family.code_letters().contains(&c)) {
            let attached = &cluster[at + 1..];
            if family == Family::Perl && !attached.is_empty() {
                code.push(attached.to_owned());
            } else {
                code.extend(rest.get(i).cloned());
                i += 1;
            }
            if family.single() {
                break;
            }
        } else if cluster
            .chars()
            .last()
            .is_some_and(|c| family.arg_letters().contains(&c))
        {
            i += 1;
        }
    }
    (!code.is_empty()).then(|| code.join("\n"))
}

/// What an event line says.
struct Detection<'a> {
    exec: &'a Exec,
    args: &'a [String],
    code: &'a str,
    result: &'a ScanResult,
    generation: &'a Generation,
    uid: Option<u32>,
    outcome: &'a str,
    killed: &'a [i32],
}

/// The event line of inline code found malicious or suspicious
/// (`event.action: "inline-code"`).
fn event_line(d: &Detection<'_>) -> serde_json::Value {
    let decision = &d.result.decision;
    let shown: String = d.code.chars().take(CODE_SHOWN).collect();
    json!({
        "@timestamp": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        "event": {
            "kind": "alert",
            "category": ["malware", "process"],
            "action": "inline-code",
            "type": "start",
            "outcome": d.outcome,
        },
        "user": { "id": d.uid.map(|u| u.to_string()) },
        "process": {
            "pid": d.exec.pid,
            "executable": d.exec.program.to_string_lossy(),
            "args": d.args,
        },
        "threat": {
            "indicator": { "name": decision.reasons.first().map(|r| r.detail.as_str()) },
        },
        "vigil": {
            "verdict": decision.verdict.as_str(),
            "mode": crate::engine::generation::mode_str(d.generation.config.decision.mode),
            "reasons": decision.reasons,
            "generation": d.generation.id,
            "code": shown,
            "code_sha256": hex::encode(d.result.sha256),
            "killed": d.killed,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(program: &str, args: &[&str]) -> Option<String> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        inline_code(Path::new(program), &args)
    }

    #[test]
    fn shells_and_python_take_one_piece_of_code() {
        assert_eq!(
            code("/bin/sh", &["sh", "-c", "echo hi"]).as_deref(),
            Some("echo hi")
        );
        assert_eq!(
            code("/usr/bin/bash", &["bash", "-ec", "id", "name", "-c", "x"]).as_deref(),
            Some("id")
        );
        assert_eq!(
            code("/usr/bin/bash", &["bash", "-o", "pipefail", "-c", "a | b"]).as_deref(),
            Some("a | b")
        );
        assert_eq!(
            code(
                "/usr/bin/python3.11",
                &["python3", "-W", "ignore", "-c", "print(1)"]
            )
            .as_deref(),
            Some("print(1)")
        );
        assert_eq!(
            code("/bin/busybox", &["busybox", "sh", "-c", "wget x"]).as_deref(),
            Some("wget x")
        );
        // Files, modules, stdin: nothing inline.
        assert_eq!(code("/bin/sh", &["sh", "./x.sh", "-c", "y"]), None);
        assert_eq!(code("/bin/sh", &["sh"]), None);
        assert_eq!(
            code("/usr/bin/python3", &["python3", "-m", "http.server"]),
            None
        );
        assert_eq!(
            code("/usr/bin/python3", &["python3", "x.py", "-c", "y"]),
            None
        );
        assert_eq!(code("/bin/busybox", &["busybox", "ls", "-c"]), None);
        assert_eq!(code("/usr/bin/awk", &["awk", "-c", "x"]), None);
    }

    #[test]
    fn perl_node_and_php_forms() {
        assert_eq!(
            code("/usr/bin/perl", &["perl", "-e", "a;", "-e", "b;"]).as_deref(),
            Some("a;\nb;")
        );
        assert_eq!(
            code("/usr/bin/perl", &["perl", "-le", "print 1"]).as_deref(),
            Some("print 1")
        );
        assert_eq!(
            code("/usr/bin/perl", &["perl", "-eprint"]).as_deref(),
            Some("print")
        );
        assert_eq!(code("/usr/bin/perl", &["perl", "-I", "lib", "x.pl"]), None);
        assert_eq!(
            code("/usr/bin/node", &["node", "--eval", "require('x')"]).as_deref(),
            Some("require('x')")
        );
        assert_eq!(
            code("/usr/bin/php8.2", &["php", "-r", "system('id');"]).as_deref(),
            Some("system('id');")
        );
    }

    #[test]
    fn a_process_below_us_is_a_descendant() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        let me = i32::try_from(std::process::id()).unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        assert!(descendants(me).contains(&pid));
        assert!(!descendants(pid).contains(&me));
        let _ = child.kill();
        let _ = child.wait();
    }
}
