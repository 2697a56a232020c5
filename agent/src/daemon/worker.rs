//! One event through a worker, top to bottom: gate, scan or cache, answer, after
//! the answer.
//!
//! Owns the order of those steps for one [`Pending`] event. [`handle`] reads as
//! the route: [`gate`] answers at once what needs no scan (a file that is not
//! regular, an excluded path, a data file under `scan_on_open = "executable"`
//! unless a script interpreter reads it as text)
//! and gathers what the rest needs (the file's `fstat`, its path and the exec
//! rules' match for an exec); [`scan_or_cache`] gets the verdict from the cache
//! or by scanning through the event fd; [`answer`] completes a `trusted-only`
//! rule, asks `vigil_policy::answer` for the action and answers the kernel;
//! [`after_answer`](super::after_answer::after_answer) does everything else.
//! Must not own: the rules, the verdict or the answer's logic (all pure, in
//! `vigil_policy`), the `/proc` reads ([`crate::procfs`]), the deadline
//! ([`super::respond`]).

use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use nix::sys::stat::{FileStat, SFlag, fstat};
use vigil_models::sniff::sniff;
use vigil_policy::heuristics::script::{TEXT_SNIFF_LEN, looks_like_text};
use vigil_policy::verdict::Basis;
use vigil_policy::{
    Action, Answer, RuleAction, RuleMatch, RuleOutcome, RuleScanner, ScanOnOpen, TrustEntry,
    TrustOutcome, Verdict, decide,
};

use super::after_answer::{Who, after_answer, gets_ignore_marks, may_ignore};
use super::cache::store_key::StoreKey;
use super::cache::{Cached, FileKey, Lookup};
use super::exec_gate::{self, Gate, ProcessFacts};
use super::latency::Timed;
use super::pipes::{self, PipedDownload};
use super::pool::Context;
use super::respond::{AccessKind, AnsweredBy, Pending};
use super::stats::Stats;
use crate::engine::generation::Generation;
use crate::engine::scan::{Depth, Scanner, read_prefix};
use crate::procfs::{exe_of, fd_path};

/// What a worker keeps between events: its scanner buffers and the rule scanner
/// of the generation it has pinned.
pub struct Worker<'a, 'r> {
    /// The daemon's shared parts.
    pub ctx: &'a Context,
    /// The pinned generation.
    pub generation: &'a Arc<Generation>,
    /// Read buffers.
    pub scanner: &'a mut Scanner,
    /// A YARA scanner of `generation.rules`.
    pub rules: &'a mut RuleScanner<'r>,
}

/// What the gate learned about an event that goes on to its verdict.
pub struct Gated<'g> {
    /// The file, as `fstat` of the event fd saw it.
    pub st: FileStat,
    /// The accessing process.
    pub pid: i32,
    /// The file's path (execs, and opens when a trust store is loaded).
    pub path: Option<PathBuf>,
    /// The executing process's facts (execs only).
    pub process: ProcessFacts,
    /// The exec rule that matched, if any.
    pub rule: Option<RuleMatch<'g>>,
    /// The trust store's entry for the path, if any.
    pub trust_entry: Option<&'g TrustEntry>,
    /// A network client's output piped into an interpreter, completed by this
    /// exec (`curl … | sh`).
    pub piped: Option<PipedDownload>,
}

/// A verdict and whether this event's scan produced it (not a cache hit).
pub struct Verdicted {
    /// The cached (or fresh) result.
    pub cached: Arc<Cached>,
    /// True when this event scanned the file, or found its verdict in the
    /// persistent cache: the first verdict on this file version in this
    /// process either way.
    pub fresh: bool,
    /// The file version's persistent key, taken before the scan: after the
    /// answer the verdict is offered to the persistent cache under it (a hit
    /// from there only when its entry is old enough to risk eviction, which
    /// makes it young again).
    pub remember: Option<StoreKey>,
}

