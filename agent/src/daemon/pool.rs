//! The bounded worker pool: the threads that take events from the reader.
//!
//! Owns the worker threads, their two queues (execs, opens), and each worker's
//! [`Scanner`] and YARA scanner, rebuilt when a reload swaps the generation. The
//! reader hands each event over with [`PoolSender::submit`]; a full queue hands it
//! straight back (the reader answers it with the overflow action, never waits).
//! Execs never wait behind opens: the front queue holds execs and events whose
//! verdict is cached ([`PoolSender::submit_known`]), every worker takes from it
//! before it takes an open, and one more worker takes from it only. A worker pins the
//! current generation and runs [`worker::handle`](super::worker::handle) on each
//! event: gate, scan or cache, answer, then the steps after the answer. The
//! deadline thread may answer before the worker does; the worker still finishes
//! the scan so the late verdict is logged and cached.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Select, Sender, TryRecvError, TrySendError};

use super::alerts::Alerts;
use super::cache::VerdictCache;
use super::events::EventLog;
use super::exec_history::ExecHistory;
use super::ignore_marks::IgnoreMarks;
use super::priority;
use super::respond::{AccessKind, Pending};
use super::stats::Stats;
use super::worker::{handle, serve};
use crate::engine::generation::Generation;
use crate::fanotify::Group;
use crate::quarantine::Quarantiner;

/// Everything a worker shares with the rest of the daemon.
pub struct Context {
    /// The fanotify group (answers, ignore marks).
    pub group: Group,
    /// The current generation; each decision pins one.
    pub generation: Arc<ArcSwap<Generation>>,
    /// The verdict cache.
    pub cache: Arc<VerdictCache>,
    /// The verdicts kept on disk, asked after a miss in `cache`.
    pub persistent: super::cache::persistent::Persistent,
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
    /// Pipe ends seen at exec, to recognise `curl … | sh`.
    pub pipes: super::pipes::Pipes,
    /// The thread that scans code given on an interpreter's command line.
    pub inline: super::inline_code::InlineCode,
}

/// The bounded pool: two queues, execs and opens, so an exec never waits
/// behind a flood of opens. Dropping the last sender (via [`Pool::close`]) stops
/// the workers once the queues are empty.
pub struct Pool {
    sender: PoolSender,
    handles: Vec<thread::JoinHandle<()>>,
}

/// What a worker takes from the queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// Execs first, opens when no exec waits.
    ExecsFirst,
    /// Execs only: one such worker is always free for an exec, however long
    /// the scans of opens take.
    ExecsOnly,
}

/// The receiving ends, shared by every worker.
#[derive(Clone)]
struct Queues {
    execs: Receiver<Arc<Pending>>,
    opens: Receiver<Arc<Pending>>,
}

impl Pool {
    /// Starts `workers` threads that take execs first and opens otherwise, plus
    /// one that takes execs only, behind two queues of `capacity` events each.
    ///
    /// # Errors
    /// When a thread cannot be spawned.
    pub fn start(workers: usize, capacity: usize, ctx: Arc<Context>) -> std::io::Result<Pool> {
        let (exec_tx, execs) = crossbeam_channel::bounded(capacity);
        let (open_tx, opens) = crossbeam_channel::bounded(capacity);
        let queues = Queues { execs, opens };
        let mut handles = Vec::with_capacity(workers + 1);
        let roles = (0..workers)
            .map(|i| (format!("vigil-worker-{i}"), Takes::ExecsFirst))
            .chain([("vigil-exec".to_owned(), Takes::ExecsOnly)]);
        for (name, takes) in roles {
            let queues = queues.clone();
            let ctx = Arc::clone(&ctx);
            handles.push(
                thread::Builder::new()
                    .name(name)
                    .spawn(move || work(&ctx, &queues, takes))?,
            );
        }
        Ok(Pool {
            sender: PoolSender {
                execs: exec_tx,
                opens: open_tx,
            },
            handles,
        })
    }

    /// A sender for the reader (the pool stays open while any sender lives).
    pub fn sender(&self) -> PoolSender {
        self.sender.clone()
    }

    /// Closes the queues; returns the worker threads so the caller may wait for
    /// them.
    pub fn close(self) -> Vec<thread::JoinHandle<()>> {
        self.handles
    }
}

/// A cheap handle for submitting events.
#[derive(Clone)]
pub struct PoolSender {
    execs: Sender<Arc<Pending>>,
    opens: Sender<Arc<Pending>>,
}

impl PoolSender {
    /// Events waiting for a worker right now (both queues).
    pub fn queued(&self) -> usize {
        self.execs.len() + self.opens.len()
    }

    /// Queues `pending`, whose file's verdict is cached, on the front queue
    /// (with the execs): a worker answers it from the cache, ahead of every
    /// open that needs a scan. Never blocks.
    ///
    /// # Errors
    /// The event itself, when the queue is full or the pool closed.
    pub fn submit_known(&self, pending: Arc<Pending>) -> Result<(), Arc<Pending>> {
        self.execs.try_send(pending).map_err(|e| match e {
            TrySendError::Full(p) | TrySendError::Disconnected(p) => p,
        })
    }

    /// Queues `pending` on the queue of its access kind; never blocks.
    ///
    /// # Errors
    /// The event itself, when that queue is full or the pool closed.
    pub fn submit(&self, pending: Arc<Pending>) -> Result<(), Arc<Pending>> {
        let queue = match pending.access {
            AccessKind::Exec => &self.execs,
            AccessKind::Open => &self.opens,
        };
        queue.try_send(pending).map_err(|e| match e {
            TrySendError::Full(p) | TrySendError::Disconnected(p) => p,
        })
    }
}

/// A worker's life: the next event, exec first, each under the generation
/// current when it is handled ([`serve`]).
fn work(ctx: &Context, queues: &Queues, takes: Takes) {
    serve(
        ctx,
        || next_event(queues, takes),
        |worker, pending| {
            // The exec-only worker stays boosted even for the cached opens
            // that share its queue: it must wake fast for the next exec.
            priority::for_event(takes == Takes::ExecsOnly || pending.access == AccessKind::Exec);
            handle(worker, &pending);
        },
    );
}

/// How long an idle worker keeps polling its queues before it sleeps. Waking a
/// sleeping thread costs tens of µs on an idle virtual CPU, once per event when
/// events come one at a time (an opener blocked on each answer); a worker that
/// is still polling takes the next event at once. It yields between polls, so
/// it spends only CPU time nothing else wants, and sleeps after a quiet spell.
const POLL_BEFORE_SLEEP: Duration = Duration::from_micros(50);

/// The next event, an exec whenever one waits; `None` once the pool is closed.
fn next_event(queues: &Queues, takes: Takes) -> Option<Arc<Pending>> {
    let until = Instant::now() + POLL_BEFORE_SLEEP;
    loop {
        match queues.execs.try_recv() {
            Ok(pending) => return Some(pending),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        if takes == Takes::ExecsFirst {
            match queues.opens.try_recv() {
                Ok(pending) => return Some(pending),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
        }
        if Instant::now() < until {
            thread::yield_now();
            continue;
        }
        match takes {
            Takes::ExecsOnly => return queues.execs.recv().ok(),
            Takes::ExecsFirst => {
                // Sleep until either queue has something (or closes), then
                // look at the exec queue first again.
                let mut select = Select::new();
                select.recv(&queues.execs);
                select.recv(&queues.opens);
                let _ = select.ready();
            }
        }
    }
}
