//! Answering many blocked openers at once: the herd writer.
//!
//! Owns [`Waiting`]: the count of events that await an answer, and the thread
//! that writes their answers while many of them wait. Every opener blocked on
//! the group sleeps on one kernel wait queue, and every response wakes all of
//! them; each woken opener whose event is still unanswered goes back to sleep.
//! A writer of ordinary priority is preempted by the herd it has just woken
//! before its next write, so answering n waiters costs about n rounds of n
//! wake-ups. Measured on 2 vCPUs with 16,384 openers blocked on a stopped
//! listener (docs/failure-modes.md): answered back to back at nice 0, 75 s of a
//! machine that barely runs anything else; from a `SCHED_FIFO` thread, which
//! the herd cannot preempt, 74 ms, since each write after the first wakes only
//! the openers that went back to sleep meanwhile.
//!
//! While at least [`HERD_FROM`] events wait, or the reader's last read was
//! full ([`FULL_READ`]), [`Pending::answer`] hands its write to this thread
//! instead of making it (the reader's own answers become a [`Pending`] for
//! it); the thread takes everything
//! handed over, writes it back to back and sleeps again. It decides nothing:
//! verdicts, deadlines and fail modes are settled before the hand-over. With
//! fewer waiting, an answer is written where it was decided (one hand-over
//! less on the hot path, and a handful of waiters are cheap to wake). Without
//! permission for `SCHED_FIFO` (the unit's `LimitRTPRIO=`, or `CAP_SYS_NICE`)
//! the thread runs at the daemon's own priority and says so once. Must not own:
//! which answer an event gets (the worker, [`super::respond`]'s deadline
//! thread, the reader).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use vigil_policy::Action;

use crate::daemon::respond::{Pending, lock};
use crate::daemon::stats::Stats;
use crate::fanotify::Group;
use crate::fanotify::sys::set_thread_fifo;

/// From this many events awaiting an answer, answers go to the herd writer.
/// Below it a response wakes few enough openers to be written on the spot
/// (answering 256 one by one costs tens of milliseconds in all): the kernel
/// queue's 16,384 are the problem, the benchmark's bursts of eight, an exec
/// storm's few dozen and one user's flood (held near `decision.flood_pending`,
/// 64) are not. At 64 the unprivileged flood test's answers went through the
/// writer too, and root's exec missed its deadline in 1 of 4 runs (0 of 8
/// without the writer); at 256 the writer takes no part in that test.
pub const HERD_FROM: u64 = 256;

/// A read of this many permission events or more counts as a backlog: a read
/// takes up to 170, so the kernel's queue held at least this many openers
/// and probably more. Whatever the reader answers itself (its own opens,
/// excluded processes, files that are not regular, a flooding user's opens)
/// is not counted in [`Waiting::count`], so a backlog of only those would
/// otherwise never look like a herd.
const FULL_READ: usize = 128;

/// The real-time priority of the herd writer: the lowest, enough to run ahead
/// of every ordinary thread (and of the herd), behind any real-time one.
const FIFO_PRIORITY: i32 = 1;

/// The longest the writer lets a batch grow before writing it, unless the
/// reader is still reading a backlog.
const MAX_LINGER_US: u64 = 20_000;

/// The longest the writer waits for the reader to get through a backlog
/// before writing what it has: each write would wake the herd and slow the
/// reader's next reads, but an answer already decided must not wait long
/// (the default deadline is 250 ms).
const MAX_BACKLOG_LINGER: Duration = Duration::from_millis(50);

/// The events awaiting an answer and the herd writer's queue.
#[derive(Debug, Default)]
pub struct Waiting {
    /// Events read and not yet answered (a handed-over answer counts until
    /// written); lets shutdown wait for "nothing unanswered".
    count: AtomicU64,
    /// The reader's last read was full ([`FULL_READ`] openers or more): the
    /// kernel's queue probably holds more, though vigil holds few of them.
    /// Cleared by a smaller read, or when a read finds the queue empty.
    backlog: AtomicBool,
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    answers: Vec<(Arc<Pending>, Action)>,
    /// The writer takes answers: false before its start and after its stop,
    /// when [`Waiting::hand_over`] refuses them and the caller writes itself.
    running: bool,
    stopped: bool,
}

impl Waiting {
    /// A count at zero, no writer yet.
    pub fn new() -> Arc<Waiting> {
        Arc::new(Waiting::default())
    }

