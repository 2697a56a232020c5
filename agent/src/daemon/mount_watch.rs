//! The mount watcher: filesystems mounted after start, in the daemon's mount
//! namespace and in every other one, get their filesystem marks; the marks of
//! unmounted filesystems leave the daemon's list.
//!
//! Owns one thread (`vigil-mounts`) and its state: the mount namespaces known
//! (by nsfs inode, each held open so the inode cannot be reused while known,
//! with a live process in it and its last mount table),
//! the devices seen at start (never marked when the configuration lists its
//! filesystems explicitly and turns `watch.new_mounts` on: only filesystems that
//! appear later are added then), and how it hears of a change:
//! - a `FAN_REPORT_MNT` fanotify group with one `FAN_MARK_MNTNS` mark per
//!   namespace (Linux ≥ 6.15): the kernel wakes the thread on every attach and
//!   detach, and the thread rereads the mount tables;
//! - where the kernel refuses that, `POLLPRI` on each namespace's
//!   `/proc/<pid>/mountinfo` (every kernel), which tells which table changed.
//!
//! New namespaces have no notification: `/proc/*/ns/mnt` is walked every
//! [`NAMESPACE_SCAN`] while new mounts are watched (one `stat` per process;
//! see docs/failure-modes.md for the measured cost and the window it leaves);
//! otherwise only the daemon's own namespace is followed, to see its
//! filesystems unmounted.
//!
//! Must not own: the marks themselves ([`Marks`], shared with the main loop
//! behind a mutex that only this thread and the main loop take), the
//! configuration (read from the current generation; after a reload every
//! namespace is looked at again within a second), or any event: the reader and
//! the workers never wait for this thread, so the open and exec path does not
//! change.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::daemon::events::EventLog;
use crate::daemon::marks::{Mark, MarkSource, Marks, uses_builtin_list, watches_new_mounts};
use crate::daemon::mountinfo::{self, Mount};
use crate::engine::generation::Generation;
use crate::fanotify::{Group, MountGroup};

/// How often `/proc/*/ns/mnt` is walked for new mount namespaces. A namespace
/// created and used within this time is not seen in time (the exec guard's job);
/// the walk costs one `stat` per process (measured in docs/failure-modes.md).
pub const NAMESPACE_SCAN: Duration = Duration::from_secs(1);

/// How the watcher hears of mounts in namespaces it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// fanotify `FAN_MNT_ATTACH`/`FAN_MNT_DETACH` on each mount namespace.
    Fanotify,
    /// `POLLPRI` on each namespace's mountinfo.
    Poll,
}

impl Notify {
    /// Stable name for logs, status and event lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Notify::Fanotify => "fanotify-mntns",
            Notify::Poll => "mountinfo-poll",
        }
    }
}

/// A running watcher; stop it with [`MountWatch::stop`].
pub struct MountWatch {
    stop: OwnedFd,
    thread: JoinHandle<()>,
    notify: Notify,
}

impl MountWatch {
    /// Learns every mount namespace and marks what the configuration would
    /// watch and is not marked yet (with the built-in list: every local
    /// filesystem of every namespace; with an explicit list and
    /// `watch.new_mounts = true`: nothing present now) before it returns, then
    /// starts the thread that follows changes.
    ///
    /// # Errors
    /// The pipe or the thread could not be created.
    pub fn start(
        group: Group,
        marks: Arc<Mutex<Marks>>,
        generation: Arc<ArcSwap<Generation>>,
        events: EventLog,
        marked: UnboundedSender<u64>,
    ) -> std::io::Result<MountWatch> {
        let (wake, stop) = nix::unistd::pipe()?;
        // Without new mounts to watch, the watcher only drops the marks of
        // unmounted filesystems: mountinfo tells it that, so no kernel mark is
        // put on any mount namespace (a configuration that names exactly what
        // to watch leaves nothing else marked). A reload that turns new mounts
        // on is then followed by polling, as on kernels before 6.15.
        let kernel = match MountGroup::new() {
            Ok(_) if force_poll() => None,
            Ok(_) if !watches_new_mounts(&generation.load().config) => {
                tracing::info!(
                    "new mounts are not watched: following mount tables through mountinfo, no mount-namespace mark"
                );
                None
            }
            Ok(g) => Some(g),
            Err(errno) => {
                tracing::info!(%errno, "no fanotify mount events on this kernel (Linux >= 6.15); polling mountinfo instead");
                None
            }
        };
        let notify = if kernel.is_some() {
            Notify::Fanotify
        } else {
            Notify::Poll
        };
        let mut watcher = Watcher {
            group,
            marks,
            generation,
            events,
            marked,
            kernel,
            namespaces: HashMap::new(),
            baseline: None,
            failed: HashSet::new(),
            unfollowed: HashSet::new(),
            attaches: 0,
        };
        let seen = watcher.begin();
        let thread = std::thread::Builder::new()
            .name("vigil-mounts".into())
            .spawn(move || watcher.run(&wake, seen))?;
        Ok(MountWatch {
            stop,
            thread,
            notify,
        })
    }

