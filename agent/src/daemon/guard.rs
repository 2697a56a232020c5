//! The daemon's side of the exec guard: starting it (or saying why not), reading
//! its reports, and marking the filesystems it reports so that the next exec
//! from them is scanned.
//!
//! Owns the ring-buffer reader thread, the guard's event lines
//! (`exec-uncovered`, `filesystem-marked`) and its `vigil status` block. The
//! program itself and its maps are in [`crate::guard`]. Marking happens on the
//! main loop, which owns the marks; the reader thread only asks for it.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use aya::maps::{MapData, RingBuf};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use vigil_policy::{Config, GuardMode};

use crate::daemon::events::EventLog;
use crate::daemon::marks::{MarkSource, Marks, path_to_superblock};
use crate::engine::generation::load_config;
use crate::fanotify::Group;
use crate::guard::abi::{self, Event, Reason};
use crate::guard::kernel::mounted_superblocks;
use crate::guard::{Guard, GuardError, Loaded, Settings};
use crate::protocol::GuardInfo;

/// A request from the reader thread: mark the superblock `dev` (user-space
/// `st_dev`) that process `pid` executed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkRequest {
    /// The process that executed (its mount namespace has the mount).
    pub pid: u32,
    /// Its parent, tried when the process is gone.
    pub ppid: u32,
    /// Its mount namespace, searched for in `/proc` when both are gone.
    pub mnt_ns: u32,
    /// The superblock.
    pub dev: u64,
}

/// The most superblocks recorded as known at start (the map holds 4096; the
/// rest stays for marks placed later).
const KNOWN_MAX: usize = 3072;
/// A superblock already asked for is not asked for again within this time.
const ASK_AGAIN: Duration = Duration::from_secs(1);

/// The guard as the daemon holds it.
pub struct GuardState {
    guard: Option<Guard>,
    /// Why there is no guard, when there is none.
    reason: Option<(String, String)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Superblocks recorded as [`abi::COVER_MARKED`].
    marked: HashSet<u32>,
}

/// The superblocks to seed `covered` with: every marked one
/// ([`abi::COVER_MARKED`]; a btrfs subvolume's `st_dev` differs from its
/// superblock's, so mount points with a marked `st_dev` count too), and every
/// other one mounted now ([`abi::COVER_KNOWN`]: left unmarked on purpose by the
/// configuration).
pub fn seed(marks: &Marks) -> Vec<(u32, u8)> {
    let marked: Vec<u64> = marks
        .list()
        .iter()
        .map(|m| m.dev)
        .filter(|d| !marks.is_guard_placed(*d))
        .collect();
    let mut out: HashMap<u32, u8> = marked
        .iter()
        .map(|&d| (abi::kernel_dev(d), abi::COVER_MARKED))
        .collect();
    for m in mounted_superblocks() {
        let k = abi::kernel_dev(m.dev);
        if out.contains_key(&k) {
            continue;
        }
        let local = crate::daemon::mountinfo::LOCAL_FSTYPES.contains(&m.fstype.as_str());
        let is_marked =
            local && std::fs::metadata(&m.mount_point).is_ok_and(|md| marked.contains(&md.dev()));
        if is_marked {
            out.insert(k, abi::COVER_MARKED);
        } else if out.len() < KNOWN_MAX {
            out.insert(k, abi::COVER_KNOWN);
        }
    }
    out.into_iter().collect()
}

/// Loads the guard's program for the configuration at `path` before the
/// daemon loads its content (see [`Loaded`]: the BTF parse's transient would
/// otherwise stack on the rules and the model). `None` when the guard is off
/// or the configuration cannot be read: the daemon's own load reports that,
/// and [`GuardState::start`] then decides from the configuration it loaded.
pub fn preload(path: Option<&Path>) -> Option<Result<Loaded, GuardError>> {
    let (config, _) = load_config(path).ok()?;
    (!config.guard.is_off(config.policy.profile)).then(Guard::load)
}

