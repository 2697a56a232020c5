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
//! One exception: the open mark of a clean exec's file is placed by its
//! worker before the exec's answer ([`IgnoreMarks::mark_exec_open`]). The
//! kernel checks an exec twice, the exec and then, once that is allowed, an
//! open of the same file; with the mark in place the second check raises no
//! event. That saves a round trip through the reader and a worker in every
//! first exec, a round trip that under a flood of another user's opens could
//! wait for a busy worker past its deadline (`torture::unprivileged_flood`).
//! One mark per first exec is worth the mark lock there; the exec mark itself
//! still comes after the answer, from this thread (it needs the answer).
//!
//! Batches: a wake-up of this thread per mark was a third of the daemon's
//! context switches under `burst_open` (docs/performance.md, issue 18 item 4).
//! After each batch the thread therefore pauses [`BATCH_PAUSE`] before it
//! takes the next, so under a stream of opens it wakes about once per pause and
//! places every mark queued meanwhile; a lone request still waits at most one
//! pause. A file opened again within the pause is answered as before (cache,
//! reader); nothing waits on a mark.
//!
//! A mark never outlives the content it vouches for: the request carries the
//! generation and the file's change time, size and mtime as scanned; the mark
//! is added only if the generation is still current and the file unchanged,
//! and taken back if a reload swapped the generation meanwhile.
//!
//! Bursts of data opens: a data file answered unscanned (not executable
//! content, under `scan_on_open = "executable"`) is marked at its first open
//! when events come one at a time, which is what ordinary use and a second
//! pass over a tree look like; while a burst is on (a read of the group
//! returned several permission events within the last [`BURST_HOLD`]: several
//! openers waiting at once), it is marked at its second open instead. In a burst most data
//! files are opened once (`grep -r`, a backup, an unpacked tree), and their
//! marks were pure cost: a `fanotify_mark` under the group's mark lock each,
//! on this thread, which shares the CPUs with the reader (measured: a fifth of
//! the daemon's CPU in the shared benchmark's burst), and a mark the kernel
//! keeps. A small table of files seen once ([`SEEN_SLOTS`] slots) tells the
//! second open; a file pushed out of it by others is deferred once more, which
//! costs one more event.
//! Deferring every data file, burst or not, was measured and reverted: the
//! second pass over a tree then paid an event per file (docs/performance.md).
//!
//! Once a mark lands, the file's entry in the verdict cache is dropped when
//! the mark covers every event the file can raise (opens, and execs or a
//! mode without exec bits): until the file changes the kernel answers for it,
//! and a change is a new version the entry could not answer anyway. With
//! every open scanned, those entries were most of the daemon's growth. The
//! entry goes [`FORGET_AFTER`] after the mark, not at once: an event the
//! kernel raised just before (an exec's open that follows its exec check) is
//! still on its way and would otherwise scan the file again.

use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use nix::errno::Errno;
use nix::sys::fanotify::{FanotifyEvent, MaskFlags};
use nix::sys::stat::{FileStat, fstat};

use crate::daemon::cache::{FileKey, VerdictCache};
use crate::daemon::respond::Pending;
use crate::daemon::stats::Stats;
use crate::engine::generation::Generation;
use crate::fanotify::{Group, IgnoreStyle};

/// Requests waiting for the mark thread. Past this, marks are skipped rather
/// than holding more event fds open.
const QUEUE: usize = 4096;

/// How long the thread rests after a batch of marks before it takes the next
/// (see the module doc). At 70 k opens/s that is 70 requests per batch, far
/// below [`QUEUE`].
const BATCH_PAUSE: Duration = Duration::from_millis(1);

/// How long a marked file's verdict stays cached after its mark landed (see
/// the module doc). Long past the microseconds between an exec's two checks,
/// and short enough that few entries wait: at 10 k scans/s, 5 k of them.
const FORGET_AFTER: Duration = Duration::from_millis(500);

/// Past this many verdicts waiting to be forgotten, the oldest goes at once.
const FORGET_QUEUE: usize = 16_384;

