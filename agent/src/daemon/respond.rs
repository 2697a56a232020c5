//! Answering the kernel exactly once per permission event, by its deadline.
//!
//! Owns [`Pending`] (one event between the reader and its answer) and the deadline
//! thread. Whoever answers first wins: the worker with a verdict, the deadline thread
//! with `decision.on_timeout`, or the reader/pool with a fast or overflow answer.
//! Later attempts are no-ops, so a stuck worker can never hold an opener past its
//! deadline. While many openers wait, the winner hands the write itself to the
//! herd writer ([`super::herd`]).
//!
//! # Why the event fd cannot be answered for after its close
//! Answers name the event by its fd number. The worker owns the only strong
//! reference to a [`Pending`] (and so the fd); the deadline thread holds a `Weak`.
//! Once the worker drops it, the fd closes and the number may be reused by a new
//! event, but the `Weak` no longer upgrades, so the deadline thread can never answer
//! a stranger's event. While the deadline thread holds an upgraded reference, the fd
//! stays open.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::fanotify::{FanotifyEvent, MaskFlags};
use vigil_policy::Action;

use super::fairness::Share;
use crate::daemon::herd::Waiting;
use crate::daemon::stats::Stats;
use crate::fanotify::Group;

/// Which access raised the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// `FAN_OPEN_EXEC_PERM`: the file is being executed (or `ld.so`-loaded via exec).
    Exec,
    /// `FAN_OPEN_PERM`: the file is being opened.
    Open,
}

impl AccessKind {
    /// Classifies an event mask; `None` for events that need no answer.
    pub fn from_mask(mask: MaskFlags) -> Option<AccessKind> {
        if mask.contains(MaskFlags::FAN_OPEN_EXEC_PERM) {
            Some(AccessKind::Exec)
        } else if mask.contains(MaskFlags::FAN_OPEN_PERM) {
            Some(AccessKind::Open)
        } else {
            None
        }
    }

    /// Stable name for logs (`event.type`).
    pub fn as_str(self) -> &'static str {
        match self {
            AccessKind::Exec => "exec",
            AccessKind::Open => "open",
        }
    }
}

/// Who gave the answer the kernel received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnsweredBy {
    /// The scan's verdict (or a cache hit or a fast path).
    Verdict,
    /// The deadline thread, with the fail mode.
    Deadline,
}

/// [`Pending`]'s `taken_us` before a worker took the event.
const NOT_TAKEN: u64 = u64::MAX;

/// One permission event awaiting its answer. Owns the event (and so its fd).
#[derive(Debug)]
pub struct Pending {
    event: FanotifyEvent,
    /// Which access this is.
    pub access: AccessKind,
    /// When the reader received it.
    pub received: Instant,
    /// Set once an answer was written (or attempted) for this event.
    answered: AtomicBool,
    /// Set when the deadline thread gave the answer.
    by_deadline: AtomicBool,
    /// Set when the answer was deny.
    denied: AtomicBool,
    /// Microseconds from `received` until a worker took the event;
    /// [`NOT_TAKEN`] until then.
    taken_us: AtomicU64,
    /// The count of events awaiting an answer, and where answers go while
    /// many wait.
    waiting: Arc<Waiting>,
    /// The event's place in its uid's count of waiting events, given back
    /// when the worker drops the event.
    _share: Option<Share>,
    /// The accessing process's executable and uid, when they were read before
    /// the answer by whoever answered before a worker saw the event.
    process: Option<(Option<PathBuf>, Option<u32>)>,
}

impl Pending {
    /// Wraps an event that needs an answer. `waiting` counts unanswered
    /// events; `share`, if any, is the event's place in its uid's count.
    pub fn new(
        event: FanotifyEvent,
        access: AccessKind,
        waiting: Arc<Waiting>,
        share: Option<Share>,
    ) -> Pending {
        waiting.add();
        Pending {
            event,
            access,
            received: Instant::now(),
            answered: AtomicBool::new(false),
            by_deadline: AtomicBool::new(false),
            denied: AtomicBool::new(false),
            taken_us: AtomicU64::new(NOT_TAKEN),
            waiting,
            _share: share,
            process: None,
        }
    }

