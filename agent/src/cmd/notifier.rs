//! `vigil notifier`: the per-user desktop side. Subscribes to the daemon's alerts
//! over the control socket and shows each one with `notify-rust`.
//!
//! Owns one subscription thread (blocking socket reads, reconnecting with backoff
//! when the daemon restarts) and the display loop with its flood limit. Must not
//! own any decision: it only shows what the daemon sends, and the daemon decides
//! which alerts this user may see (`SO_PEERCRED`). A root daemon cannot talk to a
//! user's session bus, so this runs as the user (a systemd user service).
//!
//! Flood limit: at most [`BURST`] notifications per [`WINDOW`]; the rest of a burst
//! is counted and shown as one summary notification when the window ends.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Notifications shown per window before the rest is summarised.
pub const BURST: usize = 3;
/// The flood-limit window.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The application name servers show.
const APP_NAME: &str = "vigil";

/// What the subscription thread reports.
enum Feed {
    Subscribed(u32),
    Alert(Value),
    Lost(String),
}

/// The last path component of an event's `file.path`, for a short title.
fn file_name(alert: &Value) -> String {
    let path = alert
        .pointer("/file/path")
        .and_then(Value::as_str)
        .unwrap_or("");
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "a file".to_owned())
}

/// The title and body of an alert's notification: what happened to which file, and
/// why.
pub fn summary(alert: &Value) -> [String; 2] {
    let s = |p: &str| alert.pointer(p).and_then(Value::as_str).unwrap_or("");
    let name = file_name(alert);
    let path = s("/file/path");
    let why = match s("/threat/indicator/name") {
        "" => s("/vigil/verdict").to_owned(),
        threat => format!("{threat} ({})", s("/vigil/verdict")),
    };
    let access = match s("/event/type") {
        "exec" => "Running",
        "open" => "Opening",
        _ => "Access to",
    };
    match s("/event/action") {
        "blocked" => [
            format!("Blocked: {name}"),
            format!("{access} {path} was denied: {why}"),
        ],
        "audited" => [
            format!("Detected (audit mode): {name}"),
            format!("{access} {path} was allowed: {why}"),
        ],
        "deadline" => [
            format!("Late detection: {name}"),
            format!("{path} was allowed before its scan finished: {why}"),
        ],
        "quarantined" => [
            format!("Quarantined: {name}"),
            format!(
                "{path} was moved into quarantine (item {}); an administrator can restore it",
                s("/vigil/quarantine/id")
            ),
        ],
        "restored" => [
            format!("Restored: {name}"),
            format!(
                "{path} was restored from quarantine (item {})",
                s("/vigil/quarantine/id")
            ),
        ],
        other => [format!("vigil: {other} {name}"), path.to_owned()],
    }
}