    /// Events awaiting an answer now.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// One more event awaits an answer.
    pub(super) fn add(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    /// One event less awaits an answer (written, or dropped unanswered).
    pub(super) fn done(&self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }

    /// Notes how many permission events (blocked openers) the reader's last
    /// read returned.
    pub(super) fn note_read(&self, events: usize) {
        self.backlog.store(events >= FULL_READ, Ordering::Relaxed);
    }

    /// True when an answer decided now should be handed to the writer.
    pub(super) fn is_herd(&self) -> bool {
        self.count() >= HERD_FROM || self.backlog.load(Ordering::Relaxed)
    }

    /// Queues `action` to be written for `pending`; false (and nothing queued)
    /// when no writer runs, so the caller writes it.
    pub(super) fn hand_over(&self, pending: Arc<Pending>, action: Action) -> bool {
        let mut q = lock(&self.queue);
        if !q.running {
            return false;
        }
        let first = q.answers.is_empty();
        q.answers.push((pending, action));
        drop(q);
        if first {
            self.wake.notify_one();
        }
        true
    }

    /// Starts the herd writer.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn start_writer(
        self: &Arc<Self>,
        group: Group,
        stats: Arc<Stats>,
    ) -> std::io::Result<thread::JoinHandle<()>> {
        lock(&self.queue).running = true;
        let me = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name("vigil-herd".into())
            .spawn(move || me.run(&group, &stats));
        if spawned.is_err() {
            lock(&self.queue).running = false;
        }
        spawned
    }

    /// Stops the writer once it has written everything handed to it; later
    /// answers are written by whoever decides them.
    pub fn stop_writer(&self) {
        lock(&self.queue).stopped = true;
        self.wake.notify_one();
    }

    /// Lets the batch grow before it is written. No write, no wake-up: while
    /// the herd sleeps, the reader and the workers run and add to the batch.
    /// About one microsecond per waiter, the order of what one write costs in
    /// wake-ups; longer while the reader still finds a backlog in the kernel's
    /// queue, since a write then would starve its reads.
    fn linger(&self) {
        let started = std::time::Instant::now();
        loop {
            thread::sleep(Duration::from_micros(self.count().min(MAX_LINGER_US)));
            if !self.backlog.load(Ordering::Relaxed) || started.elapsed() >= MAX_BACKLOG_LINGER {
                return;
            }
        }
    }

    /// Writes `batch` back to back; each answer leaves the count once written.
    fn write_batch(&self, batch: Vec<(Arc<Pending>, Action)>, group: &Group, stats: &Stats) {
        if batch.is_empty() {
            return;
        }
        Stats::bump(&stats.herd_batches);
        for (pending, action) in batch {
            pending.write(group, action, stats);
            self.done();
            Stats::bump(&stats.herd_answers);
        }
    }

    fn run(&self, group: &Group, stats: &Stats) {
        match set_thread_fifo(FIFO_PRIORITY) {
            Ok(()) => tracing::debug!("herd writer runs at SCHED_FIFO {FIFO_PRIORITY}"),
            Err(e) => tracing::warn!(
                error = %e,
                "the herd writer cannot run as a real-time thread; with thousands of \
                 openers waiting (after the daemon was stopped or starved) their \
                 answers then take minutes instead of milliseconds: allow SCHED_FIFO \
                 priority 1 (systemd: LimitRTPRIO=1, no RestrictRealtime=)"
            ),
        }
        let _closing = Closing {
            waiting: self,
            group,
            stats,
        };
        let mut q = lock(&self.queue);
        loop {
            if !q.answers.is_empty() {
                if !q.stopped {
                    drop(q);
                    self.linger();
                    q = lock(&self.queue);
                }
                let batch = std::mem::take(&mut q.answers);
                drop(q);
                self.write_batch(batch, group, stats);
                q = lock(&self.queue);
                continue;
            }
            if q.stopped {
                drop(q);
                return;
            }
            q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Ends the writer's service, also when it panics: an answer handed over has
/// been given (no one else will write it), so whatever is queued is written
/// here, and later answers are written by whoever decides them.
struct Closing<'a> {
    waiting: &'a Waiting,
    group: &'a Group,
    stats: &'a Stats,
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        let rest = {
            let mut q = lock(&self.waiting.queue);
            q.running = false;
            std::mem::take(&mut q.answers)
        };
        self.waiting.write_batch(rest, self.group, self.stats);
    }
}