    /// How this watcher hears of mounts.
    pub fn notify(&self) -> Notify {
        self.notify
    }

    /// Stops the thread and waits for it (it wakes at once).
    pub fn stop(self) {
        let _ = nix::unistd::write(&self.stop, b"x");
        if self.thread.join().is_err() {
            tracing::warn!("the mount watcher thread panicked");
        }
    }
}

/// Debug builds only: `VIGIL_TEST_MOUNT_POLL=1` uses the mountinfo poll even
/// where the kernel has mount events, so the tests cover both ways on one
/// machine. Compiled out of release builds.
#[cfg(debug_assertions)]
fn force_poll() -> bool {
    std::env::var_os("VIGIL_TEST_MOUNT_POLL").is_some_and(|v| v == "1")
}

#[cfg(not(debug_assertions))]
fn force_poll() -> bool {
    false
}

/// One mount namespace the watcher follows.
struct Namespace {
    /// A process in it, whose `/proc/<pid>/root` reaches its mounts.
    pid: i32,
    /// The namespace itself (`/proc/<pid>/ns/mnt`), held open: namespace
    /// inodes are reused once a namespace is gone, so without it a new
    /// namespace could be taken for one already known. Holding it keeps a
    /// namespace whose last process exited (and its mounts) alive until the
    /// next walk, at most [`NAMESPACE_SCAN`].
    _handle: File,
    /// Its `/proc/<pid>/mountinfo`, kept open for `POLLPRI` when there are no
    /// kernel mount events; with them the table is read afresh through `pid`.
    table: Option<File>,
    /// Its mounts at the last read.
    mounts: Vec<Mount>,
    /// Mounts that could not be reached to be marked (hidden, or gone).
    unreachable: Vec<Mount>,
}

struct Watcher {
    group: Group,
    marks: Arc<Mutex<Marks>>,
    generation: Arc<ArcSwap<Generation>>,
    events: EventLog,
    /// Told the device of every filesystem this watcher marks (for the exec
    /// guard's covered map).
    marked: UnboundedSender<u64>,
    kernel: Option<MountGroup>,
    namespaces: HashMap<u64, Namespace>,
    /// Explicit `watch.filesystems` with `watch.new_mounts = true`: the devices
    /// mounted anywhere at start, which are not "new". A device leaves the set
    /// once it is mounted nowhere, so a new filesystem that reuses its number
    /// is marked.
    baseline: Option<HashSet<u64>>,
    /// Devices whose mark failed, not retried (or logged again) until they
    /// leave every mount table.
    failed: HashSet<u64>,
    /// Namespaces the kernel group could not follow: reread at every scan.
    unfollowed: HashSet<u64>,
    /// Attach events the kernel reported since the last pass. More than the
    /// new entries found means one was invisible in the tables (a filesystem
    /// unmounted and another mounted at the same place with the same mount
    /// and device numbers between two reads).
    attaches: usize,
}

/// What set off a pass, for the event lines.
#[derive(Clone, Copy)]
enum Cause {
    Start,
    Change(Notify),
    NewNamespace,
    Reload,
}