/// The command an administrator runs to allow the alert's file, if the alert
/// names one: `vigil quarantine restore ID --allow` for a quarantined file, else
/// `vigil allow SHA256 --comment PATH` (the notifier itself changes nothing).
pub fn admin_command(alert: &Value) -> Option<String> {
    let s = |p: &str| alert.pointer(p).and_then(Value::as_str).unwrap_or("");
    match s("/event/action") {
        "quarantined" if !s("/vigil/quarantine/id").is_empty() => Some(format!(
            "sudo vigil quarantine restore {} --allow",
            s("/vigil/quarantine/id")
        )),
        "blocked" | "audited" | "deadline" if s("/file/hash/sha256").len() == 64 => {
            let sha256 = s("/file/hash/sha256");
            let comment = match s("/file/path") {
                "" => String::new(),
                path => format!(" --comment {}", shell_quote(path)),
            };
            Some(format!("sudo vigil allow {sha256}{comment}"))
        }
        _ => None,
    }
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A multi-line account for the "details" action.
fn details(alert: &Value) -> String {
    let s = |p: &str| alert.pointer(p).and_then(Value::as_str).unwrap_or("-");
    let mut out = format!(
        "file: {}\nsha256: {}\nprocess: {} (pid {})\n",
        s("/file/path"),
        s("/file/hash/sha256"),
        s("/process/executable"),
        alert
            .pointer("/process/pid")
            .map_or_else(|| "-".to_owned(), Value::to_string),
    );
    if let Some(reasons) = alert.pointer("/vigil/reasons").and_then(Value::as_array) {
        for r in reasons {
            out.push_str(&format!(
                "{}: {}\n",
                r.get("id").and_then(Value::as_str).unwrap_or("?"),
                r.get("detail").and_then(Value::as_str).unwrap_or("")
            ));
        }
    }
    if let Some(command) = admin_command(alert) {
        out.push_str(&format!(
            "If this file is safe, an administrator can allow it with:\n{command}\n"
        ));
    }
    out
}

/// Flood limit: which alerts to show now, and how many were held back.
#[derive(Debug)]
pub struct Limiter {
    window_start: Option<Instant>,
    shown: usize,
    held: usize,
}

impl Default for Limiter {
    fn default() -> Limiter {
        Limiter::new()
    }
}

impl Limiter {
    /// A limiter with nothing shown yet.
    pub fn new() -> Limiter {
        Limiter {
            window_start: None,
            shown: 0,
            held: 0,
        }
    }

    /// True when an alert arriving at `now` may be shown; otherwise it is counted.
    pub fn admit(&mut self, now: Instant) -> bool {
        let start = *self.window_start.get_or_insert(now);
        if now.duration_since(start) >= WINDOW && self.held == 0 {
            self.window_start = Some(now);
            self.shown = 0;
        }
        if self.shown < BURST {
            self.shown += 1;
            true
        } else {
            self.held += 1;
            false
        }
    }

    /// At the end of a window: how many alerts were held back (then reset), if any.
    pub fn flush(&mut self, now: Instant) -> Option<usize> {
        let start = self.window_start?;
        if now.duration_since(start) < WINDOW {
            return None;
        }
        self.window_start = Some(now);
        self.shown = 0;
        let held = std::mem::take(&mut self.held);
        (held > 0).then_some(held)
    }

    /// When the current window ends, if anything is held back.
    pub fn due(&self) -> Option<Instant> {
        (self.held > 0).then_some(self.window_start? + WINDOW)
    }
}

/// Runs the notifier until killed: subscribe, show, reconnect.
///
/// # Errors
/// Never returns normally; errors only when the subscription thread cannot start.
pub fn run(socket: PathBuf) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel::<Feed>();
    thread::Builder::new()
        .name("vigil-subscribe".into())
        .spawn(move || subscribe_forever(&socket, &tx))?;
    let actions = notify_rust::get_capabilities()
        .map(|caps| caps.iter().any(|c| c == "actions"))
        .unwrap_or(false);
    let mut limiter = Limiter::new();
    loop {
        let wait = limiter.due().map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(Feed::Subscribed(uid)) => {
                tracing::info!(uid, "subscribed to alerts");
            }
            Ok(Feed::Alert(alert)) => {
                if limiter.admit(Instant::now()) {
                    show(&alert, actions);
                }
            }
            Ok(Feed::Lost(why)) => {
                tracing::warn!(%why, "alert subscription lost; reconnecting");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                anyhow::bail!("the subscription thread stopped");
            }
        }
        if let Some(n) = limiter.flush(Instant::now()) {
            let body = format!(
                "{n} more alert{} in the last {} s; see `vigil alerts` or the event log",
                if n == 1 { "" } else { "s" },
                WINDOW.as_secs()
            );
            notify("vigil: more detections", &body, None);
        }
    }
}

