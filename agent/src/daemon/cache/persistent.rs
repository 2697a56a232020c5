//! The persistent verdict cache: verdicts kept on disk across restarts and reboots.
//!
//! Owns the store file (`<cache.dir>/verdicts.redb`), its opening and recovery,
//! the lookups workers make after a miss in memory, and the one writer thread
//! that commits new verdicts behind the answers. Must not own: the in-memory
//! cache and its coalescing ([`super::VerdictCache`], which is asked first), the
//! key ([`super::store_key`]), the value layout ([`super::record`]), or the
//! decision: a hit gives back the stored findings and `vigil_policy::decide`
//! decides again under the current generation, whose content id must equal the
//! one stored.
//!
//! Why redb: a single file, pure Rust with no dependency, ACID transactions
//! with copy-on-write B-trees and checksummed commits (a crash leaves the last
//! committed state; an interrupted commit is rolled back at open), readers
//! that never wait for the writer, and an integrity check at open that turns a
//! damaged file into an error rather than a panic. LMDB (heed) is as fast to
//! read but is C, maps the file (a truncated file is a SIGBUS in the daemon
//! answering permission events) and needs its map size chosen up front; sled
//! is unmaintained since 2021 and its on-disk format is unstable.
//!
//! The hot path: a lookup is one read transaction and one B-tree get (a few
//! µs, see docs/performance.md), made only after the in-memory cache missed
//! and only for files on filesystems with a stable identity. Writes never
//! happen there: [`Persistent::remember`] is called after the answer and only
//! offers the record to a bounded queue ([`QUEUE`]); when the queue is full the
//! record is dropped and counted (`persistent_dropped`), which only means that
//! file is scanned again after the next restart. The writer batches up to
//! [`BATCH_MAX`] records or [`BATCH_WINDOW`] into one durable commit, and
//! evicts the least recently written entries beyond `cache.max_entries` in
//! the same transaction.
//!
//! A store that cannot be opened as a redb file (truncated, garbage, a damaged
//! page) is moved aside to `verdicts.redb.corrupt`, with a warning naming both
//! files, and an empty store is created: the daemon always starts. A store
//! another process holds, or a directory that cannot be written, leaves the
//! daemon without persistence (warned, and shown by `vigil status`).

use std::fs;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::PermissionsExt as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use redb::{
    Database, DatabaseError, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    StorageError, TableDefinition,
};
use vigil_policy::{CacheConfig, decide};

use super::Cached;
use super::record::Record;
use super::store_key::{FileVersion, StoreKey, Unkeyed};
use crate::daemon::priority::{self, Lane};
use crate::daemon::stats::Stats;
use crate::engine::generation::Generation;
use crate::protocol::PersistentCacheInfo;

/// The store's file name inside `cache.dir`.
pub const STORE_FILE: &str = "verdicts.redb";
/// Where a store that failed to open is moved (one kept; the next replaces it).
pub const CORRUPT_SUFFIX: &str = ".corrupt";
/// Records waiting for the writer; more are dropped.
pub const QUEUE: usize = 4096;
/// Most records per commit.
pub const BATCH_MAX: usize = 1024;
/// Longest a record waits for its commit: the writer gathers a batch this long,
/// so a burst of first execs costs one fsync, not one each.
pub const BATCH_WINDOW: Duration = Duration::from_millis(200);
/// redb's page cache: the OS page cache holds the file anyway, and the daemon's
/// memory stays within its budget (redb's default is 1 GiB).
const PAGE_CACHE: usize = 4 * 1024 * 1024;

/// Key: [`StoreKey`] bytes; value: an encoded [`Record`].
const VERDICTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("verdicts");
/// Write order: sequence number → key, oldest first (for eviction).
const ORDER: TableDefinition<u64, &[u8]> = TableDefinition::new("order");

/// Why the store is not in use.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Off {
    /// `cache.persistent = false`.
    Configured,
    /// It could not be opened or created (the message says why).
    Unavailable(String),
}

/// The workers' handle: lookups, and records offered to the writer.
pub struct Persistent {
    store: Result<Arc<Database>, Off>,
    tx: Option<Sender<Msg>>,
    stats: Arc<Stats>,
    gauges: Arc<Gauges>,
    path: PathBuf,
    max_entries: u64,
}

