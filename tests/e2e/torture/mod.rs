//! Torture suite: the daemon under signals, floods, hostile files and reload storms.
//!
//! Every case checks the same three invariants, with the helpers below:
//! 1. **No opener stays blocked** past the deadline plus a margin: every open or
//!    exec runs under an [`Openers`] watchdog thread that records, as it happens,
//!    any operation still unanswered at its limit (a liveness bound, not a
//!    performance one: the margin is seconds, the deadlines hundreds of ms).
//! 2. **Nothing is lost**: every opener returns, the watched files keep their
//!    content ([`Snapshot`]), and a known-bad sentinel is still denied afterwards.
//! 3. **The daemon still answers**: `vigil stats --json` over its socket
//!    ([`stats`]), whose counters the cases also use to prove the path they meant
//!    to exercise was taken.
//!
//! Cases are sized for CI on two cores (seconds each); what each one does and
//! why it is enough is said at the case.

mod files;
mod floods;
mod inputs;
mod paths;
mod signals;
mod unprivileged_flood;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixture::*;

/// Slack on top of a deadline before an opener counts as stuck: generous, the
/// machine is shared and CI runs tests in parallel.
pub const MARGIN: Duration = Duration::from_secs(3);

/// How often the watchdog looks at the running operations.
const WATCH_TICK: Duration = Duration::from_millis(25);

/// What one operation returned: `Ok(())` (allowed), or the errno.
pub type OpResult = Result<(), i32>;

#[derive(Default)]
struct OpsState {
    /// name → (started, limit); removed when the operation returns.
    running: BTreeMap<String, (Instant, Duration)>,
    /// name → result, for the finished ones.
    done: BTreeMap<String, OpResult>,
    /// Operations the watchdog saw unanswered past their limit.
    stuck: Vec<String>,
    /// How many operations the test will start ([`Openers::expect`]).
    expected: usize,
}

/// Openers (opens, execs) run on their own threads, watched by a watchdog thread
/// that records every one still running past its limit.
pub struct Openers {
    state: Arc<Mutex<OpsState>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    watchdog: Option<thread::JoinHandle<()>>,
}