impl GuardState {
    /// Starts the guard for `config` (unless it is off), seeded from `marks`,
    /// and its reader thread. Never fails: without a guard the daemon runs as
    /// before and the reason is logged and shown by `vigil status`.
    ///
    /// `preloaded` is the program [`preload`] loaded before the content, if
    /// any; without it the program is loaded here.
    pub fn start(
        config: &Config,
        marks: &Marks,
        events: &EventLog,
        requests: mpsc::Sender<MarkRequest>,
        preloaded: Option<Result<Loaded, GuardError>>,
    ) -> GuardState {
        let mut state = GuardState {
            guard: None,
            reason: None,
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
            marked: HashSet::new(),
        };
        if config.guard.is_off(config.policy.profile) {
            state.reason = Some((
                "off".to_owned(),
                "guard.uncovered and guard.network are off".to_owned(),
            ));
            tracing::info!("exec guard off (guard.uncovered = \"off\", guard.network = \"off\")");
            return state;
        }
        let seeded = seed(marks);
        state.marked = seeded
            .iter()
            .filter(|&&(_, st)| st == abi::COVER_MARKED)
            .map(|&(dev, _)| dev)
            .collect();
        let started = Settings::resolve(config).and_then(|settings| {
            preloaded
                .unwrap_or_else(Guard::load)
                .and_then(|loaded| loaded.start(settings, &seeded))
        });
        match started {
            Ok((guard, ring)) => {
                let s = guard.settings();
                tracing::info!(
                    hook = guard.hook().map_or("none", |h| h.as_str()),
                    uncovered = s.uncovered.as_str(),
                    network = s.network.as_str(),
                    cgroup = s.cgroup_path.as_ref().map(|p| p.display().to_string()),
                    covered = guard.covered_len(),
                    "exec guard active"
                );
                let stop = Arc::clone(&state.stop);
                let events = events.clone();
                let mode = s.uncovered;
                match std::thread::Builder::new()
                    .name("vigil-guard".to_owned())
                    .spawn(move || read_reports(ring, &stop, &events, &requests, mode))
                {
                    Ok(t) => state.thread = Some(t),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the guard's reader thread; the guard stays without reports");
                    }
                }
                state.guard = Some(guard);
            }
            Err(e @ GuardError::Unavailable(_)) => {
                tracing::warn!(error = %e, "exec guard unavailable: execs from unmarked filesystems and memfds are not seen (see the exposure lines of vigil status)");
                state.reason = Some(("unavailable".to_owned(), e.to_string()));
            }
            Err(e) => {
                tracing::error!(error = %e, "exec guard failed to start: running without it");
                state.reason = Some(("failed".to_owned(), e.to_string()));
            }
        }
        state
    }

    /// Applies a reloaded configuration and records the marks now in place as
    /// covered. A guard that is not loaded stays unloaded until restart.
    pub fn reload(&mut self, config: &Config, marks: &Marks) {
        let Some(guard) = self.guard.as_mut() else {
            if !config.guard.is_off(config.policy.profile) {
                tracing::warn!(
                    "the exec guard is not loaded; a change of [guard] takes effect at restart"
                );
            }
            return;
        };
        let result = Settings::resolve(config).and_then(|s| guard.apply(s));
        if let Err(e) = result {
            tracing::error!(error = %e, "exec guard: new [guard] settings not applied; the old ones stay");
        }
        self.sync(marks);
    }

    /// Records the configured marks in `marks` as covered after a reload. A
    /// filesystem dropped from the configuration becomes known (left out on
    /// purpose, as at start); superblocks mounted since start are not made
    /// known: they stay the guard's business.
    pub fn sync(&mut self, marks: &Marks) {
        let Some(guard) = self.guard.as_mut() else {
            return;
        };
        let now: HashSet<u32> = seed(marks)
            .into_iter()
            .filter(|&(_, state)| state == abi::COVER_MARKED)
            .map(|(dev, _)| dev)
            .collect();
        let updates = now
            .iter()
            .map(|&d| (d, abi::COVER_MARKED))
            .chain(self.marked.difference(&now).map(|&d| (d, abi::COVER_KNOWN)));
        for (dev, state) in updates {
            if let Err(e) = guard.cover(dev, state) {
                tracing::warn!(error = %e, "exec guard: cannot record a covered filesystem");
            }
        }
        self.marked = now;
    }

    /// Marks the filesystem of `req` (found through the process's mount
    /// namespace) and records it as covered; logs a `filesystem-marked` line.
    pub fn mark(&mut self, req: MarkRequest, group: &Group, marks: &mut Marks, events: &EventLog) {
        let Some(guard) = self.guard.as_mut() else {
            return;
        };
        if marks.list().iter().any(|m| m.dev == req.dev) {
            // Marked already (an earlier request, or the mark set) but the
            // program still reported it: the superblock is new under an old
            // device number. Mark it again through the new mount.
            tracing::debug!(dev = %dev_text(req.dev), "re-marking a reported superblock");
        }
        let Some(path) = find_mount(&req) else {
            tracing::warn!(pid = req.pid, dev = %dev_text(req.dev),
                "exec guard: the reported filesystem is no longer mounted where the process saw it; not marked");
            events.emit_json(marked_event(
                req,
                None,
                Some("no mount of it found in the process's mount namespace"),
            ));
            return;
        };
        match marks.add_path(group, &path, req.dev, MarkSource::Guard) {
            Ok(_) => {
                if let Err(e) = guard.cover(abi::kernel_dev(req.dev), abi::COVER_RUNTIME) {
                    tracing::warn!(error = %e, "exec guard: marked, but the covered map refused it");
                }
                tracing::info!(path = %path.display(), dev = %dev_text(req.dev), "exec guard: filesystem marked");
                events.emit_json(marked_event(req, Some(&path.display().to_string()), None));
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "exec guard: cannot mark the reported filesystem");
                events.emit_json(marked_event(
                    req,
                    Some(&path.display().to_string()),
                    Some(&e.to_string()),
                ));
            }
        }
    }

    /// Records superblock `dev`, just marked by the mount watcher, as covered.
    pub fn covered(&mut self, dev: u64) {
        let Some(guard) = self.guard.as_mut() else {
            return;
        };
        if let Err(e) = guard.cover(abi::kernel_dev(dev), abi::COVER_RUNTIME) {
            tracing::warn!(error = %e, "exec guard: cannot record a covered filesystem");
        }
    }

    /// What the guard does for the exposure lines: `None` when it is not
    /// loaded, or scoped to a cgroup (it does not cover the machine).
    pub fn cover(&self) -> Option<crate::daemon::exposure::GuardCover> {
        use crate::daemon::exposure::GuardCover;
        let settings = self.guard.as_ref()?.settings();
        if settings.cgroup_path.is_some() {
            return None;
        }
        match settings.uncovered {
            vigil_policy::GuardMode::Deny => Some(GuardCover::Deny),
            vigil_policy::GuardMode::Audit => Some(GuardCover::Audit),
            vigil_policy::GuardMode::Off => None,
        }
    }

    /// The `vigil status` block.
    pub fn info(&self, config: &Config) -> GuardInfo {
        let uncovered = config.guard.uncovered_for(config.policy.profile);
        match &self.guard {
            Some(g) => GuardInfo {
                state: "active".to_owned(),
                reason: None,
                hook: g.hook().map(|h| h.as_str().to_owned()),
                uncovered: g.settings().uncovered.as_str().to_owned(),
                network: g.settings().network.as_str().to_owned(),
                cgroup: g
                    .settings()
                    .cgroup_path
                    .as_ref()
                    .map(|p| p.display().to_string()),
                covered: g.covered_len(),
                counters: g
                    .counters()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            },
            None => {
                let (state, reason) = self
                    .reason
                    .clone()
                    .unwrap_or_else(|| ("off".to_owned(), String::new()));
                GuardInfo {
                    state,
                    reason: Some(reason),
                    hook: None,
                    uncovered: uncovered.as_str().to_owned(),
                    network: config.guard.network.as_str().to_owned(),
                    cgroup: config
                        .guard
                        .cgroup
                        .as_ref()
                        .map(|p| p.display().to_string()),
                    covered: 0,
                    counters: Default::default(),
                }
            }
        }
    }

    /// Stops the reader thread and detaches the program (shutdown).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        drop(self.guard.take());
    }
}

