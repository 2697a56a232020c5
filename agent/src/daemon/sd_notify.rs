//! sd_notify: telling systemd (or a test harness) that the daemon is ready,
//! reloading, alive (watchdog) or stopping.
//!
//! Owns nothing; each call sends one datagram to `$NOTIFY_SOCKET` if it is set.
//! Failures are ignored: notification is advisory and must never stop the daemon.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (e.g. `"READY=1\nSTATUS=…"`) to the service manager, if any.
pub fn notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = target.as_encoded_bytes();
    let _ = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        match std::os::unix::net::SocketAddr::from_abstract_name(name) {
            Ok(addr) => sock.send_to_addr(state.as_bytes(), &addr),
            Err(e) => Err(e),
        }
    } else {
        sock.send_to(state.as_bytes(), &target)
    };
}

/// How often this process should send `WATCHDOG=1`: half of `$WATCHDOG_USEC`
/// (as sd_watchdog_enabled(3) recommends), or `None` when systemd set no watchdog
/// or set it for another process (`$WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(&usec, pid.as_deref(), std::process::id())
}

/// The watchdog timer for the daemon's main loop: ticks every
/// [`watchdog_interval`], or never when systemd set no watchdog. A tick late by
/// more than a period (a slow reload) is not followed by a burst of catch-up ticks.
pub fn watchdog_timer() -> Option<tokio::time::Interval> {
    let mut timer = tokio::time::interval(watchdog_interval()?);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(timer)
}

/// Waits for the next tick of `timer`; pends forever when there is none.
pub async fn watchdog_tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn watchdog_interval_from(usec: &str, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok()? != own_pid
    {
        return None;
    }
    match usec.trim().parse::<u64>().ok()? {
        0 => None,
        // At least 1 µs, or a tokio interval of zero would panic.
        n => Some(Duration::from_micros((n / 2).max(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::watchdog_interval_from;
    use std::time::Duration;

    #[test]
    fn half_of_watchdog_usec() {
        assert_eq!(
            watchdog_interval_from("20000000", None, 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            watchdog_interval_from("3000000", Some("7"), 7),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            watchdog_interval_from("1", None, 7),
            Some(Duration::from_micros(1))
        );
    }

    #[test]
    fn no_watchdog_when_unset_zero_garbage_or_for_another_pid() {
        assert_eq!(watchdog_interval_from("0", None, 7), None);
        assert_eq!(watchdog_interval_from("ten", None, 7), None);
        assert_eq!(watchdog_interval_from("-5", None, 7), None);
        assert_eq!(watchdog_interval_from("20000000", Some("8"), 7), None);
        assert_eq!(watchdog_interval_from("20000000", Some("x"), 7), None);
    }
}