fn lock(m: &Mutex<OpsState>) -> std::sync::MutexGuard<'_, OpsState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Openers {
    /// Starts the watchdog thread.
    pub fn new() -> Openers {
        let state = Arc::new(Mutex::new(OpsState::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, st) = (Arc::clone(&state), Arc::clone(&stop));
        let watchdog = thread::spawn(move || {
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                let mut g = lock(&s);
                let late: Vec<String> = g
                    .running
                    .iter()
                    .filter(|(_, (t0, limit))| t0.elapsed() > *limit)
                    .map(|(name, (t0, limit))| {
                        format!(
                            "{name} (unanswered after {:?}, limit {limit:?})",
                            t0.elapsed()
                        )
                    })
                    .collect();
                for l in late {
                    let name = l.split(" (").next().unwrap_or("").to_owned();
                    if !g.stuck.iter().any(|s| s.starts_with(&format!("{name} ("))) {
                        g.stuck.push(l);
                    }
                }
                drop(g);
                thread::sleep(WATCH_TICK);
            }
        });
        Openers {
            state,
            stop,
            watchdog: Some(watchdog),
        }
    }

    /// Runs `op` on its own thread as operation `name` (unique), which must be
    /// answered within `limit`.
    pub fn spawn(
        &self,
        name: impl Into<String>,
        limit: Duration,
        op: impl FnOnce() -> OpResult + Send + 'static,
    ) {
        self.spawn_with_stack(256 * 1024, name.into(), limit, op);
    }

    fn spawn_with_stack(
        &self,
        stack: usize,
        name: String,
        limit: Duration,
        op: impl FnOnce() -> OpResult + Send + 'static,
    ) {
        lock(&self.state)
            .running
            .insert(name.clone(), (Instant::now(), limit));
        let state = Arc::clone(&self.state);
        thread::Builder::new()
            .stack_size(stack)
            .spawn(move || {
                let r = op();
                let mut g = lock(&state);
                g.running.remove(&name);
                g.done.insert(name, r);
            })
            .expect("spawn opener thread");
    }

    /// Runs `op` on the calling thread as operation `name` (unique), watched like
    /// [`Openers::spawn`]; returns its result.
    pub fn run(
        &self,
        name: impl Into<String>,
        limit: Duration,
        op: impl FnOnce() -> OpResult,
    ) -> OpResult {
        let name = name.into();
        lock(&self.state)
            .running
            .insert(name.clone(), (Instant::now(), limit));
        let r = op();
        let mut g = lock(&self.state);
        g.running.remove(&name);
        g.done.insert(name, r);
        r
    }

    /// Opens `path` read-only as operation `name`.
    pub fn open(&self, name: impl Into<String>, limit: Duration, path: PathBuf) {
        self.spawn(name, limit, move || open_errno(&path));
    }

    /// Runs `path` (a marker program) as operation `name`; `Ok` only when it ran
    /// and printed the marker.
    pub fn exec(&self, name: impl Into<String>, limit: Duration, path: PathBuf) {
        self.spawn(name, limit, move || exec_errno(&path));
    }

    /// Declares that `n` operations will be started, some from the test's own
    /// threads ([`Openers::run`]): waiting then also covers the ones not yet
    /// started, so a slow thread start cannot look like "all returned".
    pub fn expect(&self, n: usize) {
        lock(&self.state).expected = n;
    }

    /// How many operations have returned so far.
    pub fn finished(&self) -> usize {
        lock(&self.state).done.len()
    }

    /// Waits up to `limit` for every operation to return; returns the results.
    /// Does not assert: see [`Openers::assert_all_answered`].
    pub fn wait_all(&self, limit: Duration) -> BTreeMap<String, OpResult> {
        let t0 = Instant::now();
        let pending = || {
            let g = lock(&self.state);
            !g.running.is_empty() || g.done.len() < g.expected
        };
        while pending() && t0.elapsed() < limit {
            thread::sleep(Duration::from_millis(10));
        }
        lock(&self.state).done.clone()
    }

    /// Invariant 1 and the first half of 2: waits (up to `limit`) for every
    /// operation, then asserts that all returned and none was seen unanswered past
    /// its own limit. Returns the results.
    #[track_caller]
    pub fn assert_all_answered(
        &self,
        limit: Duration,
        ctx: &dyn Fn() -> String,
    ) -> BTreeMap<String, OpResult> {
        let done = self.wait_all(limit);
        let g = lock(&self.state);
        let running: Vec<&String> = g.running.keys().collect();
        assert!(
            running.is_empty(),
            "{} openers never returned (first: {:?}){}",
            running.len(),
            &running[..running.len().min(5)],
            ctx()
        );
        assert!(
            g.stuck.is_empty(),
            "{} openers blocked past their limit: {:?}{}",
            g.stuck.len(),
            &g.stuck[..g.stuck.len().min(5)],
            ctx()
        );
        assert!(
            done.len() >= g.expected,
            "only {} of {} operations returned in {limit:?}{}",
            done.len(),
            g.expected,
            ctx()
        );
        done
    }
}

impl Drop for Openers {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.watchdog.take() {
            let _ = h.join();
        }
    }
}

/// Opens `path` read-only: `Ok` or the errno.
pub fn open_errno(path: &Path) -> OpResult {
    open_ro(path)
        .map(|_| ())
        .map_err(|e| e.raw_os_error().unwrap_or(-1))
}

/// Runs a marker program: `Ok` when it ran and printed the marker, the exec errno
/// when the exec failed, -2 when it ran but misbehaved.
pub fn exec_errno(path: &Path) -> OpResult {
    match run(path) {
        Ok(out)
            if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == MARKER =>
        {
            Ok(())
        }
        Ok(_) => Err(-2),
        Err(e) => Err(e.raw_os_error().unwrap_or(-1)),
    }
}

/// Counts results by outcome: (allowed, denied with EPERM, other errors).
pub fn tally(results: &BTreeMap<String, OpResult>) -> (usize, usize, Vec<String>) {
    let mut allowed = 0;
    let mut denied = 0;
    let mut other = Vec::new();
    for (name, r) in results {
        match r {
            Ok(()) => allowed += 1,
            Err(e) if *e == EPERM => denied += 1,
            Err(e) => other.push(format!("{name}: errno {e}")),
        }
    }
    (allowed, denied, other)
}