/// A path to the reported superblock: through the process, its parent, or
/// any process in the same mount namespace (a refused exec's child is usually
/// gone by the time the report is read).
fn find_mount(req: &MarkRequest) -> Option<std::path::PathBuf> {
    let reach = |pid: u32| {
        i32::try_from(pid)
            .ok()
            .and_then(|p| path_to_superblock(p, req.dev))
    };
    if let Some(p) = reach(req.pid) {
        return Some(p);
    }
    if req.ppid != 0
        && mnt_ns_of(req.ppid) == Some(req.mnt_ns)
        && let Some(p) = reach(req.ppid)
    {
        return Some(p);
    }
    if req.mnt_ns == 0 {
        return None;
    }
    let dir = std::fs::read_dir("/proc").ok()?;
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| mnt_ns_of(pid) == Some(req.mnt_ns))
        .find_map(reach)
}

fn mnt_ns_of(pid: u32) -> Option<u32> {
    let md = std::fs::metadata(format!("/proc/{pid}/ns/mnt")).ok()?;
    u32::try_from(md.ino()).ok()
}

fn dev_text(dev: u64) -> String {
    format!("{}:{}", nix::libc::major(dev), nix::libc::minor(dev))
}

/// Reads reports until `stop`: logs each, and asks the main loop to mark the
/// filesystem of each uncovered one (at most once per [`ASK_AGAIN`]).
fn read_reports(
    mut ring: RingBuf<MapData>,
    stop: &AtomicBool,
    events: &EventLog,
    requests: &mpsc::Sender<MarkRequest>,
    mode: GuardMode,
) {
    let mut asked: HashMap<u32, Instant> = HashMap::new();
    while !stop.load(Ordering::Acquire) {
        {
            // SAFETY: the fd belongs to `ring`, which outlives this borrow (it
            // ends with this block, before `ring` is used mutably).
            let fd = unsafe { BorrowedFd::borrow_raw(ring.as_raw_fd()) };
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(200u16)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(errno) => {
                    tracing::error!(%errno, "exec guard: poll on the ring buffer failed; reports stop");
                    return;
                }
            }
        }
        while let Some(item) = ring.next() {
            let Some(event) = Event::parse(&item) else {
                tracing::warn!(len = item.len(), "exec guard: malformed report skipped");
                continue;
            };
            drop(item);
            log_report(&event, mode);
            events.emit_json(exec_event(&event));
            if event.reason == Reason::Uncovered {
                let now = Instant::now();
                let recent = asked
                    .get(&event.dev)
                    .is_some_and(|t| now.duration_since(*t) < ASK_AGAIN);
                if !recent {
                    asked.insert(event.dev, now);
                    let _ = requests.try_send(MarkRequest {
                        pid: event.pid,
                        ppid: event.ppid,
                        mnt_ns: event.mnt_ns,
                        dev: abi::user_dev(event.dev),
                    });
                }
                asked.retain(|_, t| now.duration_since(*t) < ASK_AGAIN);
            }
        }
    }
}

