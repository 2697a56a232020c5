//! The verdict cache: one scan per file version, shared by concurrent events.
//!
//! Owns the map from a file version ([`FileKey`]: device, inode, size, mtime, ctime
//! and the content generation) to its [`Cached`] verdict, and the in-flight table
//! that makes a second event for a file already being scanned wait for that scan
//! instead of starting another (an exec raises `FAN_OPEN_EXEC_PERM` then
//! `FAN_OPEN_PERM`). It does not answer events: the worker does, with what this
//! returns.
//!
//! A second map, by content (SHA-256 and generation), holds the same verdicts:
//! a new version of a file with content already judged (a `chmod +x` after a
//! download, which changes ctime; a copy; a reinstall) then costs only the hash
//! ([`VerdictCache::by_content`]). Verdicts that skipped stages because of the
//! file's path (trusted) or that an allow entry decided are not shared by
//! content.
//!
//! One verdict per file: the maps are keyed by device and inode, and an entry
//! holds the version it judged. A new version's verdict replaces the old one at
//! once (a file created empty, then written, is judged twice: keeping both
//! doubled the cache's memory in every build or unpack), and a lookup for any
//! other version misses.
//!
//! Eviction is two-generational: when the young map is full it becomes the old map
//! and the previous old map is dropped. Lookups check both and promote; this bounds
//! memory at twice the capacity with O(1) work and keeps recently used entries.
//!
//! Behind this in-memory cache sits the [`persistent`] one (on disk, keyed by
//! [`store_key`], values in [`record`]), which the worker asks after a miss
//! here, so verdicts survive a restart.

pub mod persistent;
pub mod record;
pub mod store_key;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nix::sys::stat::FileStat;
use vigil_policy::Decision;

use crate::daemon::respond::lock;

/// One version of one file under one content generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    generation: u64,
}

/// A file, whatever its version: what the maps are keyed by.
type Inode = (u64, u64);

impl FileKey {
    fn inode(&self) -> Inode {
        (self.dev, self.ino)
    }

    /// The key of the file `st` describes, under content `generation`. Any write
    /// changes mtime/ctime (and usually size), so a modified file misses.
    pub fn new(st: &FileStat, generation: u64) -> FileKey {
        FileKey {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
            generation,
        }
    }
}

/// What a scan concluded about a file version.
#[derive(Debug)]
pub struct Cached {
    /// The decision (verdict, action, reasons).
    pub decision: Decision,
    /// SHA-256 of the content, when it was read (not for files above the size cap).
    pub sha256: Option<[u8; 32]>,
    /// The scan skipped the expensive stages because the content matched the trust
    /// store under the path it was scanned by; an event for the same inode under a
    /// path that is not trusted must not reuse this decision.
    pub trusted: bool,
    /// The allow entry that made the file clean without any detection stage.
    /// Boxed: rare, and 64 bytes more in every cached verdict otherwise.
    pub allowed: Option<Box<vigil_policy::HashEntry>>,
    /// A stage failed during the scan ([`crate::engine::scan::ScanResult::partial`]):
    /// kept in memory, never on disk.
    pub partial: bool,
}

/// The answer to [`VerdictCache::begin`].
pub enum Lookup {
    /// A verdict for this file version exists.
    Hit(Arc<Cached>),
    /// Nobody is scanning it: the caller must, then call [`Ticket::complete`].
    Miss(Ticket),
    /// Another worker is scanning it: wait on the slot.
    Wait(Arc<Slot>),
}

/// A scan in progress that other events can wait on.
#[derive(Debug, Default)]
pub struct Slot {
    result: Mutex<SlotState>,
    done: Condvar,
    /// A background scan's (scan on write, behind ordinary processes): no
    /// event waits for it ([`VerdictCache::begin`]).
    background: bool,
}

#[derive(Debug, Default)]
enum SlotState {
    #[default]
    Running,
    Done(Arc<Cached>),
    Abandoned,
}

impl Slot {
    /// Waits up to `timeout` for the scan; `None` when it was abandoned or is still
    /// running (the caller then scans itself or lets the deadline answer).
    pub fn wait(&self, timeout: Duration) -> Option<Arc<Cached>> {
        let guard = lock(&self.result);
        let (guard, _) = self
            .done
            .wait_timeout_while(guard, timeout, |s| matches!(s, SlotState::Running))
            .unwrap_or_else(|p| p.into_inner());
        match &*guard {
            SlotState::Done(c) => Some(Arc::clone(c)),
            SlotState::Running | SlotState::Abandoned => None,
        }
    }