impl Cause {
    fn as_str(self) -> &'static str {
        match self {
            Cause::Start => "start",
            Cause::Change(n) => n.as_str(),
            Cause::NewNamespace => "namespace-scan",
            Cause::Reload => "reload",
        }
    }
}

impl Watcher {
    /// The first pass, on the caller's thread so that it is over before the
    /// daemon reports ready: whatever is mounted after that is "after start".
    /// Returns the generation it saw.
    fn begin(&mut self) -> u64 {
        self.discover(Cause::Start);
        let all: Vec<u64> = self.namespaces.keys().copied().collect();
        // The tables first: with an explicit list, everything mounted now is
        // the baseline and must be known before the first marking pass.
        self.reread(&all);
        let generation = self.generation.load();
        if !uses_builtin_list(&generation.config) {
            self.baseline = Some(self.present());
        }
        self.refresh(&all, Cause::Start);
        generation.id
    }

    fn run(&mut self, wake: &OwnedFd, mut seen_generation: u64) {
        let mut next_scan = Instant::now() + NAMESPACE_SCAN;
        loop {
            let wait = next_scan.saturating_duration_since(Instant::now());
            let (stop, kernel, changed) = self.wait(wake, wait);
            if stop {
                return;
            }
            if kernel {
                match self.kernel.as_ref().map(MountGroup::drain) {
                    Some(Ok(n)) => self.attaches = n,
                    Some(Err(errno)) => tracing::warn!(%errno, "reading mount events failed"),
                    None => {}
                }
                let all: Vec<u64> = self.namespaces.keys().copied().collect();
                self.refresh(&all, Cause::Change(Notify::Fanotify));
            } else if !changed.is_empty() {
                self.refresh(&changed, Cause::Change(Notify::Poll));
            }
            // A reload may have turned new mounts on, or changed the list:
            // every namespace is looked at again under the new configuration.
            let generation = self.generation.load();
            if generation.id != seen_generation {
                seen_generation = generation.id;
                let all: Vec<u64> = self.namespaces.keys().copied().collect();
                self.reread(&all);
                match (uses_builtin_list(&generation.config), &self.baseline) {
                    (true, Some(_)) => self.baseline = None,
                    // From the built-in list to an explicit one: what is
                    // mounted now counts as there "at start".
                    (false, None) => self.baseline = Some(self.present()),
                    (true, None) | (false, Some(_)) => {}
                }
                self.refresh(&all, Cause::Reload);
            }
            if Instant::now() >= next_scan {
                let mut ids = self.discover(Cause::NewNamespace);
                self.unfollowed
                    .retain(|id| self.namespaces.contains_key(id));
                ids.extend(self.unfollowed.iter().copied());
                // Also when nothing was added: namespaces that vanished take
                // their devices with them.
                self.refresh(&ids, Cause::NewNamespace);
                next_scan = Instant::now() + NAMESPACE_SCAN;
            }
        }
    }

