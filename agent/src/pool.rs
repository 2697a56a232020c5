//! The bounded worker pool: from a [`Pending`] event to its answer.
//!
//! Owns the worker threads, their queue and each worker's [`Scanner`]. The reader
//! hands each event over with [`Pool::submit`]; a full queue hands it straight back
//! (the reader answers it with the overflow action, never waits). A worker pins the
//! current generation, asks the verdict cache, scans on a miss, **answers first**,
//! then queues the kernel ignore mark for the mark thread ([`IgnoreMarks`]), hands
//! a file to quarantine to the quarantine thread, publishes the alert to
//! subscribers and passes a record to the event log (each through a bounded
//! queue that drops rather than waits). The
//! deadline thread may answer before the worker does; the worker still finishes the
//! scan so the late verdict is logged and cached.

use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use nix::sys::fanotify::MaskFlags;
use nix::sys::stat::{FileStat, SFlag, fstat};
use vigil_models::sniff::{SNIFF_LEN, sniff};
use vigil_policy::{
    Action, Mode, RuleAction, RuleMatch, RuleScanner, ScanOnOpen, TrustEntry, TrustOutcome,
    Verdict, decide,
};

use crate::alerts::{Alert, Alerts};
use crate::cache::{Cached, FileKey, Lookup, VerdictCache};
use crate::events::{EventAction, EventLog, EventRecord};
use crate::exec_gate::{self, Gate, ProcessFacts};
use crate::exec_history::{ExecHistory, ExecRecord, now_ms};
use crate::fanotify::Group;
use crate::generation::{Generation, mode_str};
use crate::ignore_marks::IgnoreMarks;
use crate::latency::Timed;
use crate::quarantine::{Detected, Quarantiner};
use crate::respond::{AccessKind, AnsweredBy, Pending};
use crate::scan::{Depth, Scanner, read_prefix};
use crate::stats::Stats;

/// Everything a worker shares with the rest of the daemon.
pub struct Context {
    /// The fanotify group (answers, ignore marks).
    pub group: Group,
    /// The current generation; each decision pins one.
    pub generation: Arc<ArcSwap<Generation>>,
    /// The verdict cache.
    pub cache: Arc<VerdictCache>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// The JSON event log.
    pub events: EventLog,
    /// The thread that adds kernel ignore marks for clean files.
    pub marks: IgnoreMarks,
    /// Where files whose decision says quarantine go, after the answer.
    pub quarantine: Quarantiner,
    /// Live alert subscribers (`vigil notifier`).
    pub alerts: Arc<Alerts>,
    /// The recent execs, for `vigil policy test`.
    pub history: Arc<ExecHistory>,
}

/// The bounded pool. Dropping the last sender (via [`Pool::close`]) stops the
/// workers once the queue is empty.
pub struct Pool {
    tx: Sender<Arc<Pending>>,
    handles: Vec<thread::JoinHandle<()>>,
}

impl Pool {
    /// Starts `workers` threads behind a queue of `capacity` events.
    ///
    /// # Errors
    /// When a thread cannot be spawned.
    pub fn start(workers: usize, capacity: usize, ctx: Arc<Context>) -> std::io::Result<Pool> {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx: Receiver<Arc<Pending>> = rx.clone();
            let ctx = Arc::clone(&ctx);
            handles.push(
                thread::Builder::new()
                    .name(format!("vigil-worker-{i}"))
                    .spawn(move || work(&ctx, &rx))?,
            );
        }
        Ok(Pool { tx, handles })
    }

    /// A sender for the reader (the pool stays open while any sender lives).
    pub fn sender(&self) -> PoolSender {
        PoolSender {
            tx: self.tx.clone(),
        }
    }

    /// Closes the queue; returns the worker threads so the caller may wait for them.
    pub fn close(self) -> Vec<thread::JoinHandle<()>> {
        self.handles
    }
}

/// A cheap handle for submitting events.
#[derive(Clone)]
pub struct PoolSender {
    tx: Sender<Arc<Pending>>,
}

impl PoolSender {
    /// Events waiting for a worker right now.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// As [`Pool::submit`].
    ///
    /// # Errors
    /// The event itself, when the queue is full or the pool closed.
    pub fn submit(&self, pending: Arc<Pending>) -> Result<(), Arc<Pending>> {
        self.tx.try_send(pending).map_err(|e| match e {
            TrySendError::Full(p) | TrySendError::Disconnected(p) => p,
        })
    }
}

