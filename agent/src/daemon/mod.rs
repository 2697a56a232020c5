//! `vigil daemon`: startup, the main loop, reload and shutdown in one place.
//!
//! Owns the daemon's long-lived parts and their order: load the first generation,
//! create the group, open the persistent verdict cache, start the deadline
//! thread, the workers and the event log,
//! place the marks, register the reader, open the control socket, tell systemd
//! READY. The main loop then only handles signals and control requests; events
//! never pass through it. Shutdown reverses the order and answers every pending
//! event before exit.

pub mod after_answer;
pub mod alerts;
pub mod cache;
pub mod clamav_watch;
pub mod control;
pub mod events;
pub mod exec_gate;
pub mod exec_history;
pub mod exposure;
pub mod fairness;
pub mod guard;
pub mod herd;
pub mod ignore_marks;
pub mod inline_code;
pub mod latency;
pub mod marks;
pub mod mount_watch;
pub mod mountinfo;
pub mod pipes;
pub mod pool;
pub mod priority;
pub mod reader;
pub mod respond;
pub mod sd_notify;
pub mod stats;
pub mod sysctl_hardening;
pub mod worker;
pub mod written;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use arc_swap::ArcSwap;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use vigil_policy::{Action, FailMode, Mode};

use crate::daemon::alerts::Alerts;
use crate::daemon::cache::VerdictCache;
use crate::daemon::cache::persistent::Persistent;
use crate::daemon::events::EventLog;
use crate::daemon::fairness::Fairness;
use crate::daemon::guard::{GuardState, MarkRequest};
use crate::daemon::herd::Waiting;
use crate::daemon::ignore_marks::IgnoreMarks;
use crate::daemon::marks::Marks;
use crate::daemon::mount_watch::MountWatch;
use crate::daemon::pool::{Context, Pool};
use crate::daemon::reader::Reader;
use crate::daemon::respond::Deadlines;
use crate::daemon::respond::{AccessKind, Pending, lock};
use crate::daemon::sd_notify::{notify, watchdog_tick, watchdog_timer};
use crate::daemon::stats::Stats;
use crate::daemon::sysctl_hardening::Hardening;
use crate::engine::generation::{Generation, mode_str};
use crate::engine::scan;
use crate::fanotify::{Group, sys};
use crate::guard::{GuardError, Loaded};
use crate::logging;
use crate::protocol::{MarkInfo, Reply, StatsReport, Status};
use crate::quarantine::Quarantiner;
use crate::quarantine::{Outcome, RequestError};
use control::{Call, Command};

/// Longest a shutdown waits for pending events beyond the largest deadline.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Upper bound on worker threads when `scan.workers = 0`.
const AUTO_WORKERS_MAX: usize = 16;

/// Runs the daemon until SIGTERM/SIGINT. Returns after every pending event was
/// answered and the marks were removed.
///
/// # Errors
/// Not root, an invalid configuration, or the kernel refusing fanotify or a
/// required mark.
pub fn run(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("vigil daemon must run as root (fanotify permission events need CAP_SYS_ADMIN)");
    }
    // The exec guard's program before the content: its BTF parse's transient
    // (~25 MiB) and the loaded rules and model never add up in the peak.
    let guard = guard::preload(config_path.as_deref());
    let first = Generation::load_in_daemon(1, config_path.as_deref())
        .context("loading the configuration")?;
    logging::init(&first.config.log.level);
    first.log_warnings();
    raise_fd_limit();
    // Before any thread starts: those that answer the kernel inherit it.
    priority::boost(first.config.daemon.nice);
    start_rule_clock(&first);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("vigil-main")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(first, config_path, guard))
}

