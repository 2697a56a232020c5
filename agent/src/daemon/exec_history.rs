//! The exec history: a bounded ring of the daemon's recent execs, for the dry run.
//!
//! Owns: the ring ([`EXEC_HISTORY`] records, oldest dropped first) and the record
//! format, which is also the JSON-lines format `vigil policy test --events` reads.
//! Must not own: evaluating a policy over the records (`policy_cmd`). Workers push
//! a record after answering (one short mutex hold, no I/O); the main loop copies
//! the ring for the control socket's `exec-history` command.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Records kept: about a day of a quiet server's execs, a few minutes of a build.
pub const EXEC_HISTORY: usize = 4096;

/// One exec as the daemon saw it: the facts the exec rules look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRecord {
    /// Milliseconds since the epoch.
    pub time_ms: u64,
    /// The executed file (lossy UTF-8; `None` if unresolvable).
    pub path: Option<String>,
    /// The file's owner.
    pub file_uid: u32,
    /// The file's mode bits.
    pub file_mode: u32,
    /// The process doing the exec.
    pub pid: i32,
    /// Its effective uid.
    pub uid: Option<u32>,
    /// Its effective gid.
    pub gid: Option<u32>,
    /// Its program before the exec (the parent of the new program).
    pub parent: Option<String>,
    /// The file's SHA-256 (hex), when it was read.
    pub sha256: Option<String>,
    /// Whether the daemon denied it.
    pub denied: bool,
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The ring.
#[derive(Debug)]
pub struct ExecHistory {
    ring: Mutex<VecDeque<ExecRecord>>,
    capacity: usize,
}

impl Default for ExecHistory {
    fn default() -> Self {
        ExecHistory::new(EXEC_HISTORY)
    }
}

impl ExecHistory {
    /// A ring of `capacity` records (0 records nothing).
    pub fn new(capacity: usize) -> ExecHistory {
        ExecHistory {
            ring: Mutex::new(VecDeque::with_capacity(capacity.min(EXEC_HISTORY))),
            capacity,
        }
    }

    /// Adds a record, dropping the oldest when full.
    pub fn push(&self, record: ExecRecord) {
        if self.capacity == 0 {
            return;
        }
        if let Ok(mut ring) = self.ring.lock() {
            if ring.len() == self.capacity {
                ring.pop_front();
            }
            ring.push_back(record);
        }
    }

    /// The records at or after `since_ms`, oldest first.
    pub fn since(&self, since_ms: u64) -> Vec<ExecRecord> {
        self.ring
            .lock()
            .map(|ring| {
                ring.iter()
                    .filter(|r| r.time_ms >= since_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(time_ms: u64) -> ExecRecord {
        ExecRecord {
            time_ms,
            path: Some("/usr/bin/true".into()),
            file_uid: 0,
            file_mode: 0o100755,
            pid: 1,
            uid: Some(0),
            gid: Some(0),
            parent: None,
            sha256: None,
            denied: false,
        }
    }

    #[test]
    fn ring_keeps_the_newest() {
        let h = ExecHistory::new(3);
        for t in 1..=5 {
            h.push(record(t));
        }
        let times: Vec<u64> = h.since(0).iter().map(|r| r.time_ms).collect();
        assert_eq!(times, [3, 4, 5]);
        assert_eq!(h.since(5).len(), 1);
        let off = ExecHistory::new(0);
        off.push(record(1));
        assert!(off.since(0).is_empty());
        let line = serde_json::to_string(&record(7)).unwrap();
        assert_eq!(
            serde_json::from_str::<ExecRecord>(&line).unwrap(),
            record(7)
        );
    }
}
