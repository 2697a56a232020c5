//! Kernel ignore marks for clean files, added by a thread of their own.
//!
//! Owns the choice of ignore-mark flavour and the thread that places the marks.
//! Adding a mark takes the fanotify group's mark lock, and under load that has
//! been measured at several milliseconds per mark; on a worker, that time was
//! spent while the next permission event waited. Workers therefore only queue
//! a request (after answering) and move on; this thread adds the marks in
//! order. A full queue drops the request: the file simply keeps reaching the
//! daemon, where the verdict cache answers it.
//!
//! A mark never outlives the content it vouches for: the request carries the
//! generation and the file's change time, size and mtime as scanned; the mark
//! is added only if the generation is still current and the file unchanged,
//! and taken back if a reload swapped the generation meanwhile.

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::thread;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use nix::errno::Errno;
use nix::sys::fanotify::MaskFlags;
use nix::sys::stat::{FileStat, fstat};

use crate::daemon::respond::Pending;
use crate::daemon::stats::Stats;
use crate::engine::generation::Generation;
use crate::fanotify::{Group, IgnoreStyle};

/// Requests waiting for the mark thread. Past this, marks are skipped rather
/// than holding more event fds open.
const QUEUE: usize = 4096;

/// One ignore mark to add: the (already answered) event whose fd names the file,
/// and what the verdict was based on.
struct Request {
    pending: Arc<Pending>,
    generation: u64,
    mask: MaskFlags,
    scanned: Snapshot,
}

/// What must not have changed between the scan and the mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Snapshot {
    fn of(st: &FileStat) -> Snapshot {
        Snapshot {
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }
}

/// The workers' handle on the mark thread.
#[derive(Clone)]
pub struct IgnoreMarks {
    tx: Sender<Request>,
    stats: Arc<Stats>,
}

impl IgnoreMarks {
    /// Starts the mark thread. It stops once every handle is dropped.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn start(
        group: Group,
        generation: Arc<ArcSwap<Generation>>,
        stats: Arc<Stats>,
    ) -> std::io::Result<IgnoreMarks> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let thread_stats = Arc::clone(&stats);
        thread::Builder::new()
            .name("vigil-marks".into())
            .spawn(move || run(&group, &generation, &thread_stats, &rx))?;
        Ok(IgnoreMarks { tx, stats })
    }

    /// Queues an ignore mark for the file of `pending`, scanned as `st` under
    /// generation `generation`. Never blocks.
    pub fn request(&self, pending: &Arc<Pending>, generation: u64, st: &FileStat, mask: MaskFlags) {
        let request = Request {
            pending: Arc::clone(pending),
            generation,
            mask,
            scanned: Snapshot::of(st),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(request)
        {
            Stats::bump(&self.stats.ignore_marks_skipped);
        }
    }
}

fn run(group: &Group, generation: &ArcSwap<Generation>, stats: &Stats, rx: &Receiver<Request>) {
    let mut support = IgnoreSupport::default();
    let current = |id: u64| generation.load().id == id;
    for request in rx {
        let Some(fd) = request.pending.event().fd() else {
            continue;
        };
        let unchanged = fstat(fd).is_ok_and(|st| Snapshot::of(&st) == request.scanned);
        if !current(request.generation) || !unchanged {
            Stats::bump(&stats.ignore_marks_skipped);
            continue;
        }
        // Either the second check sees a reload's new generation and takes the
        // mark back, or the reload's flush of all ignore marks comes after it.
        if let Some(style) = support.add(group, fd, request.mask, stats)
            && !current(request.generation)
        {
            let _ = group.unignore(fd, request.mask, style);
        }
    }
}

/// Which kernel ignore-mark flavour to use, learnt from the first refusal.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum IgnoreSupport {
    /// `FAN_MARK_IGNORE` (Linux 6.0).
    #[default]
    Ignore,
    /// `FAN_MARK_IGNORED_MASK` (older kernels).
    IgnoredMask,
    /// Neither: the user-space cache does the work.
    None,
}

impl IgnoreSupport {
    fn add(
        &mut self,
        group: &Group,
        fd: BorrowedFd<'_>,
        mask: MaskFlags,
        stats: &Stats,
    ) -> Option<IgnoreStyle> {
        loop {
            let style = match self {
                IgnoreSupport::Ignore => IgnoreStyle::Ignore,
                IgnoreSupport::IgnoredMask => IgnoreStyle::IgnoredMask,
                IgnoreSupport::None => return None,
            };
            match group.ignore(fd, mask, style) {
                Ok(()) => {
                    Stats::bump(&stats.ignore_marks_added);
                    return Some(style);
                }
                Err(Errno::EINVAL) => {
                    *self = match style {
                        IgnoreStyle::Ignore => IgnoreSupport::IgnoredMask,
                        IgnoreStyle::IgnoredMask => IgnoreSupport::None,
                    };
                    tracing::info!(
                        ?style,
                        "kernel refuses this ignore-mark style; falling back"
                    );
                }
                Err(_) => {
                    // ENOSPC at the mark limit, mostly: the user-space cache still works.
                    Stats::bump(&stats.ignore_mark_errors);
                    return None;
                }
            }
        }
    }
}
