//! The scheduling priority of the daemon's threads.
//!
//! Owns which threads run ahead of ordinary processes and which behind them. A
//! process that opens or runs a watched file waits on the reader, the mark
//! thread, the deadline keeper, or a worker handling an exec (and the model
//! thread its scan may start, and yara-x's rule-timeout clock, which ends a
//! scan that runs too long); a program on a new or uncovered filesystem runs
//! unscanned until the mount watcher or the exec guard's reader has marked it.
//! These run at `daemon.nice` (default -5): under a flood of hundreds of
//! blocked openers every answer wakes all of them, and a thread of ordinary
//! weight then waits its turn behind that herd while the exec it should answer
//! waits too. A worker handling an open runs at the daemon's starting value
//! instead ([`for_event`]): there the herd is the openers themselves, and
//! answering opens faster than they can run only makes each answer wake more
//! of them (16 k blocked openers of one file took up to 76 s to drain with
//! every worker at -5, under 9 s at 0). Threads nobody waits on (the event log,
//! the ClamAV database watcher, the inline-code and pipe reporters) run at the
//! starting value too, but not below 0; write-time scans and the persistent
//! cache's writer 10 above that, since they only save later work. One thread
//! is outside nice values altogether: the herd writer ([`super::herd`]) makes
//! itself `SCHED_FIFO` 1, so that a herd of woken openers cannot preempt it.
//!
//! [`boost`] runs on the main thread before any other thread starts (a new
//! thread starts with its creator's nice value); each background thread calls
//! [`lower`] first. Lowering a nice value needs `CAP_SYS_NICE` or an
//! `RLIMIT_NICE` that allows it, raising it never does: the systemd unit sets
//! `Nice=-5` and `LimitNICE=25` (nice -5), so the service needs no such
//! capability. Must not own: what the threads do.

use std::sync::OnceLock;

use crate::fanotify::sys::set_thread_nice;

/// Where a thread that answers no permission event runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// At the daemon's starting nice value, not below 0.
    Background,
    /// Ten above [`Lane::Background`]: work that only saves later work.
    Idle,
}

/// Nice values a thread may have.
const NICE_RANGE: std::ops::RangeInclusive<i32> = -20..=19;
/// How far [`Lane::Idle`] sits above [`Lane::Background`].
const IDLE_ABOVE: i32 = 10;

/// The main thread's nice value before [`boost`].
static STARTED: OnceLock<i32> = OnceLock::new();
/// The `daemon.nice` that [`boost`] set (or tried to).
static BOOSTED: OnceLock<i32> = OnceLock::new();

thread_local! {
    /// The nice value this worker thread last set, to skip repeated calls.
    static WORKER_NICE: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) };
}

/// Sets the calling (main) thread to `nice` before the daemon starts other
/// threads, so those that answer the kernel inherit it. When that is not
/// permitted the daemon runs on at its current value and says so once.
pub fn boost(nice: i32) {
    let now = current_nice().unwrap_or(0);
    let _ = STARTED.set(now);
    let _ = BOOSTED.set(nice);
    if now == nice {
        return;
    }
    if let Err(e) = set_thread_nice(nice) {
        tracing::warn!(
            error = %e,
            wanted = nice,
            running = now,
            "cannot set the nice value of the threads that answer the kernel \
             (daemon.nice); they run at the daemon's own: give the service \
             CAP_SYS_NICE, or set Nice= and LimitNICE= in its unit"
        );
    }
}

/// Moves the calling thread to `lane`. Raising a nice value is always
/// permitted; a failure leaves the thread where it was. Outside the daemon
/// (no [`boost`]), lanes count from the thread's own value, so a command run
/// under `nice` stays as niced as it was.
pub fn lower(lane: Lane) {
    let Some(started) = STARTED.get().copied().or_else(current_nice) else {
        return;
    };
    let _ = set_thread_nice(lane_nice(started, lane));
}

/// Sets the calling worker's nice value for the event it takes next: the
/// boosted value when `exec` (an exec, or any event of the exec-only worker),
/// [`Lane::Background`] otherwise. One system call
/// when the kind changes, none otherwise. Going back down to the boosted value
/// needs `CAP_SYS_NICE` or an `RLIMIT_NICE` that allows it (the unit's
/// `LimitNICE=`); without either the worker stays where it is.
pub fn for_event(exec: bool) {
    let Some(&boosted) = BOOSTED.get() else {
        return; // not the daemon
    };
    let target = if exec {
        boosted
    } else {
        lane_nice(*STARTED.get().unwrap_or(&0), Lane::Background).max(boosted)
    };
    WORKER_NICE.with(|current| {
        // Remembered even when refused: a refusal is retried at the next
        // change of kind, not on every event.
        if current.replace(Some(target)) != Some(target) {
            let _ = set_thread_nice(target);
        }
    });
}

/// The nice value of `lane` for a daemon started at `started`.
fn lane_nice(started: i32, lane: Lane) -> i32 {
    let background = started.max(0);
    match lane {
        Lane::Background => background,
        Lane::Idle => (background + IDLE_ABOVE).min(*NICE_RANGE.end()),
    }
}

/// The calling thread's nice value, from `/proc/thread-self/stat`.
fn current_nice() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    nice_of_stat(&stat)
}

/// Field 19 (`nice`) of a `stat` line; the command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself.
fn nice_of_stat(stat: &str) -> Option<i32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // The fields after the name start with field 3 (state).
    after_name.split_whitespace().nth(19 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nice_field_is_read_past_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (vigil (x) y) S 1 4242 4242 0 -1 4194560 345 0 0 0 \
                    12 3 0 0 15 -5 7 0 123456 1000000 500 18446744073709551615";
        assert_eq!(nice_of_stat(stat), Some(-5));
        assert_eq!(nice_of_stat("4242 (vigil) S 1"), None);
        assert_eq!(nice_of_stat("no name here"), None);
    }

    #[test]
    fn background_lanes_never_run_ahead_of_ordinary_processes() {
        assert_eq!(lane_nice(-5, Lane::Background), 0);
        assert_eq!(lane_nice(-5, Lane::Idle), 10);
        assert_eq!(lane_nice(0, Lane::Idle), 10);
        assert_eq!(lane_nice(4, Lane::Background), 4);
        assert_eq!(lane_nice(15, Lane::Idle), 19);
    }

    #[test]
    fn this_threads_nice_value_is_readable_and_can_be_raised() {
        // In a thread of its own: the test harness's threads keep theirs.
        std::thread::spawn(|| {
            let before = current_nice().expect("/proc/thread-self/stat");
            assert!(NICE_RANGE.contains(&before));
            let higher = (before + 1).min(*NICE_RANGE.end());
            set_thread_nice(higher).expect("raising needs no privilege");
            assert_eq!(current_nice(), Some(higher));
        })
        .join()
        .expect("thread");
    }
}