/// The answer given, with what it was built from.
pub struct Answered {
    /// The action and why.
    pub answer: Answer,
    /// The exec rules' outcome.
    pub rule: RuleOutcome,
    /// The trust outcome of a `trusted-only` rule.
    pub trust: Option<TrustOutcome>,
    /// The accessing process's path, executable and uid, read before the answer
    /// for events that will be logged (after a deny the process may be gone).
    pub who: Option<Who>,
}

/// A scanning thread's life: one YARA scanner per generation (making one costs
/// ~0.3 ms, so it is kept across items and rebuilt only when a reload swaps the
/// generation). `next` gives the next item, `None` ends the thread; an item
/// taken after a reload is handled under the new generation, whose content may
/// judge it differently.
pub fn serve<T>(
    ctx: &Context,
    mut next: impl FnMut() -> Option<T>,
    mut handle: impl FnMut(&mut Worker<'_, '_>, T),
) {
    let mut scanner = Scanner::new();
    let mut carried: Option<T> = None;
    loop {
        let generation = ctx.generation.load_full();
        let mut rules = generation.rules.scanner();
        // At the thread's start, not after a reload: then an item is waiting.
        if carried.is_none() {
            warm_up(&mut rules, &generation);
        }
        loop {
            let Some(item) = carried.take().or_else(&mut next) else {
                return;
            };
            if ctx.generation.load().id != generation.id {
                carried = Some(item);
                break;
            }
            let mut worker = Worker {
                ctx,
                generation: &generation,
                scanner: &mut scanner,
                rules: &mut rules,
            };
            handle(&mut worker, item);
        }
    }
}