    /// Records the accessing process's executable and uid, read before an
    /// answer given ahead of any worker (the process may exit once denied).
    #[must_use]
    pub fn with_process(mut self, process: (Option<PathBuf>, Option<u32>)) -> Pending {
        self.process = Some(process);
        self
    }

    /// The executable and uid recorded by [`Pending::with_process`], if any.
    pub fn process(&self) -> Option<&(Option<PathBuf>, Option<u32>)> {
        self.process.as_ref()
    }

    /// The event itself (pid, fd).
    pub fn event(&self) -> &FanotifyEvent {
        &self.event
    }

    /// True once the kernel has been answered for this event.
    pub fn is_answered(&self) -> bool {
        self.answered.load(Ordering::Acquire)
    }

    /// True when the deadline, not the verdict, answered.
    pub fn answered_by(&self) -> AnsweredBy {
        if self.by_deadline.load(Ordering::Acquire) {
            AnsweredBy::Deadline
        } else {
            AnsweredBy::Verdict
        }
    }

    /// Notes that a worker took the event now; returns how long it waited
    /// (the first take counts, later ones return `None`).
    pub fn taken(&self) -> Option<Duration> {
        let waited = self.received.elapsed();
        let us = u64::try_from(waited.as_micros()).unwrap_or(NOT_TAKEN - 1);
        self.taken_us
            .compare_exchange(NOT_TAKEN, us, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| waited)
    }

    /// How long the event waited for a worker, once one took it: with the
    /// total time, it tells a slow scan from a queue that was too long.
    pub fn queued_us(&self) -> Option<u64> {
        match self.taken_us.load(Ordering::Acquire) {
            NOT_TAKEN => None,
            us => Some(us),
        }
    }

    /// True when the kernel was told to deny.
    pub fn was_denied(&self) -> bool {
        self.denied.load(Ordering::Acquire)
    }

    /// Answers the event unless someone already did. Returns true when this call
    /// gave the answer. Never blocks; a refused write is counted, not retried (the
    /// kernel allows the event when our fd closes at exit, the only other exit).
    /// While many events wait, the write itself is left to the herd writer
    /// ([`super::herd`]), which makes it moments later.
    pub fn answer(
        self: &Arc<Self>,
        group: &Group,
        action: Action,
        by: AnsweredBy,
        stats: &Stats,
    ) -> bool {
        if self
            .answered
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        if by == AnsweredBy::Deadline {
            self.by_deadline.store(true, Ordering::Release);
        }
        if !action.allows() {
            self.denied.store(true, Ordering::Release);
            Stats::bump(&stats.denied);
        }
        if self.waiting.is_herd() && self.waiting.hand_over(Arc::clone(self), action) {
            return true;
        }
        self.write(group, action, stats);
        self.waiting.done();
        true
    }

    /// Writes the answer [`Pending::answer`] decided.
    pub(super) fn write(&self, group: &Group, action: Action, stats: &Stats) {
        if let Some(fd) = self.event.fd() {
            match group.respond(fd, action) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(errno) => {
                    Stats::bump(&stats.response_errors);
                    crate::warn_limited!(%errno, "kernel refused a permission response");
                }
            }
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // An event dropped unanswered (only possible on a bug or at exit) must not
        // keep shutdown waiting; the kernel allows it when our group fd closes.
        if !self.answered.load(Ordering::Acquire) {
            self.waiting.done();
        }
    }
}

struct Entry {
    due: Instant,
    seq: u64,
    pending: Weak<Pending>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    stopped: bool,
}