fn subscribe_forever(socket: &Path, tx: &mpsc::Sender<Feed>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut subscribed = false;
        let result = crate::protocol::subscribe(
            socket,
            |uid| {
                subscribed = true;
                let _ = tx.send(Feed::Subscribed(uid));
            },
            |alert| tx.send(Feed::Alert(alert.clone())).is_ok(),
        );
        let why = match result {
            Ok(()) => "the daemon closed the connection".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        if tx.send(Feed::Lost(why)).is_err() {
            return;
        }
        // Retry fast after a working subscription ends (a daemon restart), back
        // off while the daemon stays unreachable.
        if subscribed {
            backoff = Duration::from_millis(500);
        }
        thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn show(alert: &Value, actions: bool) {
    let [title, body] = summary(alert);
    let detail = actions.then(|| details(alert));
    notify(&title, &body, detail);
}

/// Shows one notification; with `details`, adds a "Show details" action that
/// opens a second notification with them (waited for on its own thread).
fn notify(title: &str, body: &str, details: Option<String>) {
    let mut n = notify_rust::Notification::new();
    n.appname(APP_NAME)
        .summary(title)
        .body(body)
        .icon("security-high")
        .urgency(notify_rust::Urgency::Critical);
    if details.is_some() {
        n.action("details", "Show details");
    }
    match n.show() {
        Ok(handle) => {
            if let Some(text) = details {
                let title = title.to_owned();
                let _ = thread::Builder::new()
                    .name("vigil-action".into())
                    .spawn(move || {
                        handle.wait_for_action(|action| {
                            if action == "details" {
                                notify(&title, &text, None);
                            }
                        });
                    });
            }
        }
        Err(e) => tracing::warn!(error = %e, "showing a notification failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_say_what_and_why() {
        let alert = json!({
            "event": {"action": "blocked", "type": "exec"},
            "file": {"path": "/home/a/evil"},
            "threat": {"indicator": {"name": "EICAR"}},
            "vigil": {"verdict": "malicious"},
        });
        assert_eq!(
            summary(&alert),
            [
                "Blocked: evil".to_owned(),
                "Running /home/a/evil was denied: EICAR (malicious)".to_owned()
            ]
        );
        let q = json!({
            "event": {"action": "quarantined"},
            "file": {"path": "/tmp/x"},
            "vigil": {"quarantine": {"id": "0123456789abcdef"}},
        });
        assert_eq!(summary(&q)[0], "Quarantined: x");
        assert!(summary(&q)[1].contains("0123456789abcdef"));
    }

    #[test]
    fn details_name_the_admin_command() {
        let sha = "ab".repeat(32);
        let blocked = json!({
            "event": {"action": "blocked", "type": "exec"},
            "file": {"path": "/home/a/it's a tool", "hash": {"sha256": sha}},
            "vigil": {"verdict": "malicious", "reasons": []},
        });
        let want = format!("sudo vigil allow {sha} --comment '/home/a/it'\\''s a tool'");
        assert_eq!(admin_command(&blocked).as_deref(), Some(want.as_str()));
        assert!(
            details(&blocked).ends_with(&format!("{want}\n")),
            "{}",
            details(&blocked)
        );
        let q = json!({
            "event": {"action": "quarantined"},
            "vigil": {"quarantine": {"id": "0123456789abcdef"}},
        });
        assert_eq!(
            admin_command(&q).as_deref(),
            Some("sudo vigil quarantine restore 0123456789abcdef --allow")
        );
        let restored = json!({"event": {"action": "restored"}});
        assert_eq!(admin_command(&restored), None);
    }

    #[test]
    fn a_burst_is_cut_and_summarised_once() {
        let mut l = Limiter::new();
        let t0 = Instant::now();
        let shown = (0..10).filter(|_| l.admit(t0)).count();
        assert_eq!(shown, BURST);
        assert_eq!(l.flush(t0 + Duration::from_secs(1)), None);
        assert_eq!(l.due(), Some(t0 + WINDOW));
        assert_eq!(l.flush(t0 + WINDOW), Some(10 - BURST));
        assert_eq!(l.flush(t0 + WINDOW * 3), None);
        assert!(l.admit(t0 + WINDOW * 3));
    }
}