/// Runs a new scanner once over [`WARM_UP_BYTES`] of filler, so the first
/// file it judges does not pay its first-use costs: measured with the shared
/// content (988 rules), the first scan of a 667 KiB binary took 3.9 ms and
/// the next ones 3.0-3.1 ms; after a 64 KiB warm-up the first took 3.1 ms.
/// The boot's first execs are such first scans. Findings are discarded.
pub(crate) fn warm_up(rules: &mut RuleScanner<'_>, generation: &Generation) {
    if generation.rules.is_empty() {
        return;
    }
    // A fixed pseudo-random sequence: it walks much of the pattern
    // automaton, where zeros would stay in a few states.
    let mut state: u32 = 0x9e37_79b9;
    let filler: Vec<u8> = (0..WARM_UP_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect();
    let _ = rules.scan(&filler, generation.config.scan.rule_timeout);
}

/// How much filler [`warm_up`] scans (about 0.8 ms with the shared content).
const WARM_UP_BYTES: usize = 64 * 1024;

/// Takes one event from the queue to its answer and beyond.
pub fn handle(w: &mut Worker<'_, '_>, pending: &Arc<Pending>) {
    // Not a denial the reader already answered, handed on only to be logged.
    let answered_ahead = pending.is_answered() && pending.answered_by() == AnsweredBy::Verdict;
    if let Some(waited) = pending.taken()
        && !answered_ahead
    {
        let slot = match pending.access {
            AccessKind::Exec => Timed::QueuedExec,
            AccessKind::Open => Timed::QueuedOpen,
        };
        w.ctx.stats.latency.record(slot, waited);
    }
    let Some(fd) = pending.event().fd() else {
        return;
    };
    let Some(gated) = gate(w, pending, fd) else {
        return;
    };
    let verdict = match gated.rule.as_ref().map(|m| m.action) {
        // A deny rule answers without a scan.
        Some(RuleAction::Deny) => None,
        Some(RuleAction::Allow | RuleAction::Audit | RuleAction::TrustedOnly) | None => {
            match scan_or_cache(w, pending, fd, &gated) {
                Some(v) => Some(v),
                None => return allow_for(w.ctx, pending, &w.ctx.stats.scan_errors),
            }
        }
    };
    let answered = answer(w, pending, fd, &gated, verdict.as_ref());
    after_answer(w, pending, fd, &gated, verdict.as_ref(), answered);
}

/// Allows `pending` at once and counts why.
fn allow_for(ctx: &Context, pending: &Arc<Pending>, counter: &AtomicU64) {
    Stats::bump(counter);
    pending.answer(&ctx.group, Action::Allow, AnsweredBy::Verdict, &ctx.stats);
}

/// Answers what needs no scan; otherwise returns what the next steps need.
fn gate<'g>(w: &Worker<'g, '_>, pending: &Arc<Pending>, fd: BorrowedFd<'_>) -> Option<Gated<'g>> {
    let (ctx, generation) = (w.ctx, w.generation);
    let stats = &ctx.stats;
    let st = match fstat(fd) {
        Ok(st) => st,
        Err(errno) => {
            crate::warn_limited!(%errno, "fstat of an event fd failed; allowing");
            allow_for(ctx, pending, &stats.scan_errors);
            return None;
        }
    };
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        allow_for(ctx, pending, &stats.allowed_not_regular);
        return None;
    }
    if !generation.exclusions.is_empty_paths()
        && fd_path(fd).is_some_and(|p| generation.exclusions.path_excluded(&p))
    {
        allow_for(ctx, pending, &stats.allowed_excluded);
        return None;
    }
    let exec = pending.access == AccessKind::Exec;
    let pid = pending.event().pid();
    // Every exec's facts are read before the answer (after it, the process runs
    // its new program): the rules need them, and so does the exec history.
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
    let policy = &generation.exec_policy;
    let rule = if exec && !policy.is_empty() {
        match exec_gate::before_scan(policy, &process, path.as_deref(), &st) {
            Gate::Scan => None,
            Gate::Deny(m) | Gate::Rule(m) => Some(m),
        }
    } else {
        None
    };
    if pending.access == AccessKind::Open
        && matches!(generation.config.watch.scan_on_open, ScanOnOpen::Executable)
    {
        let mut prefix = [0u8; TEXT_SNIFF_LEN];
        let n = read_prefix(fd, &mut prefix).unwrap_or(0);
        let prefix = &prefix[..n];
        if sniff(prefix).is_executable() {
            // Scanned as any executable content.
        } else if read_as_script(generation, pid, prefix) {
            Stats::bump(&stats.interpreter_opens);
        } else {
            allow_for(ctx, pending, &stats.allowed_not_executable);
            // Opens of this data file need no more events until it changes
            // (during a burst, from its second open); execs still do
            // (binfmt_misc can run non-ELF files).
            if generation.config.scan.ignore_marks && may_ignore(&st) {
                ctx.marks.request_data(pending, generation.id, &st);
            }
            return None;
        }
    }
    let trust_entry = generation
        .trust
        .as_ref()
        .zip(exec_gate::lookup_path(path.as_deref()))
        .and_then(|(store, p)| store.lookup(p));
    let piped = if exec {
        path.as_deref()
            .and_then(|p| ctx.pipes.check(pid, p, &generation.interpreters))
    } else {
        None
    };
    Some(Gated {
        st,
        pid,
        path,
        process,
        rule,
        trust_entry,
        piped,
    })
}

/// Whether a data open is a script interpreter reading text, which it may run
/// as code whatever the first bytes (`bash ./x`, `sh < ./x`, `python3 x.py`).
/// The opener is read from `/proc` per such open (about 2 µs here, against 6 µs
/// for reading the start time that a per-pid cache would need to stay right, so
/// there is no such cache) and only for text, never for binary data.
pub(crate) fn read_as_script(generation: &Generation, pid: i32, prefix: &[u8]) -> bool {
    !generation.interpreters.is_empty()
        && looks_like_text(prefix)
        && exe_of(pid).is_some_and(|exe| generation.interpreters.matches(&exe))
}