/// Slots of the table of data files opened once during a burst (8 bytes
/// each): a third of a second of a burst at 50 k opens/s.
const SEEN_SLOTS: usize = 1 << 14;

/// How long a burst lasts after the last read that returned several
/// permission events: long enough to bridge the gaps of a burst between two
/// such reads, short enough that a lone opener right after one is rarely
/// deferred.
const BURST_HOLD: Duration = Duration::from_millis(20);

/// One ignore mark to add: the (already answered) event whose fd names the file,
/// and what the verdict was based on.
struct Request {
    event: Held,
    generation: u64,
    mask: MaskFlags,
    scanned: Snapshot,
    /// The cache entry to drop once the mark lands (see the module doc).
    forget: Option<FileKey>,
}

/// The answered event a request keeps open until its mark is placed: a
/// worker's [`Pending`], or an event the reader answered itself.
enum Held {
    Pending(Arc<Pending>),
    Event(FanotifyEvent),
}

impl Held {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Held::Pending(pending) => pending.event().fd(),
            Held::Event(event) => event.fd(),
        }
    }
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
    bursts: Arc<Bursts>,
    marker: Arc<Marker>,
}

/// Whether data opens come in a burst, and which data files were seen once
/// during one (see the module doc).
struct Bursts {
    started: Instant,
    /// When the current burst ends, in nanoseconds since `started`.
    until: AtomicU64,
    /// Data files seen once, by a fingerprint of device, inode and change
    /// time (a changed file is a new one): direct-mapped and lock-free, a
    /// colliding file takes the slot.
    seen: Box<[AtomicU64]>,
}