/// A verdict found in the store.
pub struct Hit {
    /// The verdict, decided again under the current generation.
    pub cached: Arc<Cached>,
    /// The entry is in the older half of the eviction window: write it again
    /// (after the answer), so a file still in use is not evicted. Entries in the
    /// younger half are left alone, so a restart's first execs cost no writes.
    pub refresh: bool,
}

/// The writer thread's handle, for shutdown.
pub struct Writer {
    tx: Sender<Msg>,
    thread: thread::JoinHandle<()>,
}

enum Msg {
    Put(StoreKey, Vec<u8>),
    Stop,
}

/// Entries and file size after the last commit (for `vigil status`/`stats`),
/// and the next write sequence number (for [`Hit::refresh`]).
#[derive(Debug, Default)]
struct Gauges {
    entries: AtomicU64,
    size: AtomicU64,
    next_seq: AtomicU64,
}

impl Persistent {
    /// Opens (or creates, or recovers) the store `config` names and starts its
    /// writer. Never fails: without a usable store the daemon runs with the
    /// in-memory cache only, and says why.
    pub fn start(config: &CacheConfig, stats: Arc<Stats>) -> (Persistent, Option<Writer>) {
        let path = config.dir.join(STORE_FILE);
        let mut persistent = Persistent {
            store: Err(Off::Configured),
            tx: None,
            stats,
            gauges: Arc::new(Gauges::default()),
            path,
            max_entries: config.max_entries,
        };
        if !config.persistent {
            return (persistent, None);
        }
        let opened = prepare_dir(&config.dir).and_then(|()| open_or_recover(&persistent.path));
        let (db, next_seq) = match opened {
            Ok(opened) => opened,
            Err(reason) => {
                tracing::warn!(file = %persistent.path.display(), reason = %reason, "persistent verdict cache unavailable; verdicts are kept in memory only");
                persistent.store = Err(Off::Unavailable(reason));
                return (persistent, None);
            }
        };
        let db = Arc::new(db);
        persistent.gauges.update(&db, &persistent.path, next_seq);
        let (tx, rx) = bounded(QUEUE);
        let spawned = {
            let db = Arc::clone(&db);
            let stats = Arc::clone(&persistent.stats);
            let gauges = Arc::clone(&persistent.gauges);
            let path = persistent.path.clone();
            let max = config.max_entries;
            thread::Builder::new()
                .name("vigil-cache-writer".into())
                .spawn(move || {
                    priority::lower(Lane::Idle);
                    write_behind(&db, &rx, next_seq, max, &stats, &gauges, &path)
                })
        };
        match spawned {
            Ok(thread) => {
                tracing::info!(file = %persistent.path.display(), entries = persistent.gauges.entries.load(Ordering::Relaxed), "persistent verdict cache open");
                persistent.store = Ok(db);
                persistent.tx = Some(tx.clone());
                (persistent, Some(Writer { tx, thread }))
            }
            Err(e) => {
                let reason = format!("cannot start its writer thread: {e}");
                tracing::warn!(file = %persistent.path.display(), reason = %reason, "persistent verdict cache unavailable; verdicts are kept in memory only");
                persistent.store = Err(Off::Unavailable(reason));
                (persistent, None)
            }
        }
    }

    /// True when lookups and writes go to a store.
    pub fn is_open(&self) -> bool {
        self.store.is_ok()
    }

    /// The persistent key of the file behind `fd` as it is now; `None` without
    /// a store, or on a filesystem without a stable identity
    /// (`persistent_unkeyed`).
    pub fn key_of(&self, fd: BorrowedFd<'_>) -> Option<StoreKey> {
        if !self.is_open() {
            return None;
        }
        match FileVersion::of(fd) {
            Ok(version) => Some(version.key()),
            Err(Unkeyed::Volatile | Unkeyed::NoUuid | Unkeyed::Stat) => {
                Stats::bump(&self.stats.persistent_unkeyed);
                None
            }
        }
    }