/// The verdict for the file: from the cache, from a scan another worker is
/// running (coalesced), or from a scan of our own. `None` on a read error.
fn scan_or_cache(
    w: &mut Worker<'_, '_>,
    pending: &Pending,
    fd: BorrowedFd<'_>,
    gated: &Gated<'_>,
) -> Option<Verdicted> {
    let ctx = w.ctx;
    let key = FileKey::new(&gated.st, w.generation.id);
    let found = match ctx.cache.begin(key) {
        Lookup::Hit(cached) => {
            Stats::bump(&ctx.stats.cache_hits);
            Verdicted {
                cached,
                fresh: false,
                remember: None,
            }
        }
        Lookup::Wait(slot) => {
            Stats::bump(&ctx.stats.cache_coalesced);
            let left = w
                .generation
                .config
                .decision
                .deadline
                .saturating_sub(pending.received.elapsed());
            match slot.wait(left) {
                Some(cached) => Verdicted {
                    cached,
                    fresh: false,
                    remember: None,
                },
                None => Verdicted {
                    cached: scan(w, fd, &gated.st, fast_path(w.generation, gated))?,
                    fresh: true,
                    remember: None,
                },
            }
        }
        Lookup::Miss(ticket) => {
            if ticket.took_over() {
                Stats::bump(&ctx.stats.written_overtaken);
            }
            // The key before any read, so it names the version that was judged.
            let key = ctx.persistent.key_of(fd);
            let stored = key.and_then(|k| ctx.persistent.lookup(&k, w.generation));
            let (cached, remember) = match stored {
                Some(hit) => (hit.cached, key.filter(|_| hit.refresh)),
                None => (scan(w, fd, &gated.st, fast_path(w.generation, gated))?, key),
            };
            ticket.complete(Arc::clone(&cached));
            Verdicted {
                cached,
                fresh: true,
                remember,
            }
        }
    };
    // A decision that skipped stages because the file was trusted under another
    // name (a hard link) is not this path's: scan again in full, uncached.
    if found.cached.trusted
        && gated
            .trust_entry
            .is_none_or(|e| found.cached.sha256 != Some(e.sha256))
    {
        return Some(Verdicted {
            cached: scan(w, fd, &gated.st, None)?,
            fresh: true,
            remember: None,
        });
    }
    Some(found)
}

/// The trust store's entry to skip the expensive stages with, when
/// `scan.trust_fast_path` allows it.
fn fast_path<'g>(generation: &Generation, gated: &Gated<'g>) -> Option<&'g TrustEntry> {
    gated
        .trust_entry
        .filter(|_| generation.config.scan.trust_fast_path)
}

/// Completes a `trusted-only` rule, decides the action, gathers the log fields
/// of an event that will be logged, and answers the kernel.
fn answer(
    w: &Worker<'_, '_>,
    pending: &Arc<Pending>,
    fd: BorrowedFd<'_>,
    gated: &Gated<'_>,
    verdict: Option<&Verdicted>,
) -> Answered {
    let (ctx, generation) = (w.ctx, w.generation);
    let trust = match &gated.rule {
        Some(m) if m.action == RuleAction::TrustedOnly => Some(exec_gate::after_scan(
            &generation.config,
            &generation.exec_policy,
            generation.trust.as_ref(),
            &gated.process,
            exec_gate::lookup_path(gated.path.as_deref()),
            &gated.st,
            verdict.and_then(|v| v.cached.sha256.as_ref()),
            gated.pid,
        )),
        Some(_) | None => None,
    };
    let rule = match (gated.rule.as_ref().map(|m| m.action), trust) {
        (None, _)
            if gated.piped.as_ref().is_some_and(PipedDownload::into_shell)
                && pipes::denied_by(&generation.config) =>
        {
            RuleOutcome::Deny
        }
        (None, _) => RuleOutcome::None,
        (Some(RuleAction::Allow), _) => RuleOutcome::Allow,
        (Some(RuleAction::Audit), _) => RuleOutcome::Audit,
        (Some(RuleAction::Deny), _) => RuleOutcome::Deny,
        (Some(RuleAction::TrustedOnly), Some(outcome)) => RuleOutcome::TrustedOnly(outcome),
        // after_scan always answers a trusted-only rule.
        (Some(RuleAction::TrustedOnly), None) => RuleOutcome::TrustedOnly(TrustOutcome::Untrusted),
    };
    let verdict_of = verdict.map(|v| v.cached.decision.verdict);
    let answer = vigil_policy::answer(verdict_of, rule, &Basis::of(&generation.config.decision));
    // A detection's log fields are gathered before the answer: once denied, the
    // process may exit and take its /proc entry with it.
    let logged = verdict_of.is_some_and(|v| v != Verdict::Clean) || rule.logged();
    let who = logged.then(|| Who::read(fd, gated, pending));
    // The open check that follows an allowed exec then raises no event; the
    // same mark as after_answer gives every clean, allowed file.
    if pending.access == AccessKind::Exec
        && gets_ignore_marks(verdict_of, answer.action, &generation.config, &gated.st)
        && !pending.is_answered()
    {
        ctx.marks.mark_exec_open(fd, generation.id, &gated.st);
    }
    if pending.answer(&ctx.group, answer.action, AnsweredBy::Verdict, &ctx.stats) {
        ctx.stats
            .latency
            .record(Timed::Total, pending.received.elapsed());
    }
    Answered {
        answer,
        rule,
        trust,
        who,
    }
}