/// SHA-256 of every regular file under `root`, by path: what "nothing lost" is
/// checked against.
pub struct Snapshot(BTreeMap<PathBuf, String>);

impl Snapshot {
    /// Hashes every regular file under `root` (read as root, while no daemon or a
    /// daemon that allows them watches; call it before the torture).
    pub fn take(root: &Path) -> Snapshot {
        let mut files = BTreeMap::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
                let ft = entry.file_type().expect("file type");
                if ft.is_dir() {
                    dirs.push(entry.path());
                } else if ft.is_file() {
                    let p = entry.path();
                    let h = sha256_file(&p).unwrap_or_else(|e| panic!("hash {}: {e}", p.display()));
                    files.insert(p, h);
                }
            }
        }
        Snapshot(files)
    }

    /// Invariant 2 (files): every file is still there with the same content.
    /// Reading them goes through the daemon if it still watches: pass files it
    /// allows, or call after it stopped.
    #[track_caller]
    pub fn assert_intact(&self, ctx: &dyn Fn() -> String) {
        let mut bad = Vec::new();
        for (p, h) in &self.0 {
            match sha256_file(p) {
                Ok(now) if &now == h => {}
                Ok(_) => bad.push(format!("{}: content changed", p.display())),
                Err(e) => bad.push(format!("{}: {e}", p.display())),
            }
        }
        assert!(bad.is_empty(), "files lost or changed: {bad:?}{}", ctx());
    }
}

/// Invariant 3: `vigil stats --json` over the daemon's socket succeeds; returns
/// the stats object.
#[track_caller]
pub fn stats(d: &Daemon, socket: &Path) -> Value {
    let out = d.cli(
        None,
        &[
            "stats".as_ref(),
            "--json".as_ref(),
            "--socket".as_ref(),
            socket.as_os_str(),
        ],
    );
    assert!(
        out.status.success(),
        "vigil stats after the torture: {}{}",
        show(&out),
        d.context()
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("vigil stats --json: {e}: {}", show(&out)))
}

/// A counter from a [`stats`] object (0 when absent).
pub fn counter(stats: &Value, name: &str) -> u64 {
    stats
        .pointer(&format!("/counters/{name}"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Polls `vigil stats` until counter `name` reaches `at_least` (for up to
/// `limit`); returns the stats.
#[track_caller]
pub fn wait_counter(d: &Daemon, cfg: &Config, name: &str, at_least: u64, limit: Duration) -> Value {
    let until = Instant::now() + limit;
    loop {
        let s = stats(d, &cfg.socket);
        if counter(&s, name) >= at_least {
            return s;
        }
        assert!(
            Instant::now() < until,
            "{name} stayed below {at_least}: {s}{}",
            d.context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The TOML of `cfg` with `lines` added to its `[scan]` table.
pub fn with_scan(cfg: &Config, lines: &str) -> String {
    cfg.to_toml()
        .replace("[scan]\n", &format!("[scan]\n{lines}\n"))
}

/// A known-bad sentinel: writes `name` on the tmpfs with content listed in a hash
/// list at `list` (returned: the sentinel's path). Opening it must be denied
/// whenever the daemon runs.
pub fn sentinel(sb: &Sandbox, name: &str, list: &Path) -> PathBuf {
    let path = sb.mnt(name);
    let data = format!("vigil torture sentinel {name}\n").into_bytes();
    write_file(&path, &data, 0o644);
    write_hash_list(list, &[&sha256_hex(&data)]);
    path
}

/// Invariant 2 (detection): the sentinel is still denied.
#[track_caller]
pub fn assert_sentinel_denied(d: &Daemon, path: &Path) {
    let p = path.to_path_buf();
    let res = within(Duration::from_secs(10), move || open_ro(&p).map(|_| ()));
    let Some(res) = res else {
        panic!("sentinel open unanswered for 10 s{}", d.context());
    };
    assert_denied(
        &res,
        &format!("the known-bad sentinel afterwards{}", d.context()),
    );
}