impl Bursts {
    fn new() -> Bursts {
        Bursts {
            started: Instant::now(),
            until: AtomicU64::new(0),
            seen: (0..SEEN_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn note_read(&self, events: usize) {
        if events > 1 {
            let until = self.now().saturating_add(BURST_HOLD.as_nanos() as u64);
            self.until.fetch_max(until, Ordering::Relaxed);
        }
    }

    fn on(&self) -> bool {
        self.now() < self.until.load(Ordering::Relaxed)
    }

    /// Whether the file of `st` was seen since it last changed (and its slot
    /// not taken since); records it either way.
    fn seen_before(&self, st: &FileStat) -> bool {
        let mut h = st.st_dev ^ st.st_ino.rotate_left(32);
        for part in [st.st_ctime as u64, st.st_ctime_nsec as u64] {
            // splitmix64's finalizer: every input bit moves the slot.
            h = (h ^ part).wrapping_add(0x9e37_79b9_7f4a_7c15);
            h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            h ^= h >> 31;
        }
        let key = h | 1; // never an empty slot's 0
        let slot = &self.seen[(h >> 32) as usize % SEEN_SLOTS];
        slot.swap(key, Ordering::Relaxed) == key
    }

    /// Whether a data file's mark should wait for its next open.
    fn defer(&self, st: &FileStat) -> bool {
        self.on() && !self.seen_before(st)
    }
}

/// The thread's side: what it needs besides the queue.
struct Placer {
    marker: Arc<Marker>,
    cache: Arc<VerdictCache>,
    /// Verdicts to drop from the cache, with when their mark landed.
    marked: VecDeque<(Instant, FileKey)>,
}

/// Adds a mark under the checks every mark needs; shared by the mark thread
/// and the workers' marks before an answer.
struct Marker {
    group: Group,
    generation: Arc<ArcSwap<Generation>>,
    support: IgnoreSupport,
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
        cache: Arc<VerdictCache>,
        stats: Arc<Stats>,
    ) -> std::io::Result<IgnoreMarks> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let marker = Arc::new(Marker {
            group,
            generation,
            support: IgnoreSupport::default(),
            stats: Arc::clone(&stats),
        });
        let mut placer = Placer {
            marker: Arc::clone(&marker),
            cache,
            marked: VecDeque::new(),
        };
        thread::Builder::new()
            .name("vigil-marks".into())
            .spawn(move || placer.run(&rx))?;
        Ok(IgnoreMarks {
            tx,
            stats,
            bursts: Arc::new(Bursts::new()),
            marker,
        })
    }

    /// Places the open ignore mark of an exec's file, judged clean as `st`
    /// under generation `generation`, on the calling worker before the exec is
    /// answered, so the open check that follows an allowed exec raises no
    /// event (see the module doc). Only for a file [`super::after_answer`]
    /// would give that mark anyway; the same checks as the mark thread's
    /// (generation current, file unchanged, taken back after a reload). A
    /// refusal leaves the event to come and the cache to answer it.
    pub fn mark_exec_open(&self, fd: BorrowedFd<'_>, generation: u64, st: &FileStat) {
        if self
            .marker
            .place(fd, generation, MaskFlags::FAN_OPEN_PERM, Snapshot::of(st))
        {
            Stats::bump(&self.stats.ignore_marks_before_answer);
        }
    }

    /// Queues an ignore mark for the file of `pending`, scanned as `st` under
    /// generation `generation`. Never blocks.
    pub fn request(&self, pending: &Arc<Pending>, generation: u64, st: &FileStat, mask: MaskFlags) {
        // The verdict can go once the mark covers all the file can raise.
        let covers_all = mask.contains(MaskFlags::FAN_OPEN_EXEC_PERM) || st.st_mode & 0o111 == 0;
        let forget = covers_all.then(|| FileKey::new(st, generation));
        self.send(
            Held::Pending(Arc::clone(pending)),
            generation,
            st,
            mask,
            forget,
        );
    }

    /// Tells how many permission events one read of the group returned:
    /// several mean a burst is on (see the module doc).
    pub fn note_read(&self, events: usize) {
        self.bursts.note_read(events);
    }

    /// An ignore mark for opens of a data file the reader answered unscanned
    /// (the event is kept, and its fd open, until the mark is placed); during
    /// a burst, from the file's second open on (see the module doc).
    pub fn request_data_answered(&self, event: FanotifyEvent, generation: u64, st: &FileStat) {
        self.request_data_held(Held::Event(event), generation, st);
    }

    /// [`IgnoreMarks::request_data_answered`] for a data open a worker
    /// answered.
    pub fn request_data(&self, pending: &Arc<Pending>, generation: u64, st: &FileStat) {
        self.request_data_held(Held::Pending(Arc::clone(pending)), generation, st);
    }

    fn request_data_held(&self, held: Held, generation: u64, st: &FileStat) {
        if self.bursts.defer(st) {
            Stats::bump(&self.stats.ignore_marks_deferred);
        } else {
            // Unscanned: it has no verdict to forget.
            self.send(held, generation, st, MaskFlags::FAN_OPEN_PERM, None);
        }
    }

    fn send(
        &self,
        event: Held,
        generation: u64,
        st: &FileStat,
        mask: MaskFlags,
        forget: Option<FileKey>,
    ) {
        let request = Request {
            event,
            generation,
            mask,
            scanned: Snapshot::of(st),
            forget,
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(request)
        {
            Stats::bump(&self.stats.ignore_marks_skipped);
        }
    }
}

impl Placer {
    fn run(&mut self, rx: &Receiver<Request>) {
        loop {
            let first = match self.marked.front() {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some((landed, _)) => rx.recv_timeout(
                    (*landed + FORGET_AFTER).saturating_duration_since(Instant::now()),
                ),
            };
            match first {
                Ok(first) => {
                    self.place(&first);
                    while let Ok(next) = rx.try_recv() {
                        self.place(&next);
                    }
                    self.forget_due();
                    thread::sleep(BATCH_PAUSE);
                }
                Err(RecvTimeoutError::Timeout) => self.forget_due(),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Drops the verdicts whose marks landed [`FORGET_AFTER`] ago, and the
    /// oldest beyond [`FORGET_QUEUE`].
    fn forget_due(&mut self) {
        let now = Instant::now();
        while let Some((landed, key)) = self.marked.front() {
            if now.duration_since(*landed) < FORGET_AFTER && self.marked.len() <= FORGET_QUEUE {
                break;
            }
            if self.cache.forget(key) {
                Stats::bump(&self.marker.stats.cache_forgotten_marked);
            }
            self.marked.pop_front();
        }
    }

    /// Adds the mark of one request, unless its file changed or a reload came.
    fn place(&mut self, request: &Request) {
        let Some(fd) = request.event.fd() else {
            return;
        };
        if !self
            .marker
            .place(fd, request.generation, request.mask, request.scanned)
        {
            return;
        }
        Stats::bump(&self.marker.stats.ignore_marks_added);
        if let Some(key) = request.forget {
            self.marked.push_back((Instant::now(), key));
        }
    }
}

impl Marker {
    /// Adds `mask` to the ignore mark of the file of `fd` if generation `id`
    /// is still current and the file still as `scanned`; whether it landed
    /// (and stays).
    fn place(&self, fd: BorrowedFd<'_>, id: u64, mask: MaskFlags, scanned: Snapshot) -> bool {
        let current = || self.generation.load().id == id;
        let unchanged = fstat(fd).is_ok_and(|st| Snapshot::of(&st) == scanned);
        if !current() || !unchanged {
            Stats::bump(&self.stats.ignore_marks_skipped);
            return false;
        }
        let Some(style) = self.support.add(&self.group, fd, mask, &self.stats) else {
            return false;
        };
        // Either the second check sees a reload's new generation and takes the
        // mark back, or the reload's flush of all ignore marks comes after it.
        if !current() {
            let _ = self.group.unignore(fd, mask, style);
            return false;
        }
        true
    }
}

/// Which kernel ignore-mark flavour to use, learnt from the first refusal:
/// `FAN_MARK_IGNORE` (Linux 6.0), else `FAN_MARK_IGNORED_MASK` (older
/// kernels), else none (the user-space cache does the work). Shared by the
/// threads that place marks; two learning at once learn the same.
#[derive(Debug, Default)]
struct IgnoreSupport(AtomicU8);

impl IgnoreSupport {
    const IGNORE: u8 = 0;
    const IGNORED_MASK: u8 = 1;
    const NONE: u8 = 2;

    fn add(
        &self,
        group: &Group,
        fd: BorrowedFd<'_>,
        mask: MaskFlags,
        stats: &Stats,
    ) -> Option<IgnoreStyle> {
        loop {
            let style = match self.0.load(Ordering::Relaxed) {
                Self::IGNORE => IgnoreStyle::Ignore,
                Self::IGNORED_MASK => IgnoreStyle::IgnoredMask,
                _ => return None,
            };
            match group.ignore(fd, mask, style) {
                Ok(()) => return Some(style),
                Err(Errno::EINVAL) => {
                    let next = match style {
                        IgnoreStyle::Ignore => Self::IGNORED_MASK,
                        IgnoreStyle::IgnoredMask => Self::NONE,
                    };
                    self.0.fetch_max(next, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_marks_wait_for_the_second_open_only_during_a_burst() {
        let bursts = Bursts::new();
        let mut st = nix::sys::stat::stat("/").expect("stat /");
        // Events one at a time: never deferred, and nothing recorded.
        bursts.note_read(1);
        assert!(!bursts.on());
        assert!(!bursts.defer(&st));
        // A read of several events starts a burst: the first open defers,
        // the second marks.
        bursts.note_read(3);
        assert!(bursts.on());
        assert!(bursts.defer(&st));
        assert!(!bursts.defer(&st));
        // A changed file is a new one.
        st.st_ctime_nsec = (st.st_ctime_nsec + 1) % 1_000_000_000;
        assert!(bursts.defer(&st));
        // The burst ends BURST_HOLD after its last multi-event read; a lone
        // read does not extend it.
        bursts.note_read(1);
        thread::sleep(BURST_HOLD + Duration::from_millis(5));
        assert!(!bursts.on());
        st.st_ino ^= 1;
        assert!(!bursts.defer(&st));
    }
}
