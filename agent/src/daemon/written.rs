//! Scan on write: executable content closed after a write (`FAN_CLOSE_WRITE`) is
//! scanned in the background, so the exec that usually follows (a dropper, a
//! build, `configure`) is answered from the verdict cache.
//!
//! Owns the bounded queue between the reader and the write-scan thread, and that
//! thread. The reader only hands `FAN_CLOSE_WRITE` events over and never waits:
//! a full queue drops the event (`written_dropped`), which only leaves that
//! file's first exec cold, as it was without this. The thread never delays a
//! permission event either: before each scan it waits (a bounded time) until no
//! permission event is queued for a worker, and skips the file if the workers
//! stay busy (`written_deferred`), and no permission event waits for its scan:
//! one that comes meanwhile scans the file itself (`written_overtaken`, see
//! [`super::cache::VerdictCache::begin`]). What it scans: ELF executables and shared
//! objects, `#!` scripts, and any file with an execute bit; relocatable objects
//! (`.o`, `.ko`) are left to the open that loads them, so a build does not scan
//! every object twice. A malicious verdict is an event (`event.action:
//! "written"`) and an alert, and with `decision.on_malicious_write =
//! "quarantine"` (enforce mode) the file is quarantined before anyone runs it.
//! Must not own: the scan itself ([`super::worker::scan`]), the cache, the
//! quarantine I/O.

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::fanotify::FanotifyEvent;
use nix::sys::stat::{FileStat, SFlag, fstat};
use serde_json::json;
use vigil_models::sniff::{FileKind, sniff};
use vigil_policy::{Mode, Verdict, WriteAction};

use super::alerts::Alert;
use super::cache::{Cached, FileKey, Lookup};
use super::pool::{Context, PoolSender};
use super::priority::{self, Lane};
use super::stats::Stats;
use super::worker::{Worker, scan, serve};
use crate::engine::generation::Generation;
use crate::engine::scan::read_prefix;
use crate::procfs::{exe_of, fd_path, uid_of};
use crate::quarantine::Detected;

/// Events waiting for the write-scan thread; more are dropped.
const QUEUE: usize = 512;
/// Longest the thread waits for the permission queue to drain before a scan.
const YIELD_LIMIT: Duration = Duration::from_millis(200);
/// How often it looks again meanwhile.
const YIELD_STEP: Duration = Duration::from_millis(2);
/// `e_type` of an ELF relocatable object.
const ET_REL: u16 = 1;

/// The reader's end of the queue.
pub struct Written {
    tx: SyncSender<FanotifyEvent>,
    stats: Arc<Stats>,
}

impl Written {
    /// Starts the write-scan thread. `pool` tells it when permission events
    /// wait for a worker.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn start(
        ctx: Arc<Context>,
        pool: PoolSender,
    ) -> std::io::Result<(Written, thread::JoinHandle<()>)> {
        let (tx, rx) = sync_channel(QUEUE);
        let stats = Arc::clone(&ctx.stats);
        let handle = thread::Builder::new()
            .name("vigil-written".into())
            .spawn(move || {
                priority::lower(Lane::Idle);
                run(&ctx, &pool, &rx)
            })?;
        Ok((Written { tx, stats }, handle))
    }

    /// Hands a `FAN_CLOSE_WRITE` event over, or drops it (and its fd) when the
    /// thread is behind.
    pub fn offer(&self, event: FanotifyEvent) {
        Stats::bump(&self.stats.written_events);
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                Stats::bump(&self.stats.written_dropped);
            }
        }
    }
}

/// The thread: each written file under the generation current when it is
/// handled ([`serve`]).
fn run(ctx: &Context, pool: &PoolSender, rx: &Receiver<FanotifyEvent>) {
    serve(
        ctx,
        || rx.recv().ok(),
        |worker, event| handle(worker, pool, &event),
    );
}

/// Scans one written file if it is executable content not scanned yet.
fn handle(w: &mut Worker<'_, '_>, pool: &PoolSender, event: &FanotifyEvent) {
    let (ctx, generation) = (w.ctx, w.generation);
    let Some(fd) = event.fd() else {
        return;
    };
    let Ok(st) = fstat(fd) else {
        return;
    };
    if !generation.config.scan.scan_on_write || !worth_scanning(fd, &st) {
        return;
    }
    if !yield_to_permission_events(pool) {
        Stats::bump(&ctx.stats.written_deferred);
        return;
    }
    let key = FileKey::new(&st, generation.id);
    let ticket = match ctx.cache.begin_background(key) {
        Lookup::Miss(ticket) => ticket,
        // Known, or a worker is scanning it for an exec right now.
        Lookup::Hit(_) | Lookup::Wait(_) => return,
    };
    Stats::bump(&ctx.stats.written_scanned);
    super::worker::test_stall(super::worker::Stall::Written);
    // Keyed before the read, as the workers do; stored after it, so a reboot
    // between the write and the first exec still finds the verdict.
    let remember = ctx.persistent.key_of(fd);
    let Some(cached) = scan(w, fd, &st, None) else {
        return;
    };
    ticket.complete(Arc::clone(&cached));
    if let Some(key) = remember {
        ctx.persistent.remember(key, generation, &cached);
    }
    if cached.decision.verdict != Verdict::Clean {
        report(w, event, fd, &st, &cached);
    }
}

