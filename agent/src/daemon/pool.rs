//! The bounded worker pool: the threads that take events from the reader.
//!
//! Owns the worker threads, their queue, and each worker's [`Scanner`] and YARA
//! scanner, rebuilt when a reload swaps the generation. The reader hands each
//! event over with [`PoolSender::submit`]; a full queue hands it straight back (the
//! reader answers it with the overflow action, never waits). A worker pins the
//! current generation and runs [`worker::handle`](super::worker::handle) on each
//! event: gate, scan or cache, answer, then the steps after the answer. The
//! deadline thread may answer before the worker does; the worker still finishes
//! the scan so the late verdict is logged and cached.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

use super::alerts::Alerts;
use super::cache::VerdictCache;
use super::events::EventLog;
use super::exec_history::ExecHistory;
use super::ignore_marks::IgnoreMarks;
use super::respond::Pending;
use super::stats::Stats;
use super::worker::{Worker, handle};
use crate::engine::generation::Generation;
use crate::engine::scan::Scanner;
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
            let mut worker = Worker {
                ctx,
                generation: &generation,
                scanner: &mut scanner,
                rules: &mut rules,
            };
            handle(&mut worker, &pending);
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

/// False when a reload replaced `generation`: its clean verdicts may be stale under
/// the new content.
fn is_current(ctx: &Context, generation: &Generation) -> bool {
    ctx.generation.load().id == generation.id
}