    /// The stored verdict for `key`, decided again under `generation`, when the
    /// entry was written under the same content id. Counts a hit, a miss, a
    /// stale entry or an error.
    pub fn lookup(&self, key: &StoreKey, generation: &Generation) -> Option<Hit> {
        let db = self.store.as_ref().ok()?;
        // A damaged page redb did not catch at open may panic in a debug build;
        // a worker must not die of it.
        let found = catch_unwind(AssertUnwindSafe(|| read(db, key)));
        let bytes = match found {
            Ok(Ok(Some(bytes))) => bytes,
            Ok(Ok(None)) => {
                Stats::bump(&self.stats.persistent_misses);
                return None;
            }
            Ok(Err(e)) => {
                Stats::bump(&self.stats.persistent_errors);
                crate::warn_limited!(error = %e, "persistent verdict cache read failed");
                return None;
            }
            Err(_) => {
                Stats::bump(&self.stats.persistent_errors);
                crate::warn_limited!("persistent verdict cache read panicked (damaged store?)");
                return None;
            }
        };
        if Record::content_id_of(&bytes) != Some(&generation.content_id.0[..]) {
            Stats::bump(&self.stats.persistent_stale);
            return None;
        }
        let Some(record) = Record::decode(&bytes) else {
            Stats::bump(&self.stats.persistent_errors);
            crate::warn_limited!("persistent verdict cache entry malformed; scanning");
            return None;
        };
        Stats::bump(&self.stats.persistent_hits);
        let next_seq = self.gauges.next_seq.load(Ordering::Relaxed);
        Some(Hit {
            cached: Arc::new(Cached {
                decision: decide(record.reasons, &generation.config.decision),
                sha256: Some(record.sha256),
                trusted: false,
                allowed: None,
                partial: false,
            }),
            refresh: record.seq.saturating_add(self.max_entries / 2) < next_seq,
        })
    }

    /// Offers `cached`, judged under `generation`, to the writer for `key`.
    /// Never waits: a full queue drops it (`persistent_dropped`). Verdicts that
    /// depend on the path (trusted) or on an allow entry, verdicts a failed
    /// stage left incomplete (a rule timeout under load), and files that were
    /// not hashed (above `scan.max_file_size`), are not stored.
    pub fn remember(&self, key: StoreKey, generation: &Generation, cached: &Cached) {
        let Some(tx) = &self.tx else {
            return;
        };
        let Some(sha256) = cached.sha256 else {
            return;
        };
        if cached.trusted || cached.allowed.is_some() || cached.partial {
            return;
        }
        let record = Record {
            content_id: generation.content_id.0,
            seq: 0,
            sha256,
            reasons: cached.decision.reasons.clone(),
        };
        match tx.try_send(Msg::Put(key, record.encode())) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                Stats::bump(&self.stats.persistent_dropped);
            }
        }
    }

    /// The store's state for `vigil status` and `vigil stats`.
    pub fn info(&self, generation: &Generation) -> PersistentCacheInfo {
        let (state, reason) = match &self.store {
            Ok(_) => ("on", None),
            Err(Off::Configured) => ("off", None),
            Err(Off::Unavailable(reason)) => ("unavailable", Some(reason.clone())),
        };
        PersistentCacheInfo {
            state: state.to_owned(),
            reason,
            path: self.path.display().to_string(),
            entries: self.gauges.entries.load(Ordering::Relaxed),
            max_entries: self.max_entries,
            size_bytes: self.gauges.size.load(Ordering::Relaxed),
            content_id: generation.content_id.short(),
        }
    }
}

impl Writer {
    /// Commits what is queued and stops the writer, waiting at most `limit`.
    pub fn stop(self, limit: Duration) {
        let until = Instant::now() + limit;
        let _ = self.tx.send_timeout(Msg::Stop, limit);
        while !self.thread.is_finished() && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        if self.thread.is_finished() {
            let _ = self.thread.join();
        }
    }
}

impl Gauges {
    fn update(&self, db: &Database, path: &Path, next_seq: u64) {
        self.next_seq.store(next_seq, Ordering::Relaxed);
        if let Ok(n) = count(db) {
            self.entries.store(n, Ordering::Relaxed);
        }
        if let Ok(meta) = fs::metadata(path) {
            self.size.store(meta.len(), Ordering::Relaxed);
        }
    }
}