    /// Waits up to `limit`: (stop asked, kernel mount events ready, namespaces
    /// whose mountinfo changed).
    fn wait(&self, wake: &OwnedFd, limit: Duration) -> (bool, bool, Vec<u64>) {
        let ids: Vec<u64> = match self.kernel {
            Some(_) => Vec::new(),
            None => self.namespaces.keys().copied().collect(),
        };
        let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
        if let Some(k) = &self.kernel {
            fds.push(PollFd::new(k.as_fd(), PollFlags::POLLIN));
        }
        let ids: Vec<u64> = ids
            .into_iter()
            .filter(|id| self.namespaces.get(id).is_some_and(|ns| ns.table.is_some()))
            .collect();
        for id in &ids {
            if let Some(table) = self.namespaces.get(id).and_then(|ns| ns.table.as_ref()) {
                fds.push(PollFd::new(table.as_fd(), PollFlags::POLLPRI));
            }
        }
        let timeout = PollTimeout::try_from(limit).unwrap_or(PollTimeout::MAX);
        if poll(&mut fds, timeout).is_err() {
            return (false, false, Vec::new());
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let stop = ready(&fds[0]);
        let (kernel, first_table) = match self.kernel {
            Some(_) => (ready(&fds[1]), 2),
            None => (false, 1),
        };
        let changed = ids
            .iter()
            .zip(fds.iter().skip(first_table))
            .filter(|(_, fd)| ready(fd))
            .map(|(id, _)| *id)
            .collect();
        (stop, kernel, changed)
    }

    fn marks(&self) -> MutexGuard<'_, Marks> {
        self.marks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Walks `/proc/*/ns/mnt`: adds the namespaces not known yet (watched by the
    /// kernel group when there is one) and forgets those no process is in any
    /// more. Returns the added ones.
    fn discover(&mut self, cause: Cause) -> Vec<u64> {
        let mut live: HashMap<u64, i32> = HashMap::new();
        // Our own namespace first, so its mounts are reached without /proc/<pid>.
        let me = std::process::id() as i32;
        if let Ok(md) = std::fs::metadata("/proc/self/ns/mnt") {
            live.insert(md.ino(), me);
        }
        // Other namespaces matter only while new mounts are watched; without,
        // the daemon's own table is enough to see its filesystems unmounted,
        // and the walk's cost is not paid.
        let others = watches_new_mounts(&self.generation.load().config);
        if let Some(dir) = others.then(|| std::fs::read_dir("/proc").ok()).flatten() {
            for entry in dir.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<i32>().ok())
                else {
                    continue;
                };
                if let Ok(md) = std::fs::metadata(format!("/proc/{pid}/ns/mnt")) {
                    live.entry(md.ino()).or_insert(pid);
                }
            }
        }
        self.namespaces.retain(|ino, ns| match live.get(ino) {
            Some(pid) => {
                ns.pid = *pid;
                true
            }
            None => false,
        });
        let mut added = Vec::new();
        for (ino, pid) in live {
            if self.namespaces.contains_key(&ino) {
                continue;
            }
            // The pid may have exited or moved since the walk: check the inode
            // after the open.
            let table = match self.kernel {
                Some(_) => None,
                None => match File::open(format!("/proc/{pid}/mountinfo")) {
                    Ok(f) => Some(f),
                    Err(_) => continue,
                },
            };
            let ns_file = PathBuf::from(format!("/proc/{pid}/ns/mnt"));
            let Ok(handle) = File::open(&ns_file) else {
                continue;
            };
            if handle.metadata().map(|m| m.ino()).ok() != Some(ino) {
                continue;
            }
            if let Some(k) = &self.kernel
                && let Err(errno) = k.watch_namespace(&ns_file)
            {
                tracing::warn!(%errno, pid, namespace = ino, "cannot follow the mounts of this namespace; it is reread every {}s", NAMESPACE_SCAN.as_secs());
                self.unfollowed.insert(ino);
            }
            tracing::debug!(
                pid,
                namespace = ino,
                cause = cause.as_str(),
                "mount namespace found"
            );
            self.namespaces.insert(
                ino,
                Namespace {
                    pid,
                    _handle: handle,
                    table,
                    mounts: Vec::new(),
                    unreachable: Vec::new(),
                },
            );
            added.push(ino);
        }
        added
    }

    /// Every device mounted in a known namespace.
    fn present(&self) -> HashSet<u64> {
        self.namespaces
            .values()
            .flat_map(|ns| ns.mounts.iter().map(|m| m.dev))
            .collect()
    }

