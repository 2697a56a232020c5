//! Quarantine: the thread that moves detected files into the store, and serves
//! list/show/restore/delete requests.
//!
//! Owns the quarantine thread, its two bounded queues and the open [`Store`]. A
//! worker hands over a [`Detected`] *after* it answered the kernel (deny first,
//! then quarantine); a full queue drops the job and counts it (the file stays
//! where it is, still denied). Control requests arrive on their own queue, so a
//! flood of detections never starves `vigil quarantine restore`. Every store
//! operation runs on this one thread: there is no concurrent access to the store.
//!
//! The store is opened on first use, not at startup, so a daemon whose policy never
//! quarantines never creates `quarantine.dir`. A reload that changes
//! `quarantine.dir` takes effect at the next operation.

pub mod path;
pub mod store;

use std::ffi::OsString;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub use store::{Detected, QuarantineError, Record, Store};

use crate::daemon::alerts::{Alert, Alerts};
use crate::daemon::events::EventLog;
use crate::daemon::stats::Stats;
use crate::engine::generation::Generation;

/// Detections that may wait for the quarantine thread before new ones are dropped.
pub const QUARANTINE_QUEUE: usize = 256;
/// Control requests that may wait.
const REQUEST_QUEUE: usize = 16;
/// How often retention runs when nothing else happens.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// A control request about the store.
#[derive(Debug)]
pub enum Request {
    /// Every item (only the caller's own files when `uid` is set).
    List {
        /// Restrict to files owned by this uid (non-root callers).
        uid: Option<u32>,
    },
    /// One item's record.
    Show {
        /// The item.
        id: String,
        /// As in `List`.
        uid: Option<u32>,
    },
    /// Put an item back (root only; checked by the control socket).
    Restore {
        /// The item.
        id: String,
        /// Restore here instead of the original path.
        to: Option<OsString>,
        /// Restore even if the hash is still known-bad.
        force: bool,
        /// Replace an existing file at the target.
        overwrite: bool,
    },
    /// Delete an item for good (root only).
    Delete {
        /// The item.
        id: String,
    },
}

/// What a successful request returns.
#[derive(Debug)]
pub enum Outcome {
    /// `List`: the visible items (keys removed).
    Items(Vec<Record>),
    /// `Show`: one item (key removed).
    Item(Record),
    /// `Restore`: where the file is now, and its record (key removed).
    Restored {
        /// The path restored to.
        path: String,
        /// The item's record.
        record: Record,
    },
    /// `Delete`: the id of the deleted item.
    Deleted(String),
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] QuarantineError),
    /// A restore of a file a hash list still names, without `force`.
    #[error(
        "item {id} is still known-bad ({name}); restoring it needs --force (it will be denied again unless excluded)"
    )]
    KnownBad {
        /// The item.
        id: String,
        /// The hash list entry's name.
        name: String,
    },
    /// Too many requests are waiting.
    #[error("the quarantine thread is busy; try again")]
    Busy,
    /// The thread is gone (shutdown).
    #[error("the quarantine thread stopped")]
    Stopped,
}

type Reply = oneshot::Sender<Result<Outcome, RequestError>>;

/// The handle workers and the control loop use; cheap to clone.
#[derive(Clone)]
pub struct Quarantiner {
    jobs: Sender<Detected>,
    requests: Sender<(Request, Reply)>,
    stats: Arc<Stats>,
}