fn log_report(e: &Event, mode: GuardMode) {
    let dev = dev_text(abi::user_dev(e.dev));
    let verdict = if e.denied {
        "refused"
    } else {
        "allowed (audit)"
    };
    tracing::warn!(
        pid = e.pid,
        uid = e.uid,
        comm = %e.comm,
        file = %e.name,
        filesystem = %e.fstype,
        dev = %dev,
        reason = e.reason.as_str(),
        mode = mode.as_str(),
        "exec guard: exec from a filesystem no vigil mark covers {verdict}"
    );
}

/// The `exec-uncovered` event line.
pub fn exec_event(e: &Event) -> Value {
    let dev = dev_text(abi::user_dev(e.dev));
    let why = match e.reason {
        Reason::Uncovered => format!(
            "{} filesystem {dev} ({}) has no vigil mark yet",
            e.fstype, e.s_id
        ),
        Reason::Internal => format!(
            "{} is in memory ({} {dev}, e.g. memfd_create): no mark can cover it",
            e.name, e.fstype
        ),
        Reason::Network => format!(
            "{} filesystem {dev} ({}) is a network or FUSE filesystem vigil does not scan",
            e.fstype, e.s_id
        ),
    };
    let outcome = if e.denied { "denied" } else { "allowed" };
    let key = match e.reason {
        Reason::Network => "guard.network",
        Reason::Uncovered | Reason::Internal => "guard.uncovered",
    };
    let setting = format!("{key} = {}", if e.denied { "deny" } else { "audit" });
    json!({
        "@timestamp": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        "event": {
            "kind": if e.denied { "alert" } else { "event" },
            "category": ["process"],
            "type": ["start", if e.denied { "denied" } else { "allowed" }],
            "action": "exec-uncovered",
            "outcome": outcome,
            "reason": why,
        },
        "file": {"name": e.name, "inode": e.ino.to_string(), "device": dev},
        "process": {
            "pid": e.pid,
            "thread": {"id": e.tid},
            "name": e.comm,
        },
        "user": {"id": e.uid.to_string()},
        "vigil": {
            "guard": {
                "reason": e.reason.as_str(),
                "setting": setting,
                "hook": e.hook.as_str(),
                "filesystem": {
                    "type": e.fstype,
                    "id": e.s_id,
                    "device": dev,
                    "magic": format!("{:#x}", e.magic),
                },
                "caller": {
                    "device": dev_text(abi::user_dev(e.exe_dev)),
                    "inode": e.exe_ino.to_string(),
                },
                "cgroup_id": e.cgroup_id,
            },
        },
    })
}