/// Debug builds only: `VIGIL_TEST_STALL_MS` makes every scan stall, so tests can
/// prove the deadline answers for a stuck stage. Compiled out of release builds.
#[cfg(debug_assertions)]
fn test_stall() {
    use std::sync::OnceLock;
    use std::time::Duration;
    static STALL: OnceLock<Option<Duration>> = OnceLock::new();
    let stall = STALL.get_or_init(|| {
        std::env::var("VIGIL_TEST_STALL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
    });
    if let Some(d) = stall {
        thread::sleep(*d);
    }
}

#[cfg(not(debug_assertions))]
fn test_stall() {}

/// A worker's life: one YARA scanner per generation (making one costs ~0.3 ms, so
/// it is kept across events and rebuilt only when a reload swaps the generation).
fn work(ctx: &Context, rx: &Receiver<Arc<Pending>>) {
    let mut scanner = Scanner::new();
    let mut carried: Option<Arc<Pending>> = None;
    loop {
        let generation = ctx.generation.load_full();
        let mut rules = generation.rules.scanner();
        loop {
            let pending = match carried.take() {
                Some(p) => p,
                None => match next_event(rx) {
                    Some(p) => p,
                    None => return,
                },
            };
            if !is_current(ctx, &generation) {
                carried = Some(pending);
                break;
            }
            handle(ctx, &mut scanner, &generation, &mut rules, &pending);
        }
    }
}

/// How long an idle worker keeps polling its queue before it sleeps. Waking a
/// sleeping thread costs tens of µs on an idle virtual CPU, once per event when
/// events come one at a time (an opener blocked on each answer); a worker that
/// is still polling takes the next event at once. It yields between polls, so
/// it spends only CPU time nothing else wants, and sleeps after a quiet spell.
const POLL_BEFORE_SLEEP: Duration = Duration::from_micros(50);

/// The next event, or `None` once the pool is closed.
fn next_event(rx: &Receiver<Arc<Pending>>) -> Option<Arc<Pending>> {
    let until = Instant::now() + POLL_BEFORE_SLEEP;
    loop {
        match rx.try_recv() {
            Ok(pending) => return Some(pending),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if Instant::now() < until => thread::yield_now(),
            Err(TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

fn handle(
    ctx: &Context,
    scanner: &mut Scanner,
    generation: &Arc<Generation>,
    rules: &mut RuleScanner<'_>,
    pending: &Arc<Pending>,
) {
    let Some(fd) = pending.event().fd() else {
        return;
    };
    let allow_for = |stat: &std::sync::atomic::AtomicU64| {
        Stats::bump(stat);
        pending.answer(&ctx.group, true, AnsweredBy::Verdict, &ctx.stats);
    };
    let st = match fstat(fd) {
        Ok(st) => st,
        Err(errno) => {
            crate::warn_limited!(%errno, "fstat of an event fd failed; allowing");
            return allow_for(&ctx.stats.scan_errors);
        }
    };
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return allow_for(&ctx.stats.allowed_not_regular);
    }
    let config = &generation.config;
    if !generation.exclusions.is_empty_paths()
        && fd_path(fd).is_some_and(|p| generation.exclusions.path_excluded(&p))
    {
        return allow_for(&ctx.stats.allowed_excluded);
    }
    // Exec rules first (cheap, before the cache: they depend on the process too).
    // Every exec's facts are read before the answer (after it, the process runs
    // its new program): the rules need them, and so does the exec history.
    let policy = &generation.exec_policy;
    let exec = pending.access == AccessKind::Exec;
    let gated = exec && !policy.is_empty();
    let pid = pending.event().pid();
    let path = if exec || generation.trust.is_some() {
        fd_path(fd)
    } else {
        None
    };
    let process = if exec {
        ProcessFacts::gather_all(pid)
    } else {
        ProcessFacts::default()
    };
    let rule = if gated {
        match exec_gate::before_scan(policy, &process, path.as_deref(), &st) {
            Gate::Scan => None,
            Gate::Deny(m) => {
                return deny_by_rule(ctx, generation, pending, &st, path, &process, &m);
            }
            Gate::Rule(m) => Some(m),
        }
    } else {
        None
    };
    let trust_entry = generation
        .trust
        .as_ref()
        .zip(exec_gate::lookup_path(path.as_deref()))
        .and_then(|(store, p)| store.lookup(p));

    if pending.access == AccessKind::Open
        && matches!(config.watch.scan_on_open, ScanOnOpen::Executable)
    {
        let mut prefix = [0u8; SNIFF_LEN];
        let n = read_prefix(fd, &mut prefix).unwrap_or(0);
        if !sniff(&prefix[..n]).is_executable() {
            allow_for(&ctx.stats.allowed_not_executable);
            // Opens of this data file need no more events until it changes; execs
            // still do (binfmt_misc can run non-ELF files).
            if config.scan.ignore_marks && may_ignore(&st) {
                ctx.marks
                    .request(pending, generation.id, &st, MaskFlags::FAN_OPEN_PERM);
            }
            return;
        }
    }

    let key = FileKey::new(&st, generation.id);
    let (cached, fresh) = match ctx.cache.begin(key) {
        Lookup::Hit(cached) => {
            Stats::bump(&ctx.stats.cache_hits);
            (cached, false)
        }
        Lookup::Wait(slot) => {
            Stats::bump(&ctx.stats.cache_coalesced);
            let left = config
                .decision
                .deadline
                .saturating_sub(pending.received.elapsed());
            match slot.wait(left) {
                Some(cached) => (cached, false),
                None => match scan(ctx, scanner, generation, rules, fd, &st, trust_entry) {
                    Some(c) => (c, true),
                    None => return allow_for(&ctx.stats.scan_errors),
                },
            }
        }
        Lookup::Miss(ticket) => match scan(ctx, scanner, generation, rules, fd, &st, trust_entry) {
            Some(c) => {
                ticket.complete(Arc::clone(&c));
                (c, true)
            }
            None => return allow_for(&ctx.stats.scan_errors),
        },
    };
    // A decision that skipped stages because the file was trusted under another
    // name (a hard link) is not this path's: scan again in full, uncached.
    let (cached, fresh) =
        if cached.trusted && trust_entry.is_none_or(|e| cached.sha256 != Some(e.sha256)) {
            match scan(ctx, scanner, generation, rules, fd, &st, None) {
                Some(c) => (c, true),
                None => return allow_for(&ctx.stats.scan_errors),
            }
        } else {
            (cached, fresh)
        };
    let outcome = match rule {
        Some(m) if m.action == RuleAction::TrustedOnly => Some(exec_gate::after_scan(
            config,
            policy,
            generation.trust.as_ref(),
            &process,
            exec_gate::lookup_path(path.as_deref()),
            &st,
            cached.sha256.as_ref(),
            pid,
        )),
        _ => None,
    };
    let rule_denies =
        outcome.is_some_and(|o| !o.allowed()) && config.decision.mode == Mode::Enforce;
    let allow = matches!(cached.decision.action, Action::Allow) && !rule_denies;
    let clean = matches!(cached.decision.verdict, Verdict::Clean);
    // Rule decisions other than "allow" and "trusted" are logged even for clean files.
    let rule_logged = rule.is_some_and(|m| m.action == RuleAction::Audit)
        || outcome.is_some_and(|o| o != TrustOutcome::Trusted);
    // A detection's log fields are gathered before the answer: once denied, the
    // process may exit and take its /proc entry with it.
    let mut who = (!clean || rule_logged).then(|| {
        (
            path.clone().or_else(|| fd_path(fd)),
            exe_of(pid),
            uid_of(pid),
        )
    });
    if pending.answer(&ctx.group, allow, AnsweredBy::Verdict, &ctx.stats) {
        ctx.stats
            .latency
            .record(Timed::Total, pending.received.elapsed());
    }

    // Everything below happens after the kernel has its answer.
    if exec {
        remember(
            ctx,
            &st,
            path.as_deref(),
            &process,
            pid,
            cached.sha256,
            pending.was_denied(),
        );
    }
    match outcome {
        Some(TrustOutcome::Trusted) => Stats::bump(&ctx.stats.exec_trusted),
        Some(TrustOutcome::UpgradeWindow | TrustOutcome::PackageManager) => {
            Stats::bump(&ctx.stats.exec_upgrade_allowed)
        }
        Some(TrustOutcome::Untrusted) if rule_denies => Stats::bump(&ctx.stats.exec_rule_denied),
        Some(TrustOutcome::Untrusted) | None => {}
    }
    if clean && allow && config.scan.ignore_marks && may_ignore(&st) {
        let mask = if exec_mark_safe(policy, pending.access, rule.as_ref(), outcome) {
            MaskFlags::FAN_OPEN_PERM | MaskFlags::FAN_OPEN_EXEC_PERM
        } else {
            MaskFlags::FAN_OPEN_PERM
        };
        ctx.marks.request(pending, generation.id, &st, mask);
    }
    let late = pending.answered_by() == AnsweredBy::Deadline;
    // Quarantine once per scan (cache hits of a file already handed over add
    // nothing), off the hot path: the quarantine thread does the I/O.
    if fresh
        && cached.decision.quarantine()
        && let Some((Some(path), executable, user_id)) = &who
    {
        ctx.quarantine.submit(Detected {
            path: path.clone(),
            dev: st.st_dev,
            ino: st.st_ino,
            sha256: cached.sha256,
            verdict: cached.decision.verdict.as_str().to_owned(),
            reasons: serde_json::to_value(&cached.decision.reasons).unwrap_or_default(),
            generation: generation.id,
            pid,
            executable: executable
                .as_ref()
                .map(|e| e.to_string_lossy().into_owned()),
            process_uid: *user_id,
        });
    }
    // An allowlist hit is logged once per scan (not per cache hit), naming the entry.
    let allowlisted = fresh && cached.allowed.is_some();
    let action = if late {
        EventAction::Deadline
    } else if allowlisted && !pending.was_denied() {
        EventAction::Allowlisted
    } else if clean && !rule_logged && !allowlisted {
        return;
    } else if pending.was_denied() {
        EventAction::Blocked
    } else {
        EventAction::Audited
    };
    if late && !fresh {
        return; // the late verdict was logged by the event that scanned
    }
    let (path, executable, user_id) = who
        .take()
        .unwrap_or_else(|| (fd_path(fd), exe_of(pid), uid_of(pid)));
    let record = EventRecord {
        time: SystemTime::now(),
        action,
        access: pending.access,
        denied: pending.was_denied(),
        path,
        size: u64::try_from(st.st_size).unwrap_or(0),
        sha256: cached.sha256,
        pid,
        executable,
        user_id,
        file_uid: st.st_uid,
        verdict: cached.decision.verdict,
        mode: mode_str(config.decision.mode),
        reasons: cached.decision.reasons.clone(),
        generation: generation.id,
        late,
        duration_us: duration_us(pending.received),
        rule: rule.map(|m| exec_gate::rule_json(&m, outcome)),
        allowed: cached.allowed.clone(),
    };
    emit(ctx, record, !clean || pending.was_denied());
}

/// Answers an exec a `deny` rule matched (allowed in audit mode), unscanned,
/// then logs it with the rule.
fn deny_by_rule(
    ctx: &Context,
    generation: &Generation,
    pending: &Arc<Pending>,
    st: &FileStat,
    path: Option<PathBuf>,
    process: &ProcessFacts,
    rule: &RuleMatch<'_>,
) {
    let enforce = generation.config.decision.mode == Mode::Enforce;
    let pid = pending.event().pid();
    let (executable, user_id) = (process.exe.clone(), process.uid);
    if pending.answer(&ctx.group, !enforce, AnsweredBy::Verdict, &ctx.stats) {
        ctx.stats
            .latency
            .record(Timed::Total, pending.received.elapsed());
    }
    remember(
        ctx,
        st,
        path.as_deref(),
        process,
        pid,
        None,
        pending.was_denied(),
    );
    if enforce {
        Stats::bump(&ctx.stats.exec_rule_denied);
    }
    let record = EventRecord {
        time: SystemTime::now(),
        action: if pending.was_denied() {
            EventAction::Blocked
        } else {
            EventAction::Audited
        },
        access: pending.access,
        denied: pending.was_denied(),
        path,
        size: u64::try_from(st.st_size).unwrap_or(0),
        sha256: None,
        pid,
        executable,
        user_id,
        file_uid: st.st_uid,
        verdict: Verdict::Clean,
        mode: mode_str(generation.config.decision.mode),
        reasons: Vec::new(),
        generation: generation.id,
        late: false,
        duration_us: duration_us(pending.received),
        rule: Some(exec_gate::rule_json(rule, None)),
        allowed: None,
    };
    emit(ctx, record, true);
}

/// Logs `record`, and sends it to the alert subscribers too when `alert`.
fn emit(ctx: &Context, record: EventRecord, alert: bool) {
    if alert && ctx.alerts.active() {
        ctx.alerts.publish(Alert {
            file_uid: Some(record.file_uid),
            process_uid: record.user_id,
            line: record.to_json(),
        });
    }
    ctx.events.emit(record);
}

/// Adds an exec to the history ring (after the answer).
fn remember(
    ctx: &Context,
    st: &FileStat,
    path: Option<&std::path::Path>,
    process: &ProcessFacts,
    pid: i32,
    sha256: Option<[u8; 32]>,
    denied: bool,
) {
    ctx.history.push(ExecRecord {
        time_ms: now_ms(),
        path: path.map(|p| p.to_string_lossy().into_owned()),
        file_uid: st.st_uid,
        file_mode: st.st_mode,
        pid,
        uid: process.uid,
        gid: process.gid,
        parent: process
            .exe
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        sha256: sha256.map(hex::encode),
        denied,
    });
}

/// Whether a clean file's kernel ignore mark may cover execs too: never when the
/// exec rules look at the process or the path (the mark would answer for every
/// later exec of the inode), nor for an exec allowed only by an audit rule or an
/// upgrade exception.
fn exec_mark_safe(
    policy: &vigil_policy::ExecPolicy,
    access: AccessKind,
    rule: Option<&RuleMatch<'_>>,
    outcome: Option<TrustOutcome>,
) -> bool {
    if policy.is_empty() {
        return true;
    }
    if access != AccessKind::Exec || !policy.exec_ignore_marks_safe() {
        return false;
    }
    match rule.map(|m| m.action) {
        None | Some(RuleAction::Allow) => true,
        Some(RuleAction::TrustedOnly) => outcome == Some(TrustOutcome::Trusted),
        Some(RuleAction::Audit | RuleAction::Deny) => false,
    }
}

/// Scans the file behind `fd`; `None` on a read error (logged). With `trust`, the
/// trust store's entry for the file's path, a file that matches it skips the
/// expensive stages.
fn scan(
    ctx: &Context,
    scanner: &mut Scanner,
    generation: &Generation,
    rules: &mut RuleScanner<'_>,
    fd: BorrowedFd<'_>,
    st: &FileStat,
    trust: Option<&TrustEntry>,
) -> Option<Arc<Cached>> {
    test_stall();
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size > generation.config.scan.max_file_size {
        Stats::bump(&ctx.stats.allowed_too_large);
        let decision = decide(Vec::new(), &generation.config.decision);
        return Some(Arc::new(Cached {
            decision,
            sha256: None,
            trusted: false,
            allowed: None,
        }));
    }
    Stats::bump(&ctx.stats.scans);
    match scanner.scan_fd_trusted(fd, size, generation, rules, Depth::FirstMalicious, trust) {
        Ok(result) => {
            ctx.stats.latency.record_scan(&result.times);
            match result.decision.verdict {
                Verdict::Clean => {}
                Verdict::Suspicious => Stats::bump(&ctx.stats.verdicts_suspicious),
                Verdict::Malicious => Stats::bump(&ctx.stats.verdicts_malicious),
            }
            if !matches!(result.decision.verdict, Verdict::Clean) {
                Stats::bump(&ctx.stats.detections);
            }
            if result.trusted {
                Stats::bump(&ctx.stats.scans_trusted);
            }
            if result.allowed.is_some() {
                Stats::bump(&ctx.stats.scans_allowlisted);
            }
            Some(Arc::new(Cached {
                decision: result.decision,
                sha256: Some(result.sha256),
                trusted: result.trusted,
                allowed: result.allowed,
            }))
        }
        Err(errno) => {
            crate::warn_limited!(%errno, "reading a file through its event fd failed; allowing");
            None
        }
    }
}

/// Whether a kernel ignore mark is safe for this file. The kernel clears ignore
/// marks on write and truncate, but a write through a shared mmap raises no event,
/// so a mark would let a patched file run unscanned. Only files no unprivileged
/// user can modify get one (root can stop the daemon anyway; POSIX ACL grants
/// show in the group bits); every other file goes through the user-space cache,
/// whose key (mtime, ctime) does change on mmap writes.
fn may_ignore(st: &FileStat) -> bool {
    st.st_uid == 0 && st.st_mode & 0o022 == 0
}

/// False when a reload replaced `generation`: its clean verdicts may be stale under
/// the new content.
fn is_current(ctx: &Context, generation: &Generation) -> bool {
    ctx.generation.load().id == generation.id
}

/// The path the event fd refers to, for logs and path exclusions. Best effort: the
/// file may have been unlinked (the kernel then appends " (deleted)").
pub fn fd_path(fd: BorrowedFd<'_>) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()
}

/// The effective uid of process `pid` (the owner of `/proc/<pid>`), if it still
/// exists.
pub fn uid_of(pid: i32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

/// The executable of process `pid`, if it still exists.
pub fn exe_of(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

fn duration_us(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}