impl Quarantiner {
    /// Starts the quarantine thread.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn start(
        generation: Arc<ArcSwap<Generation>>,
        events: EventLog,
        alerts: Arc<Alerts>,
        stats: Arc<Stats>,
    ) -> std::io::Result<(Quarantiner, thread::JoinHandle<()>)> {
        let (jobs, job_rx) = crossbeam_channel::bounded(QUARANTINE_QUEUE);
        let (requests, request_rx) = crossbeam_channel::bounded(REQUEST_QUEUE);
        let mut keeper = Keeper {
            generation,
            events,
            alerts,
            stats: Arc::clone(&stats),
            store: None,
        };
        let handle = thread::Builder::new()
            .name("vigil-quarantine".into())
            .spawn(move || keeper.run(&job_rx, &request_rx))?;
        Ok((
            Quarantiner {
                jobs,
                requests,
                stats,
            },
            handle,
        ))
    }

    /// Queues a detected file; never blocks. A full queue drops it (counted).
    pub fn submit(&self, detected: Detected) {
        match self.jobs.try_send(detected) {
            Ok(()) => {}
            Err(TrySendError::Full(d) | TrySendError::Disconnected(d)) => {
                Stats::bump(&self.stats.quarantine_dropped);
                crate::warn_limited!(file.path = %d.path.display(), "quarantine queue full; file left in place (still denied)");
            }
        }
    }

    /// Runs `request` on the quarantine thread.
    ///
    /// # Errors
    /// What the store said, a known-bad restore without `force`, or a busy or
    /// stopped thread.
    pub async fn request(&self, request: Request) -> Result<Outcome, RequestError> {
        let (tx, rx) = oneshot::channel();
        if self.requests.try_send((request, tx)).is_err() {
            return Err(RequestError::Busy);
        }
        rx.await.unwrap_or(Err(RequestError::Stopped))
    }
}

struct Keeper {
    generation: Arc<ArcSwap<Generation>>,
    events: EventLog,
    alerts: Arc<Alerts>,
    stats: Arc<Stats>,
    store: Option<Store>,
}

impl Keeper {
    fn run(&mut self, jobs: &Receiver<Detected>, requests: &Receiver<(Request, Reply)>) {
        let mut last_prune = Instant::now();
        loop {
            crossbeam_channel::select! {
                recv(jobs) -> job => match job {
                    Ok(d) => self.quarantine(&d),
                    Err(_) => return,
                },
                recv(requests) -> req => match req {
                    Ok((r, reply)) => { let _ = reply.send(self.answer(r)); }
                    Err(_) => return,
                },
                default(PRUNE_EVERY) => {}
            }
            if last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = Instant::now();
                self.prune();
            }
        }
    }

    /// The open store for the current `quarantine.dir`, opening it if needed.
    fn store(&mut self) -> Result<&Store, QuarantineError> {
        let dir = self.generation.load().config.quarantine.dir.clone();
        let store = match self.store.take() {
            Some(s) if s.dir() == dir => s,
            _ => {
                let s = Store::open(&dir)?;
                tracing::info!(dir = %dir.display(), "quarantine store open");
                s
            }
        };
        Ok(self.store.insert(store))
    }

    fn prune(&mut self) {
        let q = self.generation.load().config.quarantine.clone();
        let Some(store) = &self.store else { return };
        match store.prune(q.max_total_size, q.max_age_days, SystemTime::now()) {
            Ok(deleted) => {
                for id in deleted {
                    tracing::info!(quarantine.id = %id, "quarantine retention: item deleted");
                    self.events.emit_json(item_event("quarantine-expired", &id));
                }
            }
            Err(e) => tracing::warn!(error = %e, "quarantine retention failed"),
        }
    }

    fn quarantine(&mut self, d: &Detected) {
        test_delay();
        let result = self.store().and_then(|s| s.quarantine(d));
        match result {
            Ok(record) => {
                Stats::bump(&self.stats.quarantined);
                tracing::info!(file.path = %d.path.display(), quarantine.id = %record.id, "quarantined");
                let line = record_event("quarantined", "success", &record, None);
                if self.alerts.active() {
                    self.alerts.publish(Alert {
                        file_uid: Some(record.uid),
                        process_uid: d.process_uid,
                        line: line.clone(),
                    });
                }
                self.events.emit_json(line);
                self.prune();
            }
            Err(e) => {
                Stats::bump(&self.stats.quarantine_failed);
                tracing::warn!(file.path = %d.path.display(), error = %e, "quarantine failed");
                self.events.emit_json(json!({
                    "@timestamp": now(),
                    "event": {"kind": "event", "category": ["malware", "file"], "action": "quarantined", "outcome": "failure"},
                    "file": {"path": d.path.to_string_lossy(), "hash": {"sha256": d.sha256.map(hex::encode)}},
                    "process": {"pid": d.pid, "executable": d.executable},
                    "error": {"message": e.to_string()},
                    "vigil": {"generation": d.generation, "verdict": d.verdict},
                }));
            }
        }
    }

    fn answer(&mut self, request: Request) -> Result<Outcome, RequestError> {
        let generation = self.generation.load_full();
        let store = self.store()?;
        let visible = |r: &Record, uid: Option<u32>| uid.is_none_or(|u| u == r.uid);
        match request {
            Request::List { uid } => Ok(Outcome::Items(
                store
                    .list()?
                    .iter()
                    .filter(|r| visible(r, uid))
                    .map(Record::public)
                    .collect(),
            )),
            Request::Show { id, uid } => match store.record(&id)? {
                r if visible(&r, uid) => Ok(Outcome::Item(r.public())),
                _ => Err(QuarantineError::NoSuchItem(id).into()),
            },
            Request::Restore {
                id,
                to,
                force,
                overwrite,
            } => {
                let record = store.record(&id)?;
                // An allowed hash is not known-bad any more (`restore --allow`
                // adds it to the allowlist and reloads before asking).
                let known_bad = hex::decode(&record.sha256)
                    .ok()
                    .and_then(|h| <[u8; 32]>::try_from(h).ok())
                    .filter(|h| generation.allow.lookup(h, None, record.size).is_none())
                    .and_then(|h| generation.hashes.lookup_sha256(&h, record.size))
                    .map(|entry| entry.name.to_string());
                if let (Some(name), false) = (&known_bad, force) {
                    return Err(RequestError::KnownBad {
                        id,
                        name: name.clone(),
                    });
                }
                let (record, target) = store.restore(&id, to.as_deref(), overwrite)?;
                Stats::bump(&self.stats.restored);
                let path = target.to_string_lossy().into_owned();
                tracing::info!(quarantine.id = %id, file.path = %path, forced = known_bad.is_some(), "restored");
                self.events
                    .emit_json(record_event("restored", "success", &record, Some(&path)));
                Ok(Outcome::Restored {
                    path,
                    record: record.public(),
                })
            }
            Request::Delete { id } => {
                store.delete(&id)?;
                tracing::info!(quarantine.id = %id, "quarantined item deleted");
                self.events.emit_json(item_event("quarantine-deleted", &id));
                Ok(Outcome::Deleted(id))
            }
        }
    }
}

