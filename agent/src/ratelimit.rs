//! Rate limiting for warnings that can fire once per event.
//!
//! Owns one timestamp and one counter per call site. Under an event storm a
//! per-event warning would flood the journal and cost more than the events
//! themselves; instead each site logs at most once per [`PERIOD`] and reports how
//! many it held back.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// At most one message per site in this period.
pub const PERIOD_MS: u64 = 1000;

/// One call site's limiter; use as a `static`.
#[derive(Debug, Default)]
pub struct RateLimit {
    /// Milliseconds since the process epoch of the last message, plus one (0 = never).
    last: AtomicU64,
    /// Messages held back since the last one.
    suppressed: AtomicU64,
}

impl RateLimit {
    /// A limiter that has not fired yet.
    pub const fn new() -> RateLimit {
        RateLimit {
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when the caller may log now (`n` messages were held back since
    /// the last one); `None` when it must stay quiet.
    pub fn check(&self) -> Option<u64> {
        self.check_at(u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// [`RateLimit::check`] at `now_ms` milliseconds after the process epoch.
    fn check_at(&self, now_ms: u64) -> Option<u64> {
        let now = now_ms.saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        let quiet = last != 0 && now.saturating_sub(last) < PERIOD_MS;
        if quiet
            || self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `tracing::warn!` at most once per second per call site, with the number of
/// messages held back as the `suppressed` field.
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)*) => {{
        static LIMIT: $crate::ratelimit::RateLimit = $crate::ratelimit::RateLimit::new();
        if let Some(suppressed) = LIMIT.check() {
            tracing::warn!(suppressed, $($arg)*);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_per_period_then_the_count_of_the_rest() {
        let limit = RateLimit::new();
        assert_eq!(limit.check_at(5), Some(0));
        for ms in 6..106 {
            assert_eq!(limit.check_at(ms), None);
        }
        assert_eq!(limit.check_at(5 + PERIOD_MS - 1), None);
        assert_eq!(limit.check_at(5 + PERIOD_MS), Some(101));
        assert_eq!(limit.check_at(5 + PERIOD_MS + 1), None);
        assert_eq!(limit.check_at(5 + 3 * PERIOD_MS), Some(1));
    }
}
