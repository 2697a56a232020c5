//! Alert subscriptions: who gets which detection and quarantine alerts live.
//!
//! Owns the list of subscribers (one per `subscribe` connection on the control
//! socket, e.g. each user's `vigil notifier`). Publishers (workers, after they
//! answered; the quarantine thread) hand over an [`Alert`]; each subscriber whose
//! uid may see it gets it through its own bounded queue. A subscriber that does not
//! keep up loses alerts (counted in `alerts_dropped`), never slows a publisher: a
//! publish is a short lock and one `try_send` per subscriber.
//!
//! Who may see what: root subscribers see every alert; another user sees alerts
//! about files they own or accesses by processes running as them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::daemon::respond::lock;
use crate::daemon::stats::Stats;

/// Alerts that may wait for one subscriber before new ones are dropped.
pub const SUBSCRIBER_QUEUE: usize = 256;

/// One alert: the event line, and whom it concerns.
#[derive(Debug)]
pub struct Alert {
    /// Owner of the file.
    pub file_uid: Option<u32>,
    /// Uid of the process whose access raised it.
    pub process_uid: Option<u32>,
    /// The event line (same fields as the JSON event log).
    pub line: Value,
}

impl Alert {
    /// True when a subscriber running as `uid` (`None`: root) may see it.
    pub fn visible_to(&self, uid: Option<u32>) -> bool {
        match uid {
            None => true,
            Some(u) => self.file_uid == Some(u) || self.process_uid == Some(u),
        }
    }
}

struct Subscriber {
    uid: Option<u32>,
    tx: mpsc::Sender<Arc<Alert>>,
}

/// The subscriber list; shared by the control socket and the publishers.
pub struct Alerts {
    subs: Mutex<Vec<Subscriber>>,
    count: AtomicUsize,
    stats: Arc<Stats>,
}

impl Alerts {
    /// An empty list.
    pub fn new(stats: Arc<Stats>) -> Alerts {
        Alerts {
            subs: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            stats,
        }
    }

    /// True when anyone listens (publishers skip building alerts otherwise).
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Adds a subscriber seeing what `uid` may see (`None`: everything).
    pub fn subscribe(&self, uid: Option<u32>) -> mpsc::Receiver<Arc<Alert>> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let mut subs = lock(&self.subs);
        subs.push(Subscriber { uid, tx });
        self.count.store(subs.len(), Ordering::Relaxed);
        rx
    }

    /// Hands `alert` to every subscriber allowed to see it; never blocks.
    pub fn publish(&self, alert: Alert) {
        let alert = Arc::new(alert);
        let mut subs = lock(&self.subs);
        subs.retain(|s| !s.tx.is_closed());
        for s in subs.iter().filter(|s| alert.visible_to(s.uid)) {
            if s.tx.try_send(Arc::clone(&alert)).is_err() {
                Stats::bump(&self.stats.alerts_dropped);
            }
        }
        self.count.store(subs.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(file_uid: u32, process_uid: u32) -> Alert {
        Alert {
            file_uid: Some(file_uid),
            process_uid: Some(process_uid),
            line: json!({"n": file_uid * 100 + process_uid}),
        }
    }

    #[test]
    fn each_user_gets_only_their_own_alerts() {
        let alerts = Alerts::new(Arc::new(Stats::default()));
        assert!(!alerts.active());
        let mut root = alerts.subscribe(None);
        let mut alice = alerts.subscribe(Some(1000));
        let mut bob = alerts.subscribe(Some(1001));
        assert!(alerts.active());
        alerts.publish(alert(1000, 0)); // alice's file, run by root
        alerts.publish(alert(0, 1001)); // root's file, run by bob
        alerts.publish(alert(0, 0));
        let drain = |rx: &mut mpsc::Receiver<Arc<Alert>>| {
            let mut seen = Vec::new();
            while let Ok(a) = rx.try_recv() {
                seen.push(a.line["n"].as_u64().unwrap_or(0));
            }
            seen
        };
        assert_eq!(drain(&mut root), vec![100_000, 1001, 0]);
        assert_eq!(drain(&mut alice), vec![100_000]);
        assert_eq!(drain(&mut bob), vec![1001]);
        drop(bob);
        alerts.publish(alert(0, 0));
        assert_eq!(lock(&alerts.subs).len(), 2);
    }

    #[test]
    fn a_slow_subscriber_loses_alerts_counted() {
        let stats = Arc::new(Stats::default());
        let alerts = Alerts::new(Arc::clone(&stats));
        let _rx = alerts.subscribe(None);
        for _ in 0..SUBSCRIBER_QUEUE + 3 {
            alerts.publish(alert(0, 0));
        }
        assert_eq!(stats.alerts_dropped.load(Ordering::Relaxed), 3);
    }
}
