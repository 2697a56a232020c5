//! Counters of what the daemon did, with stable names (they appear in `status`).
//!
//! Owns only atomics; everyone increments, nobody blocks. Relaxed ordering: these
//! are statistics, not synchronisation.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::daemon::latency::Latency;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Monotonic event counters, shared by every thread of the daemon.
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)*
            /// Per-stage latency histograms (`vigil stats`).
            pub latency: Latency,
        }

        impl Stats {
            /// Every counter with its stable name, for `status` output.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// `FAN_OPEN_EXEC_PERM` events read.
    events_exec,
    /// `FAN_OPEN_PERM` events read.
    events_open,
    /// Events from the daemon's own pid, allowed at once.
    allowed_self,
    /// Events from excluded processes or paths, allowed unscanned.
    allowed_excluded,
    /// Events on non-regular files (FIFOs, devices, sockets), allowed unread.
    allowed_not_regular,
    /// Opens allowed without a scan because the content is not executable.
    allowed_not_executable,
    /// Of `allowed_not_executable`, the opens the reader answered itself (few
    /// events waiting), with no hand-off to a worker.
    reader_allowed_not_executable,
    /// Opens of text files by a script interpreter (`watch.interpreters`),
    /// scanned as scripts although they have no `#!` line.
    interpreter_opens,
    /// Files above `scan.max_file_size`, allowed unscanned.
    allowed_too_large,
    /// Events answered from the verdict cache by a worker.
    cache_hits,
    /// Events whose verdict the reader found cached: denied at once, or (clean)
    /// queued ahead of every open that needs a scan.
    reader_cache_hits,
    /// Opens of a flooding uid answered with `decision.on_flood` unscanned.
    flood_answered,
    /// Flood episodes reported (one event line per uid per minute at most).
    flood_episodes,
    /// Events about to be allowed by their deadline whose file was hashed
    /// first, against the hash lists.
    deadline_hashed,
    /// Events a deadline would have allowed that were denied instead: their
    /// hash is on a list.
    deadline_denied_listed,
    /// Events that waited for a scan of the same file already in progress.
    cache_coalesced,
    /// Files read and scanned.
    scans,
    /// Scans that failed (read error); answered with allow.
    scan_errors,
    /// Scans that found something (malicious or suspicious).
    detections,
    /// Scans whose verdict was malicious.
    verdicts_malicious,
    /// Scans whose verdict was suspicious.
    verdicts_suspicious,
    /// Events answered with deny.
    denied,
    /// Events answered by their deadline instead of their verdict.
    deadline_expired,
    /// Events answered with the overflow action because the worker queue was full.
    queue_full,
    /// `FAN_Q_OVERFLOW` notifications from the kernel.
    kernel_overflows,
    /// Answers written by the herd writer because many openers were waiting
    /// (see `daemon::herd`).
    herd_answers,
    /// Times the herd writer woke to write what had been handed to it.
    herd_batches,
    /// Kernel ignore marks added after a clean verdict.
    ignore_marks_added,
    /// Open ignore marks a worker placed before answering a clean exec, so
    /// the open check that follows the exec raised no event.
    ignore_marks_before_answer,
    /// Verdict cache entries dropped because the file's ignore mark landed
    /// (the kernel answers for the file until it changes).
    cache_forgotten_marked,
    /// Ignore marks the kernel refused (limit reached or unsupported).
    ignore_mark_errors,
    /// Data files answered unscanned during a burst of opens whose ignore
    /// mark waits for their second open (most are opened once).
    ignore_marks_deferred,
    /// Ignore marks not added: the file changed or a reload came after its scan,
    /// or the mark thread's queue was full.
    ignore_marks_skipped,
    /// Responses the kernel refused (other than "already answered").
    response_errors,
    /// JSON event records dropped because the log writer was behind.
    events_dropped,
    /// Reloads that produced a new generation.
    reloads,
    /// Reloads rejected (the running generation stayed).
    reloads_rejected,
    /// Files moved into the quarantine store.
    quarantined,
    /// Quarantines that failed or were refused (the file stays in place, denied).
    quarantine_failed,
    /// Quarantine jobs dropped because the quarantine queue was full.
    quarantine_dropped,
    /// Items restored from quarantine.
    restored,
    /// Alerts not delivered to a subscriber that did not keep up.
    alerts_dropped,
    /// Execs denied by an exec rule (`deny`, or `trusted-only` on an untrusted file).
    exec_rule_denied,
    /// Execs a `trusted-only` rule allowed because the file is in the trust store.
    exec_trusted,
    /// Execs a `trusted-only` rule allowed as part of a package upgrade.
    exec_upgrade_allowed,
    /// Scans that skipped rules, heuristics and model for a trusted file.
    scans_trusted,
    /// Scans that stopped after hashing: the hash is on an allow list.
    scans_allowlisted,
    /// Scans that stopped after hashing: the same content was judged before
    /// under this generation (a chmod, a copy, a reinstall).
    scans_known_content,
    /// `FAN_CLOSE_WRITE` events read (`scan.scan_on_write`).
    written_events,
    /// Written files scanned in the background (executable content not yet
    /// in the cache).
    written_scanned,
    /// Written files not scanned because the write-scan queue was full.
    written_dropped,
    /// Written files not scanned because permission events kept the workers
    /// busy.
    written_deferred,
    /// Written files whose exec or open came while the background scan still
    /// ran, and which that event's worker scanned itself rather than wait
    /// behind it.
    written_overtaken,
    /// Interpreter command lines whose inline code (`sh -c`, `python3 -c`,
    /// `perl -e`, ...) was scanned (`scan.inline_code`).
    inline_scanned,
    /// Interpreter execs not looked at because the inline-code queue was full.
    inline_dropped,
    /// Inline code found malicious or suspicious.
    inline_detected,
    /// Processes killed for malicious inline code (enforce mode).
    inline_killed,
    /// Verdicts found in the persistent cache (`cache.persistent`) after a miss
    /// in memory: the file was not read.
    persistent_hits,
    /// Lookups in the persistent cache that found no entry for the file version.
    persistent_misses,
    /// Lookups that found an entry judged under other content (another content
    /// id): ignored, the file is scanned.
    persistent_stale,
    /// Files on filesystems without a stable identity (tmpfs, overlayfs, a zero
    /// UUID, …): cached in memory only.
    persistent_unkeyed,
    /// Verdicts written to the persistent cache (committed).
    persistent_writes,
    /// Verdicts not written because the writer's queue was full.
    persistent_dropped,
    /// Entries removed from the persistent cache to stay within
    /// `cache.max_entries`.
    persistent_evictions,
    /// Failed reads, decodes or commits of the persistent cache.
    persistent_errors,
}

impl Stats {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
