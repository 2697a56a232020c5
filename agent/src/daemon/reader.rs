//! The reader: the only task that reads the fanotify group.
//!
//! Owns the group's `AsyncFd`. For each event it either answers at once or wraps
//! it in a [`Pending`], arms its deadline and hands it to the pool. At once: the
//! daemon's own pid, excluded processes, files that are not regular, files whose
//! verdict is already cached (a file denied once is denied again under any load;
//! the event then still goes to a worker, answered, to be logged), opens of a
//! uid that already has `decision.flood_pending` events waiting
//! (`decision.on_flood`, see [`super::fairness`]), and, while few events wait
//! ([`ANSWER_INLINE_BELOW`]), data opens under `scan_on_open = "executable"`
//! (their ignore mark is queued for the mark thread, which hears from here how
//! many openers each read found waiting: see [`super::ignore_marks`] on
//! bursts). While a herd of openers waits, what it answers at once is written
//! by the herd writer ([`super::herd`]), which also hears how full each read
//! was. The kernel's overflow notice is counted. It never scans, never
//! logs per event (one line per flood episode), and never waits on a worker: a
//! full queue is answered with `decision.on_overflow` on the spot. Next owner
//! of an event: a worker in [`crate::daemon::pool`], or the deadline thread in
//! [`crate::daemon::respond`]; for a `FAN_CLOSE_WRITE` notification, the
//! write-scan thread ([`crate::daemon::written`]).

use std::io;
use std::path::Path;
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::fanotify::{Fanotify, FanotifyEvent, MaskFlags};
use nix::sys::stat::{SFlag, fstat};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use vigil_models::sniff::sniff;
use vigil_policy::heuristics::script::TEXT_SNIFF_LEN;
use vigil_policy::verdict::Basis;
use vigil_policy::{Action, FailMode, RuleOutcome, ScanOnOpen, Verdict};

use crate::daemon::after_answer::may_ignore;
use crate::daemon::cache::FileKey;
use crate::daemon::fairness::{Admission, FAIR_FROM, Fairness};
use crate::daemon::herd::Waiting;
use crate::daemon::pool::{Context, PoolSender};
use crate::daemon::respond::{AccessKind, AnsweredBy, Deadlines, Pending};
use crate::daemon::stats::Stats;
use crate::daemon::worker::read_as_script;
use crate::daemon::written::Written;
use crate::engine::generation::Generation;
use crate::engine::scan::read_prefix;
use crate::procfs::{exe_of, uid_of};

/// The reader answers a data open itself only while fewer blocked openers than
/// this can be waiting on the group: the events of the batch it is routing plus
/// those handed on and not yet answered. Every response wakes every blocked
/// opener of the group, so one answer costs little with a handful waiting
/// (`burst_open`'s eight openers) and seconds with the kernel's 16 k (the
/// kernel-queue torture test), which is then left to the workers as before. A
/// batch this small also means the kernel's queue held no more than that when
/// it was read (a read takes up to 170 events).
pub const ANSWER_INLINE_BELOW: u64 = 32;

/// Reads events and routes them. See the module doc.
pub struct Reader {
    afd: AsyncFd<Arc<Fanotify>>,
    ctx: Arc<Context>,
    pool: PoolSender,
    deadlines: Arc<Deadlines>,
    waiting: Arc<Waiting>,
    fairness: Arc<Fairness>,
    written: Written,
    own_pid: i32,
}

/// Why the reader stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The kernel speaks another fanotify metadata version than we were built for.
    #[error("fanotify metadata version {got} differs from the supported {want}")]
    Version {
        /// What the kernel sent.
        got: u8,
        /// What nix was built against.
        want: u8,
    },
    /// A read error that cannot be retried.
    #[error("reading fanotify events failed: {0}")]
    Io(#[from] io::Error),
}

impl Reader {
    /// A reader over the registered group.
    pub fn new(
        afd: AsyncFd<Arc<Fanotify>>,
        ctx: Arc<Context>,
        pool: PoolSender,
        deadlines: Arc<Deadlines>,
        waiting: Arc<Waiting>,
        fairness: Arc<Fairness>,
        written: Written,
    ) -> Reader {
        let own_pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        Reader {
            afd,
            ctx,
            pool,
            deadlines,
            waiting,
            fairness,
            written,
            own_pid,
        }
    }