async fn serve(
    first: Generation,
    config_path: Option<PathBuf>,
    preloaded: Option<Result<Loaded, GuardError>>,
) -> anyhow::Result<()> {
    let group = Group::new()
        .context("fanotify_init (needs CAP_SYS_ADMIN and a kernel with permission events)")?;
    let stats = Arc::new(Stats::default());
    let (events, events_thread) =
        EventLog::start(&first.config.log, Arc::clone(&stats)).context("opening the event log")?;
    let socket_path = first.config.daemon.socket.clone();
    let workers = match first.config.scan.workers {
        0 => std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(AUTO_WORKERS_MAX),
        n => n,
    };
    let queue_capacity = first.config.scan.queue_capacity;
    let cache = VerdictCache::new(first.config.scan.cache_capacity);
    // Before the marks: the first events can already be answered from it.
    let (persistent, persistent_writer) =
        Persistent::start(&first.config.cache, Arc::clone(&stats));
    let generation = Arc::new(ArcSwap::from_pointee(first));

    // Before anything that answers: the deadline thread and the workers hand
    // it their writes while many openers wait.
    let waiting = Waiting::new();
    let herd_thread = waiting
        .start_writer(group.clone(), Arc::clone(&stats))
        .context("starting the herd writer")?;
    let gen_for_deadline = Arc::clone(&generation);
    let stats_for_deadline = Arc::clone(&stats);
    let (deadlines, deadline_thread) = Deadlines::start(
        group.clone(),
        Arc::new(move |pending: &Pending| {
            timeout_answer(pending, &gen_for_deadline.load(), &stats_for_deadline)
        }),
        Arc::clone(&stats),
    )
    .context("starting the deadline thread")?;
    let alerts = Arc::new(Alerts::new(Arc::clone(&stats)));
    let (quarantiner, quarantine_thread) = Quarantiner::start(
        Arc::clone(&generation),
        events.clone(),
        Arc::clone(&alerts),
        Arc::clone(&stats),
    )
    .context("starting the quarantine thread")?;
    let history = Arc::new(crate::daemon::exec_history::ExecHistory::default());
    let ctx = Arc::new(Context {
        group: group.clone(),
        generation: Arc::clone(&generation),
        cache: Arc::clone(&cache),
        persistent,
        stats: Arc::clone(&stats),
        events: events.clone(),
        marks: IgnoreMarks::start(
            group.clone(),
            Arc::clone(&generation),
            Arc::clone(&cache),
            Arc::clone(&stats),
        )
        .context("starting the ignore-mark thread")?,
        quarantine: quarantiner.clone(),
        alerts: Arc::clone(&alerts),
        history: Arc::clone(&history),
        pipes: pipes::Pipes::default(),
        inline: inline_code::InlineCode::start(
            Arc::clone(&generation),
            events.clone(),
            Arc::clone(&alerts),
            Arc::clone(&stats),
        )
        .context("starting the inline-code thread")?,
    });
    let pool =
        Pool::start(workers, queue_capacity, Arc::clone(&ctx)).context("starting workers")?;
    let afd = sys::register(group.handle()).context("registering fanotify with the reactor")?;
    let queue = pool.sender();
    let (written, written_thread) = written::Written::start(Arc::clone(&ctx), pool.sender())
        .context("starting the write-scan thread")?;
    let reader = Reader::new(
        afd,
        Arc::clone(&ctx),
        pool.sender(),
        Arc::clone(&deadlines),
        Arc::clone(&waiting),
        Fairness::new(),
        written,
    );

    // The socket first: a second daemon stops here, before it touches any mark.
    let (calls_tx, mut calls) = mpsc::channel::<Call>(16);
    let control_task = control::serve(&socket_path, calls_tx, Arc::clone(&alerts))
        .context("opening the control socket")?;
    let marks =
        Marks::apply(&group, &generation.load().config).context("placing fanotify marks")?;
    if marks.list().is_empty() && !marks::watches_new_mounts(&generation.load().config) {
        tracing::warn!(
            "no filesystem or mount is watched: check watch.filesystems and watch.mounts"
        );
    }
    for m in marks.list() {
        tracing::info!(path = %m.path.display(), kind = m.kind.as_str(), "watching");
    }
    let marks = Arc::new(Mutex::new(marks));
    let hardening = Hardening::start(&generation.load().config, &events);
    let (marked_tx, mut marked_rx) = mpsc::unbounded_channel::<u64>();
    let mount_watch = MountWatch::start(
        group.clone(),
        Arc::clone(&marks),
        Arc::clone(&generation),
        events.clone(),
        marked_tx,
    )
    .context("starting the mount watcher")?;
    // The guard after the marks (the mount watcher's first pass included): it
    // starts with every marked superblock covered.
    let (guard_tx, mut guard_rx) = mpsc::channel::<MarkRequest>(64);
    let mut guard = GuardState::start(
        &generation.load().config,
        &lock(&marks),
        &events,
        guard_tx,
        preloaded,
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut reader_task = tokio::spawn(async move {
        let result = reader.run(stop_rx).await;
        (reader, result)
    });
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    // After the SIGHUP handler: the watcher reloads by sending SIGHUP.
    clamav_watch::start(Arc::clone(&generation));

    let started = Instant::now();
    let summary = generation.load().summary();
    tracing::info!(workers, queue_capacity, %summary, "ready");
    let coverage = coverage(&generation.load(), &mount_watch, &guard);
    for e in exposure::exposures(&exposure::Kernel::read(), &coverage)
        .iter()
        .filter(|e| e.is_open())
    {
        tracing::warn!(exposure = %e.id, close = %e.close, "not covered: {}", e.what);
    }
    notify(&format!("READY=1\nSTATUS={summary}"));
    release_load_memory();
    // WATCHDOG=1 from this loop, which shares its thread with the reader: if either
    // stops turning, systemd (WatchdogSec=) kills and restarts the daemon.
    let mut watchdog = watchdog_timer();

    let reader_result = loop {
        tokio::select! {
            () = watchdog_tick(&mut watchdog) => notify("WATCHDOG=1"),
            Some(req) = guard_rx.recv() => guard.mark(req, &group, &mut lock(&marks), &events),
            Some(dev) = marked_rx.recv() => guard.covered(dev),
            _ = sigterm.recv() => break None,
            _ = sigint.recv() => break None,
            _ = sighup.recv() => {
                if let Err(e) = reload(&group, &generation, &marks, &mut guard, &cache, &stats, &events, config_path.as_deref()).await {
                    tracing::error!(error = %e, "reload rejected; the running configuration stays");
                }
            }
            Some(call) = calls.recv() => {
                let reply = match call.command {
                    Command::Reload => match reload(&group, &generation, &marks, &mut guard, &cache, &stats, &events, config_path.as_deref()).await {
                        Ok(g) => Reply::Reloaded { generation: g.id, summary: g.summary() },
                        Err(e) => {
                            tracing::error!(error = %e, "reload rejected; the running configuration stays");
                            Reply::failed(format!("{e:#}"))
                        }
                    },
                    Command::Status => Reply::Status {
                        status: Box::new(Status {
                            persistent_cache: Some(ctx.persistent.info(&generation.load())),
                            ..status(&generation.load(), &marks, &mount_watch, &guard, &stats, &cache, started, &waiting)
                        }),
                    },
                    Command::Stats => Reply::Stats {
                        stats: StatsReport {
                            uptime_s: started.elapsed().as_secs(),
                            queue_depth: queue.queued(),
                            queue_capacity,
                            pending: waiting.count(),
                            cache_entries: cache.len(),
                            counters: counters(&stats),
                            latency_us: stats.latency.summary(),
                            persistent_cache: Some(ctx.persistent.info(&generation.load())),
                        },
                    },
                    Command::ExecHistory { since_ms } => Reply::Records { records: history.since(since_ms) },
                    Command::AllowlistChanged(change) => {
                        // The list file is already edited: reload, then log the change
                        // with whether the daemon took it.
                        let result = reload(&group, &generation, &marks, &mut guard, &cache, &stats, &events, config_path.as_deref()).await;
                        let error = result.as_ref().err().map(|e| format!("{e:#}"));
                        let outcome = if error.is_some() { "failure" } else { "success" };
                        tracing::info!(file.hash.sha256 = %change.sha256, entry = %change.entry, by = %change.by, outcome, "allowlist changed");
                        events.emit_json(events::allowlist_changed_event(&change, outcome, error.as_deref(), Some(generation.load().id)));
                        match (result, error) {
                            (Ok(g), _) => Reply::Reloaded { generation: g.id, summary: g.summary() },
                            (Err(_), message) => {
                                let message = message.unwrap_or_default();
                                tracing::error!(error = %message, "reload rejected; the running configuration stays");
                                Reply::failed(message)
                            }
                        }
                    }
                    Command::HashFile { path } => {
                        // Off the main loop: a large file takes a while to read.
                        tokio::spawn(async move {
                            let shown = path.display().to_string();
                            let reply = match tokio::task::spawn_blocking(move || scan::hash_file(&path)).await {
                                Ok(Ok((sha256, size))) => Reply::Hashed { sha256: hex::encode(sha256), size },
                                Ok(Err(e)) => Reply::failed(format!("{shown}: {e}")),
                                Err(e) => Reply::failed(format!("{shown}: hashing failed: {e}")),
                            };
                            let _ = call.reply.send(reply);
                        });
                        continue;
                    }
                    Command::Quarantine(request) => {
                        // Store I/O (a restore copies a whole file) runs on the
                        // quarantine thread; the main loop does not wait for it.
                        let q = quarantiner.clone();
                        tokio::spawn(async move {
                            let _ = call.reply.send(quarantine_reply(q.request(request).await));
                        });
                        continue;
                    }
                };
                let _ = call.reply.send(reply);
            }
            joined = &mut reader_task => break Some(joined),
        }
    };

    // Shutdown: no new events, answer every pending one, then exit.
    notify("STOPPING=1");
    control_task.abort();
    let _ = std::fs::remove_file(&socket_path);
    let _ = stop_tx.send(true);
    let (reader, read_result) = match reader_result {
        Some(joined) => joined.context("reader task")?,
        None => reader_task.await.context("reader task")?,
    };
    // The guard goes before the marks: with marks gone and the guard still
    // attached, execs from filesystems it counts as marked could be refused.
    guard.stop();
    mount_watch.stop();
    lock(&marks).remove_all(&group);
    hardening.restore(&events);
    if let Err(e) = reader.drain() {
        tracing::warn!(error = %e, "draining the last events failed; the kernel allows them on exit");
    }
    let longest = generation.load().config.decision.deadline + SHUTDOWN_GRACE;
    let waited = Instant::now();
    while waiting.count() > 0 && waited.elapsed() < longest {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    deadlines.stop();
    let _ = deadline_thread.join();
    // After the deadline thread, which may have handed it the last answers.
    waiting.stop_writer();
    let _ = herd_thread.join();
    drop(reader); // ends the write-scan thread once its scan in progress is done
    drop(written_thread);
    drop(queue);
    drop(pool.close()); // stuck workers are not waited for: exit ends them
    drop(ctx);
    // The last verdicts are committed, so the next start finds them.
    if let Some(writer) = persistent_writer {
        writer.stop(Duration::from_secs(2));
    }
    // A move in progress finishes (it is crash-safe at every step anyway); queued
    // ones are dropped with the channel. Bounded like the event log below.
    drop(quarantiner);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !quarantine_thread.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(events);
    if let Some(t) = events_thread {
        // The writer ends once every EventLog clone is gone; workers may still hold
        // one, so bound the wait.
        let deadline = Instant::now() + Duration::from_secs(1);
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let left = waiting.count();
    tracing::info!(unanswered = left, "stopped");
    read_result.context("fanotify reader failed")
}

/// Builds a new generation off the hot path and swaps it in; on any error the running
/// generation and marks stay as they were.
#[allow(clippy::too_many_arguments)]
async fn reload(
    group: &Group,
    generation: &Arc<ArcSwap<Generation>>,
    marks: &Mutex<Marks>,
    guard: &mut GuardState,
    cache: &VerdictCache,
    stats: &Stats,
    events: &EventLog,
    config_path: Option<&Path>,
) -> anyhow::Result<Arc<Generation>> {
    notify("RELOADING=1");
    let result = async {
        let next_id = generation.load().id + 1;
        let path = config_path.map(Path::to_path_buf);
        let next = tokio::task::spawn_blocking(move || Generation::load_in_daemon(next_id, path.as_deref()))
            .await
            .context("reload task")??;
        next.log_warnings();
        let current = generation.load();
        if next.config.daemon.socket != current.config.daemon.socket
            || next.config.scan.workers != current.config.scan.workers
            || next.config.scan.queue_capacity != current.config.scan.queue_capacity
            || next.config.log != current.config.log
            || next.config.policy.sysctl_hardening != current.config.policy.sysctl_hardening
            || next.config.cache != current.config.cache
        {
            tracing::warn!(
                "daemon.socket, scan.workers, scan.queue_capacity, log.*, policy.sysctl_hardening and cache.* take effect at restart"
            );
        }
        {
            let mut marks = lock(marks);
            marks.update(group, &next.config)?;
            guard.reload(&next.config, &marks);
        }
        let next = Arc::new(next);
        generation.store(Arc::clone(&next));
        // Past clean answers were given under the old content: forget them.
        cache.clear();
        if let Err(errno) = group.flush_ignore_marks() {
            tracing::warn!(%errno, "could not flush ignore marks after reload");
        }
        anyhow::Ok(next)
    }
    .await;
    match &result {
        Ok(g) => {
            Stats::bump(&stats.reloads);
            events.emit_json(config_event(g, "success", None));
            tracing::info!(summary = %g.summary(), load_ms = g.load_ms as u64, "reloaded");
            notify(&format!("READY=1\nSTATUS={}", g.summary()));
            release_load_memory();
        }
        Err(e) => {
            Stats::bump(&stats.reloads_rejected);
            events.emit_json(config_event(
                &generation.load(),
                "failure",
                Some(&format!("{e:#}")),
            ));
            notify(&format!(
                "READY=1\nSTATUS={} (last reload rejected)",
                generation.load().summary()
            ));
        }
    }
    result
}

/// Starts yara-x's rule-timeout clock (a thread that ticks once a second,
/// started by the first scan given a timeout) from a thread of its own name,
/// at the daemon's priority: started from a worker, it would carry that
/// worker's name and whatever priority the worker had at that moment.
fn start_rule_clock(generation: &Generation) {
    if generation.rules.is_empty() {
        return;
    }
    let rules = generation.rules.clone();
    let timeout = generation.config.scan.rule_timeout;
    let started = std::thread::Builder::new()
        .name("vigil-ruleclock".to_owned())
        .spawn(move || {
            let _ = rules.scan(b"", timeout);
        });
    if let Ok(handle) = started {
        let _ = handle.join();
    }
}

/// Hands the memory a load freed back to the kernel (see
/// [`sys::release_free_heap`]), on a blocking thread: the reader shares this
/// thread and must not wait for the allocator's walk.
fn release_load_memory() {
    tokio::task::spawn_blocking(|| {
        let t = Instant::now();
        let released = sys::release_free_heap();
        tracing::debug!(
            released,
            us = t.elapsed().as_micros() as u64,
            "free heap returned to the kernel"
        );
    });
}

/// The event line of a reload: `event.action = "config-change"`.
fn config_event(g: &Generation, outcome: &str, error: Option<&str>) -> Value {
    json!({
        "@timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        "event": {"kind": "event", "category": ["configuration"], "action": "config-change", "outcome": outcome},
        "error": error.map(|m| json!({"message": m})),
        "vigil": {
            "generation": g.id,
            "mode": mode_str(g.config.decision.mode),
            "config": g.config_path.as_ref().map(|p| p.display().to_string()),
            "hashes": g.hashes.len(),
            "allowed": g.allow.len(),
        },
    })
}

/// What the daemon covers itself, for the exposure lines.
fn coverage(generation: &Generation, watch: &MountWatch, guard: &GuardState) -> exposure::Coverage {
    exposure::Coverage {
        new_mounts: marks::watches_new_mounts(&generation.config).then(|| watch.notify().as_str()),
        guard: guard.cover(),
    }
}

#[allow(clippy::too_many_arguments)]
fn status(
    generation: &Generation,
    marks: &Mutex<Marks>,
    watch: &MountWatch,
    guard: &GuardState,
    stats: &Stats,
    cache: &VerdictCache,
    started: Instant,
    waiting: &Waiting,
) -> Status {
    let decision = &generation.config.decision;
    Status {
        pid: std::process::id(),
        uptime_s: started.elapsed().as_secs(),
        generation: generation.id,
        mode: mode_str(decision.mode).to_owned(),
        on_timeout: decision.on_timeout.as_str().to_owned(),
        on_overflow: decision.on_overflow.as_str().to_owned(),
        deadline_ms: u64::try_from(decision.deadline.as_millis()).unwrap_or(u64::MAX),
        hashes: generation.hashes.len(),
        allowed: generation.allow.len(),
        config: generation
            .config_path
            .as_ref()
            .map(|p| p.display().to_string()),
        marks: marks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .list()
            .iter()
            .map(|m| MarkInfo {
                kind: m.kind.as_str().to_owned(),
                path: m.path.display().to_string(),
                source: m.source.as_str().to_owned(),
            })
            .collect(),
        cache_entries: cache.len(),
        pending: waiting.count(),
        counters: counters(stats),
        exposure: exposure::exposures(
            &exposure::Kernel::read(),
            &coverage(generation, watch, guard),
        ),
        guard: Some(guard.info(&generation.config)),
        updates: updates_status(&generation.config),
        clamav_hashes: generation.clamav.len(),
        persistent_cache: None,
    }
}

/// `vigil update`'s state, when updates are configured or were ever run.
fn updates_status(config: &vigil_policy::Config) -> Option<vigil_update::status::UpdateStatus> {
    let used = !config.update.sources.is_empty() || config.update.dir.exists();
    used.then(|| vigil_update::status::status(&config.update))
}

fn counters(stats: &Stats) -> BTreeMap<String, u64> {
    stats
        .snapshot()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// The wire reply of a quarantine request.
fn quarantine_reply(result: Result<Outcome, RequestError>) -> Reply {
    match result {
        Ok(Outcome::Items(items)) => Reply::Items { items },
        Ok(Outcome::Item(item)) => Reply::Item { item },
        Ok(Outcome::Restored { path, record }) => Reply::Restored {
            restored: path,
            item: record,
        },
        Ok(Outcome::Deleted(id)) => Reply::Deleted { deleted: id },
        Err(e) => Reply::failed(e.to_string()),
    }
}

/// The deadline's answer: the fail mode for the event's access kind
/// (`decision.on_timeout_exec` for execs, `decision.on_timeout`), except that a
/// timeout never allows a file on a hash list: the file is hashed first
/// (through the event fd, up to [`scan::DEADLINE_HASH_CAP`]).
fn timeout_answer(pending: &Pending, generation: &Generation, stats: &Stats) -> Action {
    let decision = &generation.config.decision;
    match decision.timeout_for(pending.access == AccessKind::Exec) {
        FailMode::Deny => return Action::Deny,
        FailMode::Allow => {}
    }
    let Some(fd) = pending.event().fd() else {
        return Action::Allow;
    };
    let listed = scan::listed(fd, generation);
    if listed.is_some() {
        Stats::bump(&stats.deadline_hashed);
    }
    if listed == Some(true) && decision.mode == Mode::Enforce {
        Stats::bump(&stats.deadline_denied_listed);
        return Action::Deny;
    }
    Action::Allow
}

/// Each in-flight event holds an fd; a busy machine needs more than the default
/// 1024. Raise the soft limit to the hard limit (a failure only risks denied events
/// under extreme load, which the kernel reports to us).
fn raise_fd_limit() {
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && let Err(errno) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(%errno, "could not raise the open-file limit");
    }
}