    fn finish(&self, state: SlotState) {
        *lock(&self.result) = state;
        self.done.notify_all();
    }
}

/// The obligation to publish a scan's result. Dropping it unpublished (a scan error)
/// releases waiters with nothing, so they scan themselves.
pub struct Ticket {
    key: FileKey,
    slot: Arc<Slot>,
    cache: Arc<VerdictCache>,
    published: bool,
    took_over: bool,
}

impl Ticket {
    /// Whether this scan took the file over from a background scan still
    /// running ([`VerdictCache::begin`]).
    pub fn took_over(&self) -> bool {
        self.took_over
    }

    /// Publishes the result to the cache and to every waiter.
    pub fn complete(mut self, cached: Arc<Cached>) {
        self.published = true;
        self.cache
            .publish(self.key, &self.slot, Some(Arc::clone(&cached)));
        self.slot.finish(SlotState::Done(cached));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.published {
            self.cache.publish(self.key, &self.slot, None);
            self.slot.finish(SlotState::Abandoned);
        }
    }
}

/// A file's one cached verdict and the version it is for.
struct Entry {
    key: FileKey,
    cached: Arc<Cached>,
}

impl Entry {
    fn hit(&self, key: &FileKey) -> Option<&Arc<Cached>> {
        (self.key == *key).then_some(&self.cached)
    }
}

struct Maps {
    young: HashMap<Inode, Entry>,
    old: HashMap<Inode, Entry>,
    in_flight: HashMap<FileKey, Arc<Slot>>,
    content_young: HashMap<ContentKey, Arc<Cached>>,
    content_old: HashMap<ContentKey, Arc<Cached>>,
}

/// Content and the generation that judged it.
type ContentKey = ([u8; 32], u64);

/// Thread-safe verdict cache with in-flight coalescing. See the module doc.
pub struct VerdictCache {
    maps: Mutex<Maps>,
    capacity: usize,
}

impl VerdictCache {
    /// A cache holding at most about `2 * capacity` verdicts; 0 disables caching
    /// (in-flight coalescing still works).
    pub fn new(capacity: usize) -> Arc<VerdictCache> {
        Arc::new(VerdictCache {
            maps: Mutex::new(Maps {
                young: HashMap::new(),
                old: HashMap::new(),
                in_flight: HashMap::new(),
                content_young: HashMap::new(),
                content_old: HashMap::new(),
            }),
            capacity,
        })
    }

    /// Looks `key` up; on a miss with nobody scanning, registers the caller as the
    /// scanner. A background scan of the file ([`VerdictCache::begin_background`])
    /// is not waited for: the caller takes the file over and scans it itself
    /// ([`Ticket::took_over`]). That scan runs behind every ordinary process, so
    /// on a busy machine a permission event waiting for it would meet its
    /// deadline, and an exec be answered by `on_timeout` unscanned by rules and
    /// model; the background verdict, when it comes, is the same one.
    pub fn begin(self: &Arc<Self>, key: FileKey) -> Lookup {
        self.begin_as(key, false)
    }

    /// As [`VerdictCache::begin`], for a background scan: it waits for nobody
    /// (any scan in flight answers [`Lookup::Wait`], meaning "leave it"), and
    /// the events that come while it runs take the file over.
    pub fn begin_background(self: &Arc<Self>, key: FileKey) -> Lookup {
        self.begin_as(key, true)
    }

    fn begin_as(self: &Arc<Self>, key: FileKey, background: bool) -> Lookup {
        let mut maps = lock(&self.maps);
        if let Some(hit) = maps.young.get(&key.inode()).and_then(|e| e.hit(&key)) {
            return Lookup::Hit(Arc::clone(hit));
        }
        // Out of the old map either way: a hit moves to the young one, another
        // version is stale.
        if let Some(entry) = maps.old.remove(&key.inode())
            && entry.key == key
        {
            let hit = Arc::clone(&entry.cached);
            Self::insert_young(&mut maps, self.capacity, key, entry.cached);
            return Lookup::Hit(hit);
        }
        let mut took_over = false;
        if let Some(slot) = maps.in_flight.get(&key) {
            if background || !slot.background {
                return Lookup::Wait(Arc::clone(slot));
            }
            took_over = true;
        }
        let slot = Arc::new(Slot {
            background,
            ..Slot::default()
        });
        // Replaces a background slot taken over: its publish then leaves the
        // new one in place (it checks that the slot is still its own).
        maps.in_flight.insert(key, Arc::clone(&slot));
        Lookup::Miss(Ticket {
            key,
            slot,
            cache: Arc::clone(self),
            published: false,
            took_over,
        })
    }