    /// Reads and routes events until `stop` turns true.
    ///
    /// # Errors
    /// A metadata version mismatch or an unrecoverable read error; the caller exits,
    /// which closes the group and makes the kernel allow anything still pending.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<(), ReadError> {
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return Ok(()),
                guard = self.afd.readable() => {
                    let mut guard = guard?;
                    match guard.try_io(|fan| read(fan.get_ref())) {
                        Ok(Ok(events)) => self.dispatch(events)?,
                        Ok(Err(e)) => handle_read_error(e)?,
                        Err(_would_block) => {
                            // The kernel's queue is empty: no backlog, whatever
                            // the last read found (see `super::herd`).
                            self.waiting.note_read(0);
                            continue;
                        }
                    }
                }
            }
        }
    }

    /// Reads and routes whatever is queued right now, without waiting (shutdown,
    /// after the marks are gone).
    ///
    /// # Errors
    /// As [`Reader::run`].
    pub fn drain(&self) -> Result<(), ReadError> {
        loop {
            match read(self.afd.get_ref()) {
                Ok(events) => self.dispatch(events)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => handle_read_error(e)?,
            }
        }
    }

    fn dispatch(&self, events: Vec<FanotifyEvent>) -> Result<(), ReadError> {
        let generation = self.ctx.generation.load();
        let stats = &self.ctx.stats;
        let batch = events.len() as u64;
        // Each permission event holds a thread until answered: several in one
        // read are several openers waiting at once (notifications block no one).
        let openers = events
            .iter()
            .filter(|e| !e.mask().contains(MaskFlags::FAN_CLOSE_WRITE))
            .count();
        self.ctx.marks.note_read(openers);
        self.waiting.note_read(openers);
        for event in events {
            if !event.check_version() {
                return Err(ReadError::Version {
                    got: event.version(),
                    want: nix::sys::fanotify::FANOTIFY_METADATA_VERSION,
                });
            }
            let mask = event.mask();
            if mask.contains(MaskFlags::FAN_Q_OVERFLOW) {
                Stats::bump(&stats.kernel_overflows);
                crate::warn_limited!(
                    "fanotify queue overflowed; the kernel allowed the events it dropped"
                );
                continue;
            }
            if mask.contains(MaskFlags::FAN_CLOSE_WRITE) {
                // A notification: nothing to answer. The daemon's own writes
                // (quarantine, logs) are not scanned.
                if event.pid() != self.own_pid {
                    self.written.offer(event);
                }
                continue;
            }
            let Some(access) = AccessKind::from_mask(mask) else {
                continue;
            };
            Stats::bump(match access {
                AccessKind::Exec => &stats.events_exec,
                AccessKind::Open => &stats.events_open,
            });
            if event.pid() == self.own_pid {
                Stats::bump(&stats.allowed_self);
                self.answer_now(event, access, Action::Allow);
                continue;
            }
            if !generation.exclusions.is_empty_processes()
                && exe_of(event.pid())
                    .is_some_and(|exe| generation.exclusions.process_excluded(Path::new(&exe)))
            {
                Stats::bump(&stats.allowed_excluded);
                self.answer_now(event, access, Action::Allow);
                continue;
            }
            let mut known_clean = false;
            let few_waiting = batch.saturating_add(self.waiting.count()) < ANSWER_INLINE_BELOW;
            match self.known(&event, access, &generation, few_waiting) {
                Known::NotRegular => {
                    self.answer_now(event, access, Action::Allow);
                    continue;
                }
                Known::Data(st) => {
                    // Allowed here, where its sniff ran: no hand-off to a
                    // worker (which would fstat and sniff it again), and its
                    // mark goes to the mark thread as a worker's would.
                    Stats::bump(&stats.allowed_not_executable);
                    Stats::bump(&stats.reader_allowed_not_executable);
                    self.write_now(&event, Action::Allow);
                    if generation.config.scan.ignore_marks && may_ignore(&st) {
                        self.ctx
                            .marks
                            .request_data_answered(event, generation.id, &st);
                    }
                    continue;
                }
                Known::Clean => known_clean = true,
                Known::Deny(action) => {
                    // Denied now; a worker logs it (the verdict is cached, so
                    // it does not scan again). No deadline: it is answered.
                    // Who did it is read first: after the deny, the process
                    // may exit and take its /proc entry with it.
                    let pid = event.pid();
                    let seen = (exe_of(pid), uid_of(pid));
                    let pending = Arc::new(
                        Pending::new(event, access, Arc::clone(&self.waiting), None)
                            .with_process(seen),
                    );
                    pending.answer(&self.ctx.group, action, AnsweredBy::Verdict, stats);
                    if self.pool.submit(pending).is_err() {
                        Stats::bump(&stats.events_dropped);
                    }
                    continue;
                }
                Known::No => {}
            }
            let queued = self.pool.queued();
            let uid = if queued >= FAIR_FROM {
                uid_of(event.pid())
            } else {
                None
            };
            let bound = generation.config.decision.flood_pending;
            let share = match self.fairness.admit(uid, queued, bound) {
                Admission::Queue(share) => share,
                // A flooding uid's execs are still scanned: they queue ahead
                // of every open.
                Admission::Flooding { .. } if access == AccessKind::Exec => None,
                Admission::Flooding {
                    uid,
                    pending,
                    report,
                } => {
                    Stats::bump(&stats.flood_answered);
                    let action = Action::from_fail_mode(generation.config.decision.on_flood);
                    let pid = event.pid();
                    self.answer_now(event, access, action);
                    if report {
                        Stats::bump(&stats.flood_episodes);
                        self.ctx.events.emit_json(flood_event(
                            uid,
                            pid,
                            pending,
                            generation.config.decision.on_flood,
                        ));
                    }
                    continue;
                }
            };
            let pending = Arc::new(Pending::new(
                event,
                access,
                Arc::clone(&self.waiting),
                share,
            ));
            self.deadlines.watch(
                &pending,
                pending.received + generation.config.decision.deadline,
            );
            let submitted = if known_clean {
                self.pool.submit_known(pending)
            } else {
                self.pool.submit(pending)
            };
            if let Err(pending) = submitted {
                Stats::bump(&stats.queue_full);
                let action = Action::from_fail_mode(generation.config.decision.on_overflow);
                pending.answer(&self.ctx.group, action, AnsweredBy::Verdict, stats);
            }
        }
        Ok(())
    }

    /// What is known of an event before any queue. A file that is not regular
    /// is to be allowed at once, a file whose cached verdict denies is denied at once
    /// (then goes to a worker, answered, to be logged; if the queue is full its
    /// log line is lost, counted in `events_dropped`, never its answer). A
    /// file whose cached verdict is clean goes to the front queue, ahead of
    /// every unknown open: answering it here would tie this thread, which also
    /// serves the control socket, to the kernel's cost of a response (every
    /// response wakes every blocked opener of the group: with 16 k of them
    /// that is seconds, see the kernel-queue torture test). A data open under
    /// `scan_on_open = "executable"` is [`Known::Data`] when `few_waiting` (see
    /// [`ANSWER_INLINE_BELOW`]) and the worker's gate would let it through
    /// unscanned too: no path exclusion to read, and not a script interpreter
    /// reading text. Otherwise it goes to a worker, which decides as before.
    fn known(
        &self,
        event: &FanotifyEvent,
        access: AccessKind,
        generation: &Generation,
        few_waiting: bool,
    ) -> Known {
        let stats = &self.ctx.stats;
        let Some(fd) = event.fd() else {
            return Known::No;
        };
        let Ok(st) = fstat(fd) else {
            return Known::No;
        };
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            Stats::bump(&stats.allowed_not_regular);
            return Known::NotRegular;
        }
        // An open the policy does not scan (a data file under
        // `scan_on_open = "executable"`) is not judged by its cached verdict:
        // it is let through, here or by a worker, whatever that verdict. The
        // same prefix as the worker's gate, so both read the file alike.
        if access == AccessKind::Open
            && matches!(generation.config.watch.scan_on_open, ScanOnOpen::Executable)
        {
            let mut prefix = [0u8; TEXT_SNIFF_LEN];
            let n = read_prefix(fd, &mut prefix).unwrap_or(0);
            let prefix = &prefix[..n];
            if !sniff(prefix).is_executable() {
                let data = few_waiting
                    && generation.exclusions.is_empty_paths()
                    && !read_as_script(generation, event.pid(), prefix);
                return if data { Known::Data(st) } else { Known::No };
            }
        }
        let Some(cached) = self.ctx.cache.peek(&FileKey::new(&st, generation.id)) else {
            return Known::No;
        };
        // A verdict reached under a trusted name is not this path's to reuse.
        if cached.trusted {
            return Known::No;
        }
        let verdict = cached.decision.verdict;
        let basis = Basis::of(&generation.config.decision);
        let action = vigil_policy::answer(Some(verdict), RuleOutcome::None, &basis).action;
        if action.allows() {
            // Clean only: a suspicious file's allowed accesses are logged (a
            // worker's job), and the exec rules look at the process.
            if verdict != Verdict::Clean
                || (access == AccessKind::Exec && !generation.exec_policy.is_empty())
            {
                return Known::No;
            }
            Stats::bump(&stats.reader_cache_hits);
            return Known::Clean;
        }
        // A path exclusion may still allow it: the worker reads the path.
        if !generation.exclusions.is_empty_paths() {
            return Known::No;
        }
        Stats::bump(&stats.reader_cache_hits);
        Known::Deny(action)
    }

    /// Answers an event that needs no worker. While many openers wait it
    /// becomes a [`Pending`] so that the herd writer makes the write
    /// ([`super::herd`]): from this thread, which also serves the control
    /// socket, each write would wake the whole herd.
    fn answer_now(&self, event: FanotifyEvent, access: AccessKind, action: Action) {
        if self.waiting.is_herd() {
            let pending = Arc::new(Pending::new(event, access, Arc::clone(&self.waiting), None));
            pending.answer(
                &self.ctx.group,
                action,
                AnsweredBy::Verdict,
                &self.ctx.stats,
            );
        } else {
            self.write_now(&event, action);
        }
    }

    /// Writes the answer of an event that is not a [`Pending`] at once.
    fn write_now(&self, event: &FanotifyEvent, action: Action) {
        if !action.allows() {
            Stats::bump(&self.ctx.stats.denied);
        }
        if let Some(fd) = event.fd()
            && let Err(errno) = self.ctx.group.respond(fd, action)
            && errno != Errno::ENOENT
        {
            Stats::bump(&self.ctx.stats.response_errors);
        }
    }
}