/// Creates `dir` (0700: verdicts say which files were looked at) if needed.
fn prepare_dir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Err(e) = fs::set_permissions(dir, fs::Permissions::from_mode(0o700)) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not make the cache directory 0700");
    }
    Ok(())
}

/// What opening a store file came to.
enum Opened {
    Ready(Database, u64),
    /// Not a sound redb file: move it aside and start again.
    Damaged(String),
    /// Unusable for another reason (in use, unreadable): leave it alone.
    Unusable(String),
}

/// Opens the store at `path`; a damaged one is moved aside, with a warning, and
/// replaced by an empty one. Returns the database and the next write sequence.
fn open_or_recover(path: &Path) -> Result<(Database, u64), String> {
    match open(path) {
        Opened::Ready(db, seq) => return Ok((db, seq)),
        Opened::Unusable(reason) => return Err(reason),
        Opened::Damaged(reason) => {
            let aside = aside_path(path);
            fs::rename(path, &aside)
                .map_err(|e| format!("damaged ({reason}) and cannot be moved aside: {e}"))?;
            tracing::warn!(
                file = %path.display(),
                moved_to = %aside.display(),
                reason = %reason,
                "persistent verdict cache is damaged: moved aside; starting an empty one (files are scanned again as they are used)"
            );
        }
    }
    match open(path) {
        Opened::Ready(db, seq) => Ok((db, seq)),
        Opened::Damaged(reason) | Opened::Unusable(reason) => Err(reason),
    }
}

/// `<path>.corrupt`.
pub fn aside_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(CORRUPT_SUFFIX);
    PathBuf::from(name)
}

fn open(path: &Path) -> Opened {
    let attempt = catch_unwind(|| {
        let mut builder = Database::builder();
        builder
            .set_cache_size(PAGE_CACHE)
            .set_check_integrity_on_open(true);
        builder.create(path)
    });
    let db = match attempt {
        Ok(Ok(db)) => db,
        Ok(Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch)) => {
            return Opened::Unusable("in use by another process".to_owned());
        }
        Ok(Err(DatabaseError::Storage(StorageError::Io(e)))) if not_the_files_fault(&e) => {
            return Opened::Unusable(e.to_string());
        }
        Ok(Err(e)) => return Opened::Damaged(e.to_string()),
        Err(_) => return Opened::Damaged("opening it panicked".to_owned()),
    };
    match catch_unwind(AssertUnwindSafe(|| prepare_tables(&db))) {
        Ok(Ok(seq)) => Opened::Ready(db, seq),
        Ok(Err(e)) => Opened::Damaged(e.to_string()),
        Err(_) => Opened::Damaged("reading it panicked".to_owned()),
    }
}

/// I/O errors that say nothing about the file's content (it may be sound): the
/// store is left in place. Any other error (`InvalidData` for a file that is
/// not a redb database, `UnexpectedEof` for a truncated one, `EIO`) moves it
/// aside: it is only a cache.
fn not_the_files_fault(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::PermissionDenied
            | K::ReadOnlyFilesystem
            | K::StorageFull
            | K::QuotaExceeded
            | K::WouldBlock
            | K::ResourceBusy
            | K::OutOfMemory
    )
}

/// Creates both tables if missing and returns the next sequence number.
fn prepare_tables(db: &Database) -> Result<u64, redb::Error> {
    let txn = db.begin_write()?;
    let next = {
        txn.open_table(VERDICTS)?;
        let order = txn.open_table(ORDER)?;
        let last = order.last()?.map(|(seq, _)| seq.value());
        last.map_or(0, |s| s.saturating_add(1))
    };
    txn.commit()?;
    Ok(next)
}

fn read(db: &Database, key: &StoreKey) -> Result<Option<Vec<u8>>, redb::Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(VERDICTS)?;
    Ok(table.get(key.as_bytes())?.map(|v| v.value().to_vec()))
}

fn count(db: &Database) -> Result<u64, redb::Error> {
    let txn = db.begin_read()?;
    Ok(txn.open_table(VERDICTS)?.len()?)
}