fn now() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

/// An event line about a whole record (quarantined, restored).
fn record_event(action: &str, outcome: &str, r: &Record, path: Option<&str>) -> Value {
    json!({
        "@timestamp": now(),
        "event": {"kind": "event", "category": ["malware", "file"], "action": action, "outcome": outcome},
        "file": {
            "path": path.unwrap_or(&r.path),
            "size": r.size,
            "hash": {"sha256": r.sha256},
            "uid": r.uid.to_string(),
            "gid": r.gid.to_string(),
            "mode": format!("{:o}", r.mode),
        },
        "process": {"pid": r.pid, "executable": r.executable},
        "vigil": {
            "quarantine": {"id": r.id, "original_path": r.path},
            "verdict": r.verdict,
            "generation": r.generation,
            "reasons": r.reasons,
        },
    })
}

/// An event line about an item known only by id (deleted, expired).
fn item_event(action: &str, id: &str) -> Value {
    json!({
        "@timestamp": now(),
        "event": {"kind": "event", "category": ["file"], "action": action, "outcome": "success"},
        "vigil": {"quarantine": {"id": id}},
    })
}

/// Debug builds only: `VIGIL_TEST_QUARANTINE_DELAY_MS` delays every move, so a
/// test can race the path. Compiled out of release builds.
#[cfg(debug_assertions)]
fn test_delay() {
    if let Some(ms) = std::env::var("VIGIL_TEST_QUARANTINE_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        thread::sleep(Duration::from_millis(ms));
    }
}

#[cfg(not(debug_assertions))]
fn test_delay() {}