/// Which scans a test stall delays.
#[derive(Clone, Copy)]
pub(super) enum Stall {
    /// Every scan (`VIGIL_TEST_STALL_MS`).
    Scan,
    /// Write-time scans only, on top (`VIGIL_TEST_STALL_WRITTEN_MS`): a
    /// background scan starved by a busy machine.
    Written,
}

/// Debug builds only: the environment variable of `stall` makes those scans
/// stall, so tests can prove the deadline answers for a stuck stage, and that
/// no event waits for a stuck background scan. Compiled out of release builds.
#[cfg(debug_assertions)]
pub(super) fn test_stall(stall: Stall) {
    use std::sync::OnceLock;
    use std::time::Duration;
    static SCAN: OnceLock<Option<Duration>> = OnceLock::new();
    static WRITTEN: OnceLock<Option<Duration>> = OnceLock::new();
    let (cell, var) = match stall {
        Stall::Scan => (&SCAN, "VIGIL_TEST_STALL_MS"),
        Stall::Written => (&WRITTEN, "VIGIL_TEST_STALL_WRITTEN_MS"),
    };
    let pause = cell.get_or_init(|| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
    });
    if let Some(d) = pause {
        std::thread::sleep(*d);
    }
}

#[cfg(not(debug_assertions))]
pub(super) fn test_stall(_: Stall) {}

/// Scans the file behind `fd`; `None` on a read error (logged). With `trust`, the
/// trust store's entry for the file's path, a file that matches it skips the
/// expensive stages.
pub(super) fn scan(
    w: &mut Worker<'_, '_>,
    fd: BorrowedFd<'_>,
    st: &FileStat,
    trust: Option<&TrustEntry>,
) -> Option<Arc<Cached>> {
    test_stall(Stall::Scan);
    let (ctx, generation) = (w.ctx, w.generation);
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size > generation.config.scan.max_file_size {
        Stats::bump(&ctx.stats.allowed_too_large);
        let decision = decide(Vec::new(), &generation.config.decision);
        return Some(Arc::new(Cached {
            decision,
            sha256: None,
            trusted: false,
            allowed: None,
            partial: false,
        }));
    }
    Stats::bump(&ctx.stats.scans);
    let known = |sha256: &[u8; 32]| {
        ctx.cache
            .by_content(sha256, generation.id)
            .map(|c| c.decision.clone())
    };
    match w.scanner.scan_fd(
        fd,
        size,
        generation,
        w.rules,
        Depth::FirstMalicious,
        trust,
        &known,
    ) {
        Ok(result) => {
            if result.known {
                Stats::bump(&ctx.stats.scans_known_content);
            }
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
                allowed: result.allowed.map(Box::new),
                partial: result.partial,
            }))
        }
        Err(errno) => {
            crate::warn_limited!(%errno, "reading a file through its event fd failed; allowing");
            None
        }
    }
}