fn marked_event(req: MarkRequest, path: Option<&str>, error: Option<&str>) -> Value {
    json!({
        "@timestamp": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        "event": {
            "kind": "event",
            "category": ["configuration"],
            "action": "filesystem-marked",
            "outcome": if error.is_some() { "failure" } else { "success" },
        },
        "error": error.map(|m| json!({"message": m})),
        "process": {"pid": req.pid},
        "vigil": {"guard": {"filesystem": {"device": dev_text(req.dev), "path": path}}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_records_what_is_mounted_now_as_known() {
        let seeded: HashMap<u32, u8> = seed(&Marks::default()).into_iter().collect();
        let root = abi::kernel_dev(std::fs::metadata("/").unwrap().dev());
        assert_eq!(seeded.get(&root), Some(&abi::COVER_KNOWN), "{seeded:?}");
        assert!(seeded.values().all(|&s| s == abi::COVER_KNOWN));
    }

    #[test]
    fn exec_event_names_the_filesystem() {
        let e = Event {
            ino: 5,
            magic: 0x0102_1994,
            exe_ino: 9,
            cgroup_id: 1,
            pid: 10,
            tid: 10,
            uid: 65534,
            dev: 44,
            exe_dev: 1 << 20,
            denied: true,
            reason: Reason::Uncovered,
            hook: abi::Hook::Lsm,
            fstype: "tmpfs".into(),
            s_id: "tmpfs".into(),
            name: "x".into(),
            comm: "sh".into(),
            ppid: 9,
            mnt_ns: 4026532000,
        };
        let v = exec_event(&e);
        assert_eq!(v["event"]["outcome"], "denied");
        assert_eq!(v["event"]["kind"], "alert");
        assert_eq!(v["vigil"]["guard"]["filesystem"]["device"], "0:44");
        assert_eq!(v["vigil"]["guard"]["setting"], "guard.uncovered = deny");
        assert_eq!(
            v["event"]["reason"],
            "tmpfs filesystem 0:44 (tmpfs) has no vigil mark yet"
        );
    }
}