/// The writer thread: gathers a batch, commits it, until told to stop (or every
/// sender is gone); then commits what it holds and returns.
fn write_behind(
    db: &Database,
    rx: &Receiver<Msg>,
    mut next_seq: u64,
    max: u64,
    stats: &Stats,
    gauges: &Gauges,
    path: &Path,
) {
    loop {
        let mut batch = Vec::new();
        let mut stop = false;
        match rx.recv() {
            Ok(Msg::Put(key, value)) => batch.push((key, value)),
            Ok(Msg::Stop) | Err(_) => return,
        }
        let until = Instant::now() + BATCH_WINDOW;
        while batch.len() < BATCH_MAX {
            match rx.recv_deadline(until) {
                Ok(Msg::Put(key, value)) => batch.push((key, value)),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    stop = true;
                    break;
                }
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        if stop {
            // Whatever is still queued goes in this last commit.
            while let Ok(Msg::Put(key, value)) = rx.try_recv() {
                batch.push((key, value));
            }
        }
        let written = batch.len() as u64;
        match catch_unwind(AssertUnwindSafe(|| commit(db, batch, &mut next_seq, max))) {
            Ok(Ok(evicted)) => {
                stats
                    .persistent_writes
                    .fetch_add(written, Ordering::Relaxed);
                stats
                    .persistent_evictions
                    .fetch_add(evicted, Ordering::Relaxed);
                gauges.update(db, path, next_seq);
            }
            Ok(Err(e)) => {
                Stats::bump(&stats.persistent_errors);
                crate::warn_limited!(file = %path.display(), error = %e, "persistent verdict cache commit failed; those verdicts are kept in memory only");
            }
            Err(_) => {
                Stats::bump(&stats.persistent_errors);
                crate::warn_limited!(file = %path.display(), "persistent verdict cache commit panicked (damaged store?)");
            }
        }
        if stop {
            return;
        }
    }
}

/// One transaction: every record of `batch` (a key written again moves to the
/// young end of the order), then eviction of the oldest entries beyond `max`.
/// Returns how many were evicted.
fn commit(
    db: &Database,
    batch: Vec<(StoreKey, Vec<u8>)>,
    next_seq: &mut u64,
    max: u64,
) -> Result<u64, redb::Error> {
    let txn = db.begin_write()?;
    let mut evicted = 0;
    {
        let mut verdicts = txn.open_table(VERDICTS)?;
        let mut order = txn.open_table(ORDER)?;
        for (key, mut value) in batch {
            let seq = *next_seq;
            *next_seq = next_seq.saturating_add(1);
            Record::set_seq(&mut value, seq);
            let old = verdicts
                .insert(key.as_bytes(), value.as_slice())?
                .and_then(|old| Record::seq_of(old.value()));
            if let Some(old) = old {
                order.remove(old)?;
            }
            order.insert(seq, key.as_bytes())?;
        }
        while verdicts.len()? > max {
            let Some(oldest) = order.pop_first()?.map(|(_, key)| key.value().to_vec()) else {
                break;
            };
            verdicts.remove(oldest.as_slice())?;
            evicted += 1;
        }
    }
    txn.commit()?;
    Ok(evicted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_policy::{DecisionConfig, Reason, Stage};

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vigil-persistent-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn config(dir: &Path, max_entries: u64) -> CacheConfig {
        CacheConfig {
            persistent: true,
            dir: dir.to_path_buf(),
            max_entries,
        }
    }

    fn key(ino: u64) -> StoreKey {
        FileVersion {
            fs: [1; 16],
            ino,
            size: 10,
            mtime: (1, 0),
            ctime: (1, 0),
            btime: None,
        }
        .key()
    }

    fn generation() -> Generation {
        Generation::load(1, Some(Path::new("/dev/null"))).unwrap()
    }

    fn malicious() -> Cached {
        let reasons = vec![Reason {
            stage: Stage::Hash,
            id: "hash.sha256".into(),
            score: 100,
            detail: "Test.Sample".into(),
        }];
        Cached {
            decision: decide(reasons, &DecisionConfig::default()),
            sha256: Some([9; 32]),
            trusted: false,
            allowed: None,
            partial: false,
        }
    }

    /// Offers `n` records, stops the writer (which commits them) and returns
    /// the handle for lookups.
    fn fill(
        dir: &Path,
        max: u64,
        inos: std::ops::Range<u64>,
        g: &Generation,
    ) -> (Persistent, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        let (p, writer) = Persistent::start(&config(dir, max), Arc::clone(&stats));
        assert!(p.is_open());
        for ino in inos {
            p.remember(key(ino), g, &malicious());
        }
        writer.unwrap().stop(Duration::from_secs(10));
        (p, stats)
    }

    #[test]
    fn verdicts_survive_a_reopen_and_bind_to_the_content_id() {
        let dir = scratch("reopen");
        let g = generation();
        let (p, stats) = fill(&dir, 100, 1..4, &g);
        assert_eq!(stats.persistent_writes.load(Ordering::Relaxed), 3);
        drop(p);
        let stats = Arc::new(Stats::default());
        let (p, _writer) = Persistent::start(&config(&dir, 100), Arc::clone(&stats));
        let hit = p.lookup(&key(2), &g).expect("a hit after reopening");
        assert_eq!(
            hit.cached.decision.verdict,
            vigil_policy::Verdict::Malicious
        );
        assert_eq!(hit.cached.sha256, Some([9; 32]));
        assert!(!hit.refresh, "3 entries of 100: young");
        assert!(p.lookup(&key(9), &g).is_none());
        let mut other = generation();
        other.content_id.0[0] ^= 1;
        assert!(p.lookup(&key(2), &other).is_none(), "other content");
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(
            (
                n(&stats.persistent_hits),
                n(&stats.persistent_misses),
                n(&stats.persistent_stale)
            ),
            (1, 1, 1)
        );
        assert_eq!(p.info(&g).entries, 3);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_oldest_entries_are_evicted_beyond_max_entries() {
        let dir = scratch("evict");
        let g = generation();
        let (p, stats) = fill(&dir, 5, 0..8, &g);
        assert_eq!(stats.persistent_evictions.load(Ordering::Relaxed), 3);
        assert_eq!(p.info(&g).entries, 5);
        for ino in 0..3 {
            assert!(p.lookup(&key(ino), &g).is_none(), "{ino} evicted");
        }
        for ino in 3..8 {
            assert!(p.lookup(&key(ino), &g).is_some(), "{ino} kept");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_entries_in_the_older_half_ask_to_be_written_again() {
        let dir = scratch("refresh");
        let g = generation();
        // Sequences 0..4 of a window of 4: 0 and 1 are in the older half.
        let (p, _) = fill(&dir, 4, 0..4, &g);
        let refresh = |ino| p.lookup(&key(ino), &g).map(|h| h.refresh);
        assert_eq!(
            (refresh(0), refresh(1), refresh(2), refresh(3)),
            (Some(true), Some(true), Some(false), Some(false))
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_rewritten_entry_is_young_again() {
        let dir = scratch("touch");
        let g = generation();
        let (p, _) = fill(&dir, 3, 0..3, &g);
        drop(p);
        // 0 is written again (a hit is remembered again), then 3 arrives: 1 goes.
        let stats = Arc::new(Stats::default());
        let (p, writer) = Persistent::start(&config(&dir, 3), Arc::clone(&stats));
        p.remember(key(0), &g, &malicious());
        p.remember(key(3), &g, &malicious());
        writer.unwrap().stop(Duration::from_secs(10));
        assert!(p.lookup(&key(0), &g).is_some());
        assert!(p.lookup(&key(1), &g).is_none());
        assert!(p.lookup(&key(2), &g).is_some());
        assert!(p.lookup(&key(3), &g).is_some());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn trusted_unhashed_and_partial_verdicts_are_not_stored() {
        let dir = scratch("skip");
        let g = generation();
        let stats = Arc::new(Stats::default());
        let (p, writer) = Persistent::start(&config(&dir, 10), Arc::clone(&stats));
        let mut trusted = malicious();
        trusted.trusted = true;
        let mut unhashed = malicious();
        unhashed.sha256 = None;
        let mut partial = malicious();
        partial.partial = true;
        p.remember(key(1), &g, &trusted);
        p.remember(key(2), &g, &unhashed);
        p.remember(key(3), &g, &partial);
        writer.unwrap().stop(Duration::from_secs(10));
        assert_eq!(stats.persistent_writes.load(Ordering::Relaxed), 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_store_is_moved_aside_and_replaced() {
        let g = generation();
        for (name, damage) in [
            (
                "garbage",
                (|p: &Path| fs::write(p, vec![0x5a; 100_000]).unwrap()) as fn(&Path),
            ),
            ("truncated", |p: &Path| {
                let len = fs::metadata(p).unwrap().len();
                fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
            }),
        ] {
            let dir = scratch(name);
            let (p, _) = fill(&dir, 100, 0..50, &g);
            drop(p);
            let path = dir.join(STORE_FILE);
            damage(&path);
            let stats = Arc::new(Stats::default());
            let (p, writer) = Persistent::start(&config(&dir, 100), Arc::clone(&stats));
            assert!(p.is_open(), "{name}: a new store");
            assert!(
                aside_path(&path).exists(),
                "{name}: the damaged one is kept aside"
            );
            assert!(p.lookup(&key(1), &g).is_none());
            p.remember(key(1), &g, &malicious());
            writer.unwrap().stop(Duration::from_secs(10));
            assert!(p.lookup(&key(1), &g).is_some(), "{name}: rebuilt");
            let _ = fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn a_store_cut_or_overwritten_anywhere_still_gives_a_working_store() {
        let g = generation();
        let dir = scratch("cut");
        let (p, _) = fill(&dir, 1000, 0..200, &g);
        drop(p);
        let path = dir.join(STORE_FILE);
        let whole = fs::read(&path).unwrap();
        let len = whole.len();
        for cut in [
            0,
            1,
            100,
            512,
            4096,
            4097,
            len / 3,
            len / 2,
            len - 4096,
            len - 1,
        ] {
            fs::write(&path, &whole[..cut]).unwrap();
            let (p, writer) = Persistent::start(&config(&dir, 1000), Arc::new(Stats::default()));
            assert!(p.is_open(), "cut at {cut} of {len}");
            // Whatever it kept, it answers and takes new verdicts.
            let _ = p.lookup(&key(5), &g);
            p.remember(key(5000), &g, &malicious());
            writer.unwrap().stop(Duration::from_secs(10));
            assert!(p.lookup(&key(5000), &g).is_some(), "cut at {cut}: writable");
            drop(p);
            let _ = fs::remove_file(aside_path(&path));
        }
        // Bytes overwritten in place: a header, a page in the middle, the end.
        for at in [0, 4096 + 100, len / 2, len - 600] {
            let mut damaged = whole.clone();
            damaged[at..at + 512].fill(0xa5);
            fs::write(&path, &damaged).unwrap();
            let (p, writer) = Persistent::start(&config(&dir, 1000), Arc::new(Stats::default()));
            assert!(p.is_open(), "512 bytes at {at} of {len}");
            let _ = p.lookup(&key(5), &g);
            p.remember(key(5000), &g, &malicious());
            writer.unwrap().stop(Duration::from_secs(10));
            assert!(
                p.lookup(&key(5000), &g).is_some(),
                "512 bytes at {at}: writable"
            );
            drop(p);
            let _ = fs::remove_file(aside_path(&path));
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_store_in_use_is_left_alone() {
        let dir = scratch("busy");
        let g = generation();
        let stats = Arc::new(Stats::default());
        let (first, _w) = Persistent::start(&config(&dir, 10), Arc::clone(&stats));
        assert!(first.is_open());
        let (second, writer) = Persistent::start(&config(&dir, 10), Arc::clone(&stats));
        assert!(!second.is_open() && writer.is_none());
        assert_eq!(second.info(&g).state, "unavailable");
        assert!(!aside_path(&dir.join(STORE_FILE)).exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn off_when_configured_off() {
        let dir = scratch("off");
        let mut c = config(&dir, 10);
        c.persistent = false;
        let (p, writer) = Persistent::start(&c, Arc::new(Stats::default()));
        assert!(!p.is_open() && writer.is_none());
        assert!(!dir.join(STORE_FILE).exists());
        assert_eq!(p.info(&generation()).state, "off");
        let _ = fs::remove_dir_all(&dir);
    }
}