    /// Rereads the mount tables of `ids`, drops the marks (and the baseline and
    /// failure entries) of devices mounted nowhere any more, and marks the
    /// filesystems of `ids` the configuration wants that are not marked.
    fn refresh(&mut self, ids: &[u64], cause: Cause) {
        let generation = self.generation.load();
        let wanted = watches_new_mounts(&generation.config);
        let fresh = self.reread(ids);
        let seen: usize = fresh.iter().map(|(_, _, raw)| raw).sum();
        let invisible = std::mem::take(&mut self.attaches) > seen;
        let present = self.present();
        if let Some(baseline) = &mut self.baseline {
            baseline.retain(|dev| present.contains(dev));
        }
        self.failed.retain(|dev| present.contains(dev));
        let dropped = self.marks().drop_unmounted(&present);
        for mark in &dropped {
            tracing::info!(path = %mark.path.display(), dev = %dev_str(mark.dev), "filesystem unmounted; its mark is gone");
            self.events.emit_json(dropped_event(mark));
        }
        if !wanted {
            return;
        }
        // At start and after a reload every mount is a candidate (skipped when
        // its device is listed); otherwise the mounts new in their table, and
        // those that could not be reached before. A new mount is marked even
        // when its device number is listed: memory filesystems reuse device
        // numbers, so it may be a new superblock (the kernel ignores a mark
        // already there).
        let everything = matches!(cause, Cause::Start | Cause::Reload);
        if invisible {
            tracing::debug!(
                "more mount events than new mounts: marking every filesystem mounted in one namespace again"
            );
        }
        // Devices mounted in more than one namespace: a new entry for one of
        // them is a copy (a new namespace, propagation), the same superblock.
        let mut spread: HashMap<u64, usize> = HashMap::new();
        for ns in self.namespaces.values() {
            let devs: HashSet<u64> = ns.mounts.iter().map(|m| m.dev).collect();
            for dev in devs {
                *spread.entry(dev).or_default() += 1;
            }
        }
        for (id, new, _) in fresh {
            let Some(ns) = self.namespaces.get_mut(&id) else {
                continue;
            };
            let retry = std::mem::take(&mut ns.unreachable);
            let candidates: Vec<Mount> = if everything || invisible {
                ns.mounts.clone()
            } else {
                new.into_iter()
                    .chain(retry.into_iter().filter(|m| ns.mounts.contains(m)))
                    .collect()
            };
            let pid = ns.pid;
            for mount in candidates.iter().filter(|m| m.is_local()) {
                if self.failed.contains(&mount.dev)
                    || self
                        .baseline
                        .as_ref()
                        .is_some_and(|b| b.contains(&mount.dev))
                {
                    continue;
                }
                let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
                let listed = marks.covers(mount.dev);
                let copy = spread.get(&mount.dev).is_some_and(|n| *n > 1);
                if listed && (everything || copy) {
                    continue;
                }
                if listed && invisible {
                    // Idempotent for the superblock already marked; no line.
                    let _ = marks.add_superblock(&self.group, pid, mount.dev, MarkSource::Mount);
                    continue;
                }
                // The first reachable mount of this device in the namespace: a
                // mount hidden under another is reached through another one.
                let result = marks.add_superblock(&self.group, pid, mount.dev, MarkSource::Mount);
                drop(marks);
                match result {
                    Ok(mark) => {
                        // The exec guard counts it as covered from now on.
                        let _ = self.marked.send(mark.dev);
                        tracing::info!(path = %mark.path.display(), fstype = %mount.fstype, namespace = id, via = cause.as_str(), "new filesystem watched");
                        self.events
                            .emit_json(covered_event(&mark, mount, id, pid, cause));
                    }
                    Err(crate::daemon::marks::CoverError::Kernel { path, errno }) => {
                        self.failed.insert(mount.dev);
                        let e = format!("fanotify refused to mark {}: {errno}", path.display());
                        tracing::warn!(error = %e, fstype = %mount.fstype, "cannot watch a new filesystem");
                        self.events.emit_json(failed_event(mount, id, &e));
                    }
                    Err(e) => {
                        // Hidden under another mount, or gone already: tried
                        // again at this namespace's next change.
                        tracing::debug!(error = %e, "new filesystem not reachable now");
                        if let Some(ns) = self.namespaces.get_mut(&id) {
                            ns.unreachable.push(mount.clone());
                        }
                    }
                }
            }
        }
    }