/// Executable content: ELF files other than relocatable objects, `#!` scripts,
/// and any regular file with an execute bit.
fn worth_scanning(fd: BorrowedFd<'_>, st: &FileStat) -> bool {
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG || st.st_size == 0 {
        return false;
    }
    if st.st_mode & 0o111 != 0 {
        return true;
    }
    let mut prefix = [0u8; 18];
    let n = read_prefix(fd, &mut prefix).unwrap_or(0);
    let prefix = &prefix[..n];
    match sniff(prefix) {
        FileKind::Elf => elf_type(prefix) != Some(ET_REL),
        FileKind::Script => true,
        FileKind::Other => false,
    }
}

/// `e_type` of an ELF header prefix, in the file's byte order.
fn elf_type(prefix: &[u8]) -> Option<u16> {
    let bytes = [*prefix.get(16)?, *prefix.get(17)?];
    match prefix.get(5) {
        Some(2) => Some(u16::from_be_bytes(bytes)),
        _ => Some(u16::from_le_bytes(bytes)),
    }
}

/// Waits until no permission event waits for a worker; false if that did not
/// happen within [`YIELD_LIMIT`].
fn yield_to_permission_events(pool: &PoolSender) -> bool {
    let until = Instant::now() + YIELD_LIMIT;
    while pool.queued() > 0 {
        if Instant::now() >= until {
            return false;
        }
        thread::sleep(YIELD_STEP);
    }
    true
}

/// The event line and alert of a detection at write time, and the quarantine
/// of a malicious file when the configuration asks for it.
fn report(
    w: &Worker<'_, '_>,
    event: &FanotifyEvent,
    fd: BorrowedFd<'_>,
    st: &FileStat,
    cached: &Cached,
) {
    let (ctx, generation) = (w.ctx, w.generation);
    let pid = event.pid();
    let path = fd_path(fd);
    let executable = exe_of(pid);
    let uid = uid_of(pid);
    let quarantine = quarantines(generation, cached.decision.verdict);
    let line = written_event(WrittenEvent {
        path: path.as_deref(),
        st,
        cached,
        pid,
        executable: executable.as_deref(),
        uid,
        generation,
        quarantine,
    });
    if ctx.alerts.active() {
        ctx.alerts.publish(Alert {
            file_uid: Some(st.st_uid),
            process_uid: uid,
            line: line.clone(),
        });
    }
    ctx.events.emit_json(line);
    if let (true, Some(path)) = (quarantine, path) {
        ctx.quarantine.submit(Detected {
            path,
            dev: st.st_dev,
            ino: st.st_ino,
            sha256: cached.sha256,
            verdict: cached.decision.verdict.as_str().to_owned(),
            reasons: serde_json::to_value(&cached.decision.reasons).unwrap_or_default(),
            generation: generation.id,
            pid,
            executable: executable.map(|e| e.to_string_lossy().into_owned()),
            process_uid: uid,
        });
    }
}

/// Whether a verdict at write time sends the file to quarantine.
fn quarantines(generation: &Generation, verdict: Verdict) -> bool {
    let decision = &generation.config.decision;
    verdict == Verdict::Malicious
        && decision.mode == Mode::Enforce
        && decision.on_malicious_write == WriteAction::Quarantine
}

/// What a `written` event line says.
struct WrittenEvent<'a> {
    path: Option<&'a std::path::Path>,
    st: &'a FileStat,
    cached: &'a Cached,
    pid: i32,
    executable: Option<&'a std::path::Path>,
    uid: Option<u32>,
    generation: &'a Generation,
    quarantine: bool,
}

/// The event line of a detection at write time (`event.action: "written"`).
fn written_event(e: WrittenEvent<'_>) -> serde_json::Value {
    let decision = &e.cached.decision;
    json!({
        "@timestamp": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        "event": {
            "kind": "alert",
            "category": "malware",
            "action": "written",
            "type": "change",
            "outcome": if e.quarantine { "quarantined" } else { "detected" },
        },
        "file": {
            "path": e.path.map(|p| p.to_string_lossy()),
            "size": e.st.st_size,
            "uid": e.st.st_uid.to_string(),
            "hash": { "sha256": e.cached.sha256.map(hex::encode) },
        },
        "user": { "id": e.uid.map(|u| u.to_string()) },
        "process": {
            "pid": e.pid,
            "executable": e.executable.map(|p| p.to_string_lossy()),
        },
        "threat": {
            "indicator": { "name": decision.reasons.first().map(|r| r.detail.as_str()) },
        },
        "vigil": {
            "verdict": decision.verdict.as_str(),
            "mode": crate::engine::generation::mode_str(e.generation.config.decision.mode),
            "reasons": decision.reasons,
            "generation": e.generation.id,
            "on_malicious_write": e.generation.config.decision.on_malicious_write.as_str(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_type_reads_both_byte_orders() {
        let mut le = [0u8; 18];
        le[..4].copy_from_slice(b"\x7fELF");
        le[5] = 1;
        le[16] = 1;
        assert_eq!(elf_type(&le), Some(ET_REL));
        le[16] = 3;
        assert_eq!(elf_type(&le), Some(3));
        let mut be = le;
        be[5] = 2;
        be[16] = 0;
        be[17] = 1;
        assert_eq!(elf_type(&be), Some(ET_REL));
        assert_eq!(elf_type(&le[..10]), None);
    }
}