/// What [`Reader::known`] found.
enum Known {
    /// Not a regular file: to allow at once (counted).
    NotRegular,
    /// A data open the policy does not scan, to allow at once (the file as
    /// `fstat` saw it, for its ignore mark).
    Data(nix::sys::stat::FileStat),
    /// Deny at once with this action, then hand it to a worker to log.
    Deny(Action),
    /// Cached clean: queue it ahead of the unknown opens.
    Clean,
    /// Queue it for a worker.
    No,
}

/// The event line of a flood episode (`event.action: "flood"`).
fn flood_event(uid: u32, pid: i32, pending: u32, on_flood: FailMode) -> serde_json::Value {
    serde_json::json!({
        "@timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        "event": {"kind": "event", "category": ["process"], "action": "flood", "outcome": on_flood.as_str()},
        "user": {"id": uid.to_string()},
        "process": {
            "pid": pid,
            "executable": exe_of(pid).map(|p| p.to_string_lossy().into_owned()),
        },
        "vigil": {
            "pending": pending,
            "on_flood": on_flood.as_str(),
            "message": "this user has too many events waiting: its further opens are answered unscanned (decision.on_flood) until its backlog drains",
        },
    })
}

fn read(fan: &Fanotify) -> io::Result<Vec<FanotifyEvent>> {
    loop {
        match fan.read_events() {
            Err(Errno::EINTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Transient read errors are logged and survived: on `EMFILE`/`ENFILE`/`ENOMEM` the
/// kernel could not open the event's file for us and has already denied that one
/// event, so the queue moves on. Anything else is fatal.
fn handle_read_error(e: io::Error) -> Result<(), ReadError> {
    match e.raw_os_error().map(Errno::from_raw) {
        Some(
            Errno::EMFILE
            | Errno::ENFILE
            | Errno::ENOMEM
            | Errno::EPERM
            | Errno::EACCES
            | Errno::ENOENT
            | Errno::EOVERFLOW
            | Errno::ETXTBSY,
        ) => {
            crate::warn_limited!(error = %e, "fanotify read failed for one event; the kernel denied it");
            Ok(())
        }
        _ => Err(ReadError::Io(e)),
    }
}
