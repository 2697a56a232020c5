//! Per-stage latency histograms for `vigil stats`: hash, rules, heuristics, model,
//! total, and how long execs and opens waited for a worker.
//!
//! Owns fixed arrays of atomic bucket counters; workers add, `stats` reads, nobody
//! locks or allocates. Buckets are log-linear in microseconds: exact below 16 µs,
//! then 8 buckets per power of two, so a percentile read from them is at most 12.5 %
//! above the true value (it reports the bucket's upper bound, never below).
//! Recording is one `fetch_add` per bucket, count and sum (Relaxed): statistics,
//! not synchronisation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::collections::BTreeMap;

use crate::protocol::LatencySummary;

/// Values below this many microseconds get a bucket each.
const LINEAR: u64 = 16;
/// Sub-buckets per power of two above [`LINEAR`] (as bits).
const SUB_BITS: u32 = 3;
/// Buckets needed to cover every `u64` value.
const BUCKETS: usize = LINEAR as usize + (64 - 4) * (1 << SUB_BITS);

/// The timed parts of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timed {
    /// Reading the file and hashing it, plus the hash lookups.
    Hash,
    /// YARA rules.
    Rules,
    /// ELF and script heuristics.
    Heuristics,
    /// The model stage: feature extraction and inference (ELF files only).
    Model,
    /// From the event's arrival to the verdict's answer (scans and cache hits).
    Total,
    /// From an exec event's arrival until a worker took it.
    QueuedExec,
    /// From an open event's arrival until a worker took it.
    QueuedOpen,
}

impl Timed {
    /// Every slot, in report order.
    pub const ALL: [Timed; 7] = [
        Timed::Hash,
        Timed::Rules,
        Timed::Heuristics,
        Timed::Model,
        Timed::Total,
        Timed::QueuedExec,
        Timed::QueuedOpen,
    ];

    /// Stable name, as in `vigil stats --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Timed::Hash => "hash",
            Timed::Rules => "rules",
            Timed::Heuristics => "heuristics",
            Timed::Model => "model",
            Timed::Total => "total",
            Timed::QueuedExec => "queued_exec",
            Timed::QueuedOpen => "queued_open",
        }
    }

    fn index(self) -> usize {
        match self {
            Timed::Hash => 0,
            Timed::Rules => 1,
            Timed::Heuristics => 2,
            Timed::Model => 3,
            Timed::Total => 4,
            Timed::QueuedExec => 5,
            Timed::QueuedOpen => 6,
        }
    }
}

/// How long each stage of one scan took (a stage that did not run stays `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Read + hash + lookups.
    pub hash: Option<Duration>,
    /// Heuristics.
    pub heuristics: Option<Duration>,
    /// Rules.
    pub rules: Option<Duration>,
    /// Feature extraction and model inference.
    pub model: Option<Duration>,
}

/// One histogram.
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros(); // ≥ 4
    let sub = (us >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    LINEAR as usize + ((exp - 4) as usize) * (1 << SUB_BITS) + sub as usize
}

/// The largest value that falls in bucket `i`.
fn upper_bound(i: usize) -> u64 {
    if i < LINEAR as usize {
        return i as u64;
    }
    let rel = i - LINEAR as usize;
    let exp = (rel >> SUB_BITS) as u32 + 4;
    let sub = (rel & ((1 << SUB_BITS) - 1)) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    ((1u64 << exp) + sub * width).saturating_add(width - 1)
}

impl Histogram {
    /// Adds one observation.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// The value below which `q` (0..=1) of the observations fall (a bucket's upper
    /// bound), or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(upper_bound(i).min(self.max_us.load(Ordering::Relaxed)));
            }
        }
        None
    }

    /// Count, mean, p50/p95/p99 and max in microseconds, as JSON.
    pub fn summary(&self) -> LatencySummary {
        let count = self.count.load(Ordering::Relaxed);
        let mean = self
            .sum_us
            .load(Ordering::Relaxed)
            .checked_div(count)
            .unwrap_or(0);
        LatencySummary {
            count,
            mean_us: mean,
            p50_us: self.quantile(0.50),
            p95_us: self.quantile(0.95),
            p99_us: self.quantile(0.99),
            max_us: self.max_us.load(Ordering::Relaxed),
        }
    }
}

/// One histogram per [`Timed`] slot.
#[derive(Debug, Default)]
pub struct Latency {
    slots: [Histogram; 7],
}

impl Latency {
    /// Adds one observation to `slot`.
    pub fn record(&self, slot: Timed, d: Duration) {
        self.slots[slot.index()].record(d);
    }

    /// Adds a scan's stage times.
    pub fn record_scan(&self, times: &StageTimes) {
        let pairs = [
            (Timed::Hash, times.hash),
            (Timed::Heuristics, times.heuristics),
            (Timed::Rules, times.rules),
            (Timed::Model, times.model),
        ];
        for (slot, d) in pairs {
            if let Some(d) = d {
                self.record(slot, d);
            }
        }
    }

    /// Every slot's summary, keyed by its stable name.
    pub fn summary(&self) -> BTreeMap<String, LatencySummary> {
        Timed::ALL
            .iter()
            .map(|t| (t.as_str().to_owned(), self.slots[t.index()].summary()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_their_values() {
        let mut last = 0;
        for us in (0..5000u64).chain([u64::MAX / 2, u64::MAX]) {
            let b = bucket_of(us);
            assert!(b < BUCKETS, "{us}");
            assert!(b >= last, "{us}");
            last = b;
            assert!(upper_bound(b) >= us, "{us} above its bucket {b}");
            // At most 12.5 % above the value.
            assert!(
                upper_bound(b) - us <= us / 8 + 1,
                "{us}: {}",
                upper_bound(b)
            );
        }
    }

    #[test]
    fn quantiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for us in 1..=100u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).unwrap();
        let p99 = h.quantile(0.99).unwrap();
        assert!((50..=56).contains(&p50), "{p50}");
        assert!((99..=100).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), Some(100));
        let s = h.summary();
        assert_eq!((s.count, s.mean_us), (100, 50));
    }
}