/// The deadline keeper: a thread that answers, with the fail mode, every event whose
/// deadline passes before its verdict. Independent of tokio and of the workers, so
/// neither a stalled runtime nor stuck workers delay it.
pub struct Deadlines {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// The answer the deadline gives an event: the fail mode of the current
/// generation for its access kind, after whatever check the daemon makes first
/// (a file on a hash list is never allowed by a timeout).
pub type TimeoutFn = dyn Fn(&Pending) -> Action + Send + Sync;

impl Deadlines {
    /// Starts the deadline thread.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn start(
        group: Group,
        on_timeout: Arc<TimeoutFn>,
        stats: Arc<Stats>,
    ) -> std::io::Result<(Arc<Deadlines>, thread::JoinHandle<()>)> {
        let me = Arc::new(Deadlines {
            queue: Mutex::new(Queue {
                heap: BinaryHeap::new(),
                seq: 0,
                stopped: false,
            }),
            wake: Condvar::new(),
        });
        let worker = Arc::clone(&me);
        let handle = thread::Builder::new()
            .name("vigil-deadline".into())
            .spawn(move || worker.run(&group, &*on_timeout, &stats))?;
        Ok((me, handle))
    }

    /// Schedules `pending` to be answered with the fail mode at `due` unless
    /// answered before.
    pub fn watch(&self, pending: &Arc<Pending>, due: Instant) {
        let mut q = lock(&self.queue);
        q.seq += 1;
        let seq = q.seq;
        let earliest = q.heap.peek().is_none_or(|Reverse(e)| due < e.due);
        q.heap.push(Reverse(Entry {
            due,
            seq,
            pending: Arc::downgrade(pending),
        }));
        drop(q);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Stops the thread after it has answered everything already due.
    pub fn stop(&self) {
        lock(&self.queue).stopped = true;
        self.wake.notify_one();
    }

    fn run(&self, group: &Group, on_timeout: &TimeoutFn, stats: &Stats) {
        let expire = |entry: Entry| {
            if let Some(pending) = entry.pending.upgrade() {
                let action = on_timeout(&pending);
                if pending.answer(group, action, AnsweredBy::Deadline, stats) {
                    Stats::bump(&stats.deadline_expired);
                }
            }
        };
        let mut q = lock(&self.queue);
        loop {
            if q.stopped {
                // On shutdown, answer whatever is left at once rather than waiting.
                let mut rest = Vec::with_capacity(q.heap.len());
                while let Some(Reverse(entry)) = q.heap.pop() {
                    rest.push(entry);
                }
                drop(q);
                rest.into_iter().for_each(expire);
                return;
            }
            let now = Instant::now();
            // Events already answered by their verdict need nothing more: they
            // leave the front of the heap whatever their due time, so the thread
            // sleeps until the first event still waiting instead of waking once
            // per event, a deadline after each answer.
            let mut due = Vec::new();
            while let Some(Reverse(top)) = q.heap.peek() {
                let waiting = top.pending.upgrade().is_some_and(|p| !p.is_answered());
                if waiting && top.due > now {
                    break;
                }
                if let Some(Reverse(entry)) = q.heap.pop()
                    && waiting
                {
                    due.push(entry);
                }
            }
            if !due.is_empty() {
                // Answered outside the lock: with thousands of openers blocked,
                // each answer is a slow write (the kernel wakes every waiter),
                // and the reader arms new deadlines under this lock meanwhile.
                drop(q);
                due.into_iter().for_each(expire);
                q = lock(&self.queue);
                continue;
            }
            let wait = q
                .heap
                .peek()
                .map(|Reverse(e)| e.due.saturating_duration_since(now))
                .unwrap_or(IDLE_WAIT);
            q = match self.wake.wait_timeout(q, wait) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// How long the deadline thread sleeps with nothing to watch (it is woken on push).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// Locks a mutex, recovering from poisoning: our critical sections leave the data
/// consistent even if a holder panicked, and the daemon must keep answering.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
