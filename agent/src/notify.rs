//! sd_notify: telling systemd (or a test harness) that the daemon is ready,
//! reloading or stopping.
//!
//! Owns nothing; each call sends one datagram to `$NOTIFY_SOCKET` if it is set.
//! Failures are ignored: notification is advisory and must never stop the daemon.

use std::os::unix::net::UnixDatagram;

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
