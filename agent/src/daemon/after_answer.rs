//! Everything a worker does after the kernel has its answer.
//!
//! Owns, for one answered event: the exec history record, the rule counters, the
//! offer of a fresh verdict to the persistent cache, the request for a kernel
//! ignore mark, the hand-over to quarantine, and the one
//! builder of a detection's event record (sent to the event log and to alert
//! subscribers). Every hand-over here goes through a bounded queue that drops
//! rather than waits. Must not own: the answer (already given by
//! [`super::worker`]), the I/O behind each queue (the mark, quarantine and log
//! threads do it).

use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use nix::sys::fanotify::MaskFlags;
use nix::sys::stat::FileStat;
use vigil_policy::{Action, Config, Mode, RuleMatch, RuleOutcome, TrustOutcome, Verdict};

use super::alerts::Alert;
use super::events::{EventAction, EventRecord};
use super::exec_gate;
use super::exec_history::{ExecRecord, now_ms};
use super::pool::Context;
use super::respond::{AccessKind, AnsweredBy, Pending};
use super::stats::Stats;
use super::worker::{Answered, Gated, Verdicted, Worker};
use crate::engine::generation::mode_str;
use crate::procfs::{exe_of, fd_path, uid_of};
use crate::quarantine::Detected;

/// Who touched the file, for the log: read before a deny (the process may exit
/// right after it).
pub struct Who {
    /// The file's path.
    pub path: Option<PathBuf>,
    /// The accessing process's executable.
    pub executable: Option<PathBuf>,
    /// The accessing process's effective uid.
    pub uid: Option<u32>,
}

impl Who {
    /// Reads the path behind `fd` (unless the gate already did) and the process
    /// (unless the reader read it before answering).
    pub fn read(fd: BorrowedFd<'_>, gated: &Gated<'_>, pending: &Pending) -> Who {
        let (executable, uid) = match pending.process() {
            Some((exe, uid)) => (exe.clone(), *uid),
            None => (exe_of(gated.pid), uid_of(gated.pid)),
        };
        Who {
            path: gated.path.clone().or_else(|| fd_path(fd)),
            executable,
            uid,
        }
    }
}

/// The steps after the answer, in order.
pub fn after_answer(
    w: &Worker<'_, '_>,
    pending: &Arc<Pending>,
    fd: BorrowedFd<'_>,
    gated: &Gated<'_>,
    verdict: Option<&Verdicted>,
    answered: Answered,
) {
    let (ctx, generation) = (w.ctx, w.generation);
    let config = &generation.config;
    if let Some(v) = verdict
        && let Some(key) = v.remember
    {
        ctx.persistent.remember(key, generation, &v.cached);
    }
    let sha256 = verdict.and_then(|v| v.cached.sha256);
    if pending.access == AccessKind::Exec {
        remember(ctx, gated, sha256, pending.was_denied());
    }
    if pending.access == AccessKind::Exec
        && !pending.was_denied()
        && gated.piped.is_none()
        && let Some(path) = &gated.path
        && super::pipes::is_network_client(path)
    {
        ctx.pipes.settle(gated.pid, path);
    }
    if pending.access == AccessKind::Exec
        && !pending.was_denied()
        && config.scan.inline_code
        && let Some(path) = &gated.path
        && generation.interpreters.matches(path)
    {
        ctx.inline.offer(gated.pid, path);
    }
    if let Some(piped) = &gated.piped {
        ctx.pipes.report(
            piped.clone(),
            super::pipes::Report {
                exec_pid: gated.pid,
                denied: pending.was_denied(),
                profile: config.policy.profile.as_str(),
                process_uid: gated.process.uid,
                events: ctx.events.clone(),
                alerts: Arc::clone(&ctx.alerts),
            },
        );
    }
    count_rule(ctx, answered.rule, config.decision.mode);
    let clean = verdict.is_none_or(|v| v.cached.decision.verdict == Verdict::Clean);
    if gets_ignore_marks(
        verdict.map(|v| v.cached.decision.verdict),
        answered.answer.action,
        config,
        &gated.st,
    ) {
        // An open's path is not read before the answer; the mark needs it.
        let path = gated.path.clone().or_else(|| crate::procfs::fd_path(fd));
        let mask = if exec_mark_safe(
            w,
            pending.access,
            path.as_deref(),
            gated.rule.as_ref(),
            answered.trust,
        ) {
            MaskFlags::FAN_OPEN_PERM | MaskFlags::FAN_OPEN_EXEC_PERM
        } else {
            MaskFlags::FAN_OPEN_PERM
        };
        ctx.marks.request(pending, generation.id, &gated.st, mask);
    }
    let late = pending.answered_by() == AnsweredBy::Deadline;
    let fresh = verdict.is_some_and(|v| v.fresh);
    // Quarantine once per scan (cache hits of a file already handed over add
    // nothing), off the hot path: the quarantine thread does the I/O.
    if fresh
        && answered.answer.action == Action::Quarantine
        && let (
            Some(v),
            Some(Who {
                path: Some(path),
                executable,
                uid,
            }),
        ) = (verdict, &answered.who)
    {
        ctx.quarantine.submit(Detected {
            path: path.clone(),
            dev: gated.st.st_dev,
            ino: gated.st.st_ino,
            sha256,
            verdict: v.cached.decision.verdict.as_str().to_owned(),
            reasons: serde_json::to_value(&v.cached.decision.reasons).unwrap_or_default(),
            generation: generation.id,
            pid: gated.pid,
            executable: executable
                .as_ref()
                .map(|e| e.to_string_lossy().into_owned()),
            process_uid: *uid,
        });
    }
    // An allowlist hit is logged once per scan (not per cache hit), naming the entry.
    let allowlisted = fresh && verdict.is_some_and(|v| v.cached.allowed.is_some());
    let action = if late {
        EventAction::Deadline
    } else if allowlisted && !pending.was_denied() {
        EventAction::Allowlisted
    } else if clean && !answered.rule.logged() {
        return;
    } else if pending.was_denied() {
        EventAction::Blocked
    } else {
        EventAction::Audited
    };
    if late && verdict.is_some() && !fresh {
        return; // the late verdict was logged by the event that scanned
    }
    let alert = !clean || pending.was_denied() || answered.rule == RuleOutcome::Deny;
    let record = record(w, pending, fd, gated, verdict, answered, action);
    emit(ctx, record, alert);
}