    /// The cached verdict for `key`, if any; registers nothing and promotes
    /// nothing (the reader's quick look before it queues an event).
    pub fn peek(&self, key: &FileKey) -> Option<Arc<Cached>> {
        let maps = lock(&self.maps);
        let inode = key.inode();
        maps.young
            .get(&inode)
            .and_then(|e| e.hit(key))
            .or_else(|| maps.old.get(&inode).and_then(|e| e.hit(key)))
            .cloned()
    }

    /// The verdict already reached on the same content under `generation`, if
    /// any (see the module doc).
    pub fn by_content(&self, sha256: &[u8; 32], generation: u64) -> Option<Arc<Cached>> {
        let maps = lock(&self.maps);
        let key = (*sha256, generation);
        maps.content_young
            .get(&key)
            .or_else(|| maps.content_old.get(&key))
            .cloned()
    }

    /// Forgets the verdict on exactly this file version, if it is the one
    /// cached (and its by-content twin, if that is the same verdict). For a
    /// file whose kernel ignore mark has just landed: the kernel answers its
    /// events until it changes, and a change makes another version, so the
    /// entry would only hold memory (about 500 bytes per file, which with
    /// every open scanned was the daemon's largest cost after the content).
    /// Returns whether anything was dropped.
    pub fn forget(&self, key: &FileKey) -> bool {
        let mut guard = lock(&self.maps);
        let maps = &mut *guard;
        let inode = key.inode();
        let mut dropped = None;
        for map in [&mut maps.young, &mut maps.old] {
            if map.get(&inode).is_some_and(|e| e.key == *key) {
                dropped = map.remove(&inode).map(|e| e.cached);
            }
        }
        let Some(cached) = dropped else {
            return false;
        };
        if let Some(sha256) = cached.sha256 {
            let content = (sha256, key.generation);
            for map in [&mut maps.content_young, &mut maps.content_old] {
                if map.get(&content).is_some_and(|c| Arc::ptr_eq(c, &cached)) {
                    map.remove(&content);
                }
            }
        }
        true
    }

    /// Drops every cached verdict (in-flight scans finish normally).
    pub fn clear(&self) {
        let mut maps = lock(&self.maps);
        maps.young.clear();
        maps.old.clear();
        maps.content_young.clear();
        maps.content_old.clear();
    }