    /// Rereads the mount tables of `ids`; returns, for each table read, the
    /// mounts that were not in it at the last read (all of them the first
    /// time) less bind mounts of filesystems already there, and how many
    /// entries were new at all.
    fn reread(&mut self, ids: &[u64]) -> Vec<(u64, Vec<Mount>, usize)> {
        let mut fresh = Vec::new();
        for id in ids {
            let Some(ns) = self.namespaces.get_mut(id) else {
                continue;
            };
            let mut text = String::new();
            let read = match &mut ns.table {
                Some(table) => table
                    .rewind()
                    .and_then(|()| table.read_to_string(&mut text)),
                None => {
                    std::fs::read_to_string(format!("/proc/{}/mountinfo", ns.pid)).and_then(|t| {
                        // A pid reused by a process elsewhere since the walk.
                        let ino = std::fs::metadata(format!("/proc/{}/ns/mnt", ns.pid))?.ino();
                        if ino == *id {
                            text = t;
                            Ok(0)
                        } else {
                            Err(std::io::Error::other(
                                "the process moved to another namespace",
                            ))
                        }
                    })
                }
            };
            if let Err(e) = read {
                tracing::debug!(error = %e, namespace = id, "mountinfo unreadable");
                continue;
            }
            let mounts = mountinfo::parse(&text);
            let raw = mounts.iter().filter(|m| !ns.mounts.contains(m)).count();
            // New entries, less those of a filesystem that also has a mount
            // here that survived since the last read (a bind mount or a move
            // of something already seen, not a new filesystem).
            let new = mounts
                .iter()
                .filter(|m| !ns.mounts.contains(m))
                .filter(|m| {
                    !mounts
                        .iter()
                        .any(|o| o.dev == m.dev && o != *m && ns.mounts.contains(o))
                })
                .cloned()
                .collect();
            ns.mounts = mounts;
            fresh.push((*id, new, raw));
        }
        fresh
    }
}

/// `major:minor`, as mountinfo and `ls -l` write devices.
fn dev_str(dev: u64) -> String {
    format!(
        "{}:{}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev)
    )
}

fn now() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

/// The event line of a filesystem marked at run time: `mount-covered`.
fn covered_event(mark: &Mark, mount: &Mount, namespace: u64, pid: i32, cause: Cause) -> Value {
    json!({
        "@timestamp": now(),
        "event": {"kind": "event", "category": ["configuration"], "type": ["change"], "action": "mount-covered", "outcome": "success"},
        "file": {"path": mark.path.to_string_lossy()},
        "vigil": {"mount": {
            "point": mount.mount_point.to_string_lossy(),
            "fstype": mount.fstype,
            "dev": dev_str(mount.dev),
            "namespace": namespace,
            "pid": pid,
            "via": cause.as_str(),
        }},
    })
}

/// The event line of a filesystem the kernel refused to mark.
fn failed_event(mount: &Mount, namespace: u64, error: &str) -> Value {
    json!({
        "@timestamp": now(),
        "event": {"kind": "event", "category": ["configuration"], "type": ["change"], "action": "mount-covered", "outcome": "failure"},
        "error": {"message": error},
        "vigil": {"mount": {
            "point": mount.mount_point.to_string_lossy(),
            "fstype": mount.fstype,
            "dev": dev_str(mount.dev),
            "namespace": namespace,
        }},
    })
}

/// The event line of a mark that left the list: `mount-dropped`.
fn dropped_event(mark: &Mark) -> Value {
    json!({
        "@timestamp": now(),
        "event": {"kind": "event", "category": ["configuration"], "type": ["deletion"], "action": "mount-dropped", "outcome": "success"},
        "file": {"path": mark.path.to_string_lossy()},
        "vigil": {"mount": {"dev": dev_str(mark.dev), "source": mark.source.as_str()}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::marks::reach;

    #[test]
    fn own_namespace_is_reached_directly_others_through_proc() {
        let usb = std::path::Path::new("/mnt/usb");
        assert_eq!(
            reach(std::process::id() as i32, usb),
            PathBuf::from("/mnt/usb")
        );
        assert_eq!(reach(1, usb), PathBuf::from("/proc/1/root/mnt/usb"));
        assert_eq!(reach(7, "/".as_ref()), PathBuf::from("/proc/7/root/"));
        assert_eq!(dev_str(nix::sys::stat::makedev(259, 3)), "259:3");
    }
}