/// The one builder of an event's record.
fn record(
    w: &Worker<'_, '_>,
    pending: &Pending,
    fd: BorrowedFd<'_>,
    gated: &Gated<'_>,
    verdict: Option<&Verdicted>,
    answered: Answered,
    action: EventAction,
) -> EventRecord {
    let generation = w.generation;
    let Who {
        path,
        executable,
        uid,
    } = answered
        .who
        .unwrap_or_else(|| Who::read(fd, gated, pending));
    let (verdict_of, reasons, sha256) = match verdict {
        Some(v) => (
            v.cached.decision.verdict,
            v.cached.decision.reasons.clone(),
            v.cached.sha256,
        ),
        None => (Verdict::Clean, Vec::new(), None),
    };
    EventRecord {
        time: SystemTime::now(),
        action,
        access: pending.access,
        denied: pending.was_denied(),
        path,
        size: u64::try_from(gated.st.st_size).unwrap_or(0),
        sha256,
        pid: gated.pid,
        executable,
        user_id: uid,
        file_uid: gated.st.st_uid,
        verdict: verdict_of,
        mode: mode_str(generation.config.decision.mode),
        reasons,
        generation: generation.id,
        late: pending.answered_by() == AnsweredBy::Deadline,
        duration_us: duration_us(pending.received),
        queued_us: pending.queued_us(),
        rule: gated
            .rule
            .as_ref()
            .map(|m| exec_gate::rule_json(m, answered.trust)),
        allowed: verdict.and_then(|v| v.cached.allowed.as_deref().cloned()),
    }
}

/// Counts what the exec rules did.
fn count_rule(ctx: &Context, rule: RuleOutcome, mode: Mode) {
    let stats = &ctx.stats;
    match rule {
        RuleOutcome::TrustedOnly(TrustOutcome::Trusted) => Stats::bump(&stats.exec_trusted),
        RuleOutcome::TrustedOnly(TrustOutcome::UpgradeWindow | TrustOutcome::PackageManager) => {
            Stats::bump(&stats.exec_upgrade_allowed)
        }
        RuleOutcome::TrustedOnly(TrustOutcome::Untrusted) | RuleOutcome::Deny => {
            if mode == Mode::Enforce {
                Stats::bump(&stats.exec_rule_denied);
            }
        }
        RuleOutcome::None | RuleOutcome::Allow | RuleOutcome::Audit => {}
    }
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

/// Adds an exec to the history ring.
fn remember(ctx: &Context, gated: &Gated<'_>, sha256: Option<[u8; 32]>, denied: bool) {
    ctx.history.push(ExecRecord {
        time_ms: now_ms(),
        path: gated
            .path
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        file_uid: gated.st.st_uid,
        file_mode: gated.st.st_mode,
        pid: gated.pid,
        uid: gated.process.uid,
        gid: gated.process.gid,
        parent: gated
            .process
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
    w: &Worker<'_, '_>,
    access: AccessKind,
    path: Option<&std::path::Path>,
    rule: Option<&RuleMatch<'_>>,
    trust: Option<TrustOutcome>,
) -> bool {
    use vigil_policy::RuleAction;
    // Each exec of an interpreter or a network client is looked at for a
    // pipeline between them (`curl … | sh`) and for code on its command line,
    // so none gets an exec ignore mark, not even from an open of the program
    // (a copy, a checksum) before its first exec.
    if path.is_some_and(|p| super::pipes::watched(p, &w.generation.interpreters)) {
        return false;
    }
    let policy = &w.generation.exec_policy;
    if policy.is_empty() {
        return true;
    }
    if access != AccessKind::Exec || !policy.exec_ignore_marks_safe() {
        return false;
    }
    match rule.map(|m| m.action) {
        None | Some(RuleAction::Allow) => true,
        Some(RuleAction::TrustedOnly) => trust == Some(TrustOutcome::Trusted),
        Some(RuleAction::Audit | RuleAction::Deny) => false,
    }
}

/// Whether a file judged `verdict` and answered `action` gets kernel ignore
/// marks: judged clean, allowed, `scan.ignore_marks` on, and a file
/// [`may_ignore`] allows. The exec's open mark placed before the answer
/// ([`super::worker`]) and the marks after it share this rule.
pub fn gets_ignore_marks(
    verdict: Option<Verdict>,
    action: Action,
    config: &Config,
    st: &FileStat,
) -> bool {
    verdict == Some(Verdict::Clean) && action.allows() && config.scan.ignore_marks && may_ignore(st)
}

/// Whether a kernel ignore mark is safe for this file. The kernel clears ignore
/// marks on write and truncate, but a write through a shared mmap raises no event,
/// so a mark would let a patched file run unscanned. Only files no unprivileged
/// user can modify get one (root can stop the daemon anyway; POSIX ACL grants
/// show in the group bits); every other file goes through the user-space cache,
/// whose key (mtime, ctime) does change on mmap writes.
pub fn may_ignore(st: &FileStat) -> bool {
    st.st_uid == 0 && st.st_mode & 0o022 == 0
}

fn duration_us(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}