    /// Number of cached verdicts.
    pub fn len(&self) -> usize {
        let maps = lock(&self.maps);
        maps.young.len() + maps.old.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn publish(&self, key: FileKey, slot: &Arc<Slot>, cached: Option<Arc<Cached>>) {
        let mut maps = lock(&self.maps);
        if maps
            .in_flight
            .get(&key)
            .is_some_and(|s| Arc::ptr_eq(s, slot))
        {
            maps.in_flight.remove(&key);
        }
        if let Some(cached) = cached {
            if let Some(sha256) = cached.sha256
                && !cached.trusted
                && cached.allowed.is_none()
                && self.capacity > 0
            {
                if maps.content_young.len() >= self.capacity {
                    maps.content_old = std::mem::take(&mut maps.content_young);
                }
                maps.content_young
                    .insert((sha256, key.generation), Arc::clone(&cached));
            }
            Self::insert_young(&mut maps, self.capacity, key, cached);
        }
    }

    /// Makes `cached` the file's one verdict: any other version's goes.
    fn insert_young(maps: &mut Maps, capacity: usize, key: FileKey, cached: Arc<Cached>) {
        if capacity == 0 {
            return;
        }
        let inode = key.inode();
        maps.old.remove(&inode);
        if maps.young.len() >= capacity && !maps.young.contains_key(&inode) {
            maps.old = std::mem::take(&mut maps.young);
        }
        maps.young.insert(inode, Entry { key, cached });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use vigil_policy::{DecisionConfig, decide};

    fn key(ino: u64, generation: u64) -> FileKey {
        FileKey {
            dev: 1,
            ino,
            size: 10,
            mtime: (1, 0),
            ctime: (1, 0),
            generation,
        }
    }

    fn clean() -> Arc<Cached> {
        Arc::new(Cached {
            decision: decide(Vec::new(), &DecisionConfig::default()),
            sha256: None,
            trusted: false,
            allowed: None,
            partial: false,
        })
    }

    /// A clean verdict on content `[sha; 32]`.
    fn clean_content(sha: u8, trusted: bool) -> Arc<Cached> {
        Arc::new(Cached {
            decision: decide(Vec::new(), &DecisionConfig::default()),
            sha256: Some([sha; 32]),
            trusted,
            allowed: None,
            partial: false,
        })
    }

    /// Scans `key` (it must miss) and publishes `cached` for it.
    fn judge(cache: &Arc<VerdictCache>, key: FileKey, cached: Arc<Cached>) {
        let Lookup::Miss(ticket) = cache.begin(key) else {
            panic!("expected a miss for {key:?}");
        };
        ticket.complete(cached);
    }

    #[test]
    fn verdicts_are_shared_by_content_within_a_generation_only() {
        let cache = VerdictCache::new(8);
        for (ino, sha, trusted) in [(1, 1, false), (2, 2, true)] {
            judge(&cache, key(ino, 7), clean_content(sha, trusted));
        }
        assert!(cache.by_content(&[1; 32], 7).is_some());
        assert!(
            cache.by_content(&[1; 32], 8).is_none(),
            "another generation"
        );
        assert!(
            cache.by_content(&[2; 32], 7).is_none(),
            "trusted by its path"
        );
        assert!(cache.by_content(&[3; 32], 7).is_none());
        cache.clear();
        assert!(cache.by_content(&[1; 32], 7).is_none());
    }

    #[test]
    fn forgetting_drops_only_the_version_asked_for() {
        let cache = VerdictCache::new(8);
        let version = |size: i64| FileKey { size, ..key(1, 7) };
        judge(&cache, version(10), clean_content(9, false));
        assert!(!cache.forget(&version(11)), "another version stays");
        assert_eq!(cache.len(), 1);
        assert!(cache.by_content(&[9; 32], 7).is_some());
        assert!(cache.forget(&version(10)));
        assert!(cache.is_empty());
        assert!(
            cache.by_content(&[9; 32], 7).is_none(),
            "its content twin too"
        );
        assert!(matches!(cache.begin(version(10)), Lookup::Miss(_)));
        assert!(!cache.forget(&version(10)), "nothing left to forget");
    }

    #[test]
    fn miss_then_hit() {
        let cache = VerdictCache::new(8);
        let Lookup::Miss(ticket) = cache.begin(key(1, 1)) else {
            panic!("expected miss")
        };
        ticket.complete(clean());
        assert!(matches!(cache.begin(key(1, 1)), Lookup::Hit(_)));
        // Another generation is another key.
        assert!(matches!(cache.begin(key(1, 2)), Lookup::Miss(_)));
    }

    #[test]
    fn concurrent_lookup_waits_for_the_scan() {
        let cache = VerdictCache::new(8);
        let Lookup::Miss(ticket) = cache.begin(key(1, 1)) else {
            panic!("expected miss")
        };
        let Lookup::Wait(slot) = cache.begin(key(1, 1)) else {
            panic!("expected wait")
        };
        let waiter = thread::spawn(move || slot.wait(Duration::from_secs(10)));
        ticket.complete(clean());
        assert!(waiter.join().expect("waiter").is_some());
    }

    #[test]
    fn abandoned_scan_releases_waiters_and_allows_a_rescan() {
        let cache = VerdictCache::new(8);
        let Lookup::Miss(ticket) = cache.begin(key(1, 1)) else {
            panic!("expected miss")
        };
        let Lookup::Wait(slot) = cache.begin(key(1, 1)) else {
            panic!("expected wait")
        };
        drop(ticket);
        assert!(slot.wait(Duration::from_secs(10)).is_none());
        assert!(matches!(cache.begin(key(1, 1)), Lookup::Miss(_)));
    }

    #[test]
    fn an_event_takes_a_file_over_from_a_background_scan_and_nobody_waits_for_that() {
        let cache = VerdictCache::new(8);
        let Lookup::Miss(background) = cache.begin_background(key(1, 1)) else {
            panic!("expected a miss")
        };
        assert!(!background.took_over());
        // A second background scan leaves the file to the first.
        assert!(matches!(cache.begin_background(key(1, 1)), Lookup::Wait(_)));
        // An event does not wait: it scans itself.
        let Lookup::Miss(event) = cache.begin(key(1, 1)) else {
            panic!("expected a takeover")
        };
        assert!(event.took_over());
        // Later events wait for the event's scan, not the background one.
        let Lookup::Wait(slot) = cache.begin(key(1, 1)) else {
            panic!("expected wait")
        };
        // The background scan finishing first neither releases them nor
        // clears the in-flight entry.
        background.complete(clean());
        assert!(slot.wait(Duration::from_millis(10)).is_none());
        assert!(matches!(cache.begin(key(1, 1)), Lookup::Hit(_)));
        event.complete(clean());
        assert!(slot.wait(Duration::from_secs(10)).is_some());
        // A background scan waits for an event's scan as for any other.
        let Lookup::Miss(_event) = cache.begin(key(2, 1)) else {
            panic!("expected a miss")
        };
        assert!(matches!(cache.begin_background(key(2, 1)), Lookup::Wait(_)));
    }

    #[test]
    fn wait_times_out_while_running() {
        let cache = VerdictCache::new(8);
        let Lookup::Miss(_ticket) = cache.begin(key(1, 1)) else {
            panic!("expected miss")
        };
        let Lookup::Wait(slot) = cache.begin(key(1, 1)) else {
            panic!("expected wait")
        };
        assert!(slot.wait(Duration::from_millis(10)).is_none());
    }

    #[test]
    fn capacity_bounds_memory_and_keeps_recent_entries() {
        let cache = VerdictCache::new(4);
        for ino in 0..20 {
            judge(&cache, key(ino, 1), clean());
        }
        assert!(cache.len() <= 8, "len {}", cache.len());
        assert!(matches!(cache.begin(key(19, 1)), Lookup::Hit(_)));
        assert!(matches!(cache.begin(key(0, 1)), Lookup::Miss(_)));
    }

    #[test]
    fn a_new_version_replaces_the_old_one() {
        let cache = VerdictCache::new(8);
        let empty = key(1, 1);
        let written = FileKey {
            size: 4096,
            mtime: (2, 0),
            ctime: (2, 0),
            ..empty
        };
        for k in [empty, written] {
            judge(&cache, k, clean());
        }
        assert_eq!(cache.len(), 1, "one verdict per file");
        assert!(cache.peek(&empty).is_none(), "the old version is gone");
        assert!(matches!(cache.begin(written), Lookup::Hit(_)));
        assert!(matches!(cache.begin(empty), Lookup::Miss(_)));
    }

    #[test]
    fn a_new_version_leaves_no_stale_entry_in_the_old_map() {
        let cache = VerdictCache::new(2);
        for ino in 0..3 {
            judge(&cache, key(ino, 1), clean());
        }
        // Inode 0 is in the old map now; its next version goes to the young
        // one and the old version leaves.
        let next = FileKey {
            size: 11,
            ..key(0, 1)
        };
        judge(&cache, next, clean());
        assert_eq!(cache.len(), 3);
        assert!(cache.peek(&key(0, 1)).is_none());
        assert!(cache.peek(&next).is_some());
    }

    #[test]
    fn peek_sees_published_verdicts_only() {
        let cache = VerdictCache::new(8);
        let Lookup::Miss(ticket) = cache.begin(key(1, 1)) else {
            panic!("expected miss")
        };
        assert!(
            cache.peek(&key(1, 1)).is_none(),
            "a scan in flight is not a verdict"
        );
        ticket.complete(clean());
        assert!(cache.peek(&key(1, 1)).is_some());
        assert!(cache.peek(&key(1, 2)).is_none());
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache = VerdictCache::new(0);
        judge(&cache, key(1, 1), clean());
        assert!(cache.is_empty());
        assert!(matches!(cache.begin(key(1, 1)), Lookup::Miss(_)));
    }
}
