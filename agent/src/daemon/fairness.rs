//! Fairness per user: one uid's flood must not use up everyone's deadline.
//!
//! Owns the count of events each uid has waiting for a worker or being scanned,
//! while the queues are loaded, and the flood episodes (for a rate-limited event
//! line per flooding uid). The reader asks [`Fairness::admit`] before it queues
//! an event; a uid already holding `decision.flood_pending` events gets a
//! refusal, and the reader answers that uid's *opens* with `decision.on_flood`
//! at once (its execs are still scanned: they queue ahead of every open). A
//! [`Share`] rides with the queued event and gives its place back when the event
//! is dropped, after the worker is done with it. Must not own: the answer, the
//! queues, or the log writer.
//!
//! Only events queued while at least [`FAIR_FROM`] events are already waiting
//! are counted: below that no backlog exists whose deadline a flood could use
//! up, and the uid lookup (a `stat` of `/proc/<pid>`) is skipped. Root's events
//! are never refused: root can stop the daemon anyway, and system services
//! running as root keep their scans.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::respond::lock;

/// Queue depth (both queues) from which events are counted per uid.
pub const FAIR_FROM: usize = 16;
/// At most one flood event line per uid this often.
pub const EPISODE_EVERY: Duration = Duration::from_secs(60);
/// Episodes remembered before the oldest are forgotten.
const EPISODES_KEPT: usize = 1024;

/// The per-uid counts.
#[derive(Debug, Default)]
pub struct Fairness {
    pending: Mutex<HashMap<u32, u32>>,
    episodes: Mutex<HashMap<u32, Instant>>,
}

/// One counted event's place; given back on drop.
#[derive(Debug)]
pub struct Share {
    fairness: Arc<Fairness>,
    uid: u32,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut pending = lock(&self.fairness.pending);
        if let Some(n) = pending.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                pending.remove(&self.uid);
            }
        }
    }
}

/// The answer to [`Fairness::admit`].
#[derive(Debug)]
pub enum Admission {
    /// Queue it, holding this share (if counted).
    Queue(Option<Share>),
    /// `uid` holds `pending` events already: answer its opens with the flood
    /// action.
    Flooding {
        /// The flooding uid.
        uid: u32,
        /// Its events waiting.
        pending: u32,
        /// True when no flood line was written for this uid lately: the caller
        /// writes one.
        report: bool,
    },
}

impl Fairness {
    /// A table with no events counted.
    pub fn new() -> Arc<Fairness> {
        Arc::new(Fairness::default())
    }

    /// Counts one more event of `uid`, unless it already holds `bound` (never
    /// refused for root). `queued` is the current depth of the queues.
    pub fn admit(self: &Arc<Self>, uid: Option<u32>, queued: usize, bound: u32) -> Admission {
        let Some(uid) = uid.filter(|_| queued >= FAIR_FROM) else {
            return Admission::Queue(None);
        };
        let mut pending = lock(&self.pending);
        let n = pending.entry(uid).or_insert(0);
        if uid != 0 && *n >= bound {
            let count = *n;
            drop(pending);
            return Admission::Flooding {
                uid,
                pending: count,
                report: self.new_episode(uid),
            };
        }
        *n += 1;
        Admission::Queue(Some(Share {
            fairness: Arc::clone(self),
            uid,
        }))
    }

    /// Events of `uid` counted right now.
    pub fn pending_of(&self, uid: u32) -> u32 {
        lock(&self.pending).get(&uid).copied().unwrap_or(0)
    }

    fn new_episode(&self, uid: u32) -> bool {
        let now = Instant::now();
        let mut episodes = lock(&self.episodes);
        if episodes
            .get(&uid)
            .is_some_and(|last| now.duration_since(*last) < EPISODE_EVERY)
        {
            return false;
        }
        if episodes.len() >= EPISODES_KEPT {
            episodes.retain(|_, last| now.duration_since(*last) < EPISODE_EVERY);
        }
        episodes.insert(uid, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_backlog_nothing_is_counted() {
        let f = Fairness::new();
        for _ in 0..100 {
            assert!(matches!(f.admit(Some(7), 0, 2), Admission::Queue(None)));
        }
        assert_eq!(f.pending_of(7), 0);
    }

    #[test]
    fn a_uid_over_its_bound_is_refused_until_its_events_are_done() {
        let f = Fairness::new();
        let a = f.admit(Some(7), FAIR_FROM, 2);
        let b = f.admit(Some(7), FAIR_FROM, 2);
        assert_eq!(f.pending_of(7), 2);
        match f.admit(Some(7), FAIR_FROM, 2) {
            Admission::Flooding {
                uid,
                pending,
                report,
            } => assert_eq!((uid, pending, report), (7, 2, true)),
            Admission::Queue(_) => panic!("admitted over the bound"),
        }
        // Reported once per episode.
        assert!(matches!(
            f.admit(Some(7), FAIR_FROM, 2),
            Admission::Flooding { report: false, .. }
        ));
        // Another uid and root are not affected.
        assert!(matches!(
            f.admit(Some(8), FAIR_FROM, 2),
            Admission::Queue(Some(_))
        ));
        let root: Vec<_> = (0..10).map(|_| f.admit(Some(0), FAIR_FROM, 2)).collect();
        assert!(root.iter().all(|a| matches!(a, Admission::Queue(Some(_)))));
        assert_eq!(f.pending_of(0), 10);
        drop((a, b));
        assert_eq!(f.pending_of(7), 0);
        assert!(matches!(
            f.admit(Some(7), FAIR_FROM, 2),
            Admission::Queue(Some(_))
        ));
    }

    #[test]
    fn unknown_processes_are_not_counted() {
        let f = Fairness::new();
        assert!(matches!(
            f.admit(None, FAIR_FROM, 1),
            Admission::Queue(None)
        ));
    }
}
